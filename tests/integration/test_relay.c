/*
 * tests/integration/test_relay.c — delivery that heals itself (issue 10,
 * docs/API.md §7.4, the relay, and §7.3, per-customer order kept by the
 * publisher), through nginx against the real PostgreSQL and RabbitMQ,
 * with the relay ON as the stack runs it (FINTEGRATE_RELAY_INTERVAL_MS
 * 1000 unless the environment says otherwise):
 *
 *   - GET /events/health reports the relay (enabled, interval_ms,
 *     last_pass_at, last_pass_published);
 *   - relay: events created through the API while the broker is stopped
 *     stay at their inline try however many passes run; once the broker is
 *     started, with no API call, every one is published (try 2) and in its
 *     queue, once, in per-customer order, within a few seconds;
 *   - back-off: an event whose queue refuses it (a broker policy makes the
 *     queue full: max-length 0 with reject-publish, so every publish is
 *     nacked) is retried on the schedule base × 2^(n−1) with
 *     FINTEGRATE_RELAY_BACKOFF_MS=1000 (the pool restarted with it), not at
 *     every pass; publish_last_refused says so; the customer's next event
 *     is Held inline and left untouched by the relay meanwhile; once the
 *     policy is gone both are published, the later one in the same pass,
 *     and the queue has them in order;
 *   - two relays: a second pool (a second fintegrate-fcgi master on its own
 *     socket, same database and broker) first drains a backlog alone (its
 *     relay works), then both pools' relays (interval 100 ms, batches of 50
 *     so that their passes interleave) drain a backlog of 2,000: every
 *     event reaches the queue exactly once, in per-customer order, with
 *     exactly one recorded relay try;
 *   - order across an outage: 2 × 50 customers, each with an event before
 *     a broker stop, two during it and two right after it — while the
 *     earlier ones are still pending: this test holds their rows locked
 *     (FOR UPDATE), as another node's relay holding them in its batch
 *     would, so the relay skips them (SKIP LOCKED) for as long as the test
 *     needs. The later events are Held inline (the Held reason, try 1) and
 *     left untouched by the relay; once released and drained, every
 *     customer's messages sit in its queue in sequence order (read with a
 *     plain AMQP consumer), and fintegrate-consumer, running through the
 *     whole outage on the second consumer's queue, reports no event late
 *     or after a gap.
 *
 * The pool's settings are changed by restarting it with another
 * environment (scripts/stack.sh app-start passes this process's on); every
 * test that does restores it in its teardown, and the group teardown
 * restarts the pool once more with the stack's own settings (which also
 * gives the binaries after this one closed breakers after the broker
 * restarts). The broker is always started again, the policy removed, the
 * second pool and the consumer program stopped — also after a failed
 * assertion, and on SIGTERM/SIGINT (a handler; the child processes get
 * SIGTERM when this process dies, PR_SET_PDEATHSIG).
 *
 * Events are counted per consumer: each test creates its own consumers
 * (through the API, so their queues exist), whatever earlier binaries left.
 */
#include "itest.h"
#include "itest_amqp.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HELD "Held: an earlier event of this customer is not published yet"

#define MAX_CONSUMERS 8

static long g_interval_ms; /* the stack's relay interval */
static char g_dir[64];     /* temporary: consumer state, outputs, socket */
static char g_policy[96];  /* the broker policy the back-off test sets */
static bool g_policy_set;
static bool g_broker_stopped;
static bool g_env_changed;
static pid_t g_pool2;    /* the second pool's master */
static pid_t g_consumer; /* fintegrate-consumer */
static PGconn *g_lock;   /* a transaction holding row locks */
/* The pool settings this binary changes, and their values as given. */
static const char *const SETTINGS[3] = {"FINTEGRATE_RELAY_INTERVAL_MS",
                                        "FINTEGRATE_REDRIVE_BATCH",
                                        "FINTEGRATE_RELAY_BACKOFF_MS"};
static char *g_orig[3];
static char g_consumer_ids[MAX_CONSUMERS][37];
static char g_queue_names[MAX_CONSUMERS][160];
static int g_n_consumers;

/* --------------------------------------------------------------- helpers */

/* A consumer through the API (its queue exists), remembered for the
 * clean-up. */
static void
new_consumer(struct itest_consumer *c, char queue[160], const char *prefix)
{
    itest_consumer_create_api(c, prefix);
    itest_queue_name(queue, 160, c->name, false);
    if (g_n_consumers < MAX_CONSUMERS) {
        snprintf(g_consumer_ids[g_n_consumers], 37, "%s", c->id);
        snprintf(g_queue_names[g_n_consumers], 160, "%s", queue);
        g_n_consumers++;
    }
}

static void
broker_stop(void)
{
    g_broker_stopped = true;
    if (itest_stack("broker-stop") != 0)
        itest_failf("scripts/stack.sh broker-stop failed");
    if (itest_broker_up())
        itest_failf("the broker still answers after broker-stop");
}

static void
broker_start(void)
{
    if (itest_stack("broker-start") != 0)
        itest_failf("scripts/stack.sh broker-start failed");
    g_broker_stopped = false;
}

/* Restarts the pool with these relay settings (NULL: the stack's). */
static void
restart_app_with(const char *interval_ms, const char *batch,
                 const char *backoff_ms)
{
    const char *values[] = {interval_ms, batch, backoff_ms};
    for (int i = 0; i < 3; i++)
        itest_setenv_or_unset(SETTINGS[i],
                              values[i] != NULL ? values[i] : g_orig[i]);
    g_env_changed = true;
    if (itest_app_restart() != 0)
        itest_failf("could not restart the pool with the relay settings "
                    "%s/%s/%s",
                    interval_ms ? interval_ms : "-", batch ? batch : "-",
                    backoff_ms ? backoff_ms : "-");
}

static int
restore_app(void)
{
    if (!g_env_changed)
        return 0;
    for (int i = 0; i < 3; i++)
        itest_setenv_or_unset(SETTINGS[i], g_orig[i]);
    if (itest_app_restart() != 0) {
        fprintf(stderr, "test_relay: could not restart the pool with the "
                        "stack's settings\n");
        return -1;
    }
    g_env_changed = false;
    return 0;
}

