/*
 * tests/integration/test_analytics.c — customer analytics snapshots of
 * issue 3 through nginx: POST /customer/analytics stores a snapshot of the
 * customer (name, status, tags, tag_count, event_count, the customer's
 * created_at/updated_at, snapshot_at) in customer_analytics, checked column
 * by column in SQL; GET /customer/analytics lists them newest first with
 * `limit`; the snapshots are a time-lapse (a renamed tag, a status change
 * show up in the later snapshot only); a deleted customer's snapshots stay
 * readable by their owner and no one else (docs/API.md §5.3).
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct itest_consumer g_c, g_o; /* owner, outsider */

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_c, &g_o);
}

/* ------------------------------------------------------------- helpers */

static void
make_customer(const char *key, char id[37], char name[96])
{
    itest_unique(name, 96, "snap");
    itest_create_customer(key, name, id);
}

static struct itest_resp *
snapshot(const char *key, const char *id)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    return itest_request("POST", "/customer/analytics", key, body, NULL);
}

/* POST /customer/analytics that must succeed; copies analytics_id. */
static void
snapshot_ok(const char *id, char analytics_id[37])
{
    struct itest_resp *r = snapshot(g_c.key, id);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_keys(r, d, "analytics_id", "customer_id", "snapshot_at");
    itest_assert_jstr(r, d, "customer_id", id);
    const char *aid = itest_jstr(d, "analytics_id");
    itest_expect(r, itest_is_uuid(aid), "analytics_id must be a UUID");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "snapshot_at")),
                 "snapshot_at must be a timestamp");
    if (analytics_id != NULL)
        snprintf(analytics_id, 37, "%s", aid);
    itest_resp_free(r);
}

static struct itest_resp *
list(const char *key, const char *id, const char *extra)
{
    return itest_requestf("GET", key, NULL,
                          "/customer/analytics?customer_id=%s%s", id,
                          extra ? extra : "");
}

/* GET that must answer 200; returns the borrowed snapshots array. */
static json_t *
list_ok(struct itest_resp *r)
{
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "snapshots");
    json_t *s = json_object_get(d, "snapshots");
    itest_expect(r, json_is_array(s), "snapshots must be an array");
    return s;
}

static void
add_tags(const char *id, const char *body_rest)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",%s}", id, body_rest);
    struct itest_resp *r =
        itest_request("POST", "/customer/tag", g_c.key, body, NULL);
    itest_assert_envelope(r, 201);
    itest_resp_free(r);
}

