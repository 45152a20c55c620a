/*
 * tests/integration/test_customers.c — the customer endpoints of issue 2
 * through nginx: POST, GET and DELETE /customer/data and
 * PATCH /customer/change-status, every success and error path, and bad
 * input (wrong types, limits, NUL, unknown fields) with "nothing written"
 * checked in the database. Pipeline-wide rules (400s, 404/405, auth, query
 * strings) live in test_pipeline.c.
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The consumer every test here acts as (created in SQL by the setup). */
static struct itest_consumer g_c;

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_c, NULL);
}

/* ------------------------------------------------------------- helpers */

static struct itest_resp *
post(const char *body)
{
    return itest_request("POST", "/customer/data", g_c.key, body, NULL);
}

static struct itest_resp *
patch(const char *body)
{
    return itest_request("PATCH", "/customer/change-status", g_c.key, body,
                         NULL);
}

/* POST body must be rejected with status/exact description; no row named
 * marker* may exist afterwards. */
static void
expect_create_rejected(const char *body, long status, const char *exact,
                       const char *needle, const char *marker)
{
    long before_events = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1", g_c.id);
    struct itest_resp *r = post(body);
    if (exact != NULL)
        itest_assert_error(r, status, exact);
    else
        itest_assert_error_contains(r, status, needle);
    if (marker != NULL)
        itest_expect(r, itest_count_named(marker) == 0,
                     "a rejected create wrote a customers row named %s*",
                     marker);
    long after_events = itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1", g_c.id);
    itest_expect(r, after_events == before_events,
                 "a rejected create wrote %ld customer_events row(s)",
                 after_events - before_events);
    itest_resp_free(r);
}

static void
get_customer(const char *id, long expect_status, struct itest_resp **out)
{
    struct itest_resp *r = itest_requestf("GET", g_c.key, NULL,
                                          "/customer/data?customer_id=%s", id);
    itest_assert_envelope(r, expect_status);
    if (out != NULL)
        *out = r;
    else
        itest_resp_free(r);
}

/* ----------------------------------------------------------------- POST */

static void
create_minimal_returns_201_envelope(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "Ada");
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    struct itest_resp *r = post(body);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_keys(r, d, "customer_id", "name", "status", "created_at",
                      "event_id");
    itest_expect(r, itest_is_uuid(itest_jstr(d, "customer_id")),
                 "customer_id must be a lower-case UUID");
    itest_expect(r, itest_is_uuid(itest_jstr(d, "event_id")),
                 "event_id must be a lower-case UUID");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "created_at")),
                 "created_at must look like 2025-10-23T14:34:51.467162Z");
    itest_assert_jstr(r, d, "name", name);
    itest_assert_jstr(r, d, "status", "ACTIVE");

    /* The row exists, belongs to the caller, with the same values. */
    const char *id = itest_jstr(d, "customer_id");
    PGresult *q = itest_sql(
        "SELECT name, status, consumer_id::text, fintegrate_ts(created_at) "
        "FROM customers WHERE customer_id = $1",
        id);
    itest_expect(r, PQntuples(q) == 1, "no customers row for %s", id);
    itest_expect(r, strcmp(PQgetvalue(q, 0, 0), name) == 0, "stored name");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 1), "ACTIVE") == 0,
                 "stored status");
    itest_expect(r, strcmp(PQgetvalue(q, 0, 2), g_c.id) == 0,
                 "customers.consumer_id must be the caller's consumer");
    itest_expect(r,
                 strcmp(PQgetvalue(q, 0, 3), itest_jstr(d, "created_at")) == 0,
                 "created_at in the response (%s) must be the stored one "
                 "(%s)",
                 itest_jstr(d, "created_at"), PQgetvalue(q, 0, 3));
    PQclear(q);
    itest_resp_free(r);
}

