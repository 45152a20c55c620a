/*
 * fcgi-app/outbox/publisher.c — see publisher.h.
 */
#include "publisher.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/topology.h"
#include "../db/consumers_db.h"
#include "../metrics/metrics.h"

#include <stdlib.h>
#include <string.h>

int
publisher_init(struct publisher *p, const struct config *cfg)
{
    breaker_init(&p->breaker, cfg->breaker_failures, cfg->breaker_cooldown_ms);
    return mq_conn_init(&p->mq, cfg->amqp_url, cfg->publish_timeout_ms);
}

void
publisher_free(struct publisher *p)
{
    mq_conn_free(&p->mq);
}

const char *
publish_outcome_label(enum publish_outcome o)
{
    switch (o) {
    case PUBLISH_OK:
        return "ok";
    case PUBLISH_NACK:
        return "nack";
    case PUBLISH_RETURNED:
        return "returned";
    case PUBLISH_TIMEOUT:
        return "timeout";
    case PUBLISH_CONNECTION:
        return "connection";
    case PUBLISH_CIRCUIT_OPEN:
        return "circuit_open";
    case PUBLISH_HELD:
        return "held";
    }
    return "connection";
}

bool
publish_outcome_refused(enum publish_outcome o)
{
    return o == PUBLISH_NACK || o == PUBLISH_RETURNED || o == PUBLISH_TIMEOUT;
}

static enum publish_outcome
from_mq(enum mq_result r)
{
    switch (r) {
    case MQ_OK:
        return PUBLISH_OK;
    case MQ_NACK:
        return PUBLISH_NACK;
    case MQ_RETURNED:
        return PUBLISH_RETURNED;
    case MQ_TIMEOUT:
        return PUBLISH_TIMEOUT;
    case MQ_CONNECTION:
        return PUBLISH_CONNECTION;
    }
    return PUBLISH_CONNECTION;
}

/* Declares the exchanges and every consumer's queues on a connection that
 * was just opened.  0 ok; -1 (connection closed again) with reason. */
