/*
 * tests/chaos/logfile.h — reading the chaos run's files: the windows and
 * kills files (report.h's lines) and the request log (reqlog.h), shared by
 * `fintegrate-chaos report` and `verify`.  Messages go to stderr, prefixed
 * with the command's name.
 */
#ifndef CHAOS_LOGFILE_H
#define CHAOS_LOGFILE_H

#include "reqlog.h"
#include "util.h"

#include <stdbool.h>

/*
 * Reads the windows file into *out (struct report_window; free each with
 * report_window_free, then the array).  0, or -1 said on stderr (the file
 * cannot be read, a line is not a window, out of memory).
 */
int logfile_read_windows(const char *prog, const char *path, struct vec *out);

/*
 * Reads the kills file into *out (struct report_kill).  0, or -1 said on
 * stderr.
 */
int logfile_read_kills(const char *prog, const char *path, struct vec *out);

/* Called for each attempt of the request log; -1 stops the read (out of
 * memory). */
typedef int (*logfile_attempt_fn)(void *ctx, const struct reqlog_attempt *a);

/*
 * Feeds every attempt of the request log at `path` to each(ctx, …).  A
 * line that is not a request line (one cut short by a kill is expected at
 * most at the end) is skipped and counted in *malformed, the first three
 * said on stderr.  *retry becomes true when the load's header says
 * --retry.  0, or -1 said on stderr.
 */
int logfile_read_requests(const char *prog, const char *path,
                          logfile_attempt_fn each, void *ctx, bool *retry,
                          long *malformed);

#endif
