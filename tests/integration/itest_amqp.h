/*
 * tests/integration/itest_amqp.h — what the outbox tests need from the
 * broker's side (included by test_broker_faults.c, test_outage.c,
 * test_outbox.c, test_redrive.c and test_relay.c; the code is
 * itest_amqp.c, linked into every integration binary with itest.o):
 *
 *   - a small AMQP consumer with librabbitmq 0.11 (<amqp.h>,
 *     <amqp_tcp_socket.h>): basic.consume with manual acks on one queue,
 *     one message at a time with a timeout.  basic.get is refused on our
 *     quorum queues with single-active-consumer (docs/API.md §8.1), hence
 *     basic.consume.  Every message read is acked at once.
 *   - the RabbitMQ management HTTP API on 127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT
 *     (guest/guest), for the queue arguments and bindings as the broker
 *     reports them, policies and purges.
 *   - tallies: a queue read to the end against the expected event ids
 *     (each once? in order within each customer?), streaming, for
 *     backlogs of tens of thousands.
 *
 * The broker is named by FINTEGRATE_AMQP_URL and FINTEGRATE_AMQP_MGMT_PORT
 * (scripts/test.sh exports both).  Assertions are itest_failf (cmocka).
 */
#ifndef ITEST_AMQP_H
#define ITEST_AMQP_H

#include "itest.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ consumer */

struct amqp_sub {
    amqp_connection_state_t conn; /* NULL when closed */
    char queue[160];
};

/* One delivered message, copied out of librabbitmq's buffers. Strings are
 * "" when the property is absent (the matching has_* says so). */
struct amqp_msg {
    char *body; /* owned, NUL-terminated (body_len excludes the NUL) */
    size_t body_len;
    char exchange[128];
    char routing_key[256];
    char content_type[64];
    char message_id[64];
    char type[64];
    char app_id[64];
    char correlation_id[160];
    int delivery_mode; /* 0 when absent */
    uint64_t timestamp;
    bool has_timestamp;
    bool has_correlation_id;
    bool redelivered;
};

void amqp_msg_free(struct amqp_msg *m);

void amqp_sub_close(struct amqp_sub *s);

/*
 * Connects to FINTEGRATE_AMQP_URL and starts consuming `queue` with manual
 * acks (prefetch 1000). Returns 0, or -1 after printing why (the queue does
 * not exist, the broker is down...).
 */
int amqp_sub_open(struct amqp_sub *s, const char *queue);

/*
 * Waits up to timeout_ms for the next message, copies it into *m and acks
 * it. Returns 1 (a message), 0 (nothing within the timeout) or -1 (the
 * connection or channel broke; the subscription is closed).
 */
int amqp_sub_next(struct amqp_sub *s, struct amqp_msg *m, long timeout_ms);

/* Messages received by amqp_sub_collect. */
struct amqp_batch {
    struct amqp_msg *msgs; /* owned */
    size_t n;
};

void amqp_batch_free(struct amqp_batch *b);

/*
 * Reads messages until `want` have arrived or timeout_ms has passed, then
 * keeps reading for settle_ms more (a duplicate or an extra message would
 * show up there). Returns how many arrived, in arrival order, into *out
 * (owned; amqp_batch_free). want 0: just drain for settle_ms.
 */
size_t amqp_sub_collect(struct amqp_sub *s, size_t want, long timeout_ms,
                        long settle_ms, struct amqp_batch *out);

/* -------------------------------------------------- management HTTP API */

/*
 * method (GET, PUT, DELETE...) http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT
 * <path> as guest/guest, with a JSON body when body is not NULL. Returns
 * the HTTP status (0 when the request failed) and, when json is not NULL
 * and the body is JSON, *json (owned; NULL otherwise).
 */
long itest_mgmt_request(const char *method, const char *path, const char *body,
                        json_t **json);

/*
 * GET http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT<path> as guest/guest.
 * Returns the HTTP status (0 when the request failed) and, when the body is
 * JSON, *json (owned; NULL otherwise).
 */
long itest_mgmt_get(const char *path, json_t **json);

/* Drops every ready message of a queue (DELETE .../contents); true on
 * success. For clean-up: a test that failed half-way leaves no backlog
 * in the broker for the binaries after it. */
bool itest_mgmt_purge(const char *queue);

/* Is the broker's management API answering (GET /api/overview)? */
bool itest_broker_up(void);

/* The queue's name for a consumer (docs/API.md §8.1). */
void itest_queue_name(char *out, size_t size, const char *consumer_name,
                      bool dlq);

/* GET /api/queues/%2F/<queue>: 200 and the queue's JSON, or 404. */
long itest_mgmt_queue(const char *queue, json_t **json);

/*
 * Asserts what the broker reports about a consumer's queue and DLQ (docs/API.md
 * §8.1): the main queue durable, quorum, exactly the contract's
 * arguments, bound to fintegrate.events with "<name>.#"; the DLQ durable,
 * quorum, bound to fintegrate.dlx with "<name>".
 */
#define itest_assert_consumer_queues(name)                                     \
    itest_assert_consumer_queues_at(__FILE__, __LINE__, (name))

void itest_assert_consumer_queues_at(const char *file, int line,
                                     const char *name);

/* ------------------------------------------------------------ tallies */

/*
 * What a test expects in a queue, for amqp_sub_tally: each event once,
 * and within a group (a customer, say) ranks (sequences) never going
 * down. group must lie in [0, n) for n expected messages.
 */
struct amqp_expected {
    char id[37];
    long group;
    long rank;
    int count; /* out: how many times it arrived */
};

struct amqp_tally {
    size_t total;      /* messages read */
    size_t distinct;   /* expected ids that arrived at least once */
    size_t duplicates; /* arrivals of expected ids beyond the first */
    size_t unknown;    /* messages whose message_id is not expected */
    size_t disorder;   /* first arrivals ranked below an earlier one of
                          their group */
    char first_unknown[64], first_disorder[160];
};

/*
 * Reads messages from s until every one of the n expected has arrived (or
 * timeout_ms has passed), then settle_ms more (a duplicate or an extra
 * shows up there), and counts (acked, bodies dropped: it streams, so a
 * backlog of any size fits). exp[i].count is filled.
 */
void amqp_sub_tally(struct amqp_sub *s, struct amqp_expected *exp, size_t n,
                    long timeout_ms, long settle_ms, struct amqp_tally *t);

/*
 * The expected messages from SQL: query (one text parameter, e.g. a
 * consumer_id) returns event_id, group (0-based, dense), rank. Returns how
 * many; *out is owned (free()).
 */
#define amqp_expected_sql(query, param, out)                                   \
    amqp_expected_sql_at(__FILE__, __LINE__, (query), (param), (out))

size_t amqp_expected_sql_at(const char *file, int line, const char *query,
                            const char *param, struct amqp_expected **out);

/* Prints a tally (what a failing assertion is about). */
void amqp_tally_print(const char *what, size_t want,
                      const struct amqp_tally *t);

/* ------------------------------------------------------- consumers */

/*
 * Creates a consumer the way an administrator does, through the API
 * (POST /consumer/data, so its queues are declared by the service, then
 * POST /consumer/api-key), unlike itest_consumer_create which writes SQL.
 * The name is "<prefix>-<pid>-<time>-<n>"; asserts the 201 envelopes and
 * the data.queue name.
 */
#define itest_consumer_create_api(out, prefix)                                 \
    itest_consumer_create_api_at(__FILE__, __LINE__, (out), (prefix))

void itest_consumer_create_api_at(const char *file, int line,
                                  struct itest_consumer *out,
                                  const char *prefix);

#endif /* ITEST_AMQP_H */
