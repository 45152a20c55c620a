/*
 * tests/integration/test_events_list.c — GET /events of issue 3 through
 * nginx (docs/API.md §5.6, §10): each row has every column of
 * customer_events (payload as an object) equal to the stored row; a
 * consumer sees only its own events, the administrator everyone's; the
 * filters customer_id (unknown or foreign: 200 and an empty list),
 * event_types (repeated and comma-separated, or a JSON array), publish_status,
 * deliver_status, limit (default 100) and order; 422 for bad values and
 * unknown parameters; a customer's tag events come back in order with
 * increasing sequence, and a deleted customer's events stay listable.
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct itest_consumer g_a, g_b; /* two ordinary consumers */

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_a, &g_b);
}

/* ------------------------------------------------------------- helpers */

/* method path with {"customer_id": id, <rest>} must succeed. */
static void
call_ok(const char *method, const char *path, const char *key, const char *id,
        const char *rest)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"%s%s}", id,
             rest ? "," : "", rest ? rest : "");
    struct itest_resp *r = itest_request(method, path, key, body, NULL);
    /* POST /customer/tag creates (201); the others answer 200. */
    itest_assert_envelope(r, strcmp(method, "POST") == 0 ? 201 : 200);
    itest_resp_free(r);
}

static void
add_tags(const char *key, const char *id, const char *rest)
{
    call_ok("POST", "/customer/tag", key, id, rest);
}

static struct itest_resp *
events(const char *key, const char *query)
{
    char path[512];
    snprintf(path, sizeof(path), "/events%s", query ? query : "");
    return itest_request("GET", path, key, NULL, NULL);
}

/* The events array of a 200 answer (borrowed from r). */
static json_t *
events_ok(struct itest_resp *r)
{
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "events");
    json_t *e = json_object_get(d, "events");
    itest_expect(r, json_is_array(e), "data.events must be an array");
    return e;
}

static bool
null_or_ts(const json_t *v)
{
    return json_is_null(v) ||
           (json_is_string(v) && itest_is_timestamp(json_string_value(v)));
}

static bool
one_of(const char *s, const char *a, const char *b, const char *c)
{
    return s && (strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0);
}

/*
 * One row of GET /events: exactly the columns of docs/API.md §10, of the right
 * types, each equal to the stored column; the payload an object (the
 * message of §5) equal to the stored payload.
 */
