/*
 * tests/unit/test_consumer_event.c — the consumer program's pure parts
 * besides ordering and state: consumer/event.h (what is poison, what
 * identifies an event, the one-line description, raw lines),
 * confirm_classify (which answers are transient) and consumer/config.h
 * (flags over variables over defaults, the key never in a message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "consumer/config.h"
#include "consumer/confirm.h"
#include "consumer/event.h"

#define EID "5e789704-3704-44aa-a0b6-b2c5a2762f71"
#define CID "39e1fdb9-419b-4b55-b3f4-1e958c221aa0"

static const char good[] =
    "{\"schema_version\":\"1.0\",\"event_id\":\"" EID "\","
    "\"event_type\":\"customer_creation\",\"sequence\":1,"
    "\"consumer_id\":\"00000000-0000-0000-0000-000000000002\","
    "\"customer_id\":\"" CID "\","
    "\"data\":{\"customer_id\":\"" CID "\",\"name\":\"John Richard Doe\","
    "\"status\":\"ACTIVE\"},\"metadata\":{}}";

/* Parses body; returns the rc and leaves the reason in *reason (owned). */
static int
parse(const char *body, const char *message_id, struct event *ev, char **reason)
{
    struct strbuf sb = STRBUF_INIT;
    int rc = event_parse(ev, body, strlen(body), message_id, &sb);
    *reason = sb_steal(&sb);
    return rc;
}

static void
expect_poison(const char *body, const char *message_id, const char *needle,
              const char *expect_id)
{
    struct event ev;
    char *reason;
    assert_int_equal(parse(body, message_id, &ev, &reason), -1);
    if (strstr(reason, needle) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\" (body %s)", reason, needle, body);
    assert_string_equal(ev.event_id, expect_id);
    free(reason);
    event_free(&ev);
}

static void
test_good_event(void **state)
{
    (void)state;
    struct event ev;
    char *reason;
    assert_int_equal(parse(good, NULL, &ev, &reason), 0);
    assert_string_equal(ev.event_id, EID);
    assert_string_equal(ev.customer_key, CID);
    assert_string_equal(ev.event_type, "customer_creation");
    assert_int_equal(ev.sequence, 1);

    struct strbuf line = STRBUF_INIT;
    event_describe(&ev, &line);
    assert_string_equal(sb_str(&line),
                        "customer_creation customer=" CID " seq=1 event=" EID
                        " name=\"John Richard Doe\" status=ACTIVE");
    sb_free(&line);
    event_free(&ev);
    event_free(&ev); /* safe twice */
    free(reason);
}

static void
test_minor_versions_and_extra_fields_are_fine(void **state)
{
    (void)state;
    struct event ev;
    char *reason;
    const char *body =
        "{\"schema_version\":\"1.7\",\"event_id\":\"" EID "\","
        "\"event_type\":\"consumer_creation\",\"sequence\":12,"
        "\"customer_id\":null,\"new_field\":[1,2],"
        "\"data\":{\"consumer_name\":\"bank\",\"status\":\"ACTIVE\"}}";
    assert_int_equal(parse(body, NULL, &ev, &reason), 0);
    assert_string_equal(ev.customer_key, ""); /* the system sequence */
    struct strbuf line = STRBUF_INIT;
    event_describe(&ev, &line);
    assert_string_equal(sb_str(&line),
                        "consumer_creation customer=- seq=12 event=" EID
                        " consumer_name=bank status=ACTIVE");
    sb_free(&line);
    event_free(&ev);
    free(reason);
}

static void
test_upper_case_ids_are_canonicalised(void **state)
{
    (void)state;
    struct event ev;
    char *reason;
    const char *body =
        "{\"schema_version\":\"1.0\","
        "\"event_id\":\"5E789704-3704-44AA-A0B6-B2C5A2762F71\","
        "\"event_type\":\"customer_deletion\",\"sequence\":3,"
        "\"customer_id\":\"39E1FDB9-419B-4B55-B3F4-1E958C221AA0\"}";
    assert_int_equal(parse(body, NULL, &ev, &reason), 0);
    assert_string_equal(ev.event_id, EID);
    assert_string_equal(ev.customer_key, CID);
    event_free(&ev);
    free(reason);
}

