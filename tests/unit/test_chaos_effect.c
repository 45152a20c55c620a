/*
 * tests/unit/test_chaos_effect.c — tests/chaos/effect.h: customers created
 * twice, writes answered 2xx but absent, writes that never took effect (in
 * and outside database windows) and writes that took effect unanswered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "effect.h"

#define C1 "11111111-1111-1111-1111-111111111111"
#define C2 "22222222-2222-2222-2222-222222222222"
#define C3 "33333333-3333-3333-3333-333333333333"
#define CX "99999999-9999-9999-9999-999999999999"

static void
attempt(struct effect *e, int64_t logical, enum reqlog_kind kind, int try_no,
        int status, int64_t start_ms, const char *customer)
{
    struct reqlog_attempt a = {
        .start_ms = start_ms,
        .end_ms = start_ms + 10,
        .node = 0,
        .method = kind == REQLOG_CREATE ? "POST" : "PATCH",
        .kind = kind,
        .status = status,
        .attempt = try_no,
        .logical_id = logical,
        .customer_id = customer,
    };
    assert_int_equal(effect_attempt(e, &a), 0);
}

static void
customer(struct effect *e, const char *id, int64_t logical)
{
    char name[64];
    snprintf(name, sizeof name, "chaos bank_1 %lld", (long long)logical);
    assert_int_equal(effect_customer(e, id, name), 0);
}

static void
result(const struct effect *e, const struct report_window *w, size_t nw,
       struct effect_result *r)
{
    assert_int_equal(effect_result(e, w, nw, r), 0);
}

static void
test_names(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_true(effect_name_logical("chaos chaos_17_1 42", &v));
    assert_int_equal(v, 42);
    assert_false(effect_name_logical("chaos 42", &v));
    assert_false(effect_name_logical("Ada Lovelace", &v));
    assert_false(effect_name_logical("chaos bank x", &v));
    assert_false(effect_name_logical("chaos bank 0", &v));
}

static void
test_all_good(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    effect_init(&e);
    attempt(&e, 1, REQLOG_CREATE, 1, 201, 1000, C1);
    attempt(&e, 2, REQLOG_CREATE, 1, 502, 1100, "-"); /* retried, replayed */
    attempt(&e, 2, REQLOG_CREATE, 2, 201, 1300, C2);
    attempt(&e, 3, REQLOG_STATUS, 1, 200, 1400, C1);
    attempt(&e, 4, REQLOG_STATUS, 1, 409, 1500, C1); /* an answer */
    customer(&e, C1, 1);
    customer(&e, C2, 2);
    assert_int_equal(effect_status_events(&e, C1, 1), 0);
    result(&e, NULL, 0, &r);
    assert_int_equal(r.creates, 2);
    assert_int_equal(r.statuses, 2);
    assert_int_equal(r.answered_2xx, 3);
    assert_int_equal(r.answered_4xx, 1);
    assert_int_equal(r.unanswered, 0);
    assert_int_equal(r.twice, 0);
    assert_int_equal(r.acked_absent, 0);
    assert_int_equal(r.never, 0);
    assert_int_equal(r.took_unanswered, 0);
    assert_int_equal(r.not_in_log, 0);
    effect_result_free(&r);
    effect_free(&e);
}

static void
test_created_twice(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    effect_init(&e);
    /* a retry without a key: the first attempt committed, answered 502 */
    attempt(&e, 7, REQLOG_CREATE, 1, 502, 1000, "-");
    attempt(&e, 7, REQLOG_CREATE, 2, 201, 1200, C2);
    customer(&e, C1, 7);
    customer(&e, C2, 7);
    /* one more, three rows */
    attempt(&e, 8, REQLOG_CREATE, 1, 201, 1300, C3);
    customer(&e, C3, 8);
    customer(&e, "44444444-4444-4444-4444-444444444444", 8);
    customer(&e, "55555555-5555-5555-5555-555555555555", 8);
    result(&e, NULL, 0, &r);
    assert_int_equal(r.twice, 3);
    assert_non_null(strstr(r.ex_twice.buf, "logical create 7: 2 customers"));
    assert_int_equal(r.acked_absent, 0);
    effect_result_free(&r);
    effect_free(&e);
}

static void
test_acknowledged_but_absent(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    effect_init(&e);
    attempt(&e, 1, REQLOG_CREATE, 1, 201, 1000, C1); /* C1 not in the db */
    attempt(&e, 2, REQLOG_STATUS, 1, 200, 1100, C2);
    attempt(&e, 3, REQLOG_STATUS, 1, 200, 1200, C2);
    assert_int_equal(effect_status_events(&e, C2, 1), 0); /* one missing */
    result(&e, NULL, 0, &r);
    assert_int_equal(r.acked_absent, 2);
    assert_non_null(strstr(r.ex_absent.buf, C1));
    effect_result_free(&r);
    effect_free(&e);
}

