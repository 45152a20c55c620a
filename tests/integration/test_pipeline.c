/*
 * tests/integration/test_pipeline.c — the one request pipeline every route
 * goes through (issue 2, item 5; docs/API.md §2–§4): 404 vs 405 with Allow,
 * authentication (unknown, expired, deactivated key; deactivated consumer),
 * the order of checks, body parsing (400), 422 messages, GET inputs from the
 * query string or a JSON body, query-string rules, X-Request-ID, the one
 * log line per request (never a key), and key/consumer state changes taking
 * effect within 5 s despite per-worker caching.
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static struct itest_consumer g_ok;           /* active consumer, active key */
static struct itest_consumer g_expired;      /* active key past expires_at */
static struct itest_consumer g_expired_st;   /* key with status 'expired' */
static struct itest_consumer g_key_off;      /* key 'deactivated' */
static struct itest_consumer g_consumer_off; /* consumer DEACTIVATED */

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    itest_consumer_create(&g_ok, "ACTIVE", "active", "1 day");
    itest_consumer_create(&g_expired, "ACTIVE", "active", "-1 hour");
    itest_consumer_create(&g_expired_st, "ACTIVE", "expired", "1 day");
    itest_consumer_create(&g_key_off, "ACTIVE", "deactivated", "1 day");
    itest_consumer_create(&g_consumer_off, "DEACTIVATED", "active", "1 day");
    return 0;
}

/* ------------------------------------------------------------- helpers */

static bool
customer_exists(const char *id)
{
    return itest_sql_long("SELECT count(*) FROM customers "
                          "WHERE customer_id = $1",
                          id) == 1;
}

/* Does the comma-separated Allow value list method (exact token)? */
static bool
allow_has(const char *allow, const char *method)
{
    if (allow == NULL)
        return false;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", allow);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t n = strlen(t);
        while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
            t[--n] = '\0';
        if (strcmp(t, method) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------- 404/405 */

static void
unknown_path_is_404(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "/nope",
        "/customer",
        "/customer/datax",
        "/customer/data/extra",
        "/customer/DATA",
        "/customers/data",
        "/customer/change-status/x",
    };
    char random_key[64];
    itest_random_key(random_key);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct itest_resp *r =
            itest_request("GET", paths[i], g_ok.key, NULL, NULL);
        itest_assert_error(r, 404, NULL);
        itest_resp_free(r);
        /* Path before body: a malformed body does not matter. */
        r = itest_request("POST", paths[i], g_ok.key, "{{{", NULL);
        itest_assert_error(r, 404, NULL);
        itest_resp_free(r);
        /* Path before key: an unknown key does not matter either. */
        r = itest_request("GET", paths[i], random_key, NULL, NULL);
        itest_assert_error(r, 404, NULL);
        itest_resp_free(r);
    }
}

static void
known_path_other_method_is_405_with_allow(void **state)
{
    (void)state;
    static const char *const data_other[] = {"PUT", "PATCH"};
    for (size_t i = 0; i < 2; i++) {
        struct itest_resp *r =
            itest_request(data_other[i], "/customer/data", g_ok.key,
                          "{\"name\":\"x\"}", NULL);
        itest_assert_error(r, 405, NULL);
        const char *allow = itest_header(r, "Allow");
        itest_expect(r,
                     allow_has(allow, "GET") && allow_has(allow, "POST") &&
                         allow_has(allow, "DELETE") &&
                         !allow_has(allow, "PATCH") && !allow_has(allow, "PUT"),
                     "Allow must list GET, POST and DELETE only (got %s)",
                     allow ? allow : "<none>");
        itest_resp_free(r);
    }
    static const char *const status_other[] = {"GET", "POST", "DELETE", "PUT"};
    for (size_t i = 0; i < 4; i++) {
        struct itest_resp *r = itest_request(
            status_other[i], "/customer/change-status", g_ok.key, NULL, NULL);
        itest_assert_error(r, 405, NULL);
        const char *allow = itest_header(r, "Allow");
        itest_expect(r,
                     allow_has(allow, "PATCH") && !allow_has(allow, "GET") &&
                         !allow_has(allow, "POST"),
                     "Allow must be PATCH (got %s)", allow ? allow : "<none>");
        itest_resp_free(r);
    }
}

static void
health_other_method_is_405(void **state)
{
    (void)state;
    struct itest_resp *r =
        itest_request("POST", "/health", g_ok.key, "{}", NULL);
    itest_assert_error(r, 405, NULL);
    const char *allow = itest_header(r, "Allow");
    itest_expect(r, allow_has(allow, "GET") && !allow_has(allow, "POST"),
                 "Allow must be GET (got %s)", allow ? allow : "<none>");
    itest_resp_free(r);
}

