/*
 * tests/fuzz/fuzz_query.c — libFuzzer target: a query string of arbitrary
 * bytes (up to its first NUL, as a FastCGI parameter is a C string):
 * percent_decode of the whole text against a reference decoder,
 * utf8_length against jansson's own UTF-8 check, then what the pipeline
 * does with it: request_input (a GET) → query_parse → validate_input (text
 * values) with every route's field specs → the envelope.
 *
 * Checks: the decoders agree with their references; a refused query is
 * 422 with a sentence; an accepted one is an object of strings or arrays
 * of strings; validation fails with a 422 or yields only the route's
 * fields; every answer renders to a valid envelope with its status.
 */
#include "common.h"

#include "common/text.h"
#include "http/request.h"

#include <string.h>

static int
hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The reference: '+' is a space, %XX a byte, a '%' otherwise malformed. */
static void
check_percent_decode(const char *s, size_t n)
{
    size_t got_len = 0;
    char *got = percent_decode(s, n, &got_len);
    unsigned char *want = malloc(n + 1);
    size_t w = 0;
    bool bad = false;
    FUZZ_CHECK(want != NULL, "out of memory");
    for (size_t i = 0; i < n && !bad; i++) {
        if (s[i] == '%') {
            int a = i + 1 < n ? hex(s[i + 1]) : -1;
            int b = i + 2 < n ? hex(s[i + 2]) : -1;
            if (a < 0 || b < 0) {
                bad = true;
                break;
            }
            want[w++] = (unsigned char)(a * 16 + b);
            i += 2;
        } else {
            want[w++] = (unsigned char)(s[i] == '+' ? ' ' : s[i]);
        }
    }
    if (bad) {
        FUZZ_CHECK(got == NULL, "a malformed escape was decoded");
    } else {
        FUZZ_CHECK(got != NULL, "a good text was refused");
        FUZZ_CHECK(got_len == w && memcmp(got, want, w) == 0,
                   "decoded %zu bytes, the reference %zu", got_len, w);
        FUZZ_CHECK(got[got_len] == '\0', "not NUL-terminated");
        /* utf8_length against jansson's strict UTF-8 check */
        json_t *str = json_stringn(got, got_len);
        long cps = utf8_length(got, got_len);
        FUZZ_CHECK((cps >= 0) == (str != NULL), "utf8_length %ld, jansson %s",
                   cps, str ? "accepts" : "refuses");
        if (cps >= 0)
            FUZZ_CHECK((size_t)cps <= got_len, "more characters than bytes");
        json_decref(str);
    }
    free(got);
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct app_err err = APP_ERR_INIT;
    json_t *in = NULL;
    bool from_query = false;

    if (size > 8192)
        return 0;
    char *query = malloc(size + 1);
    FUZZ_CHECK(query != NULL, "out of memory");
    memcpy(query, data, size);
    query[size] = '\0';
    check_percent_decode(query, size);

    struct request r = {.method = "GET", .path = "/", .query = query};
    if (request_input(&r, &in, &from_query, &err) < 0) {
        FUZZ_CHECK(in == NULL && err.status == 422, "status %d", err.status);
        fuzz_check_error(&err);
        goto out;
    }
    FUZZ_CHECK(json_is_object(in), "not an object");
    FUZZ_CHECK(from_query == (query[0] != '\0'), "from_query");
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
    {
        bool ok = json_is_string(v);
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++)
            ok = json_is_string(json_array_get(v, i));
        FUZZ_CHECK(ok || json_is_array(v), "parameter %s is not text", key);
        FUZZ_CHECK(!json_is_array(v) || json_array_size(v) >= 2,
                   "parameter %s: an array of one", key);
    }

    fuzz_validate_routes(in, from_query, false);
out:
    json_decref(in);
    err_clear(&err);
    free(query);
    return 0;
}