static bool
policy_delete(void)
{
    char path[192];
    snprintf(path, sizeof path, "/api/policies/%%2F/%s", g_policy);
    long st = itest_mgmt_request("DELETE", path, NULL, NULL);
    if (st >= 200 && st < 300)
        g_policy_set = false;
    return !g_policy_set;
}

/* One change about customer cid that must answer `status` and write one
 * event. */
static void
change(const char *key, const char *method, const char *path, json_t *body,
       long status)
{
    char *text = itest_json_text(body);
    struct itest_resp *r = itest_request(method, path, key, text, NULL);
    free(text);
    itest_assert_envelope(r, status);
    itest_resp_free(r);
}

static void
change_status(const char *key, const char *cid, const char *status)
{
    change(key, "PATCH", "/customer/change-status",
           json_pack("{s:s, s:s}", "customer_id", cid, "status", status), 200);
}

/* The event of customer cid with this sequence (into eid). */
static void
event_of(const char *cid, int seq, char eid[37])
{
    char s[16];
    snprintf(s, sizeof s, "%d", seq);
    char *v = itest_sql_value("SELECT event_id::text FROM customer_events "
                              "WHERE customer_id = $1 AND sequence = $2",
                              cid, s);
    if (v == NULL)
        itest_failf("customer %s has no event with sequence %d", cid, seq);
    snprintf(eid, 37, "%s", v);
    free(v);
}

/* Events of the consumers (a "{id,id}" array text) by sequence, status,
 * tries, reason and refusal: what a failing count is about. */
static void
print_events(const char *consumers)
{
    PGresult *q =
        itest_sql("SELECT sequence, publish_status, publish_try_count, "
                  "       coalesce(publish_failure_reason, '-'), "
                  "       publish_last_refused, count(*) "
                  "  FROM customer_events WHERE consumer_id = ANY($1::uuid[]) "
                  " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
                  consumers);
    fprintf(stderr, "    sequence | status | tries | reason | refused | n\n");
    for (int i = 0; i < PQntuples(q); i++)
        fprintf(stderr, "    %s | %s | %s | %s | %s | %s\n",
                PQgetvalue(q, i, 0), PQgetvalue(q, i, 1), PQgetvalue(q, i, 2),
                PQgetvalue(q, i, 3), PQgetvalue(q, i, 4), PQgetvalue(q, i, 5));
    PQclear(q);
}

/* count(*) of the consumers' events matching `where` (SQL over
 * customer_events; $1 = the consumers array, $2 = the Held text). */
static long
count_where(const char *consumers, const char *where)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM customer_events "
             " WHERE consumer_id = ANY($1::uuid[]) AND ($2::text IS NOT NULL) "
             "   AND (%s)",
             where);
    return itest_sql_long(sql, consumers, HELD);
}

#define expect_count(consumers, where, want, ...)                              \
    expect_count_at(__FILE__, __LINE__, (consumers), (where), (want),          \
                    __VA_ARGS__)

static void __attribute__((format(printf, 6, 7)))
expect_count_at(const char *file, int line, const char *consumers,
                const char *where, long want, const char *fmt, ...)
{
    long got = count_where(consumers, where);
    if (got == want)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_events(consumers);
    itest_failf_at(file, line, "%s: %ld event(s) where %s, want %ld", msg, got,
                   where, want);
}

/* Polls until every event of the consumers is published; returns the
 * seconds it took, fails after timeout_s. */
static double
wait_all_published(const char *consumers, double timeout_s)
{
    double t0 = itest_now();
    while (count_where(consumers, "publish_status <> 'published'") > 0) {
        if (itest_now() - t0 > timeout_s) {
            print_events(consumers);
            itest_failf("%.0f s after, not every event is published (no API "
                        "call re-drives them: the relay must)",
                        timeout_s);
        }
        itest_sleep_ms(50);
    }
    return itest_now() - t0;
}

