/*
 * tests/integration/test_db_rules.c — the database layer's fault rules
 * (fcgi-app/db/db.h; docs/API.md §7.7), driven straight through
 * db/db.c against the test stack's real PostgreSQL (FINTEGRATE_DB_URL):
 *   * a statement whose connection is terminated while it runs fails with a
 *     503 and is not run again (no row), while a connection terminated
 *     while idle is replaced before the statement goes out (one row);
 *   * COMMIT of a transaction that had already failed (the server answers
 *     ROLLBACK) is -1 with a 503, and nothing of it is committed;
 *   * a server that stops answering (its backend SIGSTOPped: the kernel
 *     still acknowledges) costs one reply timeout, then the call is a 503,
 *     the connection is dropped and the next db_ensure reconnects;
 *   * every connection carries the configured limits (statement_timeout,
 *     lock_timeout, idle_in_transaction_session_timeout as the server sees
 *     them; keepalives and TCP_USER_TIMEOUT on the socket), and
 *     statement_timeout answers 503;
 *   * target_session_attrs=read-write is our default (a read-only session
 *     is refused) unless the URL sets its own, a URL's own options win over
 *     ours, and a multi-host URI whose first host refuses connects to the
 *     next.
 * Linked with the service's objects (Makefile: LIB_OBJ); it uses nothing
 * of the stack but PostgreSQL.
 */
#include "itest.h"

#include "core/config.h"
#include "db/db.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SCRATCH "itest_db_rules_runs"

DB_STMT(rules_insert_slow, 2,
        "INSERT INTO " SCRATCH " (tag) SELECT $1 FROM pg_sleep($2::float8)");
DB_STMT(rules_insert, 1, "INSERT INTO " SCRATCH " (tag) VALUES ($1)");
DB_STMT(rules_pid, 0, "SELECT pg_backend_pid()");
DB_STMT(rules_fail, 0, "SELECT 1 / (SELECT 0)");
DB_STMT(rules_sleep, 1, "SELECT pg_sleep($1::float8)");
DB_STMT(rules_setting, 1, "SELECT setting FROM pg_settings WHERE name = $1");
DB_STMT(rules_app_name, 0, "SELECT current_setting('application_name')");

static pid_t g_stopped = -1; /* a backend this binary SIGSTOPped */

static int
group_setup(void **state)
{
    if (itest_group_setup(state) < 0)
        return -1;
    const char *ddl[] = {"CREATE TABLE IF NOT EXISTS " SCRATCH
                         " (tag text NOT NULL, at timestamptz DEFAULT now())"};
    itest_sql_ddl(ddl, 1);
    return 0;
}

static int
group_teardown(void **state)
{
    const char *ddl[] = {"DROP TABLE IF EXISTS " SCRATCH};
    itest_sql_try_each(ddl, 1);
    return itest_group_teardown(state);
}

/* A stopped backend is always resumed, even after a failed assertion. */
static int
resume_teardown(void **state)
{
    (void)state;
    if (g_stopped > 0)
        kill(g_stopped, SIGCONT);
    g_stopped = -1;
    itest_on_signal_run(NULL);
    return 0;
}

static const char *g_url_override;
static const char *g_env_names[8];
static const char *g_env_values[8];
static size_t g_env_n;

/* The configuration lookup for config_load: the test's overrides, then the
 * process environment. */
static const char *
fake_getenv(const char *name)
{
    if (g_url_override != NULL && strcmp(name, "FINTEGRATE_DB_URL") == 0)
        return g_url_override;
    for (size_t i = 0; i < g_env_n; i++)
        if (strcmp(name, g_env_names[i]) == 0)
            return g_env_values[i];
    return getenv(name);
}

static void
override(const char *name, const char *value)
{
    assert_true(g_env_n < sizeof g_env_names / sizeof g_env_names[0]);
    g_env_names[g_env_n] = name;
    g_env_values[g_env_n] = value;
    g_env_n++;
}

/* A db set up from the configuration (FINTEGRATE_DB_* defaults unless
 * overridden), connected unless `connect` is false. */
static void
open_db(struct db *db, bool connect)
{
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    if (config_load(&cfg, fake_getenv, &err) < 0)
        itest_failf("config_load: %s", err.msg ? err.msg : "?");
    assert_int_equal(db_init(db, &cfg), 0);
    config_free(&cfg);
    if (connect && db_ensure(db, &err) < 0)
        itest_failf("db_ensure: %s", err.detail ? err.detail : "?");
    err_clear(&err);
}

static void
reset_overrides(void)
{
    g_url_override = NULL;
    g_env_n = 0;
}

