/*
 * tests/integration/test_tags.c — the tag endpoints of issue 3 through
 * nginx: POST /customer/tag, GET /customer/tag-value, DELETE /customer/tag,
 * PATCH /customer/tag-key, PATCH /customer/tag-value, and tags on
 * POST/GET /customer/data (docs/API.md §2, §5.2).
 *
 * Every success is checked in the database: the rows, customer_tags and
 * customers updated_at moving forward, and exactly one customer_tag_change
 * event whose payload data carries the operation and the full tag object
 * after the change. Every refusal (404, 409, 422, a failing statement) is
 * checked to have written nothing: no tag, no event, updated_at unchanged.
 * Tenancy: another consumer's customer answers 404 on every endpoint,
 * worded like a missing one; the administrator may change it and the event
 * keeps the owner.
 */
#include "itest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The owner of the customers here, and an outsider (both made in SQL). */
static struct itest_consumer g_c, g_o;

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_c, &g_o);
}

/* ------------------------------------------------------------- helpers */

static json_t *
str_array(const char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

/* POST /customer/tag {customer_id, tag_keys, tag_values} as api_key. */
static struct itest_resp *
add_tags_n(const char *api_key, const char *id, const char *const *keys,
           size_t nk, const char *const *values, size_t nv)
{
    char *body = itest_json_text(
        json_pack("{s:s, s:o, s:o}", "customer_id", id, "tag_keys",
                  str_array(keys, nk), "tag_values", str_array(values, nv)));
    struct itest_resp *r =
        itest_request("POST", "/customer/tag", api_key, body, NULL);
    free(body);
    return r;
}

static struct itest_resp *
add_tags(const char *api_key, const char *id, const char *const *keys,
         const char *const *values, size_t n)
{
    return add_tags_n(api_key, id, keys, n, values, n);
}

/* A POST /customer/tag that must succeed: 201 (docs/API.md §3.2), data {}. */
static void
expect_added(struct itest_resp *r)
{
    json_t *d = itest_assert_envelope(r, 201);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
}

static void
add_ok(const char *id, const char *const *keys, const char *const *values,
       size_t n)
{
    struct itest_resp *r = add_tags(g_c.key, id, keys, values, n);
    expect_added(r);
    itest_resp_free(r);
}

static void
add_one(const char *id, const char *key, const char *value)
{
    add_ok(id, (const char *const[]){key}, (const char *const[]){value}, 1);
}

/* A body for the PATCH/DELETE endpoints: {customer_id, <k1>: v1, ...}. */
static char *
body_of(const char *id, const char *k1, const char *v1, const char *k2,
        const char *v2)
{
    json_t *o = json_pack("{s:s}", "customer_id", id);
    if (k1 != NULL)
        json_object_set_new(o, k1, json_string(v1));
    if (k2 != NULL)
        json_object_set_new(o, k2, json_string(v2));
    return itest_json_text(o);
}

static struct itest_resp *
send_body(const char *method, const char *path, const char *api_key, char *body)
{
    struct itest_resp *r = itest_request(method, path, api_key, body, NULL);
    free(body);
    return r;
}

static struct itest_resp *
rename_key(const char *api_key, const char *id, const char *key,
           const char *new_key)
{
    return send_body("PATCH", "/customer/tag-key", api_key,
                     body_of(id, "tag_key", key, "new_tag_key", new_key));
}

static struct itest_resp *
set_value(const char *api_key, const char *id, const char *key,
          const char *value)
{
    return send_body("PATCH", "/customer/tag-value", api_key,
                     body_of(id, "tag_key", key, "new_tag_value", value));
}

static struct itest_resp *
delete_tag(const char *api_key, const char *id, const char *key)
{
    return send_body("DELETE", "/customer/tag", api_key,
                     body_of(id, "tag_key", key, NULL, NULL));
}

static struct itest_resp *
get_value(const char *api_key, const char *id, const char *key)
{
    return itest_requestf("GET", api_key, NULL,
                          "/customer/tag-value?customer_id=%s&tag_key=%s", id,
                          key);
}

/* The customer's tags as stored, an owned object in byte order of key. */
static json_t *
db_tags(const char *id)
{
    char *text = itest_sql_value(
        "SELECT COALESCE(json_object_agg(tag_key, tag_value ORDER BY "
        "tag_key COLLATE \"C\"), '{}')::text FROM customer_tags "
        "WHERE customer_id = $1",
        id);
    json_error_t e;
    json_t *o = json_loads(text ? text : "{}", 0, &e);
    if (!json_is_object(o))
        itest_failf("customer_tags of %s are not an object: %s", id, text);
    free(text);
    return o;
}

/* {k: v, ...} from parallel arrays; owned. */
static json_t *
tags_obj(const char *const *keys, const char *const *values, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, keys[i], json_string(values[i]));
    return o;
}

static char *
dump(const json_t *v)
{
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
}

#define expect_json_equal(r, got, want, what)                                  \
    expect_json_equal_at(__FILE__, __LINE__, (r), (got), (want), (what))

static void
expect_json_equal_at(const char *file, int line, const struct itest_resp *r,
                     const json_t *got, const json_t *want, const char *what)
{
    if (got != NULL && json_equal(got, want))
        return;
    char *g = got ? dump(got) : strdup("(absent)");
    char *w = dump(want);
    itest_expect_at(file, line, r, false, "%s: got %s, want %s", what, g, w);
    free(g);
    free(w);
}

/* The customer's tags must be exactly `want` (stolen). */
#define expect_db_tags(r, id, want)                                            \
    expect_db_tags_at(__FILE__, __LINE__, (r), (id), (want))

static void
expect_db_tags_at(const char *file, int line, const struct itest_resp *r,
                  const char *id, json_t *want)
{
    json_t *got = db_tags(id);
    expect_json_equal_at(file, line, r, got, want, "stored tags");
    json_decref(got);
    json_decref(want);
}

/*
 * What a request may change, taken before it: the customer's events, its
 * updated_at, its tags (as stored) and the database clock.
 */
struct mark {
    long events;
    long max_seq;
    char *updated_at; /* customers.updated_at, owned */
    char *clock;      /* clock_timestamp() before the request, owned */
    json_t *tags;     /* owned */
    char *tag_rows;   /* every customer_tags column as text, owned */
};

/* The database's clock now, as fintegrate_ts text; owned. */
static char *
db_clock(void)
{
    return itest_sql_value_at(
        __FILE__, __LINE__, "SELECT fintegrate_ts(clock_timestamp())", NULL, 0);
}

static char *
tag_rows_text(const char *id)
{
    return itest_sql_value(
        "SELECT COALESCE(string_agg(format('%s=%s|%s|%s', tag_key, "
        "tag_value, created_at, updated_at), E'\\n' ORDER BY tag_key COLLATE "
        "\"C\"), '') FROM customer_tags WHERE customer_id = $1",
        id);
}

static void
mark_take(const char *id, struct mark *m)
{
    m->events = itest_count_events(id);
    m->max_seq = itest_sql_long("SELECT COALESCE(max(sequence), 0) FROM "
                                "customer_events WHERE customer_id = $1",
                                id);
    m->updated_at = itest_sql_value(
        "SELECT fintegrate_ts(updated_at) FROM customers WHERE customer_id = "
        "$1",
        id);
    m->tags = db_tags(id);
    m->tag_rows = tag_rows_text(id);
    m->clock = db_clock();
}

static void
mark_free(struct mark *m)
{
    free(m->updated_at);
    free(m->clock);
    free(m->tag_rows);
    json_decref(m->tags);
    memset(m, 0, sizeof(*m));
}

/* A refused request: no event, no tag row touched, updated_at unchanged. */
#define expect_unchanged(r, id, m)                                             \
    expect_unchanged_at(__FILE__, __LINE__, (r), (id), (m))

static void
expect_unchanged_at(const char *file, int line, const struct itest_resp *r,
                    const char *id, const struct mark *m)
{
    long events = itest_count_events(id);
    itest_expect_at(file, line, r, events == m->events,
                    "a refused request wrote %ld event(s)", events - m->events);
    char *updated = itest_sql_value("SELECT fintegrate_ts(updated_at) FROM "
                                    "customers WHERE customer_id = $1",
                                    id);
    itest_expect_at(
        file, line, r,
        (updated == NULL && m->updated_at == NULL) ||
            (updated && m->updated_at && strcmp(updated, m->updated_at) == 0),
        "a refused request moved customers.updated_at (%s -> %s)",
        m->updated_at ? m->updated_at : "NULL", updated ? updated : "NULL");
    free(updated);
    char *rows = tag_rows_text(id);
    itest_expect_at(file, line, r,
                    rows && m->tag_rows && strcmp(rows, m->tag_rows) == 0,
                    "a refused request changed customer_tags:\n%s\n->\n%s",
                    m->tag_rows ? m->tag_rows : "", rows ? rows : "");
    free(rows);
}

