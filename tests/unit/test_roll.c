/*
 * tests/unit/test_roll.c — proc/roll.h, the master's planner: fill the pool
 * (first start, a crash), and the SIGHUP roll — one replacement at a time,
 * an old child stopped only once a new one is ready (oldest generation
 * first), nothing stopped when a fork fails or a replacement dies, a
 * replacement given up after its deadline, a second SIGHUP mid-roll, the
 * relay rolled the same way, the generation counter's wrap.  A simulated
 * roll with failures checks the invariant at every step: never fewer ready
 * children than the pool wants, once it had them.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proc/roll.h"

#define TIMEOUT 30000LL
#define T0 1000000LL /* an arbitrary non-zero start */

static struct roll_params
params(size_t workers, size_t relays, unsigned gen, long long now)
{
    struct roll_params p = {
        .want = {workers, relays},
        .surge = 1,
        .gen = gen,
        .now_ms = now,
        .ready_timeout_ms = TIMEOUT,
    };
    return p;
}

static struct roll_child
kid(enum roll_kind kind, unsigned gen, bool ready)
{
    struct roll_child c = {
        .kind = kind, .gen = gen, .ready = ready, .started_ms = T0};
    return c;
}

static struct roll_child
replacement(enum roll_kind kind, unsigned gen, bool ready, long long started)
{
    struct roll_child c = kid(kind, gen, ready);
    c.replacement = true;
    c.started_ms = started;
    return c;
}

static bool
stopped(const struct roll_plan *plan, const struct roll_stop *stop, size_t i,
        enum roll_stop_reason why)
{
    for (size_t k = 0; k < plan->n_stop; k++)
        if (stop[k].index == i && stop[k].why == why)
            return true;
    return false;
}

static void
test_first_start_fills_the_pool(void **state)
{
    (void)state;
    struct roll_plan plan;
    struct roll_stop stop[1];
    struct roll_params p = params(4, 1, 0, T0);
    roll_plan(NULL, 0, &p, &plan, stop);
    assert_int_equal(plan.fill[ROLL_WORKER], 4);
    assert_int_equal(plan.fill[ROLL_RELAY], 1);
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
    assert_int_equal(plan.replace[ROLL_RELAY], 0);
    assert_int_equal(plan.n_stop, 0);

    p = params(4, 0, 0, T0); /* relay off */
    roll_plan(NULL, 0, &p, &plan, stop);
    assert_int_equal(plan.fill[ROLL_RELAY], 0);
}

static void
test_steady_pool_does_nothing(void **state)
{
    (void)state;
    struct roll_child kids[] = {
        kid(ROLL_WORKER, 3, true), kid(ROLL_WORKER, 3, true),
        kid(ROLL_WORKER, 3, false), /* still starting: counts as present */
        kid(ROLL_RELAY, 3, true)};
    struct roll_stop stop[4];
    struct roll_plan plan;
    struct roll_params p = params(3, 1, 3, T0);
    roll_plan(kids, 4, &p, &plan, stop);
    assert_int_equal(plan.fill[ROLL_WORKER], 0);
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
    assert_int_equal(plan.fill[ROLL_RELAY], 0);
    assert_int_equal(plan.replace[ROLL_RELAY], 0);
    assert_int_equal(plan.n_stop, 0);
    assert_false(roll_in_progress(kids, 4, 3));
}

static void
test_crash_is_filled_retiring_not_counted(void **state)
{
    (void)state;
    struct roll_child kids[] = {kid(ROLL_WORKER, 0, true),
                                kid(ROLL_WORKER, 0, true),
                                kid(ROLL_WORKER, 0, true)};
    kids[2].retiring = true; /* finishing its request: not one of the pool */
    struct roll_stop stop[3];
    struct roll_plan plan;
    struct roll_params p = params(4, 0, 0, T0);
    roll_plan(kids, 3, &p, &plan, stop);
    assert_int_equal(plan.fill[ROLL_WORKER], 2);
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
    assert_int_equal(plan.n_stop, 0);
}

