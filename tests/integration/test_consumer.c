/*
 * tests/integration/test_consumer.c — bin/fintegrate-consumer (issue 6)
 * against the running stack and its real RabbitMQ.
 *
 * The group creates a consumer and its API key through the API (so its
 * queue and DLQ exist), then each test runs the program as a child process
 * with its own state directory, its stdout and stderr appended to files
 * in a temporary directory, and reads what it printed:
 *   - a new customer is consumed, printed, confirmed, and GET /events
 *     shows deliver_status delivered;
 *   - the same event redelivered (POST /events/redeliver after setting it
 *     back to pending in SQL) is printed "duplicate" and confirmed again,
 *     never processed twice, also after a restart of the program;
 *   - an event published straight to the queue ahead of its turn (sequence
 *     N+1 before the real N) waits, survives a SIGTERM (returned to the
 *     queue) and a restart, and is processed after N;
 *   - with nothing filling the gap it is processed after the gap timeout,
 *     the gap logged, and the real event arriving later is "late";
 *   - malformed messages (not JSON, unknown major schema_version, no
 *     event_id) land in the DLQ at once and the identifiable events become
 *     deliver_status failed;
 *   - with nginx stopped the confirmation fails and the message is
 *     requeued; with nginx back it is confirmed;
 *   - after a broker restart the program reconnects and keeps consuming;
 *   - another consumer's key is refused at start-up (exit 1); a key
 *     rotated away while it runs stops it (exit 3) with the message back
 *     in the queue, confirmed (not processed again) with the new key; no
 *     key ever appears in its output.
 * Every test stops the program with SIGTERM and expects exit status 0.
 * The per-test teardown kills a program left running and restarts nginx
 * or the broker if a failed test left them stopped.
 *
 * The binary: $FINTEGRATE_CONSUMER_BIN (set by `make test`), else
 * $FINTEGRATE_CHECKOUT/bin/fintegrate-consumer.  The broker:
 * $FINTEGRATE_AMQP_URL.  FINTEGRATE_TEST_KEEP_OUTPUT=1 keeps the temporary
 * directory (the program's state, stdout.log, stderr.log) for a look.
 */
#include "itest.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct {
    char name[64]; /* consumer_name */
    char id[37];
    char key[128];
    char queue[128], dlq[128];
    char dir[64]; /* temporary: state, outputs */
    char state[128], out[128], err[128];
    pid_t pid; /* the running program, or 0 */
    bool nginx_stopped, broker_stopped;
} g;

/* ------------------------------------------------------------- files */

/* The number (0-based) of the first line holding both needles, or -1. */
static int
line_index(const char *path, const char *n1, const char *n2)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int i = 0, found = -1;
    if (f == NULL)
        return -1;
    while (getline(&line, &cap, f) > 0) {
        if (strstr(line, n1) && (n2 == NULL || strstr(line, n2))) {
            found = i;
            break;
        }
        i++;
    }
    free(line);
    fclose(f);
    return found;
}

/* A copy (free()) of the first line holding both needles, or NULL. */
static char *
find_line(const char *path, const char *n1, const char *n2)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *hit = NULL;
    size_t cap = 0;
    if (f == NULL)
        return NULL;
    while (getline(&line, &cap, f) > 0) {
        if (strstr(line, n1) && (n2 == NULL || strstr(line, n2))) {
            hit = strdup(line);
            break;
        }
    }
    free(line);
    fclose(f);
    return hit;
}

static void
dump_file(const char *label, const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    size_t n;
    fprintf(stderr, "---- %s (%s)\n", label, path);
    if (f == NULL)
        return;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
    fprintf(stderr, "---- end of %s\n", label);
}

static void
dump_outputs(void)
{
    dump_file("consumer stdout", g.out);
    dump_file("consumer stderr", g.err);
}

/* Waits until itest_count_lines(path, …) >= want; fails after timeout_s. */
#define wait_lines(path, want, timeout_s, n1, n2, n3)                          \
    wait_lines_at(__FILE__, __LINE__, (path), (want), (timeout_s), (n1), (n2), \
                  (n3))

static void
wait_lines_at(const char *file, int line, const char *path, int want,
              double timeout_s, const char *n1, const char *n2, const char *n3)
{
    double until = itest_now() + timeout_s;
    int n;
    while ((n = itest_count_lines(path, n1, n2, n3)) < want) {
        if (itest_now() > until) {
            dump_outputs();
            itest_failf_at(file, line,
                           "waited %.0f s for %d line(s) with \"%s\"%s%s%s%s "
                           "in %s; found %d",
                           timeout_s, want, n1, n2 ? " + \"" : "", n2 ? n2 : "",
                           n2 ? "\"" : "", n3 ? " + …" : "", path, n);
        }
        usleep(50 * 1000);
    }
}

