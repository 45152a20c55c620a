/*
 * tests/unit/test_consumer_state.c — consumer/state.h: the consumer
 * program's processed-id store (persistence across reopen, per-customer
 * last sequence that only grows, retention by count, by age and for
 * customers, compaction keeping the file bounded, a torn last line cut
 * off, unreadable lines skipped, a foreign file refused, one program per
 * directory, a new state.log and new directories fsynced with their
 * directory entries, compaction that cannot leave records going to the
 * replaced file).  Each test works in its own mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "consumer/state.h"

#define C1 "11111111-1111-4111-8111-111111111111"
#define C2 "22222222-2222-4222-8222-222222222222"
#define DAY_MS (24LL * 3600 * 1000)
#define T0 1700000000000LL /* a fixed "now", unix ms */

struct fixture {
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/fc-state-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/state.log", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static struct state_options
opts(long events, long days, long customers)
{
    struct state_options o = {events, days, customers, false};
    return o;
}

static struct state *
open_ok(const struct fixture *f, struct state_options o, int64_t now)
{
    struct strbuf err = STRBUF_INIT;
    struct state *s = NULL;
    int rc = state_open(&s, f->dir, &o, now, &err);
    if (rc != 0)
        fail_msg("state_open: %s", sb_str(&err));
    sb_free(&err);
    return s;
}

/* The i-th test event id. */
static void
event_id(int i, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

static void
record_ok(struct state *s, int i, const char *key, int64_t seq, int64_t now)
{
    char id[37];
    struct strbuf err = STRBUF_INIT;
    event_id(i, id);
    if (state_record(s, id, key, seq, now, &err) != 0)
        fail_msg("state_record: %s", sb_str(&err));
    sb_free(&err);
}

static bool
has(const struct state *s, int i)
{
    char id[37];
    event_id(i, id);
    return state_has_event(s, id);
}

static long
file_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    long n = 0;
    int c;
    if (fp == NULL)
        return -1;
    while ((c = fgetc(fp)) != EOF)
        if (c == '\n')
            n++;
    fclose(fp);
    return n;
}

static void
append_raw(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* fsync(2) seen by state.c: this definition wins over libc's for the
 * objects linked into this program; it records the path of each
 * descriptor synced, then syncs it for real. */
#define MAX_SYNCED 16
static char synced[MAX_SYNCED][PATH_MAX];
static size_t n_synced;

int
fsync(int fd)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if (n_synced < MAX_SYNCED) {
        ssize_t n = readlink(link, synced[n_synced], PATH_MAX - 1);
        synced[n_synced][n > 0 ? n : 0] = '\0';
        n_synced++;
    }
    return (int)syscall(SYS_fsync, fd);
}

static bool
was_synced(const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real) == NULL)
        return false;
    for (size_t i = 0; i < n_synced && i < MAX_SYNCED; i++)
        if (strcmp(synced[i], real) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */

static void
test_fresh_directory_is_created(void **state)
{
    struct fixture *f = *state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a/b", f->dir);
    struct state_options o = opts(10, 30, 10);
    struct strbuf err = STRBUF_INIT;
    struct state *s = NULL;
    assert_int_equal(state_open(&s, sub, &o, T0, &err), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(state_event_count(s), 0);
    assert_false(state_has_event(s, C1));
    assert_int_equal(state_last_seq(s, C1), 0);
    assert_int_equal(state_last_seq(s, ""), 0);
    state_close(s);
    sb_free(&err);
}

static void
test_records_survive_reopen(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(100, 30, 100), T0);
    record_ok(s, 1, C1, 1, T0);
    record_ok(s, 2, C1, 2, T0 + 1);
    record_ok(s, 3, C2, 7, T0 + 2);
    record_ok(s, 4, "", 3, T0 + 3); /* an event without a customer */
    assert_true(has(s, 1));
    assert_int_equal(state_last_seq(s, C1), 2);
    state_close(s);

    s = open_ok(f, opts(100, 30, 100), T0 + 10);
    for (int i = 1; i <= 4; i++)
        assert_true(has(s, i));
    assert_false(has(s, 5));
    assert_int_equal(state_last_seq(s, C1), 2);
    assert_int_equal(state_last_seq(s, C2), 7);
    assert_int_equal(state_last_seq(s, ""), 3);
    /* ids are matched in any case */
    assert_true(state_has_event(s, "00000000-0000-4000-8000-000000000001"));
    assert_false(state_has_event(s, "not-a-uuid"));
    state_close(s);
}

static void
test_upper_case_ids_are_the_same_event(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(10, 30, 10), T0);
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(state_record(s, "ABCDEF00-0000-4000-8000-00000000000A", C1,
                                  1, T0, &err),
                     0);
    assert_true(state_has_event(s, "abcdef00-0000-4000-8000-00000000000a"));
    /* bad input is refused, nothing written */
    assert_int_equal(state_record(s, "nope", C1, 2, T0, &err), -1);
    assert_int_equal(state_record(s, "abcdef00-0000-4000-8000-00000000000b",
                                  "not-a-customer", 2, T0, &err),
                     -1);
    assert_int_equal(state_record(s, "abcdef00-0000-4000-8000-00000000000b", C1,
                                  0, T0, &err),
                     -1);
    assert_int_equal(state_last_seq(s, C1), 1);
    sb_free(&err);
    state_close(s);
}

