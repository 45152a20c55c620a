/*
 * tests/chaos/effect.c — see effect.h.
 */
#include "effect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_TEXT 37

struct effect_write {
    int64_t logical;
    enum reqlog_kind kind;
    int last_attempt;          /* the highest attempt seen */
    int status;                /* its status (0: no answer) */
    char customer[UUID_TEXT];  /* the create's 2xx id, the change's target */
    int64_t first_ms, last_ms; /* first start, last end */
};

void
effect_init(struct effect *e)
{
    memset(e, 0, sizeof *e);
    e->writes = (struct vec)VEC_INIT(struct effect_write);
}

void
effect_free(struct effect *e)
{
    vec_free(&e->writes);
    strmap_free(&e->by_id);
    strmap_free(&e->named);
    strmap_free(&e->ids);
    strmap_free(&e->st_events);
}

static bool
is_answer(int status)
{
    return status >= 200 && status <= 499;
}

static void
copy_id(char out[UUID_TEXT], const char *id)
{
    if (id != NULL && chaos_is_uuid(id))
        snprintf(out, UUID_TEXT, "%s", id);
    else
        out[0] = '\0';
}

int
effect_attempt(struct effect *e, const struct reqlog_attempt *a)
{
    char key[24];
    bool inserted;
    snprintf(key, sizeof key, "%lld", (long long)a->logical_id);
    int64_t *slot =
        strmap_slot(&e->by_id, key, (int64_t)e->writes.len, &inserted);
    if (slot == NULL)
        return -1;
    if (inserted) {
        struct effect_write w = {
            .logical = a->logical_id,
            .kind = a->kind,
            .first_ms = a->start_ms,
            .last_ms = a->end_ms,
        };
        if (vec_push(&e->writes, &w) < 0)
            return -1;
    }
    struct effect_write *w = vec_at(&e->writes, (size_t)*slot);
    if (a->start_ms < w->first_ms)
        w->first_ms = a->start_ms;
    if (a->end_ms > w->last_ms)
        w->last_ms = a->end_ms;
    if (a->attempt >= w->last_attempt) {
        w->last_attempt = a->attempt;
        w->status = a->status;
        /* a status change names its target on every attempt; a create
         * only on its 2xx */
        if (a->kind == REQLOG_STATUS || (a->status >= 200 && a->status <= 299))
            copy_id(w->customer, a->customer_id);
        else
            w->customer[0] = '\0';
    }
    return 0;
}

bool
effect_name_logical(const char *name, int64_t *logical)
{
    if (strncmp(name, "chaos ", 6) != 0)
        return false;
    const char *last = strrchr(name, ' ');
    if (last == name + 5) /* "chaos <id>": no consumer */
        return false;
    int64_t v;
    if (!chaos_parse_i64(last + 1, &v) || v < 1)
        return false;
    *logical = v;
    return true;
}

int
effect_customer(struct effect *e, const char *customer_id, const char *name)
{
    int64_t logical;
    if (strmap_slot(&e->ids, customer_id, 1, NULL) == NULL)
        return -1;
    if (!effect_name_logical(name, &logical)) {
        e->foreign++;
        return 0;
    }
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)logical);
    int64_t *n = strmap_slot(&e->named, key, 0, NULL);
    if (n == NULL)
        return -1;
    (*n)++;
    return 0;
}

int
effect_status_events(struct effect *e, const char *customer_id, long n)
{
    int64_t *slot = strmap_slot(&e->st_events, customer_id, 0, NULL);
    if (slot == NULL)
        return -1;
    *slot += n;
    return 0;
}

static bool
in_db_window(const struct effect_write *w, const struct report_window *win,
             size_t nw)
{
    for (size_t i = 0; i < nw; i++)
        if (win[i].db && w->first_ms <= win[i].end_ms &&
            w->last_ms >= win[i].start_ms)
            return true;
    return false;
}

/* Appends the n-th example line (the first EFFECT_EXAMPLES only). */
static void __attribute__((format(printf, 3, 4)))
example(struct strbuf *sb, long n, const char *fmt, ...)
{
    char line[256]; /* ids and numbers only: truncation is harmless */
    va_list ap;
    if (n > EFFECT_EXAMPLES)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sb_printf(sb, "  %s\n", line);
}

static void
never_took_effect(struct effect_result *r, const struct effect_write *w,
                  const struct report_window *win, size_t nw)
{
    bool db = in_db_window(w, win, nw);
    r->never++;
    if (db)
        r->never_in_db_window++;
    example(&r->ex_never, r->never, "logical write %lld (%s), last answer %d%s",
            (long long)w->logical, reqlog_kind_name(w->kind), w->status,
            db ? " (in a database window)" : "");
}

/* Per customer: status changes answered 2xx, and the unanswered ones. */
struct st_tally {
    int64_t ok;
    int64_t ok_in_db;      /* ... of which overlap a database window */
    struct vec unanswered; /* size_t indexes into writes, oldest first */
};

