/*
 * fcgi-app/handlers/handler.h — what a handler gets: the request context
 * after the pipeline's gate (route, auth, input validated), and helpers to
 * read its validated input.
 *
 * A handler returns the HTTP status.  On success it sets *data (owned; the
 * pipeline takes it); on failure it fills `err` and returns err->status.
 * Handlers never write the response, never build SQL, never call
 * librabbitmq: they call the db/ query modules and return data.  What more
 * than one resource needs (the 404s, locking a row in a new transaction,
 * appending an event) is here, in handler.c.
 */
#ifndef FI_HANDLER_H
#define FI_HANDLER_H

#include "../core/app_err.h"
#include "../db/db.h"
#include "../http/auth.h"
#include "../http/request.h"
#include "../http/router.h"
#include "../outbox/publisher.h"

#include <jansson.h>

struct ctx {
    const struct config *cfg; /* the process's configuration */
    const struct request *req;
    const struct route *route;
    struct db *db;
    const struct caller *caller; /* NULL on public routes */
    json_t *in;                  /* validated input (borrowed) */
    const char *source_service;  /* "<METHOD>: <path>" */
    struct publisher *pub;       /* the worker's outbox publisher */
    json_t *events;              /* the events this request wrote, as
                                    outbox_db_append returned them; the
                                    pipeline publishes them after a 2xx */
};

struct event_new;
/* Appends an event to the outbox (outbox_db_append) and remembers it (what
 * the INSERT returned) for the inline publish after commit.  0 ok, -1 with
 * err. */
int ctx_append_event(struct ctx *c, const struct event_new *ev,
                     char event_id[37], struct app_err *err)
    __attribute__((warn_unused_result));

/* A validated string field, or NULL when not given (borrowed from ctx->in). */
const char *ctx_str(const struct ctx *c, const char *field);
/* The owner filter for tenancy: NULL for the administrator (sees all),
 * else the caller's consumer_id. */
const char *ctx_owner_filter(const struct ctx *c);

/* The route handlers (one file per resource). */
int customers_create(struct ctx *c, json_t **data, struct app_err *err);
int customers_get(struct ctx *c, json_t **data, struct app_err *err);
int customers_delete(struct ctx *c, json_t **data, struct app_err *err);
int customers_change_status(struct ctx *c, json_t **data, struct app_err *err);
int tags_add(struct ctx *c, json_t **data, struct app_err *err);
int tags_get_value(struct ctx *c, json_t **data, struct app_err *err);
int tags_delete(struct ctx *c, json_t **data, struct app_err *err);
int tags_rename_key(struct ctx *c, json_t **data, struct app_err *err);
int tags_set_value(struct ctx *c, json_t **data, struct app_err *err);
int analytics_create(struct ctx *c, json_t **data, struct app_err *err);
int analytics_list(struct ctx *c, json_t **data, struct app_err *err);
int events_list(struct ctx *c, json_t **data, struct app_err *err);
int consumers_create(struct ctx *c, json_t **data, struct app_err *err);
int consumers_get(struct ctx *c, json_t **data, struct app_err *err);
int consumers_change_status(struct ctx *c, json_t **data, struct app_err *err);
int api_keys_create(struct ctx *c, json_t **data, struct app_err *err);
int api_keys_get(struct ctx *c, json_t **data, struct app_err *err);
int api_keys_deactivate(struct ctx *c, json_t **data, struct app_err *err);
int events_resend(struct ctx *c, json_t **data, struct app_err *err);
int events_redeliver(struct ctx *c, json_t **data, struct app_err *err);
int events_health(struct ctx *c, json_t **data, struct app_err *err);
int events_confirm_delivery(struct ctx *c, json_t **data, struct app_err *err);
int health_get(struct ctx *c, json_t **data, struct app_err *err);
/* *data is a JSON string holding the exposition text (ROUTE_RAW). */
int metrics_get(struct ctx *c, json_t **data, struct app_err *err);

/*
 * One shape for every handler that owns something (handler.c):
 *
 *     int status = 500;
 *     ...                      every failure: `goto out` with err filled
 *     *data = ...;
 *     status = 200;            (or 201) the last step of the success path
 * out:
 *     ...                      all cleanup, on both paths
 *     return handler_done(c, status, err);
 *
 * handler_done: a success status is returned as it is; on a failure the
 * handler's transaction is rolled back (a no-op when none is open, or at
 * the level the pipeline holds) and the answer is err's status (500 when
 * the failure left none).
 */
int handler_done(struct ctx *c, int status, struct app_err *err);

/* The 404s every resource shares (the sentence is the contract's). */
int customer_not_found(const char *customer_id, struct app_err *err);
int consumer_not_found(const char *consumer_id, struct app_err *err);

/* Begins a transaction and row-locks the caller's customer (the
 * administrator's: any); 404 when it is not found.  On -1 the transaction
 * is still open: handler_done rolls it back. */
struct customer;
int customer_begin_locked(struct ctx *c, const char *customer_id,
                          struct customer *cu, struct app_err *err)
    __attribute__((warn_unused_result));
/* The same for a consumer (any: only the administrator changes them). */
struct consumer;
int consumer_begin_locked(struct ctx *c, const char *consumer_id,
                          struct consumer *co, struct app_err *err)
    __attribute__((warn_unused_result));

/* Appends an event of `cu`'s owner about `cu`; data NULL (out of memory
 * building it) is a 500.  0 ok, -1 with err. */
int customer_event(struct ctx *c, const struct customer *cu,
                   const char *event_type, json_t *data, char event_id[37],
                   struct app_err *err) __attribute__((warn_unused_result));
/* Appends an event of the system consumer (no customer); data NULL is a
 * 500.  0 ok, -1 with err. */
int system_event(struct ctx *c, const char *event_type, json_t *data,
                 char event_id[37], struct app_err *err)
    __attribute__((warn_unused_result));

#endif