static int
declare_all(struct publisher *p, struct db *db, struct strbuf *reason)
{
    json_t *names = NULL;
    struct app_err err = APP_ERR_INIT;
    int rc = -1;
    size_t i;
    json_t *n;

    if (mq_conn_declare_exchanges(&p->mq, reason) < 0)
        goto out;
    if (consumers_db_names(db, &names, &err) < 0) {
        /* Without the list, declare on demand (basic.return) later. */
        log_warn("publisher: cannot list consumers to declare queues: %s",
                 err.detail ? err.detail : err.msg);
        rc = 0;
        goto out;
    }
    json_array_foreach(names, i, n)
    {
        if (mq_conn_declare_consumer(&p->mq, json_string_value(n), reason) < 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(names);
    err_clear(&err);
    return rc;
}

/* Opens the connection if needed, declaring the topology when fresh. */
static enum mq_result
ensure_open(struct publisher *p, struct db *db, struct strbuf *reason)
{
    enum mq_result r = mq_conn_open(&p->mq, reason);
    if (r != MQ_OK)
        return r;
    if (p->mq.fresh) {
        if (declare_all(p, db, reason) < 0)
            return MQ_CONNECTION;
        p->mq.fresh = false;
        log_info("publisher: connected to the broker; topology declared");
    }
    return MQ_OK;
}

void
publisher_warm_up(struct publisher *p, struct db *db)
{
    struct strbuf reason = STRBUF_INIT;
    if (breaker_allow(&p->breaker, mono_ms()) &&
        ensure_open(p, db, &reason) != MQ_OK)
        log_warn("publisher: broker not reachable yet: %s", sb_str(&reason));
    sb_free(&reason);
}

void
publisher_declare_consumer(struct publisher *p, struct db *db,
                           const char *consumer_name)
{
    struct strbuf reason = STRBUF_INIT;
    if (!breaker_allow(&p->breaker, mono_ms()))
        goto out;
    if (ensure_open(p, db, &reason) != MQ_OK ||
        mq_conn_declare_consumer(&p->mq, consumer_name, &reason) < 0)
        log_warn("publisher: queues of consumer %s not declared yet (%s); "
                 "they will be on the next connection",
                 consumer_name, sb_str(&reason));
out:
    sb_free(&reason);
}

bool
publisher_probe(struct publisher *p, struct db *db, struct strbuf *reason)
{
    breaker_force(&p->breaker);
    breaker_allow(&p->breaker, mono_ms());
    bool up = ensure_open(p, db, reason) == MQ_OK;
    if (up)
        breaker_success(&p->breaker);
    else
        breaker_trip(&p->breaker, mono_ms());
    metrics_breaker_state((int)p->breaker.state);
    return up;
}

const char *
publisher_broker_state(const struct publisher *p, struct db *db)
{
    (void)db;
    /* What this process already knows, without a packet: GET /health must
     * answer at once even when the broker's host drops everything. */
    if (p->breaker.state != BREAKER_CLOSED)
        return "circuit_open";
    return mq_conn_looks_up(&p->mq) ? "up" : "down";
}

static const char *
failure_text(enum mq_result r)
{
    switch (r) {
    case MQ_NACK:
        return "Broker refused the message (basic.nack); its queue may be "
               "full";
    case MQ_RETURNED:
        return "Message returned by the broker: no queue is bound for its "
               "routing key";
    default:
        return NULL;
    }
}

static void
set_result(struct publish_result *res, enum publish_outcome o, const char *why)
{
    res->outcome = o;
    sb_reset(&res->reason);
    if (o != PUBLISH_OK)
        sb_puts(&res->reason, why && why[0] ? why : "Publishing failed");
}

/* Sends evs[idx[..]] pipelined on an open connection and settles them. */
static void
send_wave(struct publisher *p, const struct outbox_event *evs,
          const size_t *idx, size_t n, struct publish_result *res)
{
    struct mq_slot *slots = calloc(n, sizeof *slots);
    struct strbuf rkey = STRBUF_INIT, reason = STRBUF_INIT;
    size_t sent = 0;

    if (slots == NULL) {
        for (size_t i = 0; i < n; i++)
            set_result(&res[idx[i]], PUBLISH_CONNECTION,
                       "Out of memory publishing");
        return;
    }
    for (; sent < n; sent++) {
        const struct outbox_event *ev = &evs[idx[sent]];
        sb_reset(&rkey);
        sb_printf(&rkey, "%s.%s", ev->consumer_name, ev->event_type);
        struct mq_message msg = {
            .exchange = MQ_EXCHANGE_EVENTS,
            .routing_key = sb_str(&rkey),
            .body = ev->payload,
            .body_len = ev->payload_len,
            .message_id = ev->event_id,
            .type = ev->event_type,
            .correlation_id = ev->request_id,
            .timestamp = (uint64_t)ev->created_epoch,
        };
        slots[sent].message_id = ev->event_id;
        if (mq_conn_send(&p->mq, &msg, &reason) != MQ_OK)
            break;
    }
    /* What was sent is settled whatever happened after it. */
    struct strbuf settle_reason = STRBUF_INIT;
    mq_conn_settle(&p->mq, slots, sent, &settle_reason);
    for (size_t i = 0; i < sent; i++) {
        enum mq_result sr = slots[i].result;
        const char *why = failure_text(sr);
        set_result(&res[idx[i]], from_mq(sr),
                   why ? why : sb_str(&settle_reason));
    }
    for (size_t i = sent; i < n; i++)
        set_result(&res[idx[i]], PUBLISH_CONNECTION, sb_str(&reason));
    sb_free(&settle_reason);
    sb_free(&rkey);
    sb_free(&reason);
    free(slots);
}

/* Unroutable events: their consumers' queues are missing (deleted, or the
 * consumer was created while the broker was down).  Declare them and send
 * those events once more. */
static void
retry_returned(struct publisher *p, const struct outbox_event *evs,
               const size_t *idx, size_t n, struct publish_result *res)
{
    size_t *again = malloc(n * sizeof *again);
    size_t m = 0;
    if (again == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (res[idx[i]].outcome != PUBLISH_RETURNED)
            continue;
        const struct outbox_event *ev = &evs[idx[i]];
        bool declared = false;
        for (size_t j = 0; j < m; j++)
            declared |=
                strcmp(evs[again[j]].consumer_name, ev->consumer_name) == 0;
        struct strbuf reason = STRBUF_INIT;
        log_warn("publisher: event %s returned; declaring queues of %s and "
                 "retrying",
                 ev->event_id, ev->consumer_name);
        if (declared ||
            (mq_conn_open(&p->mq, &reason) == MQ_OK &&
             mq_conn_declare_consumer(&p->mq, ev->consumer_name, &reason) == 0))
            again[m++] = idx[i];
        else
            set_result(&res[idx[i]], PUBLISH_CONNECTION, sb_str(&reason));
        sb_free(&reason);
    }
    if (m > 0 && mq_conn_is_open(&p->mq))
        send_wave(p, evs, again, m, res);
    free(again);
}

void
publisher_send(struct publisher *p, struct db *db,
               const struct outbox_event *evs, const size_t *idx, size_t n,
               struct publish_result *res)
{
    struct strbuf reason = STRBUF_INIT;
    if (n == 0)
        return;
    if (!breaker_allow(&p->breaker, mono_ms())) {
        for (size_t i = 0; i < n; i++)
            set_result(&res[idx[i]], PUBLISH_CIRCUIT_OPEN,
                       "Broker circuit open");
    } else if (ensure_open(p, db, &reason) != MQ_OK) {
        for (size_t i = 0; i < n; i++)
            set_result(&res[idx[i]], PUBLISH_CONNECTION, sb_str(&reason));
    } else {
        send_wave(p, evs, idx, n, res);
        retry_returned(p, evs, idx, n, res);
    }
    sb_free(&reason);

    /* Only an unreachable or silent broker trips the breaker; a nack or a
     * return is the broker answering. */
    bool silent = false, answered = false;
    for (size_t i = 0; i < n; i++) {
        enum publish_outcome o = res[idx[i]].outcome;
        if (o == PUBLISH_TIMEOUT || o == PUBLISH_CONNECTION)
            silent = true;
        else if (o != PUBLISH_CIRCUIT_OPEN)
            answered = true;
        if (o == PUBLISH_OK) {
            metrics_published();
        } else {
            metrics_publish_failed(publish_outcome_label(o));
            log_warn("publisher: event %s not published: %s",
                     evs[idx[i]].event_id, sb_str(&res[idx[i]].reason));
        }
    }
    if (silent)
        breaker_failure(&p->breaker, mono_ms());
    else if (answered)
        breaker_success(&p->breaker);
    metrics_breaker_state((int)p->breaker.state);
}
