/*
 * tests/unit/test_idempotency.c — the pure parts of http/idempotency.h
 * (docs/API.md §6, "Safe retries"): which methods take the header, the
 * header's rule and messages, the canonical body ("the same JSON,
 * whitespace and key order aside") and the request fingerprint; and the
 * replayed envelope (http/envelope.h, stored_body).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "http/envelope.h"
#include "http/idempotency.h"

/* ---- methods ------------------------------------------------------------ */

static void
test_writes_take_the_header(void **state)
{
    (void)state;
    assert_true(idem_is_write("POST"));
    assert_true(idem_is_write("PATCH"));
    assert_true(idem_is_write("DELETE"));
    assert_false(idem_is_write("GET"));
    assert_false(idem_is_write("HEAD"));
    assert_false(idem_is_write("PUT"));
    assert_false(idem_is_write("post")); /* methods are case-sensitive */
    assert_false(idem_is_write(""));
}

/* ---- the header --------------------------------------------------------- */

static void
expect_refused(const char *key, const char *msg)
{
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(idem_check_key(key, &err), -1);
    assert_int_equal(err.status, 422);
    assert_non_null(err.msg);
    assert_string_equal(err.msg, msg);
    err_clear(&err);
}

static void
expect_accepted(const char *key)
{
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(idem_check_key(key, &err), 0);
    assert_int_equal(err.status, 0);
    assert_null(err.msg);
}