static void
test_last_sequence_only_grows(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(100, 30, 100), T0);
    record_ok(s, 1, C1, 5, T0);
    record_ok(s, 2, C1, 3, T0 + 1); /* a late event */
    assert_int_equal(state_last_seq(s, C1), 5);
    state_close(s);
    s = open_ok(f, opts(100, 30, 100), T0);
    assert_int_equal(state_last_seq(s, C1), 5);
    assert_true(has(s, 2));
    state_close(s);
}

static void
test_retention_by_count(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(3, 30, 100), T0);
    for (int i = 1; i <= 5; i++)
        record_ok(s, i, C1, i, T0 + i);
    assert_int_equal(state_event_count(s), 3);
    assert_false(has(s, 1));
    assert_false(has(s, 2));
    assert_true(has(s, 3));
    assert_true(has(s, 5));
    state_close(s);
    /* the same after a reopen (the log holds all five) */
    s = open_ok(f, opts(3, 30, 100), T0 + 10);
    assert_int_equal(state_event_count(s), 3);
    assert_false(has(s, 2));
    assert_true(has(s, 3));
    /* the sequence outlives the ids */
    assert_int_equal(state_last_seq(s, C1), 5);
    state_close(s);
}

static void
test_retention_by_age(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(100, 30, 100), T0);
    record_ok(s, 1, C1, 1, T0);
    record_ok(s, 2, C1, 2, T0 + 10 * DAY_MS);
    state_close(s);

    /* 31 days after the first: it is forgotten, the second is not */
    s = open_ok(f, opts(100, 30, 100), T0 + 31 * DAY_MS);
    assert_false(has(s, 1));
    assert_true(has(s, 2));
    /* and a record 41 days on forgets the second too */
    record_ok(s, 3, C1, 3, T0 + 41 * DAY_MS);
    assert_false(has(s, 2));
    assert_true(has(s, 3));
    assert_int_equal(state_event_count(s), 1);
    state_close(s);
}