static void
test_poison(void **state)
{
    (void)state;
    /* not JSON: identified by the AMQP message_id only */
    expect_poison("this is not JSON {", EID, "not valid JSON", EID);
    expect_poison("this is not JSON {", NULL, "not valid JSON", "");
    expect_poison("this is not JSON {", "not-a-uuid", "not valid JSON", "");
    expect_poison("", NULL, "not valid JSON", "");
    expect_poison("[1,2]", EID, "not a JSON object", EID);
    expect_poison("{\"a\":1,\"a\":2}", NULL, "not valid JSON", "");
    /* no usable event_id */
    expect_poison("{\"schema_version\":\"1.0\"}", NULL, "event_id is missing",
                  "");
    expect_poison("{\"schema_version\":\"1.0\",\"event_id\":42}", NULL,
                  "event_id must be a UUID (got 42)", "");
    /* the major version */
    expect_poison("{\"event_id\":\"" EID "\"}", NULL,
                  "schema_version is missing", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"2.0\"}", NULL,
                  "unknown schema_version \"2.0\"", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"10\"}", NULL,
                  "unknown schema_version", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":1.0}", NULL,
                  "unknown schema_version", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"1.x\"}", NULL,
                  "unknown schema_version", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"v1\"}", NULL,
                  "unknown schema_version", EID);
    /* what ordering needs */
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"1.0\","
                  "\"sequence\":1}",
                  NULL, "event_type must be a non-empty string", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"1.0\","
                  "\"event_type\":\"x\",\"sequence\":\"1\"}",
                  NULL, "sequence must be an integer of at least 1", EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"1.0\","
                  "\"event_type\":\"x\",\"sequence\":0}",
                  NULL, "sequence must be an integer of at least 1 (got 0)",
                  EID);
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"1.0\","
                  "\"event_type\":\"x\",\"sequence\":2,"
                  "\"customer_id\":\"bob\"}",
                  NULL, "customer_id must be a UUID or null", EID);
}

static void
test_body_id_wins_over_message_id(void **state)
{
    (void)state;
    /* the body's event_id identifies the event even when the property
     * says otherwise */
    expect_poison("{\"event_id\":\"" EID "\",\"schema_version\":\"9.0\"}",
                  "00000000-0000-4000-8000-000000000009",
                  "unknown schema_version", EID);
}

static void
test_reason_quotes_are_short(void **state)
{
    (void)state;
    char body[400];
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(body, sizeof body, "{\"event_id\":\"%s\"}", big);
    struct event ev;
    char *reason;
    assert_int_equal(parse(body, NULL, &ev, &reason), -1);
    assert_true(strlen(reason) < 100);
    assert_non_null(strstr(reason, "..."));
    free(reason);
    event_free(&ev);
}

static void
test_describe_per_type(void **state)
{
    (void)state;
    static const struct {
        const char *type, *data, *expect;
    } cases[] = {
        {"customer_status_change",
         "{\"customer_id\":\"" CID "\",\"previous_status\":\"ACTIVE\","
         "\"status\":\"INACTIVE\"}",
         " previous_status=ACTIVE status=INACTIVE"},
        {"customer_tag_change",
         "{\"customer_id\":\"" CID "\",\"operation\":\"tags_added\","
         "\"tags\":{\"tier\":\"gold\"}}",
         " operation=tags_added tags={\"tier\":\"gold\"}"},
        /* a name with a newline stays on one line */
        {"customer_deletion",
         "{\"customer_id\":\"" CID "\",\"name\":\"Ada\\nLovelace\","
         "\"status\":\"ACTIVE\"}",
         " name=\"Ada\\nLovelace\" status=ACTIVE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"schema_version\":\"1.0\",\"event_id\":\"" EID "\","
                 "\"event_type\":\"%s\",\"sequence\":2,"
                 "\"customer_id\":\"" CID "\",\"data\":%s}",
                 cases[i].type, cases[i].data);
        struct event ev;
        char *reason;
        assert_int_equal(parse(body, NULL, &ev, &reason), 0);
        struct strbuf line = STRBUF_INIT;
        event_describe(&ev, &line);
        const char *tail = strstr(sb_str(&line), "event=" EID);
        assert_non_null(tail);
        assert_string_equal(tail + strlen("event=" EID), cases[i].expect);
        assert_null(strchr(sb_str(&line), '\n'));
        sb_free(&line);
        event_free(&ev);
        free(reason);
    }
}

