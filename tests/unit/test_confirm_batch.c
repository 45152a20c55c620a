/*
 * tests/unit/test_confirm_batch.c — mq/confirm_batch.h, the
 * publisher-confirm bookkeeping of a pipelined batch without a broker
 * (confirm_batch_init() and confirm_batch_on_frame()): slot i has delivery
 * tag first_tag + i; a basic.ack of one tag settles only that slot MQ_OK;
 * an ack or nack of a tag outside the batch (an earlier batch's, or a later
 * one without `multiple`) changes nothing; `multiple` is a watermark that
 * settles every unsettled slot up to the tag (one beyond the batch settles
 * all of it); a basic.nack is MQ_NACK (single and multiple); a basic.return
 * naming a slot's message_id makes its ack MQ_RETURNED (mandatory and
 * unroutable: the broker acks it anyway, docs/API.md §7.2) while the other
 * slots of the same multiple ack are MQ_OK, and a nack after a return stays
 * MQ_NACK; a return naming an unknown id (or none) changes nothing, and
 * one return marks one message; a channel.close or connection.close is
 * CONFIRM_CLOSED and settles nothing; CONFIRM_DONE comes exactly when the
 * last slot settles; a settled slot is never settled again; init starts
 * reused slots clean; first_tag near UINT64_MAX does not overflow, also
 * when the last slot's tag is UINT64_MAX itself; n = 1 behaves like the
 * former single publish; n = 0 is done at once; any other method is
 * ignored.  Also mq_result_label().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "mq/confirm_batch.h"

#define ACK AMQP_BASIC_ACK_METHOD
#define NACK AMQP_BASIC_NACK_METHOD
#define RETURN AMQP_BASIC_RETURN_METHOD

#define MAXN 8

static const char *const ids[MAXN] = {"id-0", "id-1", "id-2", "id-3",
                                      "id-4", "id-5", "id-6", "id-7"};

/* A batch of n slots named ids[0..n-1], slot i with tag first_tag + i. */
static void
start(struct confirm_batch *b, struct mq_slot *slots, size_t n,
      uint64_t first_tag)
{
    assert_true(n <= MAXN);
    for (size_t i = 0; i < n; i++) {
        slots[i].message_id = ids[i];
        /* garbage that init must clear */
        slots[i].settled = true;
        slots[i].returned = true;
        slots[i].result = MQ_CONNECTION;
    }
    confirm_batch_init(b, slots, n, first_tag);
}

static enum confirm_step
frame(struct confirm_batch *b, uint32_t method, uint64_t tag, bool multiple)
{
    return confirm_batch_on_frame(b, method, tag, multiple, NULL);
}

static enum confirm_step
returned(struct confirm_batch *b, const char *id)
{
    return confirm_batch_on_frame(b, RETURN, 0, false, id);
}

static void
assert_unsettled(const struct mq_slot *s)
{
    assert_false(s->settled);
}

static void
assert_settled(const struct mq_slot *s, enum mq_result r)
{
    assert_true(s->settled);
    assert_int_equal(s->result, r);
}

static void
test_init(void **state)
{
    (void)state;
    struct mq_slot s[4];
    struct confirm_batch b;
    start(&b, s, 4, 10);
    assert_ptr_equal(b.slots, s);
    assert_int_equal(b.n, 4);
    assert_true(b.first_tag == 10);
    assert_int_equal(b.left, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_false(s[i].settled);
        assert_false(s[i].returned);
        assert_string_equal(s[i].message_id, ids[i]); /* left alone */
    }
}

