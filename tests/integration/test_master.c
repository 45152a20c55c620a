/*
 * tests/integration/test_master.c — the prefork master beyond what
 * test_resilience covers: the crash-storm back-off (workers that keep dying
 * are replaced with a growing delay, and the pool comes back whole),
 * `--check-config` (one line naming the variable, exit 1; OK exit 0), and
 * the SIGHUP roll (issue 11): under a steady stream of requests every
 * worker and the relay are replaced, each old one asked to stop only after
 * a new one said it was ready, and no request fails; with PostgreSQL
 * stopped the replacements cannot get ready, so the old processes all keep
 * running (also when a replacement is killed, and through a second SIGHUP)
 * until PostgreSQL is back and the roll completes.
 *
 * The back-off test kills workers of the test stack's pool with SIGKILL in
 * quick succession; it ends only when the pool is full and serving again.
 * The roll tests stop PostgreSQL with scripts/stack.sh pg-stop and always
 * start it again (teardown, or on SIGTERM from the suite's timeout).
 */
#include "itest.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bytes of the app log written since `from` (owned). */
static char *
app_log_since(size_t from)
{
    char path[512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/logs/app.log",
             itest_env("FINTEGRATE_RUN_DIR"));
    char *all = itest_slurp(path, &len);
    if (all == NULL)
        itest_failf("cannot read %s", path);
    char *tail = strdup(from <= len ? all + from : "");
    free(all);
    return tail;
}

static size_t
app_log_size(void)
{
    char path[512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/logs/app.log",
             itest_env("FINTEGRATE_RUN_DIR"));
    free(itest_slurp(path, &len));
    return len;
}

/* Waits until the master has `want` live workers again. */
static void
await_pool(pid_t master, int want, double timeout_s)
{
    pid_t kids[64];
    double until = itest_now() + timeout_s;
    while (itest_children(master, kids, 64) < want) {
        if (itest_now() > until)
            itest_failf("the pool did not come back to %d workers within "
                        "%.0f s",
                        want, timeout_s);
        itest_sleep_ms(50);
    }
}

static void
crash_storm_backs_off_and_recovers(void **state)
{
    (void)state;
    pid_t master = itest_master_pid();
    pid_t kids[64];
    int pool = itest_children(master, kids, 64);
    if (pool < 1)
        itest_failf("no workers under master %d", (int)master);
    size_t mark = app_log_size();

    /* Six deaths in a row, each as soon as the replacement exists: the
     * master sees a storm (5 abnormal exits within 10 s) and delays. */
    for (int i = 0; i < 6; i++) {
        await_pool(master, pool, 15);
        int n = itest_children(master, kids, 64);
        kill(kids[n - 1], SIGKILL);
        itest_sleep_ms(20);
    }
    await_pool(master, pool, 15);

    char *log = app_log_since(mark);
    if (strstr(log, "backing off") == NULL)
        itest_failf("no back-off logged after six SIGKILLs; log since the "
                    "start of the test:\n%s",
                    log);
    free(log);

    /* Serving again: every worker answers. */
    for (int i = 0; i < 4 * pool; i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", NULL, NULL, NULL);
        itest_assert_envelope(r, 200);
        itest_resp_free(r);
    }
    if (itest_master_pid() != master)
        itest_failf("the master changed during the storm");
}

/* Runs fintegrate-fcgi --check-config with one extra variable; returns the
 * exit status and its first output line in line[]. */
