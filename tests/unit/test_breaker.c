/*
 * tests/unit/test_breaker.c — outbox/breaker.h, the circuit breaker around the
 * broker (docs/API.md §7.2): closed → open after N failures in a row, a success
 * resets the count, open refuses until the cool-down has passed, then one
 * half-open try decides (success → closed, failure → open with a fresh
 * cool-down); breaker_force() lets a re-drive's probe through an open
 * breaker; the state names.  The clock is injected, so nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbox/breaker.h"

#define THRESHOLD 5
#define COOLDOWN 10000LL

/* An arbitrary non-zero start, so a zero opened_at could not pass as a
 * correct one. */
#define T0 1000000LL

static void
open_it(struct breaker *b, long long now)
{
    for (int i = 0; i < THRESHOLD; i++)
        breaker_failure(b, now);
    assert_int_equal(b->state, BREAKER_OPEN);
}

static void
test_init_closed(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.threshold, THRESHOLD);
    assert_true(b.cooldown_ms == COOLDOWN);
    assert_true(breaker_allow(&b, T0));
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void
test_bad_threshold_means_one(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, 0, COOLDOWN);
    assert_int_equal(b.threshold, 1);
    breaker_failure(&b, T0);
    assert_int_equal(b.state, BREAKER_OPEN);

    breaker_init(&b, -3, COOLDOWN);
    assert_int_equal(b.threshold, 1);
}

static void
test_opens_after_n_consecutive_failures(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    for (int i = 1; i < THRESHOLD; i++) {
        breaker_failure(&b, T0 + i);
        assert_int_equal(b.state, BREAKER_CLOSED);
        assert_int_equal(b.failures, i);
        assert_true(breaker_allow(&b, T0 + i));
    }
    breaker_failure(&b, T0 + 50);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(b.opened_at == T0 + 50);
    assert_false(breaker_allow(&b, T0 + 50));
}

static void
test_threshold_one_opens_at_once(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, 1, COOLDOWN);
    breaker_failure(&b, T0);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_false(breaker_allow(&b, T0 + 1));
}

static void
test_success_resets_the_count(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    for (int i = 0; i < THRESHOLD - 1; i++)
        breaker_failure(&b, T0);
    assert_int_equal(b.failures, THRESHOLD - 1);
    breaker_success(&b);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    /* The failures are consecutive ones: N - 1 more still keep it closed. */
    for (int i = 0; i < THRESHOLD - 1; i++)
        breaker_failure(&b, T0 + 1);
    assert_int_equal(b.state, BREAKER_CLOSED);
    breaker_failure(&b, T0 + 2);
    assert_int_equal(b.state, BREAKER_OPEN);
}

static void
test_open_refuses_until_cooldown_then_half_open(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    assert_false(breaker_allow(&b, T0));
    assert_false(breaker_allow(&b, T0 + 1));
    assert_false(breaker_allow(&b, T0 + COOLDOWN - 1));
    /* Refusing does not move the state or the clock. */
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(b.opened_at == T0);
    /* At the cool-down exactly, one try goes out: half-open. */
    assert_true(breaker_allow(&b, T0 + COOLDOWN));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

static void
test_open_allows_long_after_cooldown(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    assert_true(breaker_allow(&b, T0 + 100 * COOLDOWN));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

static void
test_half_open_success_closes(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    assert_true(breaker_allow(&b, T0 + COOLDOWN));
    breaker_success(&b);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_true(breaker_allow(&b, T0 + COOLDOWN + 1));
    /* Closed again, it needs N fresh consecutive failures to open. */
    for (int i = 0; i < THRESHOLD - 1; i++) {
        breaker_failure(&b, T0 + COOLDOWN + 2);
        assert_int_equal(b.state, BREAKER_CLOSED);
    }
    breaker_failure(&b, T0 + COOLDOWN + 3);
    assert_int_equal(b.state, BREAKER_OPEN);
}

static void
test_half_open_failure_reopens_with_fresh_cooldown(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    long long t1 = T0 + COOLDOWN + 500;
    assert_true(breaker_allow(&b, t1));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    /* One failure is enough in half-open, whatever the threshold. */
    breaker_failure(&b, t1 + 7);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(b.opened_at == t1 + 7);
    /* The cool-down counts from the half-open failure, not the first
     * opening. */
    assert_false(breaker_allow(&b, t1 + 7));
    assert_false(breaker_allow(&b, T0 + 2 * COOLDOWN));
    assert_false(breaker_allow(&b, t1 + 7 + COOLDOWN - 1));
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(breaker_allow(&b, t1 + 7 + COOLDOWN));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

static void
test_half_open_keeps_allowing_until_judged(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    assert_true(breaker_allow(&b, T0 + COOLDOWN));
    /* Until the try's outcome is reported, it stays half-open. */
    assert_true(breaker_allow(&b, T0 + COOLDOWN + 1));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

static void
test_force_through_open_breaker(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    assert_false(breaker_allow(&b, T0 + 1));
    breaker_force(&b);
    /* Well inside the cool-down, the forced probe goes out... */
    assert_true(breaker_allow(&b, T0 + 2));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    /* ...and a failure is judged like a half-open try: open again, with a
     * cool-down from now. */
    breaker_failure(&b, T0 + 3);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(b.opened_at == T0 + 3);
    assert_false(breaker_allow(&b, T0 + 4));
    assert_false(breaker_allow(&b, T0 + 3 + COOLDOWN - 1));

    /* A forced probe that succeeds closes it. */
    breaker_force(&b);
    assert_true(breaker_allow(&b, T0 + 5));
    breaker_success(&b);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
}

static void
test_force_on_closed_breaker_changes_nothing(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    breaker_failure(&b, T0);
    breaker_failure(&b, T0);
    breaker_force(&b);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 2);
    assert_true(breaker_allow(&b, T0));
    /* A failure after a no-op force counts as the third, not as a
     * half-open failure. */
    breaker_failure(&b, T0);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 3);
}

static void
test_force_on_half_open_stays_half_open(void **state)
{
    (void)state;
    struct breaker b;
    breaker_init(&b, THRESHOLD, COOLDOWN);
    open_it(&b, T0);
    assert_true(breaker_allow(&b, T0 + COOLDOWN));
    breaker_force(&b);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

static void
test_state_names(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_state_name((enum breaker_state)42), "unknown");
    /* The metric's values (docs/API.md §5.8): 0 closed, 1 half-open, 2 open. */
    assert_int_equal(BREAKER_CLOSED, 0);
    assert_int_equal(BREAKER_HALF_OPEN, 1);
    assert_int_equal(BREAKER_OPEN, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_closed),
        cmocka_unit_test(test_bad_threshold_means_one),
        cmocka_unit_test(test_opens_after_n_consecutive_failures),
        cmocka_unit_test(test_threshold_one_opens_at_once),
        cmocka_unit_test(test_success_resets_the_count),
        cmocka_unit_test(test_open_refuses_until_cooldown_then_half_open),
        cmocka_unit_test(test_open_allows_long_after_cooldown),
        cmocka_unit_test(test_half_open_success_closes),
        cmocka_unit_test(test_half_open_failure_reopens_with_fresh_cooldown),
        cmocka_unit_test(test_half_open_keeps_allowing_until_judged),
        cmocka_unit_test(test_force_through_open_breaker),
        cmocka_unit_test(test_force_on_closed_breaker_changes_nothing),
        cmocka_unit_test(test_force_on_half_open_stays_half_open),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
