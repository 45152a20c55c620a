/*
 * tests/unit/test_validate.c — http/validate.h: validate_input against
 * field tables, in JSON mode and query-string mode (docs/API.md §2.3,
 * "Field rules").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/text.h"
#include "http/router.h"
#include "http/validate.h"

/* ---- field tables ---------------------------------------------------------
 */

static const char *const statuses[] = {"ACTIVE", "INACTIVE", NULL};
static const char *const event_types[] = {
    "customer_creation", "customer_deletion", "customer_status_change", NULL};
static const char *const orders[] = {"asc", "desc", NULL};

/* like PATCH /customer/change-status */
static const struct field_spec status_specs[] = {
    {.name = "customer_id", .type = FT_UUID, .required = true},
    {.name = "status", .type = FT_ENUM, .required = true, .choices = statuses},
    {.name = NULL},
};

/* like POST /customer/data */
static const struct field_spec create_specs[] = {
    {.name = "name", .type = FT_NAME, .required = true, .min = 1, .max = 255},
    {.name = "status", .type = FT_ENUM, .choices = statuses},
    {.name = NULL},
};

/* like GET /events */
static const struct field_spec list_specs[] = {
    {.name = "customer_id", .type = FT_UUID},
    {.name = "limit", .type = FT_INT, .min = 1, .max = 1000},
    {.name = "event_types",
     .type = FT_ENUM_ARRAY,
     .min = 1,
     .max = 10,
     .choices = event_types},
    {.name = "order", .type = FT_ENUM, .choices = orders},
    {.name = NULL},
};

static const struct field_spec misc_specs[] = {
    {.name = "x", .type = FT_STRING, .min = 0, .max = 10},
    {.name = "tag_key", .type = FT_TAG_KEY},
    {.name = "at", .type = FT_TIMESTAMP},
    {.name = "tags",
     .type = FT_STRING_ARRAY,
     .min = 0,
     .max = 3,
     .elem = FT_STRING,
     .elem_min = 1,
     .elem_max = 5},
    {.name = NULL},
};

static const struct field_spec consumer_specs[] = {
    {.name = "consumer_name", .type = FT_CONSUMER_NAME, .required = true},
    {.name = NULL},
};

static const struct field_spec tags_specs[] = {
    {.name = "tags", .type = FT_TAGS, .max = 3},
    {.name = NULL},
};

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

/* Validates `in` (borrowed) and expects success with output equal to the
 * JSON text `want`; the input must be left as it was. */
static void
ok_v(json_t *in, const struct field_spec *specs, bool q, const char *want)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = (json_t *)&err; /* not NULL */
    json_t *before = json_deep_copy(in);
    int rc = validate_input(in, specs, q, &out, &err);
    if (rc != 0)
        fail_msg("rejected: %s", err.msg ? err.msg : "(no message)");
    assert_int_equal(err.status, 0);
    assert_null(err.msg);
    assert_non_null(out);
    assert_ptr_not_equal(out, in);
    json_t *w = parse(want);
    if (!json_equal(out, w)) {
        char *got = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("output %s, expected %s", got, want);
    }
    /* same types too (json_equal already compares 12 and "12" unequal) */
    assert_true(json_equal(in, before));
    json_decref(w);
    json_decref(before);
    json_decref(out);
}

static void
ok(const char *in_text, const struct field_spec *specs, bool q,
   const char *want)
{
    json_t *in = parse(in_text);
    ok_v(in, specs, q, want);
    json_decref(in);
}

/* Validates and expects a 422; returns the message (owned; free()). */
static char *
fail_v(json_t *in, const struct field_spec *specs, bool q)
{
    struct app_err err = APP_ERR_INIT;
    json_t *out = (json_t *)&err;
    int rc = validate_input(in, specs, q, &out, &err);
    if (rc != -1) {
        char *t = json_dumps(in, JSON_COMPACT);
        fail_msg("accepted %s", t);
    }
    assert_null(out);
    assert_int_equal(err.status, 422);
    assert_non_null(err.msg);
    char *msg = strdup(err.msg);
    err_clear(&err);
    return msg;
}

static char *
fail_t(const char *in_text, const struct field_spec *specs, bool q)
{
    json_t *in = parse(in_text);
    char *msg = fail_v(in, specs, q);
    json_decref(in);
    return msg;
}

