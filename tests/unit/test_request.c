/*
 * tests/unit/test_request.c — http/request.h: query_parse, body_parse and
 * which input request_input picks (docs/API.md §2.2).  No FastCGI:
 * request_input only reads the struct's fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/request.h"

/* ---- helpers --------------------------------------------------------------
 */

static json_t *
parse(const char *text)
{
    json_error_t jerr;
    json_t *v =
        json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (v == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return v;
}

static void
expect_json(json_t *got, const char *want_text)
{
    json_t *want = parse(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("got %s, expected %s", g, want_text);
    }
    json_decref(want);
}

static void
query_ok(const char *query, const char *want)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    if (query_parse(query, &out, &err) != 0)
        fail_msg("query \"%s\" rejected: %s", query, err.msg);
    assert_int_equal(err.status, 0);
    assert_true(json_is_object(out));
    expect_json(out, want);
    json_decref(out);
}

static void
query_bad(const char *query, int status)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = (json_t *)&err; /* not NULL */
    if (query_parse(query, &out, &err) != -1)
        fail_msg("query \"%s\" accepted", query);
    assert_null(out);
    assert_int_equal(err.status, status);
    assert_non_null(err.msg);
    assert_true(err.msg[0] != '\0');
    err_clear(&err);
}

static void
body_ok(const char *body, size_t len, const char *want)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    if (body_parse(body, len, &out, &err) != 0)
        fail_msg("body rejected: %s", err.msg);
    assert_true(json_is_object(out));
    expect_json(out, want);
    json_decref(out);
}

/* Expects a 400; returns the message (owned; free()). */
static char *
body_bad(const char *body, size_t len)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = (json_t *)&err;
    if (body_parse(body, len, &out, &err) != -1)
        fail_msg("body accepted: %.*s", (int)len, body);
    assert_null(out);
    assert_int_equal(err.status, 400);
    assert_non_null(err.msg);
    char *msg = strdup(err.msg);
    err_clear(&err);
    return msg;
}

#define BODY_OK(lit, want) body_ok((lit), sizeof(lit) - 1, (want))
#define BODY_BAD(lit) body_bad((lit), sizeof(lit) - 1)

/* ---- query_parse ------------------------------------------------------------
 */

static void
test_query_simple(void **state)
{
    (void)state;
    query_ok("", "{}");
    query_ok("a=1", "{\"a\":\"1\"}");
    query_ok("a=1&b=2", "{\"a\":\"1\",\"b\":\"2\"}");
    query_ok("customer_id=93fe20dd-031b-41f9-a989-e67220d41dd9",
             "{\"customer_id\":\"93fe20dd-031b-41f9-a989-e67220d41dd9\"}");
    /* values are always strings */
    query_ok("limit=10&flag=true", "{\"limit\":\"10\",\"flag\":\"true\"}");
    /* a name without '=' or with an empty value is an empty string */
    query_ok("a", "{\"a\":\"\"}");
    query_ok("a=", "{\"a\":\"\"}");
    /* only the first '=' splits */
    query_ok("a=b=c", "{\"a\":\"b=c\"}");
}

static void
test_query_percent_decoding(void **state)
{
    (void)state;
    query_ok("name=John%20Doe", "{\"name\":\"John Doe\"}");
    query_ok("name=John+Doe", "{\"name\":\"John Doe\"}");
    query_ok("name=a%2Bb", "{\"name\":\"a+b\"}");
    query_ok("q=a%3Db%26c", "{\"q\":\"a=b&c\"}");
    query_ok("q=%25", "{\"q\":\"%\"}");
    /* names are decoded too */
    query_ok("event%5Ftypes=x", "{\"event_types\":\"x\"}");
    query_ok("my+name=x", "{\"my name\":\"x\"}");
    /* UTF-8, escaped or raw */
    query_ok("name=Zo%C3%AB", "{\"name\":\"Zo\xC3\xAB\"}");
    query_ok("name=Zo\xC3\xAB", "{\"name\":\"Zo\xC3\xAB\"}");
    query_ok("name=%F0%9F%98%80", "{\"name\":\"\xF0\x9F\x98\x80\"}");
}

static void
test_query_repeated_names(void **state)
{
    (void)state;
    query_ok("t=a&t=b", "{\"t\":[\"a\",\"b\"]}");
    query_ok("t=a&t=b&t=c", "{\"t\":[\"a\",\"b\",\"c\"]}");
    query_ok("t=a&x=1&t=b&t=c", "{\"t\":[\"a\",\"b\",\"c\"],\"x\":\"1\"}");
    /* the same name, spelled differently on the wire */
    query_ok("a=1&%61=2", "{\"a\":[\"1\",\"2\"]}");
    query_ok("t=&t=", "{\"t\":[\"\",\"\"]}");
    query_ok("event_types=a,b&event_types=c",
             "{\"event_types\":[\"a,b\",\"c\"]}");
}

