/*
 * fcgi-app/http/envelope.c — see envelope.h.
 */
#include "envelope.h"
#include "../core/http_status.h"
#include "common/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Written when even building the error envelope fails (out of memory). */
static const char oom_body[] =
    "{\"data\":{},\"detail\":{\"status_code\":\"500\",\"status_name\":"
    "\"INTERNAL_SERVER_ERROR\",\"status_description\":\"The server ran out "
    "of memory while answering; please retry\"}}";

/* A copy of `s` in which every byte that does not belong to valid UTF-8
 * is U+FFFD (owned; free()), or NULL on out of memory.  jansson refuses
 * text that is not UTF-8, and a sentence that echoes input (a path of
 * arbitrary bytes) must still reach the client with its own status, not
 * turn the answer into a 500. */
static char *
utf8_repaired(const char *s)
{
    struct strbuf sb = STRBUF_INIT;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0xC0)
            len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (len <= n - i && utf8_length(s + i, len) == 1) {
            sb_append(&sb, s + i, len);
            i += len;
        } else {
            sb_puts(&sb, "\xEF\xBF\xBD");
            i++;
        }
    }
    return sb_steal(&sb); /* NULL on out of memory */
}

static char *
render_body(const struct envelope *env)
{
    int status = http_status_known(env->status) ? env->status : 500;
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *desc = status < 400 ? "Success"
                       : env->message && env->message[0]
                           ? env->message
                           : http_status_reason(status);

    char *repaired = NULL;
    if (utf8_length(desc, strlen(desc)) < 0) {
        repaired = utf8_repaired(desc);
        if (repaired == NULL)
            return NULL;
        desc = repaired;
    }

    json_t *data =
        (status < 400 && env->data) ? json_incref(env->data) : json_object();
    json_t *root = json_pack(
        "{s:o, s:{s:s, s:s, s:s}}", "data", data, "detail", "status_code", code,
        "status_name", http_status_name(status), "status_description", desc);
    free(repaired);
    if (root == NULL)
        return NULL;
    char *body = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(root);
    return body;
}

long
envelope_render(const struct envelope *env, struct strbuf *out)
{
    int status = http_status_known(env->status) ? env->status : 500;
    char *body = env->stored_body ? NULL : render_body(env);
    const char *text = env->stored_body ? env->stored_body
                       : body           ? body
                                        : oom_body;
    if (text == oom_body)
        status = 500;
    size_t len = strlen(text);

    sb_printf(out, "Status: %d %s\r\nContent-Type: application/json\r\n",
              status, http_status_reason(status));
    if (env->request_id && env->request_id[0])
        sb_printf(out, "X-Request-ID: %s\r\n", env->request_id);
    if (env->stored_body)
        sb_puts(out, "Idempotent-Replayed: true\r\n");
    if (env->allow && env->allow[0])
        sb_printf(out, "Allow: %s\r\n", env->allow);
    sb_printf(out, "Content-Length: %zu\r\n\r\n", len);
    sb_append(out, text, len);
    free(body);
    return out->oom ? -1 : (long)len;
}

long
envelope_send_text(const char *content_type, const char *body, size_t len,
                   const char *request_id, FCGX_Stream *stream)
{
    struct strbuf sb = STRBUF_INIT;
    sb_printf(&sb, "Status: 200 OK\r\nContent-Type: %s\r\n", content_type);
    if (request_id && request_id[0])
        sb_printf(&sb, "X-Request-ID: %s\r\n", request_id);
    sb_printf(&sb, "Content-Length: %zu\r\n\r\n", len);
    sb_append(&sb, body, len);
    long n = sb.oom ? -1 : (long)len;
    if (n >= 0 && sb.len <= (size_t)__INT_MAX__)
        FCGX_PutStr(sb_str(&sb), (int)sb.len, stream);
    sb_free(&sb);
    return n;
}

void
envelope_write(const struct strbuf *rendered, FCGX_Stream *stream)
{
    if (!rendered->oom && rendered->len <= (size_t)__INT_MAX__)
        FCGX_PutStr(sb_str(rendered), (int)rendered->len, stream);
}

long
envelope_send(const struct envelope *env, FCGX_Stream *stream)
{
    struct strbuf sb = STRBUF_INIT;
    long n = envelope_render(env, &sb);
    if (n >= 0)
        envelope_write(&sb, stream);
    sb_free(&sb);
    return n;
}
