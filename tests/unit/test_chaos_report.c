/*
 * tests/unit/test_chaos_report.c — tests/chaos/report.h and reqlog.h: the
 * request log line, the windows file, percentiles, the per-window table
 * and the "5xx outside database windows" judgement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "reqlog.h"
#include "report.h"

/* ---- reqlog ------------------------------------------------------------ */

static void
test_reqlog_roundtrip(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct reqlog_attempt a = {
        .start_ms = 1700000000123,
        .end_ms = 1700000000150,
        .node = 1,
        .method = "PATCH",
        .kind = REQLOG_STATUS,
        .status = 502,
        .attempt = 2,
        .logical_id = 42,
        .customer_id = "93fe20dd-031b-41f9-a989-e67220d41dd9",
    };
    reqlog_format(&a, &sb);
    assert_string_equal(sb_str(&sb),
                        "1700000000123 1700000000150 1 PATCH status 502 2 42 "
                        "93fe20dd-031b-41f9-a989-e67220d41dd9\n");

    char *line = strdup(sb_str(&sb));
    struct reqlog_attempt b;
    assert_int_equal(reqlog_parse(line, &b), 1);
    assert_true(b.start_ms == a.start_ms);
    assert_true(b.end_ms == a.end_ms);
    assert_int_equal(b.node, 1);
    assert_string_equal(b.method, "PATCH");
    assert_int_equal(b.kind, REQLOG_STATUS);
    assert_int_equal(b.status, 502);
    assert_int_equal(b.attempt, 2);
    assert_true(b.logical_id == 42);
    assert_string_equal(b.customer_id, a.customer_id);
    free(line);

    /* an unknown customer is "-" */
    sb_reset(&sb);
    a.customer_id = NULL;
    a.kind = REQLOG_CREATE;
    a.method = "POST";
    a.status = 0;
    reqlog_format(&a, &sb);
    assert_string_equal(sb_str(&sb), "1700000000123 1700000000150 1 POST "
                                     "create 0 2 42 -\n");
    sb_free(&sb);
}

static void
test_reqlog_parse_rejects(void **state)
{
    (void)state;
    struct reqlog_attempt a;
    const char *bad[] = {
        "1 2 0 POST create 201 1 1",              /* 8 fields */
        "1 2 0 POST create 201 1 1 - extra",      /* 10 fields */
        "1 2 0 POST delete 201 1 1 -",            /* unknown kind */
        "1 2 0 POST create 2O1 1 1 -",            /* not a number */
        "1 2 0 POST create 201 0 1 -",            /* attempt 0 */
        "1 2 -1 POST create 201 1 1 -",           /* negative node */
        "1 2 0 POST create 1000 1 1 -",           /* status > 999 */
        "1700000000123 17000000 0 POST create 2", /* cut by a kill */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *line = strdup(bad[i]);
        assert_int_equal(reqlog_parse(line, &a), -1);
        free(line);
    }
    char blank[] = "   \n";
    char comment[] = "# start_ms end_ms\n";
    assert_int_equal(reqlog_parse(blank, &a), 0);
    assert_int_equal(reqlog_parse(comment, &a), 0);

    /* an end before the start (clock step) counts as 0 ms */
    char back[] = "100 90 0 POST create 201 1 1 -";
    assert_int_equal(reqlog_parse(back, &a), 1);
    assert_true(a.end_ms == 100);

    assert_true(reqlog_header_is_retry(
        "# fintegrate-chaos load rate=10 seconds=1 nodes=2 consumers=2 "
        "connections=64 retry=1\n"));
    assert_false(
        reqlog_header_is_retry("# fintegrate-chaos load rate=10 retry=0\n"));
    assert_false(reqlog_header_is_retry("# retry=1\n"));
}

/* ---- windows ----------------------------------------------------------- */

