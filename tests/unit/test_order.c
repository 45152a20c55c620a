/*
 * tests/unit/test_order.c — outbox/order.h, the per-customer order planner
 * of the publisher (docs/API.md §7.3): order_link() links each item to the
 * previous item of its key, comparing keys by content (equal strings in
 * different buffers are one key, a prefix is another); order_next_wave()
 * puts events of different customers in the same wave, at most one per
 * customer, and an event only once its predecessor in the batch is
 * ORDER_OK; a FAILED, HELD or SKIPPED predecessor makes every later event
 * of the key HELD (never returned); prev_pending says what is pending
 * outside the batch: > 0 with no predecessor in the batch is HELD at once,
 * equal to the predecessor's sequence waits for it, any other value (a gap
 * outside the batch) is HELD; interleaved customers keep per-key order over
 * the waves; n = 0; a 10000-item batch of 100 keys finishes in exactly
 * (events per key) waves with every item OK.  Every plan is driven through
 * a checker that asserts the invariants on each wave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "outbox/order.h"

/* An item of key `key` with sequence `seq` and prev_pending `pp`; prev is
 * garbage until order_link(). */
static struct order_item
item(const char *key, long long seq, long long pp)
{
    struct order_item it = {.key = key,
                            .sequence = seq,
                            .prev_pending = pp,
                            .state = ORDER_UNPLANNED,
                            .prev = 12345};
    return it;
}

/* One wave, checked: the indices are distinct, in range, were unplanned before
 * and are SENDING now, at most one per key, and each one's predecessor in
 * the batch (if any) is OK.  Returns its size; wave[] holds it. */
static size_t
next_wave(struct order_item *items, size_t n, size_t *wave)
{
    enum order_state *before = malloc((n ? n : 1) * sizeof *before);
    assert_non_null(before);
    for (size_t i = 0; i < n; i++)
        before[i] = items[i].state;
    size_t count = order_next_wave(items, n, wave);
    assert_true(count <= n);
    for (size_t w = 0; w < count; w++) {
        size_t i = wave[w];
        assert_true(i < n);
        assert_int_equal(before[i], ORDER_UNPLANNED);
        assert_int_equal(items[i].state, ORDER_SENDING);
        if (items[i].prev >= 0)
            assert_int_equal(items[items[i].prev].state, ORDER_OK);
        for (size_t v = 0; v < w; v++) {
            assert_true(wave[v] != i);
            assert_string_not_equal(items[wave[v]].key, items[i].key);
        }
    }
    /* nothing else moved to SENDING, and nothing settled changed */
    for (size_t i = 0; i < n; i++) {
        if (items[i].state == ORDER_SENDING && before[i] == ORDER_UNPLANNED) {
            bool in_wave = false;
            for (size_t w = 0; w < count; w++)
                in_wave |= wave[w] == i;
            assert_true(in_wave);
        }
        if (before[i] != ORDER_UNPLANNED)
            assert_int_equal(items[i].state, before[i]);
    }
    free(before);
    return count;
}

/* Marks every item of the wave `s`. */
static void
mark(struct order_item *items, const size_t *wave, size_t count,
     enum order_state s)
{
    for (size_t w = 0; w < count; w++)
        items[wave[w]].state = s;
}

static void
assert_wave(const size_t *wave, size_t count, const size_t *want,
            size_t want_count)
{
    assert_int_equal(count, want_count);
    for (size_t k = 0; k < want_count; k++) {
        bool found = false;
        for (size_t w = 0; w < count; w++)
            found |= wave[w] == want[k];
        assert_true(found);
    }
}

#define WAVE(...)                                                              \
    (const size_t[]){__VA_ARGS__},                                             \
        sizeof((const size_t[]){__VA_ARGS__}) / sizeof(size_t)

