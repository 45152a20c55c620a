/*
 * fcgi-app/core/config.h — the service's configuration, read from the
 * environment through one table (config.c) of {variable, type, default,
 * bounds}.  Bad configuration stops start-up with one line naming the
 * variable; nothing falls back silently.
 */
#ifndef FI_CONFIG_H
#define FI_CONFIG_H

#include "app_err.h"

struct config {
    char *db_url;   /* FINTEGRATE_DB_URL: libpq conninfo (secret-bearing) */
    char *amqp_url; /* FINTEGRATE_AMQP_URL (secret-bearing) */
    long workers;   /* FINTEGRATE_WORKERS */
    long publish_timeout_ms;  /* FINTEGRATE_PUBLISH_TIMEOUT_MS */
    long breaker_failures;    /* FINTEGRATE_BREAKER_FAILURES */
    long breaker_cooldown_ms; /* FINTEGRATE_BREAKER_COOLDOWN_MS */
    long key_cache_seconds;   /* FINTEGRATE_KEY_CACHE_SECONDS (0..5) */
    long max_requests;        /* FINTEGRATE_MAX_REQUESTS (0 = unlimited) */
    long relay_interval_ms;   /* FINTEGRATE_RELAY_INTERVAL_MS (0 = off) */
    long relay_period_days;   /* FINTEGRATE_RELAY_PERIOD_DAYS */
    long relay_backoff_ms;    /* FINTEGRATE_RELAY_BACKOFF_MS: back-off base */
    long redrive_batch;       /* FINTEGRATE_REDRIVE_BATCH: events per batch */
    long log_level;           /* FINTEGRATE_LOG_LEVEL, as enum log_level */
    char *log_file;           /* FINTEGRATE_LOG_FILE ("" = stderr) */
};

/* A getenv-like lookup, injectable for tests.  Returns NULL when unset. */
typedef const char *(*config_getenv_fn)(const char *name);

/*
 * Fills `cfg` from `get` (NULL = getenv).  On error returns -1 with a
 * 500-class err naming the variable and the rule, and `cfg` holds whatever
 * was read (config_free it either way).
 */
int config_load(struct config *cfg, config_getenv_fn get, struct app_err *err)
    __attribute__((warn_unused_result));
void config_free(struct config *cfg);

#endif
