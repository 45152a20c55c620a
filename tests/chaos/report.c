/*
 * tests/chaos/report.c — see report.h.
 */
#include "report.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_FIELDS 5
#define KILL_FIELDS 4
#define STEADY_NAME "steady"
#define TOTAL_NAME "total"

/* one attempt of a logical write, for the "never took effect" column */
struct logical_attempt {
    int64_t id;
    int attempt;
    int status;
    size_t row;
};

int
report_parse_window(char *line, struct report_window *out)
{
    char *tok[WINDOW_FIELDS];
    int64_t start, end, db, killed;
    size_t n = chaos_split(line, tok, WINDOW_FIELDS);

    if (n == 0 || tok[0][0] == '#')
        return 0;
    if (n != WINDOW_FIELDS || !chaos_parse_i64(tok[1], &start) ||
        !chaos_parse_i64(tok[2], &end) || !chaos_parse_i64(tok[3], &db) ||
        !chaos_parse_i64(tok[4], &killed) || start < 0 || end < start ||
        (db != 0 && db != 1) || killed < 0 || killed > 1000000)
        return -1;
    out->name = strdup(tok[0]);
    if (out->name == NULL)
        return -1;
    out->start_ms = start;
    out->end_ms = end;
    out->db = db == 1;
    out->killed = (long)killed;
    return 1;
}

int
report_parse_kill(char *line, struct report_kill *out)
{
    char *tok[KILL_FIELDS];
    int64_t node, before, after, limit;
    size_t n = chaos_split(line, tok, KILL_FIELDS);

    if (n == 0 || tok[0][0] == '#')
        return 0;
    if (n != KILL_FIELDS || !chaos_parse_i64(tok[0], &node) ||
        !chaos_parse_i64(tok[1], &before) || !chaos_parse_i64(tok[2], &after) ||
        !chaos_parse_i64(tok[3], &limit) || node < 0 || node > 1000 ||
        before < 0 || after < before || limit < 0 || limit > 1000000)
        return -1;
    out->node = (int)node;
    out->before_ms = before;
    out->after_ms = after;
    out->limit = (long)limit;
    return 1;
}

void
report_window_free(struct report_window *w)
{
    free(w->name);
    w->name = NULL;
}

int
report_init(struct report *r, const struct report_window *w, size_t nw,
            const struct report_kill *k, size_t nk)
{
    memset(r, 0, sizeof *r);
    r->log = (struct vec)VEC_INIT(struct logical_attempt);
    r->rows = calloc(nw + 2, sizeof *r->rows);
    r->kill_used = calloc(nk ? nk : 1, sizeof *r->kill_used);
    if (r->rows == NULL || r->kill_used == NULL) {
        free(r->rows);
        free(r->kill_used);
        r->rows = NULL;
        r->kill_used = NULL;
        return -1;
    }
    r->n_rows = nw + 2;
    r->windows = w;
    r->n_windows = nw;
    r->kills = k;
    r->n_kills = nk;
    for (size_t i = 0; i < r->n_rows; i++) {
        struct report_row *row = &r->rows[i];
        row->lat = (struct vec)VEC_INIT(int64_t);
        row->p50 = row->p99 = row->max = -1;
        if (i < nw) {
            row->name = w[i].name;
            row->db = w[i].db;
            row->judged = !w[i].db;
        } else if (i == nw) {
            row->name = STEADY_NAME;
            row->judged = true;
        } else {
            row->name = TOTAL_NAME;
        }
    }
    return 0;
}

static size_t
row_of(const struct report *r, int64_t start_ms)
{
    for (size_t i = 0; i < r->n_windows; i++)
        if (start_ms >= r->windows[i].start_ms &&
            start_ms <= r->windows[i].end_ms)
            return i;
    return r->n_windows; /* steady */
}

static int
row_add(struct report_row *row, const struct reqlog_attempt *a)
{
    int64_t lat = a->end_ms - a->start_ms;
    row->requests++;
    if (a->status >= 200 && a->status <= 299)
        row->n2xx++;
    else if (a->status >= 400 && a->status <= 499)
        row->n4xx++;
    else if (a->status >= 500 && a->status <= 599)
        row->n5xx++;
    else
        row->other++;
    return vec_push(&row->lat, &lat);
}

/* Whether the failed attempt `a` is explained by a kill: it was in flight
 * on the kill's node at that moment, and the kill has not explained as
 * many failures as it can (a worker served one request). */
static bool
explained_by_kill(struct report *r, const struct reqlog_attempt *a)
{
    for (size_t i = 0; i < r->n_kills; i++) {
        const struct report_kill *k = &r->kills[i];
        if (a->node == k->node && a->start_ms <= k->after_ms &&
            a->end_ms >= k->before_ms &&
            (k->limit == 0 || r->kill_used[i] < k->limit)) {
            r->kill_used[i]++;
            return true;
        }
    }
    return false;
}

