/*
 * tests/integration/test_metrics.c — GET /metrics through nginx (issue 7).
 *
 * The exposition is read as text and parsed into name{labels} → value, so
 * every check compares two scrapes: before and after the requests the test
 * itself makes.  Covered: every metric family of docs/API.md §5.8 with
 * HELP and TYPE from the first scrape; request counters by route, method
 * and status summed over all workers; the duration histogram; events
 * published and delivery confirms with the lag histogram; the outbox
 * gauges equal to the database's counts; the breaker state; a worker
 * killed with SIGKILL loses none of the counts it made and is counted as a
 * restart.
 */
#include "itest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One scrape: the body, searched line by line. */
struct scrape {
    struct itest_resp *resp;
};

static void
scrape(struct scrape *s)
{
    s->resp = itest_request("GET", "/metrics", NULL, NULL, NULL);
    if (s->resp->status != 200)
        itest_failf("GET /metrics answered %ld", s->resp->status);
    const char *ct = itest_header(s->resp, "Content-Type");
    if (ct == NULL || strncmp(ct, "text/plain", 10) != 0)
        itest_failf("GET /metrics Content-Type %s, want text/plain",
                    ct ? ct : "(none)");
}

static void
scrape_free(struct scrape *s)
{
    itest_resp_free(s->resp);
    s->resp = NULL;
}

/* The value of the sample whose name-and-labels text is exactly `series`
 * (e.g. `fintegrate_events_published_total` or
 * `fintegrate_publish_failures_total{reason="nack"}`); -1 when absent. */
static double
sample(const struct scrape *s, const char *series)
{
    size_t n = strlen(series);
    const char *p = s->resp->body;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

static bool
has_line(const struct scrape *s, const char *line)
{
    size_t n = strlen(line);
    const char *p = s->resp->body;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return false;
}

static double
sample0(const struct scrape *s, const char *series)
{
    double v = sample(s, series);
    return v < 0 ? 0 : v;
}

static void
families_present(void **state)
{
    (void)state;
    static const struct {
        const char *name, *type;
    } families[] = {
        {"fintegrate_http_requests_total", "counter"},
        {"fintegrate_http_request_duration_seconds", "histogram"},
        {"fintegrate_events_published_total", "counter"},
        {"fintegrate_publish_failures_total", "counter"},
        {"fintegrate_delivery_confirms_total", "counter"},
        {"fintegrate_circuit_breaker_state", "gauge"},
        {"fintegrate_outbox_pending", "gauge"},
        {"fintegrate_outbox_failed", "gauge"},
        {"fintegrate_events_undelivered", "gauge"},
        {"fintegrate_delivery_lag_seconds", "histogram"},
        {"fintegrate_worker_restarts_total", "counter"},
    };
    struct scrape s;
    scrape(&s);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char want[160];
        snprintf(want, sizeof want, "# TYPE %s %s", families[i].name,
                 families[i].type);
        if (!has_line(&s, want))
            itest_failf("missing \"%s\"", want);
        snprintf(want, sizeof want, "# HELP %s ", families[i].name);
        if (strstr(s.resp->body, want) == NULL)
            itest_failf("missing HELP of %s", families[i].name);
    }
    /* the fixed label sets are there from the start, at zero or more */
    static const char *const reasons[] = {"timeout", "nack", "returned",
                                          "connection", "circuit_open"};
    for (size_t i = 0; i < 5; i++) {
        char series[96];
        snprintf(series, sizeof series,
                 "fintegrate_publish_failures_total{reason=\"%s\"}",
                 reasons[i]);
        if (sample(&s, series) < 0)
            itest_failf("missing %s", series);
    }
    static const char *const statuses[] = {"received", "processed", "failed"};
    for (size_t i = 0; i < 3; i++) {
        char series[96];
        snprintf(series, sizeof series,
                 "fintegrate_delivery_confirms_total{status=\"%s\"}",
                 statuses[i]);
        if (sample(&s, series) < 0)
            itest_failf("missing %s", series);
    }
    if (sample(&s, "fintegrate_circuit_breaker_state") != 0)
        itest_failf("breaker state %g with the broker up, want 0",
                    sample(&s, "fintegrate_circuit_breaker_state"));
    scrape_free(&s);
}

#define POSTS_SERIES                                                           \
    "fintegrate_http_requests_total{route=\"/customer/data\",method=\"POST\"," \
    "status=\"201\"}"
#define NOT_FOUND_SERIES                                                       \
    "fintegrate_http_requests_total{route=\"unmatched\",method=\"GET\","       \
    "status=\"404\"}"
#define DURATION_COUNT                                                         \
    "fintegrate_http_request_duration_seconds_count{route=\"/customer/data\"}"
#define DURATION_INF                                                           \
    "fintegrate_http_request_duration_seconds_bucket{route=\"/customer/"       \
    "data\",le=\"+Inf\"}"

