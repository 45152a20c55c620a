/*
 * fcgi-app/outbox/redrive.h — the one re-drive engine of resend, redeliver
 * and the relay (docs/API.md §7.5), and the batch step that the
 * inline publish after commit shares with it.
 *
 * A run works in batches of at most `batch` events.  Each batch is its own
 * transaction: lock the next events after the keyset cursor in created_at
 * order (FOR UPDATE SKIP LOCKED, with a lock_timeout), publish them
 * pipelined on one channel in waves that keep per-customer order
 * (outbox/order.h), await the confirms together, record every outcome in
 * one statement, commit, then the next batch.  So no transaction holds row
 * locks for more than one batch, a crash loses the records of at most the
 * batch in flight (those events go out once more: at-least-once), and
 * memory is bounded by one batch, however large the backlog.
 *
 * Events created after the run began wait for the next run, so a run ends.
 */
#ifndef FI_REDRIVE_H
#define FI_REDRIVE_H

#include "../core/app_err.h"
#include "../db/db.h"
#include "../db/outbox_db.h"
#include "publisher.h"

#include <jansson.h>
#include <stdbool.h>

#define REDRIVE_FAILED_EVENTS_MAX 100
#define REDRIVE_HELD_REASON                                                    \
    "Held: an earlier event of this customer is not published yet"

struct redrive_params {
    enum redrive_kind kind;
    long period_days;
    const char *event_types; /* JSON array text, or NULL */
    const char *consumer_id; /* redeliver's owner filter, or NULL */
    long long max_try_count; /* events at or above it are skipped; <0 none */
    long batch;              /* FINTEGRATE_REDRIVE_BATCH */
    long backoff_ms;         /* the relay's FINTEGRATE_RELAY_BACKOFF_MS */
    /* Asked between batches (may be NULL): true ends the run there, with
     * what was done committed (the relay's process is being stopped). */
    bool (*should_stop)(void);
};

struct redrive_summary {
    long long total_pending; /* matched, before the try-count filter */
    long long attempted;     /* succeeded + failed */
    long long succeeded;
    long long failed;
    long long skipped;
    json_t *failed_events; /* owned; at most REDRIVE_FAILED_EVENTS_MAX */
    bool failed_events_truncated;
    bool broker_down; /* the relay's probe failed: no event was touched */
};

/*
 * Runs one re-drive to the end.  Resend and redeliver first force one
 * broker probe: if it fails, the rest of the run fails fast as "Broker
 * circuit open", each counted.  The relay's probe failing ends the pass
 * with nothing touched (s->broker_down); the relay leaves held events and
 * events after a lost connection untouched.  0, or -1 with err (the
 * batches committed before stay committed).
 */
int redrive_run(struct publisher *p, struct db *db,
                const struct redrive_params *rp, struct redrive_summary *s,
                struct app_err *err) __attribute__((warn_unused_result));

void redrive_summary_free(struct redrive_summary *s);

/* How redrive_rows() treats a set of loaded events. */
enum redrive_rows_mode {
    ROWS_INLINE,    /* just committed: held ones recorded as held */
    ROWS_RESEND,    /* held ones recorded as held (counted failed) */
    ROWS_RELAY,     /* held ones untouched; a lost connection ends the pass */
    ROWS_REDELIVER, /* no order rule: redeliver republishes published ones */
};

/*
 * Publishes `rows` in per-customer order and records every outcome (the
 * caller owns the transaction, if any).  `fail_fast_reason`, when not
 * NULL, says the run's forced probe failed: nothing is sent, the first
 * event attempted gets *fail_fast_reason (which is then set to NULL) and
 * the rest fail fast as "Broker circuit open".  Adds to `s`
 * (may be NULL).  *stop is set when the run should end here (the relay lost
 * the broker).  0, or -1 with err when recording failed.
 *
 * Test-only: FINTEGRATE_TEST_KILL_AFTER_CONFIRM, when set in a worker's
 * environment, makes the worker SIGKILL itself between an inline publish
 * the broker confirmed and the mark, for events whose request_id starts
 * with its value (tests/integration/test_relay.c).  Never set it in
 * production.
 */
int redrive_rows(struct publisher *p, struct db *db,
                 enum redrive_rows_mode mode, const struct outbox_rows *rows,
                 long long max_try_count, const char **fail_fast_reason,
                 struct redrive_summary *s, bool *stop, struct app_err *err)
    __attribute__((warn_unused_result));

#endif
