/*
 * tests/unit/test_chaos_consumer_line.c — tests/chaos/consumer_line.h: the
 * parser of fintegrate-consumer's output lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "consumer_line.h"

#define EV "5e789704-3704-44aa-a0b6-b2c5a2762f71"
#define CU "39e1fdb9-419b-4b55-b3f4-1e958c221aa0"
#define TS "2025-10-23T14:34:51.467Z"

static enum consumer_line_kind
parse(const char *text, struct consumer_line *out, char **keep)
{
    *keep = strdup(text);
    assert_non_null(*keep);
    return consumer_line_parse(*keep, out);
}

static void
test_processed(void **state)
{
    (void)state;
    struct consumer_line l;
    char *buf;
    assert_int_equal(parse(TS " processed customer_creation customer=" CU
                              " seq=1 event=" EV
                              " name=\"John Richard Doe\" status=ACTIVE\n",
                           &l, &buf),
                     CONSUMER_LINE_PROCESSED);
    assert_string_equal(l.event_type, "customer_creation");
    assert_string_equal(l.event_id, EV);
    assert_string_equal(l.customer_id, CU);
    assert_true(l.seq == 1);
    free(buf);

    /* a status change with a note after a gap */
    assert_int_equal(parse(TS
                           " processed customer_status_change customer=" CU
                           " seq=12 event=" EV " previous_status=ACTIVE "
                           "status=INACTIVE (after a gap: seq 10..11 missing)",
                           &l, &buf),
                     CONSUMER_LINE_PROCESSED);
    assert_true(l.seq == 12);
    free(buf);

    /* events without a customer print "-" */
    assert_int_equal(parse(TS " processed consumer_creation customer=- seq=7 "
                              "event=" EV " consumer_name=bank1",
                           &l, &buf),
                     CONSUMER_LINE_PROCESSED);
    assert_string_equal(l.customer_id, "-");
    free(buf);

    /* upper-case ids are compared lower-case */
    assert_int_equal(parse(TS " processed customer_creation "
                              "customer=39E1FDB9-419B-4B55-B3F4-1E958C221AA0 "
                              "seq=3 event=5E789704-3704-44AA-A0B6-"
                              "B2C5A2762F71",
                           &l, &buf),
                     CONSUMER_LINE_PROCESSED);
    assert_string_equal(l.event_id, EV);
    assert_string_equal(l.customer_id, CU);
    free(buf);
}

static void
test_name_cannot_fool_it(void **state)
{
    (void)state;
    struct consumer_line l;
    char *buf;
    /* the fields come first; a name holding "event=" and "seq=" is after */
    assert_int_equal(
        parse(TS " processed customer_creation customer=" CU " seq=4 event=" EV
                 " name=\"x event=00000000-0000-0000-0000-000000000000 seq=9\"",
              &l, &buf),
        CONSUMER_LINE_PROCESSED);
    assert_string_equal(l.event_id, EV);
    assert_true(l.seq == 4);
    free(buf);
}

static void
test_other_lines(void **state)
{
    (void)state;
    struct consumer_line l;
    char *buf;
    const char *other[] = {
        TS " duplicate customer_creation customer=" CU " seq=1 event=" EV
           " (already processed: acknowledged and confirmed again)",
        TS " rejected  event=" EV " reason=\"bad json\" (dead-lettered)",
        "    raw {\"event_id\":\"" EV "\"}",
        "2025-10-23T14:34:51.467162Z INFO  [1234] processed 10 events",
        "2025-10-23T14:34:51.467162Z WARN  [1234] gap: customer " CU,
        "",
        "\n",
        "processed",
        "garbage processed customer_creation customer=" CU " seq=1 event=" EV,
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_int_equal(parse(other[i], &l, &buf), CONSUMER_LINE_OTHER);
        free(buf);
    }
}

static void
test_malformed(void **state)
{
    (void)state;
    struct consumer_line l;
    char *buf;
    const char *bad[] = {
        TS " processed",                                         /* nothing */
        TS " processed customer_creation customer=" CU " seq=1", /* no id */
        TS " processed customer_creation customer=" CU " seq=x event=" EV,
        TS " processed customer_creation customer=" CU " seq=0 event=" EV,
        TS " processed customer_creation customer=abc seq=1 event=" EV,
        TS " processed customer_creation customer=" CU " seq=1 event=abc",
        /* a line cut by a kill and the next run's line glued to it */
        TS " processed customer_creation customer=" CU " se" TS
           " processed customer_creation",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], &l, &buf), CONSUMER_LINE_MALFORMED);
        free(buf);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_processed),
        cmocka_unit_test(test_name_cannot_fool_it),
        cmocka_unit_test(test_other_lines),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
