/*
 * fcgi-app/core/config.c — the configuration table and its loader.
 */
#include "config.h"
#include "common/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum config_type { CFG_STRING, CFG_INT, CFG_LOG_LEVEL };

struct config_row {
    const char *name;
    enum config_type type;
    size_t offset; /* into struct config */
    const char *def;
    long min, max; /* CFG_INT bounds */
};

#define ROW(n, t, f, d, lo, hi)                                                \
    {                                                                          \
        n, t, offsetof(struct config, f), d, lo, hi                            \
    }

static const struct config_row config_rows[] = {
    ROW("FINTEGRATE_DB_URL", CFG_STRING, db_url,
        "host=127.0.0.1 port=15432 dbname=fintegrate user=fintegrate", 0, 0),
    /* PostgreSQL faults (docs/API.md §7.7): a database that stops answering
     * makes a request answer 503 within 10 s.  A round trip waits for at
     * most REPLY_TIMEOUT (8 s); a connection attempt for CONNECT_TIMEOUT per
     * host (3 s: two hosts stay within the budget).  The server cancels a
     * statement after STATEMENT_TIMEOUT (6 s, before the client gives up) and
     * a lock wait after LOCK_TIMEOUT (5 s, before the statement's).  The
     * TCP settings find a dead peer of an idle connection. */
    ROW("FINTEGRATE_DB_CONNECT_TIMEOUT_SECONDS", CFG_INT, db_connect_timeout_s,
        "3", 2, 60),
    ROW("FINTEGRATE_DB_REPLY_TIMEOUT_MS", CFG_INT, db_reply_timeout_ms, "8000",
        100, 3600000),
    ROW("FINTEGRATE_DB_STATEMENT_TIMEOUT_MS", CFG_INT, db_statement_timeout_ms,
        "6000", 0, 3600000),
    ROW("FINTEGRATE_DB_LOCK_TIMEOUT_MS", CFG_INT, db_lock_timeout_ms, "5000", 0,
        3600000),
    ROW("FINTEGRATE_DB_IDLE_IN_TX_TIMEOUT_MS", CFG_INT,
        db_idle_in_tx_timeout_ms, "30000", 0, 3600000),
    ROW("FINTEGRATE_DB_KEEPALIVES", CFG_INT, db_keepalives, "1", 0, 1),
    ROW("FINTEGRATE_DB_KEEPALIVES_IDLE_SECONDS", CFG_INT, db_keepalives_idle_s,
        "5", 1, 7200),
    ROW("FINTEGRATE_DB_KEEPALIVES_INTERVAL_SECONDS", CFG_INT,
        db_keepalives_interval_s, "2", 1, 600),
    ROW("FINTEGRATE_DB_KEEPALIVES_COUNT", CFG_INT, db_keepalives_count, "3", 1,
        100),
    ROW("FINTEGRATE_DB_TCP_USER_TIMEOUT_MS", CFG_INT, db_tcp_user_timeout_ms,
        "9000", 0, 3600000),
    ROW("FINTEGRATE_AMQP_URL", CFG_STRING, amqp_url,
        "amqp://guest:guest@127.0.0.1:5672", 0, 0),
    ROW("FINTEGRATE_WORKERS", CFG_INT, workers, "8", 1, 256),
    ROW("FINTEGRATE_PUBLISH_TIMEOUT_MS", CFG_INT, publish_timeout_ms, "1000", 1,
        60000),
    ROW("FINTEGRATE_BREAKER_FAILURES", CFG_INT, breaker_failures, "5", 1, 1000),
    ROW("FINTEGRATE_BREAKER_COOLDOWN_MS", CFG_INT, breaker_cooldown_ms, "10000",
        1, 3600000),
    /* The contract: a deactivated key stops working within 5 s at most. */
    ROW("FINTEGRATE_KEY_CACHE_SECONDS", CFG_INT, key_cache_seconds, "2", 0, 5),
    ROW("FINTEGRATE_MAX_REQUESTS", CFG_INT, max_requests, "0", 0, 100000000),
    /* The relay and the re-drive engine (docs/API.md §7.4). */
    ROW("FINTEGRATE_RELAY_INTERVAL_MS", CFG_INT, relay_interval_ms, "1000", 0,
        3600000),
    ROW("FINTEGRATE_RELAY_PERIOD_DAYS", CFG_INT, relay_period_days, "7", 1,
        3650),
    ROW("FINTEGRATE_RELAY_BACKOFF_MS", CFG_INT, relay_backoff_ms, "30000", 1,
        3600000),
    ROW("FINTEGRATE_REDRIVE_BATCH", CFG_INT, redrive_batch, "500", 1, 10000),
    ROW("FINTEGRATE_LOG_LEVEL", CFG_LOG_LEVEL, log_level, "info", 0, 0),
    ROW("FINTEGRATE_LOG_FILE", CFG_STRING, log_file, "", 0, 0),
};

static int
parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int
load_row(struct config *cfg, const struct config_row *row, const char *raw,
         struct app_err *err)
{
    void *field = (char *)cfg + row->offset;
    switch (row->type) {
    case CFG_STRING: {
        if (row->def[0] != '\0' && raw[0] == '\0') {
            err_set(err, 500, "%s must not be empty", row->name);
            return -1;
        }
        char *copy = strdup(raw);
        if (copy == NULL) {
            err_set(err, 500, "out of memory reading %s", row->name);
            return -1;
        }
        *(char **)field = copy;
        return 0;
    }
    case CFG_INT: {
        long v;
        if (parse_long(raw, &v) < 0 || v < row->min || v > row->max) {
            err_set(err, 500,
                    "%s must be an integer between %ld and %ld "
                    "(got \"%s\")",
                    row->name, row->min, row->max, raw);
            return -1;
        }
        *(long *)field = v;
        return 0;
    }
    case CFG_LOG_LEVEL: {
        int lvl = log_level_parse(raw);
        if (lvl < 0) {
            err_set(err, 500,
                    "%s must be one of debug, info, warn, error "
                    "(got \"%s\")",
                    row->name, raw);
            return -1;
        }
        *(long *)field = lvl;
        return 0;
    }
    }
    return -1;
}

int
config_load(struct config *cfg, config_getenv_fn get, struct app_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (get == NULL)
        get = (config_getenv_fn)getenv;
    for (size_t i = 0; i < sizeof config_rows / sizeof config_rows[0]; i++) {
        const struct config_row *row = &config_rows[i];
        const char *raw = get(row->name);
        if (raw == NULL)
            raw = row->def;
        if (load_row(cfg, row, raw, err) < 0)
            return -1;
    }
    return 0;
}

void
config_free(struct config *cfg)
{
    free(cfg->db_url);
    free(cfg->amqp_url);
    free(cfg->log_file);
    cfg->db_url = cfg->amqp_url = cfg->log_file = NULL;
}