static void
method_check_comes_before_key_and_body(void **state)
{
    (void)state;
    char random_key[64];
    itest_random_key(random_key);
    /* Bad body: still 405. */
    struct itest_resp *r =
        itest_request("PUT", "/customer/data", g_ok.key, "{{{ not json", NULL);
    itest_assert_error(r, 405, NULL);
    itest_expect(r, itest_header(r, "Allow") != NULL, "Allow header missing");
    itest_resp_free(r);
    /* Unknown key: still 405. */
    r = itest_request("PUT", "/customer/data", random_key, "{}", NULL);
    itest_assert_error(r, 405, NULL);
    itest_resp_free(r);
    /* Deactivated consumer: still 405. */
    r = itest_request("GET", "/customer/change-status", g_consumer_off.key,
                      NULL, NULL);
    itest_assert_error(r, 405, NULL);
    itest_resp_free(r);
}

/* ----------------------------------------------------------------- auth */

/* Every customer route refuses key with status/exact description. */
static void
expect_refused_everywhere(const char *key, long status, const char *exact)
{
    char id[37], body[160], path[160];
    itest_random_uuid(id);
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", id);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);

    struct itest_resp *r = itest_request("GET", path, key, NULL, NULL);
    itest_assert_error(r, status, exact);
    itest_resp_free(r);
    r = itest_request("DELETE", "/customer/data", key, body, NULL);
    itest_assert_error(r, status, exact);
    itest_resp_free(r);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", id);
    r = itest_request("PATCH", "/customer/change-status", key, body, NULL);
    itest_assert_error(r, status, exact);
    itest_resp_free(r);

    char marker[96], create[200];
    itest_unique(marker, sizeof(marker), "refused");
    snprintf(create, sizeof(create), "{\"name\":\"%s\"}", marker);
    r = itest_request("POST", "/customer/data", key, create, NULL);
    itest_assert_error(r, status, exact);
    itest_expect(r, itest_count_named(marker) == 0,
                 "a refused request created a customer");
    itest_resp_free(r);
}

static void
unknown_key_is_401(void **state)
{
    (void)state;
    char random_key[64];
    itest_random_key(random_key);
    expect_refused_everywhere(random_key, 401, NULL);
    expect_refused_everywhere("not-a-key", 401, NULL);
    /* The working key with one character changed. */
    char near[64];
    snprintf(near, sizeof(near), "%s", g_ok.key);
    near[10] = near[10] == 'A' ? 'B' : 'A';
    expect_refused_everywhere(near, 401, NULL);
    /* The 401 of an unknown key is not nginx's missing-key answer. */
    struct itest_resp *r =
        itest_request("GET", "/customer/data", random_key, NULL, NULL);
    itest_expect(r,
                 itest_desc(r) &&
                     strcmp(itest_desc(r), "Missing X-API-Key header") != 0,
                 "an unknown key is not a missing one");
    itest_resp_free(r);
}

static void
expired_key_is_401(void **state)
{
    (void)state;
    expect_refused_everywhere(g_expired.key, 401, "API key expired");
    expect_refused_everywhere(g_expired_st.key, 401, "API key expired");
}

static void
deactivated_key_is_401(void **state)
{
    (void)state;
    expect_refused_everywhere(g_key_off.key, 401, NULL);
}

static void
deactivated_consumer_is_403(void **state)
{
    (void)state;
    expect_refused_everywhere(g_consumer_off.key, 403, NULL);
}

static void
working_key_is_accepted(void **state)
{
    (void)state;
    /* The control for the refusals above: the same setup path works. */
    char id[37];
    itest_make_customer(g_ok.key, "pipe", id);
    struct itest_resp *r = itest_requestf("GET", g_ok.key, NULL,
                                          "/customer/data?customer_id=%s", id);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

static void
key_check_comes_before_body_and_validation(void **state)
{
    (void)state;
    char random_key[64];
    itest_random_key(random_key);
    static const char *const bodies[] = {"{{{", "[1]", "", "{\"nme\":5}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct itest_resp *r = itest_request("POST", "/customer/data",
                                             random_key, bodies[i], NULL);
        itest_assert_error(r, 401, NULL);
        itest_resp_free(r);
        r = itest_request("POST", "/customer/data", g_expired.key, bodies[i],
                          NULL);
        itest_assert_error(r, 401, "API key expired");
        itest_resp_free(r);
        r = itest_request("PATCH", "/customer/change-status", g_key_off.key,
                          bodies[i], NULL);
        itest_assert_error(r, 401, NULL);
        itest_resp_free(r);
        r = itest_request("POST", "/customer/data", g_consumer_off.key,
                          bodies[i], NULL);
        itest_assert_error(r, 403, NULL);
        itest_resp_free(r);
    }
    /* GET with a bad query: the key is checked first. */
    struct itest_resp *r = itest_request(
        "GET", "/customer/data?customer_id=abc&x=1", random_key, NULL, NULL);
    itest_assert_error(r, 401, NULL);
    itest_resp_free(r);
}

