/*
 * fcgi-app/mq/publisher.c — see publisher.h.
 */
#include "publisher.h"
#include "../core/log.h"
#include "../db/consumers_db.h"
#include "../db/outbox_db.h"
#include "../metrics/metrics.h"

#include <string.h>
#include <time.h>

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    }
    return "connection";
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
    if (breaker_allow(&p->breaker, now_ms()) &&
        ensure_open(p, db, &reason) != MQ_OK)
        log_warn("publisher: broker not reachable yet: %s", sb_str(&reason));
    sb_free(&reason);
}

void
publisher_declare_consumer(struct publisher *p, struct db *db,
                           const char *consumer_name)
{
    struct strbuf reason = STRBUF_INIT;
    if (!breaker_allow(&p->breaker, now_ms()))
        goto out;
    if (ensure_open(p, db, &reason) != MQ_OK ||
        mq_conn_declare_consumer(&p->mq, consumer_name, &reason) < 0)
        log_warn("publisher: queues of consumer %s not declared yet (%s); "
                 "they will be on the next connection",
                 consumer_name, sb_str(&reason));
out:
    sb_free(&reason);
}

void
publisher_trip(struct publisher *p)
{
    breaker_trip(&p->breaker, now_ms());
    metrics_breaker_state((int)p->breaker.state);
}

const char *
publisher_broker_state(struct publisher *p, struct db *db)
{
    if (!breaker_allow(&p->breaker, now_ms()))
        return "circuit_open";
    struct strbuf reason = STRBUF_INIT;
    enum mq_result r = ensure_open(p, db, &reason);
    sb_free(&reason);
    if (p->breaker.state == BREAKER_HALF_OPEN) {
        if (r == MQ_OK)
            breaker_success(&p->breaker);
        else
            breaker_failure(&p->breaker, now_ms());
        metrics_breaker_state((int)p->breaker.state);
    }
    if (p->breaker.state != BREAKER_CLOSED)
        return "circuit_open";
    return r == MQ_OK ? "up" : "down";
}

static enum mq_result
publish_once(struct publisher *p, struct db *db, const struct outbox_event *ev,
             struct strbuf *reason)
{
    struct strbuf rkey = STRBUF_INIT;
    sb_printf(&rkey, "%s.%s", ev->consumer_name, ev->event_type);
    struct mq_message msg = {
        .exchange = MQ_EXCHANGE_EVENTS,
        .routing_key = sb_str(&rkey),
        .body = ev->payload,
        .body_len = strlen(ev->payload),
        .message_id = ev->event_id,
        .type = ev->event_type,
        .correlation_id = ev->request_id,
        .timestamp = (uint64_t)ev->created_epoch,
    };
    enum mq_result r = ensure_open(p, db, reason);
    if (r == MQ_OK)
        r = mq_conn_publish(&p->mq, &msg, reason);
    if (r == MQ_RETURNED) {
        /* Unroutable: the consumer's queues are missing (deleted, or the
         * consumer was created while the broker was down).  Declare them
         * and try once more. */
        log_warn("publisher: event %s returned; declaring queues of %s and "
                 "retrying",
                 ev->event_id, ev->consumer_name);
        sb_reset(reason);
        if (mq_conn_declare_consumer(&p->mq, ev->consumer_name, reason) == 0)
            r = mq_conn_publish(&p->mq, &msg, reason);
        else
            r = MQ_CONNECTION;
    }
    sb_free(&rkey);
    return r;
}

enum publish_outcome
publisher_publish(struct publisher *p, struct db *db, const char *event_id,
                  bool redeliver, bool force, struct strbuf *reason)
{
    struct outbox_event ev;
    struct app_err err = APP_ERR_INIT;
    enum publish_outcome out;
    bool found;

    if (outbox_db_load(db, event_id, &ev, &found, &err) < 0 || !found) {
        sb_printf(reason, "Event %s could not be loaded", event_id);
        log_error("publisher: loading event %s: %s", event_id,
                  err.detail ? err.detail : (err.msg ? err.msg : "not found"));
        out = PUBLISH_CONNECTION;
        goto out;
    }
    if (force)
        breaker_force(&p->breaker);
    if (!breaker_allow(&p->breaker, now_ms())) {
        sb_puts(reason, "Broker circuit open");
        out = PUBLISH_CIRCUIT_OPEN;
    } else {
        out = from_mq(publish_once(p, db, &ev, reason));
        /* Only an unreachable or silent broker trips the breaker; a nack or
         * a return is the broker answering. */
        if (out == PUBLISH_TIMEOUT || out == PUBLISH_CONNECTION)
            breaker_failure(&p->breaker, now_ms());
        else
            breaker_success(&p->breaker);
    }

    metrics_breaker_state((int)p->breaker.state);
    if (out == PUBLISH_OK)
        metrics_published();
    else
        metrics_publish_failed(publish_outcome_label(out));

    const char *why = out == PUBLISH_OK ? NULL : sb_str(reason);
    int rc = redeliver ? outbox_db_record_redeliver(db, event_id, why, &err)
                       : outbox_db_record_publish(db, event_id, why, &err);
    if (rc < 0)
        log_error("publisher: recording the attempt on event %s: %s", event_id,
                  err.detail ? err.detail : err.msg);
    if (out != PUBLISH_OK)
        log_warn("publisher: event %s not %s: %s", event_id,
                 redeliver ? "redelivered" : "published", sb_str(reason));
out:
    outbox_event_free(&ev);
    err_clear(&err);
    return out;
}