/* Whether the customer's (or one tag's) updated_at is later than `after`. */
static bool
customer_updated_after(const char *id, const char *after)
{
    char *t = itest_sql_value("SELECT (updated_at > $2::timestamptz)::text "
                              "FROM customers WHERE customer_id = $1",
                              id, after);
    bool ok = t && strcmp(t, "true") == 0;
    free(t);
    return ok;
}

static bool
tag_updated_after(const char *id, const char *key, const char *after)
{
    char *t = itest_sql_value("SELECT (updated_at > $3::timestamptz)::text "
                              "FROM customer_tags WHERE customer_id = $1 AND "
                              "tag_key = $2",
                              id, key, after);
    bool ok = t && strcmp(t, "true") == 0;
    free(t);
    return ok;
}

/*
 * A successful tag change: exactly one new event, a customer_tag_change
 * with the next sequence, the owner, the call's source and request id, and
 * a payload whose data is {customer_id, operation, tags = the stored tags
 * after the change, ...}; customers.updated_at moved past the mark and past
 * its previous value. Returns the payload's data (owned by *payload_out).
 */
#define expect_tag_event(r, id, m, op, source, owner, payload_out)             \
    expect_tag_event_at(__FILE__, __LINE__, (r), (id), (m), (op), (source),    \
                        (owner), (payload_out))

static json_t *
expect_tag_event_at(const char *file, int line, const struct itest_resp *r,
                    const char *id, const struct mark *m, const char *op,
                    const char *source, const char *owner, json_t **payload_out)
{
    char seq[32];
    snprintf(seq, sizeof(seq), "%ld", m->max_seq);
    PGresult *q = itest_sql(
        "SELECT event_id::text, event_type, source_service, sequence, "
        "consumer_id::text, request_id, payload::text, "
        "fintegrate_ts(created_at) FROM customer_events WHERE customer_id = "
        "$1 AND sequence > $2::bigint ORDER BY sequence",
        id, seq);
    itest_expect_at(file, line, r, PQntuples(q) == 1,
                    "a tag change must write exactly one event (wrote %d)",
                    PQntuples(q));
    itest_expect_at(file, line, r, itest_count_events(id) == m->events + 1,
                    "exactly one event more than before");
    itest_expect_at(
        file, line, r, strcmp(PQgetvalue(q, 0, 1), "customer_tag_change") == 0,
        "event_type must be customer_tag_change, is %s", PQgetvalue(q, 0, 1));
    itest_expect_at(file, line, r, strcmp(PQgetvalue(q, 0, 2), source) == 0,
                    "source_service must be \"%s\", is \"%s\"", source,
                    PQgetvalue(q, 0, 2));
    itest_expect_at(file, line, r, atol(PQgetvalue(q, 0, 3)) == m->max_seq + 1,
                    "sequence must be %ld, is %s", m->max_seq + 1,
                    PQgetvalue(q, 0, 3));
    itest_expect_at(file, line, r, strcmp(PQgetvalue(q, 0, 4), owner) == 0,
                    "event consumer_id must be the owner %s, is %s", owner,
                    PQgetvalue(q, 0, 4));
    const char *rid = itest_header(r, "X-Request-ID");
    itest_expect_at(file, line, r,
                    rid != NULL && !PQgetisnull(q, 0, 5) &&
                        strcmp(PQgetvalue(q, 0, 5), rid) == 0,
                    "request_id (%s) must be the response's X-Request-ID",
                    PQgetvalue(q, 0, 5));

    json_error_t e;
    json_t *p = json_loads(PQgetvalue(q, 0, 6), JSON_REJECT_DUPLICATES, &e);
    itest_expect_at(file, line, r, json_is_object(p),
                    "payload must be a JSON object: %s", PQgetvalue(q, 0, 6));
    itest_assert_jstr_at(file, line, r, p, "event_id", PQgetvalue(q, 0, 0));
    itest_assert_jstr_at(file, line, r, p, "event_type", "customer_tag_change");
    itest_assert_jstr_at(file, line, r, p, "customer_id", id);
    itest_assert_jstr_at(file, line, r, p, "consumer_id", owner);
    json_t *ps = json_object_get(p, "sequence");
    itest_expect_at(file, line, r,
                    json_is_integer(ps) &&
                        json_integer_value(ps) == m->max_seq + 1,
                    "payload.sequence must be %ld", m->max_seq + 1);
    json_t *meta = json_object_get(p, "metadata");
    itest_assert_jstr_at(file, line, r, meta, "source_service", source);
    itest_assert_jstr_at(file, line, r, meta, "created_at",
                         PQgetvalue(q, 0, 7));
    json_t *data = json_object_get(p, "data");
    itest_expect_at(file, line, r, json_is_object(data),
                    "payload.data must be an object");
    itest_assert_jstr_at(file, line, r, data, "customer_id", id);
    itest_assert_jstr_at(file, line, r, data, "operation", op);
    json_t *now = db_tags(id);
    expect_json_equal_at(file, line, r, json_object_get(data, "tags"), now,
                         "payload.data.tags must be the full tags after the "
                         "change");
    json_decref(now);
    PQclear(q);

    itest_expect_at(file, line, r, customer_updated_after(id, m->clock),
                    "customers.updated_at must move past %s", m->clock);
    itest_expect_at(file, line, r, customer_updated_after(id, m->updated_at),
                    "customers.updated_at must move forward from %s",
                    m->updated_at);
    *payload_out = p;
    return data;
}

/* The same refusal, sentence for sentence, for `theirs` and a random id:
 * another consumer's customer is indistinguishable from a missing one. */
static void
expect_404_like_missing(struct itest_resp *theirs, const char *their_id,
                        struct itest_resp *missing, const char *missing_id)
{
    itest_assert_error(theirs, 404, NULL);
    itest_assert_error(missing, 404, NULL);
    char *a = itest_desc_without(theirs, their_id, NULL);
    char *b = itest_desc_without(missing, missing_id, NULL);
    itest_expect(theirs, strcmp(a, b) == 0,
                 "another consumer's customer must be worded like a missing "
                 "one: \"%s\" vs \"%s\"",
                 a, b);
    free(a);
    free(b);
}

/* GET /customer/data as the owner; returns data.tags (borrowed from *out). */
static json_t *
get_customer_tags(const char *id, struct itest_resp **out)
{
    struct itest_resp *r = itest_requestf("GET", g_c.key, NULL,
                                          "/customer/data?customer_id=%s", id);
    json_t *d = itest_assert_envelope(r, 200);
    json_t *t = json_object_get(d, "tags");
    itest_expect(r, json_is_object(t), "data.tags must be an object");
    *out = r;
    return t;
}

/* ------------------------------------------------ POST /customer/tag */

static void
add_answers_201_with_empty_data(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    struct itest_resp *r = add_tags(g_c.key, id, (const char *const[]){"one"},
                                    (const char *const[]){"1"}, 1);
    json_t *d = itest_assert_envelope(r, 201);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
    itest_resp_free(r);

    r = add_tags(g_c.key, id, (const char *const[]){"two", "three"},
                 (const char *const[]){"2", "3"}, 2);
    d = itest_assert_envelope(r, 201);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
    itest_resp_free(r);
}

static void
add_writes_rows_timestamps_and_one_event(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    add_one(id, "existing", "old");

    static const char *const keys[] = {"a.b", "x-y", "_under",
                                       "Mixed.Case-1_z"};
    static const char *const values[] = {"dot", "dash", "underscore", ""};
    struct mark m;
    mark_take(id, &m);
    struct itest_resp *r = add_tags(g_c.key, id, keys, values, 4);
    expect_added(r);

    json_t *want = tags_obj(keys, values, 4);
    json_object_set_new(want, "existing", json_string("old"));
    expect_db_tags(r, id, json_incref(want));

    json_t *p;
    json_t *data = expect_tag_event(r, id, &m, "tags_added",
                                    "POST: /customer/tag", g_c.id, &p);
    expect_json_equal(r, json_object_get(data, "tags"), want,
                      "payload.data.tags");
    for (size_t i = 0; i < 4; i++) {
        itest_expect(r, tag_updated_after(id, keys[i], m.clock),
                     "customer_tags.updated_at of %s must be set by the "
                     "change",
                     keys[i]);
        itest_expect(r,
                     itest_sql_long("SELECT count(*) FROM customer_tags WHERE "
                                    "customer_id = $1 AND tag_key = $2 AND "
                                    "created_at IS NOT NULL",
                                    id, keys[i]) == 1,
                     "customer_tags row for %s", keys[i]);
    }
    /* The tag that was there already is not touched by the insert. */
    itest_expect(r, !tag_updated_after(id, "existing", m.clock),
                 "an untouched tag's updated_at must not move");
    json_decref(p);

    /* GET /customer/data and GET /customer/tag-value agree. */
    struct itest_resp *g;
    json_t *t = get_customer_tags(id, &g);
    expect_json_equal(g, t, want, "GET /customer/data tags");
    itest_resp_free(g);
    for (size_t i = 0; i < 4; i++) {
        g = get_value(g_c.key, id, keys[i]);
        json_t *d = itest_assert_envelope(g, 200);
        itest_assert_keys(g, d, "tag_value");
        itest_assert_jstr(g, d, "tag_value", values[i]);
        itest_resp_free(g);
    }
    json_decref(want);
    mark_free(&m);
    itest_resp_free(r);
}

