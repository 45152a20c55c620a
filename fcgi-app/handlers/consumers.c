/*
 * fcgi-app/handlers/consumers.c — POST/GET /consumer/data and
 * POST /consumer/change-status.
 *
 * Consumer events belong to the system consumer (customer_id NULL) and are
 * written in the transaction of the change.
 */
#include "handler.h"
#include "../db/consumers_db.h"
#include "common/strbuf.h"
#include "common/text.h"
#include "common/topology.h"

#include <string.h>

int
consumers_create(struct ctx *c, json_t **data, struct app_err *err)
{
    struct consumer co;
    json_t *ev = NULL, *queue = NULL;
    char id[37], event_id[37];
    const char *name = ctx_str(c, "consumer_name");
    int status = 500;

    uuid_new(id);
    struct strbuf qname = STRBUF_INIT;
    mq_queue_name(&qname, name, false);
    queue = qname.oom ? NULL : json_string(sb_str(&qname));
    sb_free(&qname);
    if (db_begin(c->db, err) < 0)
        goto out;
    if (consumers_db_insert(c->db, id, name, &co, err) < 0) {
        if (db_is_unique_violation(err))
            err_set(err, 409, "Consumer name \"%s\" is already taken", name);
        goto out;
    }
    ev = json_pack("{s:s, s:s, s:s, s:O}", "consumer_id", co.consumer_id,
                   "consumer_name", co.consumer_name, "status", co.status,
                   "queue", queue);
    if (system_event(c, "consumer_creation", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;
    /* Its queues now; if the broker is away, the next fresh connection of
     * any worker declares them (publisher.h). */
    publisher_declare_consumer(c->pub, c->db, co.consumer_name);
    *data =
        json_pack("{s:s, s:s, s:s, s:s, s:O}", "consumer_id", co.consumer_id,
                  "consumer_name", co.consumer_name, "status", co.status,
                  "created_at", co.created_at, "queue", queue);
    status = 201;
out:
    json_decref(ev);
    json_decref(queue);
    return handler_done(c, status, err);
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
    const char *state = ctx_str(c, "status");
    int status = 500;

    if (strcmp(id, SYSTEM_CONSUMER_ID) == 0) {
        err_set(err, 403, "The system consumer's status cannot be changed");
        goto out;
    }
    if (consumer_begin_locked(c, id, &co, err) < 0)
        goto out;
    if (strcmp(co.status, state) == 0) {
        err_set(err, 409, "Consumer %s is already %s", id, state);
        goto out;
    }
    if (consumers_db_set_status(c->db, id, state, updated_at, err) < 0)
        goto out;
    ev = json_pack("{s:s, s:s, s:s, s:s}", "consumer_id", co.consumer_id,
                   "consumer_name", co.consumer_name, "previous_status",
                   co.status, "status", state);
    if (system_event(c, "consumer_status_change", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;
    *data = json_pack("{s:s, s:s, s:s}", "consumer_id", co.consumer_id,
                      "status", state, "updated_at", updated_at);
    status = 200;
out:
    json_decref(ev);
    return handler_done(c, status, err);
}