/* data.relay of GET /events/health (owned copy). */
static json_t *
relay_health(void)
{
    struct itest_resp *r =
        itest_request("GET", "/events/health", itest_admin_key(), NULL, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    json_t *relay = json_object_get(d, "relay");
    itest_expect(r, json_is_object(relay), "data.relay must be an object");
    itest_assert_keys(r, relay, "enabled", "interval_ms", "last_pass_at",
                      "last_pass_published");
    json_t *lp = json_object_get(relay, "last_pass_at");
    itest_expect(r,
                 json_is_null(lp) || itest_is_timestamp(json_string_value(lp)),
                 "relay.last_pass_at must be a timestamp or null");
    itest_expect(
        r,
        json_is_integer(json_object_get(relay, "last_pass_published")) &&
            itest_jint(relay, "last_pass_published") >= 0,
        "relay.last_pass_published must be a non-negative integer");
    json_t *copy = json_deep_copy(relay);
    itest_resp_free(r);
    return copy;
}

/* Reads the queue and asserts: exactly the expected events (query: $1 a
 * consumer id; event_id, group, rank), each once, ranks ascending within
 * each group. */
static void
expect_queue(const char *queue, const char *consumer_id, const char *query,
             long timeout_ms, const char *what)
{
    struct amqp_expected *exp;
    size_t want = amqp_expected_sql(query, consumer_id, &exp);
    struct amqp_sub sub;
    if (amqp_sub_open(&sub, queue) != 0) {
        free(exp);
        itest_failf("cannot consume from %s", queue);
    }
    struct amqp_tally t;
    amqp_sub_tally(&sub, exp, want, timeout_ms, 1500, &t);
    amqp_sub_close(&sub);
    free(exp);
    amqp_tally_print(what, want, &t);
    itest_expect(NULL, t.distinct == want,
                 "%s: %zu of %zu events reached the queue", what, t.distinct,
                 want);
    itest_expect(NULL, t.duplicates == 0 && t.unknown == 0,
                 "%s: each event exactly once (%zu duplicate(s), %zu "
                 "unknown)",
                 what, t.duplicates, t.unknown);
    itest_expect(NULL, t.disorder == 0,
                 "%s: out of order, first %s (%zu in all)", what,
                 t.first_disorder, t.disorder);
}

/* Per customer, in sequence order. */
#define PER_CUSTOMER_ORDER                                                     \
    "SELECT event_id::text, "                                                  \
    "       dense_rank() OVER (ORDER BY customer_id) - 1, sequence "           \
    "  FROM customer_events WHERE consumer_id = $1::uuid"

/* All of them in created_at order. */
#define CREATED_AT_ORDER                                                       \
    "SELECT event_id::text, 0, "                                               \
    "       row_number() OVER (ORDER BY created_at, sequence) "                \
    "  FROM customer_events WHERE consumer_id = $1::uuid"

/* ------------------------------------------------------ child processes */

static const char *
fcgi_bin(void)
{
    static char path[4096];
    const char *b = itest_env("FINTEGRATE_FCGI_BIN");
    if (b != NULL)
        return b;
    snprintf(path, sizeof path, "%s/bin/fintegrate-fcgi",
             itest_env("FINTEGRATE_CHECKOUT"));
    return path;
}

static void
dump_file(const char *path)
{
    char *text = itest_slurp(path, NULL);
    fprintf(stderr, "---- %s\n%s---- end of %s\n", path,
            text ? text : "(unreadable)\n", path);
    free(text);
}

/* A second pool: fintegrate-fcgi on its own socket, this process's
 * environment (the stack's database and broker) plus env. */
static void
pool2_start(const char *const *env)
{
    char sock[128], log[128];
    snprintf(sock, sizeof sock, "%s/pool2.sock", g_dir);
    snprintf(log, sizeof log, "%s/pool2.log", g_dir);
    unlink(sock);
    const char *argv[] = {fcgi_bin(), "--socket", sock, NULL};
    g_pool2 = itest_spawn(argv, env, log, log);
    double until = itest_now() + 15;
    struct stat st;
    while (stat(sock, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        int ws;
        if (waitpid(g_pool2, &ws, WNOHANG) == g_pool2) {
            g_pool2 = 0;
            dump_file(log);
            itest_failf("the second pool (%s --socket %s) exited at start-up",
                        fcgi_bin(), sock);
        }
        if (itest_now() > until) {
            dump_file(log);
            itest_failf("the second pool did not create %s within 15 s", sock);
        }
        itest_sleep_ms(50);
    }
    itest_sleep_ms(300);
    if (itest_proc_state(g_pool2) == 0 || itest_proc_state(g_pool2) == 'Z') {
        dump_file(log);
        itest_failf("the second pool died right after start-up");
    }
}

static void
pool2_stop(void)
{
    if (g_pool2 <= 0)
        return;
    int st = itest_stop_process(g_pool2, 15);
    fprintf(stderr, "    second pool stopped (%s %d)\n",
            st >= 0 && WIFEXITED(st) ? "exit status" : "signal",
            st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st)
                                     : (st >= 0 ? WTERMSIG(st) : -1));
    g_pool2 = 0;
}

/* ------------------------------------------------------------- group */

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    if (itest_env("FINTEGRATE_CHECKOUT") == NULL ||
        itest_env("FINTEGRATE_AMQP_URL") == NULL ||
        itest_env("FINTEGRATE_AMQP_MGMT_PORT") == NULL) {
        fprintf(stderr, "test_relay: needs FINTEGRATE_CHECKOUT, "
                        "FINTEGRATE_AMQP_URL and FINTEGRATE_AMQP_MGMT_PORT "
                        "(scripts/test.sh exports them)\n");
        return -1;
    }
    if (!itest_broker_up()) {
        fprintf(stderr, "test_relay: the broker is not running\n");
        return -1;
    }
    g_interval_ms = itest_env_long("FINTEGRATE_RELAY_INTERVAL_MS", 1000, 0);
    if (g_interval_ms == 0) {
        fprintf(stderr, "test_relay: FINTEGRATE_RELAY_INTERVAL_MS=0 in the "
                        "environment: these tests need the relay on\n");
        return -1;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/fi-relay-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(g_policy, sizeof g_policy, "itest-relay-full-%ld", (long)getpid());
    for (int i = 0; i < 3; i++) {
        const char *v = itest_env(SETTINGS[i]);
        g_orig[i] = v != NULL ? strdup(v) : NULL;
    }
    /* Stopped from outside: broker back, policy gone, the stack's pool
     * settings back (the children die with us: PR_SET_PDEATHSIG). */
    char cmd[4096] = "";
    for (int i = 0; i < 3; i++)
        itest_sh_env_cmd(cmd, sizeof cmd, SETTINGS[i], g_orig[i]);
    size_t len = strlen(cmd);
    snprintf(cmd + len, sizeof cmd - len,
             "'%1$s/scripts/stack.sh' broker-start 1>&2; "
             "curl -s -o /dev/null -m 5 -u guest:guest -X DELETE "
             "'http://127.0.0.1:%2$s/api/policies/%%2F/%3$s'; ",
             itest_env("FINTEGRATE_CHECKOUT"),
             itest_env("FINTEGRATE_AMQP_MGMT_PORT"), g_policy);
    itest_on_signal_restart_app(cmd);
    return 0;
}

/* Puts back what a test changed; runs after every test, failed or not. */
static int
restore(void **state)
{
    (void)state;
    int rc = 0;
    if (g_consumer > 0) {
        itest_stop_process(g_consumer, 10);
        g_consumer = 0;
    }
    if (g_lock != NULL) {
        PQfinish(g_lock); /* rolls the transaction back */
        g_lock = NULL;
    }
    pool2_stop();
    if (g_broker_stopped || !itest_broker_up()) {
        fprintf(stderr, "test_relay: starting the broker again\n");
        if (itest_stack("broker-start") == 0)
            g_broker_stopped = false;
        else
            rc = -1;
    }
    if (g_policy_set && !policy_delete()) {
        fprintf(stderr, "test_relay: could not delete policy %s\n", g_policy);
        rc = -1;
    }
    if (restore_app() != 0)
        rc = -1;
    return rc;
}

static int
teardown(void **state)
{
    int rc = restore(state);
    /* A failed test's leftovers must not keep the relay of the binaries
     * after this one busy, nor fill the broker. */
    for (int i = 0; i < g_n_consumers; i++) {
        PGresult *r = itest_sql_try(
            "UPDATE customer_events SET publish_status = 'failed', "
            "  publish_failure_reason = 'abandoned by test_relay' "
            " WHERE consumer_id = $1 AND publish_status = 'pending'",
            (const char *const[]){g_consumer_ids[i]}, 1);
        PQclear(r);
        itest_mgmt_purge(g_queue_names[i]);
    }
    /* Fresh workers (closed breakers after the broker restarts) with the
     * stack's settings for the next binary. */
    g_env_changed = true;
    if (restore_app() != 0)
        rc = -1;
    const char *keep = itest_env("FINTEGRATE_TEST_KEEP_OUTPUT");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "test_relay: output kept in %s\n", g_dir);
    } else if (g_dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_relay: could not remove %s\n", g_dir);
    }
    itest_on_signal_run(NULL);
    for (int i = 0; i < 3; i++) {
        free(g_orig[i]);
        g_orig[i] = NULL;
    }
    itest_group_teardown(state);
    return rc;
}

