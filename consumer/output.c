/*
 * consumer/output.c — see output.h.
 */
#include "output.h"

#include "common/clock.h"
#include "common/strbuf.h"

#include <stdio.h>
#include <string.h>

#define RAW_MAX_BYTES ((size_t)64 * 1024)

static void
emit(struct strbuf *line)
{
    if (!line->oom)
        fwrite(line->buf, 1, line->len, stdout);
    fflush(stdout);
}

/* "<time> <verb padded to 9> " */
static void
start_line(struct strbuf *sb, const char *verb)
{
    char ts[UTC_STAMP_LEN];
    utc_stamp(ts, false);
    sb_printf(sb, "%s %-9s ", ts, verb);
}

static void
raw_line(struct strbuf *sb, const char *raw, size_t len)
{
    if (raw == NULL)
        return;
    sb_puts(sb, "    raw ");
    event_raw_line(raw, len, RAW_MAX_BYTES, sb);
    sb_puts(sb, "\n");
}

void
output_event(const char *verb, const struct event *ev, const char *note,
             const char *raw, size_t len)
{
    struct strbuf sb = STRBUF_INIT;
    start_line(&sb, verb);
    event_describe(ev, &sb);
    if (note != NULL)
        sb_printf(&sb, " (%s)", note);
    sb_puts(&sb, "\n");
    raw_line(&sb, raw, len);
    emit(&sb);
    sb_free(&sb);
}

void
output_rejected(const char *event_id, const char *reason, const char *raw,
                size_t len)
{
    struct strbuf sb = STRBUF_INIT;
    start_line(&sb, "rejected");
    sb_printf(&sb, "event=%s reason=", event_id[0] ? event_id : "-");
    event_quote(reason, strlen(reason), &sb);
    sb_puts(&sb, " (dead-lettered)\n");
    raw_line(&sb, raw, len);
    emit(&sb);
    sb_free(&sb);
}