static void
create_inactive(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "inactive");
    char *body = itest_json_text(
        json_pack("{s:s, s:s}", "name", name, "status", "INACTIVE"));
    struct itest_resp *r = post(body);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "status", "INACTIVE");
    struct itest_resp *g;
    get_customer(itest_jstr(d, "customer_id"), 200, &g);
    itest_assert_jstr(g, itest_data(g), "status", "INACTIVE");
    itest_resp_free(g);
    itest_resp_free(r);
}

static void
create_status_null_means_default(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "nullstatus");
    char *body =
        itest_json_text(json_pack("{s:s, s:n}", "name", name, "status"));
    struct itest_resp *r = post(body);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_resp_free(r);
}

static void
create_trims_name(void **state)
{
    (void)state;
    char core[96], padded[128];
    itest_unique(core, sizeof(core), "Ada Lovelace");
    snprintf(padded, sizeof(padded), " \t %s \n\r ", core);
    char *body = itest_json_text(json_pack("{s:s}", "name", padded));
    struct itest_resp *r = post(body);
    free(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "name", core);
    struct itest_resp *g;
    get_customer(itest_jstr(d, "customer_id"), 200, &g);
    itest_assert_jstr(g, itest_data(g), "name", core);
    itest_resp_free(g);
    char *stored =
        itest_sql_value("SELECT name FROM customers WHERE customer_id = $1",
                        itest_jstr(d, "customer_id"));
    itest_expect(r, stored && strcmp(stored, core) == 0,
                 "stored name must be trimmed, is [%s]", stored);
    free(stored);
    itest_resp_free(r);
}

/* name of exactly n copies of unit (plus optional padding): status. */
static void
create_name_len(const char *unit, int n, const char *pad, long status)
{
    char *core = itest_repeat(unit, n);
    size_t len = strlen(core) + 2 * strlen(pad) + 1;
    char *name = malloc(len);
    snprintf(name, len, "%s%s%s", pad, core, pad);
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    long before = itest_count_named(core);
    struct itest_resp *r = post(body);
    if (status == 201) {
        json_t *d = itest_assert_envelope(r, 201);
        itest_assert_jstr(r, d, "name", core);
        struct itest_resp *g;
        get_customer(itest_jstr(d, "customer_id"), 200, &g);
        itest_assert_jstr(g, itest_data(g), "name", core);
        itest_resp_free(g);
    } else {
        itest_assert_error_contains(r, status, "name");
        itest_expect(r, itest_count_named(core) == before,
                     "a rejected name was stored");
    }
    itest_resp_free(r);
    free(body);
    free(name);
    free(core);
}

static void
create_name_255_two_byte_chars_ok(void **state)
{
    (void)state;
    create_name_len("\xc3\xa9", 255, "", 201); /* é × 255 = 510 bytes */
}

static void
create_name_256_two_byte_chars_422(void **state)
{
    (void)state;
    create_name_len("\xc3\xa9", 256, "", 422);
}

static void
create_name_255_four_byte_chars_ok(void **state)
{
    (void)state;
    create_name_len("\xf0\x9f\x98\x80", 255, "", 201); /* 😀 × 255 */
}

static void
create_name_256_ascii_422(void **state)
{
    (void)state;
    create_name_len("z", 256, "", 422);
}

static void
create_name_255_ascii_padded_ok(void **state)
{
    (void)state;
    /* 255 after trimming, 261 before: the limit applies after the trim. */
    create_name_len("y", 255, "   ", 201);
}

static void
create_rejects_missing_name(void **state)
{
    (void)state;
    expect_create_rejected("{}", 422, "Missing required field \"name\"", NULL,
                           NULL);
    expect_create_rejected("{\"status\":\"ACTIVE\"}", 422,
                           "Missing required field \"name\"", NULL, NULL);
}

