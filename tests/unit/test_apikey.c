/*
 * tests/unit/test_apikey.c — core/apikey.h: base64url, key shape (docs/API.md
 * §4.1: "fk_" + 43 base64url characters) and the display prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "core/apikey.h"

static void
check_b64(const char *in, size_t n, const char *want)
{
    char out[64];
    memset(out, '#', sizeof out);
    base64url_encode((const unsigned char *)in, n, out);
    assert_string_equal(out, want);
}

static void
test_base64url_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10, without padding */
    check_b64("", 0, "");
    check_b64("f", 1, "Zg");
    check_b64("fo", 2, "Zm8");
    check_b64("foo", 3, "Zm9v");
    check_b64("foob", 4, "Zm9vYg");
    check_b64("fooba", 5, "Zm9vYmE");
    check_b64("foobar", 6, "Zm9vYmFy");
    /* the URL-safe alphabet: '-' and '_' instead of '+' and '/' */
    check_b64("\xFB\xFF", 2, "-_8");
    check_b64("\xFF\xFF\xFF", 3, "____");
    check_b64("\x00\x00\x00", 3, "AAAA");
    check_b64("\xF8", 1, "-A");
}

static bool
is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void
test_generate_shape(void **state)
{
    (void)state;
    char a[APIKEY_LEN + 1], b[APIKEY_LEN + 1];
    memset(a, '#', sizeof a);
    assert_int_equal(apikey_generate(a), 0);
    assert_int_equal(apikey_generate(b), 0);
    assert_int_equal(APIKEY_LEN, 46);
    assert_int_equal(strlen(a), 46);
    assert_memory_equal(a, "fk_", 3);
    for (size_t i = 3; i < 46; i++)
        assert_true(is_b64url(a[i]));
    assert_string_not_equal(a, b);
}

static void
test_prefix(void **state)
{
    (void)state;
    char p[APIKEY_PREFIX_LEN + 1];
    apikey_prefix("fk_ABCDEFGHijklmnop", p);
    assert_string_equal(p, "fk_ABCDEFGH");
    assert_int_equal(strlen(p), 11);
    apikey_prefix("fk_ABC", p); /* shorter than a prefix: all of it */
    assert_string_equal(p, "fk_ABC");
    apikey_prefix("", p);
    assert_string_equal(p, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url_vectors),
        cmocka_unit_test(test_generate_shape),
        cmocka_unit_test(test_prefix),
    };
    return cmocka_run_group_tests_name(
        "core/apikey: base64url, key shape and display prefix", tests, NULL,
        NULL);
}