static long
backend_pid(struct db *db)
{
    char pid[32];
    struct app_err err = APP_ERR_INIT;
    if (db_exec_value(db, &rules_pid, NULL, pid, sizeof pid, &err) < 0)
        itest_failf("pg_backend_pid: %s", err.detail ? err.detail : "?");
    err_clear(&err);
    return strtol(pid, NULL, 10);
}

static long
rows_tagged(const char *tag)
{
    return itest_sql_long("SELECT count(*) FROM " SCRATCH " WHERE tag = $1",
                          tag);
}

/* ------------------------------------------------------ the re-send rule */

/* Another session that terminates backend `pid` 1 s from now. */
static PGconn *
terminate_in_1s(long pid)
{
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "%ld", pid);
    PGconn *killer = itest_pg_connect();
    const char *kp[] = {pid_text};
    assert_int_equal(PQsendQueryParams(killer,
                                       "SELECT pg_terminate_backend($1::int) "
                                       "FROM (SELECT pg_sleep(1)) s",
                                       1, NULL, kp, NULL, NULL, 0),
                     1);
    return killer;
}

/* Waits for terminate_in_1s's session; whether it terminated the backend. */
static bool
terminated(PGconn *killer)
{
    PGresult *kr = PQgetResult(killer);
    bool done = PQresultStatus(kr) == PGRES_TUPLES_OK &&
                strcmp(PQgetvalue(kr, 0, 0), "t") == 0;
    PQclear(kr);
    while ((kr = PQgetResult(killer)) != NULL)
        PQclear(kr);
    PQfinish(killer);
    return done;
}

/* A worker spun for ever when a connection died inside a pipelined BEGIN
 * (libpq never delivers the pipeline's sync then): a hang fails the test. */
static void
hang_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "      FAIL: db_exec still running 20 s after its backend was "
        "terminated\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(1);
}

/* Runs a 3 s INSERT whose backend another session terminates 1 s in —
 * inside a transaction (`in_tx`: the statement goes out pipelined with its
 * BEGIN) or alone — and checks the re-send rule: the call fails with 503
 * at once, the connection goes, and the statement never runs again. */
static void
cut_off_while_running(const char *label, bool in_tx)
{
    reset_overrides();
    struct db db;
    open_db(&db, true);
    struct app_err err = APP_ERR_INIT;
    char tag[96];
    itest_unique(tag, sizeof tag, label);

    /* Prepared beforehand (a sleep of 0), so what is cut off is the run
     * of the statement itself. */
    const char *warm[] = {"warm-up", "0"};
    assert_int_equal(db_exec_command(&db, &rules_insert_slow, warm, &err), 0);
    long pid = backend_pid(&db);

    PGconn *killer = terminate_in_1s(pid);
    if (in_tx)
        assert_int_equal(db_begin(&db, &err), 0);
    const char *p[] = {tag, "3"};
    signal(SIGALRM, hang_alarm);
    alarm(20);
    double t0 = itest_now();
    PGresult *res = db_exec(&db, &rules_insert_slow, p, &err);
    double took = itest_now() - t0;
    alarm(0);
    signal(SIGALRM, SIG_DFL);

    itest_expect(NULL, terminated(killer), "pg_terminate_backend(%ld) did not",
                 pid);
    itest_expect(NULL, res == NULL,
                 "a statement whose connection was terminated while it ran "
                 "must fail");
    PQclear(res);
    assert_int_equal(err.status, 503);
    fprintf(stderr, "      cut off after %.2f s: %s\n", took,
            err.detail ? err.detail : "");
    itest_expect(NULL, took < 2.8,
                 "db_exec took %.2f s: the statement was run again", took);
    itest_expect(NULL, db.conn == NULL, "the broken connection must go");
    if (in_tx)
        db_rollback(&db);
    /* Its reply was lost: never run again, here or later. */
    itest_sleep_ms(300);
    long n = rows_tagged(tag);
    itest_expect(NULL, n == 0,
                 "%ld row(s): the statement whose reply was lost ran again", n);
    err_clear(&err);
    db_close(&db);
}

static void
statement_cut_off_while_running_is_not_run_again(void **state)
{
    (void)state;
    cut_off_while_running("cut-off", false);
}

static void
statement_cut_off_in_a_pipelined_begin_fails_at_once(void **state)
{
    (void)state;
    cut_off_while_running("cut-off-in-tx", true);
}

