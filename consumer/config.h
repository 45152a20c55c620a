/*
 * consumer/config.h — the consumer program's configuration: one table
 * (config.c) of {flag, environment variable, type, default, bounds}.
 * A flag wins over its variable, a variable over the default.  Bad
 * configuration stops start-up with one line naming the flag or variable;
 * nothing falls back silently.
 *
 * The API key comes from FINTEGRATE_API_KEY or from the file named by
 * --api-key-file / FINTEGRATE_API_KEY_FILE (the file wins; there is
 * deliberately no flag that takes the key itself, since flags show in
 * `ps`).  It is never printed, not even by --check-config.
 *
 * Ownership: strings in struct consumer_config are owned by it
 * (consumer_config_free, safe to call twice; it wipes the key).
 * Depends on common/strbuf and common/log only.
 */
#ifndef FC_CONFIG_H
#define FC_CONFIG_H

#include "common/strbuf.h"

#include <stdbool.h>
#include <stdio.h>

struct consumer_config {
    char *name;    /* FINTEGRATE_CONSUMER_NAME: the consumer_name */
    char *api_key; /* FINTEGRATE_API_KEY (secret) */
    char *api_key_file;
    char *base_url;  /* FINTEGRATE_BASE_URL */
    char *amqp_url;  /* FINTEGRATE_AMQP_URL (may hold a password) */
    char *state_dir; /* FINTEGRATE_CONSUMER_STATE_DIR */
    long prefetch;
    long gap_timeout_ms;
    long http_timeout_ms;
    long retain_events;
    long retain_days;
    long retain_customers;
    long raw;       /* bool: also print each message's raw JSON */
    long log_level; /* enum log_level */
    char *queue;    /* derived: customer_notification_<name> */
};

enum consumer_config_action {
    CONSUMER_CONFIG_RUN = 0,
    CONSUMER_CONFIG_HELP,  /* --help: print consumer_config_usage, exit 0 */
    CONSUMER_CONFIG_CHECK, /* --check-config: valid; print summary, exit 0 */
};

/* A getenv-like lookup, injectable for tests.  NULL when unset. */
typedef const char *(*consumer_getenv_fn)(const char *name);

/*
 * Fills cfg from argv (argv[0] is skipped) and `get` (NULL = getenv).
 * Returns an action, or -1 with one line in `err` naming the flag or
 * variable and the rule.  consumer_config_free cfg either way.
 */
int consumer_config_load(struct consumer_config *cfg, int argc,
                         char *const argv[], consumer_getenv_fn get,
                         struct strbuf *err)
    __attribute__((warn_unused_result));
void consumer_config_free(struct consumer_config *cfg);

/* The --help text, generated from the table. */
void consumer_config_usage(FILE *out);
/* The effective configuration without secrets (--check-config). */
void consumer_config_print(const struct consumer_config *cfg, FILE *out);

#endif