/* ------------------------------------------------------- the program */

static void
kill_consumer(void)
{
    if (g.pid <= 0)
        return;
    kill(g.pid, SIGKILL);
    waitpid(g.pid, NULL, 0);
    g.pid = 0;
}

/* Forks and execs the program with extra flags (NULL-terminated list, may
 * be NULL) and `key` as FINTEGRATE_API_KEY; its stdout and stderr are
 * appended to g.out and g.err. */
static pid_t
consumer_spawn(const char *const *extra, const char *key)
{
    const char *argv[16];
    int argc = 0;
    argv[argc++] = itest_consumer_bin();
    argv[argc++] = "--raw";
    for (int i = 0; extra != NULL && extra[i] != NULL && argc < 14; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        itest_failf("fork: %s", strerror(errno));
    if (pid == 0) {
        int o = open(g.out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int e = open(g.err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        setenv("FINTEGRATE_CONSUMER_NAME", g.name, 1);
        setenv("FINTEGRATE_API_KEY", key, 1);
        setenv("FINTEGRATE_CONSUMER_STATE_DIR", g.state, 1);
        setenv("FINTEGRATE_LOG_LEVEL", "info", 1);
        /* FINTEGRATE_BASE_URL and FINTEGRATE_AMQP_URL: the stack's */
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Starts the program (see consumer_spawn) with our key and waits until it
 * consumes. */
static void
consumer_start(const char *const *extra)
{
    char ready[192];
    snprintf(ready, sizeof ready, "consuming %s on", g.queue);
    int before = itest_count_lines(g.err, ready, NULL, NULL);
    pid_t pid = consumer_spawn(extra, g.key);
    g.pid = pid;
    double until = itest_now() + 20;
    while (itest_count_lines(g.err, ready, NULL, NULL) <= before) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            g.pid = 0;
            dump_outputs();
            itest_failf("fintegrate-consumer (%s) exited at start-up "
                        "(status %d)",
                        itest_consumer_bin(),
                        WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        if (itest_now() > until) {
            dump_outputs();
            itest_failf("fintegrate-consumer did not start consuming %s "
                        "within 20 s",
                        g.queue);
        }
        usleep(50 * 1000);
    }
}

/* Waits up to timeout_s for the program `pid` to end by itself; fails
 * unless it exits with want_status. */
static void
expect_exit(pid_t pid, int want_status, double timeout_s)
{
    int st = 0;
    double until = itest_now() + timeout_s;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (itest_now() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            dump_outputs();
            itest_failf("fintegrate-consumer did not exit within %.0f s "
                        "(expected exit status %d)",
                        timeout_s, want_status);
        }
        usleep(50 * 1000);
    }
    if (g.pid == pid)
        g.pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != want_status) {
        dump_outputs();
        itest_failf("fintegrate-consumer ended with %s %d, expected exit "
                    "status %d",
                    WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                    want_status);
    }
}

/* SIGTERM; the program must exit 0 within 15 s. */
static void
consumer_stop(void)
{
    int st = 0;
    pid_t pid = g.pid;
    if (pid <= 0)
        itest_failf("no consumer running");
    kill(pid, SIGTERM);
    double until = itest_now() + 15;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (itest_now() > until) {
            kill_consumer();
            dump_outputs();
            itest_failf("fintegrate-consumer did not stop within 15 s of "
                        "SIGTERM");
        }
        usleep(20 * 1000);
    }
    g.pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        dump_outputs();
        itest_failf("fintegrate-consumer ended with %s %d after SIGTERM, "
                    "not exit 0",
                    WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
}

/* ------------------------------------------------------------ the API */

/* POST /customer/data as our consumer: ids into cid/eid. */
static void
create_customer(char cid[37], char eid[37])
{
    itest_make_customer_event(g.key, "consumer-test", cid, eid);
}

/* PATCH /customer/change-status: the new event's id into eid. */
static void
change_status(const char *cid, const char *status, char eid[37])
{
    char *body = itest_json_text(
        json_pack("{s:s, s:s}", "customer_id", cid, "status", status));
    struct itest_resp *r =
        itest_request("PATCH", "/customer/change-status", g.key, body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 200);
    snprintf(eid, 37, "%s", itest_jstr(d, "event_id"));
    itest_resp_free(r);
}

/* deliver_status (and reason) of one event, read with GET /events as its
 * owner.  false when the listing does not hold it. */
static bool
event_delivery(const char *cid, const char *eid, char status[16],
               char reason[512])
{
    struct itest_resp *r = itest_requestf(
        "GET", g.key, NULL, "/events?customer_id=%s&limit=1000", cid);
    json_t *d = itest_assert_envelope(r, 200);
    json_t *events = json_object_get(d, "events");
    bool found = false;
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        const char *id = itest_jstr(e, "event_id");
        if (id == NULL || strcmp(id, eid) != 0)
            continue;
        const char *s = itest_jstr(e, "deliver_status");
        const char *why = itest_jstr(e, "deliver_failure_reason");
        snprintf(status, 16, "%s", s ? s : "");
        if (reason != NULL)
            snprintf(reason, 512, "%s", why ? why : "");
        found = true;
    }
    itest_resp_free(r);
    return found;
}

#define wait_delivery(cid, eid, want, timeout_s, reason)                       \
    wait_delivery_at(__FILE__, __LINE__, (cid), (eid), (want), (timeout_s),    \
                     (reason))

static void
wait_delivery_at(const char *file, int line, const char *cid, const char *eid,
                 const char *want, double timeout_s, char reason[512])
{
    char status[16] = "";
    double until = itest_now() + timeout_s;
    for (;;) {
        if (event_delivery(cid, eid, status, reason) &&
            strcmp(status, want) == 0)
            return;
        if (itest_now() > until) {
            dump_outputs();
            itest_failf_at(file, line,
                           "GET /events: event %s has deliver_status \"%s\" "
                           "after %.0f s, expected \"%s\"",
                           eid, status, timeout_s, want);
        }
        usleep(100 * 1000);
    }
}

/* Sets the event back to pending and has the administrator redeliver our
 * consumer's undelivered events. */
static void
redeliver(const char *eid)
{
    PQclear(itest_sql("UPDATE customer_events SET deliver_status = 'pending' "
                      "WHERE event_id = $1",
                      eid));
    char *body = itest_json_text(
        json_pack("{s:i, s:s}", "period_in_days", 1, "consumer_id", g.id));
    struct itest_resp *r = itest_request("POST", "/events/redeliver",
                                         itest_admin_key(), body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 200);
    json_t *summary = json_object_get(d, "summary");
    itest_expect(r,
                 json_integer_value(json_object_get(summary, "succeeded")) >= 1,
                 "redeliver should have republished event %s", eid);
    itest_resp_free(r);
}

/* ------------------------------------------------------------ the broker */

static amqp_connection_state_t
mq_open(bool confirms)
{
    const char *url = itest_env("FINTEGRATE_AMQP_URL");
    if (url == NULL)
        itest_failf("FINTEGRATE_AMQP_URL is not set");
    char *copy = strdup(url);
    struct amqp_connection_info info;
    if (copy == NULL || amqp_parse_url(copy, &info) != AMQP_STATUS_OK)
        itest_failf("FINTEGRATE_AMQP_URL is not an amqp:// URL");
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {5, 0};
    if (s == NULL || amqp_socket_open_noblock(s, info.host, info.port, &tv) !=
                         AMQP_STATUS_OK) {
        free(copy);
        amqp_destroy_connection(c);
        itest_failf("cannot connect to the broker");
    }
    amqp_rpc_reply_t r =
        amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                   info.user, info.password);
    free(copy);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        itest_failf("broker login failed");
    }
    amqp_channel_open(c, 1);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        itest_failf("channel.open failed");
    }
    if (confirms) {
        amqp_confirm_select(c, 1);
        if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
            amqp_destroy_connection(c);
            itest_failf("confirm.select failed");
        }
    }
    return c;
}