static void
create_rejects_wrong_types(void **state)
{
    (void)state;
    expect_create_rejected("{\"name\":5}", 422, "name must be a string (got 5)",
                           NULL, NULL);
    expect_create_rejected("{\"name\":null}", 422, NULL, "name", NULL);
    expect_create_rejected("{\"name\":true}", 422, NULL, "name", NULL);
    expect_create_rejected("{\"name\":[\"a\"]}", 422, NULL, "name", NULL);
    expect_create_rejected("{\"name\":{\"first\":\"a\"}}", 422, NULL, "name",
                           NULL);
    expect_create_rejected("{\"name\":1.5}", 422, NULL, "name", NULL);
    char marker[96], body[256];
    itest_unique(marker, sizeof(marker), "badstatus");
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":5}", marker);
    expect_create_rejected(body, 422, NULL, "status", marker);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":true}", marker);
    expect_create_rejected(body, 422, NULL, "status", marker);
}

static void
create_rejects_empty_and_blank_names(void **state)
{
    (void)state;
    expect_create_rejected("{\"name\":\"\"}", 422, NULL, "name", NULL);
    expect_create_rejected("{\"name\":\"   \"}", 422, NULL, "name", NULL);
    expect_create_rejected("{\"name\":\" \\t\\n \"}", 422, NULL, "name", NULL);
}

static void
create_rejects_nul(void **state)
{
    (void)state;
    char marker[96], body[256];
    itest_unique(marker, sizeof(marker), "nul");
    snprintf(body, sizeof(body), "{\"name\":\"%s\\u0000tail\"}", marker);
    expect_create_rejected(body, 422, NULL, "NUL", marker);
    /* The message names the field too. */
    struct itest_resp *r = post(body);
    itest_assert_error_contains(r, 422, "name");
    itest_resp_free(r);
}

static void
create_rejects_huge_name(void **state)
{
    (void)state;
    /* ~60 KB: under nginx's 64 KiB cap, far over 255 characters. */
    char marker[96];
    itest_unique(marker, sizeof(marker), "huge");
    char *pad = itest_repeat("x", 60000);
    size_t len = strlen(pad) + 200;
    char *body = malloc(len);
    snprintf(body, len, "{\"name\":\"%s%s\"}", marker, pad);
    expect_create_rejected(body, 422, NULL, "name", marker);
    free(body);
    free(pad);
}

static void
create_rejects_unknown_fields(void **state)
{
    (void)state;
    char marker[96], body[256];
    itest_unique(marker, sizeof(marker), "unknown");
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"stauts\":\"ACTIVE\"}",
             marker);
    expect_create_rejected(body, 422, "Unknown field \"stauts\"", NULL, marker);
    /* The consumer field is never taken from the body. */
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"consumer_id\":\"%s\"}",
             marker, ITEST_SYSTEM_CONSUMER_ID);
    expect_create_rejected(body, 422, "Unknown field \"consumer_id\"", NULL,
                           marker);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"customer_id\":\"%s\"}",
             marker, "2b1c1e7e-8a53-4b7a-9d8e-0c6d1f2a3b4c");
    expect_create_rejected(body, 422, "Unknown field \"customer_id\"", NULL,
                           marker);
}

static void
create_reports_all_problems_unknown_first(void **state)
{
    (void)state;
    expect_create_rejected("{\"nme\":\"Ada\"}", 422,
                           "Unknown field \"nme\"; Missing required field "
                           "\"name\"",
                           NULL, NULL);
    expect_create_rejected("{\"name\":5,\"x\":1}", 422,
                           "Unknown field \"x\"; name must be a string (got 5)",
                           NULL, NULL);
}

static void
create_rejects_bad_status(void **state)
{
    (void)state;
    char marker[96], body[256];
    itest_unique(marker, sizeof(marker), "enum");
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\"japapa\"}",
             marker);
    expect_create_rejected(
        body, 422, "status must be one of ACTIVE, INACTIVE (got \"japapa\")",
        NULL, marker);
    /* Enums are case-sensitive. */
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\"active\"}",
             marker);
    expect_create_rejected(
        body, 422, "status must be one of ACTIVE, INACTIVE (got \"active\")",
        NULL, marker);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\"DELETED\"}",
             marker);
    expect_create_rejected(
        body, 422, "status must be one of ACTIVE, INACTIVE (got \"DELETED\")",
        NULL, marker);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\" ACTIVE\"}",
             marker);
    expect_create_rejected(
        body, 422, "status must be one of ACTIVE, INACTIVE (got \" ACTIVE\")",
        NULL, marker);
}