static void
test_link_sets_prev(void **state)
{
    (void)state;
    struct order_item it[6] = {
        item("A", 1, 0), item("B", 1, 0), item("A", 2, 1),
        item("C", 1, 0), item("B", 2, 1), item("A", 3, 2),
    };
    assert_int_equal(order_link(it, 6), 0);
    assert_int_equal(it[0].prev, -1);
    assert_int_equal(it[1].prev, -1);
    assert_int_equal(it[2].prev, 0);
    assert_int_equal(it[3].prev, -1);
    assert_int_equal(it[4].prev, 1);
    assert_int_equal(it[5].prev, 2);
}

static void
test_link_compares_keys_by_content(void **state)
{
    (void)state;
    /* Each key in a buffer of its own, as the database hands them out. */
    char k0[40], k1[40], k2[40], k3[40], k4[40];
    strcpy(k0, "3f2b8c1e-0000-4000-8000-000000000001");
    strcpy(k1, "3f2b8c1e-0000-4000-8000-000000000002");
    strcpy(k2, "3f2b8c1e-0000-4000-8000-000000000001");
    strcpy(k3, "3f2b8c1e-0000-4000-8000-00000000000"); /* a prefix of k0 */
    strcpy(k4, "3f2b8c1e-0000-4000-8000-000000000001");
    struct order_item it[5] = {
        item(k0, 1, 0), item(k1, 1, 0), item(k2, 2, 1),
        item(k3, 1, 0), item(k4, 3, 2),
    };
    assert_int_equal(order_link(it, 5), 0);
    assert_int_equal(it[0].prev, -1);
    assert_int_equal(it[1].prev, -1);
    assert_int_equal(it[2].prev, 0);
    assert_int_equal(it[3].prev, -1);
    assert_int_equal(it[4].prev, 2);
}

static void
test_different_customers_all_in_wave_one(void **state)
{
    (void)state;
    struct order_item it[4] = {
        item("A", 5, 0),
        item("B", 1, 0),
        item("C", 9, 0),
        item("00000000-0000-0000-0000-000000000000", 2, 0),
    };
    size_t wave[4];
    assert_int_equal(order_link(it, 4), 0);
    size_t c = next_wave(it, 4, wave);
    assert_wave(wave, c, WAVE(0, 1, 2, 3));
    mark(it, wave, c, ORDER_OK);
    assert_int_equal(next_wave(it, 4, wave), 0);
}

static void
test_one_customer_two_waves(void **state)
{
    (void)state;
    struct order_item it[2] = {item("A", 1, 0), item("A", 2, 1)};
    size_t wave[2];
    assert_int_equal(order_link(it, 2), 0);
    size_t c = next_wave(it, 2, wave);
    assert_wave(wave, c, WAVE(0));
    assert_int_equal(it[1].state, ORDER_UNPLANNED);
    /* asked again before the first is settled: the second still waits */
    assert_int_equal(next_wave(it, 2, wave), 0);
    assert_int_equal(it[1].state, ORDER_UNPLANNED);
    it[0].state = ORDER_OK;
    c = next_wave(it, 2, wave);
    assert_wave(wave, c, WAVE(1));
    it[1].state = ORDER_OK;
    assert_int_equal(next_wave(it, 2, wave), 0);
}

static void
test_failed_predecessor_holds_the_rest(void **state)
{
    (void)state;
    struct order_item it[5] = {
        item("A", 1, 0), item("B", 1, 0), item("A", 2, 1),
        item("B", 2, 1), item("A", 3, 2),
    };
    size_t wave[5];
    assert_int_equal(order_link(it, 5), 0);
    size_t c = next_wave(it, 5, wave);
    assert_wave(wave, c, WAVE(0, 1));
    it[0].state = ORDER_FAILED;
    it[1].state = ORDER_OK;
    c = next_wave(it, 5, wave);
    assert_wave(wave, c, WAVE(3)); /* B2 only */
    assert_int_equal(it[2].state, ORDER_HELD);
    assert_int_equal(it[4].state, ORDER_HELD);
    it[3].state = ORDER_OK;
    assert_int_equal(next_wave(it, 5, wave), 0);
    assert_int_equal(next_wave(it, 5, wave), 0);
    assert_int_equal(it[0].state, ORDER_FAILED);
    assert_int_equal(it[2].state, ORDER_HELD);
    assert_int_equal(it[4].state, ORDER_HELD);
}

