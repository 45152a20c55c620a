/*
 * consumer/output.h — the consumer program's output: one line per event
 * on stdout, flushed at once, e.g.
 *   2026-11-29T21:40:57.487Z processed customer_creation customer=… seq=1
 * event=… name="Ada" status=ACTIVE 2026-11-29T21:40:58.002Z rejected  event=-
 * reason="…" (dead-lettered) With --raw each line is followed by "    raw <the
 * message's JSON>" (at most 64 KiB of it, quoted as event_quote writes it).
 *
 * The lines never hold the API key or the broker password; log lines go
 * to stderr (common/log.h).
 */
#ifndef FC_OUTPUT_H
#define FC_OUTPUT_H

#include "event.h"

#include <stddef.h>

/* "<time> <verb> <event_describe>[ (<note>)]"; `raw` the message's body
 * (len bytes) for --raw, or NULL. */
void output_event(const char *verb, const struct event *ev, const char *note,
                  const char *raw, size_t len);

/* "<time> rejected  event=<id or -> reason=<quoted> (dead-lettered)";
 * `raw` as above. */
void output_rejected(const char *event_id, const char *reason, const char *raw,
                     size_t len);

#endif
