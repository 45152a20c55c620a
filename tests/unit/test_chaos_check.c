/*
 * tests/unit/test_chaos_check.c — tests/chaos/check.h: lost, processed
 * twice (across files) and per-customer order (within a file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define C1 "11111111-1111-1111-1111-111111111111"
#define C2 "22222222-2222-2222-2222-222222222222"

/* event id number n: 00000000-0000-0000-0000-0000000000nn */
static const char *
ev(int n)
{
    static char buf[8][37];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 37, "00000000-0000-0000-0000-%012d", n);
    return b;
}

static void
line(struct check *c, int event, const char *customer, int64_t seq,
     long line_no)
{
    struct consumer_line l = {"customer_status_change", ev(event), customer,
                              seq};
    assert_int_equal(check_line(c, CONSUMER_LINE_PROCESSED, &l, line_no), 0);
}

static void
add_accepted(struct check *c, int event, const char *customer, int64_t seq)
{
    assert_int_equal(check_accepted(c, ev(event), customer, seq, "bank1"), 0);
}

static void
test_all_good(void **state)
{
    (void)state;
    struct check c;
    struct check_result r;
    check_init(&c);
    for (int i = 1; i <= 4; i++)
        add_accepted(&c, i, i <= 2 ? C1 : C2, i <= 2 ? i : i - 2);
    add_accepted(&c, 1, C1, 1); /* a repeated row is one event */
    check_begin_file(&c, "a.out");
    line(&c, 1, C1, 1, 1);
    line(&c, 3, C2, 1, 2); /* customers interleave freely */
    line(&c, 2, C1, 2, 3);
    line(&c, 4, C2, 2, 4);
    struct consumer_line other = {0};
    assert_int_equal(check_line(&c, CONSUMER_LINE_OTHER, &other, 5), 0);
    assert_int_equal(check_result(&c, &r), 0);
    assert_int_equal(r.accepted, 4);
    assert_int_equal(r.processed, 4);
    assert_int_equal(r.processed_lines, 4);
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.twice, 0);
    assert_int_equal(r.order, 0);
    assert_int_equal(r.unknown, 0);
    assert_int_equal(r.malformed, 0);
    check_result_free(&r);
    check_free(&c);
}

static void
test_lost_and_unknown(void **state)
{
    (void)state;
    struct check c;
    struct check_result r;
    check_init(&c);
    for (int i = 1; i <= 8; i++)
        add_accepted(&c, i, C1, i);
    check_begin_file(&c, "a.out");
    line(&c, 1, C1, 1, 1);
    line(&c, 99, C2, 1, 2); /* not an accepted event (another run) */
    struct consumer_line dummy = {0};
    assert_int_equal(check_line(&c, CONSUMER_LINE_MALFORMED, &dummy, 3), 0);
    assert_int_equal(check_result(&c, &r), 0);
    assert_int_equal(r.accepted, 8);
    assert_int_equal(r.processed, 1);
    assert_int_equal(r.lost, 7);
    assert_int_equal(r.unknown, 1);
    assert_int_equal(r.malformed, 1);
    /* at most five examples, each naming the event */
    const char *s = sb_str(&r.ex_lost);
    size_t lines = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, CHECK_EXAMPLES);
    assert_non_null(strstr(s, "event="
                              "00000000-0000-0000-0000-000000000002"
                              " customer=" C1 " seq=2 consumer=bank1"));
    check_result_free(&r);
    check_free(&c);
}

static void
test_twice_across_files(void **state)
{
    (void)state;
    struct check c;
    struct check_result r;
    check_init(&c);
    add_accepted(&c, 1, C1, 1);
    add_accepted(&c, 2, C1, 2);
    check_begin_file(&c, "a.out");
    line(&c, 1, C1, 1, 1);
    line(&c, 2, C1, 2, 2);
    check_begin_file(&c, "b.out");
    line(&c, 2, C1, 2, 7); /* the same event again, in another file */
    line(&c, 2, C1, 2, 8); /* and a third time: still one event twice */
    assert_int_equal(check_result(&c, &r), 0);
    assert_int_equal(r.twice, 1);
    assert_int_equal(r.order, 0); /* equal seq is not out of order */
    assert_int_equal(r.lost, 0);
    assert_non_null(strstr(sb_str(&r.ex_twice), "(again at b.out:7)"));
    check_result_free(&r);
    check_free(&c);
}

static void
test_order(void **state)
{
    (void)state;
    struct check c;
    struct check_result r;
    check_init(&c);
    check_begin_file(&c, "a.out");
    line(&c, 1, C1, 1, 1);
    line(&c, 3, C1, 3, 2);
    line(&c, 2, C1, 2, 3); /* lower than 3: a violation */
    line(&c, 4, C1, 4, 4);
    line(&c, 10, C2, 5, 5);
    line(&c, 11, C2, 1, 6); /* another customer: a violation of its own */
    /* events without a customer are not ordered */
    line(&c, 20, "-", 9, 7);
    line(&c, 21, "-", 8, 8);
    /* a second file starts afresh (another consumer, another queue) */
    check_begin_file(&c, "b.out");
    line(&c, 30, C1, 1, 1);
    assert_int_equal(check_result(&c, &r), 0);
    assert_int_equal(r.order, 2);
    assert_non_null(
        strstr(sb_str(&r.ex_order), "customer=" C1 " seq=2 after seq=3"));
    assert_non_null(strstr(sb_str(&r.ex_order), "(a.out:3)"));
    assert_non_null(
        strstr(sb_str(&r.ex_order), "customer=" C2 " seq=1 after seq=5"));
    check_result_free(&r);
    check_free(&c);
}

static void
test_many_events(void **state)
{
    (void)state;
    struct check c;
    struct check_result r;
    enum { N = 20000 };
    check_init(&c);
    char cust[37];
    check_begin_file(&c, "big.out");
    for (int i = 1; i <= N; i++) {
        snprintf(cust, sizeof cust, "00000000-0000-0000-0001-%012d", i % 97);
        add_accepted(&c, i, cust, i);
        if (i % 1000 != 0)
            line(&c, i, cust, i, i);
    }
    assert_int_equal(check_result(&c, &r), 0);
    assert_int_equal(r.accepted, N);
    assert_int_equal(r.lost, N / 1000);
    assert_int_equal(r.order, 0);
    check_result_free(&r);
    check_free(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_good),
        cmocka_unit_test(test_lost_and_unknown),
        cmocka_unit_test(test_twice_across_files),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_many_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