static void
test_raw_line(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    /* JSON: newlines between tokens become spaces */
    event_raw_line("{\"a\":\n1}", 8, 1000, &sb);
    assert_string_equal(sb_str(&sb), "{\"a\": 1}");
    sb_reset(&sb);
    /* not JSON: a JSON string literal */
    event_raw_line("bad\nline", 8, 1000, &sb);
    assert_string_equal(sb_str(&sb), "\"bad\\nline\"");
    sb_reset(&sb);
    /* bytes that are not UTF-8 */
    event_raw_line("a\xff"
                   "b",
                   3, 1000, &sb);
    assert_string_equal(sb_str(&sb), "\"a\xEF\xBF\xBD"
                                     "b\"");
    sb_reset(&sb);
    /* cut, on a character boundary */
    event_raw_line("h\xC3\xA9llo", 6, 2, &sb);
    assert_string_equal(sb_str(&sb), "\"h\"...");
    sb_free(&sb);
}

/* Whether text holds a control character: C0, DEL, or C1 (U+0080..U+009F,
 * UTF-8 C2 80..C2 9F). */
static bool
has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return true;
        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9F)
            return true;
    }
    return false;
}

/* docs/API.md §9.3: every value from a message is printed escaped — the
 * event type, data's names and values, a rejection's reason, raw lines. */
static void
test_no_control_character_reaches_the_output(void **state)
{
    (void)state;
    static const char body[] =
        "{\"schema_version\":\"1.0\",\"event_id\":\"" EID "\","
        "\"event_type\":\"x\\n2025 processed\\u001b[31m\\u007f\","
        "\"sequence\":3,\"customer_id\":\"" CID "\","
        "\"data\":{\"na\\tme\":\"a\\u0085b\u00a0\",\"st\":\"\x7f\xc2\x9b\","
        "\"ok\":\"caf\xc3\xa9\"}}";
    struct event ev;
    char *reason;
    assert_int_equal(parse(body, NULL, &ev, &reason), 0);
    struct strbuf line = STRBUF_INIT;
    event_describe(&ev, &line);
    assert_false(has_control(sb_str(&line), line.len));
    assert_string_equal(sb_str(&line),
                        "\"x\\n2025 processed\\u001B[31m\\u007F\" customer=" CID
                        " seq=3 event=" EID " \"na\\tme\"=\"a\\u0085b\xc2\xa0\""
                        " st=\"\\u007F\\u009B\" ok=\"caf\xc3\xa9\"");
    sb_free(&line);
    event_free(&ev);
    free(reason);

    /* a poison message's reason quotes its value escaped too */
    static const char poison[] =
        "{\"schema_version\":\"\x7f\xc2\x85\",\"event_id\":\"" EID "\"}";
    assert_int_equal(parse(poison, NULL, &ev, &reason), -1);
    assert_false(has_control(reason, strlen(reason)));
    assert_non_null(strstr(reason, "\"\\u007F\\u0085\""));
    struct strbuf q = STRBUF_INIT;
    event_quote(reason, strlen(reason), &q);
    assert_false(has_control(sb_str(&q), q.len));
    sb_reset(&q);
    event_quote("a\tb\x01\xff\x7f", 6, &q);
    assert_string_equal(sb_str(&q), "\"a\\tb\\u0001\xEF\xBF\xBD\\u007F\"");
    sb_free(&q);
    event_free(&ev);
    free(reason);

    /* raw lines: tabs between tokens, DEL and C1 inside strings */
    struct strbuf raw = STRBUF_INIT;
    static const char json[] = "{\t\"a\":\"\x7f\xc2\x80\"\r\n}";
    event_raw_line(json, sizeof json - 1, 1000, &raw);
    assert_string_equal(sb_str(&raw), "{ \"a\":\"\\u007F\\u0080\"  }");
    sb_reset(&raw);
    /* cut before a C1 character, not through it */
    event_raw_line(json, sizeof json - 1, 9, &raw);
    assert_false(has_control(sb_str(&raw), raw.len));
    assert_string_equal(sb_str(&raw), "{ \"a\":\"\\u007F...");
    sb_free(&raw);
}

