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
 * With --requests FILE (the request log of `load`) it also judges the writes
 * themselves against the database (effect.h): customers created twice fail
 * it; writes answered 2xx but absent, and writes that never took effect,
 * fail it outside the database windows of --windows FILE (without that
 * file: the first always, the second never — they are only reported).
 *
 * The conninfo is used as given (libpq handles multi-host lists) and never
 * printed: it may hold a password.
 */
#include "check.h"
#include "commands.h"
#include "consumer_line.h"
#include "effect.h"
#include "logfile.h"
#include "reqlog.h"
#include "report.h"
#include "util.h"

#include "common/clock.h"

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

/* The writes' effects (--requests): the consumers' customers and their
 * status-change events.  A minute before --since, so that a write made
 * while the caller took its --since timestamp still counts; the chaos
 * run's consumers are new, so nothing older is theirs. */
#define CONSUMER_FILTER                                                        \
    " CASE WHEN $1::text IS NULL "                                             \
    "      THEN co.consumer_id <> "                                            \
    "'00000000-0000-0000-0000-000000000001'::uuid "                            \
    "      ELSE co.consumer_name = ANY (string_to_array($1::text, ',')) END "
#define SINCE(col)                                                             \
    " ($2::timestamptz IS NULL OR " col                                        \
    " > $2::timestamptz - interval '1 minute') "
static const char *const customers_query =
    "SELECT c.customer_id::text, c.name FROM customers c "
    "  JOIN consumers co ON co.consumer_id = c.consumer_id "
    " WHERE " CONSUMER_FILTER " AND " SINCE("c.created_at");
static const char *const status_events_query =
    "SELECT e.customer_id::text, count(*) FROM customer_events e "
    "  JOIN consumers co ON co.consumer_id = e.consumer_id "
    " WHERE e.event_type = 'customer_status_change' "
    "   AND e.customer_id IS NOT NULL AND " CONSUMER_FILTER
    "   AND " SINCE("e.created_at") " GROUP BY 1";

struct verify {
    const char *conninfo;
    struct vec files; /* const char * (argv) */
    const char *consumers;
    const char *since;
    const char *requests; /* --requests FILE, or NULL */
    const char *windows;  /* --windows FILE, or NULL */
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
            "           [--requests FILE [--windows FILE]]\n"
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
            "  --requests FILE     the --out file of `fintegrate-chaos load`: "
            "also count\n"
            "                      customers created twice and writes that "
            "never took effect\n"
            "  --windows FILE      the fault windows (as for report): writes "
            "that never\n"
            "                      took effect are allowed in database "
            "windows only\n"
            "Exit status 1 when an accepted event is lost, processed twice or "
            "out of\nper-customer order; with --requests also when a customer "
            "was created twice,\na write answered 2xx is not in the "
            "database or never took effect (with\n--windows: outside the "
            "database windows only; without, never-took-effect\nis only "
            "reported).\n");
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
        {"requests", required_argument, NULL, 'r'},
        {"windows", required_argument, NULL, 'W'},
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
        case 'r':
            v->requests = optarg;
            break;
        case 'W':
            v->windows = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(CHAOS_EXIT_OK);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || v->conninfo == NULL || v->files.len == 0 ||
        (v->windows != NULL && v->requests == NULL)) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- database */

enum db_outcome { DB_OK, DB_DOWN, DB_BAD_QUERY, DB_OOM };

/* A working connection in v->conn, or false (said once on stderr). */
static bool
connect_db(struct verify *v)
{
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
            return false;
        }
    }
    return true;
}

