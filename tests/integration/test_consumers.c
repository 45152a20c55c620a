/*
 * tests/integration/test_consumers.c — the consumer and API key endpoints of
 * issue 4 through nginx (docs/API.md §4, §5.4 and §5.5, consumers and
 * keys): POST/GET /consumer/data, POST /consumer/change-status,
 * POST/GET /consumer/api-key, POST /consumer/deactivate-api-key, every
 * input, output and error of the contract's table; the key format
 * (fk_ + 43 base64url), its display prefix (11 characters), storage as a
 * SHA-256 hash only (the key text appears nowhere in the database), at most
 * one active key per consumer, rotation in one transaction, expiry (days,
 * seconds, 401 "API key expired", status "expired"), the system consumer's
 * protections (its key's lifetime at least a day, docs/API.md §4.2), the lazy
 * "expired" write-back that never overwrites a concurrent rotation's
 * "deactivated", deactivated consumers keeping their keys, and the four
 * system events with their §6 data, never holding a key or a hash.
 * Authorization (403 for non-administrators) and tenancy are in
 * test_authz.c.
 */
#include "itest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A consumer created through the API, and its current key (may be ""). */
struct api_consumer {
    char id[37];
    char name[64];
    char key[64];
};

/* Every key this binary was given, for the final "no key in any event". */
static char g_keys[128][64];
static int g_nkeys;

static void
remember_key(const char *key)
{
    if (g_nkeys < (int)(sizeof(g_keys) / sizeof(g_keys[0])))
        snprintf(g_keys[g_nkeys++], sizeof(g_keys[0]), "%s", key);
}

/* ------------------------------------------------------------- helpers */

/* A fresh X-Request-ID and the header line that sends it. */
static void
new_rid(char rid[96], char hdr[128])
{
    itest_unique(rid, 96, "rid");
    snprintf(hdr, 128, "X-Request-ID: %s", rid);
}

/* A unique, valid consumer name: "<prefix>-<pid>-<time>-<n>-<hex>". */
static void
unique_name(char *buf, size_t size, const char *prefix)
{
    itest_unique(buf, size, prefix);
}

static struct itest_resp *
admin(const char *method, const char *path, const char *body, const char *hdr)
{
    return itest_request(method, path, itest_admin_key(), body, hdr);
}

/* POST /consumer/data as the administrator; asserts 201, fills c. */
static void
api_consumer_new(struct api_consumer *c, const char *prefix)
{
    memset(c, 0, sizeof(*c));
    unique_name(c->name, sizeof(c->name), prefix);
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", c->name));
    struct itest_resp *r = admin("POST", "/consumer/data", body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    const char *id = itest_jstr(d, "consumer_id");
    itest_expect(r, itest_is_uuid(id), "consumer_id must be a UUID");
    snprintf(c->id, sizeof(c->id), "%s", id);
    itest_resp_free(r);
}

/* POST /consumer/api-key for c with extra fields (a JSON object text
 * without braces, or NULL); asserts 201 and stores the key in c->key.
 * Returns the response (owned). */
static struct itest_resp *
api_key_issue_r(struct api_consumer *c, const char *extra, const char *hdr)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"%s%s}", c->id,
             extra ? "," : "", extra ? extra : "");
    struct itest_resp *r = admin("POST", "/consumer/api-key", body, hdr);
    json_t *d = itest_assert_envelope(r, 201);
    const char *k = itest_jstr(d, "api_key");
    itest_expect(r, k != NULL && strlen(k) < sizeof(c->key),
                 "data.api_key must be a key");
    snprintf(c->key, sizeof(c->key), "%s", k);
    remember_key(c->key);
    return r;
}

static void
api_key_issue(struct api_consumer *c)
{
    itest_resp_free(api_key_issue_r(c, NULL, NULL));
}

static char *
key_column(const char *key, const char *column_sql)
{
    char hash[65], sql[256];
    itest_key_hash(key, hash);
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM consumer_api_keys WHERE api_key_hash = $1",
             column_sql);
    return itest_sql_value(sql, hash);
}

static bool
is_key_format(const char *k)
{
    if (k == NULL || strlen(k) != 46 || strncmp(k, "fk_", 3) != 0)
        return false;
    for (const char *p = k + 3; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return false;
    }
    return true;
}

/*
 * The one customer_events row of type written by the request whose
 * X-Request-ID was rid: a system event (customer_id NULL, consumer_id the
 * system consumer, source_service "POST: <path>") whose payload is the §5
 * message. Returns the payload (owned); its "data" is checked by the caller.
 */
static json_t *
system_event(const struct itest_resp *r, const char *rid, const char *type,
             const char *source)
{
    PGresult *q = itest_sql(
        "SELECT customer_id IS NULL, consumer_id::text, source_service, "
        "       payload::text, event_id::text, sequence "
        "  FROM customer_events WHERE request_id = $1 AND event_type = $2",
        rid, type);
    itest_expect(r, PQntuples(q) == 1,
                 "request %s must write exactly one %s event (has %d)", rid,
                 type, PQntuples(q));
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), "t") == 0,
                 "a %s event has customer_id NULL", type);
    itest_expect(r, strcmp(PQgetvalue(q, 0, 1), ITEST_SYSTEM_CONSUMER_ID) == 0,
                 "a %s event belongs to the system consumer, not %s", type,
                 PQgetvalue(q, 0, 1));
    itest_expect(r, strcmp(PQgetvalue(q, 0, 2), source) == 0,
                 "source_service must be \"%s\", is \"%s\"", source,
                 PQgetvalue(q, 0, 2));
    json_error_t jerr;
    json_t *p = json_loads(PQgetvalue(q, 0, 3), JSON_REJECT_DUPLICATES, &jerr);
    itest_expect(r, json_is_object(p), "payload must be a JSON object: %s",
                 PQgetvalue(q, 0, 3));
    itest_expect(r,
                 itest_jstr(p, "event_id") && strcmp(itest_jstr(p, "event_id"),
                                                     PQgetvalue(q, 0, 4)) == 0,
                 "payload.event_id must be the row's");
    itest_expect(r,
                 itest_jstr(p, "event_type") &&
                     strcmp(itest_jstr(p, "event_type"), type) == 0,
                 "payload.event_type must be %s", type);
    itest_expect(
        r,
        itest_jstr(p, "consumer_id") &&
            strcmp(itest_jstr(p, "consumer_id"), ITEST_SYSTEM_CONSUMER_ID) == 0,
        "payload.consumer_id must be the system consumer");
    json_t *cid = json_object_get(p, "customer_id");
    itest_expect(r, cid == NULL || json_is_null(cid),
                 "payload.customer_id must be absent or null");
    json_t *seq = json_object_get(p, "sequence");
    itest_expect(r,
                 json_is_integer(seq) &&
                     json_integer_value(seq) == atol(PQgetvalue(q, 0, 5)),
                 "payload.sequence must be the row's sequence");
    json_t *meta = json_object_get(p, "metadata");
    itest_expect(r,
                 itest_jstr(meta, "request_id") &&
                     strcmp(itest_jstr(meta, "request_id"), rid) == 0,
                 "payload.metadata.request_id must be %s", rid);
    itest_expect(r,
                 itest_jstr(meta, "source_service") &&
                     strcmp(itest_jstr(meta, "source_service"), source) == 0,
                 "payload.metadata.source_service must be %s", source);
    itest_expect(r, json_is_object(json_object_get(p, "data")),
                 "payload.data must be an object");
    PQclear(q);
    return p;
}

static long
count_events_of_rid(const char *rid)
{
    return itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE request_id = $1", rid);
}

/* expires_at is now + seconds, give or take slack seconds. */
static bool
expires_about(const char *expires_at, long seconds, long slack)
{
    char s[24], sl[24];
    snprintf(s, sizeof(s), "%ld", seconds);
    snprintf(sl, sizeof(sl), "%ld", slack);
    return itest_sql_long("SELECT (abs(extract(epoch FROM $1::timestamptz - "
                          "now()) - $2::float8) <= $3::float8)::int",
                          expires_at, s, sl) == 1;
}

/* --------------------------------------------------------- POST data */

