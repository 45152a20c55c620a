/*
 * consumer/main.c — fintegrate-consumer, the bank side of Fintegrate
 * (docs/API.md §9.3): reads a consumer's queue, prints
 * each event, and confirms it with POST /events/confirm-delivery.
 *
 * One thread, one loop.  For each delivery:
 *   1. parse it (consumer/event.h); poison → basic.reject without requeue
 *      (the broker dead-letters it at once), then report it `failed` when
 *      the event is identifiable;
 *   2. an event_id already processed (consumer/state.h) → print
 *      "duplicate", confirm `processed` again, ack;
 *   3. otherwise order it per customer (consumer/reorder.h): the next in
 *      sequence (or a late one) is processed now, one ahead of a gap waits
 *      — still unacknowledged — until the gap fills or the gap timeout;
 *   4. processing = print "processed", record the id durably, confirm
 *      `processed`, ack.  A confirmation that cannot get through (the API
 *      unreachable, 5xx, 429) → short backoff, basic.nack with requeue, so
 *      the queue's delivery limit dead-letters it if the trouble lasts; the
 *      redelivery is then a duplicate that is only confirmed.
 * The broker connection is re-made with a backoff whenever it breaks.
 * SIGINT/SIGTERM: the message in hand is finished (a backoff is cut
 * short and the message requeued), held ones go back to the queue, exit 0.
 *
 * Output: one line per event on stdout (line-buffered), log lines on
 * stderr (common/log).  Neither ever holds the API key or the broker
 * password.
 */
#include "amqp_consume.h"
#include "config.h"
#include "confirm.h"
#include "event.h"
#include "reorder.h"
#include "state.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/version.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_BACKOFF_FIRST_MS 1000
#define RETRY_BACKOFF_MAX_MS 15000
#define RECONNECT_FIRST_MS 1000
#define RECONNECT_MAX_MS 5000
#define IDLE_WAIT_MS 250 /* how often a quiet loop looks at the stop flag */
#define FAILED_REPORT_TRIES 3
#define RAW_MAX_BYTES ((size_t)64 * 1024)
#define EXIT_FATAL 3

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* A delivery being handled, or held for ordering. */
struct msg {
    uint64_t tag;
    struct event ev;
    char *body; /* owned */
    size_t len;
    char received_at[UTC_STAMP_LEN]; /* when it arrived, ISO 8601 */
    long delivery_count;
};

struct app {
    struct consumer_config cfg;
    struct state *state;
    struct reorder *reorder;
    struct confirm_client *confirm;
    struct amqpc mq;
    int exit_code;     /* non-zero: a fatal error, stop with it */
    long retry_streak; /* consecutive confirmations that could not get
                          through */
    long reconnect_ms; /* wait before the next connection attempt */
    unsigned long n_processed, n_duplicates, n_rejected, n_requeued;
};

static bool
stopping(const struct app *a)
{
    return g_stop || a->exit_code != 0;
}

