/*
 * tests/integration/test_outage.c — the broker outage story of issue 5
 * (docs/API.md §5.7, §7.2, §7.5 and §7.6),
 * against the real RabbitMQ of the test stack, which it stops and starts
 * with scripts/stack.sh broker-stop / broker-start.
 *
 * One outage window, shared by the tests in this order (each test builds on
 * the state the previous ones left; cmocka runs them in the listed order):
 *
 *   broker up     customers published, drained from the consumer's queue
 *   broker-stop   POST answers 201, the event is pending with
 *                 publish_try_count 1 and a reason; many POSTs all succeed
 *                 (latency recorded, not asserted) and trip the breaker;
 *                 other changes (tags, status, deletion) pending too;
 *                 GET /health and GET /events/health say down/circuit_open;
 *                 a consumer created now is 201; a delivery confirmation
 *                 of a pending event marks it published; a resend fails
 *                 fast and an event reaching 10 tries becomes `failed`
 *   broker-start  resend with an event_types filter; max_try_count
 *                 skipping; resend of everything in created_at order, each
 *                 message exactly once; the consumer created during the
 *                 outage has its queues and its event; two resends at the
 *                 same time publish each event once; redeliver republishes
 *                 published-but-unconfirmed events (deliver_try_count);
 *                 confirm-delivery rules; every worker publishes again.
 *
 * Messages are read with a real AMQP consumer (itest_amqp.h). Expected
 * counts come from SQL taken just before each call: the test stack is
 * shared with the other binaries, which run one after the other, so
 * nothing else changes the outbox meanwhile; events of earlier binaries
 * still pending are counted, not assumed away.
 *
 * Two things need fresh workers and get them by rolling the pool (SIGHUP
 * to the master, as test_resilience does): the rule that a re-drive whose
 * forced probe fails goes on as "Broker circuit open" is checked on a
 * worker whose breaker is closed, whatever the outage did to the others.
 *
 * Its counts assume that nobody else re-drives (docs/API.md §7.4's relay would
 * publish the outage's events by itself): the group setup restarts the
 * pool with FINTEGRATE_RELAY_INTERVAL_MS=0 and the teardown restarts it
 * with the stack's own setting.
 *
 * The broker is ALWAYS running again when this binary ends: after a failed
 * assertion or a crash inside a test (cmocka catches both, then the group
 * teardown runs broker-start), and on SIGTERM/SIGINT (the suite's timeout,
 * Ctrl-C: a handler runs broker-start before exiting). The teardown also
 * waits out the breaker's cool-down so that the next binary finds every
 * worker publishing.
 */
#include "itest.h"
#include "itest_amqp.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUTAGE_POSTS 40

/* A: the consumer whose queue the tests read (created through the API).
 * B: another consumer (SQL), for the 404 of a foreign confirmation.
 * D: created through the API while the broker is down. */
static struct itest_consumer g_a, g_b, g_d;
static char g_queue_a[160];
static struct amqp_sub g_sub; /* A's queue, after the broker is back */
static bool g_broker_stopped;
static double g_broker_back_at; /* itest_now() when broker-start returned */
static bool g_relay_off;        /* the pool runs with the relay off */
static char *g_relay_interval;  /* FINTEGRATE_RELAY_INTERVAL_MS as given */

/* Events written during the outage. */
static char g_first_pending[37];               /* the first POST's event */
static char g_outage_create[OUTAGE_POSTS][37]; /* creation events */
static char g_outage_cust[OUTAGE_POSTS][37];   /* their customers */
/* Customers created (and published) before the outage: the tag, deletion
 * and status changes during the outage are theirs, so each change is its
 * customer's earliest pending event and no re-drive holds it behind a
 * pending creation (docs/API.md §7.3, per-customer order). */
static char g_up_cust[10][37];
static char g_tag_ev[3][37];   /* customer_tag_change */
static char g_del_ev[4][37];   /* customer_deletion */
static char g_stat_ev[2][37];  /* status change: E1, E9 */
static char g_d_event[37];     /* D's customer's creation */
static json_t *g_down_reasons; /* failure reasons of the resend while down */

/* --------------------------------------------------------------- helpers */