static void
test_failure_in_the_middle(void **state)
{
    (void)state;
    struct order_item it[4] = {item("A", 1, 0), item("A", 2, 1),
                               item("A", 3, 2), item("A", 4, 3)};
    size_t wave[4];
    assert_int_equal(order_link(it, 4), 0);
    size_t c = next_wave(it, 4, wave);
    assert_wave(wave, c, WAVE(0));
    it[0].state = ORDER_OK;
    c = next_wave(it, 4, wave);
    assert_wave(wave, c, WAVE(1));
    it[1].state = ORDER_FAILED;
    assert_int_equal(next_wave(it, 4, wave), 0);
    assert_int_equal(it[0].state, ORDER_OK);
    assert_int_equal(it[2].state, ORDER_HELD);
    assert_int_equal(it[3].state, ORDER_HELD);
}

static void
test_skipped_predecessor_holds_the_rest(void **state)
{
    (void)state;
    /* The caller leaves A1 out (max_try_count) before planning. */
    struct order_item it[4] = {item("A", 1, 0), item("A", 2, 1),
                               item("A", 3, 2), item("B", 1, 0)};
    size_t wave[4];
    assert_int_equal(order_link(it, 4), 0);
    it[0].state = ORDER_SKIPPED;
    size_t c = next_wave(it, 4, wave);
    assert_wave(wave, c, WAVE(3));
    assert_int_equal(it[0].state, ORDER_SKIPPED);
    assert_int_equal(it[1].state, ORDER_HELD);
    assert_int_equal(it[2].state, ORDER_HELD);
    it[3].state = ORDER_OK;
    assert_int_equal(next_wave(it, 4, wave), 0);
}

static void
test_held_predecessor_holds_the_rest(void **state)
{
    (void)state;
    /* An item the caller marked HELD itself holds its successors too. */
    struct order_item it[3] = {item("A", 1, 0), item("A", 2, 1),
                               item("A", 3, 2)};
    size_t wave[3];
    assert_int_equal(order_link(it, 3), 0);
    it[0].state = ORDER_HELD;
    assert_int_equal(next_wave(it, 3, wave), 0);
    assert_int_equal(it[1].state, ORDER_HELD);
    assert_int_equal(it[2].state, ORDER_HELD);
}

static void
test_pending_outside_batch_is_held(void **state)
{
    (void)state;
    /* A7 is the first of A in the batch but A6 is pending elsewhere; its
     * successor goes down with it.  B is untouched. */
    struct order_item it[3] = {item("A", 7, 6), item("B", 1, 0),
                               item("A", 8, 7)};
    size_t wave[3];
    assert_int_equal(order_link(it, 3), 0);
    size_t c = next_wave(it, 3, wave);
    assert_wave(wave, c, WAVE(1));
    assert_int_equal(it[0].state, ORDER_HELD);
    assert_int_equal(it[2].state, ORDER_HELD);
    it[1].state = ORDER_OK;
    assert_int_equal(next_wave(it, 3, wave), 0);
}

static void
test_pending_equal_to_predecessor_waits(void **state)
{
    (void)state;
    /* A with gaps in its sequences (a published event in between), but
     * each prev_pending is the predecessor in the batch. */
    struct order_item it[3] = {item("A", 10, 0), item("A", 12, 10),
                               item("A", 15, 12)};
    size_t wave[3];
    assert_int_equal(order_link(it, 3), 0);
    for (size_t k = 0; k < 3; k++) {
        size_t c = next_wave(it, 3, wave);
        assert_wave(wave, c, &k, 1);
        for (size_t j = k + 1; j < 3; j++)
            assert_int_equal(it[j].state, ORDER_UNPLANNED);
        it[k].state = ORDER_OK;
    }
    assert_int_equal(next_wave(it, 3, wave), 0);
}

