/*
 * tests/integration/test_broker_faults.c — broker faults (docs/API.md
 * §7.7; issue 11):
 *
 *   - GET /health never waits on the network: the broker closes every
 *     connection (rabbitmqctl) and is then paused (SIGSTOP of its
 *     beam.smp: TCP connects still succeed, the AMQP handshake never
 *     answers); 20 GET /health through nginx each answer within 100 ms
 *     (libcurl's total time), in the contract's shape.  A worker that
 *     reconnected to answer would wait for the whole connect timeout.
 *   - FINTEGRATE_AMQP_URL with several nodes: the pool restarted with
 *     "<refusing node>,<the real broker>,<another refusing node>"; a
 *     consumer created through the API gets its queues and a new customer's
 *     event is published at its first try and arrives in the queue (the
 *     first node refuses, the publisher moves to the next).  Then the
 *     broker closes every connection (a lost node): the next event is
 *     published at its first try again, and the app log shows that the
 *     reconnect started at the node after the lost one (the third), which
 *     nothing had tried before.  No log line holds a node's password.
 *   - fintegrate-consumer with "<refusing node>,<the real broker>" consumes
 *     and confirms (deliver_status delivered) and exits 0 on SIGTERM; with
 *     an empty item in the list it stops at start-up (exit 1) with one line
 *     naming FINTEGRATE_AMQP_URL and the item's position, never the
 *     password.
 *
 * A refusing node is a port this process has bound without listening: a
 * connect to it is refused at once, and nobody else can take the port
 * while the test holds it.
 *
 * The broker is always resumed (per-test teardown, and on SIGTERM/SIGINT),
 * and the pool is restarted with the stack's own FINTEGRATE_AMQP_URL at the
 * end (group teardown, and on SIGTERM/SIGINT).
 *
 * Needs FINTEGRATE_RUN_DIR (rabbitmq/beam.pid, logs/app.log),
 * FINTEGRATE_CHECKOUT, FINTEGRATE_AMQP_URL, FINTEGRATE_AMQP_PORT and
 * FINTEGRATE_AMQP_MGMT_PORT (scripts/test.sh exports them); the consumer
 * program is $FINTEGRATE_CONSUMER_BIN, else $FINTEGRATE_CHECKOUT/bin/.
 */
#include "itest.h"
#include "itest_amqp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The contract's bound for GET /health (docs/API.md §5.8). */
#define HEALTH_MAX_S 0.100
#define HEALTH_CALLS 20
/* In the refusing nodes' URLs: must never reach a log. */
#define SECRET "Sekr1t-node-pw"

static struct {
    char *orig_url; /* the stack's FINTEGRATE_AMQP_URL (owned) */
    char app_log[4096];
    char dir[64]; /* temporary: the consumer program's state and output */
    pid_t beam;   /* the broker's beam.smp */
    bool paused;  /* we sent it SIGSTOP and no SIGCONT yet */
    bool app_changed;
    pid_t consumer; /* fintegrate-consumer, or 0 */
    int refusing_fd[2];
} g = {.refusing_fd = {-1, -1}};

/* --------------------------------------------------------------- helpers */

/* Binds 127.0.0.1:<some free port> without listening: connects to it are
 * refused.  Returns the port; the socket stays open until release. */
static int
refusing_port(int slot)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        itest_failf("cannot bind a port on 127.0.0.1: %s", strerror(errno));
    }
    g.refusing_fd[slot] = fd;
    return ntohs(a.sin_port);
}

static void
release_ports(void)
{
    for (int i = 0; i < 2; i++) {
        if (g.refusing_fd[i] >= 0)
            close(g.refusing_fd[i]);
        g.refusing_fd[i] = -1;
    }
}

static pid_t
read_beam_pid(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/rabbitmq/beam.pid",
             itest_env("FINTEGRATE_RUN_DIR"));
    char *s = itest_slurp(path, NULL);
    long pid = s != NULL ? strtol(s, NULL, 10) : 0;
    free(s);
    return pid > 1 ? (pid_t)pid : -1;
}

static void
resume_broker(void)
{
    if (!g.paused)
        return;
    kill(g.beam, SIGCONT);
    g.paused = false;
    /* the binaries after this one need it answering */
    for (int i = 0; i < 600 && !itest_broker_up(); i++)
        itest_sleep_ms(100);
}

