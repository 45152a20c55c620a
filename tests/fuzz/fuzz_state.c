/*
 * tests/fuzz/fuzz_state.c — libFuzzer target: the consumer program's
 * state file loader.  Arbitrary bytes become state.log in a directory of
 * its own (under one mkdtemp folder, removed at exit); then state_open with
 * small retention limits, a few state_record calls, state_compact, and a
 * reopen that must find what was recorded.
 *
 * Input: byte 0 picks the limits (events 1..8, customers 1..8) and whether
 * the file starts with the real header line (so the loader gets past its
 * first check half of the time); byte 1 is how many events to record
 * (0..15); the rest is the file's content (after the header when chosen).
 *
 * Checks: state_open either refuses with a reason or opens; counts stay
 * within the limits; a recorded event is remembered (also after the
 * compaction and the reopen); a customer's last sequence is at least the
 * one recorded; the file after compaction holds exactly the live records.
 * No database, no broker.
 */
#include "common.h"

#include "consumer/state.h"
#include "common/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "# fintegrate-consumer state v1\n"
#define NOW 1700000000000LL

static char root[64];

/* Removes the files of dir and dir itself. */
static void
remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct strbuf path = STRBUF_INIT;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' &&
            (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        sb_reset(&path);
        sb_printf(&path, "%s/%s", dir, e->d_name);
        unlink(sb_str(&path));
    }
    sb_free(&path);
    closedir(d);
    rmdir(dir);
}

static void
cleanup(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/s", root);
    remove_dir(dir);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/fuzz-state-XXXXXX",
             tmp && tmp[0] && strlen(tmp) < 40 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(root) != NULL, "mkdtemp %s", root);
    atexit(cleanup);
    /* the loader's warnings (unreadable lines) would flood the output */
    FUZZ_CHECK(log_open("/dev/null", LOG_ERROR) == 0, "log_open");
    return 0;
}

static void
event_id(unsigned i, char out[37])
{
    snprintf(out, 37, "f0000000-0000-4000-8000-%012u", i);
}

static void
customer_id(unsigned i, char out[37])
{
    snprintf(out, 37, "c0000000-0000-4000-8000-%012u", i);
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
        n += c == '\n';
    fclose(fp);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[128], path[160];
    struct strbuf err = STRBUF_INIT;
    struct state *s = NULL;

    if (root[0] == '\0')
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 2 || size > 65536)
        return 0;
    snprintf(dir, sizeof dir, "%s/s", root);
    snprintf(path, sizeof path, "%s/state.log", dir);
    remove_dir(dir);
    FUZZ_CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);

    struct state_options opt = {
        .max_events = 1 + (data[0] & 7),
        .max_age_days = 30,
        .max_customers = 1 + ((data[0] >> 3) & 7),
        .fsync = false,
    };
    bool header = data[0] & 0x40;
    unsigned records = data[1] & 15;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0, "create %s", path);
    if (header)
        FUZZ_CHECK(write(fd, HEADER, strlen(HEADER)) == (ssize_t)strlen(HEADER),
                   "write");
    FUZZ_CHECK(write(fd, data + 2, size - 2) == (ssize_t)(size - 2), "write");
    close(fd);

    if (state_open(&s, dir, &opt, NOW, &err) < 0) {
        FUZZ_CHECK(s == NULL && err.len > 0, "refused without a reason");
        goto out;
    }
    FUZZ_CHECK(state_event_count(s) <= (size_t)opt.max_events, "%zu events",
               state_event_count(s));
    FUZZ_CHECK(state_customer_count(s) <= (size_t)opt.max_customers,
               "%zu customers", state_customer_count(s));
    /* whatever the file said, lookups of any text are safe */
    FUZZ_CHECK(!state_has_event(s, "not an id"), "a bad id is known");
    (void)state_last_seq(s, "");

    char id[37], cust[37];
    for (unsigned i = 0; i < records; i++) {
        event_id(i, id);
        customer_id(i % 3, cust);
        int64_t seq = i % 4 == 3 ? INT64_MAX : (int64_t)i + 1;
        const char *key = i % 5 == 4 ? "" : cust;
        sb_reset(&err);
        FUZZ_CHECK(state_record(s, id, key, seq, NOW + i, &err) == 0,
                   "record: %s", sb_str(&err));
        FUZZ_CHECK(state_has_event(s, id), "a recorded event is unknown");
        FUZZ_CHECK(state_last_seq(s, key) >= seq, "last sequence went back");
    }
    sb_reset(&err);
    FUZZ_CHECK(state_compact(s, NOW + 100, &err) == 0, "compact: %s",
               sb_str(&err));
    size_t live = state_event_count(s) + state_customer_count(s);
    FUZZ_CHECK(state_file_records(s) == live, "%zu records, %zu live",
               state_file_records(s), live);
    FUZZ_CHECK(file_lines(path) == (long)live + 1, "%ld lines for %zu live",
               file_lines(path), live);
    if (records > 0) {
        event_id(records - 1, id);
        FUZZ_CHECK(state_has_event(s, id), "the last event was dropped");
    }
    state_close(s);
    s = NULL;

    sb_reset(&err);
    FUZZ_CHECK(state_open(&s, dir, &opt, NOW + 100, &err) == 0, "reopen: %s",
               sb_str(&err));
    FUZZ_CHECK(state_event_count(s) + state_customer_count(s) == live,
               "the reopened state differs");
    if (records > 0) {
        event_id(records - 1, id);
        FUZZ_CHECK(state_has_event(s, id), "the last event was lost");
    }
out:
    state_close(s);
    sb_free(&err);
    return 0;
}