/* JSON escapes are decoded, in field names too; a surrogate pair is one
 * code point stored as UTF-8. */
static void
create_decodes_json_escapes(void **state)
{
    (void)state;
    char m[96], body[256], want[160];
    itest_unique(m, sizeof(m), "esc");
    snprintf(body, sizeof(body),
             "{\"n\\u0061me\":\"%s \\ud83d\\ude00 \\u00e9\\/\"}", m);
    snprintf(want, sizeof(want), "%s \xf0\x9f\x98\x80 \xc3\xa9/", m);
    struct itest_resp *r = post(body);
    json_t *d = itest_assert_envelope(r, 201);
    itest_assert_jstr(r, d, "name", want);
    char *stored =
        itest_sql_value("SELECT name FROM customers WHERE customer_id = $1",
                        itest_jstr(d, "customer_id"));
    itest_expect(r, stored && strcmp(stored, want) == 0,
                 "stored name must be the decoded text");
    free(stored);
    itest_resp_free(r);
}

/* A lone surrogate is not a character: rejected, never stored. */
static void
create_rejects_lone_surrogate(void **state)
{
    (void)state;
    char m[96], body[256];
    itest_unique(m, sizeof(m), "surrogate");
    snprintf(body, sizeof(body), "{\"name\":\"%s\\ud800x\"}", m);
    struct itest_resp *r = post(body);
    itest_expect(r, r->status == 400 || r->status == 422,
                 "a lone surrogate must be a 400 or 422");
    itest_assert_envelope(r, r->status);
    itest_expect(r, itest_count_named(m) == 0, "nothing may be stored");
    itest_resp_free(r);
}

/* Text that is accepted comes back byte for byte, from the API and the DB. */
static void
create_round_trips_text_verbatim(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "Robert'); DROP TABLE customers;--",
        "' OR '1'='1",
        "Zo\xc3\xab \xc3\x91"
        "and\xc3\xba "
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89", /* Zoë Ñandú
                                                                    日本語 🎉 */
        "e\xcc\x81 vs \xc3\xa9",             /* combining accent, no NFC */
        "\"quoted\" \\back\\slash\\ /slash", /* JSON escapes */
        "tab\tinside and\nnewline inside",   /* inner whitespace stays */
        "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85",
        "line\xe2\x80\xa8separator", /* U+2028 */
        "$1 %s %n {{}} <script>alert(1)</script>",
        "controls \x7f\x01\x1f"
        " inside",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *body = itest_json_text(json_pack("{s:s}", "name", texts[i]));
        struct itest_resp *r = post(body);
        free(body);
        json_t *d = itest_assert_envelope(r, 201);
        itest_expect(r, strcmp(itest_jstr(d, "name"), texts[i]) == 0,
                     "POST must return the name verbatim: [%s]", texts[i]);
        const char *id = itest_jstr(d, "customer_id");
        struct itest_resp *g;
        get_customer(id, 200, &g);
        itest_expect(g,
                     strcmp(itest_jstr(itest_data(g), "name"), texts[i]) == 0,
                     "GET must return the name verbatim: [%s]", texts[i]);
        char *stored = itest_sql_value(
            "SELECT name FROM customers WHERE customer_id = $1", id);
        itest_expect(g, stored && strcmp(stored, texts[i]) == 0,
                     "the database must hold the name verbatim: [%s] vs [%s]",
                     texts[i], stored ? stored : "<none>");
        free(stored);
        itest_resp_free(g);
        itest_resp_free(r);
    }
    /* The SQL-looking names did nothing to the table (it still answers). */
    PQclear(itest_sql0("SELECT count(*) FROM customers"));
}