/* ------------------------------------------------------------------ 400 */

static void
expect_400(const char *method, const char *path, const char *body, size_t len,
           const char *marker)
{
    struct itest_resp *r =
        itest_request_n(method, path, g_ok.key, body, len, NULL);
    itest_assert_error(r, 400, NULL);
    if (marker != NULL)
        itest_expect(r, itest_count_named(marker) == 0,
                     "a 400 request created a customer");
    itest_resp_free(r);
}

static void
malformed_json_is_400(void **state)
{
    (void)state;
    char m[96];
    itest_unique(m, sizeof(m), "malformed");
    char bodies[10][256];
    snprintf(bodies[0], 256, "{\"name\":\"%s\"", m);
    snprintf(bodies[1], 256, "{name:\"%s\"}", m);
    snprintf(bodies[2], 256, "{'name':'%s'}", m);
    snprintf(bodies[3], 256, "{\"name\":\"%s\",}", m);
    snprintf(bodies[4], 256, "{\"name\":\"%s\"} trailing", m);
    snprintf(bodies[5], 256, "{\"name\":\"%s\"}{\"name\":\"x\"}", m);
    snprintf(bodies[6], 256, "{\"name\":\"%s\" \"status\":\"ACTIVE\"}", m);
    snprintf(bodies[7], 256, "name=%s", m);
    snprintf(bodies[8], 256, "{\"name\":\"%s\xff\xfe\"}", m); /* not UTF-8 */
    snprintf(bodies[9], 256, "{\"name\":\"%s\\x41\"}", m);    /* bad escape */
    for (int i = 0; i < 10; i++)
        expect_400("POST", "/customer/data", bodies[i], strlen(bodies[i]), m);
    /* A NUL byte inside the body text is not JSON either. */
    char raw[128];
    int n = snprintf(raw, sizeof(raw), "{\"name\":\"%s", m);
    memcpy(raw + n, "\0x\"}", 4);
    expect_400("POST", "/customer/data", raw, (size_t)n + 4, m);
}

static void
non_object_json_is_400(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "[]", "[{\"name\":\"x\"}]", "\"x\"", "42", "null", "true", "  [ ] ",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        expect_400("POST", "/customer/data", bodies[i], strlen(bodies[i]),
                   NULL);
        expect_400("PATCH", "/customer/change-status", bodies[i],
                   strlen(bodies[i]), NULL);
        expect_400("DELETE", "/customer/data", bodies[i], strlen(bodies[i]),
                   NULL);
    }
}

static void
empty_post_or_patch_body_is_400(void **state)
{
    (void)state;
    expect_400("POST", "/customer/data", "", 0, NULL);
    expect_400("PATCH", "/customer/change-status", "", 0, NULL);
    expect_400("POST", "/customer/data", "   \n", 4, NULL);
}

static void
duplicate_keys_are_400(void **state)
{
    (void)state;
    char m[96], body[256];
    itest_unique(m, sizeof(m), "dup");
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"name\":\"%s\"}", m, m);
    expect_400("POST", "/customer/data", body, strlen(body), m);

    char id[37];
    itest_make_customer(g_ok.key, "pipe", id);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\","
             "\"status\":\"ACTIVE\"}",
             id);
    expect_400("PATCH", "/customer/change-status", body, strlen(body), NULL);
    char *st = itest_sql_value(
        "SELECT status FROM customers WHERE customer_id = $1", id);
    itest_expect(NULL, st && strcmp(st, "ACTIVE") == 0,
                 "a 400 PATCH changed the customer");
    free(st);
    /* Duplicates in a nested object count too (GET body). */
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"customer_id\":\"%s\"}", id, id);
    expect_400("GET", "/customer/data", body, strlen(body), NULL);
}

