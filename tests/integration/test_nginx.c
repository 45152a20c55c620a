/*
 * tests/integration/test_nginx.c — what nginx answers itself (issue 2,
 * item 6; docs/API.md §3, §4): the 401 for a missing X-API-Key and the 413 for
 * a body over 64 KiB, both in the envelope and both without any worker
 * involved (the FastCGI workers are SIGSTOPped while they are asked), the
 * 64 KiB boundary, the envelope on nginx's other refusals (oversized
 * header or URI, malformed HTTP, TRACE), GET /health without a key, and the
 * per-key rate limit
 * (429 with Retry-After; nginx is restarted with a small limit when the
 * stack's own is too high to reach, and restored afterwards).
 */
#include "itest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static struct itest_consumer g_c;

/* Workers stopped by stop_workers(), resumed by resume_workers(). */
static pid_t g_stopped[256];
static int g_nstopped;

static void
resume_workers(void)
{
    for (int i = 0; i < g_nstopped; i++)
        kill(g_stopped[i], SIGCONT);
    g_nstopped = 0;
}

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    atexit(resume_workers); /* never leave the pool frozen */
    itest_consumer_create(&g_c, "ACTIVE", "active", "1 day");
    return 0;
}

static int
resume_teardown(void **state)
{
    (void)state;
    resume_workers();
    return 0;
}

/* SIGSTOPs every FastCGI worker and waits until each is stopped. */
static void
stop_workers(void)
{
    pid_t master = itest_master_pid();
    if (master <= 0)
        itest_failf("cannot read the master pid from "
                    "$FINTEGRATE_RUN_DIR/fcgi.pid (FINTEGRATE_RUN_DIR=%s)",
                    itest_env("FINTEGRATE_RUN_DIR")
                        ? itest_env("FINTEGRATE_RUN_DIR")
                        : "<unset>");
    pid_t kids[256];
    int n = itest_children(master, kids, 256);
    if (n == 0)
        itest_failf("the master %ld has no worker processes", (long)master);
    for (int i = 0; i < n; i++) {
        if (kill(kids[i], SIGSTOP) == 0)
            g_stopped[g_nstopped++] = kids[i];
    }
    double deadline = itest_now() + 2.0;
    for (int i = 0; i < g_nstopped; i++) {
        while (itest_proc_state(g_stopped[i]) != 'T' &&
               itest_proc_state(g_stopped[i]) != 't') {
            if (itest_now() > deadline)
                itest_failf("worker %ld did not stop", (long)g_stopped[i]);
            itest_sleep_ms(5);
        }
    }
}

/* ----------------------------------------------------------- missing key */

static void
expect_missing_key(struct itest_resp *r, const char *rid)
{
    itest_assert_error(r, 401, "Missing X-API-Key header");
    if (rid != NULL)
        itest_expect(r, strcmp(itest_header(r, "X-Request-ID"), rid) == 0,
                     "nginx's 401 must echo the client's X-Request-ID");
    else
        itest_expect(r, itest_is_request_id(itest_header(r, "X-Request-ID")),
                     "nginx's 401 must carry a generated X-Request-ID");
    itest_resp_free(r);
}