static void
patch(const char *path, const char *id, const char *body_rest)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",%s}", id, body_rest);
    struct itest_resp *r = itest_request("PATCH", path, g_c.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

static void
delete_customer(const char *id)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    struct itest_resp *r =
        itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

static bool
json_same(const json_t *a, const json_t *b)
{
    return a != NULL && b != NULL && json_equal(a, b);
}

/*
 * One listed snapshot must have exactly the stored columns and equal the
 * customer_analytics row with that analytics_id.
 */
static void
expect_snapshot_is_stored_row(const struct itest_resp *r, const json_t *s)
{
    itest_assert_keys(r, s, "analytics_id", "customer_id", "consumer_id",
                      "name", "status", "tags", "tag_count", "event_count",
                      "customer_created_at", "customer_updated_at",
                      "snapshot_at");
    const char *aid = itest_jstr(s, "analytics_id");
    itest_expect(r, aid && itest_is_uuid(aid), "analytics_id must be a UUID");
    PGresult *q = itest_sql(
        "SELECT customer_id::text, consumer_id::text, name, status, "
        "tags::text, tag_count, event_count, "
        "fintegrate_ts(customer_created_at), "
        "fintegrate_ts(customer_updated_at), fintegrate_ts(snapshot_at) "
        "FROM customer_analytics WHERE analytics_id = $1",
        aid);
    itest_expect(r, PQntuples(q) == 1, "no customer_analytics row %s", aid);
    static const char *const text_cols[] = {"customer_id",
                                            "consumer_id",
                                            "name",
                                            "status",
                                            NULL,
                                            NULL,
                                            NULL,
                                            "customer_created_at",
                                            "customer_updated_at",
                                            "snapshot_at"};
    for (int c = 0; c < 10; c++) {
        if (text_cols[c] == NULL)
            continue;
        itest_assert_jstr(r, s, text_cols[c], PQgetvalue(q, 0, c));
    }
    json_t *tags = json_loads(PQgetvalue(q, 0, 4), 0, NULL);
    itest_expect(r, json_same(json_object_get(s, "tags"), tags),
                 "snapshot tags must be the stored ones (%s)",
                 PQgetvalue(q, 0, 4));
    json_decref(tags);
    itest_expect(r, itest_jint(s, "tag_count") == atol(PQgetvalue(q, 0, 5)),
                 "tag_count must be the integer %s", PQgetvalue(q, 0, 5));
    itest_expect(r, itest_jint(s, "event_count") == atol(PQgetvalue(q, 0, 6)),
                 "event_count must be the integer %s", PQgetvalue(q, 0, 6));
    itest_expect(r,
                 itest_is_timestamp(itest_jstr(s, "snapshot_at")) &&
                     itest_is_timestamp(itest_jstr(s, "customer_created_at")) &&
                     itest_is_timestamp(itest_jstr(s, "customer_updated_at")),
                 "snapshot timestamps must look like "
                 "2025-10-23T14:34:51.467162Z");
    PQclear(q);
}

/* ------------------------------------------------------------------ POST */

static void
snapshot_stores_every_column(void **state)
{
    (void)state;
    char id[37], name[96];
    make_customer(g_c.key, id, name);
    add_tags(id, "\"tag_keys\":[\"b\",\"B\",\"a.x\"],"
                 "\"tag_values\":[\"1\",\"\xc3\xa9\",\"'; --\"]");
    patch("/customer/change-status", id, "\"status\":\"INACTIVE\"");

    char *clock = itest_sql_value_at(__FILE__, __LINE__,
                                     "SELECT clock_timestamp()::text", NULL, 0);
    long events_before = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE customer_id = $1", id);
    struct itest_resp *r = snapshot(g_c.key, id);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_keys(r, d, "analytics_id", "customer_id", "snapshot_at");
    itest_assert_jstr(r, d, "customer_id", id);
    const char *aid = itest_jstr(d, "analytics_id");
    itest_expect(r, itest_is_uuid(aid), "analytics_id must be a UUID");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "snapshot_at")),
                 "snapshot_at must be a timestamp");

    /* The row, column by column, against the customer as it is now. */
    PGresult *q = itest_sql(
        "SELECT a.customer_id = c.customer_id, a.consumer_id::text, "
        "a.name = c.name, a.status, a.tags::text, a.tag_count, a.event_count, "
        "a.customer_created_at = c.created_at, "
        "a.customer_updated_at = c.updated_at, fintegrate_ts(a.snapshot_at), "
        "a.snapshot_at > $2::timestamptz, a.snapshot_at >= c.updated_at "
        "FROM customer_analytics a JOIN customers c USING (customer_id) "
        "WHERE a.analytics_id = $1",
        aid, clock);
    itest_expect(r, PQntuples(q) == 1, "one customer_analytics row for %s",
                 aid);
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), "t") == 0, "customer_id");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 1), g_c.id) == 0,
                 "consumer_id must be the owner, is %s", PQgetvalue(q, 0, 1));
    itest_expect(r, strcmp(PQgetvalue(q, 0, 2), "t") == 0, "name");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 3), "INACTIVE") == 0,
                 "status must be INACTIVE, is %s", PQgetvalue(q, 0, 3));
    json_t *tags = json_loads(PQgetvalue(q, 0, 4), 0, NULL);
    json_t *want =
        json_pack("{s:s, s:s, s:s}", "b", "1", "B", "\xc3\xa9", "a.x", "'; --");
    itest_expect(r, json_same(tags, want), "tags must be %s",
                 "{b:1, B:é, a.x:'; --}");
    itest_expect(r, atol(PQgetvalue(q, 0, 5)) == 3, "tag_count must be 3");
    itest_expect(r, atol(PQgetvalue(q, 0, 6)) == events_before,
                 "event_count must be %ld (creation, tags, status), is %s",
                 events_before, PQgetvalue(q, 0, 6));
    itest_expect(r, events_before == 3, "the customer has 3 events");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 7), "t") == 0,
                 "customer_created_at must be the customer's created_at");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 8), "t") == 0,
                 "customer_updated_at must be the customer's updated_at");
    itest_expect(r,
                 strcmp(PQgetvalue(q, 0, 9), itest_jstr(d, "snapshot_at")) == 0,
                 "snapshot_at in the response must be the stored one");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 10), "t") == 0,
                 "snapshot_at must be the time of the request");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 11), "t") == 0,
                 "snapshot_at must not be before the customer's updated_at");
    PQclear(q);
    json_decref(tags);
    json_decref(want);

    /* A snapshot is not a change of the customer: no event, updated_at
     * unchanged. */
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "customer_id = $1",
                                id) == events_before,
                 "a snapshot must not write an event");

    /* GET lists exactly that row. */
    struct itest_resp *g = list(g_c.key, id, NULL);
    json_t *s = list_ok(g);
    itest_expect(g, json_array_size(s) == 1, "one snapshot");
    expect_snapshot_is_stored_row(g, json_array_get(s, 0));
    json_t *s0 = json_array_get(s, 0);
    itest_assert_jstr(g, s0, "analytics_id", aid);
    itest_assert_jstr(g, s0, "name", name);
    itest_assert_jstr(g, s0, "status", "INACTIVE");
    itest_assert_jstr(g, s0, "consumer_id", g_c.id);
    itest_expect(g, itest_jint(s0, "tag_count") == 3, "tag_count 3");
    itest_expect(g, itest_jint(s0, "event_count") == 3, "event_count 3");
    /* Its tags are an object in byte order of key, like GET /customer/data. */
    json_t *st = json_object_get(s0, "tags");
    const char *first = json_object_iter_key(json_object_iter(st));
    itest_expect(g, first && strcmp(first, "B") == 0,
                 "snapshot tags in byte order (\"B\" first), got %s",
                 first ? first : "(none)");
    itest_resp_free(g);
    itest_resp_free(r);
    free(clock);
}