/* ----------------------------------------------------------------- tests */

static void
health_reports_the_relay(void **state)
{
    (void)state;
    /* A pool restarted a moment ago may not have run its first pass. */
    double until = itest_now() + 5 + (double)g_interval_ms / 1000.0;
    json_t *relay = relay_health();
    while (json_is_null(json_object_get(relay, "last_pass_at")) &&
           itest_now() < until) {
        json_decref(relay);
        itest_sleep_ms(200);
        relay = relay_health();
    }
    bool enabled = json_is_true(json_object_get(relay, "enabled"));
    long interval = itest_jint(relay, "interval_ms");
    bool passed = !json_is_null(json_object_get(relay, "last_pass_at"));
    json_decref(relay);
    itest_expect(NULL, enabled, "relay.enabled must be true (on by default)");
    itest_expect(NULL, interval == g_interval_ms,
                 "relay.interval_ms is %ld, want %ld", interval, g_interval_ms);
    itest_expect(NULL, passed,
                 "relay.last_pass_at is still null: no relay pass ran");
}

static void
relay_publishes_an_outage_backlog_without_a_call(void **state)
{
    (void)state;
    enum { N = 20 };
    struct itest_consumer c;
    char queue[160], ids[48];
    new_consumer(&c, queue, "relay");
    snprintf(ids, sizeof ids, "{%s}", c.id);

    broker_stop();
    for (int i = 0; i < N; i++) {
        char cid[37], eid[37];
        itest_make_customer_event(c.key, "relay", cid, eid);
        change_status(c.key, cid, "INACTIVE");
    }
    expect_count(ids,
                 "publish_status = 'pending' AND publish_try_count = 1 "
                 "AND publish_last_tried_at IS NOT NULL",
                 2 * N,
                 "with the broker stopped, each event pending after its "
                 "inline try");

    /* Several relay passes with the broker down touch no event. */
    long wait_ms = 3 * g_interval_ms < 2500 ? 2500 : 3 * g_interval_ms;
    itest_sleep_ms(wait_ms);
    expect_count(ids, "publish_try_count > 1 OR publish_status <> 'pending'", 0,
                 "after %ld ms of relay passes with the broker down, no "
                 "event may have been tried again",
                 wait_ms);

    /* (The database's clock, as the relay's last_pass_at is.) */
    PGresult *q = itest_sql0("SELECT fintegrate_ts(now())");
    char *since = strdup(PQgetvalue(q, 0, 0));
    PQclear(q);
    broker_start();
    double dt = wait_all_published(ids, 15);
    fprintf(stderr,
            "    all %d published by the relay %.1f s after "
            "broker-start returned\n",
            2 * N, dt);
    expect_count(ids,
                 "publish_status = 'published' AND publish_try_count = 2 "
                 "AND published_at IS NOT NULL",
                 2 * N,
                 "each event published by one relay try after its "
                 "inline one");
    expect_queue(queue, c.id, PER_CUSTOMER_ORDER, 10000,
                 "the queue after the outage");

    /* The relay's state: a pass since the broker came back. */
    json_t *relay = relay_health();
    const char *at = json_string_value(json_object_get(relay, "last_pass_at"));
    bool recent = at != NULL && since != NULL && strcmp(at, since) >= 0;
    char at_copy[40];
    snprintf(at_copy, sizeof at_copy, "%s", at ? at : "null");
    json_decref(relay);
    itest_expect(NULL, recent,
                 "relay.last_pass_at (%s) must be a pass after the broker "
                 "came back (%s)",
                 at_copy, since ? since : "?");
    free(since);
}

