/*
 * tests/integration/test_idempotency.c — safe retries (issue 13, docs/API.md
 * §6, "Safe retries: Idempotency-Key") through nginx against the
 * real PostgreSQL:
 *   * a replay returns the same status and body bytes with
 *     "Idempotent-Replayed: true" and changes nothing (rows and outbox
 *     events counted), also after the data changed; 4xx answers replay too;
 *   * the same key for another body, path or method is 422;
 *   * keys are per consumer (and case-sensitive);
 *   * two concurrent calls with one key make one customer, the second
 *     waits and replays; a key held past the lock timeout is 409;
 *   * the worker SIGKILLed between COMMIT and the answer (test hook
 *     FINTEGRATE_TEST_KILL_AFTER_COMMIT_KEY): the retry gets the original
 *     answer, with one customer and one event;
 *   * a key older than 24 h is forgotten, and the relay deletes it;
 *   * a 5xx is never stored; a bad header is 422; POST /consumer/api-key
 *     refuses the header; GET ignores it; calls without it are unchanged;
 *   * a re-drive (stored after its own transactions) replays too.
 */
#include "itest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct itest_consumer g_a, g_b;
static bool g_poison_installed;
static bool g_pool_changed;

#define KILL_ENV "FINTEGRATE_TEST_KILL_AFTER_COMMIT_KEY"

static int
setup(void **state)
{
    if (itest_group_setup_consumers(state, &g_a, &g_b) < 0)
        return -1;
    /* Stopped from outside while the pool runs with the test hook: give it
     * its environment back. */
    char cmd[8192] = "";
    itest_sh_env_cmd(cmd, sizeof cmd, KILL_ENV, NULL);
    itest_on_signal_restart_app(cmd);
    return 0;
}

static int
teardown(void **state)
{
    int rc = 0;
    if (g_poison_installed) {
        static const char *const ddl[] = {
            "DROP TRIGGER IF EXISTS itest_idem_poison ON customers",
            "DROP FUNCTION IF EXISTS itest_idem_poison()",
        };
        itest_sql_try_each(ddl, sizeof ddl / sizeof ddl[0]);
    }
    if (g_pool_changed) {
        unsetenv(KILL_ENV);
        if (itest_app_restart() != 0)
            rc = -1;
    }
    itest_on_signal_run(NULL);
    if (itest_group_teardown(state) != 0)
        rc = -1;
    return rc;
}

/* ------------------------------------------------------------- helpers */

/* A key unique to this run: "<prefix>-<pid>-<time>-<n>". */
static void
new_key(char out[96], const char *prefix)
{
    itest_unique(out, 96, prefix);
}

/* The "Idempotency-Key: <key>" header line (out holds 300 bytes). */
static const char *
key_header(char out[300], const char *key)
{
    snprintf(out, 300, "Idempotency-Key: %s", key);
    return out;
}

static struct itest_resp *
keyed(const char *method, const char *path, const char *api_key,
      const char *body, const char *key)
{
    char h[300];
    return itest_request(method, path, api_key, body,
                         key ? key_header(h, key) : NULL);
}

/* {"name": name} with optional status, in the given key order. */
static char *
create_body(const char *name, bool status_first)
{
    return itest_json_text(
        status_first ? json_pack("{s:s, s:s}", "status", "ACTIVE", "name", name)
                     : json_pack("{s:s}", "name", name));
}

static long
count_named(const char *name)
{
    return itest_sql_long("SELECT count(*) FROM customers WHERE name = $1",
                          name);
}

static long
count_key_rows(const char *consumer_id, const char *key)
{
    return itest_sql_long("SELECT count(*) FROM idempotency_keys "
                          "WHERE consumer_id = $1 AND key = $2",
                          consumer_id, key);
}

static long
count_events_named(const char *name)
{
    return itest_sql_long("SELECT count(*) FROM customer_events e "
                          "JOIN customers c USING (customer_id) "
                          "WHERE c.name = $1",
                          name);
}

