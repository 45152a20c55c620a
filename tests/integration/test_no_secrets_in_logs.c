/*
 * tests/integration/test_no_secrets_in_logs.c — API keys never reach a log
 * (issue 4; docs/API.md §4.6). A key made through the API
 * travels in X-API-Key and in query strings
 * (GET /consumer/api-key?api_key=<key>), in requests that succeed and in
 * requests that fail everywhere they can: 401 (unknown, missing, deactivated
 * key), 404 (unknown path), 405, 413 and 400 (from nginx), 422 (repeated or
 * misplaced key), 409, and 502 (no FastCGI pool, nginx's error path). Then
 * every file under $FINTEGRATE_RUN_DIR/logs (nginx access and error logs,
 * app.log, postgresql.log, RabbitMQ's, and the test runner's transcripts) is
 * searched for the key text and for its SHA-256 hex: neither may appear.
 */
#include "itest.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct api_consumer {
    char id[37];
    char name[64];
    char key[64];
};

static bool g_app_stopped;

/* ------------------------------------------------------------- helpers */

static struct itest_resp *
admin(const char *method, const char *path, const char *body)
{
    return itest_request(method, path, itest_admin_key(), body, NULL);
}

static void
api_consumer_with_key(struct api_consumer *c)
{
    memset(c, 0, sizeof(*c));
    itest_unique(c->name, sizeof(c->name), "nolog");
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", c->name));
    struct itest_resp *r = admin("POST", "/consumer/data", body);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    snprintf(c->id, sizeof(c->id), "%s", itest_jstr(d, "consumer_id"));
    itest_resp_free(r);
    char kb[96];
    snprintf(kb, sizeof(kb), "{\"consumer_id\":\"%s\"}", c->id);
    r = admin("POST", "/consumer/api-key", kb);
    d = itest_assert_envelope(r, 201);
    snprintf(c->key, sizeof(c->key), "%s", itest_jstr(d, "api_key"));
    itest_resp_free(r);
}

/* Request ids of this binary's requests, to prove the logs saw them. */
static char g_rids[64][96];
static int g_nrids;

/* Sends one request with a fresh X-Request-ID and expects status. */
static void
send_expect(const char *method, const char *path, const char *key,
            const char *body, long status)
{
    char hdr[128];
    char *rid = g_rids[g_nrids < 63 ? g_nrids++ : 63];
    itest_unique(rid, 96, "nolog");
    snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid);
    struct itest_resp *r = itest_request(method, path, key, body, hdr);
    itest_assert_envelope(r, status);
    itest_resp_free(r);
}

static int
app_start_teardown(void **state)
{
    (void)state;
    if (g_app_stopped) {
        if (itest_stack("app-start") != 0)
            fprintf(stderr, "test_no_secrets_in_logs: COULD NOT RESTART the "
                            "FastCGI app!\n");
        g_app_stopped = false;
    }
    return 0;
}

/* --------------------------------------------------------- the search */

struct secret {
    const char *text;
    const char *label;
    bool service_logs_only; /* skip logs/tests (the runner's transcripts) */
};

struct search {
    const struct secret *secrets;
    int n;
    int files;
    size_t bytes;
    char found[4400]; /* first finding, "" when none */
};

static void
search_dir(struct search *s, const char *dir, bool in_tests)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            search_dir(s, path, in_tests || strcmp(e->d_name, "tests") == 0);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        size_t len = 0;
        char *text = itest_slurp(path, &len);
        if (text == NULL)
            continue;
        s->files++;
        s->bytes += len;
        for (int i = 0; i < s->n && s->found[0] == '\0'; i++) {
            if (in_tests && s->secrets[i].service_logs_only)
                continue;
            if (memmem(text, len, s->secrets[i].text,
                       strlen(s->secrets[i].text)) != NULL)
                snprintf(s->found, sizeof(s->found), "%s holds %s", path,
                         s->secrets[i].label);
        }
        free(text);
    }
    closedir(d);
}

/* ----------------------------------------------------------------- test */

