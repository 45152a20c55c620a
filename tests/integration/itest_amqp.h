/*
 * tests/integration/itest_amqp.h — what the outbox tests need from the
 * broker's side, header-only (the Makefile links every integration binary
 * with itest.o alone; this file is included by test_outbox.c,
 * test_outage.c, test_redrive.c and test_relay.c):
 *
 *   - a small AMQP consumer with librabbitmq 0.11 (<amqp.h>,
 *     <amqp_tcp_socket.h>): basic.consume with manual acks on one queue,
 *     one message at a time with a timeout.  basic.get is refused on our
 *     quorum queues with single-active-consumer (docs/API.md §8.1), hence
 *     basic.consume.  Every message read is acked at once.
 *   - the RabbitMQ management HTTP API on 127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT
 *     (guest/guest), for the queue arguments and bindings as the broker
 *     reports them, policies and purges.
 *   - tallies: a queue read to the end against the expected event ids
 *     (each once? in order within each customer?), streaming, for
 *     backlogs of tens of thousands.
 *
 * The broker is named by FINTEGRATE_AMQP_URL and FINTEGRATE_AMQP_MGMT_PORT
 * (scripts/test.sh exports both).  Assertions are itest_failf (cmocka).
 *
 * The test binaries track this header through their .d files (Makefile).
 */
#ifndef ITEST_AMQP_H
#define ITEST_AMQP_H

#include "itest.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* ------------------------------------------------------------ consumer */

struct amqp_sub {
    amqp_connection_state_t conn; /* NULL when closed */
    char queue[160];
};

/* One delivered message, copied out of librabbitmq's buffers. Strings are
 * "" when the property is absent (the matching has_* says so). */
struct amqp_msg {
    char *body; /* owned, NUL-terminated (body_len excludes the NUL) */
    size_t body_len;
    char exchange[128];
    char routing_key[256];
    char content_type[64];
    char message_id[64];
    char type[64];
    char app_id[64];
    char correlation_id[160];
    int delivery_mode; /* 0 when absent */
    uint64_t timestamp;
    bool has_timestamp;
    bool has_correlation_id;
    bool redelivered;
};

static inline void
amqp_msg_free(struct amqp_msg *m)
{
    free(m->body);
    memset(m, 0, sizeof *m);
}

static inline void
itest_amqp_copy(char *dst, size_t size, amqp_bytes_t b)
{
    size_t n = b.len < size - 1 ? b.len : size - 1;
    if (n > 0)
        memcpy(dst, b.bytes, n);
    dst[n] = '\0';
}

static inline bool
itest_amqp_reply_ok(amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "itest_amqp: %s: %s\n", what,
                amqp_error_string2(r.library_error));
    else
        fprintf(stderr, "itest_amqp: %s: reply type %d, method 0x%08x\n", what,
                (int)r.reply_type, (unsigned)r.reply.id);
    return false;
}

static inline void
amqp_sub_close(struct amqp_sub *s)
{
    if (s->conn == NULL)
        return;
    amqp_channel_close(s->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(s->conn);
    s->conn = NULL;
}

/*
 * Connects to FINTEGRATE_AMQP_URL and starts consuming `queue` with manual
 * acks (prefetch 1000). Returns 0, or -1 after printing why (the queue does
 * not exist, the broker is down...).
 */
static inline int
amqp_sub_open(struct amqp_sub *s, const char *queue)
{
    struct amqp_connection_info info;
    const char *url = itest_env("FINTEGRATE_AMQP_URL");
    char *copy = NULL;
    amqp_socket_t *sock;
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};

    memset(s, 0, sizeof *s);
    snprintf(s->queue, sizeof s->queue, "%s", queue);
    if (url == NULL) {
        fprintf(stderr, "itest_amqp: FINTEGRATE_AMQP_URL is not set\n");
        return -1;
    }
    copy = strdup(url);
    amqp_default_connection_info(&info);
    if (copy == NULL || amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        fprintf(stderr, "itest_amqp: bad FINTEGRATE_AMQP_URL\n");
        goto fail;
    }
    s->conn = amqp_new_connection();
    if (s->conn == NULL || (sock = amqp_tcp_socket_new(s->conn)) == NULL)
        goto fail;
    int rc = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "itest_amqp: connect %s:%d: %s\n", info.host, info.port,
                amqp_error_string2(rc));
        goto fail;
    }
    amqp_set_rpc_timeout(s->conn, &tv);
    if (!itest_amqp_reply_ok(amqp_login(s->conn, info.vhost, 0, 131072, 0,
                                        AMQP_SASL_METHOD_PLAIN, info.user,
                                        info.password),
                             "login"))
        goto fail;
    amqp_channel_open(s->conn, 1);
    if (!itest_amqp_reply_ok(amqp_get_rpc_reply(s->conn), "channel.open"))
        goto fail;
    amqp_basic_qos(s->conn, 1, 0, 1000, 0);
    if (!itest_amqp_reply_ok(amqp_get_rpc_reply(s->conn), "basic.qos"))
        goto fail;
    amqp_basic_consume(s->conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes,
                       0, /*no_ack*/ 0, 0, amqp_empty_table);
    if (!itest_amqp_reply_ok(amqp_get_rpc_reply(s->conn), "basic.consume"))
        goto fail;
    free(copy);
    return 0;