/* The response's data.customer_id (borrowed). */
static const char *
resp_customer_id(const struct itest_resp *r)
{
    return itest_jstr(itest_data(r), "customer_id");
}

static bool
is_replayed(const struct itest_resp *r)
{
    const char *v = itest_header(r, "Idempotent-Replayed");
    return v != NULL && strcmp(v, "true") == 0;
}

/* r2 is the replay of r1: same status, same body bytes, the header. */
static void
expect_replay_of(const struct itest_resp *r2, const struct itest_resp *r1)
{
    itest_expect(r2, r2->status == r1->status,
                 "a replay must have the original status %ld", r1->status);
    itest_expect(r2,
                 r2->body_len == r1->body_len &&
                     memcmp(r2->body, r1->body, r1->body_len) == 0,
                 "a replay must have the original body byte for byte: %s",
                 r1->body);
    itest_expect(r2, is_replayed(r2),
                 "a replay must carry Idempotent-Replayed: true");
}

static void
expect_not_replayed(const struct itest_resp *r)
{
    itest_expect(r, itest_header(r, "Idempotent-Replayed") == NULL,
                 "a first answer must not carry Idempotent-Replayed");
}

/* ---------------------------------------------------------------- tests */

static void
replay_returns_the_same_answer_and_creates_nothing(void **state)
{
    (void)state;
    char key[96], name[96];
    new_key(key, "idem-replay");
    itest_unique(name, sizeof name, "idem-replay");
    char *body1 = create_body(name, false);
    char *body2 =
        itest_json_text(json_pack("{s:s}", "name", name)); /* the same JSON */
    /* whitespace and key order aside: the same JSON */
    char *body3 = NULL;
    {
        size_t n = strlen(name) + 64;
        body3 = malloc(n);
        snprintf(body3, n, "{ \"name\" :\n \"%s\" }", name);
    }

    struct itest_resp *r1 =
        keyed("POST", "/customer/data", g_a.key, body1, key);
    itest_assert_envelope(r1, 201);
    expect_not_replayed(r1);
    const char *id = resp_customer_id(r1);
    itest_expect(r1, id != NULL && itest_is_uuid(id), "a customer_id");
    itest_expect(r1, count_named(name) == 1, "one customer");
    itest_expect(r1, count_events_named(name) == 1, "one event");

    struct itest_resp *r2 =
        keyed("POST", "/customer/data", g_a.key, body2, key);
    expect_replay_of(r2, r1);
    struct itest_resp *r3 =
        keyed("POST", "/customer/data", g_a.key, body3, key);
    expect_replay_of(r3, r1);
    itest_expect(r3, count_named(name) == 1, "still one customer");
    itest_expect(r3, count_events_named(name) == 1, "still one event");
    itest_expect(r3, count_key_rows(g_a.id, key) == 1, "one stored answer");

    /* The data changes; the replay still answers what the first call got
     * (the key is looked at before anything else). */
    char cs[200];
    snprintf(cs, sizeof cs, "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}",
             id);
    struct itest_resp *c =
        itest_request("PATCH", "/customer/change-status", g_a.key, cs, NULL);
    itest_assert_envelope(c, 200);
    struct itest_resp *r4 =
        keyed("POST", "/customer/data", g_a.key, body1, key);
    expect_replay_of(r4, r1);
    itest_assert_jstr(r4, itest_data(r4), "status", "ACTIVE");

    itest_resp_free(c);
    itest_resp_free(r1);
    itest_resp_free(r2);
    itest_resp_free(r3);
    itest_resp_free(r4);
    free(body1);
    free(body2);
    free(body3);
}