static void
mq_close(amqp_connection_state_t c)
{
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* Publishes to fintegrate.events with routing key <name>.<type>, as the
 * service would, and waits for the broker's confirm (so it is in the
 * queue before anything published after it). */
static void
mq_publish(const char *type, const char *body, const char *message_id)
{
    amqp_connection_state_t c = mq_open(true);
    char rk[192];
    snprintf(rk, sizeof rk, "%s.%s", g.name, type);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    if (message_id != NULL) {
        p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        p.message_id = amqp_cstring_bytes(message_id);
    }
    amqp_bytes_t b = {strlen(body), (void *)body};
    if (amqp_basic_publish(c, 1, amqp_cstring_bytes("fintegrate.events"),
                           amqp_cstring_bytes(rk), 1, 0, &p,
                           b) != AMQP_STATUS_OK) {
        mq_close(c);
        itest_failf("basic.publish failed");
    }
    bool returned = false;
    for (;;) {
        amqp_frame_t f;
        struct timeval tv = {5, 0};
        int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc != AMQP_STATUS_OK) {
            amqp_destroy_connection(c);
            itest_failf("no publisher confirm: %s", amqp_error_string2(rc));
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            amqp_message_t m;
            returned = true;
            if (amqp_read_message(c, f.channel, &m, 0).reply_type ==
                AMQP_RESPONSE_NORMAL)
                amqp_destroy_message(&m);
        } else if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            break;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            mq_close(c);
            itest_failf("the broker nacked a test message");
        }
    }
    mq_close(c);
    if (returned)
        itest_failf("test message to %s was unroutable", rk);
}

