/*
 * tests/fuzz/fuzz_event.c — libFuzzer target: a message body of arbitrary
 * bytes through the consumer program's parsing and printing: event_parse,
 * then what fintegrate-consumer prints about it — event_describe for an
 * event, the quoted reason for a poison message (event_quote), and the raw
 * line (event_raw_line) whole and cut.
 *
 * Input: bytes before the first NUL are the AMQP message_id when the input
 * holds a NUL (the body is what follows it); otherwise the whole input is
 * the body and there is no message_id.
 *
 * Checks (docs/API.md §9.3): no control character (C0, DEL, C1) reaches
 * any of the printed text; each is valid UTF-8; a parsed event has a
 * canonical event_id, a customer key that is "" or canonical, a sequence of
 * at least 1; a poison message has a reason.
 */
#include "common.h"

#include "consumer/event.h"
#include "common/text.h"

#include <string.h>

static void
check_text(const struct strbuf *sb, const char *what)
{
    FUZZ_CHECK(!sb->oom, "%s: out of memory", what);
    FUZZ_CHECK(!fuzz_has_control(sb_str(sb), sb->len),
               "%s holds a control character: %s", what, sb_str(sb));
    FUZZ_CHECK(utf8_length(sb_str(sb), sb->len) >= 0, "%s is not UTF-8: %s",
               what, sb_str(sb));
}

static bool
is_canonical_uuid(const char *s)
{
    if (strlen(s) != 36 || !is_uuid_text(s, 36))
        return false;
    for (const char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf reason = STRBUF_INIT, out = STRBUF_INIT;
    struct event ev;
    char *message_id = NULL;
    const char *body = (const char *)data;
    size_t len = size;

    if (size > 65536)
        return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul != NULL) {
        message_id = strndup((const char *)data, (size_t)(nul - data));
        FUZZ_CHECK(message_id != NULL, "out of memory");
        body = (const char *)nul + 1;
        len = size - (size_t)(nul - data) - 1;
    }

    int rc = event_parse(&ev, body, len, message_id, &reason);
    FUZZ_CHECK(ev.event_id[0] == '\0' || is_canonical_uuid(ev.event_id),
               "event_id %s", ev.event_id);
    if (rc == 0) {
        FUZZ_CHECK(is_canonical_uuid(ev.event_id), "no event_id");
        FUZZ_CHECK(ev.customer_key[0] == '\0' ||
                       is_canonical_uuid(ev.customer_key),
                   "customer %s", ev.customer_key);
        FUZZ_CHECK(ev.sequence >= 1, "sequence %lld", (long long)ev.sequence);
        FUZZ_CHECK(ev.event_type[0] != '\0', "no event_type");
        event_describe(&ev, &out);
        check_text(&out, "the description");
    } else {
        FUZZ_CHECK(rc == -1 && reason.len > 0, "poison without a reason");
        check_text(&reason, "the reason");
        event_quote(sb_str(&reason), reason.len, &out);
        check_text(&out, "the quoted reason");
    }
    sb_reset(&out);
    event_raw_line(body, len, 65536, &out);
    check_text(&out, "the raw line");
    sb_reset(&out);
    event_raw_line(body, len, len / 2, &out);
    check_text(&out, "the cut raw line");
    sb_reset(&out);
    event_quote(body, len, &out);
    check_text(&out, "the quoted body");

    event_free(&ev);
    event_free(&ev); /* safe twice */
    sb_free(&out);
    sb_free(&reason);
    free(message_id);
    return 0;
}
