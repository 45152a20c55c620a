/*
 * fcgi-app/handlers/tags.c — POST /customer/tag, GET /customer/tag-value,
 * DELETE /customer/tag, PATCH /customer/tag-key, PATCH /customer/tag-value.
 *
 * Every change runs the same frame (tag_change): lock the customer, read
 * its tags, apply one operation, touch the customer's updated_at, and write
 * a customer_tag_change event carrying the full tags after the change — all
 * in one transaction.  An operation that refuses (404, 409, 422) rolls the
 * whole request back, so a multi-tag POST is all-or-nothing.
 */
#include "handler.h"
#include "../db/customers_db.h"
#include "../db/tags_db.h"

#include <stdlib.h>
#include <string.h>

/* At most this many tags per customer (docs/API.md §2.4). */
#define TAGS_MAX 100

/* Applies one operation to a locked customer whose tags are `before`
 * (borrowed); adds the keys involved to `ev` (the event's data).  Returns 0
 * or the error status with `err` filled. */
typedef int (*tag_apply_fn)(struct ctx *c, const struct customer *cu,
                            const json_t *before, json_t *ev,
                            struct app_err *err);

/* Runs `apply` in the frame above; answers `success` (200, or 201 where
 * the operation creates tags) with an empty object. */
static int
tag_change(struct ctx *c, const char *operation, tag_apply_fn apply,
           int success, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *before = NULL, *after = NULL, *ev = NULL;
    char event_id[37];
    const char *id = ctx_str(c, "customer_id");
    int status = 500;

    if (customer_begin_locked(c, id, &cu, err) < 0 ||
        tags_db_all(c->db, cu.customer_id, &before, err) < 0)
        goto out;
    ev = json_pack("{s:s, s:s}", "customer_id", cu.customer_id, "operation",
                   operation);
    if (ev == NULL) {
        err_set(err, 500, "Out of memory building the event");
        goto out;
    }
    if (apply(c, &cu, before, ev, err) != 0 ||
        customers_db_touch(c->db, cu.customer_id, err) < 0 ||
        tags_db_all(c->db, cu.customer_id, &after, err) < 0)
        goto out;
    json_object_set(ev, "tags", after);
    if (customer_event(c, &cu, "customer_tag_change", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;
    *data = json_object();
    status = success;
out:
    json_decref(before);
    json_decref(after);
    json_decref(ev);
    customer_free(&cu);
    return handler_done(c, status, err);
}

static int
tag_missing(const struct customer *cu, const char *key, struct app_err *err)
{
    err_set(err, 404, "Tag \"%s\" not found on customer %s", key,
            cu->customer_id);
    return 404;
}

/* The end of an operation on the existing tag `key`: 404 when the statement
 * found no such tag, else the key goes into the event. */
static int
tag_changed(const struct customer *cu, const char *key, bool found, json_t *ev,
            struct app_err *err)
{
    if (!found)
        return tag_missing(cu, key, err);
    json_object_set_new(ev, "tag_key", json_string(key));
    return 0;
}

/* POST /customer/tag ------------------------------------------------------ */

static int
apply_add(struct ctx *c, const struct customer *cu, const json_t *before,
          json_t *ev, struct app_err *err)
{
    json_t *keys = json_object_get(c->in, "tag_keys");
    json_t *values = json_object_get(c->in, "tag_values");
    json_t *pairs = json_object();
    size_t i;
    json_t *k;
    int rc = 0;

    json_array_foreach(keys, i, k)
    {
        const char *key = json_string_value(k);
        if (json_object_get(before, key) != NULL) {
            err_set(err, 409, "Tag \"%s\" already exists on customer %s", key,
                    cu->customer_id);
            rc = 409;
            goto out;
        }
        json_object_set(pairs, key, json_array_get(values, i));
    }
    size_t total = json_object_size(before) + json_object_size(pairs);
    if (total > TAGS_MAX) {
        err_set(err, 422,
                "Customer %s would have %zu tags; at most %d are "
                "allowed",
                cu->customer_id, total, TAGS_MAX);
        rc = 422;
        goto out;
    }
    if (tags_db_insert(c->db, cu->customer_id, pairs, err) < 0) {
        rc = err->status;
        goto out;
    }
    json_object_set(ev, "tag_keys", keys);
out:
    json_decref(pairs);
    return rc;
}

int
tags_add(struct ctx *c, json_t **data, struct app_err *err)
{
    json_t *keys = json_object_get(c->in, "tag_keys");
    json_t *values = json_object_get(c->in, "tag_values");
    size_t nk = json_array_size(keys), nv = json_array_size(values);

    /* Request-level rules first (422 comes before 404 in the contract). */
    if (nk != nv) {
        err_set(err, 422,
                "tag_keys and tag_values must have the same length "
                "(got %zu and %zu)",
                nk, nv);
        return 422;
    }
    for (size_t i = 0; i < nk; i++)
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_array_get(keys, i), json_array_get(keys, j))) {
                err_add(err, 422,
                        "tag_keys must not repeat a key (\"%s\" "
                        "appears more than once)",
                        json_string_value(json_array_get(keys, i)));
                break;
            }
    if (err->status)
        return err->status;
    /* creates tags: 201 (docs/API.md §3.2) */
    return tag_change(c, "tags_added", apply_add, 201, data, err);
}