static void
test_customers_bounded_most_recent_kept(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(100, 30, 2), T0);
    record_ok(s, 1, "aaaaaaaa-0000-4000-8000-000000000001", 4, T0);
    record_ok(s, 2, "aaaaaaaa-0000-4000-8000-000000000002", 5, T0 + 1);
    record_ok(s, 3, "aaaaaaaa-0000-4000-8000-000000000003", 6, T0 + 2);
    state_close(s);
    /* the reopen compacts: the least recently active customer goes */
    s = open_ok(f, opts(100, 30, 2), T0 + 3);
    assert_int_equal(state_customer_count(s), 2);
    assert_int_equal(state_last_seq(s, "aaaaaaaa-0000-4000-8000-000000000001"),
                     0);
    assert_int_equal(state_last_seq(s, "aaaaaaaa-0000-4000-8000-000000000003"),
                     6);
    /* ids are kept by their own rule */
    assert_true(has(s, 1));
    state_close(s);
}

static void
test_compaction_keeps_the_file_bounded(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(10, 30, 10), T0);
    for (int i = 1; i <= 3000; i++)
        record_ok(s, i, C1, i, T0 + i);
    size_t live = state_event_count(s) + state_customer_count(s);
    assert_int_equal(live, 11);
    long bound = 2 * (long)live + STATE_COMPACT_SLACK + 1; /* + header */
    assert_true(file_lines(f->path) <= bound);
    assert_true(has(s, 3000));
    assert_true(has(s, 2991));
    assert_false(has(s, 2990));
    state_close(s);

    s = open_ok(f, opts(10, 30, 10), T0 + 5000);
    assert_int_equal(state_event_count(s), 10);
    assert_true(has(s, 2991));
    assert_int_equal(state_last_seq(s, C1), 3000);
    /* an explicit compaction leaves exactly the live records */
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(state_compact(s, T0 + 5000, &err), 0);
    assert_int_equal(state_file_records(s), 11);
    assert_int_equal(file_lines(f->path), 12);
    /* and records still append after it */
    record_ok(s, 5000, C2, 1, T0 + 5001);
    state_close(s);
    s = open_ok(f, opts(10, 30, 10), T0 + 5002);
    assert_true(has(s, 5000));
    assert_int_equal(state_last_seq(s, C2), 1);
    assert_int_equal(state_last_seq(s, C1), 3000);
    state_close(s);
    sb_free(&err);
}

static void
test_torn_last_line_is_cut(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(100, 30, 100), T0);
    record_ok(s, 1, C1, 1, T0);
    state_close(s);
    /* a crash in the middle of writing the next record */
    append_raw(f->path, "E 00000000-0000-4000-8000-0000000");
    s = open_ok(f, opts(100, 30, 100), T0);
    assert_true(has(s, 1));
    assert_int_equal(state_event_count(s), 1);
    record_ok(s, 2, C1, 2, T0);
    state_close(s);
    /* the new record did not glue onto the torn one */
    s = open_ok(f, opts(100, 30, 100), T0);
    assert_true(has(s, 2));
    assert_int_equal(state_last_seq(s, C1), 2);
    state_close(s);
}

static void
test_unreadable_lines_are_skipped(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(100, 30, 100), T0);
    record_ok(s, 1, C1, 1, T0);
    state_close(s);
    append_raw(f->path, "garbage\nE not-an-id - 1 2\nI " C2 " x\n"
                        "C " C2 " 9 123\n");
    s = open_ok(f, opts(100, 30, 100), T0);
    assert_true(has(s, 1));
    assert_int_equal(state_event_count(s), 1);
    assert_int_equal(state_last_seq(s, C2), 9);
    state_close(s);
}

static void
test_foreign_file_is_refused(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs("this is somebody else's file\n", fp);
    fclose(fp);
    struct state_options o = opts(10, 30, 10);
    struct strbuf err = STRBUF_INIT;
    struct state *s = NULL;
    assert_int_equal(state_open(&s, f->dir, &o, T0, &err), -1);
    assert_null(s);
    assert_non_null(strstr(sb_str(&err), "not a fintegrate-consumer state"));
    sb_free(&err);
}

/* A new state.log (and each directory state_open makes) is durable with
 * its directory entry: the directories are fsynced, not only the file. */