static void
add_conflict_writes_nothing(void **state)
{
    (void)state;
    char id[37], want_desc[160];
    itest_make_customer(g_c.key, "tags", id);
    add_one(id, "taken", "first");
    struct mark m;
    mark_take(id, &m);

    /* The second key collides: the first one must not be written either
     * (an interrupted multi-tag insert leaves nothing behind). */
    struct itest_resp *r =
        add_tags(g_c.key, id, (const char *const[]){"fresh", "taken", "fresh2"},
                 (const char *const[]){"a", "b", "c"}, 3);
    snprintf(want_desc, sizeof(want_desc),
             "Tag \"taken\" already exists on customer %s", id);
    itest_assert_error(r, 409, want_desc);
    expect_unchanged(r, id, &m);
    expect_db_tags(r, id, json_pack("{s:s}", "taken", "first"));
    itest_resp_free(r);

    /* The same with the colliding key first and last. */
    r = add_tags(g_c.key, id, (const char *const[]){"taken", "fresh"},
                 (const char *const[]){"x", "y"}, 2);
    itest_assert_error_contains(r, 409, "taken");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = add_tags(g_c.key, id, (const char *const[]){"fresh", "taken"},
                 (const char *const[]){"x", "first"}, 2);
    itest_assert_error_contains(r, 409, "taken");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* The refused keys are really absent. */
    r = get_value(g_c.key, id, "fresh");
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    mark_free(&m);
}

static void
add_validation_errors(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    add_one(id, "keep", "me");
    struct mark m;
    mark_take(id, &m);
    char want[256];

    struct {
        const char *body_tmpl; /* @ID@ = customer_id */
        const char *exact;
        const char *needle;
    } cases[] = {
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\",\"b\"],"
         "\"tag_values\":[\"1\"]}",
         "tag_keys and tag_values must have the same length (got 2 and 1)",
         NULL},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],"
         "\"tag_values\":[\"1\",\"2\",\"3\"]}",
         "tag_keys and tag_values must have the same length (got 1 and 3)",
         NULL},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[],\"tag_values\":[]}",
         "tag_keys must not be empty; tag_values must not be empty", NULL},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[],\"tag_values\":[\"1\"]}",
         NULL, "tag_keys must not be empty"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],\"tag_values\":[]}",
         NULL, "tag_values must not be empty"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"dup\",\"x\",\"dup\"],"
         "\"tag_values\":[\"1\",\"2\",\"3\"]}",
         "tag_keys must not repeat a key (\"dup\" appears more than once)",
         NULL},
        /* A key already on the customer and repeated in the request: the
         * request itself is wrong (422 comes before 409). */
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"keep\",\"keep\"],"
         "\"tag_values\":[\"1\",\"2\"]}",
         NULL, "tag_keys must not repeat a key"},
        {"{\"customer_id\":\"@ID@\",\"tag_values\":[\"1\"]}",
         "Missing required field \"tag_keys\"", NULL},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"]}",
         "Missing required field \"tag_values\"", NULL},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":null,\"tag_values\":[\"1\"]}",
         NULL, "tag_keys"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":\"a\",\"tag_values\":[\"1\"]}",
         NULL, "tag_keys must be an array"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":{\"a\":\"1\"},"
         "\"tag_values\":[\"1\"]}",
         NULL, "tag_keys must be an array"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],\"tag_values\":\"1\"}",
         NULL, "tag_values must be an array"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[5],\"tag_values\":[\"1\"]}",
         NULL, "tag_keys[0]"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],\"tag_values\":[5]}",
         NULL, "tag_values[0]"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],\"tag_values\":[null]"
         "}",
         NULL, "tag_values[0]"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\",\"b\"],"
         "\"tag_values\":[\"1\",true]}",
         NULL, "tag_values[1]"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],"
         "\"tag_values\":[\"x\\u0000y\"]}",
         NULL, "NUL"},
        {"{\"customer_id\":\"@ID@\",\"tag_keys\":[\"a\"],\"tag_values\":[\"1\"]"
         ","
         "\"tags\":{}}",
         "Unknown field \"tags\"", NULL},
        {"{\"customer_id\":\"@ID@\",\"tag_key\":\"a\",\"tag_value\":\"1\"}",
         NULL, "Unknown field \"tag_key\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512];
        itest_fill_id(body, sizeof(body), cases[i].body_tmpl, id);
        struct itest_resp *r =
            itest_request("POST", "/customer/tag", g_c.key, body, NULL);
        if (cases[i].exact != NULL)
            itest_assert_error(r, 422, cases[i].exact);
        else
            itest_assert_error_contains(r, 422, cases[i].needle);
        expect_unchanged(r, id, &m);
        itest_resp_free(r);
    }

    /* customer_id problems. */
    struct itest_resp *r =
        itest_request("POST", "/customer/tag", g_c.key,
                      "{\"tag_keys\":[\"a\"],\"tag_values\":[\"1\"]}", NULL);
    itest_assert_error(r, 422, "Missing required field \"customer_id\"");
    itest_resp_free(r);
    r = itest_request(
        "POST", "/customer/tag", g_c.key,
        "{\"customer_id\":\"abc\",\"tag_keys\":[\"a\"],\"tag_values\":[\"1\"]}",
        NULL);
    itest_assert_error(r, 422, "customer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);

    /* Validation comes before existence: an unknown customer with a bad
     * request is 422, not 404. */
    char missing[37];
    itest_random_uuid(missing);
    snprintf(want, sizeof(want),
             "{\"customer_id\":\"%s\",\"tag_keys\":[\"a\",\"b\"],"
             "\"tag_values\":[\"1\"]}",
             missing);
    r = itest_request("POST", "/customer/tag", g_c.key, want, NULL);
    itest_assert_error(
        r, 422,
        "tag_keys and tag_values must have the same length (got 2 and 1)");
    itest_resp_free(r);

    /* Not JSON, not an object, empty: 400. */
    static const char *const bad_bodies[] = {"", "[]", "{\"customer_id\":"};
    for (size_t i = 0; i < 3; i++) {
        r = itest_request("POST", "/customer/tag", g_c.key, bad_bodies[i],
                          NULL);
        itest_assert_error(r, 400, NULL);
        itest_resp_free(r);
    }
    expect_unchanged(NULL, id, &m);
    mark_free(&m);
}

static void
add_key_pattern_and_length(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);

    /* 64 characters of the whole alphabet: accepted. */
    char *k64 = itest_repeat("aZ0_.-Ab", 8);
    add_one(id, k64, "sixty-four");
    struct itest_resp *r = get_value(g_c.key, id, k64);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value",
                      "sixty-four");
    itest_resp_free(r);

    struct mark m;
    mark_take(id, &m);
    char *k65 = itest_repeat("k", 65);
    static const char *const bad[] = {
        NULL, /* k65 */
        "",
        "a b",
        "a/b",
        "a:b",
        "a+b",
        "a,b",
        "a\"b",
        "key\xc3\xa9",      /* é */
        "\xd0\xba\xd0\xbb", /* кл */
        "tab\tkey",
        "emoji\xf0\x9f\x98\x80",
        "semi;colon",
        "' OR '1'='1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *key = bad[i] ? bad[i] : k65;
        /* Alone, and as the second of two (the first one valid). */
        r = add_tags(g_c.key, id, (const char *const[]){key},
                     (const char *const[]){"v"}, 1);
        itest_assert_error_contains(r, 422, "tag_keys[0]");
        expect_unchanged(r, id, &m);
        itest_resp_free(r);
        r = add_tags(g_c.key, id, (const char *const[]){"fine", key},
                     (const char *const[]){"v", "w"}, 2);
        itest_assert_error_contains(r, 422, "tag_keys[1]");
        expect_unchanged(r, id, &m);
        itest_resp_free(r);
    }
    /* The rule is in the sentence. */
    r = add_tags(g_c.key, id, (const char *const[]){"a b"},
                 (const char *const[]){"v"}, 1);
    itest_assert_error_contains(r, 422, "64");
    itest_resp_free(r);
    r = add_tags(g_c.key, id, (const char *const[]){k65},
                 (const char *const[]){"v"}, 1);
    itest_assert_error_contains(r, 422, "64");
    itest_resp_free(r);
    free(k64);
    free(k65);
    mark_free(&m);
}

