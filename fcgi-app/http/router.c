/*
 * fcgi-app/http/router.c — route lookup: 404 vs 405 (with Allow).
 */
#include "router.h"
#include "common/text.h"

#include <string.h>

enum router_result
router_match(const struct route *table, size_t n, const char *method,
             const char *path, const struct route **route, struct strbuf *allow)
{
    bool path_known = false;
    *route = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].path, path) != 0)
            continue;
        if (strcmp(table[i].method, method) == 0) {
            *route = &table[i];
            return ROUTER_FOUND;
        }
        if (path_known)
            sb_puts(allow, ", ");
        sb_puts(allow, table[i].method);
        path_known = true;
    }
    return path_known ? ROUTER_BAD_METHOD : ROUTER_NOT_FOUND;
}

int
router_path_index(const struct route *table, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* `s` as text for a sentence: UTF-8 text kept; anything else, and the
 * control characters (C0, DEL, C1), as %XX. */
static void
shown(struct strbuf *sb, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        bool c1 = c == 0xC2 && (unsigned char)s[i + 1] >= 0x80 &&
                  (unsigned char)s[i + 1] <= 0x9F;
        if (c >= 0x20 && c != 0x7F && !c1 && len <= n - i &&
            utf8_length(s + i, len) == 1) {
            sb_append(sb, s + i, len);
            i += len;
        } else {
            sb_printf(sb, "%%%02X", c);
            i++;
        }
    }
}

int
router_error(enum router_result res, const char *method, const char *path,
             const char *allow, struct app_err *err)
{
    struct strbuf m = STRBUF_INIT, p = STRBUF_INIT;
    int status = res == ROUTER_BAD_METHOD ? 405 : 404;
    shown(&m, method);
    shown(&p, path);
    if (status == 405)
        err_set(err, 405, "Method %s is not allowed on %s (allowed: %s)",
                sb_str(&m), sb_str(&p), allow);
    else
        err_set(err, 404, "No endpoint %s", sb_str(&p));
    sb_free(&m);
    sb_free(&p);
    return status;
}