struct taken {
    char *body; /* owned */
    char message_id[64];
};

/* Consumes up to `want` messages of `queue` within timeout_ms, acking
 * each (basic.consume: basic.get is refused on single-active-consumer
 * quorum queues). Returns how many. */
static int
mq_take(const char *queue, int want, long timeout_ms, struct taken *out)
{
    amqp_connection_state_t c = mq_open(false);
    amqp_basic_qos(c, 1, 0, (uint16_t)want, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0,
                       0, amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        itest_failf("basic.consume on %s failed", queue);
    }
    int n = 0;
    double until = itest_now() + timeout_ms / 1000.0;
    while (n < want && itest_now() < until) {
        amqp_envelope_t env;
        struct timeval tv = {0, 200 * 1000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            amqp_destroy_connection(c);
            itest_failf("consuming %s failed", queue);
        }
        out[n].body = strndup(env.message.body.bytes, env.message.body.len);
        out[n].message_id[0] = '\0';
        if ((env.message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
            env.message.properties.message_id.len < 64) {
            memcpy(out[n].message_id, env.message.properties.message_id.bytes,
                   env.message.properties.message_id.len);
            out[n].message_id[env.message.properties.message_id.len] = '\0';
        }
        amqp_basic_ack(c, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
        n++;
    }
    mq_close(c);
    return n;
}

static void
taken_free(struct taken *t, int n)
{
    for (int i = 0; i < n; i++)
        free(t[i].body);
}

/* A message the service could have sent: a status change of customer cid
 * with `seq`, under a fresh event id (written to eid). */
static char *
crafted_status_change(const char *cid, int seq, char eid[37])
{
    itest_random_uuid(eid);
    return itest_json_text(json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s}}",
        "schema_version", "1.0", "event_id", eid, "event_type",
        "customer_status_change", "sequence", seq, "consumer_id", g.id,
        "customer_id", cid, "data", "customer_id", cid, "previous_status",
        "INACTIVE", "status", "ACTIVE", "metadata", "source_service",
        "test_consumer.c", "request_id", "crafted"));
}

/* -------------------------------------------------------- setup/teardown */

static int
group_setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    memset(&g, 0, sizeof g);
    snprintf(g.dir, sizeof g.dir, "/tmp/fc-itest-XXXXXX");
    if (mkdtemp(g.dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(g.state, sizeof g.state, "%s/state", g.dir);
    snprintf(g.out, sizeof g.out, "%s/stdout.log", g.dir);
    snprintf(g.err, sizeof g.err, "%s/stderr.log", g.dir);

    /* "ct" + pid + time: a valid consumer_name, unique per run */
    snprintf(g.name, sizeof g.name, "ct%ld-%ld", (long)getpid(),
             (long)time(NULL));
    snprintf(g.queue, sizeof g.queue, "customer_notification_%s", g.name);
    snprintf(g.dlq, sizeof g.dlq, "customer_notification_%s_DLQ", g.name);

    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", g.name));
    struct itest_resp *r =
        itest_request("POST", "/consumer/data", itest_admin_key(), body, NULL);
    free(body);
    if (r->status != 201 || itest_jstr(itest_data(r), "consumer_id") == NULL) {
        itest_dump(r);
        itest_resp_free(r);
        return -1;
    }
    snprintf(g.id, sizeof g.id, "%s", itest_jstr(itest_data(r), "consumer_id"));
    itest_resp_free(r);

    body = itest_json_text(json_pack("{s:s}", "consumer_id", g.id));
    r = itest_request("POST", "/consumer/api-key", itest_admin_key(), body,
                      NULL);
    free(body);
    if (r->status != 201 || itest_jstr(itest_data(r), "api_key") == NULL) {
        itest_dump(r);
        itest_resp_free(r);
        return -1;
    }
    snprintf(g.key, sizeof g.key, "%s", itest_jstr(itest_data(r), "api_key"));
    itest_resp_free(r);
    return 0;
}

/* Puts back whatever a failed test left: a running program, a stopped
 * nginx or broker. */
static int
restore(void **state)
{
    (void)state;
    kill_consumer();
    if (g.nginx_stopped && itest_stack("nginx-start") == 0)
        g.nginx_stopped = false;
    if (g.broker_stopped && itest_stack("broker-start") == 0)
        g.broker_stopped = false;
    return g.nginx_stopped || g.broker_stopped ? -1 : 0;
}

static int
group_teardown(void **state)
{
    restore(state);
    const char *keep = getenv("FINTEGRATE_TEST_KEEP_OUTPUT");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "consumer test output kept in %s\n", g.dir);
        return itest_group_teardown(state);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
    if (g.dir[0] != '\0' && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g.dir);
    return itest_group_teardown(state);
}