static void
expect_full_row(const struct itest_resp *r, const json_t *ev)
{
    itest_assert_keys(r, ev, "event_id", "customer_id", "consumer_id",
                      "event_type", "source_service", "sequence", "payload",
                      "request_id", "created_at", "publish_status",
                      "published_at", "publish_try_count",
                      "publish_last_tried_at", "publish_failure_reason",
                      "deliver_status", "delivered_at", "deliver_try_count",
                      "deliver_last_tried_at", "deliver_failure_reason");
    const char *id = itest_jstr(ev, "event_id");
    itest_expect(r, id && itest_is_uuid(id), "event_id must be a UUID");
    json_t *cid = json_object_get(ev, "customer_id");
    itest_expect(r,
                 json_is_null(cid) || (json_is_string(cid) &&
                                       itest_is_uuid(json_string_value(cid))),
                 "customer_id must be a UUID or null");
    itest_expect(r, itest_is_uuid(itest_jstr(ev, "consumer_id")),
                 "consumer_id must be a UUID");
    itest_expect(r, itest_jint(ev, "sequence") >= 1,
                 "sequence must be a positive integer");
    itest_expect(r, json_is_object(json_object_get(ev, "payload")),
                 "payload must be a JSON object, not text");
    itest_expect(r, itest_is_timestamp(itest_jstr(ev, "created_at")),
                 "created_at must be a timestamp");
    itest_expect(r,
                 one_of(itest_jstr(ev, "publish_status"), "pending",
                        "published", "failed"),
                 "publish_status");
    itest_expect(r,
                 one_of(itest_jstr(ev, "deliver_status"), "pending",
                        "delivered", "failed"),
                 "deliver_status");
    static const char *const ts_cols[] = {
        "published_at", "publish_last_tried_at", "delivered_at",
        "deliver_last_tried_at"};
    for (size_t i = 0; i < 4; i++)
        itest_expect(r, null_or_ts(json_object_get(ev, ts_cols[i])),
                     "%s must be a timestamp or null", ts_cols[i]);
    itest_expect(r,
                 itest_jint(ev, "publish_try_count") >= 0 &&
                     itest_jint(ev, "deliver_try_count") >= 0,
                 "try counts must be integers");

    /* Equal to the stored row, column by column. */
    static const char *const cols[] = {"event_id",
                                       "customer_id",
                                       "consumer_id",
                                       "event_type",
                                       "source_service",
                                       "sequence",
                                       "payload",
                                       "request_id",
                                       "created_at",
                                       "publish_status",
                                       "published_at",
                                       "publish_try_count",
                                       "publish_last_tried_at",
                                       "publish_failure_reason",
                                       "deliver_status",
                                       "delivered_at",
                                       "deliver_try_count",
                                       "deliver_last_tried_at",
                                       "deliver_failure_reason"};
    PGresult *q = itest_sql(
        "SELECT event_id::text, customer_id::text, consumer_id::text, "
        "event_type, source_service, sequence::text, payload::text, "
        "request_id, fintegrate_ts(created_at), publish_status, "
        "fintegrate_ts(published_at), publish_try_count::text, "
        "fintegrate_ts(publish_last_tried_at), publish_failure_reason, "
        "deliver_status, fintegrate_ts(delivered_at), "
        "deliver_try_count::text, fintegrate_ts(deliver_last_tried_at), "
        "deliver_failure_reason FROM customer_events WHERE event_id = $1",
        id ? id : "00000000-0000-0000-0000-000000000000");
    itest_expect(r, PQntuples(q) == 1, "no customer_events row %s", id);
    for (int c = 0; c < 19; c++) {
        json_t *v = json_object_get(ev, cols[c]);
        if (PQgetisnull(q, 0, c)) {
            itest_expect(r, json_is_null(v), "%s must be null", cols[c]);
        } else if (json_is_integer(v)) {
            itest_expect(r, json_integer_value(v) == atoll(PQgetvalue(q, 0, c)),
                         "%s must be %s", cols[c], PQgetvalue(q, 0, c));
        } else if (json_is_object(v)) {
            json_t *stored = json_loads(PQgetvalue(q, 0, c), 0, NULL);
            itest_expect(r, stored && json_equal(v, stored),
                         "%s must be the stored %s", cols[c],
                         PQgetvalue(q, 0, c));
            json_decref(stored);
        } else {
            itest_expect(r,
                         json_is_string(v) && strcmp(json_string_value(v),
                                                     PQgetvalue(q, 0, c)) == 0,
                         "%s must be \"%s\"", cols[c], PQgetvalue(q, 0, c));
        }
    }
    PQclear(q);

    /* The payload names the same event. */
    json_t *p = json_object_get(ev, "payload");
    itest_assert_jstr(r, p, "event_id", id);
    itest_assert_jstr(r, p, "event_type", itest_jstr(ev, "event_type"));
    itest_expect(r, itest_jint(p, "sequence") == itest_jint(ev, "sequence"),
                 "payload.sequence must be the row's sequence");
}

/* Event ids of a consumer's events from SQL, oldest first; owned result. */
static PGresult *
stored_ids_of_consumer(const char *consumer_id)
{
    return itest_sql("SELECT event_id::text FROM customer_events WHERE "
                     "consumer_id = $1 ORDER BY created_at, sequence, event_id",
                     consumer_id);
}

