/*
 * tests/fuzz/fuzz_sequences.c — libFuzzer target: sequences of operations
 * with extreme values on two pure state machines, each checked against a
 * small model of its contract:
 *   - the consumer program's reorder buffer (consumer/reorder.h): offer,
 *     release, expired key, next timeout, take any — sequences, last_done
 *     and clocks drawn from INT64_MIN/MAX, UINT64_MAX and their neighbours;
 *   - the publisher's confirm bookkeeping (mq/confirm_batch.h):
 *     batches whose delivery tags reach UINT64_MAX, fed basic.ack/nack
 *     (single and multiple), basic.return and close frames.
 * No broker: confirm_batch_on_frame is the pure layer under the socket.
 *
 * Input: a stream of operation bytes, each followed by the bytes it reads
 * (a value is one byte picking an extreme, or eight raw bytes).  The
 * checks abort on any disagreement with the model; ASan and UBSan catch
 * the rest (a signed overflow at INT64_MAX was one).
 */
#include "common.h"

#include "consumer/reorder.h"
#include "mq/confirm_batch.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <limits.h>
#include <string.h>

struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t
u8(struct reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static uint64_t
raw64(struct reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(r);
    return v;
}

/* A signed value: mostly extremes and small numbers. */
static int64_t
i64(struct reader *r)
{
    static const int64_t pick[] = {
        INT64_MIN,     INT64_MIN + 1, -1,       0, 1, 2, 3, 4, 5, 10, 100,
        INT64_MAX - 2, INT64_MAX - 1, INT64_MAX};
    uint8_t b = u8(r);
    if (b < 2 * (sizeof pick / sizeof *pick))
        return pick[b % (sizeof pick / sizeof *pick)];
    if (b < 200)
        return (int64_t)(b % 16);
    return (int64_t)raw64(r);
}

/* An unsigned value (clocks, delivery tags). */
static uint64_t
u64(struct reader *r)
{
    static const uint64_t pick[] = {0,
                                    1,
                                    2,
                                    5,
                                    1000,
                                    5000,
                                    UINT64_MAX - 5000,
                                    UINT64_MAX - 8,
                                    UINT64_MAX - 1,
                                    UINT64_MAX};
    uint8_t b = u8(r);
    if (b < 2 * (sizeof pick / sizeof *pick))
        return pick[b % (sizeof pick / sizeof *pick)];
    if (b < 200)
        return b;
    return raw64(r);
}

/* ------------------------------------------------------------ reorder */

#define MAX_ITEMS 512

struct item {
    int key;
    int64_t seq;
    uint64_t since;
};

static const char *const keys[] = {
    "", "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    /* 63 characters: the longest key kept */
    "k23456789012345678901234567890123456789012345678901234567890123",
    /* 64: too long */
    "k234567890123456789012345678901234567890123456789012345678901234"};
#define NKEYS (sizeof keys / sizeof *keys)

struct model {
    struct item *held[MAX_ITEMS];
    size_t n;
    uint64_t timeout;
};

static bool
is_due(int64_t seq, int64_t last)
{
    return seq <= last || seq - 1 == last;
}

static bool
key_oldest(const struct model *m, int key, uint64_t *since)
{
    bool any = false;
    for (size_t i = 0; i < m->n; i++)
        if (m->held[i]->key == key && (!any || m->held[i]->since < *since)) {
            *since = m->held[i]->since;
            any = true;
        }
    return any;
}

static bool
key_timed_out(const struct model *m, int key, uint64_t now)
{
    uint64_t since = 0;
    if (!key_oldest(m, key, &since))
        return false;
    return now >= since && now - since >= m->timeout;
}

static void
forget(struct model *m, const struct item *it)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->held[i] == it) {
            m->held[i] = m->held[--m->n];
            return;
        }
    FUZZ_CHECK(false, "the buffer handed back an item it was not holding");
}

static void
op_offer(struct reorder *r, struct model *m, struct reader *in)
{
    int key = u8(in) % (int)NKEYS;
    int64_t seq = i64(in), last = i64(in);
    uint64_t now = u64(in);
    struct item *it = malloc(sizeof *it);
    FUZZ_CHECK(it != NULL, "out of memory");
    *it = (struct item){key, seq, now};
    enum reorder_verdict want = seq <= last             ? REORDER_LATE
                                : is_due(seq, last)     ? REORDER_NOW
                                : key == (int)NKEYS - 1 ? REORDER_ERROR
                                : m->n == MAX_ITEMS     ? REORDER_ERROR
                                                        : REORDER_HELD;
    if (want == REORDER_ERROR && key != (int)NKEYS - 1) {
        free(it); /* the model is full: do not offer */
        return;
    }
    enum reorder_verdict got = reorder_offer(r, keys[key], seq, last, now, it);
    FUZZ_CHECK(got == want, "offer seq %lld last %lld: verdict %d, want %d",
               (long long)seq, (long long)last, got, want);
    if (got == REORDER_HELD)
        m->held[m->n++] = it;
    else
        free(it);
}