/* ------------------------------------------------------------------ GET */

static void
get_returns_the_customer(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "getme");
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    struct itest_resp *c = post(body);
    free(body);
    json_t *cd = itest_assert_envelope(c, 201);
    const char *id = itest_jstr(cd, "customer_id");

    struct itest_resp *g;
    get_customer(id, 200, &g);
    json_t *d = itest_data(g);
    itest_assert_keys(g, d, "customer_id", "name", "status", "created_at",
                      "updated_at", "tags");
    itest_assert_jstr(g, d, "customer_id", id);
    itest_assert_jstr(g, d, "name", name);
    itest_assert_jstr(g, d, "status", "ACTIVE");
    itest_assert_jstr(g, d, "created_at", itest_jstr(cd, "created_at"));
    itest_expect(g, itest_is_timestamp(itest_jstr(d, "updated_at")),
                 "updated_at must be a timestamp");
    json_t *tags = json_object_get(d, "tags");
    itest_expect(g, json_is_object(tags) && json_object_size(tags) == 0,
                 "tags must be {} until the tags issue");
    itest_resp_free(g);
    itest_resp_free(c);
}

static void
get_accepts_upper_case_uuid_and_answers_lower_case(void **state)
{
    (void)state;
    char id[37], upper[37];
    itest_make_customer(g_c.key, "cust", id);
    memcpy(upper, id, 37);
    itest_upper(upper);
    struct itest_resp *g;
    get_customer(upper, 200, &g);
    itest_assert_jstr(g, itest_data(g), "customer_id", id);
    itest_resp_free(g);
}

static void
get_reads_json_body_when_query_empty(void **state)
{
    (void)state;
    char id[37], body[128];
    itest_make_customer(g_c.key, "cust", id);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    struct itest_resp *g =
        itest_request("GET", "/customer/data", g_c.key, body, NULL);
    json_t *d = itest_assert_envelope(g, 200);
    itest_assert_jstr(g, d, "customer_id", id);
    itest_resp_free(g);
}

static void
get_unknown_customer_404(void **state)
{
    (void)state;
    char id[37];
    itest_random_uuid(id);
    struct itest_resp *g;
    get_customer(id, 404, &g);
    itest_assert_error(g, 404, NULL);
    itest_resp_free(g);
}

static void
get_missing_customer_id_422(void **state)
{
    (void)state;
    struct itest_resp *r =
        itest_request("GET", "/customer/data", g_c.key, NULL, NULL);
    itest_assert_error(r, 422, "Missing required field \"customer_id\"");
    itest_resp_free(r);
}

static void
get_bad_uuid_422(void **state)
{
    (void)state;
    struct itest_resp *r = itest_request(
        "GET", "/customer/data?customer_id=abc", g_c.key, NULL, NULL);
    itest_assert_error(r, 422, "customer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);

    /* Only the 8-4-4-4-12 form is a UUID. */
    static const char *const bad[] = {
        "0123456789abcdef0123456789abcdef",
        "%7B01234567-89ab-cdef-0123-456789abcdef%7D",
        "urn:uuid:01234567-89ab-cdef-0123-456789abcdef",
        "01234567-89ab-cdef-0123-456789abcde",
        "01234567-89ab-cdef-0123-456789abcdeff",
        "0123456789-ab-cdef-0123-456789abcdef",
        "g1234567-89ab-cdef-0123-456789abcdef",
        "",
        "%00",
        "01234567-89ab-cdef-0123-456789abcdef%00",
        "01234567-89ab-cdef-0123-456789abcdef%20",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = itest_requestf("GET", g_c.key, NULL,
                           "/customer/data?customer_id=%s", bad[i]);
        itest_assert_error_contains(r, 422, "customer_id");
        itest_resp_free(r);
    }
    /* A malformed %-escape: rejected, naming the problem (the query string
     * may be refused before any field is looked at). */
    static const char *const escapes[] = {"%zz", "%2", "abc%g0"};
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        r = itest_requestf("GET", g_c.key, NULL,
                           "/customer/data?customer_id=%s", escapes[i]);
        itest_expect(r, r->status == 400 || r->status == 422,
                     "a malformed %%-escape is a 400 or 422");
        itest_assert_error(r, r->status, NULL);
        itest_resp_free(r);
    }
    /* A parameter without '=' has no value; a bare '?' is no input. */
    r = itest_request("GET", "/customer/data?customer_id", g_c.key, NULL, NULL);
    itest_assert_error_contains(r, 422, "customer_id");
    itest_resp_free(r);
    r = itest_request("GET", "/customer/data?", g_c.key, NULL, NULL);
    itest_assert_error(r, 422, "Missing required field \"customer_id\"");
    itest_resp_free(r);
    /* A JSON number is not a UUID either. */
    r = itest_request("GET", "/customer/data", g_c.key, "{\"customer_id\":123}",
                      NULL);
    itest_assert_error_contains(r, 422, "customer_id");
    itest_resp_free(r);
}

