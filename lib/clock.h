// SPDX-License-Identifier: GPL-3.0-or-later
// Clock readings as nanosecond counts: probe stamps, perf timestamps, strace's and the run's
// times are all compared as plain integers.
#ifndef MD_CLOCK_H
#define MD_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

// A time after the epoch (or after boot) in nanoseconds; never negative for those clocks.
static inline uint64_t md_timespec_ns(struct timespec ts)
{
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// A duration of rusage's in seconds.
static inline double md_timeval_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static inline uint64_t md_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return md_timespec_ns(ts);
}

#endif