/* A customer of A with the full tag lifecycle:
 * 1 customer_creation, 2 tags_added, 3 tag_key_changed, 4 tag_value_changed,
 * 5 tag_deleted, 6 customer_status_change. */
static void
make_history(char id[37])
{
    itest_make_customer(g_a.key, "events", id);
    add_tags(g_a.key, id,
             "\"tag_keys\":[\"plan\",\"region\"],"
             "\"tag_values\":[\"basic\",\"eu\"]");
    call_ok("PATCH", "/customer/tag-key", g_a.key, id,
            "\"tag_key\":\"plan\",\"new_tag_key\":\"plan.v2\"");
    call_ok("PATCH", "/customer/tag-value", g_a.key, id,
            "\"tag_key\":\"plan.v2\",\"new_tag_value\":\"pro\"");
    call_ok("DELETE", "/customer/tag", g_a.key, id, "\"tag_key\":\"region\"");
    call_ok("PATCH", "/customer/change-status", g_a.key, id,
            "\"status\":\"INACTIVE\"");
}

static const char *const HISTORY_TYPES[] = {
    "customer_creation",   "customer_tag_change", "customer_tag_change",
    "customer_tag_change", "customer_tag_change", "customer_status_change"};

/* ------------------------------------------------------------- tests */

static void
tag_events_in_order_with_increasing_sequence(void **state)
{
    (void)state;
    char id[37], q[128];
    make_history(id);

    snprintf(q, sizeof(q), "?customer_id=%s", id);
    struct itest_resp *r = events(g_a.key, q);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 6, "6 events, got %zu",
                 json_array_size(list));
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *ev = json_array_get(list, i);
        expect_full_row(r, ev);
        itest_assert_jstr(r, ev, "customer_id", id);
        itest_assert_jstr(r, ev, "consumer_id", g_a.id);
        itest_assert_jstr(r, ev, "event_type", HISTORY_TYPES[i]);
        itest_expect(r, itest_jint(ev, "sequence") == (long)i + 1,
                     "event %zu must have sequence %zu", i, i + 1);
        if (i > 0)
            itest_expect(
                r,
                strcmp(itest_jstr(json_array_get(list, i - 1), "created_at"),
                       itest_jstr(ev, "created_at")) <= 0,
                "created_at must not go back");
    }
    itest_resp_free(r);

    /* Only the tag events: the four, in order, each with its operation and
     * the full tags after it. */
    snprintf(q, sizeof(q), "?customer_id=%s&event_types=customer_tag_change",
             id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) == 4, "4 tag events, got %zu",
                 json_array_size(list));
    static const char *const ops[] = {"tags_added", "tag_key_changed",
                                      "tag_value_changed", "tag_deleted"};
    static const char *const sources[] = {
        "POST: /customer/tag", "PATCH: /customer/tag-key",
        "PATCH: /customer/tag-value", "DELETE: /customer/tag"};
    json_t *tags[4] = {
        json_pack("{s:s, s:s}", "plan", "basic", "region", "eu"),
        json_pack("{s:s, s:s}", "plan.v2", "basic", "region", "eu"),
        json_pack("{s:s, s:s}", "plan.v2", "pro", "region", "eu"),
        json_pack("{s:s}", "plan.v2", "pro"),
    };
    long prev = 0;
    for (size_t i = 0; i < json_array_size(list) && i < 4; i++) {
        json_t *ev = json_array_get(list, i);
        expect_full_row(r, ev);
        itest_assert_jstr(r, ev, "event_type", "customer_tag_change");
        itest_assert_jstr(r, ev, "source_service", sources[i]);
        long seq = itest_jint(ev, "sequence");
        itest_expect(r, seq > prev, "sequence must increase (%ld after %ld)",
                     seq, prev);
        itest_expect(r, seq == (long)i + 2, "tag event %zu: sequence %zu", i,
                     i + 2);
        prev = seq;
        json_t *data = json_object_get(json_object_get(ev, "payload"), "data");
        itest_assert_jstr(r, data, "operation", ops[i]);
        itest_assert_jstr(r, data, "customer_id", id);
        json_t *t = json_object_get(data, "tags");
        itest_expect(r, t && json_equal(t, tags[i]),
                     "tag event %zu: data.tags must be the tags after it", i);
    }
    for (size_t i = 0; i < 4; i++)
        json_decref(tags[i]);
    itest_resp_free(r);
}

