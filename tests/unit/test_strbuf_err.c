/*
 * tests/unit/test_strbuf_err.c — common/strbuf.h (growth, ownership, sticky
 * OOM) and core/app_err.h (set, add with "; ", detail, clear).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app_err.h"
#include "common/strbuf.h"

/* ---- strbuf ----------------------------------------------------------- */

static void
test_sb_empty(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    assert_non_null(sb_str(&sb));
    assert_string_equal(sb_str(&sb), "");
    assert_int_equal(sb.len, 0);
    sb_append(&sb, "", 0);
    assert_string_equal(sb_str(&sb), "");
    assert_int_equal(sb.len, 0);
    assert_false(sb.oom);
    sb_free(&sb);
}

static void
test_sb_append_grows_past_64(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char want[1001];
    for (size_t i = 0; i < 100; i++) {
        sb_append(&sb, "0123456789", 10);
        memcpy(want + i * 10, "0123456789", 10);
        assert_int_equal(sb.len, (i + 1) * 10);
        assert_true(sb.cap > sb.len);
        assert_int_equal(sb_str(&sb)[sb.len], '\0');
    }
    want[1000] = '\0';
    assert_string_equal(sb_str(&sb), want);
    assert_false(sb.oom);
    sb_free(&sb);
}

static void
test_sb_append_boundaries(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char a63[64], a64[65], a200[201];
    memset(a63, 'a', 63);
    a63[63] = '\0';
    memset(a64, 'a', 64);
    a64[64] = '\0';
    memset(a200, 'b', 200);
    a200[200] = '\0';

    sb_puts(&sb, a63); /* exactly fills a 64-byte buffer with its NUL */
    assert_int_equal(sb.len, 63);
    assert_string_equal(sb_str(&sb), a63);
    sb_puts(&sb, "a"); /* one more byte: must grow */
    assert_int_equal(sb.len, 64);
    assert_string_equal(sb_str(&sb), a64);
    sb_free(&sb);

    sb_puts(&sb, a200); /* one append much larger than the first block */
    assert_int_equal(sb.len, 200);
    assert_string_equal(sb_str(&sb), a200);
    sb_free(&sb);
}

static void
test_sb_append_binary(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    sb_append(&sb, "a\0b", 3);
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb_str(&sb), "a\0b", 4);
    /* only n bytes are copied */
    sb_append(&sb, "cdef", 1);
    assert_int_equal(sb.len, 4);
    assert_memory_equal(sb_str(&sb), "a\0bc", 5);
    sb_free(&sb);
}

static void
test_sb_printf_grows(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char want[8192];
    size_t w = 0;

    sb_printf(&sb, "%s", "");
    assert_string_equal(sb_str(&sb), "");
    for (int i = 0; i < 500; i++) {
        sb_printf(&sb, "%d,", i);
        w += (size_t)snprintf(want + w, sizeof want - w, "%d,", i);
        assert_int_equal(sb.len, w);
    }
    assert_string_equal(sb_str(&sb), want);
    sb_free(&sb);

    /* a single printf far larger than 64 bytes, after some content */
    char big[300];
    memset(big, 'x', 299);
    big[299] = '\0';
    sb_puts(&sb, "head:");
    sb_printf(&sb, "[%s|%05d|%.3s]", big, 42, "abcdef");
    assert_int_equal(sb.len, 5 + 1 + 299 + 1 + 5 + 1 + 3 + 1);
    assert_memory_equal(sb_str(&sb), "head:[xxx", 9);
    assert_string_equal(sb_str(&sb) + sb.len - 11, "|00042|abc]");
    sb_free(&sb);
}

static void
test_sb_steal(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char long_text[129];
    memset(long_text, 'q', 128);
    long_text[128] = '\0';

    sb_puts(&sb, long_text);
    const char *inside = sb.buf;
    char *s = sb_steal(&sb);
    assert_non_null(s);
    assert_ptr_equal(s, inside); /* the buffer itself, no copy */
    assert_string_equal(s, long_text);
    /* the strbuf is empty and independent of the stolen buffer */
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, 0);
    assert_string_equal(sb_str(&sb), "");
    sb_puts(&sb, "again");
    assert_string_equal(sb_str(&sb), "again");
    assert_string_equal(s, long_text);
    free(s);
    sb_free(&sb);
}

static void
test_sb_steal_empty(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    char *s = sb_steal(&sb);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* after a reset, still a valid (empty) string */
    sb_puts(&sb, "abc");
    sb_reset(&sb);
    s = sb_steal(&sb);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    sb_free(&sb);
}

static void
test_sb_reset_and_free_twice(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    sb_puts(&sb, "some text that will be forgotten");
    size_t cap = sb.cap;
    sb_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, cap); /* keeps its buffer */
    assert_string_equal(sb_str(&sb), "");
    sb_puts(&sb, "new");
    assert_string_equal(sb_str(&sb), "new");
    sb_free(&sb);
    sb_free(&sb);
    assert_null(sb.buf);
    assert_string_equal(sb_str(&sb), "");
}