static void
replay_of_change_status_delete_and_4xx(void **state)
{
    (void)state;
    char id[37], key[96], key2[96], key3[96], body[200];
    itest_make_customer(g_a.key, "idem-patch", id);
    long events0 = itest_count_events(id);

    /* PATCH: one change, one event, then replays. */
    new_key(key, "idem-patch");
    snprintf(body, sizeof body,
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", id);
    struct itest_resp *p1 =
        keyed("PATCH", "/customer/change-status", g_a.key, body, key);
    itest_assert_envelope(p1, 200);
    expect_not_replayed(p1);
    struct itest_resp *p2 =
        keyed("PATCH", "/customer/change-status", g_a.key, body, key);
    expect_replay_of(p2, p1);
    itest_expect(p2, itest_count_events(id) == events0 + 1,
                 "one status change event, not two");

    /* A 4xx is stored too: 409 "already INACTIVE" replays as it was, even
     * once the customer is ACTIVE again. */
    new_key(key2, "idem-409");
    struct itest_resp *q1 =
        keyed("PATCH", "/customer/change-status", g_a.key, body, key2);
    itest_assert_error_contains(q1, 409, "is already INACTIVE");
    char back[200];
    snprintf(back, sizeof back,
             "{\"customer_id\":\"%s\",\"status\":\"ACTIVE\"}", id);
    struct itest_resp *b =
        itest_request("PATCH", "/customer/change-status", g_a.key, back, NULL);
    itest_assert_envelope(b, 200);
    struct itest_resp *q2 =
        keyed("PATCH", "/customer/change-status", g_a.key, body, key2);
    expect_replay_of(q2, q1);
    itest_expect(q2, itest_count_events(id) == events0 + 2,
                 "the 409 replay changed nothing");

    /* DELETE: the replay answers 200 again, not 404. */
    new_key(key3, "idem-delete");
    char del[100];
    snprintf(del, sizeof del, "{\"customer_id\":\"%s\"}", id);
    struct itest_resp *d1 =
        keyed("DELETE", "/customer/data", g_a.key, del, key3);
    itest_assert_envelope(d1, 200);
    struct itest_resp *d2 =
        keyed("DELETE", "/customer/data", g_a.key, del, key3);
    expect_replay_of(d2, d1);
    itest_expect(d2, itest_count_events(id) == events0 + 3,
                 "one deletion event");

    /* A validation 422 is stored and replayed as well. */
    char key4[96];
    new_key(key4, "idem-422");
    struct itest_resp *v1 =
        keyed("POST", "/customer/data", g_a.key, "{\"name\":\"\"}", key4);
    itest_assert_envelope(v1, 422);
    struct itest_resp *v2 =
        keyed("POST", "/customer/data", g_a.key, "{\"name\":\"\"}", key4);
    expect_replay_of(v2, v1);

    itest_resp_free(p1);
    itest_resp_free(p2);
    itest_resp_free(q1);
    itest_resp_free(b);
    itest_resp_free(q2);
    itest_resp_free(d1);
    itest_resp_free(d2);
    itest_resp_free(v1);
    itest_resp_free(v2);
}

static void
same_key_other_request_is_422(void **state)
{
    (void)state;
    char key[96], name[96], other[96];
    new_key(key, "idem-other");
    itest_unique(name, sizeof name, "idem-other");
    itest_unique(other, sizeof other, "idem-other");
    char *body = create_body(name, false);
    char *body2 = create_body(other, false);
    char want[300];
    snprintf(want, sizeof want,
             "Idempotency-Key \"%s\" was already used for a different request",
             key);

    struct itest_resp *r1 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_envelope(r1, 201);
    long events = itest_sql_long0("SELECT count(*) FROM customer_events");

    struct itest_resp *r2 =
        keyed("POST", "/customer/data", g_a.key, body2, key);
    itest_assert_error(r2, 422, want);
    expect_not_replayed(r2);
    itest_expect(r2, count_named(other) == 0, "nothing created");
    /* another path and method with the key */
    char tag[200];
    snprintf(tag, sizeof tag,
             "{\"customer_id\":\"%s\",\"tag_keys\":[\"k\"],"
             "\"tag_values\":[\"v\"]}",
             resp_customer_id(r1));
    struct itest_resp *r3 = keyed("POST", "/customer/tag", g_a.key, tag, key);
    itest_assert_error(r3, 422, want);
    char del[100];
    snprintf(del, sizeof del, "{\"customer_id\":\"%s\"}", resp_customer_id(r1));
    struct itest_resp *r4 =
        keyed("DELETE", "/customer/data", g_a.key, del, key);
    itest_assert_error(r4, 422, want);
    /* the same body with a query string is another request */
    struct itest_resp *r5 =
        keyed("POST", "/customer/data?x=1", g_a.key, body, key);
    itest_assert_error(r5, 422, want);
    itest_expect(
        r5, itest_sql_long0("SELECT count(*) FROM customer_events") == events,
        "no event written by the refused calls");
    itest_expect(r5, count_named(name) == 1, "the customer is still there");

    itest_resp_free(r1);
    itest_resp_free(r2);
    itest_resp_free(r3);
    itest_resp_free(r4);
    itest_resp_free(r5);
    free(body);
    free(body2);
}

static void
keys_are_per_consumer_and_case_sensitive(void **state)
{
    (void)state;
    char key[96], name[96];
    new_key(key, "idem-scope");
    itest_unique(name, sizeof name, "idem-scope");
    char *body = create_body(name, false);

    struct itest_resp *a = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_envelope(a, 201);
    struct itest_resp *b = keyed("POST", "/customer/data", g_b.key, body, key);
    itest_assert_envelope(b, 201);
    expect_not_replayed(b);
    itest_expect(b, strcmp(resp_customer_id(a), resp_customer_id(b)) != 0,
                 "another consumer's call with the key is its own");
    /* the upper-cased key is another key */
    char upper[96];
    snprintf(upper, sizeof upper, "%s", key);
    itest_upper(upper);
    struct itest_resp *c =
        keyed("POST", "/customer/data", g_a.key, body, upper);
    itest_assert_envelope(c, 201);
    expect_not_replayed(c);
    itest_expect(c, count_named(name) == 3, "three customers");
    /* and each consumer's replay is its own */
    struct itest_resp *b2 = keyed("POST", "/customer/data", g_b.key, body, key);
    expect_replay_of(b2, b);

    itest_resp_free(a);
    itest_resp_free(b);
    itest_resp_free(c);
    itest_resp_free(b2);
    free(body);
}

/* ---- concurrency ---------------------------------------------------------
 */

struct call {
    const char *body;
    const char *key;
    struct itest_resp *resp;
};

static void *
call_thread(void *arg)
{
    struct call *c = arg;
    c->resp = keyed("POST", "/customer/data", g_a.key, c->body, c->key);
    itest_thread_done();
    return NULL;
}

/* Backends of the service waiting on a lock. */
static long
waiting_backends(void)
{
    return itest_sql_long0("SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name = 'fintegrate-fcgi' "
                           "AND wait_event_type = 'Lock'");
}

static PGresult *
must_exec(PGconn *conn, const char *sql, const char *const *params, int n)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        itest_failf("%s: %s", sql, PQresultErrorMessage(res));
    return res;
}

