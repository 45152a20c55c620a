/*
 * fcgi-app/outbox/breaker.c — see breaker.h.
 */
#include "breaker.h"

void
breaker_init(struct breaker *b, long threshold, long long cooldown_ms)
{
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->threshold = threshold > 0 ? threshold : 1;
    b->cooldown_ms = cooldown_ms;
    b->opened_at = 0;
}

bool
breaker_allow(struct breaker *b, long long now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
    case BREAKER_HALF_OPEN:
        return true;
    case BREAKER_OPEN:
        if (now_ms - b->opened_at >= b->cooldown_ms) {
            b->state = BREAKER_HALF_OPEN;
            return true;
        }
        return false;
    }
    return false;
}

void
breaker_force(struct breaker *b)
{
    if (b->state == BREAKER_OPEN)
        b->state = BREAKER_HALF_OPEN;
}

void
breaker_trip(struct breaker *b, long long now_ms)
{
    b->state = BREAKER_OPEN;
    b->opened_at = now_ms;
    b->failures = 0;
}

void
breaker_success(struct breaker *b)
{
    b->state = BREAKER_CLOSED;
    b->failures = 0;
}

void
breaker_failure(struct breaker *b, long long now_ms)
{
    if (b->state == BREAKER_HALF_OPEN ||
        (b->state == BREAKER_CLOSED && ++b->failures >= b->threshold)) {
        b->state = BREAKER_OPEN;
        b->opened_at = now_ms;
        b->failures = 0;
    }
}

const char *
breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_HALF_OPEN:
        return "half_open";
    case BREAKER_OPEN:
        return "open";
    }
    return "unknown";
}