static long
env_long(const char *name, long dflt)
{
    const char *v = itest_env(name);
    return v != NULL ? strtol(v, NULL, 10) : dflt;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50, p99 and max of n latencies (sorts them). */
static void
report_latency(const char *what, double *v, size_t n)
{
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    size_t p99 = (size_t)((double)(n - 1) * 0.99 + 0.5);
    fprintf(stderr,
            "    latency %s: n=%zu p50 %.1f ms, p99 %.1f ms, max %.1f "
            "ms\n",
            what, n, v[n / 2] * 1e3, v[p99] * 1e3, v[n - 1] * 1e3);
}

/* POST /customer/data as `key`; copies customer_id and event_id; returns
 * the elapsed seconds. */
static double
post_customer(const char *key, const char *prefix, char cid[37], char eid[37])
{
    char name[96];
    itest_unique(name, sizeof name, prefix);
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    double t0 = itest_now();
    struct itest_resp *r =
        itest_request("POST", "/customer/data", key, body, NULL);
    double dt = itest_now() - t0;
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    snprintf(cid, 37, "%s", itest_jstr(d, "customer_id"));
    snprintf(eid, 37, "%s", itest_jstr(d, "event_id"));
    itest_resp_free(r);
    return dt;
}

/* One request that must succeed with `status` (0: any 2xx) and write one
 * event about customer_id; copies that event's id. */
static void
change(const char *key, const char *method, const char *path, const char *body,
       long status, const char *customer_id, char eid[37])
{
    struct itest_resp *r = itest_request(method, path, key, body, NULL);
    itest_assert_envelope(r, status != 0                             ? status
                             : (r->status >= 200 && r->status < 300) ? r->status
                                                                     : 200);
    itest_resp_free(r);
    char *id = itest_sql_value(
        "SELECT event_id::text FROM customer_events WHERE customer_id = $1 "
        "ORDER BY sequence DESC LIMIT 1",
        customer_id);
    if (id == NULL)
        itest_failf("%s %s wrote no event", method, path);
    snprintf(eid, 37, "%s", id);
    free(id);
}

/* The outbox columns of one event. */
struct row {
    char publish_status[16], deliver_status[16];
    long try_count, deliver_try_count;
    bool published_at, last_tried_at, deliver_last_tried_at, delivered_at;
    char reason[512];
    char *payload; /* owned */
};

static void
load_row(const char *event_id, struct row *o)
{
    memset(o, 0, sizeof *o);
    PGresult *q = itest_sql(
        "SELECT publish_status, publish_try_count, published_at IS NOT NULL, "
        "publish_last_tried_at IS NOT NULL, "
        "coalesce(publish_failure_reason, ''), deliver_status, "
        "deliver_try_count, deliver_last_tried_at IS NOT NULL, "
        "delivered_at IS NOT NULL, payload::text "
        "FROM customer_events WHERE event_id = $1",
        event_id);
    if (PQntuples(q) != 1) {
        PQclear(q);
        itest_failf("no customer_events row %s", event_id);
    }
    snprintf(o->publish_status, sizeof o->publish_status, "%s",
             PQgetvalue(q, 0, 0));
    o->try_count = strtol(PQgetvalue(q, 0, 1), NULL, 10);
    o->published_at = PQgetvalue(q, 0, 2)[0] == 't';
    o->last_tried_at = PQgetvalue(q, 0, 3)[0] == 't';
    snprintf(o->reason, sizeof o->reason, "%s", PQgetvalue(q, 0, 4));
    snprintf(o->deliver_status, sizeof o->deliver_status, "%s",
             PQgetvalue(q, 0, 5));
    o->deliver_try_count = strtol(PQgetvalue(q, 0, 6), NULL, 10);
    o->deliver_last_tried_at = PQgetvalue(q, 0, 7)[0] == 't';
    o->delivered_at = PQgetvalue(q, 0, 8)[0] == 't';
    o->payload = strdup(PQgetvalue(q, 0, 9));
    PQclear(q);
}

static void
row_free(struct row *o)
{
    free(o->payload);
    o->payload = NULL;
}

/* The event is pending after a failed inline try (docs/API.md §7.2). */
static void
assert_pending_after_inline_try(const char *event_id)
{
    struct row o;
    load_row(event_id, &o);
    bool ok = strcmp(o.publish_status, "pending") == 0 && o.try_count == 1 &&
              o.last_tried_at && !o.published_at && o.reason[0] != '\0';
    if (!ok) {
        row_free(&o);
        itest_failf("event %s: want pending, publish_try_count 1, "
                    "publish_last_tried_at set, published_at NULL and a "
                    "reason; got %s, %ld, %d, %d, \"%s\"",
                    event_id, o.publish_status, o.try_count, o.last_tried_at,
                    o.published_at, o.reason);
    }
    row_free(&o);
}

static void
set_try_count(const char *event_id, const char *n)
{
    PQclear(itest_sql("UPDATE customer_events SET publish_try_count = $2 "
                      "WHERE event_id = $1",
                      event_id, n));
}

/* What resend would pick (docs/API.md §7.5), counted in SQL: pending, in
 * the period (1 day here), of the given types (JSON array text or NULL),
 * not an inline publish in flight. min_tries: only those with
 * publish_try_count >= min_tries (0: all). */
static long
resend_candidates(const char *types_json, const char *min_tries)
{
    return itest_sql_long(
        "SELECT count(*) FROM customer_events "
        " WHERE publish_status = 'pending' "
        "   AND created_at > now() - interval '1 day' "
        "   AND ($1::json IS NULL OR event_type IN "
        "        (SELECT json_array_elements_text($1::json))) "
        "   AND NOT (publish_try_count = 0 "
        "            AND created_at > now() - interval '30 seconds') "
        "   AND publish_try_count >= $2::int",
        types_json, min_tries);
}

struct summary {
    long total, attempted, succeeded, failed, skipped;
    json_t *failed_events; /* borrowed from resp */
};

/* POST path (resend or redeliver) as the administrator with `body`
 * (stolen); asserts 200, the shape of data and the summary identities of
 * docs/API.md §5.7. Returns the response (owned). */
static struct itest_resp *
redrive(const char *path, json_t *body, struct summary *s)
{
    char *text = itest_json_text(body);
    struct itest_resp *r =
        itest_request("POST", path, itest_admin_key(), text, NULL);
    free(text);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "summary", "failed_events",
                      "failed_events_truncated");
    json_t *sum = json_object_get(d, "summary");
    itest_assert_keys(r, sum, "total_pending", "attempted", "succeeded",
                      "failed", "skipped");
    static const char *const k[] = {"total_pending", "attempted", "succeeded",
                                    "failed", "skipped"};
    long *dst[] = {&s->total, &s->attempted, &s->succeeded, &s->failed,
                   &s->skipped};
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(sum, k[i]);
        itest_expect(r, json_is_integer(v) && json_integer_value(v) >= 0,
                     "summary.%s must be a non-negative integer", k[i]);
        *dst[i] = (long)json_integer_value(v);
    }
    itest_expect(r, s->total == s->attempted + s->skipped,
                 "total_pending (%ld) must be attempted (%ld) + skipped "
                 "(%ld)",
                 s->total, s->attempted, s->skipped);
    itest_expect(r, s->attempted == s->succeeded + s->failed,
                 "attempted (%ld) must be succeeded (%ld) + failed (%ld)",
                 s->attempted, s->succeeded, s->failed);
    s->failed_events = json_object_get(d, "failed_events");
    itest_expect(r, json_is_array(s->failed_events),
                 "failed_events must be an array");
    size_t want = s->failed > 100 ? 100 : (size_t)s->failed;
    itest_expect(r, json_array_size(s->failed_events) == want,
                 "failed_events has %zu entries, want %zu",
                 json_array_size(s->failed_events), want);
    itest_expect(
        r,
        json_is_boolean(json_object_get(d, "failed_events_truncated")) &&
            json_is_true(json_object_get(d, "failed_events_truncated")) ==
                (s->failed > 100),
        "failed_events_truncated must say whether more than 100 "
        "failed");
    size_t i;
    json_t *fe;
    json_array_foreach(s->failed_events, i, fe)
    {
        itest_assert_keys(r, fe, "event_id", "event_type", "try_count",
                          "failure_reason");
        const char *why = itest_jstr(fe, "failure_reason");
        itest_expect(r, why != NULL && why[0] != '\0',
                     "failed_events[%zu].failure_reason must be a sentence", i);
    }
    return r;
}

/* The failed_events entry of event_id, or NULL. */
static json_t *
failed_entry(const struct summary *s, const char *event_id)
{
    size_t i;
    json_t *fe;
    json_array_foreach(s->failed_events, i, fe)
    {
        const char *id = itest_jstr(fe, "event_id");
        if (id != NULL && strcmp(id, event_id) == 0)
            return fe;
    }
    return NULL;
}

/* A list of event ids from SQL (first column), in the query's order. */
struct idlist {
    char (*id)[37];
    size_t n;
};

static void
idlist_free(struct idlist *l)
{
    free(l->id);
    l->id = NULL;
    l->n = 0;
}

#define ids_sql(out, query, ...) ids_from(out, itest_sql(query, __VA_ARGS__))

static void
ids_from(struct idlist *out, PGresult *q)
{
    out->n = (size_t)PQntuples(q);
    out->id = calloc(out->n + 1, sizeof *out->id);
    for (size_t i = 0; i < out->n; i++)
        snprintf(out->id[i], 37, "%s", PQgetvalue(q, (int)i, 0));
    PQclear(q);
}

/* Reads what arrives on sub and asserts it is exactly `want`, in that order
 * when `ordered` (else as a set), each once, nothing else; and the bodies
 * are the stored payloads byte for byte. */
static void
expect_messages(struct amqp_sub *sub, const struct idlist *want, bool ordered,
                const char *what)
{
    struct amqp_batch b;
    size_t n = amqp_sub_collect(sub, want->n, 10000, 500, &b);
    bool ok = n == want->n;
    for (size_t i = 0; ok && i < n; i++) {
        if (ordered) {
            ok = strcmp(b.msgs[i].message_id, want->id[i]) == 0;
        } else {
            ok = false;
            for (size_t j = 0; j < want->n; j++)
                if (strcmp(b.msgs[i].message_id, want->id[j]) == 0)
                    ok = true;
            for (size_t j = 0; j < i; j++)
                if (strcmp(b.msgs[i].message_id, b.msgs[j].message_id) == 0)
                    ok = false; /* twice */
        }
    }
    if (!ok) {
        fprintf(stderr, "%s: %zu message(s) on %s, want %zu%s\n", what, n,
                sub->queue, want->n, ordered ? " in this order" : "");
        for (size_t i = 0; i < want->n || i < n; i++)
            fprintf(stderr, "  %3zu  want %-36s  got %-36s %s\n", i,
                    i < want->n ? want->id[i] : "-",
                    i < n ? b.msgs[i].message_id : "-",
                    i < n ? b.msgs[i].routing_key : "");
        amqp_batch_free(&b);
        itest_failf("%s: the messages are not the expected ones (see above)",
                    what);
    }
    for (size_t i = 0; i < n; i++) {
        struct row o;
        load_row(b.msgs[i].message_id, &o);
        bool same = b.msgs[i].body_len == strlen(o.payload) &&
                    memcmp(b.msgs[i].body, o.payload, b.msgs[i].body_len) == 0;
        row_free(&o);
        if (!same) {
            char id[64];
            snprintf(id, sizeof id, "%s", b.msgs[i].message_id);
            amqp_batch_free(&b);
            itest_failf("%s: the body of %s is not its payload byte for byte",
                        what, id);
        }
    }
    amqp_batch_free(&b);
}

