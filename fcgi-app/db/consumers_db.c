/*
 * fcgi-app/db/consumers_db.c — see consumers_db.h.
 */
#include "consumers_db.h"

#include <stdio.h>
#include <string.h>

#define CONSUMER_COLUMNS                                                       \
    "consumer_id, consumer_name, status, fintegrate_ts(created_at), "          \
    "fintegrate_ts(updated_at)"

DB_STMT(consumers_insert, 2,
        "INSERT INTO consumers (consumer_id, consumer_name) VALUES ($1, $2) "
        "RETURNING " CONSUMER_COLUMNS);
DB_STMT(consumers_get, 1,
        "SELECT " CONSUMER_COLUMNS " FROM consumers WHERE consumer_id = $1");
DB_STMT(consumers_lock, 1,
        "SELECT " CONSUMER_COLUMNS " FROM consumers WHERE consumer_id = $1 "
        "FOR UPDATE");
DB_STMT(consumers_set_status, 2,
        "UPDATE consumers SET status = $2, updated_at = clock_timestamp() "
        " WHERE consumer_id = $1 RETURNING fintegrate_ts(updated_at)");

DB_STMT(consumers_names, 0,
        "SELECT consumer_name FROM consumers ORDER BY consumer_name");

static void
copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

static void
consumer_from_row(PGresult *res, struct consumer *out)
{
    out->found = true;
    copy(out->consumer_id, sizeof out->consumer_id, PQgetvalue(res, 0, 0));
    copy(out->consumer_name, sizeof out->consumer_name, PQgetvalue(res, 0, 1));
    copy(out->status, sizeof out->status, PQgetvalue(res, 0, 2));
    copy(out->created_at, sizeof out->created_at, PQgetvalue(res, 0, 3));
    copy(out->updated_at, sizeof out->updated_at, PQgetvalue(res, 0, 4));
}

static int
read_consumer(struct db *db, struct db_stmt *st, const char *const *p,
              struct consumer *out, struct app_err *err)
{
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, st, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1)
        consumer_from_row(res, out);
    PQclear(res);
    return 0;
}

int
consumers_db_insert(struct db *db, const char *consumer_id, const char *name,
                    struct consumer *out, struct app_err *err)
{
    const char *p[] = {consumer_id, name};
    return read_consumer(db, &consumers_insert, p, out, err);
}

int
consumers_db_get(struct db *db, const char *consumer_id, struct consumer *out,
                 struct app_err *err)
{
    const char *p[] = {consumer_id};
    return read_consumer(db, &consumers_get, p, out, err);
}

int
consumers_db_lock(struct db *db, const char *consumer_id, struct consumer *out,
                  struct app_err *err)
{
    const char *p[] = {consumer_id};
    return read_consumer(db, &consumers_lock, p, out, err);
}

int
consumers_db_set_status(struct db *db, const char *consumer_id,
                        const char *status, char updated_at[40],
                        struct app_err *err)
{
    const char *p[] = {consumer_id, status};
    return db_exec_value(db, &consumers_set_status, p, updated_at, 40, err);
}

int
consumers_db_names(struct db *db, json_t **names, struct app_err *err)
{
    return db_exec_rows(db, &consumers_names, NULL, db_row_scalar, names, err);
}
