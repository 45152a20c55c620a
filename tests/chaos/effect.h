/*
 * tests/chaos/effect.h — did each write of the load take effect, once?  The
 * judgement behind `fintegrate-chaos verify --requests FILE` (issue 13):
 * the request log of `load` (reqlog.h) says what every logical write was
 * answered in the end; the database says what happened.  Counts
 *
 *   customers created twice   for each logical create, the customers of
 *                             its name beyond the first (the load names a
 *                             customer "chaos <consumer> <logical_id>", so a
 *                             name is one logical create);
 *   acknowledged, absent      a create answered 2xx whose customer is not in
 *                             the database, and status changes answered 2xx
 *                             beyond the customer's status-change events;
 *   never took effect         writes whose last answer was not a 2xx or a
 *                             4xx (5xx, no answer: the client gave up or was
 *                             stopped) and whose effect is not in the
 *                             database — for a create, no customer of its
 *                             name; for a status change, the customer has no
 *                             more status-change events than 2xx answers
 *                             (its unanswered changes are matched oldest
 *                             first);
 *   took effect unanswered    the same writes whose effect is there;
 *
 * and with fault windows (report.h) splits "never took effect" and
 * "acknowledged, absent" into writes that overlap a database window and the
 * others: a failover to an asynchronous standby loses the commits the
 * standby had not received yet (docs/API.md §7.7 lists no failover among the
 * faults that lose nothing).
 *
 * Pure: no I/O.  Feed effect_attempt, effect_customer and
 * effect_status_events, then effect_result.
 */
#ifndef CHAOS_EFFECT_H
#define CHAOS_EFFECT_H

#include "reqlog.h"
#include "report.h"
#include "util.h"

#include "common/strbuf.h"

#include <stdbool.h>
#include <stdint.h>

#define EFFECT_EXAMPLES 5

struct effect {
    struct vec writes;       /* struct effect_write, internal */
    struct strmap by_id;     /* logical_id text → index in writes */
    struct strmap named;     /* logical_id text → customers of its name */
    struct strmap ids;       /* customer ids in the database */
    struct strmap st_events; /* customer id → status-change events */
    long foreign;            /* customers whose name is not from a load */
};

struct effect_result {
    long creates, statuses;          /* logical writes in the log */
    long answered_2xx, answered_4xx; /* final answers */
    long unanswered;                 /* final 5xx or no answer */
    long twice;                      /* customers created twice */
    long acked_absent;               /* 2xx, effect missing */
    long acked_absent_in_db_window;  /* ... of which in a database window */
    long never;                      /* never took effect */
    long never_in_db_window;         /* ... of which in a database window */
    long took_unanswered;            /* took effect without a final 2xx/4xx */
    long not_in_log;                 /* customers of no logged create */
    struct strbuf ex_twice, ex_absent, ex_never; /* "  <example>\n" lines */
};

void effect_init(struct effect *e);
void effect_free(struct effect *e);

/* One attempt of the request log.  0, or -1 on allocation failure. */
int effect_attempt(struct effect *e, const struct reqlog_attempt *a)
    __attribute__((warn_unused_result));
/* A customer of the load's consumers in the database.  0 or -1. */
int effect_customer(struct effect *e, const char *customer_id, const char *name)
    __attribute__((warn_unused_result));
/* The customer's customer_status_change events in the database.  0, -1. */
int effect_status_events(struct effect *e, const char *customer_id, long n)
    __attribute__((warn_unused_result));

/*
 * The totals; windows (borrowed, may be NULL with nw 0) mark which writes
 * overlap a database window.  0, or -1 on allocation failure.
 */
int effect_result(const struct effect *e, const struct report_window *w,
                  size_t nw, struct effect_result *out)
    __attribute__((warn_unused_result));
void effect_result_free(struct effect_result *r);

/* The logical id in a load's customer name "chaos <consumer> <id>"; false
 * for any other name. */
bool effect_name_logical(const char *name, int64_t *logical);

#endif