static void
consumers_see_only_their_own_admin_sees_all(void **state)
{
    (void)state;
    char a_cust[37], b_cust[37], q[160];
    itest_make_customer(g_a.key, "events", a_cust);
    itest_make_customer(g_b.key, "events", b_cust);
    add_tags(g_b.key, b_cust, "\"tag_keys\":[\"b\"],\"tag_values\":[\"1\"]");

    /* Each consumer, unfiltered: exactly its own events, in order. */
    const struct itest_consumer *who[] = {&g_a, &g_b};
    for (size_t w = 0; w < 2; w++) {
        struct itest_resp *r = events(who[w]->key, "?limit=1000");
        json_t *list = events_ok(r);
        PGresult *ids = stored_ids_of_consumer(who[w]->id);
        itest_expect(r, (int)json_array_size(list) == PQntuples(ids),
                     "%s must see its %d events, saw %zu", who[w]->name,
                     PQntuples(ids), json_array_size(list));
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *ev = json_array_get(list, i);
            itest_assert_jstr(r, ev, "consumer_id", who[w]->id);
            if ((int)i < PQntuples(ids))
                itest_assert_jstr(r, ev, "event_id",
                                  PQgetvalue(ids, (int)i, 0));
            expect_full_row(r, ev);
        }
        PQclear(ids);
        itest_resp_free(r);
    }

    /* B asking about A's customer: 200 and nothing; the same for a
     * customer that does not exist. */
    snprintf(q, sizeof(q), "?customer_id=%s", a_cust);
    struct itest_resp *r = events(g_b.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 0,
                 "another consumer's customer must give an empty list");
    itest_resp_free(r);
    char missing[37];
    itest_random_uuid(missing);
    snprintf(q, sizeof(q), "?customer_id=%s", missing);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 0,
                 "an unknown customer must give an empty list");
    itest_resp_free(r);
    snprintf(q, sizeof(q), "?customer_id=%s", a_cust);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 1,
                 "the owner sees its customer's creation");
    itest_resp_free(r);

    /* The administrator: any customer's events; unfiltered, everyone's. */
    snprintf(q, sizeof(q), "?customer_id=%s", b_cust);
    r = events(itest_admin_key(), q);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 2, "admin: B's 2 events");
    for (size_t i = 0; i < json_array_size(list); i++)
        itest_assert_jstr(r, json_array_get(list, i), "consumer_id", g_b.id);
    itest_resp_free(r);

    r = events(itest_admin_key(), "?order=desc&limit=1000");
    list = events_ok(r);
    bool saw_a = false, saw_b = false;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *c = itest_jstr(json_array_get(list, i), "consumer_id");
        saw_a = saw_a || (c && strcmp(c, g_a.id) == 0);
        saw_b = saw_b || (c && strcmp(c, g_b.id) == 0);
    }
    itest_expect(r, saw_a && saw_b,
                 "the administrator must see both consumers' events");
    for (size_t i = 0; i < json_array_size(list) && i < 20; i++)
        expect_full_row(r, json_array_get(list, i));
    itest_resp_free(r);
}

