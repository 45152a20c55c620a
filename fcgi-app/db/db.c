/*
 * fcgi-app/db/db.c — see db.h.
 */
#include "db.h"
#include "../core/log.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SQLSTATE (or its class, written "XX") → HTTP status, first match wins. */
static const struct {
    const char *state;
    int http;
} sqlstate_map[] = {
    {"23505", 409}, /* unique_violation */
    {"23503", 409}, /* foreign_key_violation */
    {"22P02", 422}, /* invalid_text_representation */
    {"22007", 422}, /* invalid_datetime_format */
    {"22008", 422}, /* datetime_field_overflow */
    {"22001", 422}, /* string_data_right_truncation */
    {"23514", 422}, /* check_violation */
    {"40001", 503}, /* serialization_failure: the client may retry */
    {"40P01", 503}, /* deadlock_detected: the client may retry */
    {"55P03", 503}, /* lock_not_available: lock_timeout passed; retry */
    {"57P01", 503}, /* admin_shutdown */
    {"57P02", 503}, /* crash_shutdown */
    {"57P03", 503}, /* cannot_connect_now */
    {"08", 503},    /* connection_exception class */
    {"53", 503},    /* insufficient_resources class */
};

int
db_sqlstate_status(const char *st)
{
    if (st == NULL)
        return 503; /* no SQLSTATE: the connection itself failed */
    for (size_t i = 0; i < sizeof sqlstate_map / sizeof sqlstate_map[0]; i++) {
        size_t n = strlen(sqlstate_map[i].state);
        if (strncmp(st, sqlstate_map[i].state, n) == 0)
            return sqlstate_map[i].http;
    }
    return 500;
}

static const char *
client_message(int http)
{
    switch (http) {
    case 503:
        return "The database is unavailable; please retry";
    case 409:
        return "The request conflicts with existing data";
    case 422:
        return "A value was rejected by the database's rules";
    default:
        return "Internal error while talking to the database";
    }
}

int
db_init(struct db *db, const char *conninfo)
{
    memset(db, 0, sizeof *db);
    db->conninfo = strdup(conninfo);
    return db->conninfo ? 0 : -1;
}

void
db_close(struct db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    free(db->conninfo);
    db->conninfo = NULL;
}

static int
db_connect(struct db *db, struct app_err *err)
{
    /* Ours first, so a conninfo that sets its own wins.  lock_timeout
     * bounds every wait for a row lock (a confirmation of an event that a
     * re-drive batch holds waits for that batch at most): on timeout the
     * request answers 503 and the client retries. */
    const char *keys[] = {"connect_timeout", "application_name", "options",
                          "dbname", NULL};
    const char *vals[] = {"3", "fintegrate-fcgi", "-c lock_timeout=5000",
                          db->conninfo, NULL};
    if (db->conn)
        PQfinish(db->conn);
    db->in_tx = false;
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        err_set(err, 503, "The database is unavailable; please retry");
        err_detail(err, "connect: %s",
                   db->conn ? PQerrorMessage(db->conn) : "out of memory");
        if (db->conn)
            PQfinish(db->conn);
        db->conn = NULL;
        return -1;
    }
    db->gen++;
    log_info("database connection established");
    return 0;
}

/* A healthy idle connection has nothing to read: we never LISTEN, so the
 * server speaks unprompted only to say goodbye (the FATAL "terminating
 * connection" of a shutdown, then EOF).  libpq would consume that message
 * and still report CONNECTION_OK until the next query fails, so any
 * readable byte on an idle connection counts as stale. */
static bool
db_is_stale(struct db *db)
{
    if (PQstatus(db->conn) != CONNECTION_OK)
        return true;
    struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return true;
    return poll(&pfd, 1, 0) != 0;
}

int
db_ensure(struct db *db, struct app_err *err)
{
    if (db->conn != NULL && !db_is_stale(db))
        return 0;
    if (db->conn != NULL)
        log_warn("database connection went stale; reconnecting");
    return db_connect(db, err);
}

