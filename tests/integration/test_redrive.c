/*
 * tests/integration/test_redrive.c — the batched re-drive engine of issue
 * 10 (docs/API.md §7.5),
 * through nginx against the real PostgreSQL and RabbitMQ:
 *
 *   - a backlog of 20,000 pending events: ONE POST /events/resend answers
 *     a summary that adds up, publishes each event exactly once (read back
 *     from the consumer's queue), in created_at order, and records every
 *     one (published, publish_try_count 2);
 *   - POST /events/confirm-delivery issued while such a resend runs answers
 *     within 2 s (a re-drive holds its row locks for one batch at most),
 *     for an event outside the backlog and for backlog events;
 *   - kill -9 of the worker running a resend of 20,000 events: a second
 *     resend finishes the rest; no event is lost, at most one batch
 *     (FINTEGRATE_REDRIVE_BATCH, default 500) reaches the queue twice, and
 *     every event ends with exactly one recorded publish.
 *
 * The relay (the automatic re-drive) would publish the backlogs by itself
 * and make the resends' counts meaningless, so the group setup restarts the
 * pool with FINTEGRATE_RELAY_INTERVAL_MS=0 (the pool inherits this
 * process's environment through scripts/stack.sh app-start) and the
 * teardown restores the stack's setting; SIGTERM/SIGINT restore it too.
 *
 * The backlogs are written straight in SQL (itest_backlog_insert: rows and
 * payloads as a broker outage leaves them, for a consumer created through
 * the API so that its queue exists); writing 20,000 events through the API
 * would take minutes. Every test has its own consumer and counts only its
 * own events; events of other binaries still pending are counted from SQL
 * just before each resend, not assumed away.
 *
 * The worker running a resend is found without guessing: the re-drive's
 * batch transaction holds row locks on customer_events, pg_locks and
 * pg_stat_activity name the backend holding them and its client port, and
 * /proc/net/tcp + /proc/PID/fd name the child of the master owning that
 * TCP socket (itest_tcp_port_owner). That is the one process that holds the
 * batch in flight, whatever else (a relay process) the master runs.
 */
#include "itest.h"
#include "itest_amqp.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKLOG_CUSTOMERS 2000
#define BACKLOG_PER_CUSTOMER 10
#define BACKLOG ((long)BACKLOG_CUSTOMERS * BACKLOG_PER_CUSTOMER)

/* The contract's bound on a confirmation during a re-drive. */
#define CONFIRM_BOUND_S 2.0

static long g_batch;          /* FINTEGRATE_REDRIVE_BATCH (500) */
static bool g_app_changed;    /* the pool runs with the relay off */
static char *g_orig_interval; /* FINTEGRATE_RELAY_INTERVAL_MS as given */
static char g_queues[3][160];
static char g_consumers[3][37];
static int g_n_queues;

/* --------------------------------------------------------------- helpers */

/* A consumer through the API (its queue exists), remembered for the
 * teardown's clean-up. */
static void
new_consumer(struct itest_consumer *c, char queue[160], const char *prefix)
{
    itest_consumer_create_api(c, prefix);
    itest_queue_name(queue, 160, c->name, false);
    if (g_n_queues < 3) {
        snprintf(g_queues[g_n_queues], sizeof g_queues[0], "%s", queue);
        snprintf(g_consumers[g_n_queues], sizeof g_consumers[0], "%s", c->id);
        g_n_queues++;
    }
}

static long
mine(const char *consumer_id, const char *publish_status)
{
    return itest_sql_long("SELECT count(*) FROM customer_events "
                          "WHERE consumer_id = $1 AND publish_status = $2",
                          consumer_id, publish_status);
}

/* Pending events of OTHER consumers that a resend with period_in_days 1
 * would match (docs/API.md §7.5's in-flight rule): part of its
 * total_pending, not ours to assume away. */
static long
others_pending(const char *consumer_id)
{
    return itest_sql_long(
        "SELECT count(*) FROM customer_events "
        " WHERE publish_status = 'pending' AND consumer_id <> $1 "
        "   AND created_at > now() - interval '1 day' "
        "   AND NOT (publish_try_count = 0 "
        "            AND created_at > now() - interval '30 seconds')",
        consumer_id);
}

/* The client port of a backend (not ours) that holds a row-level lock on
 * customer_events: a re-drive's batch in flight. -1 when none. */
