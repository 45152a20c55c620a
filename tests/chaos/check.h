/*
 * tests/chaos/check.h — the judgement of `fintegrate-chaos verify`: given
 * the accepted events (rows of the outbox) and the consumers' "processed"
 * lines, counts
 *   lost              accepted events without any processed line;
 *   processed twice   event ids with more than one processed line, across
 *                     all files;
 *   order violations  in one file, a processed line whose seq is lower than
 *                     an earlier processed seq of the same customer (events
 *                     without a customer, "-", are not ordered here);
 * and keeps up to CHECK_EXAMPLES example ids of each.
 *
 * Pure: no I/O.  Feed it with check_accepted / check_begin_file /
 * check_processed, then read check_result.  A check is built afresh for
 * every poll of verify.
 */
#ifndef CHAOS_CHECK_H
#define CHAOS_CHECK_H

#include "consumer_line.h"
#include "util.h"

#include "common/strbuf.h"

#include <stdint.h>

#define CHECK_EXAMPLES 5

struct check {
    struct strmap accepted;  /* event_id → index in acc */
    struct vec acc;          /* struct check_event */
    struct strmap processed; /* event_id → processed lines */
    struct strmap last_seq;  /* this file: customer → highest seq so far */
    const char *file;        /* borrowed: the file being fed */
    long processed_lines;
    long malformed;
    long twice;
    long order;
    long n_ex_twice, n_ex_order;
    struct strbuf ex_twice, ex_order; /* "  <example>\n" lines */
};

struct check_result {
    long accepted;        /* accepted events */
    long processed;       /* accepted events with a processed line */
    long processed_lines; /* processed lines read */
    long unknown;   /* distinct processed ids that are not accepted events */
    long malformed; /* "processed" lines without valid fields */
    long lost;
    long twice;
    long order;
    struct strbuf ex_lost, ex_twice, ex_order; /* owned: check_result_free */
};

void check_init(struct check *c);
void check_free(struct check *c);

/* An accepted event (strings copied).  0, or -1 on allocation failure; a
 * repeated event_id is ignored. */
int check_accepted(struct check *c, const char *event_id,
                   const char *customer_id, int64_t seq, const char *consumer)
    __attribute__((warn_unused_result));
/* The lines that follow come from `file` (borrowed until the next call). */
void check_begin_file(struct check *c, const char *file);
/* One line of the current file, already parsed.  0, or -1 on allocation
 * failure. */
int check_line(struct check *c, enum consumer_line_kind kind,
               const struct consumer_line *line, long line_no)
    __attribute__((warn_unused_result));
/* The totals and examples; 0, or -1 on allocation failure. */
int check_result(const struct check *c, struct check_result *out)
    __attribute__((warn_unused_result));
void check_result_free(struct check_result *r);

#endif