/* Expects a 422 with exactly the message `want`. */
static void
bad(const char *in_text, const struct field_spec *specs, bool q,
    const char *want)
{
    char *msg = fail_t(in_text, specs, q);
    if (strcmp(msg, want) != 0)
        fail_msg("message\n  got:      %s\n  expected: %s", msg, want);
    free(msg);
}

static void
bad_v(json_t *in, const struct field_spec *specs, bool q, const char *want)
{
    char *msg = fail_v(in, specs, q);
    if (strcmp(msg, want) != 0)
        fail_msg("message\n  got:      %s\n  expected: %s", msg, want);
    free(msg);
}

/* Expects a 422 whose message contains `part`. */
static void
bad_has(const char *in_text, const struct field_spec *specs, bool q,
        const char *part)
{
    char *msg = fail_t(in_text, specs, q);
    if (strstr(msg, part) == NULL)
        fail_msg("message \"%s\" does not contain \"%s\"", msg, part);
    free(msg);
}

/* `count` copies of `unit`, malloc'd. */
static char *
repeat(const char *unit, size_t count)
{
    size_t n = strlen(unit);
    char *s = malloc(n * count + 1);
    assert_non_null(s);
    for (size_t i = 0; i < count; i++)
        memcpy(s + i * n, unit, n);
    s[n * count] = '\0';
    return s;
}

#define UUID_LOWER "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
#define UUID_UPPER "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"

/* ---- presence ----------------------------------------------------------- */

static void
test_valid_input_normalised(void **state)
{
    (void)state;
    ok("{\"customer_id\":\"" UUID_UPPER "\",\"status\":\"ACTIVE\"}",
       status_specs, false,
       "{\"customer_id\":\"" UUID_LOWER "\",\"status\":\"ACTIVE\"}");
}

static void
test_only_given_fields(void **state)
{
    (void)state;
    ok("{}", list_specs, false, "{}");
    ok("{\"limit\":5}", list_specs, false, "{\"limit\":5}");
    ok("{}", NULL, false, "{}");
}

static void
test_missing_required(void **state)
{
    (void)state;
    bad("{\"status\":\"ACTIVE\"}", status_specs, false,
        "Missing required field \"customer_id\"");
    bad("{}", status_specs, false,
        "Missing required field \"customer_id\"; "
        "Missing required field \"status\"");
    bad("{}", status_specs, true,
        "Missing required field \"customer_id\"; "
        "Missing required field \"status\"");
}

static void
test_null_optional_is_absent(void **state)
{
    (void)state;
    ok("{\"name\":\"John\",\"status\":null}", create_specs, false,
       "{\"name\":\"John\"}");
    ok("{\"customer_id\":null,\"limit\":null,\"event_types\":null}", list_specs,
       false, "{}");
}

static void
test_null_required_is_422(void **state)
{
    (void)state;
    bad_has("{\"customer_id\":null,\"status\":\"ACTIVE\"}", status_specs, false,
            "customer_id");
    bad_has("{\"name\":null}", create_specs, false, "name");
}