static void
json_is_parsed_whatever_the_content_type(void **state)
{
    (void)state;
    static const char *const types[] = {
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type:", /* no Content-Type header at all */
    };
    for (size_t i = 0; i < 3; i++) {
        char m[96], body[160];
        itest_unique(m, sizeof(m), "ctype");
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", m);
        struct itest_resp *r =
            itest_request("POST", "/customer/data", g_ok.key, body, types[i]);
        json_t *d = itest_assert_envelope(r, 201);
        itest_assert_jstr(r, d, "name", m);
        itest_resp_free(r);
    }
}

/* ------------------------------------------- hostile but well-formed input */

/* The pool's pids: a crashed worker would be replaced by a new pid. */
static int
worker_pids(pid_t *out, int max)
{
    pid_t master = itest_master_pid();
    return master > 0 ? itest_children(master, out, max) : 0;
}

static void
expect_same_workers(const pid_t *before, int n)
{
    pid_t after[256];
    int m = worker_pids(after, 256);
    bool same = m == n;
    for (int i = 0; same && i < n; i++) {
        bool found = false;
        for (int j = 0; j < m; j++)
            found = found || after[j] == before[i];
        same = found;
    }
    itest_expect(NULL, same, "a worker died on that input (workers %d -> %d)",
                 n, m);
}

static void
deeply_nested_json_is_rejected_without_harm(void **state)
{
    (void)state;
    pid_t before[256];
    int n = worker_pids(before, 256);
    enum { DEPTH = 30000 };
    char *body = malloc(2 * DEPTH + 16);
    char *p = body;
    p += sprintf(p, "{\"name\":");
    memset(p, '[', DEPTH);
    p += DEPTH;
    memset(p, ']', DEPTH);
    p += DEPTH;
    strcpy(p, "}");
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_ok.key, body, NULL);
    itest_expect(r, r->status == 400 || r->status == 422,
                 "a 30000-deep body must be a 400 (or 422: name is no "
                 "string)");
    itest_assert_envelope(r, r->status);
    itest_resp_free(r);
    free(body);
    r = itest_request("GET", "/health", NULL, NULL, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    if (n > 0)
        expect_same_workers(before, n);
}

static void
thousands_of_unknown_fields_are_one_422(void **state)
{
    (void)state;
    pid_t before[256];
    int n = worker_pids(before, 256);
    size_t cap = 64 * 1024;
    char *body = malloc(cap);
    size_t len = (size_t)sprintf(body, "{\"name\":\"x\"");
    for (int i = 0; len + 32 < cap - 8 && i < 5000; i++)
        len += (size_t)sprintf(body + len, ",\"f%d\":%d", i, i);
    strcpy(body + len, "}");
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_ok.key, body, NULL);
    itest_assert_error_contains(r, 422, "Unknown field \"f0\"");
    itest_expect(r, strncmp(itest_desc(r), "Unknown field \"f0\"", 18) == 0,
                 "the unknown fields come first");
    itest_resp_free(r);
    free(body);
    if (n > 0)
        expect_same_workers(before, n);
}

static void
chunked_request_body_is_read(void **state)
{
    (void)state;
    char m[96], body[160];
    itest_unique(m, sizeof(m), "chunked");
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", m);
    struct itest_resp *r = itest_request("POST", "/customer/data", g_ok.key,
                                         body, "Transfer-Encoding: chunked");
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "name", m);
    itest_resp_free(r);
}

/* ------------------------------------------------------------------ 422 */

static void
several_problems_are_joined_unknown_first(void **state)
{
    (void)state;
    struct itest_resp *r = itest_request("POST", "/customer/data", g_ok.key,
                                         "{\"b\":1,\"a\":2}", NULL);
    itest_assert_envelope(r, 422);
    const char *d = itest_desc(r);
    itest_expect(r,
                 strcmp(d, "Unknown field \"b\"; Unknown field \"a\"; Missing "
                           "required field \"name\"") == 0 ||
                     strcmp(d,
                            "Unknown field \"a\"; Unknown field \"b\"; Missing "
                            "required field \"name\"") == 0,
                 "all problems, unknown fields first, joined with \"; \"");
    itest_resp_free(r);

    r = itest_request("PATCH", "/customer/change-status", g_ok.key, "{}", NULL);
    itest_assert_envelope(r, 422);
    d = itest_desc(r);
    itest_expect(
        r,
        strcmp(d, "Missing required field \"customer_id\"; Missing required "
                  "field \"status\"") == 0 ||
            strcmp(d, "Missing required field \"status\"; Missing required "
                      "field \"customer_id\"") == 0,
        "both missing fields, joined with \"; \"");
    itest_resp_free(r);

    r = itest_request("PATCH", "/customer/change-status", g_ok.key,
                      "{\"customer_id\":\"abc\",\"status\":\"japapa\","
                      "\"zzz\":0}",
                      NULL);
    itest_assert_envelope(r, 422);
    d = itest_desc(r);
    itest_expect(r, strncmp(d, "Unknown field \"zzz\"; ", 21) == 0,
                 "the unknown field comes first");
    itest_expect(r,
                 strstr(d, "customer_id must be a UUID (got \"abc\")") &&
                     strstr(d, "status must be one of ACTIVE, INACTIVE (got "
                               "\"japapa\")"),
                 "every problem is reported");
    itest_resp_free(r);
}

