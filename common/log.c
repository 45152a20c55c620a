/*
 * common/log.c — see log.h.
 */
#include "log.h"
#include "clock.h"
#include "strbuf.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

int
log_open(const char *path, enum log_level min_level)
{
    log_min = min_level;
    if (path == NULL || path[0] == '\0')
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return 0;
}

int
log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void
log_close(void)
{
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = STDERR_FILENO;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char stamp[UTC_STAMP_LEN];
    utc_stamp(stamp, true);

    struct strbuf sb = STRBUF_INIT;
    sb_printf(&sb, "%s %s [%d] ", stamp, level_names[level], (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(small, sizeof small, fmt, cp);
    va_end(cp);
    if (n >= 0 && (size_t)n < sizeof small) {
        sb_append(&sb, small, (size_t)n);
    } else if (n >= 0) {
        char *big = NULL;
        if (vasprintf(&big, fmt, ap) >= 0) {
            sb_puts(&sb, big);
            free(big);
        }
    }
    va_end(ap);
    sb_append(&sb, "\n", 1);
    if (!sb.oom) {
        ssize_t w = write(log_fd, sb_str(&sb), sb.len);
        (void)w; /* nowhere left to report a failed log write */
    }
    sb_free(&sb);
}
