// SPDX-License-Identifier: MIT
// The file that malloc-doctor's probe and the tool share.
//
// The tool creates the file and passes its path in MD_PROBE_FILE; every process of the traced
// program (forks and execs included) maps it MAP_SHARED and counts into its own per-thread slot
// without locks. Because the counts live in a shared file mapping, they survive _exit, crashes and
// SIGKILL: the tool reads the file after the whole process tree is gone.
//
// Layout: header | slots[slot_count] | slow[slow_max].
#ifndef MD_PROBE_SHARED_H
#define MD_PROBE_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MD_PROBE_MAGIC 0x3165626f7270646dull // "mdprobe1"
#define MD_PROBE_VERSION 1
#define MD_PROBE_ENV "MD_PROBE_FILE"
#define MD_PROBE_SLOTS 1024
#define MD_PROBE_SLOW_MAX (1u << 20)

enum md_probe_op {
    MD_OP_MALLOC,
    MD_OP_FREE,
    MD_OP_CALLOC,
    MD_OP_REALLOC,
    MD_OP_ALIGNED, // posix_memalign, aligned_alloc, memalign, valloc, pvalloc
    MD_OP_COUNT,
};

// Request sizes below MD_HIST_EXACT are counted exactly (size-class boundaries are a few bytes
// wide); above, per power of two.
#define MD_HIST_EXACT 4096
#define MD_HIST_LOG2 64

// One thread of one process. Written only by its thread; read by the tool after exit.
struct md_probe_slot {
    _Atomic uint32_t claimed; // 0 free, 1 taken
    int32_t pid, tid;
    uint32_t reserved;
    uint64_t ops[MD_OP_COUNT];
    uint64_t bytes_requested;
    uint64_t slow_calls;
    uint64_t slow_dropped; // slow calls that did not fit in the log
    uint64_t hist_exact[MD_HIST_EXACT];
    uint64_t hist_log2[MD_HIST_LOG2];
};

// An allocator call that took longer than the threshold: the syscalls strace saw on this thread
// between start and end happened inside it. The end is read from CLOCK_REALTIME, strace's own
// clock, when the call is found slow (rarely, so the cost does not matter); ticks give only the
// duration, so tick counters that differ between CPUs cannot shift the call in time.
struct md_probe_slow {
    uint64_t ticks; // duration in ticks
    uint64_t end_realtime_ns;
    uint64_t size; // request size (for free: the block's usable size)
    int32_t tid;
    uint32_t op;
};

struct md_probe_header {
    uint64_t magic;
    uint32_t version, slot_count;
    uint64_t slow_max;
    uint64_t slow_threshold_ticks; // set by the tool
    _Atomic uint32_t slots_used;
    _Atomic uint32_t slots_overflow; // threads that found no free slot
    _Atomic uint64_t slow_used;
    _Atomic uint32_t processes; // processes that attached
    uint32_t reserved;
    // One (ticks, CLOCK_REALTIME) pair taken by the tool before the program starts; with a second
    // pair after it ends, the tool knows the tick rate.
    uint64_t cal_tsc, cal_realtime_ns;
};

static inline size_t md_probe_file_size(uint32_t slots, uint64_t slow_max)
{
    return sizeof(struct md_probe_header) + slots * sizeof(struct md_probe_slot) +
           slow_max * sizeof(struct md_probe_slow);
}

static inline struct md_probe_slot *md_probe_slots(struct md_probe_header *h)
{
    return (struct md_probe_slot *)(h + 1);
}

static inline struct md_probe_slow *md_probe_slow_log(struct md_probe_header *h)
{
    return (struct md_probe_slow *)(md_probe_slots(h) + h->slot_count);
}

static inline unsigned md_probe_log2_bin(uint64_t size)
{
    return size ? 63u - (unsigned)__builtin_clzll(size) : 0;
}

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t md_probe_ticks(void)
{
    return __rdtsc(); // ~7 ns and constant-rate on every x86 this runs on
}
#else
#include <time.h>
static inline uint64_t md_probe_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

#endif