static void
create_consumer_201_queue_and_event(void **state)
{
    (void)state;
    char name[64], rid[96], hdr[128], queue[128];
    unique_name(name, sizeof(name), "cons");
    new_rid(rid, hdr);
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", name));
    struct itest_resp *r = admin("POST", "/consumer/data", body, hdr);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_keys(r, d, "consumer_id", "consumer_name", "status",
                      "created_at", "queue");
    itest_expect(r, itest_is_uuid(itest_jstr(d, "consumer_id")),
                 "consumer_id must be a lower-case UUID");
    itest_assert_jstr(r, d, "consumer_name", name);
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "created_at")),
                 "created_at must look like 2025-10-23T14:34:51.467162Z");
    snprintf(queue, sizeof(queue), "customer_notification_%s", name);
    itest_assert_jstr(r, d, "queue", queue);
    const char *id = itest_jstr(d, "consumer_id");

    PGresult *q = itest_sql("SELECT consumer_name, status, "
                            "fintegrate_ts(created_at) FROM consumers "
                            "WHERE consumer_id = $1",
                            id);
    itest_expect(r, PQntuples(q) == 1, "no consumers row for %s", id);
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), name) == 0, "stored name");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 1), "ACTIVE") == 0,
                 "stored status");
    itest_expect(r,
                 strcmp(PQgetvalue(q, 0, 2), itest_jstr(d, "created_at")) == 0,
                 "created_at must be the stored one");
    PQclear(q);
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                "WHERE consumer_id = $1",
                                id) == 0,
                 "creating a consumer issues no key by itself");

    json_t *p =
        system_event(r, rid, "consumer_creation", "POST: /consumer/data");
    json_t *ed = json_object_get(p, "data");
    itest_assert_keys(r, ed, "consumer_id", "consumer_name", "status", "queue");
    itest_assert_jstr(r, ed, "consumer_id", id);
    itest_assert_jstr(r, ed, "consumer_name", name);
    itest_assert_jstr(r, ed, "status", "ACTIVE");
    itest_assert_jstr(r, ed, "queue", queue);
    itest_expect(r, count_events_of_rid(rid) == 1,
                 "creating a consumer writes exactly one event");
    json_decref(p);
    itest_resp_free(r);
}

static void
expect_name_rejected(const char *body, const char *needle)
{
    long consumers = itest_sql_long0("SELECT count(*) FROM consumers");
    char rid[96], hdr[128];
    new_rid(rid, hdr);
    struct itest_resp *r = admin("POST", "/consumer/data", body, hdr);
    itest_assert_error_contains(r, 422, needle);
    itest_expect(r,
                 itest_sql_long0("SELECT count(*) FROM consumers") == consumers,
                 "a rejected consumer was stored");
    itest_expect(r, count_events_of_rid(rid) == 0,
                 "a rejected consumer wrote an event");
    itest_resp_free(r);
}

static void
create_consumer_name_rules_422(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Upper",
        "upper-Case",
        "-dash-first",
        "_underscore-first",
        "has space",
        "has.dot",
        "slash/name",
        "\xc3\xbcmlaut",
        " lead",
        "trail ",
        "a\tb",
        "caf\xc3\xa9",
        /* 64 characters */
        "a123456789012345678901234567890123456789012345678901234567890123",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body =
            itest_json_text(json_pack("{s:s}", "consumer_name", bad[i]));
        expect_name_rejected(body, "consumer_name must match");
        free(body);
    }
    expect_name_rejected("{\"consumer_name\":\"nul\\u0000name\"}",
                         "consumer_name");
    expect_name_rejected("{\"consumer_name\":5}", "consumer_name");
    expect_name_rejected("{\"consumer_name\":true}", "consumer_name");
    expect_name_rejected("{\"consumer_name\":[\"a\"]}", "consumer_name");
    expect_name_rejected("{\"consumer_name\":null}",
                         "Missing required field \"consumer_name\"");
    expect_name_rejected("{}", "Missing required field \"consumer_name\"");
    expect_name_rejected("{\"consumer_name\":\"ok-name\",\"queue\":\"x\"}",
                         "Unknown field \"queue\"");

    /* The edges that are valid: 63 characters, a digit first, '_'. */
    char base[64], name[64];
    unique_name(base, sizeof(base), "0edge_");
    size_t bl = strlen(base);
    memcpy(name, base, bl);
    memset(name + bl, 'x', 63 - bl);
    name[63] = '\0';
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", name));
    struct itest_resp *r = admin("POST", "/consumer/data", body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "consumer_name", name);
    itest_resp_free(r);
    /* Same 63 characters plus one: 64 is too long. */
    char longer[80];
    snprintf(longer, sizeof(longer), "%sz", name);
    body = itest_json_text(json_pack("{s:s}", "consumer_name", longer));
    expect_name_rejected(body, "consumer_name must match");
    free(body);
}

static void
create_consumer_name_taken_409(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "taken");
    char rid[96], hdr[128], want[160];
    new_rid(rid, hdr);
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", c.name));
    struct itest_resp *r = admin("POST", "/consumer/data", body, hdr);
    free(body);
    snprintf(want, sizeof(want), "Consumer name \"%s\" is already taken",
             c.name);
    itest_assert_error(r, 409, want);
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM consumers WHERE "
                                "consumer_name = $1",
                                c.name) == 1,
                 "a taken name must not make a second consumer");
    itest_expect(r, count_events_of_rid(rid) == 0,
                 "a refused creation must write no event");
    itest_resp_free(r);
}

/* ----------------------------------------------------------- GET data */

static void
get_consumer_200_404_422(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "get");
    char path[160];
    snprintf(path, sizeof(path), "/consumer/data?consumer_id=%s", c.id);
    struct itest_resp *r = admin("GET", path, NULL, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "consumer_id", "consumer_name", "status",
                      "created_at", "updated_at");
    itest_assert_jstr(r, d, "consumer_id", c.id);
    itest_assert_jstr(r, d, "consumer_name", c.name);
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "created_at")),
                 "created_at");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "updated_at")),
                 "updated_at");
    itest_resp_free(r);

    /* Upper-case UUID accepted, answered lower-case; JSON body form. */
    char upper[37], body[96];
    snprintf(upper, sizeof(upper), "%s", c.id);
    itest_upper(upper);
    snprintf(path, sizeof(path), "/consumer/data?consumer_id=%s", upper);
    r = admin("GET", path, NULL, NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "consumer_id", c.id);
    itest_resp_free(r);
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", c.id);
    r = admin("GET", "/consumer/data", body, NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "consumer_name", c.name);
    itest_resp_free(r);

    /* The system consumer is a consumer like the others here. */
    r = admin("GET", "/consumer/data?consumer_id=" ITEST_SYSTEM_CONSUMER_ID,
              NULL, NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "consumer_name", "system_default");
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_resp_free(r);

    char missing[37];
    itest_random_uuid(missing);
    snprintf(path, sizeof(path), "/consumer/data?consumer_id=%s", missing);
    r = admin("GET", path, NULL, NULL);
    itest_assert_error(r, 404, NULL);
    itest_expect(r, strstr(itest_desc(r), missing) != NULL,
                 "the 404 names the consumer id");
    itest_resp_free(r);

    r = admin("GET", "/consumer/data?consumer_id=abc", NULL, NULL);
    itest_assert_error(r, 422, "consumer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);
    r = admin("GET", "/consumer/data", NULL, NULL);
    itest_assert_error(r, 422, "Missing required field \"consumer_id\"");
    itest_resp_free(r);
    snprintf(path, sizeof(path), "/consumer/data?consumer_id=%s&name=x", c.id);
    r = admin("GET", path, NULL, NULL);
    itest_assert_error_contains(r, 422, "Unknown field \"name\"");
    itest_resp_free(r);
}

/* ---------------------------------------------------- change-status */

static struct itest_resp *
change_status(const char *id, const char *status, const char *hdr)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\",\"status\":\"%s\"}",
             id, status);
    return admin("POST", "/consumer/change-status", body, hdr);
}

