/*
 * common/clock.c — see clock.h.
 */
#include "clock.h"

#include <stdio.h>
#include <time.h>

long long
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long long
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
utc_stamp(char out[UTC_STAMP_LEN], bool micro)
{
    struct timespec ts;
    struct tm tm;
    char base[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (micro)
        snprintf(out, UTC_STAMP_LEN, "%s.%06uZ", base,
                 (unsigned)(ts.tv_nsec / 1000) % 1000000u);
    else
        snprintf(out, UTC_STAMP_LEN, "%s.%03uZ", base,
                 (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}