static void
test_sighup_forks_one_replacement_and_stops_nothing(void **state)
{
    (void)state;
    /* gen 1 after the SIGHUP; everything is from gen 0 */
    struct roll_child kids[] = {
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        kid(ROLL_RELAY, 0, true)};
    struct roll_stop stop[5];
    struct roll_plan plan;
    struct roll_params p = params(4, 1, 1, T0);
    assert_true(roll_in_progress(kids, 5, 1));
    roll_plan(kids, 5, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 0);
    assert_int_equal(plan.fill[ROLL_WORKER], 0);
    assert_int_equal(plan.replace[ROLL_WORKER], 1);
    assert_int_equal(plan.fill[ROLL_RELAY], 0);
    assert_int_equal(plan.replace[ROLL_RELAY], 1); /* the relay too */
}

static void
test_starting_replacement_stops_nothing_forks_nothing(void **state)
{
    (void)state;
    struct roll_child kids[] = {
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        replacement(ROLL_WORKER, 1, false, T0)};
    struct roll_stop stop[5];
    struct roll_plan plan;
    struct roll_params p = params(4, 0, 1, T0 + TIMEOUT - 1);
    roll_plan(kids, 5, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 0);
    assert_int_equal(plan.fill[ROLL_WORKER], 0);
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
}

static void
test_ready_replacement_stops_exactly_one_old(void **state)
{
    (void)state;
    struct roll_child kids[] = {
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        replacement(ROLL_WORKER, 1, true, T0)};
    struct roll_stop stop[5];
    struct roll_plan plan;
    struct roll_params p = params(4, 0, 1, T0 + 100);
    roll_plan(kids, 5, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 1);
    assert_true(stop[0].index < 4); /* an old one, never the new one */
    assert_int_equal(stop[0].why, ROLL_STOP_REPLACED);
    /* with that one stopping, the next replacement may start */
    assert_int_equal(plan.replace[ROLL_WORKER], 1);
    assert_int_equal(plan.fill[ROLL_WORKER], 0);
}

static void
test_failed_fork_or_early_death_stops_nothing(void **state)
{
    (void)state;
    /* the replacement never appeared (fork failed) or died before it was
     * ready and was reaped: the table is the old pool again */
    struct roll_child kids[] = {
        kid(ROLL_WORKER, 0, true), kid(ROLL_WORKER, 0, true),
        kid(ROLL_WORKER, 0, true), kid(ROLL_RELAY, 0, true)};
    struct roll_stop stop[4];
    struct roll_plan plan;
    struct roll_params p = params(3, 1, 1, T0);
    roll_plan(kids, 4, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 0);
    assert_int_equal(plan.fill[ROLL_WORKER], 0); /* nothing is missing */
    assert_int_equal(plan.replace[ROLL_WORKER], 1);
    assert_int_equal(plan.replace[ROLL_RELAY], 1);
}

static void
test_replacement_past_deadline_is_given_up(void **state)
{
    (void)state;
    struct roll_child kids[] = {kid(ROLL_WORKER, 0, true),
                                kid(ROLL_WORKER, 0, true),
                                replacement(ROLL_WORKER, 1, false, T0)};
    struct roll_stop stop[3];
    struct roll_plan plan;
    struct roll_params p = params(2, 0, 1, T0 + TIMEOUT);
    roll_plan(kids, 3, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 1);
    assert_true(stopped(&plan, stop, 2, ROLL_STOP_NOT_READY));
    /* the old ones stay; a new try is planned (the master delays it) */
    assert_int_equal(plan.replace[ROLL_WORKER], 1);
    assert_int_equal(plan.fill[ROLL_WORKER], 0);

    /* a fill child (not a replacement) is never given up */
    kids[2].replacement = false;
    roll_plan(kids, 3, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 0);
}

