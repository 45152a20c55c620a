/*
 * fcgi-app/outbox/redrive.c — see redrive.h.
 */
#include "redrive.h"
#include "common/clock.h"
#include "common/log.h"
#include "../metrics/metrics.h"
#include "order.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A re-drive batch never waits for a lock longer than this (its own locks
 * are taken with SKIP LOCKED; this bounds anything else). */
#define REDRIVE_LOCK_TIMEOUT_MS "5000"

void
redrive_summary_free(struct redrive_summary *s)
{
    json_decref(s->failed_events);
    s->failed_events = NULL;
}

static void
note_failure(struct redrive_summary *s, const struct outbox_event *ev,
             const char *reason)
{
    s->failed++;
    if (s->failed_events == NULL)
        return;
    if (json_array_size(s->failed_events) >= REDRIVE_FAILED_EVENTS_MAX) {
        s->failed_events_truncated = true;
        return;
    }
    json_array_append_new(
        s->failed_events,
        json_pack("{s:s, s:s, s:I, s:s}", "event_id", ev->event_id,
                  "event_type", ev->event_type, "try_count",
                  (json_int_t)(ev->try_count + 1), "failure_reason", reason));
}

/* The run's forced probe failed: nothing goes to the network.  The first
 * event attempted carries the probe's reason, the rest "Broker circuit
 * open" (docs/API.md §7.5). */
static void
fail_fast(struct order_item *items, struct publish_result *res, size_t n,
          const char **probe_reason)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != ORDER_UNPLANNED)
            continue;
        items[i].state = ORDER_FAILED;
        sb_reset(&res[i].reason);
        if (*probe_reason != NULL) {
            res[i].outcome = PUBLISH_CONNECTION;
            sb_puts(&res[i].reason, *probe_reason);
            *probe_reason = NULL;
        } else {
            res[i].outcome = PUBLISH_CIRCUIT_OPEN;
            sb_puts(&res[i].reason, "Broker circuit open");
        }
        metrics_publish_failed(publish_outcome_label(res[i].outcome));
    }
}

/* Publishes wave after wave; false when the relay must stop here. */
static bool
publish_waves(struct publisher *p, struct db *db, enum redrive_rows_mode mode,
              const struct outbox_rows *rows, struct order_item *items,
              struct publish_result *res, size_t *wave)
{
    size_t w;
    while ((w = order_next_wave(items, rows->n, wave)) > 0) {
        publisher_send(p, db, rows->ev, wave, w, res);
        bool lost = false;
        for (size_t i = 0; i < w; i++) {
            enum publish_outcome o = res[wave[i]].outcome;
            items[wave[i]].state = o == PUBLISH_OK ? ORDER_OK : ORDER_FAILED;
            lost |= o == PUBLISH_CONNECTION || o == PUBLISH_CIRCUIT_OPEN;
        }
        /* The relay touches no event while the broker does not answer:
         * what this wave lost is recorded, the rest waits for a pass that
         * finds the broker. */
        if (lost && mode == ROWS_RELAY)
            return false;
    }
    return true;
}

/* Test-only (redrive.h): a worker whose environment has
 * FINTEGRATE_TEST_KILL_AFTER_CONFIRM kills itself after the broker
 * confirmed an inline publish of an event whose request_id starts with the
 * variable's value, before the mark: the crash the mark's position makes
 * possible. */
static void
test_kill_after_confirm(enum redrive_rows_mode mode,
                        const struct outbox_rows *rows,
                        const struct publish_result *res)
{
    static bool read;
    static const char *prefix;
    if (!read) {
        prefix = getenv("FINTEGRATE_TEST_KILL_AFTER_CONFIRM");
        read = true;
    }
    if (prefix == NULL || *prefix == '\0' || mode != ROWS_INLINE)
        return;
    for (size_t i = 0; i < rows->n; i++) {
        const char *rid = rows->ev[i].request_id;
        if (res[i].outcome == PUBLISH_OK && rid != NULL &&
            strncmp(rid, prefix, strlen(prefix)) == 0) {
            log_warn("test hook FINTEGRATE_TEST_KILL_AFTER_CONFIRM: killing "
                     "this worker after the confirm, before the mark");
            raise(SIGKILL);
        }
    }
}

