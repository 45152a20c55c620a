/*
 * fcgi-app/mq/confirm_batch.c — see confirm_batch.h.
 */
#include "confirm_batch.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <string.h>

const char *
mq_result_label(enum mq_result r)
{
    switch (r) {
    case MQ_OK:
        return "ok";
    case MQ_NACK:
        return "nack";
    case MQ_RETURNED:
        return "returned";
    case MQ_TIMEOUT:
        return "timeout";
    case MQ_CONNECTION:
        return "connection";
    }
    return "connection";
}

void
confirm_batch_init(struct confirm_batch *b, struct mq_slot *slots, size_t n,
                   uint64_t first_tag)
{
    b->slots = slots;
    b->n = n;
    b->first_tag = first_tag;
    b->left = n;
    for (size_t i = 0; i < n; i++) {
        slots[i].settled = false;
        slots[i].returned = false;
        slots[i].result = MQ_TIMEOUT;
    }
}

static void
settle(struct confirm_batch *b, size_t i, enum mq_result r)
{
    if (b->slots[i].settled)
        return;
    b->slots[i].settled = true;
    b->slots[i].result = r;
    b->left--;
}

/* Settles the slots an ack or nack covers: its own tag, or with
 * `multiple` every tag up to it (a watermark). */
static void
settle_tags(struct confirm_batch *b, uint64_t tag, bool multiple, bool ack)
{
    if (tag < b->first_tag)
        return; /* a tag of an earlier batch */
    uint64_t last = tag - b->first_tag;
    if (last >= b->n)
        last = b->n - 1; /* beyond ours: cannot be, but stay in bounds */
    uint64_t first = multiple ? 0 : last;
    for (uint64_t i = first; i <= last; i++) {
        enum mq_result r = MQ_NACK;
        if (ack)
            r = b->slots[i].returned ? MQ_RETURNED : MQ_OK;
        settle(b, (size_t)i, r);
    }
}

enum confirm_step
confirm_batch_on_frame(struct confirm_batch *b, uint32_t method,
                       uint64_t delivery_tag, bool multiple,
                       const char *returned_id)
{
    switch (method) {
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD:
        if (b->n > 0 && delivery_tag - b->first_tag < b->n)
            settle_tags(b, delivery_tag, multiple,
                        method == AMQP_BASIC_ACK_METHOD);
        else if (b->n > 0 && multiple && delivery_tag >= b->first_tag)
            /* beyond the batch (the first test ruled out tags inside it;
             * written without first_tag + n, which can wrap) */
            settle_tags(b, b->first_tag + b->n - 1, true,
                        method == AMQP_BASIC_ACK_METHOD);
        break;
    case AMQP_BASIC_RETURN_METHOD:
        /* The ack of the returned message still follows; mark it so that
         * the ack does not count as a success. */
        for (size_t i = 0; returned_id != NULL && i < b->n; i++)
            if (!b->slots[i].settled && !b->slots[i].returned &&
                b->slots[i].message_id != NULL &&
                strcmp(b->slots[i].message_id, returned_id) == 0) {
                b->slots[i].returned = true;
                break;
            }
        break;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        return CONFIRM_CLOSED;
    default:
        break;
    }
    return b->left == 0 ? CONFIRM_DONE : CONFIRM_PENDING;
}

void
confirm_batch_settle_rest(struct confirm_batch *b, enum mq_result r)
{
    for (size_t i = 0; i < b->n; i++)
        settle(b, i, r);
}