static void
missing_key_is_401_from_nginx_without_a_worker(void **state)
{
    (void)state;
    char rid[96], hdr[128];
    itest_unique(rid, sizeof(rid), "nokey");
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid);

    stop_workers();
    itest_set_timeout_ms(3000); /* a request that reached a worker hangs */
    expect_missing_key(itest_request("GET",
                                     "/customer/data?customer_id="
                                     "2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c",
                                     NULL, NULL, hdr),
                       rid);
    expect_missing_key(itest_request("POST", "/customer/data", NULL,
                                     "{\"name\":\"Ada\"}", NULL),
                       NULL);
    expect_missing_key(
        itest_request("PATCH", "/customer/change-status", NULL, "{{{", NULL),
        NULL);
    expect_missing_key(
        itest_request("DELETE", "/customer/data", NULL, NULL, NULL), NULL);
    /* Missing key comes before the path check (docs/API.md §3.3). */
    expect_missing_key(itest_request("GET", "/nope", NULL, NULL, hdr), rid);
    /* An empty X-API-Key header is a missing one. */
    expect_missing_key(itest_request("POST", "/customer/data", NULL,
                                     "{\"name\":\"Ada\"}", "X-API-Key;"),
                       NULL);
    itest_set_timeout_ms(15000);
    resume_workers();

    /* The pool is usable again. */
    struct itest_resp *r = itest_request("GET", "/health", NULL, NULL, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

/* ------------------------------------------------------------ body size */

/* A valid create body of exactly len bytes (whitespace padding). */
static char *
create_body_of_size(const char *name, size_t len)
{
    char head[160];
    int n = snprintf(head, sizeof(head), "{\"name\":\"%s\"", name);
    if ((size_t)n + 1 > len)
        abort();
    char *b = malloc(len + 1);
    memcpy(b, head, (size_t)n);
    memset(b + n, ' ', len - (size_t)n - 1);
    b[len - 1] = '}';
    b[len] = '\0';
    return b;
}

static long
count_named(const char *name)
{
    return itest_sql_long("SELECT count(*) FROM customers WHERE name = $1",
                          name);
}

static void
body_over_64k_is_413_from_nginx_without_a_worker(void **state)
{
    (void)state;
    char name[96], rid[96], hdr[128];
    itest_unique(name, sizeof(name), "big");
    itest_unique(rid, sizeof(rid), "big");
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid);

    char *body = create_body_of_size(name, 65537);
    char *huge = create_body_of_size(name, 1 << 20);
    stop_workers();
    itest_set_timeout_ms(3000);
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, hdr);
    itest_assert_error(r, 413, NULL);
    itest_expect(r, strcmp(itest_header(r, "X-Request-ID"), rid) == 0,
                 "nginx's 413 must echo the client's X-Request-ID");
    itest_resp_free(r);
    r = itest_request("POST", "/customer/data", g_c.key, huge, NULL);
    itest_assert_error(r, 413, NULL);
    itest_resp_free(r);
    itest_set_timeout_ms(15000);
    resume_workers();
    free(body);
    free(huge);
    itest_expect(NULL, count_named(name) == 0,
                 "a 413 request must not create a customer");
}

static void
body_of_exactly_64k_is_accepted(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "edge");
    char *body = create_body_of_size(name, 65536);
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, NULL);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "name", name);
    itest_resp_free(r);
    free(body);
    itest_expect(NULL, count_named(name) == 1,
                 "the 64 KiB request must create its customer");
}

/* ------------------------------------------- nginx's other refusals */

/*
 * Requests nginx refuses before any location runs must still get the
 * envelope (docs/API.md §3.1: every response, from the app or nginx).
 */
static void
oversized_header_is_400_envelope(void **state)
{
    (void)state;
    size_t n = 9000; /* over one 8k large_client_header_buffers buffer */
    char *hdr = malloc(n + 32);
    int k = sprintf(hdr, "X-Padding: ");
    memset(hdr + k, 'a', n);
    hdr[k + (int)n] = '\0';
    struct itest_resp *r = itest_request(
        "GET",
        "/customer/data?customer_id=2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c",
        g_c.key, NULL, hdr);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);
    free(hdr);
}

static void
oversized_uri_is_refused_in_the_envelope(void **state)
{
    (void)state;
    size_t n = 10000;
    char *path = malloc(n + 64);
    int k = sprintf(path, "/customer/data?customer_id=");
    memset(path + k, 'a', n);
    path[k + (int)n] = '\0';
    struct itest_resp *r = itest_request("GET", path, g_c.key, NULL, NULL);
    /* 414 URI Too Long, or a plain 400: either, in the envelope. */
    itest_expect(r, r->status == 414 || r->status == 400,
                 "a 10 KB request line must be a 414 or 400");
    itest_assert_error(r, r->status, NULL);
    itest_resp_free(r);
    free(path);
}

