/*
 * fcgi-app/handlers/events.c — GET /events: the caller's own events (the
 * administrator's: everyone's), oldest first unless order=desc.
 */
#include "handler.h"
#include "../db/events_db.h"
#include "../metrics/metrics.h"
#include "../outbox/redrive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
events_list(struct ctx *c, json_t **data, struct app_err *err)
{
    json_t *types = json_object_get(c->in, "event_types");
    json_t *limit = json_object_get(c->in, "limit");
    const char *order = ctx_str(c, "order");
    char limit_text[24];
    char *types_text = types ? json_dumps(types, JSON_COMPACT) : NULL;
    json_t *list = NULL;
    int status = 500;

    snprintf(limit_text, sizeof limit_text, "%lld",
             limit ? (long long)json_integer_value(limit) : 100LL);
    struct events_filter f = {
        .owner = ctx_owner_filter(c),
        .customer_id = ctx_str(c, "customer_id"),
        .event_types = types_text,
        .publish_status = ctx_str(c, "publish_status"),
        .deliver_status = ctx_str(c, "deliver_status"),
        .limit = limit_text,
        .newest_first = order != NULL && strcmp(order, "desc") == 0,
    };
    if (events_db_list(c->db, &f, &list, err) < 0)
        goto out;
    *data = json_pack("{s:O}", "events", list);
    status = 200;
out:
    json_decref(list);
    free(types_text);
    return handler_done(c, status, err);
}

/* POST /events/resend and /events/redeliver --------------------------------
 *
 * The batched re-drive engine (outbox/redrive.h) does the work; these read
 * the input and write the summary. */

static int
redrive(struct ctx *c, enum redrive_kind kind, json_t **data,
        struct app_err *err)
{
    json_t *types = json_object_get(c->in, "event_types");
    json_t *max = json_object_get(c->in, "max_try_count");
    char *types_text = types ? json_dumps(types, JSON_COMPACT) : NULL;
    struct redrive_summary s = {0};
    int status = 500;
    struct redrive_params rp = {
        .kind = kind,
        .period_days =
            (long)json_integer_value(json_object_get(c->in, "period_in_days")),
        .event_types = types_text,
        .consumer_id = ctx_str(c, "consumer_id"),
        .max_try_count = max ? (long long)json_integer_value(max) : -1,
        .batch = c->cfg->redrive_batch,
        .backoff_ms = c->cfg->relay_backoff_ms,
    };
    if (redrive_run(c->pub, c->db, &rp, &s, err) < 0)
        goto out;
    *data = json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I}, s:O, s:b}", "summary", "total_pending",
        (json_int_t)s.total_pending, "attempted", (json_int_t)s.attempted,
        "succeeded", (json_int_t)s.succeeded, "failed", (json_int_t)s.failed,
        "skipped", (json_int_t)s.skipped, "failed_events", s.failed_events,
        "failed_events_truncated", s.failed_events_truncated);
    status = 200;
out:
    redrive_summary_free(&s);
    free(types_text);
    return handler_done(c, status, err);
}

int
events_resend(struct ctx *c, json_t **data, struct app_err *err)
{
    return redrive(c, REDRIVE_RESEND, data, err);
}

int
events_redeliver(struct ctx *c, json_t **data, struct app_err *err)
{
    return redrive(c, REDRIVE_REDELIVER, data, err);
}

/* GET /events/health ------------------------------------------------------ */

int
events_health(struct ctx *c, json_t **data, struct app_err *err)
{
    json_t *relay = NULL;
    if (events_db_health(c->db, data, &relay, err) < 0)
        return err->status;
    json_object_set_new(*data, "broker",
                        json_string(publisher_broker_state(c->pub, c->db)));
    json_object_set_new(relay, "enabled",
                        json_boolean(c->cfg->relay_interval_ms > 0));
    json_object_set_new(relay, "interval_ms",
                        json_integer(c->cfg->relay_interval_ms));
    json_object_set_new(*data, "relay", relay);
    return 200;
}

/* POST /events/confirm-delivery ------------------------------------------ */

int
events_confirm_delivery(struct ctx *c, json_t **data, struct app_err *err)
{
    const char *id = ctx_str(c, "event_id");
    bool found, first;
    double lag = 0;
    int status = 500;
    struct confirmation cf = {
        .event_id = id,
        .owner = ctx_owner_filter(c),
        .status = ctx_str(c, "status"),
        .received_at = ctx_str(c, "received_at"),
        .failure_reason = ctx_str(c, "failure_reason"),
    };

    if (db_begin(c->db, err) < 0 ||
        events_db_confirm(c->db, &cf, &found, data, &first, &lag, err) < 0)
        goto out;
    if (!found) {
        err_set(err, 404, "Event %s not found", id);
        goto out;
    }
    if (db_commit(c->db, err) < 0)
        goto out;
    metrics_confirm(cf.status);
    if (first)
        metrics_delivery_lag(lag);
    status = 200;
out:
    if (status != 200) {
        if (err->status == 422 && cf.received_at != NULL)
            err_set(err, 422,
                    "received_at must be an ISO 8601 timestamp with a "
                    "time zone (got \"%s\")",
                    cf.received_at);
        json_decref(*data);
        *data = NULL;
    }
    return handler_done(c, status, err);
}
