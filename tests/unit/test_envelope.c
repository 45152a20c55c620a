/*
 * tests/unit/test_envelope.c — http/envelope.h (envelope_render: headers
 * and the contract's envelope, docs/API.md §3.1) and core/http_status.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_status.h"
#include "http/envelope.h"

/* ---- a rendered response, split and parsed --------------------------------
 */

#define MAX_HEADERS 16

struct rendered {
    long ret;  /* envelope_render's return */
    char *raw; /* the whole output (owned) */
    size_t nheaders;
    char *names[MAX_HEADERS]; /* owned */
    char *values[MAX_HEADERS];
    const char *body; /* inside raw */
    size_t body_len;
    json_t *json; /* the parsed body (owned) */
};

static void
rendered_free(struct rendered *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->raw);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Renders `env` and checks the framing every response must have: CRLF
 * header lines "Name: value", a blank line, then a JSON object body whose
 * byte length is the return value. */
static void
render(const struct envelope *env, struct rendered *r)
{
    struct strbuf sb = STRBUF_INIT;
    memset(r, 0, sizeof *r);
    r->ret = envelope_render(env, &sb);
    assert_false(sb.oom);
    r->raw = sb_steal(&sb);
    assert_non_null(r->raw);

    const char *end = strstr(r->raw, "\r\n\r\n");
    assert_non_null(end);
    const char *line = r->raw;
    while (line < end + 2) {
        const char *eol = strstr(line, "\r\n");
        assert_non_null(eol);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        assert_non_null(colon);
        assert_int_equal(colon[1], ' ');
        assert_true(r->nheaders < MAX_HEADERS);
        r->names[r->nheaders] = strndup(line, (size_t)(colon - line));
        r->values[r->nheaders] = strndup(colon + 2, (size_t)(eol - colon - 2));
        /* no stray CR or LF inside a header line */
        assert_null(memchr(line, '\n', (size_t)(eol - line)));
        r->nheaders++;
        line = eol + 2;
    }
    r->body = end + 4;
    r->body_len = strlen(r->body);
    assert_true(r->ret >= 0);
    assert_int_equal((size_t)r->ret, r->body_len);

    json_error_t jerr;
    r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (r->json == NULL)
        fail_msg("body is not JSON (%s): %s", jerr.text, r->body);
    assert_true(json_is_object(r->json));
}

/* The value of header `name` (case-sensitive, as written), or NULL. */
static const char *
header(const struct rendered *r, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcmp(r->names[i], name) == 0) {
            assert_null(found); /* never twice */
            found = r->values[i];
        }
    }
    return found;
}

/* Checks the exact header set: Status, Content-Type, X-Request-ID (when
 * given), Allow (when given), Content-Length; nothing else. */
static void
expect_headers(const struct rendered *r, int status, const char *request_id,
               const char *allow)
{
    char want[64];
    size_t expected = 3;

    snprintf(want, sizeof want, "%d %s", status, http_status_reason(status));
    assert_string_equal(r->names[0], "Status");
    assert_string_equal(header(r, "Status"), want);
    assert_string_equal(header(r, "Content-Type"), "application/json");
    snprintf(want, sizeof want, "%zu", r->body_len);
    assert_string_equal(header(r, "Content-Length"), want);
    if (request_id != NULL) {
        assert_string_equal(header(r, "X-Request-ID"), request_id);
        expected++;
    } else {
        assert_null(header(r, "X-Request-ID"));
    }
    if (allow != NULL) {
        assert_string_equal(header(r, "Allow"), allow);
        expected++;
    } else {
        assert_null(header(r, "Allow"));
    }
    assert_int_equal(r->nheaders, expected);
}

/* Checks the body's shape: exactly {data: object, detail: {status_code,
 * status_name, status_description}}, all strings, status_code the status. */
static void
expect_body(const struct rendered *r, int status, const char *description)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);

    assert_int_equal(json_object_size(r->json), 2);
    json_t *data = json_object_get(r->json, "data");
    json_t *detail = json_object_get(r->json, "detail");
    assert_true(json_is_object(data));
    assert_true(json_is_object(detail));
    assert_int_equal(json_object_size(detail), 3);
    json_t *sc = json_object_get(detail, "status_code");
    json_t *sn = json_object_get(detail, "status_name");
    json_t *sd = json_object_get(detail, "status_description");
    assert_true(json_is_string(sc)); /* a string, not a number */
    assert_true(json_is_string(sn));
    assert_true(json_is_string(sd));
    assert_string_equal(json_string_value(sc), code);
    assert_string_equal(json_string_value(sn), http_status_name(status));
    if (description != NULL)
        assert_string_equal(json_string_value(sd), description);
    /* status_code equals the status line */
    assert_memory_equal(header(r, "Status"), code, 3);
    /* "data" comes first, as in the contract's example */
    assert_memory_equal(r->body, "{\"data\":", 8);
}