static void
malformed_http_is_400_envelope(void **state)
{
    (void)state;
    /* Each request is head + (an X-API-Key line, when keyed) + tail. */
    static const struct {
        const char *label, *head, *tail;
        bool keyed;
    } cases[] = {
        {"garbage request line", "GARBAGE\r\n\r\n", "", false},
        {"no Host header", "GET /health HTTP/1.1\r\n\r\n", "", false},
        {"Content-Length and chunked",
         "POST /customer/data HTTP/1.1\r\nHost: x\r\n",
         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         true},
        {"bad Content-Length", "POST /customer/data HTTP/1.1\r\nHost: x\r\n",
         "Content-Length: abc\r\nConnection: close\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req), "%s%s%s%s%s", cases[i].head,
                 cases[i].keyed ? "X-API-Key: " : "",
                 cases[i].keyed ? g_c.key : "", cases[i].keyed ? "\r\n" : "",
                 cases[i].tail);
        struct itest_resp *r =
            itest_raw_request(req, strlen(req), cases[i].label, 3000);
        itest_assert_error(r, 400, NULL);
        itest_resp_free(r);
    }
}

/* nginx refuses TRACE itself: still a 405 of a known path, with Allow. */
static void
trace_is_405_with_allow(void **state)
{
    (void)state;
    struct itest_resp *r =
        itest_request("TRACE", "/customer/data", g_c.key, NULL, NULL);
    itest_assert_error(r, 405, NULL);
    const char *allow = itest_header(r, "Allow");
    itest_expect(r, allow != NULL && strstr(allow, "GET") != NULL,
                 "a 405 must carry Allow (got %s)", allow ? allow : "<none>");
    itest_resp_free(r);
}

/* --------------------------------------------------------------- health */

static void
health_without_key(void **state)
{
    (void)state;
    struct itest_resp *r = itest_request("GET", "/health", NULL, NULL, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "database", "up");
    const char *v = itest_jstr(d, "version");
    itest_expect(r, v != NULL && *v != '\0',
                 "data.version must be a non-empty string");
    itest_resp_free(r);

    /* A key, if sent, changes nothing. */
    r = itest_request("GET", "/health", g_c.key, NULL, NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "database", "up");
    itest_resp_free(r);
}

/* ----------------------------------------------------------- rate limit */

static long
env_long(const char *name)
{
    const char *v = itest_env(name);
    if (v == NULL)
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    return *end == '\0' ? n : -1;
}

/* Limits nginx was started with for the 429 test; restored by teardown. */
static bool g_nginx_restarted;
static char *g_saved_rate, *g_saved_burst;

static void
restore_env(const char *name, const char *saved)
{
    if (saved != NULL)
        setenv(name, saved, 1);
    else
        unsetenv(name);
}

static int
restore_nginx_teardown(void **state)
{
    (void)state;
    if (!g_nginx_restarted)
        return 0;
    restore_env("FINTEGRATE_RATE_KEY", g_saved_rate);
    restore_env("FINTEGRATE_BURST_KEY", g_saved_burst);
    fprintf(stderr, "test_nginx: restarting nginx with the stack's limits\n");
    if (itest_stack("nginx-stop") != 0 || itest_stack("nginx-start") != 0)
        fprintf(stderr, "test_nginx: could not restore nginx!\n");
    g_nginx_restarted = false;
    free(g_saved_rate);
    free(g_saved_burst);
    g_saved_rate = g_saved_burst = NULL;
    return 0;
}

static char *
dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/*
 * The per-key limit refuses the excess at once with a 429 envelope and
 * Retry-After. When the stack's own limits are too high to reach quickly
 * (make test starts it with 100000 r/s), nginx is restarted with a small
 * per-key limit through the same variables (limits are set at start-up,
 * docs/API.md §4.5) and restored afterwards.
 */