static int
judge_creates(const struct effect *e, const struct report_window *win,
              size_t nw, struct effect_result *r)
{
    for (size_t i = 0; i < e->writes.len; i++) {
        const struct effect_write *w = vec_at(&e->writes, i);
        if (w->kind != REQLOG_CREATE)
            continue;
        char key[24];
        int64_t rows = 0;
        snprintf(key, sizeof key, "%lld", (long long)w->logical);
        strmap_get(&e->named, key, &rows);
        if (rows > 1) {
            r->twice += rows - 1;
            example(&r->ex_twice, r->twice,
                    "logical create %lld: %lld customers of its name",
                    (long long)w->logical, (long long)rows);
        }
        if (w->status >= 200 && w->status <= 299) {
            if (w->customer[0] != '\0' &&
                !strmap_get(&e->ids, w->customer, NULL)) {
                bool db = in_db_window(w, win, nw);
                r->acked_absent++;
                if (db)
                    r->acked_absent_in_db_window++;
                example(&r->ex_absent, r->acked_absent,
                        "logical create %lld answered 2xx: customer %s not in "
                        "the database%s",
                        (long long)w->logical, w->customer,
                        db ? " (in a database window)" : "");
            }
        } else if (!is_answer(w->status)) {
            if (rows > 0)
                r->took_unanswered++;
            else
                never_took_effect(r, w, win, nw);
        }
    }
    /* customers of creates the log never saw (a load stopped mid-attempt) */
    size_t pos = 0;
    const char *key;
    int64_t rows;
    while (strmap_next(&e->named, &pos, &key, &rows))
        if (!strmap_get(&e->by_id, key, NULL))
            r->not_in_log += rows;
    r->not_in_log += e->foreign;
    return 0;
}

static int
judge_statuses(const struct effect *e, const struct report_window *win,
               size_t nw, struct effect_result *r)
{
    struct strmap idx = STRMAP_INIT; /* customer → index in tallies */
    struct vec tallies = VEC_INIT(struct st_tally);
    int rc = -1;

    for (size_t i = 0; i < e->writes.len; i++) {
        const struct effect_write *w = vec_at(&e->writes, i);
        if (w->kind != REQLOG_STATUS || w->customer[0] == '\0')
            continue;
        bool inserted;
        int64_t *slot =
            strmap_slot(&idx, w->customer, (int64_t)tallies.len, &inserted);
        if (slot == NULL)
            goto out;
        if (inserted) {
            struct st_tally t = {0, 0, VEC_INIT(size_t)};
            if (vec_push(&tallies, &t) < 0)
                goto out;
        }
        struct st_tally *t = vec_at(&tallies, (size_t)*slot);
        if (w->status >= 200 && w->status <= 299) {
            t->ok++;
            if (in_db_window(w, win, nw))
                t->ok_in_db++;
        } else if (!is_answer(w->status) && vec_push(&t->unanswered, &i) < 0)
            goto out;
    }
    size_t pos = 0;
    const char *cust;
    int64_t ti;
    while (strmap_next(&idx, &pos, &cust, &ti)) {
        const struct st_tally *t = vec_at(&tallies, (size_t)ti);
        int64_t events = 0;
        strmap_get(&e->st_events, cust, &events);
        if (events < t->ok) {
            int64_t missing = t->ok - events;
            /* which of its changes are missing is unknown: those that
             * overlap a database window are the likely ones */
            r->acked_absent += missing;
            r->acked_absent_in_db_window +=
                missing < t->ok_in_db ? missing : t->ok_in_db;
            example(&r->ex_absent, r->acked_absent,
                    "%lld status change(s) answered 2xx without an event "
                    "for customer %s",
                    (long long)(t->ok - events), cust);
        }
        int64_t took = events > t->ok ? events - t->ok : 0;
        /* the writes of one customer come one after another: match the
         * extra events with its unanswered changes, oldest first */
        for (size_t k = 0; k < t->unanswered.len; k++) {
            size_t wi = *(size_t *)vec_at(&t->unanswered, k);
            const struct effect_write *w = vec_at(&e->writes, wi);
            if ((int64_t)k < took)
                r->took_unanswered++;
            else
                never_took_effect(r, w, win, nw);
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < tallies.len; i++)
        vec_free(&((struct st_tally *)vec_at(&tallies, i))->unanswered);
    vec_free(&tallies);
    strmap_free(&idx);
    return rc;
}

int
effect_result(const struct effect *e, const struct report_window *win,
              size_t nw, struct effect_result *r)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < e->writes.len; i++) {
        const struct effect_write *w = vec_at(&e->writes, i);
        if (w->kind == REQLOG_CREATE)
            r->creates++;
        else
            r->statuses++;
        if (w->status >= 200 && w->status <= 299)
            r->answered_2xx++;
        else if (is_answer(w->status))
            r->answered_4xx++;
        else
            r->unanswered++;
    }
    if (judge_creates(e, win, nw, r) < 0 || judge_statuses(e, win, nw, r) < 0 ||
        r->ex_twice.oom || r->ex_absent.oom || r->ex_never.oom) {
        effect_result_free(r);
        return -1;
    }
    return 0;
}

void
effect_result_free(struct effect_result *r)
{
    sb_free(&r->ex_twice);
    sb_free(&r->ex_absent);
    sb_free(&r->ex_never);
}