static void
test_gap_outside_batch_is_held(void **state)
{
    (void)state;
    /* A12 pending but left out of the batch (a filter, another node)
     * between A10 and A14: A14 and after are held, A10 still goes. */
    struct order_item it[3] = {item("A", 10, 0), item("A", 14, 12),
                               item("A", 15, 14)};
    size_t wave[3];
    assert_int_equal(order_link(it, 3), 0);
    size_t c = next_wave(it, 3, wave);
    assert_wave(wave, c, WAVE(0));
    assert_int_equal(it[1].state, ORDER_HELD); /* at once */
    assert_int_equal(it[2].state, ORDER_HELD);
    it[0].state = ORDER_OK;
    assert_int_equal(next_wave(it, 3, wave), 0);
    assert_int_equal(it[1].state, ORDER_HELD);
}

static void
test_interleaved_customers(void **state)
{
    (void)state;
    /* A1 B1 A2 C1 B2 A3 */
    struct order_item it[6] = {
        item("A", 1, 0), item("B", 1, 0), item("A", 2, 1),
        item("C", 1, 0), item("B", 2, 1), item("A", 3, 2),
    };
    size_t wave[6];
    assert_int_equal(order_link(it, 6), 0);
    size_t c = next_wave(it, 6, wave);
    assert_wave(wave, c, WAVE(0, 1, 3));
    mark(it, wave, c, ORDER_OK);
    c = next_wave(it, 6, wave);
    assert_wave(wave, c, WAVE(2, 4));
    mark(it, wave, c, ORDER_OK);
    c = next_wave(it, 6, wave);
    assert_wave(wave, c, WAVE(5));
    mark(it, wave, c, ORDER_OK);
    assert_int_equal(next_wave(it, 6, wave), 0);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(it[i].state, ORDER_OK);
}

static void
test_interleaved_with_a_failure(void **state)
{
    (void)state;
    /* A1 B1 A2 C1 B2 A3 with B1 failing: B2 held, A and C carry on. */
    struct order_item it[6] = {
        item("A", 1, 0), item("B", 1, 0), item("A", 2, 1),
        item("C", 1, 0), item("B", 2, 1), item("A", 3, 2),
    };
    size_t wave[6];
    assert_int_equal(order_link(it, 6), 0);
    size_t c = next_wave(it, 6, wave);
    assert_wave(wave, c, WAVE(0, 1, 3));
    mark(it, wave, c, ORDER_OK);
    it[1].state = ORDER_FAILED;
    c = next_wave(it, 6, wave);
    assert_wave(wave, c, WAVE(2));
    assert_int_equal(it[4].state, ORDER_HELD);
    mark(it, wave, c, ORDER_OK);
    c = next_wave(it, 6, wave);
    assert_wave(wave, c, WAVE(5));
    mark(it, wave, c, ORDER_OK);
    assert_int_equal(next_wave(it, 6, wave), 0);
}

static void
test_empty_batch(void **state)
{
    (void)state;
    struct order_item it[1] = {item("A", 1, 0)};
    size_t wave[1] = {99};
    assert_int_equal(order_link(it, 0), 0);
    assert_int_equal(it[0].prev, 12345); /* not touched */
    assert_int_equal(order_next_wave(it, 0, wave), 0);
    assert_int_equal(it[0].state, ORDER_UNPLANNED);
    assert_int_equal(wave[0], 99);
}

/* Drives a whole batch, everything succeeding.  Returns the number of
 * non-empty waves; checks per-key order: each key's events go out in
 * batch order, one wave apart at least. */
