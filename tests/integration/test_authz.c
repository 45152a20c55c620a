/*
 * tests/integration/test_authz.c — authorization and tenancy of issue 4
 * through nginx (docs/API.md §4.4, §5), with consumers and keys made through
 * the administration API itself:
 *   - the full lifecycle: the administrator creates a consumer and issues
 *     its key, the consumer works with it, the key is rotated (the old one
 *     is refused within 5 s although workers cache lookups), the new key is
 *     deactivated (refused within 5 s), the consumer is deactivated (403
 *     within 5 s) and reactivated (works again);
 *   - 403 for an ordinary consumer on every administrator endpoint, before
 *     the body is even parsed, with nothing changed;
 *   - "A, or self": a consumer reads its own GET /consumer/data and any key
 *     of its own (previous, deactivated, expired ones too, docs/API.md §4.4),
 *     and gets 403 for anything else, existing or not, alike;
 *   - tenancy across two consumers on every customer and tag endpoint (and
 *     the events endpoints that name a customer or an event): another
 *     consumer's customer answers exactly like a missing one and nothing of
 *     it changes.
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct api_consumer {
    char id[37];
    char name[64];
    char key[64];
};

/* Two ordinary consumers, made through the API by the setup. */
static struct api_consumer g_a, g_b;

/* ------------------------------------------------------------- helpers */

static struct itest_resp *
admin(const char *method, const char *path, const char *body)
{
    return itest_request(method, path, itest_admin_key(), body, NULL);
}

static void
api_consumer_new(struct api_consumer *c, const char *prefix)
{
    memset(c, 0, sizeof(*c));
    itest_unique(c->name, sizeof(c->name), prefix);
    char *body = itest_json_text(json_pack("{s:s}", "consumer_name", c->name));
    struct itest_resp *r = admin("POST", "/consumer/data", body);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "consumer_name", c->name);
    snprintf(c->id, sizeof(c->id), "%s", itest_jstr(d, "consumer_id"));
    itest_resp_free(r);
}

static void
api_key_issue(struct api_consumer *c)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", c->id);
    struct itest_resp *r = admin("POST", "/consumer/api-key", body);
    json_t *d = itest_assert_envelope(r, 201);
    const char *k = itest_jstr(d, "api_key");
    itest_expect(r, k != NULL && strlen(k) == 46, "data.api_key");
    snprintf(c->key, sizeof(c->key), "%s", k);
    itest_resp_free(r);
}

static void
set_status(const char *consumer_id, const char *status)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\",\"status\":\"%s\"}",
             consumer_id, status);
    struct itest_resp *r = admin("POST", "/consumer/change-status", body);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

static void
deactivate_key(const char *key)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"api_key\":\"%s\"}", key);
    struct itest_resp *r = admin("POST", "/consumer/deactivate-api-key", body);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

static int
setup(void **state)
{
    if (itest_group_setup(state) != 0)
        return -1;
    api_consumer_new(&g_a, "authz-a");
    api_key_issue(&g_a);
    api_consumer_new(&g_b, "authz-b");
    api_key_issue(&g_b);
    return 0;
}

/* ----------------------------------------------------------- lifecycle */