/* Nothing arrives on sub within ms. */
static void
expect_no_message(struct amqp_sub *sub, long ms, const char *what)
{
    struct amqp_batch b;
    size_t n = amqp_sub_collect(sub, 0, 0, ms, &b);
    if (n != 0) {
        fprintf(stderr, "%s: unexpected message %s (%s)\n", what,
                b.msgs[0].message_id, b.msgs[0].routing_key);
        amqp_batch_free(&b);
        itest_failf("%s: %zu message(s) arrived, want none", what, n);
    }
    amqp_batch_free(&b);
}

/* A test that fails half-way leaves messages on A's queue that the next
 * test would take for its own: every test that reads g_sub starts with
 * sub_begin() (drains what a failed predecessor left) and ends with
 * sub_end(). */
static bool g_sub_dirty;

static void
sub_begin(void)
{
    if (g_sub_dirty && g_sub.conn != NULL) {
        struct amqp_batch b;
        size_t n = amqp_sub_collect(&g_sub, 0, 0, 1000, &b);
        if (n > 0)
            fprintf(stderr,
                    "    (drained %zu message(s) left by a failed "
                    "test)\n",
                    n);
        amqp_batch_free(&b);
    }
    g_sub_dirty = true;
}

static void
sub_end(void)
{
    g_sub_dirty = false;
}

/* Rolls every FastCGI worker (SIGHUP to the master) and waits until all are
 * new: fresh workers, fresh (closed) breakers. */
static void
roll_workers(void)
{
    pid_t master = itest_master_pid();
    if (master <= 0)
        itest_failf("no FastCGI master (FINTEGRATE_RUN_DIR/fcgi.pid)");
    pid_t before[256], after[256];
    int n = itest_children(master, before, 256);
    if (n == 0 || kill(master, SIGHUP) != 0)
        itest_failf("cannot roll the workers of master %ld", (long)master);
    double deadline = itest_now() + 10.0;
    while (itest_now() < deadline) {
        int m = itest_children(master, after, 256);
        bool any_old = false;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                any_old = any_old || after[i] == before[j];
        if (m == n && !any_old)
            return;
        usleep(10000);
    }
    itest_failf("10 s after SIGHUP the workers have not all been replaced");
}

static void
broker_start(void)
{
    if (itest_stack("broker-start") != 0)
        itest_failf("scripts/stack.sh broker-start failed");
    g_broker_stopped = false;
    g_broker_back_at = itest_now();
}

static const char *
broker_field(const struct itest_resp *r)
{
    return itest_jstr(itest_data(r), "broker");
}

static bool
down_or_open(const char *b)
{
    return b != NULL &&
           (strcmp(b, "down") == 0 || strcmp(b, "circuit_open") == 0);
}

/* ------------------------------------------------------------- group */

/* SIGTERM/SIGINT while the broker is stopped: start it again before
 * dying. fork, execv and waitpid are async-signal-safe; the command line
 * is built by the setup. */
static char g_start_cmd[4096];

static void
on_signal(int sig)
{
    if (g_broker_stopped && g_start_cmd[0] != '\0') {
        pid_t pid = fork();
        if (pid == 0) {
            char *const argv[] = {"/bin/sh", "-c", g_start_cmd, NULL};
            execv("/bin/sh", argv);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    _exit(128 + sig);
}

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    if (itest_env("FINTEGRATE_CHECKOUT") == NULL ||
        itest_env("FINTEGRATE_AMQP_URL") == NULL) {
        fprintf(stderr, "test_outage: needs FINTEGRATE_CHECKOUT and "
                        "FINTEGRATE_AMQP_URL (scripts/test.sh exports them)\n");
        return -1;
    }
    if (!itest_broker_up()) {
        fprintf(stderr, "test_outage: the broker is not running\n");
        return -1;
    }
    snprintf(g_start_cmd, sizeof g_start_cmd,
             "'%s/scripts/stack.sh' broker-start 1>&2",
             itest_env("FINTEGRATE_CHECKOUT"));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    const char *interval = itest_env("FINTEGRATE_RELAY_INTERVAL_MS");
    g_relay_interval = interval != NULL ? strdup(interval) : NULL;
    setenv("FINTEGRATE_RELAY_INTERVAL_MS", "0", 1);
    g_relay_off = true;
    if (itest_app_restart() != 0) {
        fprintf(stderr, "test_outage: could not restart the pool with the "
                        "relay off\n");
        return -1;
    }
    itest_consumer_create_api(&g_a, "outage");
    itest_queue_name(g_queue_a, sizeof g_queue_a, g_a.name, false);
    itest_consumer_create(&g_b, "ACTIVE", "active", "1 day");
    return 0;
}

static int
teardown(void **state)
{
    int rc = 0;
    amqp_sub_close(&g_sub);
    json_decref(g_down_reasons);
    g_down_reasons = NULL;
    if (g_broker_stopped || !itest_broker_up()) {
        fprintf(stderr, "test_outage: starting the broker again\n");
        if (itest_stack("broker-start") != 0) {
            fprintf(stderr, "test_outage: broker-start FAILED\n");
            rc = -1;
        } else {
            g_broker_stopped = false;
            g_broker_back_at = itest_now();
        }
    }
    /* Workers whose breaker opened during the outage let a publish through
     * again after the cool-down (docs/API.md §7.2): wait it out, so the
     * next binary's inline publishes are not refused as "circuit open". */
    if (g_broker_back_at > 0) {
        double until =
            g_broker_back_at +
            (double)env_long("FINTEGRATE_BREAKER_COOLDOWN_MS", 10000) / 1000.0 +
            0.5;
        double left = until - itest_now();
        if (left > 0) {
            fprintf(stderr,
                    "test_outage: waiting %.1f s for the breakers' "
                    "cool-down\n",
                    left);
            usleep((useconds_t)(left * 1e6));
        }
    }
    if (g_relay_off) {
        itest_setenv_or_unset("FINTEGRATE_RELAY_INTERVAL_MS", g_relay_interval);
        if (itest_app_restart() != 0) {
            fprintf(stderr, "test_outage: could not restart the pool with "
                            "the stack's relay setting\n");
            rc = -1;
        } else {
            g_relay_off = false;
        }
    }
    free(g_relay_interval);
    g_relay_interval = NULL;
    itest_group_teardown(state);
    return rc;
}

/* ----------------------------------------------------------- the story */

static void
broker_stopped_post_is_201_and_event_pending(void **state)
{
    (void)state;
    /* Broker up: a few customers, published inline and read from the
     * queue (so that it is empty before the outage); their latency is
     * the baseline. */
    double up_lat[10];
    struct idlist before = {calloc(10, 37), 10};
    char cid[37];
    for (int i = 0; i < 10; i++)
        up_lat[i] = post_customer(g_a.key, "up", g_up_cust[i], before.id[i]);
    struct amqp_sub s;
    if (amqp_sub_open(&s, g_queue_a) != 0)
        itest_failf("cannot consume from %s", g_queue_a);
    expect_messages(&s, &before, true, "customers created with the broker up");
    amqp_sub_close(&s);
    for (int i = 0; i < 10; i++) {
        struct row o;
        load_row(before.id[i], &o);
        bool ok =
            strcmp(o.publish_status, "published") == 0 && o.try_count == 1;
        row_free(&o);
        if (!ok)
            itest_failf("event %s: not published by its inline try",
                        before.id[i]);
    }
    idlist_free(&before);
    report_latency("POST /customer/data, broker up", up_lat, 10);

    /* The outage. */
    g_broker_stopped = true;
    double t0 = itest_now();
    if (itest_stack("broker-stop") != 0)
        itest_failf("scripts/stack.sh broker-stop failed");
    fprintf(stderr, "    broker-stop took %.1f s\n", itest_now() - t0);
    if (itest_broker_up())
        itest_failf("the broker still answers after broker-stop");

    double dt = post_customer(g_a.key, "down", cid, g_first_pending);
    fprintf(stderr, "    first POST with the broker down: %.1f ms\n", dt * 1e3);
    assert_pending_after_inline_try(g_first_pending);
    struct row o;
    load_row(g_first_pending, &o);
    fprintf(stderr, "    its reason: %s\n", o.reason);
    itest_expect(NULL, strcmp(o.deliver_status, "pending") == 0,
                 "deliver_status must stay pending");
    row_free(&o);

    /* GET /events lists it as the contract's pending event. */
    struct itest_resp *r =
        itest_requestf("GET", g_a.key, NULL, "/events?customer_id=%s", cid);
    json_t *d = itest_assert_envelope(r, 200);
    json_t *ev = json_array_get(json_object_get(d, "events"), 0);
    itest_assert_jstr(r, ev, "event_id", g_first_pending);
    itest_assert_jstr(r, ev, "publish_status", "pending");
    itest_expect(
        r, json_integer_value(json_object_get(ev, "publish_try_count")) == 1,
        "publish_try_count must be 1");
    itest_expect(r, json_is_null(json_object_get(ev, "published_at")),
                 "published_at must be null");
    itest_expect(r, itest_jstr(ev, "publish_failure_reason") != NULL,
                 "publish_failure_reason must be set");
    itest_resp_free(r);
}

static void
many_posts_during_outage_all_succeed(void **state)
{
    (void)state;
    double lat[OUTAGE_POSTS];
    for (int i = 0; i < OUTAGE_POSTS; i++)
        lat[i] = post_customer(g_a.key, "down", g_outage_cust[i],
                               g_outage_create[i]);
    for (int i = 0; i < OUTAGE_POSTS; i++)
        assert_pending_after_inline_try(g_outage_create[i]);
    report_latency("POST /customer/data, broker down", lat, OUTAGE_POSTS);

    /* With W workers and a threshold of N, more than W*N failures open
     * at least one worker's breaker (pigeonhole); its refusals say so
     * (docs/API.md §7.2). */
    long workers = env_long("FINTEGRATE_WORKERS", 4);
    long threshold = env_long("FINTEGRATE_BREAKER_FAILURES", 5);
    long open = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1 "
        "AND publish_failure_reason = 'Broker circuit open'",
        g_a.id);
    fprintf(stderr, "    %ld of %d refused by an open breaker\n", open,
            OUTAGE_POSTS + 1);
    if (OUTAGE_POSTS + 1 > workers * threshold)
        itest_expect(NULL, open >= 1,
                     "%d failures on %ld workers (threshold %ld) must open "
                     "a breaker: no event says \"Broker circuit open\"",
                     OUTAGE_POSTS + 1, workers, threshold);
}

