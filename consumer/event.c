/*
 * consumer/event.c — see event.h.
 */
#include "event.h"

#include "common/text.h"

#include <stdlib.h>
#include <string.h>

/* Appends JSON text `s` (valid UTF-8, as json_dumps writes it) with the
 * control characters json_dumps leaves as they are — DEL and the C1 range
 * U+0080..U+009F, which JSON allows raw in a string — and any C0 byte as
 * \u escapes.  They can only stand inside a string literal, so the result
 * is still the same JSON. */
static void
escape_controls(const char *s, size_t n, struct strbuf *out)
{
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t len;
        if (c < 0x20 || c == 0x7F) {
            cp = c, len = 1;
        } else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] <= 0x9F) {
            cp = (unsigned char)s[i + 1], len = 2;
        } else {
            continue;
        }
        sb_append(out, s + done, i - done);
        sb_printf(out, "\\u%04X", cp); /* as jansson writes them */
        i += len - 1;
        done = i + 1;
    }
    sb_append(out, s + done, n - done);
}

/* Whether `s` can be shown as a bare word: [A-Za-z0-9_]+. */
static bool
is_word(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Appends JSON value `v` as JSON text with no control character; a string
 * that is a bare word as that word when `bare_words`. */
static void
put_value(struct strbuf *out, const json_t *v, bool bare_words)
{
    if (bare_words && json_is_string(v) &&
        is_word(json_string_value(v), json_string_length(v))) {
        sb_append(out, json_string_value(v), json_string_length(v));
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text == NULL) {
        sb_puts(out, "?");
        return;
    }
    escape_controls(text, strlen(text), out);
    free(text);
}

void
event_quote(const char *s, size_t len, struct strbuf *out)
{
    struct strbuf clean = STRBUF_INIT;
    if (utf8_length(s, len) >= 0) {
        sb_append(&clean, s, len);
    } else {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (n <= len - i && utf8_length(s + i, n) == 1) {
                sb_append(&clean, s + i, n);
                i += n - 1;
            } else {
                sb_puts(&clean, "\xEF\xBF\xBD");
            }
        }
    }
    json_t *str = clean.oom ? NULL : json_stringn(sb_str(&clean), clean.len);
    if (str == NULL)
        sb_puts(out, "\"?\"");
    else
        put_value(out, str, false);
    json_decref(str);
    sb_free(&clean);
}

void
event_free(struct event *ev)
{
    json_decref(ev->root);
    ev->root = NULL;
}

/* A short, safe quote of a value for a reason sentence: JSON text, no
 * control character, cut at 40 bytes. */
static void
quote_value(struct strbuf *out, const json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text == NULL) {
        sb_puts(out, "?");
        return;
    }
    size_t n = strlen(text);
    if (n > 40) {
        /* cut on a UTF-8 boundary */
        n = 40;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
        escape_controls(text, n, out);
        sb_puts(out, "...");
    } else {
        escape_controls(text, n, out);
    }
    free(text);
}

/* Appends "<rule> (got <value>)", "nothing" for no value; returns -1. */
static int
refuse(struct strbuf *reason, const char *rule, const json_t *v)
{
    sb_printf(reason, "%s (got ", rule);
    if (v != NULL)
        quote_value(reason, v);
    else
        sb_puts(reason, "nothing");
    sb_puts(reason, ")");
    return -1;
}

static bool
take_uuid(const char *s, char out[37])
{
    if (s == NULL || strlen(s) != 36 || !is_uuid_text(s, 36))
        return false;
    uuid_lower(s, out);
    return true;
}

/* "1.0" → 1; -1 when not "<digits>[.<digits>]". */
static long
schema_major(const char *s)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    long major = strtol(s, &end, 10);
    if (*end == '\0')
        return major;
    if (*end != '.' || end[1] < '0' || end[1] > '9')
        return -1;
    for (end++; *end != '\0'; end++)
        if (*end < '0' || *end > '9')
            return -1;
    return major;
}

