/*
 * fcgi-app/handlers/events.c — GET /events: the caller's own events (the
 * administrator's: everyone's), oldest first unless order=desc.
 */
#include "handler.h"
#include "../db/events_db.h"
#include "../metrics/metrics.h"

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
    int rc = events_db_list(c->db, &f, &list, err);
    free(types_text);
    if (rc < 0)
        return err->status;
    *data = json_pack("{s:o}", "events", list);
    return 200;
}

/* POST /events/resend and /events/redeliver --------------------------------
 *
 * One transaction holds the row locks (FOR UPDATE SKIP LOCKED) while the
 * candidates are published in created_at order, so two administrators
 * running a re-drive at once never publish one event twice.  The first
 * attempt is a forced probe through an open breaker; if it fails, the
 * breaker stays open and the rest fail fast as "Broker circuit open", each
 * counted as an attempt. */

#define FAILED_EVENTS_MAX 100

static int
redrive(struct ctx *c, bool redeliver, json_t **data, struct app_err *err)
{
    json_t *types = json_object_get(c->in, "event_types");
    json_t *max = json_object_get(c->in, "max_try_count");
    char period[24];
    char *types_text = types ? json_dumps(types, JSON_COMPACT) : NULL;
    json_t *rows = NULL, *failed = json_array();
    long long skipped = 0, succeeded = 0, failures = 0;
    bool probed = false, truncated = false;
    size_t i;
    json_t *row;

    snprintf(period, sizeof period, "%lld",
             (long long)json_integer_value(
                 json_object_get(c->in, "period_in_days")));
    struct redrive_filter f = {
        .period_days = period,
        .event_types = types_text,
        .consumer_id = ctx_str(c, "consumer_id"),
    };
    if (db_begin(c->db, err) < 0)
        goto fail;
    if ((redeliver ? events_db_lock_for_redeliver(c->db, &f, &rows, err)
                   : events_db_lock_for_resend(c->db, &f, &rows, err)) < 0)
        goto fail;

    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "event_id"));
        json_int_t tries =
            json_integer_value(json_object_get(row, "try_count"));
        if (max != NULL && tries >= json_integer_value(max)) {
            skipped++;
            continue;
        }
        struct strbuf reason = STRBUF_INIT;
        enum publish_outcome o =
            publisher_publish(c->pub, c->db, id, redeliver, !probed, &reason);
        /* A failed probe means the broker is away: the rest of this run
         * fails fast as "Broker circuit open" (API.md section 6). */
        if (!probed && (o == PUBLISH_TIMEOUT || o == PUBLISH_CONNECTION))
            publisher_trip(c->pub);
        probed = true;
        if (o == PUBLISH_OK) {
            succeeded++;
        } else {
            failures++;
            if (json_array_size(failed) < FAILED_EVENTS_MAX)
                json_array_append_new(
                    failed,
                    json_pack("{s:s, s:O, s:I, s:s}", "event_id", id,
                              "event_type", json_object_get(row, "event_type"),
                              "try_count", tries + 1, "failure_reason",
                              sb_str(&reason)));
            else
                truncated = true;
        }
        sb_free(&reason);
    }
    if (db_commit(c->db, err) < 0)
        goto fail;

    *data = json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I}, s:O, s:b}", "summary", "total_pending",
        (json_int_t)json_array_size(rows), "attempted",
        (json_int_t)(succeeded + failures), "succeeded", (json_int_t)succeeded,
        "failed", (json_int_t)failures, "skipped", (json_int_t)skipped,
        "failed_events", failed, "failed_events_truncated", truncated);
    free(types_text);
    json_decref(rows);
    json_decref(failed);
    return 200;
fail:
    db_rollback(c->db);
    free(types_text);
    json_decref(rows);
    json_decref(failed);
    return err->status;
}

int
events_resend(struct ctx *c, json_t **data, struct app_err *err)
{
    return redrive(c, false, data, err);
}

int
events_redeliver(struct ctx *c, json_t **data, struct app_err *err)
{
    return redrive(c, true, data, err);
}

/* GET /events/health ------------------------------------------------------ */

int
events_health(struct ctx *c, json_t **data, struct app_err *err)
{
    if (events_db_health(c->db, data, err) < 0)
        return err->status;
    json_object_set_new(*data, "broker",
                        json_string(publisher_broker_state(c->pub, c->db)));
    return 200;
}

/* POST /events/confirm-delivery ------------------------------------------ */

int
events_confirm_delivery(struct ctx *c, json_t **data, struct app_err *err)
{
    const char *id = ctx_str(c, "event_id");
    bool found, first;
    double lag = 0;
    struct confirmation cf = {
        .event_id = id,
        .owner = ctx_owner_filter(c),
        .status = ctx_str(c, "status"),
        .received_at = ctx_str(c, "received_at"),
        .failure_reason = ctx_str(c, "failure_reason"),
    };

    if (db_begin(c->db, err) < 0 ||
        events_db_confirm(c->db, &cf, &found, data, &first, &lag, err) < 0)
        goto fail;
    if (!found) {
        err_set(err, 404, "Event %s not found", id);
        goto fail;
    }
    if (db_commit(c->db, err) < 0)
        goto fail;
    metrics_confirm(cf.status);
    if (first)
        metrics_delivery_lag(lag);
    return 200;
fail:
    if (err->status == 422 && cf.received_at != NULL)
        err_set(err, 422,
                "received_at must be an ISO 8601 timestamp with a "
                "time zone (got \"%s\")",
                cf.received_at);
    json_decref(*data);
    *data = NULL;
    db_rollback(c->db);
    return err->status;
}
