/*
 * fcgi-app/outbox/order.h — per-customer order kept by the publisher
 * (docs/API.md §7.3): an event is never published while an earlier event
 * of its customer is still pending.
 *
 * A batch (or a request's committed events) is planned in waves.  Each wave
 * holds at most one event per customer, the next one in sequence; the
 * caller publishes a wave pipelined, settles its confirms, marks each event
 * OK or FAILED, and asks for the next wave.  An event whose earlier event
 * failed, was held or skipped in this batch, or is pending outside the batch
 * (another node holds it, a filter left it out, its back-off is not over),
 * is HELD.  Pure: no database, no broker, unit-tested.
 */
#ifndef FI_ORDER_H
#define FI_ORDER_H

#include <stdbool.h>
#include <stddef.h>

enum order_state {
    ORDER_UNPLANNED = 0, /* not planned yet */
    ORDER_SENDING,       /* in the current wave */
    ORDER_OK,            /* published */
    ORDER_FAILED,        /* tried, not published */
    ORDER_HELD,          /* not tried: an earlier event is pending */
    ORDER_SKIPPED,       /* not tried, not counted as held (max_try_count) */
};

struct order_item {
    const char *key;        /* customer_id (or the nil UUID): borrowed */
    long long sequence;     /* within the key */
    long long prev_pending; /* the key's latest pending sequence before this
                               event when the batch was read; 0 none */
    enum order_state state;
    long prev; /* index of the key's previous item in the batch, or -1 */
};

/* Links each item to the previous item of its key (items are in batch
 * order: created_at, so sequence order within a key).  0, or -1 out of
 * memory. */
int order_link(struct order_item *items, size_t n);

/*
 * Plans the next wave: marks HELD what can no longer go out, moves the
 * items that may go now to SENDING and writes their indices to
 * wave[0..return-1] (wave has room for n).  Returns 0 when nothing is left
 * to send.
 */
size_t order_next_wave(struct order_item *items, size_t n, size_t *wave);

#endif