static void
test_old_crash_during_roll_is_filled(void **state)
{
    (void)state;
    /* want 4: two old left (one crashed), one new ready, one starting */
    struct roll_child kids[] = {kid(ROLL_WORKER, 0, true),
                                kid(ROLL_WORKER, 0, true),
                                replacement(ROLL_WORKER, 1, true, T0),
                                replacement(ROLL_WORKER, 1, false, T0)};
    struct roll_stop stop[4];
    struct roll_plan plan;
    struct roll_params p = params(4, 0, 1, T0 + 10);
    roll_plan(kids, 4, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 0); /* 3 ready < 4: nothing to spare */
    assert_int_equal(plan.fill[ROLL_WORKER], 0);
    assert_int_equal(plan.replace[ROLL_WORKER], 1); /* 4 + surge 1 */

    /* two crashed: the pool is short, the fill comes first */
    roll_plan(kids + 1, 3, &p, &plan, stop);
    assert_int_equal(plan.fill[ROLL_WORKER], 1);
    assert_int_equal(plan.replace[ROLL_WORKER], 1);
}

static void
test_second_sighup_replaces_oldest_first(void **state)
{
    (void)state;
    /* roll to gen 1 under way, then SIGHUP again: gen 2 */
    struct roll_child kids[] = {
        kid(ROLL_WORKER, 0, true),                /* 0: gen 0 */
        replacement(ROLL_WORKER, 1, true, T0),    /* 1: gen 1, ready */
        kid(ROLL_WORKER, 0, true),                /* 2: gen 0 */
        replacement(ROLL_WORKER, 1, false, T0),   /* 3: gen 1, starting */
        replacement(ROLL_WORKER, 2, true, T0 + 5) /* 4: gen 2, ready */
    };
    struct roll_stop stop[5];
    struct roll_plan plan;
    struct roll_params p = params(3, 0, 2, T0 + 10);
    assert_true(roll_in_progress(kids, 5, 2));
    roll_plan(kids, 5, &p, &plan, stop);
    /* 4 ready, want 3: one goes, from gen 0 */
    assert_int_equal(plan.n_stop, 1);
    assert_true(stop[0].index == 0 || stop[0].index == 2);
    assert_int_equal(stop[0].why, ROLL_STOP_REPLACED);
    /* 4 left not retiring = want + surge: no fork */
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
    assert_int_equal(plan.fill[ROLL_WORKER], 0);

    /* the gen 1 starter gets ready: the other gen 0 goes, not gen 1 */
    kids[stop[0].index].retiring = true;
    kids[3].ready = true;
    roll_plan(kids, 5, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 1);
    assert_true(stop[0].index == 0 || stop[0].index == 2);
    assert_false(kids[stop[0].index].retiring);
}

static void
test_generation_wraps(void **state)
{
    (void)state;
    struct roll_child kids[] = {kid(ROLL_WORKER, UINT_MAX - 1, true),
                                kid(ROLL_WORKER, UINT_MAX, true),
                                kid(ROLL_WORKER, 0, true)};
    struct roll_stop stop[3];
    struct roll_plan plan;
    struct roll_params p = params(1, 0, 0, T0);
    roll_plan(kids, 3, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 2);
    /* oldest first: UINT_MAX - 1 (age 2), then UINT_MAX (age 1) */
    assert_int_equal(stop[0].index, 0);
    assert_int_equal(stop[1].index, 1);
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
}

static void
test_over_full_forks_nothing(void **state)
{
    (void)state;
    struct roll_child kids[] = {kid(ROLL_WORKER, 1, true),
                                kid(ROLL_WORKER, 1, true),
                                kid(ROLL_WORKER, 1, true)};
    struct roll_stop stop[3];
    struct roll_plan plan;
    struct roll_params p = params(2, 0, 1, T0);
    roll_plan(kids, 3, &p, &plan, stop);
    assert_int_equal(plan.n_stop, 0); /* current ones are never stopped */
    assert_int_equal(plan.fill[ROLL_WORKER], 0);
    assert_int_equal(plan.replace[ROLL_WORKER], 0);
}