static void
change_status_round_trip_409_and_events(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "status");
    static const char *const order[] = {"DEACTIVATED", "ACTIVE"};
    static const char *const before[] = {"ACTIVE", "DEACTIVATED"};
    for (int i = 0; i < 2; i++) {
        char rid[96], hdr[128], want[160], path[128];
        new_rid(rid, hdr);
        struct itest_resp *r = change_status(c.id, order[i], hdr);
        json_t *d = itest_assert_envelope(r, 200);
        itest_assert_keys(r, d, "consumer_id", "status", "updated_at");
        itest_assert_jstr(r, d, "consumer_id", c.id);
        itest_assert_jstr(r, d, "status", order[i]);
        itest_expect(r, itest_is_timestamp(itest_jstr(d, "updated_at")),
                     "updated_at");

        json_t *p = system_event(r, rid, "consumer_status_change",
                                 "POST: /consumer/change-status");
        json_t *ed = json_object_get(p, "data");
        itest_assert_keys(r, ed, "consumer_id", "consumer_name",
                          "previous_status", "status");
        itest_assert_jstr(r, ed, "consumer_id", c.id);
        itest_assert_jstr(r, ed, "consumer_name", c.name);
        itest_assert_jstr(r, ed, "previous_status", before[i]);
        itest_assert_jstr(r, ed, "status", order[i]);
        json_decref(p);

        /* GET shows it, with the same updated_at. */
        snprintf(path, sizeof(path), "/consumer/data?consumer_id=%s", c.id);
        struct itest_resp *g = admin("GET", path, NULL, NULL);
        json_t *gd = itest_assert_envelope(g, 200);
        itest_assert_jstr(g, gd, "status", order[i]);
        itest_assert_jstr(g, gd, "updated_at", itest_jstr(d, "updated_at"));
        itest_expect(g,
                     strcmp(itest_jstr(gd, "updated_at"),
                            itest_jstr(gd, "created_at")) > 0,
                     "updated_at must move past created_at");
        itest_resp_free(g);
        itest_resp_free(r);

        /* The same status again: 409, nothing written. */
        new_rid(rid, hdr);
        r = change_status(c.id, order[i], hdr);
        snprintf(want, sizeof(want), "Consumer %s is already %s", c.id,
                 order[i]);
        itest_assert_error(r, 409, want);
        itest_expect(r, count_events_of_rid(rid) == 0,
                     "a 409 must write no event");
        itest_resp_free(r);
    }
}

static void
change_status_errors(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "status-err");
    char missing[37], body[160];
    itest_random_uuid(missing);

    struct itest_resp *r = change_status(missing, "DEACTIVATED", NULL);
    itest_assert_error(r, 404, NULL);
    itest_expect(r, strstr(itest_desc(r), missing) != NULL,
                 "the 404 names the consumer id");
    itest_resp_free(r);

    r = change_status(c.id, "INACTIVE", NULL);
    itest_assert_error(
        r, 422, "status must be one of ACTIVE, DEACTIVATED (got \"INACTIVE\")");
    itest_resp_free(r);
    r = change_status(c.id, "deactivated", NULL);
    itest_assert_error_contains(r, 422, "status must be one of");
    itest_resp_free(r);
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", c.id);
    r = admin("POST", "/consumer/change-status", body, NULL);
    itest_assert_error(r, 422, "Missing required field \"status\"");
    itest_resp_free(r);
    r = admin("POST", "/consumer/change-status",
              "{\"consumer_id\":\"nope\",\"status\":\"ACTIVE\"}", NULL);
    itest_assert_error(r, 422, "consumer_id must be a UUID (got \"nope\")");
    itest_resp_free(r);
    snprintf(body, sizeof(body),
             "{\"consumer_id\":\"%s\",\"status\":\"ACTIVE\",\"why\":1}", c.id);
    r = admin("POST", "/consumer/change-status", body, NULL);
    itest_assert_error_contains(r, 422, "Unknown field \"why\"");
    itest_resp_free(r);
    r = admin("POST", "/consumer/change-status", NULL, NULL);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);

    char *st = itest_sql_value(
        "SELECT status FROM consumers WHERE consumer_id = $1", c.id);
    itest_expect(NULL, st && strcmp(st, "ACTIVE") == 0,
                 "refused changes must leave the consumer ACTIVE (is %s)", st);
    free(st);
}

/* Puts the administrator back if a service bug took it away. */
static void
restore_system_consumer(void)
{
    PQclear(itest_sql("UPDATE consumers SET status = 'ACTIVE' "
                      "WHERE consumer_id = $1 AND status <> 'ACTIVE'",
                      ITEST_SYSTEM_CONSUMER_ID));
    PQclear(itest_sql(
        "UPDATE consumer_api_keys SET api_key_status = 'active' "
        " WHERE api_key_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex') "
        "   AND api_key_status = 'deactivated' "
        "   AND NOT EXISTS (SELECT 1 FROM consumer_api_keys "
        "                    WHERE consumer_id = $2 "
        "                      AND api_key_status = 'active')",
        itest_admin_key(), ITEST_SYSTEM_CONSUMER_ID));
}

static int
restore_system_teardown(void **state)
{
    (void)state;
    restore_system_consumer();
    return 0;
}

static void
system_consumer_cannot_be_deactivated_403(void **state)
{
    (void)state;
    char rid[96], hdr[128];
    new_rid(rid, hdr);
    struct itest_resp *r =
        change_status(ITEST_SYSTEM_CONSUMER_ID, "DEACTIVATED", hdr);
    itest_assert_error(r, 403, NULL);
    itest_expect(r, count_events_of_rid(rid) == 0,
                 "a refused change must write no event");
    itest_resp_free(r);
    char *st =
        itest_sql_value("SELECT status FROM consumers WHERE consumer_id = $1",
                        ITEST_SYSTEM_CONSUMER_ID);
    itest_expect(NULL, st && strcmp(st, "ACTIVE") == 0,
                 "the system consumer must stay ACTIVE (is %s)", st);
    free(st);
    /* The administrator still works. */
    r = itest_get_customer(itest_admin_key(), NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

/* --------------------------------------------------- POST api-key */

static void
issue_key_201_format_storage_default_expiry_event(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "key");
    char rid[96], hdr[128], hash[65];
    new_rid(rid, hdr);
    struct itest_resp *r = api_key_issue_r(&c, NULL, hdr);
    json_t *d = itest_data(r);
    /* The contract's fields (consumer_id is an extra the service adds). */
    itest_expect(r, itest_jstr(d, "api_key") != NULL, "data.api_key");
    itest_expect(r, itest_jstr(d, "api_key_prefix") != NULL,
                 "data.api_key_prefix");
    itest_expect(r, itest_jstr(d, "expires_at") != NULL, "data.expires_at");
    const char *ex =
        json_object_get(d, "consumer_id") ? itest_jstr(d, "consumer_id") : NULL;
    itest_expect(r,
                 json_object_get(d, "consumer_id") == NULL ||
                     (ex && strcmp(ex, c.id) == 0),
                 "data.consumer_id, when given, is the consumer's");
    itest_expect(r, json_object_size(d) <= 4,
                 "data must hold api_key, api_key_prefix, expires_at "
                 "(and at most consumer_id)");
    itest_expect(r, is_key_format(c.key),
                 "api_key must be fk_ + 43 base64url characters (got %zu "
                 "characters)",
                 strlen(c.key));
    char prefix[12];
    snprintf(prefix, sizeof(prefix), "%.11s", c.key);
    itest_assert_jstr(r, d, "api_key_prefix", prefix);
    const char *expires_at = itest_jstr(d, "expires_at");
    itest_expect(r, itest_is_timestamp(expires_at), "expires_at format");
    itest_expect(r, expires_about(expires_at, 365L * 86400, 300),
                 "expires_in_days defaults to 365: expires_at %s must be "
                 "about now + 365 days",
                 expires_at);

    /* Stored: SHA-256 hex and the prefix, nothing else of the key. */
    itest_key_hash(c.key, hash);
    PGresult *q =
        itest_sql("SELECT api_key_prefix, api_key_status, consumer_id::text, "
                  "       fintegrate_ts(expires_at) "
                  "  FROM consumer_api_keys WHERE api_key_hash = $1",
                  hash);
    itest_expect(r, PQntuples(q) == 1,
                 "the key must be stored as its SHA-256 hex");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), prefix) == 0,
                 "stored prefix must be the first 11 characters");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 1), "active") == 0,
                 "a new key is active");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 2), c.id) == 0,
                 "the key belongs to the consumer");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 3), expires_at) == 0,
                 "stored expires_at must be the one answered");
    PQclear(q);
    const char *secret = c.key + 3; /* the random part */
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys k "
                                "WHERE strpos(k::text, $1) > 0 "
                                "   OR strpos(k::text, $2) > 0",
                                c.key, secret) == 0,
                 "the key text must appear nowhere in consumer_api_keys");
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM consumers c "
                                "WHERE strpos(c::text, $1) > 0",
                                secret) == 0,
                 "the key text must appear nowhere in consumers");

    /* The key works. */
    struct itest_resp *w = itest_get_customer(c.key, NULL);
    itest_assert_error(w, 404, NULL);
    itest_resp_free(w);

    json_t *p =
        system_event(r, rid, "api_key_creation", "POST: /consumer/api-key");
    json_t *ed = json_object_get(p, "data");
    itest_assert_keys(r, ed, "consumer_id", "consumer_name", "api_key_prefix",
                      "expires_at");
    itest_assert_jstr(r, ed, "consumer_id", c.id);
    itest_assert_jstr(r, ed, "consumer_name", c.name);
    itest_assert_jstr(r, ed, "api_key_prefix", prefix);
    itest_assert_jstr(r, ed, "expires_at", expires_at);
    json_decref(p);
    itest_expect(r, count_events_of_rid(rid) == 1,
                 "a first key writes only api_key_creation");
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "request_id = $1 AND (strpos(payload::text, "
                                "$2) > 0 OR strpos(payload::text, $3) > 0)",
                                rid, secret, hash) == 0,
                 "the event must hold neither the key nor its hash");
    itest_resp_free(r);

    /* Two keys are never alike. */
    char first[64];
    snprintf(first, sizeof(first), "%s", c.key);
    api_key_issue(&c);
    itest_expect(NULL, strcmp(first, c.key) != 0, "two keys must differ");
    itest_expect(NULL, strncmp(first, c.key, 11) != 0,
                 "two keys should not share a prefix (prefix collision on "
                 "48 random bits)");
}

