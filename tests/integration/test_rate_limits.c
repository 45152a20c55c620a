/*
 * tests/integration/test_rate_limits.c — nginx's rate limits of issue 4
 * (docs/API.md §4.5): per raw X-API-Key value and per client IP, with bursts,
 * refused at once (nodelay) with 429, Retry-After and the envelope; set at
 * start-up by FINTEGRATE_RATE_KEY / FINTEGRATE_BURST_KEY /
 * FINTEGRATE_RATE_IP / FINTEGRATE_BURST_IP without editing files.
 *
 * The test stack runs with limits too high to reach, so this binary
 * restarts ONLY nginx (scripts/stack.sh nginx-stop, nginx-start) with low
 * limits through those variables, and restores the stack's own limits (read
 * back from the rendered configuration) in its teardown, so that later
 * binaries are not limited:
 *   - a burst with one key gets 429s while another key, in the same moment,
 *     is untouched (the zone is per key), and the limited key's text lands
 *     in no log (nginx logs its refusals below its error_log level);
 *   - the administrator's key is limited like any other;
 *   - /health has only the per-IP limit and /metrics none;
 *   - a burst from one IP with many keys gets 429s (per-IP zone), a request
 *     without a key is still 401 (the key check comes first).
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct itest_consumer g_a, g_b;

/* The limits the stack had before this binary touched nginx. */
static long g_orig[4];
static bool g_have_orig;
static bool g_restarted;

static const char *const VARS[4] = {
    "FINTEGRATE_RATE_KEY", "FINTEGRATE_BURST_KEY", "FINTEGRATE_RATE_IP",
    "FINTEGRATE_BURST_IP"};

/* ------------------------------------------------------------- helpers */

/* The number after needle in text, or -1. */
static long
number_after(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (p == NULL)
        return -1;
    p += strlen(needle);
    char *end;
    long v = strtol(p, &end, 10);
    return end == p ? -1 : v;
}

/*
 * Reads the limits nginx runs with from the configuration stack.sh rendered
 * into the run directory; falls back to the environment.
 */
static void
read_current_limits(void)
{
    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/nginx/conf.d/fintegrate.conf",
             run ? run : "");
    char *conf = run ? itest_slurp(path, NULL) : NULL;
    long v[4] = {-1, -1, -1, -1};
    if (conf != NULL) {
        const char *k = strstr(conf, "zone=fintegrate_per_key:");
        const char *i = strstr(conf, "zone=fintegrate_per_ip:");
        v[0] = k ? number_after(k, "rate=") : -1;
        v[2] = i ? number_after(i, "rate=") : -1;
        v[1] = number_after(conf, "limit_req zone=fintegrate_per_key burst=");
        v[3] = number_after(conf, "limit_req zone=fintegrate_per_ip burst=");
        free(conf);
    }
    for (int j = 0; j < 4; j++) {
        if (v[j] < 0 && itest_env(VARS[j]) != NULL)
            v[j] = atol(itest_env(VARS[j]));
        if (v[j] < 0)
            itest_failf("cannot tell the stack's %s (no %s, no variable)",
                        VARS[j], path);
        g_orig[j] = v[j];
    }
    g_have_orig = true;
}

/* Restarts only nginx with these limits (the variables of stack.sh). */
static void
restart_nginx(long rate_key, long burst_key, long rate_ip, long burst_ip)
{
    long v[4] = {rate_key, burst_key, rate_ip, burst_ip};
    if (!g_have_orig)
        read_current_limits();
    for (int j = 0; j < 4; j++) {
        char s[24];
        snprintf(s, sizeof(s), "%ld", v[j]);
        setenv(VARS[j], s, 1);
    }
    g_restarted = true;
    itest_thread_done(); /* the old nginx's connections are gone */
    if (itest_stack("nginx-stop") != 0 || itest_stack("nginx-start") != 0)
        itest_failf("could not restart nginx with FINTEGRATE_RATE_KEY=%ld "
                    "FINTEGRATE_BURST_KEY=%ld FINTEGRATE_RATE_IP=%ld "
                    "FINTEGRATE_BURST_IP=%ld",
                    rate_key, burst_key, rate_ip, burst_ip);
}

static void
restore_nginx(void)
{
    if (!g_restarted || !g_have_orig)
        return;
    for (int j = 0; j < 4; j++) {
        char s[24];
        snprintf(s, sizeof(s), "%ld", g_orig[j]);
        setenv(VARS[j], s, 1);
    }
    fprintf(stderr,
            "test_rate_limits: restarting nginx with the stack's "
            "limits (%ld/%ld per key, %ld/%ld per IP)\n",
            g_orig[0], g_orig[1], g_orig[2], g_orig[3]);
    itest_thread_done();
    if (itest_stack("nginx-stop") != 0 || itest_stack("nginx-start") != 0)
        fprintf(stderr, "test_rate_limits: COULD NOT RESTORE nginx!\n");
    g_restarted = false;
}