static void
keys_and_hashes_are_in_no_log_file(void **state)
{
    (void)state;
    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    if (run == NULL)
        itest_failf("FINTEGRATE_RUN_DIR is not set: cannot find the logs");
    char logs[2048];
    snprintf(logs, sizeof(logs), "%s/logs", run);

    struct api_consumer c;
    api_consumer_with_key(&c);
    char unknown[64], missing[37], path[512];
    itest_random_key(unknown);
    itest_random_uuid(missing);

    /* Header only: success and not found. */
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", missing);
    send_expect("GET", path, c.key, NULL, 404);
    char name[96], body[256];
    itest_unique(name, sizeof(name), "nolog-customer");
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    send_expect("POST", "/customer/data", c.key, body, 201);

    /* In a query string: self, the administrator, the unknown caller. */
    char q[160];
    snprintf(q, sizeof(q), "/consumer/api-key?api_key=%s", c.key);
    send_expect("GET", q, c.key, NULL, 200);
    send_expect("GET", q, itest_admin_key(), NULL, 200);
    send_expect("GET", q, unknown, NULL, 401);
    send_expect("GET", q, NULL, NULL, 401); /* nginx: missing key */
    char qa[160];
    snprintf(qa, sizeof(qa), "/consumer/api-key?api_key=%s", itest_admin_key());
    send_expect("GET", qa, itest_admin_key(), NULL, 200);
    char qu[160];
    snprintf(qu, sizeof(qu), "/consumer/api-key?api_key=%s", unknown);
    send_expect("GET", qu, itest_admin_key(), NULL, 404);

    /* Failures on the way: unknown path, method, repeated and misplaced
     * key (422), body too large (nginx 413). */
    snprintf(path, sizeof(path), "/no/such/path?api_key=%s", c.key);
    send_expect("GET", path, c.key, NULL, 404);
    send_expect("PUT", q, c.key, "{}", 405);
    snprintf(path, sizeof(path), "/consumer/api-key?api_key=%s&api_key=%s",
             c.key, c.key);
    send_expect("GET", path, c.key, NULL, 422);
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", c.key);
    send_expect("GET", path, c.key, NULL, 422);
    snprintf(path, sizeof(path), "/customer/data?api_key=%s", c.key);
    send_expect("GET", path, c.key, NULL, 422);
    size_t big = 70 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    snprintf(path, sizeof(path), "/customer/data?api_key=%s", c.key);
    send_expect("POST", path, c.key, huge, 413);
    free(huge);

    /* A request nginx refuses as malformed (400), key in the line. */
    char raw[512];
    snprintf(raw, sizeof(raw),
             "GET /consumer/api-key?api_key=%s HTTP/1.1\r\nHost: x\r\n"
             "X-API-Key: %s\r\nContent-Length: abc\r\nConnection: close\r\n"
             "\r\n",
             c.key, c.key);
    struct itest_resp *r =
        itest_raw_request(raw, strlen(raw), "malformed with a key", 3000);
    itest_expect(r, r->status == 400, "a bad Content-Length is a 400");
    itest_resp_free(r);

    /* No FastCGI pool: nginx's 502 (its error log quotes request lines). */
    g_app_stopped = true;
    if (itest_stack("app-stop") != 0)
        itest_failf("scripts/stack.sh app-stop failed");
    itest_set_timeout_ms(5000);
    send_expect("GET", q, c.key, NULL, 502);
    snprintf(body, sizeof(body), "{\"api_key\":\"%s\"}", c.key);
    send_expect("POST", "/consumer/deactivate-api-key", itest_admin_key(), body,
                502);
    itest_set_timeout_ms(15000);
    if (itest_stack("app-start") != 0)
        itest_failf("scripts/stack.sh app-start failed");
    g_app_stopped = false;

    /* Deactivation through the body, then the dead key everywhere. */
    send_expect("POST", "/consumer/deactivate-api-key", itest_admin_key(), body,
                200);
    send_expect("POST", "/consumer/deactivate-api-key", itest_admin_key(), body,
                409);
    double deadline = itest_now() + 5.0;
    for (;;) {
        r = itest_request("GET", q, c.key, NULL, NULL);
        long st = r->status;
        itest_resp_free(r);
        if (st == 401)
            break;
        if (itest_now() > deadline)
            itest_failf("the deactivated key still answers %ld after 5 s", st);
        itest_sleep_ms(50);
    }
    send_expect("GET", q, c.key, NULL, 401);
    send_expect("GET", q, itest_admin_key(), NULL, 200);

    /* Every line is written when its request ends; wait for ours. */
    char app_log[4096], access_log[4096];
    snprintf(app_log, sizeof(app_log), "%s/app.log", logs);
    snprintf(access_log, sizeof(access_log), "%s/nginx-access.log", logs);
    const char *last_rid = g_rids[g_nrids - 1];
    deadline = itest_now() + 3.0;
    for (;;) {
        char *a = itest_slurp(app_log, NULL);
        char *n = itest_slurp(access_log, NULL);
        bool seen = a && n && strstr(a, last_rid) && strstr(n, last_rid);
        free(a);
        free(n);
        if (seen || itest_now() > deadline)
            break;
        itest_sleep_ms(50);
    }
    /* The logs did record these requests (so the search is not vacuous). */
    char *n = itest_slurp(access_log, NULL);
    itest_expect(NULL, n != NULL, "no nginx access log at %s", access_log);
    int logged = 0;
    for (int i = 0; i < g_nrids; i++)
        logged += strstr(n, g_rids[i]) != NULL;
    itest_expect(NULL, logged == g_nrids,
                 "the access log must have a line for each of the %d "
                 "requests (has %d)",
                 g_nrids, logged);
    itest_expect(NULL, strstr(n, "\"GET /consumer/api-key\"") != NULL,
                 "the access log records the path (without its query)");
    free(n);

    char h_key[65], h_unknown[65], h_admin[65];
    itest_key_hash(c.key, h_key);
    itest_key_hash(unknown, h_unknown);
    itest_key_hash(itest_admin_key(), h_admin);
    const struct secret secrets[] = {
        {c.key, "the consumer's key", false},
        {c.key + 3, "the consumer's key (without fk_)", false},
        {h_key, "the SHA-256 of the consumer's key", false},
        {unknown, "the unknown key", false},
        {h_unknown, "the SHA-256 of the unknown key", false},
        /* The runner's transcript of `stack.sh up` prints the admin key
         * on purpose (make run shows a working key): service logs only. */
        {itest_admin_key(), "the administrator's key", true},
        {h_admin, "the SHA-256 of the administrator's key", true},
    };
    struct search s = {.secrets = secrets,
                       .n = (int)(sizeof(secrets) / sizeof(secrets[0]))};
    search_dir(&s, logs, false);
    print_message("      searched %d log files, %zu bytes\n", s.files, s.bytes);
    itest_expect(NULL, s.files >= 4,
                 "expected the nginx, app and PostgreSQL logs under %s "
                 "(found %d files)",
                 logs, s.files);
    if (s.found[0] != '\0')
        itest_failf("a log holds a secret: %s", s.found);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(keys_and_hashes_are_in_no_log_file,
                                  app_start_teardown),
    };
    return cmocka_run_group_tests_name("no_secrets_in_logs", tests,
                                       itest_group_setup, itest_group_teardown);
}