fail:
    free(copy);
    if (s->conn != NULL) {
        amqp_destroy_connection(s->conn);
        s->conn = NULL;
    }
    return -1;
}

/*
 * Waits up to timeout_ms for the next message, copies it into *m and acks
 * it. Returns 1 (a message), 0 (nothing within the timeout) or -1 (the
 * connection or channel broke; the subscription is closed).
 */
static inline int
amqp_sub_next(struct amqp_sub *s, struct amqp_msg *m, long timeout_ms)
{
    amqp_envelope_t env;
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (timeout_ms % 1000) * 1000};

    memset(m, 0, sizeof *m);
    if (s->conn == NULL)
        return -1;
    amqp_maybe_release_buffers(s->conn);
    amqp_rpc_reply_t r = amqp_consume_message(s->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_TIMEOUT)
        return 0;
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        itest_amqp_reply_ok(r, "basic.consume (reading)");
        amqp_destroy_connection(s->conn);
        s->conn = NULL;
        return -1;
    }
    amqp_basic_properties_t *p = &env.message.properties;
    m->body_len = env.message.body.len;
    m->body = malloc(m->body_len + 1);
    if (m->body_len > 0)
        memcpy(m->body, env.message.body.bytes, m->body_len);
    m->body[m->body_len] = '\0';
    itest_amqp_copy(m->exchange, sizeof m->exchange, env.exchange);
    itest_amqp_copy(m->routing_key, sizeof m->routing_key, env.routing_key);
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        itest_amqp_copy(m->content_type, sizeof m->content_type,
                        p->content_type);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        itest_amqp_copy(m->message_id, sizeof m->message_id, p->message_id);
    if (p->_flags & AMQP_BASIC_TYPE_FLAG)
        itest_amqp_copy(m->type, sizeof m->type, p->type);
    if (p->_flags & AMQP_BASIC_APP_ID_FLAG)
        itest_amqp_copy(m->app_id, sizeof m->app_id, p->app_id);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        m->has_correlation_id = true;
        itest_amqp_copy(m->correlation_id, sizeof m->correlation_id,
                        p->correlation_id);
    }
    if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
        m->delivery_mode = p->delivery_mode;
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) {
        m->has_timestamp = true;
        m->timestamp = p->timestamp;
    }
    m->redelivered = env.redelivered != 0;
    int rc = amqp_basic_ack(s->conn, env.channel, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "itest_amqp: basic.ack: %s\n", amqp_error_string2(rc));
        amqp_destroy_connection(s->conn);
        s->conn = NULL;
        return -1;
    }
    return 1;
}

/* Messages received by amqp_sub_collect. */
struct amqp_batch {
    struct amqp_msg *msgs; /* owned */
    size_t n;
};

static inline void
amqp_batch_free(struct amqp_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        amqp_msg_free(&b->msgs[i]);
    free(b->msgs);
    b->msgs = NULL;
    b->n = 0;
}

