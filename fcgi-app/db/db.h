/*
 * fcgi-app/db/db.h — the worker's one PostgreSQL connection.
 *
 * Opened lazily after fork, checked before every request (db_ensure) and
 * before every statement: a connection that died while it was idle (its
 * socket turned readable with the server's goodbye) is replaced before
 * anything is sent on it.  Statements are prepared once per connection and
 * run with $n parameters only; no SQL is ever built from strings.
 *
 * Faults (docs/API.md §7.7, docs/OPERATIONS.md "Database timeouts and
 * failover"):
 *   * every connection sets statement_timeout, lock_timeout,
 *     idle_in_transaction_session_timeout, TCP keepalives and
 *     tcp_user_timeout, asks for a read-write server (multi-host
 *     conninfo: the next connection after a failover finds the new
 *     primary), and bounds each connection attempt per host;
 *   * every call (db_exec, db_begin, db_commit, db_ping...) waits for its
 *     reply until a client-side deadline (the reply timeout): a server
 *     that stops answering — even one whose kernel still acknowledges, as
 *     a SIGSTOPped one — costs at most that long, then the connection is
 *     dropped and the call fails with a 503;
 *   * re-send rule: a statement is sent again on a fresh connection only
 *     when the old one was found dead before the statement went out (the
 *     check before sending, or libpq refused to send).  Once sent, a
 *     statement whose reply is lost is never run again: 503;
 *   * a COMMIT that the server answers with ROLLBACK fails with a 503.
 * db_begin sends nothing: its BEGIN goes out with the transaction's first
 * statement, in one round trip (libpq pipeline mode: BEGIN, the statement,
 * a sync), and a transaction that sent nothing commits or rolls back
 * without a round trip.  Until that first statement nothing of the
 * transaction is on the server, so a connection found dead before it is
 * replaced as outside a transaction.
 * After a call failed because the connection broke, the connection is
 * dropped and the rest of the request fails fast (503) without
 * reconnecting; the next request's db_ensure reconnects.
 *
 * Errors map through one SQLSTATE table to the status the client sees:
 * connection loss, timeouts → 503, unique violation → 409, bad text → 422,
 * anything else → 500.  The PostgreSQL message goes to the app_err's detail
 * (log only), never to the client; the conninfo (it may hold a password)
 * never reaches either.
 */
#ifndef FI_DB_H
#define FI_DB_H

#include "../core/app_err.h"
#include "../core/config.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Per-connection limits, from core/config (FINTEGRATE_DB_*). */
struct db_limits {
    long connect_timeout_s;     /* libpq connect_timeout, per host */
    long reply_timeout_ms;      /* client-side deadline of one call */
    long statement_timeout_ms;  /* 0 = none (server side) */
    long lock_timeout_ms;       /* 0 = none */
    long idle_in_tx_timeout_ms; /* 0 = none */
    long keepalives;            /* 0 or 1 */
    long keepalives_idle_s;
    long keepalives_interval_s;
    long keepalives_count;
    long tcp_user_timeout_ms; /* 0 = the kernel's default */
};

struct db {
    PGconn *conn;     /* NULL until connected, and after a drop */
    char *conninfo;   /* owned; a secret: never logged */
    char *options;    /* owned: our "-c" settings, then the conninfo's own */
    bool conninfo_ok; /* libpq could parse conninfo */
    struct db_limits limits;
    unsigned gen; /* new at every (re)connect, unique in the process;
                   * invalidates prepares */
    bool in_tx;
    bool begin_pending; /* db_begin's BEGIN not sent yet: it goes out with
                         * the transaction's first statement, in one
                         * round trip (libpq pipeline mode) */
    unsigned tx_depth;  /* 0 none, 1 a transaction, 2+ savepoints in it */
    unsigned tx_floor;  /* levels db_commit/db_rollback may not end (1
                         * while db_begin_held's transaction is held) */
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

/*
 * Sets up `db` for cfg->db_url (copied) and the FINTEGRATE_DB_* limits of
 * `cfg` (read now; cfg is not kept).  Connects nothing.  -1 on OOM only: a
 * conninfo libpq cannot parse is logged (without its text) and every
 * connection attempt then fails with a 503.  db_close it either way.
 */
int db_init(struct db *db, const struct config *cfg)
    __attribute__((warn_unused_result));
void db_close(struct db *db);

/* Makes sure the connection is usable: connects, or replaces a stale one.
 * 0 ok; -1 with a 503 in `err` when PostgreSQL cannot be reached. */
int db_ensure(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));

