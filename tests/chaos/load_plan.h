/*
 * tests/chaos/load_plan.h — the decisions of `fintegrate-chaos load` that
 * need no network: the keys file, a seeded random source, the status a
 * change asks for, which answers are retried and after how long.
 *
 * Pure: no I/O, no global state.
 */
#ifndef CHAOS_LOAD_PLAN_H
#define CHAOS_LOAD_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#define LOAD_BACKOFF_FIRST_MS 100
#define LOAD_BACKOFF_MAX_MS 2000
#define LOAD_GIVE_UP_MS 60000

/*
 * A keys-file line "<consumer_name> <api_key>", parsed in place: 1 and
 * *name, *key borrowed from line; 0 blank or comment ('#'); -1 malformed
 * (not two words, or a name that is not a consumer_name).
 */
int load_parse_key_line(char *line, char **name, char **key);

/* splitmix64: the next value of the random stream in *state. */
uint64_t load_rand(uint64_t *state);
/* A value in [0, n) (n > 0). */
uint64_t load_rand_below(uint64_t *state, uint64_t n);

enum load_status { LOAD_STATUS_UNKNOWN = 0, LOAD_ACTIVE, LOAD_INACTIVE };

/* "ACTIVE" / "INACTIVE" → the enum; anything else UNKNOWN. */
enum load_status load_status_parse(const char *s);
const char *load_status_name(enum load_status s);
/* The status a change asks for: the one the customer does not have; a coin
 * toss (rnd's low bit) when it is unknown. */
enum load_status load_status_target(enum load_status known, uint64_t rnd);
/* What the customer's status is known to be after a change to `target`
 * answered `http` (0 = no answer): the target after a 2xx or a 409
 * ("already <STATUS>"), else unknown. */
enum load_status load_status_after(enum load_status target, long http);

/* Whether --retry retries this answer: 502, 503, 504 or no answer (0). */
bool load_is_retryable(long http);
/* The wait before retry number `retry` (1 = the first): 100 ms doubling,
 * at most 2 s. */
long load_backoff_ms(int retry);

#endif