/*
 * Reads messages until `want` have arrived or timeout_ms has passed, then
 * keeps reading for settle_ms more (a duplicate or an extra message would
 * show up there). Returns how many arrived, in arrival order, into *out
 * (owned; amqp_batch_free). want 0: just drain for settle_ms.
 */
static inline size_t
amqp_sub_collect(struct amqp_sub *s, size_t want, long timeout_ms,
                 long settle_ms, struct amqp_batch *out)
{
    double deadline = itest_now() + (double)timeout_ms / 1000.0;
    size_t cap = want + 16;
    out->msgs = calloc(cap, sizeof *out->msgs);
    out->n = 0;
    bool settling = want == 0;
    if (settling)
        deadline = itest_now() + (double)settle_ms / 1000.0;
    for (;;) {
        double left = deadline - itest_now();
        if (left <= 0) {
            if (settling)
                break;
            settling = true;
            deadline = itest_now() + (double)settle_ms / 1000.0;
            continue;
        }
        struct amqp_msg m;
        int rc = amqp_sub_next(s, &m, (long)(left * 1000.0) + 1);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        if (out->n == cap) {
            cap *= 2;
            out->msgs = realloc(out->msgs, cap * sizeof *out->msgs);
        }
        out->msgs[out->n++] = m;
        if (!settling && out->n >= want) {
            settling = true;
            deadline = itest_now() + (double)settle_ms / 1000.0;
        }
    }
    return out->n;
}

/* -------------------------------------------------- management HTTP API */

struct itest_mgmt_buf {
    char *p;
    size_t n;
};

static inline size_t
itest_mgmt_write(char *data, size_t size, size_t nmemb, void *user)
{
    struct itest_mgmt_buf *b = user;
    size_t add = size * nmemb;
    char *np = realloc(b->p, b->n + add + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->n, data, add);
    b->n += add;
    np[b->n] = '\0';
    b->p = np;
    return add;
}

/*
 * method (GET, PUT, DELETE...) http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT
 * <path> as guest/guest, with a JSON body when body is not NULL. Returns
 * the HTTP status (0 when the request failed) and, when json is not NULL
 * and the body is JSON, *json (owned; NULL otherwise).
 */