static void
snapshot_of_customer_without_tags(void **state)
{
    (void)state;
    char id[37], name[96];
    make_customer(g_c.key, id, name);
    snapshot_ok(id, NULL);
    struct itest_resp *g = list(g_c.key, id, NULL);
    json_t *s = json_array_get(list_ok(g), 0);
    expect_snapshot_is_stored_row(g, s);
    json_t *t = json_object_get(s, "tags");
    itest_expect(g, json_is_object(t) && json_object_size(t) == 0,
                 "tags must be {}");
    itest_expect(g, itest_jint(s, "tag_count") == 0, "tag_count 0");
    itest_expect(g, itest_jint(s, "event_count") == 1, "event_count 1");
    itest_assert_jstr(g, s, "status", "ACTIVE");
    itest_resp_free(g);
}

static void
snapshot_errors(void **state)
{
    (void)state;
    char id[37], name[96], missing[37];
    make_customer(g_c.key, id, name);
    itest_random_uuid(missing);
    long before = itest_sql_long0("SELECT count(*) FROM customer_analytics");

    /* Unknown customer; another consumer's customer: 404 alike. */
    struct itest_resp *r = snapshot(g_c.key, missing);
    itest_assert_error_contains(r, 404, missing);
    itest_resp_free(r);
    r = snapshot(g_o.key, id);
    itest_assert_error_contains(r, 404, id);
    itest_resp_free(r);

    /* 422s and 400s. */
    static const char *const bodies[] = {
        "{}",
        "{\"customer_id\":\"abc\"}",
        "{\"customer_id\":5}",
        "{\"customer_id\":null}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        r = itest_request("POST", "/customer/analytics", g_c.key, bodies[i],
                          NULL);
        itest_assert_error_contains(r, 422, "customer_id");
        itest_resp_free(r);
    }
    char body[160];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"limit\":1}", id);
    r = itest_request("POST", "/customer/analytics", g_c.key, body, NULL);
    itest_assert_error(r, 422, "Unknown field \"limit\"");
    itest_resp_free(r);
    r = itest_request("POST", "/customer/analytics", g_c.key, "", NULL);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);
    r = itest_request("POST", "/customer/analytics", g_c.key, "[1]", NULL);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);

    itest_expect(NULL,
                 itest_sql_long0("SELECT count(*) FROM customer_analytics") ==
                     before,
                 "refused snapshots must store nothing");

    /* The administrator may snapshot anyone's customer; it stays the
     * owner's. */
    r = snapshot(itest_admin_key(), id);
    json_t *d = itest_assert_envelope(r, 201);
    char *owner = itest_sql_value(
        "SELECT consumer_id::text FROM customer_analytics WHERE "
        "analytics_id = $1",
        itest_jstr(d, "analytics_id"));
    itest_expect(r, owner && strcmp(owner, g_c.id) == 0,
                 "an administrator's snapshot belongs to the owner, not %s",
                 owner ? owner : "NULL");
    free(owner);
    itest_resp_free(r);
}