static int
check_config(const char *assignment, char *line, size_t size)
{
    char bin[512];
    const char *explicit_bin = itest_env("FINTEGRATE_FCGI_BIN");
    if (explicit_bin != NULL && explicit_bin[0] != '\0')
        snprintf(bin, sizeof bin, "%s", explicit_bin);
    else
        snprintf(bin, sizeof bin, "%s/bin/fintegrate-fcgi",
                 itest_env("FINTEGRATE_CHECKOUT"));
    int fds[2];
    if (pipe(fds) < 0)
        itest_failf("pipe failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        if (assignment != NULL)
            putenv((char *)assignment);
        execl(bin, bin, "--check-config", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], line, size - 1);
    line[n > 0 ? n : 0] = '\0';
    char *nl = strchr(line, '\n');
    if (nl != NULL)
        *nl = '\0';
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
check_config_names_the_variable(void **state)
{
    (void)state;
    char line[512];
    int rc = check_config(NULL, line, sizeof line);
    if (rc != 0 || strstr(line, "configuration OK") == NULL)
        itest_failf("--check-config with the stack's environment: exit %d, "
                    "\"%s\"",
                    rc, line);

    static const struct {
        const char *assignment, *names;
    } bad[] = {
        {"FINTEGRATE_WORKERS=0", "FINTEGRATE_WORKERS"},
        {"FINTEGRATE_WORKERS=lots", "FINTEGRATE_WORKERS"},
        {"FINTEGRATE_KEY_CACHE_SECONDS=6", "FINTEGRATE_KEY_CACHE_SECONDS"},
        {"FINTEGRATE_LOG_LEVEL=loud", "FINTEGRATE_LOG_LEVEL"},
        {"FINTEGRATE_PUBLISH_TIMEOUT_MS=0", "FINTEGRATE_PUBLISH_TIMEOUT_MS"},
        {"FINTEGRATE_DB_URL=", "FINTEGRATE_DB_URL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = check_config(bad[i].assignment, line, sizeof line);
        if (rc != 1 || strstr(line, bad[i].names) == NULL)
            itest_failf("%s: exit %d, \"%s\" (want exit 1 naming %s)",
                        bad[i].assignment, rc, line, bad[i].names);
    }
}

/* ------------------------------------------------------- SIGHUP roll */

enum { LOAD_THREADS = 3, PID_MAX = 64 };

static struct itest_consumer g_load[LOAD_THREADS];
static bool g_pg_stopped;

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    for (int i = 0; i < LOAD_THREADS; i++)
        itest_consumer_create(&g_load[i], "ACTIVE", "active", "1 day");
    return 0;
}

/* Never leave the stack without its database. */
static int
restart_pg(void **state)
{
    (void)state;
    if (g_pg_stopped) {
        fprintf(stderr, "test_master: starting PostgreSQL again\n");
        if (itest_stack("pg-start") == 0)
            g_pg_stopped = false;
    }
    itest_on_signal_run(NULL);
    return 0;
}

static bool
has_pid(const pid_t *set, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* Whether pid still runs (a zombie does not). */
static bool
is_running(pid_t pid)
{
    char st = itest_proc_state(pid);
    return st != 0 && st != 'Z' && st != 'X';
}

/* Whether pid is the relay (it names itself fi-relay in /proc/PID/comm). */
static bool
is_relay(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
    char *comm = itest_slurp(path, NULL);
    bool relay = comm != NULL && strncmp(comm, "fi-relay", 8) == 0;
    free(comm);
    return relay;
}

/* Occurrences of needle in hay. */
static int
count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL;
         p = strstr(p + 1, needle))
        n++;
    return n;
}

/*
 * Waits until none of the n processes in before[] runs any more and the
 * master has exactly n live children again; fails after timeout_s.
 */
static void
await_all_replaced(pid_t master, const pid_t *before, int n, double timeout_s)
{
    double until = itest_now() + timeout_s;
    for (;;) {
        pid_t now[PID_MAX];
        int m = itest_children(master, now, PID_MAX);
        int old = 0;
        for (int i = 0; i < n; i++)
            old += is_running(before[i]);
        if (old == 0 && m == n)
            return;
        if (itest_now() > until)
            itest_failf("%.0f s after SIGHUP: %d of the %d old processes "
                        "still run, the master has %d children",
                        timeout_s, old, n, m);
        itest_sleep_ms(50);
    }
}

/* ---- steady load: every answer must be a success */

struct load {
    pthread_t th;
    int index;
    int total, failed;
    long last_status;
    char last_error[512];
};

static atomic_bool g_load_stop;
static struct load g_loads[LOAD_THREADS];

static void *
load_main(void *arg)
{
    struct load *l = arg;
    itest_set_timeout_ms(10000);
    char prefix[64];
    itest_unique(prefix, sizeof prefix, "roll");
    for (unsigned k = 0; !atomic_load(&g_load_stop); k++) {
        struct itest_resp *r;
        long want;
        if (k % 2 == 0) {
            char body[128];
            snprintf(body, sizeof body, "{\"name\":\"%s-%d-%u\"}", prefix,
                     l->index, k);
            r = itest_request("POST", "/customer/data", g_load[l->index].key,
                              body, NULL);
            want = 201;
        } else {
            r = itest_request("GET", "/health", NULL, NULL, NULL);
            want = 200;
        }
        l->total++;
        if (r->status != want) {
            l->failed++;
            l->last_status = r->status;
            snprintf(l->last_error, sizeof l->last_error, "%s %s: %.100s",
                     r->method, r->target, r->status ? r->body : r->error);
        }
        itest_resp_free(r);
        itest_sleep_ms(5); /* steady, not a flood: the machine is shared */
    }
    itest_thread_done();
    return NULL;
}

static void
load_start(void)
{
    atomic_store(&g_load_stop, false);
    for (int i = 0; i < LOAD_THREADS; i++) {
        g_loads[i] = (struct load){.index = i};
        if (pthread_create(&g_loads[i].th, NULL, load_main, &g_loads[i]) != 0)
            itest_failf("pthread_create failed");
    }
}

