/*
 * tests/integration/test_inputs.c — docs/API.md §2.3 and §3.3, the inputs'
 * fine points, through nginx:
 *   - a path that is not valid UTF-8 (GET /%FF) is the 404 envelope naming
 *     the path %-escaped, never a 500; the app log line and the metrics
 *     count it as a 404 too;
 *   - a NUL character in an object key is 422 "… must not contain NUL
 *     characters", on the body and in a nested object, and nothing is
 *     written;
 *   - an integer outside the signed 64-bit range (and a real beyond a
 *     double) is 422 naming its field, not 400; a body that is broken
 *     elsewhere as well stays 400.
 * The key rules of the same section are in test_authz.c (a consumer reads
 * any key of its own) and test_consumers.c (the system key's shortest
 * lifetime, the guarded lazy write-back).
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct itest_consumer g_c;

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_c, NULL);
}

/* The value of one series in GET /metrics, 0 when absent. */
static double
metric(const char *series)
{
    struct itest_resp *r = itest_request("GET", "/metrics", NULL, NULL, NULL);
    double v = 0;
    size_t n = strlen(series);
    if (r->status != 200)
        itest_failf("GET /metrics answered %ld", r->status);
    for (const char *line = r->body; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            v = strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    itest_resp_free(r);
    return v;
}

#define NOT_FOUND_SERIES                                                       \
    "fintegrate_http_requests_total{route=\"unmatched\",method=\"GET\","       \
    "status=\"404\"}"
#define ERROR_SERIES                                                           \
    "fintegrate_http_requests_total{route=\"unmatched\",method=\"GET\","       \
    "status=\"500\"}"

static void
path_not_utf8_is_404(void **state)
{
    (void)state;
    char rid[96], hdr[128];
    itest_unique(rid, sizeof rid, "utf8path");
    snprintf(hdr, sizeof hdr, "X-Request-ID: %s", rid);
    double before404 = metric(NOT_FOUND_SERIES);
    double before500 = metric(ERROR_SERIES);

    struct itest_resp *r = itest_request("GET", "/%FF", g_c.key, NULL, hdr);
    itest_assert_error(r, 404, "No endpoint /%FF");
    itest_resp_free(r);
    /* bytes that are UTF-8 stay as they are, the rest is %-escaped */
    r = itest_request("POST", "/caf%C3%A9/%C3%28%ED%A0%80", g_c.key, "{}",
                      NULL);
    itest_assert_error(r, 404, "No endpoint /caf\xC3\xA9/%C3(%ED%A0%80");
    itest_resp_free(r);

    if (metric(NOT_FOUND_SERIES) - before404 != 1)
        itest_failf("%s grew by %g, want 1", NOT_FOUND_SERIES,
                    metric(NOT_FOUND_SERIES) - before404);
    if (metric(ERROR_SERIES) != before500)
        itest_failf("%s grew", ERROR_SERIES);

    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    if (run == NULL)
        return;
    char app_log[4096];
    snprintf(app_log, sizeof app_log, "%s/logs/app.log", run);
    int n = 0;
    double deadline = itest_now() + 2.0;
    while ((n = itest_count_lines(app_log, rid, "status=404", NULL)) == 0 &&
           itest_now() < deadline)
        itest_sleep_ms(20);
    itest_expect(NULL, n == 1,
                 "the app log must show request %s as a 404 (%d lines)", rid,
                 n);
    itest_expect(NULL, itest_count_lines(app_log, rid, NULL, NULL) == 1,
                 "one log line for request %s", rid);
}

static void
nul_in_an_object_key_is_422(void **state)
{
    (void)state;
    char name[96], body[256];
    itest_unique(name, sizeof name, "nulkey");
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"a\\u0000b\":1}", name);
    struct itest_resp *r =
        itest_request("POST", "/customer/data", g_c.key, body, NULL);
    itest_assert_error(r, 422,
                       "Field names must not contain NUL characters (got "
                       "\"a\\u0000b\")");
    itest_resp_free(r);

    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"tags\":{\"k\\u0000\":\"v\"}}", name);
    r = itest_request("POST", "/customer/data", g_c.key, body, NULL);
    itest_assert_error(r, 422,
                       "tags keys must not contain NUL characters (got "
                       "\"k\\u0000\")");
    itest_resp_free(r);
    itest_expect(NULL, itest_count_named(name) == 0,
                 "a refused body created a customer");

    /* a NUL in a key and JSON broken elsewhere: 400, as before */
    r = itest_request("POST", "/customer/data", g_c.key, "{\"a\\u0000\":1,}",
                      NULL);
    itest_assert_error_contains(r, 400, "not valid JSON");
    itest_resp_free(r);
}

static void
number_out_of_range_is_422_naming_the_field(void **state)
{
    (void)state;
    char body[256];
    snprintf(body, sizeof body,
             "{\"consumer_id\":\"%s\",\"expires_in_days\":"
             "99999999999999999999}",
             g_c.id);
    struct itest_resp *r = itest_request("POST", "/consumer/api-key",
                                         itest_admin_key(), body, NULL);
    itest_assert_error(r, 422,
                       "expires_in_days is out of range (got "
                       "99999999999999999999): an integer must be between "
                       "-9223372036854775808 and 9223372036854775807");
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM consumer_api_keys "
                                "WHERE consumer_id = $1",
                                g_c.id) == 1,
                 "a refused body issued a key");

    r = itest_request("POST", "/events/resend", itest_admin_key(),
                      "{\"period_in_days\":-9223372036854775809,"
                      "\"max_try_count\":1e999}",
                      NULL);
    itest_assert_error(r, 422,
                       "period_in_days is out of range (got "
                       "-9223372036854775809): an integer must be between "
                       "-9223372036854775808 and 9223372036854775807; "
                       "max_try_count is out of range (got 1e999): a number "
                       "must be below 1.8e308 in magnitude");
    itest_resp_free(r);

    /* at the limit it is an ordinary value, checked by the field's rule */
    r = itest_request("POST", "/events/resend", itest_admin_key(),
                      "{\"period_in_days\":9223372036854775807}", NULL);
    itest_assert_error(r, 422,
                       "period_in_days must be an integer between 1 and 3650 "
                       "(got 9223372036854775807)");
    itest_resp_free(r);
    /* and a body broken elsewhere stays 400 */
    r = itest_request("POST", "/events/resend", itest_admin_key(),
                      "{\"period_in_days\":99999999999999999999", NULL);
    itest_assert_error_contains(r, 400, "not valid JSON");
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_not_utf8_is_404),
        cmocka_unit_test(nul_in_an_object_key_is_422),
        cmocka_unit_test(number_out_of_range_is_422_naming_the_field),
    };
    return itest_exit(cmocka_run_group_tests_name("inputs", tests, setup,
                                                  itest_group_teardown));
}
