/*
 * tests/unit/test_confirm.c — confirm_on_frame() of mq/amqp_conn.h, the
 * publisher-confirm bookkeeping of one publish without a broker: a
 * basic.ack of our delivery tag settles it ACKED; an ack or nack of an
 * earlier tag without `multiple` leaves it pending; `multiple` makes the
 * tag a watermark; a basic.nack is NACKED; a basic.return followed by the
 * ack is RETURNED (mandatory and unroutable: the broker acks it anyway,
 * ENVIRONMENT.md); a channel.close or connection.close is CLOSED; any other
 * method is ignored.  Also mq_result_label().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "mq/amqp_conn.h"

static struct confirm_wait
waiting_for(uint64_t tag)
{
    struct confirm_wait w = {.tag = tag, .returned = false};
    return w;
}

static void
test_ack_of_our_tag(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(7);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 7, false),
                     CONFIRM_ACKED);
    /* multiple=1 on exactly our tag settles it too */
    w = waiting_for(7);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 7, true),
                     CONFIRM_ACKED);
    /* the first publish on a fresh channel is tag 1 */
    w = waiting_for(1);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 1, false),
                     CONFIRM_ACKED);
}

static void
test_ack_of_earlier_tag_is_pending(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(7);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 6, false),
                     CONFIRM_PENDING);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 1, false),
                     CONFIRM_PENDING);
    /* a watermark below our tag does not cover it either */
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 6, true),
                     CONFIRM_PENDING);
    /* and then ours arrives */
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 7, false),
                     CONFIRM_ACKED);
}

static void
test_ack_of_later_tag_without_multiple_is_pending(void **state)
{
    (void)state;
    /* A single ack of another (later) tag says nothing about ours. */
    struct confirm_wait w = waiting_for(7);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 8, false),
                     CONFIRM_PENDING);
    assert_false(w.returned);
}

static void
test_multiple_is_a_watermark(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(7);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 9, true),
                     CONFIRM_ACKED);
    w = waiting_for(7);
    assert_int_equal(
        confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, UINT64_MAX, true),
        CONFIRM_ACKED);
}

static void
test_nack(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(3);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_NACK_METHOD, 3, false),
                     CONFIRM_NACKED);
    /* a nack of an earlier tag alone is not ours */
    w = waiting_for(3);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_NACK_METHOD, 2, false),
                     CONFIRM_PENDING);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_NACK_METHOD, 2, true),
                     CONFIRM_PENDING);
    /* a multiple nack at or above our tag is */
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_NACK_METHOD, 5, true),
                     CONFIRM_NACKED);
}

static void
test_nack_after_return_is_nacked(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(4);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_RETURN_METHOD, 0, false),
                     CONFIRM_PENDING);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_NACK_METHOD, 4, false),
                     CONFIRM_NACKED);
}

static void
test_return_then_ack_is_returned(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(2);
    /* The return carries no delivery tag; it only marks the publish. */
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_RETURN_METHOD, 0, false),
                     CONFIRM_PENDING);
    assert_true(w.returned);
    /* an ack of an earlier tag still leaves it pending */
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 1, false),
                     CONFIRM_PENDING);
    /* the ack that follows the return does not make it a success */
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 2, false),
                     CONFIRM_RETURNED);

    /* the same with a multiple ack */
    w = waiting_for(2);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_RETURN_METHOD, 0, false),
                     CONFIRM_PENDING);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 3, true),
                     CONFIRM_RETURNED);
}

static void
test_fresh_wait_is_not_returned(void **state)
{
    (void)state;
    /* A return belongs to one publish: a new wait starts clean. */
    struct confirm_wait w = waiting_for(2);
    (void)confirm_on_frame(&w, AMQP_BASIC_RETURN_METHOD, 0, false);
    w = waiting_for(3);
    assert_false(w.returned);
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 3, false),
                     CONFIRM_ACKED);
}

static void
test_channel_or_connection_close(void **state)
{
    (void)state;
    struct confirm_wait w = waiting_for(5);
    assert_int_equal(confirm_on_frame(&w, AMQP_CHANNEL_CLOSE_METHOD, 0, false),
                     CONFIRM_CLOSED);
    w = waiting_for(5);
    assert_int_equal(
        confirm_on_frame(&w, AMQP_CONNECTION_CLOSE_METHOD, 0, false),
        CONFIRM_CLOSED);
    /* also after a return: nothing was stored */
    w = waiting_for(5);
    (void)confirm_on_frame(&w, AMQP_BASIC_RETURN_METHOD, 0, false);
    assert_int_equal(confirm_on_frame(&w, AMQP_CHANNEL_CLOSE_METHOD, 0, false),
                     CONFIRM_CLOSED);
}

static void
test_other_methods_are_ignored(void **state)
{
    (void)state;
    static const uint32_t others[] = {
        AMQP_BASIC_DELIVER_METHOD,
        AMQP_BASIC_CONSUME_OK_METHOD,
        AMQP_CHANNEL_FLOW_METHOD,
        AMQP_CONNECTION_BLOCKED_METHOD,
        AMQP_CONNECTION_UNBLOCKED_METHOD,
        AMQP_QUEUE_DECLARE_OK_METHOD,
        AMQP_CHANNEL_CLOSE_OK_METHOD,
        AMQP_BASIC_CANCEL_METHOD,
        0,
    };
    struct confirm_wait w = waiting_for(7);
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        /* even with a tag and multiple that would cover ours */
        assert_int_equal(confirm_on_frame(&w, others[i], 7, true),
                         CONFIRM_PENDING);
        assert_false(w.returned);
    }
    assert_int_equal(confirm_on_frame(&w, AMQP_BASIC_ACK_METHOD, 7, false),
                     CONFIRM_ACKED);
}

static void
test_result_labels(void **state)
{
    (void)state;
    /* The `reason` label values of fintegrate_publish_failures_total. */
    assert_string_equal(mq_result_label(MQ_OK), "ok");
    assert_string_equal(mq_result_label(MQ_NACK), "nack");
    assert_string_equal(mq_result_label(MQ_RETURNED), "returned");
    assert_string_equal(mq_result_label(MQ_TIMEOUT), "timeout");
    assert_string_equal(mq_result_label(MQ_CONNECTION), "connection");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_of_our_tag),
        cmocka_unit_test(test_ack_of_earlier_tag_is_pending),
        cmocka_unit_test(test_ack_of_later_tag_without_multiple_is_pending),
        cmocka_unit_test(test_multiple_is_a_watermark),
        cmocka_unit_test(test_nack),
        cmocka_unit_test(test_nack_after_return_is_nacked),
        cmocka_unit_test(test_return_then_ack_is_returned),
        cmocka_unit_test(test_fresh_wait_is_not_returned),
        cmocka_unit_test(test_channel_or_connection_close),
        cmocka_unit_test(test_other_methods_are_ignored),
        cmocka_unit_test(test_result_labels),
    };
    return cmocka_run_group_tests_name("confirm", tests, NULL, NULL);
}