/* ------------------------------------------------------------------- GET */

static void
list_newest_first_with_limit(void **state)
{
    (void)state;
    char id[37], name[96], ids[5][37];
    make_customer(g_c.key, id, name);
    for (int i = 0; i < 5; i++) {
        char rest[128];
        snprintf(rest, sizeof(rest),
                 "\"tag_keys\":[\"t%d\"],\"tag_values\":[\"%d\"]", i, i);
        add_tags(id, rest);
        snapshot_ok(id, ids[i]);
    }

    /* Default: all five, newest first, snapshot_at strictly descending. */
    struct itest_resp *g = list(g_c.key, id, NULL);
    json_t *s = list_ok(g);
    itest_expect(g, json_array_size(s) == 5, "5 snapshots, got %zu",
                 json_array_size(s));
    for (size_t i = 0; i < json_array_size(s); i++) {
        json_t *e = json_array_get(s, i);
        expect_snapshot_is_stored_row(g, e);
        itest_assert_jstr(g, e, "analytics_id", ids[4 - i]);
        itest_expect(g, itest_jint(e, "tag_count") == (long)(5 - i),
                     "snapshot %zu must have %zu tags", i, 5 - i);
        if (i > 0)
            itest_expect(
                g,
                strcmp(itest_jstr(json_array_get(s, i - 1), "snapshot_at"),
                       itest_jstr(e, "snapshot_at")) > 0,
                "snapshot_at must descend");
    }
    itest_resp_free(g);

    /* limit: the newest n. */
    static const int limits[] = {1, 2, 4, 5, 1000};
    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
        char extra[32];
        snprintf(extra, sizeof(extra), "&limit=%d", limits[k]);
        g = list(g_c.key, id, extra);
        s = list_ok(g);
        size_t want = limits[k] < 5 ? (size_t)limits[k] : 5;
        itest_expect(g, json_array_size(s) == want, "limit=%d: %zu snapshots",
                     limits[k], want);
        for (size_t i = 0; i < json_array_size(s); i++)
            itest_assert_jstr(g, json_array_get(s, i), "analytics_id",
                              ids[4 - i]);
        itest_resp_free(g);
    }

    /* JSON body on GET (query string empty), limit as a JSON integer. */
    char body[128];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"limit\":2}", id);
    g = itest_request("GET", "/customer/analytics", g_c.key, body, NULL);
    s = list_ok(g);
    itest_expect(g, json_array_size(s) == 2, "2 snapshots from the body form");
    itest_assert_jstr(g, json_array_get(s, 0), "analytics_id", ids[4]);
    itest_resp_free(g);

    /* Bad limits: 422 naming the rule. */
    static const char *const bad[] = {
        "&limit=0",   "&limit=1001", "&limit=-1",       "&limit=abc",
        "&limit=1.5", "&limit=",     "&limit=1&limit=2"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        g = list(g_c.key, id, bad[k]);
        itest_assert_error_contains(g, 422, "limit");
        itest_resp_free(g);
    }
    g = list(g_c.key, id, "&limit=0");
    itest_assert_error_contains(g, 422,
                                "limit must be an integer between 1 and 1000");
    itest_resp_free(g);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"limit\":\"2\"}",
             id);
    g = itest_request("GET", "/customer/analytics", g_c.key, body, NULL);
    itest_assert_error_contains(g, 422, "limit");
    itest_resp_free(g);
}

static void
list_errors_and_empty(void **state)
{
    (void)state;
    char id[37], name[96], missing[37];
    make_customer(g_c.key, id, name);
    itest_random_uuid(missing);

    /* A customer without snapshots: 200 and an empty list. */
    struct itest_resp *g = list(g_c.key, id, NULL);
    itest_expect(g, json_array_size(list_ok(g)) == 0, "no snapshots yet");
    itest_resp_free(g);

    /* Unknown customer: 404; another consumer's live customer: 404 too
     * (not an empty list), even when it has snapshots. */
    g = list(g_c.key, missing, NULL);
    itest_assert_error_contains(g, 404, missing);
    itest_resp_free(g);
    g = list(g_o.key, id, NULL);
    itest_assert_error_contains(g, 404, id);
    itest_resp_free(g);
    snapshot_ok(id, NULL);
    g = list(g_o.key, id, NULL);
    itest_assert_error_contains(g, 404, id);
    itest_resp_free(g);

    /* 422s. */
    g = itest_request("GET", "/customer/analytics", g_c.key, NULL, NULL);
    itest_assert_error(g, 422, "Missing required field \"customer_id\"");
    itest_resp_free(g);
    g = itest_request("GET", "/customer/analytics?customer_id=abc", g_c.key,
                      NULL, NULL);
    itest_assert_error(g, 422, "customer_id must be a UUID (got \"abc\")");
    itest_resp_free(g);
    g = list(g_c.key, id, "&order=desc");
    itest_assert_error(g, 422, "Unknown field \"order\"");
    itest_resp_free(g);
    g = list(g_c.key, id, "&customer_id=x");
    itest_assert_error_contains(g, 422, "customer_id");
    itest_resp_free(g);
}