/* ----------------------------------------------------------------- tests */

static void
new_customer_is_printed_confirmed_and_delivered(void **state)
{
    (void)state;
    char cid[37], eid[37], ev[64];
    consumer_start(NULL);
    create_customer(cid, eid);
    snprintf(ev, sizeof ev, "event=%s", eid);
    wait_lines(g.out, 1, 15, " processed ", ev, NULL);

    char *line = find_line(g.out, " processed ", ev);
    if (line == NULL || !strstr(line, "customer_creation") ||
        !strstr(line, "seq=1") || !strstr(line, cid) ||
        !strstr(line, "name=\"consumer-test-") ||
        !strstr(line, "status=ACTIVE")) {
        dump_outputs();
        itest_failf("the processed line should name the type, customer, "
                    "sequence, name and status: %s",
                    line ? line : "(none)");
    }
    free(line);
    /* --raw: the JSON follows on its own line */
    int at = line_index(g.out, " processed ", ev);
    char raw_needle[80];
    snprintf(raw_needle, sizeof raw_needle, "\"event_id\":\"%s\"", eid);
    int raw_at = line_index(g.out, "    raw {", raw_needle);
    if (raw_at != at + 1) {
        dump_outputs();
        itest_failf("--raw: the raw JSON should follow the processed line "
                    "(line %d, raw at %d)",
                    at, raw_at);
    }

    wait_delivery(cid, eid, "delivered", 15, NULL);
    long receipts = itest_sql_long(
        "SELECT count(*) FROM consumer_event_receipts WHERE event_id = $1 "
        "AND processing_status = 'processed' AND received_at IS NOT NULL",
        eid);
    if (receipts != 1)
        itest_failf("expected one 'processed' receipt for %s, found %ld", eid,
                    receipts);
    consumer_stop();
    wait_lines(g.err, 1, 1, "stopped: ", NULL, NULL);
}

static void
redelivered_event_is_not_processed_twice_even_after_restart(void **state)
{
    (void)state;
    char cid[37], eid[37], ev[64];
    consumer_start(NULL);
    create_customer(cid, eid);
    snprintf(ev, sizeof ev, "event=%s", eid);
    wait_delivery(cid, eid, "delivered", 15, NULL);

    redeliver(eid);
    wait_lines(g.out, 1, 15, " duplicate ", ev, NULL);
    wait_delivery(cid, eid, "delivered", 15, NULL);

    /* a new process, the same state directory */
    consumer_stop();
    consumer_start(NULL);
    redeliver(eid);
    wait_lines(g.out, 2, 15, " duplicate ", ev, NULL);
    wait_delivery(cid, eid, "delivered", 15, NULL);
    consumer_stop();

    int processed = itest_count_lines(g.out, " processed ", ev, NULL);
    if (processed != 1) {
        dump_outputs();
        itest_failf("event %s was processed %d times, expected once", eid,
                    processed);
    }
    long receipts = itest_sql_long(
        "SELECT count(*) FROM consumer_event_receipts WHERE event_id = $1",
        eid);
    if (receipts != 1)
        itest_failf("a repeated confirmation must not add a receipt "
                    "(found %ld)",
                    receipts);
}

