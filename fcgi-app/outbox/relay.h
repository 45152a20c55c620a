/*
 * fcgi-app/outbox/relay.h — one relay pass (docs/API.md §7.4): the
 * automatic re-drive of pending events, so that what piled up while the
 * broker was away goes out with no API call.
 *
 * A pass probes the broker first (also through an open breaker); if it does
 * not answer, the pass ends there and touches no event.  Otherwise it
 * re-drives what a resend of FINTEGRATE_RELAY_PERIOD_DAYS would take, minus
 * the events still in their back-off (refused by a broker that answered:
 * FINTEGRATE_RELAY_BACKOFF_MS × 2^(tries−1), at most 1 h), in per-customer
 * order, through the batched engine (redrive.h).  Row locks with SKIP
 * LOCKED make passes of several nodes safe together.  Every pass is
 * recorded (outbox_relay_state, for GET /events/health) and counted in the
 * metrics.
 *
 * After a pass, at most every RELAY_IDEM_EXPIRE_EVERY_MS, the relay also
 * deletes expired Idempotency-Key rows (older than 24 h, docs/API.md
 * §6): batches of RELAY_IDEM_EXPIRE_BATCH, oldest first through the
 * created_at index, skipping locked rows (several nodes' relays may run it
 * together), until a batch comes back short or the turn has taken
 * RELAY_IDEM_EXPIRE_BUDGET_MS.  A batch takes a few ms, so a turn keeps up
 * with tens of thousands of keys a second.
 *
 * The process that runs the passes is proc/relay_proc.c.
 */
#ifndef FI_RELAY_H
#define FI_RELAY_H

#include "../core/config.h"
#include "../db/db.h"
#include "publisher.h"

#define RELAY_IDEM_EXPIRE_EVERY_MS 10000
#define RELAY_IDEM_EXPIRE_BATCH 1000
#define RELAY_IDEM_EXPIRE_BUDGET_MS 250

enum relay_outcome {
    RELAY_PUBLISHED,   /* published at least one event */
    RELAY_IDLE,        /* nothing was due */
    RELAY_BROKER_DOWN, /* the probe failed: nothing touched */
    RELAY_ERROR,       /* the database failed */
};

/* Runs one pass; *published = events the broker confirmed.
 * `should_stop` (may be NULL) is asked between batches. */
enum relay_outcome relay_pass(struct publisher *p, struct db *db,
                              const struct config *cfg,
                              bool (*should_stop)(void), long long *published);

/* The metric label: "published", "idle", "broker_down", "error". */
const char *relay_outcome_label(enum relay_outcome o);

#endif
