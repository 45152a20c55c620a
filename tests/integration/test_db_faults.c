/*
 * tests/integration/test_db_faults.c — a database that stops answering
 * (docs/API.md §7.7), through nginx:
 *   * the service's PostgreSQL backends and the postmaster are SIGSTOPped:
 *     their kernel still acknowledges every packet, so neither keepalives
 *     nor tcp_user_timeout fire and only the workers' own reply deadline
 *     ends a wait.  An authenticated GET and a POST, sent together, each
 *     answer the 503 envelope within 10 s (12 s allowed here: a loaded
 *     machine);
 *   * SIGCONT: within 5 s a GET and a POST succeed again, without a
 *     restart, and then every request does.
 * The backends are found in pg_stat_activity (application_name
 * 'fintegrate-fcgi': the workers and the relay), the postmaster in
 * $FINTEGRATE_RUN_DIR/pg/data/postmaster.pid.  Everything stopped is
 * resumed in the teardown whatever happened, and on SIGTERM/SIGINT (the
 * suite's timeout) through itest_on_signal_run.
 */
#include "itest.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_STOPPED = 64 };

static struct itest_consumer g_c;
static pid_t g_stopped[MAX_STOPPED];
static int g_n_stopped;

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_c, NULL);
}

static void
resume_all(void)
{
    for (int i = 0; i < g_n_stopped; i++)
        kill(g_stopped[i], SIGCONT);
    g_n_stopped = 0;
    itest_on_signal_run(NULL);
}

static int
resume_teardown(void **state)
{
    (void)state;
    resume_all();
    return 0;
}

/* Keeps the signal handler's command in step with what is stopped. */
static void
stop_one(pid_t pid)
{
    for (int i = 0; i < g_n_stopped; i++)
        if (g_stopped[i] == pid)
            return;
    if (g_n_stopped == MAX_STOPPED)
        itest_failf("more than %d processes to stop", MAX_STOPPED);
    g_stopped[g_n_stopped++] = pid;
    char cmd[MAX_STOPPED * 12 + 16] = "kill -CONT";
    for (int i = 0; i < g_n_stopped; i++) {
        size_t len = strlen(cmd);
        snprintf(cmd + len, sizeof cmd - len, " %ld", (long)g_stopped[i]);
    }
    itest_on_signal_run(cmd);
    if (kill(pid, SIGSTOP) != 0)
        itest_failf("SIGSTOP %ld failed", (long)pid);
}

static pid_t
postmaster_pid(void)
{
    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    if (run == NULL)
        itest_failf("FINTEGRATE_RUN_DIR is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/pg/data/postmaster.pid", run);
    char *text = itest_slurp(path, NULL);
    if (text == NULL)
        itest_failf("cannot read %s", path);
    long pid = strtol(text, NULL, 10); /* its first line */
    free(text);
    if (pid <= 1)
        itest_failf("no pid in %s", path);
    return (pid_t)pid;
}

/* The postmaster first (no new backend can start), then every backend of
 * the service, asking again until none is left running. */
static void
stop_database(void)
{
    stop_one(postmaster_pid());
    for (int round = 0; round < 5; round++) {
        PGresult *res = itest_sql0("SELECT pid FROM pg_stat_activity "
                                   "WHERE application_name = "
                                   "'fintegrate-fcgi'");
        int fresh = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            pid_t pid = (pid_t)strtol(PQgetvalue(res, i, 0), NULL, 10);
            if (itest_proc_state(pid) != 'T') {
                stop_one(pid);
                fresh++;
            }
        }
        PQclear(res);
        if (fresh == 0)
            break;
    }
}

struct call {
    const char *method;
    char path[128];
    const char *body;
    struct itest_resp *resp;
};

static void *
call_thread(void *arg)
{
    struct call *c = arg;
    itest_set_timeout_ms(30000);
    c->resp = itest_request(c->method, c->path, g_c.key, c->body, NULL);
    itest_thread_done();
    return NULL;
}

/* Polls one request until it answers `want`; false after `limit_s`. */
static bool
await_status(const char *method, const char *path, const char *body, long want,
             double t0, double limit_s, long *last)
{
    while (itest_now() - t0 < limit_s) {
        struct itest_resp *r = itest_request(method, path, g_c.key, body, NULL);
        *last = r->status;
        itest_resp_free(r);
        if (*last == want)
            return true;
        itest_sleep_ms(100);
    }
    return false;
}

static void
stopped_database_503_within_10s_then_back_within_5s(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "db-faults", id);
    itest_warm_up(g_c.key, id);

    stop_database();
    fprintf(stderr, "      stopped the postmaster and %d backend(s)\n",
            g_n_stopped - 1);

    /* Together, so the test waits for one deadline, not two. */
    struct call calls[2] = {
        {.method = "GET", .body = NULL},
        {.method = "POST",
         .path = "/customer/data",
         .body = "{\"name\":\"while-stopped\"}"},
    };
    snprintf(calls[0].path, sizeof calls[0].path,
             "/customer/data?customer_id=%s", id);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, call_thread, &calls[i]) != 0)
            itest_failf("pthread_create failed");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);

    /* A failed assertion longjmps to the teardown, which resumes. */
    for (int i = 0; i < 2; i++) {
        struct itest_resp *r = calls[i].resp;
        fprintf(stderr, "      %s while stopped: HTTP %ld after %.1f s\n",
                calls[i].method, r->status, r->elapsed);
        itest_assert_error(r, 503, "The database is unavailable; please retry");
        itest_expect(r, r->elapsed <= 12.0,
                     "a 503 within 10 s (12 allowed), took %.1f s", r->elapsed);
        itest_resp_free(r);
    }

    resume_all();
    double t0 = itest_now();
    long last = 0;
    char get_path[128];
    snprintf(get_path, sizeof get_path, "/customer/data?customer_id=%s", id);
    if (!await_status("GET", get_path, NULL, 200, t0, 5.0, &last))
        itest_failf("5 s after the database answers again GET still "
                    "fails (last: HTTP %ld)",
                    last);
    if (!await_status("POST", "/customer/data", "{\"name\":\"after-stop\"}",
                      201, t0, 5.0, &last))
        itest_failf("5 s after the database answers again POST still "
                    "fails (last: HTTP %ld)",
                    last);
    fprintf(stderr, "      GET and POST succeed %.2f s after SIGCONT\n",
            itest_now() - t0);

    /* Then every request succeeds, on every worker. */
    for (int i = 0; i < 20; i++) {
        struct itest_resp *r = itest_get_customer(g_c.key, id);
        itest_assert_envelope(r, 200);
        itest_resp_free(r);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            stopped_database_503_within_10s_then_back_within_5s,
            resume_teardown),
    };
    return itest_exit(cmocka_run_group_tests_name("db_faults", tests, setup,
                                                  itest_group_teardown));
}