static void
get_percent_encoded_query(void **state)
{
    (void)state;
    char id[37], enc[80];
    itest_make_customer(g_c.key, "cust", id);
    /* Every '-' written as %2D: the query string is percent-decoded. */
    char *o = enc;
    for (const char *p = id; *p; p++) {
        if (*p == '-') {
            memcpy(o, "%2D", 3);
            o += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    struct itest_resp *g;
    get_customer(enc, 200, &g);
    itest_assert_jstr(g, itest_data(g), "customer_id", id);
    itest_resp_free(g);
}

/* --------------------------------------------------------------- DELETE */

static void
delete_by_body(void **state)
{
    (void)state;
    char id[37], body[128];
    itest_make_customer(g_c.key, "cust", id);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    struct itest_resp *r =
        itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "customer_id", "deleted_at", "event_id");
    itest_assert_jstr(r, d, "customer_id", id);
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "deleted_at")),
                 "deleted_at must be a timestamp");
    itest_expect(r, itest_is_uuid(itest_jstr(d, "event_id")),
                 "event_id must be a lower-case UUID");
    itest_expect(r,
                 itest_sql_long("SELECT count(*) FROM customers WHERE "
                                "customer_id = $1",
                                id) == 0,
                 "the customers row must be gone");
    itest_resp_free(r);

    get_customer(id, 404, NULL);
    /* Deleting again: it does not exist any more. */
    r = itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

static void
delete_by_query_string(void **state)
{
    (void)state;
    char id[37], upper[37];
    itest_make_customer(g_c.key, "cust", id);
    memcpy(upper, id, 37);
    itest_upper(upper);
    struct itest_resp *r = itest_requestf(
        "DELETE", g_c.key, NULL, "/customer/data?customer_id=%s", upper);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "customer_id", id);
    itest_resp_free(r);
    get_customer(id, 404, NULL);
}

static void
delete_body_wins_over_query(void **state)
{
    (void)state;
    char a[37], b[37], body[128], path[128];
    itest_make_customer(g_c.key, "cust", a);
    itest_make_customer(g_c.key, "cust", b);
    snprintf(path, sizeof(path), "/customer/data?customer_id=%s", a);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", b);
    struct itest_resp *r = itest_request("DELETE", path, g_c.key, body, NULL);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "customer_id", b);
    itest_resp_free(r);
    get_customer(b, 404, NULL);
    get_customer(a, 200, NULL);
}

