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
 */
#ifndef FI_AMQP_CONN_H
#define FI_AMQP_CONN_H

#include "../core/strbuf.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_EXCHANGE_EVENTS "fintegrate.events"
#define MQ_EXCHANGE_DLX "fintegrate.dlx"
#define MQ_QUEUE_PREFIX "customer_notification_"
#define MQ_DELIVERY_LIMIT 5
#define MQ_MAX_LENGTH 100000

enum mq_result {
    MQ_OK = 0,
    MQ_NACK,       /* the broker could not take it (e.g. queue full) */
    MQ_RETURNED,   /* mandatory and unroutable */
    MQ_TIMEOUT,    /* no confirm in time */
    MQ_CONNECTION, /* could not connect, or the connection/channel broke */
};

struct mq_conn {
    amqp_connection_state_t conn; /* NULL when closed */
    char *url;                    /* owned; holds a password: never logged */
    long timeout_ms;
    uint64_t last_tag; /* delivery tag of the last publish */
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

int mq_conn_init(struct mq_conn *m, const char *url, long timeout_ms)
    __attribute__((warn_unused_result));
void mq_conn_free(struct mq_conn *m);
/* Closes the connection (safe when closed). */
void mq_conn_close(struct mq_conn *m);
bool mq_conn_is_open(const struct mq_conn *m);

/* Opens the connection if it is closed or stale.  MQ_OK or MQ_CONNECTION
 * with the reason appended to `reason`. */
enum mq_result mq_conn_open(struct mq_conn *m, struct strbuf *reason);

/* Publishes (mandatory, persistent) and waits for the confirm. */
enum mq_result mq_conn_publish(struct mq_conn *m, const struct mq_message *msg,
                               struct strbuf *reason);

/* Declares the two exchanges.  0 ok; -1 (connection closed) with reason. */
int mq_conn_declare_exchanges(struct mq_conn *m, struct strbuf *reason)
    __attribute__((warn_unused_result));

/* Declares a consumer's quorum queue, its DLQ and both bindings (API.md
 * section 5), idempotently.  0 ok; -1 with reason. */
int mq_conn_declare_consumer(struct mq_conn *m, const char *consumer_name,
                             struct strbuf *reason)
    __attribute__((warn_unused_result));

/*
 * The confirm bookkeeping of one publish, separated from the socket so it
 * unit-tests without a broker: feed it each method frame that arrives on
 * the channel and it says whether the publish is settled, and how.
 */
struct confirm_wait {
    uint64_t tag;  /* the delivery tag of our publish */
    bool returned; /* a basic.return arrived (the ack that follows does not
                      make it a success) */
};

enum confirm_step {
    CONFIRM_PENDING = 0, /* keep reading */
    CONFIRM_ACKED,       /* settled: stored by the broker */
    CONFIRM_RETURNED,    /* settled: acked, but no queue took it */
    CONFIRM_NACKED,      /* settled: refused */
    CONFIRM_CLOSED,      /* channel or connection closed under us */
};

/* One method frame: AMQP_BASIC_ACK_METHOD / NACK / RETURN / CHANNEL_CLOSE /
 * CONNECTION_CLOSE (others are ignored).  `delivery_tag` and `multiple`
 * come from ack/nack frames. */
enum confirm_step confirm_on_frame(struct confirm_wait *w, uint32_t method,
                                   uint64_t delivery_tag, bool multiple);

/* The metric label of a failure: "nack", "returned", "timeout",
 * "connection". */
const char *mq_result_label(enum mq_result r);

#endif