static void
add_value_length(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    char *v1024 = itest_repeat("v", 1024);
    char *v1025 = itest_repeat("v", 1025);
    char *e1024 = itest_repeat("\xf0\x9f\x98\x80", 1024); /* 😀: 4 bytes each */
    char *e1025 = itest_repeat("\xc3\xa9", 1025);         /* é: 2 bytes each */

    add_ok(id, (const char *const[]){"ascii", "emoji", "empty"},
           (const char *const[]){v1024, e1024, ""}, 3);
    expect_db_tags(NULL, id,
                   json_pack("{s:s, s:s, s:s}", "ascii", v1024, "emoji", e1024,
                             "empty", ""));

    struct mark m;
    mark_take(id, &m);
    struct itest_resp *r = add_tags(g_c.key, id, (const char *const[]){"long"},
                                    (const char *const[]){v1025}, 1);
    itest_assert_error_contains(r, 422, "tag_values[0]");
    itest_assert_error_contains(r, 422, "1024");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = add_tags(g_c.key, id, (const char *const[]){"ok", "long"},
                 (const char *const[]){"fine", e1025}, 2);
    itest_assert_error_contains(r, 422, "tag_values[1]");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* The same limit on PATCH /customer/tag-value. */
    r = set_value(g_c.key, id, "ascii", v1025);
    itest_assert_error_contains(r, 422, "new_tag_value");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = set_value(g_c.key, id, "ascii", e1025);
    itest_assert_error_contains(r, 422, "new_tag_value");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = set_value(g_c.key, id, "empty", e1024);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = get_value(g_c.key, id, "empty");
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", e1024);
    itest_resp_free(r);

    free(v1024);
    free(v1025);
    free(e1024);
    free(e1025);
    mark_free(&m);
}

/* keys k000..k(n-1) offset by `from`, values "v<i>"; owned arrays. */
static void
numbered(size_t from, size_t n, char ***keys, char ***values)
{
    *keys = calloc(n, sizeof(char *));
    *values = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        (*keys)[i] = malloc(16);
        (*values)[i] = malloc(16);
        snprintf((*keys)[i], 16, "k%03zu", from + i);
        snprintf((*values)[i], 16, "v%zu", from + i);
    }
}

static void
numbered_free(char **keys, char **values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
}

static void
add_more_than_100_tags_422(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    char **k, **v;

    numbered(0, 60, &k, &v);
    add_ok(id, (const char *const *)k, (const char *const *)v, 60);
    numbered_free(k, v, 60);

    /* 60 + 41 = 101: refused, nothing of the 41 written. */
    struct mark m;
    mark_take(id, &m);
    numbered(60, 41, &k, &v);
    struct itest_resp *r = add_tags(g_c.key, id, (const char *const *)k,
                                    (const char *const *)v, 41);
    itest_assert_error_contains(r, 422, "100");
    expect_unchanged(r, id, &m);
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM customer_tags WHERE "
                                "customer_id = $1",
                                id) == 60,
                 "the customer must still have 60 tags");
    itest_resp_free(r);
    numbered_free(k, v, 41);

    /* 60 + 40 = 100: exactly the limit is fine. */
    numbered(60, 40, &k, &v);
    add_ok(id, (const char *const *)k, (const char *const *)v, 40);
    numbered_free(k, v, 40);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_tags WHERE "
                                "customer_id = $1",
                                id) == 100,
                 "the customer must have 100 tags");

    /* One more: refused. */
    mark_free(&m);
    mark_take(id, &m);
    r = add_tags(g_c.key, id, (const char *const[]){"one_more"},
                 (const char *const[]){"x"}, 1);
    itest_assert_error_contains(r, 422, "100");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* Renaming and changing values at the limit is fine; after a delete
     * there is room for one again. */
    r = rename_key(g_c.key, id, "k000", "k000.renamed");
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = delete_tag(g_c.key, id, "k001");
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    add_one(id, "one_more", "x");
    mark_free(&m);

    /* 101 in a single request on a fresh customer: refused too. */
    char fresh[37];
    itest_make_customer(g_c.key, "tags", fresh);
    mark_take(fresh, &m);
    numbered(0, 101, &k, &v);
    r = add_tags(g_c.key, fresh, (const char *const *)k, (const char *const *)v,
                 101);
    itest_assert_error_contains(r, 422, "100");
    expect_unchanged(r, fresh, &m);
    itest_resp_free(r);
    numbered_free(k, v, 101);
    mark_free(&m);
}

static void
add_unknown_and_foreign_customer_404(void **state)
{
    (void)state;
    char missing[37], theirs[37];
    itest_random_uuid(missing);
    itest_make_customer(g_c.key, "tags", theirs);
    add_one(theirs, "mine", "owner's");
    struct mark m;
    mark_take(theirs, &m);

    struct itest_resp *rm =
        add_tags(g_c.key, missing, (const char *const[]){"a"},
                 (const char *const[]){"1"}, 1);
    struct itest_resp *rt =
        add_tags(g_o.key, theirs, (const char *const[]){"a"},
                 (const char *const[]){"1"}, 1);
    expect_404_like_missing(rt, theirs, rm, missing);
    expect_unchanged(rt, theirs, &m);
    itest_expect(rm,
                 itest_sql_long("SELECT count(*) FROM customer_tags WHERE "
                                "customer_id = $1",
                                missing) == 0,
                 "no tag for a missing customer");
    itest_resp_free(rm);
    itest_resp_free(rt);

    /* Even a key that exists on their customer answers 404, not 409: the
     * outsider must learn nothing. */
    rt = add_tags(g_o.key, theirs, (const char *const[]){"mine"},
                  (const char *const[]){"x"}, 1);
    itest_assert_error(rt, 404, NULL);
    expect_unchanged(rt, theirs, &m);
    itest_resp_free(rt);

    /* A deleted customer has no tags to add to. */
    char gone[37], body[96];
    itest_make_customer(g_c.key, "tags", gone);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", gone);
    struct itest_resp *r =
        itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = add_tags(g_c.key, gone, (const char *const[]){"a"},
                 (const char *const[]){"1"}, 1);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    mark_free(&m);
}

/* ------------------------------------------ verbatim text, byte order */

static void
values_stored_verbatim(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    static const char *const keys[] = {
        "unicode",  "nfd",       "nfc",        "sql.drop",
        "sql-or",   "sql_quote", "percent",    "json",
        "controls", "spaces",    "zero.width", "bom",
        "empty",    "backslash", "html",       "dollar",
    };
    static const char *const values[] = {
        "Z\xc3\xbcrich \xe2\x80\x93 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
        "\xf0\x9f\x98\x80 \xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a",
        "e\xcc\x81", /* e + combining acute: kept, not normalised */
        "\xc3\xa9",  /* é precomposed */
        "'; DROP TABLE customer_tags; --",
        "' OR '1'='1",
        "Robert'); DELETE FROM customers WHERE ('1'='1",
        "100% _wild_ %s %n %%",
        "{\"json\": [1, 2, {\"a\": null}]}",
        "tab\there\nnew line\r\nCRLF\x01\x1f",
        "  leading and trailing  ",
        "zero\xe2\x80\x8bwidth",
        "\xef\xbb\xbf"
        "bom",
        "",
        "back\\slash \\\\ \\u0041 \\n",
        "<script>alert(1)</script>&amp;",
        "$1 $$ $f$ ::text",
    };
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    add_ok(id, keys, values, n);

    /* Stored byte for byte. */
    for (size_t i = 0; i < n; i++) {
        char *stored = itest_sql_value(
            "SELECT tag_value FROM customer_tags WHERE customer_id = $1 AND "
            "tag_key = $2",
            id, keys[i]);
        itest_expect(NULL, stored && strcmp(stored, values[i]) == 0,
                     "stored value of %s must be byte for byte [%s], is [%s]",
                     keys[i], values[i], stored ? stored : "(none)");
        free(stored);
    }
    itest_expect(NULL,
                 itest_sql_long0("SELECT count(*) FROM information_schema."
                                 "tables WHERE table_name IN ('customers', "
                                 "'customer_tags')") == 2,
                 "the SQL-looking values must not have been executed");

    /* GET /customer/tag-value (query and JSON-body forms) and GET
     * /customer/data return them byte for byte. */
    for (size_t i = 0; i < n; i++) {
        struct itest_resp *r = get_value(g_c.key, id, keys[i]);
        itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value",
                          values[i]);
        itest_resp_free(r);
        char *body = body_of(id, "tag_key", keys[i], NULL, NULL);
        r = send_body("GET", "/customer/tag-value", g_c.key, body);
        itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value",
                          values[i]);
        itest_resp_free(r);
    }
    struct itest_resp *g;
    json_t *t = get_customer_tags(id, &g);
    json_t *want = tags_obj(keys, values, n);
    expect_json_equal(g, t, want, "GET /customer/data tags");
    itest_resp_free(g);

    /* And the event's payload carries them verbatim too. */
    char *payload = itest_sql_value(
        "SELECT payload::text FROM customer_events WHERE customer_id = $1 "
        "AND event_type = 'customer_tag_change' ORDER BY sequence DESC "
        "LIMIT 1",
        id);
    json_t *p = json_loads(payload ? payload : "", 0, NULL);
    expect_json_equal(NULL, json_object_get(json_object_get(p, "data"), "tags"),
                      want, "payload.data.tags");
    json_decref(p);
    free(payload);

    /* PATCH /customer/tag-value stores verbatim too. */
    static const char *const tricky = "\"); TRUNCATE customer_events; --"
                                      " \xf0\x9f\x92\xa3";
    struct itest_resp *r = set_value(g_c.key, id, "empty", tricky);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = get_value(g_c.key, id, "empty");
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", tricky);
    itest_resp_free(r);
    json_decref(want);
}