static void
delete_errors(void **state)
{
    (void)state;
    struct itest_resp *r =
        itest_request("DELETE", "/customer/data", g_c.key, NULL, NULL);
    itest_assert_error(r, 422, "Missing required field \"customer_id\"");
    itest_resp_free(r);

    r = itest_request("DELETE", "/customer/data", g_c.key,
                      "{\"customer_id\":\"abc\"}", NULL);
    itest_assert_error(r, 422, "customer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);

    char id[37], body[160];
    itest_random_uuid(id);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    r = itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);

    /* Unknown field on an existing customer: 422 and nothing deleted. */
    char mine[37];
    itest_make_customer(g_c.key, "cust", mine);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"force\":true}",
             mine);
    r = itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    itest_assert_error(r, 422, "Unknown field \"force\"");
    itest_resp_free(r);
    get_customer(mine, 200, NULL);
    itest_expect(NULL, itest_count_events(mine) == 1,
                 "a rejected DELETE must write no event");
}

/* ---------------------------------------------------------------- PATCH */

static void
change_status_ok(void **state)
{
    (void)state;
    char id[37], body[160];
    itest_make_customer(g_c.key, "cust", id);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", id);
    struct itest_resp *r = patch(body);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_keys(r, d, "customer_id", "status", "previous_status",
                      "updated_at", "event_id");
    itest_assert_jstr(r, d, "customer_id", id);
    itest_assert_jstr(r, d, "status", "INACTIVE");
    itest_assert_jstr(r, d, "previous_status", "ACTIVE");
    itest_expect(r, itest_is_timestamp(itest_jstr(d, "updated_at")),
                 "updated_at must be a timestamp");
    itest_expect(r, itest_is_uuid(itest_jstr(d, "event_id")),
                 "event_id must be a lower-case UUID");

    struct itest_resp *g;
    get_customer(id, 200, &g);
    json_t *gd = itest_data(g);
    itest_assert_jstr(g, gd, "status", "INACTIVE");
    itest_assert_jstr(g, gd, "updated_at", itest_jstr(d, "updated_at"));
    itest_expect(
        g,
        strcmp(itest_jstr(gd, "updated_at"), itest_jstr(gd, "created_at")) >= 0,
        "updated_at must not be before created_at");
    itest_resp_free(g);
    itest_resp_free(r);

    /* And back. */
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"ACTIVE\"}", id);
    r = patch(body);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_assert_jstr(r, d, "previous_status", "INACTIVE");
    itest_resp_free(r);
}

static void
change_status_same_status_409(void **state)
{
    (void)state;
    char id[37], body[160], want[160];
    itest_make_customer(g_c.key, "cust", id);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"ACTIVE\"}", id);
    snprintf(want, sizeof(want), "Customer %s is already ACTIVE", id);
    long events = itest_count_events(id);
    struct itest_resp *r = patch(body);
    itest_assert_error(r, 409, want);
    itest_expect(r, itest_count_events(id) == events,
                 "a 409 must write no event");
    itest_resp_free(r);

    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", id);
    r = patch(body);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = patch(body);
    snprintf(want, sizeof(want), "Customer %s is already INACTIVE", id);
    itest_assert_error(r, 409, want);
    itest_resp_free(r);

    /* Sent upper-case, the message still names the id lower-case. */
    char upper[37];
    memcpy(upper, id, 37);
    itest_upper(upper);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", upper);
    r = patch(body);
    itest_assert_error(r, 409, want);
    itest_resp_free(r);
}