/* Sleeps up to ms, waking early when a stop is requested. */
static void
nap(const struct app *a, long ms)
{
    uint64_t until = mono_ms() + (uint64_t)(ms < 0 ? 0 : ms);
    while (!stopping(a)) {
        uint64_t now = mono_ms();
        if (now >= until)
            return;
        uint64_t step = until - now < 100 ? until - now : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* -------------------------------------------------------------- output */

static void
emit(struct strbuf *line)
{
    if (!line->oom)
        fwrite(line->buf, 1, line->len, stdout);
    fflush(stdout);
}

/* "<time> processed customer_creation customer=… seq=1 event=… name=…" */
static void
print_event(const struct app *a, const char *verb, const struct msg *m,
            const char *note)
{
    struct strbuf sb = STRBUF_INIT;
    char ts[UTC_STAMP_LEN];
    utc_stamp(ts, false);
    sb_printf(&sb, "%s %-9s ", ts, verb);
    event_describe(&m->ev, &sb);
    if (note != NULL)
        sb_printf(&sb, " (%s)", note);
    sb_puts(&sb, "\n");
    if (a->cfg.raw) {
        sb_puts(&sb, "    raw ");
        event_raw_line(m->body, m->len, RAW_MAX_BYTES, &sb);
        sb_puts(&sb, "\n");
    }
    emit(&sb);
    sb_free(&sb);
}

static void
print_rejected(const struct app *a, const struct msg *m, const char *reason)
{
    struct strbuf sb = STRBUF_INIT;
    char ts[UTC_STAMP_LEN];
    utc_stamp(ts, false);
    sb_printf(&sb, "%s %-9s event=%s reason=", ts, "rejected",
              m->ev.event_id[0] ? m->ev.event_id : "-");
    event_quote(reason, strlen(reason), &sb);
    sb_puts(&sb, " (dead-lettered)\n");
    if (a->cfg.raw) {
        sb_puts(&sb, "    raw ");
        event_raw_line(m->body, m->len, RAW_MAX_BYTES, &sb);
        sb_puts(&sb, "\n");
    }
    emit(&sb);
    sb_free(&sb);
}

/* -------------------------------------------------------------- messages */

static void
msg_free(void *p)
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

static void
fatal(struct app *a, const char *what)
{
    log_error("%s: stopping (exit status %d); unfinished messages stay in "
              "the queue",
              what, EXIT_FATAL);
    a->exit_code = EXIT_FATAL;
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
        fatal(a, sb_str(&what));
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
        nap(a, backoff);
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
        fatal(a, sb_str(&what));
        sb_free(&what);
        sb_free(&err);
        return amqpc_requeue(&a->mq, m->tag);
    }
    a->n_processed++;
    return confirm_and_settle(a, m);
}

/* Releases and processes what the buffer lets go for `key`. */
static int
drain(struct app *a, const char *key)
{
    struct reorder_out o;
    char owned_key[REORDER_KEY_MAX];

    snprintf(owned_key, sizeof owned_key, "%s", key);
    while (!stopping(a)) {
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
        msg_free(m);
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
                   !stopping(a)) {
            log_warn("event %s: reporting it failed did not get through "
                     "(%s); trying again",
                     event_id, sb_str(&why));
            sb_free(&why);
            nap(a, (long)RETRY_BACKOFF_FIRST_MS * i);
            continue;
        } else if (o == CONFIRM_AUTH) {
            struct strbuf what = STRBUF_INIT;
            sb_printf(&what,
                      "the service refused the API key (HTTP %ld: %s)"
                      " reporting event %s failed",
                      http, sb_str(&why), event_id);
            fatal(a, sb_str(&what));
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
    print_rejected(a, m, reason);
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

/* One delivery from the broker; takes its body. */
static int
on_delivery(struct app *a, struct amqpc_delivery *d)
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
            rc = drain(a, key);
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
    msg_free(m);
    sb_free(&reason);
    return rc;
}

/* --------------------------------------------------------------- loop */

/* Held deliveries belong to a connection: when it is gone, so are they
 * (the broker requeues them). */
static void
forget_held(struct app *a)
{
    struct msg *m;
    while ((m = reorder_take_any(a->reorder)) != NULL)
        msg_free(m);
}

static void
connection_lost(struct app *a, const char *why)
{
    size_t held = reorder_held(a->reorder);
    log_warn("broker connection lost (%s); reconnecting%s", why,
             held ? " (held messages go back to the queue)" : "");
    forget_held(a);
    amqpc_drop(&a->mq);
    a->reconnect_ms = RECONNECT_FIRST_MS;
}

static bool
ensure_connected(struct app *a)
{
    if (amqpc_is_open(&a->mq))
        return true;
    if (a->reconnect_ms > 0)
        nap(a, a->reconnect_ms);
    if (stopping(a))
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

static void
run(struct app *a)
{
    while (!stopping(a)) {
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
            int rc = on_delivery(a, &d);
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
        while (amqpc_is_open(&a->mq) && !stopping(a) &&
               reorder_expired_key(a->reorder, mono_ms(), key)) {
            if (drain(a, key) < 0) {
                connection_lost(a, "settling a message failed");
                break;
            }
        }
    }
}

/* Stops deliveries, hands back what is held, closes. */
static void
shut_down(struct app *a)
{
    size_t returned = 0;
    if (amqpc_is_open(&a->mq) && amqpc_cancel(&a->mq) == 0) {
        struct msg *m;
        while ((m = reorder_take_any(a->reorder)) != NULL) {
            if (amqpc_requeue(&a->mq, m->tag) == 0)
                returned++;
            msg_free(m);
        }
    }
    forget_held(a);
    amqpc_close(&a->mq);
    log_info("stopped: %lu processed, %lu duplicate(s), %lu rejected, %lu "
             "requeued; %zu held message(s) returned to the queue",
             a->n_processed, a->n_duplicates, a->n_rejected, a->n_requeued,
             returned);
}

/*
 * Before consuming anything: is the key accepted, and is it this
 * consumer's?  A key of another consumer would make every confirmation a
 * 404 (acknowledged, never confirmed); a refused one would requeue every
 * message.  An API that cannot be reached now is no reason not to start:
 * confirmations are retried.
 */
static int
check_identity(struct app *a)
{
    struct strbuf why = STRBUF_INIT;
    char owner[64];
    long http = 0;
    int rc = 0;

    switch (confirm_whoami(a->confirm, owner, &http, &why)) {
    case CONFIRM_OK:
        if (strcmp(owner, a->cfg.name) != 0) {
            fprintf(stderr,
                    "fintegrate-consumer: the API key belongs to consumer "
                    "\"%s\", not \"%s\": use that consumer's key\n",
                    owner, a->cfg.name);
            rc = -1;
        }
        break;
    case CONFIRM_AUTH:
    case CONFIRM_REFUSED:
        fprintf(stderr,
                "fintegrate-consumer: the service refuses the API key (HTTP "
                "%ld: %s)\n",
                http, sb_str(&why));
        rc = -1;
        break;
    case CONFIRM_RETRY:
    default:
        if (http != 0)
            log_warn("cannot check the API key now (HTTP %ld: %s); starting "
                     "anyway: confirmations are retried",
                     http, sb_str(&why));
        else
            log_warn("cannot check the API key now (%s); starting anyway: "
                     "confirmations are retried",
                     sb_str(&why));
        break;
    }
    sb_free(&why);
    return rc;
}

static int
install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked call returns */
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

int
main(int argc, char **argv)
{
    struct app a;
    struct strbuf err = STRBUF_INIT;
    int rc = 1;
    bool curl_ready = false;

    memset(&a, 0, sizeof a);
    int action = consumer_config_load(&a.cfg, argc, argv, NULL, &err);
    if (action < 0) {
        fprintf(stderr, "fintegrate-consumer: %s\n", sb_str(&err));
        goto out;
    }
    if (action == CONSUMER_CONFIG_HELP) {
        consumer_config_usage(stdout);
        rc = 0;
        goto out;
    }
    if (log_open(NULL, (enum log_level)a.cfg.log_level) < 0)
        goto out;
    if (action == CONSUMER_CONFIG_CHECK) {
        consumer_config_print(&a.cfg, stdout);
        rc = 0;
        goto out;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (install_signals() < 0) {
        fprintf(stderr, "fintegrate-consumer: cannot install signal "
                        "handlers\n");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "fintegrate-consumer: libcurl did not initialise\n");
        goto out;
    }
    curl_ready = true;

    a.reorder = reorder_new(a.cfg.gap_timeout_ms);
    a.confirm = confirm_client_new(a.cfg.base_url, a.cfg.api_key,
                                   a.cfg.http_timeout_ms);
    if (a.reorder == NULL || a.confirm == NULL) {
        fprintf(stderr, "fintegrate-consumer: out of memory\n");
        goto out;
    }
    struct strbuf name = STRBUF_INIT;
    sb_printf(&name, "fintegrate-consumer %s", a.cfg.name);
    int init = amqpc_init(&a.mq, a.cfg.amqp_url, a.cfg.queue, sb_str(&name),
                          (int)a.cfg.prefetch, &err);
    sb_free(&name);
    if (init < 0) {
        fprintf(stderr, "fintegrate-consumer: %s\n", sb_str(&err));
        goto out;
    }
    if (check_identity(&a) < 0)
        goto out;
    struct state_options so = {
        .max_events = a.cfg.retain_events,
        .max_age_days = a.cfg.retain_days,
        .max_customers = a.cfg.retain_customers,
        .fsync = true,
    };
    if (state_open(&a.state, a.cfg.state_dir, &so, wall_ms(), &err) < 0) {
        fprintf(stderr, "fintegrate-consumer: %s\n", sb_str(&err));
        goto out;
    }

    log_info("fintegrate-consumer %s: consumer %s, API %s, state %s (%zu "
             "processed id(s), %zu customer(s) remembered)",
             FINTEGRATE_VERSION, a.cfg.name, a.cfg.base_url, a.cfg.state_dir,
             state_event_count(a.state), state_customer_count(a.state));
    run(&a);
    shut_down(&a);
    rc = a.exit_code;
out:
    amqpc_free(&a.mq);
    reorder_free(a.reorder, msg_free);
    confirm_client_free(a.confirm);
    state_close(a.state);
    consumer_config_free(&a.cfg);
    if (curl_ready)
        curl_global_cleanup();
    sb_free(&err);
    log_close();
    return rc;
}