int
report_add(struct report *r, const struct reqlog_attempt *a)
{
    /* A failure belongs to the window in which it happened (a request in
     * flight on a worker killed at the start of a window started before
     * it); every other attempt to the window in which it was sent. */
    bool failed = a->status < 200 || a->status > 499;
    size_t i = row_of(r, failed ? a->end_ms : a->start_ms);
    struct logical_attempt la = {a->logical_id, a->attempt, a->status, i};
    if (a->attempt > 1)
        r->retry = true;
    if (failed && explained_by_kill(r, a))
        r->rows[i].excused++;
    if (row_add(&r->rows[i], a) < 0 || row_add(&r->rows[r->n_rows - 1], a) < 0)
        return -1;
    return vec_push(&r->log, &la);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int
cmp_logical(const void *a, const void *b)
{
    const struct logical_attempt *x = a, *y = b;
    if (x->id != y->id)
        return (x->id > y->id) - (x->id < y->id);
    return (x->attempt > y->attempt) - (x->attempt < y->attempt);
}

int64_t
report_percentile(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return -1;
    double rank = ceil(p / 100.0 * (double)n);
    size_t k = rank < 1 ? 1 : (size_t)rank;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

static bool
took_effect(int status)
{
    return (status >= 200 && status <= 299) || (status >= 400 && status <= 499);
}

int
report_finish(struct report *r)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        struct report_row *row = &r->rows[i];
        int64_t *lat = row->lat.items;
        size_t n = row->lat.len;
        if (n == 0)
            continue;
        qsort(lat, n, sizeof *lat, cmp_i64);
        row->p50 = report_percentile(lat, n, 50);
        row->p99 = report_percentile(lat, n, 99);
        row->max = lat[n - 1];
    }

    /* Logical writes: the group of attempts of one id, sorted by attempt;
     * the first decides the row, the last whether it took effect. */
    struct logical_attempt *la = r->log.items;
    size_t n = r->log.len;
    if (n > 0)
        qsort(la, n, sizeof *la, cmp_logical);
    struct report_row *total = &r->rows[r->n_rows - 1];
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && la[j + 1].id == la[i].id)
            j++;
        struct report_row *row = &r->rows[la[i].row];
        row->logical++;
        total->logical++;
        if (!took_effect(la[j].status)) {
            row->no_effect++;
            total->no_effect++;
        }
        i = j + 1;
    }
    return 0;
}

static void
render_ms(struct strbuf *out, int64_t v)
{
    if (v < 0)
        sb_printf(out, " %8s", "-");
    else
        sb_printf(out, " %8lld", (long long)v);
}

void
report_render(const struct report *r, struct strbuf *out)
{
    int w = (int)strlen("window");
    for (size_t i = 0; i < r->n_rows; i++) {
        size_t len = strlen(r->rows[i].name);
        if (len > (size_t)w)
            w = len > 64 ? 64 : (int)len;
    }

    sb_printf(out, "%-*s %3s %6s %8s %7s %7s %7s %7s %8s %8s %8s", w, "window",
              "db", "killed", "requests", "2xx", "4xx", "5xx", "other",
              "p50_ms", "p99_ms", "max_ms");
    if (r->retry)
        sb_printf(out, " %8s %9s", "writes", "no_effect");
    sb_puts(out, "\n");

    for (size_t i = 0; i < r->n_rows; i++) {
        const struct report_row *row = &r->rows[i];
        bool is_window = i < r->n_windows;
        if (i == r->n_rows - 1) {
            size_t dash = (size_t)w + 79 + (r->retry ? 19 : 0);
            for (size_t k = 0; k < dash; k++)
                sb_puts(out, "-");
            sb_puts(out, "\n");
        }
        sb_printf(out, "%-*.*s %3s", w, w, row->name,
                  is_window ? (row->db ? "yes" : "no") : "");
        if (is_window)
            sb_printf(out, " %6ld", r->windows[i].killed);
        else
            sb_printf(out, " %6s", "");
        sb_printf(out, " %8ld %7ld %7ld %7ld %7ld", row->requests, row->n2xx,
                  row->n4xx, row->n5xx, row->other);
        render_ms(out, row->p50);
        render_ms(out, row->p99);
        render_ms(out, row->max);
        if (r->retry)
            sb_printf(out, " %8ld %9ld", row->logical, row->no_effect);
        sb_puts(out, "\n");
    }
    sb_puts(out, "other = no answer (transport error or timeout) or a status "
                 "outside 2xx/4xx/5xx; latency = end - start of each "
                 "attempt\n");
    if (r->retry)
        sb_puts(out, "writes = logical writes (by their first attempt); "
                     "no_effect = writes whose last attempt got no 2xx/4xx\n");
}

bool
report_judge(const struct report *r, struct strbuf *out)
{
    long failed = 0, excused = 0, in_db = 0;
    bool ok = true;

    for (size_t i = 0; i + 1 < r->n_rows; i++) {
        const struct report_row *row = &r->rows[i];
        long bad = row->n5xx + row->other;
        if (!row->judged) {
            in_db += bad;
            continue;
        }
        bool row_ok = bad <= row->excused;
        if (bad > 0)
            sb_printf(out,
                      "  %s: %ld failed (5xx or no answer), %ld of them in "
                      "flight at a kill → %s\n",
                      row->name, bad, row->excused, row_ok ? "ok" : "FAIL");
        if (!row_ok)
            ok = false;
        failed += bad;
        excused += row->excused;
    }
    sb_printf(out, "5xx in database windows (allowed): %ld\n", in_db);
    sb_printf(out,
              "5xx outside database windows: %ld, in flight at a kill %ld "
              "→ %s\n",
              failed, excused, ok ? "ok" : "FAIL");
    return ok;
}

void
report_free(struct report *r)
{
    for (size_t i = 0; i < r->n_rows; i++)
        vec_free(&r->rows[i].lat);
    free(r->rows);
    free(r->kill_used);
    r->rows = NULL;
    r->kill_used = NULL;
    r->n_rows = 0;
    vec_free(&r->log);
}