static void
fail_from_result(struct db *db, PGresult *res, const char *what,
                 struct app_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int http = db_sqlstate_status(state);
    if (PQstatus(db->conn) != CONNECTION_OK)
        http = 503;
    err_set(err, http, "%s", client_message(http));
    snprintf(err->code, sizeof err->code, "%s", state ? state : "");
    err_detail(err, "%s: SQLSTATE %s: %s", what, state ? state : "-",
               res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
}

static int
db_prepare(struct db *db, struct db_stmt *st, struct app_err *err)
{
    if (st->prepared_gen == db->gen)
        return 0;
    PGresult *res = PQprepare(db->conn, st->name, st->sql, st->nparams, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail_from_result(db, res, st->name, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    st->prepared_gen = db->gen;
    return 0;
}

static PGresult *
exec_once(struct db *db, struct db_stmt *st, const char *const *params,
          struct app_err *err)
{
    if (db_prepare(db, st, err) < 0)
        return NULL;
    PGresult *res =
        PQexecPrepared(db->conn, st->name, st->nparams, params, NULL, NULL, 0);
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
        return res;
    fail_from_result(db, res, st->name, err);
    PQclear(res);
    return NULL;
}

PGresult *
db_exec(struct db *db, struct db_stmt *st, const char *const *params,
        struct app_err *err)
{
    if (db->conn == NULL) {
        err_set(err, 503, "%s", client_message(503));
        return NULL;
    }
    PGresult *res = exec_once(db, st, params, err);
    /* The server went away between db_ensure() and this statement.  Outside
     * a transaction nothing was done yet, so reconnect and try once more. */
    if (res == NULL && !db->in_tx && PQstatus(db->conn) != CONNECTION_OK) {
        log_warn("database connection lost; reconnecting and retrying %s",
                 st->name);
        err_clear(err);
        if (db_connect(db, err) < 0)
            return NULL;
        res = exec_once(db, st, params, err);
    }
    return res;
}

int
db_exec_command(struct db *db, struct db_stmt *st, const char *const *params,
                struct app_err *err)
{
    PGresult *res = db_exec(db, st, params, err);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

int
db_exec_value(struct db *db, struct db_stmt *st, const char *const *params,
              char *out, size_t outlen, struct app_err *err)
{
    PGresult *res = db_exec(db, st, params, err);
    if (res == NULL)
        return -1;
    snprintf(out, outlen, "%s",
             PQntuples(res) > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0)
                                                      : "");
    PQclear(res);
    return 0;
}

int
db_exec_changed(struct db *db, struct db_stmt *st, const char *const *params,
                bool *changed, struct app_err *err)
{
    PGresult *res = db_exec(db, st, params, err);
    if (res == NULL)
        return -1;
    *changed = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    return 0;
}

static int
db_simple(struct db *db, const char *sql, struct app_err *err)
{
    if (db->conn == NULL) {
        err_set(err, 503, "%s", client_message(503));
        return -1;
    }
    PGresult *res = PQexec(db->conn, sql);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail_from_result(db, res, sql, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int
db_begin(struct db *db, struct app_err *err)
{
    if (db_simple(db, "BEGIN", err) < 0)
        return -1;
    db->in_tx = true;
    return 0;
}

int
db_commit(struct db *db, struct app_err *err)
{
    int rc = db_simple(db, "COMMIT", err);
    db->in_tx = false;
    return rc;
}

void
db_rollback(struct db *db)
{
    if (!db->in_tx || db->conn == NULL)
        return;
    PGresult *res = PQexec(db->conn, "ROLLBACK");
    PQclear(res);
    db->in_tx = false;
}

int
db_ping(struct db *db, struct app_err *err)
{
    if (db->conn == NULL) {
        err_set(err, 503, "%s", client_message(503));
        return -1;
    }
    PGresult *res = PQexec(db->conn, "SELECT 1");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_from_result(db, res, "ping", err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Type OIDs from pg_type.h (stable across PostgreSQL versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_JSONB = 3802,
};

static json_t *
db_value(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    const char *v = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case OID_BOOL:
        return json_boolean(v[0] == 't');
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
        return json_integer(strtoll(v, NULL, 10));
    case OID_FLOAT4:
    case OID_FLOAT8:
        return json_real(strtod(v, NULL));
    case OID_JSON:
    case OID_JSONB:
        return json_loads(v, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    default:
        return json_stringn(v, (size_t)PQgetlength(res, row, col));
    }
}

json_t *
db_row_object(const PGresult *res, int row)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    for (int col = 0; col < PQnfields(res); col++) {
        json_t *v = db_value(res, row, col);
        if (v == NULL || json_object_set_new(obj, PQfname(res, col), v) < 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

bool
db_is_unique_violation(const struct app_err *err)
{
    return strcmp(err->code, "23505") == 0;
}
