/*
 * consumer/event.h — one Fintegrate event message as the consumer program
 * sees it: parsed and checked against the versioned envelope of docs/API.md
 * §8.2, and described in one readable line.
 *
 * A message is *poison* when it can never be processed, however often it
 * is delivered: the body is not a JSON object, it has no usable event_id,
 * its schema_version is missing or of an unknown major version, or the
 * fields the consumer needs (event_type, sequence, customer_id) are
 * missing or of the wrong type.  Poison is rejected to the dead-letter
 * queue at once; whatever identifies the event (the body's event_id, else
 * the AMQP message_id property) is still filled in so it can be reported
 * `failed`.
 *
 * Pure: jansson and common/strbuf, common/text only; no I/O.
 */
#ifndef FC_EVENT_H
#define FC_EVENT_H

#include "common/strbuf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The major schema version this program understands ("1.x"). */
#define EVENT_SCHEMA_MAJOR 1

struct event {
    char event_id[37];     /* lower-case UUID; "" when not identifiable */
    char customer_key[37]; /* customer_id, or "" for events without one */
    char event_type[64];
    int64_t sequence;
    json_t *root; /* owned: the parsed body; NULL when it was not JSON */
};

/*
 * Parses `len` bytes of `body`.  `message_id` (may be NULL) is the AMQP
 * message_id property, used to identify the event when the body cannot.
 * Returns 0 for a processable event; -1 for poison, with the reason (one
 * sentence, no body text beyond a short quote) appended to `reason`.
 * Either way `ev` must be released with event_free().
 */
int event_parse(struct event *ev, const char *body, size_t len,
                const char *message_id, struct strbuf *reason)
    __attribute__((warn_unused_result));

/* Releases what event_parse allocated; safe to call twice. */
void event_free(struct event *ev);

/*
 * Appends the readable form of a parsed event, without a newline:
 *   customer_creation customer=<id> seq=1 event=<id> name="Ada" status=ACTIVE
 * Every value from the message (event_type, data's names and values) is a
 * bare word ([A-Za-z0-9_]+) or JSON-quoted with every control character
 * (C0, DEL, C1) as a \u escape, so nothing in a message can break the line
 * or reach a terminal raw (docs/API.md §9.3).
 */
void event_describe(const struct event *ev, struct strbuf *out);

/* Appends `len` bytes as one line of text: a JSON body with CR, LF and tab
 * turned into spaces (JSON allows them only as whitespace) and DEL and C1
 * characters as \u escapes, anything else (not valid UTF-8, control bytes)
 * as event_quote() writes it; at most `max` bytes of input are shown, then
 * "...".  No control character reaches `out`. */
void event_raw_line(const char *body, size_t len, size_t max,
                    struct strbuf *out);

/* Appends `len` bytes as a JSON string literal with no control character
 * (C0, DEL and C1 as \u escapes); bytes that are not UTF-8 show as U+FFFD.
 * For any text from a message that is printed (a rejection's reason). */
void event_quote(const char *s, size_t len, struct strbuf *out);

#endif
