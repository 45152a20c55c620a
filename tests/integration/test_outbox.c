/*
 * tests/integration/test_outbox.c — the outbox seen from the broker's side
 * with the broker up (issue 5; docs/API.md §7, §8): a consumer created through
 * the API gets its quorum queue and DLQ with exactly the contract's
 * arguments and bindings (as the management API reports them); a
 * customer's events arrive on the owner's queue, read with a real AMQP
 * consumer (basic.consume, manual acks), with body == customer_events.payload
 * byte for byte, routing key <consumer_name>.<event_type> and the contract's
 * properties, and the row is `published` after one try; every event type
 * takes its routing key, in sequence order; consumer and key events go to
 * the system consumer's queue; a consumer whose queues do not exist (created
 * straight in SQL) still gets its event: the basic.return re-declares the
 * queues and the retry is part of the same try.
 *
 * The broker-outage story (stop, pending, resend, redeliver, confirm) lives
 * in test_outage.c.
 */
#include "itest.h"
#include "itest_amqp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The consumer created through the API by the setup, with its key. */
static struct itest_consumer g_c;
static char g_queue[160];

/* ------------------------------------------------------------- helpers */

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    if (!itest_broker_up()) {
        fprintf(stderr, "test_outbox: the broker's management API does not "
                        "answer on FINTEGRATE_AMQP_MGMT_PORT\n");
        return -1;
    }
    itest_consumer_create_api(&g_c, "obx");
    itest_queue_name(g_queue, sizeof g_queue, g_c.name, false);
    return 0;
}

/* One customer_events row, as text. */
struct ev {
    char event_id[37], event_type[64], publish_status[16];
    char *payload;    /* owned: payload::text */
    char *request_id; /* owned, NULL for SQL NULL */
    long long created_epoch;
    long try_count;
    bool published_at, last_tried_at, has_reason;
    long sequence;
};

static void
ev_free(struct ev *e)
{
    free(e->payload);
    free(e->request_id);
    memset(e, 0, sizeof *e);
}

static void
load_event(const char *event_id, struct ev *e)
{
    memset(e, 0, sizeof *e);
    PGresult *q = itest_sql(
        "SELECT event_id::text, event_type, publish_status, payload::text, "
        "request_id, floor(extract(epoch FROM created_at))::bigint, "
        "publish_try_count, published_at IS NOT NULL, "
        "publish_last_tried_at IS NOT NULL, "
        "publish_failure_reason IS NOT NULL, sequence "
        "FROM customer_events WHERE event_id = $1",
        event_id);
    if (PQntuples(q) != 1) {
        PQclear(q);
        itest_failf("no customer_events row %s", event_id);
    }
    snprintf(e->event_id, sizeof e->event_id, "%s", PQgetvalue(q, 0, 0));
    snprintf(e->event_type, sizeof e->event_type, "%s", PQgetvalue(q, 0, 1));
    snprintf(e->publish_status, sizeof e->publish_status, "%s",
             PQgetvalue(q, 0, 2));
    e->payload = strdup(PQgetvalue(q, 0, 3));
    e->request_id = PQgetisnull(q, 0, 4) ? NULL : strdup(PQgetvalue(q, 0, 4));
    e->created_epoch = strtoll(PQgetvalue(q, 0, 5), NULL, 10);
    e->try_count = strtol(PQgetvalue(q, 0, 6), NULL, 10);
    e->published_at = PQgetvalue(q, 0, 7)[0] == 't';
    e->last_tried_at = PQgetvalue(q, 0, 8)[0] == 't';
    e->has_reason = PQgetvalue(q, 0, 9)[0] == 't';
    e->sequence = strtol(PQgetvalue(q, 0, 10), NULL, 10);
    PQclear(q);
}

/* The row was published by its one inline try (docs/API.md §7.2). */
static void
assert_published_once(const struct ev *e)
{
    if (strcmp(e->publish_status, "published") != 0)
        itest_failf("event %s (%s) is %s, not published", e->event_id,
                    e->event_type, e->publish_status);
    if (e->try_count != 1)
        itest_failf("event %s: publish_try_count %ld, want 1", e->event_id,
                    e->try_count);
    if (!e->published_at || !e->last_tried_at)
        itest_failf("event %s: published_at and publish_last_tried_at must "
                    "be set",
                    e->event_id);
}