static void
full_lifecycle(void **state)
{
    (void)state;
    /* The administrator creates a consumer and issues its key. */
    struct api_consumer c;
    api_consumer_new(&c, "lifecycle");
    api_key_issue(&c);

    /* The consumer works with it. */
    char x[37], name[96];
    itest_unique(name, sizeof(name), "lifecycle-customer");
    itest_create_customer(c.key, name, x);
    char *owner = itest_sql_value(
        "SELECT consumer_id::text FROM customers WHERE customer_id = $1", x);
    itest_expect(NULL, owner && strcmp(owner, c.id) == 0,
                 "the customer belongs to the new consumer");
    free(owner);
    struct itest_resp *r = itest_get_customer(c.key, x);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "name", name);
    itest_resp_free(r);
    r = itest_requestf("GET", c.key, NULL, "/consumer/data?consumer_id=%s",
                       c.id);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "consumer_name",
                      c.name);
    itest_resp_free(r);
    itest_warm_up(c.key, x);

    /* Rotation: the new key works at once, the old one stops within 5 s. */
    char k1[64];
    snprintf(k1, sizeof(k1), "%s", c.key);
    api_key_issue(&c);
    double t0 = itest_now();
    r = itest_get_customer(c.key, x);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    double took =
        itest_await_answer(k1, x, t0, 200, 401, "API key deactivated");
    print_message("      rotated key refused after %.2f s\n", took);

    /* Deactivating the key: refused within 5 s. */
    char k2[64];
    snprintf(k2, sizeof(k2), "%s", c.key);
    itest_warm_up(k2, x);
    deactivate_key(k2);
    t0 = itest_now();
    took = itest_await_answer(k2, x, t0, 200, 401, "API key deactivated");
    print_message("      deactivated key refused after %.2f s\n", took);
    r = itest_get_customer(k1, x);
    itest_assert_error(r, 401, "API key deactivated");
    itest_resp_free(r);

    /* A third key; then the consumer is deactivated: 403 within 5 s. */
    api_key_issue(&c);
    itest_warm_up(c.key, x);
    set_status(c.id, "DEACTIVATED");
    t0 = itest_now();
    char want[160];
    snprintf(want, sizeof(want), "Consumer \"%s\" is deactivated", c.name);
    took = itest_await_answer(c.key, x, t0, 200, 403, want);
    print_message("      deactivated consumer refused after %.2f s\n", took);
    /* Nothing gets through while it is deactivated. */
    char gone[96];
    itest_unique(gone, sizeof(gone), "while-deactivated");
    char *body = itest_json_text(json_pack("{s:s}", "name", gone));
    r = itest_request("POST", "/customer/data", c.key, body, NULL);
    free(body);
    itest_assert_error(r, 403, want);
    itest_resp_free(r);
    r = itest_requestf("GET", c.key, NULL, "/consumer/data?consumer_id=%s",
                       c.id);
    itest_assert_error(r, 403, want);
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customers WHERE name = "
                                "$1",
                                gone) == 0,
                 "a deactivated consumer must not create customers");

    /* Reactivated: the same key works again within 5 s. */
    set_status(c.id, "ACTIVE");
    t0 = itest_now();
    took = itest_await_answer(c.key, x, t0, 403, 200, NULL);
    print_message("      reactivated consumer works after %.2f s\n", took);
    r = itest_get_customer(c.key, x);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "name", name);
    itest_resp_free(r);
    /* The keys it lost stay lost. */
    r = itest_get_customer(k2, x);
    itest_assert_error(r, 401, "API key deactivated");
    itest_resp_free(r);
}

/* ------------------------------------------------ admin-only endpoints */

struct admin_call {
    const char *method, *path;
    char body[256]; /* "" = none */
};

static long
count_rows(const char *sql)
{
    return itest_sql_long0(sql);
}

