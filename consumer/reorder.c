/*
 * consumer/reorder.c — see reorder.h.
 *
 * The buffer holds at most the broker's prefetch of items (they are all
 * unacknowledged deliveries), so plain linked lists are enough: a list of
 * keys, each with its items sorted by sequence (equal sequences keep their
 * arrival order).
 */
#include "reorder.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct node {
    int64_t seq;
    uint64_t since_ms; /* when it was offered */
    void *item;
    struct node *next;
};

struct bucket {
    char key[REORDER_KEY_MAX];
    struct node *head; /* lowest sequence first; never NULL */
    struct bucket *next;
};

struct reorder {
    long gap_timeout_ms;
    struct bucket *buckets;
    size_t held;
};

struct reorder *
reorder_new(long gap_timeout_ms)
{
    struct reorder *r = calloc(1, sizeof *r);
    if (r != NULL)
        r->gap_timeout_ms = gap_timeout_ms < 0 ? 0 : gap_timeout_ms;
    return r;
}

void
reorder_free(struct reorder *r, void (*free_item)(void *item))
{
    if (r == NULL)
        return;
    void *item;
    while ((item = reorder_take_any(r)) != NULL)
        if (free_item != NULL)
            free_item(item);
    free(r);
}

static struct bucket **
find(struct reorder *r, const char *key)
{
    struct bucket **b = &r->buckets;
    while (*b != NULL && strcmp((*b)->key, key) != 0)
        b = &(*b)->next;
    return b;
}

/* seq <= last_done + 1, without computing last_done + 1 (INT64_MAX is a
 * sequence a message may carry: the next one cannot exist). */
static bool
is_due(int64_t seq, int64_t last_done)
{
    return seq <= last_done || seq - 1 == last_done;
}

enum reorder_verdict
reorder_offer(struct reorder *r, const char *key, int64_t seq,
              int64_t last_done, uint64_t now_ms, void *item)
{
    if (seq <= last_done)
        return REORDER_LATE;
    if (is_due(seq, last_done))
        return REORDER_NOW;
    if (strlen(key) >= REORDER_KEY_MAX)
        return REORDER_ERROR;

    struct node *n = malloc(sizeof *n);
    if (n == NULL)
        return REORDER_ERROR;
    n->seq = seq;
    n->since_ms = now_ms;
    n->item = item;
    n->next = NULL;

    struct bucket **bp = find(r, key);
    if (*bp == NULL) {
        struct bucket *b = calloc(1, sizeof *b);
        if (b == NULL) {
            free(n);
            return REORDER_ERROR;
        }
        memcpy(b->key, key, strlen(key) + 1);
        b->head = n;
        *bp = b;
    } else {
        /* after every node with seq <= ours: equal sequences stay in
         * arrival order */
        struct node **p = &(*bp)->head;
        while (*p != NULL && (*p)->seq <= seq)
            p = &(*p)->next;
        n->next = *p;
        *p = n;
    }
    r->held++;
    return REORDER_HELD;
}

static uint64_t
oldest_since(const struct bucket *b)
{
    uint64_t t = b->head->since_ms;
    for (const struct node *n = b->head->next; n != NULL; n = n->next)
        if (n->since_ms < t)
            t = n->since_ms;
    return t;
}

static bool
timed_out(const struct reorder *r, const struct bucket *b, uint64_t now_ms)
{
    uint64_t since = oldest_since(b);
    return now_ms >= since && now_ms - since >= (uint64_t)r->gap_timeout_ms;
}

bool
reorder_release(struct reorder *r, const char *key, int64_t last_done,
                uint64_t now_ms, struct reorder_out *out)
{
    struct bucket **bp = find(r, key);
    struct bucket *b = *bp;
    if (b == NULL)
        return false;
    struct node *n = b->head;
    bool in_order = is_due(n->seq, last_done);
    if (!in_order && !timed_out(r, b, now_ms))
        return false;

    out->item = n->item;
    out->seq = n->seq;
    out->after_gap = !in_order;
    out->gap_first = in_order ? 0 : last_done + 1;
    out->gap_last = in_order ? 0 : n->seq - 1;

    b->head = n->next;
    free(n);
    r->held--;
    if (b->head == NULL) {
        *bp = b->next;
        free(b);
    }
    return true;
}

bool
reorder_expired_key(const struct reorder *r, uint64_t now_ms,
                    char key_out[REORDER_KEY_MAX])
{
    for (const struct bucket *b = r->buckets; b != NULL; b = b->next) {
        if (timed_out(r, b, now_ms)) {
            memcpy(key_out, b->key, strlen(b->key) + 1);
            return true;
        }
    }
    return false;
}

long
reorder_next_timeout_ms(const struct reorder *r, uint64_t now_ms)
{
    long best = -1;
    for (const struct bucket *b = r->buckets; b != NULL; b = b->next) {
        /* as timed_out() counts, without wrapping near UINT64_MAX */
        uint64_t since = oldest_since(b);
        uint64_t timeout = (uint64_t)r->gap_timeout_ms, rest;
        if (now_ms >= since) {
            uint64_t waited = now_ms - since;
            rest = waited >= timeout ? 0 : timeout - waited;
        } else { /* offered "later" than now: not due before since */
            uint64_t ahead = since - now_ms;
            rest = ahead > UINT64_MAX - timeout ? UINT64_MAX : ahead + timeout;
        }
        long left = rest > (uint64_t)LONG_MAX ? LONG_MAX : (long)rest;
        if (best < 0 || left < best)
            best = left;
    }
    return best;
}

size_t
reorder_held(const struct reorder *r)
{
    return r->held;
}

void *
reorder_take_any(struct reorder *r)
{
    struct bucket *b = r->buckets;
    if (b == NULL)
        return NULL;
    struct node *n = b->head;
    void *item = n->item;
    b->head = n->next;
    free(n);
    r->held--;
    if (b->head == NULL) {
        r->buckets = b->next;
        free(b);
    }
    return item;
}