static void
issue_key_expiry_inputs(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "expiry");
    struct {
        const char *extra;
        long seconds;
    } ok[] = {
        {"\"expires_in_days\":30", 30L * 86400},
        {"\"expires_in_days\":1", 86400},
        {"\"expires_in_days\":3650", 3650L * 86400},
        {"\"expires_in_days\":null", 365L * 86400},
        {"\"expires_in_seconds\":600", 600},
        {"\"expires_in_seconds\":315360000", 315360000},
        {"\"expires_in_seconds\":120,\"expires_in_days\":null", 120},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct itest_resp *r = api_key_issue_r(&c, ok[i].extra, NULL);
        const char *ex = itest_jstr(itest_data(r), "expires_at");
        itest_expect(r, expires_about(ex, ok[i].seconds, 60),
                     "{%s}: expires_at %s must be about now + %ld s",
                     ok[i].extra, ex, ok[i].seconds);
        itest_resp_free(r);
    }

    static const struct {
        const char *extra, *desc;
    } bad[] = {
        {"\"expires_in_days\":0",
         "expires_in_days must be an integer between 1 and 3650 (got 0)"},
        {"\"expires_in_days\":3651",
         "expires_in_days must be an integer between 1 and 3650 (got 3651)"},
        {"\"expires_in_days\":-1", NULL},
        {"\"expires_in_days\":\"5\"", NULL},
        {"\"expires_in_days\":1.5", NULL},
        {"\"expires_in_days\":true", NULL},
        {"\"expires_in_seconds\":0", NULL},
        {"\"expires_in_seconds\":315360001", NULL},
        {"\"expires_in_seconds\":\"60\"", NULL},
        {"\"expires_in_days\":5,\"expires_in_seconds\":60", NULL},
        {"\"expires_in_seconds\":60,\"expires_in_days\":5", NULL},
        {"\"expires\":5", "Unknown field \"expires\""},
    };
    long keys = itest_sql_long(
        "SELECT count(*) FROM consumer_api_keys WHERE consumer_id = $1", c.id);
    char *active_before = itest_sql_value(
        "SELECT api_key_hash FROM consumer_api_keys WHERE consumer_id = $1 "
        "AND api_key_status = 'active'",
        c.id);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256], rid[96], hdr[128];
        new_rid(rid, hdr);
        snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\",%s}", c.id,
                 bad[i].extra);
        struct itest_resp *r = admin("POST", "/consumer/api-key", body, hdr);
        if (bad[i].desc != NULL)
            itest_assert_error_contains(r, 422, bad[i].desc);
        else
            itest_assert_error(r, 422, NULL);
        if (strstr(bad[i].extra, "days") && strstr(bad[i].extra, "seconds"))
            itest_expect(r,
                         strstr(itest_desc(r), "expires_in_days") &&
                             strstr(itest_desc(r), "expires_in_seconds"),
                         "both given: the message names both fields");
        itest_expect(r, count_events_of_rid(rid) == 0,
                     "a 422 must write no event");
        itest_resp_free(r);
    }
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                "WHERE consumer_id = $1",
                                c.id) == keys,
                 "a 422 must not issue a key");
    char *active_after = itest_sql_value(
        "SELECT api_key_hash FROM consumer_api_keys WHERE consumer_id = $1 "
        "AND api_key_status = 'active'",
        c.id);
    itest_expect(NULL,
                 active_before && active_after &&
                     strcmp(active_before, active_after) == 0,
                 "a 422 must not rotate the active key");
    free(active_before);
    free(active_after);
    /* And the last good key still works. */
    struct itest_resp *r = itest_get_customer(c.key, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

static void
issue_key_unknown_consumer_404_deactivated_409(void **state)
{
    (void)state;
    char missing[37], body[160], rid[96], hdr[128], want[200];
    itest_random_uuid(missing);
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", missing);
    new_rid(rid, hdr);
    struct itest_resp *r = admin("POST", "/consumer/api-key", body, hdr);
    itest_assert_error(r, 404, NULL);
    itest_expect(r, strstr(itest_desc(r), missing) != NULL,
                 "the 404 names the consumer id");
    itest_expect(r, count_events_of_rid(rid) == 0, "a 404 writes no event");
    itest_resp_free(r);

    r = admin("POST", "/consumer/api-key", "{}", NULL);
    itest_assert_error(r, 422, "Missing required field \"consumer_id\"");
    itest_resp_free(r);

    /* A DEACTIVATED consumer gets no key (and keeps the one it has). */
    struct api_consumer c;
    api_consumer_new(&c, "nokey");
    api_key_issue(&c);
    r = change_status(c.id, "DEACTIVATED", NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", c.id);
    new_rid(rid, hdr);
    r = admin("POST", "/consumer/api-key", body, hdr);
    itest_assert_error(r, 409, NULL);
    snprintf(want, sizeof(want), "%s", c.id);
    itest_expect(r, strstr(itest_desc(r), want) != NULL,
                 "the 409 names the consumer");
    itest_expect(r, count_events_of_rid(rid) == 0, "a 409 writes no event");
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                "WHERE consumer_id = $1",
                                c.id) == 1,
                 "a 409 must not add a key");
    char *st = key_column(c.key, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "active") == 0,
                 "a 409 must not touch the consumer's key (is %s)", st);
    free(st);
}

/* ---------------------------------------------------- GET api-key */

static struct itest_resp *
get_key(const char *as_key, const char *about)
{
    char path[160];
    snprintf(path, sizeof(path), "/consumer/api-key?api_key=%s", about);
    return itest_request("GET", path, as_key, NULL, NULL);
}

static void
expect_no_full_key(const struct itest_resp *r, const char *key)
{
    itest_expect(r, strstr(r->body, key + 3) == NULL,
                 "GET /consumer/api-key must never return the full key");
}

