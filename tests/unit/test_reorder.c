/*
 * tests/unit/test_reorder.c — consumer/reorder.h: the per-customer ordering
 * buffer of the consumer program (verdicts, release in sequence order, the
 * gap timeout measured from the oldest held item, keys kept apart, equal
 * sequences in arrival order, draining, freeing what is held).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "consumer/reorder.h"

#define C1 "11111111-1111-4111-8111-111111111111"
#define C2 "22222222-2222-4222-8222-222222222222"

/* Items are small ints boxed in malloc'd memory, so leaks show. */
static int *
box(int v)
{
    int *p = malloc(sizeof *p);
    assert_non_null(p);
    *p = v;
    return p;
}

static int
unbox(void *p)
{
    int v = *(int *)p;
    free(p);
    return v;
}

static int freed;

static void
count_free(void *p)
{
    freed++;
    free(p);
}

static void
test_verdicts(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(5000);
    assert_non_null(r);
    int dummy = 0;
    /* nothing processed yet for C1: 1 is next, 0 cannot be */
    assert_int_equal(reorder_offer(r, C1, 1, 0, 0, &dummy), REORDER_NOW);
    assert_int_equal(reorder_offer(r, C1, 4, 3, 0, &dummy), REORDER_NOW);
    assert_int_equal(reorder_offer(r, C1, 3, 3, 0, &dummy), REORDER_LATE);
    assert_int_equal(reorder_offer(r, C1, 1, 3, 0, &dummy), REORDER_LATE);
    assert_int_equal(reorder_held(r), 0);
    assert_int_equal(reorder_next_timeout_ms(r, 0), -1);
    reorder_free(r, NULL);
}

static void
test_gap_fills_in_order(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(5000);
    struct reorder_out o;
    /* 4 and 3 arrive ahead of 2 (last processed: 1) */
    assert_int_equal(reorder_offer(r, C1, 4, 1, 100, box(4)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C1, 3, 1, 110, box(3)), REORDER_HELD);
    assert_int_equal(reorder_held(r), 2);
    /* nothing may go yet */
    assert_false(reorder_release(r, C1, 1, 200, &o));
    /* 2 arrives: processed now, then 3 and 4 follow in order */
    assert_int_equal(reorder_offer(r, C1, 2, 1, 300, NULL), REORDER_NOW);
    assert_true(reorder_release(r, C1, 2, 300, &o));
    assert_int_equal(o.seq, 3);
    assert_false(o.after_gap);
    assert_int_equal(unbox(o.item), 3);
    assert_true(reorder_release(r, C1, 3, 300, &o));
    assert_int_equal(o.seq, 4);
    assert_false(o.after_gap);
    assert_int_equal(unbox(o.item), 4);
    assert_false(reorder_release(r, C1, 4, 300, &o));
    assert_int_equal(reorder_held(r), 0);
    reorder_free(r, NULL);
}

static void
test_release_waits_for_the_processed_sequence(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(5000);
    struct reorder_out o;
    assert_int_equal(reorder_offer(r, C1, 5, 2, 0, box(5)), REORDER_HELD);
    /* 3 processed, 4 still missing: 5 stays */
    assert_false(reorder_release(r, C1, 3, 10, &o));
    assert_true(reorder_release(r, C1, 4, 10, &o));
    assert_int_equal(unbox(o.item), 5);
    reorder_free(r, NULL);
}

static void
test_gap_timeout(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(1000);
    struct reorder_out o;
    char key[REORDER_KEY_MAX];

    assert_int_equal(reorder_offer(r, C1, 4, 1, 1000, box(4)), REORDER_HELD);
    assert_int_equal(reorder_next_timeout_ms(r, 1000), 1000);
    assert_int_equal(reorder_next_timeout_ms(r, 1600), 400);
    assert_false(reorder_expired_key(r, 1999, key));
    assert_false(reorder_release(r, C1, 1, 1999, &o));

    assert_int_equal(reorder_next_timeout_ms(r, 2000), 0);
    assert_int_equal(reorder_next_timeout_ms(r, 5000), 0);
    assert_true(reorder_expired_key(r, 2000, key));
    assert_string_equal(key, C1);
    assert_true(reorder_release(r, C1, 1, 2000, &o));
    assert_true(o.after_gap);
    assert_int_equal(o.seq, 4);
    assert_int_equal(o.gap_first, 2);
    assert_int_equal(o.gap_last, 3);
    assert_int_equal(unbox(o.item), 4);
    assert_false(reorder_expired_key(r, 9999, key));
    reorder_free(r, NULL);
}