/* ------------------------------------------------- GET and DELETE inputs */

static void
get_query_string_wins_over_body(void **state)
{
    (void)state;
    char a[37], b[37], path[128], body[128];
    itest_make_customer(g_ok.key, "pipe", a);
    itest_make_customer(g_ok.key, "pipe", b);
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", a);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", b);
    struct itest_resp *r = itest_request("GET", path, g_ok.key, body, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "customer_id", a);
    itest_resp_free(r);
    /* The body is not the input at all: its fields are not validated. */
    r = itest_request("GET", path, g_ok.key, "{\"bogus\":1}", NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "customer_id", a);
    itest_resp_free(r);
}

static void
get_body_is_read_when_query_empty(void **state)
{
    (void)state;
    char a[37], body[128];
    itest_make_customer(g_ok.key, "pipe", a);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", a);
    /* Even sent as text/plain. */
    struct itest_resp *r = itest_request("GET", "/customer/data", g_ok.key,
                                         body, "Content-Type: text/plain");
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "customer_id", a);
    itest_resp_free(r);
    expect_400("GET", "/customer/data", "{\"customer_id\":", 15, NULL);
    expect_400("GET", "/customer/data", "[1]", 3, NULL);
    r = itest_request("GET", "/customer/data", g_ok.key, "{\"x\":1}", NULL);
    itest_assert_error(r, 422,
                       "Unknown field \"x\"; Missing required field "
                       "\"customer_id\"");
    itest_resp_free(r);
}

static void
delete_with_empty_body_reads_query(void **state)
{
    (void)state;
    char a[37], path[128];
    itest_make_customer(g_ok.key, "pipe", a);
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", a);
    struct itest_resp *r =
        itest_request_n("DELETE", path, g_ok.key, "", 0, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "customer_id", a);
    itest_resp_free(r);
    itest_expect(NULL, !customer_exists(a), "customer must be deleted");
}

static void
unknown_query_parameter_is_422(void **state)
{
    (void)state;
    char a[37];
    itest_make_customer(g_ok.key, "pipe", a);
    struct itest_resp *r = itest_requestf(
        "GET", g_ok.key, NULL, "/customer/data?customer_id=%s&foo=1", a);
    itest_assert_error_contains(r, 422, "\"foo\"");
    itest_resp_free(r);
    r = itest_requestf("GET", g_ok.key, NULL, "/customer/data?foo=1");
    itest_assert_error_contains(r, 422, "\"foo\"");
    itest_resp_free(r);
    r = itest_requestf("DELETE", g_ok.key, NULL,
                       "/customer/data?customer_id=%s&force=true", a);
    itest_assert_error_contains(r, 422, "\"force\"");
    itest_resp_free(r);
    itest_expect(NULL, customer_exists(a),
                 "a 422 DELETE must not delete the customer");
}

static void
repeated_scalar_parameter_is_422(void **state)
{
    (void)state;
    char a[37], b[37];
    itest_make_customer(g_ok.key, "pipe", a);
    itest_make_customer(g_ok.key, "pipe", b);
    struct itest_resp *r =
        itest_requestf("GET", g_ok.key, NULL,
                       "/customer/data?customer_id=%s&customer_id=%s", a, a);
    itest_assert_error_contains(r, 422, "customer_id");
    itest_resp_free(r);
    r = itest_requestf("DELETE", g_ok.key, NULL,
                       "/customer/data?customer_id=%s&customer_id=%s", a, b);
    itest_assert_error_contains(r, 422, "customer_id");
    itest_resp_free(r);
    itest_expect(NULL, customer_exists(a) && customer_exists(b),
                 "a 422 DELETE must not delete anything");
}

/* --------------------------------------------------------- X-Request-ID */