static void
filter_event_types_forms(void **state)
{
    (void)state;
    char id[37], q[256];
    make_history(id);

    /* Repeated, comma-separated, and as a JSON array on GET: the union of
     * the two types, in order. */
    static const char *const forms[] = {
        "?customer_id=@ID@&event_types=customer_creation&event_types=customer_"
        "status_change",
        "?customer_id=@ID@&event_types=customer_creation,customer_status_"
        "change",
        "?event_types=customer_status_change&customer_id=@ID@&event_types="
        "customer_creation",
        "?customer_id=@ID@&event_types=customer_status_change%2Ccustomer_"
        "creation",
    };
    for (size_t f = 0; f < 4; f++) {
        char path[300];
        itest_fill_id(path, sizeof(path), forms[f], id);
        struct itest_resp *r = events(g_a.key, path);
        json_t *list = events_ok(r);
        itest_expect(r, json_array_size(list) == 2, "form %zu: 2 events", f);
        itest_assert_jstr(r, json_array_get(list, 0), "event_type",
                          "customer_creation");
        itest_assert_jstr(r, json_array_get(list, 1), "event_type",
                          "customer_status_change");
        itest_resp_free(r);
    }
    char body[256];
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"event_types\":[\"customer_status_"
             "change\",\"customer_creation\"],\"order\":\"desc\"}",
             id);
    struct itest_resp *r = itest_request("GET", "/events", g_a.key, body, NULL);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 2, "JSON body form: 2 events");
    itest_assert_jstr(r, json_array_get(list, 0), "event_type",
                      "customer_status_change");
    itest_resp_free(r);

    /* A type with no events here: empty. */
    snprintf(q, sizeof(q), "?customer_id=%s&event_types=customer_deletion", id);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 0, "no deletion yet");
    itest_resp_free(r);

    /* Bad event_types: 422 naming the field. */
    static const char *const bad[] = {
        "?event_types=customer_created",
        "?event_types=",
        "?event_types=customer_creation,",
        "?event_types=customer_creation,bogus",
        "?event_types=CUSTOMER_CREATION",
        "?event_types=customer_creation&event_types=nope",
        "?event_types=customer_creation%20",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = events(g_a.key, bad[i]);
        itest_assert_error_contains(r, 422, "event_types");
        itest_resp_free(r);
    }
    r = itest_request("GET", "/events", g_a.key, "{\"event_types\":[]}", NULL);
    itest_assert_error_contains(r, 422, "event_types");
    itest_resp_free(r);
    r = itest_request("GET", "/events", g_a.key,
                      "{\"event_types\":\"customer_creation\"}", NULL);
    itest_assert_error_contains(r, 422, "event_types");
    itest_resp_free(r);
    r = itest_request("GET", "/events", g_a.key, "{\"event_types\":[5]}", NULL);
    itest_assert_error_contains(r, 422, "event_types");
    itest_resp_free(r);
}