int
event_parse(struct event *ev, const char *body, size_t len,
            const char *message_id, struct strbuf *reason)
{
    json_error_t jerr;
    json_t *v;

    memset(ev, 0, sizeof *ev);
    /* the AMQP message_id identifies the event until the body does */
    take_uuid(message_id, ev->event_id);

    ev->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (ev->root == NULL) {
        sb_printf(reason, "body is not valid JSON (line %d, column %d)",
                  jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(ev->root)) {
        sb_puts(reason, "body is not a JSON object");
        return -1;
    }

    v = json_object_get(ev->root, "event_id");
    if (v == NULL || json_is_null(v)) {
        sb_puts(reason, "event_id is missing");
        return -1;
    }
    if (!take_uuid(json_string_value(v), ev->event_id)) {
        return refuse(reason, "event_id must be a UUID", v);
    }

    v = json_object_get(ev->root, "schema_version");
    if (v == NULL) {
        sb_puts(reason, "schema_version is missing");
        return -1;
    }
    long major = json_is_string(v) ? schema_major(json_string_value(v)) : -1;
    if (major != EVENT_SCHEMA_MAJOR) {
        sb_puts(reason, "unknown schema_version ");
        quote_value(reason, v);
        sb_printf(reason, " (this consumer reads %d.x)", EVENT_SCHEMA_MAJOR);
        return -1;
    }

    v = json_object_get(ev->root, "event_type");
    const char *type = json_string_value(v);
    if (type == NULL || type[0] == '\0' ||
        strlen(type) >= sizeof ev->event_type) {
        return refuse(reason, "event_type must be a non-empty string", v);
    }
    memcpy(ev->event_type, type, strlen(type) + 1);

    v = json_object_get(ev->root, "sequence");
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        return refuse(reason, "sequence must be an integer of at least 1", v);
    }
    ev->sequence = (int64_t)json_integer_value(v);

    /* customer_id: a UUID, or absent/null for consumer and key events,
     * which form one sequence of their own */
    v = json_object_get(ev->root, "customer_id");
    if (v != NULL && !json_is_null(v) &&
        !take_uuid(json_string_value(v), ev->customer_key)) {
        return refuse(reason, "customer_id must be a UUID or null", v);
    }
    return 0;
}

/* Appends ` name=<value>` when data has it: the name and the value as bare
 * words when they are (enum-like values read better so), else as JSON,
 * never with a control character. */
static void
field(struct strbuf *out, const json_t *data, const char *name)
{
    const json_t *v = json_object_get(data, name);
    if (v == NULL)
        return;
    json_t *key = json_string(name);
    sb_puts(out, " ");
    if (key != NULL)
        put_value(out, key, true);
    else
        sb_puts(out, "?");
    json_decref(key);
    sb_puts(out, "=");
    put_value(out, v, true);
}

void
event_describe(const struct event *ev, struct strbuf *out)
{
    const json_t *data = json_object_get(ev->root, "data");

    /* event_type is the message's own text: a word, or quoted */
    json_t *type = json_string(ev->event_type);
    if (type != NULL)
        put_value(out, type, true);
    else
        sb_puts(out, "?");
    json_decref(type);
    sb_printf(out, " customer=%s seq=%lld event=%s",
              ev->customer_key[0] ? ev->customer_key : "-",
              (long long)ev->sequence, ev->event_id);
    if (!json_is_object(data))
        return;

    if (strcmp(ev->event_type, "customer_creation") == 0 ||
        strcmp(ev->event_type, "customer_deletion") == 0) {
        field(out, data, "name");
        field(out, data, "status");
        field(out, data, "tags");
    } else if (strcmp(ev->event_type, "customer_status_change") == 0) {
        field(out, data, "previous_status");
        field(out, data, "status");
    } else if (strcmp(ev->event_type, "customer_tag_change") == 0) {
        field(out, data, "operation");
        field(out, data, "tags");
    } else {
        /* consumer and key events, and types newer than this program:
         * every field but the ids already shown */
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)data, key, v)
        {
            if (strcmp(key, "customer_id") != 0)
                field(out, data, key);
        }
    }
}

void
event_raw_line(const char *body, size_t len, size_t max, struct strbuf *out)
{
    size_t n = len > max ? max : len;
    bool text = utf8_length(body, len) >= 0;
    for (size_t i = 0; text && i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
            text = false;
    }
    json_error_t jerr;
    json_t *probe = text ? json_loadb(body, len, 0, &jerr) : NULL;
    if (probe != NULL) {
        json_decref(probe);
        /* valid JSON: CR, LF and tab can only be whitespace between
         * tokens (a space does as well); DEL and C1 only raw characters
         * inside strings (a \u escape means the same) */
        size_t cut = n;
        while (cut > 0 && cut < len &&
               ((unsigned char)body[cut] & 0xC0) == 0x80)
            cut--;
        struct strbuf flat = STRBUF_INIT;
        for (size_t i = 0; i < cut; i++) {
            char c = body[i];
            sb_append(&flat, (c == '\n' || c == '\r' || c == '\t') ? " " : &c,
                      1);
        }
        escape_controls(sb_str(&flat), flat.len, out);
        sb_free(&flat);
        n = cut;
    } else {
        /* anything else: a JSON string literal of the bytes; when they are
         * not valid UTF-8, every byte that is not shows as U+FFFD */
        size_t cut = n;
        while (cut > 0 && cut < len &&
               ((unsigned char)body[cut] & 0xC0) == 0x80)
            cut--;
        event_quote(body, cut, out);
        n = cut;
    }
    if (len > n)
        sb_puts(out, "...");
}