static void
other_changes_during_outage_are_pending(void **state)
{
    (void)state;
    char body[512];
    /* customers created before the outage: 0-2 a tag each, 3-6
     * deleted, 7-8 status changes */
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body,
                 "{\"customer_id\":\"%.36s\",\"tag_keys\":[\"tier\"],"
                 "\"tag_values\":[\"gold\"]}",
                 g_up_cust[i]);
        change(g_a.key, "POST", "/customer/tag", body, 0, g_up_cust[i],
               g_tag_ev[i]);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(body, sizeof body, "{\"customer_id\":\"%.36s\"}",
                 g_up_cust[3 + i]);
        change(g_a.key, "DELETE", "/customer/data", body, 200, g_up_cust[3 + i],
               g_del_ev[i]);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body,
                 "{\"customer_id\":\"%.36s\",\"status\":\"INACTIVE\"}",
                 g_up_cust[7 + i]);
        change(g_a.key, "PATCH", "/customer/change-status", body, 200,
               g_up_cust[7 + i], g_stat_ev[i]);
    }
    for (int i = 0; i < 3; i++)
        assert_pending_after_inline_try(g_tag_ev[i]);
    for (int i = 0; i < 4; i++)
        assert_pending_after_inline_try(g_del_ev[i]);
    for (int i = 0; i < 2; i++)
        assert_pending_after_inline_try(g_stat_ev[i]);
}

static void
health_reports_the_broker_down(void **state)
{
    (void)state;
    /* Several times, so that several workers answer: none may say up. */
    for (int i = 0; i < 8; i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", NULL, NULL, NULL);
        json_t *d = itest_assert_envelope(r, 200);
        itest_assert_jstr(r, d, "database", "up");
        itest_expect(r, down_or_open(broker_field(r)),
                     "GET /health: broker must be down or circuit_open");
        itest_resp_free(r);
    }
    long pending = itest_sql_long0("SELECT count(*) FROM customer_events "
                                   "WHERE publish_status = 'pending'");
    long failed = itest_sql_long0("SELECT count(*) FROM customer_events "
                                  "WHERE publish_status = 'failed'");
    struct itest_resp *r =
        itest_request("GET", "/events/health", itest_admin_key(), NULL, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "pending_count", "oldest_pending_age_hours",
                      "failed_count", "undelivered_count",
                      "delivery_failed_count", "broker", "relay");
    itest_expect(r, down_or_open(broker_field(r)),
                 "GET /events/health: broker must be down or circuit_open");
    itest_expect(
        r, json_integer_value(json_object_get(d, "pending_count")) == pending,
        "pending_count must be %ld", pending);
    itest_expect(
        r, json_integer_value(json_object_get(d, "failed_count")) == failed,
        "failed_count must be %ld", failed);
    json_t *age = json_object_get(d, "oldest_pending_age_hours");
    itest_expect(r, json_is_number(age) && json_number_value(age) >= 0,
                 "oldest_pending_age_hours must be a number while events "
                 "are pending");
    itest_resp_free(r);

    /* Administrators only. */
    r = itest_request("GET", "/events/health", g_a.key, NULL, NULL);
    itest_assert_error(r, 403, NULL);
    itest_resp_free(r);
}

static void
consumer_created_while_broker_down(void **state)
{
    (void)state;
    double t0 = itest_now();
    itest_consumer_create_api(&g_d, "outage-d");
    fprintf(stderr,
            "    POST /consumer/data + /consumer/api-key with the "
            "broker down: %.1f ms\n",
            (itest_now() - t0) * 1e3);
    char cid[37];
    post_customer(g_d.key, "d-down", cid, g_d_event);
    assert_pending_after_inline_try(g_d_event);
    /* Its consumer_creation event is pending too (system consumer). */
    long n = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE event_type = "
        "'consumer_creation' AND publish_status = 'pending' "
        "AND payload::jsonb -> 'data' ->> 'consumer_id' = $1",
        g_d.id);
    itest_expect(NULL, n == 1,
                 "the consumer_creation event of D must be pending");
}

