/*
 * tests/unit/test_text.c — common/text.h: UTF-8 length, UUID text, trimming,
 * percent-decoding, request ids, SHA-256.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* utf8_length over a byte literal (sizeof - 1 keeps embedded NULs). */
#define U8LEN(lit) utf8_length((lit), sizeof(lit) - 1)

/* ---- utf8_length ------------------------------------------------------ */

static void
test_utf8_ascii(void **state)
{
    (void)state;
    assert_int_equal(U8LEN(""), 0);
    assert_int_equal(U8LEN("a"), 1);
    assert_int_equal(U8LEN("hello, world"), 12);
    /* an embedded NUL is a code point like any other */
    assert_int_equal(U8LEN("a\0b"), 3);
    /* only the first n bytes count */
    assert_int_equal(utf8_length("abcdef", 2), 2);
    assert_int_equal(utf8_length("abcdef", 0), 0);
}

static void
test_utf8_multibyte(void **state)
{
    (void)state;
    assert_int_equal(U8LEN("\xC3\xA9"), 1);     /* é  U+00E9 */
    assert_int_equal(U8LEN("\xC2\x80"), 1);     /* U+0080, smallest 2-byte */
    assert_int_equal(U8LEN("\xDF\xBF"), 1);     /* U+07FF */
    assert_int_equal(U8LEN("\xE0\xA0\x80"), 1); /* U+0800, smallest 3-byte */
    assert_int_equal(U8LEN("\xE2\x82\xAC"), 1); /* € */
    assert_int_equal(U8LEN("\xED\x9F\xBF"), 1); /* U+D7FF, below surrogates */
    assert_int_equal(U8LEN("\xEE\x80\x80"), 1); /* U+E000, above surrogates */
    assert_int_equal(U8LEN("\xEF\xBF\xBF"), 1); /* U+FFFF */
    assert_int_equal(U8LEN("\xF0\x90\x80\x80"),
                     1); /* U+10000, smallest 4-byte */
    assert_int_equal(U8LEN("\xF0\x9F\x98\x80"), 1); /* 😀 */
    assert_int_equal(U8LEN("\xF4\x8F\xBF\xBF"), 1); /* U+10FFFF, the last */
    /* a + é + € + 😀 + z */
    assert_int_equal(U8LEN("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"), 5);
    /* 東京 */
    assert_int_equal(U8LEN("\xE6\x9D\xB1\xE4\xBA\xAC"), 2);
}

static void
test_utf8_truncated(void **state)
{
    (void)state;
    assert_int_equal(U8LEN("\xC3"), -1);
    assert_int_equal(U8LEN("\xE2\x82"), -1);
    assert_int_equal(U8LEN("\xE2"), -1);
    assert_int_equal(U8LEN("\xF0\x9F\x98"), -1);
    assert_int_equal(U8LEN("abc\xF0\x9F"), -1);
    /* the sequence is complete in memory but cut by n */
    assert_int_equal(utf8_length("\xC3\xA9", 1), -1);
    assert_int_equal(utf8_length("x\xF0\x9F\x98\x80", 4), -1);
    /* a lead byte followed by a non-continuation byte */
    assert_int_equal(U8LEN("\xC3"
                           "A"),
                     -1);
    assert_int_equal(U8LEN("\xE2\x82"
                           "A"),
                     -1);
    assert_int_equal(U8LEN("\xF0\x9F\x98"
                           "A"),
                     -1);
}

static void
test_utf8_invalid_bytes(void **state)
{
    (void)state;
    assert_int_equal(U8LEN("\x80"), -1); /* lone continuation */
    assert_int_equal(U8LEN("a\xBF"
                           "b"),
                     -1);
    assert_int_equal(U8LEN("\xFF"), -1);
    assert_int_equal(U8LEN("\xFE"), -1);
    assert_int_equal(U8LEN("\xF8\x88\x80\x80\x80"), -1); /* 5-byte form */
    assert_int_equal(U8LEN("\xFC\x84\x80\x80\x80\x80"), -1);
}

static void
test_utf8_overlong(void **state)
{
    (void)state;
    assert_int_equal(U8LEN("\xC0\x80"), -1);         /* NUL, 2 bytes */
    assert_int_equal(U8LEN("\xC0\xAF"), -1);         /* '/' */
    assert_int_equal(U8LEN("\xC1\xBF"), -1);         /* U+007F */
    assert_int_equal(U8LEN("\xE0\x80\x80"), -1);     /* NUL, 3 bytes */
    assert_int_equal(U8LEN("\xE0\x9F\xBF"), -1);     /* U+07FF, 3 bytes */
    assert_int_equal(U8LEN("\xF0\x80\x80\x80"), -1); /* NUL, 4 bytes */
    assert_int_equal(U8LEN("\xF0\x8F\xBF\xBF"), -1); /* U+FFFF, 4 bytes */
}