static void
test_unknown_fields_first(void **state)
{
    (void)state;
    /* the unknown fields come last in the object, first in the message */
    bad("{\"status\":\"japapa\",\"stauts\":\"ACTIVE\",\"zzz\":1}", status_specs,
        false,
        "Unknown field \"stauts\"; Unknown field \"zzz\"; "
        "Missing required field \"customer_id\"; "
        "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    bad("{\"stauts\":\"ACTIVE\"}", create_specs, false,
        "Unknown field \"stauts\"; Missing required field \"name\"");
    bad("{\"a\":1}", NULL, false, "Unknown field \"a\"");
    /* the same rule for query strings */
    bad("{\"customer_id\":\"" UUID_LOWER "\",\"foo\":\"1\"}", list_specs, true,
        "Unknown field \"foo\"");
    /* even a null unknown field is unknown */
    bad("{\"name\":\"x\",\"extra\":null}", create_specs, false,
        "Unknown field \"extra\"");
}

static void
test_all_problems_joined(void **state)
{
    (void)state;
    char *msg = fail_t("{\"name\":\"   \",\"status\":\"x\",\"foo\":1}",
                       create_specs, false);
    const char *first = "Unknown field \"foo\"; name ";
    assert_memory_equal(msg, first, strlen(first));
    const char *status_msg =
        "; status must be one of ACTIVE, INACTIVE (got \"x\")";
    assert_string_equal(msg + strlen(msg) - strlen(status_msg), status_msg);
    size_t joins = 0;
    for (const char *p = msg; (p = strstr(p, "; ")) != NULL; p += 2)
        joins++;
    assert_int_equal(joins, 2);
    free(msg);
}

/* ---- JSON types -----------------------------------------------------------
 */

static void
test_wrong_json_types(void **state)
{
    (void)state;
    bad("{\"x\":5}", misc_specs, false, "x must be a string (got 5)");
    bad("{\"x\":true}", misc_specs, false, "x must be a string (got true)");
    bad("{\"x\":false}", misc_specs, false, "x must be a string (got false)");
    bad("{\"x\":1.5}", misc_specs, false, "x must be a string (got 1.5)");
    bad("{\"x\":[]}", misc_specs, false, "x must be a string (got [])");
    bad("{\"x\":{}}", misc_specs, false, "x must be a string (got {})");
    bad("{\"x\":[\"a\"]}", misc_specs, false,
        "x must be a string (got [\"a\"])");
    bad("{\"customer_id\":123,\"status\":\"ACTIVE\"}", status_specs, false,
        "customer_id must be a string (got 123)");
    bad("{\"customer_id\":\"" UUID_LOWER "\",\"status\":1}", status_specs,
        false, "status must be a string (got 1)");
    bad("{\"name\":{\"first\":\"J\"}}", create_specs, false,
        "name must be a string (got {\"first\":\"J\"})");
}

/* ---- UUID ------------------------------------------------------------------
 */

static void
test_uuid_any_case_lowered(void **state)
{
    (void)state;
    ok("{\"customer_id\":\"" UUID_UPPER "\"}", list_specs, false,
       "{\"customer_id\":\"" UUID_LOWER "\"}");
    ok("{\"customer_id\":\"a0EEbc99-9C0b-4Ef8-bB6d-6bb9BD380a11\"}", list_specs,
       true, "{\"customer_id\":\"" UUID_LOWER "\"}");
    ok("{\"customer_id\":\"" UUID_LOWER "\"}", list_specs, true,
       "{\"customer_id\":\"" UUID_LOWER "\"}");
}

static void
test_bad_uuid(void **state)
{
    (void)state;
    bad("{\"customer_id\":\"abc\"}", list_specs, false,
        "customer_id must be a UUID (got \"abc\")");
    bad("{\"customer_id\":\"abc\"}", list_specs, true,
        "customer_id must be a UUID (got \"abc\")");
    bad("{\"customer_id\":\"\"}", list_specs, false,
        "customer_id must be a UUID (got \"\")");
    const char *forms[] = {
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",       /* no hyphens */
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", /* braces */
        " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",  /* not trimmed */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1z",
        "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        json_t *in = json_pack("{s:s}", "customer_id", forms[i]);
        char *msg = fail_v(in, list_specs, false);
        assert_non_null(strstr(msg, "customer_id must be a UUID (got "));
        free(msg);
        json_decref(in);
    }
}

/* ---- enums -----------------------------------------------------------------
 */

static void
test_enum(void **state)
{
    (void)state;
    ok("{\"name\":\"x\",\"status\":\"INACTIVE\"}", create_specs, false,
       "{\"name\":\"x\",\"status\":\"INACTIVE\"}");
    bad("{\"customer_id\":\"" UUID_LOWER "\",\"status\":\"japapa\"}",
        status_specs, false,
        "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    /* case-sensitive */
    bad("{\"customer_id\":\"" UUID_LOWER "\",\"status\":\"active\"}",
        status_specs, false,
        "status must be one of ACTIVE, INACTIVE (got \"active\")");
    bad("{\"customer_id\":\"" UUID_LOWER "\",\"status\":\" ACTIVE\"}",
        status_specs, false,
        "status must be one of ACTIVE, INACTIVE (got \" ACTIVE\")");
    bad("{\"customer_id\":\"" UUID_LOWER "\",\"status\":\"\"}", status_specs,
        true, "status must be one of ACTIVE, INACTIVE (got \"\")");
}

/* ---- FT_NAME ----------------------------------------------------------------
 */

static void
test_name_trimmed(void **state)
{
    (void)state;
    ok("{\"name\":\"  John Richard Doe \\t\\n\"}", create_specs, false,
       "{\"name\":\"John Richard Doe\"}");
    ok("{\"name\":\"a  b\"}", create_specs, false, "{\"name\":\"a  b\"}");
    ok("{\"name\":\"x\"}", create_specs, true, "{\"name\":\"x\"}");
}

static void
test_name_blank_fails(void **state)
{
    (void)state;
    const char *blank[] = {"{\"name\":\"\"}", "{\"name\":\"   \"}",
                           "{\"name\":\"\\t\\r\\n \"}"};
    for (size_t i = 0; i < 3; i++) {
        char *msg = fail_t(blank[i], create_specs, false);
        assert_memory_equal(msg, "name ", 5);
        assert_non_null(strstr(msg, "255"));
        free(msg);
    }
}

static void
check_name_of(const char *unit, size_t count, bool accepted)
{
    char *s = repeat(unit, count);
    json_t *in = json_pack("{s:s}", "name", s);
    if (accepted) {
        struct app_err err = APP_ERR_INIT;
        json_t *out = NULL;
        if (validate_input(in, create_specs, false, &out, &err) != 0)
            fail_msg("%zu x \"%s\" rejected: %s", count, unit, err.msg);
        assert_string_equal(json_string_value(json_object_get(out, "name")), s);
        json_decref(out);
    } else {
        char *msg = fail_v(in, create_specs, false);
        assert_memory_equal(msg, "name ", 5);
        /* the message does not echo 256 characters back */
        assert_true(strlen(msg) < 200);
        free(msg);
    }
    json_decref(in);
    free(s);
}

static void
test_name_length_in_code_points(void **state)
{
    (void)state;
    check_name_of("a", 1, true);
    check_name_of("a", 255, true);
    check_name_of("a", 256, false);
    check_name_of("\xC3\xA9", 255, true); /* é: 510 bytes, 255 characters */
    check_name_of("\xC3\xA9", 256, false);
    check_name_of("\xE6\x9D\xB1", 255, true);     /* 東 */
    check_name_of("\xF0\x9F\x98\x80", 255, true); /* 😀: 1020 bytes */
    check_name_of("\xF0\x9F\x98\x80", 256, false);

    /* 255 characters plus surrounding blanks: the trimmed length counts */
    char *core = repeat("\xC3\xA9", 255);
    size_t n = strlen(core);
    char *padded = malloc(n + 7);
    assert_non_null(padded);
    memcpy(padded, "   ", 3);
    memcpy(padded + 3, core, n);
    memcpy(padded + 3 + n, " \t\n", 4);
    json_t *in = json_pack("{s:s}", "name", padded);
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    assert_int_equal(validate_input(in, create_specs, false, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "name")), core);
    json_decref(out);
    json_decref(in);
    free(padded);
    free(core);
}

/* ---- NUL -------------------------------------------------------------------
 */

static void
test_nul_rejected(void **state)
{
    (void)state;
    json_t *in = json_object();
    json_object_set_new(in, "x", json_stringn("a\0b", 3));
    bad_v(in, misc_specs, false, "x must not contain NUL characters");
    bad_v(in, misc_specs, true, "x must not contain NUL characters");
    json_decref(in);

    in = json_object();
    json_object_set_new(in, "name", json_stringn("Jo\0hn", 5));
    bad_v(in, create_specs, false, "name must not contain NUL characters");
    json_decref(in);

    in = json_object();
    json_object_set_new(in, "name", json_stringn("\0", 1));
    bad_v(in, create_specs, false, "name must not contain NUL characters");
    json_decref(in);

    in = json_object();
    json_object_set_new(in, "customer_id", json_string(UUID_LOWER));
    json_object_set_new(in, "status", json_stringn("ACTIVE\0", 7));
    bad_v(in, status_specs, false, "status must not contain NUL characters");
    json_decref(in);

    /* the same text as parsed from a body with \u0000 */
    bad("{\"x\":\"a\\u0000\"}", misc_specs, false,
        "x must not contain NUL characters");
}

/* ---- FT_INT
 * ------------------------------------------------------------------ */

static void
test_int_strict_in_json(void **state)
{
    (void)state;
    ok("{\"limit\":1}", list_specs, false, "{\"limit\":1}");
    ok("{\"limit\":1000}", list_specs, false, "{\"limit\":1000}");
    bad("{\"limit\":0}", list_specs, false,
        "limit must be an integer between 1 and 1000 (got 0)");
    bad("{\"limit\":1001}", list_specs, false,
        "limit must be an integer between 1 and 1000 (got 1001)");
    bad("{\"limit\":-5}", list_specs, false,
        "limit must be an integer between 1 and 1000 (got -5)");
    bad("{\"limit\":\"5\"}", list_specs, false,
        "limit must be an integer between 1 and 1000 (got \"5\")");
    bad("{\"limit\":true}", list_specs, false,
        "limit must be an integer between 1 and 1000 (got true)");
    bad_has("{\"limit\":5.0}", list_specs, false,
            "limit must be an integer between 1 and 1000 (got 5");
    bad_has("{\"limit\":[5]}", list_specs, false,
            "limit must be an integer between 1 and 1000 (got [5])");
    bad_has("{\"limit\":{}}", list_specs, false, "limit must be an integer");
}

static void
test_int_from_query_text(void **state)
{
    (void)state;
    ok("{\"limit\":\"12\"}", list_specs, true, "{\"limit\":12}");
    ok("{\"limit\":\"1\"}", list_specs, true, "{\"limit\":1}");
    ok("{\"limit\":\"1000\"}", list_specs, true, "{\"limit\":1000}");
    bad("{\"limit\":\"0\"}", list_specs, true,
        "limit must be an integer between 1 and 1000 (got 0)");
    const char *bad_text[] = {"12a",
                              "",
                              " 12",
                              "12 ",
                              "a12",
                              "+12",
                              "0x10",
                              "1e2",
                              "1.0",
                              "-",
                              "1001",
                              "-1",
                              "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        json_t *in = json_pack("{s:s}", "limit", bad_text[i]);
        char *msg = fail_v(in, list_specs, true);
        if (strstr(msg, "limit must be an integer between 1 and 1000") != msg)
            fail_msg("\"%s\": %s", bad_text[i], msg);
        free(msg);
        json_decref(in);
    }
}

/* ---- query mode: scalars given twice
 * ------------------------------------------ */

static void
test_scalar_twice_in_query(void **state)
{
    (void)state;
    bad_has("{\"customer_id\":[\"" UUID_LOWER "\",\"" UUID_LOWER "\"]}",
            list_specs, true, "customer_id");
    bad_has("{\"limit\":[\"1\",\"2\"]}", list_specs, true, "limit");
    bad_has("{\"order\":[\"asc\",\"asc\"]}", list_specs, true, "order");
    bad_has("{\"customer_id\":[\"" UUID_LOWER "\",\"" UUID_LOWER
            "\"],\"status\":\"ACTIVE\"}",
            status_specs, true, "customer_id");
}

/* ---- FT_ENUM_ARRAY
 * ------------------------------------------------------------- */

static void
test_enum_array_query_flattens(void **state)
{
    (void)state;
    ok("{\"event_types\":\"customer_creation\"}", list_specs, true,
       "{\"event_types\":[\"customer_creation\"]}");
    /* comma-separated */
    ok("{\"event_types\":\"customer_creation,customer_deletion\"}", list_specs,
       true, "{\"event_types\":[\"customer_creation\",\"customer_deletion\"]}");
    /* repeated */
    ok("{\"event_types\":[\"customer_creation\",\"customer_deletion\"]}",
       list_specs, true,
       "{\"event_types\":[\"customer_creation\",\"customer_deletion\"]}");
    /* both at once, order kept */
    ok("{\"event_types\":[\"customer_status_change,customer_creation\","
       "\"customer_deletion\"]}",
       list_specs, true,
       "{\"event_types\":[\"customer_status_change\",\"customer_creation\","
       "\"customer_deletion\"]}");
}

static void
test_enum_array_query_bad(void **state)
{
    (void)state;
    bad_has("{\"event_types\":\"customer_creation,nope\"}", list_specs, true,
            "nope");
    bad_has("{\"event_types\":[\"customer_creation\",\"nope\"]}", list_specs,
            true, "nope");
    bad_has("{\"event_types\":\"\"}", list_specs, true, "event_types");
    bad_has("{\"event_types\":\"customer_creation,\"}", list_specs, true,
            "event_types");
    bad_has("{\"event_types\":\"Customer_creation\"}", list_specs, true,
            "event_types");
}

static void
test_enum_array_json(void **state)
{
    (void)state;
    ok("{\"event_types\":[\"customer_creation\"]}", list_specs, false,
       "{\"event_types\":[\"customer_creation\"]}");
    bad("{\"event_types\":[]}", list_specs, false,
        "event_types must not be empty");
    bad_has("{\"event_types\":\"customer_creation\"}", list_specs, false,
            "event_types must be an array");
    bad_has("{\"event_types\":[\"nope\"]}", list_specs, false, "nope");
    bad_has("{\"event_types\":[5]}", list_specs, false, "must be a string");
    /* commas are not split in JSON */
    bad_has("{\"event_types\":[\"customer_creation,customer_deletion\"]}",
            list_specs, false, "event_types");
    /* more than max items */
    char *msg = fail_t(
        "{\"event_types\":[\"customer_creation\",\"customer_creation\","
        "\"customer_creation\",\"customer_creation\",\"customer_creation\","
        "\"customer_creation\",\"customer_creation\",\"customer_creation\","
        "\"customer_creation\",\"customer_creation\",\"customer_creation\"]}",
        list_specs, false);
    assert_non_null(strstr(msg, "event_types"));
    assert_non_null(strstr(msg, "10"));
    free(msg);
}

/* ---- other string types
 * --------------------------------------------------------- */

static void
test_string_length_in_code_points(void **state)
{
    (void)state;
    ok("{\"x\":\"\"}", misc_specs, false, "{\"x\":\"\"}"); /* min 0 */
    ok("{\"x\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
       "\xC3\xA9\xC3\xA9\xC3\xA9\"}",
       misc_specs, false,
       "{\"x\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
       "\xC3\xA9\xC3\xA9\xC3\xA9\"}");
    bad_has("{\"x\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
            "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}",
            misc_specs, false, "x must be 0 to 10 characters");
    /* FT_STRING keeps surrounding blanks: they count */
    ok("{\"x\":\"  a  \"}", misc_specs, false, "{\"x\":\"  a  \"}");
    bad_has("{\"x\":\"     a     \"}", misc_specs, false, "x must be");
}

static void
test_tag_key(void **state)
{
    (void)state;
    ok("{\"tag_key\":\"Risk.level_2-a\"}", misc_specs, false,
       "{\"tag_key\":\"Risk.level_2-a\"}");
    char *k64 = repeat("k", 64);
    char *k65 = repeat("k", 65);
    json_t *in = json_pack("{s:s}", "tag_key", k64);
    struct app_err err = APP_ERR_INIT;
    json_t *out = NULL;
    assert_int_equal(validate_input(in, misc_specs, false, &out, &err), 0);
    json_decref(out);
    json_decref(in);
    in = json_pack("{s:s}", "tag_key", k65);
    char *msg = fail_v(in, misc_specs, false);
    assert_memory_equal(msg, "tag_key ", 8);
    free(msg);
    json_decref(in);
    free(k64);
    free(k65);
    bad_has("{\"tag_key\":\"\"}", misc_specs, false, "tag_key");
    bad_has("{\"tag_key\":\"a b\"}", misc_specs, false, "tag_key");
    bad_has("{\"tag_key\":\"a/b\"}", misc_specs, false, "tag_key");
    bad_has("{\"tag_key\":\"caf\xC3\xA9\"}", misc_specs, false, "tag_key");
}

static void
test_timestamp(void **state)
{
    (void)state;
    ok("{\"at\":\"2025-10-23T14:34:51.467162Z\"}", misc_specs, false,
       "{\"at\":\"2025-10-23T14:34:51.467162Z\"}");
    bad_has("{\"at\":\"2025\"}", misc_specs, false, "at must be");
    bad_has("{\"at\":1700000000}", misc_specs, false, "at must be a string");
}

static void
test_string_array(void **state)
{
    (void)state;
    ok("{\"tags\":[\"ab\",\"c\"]}", misc_specs, false,
       "{\"tags\":[\"ab\",\"c\"]}");
    ok("{\"tags\":[]}", misc_specs, false, "{\"tags\":[]}"); /* min 0 */
    bad_has("{\"tags\":[\"abcdef\"]}", misc_specs, false, "tags[0]");
    bad_has("{\"tags\":[\"ok\",\"\"]}", misc_specs, false, "tags[1]");
    bad_has("{\"tags\":[\"ok\",1]}", misc_specs, false,
            "tags[1] must be a string (got 1)");
    bad_has("{\"tags\":[\"a\",\"b\",\"c\",\"d\"]}", misc_specs, false, "tags");
    bad_has("{\"tags\":\"a\"}", misc_specs, false, "tags must be an array");
}

/* Expects `in` to be accepted unchanged. */
static void
ok_same(json_t *in, const struct field_spec *specs, bool q)
{
    char *text = json_dumps(in, JSON_COMPACT);
    assert_non_null(text);
    ok_v(in, specs, q, text);
    free(text);
}

static void
test_consumer_name(void **state)
{
    (void)state;
    char *n63 = repeat("c", 63);
    char *n64 = repeat("c", 64);
    const char *good[] = {"consumer001", "a",  "0",  "a_b-c",
                          "9lives",      "x-", "x_", n63};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_t *in = json_pack("{s:s}", "consumer_name", good[i]);
        ok_same(in, consumer_specs, false);
        json_decref(in);
    }
    const char *bad_names[] = {"",     "Consumer", "consumerA", "_abc",
                               "-abc", "a b",      "a.b",       "caf\xC3\xA9",
                               " abc", "abc\n",    n64};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        json_t *in = json_pack("{s:s}", "consumer_name", bad_names[i]);
        char *msg = fail_v(in, consumer_specs, false);
        if (strncmp(msg, "consumer_name must match", 24) != 0)
            fail_msg("\"%s\": %s", bad_names[i], msg);
        free(msg);
        json_decref(in);
    }
    bad("{\"consumer_name\":5}", consumer_specs, false,
        "consumer_name must be a string (got 5)");
    free(n63);
    free(n64);
}