static void
request_id_generated_when_absent(void **state)
{
    (void)state;
    struct itest_resp *a = itest_request("GET",
                                         "/customer/data?customer_id="
                                         "2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c",
                                         g_ok.key, NULL, NULL);
    struct itest_resp *b = itest_request("GET",
                                         "/customer/data?customer_id="
                                         "2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c",
                                         g_ok.key, NULL, NULL);
    itest_assert_envelope(a, 404);
    itest_assert_envelope(b, 404);
    const char *ia = itest_header(a, "X-Request-ID");
    const char *ib = itest_header(b, "X-Request-ID");
    itest_expect(a, itest_is_request_id(ia),
                 "a generated X-Request-ID must be 1-128 of [A-Za-z0-9._:-]");
    itest_expect(b, strcmp(ia, ib) != 0,
                 "two requests must get two request ids (%s, %s)", ia, ib);
    itest_resp_free(a);
    itest_resp_free(b);
}

static void
check_request_id(const char *method, const char *path, const char *body,
                 long status, const char *sent, bool kept)
{
    char hdr[400];
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", sent);
    if (*sent == '\0')
        snprintf(hdr, sizeof(hdr), "X-Request-ID;"); /* empty header */
    struct itest_resp *r = itest_request(method, path, g_ok.key, body, hdr);
    itest_assert_envelope(r, status);
    const char *got = itest_header(r, "X-Request-ID");
    if (kept)
        itest_expect(r, got && strcmp(got, sent) == 0,
                     "a valid X-Request-ID must be echoed: sent [%s]", sent);
    else
        itest_expect(r,
                     got && strcmp(got, sent) != 0 && itest_is_request_id(got),
                     "an invalid X-Request-ID must be replaced by a valid "
                     "one: sent [%s], got [%s]",
                     sent, got ? got : "<none>");
    itest_resp_free(r);
}

static void
request_id_kept_when_valid_replaced_otherwise(void **state)
{
    (void)state;
    char unique[96];
    itest_unique(unique, sizeof(unique), "rid");
    char max[129], over[130];
    memset(max, 'a', 128);
    max[128] = '\0';
    memset(over, 'b', 129);
    over[129] = '\0';

    char id[37], get[128], body[160];
    itest_make_customer(g_ok.key, "pipe", id);
    snprintf(get, sizeof(get), "/customer/data?customer_id=%s", id);
    char nf[37], nfpath[128];
    itest_random_uuid(nf);
    snprintf(nfpath, sizeof(nfpath), "/customer/data?customer_id=%s", nf);

    /* Valid ids, echoed on success and on every kind of error. */
    check_request_id("GET", get, NULL, 200, unique, true);
    check_request_id("GET", get, NULL, 200, "Az09._:-", true);
    check_request_id("GET", get, NULL, 200, max, true);
    check_request_id("GET", nfpath, NULL, 404, unique, true);
    check_request_id("GET", "/nope", NULL, 404, unique, true);
    check_request_id("PUT", "/customer/data", NULL, 405, unique, true);
    check_request_id("POST", "/customer/data", "{{", 400, unique, true);
    check_request_id("POST", "/customer/data", "{}", 422, unique, true);
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", unique);
    check_request_id("POST", "/customer/data", body, 201, unique, true);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"ACTIVE\"}", id);
    check_request_id("PATCH", "/customer/change-status", body, 409, unique,
                     true);

    /* Invalid ones are replaced. */
    check_request_id("GET", get, NULL, 200, over, false);
    check_request_id("GET", get, NULL, 200, "has space", false);
    check_request_id("GET", get, NULL, 200, "semi;colon", false);
    check_request_id("GET", get, NULL, 200, "slash/ed", false);
    check_request_id("GET", get, NULL, 200, "\xc3\xa9t\xc3\xa9", false);
    check_request_id("GET", get, NULL, 200, "", false);
    check_request_id("POST", "/customer/data", "{}", 422, "bad id!", false);
}

static void
request_id_from_worker_401(void **state)
{
    (void)state;
    char random_key[64], unique[96], hdr[160];
    itest_random_key(random_key);
    itest_unique(unique, sizeof(unique), "rid401");
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", unique);
    struct itest_resp *r =
        itest_request("GET", "/customer/data", random_key, NULL, hdr);
    itest_assert_envelope(r, 401);
    itest_expect(r, strcmp(itest_header(r, "X-Request-ID"), unique) == 0,
                 "the app's 401 must echo the client's X-Request-ID");
    itest_resp_free(r);
}

/* ---------------------------------------------- state changes take effect */

static long
status_of(const char *key, const char *path)
{
    struct itest_resp *r = itest_request("GET", path, key, NULL, NULL);
    long st = r->status;
    itest_resp_free(r);
    return st;
}

