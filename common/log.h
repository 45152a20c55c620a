/*
 * common/log.h — one-line, leveled logging.
 *
 * Every line is written with a single write(2) on an O_APPEND descriptor, so
 * lines from the master and all workers never interleave.  Format:
 *   2026-11-29T21:40:00.123456Z INFO  [1234] message
 * Callers must never pass secrets (API keys, passwords, conninfo strings).
 */
#ifndef FI_LOG_H
#define FI_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Opens `path` for appending (NULL or "" = stderr).  0 ok, -1 error. */
int log_open(const char *path, enum log_level min_level)
    __attribute__((warn_unused_result));
/* "debug"/"info"/"warn"/"error" → level; -1 when unknown. */
int log_level_parse(const char *name);
void log_close(void);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
