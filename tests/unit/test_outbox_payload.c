/*
 * tests/unit/test_outbox_payload.c — db/outbox_db.h outbox_payload: the
 * event message body of docs/API.md §8.2, built once and stored verbatim.
 * Pure: no database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "db/outbox_db.h"

#define EVENT_ID "5e789704-3704-44aa-a0b6-b2c5a2762f71"
#define CUSTOMER_ID "39e1fdb9-419b-4b55-b3f4-1e958c221aa0"
#define CONSUMER_ID "00000000-0000-0000-0000-000000000001"
#define CREATED_AT "2025-10-23T21:01:14.497319Z"

static json_t *
parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    return v;
}

/* The keys of `obj` in document order, joined with ','. */
static char *
key_order(const json_t *obj)
{
    struct strbuf sb = STRBUF_INIT;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        (void)value;
        if (sb.len > 0)
            sb_puts(&sb, ",");
        sb_puts(&sb, key);
    }
    return sb_steal(&sb);
}

static void
expect_key_order(const json_t *obj, const char *want)
{
    char *got = key_order(obj);
    assert_string_equal(got, want);
    free(got);
}

static void
test_customer_event_exact(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s, s:s, s:s}", "customer_id", CUSTOMER_ID,
                             "name", "John Richard Doe", "status", "ACTIVE");
    struct event_new ev = {
        .customer_id = CUSTOMER_ID,
        .consumer_id = CONSUMER_ID,
        .event_type = "customer_creation",
        .source_service = "POST: /customer/data",
        .request_id = "req-42",
        .data = data,
    };
    char *text = outbox_payload(&ev, EVENT_ID, 1, CREATED_AT);
    assert_non_null(text);
    assert_string_equal(
        text, "{\"schema_version\":\"1.0\",\"event_id\":\"" EVENT_ID "\","
              "\"event_type\":\"customer_creation\",\"sequence\":1,"
              "\"consumer_id\":\"" CONSUMER_ID "\","
              "\"customer_id\":\"" CUSTOMER_ID "\","
              "\"data\":{\"customer_id\":\"" CUSTOMER_ID "\","
              "\"name\":\"John Richard Doe\",\"status\":\"ACTIVE\"},"
              "\"metadata\":{\"created_at\":\"" CREATED_AT "\","
              "\"source_service\":\"POST: /customer/data\","
              "\"request_id\":\"req-42\"}}");
    free(text);
    /* data is borrowed */
    assert_int_equal(data->refcount, 1);
    json_decref(data);
}

static void
test_key_order(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s, s:s, s:s}", "customer_id", CUSTOMER_ID,
                             "previous_status", "ACTIVE", "status", "INACTIVE");
    struct event_new ev = {
        .customer_id = CUSTOMER_ID,
        .consumer_id = CONSUMER_ID,
        .event_type = "customer_status_change",
        .source_service = "PATCH: /customer/change-status",
        .request_id = "rid",
        .data = data,
    };
    char *text = outbox_payload(&ev, EVENT_ID, 7, CREATED_AT);
    json_t *p = parse(text);
    expect_key_order(p, "schema_version,event_id,event_type,sequence,"
                        "consumer_id,customer_id,data,metadata");
    expect_key_order(json_object_get(p, "metadata"),
                     "created_at,source_service,request_id");
    /* data keeps the handler's order */
    expect_key_order(json_object_get(p, "data"),
                     "customer_id,previous_status,status");
    assert_string_equal(json_string_value(json_object_get(p, "schema_version")),
                        "1.0");
    assert_true(json_is_integer(json_object_get(p, "sequence")));
    assert_int_equal(json_integer_value(json_object_get(p, "sequence")), 7);
    json_decref(p);
    free(text);
    json_decref(data);
}

static void
test_no_customer_omits_key(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "consumer_id",
                             "c1d2e3f4-0000-4000-8000-000000000001",
                             "consumer_name", "consumer001", "status", "ACTIVE",
                             "queue", "customer_notification_consumer001");
    struct event_new ev = {
        .customer_id = NULL,
        .consumer_id = CONSUMER_ID,
        .event_type = "consumer_creation",
        .source_service = "POST: /consumer/data",
        .request_id = "rid-9",
        .data = data,
    };
    char *text = outbox_payload(&ev, EVENT_ID, 3, CREATED_AT);
    assert_non_null(text);
    assert_null(strstr(text, "\"customer_id\""));
    json_t *p = parse(text);
    expect_key_order(p, "schema_version,event_id,event_type,sequence,"
                        "consumer_id,data,metadata");
    json_decref(p);
    free(text);
    json_decref(data);
}

static void
test_unicode_verbatim(void **state)
{
    (void)state;
    const char *name = "Zo\xC3\xAB \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80";
    json_t *data =
        json_pack("{s:s, s:s}", "customer_id", CUSTOMER_ID, "name", name);
    struct event_new ev = {
        .customer_id = CUSTOMER_ID,
        .consumer_id = CONSUMER_ID,
        .event_type = "customer_deletion",
        .source_service = "DELETE: /customer/data",
        .request_id = "rid",
        .data = data,
    };
    char *text = outbox_payload(&ev, EVENT_ID, 2, CREATED_AT);
    assert_non_null(strstr(text, name));
    assert_null(strstr(text, "\\u"));
    json_t *p = parse(text);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "data"), "name")),
        name);
    json_decref(p);
    free(text);
    json_decref(data);
}

static void
test_large_sequence_exact(void **state)
{
    (void)state;
    json_t *data = json_object();
    struct event_new ev = {
        .customer_id = CUSTOMER_ID,
        .consumer_id = CONSUMER_ID,
        .event_type = "customer_tag_change",
        .source_service = "POST: /customer/tag",
        .request_id = "rid",
        .data = data,
    };
    /* beyond 2^53: printed exactly, not through a double */
    char *text = outbox_payload(&ev, EVENT_ID, 9007199254740993LL, CREATED_AT);
    assert_non_null(strstr(text, "\"sequence\":9007199254740993,"));
    assert_non_null(strstr(text, "\"data\":{}"));
    free(text);
    json_decref(data);
}

static void
test_strings_escaped(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s}", "name", "O\"Brien\\\n");
    struct event_new ev = {
        .customer_id = CUSTOMER_ID,
        .consumer_id = CONSUMER_ID,
        .event_type = "customer_creation",
        .source_service = "POST: /customer/data",
        .request_id = "a.b:c-d_e",
        .data = data,
    };
    char *text = outbox_payload(&ev, EVENT_ID, 1, CREATED_AT);
    json_t *p = parse(text);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "data"), "name")),
        "O\"Brien\\\n");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(p, "metadata"), "request_id")),
                        "a.b:c-d_e");
    /* compact: one line, no spaces after separators */
    assert_null(strchr(text, '\n'));
    assert_null(strstr(text, "\": "));
    json_decref(p);
    free(text);
    json_decref(data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_customer_event_exact),
        cmocka_unit_test(test_key_order),
        cmocka_unit_test(test_no_customer_omits_key),
        cmocka_unit_test(test_unicode_verbatim),
        cmocka_unit_test(test_large_sequence_exact),
        cmocka_unit_test(test_strings_escaped),
    };
    return cmocka_run_group_tests_name(
        "db/outbox_db: the event payload (docs/API.md §8.2)", tests, NULL,
        NULL);
}
