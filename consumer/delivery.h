/*
 * consumer/delivery.h — what the consumer program does with each delivery
 * (docs/API.md §9.3):
 *   1. parse it (event.h); poison → basic.reject without requeue (the
 *      broker dead-letters it at once), then report it `failed` when the
 *      event is identifiable;
 *   2. an event_id already processed (state.h) → print "duplicate",
 *      confirm `processed` again, ack;
 *   3. otherwise order it per customer (reorder.h): the next in sequence
 *      (or a late one) is processed now, one ahead of a gap waits — still
 *      unacknowledged — until the gap fills or the gap timeout;
 *   4. processing = print "processed" (output.h), record the id durably,
 *      confirm `processed` (confirm.h), ack.  A confirmation that cannot
 *      get through (the API unreachable, 5xx, 429) → short backoff
 *      (1, 2, 4, 8, 15 s), basic.nack with requeue, so the queue's delivery
 *      limit dead-letters it if the trouble lasts; the redelivery is then
 *      a duplicate that is only confirmed.
 * A key the service refuses is fatal (app_fatal): the message in hand is
 * requeued.
 *
 * The functions returning int return 0 when done (a fatal error is then
 * recorded in a->exit_code) and -1 when the broker connection is gone
 * (the caller reconnects; the broker requeues what was not settled).
 *
 * Ownership: a delivery held for ordering belongs to a->reorder
 * (reorder_free(a->reorder, delivery_free) frees what is left).
 */
#ifndef FC_DELIVERY_H
#define FC_DELIVERY_H

#include "amqp_consume.h"
#include "app.h"

#include <stddef.h>

/* One delivery from the broker; takes its body. */
int delivery_handle(struct app *a, struct amqpc_delivery *d);

/* Processes what the ordering buffer releases for `customer_key` (its gap
 * filled or timed out). */
int delivery_drain(struct app *a, const char *customer_key);

/* Hands every held delivery back to the queue (basic.nack with requeue)
 * and frees it; returns how many went back. */
size_t delivery_requeue_held(struct app *a);

/* Frees every held delivery without settling it: its connection is gone,
 * and the broker requeues it by itself. */
void delivery_forget_held(struct app *a);

/* Frees one held delivery (for reorder_free). */
void delivery_free(void *held);

#endif