static void
admin_endpoints_are_403_for_a_consumer(void **state)
{
    (void)state;
    char newname[64];
    itest_unique(newname, sizeof(newname), "never-created");
    struct admin_call calls[14];
    int n = 0;
#define CALL(m, p, ...)                                                        \
    do {                                                                       \
        calls[n].method = (m);                                                 \
        calls[n].path = (p);                                                   \
        snprintf(calls[n].body, sizeof(calls[n].body), __VA_ARGS__);           \
        n++;                                                                   \
    } while (0)
    CALL("POST", "/consumer/data", "{\"consumer_name\":\"%s\"}", newname);
    CALL("POST", "/consumer/change-status",
         "{\"consumer_id\":\"%s\",\"status\":\"DEACTIVATED\"}", g_b.id);
    CALL("POST", "/consumer/change-status",
         "{\"consumer_id\":\"%s\",\"status\":\"DEACTIVATED\"}", g_a.id);
    CALL("POST", "/consumer/change-status",
         "{\"consumer_id\":\"%s\",\"status\":\"DEACTIVATED\"}",
         ITEST_SYSTEM_CONSUMER_ID);
    CALL("POST", "/consumer/api-key", "{\"consumer_id\":\"%s\"}", g_b.id);
    CALL("POST", "/consumer/api-key", "{\"consumer_id\":\"%s\"}", g_a.id);
    CALL("POST", "/consumer/deactivate-api-key", "{\"api_key\":\"%s\"}",
         g_b.key);
    CALL("POST", "/consumer/deactivate-api-key", "{\"api_key\":\"%s\"}",
         g_a.key);
    CALL("POST", "/consumer/deactivate-api-key", "{\"api_key\":\"%s\"}",
         itest_admin_key());
    CALL("POST", "/events/resend", "%s", "{\"period_in_days\":1}");
    CALL("POST", "/events/redeliver", "%s", "{\"period_in_days\":1}");
    CALL("POST", "/events/redeliver",
         "{\"period_in_days\":1,"
         "\"consumer_id\":\"%s\"}",
         g_a.id);
    CALL("GET", "/events/health", "%s", "");
#undef CALL

    long consumers = count_rows("SELECT count(*) FROM consumers");
    long keys = count_rows("SELECT count(*) FROM consumer_api_keys");
    long active = count_rows("SELECT count(*) FROM consumer_api_keys WHERE "
                             "api_key_status = 'active'");
    long events = count_rows("SELECT count(*) FROM customer_events");
    long published = count_rows("SELECT coalesce(sum(publish_try_count + "
                                "deliver_try_count), 0) FROM "
                                "customer_events");

    for (int i = 0; i < n; i++) {
        const char *body = calls[i].body[0] ? calls[i].body : NULL;
        struct itest_resp *r =
            itest_request(calls[i].method, calls[i].path, g_a.key, body, NULL);
        itest_assert_error(r, 403, NULL);
        itest_resp_free(r);
    }
    /* The administrator check comes before the body and its fields. */
    static const char *const posts[] = {
        "/consumer/data",    "/consumer/change-status",
        "/consumer/api-key", "/consumer/deactivate-api-key",
        "/events/resend",    "/events/redeliver"};
    for (size_t i = 0; i < sizeof(posts) / sizeof(posts[0]); i++) {
        static const char *const bodies[] = {"{{{", "{\"nope\":1}", NULL};
        for (int j = 0; j < 3; j++) {
            struct itest_resp *r =
                itest_request("POST", posts[i], g_a.key, bodies[j], NULL);
            itest_assert_error(r, 403, NULL);
            itest_resp_free(r);
        }
    }
    struct itest_resp *r =
        itest_request("GET", "/events/health?x=1", g_a.key, NULL, NULL);
    itest_assert_error(r, 403, NULL);
    itest_resp_free(r);

    /* Nothing changed. */
    itest_expect(NULL,
                 count_rows("SELECT count(*) FROM consumers") == consumers,
                 "a refused call created a consumer");
    itest_expect(NULL,
                 count_rows("SELECT count(*) FROM consumer_api_keys") == keys,
                 "a refused call issued a key");
    itest_expect(NULL,
                 count_rows("SELECT count(*) FROM consumer_api_keys WHERE "
                            "api_key_status = 'active'") == active,
                 "a refused call deactivated a key");
    itest_expect(NULL,
                 count_rows("SELECT count(*) FROM customer_events") == events,
                 "a refused call wrote an event");
    itest_expect(NULL,
                 count_rows("SELECT coalesce(sum(publish_try_count + "
                            "deliver_try_count), 0) FROM customer_events") ==
                     published,
                 "a refused resend/redeliver tried to publish");
    itest_expect(
        NULL,
        count_rows("SELECT count(*) FROM consumers WHERE status <> "
                   "'ACTIVE' AND consumer_id IN ('" ITEST_SYSTEM_CONSUMER_ID
                   "')") == 0,
        "the system consumer must stay ACTIVE");
    char *st = itest_sql_value(
        "SELECT status FROM consumers WHERE consumer_id = $1", g_b.id);
    itest_expect(NULL, st && strcmp(st, "ACTIVE") == 0,
                 "B must stay ACTIVE (is %s)", st);
    free(st);
    /* Both keys still work. */
    char y[37];
    itest_random_uuid(y);
    r = itest_get_customer(g_a.key, y);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    r = itest_get_customer(g_b.key, y);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);

    /* The administrator passes the same gate. */
    r = admin("GET", "/events/health", NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

/* ------------------------------------------------------- A, or self */

static void
expect_same_403(struct itest_resp *a, const char *ida, struct itest_resp *b,
                const char *idb)
{
    itest_assert_error(a, 403, NULL);
    itest_assert_error(b, 403, NULL);
    char *da = itest_desc_without(a, ida, NULL);
    char *db = itest_desc_without(b, idb, NULL);
    itest_expect(a, strcmp(da, db) == 0,
                 "403 for an existing and a missing one must read alike: "
                 "[%s] vs [%s]",
                 itest_desc(a), itest_desc(b));
    free(da);
    free(db);
    itest_resp_free(a);
    itest_resp_free(b);
}

static void
consumer_reads_only_its_own_consumer_data(void **state)
{
    (void)state;
    struct itest_resp *r = itest_requestf(
        "GET", g_a.key, NULL, "/consumer/data?consumer_id=%s", g_a.id);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "consumer_id", "consumer_name", "status",
                      "created_at", "updated_at");
    itest_assert_jstr(r, d, "consumer_id", g_a.id);
    itest_assert_jstr(r, d, "consumer_name", g_a.name);
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_resp_free(r);

    /* Its own id in upper case is still its own. */
    char upper[37];
    snprintf(upper, sizeof(upper), "%s", g_a.id);
    itest_upper(upper);
    r = itest_requestf("GET", g_a.key, NULL, "/consumer/data?consumer_id=%s",
                       upper);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "consumer_id", g_a.id);
    itest_resp_free(r);
    /* JSON body form. */
    char body[96];
    snprintf(body, sizeof(body), "{\"consumer_id\":\"%s\"}", g_a.id);
    r = itest_request("GET", "/consumer/data", g_a.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);

    /* Another consumer, the administrator, a missing id: 403 alike. */
    char missing[37];
    itest_random_uuid(missing);
    expect_same_403(itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/data?consumer_id=%s", g_b.id),
                    g_b.id,
                    itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/data?consumer_id=%s", missing),
                    missing);
    expect_same_403(itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/data?consumer_id=%s",
                                   ITEST_SYSTEM_CONSUMER_ID),
                    ITEST_SYSTEM_CONSUMER_ID,
                    itest_requestf("GET", g_b.key, NULL,
                                   "/consumer/data?consumer_id=%s", missing),
                    missing);
    /* Validation comes before the self check. */
    r = itest_request("GET", "/consumer/data?consumer_id=abc", g_a.key, NULL,
                      NULL);
    itest_assert_error(r, 422, "consumer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);
}