static void
connection_terminated_while_idle_is_replaced_and_runs_once(void **state)
{
    (void)state;
    reset_overrides();
    struct db db;
    open_db(&db, true);
    struct app_err err = APP_ERR_INIT;
    char tag[96], pid_text[32];
    itest_unique(tag, sizeof tag, "idle-cut");
    long pid = backend_pid(&db);
    snprintf(pid_text, sizeof pid_text, "%ld", pid);
    unsigned gen = db.gen;

    PQclear(itest_sql("SELECT pg_terminate_backend($1::int)", pid_text));
    /* Gone: its goodbye is in our socket by now. */
    double t0 = itest_now();
    while (itest_sql_long("SELECT count(*) FROM pg_stat_activity "
                          "WHERE pid = $1::int",
                          pid_text) > 0) {
        if (itest_now() - t0 > 5.0)
            itest_failf("backend %ld still there 5 s after its termination",
                        pid);
        itest_sleep_ms(20);
    }

    const char *p[] = {tag};
    if (db_exec_command(&db, &rules_insert, p, &err) < 0)
        itest_failf("a connection found dead before sending must be "
                    "replaced: %s",
                    err.detail ? err.detail : "?");
    itest_expect(NULL, db.gen == gen + 1, "one reconnect (gen %u -> %u)", gen,
                 db.gen);
    itest_expect(NULL, backend_pid(&db) != pid, "a new backend");
    long n = rows_tagged(tag);
    itest_expect(NULL, n == 1, "%ld rows, want exactly 1", n);
    err_clear(&err);
    db_close(&db);
}

/* ------------------------------------------------------------ COMMIT */

static void
commit_answered_rollback_is_a_failure(void **state)
{
    (void)state;
    reset_overrides();
    struct db db;
    open_db(&db, true);
    struct app_err err = APP_ERR_INIT;
    char tag[96];
    itest_unique(tag, sizeof tag, "aborted");
    const char *p[] = {tag};

    assert_int_equal(db_begin(&db, &err), 0);
    assert_int_equal(db_exec_command(&db, &rules_insert, p, &err), 0);
    /* A failure the caller ignores: the transaction is aborted. */
    assert_int_equal(db_exec_command(&db, &rules_fail, NULL, &err), -1);
    assert_int_equal(err.status, 500);
    err_clear(&err);
    int rc = db_commit(&db, &err);
    itest_expect(NULL, rc == -1, "COMMIT answered ROLLBACK must fail (got %d)",
                 rc);
    assert_int_equal(err.status, 503);
    assert_non_null(err.detail);
    itest_expect(NULL, strstr(err.detail, "ROLLBACK") != NULL,
                 "the detail names the ROLLBACK: %s", err.detail);
    assert_false(db.in_tx);
    err_clear(&err);
    assert_int_equal(rows_tagged(tag), 0);

    /* The connection is fine afterwards, and a good commit is 0. */
    assert_int_equal(db_begin(&db, &err), 0);
    assert_int_equal(db_exec_command(&db, &rules_insert, p, &err), 0);
    assert_int_equal(db_commit(&db, &err), 0);
    assert_int_equal(rows_tagged(tag), 1);
    err_clear(&err);
    db_close(&db);
}

/* ------------------------------------------------------------ deadlines */

static void
silent_server_costs_one_reply_timeout(void **state)
{
    (void)state;
    reset_overrides();
    override("FINTEGRATE_DB_REPLY_TIMEOUT_MS", "1500");
    struct db db;
    open_db(&db, true);
    struct app_err err = APP_ERR_INIT;
    long pid = backend_pid(&db);

    /* Its kernel still acknowledges: only our deadline ends the wait. */
    char resume[64];
    snprintf(resume, sizeof resume, "kill -CONT %ld", pid);
    itest_on_signal_run(resume);
    g_stopped = (pid_t)pid;
    assert_int_equal(kill(g_stopped, SIGSTOP), 0);
    double t0 = itest_now();
    int rc = db_ping(&db, &err);
    double took = itest_now() - t0;
    resume_teardown(NULL);

    itest_expect(NULL, rc == -1, "a ping of a stopped backend must fail");
    assert_int_equal(err.status, 503);
    fprintf(stderr, "      503 after %.2f s: %s\n", took,
            err.detail ? err.detail : "");
    itest_expect(NULL, took >= 1.4 && took < 4.0,
                 "the reply timeout is 1.5 s, the call took %.2f s", took);
    itest_expect(NULL, db.conn == NULL, "the connection must be dropped");
    err_clear(&err);

    /* The rest of the request fails at once, without reconnecting... */
    t0 = itest_now();
    assert_int_equal(db_ping(&db, &err), -1);
    assert_int_equal(err.status, 503);
    itest_expect(NULL, itest_now() - t0 < 0.5, "no second wait");
    err_clear(&err);
    /* ...and the next request's db_ensure connects again. */
    assert_int_equal(db_ensure(&db, &err), 0);
    assert_int_equal(db_ping(&db, &err), 0);
    err_clear(&err);
    db_close(&db);
}

