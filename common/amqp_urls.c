/*
 * common/amqp_urls.c — see amqp_urls.h.
 */
#include "amqp_urls.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define URL_SHAPE "amqp://[user[:password]@]host[:port][/vhost]"

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* "LABEL" for a one-item list, else "LABEL item I of N": how a message
 * points at an item without quoting it (it may hold a password). */
static void
name_item(struct strbuf *err, const char *label, size_t i, size_t n)
{
    if (n == 1)
        sb_puts(err, label);
    else
        sb_printf(err, "%s item %zu of %zu", label, i + 1, n);
}

/* Parses item [s, s+len) (already trimmed) into node.  0 ok; -1 with the
 * problem, without the item's text, appended to err after its name. */
static int
parse_item(struct amqp_node *node, const char *s, size_t len, const char *label,
           size_t i, size_t n, struct strbuf *err)
{
    const char *problem = NULL;
    struct strbuf where = STRBUF_INIT;

    if (len == 0) {
        problem = n == 1 ? "is empty: give at least one " URL_SHAPE " URL"
                         : "is empty (a stray comma?)";
        goto fail;
    }
    for (size_t k = 0; k < len; k++)
        if (is_blank(s[k]) || (unsigned char)s[k] < 0x20 || s[k] == 0x7f) {
            problem = "holds a blank or a control character (write a blank "
                      "in a user name or password as %20)";
            goto fail;
        }
    if (len >= 8 && strncmp(s, "amqps://", 8) == 0) {
        problem = "is an amqps:// URL: TLS is not supported, use amqp://";
        goto fail;
    }
    if (len < 7 || strncmp(s, "amqp://", 7) != 0) {
        problem = "does not start with amqp:// (expected " URL_SHAPE ")";
        goto fail;
    }
    node->buf = malloc(len + 1);
    if (node->buf == NULL) {
        problem = "could not be read: out of memory";
        goto fail;
    }
    memcpy(node->buf, s, len);
    node->buf[len] = '\0';
    node->len = len;
    amqp_default_connection_info(&node->info);
    if (amqp_parse_url(node->buf, &node->info) != AMQP_STATUS_OK ||
        node->info.host == NULL || node->info.host[0] == '\0') {
        problem = "is not a valid " URL_SHAPE " URL";
        goto fail;
    }
    if (node->info.port < 1 || node->info.port > 65535) {
        problem = "has a port outside 1-65535";
        goto fail;
    }
    if (strchr(node->info.host, ':') != NULL) /* IPv6 */
        sb_printf(&where, "[%s]:%d", node->info.host, node->info.port);
    else
        sb_printf(&where, "%s:%d", node->info.host, node->info.port);
    node->where = sb_steal(&where);
    if (node->where == NULL) {
        problem = "could not be read: out of memory";
        goto fail;
    }
    return 0;
fail:
    sb_free(&where);
    /* amqp_parse_url may have cut the copy in pieces: wipe all of it */
    if (node->buf != NULL)
        explicit_bzero(node->buf, len);
    free(node->buf);
    node->buf = NULL;
    node->len = 0;
    name_item(err, label, i, n);
    sb_printf(err, " %s", problem);
    return -1;
}

int
amqp_nodes_parse(struct amqp_nodes *out, const char *list, const char *label,
                 struct strbuf *err)
{
    struct strbuf all = STRBUF_INIT;
    size_t n = 1;

    memset(out, 0, sizeof *out);
    if (list == NULL)
        list = "";
    for (const char *p = list; *p; p++)
        n += *p == ',';
    out->v = calloc(n, sizeof *out->v);
    if (out->v == NULL) {
        sb_printf(err, "out of memory reading %s", label);
        return -1;
    }
    const char *item = list;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(item, ',');
        if (end == NULL)
            end = item + strlen(item);
        const char *s = item;
        while (s < end && is_blank(*s))
            s++;
        const char *e = end;
        while (e > s && is_blank(e[-1]))
            e--;
        if (parse_item(&out->v[i], s, (size_t)(e - s), label, i, n, err) < 0)
            goto fail;
        out->n = i + 1; /* amqp_nodes_free frees what is parsed so far */
        sb_printf(&all, "%s%s", i ? ", " : "", out->v[i].where);
        item = *end ? end + 1 : end;
    }
    out->where_all = sb_steal(&all);
    if (out->where_all == NULL) {
        sb_printf(err, "out of memory reading %s", label);
        goto fail;
    }
    return 0;
fail:
    sb_free(&all);
    amqp_nodes_free(out);
    return -1;
}

void
amqp_nodes_free(struct amqp_nodes *nodes)
{
    for (size_t i = 0; nodes->v != NULL && i < nodes->n; i++) {
        struct amqp_node *node = &nodes->v[i];
        /* amqp_parse_url cut the copy in pieces with NULs: wipe all of
         * it, the password may follow one */
        if (node->buf != NULL)
            explicit_bzero(node->buf, node->len);
        free(node->buf);
        free(node->where);
    }
    free(nodes->v);
    free(nodes->where_all);
    memset(nodes, 0, sizeof *nodes);
}
