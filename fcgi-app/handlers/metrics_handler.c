/*
 * fcgi-app/handlers/metrics_handler.c — GET /metrics: the Prometheus text
 * exposition (the one response that is not the envelope; the pipeline
 * writes it raw because the route has ROUTE_RAW).  nginx serves it only to
 * loopback and private networks.
 */
#include "handler.h"
#include "../db/events_db.h"
#include "../metrics/metrics.h"

int
metrics_get(struct ctx *c, json_t **data, struct app_err *err)
{
    struct metrics_gauges g = {.known = false};
    struct app_err ignore = APP_ERR_INIT;
    json_t *health = NULL, *relay = NULL;

    /* Outbox gauges come from the partial indexes: cheap at any size. */
    if (db_ensure(c->db, &ignore) == 0 &&
        events_db_health(c->db, &health, &relay, &ignore) == 0) {
        g.known = true;
        g.outbox_pending =
            json_integer_value(json_object_get(health, "pending_count"));
        g.outbox_failed =
            json_integer_value(json_object_get(health, "failed_count"));
        g.events_undelivered =
            json_integer_value(json_object_get(health, "undelivered_count"));
    }
    json_decref(health);
    json_decref(relay);
    err_clear(&ignore);

    struct strbuf text = STRBUF_INIT;
    metrics_render(&text, &g);
    if (text.oom) {
        sb_free(&text);
        err_set(err, 500, "Out of memory rendering the metrics");
        return 500;
    }
    *data = json_stringn(sb_str(&text), text.len);
    sb_free(&text);
    return 200;
}