/* Stops the load; returns the number of failed requests (the total and
 * the last failure into *total and last[]). */
static int
load_stop(int *total, char *last, size_t size)
{
    atomic_store(&g_load_stop, true);
    int failed = 0;
    *total = 0;
    last[0] = '\0';
    for (int i = 0; i < LOAD_THREADS; i++) {
        pthread_join(g_loads[i].th, NULL);
        *total += g_loads[i].total;
        failed += g_loads[i].failed;
        if (g_loads[i].failed > 0)
            snprintf(last, size, "HTTP %ld, %s", g_loads[i].last_status,
                     g_loads[i].last_error);
    }
    return failed;
}

/*
 * A roll under a steady stream of requests: every process (the workers and
 * the relay) has a new pid afterwards, no request failed, and the log shows
 * the order — each old process was asked to stop only after one more new
 * one had said it was ready.
 */
static void
sighup_rolls_under_load_without_a_failed_request(void **state)
{
    (void)state;
    pid_t master = itest_master_pid();
    pid_t before[PID_MAX];
    int n = itest_children(master, before, PID_MAX);
    if (n < 2)
        itest_failf("master %d has %d children; want workers and the relay",
                    (int)master, n);
    size_t mark = app_log_size();

    load_start();
    itest_sleep_ms(500);
    kill(master, SIGHUP);
    /* the load goes on until the roll is over (or has visibly failed) */
    double until = itest_now() + 60;
    for (;;) {
        int old = 0;
        for (int i = 0; i < n; i++)
            old += is_running(before[i]);
        pid_t now[PID_MAX];
        if ((old == 0 && itest_children(master, now, PID_MAX) == n) ||
            itest_now() > until)
            break;
        itest_sleep_ms(20);
    }
    itest_sleep_ms(500);
    int total = 0;
    char last[640];
    int failed = load_stop(&total, last, sizeof last);
    await_all_replaced(master, before, n, 1);

    char *log = app_log_since(mark);
    int readies = count_str(log, "master: roll: new ");
    int stops = count_str(log, "master: roll: asking old ");
    fprintf(stderr,
            "      roll of %d processes under load: %d requests, %d failed; "
            "%d ready, %d old asked to stop\n",
            n, total, failed, readies, stops);
    if (failed != 0)
        itest_failf("%d of %d requests failed during the roll (last: %s)",
                    failed, total, last);
    if (strstr(log, "master: roll complete") == NULL || stops != n)
        itest_failf("want \"roll complete\" and %d old processes asked to "
                    "stop; the log since SIGHUP:\n%s",
                    n, log);
    /* Ordered: before the k-th stop, at least k new processes were ready. */
    int ready_so_far = 0, stop_no = 0;
    for (const char *line = log; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 511 ? len : 511), line);
        if (strstr(buf, "master: roll: new ") && strstr(buf, "is ready"))
            ready_so_far++;
        if (strstr(buf, "master: roll: asking old ") &&
            ++stop_no > ready_so_far)
            itest_failf("old process stopped before a new one was ready "
                        "(stop %d, %d ready): %s",
                        stop_no, ready_so_far, buf);
        line += len + (nl ? 1 : 0);
    }
    free(log);
    if (itest_master_pid() != master)
        itest_failf("the master changed during the roll");
}

/*
 * PostgreSQL stopped: a roll's replacements wait for their connection and
 * never say they are ready, so no old process is stopped — not when a
 * replacement is killed (it is logged and retried), not on a second SIGHUP.
 * Once PostgreSQL is back, the roll completes: every process is new, and
 * the pool serves.
 */