static void
test_window_parse(void **state)
{
    (void)state;
    struct report_window w;
    char ok[] = "kill-worker-1 1000 2000 0 1\n";
    assert_int_equal(report_parse_window(ok, &w), 1);
    assert_string_equal(w.name, "kill-worker-1");
    assert_true(w.start_ms == 1000 && w.end_ms == 2000);
    assert_false(w.db);
    assert_int_equal(w.killed, 1);
    report_window_free(&w);

    char db[] = "pg-restart 5 5 1 0";
    assert_int_equal(report_parse_window(db, &w), 1);
    assert_true(w.db);
    report_window_free(&w);

    const char *bad[] = {
        "x 2000 1000 0 0", /* end before start */
        "x 1 2 2 0",       /* db_window not 0/1 */
        "x 1 2 0 -1",      /* negative kills */
        "x 1 2 0",         /* 4 fields */
        "x 1 2 0 0 0",     /* 6 fields */
        "x a 2 0 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *line = strdup(bad[i]);
        assert_int_equal(report_parse_window(line, &w), -1);
        free(line);
    }
    char comment[] = "# name start end db killed";
    assert_int_equal(report_parse_window(comment, &w), 0);
}

static void
test_kill_parse(void **state)
{
    (void)state;
    struct report_kill k;
    char ok[] = "1 1000 1002 1\n";
    assert_int_equal(report_parse_kill(ok, &k), 1);
    assert_int_equal(k.node, 1);
    assert_true(k.before_ms == 1000 && k.after_ms == 1002);
    assert_int_equal(k.limit, 1);

    const char *bad[] = {
        "0 2000 1000 1", /* after before before */
        "-1 1 2 1",      /* negative node */
        "0 1 2 -1",      /* negative limit */
        "0 1 2",         /* 3 fields */
        "0 1 2 3 4",     /* 5 fields */
        "x 1 2 1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *line = strdup(bad[i]);
        assert_int_equal(report_parse_kill(line, &k), -1);
        free(line);
    }
    char comment[] = "# node before after";
    assert_int_equal(report_parse_kill(comment, &k), 0);
}

/* ---- percentiles ------------------------------------------------------- */

static void
test_percentile(void **state)
{
    (void)state;
    int64_t one[] = {7};
    assert_true(report_percentile(one, 0, 50) == -1);
    assert_true(report_percentile(one, 1, 50) == 7);
    assert_true(report_percentile(one, 1, 99) == 7);

    int64_t v[100];
    for (int i = 0; i < 100; i++)
        v[i] = i + 1; /* 1..100 */
    /* nearest rank: ceil(p/100 * n) */
    assert_true(report_percentile(v, 100, 50) == 50);
    assert_true(report_percentile(v, 100, 99) == 99);
    assert_true(report_percentile(v, 100, 100) == 100);
    assert_true(report_percentile(v, 100, 0.5) == 1);

    int64_t four[] = {10, 20, 30, 40};
    assert_true(report_percentile(four, 4, 50) == 20);
    assert_true(report_percentile(four, 4, 99) == 40);
}

/* ---- the table and the judgement ------------------------------------- */

static struct report_window wins[3];
/* a worker of node 0 killed at 1010-1011 ms, one of node 1 at 1500 */
static const struct report_kill kills[] = {{0, 1010, 1011, 1},
                                           {1, 1500, 1500, 1}};

static int
setup_windows(void **state)
{
    (void)state;
    char a[] = "kill-worker 1000 1999 0 1";
    char b[] = "pg-restart 3000 3999 1 0";
    char c[] = "sighup 5000 5999 0 0";
    if (report_parse_window(a, &wins[0]) != 1 ||
        report_parse_window(b, &wins[1]) != 1 ||
        report_parse_window(c, &wins[2]) != 1)
        return -1;
    return 0;
}

static int
teardown_windows(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++)
        report_window_free(&wins[i]);
    return 0;
}

static void
add_on(struct report *r, int node, int64_t start, int64_t lat, int status,
       int attempt, int64_t logical)
{
    struct reqlog_attempt a = {
        .node = node,
        .start_ms = start,
        .end_ms = start + lat,
        .method = "POST",
        .kind = REQLOG_CREATE,
        .status = status,
        .attempt = attempt,
        .logical_id = logical,
        .customer_id = "-",
    };
    assert_int_equal(report_add(r, &a), 0);
}