static void
concurrent_calls_create_one_customer(void **state)
{
    (void)state;
    char key[96], name[96];
    new_key(key, "idem-race");
    itest_unique(name, sizeof name, "idem-race");
    char *body = create_body(name, false);

    /* The test holds customers against inserts, so the first call stops
     * after claiming the key and the second one waits on the key. */
    PGconn *hold = itest_pg_connect();
    PQclear(must_exec(hold, "BEGIN", NULL, 0));
    PQclear(must_exec(hold, "LOCK TABLE customers IN SHARE MODE", NULL, 0));

    struct call calls[2] = {{body, key, NULL}, {body, key, NULL}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, call_thread, &calls[i]) != 0)
            itest_failf("pthread_create failed");
    /* Both wait (the lock timeout is 5 s: release well before). */
    double t0 = itest_now();
    long waiting = 0;
    while (itest_now() - t0 < 3.0 && (waiting = waiting_backends()) < 2)
        itest_sleep_ms(50);
    PQclear(must_exec(hold, "COMMIT", NULL, 0));
    PQfinish(hold);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    if (waiting < 2)
        fprintf(stderr,
                "test_idempotency: note: only %ld call(s) seen waiting "
                "(the machine is slow); the outcome is checked anyway\n",
                waiting);

    struct itest_resp *r0 = calls[0].resp, *r1 = calls[1].resp;
    itest_assert_envelope(r0, 201);
    itest_assert_envelope(r1, 201);
    itest_expect(r1, strcmp(resp_customer_id(r0), resp_customer_id(r1)) == 0,
                 "both calls must answer the same customer");
    itest_expect(r1, is_replayed(r0) != is_replayed(r1),
                 "exactly one of the two answers is the replay");
    struct itest_resp *first = is_replayed(r0) ? r1 : r0;
    struct itest_resp *second = is_replayed(r0) ? r0 : r1;
    expect_replay_of(second, first);
    itest_expect(r1, count_named(name) == 1, "one customer");
    itest_expect(r1, count_events_named(name) == 1, "one event");

    itest_resp_free(r0);
    itest_resp_free(r1);
    free(body);
}

