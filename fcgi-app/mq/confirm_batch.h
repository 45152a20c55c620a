/*
 * fcgi-app/mq/confirm_batch.h — the publisher-confirm bookkeeping of a
 * pipelined batch, separated from the socket (mq/amqp_conn.c reads the
 * frames) so it unit-tests and fuzzes without a broker: feed it each
 * method frame that arrives on the channel and it settles the slots the
 * frame covers.  Also what a publish comes to (enum mq_result).
 *
 * Pure: no I/O, no allocation; the slots are the caller's.
 */
#ifndef FI_CONFIRM_BATCH_H
#define FI_CONFIRM_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mq_result {
    MQ_OK = 0,
    MQ_NACK,       /* the broker could not take it (e.g. queue full) */
    MQ_RETURNED,   /* mandatory and unroutable */
    MQ_TIMEOUT,    /* no confirm in time */
    MQ_CONNECTION, /* could not connect, or the connection/channel broke */
};

/* One message of a batch, in the order sent. */
struct mq_slot {
    const char *message_id; /* borrowed: how a basic.return names it */
    enum mq_result result;  /* valid once settled */
    bool settled;
    bool returned; /* a basic.return named it: its ack makes MQ_RETURNED */
};

struct confirm_batch {
    struct mq_slot *slots;
    size_t n;
    uint64_t first_tag; /* delivery tag of slots[0]; slot i has first_tag+i */
    size_t left;        /* slots not settled yet */
};

enum confirm_step {
    CONFIRM_PENDING = 0, /* keep reading */
    CONFIRM_DONE,        /* every slot settled */
    CONFIRM_CLOSED,      /* channel or connection closed under us */
};

void confirm_batch_init(struct confirm_batch *b, struct mq_slot *slots,
                        size_t n, uint64_t first_tag);

/* One method frame: AMQP_BASIC_ACK_METHOD / NACK / RETURN / CHANNEL_CLOSE /
 * CONNECTION_CLOSE (others are ignored).  `delivery_tag` and `multiple`
 * come from ack/nack frames; `returned_id` is the message_id of a
 * basic.return's message (NULL otherwise). */
enum confirm_step confirm_batch_on_frame(struct confirm_batch *b,
                                         uint32_t method, uint64_t delivery_tag,
                                         bool multiple,
                                         const char *returned_id);

/* Settles every slot not settled yet with `r` (the wait ended without
 * them). */
void confirm_batch_settle_rest(struct confirm_batch *b, enum mq_result r);

/* The metric label of a failure: "nack", "returned", "timeout",
 * "connection". */
const char *mq_result_label(enum mq_result r);

#endif
