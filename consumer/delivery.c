/*
 * consumer/delivery.c — see delivery.h.
 */
#include "delivery.h"
#include "event.h"
#include "output.h"

#include "common/clock.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_BACKOFF_FIRST_MS 1000
#define RETRY_BACKOFF_MAX_MS 15000
#define FAILED_REPORT_TRIES 3

/* A delivery being handled, or held for ordering. */
struct msg {
    uint64_t tag;
    struct event ev;
    char *body; /* owned */
    size_t len;
    char received_at[UTC_STAMP_LEN]; /* when it arrived, ISO 8601 */
    long delivery_count;
};

static void
print_event(const struct app *a, const char *verb, const struct msg *m,
            const char *note)
{
    output_event(verb, &m->ev, note, a->cfg.raw ? m->body : NULL, m->len);
}

void
delivery_free(void *p)
{
    struct msg *m = p;
    if (m == NULL)
        return;
    event_free(&m->ev);
    free(m->body);
    free(m);
}

static const char *
key_label(const char *key)
{
    return key[0] ? key : "(none)";
}

/*
 * Confirms `processed` for m and settles the delivery by the answer.
 * 0 done (or a fatal error recorded in a->exit_code); -1 the broker
 * connection is gone.
 */
static int
confirm_and_settle(struct app *a, struct msg *m)
{
    struct strbuf why = STRBUF_INIT;
    long http = 0;
    int rc;
    struct confirm_request req = {
        .event_id = m->ev.event_id,
        .status = "processed",
        .received_at = m->received_at,
    };

    enum confirm_outcome o = confirm_send(a->confirm, &req, &http, &why);
    switch (o) {
    case CONFIRM_OK:
        a->retry_streak = 0;
        log_debug("event %s confirmed: deliver_status %s", m->ev.event_id,
                  sb_str(&why));
        rc = amqpc_ack(&a->mq, m->tag);
        break;
    case CONFIRM_REFUSED:
        log_warn("event %s: the service refused its confirmation (HTTP %ld: "
                 "%s); acknowledged anyway, since retrying cannot help",
                 m->ev.event_id, http, sb_str(&why));
        rc = amqpc_ack(&a->mq, m->tag);
        break;
    case CONFIRM_AUTH: {
        struct strbuf what = STRBUF_INIT;
        sb_printf(&what,
                  "the service refused the API key (HTTP %ld: %s) "
                  "confirming event %s",
                  http, sb_str(&why), m->ev.event_id);
        app_fatal(a, sb_str(&what));
        sb_free(&what);
        rc = amqpc_requeue(&a->mq, m->tag);
        break;
    }
    case CONFIRM_RETRY:
    default: {
        a->retry_streak++;
        long backoff = RETRY_BACKOFF_FIRST_MS;
        for (long i = 1; i < a->retry_streak && backoff < RETRY_BACKOFF_MAX_MS;
             i++)
            backoff *= 2;
        if (backoff > RETRY_BACKOFF_MAX_MS)
            backoff = RETRY_BACKOFF_MAX_MS;
        if (http != 0)
            log_warn("event %s: confirm-delivery failed (HTTP %ld: %s); "
                     "requeued after %ld ms (delivery %ld)",
                     m->ev.event_id, http, sb_str(&why), backoff,
                     m->delivery_count + 1);
        else
            log_warn("event %s: confirm-delivery failed (%s); requeued after "
                     "%ld ms (delivery %ld)",
                     m->ev.event_id, sb_str(&why), backoff,
                     m->delivery_count + 1);
        app_nap(a, backoff);
        a->n_requeued++;
        rc = amqpc_requeue(&a->mq, m->tag);
        break;
    }
    }
    sb_free(&why);
    return rc;
}

/* Handles an event in its turn: a duplicate is only confirmed again. */
static int
process(struct app *a, struct msg *m, const char *note)
{
    struct strbuf err = STRBUF_INIT;

    if (state_has_event(a->state, m->ev.event_id)) {
        a->n_duplicates++;
        print_event(a, "duplicate", m,
                    "already processed: acknowledged and confirmed again");
        return confirm_and_settle(a, m);
    }

    /* A bank's own handling of the event goes here; this program's is to
     * print it.  It happens before the id is recorded: a crash in between
     * means processing again after the restart (at least once), never not
     * at all. */
    print_event(a, "processed", m, note);
    if (state_record(a->state, m->ev.event_id, m->ev.customer_key,
                     m->ev.sequence, wall_ms(), &err) < 0) {
        struct strbuf what = STRBUF_INIT;
        sb_printf(&what, "cannot record event %s as processed (%s)",
                  m->ev.event_id, sb_str(&err));
        app_fatal(a, sb_str(&what));
        sb_free(&what);
        sb_free(&err);
        return amqpc_requeue(&a->mq, m->tag);
    }
    a->n_processed++;
    return confirm_and_settle(a, m);
}

