/*
 * fcgi-app/http/pipeline.c — see pipeline.h.
 *
 * Order of checks (docs/API.md §3.3): unknown path 404 / other method 405
 * → key and consumer 401/403 → administrator 403 → Idempotency-Key (a
 * replay answers here, section 7) → body is JSON 400 → validation 422 →
 * the handler (self 403, existence 404, state 409).  With a key, the answer
 * is rendered, stored and committed (idempotency.h) before the events are
 * published and the answer is written.
 */
#include "pipeline.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "../handlers/handler.h"
#include "../metrics/metrics.h"
#include "../outbox/after_commit.h"
#include "auth.h"
#include "envelope.h"
#include "idempotency.h"
#include "request.h"
#include "router.h"

#include <string.h>

/* Runs the gate and the handler; returns the status, with *data or err,
 * and *events (owned) the ids of the events the handler wrote. */
static int
dispatch(struct pipeline *p, struct request *req, const struct route **route,
         struct strbuf *allow, json_t **data, json_t **events,
         struct idem *idem, struct app_err *err)
{
    struct caller caller;
    json_t *raw = NULL, *in = NULL;
    bool from_query = false;
    int status;

    enum router_result found = router_match(routes, routes_count, req->method,
                                            req->path, route, allow);
    if (found != ROUTER_FOUND)
        return router_error(found, req->method, req->path, sb_str(allow), err);

    /* The connection is checked (and replaced if stale) before any route
     * uses it, public ones included: /health reports what it finds. */
    if (db_ensure(p->db, err) < 0 && !((*route)->flags & ROUTE_PUBLIC))
        return err->status;
    if ((*route)->flags & ROUTE_PUBLIC) {
        err_clear(err);
    } else {
        if (auth_authenticate(p->db, req->api_key, p->cfg->key_cache_seconds,
                              &caller, err) < 0)
            return err->status;
        if (((*route)->flags & ROUTE_ADMIN) && !caller.is_admin) {
            err_set(err, 403, "%s %s is for administrators only", req->method,
                    req->path);
            return 403;
        }
        switch (idem_start(idem, p->db, req, *route, caller.consumer_id, err)) {
        case 0:
            break;
        case 1:
            return idem->stored.status; /* the stored answer */
        default:
            return err->status;
        }
    }

    if (!((*route)->flags & ROUTE_NO_INPUT)) {
        if (request_input(req, &raw, &from_query, err) < 0)
            return err->status;
        if (validate_input(raw, (*route)->fields, from_query, &in, err) < 0) {
            json_decref(raw);
            return err->status;
        }
        json_decref(raw);
    }

    struct strbuf source = STRBUF_INIT;
    sb_printf(&source, "%s: %s", req->method, req->path);
    struct ctx c = {
        .cfg = p->cfg,
        .req = req,
        .route = *route,
        .db = p->db,
        .caller = ((*route)->flags & ROUTE_PUBLIC) ? NULL : &caller,
        .in = in,
        .source_service = sb_str(&source),
        .pub = p->pub,
        .events = json_array(),
    };
    status = (*route)->handler(&c, data, err);
    if (status < 400 && *data == NULL) {
        err_set(err, 500, "Out of memory building the response");
        status = 500;
    }
    *events = c.events;
    sb_free(&source);
    json_decref(in);
    return status;
}

/* With an Idempotency-Key: stores the answer just rendered into `out` (its
 * body is the last n bytes) and commits it with the change.  When that
 * fails, nothing was committed: the answer becomes the failure, and no
 * event may be published. */
static void
store_answer(struct pipeline *p, struct idem *idem, const struct request *req,
             long n, int *status, struct app_err *err, json_t *events,
             struct strbuf *out)
{
    struct app_err ierr = APP_ERR_INIT;
    /* An answer that could not be rendered is never stored. */
    const char *body = n >= 0 ? sb_str(out) + out->len - (size_t)n : "";
    if (idem_finish(idem, p->db, n >= 0 ? *status : 500, body, &ierr) == 0)
        return;
    err_clear(err);
    *err = ierr;
    *status = err->status;
    json_array_clear(events);
    sb_reset(out);
    struct envelope env = {
        .status = *status,
        .message = err->msg,
        .request_id = req->request_id,
    };
    envelope_render(&env, out);
}

void
pipeline_serve(struct pipeline *p, FCGX_Request *fcgx)
{
    struct request req;
    struct app_err err = APP_ERR_INIT;
    struct strbuf allow = STRBUF_INIT;
    const struct route *route = NULL;
    json_t *data = NULL, *events = NULL;
    struct idem idem = IDEM_INIT;
    struct strbuf out = STRBUF_INIT;
    int status;

    if (request_read(&req, fcgx, &err) < 0)
        status = err.status;
    else
        status = dispatch(p, &req, &route, &allow, &data, &events, &idem, &err);
    bool replayed = idem.replay;
    if (status >= 400 && err.msg == NULL && !replayed)
        err_set(&err, status, "The request failed");

    if (status < 400 && route != NULL && (route->flags & ROUTE_RAW)) {
        envelope_send_text("text/plain; version=0.0.4; charset=utf-8",
                           json_string_value(data), json_string_length(data),
                           req.request_id, fcgx->out);
    } else {
        struct envelope env = {
            .status = status,
            .data = data,
            .message = err.msg,
            .request_id = req.request_id,
            .allow = status == 405 ? sb_str(&allow) : NULL,
            .stored_body = idem.replay ? idem.stored.body : NULL,
        };
        long n = envelope_render(&env, &out);
        if (idem.mode != IDEM_OFF && !replayed)
            store_answer(p, &idem, &req, n, &status, &err, events, &out);
        idem_end(&idem, p->db);
        if (status < 400)
            outbox_publish_committed(p->pub, p->db, events);
        envelope_write(&out, fcgx->out);
    }

    /* One line per request; never the key, never the query string. */
    double ms = (double)(mono_us() - req.started_us) / 1e3;
    int route_index = route ? (int)(route - routes)
                            : router_path_index(routes, routes_count, req.path);
    if (route == NULL && route_index >= 0)
        route = &routes[route_index]; /* a 405: label it with its path */
    metrics_request(route_index, req.method, status, ms / 1e3);
    const char *route_name = route ? route->path : "-";
    if (status >= 500)
        log_error("request rid=%s method=%s route=%s status=%d ms=%.2f "
                  "error=\"%s\" detail=\"%s\"",
                  req.request_id, req.method, route_name, status, ms,
                  err.msg ? err.msg : "", err.detail ? err.detail : "");
    else
        log_info("request rid=%s method=%s route=%s status=%d ms=%.2f%s",
                 req.request_id, req.method, route_name, status, ms,
                 replayed ? " replayed=1" : "");

    idem_end(&idem, p->db);
    json_decref(events);
    json_decref(data);
    sb_free(&out);
    err_clear(&err);
    sb_free(&allow);
    request_free(&req);
}
