/*
 * fcgi-app/db/db.c — see db.h.
 *
 * Every call goes out through libpq's asynchronous interface on a
 * non-blocking connection (PQsendQuery / PQsendPrepare /
 * PQsendQueryPrepared, then poll on PQsocket, PQconsumeInput, PQisBusy,
 * PQgetResult), so that one deadline bounds it whatever the server and the
 * network do.
 */
#include "db.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/strbuf.h"

#include <errno.h>
#include <limits.h>
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
    {"57014", 503}, /* query_canceled: statement_timeout passed; retry */
    {"25P03", 503}, /* idle_in_transaction_session_timeout */
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

/* Our server settings first, then the conninfo's own "options", so that a
 * setting the conninfo repeats wins (the server applies -c switches in
 * order).  db_connect passes the result after "dbname", where the
 * conninfo's "options" cannot replace it. */
static int
db_build_options(struct db *db)
{
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(db->conninfo, &parse_err);
    if (opts == NULL && parse_err == NULL)
        return -1; /* out of memory */
    if (opts == NULL) {
        /* libpq's message may quote the conninfo, password included. */
        PQfreemem(parse_err);
        log_error("FINTEGRATE_DB_URL is not a valid libpq connection string "
                  "(keyword=value or postgresql:// URI); every database "
                  "call will fail");
    }
    db->conninfo_ok = opts != NULL;

    const struct db_limits *l = &db->limits;
    struct strbuf sb = STRBUF_INIT;
    sb_printf(&sb,
              "-c statement_timeout=%ld -c lock_timeout=%ld "
              "-c idle_in_transaction_session_timeout=%ld",
              l->statement_timeout_ms, l->lock_timeout_ms,
              l->idle_in_tx_timeout_ms);
    for (const PQconninfoOption *o = opts; o != NULL && o->keyword != NULL;
         o++) {
        if (strcmp(o->keyword, "options") == 0 && o->val != NULL &&
            o->val[0] != '\0') {
            sb_puts(&sb, " ");
            sb_puts(&sb, o->val);
        }
    }
    PQconninfoFree(opts);
    db->options = sb.oom ? NULL : sb_steal(&sb);
    sb_free(&sb);
    return db->options != NULL ? 0 : -1;
}

int
db_init(struct db *db, const struct config *cfg)
{
    memset(db, 0, sizeof *db);
    db->limits = (struct db_limits){
        .connect_timeout_s = cfg->db_connect_timeout_s,
        .reply_timeout_ms = cfg->db_reply_timeout_ms,
        .statement_timeout_ms = cfg->db_statement_timeout_ms,
        .lock_timeout_ms = cfg->db_lock_timeout_ms,
        .idle_in_tx_timeout_ms = cfg->db_idle_in_tx_timeout_ms,
        .keepalives = cfg->db_keepalives,
        .keepalives_idle_s = cfg->db_keepalives_idle_s,
        .keepalives_interval_s = cfg->db_keepalives_interval_s,
        .keepalives_count = cfg->db_keepalives_count,
        .tcp_user_timeout_ms = cfg->db_tcp_user_timeout_ms,
    };
    db->conninfo = strdup(cfg->db_url);
    if (db->conninfo == NULL)
        return -1;
    return db_build_options(db);
}

/* Forgets the connection; the server rolls back what was open when it
 * notices. */
static void
db_drop(struct db *db)
{
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = NULL;
    db->in_tx = false;
    db->begin_pending = false;
    db->tx_depth = 0;
}

void
db_close(struct db *db)
{
    db_drop(db);
    free(db->conninfo);
    free(db->options);
    db->conninfo = db->options = NULL;
}