static void
requests_are_counted_across_workers(void **state)
{
    (void)state;
    struct scrape before, after;
    const int n = 40; /* spread over every worker */
    scrape(&before);
    for (int i = 0; i < n; i++) {
        char id[37];
        itest_create_customer(itest_admin_key(), "metrics", id);
    }
    struct itest_resp *r =
        itest_request("GET", "/no-such-path", itest_admin_key(), NULL, NULL);
    itest_resp_free(r);
    scrape(&after);

    double d = sample0(&after, POSTS_SERIES) - sample0(&before, POSTS_SERIES);
    if (d != n)
        itest_failf("%s grew by %g, want %d", POSTS_SERIES, d, n);
    d = sample0(&after, NOT_FOUND_SERIES) - sample0(&before, NOT_FOUND_SERIES);
    if (d != 1)
        itest_failf("%s grew by %g, want 1", NOT_FOUND_SERIES, d);
    d = sample0(&after, DURATION_COUNT) - sample0(&before, DURATION_COUNT);
    if (d < n)
        itest_failf("%s grew by %g, want >= %d", DURATION_COUNT, d, n);
    if (sample(&after, DURATION_INF) != sample(&after, DURATION_COUNT))
        itest_failf("+Inf bucket %g != count %g", sample(&after, DURATION_INF),
                    sample(&after, DURATION_COUNT));
    d = sample0(&after, "fintegrate_events_published_total") -
        sample0(&before, "fintegrate_events_published_total");
    if (d < n)
        itest_failf("events published grew by %g, want >= %d (broker up)", d,
                    n);
    scrape_free(&before);
    scrape_free(&after);
}

static void
outbox_gauges_match_the_database(void **state)
{
    (void)state;
    struct scrape s;
    scrape(&s);
    long pending = itest_sql_long0(
        "SELECT count(*) FROM customer_events WHERE publish_status = "
        "'pending'");
    long failed = itest_sql_long0(
        "SELECT count(*) FROM customer_events WHERE publish_status = "
        "'failed'");
    long undelivered = itest_sql_long0(
        "SELECT count(*) FROM customer_events WHERE publish_status = "
        "'published' AND deliver_status = 'pending'");
    /* Nothing else runs while this binary does, but an inline publish may
     * land between the scrape and the query: allow that one direction. */
    if (sample(&s, "fintegrate_outbox_pending") < (double)pending)
        itest_failf("outbox_pending %g, database %ld",
                    sample(&s, "fintegrate_outbox_pending"), pending);
    if (sample(&s, "fintegrate_outbox_failed") != (double)failed)
        itest_failf("outbox_failed %g, database %ld",
                    sample(&s, "fintegrate_outbox_failed"), failed);
    if (sample(&s, "fintegrate_events_undelivered") > (double)undelivered)
        itest_failf("events_undelivered %g, database %ld",
                    sample(&s, "fintegrate_events_undelivered"), undelivered);
    scrape_free(&s);
}

static void
confirms_and_lag_are_counted(void **state)
{
    (void)state;
    struct scrape before, after;
    char id[37], body[160];
    itest_create_customer(itest_admin_key(), "metrics-lag", id);
    char *event_id = itest_sql_value(
        "SELECT event_id::text FROM customer_events WHERE customer_id = $1",
        id);
    scrape(&before);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"status\":\"processed\"}", event_id);
    for (int i = 0; i < 2; i++) { /* the second is a repeat: no new lag */
        struct itest_resp *r = itest_request("POST", "/events/confirm-delivery",
                                             itest_admin_key(), body, NULL);
        itest_assert_envelope(r, 200);
        itest_resp_free(r);
    }
    scrape(&after);
    const char *processed =
        "fintegrate_delivery_confirms_total{status=\"processed\"}";
    double d = sample0(&after, processed) - sample0(&before, processed);
    if (d != 2)
        itest_failf("%s grew by %g, want 2", processed, d);
    d = sample0(&after, "fintegrate_delivery_lag_seconds_count") -
        sample0(&before, "fintegrate_delivery_lag_seconds_count");
    if (d != 1)
        itest_failf("lag observed %g times, want 1 (first delivery only)", d);
    free(event_id);
    scrape_free(&before);
    scrape_free(&after);
}

static void
a_killed_worker_loses_no_counts(void **state)
{
    (void)state;
    pid_t master = itest_master_pid();
    pid_t workers[64];
    int n = itest_children(master, workers, 64);
    if (n < 1)
        itest_failf("no workers under master %d", (int)master);

    struct scrape before, after;
    for (int i = 0; i < 20; i++) {
        char id[37];
        itest_create_customer(itest_admin_key(), "metrics-kill", id);
    }
    scrape(&before);
    double rb = sample0(&before, "fintegrate_worker_restarts_total");
    kill(workers[0], SIGKILL);
    /* the master reaps and replaces it; its counts were in shared memory */
    double until = itest_now() + 5, ra;
    for (;;) {
        scrape(&after);
        ra = sample0(&after, "fintegrate_worker_restarts_total");
        if (ra >= rb + 1)
            break;
        scrape_free(&after);
        if (itest_now() > until)
            itest_failf("worker_restarts_total still %g 5 s after a SIGKILL",
                        ra);
        usleep(50 * 1000);
    }
    double b = sample0(&before, POSTS_SERIES);
    double a = sample0(&after, POSTS_SERIES);
    if (a < b)
        itest_failf("%s fell from %g to %g after a SIGKILL", POSTS_SERIES, b,
                    a);
    scrape_free(&before);
    scrape_free(&after);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(families_present),
        cmocka_unit_test(requests_are_counted_across_workers),
        cmocka_unit_test(outbox_gauges_match_the_database),
        cmocka_unit_test(confirms_and_lag_are_counted),
        cmocka_unit_test(a_killed_worker_loses_no_counts),
    };
    return cmocka_run_group_tests_name("metrics", tests, itest_group_setup,
                                       itest_group_teardown);
}