static void
consumer_reads_only_its_own_key(void **state)
{
    (void)state;
    struct itest_resp *r = itest_requestf(
        "GET", g_a.key, NULL, "/consumer/api-key?api_key=%s", g_a.key);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "api_key_prefix", "consumer_id", "status",
                      "created_at", "expires_at", "updated_at");
    itest_assert_jstr(r, d, "consumer_id", g_a.id);
    itest_assert_jstr(r, d, "status", "active");
    itest_expect(r, strstr(r->body, g_a.key + 3) == NULL,
                 "GET /consumer/api-key must never return the full key");
    itest_resp_free(r);

    char unknown[64];
    itest_random_key(unknown);
    expect_same_403(itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/api-key?api_key=%s", g_b.key),
                    g_b.key,
                    itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/api-key?api_key=%s", unknown),
                    unknown);
    expect_same_403(itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/api-key?api_key=%s",
                                   itest_admin_key()),
                    itest_admin_key(),
                    itest_requestf("GET", g_b.key, NULL,
                                   "/consumer/api-key?api_key=%s", unknown),
                    unknown);
    r = itest_request("GET", "/consumer/api-key", g_a.key, NULL, NULL);
    itest_assert_error(r, 422, "Missing required field \"api_key\"");
    itest_resp_free(r);
}