static void
get_customer_orders_tags_by_byte_value(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    /* Inserted out of order; byte order is - . 0 9 B Z _ a b z. */
    static const char *const keys[] = {"b", "B", "a", "_",  "z",  "Z", "-",
                                       ".", "9", "0", "ba", "aB", "Ab"};
    static const char *const values[] = {"1", "2", "3",  "4",  "5",  "6", "7",
                                         "8", "9", "10", "11", "12", "13"};
    static const char *const sorted[] = {"-", ".", "0",  "9", "Ab", "B", "Z",
                                         "_", "a", "aB", "b", "ba", "z"};
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    /* Two requests, so the order is not just the order of one insert. */
    add_ok(id, keys, values, 6);
    add_ok(id, keys + 6, values + 6, n - 6);

    struct itest_resp *g;
    json_t *t = get_customer_tags(id, &g);
    itest_expect(g, json_object_size(t) == n, "%zu tags expected", n);
    size_t i = 0;
    for (void *it = json_object_iter(t); it != NULL;
         it = json_object_iter_next(t, it), i++) {
        const char *k = json_object_iter_key(it);
        itest_expect(g, i < n && strcmp(k, sorted[i]) == 0,
                     "tag %zu must be \"%s\" (byte order), is \"%s\"", i,
                     i < n ? sorted[i] : "(none)", k);
    }
    /* The raw text has them in that order too ("B" before "a" before "b"). */
    const char *pb = strstr(g->body, "\"B\":");
    const char *pa = strstr(g->body, "\"a\":");
    const char *pl = strstr(g->body, "\"b\":");
    itest_expect(g, pb && pa && pl && pb < pa && pa < pl,
                 "the body must list \"B\" < \"a\" < \"b\"");
    itest_resp_free(g);

    /* The administrator sees the same order. */
    g = itest_requestf("GET", itest_admin_key(), NULL,
                       "/customer/data?customer_id=%s", id);
    t = json_object_get(itest_assert_envelope(g, 200), "tags");
    i = 0;
    for (void *it = json_object_iter(t); it != NULL;
         it = json_object_iter_next(t, it), i++)
        itest_expect(g,
                     i < n && strcmp(json_object_iter_key(it), sorted[i]) == 0,
                     "admin: tag %zu out of byte order", i);
    itest_resp_free(g);
}

/* ------------------------------------- POST /customer/data with tags */

static void
create_customer_with_tags(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "with-tags");
    json_t *tags = json_pack("{s:s, s:s, s:s, s:s}", "b", "bee", "B", "Bee",
                             "a.x-y_z", "\xe2\x82\xac 5", "empty", "");
    char *body =
        itest_json_text(json_pack("{s:s, s:O}", "name", name, "tags", tags));
    char *clock = db_clock();
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_keys(r, d, "customer_id", "name", "status", "created_at",
                      "event_id");
    const char *id = itest_jstr(d, "customer_id");
    expect_db_tags(r, id, json_incref(tags));
    itest_expect(r, tag_updated_after(id, "b", clock),
                 "customer_tags.updated_at must be set");

    /* GET returns them, in byte order. */
    struct itest_resp *g;
    json_t *t = get_customer_tags(id, &g);
    expect_json_equal(g, t, tags, "GET /customer/data tags");
    const char *first = json_object_iter_key(json_object_iter(t));
    itest_expect(g, first && strcmp(first, "B") == 0,
                 "\"B\" must come first, got %s", first ? first : "(none)");
    itest_resp_free(g);

    /* One event, a customer_creation carrying the tags. */
    itest_expect(r, itest_count_events(id) == 1, "exactly one event");
    char *payload = itest_sql_value(
        "SELECT payload::text FROM customer_events WHERE customer_id = $1", id);
    json_t *p = json_loads(payload ? payload : "", 0, NULL);
    itest_assert_jstr(r, p, "event_type", "customer_creation");
    expect_json_equal(r, json_object_get(json_object_get(p, "data"), "tags"),
                      tags, "creation payload.data.tags");
    json_decref(p);
    free(payload);

    /* The tags are ordinary tags: the tag endpoints see them. */
    struct itest_resp *v = get_value(g_c.key, id, "a.x-y_z");
    itest_assert_jstr(v, itest_assert_envelope(v, 200), "tag_value",
                      "\xe2\x82\xac 5");
    itest_resp_free(v);
    v = add_tags(g_c.key, id, (const char *const[]){"b"},
                 (const char *const[]){"again"}, 1);
    itest_assert_error(v, 409, NULL);
    itest_resp_free(v);

    free(clock);
    json_decref(tags);
    itest_resp_free(r);

    /* An empty object is no tags. */
    itest_unique(name, sizeof(name), "empty-tags");
    body = itest_json_text(json_pack("{s:s, s:{}}", "name", name, "tags"));
    r = itest_request("POST", "/customer/data", g_c.key, body, NULL);
    free(body);
    d = itest_assert_envelope(r, 201);
    g = NULL;
    t = get_customer_tags(itest_jstr(d, "customer_id"), &g);
    itest_expect(g, json_object_size(t) == 0, "tags must be {}");
    itest_resp_free(g);
    itest_resp_free(r);
}

static void
create_customer_tags_rejected(void **state)
{
    (void)state;
    char marker[96];
    itest_unique(marker, sizeof(marker), "badtags");
    char *v1025 = itest_repeat("x", 1025);
    char *k65 = itest_repeat("k", 65);

    json_t *too_many = json_object();
    for (int i = 0; i < 101; i++) {
        char k[16];
        snprintf(k, sizeof(k), "t%03d", i);
        json_object_set_new(too_many, k, json_string("v"));
    }
    json_t *bad_key = json_pack("{s:s}", "a b", "v");
    json_t *long_key = json_object();
    json_object_set_new(long_key, k65, json_string("v"));
    json_t *long_value = json_pack("{s:s}", "k", v1025);
    json_t *int_value = json_pack("{s:i}", "k", 5);
    json_t *null_value = json_pack("{s:n}", "k");
    json_t *arr = json_pack("[s]", "k");
    json_t *str = json_string("k=v");
    json_t *cases[] = {too_many,  bad_key,    long_key, long_value,
                       int_value, null_value, arr,      str};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = itest_json_text(
            json_pack("{s:s, s:o}", "name", marker, "tags", cases[i]));
        struct itest_resp *r =
            itest_request("POST", "/customer/data", g_c.key, body, NULL);
        free(body);
        itest_assert_error_contains(r, 422, "tags");
        itest_expect(r,
                     itest_sql_long("SELECT count(*) FROM customers WHERE "
                                    "name = $1",
                                    marker) == 0,
                     "a rejected create must write no customer");
        itest_resp_free(r);
    }
    /* Exactly 100 is fine. */
    json_t *hundred = json_object();
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "t%03d", i);
        json_object_set_new(hundred, k, json_string("v"));
    }
    char *body = itest_json_text(
        json_pack("{s:s, s:o}", "name", marker, "tags", hundred));
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM customer_tags WHERE "
                                "customer_id = $1",
                                itest_jstr(d, "customer_id")) == 100,
                 "100 tags stored");
    itest_resp_free(r);

    /* A key repeated in the object is not JSON we accept: 400. */
    char raw[256];
    snprintf(raw, sizeof(raw),
             "{\"name\":\"%s-dup\",\"tags\":{\"k\":\"1\",\"k\":\"2\"}}",
             marker);
    r = itest_request("POST", "/customer/data", g_c.key, raw, NULL);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);
    free(v1025);
    free(k65);
}

/* ------------------------------------------ GET /customer/tag-value */

