/*
 * fcgi-app/http/request.c — FastCGI params, the body, and the input object.
 */
#include "request.h"
#include "common/strbuf.h"
#include "common/clock.h"
#include "common/text.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
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
    r->started_us = mono_us();
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

/*
 * Valid JSON that jansson cannot hold (docs/API.md §2.3): an object key
 * with a NUL character, a number beyond a 64-bit integer or a double.
 * Both are 422 naming the field, not 400.  jansson stops at the first, so
 * body_scan walks the tokens of the text, tracking the path of each value,
 * reports every such key and number (err_add, 422), and writes a copy in
 * which they are made harmless with the same length (a key's \u0000
 * becomes \u0001, a number becomes 0 and spaces), so that jansson can
 * then tell whether the rest of the body is valid JSON, with the same line
 * and column in its message.
 */
struct scan_frame {
    bool is_object;
    size_t index; /* arrays: the element being read */
    char *key;    /* objects: the current key as shown in paths (owned) */
};

struct body_scan {
    struct scan_frame *frames; /* owned; frames[0] is the outermost */
    size_t depth, cap;
    struct strbuf fixed; /* the repaired copy */
    struct app_err *err;
};

/* A name in a path or a sentence: a plain name as is, anything else as a
 * JSON string cut at 64 code points. */
static void
append_name(struct strbuf *sb, const char *s, size_t n)
{
    bool plain = n > 0 && n <= 64;
    for (size_t i = 0; plain && i < n; i++) {
        char c = s[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_' || c == '-';
    }
    if (plain) {
        sb_append(sb, s, n);
        return;
    }
    json_t *str = json_stringn(s, n);
    char *text = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
    json_decref(str);
    if (text == NULL) {
        sb_puts(sb, "\"?\"");
        return;
    }
    size_t len = strlen(text), cut = 0;
    for (long cps = 0; cut < len && cps < 64; cps++) {
        cut++;
        while (cut < len && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut++;
    }
    sb_append(sb, text, cut);
    if (cut < len)
        sb_puts(sb, "...\"");
    free(text);
}

/* The path of the value being read ("tags.x", "tag_values[2]"), or of the
 * object holding a key when `of_key` ("" for the body itself). */
static void
scan_path(const struct body_scan *b, bool of_key, struct strbuf *sb)
{
    size_t n = of_key && b->depth > 0 ? b->depth - 1 : b->depth;
    for (size_t i = 0; i < n; i++) {
        const struct scan_frame *f = &b->frames[i];
        if (!f->is_object)
            sb_printf(sb, "[%zu]", f->index);
        else if (f->key != NULL)
            sb_printf(sb, "%s%s", i > 0 ? "." : "", f->key);
    }
}

static int
scan_push(struct body_scan *b, bool is_object)
{
    if (b->depth == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct scan_frame *f = realloc(b->frames, cap * sizeof *f);
        if (f == NULL)
            return -1;
        b->frames = f;
        b->cap = cap;
    }
    b->frames[b->depth++] = (struct scan_frame){.is_object = is_object};
    return 0;
}

static void
scan_pop(struct body_scan *b)
{
    if (b->depth > 0)
        free(b->frames[--b->depth].key);
}

/* A string token (quotes included) that is an object key. */
static void
scan_key(struct body_scan *b, const char *tok, size_t n)
{
    struct scan_frame *f = &b->frames[b->depth - 1];
    json_t *v = json_loadb(tok, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    const char *k = json_string_value(v);
    size_t klen = json_string_length(v);
    size_t at = b->fixed.len;

    sb_append(&b->fixed, tok, n);
    free(f->key);
    f->key = NULL;
    if (k == NULL) { /* not a valid string: jansson says so later */
        json_decref(v);
        return;
    }
    struct strbuf name = STRBUF_INIT;
    append_name(&name, k, klen);
    f->key = sb_steal(&name);
    if (memchr(k, '\0', klen) != NULL && !b->fixed.oom) {
        struct strbuf where = STRBUF_INIT;
        scan_path(b, true, &where);
        if (where.len == 0)
            err_add(b->err, 422,
                    "Field names must not contain NUL characters (got %s)",
                    f->key ? f->key : "?");
        else
            err_add(b->err, 422,
                    "%s keys must not contain NUL characters (got %s)",
                    sb_str(&where), f->key ? f->key : "?");
        sb_free(&where);
        /* \u0000 -> \u0001 in the copy, escape by escape */
        char *t = b->fixed.buf + at;
        for (size_t i = 1; i + 1 < n; i++) {
            if (t[i] != '\\')
                continue;
            if (t[i + 1] == 'u' && i + 5 < n &&
                memcmp(t + i + 2, "0000", 4) == 0)
                t[i + 5] = '1';
            i += t[i + 1] == 'u' ? 5 : 1;
        }
    }
    json_decref(v);
}

/* Whether n bytes are one JSON number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static bool
is_json_number(const char *s, size_t n, bool *integer)
{
    size_t i = 0;
    *integer = true;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
        *integer = false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
        *integer = false;
    }
    return i == n;
}

/* A number token: out of range (as jansson decides) → reported and
 * replaced. */
static void
scan_number(struct body_scan *b, const char *tok, size_t n)
{
    bool integer;
    char *text = is_json_number(tok, n, &integer) ? strndup(tok, n) : NULL;
    bool out = false;
    if (text != NULL) {
        errno = 0;
        if (integer)
            (void)strtoll(text, NULL, 10);
        else
            out = isinf(strtod(text, NULL));
        out = errno == ERANGE && (integer || out);
    }
    if (!out) {
        sb_append(&b->fixed, tok, n);
        free(text);
        return;
    }
    struct strbuf where = STRBUF_INIT, got = STRBUF_INIT;
    scan_path(b, false, &where);
    sb_append(&got, text, n > 64 ? 64 : n);
    if (n > 64)
        sb_puts(&got, "...");
    if (integer)
        err_add(b->err, 422,
                "%s is out of range (got %s): an integer must be between "
                "%lld and %lld",
                where.len ? sb_str(&where) : "A value", sb_str(&got),
                (long long)INT64_MIN, (long long)INT64_MAX);
    else
        err_add(b->err, 422,
                "%s is out of range (got %s): a number must be below "
                "1.8e308 in magnitude",
                where.len ? sb_str(&where) : "A value", sb_str(&got));
    sb_free(&where);
    sb_free(&got);
    sb_append(&b->fixed, "0", 1);
    for (size_t i = 1; i < n; i++)
        sb_append(&b->fixed, " ", 1);
    free(text);
}

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Fills b->fixed and b->err from the text; -1 when memory ran out. */
static int
body_scan_run(struct body_scan *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !b->fixed.oom) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"')
                j += s[j] == '\\' ? 2 : 1;
            if (j >= n) { /* unterminated: jansson reports it */
                sb_append(&b->fixed, s + i, n - i);
                break;
            }
            size_t k = j + 1;
            while (k < n && is_ws(s[k]))
                k++;
            if (k < n && s[k] == ':' && b->depth > 0 &&
                b->frames[b->depth - 1].is_object)
                scan_key(b, s + i, j + 1 - i);
            else
                sb_append(&b->fixed, s + i, j + 1 - i);
            i = j + 1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i + 1;
            while (j < n && strchr("0123456789+-.eE", s[j]) != NULL &&
                   s[j] != '\0')
                j++;
            scan_number(b, s + i, j - i);
            i = j;
        } else {
            if ((c == '{' || c == '[') && scan_push(b, c == '{') < 0)
                return -1;
            if (c == '}' || c == ']')
                scan_pop(b);
            if (c == ',' && b->depth > 0 && !b->frames[b->depth - 1].is_object)
                b->frames[b->depth - 1].index++;
            sb_append(&b->fixed, &c, 1);
            i++;
        }
    }
    return b->fixed.oom ? -1 : 0;
}