static void
test_query_empty_pairs_skipped(void **state)
{
    (void)state;
    query_ok("&", "{}");
    query_ok("&&&", "{}");
    query_ok("&a=1", "{\"a\":\"1\"}");
    query_ok("a=1&", "{\"a\":\"1\"}");
    query_ok("a=1&&b=2", "{\"a\":\"1\",\"b\":\"2\"}");
    query_ok("&&a=1&&&b=2&&", "{\"a\":\"1\",\"b\":\"2\"}");
}

static void
test_query_malformed_escape(void **state)
{
    (void)state;
    const char *bad[] = {"a=%",   "a=%2", "a=%zz",  "a=%2g", "a=1&b=%",
                         "%zz=1", "%=1",  "a=100%", "a=%%41"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        query_bad(bad[i], 422);
}

static void
test_query_invalid_utf8(void **state)
{
    (void)state;
    const char *bad[] = {
        "a=%FF",          /* never valid */
        "a=%C3",          /* truncated */
        "a=%C3%28",       /* bad continuation */
        "a=%C0%80",       /* overlong NUL */
        "a=%E0%80%80",    /* overlong */
        "a=%ED%A0%80",    /* surrogate U+D800 */
        "a=%F4%90%80%80", /* above U+10FFFF */
        "%FF=1",          /* in a name */
        "a=\xFF",         /* raw, not escaped */
        "a=ok&b=%80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        query_bad(bad[i], 422);
}

static void
test_query_nul(void **state)
{
    (void)state;
    /* a NUL in a value reaches the validator, which rejects it */
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    assert_int_equal(query_parse("a=x%00y", &out, &err), 0);
    json_t *a = json_object_get(out, "a");
    assert_int_equal(json_string_length(a), 3);
    assert_memory_equal(json_string_value(a), "x\0y", 3);
    json_decref(out);
    /* a NUL in a name cannot be represented: 422 at once */
    query_bad("a%00b=1", 422);
}

/* ---- body_parse -------------------------------------------------------------
 */

static void
test_body_valid(void **state)
{
    (void)state;
    BODY_OK("{}", "{}");
    BODY_OK("{\"a\":1}", "{\"a\":1}");
    BODY_OK(
        "  \n{\"name\":\"Zo\xC3\xAB\",\"n\":null,\"t\":[1,{\"x\":true}]}\n ",
        "{\"name\":\"Zo\xC3\xAB\",\"n\":null,\"t\":[1,{\"x\":true}]}");
    BODY_OK("{\"e\":\"\\u00e9\\ud83d\\ude00\"}",
            "{\"e\":\"\xC3\xA9\xF0\x9F\x98\x80\"}");
    /* only len bytes are read */
    body_ok("{\"a\":1}GARBAGE", 7, "{\"a\":1}");
}

static void
test_body_not_json(void **state)
{
    (void)state;
    const char *bad[] = {"abc",
                         "{",
                         "}",
                         "{\"a\":}",
                         "{'a':1}",
                         "{a:1}",
                         "{\"a\":1,}",
                         "{\"a\":1} x",
                         "{\"a\":1}{}",
                         "{\"a\":\"\xFF\"}",
                         "{\"a\":\"\\ud800\"}",
                         " ",
                         "{\"a\":01}",
                         "{\"a\":NaN}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *msg = body_bad(bad[i], strlen(bad[i]));
        free(msg);
    }
    char *msg = body_bad("", 0);
    free(msg);
    msg = BODY_BAD("nope");
    /* a sentence for the client, not a library message */
    assert_non_null(strstr(msg, "not valid JSON"));
    free(msg);
}

static void
test_body_not_an_object(void **state)
{
    (void)state;
    const char *bad[] = {"[]",   "[1,2]", "5",     "-1.5",       "\"x\"",
                         "null", "true",  "false", "[{\"a\":1}]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *msg = body_bad(bad[i], strlen(bad[i]));
        if (strstr(msg, "must be a JSON object") == NULL)
            fail_msg("%s: %s", bad[i], msg);
        free(msg);
    }
}

static void
test_body_duplicate_keys(void **state)
{
    (void)state;
    const char *bad[] = {"{\"a\":1,\"a\":2}", "{\"a\":1,\"b\":2,\"a\":1}",
                         "{\"o\":{\"k\":1,\"k\":2}}",
                         "{\"l\":[{\"k\":1,\"k\":1}]}",
                         "{\"a\":1,\"\\u0061\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *msg = body_bad(bad[i], strlen(bad[i]));
        if (strstr(msg, "duplicate") == NULL)
            fail_msg("%s: %s", bad[i], msg);
        free(msg);
    }
}

static void
test_body_nul_accepted_by_parser(void **state)
{
    (void)state;
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    const char body[] = "{\"name\":\"Jo\\u0000hn\"}";
    assert_int_equal(body_parse(body, sizeof body - 1, &out, &err), 0);
    json_t *name = json_object_get(out, "name");
    assert_int_equal(json_string_length(name), 5);
    assert_memory_equal(json_string_value(name), "Jo\0hn", 5);
    json_decref(out);
}

/* Expects a 422 with exactly `want` as the sentence. */
static void
body_422(const char *body, const char *want)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = (json_t *)&err;
    if (body_parse(body, strlen(body), &out, &err) != -1)
        fail_msg("body accepted: %s", body);
    assert_null(out);
    if (err.status != 422 || strcmp(err.msg, want) != 0)
        fail_msg("%s: got %d \"%s\", expected 422 \"%s\"", body, err.status,
                 err.msg, want);
    err_clear(&err);
}

/* docs/API.md §2.3: valid JSON that jansson cannot hold is 422 naming the
 * field, not 400 — a NUL in an object key, a number out of range. */
static void
test_body_nul_in_key_is_422(void **state)
{
    (void)state;
    body_422("{\"name\":\"x\",\"a\\u0000b\":1}",
             "Field names must not contain NUL characters (got "
             "\"a\\u0000b\")");
    body_422("{\"tags\":{\"k\\u0000\":\"v\",\"ok\":\"\\u0000\"}}",
             "tags keys must not contain NUL characters (got \"k\\u0000\")");
    body_422("{\"l\":[1,{\"\\u0000\":2}]}",
             "l[1] keys must not contain NUL characters (got \"\\u0000\")");
    /* an escaped backslash before u0000 is not a NUL */
    BODY_OK("{\"a\\\\u0000\":1}", "{\"a\\\\u0000\":1}");
    /* still 400 when something else is wrong as well */
    free(BODY_BAD("{\"a\\u0000\":1,}"));
    free(BODY_BAD("{\"a\\u0000\":1,\"b\":1,\"b\":2}"));
    free(BODY_BAD("[{\"a\\u0000\":1}]"));
}

static void
test_body_number_out_of_range_is_422(void **state)
{
    (void)state;
    body_422("{\"consumer_id\":\"x\",\"expires_in_days\":"
             "99999999999999999999}",
             "expires_in_days is out of range (got 99999999999999999999): an "
             "integer must be between -9223372036854775808 and "
             "9223372036854775807");
    body_422("{\"limit\":-9223372036854775809}",
             "limit is out of range (got -9223372036854775809): an integer "
             "must be between -9223372036854775808 and 9223372036854775807");
    body_422("{\"o\":{\"x y\":[0,1e999]}}",
             "o.\"x y\"[1] is out of range (got 1e999): a number must be "
             "below 1.8e308 in magnitude");
    /* every problem, in body order, with a NUL key too */
    body_422("{\"a\":1e400,\"b\\u0000\":-1e400}",
             "a is out of range (got 1e400): a number must be below 1.8e308 "
             "in magnitude; Field names must not contain NUL characters (got "
             "\"b\\u0000\"); \"b\\u0000\" is out of range (got -1e400): a "
             "number must be below 1.8e308 in magnitude");
    /* the limits themselves, tiny reals and digits in strings are fine */
    BODY_OK("{\"a\":9223372036854775807,\"b\":-9223372036854775808,"
            "\"c\":1e-400,\"d\":\"99999999999999999999\"}",
            "{\"a\":9223372036854775807,\"b\":-9223372036854775808,"
            "\"c\":0.0,\"d\":\"99999999999999999999\"}");
    /* a long number is quoted cut at 64 characters */
    char body[200];
    snprintf(body, sizeof body, "{\"n\":%s}",
             "1234567890123456789012345678901234567890"
             "1234567890123456789012345678901234567890");
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    assert_int_equal(body_parse(body, strlen(body), &out, &err), -1);
    assert_int_equal(err.status, 422);
    assert_non_null(strstr(err.msg,
                           "(got 1234567890123456789012345678901234567890"
                           "123456789012345678901234...)"));
    err_clear(&err);
    /* not JSON for another reason: 400, with jansson's position */
    char *msg = BODY_BAD("{\"a\":99999999999999999999,\n \"b\":01}");
    assert_non_null(strstr(msg, "line 2, column"));
    free(msg);
    free(BODY_BAD("{\"a\":-099999999999999999999}"));
    free(BODY_BAD("[99999999999999999999]"));
}

static void
test_body_deep_nesting(void **state)
{
    (void)state;
    /* 100 000 levels: refused cleanly, no stack overflow */
    size_t depth = 100000;
    char *s = malloc(depth * 6 + 16);
    assert_non_null(s);
    size_t n = 0;
    s[n++] = '{';
    for (size_t i = 0; i < depth; i++) {
        memcpy(s + n, "\"a\":{", 5);
        n += 5;
    }
    char *msg = body_bad(s, n);
    free(msg);
    free(s);
}

/* ---- request_input ---------------------------------------------------------
 */

static int
input(const char *method, const char *query, const char *body, json_t **in,
      bool *from_query, struct app_err *err)
{
    struct request r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.path = "/customer/data";
    r.query = query;
    r.body = (char *)body;
    r.body_len = body ? strlen(body) : 0;
    return request_input(&r, in, from_query, err);
}

static void
expect_input(const char *method, const char *query, const char *body,
             bool want_query, const char *want)
{
    struct app_err err = APP_ERR_INIT;
    json_t *in = NULL;
    bool fq = !want_query;
    if (input(method, query, body, &in, &fq, &err) != 0)
        fail_msg("%s ?%s %s rejected: %s", method, query, body ? body : "",
                 err.msg);
    assert_int_equal(fq, want_query);
    expect_json(in, want);
    json_decref(in);
}

static void
expect_input_error(const char *method, const char *query, const char *body,
                   int status)
{
    struct app_err err = APP_ERR_INIT;
    json_t *in = (json_t *)&err;
    bool fq;
    assert_int_equal(input(method, query, body, &in, &fq, &err), -1);
    assert_null(in);
    assert_int_equal(err.status, status);
    err_clear(&err);
}

static void
test_input_get(void **state)
{
    (void)state;
    expect_input("GET", "a=1", NULL, true, "{\"a\":\"1\"}");
    /* older clients: a JSON body when the query string is empty */
    expect_input("GET", "", "{\"a\":1}", false, "{\"a\":1}");
    /* both: the query string wins */
    expect_input("GET", "a=q", "{\"a\":\"body\"}", true, "{\"a\":\"q\"}");
    /* neither: an empty object (the validator reports missing fields) */
    expect_input("GET", "", NULL, false, "{}");
    expect_input_error("GET", "a=%zz", NULL, 422);
    expect_input_error("GET", "", "[1]", 400);
}

static void
test_input_delete(void **state)
{
    (void)state;
    expect_input("DELETE", "", "{\"a\":1}", false, "{\"a\":1}");
    expect_input("DELETE", "a=q", NULL, true, "{\"a\":\"q\"}");
    /* both: the body wins */
    expect_input("DELETE", "a=q", "{\"a\":\"body\"}", false,
                 "{\"a\":\"body\"}");
    expect_input("DELETE", "", NULL, false, "{}");
    expect_input_error("DELETE", "", "nope", 400);
}

static void
test_input_post_patch(void **state)
{
    (void)state;
    expect_input("POST", "", "{\"name\":\"x\"}", false, "{\"name\":\"x\"}");
    /* the query string is not an input of POST/PATCH */
    expect_input("POST", "name=q", "{\"name\":\"x\"}", false,
                 "{\"name\":\"x\"}");
    expect_input("PATCH", "", "{\"s\":\"A\"}", false, "{\"s\":\"A\"}");
    /* empty body: 400 */
    expect_input_error("POST", "", NULL, 400);
    expect_input_error("POST", "name=q", NULL, 400);
    expect_input_error("PATCH", "", NULL, 400);
    expect_input_error("POST", "", "[]", 400);
    expect_input_error("PATCH", "", "{\"a\":1,\"a\":2}", 400);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_simple),
        cmocka_unit_test(test_query_percent_decoding),
        cmocka_unit_test(test_query_repeated_names),
        cmocka_unit_test(test_query_empty_pairs_skipped),
        cmocka_unit_test(test_query_malformed_escape),
        cmocka_unit_test(test_query_invalid_utf8),
        cmocka_unit_test(test_query_nul),
        cmocka_unit_test(test_body_valid),
        cmocka_unit_test(test_body_not_json),
        cmocka_unit_test(test_body_not_an_object),
        cmocka_unit_test(test_body_duplicate_keys),
        cmocka_unit_test(test_body_nul_accepted_by_parser),
        cmocka_unit_test(test_body_nul_in_key_is_422),
        cmocka_unit_test(test_body_number_out_of_range_is_422),
        cmocka_unit_test(test_body_deep_nesting),
        cmocka_unit_test(test_input_get),
        cmocka_unit_test(test_input_delete),
        cmocka_unit_test(test_input_post_patch),
    };
    return cmocka_run_group_tests_name(
        "http/request: query strings, JSON bodies, and which input is read",
        tests, NULL, NULL);
}
