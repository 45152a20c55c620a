/*
 * fcgi-app/mq/amqp_conn.h — one AMQP connection and channel in publisher
 * confirm mode (librabbitmq 0.11), opened lazily after fork.
 *
 * mq_conn_publish() returns only when the broker has settled the message:
 * a basic.ack is MQ_OK; a basic.nack, a basic.return (unroutable — the ack
 * that follows does not count), a closed channel or connection, or no ack
 * within the timeout are failures with a reason.  After a timeout or any
 * protocol trouble the connection is closed, so a late ack can never be
 * taken for the next message's.
 *
 * Heartbeats are off (the worker sits in accept() between requests and
 * could not answer them); instead an idle connection with anything to read
 * (the broker's connection.close at shutdown, or EOF) counts as stale and is
 * replaced before use.  Nothing here touches the database.
 *
 * Several nodes (FINTEGRATE_AMQP_URL a comma-separated list,
 * common/amqp_urls.h): mq_conn_open() tries them in turn, each bounded by the
 * timeout, starting at the node after the last one it connected to, so a node
 * whose connection was lost (or went stale) is tried last, not first.  It stays
 * on the node that answered until that connection is lost.  Logs name a
 * node by host:port only; failure reasons name none (they are stored in
 * the outbox, which consumers read).
 */
#ifndef FI_AMQP_CONN_H
#define FI_AMQP_CONN_H

#include "common/amqp_urls.h"
#include "common/strbuf.h"
#include "common/topology.h"
#include "confirm_batch.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mq_conn {
    amqp_connection_state_t conn; /* NULL when closed */
    struct amqp_nodes nodes;      /* owned; hold passwords: never logged */
    char *url_error; /* owned: why the list did not parse, else NULL */
    size_t node;     /* the node connected to (valid while conn is set) */
    size_t next;     /* where the next connect starts */
    long timeout_ms;
    uint64_t last_tag; /* delivery tag of the last message sent */
    bool fresh;        /* opened since the caller last looked */
};

struct mq_message {
    const char *exchange;
    const char *routing_key;
    const char *body;
    size_t body_len;
    const char *message_id;
    const char *type;
    const char *correlation_id; /* may be NULL */
    uint64_t timestamp;         /* seconds since the epoch */
};

/* Copies and parses the node list `url`.  -1 only when out of memory.  A
 * list that does not parse is logged once (an error naming the item's
 * position, never its text) and makes every mq_conn_open fail with that
 * sentence, as a broker that cannot be reached would. */
int mq_conn_init(struct mq_conn *m, const char *url, long timeout_ms)
    __attribute__((warn_unused_result));
void mq_conn_free(struct mq_conn *m);
/* Closes the connection (safe when closed). */
void mq_conn_close(struct mq_conn *m);
bool mq_conn_is_open(const struct mq_conn *m);

/* Whether the connection is open and nothing says it is gone (nothing to
 * read on it: no connection.close, no EOF).  Never waits: for GET /health,
 * which must not touch the network. */
bool mq_conn_looks_up(const struct mq_conn *m);

/* Opens the connection if it is closed or stale, trying the nodes in turn
 * (see above).  MQ_OK or MQ_CONNECTION with the reason appended to
 * `reason`. */
enum mq_result mq_conn_open(struct mq_conn *m, struct strbuf *reason);

/*
 * Pipelined publishing: mq_conn_send() puts one message on the channel
 * (mandatory, persistent) without waiting; mq_conn_settle() then reads the
 * broker's confirms for everything sent since the last settle (a multiple
 * ack settles many at once) and fills each slot's result.  The slots are
 * the caller's, one per message in the order sent.
 *
 * A message's result is MQ_OK (acked), MQ_NACK, MQ_RETURNED (a basic.return
 * named its message_id; the ack that follows does not make it a success),
 * or, for messages still unsettled when the wait ends, MQ_TIMEOUT (no
 * confirm within the timeout, counted from the last confirm that arrived)
 * or MQ_CONNECTION.  After a timeout or any protocol trouble the connection
 * is closed, so a late ack can never be taken for a later message's
 * (the bookkeeping is mq/confirm_batch.h).
 */

/* MQ_OK, or MQ_CONNECTION (the connection is then closed) with reason. */
enum mq_result mq_conn_send(struct mq_conn *m, const struct mq_message *msg,
                            struct strbuf *reason);

/* Settles slots[0..n-1], the last n messages sent.  Returns MQ_OK when the
 * broker settled all of them (each with its own result), else the reason
 * the rest could not be (their result), with `reason` filled. */
enum mq_result mq_conn_settle(struct mq_conn *m, struct mq_slot *slots,
                              size_t n, struct strbuf *reason);

/* Declares the two exchanges.  0 ok; -1 (connection closed) with reason. */
int mq_conn_declare_exchanges(struct mq_conn *m, struct strbuf *reason)
    __attribute__((warn_unused_result));

/* Declares a consumer's quorum queue, its DLQ and both bindings (docs/API.md
 * §8.1), idempotently.  0 ok; -1 with reason. */
int mq_conn_declare_consumer(struct mq_conn *m, const char *consumer_name,
                             struct strbuf *reason)
    __attribute__((warn_unused_result));

#endif