/* GET /customer/tag-value ------------------------------------------------- */

int
tags_get_value(struct ctx *c, json_t **data, struct app_err *err)
{
    const char *id = ctx_str(c, "customer_id");
    const char *key = ctx_str(c, "tag_key");
    const char *owner = ctx_owner_filter(c);
    char *value = NULL;
    struct customer cu = {0};
    int status = 500;

    if (tags_db_get(c->db, id, owner, key, &value, err) < 0)
        goto out;
    if (value != NULL) {
        *data = json_pack("{s:s}", "tag_value", value);
        status = 200;
        goto out;
    }
    /* Which is missing, the customer or the tag? */
    if (customers_db_get(c->db, id, owner, &cu, err) < 0)
        goto out;
    if (!cu.found)
        customer_not_found(id, err);
    else
        tag_missing(&cu, key, err);
out:
    free(value);
    customer_free(&cu);
    return handler_done(c, status, err);
}

/* DELETE /customer/tag ---------------------------------------------------- */

static int
apply_delete(struct ctx *c, const struct customer *cu, const json_t *before,
             json_t *ev, struct app_err *err)
{
    const char *key = ctx_str(c, "tag_key");
    bool found;
    (void)before;
    if (tags_db_delete(c->db, cu->customer_id, key, &found, err) < 0)
        return err->status;
    return tag_changed(cu, key, found, ev, err);
}

int
tags_delete(struct ctx *c, json_t **data, struct app_err *err)
{
    return tag_change(c, "tag_deleted", apply_delete, 200, data, err);
}

/* PATCH /customer/tag-key ------------------------------------------------- */

static int
apply_rename(struct ctx *c, const struct customer *cu, const json_t *before,
             json_t *ev, struct app_err *err)
{
    const char *key = ctx_str(c, "tag_key");
    const char *new_key = ctx_str(c, "new_tag_key");
    bool found;
    if (json_object_get(before, key) == NULL)
        return tag_missing(cu, key, err);
    if (json_object_get(before, new_key) != NULL) {
        err_set(err, 409, "Tag \"%s\" already exists on customer %s", new_key,
                cu->customer_id);
        return 409;
    }
    if (tags_db_rename(c->db, cu->customer_id, key, new_key, &found, err) < 0)
        return err->status;
    json_object_set_new(ev, "tag_key", json_string(key));
    json_object_set_new(ev, "new_tag_key", json_string(new_key));
    return 0;
}

int
tags_rename_key(struct ctx *c, json_t **data, struct app_err *err)
{
    return tag_change(c, "tag_key_changed", apply_rename, 200, data, err);
}

/* PATCH /customer/tag-value ----------------------------------------------- */

static int
apply_set_value(struct ctx *c, const struct customer *cu, const json_t *before,
                json_t *ev, struct app_err *err)
{
    const char *key = ctx_str(c, "tag_key");
    const char *value = ctx_str(c, "new_tag_value");
    bool found;
    (void)before;
    if (tags_db_set_value(c->db, cu->customer_id, key, value, &found, err) < 0)
        return err->status;
    return tag_changed(cu, key, found, ev, err);
}

int
tags_set_value(struct ctx *c, json_t **data, struct app_err *err)
{
    return tag_change(c, "tag_value_changed", apply_set_value, 200, data, err);
}
