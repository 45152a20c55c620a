/*
 * consumer/reorder.h — the consumer program's per-customer ordering buffer.
 *
 * Events of one customer carry a gapless `sequence` (1, 2, 3 …).  An event
 * that arrives ahead of a missing earlier one is held here until the gap
 * fills, or until it has waited the gap timeout, whichever comes first.
 * Events without a customer (consumer and key events) form one sequence of
 * their own: the caller passes "" as their key.
 *
 * Pure bookkeeping: no I/O, no clock (the caller passes now_ms, a monotonic
 * millisecond count), no knowledge of what an item is.  The caller keeps
 * the "last processed sequence" of each key (consumer/state.h) and passes
 * it in, so this buffer never disagrees with what was persisted.
 *
 * Release rule: a key's lowest held item is released when its sequence is
 * at most last_done + 1 (the gap filled, or it is a copy of something
 * already passed), or when the *oldest* item held for that key has waited
 * gap_timeout_ms (then it is released "after a gap", and so are the ones
 * behind it, one call at a time).  So no item waits much longer than the
 * gap timeout, and items of one key leave in sequence order.
 *
 * Ownership: a held item belongs to the buffer until a release or
 * reorder_take_any hands it back; reorder_free(r, fn) calls fn on any still
 * held.  Keys are copied.
 */
#ifndef FC_REORDER_H
#define FC_REORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys are customer UUIDs (36 characters) or "": anything shorter than
 * this fits. */
#define REORDER_KEY_MAX 64

struct reorder;

enum reorder_verdict {
    REORDER_NOW,   /* seq == last_done + 1: process it now */
    REORDER_LATE,  /* seq <= last_done: its place in the order has passed
                      (a duplicate, or an event skipped after a gap); process
                      it now */
    REORDER_HELD,  /* ahead of a gap: the buffer owns the item now */
    REORDER_ERROR, /* out of memory, or key too long: not kept */
};

struct reorder_out {
    void *item; /* the caller's again */
    int64_t seq;
    bool after_gap;    /* released by the timeout, not by the gap filling */
    int64_t gap_first; /* when after_gap: the missing sequences, inclusive */
    int64_t gap_last;
};

/* NULL on out of memory.  gap_timeout_ms >= 0 (0: never wait). */
struct reorder *reorder_new(long gap_timeout_ms);
/* Calls free_item (may be NULL) on every item still held, then frees r.
 * Safe on NULL. */
void reorder_free(struct reorder *r, void (*free_item)(void *item));

/* Decides what to do with an event of `key` with `seq`, given the last
 * sequence processed for that key (0 when none).  Only REORDER_HELD keeps
 * `item`. */
enum reorder_verdict reorder_offer(struct reorder *r, const char *key,
                                   int64_t seq, int64_t last_done,
                                   uint64_t now_ms, void *item);

/* Hands back the next item of `key` that may be processed now (see the
 * release rule above) and returns true; false when there is none.  Call it
 * again after processing each released item. */
bool reorder_release(struct reorder *r, const char *key, int64_t last_done,
                     uint64_t now_ms, struct reorder_out *out);

/* Copies into key_out a key whose oldest held item has waited the gap
 * timeout and returns true; false when none has. */
bool reorder_expired_key(const struct reorder *r, uint64_t now_ms,
                         char key_out[REORDER_KEY_MAX]);

/* Milliseconds until the next key times out (0 when one already has); -1
 * when nothing is held. */
long reorder_next_timeout_ms(const struct reorder *r, uint64_t now_ms);

/* Items held, over all keys. */
size_t reorder_held(const struct reorder *r);

/* Removes and returns any held item (to return them all at shutdown or
 * when the connection that delivered them is gone); NULL when empty. */
void *reorder_take_any(struct reorder *r);

#endif