static void
out_of_order_event_waits_for_its_turn(void **state)
{
    (void)state;
    static const char *const slow_gap[] = {"--gap-timeout-ms", "60000", NULL};
    char cid[37], e1[37], e2[37], e3[37], n1[64], n2[64], n3[64];
    char waits[128];

    consumer_start(slow_gap);
    create_customer(cid, e1);
    snprintf(n1, sizeof n1, "event=%s", e1);
    wait_lines(g.out, 1, 15, " processed ", n1, NULL);

    /* sequence 3 reaches the queue before 2 exists */
    char *body = crafted_status_change(cid, 3, e3);
    mq_publish("customer_status_change", body, e3);
    free(body);
    snprintf(n3, sizeof n3, "event=%s", e3);
    snprintf(waits, sizeof waits,
             "event %s (customer %s, seq 3) waits for "
             "seq 2..2",
             e3, cid);
    wait_lines(g.err, 1, 15, waits, NULL, NULL);
    if (itest_count_lines(g.out, n3, NULL, NULL) != 0) {
        dump_outputs();
        itest_failf("sequence 3 was printed before sequence 2 arrived");
    }

    /* SIGTERM while it is held: it goes back to the queue unprocessed, and
     * the restarted program (which remembers sequence 1) holds it again */
    consumer_stop();
    wait_lines(g.err, 1, 1, "1 held message(s) returned to the queue", NULL,
               NULL);
    consumer_start(slow_gap);
    wait_lines(g.err, 2, 15, waits, NULL, NULL);

    /* the real sequence 2 */
    change_status(cid, "INACTIVE", e2);
    snprintf(n2, sizeof n2, "event=%s", e2);
    wait_lines(g.out, 1, 15, " processed ", n3, NULL);
    int at2 = line_index(g.out, " processed ", n2);
    int at3 = line_index(g.out, " processed ", n3);
    if (at2 < 0 || at3 < at2) {
        dump_outputs();
        itest_failf("sequence 2 (line %d) must be processed before "
                    "sequence 3 (line %d)",
                    at2, at3);
    }
    if (itest_count_lines(g.out, " processed ", n3, "after a gap") != 0)
        itest_failf("sequence 3 should have been released by sequence 2, "
                    "not by the gap timeout");
    wait_delivery(cid, e2, "delivered", 15, NULL);
    /* the crafted event is unknown to the service: refused (404) and
     * acknowledged, not retried */
    wait_lines(g.err, 1, 10, e3, "refused its confirmation (HTTP 404", NULL);
    consumer_stop();
    if (itest_count_lines(g.out, " processed ", n3, NULL) != 1 ||
        itest_count_lines(g.out, " duplicate ", n3, NULL) != 0) {
        dump_outputs();
        itest_failf("the crafted event should be processed exactly once "
                    "and never come back");
    }
}

static void
gap_timeout_processes_and_logs_the_gap(void **state)
{
    (void)state;
    static const char *const quick_gap[] = {"--gap-timeout-ms", "1500", NULL};
    char cid[37], e1[37], e2[37], e3[37], n1[64], n2[64], n3[64];
    char gap[160];

    consumer_start(quick_gap);
    create_customer(cid, e1);
    snprintf(n1, sizeof n1, "event=%s", e1);
    wait_lines(g.out, 1, 15, " processed ", n1, NULL);

    char *body = crafted_status_change(cid, 3, e3);
    double t0 = itest_now();
    mq_publish("customer_status_change", body, e3);
    free(body);
    snprintf(n3, sizeof n3, "event=%s", e3);
    wait_lines(g.out, 1, 15, " processed ", n3,
               "after a gap: seq 2..2 missing");
    double waited = itest_now() - t0;
    if (waited < 1.3)
        itest_failf("sequence 3 was processed after %.2f s, before the "
                    "1.5 s gap timeout",
                    waited);
    snprintf(gap, sizeof gap, "gap: customer %s: sequence 2..2 did not arrive",
             cid);
    wait_lines(g.err, 1, 1, gap, NULL, NULL);

    /* the real sequence 2 now arrives after 3: processed, marked late */
    change_status(cid, "INACTIVE", e2);
    snprintf(n2, sizeof n2, "event=%s", e2);
    wait_lines(g.out, 1, 15, " processed ", n2, "late: seq 3 already passed");
    wait_delivery(cid, e2, "delivered", 15, NULL);
    consumer_stop();
}

