/*
 * common/strbuf.h — a growable, always NUL-terminated byte string.
 *
 * Used wherever text of unbounded length is assembled (error messages,
 * response headers, log lines), so no fixed-size buffer meets user input.
 * Depends on nothing but libc.
 *
 * Ownership: a strbuf owns its buffer; sb_free() releases it and is safe to
 * call twice.  sb_steal() hands the buffer to the caller (free() it) and
 * leaves the strbuf empty.  Allocation failure is sticky: the strbuf keeps
 * its old contents, sets `oom`, and every later append is a no-op, so callers
 * check once at the end.
 */
#ifndef FI_STRBUF_H
#define FI_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *buf;  /* NULL until the first append; sb_str() never is */
    size_t len; /* bytes in use, excluding the NUL */
    size_t cap; /* bytes allocated */
    bool oom;   /* an allocation failed; contents are truncated */
};

#define STRBUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0, false                                                      \
    }

void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_printf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The contents (borrowed; valid until the next append or sb_free). */
const char *sb_str(const struct strbuf *sb);
/* Owned by the caller (free()); "" copy when empty; NULL on OOM. */
char *sb_steal(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_free(struct strbuf *sb);

#endif
