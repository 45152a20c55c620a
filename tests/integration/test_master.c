/*
 * tests/integration/test_master.c — the prefork master beyond what
 * test_resilience covers: the crash-storm back-off (workers that keep dying
 * are replaced with a growing delay, and the pool comes back whole), and
 * `--check-config` (one line naming the variable, exit 1; OK exit 0).
 *
 * The back-off test kills workers of the test stack's pool with SIGKILL in
 * quick succession; it ends only when the pool is full and serving again.
 */
#include "itest.h"

#include <signal.h>
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_config_names_the_variable),
        cmocka_unit_test(crash_storm_backs_off_and_recovers),
    };
    return cmocka_run_group_tests_name("master", tests, itest_group_setup,
                                       itest_group_teardown);
}