static int
setup(void **state)
{
    if (itest_group_setup_consumers(state, &g_a, &g_b) != 0)
        return -1;
    atexit(restore_nginx); /* also when a failure ends the binary early */
    return 0;
}

static int
teardown(void **state)
{
    restore_nginx();
    return itest_group_teardown(state);
}

static const char MISSING_CUSTOMER[] =
    "/customer/data?customer_id=2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c";

/* A 429 as the contract wants it: the envelope and Retry-After ≥ 1. */
static void
expect_429(const struct itest_resp *r)
{
    itest_assert_error(r, 429, NULL);
    const char *ra = itest_header(r, "Retry-After");
    itest_expect(r, ra != NULL && atol(ra) >= 1,
                 "a 429 must carry Retry-After with a positive number of "
                 "seconds (got %s)",
                 ra ? ra : "<none>");
}

/* Not more passed than the burst, the one that opened the bucket, and what
 * the rate refilled meanwhile (plus a little for timer granularity). */
static void
expect_within_limit(long passed, double elapsed, long rate, long burst,
                    const char *what)
{
    itest_expect(NULL, passed >= burst,
                 "%s: only %ld requests passed before 429s; burst is %ld", what,
                 passed, burst);
    itest_expect(
        NULL, (double)passed <= (double)burst + 1 + (double)rate * elapsed + 2,
        "%s: %ld requests passed in %.2f s with rate %ld r/s, "
        "burst %ld",
        what, passed, elapsed, rate, burst);
}

static void
expect_not_in_logs(const char *secret, const char *label)
{
    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    static const char *const logs[] = {"nginx-access.log", "nginx-error.log",
                                       "app.log"};
    for (size_t i = 0; run != NULL && i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/logs/%s", run, logs[i]);
        char *t = itest_slurp(p, NULL);
        if (t == NULL)
            continue;
        itest_expect(NULL, strstr(t, secret) == NULL, "%s holds %s (%.11s...)",
                     logs[i], label, secret);
        free(t);
    }
}

/* ------------------------------------------------------------ per key */

enum { RATE_KEY = 5, BURST_KEY = 5 };