static void
get_key_fields_and_never_the_key(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "getkey");
    struct itest_resp *ir = api_key_issue_r(&c, NULL, NULL);
    char expires_at[40];
    snprintf(expires_at, sizeof(expires_at), "%s",
             itest_jstr(itest_data(ir), "expires_at"));
    itest_resp_free(ir);

    /* The administrator. */
    struct itest_resp *r = get_key(itest_admin_key(), c.key);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "api_key_prefix", "consumer_id", "status",
                      "created_at", "expires_at", "updated_at");
    char prefix[12];
    snprintf(prefix, sizeof(prefix), "%.11s", c.key);
    itest_assert_jstr(r, d, "api_key_prefix", prefix);
    itest_assert_jstr(r, d, "consumer_id", c.id);
    itest_assert_jstr(r, d, "status", "active");
    itest_assert_jstr(r, d, "expires_at", expires_at);
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "created_at")),
                 "created_at");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "updated_at")),
                 "updated_at");
    expect_no_full_key(r, c.key);
    itest_resp_free(r);

    /* The consumer itself, about the key it uses. */
    r = get_key(c.key, c.key);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "consumer_id", c.id);
    itest_assert_jstr(r, d, "status", "active");
    expect_no_full_key(r, c.key);
    itest_resp_free(r);

    /* JSON body when the query string is empty. */
    char body[128];
    snprintf(body, sizeof(body), "{\"api_key\":\"%s\"}", c.key);
    r = admin("GET", "/consumer/api-key", body, NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "api_key_prefix", prefix);
    expect_no_full_key(r, c.key);
    itest_resp_free(r);

    /* A deactivated (rotated) key is still readable, never in full. */
    char old[64];
    snprintf(old, sizeof(old), "%s", c.key);
    api_key_issue(&c);
    r = get_key(itest_admin_key(), old);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "status", "deactivated");
    expect_no_full_key(r, old);
    itest_resp_free(r);

    /* Errors. */
    char unknown[64];
    itest_random_key(unknown);
    r = get_key(itest_admin_key(), unknown);
    itest_assert_error(r, 404, NULL);
    expect_no_full_key(r, unknown);
    itest_resp_free(r);
    r = admin("GET", "/consumer/api-key", NULL, NULL);
    itest_assert_error(r, 422, "Missing required field \"api_key\"");
    itest_resp_free(r);
    r = get_key(itest_admin_key(), "");
    itest_assert_error_contains(r, 422, "api_key");
    itest_resp_free(r);
}

/* ------------------------------------------------------- rotation */

static void
rotation_in_one_transaction_old_key_refused(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "rotate");
    api_key_issue(&c);
    char old[64], old_hash[65], new_hash[65], rid[96], hdr[128];
    snprintf(old, sizeof(old), "%s", c.key);
    itest_warm_up(old, NULL);

    new_rid(rid, hdr);
    struct itest_resp *r = api_key_issue_r(&c, NULL, hdr);
    double t0 = itest_now();
    itest_key_hash(old, old_hash);
    itest_key_hash(c.key, new_hash);
    itest_expect(r, strcmp(old, c.key) != 0, "rotation gives a new key");

    /* Old deactivated, new active, exactly one active. */
    PGresult *q = itest_sql("SELECT api_key_status, xmin::text "
                            "  FROM consumer_api_keys WHERE api_key_hash = $1",
                            old_hash);
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), "deactivated") == 0,
                 "the previous key must be deactivated, is %s",
                 PQgetvalue(q, 0, 0));
    char old_xmin[32];
    snprintf(old_xmin, sizeof(old_xmin), "%s", PQgetvalue(q, 0, 1));
    PQclear(q);
    q = itest_sql("SELECT api_key_status, xmin::text "
                  "  FROM consumer_api_keys WHERE api_key_hash = $1",
                  new_hash);
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), "active") == 0,
                 "the new key must be active");
    /* The same transaction wrote both rows.  (Not checked on the event
     * rows: publishing updates them after the commit.) */
    itest_expect(r, strcmp(PQgetvalue(q, 0, 1), old_xmin) == 0,
                 "rotation must deactivate the old key in the transaction "
                 "that inserts the new one (xmin %s vs %s)",
                 old_xmin, PQgetvalue(q, 0, 1));
    PQclear(q);
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys WHERE "
                                "consumer_id = $1 AND api_key_status = "
                                "'active'",
                                c.id) == 1,
                 "at most one active key per consumer");

    /* Events: deactivation of the old, creation of the new. */
    char old_prefix[12], new_prefix[12];
    snprintf(old_prefix, sizeof(old_prefix), "%.11s", old);
    snprintf(new_prefix, sizeof(new_prefix), "%.11s", c.key);
    json_t *p =
        system_event(r, rid, "api_key_deactivation", "POST: /consumer/api-key");
    json_t *ed = json_object_get(p, "data");
    itest_assert_keys(r, ed, "consumer_id", "consumer_name", "api_key_prefix",
                      "previous_status");
    itest_assert_jstr(r, ed, "consumer_id", c.id);
    itest_assert_jstr(r, ed, "consumer_name", c.name);
    itest_assert_jstr(r, ed, "api_key_prefix", old_prefix);
    itest_assert_jstr(r, ed, "previous_status", "active");
    json_decref(p);
    p = system_event(r, rid, "api_key_creation", "POST: /consumer/api-key");
    itest_assert_jstr(r, json_object_get(p, "data"), "api_key_prefix",
                      new_prefix);
    json_decref(p);
    itest_expect(r, count_events_of_rid(rid) == 2,
                 "a rotation writes exactly two events");
    itest_resp_free(r);

    /* The old key stops within 5 s although workers cached it; the new
     * one works at once. */
    r = itest_get_customer(c.key, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    double took =
        itest_await_answer(old, NULL, t0, 404, 401, "API key deactivated");
    print_message("      rotated key refused after %.2f s\n", took);
    r = itest_get_customer(c.key, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

/*
 * Rotation deactivates the previous key even if expired (docs/API.md §5.5).
 * "expired" is computed on read and written back lazily, so the previous key
 * may still say 'active' in its column (nobody looked since it ran out) or
 * already say 'expired' (a read or a refused request wrote it back); the
 * outcome must not depend on which.
 */
static void
rotate_expired(bool read_first)
{
    struct api_consumer c;
    api_consumer_new(&c, read_first ? "rot-exp-read" : "rot-exp");
    api_key_issue(&c);
    char old[64], old_hash[65], rid[96], hdr[128];
    snprintf(old, sizeof(old), "%s", c.key);
    itest_key_hash(old, old_hash);
    PQclear(itest_sql("UPDATE consumer_api_keys SET expires_at = "
                      "now() - interval '1 minute', created_at = now() - "
                      "interval '2 minutes' WHERE api_key_hash = $1",
                      old_hash));
    struct itest_resp *r;
    if (read_first) {
        r = get_key(itest_admin_key(), old);
        itest_assert_jstr(r, itest_assert_envelope(r, 200), "status",
                          "expired");
        itest_resp_free(r);
        r = itest_get_customer(old, NULL);
        itest_assert_error(r, 401, "API key expired");
        itest_resp_free(r);
        char *st = key_column(old, "api_key_status");
        itest_expect(NULL, st && strcmp(st, "expired") == 0,
                     "an expired key that was read is written back as "
                     "expired (is %s)",
                     st);
        free(st);
    }

    new_rid(rid, hdr);
    r = api_key_issue_r(&c, NULL, hdr);
    char *st = key_column(old, "api_key_status");
    itest_expect(r, st && strcmp(st, "deactivated") == 0,
                 "rotation deactivates the previous key even if it had "
                 "expired%s (is %s)",
                 read_first ? " and was already written back as expired" : "",
                 st);
    free(st);
    json_t *p =
        system_event(r, rid, "api_key_deactivation", "POST: /consumer/api-key");
    json_t *ed = json_object_get(p, "data");
    char prefix[12];
    snprintf(prefix, sizeof(prefix), "%.11s", old);
    itest_assert_jstr(r, ed, "api_key_prefix", prefix);
    itest_assert_jstr(r, ed, "previous_status", "expired");
    json_decref(p);
    itest_resp_free(r);
    r = get_key(itest_admin_key(), old);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "status",
                      "deactivated");
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys WHERE "
                                "consumer_id = $1 AND api_key_status = "
                                "'active'",
                                c.id) == 1,
                 "exactly one active key after the rotation");
}