static void
backoff_retries_a_refused_event_on_the_schedule(void **state)
{
    (void)state;
    const long base_ms = 1000;
    const double watch_s = 12.5;
    const long interval_ms = 1000; /* the schedule below assumes it */
    restart_app_with("1000", NULL, "1000");

    struct itest_consumer c;
    char queue[160], ids[48], cid[37], filler[2][37], e1[37], e2[37];
    new_consumer(&c, queue, "backoff");
    snprintf(ids, sizeof ids, "{%s}", c.id);
    /* Two messages sit in the queue... */
    itest_make_customer_event(c.key, "filler", cid, filler[0]);
    itest_make_customer_event(c.key, "filler", cid, filler[1]);
    wait_all_published(ids, 10);
    /* ...and a policy makes it full: every publish to it is nacked. */
    char path[192], body[512];
    snprintf(path, sizeof path, "/api/policies/%%2F/%s", g_policy);
    snprintf(body, sizeof body,
             "{\"pattern\":\"^%s$\",\"definition\":{\"max-length\":0,"
             "\"overflow\":\"reject-publish\"},\"priority\":100,"
             "\"apply-to\":\"queues\"}",
             queue);
    g_policy_set = true;
    long st = itest_mgmt_request("PUT", path, body, NULL);
    itest_expect(NULL, st == 201 || st == 204,
                 "PUT %s answered %ld (want 201 or 204)", path, st);
    double until = itest_now() + 10;
    for (;;) {
        json_t *q = NULL;
        itest_mgmt_queue(queue, &q);
        const char *p = json_string_value(json_object_get(q, "policy"));
        bool applied = p != NULL && strcmp(p, g_policy) == 0;
        json_decref(q);
        if (applied)
            break;
        if (itest_now() > until)
            itest_failf("the broker did not apply policy %s to %s within "
                        "10 s",
                        g_policy, queue);
        itest_sleep_ms(100);
    }

    /* E1 is refused inline; E2, the customer's next event, is Held. */
    itest_make_customer_event(c.key, "refused", cid, e1);
    change_status(c.key, cid, "INACTIVE");
    event_of(cid, 2, e2);
    char one[48];
    snprintf(one, sizeof one, "{%s}", c.id);
    long refused = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE event_id = $1 "
        "AND publish_status = 'pending' AND publish_try_count = 1 "
        "AND publish_last_refused AND publish_failure_reason IS NOT NULL",
        e1);
    if (refused != 1)
        print_events(one);
    itest_expect(NULL, refused == 1,
                 "E1 (queue full) must be pending after 1 inline try, "
                 "publish_last_refused true, with a reason");
    long held = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE event_id = $1 "
        "AND publish_status = 'pending' AND publish_try_count = 1 "
        "AND NOT publish_last_refused AND publish_failure_reason = $2",
        e2, HELD);
    if (held != 1)
        print_events(one);
    itest_expect(NULL, held == 1,
                 "E2 (E1 pending) must be held inline: pending, 1 try, not "
                 "refused, reason \"%s\"",
                 HELD);

    /* Watch: each try of E1 comes no sooner than its back-off after the
     * previous refused one; E2 is not touched meanwhile. */
    long tries = 1;
    double last_at = 0;
    bool last_refused = true;
    double t_end = itest_now() + watch_s;
    {
        char *v = itest_sql_value("SELECT extract(epoch FROM "
                                  "publish_last_tried_at)::text FROM "
                                  "customer_events WHERE event_id = $1",
                                  e1);
        last_at = v ? strtod(v, NULL) : 0;
        free(v);
    }
    while (itest_now() < t_end) {
        PGresult *q =
            itest_sql("SELECT publish_try_count, "
                      "       extract(epoch FROM publish_last_tried_at)::text, "
                      "       publish_last_refused, publish_status "
                      "  FROM customer_events WHERE event_id = $1",
                      e1);
        long n = strtol(PQgetvalue(q, 0, 0), NULL, 10);
        double at = strtod(PQgetvalue(q, 0, 1), NULL);
        bool now_refused = PQgetvalue(q, 0, 2)[0] == 't';
        char status[16];
        snprintf(status, sizeof status, "%s", PQgetvalue(q, 0, 3));
        PQclear(q);
        if (strcmp(status, "pending") != 0)
            itest_failf("E1 became %s while its queue refuses it", status);
        if (n != tries) {
            double gap = at - last_at;
            double min_gap =
                (double)(base_ms << (tries - 1 < 20 ? tries - 1 : 20)) / 1000.0;
            fprintf(stderr,
                    "    E1 try %ld, %.2f s after try %ld (back-off %.0f s)\n",
                    n, gap, tries, min_gap);
            if (n != tries + 1)
                itest_failf("E1 went from %ld to %ld tries within 50 ms: "
                            "that is no back-off",
                            tries, n);
            if (last_refused && gap < min_gap - 0.05)
                itest_failf("E1's try %ld came %.2f s after its refused try "
                            "%ld: the back-off is %.0f s "
                            "(FINTEGRATE_RELAY_BACKOFF_MS=%ld × 2^%ld)",
                            n, gap, tries, min_gap, base_ms, tries - 1);
            tries = n;
            last_at = at;
        }
        last_refused = now_refused;
        long e2_tries = itest_sql_long(
            "SELECT coalesce((SELECT publish_try_count FROM customer_events "
            "  WHERE event_id = $1 AND publish_status = 'pending'), -1)",
            e2);
        if (e2_tries != 1)
            itest_failf("E2 (held behind E1) must stay pending at 1 try while "
                        "E1 is pending; it has %ld (-1: not pending)",
                        e2_tries);
        itest_sleep_ms(50);
    }
    fprintf(stderr,
            "    E1: %ld tries in %.0f s (one per pass would be "
            "~%.0f)\n",
            tries, watch_s, watch_s * 1000.0 / (double)interval_ms);
    /* Passes every interval, back-off 1, 2, 4, 8 s: tries at about 0,
     * 1-2, 3-5, 7-10, then not before 15 s — four in 12.5 s; one per pass
     * would be about twelve. */
    itest_expect(NULL, tries >= 4,
                 "E1 must be retried once its back-off has passed: %ld "
                 "tries in %.1f s, want 4 (at 0, ≥1, ≥3, ≥7 s)",
                 tries, watch_s);
    itest_expect(NULL, last_refused,
                 "E1's publish_last_refused must stay true while its queue "
                 "refuses it");

    /* The queue takes messages again: E1, then E2 in the same pass. */
    if (!policy_delete())
        itest_failf("could not delete policy %s", g_policy);
    double dt = wait_all_published(ids, 10 + (double)(base_ms << 4) / 1000.0);
    fprintf(stderr, "    published %.1f s after the policy was removed\n", dt);
    long e1_tries = itest_sql_long(
        "SELECT publish_try_count FROM customer_events WHERE event_id = $1",
        e1);
    itest_expect(NULL, e1_tries == tries + 1,
                 "E1 must be published by its next try (%ld), has %ld",
                 tries + 1, e1_tries);
    itest_expect(NULL,
                 itest_sql_long("SELECT publish_try_count FROM "
                                "customer_events WHERE event_id = $1",
                                e2) == 2,
                 "E2 must be published by one relay try after its held one");
    char ms[32];
    snprintf(ms, sizeof ms, "%ld", interval_ms);
    itest_expect(
        NULL,
        itest_sql_long(
            "SELECT count(*) FROM customer_events a, customer_events b "
            " WHERE a.event_id = $1 AND b.event_id = $2 "
            "   AND b.published_at - a.published_at "
            "       < $3::int * interval '1 millisecond'",
            e1, e2, ms) == 1,
        "E2 must follow E1 in the same relay pass (published less "
        "than one interval after it)");
    expect_queue(queue, c.id, CREATED_AT_ORDER, 10000,
                 "the queue after the back-off");
}