static long
locking_backend_port(void)
{
    PGresult *q = itest_sql0(
        "SELECT a.client_port FROM pg_stat_activity a "
        " WHERE a.pid <> pg_backend_pid() AND a.client_port IS NOT NULL "
        "   AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid "
        "        AND l.relation = 'customer_events'::regclass "
        "        AND l.mode IN ('RowShareLock', 'RowExclusiveLock')) "
        " LIMIT 1");
    long port = PQntuples(q) == 1 ? strtol(PQgetvalue(q, 0, 0), NULL, 10) : -1;
    PQclear(q);
    return port;
}

/* A resend running in a thread of its own. */
struct bg_resend {
    pthread_t th;
    struct itest_resp *resp;
    double t0, t1; /* itest_now() when sent and answered */
    atomic_bool done;
};

static void *
bg_resend_main(void *arg)
{
    struct bg_resend *b = arg;
    itest_set_timeout_ms(300000); /* nginx's own limit */
    b->t0 = itest_now();
    b->resp = itest_request("POST", "/events/resend", itest_admin_key(),
                            "{\"period_in_days\":1}", NULL);
    b->t1 = itest_now();
    atomic_store(&b->done, true);
    itest_thread_done();
    return NULL;
}

/* One at a time, static: a test that fails while it runs leaves it to
 * join_background (its teardown), never writing into a dead frame. */
static struct bg_resend g_bg;
static bool g_bg_running;

static void
bg_resend_start(struct bg_resend *b)
{
    memset(b, 0, sizeof *b);
    atomic_store(&b->done, false);
    b->t0 = itest_now();
    if (pthread_create(&b->th, NULL, bg_resend_main, b) != 0)
        itest_failf("pthread_create failed");
    g_bg_running = true;
}

static void
bg_resend_join(struct bg_resend *b)
{
    if (!g_bg_running)
        return;
    pthread_join(b->th, NULL);
    g_bg_running = false;
}

/* Per-test teardown: waits for a resend a failed test left running. */
static int
join_background(void **state)
{
    (void)state;
    if (g_bg_running) {
        fprintf(stderr, "test_redrive: waiting for the background resend\n");
        bg_resend_join(&g_bg);
        itest_resp_free(g_bg.resp);
        g_bg.resp = NULL;
    }
    return 0;
}

/* POST /events/resend {period_in_days: 1}, waiting as long as nginx does. */
static struct itest_resp *
resend_now(void)
{
    itest_set_timeout_ms(300000);
    struct itest_resp *r =
        itest_request("POST", "/events/resend", itest_admin_key(),
                      "{\"period_in_days\":1}", NULL);
    itest_set_timeout_ms(15000);
    return r;
}

/* POST /events/confirm-delivery of event_id ("received") as key; the
 * seconds it took into *dt. */
static struct itest_resp *
confirm(const char *key, const char *event_id, double *dt)
{
    char body[160];
    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"status\":\"received\"}",
             event_id);
    double t0 = itest_now();
    struct itest_resp *r =
        itest_request("POST", "/events/confirm-delivery", key, body, NULL);
    *dt = itest_now() - t0;
    return r;
}

static void
sub_open(struct amqp_sub *s, const char *queue)
{
    if (amqp_sub_open(s, queue) != 0)
        itest_failf("cannot consume from %s", queue);
}

