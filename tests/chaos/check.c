/*
 * tests/chaos/check.c — see check.h.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

struct check_event {
    char *event_id;
    char *customer_id;
    char *consumer;
    int64_t seq;
};

void
check_init(struct check *c)
{
    memset(c, 0, sizeof *c);
    c->acc = (struct vec)VEC_INIT(struct check_event);
}

void
check_free(struct check *c)
{
    for (size_t i = 0; i < c->acc.len; i++) {
        struct check_event *e = vec_at(&c->acc, i);
        free(e->event_id);
        free(e->customer_id);
        free(e->consumer);
    }
    vec_free(&c->acc);
    strmap_free(&c->accepted);
    strmap_free(&c->processed);
    strmap_free(&c->last_seq);
    sb_free(&c->ex_twice);
    sb_free(&c->ex_order);
}

int
check_accepted(struct check *c, const char *event_id, const char *customer_id,
               int64_t seq, const char *consumer)
{
    bool inserted = false;
    int64_t *slot =
        strmap_slot(&c->accepted, event_id, (int64_t)c->acc.len, &inserted);
    if (slot == NULL)
        return -1;
    if (!inserted)
        return 0;
    struct check_event e = {strdup(event_id),
                            strdup(customer_id ? customer_id : "-"),
                            strdup(consumer ? consumer : "-"), seq};
    if (e.event_id == NULL || e.customer_id == NULL || e.consumer == NULL ||
        vec_push(&c->acc, &e) < 0) {
        free(e.event_id);
        free(e.customer_id);
        free(e.consumer);
        /* the map entry points past the vector: make it harmless */
        *slot = -1;
        return -1;
    }
    return 0;
}

void
check_begin_file(struct check *c, const char *file)
{
    strmap_free(&c->last_seq);
    c->file = file;
}

int
check_line(struct check *c, enum consumer_line_kind kind,
           const struct consumer_line *line, long line_no)
{
    const char *file = c->file ? c->file : "-";

    if (kind == CONSUMER_LINE_MALFORMED)
        c->malformed++;
    if (kind != CONSUMER_LINE_PROCESSED)
        return 0;
    c->processed_lines++;

    int64_t *count = strmap_slot(&c->processed, line->event_id, 0, NULL);
    if (count == NULL)
        return -1;
    if (++*count == 2) {
        c->twice++;
        if (c->n_ex_twice++ < CHECK_EXAMPLES)
            sb_printf(&c->ex_twice,
                      "  event=%s customer=%s seq=%lld (again at %s:%ld)\n",
                      line->event_id, line->customer_id, (long long)line->seq,
                      file, line_no);
    }

    if (strcmp(line->customer_id, "-") == 0)
        return 0;
    bool inserted = false;
    int64_t *last =
        strmap_slot(&c->last_seq, line->customer_id, line->seq, &inserted);
    if (last == NULL)
        return -1;
    if (inserted)
        return 0;
    if (line->seq < *last) {
        c->order++;
        if (c->n_ex_order++ < CHECK_EXAMPLES)
            sb_printf(&c->ex_order,
                      "  customer=%s seq=%lld after seq=%lld event=%s "
                      "(%s:%ld)\n",
                      line->customer_id, (long long)line->seq, (long long)*last,
                      line->event_id, file, line_no);
    } else {
        *last = line->seq;
    }
    return 0;
}

int
check_result(const struct check *c, struct check_result *out)
{
    memset(out, 0, sizeof *out);
    out->accepted = (long)c->acc.len;
    out->processed_lines = c->processed_lines;
    out->malformed = c->malformed;
    out->twice = c->twice;
    out->order = c->order;
    sb_puts(&out->ex_twice, sb_str(&c->ex_twice));
    sb_puts(&out->ex_order, sb_str(&c->ex_order));

    for (size_t i = 0; i < c->acc.len; i++) {
        const struct check_event *e = vec_at(&c->acc, i);
        if (strmap_get(&c->processed, e->event_id, NULL)) {
            out->processed++;
            continue;
        }
        if (out->lost++ < CHECK_EXAMPLES)
            sb_printf(
                &out->ex_lost, "  event=%s customer=%s seq=%lld consumer=%s\n",
                e->event_id, e->customer_id, (long long)e->seq, e->consumer);
    }

    size_t pos = 0;
    const char *id;
    int64_t n;
    while (strmap_next(&c->processed, &pos, &id, &n))
        if (!strmap_get(&c->accepted, id, NULL))
            out->unknown++;

    if (out->ex_lost.oom || out->ex_twice.oom || out->ex_order.oom) {
        check_result_free(out);
        return -1;
    }
    return 0;
}

void
check_result_free(struct check_result *r)
{
    sb_free(&r->ex_lost);
    sb_free(&r->ex_twice);
    sb_free(&r->ex_order);
}
