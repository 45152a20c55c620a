/*
 * fcgi-app/proc/roll.c — see roll.h.
 */
#include "roll.h"

#include <string.h>

/* Counts of one kind's children that are not retiring and not stopped by
 * this plan. */
struct tally {
    long active; /* A: all of them */
    long old;    /* O: of an older generation */
    long fresh;  /* N: of the current generation */
    long ready;  /* R: ready, whatever their generation */
};

static bool
is_named(const struct roll_stop *stop, size_t n_stop, size_t i)
{
    for (size_t k = 0; k < n_stop; k++)
        if (stop[k].index == i)
            return true;
    return false;
}

static long
min_long(long a, long b)
{
    return a < b ? a : b;
}

static void
count(const struct roll_child *kids, size_t n, const struct roll_params *p,
      const struct roll_stop *stop, size_t n_stop, struct tally *t)
{
    memset(t, 0, ROLL_KINDS * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        const struct roll_child *c = &kids[i];
        if (c->retiring || is_named(stop, n_stop, i))
            continue;
        struct tally *k = &t[c->kind];
        k->active++;
        if (c->gen == p->gen)
            k->fresh++;
        else
            k->old++;
        if (c->ready)
            k->ready++;
    }
}

/* The oldest ready child of `kind` from an older generation, not retiring
 * and not yet named; n when there is none. */
static size_t
oldest_ready(const struct roll_child *kids, size_t n,
             const struct roll_params *p, enum roll_kind kind,
             const struct roll_stop *stop, size_t n_stop)
{
    size_t best = n;
    unsigned best_age = 0;
    for (size_t i = 0; i < n; i++) {
        const struct roll_child *c = &kids[i];
        /* unsigned arithmetic: an age survives the counter's wrap */
        unsigned age = p->gen - c->gen;
        if (c->kind != kind || c->retiring || !c->ready || age == 0 ||
            is_named(stop, n_stop, i))
            continue;
        if (best == n || age > best_age) {
            best = i;
            best_age = age;
        }
    }
    return best;
}

void
roll_plan(const struct roll_child *kids, size_t n, const struct roll_params *p,
          struct roll_plan *plan, struct roll_stop *stop)
{
    memset(plan, 0, sizeof *plan);

    /* Replacements that missed their deadline: given up.  They are not
     * ready, so the ready counts below do not move. */
    for (size_t i = 0; i < n; i++) {
        const struct roll_child *c = &kids[i];
        if (c->replacement && !c->ready && !c->retiring &&
            p->now_ms - c->started_ms >= p->ready_timeout_ms)
            stop[plan->n_stop++] =
                (struct roll_stop){.index = i, .why = ROLL_STOP_NOT_READY};
    }

    struct tally t[ROLL_KINDS];
    count(kids, n, p, stop, plan->n_stop, t);

    for (int kind = 0; kind < ROLL_KINDS; kind++) {
        struct tally *k = &t[kind];
        long want = (long)p->want[kind];

        /* Old children go only while more than `want` ready ones remain. */
        while (k->ready > want) {
            size_t i = oldest_ready(kids, n, p, (enum roll_kind)kind, stop,
                                    plan->n_stop);
            if (i == n)
                break;
            stop[plan->n_stop++] =
                (struct roll_stop){.index = i, .why = ROLL_STOP_REPLACED};
            k->ready--;
            k->active--;
            k->old--;
        }

        /* Forks: up to `want` of the current generation, and while old ones
         * remain, up to `surge` beyond the pool. */
        long surge = k->old > 0 ? (long)p->surge : 0;
        long forks = min_long(want - k->fresh, want + surge - k->active);
        long fill = want - k->active;
        if (fill < 0)
            fill = 0;
        if (forks < fill) /* over-full: nothing to fork */
            forks = fill;
        plan->fill[kind] = (size_t)fill;
        plan->replace[kind] = (size_t)(forks - fill);
    }
}

bool
roll_in_progress(const struct roll_child *kids, size_t n, unsigned gen)
{
    for (size_t i = 0; i < n; i++)
        if (!kids[i].retiring && kids[i].gen != gen)
            return true;
    return false;
}
