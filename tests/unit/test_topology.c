/*
 * tests/unit/test_topology.c — common/topology.h: which names are consumer
 * names (^[a-z0-9][a-z0-9_-]{0,62}$, only the first n bytes counted), and
 * the queue and DLQ names built from one (docs/API.md §8.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/topology.h"

static bool
is_name(const char *s)
{
    return is_consumer_name(s, strlen(s));
}

static void
test_consumer_name_accepts(void **state)
{
    (void)state;
    assert_true(is_name("bank001"));
    assert_true(is_name("a"));
    assert_true(is_name("0"));
    assert_true(is_name("system_default"));
    assert_true(is_name("bank-1_x"));
    char longest[64];
    memset(longest, 'z', 63);
    longest[63] = '\0';
    assert_true(is_name(longest));
}

static void
test_consumer_name_refuses(void **state)
{
    (void)state;
    assert_false(is_name(""));
    assert_false(is_name("_bank"));
    assert_false(is_name("-bank"));
    assert_false(is_name("Bank"));
    assert_false(is_name("bank 1"));
    assert_false(is_name("bank.1"));
    assert_false(is_name("bank#"));
    assert_false(is_name("b\xC3\xA4nk"));
    char too_long[65];
    memset(too_long, 'z', 64);
    too_long[64] = '\0';
    assert_false(is_name(too_long));
}

static void
test_consumer_name_counts_n_bytes(void **state)
{
    (void)state;
    assert_true(is_consumer_name("bank.1", 4));
    assert_false(is_consumer_name("bank", 0));
    assert_false(is_consumer_name("bank\0x", 6));
}

static void
test_queue_names(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    mq_queue_name(&sb, "bank001", false);
    assert_string_equal(sb_str(&sb), "customer_notification_bank001");
    sb_reset(&sb);
    mq_queue_name(&sb, "bank001", true);
    assert_string_equal(sb_str(&sb), "customer_notification_bank001_DLQ");
    assert_false(sb.oom);
    sb_free(&sb);
    assert_string_equal(MQ_EXCHANGE_EVENTS, "fintegrate.events");
    assert_string_equal(MQ_EXCHANGE_DLX, "fintegrate.dlx");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consumer_name_accepts),
        cmocka_unit_test(test_consumer_name_refuses),
        cmocka_unit_test(test_consumer_name_counts_n_bytes),
        cmocka_unit_test(test_queue_names),
    };
    return cmocka_run_group_tests_name(
        "common/topology: consumer names, queue names", tests, NULL, NULL);
}