/* ------------------------------------------------------- simulation */

#define SIM_MAX 64

struct sim {
    struct roll_child kids[SIM_MAX];
    bool live[SIM_MAX];
    bool hung[SIM_MAX]; /* a replacement that will never get ready */
    unsigned gen;
    long long now;
    unsigned rng;
};

static unsigned
sim_rand(struct sim *s)
{
    s->rng = s->rng * 1103515245u + 12345u;
    return (s->rng >> 16) & 0x7fff;
}

static size_t
sim_ready(const struct sim *s, enum roll_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < SIM_MAX; i++)
        if (s->live[i] && !s->kids[i].retiring && s->kids[i].ready &&
            s->kids[i].kind == kind)
            n++;
    return n;
}

static void
sim_fork(struct sim *s, enum roll_kind kind, bool repl, unsigned hang_pct)
{
    for (size_t i = 0; i < SIM_MAX; i++)
        if (!s->live[i]) {
            s->live[i] = true;
            s->hung[i] = repl && sim_rand(s) % 100 < hang_pct;
            s->kids[i] = (struct roll_child){.kind = kind,
                                             .gen = s->gen,
                                             .replacement = repl,
                                             .started_ms = s->now};
            return;
        }
    fail_msg("simulated table full");
}

/*
 * One tick (a second): retiring children exit; a starting child dies
 * (failure_pct / 2), stays starting (up to failure_pct) or gets ready; a
 * hung replacement stays starting until it is given up.  Then the plan is
 * carried out, failure_pct of the forks failing and failure_pct / 3 of the
 * replacements hanging.  Returns whether the roll is over.
 */
static bool
sim_tick(struct sim *s, size_t want, unsigned failure_pct)
{
    s->now += 1000;
    for (size_t i = 0; i < SIM_MAX; i++) {
        struct roll_child *c = &s->kids[i];
        if (!s->live[i])
            continue;
        if (c->retiring) {
            s->live[i] = false; /* finished its request */
        } else if (!c->ready && !s->hung[i]) {
            unsigned r = sim_rand(s) % 100;
            if (r < failure_pct / 2)
                s->live[i] = false; /* died before it was ready */
            else if (r >= failure_pct)
                c->ready = true; /* else: hangs for now */
        }
    }

    struct roll_child view[SIM_MAX];
    size_t slot[SIM_MAX], n = 0;
    for (size_t i = 0; i < SIM_MAX; i++)
        if (s->live[i]) {
            view[n] = s->kids[i];
            slot[n++] = i;
        }
    size_t ready_before = sim_ready(s, ROLL_WORKER);
    struct roll_stop stop[SIM_MAX];
    struct roll_plan plan;
    struct roll_params p = params(want, 1, s->gen, s->now);
    roll_plan(view, n, &p, &plan, stop);
    for (size_t k = 0; k < plan.n_stop; k++)
        s->kids[slot[stop[k].index]].retiring = true;

    /* the invariant: a roll never takes the ready count below want (nor
     * below what it was, when the pool was short already) */
    size_t ready_after = sim_ready(s, ROLL_WORKER);
    size_t floor = ready_before < want ? ready_before : want;
    assert_true(ready_after >= floor);
    for (size_t k = 0; k < plan.n_stop; k++) {
        const struct roll_child *c = &view[stop[k].index];
        if (stop[k].why == ROLL_STOP_REPLACED)
            assert_true(c->ready && c->gen != s->gen);
        else
            assert_true(c->replacement && !c->ready);
    }

    for (int kind = 0; kind < ROLL_KINDS; kind++) {
        for (size_t k = 0; k < plan.fill[kind]; k++)
            if (sim_rand(s) % 100 >= failure_pct)
                sim_fork(s, (enum roll_kind)kind, false, 0);
        for (size_t k = 0; k < plan.replace[kind]; k++)
            if (sim_rand(s) % 100 >= failure_pct)
                sim_fork(s, (enum roll_kind)kind, true, failure_pct / 3);
    }

    struct roll_child after[SIM_MAX];
    n = 0;
    for (size_t i = 0; i < SIM_MAX; i++)
        if (s->live[i])
            after[n++] = s->kids[i];
    return !roll_in_progress(after, n, s->gen);
}