static void
sighup_keeps_old_processes_until_replacements_are_ready(void **state)
{
    (void)state;
    pid_t master = itest_master_pid();
    pid_t before[PID_MAX];
    int n = itest_children(master, before, PID_MAX);
    if (n < 2)
        itest_failf("master %d has %d children; want workers and the relay",
                    (int)master, n);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/scripts/stack.sh' pg-start 1>&2",
             itest_env("FINTEGRATE_CHECKOUT"));
    itest_on_signal_run(cmd);
    g_pg_stopped = true;
    if (itest_stack("pg-stop") != 0)
        itest_failf("scripts/stack.sh pg-stop failed");
    size_t mark = app_log_size();

    kill(master, SIGHUP);
    /* A new worker appears (waiting for the database); every old one
     * keeps running meanwhile. */
    pid_t seen[PID_MAX]; /* everything forked before the second SIGHUP */
    int n_seen = 0;
    pid_t waiting = 0;
    double until = itest_now() + 5;
    while (itest_now() < until) {
        pid_t now[PID_MAX];
        int m = itest_children(master, now, PID_MAX);
        for (int i = 0; i < m; i++)
            if (!has_pid(before, n, now[i]) && !has_pid(seen, n_seen, now[i]) &&
                n_seen < PID_MAX) {
                seen[n_seen++] = now[i];
                if (waiting == 0 && !is_relay(now[i]))
                    waiting = now[i];
            }
        for (int i = 0; i < n; i++)
            if (!is_running(before[i]))
                itest_failf("old process %d stopped although no replacement "
                            "could get ready (PostgreSQL is down)",
                            (int)before[i]);
        if (waiting != 0 && itest_now() > until - 2)
            break;
        itest_sleep_ms(50);
    }
    if (waiting == 0)
        itest_failf("no replacement worker appeared within 5 s of SIGHUP");

    /* The replacement dies before it is ready: logged, retried, and the
     * old ones still run. */
    kill(waiting, SIGKILL);
    until = itest_now() + 4;
    pid_t retry = 0;
    while (itest_now() < until) {
        pid_t now[PID_MAX];
        int m = itest_children(master, now, PID_MAX);
        for (int i = 0; i < m; i++)
            if (!has_pid(before, n, now[i]) && !has_pid(seen, n_seen, now[i]) &&
                n_seen < PID_MAX) {
                seen[n_seen++] = now[i];
                if (retry == 0 && !is_relay(now[i]))
                    retry = now[i];
            }
        for (int i = 0; i < n; i++)
            if (!is_running(before[i]))
                itest_failf("old process %d stopped after its replacement "
                            "was killed before it was ready",
                            (int)before[i]);
        if (retry != 0)
            break;
        itest_sleep_ms(50);
    }
    if (retry == 0)
        itest_failf("no new replacement worker within 4 s after the first "
                    "was killed");

    /* A second SIGHUP during the roll: still nothing old stops. */
    kill(master, SIGHUP);
    itest_sleep_ms(1500);
    for (int i = 0; i < n; i++)
        if (!is_running(before[i]))
            itest_failf("old process %d stopped after a second SIGHUP with "
                        "PostgreSQL down",
                        (int)before[i]);
    {
        pid_t now[PID_MAX];
        int m = itest_children(master, now, PID_MAX);
        for (int i = 0; i < m; i++)
            if (!has_pid(before, n, now[i]) && !has_pid(seen, n_seen, now[i]) &&
                n_seen < PID_MAX)
                seen[n_seen++] = now[i];
    }

    char *log = app_log_since(mark);
    if (strstr(log, "waits for the database") == NULL ||
        strstr(log, "ended before it was ready") == NULL ||
        strstr(log, "SIGHUP during a roll") == NULL ||
        strstr(log, "master: roll: asking old") != NULL)
        itest_failf("the log since the first SIGHUP lacks a replacement "
                    "waiting for the database, the killed one, or the "
                    "second SIGHUP, or it shows an old process stopped:\n%s",
                    log);
    free(log);

    /* PostgreSQL back: the roll completes, to processes forked after the
     * second SIGHUP (those forked before it are replaced too). */
    if (itest_stack("pg-start") != 0)
        itest_failf("scripts/stack.sh pg-start failed");
    g_pg_stopped = false;
    itest_on_signal_run(NULL);
    await_all_replaced(master, before, n, 60);
    pid_t now[PID_MAX];
    double until2 = itest_now() + 60;
    for (;;) {
        int m = itest_children(master, now, PID_MAX);
        bool any_seen = false;
        for (int i = 0; i < m; i++)
            any_seen = any_seen || has_pid(seen, n_seen, now[i]);
        if (m == n && !any_seen)
            break;
        if (itest_now() > until2)
            itest_failf("60 s after PostgreSQL came back, processes forked "
                        "before the second SIGHUP still run (%d children)",
                        m);
        itest_sleep_ms(100);
    }
    /* The new pool serves: every worker answers. */
    for (int i = 0; i < 4 * n; i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", NULL, NULL, NULL);
        itest_assert_envelope(r, 200);
        itest_resp_free(r);
    }
    log = app_log_since(mark);
    if (strstr(log, "master: roll complete") == NULL)
        itest_failf("no \"roll complete\" in the log:\n%s", log);
    free(log);
    if (itest_master_pid() != master)
        itest_failf("the master changed during the roll");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_config_names_the_variable),
        cmocka_unit_test(crash_storm_backs_off_and_recovers),
        cmocka_unit_test(sighup_rolls_under_load_without_a_failed_request),
        cmocka_unit_test_teardown(
            sighup_keeps_old_processes_until_replacements_are_ready,
            restart_pg),
    };
    return cmocka_run_group_tests_name("master", tests, setup,
                                       itest_group_teardown);
}
