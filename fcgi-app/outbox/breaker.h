/*
 * fcgi-app/outbox/breaker.h — the circuit breaker around the broker: a pure
 * state machine with an injected clock (milliseconds), so it unit-tests
 * without a broker or a sleep.
 *
 *   CLOSED    --N consecutive failures-->  OPEN
 *   OPEN      --cool-down elapsed, next breaker_allow()-->  HALF_OPEN
 *   HALF_OPEN --success-->  CLOSED      --failure-->  OPEN (cool-down again)
 *
 * While OPEN, breaker_allow() says no and the caller touches no network.
 * breaker_force() lets one attempt through regardless (the re-drive
 * endpoints' forced probe) and is then judged like a half-open try.
 */
#ifndef FI_BREAKER_H
#define FI_BREAKER_H

#include <stdbool.h>

enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_HALF_OPEN = 1,
    BREAKER_OPEN = 2,
};

struct breaker {
    enum breaker_state state;
    long failures;  /* consecutive, while closed */
    long threshold; /* failures that open the circuit (>= 1) */
    long long cooldown_ms;
    long long opened_at; /* when it last opened */
};

void breaker_init(struct breaker *b, long threshold, long long cooldown_ms);

/* May an attempt go out now?  Moves OPEN → HALF_OPEN once the cool-down
 * has passed. */
bool breaker_allow(struct breaker *b, long long now_ms);

/* Lets the next attempt through whatever the state (a forced probe). */
void breaker_force(struct breaker *b);

/* Opens the circuit now, whatever the count (a failed forced probe: the
 * re-drive's remaining events then fail fast). */
void breaker_trip(struct breaker *b, long long now_ms);

void breaker_success(struct breaker *b);
void breaker_failure(struct breaker *b, long long now_ms);

/* "closed", "half_open", "open". */
const char *breaker_state_name(enum breaker_state s);

#endif
