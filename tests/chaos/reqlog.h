/*
 * tests/chaos/reqlog.h — the request log that `fintegrate-chaos load`
 * writes and `fintegrate-chaos report` reads: one line per HTTP attempt,
 *
 *   start_ms end_ms node_index method kind status attempt logical_id
 * customer_id
 *
 * times in epoch milliseconds, node_index the 0-based position of the URL
 * in --url order, method POST|PATCH, kind create|status, status the HTTP
 * status or 0 for no answer (transport error, timeout), attempt 1, 2, ...
 * (retries of one logical write), logical_id the write's number in the run
 * (1, 2, ...), customer_id the customer (from a create's 2xx answer; the
 * target of a status change) or "-".  Lines starting with '#' are comments;
 * the load program writes a "# fintegrate-chaos load ... retry=0|1" header.
 *
 * Pure: formatting and parsing only.
 */
#ifndef CHAOS_REQLOG_H
#define CHAOS_REQLOG_H

#include "common/strbuf.h"

#include <stdbool.h>
#include <stdint.h>

enum reqlog_kind { REQLOG_CREATE, REQLOG_STATUS };

struct reqlog_attempt {
    int64_t start_ms;
    int64_t end_ms;
    int node;
    const char *method; /* borrowed */
    enum reqlog_kind kind;
    int status; /* 0 = no answer */
    int attempt;
    int64_t logical_id;
    const char *customer_id; /* borrowed; "-" or NULL when unknown */
};

/* Appends one line (with its '\n') to out. */
void reqlog_format(const struct reqlog_attempt *a, struct strbuf *out);

/*
 * Parses one line in place (tokens are cut out of `line`; method and
 * customer_id then point into it).  Returns 1 for an attempt, 0 for a
 * blank or comment line, -1 for a malformed one.
 */
int reqlog_parse(char *line, struct reqlog_attempt *out);

/* true when a comment line is the load header of a --retry run. */
bool reqlog_header_is_retry(const char *line);

const char *reqlog_kind_name(enum reqlog_kind k);

#endif
