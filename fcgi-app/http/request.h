/*
 * fcgi-app/http/request.h — one FastCGI request as the pipeline sees it.
 *
 * Strings marked "borrowed" point into libfcgi's parameter block and stay
 * valid until the next FCGX_Accept_r/FCGX_Finish_r; the body and request id
 * are copies owned by the request (request_free releases them).
 */
#ifndef FI_REQUEST_H
#define FI_REQUEST_H

#include "../core/app_err.h"

#include <fcgiapp.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Hard cap on a request body; nginx enforces the same 64 KiB first. */
#define REQUEST_MAX_BODY 65536 /* 64 KiB */

struct request {
    FCGX_Request *fcgx;   /* borrowed */
    const char *method;   /* borrowed; "" when absent */
    const char *path;     /* borrowed; DOCUMENT_URI without query */
    const char *query;    /* borrowed; "" when absent */
    const char *api_key;  /* borrowed; NULL when absent; never logged */
    char request_id[129]; /* nginx's id, the client's valid one, or new */
    char *body;           /* owned; NUL-terminated; NULL when empty */
    size_t body_len;
    long long started_us; /* mono_us() when it arrived */
};

/* Reads params and the body (up to REQUEST_MAX_BODY; more is a 413 in
 * `err`).  The request is usable for the envelope even on error. */
int request_read(struct request *r, FCGX_Request *fcgx, struct app_err *err)
    __attribute__((warn_unused_result));
void request_free(struct request *r);

/*
 * The request's input as one object (owned; json_decref), following the
 * contract: GET reads the query string, or the JSON body when the query is
 * empty; DELETE reads the body, or the query when there is no body;
 * POST/PATCH need a JSON object body.  *from_query tells the validator the
 * values are text.  400 for a body that is not a JSON object, 422 for a
 * malformed query string.
 */
int request_input(const struct request *r, json_t **input, bool *from_query,
                  struct app_err *err) __attribute__((warn_unused_result));

/* Parses a query string into an object: a name given once maps to a string,
 * a repeated name to an array of strings.  Pure; exposed for unit tests. */
int query_parse(const char *query, json_t **out, struct app_err *err)
    __attribute__((warn_unused_result));

/* Parses a JSON body that must be an object (400 otherwise).  Valid JSON
 * that jansson cannot hold — a NUL in an object key, a number beyond a
 * 64-bit integer or a double — is 422 naming each such key and value
 * (docs/API.md §2.3); the body is still 400 if anything else is wrong. */
int body_parse(const char *body, size_t len, json_t **out, struct app_err *err)
    __attribute__((warn_unused_result));

#endif