static void
test_utf8_surrogates_and_range(void **state)
{
    (void)state;
    assert_int_equal(U8LEN("\xED\xA0\x80"), -1); /* U+D800 */
    assert_int_equal(U8LEN("\xED\xAD\xBF"), -1); /* U+DB7F */
    assert_int_equal(U8LEN("\xED\xB0\x80"), -1); /* U+DC00 */
    assert_int_equal(U8LEN("\xED\xBF\xBF"), -1); /* U+DFFF */
    /* a CESU-8 surrogate pair for 😀 */
    assert_int_equal(U8LEN("\xED\xA0\xBD\xED\xB8\x80"), -1);
    assert_int_equal(U8LEN("\xF4\x90\x80\x80"), -1); /* U+110000 */
    assert_int_equal(U8LEN("\xF5\x80\x80\x80"), -1);
    assert_int_equal(U8LEN("\xF7\xBF\xBF\xBF"), -1);
}

/* ---- UUIDs ---------------------------------------------------------- */

static void
test_uuid_text_accepts_any_case(void **state)
{
    (void)state;
    const char *ok[] = {
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "a0EEbc99-9C0b-4Ef8-bB6d-6bb9BD380a11",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(is_uuid_text(ok[i], strlen(ok[i])));
}

static void
test_uuid_text_rejects(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "abc",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",    /* 35 */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",  /* 37 */
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",       /* no hyphens */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",   /* non-hex */
        "a0eebc99_9c0b-4ef8-bb6d-6bb9bd380a11",   /* wrong separator */
        "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",   /* hyphen misplaced */
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", /* braces */
        " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",   /* leading space */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1 ",   /* trailing space */
        "a0eebc99-9c0b-4ef8-bb6d+6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a\xC3\xA9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(is_uuid_text(bad[i], strlen(bad[i])));
}

static void
test_uuid_text_uses_n(void **state)
{
    (void)state;
    const char *s = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11trailing";
    assert_true(is_uuid_text(s, 36));
    assert_false(is_uuid_text(s, strlen(s)));
    /* a NUL inside the 36 bytes is not a hex digit */
    const char nul[] = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd38\0a11";
    assert_false(is_uuid_text(nul, 36));
}

static void
test_uuid_lower(void **state)
{
    (void)state;
    char out[37];
    memset(out, 'x', sizeof out);
    uuid_lower("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", out);
    assert_string_equal(out, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    uuid_lower("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", out);
    assert_string_equal(out, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    /* reads only 36 bytes and terminates */
    uuid_lower("ABCDEF01-2345-6789-ABCD-EF0123456789XYZ", out);
    assert_string_equal(out, "abcdef01-2345-6789-abcd-ef0123456789");
}

static void
test_uuid_new_format(void **state)
{
    (void)state;
    char a[37], b[37];
    memset(a, 'x', sizeof a);
    uuid_new(a);
    uuid_new(b);
    assert_int_equal(strlen(a), 36);
    assert_true(is_uuid_text(a, 36));
    for (size_t i = 0; i < 36; i++)
        assert_true(a[i] == '-' || (a[i] >= '0' && a[i] <= '9') ||
                    (a[i] >= 'a' && a[i] <= 'f'));
    assert_int_equal(a[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
    assert_string_not_equal(a, b);
}

/* ---- trim_ascii_space ---------------------------------------------- */

static void
check_trim_n(const char *in, size_t n, const char *want, size_t want_len)
{
    size_t len = 12345;
    const char *t = trim_ascii_space(in, n, &len);
    assert_true(t >= in && t <= in + n);
    assert_int_equal(len, want_len);
    assert_memory_equal(t, want, len);
}

/* Both arguments are literals; their sizes give the lengths. */
#define check_trim(in, want)                                                   \
    check_trim_n((in), sizeof(in) - 1, (want), sizeof(want) - 1)

static void
test_trim(void **state)
{
    (void)state;
    check_trim("abc", "abc");
    check_trim("  abc  ", "abc");
    check_trim("\t\n\v\f\r abc\r\n\t\v\f ", "abc");
    check_trim("  a  b  ", "a  b");
    check_trim("", "");
    check_trim("   ", "");
    check_trim(" \t\r\n", "");
    check_trim("x", "x");
    /* only n bytes are considered */
    check_trim_n("  ab  cd", 5, "ab", 2);
    /* not ASCII whitespace: kept (NBSP U+00A0, NUL) */
    check_trim("\xC2\xA0"
               "a"
               "\xC2\xA0",
               "\xC2\xA0"
               "a"
               "\xC2\xA0");
    check_trim(" \0a ", "\0a");
}

static void
test_trim_returns_pointer_inside(void **state)
{
    (void)state;
    const char *s = "   hello ";
    size_t len;
    const char *t = trim_ascii_space(s, strlen(s), &len);
    assert_ptr_equal(t, s + 3);
    assert_int_equal(len, 5);
}

/* ---- percent_decode ------------------------------------------------- */

static void
check_decode(const char *in, const char *want, size_t want_len)
{
    size_t n = 999;
    char *out = percent_decode(in, strlen(in), &n);
    assert_non_null(out);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[n], '\0');
    free(out);
}

static void
test_percent_decode_ok(void **state)
{
    (void)state;
    check_decode("", "", 0);
    check_decode("abc", "abc", 3);
    check_decode("a%20b", "a b", 3);
    check_decode("a+b", "a b", 3);
    check_decode("++", "  ", 2);
    check_decode("%2B", "+", 1);
    check_decode("%2b", "+", 1);
    check_decode("%25", "%", 1);
    check_decode("%e2%82%AC", "\xE2\x82\xAC", 3);
    check_decode("%3D%26", "=&", 2);
    check_decode("a%00b", "a\0b", 3);
    check_decode("%41%42%43", "ABC", 3);
    check_decode("\xC3\xA9", "\xC3\xA9", 2); /* raw bytes pass through */
}

static void
test_percent_decode_uses_n(void **state)
{
    (void)state;
    size_t n = 0;
    char *out = percent_decode("abc%zz", 3, &n);
    assert_non_null(out);
    assert_int_equal(n, 3);
    assert_string_equal(out, "abc");
    free(out);
}

static void
test_percent_decode_malformed(void **state)
{
    (void)state;
    const char *bad[] = {"%",   "%2", "a%",  "a%2", "%zz",  "%2g",
                         "%g2", "%%", "%-1", "% 1", "abc%4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 777;
        char *out = percent_decode(bad[i], strlen(bad[i]), &n);
        if (out != NULL)
            fail_msg("percent_decode(\"%s\") should fail, gave \"%s\"", bad[i],
                     out);
    }
    /* the escape is complete in memory but cut by n */
    size_t n;
    assert_null(percent_decode("%41", 2, &n));
}

/* ---- is_valid_request_id -------------------------------------------- */

static void
test_request_id(void **state)
{
    (void)state;
    char s[200];

    assert_true(is_valid_request_id("a"));
    assert_true(is_valid_request_id("abc-123"));
    assert_true(is_valid_request_id("A.Z_0:9-x"));
    assert_true(is_valid_request_id("0123456789abcdef0123456789abcdef"));

    memset(s, 'a', 128);
    s[128] = '\0';
    assert_true(is_valid_request_id(s));
    s[128] = 'a';
    s[129] = '\0';
    assert_false(is_valid_request_id(s)); /* 129 */
    memset(s, 'z', 199);
    s[199] = '\0';
    assert_false(is_valid_request_id(s));

    assert_false(is_valid_request_id(""));
    assert_false(is_valid_request_id(" "));
    assert_false(is_valid_request_id("a b"));
    assert_false(is_valid_request_id("abc "));
    assert_false(is_valid_request_id("a/b"));
    assert_false(is_valid_request_id("a\tb"));
    assert_false(is_valid_request_id("a\r\nX-Evil: 1"));
    assert_false(is_valid_request_id("a\"b"));
    assert_false(is_valid_request_id("caf\xC3\xA9"));
    assert_false(is_valid_request_id("a,b"));
    assert_false(is_valid_request_id("a;b"));
}

/* ---- sha256_hex ----------------------------------------------------- */

static void
test_sha256(void **state)
{
    (void)state;
    char out[65];
    memset(out, 'x', sizeof out);
    sha256_hex("abc", 3, out);
    assert_string_equal(
        out,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, out);
    assert_string_equal(
        out,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* only n bytes are hashed */
    sha256_hex("abcdef", 3, out);
    assert_string_equal(
        out,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
               out);
    assert_string_equal(
        out,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_ascii),
        cmocka_unit_test(test_utf8_multibyte),
        cmocka_unit_test(test_utf8_truncated),
        cmocka_unit_test(test_utf8_invalid_bytes),
        cmocka_unit_test(test_utf8_overlong),
        cmocka_unit_test(test_utf8_surrogates_and_range),
        cmocka_unit_test(test_uuid_text_accepts_any_case),
        cmocka_unit_test(test_uuid_text_rejects),
        cmocka_unit_test(test_uuid_text_uses_n),
        cmocka_unit_test(test_uuid_lower),
        cmocka_unit_test(test_uuid_new_format),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_trim_returns_pointer_inside),
        cmocka_unit_test(test_percent_decode_ok),
        cmocka_unit_test(test_percent_decode_uses_n),
        cmocka_unit_test(test_percent_decode_malformed),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_sha256),
    };
    return cmocka_run_group_tests_name("common/text: UTF-8, UUIDs, trimming, "
                                       "percent-decoding, request ids, SHA-256",
                                       tests, NULL, NULL);
}