/* The message is event e, as docs/API.md §8.2 says it is published. */
static void
assert_message_is(const struct amqp_msg *m, const struct ev *e,
                  const char *consumer_name)
{
    char rk[160];
    snprintf(rk, sizeof rk, "%s.%s", consumer_name, e->event_type);
    if (m->body_len != strlen(e->payload) ||
        memcmp(m->body, e->payload, m->body_len) != 0)
        itest_failf("event %s: the message body is not customer_events."
                    "payload byte for byte\n  body:    %s\n  payload: %s",
                    e->event_id, m->body, e->payload);
    if (strcmp(m->exchange, "fintegrate.events") != 0)
        itest_failf("event %s: exchange \"%s\", want fintegrate.events",
                    e->event_id, m->exchange);
    if (strcmp(m->routing_key, rk) != 0)
        itest_failf("event %s: routing key \"%s\", want \"%s\"", e->event_id,
                    m->routing_key, rk);
    if (strcmp(m->content_type, "application/json") != 0)
        itest_failf("event %s: content_type \"%s\"", e->event_id,
                    m->content_type);
    if (m->delivery_mode != 2)
        itest_failf("event %s: delivery_mode %d, want 2 (persistent)",
                    e->event_id, m->delivery_mode);
    if (strcmp(m->message_id, e->event_id) != 0)
        itest_failf("event %s: message_id \"%s\"", e->event_id, m->message_id);
    if (strcmp(m->type, e->event_type) != 0)
        itest_failf("event %s: type \"%s\", want \"%s\"", e->event_id, m->type,
                    e->event_type);
    if (!m->has_timestamp || (long long)m->timestamp != e->created_epoch)
        itest_failf("event %s: timestamp %llu, want created_at %lld",
                    e->event_id, (unsigned long long)m->timestamp,
                    e->created_epoch);
    if (strcmp(m->app_id, "fintegrate") != 0)
        itest_failf("event %s: app_id \"%s\"", e->event_id, m->app_id);
    if (e->request_id != NULL &&
        (!m->has_correlation_id ||
         strcmp(m->correlation_id, e->request_id) != 0))
        itest_failf("event %s: correlation_id \"%s\", want request_id "
                    "\"%s\"",
                    e->event_id, m->correlation_id, e->request_id);
    /* The body is the §5 envelope of this very event. */
    json_t *j = json_loadb(m->body, m->body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "event_id"));
    const char *sv = json_string_value(json_object_get(j, "schema_version"));
    bool ok = id != NULL && strcmp(id, e->event_id) == 0 && sv != NULL &&
              strcmp(sv, "1.0") == 0;
    json_decref(j);
    if (!ok)
        itest_failf("event %s: the body is not its §5 envelope", e->event_id);
}

static void
open_sub(struct amqp_sub *s, const char *queue)
{
    if (amqp_sub_open(s, queue) != 0)
        itest_failf("cannot consume from %s", queue);
}

/* Reads exactly one message (and nothing more within settle_ms). */
static void
read_one(struct amqp_sub *s, struct amqp_msg *out, const char *what)
{
    struct amqp_batch b;
    size_t n = amqp_sub_collect(s, 1, 5000, 300, &b);
    if (n != 1) {
        for (size_t i = 0; i < b.n; i++)
            fprintf(stderr, "  got %s %s\n", b.msgs[i].routing_key,
                    b.msgs[i].message_id);
        amqp_batch_free(&b);
        itest_failf("%s: %zu messages arrived on %s, want exactly 1", what, n,
                    s->queue);
    }
    *out = b.msgs[0];
    b.msgs[0].body = NULL;
    amqp_batch_free(&b);
}

/* ---------------------------------------------------------------- tests */