static void
get_value_forms_and_404s(void **state)
{
    (void)state;
    char id[37], other[37], missing[37];
    itest_make_customer(g_c.key, "tags", id);
    itest_make_customer(g_c.key, "tags", other);
    itest_random_uuid(missing);
    add_ok(id, (const char *const[]){"k.1", "k-2"},
           (const char *const[]){"one", "two"}, 2);
    add_one(other, "k.1", "other's");

    /* Query string, upper-case UUID answered from the right customer. */
    char upper[37];
    memcpy(upper, id, 37);
    itest_upper(upper);
    struct itest_resp *r = get_value(g_c.key, upper, "k.1");
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "tag_value");
    itest_assert_jstr(r, d, "tag_value", "one");
    itest_resp_free(r);

    /* JSON body when the query string is empty. */
    r = send_body("GET", "/customer/tag-value", g_c.key,
                  body_of(id, "tag_key", "k-2", NULL, NULL));
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", "two");
    itest_resp_free(r);

    /* Both: the query string wins. */
    char path[200];
    snprintf(path, sizeof(path),
             "/customer/tag-value?customer_id=%s&tag_key=k.1", other);
    char *body = body_of(id, "tag_key", "k-2", NULL, NULL);
    r = send_body("GET", path, g_c.key, body);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", "other's");
    itest_resp_free(r);

    /* Keys are case-sensitive. */
    r = get_value(g_c.key, id, "K.1");
    itest_assert_error_contains(r, 404, "K.1");
    itest_resp_free(r);

    /* 404 tag vs 404 customer: both 404, told apart in the sentence. */
    struct itest_resp *rtag = get_value(g_c.key, id, "absent");
    itest_assert_error_contains(rtag, 404, "absent");
    struct itest_resp *rcus = get_value(g_c.key, missing, "k.1");
    itest_assert_error_contains(rcus, 404, missing);
    itest_expect(rcus,
                 strstr(itest_desc(rcus), "k.1") == NULL ||
                     strstr(itest_desc(rcus), "ustomer") != NULL,
                 "a missing customer must be reported as the customer");
    char *a = itest_desc_without(rtag, id, NULL);
    char *b = itest_desc_without(rcus, missing, NULL);
    itest_expect(rtag, strcmp(a, b) != 0,
                 "a missing tag and a missing customer must be told apart "
                 "(\"%s\" vs \"%s\")",
                 a, b);
    free(a);
    free(b);
    itest_resp_free(rtag);
    itest_resp_free(rcus);

    /* Another consumer: 404 worded like a missing customer, for an existing
     * tag and a missing one alike. */
    struct itest_resp *rm = get_value(g_o.key, missing, "k.1");
    struct itest_resp *rt = get_value(g_o.key, id, "k.1");
    expect_404_like_missing(rt, id, rm, missing);
    itest_resp_free(rt);
    rt = get_value(g_o.key, id, "absent");
    expect_404_like_missing(rt, id, rm, missing);
    itest_resp_free(rt);
    itest_resp_free(rm);

    /* The administrator reads anyone's. */
    r = get_value(itest_admin_key(), id, "k.1");
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", "one");
    itest_resp_free(r);

    /* 422s: missing fields, bad key, bad UUID, unknown or repeated
     * parameters; validation before existence. */
    static const char *const bad_queries[] = {
        "",
        "?customer_id=@ID@",
        "?tag_key=k.1",
        "?customer_id=@ID@&tag_key=a%20b",
        "?customer_id=@ID@&tag_key=",
        "?customer_id=abc&tag_key=k.1",
        "?customer_id=@ID@&tag_key=k.1&tag_value=one",
        "?customer_id=@ID@&tag_key=k.1&tag_key=k-2",
    };
    for (size_t i = 0; i < sizeof(bad_queries) / sizeof(bad_queries[0]); i++) {
        char q[256], p2[300];
        itest_fill_id(q, sizeof(q), bad_queries[i], missing);
        snprintf(p2, sizeof(p2), "/customer/tag-value%s", q);
        r = itest_request("GET", p2, g_c.key, NULL, NULL);
        itest_assert_error(r, 422, NULL);
        itest_resp_free(r);
    }
    r = itest_request("GET", "/customer/tag-value", g_c.key, NULL, NULL);
    itest_assert_error(r, 422,
                       "Missing required field \"customer_id\"; Missing "
                       "required field \"tag_key\"");
    itest_resp_free(r);
    r = itest_requestf("GET", g_c.key, NULL,
                       "/customer/tag-value?customer_id=%s&foo=1&tag_key=k.1",
                       id);
    itest_assert_error(r, 422, "Unknown field \"foo\"");
    itest_resp_free(r);
}

/* ------------------------------------------------ DELETE /customer/tag */

static void
delete_tag_ok_and_404(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    add_ok(id, (const char *const[]){"gone.soon", "stays", "by-query"},
           (const char *const[]){"x", "y", "z"}, 3);

    struct mark m;
    mark_take(id, &m);
    struct itest_resp *r = delete_tag(g_c.key, id, "gone.soon");
    json_t *d = itest_assert_envelope(r, 200);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
    expect_db_tags(r, id,
                   json_pack("{s:s, s:s}", "stays", "y", "by-query", "z"));
    json_t *p;
    json_t *data = expect_tag_event(r, id, &m, "tag_deleted",
                                    "DELETE: /customer/tag", g_c.id, &p);
    itest_assert_jstr(r, data, "tag_key", "gone.soon");
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);

    /* By query string (no body). */
    mark_take(id, &m);
    r = itest_requestf("DELETE", g_c.key, NULL,
                       "/customer/tag?customer_id=%s&tag_key=by-query", id);
    itest_assert_envelope(r, 200);
    expect_db_tags(r, id, json_pack("{s:s}", "stays", "y"));
    data = expect_tag_event(r, id, &m, "tag_deleted", "DELETE: /customer/tag",
                            g_c.id, &p);
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);

    /* Unknown tag (and the one just deleted): 404, nothing written. */
    mark_take(id, &m);
    static const char *const absent[] = {"gone.soon", "never", "STAYS"};
    for (size_t i = 0; i < 3; i++) {
        r = delete_tag(g_c.key, id, absent[i]);
        itest_assert_error_contains(r, 404, absent[i]);
        expect_unchanged(r, id, &m);
        itest_resp_free(r);
    }

    /* Unknown and foreign customers: 404 alike. */
    char missing[37];
    itest_random_uuid(missing);
    struct itest_resp *rm = delete_tag(g_o.key, missing, "stays");
    struct itest_resp *rt = delete_tag(g_o.key, id, "stays");
    expect_404_like_missing(rt, id, rm, missing);
    expect_unchanged(rt, id, &m);
    itest_resp_free(rm);
    itest_resp_free(rt);
    r = delete_tag(g_c.key, missing, "stays");
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);

    /* 422s, nothing deleted. */
    r = itest_request("DELETE", "/customer/tag", g_c.key, NULL, NULL);
    itest_assert_error(r, 422,
                       "Missing required field \"customer_id\"; Missing "
                       "required field \"tag_key\"");
    itest_resp_free(r);
    r = send_body("DELETE", "/customer/tag", g_c.key,
                  body_of(id, "tag_key", "a b", NULL, NULL));
    itest_assert_error_contains(r, 422, "tag_key");
    itest_resp_free(r);
    r = send_body("DELETE", "/customer/tag", g_c.key,
                  body_of(id, "tag_key", "stays", "tag_value", "y"));
    itest_assert_error(r, 422, "Unknown field \"tag_value\"");
    itest_resp_free(r);
    expect_unchanged(NULL, id, &m);
    mark_free(&m);

    /* The last tag: tags become {} (and the event says so). */
    mark_take(id, &m);
    r = delete_tag(g_c.key, id, "stays");
    itest_assert_envelope(r, 200);
    data = expect_tag_event(r, id, &m, "tag_deleted", "DELETE: /customer/tag",
                            g_c.id, &p);
    json_t *tags = json_object_get(data, "tags");
    itest_expect(r, json_is_object(tags) && json_object_size(tags) == 0,
                 "data.tags must be {} after the last delete");
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);
}

static void
delete_tag_body_wins_over_query(void **state)
{
    (void)state;
    char id[37], path[200];
    itest_make_customer(g_c.key, "tags", id);
    add_ok(id, (const char *const[]){"q", "b"}, (const char *const[]){"1", "2"},
           2);
    snprintf(path, sizeof(path), "/customer/tag?customer_id=%s&tag_key=q", id);
    struct itest_resp *r = send_body("DELETE", path, g_c.key,
                                     body_of(id, "tag_key", "b", NULL, NULL));
    itest_assert_envelope(r, 200);
    expect_db_tags(r, id, json_pack("{s:s}", "q", "1"));
    itest_resp_free(r);
}

/* ------------------------------------------- PATCH /customer/tag-key */

