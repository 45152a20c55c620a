/*
 * fcgi-app/http/request.c — FastCGI params, the body, and the input object.
 */
#include "request.h"
#include "../core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
param(FCGX_Request *fcgx, const char *name)
{
    const char *v = FCGX_GetParam(name, fcgx->envp);
    return v ? v : "";
}

static void
pick_request_id(struct request *r)
{
    /* nginx passes its mapped id (the client's valid X-Request-ID or its own
     * $request_id); a direct client gets the same rule here. */
    const char *candidates[] = {param(r->fcgx, "REQUEST_ID"),
                                param(r->fcgx, "HTTP_X_REQUEST_ID")};
    for (size_t i = 0; i < 2; i++) {
        if (is_valid_request_id(candidates[i])) {
            snprintf(r->request_id, sizeof r->request_id, "%s", candidates[i]);
            return;
        }
    }
    char uuid[37];
    uuid_new(uuid);
    /* 32 hex characters, the shape of nginx's $request_id */
    size_t o = 0;
    for (size_t i = 0; uuid[i]; i++)
        if (uuid[i] != '-')
            r->request_id[o++] = uuid[i];
    r->request_id[o] = '\0';
}

int
request_read(struct request *r, FCGX_Request *fcgx, struct app_err *err)
{
    memset(r, 0, sizeof *r);
    clock_gettime(CLOCK_MONOTONIC, &r->started);
    r->fcgx = fcgx;
    r->method = param(fcgx, "REQUEST_METHOD");
    r->path = param(fcgx, "DOCUMENT_URI");
    if (r->path[0] == '\0') {
        r->path = param(fcgx, "SCRIPT_NAME");
    }
    r->query = param(fcgx, "QUERY_STRING");
    r->api_key = FCGX_GetParam("HTTP_X_API_KEY", fcgx->envp);
    pick_request_id(r);

    const char *cl = param(fcgx, "CONTENT_LENGTH");
    char *end;
    unsigned long len = cl[0] ? strtoul(cl, &end, 10) : 0;
    if (cl[0] && *end != '\0') {
        err_set(err, 400, "Content-Length is not a number");
        return -1;
    }
    if (len == 0)
        return 0;
    if (len > REQUEST_MAX_BODY) {
        err_set(err, 413, "Request body exceeds %d bytes", REQUEST_MAX_BODY);
        return -1;
    }
    r->body = malloc(len + 1);
    if (r->body == NULL) {
        err_set(err, 500, "Out of memory reading the request body");
        return -1;
    }
    int got = FCGX_GetStr(r->body, (int)len, fcgx->in);
    if (got < 0 || (unsigned long)got != len) {
        err_set(err, 400, "Request body ended before Content-Length bytes");
        return -1;
    }
    r->body[len] = '\0';
    r->body_len = len;
    return 0;
}

void
request_free(struct request *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

int
body_parse(const char *body, size_t len, json_t **out, struct app_err *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(
        body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
        &jerr);
    *out = NULL;
    if (v == NULL) {
        if (strstr(jerr.text, "duplicate object key") != NULL)
            err_set(err, 400,
                    "Request body has a duplicate key in a JSON "
                    "object (line %d, column %d)",
                    jerr.line, jerr.column);
        else
            err_set(err, 400,
                    "Request body is not valid JSON (line %d, "
                    "column %d)",
                    jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        err_set(err, 400, "Request body must be a JSON object");
        return -1;
    }
    *out = v;
    return 0;
}

static int
query_add(json_t *obj, const char *name, json_t *value)
{
    json_t *prev = json_object_get(obj, name);
    if (prev == NULL)
        return json_object_set_new(obj, name, value);
    if (json_is_array(prev))
        return json_array_append_new(prev, value);
    json_t *arr = json_array();
    json_array_append(arr, prev);
    json_array_append_new(arr, value);
    return json_object_set_new(obj, name, arr);
}

int
query_parse(const char *query, json_t **out, struct app_err *err)
{
    json_t *obj = json_object();
    const char *p = query;
    *out = NULL;
    while (*p != '\0') {
        size_t plen = strcspn(p, "&");
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        size_t nlen = 0, vlen = 0;
        char *name = NULL, *value = NULL;
        if (plen == 0)
            goto next;
        name = percent_decode(p, klen, &nlen);
        value = eq ? percent_decode(eq + 1, plen - klen - 1, &vlen)
                   : percent_decode("", 0, &vlen);
        if (name == NULL || value == NULL) {
            err_set(err, 422, "Query string has a malformed %%-escape");
            goto fail;
        }
        if (utf8_length(name, nlen) < 0 || utf8_length(value, vlen) < 0) {
            err_set(err, 422, "Query string is not valid UTF-8");
            goto fail;
        }
        if (memchr(name, '\0', nlen) != NULL) {
            err_set(err, 422,
                    "Query parameter names must not contain NUL "
                    "characters");
            goto fail;
        }
        query_add(obj, name, json_stringn(value, vlen));
        free(name);
        free(value);
    next:
        p += plen;
        if (*p == '&')
            p++;
        continue;
    fail:
        free(name);
        free(value);
        json_decref(obj);
        return -1;
    }
    *out = obj;
    return 0;
}

static bool
method_is(const struct request *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

int
request_input(const struct request *r, json_t **input, bool *from_query,
              struct app_err *err)
{
    bool has_body = r->body_len > 0;
    bool has_query = r->query[0] != '\0';
    *from_query = false;
    *input = NULL;

    if (method_is(r, "GET") || method_is(r, "HEAD")) {
        if (has_query) {
            *from_query = true;
            return query_parse(r->query, input, err);
        }
    } else if (method_is(r, "DELETE")) {
        if (!has_body && has_query) {
            *from_query = true;
            return query_parse(r->query, input, err);
        }
    } else if (!has_body) {
        err_set(err, 400, "Request body is empty; expected a JSON object");
        return -1;
    }
    if (!has_body) {
        *input = json_object();
        return 0;
    }
    return body_parse(r->body, r->body_len, input, err);
}
