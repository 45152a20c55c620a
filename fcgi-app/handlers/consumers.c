/*
 * fcgi-app/handlers/consumers.c — POST/GET /consumer/data and
 * POST /consumer/change-status.
 *
 * Consumer events belong to the system consumer (customer_id NULL) and are
 * written in the transaction of the change.
 */
#include "handler.h"
#include "common/text.h"
#include "../db/consumers_db.h"
#include "../db/outbox_db.h"

#include <string.h>

int
system_event(struct ctx *c, const char *event_type, json_t *data,
             char event_id[37], struct app_err *err)
{
    struct event_new ev = {
        .customer_id = NULL,
        .consumer_id = SYSTEM_CONSUMER_ID,
        .event_type = event_type,
        .source_service = c->source_service,
        .request_id = c->req->request_id,
        .data = data,
    };
    if (data == NULL) {
        err_set(err, 500, "Out of memory building the event");
        return -1;
    }
    return ctx_append_event(c, &ev, event_id, err);
}

int
consumer_not_found(const char *consumer_id, struct app_err *err)
{
    err_set(err, 404, "Consumer %s not found", consumer_id);
    return 404;
}

int
consumers_create(struct ctx *c, json_t **data, struct app_err *err)
{
    struct consumer co;
    json_t *ev = NULL, *queue = NULL;
    char id[37], event_id[37];
    const char *name = ctx_str(c, "consumer_name");

    uuid_new(id);
    queue = json_sprintf("customer_notification_%s", name);
    if (db_begin(c->db, err) < 0)
        goto fail;
    if (consumers_db_insert(c->db, id, name, &co, err) < 0) {
        if (db_is_unique_violation(err))
            err_set(err, 409, "Consumer name \"%s\" is already taken", name);
        goto fail;
    }
    ev = json_pack("{s:s, s:s, s:s, s:O}", "consumer_id", co.consumer_id,
                   "consumer_name", co.consumer_name, "status", co.status,
                   "queue", queue);
    if (system_event(c, "consumer_creation", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto fail;
    /* Its queues now; if the broker is away, the next fresh connection of
     * any worker declares them (publisher.h). */
    publisher_declare_consumer(c->pub, c->db, co.consumer_name);
    *data =
        json_pack("{s:s, s:s, s:s, s:s, s:O}", "consumer_id", co.consumer_id,
                  "consumer_name", co.consumer_name, "status", co.status,
                  "created_at", co.created_at, "queue", queue);
    json_decref(ev);
    json_decref(queue);
    return 201;
fail:
    db_rollback(c->db);
    json_decref(ev);
    json_decref(queue);
    return err->status;
}

int
consumers_get(struct ctx *c, json_t **data, struct app_err *err)
{
    struct consumer co;
    const char *id = ctx_str(c, "consumer_id");

    if (!c->caller->is_admin && strcmp(id, c->caller->consumer_id) != 0) {
        err_set(err, 403, "A consumer may read only its own data");
        return 403;
    }
    if (consumers_db_get(c->db, id, &co, err) < 0)
        return err->status;
    if (!co.found)
        return consumer_not_found(id, err);
    *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "consumer_id", co.consumer_id,
                  "consumer_name", co.consumer_name, "status", co.status,
                  "created_at", co.created_at, "updated_at", co.updated_at);
    return 200;
}

int
consumers_change_status(struct ctx *c, json_t **data, struct app_err *err)
{
    struct consumer co;
    json_t *ev = NULL;
    char event_id[37], updated_at[40];
    const char *id = ctx_str(c, "consumer_id");
    const char *status = ctx_str(c, "status");

    if (strcmp(id, SYSTEM_CONSUMER_ID) == 0) {
        err_set(err, 403, "The system consumer's status cannot be changed");
        return 403;
    }
    if (db_begin(c->db, err) < 0 || consumers_db_lock(c->db, id, &co, err) < 0)
        goto fail;
    if (!co.found) {
        consumer_not_found(id, err);
        goto fail;
    }
    if (strcmp(co.status, status) == 0) {
        err_set(err, 409, "Consumer %s is already %s", id, status);
        goto fail;
    }
    if (consumers_db_set_status(c->db, id, status, updated_at, err) < 0)
        goto fail;
    ev = json_pack("{s:s, s:s, s:s, s:s}", "consumer_id", co.consumer_id,
                   "consumer_name", co.consumer_name, "previous_status",
                   co.status, "status", status);
    if (system_event(c, "consumer_status_change", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto fail;
    *data = json_pack("{s:s, s:s, s:s}", "consumer_id", co.consumer_id,
                      "status", status, "updated_at", updated_at);
    json_decref(ev);
    return 200;
fail:
    db_rollback(c->db);
    json_decref(ev);
    return err->status;
}
