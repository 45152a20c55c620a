/*
 * fcgi-app/outbox/relay.c — see relay.h.
 */
#include "relay.h"
#include "common/clock.h"
#include "common/log.h"
#include "../db/idempotency_db.h"
#include "../metrics/metrics.h"
#include "redrive.h"

const char *
relay_outcome_label(enum relay_outcome o)
{
    switch (o) {
    case RELAY_PUBLISHED:
        return "published";
    case RELAY_IDLE:
        return "idle";
    case RELAY_BROKER_DOWN:
        return "broker_down";
    case RELAY_ERROR:
        return "error";
    }
    return "error";
}

/* Deletes expired Idempotency-Key rows, a few bounded batches at a time
 * (relay.h); keys live 24 h, so running late costs only disk. */
static void
expire_idempotency_keys(struct db *db, bool (*should_stop)(void))
{
    static long long next_at;
    long long now = mono_ms();
    long total = 0, deleted = RELAY_IDEM_EXPIRE_BATCH;
    struct app_err err = APP_ERR_INIT;

    if (now < next_at)
        return;
    next_at = now + RELAY_IDEM_EXPIRE_EVERY_MS;
    while (deleted == RELAY_IDEM_EXPIRE_BATCH &&
           mono_ms() - now < RELAY_IDEM_EXPIRE_BUDGET_MS &&
           !(should_stop && should_stop())) {
        if (idem_db_expire(db, RELAY_IDEM_EXPIRE_BATCH, &deleted, &err) < 0) {
            log_warn("relay: deleting expired idempotency keys: %s",
                     err.detail ? err.detail : err.msg);
            err_clear(&err);
            break;
        }
        total += deleted;
    }
    if (total > 0)
        log_info("relay: %ld expired idempotency keys deleted", total);
}

enum relay_outcome
relay_pass(struct publisher *p, struct db *db, const struct config *cfg,
           bool (*should_stop)(void), long long *published)
{
    struct app_err err = APP_ERR_INIT;
    struct redrive_summary s = {0};
    enum relay_outcome out;
    struct redrive_params rp = {
        .kind = REDRIVE_RELAY,
        .period_days = cfg->relay_period_days,
        .max_try_count = -1,
        .batch = cfg->redrive_batch,
        .backoff_ms = cfg->relay_backoff_ms,
        .should_stop = should_stop,
    };

    *published = 0;
    if (db_ensure(db, &err) < 0 || redrive_run(p, db, &rp, &s, &err) < 0) {
        log_warn("relay: pass failed: %s", err.detail ? err.detail : err.msg);
        out = RELAY_ERROR;
        err_clear(&err);
        redrive_summary_free(&s);
        goto count;
    }
    *published = s.succeeded;
    out = s.broker_down     ? RELAY_BROKER_DOWN
          : s.succeeded > 0 ? RELAY_PUBLISHED
                            : RELAY_IDLE;
    if (s.attempted > 0 || s.broker_down)
        log_info("relay: pass %s: %lld published, %lld failed",
                 relay_outcome_label(out), s.succeeded, s.failed);
    redrive_summary_free(&s);
    if (outbox_db_relay_pass(db, *published, &err) < 0) {
        log_warn("relay: recording the pass: %s",
                 err.detail ? err.detail : err.msg);
        err_clear(&err);
    }
    expire_idempotency_keys(db, should_stop);
count:
    metrics_relay_pass(relay_outcome_label(out), *published);
    return out;
}