static void
change_status_validation(void **state)
{
    (void)state;
    char id[37], body[200];
    itest_make_customer(g_c.key, "cust", id);
    long events = itest_count_events(id);

    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"japapa\"}", id);
    struct itest_resp *r = patch(body);
    itest_assert_error(
        r, 422, "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    itest_resp_free(r);

    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"inactive\"}", id);
    r = patch(body);
    itest_assert_error(
        r, 422, "status must be one of ACTIVE, INACTIVE (got \"inactive\")");
    itest_resp_free(r);

    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    r = patch(body);
    itest_assert_error(r, 422, "Missing required field \"status\"");
    itest_resp_free(r);

    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"status\":null}",
             id);
    r = patch(body);
    itest_assert_error_contains(r, 422, "status");
    itest_resp_free(r);

    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"status\":1}", id);
    r = patch(body);
    itest_assert_error_contains(r, 422, "status");
    itest_resp_free(r);

    r = patch("{\"status\":\"INACTIVE\"}");
    itest_assert_error(r, 422, "Missing required field \"customer_id\"");
    itest_resp_free(r);

    r = patch("{\"customer_id\":\"abc\",\"status\":\"INACTIVE\"}");
    itest_assert_error(r, 422, "customer_id must be a UUID (got \"abc\")");
    itest_resp_free(r);

    r = patch("{\"customer_id\":42,\"status\":\"INACTIVE\"}");
    itest_assert_error_contains(r, 422, "customer_id");
    itest_resp_free(r);

    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\","
             "\"reason\":\"x\"}",
             id);
    r = patch(body);
    itest_assert_error(r, 422, "Unknown field \"reason\"");
    itest_resp_free(r);

    /* Nothing of that changed the customer or wrote an event. */
    struct itest_resp *g;
    get_customer(id, 200, &g);
    itest_assert_jstr(g, itest_data(g), "status", "ACTIVE");
    itest_resp_free(g);
    itest_expect(NULL, itest_count_events(id) == events,
                 "rejected PATCHes wrote events");
}

static void
change_status_unknown_customer_404(void **state)
{
    (void)state;
    char id[37], body[160];
    itest_random_uuid(id);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", id);
    struct itest_resp *r = patch(body);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);

    /* Validation comes before existence (docs/API.md §3.3). */
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"japapa\"}", id);
    r = patch(body);
    itest_assert_error(
        r, 422, "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    itest_resp_free(r);

    /* A deleted customer is gone for PATCH too. */
    char del[37];
    itest_make_customer(g_c.key, "cust", del);
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", del);
    r = itest_request("DELETE", "/customer/data", g_c.key, body, NULL);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", del);
    r = patch(body);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_minimal_returns_201_envelope),
        cmocka_unit_test(create_inactive),
        cmocka_unit_test(create_status_null_means_default),
        cmocka_unit_test(create_trims_name),
        cmocka_unit_test(create_name_255_two_byte_chars_ok),
        cmocka_unit_test(create_name_256_two_byte_chars_422),
        cmocka_unit_test(create_name_255_four_byte_chars_ok),
        cmocka_unit_test(create_name_256_ascii_422),
        cmocka_unit_test(create_name_255_ascii_padded_ok),
        cmocka_unit_test(create_rejects_missing_name),
        cmocka_unit_test(create_rejects_wrong_types),
        cmocka_unit_test(create_rejects_empty_and_blank_names),
        cmocka_unit_test(create_rejects_nul),
        cmocka_unit_test(create_rejects_huge_name),
        cmocka_unit_test(create_rejects_unknown_fields),
        cmocka_unit_test(create_reports_all_problems_unknown_first),
        cmocka_unit_test(create_rejects_bad_status),
        cmocka_unit_test(create_decodes_json_escapes),
        cmocka_unit_test(create_rejects_lone_surrogate),
        cmocka_unit_test(create_round_trips_text_verbatim),
        cmocka_unit_test(get_returns_the_customer),
        cmocka_unit_test(get_accepts_upper_case_uuid_and_answers_lower_case),
        cmocka_unit_test(get_reads_json_body_when_query_empty),
        cmocka_unit_test(get_unknown_customer_404),
        cmocka_unit_test(get_missing_customer_id_422),
        cmocka_unit_test(get_bad_uuid_422),
        cmocka_unit_test(get_percent_encoded_query),
        cmocka_unit_test(delete_by_body),
        cmocka_unit_test(delete_by_query_string),
        cmocka_unit_test(delete_body_wins_over_query),
        cmocka_unit_test(delete_errors),
        cmocka_unit_test(change_status_ok),
        cmocka_unit_test(change_status_same_status_409),
        cmocka_unit_test(change_status_validation),
        cmocka_unit_test(change_status_unknown_customer_404),
    };
    return itest_exit(cmocka_run_group_tests_name("customers", tests, setup,
                                                  itest_group_teardown));
}
