/*
 * tests/fuzz/fuzz_router.c — libFuzzer target: the route lookup and the
 * 404/405 answer for a method and a path of arbitrary bytes.
 *
 * Input: the first byte picks the method (one of the HTTP methods below,
 * or — from 0x80 — the bytes up to the first '\n' are the method); the
 * rest, up to its first NUL, is the path (DOCUMENT_URI is a C string, and
 * nginx hands over whatever bytes the client's %-escapes decode to).
 *
 * Checks: FOUND names a route with exactly that method and path; a lookup
 * that fails is 405 exactly when some route has the path (router_path_index)
 * and then Allow lists only methods of that path; the 404/405 sentence
 * renders to an envelope with that status (never the 500 fallback), whose
 * body is valid JSON; the sentence shows no byte that is not UTF-8 text.
 */
#include "common.h"

#include "common/text.h"
#include "http/router.h"

#include <string.h>

static const char *const methods[] = {
    "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "get", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *method = NULL, *path = NULL;
    const struct route *route = NULL;
    struct strbuf allow = STRBUF_INIT;
    struct app_err err = APP_ERR_INIT;

    if (size == 0 || size > 4096)
        return 0;
    size_t rest = 1;
    if (data[0] < 0x80) {
        method = strdup(methods[data[0] % (sizeof methods / sizeof *methods)]);
    } else {
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);
        size_t mlen = nl ? (size_t)(nl - data - 1) : size - 1;
        method = strndup((const char *)data + 1, mlen);
        rest = nl ? (size_t)(nl - data) + 1 : size;
    }
    path = strndup((const char *)data + rest, size - rest);
    FUZZ_CHECK(method != NULL && path != NULL, "out of memory");

    enum router_result res =
        router_match(routes, routes_count, method, path, &route, &allow);
    int index = router_path_index(routes, routes_count, path);
    if (res == ROUTER_FOUND) {
        FUZZ_CHECK(route != NULL && strcmp(route->method, method) == 0 &&
                       strcmp(route->path, path) == 0,
                   "found the wrong route");
        FUZZ_CHECK(index >= 0, "found, but no path index");
        goto out;
    }
    FUZZ_CHECK(route == NULL, "a route with a failed lookup");
    FUZZ_CHECK((res == ROUTER_BAD_METHOD) == (index >= 0),
               "405 and the path index disagree");
    if (res == ROUTER_BAD_METHOD) {
        /* Allow: "A, B": each one a method of this path */
        char *list = strdup(sb_str(&allow));
        FUZZ_CHECK(list != NULL && list[0] != '\0', "empty Allow");
        for (char *save = NULL, *m = strtok_r(list, ", ", &save); m != NULL;
             m = strtok_r(NULL, ", ", &save)) {
            bool known = false;
            for (size_t i = 0; i < routes_count; i++)
                known = known || (strcmp(routes[i].path, path) == 0 &&
                                  strcmp(routes[i].method, m) == 0);
            FUZZ_CHECK(known && strcmp(m, method) != 0, "Allow lists %s", m);
        }
        free(list);
    }
    int status = router_error(res, method, path, sb_str(&allow), &err);
    FUZZ_CHECK(status == (res == ROUTER_BAD_METHOD ? 405 : 404) &&
                   err.status == status,
               "status %d", status);
    FUZZ_CHECK(err.msg != NULL && utf8_length(err.msg, strlen(err.msg)) >= 0 &&
                   !fuzz_has_control(err.msg, strlen(err.msg)),
               "the sentence is not clean text");
    struct envelope env = {.status = status,
                           .message = err.msg,
                           .request_id = "fuzz",
                           .allow = status == 405 ? sb_str(&allow) : NULL};
    fuzz_check_envelope(&env);
    /* the envelope alone, with the raw path: never the 500 fallback */
    struct strbuf raw = STRBUF_INIT;
    sb_printf(&raw, "No endpoint %s", path);
    struct envelope env2 = {
        .status = 404, .message = sb_str(&raw), .request_id = "fuzz"};
    fuzz_check_envelope(&env2);
    sb_free(&raw);
out:
    err_clear(&err);
    sb_free(&allow);
    free(method);
    free(path);
    return 0;
}