/* ----------------------------------------------------------------- group */

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    if (itest_env("FINTEGRATE_CHECKOUT") == NULL ||
        itest_env("FINTEGRATE_AMQP_URL") == NULL ||
        itest_env("FINTEGRATE_RUN_DIR") == NULL) {
        fprintf(stderr, "test_redrive: needs FINTEGRATE_CHECKOUT, "
                        "FINTEGRATE_RUN_DIR and FINTEGRATE_AMQP_URL "
                        "(scripts/test.sh exports them)\n");
        return -1;
    }
    if (!itest_broker_up()) {
        fprintf(stderr, "test_redrive: the broker is not running\n");
        return -1;
    }
    g_batch = itest_env_long("FINTEGRATE_REDRIVE_BATCH", 500, 1);
    const char *orig = itest_env("FINTEGRATE_RELAY_INTERVAL_MS");
    g_orig_interval = orig != NULL ? strdup(orig) : NULL;
    /* Killed from outside (the suite's timeout): the pool gets the
     * stack's own setting back. */
    char cmd[4096] = "";
    itest_sh_env_cmd(cmd, sizeof cmd, "FINTEGRATE_RELAY_INTERVAL_MS",
                     g_orig_interval);
    itest_on_signal_restart_app(cmd);
    setenv("FINTEGRATE_RELAY_INTERVAL_MS", "0", 1);
    g_app_changed = true;
    if (itest_app_restart() != 0) {
        fprintf(stderr, "test_redrive: could not restart the pool with the "
                        "relay off\n");
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    int rc = 0;
    /* What a failed test left: its backlog must not keep the relay of the
     * binaries after this one busy, nor fill the broker. */
    for (int i = 0; i < g_n_queues; i++) {
        PGresult *r = itest_sql_try(
            "UPDATE customer_events SET publish_status = 'failed', "
            "  publish_failure_reason = 'abandoned by test_redrive' "
            " WHERE consumer_id = $1 AND publish_status = 'pending'",
            (const char *const[]){g_consumers[i]}, 1);
        if (r != NULL && PQcmdTuples(r)[0] != '0')
            fprintf(stderr,
                    "test_redrive: %s events of a failed test set "
                    "to failed\n",
                    PQcmdTuples(r));
        PQclear(r);
        itest_mgmt_purge(g_queues[i]);
    }
    if (g_app_changed) {
        itest_setenv_or_unset("FINTEGRATE_RELAY_INTERVAL_MS", g_orig_interval);
        if (itest_app_restart() != 0) {
            fprintf(stderr, "test_redrive: could not restart the pool with "
                            "the stack's relay setting\n");
            rc = -1;
        } else {
            g_app_changed = false;
        }
    }
    itest_on_signal_run(NULL);
    free(g_orig_interval);
    g_orig_interval = NULL;
    itest_group_teardown(state);
    return rc;
}

/* ----------------------------------------------------------------- tests */

static void
the_relay_is_off_for_this_binary(void **state)
{
    (void)state;
    struct itest_resp *r =
        itest_request("GET", "/events/health", itest_admin_key(), NULL, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    json_t *relay = json_object_get(d, "relay");
    itest_expect(r, json_is_object(relay), "data.relay must be an object");
    itest_assert_keys(r, relay, "enabled", "interval_ms", "last_pass_at",
                      "last_pass_published");
    itest_expect(r, json_is_false(json_object_get(relay, "enabled")),
                 "FINTEGRATE_RELAY_INTERVAL_MS=0: relay.enabled must be "
                 "false");
    itest_expect(r, itest_jint(relay, "interval_ms") == 0,
                 "FINTEGRATE_RELAY_INTERVAL_MS=0: relay.interval_ms must be "
                 "0");
    itest_resp_free(r);
}

static void
backlog_of_20000_one_resend_publishes_each_once_in_order(void **state)
{
    (void)state;
    struct itest_consumer c;
    char queue[160];
    new_consumer(&c, queue, "redrive-backlog");
    double t0 = itest_now();
    long n = itest_backlog_insert(c.id, c.name, BACKLOG_CUSTOMERS,
                                  BACKLOG_PER_CUSTOMER);
    fprintf(stderr, "    %ld pending events written in %.1f s\n", n,
            itest_now() - t0);
    long others = others_pending(c.id);

    t0 = itest_now();
    struct itest_resp *r = resend_now();
    double dt = itest_now() - t0;
    struct itest_redrive_summary s;
    itest_assert_redrive_summary(r, &s);
    fprintf(stderr,
            "    resend: %.1f s (%.0f events/s), total_pending %ld, "
            "succeeded %ld, failed %ld (%ld pending of other binaries)\n",
            dt, (double)s.succeeded / (dt > 0 ? dt : 1), s.total_pending,
            s.succeeded, s.failed, others);
    itest_expect(r, s.total_pending == n + others,
                 "total_pending must be our %ld + the %ld others pending, "
                 "got %ld",
                 n, others, s.total_pending);
    itest_expect(r, s.skipped == 0,
                 "nothing is skipped without "
                 "max_try_count");
    itest_expect(r, s.succeeded >= n && s.failed <= others,
                 "every one of our %ld events must succeed (succeeded %ld, "
                 "failed %ld)",
                 n, s.succeeded, s.failed);
    itest_resp_free(r);

    /* Every one recorded: published, one more try (inline + resend). */
    long ok = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1 "
        "AND publish_status = 'published' AND published_at IS NOT NULL "
        "AND publish_try_count = 2 AND publish_last_tried_at > created_at",
        c.id);
    itest_expect(NULL, ok == n,
                 "%ld of %ld events are published with publish_try_count 2 "
                 "and a new publish_last_tried_at",
                 ok, n);

    /* The queue: each exactly once, in created_at order (one channel, one
     * batch after the other). */
    struct amqp_expected *exp;
    size_t want = amqp_expected_sql(
        "SELECT event_id::text, 0, "
        "       row_number() OVER (ORDER BY created_at, sequence) "
        "  FROM customer_events WHERE consumer_id = $1::uuid "
        " ORDER BY created_at, sequence",
        c.id, &exp);
    struct amqp_sub sub;
    sub_open(&sub, queue);
    struct amqp_tally t;
    t0 = itest_now();
    amqp_sub_tally(&sub, exp, want, 120000, 2000, &t);
    amqp_sub_close(&sub);
    free(exp);
    amqp_tally_print("queue after the resend", want, &t);
    fprintf(stderr, "    read in %.1f s\n", itest_now() - t0);
    itest_expect(NULL, want == (size_t)n, "SQL lists %zu events, want %ld",
                 want, n);
    itest_expect(NULL, t.distinct == want,
                 "%zu of %zu events reached the queue", t.distinct, want);
    itest_expect(NULL, t.duplicates == 0 && t.unknown == 0,
                 "each event must be published exactly once: %zu "
                 "duplicate(s), %zu unknown message(s)",
                 t.duplicates, t.unknown);
    itest_expect(NULL, t.disorder == 0,
                 "the resend must publish in created_at order: %zu out of "
                 "order, first %s",
                 t.disorder, t.first_disorder);
}

