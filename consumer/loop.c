/*
 * consumer/loop.c — see loop.h.
 */
#include "loop.h"
#include "delivery.h"

#include "common/clock.h"
#include "common/log.h"

#define RECONNECT_FIRST_MS 1000
#define RECONNECT_MAX_MS 5000
#define IDLE_WAIT_MS 250 /* how often a quiet loop looks at the stop flag */

static void
connection_lost(struct app *a, const char *why)
{
    size_t held = reorder_held(a->reorder);
    log_warn("broker connection lost (%s); reconnecting%s", why,
             held ? " (held messages go back to the queue)" : "");
    delivery_forget_held(a);
    amqpc_drop(&a->mq);
    a->reconnect_ms = RECONNECT_FIRST_MS;
}

static bool
ensure_connected(struct app *a)
{
    if (amqpc_is_open(&a->mq))
        return true;
    if (a->reconnect_ms > 0)
        app_nap(a, a->reconnect_ms);
    if (app_stopping(a))
        return false;
    struct strbuf why = STRBUF_INIT;
    if (amqpc_connect(&a->mq, &why) < 0) {
        long next = a->reconnect_ms ? a->reconnect_ms * 2 : RECONNECT_FIRST_MS;
        if (next > RECONNECT_MAX_MS)
            next = RECONNECT_MAX_MS;
        log_warn("broker %s: %s; retrying in %ld ms", a->mq.where, sb_str(&why),
                 next);
        a->reconnect_ms = next;
        sb_free(&why);
        return false;
    }
    sb_free(&why);
    a->reconnect_ms = 0;
    log_info("consuming %s on %s (prefetch %ld, gap timeout %ld ms)",
             a->cfg.queue, a->mq.where, a->cfg.prefetch, a->cfg.gap_timeout_ms);
    return true;
}

void
loop_run(struct app *a)
{
    while (!app_stopping(a)) {
        if (!ensure_connected(a))
            continue;

        long wait = IDLE_WAIT_MS;
        long gap = reorder_next_timeout_ms(a->reorder, mono_ms());
        if (gap >= 0 && gap < wait)
            wait = gap;

        struct amqpc_delivery d;
        struct strbuf why = STRBUF_INIT;
        switch (amqpc_next(&a->mq, wait, &d, &why)) {
        case AMQPC_DELIVERY: {
            int rc = delivery_handle(a, &d);
            amqpc_delivery_free(&d);
            if (rc < 0)
                connection_lost(a, "settling a message failed");
            break;
        }
        case AMQPC_IDLE:
            break;
        case AMQPC_LOST:
            connection_lost(a, sb_str(&why));
            break;
        }
        sb_free(&why);

        /* events whose gap has waited long enough */
        char key[REORDER_KEY_MAX];
        while (amqpc_is_open(&a->mq) && !app_stopping(a) &&
               reorder_expired_key(a->reorder, mono_ms(), key)) {
            if (delivery_drain(a, key) < 0) {
                connection_lost(a, "settling a message failed");
                break;
            }
        }
    }
}

void
loop_shut_down(struct app *a)
{
    size_t returned = 0;
    if (amqpc_is_open(&a->mq) && amqpc_cancel(&a->mq) == 0)
        returned = delivery_requeue_held(a);
    delivery_forget_held(a);
    amqpc_close(&a->mq);
    log_info("stopped: %lu processed, %lu duplicate(s), %lu rejected, %lu "
             "requeued; %zu held message(s) returned to the queue",
             a->n_processed, a->n_duplicates, a->n_rejected, a->n_requeued,
             returned);
}