static void
consumer_queues_have_the_contract_arguments(void **state)
{
    (void)state;
    itest_assert_consumer_queues(g_c.name);

    /* The exchanges: fintegrate.events topic, fintegrate.dlx direct, both
     * durable. */
    static const char *const names[] = {"fintegrate.events", "fintegrate.dlx"};
    static const char *const types[] = {"topic", "direct"};
    for (int i = 0; i < 2; i++) {
        char path[128];
        json_t *j = NULL;
        snprintf(path, sizeof path, "/api/exchanges/%%2F/%s", names[i]);
        long st = itest_mgmt_get(path, &j);
        const char *t = json_string_value(json_object_get(j, "type"));
        bool ok = st == 200 && t != NULL && strcmp(t, types[i]) == 0 &&
                  json_is_true(json_object_get(j, "durable"));
        json_decref(j);
        if (!ok)
            itest_failf("exchange %s: want a durable %s exchange (HTTP %ld)",
                        names[i], types[i], st);
    }

    /* The system consumer has its queues too. */
    itest_assert_consumer_queues("system_default");
}

static void
customer_creation_arrives_byte_for_byte(void **state)
{
    (void)state;
    struct amqp_sub s;
    open_sub(&s, g_queue);
    /* Nothing is waiting on a new consumer's queue. */
    struct amqp_batch b;
    size_t stray = amqp_sub_collect(&s, 0, 0, 200, &b);
    amqp_batch_free(&b);
    assert_int_equal(stray, 0);

    /* Text that a re-serialisation would change: escapes, non-ASCII, key
     * order, a nested tags object. */
    char name[96];
    itest_unique(name, sizeof name, "Zo\xc3\xab \"Q\" \\ \xe6\x9d\xb1");
    char *body = itest_json_text(json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:s}}", "name", name, "status", "INACTIVE",
        "tags", "zeta", "last", "alpha", "\xe2\x82\xac 1/2", "m.id", ""));
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    const char *event_id = itest_jstr(d, "event_id");
    const char *xrid = itest_header(r, "X-Request-ID");
    itest_expect(r, event_id != NULL && xrid != NULL,
                 "event_id and X-Request-ID expected");

    struct ev e;
    load_event(event_id, &e);
    itest_expect(r, e.request_id != NULL && strcmp(e.request_id, xrid) == 0,
                 "request_id must be the response's X-Request-ID");
    assert_published_once(&e);

    struct amqp_msg m;
    read_one(&s, &m, "customer creation");
    assert_message_is(&m, &e, g_c.name);
    itest_expect(r, strcmp(m.correlation_id, xrid) == 0,
                 "correlation_id \"%s\" must be the X-Request-ID",
                 m.correlation_id);
    itest_expect(r, !m.redelivered, "first delivery flagged redelivered");
    amqp_msg_free(&m);
    ev_free(&e);
    itest_resp_free(r);
    amqp_sub_close(&s);
}

static void
client_request_id_becomes_correlation_id(void **state)
{
    (void)state;
    struct amqp_sub s;
    open_sub(&s, g_queue);
    char rid[96], name[96], hdr[160];
    itest_unique(rid, sizeof rid, "obx-rid");
    itest_unique(name, sizeof name, "rid");
    snprintf(hdr, sizeof hdr, "X-Request-ID: %s", rid);
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, hdr);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_expect(r, strcmp(itest_header(r, "X-Request-ID"), rid) == 0,
                 "the client's X-Request-ID must be echoed");
    struct ev e;
    load_event(itest_jstr(d, "event_id"), &e);
    assert_published_once(&e);
    struct amqp_msg m;
    read_one(&s, &m, "customer creation with a client X-Request-ID");
    assert_message_is(&m, &e, g_c.name);
    itest_expect(r, strcmp(m.correlation_id, rid) == 0,
                 "correlation_id \"%s\", want \"%s\"", m.correlation_id, rid);
    amqp_msg_free(&m);
    ev_free(&e);
    itest_resp_free(r);
    amqp_sub_close(&s);
}

/* Runs one request that must write one event; returns its event_id (owned)
 * from the customer_events row the request wrote (the newest of the
 * customer's). */
