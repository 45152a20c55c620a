/*
 * fcgi-app/outbox/publisher.h — the outbox's way to the broker, for one
 * process: the circuit breaker around the AMQP connection, the topology
 * (declared on every fresh connection: every consumer's queues, so a
 * consumer created while the broker was down gets its queues as soon as it
 * is back), and the publishing of a wave of events, pipelined on one
 * channel with their confirms awaited together.  An unroutable event (a
 * basic.return) re-declares its consumer's queues and is sent once more.
 *
 * It records nothing in the database: the caller (the inline step, the
 * re-drive engine) does, for a whole batch at once.  Handlers reach the
 * broker only through the outbox.
 */
#ifndef FI_PUBLISHER_H
#define FI_PUBLISHER_H

#include "../core/config.h"
#include "common/strbuf.h"
#include "../db/db.h"
#include "../db/outbox_db.h"
#include "../mq/amqp_conn.h"
#include "breaker.h"

#include <stdbool.h>

struct publisher {
    struct mq_conn mq;
    struct breaker breaker;
};

/* What happened to one event. */
enum publish_outcome {
    PUBLISH_OK = 0,
    PUBLISH_NACK,
    PUBLISH_RETURNED,
    PUBLISH_TIMEOUT,
    PUBLISH_CONNECTION,
    PUBLISH_CIRCUIT_OPEN, /* skipped without touching the network */
    PUBLISH_HELD,         /* not sent: an earlier event is pending */
};

struct publish_result {
    enum publish_outcome outcome;
    struct strbuf reason; /* empty on success */
};

int publisher_init(struct publisher *p, const struct config *cfg)
    __attribute__((warn_unused_result));
void publisher_free(struct publisher *p);

/* Connects and declares the topology if the breaker allows; failures are
 * only logged (process start). */
void publisher_warm_up(struct publisher *p, struct db *db);

/* A forced probe (the re-drives' and the relay's): connects through an
 * open breaker.  Success closes the breaker; failure opens it at once and
 * leaves the reason. */
bool publisher_probe(struct publisher *p, struct db *db, struct strbuf *reason);

/*
 * Publishes evs[idx[0..n-1]] (one wave: no two of one customer) and fills
 * res[idx[i]].  The breaker decides first: while it is open nothing goes
 * out (PUBLISH_CIRCUIT_OPEN).  A timeout or a lost connection counts as one
 * breaker failure; a nack or a return is the broker answering.  Counts
 * each outcome in the metrics.
 */
void publisher_send(struct publisher *p, struct db *db,
                    const struct outbox_event *evs, const size_t *idx, size_t n,
                    struct publish_result *res);

/* Declares one consumer's queues now, if the broker is reachable (a
 * consumer's creation).  Failures are logged; the next fresh connection
 * declares them anyway. */
void publisher_declare_consumer(struct publisher *p, struct db *db,
                                const char *consumer_name);

/*
 * "up", "down" or "circuit_open" as GET /health and GET /events/health
 * report it, from what this process already knows; it never touches the
 * network (it answers at once even when the broker's host drops every
 * packet):
 *   circuit_open  the breaker is not closed (open, or half-open awaiting
 *                 its try: only a publish or a probe moves it on);
 *   up            the breaker is closed and the connection is open with
 *                 nothing on it saying it is gone;
 *   down          the breaker is closed but there is no connection (the
 *                 last connect or publish failed, the broker closed it, or
 *                 this process has not needed one yet).
 * `db` is unused (kept for the callers). */
const char *publisher_broker_state(const struct publisher *p, struct db *db);

/* The metric label of a failure: "timeout", "nack", "returned",
 * "connection", "circuit_open" ("ok" for success, "held"). */
const char *publish_outcome_label(enum publish_outcome o);

/* Whether a failure was a broker that answered and refused (back-off). */
bool publish_outcome_refused(enum publish_outcome o);

#endif