int
delivery_drain(struct app *a, const char *key)
{
    struct reorder_out o;
    char owned_key[REORDER_KEY_MAX];

    snprintf(owned_key, sizeof owned_key, "%s", key);
    while (!app_stopping(a)) {
        int64_t last = state_last_seq(a->state, owned_key);
        if (!reorder_release(a->reorder, owned_key, last, mono_ms(), &o))
            break;
        struct msg *m = o.item;
        char note[160] = "";
        if (o.after_gap) {
            log_warn("gap: customer %s: sequence %lld..%lld did not arrive "
                     "within %ld ms; processing %lld (event %s) without it",
                     key_label(owned_key), (long long)o.gap_first,
                     (long long)o.gap_last, a->cfg.gap_timeout_ms,
                     (long long)o.seq, m->ev.event_id);
            snprintf(note, sizeof note, "after a gap: seq %lld..%lld missing",
                     (long long)o.gap_first, (long long)o.gap_last);
        } else if (o.seq <= last) {
            snprintf(note, sizeof note, "late: seq %lld already passed",
                     (long long)last);
        }
        int rc = process(a, m, note[0] ? note : NULL);
        delivery_free(m);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Reports a dead-lettered event `failed`, a few times if need be. */
static void
report_failed(struct app *a, const char *event_id, const char *reason)
{
    struct strbuf text = STRBUF_INIT;
    sb_printf(&text, "Rejected by the consumer: %s", reason);
    struct confirm_request req = {
        .event_id = event_id,
        .status = "failed",
        .failure_reason = sb_str(&text),
    };
    for (int i = 1; i <= FAILED_REPORT_TRIES; i++) {
        struct strbuf why = STRBUF_INIT;
        long http = 0;
        enum confirm_outcome o = confirm_send(a->confirm, &req, &http, &why);
        if (o == CONFIRM_OK) {
            log_info("event %s reported failed", event_id);
        } else if (o == CONFIRM_RETRY && i < FAILED_REPORT_TRIES &&
                   !app_stopping(a)) {
            log_warn("event %s: reporting it failed did not get through "
                     "(%s); trying again",
                     event_id, sb_str(&why));
            sb_free(&why);
            app_nap(a, (long)RETRY_BACKOFF_FIRST_MS * i);
            continue;
        } else if (o == CONFIRM_AUTH) {
            struct strbuf what = STRBUF_INIT;
            sb_printf(&what,
                      "the service refused the API key (HTTP %ld: %s)"
                      " reporting event %s failed",
                      http, sb_str(&why), event_id);
            app_fatal(a, sb_str(&what));
            sb_free(&what);
        } else {
            log_error("event %s: could not report it failed (HTTP %ld: %s); "
                      "it stays undelivered at the service and the message "
                      "is in the DLQ",
                      event_id, http, sb_str(&why));
        }
        sb_free(&why);
        break;
    }
    sb_free(&text);
}

static int
reject_poison(struct app *a, struct msg *m, const char *reason)
{
    a->n_rejected++;
    output_rejected(m->ev.event_id, reason, a->cfg.raw ? m->body : NULL,
                    m->len);
    log_warn("rejected a message (event %s, delivery %ld): %s; dead-lettered",
             m->ev.event_id[0] ? m->ev.event_id : "unknown",
             m->delivery_count + 1, reason);
    int rc = amqpc_reject(&a->mq, m->tag);
    if (m->ev.event_id[0] == '\0')
        return rc;
    if (state_has_event(a->state, m->ev.event_id))
        /* the real event was handled: a mangled copy must not mark it
         * failed at the service */
        log_warn("event %s was processed before: not reported failed",
                 m->ev.event_id);
    else
        report_failed(a, m->ev.event_id, reason);
    return rc;
}

int
delivery_handle(struct app *a, struct amqpc_delivery *d)
{
    struct strbuf reason = STRBUF_INIT;
    int rc = 0;
    struct msg *m = calloc(1, sizeof *m);
    if (m == NULL) {
        log_error("out of memory holding a message: requeued");
        return amqpc_requeue(&a->mq, d->tag);
    }
    m->tag = d->tag;
    m->body = d->body;
    m->len = d->len;
    d->body = NULL;
    m->delivery_count = d->delivery_count;
    utc_stamp(m->received_at, true);

    if (event_parse(&m->ev, m->body, m->len, d->message_id, &reason) < 0) {
        rc = reject_poison(a, m, sb_str(&reason));
        goto out;
    }
    if (state_has_event(a->state, m->ev.event_id)) {
        rc = process(a, m, NULL); /* the duplicate path */
        goto out;
    }

    const char *key = m->ev.customer_key;
    int64_t last = state_last_seq(a->state, key);
    switch (
        reorder_offer(a->reorder, key, m->ev.sequence, last, mono_ms(), m)) {
    case REORDER_HELD:
        log_info("event %s (customer %s, seq %lld) waits for seq %lld..%lld "
                 "(at most %ld ms)",
                 m->ev.event_id, key_label(key), (long long)m->ev.sequence,
                 (long long)last + 1, (long long)m->ev.sequence - 1,
                 a->cfg.gap_timeout_ms);
        m = NULL; /* the buffer's now */
        break;
    case REORDER_NOW:
        rc = process(a, m, NULL);
        if (rc == 0)
            rc = delivery_drain(a, key);
        break;
    case REORDER_LATE: {
        char note[96];
        snprintf(note, sizeof note, "late: seq %lld already passed",
                 (long long)last);
        rc = process(a, m, note);
        break;
    }
    case REORDER_ERROR:
    default:
        log_warn("event %s: cannot hold it for ordering (out of memory); "
                 "processing it now",
                 m->ev.event_id);
        rc = process(a, m, "out of order");
        break;
    }
out:
    delivery_free(m);
    sb_free(&reason);
    return rc;
}

size_t
delivery_requeue_held(struct app *a)
{
    size_t returned = 0;
    struct msg *m;
    while ((m = reorder_take_any(a->reorder)) != NULL) {
        if (amqpc_requeue(&a->mq, m->tag) == 0)
            returned++;
        delivery_free(m);
    }
    return returned;
}

void
delivery_forget_held(struct app *a)
{
    struct msg *m;
    while ((m = reorder_take_any(a->reorder)) != NULL)
        delivery_free(m);
}