static inline long
itest_mgmt_request(const char *method, const char *path, const char *body,
                   json_t **json)
{
    const char *port = itest_env("FINTEGRATE_AMQP_MGMT_PORT");
    char url[512];
    struct itest_mgmt_buf b = {NULL, 0};
    long status = 0;
    struct curl_slist *hdr = NULL;

    if (json != NULL)
        *json = NULL;
    if (port == NULL) {
        fprintf(stderr, "itest_amqp: FINTEGRATE_AMQP_MGMT_PORT is not set\n");
        return 0;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%s%s", port, path);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_USERPWD, "guest:guest");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, itest_mgmt_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdr);
    if (b.p != NULL && json != NULL)
        *json = json_loads(b.p, 0, NULL);
    free(b.p);
    return status;
}

/*
 * GET http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT<path> as guest/guest.
 * Returns the HTTP status (0 when the request failed) and, when the body is
 * JSON, *json (owned; NULL otherwise).
 */
static inline long
itest_mgmt_get(const char *path, json_t **json)
{
    return itest_mgmt_request("GET", path, NULL, json);
}

/* Drops every ready message of a queue (DELETE .../contents); true on
 * success. For clean-up: a test that failed half-way leaves no backlog
 * in the broker for the binaries after it. */
static inline bool
itest_mgmt_purge(const char *queue)
{
    char path[256];
    snprintf(path, sizeof path, "/api/queues/%%2F/%s/contents", queue);
    long st = itest_mgmt_request("DELETE", path, NULL, NULL);
    return st >= 200 && st < 300;
}

/* Is the broker's management API answering (GET /api/overview)? */
static inline bool
itest_broker_up(void)
{
    json_t *j = NULL;
    long st = itest_mgmt_get("/api/overview", &j);
    json_decref(j);
    return st == 200;
}

/* The queue's name for a consumer (docs/API.md §8.1). */
static inline void
itest_queue_name(char *out, size_t size, const char *consumer_name, bool dlq)
{
    snprintf(out, size, "customer_notification_%s%s", consumer_name,
             dlq ? "_DLQ" : "");
}

/* GET /api/queues/%2F/<queue>: 200 and the queue's JSON, or 404. */
static inline long
itest_mgmt_queue(const char *queue, json_t **json)
{
    char path[256];
    snprintf(path, sizeof path, "/api/queues/%%2F/%s", queue);
    return itest_mgmt_get(path, json);
}

/*
 * Asserts what the broker reports about a consumer's queue and DLQ (docs/API.md
 * §8.1): the main queue durable, quorum, exactly the contract's
 * arguments, bound to fintegrate.events with "<name>.#"; the DLQ durable,
 * quorum, bound to fintegrate.dlx with "<name>".
 */
#define itest_assert_consumer_queues(name)                                     \
    itest_assert_consumer_queues_at(__FILE__, __LINE__, (name))

static inline bool
itest_has_binding(const json_t *bindings, const char *source,
                  const char *routing_key)
{
    size_t i;
    json_t *b;
    json_array_foreach(bindings, i, b)
    {
        const char *src = json_string_value(json_object_get(b, "source"));
        const char *rk = json_string_value(json_object_get(b, "routing_key"));
        const char *dt =
            json_string_value(json_object_get(b, "destination_type"));
        if (src && rk && dt && strcmp(src, source) == 0 &&
            strcmp(rk, routing_key) == 0 && strcmp(dt, "queue") == 0)
            return true;
    }
    return false;
}

static inline void
itest_assert_consumer_queues_at(const char *file, int line, const char *name)
{
    char q[160], dlq[160], path[256], *got;
    json_t *j = NULL, *args;
    itest_queue_name(q, sizeof q, name, false);
    itest_queue_name(dlq, sizeof dlq, name, true);

    long st = itest_mgmt_queue(q, &j);
    if (st != 200 || j == NULL)
        itest_failf_at(file, line, "queue %s: management API answered %ld", q,
                       st);
    if (!json_is_true(json_object_get(j, "durable")))
        itest_failf_at(file, line, "queue %s is not durable", q);
    if (json_string_value(json_object_get(j, "type")) == NULL ||
        strcmp(json_string_value(json_object_get(j, "type")), "quorum") != 0)
        itest_failf_at(file, line, "queue %s is not a quorum queue", q);
    args = json_object_get(j, "arguments");
    json_t *want = json_pack(
        "{s:s, s:s, s:s, s:i, s:b, s:s, s:s, s:i}", "x-queue-type", "quorum",
        "x-dead-letter-exchange", "fintegrate.dlx", "x-dead-letter-routing-key",
        name, "x-delivery-limit", 5, "x-single-active-consumer", 1,
        "x-dead-letter-strategy", "at-least-once", "x-overflow",
        "reject-publish", "x-max-length", 100000);
    if (!json_equal(args, want)) {
        got = json_dumps(args, JSON_SORT_KEYS | JSON_COMPACT);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
        fprintf(stderr, "queue %s arguments\n  got:  %s\n  want: %s\n", q,
                got ? got : "(none)", w ? w : "?");
        free(got);
        free(w);
        json_decref(want);
        json_decref(j);
        itest_failf_at(file, line, "queue %s: arguments differ", q);
    }
    json_decref(want);
    json_decref(j);

    snprintf(path, sizeof path, "/api/queues/%%2F/%s/bindings", q);
    st = itest_mgmt_get(path, &j);
    char key[96];
    snprintf(key, sizeof key, "%s.#", name);
    if (st != 200 || !itest_has_binding(j, "fintegrate.events", key)) {
        json_decref(j);
        itest_failf_at(file, line,
                       "queue %s is not bound to fintegrate.events with %s", q,
                       key);
    }
    json_decref(j);

    st = itest_mgmt_queue(dlq, &j);
    if (st != 200 || j == NULL)
        itest_failf_at(file, line, "queue %s: management API answered %ld", dlq,
                       st);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *xtype = json_string_value(
        json_object_get(json_object_get(j, "arguments"), "x-queue-type"));
    bool ok = json_is_true(json_object_get(j, "durable")) && type != NULL &&
              strcmp(type, "quorum") == 0 && xtype != NULL &&
              strcmp(xtype, "quorum") == 0;
    json_decref(j);
    if (!ok)
        itest_failf_at(file, line, "DLQ %s must be a durable quorum queue",
                       dlq);
    snprintf(path, sizeof path, "/api/queues/%%2F/%s/bindings", dlq);
    st = itest_mgmt_get(path, &j);
    ok = st == 200 && itest_has_binding(j, "fintegrate.dlx", name);
    json_decref(j);
    if (!ok)
        itest_failf_at(file, line,
                       "DLQ %s is not bound to fintegrate.dlx with %s", dlq,
                       name);
}

/* ------------------------------------------------------------ tallies */

/*
 * What a test expects in a queue, for amqp_sub_tally: each event once,
 * and within a group (a customer, say) ranks (sequences) never going
 * down. group must lie in [0, n) for n expected messages.
 */
struct amqp_expected {
    char id[37];
    long group;
    long rank;
    int count; /* out: how many times it arrived */
};

struct amqp_tally {
    size_t total;      /* messages read */
    size_t distinct;   /* expected ids that arrived at least once */
    size_t duplicates; /* arrivals of expected ids beyond the first */
    size_t unknown;    /* messages whose message_id is not expected */
    size_t disorder;   /* first arrivals ranked below an earlier one of
                          their group */
    char first_unknown[64], first_disorder[160];
};

static inline int
amqp_expected_cmp(const void *a, const void *b)
{
    const struct amqp_expected *x = *(const struct amqp_expected *const *)a;
    const struct amqp_expected *y = *(const struct amqp_expected *const *)b;
    return strcmp(x->id, y->id);
}

/*
 * Reads messages from s until every one of the n expected has arrived (or
 * timeout_ms has passed), then settle_ms more (a duplicate or an extra
 * shows up there), and counts (acked, bodies dropped: it streams, so a
 * backlog of any size fits). exp[i].count is filled.
 */
static inline void
amqp_sub_tally(struct amqp_sub *s, struct amqp_expected *exp, size_t n,
               long timeout_ms, long settle_ms, struct amqp_tally *t)
{
    struct amqp_expected **byid = calloc(n + 1, sizeof *byid);
    long *last = malloc((n + 1) * sizeof *last);
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        exp[i].count = 0;
        byid[i] = &exp[i];
        last[i] = LONG_MIN;
    }
    qsort(byid, n, sizeof *byid, amqp_expected_cmp);
    double deadline = itest_now() + (double)timeout_ms / 1000.0;
    bool settling = n == 0;
    if (settling)
        deadline = itest_now() + (double)settle_ms / 1000.0;
    for (;;) {
        double left = deadline - itest_now();
        if (left <= 0) {
            if (settling)
                break;
            settling = true;
            deadline = itest_now() + (double)settle_ms / 1000.0;
            continue;
        }
        struct amqp_msg m;
        int rc = amqp_sub_next(s, &m, (long)(left * 1000.0) + 1);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        t->total++;
        struct amqp_expected key, *kp = &key;
        size_t idlen = strlen(m.message_id);
        memcpy(key.id, m.message_id, idlen < 36 ? idlen : 36);
        key.id[idlen < 36 ? idlen : 36] = '\0';
        struct amqp_expected **hit =
            idlen == 36 ? bsearch(&kp, byid, n, sizeof *byid, amqp_expected_cmp)
                        : NULL;
        if (hit == NULL) {
            if (t->unknown++ == 0)
                snprintf(t->first_unknown, sizeof t->first_unknown, "%s",
                         m.message_id[0] ? m.message_id : "(no message_id)");
        } else if ((*hit)->count++ > 0) {
            t->duplicates++;
        } else {
            struct amqp_expected *e = *hit;
            t->distinct++;
            if (e->group >= 0 && (size_t)e->group < n) {
                if (e->rank < last[e->group] && t->disorder++ == 0)
                    snprintf(t->first_disorder, sizeof t->first_disorder,
                             "%s (rank %ld after rank %ld of its group)", e->id,
                             e->rank, last[e->group]);
                if (e->rank > last[e->group])
                    last[e->group] = e->rank;
            }
        }
        amqp_msg_free(&m);
        if (!settling && t->distinct == n) {
            settling = true;
            deadline = itest_now() + (double)settle_ms / 1000.0;
        }
    }
    free(byid);
    free(last);
}