static void
add(struct report *r, int64_t start, int64_t lat, int status, int attempt,
    int64_t logical)
{
    add_on(r, 0, start, lat, status, attempt, logical);
}

static void
test_rows_and_judgement_ok(void **state)
{
    (void)state;
    struct report r;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(report_init(&r, wins, 3, kills, 2), 0);
    assert_int_equal(r.n_rows, 5);

    /* steady: 100 requests of 1..100 ms */
    for (int i = 0; i < 100; i++)
        add(&r, 100 + i, i + 1, 201, 1, i + 1);
    /* kill-worker: a 502 in flight on node 0 at its kill is allowed; the
     * window's bounds are inclusive; a failure counts where it happened
     * (sent before the window, failed in it), a success where it was
     * sent */
    add(&r, 1999, 30000, 201, 1, 200);
    add(&r, 990, 30, 502, 1, 201);
    /* pg-restart: 503s are fine */
    add(&r, 3000, 2, 503, 1, 300);
    add(&r, 3500, 2, 503, 1, 301);
    add(&r, 3990, 2, 0, 1, 302);
    /* sighup: clean */
    add(&r, 5000, 3, 200, 1, 400);
    add(&r, 5001, 3, 409, 1, 401);
    /* just after a window: steady again */
    add(&r, 6000, 1, 201, 1, 402);
    assert_int_equal(report_finish(&r), 0);

    const struct report_row *kill = &r.rows[0], *pg = &r.rows[1],
                            *hup = &r.rows[2], *steady = &r.rows[3],
                            *total = &r.rows[4];
    assert_string_equal(kill->name, "kill-worker");
    assert_int_equal(kill->requests, 2);
    assert_int_equal(kill->n2xx, 1);
    assert_int_equal(kill->n5xx, 1);
    assert_true(kill->max == 30000);
    assert_int_equal(pg->n5xx, 2);
    assert_int_equal(pg->other, 1);
    assert_int_equal(hup->n2xx, 1);
    assert_int_equal(hup->n4xx, 1);
    assert_string_equal(steady->name, "steady");
    assert_int_equal(steady->requests, 101);
    assert_true(steady->p50 == 50); /* 1,1,2,..,100: the 51st */
    assert_true(steady->p99 == 99);
    assert_true(steady->max == 100);
    assert_string_equal(total->name, "total");
    assert_int_equal(total->requests, 108);
    assert_int_equal(total->n5xx, 3);
    assert_int_equal(total->other, 1);
    assert_false(r.retry);

    assert_true(report_judge(&r, &out));
    assert_non_null(strstr(sb_str(&out), "5xx outside database windows: 1, "
                                         "in flight at a kill 1 → ok\n"));
    assert_non_null(strstr(sb_str(&out), "kill-worker: 1 failed"));
    assert_non_null(strstr(sb_str(&out), "in database windows (allowed): 3"));

    sb_reset(&out);
    report_render(&r, &out);
    assert_non_null(strstr(sb_str(&out), "window"));
    assert_non_null(strstr(sb_str(&out), "p99_ms"));
    assert_null(strstr(sb_str(&out), "no_effect")); /* not a --retry run */
    /* one header, 5 rows, a rule and the legend */
    size_t lines = 0;
    for (const char *p = sb_str(&out); *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 8);

    sb_free(&out);
    report_free(&r);
}

static void
test_judgement_fails(void **state)
{
    (void)state;
    struct report r;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(report_init(&r, wins, 3, kills, 2), 0);
    /* in the kill window: in flight on node 0 at its kill (allowed); sent
     * after it; in flight at that moment but on node 1, whose kill came
     * later; and one 500 in steady */
    add(&r, 1000, 15, 502, 1, 1);
    add(&r, 1012, 1, 0, 1, 2);
    add_on(&r, 1, 1005, 10, 502, 1, 3);
    add(&r, 100, 1, 500, 1, 4);
    /* the database window's 503 does not count */
    add(&r, 3000, 1, 503, 1, 5);
    assert_int_equal(report_finish(&r), 0);
    assert_false(report_judge(&r, &out));
    const char *s = sb_str(&out);
    assert_non_null(strstr(s, "kill-worker: 3 failed (5xx or no answer), 1 "
                              "of them in flight at a kill → FAIL\n"));
    assert_non_null(strstr(s, "steady: 1 failed (5xx or no answer), 0 "
                              "of them in flight at a kill → FAIL\n"));
    assert_non_null(strstr(
        s, "5xx outside database windows: 4, in flight at a kill 1 → FAIL\n"));
    sb_free(&out);
    report_free(&r);
}