static void
rate_limit_per_key_is_429_with_retry_after(void **state)
{
    (void)state;
    long rate = env_long("FINTEGRATE_RATE_KEY");
    long burst = env_long("FINTEGRATE_BURST_KEY");
    long rate_ip = env_long("FINTEGRATE_RATE_IP");
    long burst_ip = env_long("FINTEGRATE_BURST_IP");
    bool reachable = rate >= 1 && burst >= 0 && rate_ip >= 1 && burst_ip >= 0 &&
                     burst + rate <= 3000 && burst + 2 * rate + 50 < burst_ip &&
                     rate <= rate_ip;
    if (!reachable) {
        if (rate_ip >= 1 && rate_ip < 100) {
            print_message("      skipped: per-IP limit %ld r/s too low to "
                          "test the per-key limit alone\n",
                          rate_ip);
            skip();
        }
        g_saved_rate = dup_or_null(getenv("FINTEGRATE_RATE_KEY"));
        g_saved_burst = dup_or_null(getenv("FINTEGRATE_BURST_KEY"));
        g_nginx_restarted = true;
        rate = 20;
        burst = 10;
        setenv("FINTEGRATE_RATE_KEY", "20", 1);
        setenv("FINTEGRATE_BURST_KEY", "10", 1);
        if (itest_stack("nginx-stop") != 0 || itest_stack("nginx-start") != 0)
            itest_failf("could not restart nginx with FINTEGRATE_RATE_KEY=20 "
                        "FINTEGRATE_BURST_KEY=10");
    }
    char key[64];
    itest_random_key(key); /* its own bucket: the zone keys on the raw value */
    long passed = 0, limit = burst + 2 * rate + 50;
    struct itest_resp *limited = NULL;
    double t0 = itest_now();
    for (long i = 0; i < limit && limited == NULL; i++) {
        struct itest_resp *r = itest_request(
            "GET",
            "/customer/data?customer_id=2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c",
            key, NULL, NULL);
        if (r->status == 429) {
            limited = r;
        } else {
            itest_expect(r, r->status == 401,
                         "an unknown key under the limit must get 401");
            passed++;
            itest_resp_free(r);
        }
    }
    double elapsed = itest_now() - t0;
    if (limited == NULL)
        itest_failf("no 429 after %ld requests in %.2f s with one key "
                    "(rate %ld r/s, burst %ld)",
                    passed, elapsed, rate, burst);
    itest_assert_error(limited, 429, NULL);
    const char *ra = itest_header(limited, "Retry-After");
    itest_expect(limited, ra != NULL && atol(ra) >= 1,
                 "429 must carry Retry-After with a positive number of "
                 "seconds");
    /* Not stricter than configured (the burst, plus what the rate refilled
     * meanwhile), and not looser. */
    itest_expect(limited, passed >= burst,
                 "only %ld requests passed before the 429; burst is %ld",
                 passed, burst);
    itest_expect(limited,
                 (double)passed <= (double)burst + 1 + rate * elapsed + 2,
                 "%ld requests passed in %.2f s; rate %ld burst %ld", passed,
                 elapsed, rate, burst);
    itest_resp_free(limited);

    /* Per key: another key is not limited. */
    struct itest_resp *r = itest_request(
        "GET",
        "/customer/data?customer_id=2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c",
        g_c.key, NULL, NULL);
    itest_assert_envelope(r, 404);
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            missing_key_is_401_from_nginx_without_a_worker, resume_teardown),
        cmocka_unit_test_teardown(
            body_over_64k_is_413_from_nginx_without_a_worker, resume_teardown),
        cmocka_unit_test(body_of_exactly_64k_is_accepted),
        cmocka_unit_test(health_without_key),
        cmocka_unit_test(oversized_header_is_400_envelope),
        cmocka_unit_test(oversized_uri_is_refused_in_the_envelope),
        cmocka_unit_test(malformed_http_is_400_envelope),
        cmocka_unit_test(trace_is_405_with_allow),
        cmocka_unit_test_teardown(rate_limit_per_key_is_429_with_retry_after,
                                  restore_nginx_teardown),
    };
    return itest_exit(cmocka_run_group_tests_name("nginx", tests, setup,
                                                  itest_group_teardown));
}
