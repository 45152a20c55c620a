/*
 * tests/chaos/logfile.c — see logfile.h.
 */
#include "logfile.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>

/* Called for each line of a file; -1 stops the read (said on stderr). */
typedef int (*line_fn)(void *ctx, char *line, long line_no);

/* Feeds every line of `path` (named `what` in messages) to each(ctx, …).
 * 0, or -1 said on stderr. */
static int
each_line(const char *prog, const char *what, const char *path, line_fn each,
          void *ctx)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "%s: cannot open %s %s: %m\n", prog, what, path);
        return -1;
    }
    while (rc == 0 && getline(&line, &cap, f) != -1)
        rc = each(ctx, line, ++line_no);
    free(line);
    fclose(f);
    return rc;
}

struct windows_ctx {
    const char *prog, *path;
    struct vec *out;
};

static int
window_line(void *ctx, char *line, long line_no)
{
    struct windows_ctx *c = ctx;
    struct report_window w;
    int r = report_parse_window(line, &w);

    if (r == 0)
        return 0;
    if (r < 0) {
        fprintf(stderr,
                "%s: %s line %ld: expected \"name start_ms end_ms "
                "db_window(0|1) killed_workers\" with start_ms <= "
                "end_ms\n",
                c->prog, c->path, line_no);
        return -1;
    }
    if (vec_push(c->out, &w) < 0) {
        report_window_free(&w);
        fprintf(stderr, "%s: out of memory\n", c->prog);
        return -1;
    }
    return 0;
}

int
logfile_read_windows(const char *prog, const char *path, struct vec *out)
{
    struct windows_ctx c = {prog, path, out};
    return each_line(prog, "--windows", path, window_line, &c);
}

struct kills_ctx {
    const char *prog, *path;
    struct vec *out;
};

static int
kill_line(void *ctx, char *line, long line_no)
{
    struct kills_ctx *c = ctx;
    struct report_kill k;
    int r = report_parse_kill(line, &k);

    if (r == 0)
        return 0;
    if (r < 0) {
        fprintf(stderr,
                "%s: %s line %ld: expected \"node_index before_ms "
                "after_ms limit\" with before_ms <= after_ms\n",
                c->prog, c->path, line_no);
        return -1;
    }
    if (vec_push(c->out, &k) < 0) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        return -1;
    }
    return 0;
}

int
logfile_read_kills(const char *prog, const char *path, struct vec *out)
{
    struct kills_ctx c = {prog, path, out};
    return each_line(prog, "--kills", path, kill_line, &c);
}

struct requests_ctx {
    const char *prog, *path;
    logfile_attempt_fn each;
    void *ctx;
    bool *retry;
    long *malformed;
};

static int
request_line(void *ctx, char *line, long line_no)
{
    struct requests_ctx *c = ctx;
    struct reqlog_attempt a;

    if (reqlog_header_is_retry(line))
        *c->retry = true;
    int p = reqlog_parse(line, &a);
    if (p == 0)
        return 0;
    if (p < 0) {
        if ((*c->malformed)++ < 3)
            fprintf(stderr, "%s: %s line %ld: not a request line; skipped\n",
                    c->prog, c->path, line_no);
        return 0;
    }
    if (c->each(c->ctx, &a) < 0) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        return -1;
    }
    return 0;
}

int
logfile_read_requests(const char *prog, const char *path,
                      logfile_attempt_fn each, void *ctx, bool *retry,
                      long *malformed)
{
    struct requests_ctx c = {prog, path, each, ctx, retry, malformed};
    return each_line(prog, "--requests", path, request_line, &c);
}
