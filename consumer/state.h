/*
 * consumer/state.h — what the consumer program remembers across restarts:
 * the event ids it has processed (so a redelivered event is not processed
 * twice) and, per customer, the last sequence it processed (so ordering
 * resumes where it stopped).
 *
 * On disk: a directory the program owns (mode 0700) with
 *   state.log   an append-only text file, one record per line:
 *                 E <event_id> <customer_id|-> <sequence> <unix_ms>
 *                     an event processed at unix_ms (written per event)
 *                 I <event_id> <unix_ms>      a processed id (compaction)
 *                 C <customer_id|-> <sequence> <unix_ms>
 *                     a customer's last processed sequence (compaction)
 *               after a first line "# fintegrate-consumer state v1";
 *   state.lock  flock()ed while a program uses the directory (a second
 *               program on the same directory is refused), holding its pid.
 * Each E record is written with one write(2) and, unless `fsync` is off,
 * made durable (fdatasync) before state_record returns.  A torn last line
 * (a crash mid-write) is cut off at the next start; other unreadable lines
 * are skipped with a warning.
 *
 * Retention (bounded size): the newest `max_events` ids processed within
 * `max_age_days`, and the last sequence of the `max_customers` customers
 * most recently processed.  When the file holds more than twice the live
 * records (plus STATE_COMPACT_SLACK), it is rewritten with only the live
 * ones (write to state.log.tmp, fsync, rename, fsync the directory), at
 * start-up and as records are added.  The new file is written through the
 * descriptor that then appends to it, so after the rename there is nothing
 * to reopen: records never go to the replaced file.  A new state.log, and
 * any directory state_open creates, is fsynced with its directory entry
 * (unless `fsync` is off).  So the file stays below roughly
 * (2 × (max_events + max_customers) + STATE_COMPACT_SLACK) lines: about
 * 25 MB with the defaults.
 *
 * Ownership: state_open returns an owned handle (state_close releases it,
 * the lock included; safe on NULL).  Strings passed in are copied.  The
 * clock is passed in (unix milliseconds), so retention unit-tests.  Uses
 * common/log for warnings; nothing here touches the network.
 */
#ifndef FC_STATE_H
#define FC_STATE_H

#include "common/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_DEFAULT_MAX_EVENTS 100000
#define STATE_DEFAULT_MAX_AGE_DAYS 30
#define STATE_DEFAULT_MAX_CUSTOMERS 100000
#define STATE_COMPACT_SLACK 1000

struct state_options {
    long max_events;    /* >= 1 */
    long max_age_days;  /* >= 1 */
    long max_customers; /* >= 1 */
    bool fsync;         /* fdatasync after every record (default true) */
};

struct state;

/*
 * Opens (creating it, and its parents, when missing) the state directory,
 * takes its lock, loads the records and compacts when due.  0 with *out
 * set; -1 with the reason appended to `err` (directory not creatable, in
 * use by another program, not a state file, I/O error).
 */
int state_open(struct state **out, const char *dir,
               const struct state_options *opt, int64_t now_ms,
               struct strbuf *err) __attribute__((warn_unused_result));
void state_close(struct state *s);

/* Whether event_id (a UUID, any case) was processed. */
bool state_has_event(const struct state *s, const char *event_id);

/* The last sequence processed for customer `key` ("" = events without a
 * customer); 0 when none is remembered. */
int64_t state_last_seq(const struct state *s, const char *key);

/*
 * Records that event_id of customer `key` with `seq` was processed at
 * now_ms: appended (and made durable) first, then remembered.  A
 * customer's last sequence only grows (a late event does not move it
 * back).  0 ok; -1 with the reason in `err` when the record could not be
 * written (nothing is remembered then).
 */
int state_record(struct state *s, const char *event_id, const char *key,
                 int64_t seq, int64_t now_ms, struct strbuf *err)
    __attribute__((warn_unused_result));

/* Rewrites the file with the live records only.  0 ok; -1 with reason. */
int state_compact(struct state *s, int64_t now_ms, struct strbuf *err)
    __attribute__((warn_unused_result));

/* Live counts, and the records in the file now (tests, start-up log). */
size_t state_event_count(const struct state *s);
size_t state_customer_count(const struct state *s);
size_t state_file_records(const struct state *s);

#endif