static void
confirmation_of_pending_event_marks_it_published(void **state)
{
    (void)state;
    char body[256];
    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"status\":\"received\"}",
             g_first_pending);
    struct itest_resp *r =
        itest_request("POST", "/events/confirm-delivery", g_a.key, body, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "event_id", "deliver_status", "delivered_at");
    itest_assert_jstr(r, d, "event_id", g_first_pending);
    itest_assert_jstr(r, d, "deliver_status", "delivered");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "delivered_at")),
                 "delivered_at must be a timestamp");
    itest_resp_free(r);
    struct row o;
    load_row(g_first_pending, &o);
    bool ok = strcmp(o.publish_status, "published") == 0 && o.published_at &&
              strcmp(o.deliver_status, "delivered") == 0 && o.delivered_at;
    row_free(&o);
    itest_expect(NULL, ok,
                 "a confirmed pending event must become published "
                 "(published_at set) and delivered");
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_event_receipts "
                                "WHERE event_id = $1",
                                g_first_pending) == 1,
                 "one receipt expected");
}

static void
resend_while_down_tenth_try_fails_the_event(void **state)
{
    (void)state;
    /* Fresh workers: every breaker closed, no failure counted yet, so the
     * next test's rule is checked whatever state the outage left. */
    roll_workers();
    /* E1 (status change, try 1) and E9 (status change, set to 9 tries). */
    set_try_count(g_stat_ev[1], "9");
    const char *types = "[\"customer_status_change\"]";
    long total = resend_candidates(types, "0");
    double t0 = itest_now();
    struct summary s;
    struct itest_resp *r =
        redrive("/events/resend",
                json_pack("{s:i, s:[s]}", "period_in_days", 1, "event_types",
                          "customer_status_change"),
                &s);
    double dt = itest_now() - t0;
    fprintf(stderr, "    resend of %ld with the broker down: %.1f ms\n",
            s.attempted, dt * 1e3);
    itest_expect(r, s.total == total, "total_pending %ld, want %ld", s.total,
                 total);
    itest_expect(r,
                 s.skipped == 0 && s.succeeded == 0 &&
                     s.failed == s.attempted && s.attempted == total,
                 "with the broker down every candidate is attempted and "
                 "fails");
    json_t *e1 = failed_entry(&s, g_stat_ev[0]);
    json_t *e9 = failed_entry(&s, g_stat_ev[1]);
    itest_expect(r, e1 != NULL && e9 != NULL,
                 "both status-change events must be in failed_events");
    itest_expect(r, json_integer_value(json_object_get(e1, "try_count")) == 2,
                 "E1's try_count must be 2");
    itest_expect(r, json_integer_value(json_object_get(e9, "try_count")) == 10,
                 "E9's try_count must be 10");
    itest_assert_jstr(r, e1, "event_type", "customer_status_change");
    /* The reasons, for the next test (failed_events is in created_at
     * order, the order of the attempts). */
    size_t i;
    json_t *fe;
    json_decref(g_down_reasons);
    g_down_reasons = json_array();
    json_array_foreach(s.failed_events, i, fe)
    {
        fprintf(stderr, "    failed_events[%zu]: %s\n", i,
                itest_jstr(fe, "failure_reason"));
        json_array_append(g_down_reasons,
                          json_object_get(fe, "failure_reason"));
    }
    itest_resp_free(r);

    struct row o;
    load_row(g_stat_ev[1], &o);
    bool ok = strcmp(o.publish_status, "failed") == 0 && o.try_count == 10 &&
              !o.published_at && o.reason[0] != '\0';
    row_free(&o);
    itest_expect(NULL, ok,
                 "an event reaching 10 tries must become failed (try 10, "
                 "a reason, no published_at)");
    load_row(g_stat_ev[0], &o);
    ok = strcmp(o.publish_status, "pending") == 0 && o.try_count == 2;
    row_free(&o);
    itest_expect(NULL, ok, "E1 must stay pending with publish_try_count 2");

    /* failed_count of GET /events/health counts it. */
    r = itest_request("GET", "/events/health", itest_admin_key(), NULL, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    long failed = itest_sql_long0("SELECT count(*) FROM customer_events "
                                  "WHERE publish_status = 'failed'");
    itest_expect(r,
                 failed >= 1 && json_integer_value(json_object_get(
                                    d, "failed_count")) == failed,
                 "failed_count must be %ld", failed);
    itest_resp_free(r);
}

static void
failed_probe_makes_the_rest_of_the_run_circuit_open(void **state)
{
    (void)state;
    /* docs/API.md §7.5: resend and redeliver force a broker probe even while a
     * circuit is open; if it fails, the rest of that run fails fast with
     * `Broker circuit open`, each counted as an attempt. The run above
     * (on a fresh worker, breaker closed) had E1 then E9. */
    if (g_down_reasons == NULL || json_array_size(g_down_reasons) < 2)
        itest_failf("the resend with the broker down reported fewer than "
                    "two failures");
    const char *probe = json_string_value(json_array_get(g_down_reasons, 0));
    itest_expect(NULL,
                 probe != NULL && probe[0] != '\0' &&
                     strcmp(probe, "Broker circuit open") != 0,
                 "the forced probe's failure must be the broker's or the "
                 "library's message, not \"Broker circuit open\" (got %s)",
                 probe ? probe : "NULL");
    for (size_t i = 1; i < json_array_size(g_down_reasons); i++) {
        const char *why = json_string_value(json_array_get(g_down_reasons, i));
        itest_expect(NULL,
                     why != NULL && strcmp(why, "Broker circuit open") == 0,
                     "after the failed probe, attempt %zu of the same run "
                     "must fail fast as \"Broker circuit open\"; got \"%s\" "
                     "(the run went to the network again)",
                     i + 1, why ? why : "NULL");
    }
}

static void
broker_back_resend_with_event_types_filter(void **state)
{
    (void)state;
    double t0 = itest_now();
    broker_start();
    fprintf(stderr, "    broker-start took %.1f s\n", itest_now() - t0);
    if (amqp_sub_open(&g_sub, g_queue_a) != 0)
        itest_failf("cannot consume from %s after the restart", g_queue_a);
    sub_begin();
    expect_no_message(&g_sub, 300, "A's queue right after the restart");

    long a_creation_pending = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1 AND "
        "event_type = 'customer_creation' AND publish_status = 'pending'",
        g_a.id);
    long total = resend_candidates("[\"customer_tag_change\"]", "0");
    struct summary s;
    struct itest_resp *r =
        redrive("/events/resend",
                json_pack("{s:i, s:[s]}", "period_in_days", 1, "event_types",
                          "customer_tag_change"),
                &s);
    itest_expect(r,
                 s.total == total && s.skipped == 0 && s.succeeded == total &&
                     s.failed == 0,
                 "resend of the tag changes: want %ld total, all succeeded",
                 total);
    itest_resp_free(r);

    struct idlist tags = {calloc(3, 37), 3};
    for (int i = 0; i < 3; i++)
        memcpy(tags.id[i], g_tag_ev[i], 37);
    expect_messages(&g_sub, &tags, true, "resend of customer_tag_change");
    idlist_free(&tags);
    for (int i = 0; i < 3; i++) {
        struct row o;
        load_row(g_tag_ev[i], &o);
        bool ok = strcmp(o.publish_status, "published") == 0 &&
                  o.try_count == 2 && o.published_at;
        row_free(&o);
        itest_expect(NULL, ok,
                     "tag event %s: want published, publish_try_count 2",
                     g_tag_ev[i]);
    }
    /* The filter left the other types alone. */
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "consumer_id = $1 AND event_type = "
                                "'customer_creation' AND publish_status = "
                                "'pending'",
                                g_a.id) == a_creation_pending,
                 "a resend filtered on customer_tag_change touched other "
                 "types");
    sub_end();
}