static void
test_tags_object(void **state)
{
    (void)state;
    ok("{\"tags\":{}}", tags_specs, false, "{\"tags\":{}}");
    ok("{\"tags\":{\"risk\":\"high\",\"Seg.a-b_c\":\"\"}}", tags_specs, false,
       "{\"tags\":{\"risk\":\"high\",\"Seg.a-b_c\":\"\"}}");
    bad_has("{\"tags\":[]}", tags_specs, false, "tags must be an object");
    bad_has("{\"tags\":\"risk=high\"}", tags_specs, false,
            "tags must be an object");
    bad_has("{\"tags\":{\"bad key\":\"x\"}}", tags_specs, false, "bad key");
    bad_has("{\"tags\":{\"\":\"x\"}}", tags_specs, false, "tags");
    bad("{\"tags\":{\"k\":5}}", tags_specs, false,
        "tags.k must be a string (got 5)");
    bad_has("{\"tags\":{\"k\":\"a\\u0000b\"}}", tags_specs, false,
            "must not contain NUL characters");
    bad_has("{\"tags\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}}",
            tags_specs, false, "tags");
    /* values: 0..1024 characters */
    char *v1024 = repeat("\xC3\xA9", 1024);
    char *v1025 = repeat("v", 1025);
    json_t *in = json_pack("{s:{s:s}}", "tags", "k", v1024);
    ok_same(in, tags_specs, false);
    json_decref(in);
    in = json_pack("{s:{s:s}}", "tags", "k", v1025);
    char *msg = fail_v(in, tags_specs, false);
    assert_non_null(strstr(msg, "tags.k"));
    free(msg);
    json_decref(in);
    free(v1024);
    free(v1025);
}