/*
 * Workers may cache a key's verdict, but a deactivated key or consumer stops
 * working within 5 s (docs/API.md §4.1), an expired key too, and a reactivated
 * consumer works again. All four change at t0 (the expiry about then); after
 * a bounded 6 s window every request must show the new state.
 */
static void
key_and_consumer_changes_take_effect_within_5s(void **state)
{
    (void)state;
    struct itest_consumer c_off, k_off, k_exp, c_on;
    itest_consumer_create(&c_off, "ACTIVE", "active", "1 day");
    itest_consumer_create(&k_off, "ACTIVE", "active", "1 day");
    itest_consumer_create(&k_exp, "ACTIVE", "active", "1 second");
    itest_consumer_create(&c_on, "DEACTIVATED", "active", "1 day");
    char id[37], path[128];
    itest_random_uuid(id);
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", id);
    /* Warm every worker's cache with the old verdicts. */
    for (int i = 0; i < 12; i++) {
        itest_expect(NULL, status_of(c_off.key, path) == 404, "c_off warm");
        itest_expect(NULL, status_of(k_off.key, path) == 404, "k_off warm");
        itest_expect(NULL, status_of(c_on.key, path) == 403, "c_on warm");
    }
    long st = status_of(k_exp.key, path);
    itest_expect(NULL, st == 404 || st == 401, "k_exp warm: %ld", st);

    PQclear(itest_sql("UPDATE consumers SET status = 'DEACTIVATED', "
                      "updated_at = now() WHERE consumer_id = $1",
                      c_off.id));
    PQclear(itest_sql("UPDATE consumer_api_keys SET api_key_status = "
                      "'deactivated', updated_at = now() WHERE consumer_id = "
                      "$1",
                      k_off.id));
    PQclear(itest_sql("UPDATE consumers SET status = 'ACTIVE', updated_at = "
                      "now() WHERE consumer_id = $1",
                      c_on.id));
    double t0 = itest_now();
    /* In the window either verdict is allowed, nothing else. */
    while (itest_now() - t0 < 6.0) {
        st = status_of(c_off.key, path);
        itest_expect(NULL, st == 404 || st == 403, "c_off in window: %ld", st);
        st = status_of(k_off.key, path);
        itest_expect(NULL, st == 404 || st == 401, "k_off in window: %ld", st);
        st = status_of(k_exp.key, path);
        itest_expect(NULL, st == 404 || st == 401, "k_exp in window: %ld", st);
        st = status_of(c_on.key, path);
        itest_expect(NULL, st == 403 || st == 404, "c_on in window: %ld", st);
        itest_sleep_ms(100);
    }
    for (int i = 0; i < 12; i++) {
        struct itest_resp *r =
            itest_request("GET", path, c_off.key, NULL, NULL);
        itest_assert_error(r, 403, NULL);
        itest_resp_free(r);
        r = itest_request("GET", path, k_off.key, NULL, NULL);
        itest_assert_error(r, 401, NULL);
        itest_resp_free(r);
        r = itest_request("GET", path, k_exp.key, NULL, NULL);
        itest_assert_error(r, 401, "API key expired");
        itest_resp_free(r);
        r = itest_request("GET", path, c_on.key, NULL, NULL);
        itest_assert_error(r, 404, NULL); /* authorised again: a missing id */
        itest_resp_free(r);
    }
}

/* ----------------------------------------------------------------- logs */

/* Lines of text containing needle: how many, and the last one (owned). */
static int
lines_with(const char *text, const char *needle, char **last)
{
    int n = 0;
    *last = NULL;
    for (const char *p = strstr(text, needle); p != NULL;
         p = strstr(p + 1, needle)) {
        const char *b = p, *e = p;
        while (b > text && b[-1] != '\n')
            b--;
        while (*e && *e != '\n')
            e++;
        n++;
        free(*last);
        *last = strndup(b, (size_t)(e - b));
        p = e - 1;
        if (*e == '\0')
            break;
    }
    return n;
}

