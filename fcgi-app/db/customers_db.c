/*
 * fcgi-app/db/customers_db.c — see customers_db.h.
 */
#include "customers_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DB_STMT(customers_insert, 4,
        "INSERT INTO customers (customer_id, consumer_id, name, status) "
        "VALUES ($1, $2, $3, $4) "
        "RETURNING fintegrate_ts(created_at), fintegrate_ts(updated_at)");

/* Tags as one JSON object in ascending byte order of tag_key. */
DB_STMT(
    customers_get, 2,
    "SELECT c.customer_id, c.consumer_id, c.name, c.status, "
    "       fintegrate_ts(c.created_at), fintegrate_ts(c.updated_at), "
    "       (SELECT COALESCE(json_object_agg(t.tag_key, t.tag_value "
    "                        ORDER BY t.tag_key COLLATE \"C\"), '{}') "
    "          FROM customer_tags t WHERE t.customer_id = c.customer_id) "
    "  FROM customers c "
    " WHERE c.customer_id = $1 AND ($2::uuid IS NULL OR c.consumer_id = $2)");

DB_STMT(customers_lock, 2,
        "SELECT customer_id, consumer_id, name, status, "
        "       fintegrate_ts(created_at), fintegrate_ts(updated_at) "
        "  FROM customers "
        " WHERE customer_id = $1 AND ($2::uuid IS NULL OR consumer_id = $2) "
        "   FOR UPDATE");

DB_STMT(customers_set_status, 2,
        "UPDATE customers SET status = $2, updated_at = clock_timestamp() "
        " WHERE customer_id = $1 RETURNING fintegrate_ts(updated_at)");

DB_STMT(customers_touch, 1,
        "UPDATE customers SET updated_at = clock_timestamp() "
        " WHERE customer_id = $1");

DB_STMT(customers_delete, 1,
        "DELETE FROM customers WHERE customer_id = $1 "
        "RETURNING fintegrate_ts(clock_timestamp())");

void
customer_free(struct customer *c)
{
    free(c->name);
    c->name = NULL;
    json_decref(c->tags);
    c->tags = NULL;
}

static void
copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

/* Fills `out` from the first six columns of row 0. */
static int
customer_from_row(PGresult *res, struct customer *out, struct app_err *err)
{
    out->found = true;
    copy(out->customer_id, sizeof out->customer_id, PQgetvalue(res, 0, 0));
    copy(out->consumer_id, sizeof out->consumer_id, PQgetvalue(res, 0, 1));
    out->name = strdup(PQgetvalue(res, 0, 2));
    copy(out->status, sizeof out->status, PQgetvalue(res, 0, 3));
    copy(out->created_at, sizeof out->created_at, PQgetvalue(res, 0, 4));
    copy(out->updated_at, sizeof out->updated_at, PQgetvalue(res, 0, 5));
    if (out->name == NULL) {
        err_set(err, 500, "Out of memory reading a customer");
        return -1;
    }
    return 0;
}

int
customers_db_insert(struct db *db, struct customer *c, struct app_err *err)
{
    const char *p[] = {c->customer_id, c->consumer_id, c->name, c->status};
    PGresult *res = db_exec(db, &customers_insert, p, err);
    if (res == NULL)
        return -1;
    copy(c->created_at, sizeof c->created_at, PQgetvalue(res, 0, 0));
    copy(c->updated_at, sizeof c->updated_at, PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

int
customers_db_get(struct db *db, const char *customer_id, const char *owner,
                 struct customer *out, struct app_err *err)
{
    const char *p[] = {customer_id, owner};
    int rc = -1;
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, &customers_get, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        rc = 0;
        goto out;
    }
    if (customer_from_row(res, out, err) < 0)
        goto out;
    out->tags = json_loads(PQgetvalue(res, 0, 6), 0, NULL);
    if (!json_is_object(out->tags)) {
        err_set(err, 500, "Internal error reading a customer's tags");
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

int
customers_db_lock(struct db *db, const char *customer_id, const char *owner,
                  struct customer *out, struct app_err *err)
{
    const char *p[] = {customer_id, owner};
    int rc = 0;
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, &customers_lock, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1)
        rc = customer_from_row(res, out, err);
    PQclear(res);
    return rc;
}

int
customers_db_set_status(struct db *db, const char *customer_id,
                        const char *status, char updated_at[40],
                        struct app_err *err)
{
    const char *p[] = {customer_id, status};
    return db_exec_value(db, &customers_set_status, p, updated_at, 40, err);
}

int
customers_db_touch(struct db *db, const char *customer_id, struct app_err *err)
{
    const char *p[] = {customer_id};
    return db_exec_command(db, &customers_touch, p, err);
}

int
customers_db_delete(struct db *db, const char *customer_id, char deleted_at[40],
                    struct app_err *err)
{
    const char *p[] = {customer_id};
    return db_exec_value(db, &customers_delete, p, deleted_at, 40, err);
}