static void
rotation_deactivates_an_expired_key(void **state)
{
    (void)state;
    rotate_expired(false);
}

static void
rotation_deactivates_an_expired_key_already_marked_expired(void **state)
{
    (void)state;
    rotate_expired(true);
}

static void
at_most_one_active_key_per_consumer(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "one-active");
    for (int i = 0; i < 4; i++)
        api_key_issue(&c);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys WHERE "
                                "consumer_id = $1",
                                c.id) == 4,
                 "four issued keys, four rows");
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys WHERE "
                                "consumer_id = $1 AND api_key_status = "
                                "'active'",
                                c.id) == 1,
                 "exactly one of them active");
    /* The database itself refuses a second active key (partial unique
     * index), whichever path would try. */
    char other[64];
    itest_random_key(other);
    PGresult *res = itest_sql_try(
        "INSERT INTO consumer_api_keys (consumer_id, api_key_hash, "
        "api_key_prefix, expires_at) VALUES ($1, "
        "encode(sha256(convert_to($2, 'UTF8')), 'hex'), left($2, 11), "
        "now() + interval '1 day')",
        (const char *const[]){c.id, other}, 2);
    const char *sqlstate =
        res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    bool refused = res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR &&
                   sqlstate != NULL && strcmp(sqlstate, "23505") == 0;
    PQclear(res);
    itest_expect(NULL, refused,
                 "a second active key must violate a unique index");
    /* No such index on other statuses: many deactivated keys are fine. */
    itest_expect(
        NULL,
        itest_sql_long("SELECT count(*) FROM pg_indexes WHERE "
                       "tablename = 'consumer_api_keys' AND indexdef "
                       "ILIKE '%UNIQUE%(consumer_id)%WHERE%active%'") >= 1,
        "consumer_api_keys needs a partial unique index on "
        "(consumer_id) WHERE api_key_status = 'active'");
}

/* ------------------------------------------------------------ expiry */

static void
expired_key_is_401_and_shows_expired(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "short");
    struct itest_resp *ir =
        api_key_issue_r(&c, "\"expires_in_seconds\":2", NULL);
    double t0 = itest_now();
    const char *ex = itest_jstr(itest_data(ir), "expires_at");
    itest_expect(ir, expires_about(ex, 2, 2),
                 "expires_in_seconds 2: expires_at %s", ex);
    itest_resp_free(ir);

    /* Works first (cached by the workers), then expires at once: the
     * expiry instant is checked on every request. */
    struct itest_resp *r = itest_get_customer(c.key, NULL);
    if (itest_now() - t0 < 1.5) {
        itest_assert_error(r, 404, NULL);
        itest_resp_free(r);
        itest_warm_up(c.key, NULL);
    } else {
        itest_resp_free(r);
    }
    r = get_key(c.key, c.key);
    if (itest_now() - t0 < 1.5) {
        itest_assert_jstr(r, itest_assert_envelope(r, 200), "status", "active");
    }
    itest_resp_free(r);

    int streak = 0;
    double first = 0;
    while (streak < 8) {
        r = itest_get_customer(c.key, NULL);
        double el = itest_now() - t0;
        if (r->status == 401) {
            itest_assert_error(r, 401, "API key expired");
            if (streak++ == 0)
                first = el;
        } else {
            itest_expect(r, r->status == 404,
                         "an unexpired key must work (got %ld)", r->status);
            streak = 0;
            itest_expect(r, el < 3.5,
                         "a key that expired 2 s after issue still works "
                         "after %.2f s",
                         el);
        }
        itest_resp_free(r);
        if (streak < 8)
            itest_sleep_ms(50);
    }
    itest_expect(NULL, first >= 1.5,
                 "the key was refused as expired after %.2f s only", first);
    print_message("      expired key refused after %.2f s\n", first);

    /* Now the administrator sees it expired, and so is the row. */
    r = get_key(itest_admin_key(), c.key);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "status", "expired");
    expect_no_full_key(r, c.key);
    itest_resp_free(r);
    char *st = key_column(c.key, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "expired") == 0,
                 "an expired key is written back as expired (is %s)", st);
    free(st);
    /* The consumer itself cannot read it any more (the key is refused). */
    r = get_key(c.key, c.key);
    itest_assert_error(r, 401, "API key expired");
    itest_resp_free(r);
}

/* --------------------------------------------- deactivate-api-key */

static struct itest_resp *
deactivate_key(const char *key, const char *hdr)
{
    char body[600];
    snprintf(body, sizeof(body), "{\"api_key\":\"%s\"}", key);
    return admin("POST", "/consumer/deactivate-api-key", body, hdr);
}

static void
deactivate_key_200_409_404_and_event(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "deact");
    api_key_issue(&c);
    itest_warm_up(c.key, NULL);
    char rid[96], hdr[128], prefix[12], hash[65];
    snprintf(prefix, sizeof(prefix), "%.11s", c.key);
    itest_key_hash(c.key, hash);

    new_rid(rid, hdr);
    struct itest_resp *r = deactivate_key(c.key, hdr);
    double t0 = itest_now();
    json_t *d = itest_assert_envelope(r, 200);
    itest_expect(r, json_object_size(d) == 0, "data must be {}");
    json_t *p = system_event(r, rid, "api_key_deactivation",
                             "POST: /consumer/deactivate-api-key");
    json_t *ed = json_object_get(p, "data");
    itest_assert_keys(r, ed, "consumer_id", "consumer_name", "api_key_prefix",
                      "previous_status");
    itest_assert_jstr(r, ed, "consumer_id", c.id);
    itest_assert_jstr(r, ed, "consumer_name", c.name);
    itest_assert_jstr(r, ed, "api_key_prefix", prefix);
    itest_assert_jstr(r, ed, "previous_status", "active");
    json_decref(p);
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "request_id = $1 AND (strpos(payload::text, "
                                "$2) > 0 OR strpos(payload::text, $3) > 0)",
                                rid, c.key + 3, hash) == 0,
                 "the event must hold neither the key nor its hash");
    itest_resp_free(r);
    char *st = key_column(c.key, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "deactivated") == 0,
                 "the row must be deactivated (is %s)", st);
    free(st);

    double took =
        itest_await_answer(c.key, NULL, t0, 404, 401, "API key deactivated");
    print_message("      deactivated key refused after %.2f s\n", took);

    /* Again: 409, no event. */
    new_rid(rid, hdr);
    r = deactivate_key(c.key, hdr);
    itest_assert_error(r, 409, NULL);
    itest_expect(r, strstr(itest_desc(r), "already deactivated") != NULL,
                 "the 409 says the key is already deactivated");
    itest_expect(r, strstr(r->body, c.key + 3) == NULL,
                 "an answer never quotes the full key");
    itest_expect(r, count_events_of_rid(rid) == 0, "a 409 writes no event");
    itest_resp_free(r);

    /* The consumer has no usable key now; a new one can be issued. */
    api_key_issue(&c);
    r = itest_get_customer(c.key, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);

    /* Unknown key 404; missing 422; not JSON 400. */
    char unknown[64];
    itest_random_key(unknown);
    new_rid(rid, hdr);
    r = deactivate_key(unknown, hdr);
    itest_assert_error(r, 404, NULL);
    itest_expect(r, strstr(r->body, unknown + 3) == NULL,
                 "an answer never quotes the full key");
    itest_expect(r, count_events_of_rid(rid) == 0, "a 404 writes no event");
    itest_resp_free(r);
    r = admin("POST", "/consumer/deactivate-api-key", "{}", NULL);
    itest_assert_error(r, 422, "Missing required field \"api_key\"");
    itest_resp_free(r);
    r = admin("POST", "/consumer/deactivate-api-key", "{\"api_key\":5}", NULL);
    itest_assert_error_contains(r, 422, "api_key");
    itest_resp_free(r);
    r = admin("POST", "/consumer/deactivate-api-key", "api_key", NULL);
    itest_assert_error(r, 400, NULL);
    itest_resp_free(r);
}