/* docs/API.md §4.4: a consumer reads any key of its own — its previous
 * (deactivated) keys and expired ones too — while another consumer's key,
 * or one that does not exist, is 403 alike. */
static void
consumer_reads_any_key_of_its_own(void **state)
{
    (void)state;
    struct api_consumer c;
    api_consumer_new(&c, "ownkeys");
    api_key_issue(&c);
    char first[64];
    snprintf(first, sizeof(first), "%s", c.key);
    api_key_issue(&c); /* rotation: the first key is deactivated */
    itest_warm_up(c.key, NULL);

    /* an expired key of its own, stored as such */
    char expired[64];
    itest_random_key(expired);
    PQclear(itest_sql(
        "INSERT INTO consumer_api_keys (consumer_id, api_key_hash, "
        "api_key_prefix, api_key_status, expires_at) VALUES ($1, "
        "encode(sha256(convert_to($2, 'UTF8')), 'hex'), left($2, 11), "
        "'expired', now() - interval '1 hour')",
        c.id, expired));

    static const struct {
        const char *which, *status;
    } own[] = {{"first", "deactivated"},
               {"current", "active"},
               {"expired", "expired"}};
    const char *keys[] = {first, c.key, expired};
    for (size_t i = 0; i < 3; i++) {
        struct itest_resp *r = itest_requestf(
            "GET", c.key, NULL, "/consumer/api-key?api_key=%s", keys[i]);
        json_t *d = itest_assert_envelope(r, 200);
        itest_assert_jstr(r, d, "consumer_id", c.id);
        itest_expect(r, strcmp(itest_jstr(d, "status"), own[i].status) == 0,
                     "its %s key must read %s", own[i].which, own[i].status);
        itest_resp_free(r);
    }

    /* another consumer's previous key reads like a missing one */
    char unknown[64];
    itest_random_key(unknown);
    expect_same_403(itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/api-key?api_key=%s", first),
                    first,
                    itest_requestf("GET", g_a.key, NULL,
                                   "/consumer/api-key?api_key=%s", unknown),
                    unknown);
}

/* ------------------------------------------------------------ tenancy */

/* One request template, with %s for the customer (or event) id. */
struct tenancy_case {
    const char *method;
    const char *path; /* may hold one %s */
    const char *body; /* may hold one %s; NULL = none */
    long status;      /* what B gets for both */
};

/* tmpl with its "%s" (if any) replaced by id, into out. */
static void
subst(char *out, size_t size, const char *tmpl, const char *id)
{
    const char *at = strstr(tmpl, "%s");
    if (at == NULL)
        snprintf(out, size, "%s", tmpl);
    else
        snprintf(out, size, "%.*s%s%s", (int)(at - tmpl), tmpl, id, at + 2);
}

static struct itest_resp *
send_case(const struct tenancy_case *tc, const char *key, const char *id)
{
    char path[256], body[512];
    subst(path, sizeof(path), tc->path, id);
    if (tc->body != NULL)
        subst(body, sizeof(body), tc->body, id);
    return itest_request(tc->method, path, key, tc->body ? body : NULL, NULL);
}