/* ---- success ------------------------------------------------------------- */

static void
test_created_with_data(void **state)
{
    (void)state;
    json_t *data =
        json_pack("{s:s, s:s}", "customer_id",
                  "93fe20dd-031b-41f9-a989-e67220d41dd9", "status", "ACTIVE");
    struct envelope env = {
        .status = 201, .data = data, .request_id = "req-123"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 201, "req-123", NULL);
    assert_string_equal(header(&r, "Status"), "201 Created");
    expect_body(&r, 201, "Success");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r.json, "detail"), "status_name")),
                        "CREATED");
    assert_true(json_equal(json_object_get(r.json, "data"), data));
    /* data is borrowed: the caller's reference is untouched */
    assert_int_equal(data->refcount, 1);
    rendered_free(&r);
    json_decref(data);
}

static void
test_exact_bytes(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:i}", "n", 1);
    struct envelope env = {.status = 200, .data = data, .request_id = "r1"};
    struct strbuf sb = STRBUF_INIT;
    const char *body =
        "{\"data\":{\"n\":1},\"detail\":{\"status_code\":\"200\","
        "\"status_name\":\"OK\",\"status_description\":"
        "\"Success\"}}";
    char want[512];
    snprintf(want, sizeof want,
             "Status: 200 OK\r\nContent-Type: application/json\r\n"
             "X-Request-ID: r1\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    assert_int_equal(envelope_render(&env, &sb), (long)strlen(body));
    assert_string_equal(sb_str(&sb), want);
    sb_free(&sb);
    json_decref(data);
}

static void
test_success_without_data(void **state)
{
    (void)state;
    struct envelope env = {.status = 200, .request_id = "abc"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 200, "abc", NULL);
    expect_body(&r, 200, "Success");
    assert_int_equal(json_object_size(json_object_get(r.json, "data")), 0);
    rendered_free(&r);
}

/* On < 400 the message is ignored: the description is exactly "Success". */
static void
test_success_ignores_message(void **state)
{
    (void)state;
    json_t *data = json_object();
    struct envelope env = {.status = 200,
                           .data = data,
                           .message = "should not appear",
                           .request_id = "x"};
    struct rendered r;
    render(&env, &r);
    expect_body(&r, 200, "Success");
    assert_null(strstr(r.body, "should not appear"));
    rendered_free(&r);
    json_decref(data);
}

/* ---- errors ------------------------------------------------------------- */

static void
test_error_drops_data(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s}", "secret", "must not leak");
    struct envelope env = {
        .status = 422,
        .data = data,
        .message = "status must be one of ACTIVE, INACTIVE (got \"japapa\")",
        .request_id = "rid"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 422, "rid", NULL);
    assert_string_equal(header(&r, "Status"), "422 Unprocessable Entity");
    expect_body(&r, 422,
                "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    assert_int_equal(json_object_size(json_object_get(r.json, "data")), 0);
    assert_null(strstr(r.body, "must not leak"));
    assert_int_equal(data->refcount, 1);
    rendered_free(&r);
    json_decref(data);
}

static void
test_error_without_message(void **state)
{
    (void)state;
    struct envelope env = {.status = 404, .request_id = "rid"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 404, "rid", NULL);
    expect_body(&r, 404, NULL);
    const char *d = json_string_value(json_object_get(
        json_object_get(r.json, "detail"), "status_description"));
    assert_true(d[0] != '\0');
    assert_string_not_equal(d, "Success");
    rendered_free(&r);

    env.message = ""; /* empty counts as no message */
    render(&env, &r);
    d = json_string_value(json_object_get(json_object_get(r.json, "detail"),
                                          "status_description"));
    assert_true(d[0] != '\0');
    rendered_free(&r);
}

static void
test_method_not_allowed_has_allow(void **state)
{
    (void)state;
    struct envelope env = {.status = 405,
                           .message = "Method PUT is not allowed",
                           .request_id = "rid",
                           .allow = "POST, GET, DELETE"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 405, "rid", "POST, GET, DELETE");
    assert_string_equal(header(&r, "Status"), "405 Method Not Allowed");
    expect_body(&r, 405, "Method PUT is not allowed");
    rendered_free(&r);

    env.allow = ""; /* empty: no header */
    render(&env, &r);
    expect_headers(&r, 405, "rid", NULL);
    rendered_free(&r);
}

