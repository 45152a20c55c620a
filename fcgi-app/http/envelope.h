/*
 * fcgi-app/http/envelope.h — the only writer of HTTP responses.
 *
 * Every response, success or error, is the contract's envelope:
 *   {"data": {...}, "detail": {"status_code": "201", "status_name":
 *    "CREATED", "status_description": "Success"}}
 * with Content-Type application/json and X-Request-ID.  On error `data` is
 * {} and the description is the app_err's sentence.
 *
 * envelope_render() is pure (unit-tested); envelope_send() writes the
 * rendered bytes to the FastCGI stream.
 */
#ifndef FI_ENVELOPE_H
#define FI_ENVELOPE_H

#include "common/strbuf.h"

#include <fcgiapp.h>
#include <jansson.h>

struct envelope {
    int status;             /* HTTP status */
    json_t *data;           /* borrowed; NULL = {}; ignored for >= 400 */
    const char *message;    /* error sentence; ignored for < 400 */
    const char *request_id; /* borrowed */
    const char *allow;      /* Allow header value for 405, or NULL */
    /* A stored answer replayed for an Idempotency-Key (docs/API.md §6):
     * when set, these exact body bytes (borrowed, NUL-terminated) are sent
     * with `status` instead of rendering data/message, and the response
     * carries "Idempotent-Replayed: true". */
    const char *stored_body;
};

/* Appends the CGI headers and the JSON body to `out`.  Returns the number of
 * body bytes (for the log), -1 when memory ran out.  The body is the last
 * that many bytes of `out`. */
long envelope_render(const struct envelope *env, struct strbuf *out);

/* Writes what envelope_render appended to `rendered` to `stream`. */
void envelope_write(const struct strbuf *rendered, FCGX_Stream *stream);

/* Renders and writes `env` to `stream`.  Returns the body length or -1. */
long envelope_send(const struct envelope *env, FCGX_Stream *stream);

/* The one exception to the envelope: a 200 text body of `content_type`
 * (GET /metrics).  Returns the body length or -1. */
long envelope_send_text(const char *content_type, const char *body, size_t len,
                        const char *request_id, FCGX_Stream *stream);

#endif