static void
rename_key_ok(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    add_ok(id, (const char *const[]){"old", "other"},
           (const char *const[]){"value \xe2\x9c\x93", "o"}, 2);
    char *created = itest_sql_value(
        "SELECT created_at::text FROM customer_tags WHERE customer_id = $1 "
        "AND tag_key = 'old'",
        id);
    char *tag_updated = itest_sql_value(
        "SELECT fintegrate_ts(updated_at) FROM customer_tags WHERE "
        "customer_id = $1 AND tag_key = 'old'",
        id);

    struct mark m;
    mark_take(id, &m);
    struct itest_resp *r = rename_key(g_c.key, id, "old", "new.key-1_x");
    json_t *d = itest_assert_envelope(r, 200);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
    expect_db_tags(r, id,
                   json_pack("{s:s, s:s}", "new.key-1_x", "value \xe2\x9c\x93",
                             "other", "o"));
    json_t *p;
    json_t *data = expect_tag_event(r, id, &m, "tag_key_changed",
                                    "PATCH: /customer/tag-key", g_c.id, &p);
    itest_assert_jstr(r, data, "tag_key", "old");
    itest_assert_jstr(r, data, "new_tag_key", "new.key-1_x");
    json_decref(p);
    itest_expect(r, tag_updated_after(id, "new.key-1_x", m.clock),
                 "customer_tags.updated_at must be set by the rename");
    itest_expect(r, tag_updated_after(id, "new.key-1_x", tag_updated),
                 "customer_tags.updated_at must move forward from %s",
                 tag_updated);
    itest_expect(r, !tag_updated_after(id, "other", m.clock),
                 "the other tag must not be touched");
    char *created_after = itest_sql_value(
        "SELECT created_at::text FROM customer_tags WHERE customer_id = $1 "
        "AND tag_key = 'new.key-1_x'",
        id);
    itest_expect(
        r, created && created_after && strcmp(created, created_after) == 0,
        "a rename keeps the tag's created_at");
    free(created_after);
    itest_resp_free(r);

    r = get_value(g_c.key, id, "old");
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    r = get_value(g_c.key, id, "new.key-1_x");
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value",
                      "value \xe2\x9c\x93");
    itest_resp_free(r);

    /* Renaming to a key differing only in case is a different key. */
    mark_free(&m);
    mark_take(id, &m);
    r = rename_key(g_c.key, id, "other", "OTHER");
    itest_assert_envelope(r, 200);
    data = expect_tag_event(r, id, &m, "tag_key_changed",
                            "PATCH: /customer/tag-key", g_c.id, &p);
    json_decref(p);
    itest_resp_free(r);

    free(created);
    free(tag_updated);
    mark_free(&m);
}

static void
rename_key_errors(void **state)
{
    (void)state;
    char id[37], want[200];
    itest_make_customer(g_c.key, "tags", id);
    add_ok(id, (const char *const[]){"a", "b"}, (const char *const[]){"1", "2"},
           2);
    struct mark m;
    mark_take(id, &m);

    /* 409: the new key exists. */
    struct itest_resp *r = rename_key(g_c.key, id, "a", "b");
    snprintf(want, sizeof(want), "Tag \"b\" already exists on customer %s", id);
    itest_assert_error(r, 409, want);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* 409: the same key. */
    r = rename_key(g_c.key, id, "a", "a");
    itest_assert_error(r, 409, NULL);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* 404: no such tag (existence before state: even when the new key is
     * taken). */
    r = rename_key(g_c.key, id, "absent", "fresh");
    itest_assert_error_contains(r, 404, "absent");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = rename_key(g_c.key, id, "absent", "b");
    itest_assert_error_contains(r, 404, "absent");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* 404: missing and foreign customers, alike. */
    char missing[37];
    itest_random_uuid(missing);
    struct itest_resp *rm = rename_key(g_o.key, missing, "a", "c");
    struct itest_resp *rt = rename_key(g_o.key, id, "a", "c");
    expect_404_like_missing(rt, id, rm, missing);
    expect_unchanged(rt, id, &m);
    itest_resp_free(rt);
    rt = rename_key(g_o.key, id, "a", "b"); /* would be 409 for the owner */
    itest_assert_error(rt, 404, NULL);
    itest_resp_free(rt);
    itest_resp_free(rm);

    /* 422s. */
    char *k65 = itest_repeat("n", 65);
    static const char *const bad_new[] = {NULL, "", "a b", "n\xc3\xa9w"};
    for (size_t i = 0; i < 4; i++) {
        r = rename_key(g_c.key, id, "a", bad_new[i] ? bad_new[i] : k65);
        itest_assert_error_contains(r, 422, "new_tag_key");
        expect_unchanged(r, id, &m);
        itest_resp_free(r);
    }
    free(k65);
    r = send_body("PATCH", "/customer/tag-key", g_c.key,
                  body_of(id, "tag_key", "a", NULL, NULL));
    itest_assert_error(r, 422, "Missing required field \"new_tag_key\"");
    itest_resp_free(r);
    r = send_body("PATCH", "/customer/tag-key", g_c.key,
                  body_of(id, "tag_key", "a", "new_tag_value", "c"));
    itest_assert_error(r, 422,
                       "Unknown field \"new_tag_value\"; Missing required "
                       "field \"new_tag_key\"");
    itest_resp_free(r);
    r = itest_request("PATCH", "/customer/tag-key", g_c.key, "", NULL);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);
    expect_unchanged(NULL, id, &m);
    mark_free(&m);
}

/* ----------------------------------------- PATCH /customer/tag-value */

static void
set_value_ok_same_value_and_errors(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    add_ok(id, (const char *const[]){"k", "untouched"},
           (const char *const[]){"before", "u"}, 2);
    char *tag_updated = itest_sql_value(
        "SELECT fintegrate_ts(updated_at) FROM customer_tags WHERE "
        "customer_id = $1 AND tag_key = 'k'",
        id);

    struct mark m;
    mark_take(id, &m);
    struct itest_resp *r = set_value(g_c.key, id, "k", "after");
    json_t *d = itest_assert_envelope(r, 200);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
    expect_db_tags(r, id,
                   json_pack("{s:s, s:s}", "k", "after", "untouched", "u"));
    json_t *p;
    json_t *data = expect_tag_event(r, id, &m, "tag_value_changed",
                                    "PATCH: /customer/tag-value", g_c.id, &p);
    itest_assert_jstr(r, data, "tag_key", "k");
    json_decref(p);
    itest_expect(r, tag_updated_after(id, "k", m.clock),
                 "customer_tags.updated_at must be set");
    itest_expect(r, tag_updated_after(id, "k", tag_updated),
                 "customer_tags.updated_at must move forward");
    itest_expect(r, !tag_updated_after(id, "untouched", m.clock),
                 "the other tag must not be touched");
    itest_resp_free(r);
    mark_free(&m);

    /* The same value again: 200, and still an event and a fresh
     * updated_at. */
    free(tag_updated);
    tag_updated = itest_sql_value(
        "SELECT fintegrate_ts(updated_at) FROM customer_tags WHERE "
        "customer_id = $1 AND tag_key = 'k'",
        id);
    mark_take(id, &m);
    r = set_value(g_c.key, id, "k", "after");
    itest_assert_envelope(r, 200);
    data = expect_tag_event(r, id, &m, "tag_value_changed",
                            "PATCH: /customer/tag-value", g_c.id, &p);
    json_decref(p);
    itest_expect(r, tag_updated_after(id, "k", tag_updated),
                 "customer_tags.updated_at must move on a same-value PATCH");
    itest_resp_free(r);
    mark_free(&m);

    /* To the empty string. */
    mark_take(id, &m);
    r = set_value(g_c.key, id, "k", "");
    itest_assert_envelope(r, 200);
    data = expect_tag_event(r, id, &m, "tag_value_changed",
                            "PATCH: /customer/tag-value", g_c.id, &p);
    json_decref(p);
    itest_resp_free(r);
    r = get_value(g_c.key, id, "k");
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", "");
    itest_resp_free(r);
    mark_free(&m);

    /* 404 tag; 404 missing and foreign customer alike; nothing written. */
    mark_take(id, &m);
    r = set_value(g_c.key, id, "absent", "x");
    itest_assert_error_contains(r, 404, "absent");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    char missing[37];
    itest_random_uuid(missing);
    struct itest_resp *rm = set_value(g_o.key, missing, "k", "x");
    struct itest_resp *rt = set_value(g_o.key, id, "k", "x");
    expect_404_like_missing(rt, id, rm, missing);
    expect_unchanged(rt, id, &m);
    itest_resp_free(rm);
    itest_resp_free(rt);

    /* 422s. */
    r = send_body("PATCH", "/customer/tag-value", g_c.key,
                  body_of(id, "tag_key", "k", NULL, NULL));
    itest_assert_error(r, 422, "Missing required field \"new_tag_value\"");
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    char body[200];
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"tag_key\":\"k\",\"new_tag_value\":5}",
             id);
    r = itest_request("PATCH", "/customer/tag-value", g_c.key, body, NULL);
    itest_assert_error_contains(r, 422, "new_tag_value");
    itest_resp_free(r);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"tag_key\":\"k\","
             "\"new_tag_value\":\"a\\u0000b\"}",
             id);
    r = itest_request("PATCH", "/customer/tag-value", g_c.key, body, NULL);
    itest_assert_error_contains(r, 422, "NUL");
    itest_resp_free(r);
    r = send_body("PATCH", "/customer/tag-value", g_c.key,
                  body_of(id, "tag_key", "k", "tag_value", "x"));
    itest_assert_error_contains(r, 422, "Unknown field \"tag_value\"");
    itest_resp_free(r);
    r = set_value(g_c.key, id, "bad key", "x");
    itest_assert_error_contains(r, 422, "tag_key");
    itest_resp_free(r);
    expect_unchanged(NULL, id, &m);
    free(tag_updated);
    mark_free(&m);
}

/* ------------------------------------------------ tenancy, administrator */