static void
test_ack_of_one_tag_settles_only_that_slot(void **state)
{
    (void)state;
    struct mq_slot s[4];
    struct confirm_batch b;
    start(&b, s, 4, 10);
    /* tags 10..13: ack 12 alone */
    assert_int_equal(frame(&b, ACK, 12, false), CONFIRM_PENDING);
    assert_unsettled(&s[0]);
    assert_unsettled(&s[1]);
    assert_settled(&s[2], MQ_OK);
    assert_unsettled(&s[3]);
    assert_int_equal(b.left, 3);
    /* the first and the last slot too, out of order */
    assert_int_equal(frame(&b, ACK, 13, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 10, false), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_unsettled(&s[1]);
    assert_settled(&s[3], MQ_OK);
    assert_int_equal(b.left, 1);
    assert_int_equal(frame(&b, ACK, 11, false), CONFIRM_DONE);
    assert_settled(&s[1], MQ_OK);
    assert_int_equal(b.left, 0);
}

static void
test_multiple_on_exactly_a_tag(void **state)
{
    (void)state;
    /* multiple=1 on a slot's tag settles it and all before it */
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 1); /* the first publish on a fresh channel is tag 1 */
    assert_int_equal(frame(&b, ACK, 1, true), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_unsettled(&s[1]);
    assert_unsettled(&s[2]);
    assert_int_equal(frame(&b, ACK, 3, true), CONFIRM_DONE);
    assert_settled(&s[1], MQ_OK);
    assert_settled(&s[2], MQ_OK);
}

static void
test_tag_of_earlier_batch_changes_nothing(void **state)
{
    (void)state;
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 7);
    static const uint32_t methods[] = {ACK, NACK};
    for (size_t m = 0; m < 2; m++) {
        for (int multiple = 0; multiple <= 1; multiple++) {
            assert_int_equal(frame(&b, methods[m], 6, multiple),
                             CONFIRM_PENDING);
            assert_int_equal(frame(&b, methods[m], 1, multiple),
                             CONFIRM_PENDING);
            assert_int_equal(frame(&b, methods[m], 0, multiple),
                             CONFIRM_PENDING);
        }
    }
    for (size_t i = 0; i < 3; i++)
        assert_unsettled(&s[i]);
    assert_int_equal(b.left, 3);
    /* and then ours arrive */
    assert_int_equal(frame(&b, ACK, 9, true), CONFIRM_DONE);
    for (size_t i = 0; i < 3; i++)
        assert_settled(&s[i], MQ_OK);
}

static void
test_later_tag_without_multiple_changes_nothing(void **state)
{
    (void)state;
    /* A single ack or nack of a tag beyond the batch says nothing about
     * ours. */
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 7);
    assert_int_equal(frame(&b, ACK, 10, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, NACK, 11, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, UINT64_MAX, false), CONFIRM_PENDING);
    for (size_t i = 0; i < 3; i++) {
        assert_unsettled(&s[i]);
        assert_false(s[i].returned);
    }
    assert_int_equal(b.left, 3);
}

static void
test_multiple_is_a_watermark(void **state)
{
    (void)state;
    struct mq_slot s[5];
    struct confirm_batch b;
    start(&b, s, 5, 100);
    /* tags 100..104: single ack of 101, then a watermark at 103 settles
     * 100, 102 and 103 but leaves 104 */
    assert_int_equal(frame(&b, ACK, 101, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 103, true), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_OK);
    assert_settled(&s[2], MQ_OK);
    assert_settled(&s[3], MQ_OK);
    assert_unsettled(&s[4]);
    assert_int_equal(b.left, 1);

    /* a watermark beyond the batch covers all of it */
    start(&b, s, 5, 100);
    assert_int_equal(frame(&b, ACK, 109, true), CONFIRM_DONE);
    for (size_t i = 0; i < 5; i++)
        assert_settled(&s[i], MQ_OK);
    start(&b, s, 5, 100);
    assert_int_equal(frame(&b, ACK, UINT64_MAX, true), CONFIRM_DONE);
    for (size_t i = 0; i < 5; i++)
        assert_settled(&s[i], MQ_OK);
}

static void
test_nack(void **state)
{
    (void)state;
    struct mq_slot s[4];
    struct confirm_batch b;
    start(&b, s, 4, 20);
    /* single: only that slot */
    assert_int_equal(frame(&b, NACK, 21, false), CONFIRM_PENDING);
    assert_unsettled(&s[0]);
    assert_settled(&s[1], MQ_NACK);
    assert_unsettled(&s[2]);
    assert_unsettled(&s[3]);
    /* multiple: every unsettled slot up to the tag */
    assert_int_equal(frame(&b, NACK, 22, true), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_NACK);
    assert_settled(&s[1], MQ_NACK);
    assert_settled(&s[2], MQ_NACK);
    assert_unsettled(&s[3]);
    /* a multiple nack beyond the batch covers the rest */
    assert_int_equal(frame(&b, NACK, 30, true), CONFIRM_DONE);
    assert_settled(&s[3], MQ_NACK);
}