static void
filter_publish_and_deliver_status(void **state)
{
    (void)state;
    char id[37], q[256];
    make_history(id);
    PGresult *all = itest_sql("SELECT event_id::text FROM customer_events "
                              "WHERE customer_id = $1 ORDER BY sequence",
                              id);
    itest_expect(NULL, PQntuples(all) == 6, "6 events");
    char failed_id[37], delivered_id[37];
    snprintf(failed_id, sizeof(failed_id), "%s", PQgetvalue(all, 2, 0));
    snprintf(delivered_id, sizeof(delivered_id), "%s", PQgetvalue(all, 4, 0));
    PQclear(all);

    /* One event marked failed on the publish side (as ten failed tries
     * would), one confirmed delivered through the API. */
    PQclear(itest_sql("UPDATE customer_events SET publish_status = 'failed', "
                      "publish_failure_reason = 'itest: gave up' WHERE "
                      "event_id = $1",
                      failed_id));
    char body[160];
    snprintf(body, sizeof(body),
             "{\"event_id\":\"%s\",\"status\":\"processed\"}", delivered_id);
    struct itest_resp *r =
        itest_request("POST", "/events/confirm-delivery", g_a.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&publish_status=failed", id);
    r = events(g_a.key, q);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 1, "one failed event");
    itest_assert_jstr(r, json_array_get(list, 0), "event_id", failed_id);
    itest_assert_jstr(r, json_array_get(list, 0), "publish_failure_reason",
                      "itest: gave up");
    expect_full_row(r, json_array_get(list, 0));
    itest_resp_free(r);

    /* The other publish states partition the rest. */
    size_t others = 0;
    static const char *const pub[] = {"pending", "published"};
    for (size_t s = 0; s < 2; s++) {
        snprintf(q, sizeof(q), "?customer_id=%s&publish_status=%s", id, pub[s]);
        r = events(g_a.key, q);
        list = events_ok(r);
        long want = itest_sql_long("SELECT count(*) FROM customer_events "
                                   "WHERE customer_id = $1 AND "
                                   "publish_status = $2",
                                   id, pub[s]);
        itest_expect(r, (long)json_array_size(list) == want,
                     "publish_status=%s: %ld events", pub[s], want);
        for (size_t i = 0; i < json_array_size(list); i++)
            itest_assert_jstr(r, json_array_get(list, i), "publish_status",
                              pub[s]);
        others += json_array_size(list);
        itest_resp_free(r);
    }
    itest_expect(NULL, others == 5, "5 events are not failed");

    snprintf(q, sizeof(q), "?customer_id=%s&deliver_status=delivered", id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) == 1, "one delivered event");
    itest_assert_jstr(r, json_array_get(list, 0), "event_id", delivered_id);
    expect_full_row(r, json_array_get(list, 0));
    itest_expect(r,
                 json_is_string(
                     json_object_get(json_array_get(list, 0), "delivered_at")),
                 "delivered_at must be set");
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&deliver_status=pending", id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) == 5, "five undelivered events");
    for (size_t i = 0; i < json_array_size(list); i++)
        itest_assert_jstr(r, json_array_get(list, i), "deliver_status",
                          "pending");
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&deliver_status=failed", id);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 0, "none dead-lettered");
    itest_resp_free(r);

    /* Filters combine (AND). */
    snprintf(q, sizeof(q),
             "?customer_id=%s&deliver_status=delivered&event_types=customer_"
             "creation",
             id);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 0,
                 "filters must combine with AND");
    itest_resp_free(r);
    snprintf(q, sizeof(q),
             "?customer_id=%s&deliver_status=delivered&event_types=customer_"
             "tag_change&publish_status=published",
             id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) <= 1, "at most the delivered one");
    itest_resp_free(r);

    /* B filtering on A's statuses sees none of A's events. */
    r = events(g_b.key, "?publish_status=failed&limit=1000");
    list = events_ok(r);
    for (size_t i = 0; i < json_array_size(list); i++)
        itest_assert_jstr(r, json_array_get(list, i), "consumer_id", g_b.id);
    itest_resp_free(r);

    /* Bad status values. */
    static const char *const bad[] = {
        "?publish_status=sent",
        "?publish_status=PENDING",
        "?publish_status=",
        "?deliver_status=done",
        "?deliver_status=Delivered",
        "?publish_status=pending&publish_"
        "status=failed",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = events(g_a.key, bad[i]);
        itest_assert_error(r, 422, NULL);
        itest_expect(r, strstr(itest_desc(r), "_status") != NULL,
                     "the message must name the field");
        itest_resp_free(r);
    }
}