/* ---- long rejected values
 * ------------------------------------------------------- */

static void
test_long_value_truncated(void **state)
{
    (void)state;
    char *big = repeat("a", 10000);
    json_t *in = json_pack("{s:s, s:s}", "customer_id", big, "status", big);
    char *msg = fail_v(in, status_specs, false);
    assert_true(strlen(msg) < 1000);
    assert_null(strstr(msg, big));
    assert_non_null(strstr(msg, "customer_id must be a UUID (got \"aaaa"));
    assert_non_null(
        strstr(msg, "status must be one of ACTIVE, INACTIVE (got \"aaaa"));
    free(msg);
    json_decref(in);
    free(big);

    /* multi-byte text is cut on a character boundary */
    big = repeat("\xC3\xA9", 10000);
    in = json_pack("{s:s}", "order", big);
    msg = fail_v(in, list_specs, false);
    assert_true(strlen(msg) < 1000);
    assert_true(utf8_length(msg, strlen(msg)) >= 0);
    free(msg);
    json_decref(in);
    free(big);

    /* a huge value of the wrong type */
    json_t *arr = json_array();
    for (int i = 0; i < 5000; i++)
        json_array_append_new(arr, json_integer(i));
    in = json_pack("{s:o}", "x", arr);
    msg = fail_v(in, misc_specs, false);
    assert_true(strlen(msg) < 1000);
    assert_memory_equal(msg, "x must be a string (got [0,1,2", 30);
    free(msg);
    json_decref(in);
}