static void
test_mixed_ack_and_nack(void **state)
{
    (void)state;
    struct mq_slot s[4];
    struct confirm_batch b;
    start(&b, s, 4, 1);
    assert_int_equal(frame(&b, NACK, 2, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 4, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_NACK);
    assert_settled(&s[2], MQ_OK);
    assert_settled(&s[3], MQ_OK);
}

static void
test_settled_slot_is_not_settled_again(void **state)
{
    (void)state;
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 5);
    assert_int_equal(frame(&b, ACK, 5, false), CONFIRM_PENDING);
    assert_int_equal(b.left, 2);
    /* a later nack of the same tag, single or as a watermark */
    assert_int_equal(frame(&b, NACK, 5, false), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_int_equal(b.left, 2);
    assert_int_equal(frame(&b, NACK, 6, true), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_NACK);
    assert_int_equal(b.left, 1);
    /* a repeated ack does not count twice either */
    assert_int_equal(frame(&b, ACK, 5, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 6, true), CONFIRM_PENDING);
    assert_settled(&s[1], MQ_NACK);
    assert_int_equal(b.left, 1);
    assert_unsettled(&s[2]);
    /* a watermark over all: only the last one is new */
    assert_int_equal(frame(&b, NACK, 7, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_NACK);
    assert_settled(&s[2], MQ_NACK);
    assert_int_equal(b.left, 0);
    /* a frame after DONE keeps it DONE and changes nothing */
    assert_int_equal(frame(&b, ACK, 7, true), CONFIRM_DONE);
    assert_settled(&s[2], MQ_NACK);
    assert_int_equal(b.left, 0);
}

static void
test_done_exactly_when_last_settles(void **state)
{
    (void)state;
    struct mq_slot s[MAXN];
    struct confirm_batch b;
    start(&b, s, MAXN, 40);
    /* settle in a scrambled order; DONE only with the eighth */
    static const uint64_t order[MAXN] = {45, 40, 47, 41, 43, 46, 42, 44};
    for (size_t i = 0; i < MAXN; i++) {
        enum confirm_step st = frame(&b, i % 2 ? NACK : ACK, order[i], false);
        assert_int_equal(b.left, MAXN - 1 - i);
        assert_int_equal(st, i + 1 < MAXN ? CONFIRM_PENDING : CONFIRM_DONE);
    }
    /* a return or an ignored method on a done batch is DONE too */
    assert_int_equal(returned(&b, ids[0]), CONFIRM_DONE);
    assert_false(s[0].returned);
    assert_int_equal(frame(&b, AMQP_BASIC_DELIVER_METHOD, 0, false),
                     CONFIRM_DONE);
}

static void
test_return_then_multiple_ack(void **state)
{
    (void)state;
    struct mq_slot s[4];
    struct confirm_batch b;
    start(&b, s, 4, 10);
    /* The return carries no delivery tag; it names the message. */
    assert_int_equal(returned(&b, "id-2"), CONFIRM_PENDING);
    assert_true(s[2].returned);
    assert_false(s[0].returned);
    assert_false(s[1].returned);
    assert_false(s[3].returned);
    assert_unsettled(&s[2]);
    assert_int_equal(b.left, 4);
    /* the ack that follows does not make it a success; the others of the
     * same multiple ack are */
    assert_int_equal(frame(&b, ACK, 13, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_OK);
    assert_settled(&s[2], MQ_RETURNED);
    assert_settled(&s[3], MQ_OK);
}

static void
test_return_then_single_ack(void **state)
{
    (void)state;
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 10);
    assert_int_equal(returned(&b, "id-1"), CONFIRM_PENDING);
    /* an ack of another tag leaves it pending */
    assert_int_equal(frame(&b, ACK, 10, false), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_unsettled(&s[1]);
    assert_int_equal(frame(&b, ACK, 11, false), CONFIRM_PENDING);
    assert_settled(&s[1], MQ_RETURNED);
    assert_int_equal(frame(&b, ACK, 12, false), CONFIRM_DONE);
    assert_settled(&s[2], MQ_OK);
}

static void
test_two_returns_then_one_multiple_ack(void **state)
{
    (void)state;
    struct mq_slot s[5];
    struct confirm_batch b;
    start(&b, s, 5, 1);
    assert_int_equal(returned(&b, "id-3"), CONFIRM_PENDING);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_int_equal(b.left, 5);
    assert_int_equal(frame(&b, ACK, 5, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_RETURNED);
    assert_settled(&s[1], MQ_OK);
    assert_settled(&s[2], MQ_OK);
    assert_settled(&s[3], MQ_RETURNED);
    assert_settled(&s[4], MQ_OK);
}

static void
test_return_of_unknown_id_changes_nothing(void **state)
{
    (void)state;
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 1);
    assert_int_equal(returned(&b, "not-ours"), CONFIRM_PENDING);
    assert_int_equal(returned(&b, ""), CONFIRM_PENDING);
    assert_int_equal(returned(&b, "id-"), CONFIRM_PENDING); /* a prefix */
    assert_int_equal(returned(&b, "id-10"), CONFIRM_PENDING);
    assert_int_equal(returned(&b, NULL), CONFIRM_PENDING); /* no id read */
    for (size_t i = 0; i < 3; i++) {
        assert_false(s[i].returned);
        assert_unsettled(&s[i]);
    }
    assert_int_equal(b.left, 3);
    assert_int_equal(frame(&b, ACK, 3, true), CONFIRM_DONE);
    for (size_t i = 0; i < 3; i++)
        assert_settled(&s[i], MQ_OK);
}

static void
test_return_does_not_match_slot_without_id(void **state)
{
    (void)state;
    /* A slot with no message_id can never be named by a return. */
    struct mq_slot s[2];
    struct confirm_batch b;
    start(&b, s, 2, 1);
    s[0].message_id = NULL;
    assert_int_equal(returned(&b, "id-1"), CONFIRM_PENDING);
    assert_false(s[0].returned);
    assert_true(s[1].returned);
    assert_int_equal(frame(&b, ACK, 2, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_RETURNED);
}

static void
test_return_id_compared_by_content(void **state)
{
    (void)state;
    /* The return's id is read into a buffer of its own. */
    struct mq_slot s[2];
    struct confirm_batch b;
    start(&b, s, 2, 1);
    char copy[16] = "id-1";
    assert_ptr_not_equal(copy, ids[1]);
    assert_int_equal(returned(&b, copy), CONFIRM_PENDING);
    assert_true(s[1].returned);
    assert_false(s[0].returned);
}

static void
test_one_return_marks_one_message(void **state)
{
    (void)state;
    /* Should two slots carry the same id, a return stands for one
     * message: the first unsettled one not yet returned. */
    struct mq_slot s[3];
    struct confirm_batch b;
    start(&b, s, 3, 1);
    s[2].message_id = ids[0];
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_true(s[0].returned);
    assert_false(s[2].returned);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_true(s[2].returned);
    assert_int_equal(frame(&b, ACK, 3, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_RETURNED);
    assert_settled(&s[1], MQ_OK);
    assert_settled(&s[2], MQ_RETURNED);
}

static void
test_nack_after_return_is_nack(void **state)
{
    (void)state;
    struct mq_slot s[2];
    struct confirm_batch b;
    start(&b, s, 2, 4);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_int_equal(frame(&b, NACK, 4, false), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_NACK);
    /* and as part of a multiple nack */
    start(&b, s, 2, 4);
    assert_int_equal(returned(&b, "id-1"), CONFIRM_PENDING);
    assert_int_equal(frame(&b, NACK, 5, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_NACK);
    assert_settled(&s[1], MQ_NACK);
}

static void
test_return_after_settle_changes_nothing(void **state)
{
    (void)state;
    struct mq_slot s[2];
    struct confirm_batch b;
    start(&b, s, 2, 1);
    assert_int_equal(frame(&b, ACK, 1, false), CONFIRM_PENDING);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_int_equal(frame(&b, ACK, 2, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_OK);
}

static void
test_init_starts_reused_slots_clean(void **state)
{
    (void)state;
    /* A return belongs to one batch: the next batch on the same slots
     * starts clean. */
    struct mq_slot s[2];
    struct confirm_batch b;
    start(&b, s, 2, 1);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 2, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_RETURNED);
    confirm_batch_init(&b, s, 2, 3);
    assert_false(s[0].returned);
    assert_false(s[0].settled);
    assert_false(s[1].settled);
    assert_int_equal(b.left, 2);
    assert_int_equal(frame(&b, ACK, 4, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_OK);
}

static void
test_channel_or_connection_close(void **state)
{
    (void)state;
    static const uint32_t closes[] = {AMQP_CHANNEL_CLOSE_METHOD,
                                      AMQP_CONNECTION_CLOSE_METHOD};
    for (size_t c = 0; c < 2; c++) {
        struct mq_slot s[3];
        struct confirm_batch b;
        start(&b, s, 3, 1);
        assert_int_equal(frame(&b, ACK, 1, false), CONFIRM_PENDING);
        /* even with a tag and multiple that would cover ours, a close
         * settles nothing itself: the caller fails the rest */
        assert_int_equal(frame(&b, closes[c], 3, true), CONFIRM_CLOSED);
        assert_settled(&s[0], MQ_OK);
        assert_unsettled(&s[1]);
        assert_unsettled(&s[2]);
        assert_int_equal(b.left, 2);

        /* also after a return */
        start(&b, s, 3, 1);
        assert_int_equal(returned(&b, "id-1"), CONFIRM_PENDING);
        assert_int_equal(frame(&b, closes[c], 0, false), CONFIRM_CLOSED);
        assert_unsettled(&s[1]);
        assert_int_equal(b.left, 3);
    }
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
    struct mq_slot s[2];
    struct confirm_batch b;
    start(&b, s, 2, 7);
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        /* even with a tag, multiple and an id that would cover ours */
        assert_int_equal(confirm_batch_on_frame(&b, others[i], 8, true, "id-0"),
                         CONFIRM_PENDING);
        assert_unsettled(&s[0]);
        assert_unsettled(&s[1]);
        assert_false(s[0].returned);
        assert_int_equal(b.left, 2);
    }
    assert_int_equal(frame(&b, ACK, 8, true), CONFIRM_DONE);
}

static void
test_large_first_tag_does_not_overflow(void **state)
{
    (void)state;
    /* tags UINT64_MAX-4 .. UINT64_MAX-1 */
    struct mq_slot s[4];
    struct confirm_batch b;
    uint64_t first = UINT64_MAX - 4;
    start(&b, s, 4, first);
    assert_int_equal(frame(&b, ACK, first - 1, true), CONFIRM_PENDING);
    assert_int_equal(frame(&b, NACK, 5, true), CONFIRM_PENDING);
    assert_int_equal(b.left, 4);
    assert_int_equal(frame(&b, ACK, first + 1, true), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_OK);
    assert_unsettled(&s[2]);
    assert_int_equal(frame(&b, NACK, first + 2, false), CONFIRM_PENDING);
    assert_settled(&s[2], MQ_NACK);
    assert_unsettled(&s[3]);
    assert_int_equal(frame(&b, ACK, UINT64_MAX, true), CONFIRM_DONE);
    assert_settled(&s[3], MQ_OK);
}

static void
test_last_tag_is_uint64_max(void **state)
{
    (void)state;
    /* tags UINT64_MAX-3 .. UINT64_MAX: the last slot's tag is the largest
     * there is, so first_tag + n does not fit in 64 bits.  A watermark of
     * an earlier batch must still change nothing.  (Fails while
     * confirm_batch_on_frame() tests `delivery_tag >= first_tag + n`: that
     * sum wraps to 0, so any earlier multiple ack settles the whole batch
     * MQ_OK and returns CONFIRM_DONE.) */
    struct mq_slot s[4];
    struct confirm_batch b;
    uint64_t first = UINT64_MAX - 3;
    start(&b, s, 4, first);
    assert_int_equal(frame(&b, ACK, first - 1, true), CONFIRM_PENDING);
    assert_int_equal(frame(&b, NACK, 1, true), CONFIRM_PENDING);
    for (size_t i = 0; i < 4; i++)
        assert_unsettled(&s[i]);
    assert_int_equal(b.left, 4);
    /* its own tags still settle */
    assert_int_equal(frame(&b, ACK, first + 1, true), CONFIRM_PENDING);
    assert_settled(&s[0], MQ_OK);
    assert_settled(&s[1], MQ_OK);
    assert_int_equal(frame(&b, NACK, UINT64_MAX, false), CONFIRM_PENDING);
    assert_settled(&s[3], MQ_NACK);
    assert_int_equal(frame(&b, ACK, UINT64_MAX, true), CONFIRM_DONE);
    assert_settled(&s[2], MQ_OK);
}

static void
test_one_slot_is_the_single_publish(void **state)
{
    (void)state;
    struct mq_slot s[1];
    struct confirm_batch b;

    /* ack of our tag, single or multiple */
    start(&b, s, 1, 7);
    assert_int_equal(frame(&b, ACK, 7, false), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);
    start(&b, s, 1, 7);
    assert_int_equal(frame(&b, ACK, 7, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);

    /* earlier tags, single or as a watermark, and a later single tag,
     * leave it pending */
    start(&b, s, 1, 7);
    assert_int_equal(frame(&b, ACK, 6, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 6, true), CONFIRM_PENDING);
    assert_int_equal(frame(&b, NACK, 6, true), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 8, false), CONFIRM_PENDING);
    assert_unsettled(&s[0]);
    /* a watermark above it settles it */
    assert_int_equal(frame(&b, ACK, 9, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_OK);

    /* nack */
    start(&b, s, 1, 3);
    assert_int_equal(frame(&b, NACK, 3, false), CONFIRM_DONE);
    assert_settled(&s[0], MQ_NACK);
    start(&b, s, 1, 3);
    assert_int_equal(frame(&b, NACK, 5, true), CONFIRM_DONE);
    assert_settled(&s[0], MQ_NACK);

    /* return then ack */
    start(&b, s, 1, 2);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 1, false), CONFIRM_PENDING);
    assert_int_equal(frame(&b, ACK, 2, false), CONFIRM_DONE);
    assert_settled(&s[0], MQ_RETURNED);

    /* close */
    start(&b, s, 1, 5);
    assert_int_equal(frame(&b, AMQP_CHANNEL_CLOSE_METHOD, 0, false),
                     CONFIRM_CLOSED);
    assert_unsettled(&s[0]);
}

static void
test_empty_batch_is_done(void **state)
{
    (void)state;
    struct confirm_batch b;
    confirm_batch_init(&b, NULL, 0, 1);
    assert_int_equal(b.left, 0);
    /* nothing to settle, whatever arrives (and no slot is touched) */
    assert_int_equal(frame(&b, ACK, 1, true), CONFIRM_DONE);
    assert_int_equal(frame(&b, NACK, UINT64_MAX, true), CONFIRM_DONE);
    assert_int_equal(frame(&b, ACK, 0, false), CONFIRM_DONE);
    assert_int_equal(returned(&b, "id-0"), CONFIRM_DONE);
    assert_int_equal(b.left, 0);
    assert_int_equal(frame(&b, AMQP_CONNECTION_CLOSE_METHOD, 0, false),
                     CONFIRM_CLOSED);
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
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_ack_of_one_tag_settles_only_that_slot),
        cmocka_unit_test(test_multiple_on_exactly_a_tag),
        cmocka_unit_test(test_tag_of_earlier_batch_changes_nothing),
        cmocka_unit_test(test_later_tag_without_multiple_changes_nothing),
        cmocka_unit_test(test_multiple_is_a_watermark),
        cmocka_unit_test(test_nack),
        cmocka_unit_test(test_mixed_ack_and_nack),
        cmocka_unit_test(test_settled_slot_is_not_settled_again),
        cmocka_unit_test(test_done_exactly_when_last_settles),
        cmocka_unit_test(test_return_then_multiple_ack),
        cmocka_unit_test(test_return_then_single_ack),
        cmocka_unit_test(test_two_returns_then_one_multiple_ack),
        cmocka_unit_test(test_return_of_unknown_id_changes_nothing),
        cmocka_unit_test(test_return_does_not_match_slot_without_id),
        cmocka_unit_test(test_return_id_compared_by_content),
        cmocka_unit_test(test_one_return_marks_one_message),
        cmocka_unit_test(test_nack_after_return_is_nack),
        cmocka_unit_test(test_return_after_settle_changes_nothing),
        cmocka_unit_test(test_init_starts_reused_slots_clean),
        cmocka_unit_test(test_channel_or_connection_close),
        cmocka_unit_test(test_other_methods_are_ignored),
        cmocka_unit_test(test_large_first_tag_does_not_overflow),
        cmocka_unit_test(test_last_tag_is_uint64_max),
        cmocka_unit_test(test_one_slot_is_the_single_publish),
        cmocka_unit_test(test_empty_batch_is_done),
        cmocka_unit_test(test_result_labels),
    };
    return cmocka_run_group_tests_name("mq/confirm_batch", tests, NULL, NULL);
}
