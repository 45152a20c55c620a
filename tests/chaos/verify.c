/*
 * tests/chaos/verify.c — `fintegrate-chaos verify`: compares the events the
 * outbox accepted (customer_events rows of the chosen consumers) with the
 * "processed" lines of the consumers' output files, and judges lost,
 * processed twice and per-customer order (check.h).
 *
 * With --wait S it polls once a second (the database and every file read
 * afresh) until every accepted event was processed or S seconds passed, and
 * says how long that took from the start of verify.  A database that does
 * not answer during a poll (a failover) is tried again at the next one.
 *
 * The conninfo is used as given (libpq handles multi-host lists) and never
 * printed: it may hold a password.
 */
#include "check.h"
#include "commands.h"
#include "consumer_line.h"
#include "util.h"

#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_US 1000000
#define PROGRESS_EVERY_S 10

/* The system consumer's events (consumers, keys) go to no chaos consumer:
 * without --consumers every other consumer's events count. */
static const char *const query =
    "SELECT e.event_id::text, COALESCE(e.customer_id::text, '-'), "
    "       e.sequence, c.consumer_name "
    "  FROM customer_events e "
    "  JOIN consumers c ON c.consumer_id = e.consumer_id "
    " WHERE CASE WHEN $1::text IS NULL "
    "            THEN c.consumer_id <> "
    "                 '00000000-0000-0000-0000-000000000001'::uuid "
    "            ELSE c.consumer_name = ANY (string_to_array($1::text, ',')) "
    "       END "
    "   AND ($2::timestamptz IS NULL OR e.created_at > $2::timestamptz)";

struct verify {
    const char *conninfo;
    struct vec files; /* const char * (argv) */
    const char *consumers;
    const char *since;
    double wait_s;
    PGconn *conn;
    bool db_complained;
    struct vec missing; /* bool per file: not found at the last poll */
};

static void
usage(FILE *to)
{
    fprintf(to,
            "usage: fintegrate-chaos verify --db CONNINFO --consumer-out "
            "FILE\n"
            "           [--consumer-out FILE ...] [--consumers name,name]\n"
            "           [--wait SECONDS] [--since ISO_TIMESTAMP]\n"
            "\n"
            "  --db CONNINFO       libpq conninfo or URL (multi-host lists "
            "work)\n"
            "  --consumer-out FILE fintegrate-consumer's stdout (repeat per "
            "consumer)\n"
            "  --consumers LIST    whose events count (default: all but "
            "system_default)\n"
            "  --wait SECONDS      poll until all are processed, at most this "
            "long\n"
            "  --since TIMESTAMP   only events created after it\n"
            "Exit status 1 when an accepted event is lost, processed twice or "
            "out of\nper-customer order.\n");
}

static int
parse_options(struct verify *v, int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"consumer-out", required_argument, NULL, 'f'},
        {"consumers", required_argument, NULL, 'c'},
        {"wait", required_argument, NULL, 'w'},
        {"since", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            v->conninfo = optarg;
            break;
        case 'f':
            if (vec_push(&v->files, &optarg) < 0)
                return -1;
            break;
        case 'c':
            v->consumers = optarg;
            break;
        case 'w':
            if (!chaos_parse_double(optarg, &v->wait_s) || v->wait_s > 1e6) {
                fprintf(stderr, "verify: --wait must be a number of "
                                "seconds\n");
                return -1;
            }
            break;
        case 's':
            v->since = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(CHAOS_EXIT_OK);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || v->conninfo == NULL || v->files.len == 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- database */

enum db_outcome { DB_OK, DB_DOWN, DB_BAD_QUERY, DB_OOM };

static enum db_outcome
read_accepted(struct verify *v, struct check *c)
{
    const char *params[2] = {v->consumers, v->since};
    enum db_outcome rc = DB_DOWN;
    PGresult *res = NULL;

    if (v->conn != NULL && PQstatus(v->conn) != CONNECTION_OK) {
        PQfinish(v->conn);
        v->conn = NULL;
    }
    if (v->conn == NULL) {
        v->conn = PQconnectdb(v->conninfo);
        if (PQstatus(v->conn) != CONNECTION_OK) {
            if (!v->db_complained)
                fprintf(stderr, "verify: the database does not answer: %s",
                        PQerrorMessage(v->conn));
            v->db_complained = true;
            goto out;
        }
    }
    res = PQexecParams(v->conn, query, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        bool down = PQstatus(v->conn) != CONNECTION_OK;
        if (!down || !v->db_complained)
            fprintf(stderr, "verify: reading the outbox failed: %s",
                    PQresultErrorMessage(res));
        v->db_complained = true;
        rc = down ? DB_DOWN : DB_BAD_QUERY;
        goto out;
    }
    if (v->db_complained)
        fprintf(stderr, "verify: the database answers again\n");
    v->db_complained = false;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t seq = 0;
        if (!chaos_parse_i64(PQgetvalue(res, i, 2), &seq))
            seq = 0;
        if (check_accepted(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), seq,
                           PQgetvalue(res, i, 3)) < 0) {
            rc = DB_OOM;
            goto out;
        }
    }
    rc = DB_OK;
out:
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------------- files */

/* Feeds one consumer output file to c.  0, 1 (the file does not exist) or
 * -1 (out of memory, read error: said on stderr). */