static char *
change(const char *method, const char *path, const char *body, long want_status,
       const char *customer_id)
{
    struct itest_resp *r = itest_request(method, path, g_c.key, body, NULL);
    /* want_status 0: any success (the status code of a tag POST is
     * test_tags' business, not this file's). */
    itest_assert_envelope(r, want_status != 0 ? want_status
                             : (r->status >= 200 && r->status < 300) ? r->status
                                                                     : 201);
    itest_resp_free(r);
    char *id = itest_sql_value(
        "SELECT event_id::text FROM customer_events WHERE customer_id = $1 "
        "ORDER BY sequence DESC LIMIT 1",
        customer_id);
    if (id == NULL)
        itest_failf("%s %s wrote no event", method, path);
    return id;
}

static void
every_event_type_takes_its_routing_key_in_order(void **state)
{
    (void)state;
    struct amqp_sub s;
    open_sub(&s, g_queue);
    char cid[37], name[96], body[512];
    itest_unique(name, sizeof name, "types");
    itest_create_customer(g_c.key, name, cid);
    char *ids[6];
    ids[0] = itest_sql_value("SELECT event_id::text FROM customer_events "
                             "WHERE customer_id = $1 AND sequence = 1",
                             cid);
    snprintf(body, sizeof body,
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", cid);
    ids[1] = change("PATCH", "/customer/change-status", body, 200, cid);
    snprintf(body, sizeof body,
             "{\"customer_id\":\"%s\",\"tag_keys\":[\"k1\",\"k2\"],"
             "\"tag_values\":[\"v1\",\"v2\"]}",
             cid);
    ids[2] = change("POST", "/customer/tag", body, 0, cid);
    snprintf(body, sizeof body,
             "{\"customer_id\":\"%s\",\"tag_key\":\"k1\","
             "\"new_tag_value\":\"v1b\"}",
             cid);
    ids[3] = change("PATCH", "/customer/tag-value", body, 200, cid);
    snprintf(body, sizeof body, "{\"customer_id\":\"%s\",\"tag_key\":\"k2\"}",
             cid);
    ids[4] = change("DELETE", "/customer/tag", body, 200, cid);
    snprintf(body, sizeof body, "{\"customer_id\":\"%s\"}", cid);
    ids[5] = change("DELETE", "/customer/data", body, 200, cid);

    struct amqp_batch b;
    size_t n = amqp_sub_collect(&s, 6, 5000, 300, &b);
    if (n != 6) {
        for (size_t i = 0; i < b.n; i++)
            fprintf(stderr, "  got %s %s\n", b.msgs[i].routing_key,
                    b.msgs[i].message_id);
        amqp_batch_free(&b);
        itest_failf("%zu messages arrived, want 6 (one per change)", n);
    }
    for (int i = 0; i < 6; i++) {
        struct ev e;
        load_event(ids[i], &e);
        assert_published_once(&e);
        if (e.sequence != i + 1)
            itest_failf("event %d has sequence %ld", i, e.sequence);
        /* Published inline, one after the other: they arrive in order. */
        assert_message_is(&b.msgs[i], &e, g_c.name);
        ev_free(&e);
        free(ids[i]);
    }
    static const char *const want[] = {
        "customer_creation",   "customer_status_change", "customer_tag_change",
        "customer_tag_change", "customer_tag_change",    "customer_deletion"};
    for (int i = 0; i < 6; i++)
        if (strcmp(b.msgs[i].type, want[i]) != 0)
            itest_failf("message %d is a %s, want %s", i, b.msgs[i].type,
                        want[i]);
    amqp_batch_free(&b);
    amqp_sub_close(&s);
}

static void
consumer_and_key_events_go_to_the_system_queue(void **state)
{
    (void)state;
    struct itest_consumer c2;
    itest_consumer_create_api(&c2, "obx");
    /* The consumer_creation and api_key_creation events of c2 belong to
     * the system consumer and were published to its queue. */
    PGresult *q =
        itest_sql("SELECT event_id::text FROM customer_events "
                  "WHERE consumer_id = $1 AND customer_id IS NULL "
                  "  AND payload::jsonb -> 'data' ->> 'consumer_id' = $2 "
                  "ORDER BY sequence",
                  ITEST_SYSTEM_CONSUMER_ID, c2.id);
    if (PQntuples(q) != 2) {
        int n = PQntuples(q);
        PQclear(q);
        itest_failf("%d system events about consumer %s, want 2 "
                    "(consumer_creation, api_key_creation)",
                    n, c2.id);
    }
    struct ev e[2];
    for (int i = 0; i < 2; i++) {
        load_event(PQgetvalue(q, i, 0), &e[i]);
        assert_published_once(&e[i]);
    }
    PQclear(q);
    if (strcmp(e[0].event_type, "consumer_creation") != 0 ||
        strcmp(e[1].event_type, "api_key_creation") != 0)
        itest_failf("system events are %s, %s", e[0].event_type,
                    e[1].event_type);

    /* The system queue holds every system event of the suite so far (no
     * one reads it in the tests): read it through, acking, and find ours. */
    char sysq[160];
    itest_queue_name(sysq, sizeof sysq, "system_default", false);
    struct amqp_sub s;
    open_sub(&s, sysq);
    bool seen[2] = {false, false};
    double deadline = itest_now() + 10.0;
    while (!(seen[0] && seen[1]) && itest_now() < deadline) {
        struct amqp_msg m;
        int rc = amqp_sub_next(&s, &m, 2000);
        if (rc < 0)
            itest_failf("consuming %s broke", sysq);
        if (rc == 0)
            break;
        for (int i = 0; i < 2; i++)
            if (strcmp(m.message_id, e[i].event_id) == 0) {
                if (seen[i])
                    itest_failf("event %s arrived twice", e[i].event_id);
                seen[i] = true;
                assert_message_is(&m, &e[i], "system_default");
            }
        amqp_msg_free(&m);
    }
    amqp_sub_close(&s);
    for (int i = 0; i < 2; i++) {
        if (!seen[i])
            itest_failf("event %s (%s) did not arrive on %s", e[i].event_id,
                        e[i].event_type, sysq);
        ev_free(&e[i]);
    }
    /* And the new consumer got its queues. */
    itest_assert_consumer_queues(c2.name);
}

static void
missing_queues_are_declared_on_return(void **state)
{
    (void)state;
    /* A consumer written straight into the database: no worker declared
     * its queues at creation. Whether a fresh connection declared them
     * since, or the first publish is returned and re-declares them, its
     * first event is published by the one inline try and arrives. */
    struct itest_consumer c3;
    itest_consumer_create(&c3, "ACTIVE", "active", "1 day");
    char cid[37], name[96];
    itest_unique(name, sizeof name, "sqlcons");
    itest_create_customer(c3.key, name, cid);
    char *id = itest_sql_value("SELECT event_id::text FROM customer_events "
                               "WHERE customer_id = $1",
                               cid);
    struct ev e;
    load_event(id, &e);
    assert_published_once(&e);
    itest_assert_consumer_queues(c3.name);

    char q[160];
    itest_queue_name(q, sizeof q, c3.name, false);
    struct amqp_sub s;
    open_sub(&s, q);
    struct amqp_msg m;
    read_one(&s, &m, "first event of an SQL-made consumer");
    assert_message_is(&m, &e, c3.name);
    amqp_msg_free(&m);
    amqp_sub_close(&s);
    ev_free(&e);
    free(id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(consumer_queues_have_the_contract_arguments),
        cmocka_unit_test(customer_creation_arrives_byte_for_byte),
        cmocka_unit_test(client_request_id_becomes_correlation_id),
        cmocka_unit_test(every_event_type_takes_its_routing_key_in_order),
        cmocka_unit_test(consumer_and_key_events_go_to_the_system_queue),
        cmocka_unit_test(missing_queues_are_declared_on_return),
    };
    return itest_exit(cmocka_run_group_tests_name("outbox", tests, setup,
                                                  itest_group_teardown));
}
