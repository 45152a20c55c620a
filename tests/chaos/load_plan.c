/*
 * tests/chaos/load_plan.c — see load_plan.h.
 */
#include "load_plan.h"

#include "util.h"

#include "common/topology.h"

#include <string.h>

#define MAX_KEY_FIELDS 3

int
load_parse_key_line(char *line, char **name, char **key)
{
    char *tok[MAX_KEY_FIELDS];
    size_t n = chaos_split(line, tok, MAX_KEY_FIELDS);
    if (n == 0 || tok[0][0] == '#')
        return 0;
    if (n != 2 || !is_consumer_name(tok[0], strlen(tok[0])))
        return -1;
    *name = tok[0];
    *key = tok[1];
    return 1;
}

uint64_t
load_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t
load_rand_below(uint64_t *state, uint64_t n)
{
    return n == 0 ? 0 : load_rand(state) % n;
}

enum load_status
load_status_parse(const char *s)
{
    if (s == NULL)
        return LOAD_STATUS_UNKNOWN;
    if (strcmp(s, "ACTIVE") == 0)
        return LOAD_ACTIVE;
    if (strcmp(s, "INACTIVE") == 0)
        return LOAD_INACTIVE;
    return LOAD_STATUS_UNKNOWN;
}

const char *
load_status_name(enum load_status s)
{
    switch (s) {
    case LOAD_ACTIVE:
        return "ACTIVE";
    case LOAD_INACTIVE:
        return "INACTIVE";
    case LOAD_STATUS_UNKNOWN:
    default:
        return "UNKNOWN";
    }
}

enum load_status
load_status_target(enum load_status known, uint64_t rnd)
{
    switch (known) {
    case LOAD_ACTIVE:
        return LOAD_INACTIVE;
    case LOAD_INACTIVE:
        return LOAD_ACTIVE;
    case LOAD_STATUS_UNKNOWN:
    default:
        return (rnd & 1) ? LOAD_ACTIVE : LOAD_INACTIVE;
    }
}

enum load_status
load_status_after(enum load_status target, long http)
{
    if ((http >= 200 && http <= 299) || http == 409)
        return target;
    return LOAD_STATUS_UNKNOWN;
}

bool
load_is_retryable(long http)
{
    return http == 0 || http == 502 || http == 503 || http == 504;
}

long
load_backoff_ms(int retry)
{
    long ms = LOAD_BACKOFF_FIRST_MS;
    for (int i = 1; i < retry && ms < LOAD_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > LOAD_BACKOFF_MAX_MS ? LOAD_BACKOFF_MAX_MS : ms;
}