int
redrive_rows(struct publisher *p, struct db *db, enum redrive_rows_mode mode,
             const struct outbox_rows *rows, long long max_try_count,
             const char **fail_fast_reason, struct redrive_summary *s,
             bool *stop, struct app_err *err)
{
    size_t n = rows->n, nrec = 0;
    struct order_item *items = calloc(n ? n : 1, sizeof *items);
    struct publish_result *res = calloc(n ? n : 1, sizeof *res);
    size_t *wave = calloc(n ? n : 1, sizeof *wave);
    struct outbox_record *recs = calloc(n ? n : 1, sizeof *recs);
    int rc = -1;

    *stop = false;
    if (items == NULL || res == NULL || wave == NULL || recs == NULL) {
        err_set(err, 500, "Out of memory re-driving events");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct outbox_event *ev = &rows->ev[i];
        /* Redeliver republishes published events: no order to keep. */
        bool ordered = mode != ROWS_REDELIVER;
        items[i].key = ordered ? ev->order_key : ev->event_id;
        items[i].sequence = ev->sequence;
        items[i].prev_pending = ordered ? ev->prev_pending : 0;
        items[i].state = max_try_count >= 0 && ev->try_count >= max_try_count
                             ? ORDER_SKIPPED
                             : ORDER_UNPLANNED;
        res[i].outcome = PUBLISH_HELD;
    }
    if (order_link(items, n) < 0) {
        err_set(err, 500, "Out of memory re-driving events");
        goto out;
    }

    long long t0 = mono_ms();
    if (fail_fast_reason != NULL)
        fail_fast(items, res, n, fail_fast_reason);
    else if (!publish_waves(p, db, mode, rows, items, res, wave))
        *stop = true;
    long long t1 = mono_ms();
    test_kill_after_confirm(mode, rows, res);

    for (size_t i = 0; i < n; i++) {
        const struct outbox_event *ev = &rows->ev[i];
        enum order_state st = items[i].state;
        enum publish_outcome o = res[i].outcome;
        if (s != NULL)
            s->total_pending++;
        if (st == ORDER_SKIPPED) {
            if (s != NULL)
                s->skipped++;
            continue;
        }
        if (st == ORDER_UNPLANNED || st == ORDER_SENDING)
            continue; /* the relay stopped before it */
        if (mode == ROWS_RELAY &&
            (st == ORDER_HELD || o == PUBLISH_CIRCUIT_OPEN))
            continue; /* untouched, not counted */
        const char *why = st == ORDER_HELD  ? REDRIVE_HELD_REASON
                          : o == PUBLISH_OK ? NULL
                                            : sb_str(&res[i].reason);
        recs[nrec].event_id = ev->event_id;
        recs[nrec].reason = why;
        recs[nrec].refused = st != ORDER_HELD && publish_outcome_refused(o);
        nrec++;
        if (s == NULL)
            continue;
        s->attempted++;
        if (why == NULL)
            s->succeeded++;
        else
            note_failure(s, ev, why);
    }
    rc = outbox_db_record(db, mode == ROWS_REDELIVER, recs, nrec, err);
    log_debug("re-drive rows: %zu events, publish %lld ms, record %lld ms", n,
              t1 - t0, mono_ms() - t1);
out:
    for (size_t i = 0; res != NULL && i < n; i++)
        sb_free(&res[i].reason);
    free(items);
    free(res);
    free(wave);
    free(recs);
    return rc;
}