static int
read_file(const char *path, struct check *c)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    int rc = 0;

    if (f == NULL)
        return 1;
    check_begin_file(c, path);
    while (getline(&line, &cap, f) != -1) {
        struct consumer_line cl;
        line_no++;
        enum consumer_line_kind k = consumer_line_parse(line, &cl);
        if (check_line(c, k, &cl, line_no) < 0) {
            fprintf(stderr, "verify: out of memory\n");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "verify: reading %s failed\n", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ----------------------------------------------------------------- output */

static void
print_examples(const char *what, long n, const struct strbuf *ex)
{
    if (n == 0)
        return;
    printf("%s, e.g. (at most %d):\n%s", what, CHECK_EXAMPLES, sb_str(ex));
}

static void
print_result(const struct verify *v, const struct check_result *r,
             double all_after, double waited)
{
    printf("verify: consumers %s; %zu output file(s)%s\n",
           v->consumers ? v->consumers : "(all but system_default)",
           v->files.len, v->since ? "; events after --since" : "");
    for (size_t i = 0; i < v->missing.len; i++)
        if (*(bool *)vec_at(&v->missing, i))
            printf("verify: %s does not exist (read as empty)\n",
                   *(const char **)vec_at(&v->files, i));
    printf("events accepted           %8ld\n", r->accepted);
    printf("events processed          %8ld   (processed lines %ld; ids not "
           "in the outbox %ld; malformed processed lines %ld)\n",
           r->processed, r->processed_lines, r->unknown, r->malformed);
    printf("lost                      %8ld\n", r->lost);
    printf("processed twice           %8ld\n", r->twice);
    printf("order violations          %8ld\n", r->order);
    if (all_after >= 0)
        printf("seconds until all processed %6.1f\n", all_after);
    else
        printf("seconds until all processed    never (%ld not processed "
               "after %.1f s)\n",
               r->lost, waited);
    print_examples("lost", r->lost, &r->ex_lost);
    print_examples("processed twice", r->twice, &r->ex_twice);
    print_examples("order violations", r->order, &r->ex_order);
}

/* ------------------------------------------------------------------- main */

static void
sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* One poll: the outbox and every file into a fresh check, then *r.
 * 0 done, 1 the database did not answer (r untouched), -1 a fatal error
 * (*rc set). */
static int
poll_once(struct verify *v, struct check_result *r, bool *have, int *rc)
{
    struct check c;
    int ret = -1;

    check_init(&c);
    switch (read_accepted(v, &c)) {
    case DB_OK:
        break;
    case DB_DOWN:
        ret = 1;
        goto out;
    case DB_BAD_QUERY:
        *rc = CHAOS_EXIT_USAGE;
        goto out;
    case DB_OOM:
    default:
        fprintf(stderr, "verify: out of memory\n");
        *rc = CHAOS_EXIT_ERROR;
        goto out;
    }
    for (size_t i = 0; i < v->files.len; i++) {
        int f = read_file(*(const char **)vec_at(&v->files, i), &c);
        if (f < 0) {
            *rc = CHAOS_EXIT_ERROR;
            goto out;
        }
        *(bool *)vec_at(&v->missing, i) = f == 1;
    }
    if (*have)
        check_result_free(r);
    *have = false;
    if (check_result(&c, r) < 0) {
        fprintf(stderr, "verify: out of memory\n");
        *rc = CHAOS_EXIT_ERROR;
        goto out;
    }
    *have = true;
    ret = 0;
out:
    check_free(&c);
    return ret;
}

int
verify_main(int argc, char **argv)
{
    struct verify v = {
        .files = VEC_INIT(const char *),
        .missing = VEC_INIT(bool),
    };
    struct check_result r;
    bool have = false;
    int rc = CHAOS_EXIT_USAGE;
    int64_t t0 = chaos_mono_us();
    int64_t last_progress = t0;
    double all_after = -1, waited = 0;

    memset(&r, 0, sizeof r);
    if (parse_options(&v, argc, argv) < 0)
        goto out;
    for (size_t i = 0; i < v.files.len; i++) {
        bool no = false;
        if (vec_push(&v.missing, &no) < 0) {
            rc = CHAOS_EXIT_ERROR;
            goto out;
        }
    }

    for (;;) {
        int64_t started = chaos_mono_us();
        int p = poll_once(&v, &r, &have, &rc);
        waited = (double)(chaos_mono_us() - t0) / 1e6;
        if (p < 0)
            goto out;
        if (p == 0 && r.lost == 0) {
            all_after = waited;
            break;
        }
        if (waited >= v.wait_s)
            break;
        if (have && chaos_mono_us() - last_progress >=
                        (int64_t)PROGRESS_EVERY_S * 1000000) {
            fprintf(stderr,
                    "verify: %ld of %ld accepted events not processed yet "
                    "(%.0f s)\n",
                    r.lost, r.accepted, waited);
            last_progress = chaos_mono_us();
        }
        sleep_us(POLL_US - (chaos_mono_us() - started));
    }
    if (!have) {
        fprintf(stderr,
                "verify: the outbox could not be read within %.1f "
                "s\n",
                waited);
        rc = CHAOS_EXIT_ERROR;
        goto out;
    }
    print_result(&v, &r, all_after, waited);
    bool ok = r.lost == 0 && r.twice == 0 && r.order == 0;
    printf("verify: %s\n", ok ? "OK" : "FAIL");
    fflush(stdout);
    rc = ok ? CHAOS_EXIT_OK : CHAOS_EXIT_FAIL;
out:
    if (have)
        check_result_free(&r);
    if (v.conn != NULL)
        PQfinish(v.conn);
    vec_free(&v.files);
    vec_free(&v.missing);
    return rc;
}
