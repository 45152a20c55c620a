/*
 * common/clock.h — the monotonic clock in milliseconds, for
 * deadlines and intervals (never for timestamps that leave the process).
 */
#ifndef FI_CLOCK_H
#define FI_CLOCK_H

#include <time.h>

static inline long long
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