static void
two_relays_publish_every_event_once(void **state)
{
    (void)state;
    char log_env[160];
    snprintf(log_env, sizeof log_env, "FINTEGRATE_LOG_FILE=%s/pool2.log",
             g_dir);
    const char *const pool2_env[] = {"FINTEGRATE_RELAY_INTERVAL_MS=100",
                                     "FINTEGRATE_REDRIVE_BATCH=50",
                                     "FINTEGRATE_WORKERS=1", log_env, NULL};

    /* 1. The second pool's relay alone (the stack's is off): it works. */
    restart_app_with("0", NULL, NULL);
    pool2_start(pool2_env);
    struct itest_consumer a, b;
    char qa[160], qb[160], ida[48], idb[48];
    new_consumer(&a, qa, "relay2-alone");
    snprintf(ida, sizeof ida, "{%s}", a.id);
    long na = itest_backlog_insert(a.id, a.name, 60, 5);
    double dt = wait_all_published(ida, 30);
    fprintf(stderr,
            "    the second pool's relay alone: %ld events in %.1f "
            "s\n",
            na, dt);
    expect_queue(qa, a.id, PER_CUSTOMER_ORDER, 10000,
                 "the second pool's relay alone");

    /* 2. Both relays, fast and in small batches, on one backlog. */
    restart_app_with("100", "50", NULL);
    new_consumer(&b, qb, "relay2-both");
    snprintf(idb, sizeof idb, "{%s}", b.id);
    char log[128];
    snprintf(log, sizeof log, "%s/pool2.log", g_dir);
    int passes0 = itest_count_lines(log, "relay: pass published", NULL, NULL);
    long nb = itest_backlog_insert(b.id, b.name, 400, 5);
    dt = wait_all_published(idb, 60);
    /* Informative only (the log's wording is not the contract). */
    fprintf(stderr,
            "    two relays: %ld events in %.1f s; the second pool logged %d "
            "publishing pass(es)\n",
            nb, dt,
            itest_count_lines(log, "relay: pass published", NULL, NULL) -
                passes0);
    expect_count(idb, "publish_status = 'published' AND publish_try_count = 2",
                 nb,
                 "two relays: each event published with exactly one relay "
                 "try");
    expect_queue(qb, b.id, PER_CUSTOMER_ORDER, 30000, "two relays");
    pool2_stop();
}

/* Waits until the consumer program printed `want` lines holding n1. */
static void
wait_output(const char *path, int want, const char *n1, double timeout_s,
            const char *out, const char *err)
{
    double until = itest_now() + timeout_s;
    int n;
    while ((n = itest_count_lines(path, n1, NULL, NULL)) < want) {
        int ws;
        if (g_consumer > 0 && waitpid(g_consumer, &ws, WNOHANG) == g_consumer) {
            g_consumer = 0;
            dump_file(out);
            dump_file(err);
            itest_failf("fintegrate-consumer exited while %d line(s) with "
                        "\"%s\" were awaited",
                        want, n1);
        }
        if (itest_now() > until) {
            dump_file(out);
            dump_file(err);
            itest_failf("waited %.0f s for %d line(s) with \"%s\" in %s; "
                        "found %d",
                        timeout_s, want, n1, path, n);
        }
        itest_sleep_ms(100);
    }
}