static void
op_release(struct reorder *r, struct model *m, struct reader *in)
{
    int key = u8(in) % (int)NKEYS;
    int64_t last = i64(in);
    uint64_t now = u64(in);
    struct item *low = NULL;
    for (size_t i = 0; i < m->n; i++)
        if (m->held[i]->key == key &&
            (low == NULL || m->held[i]->seq < low->seq))
            low = m->held[i];
    bool in_order = low != NULL && is_due(low->seq, last);
    bool want = low != NULL && (in_order || key_timed_out(m, key, now));
    struct reorder_out o;
    bool got = reorder_release(r, keys[key], last, now, &o);
    FUZZ_CHECK(got == want, "release: %d, want %d", got, want);
    if (!got)
        return;
    struct item *it = o.item;
    FUZZ_CHECK(it->key == key && it->seq == low->seq && o.seq == it->seq,
               "released seq %lld, the lowest is %lld", (long long)o.seq,
               (long long)low->seq);
    FUZZ_CHECK(o.after_gap == !in_order, "after_gap %d", o.after_gap);
    if (o.after_gap)
        FUZZ_CHECK((__int128)o.gap_first == (__int128)last + 1 &&
                       (__int128)o.gap_last == (__int128)it->seq - 1 &&
                       o.gap_first <= o.gap_last,
                   "gap %lld..%lld", (long long)o.gap_first,
                   (long long)o.gap_last);
    forget(m, it);
    free(it);
}

static void
op_timeouts(struct reorder *r, struct model *m, struct reader *in)
{
    uint64_t now = u64(in);
    char key_out[REORDER_KEY_MAX];
    long best = -1;
    bool any_out = false;
    for (int k = 0; k < (int)NKEYS; k++) {
        uint64_t since = 0;
        if (!key_oldest(m, k, &since))
            continue;
        uint64_t rest;
        if (now >= since)
            rest = now - since >= m->timeout ? 0 : m->timeout - (now - since);
        else if (since - now > UINT64_MAX - m->timeout)
            rest = UINT64_MAX;
        else
            rest = since - now + m->timeout;
        long left = rest > (uint64_t)LONG_MAX ? LONG_MAX : (long)rest;
        if (best < 0 || left < best)
            best = left;
        any_out = any_out || key_timed_out(m, k, now);
    }
    long got = reorder_next_timeout_ms(r, now);
    FUZZ_CHECK(got == best, "next timeout %ld, want %ld", got, best);
    bool exp = reorder_expired_key(r, now, key_out);
    FUZZ_CHECK(exp == any_out, "expired key %d, want %d", exp, any_out);
    if (exp) {
        int k = -1;
        for (int i = 0; i < (int)NKEYS; i++)
            if (strcmp(keys[i], key_out) == 0)
                k = i;
        FUZZ_CHECK(k >= 0 && key_timed_out(m, k, now), "expired key %s",
                   key_out);
    }
    /* a timeout of 0 means a key is due now (what the main loop relies
     * on to avoid spinning) */
    if (got == 0)
        FUZZ_CHECK(exp, "next timeout 0 with no expired key");
}

static void
op_take_any(struct reorder *r, struct model *m)
{
    struct item *it = reorder_take_any(r);
    FUZZ_CHECK((it == NULL) == (m->n == 0), "take_any on %zu held", m->n);
    if (it != NULL) {
        forget(m, it);
        free(it);
    }
}

/* ------------------------------------------------------------ confirm */

#define MAX_SLOTS 8

static const char *const ids[MAX_SLOTS] = {"m0", "m1", "m2", "m3",
                                           "m4", "m5", "m6", "m7"};

static void
settle_model(struct mq_slot *model, size_t i, enum mq_result r, size_t *left)
{
    if (model[i].settled)
        return;
    model[i].settled = true;
    model[i].result = r;
    (*left)--;
}