/*
 * The expected messages from SQL: query (one text parameter, e.g. a
 * consumer_id) returns event_id, group (0-based, dense), rank. Returns how
 * many; *out is owned (free()).
 */
#define amqp_expected_sql(query, param, out)                                   \
    amqp_expected_sql_at(__FILE__, __LINE__, (query), (param), (out))

static inline size_t
amqp_expected_sql_at(const char *file, int line, const char *query,
                     const char *param, struct amqp_expected **out)
{
    PGresult *q =
        itest_sql_at(file, line, query, (const char *const[]){param}, 1);
    size_t n = (size_t)PQntuples(q);
    *out = calloc(n + 1, sizeof **out);
    for (size_t i = 0; i < n; i++) {
        snprintf((*out)[i].id, sizeof(*out)[i].id, "%s",
                 PQgetvalue(q, (int)i, 0));
        (*out)[i].group = strtol(PQgetvalue(q, (int)i, 1), NULL, 10);
        (*out)[i].rank = strtol(PQgetvalue(q, (int)i, 2), NULL, 10);
    }
    PQclear(q);
    return n;
}

/* Prints a tally (what a failing assertion is about). */
static inline void
amqp_tally_print(const char *what, size_t want, const struct amqp_tally *t)
{
    fprintf(stderr,
            "    %s: %zu message(s) read for %zu expected: %zu distinct, "
            "%zu duplicate(s), %zu unknown%s%s, %zu out of order%s%s\n",
            what, t->total, want, t->distinct, t->duplicates, t->unknown,
            t->unknown ? " e.g. " : "", t->unknown ? t->first_unknown : "",
            t->disorder, t->disorder ? " e.g. " : "",
            t->disorder ? t->first_disorder : "");
}

