/*
 * consumer/amqp_consume.h — the consumer program's side of RabbitMQ
 * (librabbitmq 0.11): one connection, one channel, one basic.consume with
 * manual acknowledgements and a prefetch, on a consumer's quorum queue.
 *
 * The queue and its dead-letter queue belong to the service (declared when
 * the consumer is created, docs/API.md §8.1); this module only consumes,
 * so a missing queue is an error the caller retries, not something it
 * declares with arguments of its own.
 *
 * Heartbeats (AMQPC_HEARTBEAT_S) are on: the program spends its idle time
 * inside amqpc_next, where librabbitmq answers them, and the longest time
 * it spends elsewhere (a confirmation plus its backoff) stays well below
 * two intervals.  A dead broker is then noticed even when the TCP
 * connection does not break.
 *
 * Several nodes: the URL may be a comma-separated list of the nodes of one
 * cluster (common/amqp_urls.h).  amqpc_connect tries them in turn,
 * starting at the node after the one it was last connected to, so after a
 * lost connection the node that was lost is tried last; the caller's
 * reconnect loop (with its back-off) thus cycles through the list.
 *
 * Ownership: struct amqpc is the caller's; amqpc_init copies the strings
 * (the URL holds a password and is never logged: `where` gives the
 * loggable host:port).  A delivery's body is owned by the caller
 * (amqpc_delivery_free).  Delivery tags are valid only on the connection
 * that delivered them: after AMQPC_LOST every tag is gone (the broker
 * requeues those messages itself).
 */
#ifndef FC_AMQP_CONSUME_H
#define FC_AMQP_CONSUME_H

#include "common/strbuf.h"
#include "common/amqp_urls.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMQPC_HEARTBEAT_S 30

struct amqpc {
    amqp_connection_state_t conn; /* NULL when closed */
    struct amqp_nodes nodes;      /* owned; secret-bearing */
    size_t next;                  /* the node the next connect starts at */
    char *queue;                  /* owned */
    char *connection_name;        /* owned; shown in the management UI */
    char consumer_tag[128];
    /* For logs, never a secret: "host:port" of the node connected to (or
     * last tried), or every node's after a connect that found none. */
    const char *where; /* borrowed from nodes */
    int prefetch;
};

struct amqpc_delivery {
    uint64_t tag;
    char *body; /* owned, NUL-terminated (the body may hold NULs too) */
    size_t len;
    char message_id[64]; /* "" when absent or too long */
    bool redelivered;
    long delivery_count; /* x-delivery-count (quorum queues), 0 if none */
};

enum amqpc_event {
    AMQPC_DELIVERY, /* *d filled */
    AMQPC_IDLE,     /* nothing within the timeout */
    AMQPC_LOST,     /* the connection or channel is gone; reason given */
};

/* Copies the strings and parses the node list.  0 ok, -1 out of memory or
 * a list that does not parse (reason appended: it names
 * FINTEGRATE_AMQP_URL and the item's position, never the item). */
int amqpc_init(struct amqpc *c, const char *url, const char *queue,
               const char *connection_name, int prefetch, struct strbuf *reason)
    __attribute__((warn_unused_result));
/* Closes (politely) and frees; safe to call twice. */
void amqpc_free(struct amqpc *c);

bool amqpc_is_open(const struct amqpc *c);

/* Connects to one node that answers (see above), logs in, opens the
 * channel, sets the prefetch and starts consuming.  Each node costs at
 * most the RPC timeout.  0 ok; -1 with the reason, naming each node tried
 * by host:port when there are several (connection closed again). */
int amqpc_connect(struct amqpc *c, struct strbuf *reason)
    __attribute__((warn_unused_result));

/* Waits up to timeout_ms for the next delivery. */
enum amqpc_event amqpc_next(struct amqpc *c, long timeout_ms,
                            struct amqpc_delivery *d, struct strbuf *reason);
void amqpc_delivery_free(struct amqpc_delivery *d);

/* Settle one delivery: ack; nack with requeue (transient trouble: the
 * queue's delivery limit eventually dead-letters it); reject without
 * requeue (poison: the broker dead-letters it at once).  0 ok, -1 when the
 * connection is gone (it is then closed; the broker requeues). */
int amqpc_ack(struct amqpc *c, uint64_t tag)
    __attribute__((warn_unused_result));
int amqpc_requeue(struct amqpc *c, uint64_t tag)
    __attribute__((warn_unused_result));
int amqpc_reject(struct amqpc *c, uint64_t tag)
    __attribute__((warn_unused_result));

/* Stops deliveries (basic.cancel) so nothing new arrives while the caller
 * returns what it holds.  0 ok, -1 connection gone. */
int amqpc_cancel(struct amqpc *c) __attribute__((warn_unused_result));

/* Closes channel and connection politely (unacknowledged messages go back
 * to the queue); safe when closed. */
void amqpc_close(struct amqpc *c);
/* Drops the connection without a handshake (after an error). */
void amqpc_drop(struct amqpc *c);

#endif
