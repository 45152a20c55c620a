/*
 * fcgi-app/proc/roll.h — the master's decisions about its children: how
 * many to fork now and which to stop now, as one pure function of the
 * child table (it reads no clock and makes no system call), so that the
 * rules of the SIGHUP roll unit-test without processes
 * (tests/unit/test_roll.c).
 *
 * A SIGHUP starts a new generation: every child forked before it is "old"
 * and gets replaced.  The rules, for each kind (the workers; the relay):
 *   - fill: fewer than `want` children not retiring → fork the difference
 *     (first start, a crash, a worker recycled after max_requests);
 *   - roll: while old children remain, fork replacements, keeping at most
 *     `want + surge` children not retiring (surge 1: one replacement starts
 *     at a time); the planner never forks past `want` children of the
 *     current generation;
 *   - an old child is asked to stop only while more than `want` ready
 *     children would remain: its replacement has said it is ready first,
 *     so a roll never leaves fewer ready children than it found.  A fork
 *     that fails or a replacement that dies before it is ready stops
 *     nothing.  The oldest generation goes first;
 *   - a replacement that has not said it is ready `ready_timeout_ms` after
 *     its fork is given up (stopped); the old children keep running and the
 *     master retries later.
 * A second SIGHUP during a roll just starts another generation: what was
 * old stays old, the replacements still starting become old too, and the
 * same rules finish the job.
 *
 * The master owns the timers (when a fork may happen) and the processes;
 * this module depends on nothing but the C library.
 */
#ifndef FI_ROLL_H
#define FI_ROLL_H

#include <stdbool.h>
#include <stddef.h>

enum roll_kind { ROLL_WORKER, ROLL_RELAY, ROLL_KINDS };

/* A live child, as the planner sees it. */
struct roll_child {
    enum roll_kind kind;
    unsigned gen;         /* the generation it was forked in */
    bool ready;           /* it has told the master it is ready */
    bool retiring;        /* already asked to stop: no longer counted */
    bool replacement;     /* forked by a roll (must get ready in time) */
    long long started_ms; /* when it was forked (monotonic ms) */
};

struct roll_params {
    size_t want[ROLL_KINDS]; /* workers; relays (0 or 1) */
    size_t surge;            /* extra children a roll may run (≥ 1) */
    unsigned gen;            /* the current generation */
    long long now_ms;
    long long ready_timeout_ms;
};

enum roll_stop_reason {
    ROLL_STOP_REPLACED,  /* old, and enough ready children remain */
    ROLL_STOP_NOT_READY, /* a replacement that missed its deadline */
};

struct roll_stop {
    size_t index; /* into the kids[] given to roll_plan */
    enum roll_stop_reason why;
};

struct roll_plan {
    size_t fill[ROLL_KINDS];    /* forks to make the pool whole */
    size_t replace[ROLL_KINDS]; /* forks of replacements for old children */
    size_t n_stop;              /* entries written to stop[] */
};

/*
 * What to do now, assuming the stops it names are carried out before the
 * forks it counts.  kids: the n live children (borrowed); stop: room for n
 * entries (each child is named at most once, timeouts first, then the
 * replaced ones, oldest generation first).
 */
void roll_plan(const struct roll_child *kids, size_t n,
               const struct roll_params *p, struct roll_plan *plan,
               struct roll_stop *stop);

/* Whether any child not retiring belongs to an older generation than
 * `gen`: a roll is still under way. */
bool roll_in_progress(const struct roll_child *kids, size_t n, unsigned gen);

#endif