static void
key_held_past_the_lock_timeout_is_409(void **state)
{
    (void)state;
    char key[96], name[96];
    new_key(key, "idem-held");
    itest_unique(name, sizeof name, "idem-held");
    char *body = create_body(name, false);

    /* Another transaction holds the key's row, uncommitted. */
    PGconn *hold = itest_pg_connect();
    PQclear(must_exec(hold, "BEGIN", NULL, 0));
    const char *params[] = {g_a.id, key};
    PQclear(must_exec(hold,
                      "INSERT INTO idempotency_keys (consumer_id, key, "
                      "fingerprint) VALUES ($1, $2, sha256(''::bytea))",
                      params, 2));

    struct itest_resp *r = keyed("POST", "/customer/data", g_a.key, body, key);
    PQclear(must_exec(hold, "ROLLBACK", NULL, 0));
    PQfinish(hold);
    char want[200];
    snprintf(want, sizeof want,
             "Idempotency-Key \"%s\" is still being processed", key);
    itest_assert_error(r, 409, want);
    itest_expect(r, count_named(name) == 0, "nothing created");

    /* Once it is free, the call goes through. */
    struct itest_resp *r2 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_envelope(r2, 201);
    expect_not_replayed(r2);

    itest_resp_free(r);
    itest_resp_free(r2);
    free(body);
}

/* ---- kill -9 between COMMIT and the answer -------------------------------
 */

static void
kill_between_commit_and_answer_then_retry(void **state)
{
    (void)state;
    char key[96], name[96];
    new_key(key, "idem-kill");
    itest_unique(name, sizeof name, "idem-kill");
    char *body = create_body(name, false);

    g_pool_changed = true;
    setenv(KILL_ENV, key, 1);
    int rc = itest_app_restart();
    unsetenv(KILL_ENV);
    if (rc != 0)
        itest_failf("could not restart the pool with " KILL_ENV);

    struct itest_resp *r1 = keyed("POST", "/customer/data", g_a.key, body, key);
    /* The worker died after COMMIT: nginx answers 502, the client cannot
     * tell whether the customer exists... */
    itest_assert_envelope(r1, 502);
    itest_expect(r1, count_named(name) == 1, "the change was committed");
    itest_expect(r1, count_key_rows(g_a.id, key) == 1,
                 "and its answer with it");

    /* ...so it retries with the same key and gets the original answer. */
    struct itest_resp *r2 = keyed("POST", "/customer/data", g_a.key, body, key);
    json_t *d = itest_assert_envelope(r2, 201);
    itest_expect(r2, is_replayed(r2), "the retry is a replay");
    char *id = itest_sql_value("SELECT customer_id::text FROM customers "
                               "WHERE name = $1",
                               name);
    itest_assert_jstr(r2, d, "customer_id", id);
    itest_assert_jstr(r2, d, "name", name);
    char *stored = itest_sql_value("SELECT body FROM idempotency_keys WHERE "
                                   "consumer_id = $1 AND key = $2",
                                   g_a.id, key);
    itest_expect(r2,
                 stored != NULL && strlen(stored) == r2->body_len &&
                     memcmp(stored, r2->body, r2->body_len) == 0,
                 "the answer stored at COMMIT, byte for byte");
    struct itest_resp *r3 = keyed("POST", "/customer/data", g_a.key, body, key);
    expect_replay_of(r3, r2);
    itest_expect(r3, count_named(name) == 1, "one customer");
    itest_expect(r3, count_events_named(name) == 1, "one event");
    itest_expect(r3,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "customer_id = $1 AND event_type = "
                                "'customer_creation'",
                                id) == 1,
                 "one creation event");

    if (itest_app_restart() != 0)
        itest_failf("could not restart the pool without " KILL_ENV);
    g_pool_changed = false;
    free(id);
    free(stored);
    itest_resp_free(r1);
    itest_resp_free(r2);
    itest_resp_free(r3);
    free(body);
}