static void
system_consumers_only_key_cannot_be_deactivated_403(void **state)
{
    (void)state;
    char rid[96], hdr[128];
    new_rid(rid, hdr);
    struct itest_resp *r = deactivate_key(itest_admin_key(), hdr);
    itest_assert_error(r, 403, NULL);
    itest_expect(r, count_events_of_rid(rid) == 0, "a 403 writes no event");
    itest_resp_free(r);
    char *st = key_column(itest_admin_key(), "api_key_status");
    itest_expect(NULL, st && strcmp(st, "active") == 0,
                 "the administrator's key must stay active (is %s)", st);
    free(st);
    r = itest_get_customer(itest_admin_key(), NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

/* docs/API.md §4.2: the system consumer's key cannot be rotated to a
 * lifetime shorter than one day (rotation must not lock the administrator
 * out); nothing is written and the administrator's key keeps working. */
static void
system_key_rotation_shorter_than_a_day_is_422(void **state)
{
    (void)state;
    static const char *const seconds[] = {"1", "86399"};
    long before = itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                 "WHERE consumer_id = $1",
                                 ITEST_SYSTEM_CONSUMER_ID);
    for (size_t i = 0; i < 2; i++) {
        char rid[96], hdr[128], body[160], want[256];
        new_rid(rid, hdr);
        snprintf(body, sizeof(body),
                 "{\"consumer_id\":\"%s\",\"expires_in_seconds\":%s}",
                 ITEST_SYSTEM_CONSUMER_ID, seconds[i]);
        struct itest_resp *r = admin("POST", "/consumer/api-key", body, hdr);
        snprintf(want, sizeof(want),
                 "expires_in_seconds must be at least 86400 (one day) for the "
                 "system consumer's key, so that a rotation cannot lock the "
                 "administrator out (got %s)",
                 seconds[i]);
        itest_assert_error(r, 422, want);
        itest_expect(r, count_events_of_rid(rid) == 0, "a 422 writes no event");
        itest_resp_free(r);
    }
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                "WHERE consumer_id = $1",
                                ITEST_SYSTEM_CONSUMER_ID) == before,
                 "a refused rotation added a key");
    char *st = key_column(itest_admin_key(), "api_key_status");
    itest_expect(NULL, st && strcmp(st, "active") == 0,
                 "the administrator's key must stay active (is %s)", st);
    free(st);
    /* another consumer's key may be that short */
    struct api_consumer c;
    api_consumer_new(&c, "short");
    itest_resp_free(api_key_issue_r(&c, "\"expires_in_seconds\":1", NULL));
}

struct get_call {
    const char *key;
    struct itest_resp *resp;
};

static void *
get_key_thread(void *arg)
{
    struct get_call *g = arg;
    char path[128];
    snprintf(path, sizeof(path), "/consumer/api-key?api_key=%s", g->key);
    g->resp = itest_request("GET", path, itest_admin_key(), NULL, NULL);
    itest_thread_done();
    return NULL;
}

/*
 * The lazy "expired" write-back of GET /consumer/api-key races a rotation:
 * the GET reads the key active and past its expiry, a rotation (held open
 * here by the test, on its own connection) deactivates it, and the GET's
 * write-back waits for that row lock.  Once the rotation commits, the
 * write-back must find the key no longer active and leave 'deactivated'
 * alone (its guard: api_key_status = 'active').
 */
static void
lazy_expired_write_back_never_overwrites_deactivated(void **state)
{
    (void)state;
    struct api_consumer c;
    char hash[65];
    api_consumer_new(&c, "race");
    api_key_issue(&c);
    itest_key_hash(c.key, hash);
    PQclear(itest_sql("UPDATE consumer_api_keys SET expires_at = now() - "
                      "interval '1 minute' WHERE api_key_hash = $1",
                      hash));

    PGconn *holder = itest_pg_connect();
    const char *params[] = {hash};
    PQclear(PQexec(holder, "BEGIN"));
    PGresult *u = PQexecParams(
        holder,
        "UPDATE consumer_api_keys SET api_key_status = 'deactivated', "
        "updated_at = clock_timestamp() WHERE api_key_hash = $1",
        1, NULL, params, NULL, NULL, 0);
    bool updated = PQresultStatus(u) == PGRES_COMMAND_OK &&
                   strcmp(PQcmdTuples(u), "1") == 0;
    PQclear(u);
    if (!updated) {
        PQfinish(holder);
        itest_failf("could not hold the key's row");
    }

    struct get_call g = {.key = c.key};
    pthread_t th;
    if (pthread_create(&th, NULL, get_key_thread, &g) != 0) {
        PQfinish(holder);
        itest_failf("pthread_create failed");
    }
    /* the write-back is waiting for the row (found well within the
     * service's 5 s lock_timeout, after which it would give up) */
    long waiting = 0;
    double deadline = itest_now() + 4;
    while (itest_now() < deadline) {
        waiting =
            itest_sql_long0("SELECT count(*) FROM pg_stat_activity "
                            " WHERE wait_event_type = 'Lock' "
                            "   AND query LIKE 'UPDATE consumer_api_keys SET "
                            "api_key_status%'");
        if (waiting > 0)
            break;
        itest_sleep_ms(20);
    }
    PQclear(PQexec(holder, "COMMIT"));
    PQfinish(holder);
    pthread_join(th, NULL);
    itest_expect(g.resp, waiting > 0,
                 "the GET's write-back never waited for the held row");
    json_t *d = itest_assert_envelope(g.resp, 200);
    itest_assert_jstr(g.resp, d, "status", "expired"); /* as it read it */
    itest_resp_free(g.resp);

    char *st = key_column(c.key, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "deactivated") == 0,
                 "the write-back overwrote the rotation's deactivated (is %s)",
                 st);
    free(st);
    /* without a race, the write-back still happens */
    struct api_consumer e;
    api_consumer_new(&e, "lazy");
    api_key_issue(&e);
    itest_key_hash(e.key, hash);
    PQclear(itest_sql("UPDATE consumer_api_keys SET expires_at = now() - "
                      "interval '1 minute' WHERE api_key_hash = $1",
                      hash));
    struct itest_resp *r = get_key(itest_admin_key(), e.key);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "status", "expired");
    itest_resp_free(r);
    st = key_column(e.key, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "expired") == 0,
                 "the lazy write-back did not happen (is %s)", st);
    free(st);
}

/* ----------------------------------------- consumer deactivation */

static void
deactivated_consumer_keeps_its_keys(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "pause");
    api_key_issue(&c);
    itest_warm_up(c.key, NULL);
    char want[160];
    snprintf(want, sizeof(want), "Consumer \"%s\" is deactivated", c.name);

    struct itest_resp *r = change_status(c.id, "DEACTIVATED", NULL);
    double t0 = itest_now();
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    char *st = key_column(c.key, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "active") == 0,
                 "deactivating a consumer must not touch its keys (is %s)", st);
    free(st);
    double took = itest_await_answer(c.key, NULL, t0, 404, 403, want);
    print_message("      deactivated consumer refused after %.2f s\n", took);
    /* Its key reads as active to the administrator. */
    r = get_key(itest_admin_key(), c.key);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "status", "active");
    itest_resp_free(r);

    r = change_status(c.id, "ACTIVE", NULL);
    t0 = itest_now();
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    took = itest_await_answer(c.key, NULL, t0, 403, 404, NULL);
    print_message("      reactivated consumer's key works after %.2f s\n",
                  took);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys WHERE "
                                "consumer_id = $1",
                                c.id) == 1,
                 "no key was added or replaced");
}

/* --------------------------------------- events in the same transaction */

/*
 * A trigger that refuses to insert an event of a type listed in
 * itest_poison_types whose payload names "itest-poison-": the service's
 * transaction must then roll the consumer or key change back.
 */