static void
order_across_an_outage_is_kept_by_the_publisher(void **state)
{
    (void)state;
    enum { PER = 50, ALL = 2 * PER };
    struct itest_consumer c[2]; /* [0] read with AMQP, [1] by the program */
    char queue[2][160], ids[96], cid[ALL][37];
    new_consumer(&c[0], queue[0], "order-amqp");
    new_consumer(&c[1], queue[1], "order-prog");
    snprintf(ids, sizeof ids, "{%s,%s}", c[0].id, c[1].id);
    const char *key[ALL];

    /* Before the outage: one event each (published inline). */
    for (int i = 0; i < ALL; i++) {
        char eid[37];
        key[i] = c[i / PER].key;
        itest_make_customer_event(key[i], "order", cid[i], eid);
    }
    wait_all_published(ids, 10);

    /* fintegrate-consumer on the second queue, through the whole outage;
     * a short gap timeout, so that a customer's event published ahead of
     * an earlier one shows as "after a gap" / "late". */
    char out[128], err[128], state_dir[128], env_name[96], env_key[96],
        env_state[160];
    snprintf(out, sizeof out, "%s/consumer.out", g_dir);
    snprintf(err, sizeof err, "%s/consumer.err", g_dir);
    snprintf(state_dir, sizeof state_dir, "%s/consumer-state", g_dir);
    snprintf(env_name, sizeof env_name, "FINTEGRATE_CONSUMER_NAME=%s",
             c[1].name);
    snprintf(env_key, sizeof env_key, "FINTEGRATE_API_KEY=%s", c[1].key);
    snprintf(env_state, sizeof env_state, "FINTEGRATE_CONSUMER_STATE_DIR=%s",
             state_dir);
    const char *const cenv[] = {env_name, env_key, env_state,
                                "FINTEGRATE_LOG_LEVEL=info", NULL};
    const char *const cargv[] = {itest_consumer_bin(), "--gap-timeout-ms",
                                 "1000", NULL};
    g_consumer = itest_spawn(cargv, cenv, out, err);
    char ready[200];
    snprintf(ready, sizeof ready, "consuming %s on", queue[1]);
    wait_output(err, 1, ready, 20, out, err);
    wait_output(out, PER, " processed ", 30, out, err);

    /* The outage: two events each, pending. */
    broker_stop();
    for (int i = 0; i < ALL; i++) {
        change_status(key[i], cid[i], "INACTIVE");
        change(key[i], "POST", "/customer/tag",
               json_pack("{s:s, s:[s], s:[s]}", "customer_id", cid[i],
                         "tag_keys", "tier", "tag_values", "gold"),
               201);
    }
    expect_count(ids,
                 "sequence IN (2, 3) AND publish_status = 'pending' "
                 "AND publish_try_count = 1",
                 2 * ALL, "events written during the outage");
    expect_count(ids, "sequence = 3 AND publish_failure_reason = $2", ALL,
                 "an event whose customer's previous one is pending is held "
                 "inline");
    expect_count(
        ids, "sequence = 2 AND publish_failure_reason IS DISTINCT FROM $2", ALL,
        "an event whose customer's previous one is published is "
        "not held (it failed on the broker)");

    /* The pending ones stay pending after the broker is back: this
     * transaction holds their rows, as another node's relay would. */
    g_lock = itest_pg_connect();
    PQclear(PQexec(g_lock, "BEGIN"));
    PGresult *q = PQexecParams(
        g_lock,
        "SELECT event_id FROM customer_events "
        " WHERE consumer_id = ANY($1::uuid[]) AND publish_status = 'pending' "
        "   FOR UPDATE",
        1, NULL, (const char *const[]){ids}, NULL, NULL, 0);
    bool locked = PQresultStatus(q) == PGRES_TUPLES_OK;
    int n_locked = locked ? PQntuples(q) : -1;
    PQclear(q);
    itest_expect(NULL, locked && n_locked == 2 * ALL,
                 "could not lock the %d pending events (got %d)", 2 * ALL,
                 n_locked);
    broker_start();

    /* Right after the outage: two more events each, while the earlier
     * ones are pending — held inline, and left alone by the relay. */
    for (int i = 0; i < ALL; i++) {
        change_status(key[i], cid[i], "ACTIVE");
        change(key[i], "PATCH", "/customer/tag-value",
               json_pack("{s:s, s:s, s:s}", "customer_id", cid[i], "tag_key",
                         "tier", "new_tag_value", "platinum"),
               200);
    }
    const char *held_after =
        "sequence IN (4, 5) AND publish_status = 'pending' "
        "AND publish_try_count = 1 AND publish_failure_reason = $2 "
        "AND NOT publish_last_refused";
    expect_count(ids, held_after, 2 * ALL,
                 "events written while an earlier one of their customer is "
                 "pending are held inline");
    long passes_ms = 3 * g_interval_ms < 2500 ? 2500 : 3 * g_interval_ms;
    itest_sleep_ms(passes_ms);
    expect_count(ids, held_after, 2 * ALL,
                 "the relay must leave a customer's later events untouched "
                 "while its earliest pending one cannot go (%ld ms of "
                 "passes)",
                 passes_ms);
    expect_count(ids, "sequence IN (2, 3) AND publish_try_count <> 1", 0,
                 "the locked events were not tried");

    /* Released: the relay drains every customer in order. */
    PQfinish(g_lock);
    g_lock = NULL;
    double dt = wait_all_published(ids, 20);
    fprintf(stderr, "    %d events drained %.1f s after the release\n", 4 * ALL,
            dt);
    expect_count(ids, "sequence = 1 AND publish_try_count = 1", ALL,
                 "events published inline before the outage");
    expect_count(ids, "sequence > 1 AND publish_try_count = 2", 4 * ALL,
                 "every later event published by one relay try");
    expect_queue(queue[0], c[0].id, PER_CUSTOMER_ORDER, 15000,
                 "the first consumer's queue");

    /* The program: all 5 × 50 processed, none late or after a gap. */
    wait_output(out, 5 * PER, " processed ", 60, out, err);
    itest_sleep_ms(1500); /* a straggler or a duplicate would show */
    int processed = itest_count_lines(out, " processed ", NULL, NULL);
    int late = itest_count_lines(out, "late: seq", NULL, NULL);
    int gap = itest_count_lines(out, "after a gap", NULL, NULL);
    int gap_log = itest_count_lines(err, "gap: customer", NULL, NULL);
    fprintf(stderr,
            "    fintegrate-consumer: %d processed, %d late, %d after a "
            "gap\n",
            processed, late, gap);
    if (processed != 5 * PER || late != 0 || gap != 0 || gap_log != 0) {
        dump_file(out);
        dump_file(err);
    }
    itest_expect(NULL, late == 0 && gap == 0 && gap_log == 0,
                 "fintegrate-consumer reported %d event(s) late and %d after "
                 "a gap: the publisher broke per-customer order",
                 late, gap);
    itest_expect(NULL, processed == 5 * PER,
                 "fintegrate-consumer processed %d events, want %d", processed,
                 5 * PER);
    char one[48];
    snprintf(one, sizeof one, "{%s}", c[1].id);
    double until = itest_now() + 15;
    while (count_where(one, "deliver_status <> 'delivered'") > 0) {
        if (itest_now() > until)
            itest_failf("the program's confirmations did not mark all %d "
                        "events delivered",
                        5 * PER);
        itest_sleep_ms(100);
    }
    int st = itest_stop_process(g_consumer, 15);
    g_consumer = 0;
    itest_expect(NULL, st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                 "fintegrate-consumer must exit 0 on SIGTERM");
}

/* ---- kill -9 between the confirm and the mark ----------------------------
 * The inline step marks an event published after the broker's confirm, in
 * a statement of its own: a worker that dies between the two leaves a
 * published message and a row still pending (try 0).  Under load (4
 * threads of creates), every 8th request carries an X-Request-ID the test
 * hook FINTEGRATE_TEST_KILL_AFTER_CONFIRM matches: its worker is SIGKILLed
 * after the confirm and nginx answers 502.  Once those rows are past the
 * 30-second in-flight rule (aged by the test instead of waited for), the
 * relay publishes them again: no event is lost, every killed one reaches
 * the queue twice (at-least-once; consumers deduplicate by event_id) and
 * every other one once. */