static void
one_log_line_per_request_and_never_a_key(void **state)
{
    (void)state;
    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    char app_log[4096];
    snprintf(app_log, sizeof(app_log), "%s/logs/app.log", run ? run : "");
    char *probe = run ? itest_slurp(app_log, NULL) : NULL;
    if (probe == NULL) {
        print_message("      skipped: no app log at %s\n", app_log);
        skip();
    }
    free(probe);

    char rid[3][96], hdr[128], secret_q[64], secret_k[64], m[96], body[160];
    for (int i = 0; i < 3; i++)
        itest_unique(rid[i], sizeof(rid[i]), "logline");
    itest_random_key(secret_q);
    itest_random_key(secret_k);
    itest_unique(m, sizeof(m), "logged");
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", m);

    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid[0]);
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_ok.key, body, hdr);
    itest_assert_envelope(r, 201);
    itest_resp_free(r);
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid[1]);
    char path[256];
    snprintf(path, sizeof(path),
             "/customer/data?customer_id=2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c"
             "&api_key=%s",
             secret_q);
    r = itest_request("GET", path, g_ok.key, NULL, hdr);
    itest_assert_error_contains(r, 422, "api_key");
    itest_resp_free(r);
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid[2]);
    r = itest_request("GET", "/customer/data", secret_k, NULL, hdr);
    itest_assert_envelope(r, 401);
    itest_resp_free(r);

    /* The lines are written as the requests finish; allow a moment. */
    char *text = NULL;
    double deadline = itest_now() + 2.0;
    for (;;) {
        free(text);
        text = itest_slurp(app_log, NULL);
        if (text && strstr(text, rid[0]) && strstr(text, rid[1]) &&
            strstr(text, rid[2]))
            break;
        if (itest_now() > deadline)
            break;
        itest_sleep_ms(20);
    }
    static const char *const want[3][3] = {
        {"POST", "/customer/data", "201"},
        {"GET", "/customer/data", "422"},
        {"GET", "/customer/data", "401"},
    };
    for (int i = 0; i < 3; i++) {
        char *line;
        int n = lines_with(text, rid[i], &line);
        itest_expect(NULL, n == 1,
                     "the app log must have exactly one line for request %s "
                     "(has %d)",
                     rid[i], n);
        for (int j = 0; j < 3; j++)
            itest_expect(NULL, strstr(line, want[i][j]) != NULL,
                         "the log line of %s must name %s: %s", rid[i],
                         want[i][j], line);
        free(line);
    }
    free(text);

    /* No key, valid or not, in any log the service writes. */
    static const char *const logs[] = {"app.log", "nginx-access.log",
                                       "nginx-error.log"};
    const char *keys[] = {g_ok.key, secret_q, secret_k};
    for (size_t i = 0; i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/logs/%s", run, logs[i]);
        char *t = itest_slurp(p, NULL);
        if (t == NULL)
            continue;
        for (size_t k = 0; k < 3; k++)
            itest_expect(NULL, strstr(t, keys[k]) == NULL,
                         "%s contains an API key (%.11s…)", logs[i], keys[k]);
        free(t);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_path_is_404),
        cmocka_unit_test(known_path_other_method_is_405_with_allow),
        cmocka_unit_test(health_other_method_is_405),
        cmocka_unit_test(method_check_comes_before_key_and_body),
        cmocka_unit_test(working_key_is_accepted),
        cmocka_unit_test(unknown_key_is_401),
        cmocka_unit_test(expired_key_is_401),
        cmocka_unit_test(deactivated_key_is_401),
        cmocka_unit_test(deactivated_consumer_is_403),
        cmocka_unit_test(key_check_comes_before_body_and_validation),
        cmocka_unit_test(malformed_json_is_400),
        cmocka_unit_test(non_object_json_is_400),
        cmocka_unit_test(empty_post_or_patch_body_is_400),
        cmocka_unit_test(duplicate_keys_are_400),
        cmocka_unit_test(json_is_parsed_whatever_the_content_type),
        cmocka_unit_test(deeply_nested_json_is_rejected_without_harm),
        cmocka_unit_test(thousands_of_unknown_fields_are_one_422),
        cmocka_unit_test(chunked_request_body_is_read),
        cmocka_unit_test(several_problems_are_joined_unknown_first),
        cmocka_unit_test(get_query_string_wins_over_body),
        cmocka_unit_test(get_body_is_read_when_query_empty),
        cmocka_unit_test(delete_with_empty_body_reads_query),
        cmocka_unit_test(unknown_query_parameter_is_422),
        cmocka_unit_test(repeated_scalar_parameter_is_422),
        cmocka_unit_test(request_id_generated_when_absent),
        cmocka_unit_test(request_id_kept_when_valid_replaced_otherwise),
        cmocka_unit_test(request_id_from_worker_401),
        cmocka_unit_test(one_log_line_per_request_and_never_a_key),
        cmocka_unit_test(key_and_consumer_changes_take_effect_within_5s),
    };
    return itest_exit(cmocka_run_group_tests_name("pipeline", tests, setup,
                                                  itest_group_teardown));
}