/* Allocation failure is sticky (strbuf.h): once `oom` is set, appends are
 * no-ops and sb_steal() returns NULL (and releases the buffer). */
static void
test_sb_oom_is_sticky(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    sb_puts(&sb, "kept");
    sb.oom = true; /* as if a realloc had failed */
    sb_puts(&sb, " lost");
    sb_printf(&sb, "%d", 12345);
    sb_append(&sb, "x", 1);
    assert_string_equal(sb_str(&sb), "kept");
    assert_int_equal(sb.len, 4);
    assert_null(sb_steal(&sb));
    assert_false(sb.oom);
    assert_null(sb.buf);
    sb_puts(&sb, "fresh");
    assert_string_equal(sb_str(&sb), "fresh");
    sb_free(&sb);
}

/* ---- app_err ---------------------------------------------------------- */

static void
test_err_init(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    assert_int_equal(e.status, 0);
    assert_null(e.msg);
    assert_null(e.detail);
    assert_string_equal(e.code, "");
    err_clear(&e); /* on a fresh error: fine */
    err_clear(&e);
    assert_int_equal(e.status, 0);
}

static void
test_err_set_replaces(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    err_set(&e, 404, "Customer %s not found", "abc");
    assert_int_equal(e.status, 404);
    assert_string_equal(e.msg, "Customer abc not found");
    err_set(&e, 409, "Customer is already %s", "ACTIVE");
    assert_int_equal(e.status, 409);
    assert_string_equal(e.msg, "Customer is already ACTIVE");
    err_clear(&e);
}

static void
test_err_add_joins(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    err_add(&e, 422, "Unknown field \"%s\"", "stauts");
    assert_int_equal(e.status, 422);
    assert_string_equal(e.msg, "Unknown field \"stauts\"");
    err_add(&e, 400, "Missing required field \"%s\"", "name");
    err_add(&e, 500, "limit must be an integer between %d and %d", 1, 1000);
    assert_int_equal(e.status, 422); /* the first status is kept */
    assert_string_equal(e.msg, "Unknown field \"stauts\"; "
                               "Missing required field \"name\"; "
                               "limit must be an integer between 1 and 1000");
    err_clear(&e);
}

static void
test_err_add_after_set(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    err_set(&e, 400, "first");
    err_add(&e, 422, "second");
    assert_int_equal(e.status, 400);
    assert_string_equal(e.msg, "first; second");
    /* err_set after err_add replaces the whole sentence */
    err_set(&e, 503, "only");
    assert_int_equal(e.status, 503);
    assert_string_equal(e.msg, "only");
    err_clear(&e);
}

static void
test_err_add_long(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    char big[5001];
    memset(big, 'w', 5000);
    big[5000] = '\0';
    err_add(&e, 422, "%s", big);
    err_add(&e, 422, "%s", big);
    assert_int_equal(strlen(e.msg), 10002);
    assert_memory_equal(e.msg + 5000, "; w", 3);
    err_clear(&e);
}

static void
test_err_detail(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    err_set(&e, 500, "Database error");
    err_detail(&e, "SQLSTATE %s: %s", "23505", "duplicate key");
    assert_string_equal(e.msg, "Database error"); /* client text untouched */
    assert_string_equal(e.detail, "SQLSTATE 23505: duplicate key");
    err_detail(&e, "replaced");
    assert_string_equal(e.detail, "replaced");
    assert_int_equal(e.status, 500);
    err_clear(&e);
    assert_null(e.detail);
}

static void
test_err_clear_twice(void **state)
{
    (void)state;
    struct app_err e = APP_ERR_INIT;
    err_set(&e, 422, "x");
    err_detail(&e, "y");
    strcpy(e.code, "23505");
    err_clear(&e);
    assert_int_equal(e.status, 0);
    assert_null(e.msg);
    assert_null(e.detail);
    assert_string_equal(e.code, "");
    err_clear(&e);
    assert_int_equal(e.status, 0);
    assert_null(e.msg);
    /* reusable after clearing */
    err_add(&e, 401, "again");
    assert_int_equal(e.status, 401);
    assert_string_equal(e.msg, "again");
    err_clear(&e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_empty),
        cmocka_unit_test(test_sb_append_grows_past_64),
        cmocka_unit_test(test_sb_append_boundaries),
        cmocka_unit_test(test_sb_append_binary),
        cmocka_unit_test(test_sb_printf_grows),
        cmocka_unit_test(test_sb_steal),
        cmocka_unit_test(test_sb_steal_empty),
        cmocka_unit_test(test_sb_reset_and_free_twice),
        cmocka_unit_test(test_sb_oom_is_sticky),
        cmocka_unit_test(test_err_init),
        cmocka_unit_test(test_err_set_replaces),
        cmocka_unit_test(test_err_add_joins),
        cmocka_unit_test(test_err_add_after_set),
        cmocka_unit_test(test_err_add_long),
        cmocka_unit_test(test_err_detail),
        cmocka_unit_test(test_err_clear_twice),
    };
    return cmocka_run_group_tests_name(
        "common/strbuf and core/app_err: growth, ownership, joined errors", tests,
        NULL, NULL);
}