static void
sim_start(struct sim *s, size_t want, unsigned seed)
{
    memset(s, 0, sizeof *s);
    s->rng = seed;
    s->now = T0;
    for (size_t i = 0; i < want; i++) {
        sim_fork(s, ROLL_WORKER, false, 0);
        s->kids[i].ready = true;
    }
    sim_fork(s, ROLL_RELAY, false, 0);
    s->kids[want].ready = true;
}

static void
test_simulated_rolls_keep_the_pool(void **state)
{
    (void)state;
    const size_t want = 5;
    for (unsigned seed = 1; seed <= 200; seed++) {
        struct sim s;
        sim_start(&s, want, seed);
        s.gen++; /* SIGHUP */
        int ticks = 0;
        bool second = false;
        /* a troubled phase: 30 % of forks fail, starters die or hang */
        for (; ticks < 40; ticks++) {
            (void)sim_tick(&s, want, 30);
            if (!second && seed % 3 == 0 && ticks == 5) {
                s.gen++; /* a second SIGHUP mid-roll */
                second = true;
            }
        }
        /* then a healthy one: the roll must finish (timeouts clear the
         * hung starters) */
        bool done = false;
        for (int k = 0; k < 200 && !done; k++)
            done = sim_tick(&s, want, 0);
        assert_true(done);
        /* a whole pool of the current generation, ready */
        size_t fresh = 0;
        for (size_t i = 0; i < SIM_MAX; i++)
            if (s.live[i] && !s.kids[i].retiring &&
                s.kids[i].kind == ROLL_WORKER) {
                assert_int_equal(s.kids[i].gen, s.gen);
                fresh++;
            }
        assert_int_equal(fresh, want);
    }
}

static void
test_simulated_roll_without_failures_is_one_at_a_time(void **state)
{
    (void)state;
    const size_t want = 4;
    struct sim s;
    sim_start(&s, want, 7);
    s.gen++;
    int ticks = 0;
    while (!sim_tick(&s, want, 0)) {
        size_t live = 0;
        for (size_t i = 0; i < SIM_MAX; i++)
            if (s.live[i] && s.kids[i].kind == ROLL_WORKER &&
                !s.kids[i].retiring)
                live++;
        assert_true(live <= want + 1); /* surge 1 */
        assert_true(++ticks < 100);
    }
    /* fork, ready + stop, per worker: a handful of ticks each */
    assert_true(ticks >= (int)want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_start_fills_the_pool),
        cmocka_unit_test(test_steady_pool_does_nothing),
        cmocka_unit_test(test_crash_is_filled_retiring_not_counted),
        cmocka_unit_test(test_sighup_forks_one_replacement_and_stops_nothing),
        cmocka_unit_test(test_starting_replacement_stops_nothing_forks_nothing),
        cmocka_unit_test(test_ready_replacement_stops_exactly_one_old),
        cmocka_unit_test(test_failed_fork_or_early_death_stops_nothing),
        cmocka_unit_test(test_replacement_past_deadline_is_given_up),
        cmocka_unit_test(test_old_crash_during_roll_is_filled),
        cmocka_unit_test(test_second_sighup_replaces_oldest_first),
        cmocka_unit_test(test_generation_wraps),
        cmocka_unit_test(test_over_full_forks_nothing),
        cmocka_unit_test(test_simulated_rolls_keep_the_pool),
        cmocka_unit_test(test_simulated_roll_without_failures_is_one_at_a_time),
    };
    return cmocka_run_group_tests_name("roll", tests, NULL, NULL);
}
