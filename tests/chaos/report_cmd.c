/*
 * tests/chaos/report_cmd.c — `fintegrate-chaos report --requests FILE
 * --windows FILE [--kills FILE]`: reads the request log of `load`, the
 * fault windows and the kills of the chaos script, prints the table and the
 * judgement (report.h), and exits 1 when a request failed outside the
 * database windows without having been in flight at a kill.
 */
#include "commands.h"
#include "reqlog.h"
#include "logfile.h"
#include "report.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *to)
{
    fprintf(to,
            "usage: fintegrate-chaos report --requests FILE --windows FILE "
            "[--kills FILE]\n"
            "\n"
            "  --requests FILE  the --out file of `fintegrate-chaos load`\n"
            "  --windows FILE   lines \"name start_ms end_ms db_window "
            "killed_workers\"\n"
            "                   (db_window 1: 5xx allowed)\n"
            "  --kills FILE     lines \"node_index before_ms after_ms "
            "limit\": a\n"
            "                   process of that node's app killed in "
            "between, which\n"
            "                   explains up to `limit` failures (0: any "
            "number)\n"
            "Exit status 1 when a request outside the database windows got a "
            "5xx\n"
            "or no answer without having been in flight on the node of a "
            "kill.\n");
}

static int
add_attempt(void *r, const struct reqlog_attempt *a)
{
    return report_add(r, a);
}

int
report_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"requests", required_argument, NULL, 'r'},
        {"windows", required_argument, NULL, 'w'},
        {"kills", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *requests = NULL, *windows = NULL, *kills_path = NULL;
    struct vec wins = VEC_INIT(struct report_window);
    struct vec kills = VEC_INIT(struct report_kill);
    struct report r;
    struct strbuf out = STRBUF_INIT;
    bool have_report = false;
    long malformed = 0;
    int rc = CHAOS_EXIT_USAGE;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            requests = optarg;
            break;
        case 'w':
            windows = optarg;
            break;
        case 'k':
            kills_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return CHAOS_EXIT_OK;
        default:
            usage(stderr);
            return CHAOS_EXIT_USAGE;
        }
    }
    if (optind < argc || requests == NULL || windows == NULL) {
        usage(stderr);
        return CHAOS_EXIT_USAGE;
    }

    if (logfile_read_windows("report", windows, &wins) < 0)
        goto out;
    if (kills_path != NULL &&
        logfile_read_kills("report", kills_path, &kills) < 0)
        goto out;
    if (report_init(&r, wins.items, wins.len, kills.items, kills.len) < 0) {
        rc = CHAOS_EXIT_ERROR;
        goto out;
    }
    have_report = true;
    if (logfile_read_requests("report", requests, add_attempt, &r, &r.retry,
                              &malformed) < 0)
        goto out;
    rc = CHAOS_EXIT_ERROR;
    if (report_finish(&r) < 0)
        goto out;

    report_render(&r, &out);
    if (malformed > 0)
        sb_printf(&out, "(%ld malformed line(s) of %s skipped)\n", malformed,
                  requests);
    bool ok = report_judge(&r, &out);
    if (out.oom) {
        fprintf(stderr, "report: out of memory\n");
        goto out;
    }
    fputs(sb_str(&out), stdout);
    if (fflush(stdout) == EOF)
        goto out;
    rc = ok ? CHAOS_EXIT_OK : CHAOS_EXIT_FAIL;
out:
    if (have_report)
        report_free(&r);
    for (size_t i = 0; i < wins.len; i++)
        report_window_free(vec_at(&wins, i));
    vec_free(&wins);
    vec_free(&kills);
    sb_free(&out);
    return rc;
}