/*
 * Runs a prepared statement.  Returns the result (owned; PQclear) when its
 * status is PGRES_TUPLES_OK or PGRES_COMMAND_OK, else NULL with `err` set.
 * params: `st->nparams` strings, NULL for SQL NULL.  Follows the re-send
 * rule above: outside a transaction, a connection found dead before the
 * statement was sent is replaced and the statement sent once on the new
 * one; a lost reply is a 503, never a second run.
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

/*
 * Transactions nest: db_begin inside an open transaction sets a savepoint
 * (SAVEPOINT fi_sp<level>), the matching db_commit keeps its work (no round
 * trip: the savepoint simply stays until the outer COMMIT) and db_rollback
 * returns to it (ROLLBACK TO SAVEPOINT).  Only the outermost level sends
 * BEGIN, COMMIT and ROLLBACK.
 */
int db_begin(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));
/* 0 only when the server answered COMMIT with COMMIT.  A COMMIT answered
 * ROLLBACK (the transaction had already failed) is -1 with a 503; so is a
 * lost reply (whether it committed is then unknown).  The transaction is
 * over either way.  Inside a held transaction (db_begin_held) a commit at
 * the held level is a no-op: the holder commits. */
int db_commit(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));
/* Rolls back if a transaction is open; safe to call at any time.  A
 * ROLLBACK that gets no reply drops the connection (the server rolls back
 * when it notices).  Inside a held transaction it undoes only what was done
 * since the caller's db_begin (its savepoint), and is a no-op at the held
 * level itself. */
void db_rollback(struct db *db);

/*
 * Begins a transaction that the db_begin/db_commit/db_rollback calls made
 * inside it cannot end: theirs become savepoints (the pipeline holds one
 * around a handler, so that the handler's change and the request's stored
 * answer commit together).  db_unhold gives the transaction back to
 * db_commit/db_rollback, which then end it for real.  0 ok, -1 with err.
 */
int db_begin_held(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));
void db_unhold(struct db *db);

/* Whether the open transaction has failed (a statement in it errored and
 * was not rolled back to a savepoint): only a rollback can follow. */
bool db_tx_failed(const struct db *db);

/* A round trip ("SELECT 1").  0 ok, -1 with a 503. */
int db_ping(struct db *db, struct app_err *err)
    __attribute__((warn_unused_result));

/*
 * Row `row` of `res` as a JSON object keyed by column name (owned): NULL →
 * null, int2/int4/int8 → integer, float → real, bool → true/false, json and
 * jsonb → the parsed value, everything else → string.  NULL on OOM.
 */
json_t *db_row_object(const PGresult *res, int row);

/* The first column of row `row` of `res` as a JSON value, typed as
 * db_row_object types it.  NULL on OOM. */
json_t *db_row_scalar(const PGresult *res, int row);

/* What db_exec_rows makes of one row: db_row_object or db_row_scalar. */
typedef json_t *db_row_fn(const PGresult *res, int row);

/*
 * Runs a statement and returns its rows, in order, as a JSON array (owned)
 * of row(res, i).  0 ok; -1 with err and *rows NULL (a 500 when memory ran
 * out).
 */
int db_exec_rows(struct db *db, struct db_stmt *st, const char *const *params,
                 db_row_fn *row, json_t **rows, struct app_err *err)
    __attribute__((warn_unused_result));

/* Whether `err` came from a unique violation (SQLSTATE 23505). */
bool db_is_unique_violation(const struct app_err *err);

/* Maps a SQLSTATE to the HTTP status the client should see. */
int db_sqlstate_status(const char *sqlstate);

#endif