static void
test_key_rule(void **state)
{
    (void)state;
    char all[96], k255[256], k256[257];
    size_t n = 0;
    for (int c = '!'; c <= '~'; c++)
        all[n++] = (char)c;
    all[n] = '\0';
    memset(k255, 'k', 255);
    k255[255] = '\0';
    memset(k256, 'k', 256);
    k256[256] = '\0';

    expect_accepted("a");
    expect_accepted("0f8fad5b-d9cb-469f-a165-70867728950e");
    expect_accepted(all); /* every visible ASCII character */
    expect_accepted(k255);

    expect_refused("", "Idempotency-Key must not be empty");
    expect_refused(k256,
                   "Idempotency-Key must be at most 255 characters (got 256)");
    const char *bad[] = {"a b",  "tab\there",   "nl\n",  "del\x7f",
                         "\x01", "caf\xc3\xa9", " lead", "trail "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused(bad[i], "Idempotency-Key must hold only visible ASCII "
                               "characters (! to ~)");
}

/* ---- canonical body ----------------------------------------------------- */

/* The canonical text of `body` (owned: free()), its kind into *kind. */
static char *
canon(const char *body, size_t len, int *kind)
{
    struct strbuf sb = STRBUF_INIT;
    *kind = idem_canonical_body(body, len, &sb);
    assert_true(*kind >= 0);
    char *s = sb_steal(&sb);
    assert_non_null(s);
    return s;
}

static void
expect_canon(const char *body, int kind, const char *want)
{
    int k;
    char *got = canon(body, strlen(body), &k);
    assert_int_equal(k, kind);
    assert_string_equal(got, want);
    free(got);
}

static void
test_canonical_json(void **state)
{
    (void)state;
    /* key order and whitespace do not matter, at any depth */
    expect_canon("{\"name\": \"x\",\n \"status\" : \"ACTIVE\"}", 1,
                 "{\"name\":\"x\",\"status\":\"ACTIVE\"}");
    expect_canon("{\"status\":\"ACTIVE\",\"name\":\"x\"}", 1,
                 "{\"name\":\"x\",\"status\":\"ACTIVE\"}");
    expect_canon("{\"b\":{\"z\":1,\"a\":[3,{\"y\":2,\"x\":1}]},\"a\":null}", 1,
                 "{\"a\":null,\"b\":{\"a\":[3,{\"x\":1,\"y\":2}],\"z\":1}}");
    /* array order does matter */
    expect_canon("[2,1]", 1, "[2,1]");
    /* escapes are decoded: the same string is the same JSON */
    expect_canon("{\"name\":\"caf\\u00e9\"}", 1, "{\"name\":\"caf\xc3\xa9\"}");
    expect_canon("{\"name\":\"caf\xc3\xa9\"}", 1, "{\"name\":\"caf\xc3\xa9\"}");
    /* a scalar is JSON too (and a 400 later) */
    expect_canon(" 42 ", 1, "42");
}

static void
test_canonical_not_json(void **state)
{
    (void)state;
    /* not JSON: the bytes as they are */
    expect_canon("{\"name\":", 0, "{\"name\":");
    expect_canon("name=x", 0, "name=x");
    expect_canon("", 0, "");
    /* a duplicate key is not a JSON object we compare: bytes */
    expect_canon("{\"a\":1,\"a\":2}", 0, "{\"a\":1,\"a\":2}");

    /* a NUL inside a string stays distinct from its absence */
    int k1, k2;
    char *a = canon("{\"n\":\"a\\u0000b\"}", 16, &k1);
    char *b = canon("{\"n\":\"ab\"}", 10, &k2);
    assert_int_equal(k1, 1);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

/* ---- fingerprint -------------------------------------------------------- */

static void
fp(const char *method, const char *path, const char *query, const char *body,
   char out[65])
{
    assert_int_equal(
        idem_fingerprint(method, path, query, body, strlen(body), out), 0);
    assert_int_equal(strlen(out), 64);
    for (size_t i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", out[i]));
}

static void
test_fingerprint(void **state)
{
    (void)state;
    char a[65], b[65];

    fp("POST", "/customer/data", "", "{\"name\":\"x\",\"status\":\"ACTIVE\"}",
       a);
    fp("POST", "/customer/data", "",
       "{ \"status\": \"ACTIVE\",\n  \"name\": \"x\" }", b);
    assert_string_equal(a, b); /* same JSON */

    fp("POST", "/customer/data", "", "{\"name\":\"y\",\"status\":\"ACTIVE\"}",
       b);
    assert_string_not_equal(a, b); /* another body */
    fp("PATCH", "/customer/data", "", "{\"name\":\"x\",\"status\":\"ACTIVE\"}",
       b);
    assert_string_not_equal(a, b); /* another method */
    fp("POST", "/customer/tag", "", "{\"name\":\"x\",\"status\":\"ACTIVE\"}",
       b);
    assert_string_not_equal(a, b); /* another path */
    fp("POST", "/customer/data", "x=1",
       "{\"name\":\"x\",\"status\":\"ACTIVE\"}", b);
    assert_string_not_equal(a, b); /* another query string */

    /* the parts cannot run into each other */
    fp("DELETE", "/customer/data", "customer_id=1", "", a);
    fp("DELETE", "/customer/data", "", "customer_id=1", b);
    assert_string_not_equal(a, b);
    fp("DELETE", "/customer/data", "ab", "", a);
    fp("DELETE", "/customer/dataa", "b", "", b);
    assert_string_not_equal(a, b);

    /* a body that is not JSON compares as bytes */
    fp("POST", "/customer/data", "", "{\"name\":", a);
    fp("POST", "/customer/data", "", "{\"name\": ", b);
    assert_string_not_equal(a, b);
    fp("POST", "/customer/data", "", "{\"name\":", b);
    assert_string_equal(a, b);

    /* the digest is SHA-256 of the documented framing */
    fp("POST", "/p", "", "", a);
    char want[65];
    const char *framed = "4:POST2:/p0:bytes0:";
    sha256_hex(framed, strlen(framed), want);
    assert_string_equal(a, want);
}

/* ---- the replayed envelope ---------------------------------------------- */

static void
test_replayed_envelope(void **state)
{
    (void)state;
    const char *stored =
        "{\"data\":{\"customer_id\":\"c\"},\"detail\":{\"status_code\":\"201\","
        "\"status_name\":\"CREATED\",\"status_description\":\"Success\"}}";
    struct envelope env = {
        .status = 201,
        .request_id = "rid-2",
        .stored_body = stored,
    };
    struct strbuf sb = STRBUF_INIT;
    long n = envelope_render(&env, &sb);
    assert_false(sb.oom);
    assert_int_equal((size_t)n, strlen(stored));
    /* the stored bytes verbatim, at the end */
    assert_string_equal(sb_str(&sb) + sb.len - (size_t)n, stored);
    assert_non_null(strstr(sb_str(&sb), "Status: 201 Created\r\n"));
    assert_non_null(strstr(sb_str(&sb), "X-Request-ID: rid-2\r\n"));
    assert_non_null(strstr(sb_str(&sb), "Idempotent-Replayed: true\r\n"));
    sb_free(&sb);

    /* a first answer carries no such header */
    struct envelope first = {.status = 201, .request_id = "rid-1"};
    n = envelope_render(&first, &sb);
    assert_true(n > 0);
    assert_null(strstr(sb_str(&sb), "Idempotent-Replayed"));
    sb_free(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_take_the_header),
        cmocka_unit_test(test_key_rule),
        cmocka_unit_test(test_canonical_json),
        cmocka_unit_test(test_canonical_not_json),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_replayed_envelope),
    };
    return cmocka_run_group_tests_name(
        "http/idempotency: the Idempotency-Key header, canonical body, "
        "fingerprint, replayed envelope",
        tests, NULL, NULL);
}