static void
test_message_is_json_escaped(void **state)
{
    (void)state;
    const char *msg = "Unknown field \"a\\b\"; tab\there; newline\nthere";
    struct envelope env = {.status = 422, .message = msg, .request_id = "r"};
    struct rendered r;
    render(&env, &r);
    expect_body(&r, 422, msg); /* round-trips through JSON exactly */
    rendered_free(&r);
}

/* ---- unknown statuses become 500 ---------------------------------------- */

static void
test_unknown_status_is_500(void **state)
{
    (void)state;
    const int odd[] = {0, -1, 100, 204, 299, 302, 418, 499, 505, 600, 99999};
    json_t *data = json_pack("{s:i}", "x", 1);
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        struct envelope env = {.status = odd[i],
                               .data = data,
                               .message = "boom",
                               .request_id = "r"};
        struct rendered r;
        render(&env, &r);
        expect_headers(&r, 500, "r", NULL);
        assert_string_equal(header(&r, "Status"), "500 Internal Server Error");
        expect_body(&r, 500, NULL);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(r.json, "detail"),
                                              "status_name")),
            "INTERNAL_SERVER_ERROR");
        /* a 500 never carries data */
        assert_int_equal(json_object_size(json_object_get(r.json, "data")), 0);
        rendered_free(&r);
    }
    json_decref(data);
}

/* ---- bytes ----------------------------------------------------------------
 */

static void
test_non_ascii_kept_verbatim(void **state)
{
    (void)state;
    const char *name = "Zo\xC3\xAB \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80";
    json_t *data = json_pack("{s:s}", "name", name);
    struct envelope env = {.status = 200, .data = data, .request_id = "r"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 200, "r", NULL);
    expect_body(&r, 200, "Success");
    assert_non_null(strstr(r.body, name)); /* raw UTF-8 in the body */
    assert_null(strstr(r.body, "\\u"));    /* not \u-escaped */
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r.json, "data"), "name")),
                        name);
    /* Content-Length counts bytes, not characters */
    char len[32];
    snprintf(len, sizeof len, "%zu", strlen(r.body));
    assert_string_equal(header(&r, "Content-Length"), len);
    rendered_free(&r);
    json_decref(data);
}

static void
test_non_ascii_message_verbatim(void **state)
{
    (void)state;
    const char *msg = "name must be 1 to 255 characters (got \"\xC3\xA9\")";
    struct envelope env = {.status = 422, .message = msg, .request_id = "r"};
    struct rendered r;
    render(&env, &r);
    /* quotes are escaped, the é is not */
    assert_non_null(strstr(r.body, "(got \\\"\xC3\xA9\\\")"));
    assert_null(strstr(r.body, "\\u"));
    expect_body(&r, 422, msg);
    rendered_free(&r);
}

#define R "\xEF\xBF\xBD" /* U+FFFD */

/* docs/API.md §3.3: a sentence that is not UTF-8 (it echoes a path of
 * arbitrary bytes) keeps its status; the bytes that are not text become
 * U+FFFD instead of turning the answer into a 500. */
static void
test_message_not_utf8_keeps_status(void **state)
{
    (void)state;
    const char *msg = "No endpoint /\xFF\xC3(\xED\xA0\x80\xF4\x90\x80\x80"
                      "\xC3\xA9";
    struct envelope env = {.status = 404, .message = msg, .request_id = "r"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 404, "r", NULL);
    expect_body(&r, 404, "No endpoint /" R R "(" R R R R R R R "\xC3\xA9");
    rendered_free(&r);
}
#undef R

static void
test_large_body_content_length(void **state)
{
    (void)state;
    char *big = malloc(70001);
    assert_non_null(big);
    memset(big, 'b', 70000);
    big[70000] = '\0';
    json_t *data = json_pack("{s:s}", "blob", big);
    struct envelope env = {.status = 200, .data = data, .request_id = "r"};
    struct rendered r;
    render(&env, &r);
    expect_headers(&r, 200, "r", NULL);
    assert_true(r.body_len > 70000);
    rendered_free(&r);
    json_decref(data);
    free(big);
}

/* envelope_render appends to what the strbuf already holds. */
static void
test_render_appends(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    sb_puts(&sb, "PREFIX");
    struct envelope env = {.status = 200, .request_id = "r"};
    long n = envelope_render(&env, &sb);
    assert_true(n > 0);
    assert_memory_equal(sb_str(&sb), "PREFIXStatus: 200 OK\r\n", 22);
    assert_int_equal(strlen(sb_str(&sb) + sb.len - n), (size_t)n);
    sb_free(&sb);
}