/* ---- the service's own field tables
 * ------------------------------------------------ */

static const struct field_spec *
fields_of(const char *method, const char *path)
{
    struct strbuf allow = STRBUF_INIT;
    const struct route *r = NULL;
    enum router_result res =
        router_match(routes, routes_count, method, path, &r, &allow);
    sb_free(&allow);
    assert_int_equal(res, ROUTER_FOUND);
    return r->fields;
}

static void
test_real_routes_fields(void **state)
{
    (void)state;
    const struct field_spec *create = fields_of("POST", "/customer/data");
    const struct field_spec *get = fields_of("GET", "/customer/data");
    const struct field_spec *change =
        fields_of("PATCH", "/customer/change-status");

    ok("{\"name\":\"  Zo\xC3\xAB \"}", create, false,
       "{\"name\":\"Zo\xC3\xAB\"}");
    ok("{\"name\":\"A\",\"status\":\"INACTIVE\"}", create, false,
       "{\"name\":\"A\",\"status\":\"INACTIVE\"}");
    bad("{\"name\":\"A\",\"status\":\"japapa\"}", create, false,
        "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    bad("{\"name\":\"A\",\"stauts\":\"ACTIVE\"}", create, false,
        "Unknown field \"stauts\"");
    bad("{\"customer_id\":\"" UUID_LOWER "\"}", create, false,
        "Unknown field \"customer_id\"; Missing required field \"name\"");

    ok("{\"customer_id\":\"" UUID_UPPER "\"}", get, true,
       "{\"customer_id\":\"" UUID_LOWER "\"}");
    bad("{\"customer_id\":\"abc\"}", get, true,
        "customer_id must be a UUID (got \"abc\")");
    bad("{}", get, true, "Missing required field \"customer_id\"");

    bad("{}", change, false,
        "Missing required field \"customer_id\"; "
        "Missing required field \"status\"");

    /* POST /customer/data takes at most 100 tags */
    json_t *tags = json_object();
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        json_object_set_new(tags, key, json_string("v"));
    }
    json_t *in = json_pack("{s:s, s:O}", "name", "Many", "tags", tags);
    ok_same(in, create, false);
    json_decref(in);
    json_object_set_new(tags, "k100", json_string("v"));
    in = json_pack("{s:s, s:O}", "name", "Many", "tags", tags);
    char *msg = fail_v(in, create, false);
    assert_non_null(strstr(msg, "tags"));
    free(msg);
    json_decref(in);
    json_decref(tags);

    /* POST /customer/tag: tag_keys elements follow the tag_key rule */
    const struct field_spec *tag_add = fields_of("POST", "/customer/tag");
    ok("{\"customer_id\":\"" UUID_LOWER "\",\"tag_keys\":[\"a\",\"b.c\"],"
       "\"tag_values\":[\"\",\"x\"]}",
       tag_add, false,
       "{\"customer_id\":\"" UUID_LOWER "\",\"tag_keys\":[\"a\",\"b.c\"],"
       "\"tag_values\":[\"\",\"x\"]}");
    bad_has("{\"customer_id\":\"" UUID_LOWER "\",\"tag_keys\":[\"a b\"],"
            "\"tag_values\":[\"x\"]}",
            tag_add, false, "tag_keys[0]");
    bad_has("{\"customer_id\":\"" UUID_LOWER "\",\"tag_keys\":[],"
            "\"tag_values\":[]}",
            tag_add, false, "tag_keys must not be empty");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_input_normalised),
        cmocka_unit_test(test_only_given_fields),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_null_optional_is_absent),
        cmocka_unit_test(test_null_required_is_422),
        cmocka_unit_test(test_unknown_fields_first),
        cmocka_unit_test(test_all_problems_joined),
        cmocka_unit_test(test_wrong_json_types),
        cmocka_unit_test(test_uuid_any_case_lowered),
        cmocka_unit_test(test_bad_uuid),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_name_trimmed),
        cmocka_unit_test(test_name_blank_fails),
        cmocka_unit_test(test_name_length_in_code_points),
        cmocka_unit_test(test_nul_rejected),
        cmocka_unit_test(test_int_strict_in_json),
        cmocka_unit_test(test_int_from_query_text),
        cmocka_unit_test(test_scalar_twice_in_query),
        cmocka_unit_test(test_enum_array_query_flattens),
        cmocka_unit_test(test_enum_array_query_bad),
        cmocka_unit_test(test_enum_array_json),
        cmocka_unit_test(test_string_length_in_code_points),
        cmocka_unit_test(test_tag_key),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_string_array),
        cmocka_unit_test(test_consumer_name),
        cmocka_unit_test(test_tags_object),
        cmocka_unit_test(test_long_value_truncated),
        cmocka_unit_test(test_real_routes_fields),
    };
    return cmocka_run_group_tests_name(
        "http/validate: field types, messages, JSON and query-string modes",
        tests, NULL, NULL);
}