static void
test_worker_kill_explains_one_node_kill_all(void **state)
{
    (void)state;
    struct report r;
    struct strbuf out = STRBUF_INIT;
    /* node 0 loses a worker at 1010, node 1 its whole app at 1500 */
    static const struct report_kill mixed[] = {{0, 1010, 1011, 1},
                                               {1, 1500, 1502, 0}};
    assert_int_equal(report_init(&r, wins, 3, mixed, 2), 0);
    /* two in flight on node 0 at the worker's kill: only one explained */
    add_on(&r, 0, 1000, 20, 502, 1, 1);
    add_on(&r, 0, 1005, 20, 502, 1, 2);
    /* three in flight on node 1 at its node's kill: all explained */
    add_on(&r, 1, 1400, 101, 502, 1, 3);
    add_on(&r, 1, 1450, 60, 502, 1, 4);
    add_on(&r, 1, 1501, 1, 502, 1, 5);
    assert_int_equal(report_finish(&r), 0);
    assert_false(report_judge(&r, &out));
    assert_non_null(strstr(sb_str(&out),
                           "kill-worker: 5 failed (5xx or no answer), 4 of "
                           "them in flight at a kill → FAIL\n"));
    sb_free(&out);
    report_free(&r);
}

static void
test_retry_columns(void **state)
{
    (void)state;
    struct report r;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(report_init(&r, wins, 3, NULL, 0), 0);
    /* logical 1: 502 in the kill window, retried in steady → 201 */
    add(&r, 1990, 5, 502, 1, 1);
    add(&r, 2100, 5, 201, 2, 1);
    /* logical 2: two no-answers, given up (counted where it started) */
    add(&r, 120, 5, 0, 1, 2);
    add(&r, 3100, 5, 503, 2, 2);
    /* logical 3: a 4xx took effect; attempts listed out of order */
    add(&r, 4100, 5, 422, 2, 3);
    add(&r, 4000, 5, 0, 1, 3);
    assert_int_equal(report_finish(&r), 0);
    assert_true(r.retry);
    assert_int_equal(r.rows[0].logical, 1);
    assert_int_equal(r.rows[0].no_effect, 0);
    assert_int_equal(r.rows[3].logical, 2); /* steady: logical 2 and 3 */
    assert_int_equal(r.rows[3].no_effect, 1);
    assert_int_equal(r.rows[4].logical, 3);
    assert_int_equal(r.rows[4].no_effect, 1);
    report_render(&r, &out);
    assert_non_null(strstr(sb_str(&out), "no_effect"));
    sb_free(&out);
    report_free(&r);
}

static void
test_no_windows(void **state)
{
    (void)state;
    struct report r;
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(report_init(&r, NULL, 0, NULL, 0), 0);
    assert_int_equal(report_finish(&r), 0);
    assert_int_equal(r.rows[0].requests, 0);
    assert_true(r.rows[0].p50 == -1);
    report_render(&r, &out);
    assert_true(report_judge(&r, &out));
    assert_non_null(
        strstr(sb_str(&out), "5xx outside database windows: 0, in flight"));
    sb_free(&out);
    report_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reqlog_roundtrip),
        cmocka_unit_test(test_reqlog_parse_rejects),
        cmocka_unit_test(test_window_parse),
        cmocka_unit_test(test_kill_parse),
        cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_rows_and_judgement_ok),
        cmocka_unit_test(test_judgement_fails),
        cmocka_unit_test(test_worker_kill_explains_one_node_kill_all),
        cmocka_unit_test(test_retry_columns),
        cmocka_unit_test(test_no_windows),
    };
    return cmocka_run_group_tests(tests, setup_windows, teardown_windows);
}