static void
resend_max_try_count_skips(void **state)
{
    (void)state;
    sub_begin();
    /* Deletion events 0 and 1 have been tried 3 times, 2 and 3 once. */
    set_try_count(g_del_ev[0], "3");
    set_try_count(g_del_ev[1], "3");
    const char *types = "[\"customer_deletion\"]";
    long total = resend_candidates(types, "0");
    long skip = resend_candidates(types, "3");
    struct summary s;
    struct itest_resp *r = redrive(
        "/events/resend",
        json_pack("{s:i, s:i, s:[s]}", "period_in_days", 1, "max_try_count", 3,
                  "event_types", "customer_deletion"),
        &s);
    itest_expect(r, s.total == total, "total_pending %ld, want %ld", s.total,
                 total);
    itest_expect(r, s.skipped == skip && skip >= 2,
                 "skipped %ld, want %ld (publish_try_count >= "
                 "max_try_count)",
                 s.skipped, skip);
    itest_expect(r, s.succeeded == total - skip && s.failed == 0,
                 "the others must all be published");
    itest_resp_free(r);

    struct idlist want = {calloc(2, 37), 2};
    memcpy(want.id[0], g_del_ev[2], 37);
    memcpy(want.id[1], g_del_ev[3], 37);
    expect_messages(&g_sub, &want, true, "resend with max_try_count");
    idlist_free(&want);
    for (int i = 0; i < 4; i++) {
        struct row o;
        load_row(g_del_ev[i], &o);
        bool ok =
            i < 2 ? strcmp(o.publish_status, "pending") == 0 && o.try_count == 3
                  : strcmp(o.publish_status, "published") == 0 &&
                        o.try_count == 2;
        row_free(&o);
        itest_expect(NULL, ok,
                     "deletion event %d: want %s (skipped events are not "
                     "tried)",
                     i, i < 2 ? "pending, 3 tries" : "published, 2 tries");
    }
    sub_end();
}

static void
resend_publishes_every_pending_event_in_created_at_order(void **state)
{
    (void)state;
    sub_begin();
    struct idlist a_pending;
    ids_sql(&a_pending,
            "SELECT event_id::text FROM customer_events WHERE consumer_id = $1 "
            "AND publish_status = 'pending' ORDER BY created_at, sequence",
            g_a.id);
    /* the 40 creations (the first outage POST was confirmed), the 2
     * skipped deletions and E1 */
    itest_expect(NULL, a_pending.n == OUTAGE_POSTS + 3,
                 "%zu of A's events pending, want %d", a_pending.n,
                 OUTAGE_POSTS + 3);
    PGresult *q = itest_sql(
        "SELECT event_id::text, publish_try_count FROM customer_events "
        "WHERE consumer_id = $1 AND publish_status = 'pending'",
        g_a.id);
    long total = resend_candidates(NULL, "0");

    struct summary s;
    double t0 = itest_now();
    struct itest_resp *r =
        redrive("/events/resend", json_pack("{s:i}", "period_in_days", 1), &s);
    fprintf(stderr, "    resend of %ld pending events: %.1f ms\n", s.attempted,
            (itest_now() - t0) * 1e3);
    itest_expect(r,
                 s.total == total && s.skipped == 0 && s.succeeded == total &&
                     s.failed == 0,
                 "resend of everything: want %ld total, all succeeded", total);
    itest_resp_free(r);

    expect_messages(&g_sub, &a_pending, true,
                    "resend of every pending event (created_at order)");
    for (int i = 0; i < PQntuples(q); i++) {
        struct row o;
        load_row(PQgetvalue(q, i, 0), &o);
        long before = strtol(PQgetvalue(q, i, 1), NULL, 10);
        bool ok = strcmp(o.publish_status, "published") == 0 &&
                  o.published_at && o.try_count == before + 1;
        row_free(&o);
        if (!ok) {
            char id[37];
            snprintf(id, sizeof id, "%s", PQgetvalue(q, i, 0));
            PQclear(q);
            itest_failf("event %s: want published with one more try", id);
        }
    }
    PQclear(q);
    idlist_free(&a_pending);
    itest_expect(NULL, resend_candidates(NULL, "0") == 0,
                 "nothing may be pending after a successful resend");

    /* The failed event stays failed: resend does not pick it. */
    struct row o;
    load_row(g_stat_ev[1], &o);
    bool ok = strcmp(o.publish_status, "failed") == 0 && o.try_count == 10;
    row_free(&o);
    itest_expect(NULL, ok, "a failed event must not be resent");
    sub_end();
}

static void
consumer_created_during_outage_has_queues_and_event(void **state)
{
    (void)state;
    /* The resend published D's event; its queues exist by now (declared
     * on the reconnect, or on the basic.return of its first publish). */
    itest_assert_consumer_queues(g_d.name);
    struct row o;
    load_row(g_d_event, &o);
    bool ok = strcmp(o.publish_status, "published") == 0;
    row_free(&o);
    itest_expect(NULL, ok, "D's event must be published by the resend");
    char q[160];
    itest_queue_name(q, sizeof q, g_d.name, false);
    struct amqp_sub s;
    if (amqp_sub_open(&s, q) != 0)
        itest_failf("cannot consume from %s", q);
    struct idlist want = {calloc(1, 37), 1};
    memcpy(want.id[0], g_d_event, 37);
    expect_messages(&s, &want, true, "D's queue");
    idlist_free(&want);
    amqp_sub_close(&s);
}

struct resend_thread {
    pthread_barrier_t *barrier;
    long status;
    long total, attempted, succeeded, failed, skipped;
    double elapsed;
};

static void *
resend_worker(void *arg)
{
    struct resend_thread *t = arg;
    pthread_barrier_wait(t->barrier);
    double t0 = itest_now();
    struct itest_resp *r = itest_request(
        "POST", "/events/resend", itest_admin_key(),
        "{\"period_in_days\":1,\"event_types\":[\"customer_creation\"]}", NULL);
    t->elapsed = itest_now() - t0;
    t->status = r->status;
    json_t *sum = json_object_get(itest_data(r), "summary");
    t->total = (long)json_integer_value(json_object_get(sum, "total_pending"));
    t->attempted = (long)json_integer_value(json_object_get(sum, "attempted"));
    t->succeeded = (long)json_integer_value(json_object_get(sum, "succeeded"));
    t->failed = (long)json_integer_value(json_object_get(sum, "failed"));
    t->skipped = (long)json_integer_value(json_object_get(sum, "skipped"));
    if (r->status != 200)
        itest_dump(r);
    itest_resp_free(r);
    itest_thread_done();
    return NULL;
}