static void
statement_timeout_answers_503_and_keeps_the_connection(void **state)
{
    (void)state;
    reset_overrides();
    override("FINTEGRATE_DB_STATEMENT_TIMEOUT_MS", "300");
    struct db db;
    open_db(&db, true);
    struct app_err err = APP_ERR_INIT;
    const char *p[] = {"2"};
    double t0 = itest_now();
    PGresult *res = db_exec(&db, &rules_sleep, p, &err);
    double took = itest_now() - t0;
    itest_expect(NULL, res == NULL, "pg_sleep(2) must be cancelled");
    PQclear(res);
    assert_int_equal(err.status, 503);
    assert_string_equal(err.code, "57014");
    itest_expect(NULL, took < 1.5, "cancelled after %.2f s", took);
    itest_expect(NULL, db.conn != NULL, "a cancel keeps the connection");
    err_clear(&err);
    assert_int_equal(db_ping(&db, &err), 0);
    err_clear(&err);
    db_close(&db);
}

/* ------------------------------------------------- connection settings */

static void
expect_setting(struct db *db, const char *name, const char *want)
{
    char got[64];
    struct app_err err = APP_ERR_INIT;
    const char *p[] = {name};
    if (db_exec_value(db, &rules_setting, p, got, sizeof got, &err) < 0)
        itest_failf("%s: %s", name, err.detail ? err.detail : "?");
    err_clear(&err);
    itest_expect(NULL, strcmp(got, want) == 0, "%s is %s, want %s", name, got,
                 want);
}

static int
sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) < 0)
        return -1;
    return v;
}

static void
every_connection_carries_the_limits(void **state)
{
    (void)state;
    reset_overrides();
    struct db db;
    open_db(&db, true);
    /* The documented defaults (docs/OPERATIONS.md). */
    expect_setting(&db, "statement_timeout", "6000");
    expect_setting(&db, "lock_timeout", "5000");
    expect_setting(&db, "idle_in_transaction_session_timeout", "30000");
    char app[64];
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(
        db_exec_value(&db, &rules_app_name, NULL, app, sizeof app, &err), 0);
    assert_string_equal(app, "fintegrate-fcgi");

    int fd = PQsocket(db.conn);
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
        assert_int_equal(sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
        assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 5);
        assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 2);
        assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
        assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 9000);
    } else {
        fprintf(stderr, "      (a Unix socket: no TCP settings to check)\n");
    }
    db_close(&db);

    /* Every one comes from its variable. */
    override("FINTEGRATE_DB_STATEMENT_TIMEOUT_MS", "7100");
    override("FINTEGRATE_DB_LOCK_TIMEOUT_MS", "4100");
    override("FINTEGRATE_DB_IDLE_IN_TX_TIMEOUT_MS", "41000");
    override("FINTEGRATE_DB_KEEPALIVES_IDLE_SECONDS", "7");
    override("FINTEGRATE_DB_TCP_USER_TIMEOUT_MS", "12000");
    open_db(&db, true);
    expect_setting(&db, "statement_timeout", "7100");
    expect_setting(&db, "lock_timeout", "4100");
    expect_setting(&db, "idle_in_transaction_session_timeout", "41000");
    fd = PQsocket(db.conn);
    if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
        assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
        assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 12000);
    }
    err_clear(&err);
    db_close(&db);
}

/* The URL with " extra" appended (key=value form) or "&extra" / "?extra"
 * (URI form): an owned string. */
static char *
url_with(const char *extra_kv, const char *extra_uri)
{
    const char *url = itest_env("FINTEGRATE_DB_URL");
    bool uri = strncmp(url, "postgres://", 11) == 0 ||
               strncmp(url, "postgresql://", 13) == 0;
    size_t n = strlen(url) + strlen(extra_kv) + strlen(extra_uri) + 4;
    char *out = malloc(n);
    assert_non_null(out);
    if (uri)
        snprintf(out, n, "%s%c%s", url, strchr(url, '?') ? '&' : '?',
                 extra_uri);
    else
        snprintf(out, n, "%s %s", url, extra_kv);
    return out;
}

