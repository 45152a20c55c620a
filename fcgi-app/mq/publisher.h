/*
 * fcgi-app/mq/publisher.h — the outbox publisher of one worker: takes a
 * committed event from customer_events, publishes its stored payload to
 * the owner's routing key with confirms, and records the attempt in the
 * outbox.  Wraps the broker in the circuit breaker, declares the topology
 * on every fresh connection (every consumer's queues, so a consumer created
 * while the broker was down gets its queues as soon as it is back), and on
 * a basic.return re-declares that consumer's queues and retries once.
 *
 * Handlers reach the broker only through this module.
 */
#ifndef FI_PUBLISHER_H
#define FI_PUBLISHER_H

#include "../core/config.h"
#include "../core/strbuf.h"
#include "../db/db.h"
#include "amqp_conn.h"
#include "breaker.h"

#include <stdbool.h>

struct publisher {
    struct mq_conn mq;
    struct breaker breaker;
};

/* What happened to one publish attempt. */
enum publish_outcome {
    PUBLISH_OK = 0,
    PUBLISH_NACK,
    PUBLISH_RETURNED,
    PUBLISH_TIMEOUT,
    PUBLISH_CONNECTION,
    PUBLISH_CIRCUIT_OPEN, /* skipped without touching the network */
};

int publisher_init(struct publisher *p, const struct config *cfg)
    __attribute__((warn_unused_result));
void publisher_free(struct publisher *p);

/* Connects and declares the topology if the breaker allows; failures are
 * only logged (worker start, health checks). */
void publisher_warm_up(struct publisher *p, struct db *db);

/*
 * Publishes event `event_id` (already committed) and records the attempt:
 * publish_* columns, or deliver_* columns when `redeliver`.  `force` lets
 * the attempt through an open breaker (the re-drive's probe).  The failure
 * reason is appended to `reason`.  A database error while recording is
 * logged and reported as the outcome of the publish itself.
 */
enum publish_outcome publisher_publish(struct publisher *p, struct db *db,
                                       const char *event_id, bool redeliver,
                                       bool force, struct strbuf *reason);

/* Declares one consumer's queues now, if the broker is reachable (a
 * consumer's creation).  Failures are logged; the next fresh connection
 * declares them anyway. */
void publisher_declare_consumer(struct publisher *p, struct db *db,
                                const char *consumer_name);

/* Opens the breaker at once (a re-drive whose forced probe failed). */
void publisher_trip(struct publisher *p);

/* "up", "down" or "circuit_open" as GET /health reports it.  Once the
 * cool-down has passed, this is the half-open try that decides, so a worker
 * that only serves reads does not report circuit_open for ever. */
const char *publisher_broker_state(struct publisher *p, struct db *db);

/* The metric label of an outcome: "timeout", "nack", "returned",
 * "connection", "circuit_open" ("ok" for success). */
const char *publish_outcome_label(enum publish_outcome o);

#endif