static void
two_resends_at_once_publish_each_event_once(void **state)
{
    (void)state;
    sub_begin();
    /* The outage's creation events of A, pending again (as if never
     * published): two administrators resend at the same time. */
    struct idlist ev;
    ids_sql(&ev,
            "SELECT event_id::text FROM customer_events WHERE consumer_id = $1 "
            "AND event_type = 'customer_creation' AND publish_status = "
            "'published' AND publish_try_count = 2 "
            "ORDER BY created_at, sequence",
            g_a.id);
    itest_expect(NULL, ev.n == OUTAGE_POSTS,
                 "%zu creation events to re-send, want %d", ev.n, OUTAGE_POSTS);
    PQclear(itest_sql("UPDATE customer_events SET publish_status = 'pending', "
                      "published_at = NULL WHERE consumer_id = $1 "
                      "AND event_type = 'customer_creation' "
                      "AND publish_try_count = 2",
                      g_a.id));
    long total = resend_candidates("[\"customer_creation\"]", "0");
    itest_expect(NULL, total == OUTAGE_POSTS,
                 "%ld creation events pending, want %d", total, OUTAGE_POSTS);

    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct resend_thread t[2];
    pthread_t th[2];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 2; i++) {
        t[i].barrier = &barrier;
        pthread_create(&th[i], NULL, resend_worker, &t[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < 2; i++) {
        fprintf(stderr,
                "    resend %d: HTTP %ld, total %ld, succeeded %ld, "
                "failed %ld, %.1f ms\n",
                i + 1, t[i].status, t[i].total, t[i].succeeded, t[i].failed,
                t[i].elapsed * 1e3);
        itest_expect(NULL, t[i].status == 200, "resend %d: HTTP %ld", i + 1,
                     t[i].status);
        itest_expect(NULL,
                     t[i].total == t[i].attempted + t[i].skipped &&
                         t[i].attempted == t[i].succeeded + t[i].failed,
                     "resend %d: summary identities", i + 1);
    }
    itest_expect(NULL,
                 t[0].succeeded + t[1].succeeded == total &&
                     t[0].failed + t[1].failed == 0,
                 "the two resends together must publish each of the %ld "
                 "events once (succeeded %ld + %ld)",
                 total, t[0].succeeded, t[1].succeeded);
    itest_expect(NULL, t[0].total + t[1].total == total,
                 "each pending event must be picked by one resend only "
                 "(total_pending %ld + %ld, want %ld)",
                 t[0].total, t[1].total, total);

    /* Each message arrives once (two runs interleave: a set, not an
     * order). */
    expect_messages(&g_sub, &ev, false, "two concurrent resends");
    for (size_t i = 0; i < ev.n; i++) {
        struct row o;
        load_row(ev.id[i], &o);
        bool ok =
            strcmp(o.publish_status, "published") == 0 && o.try_count == 3;
        row_free(&o);
        if (!ok)
            itest_failf("event %s: want published with exactly one more try "
                        "(3)",
                        ev.id[i]);
    }
    idlist_free(&ev);
    sub_end();
}

static void
redeliver_republishes_unconfirmed_events(void **state)
{
    (void)state;
    sub_begin();
    /* One of A's published events is confirmed: redeliver leaves it. */
    char body[256];
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"status\":\"processed\"}", g_tag_ev[0]);
    struct itest_resp *r =
        itest_request("POST", "/events/confirm-delivery", g_a.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);

    struct idlist want;
    ids_sql(&want,
            "SELECT event_id::text FROM customer_events WHERE consumer_id = $1 "
            "AND publish_status = 'published' AND deliver_status = 'pending' "
            "ORDER BY created_at, sequence",
            g_a.id);
    long d_tries = itest_sql_long("SELECT deliver_try_count FROM "
                                  "customer_events WHERE event_id = $1",
                                  g_d_event);
    struct summary s;
    r = redrive(
        "/events/redeliver",
        json_pack("{s:i, s:s}", "period_in_days", 1, "consumer_id", g_a.id),
        &s);
    itest_expect(r,
                 s.total == (long)want.n && s.skipped == 0 &&
                     s.succeeded == (long)want.n && s.failed == 0,
                 "redeliver of A's %zu unconfirmed events: all succeeded",
                 want.n);
    itest_resp_free(r);
    expect_messages(&g_sub, &want, true, "redeliver");
    for (size_t i = 0; i < want.n; i++) {
        struct row o;
        load_row(want.id[i], &o);
        bool ok = o.deliver_try_count == 1 && o.deliver_last_tried_at &&
                  strcmp(o.deliver_status, "pending") == 0 &&
                  strcmp(o.publish_status, "published") == 0;
        row_free(&o);
        if (!ok)
            itest_failf("event %s: want deliver_try_count 1, "
                        "deliver_last_tried_at set, still pending delivery",
                        want.id[i]);
    }
    struct row o;
    load_row(g_tag_ev[0], &o);
    itest_expect(NULL, o.deliver_try_count == 0,
                 "a confirmed event must not be redelivered");
    row_free(&o);
    itest_expect(NULL,
                 itest_sql_long("SELECT deliver_try_count FROM "
                                "customer_events WHERE event_id = $1",
                                g_d_event) == d_tries,
                 "the consumer_id filter must leave other consumers' events "
                 "alone");

    /* max_try_count compares deliver_try_count: all skipped now. */
    r = redrive("/events/redeliver",
                json_pack("{s:i, s:s, s:i}", "period_in_days", 1, "consumer_id",
                          g_a.id, "max_try_count", 1),
                &s);
    itest_expect(r,
                 s.total == (long)want.n && s.skipped == (long)want.n &&
                     s.attempted == 0,
                 "redeliver with max_try_count 1 must skip all %zu", want.n);
    itest_resp_free(r);
    expect_no_message(&g_sub, 500, "redeliver with everything skipped");
    load_row(want.id[0], &o);
    itest_expect(NULL, o.deliver_try_count == 1,
                 "a skipped redelivery must not count a try");
    row_free(&o);

    /* event_types filter on redeliver. */
    struct idlist del;
    ids_sql(&del,
            "SELECT event_id::text FROM customer_events WHERE consumer_id = $1 "
            "AND publish_status = 'published' AND deliver_status = 'pending' "
            "AND event_type = 'customer_deletion' "
            "ORDER BY created_at, sequence",
            g_a.id);
    r = redrive("/events/redeliver",
                json_pack("{s:i, s:s, s:[s]}", "period_in_days", 1,
                          "consumer_id", g_a.id, "event_types",
                          "customer_deletion"),
                &s);
    itest_expect(
        r, s.total == (long)del.n && s.succeeded == (long)del.n && del.n == 4,
        "redeliver of A's 4 deletions");
    itest_resp_free(r);
    expect_messages(&g_sub, &del, true, "redeliver of deletions");
    load_row(del.id[0], &o);
    itest_expect(NULL, o.deliver_try_count == 2,
                 "deliver_try_count must count every redelivery");
    row_free(&o);
    idlist_free(&del);
    idlist_free(&want);
    sub_end();
}

/* POST /events/confirm-delivery; returns the response (owned). */
static struct itest_resp *
confirm(const char *key, const char *event_id, const char *status,
        const char *reason)
{
    char *body = itest_json_text(
        reason
            ? json_pack("{s:s, s:s, s:s}", "event_id", event_id, "status",
                        status, "failure_reason", reason)
            : json_pack("{s:s, s:s}", "event_id", event_id, "status", status));
    struct itest_resp *r =
        itest_request("POST", "/events/confirm-delivery", key, body, NULL);
    free(body);
    return r;
}

static long
receipts(const char *event_id)
{
    return itest_sql_long(
        "SELECT count(*) FROM consumer_event_receipts WHERE event_id = $1",
        event_id);
}