static int
db_connect(struct db *db, struct app_err *err)
{
    const struct db_limits *l = &db->limits;
    char timeout[24], ka[24], ka_idle[24], ka_interval[24], ka_count[24],
        user_timeout[24];
    snprintf(timeout, sizeof timeout, "%ld", l->connect_timeout_s);
    snprintf(ka, sizeof ka, "%ld", l->keepalives);
    snprintf(ka_idle, sizeof ka_idle, "%ld", l->keepalives_idle_s);
    snprintf(ka_interval, sizeof ka_interval, "%ld", l->keepalives_interval_s);
    snprintf(ka_count, sizeof ka_count, "%ld", l->keepalives_count);
    snprintf(user_timeout, sizeof user_timeout, "%ld", l->tcp_user_timeout_ms);
    /* Ours before "dbname" (the conninfo, expanded in its place), so that
     * what the conninfo sets wins: a multi-host URL is asked for a
     * read-write server unless it says otherwise, and connect_timeout
     * applies to each host in turn.  "options" after it: db_build_options
     * already put the conninfo's own after ours. */
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "target_session_attrs",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          "options",
                          NULL};
    const char *vals[] = {
        timeout,      "fintegrate-fcgi", "read-write", ka,
        ka_idle,      ka_interval,       ka_count,     user_timeout,
        db->conninfo, db->options,       NULL};

    db_drop(db);
    if (!db->conninfo_ok) {
        err_set(err, 503, "%s", client_message(503));
        err_detail(err, "connect: FINTEGRATE_DB_URL is not a valid libpq "
                        "connection string");
        return -1;
    }
    db->conn = PQconnectdbParams(keys, vals, 1);
    /* Non-blocking: a send never waits on the socket, db_collect flushes
     * under the call's deadline. */
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK ||
        PQsetnonblocking(db->conn, 1) != 0) {
        err_set(err, 503, "%s", client_message(503));
        err_detail(err, "connect: %s",
                   db->conn ? PQerrorMessage(db->conn) : "out of memory");
        db_drop(db);
        return -1;
    }
    /* Unique in the process, so a statement prepared on an earlier
     * connection of another struct db is never taken as prepared here. */
    static unsigned generation;
    db->gen = ++generation;
    log_info("database connection established (%s port %s)",
             PQhost(db->conn) ? PQhost(db->conn) : "?",
             PQport(db->conn) ? PQport(db->conn) : "?");
    return 0;
}

/* A healthy idle connection has nothing to read: we never LISTEN, so the
 * server speaks unprompted only to say goodbye (the FATAL "terminating
 * connection" of a shutdown or pg_terminate_backend, then EOF).  libpq
 * would consume that message and still report CONNECTION_OK until the next
 * query fails, so any readable byte on an idle connection counts as
 * stale. */
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