static void
url_options_win_and_read_write_is_the_default(void **state)
{
    (void)state;
    reset_overrides();
    struct db db;
    struct app_err err = APP_ERR_INIT;

    /* The URL's own options come after ours: they win. */
    char *url = url_with("options='-c lock_timeout=1234'",
                         "options=-c%20lock_timeout%3D1234");
    g_url_override = url;
    open_db(&db, true);
    expect_setting(&db, "lock_timeout", "1234");
    expect_setting(&db, "statement_timeout", "6000");
    db_close(&db);
    free(url);

    /* A read-only session is refused: target_session_attrs=read-write. */
    url = url_with("options='-c default_transaction_read_only=on'",
                   "options=-c%20default_transaction_read_only%3Don");
    g_url_override = url;
    open_db(&db, false);
    int rc = db_ensure(&db, &err);
    itest_expect(NULL, rc == -1,
                 "a read-only server must be refused (read-write)");
    assert_int_equal(err.status, 503);
    fprintf(stderr, "      read-only refused: %s\n",
            err.detail ? err.detail : "");
    err_clear(&err);
    db_close(&db);
    free(url);

    /* ...unless the URL says otherwise. */
    url = url_with("target_session_attrs=any "
                   "options='-c default_transaction_read_only=on'",
                   "target_session_attrs=any&"
                   "options=-c%20default_transaction_read_only%3Don");
    g_url_override = url;
    open_db(&db, false);
    rc = db_ensure(&db, &err);
    itest_expect(NULL, rc == 0, "target_session_attrs=any in the URL wins: %s",
                 err.detail ? err.detail : "");
    err_clear(&err);
    db_close(&db);
    free(url);
    g_url_override = NULL;
}

static void
multi_host_uri_skips_a_host_that_refuses(void **state)
{
    (void)state;
    reset_overrides();
    char *perr = NULL;
    PQconninfoOption *opts =
        PQconninfoParse(itest_env("FINTEGRATE_DB_URL"), &perr);
    assert_non_null(opts);
    const char *host = NULL, *port = NULL, *user = NULL, *dbname = NULL,
               *password = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char **slot = strcmp(o->keyword, "host") == 0       ? &host
                            : strcmp(o->keyword, "port") == 0     ? &port
                            : strcmp(o->keyword, "user") == 0     ? &user
                            : strcmp(o->keyword, "dbname") == 0   ? &dbname
                            : strcmp(o->keyword, "password") == 0 ? &password
                                                                  : NULL;
        if (slot != NULL)
            *slot = o->val;
    }
    if (host == NULL || port == NULL || user == NULL || dbname == NULL ||
        password != NULL || host[0] == '/' || strchr(host, ',') != NULL) {
        PQconninfoFree(opts);
        fprintf(stderr, "      (FINTEGRATE_DB_URL is not one TCP host, "
                        "port, user and database without a password: "
                        "skipped)\n");
        skip();
    }
    /* Port 1 of the loopback refuses at once; libpq tries the next host. */
    char url[512];
    snprintf(url, sizeof url,
             "postgresql://%s@127.0.0.1:1,%s:%s/%s"
             "?target_session_attrs=read-write",
             user, host, port, dbname);
    char real_port[16];
    snprintf(real_port, sizeof real_port, "%s", port);
    PQconninfoFree(opts);

    g_url_override = url;
    struct db db;
    struct app_err err = APP_ERR_INIT;
    open_db(&db, false);
    if (db_ensure(&db, &err) < 0)
        itest_failf("multi-host URI: %s", err.detail ? err.detail : "?");
    assert_string_equal(PQport(db.conn), real_port);
    assert_int_equal(db_ping(&db, &err), 0);
    err_clear(&err);
    db_close(&db);
    g_url_override = NULL;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(statement_cut_off_while_running_is_not_run_again),
        cmocka_unit_test(statement_cut_off_in_a_pipelined_begin_fails_at_once),
        cmocka_unit_test(
            connection_terminated_while_idle_is_replaced_and_runs_once),
        cmocka_unit_test(commit_answered_rollback_is_a_failure),
        cmocka_unit_test_teardown(silent_server_costs_one_reply_timeout,
                                  resume_teardown),
        cmocka_unit_test(
            statement_timeout_answers_503_and_keeps_the_connection),
        cmocka_unit_test(every_connection_carries_the_limits),
        cmocka_unit_test(url_options_win_and_read_write_is_the_default),
        cmocka_unit_test(multi_host_uri_skips_a_host_that_refuses),
    };
    return itest_exit(cmocka_run_group_tests_name("db_rules", tests,
                                                  group_setup, group_teardown));
}