static void
test_new_files_fsync_their_directory(void **state)
{
    struct fixture *f = *state;
    char sub[128], dir[160];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    snprintf(dir, sizeof dir, "%s/state", sub);
    struct state_options o = {10, 30, 10, true};
    struct strbuf err = STRBUF_INIT;
    struct state *s = NULL;
    n_synced = 0;
    assert_int_equal(state_open(&s, dir, &o, T0, &err), 0);
    assert_true(was_synced(f->dir)); /* sub's entry */
    assert_true(was_synced(sub));    /* state's entry */
    assert_true(was_synced(dir));    /* state.log's entry */
    state_close(s);
    /* with fsync off, nothing is synced */
    char other[160];
    snprintf(other, sizeof other, "%s/other", f->dir);
    o.fsync = false;
    n_synced = 0;
    assert_int_equal(state_open(&s, other, &o, T0, &err), 0);
    assert_int_equal(n_synced, 0);
    state_close(s);
    sb_free(&err);
}

/* Compaction leaves exactly one free descriptor: the rewrite must not need
 * a second one to reopen state.log after the rename (the old code did, and
 * on failure kept appending to the replaced, unlinked file). */
static void
test_compaction_never_appends_to_the_replaced_file(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(10, 30, 10), T0);
    record_ok(s, 1, C1, 1, T0);

    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[256], n = 0, fd;
    while (n < 256 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        fds[n++] = fd;
    assert_true(n > 0);
    close(fds[--n]); /* one descriptor left */
    struct strbuf err = STRBUF_INIT;
    int rc = state_compact(s, T0 + 1, &err);
    while (n > 0)
        close(fds[--n]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    if (rc != 0)
        fail_msg("compaction with one free descriptor: %s", sb_str(&err));

    /* the next record is in the live file, not in a replaced one */
    record_ok(s, 2, C1, 2, T0 + 2);
    char *text = NULL;
    size_t cap = 0;
    FILE *fp = fopen(f->path, "r");
    assert_non_null(fp);
    bool found = false;
    char id[37];
    event_id(2, id);
    while (getline(&text, &cap, fp) > 0)
        if (strncmp(text, "E ", 2) == 0 && strstr(text, id) != NULL)
            found = true;
    fclose(fp);
    free(text);
    assert_true(found);
    state_close(s);
    s = open_ok(f, opts(10, 30, 10), T0 + 3);
    assert_true(has(s, 1));
    assert_true(has(s, 2));
    assert_int_equal(state_last_seq(s, C1), 2);
    state_close(s);
    sb_free(&err);
}

static void
test_one_program_per_directory(void **state)
{
    struct fixture *f = *state;
    struct state *s = open_ok(f, opts(10, 30, 10), T0);
    struct state_options o = opts(10, 30, 10);
    struct strbuf err = STRBUF_INIT;
    struct state *other = NULL;
    /* flock is per open file description: a second open in this process
     * conflicts exactly like another process would */
    assert_int_equal(state_open(&other, f->dir, &o, T0, &err), -1);
    assert_non_null(strstr(sb_str(&err), "in use by another"));
    state_close(s);
    sb_reset(&err);
    /* released with the first */
    assert_int_equal(state_open(&other, f->dir, &o, T0, &err), 0);
    state_close(other);
    state_close(NULL); /* safe */
    sb_free(&err);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fresh_directory_is_created),
        T(test_records_survive_reopen),
        T(test_upper_case_ids_are_the_same_event),
        T(test_last_sequence_only_grows),
        T(test_retention_by_count),
        T(test_retention_by_age),
        T(test_customers_bounded_most_recent_kept),
        T(test_compaction_keeps_the_file_bounded),
        T(test_torn_last_line_is_cut),
        T(test_unreadable_lines_are_skipped),
        T(test_foreign_file_is_refused),
        T(test_new_files_fsync_their_directory),
        T(test_compaction_never_appends_to_the_replaced_file),
        T(test_one_program_per_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