/* Fills `err` from a failed call; drops a connection that broke. */
static void
fail_from_result(struct db *db, PGresult *res, const char *what,
                 struct app_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int http = db_sqlstate_status(state);
    bool broken = PQstatus(db->conn) != CONNECTION_OK;
    if (broken)
        http = 503;
    err_set(err, http, "%s", client_message(http));
    snprintf(err->code, sizeof err->code, "%s", state ? state : "");
    err_detail(err, "%s: SQLSTATE %s: %s", what, state ? state : "-",
               res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    if (broken)
        db_drop(db);
}

/* One request to the server. */
enum db_op { DB_OP_QUERY, DB_OP_PREPARE, DB_OP_EXEC };

struct db_call {
    enum db_op op;
    const char *sql;           /* DB_OP_QUERY: a fixed statement of ours */
    struct db_stmt *st;        /* DB_OP_PREPARE, DB_OP_EXEC */
    const char *const *params; /* DB_OP_EXEC */
};

static const char *
call_name(const struct db_call *c)
{
    return c->op == DB_OP_QUERY ? c->sql : c->st->name;
}

/* 1 when libpq queued the call, 0 when it refused (nothing sent). */
static int
call_send(PGconn *conn, const struct db_call *c)
{
    switch (c->op) {
    case DB_OP_QUERY:
        return PQsendQuery(conn, c->sql);
    case DB_OP_PREPARE:
        return PQsendPrepare(conn, c->st->name, c->st->sql, c->st->nparams,
                             NULL);
    case DB_OP_EXEC:
        return PQsendQueryPrepared(conn, c->st->name, c->st->nparams, c->params,
                                   NULL, NULL, 0);
    }
    return 0;
}

static bool
result_ok(const PGresult *res)
{
    ExecStatusType s = PQresultStatus(res);
    return s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
}

/*
 * Flushes what was sent and collects its results until `deadline`
 * (mono_ms).  Returns the result that decides — the first error, else the
 * last — owned; NULL when the call did not finish (*late: the deadline
 * passed), and the connection is then in the middle of the call: drop it.
 * A broken connection finishes the call with libpq's error result.
 */
static PGresult *
db_collect(PGconn *conn, long long deadline, bool *late)
{
    /* In pipeline mode each query's results end with a NULL and the whole
     * with the sync's own result: that one ends the call. */
    bool pipeline = PQpipelineStatus(conn) != PQ_PIPELINE_OFF;
    PGresult *keep = NULL;
    *late = false;
    for (;;) {
        /* PQflush is -1 on a connection already known broken: then the
         * error result is what is left to collect. */
        int unflushed = PQflush(conn);
        if (unflushed < 0 && PQstatus(conn) != CONNECTION_BAD)
            break;
        if (unflushed < 0)
            unflushed = 0;
        if (unflushed == 0 && !PQisBusy(conn)) {
            PGresult *r = PQgetResult(conn); /* does not block now */
            /* A broken connection never delivers the pipeline's sync:
             * libpq then answers NULL for ever, and `keep` holds its
             * error. */
            if (r == NULL && (!pipeline || PQstatus(conn) == CONNECTION_BAD))
                return keep;
            if (r == NULL)
                continue; /* the end of one query of the pipeline */
            if (pipeline && PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                return keep;
            }
            if (keep == NULL || result_ok(keep)) {
                PQclear(keep);
                keep = r;
            } else {
                PQclear(r);
            }
            continue;
        }
        long long left = deadline - mono_ms();
        if (left <= 0) {
            *late = true;
            break;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (unflushed)
            pfd.events |= POLLOUT;
        if (pfd.fd < 0)
            break;
        int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n < 0 && errno != EINTR)
            break;
        /* On a failed read libpq marks the connection bad and the next
         * turn gets its error result; anything else would spin. */
        if (n > 0 && PQconsumeInput(conn) == 0 &&
            PQstatus(conn) != CONNECTION_BAD)
            break;
    }
    PQclear(keep);
    return NULL;
}

/* BEGIN and `c` (a prepared statement) in one round trip: libpq pipeline
 * mode, BEGIN, the statement, a sync.  1 when libpq queued all of it, 0
 * when it refused (then nothing is on the wire: a refused send is a
 * connection libpq already knows broken, and the pipeline is flushed only
 * by db_collect). */
static int
send_with_begin(PGconn *conn, const struct db_call *c)
{
    if (!PQenterPipelineMode(conn) ||
        !PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
        return 0;
    /* PQsendQuery (the simple protocol) is refused in a pipeline: a fixed
     * statement of ours is one statement, sent as one with no parameters */
    int sent = c->op == DB_OP_QUERY ? PQsendQueryParams(conn, c->sql, 0, NULL,
                                                        NULL, NULL, NULL, 0)
                                    : call_send(conn, c);
    return sent && PQpipelineSync(conn);
}

/*
 * Sends `c` and waits for its reply until `deadline`.  Returns the result
 * when its status is TUPLES_OK or COMMAND_OK, else NULL with `err`.
 * *unsent: libpq refused to send it, so the server cannot have it.  A call
 * left without its reply drops the connection.
 */
static PGresult *
call_once(struct db *db, const struct db_call *c, long long deadline,
          bool *unsent, struct app_err *err)
{
    *unsent = false;
    bool with_begin = db->begin_pending;
    if (with_begin ? !send_with_begin(db->conn, c) : !call_send(db->conn, c)) {
        *unsent = true;
        fail_from_result(db, NULL, call_name(c), err);
        if (with_begin)
            db_drop(db); /* it may be left in pipeline mode */
        return NULL;
    }
    db->begin_pending = false;
    bool late;
    PGresult *res = db_collect(db->conn, deadline, &late);
    if (with_begin && (res == NULL || !PQexitPipelineMode(db->conn))) {
        /* no reply, or one libpq cannot close: the connection goes */
        if (res != NULL) {
            PQclear(res);
            res = NULL;
            late = false;
        }
    }
    if (res != NULL && result_ok(res))
        return res;
    if (res != NULL) {
        fail_from_result(db, res, call_name(c), err);
        PQclear(res);
        return NULL;
    }
    err_set(err, 503, "%s", client_message(503));
    if (late) {
        err_detail(err, "%s: no reply within %ld ms; connection dropped",
                   call_name(c), db->limits.reply_timeout_ms);
        log_warn("database: no reply to %s within %ld ms; dropping the "
                 "connection",
                 call_name(c), db->limits.reply_timeout_ms);
    } else {
        err_detail(err, "%s: connection failed: %s", call_name(c),
                   PQerrorMessage(db->conn));
    }
    db_drop(db);
    return NULL;
}

/* call_once, after preparing the statement of a DB_OP_EXEC on this
 * connection if it is not yet. */
static PGresult *
call_prepared(struct db *db, const struct db_call *c, long long deadline,
              bool *unsent, struct app_err *err)
{
    if (c->op == DB_OP_EXEC && c->st->prepared_gen != db->gen) {
        struct db_call prep = {.op = DB_OP_PREPARE, .st = c->st};
        PGresult *res = call_once(db, &prep, deadline, unsent, err);
        if (res == NULL)
            return NULL;
        PQclear(res);
        c->st->prepared_gen = db->gen;
    }
    return call_once(db, c, deadline, unsent, err);
}

/* What db_drop forgets of the transaction. */
struct tx_state {
    bool in_tx;
    unsigned depth, held;
};

static struct tx_state
tx_state_of(const struct db *db)
{
    return (struct tx_state){db->in_tx, db->tx_depth, db->tx_floor};
}

/* A fresh connection in place of a dead one on which nothing of the
 * transaction `tx` was sent (none open, or its BEGIN still pending): the
 * transaction, not yet begun anywhere, begins on the new one. */
static int
reconnect(struct db *db, struct tx_state tx, struct app_err *err)
{
    if (db_connect(db, err) < 0)
        return -1;
    if (tx.in_tx) {
        db->in_tx = true;
        db->begin_pending = true;
        db->tx_depth = tx.depth;
        db->tx_floor = tx.held;
    }
    return 0;
}

/* Before sending: a connection, not found dead.  Outside a transaction a
 * dead one is replaced (nothing was sent on it, so nothing runs twice);
 * inside one, the transaction is lost: 503.  A connection dropped earlier
 * in this request is not replaced here (db_ensure, at the next request,
 * does), so one request waits for at most one deadline. */
static int
db_ready(struct db *db, const char *what, struct app_err *err)
{
    if (db->conn == NULL) {
        err_set(err, 503, "%s", client_message(503));
        err_detail(err, "%s: not connected to the database", what);
        return -1;
    }
    if (!db_is_stale(db))
        return 0;
    if (db->in_tx && !db->begin_pending) {
        err_set(err, 503, "%s", client_message(503));
        err_detail(err, "%s: the connection died inside a transaction", what);
        db_drop(db);
        return -1;
    }
    log_warn("database connection went stale; reconnecting before %s", what);
    return reconnect(db, tx_state_of(db), err);
}

/*
 * Runs `c` with the re-send rule of db.h, under one deadline that counts
 * from here (a reconnect included).
 */
static PGresult *
db_call(struct db *db, const struct db_call *c, struct app_err *err)
{
    long long deadline = mono_ms() + db->limits.reply_timeout_ms;
    if (db_ready(db, call_name(c), err) < 0)
        return NULL;
    bool unsent;
    /* db_drop forgets the transaction: what it was, for the re-send */
    bool fresh_tx = !db->in_tx || db->begin_pending;
    struct tx_state tx = tx_state_of(db);
    PGresult *res = call_prepared(db, c, deadline, &unsent, err);
    if (res == NULL && unsent && fresh_tx &&
        (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD)) {
        log_warn("database connection found dead before %s was sent; "
                 "reconnecting to send it",
                 call_name(c));
        err_clear(err);
        if (reconnect(db, tx, err) < 0)
            return NULL;
        res = call_prepared(db, c, deadline, &unsent, err);
    }
    return res;
}

PGresult *
db_exec(struct db *db, struct db_stmt *st, const char *const *params,
        struct app_err *err)
{
    struct db_call c = {.op = DB_OP_EXEC, .st = st, .params = params};
    return db_call(db, &c, err);
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

/* A fixed statement of ours (no parameters), through the same rules. */
static PGresult *
db_simple(struct db *db, const char *sql, struct app_err *err)
{
    struct db_call c = {.op = DB_OP_QUERY, .sql = sql};
    return db_call(db, &c, err);
}

int
db_begin(struct db *db, struct app_err *err)
{
    if (db->tx_depth > 0) {
        /* A level inside the open transaction: a savepoint named after
         * its level (a number of ours, not input). */
        char sql[32];
        snprintf(sql, sizeof sql, "SAVEPOINT fi_sp%u", db->tx_depth + 1);
        PGresult *res = db_simple(db, sql, err);
        if (res == NULL)
            return -1;
        PQclear(res);
        db->tx_depth++;
        return 0;
    }
    /* Sent with the first statement (db.h): one round trip fewer.  The
     * connection must be there, as an eager BEGIN would have found. */
    if (db_ready(db, "BEGIN", err) < 0)
        return -1;
    db->in_tx = true;
    db->begin_pending = true;
    db->tx_depth = 1;
    db->tx_floor = 0; /* a new transaction is never held by a stale hold */
    return 0;
}

int
db_begin_held(struct db *db, struct app_err *err)
{
    if (db_begin(db, err) < 0)
        return -1;
    db->tx_floor = db->tx_depth;
    return 0;
}

void
db_unhold(struct db *db)
{
    db->tx_floor = 0;
}

bool
db_tx_failed(const struct db *db)
{
    return db->conn != NULL && PQtransactionStatus(db->conn) == PQTRANS_INERROR;
}

int
db_commit(struct db *db, struct app_err *err)
{
    if (db->tx_depth > 1 || (db->tx_depth == 1 && db->tx_floor > 0)) {
        /* A savepoint keeps its work until the outer COMMIT: nothing to
         * send.  At the held level the holder commits. */
        if (db->tx_depth > db->tx_floor)
            db->tx_depth--;
        return 0;
    }
    if (db->begin_pending) {
        /* nothing was sent: nothing to commit */
        db->in_tx = db->begin_pending = false;
        db->tx_depth = 0;
        return 0;
    }
    PGresult *res = db_simple(db, "COMMIT", err);
    db->in_tx = false;
    db->tx_depth = 0;
    if (res == NULL)
        return -1;
    /* A transaction that had already failed ends with the tag "ROLLBACK":
     * nothing was committed. */
    bool committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed) {
        err_set(err, 503, "%s", client_message(503));
        err_detail(err, "COMMIT: the server answered ROLLBACK (the "
                        "transaction had already failed); nothing was "
                        "committed");
        return -1;
    }
    return 0;
}

/* Ends the transaction or returns to the savepoint of the current level;
 * a failure drops the connection (and with it the transaction). */
static void
db_rollback_level(struct db *db)
{
    char sql[48];
    if (db->tx_depth > 1)
        snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT fi_sp%u",
                 db->tx_depth);
    else
        snprintf(sql, sizeof sql, "ROLLBACK");
    struct db_call c = {.op = DB_OP_QUERY, .sql = sql};
    struct app_err err = APP_ERR_INIT;
    bool unsent;
    PGresult *res = call_once(db, &c, mono_ms() + db->limits.reply_timeout_ms,
                              &unsent, &err);
    if (res == NULL && db->conn != NULL) {
        log_warn("database: %s failed (%s); dropping the connection", sql,
                 err.detail ? err.detail : "");
        db_drop(db);
    }
    PQclear(res);
    err_clear(&err);
}

void
db_rollback(struct db *db)
{
    if (db->tx_depth <= db->tx_floor && db->tx_depth > 0)
        return; /* the held level: its holder ends it */
    if (!db->in_tx || db->conn == NULL || db->begin_pending) {
        /* nothing begun on the server (or no server): nothing to undo */
        db->in_tx = db->begin_pending = false;
        db->tx_depth = 0;
        return;
    }
    if (db_is_stale(db)) {
        db_drop(db); /* the transaction died with it */
        return;
    }
    db_rollback_level(db);
    if (db->conn == NULL)
        return; /* dropped: db_drop reset the state */
    if (db->tx_depth > 1) {
        db->tx_depth--;
    } else {
        db->in_tx = false;
        db->tx_depth = 0;
    }
}

int
db_ping(struct db *db, struct app_err *err)
{
    PGresult *res = db_simple(db, "SELECT 1", err);
    if (res == NULL)
        return -1;
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

json_t *
db_row_scalar(const PGresult *res, int row)
{
    return PQnfields(res) > 0 ? db_value(res, row, 0) : json_null();
}

int
db_exec_rows(struct db *db, struct db_stmt *st, const char *const *params,
             db_row_fn *row, json_t **rows, struct app_err *err)
{
    *rows = NULL;
    PGresult *res = db_exec(db, st, params, err);
    if (res == NULL)
        return -1;
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < PQntuples(res); i++) {
        if (json_array_append_new(list, row(res, i)) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    PQclear(res);
    if (list == NULL) {
        err_set(err, 500, "Out of memory reading rows from the database");
        return -1;
    }
    *rows = list;
    return 0;
}

bool
db_is_unique_violation(const struct app_err *err)
{
    return strcmp(err->code, "23505") == 0;
}