static void
test_timeout_counts_from_the_oldest_item(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(1000);
    struct reorder_out o;
    char key[REORDER_KEY_MAX];

    /* 6 waits since t=0; 4 arrives later (t=800) and becomes the head */
    assert_int_equal(reorder_offer(r, C1, 6, 2, 0, box(6)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C1, 4, 2, 800, box(4)), REORDER_HELD);
    /* at t=1000 the oldest (6) has waited long enough: the head (4) goes,
     * after a gap of 3 */
    assert_int_equal(reorder_next_timeout_ms(r, 900), 100);
    assert_true(reorder_expired_key(r, 1000, key));
    assert_true(reorder_release(r, C1, 2, 1000, &o));
    assert_int_equal(o.seq, 4);
    assert_true(o.after_gap);
    assert_int_equal(o.gap_first, 3);
    assert_int_equal(o.gap_last, 3);
    unbox(o.item);
    /* then 6 (it has waited 1000 ms too): after a gap of 5 */
    assert_true(reorder_release(r, C1, 4, 1000, &o));
    assert_int_equal(o.seq, 6);
    assert_true(o.after_gap);
    assert_int_equal(o.gap_first, 5);
    assert_int_equal(o.gap_last, 5);
    unbox(o.item);
    assert_int_equal(reorder_held(r), 0);
    reorder_free(r, NULL);
}

static void
test_zero_timeout_never_waits(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(0);
    struct reorder_out o;
    assert_int_equal(reorder_offer(r, C1, 3, 1, 50, box(3)), REORDER_HELD);
    assert_int_equal(reorder_next_timeout_ms(r, 50), 0);
    assert_true(reorder_release(r, C1, 1, 50, &o));
    assert_true(o.after_gap);
    unbox(o.item);
    reorder_free(r, NULL);
}

static void
test_keys_are_independent(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(1000);
    struct reorder_out o;
    char key[REORDER_KEY_MAX];

    assert_int_equal(reorder_offer(r, C1, 3, 1, 0, box(13)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C2, 9, 7, 500, box(29)), REORDER_HELD);
    /* "" is the sequence of events without a customer */
    assert_int_equal(reorder_offer(r, "", 5, 3, 700, box(5)), REORDER_HELD);
    assert_int_equal(reorder_held(r), 3);

    /* C2's gap fills; C1 and "" are untouched */
    assert_false(reorder_release(r, C2, 7, 600, &o));
    assert_true(reorder_release(r, C2, 8, 600, &o));
    assert_int_equal(unbox(o.item), 29);
    assert_false(reorder_release(r, C1, 1, 600, &o));

    /* only C1 has timed out at t=1000 */
    assert_true(reorder_expired_key(r, 1000, key));
    assert_string_equal(key, C1);
    assert_true(reorder_release(r, C1, 1, 1000, &o));
    assert_int_equal(unbox(o.item), 13);
    assert_false(reorder_expired_key(r, 1000, key));
    assert_int_equal(reorder_next_timeout_ms(r, 1000), 700);
    assert_true(reorder_expired_key(r, 1700, key));
    assert_string_equal(key, "");
    assert_true(reorder_release(r, "", 3, 1700, &o));
    assert_int_equal(unbox(o.item), 5);
    reorder_free(r, NULL);
}

static void
test_equal_sequences_keep_arrival_order(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(1000);
    struct reorder_out o;
    /* the same event delivered twice while it waits (a redelivery) */
    assert_int_equal(reorder_offer(r, C1, 3, 1, 0, box(1)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C1, 3, 1, 10, box(2)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C1, 4, 1, 20, box(3)), REORDER_HELD);
    assert_true(reorder_release(r, C1, 2, 30, &o));
    assert_int_equal(unbox(o.item), 1);
    /* the second copy's place has passed (3 processed): it goes at once,
     * so the caller sees it as a duplicate */
    assert_true(reorder_release(r, C1, 3, 30, &o));
    assert_int_equal(o.seq, 3);
    assert_false(o.after_gap);
    assert_int_equal(unbox(o.item), 2);
    assert_true(reorder_release(r, C1, 3, 30, &o));
    assert_int_equal(unbox(o.item), 3);
    reorder_free(r, NULL);
}