static void
confirm_delivery_rules(void **state)
{
    (void)state;
    const char *x = g_outage_create[20];
    const char *y = g_outage_create[21];
    char first_at[40];

    /* received: delivered, delivered_at set, one receipt of the owner */
    struct itest_resp *r = confirm(g_a.key, x, "received", NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "event_id", x);
    itest_assert_jstr(r, d, "deliver_status", "delivered");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "delivered_at")),
                 "delivered_at must be a timestamp");
    snprintf(first_at, sizeof first_at, "%s", itest_jstr(d, "delivered_at"));
    itest_resp_free(r);
    itest_expect(NULL, receipts(x) == 1, "one receipt after received");
    char *owner = itest_sql_value("SELECT consumer_id::text FROM "
                                  "consumer_event_receipts WHERE event_id = $1",
                                  x);
    itest_expect(NULL, owner != NULL && strcmp(owner, g_a.id) == 0,
                 "the receipt's consumer_id must be the owner");
    free(owner);

    /* the same again: 200, no second receipt, delivered_at unchanged */
    usleep(20000);
    r = confirm(g_a.key, x, "received", NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "deliver_status", "delivered");
    itest_assert_jstr(r, d, "delivered_at", first_at);
    itest_resp_free(r);
    itest_expect(NULL, receipts(x) == 1,
                 "a repeated confirmation must not add a receipt");

    /* processed: a second receipt, delivered_at still the first */
    r = confirm(g_a.key, x, "processed", NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "deliver_status", "delivered");
    itest_assert_jstr(r, d, "delivered_at", first_at);
    itest_resp_free(r);
    itest_expect(NULL, receipts(x) == 2,
                 "received then processed must be two receipts");

    /* failed after delivered: the last confirmation decides */
    r = confirm(g_a.key, x, "failed", "Dead-lettered after 5 deliveries");
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "deliver_status", "failed");
    itest_resp_free(r);
    itest_expect(NULL, receipts(x) == 3, "failed adds its receipt");
    char *why = itest_sql_value("SELECT deliver_failure_reason FROM "
                                "customer_events WHERE event_id = $1",
                                x);
    itest_expect(NULL,
                 why != NULL &&
                     strcmp(why, "Dead-lettered after 5 deliveries") == 0,
                 "deliver_failure_reason must be the consumer's reason "
                 "(got %s)",
                 why ? why : "NULL");
    free(why);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "event_id = $1 AND deliver_status = 'failed'",
                                x) == 1,
                 "deliver_status must be failed");

    /* and a later processed (a redelivery worked): delivered again, no new
     * receipt (processed exists), delivered_at still the first */
    r = confirm(g_a.key, x, "processed", NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "deliver_status", "delivered");
    itest_assert_jstr(r, d, "delivered_at", first_at);
    itest_resp_free(r);
    itest_expect(NULL, receipts(x) == 3, "no receipt for a repeated status");

    /* another consumer's event: 404, like a missing one; nothing written */
    r = confirm(g_b.key, y, "received", NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    char missing[37];
    itest_random_uuid(missing);
    r = confirm(g_a.key, missing, "received", NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    struct row o;
    load_row(y, &o);
    itest_expect(NULL,
                 receipts(y) == 0 && strcmp(o.deliver_status, "pending") == 0,
                 "a foreign confirmation must change nothing");
    row_free(&o);

    /* the administrator may confirm any event; the receipt is the
     * owner's */
    r = confirm(itest_admin_key(), y, "processed", NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "deliver_status", "delivered");
    itest_resp_free(r);
    owner = itest_sql_value("SELECT consumer_id::text FROM "
                            "consumer_event_receipts WHERE event_id = $1",
                            y);
    itest_expect(NULL, owner != NULL && strcmp(owner, g_a.id) == 0,
                 "an administrator's confirmation is recorded for the owner");
    free(owner);

    /* the owner's own: 200 */
    r = confirm(g_a.key, y, "received", NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    itest_expect(NULL, receipts(y) == 2, "two receipts on y");

    /* GET /events/health: delivery_failed_count and undelivered_count */
    long undelivered = itest_sql_long0(
        "SELECT count(*) FROM customer_events WHERE publish_status = "
        "'published' AND deliver_status = 'pending'");
    long dfailed = itest_sql_long0("SELECT count(*) FROM customer_events "
                                   "WHERE deliver_status = 'failed'");
    r = itest_request("GET", "/events/health", itest_admin_key(), NULL, NULL);
    d = itest_assert_envelope(r, 200);
    itest_expect(r,
                 json_integer_value(json_object_get(d, "undelivered_count")) ==
                         undelivered &&
                     json_integer_value(json_object_get(
                         d, "delivery_failed_count")) == dfailed,
                 "undelivered_count %ld and delivery_failed_count %ld "
                 "expected",
                 undelivered, dfailed);
    itest_resp_free(r);
}

static void
after_recovery_every_worker_publishes_again(void **state)
{
    (void)state;
    sub_begin();
    /* Once the cool-down has passed since the broker came back, any worker
     * whose breaker opened during the outage lets its next publish through
     * (half-open) and closes on success. */
    double until =
        g_broker_back_at +
        (double)env_long("FINTEGRATE_BREAKER_COOLDOWN_MS", 10000) / 1000.0 +
        0.2;
    double left = until - itest_now();
    if (left > 0) {
        fprintf(stderr, "    waiting %.1f s for the breakers' cool-down\n",
                left);
        usleep((useconds_t)(left * 1e6));
    }
    struct idlist want = {calloc(12, 37), 12};
    char cid[37];
    for (int i = 0; i < 12; i++)
        post_customer(g_a.key, "after", cid, want.id[i]);
    for (int i = 0; i < 12; i++) {
        struct row o;
        load_row(want.id[i], &o);
        bool ok =
            strcmp(o.publish_status, "published") == 0 && o.try_count == 1;
        if (!ok)
            fprintf(stderr, "    %s: %s, %ld tries, \"%s\"\n", want.id[i],
                    o.publish_status, o.try_count, o.reason);
        row_free(&o);
        if (!ok)
            itest_failf("after the outage and the cool-down, every inline "
                        "publish must succeed at its first try");
    }
    expect_messages(&g_sub, &want, true, "customers after the recovery");
    idlist_free(&want);

    /* The broker is reported up again (by a worker that has published). */
    bool up = false;
    for (int i = 0; i < 20 && !up; i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", NULL, NULL, NULL);
        itest_assert_envelope(r, 200);
        const char *b = broker_field(r);
        up = b != NULL && strcmp(b, "up") == 0;
        itest_resp_free(r);
    }
    itest_expect(NULL, up, "GET /health never reported the broker up");
    sub_end();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broker_stopped_post_is_201_and_event_pending),
        cmocka_unit_test(many_posts_during_outage_all_succeed),
        cmocka_unit_test(other_changes_during_outage_are_pending),
        cmocka_unit_test(health_reports_the_broker_down),
        cmocka_unit_test(consumer_created_while_broker_down),
        cmocka_unit_test(confirmation_of_pending_event_marks_it_published),
        cmocka_unit_test(resend_while_down_tenth_try_fails_the_event),
        cmocka_unit_test(failed_probe_makes_the_rest_of_the_run_circuit_open),
        cmocka_unit_test(broker_back_resend_with_event_types_filter),
        cmocka_unit_test(resend_max_try_count_skips),
        cmocka_unit_test(
            resend_publishes_every_pending_event_in_created_at_order),
        cmocka_unit_test(consumer_created_during_outage_has_queues_and_event),
        cmocka_unit_test(two_resends_at_once_publish_each_event_once),
        cmocka_unit_test(redeliver_republishes_unconfirmed_events),
        cmocka_unit_test(confirm_delivery_rules),
        cmocka_unit_test(after_recovery_every_worker_publishes_again),
    };
    return itest_exit(
        cmocka_run_group_tests_name("outage", tests, setup, teardown));
}