static size_t
run_all_ok(struct order_item *items, size_t n)
{
    size_t *wave = malloc(n * sizeof *wave);
    size_t *sent_in = malloc(n * sizeof *sent_in);
    assert_non_null(wave);
    assert_non_null(sent_in);
    size_t waves = 0;
    for (;;) {
        size_t c = next_wave(items, n, wave);
        if (c == 0)
            break;
        waves++;
        assert_true(waves <= n); /* no endless loop */
        for (size_t w = 0; w < c; w++)
            sent_in[wave[w]] = waves;
        mark(items, wave, c, ORDER_OK);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(items[i].state, ORDER_OK);
        if (items[i].prev >= 0)
            assert_true(sent_in[items[i].prev] < sent_in[i]);
    }
    free(wave);
    free(sent_in);
    return waves;
}

#define BIG_N 10000
#define BIG_KEYS 100

static void
test_large_batch(void **state)
{
    (void)state;
    /* 100 customers, 100 events each, interleaved round-robin; every key
     * in a buffer of its own per item. */
    struct order_item *it = malloc(BIG_N * sizeof *it);
    char(*keys)[16] = malloc(BIG_N * sizeof *keys);
    assert_non_null(it);
    assert_non_null(keys);
    for (size_t i = 0; i < BIG_N; i++) {
        long long seq = (long long)(i / BIG_KEYS) + 1;
        snprintf(keys[i], sizeof keys[i], "cust-%03zu", i % BIG_KEYS);
        it[i] = item(keys[i], seq, seq - 1);
    }
    assert_int_equal(order_link(it, BIG_N), 0);
    for (size_t i = 0; i < BIG_N; i++)
        assert_int_equal(it[i].prev, i < BIG_KEYS ? -1 : (long)(i - BIG_KEYS));
    assert_int_equal(run_all_ok(it, BIG_N), BIG_N / BIG_KEYS);
    free(keys);
    free(it);
}

static void
test_large_batch_uneven(void **state)
{
    (void)state;
    /* Keys with 1..100 events each (key k has k+1), in a pseudo-random
     * interleaving: as many waves as the longest key has events. */
    enum { KEYS = 100 };
    size_t n = KEYS * (KEYS + 1) / 2;
    size_t left[KEYS], total_left = n;
    long long next_seq[KEYS];
    char keys[KEYS][16];
    for (size_t k = 0; k < KEYS; k++) {
        left[k] = k + 1;
        next_seq[k] = 1;
        snprintf(keys[k], sizeof keys[k], "k%zu", k);
    }
    struct order_item *it = malloc(n * sizeof *it);
    assert_non_null(it);
    unsigned long rnd = 12345;
    for (size_t i = 0; i < n; i++) {
        rnd = rnd * 1103515245UL + 12345UL;
        size_t k = (rnd >> 8) % KEYS;
        while (left[k] == 0)
            k = (k + 1) % KEYS;
        left[k]--;
        total_left--;
        long long seq = next_seq[k]++;
        it[i] = item(keys[k], seq, seq - 1);
    }
    assert_int_equal(total_left, 0);
    assert_int_equal(order_link(it, n), 0);
    assert_int_equal(run_all_ok(it, n), KEYS);
    free(it);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_sets_prev),
        cmocka_unit_test(test_link_compares_keys_by_content),
        cmocka_unit_test(test_different_customers_all_in_wave_one),
        cmocka_unit_test(test_one_customer_two_waves),
        cmocka_unit_test(test_failed_predecessor_holds_the_rest),
        cmocka_unit_test(test_failure_in_the_middle),
        cmocka_unit_test(test_skipped_predecessor_holds_the_rest),
        cmocka_unit_test(test_held_predecessor_holds_the_rest),
        cmocka_unit_test(test_pending_outside_batch_is_held),
        cmocka_unit_test(test_pending_equal_to_predecessor_waits),
        cmocka_unit_test(test_gap_outside_batch_is_held),
        cmocka_unit_test(test_interleaved_customers),
        cmocka_unit_test(test_interleaved_with_a_failure),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_large_batch),
        cmocka_unit_test(test_large_batch_uneven),
    };
    return cmocka_run_group_tests_name("order", tests, NULL, NULL);
}
