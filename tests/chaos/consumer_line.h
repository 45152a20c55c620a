/*
 * tests/chaos/consumer_line.h — reads one line of fintegrate-consumer's
 * standard output (consumer/main.c, print_event):
 *
 *   2025-10-23T14:34:51.467Z processed customer_creation customer=<id>
 *       seq=<n> event=<id> name=... status=... [(note)]
 *
 * Only lines whose second word is the verb "processed" count; "duplicate",
 * "rejected", "raw" continuation lines and log noise are recognised as
 * not processed.  A file may hold several runs of the program appended.
 *
 * Pure: parses in place, no I/O.
 */
#ifndef CHAOS_CONSUMER_LINE_H
#define CHAOS_CONSUMER_LINE_H

#include <stdint.h>

struct consumer_line {
    const char *event_type;  /* borrowed from the line */
    const char *event_id;    /* borrowed */
    const char *customer_id; /* borrowed; "-" for events without one */
    int64_t seq;
};

enum consumer_line_kind {
    CONSUMER_LINE_OTHER = 0,     /* not a processed line */
    CONSUMER_LINE_PROCESSED = 1, /* out is filled */
    CONSUMER_LINE_MALFORMED = -1 /* the verb is "processed" but the fields
                                    event=, customer=, seq= are not all
                                    there and valid */
};

/* Parses `line` (modified: tokens are cut out of it). */
enum consumer_line_kind consumer_line_parse(char *line,
                                            struct consumer_line *out);

#endif