#define KILL_CONFIRM_ENV "FINTEGRATE_TEST_KILL_AFTER_CONFIRM"
#define KC_THREADS 4
#define KC_PER_THREAD 40
#define KC_EVERY 8

struct kc_load {
    const char *key;
    char prefix[64]; /* the killed requests' X-Request-ID prefix */
    int t;
    int created, killed, other;
};

static void *
kc_thread(void *arg)
{
    struct kc_load *l = arg;
    for (int i = 0; i < KC_PER_THREAD; i++) {
        char name[96], hdr[160];
        bool kill = i % KC_EVERY == KC_EVERY - 1;
        itest_unique(name, sizeof name, "kc");
        snprintf(hdr, sizeof hdr, "X-Request-ID: %s%d-%d", kill ? l->prefix : "kc-ok-", l->t, i);
        char *body = itest_json_text(json_pack("{s:s}", "name", name));
        struct itest_resp *r =
            itest_request("POST", "/customer/data", l->key, body, hdr);
        free(body);
        if (!kill && r->status == 201)
            l->created++;
        else if (kill && r->status == 502)
            l->killed++;
        else
            l->other++;
        itest_resp_free(r);
    }
    itest_thread_done();
    return NULL;
}

static void
worker_killed_between_confirm_and_mark_loses_no_event(void **state)
{
    (void)state;
    struct itest_consumer c;
    char queue[160], prefix[64];
    new_consumer(&c, queue, "kc");
    snprintf(prefix, sizeof prefix, "kc-kill-%ld-", (long)getpid());

    setenv(KILL_CONFIRM_ENV, prefix, 1);
    restart_app_with(NULL, NULL, NULL);
    unsetenv(KILL_CONFIRM_ENV);

    pthread_t th[KC_THREADS];
    struct kc_load l[KC_THREADS];
    for (int t = 0; t < KC_THREADS; t++) {
        l[t] = (struct kc_load){.key = c.key, .t = t};
        snprintf(l[t].prefix, sizeof l[t].prefix, "%s", prefix);
        pthread_create(&th[t], NULL, kc_thread, &l[t]);
    }
    int created = 0, killed = 0, other = 0;
    for (int t = 0; t < KC_THREADS; t++) {
        pthread_join(th[t], NULL);
        created += l[t].created;
        killed += l[t].killed;
        other += l[t].other;
    }
    const int want_killed = KC_THREADS * (KC_PER_THREAD / KC_EVERY);
    const int total = KC_THREADS * KC_PER_THREAD;
    printf("      %d created, %d killed after the confirm (502), %d other\n",
           created, killed, other);
    itest_expect(NULL, killed == want_killed && other == 0,
                 "%d of %d hooked requests answered 502, %d answers neither "
                 "201 nor the hook's 502",
                 killed, want_killed, other);

    char like[80];
    snprintf(like, sizeof like, "%s%%", prefix);
    long committed = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1", c.id);
    long unmarked = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1 AND "
        "request_id LIKE $2 AND publish_status = 'pending' AND "
        "publish_try_count = 0",
        c.id, like);
    itest_expect(NULL, committed == total,
                 "%ld events committed, want %d (the kill comes after COMMIT)",
                 committed, total);
    itest_expect(NULL, unmarked == want_killed,
                 "%ld killed events left unmarked (pending, try 0), want %d",
                 unmarked, want_killed);

    /* The 30-second in-flight rule, passed. */
    PQclear(itest_sql("UPDATE customer_events SET created_at = created_at - "
                      "interval '31 seconds' WHERE consumer_id = $1 AND "
                      "request_id LIKE $2",
                      c.id, like));
    double until = itest_now() + 20;
    long pending;
    while ((pending = itest_sql_long(
                "SELECT count(*) FROM customer_events WHERE consumer_id = $1 "
                "AND publish_status <> 'published'",
                c.id)) > 0) {
        if (itest_now() > until)
            itest_failf("%ld events still not published by the relay", pending);
        itest_sleep_ms(100);
    }
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "consumer_id = $1 AND request_id LIKE $2 AND "
                                "publish_try_count = 1",
                                c.id, like) == want_killed,
                 "the relay's try is the killed events' first recorded one");

    struct amqp_expected *exp;
    size_t want = amqp_expected_sql(CREATED_AT_ORDER, c.id, &exp);
    struct amqp_sub sub;
    if (amqp_sub_open(&sub, queue) != 0) {
        free(exp);
        itest_failf("cannot consume from %s", queue);
    }
    struct amqp_tally tl;
    amqp_sub_tally(&sub, exp, want, 15000, 1500, &tl);
    amqp_sub_close(&sub);
    size_t twice = 0, bad = 0;
    for (size_t i = 0; i < want; i++) {
        twice += exp[i].count == 2;
        bad += exp[i].count < 1 || exp[i].count > 2;
    }
    free(exp);
    printf("      queue: %zu messages, %zu distinct of %zu, %zu twice, "
           "%zu unknown\n",
           tl.total, tl.distinct, want, twice, tl.unknown);
    itest_expect(NULL, tl.distinct == want && bad == 0 && tl.unknown == 0,
                 "lost: %zu of %zu events never reached the queue",
                 want - tl.distinct, want);
    itest_expect(NULL, twice == (size_t)want_killed && tl.duplicates == twice,
                 "%zu events reached the queue twice, want exactly the %d "
                 "killed ones",
                 twice, want_killed);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_reports_the_relay),
        cmocka_unit_test_teardown(
            relay_publishes_an_outage_backlog_without_a_call, restore),
        cmocka_unit_test_teardown(
            backoff_retries_a_refused_event_on_the_schedule, restore),
        cmocka_unit_test_teardown(two_relays_publish_every_event_once, restore),
        cmocka_unit_test_teardown(
            order_across_an_outage_is_kept_by_the_publisher, restore),
        cmocka_unit_test_teardown(
            worker_killed_between_confirm_and_mark_loses_no_event, restore),
    };
    return itest_exit(
        cmocka_run_group_tests_name("relay", tests, setup, teardown));
}