/* ------------------------------------------------------- consumers */

/*
 * Creates a consumer the way an administrator does, through the API
 * (POST /consumer/data, so its queues are declared by the service, then
 * POST /consumer/api-key), unlike itest_consumer_create which writes SQL.
 * The name is "<prefix>-<pid>-<time>-<n>"; asserts the 201 envelopes and
 * the data.queue name.
 */
#define itest_consumer_create_api(out, prefix)                                 \
    itest_consumer_create_api_at(__FILE__, __LINE__, (out), (prefix))

static inline void
itest_consumer_create_api_at(const char *file, int line,
                             struct itest_consumer *out, const char *prefix)
{
    char name[64], q[160];
    itest_unique(name, sizeof name, prefix);
    for (char *p = name; *p; p++)
        if (*p == '.')
            *p = '-';
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", name));
    struct itest_resp *r =
        itest_request("POST", "/consumer/data", itest_admin_key(), body, NULL);
    free(body);
    json_t *d = itest_assert_envelope_at(file, line, r, 201);
    itest_assert_jstr_at(file, line, r, d, "consumer_name", name);
    itest_queue_name(q, sizeof q, name, false);
    itest_assert_jstr_at(file, line, r, d, "queue", q);
    const char *id = itest_jstr(d, "consumer_id");
    itest_expect_at(file, line, r, id != NULL && itest_is_uuid(id),
                    "consumer_id must be a UUID");
    snprintf(out->id, sizeof out->id, "%s", id);
    itest_resp_free(r);

    body = itest_json_text(json_pack("{s:s}", "consumer_id", out->id));
    r = itest_request("POST", "/consumer/api-key", itest_admin_key(), body,
                      NULL);
    free(body);
    d = itest_assert_envelope_at(file, line, r, 201);
    const char *key = itest_jstr(d, "api_key");
    itest_expect_at(file, line, r, key != NULL && strlen(key) < sizeof out->key,
                    "api_key missing or too long");
    snprintf(out->key, sizeof out->key, "%s", key);
    itest_resp_free(r);
}

#endif /* ITEST_AMQP_H */
