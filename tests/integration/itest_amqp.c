/*
 * tests/integration/itest_amqp.c — the broker's side of the outbox tests
 * (a small AMQP consumer with librabbitmq, the RabbitMQ management HTTP
 * API, tallies of a queue against the expected events). Contracts are in
 * itest_amqp.h; linked into every integration binary with itest.o.
 */
#include "itest_amqp.h"

#include <amqp_tcp_socket.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* ------------------------------------------------------------ consumer */

void
amqp_msg_free(struct amqp_msg *m)
{
    free(m->body);
    memset(m, 0, sizeof *m);
}

static void
itest_amqp_copy(char *dst, size_t size, amqp_bytes_t b)
{
    size_t n = b.len < size - 1 ? b.len : size - 1;
    if (n > 0)
        memcpy(dst, b.bytes, n);
    dst[n] = '\0';
}

static bool
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

void
amqp_sub_close(struct amqp_sub *s)
{
    if (s->conn == NULL)
        return;
    amqp_channel_close(s->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(s->conn);
    s->conn = NULL;
}

int
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

int
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

void
amqp_batch_free(struct amqp_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        amqp_msg_free(&b->msgs[i]);
    free(b->msgs);
    b->msgs = NULL;
    b->n = 0;
}

/*
 * The reading loop of amqp_sub_collect and amqp_sub_tally: hands every
 * message of s to take (which owns it from then on) until take says the
 * wanted ones are in (or `done` already) or timeout_ms has passed, then
 * keeps reading for settle_ms more; stops early when the subscription
 * breaks.
 */
static void
amqp_sub_read(struct amqp_sub *s, bool done, long timeout_ms, long settle_ms,
              bool (*take)(void *ctx, struct amqp_msg *m), void *ctx)
{
    bool settling = done;
    double deadline =
        itest_now() + (double)(settling ? settle_ms : timeout_ms) / 1000.0;
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
        if (take(ctx, &m) && !settling) {
            settling = true;
            deadline = itest_now() + (double)settle_ms / 1000.0;
        }
    }
}

struct amqp_collect {
    struct amqp_batch *out;
    size_t cap, want;
};

static bool
amqp_collect_take(void *ctx, struct amqp_msg *m)
{
    struct amqp_collect *c = ctx;
    if (c->out->n == c->cap) {
        c->cap *= 2;
        c->out->msgs = realloc(c->out->msgs, c->cap * sizeof *c->out->msgs);
    }
    c->out->msgs[c->out->n++] = *m;
    return c->out->n >= c->want;
}

size_t
amqp_sub_collect(struct amqp_sub *s, size_t want, long timeout_ms,
                 long settle_ms, struct amqp_batch *out)
{
    struct amqp_collect c = {out, want + 16, want};
    out->msgs = calloc(c.cap, sizeof *out->msgs);
    out->n = 0;
    amqp_sub_read(s, want == 0, timeout_ms, settle_ms, amqp_collect_take, &c);
    return out->n;
}

/* -------------------------------------------------- management HTTP API */

struct itest_mgmt_buf {
    char *p;
    size_t n;
};

static size_t
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

long
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

long
itest_mgmt_get(const char *path, json_t **json)
{
    return itest_mgmt_request("GET", path, NULL, json);
}

bool
itest_mgmt_purge(const char *queue)
{
    char path[256];
    snprintf(path, sizeof path, "/api/queues/%%2F/%s/contents", queue);
    long st = itest_mgmt_request("DELETE", path, NULL, NULL);
    return st >= 200 && st < 300;
}

bool
itest_broker_up(void)
{
    json_t *j = NULL;
    long st = itest_mgmt_get("/api/overview", &j);
    json_decref(j);
    return st == 200;
}

void
itest_queue_name(char *out, size_t size, const char *consumer_name, bool dlq)
{
    snprintf(out, size, "customer_notification_%s%s", consumer_name,
             dlq ? "_DLQ" : "");
}

long
itest_mgmt_queue(const char *queue, json_t **json)
{
    char path[256];
    snprintf(path, sizeof path, "/api/queues/%%2F/%s", queue);
    return itest_mgmt_get(path, json);
}

static bool
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

void
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

static int
amqp_expected_cmp(const void *a, const void *b)
{
    const struct amqp_expected *x = *(const struct amqp_expected *const *)a;
    const struct amqp_expected *y = *(const struct amqp_expected *const *)b;
    return strcmp(x->id, y->id);
}

struct amqp_tally_ctx {
    struct amqp_expected **byid; /* sorted by id */
    long *last;                  /* per group: the highest rank so far */
    size_t n;
    struct amqp_tally *t;
};

static bool
amqp_tally_take(void *ctx, struct amqp_msg *m)
{
    struct amqp_tally_ctx *c = ctx;
    struct amqp_tally *t = c->t;
    t->total++;
    struct amqp_expected key, *kp = &key;
    size_t idlen = strlen(m->message_id);
    memcpy(key.id, m->message_id, idlen < 36 ? idlen : 36);
    key.id[idlen < 36 ? idlen : 36] = '\0';
    struct amqp_expected **hit =
        idlen == 36
            ? bsearch(&kp, c->byid, c->n, sizeof *c->byid, amqp_expected_cmp)
            : NULL;
    if (hit == NULL) {
        if (t->unknown++ == 0)
            snprintf(t->first_unknown, sizeof t->first_unknown, "%s",
                     m->message_id[0] ? m->message_id : "(no message_id)");
    } else if ((*hit)->count++ > 0) {
        t->duplicates++;
    } else {
        struct amqp_expected *e = *hit;
        long *last = c->last;
        t->distinct++;
        if (e->group >= 0 && (size_t)e->group < c->n) {
            if (e->rank < last[e->group] && t->disorder++ == 0)
                snprintf(t->first_disorder, sizeof t->first_disorder,
                         "%s (rank %ld after rank %ld of its group)", e->id,
                         e->rank, last[e->group]);
            if (e->rank > last[e->group])
                last[e->group] = e->rank;
        }
    }
    amqp_msg_free(m);
    return t->distinct == c->n;
}

void
amqp_sub_tally(struct amqp_sub *s, struct amqp_expected *exp, size_t n,
               long timeout_ms, long settle_ms, struct amqp_tally *t)
{
    struct amqp_tally_ctx c = {calloc(n + 1, sizeof *c.byid),
                               malloc((n + 1) * sizeof *c.last), n, t};
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        exp[i].count = 0;
        c.byid[i] = &exp[i];
        c.last[i] = LONG_MIN;
    }
    qsort(c.byid, n, sizeof *c.byid, amqp_expected_cmp);
    amqp_sub_read(s, n == 0, timeout_ms, settle_ms, amqp_tally_take, &c);
    free(c.byid);
    free(c.last);
}

size_t
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

void
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

void
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