/* ------------------------------------------------------ change over time */

static void
snapshots_show_change_over_time(void **state)
{
    (void)state;
    char id[37], name[96], first[37], second[37], third[37];
    make_customer(g_c.key, id, name);
    add_tags(id, "\"tag_keys\":[\"segment\",\"tier\"],"
                 "\"tag_values\":[\"retail\",\"gold\"]");
    snapshot_ok(id, first);

    /* Rename a tag, take a second snapshot. */
    patch("/customer/tag-key", id,
          "\"tag_key\":\"segment\",\"new_tag_key\":\"segment.v2\"");
    snapshot_ok(id, second);

    /* Change a value and the status, delete a tag, third snapshot. */
    patch("/customer/tag-value", id,
          "\"tag_key\":\"tier\",\"new_tag_value\":\"platinum\"");
    patch("/customer/change-status", id, "\"status\":\"INACTIVE\"");
    snapshot_ok(id, third);

    struct itest_resp *g = list(g_c.key, id, NULL);
    json_t *s = list_ok(g);
    itest_expect(g, json_array_size(s) == 3, "three snapshots");
    json_t *s3 = json_array_get(s, 0), *s2 = json_array_get(s, 1),
           *s1 = json_array_get(s, 2);
    itest_assert_jstr(g, s1, "analytics_id", first);
    itest_assert_jstr(g, s2, "analytics_id", second);
    itest_assert_jstr(g, s3, "analytics_id", third);
    for (size_t i = 0; i < 3; i++)
        expect_snapshot_is_stored_row(g, json_array_get(s, i));

    json_t *t1 = json_pack("{s:s, s:s}", "segment", "retail", "tier", "gold");
    json_t *t2 =
        json_pack("{s:s, s:s}", "segment.v2", "retail", "tier", "gold");
    json_t *t3 =
        json_pack("{s:s, s:s}", "segment.v2", "retail", "tier", "platinum");
    itest_expect(g, json_same(json_object_get(s1, "tags"), t1),
                 "the first snapshot keeps the old key \"segment\"");
    itest_expect(g, json_same(json_object_get(s2, "tags"), t2),
                 "the second snapshot has the renamed key \"segment.v2\"");
    itest_expect(g, json_same(json_object_get(s3, "tags"), t3),
                 "the third snapshot has the new value");
    json_decref(t1);
    json_decref(t2);
    json_decref(t3);

    /* Counts: a rename keeps tag_count; each change is one more event
     * (creation, tags_added | tag_key_changed | value, status). */
    itest_expect(g,
                 itest_jint(s1, "tag_count") == 2 &&
                     itest_jint(s2, "tag_count") == 2 &&
                     itest_jint(s3, "tag_count") == 2,
                 "tag_count must stay 2");
    itest_expect(g, itest_jint(s1, "event_count") == 2,
                 "first event_count 2, is %ld", itest_jint(s1, "event_count"));
    itest_expect(g, itest_jint(s2, "event_count") == 3,
                 "second event_count 3, is %ld", itest_jint(s2, "event_count"));
    itest_expect(g, itest_jint(s3, "event_count") == 5,
                 "third event_count 5, is %ld", itest_jint(s3, "event_count"));

    /* Status and name as they were. */
    itest_assert_jstr(g, s1, "status", "ACTIVE");
    itest_assert_jstr(g, s2, "status", "ACTIVE");
    itest_assert_jstr(g, s3, "status", "INACTIVE");
    itest_assert_jstr(g, s1, "name", name);
    itest_assert_jstr(g, s3, "name", name);

    /* The customer's created_at is the same in all; updated_at moves. */
    itest_assert_jstr(g, s2, "customer_created_at",
                      itest_jstr(s1, "customer_created_at"));
    itest_assert_jstr(g, s3, "customer_created_at",
                      itest_jstr(s1, "customer_created_at"));
    itest_expect(g,
                 strcmp(itest_jstr(s2, "customer_updated_at"),
                        itest_jstr(s1, "customer_updated_at")) > 0 &&
                     strcmp(itest_jstr(s3, "customer_updated_at"),
                            itest_jstr(s2, "customer_updated_at")) > 0,
                 "customer_updated_at must move forward between snapshots");
    itest_expect(g,
                 strcmp(itest_jstr(s2, "customer_updated_at"),
                        itest_jstr(s1, "snapshot_at")) > 0,
                 "the rename happened after the first snapshot");

    /* The earlier rows were not rewritten by the later changes. */
    char *old_tags = itest_sql_value(
        "SELECT tags::text FROM customer_analytics WHERE analytics_id = $1",
        first);
    json_t *ot = json_loads(old_tags ? old_tags : "", 0, NULL);
    itest_expect(g,
                 json_object_get(ot, "segment") != NULL &&
                     json_object_get(ot, "segment.v2") == NULL,
                 "the stored first snapshot must keep \"segment\": %s",
                 old_tags ? old_tags : "NULL");
    json_decref(ot);
    free(old_tags);
    itest_resp_free(g);
}