/* Has the broker close every client connection (rabbitmqctl
 * close_all_connections: at once, unlike the management API's list, which
 * lags behind new connections by the statistics interval).  Each client
 * gets a connection.close it does not answer while idle. */
static void
close_broker_connections(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "'%s/rabbitmqctl' close_all_connections test_broker_faults "
             ">/dev/null",
             itest_env("FINTEGRATE_RUN_DIR"));
    if (system(cmd) != 0)
        itest_failf("rabbitmqctl close_all_connections failed");
    itest_sleep_ms(500); /* the close frames reach the clients */
}

/* Restarts the pool with FINTEGRATE_AMQP_URL=url; this process keeps the
 * stack's URL (its own AMQP helpers read it). */
static void
app_restart_with_url(const char *url)
{
    g.app_changed = true;
    setenv("FINTEGRATE_AMQP_URL", url, 1);
    int rc = itest_app_restart();
    setenv("FINTEGRATE_AMQP_URL", g.orig_url, 1);
    if (rc != 0)
        itest_failf("could not restart the pool with a node list");
}

static int
restore_app(void)
{
    if (!g.app_changed)
        return 0;
    setenv("FINTEGRATE_AMQP_URL", g.orig_url, 1);
    if (itest_app_restart() != 0) {
        fprintf(stderr, "test_broker_faults: could not restart the pool "
                        "with the stack's FINTEGRATE_AMQP_URL\n");
        return -1;
    }
    g.app_changed = false;
    return 0;
}