static void
malformed_messages_are_dead_lettered_and_reported_failed(void **state)
{
    (void)state;
    char c1[37], e1[37], c2[37], e2[37];
    struct taken got[4];

    /* two real events wait in the queue while the program is stopped; the
     * test takes them off the queue and puts mangled copies back */
    create_customer(c1, e1);
    create_customer(c2, e2);
    int n = mq_take(g.queue, 2, 10000, got);
    const char *body2 = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(got[i].message_id, e2) == 0)
            body2 = got[i].body;
    if (n != 2 || body2 == NULL) {
        taken_free(got, n);
        itest_failf("expected the two new events in %s, got %d message(s)",
                    g.queue, n);
    }
    const char *bad_json = "this is not JSON {";
    json_error_t jerr;
    json_t *j2 = json_loads(body2, 0, &jerr);
    if (j2 == NULL) {
        taken_free(got, n);
        itest_failf("the event body is not JSON: %s", jerr.text);
    }
    json_object_set_new(j2, "schema_version", json_string("2.0"));
    char *v2 = itest_json_text(j2); /* steals j2 */
    const char *no_id = "{\"schema_version\":\"1.0\",\"event_type\":"
                        "\"customer_creation\",\"sequence\":1}";
    mq_publish("customer_creation", bad_json, e1); /* identified by id */
    mq_publish("customer_creation", v2, e2);       /* schema 2.0 */
    mq_publish("customer_creation", no_id, NULL);  /* not identifiable */
    taken_free(got, n);

    consumer_start(NULL);
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "event=%s", e1);
    snprintf(n2, sizeof n2, "event=%s", e2);
    wait_lines(g.out, 1, 15, " rejected ", n1, "not valid JSON");
    wait_lines(g.out, 1, 15, " rejected ", n2, "unknown schema_version");
    wait_lines(g.out, 1, 15, " rejected ", "event=- ", "event_id is missing");

    /* all three in the DLQ, as sent */
    n = mq_take(g.dlq, 3, 15000, got);
    bool seen_json = false, seen_v2 = false, seen_no_id = false;
    for (int i = 0; i < n; i++) {
        seen_json |= strcmp(got[i].body, bad_json) == 0;
        seen_v2 |= strcmp(got[i].body, v2) == 0;
        seen_no_id |= strcmp(got[i].body, no_id) == 0;
    }
    taken_free(got, n);
    free(v2);
    if (!seen_json || !seen_v2 || !seen_no_id) {
        dump_outputs();
        itest_failf("the DLQ %s should hold the three rejected messages "
                    "(got %d; not-JSON %d, schema 2.0 %d, no id %d)",
                    g.dlq, n, seen_json, seen_v2, seen_no_id);
    }

    char reason[512];
    wait_delivery(c1, e1, "failed", 15, reason);
    if (strstr(reason, "not valid JSON") == NULL)
        itest_failf("deliver_failure_reason of %s: \"%s\"", e1, reason);
    wait_delivery(c2, e2, "failed", 15, reason);
    if (strstr(reason, "schema_version") == NULL)
        itest_failf("deliver_failure_reason of %s: \"%s\"", e2, reason);
    if (itest_count_lines(g.out, " processed ", n1, NULL) != 0 ||
        itest_count_lines(g.out, " processed ", n2, NULL) != 0)
        itest_failf("a rejected message must not be processed");
    consumer_stop();
}

static void
unreachable_api_requeues_then_confirms(void **state)
{
    (void)state;
    char cid[37], eid[37], ev[64], failed[96];

    create_customer(cid, eid); /* waits in the queue */
    snprintf(ev, sizeof ev, "event=%s", eid);
    snprintf(failed, sizeof failed, "event %s: confirm-delivery failed", eid);

    g.nginx_stopped = true;
    if (itest_stack("nginx-stop") != 0)
        itest_failf("scripts/stack.sh nginx-stop failed");
    consumer_start(NULL);
    wait_lines(g.err, 1, 15, failed, "requeued after", NULL);
    if (itest_stack("nginx-start") != 0)
        itest_failf("scripts/stack.sh nginx-start failed");
    g.nginx_stopped = false;

    wait_delivery(cid, eid, "delivered", 30, NULL);
    consumer_stop();
    int processed = itest_count_lines(g.out, " processed ", ev, NULL);
    int duplicates = itest_count_lines(g.out, " duplicate ", ev, NULL);
    if (processed != 1 || duplicates < 1) {
        dump_outputs();
        itest_failf("expected one processed line and at least one duplicate "
                    "(the requeued delivery) for %s; got %d and %d",
                    eid, processed, duplicates);
    }
}

static void
reconnects_after_a_broker_restart(void **state)
{
    (void)state;
    char cid[37], eid[37], ev[64], ready[192];
    snprintf(ready, sizeof ready, "consuming %s on", g.queue);

    consumer_start(NULL);
    int consuming = itest_count_lines(g.err, ready, NULL, NULL);
    g.broker_stopped = true;
    if (itest_stack("broker-stop") != 0)
        itest_failf("scripts/stack.sh broker-stop failed");
    wait_lines(g.err, 1, 20, "broker connection lost", NULL, NULL);
    if (itest_stack("broker-start") != 0)
        itest_failf("scripts/stack.sh broker-start failed");
    g.broker_stopped = false;
    wait_lines(g.err, consuming + 1, 60, ready, NULL, NULL);

    create_customer(cid, eid);
    snprintf(ev, sizeof ev, "event=%s", eid);
    /* the service's own publish may have met a stale connection: resend
     * what is still pending, as an operator would */
    double until = itest_now() + 30;
    while (itest_count_lines(g.out, " processed ", ev, NULL) == 0) {
        if (itest_now() > until) {
            dump_outputs();
            itest_failf("event %s was not consumed after the broker restart",
                        eid);
        }
        usleep(500 * 1000);
        char *body = itest_json_text(json_pack("{s:i}", "period_in_days", 1));
        struct itest_resp *r = itest_request("POST", "/events/resend",
                                             itest_admin_key(), body, NULL);
        free(body);
        itest_resp_free(r);
    }
    wait_delivery(cid, eid, "delivered", 15, NULL);
    consumer_stop();
}