static void
test_confirm_classify(void **state)
{
    (void)state;
    assert_int_equal(confirm_classify(false, 0), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 200), CONFIRM_OK);
    assert_int_equal(confirm_classify(true, 201), CONFIRM_OK);
    assert_int_equal(confirm_classify(true, 401), CONFIRM_AUTH);
    assert_int_equal(confirm_classify(true, 403), CONFIRM_AUTH);
    assert_int_equal(confirm_classify(true, 408), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 429), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 500), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 502), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 503), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 504), CONFIRM_RETRY);
    assert_int_equal(confirm_classify(true, 400), CONFIRM_REFUSED);
    assert_int_equal(confirm_classify(true, 404), CONFIRM_REFUSED);
    assert_int_equal(confirm_classify(true, 422), CONFIRM_REFUSED);
    assert_string_equal(confirm_outcome_name(CONFIRM_AUTH), "auth");
}

/* ---------------------------------------------------------------- config */

static const char *const *g_env;

static const char *
fake_env(const char *name)
{
    for (const char *const *e = g_env; e && *e; e += 2)
        if (strcmp(e[0], name) == 0)
            return e[1];
    return NULL;
}

#define KEY "fk_0123456789abcdefghijABCDEFGHIJ0123456789xyz"

static void
test_config_precedence(void **state)
{
    (void)state;
    static const char *const env[] = {"FINTEGRATE_CONSUMER_NAME",
                                      "bank001",
                                      "FINTEGRATE_API_KEY",
                                      KEY,
                                      "FINTEGRATE_CONSUMER_PREFETCH",
                                      "20",
                                      "FINTEGRATE_BASE_URL",
                                      "http://127.0.0.1:18080/",
                                      "HOME",
                                      "/home/bank",
                                      NULL};
    g_env = env;
    char *argv[] = {"fintegrate-consumer",  "--prefetch", "7",
                    "--gap-timeout-ms=250", "--raw",      NULL};
    struct consumer_config cfg;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(consumer_config_load(&cfg, 5, argv, fake_env, &err),
                     CONSUMER_CONFIG_RUN);
    assert_string_equal(cfg.name, "bank001");
    assert_string_equal(cfg.queue, "customer_notification_bank001");
    assert_string_equal(cfg.api_key, KEY);
    assert_int_equal(cfg.prefetch, 7); /* the flag wins */
    assert_int_equal(cfg.gap_timeout_ms, 250);
    assert_int_equal(cfg.raw, 1);
    assert_int_equal(cfg.retain_events, 100000);
    assert_string_equal(cfg.base_url, "http://127.0.0.1:18080/");
    assert_string_equal(cfg.amqp_url, "amqp://guest:guest@127.0.0.1:5672");
    assert_string_equal(cfg.state_dir,
                        "/home/bank/.local/state/fintegrate-consumer/bank001");
    consumer_config_free(&cfg);
    consumer_config_free(&cfg); /* safe twice */
    sb_free(&err);
}