static void
op_confirm(struct reader *in)
{
    struct mq_slot slots[MAX_SLOTS], model[MAX_SLOTS];
    struct confirm_batch b;
    size_t n = u8(in) % (MAX_SLOTS + 1), left = n;
    uint64_t first = u64(in);
    for (size_t i = 0; i < n; i++)
        slots[i].message_id = u8(in) % 4 == 0 ? NULL : ids[i % MAX_SLOTS];
    confirm_batch_init(&b, slots, n, first);
    for (size_t i = 0; i < n; i++)
        model[i] = slots[i];
    FUZZ_CHECK(b.left == n, "left %zu of %zu", b.left, n);

    unsigned frames = u8(in) % 16;
    for (unsigned f = 0; f < frames; f++) {
        static const uint32_t methods[] = {
            AMQP_BASIC_ACK_METHOD,        AMQP_BASIC_NACK_METHOD,
            AMQP_BASIC_RETURN_METHOD,     AMQP_CHANNEL_CLOSE_METHOD,
            AMQP_CONNECTION_CLOSE_METHOD, 0};
        uint8_t mb = u8(in);
        uint32_t method = methods[mb % 6];
        bool multiple = mb & 0x80;
        uint64_t tag =
            u8(in) & 1 ? first + (uint64_t)(u8(in) % 12) - 2 : u64(in);
        const char *rid = NULL;
        uint8_t ri = u8(in) % 10;
        if (ri < MAX_SLOTS)
            rid = ids[ri];

        enum confirm_step want = CONFIRM_PENDING;
        switch (method) {
        case AMQP_BASIC_ACK_METHOD:
        case AMQP_BASIC_NACK_METHOD: {
            bool ack = method == AMQP_BASIC_ACK_METHOD;
            size_t lo = 0, hi = 0;
            bool any = false;
            if (n > 0 && tag >= first && tag - first < n) {
                hi = (size_t)(tag - first);
                lo = multiple ? 0 : hi;
                any = true;
            } else if (n > 0 && multiple && tag >= first) {
                lo = 0, hi = n - 1, any = true;
            }
            for (size_t i = lo; any && i <= hi; i++)
                settle_model(model, i,
                             ack ? (model[i].returned ? MQ_RETURNED : MQ_OK)
                                 : MQ_NACK,
                             &left);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD:
            for (size_t i = 0; rid != NULL && i < n; i++)
                if (!model[i].settled && !model[i].returned &&
                    model[i].message_id != NULL &&
                    strcmp(model[i].message_id, rid) == 0) {
                    model[i].returned = true;
                    break;
                }
            break;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            want = CONFIRM_CLOSED;
            break;
        default:
            break;
        }
        if (want != CONFIRM_CLOSED && left == 0)
            want = CONFIRM_DONE;
        enum confirm_step got =
            confirm_batch_on_frame(&b, method, tag, multiple, rid);
        FUZZ_CHECK(got == want, "frame %u: step %d, want %d", method, got,
                   want);
        FUZZ_CHECK(b.left == left, "left %zu, want %zu", b.left, left);
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(slots[i].settled == model[i].settled &&
                           slots[i].returned == model[i].returned,
                       "slot %zu", i);
            if (model[i].settled)
                FUZZ_CHECK(slots[i].result == model[i].result,
                           "slot %zu: result %d, want %d", i, slots[i].result,
                           model[i].result);
        }
        if (got == CONFIRM_CLOSED)
            break;
    }
}

/* ---------------------------------------------------------------- main */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long timeouts[] = {0, 1, 1000, 5000, LONG_MAX};
    struct reader in = {data, size};
    struct model m = {.n = 0};
    if (size > 8192)
        return 0;
    long timeout = timeouts[u8(&in) % 5];
    m.timeout = (uint64_t)timeout;
    struct reorder *r = reorder_new(timeout);
    FUZZ_CHECK(r != NULL, "out of memory");

    while (in.n > 0) {
        switch (u8(&in) % 6) {
        case 0:
            op_offer(r, &m, &in);
            break;
        case 1:
            op_release(r, &m, &in);
            break;
        case 2:
            op_timeouts(r, &m, &in);
            break;
        case 3:
            op_take_any(r, &m);
            break;
        case 4:
            op_confirm(&in);
            break;
        default:
            FUZZ_CHECK(reorder_held(r) == m.n, "held %zu, want %zu",
                       reorder_held(r), m.n);
            break;
        }
    }
    FUZZ_CHECK(reorder_held(r) == m.n, "held %zu, want %zu", reorder_held(r),
               m.n);
    reorder_free(r, free);
    return 0;
}
