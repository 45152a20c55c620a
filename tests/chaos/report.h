/*
 * tests/chaos/report.h — the computation behind `fintegrate-chaos report`:
 * attempts of the request log (reqlog.h) are grouped by fault window, and
 * each group gets counts by status class and latency percentiles; then the
 * judgement "5xx outside database windows".
 *
 * Windows file, one window a line ('#' comments and blank lines skipped):
 *   name start_ms end_ms db_window killed_workers
 * An attempt belongs to the first window whose [start_ms, end_ms] holds its
 * start_ms — a failed one (5xx, no answer) its end_ms, the moment it
 * failed; attempts in no window go to the row "steady".  In a db_window
 * (1) 5xx answers are allowed.  Elsewhere a failed attempt (5xx or no
 * answer) is allowed only when it was in flight on the node of a kill at
 * the moment of that kill (a kill record below): nginx had already handed
 * it to the killed worker, or to a killed node's listen queue, and cannot
 * send a write twice.  An attempt sent after the kill must not fail, and
 * "steady" allows none.  (killed_workers is shown in the table only.)
 *
 * Kills file, one kill a line:
 *   node_index before_ms after_ms limit
 * node_index as in the request log (the nginx node whose own app node lost
 * the process), the kill sent between before_ms and after_ms, and how many
 * failures it can explain: 1 for a worker (it served one request), 0 for
 * any number (a whole node: its listen queue went too).
 *
 * Pure: no I/O; rendering appends to a strbuf.
 */
#ifndef CHAOS_REPORT_H
#define CHAOS_REPORT_H

#include "reqlog.h"
#include "util.h"

#include "common/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct report_window {
    char *name; /* owned (report_window_free) */
    int64_t start_ms;
    int64_t end_ms;
    bool db;
    long killed;
};

/*
 * Parses a windows-file line in place: 1 a window (out->name is a new
 * copy), 0 blank or comment, -1 malformed (or out of memory).
 */
int report_parse_window(char *line, struct report_window *out);
void report_window_free(struct report_window *w);

struct report_kill {
    int node;
    int64_t before_ms, after_ms;
    long limit; /* failures it can explain; 0: every one in flight */
};

/* Parses a kills-file line in place: 1 a kill, 0 blank or comment, -1
 * malformed. */
int report_parse_kill(char *line, struct report_kill *out);

struct report_row {
    const char *name; /* borrowed: a window's name, "steady" or "total" */
    bool db;          /* a database window: 5xx allowed */
    bool judged;      /* counts towards the judgement (not db, not total) */
    long excused;     /* failed attempts in flight at a kill on their node */
    long requests, n2xx, n4xx, n5xx, other; /* other: no answer, 1xx, 3xx */
    int64_t p50, p99, max;                  /* ms; -1 when no requests */
    long logical;   /* logical writes whose first attempt is in this row */
    long no_effect; /* ... that never got a 2xx or 4xx */
    struct vec lat; /* int64_t latencies, internal */
};

struct report {
    struct report_row *rows; /* windows in file order, steady, total */
    size_t n_rows;
    const struct report_window *windows; /* borrowed */
    size_t n_windows;
    const struct report_kill *kills; /* borrowed */
    size_t n_kills;
    long *kill_used; /* failures explained so far, per kill */
    bool retry;      /* show the logical-write columns */
    struct vec log;  /* internal: per-attempt logical bookkeeping */
};

/*
 * Sets r up for the given windows and kills (borrowed: they must outlive
 * r).  0, or -1 on allocation failure.
 */
int report_init(struct report *r, const struct report_window *w, size_t nw,
                const struct report_kill *k, size_t nk)
    __attribute__((warn_unused_result));
/* Counts one attempt.  0, or -1 on allocation failure. */
int report_add(struct report *r, const struct reqlog_attempt *a)
    __attribute__((warn_unused_result));
/* Computes percentiles and the logical-write columns; call once, after the
 * last report_add.  0, or -1 on allocation failure. */
int report_finish(struct report *r) __attribute__((warn_unused_result));
/* The fixed-width table, one row per window, steady and total. */
void report_render(const struct report *r, struct strbuf *out);
/* The judgement lines; true when no failed attempt outside the database
 * windows lacks its kill. */
bool report_judge(const struct report *r, struct strbuf *out);
void report_free(struct report *r);

/* Nearest-rank percentile p (0 < p <= 100) of n ascending values; -1 when
 * n is 0. */
int64_t report_percentile(const int64_t *sorted, size_t n, double p);

#endif
