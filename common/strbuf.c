/*
 * common/strbuf.c — growable string; see strbuf.h.
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
sb_grow(struct strbuf *sb, size_t extra)
{
    if (sb->oom)
        return false;
    if (extra > ((size_t)-1) / 2 - sb->len) {
        sb->oom = true;
        return false;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return true;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;
    char *nb = realloc(sb->buf, cap);
    if (nb == NULL) {
        sb->oom = true;
        return false;
    }
    sb->buf = nb;
    sb->cap = cap;
    return true;
}

void
sb_append(struct strbuf *sb, const char *s, size_t n)
{
    if (!sb_grow(sb, n))
        return;
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void
sb_puts(struct strbuf *sb, const char *s)
{
    sb_append(sb, s, strlen(s));
}

void
sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_grow(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

const char *
sb_str(const struct strbuf *sb)
{
    return sb->buf ? sb->buf : "";
}

char *
sb_steal(struct strbuf *sb)
{
    char *out;
    if (sb->oom) {
        out = NULL;
        free(sb->buf);
    } else if (sb->buf == NULL) {
        out = strdup("");
    } else {
        out = sb->buf;
    }
    sb->buf = NULL;
    sb->len = sb->cap = 0;
    sb->oom = false;
    return out;
}

void
sb_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->buf)
        sb->buf[0] = '\0';
    sb->oom = false;
}

void
sb_free(struct strbuf *sb)
{
    free(sb->buf);
    sb->buf = NULL;
    sb->len = sb->cap = 0;
    sb->oom = false;
}
