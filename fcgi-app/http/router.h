/*
 * fcgi-app/http/router.h — the route table and its lookup.
 *
 * Routes are data: one array of {method, path, handler, flags, fields}.  The
 * pipeline runs the same gate for every one (pipeline.c).  Flags:
 *   ROUTE_PUBLIC  no X-API-Key needed (health, metrics, openapi)
 *   ROUTE_ADMIN   only the system consumer (administrator); others get 403
 *   ROUTE_NO_INPUT  the handler takes no input; query and body are ignored
 *   ROUTE_RAW     success is plain text, not the envelope: the handler's
 *                 data is a JSON string, written as text/plain (/metrics)
 *   ROUTE_IDEM_AFTER  a write that commits by itself (a re-drive, batch by
 *                 batch): an Idempotency-Key's answer is stored after it,
 *                 not in its transaction (http/idempotency.h)
 *   ROUTE_NO_IDEM a write whose answer must never be stored (it holds a
 *                 secret): an Idempotency-Key is refused with 422
 */
#ifndef FI_ROUTER_H
#define FI_ROUTER_H

#include "../core/app_err.h"
#include "common/strbuf.h"
#include "validate.h"

#include <jansson.h>
#include <stddef.h>

struct ctx;

/* Returns the HTTP status.  On 2xx *data holds the response data (owned;
 * the pipeline takes it).  On >= 400 `err` holds the sentence. */
typedef int (*route_handler)(struct ctx *ctx, json_t **data,
                             struct app_err *err);

enum route_flags {
    ROUTE_PUBLIC = 1u << 0,
    ROUTE_ADMIN = 1u << 1,
    ROUTE_NO_INPUT = 1u << 2,
    ROUTE_RAW = 1u << 3,
    ROUTE_IDEM_AFTER = 1u << 4,
    ROUTE_NO_IDEM = 1u << 5,
};

struct route {
    const char *method;
    const char *path;
    route_handler handler;
    unsigned flags;
    const struct field_spec *fields; /* NULL-name terminated; NULL = none */
};

enum router_result { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_BAD_METHOD };

/*
 * Looks up method + path.  ROUTER_FOUND sets *route; ROUTER_BAD_METHOD
 * appends the allowed methods ("GET, POST") to `allow`.
 */
enum router_result router_match(const struct route *table, size_t n,
                                const char *method, const char *path,
                                const struct route **route,
                                struct strbuf *allow);

/*
 * Fills `err` with the answer to a lookup that found no route and returns
 * its status: ROUTER_NOT_FOUND is 404 "No endpoint <path>", ROUTER_BAD_METHOD
 * 405 "Method <m> is not allowed on <path> (allowed: <allow>)".  Bytes of the
 * method or path that are not UTF-8 text, and control characters, are shown
 * %-escaped ("/%FF"), so the sentence always fits in the envelope (docs/API.md
 * §3.3: a path that is not UTF-8 is an unknown path, 404).  Pure.
 */
int router_error(enum router_result res, const char *method, const char *path,
                 const char *allow, struct app_err *err);

/* Index of the first route with `path` (any method), or -1: the label of a
 * request that matched a path but not a method (metrics, the log line). */
int router_path_index(const struct route *table, size_t n, const char *path);

/* The service's route table (routes.c). */
extern const struct route routes[];
extern const size_t routes_count;

#endif