/* ---- every status of HTTP_STATUS_LIST -------------------------------------
 */

static const struct {
    int code;
    const char *name, *reason;
} statuses[] = {
#define X(code, name, reason) {code, #name, reason},
    HTTP_STATUS_LIST(X)
#undef X
};
static const size_t statuses_n = sizeof statuses / sizeof statuses[0];

static void
test_every_status_rendered(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:b}", "ok", 1);
    for (size_t i = 0; i < statuses_n; i++) {
        int code = statuses[i].code;
        struct envelope env = {.status = code,
                               .data = data,
                               .message = "Something to act on",
                               .request_id = "every-status",
                               .allow = code == 405 ? "GET" : NULL};
        struct rendered r;
        char status_line[64];
        render(&env, &r);
        snprintf(status_line, sizeof status_line, "%d %s", code,
                 statuses[i].reason);
        expect_headers(&r, code, "every-status", env.allow);
        assert_string_equal(header(&r, "Status"), status_line);
        expect_body(&r, code, code < 400 ? "Success" : "Something to act on");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(r.json, "detail"),
                                              "status_name")),
            statuses[i].name);
        assert_int_equal(json_object_size(json_object_get(r.json, "data")),
                         code < 400 ? 1 : 0);
        rendered_free(&r);
    }
    json_decref(data);
}

static void
test_http_status_lookups(void **state)
{
    (void)state;
    for (size_t i = 0; i < statuses_n; i++) {
        assert_string_equal(http_status_name(statuses[i].code),
                            statuses[i].name);
        assert_string_equal(http_status_reason(statuses[i].code),
                            statuses[i].reason);
        assert_true(http_status_known(statuses[i].code));
    }
    const int unknown[] = {0, -1, 1, 100, 202, 204, 302, 418, 499, 505, 999};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_false(http_status_known(unknown[i]));
        assert_string_equal(http_status_name(unknown[i]),
                            "INTERNAL_SERVER_ERROR");
        assert_string_equal(http_status_reason(unknown[i]),
                            "Internal Server Error");
    }
}

/* The status names are exactly the contract's list (docs/API.md §3.2). */
static void
test_status_names_match_contract(void **state)
{
    (void)state;
    static const char *const contract[] = {"OK",
                                           "CREATED",
                                           "BAD_REQUEST",
                                           "UNAUTHORIZED",
                                           "FORBIDDEN",
                                           "NOT_FOUND",
                                           "METHOD_NOT_ALLOWED",
                                           "CONFLICT",
                                           "PAYLOAD_TOO_LARGE",
                                           "UNPROCESSABLE_ENTITY",
                                           "TOO_MANY_REQUESTS",
                                           "INTERNAL_SERVER_ERROR",
                                           "NOT_IMPLEMENTED",
                                           "BAD_GATEWAY",
                                           "SERVICE_UNAVAILABLE",
                                           "GATEWAY_TIMEOUT"};
    assert_int_equal(statuses_n, sizeof contract / sizeof contract[0]);
    for (size_t i = 0; i < statuses_n; i++)
        assert_string_equal(statuses[i].name, contract[i]);
    assert_int_equal(HTTP_UNPROCESSABLE_ENTITY, 422);
    assert_int_equal(HTTP_METHOD_NOT_ALLOWED, 405);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_created_with_data),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_success_without_data),
        cmocka_unit_test(test_success_ignores_message),
        cmocka_unit_test(test_error_drops_data),
        cmocka_unit_test(test_error_without_message),
        cmocka_unit_test(test_method_not_allowed_has_allow),
        cmocka_unit_test(test_message_is_json_escaped),
        cmocka_unit_test(test_unknown_status_is_500),
        cmocka_unit_test(test_non_ascii_kept_verbatim),
        cmocka_unit_test(test_non_ascii_message_verbatim),
        cmocka_unit_test(test_message_not_utf8_keeps_status),
        cmocka_unit_test(test_large_body_content_length),
        cmocka_unit_test(test_render_appends),
        cmocka_unit_test(test_every_status_rendered),
        cmocka_unit_test(test_http_status_lookups),
        cmocka_unit_test(test_status_names_match_contract),
    };
    return cmocka_run_group_tests_name(
        "http/envelope and core/http_status: headers and the contract's "
        "envelope",
        tests, NULL, NULL);
}