/* ---------------------------------------------------- deleted customers */

static void
deleted_customer_snapshots_stay_readable_by_owner(void **state)
{
    (void)state;
    char id[37], name[96], a1[37], a2[37];
    make_customer(g_c.key, id, name);
    add_tags(id, "\"tag_keys\":[\"k\"],\"tag_values\":[\"v\"]");
    snapshot_ok(id, a1);
    snapshot_ok(id, a2);
    delete_customer(id);

    /* The owner: 200 with both, unchanged. */
    struct itest_resp *g = list(g_c.key, id, NULL);
    json_t *s = list_ok(g);
    itest_expect(g, json_array_size(s) == 2, "both snapshots stay readable");
    itest_assert_jstr(g, json_array_get(s, 0), "analytics_id", a2);
    itest_assert_jstr(g, json_array_get(s, 1), "analytics_id", a1);
    for (size_t i = 0; i < json_array_size(s); i++) {
        json_t *e = json_array_get(s, i);
        expect_snapshot_is_stored_row(g, e);
        itest_assert_jstr(g, e, "name", name);
        itest_assert_jstr(g, json_object_get(e, "tags"), "k", "v");
    }
    itest_resp_free(g);
    g = list(g_c.key, id, "&limit=1");
    s = list_ok(g);
    itest_expect(g, json_array_size(s) == 1, "limit applies after deletion");
    itest_assert_jstr(g, json_array_get(s, 0), "analytics_id", a2);
    itest_resp_free(g);

    /* Another consumer: 404, worded like a missing customer. */
    g = list(g_o.key, id, NULL);
    itest_assert_error_contains(g, 404, id);
    itest_resp_free(g);

    /* The administrator sees everyone's history. */
    g = list(itest_admin_key(), id, NULL);
    itest_expect(g, json_array_size(list_ok(g)) == 2,
                 "the administrator reads a deleted customer's snapshots");
    itest_resp_free(g);

    /* No new snapshot of a deleted customer. */
    struct itest_resp *r = snapshot(g_c.key, id);
    itest_assert_error_contains(r, 404, id);
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_analytics "
                                "WHERE customer_id = $1",
                                id) == 2,
                 "still exactly two snapshots");

    /* A deleted customer without snapshots: 404 (neither customer nor
     * snapshot). */
    char bare[37], bname[96];
    make_customer(g_c.key, bare, bname);
    delete_customer(bare);
    g = list(g_c.key, bare, NULL);
    itest_assert_error_contains(g, 404, bare);
    itest_resp_free(g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(snapshot_stores_every_column),
        cmocka_unit_test(snapshot_of_customer_without_tags),
        cmocka_unit_test(snapshot_errors),
        cmocka_unit_test(list_newest_first_with_limit),
        cmocka_unit_test(list_errors_and_empty),
        cmocka_unit_test(snapshots_show_change_over_time),
        cmocka_unit_test(deleted_customer_snapshots_stay_readable_by_owner),
    };
    return cmocka_run_group_tests_name("analytics", tests, setup,
                                       itest_group_teardown);
}