static char *
customer_state(const char *id)
{
    return itest_sql_value(
        "SELECT c.name || '|' || c.status || '|' || "
        "       fintegrate_ts(c.updated_at) || '|' || coalesce((SELECT "
        "       string_agg(t.tag_key || '=' || t.tag_value || '@' || "
        "       fintegrate_ts(t.updated_at), ',' ORDER BY t.tag_key) FROM "
        "       customer_tags t WHERE t.customer_id = c.customer_id), '') "
        "       || '|' || (SELECT count(*) FROM customer_events e WHERE "
        "       e.customer_id = c.customer_id) || '|' || (SELECT count(*) "
        "       FROM customer_analytics a WHERE a.customer_id = "
        "       c.customer_id) || '|' || (SELECT count(*) FROM "
        "       consumer_event_receipts r WHERE r.customer_id = "
        "       c.customer_id) "
        "  FROM customers c WHERE c.customer_id = $1",
        id);
}

static void
tenancy_on_every_customer_and_tag_endpoint(void **state)
{
    (void)state;
    /* A's customer x with two tags and a snapshot; y is missing. */
    char x[37], y[37], name[96];
    itest_unique(name, sizeof(name), "tenant");
    char *body =
        itest_json_text(json_pack("{s:s, s:{s:s, s:s}}", "name", name, "tags",
                                  "color", "red", "size", "L"));
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_a.key, body, NULL);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    snprintf(x, sizeof(x), "%s", itest_jstr(d, "customer_id"));
    char ev[37];
    snprintf(ev, sizeof(ev), "%s", itest_jstr(d, "event_id"));
    itest_resp_free(r);
    char ab[96];
    snprintf(ab, sizeof(ab), "{\"customer_id\":\"%s\"}", x);
    r = itest_request("POST", "/customer/analytics", g_a.key, ab, NULL);
    itest_assert_envelope(r, 201);
    itest_resp_free(r);
    itest_random_uuid(y);
    char *before = customer_state(x);

    static const struct tenancy_case cases[] = {
        {"GET", "/customer/data?customer_id=%s", NULL, 404},
        {"GET", "/customer/data", "{\"customer_id\":\"%s\"}", 404},
        {"DELETE", "/customer/data", "{\"customer_id\":\"%s\"}", 404},
        {"DELETE", "/customer/data?customer_id=%s", NULL, 404},
        {"PATCH", "/customer/change-status",
         "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", 404},
        {"PATCH", "/customer/change-status",
         "{\"customer_id\":\"%s\",\"status\":\"ACTIVE\"}", 404},
        {"POST", "/customer/analytics", "{\"customer_id\":\"%s\"}", 404},
        {"GET", "/customer/analytics?customer_id=%s", NULL, 404},
        {"POST", "/customer/tag",
         "{\"customer_id\":\"%s\",\"tag_keys\":[\"new\"],"
         "\"tag_values\":[\"v\"]}",
         404},
        {"POST", "/customer/tag",
         "{\"customer_id\":\"%s\",\"tag_keys\":[\"color\"],"
         "\"tag_values\":[\"v\"]}",
         404},
        {"GET", "/customer/tag-value?customer_id=%s&tag_key=color", NULL, 404},
        {"GET", "/customer/tag-value?customer_id=%s&tag_key=nothere", NULL,
         404},
        {"DELETE", "/customer/tag",
         "{\"customer_id\":\"%s\",\"tag_key\":"
         "\"color\"}",
         404},
        {"DELETE", "/customer/tag?customer_id=%s&tag_key=color", NULL, 404},
        {"PATCH", "/customer/tag-key",
         "{\"customer_id\":\"%s\",\"tag_key\":\"color\","
         "\"new_tag_key\":\"hue\"}",
         404},
        {"PATCH", "/customer/tag-key",
         "{\"customer_id\":\"%s\",\"tag_key\":\"color\","
         "\"new_tag_key\":\"size\"}",
         404},
        {"PATCH", "/customer/tag-value",
         "{\"customer_id\":\"%s\",\"tag_key\":\"color\","
         "\"new_tag_value\":\"blue\"}",
         404},
        {"PATCH", "/customer/tag-value",
         "{\"customer_id\":\"%s\",\"tag_key\":\"color\","
         "\"new_tag_value\":\"red\"}",
         404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        itest_expect_like_missing(send_case(&cases[i], g_b.key, x), x,
                                  send_case(&cases[i], g_b.key, y), y,
                                  cases[i].status);

    /* GET /events about another's customer: 200 and empty, like missing. */
    static const struct tenancy_case list = {"GET", "/events?customer_id=%s",
                                             NULL, 200};
    r = send_case(&list, g_b.key, x);
    d = itest_assert_envelope(r, 200);
    json_t *events = json_object_get(d, "events");
    itest_expect(r, json_is_array(events) && json_array_size(events) == 0,
                 "GET /events must list none of another consumer's events");
    itest_resp_free(r);
    r = itest_request("GET",
                      "/events?event_types=customer_creation&limit=1000"
                      "&order=desc",
                      g_b.key, NULL, NULL);
    d = itest_assert_envelope(r, 200);
    events = json_object_get(d, "events");
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        itest_expect(r,
                     itest_jstr(e, "customer_id") == NULL ||
                         strcmp(itest_jstr(e, "customer_id"), x) != 0,
                     "B's event list holds A's customer's event");
    }
    itest_resp_free(r);

    /* Confirming another consumer's event: like a missing event. */
    char missing_ev[37];
    itest_random_uuid(missing_ev);
    static const struct tenancy_case confirm = {
        "POST", "/events/confirm-delivery",
        "{\"event_id\":\"%s\",\"status\":\"received\"}", 404};
    itest_expect_like_missing(send_case(&confirm, g_b.key, ev), ev,
                              send_case(&confirm, g_b.key, missing_ev),
                              missing_ev, 404);

    /* Nothing of x changed. */
    char *after = customer_state(x);
    itest_expect(NULL, before && after && strcmp(before, after) == 0,
                 "B's refused calls changed A's customer: [%s] -> [%s]",
                 before ? before : "", after ? after : "");
    free(before);
    free(after);
    char *dstat = itest_sql_value(
        "SELECT deliver_status FROM customer_events WHERE event_id = $1", ev);
    itest_expect(NULL, dstat && strcmp(dstat, "delivered") != 0,
                 "B's confirmation must not mark A's event delivered");
    free(dstat);

    /* The owner and the administrator still see x as before. */
    r = itest_requestf("GET", g_a.key, NULL,
                       "/customer/tag-value?customer_id=%s&tag_key=color", x);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", "red");
    itest_resp_free(r);
    r = itest_requestf("GET", itest_admin_key(), NULL,
                       "/customer/tag-value?customer_id=%s&tag_key=size", x);
    itest_assert_jstr(r, itest_assert_envelope(r, 200), "tag_value", "L");
    itest_resp_free(r);
    r = itest_requestf("GET", g_a.key, NULL,
                       "/customer/analytics?customer_id=%s", x);
    d = itest_assert_envelope(r, 200);
    itest_expect(r, json_array_size(json_object_get(d, "snapshots")) == 1,
                 "A's customer has exactly its one snapshot");
    itest_resp_free(r);
    r = itest_requestf("GET", g_a.key, NULL, "/events?customer_id=%s", x);
    d = itest_assert_envelope(r, 200);
    itest_expect(r, json_array_size(json_object_get(d, "events")) == 1,
                 "A lists its customer's one event");
    itest_resp_free(r);

    /* And B's own customer is B's alone. */
    char z[37];
    itest_unique(name, sizeof(name), "tenant-b");
    itest_create_customer(g_b.key, name, z);
    r = itest_get_customer(g_a.key, z);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    r = itest_get_customer(g_b.key, z);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_lifecycle),
        cmocka_unit_test(admin_endpoints_are_403_for_a_consumer),
        cmocka_unit_test(consumer_reads_only_its_own_consumer_data),
        cmocka_unit_test(consumer_reads_only_its_own_key),
        cmocka_unit_test(consumer_reads_any_key_of_its_own),
        cmocka_unit_test(tenancy_on_every_customer_and_tag_endpoint),
    };
    return cmocka_run_group_tests_name("authz", tests, setup,
                                       itest_group_teardown);
}