static void
confirm_delivery_during_a_redrive_answers_within_2s(void **state)
{
    (void)state;
    struct itest_consumer c;
    char queue[160];
    new_consumer(&c, queue, "redrive-confirm");

    /* An event outside the backlog, published inline. */
    char cid[37], outside[37];
    struct itest_resp *r =
        itest_request("POST", "/customer/data", c.key,
                      "{\"name\":\"confirm-outside\"}", NULL);
    json_t *d = itest_assert_envelope(r, 201);
    snprintf(cid, sizeof cid, "%s", itest_jstr(d, "customer_id"));
    snprintf(outside, sizeof outside, "%s", itest_jstr(d, "event_id"));
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "event_id = $1 AND publish_status = "
                                "'published'",
                                outside) == 1,
                 "the event outside the backlog must be published inline "
                 "(the broker is up, the pool fresh)");

    long n = itest_backlog_insert(c.id, c.name, BACKLOG_CUSTOMERS,
                                  BACKLOG_PER_CUSTOMER);
    struct bg_resend *bg = &g_bg;
    bg_resend_start(bg);

    /* Wait until the re-drive is under way: its first batch committed. */
    double until = itest_now() + 120;
    while (mine(c.id, "published") < 2) { /* "outside" is one */
        if (atomic_load(&bg->done)) {
            bg_resend_join(bg);
            long st = bg->resp->status;
            itest_failf("the resend ended (%ld) before any batch of the "
                        "backlog was seen committed",
                        st);
        }
        if (itest_now() > until)
            itest_failf("no batch of the backlog committed within 120 s");
        itest_sleep_ms(5);
    }
    /* The next pending one (in the batch in flight, or the next) and the
     * last one of the backlog. */
    char *next = itest_sql_value(
        "SELECT event_id::text FROM customer_events WHERE consumer_id = $1 "
        "AND publish_status = 'pending' ORDER BY created_at LIMIT 1",
        c.id);
    char *last = itest_sql_value(
        "SELECT event_id::text FROM customer_events WHERE consumer_id = $1 "
        "ORDER BY created_at DESC LIMIT 1",
        c.id);
    char ids[3][37];
    snprintf(ids[0], 37, "%s", outside);
    snprintf(ids[1], 37, "%s", next ? next : "");
    snprintf(ids[2], 37, "%s", last ? last : "");
    free(next);
    free(last);
    if (ids[1][0] == '\0')
        itest_failf("the backlog was published before it could be "
                    "confirmed: a backlog of %ld is too small to test this",
                    n);
    const char *what[3] = {"an event outside the backlog",
                           "the next pending event of the backlog",
                           "the last event of the backlog"};
    double dts[3];
    bool during[3];
    struct itest_resp *answers[3];
    for (int i = 0; i < 3; i++) {
        during[i] = !atomic_load(&bg->done);
        answers[i] = confirm(c.key, ids[i], &dts[i]);
        fprintf(stderr, "    confirm-delivery of %s: %ld in %.0f ms%s\n",
                what[i], answers[i]->status, dts[i] * 1e3,
                during[i] ? " (during the resend)" : "");
    }
    bg_resend_join(bg);
    fprintf(stderr, "    the resend took %.1f s\n", bg->t1 - bg->t0);
    struct itest_redrive_summary s;
    itest_assert_redrive_summary(bg->resp, &s);
    itest_resp_free(bg->resp);
    bg->resp = NULL;

    for (int i = 0; i < 3; i++) {
        struct itest_resp *a = answers[i];
        answers[i] = NULL;
        itest_expect(a, during[i],
                     "the resend (%.1f s) ended before the confirmation of "
                     "%s was sent: it proves nothing",
                     bg->t1 - bg->t0, what[i]);
        itest_expect(a, dts[i] < CONFIRM_BOUND_S,
                     "confirm-delivery of %s during a re-drive took %.2f s "
                     "(bound: %.0f s, one batch at most)",
                     what[i], dts[i], CONFIRM_BOUND_S);
        /* 503 is the lock_timeout's answer (docs/API.md §5.6), allowed for an
         * event the re-drive holds; never for one it does not touch. */
        itest_expect(a, a->status == 200 || (i > 0 && a->status == 503),
                     "confirm-delivery of %s answered %ld", what[i], a->status);
        itest_assert_envelope(a, a->status);
        long status = a->status;
        itest_resp_free(a);
        if (status == 503) {
            double dt;
            a = confirm(c.key, ids[i], &dt);
            itest_assert_envelope(a, 200);
            itest_resp_free(a);
        }
        itest_expect(NULL,
                     itest_sql_long("SELECT count(*) FROM customer_events "
                                    "WHERE event_id = $1 AND deliver_status "
                                    "= 'delivered' AND publish_status = "
                                    "'published'",
                                    ids[i]) == 1,
                     "%s must end delivered and published", what[i]);
    }
    itest_expect(NULL, mine(c.id, "published") == n + 1,
                 "every event of the backlog must end published");
    itest_mgmt_purge(queue);
}