/* ---- expiry ------------------------------------------------------------- */

static void
key_older_than_24_hours_is_forgotten(void **state)
{
    (void)state;
    char key[96], name[96];
    new_key(key, "idem-old");
    itest_unique(name, sizeof name, "idem-old");
    char *body = create_body(name, false);

    struct itest_resp *r1 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_envelope(r1, 201);
    PQclear(itest_sql("UPDATE idempotency_keys SET created_at = now() - "
                      "interval '24 hours 1 second' "
                      "WHERE consumer_id = $1 AND key = $2",
                      g_a.id, key));
    struct itest_resp *r2 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_envelope(r2, 201);
    expect_not_replayed(r2);
    itest_expect(r2, strcmp(resp_customer_id(r1), resp_customer_id(r2)) != 0,
                 "a forgotten key makes a new customer");
    itest_expect(r2, count_named(name) == 2, "two customers");
    /* and it is remembered afresh */
    struct itest_resp *r3 = keyed("POST", "/customer/data", g_a.key, body, key);
    expect_replay_of(r3, r2);
    /* an expired key may be used for another request */
    char other[96], key2[96];
    new_key(key2, "idem-old");
    itest_unique(other, sizeof other, "idem-old");
    char *body2 = create_body(other, false);
    struct itest_resp *r4 =
        keyed("POST", "/customer/data", g_a.key, body, key2);
    itest_assert_envelope(r4, 201);
    PQclear(itest_sql("UPDATE idempotency_keys SET created_at = now() - "
                      "interval '25 hours' "
                      "WHERE consumer_id = $1 AND key = $2",
                      g_a.id, key2));
    struct itest_resp *r5 =
        keyed("POST", "/customer/data", g_a.key, body2, key2);
    itest_assert_envelope(r5, 201);
    itest_assert_jstr(r5, itest_data(r5), "name", other);

    /* The relay deletes expired rows (every 10 s, when it runs). */
    char gone[96];
    new_key(gone, "idem-expired");
    PQclear(itest_sql("INSERT INTO idempotency_keys (consumer_id, key, "
                      "fingerprint, status, body, created_at) VALUES ($1, $2, "
                      "sha256(''::bytea), 201, '{}', now() - "
                      "interval '25 hours')",
                      g_a.id, gone));
    long relay_ms = itest_env_long("FINTEGRATE_RELAY_INTERVAL_MS", 1000, 0);
    if (relay_ms > 0) {
        double t0 = itest_now();
        while (count_key_rows(g_a.id, gone) > 0 && itest_now() - t0 < 40.0)
            itest_sleep_ms(250);
        itest_expect(r5, count_key_rows(g_a.id, gone) == 0,
                     "the relay deletes an expired key within 40 s");
        itest_expect(r5, count_key_rows(g_a.id, key2) == 1,
                     "and keeps a live one");
    }

    itest_resp_free(r1);
    itest_resp_free(r2);
    itest_resp_free(r3);
    itest_resp_free(r4);
    itest_resp_free(r5);
    free(body);
    free(body2);
}

