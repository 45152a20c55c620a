/*
 * fcgi-app/http/router.c — route lookup: 404 vs 405 (with Allow).
 */
#include "router.h"

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
