/*
 * consumer/event.c — see event.h.
 */
#include "event.h"

#include "../fcgi-app/core/text.h"

#include <stdlib.h>
#include <string.h>

void
event_free(struct event *ev)
{
    json_decref(ev->root);
    ev->root = NULL;
}

/* A short, safe quote of a value for a reason sentence. */
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
        sb_append(out, text, n);
        sb_puts(out, "...");
    } else {
        sb_append(out, text, n);
    }
    free(text);
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
        sb_puts(reason, "event_id must be a UUID (got ");
        quote_value(reason, v);
        sb_puts(reason, ")");
        return -1;
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
        sb_puts(reason, "event_type must be a non-empty string (got ");
        if (v != NULL)
            quote_value(reason, v);
        else
            sb_puts(reason, "nothing");
        sb_puts(reason, ")");
        return -1;
    }
    memcpy(ev->event_type, type, strlen(type) + 1);

    v = json_object_get(ev->root, "sequence");
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        sb_puts(reason, "sequence must be an integer of at least 1 (got ");
        if (v != NULL)
            quote_value(reason, v);
        else
            sb_puts(reason, "nothing");
        sb_puts(reason, ")");
        return -1;
    }
    ev->sequence = (int64_t)json_integer_value(v);

    /* customer_id: a UUID, or absent/null for consumer and key events,
     * which form one sequence of their own */
    v = json_object_get(ev->root, "customer_id");
    if (v != NULL && !json_is_null(v) &&
        !take_uuid(json_string_value(v), ev->customer_key)) {
        sb_puts(reason, "customer_id must be a UUID or null (got ");
        quote_value(reason, v);
        sb_puts(reason, ")");
        return -1;
    }
    return 0;
}

/* Appends ` name=<JSON value>` when data has it. */
static void
field(struct strbuf *out, const json_t *data, const char *name)
{
    const json_t *v = json_object_get(data, name);
    if (v == NULL)
        return;
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text == NULL)
        return;
    sb_printf(out, " %s=", name);
    /* bare words read better for enum-like values */
    size_t n = strlen(text);
    bool bare = json_is_string(v) && n > 2;
    for (size_t i = 1; bare && i + 1 < n; i++)
        if (!((text[i] >= 'A' && text[i] <= 'Z') ||
              (text[i] >= 'a' && text[i] <= 'z') ||
              (text[i] >= '0' && text[i] <= '9') || text[i] == '_'))
            bare = false;
    if (bare)
        sb_append(out, text + 1, n - 2);
    else
        sb_append(out, text, n);
    free(text);
}

void
event_describe(const struct event *ev, struct strbuf *out)
{
    const json_t *data = json_object_get(ev->root, "data");

    sb_printf(out, "%s customer=%s seq=%lld event=%s", ev->event_type,
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
        /* valid JSON: CR/LF can only be whitespace between tokens */
        for (size_t i = 0; i < n; i++) {
            char c = body[i];
            sb_append(out, (c == '\n' || c == '\r') ? " " : &body[i], 1);
        }
    } else {
        /* anything else: a JSON string literal of the bytes; when they are
         * not valid UTF-8, every non-ASCII byte shows as U+FFFD */
        size_t cut = n;
        while (cut > 0 && cut < len &&
               ((unsigned char)body[cut] & 0xC0) == 0x80)
            cut--;
        struct strbuf clean = STRBUF_INIT;
        if (utf8_length(body, cut) >= 0) {
            sb_append(&clean, body, cut);
        } else {
            for (size_t i = 0; i < cut; i++) {
                if ((unsigned char)body[i] < 0x80)
                    sb_append(&clean, &body[i], 1);
                else
                    sb_puts(&clean, "\xEF\xBF\xBD");
            }
        }
        json_t *s = json_stringn(sb_str(&clean), clean.len);
        char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        sb_puts(out, q ? q : "\"?\"");
        free(q);
        json_decref(s);
        sb_free(&clean);
        n = cut;
    }
    if (len > n)
        sb_puts(out, "...");
}