static void
test_take_any_and_free(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(1000);
    assert_int_equal(reorder_offer(r, C1, 3, 1, 0, box(1)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C2, 3, 1, 0, box(2)), REORDER_HELD);
    assert_int_equal(reorder_offer(r, C2, 4, 1, 0, box(3)), REORDER_HELD);
    void *p = reorder_take_any(r);
    assert_non_null(p);
    unbox(p);
    assert_int_equal(reorder_held(r), 2);
    freed = 0;
    reorder_free(r, count_free);
    assert_int_equal(freed, 2);
    reorder_free(NULL, count_free); /* safe */
}

/* INT64_MAX is a sequence a message may carry: last_done + 1 must not be
 * computed (signed overflow; UBSan aborts), and what is held behind it is
 * due at once, in order. */
static void
test_extreme_sequences(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(5000);
    assert_non_null(r);
    int dummy = 0;
    assert_int_equal(reorder_offer(r, C1, INT64_MAX, INT64_MAX - 1, 0, &dummy),
                     REORDER_NOW);
    assert_int_equal(reorder_offer(r, C1, INT64_MAX, INT64_MAX, 0, &dummy),
                     REORDER_LATE);
    assert_int_equal(reorder_offer(r, C1, 1, INT64_MAX, 0, &dummy),
                     REORDER_LATE);
    assert_int_equal(reorder_offer(r, C1, INT64_MAX, 0, 0, box(1)),
                     REORDER_HELD);
    assert_int_equal(reorder_offer(r, C1, 10, 5, 0, box(2)), REORDER_HELD);
    struct reorder_out o;
    /* the customer's last sequence jumped to INT64_MAX meanwhile */
    assert_true(reorder_release(r, C1, INT64_MAX, 1, &o));
    assert_false(o.after_gap);
    assert_int_equal(o.seq, 10);
    assert_int_equal(unbox(o.item), 2);
    assert_true(reorder_release(r, C1, INT64_MAX, 1, &o));
    assert_false(o.after_gap);
    assert_true(o.seq == INT64_MAX);
    assert_int_equal(unbox(o.item), 1);
    assert_false(reorder_release(r, C1, INT64_MAX, 1, &o));
    /* a gap up to INT64_MAX - 1, released by the timeout */
    assert_int_equal(reorder_offer(r, C2, INT64_MAX, 0, 0, box(3)),
                     REORDER_HELD);
    assert_true(reorder_release(r, C2, 0, 5000, &o));
    assert_true(o.after_gap);
    assert_true(o.gap_first == 1 && o.gap_last == INT64_MAX - 1);
    assert_int_equal(unbox(o.item), 3);
    /* a clock near UINT64_MAX: the next timeout agrees with the release */
    assert_int_equal(reorder_offer(r, C2, 5, 0, UINT64_MAX - 10, box(4)),
                     REORDER_HELD);
    assert_int_equal(reorder_next_timeout_ms(r, UINT64_MAX - 10), 5000);
    assert_int_equal(reorder_next_timeout_ms(r, UINT64_MAX), 4990);
    char key[REORDER_KEY_MAX];
    assert_false(reorder_expired_key(r, UINT64_MAX, key));
    /* a clock before the item's: not due before since + timeout */
    assert_int_equal(reorder_next_timeout_ms(r, UINT64_MAX - 20), 5010);
    reorder_free(r, free);
    /* a zero timeout: due at once, but not before the item was offered */
    r = reorder_new(0);
    assert_non_null(r);
    assert_int_equal(reorder_offer(r, C1, 5, 0, 100, box(5)), REORDER_HELD);
    assert_int_equal(reorder_next_timeout_ms(r, 99), 1);
    assert_false(reorder_expired_key(r, 99, key));
    assert_int_equal(reorder_next_timeout_ms(r, 100), 0);
    assert_true(reorder_expired_key(r, 100, key));
    reorder_free(r, free);
}

static void
test_key_too_long(void **state)
{
    (void)state;
    struct reorder *r = reorder_new(1000);
    char key[REORDER_KEY_MAX + 8];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    int dummy = 0;
    assert_int_equal(reorder_offer(r, key, 5, 1, 0, &dummy), REORDER_ERROR);
    assert_int_equal(reorder_held(r), 0);
    reorder_free(r, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_gap_fills_in_order),
        cmocka_unit_test(test_release_waits_for_the_processed_sequence),
        cmocka_unit_test(test_gap_timeout),
        cmocka_unit_test(test_timeout_counts_from_the_oldest_item),
        cmocka_unit_test(test_zero_timeout_never_waits),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_equal_sequences_keep_arrival_order),
        cmocka_unit_test(test_take_any_and_free),
        cmocka_unit_test(test_extreme_sequences),
        cmocka_unit_test(test_key_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