static void
test_absent_in_a_database_window(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    struct report_window w[] = {
        {.name = "pg-failover", .start_ms = 2000, .end_ms = 3000, .db = true},
    };
    effect_init(&e);
    /* acknowledged by a primary that died before its standby got them */
    attempt(&e, 1, REQLOG_CREATE, 1, 201, 2100, C1);
    attempt(&e, 2, REQLOG_STATUS, 1, 200, 2200, C2);
    attempt(&e, 3, REQLOG_STATUS, 1, 200, 1000, C2);
    assert_int_equal(effect_status_events(&e, C2, 0), 0);
    /* and one outside */
    attempt(&e, 4, REQLOG_CREATE, 1, 201, 4000, C3);
    result(&e, w, 1, &r);
    assert_int_equal(r.acked_absent, 4);
    assert_int_equal(r.acked_absent_in_db_window, 2); /* C1, one of C2's */
    assert_non_null(strstr(r.ex_absent.buf, "(in a database window)"));
    effect_result_free(&r);
    effect_free(&e);
}

static void
test_never_and_unanswered(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    /* a database window over 2000..3000 */
    struct report_window w[] = {
        {.name = "pg", .start_ms = 2000, .end_ms = 3000, .db = true},
        {.name = "kill", .start_ms = 5000, .end_ms = 6000, .db = false},
    };
    effect_init(&e);
    /* creates given up on: one committed (a row), one not (no row) */
    attempt(&e, 1, REQLOG_CREATE, 1, 503, 2100, "-");
    attempt(&e, 1, REQLOG_CREATE, 2, 0, 2500, "-");
    customer(&e, C1, 1);
    attempt(&e, 2, REQLOG_CREATE, 1, 503, 2200, "-"); /* in the db window */
    attempt(&e, 3, REQLOG_CREATE, 1, 502, 5100, "-"); /* outside */
    /* status changes of C2: one 2xx, two unanswered, two events: the
     * older unanswered one took effect, the newer did not */
    attempt(&e, 4, REQLOG_STATUS, 1, 200, 1000, C2);
    attempt(&e, 5, REQLOG_STATUS, 1, 0, 5200, C2);
    attempt(&e, 6, REQLOG_STATUS, 1, 504, 5300, C2);
    assert_int_equal(effect_status_events(&e, C2, 2), 0);
    result(&e, w, 2, &r);
    assert_int_equal(r.unanswered, 5);
    assert_int_equal(r.took_unanswered, 2); /* create 1, status 5 */
    assert_int_equal(r.never, 3);           /* create 2, create 3, status 6 */
    assert_int_equal(r.never_in_db_window, 1);
    assert_non_null(strstr(r.ex_never.buf, "(in a database window)"));
    assert_int_equal(r.twice, 0);
    assert_int_equal(r.acked_absent, 0);
    effect_result_free(&r);

    /* without windows nothing is in a database window */
    result(&e, NULL, 0, &r);
    assert_int_equal(r.never, 3);
    assert_int_equal(r.never_in_db_window, 0);
    effect_result_free(&r);
    effect_free(&e);
}

static void
test_last_attempt_decides(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    effect_init(&e);
    /* lines may come in any order: the highest attempt is the answer */
    attempt(&e, 1, REQLOG_CREATE, 3, 201, 1500, C1);
    attempt(&e, 1, REQLOG_CREATE, 1, 502, 1000, "-");
    attempt(&e, 1, REQLOG_CREATE, 2, 0, 1200, "-");
    customer(&e, C1, 1);
    result(&e, NULL, 0, &r);
    assert_int_equal(r.answered_2xx, 1);
    assert_int_equal(r.unanswered, 0);
    assert_int_equal(r.never, 0);
    effect_result_free(&r);
    effect_free(&e);
}

static void
test_customers_not_in_the_log(void **state)
{
    (void)state;
    struct effect e;
    struct effect_result r;
    effect_init(&e);
    attempt(&e, 1, REQLOG_CREATE, 1, 201, 1000, C1);
    customer(&e, C1, 1);
    customer(&e, C2, 99); /* its attempt was in flight at the stop */
    assert_int_equal(effect_customer(&e, CX, "Somebody"), 0);
    result(&e, NULL, 0, &r);
    assert_int_equal(r.not_in_log, 2);
    assert_int_equal(r.twice, 0);
    effect_result_free(&r);
    effect_free(&e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_all_good),
        cmocka_unit_test(test_created_twice),
        cmocka_unit_test(test_acknowledged_but_absent),
        cmocka_unit_test(test_absent_in_a_database_window),
        cmocka_unit_test(test_never_and_unanswered),
        cmocka_unit_test(test_last_attempt_decides),
        cmocka_unit_test(test_customers_not_in_the_log),
    };
    return cmocka_run_group_tests_name(
        "chaos/effect: created twice, absent, never took effect", tests, NULL,
        NULL);
}