static void
administrator_changes_tags_event_keeps_owner(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    const char *admin = itest_admin_key();
    struct mark m;
    json_t *p;

    mark_take(id, &m);
    struct itest_resp *r = add_tags(admin, id, (const char *const[]){"adm"},
                                    (const char *const[]){"1"}, 1);
    expect_added(r);
    expect_tag_event(r, id, &m, "tags_added", "POST: /customer/tag", g_c.id,
                     &p);
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);

    mark_take(id, &m);
    r = set_value(admin, id, "adm", "2");
    itest_assert_envelope(r, 200);
    expect_tag_event(r, id, &m, "tag_value_changed",
                     "PATCH: /customer/tag-value", g_c.id, &p);
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);

    mark_take(id, &m);
    r = rename_key(admin, id, "adm", "adm2");
    itest_assert_envelope(r, 200);
    expect_tag_event(r, id, &m, "tag_key_changed", "PATCH: /customer/tag-key",
                     g_c.id, &p);
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);

    mark_take(id, &m);
    r = delete_tag(admin, id, "adm2");
    itest_assert_envelope(r, 200);
    expect_tag_event(r, id, &m, "tag_deleted", "DELETE: /customer/tag", g_c.id,
                     &p);
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);

    /* The owner sees the outcome; the outsider still sees nothing. */
    r = get_value(g_c.key, id, "adm2");
    itest_assert_error_contains(r, 404, "adm2");
    itest_resp_free(r);
}

/* -------------------------------- interrupted writes leave nothing */

/*
 * Test-only triggers: a customer_tags row whose value starts with
 * "itest-tags-poison" fails its INSERT/UPDATE (so a multi-row insert is
 * interrupted in the middle of its statement), and an event of a customer
 * listed in itest_tags_poison_customers fails its INSERT (so the tag change
 * itself went through and only its event is refused).
 */
static const char *const poison_create[] = {
    "CREATE TABLE IF NOT EXISTS itest_tags_poison_customers (customer_id "
    "uuid PRIMARY KEY)",
    "CREATE OR REPLACE FUNCTION itest_tags_poison() RETURNS trigger "
    "LANGUAGE plpgsql AS $f$ BEGIN "
    "IF TG_TABLE_NAME = 'customer_tags' THEN "
    "  IF NEW.tag_value LIKE 'itest-tags-poison%' THEN "
    "    RAISE EXCEPTION 'itest poison trigger refused this tag'; "
    "  END IF; "
    "ELSIF EXISTS (SELECT 1 FROM itest_tags_poison_customers p "
    "              WHERE p.customer_id = NEW.customer_id) THEN "
    "  RAISE EXCEPTION 'itest poison trigger refused this event'; "
    "END IF; "
    "RETURN NEW; END $f$",
    "DROP TRIGGER IF EXISTS itest_tags_poison_tag ON customer_tags",
    "CREATE TRIGGER itest_tags_poison_tag BEFORE INSERT OR UPDATE ON "
    "customer_tags FOR EACH ROW EXECUTE FUNCTION itest_tags_poison()",
    "DROP TRIGGER IF EXISTS itest_tags_poison_event ON customer_events",
    "CREATE TRIGGER itest_tags_poison_event BEFORE INSERT ON "
    "customer_events FOR EACH ROW EXECUTE FUNCTION itest_tags_poison()",
};
static const char *const poison_drop[] = {
    "DROP TRIGGER IF EXISTS itest_tags_poison_tag ON customer_tags",
    "DROP TRIGGER IF EXISTS itest_tags_poison_event ON customer_events",
    "DROP FUNCTION IF EXISTS itest_tags_poison()",
    "DROP TABLE IF EXISTS itest_tags_poison_customers",
};
static struct itest_ddl_fixture g_poison =
    ITEST_DDL_FIXTURE(poison_create, poison_drop);

static void
install_poison(void)
{
    itest_ddl_fixture_install(&g_poison);
}

static int
remove_poison(void **state)
{
    (void)state;
    return itest_ddl_fixture_remove(&g_poison);
}

static void
interrupted_insert_and_refused_event_leave_nothing(void **state)
{
    (void)state;
    install_poison();
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    add_one(id, "before", "b");
    struct mark m;
    mark_take(id, &m);

    /* The second row of one INSERT fails: the first must not stay. */
    struct itest_resp *r = add_tags(
        g_c.key, id, (const char *const[]){"first", "second", "third"},
        (const char *const[]){"fine", "itest-tags-poison", "fine too"}, 3);
    itest_assert_internal_error(r);
    expect_unchanged(r, id, &m);
    expect_db_tags(r, id, json_pack("{s:s}", "before", "b"));
    itest_resp_free(r);

    /* A value change refused by the database: the old value stays. */
    r = set_value(g_c.key, id, "before", "itest-tags-poison again");
    itest_assert_internal_error(r);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* The event is refused: the tag change must be rolled back with it
     * (one transaction), for every kind of change. */
    PQclear(
        itest_sql("INSERT INTO itest_tags_poison_customers VALUES ($1)", id));
    r = add_tags(g_c.key, id, (const char *const[]){"x", "y"},
                 (const char *const[]){"1", "2"}, 2);
    itest_assert_internal_error(r);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = set_value(g_c.key, id, "before", "changed");
    itest_assert_internal_error(r);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = rename_key(g_c.key, id, "before", "renamed");
    itest_assert_internal_error(r);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);
    r = delete_tag(g_c.key, id, "before");
    itest_assert_internal_error(r);
    expect_unchanged(r, id, &m);
    itest_resp_free(r);

    /* And once the event may be written again, all is well. */
    PQclear(itest_sql("DELETE FROM itest_tags_poison_customers WHERE "
                      "customer_id = $1",
                      id));
    json_t *p;
    r = add_tags(g_c.key, id, (const char *const[]){"x"},
                 (const char *const[]){"1"}, 1);
    expect_added(r);
    expect_tag_event(r, id, &m, "tags_added", "POST: /customer/tag", g_c.id,
                     &p);
    json_decref(p);
    itest_resp_free(r);
    mark_free(&m);
}

/* ------------------------------------------------------- concurrency */

struct race {
    const char *id;
    int idx;
    long status;
};

static void *
race_thread(void *arg)
{
    struct race *t = arg;
    char value[32];
    snprintf(value, sizeof(value), "from-%d", t->idx);
    /* Each request adds its own key and the shared one. */
    char own[32];
    snprintf(own, sizeof(own), "own-%d", t->idx);
    struct itest_resp *r =
        add_tags(g_c.key, t->id, (const char *const[]){own, "shared"},
                 (const char *const[]){value, value}, 2);
    t->status = r->status;
    itest_resp_free(r);
    itest_thread_done();
    return NULL;
}

static void
concurrent_adds_of_one_key_one_wins(void **state)
{
    (void)state;
    enum { N = 8 };
    char id[37];
    itest_make_customer(g_c.key, "tags", id);
    pthread_t th[N];
    struct race t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (struct race){.id = id, .idx = i, .status = 0};
        pthread_create(&th[i], NULL, race_thread, &t[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    int won = -1, wins = 0;
    for (int i = 0; i < N; i++) {
        if (t[i].status == 201) {
            wins++;
            won = i;
        } else if (t[i].status != 409) {
            itest_failf("request %d answered %ld (want 201 or 409)", i,
                        t[i].status);
        }
    }
    itest_expect(NULL, wins == 1, "exactly one of %d must win, %d did", N,
                 wins);
    char own[32], value[32];
    snprintf(own, sizeof(own), "own-%d", won);
    snprintf(value, sizeof(value), "from-%d", won);
    expect_db_tags(NULL, id,
                   json_pack("{s:s, s:s}", own, value, "shared", value));
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "customer_id = $1 AND event_type = "
                                "'customer_tag_change'",
                                id) == 1,
                 "exactly one tag event");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(add_answers_201_with_empty_data),
        cmocka_unit_test(add_writes_rows_timestamps_and_one_event),
        cmocka_unit_test(add_conflict_writes_nothing),
        cmocka_unit_test(add_validation_errors),
        cmocka_unit_test(add_key_pattern_and_length),
        cmocka_unit_test(add_value_length),
        cmocka_unit_test(add_more_than_100_tags_422),
        cmocka_unit_test(add_unknown_and_foreign_customer_404),
        cmocka_unit_test(values_stored_verbatim),
        cmocka_unit_test(get_customer_orders_tags_by_byte_value),
        cmocka_unit_test(create_customer_with_tags),
        cmocka_unit_test(create_customer_tags_rejected),
        cmocka_unit_test(get_value_forms_and_404s),
        cmocka_unit_test(delete_tag_ok_and_404),
        cmocka_unit_test(delete_tag_body_wins_over_query),
        cmocka_unit_test(rename_key_ok),
        cmocka_unit_test(rename_key_errors),
        cmocka_unit_test(set_value_ok_same_value_and_errors),
        cmocka_unit_test(administrator_changes_tags_event_keeps_owner),
        cmocka_unit_test_teardown(
            interrupted_insert_and_refused_event_leave_nothing, remove_poison),
        cmocka_unit_test(concurrent_adds_of_one_key_one_wins),
    };
    return cmocka_run_group_tests_name("tags", tests, setup,
                                       itest_group_teardown);
}