/* ---- 5xx, bad headers, refusals, no header --------------------------------
 */

static void
server_errors_are_not_stored(void **state)
{
    (void)state;
    static const char *const ddl[] = {
        "CREATE OR REPLACE FUNCTION itest_idem_poison() RETURNS trigger "
        "LANGUAGE plpgsql AS $f$ BEGIN "
        "IF NEW.name LIKE 'idem-poison%' THEN "
        "  RAISE EXCEPTION 'itest poison trigger refused this customer'; "
        "END IF; RETURN NEW; END $f$",
        "DROP TRIGGER IF EXISTS itest_idem_poison ON customers",
        "CREATE TRIGGER itest_idem_poison BEFORE INSERT ON customers "
        "FOR EACH ROW EXECUTE FUNCTION itest_idem_poison()",
    };
    g_poison_installed = true;
    itest_sql_ddl(ddl, sizeof ddl / sizeof ddl[0]);

    char key[96], name[96];
    new_key(key, "idem-5xx");
    itest_unique(name, sizeof name, "idem-poison");
    char *body = create_body(name, false);
    struct itest_resp *r1 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_internal_error(r1);
    itest_expect(r1, count_key_rows(g_a.id, key) == 0, "a 500 is not stored");
    struct itest_resp *r2 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_internal_error(r2);
    expect_not_replayed(r2);

    static const char *const undo[] = {
        "DROP TRIGGER IF EXISTS itest_idem_poison ON customers",
        "DROP FUNCTION IF EXISTS itest_idem_poison()",
    };
    itest_sql_try_each(undo, sizeof undo / sizeof undo[0]);
    g_poison_installed = false;

    /* The retry after the fault goes through. */
    struct itest_resp *r3 = keyed("POST", "/customer/data", g_a.key, body, key);
    itest_assert_envelope(r3, 201);
    expect_not_replayed(r3);
    itest_expect(r3, count_named(name) == 1, "one customer");

    itest_resp_free(r1);
    itest_resp_free(r2);
    itest_resp_free(r3);
    free(body);
}

static void
bad_header_is_422(void **state)
{
    (void)state;
    char name[96], id[37];
    itest_unique(name, sizeof name, "idem-bad");
    char *body = create_body(name, false);
    char *long_key = itest_repeat("k", 256);
    char *max_key = itest_repeat("m", 255);
    char h[400];

    struct {
        const char *header;
        const char *msg;
    } cases[] = {
        {"Idempotency-Key;", "Idempotency-Key must not be empty"},
        {NULL, "Idempotency-Key must be at most 255 characters (got 256)"},
        {"Idempotency-Key: a b",
         "Idempotency-Key must hold only visible ASCII characters (! to ~)"},
        {"Idempotency-Key: caf\xc3\xa9",
         "Idempotency-Key must hold only visible ASCII characters (! to ~)"},
    };
    snprintf(h, sizeof h, "Idempotency-Key: %s", long_key);
    cases[1].header = h;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct itest_resp *r = itest_request("POST", "/customer/data", g_a.key,
                                             body, cases[i].header);
        itest_assert_error(r, 422, cases[i].msg);
        itest_resp_free(r);
    }
    itest_expect(NULL, count_named(name) == 0, "nothing created");

    /* 255 characters are fine */
    struct itest_resp *ok =
        keyed("POST", "/customer/data", g_a.key, body, max_key);
    itest_assert_envelope(ok, 201);
    snprintf(id, sizeof id, "%s", resp_customer_id(ok));

    /* GET ignores the header, even a bad one */
    char path[128];
    snprintf(path, sizeof path, "/customer/data?customer_id=%s", id);
    struct itest_resp *g =
        itest_request("GET", path, g_a.key, NULL, "Idempotency-Key;");
    itest_assert_envelope(g, 200);
    expect_not_replayed(g);

    itest_resp_free(ok);
    itest_resp_free(g);
    free(body);
    free(long_key);
    free(max_key);
}