static void
per_key_limit_429_while_another_key_is_unaffected(void **state)
{
    (void)state;
    restart_nginx(RATE_KEY, BURST_KEY, 100000, 100000);

    /* A fires a burst, alternately with its key in the header only and
     * in a query string as well; B sends a request now and then. */
    char self_path[160];
    snprintf(self_path, sizeof(self_path), "/consumer/api-key?api_key=%s",
             g_a.key);
    long a_passed = 0, a_limited = 0, b_sent = 0;
    struct itest_resp *first_429 = NULL;
    double t0 = itest_now();
    for (int i = 0; i < 40; i++) {
        struct itest_resp *r = itest_request(
            "GET", (i % 2) ? self_path : MISSING_CUSTOMER, g_a.key, NULL, NULL);
        if (r->status == 429) {
            a_limited++;
            if (first_429 == NULL) {
                first_429 = r;
                r = NULL;
            }
        } else {
            itest_assert_envelope(r, (i % 2) ? 200 : 404);
            a_passed++;
        }
        itest_resp_free(r);
        if (i % 8 == 4) {
            /* B, in the same moment, is not limited at all. */
            r = itest_request("GET", MISSING_CUSTOMER, g_b.key, NULL, NULL);
            itest_expect(r, r->status != 429,
                         "another key must not be limited by A's burst");
            itest_assert_error(r, 404, NULL);
            itest_resp_free(r);
            b_sent++;
        }
    }
    double elapsed = itest_now() - t0;
    if (first_429 == NULL)
        itest_failf("no 429 among 40 requests with one key in %.2f s (rate "
                    "%d r/s, burst %d)",
                    elapsed, RATE_KEY, BURST_KEY);
    expect_429(first_429);
    itest_expect(first_429,
                 strstr(itest_desc(first_429), "Rate limit") != NULL ||
                     strstr(itest_desc(first_429), "rate limit") != NULL,
                 "the 429 says it is the rate limit");
    itest_resp_free(first_429);
    print_message("      key A: %ld passed, %ld refused in %.2f s; key B: "
                  "%ld sent, none refused\n",
                  a_passed, a_limited, elapsed, b_sent);
    expect_within_limit(a_passed, elapsed, RATE_KEY, BURST_KEY, "key A");

    /* The limited key's text is in no log, though nginx refused requests
     * whose line held it. */
    expect_not_in_logs(g_a.key + 3, "the limited key");

    /* After a pause the key is served again (the rate refills). */
    itest_sleep_ms(1000 / RATE_KEY + 100);
    struct itest_resp *r =
        itest_request("GET", MISSING_CUSTOMER, g_a.key, NULL, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

static void
admin_key_is_limited_too(void **state)
{
    (void)state;
    if (!g_restarted)
        restart_nginx(RATE_KEY, BURST_KEY, 100000, 100000);
    long passed = 0;
    struct itest_resp *limited = NULL;
    double t0 = itest_now();
    for (int i = 0; i < 40 && limited == NULL; i++) {
        struct itest_resp *r = itest_request("GET", MISSING_CUSTOMER,
                                             itest_admin_key(), NULL, NULL);
        if (r->status == 429) {
            limited = r;
        } else {
            itest_assert_error(r, 404, NULL);
            passed++;
            itest_resp_free(r);
        }
    }
    double elapsed = itest_now() - t0;
    if (limited == NULL)
        itest_failf("the administrator's key was not limited: %ld requests "
                    "in %.2f s (rate %d r/s, burst %d)",
                    passed, elapsed, RATE_KEY, BURST_KEY);
    expect_429(limited);
    itest_resp_free(limited);
    expect_within_limit(passed, elapsed, RATE_KEY, BURST_KEY, "admin key");
    /* Every endpoint behind the key shares the bucket. */
    struct itest_resp *r =
        itest_request("GET", "/events/health", itest_admin_key(), NULL, NULL);
    expect_429(r);
    itest_resp_free(r);
}

/* /health: only the per-IP limit; /metrics: none (docs/API.md §4.5). */
static void
health_and_metrics_are_not_limited_per_key(void **state)
{
    (void)state;
    if (!g_restarted)
        restart_nginx(RATE_KEY, BURST_KEY, 100000, 100000);
    for (int i = 0; i < 3 * (RATE_KEY + BURST_KEY); i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", g_b.key, NULL, NULL);
        itest_expect(r, r->status == 200,
                     "GET /health #%d with a key must not be limited per key",
                     i);
        itest_resp_free(r);
    }
    for (int i = 0; i < 3 * (RATE_KEY + BURST_KEY); i++) {
        struct itest_resp *r =
            itest_request("GET", "/metrics", g_b.key, NULL, NULL);
        /* (Whatever the app answers there; nginx must not refuse it.) */
        itest_expect(r, r->status != 429 && r->status != 0,
                     "GET /metrics #%d must not be limited", i);
        itest_resp_free(r);
    }
}

/* ------------------------------------------------------------- per IP */

enum { RATE_IP = 5, BURST_IP = 5 };

static void
per_ip_limit_429_across_keys(void **state)
{
    (void)state;
    restart_nginx(100000, 100000, RATE_IP, BURST_IP);
    long passed = 0, limited = 0;
    struct itest_resp *first_429 = NULL;
    double t0 = itest_now();
    for (int i = 0; i < 40; i++) {
        /* A different key each time: only the IP is common. */
        char key[64];
        itest_random_key(key);
        struct itest_resp *r =
            itest_request("GET", MISSING_CUSTOMER, key, NULL, NULL);
        if (r->status == 429) {
            limited++;
            if (first_429 == NULL) {
                first_429 = r;
                r = NULL;
            }
        } else {
            itest_assert_error(r, 401, "Invalid API key");
            passed++;
        }
        itest_resp_free(r);
    }
    double elapsed = itest_now() - t0;
    if (first_429 == NULL)
        itest_failf("no 429 among 40 requests from one IP in %.2f s (rate %d "
                    "r/s, burst %d)",
                    elapsed, RATE_IP, BURST_IP);
    expect_429(first_429);
    itest_resp_free(first_429);
    print_message("      one IP, 40 keys: %ld passed, %ld refused in %.2f s\n",
                  passed, limited, elapsed);
    expect_within_limit(passed, elapsed, RATE_IP, BURST_IP, "one IP");

    /* The IP is still over its limit: the valid keys and /health too. */
    struct itest_resp *r =
        itest_request("GET", MISSING_CUSTOMER, g_a.key, NULL, NULL);
    expect_429(r);
    itest_resp_free(r);
    r = itest_request("GET", "/health", NULL, NULL, NULL);
    expect_429(r);
    itest_resp_free(r);
    /* A missing key is refused first (401, docs/API.md §3.3). */
    r = itest_request("GET", MISSING_CUSTOMER, NULL, NULL, NULL);
    itest_assert_error(r, 401, "Missing X-API-Key header");
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_key_limit_429_while_another_key_is_unaffected),
        cmocka_unit_test(admin_key_is_limited_too),
        cmocka_unit_test(health_and_metrics_are_not_limited_per_key),
        cmocka_unit_test(per_ip_limit_429_across_keys),
    };
    return cmocka_run_group_tests_name("rate_limits", tests, setup, teardown);
}
