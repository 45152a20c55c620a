/*
 * fcgi-app/outbox/order.c — see order.h.
 */
#include "order.h"

#include <stdlib.h>
#include <string.h>

struct by_key {
    const char *key;
    size_t index;
};

static int
cmp_by_key(const void *a, const void *b)
{
    const struct by_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

int
order_link(struct order_item *items, size_t n)
{
    if (n == 0)
        return 0;
    struct by_key *sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sorted[i].key = items[i].key;
        sorted[i].index = i;
        items[i].prev = -1;
    }
    qsort(sorted, n, sizeof *sorted, cmp_by_key);
    for (size_t i = 1; i < n; i++)
        if (strcmp(sorted[i].key, sorted[i - 1].key) == 0)
            items[sorted[i].index].prev = (long)sorted[i - 1].index;
    free(sorted);
    return 0;
}

/* Whether item i may never go out in this batch. */
static bool
blocked(const struct order_item *items, const struct order_item *it)
{
    if (it->prev < 0)
        return it->prev_pending > 0; /* pending outside the batch */
    const struct order_item *p = &items[it->prev];
    if (p->state == ORDER_FAILED || p->state == ORDER_HELD ||
        p->state == ORDER_SKIPPED)
        return true;
    /* Something pending between the two, outside the batch (a filter or
     * another node left it out). */
    return it->prev_pending > 0 && it->prev_pending != p->sequence;
}

size_t
order_next_wave(struct order_item *items, size_t n, size_t *wave)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        struct order_item *it = &items[i];
        if (it->state != ORDER_UNPLANNED)
            continue;
        if (blocked(items, it)) {
            it->state = ORDER_HELD;
            continue;
        }
        if (it->prev >= 0 && items[it->prev].state != ORDER_OK)
            continue; /* its predecessor goes in this wave or is waiting */
        it->state = ORDER_SENDING;
        wave[count++] = i;
    }
    return count;
}
