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
    /* PostgreSQL, per connection (db/db.h, docs/OPERATIONS.md): each
     * from FINTEGRATE_DB_ and the name in its comment. */
    long db_connect_timeout_s;     /* CONNECT_TIMEOUT_SECONDS, per host */
    long db_reply_timeout_ms;      /* REPLY_TIMEOUT_MS: client deadline */
    long db_statement_timeout_ms;  /* STATEMENT_TIMEOUT_MS */
    long db_lock_timeout_ms;       /* LOCK_TIMEOUT_MS */
    long db_idle_in_tx_timeout_ms; /* IDLE_IN_TX_TIMEOUT_MS */
    long db_keepalives;            /* KEEPALIVES (0/1) */
    long db_keepalives_idle_s;     /* KEEPALIVES_IDLE_SECONDS */
    long db_keepalives_interval_s; /* KEEPALIVES_INTERVAL_SECONDS */
    long db_keepalives_count;      /* KEEPALIVES_COUNT */
    long db_tcp_user_timeout_ms;   /* TCP_USER_TIMEOUT_MS */
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
