/*
 * tests/unit/test_chaos_load_plan.c — tests/chaos/load_plan.h and util.h:
 * the keys file, the status a change asks for, retries and backoff, the
 * seeded random source, tokenising and the hash map.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_plan.h"
#include "util.h"

static void
test_key_lines(void **state)
{
    (void)state;
    char *name, *key;
    char ok[] = "bank-1  fk_abcDEF123_-xyz\n";
    assert_int_equal(load_parse_key_line(ok, &name, &key), 1);
    assert_string_equal(name, "bank-1");
    assert_string_equal(key, "fk_abcDEF123_-xyz");

    char blank[] = " \t\n";
    char comment[] = "# name key\n";
    assert_int_equal(load_parse_key_line(blank, &name, &key), 0);
    assert_int_equal(load_parse_key_line(comment, &name, &key), 0);

    const char *bad[] = {"bank1", "bank1 key extra", "Bank1 key", "-bank key",
                         "bank.1 key"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *l = strdup(bad[i]);
        assert_int_equal(load_parse_key_line(l, &name, &key), -1);
        free(l);
    }
}

static void
test_status_choice(void **state)
{
    (void)state;
    assert_int_equal(load_status_target(LOAD_ACTIVE, 0), LOAD_INACTIVE);
    assert_int_equal(load_status_target(LOAD_ACTIVE, 1), LOAD_INACTIVE);
    assert_int_equal(load_status_target(LOAD_INACTIVE, 0), LOAD_ACTIVE);
    assert_int_equal(load_status_target(LOAD_STATUS_UNKNOWN, 0), LOAD_INACTIVE);
    assert_int_equal(load_status_target(LOAD_STATUS_UNKNOWN, 1), LOAD_ACTIVE);

    assert_int_equal(load_status_after(LOAD_ACTIVE, 200), LOAD_ACTIVE);
    assert_int_equal(load_status_after(LOAD_INACTIVE, 409), LOAD_INACTIVE);
    assert_int_equal(load_status_after(LOAD_ACTIVE, 0), LOAD_STATUS_UNKNOWN);
    assert_int_equal(load_status_after(LOAD_ACTIVE, 502), LOAD_STATUS_UNKNOWN);
    assert_int_equal(load_status_after(LOAD_ACTIVE, 404), LOAD_STATUS_UNKNOWN);

    assert_int_equal(load_status_parse("ACTIVE"), LOAD_ACTIVE);
    assert_int_equal(load_status_parse("INACTIVE"), LOAD_INACTIVE);
    assert_int_equal(load_status_parse("active"), LOAD_STATUS_UNKNOWN);
    assert_int_equal(load_status_parse(NULL), LOAD_STATUS_UNKNOWN);
    assert_string_equal(load_status_name(LOAD_INACTIVE), "INACTIVE");
}

static void
test_retry_rules(void **state)
{
    (void)state;
    assert_true(load_is_retryable(0));
    assert_true(load_is_retryable(502));
    assert_true(load_is_retryable(503));
    assert_true(load_is_retryable(504));
    assert_false(load_is_retryable(500));
    assert_false(load_is_retryable(201));
    assert_false(load_is_retryable(409));
    assert_false(load_is_retryable(429));

    long expect[] = {100, 200, 400, 800, 1600, 2000, 2000};
    for (int i = 0; i < 7; i++)
        assert_int_equal(load_backoff_ms(i + 1), expect[i]);
    assert_int_equal(load_backoff_ms(1000), LOAD_BACKOFF_MAX_MS);
}

static void
test_rand(void **state)
{
    (void)state;
    uint64_t a = 42, b = 42, c = 43;
    for (int i = 0; i < 10; i++) {
        uint64_t x = load_rand(&a);
        assert_true(x == load_rand(&b));
        (void)load_rand(&c);
    }
    assert_true(load_rand(&a) != load_rand(&c));
    long heads = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = load_rand_below(&a, 7);
        assert_true(v < 7);
        heads += load_rand_below(&a, 2) == 1;
    }
    assert_in_range(heads, 4500, 5500);
    assert_true(load_rand_below(&a, 0) == 0);
}

static void
test_split_and_numbers(void **state)
{
    (void)state;
    char s[] = "  a bb\tccc \r\n";
    char *tok[2];
    assert_int_equal(chaos_split(s, tok, 2), 3);
    assert_string_equal(tok[0], "a");
    assert_string_equal(tok[1], "bb");
    char empty[] = "";
    assert_int_equal(chaos_split(empty, tok, 2), 0);

    int64_t v;
    assert_true(chaos_parse_i64("-12", &v) && v == -12);
    assert_false(chaos_parse_i64("12x", &v));
    assert_false(chaos_parse_i64(" 1", &v));
    assert_false(chaos_parse_i64("", &v));
    assert_false(chaos_parse_i64("99999999999999999999", &v));
    double d;
    assert_true(chaos_parse_double("0.5", &d) && d == 0.5);
    assert_false(chaos_parse_double("-1", &d));
    assert_false(chaos_parse_double("1e", &d));

    assert_true(chaos_is_uuid("93fe20dd-031b-41f9-a989-e67220d41dd9"));
    assert_true(chaos_is_uuid("93FE20DD-031B-41F9-A989-E67220D41DD9"));
    assert_false(chaos_is_uuid("93fe20dd-031b-41f9-a989-e67220d41dd"));
    assert_false(chaos_is_uuid("93fe20dd-031b-41f9-a989-e67220d41dd90"));
    assert_false(chaos_is_uuid("93fe20dd0031b-41f9-a989-e67220d41dd9"));
    assert_false(chaos_is_uuid(""));
}

static void
test_strmap(void **state)
{
    (void)state;
    struct strmap m = STRMAP_INIT;
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        bool ins = false;
        int64_t *v = strmap_slot(&m, key, i, &ins);
        assert_non_null(v);
        assert_true(ins);
    }
    bool ins = true;
    int64_t *v = strmap_slot(&m, "k7", 0, &ins);
    assert_false(ins);
    assert_true(*v == 7);
    *v = 70;
    int64_t got = 0;
    assert_true(strmap_get(&m, "k7", &got) && got == 70);
    assert_false(strmap_get(&m, "nope", NULL));
    size_t pos = 0, n = 0;
    const char *k;
    int64_t val;
    while (strmap_next(&m, &pos, &k, &val))
        n++;
    assert_int_equal(n, 5000);
    assert_int_equal(m.count, 5000);
    strmap_free(&m);
    strmap_free(&m); /* twice is fine */
    assert_false(strmap_get(&m, "k1", NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_lines),
        cmocka_unit_test(test_status_choice),
        cmocka_unit_test(test_retry_rules),
        cmocka_unit_test(test_rand),
        cmocka_unit_test(test_split_and_numbers),
        cmocka_unit_test(test_strmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