/* After jansson refused `body` for a NUL in a key or a number out of
 * range: 0 with the 422 in `err` when that is all that is wrong with it
 * (and it is an object); -1 when it is not JSON after all (jerr then holds
 * jansson's error about the rest) or memory ran out. */
static int
body_explain(const char *body, size_t len, struct app_err *err,
             json_error_t *jerr)
{
    struct app_err found = APP_ERR_INIT;
    struct body_scan b = {.fixed = STRBUF_INIT, .err = &found};
    int rc = -1;
    if (body_scan_run(&b, body, len) < 0 || found.status == 0)
        goto out;
    json_t *v = json_loadb(
        sb_str(&b.fixed), b.fixed.len,
        JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, jerr);
    if (v != NULL && json_is_object(v)) {
        err_clear(err);
        *err = found;
        found = (struct app_err)APP_ERR_INIT;
        rc = 0;
    } else if (v != NULL) {
        jerr->text[0] = '\0'; /* valid JSON, not an object */
    }
    json_decref(v);
out:
    while (b.depth > 0)
        scan_pop(&b);
    free(b.frames);
    sb_free(&b.fixed);
    err_clear(&found);
    return rc;
}

int
body_parse(const char *body, size_t len, json_t **out, struct app_err *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(
        body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
        &jerr);
    *out = NULL;
    if (v == NULL && (json_error_code(&jerr) == json_error_null_byte_in_key ||
                      json_error_code(&jerr) == json_error_numeric_overflow)) {
        if (body_explain(body, len, err, &jerr) == 0)
            return -1;
        if (jerr.text[0] == '\0') {
            err_set(err, 400, "Request body must be a JSON object");
            return -1;
        }
    }
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
