/*
 * fcgi-app/core/app_err.c — see app_err.h.
 */
#include "app_err.h"
#include "common/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 1, 0))) static char *
vformat(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void
err_set(struct app_err *e, int status, const char *fmt, ...)
{
    va_list ap;
    free(e->msg);
    va_start(ap, fmt);
    e->msg = vformat(fmt, ap);
    va_end(ap);
    e->status = status;
}

void
err_add(struct app_err *e, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (e->status == 0)
        e->status = status;
    if (e->msg == NULL) {
        e->msg = s;
        return;
    }
    struct strbuf sb = STRBUF_INIT;
    sb_puts(&sb, e->msg);
    sb_puts(&sb, "; ");
    sb_puts(&sb, s ? s : "");
    free(s);
    char *joined = sb_steal(&sb);
    if (joined != NULL) {
        free(e->msg);
        e->msg = joined;
    }
}

void
err_detail(struct app_err *e, const char *fmt, ...)
{
    va_list ap;
    free(e->detail);
    va_start(ap, fmt);
    e->detail = vformat(fmt, ap);
    va_end(ap);
}

void
err_clear(struct app_err *e)
{
    free(e->msg);
    free(e->detail);
    e->msg = NULL;
    e->detail = NULL;
    e->status = 0;
    e->code[0] = '\0';
}