static void
api_key_creation_refuses_the_header(void **state)
{
    (void)state;
    long keys = itest_sql_long(
        "SELECT count(*) FROM consumer_api_keys WHERE consumer_id = $1",
        g_b.id);
    char body[100], key[96];
    snprintf(body, sizeof body, "{\"consumer_id\":\"%s\"}", g_b.id);
    new_key(key, "idem-apikey");
    struct itest_resp *r =
        keyed("POST", "/consumer/api-key", itest_admin_key(), body, key);
    itest_assert_error(r, 422,
                       "Idempotency-Key is not accepted here: the answer "
                       "holds a secret that is never stored");
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                "WHERE consumer_id = $1",
                                g_b.id) == keys,
                 "no key issued");
    itest_expect(r, count_key_rows(ITEST_SYSTEM_CONSUMER_ID, key) == 0,
                 "nothing stored");
    itest_resp_free(r);
}

static void
calls_without_the_header_are_unchanged(void **state)
{
    (void)state;
    struct itest_consumer c;
    itest_consumer_create(&c, "ACTIVE", "active", "1 day");
    char name[96];
    itest_unique(name, sizeof name, "idem-none");
    char *body = create_body(name, false);
    struct itest_resp *r1 =
        itest_request("POST", "/customer/data", c.key, body, NULL);
    itest_assert_envelope(r1, 201);
    expect_not_replayed(r1);
    struct itest_resp *r2 =
        itest_request("POST", "/customer/data", c.key, body, NULL);
    itest_assert_envelope(r2, 201);
    expect_not_replayed(r2);
    itest_expect(r2, count_named(name) == 2,
                 "without a key, a repeated create creates again");
    itest_expect(r2,
                 itest_sql_long("SELECT count(*) FROM idempotency_keys WHERE "
                                "consumer_id = $1",
                                c.id) == 0,
                 "and nothing is stored");
    itest_resp_free(r1);
    itest_resp_free(r2);
    free(body);
}

static void
redrive_replays_too(void **state)
{
    (void)state;
    char key[96];
    new_key(key, "idem-resend");
    const char *body = "{\"period_in_days\":1,\"max_try_count\":1}";
    struct itest_resp *r1 =
        keyed("POST", "/events/resend", itest_admin_key(), body, key);
    itest_assert_envelope(r1, 200);
    expect_not_replayed(r1);
    struct itest_resp *r2 =
        keyed("POST", "/events/resend", itest_admin_key(), body, key);
    expect_replay_of(r2, r1);
    struct itest_resp *r3 =
        keyed("POST", "/events/resend", itest_admin_key(),
              "{\"period_in_days\":2,\"max_try_count\":1}", key);
    itest_assert_error_contains(r3, 422, "was already used for a different");
    itest_resp_free(r1);
    itest_resp_free(r2);
    itest_resp_free(r3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replay_returns_the_same_answer_and_creates_nothing),
        cmocka_unit_test(replay_of_change_status_delete_and_4xx),
        cmocka_unit_test(same_key_other_request_is_422),
        cmocka_unit_test(keys_are_per_consumer_and_case_sensitive),
        cmocka_unit_test(concurrent_calls_create_one_customer),
        cmocka_unit_test(key_held_past_the_lock_timeout_is_409),
        cmocka_unit_test(key_older_than_24_hours_is_forgotten),
        cmocka_unit_test(server_errors_are_not_stored),
        cmocka_unit_test(bad_header_is_422),
        cmocka_unit_test(api_key_creation_refuses_the_header),
        cmocka_unit_test(calls_without_the_header_are_unchanged),
        cmocka_unit_test(redrive_replays_too),
        cmocka_unit_test(kill_between_commit_and_answer_then_retry),
    };
    return itest_exit(cmocka_run_group_tests_name(
        "Idempotency-Key (docs/API.md §6, safe retries)", tests, setup,
        teardown));
}