static void
limit_and_order(void **state)
{
    (void)state;
    char id[37], q[160];
    make_history(id);

    snprintf(q, sizeof(q), "?customer_id=%s&limit=2", id);
    struct itest_resp *r = events(g_a.key, q);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 2, "limit=2");
    itest_expect(r,
                 itest_jint(json_array_get(list, 0), "sequence") == 1 &&
                     itest_jint(json_array_get(list, 1), "sequence") == 2,
                 "oldest first by default");
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&order=asc&limit=3", id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r,
                 json_array_size(list) == 3 &&
                     itest_jint(json_array_get(list, 2), "sequence") == 3,
                 "order=asc is the default order");
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&order=desc", id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) == 6, "6 events newest first");
    for (size_t i = 0; i < json_array_size(list); i++)
        itest_expect(
            r, itest_jint(json_array_get(list, i), "sequence") == (long)(6 - i),
            "order=desc: event %zu must have sequence %zu", i, 6 - i);
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&order=desc&limit=2", id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r,
                 json_array_size(list) == 2 &&
                     itest_jint(json_array_get(list, 0), "sequence") == 6 &&
                     itest_jint(json_array_get(list, 1), "sequence") == 5,
                 "order=desc&limit=2: the newest two");
    itest_resp_free(r);

    snprintf(q, sizeof(q),
             "?customer_id=%s&order=desc&limit=1&event_types=customer_tag_"
             "change",
             id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) == 1, "one");
    itest_assert_jstr(
        r,
        json_object_get(json_object_get(json_array_get(list, 0), "payload"),
                        "data"),
        "operation", "tag_deleted");
    itest_resp_free(r);

    /* limit=1 and limit=1000 are in range. */
    snprintf(q, sizeof(q), "?customer_id=%s&limit=1", id);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 1, "limit=1");
    itest_resp_free(r);
    snprintf(q, sizeof(q), "?customer_id=%s&limit=1000", id);
    r = events(g_a.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 6, "limit=1000");
    itest_resp_free(r);

    static const char *const bad[] = {
        "?limit=0",
        "?limit=1001",
        "?limit=-5",
        "?limit=ten",
        "?limit=",
        "?limit=2.0",
        "?limit=1&limit=2",
        "?order=DESC",
        "?order=newest",
        "?order=",
        "?order=asc&order=desc",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = events(g_a.key, bad[i]);
        itest_assert_error(r, 422, NULL);
        itest_expect(r,
                     strstr(itest_desc(r), "limit") != NULL ||
                         strstr(itest_desc(r), "order") != NULL,
                     "the message must name the field");
        itest_resp_free(r);
    }
    r = itest_request("GET", "/events", g_a.key, "{\"limit\":\"5\"}", NULL);
    itest_assert_error_contains(r, 422, "limit");
    itest_resp_free(r);
    r = events(g_a.key, "?order=up");
    itest_assert_error(r, 422, "order must be one of asc, desc (got \"up\")");
    itest_resp_free(r);
}

static void
default_limit_is_100(void **state)
{
    (void)state;
    char id[37], q[160];
    itest_make_customer(g_a.key, "events", id);
    add_tags(g_a.key, id, "\"tag_keys\":[\"n\"],\"tag_values\":[\"0\"]");
    for (int i = 1; i <= 100; i++) {
        char rest[96];
        snprintf(rest, sizeof(rest),
                 "\"tag_key\":\"n\",\"new_tag_value\":\"%d\"", i);
        call_ok("PATCH", "/customer/tag-value", g_a.key, id, rest);
    }
    /* 102 events: creation, tags_added, 100 value changes. */
    snprintf(q, sizeof(q), "?customer_id=%s", id);
    struct itest_resp *r = events(g_a.key, q);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 100,
                 "without limit: 100 events, got %zu", json_array_size(list));
    for (size_t i = 0; i < json_array_size(list); i++)
        itest_expect(
            r, itest_jint(json_array_get(list, i), "sequence") == (long)i + 1,
            "event %zu out of sequence order", i);
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s&limit=1000", id);
    r = events(g_a.key, q);
    list = events_ok(r);
    itest_expect(r, json_array_size(list) == 102, "limit=1000: all 102");
    json_t *last = json_array_get(list, 101);
    itest_expect(r, itest_jint(last, "sequence") == 102, "last sequence 102");
    itest_assert_jstr(
        r,
        json_object_get(
            json_object_get(json_object_get(last, "payload"), "data"), "tags"),
        "n", "100");
    itest_resp_free(r);
}