static const char *const poison_create[] = {
    "CREATE TABLE IF NOT EXISTS itest_poison_types (event_type text "
    "PRIMARY KEY)",
    "DELETE FROM itest_poison_types",
    "CREATE OR REPLACE FUNCTION itest_poison_system_event() RETURNS "
    "trigger LANGUAGE plpgsql AS $f$ BEGIN "
    "IF NEW.payload::text LIKE '%itest-poison-%' AND EXISTS (SELECT 1 "
    "FROM itest_poison_types t WHERE t.event_type = NEW.event_type) THEN "
    "RAISE EXCEPTION 'itest poison trigger refused this event'; END IF; "
    "RETURN NEW; END $f$",
    "DROP TRIGGER IF EXISTS itest_poison_system_event ON customer_events",
    "CREATE TRIGGER itest_poison_system_event BEFORE INSERT ON "
    "customer_events FOR EACH ROW EXECUTE FUNCTION "
    "itest_poison_system_event()",
};
static const char *const poison_drop[] = {
    "DROP TRIGGER IF EXISTS itest_poison_system_event ON customer_events",
    "DROP FUNCTION IF EXISTS itest_poison_system_event()",
    "DROP TABLE IF EXISTS itest_poison_types",
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
poison(const char *event_type)
{
    PQclear(itest_sql0("DELETE FROM itest_poison_types"));
    if (event_type != NULL)
        PQclear(itest_sql("INSERT INTO itest_poison_types VALUES ($1)",
                          event_type));
}

static void
expect_rolled_back(struct itest_resp *r)
{
    itest_assert_internal_error(r);
    itest_resp_free(r);
}

static void
failed_event_insert_rolls_back_consumer_and_key_changes(void **state)
{
    (void)state;
    install_poison();
    struct api_consumer c;
    api_consumer_new(&c, "itest-poison");
    api_key_issue(&c);
    char first[64], body[160];
    snprintf(first, sizeof(first), "%s", c.key);
    long keys = itest_sql_long(
        "SELECT count(*) FROM consumer_api_keys WHERE consumer_id = $1", c.id);
    long events = itest_sql_long0(
        "SELECT count(*) FROM customer_events WHERE customer_id IS NULL");

    /* Issue: the new key is not stored, the old one not deactivated. */
    poison("api_key_creation");
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", c.id);
    expect_rolled_back(admin("POST", "/consumer/api-key", body, NULL));
    /* Rotation fails on the old key's deactivation event too. */
    poison("api_key_deactivation");
    expect_rolled_back(admin("POST", "/consumer/api-key", body, NULL));
    /* Deactivation of the key. */
    expect_rolled_back(deactivate_key(first, NULL));
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys WHERE "
                                "consumer_id = $1",
                                c.id) == keys,
                 "no key row may be left by the failed issues");
    char *st = key_column(first, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "active") == 0,
                 "the key must stay active when its change's event failed "
                 "(is %s)",
                 st);
    free(st);

    /* Status change of the consumer. */
    poison("consumer_status_change");
    expect_rolled_back(change_status(c.id, "DEACTIVATED", NULL));
    st = itest_sql_value("SELECT status FROM consumers WHERE consumer_id = $1",
                         c.id);
    itest_expect(NULL, st && strcmp(st, "ACTIVE") == 0,
                 "the status change must be rolled back with its event "
                 "(is %s)",
                 st);
    free(st);

    /* Creation of a consumer. */
    poison("consumer_creation");
    char name[64];
    unique_name(name, sizeof(name), "itest-poison");
    char *b = itest_json_text(json_pack("{s:s}", "consumer_name", name));
    expect_rolled_back(admin("POST", "/consumer/data", b, NULL));
    free(b);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumers WHERE "
                                "consumer_name = $1",
                                name) == 0,
                 "the consumer must be rolled back with its event");
    itest_expect(NULL,
                 itest_sql_long0("SELECT count(*) FROM customer_events WHERE "
                                 "customer_id IS NULL") == events,
                 "no event may be left by the failed changes");

    /* Lifted: everything works, the key was never touched. */
    poison(NULL);
    struct itest_resp *r = itest_get_customer(first, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    api_key_issue(&c);
    st = key_column(first, "api_key_status");
    itest_expect(NULL, st && strcmp(st, "deactivated") == 0,
                 "after the poison is lifted the rotation works (is %s)", st);
    free(st);
}

/* ------------------------------------------------------ all events */

static void
system_events_are_keyless_and_belong_to_the_system(void **state)
{
    (void)state;
    itest_expect(NULL,
                 itest_sql_long0(
                     "SELECT count(*) FROM customer_events WHERE event_type IN "
                     "('consumer_creation', 'consumer_status_change', "
                     "'api_key_creation', 'api_key_deactivation') AND "
                     "(customer_id IS NOT NULL OR consumer_id <> "
                     "'" ITEST_SYSTEM_CONSUMER_ID "')") == 0,
                 "every consumer and key event has customer_id NULL and "
                 "belongs to the system consumer");
    /* Events without a customer form one gapless sequence. */
    itest_expect(NULL,
                 itest_sql_long0("SELECT (count(*) = count(DISTINCT sequence) "
                                 "AND count(*) = max(sequence) - min(sequence) "
                                 "+ 1)::int FROM customer_events WHERE "
                                 "customer_id IS NULL") == 1,
                 "the system events' sequence must be one gapless series");
    itest_expect(NULL, g_nkeys > 0, "this binary issued keys");
    for (int i = 0; i < g_nkeys; i++) {
        char hash[65];
        itest_key_hash(g_keys[i], hash);
        itest_expect(NULL,
                     itest_sql_long("SELECT count(*) FROM customer_events "
                                    "WHERE strpos(payload::text, $1) > 0 "
                                    "   OR strpos(payload::text, $2) > 0",
                                    g_keys[i] + 3, hash) == 0,
                     "an event holds key %.11s... or its hash", g_keys[i]);
        itest_expect(NULL,
                     itest_sql_long("SELECT count(*) FROM consumer_api_keys k "
                                    "WHERE strpos(k::text, $1) > 0",
                                    g_keys[i] + 3) == 0,
                     "consumer_api_keys holds key %.11s... in clear",
                     g_keys[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_consumer_201_queue_and_event),
        cmocka_unit_test(create_consumer_name_rules_422),
        cmocka_unit_test(create_consumer_name_taken_409),
        cmocka_unit_test(get_consumer_200_404_422),
        cmocka_unit_test(change_status_round_trip_409_and_events),
        cmocka_unit_test(change_status_errors),
        cmocka_unit_test_teardown(system_consumer_cannot_be_deactivated_403,
                                  restore_system_teardown),
        cmocka_unit_test(issue_key_201_format_storage_default_expiry_event),
        cmocka_unit_test(issue_key_expiry_inputs),
        cmocka_unit_test(issue_key_unknown_consumer_404_deactivated_409),
        cmocka_unit_test(get_key_fields_and_never_the_key),
        cmocka_unit_test(rotation_in_one_transaction_old_key_refused),
        cmocka_unit_test(rotation_deactivates_an_expired_key),
        cmocka_unit_test(
            rotation_deactivates_an_expired_key_already_marked_expired),
        cmocka_unit_test(at_most_one_active_key_per_consumer),
        cmocka_unit_test(expired_key_is_401_and_shows_expired),
        cmocka_unit_test(deactivate_key_200_409_404_and_event),
        cmocka_unit_test_teardown(
            system_consumers_only_key_cannot_be_deactivated_403,
            restore_system_teardown),
        cmocka_unit_test_teardown(system_key_rotation_shorter_than_a_day_is_422,
                                  restore_system_teardown),
        cmocka_unit_test(lazy_expired_write_back_never_overwrites_deactivated),
        cmocka_unit_test(deactivated_consumer_keeps_its_keys),
        cmocka_unit_test_teardown(
            failed_event_insert_rolls_back_consumer_and_key_changes,
            remove_poison),
        cmocka_unit_test(system_events_are_keyless_and_belong_to_the_system),
    };
    return cmocka_run_group_tests_name("consumers", tests, itest_group_setup,
                                       itest_group_teardown);
}
