/*
 * fcgi-app/db/db.h — the worker's one PostgreSQL connection.
 *
 * Opened lazily after fork, checked before every request (db_ensure): a
 * connection that died while PostgreSQL restarted is noticed there (its
 * socket turned readable with the server's goodbye) and replaced before a
 * request uses it.  Statements are prepared once per connection and run
 * with $n parameters only; no SQL is ever built from strings.
 *
 * Errors map through one SQLSTATE table to the status the client sees:
 * connection loss → 503, unique violation → 409, bad text → 422, anything
 * else → 500.  The PostgreSQL message goes to the app_err's detail (log
 * only), never to the client.
 */
#ifndef FI_DB_H
#define FI_DB_H

#include "../core/app_err.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct db {
    PGconn *conn;   /* NULL until connected */
    char *conninfo; /* owned; a secret: never logged */
    unsigned gen;   /* bumped at every (re)connect; invalidates prepares */
    bool in_tx;
};

/* A statement prepared on first use on each connection.  Declare them
 * static in the query modules with DB_STMT. */
struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
    unsigned prepared_gen; /* == db.gen when prepared on this connection */
};

#define DB_STMT(ident, n, text)                                                \
    static struct db_stmt ident = {#ident, text, n, 0}

int db_init(struct db *db, const char *conninfo)
    __attribute__((warn_unused_result));
void db_close(struct db *db);

/* Makes sure the connection is usable: connects, or replaces a stale one.
 * 0 ok; -1 with a 503 in `err` when PostgreSQL cannot be reached. */
int db_ensure(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));

/*
 * Runs a prepared statement.  Returns the result (owned; PQclear) when its
 * status is PGRES_TUPLES_OK or PGRES_COMMAND_OK, else NULL with `err` set.
 * params: `st->nparams` strings, NULL for SQL NULL.
 */
PGresult *db_exec(struct db *db, struct db_stmt *st, const char *const *params,
                  struct app_err *err) __attribute__((warn_unused_result));

/* Runs a statement whose result only matters as success or failure. */
int db_exec_command(struct db *db, struct db_stmt *st,
                    const char *const *params, struct app_err *err)
    __attribute__((warn_unused_result));

/* Runs a statement and copies the first column of its first row into
 * out[outlen] ("" when it returned no row).  0 ok, -1 with err. */
int db_exec_value(struct db *db, struct db_stmt *st, const char *const *params,
                  char *out, size_t outlen, struct app_err *err)
    __attribute__((warn_unused_result));

/* Runs a one-row change; *changed says whether a row was affected. */
int db_exec_changed(struct db *db, struct db_stmt *st,
                    const char *const *params, bool *changed,
                    struct app_err *err) __attribute__((warn_unused_result));

int db_begin(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));
int db_commit(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));
/* Rolls back if a transaction is open; safe to call at any time. */
void db_rollback(struct db *db);

/* A round trip ("SELECT 1").  0 ok, -1 with a 503. */
int db_ping(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));

/*
 * Row `row` of `res` as a JSON object keyed by column name (owned): NULL →
 * null, int2/int4/int8 → integer, float → real, bool → true/false, json and
 * jsonb → the parsed value, everything else → string.  NULL on OOM.
 */
json_t *db_row_object(const PGresult *res, int row);

/* Whether `err` came from a unique violation (SQLSTATE 23505). */
bool db_is_unique_violation(const struct app_err *err);

/* Maps a SQLSTATE to the HTTP status the client should see. */
int db_sqlstate_status(const char *sqlstate);

#endif
