/*
 * tests/chaos/logfile.c — see logfile.h.
 */
#include "logfile.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>

int
logfile_read_windows(const char *prog, const char *path, struct vec *out)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "%s: cannot open --windows %s: %m\n", prog, path);
        return -1;
    }
    while (getline(&line, &cap, f) != -1) {
        struct report_window w;
        line_no++;
        int r = report_parse_window(line, &w);
        if (r == 0)
            continue;
        if (r < 0) {
            fprintf(stderr,
                    "%s: %s line %ld: expected \"name start_ms end_ms "
                    "db_window(0|1) killed_workers\" with start_ms <= "
                    "end_ms\n",
                    prog, path, line_no);
            goto out;
        }
        if (vec_push(out, &w) < 0) {
            report_window_free(&w);
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
    }
    rc = 0;
out:
    free(line);
    fclose(f);
    return rc;
}

int
logfile_read_requests(const char *prog, const char *path,
                      logfile_attempt_fn each, void *ctx, bool *retry,
                      long *malformed)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "%s: cannot open --requests %s: %m\n", prog, path);
        return -1;
    }
    while (getline(&line, &cap, f) != -1) {
        struct reqlog_attempt a;
        line_no++;
        if (reqlog_header_is_retry(line))
            *retry = true;
        int p = reqlog_parse(line, &a);
        if (p == 0)
            continue;
        if (p < 0) {
            if ((*malformed)++ < 3)
                fprintf(stderr,
                        "%s: %s line %ld: not a request line; skipped\n", prog,
                        path, line_no);
            continue;
        }
        if (each(ctx, &a) < 0) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
    }
    rc = 0;
out:
    free(line);
    fclose(f);
    return rc;
}