static void
kill_during_a_redrive_loses_nothing_and_repeats_one_batch_at_most(void **state)
{
    (void)state;
    struct itest_consumer c;
    char queue[160];
    new_consumer(&c, queue, "redrive-kill");
    long n = itest_backlog_insert(c.id, c.name, BACKLOG_CUSTOMERS,
                                  BACKLOG_PER_CUSTOMER);
    pid_t master = itest_master_pid();
    if (master <= 0 || itest_proc_state(master) == 0)
        itest_failf("no FastCGI master ($FINTEGRATE_RUN_DIR/fcgi.pid)");

    struct bg_resend *bg = &g_bg;
    bg_resend_start(bg);
    /* After ~0.3 s and once a batch has committed (so that committed
     * records exist that must not be repeated), kill the process whose
     * database session holds the batch in flight. */
    pid_t victim = -1;
    long port = -1;
    double until = itest_now() + 120;
    while (victim <= 0) {
        if (atomic_load(&bg->done)) {
            bg_resend_join(bg);
            itest_failf("the resend ended (%ld) before its worker could be "
                        "killed",
                        bg->resp->status);
        }
        if (itest_now() > until)
            itest_failf("120 s without finding the worker running the "
                        "resend (a backend holding row locks on "
                        "customer_events, whose client port a child of "
                        "master %ld owns)",
                        (long)master);
        if (itest_now() - bg->t0 >= 0.3 && mine(c.id, "published") > 0 &&
            (port = locking_backend_port()) > 0)
            victim = itest_tcp_port_owner(master, (int)port);
        if (victim <= 0)
            itest_sleep_ms(5);
    }
    if (kill(victim, SIGKILL) != 0)
        itest_failf("kill -9 %ld failed", (long)victim);
    double killed_at = itest_now() - bg->t0;
    bg_resend_join(bg);
    fprintf(stderr,
            "    killed worker %ld (PostgreSQL client port %ld) %.2f s into "
            "the resend; it answered %ld\n",
            (long)victim, port, killed_at, bg->resp->status);
    /* The request on the killed process fails with nginx's 502 (docs/API.md
     * §7.7: only requests in flight on a killed process may fail). */
    itest_assert_envelope(bg->resp, 502);
    itest_resp_free(bg->resp);
    bg->resp = NULL;

    /* Its session ends with it (the batch in flight rolls back). */
    until = itest_now() + 15;
    while (locking_backend_port() > 0) {
        if (itest_now() > until)
            itest_failf("15 s after the kill a backend still holds row locks "
                        "on customer_events");
        itest_sleep_ms(50);
    }
    long published = mine(c.id, "published");
    long pending = mine(c.id, "pending");
    fprintf(stderr, "    after the kill: %ld published, %ld pending\n",
            published, pending);
    itest_expect(NULL, published >= 1 && published + pending == n,
                 "after the kill every event must be published (%ld) or "
                 "pending (%ld), %ld in all",
                 published, pending, n);
    /* Batches are all-or-nothing: committed ones are recorded whole, the
     * one in flight not at all. */
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events "
                                " WHERE consumer_id = $1 AND NOT ("
                                "   (publish_status = 'published' "
                                "    AND publish_try_count = 2) "
                                "   OR (publish_status = 'pending' "
                                "       AND publish_try_count = 1))",
                                c.id) == 0,
                 "every event must be published with 2 tries (committed "
                 "batches) or pending with its 1 inline try (the batch in "
                 "flight, rolled back, and those not reached)");

    /* A second resend finishes the rest. */
    long others = others_pending(c.id);
    struct itest_resp *r = resend_now();
    struct itest_redrive_summary s;
    itest_assert_redrive_summary(r, &s);
    fprintf(stderr, "    second resend: total_pending %ld, succeeded %ld\n",
            s.total_pending, s.succeeded);
    itest_expect(r,
                 s.total_pending == pending + others && s.succeeded >= pending,
                 "the second resend must take our %ld pending (+ %ld "
                 "others) and publish them all",
                 pending, others);
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "consumer_id = $1 AND publish_status = "
                                "'published' AND publish_try_count = 2",
                                c.id) == n,
                 "after the second resend every event must be published "
                 "with exactly one recorded re-drive try");

    /* The queue: none lost, at most one batch twice. */
    struct amqp_expected *exp;
    size_t want =
        amqp_expected_sql("SELECT event_id::text, -1, 0 FROM customer_events "
                          " WHERE consumer_id = $1::uuid",
                          c.id, &exp);
    struct amqp_sub sub;
    sub_open(&sub, queue);
    struct amqp_tally t;
    amqp_sub_tally(&sub, exp, want, 120000, 3000, &t);
    amqp_sub_close(&sub);
    free(exp);
    amqp_tally_print("queue after the kill and the second resend", want, &t);
    itest_expect(NULL, t.distinct == want && want == (size_t)n,
                 "%zu of %ld events reached the queue: none may be lost",
                 t.distinct, n);
    itest_expect(NULL, t.unknown == 0, "%zu message(s) that are not ours",
                 t.unknown);
    itest_expect(NULL, t.duplicates <= (size_t)g_batch,
                 "%zu events reached the queue twice: at most one batch "
                 "(FINTEGRATE_REDRIVE_BATCH = %ld) may",
                 t.duplicates, g_batch);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_relay_is_off_for_this_binary),
        cmocka_unit_test(
            backlog_of_20000_one_resend_publishes_each_once_in_order),
        cmocka_unit_test_teardown(
            confirm_delivery_during_a_redrive_answers_within_2s,
            join_background),
        cmocka_unit_test_teardown(
            kill_during_a_redrive_loses_nothing_and_repeats_one_batch_at_most,
            join_background),
    };
    return itest_exit(
        cmocka_run_group_tests_name("redrive", tests, setup, teardown));
}