/* POST /customer/data as key; the new event's id into eid. */
static void
create_customer(const char *key, char eid[37])
{
    char name[96];
    itest_unique(name, sizeof name, "broker-faults");
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    struct itest_resp *r =
        itest_request("POST", "/customer/data", key, body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    const char *e = itest_jstr(d, "event_id");
    itest_expect(r, e != NULL && itest_is_uuid(e), "event_id must be a UUID");
    snprintf(eid, 37, "%s", e);
    itest_resp_free(r);
}

/* The event is published, at its first (inline) try. */
static void
expect_published_first_try(const char *eid, const char *what)
{
    char *st = NULL;
    long tries = -1;
    double until = itest_now() + 5;
    for (;;) {
        free(st);
        st = itest_sql_value("SELECT publish_status || ' ' || "
                             "publish_try_count || ' ' || "
                             "coalesce(publish_failure_reason, '') "
                             "FROM customer_events WHERE event_id = $1",
                             eid);
        if (st != NULL && strncmp(st, "published ", 10) == 0) {
            tries = strtol(st + 10, NULL, 10);
            break;
        }
        if (itest_now() > until)
            break;
        itest_sleep_ms(100);
    }
    if (tries != 1)
        itest_failf("%s: event %s should be published at its first try; "
                    "it is \"%s\"",
                    what, eid, st ? st : "(no row)");
    free(st);
}

/* Reads the consumer's queue until the event arrives. */
static void
expect_in_queue(struct amqp_sub *s, const char *eid, const char *what)
{
    double until = itest_now() + 15;
    for (;;) {
        struct amqp_msg m;
        long left = (long)((until - itest_now()) * 1000);
        if (left <= 0)
            itest_failf("%s: event %s did not arrive in %s", what, eid,
                        s->queue);
        int rc = amqp_sub_next(s, &m, left);
        if (rc < 0)
            itest_failf("%s: reading %s broke", what, s->queue);
        bool hit = rc > 0 && strcmp(m.message_id, eid) == 0;
        if (rc > 0)
            amqp_msg_free(&m);
        if (hit)
            return;
    }
}

static int
log_lines(const char *n1, const char *n2)
{
    return itest_count_lines(g.app_log, n1, n2, NULL);
}

/* ---------------------------------------------------- the consumer program */

/* Starts fintegrate-consumer for c with FINTEGRATE_AMQP_URL=url; its
 * output goes to g.dir/<tag>.out and .err (paths into out/err). */
static pid_t
consumer_spawn(const struct itest_consumer *c, const char *url, const char *tag,
               char out[128], char err[128])
{
    char name[128], key[160], dir[128], amqp[1024];
    snprintf(out, 128, "%s/%s.out", g.dir, tag);
    snprintf(err, 128, "%s/%s.err", g.dir, tag);
    snprintf(name, sizeof name, "FINTEGRATE_CONSUMER_NAME=%s", c->name);
    snprintf(key, sizeof key, "FINTEGRATE_API_KEY=%s", c->key);
    snprintf(dir, sizeof dir, "FINTEGRATE_CONSUMER_STATE_DIR=%s/%s-state",
             g.dir, tag);
    snprintf(amqp, sizeof amqp, "FINTEGRATE_AMQP_URL=%s", url);
    const char *const env[] = {
        name, key, dir, amqp, "FINTEGRATE_LOG_LEVEL=info", NULL};
    const char *const argv[] = {itest_consumer_bin(), NULL};
    return itest_spawn(argv, env, out, err);
}

static void
dump_file(const char *path)
{
    char *s = itest_slurp(path, NULL);
    fprintf(stderr, "---- %s\n%s---- end\n", path, s ? s : "(unreadable)\n");
    free(s);
}

/* ------------------------------------------------------------ the tests */

static void
health_answers_at_once_while_the_broker_is_paused(void **state)
{
    (void)state;
    /* Every worker answers once with the broker up (their connections
     * open), then the broker drops them all: a worker that reconnected to
     * answer would meet the paused broker. */
    for (int i = 0; i < 8; i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", NULL, NULL, NULL);
        itest_assert_envelope(r, 200);
        itest_resp_free(r);
    }
    close_broker_connections();

    if (kill(g.beam, SIGSTOP) != 0)
        itest_failf("SIGSTOP %ld (beam.smp): %s", (long)g.beam,
                    strerror(errno));
    g.paused = true;
    for (int i = 0; i < 100 && itest_proc_state(g.beam) != 'T'; i++)
        itest_sleep_ms(10);
    if (itest_proc_state(g.beam) != 'T')
        itest_failf("beam.smp %ld is not stopped", (long)g.beam);

    double worst = 0;
    for (int i = 0; i < HEALTH_CALLS; i++) {
        struct itest_resp *r =
            itest_request("GET", "/health", NULL, NULL, NULL);
        json_t *d = itest_assert_envelope(r, r->status == 503 ? 503 : 200);
        if (r->status == 200) {
            const char *b = itest_jstr(d, "broker");
            itest_expect(r,
                         b != NULL &&
                             (strcmp(b, "up") == 0 || strcmp(b, "down") == 0 ||
                              strcmp(b, "circuit_open") == 0),
                         "data.broker must be up, down or circuit_open");
            itest_assert_jstr(r, d, "database", "up");
        }
        itest_expect(r, r->elapsed < HEALTH_MAX_S,
                     "GET /health #%d took %.0f ms with the broker paused "
                     "(at most %.0f ms: it must not wait on the network)",
                     i + 1, r->elapsed * 1000, HEALTH_MAX_S * 1000);
        if (r->elapsed > worst)
            worst = r->elapsed;
        itest_resp_free(r);
    }
    fprintf(stderr,
            "    %d GET /health with the broker paused: slowest %.1f "
            "ms\n",
            HEALTH_CALLS, worst * 1000);
    resume_broker();
}

static void
publisher_skips_refusing_nodes_and_moves_on_after_a_loss(void **state)
{
    (void)state;
    int p1 = refusing_port(0), p3 = refusing_port(1);
    char n1[64], n3[64], real[64], url[2048];
    snprintf(n1, sizeof n1, "127.0.0.1:%d", p1);
    snprintf(n3, sizeof n3, "127.0.0.1:%d", p3);
    snprintf(real, sizeof real, "127.0.0.1:%s",
             itest_env("FINTEGRATE_AMQP_PORT"));
    snprintf(url, sizeof url,
             "amqp://fi-node:" SECRET "@%s, %s ,amqp://fi-node:" SECRET "@%s",
             n1, g.orig_url, n3);

    int n1_before = log_lines(n1, NULL), n3_before = log_lines(n3, NULL);
    app_restart_with_url(url);

    /* The consumer's queues are declared through the node that answered. */
    struct itest_consumer c;
    char queue[160], eid[37];
    struct amqp_sub sub;
    itest_consumer_create_api(&c, "bfp");
    itest_queue_name(queue, sizeof queue, c.name, false);
    if (amqp_sub_open(&sub, queue) != 0)
        itest_failf("cannot consume %s: were its queues declared?", queue);

    create_customer(c.key, eid);
    expect_published_first_try(eid, "node 1 refusing");
    expect_in_queue(&sub, eid, "node 1 refusing");
    itest_expect(NULL, log_lines(n1, NULL) > n1_before,
                 "app.log should name %s, the node that refused", n1);
    itest_expect(NULL, log_lines(n3, NULL) == n3_before,
                 "nothing should have tried %s (node 3) while node 2 "
                 "answered",
                 n3);

    /* A lost node: the broker drops every connection (ours too).  The next
     * publish reconnects, starting at the node after the lost one. */
    amqp_sub_close(&sub);
    close_broker_connections();
    if (amqp_sub_open(&sub, queue) != 0)
        itest_failf("cannot consume %s again", queue);
    create_customer(c.key, eid);
    expect_published_first_try(eid, "after the connection was lost");
    expect_in_queue(&sub, eid, "after the connection was lost");
    itest_expect(NULL, log_lines(n3, NULL) > n3_before,
                 "after losing node 2 the reconnect should start at node 3 "
                 "(%s), the one after it: app.log does not name it",
                 n3);
    amqp_sub_close(&sub);

    itest_expect(NULL, log_lines(SECRET, NULL) == 0,
                 "app.log holds a node's password");
    itest_expect(NULL, log_lines("fi-node", NULL) == 0,
                 "app.log holds a node's user name");
    release_ports();
}

static void
consumer_program_skips_a_refusing_node(void **state)
{
    (void)state;
    int p1 = refusing_port(0);
    char url[2048], out[128], err[128], ready[256], ev[64], eid[37];
    snprintf(url, sizeof url, "amqp://fi-node:" SECRET "@127.0.0.1:%d,%s", p1,
             g.orig_url);

    struct itest_consumer c;
    itest_consumer_create_api(&c, "bfc");
    snprintf(ready, sizeof ready,
             "consuming customer_notification_%s on "
             "127.0.0.1:%s",
             c.name, itest_env("FINTEGRATE_AMQP_PORT"));
    g.consumer = consumer_spawn(&c, url, "two-nodes", out, err);
    double until = itest_now() + 30;
    while (itest_count_lines(err, ready, NULL, NULL) == 0) {
        int st;
        if (waitpid(g.consumer, &st, WNOHANG) == g.consumer) {
            g.consumer = 0;
            dump_file(err);
            itest_failf("fintegrate-consumer exited at start-up with the "
                        "node list (status %d)",
                        WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        if (itest_now() > until) {
            dump_file(err);
            itest_failf("fintegrate-consumer did not log \"%s\" within 30 s",
                        ready);
        }
        itest_sleep_ms(50);
    }

    create_customer(c.key, eid);
    snprintf(ev, sizeof ev, "event=%s", eid);
    until = itest_now() + 20;
    for (;;) {
        char *st = itest_sql_value("SELECT deliver_status FROM "
                                   "customer_events WHERE event_id = $1",
                                   eid);
        bool done = st != NULL && strcmp(st, "delivered") == 0 &&
                    itest_count_lines(out, " processed ", ev, NULL) == 1;
        free(st);
        if (done)
            break;
        if (itest_now() > until) {
            dump_file(out);
            dump_file(err);
            itest_failf("event %s was not processed and confirmed by "
                        "fintegrate-consumer within 20 s",
                        eid);
        }
        itest_sleep_ms(100);
    }
    int st = itest_stop_process(g.consumer, 15);
    g.consumer = 0;
    itest_expect(NULL, st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                 "fintegrate-consumer must exit 0 on SIGTERM");

    /* An empty item: refused at start-up, by position, without the
     * password. */
    snprintf(url, sizeof url, "amqp://fi-node:" SECRET "@127.0.0.1:%d,,%s", p1,
             g.orig_url);
    g.consumer = consumer_spawn(&c, url, "bad-list", out, err);
    st = -1;
    until = itest_now() + 15;
    while (waitpid(g.consumer, &st, WNOHANG) != g.consumer) {
        if (itest_now() > until) {
            dump_file(err);
            itest_failf("fintegrate-consumer kept running with a list with "
                        "an empty item");
        }
        itest_sleep_ms(50);
    }
    g.consumer = 0;
    itest_expect(NULL, WIFEXITED(st) && WEXITSTATUS(st) == 1,
                 "fintegrate-consumer must exit 1 on a list with an empty "
                 "item");
    if (itest_count_lines(err, "FINTEGRATE_AMQP_URL item 2 of 3 is empty", NULL,
                          NULL) != 1) {
        dump_file(err);
        itest_failf("the refusal should name FINTEGRATE_AMQP_URL and the "
                    "item's position");
    }
    for (int i = 0; i < 2; i++) {
        const char *f = i ? out : err;
        if (itest_count_lines(f, SECRET, NULL, NULL) != 0) {
            dump_file(f);
            itest_failf("fintegrate-consumer printed a node's password");
        }
    }
    release_ports();
}

/* ------------------------------------------------------------- group */

static int
restore(void **state)
{
    (void)state;
    resume_broker();
    if (g.consumer > 0) {
        itest_stop_process(g.consumer, 10);
        g.consumer = 0;
    }
    release_ports();
    return 0;
}

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    const char *url = itest_env("FINTEGRATE_AMQP_URL");
    if (itest_env("FINTEGRATE_RUN_DIR") == NULL ||
        itest_env("FINTEGRATE_CHECKOUT") == NULL || url == NULL ||
        itest_env("FINTEGRATE_AMQP_PORT") == NULL ||
        itest_env("FINTEGRATE_AMQP_MGMT_PORT") == NULL) {
        fprintf(stderr, "test_broker_faults: needs FINTEGRATE_RUN_DIR, "
                        "FINTEGRATE_CHECKOUT, FINTEGRATE_AMQP_URL, "
                        "FINTEGRATE_AMQP_PORT and FINTEGRATE_AMQP_MGMT_PORT "
                        "(scripts/test.sh exports them)\n");
        return -1;
    }
    if (strchr(url, ',') != NULL) {
        fprintf(stderr, "test_broker_faults: the stack's FINTEGRATE_AMQP_URL "
                        "must name one node\n");
        return -1;
    }
    if (!itest_broker_up()) {
        fprintf(stderr, "test_broker_faults: the broker is not running\n");
        return -1;
    }
    g.beam = read_beam_pid();
    if (g.beam <= 0 || kill(g.beam, 0) != 0) {
        fprintf(stderr, "test_broker_faults: no beam.smp pid in "
                        "$FINTEGRATE_RUN_DIR/rabbitmq/beam.pid\n");
        return -1;
    }
    g.orig_url = strdup(url);
    snprintf(g.app_log, sizeof g.app_log, "%s/logs/app.log",
             itest_env("FINTEGRATE_RUN_DIR"));
    snprintf(g.dir, sizeof g.dir, "/tmp/fi-bfaults-XXXXXX");
    if (g.orig_url == NULL || mkdtemp(g.dir) == NULL) {
        fprintf(stderr, "test_broker_faults: setup: %s\n", strerror(errno));
        return -1;
    }
    /* Stopped from outside: the broker resumed, the pool with the stack's
     * URL again. */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "kill -CONT %ld 2>/dev/null; ", (long)g.beam);
    itest_sh_env_cmd(cmd, sizeof cmd, "FINTEGRATE_AMQP_URL", g.orig_url);
    itest_on_signal_restart_app(cmd);
    return 0;
}

static int
teardown(void **state)
{
    int rc = restore(state);
    if (restore_app() != 0)
        rc = -1;
    itest_on_signal_run(NULL);
    const char *keep = itest_env("FINTEGRATE_TEST_KEEP_OUTPUT");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "test_broker_faults: output kept in %s\n", g.dir);
    } else if (g.dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_broker_faults: could not remove %s\n", g.dir);
    }
    free(g.orig_url);
    g.orig_url = NULL;
    itest_group_teardown(state);
    return rc;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            health_answers_at_once_while_the_broker_is_paused, restore),
        cmocka_unit_test_teardown(
            publisher_skips_refusing_nodes_and_moves_on_after_a_loss, restore),
        cmocka_unit_test_teardown(consumer_program_skips_a_refusing_node,
                                  restore),
    };
    return itest_exit(
        cmocka_run_group_tests_name("broker_faults", tests, setup, teardown));
}