static enum db_outcome
read_accepted(struct verify *v, struct check *c)
{
    const char *params[2] = {v->consumers, v->since};
    enum db_outcome rc = DB_DOWN;
    PGresult *res = NULL;

    if (!connect_db(v))
        goto out;
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

/* -------------------------------------------------------------- the writes */

static void
sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int
add_attempt(void *e, const struct reqlog_attempt *a)
{
    return effect_attempt(e, a);
}

/* Feeds every attempt of the request log to e.  0 or -1. */
static int
read_requests(const char *path, struct effect *e)
{
    bool retry = false;
    long malformed = 0;
    return logfile_read_requests("verify", path, add_attempt, e, &retry,
                                 &malformed);
}

/* The customers and status-change events of the consumers into e. */
static enum db_outcome
read_effects(struct verify *v, struct effect *e)
{
    const char *params[2] = {v->consumers, v->since};
    PGresult *res = NULL;
    enum db_outcome rc = DB_DOWN;

    if (!connect_db(v))
        return DB_DOWN;
    for (int q = 0; q < 2; q++) {
        res = PQexecParams(v->conn,
                           q == 0 ? customers_query : status_events_query, 2,
                           NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            bool down = PQstatus(v->conn) != CONNECTION_OK;
            fprintf(stderr, "verify: reading the customers failed: %s",
                    PQresultErrorMessage(res));
            rc = down ? DB_DOWN : DB_BAD_QUERY;
            goto out;
        }
        for (int i = 0; i < PQntuples(res); i++) {
            int r = q == 0 ? effect_customer(e, PQgetvalue(res, i, 0),
                                             PQgetvalue(res, i, 1))
                           : effect_status_events(
                                 e, PQgetvalue(res, i, 0),
                                 strtol(PQgetvalue(res, i, 1), NULL, 10));
            if (r < 0) {
                rc = DB_OOM;
                goto out;
            }
        }
        PQclear(res);
        res = NULL;
    }
    rc = DB_OK;
out:
    PQclear(res);
    return rc;
}

static void
print_effects(const struct verify *v, const struct effect_result *r)
{
    printf("writes (request log)      %8ld   (creates %ld, status changes "
           "%ld; last answer 2xx %ld, 4xx %ld, 5xx or none %ld)\n",
           r->creates + r->statuses, r->creates, r->statuses, r->answered_2xx,
           r->answered_4xx, r->unanswered);
    printf("customers created twice   %8ld\n", r->twice);
    if (v->windows != NULL)
        printf("answered 2xx, not in db   %8ld   (%ld outside the database "
               "windows, %ld in them: a failover to an asynchronous standby "
               "loses its last commits)\n",
               r->acked_absent, r->acked_absent - r->acked_absent_in_db_window,
               r->acked_absent_in_db_window);
    else
        printf("answered 2xx, not in db   %8ld\n", r->acked_absent);
    if (v->windows != NULL)
        printf("never took effect         %8ld   (%ld outside the database "
               "windows, %ld in them)\n",
               r->never, r->never - r->never_in_db_window,
               r->never_in_db_window);
    else
        printf("never took effect         %8ld   (no --windows: reported, "
               "not judged)\n",
               r->never);
    printf("took effect, unanswered   %8ld   (the client gave up or was "
           "stopped)\n",
           r->took_unanswered);
    if (r->not_in_log > 0)
        printf("customers of no logged create %4ld   (an attempt in flight "
               "when the load stopped)\n",
               r->not_in_log);
    print_examples("customers created twice", r->twice, &r->ex_twice);
    print_examples("answered 2xx, not in the database", r->acked_absent,
                   &r->ex_absent);
    print_examples("never took effect", r->never, &r->ex_never);
}

/* Judges the writes (--requests).  Sets *ok false when they fail; returns
 * a CHAOS_EXIT_* status other than OK on an input or runtime error. */
static int
judge_writes(struct verify *v, bool *ok)
{
    struct vec windows = VEC_INIT(struct report_window);
    struct effect e;
    struct effect_result r;
    int rc = CHAOS_EXIT_ERROR;
    bool have = false;

    effect_init(&e);
    if (v->windows != NULL &&
        logfile_read_windows("verify", v->windows, &windows) < 0) {
        rc = CHAOS_EXIT_USAGE;
        goto out;
    }
    if (read_requests(v->requests, &e) < 0)
        goto out;
    /* The database may be in a failover: up to 30 tries a second apart,
     * each from the request log again (a failed read leaves e partial). */
    for (int tries = 0;; tries++) {
        enum db_outcome o = read_effects(v, &e);
        if (o == DB_OK)
            break;
        if (o == DB_BAD_QUERY) {
            rc = CHAOS_EXIT_USAGE;
            goto out;
        }
        if (o == DB_OOM || tries >= 30) {
            fprintf(stderr, "verify: could not read the customers\n");
            goto out;
        }
        effect_free(&e);
        effect_init(&e);
        if (read_requests(v->requests, &e) < 0)
            goto out;
        sleep_us(POLL_US);
    }
    if (effect_result(&e, windows.items, windows.len, &r) < 0) {
        fprintf(stderr, "verify: out of memory\n");
        goto out;
    }
    have = true;
    print_effects(v, &r);
    if (r.twice > 0 ||
        r.acked_absent > (v->windows ? r.acked_absent_in_db_window : 0) ||
        (v->windows != NULL && r.never > r.never_in_db_window))
        *ok = false;
    rc = CHAOS_EXIT_OK;
out:
    if (have)
        effect_result_free(&r);
    for (size_t i = 0; i < windows.len; i++)
        report_window_free(vec_at(&windows, i));
    vec_free(&windows);
    effect_free(&e);
    return rc;
}

/* ------------------------------------------------------------------- main */

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
    int64_t t0 = mono_us();
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
        int64_t started = mono_us();
        int p = poll_once(&v, &r, &have, &rc);
        waited = (double)(mono_us() - t0) / 1e6;
        if (p < 0)
            goto out;
        if (p == 0 && r.lost == 0) {
            all_after = waited;
            break;
        }
        if (waited >= v.wait_s)
            break;
        if (have &&
            mono_us() - last_progress >= (int64_t)PROGRESS_EVERY_S * 1000000) {
            fprintf(stderr,
                    "verify: %ld of %ld accepted events not processed yet "
                    "(%.0f s)\n",
                    r.lost, r.accepted, waited);
            last_progress = mono_us();
        }
        sleep_us(POLL_US - (mono_us() - started));
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
    if (v.requests != NULL) {
        int w = judge_writes(&v, &ok);
        if (w != CHAOS_EXIT_OK) {
            rc = w;
            goto out;
        }
    }
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