static enum redrive_rows_mode
rows_mode(enum redrive_kind kind)
{
    switch (kind) {
    case REDRIVE_RESEND:
        return ROWS_RESEND;
    case REDRIVE_REDELIVER:
        return ROWS_REDELIVER;
    case REDRIVE_RELAY:
        return ROWS_RELAY;
    }
    return ROWS_RESEND;
}

struct cursor {
    char created_at[64];
    char sequence[24];
    char event_id[37];
    bool set;
};

static void
cursor_after(struct cursor *c, const struct outbox_event *last)
{
    snprintf(c->created_at, sizeof c->created_at, "%s", last->created_at);
    snprintf(c->sequence, sizeof c->sequence, "%lld", last->sequence);
    snprintf(c->event_id, sizeof c->event_id, "%s", last->event_id);
    c->set = true;
}

/* One batch in its own transaction.  *more: whether to go on. */
static int
run_batch(struct publisher *p, struct db *db, const struct redrive_params *rp,
          const struct redrive_query *q, struct cursor *cur,
          const char **fail_fast_reason, struct redrive_summary *s, bool *more,
          struct app_err *err)
{
    struct outbox_rows rows = {0};
    bool stop = false;

    *more = false;
    if (db_begin(db, err) < 0 ||
        outbox_db_lock_timeout(db, REDRIVE_LOCK_TIMEOUT_MS, err) < 0 ||
        outbox_db_lock_batch(db, q, &rows, err) < 0)
        goto fail;
    if (rows.n > 0 &&
        redrive_rows(p, db, rows_mode(rp->kind), &rows, rp->max_try_count,
                     fail_fast_reason, s, &stop, err) < 0)
        goto fail;
    if (db_commit(db, err) < 0)
        goto fail;
    if (rows.n > 0)
        cursor_after(cur, &rows.ev[rows.n - 1]);
    *more = !stop && rows.n >= (size_t)rp->batch;
    outbox_rows_free(&rows);
    return 0;
fail:
    db_rollback(db);
    outbox_rows_free(&rows);
    return -1;
}

int
redrive_run(struct publisher *p, struct db *db, const struct redrive_params *rp,
            struct redrive_summary *s, struct app_err *err)
{
    char run_start[64], period[24], limit[24], backoff[24];
    struct strbuf probe = STRBUF_INIT;
    struct cursor cur = {.set = false};
    const char *probe_reason = NULL;
    const char **fail_fast_reason = NULL;
    int rc = -1;

    memset(s, 0, sizeof *s);
    s->failed_events = json_array();
    if (outbox_db_now(db, run_start, sizeof run_start, err) < 0)
        goto out;
    if (!publisher_probe(p, db, &probe)) {
        if (rp->kind == REDRIVE_RELAY) {
            s->broker_down = true; /* touch nothing */
            rc = 0;
            goto out;
        }
        log_warn("re-drive: the broker probe failed (%s); the run fails fast",
                 sb_str(&probe));
        probe_reason = sb_str(&probe);
        fail_fast_reason = &probe_reason;
    }
    snprintf(period, sizeof period, "%ld", rp->period_days);
    snprintf(limit, sizeof limit, "%ld", rp->batch);
    snprintf(backoff, sizeof backoff, "%ld", rp->backoff_ms);

    bool more = true;
    while (more) {
        struct redrive_query q = {
            .kind = rp->kind,
            .period_days = period,
            .event_types = rp->event_types,
            .consumer_id = rp->consumer_id,
            .run_start = run_start,
            .backoff_ms = backoff,
            .limit = limit,
            .after_created_at = cur.set ? cur.created_at : NULL,
            .after_sequence = cur.set ? cur.sequence : NULL,
            .after_event_id = cur.set ? cur.event_id : NULL,
        };
        if (run_batch(p, db, rp, &q, &cur, fail_fast_reason, s, &more, err) < 0)
            goto out;
        if (more && rp->should_stop != NULL && rp->should_stop())
            break;
    }
    rc = 0;
out:
    sb_free(&probe);
    return rc;
}