static void
unknown_parameters_and_bad_customer_id_422(void **state)
{
    (void)state;
    char id[37], q[160];
    itest_make_customer(g_a.key, "events", id);

    struct itest_resp *r = events(g_a.key, "?foo=1");
    itest_assert_error(r, 422, "Unknown field \"foo\"");
    itest_resp_free(r);
    /* consumer_id is not a filter of GET /events (scope comes from the
     * key). */
    snprintf(q, sizeof(q), "?consumer_id=%s", g_b.id);
    r = events(g_a.key, q);
    itest_assert_error(r, 422, "Unknown field \"consumer_id\"");
    itest_resp_free(r);
    snprintf(q, sizeof(q), "?customer_id=%s&event_type=customer_creation", id);
    r = events(g_a.key, q);
    itest_assert_error(r, 422, "Unknown field \"event_type\"");
    itest_resp_free(r);
    r = itest_request("GET", "/events", g_a.key, "{\"sort\":\"desc\"}", NULL);
    itest_assert_error(r, 422, "Unknown field \"sort\"");
    itest_resp_free(r);

    r = events(g_a.key, "?customer_id=abc");
    itest_assert_error(r, 422, "customer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);
    snprintf(q, sizeof(q), "?customer_id=%s&customer_id=%s", id, id);
    r = events(g_a.key, q);
    itest_assert_error_contains(r, 422, "customer_id");
    itest_resp_free(r);

    /* Several problems: unknown first, all reported. */
    r = events(g_a.key, "?zzz=1&limit=0");
    itest_assert_error_contains(r, 422, "Unknown field \"zzz\"; ");
    itest_assert_error_contains(r, 422, "limit");
    itest_resp_free(r);

    /* No key: nginx's 401. An empty query is fine (all own events). */
    r = events(NULL, "");
    itest_assert_error(r, 401, "Missing X-API-Key header");
    itest_resp_free(r);
    r = events(g_a.key, "");
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) >= 1, "A has events");
    for (size_t i = 0; i < json_array_size(list); i++)
        itest_assert_jstr(r, json_array_get(list, i), "consumer_id", g_a.id);
    itest_resp_free(r);
}

static void
deleted_customer_events_stay_listable(void **state)
{
    (void)state;
    char id[37], q[160], body[96];
    make_history(id);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    struct itest_resp *r =
        itest_request("DELETE", "/customer/data", g_a.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);

    snprintf(q, sizeof(q), "?customer_id=%s", id);
    r = events(g_a.key, q);
    json_t *list = events_ok(r);
    itest_expect(r, json_array_size(list) == 7, "7 events after deletion");
    json_t *last = json_array_get(list, 6);
    itest_assert_jstr(r, last, "event_type", "customer_deletion");
    itest_expect(r, itest_jint(last, "sequence") == 7,
                 "deletion is sequence 7");
    for (size_t i = 0; i < json_array_size(list); i++)
        expect_full_row(r, json_array_get(list, i));
    itest_resp_free(r);

    /* Still invisible to B, visible to the administrator. */
    r = events(g_b.key, q);
    itest_expect(r, json_array_size(events_ok(r)) == 0,
                 "B must not see A's deleted customer's events");
    itest_resp_free(r);
    r = events(itest_admin_key(), q);
    itest_expect(r, json_array_size(events_ok(r)) == 7,
                 "the administrator sees them");
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tag_events_in_order_with_increasing_sequence),
        cmocka_unit_test(consumers_see_only_their_own_admin_sees_all),
        cmocka_unit_test(filter_event_types_forms),
        cmocka_unit_test(filter_publish_and_deliver_status),
        cmocka_unit_test(limit_and_order),
        cmocka_unit_test(default_limit_is_100),
        cmocka_unit_test(unknown_parameters_and_bad_customer_id_422),
        cmocka_unit_test(deleted_customer_events_stay_listable),
    };
    return cmocka_run_group_tests_name("events_list", tests, setup,
                                       itest_group_teardown);
}
