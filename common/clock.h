/*
 * common/clock.h — the clocks, read in one place.
 *
 * The monotonic clock is for deadlines and intervals, never for
 * timestamps that leave the process; the wall clock is for timestamps
 * only.  Pure modules take "now" as an argument instead (an injected
 * clock, so their tests set it).
 */
#ifndef FI_CLOCK_H
#define FI_CLOCK_H

#include <stdbool.h>

/* CLOCK_MONOTONIC in milliseconds and in microseconds. */
long long mono_ms(void);
long long mono_us(void);

/* CLOCK_REALTIME in milliseconds since the epoch. */
long long wall_ms(void);

/* "2025-10-23T14:34:51.467162Z" (micro) or "2025-10-23T14:34:51.467Z":
 * now, in UTC, NUL-terminated. */
#define UTC_STAMP_LEN 32
void utc_stamp(char out[UTC_STAMP_LEN], bool micro);

#endif
