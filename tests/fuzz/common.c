/*
 * tests/fuzz/common.c — see common.h.
 */
#include "common.h"

#include "../../fcgi-app/http/router.h"
#include "../../fcgi-app/http/validate.h"

#include <string.h>

void
fuzz_check_envelope(const struct envelope *env)
{
    struct strbuf out = STRBUF_INIT;
    char want[32];
    json_error_t jerr;

    long n = envelope_render(env, &out);
    FUZZ_CHECK(n >= 0 && !out.oom, "render failed for status %d", env->status);
    const char *raw = sb_str(&out);
    snprintf(want, sizeof want, "Status: %d ", env->status);
    FUZZ_CHECK(strncmp(raw, want, strlen(want)) == 0,
               "rendered \"%.40s\" for status %d", raw, env->status);
    const char *end = strstr(raw, "\r\n\r\n");
    FUZZ_CHECK(end != NULL, "no end of headers");
    for (const char *p = raw; p < end; p++) {
        bool crlf = (p[0] == '\r' && p[1] == '\n') ||
                    (p[0] == '\n' && p > raw && p[-1] == '\r');
        FUZZ_CHECK((*p != '\r' && *p != '\n') || crlf,
                   "stray CR or LF in a header line");
    }
    const char *body = end + 4;
    FUZZ_CHECK((size_t)n == out.len - (size_t)(body - raw),
               "return %ld is not the body length", n);

    json_t *j = json_loadb(body, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(json_is_object(j), "body is not a JSON object (%s): %s",
               jerr.text, body);
    json_t *data = json_object_get(j, "data");
    json_t *detail = json_object_get(j, "detail");
    FUZZ_CHECK(json_object_size(j) == 2 && json_is_object(data) &&
                   json_is_object(detail),
               "not the envelope: %s", body);
    snprintf(want, sizeof want, "%d", env->status);
    const char *code =
        json_string_value(json_object_get(detail, "status_code"));
    const char *name =
        json_string_value(json_object_get(detail, "status_name"));
    const char *desc =
        json_string_value(json_object_get(detail, "status_description"));
    FUZZ_CHECK(code != NULL && strcmp(code, want) == 0,
               "status_code %s for status %d", code ? code : "(none)",
               env->status);
    FUZZ_CHECK(name != NULL && name[0] != '\0', "no status_name");
    FUZZ_CHECK(desc != NULL && desc[0] != '\0', "no status_description");
    if (env->status >= 400)
        FUZZ_CHECK(json_object_size(data) == 0, "an error with data: %s", body);
    else
        FUZZ_CHECK(strcmp(desc, "Success") == 0, "success described \"%s\"",
                   desc);
    json_decref(j);
    sb_free(&out);
}

bool
fuzz_has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return true;
        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9F)
            return true;
    }
    return false;
}

void
fuzz_check_error(const struct app_err *err)
{
    FUZZ_CHECK(err->msg != NULL && err->msg[0] != '\0', "no sentence");
    struct envelope env = {
        .status = err->status, .message = err->msg, .request_id = "fuzz"};
    fuzz_check_envelope(&env);
}

static bool
has_spec(const struct field_spec *specs, const char *name)
{
    for (; specs != NULL && specs->name != NULL; specs++)
        if (strcmp(specs->name, name) == 0)
            return true;
    return false;
}

void
fuzz_validate_routes(const json_t *in, bool from_query, bool only_spec_fields)
{
    for (size_t i = 0; i < routes_count; i++) {
        const struct route *rt = &routes[i];
        struct app_err verr = APP_ERR_INIT;
        json_t *valid = NULL;
        if (rt->flags & ROUTE_NO_INPUT)
            continue;
        if (validate_input(in, rt->fields, from_query, &valid, &verr) < 0) {
            FUZZ_CHECK(valid == NULL && verr.status == 422, "%s %s: status %d",
                       rt->method, rt->path, verr.status);
            fuzz_check_error(&verr);
        } else {
            FUZZ_CHECK(json_is_object(valid), "%s %s: no object", rt->method,
                       rt->path);
            if (only_spec_fields) {
                FUZZ_CHECK(verr.status == 0, "%s %s: accepted with an error",
                           rt->method, rt->path);
                const char *key;
                json_t *v;
                json_object_foreach(valid, key, v)
                {
                    FUZZ_CHECK(has_spec(rt->fields, key), "%s %s: field %s",
                               rt->method, rt->path, key);
                }
            }
            struct envelope env = {
                .status = 200, .data = valid, .request_id = "fuzz"};
            fuzz_check_envelope(&env);
        }
        json_decref(valid);
        err_clear(&verr);
    }
}