static bool
file_holds(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char *all = NULL;
    size_t cap = 0;
    bool hit = false;
    if (f == NULL)
        return false;
    /* the whole file as one "line" (it has no NULs) */
    if (getdelim(&all, &cap, '\0', f) > 0)
        hit = strstr(all, needle) != NULL;
    free(all);
    fclose(f);
    return hit;
}

static void
refused_or_foreign_key_stops_the_program(void **state)
{
    (void)state;
    char old_key[128], cid[37], eid[37], ev[64];

    /* another consumer's key (the administrator's): refused at start-up,
     * before anything is consumed */
    pid_t pid = consumer_spawn(NULL, itest_admin_key());
    expect_exit(pid, 1, 20);
    wait_lines(g.err, 1, 1,
               "the API key belongs to consumer "
               "\"system_default\"",
               NULL, NULL);

    /* the key is rotated away while the program runs: the next
     * confirmation is refused, the message goes back, the program stops
     * with status 3 */
    consumer_start(NULL);
    snprintf(old_key, sizeof old_key, "%s", g.key);
    char *body = itest_json_text(json_pack("{s:s}", "consumer_id", g.id));
    struct itest_resp *r = itest_request("POST", "/consumer/api-key",
                                         itest_admin_key(), body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    snprintf(g.key, sizeof g.key, "%s", itest_jstr(d, "api_key"));
    itest_resp_free(r);
    /* a deactivated key stops working within 5 s (docs/API.md §4.1: each
     * worker may still hold it in its key cache until then), so wait that
     * long before anything needs it refused */
    double rotated = itest_now();
    for (;;) {
        r = itest_request("GET", "/events?limit=1", old_key, NULL, NULL);
        long status = r->status;
        itest_resp_free(r);
        if (status == 401 && itest_now() - rotated > 5.5)
            break;
        if (itest_now() - rotated > 15)
            itest_failf("the rotated-away key still works after 15 s");
        usleep(200 * 1000);
    }
    create_customer(cid, eid);
    snprintf(ev, sizeof ev, "event=%s", eid);
    expect_exit(g.pid, 3, 20);
    wait_lines(g.err, 1, 1, "the service refused the API key (HTTP 401", eid,
               NULL);
    wait_lines(g.out, 1, 1, " processed ", ev, NULL);

    /* started again with the old key: refused at start-up */
    pid = consumer_spawn(NULL, old_key);
    expect_exit(pid, 1, 20);
    wait_lines(g.err, 1, 1, "the service refuses the API key (HTTP 401", NULL,
               NULL);

    /* with the new key the requeued message is confirmed, not processed
     * again */
    consumer_start(NULL);
    wait_delivery(cid, eid, "delivered", 15, NULL);
    consumer_stop();
    if (itest_count_lines(g.out, " processed ", ev, NULL) != 1 ||
        itest_count_lines(g.out, " duplicate ", ev, NULL) != 1) {
        dump_outputs();
        itest_failf("event %s: expected one processed and one duplicate "
                    "line",
                    eid);
    }

    /* and no key was ever printed or logged */
    const char *keys[] = {old_key, g.key, itest_admin_key()};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (file_holds(g.out, keys[i]) || file_holds(g.err, keys[i]))
            itest_failf("an API key (%.11s...) appears in the program's "
                        "output",
                        keys[i]);
    }
}

int
main(void)
{
#define T(fn) cmocka_unit_test_teardown(fn, restore)
    const struct CMUnitTest tests[] = {
        T(new_customer_is_printed_confirmed_and_delivered),
        T(redelivered_event_is_not_processed_twice_even_after_restart),
        T(out_of_order_event_waits_for_its_turn),
        T(gap_timeout_processes_and_logs_the_gap),
        T(malformed_messages_are_dead_lettered_and_reported_failed),
        T(unreachable_api_requeues_then_confirms),
        T(reconnects_after_a_broker_restart),
        T(refused_or_foreign_key_stops_the_program),
    };
    return itest_exit(cmocka_run_group_tests_name("consumer", tests,
                                                  group_setup, group_teardown));
}