static void
expect_config_error(const char *const *env, int argc, char **argv,
                    const char *needle)
{
    g_env = env;
    struct consumer_config cfg;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(consumer_config_load(&cfg, argc, argv, fake_env, &err),
                     -1);
    if (strstr(sb_str(&err), needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", sb_str(&err), needle);
    /* the key never appears in an error */
    assert_null(strstr(sb_str(&err), "0123456789abcdefghij"));
    consumer_config_free(&cfg);
    sb_free(&err);
}

static void
test_config_errors(void **state)
{
    (void)state;
    static const char *const no_name[] = {"FINTEGRATE_API_KEY", KEY, NULL};
    static const char *const no_key[] = {"FINTEGRATE_CONSUMER_NAME", "b", NULL};
    static const char *const bad_key[] = {
        "FINTEGRATE_CONSUMER_NAME", "b", "FINTEGRATE_API_KEY",
        "fk_0123456789abcdefghij\r\nX-Evil: 1", NULL};
    static const char *const ok[] = {"FINTEGRATE_CONSUMER_NAME",
                                     "b",
                                     "FINTEGRATE_API_KEY",
                                     KEY,
                                     "HOME",
                                     "/root",
                                     NULL};
    static const char *const bad_env[] = {"FINTEGRATE_CONSUMER_NAME",
                                          "b",
                                          "FINTEGRATE_API_KEY",
                                          KEY,
                                          "FINTEGRATE_CONSUMER_GAP_TIMEOUT_MS",
                                          "soon",
                                          NULL};
    char *a0[] = {"c", NULL};
    char *a_bad_flag[] = {"c", "--nope", NULL};
    char *a_no_value[] = {"c", "--prefetch", NULL};
    char *a_bad_name[] = {"c", "--name", "Bank", NULL};
    char *a_bad_url[] = {"c", "--base-url", "ftp://x", NULL};
    char *a_bad_file[] = {"c", "--api-key-file", "/nonexistent/key", NULL};

    expect_config_error(no_name, 1, a0, "FINTEGRATE_CONSUMER_NAME");
    expect_config_error(no_key, 1, a0, "FINTEGRATE_API_KEY");
    expect_config_error(bad_key, 1, a0, "visible ASCII");
    expect_config_error(ok, 2, a_bad_flag, "unknown option \"--nope\"");
    expect_config_error(ok, 2, a_no_value, "--prefetch needs a value");
    expect_config_error(ok, 3, a_bad_name, "--name must match");
    expect_config_error(ok, 3, a_bad_url, "--base-url must be an http");
    expect_config_error(ok, 3, a_bad_file, "--api-key-file: cannot read");
    expect_config_error(bad_env, 1, a0,
                        "FINTEGRATE_CONSUMER_GAP_TIMEOUT_MS must be an "
                        "integer between 0 and 3600000 (got \"soon\")");
}

static void
test_config_help_and_check(void **state)
{
    (void)state;
    static const char *const ok[] = {"FINTEGRATE_CONSUMER_NAME",
                                     "b",
                                     "FINTEGRATE_API_KEY",
                                     KEY,
                                     "FINTEGRATE_CONSUMER_STATE_DIR",
                                     "/s",
                                     NULL};
    g_env = ok;
    char *help[] = {"c", "--help", NULL};
    char *check[] = {"c", "--check-config", NULL};
    struct consumer_config cfg;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(consumer_config_load(&cfg, 2, help, fake_env, &err),
                     CONSUMER_CONFIG_HELP);
    consumer_config_free(&cfg);
    assert_int_equal(consumer_config_load(&cfg, 2, check, fake_env, &err),
                     CONSUMER_CONFIG_CHECK);
    assert_string_equal(cfg.state_dir, "/s");
    consumer_config_free(&cfg);
    sb_free(&err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_event),
        cmocka_unit_test(test_minor_versions_and_extra_fields_are_fine),
        cmocka_unit_test(test_upper_case_ids_are_canonicalised),
        cmocka_unit_test(test_poison),
        cmocka_unit_test(test_body_id_wins_over_message_id),
        cmocka_unit_test(test_reason_quotes_are_short),
        cmocka_unit_test(test_describe_per_type),
        cmocka_unit_test(test_raw_line),
        cmocka_unit_test(test_no_control_character_reaches_the_output),
        cmocka_unit_test(test_confirm_classify),
        cmocka_unit_test(test_config_precedence),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_help_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
