// SPDX-License-Identifier: MIT
// The file that malloc-doctor's probe and the tool share.
//
// The tool creates the file and passes its path in MD_PROBE_FILE; every process of the traced
// program (forks and execs included) maps it MAP_SHARED and counts into its own per-thread slot
// without locks. Because the counts live in a shared file mapping, they survive _exit, crashes and
// SIGKILL: the tool reads the file after the whole process tree is gone.
//
// Layout: header | slots[slot_count] | slow[slow_max] | objects[object_max] | stacks[stack_max]
//         | live[live_max]. The last three are used only with --stacks or --leaks.
#ifndef MD_PROBE_SHARED_H
#define MD_PROBE_SHARED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MD_PROBE_MAGIC 0x3165626f7270646dull // "mdprobe1"
#define MD_PROBE_VERSION 12
#define MD_PROBE_ENV "MD_PROBE_FILE"
// "FD DEV INO": a descriptor of the file that the tool leaves open across exec, for a process
// that cannot open the path (it switched to another user: the file is the tool's user's, mode
// 0600). The device and inode tell the probe that the descriptor is still the file, and not
// one the program reused the number for.
#define MD_PROBE_FD_ENV "MD_PROBE_FD"
#define MD_PROBE_SLOTS 1024
#define MD_PROBE_SLOW_MAX (1u << 20)
#define MD_PROBE_OBJECTS 4096
#define MD_PROBE_STACKS (1u << 16)
#define MD_PROBE_LIVE (1u << 22)
#define MD_PROBE_FRAMES 8
// Marks a frame that is a guess at a caller the frame-pointer walk cannot see (alloc/probe.c):
// return addresses are user-space addresses, far below this bit.
#define MD_PROBE_FRAME_GUESS (1ull << 63)
// A path as the kernel takes it (PATH_MAX, its NUL included): a shorter buffer cut long build
// paths (Bazel trees, deep CI workspaces) to a directory's name, and the frames went unnamed.
#define MD_PROBE_PATH 4096
#define MD_PROBE_PIDS 4096
#define MD_PROBE_PROVIDER_PATH MD_PROBE_PATH
#define MD_PROBE_IMAGES 4096
#define MD_PROBE_COMM 16                        // TASK_COMM_LEN
#define MD_PROBE_OWN_MAPS (2 * MD_PROBE_IMAGES) // the library and the file, per image

enum md_probe_flags {
    MD_PROBE_WANT_STACKS = 1, // allocation call stacks, counted per stack
    MD_PROBE_WANT_LEAKS = 2,  // every live block, with its stack
    MD_PROBE_PRECISE = 4,     // time every call with ticks, never the rseq switch mark
    // With the rseq mark, a thread forwards malloc and free with a tail call after a stretch of
    // calls that regained control (alloc/probe.c, "tail mode"): a switch then ends a window that
    // may run past a call's return (MD_SLOW_AFTER_RETURN)
    MD_PROBE_TAIL_CALLS = 8,
};

// md_probe_slow.kind
enum md_probe_slow_kind {
    MD_SLOW_CALL = 0, // the syscalls in the window happened inside the call
    // A thread in tail mode was switched out between one call's entry and the next call's, or
    // during a call that regained control (where a tail call nested in it may have made the
    // syscall): the window's syscalls were made inside a call or by the program after it, which
    // the probe cannot tell apart. Its op and size say nothing.
    MD_SLOW_AFTER_RETURN = 1,
};

// How slow calls were found (header.method, written by each process's probe).
enum md_probe_method {
    MD_METHOD_TICKS = 1,       // tick counter at both ends of every call
    MD_METHOD_RSEQ = 2,        // the kernel cleared an armed rseq_cs: the thread was switched out
    MD_METHOD_CHUNK_SIZES = 4, // free read block sizes from glibc's chunk headers (probe.c)
};

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
    // Malloc's count and the bytes of requests below MD_HIST_EXACT are not kept: the histogram
    // has them (md_probe_slot_totals), and malloc touches one counter instead of three.
    uint64_t ops[MD_OP_COUNT];
    uint64_t bytes_requested_large; // requests of MD_HIST_EXACT bytes and more
    uint64_t slow_calls;
    uint64_t slow_dropped; // slow calls that did not fit in the log
    uint64_t hist_exact[MD_HIST_EXACT];
    uint64_t hist_log2[MD_HIST_LOG2];
    // C++ operator new and delete (every variant), which ops[] counts already as the call each
    // stands for (new as malloc or aligned, delete as free): how many of those were C++'s. After
    // the fields malloc and free touch, so that their offsets stay as they were, and followed by a
    // cache line of padding: the next slot's first line, another thread's counters, would
    // otherwise share their line (the ping-pong between CPUs cost 20 ns per new).
    uint64_t cxx_new, cxx_delete;
    uint64_t tail_entries; // times the thread entered tail mode (alloc/probe.c)
    uint64_t cxx_pad[8];
};

// An allocator call that took longer than the threshold: the syscalls strace saw on this thread
// between start and end happened inside it. The end is read from CLOCK_REALTIME, strace's own
// clock, when the call is found slow (rarely, so the cost does not matter); ticks give only the
// duration (up to after the end stamp was read: md_probe_stamp_end), so tick counters that
// differ between CPUs cannot shift the call in time.
struct md_probe_slow {
    uint64_t ticks;             // duration in ticks (tick timing), else 0
    uint64_t start_realtime_ns; // rseq mark: no syscall of the call came before this, else 0
    uint64_t end_realtime_ns;
    uint64_t size; // request size (for free: the block's usable size)
    int32_t tid;
    uint16_t op;
    uint16_t kind;  // enum md_probe_slow_kind
    uint32_t stack; // index into the stack table + 1, 0 when not captured
    uint32_t reserved2;
};

// A loaded ELF object of one process (from dl_iterate_phdr), to symbolize return addresses.
struct md_probe_object {
    int32_t pid;
    uint32_t stamped;          // 1: `file` holds the file as it was when recorded
    uint64_t bias, start, end; // load bias; the address range of its PT_LOAD segments
    uint64_t recorded_ns;      // CLOCK_REALTIME when the probe recorded it (0: not known)
    // The file's identity and times when the probe recorded it (alloc/probe_stamp.h): a file
    // that differs after the run changed after it was loaded. Comparing its times with
    // recorded_ns instead missed changes made within the kernel's timestamp tick (4 ms) after
    // the load: file times come from a coarse clock.
    struct md_probe_file_stamp {
        uint64_t dev, ino, size, mtime_ns, ctime_ns;
    } file;
    char path[MD_PROBE_PATH]; // empty: not known (a cut path would name another file)
};

// Copies an object's entry for another process, the path only as far as its end: the buffer is
// mostly unused, and a fork copies every object of its parent.
static inline void md_probe_object_copy(struct md_probe_object *to,
                                        const struct md_probe_object *from, int32_t pid)
{
    to->pid = pid;
    to->bias = from->bias;
    to->start = from->start;
    to->end = from->end;
    to->recorded_ns = from->recorded_ns;
    to->stamped = from->stamped;
    to->file = from->file;
    size_t k = 0;
    for (; k < MD_PROBE_PATH - 1 && from->path[k]; k++)
        to->path[k] = from->path[k];
    to->path[k] = 0;
}

// A distinct call stack (return addresses, innermost first), with what allocated from it.
struct md_probe_stack {
    _Atomic uint64_t hash; // 0: free entry
    uint32_t depth;
    int32_t pid;
    uint64_t frames[MD_PROBE_FRAMES];
    _Atomic uint64_t allocations, bytes;
};

// A block that is live now (--leaks): open addressing on the block's address.
#define MD_PROBE_LIVE_TOMBSTONE 1u
#define MD_PROBE_LIVE_BUSY 2u // claimed by an insert that has not filled in the entry yet
struct md_probe_live {
    // 0 free, MD_PROBE_LIVE_TOMBSTONE freed, MD_PROBE_LIVE_BUSY being filled in, else the block
    _Atomic uint64_t address;
    uint64_t size;
    // The image that allocated it: its number in image_runs (md_probe_take_image), or its pid,
    // negated, when that table was full. Not the pid: an exec replaces the heap, and the new
    // image must neither free the old one's blocks nor inherit them as its own leaks.
    int32_t image;
    uint32_t stack; // index + 1, or 0
};

struct md_probe_header {
    uint64_t magic;
    uint32_t version, slot_count;
    uint64_t slow_max;
    uint64_t slow_threshold_ticks; // set by the tool
    _Atomic uint32_t slots_used;
    _Atomic uint32_t slots_overflow; // threads that found no free slot
    // The tool's pid namespace (of /proc/self/ns/pid) and its pid there, set by the tool: the
    // pids and tids strace and perf give are that namespace's. A probe in another namespace
    // (unshare -p, bwrap, a container) translates its own into it (alloc/probe_proc.c).
    uint64_t tool_pidns_dev, tool_pidns_ino; // 0: not known (no /proc): the probe assumes its own
    int32_t tool_pid;
    // processes that ran in another pid namespace and could not tell their pids in the tool's:
    // they write tokens instead, negated (so none can pass for a pid of the tool's namespace),
    // and each thread announces its token in a marker syscall (md_probe_id_mark) that strace and
    // perf record under the thread's id in the tool's namespace; the tool maps them back
    // (lib/probe_file.h) and leaves here the processes it could not map
    _Atomic uint32_t foreign_pid_processes;
    _Atomic uint32_t id_tokens; // the last token taken
    _Atomic uint64_t slow_used;
    _Atomic uint32_t processes; // distinct processes that ran with a probe (md_probe_count_process)
    uint32_t flags;             // md_probe_flags
    uint32_t object_max, stack_max;
    uint64_t live_max;
    _Atomic uint32_t objects_used, stacks_used;
    _Atomic uint64_t stacks_dropped, live_dropped;
    _Atomic uint32_t method; // md_probe_method bits of every process that attached
    // calls the static probe could not count (more threads than its table holds)
    _Atomic uint32_t uncounted_calls;
    // The pids counted in `processes`: a process attaches again after an exec, and a forked
    // child is counted at the fork (it may never exec). Open addressing; 0 is a free entry.
    _Atomic int32_t process_pids[MD_PROBE_PIDS];
    // The file whose malloc the preload probe forwards to in the first process that attached,
    // in the last image that process exec'd (`env`, `nice` and the like exec the program in
    // place): what really serves malloc at run time, LD_PRELOAD and library paths included.
    _Atomic int32_t provider_pid;
    char malloc_provider[MD_PROBE_PROVIDER_PATH];
    // That image's executable (/proc/self/exe): another program than the command named when the
    // command exec'd it. Empty when unknown or longer than the buffer.
    char malloc_provider_image[MD_PROBE_PROVIDER_PATH];
    // Every program image that ran with a probe: the process and its comm (the kernel's 15-byte
    // name). The tool compares them with the kernel's exit records: a process whose last image
    // is not here exec'd something the probe could not follow (a static program, a setuid one).
    struct md_probe_image {
        _Atomic int32_t pid; // 0: free
        char comm[MD_PROBE_COMM];
    } images[MD_PROBE_IMAGES];
    _Atomic uint32_t images_dropped; // notes that found the table full: coverage is unknown
    // What the preload probe mapped for itself in each image: its own library (mapped by the
    // dynamic loader) and this file. The tool leaves those mmaps and mprotects out of the
    // program's syscalls (lib/probe_file.h); a full table leaves them in.
    _Atomic uint32_t own_maps_used;
    struct md_probe_own_map {
        int32_t tid; // the thread that made the mapping
        uint32_t reserved;
        uint64_t start, end; // [start, end)
        uint64_t noted_ns;   // CLOCK_REALTIME once it existed: the syscalls came before
    } own_maps[MD_PROBE_OWN_MAPS];
    // Every image that attached, and every forked child, numbered from 1 in the order they
    // attached: the live-block table names blocks by these. An image whose process (the same pid
    // and start time) has a later number exec'd: its blocks were discarded by the exec, not
    // leaked. The start time (/proc/self/stat field 22) survives exec and tells a process from a
    // later one the kernel gave the same pid. An exec into an image that never attaches (a
    // static program, a process that cannot open the file) is found by its time instead: the
    // recorded execve of that pid came after attached_ns (lib/probe_file.h).
    _Atomic uint32_t image_runs_used;
    struct md_probe_image_run {
        int32_t pid; // in the tool's namespace (negated: see foreign_pid_processes)
        uint32_t reserved;
        uint64_t start_time;  // clock ticks after boot; 0: not known (never taken for an exec)
        uint64_t attached_ns; // CLOCK_REALTIME (strace's clock) at the attach; 0: not known
    } image_runs[MD_PROBE_IMAGES];
};

// Entry i of the probe sequence for pid in an open-addressed table of n entries.
static inline uint32_t md_probe_pid_slot(int32_t pid, uint32_t i, uint32_t n)
{
    return ((uint32_t)pid * 2654435761u + i) % n;
}

// Two comms (16-byte buffers; the static probe has no strncmp).
static inline bool md_probe_comm_equal(const char *a, const char *b)
{
    for (size_t k = 0; k < MD_PROBE_COMM - 1; k++) {
        if (a[k] != b[k])
            return false;
        if (!a[k])
            return true;
    }
    return true;
}

// True when a probe noted pid running the image named comm (the tool, after the run).
static inline bool md_probe_image_noted(const struct md_probe_header *h, int32_t pid,
                                        const char *comm)
{
    for (uint32_t i = 0; i < MD_PROBE_IMAGES; i++) {
        const struct md_probe_image *e = &h->images[md_probe_pid_slot(pid, i, MD_PROBE_IMAGES)];
        int32_t seen = atomic_load(&e->pid);
        if (seen == 0)
            return false;
        if (seen == pid && md_probe_comm_equal(e->comm, comm))
            return true;
    }
    return false;
}

// Notes that pid runs the image named comm (a 16-byte buffer) with a probe, once per pair; a full
// table drops it.
static inline void md_probe_note_image(struct md_probe_header *h, int32_t pid, const char *comm)
{
    for (uint32_t i = 0; i < MD_PROBE_IMAGES; i++) {
        struct md_probe_image *e = &h->images[md_probe_pid_slot(pid, i, MD_PROBE_IMAGES)];
        int32_t seen = 0;
        if (atomic_compare_exchange_strong(&e->pid, &seen, pid)) {
            // only this process writes the entry it claimed
            for (size_t k = 0; k < MD_PROBE_COMM; k++)
                e->comm[k] = k + 1 < MD_PROBE_COMM ? comm[k] : 0;
            return;
        }
        if (seen == pid && md_probe_comm_equal(e->comm, comm))
            return;
    }
    atomic_fetch_add(&h->images_dropped, 1);
}

// Counts pid once in h->processes. A full table counts every call (more than MD_PROBE_PIDS
// processes in one run); a pid the kernel reuses within the run is counted once. True when this
// call counted it.
static inline bool md_probe_count_process(struct md_probe_header *h, int32_t pid)
{
    for (uint32_t i = 0; i < MD_PROBE_PIDS; i++) {
        _Atomic int32_t *e = &h->process_pids[md_probe_pid_slot(pid, i, MD_PROBE_PIDS)];
        int32_t seen = 0;
        if (atomic_compare_exchange_strong(e, &seen, pid))
            break;
        if (seen == pid)
            return false;
    }
    atomic_fetch_add(&h->processes, 1);
    return true;
}

// madvise(MD_PROBE_ID_MARK | token << 12, 0, MADV_NORMAL) announces a thread's token (see
// foreign_pid_processes): a length of 0 changes nothing, and the address is no mapping's.
#define MD_PROBE_ID_MARK 0x6d69640000000000ull // "mid"
#define MD_PROBE_ID_MARK_MASK 0xffffff0000000fffull
#define MD_PROBE_ID_TOKEN_MAX (1u << 28) // tokens fit between the mark and the page offset

static inline uint64_t md_probe_id_mark(uint32_t token)
{
    return MD_PROBE_ID_MARK | (uint64_t)token << 12;
}

// The token a marker address announces, or 0 when it is not one.
static inline uint32_t md_probe_id_token(uint64_t address)
{
    return (address & MD_PROBE_ID_MARK_MASK) == MD_PROBE_ID_MARK
               ? (uint32_t)(address >> 12) & (MD_PROBE_ID_TOKEN_MAX - 1)
               : 0;
}

// The number of a new image (or forked child) of process pid that started at start_time, for the
// live-block table: see image_runs.
static inline int32_t md_probe_take_image(struct md_probe_header *h, int32_t pid,
                                          uint64_t start_time, uint64_t attached_ns)
{
    uint32_t at = atomic_fetch_add(&h->image_runs_used, 1);
    if (at >= MD_PROBE_IMAGES)
        return pid > 0 ? -pid : pid; // negative: never an image number; kept as leaks
    h->image_runs[at] = (struct md_probe_image_run){
        .pid = pid, .start_time = start_time, .attached_ns = attached_ns};
    return (int32_t)at + 1;
}

// Notes a mapping the probe made for itself (see own_maps).
static inline void md_probe_note_own_map(struct md_probe_header *h, int32_t tid, uint64_t start,
                                         uint64_t end, uint64_t noted_ns)
{
    uint32_t at = atomic_fetch_add(&h->own_maps_used, 1);
    if (at < MD_PROBE_OWN_MAPS)
        h->own_maps[at] =
            (struct md_probe_own_map){.tid = tid, .start = start, .end = end, .noted_ns = noted_ns};
}

// The file's size for tables of these sizes (see Layout).
static inline size_t md_probe_size(uint64_t slots, uint64_t slow, uint64_t objects, uint64_t stacks,
                                   uint64_t live)
{
    return sizeof(struct md_probe_header) + slots * sizeof(struct md_probe_slot) +
           slow * sizeof(struct md_probe_slow) + objects * sizeof(struct md_probe_object) +
           stacks * sizeof(struct md_probe_stack) + live * sizeof(struct md_probe_live);
}

static inline size_t md_probe_file_size(const struct md_probe_header *h)
{
    return md_probe_size(h->slot_count, h->slow_max, h->object_max, h->stack_max, h->live_max);
}

// Where the file's tables are and how many entries each holds: its geometry, read from the
// header once. Writers and readers find the tables through their own copy, never through the
// header again: the program can rewrite the file (its path is in the environment), and a table
// found from a rewritten count would lie outside the mapping.
struct md_probe_view {
    struct md_probe_header *header;
    struct md_probe_slot *slots; // slots[0] is the overflow slot
    struct md_probe_slow *slow_log;
    struct md_probe_object *objects;
    struct md_probe_stack *stacks;
    struct md_probe_live *live;
    uint32_t slot_count, object_max, stack_max;
    uint64_t slow_max, live_max;
};

static inline bool md_probe_power_of_two_or_zero(uint64_t n)
{
    return !(n & (n - 1));
}

// Reads h's geometry into v. False when a count is above its maximum (which also keeps the sum
// below from overflowing), a hashed table's size is not a power of two (its index mask), or the
// tables do not fit in the mapped bytes.
static inline bool md_probe_view_init(struct md_probe_view *v, struct md_probe_header *h,
                                      size_t mapped)
{
    // each field read once: another process may be rewriting them
    *v = (struct md_probe_view){
        .header = h,
        .slot_count = __atomic_load_n(&h->slot_count, __ATOMIC_RELAXED),
        .object_max = __atomic_load_n(&h->object_max, __ATOMIC_RELAXED),
        .stack_max = __atomic_load_n(&h->stack_max, __ATOMIC_RELAXED),
        .slow_max = __atomic_load_n(&h->slow_max, __ATOMIC_RELAXED),
        .live_max = __atomic_load_n(&h->live_max, __ATOMIC_RELAXED),
    };
    if (!v->slot_count || v->slot_count > MD_PROBE_SLOTS || v->slow_max > MD_PROBE_SLOW_MAX ||
        v->object_max > MD_PROBE_OBJECTS || v->stack_max > MD_PROBE_STACKS ||
        v->live_max > MD_PROBE_LIVE || !md_probe_power_of_two_or_zero(v->stack_max) ||
        !md_probe_power_of_two_or_zero(v->live_max))
        return false;
    v->slots = (struct md_probe_slot *)(h + 1);
    v->slow_log = (struct md_probe_slow *)(v->slots + v->slot_count);
    v->objects = (struct md_probe_object *)(v->slow_log + v->slow_max);
    v->stacks = (struct md_probe_stack *)(v->objects + v->object_max);
    v->live = (struct md_probe_live *)(v->stacks + v->stack_max);
    return md_probe_size(v->slot_count, v->slow_max, v->object_max, v->stack_max, v->live_max) <=
           mapped;
}

// What the tool asked for (md_probe_flags: stacks, leaks) that v has the tables for.
static inline uint32_t md_probe_view_flags(const struct md_probe_view *v)
{
    uint32_t flags = __atomic_load_n(&v->header->flags, __ATOMIC_RELAXED);
    if (!v->object_max || !v->stack_max)
        return 0;
    return flags & (MD_PROBE_WANT_STACKS | (v->live_max ? MD_PROBE_WANT_LEAKS : 0));
}

// Whether h still has the geometry v was read with.
static inline bool md_probe_view_current(const struct md_probe_view *v)
{
    const struct md_probe_header *h = v->header;
    return h->slot_count == v->slot_count && h->object_max == v->object_max &&
           h->stack_max == v->stack_max && h->slow_max == v->slow_max && h->live_max == v->live_max;
}

static inline uint64_t md_probe_mix(uint64_t x)
{
    x ^= x >> 33; // a 64-bit finaliser: spreads pointer bits over the whole table
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

// --- the stack table and the live-block table, shared by every process -----------------------

static inline uint64_t md_probe_stack_hash(int32_t pid, const uint64_t *frames, unsigned depth)
{
    uint64_t h = (uint64_t)pid;
    for (unsigned i = 0; i < depth; i++)
        h = md_probe_mix(h ^ frames[i]);
    return h | 1; // 0 marks a free entry
}

// The entry (index + 1) of a stack of process pid, inserted on first sight; 0 when the table is
// full around its slot.
static inline uint32_t md_probe_stack_id(const struct md_probe_view *v, int32_t pid,
                                         const uint64_t *frames, unsigned depth)
{
    uint64_t h = md_probe_stack_hash(pid, frames, depth);
    struct md_probe_stack *table = v->stacks;
    uint32_t mask = v->stack_max - 1;
    if (!v->stack_max)
        return 0;
    for (uint32_t i = (uint32_t)h & mask, n = 0; n < 64; i = (i + 1) & mask, n++) {
        struct md_probe_stack *e = &table[i];
        uint64_t seen = atomic_load(&e->hash);
        if (seen == h && e->pid == pid && e->depth == depth &&
            !memcmp(e->frames, frames, depth * sizeof frames[0]))
            return i + 1;
        if (seen == 0 && atomic_compare_exchange_strong(&e->hash, &seen, h)) {
            // a reader racing with this write sees other frames and inserts a twin; the tool
            // merges entries with equal frames
            memcpy(e->frames, frames, depth * sizeof frames[0]);
            e->depth = depth;
            e->pid = pid;
            atomic_fetch_add(&v->header->stacks_used, 1);
            return i + 1;
        }
    }
    atomic_fetch_add(&v->header->stacks_dropped, 1);
    return 0;
}

// Where a block's entry starts. Neighbouring blocks get neighbouring entries (16 bytes of address
// per 32-byte entry), so the table pages a program touches grow with the heap it keeps live, at
// most twice its size, instead of one 4 KiB page per block: those pages count in the program's
// RSS. The bits above 64 MiB are mixed in so that glibc's thread arenas, aligned to 64 MiB, do not
// land on the same entries.
static inline uint64_t md_probe_live_slot(uint64_t block, uint64_t mask)
{
    return ((block >> 4) + md_probe_mix(block >> 26)) & mask;
}

static inline void md_probe_live_insert(const struct md_probe_view *v, int32_t image,
                                        uint64_t block, uint64_t size, uint32_t stack)
{
    struct md_probe_live *table = v->live;
    uint64_t mask = v->live_max - 1;
    for (uint64_t i = md_probe_live_slot(block, mask), n = 0; n < 256 && v->live_max;
         i = (i + 1) & mask, n++) {
        uint64_t seen = atomic_load(&table[i].address);
        // The address is published last (release): the table is shared with forked processes,
        // which have the same addresses, and one that saw the address next to the slot's old
        // image would take another process's entry for its own.
        if ((seen == 0 || seen == MD_PROBE_LIVE_TOMBSTONE) &&
            atomic_compare_exchange_strong(&table[i].address, &seen, MD_PROBE_LIVE_BUSY)) {
            table[i].size = size;
            table[i].image = image;
            table[i].stack = stack;
            atomic_store_explicit(&table[i].address, block, memory_order_release);
            return;
        }
    }
    atomic_fetch_add(&v->header->live_dropped, 1);
}

// Takes block's entry out of the table; true, with the entry's size and stack, when it was there.
// The probes call this before the allocator has the block back, never after: once it has, another
// thread or a signal handler can be given the same address and insert it while this call still
// looks for the old entry, and two removals then found one entry between them and left the other
// behind as a false leak. Before the real call the block is still the caller's, so within one
// process the insert and the removal of one address never overlap (other processes that share
// the table have other images, and an entry is only published once its image is written). The
// compare-and-swap keeps a double free racing with itself from taking one entry twice.
static inline bool md_probe_live_remove(const struct md_probe_view *v, int32_t image,
                                        uint64_t block, uint64_t *size, uint32_t *stack)
{
    struct md_probe_live *table = v->live;
    uint64_t mask = v->live_max - 1;
    for (uint64_t i = md_probe_live_slot(block, mask), n = 0; n < 256 && v->live_max;
         i = (i + 1) & mask, n++) {
        uint64_t seen = atomic_load_explicit(&table[i].address, memory_order_acquire);
        if (seen == 0)
            return false; // never recorded (allocated before the probe attached, or in the parent)
        if (seen == block && table[i].image == image) { // the insert's fields, after its release
            // read before the entry is let go: an insert may take it the moment it is
            uint64_t was_size = table[i].size;
            uint32_t was_stack = table[i].stack;
            if (atomic_compare_exchange_strong(&table[i].address, &seen, MD_PROBE_LIVE_TOMBSTONE)) {
                *size = was_size;
                *stack = was_stack;
                return true;
            }
        }
    }
    return false;
}

static inline unsigned md_probe_log2_bin(uint64_t size)
{
    return size ? 63u - (unsigned)__builtin_clzll(size) : 0;
}

// One call counted in a thread's own slot: plain increments, since only its thread writes it.
// size is the request; for free the block's usable size, which goes to the slow log only (the
// histogram and byte count describe requests). A request below MD_HIST_EXACT touches its
// histogram counter alone (a third of the probe's cost per malloc was its three counters).
static inline void md_probe_count(struct md_probe_slot *s, enum md_probe_op op, uint64_t size)
{
    if (op == MD_OP_FREE) {
        s->ops[op]++;
        return;
    }
    if (op != MD_OP_MALLOC)
        s->ops[op]++;
    if (__builtin_expect(size < MD_HIST_EXACT, 1)) {
        s->hist_exact[size]++;
        return;
    }
    s->bytes_requested_large += size;
    s->hist_log2[md_probe_log2_bin(size)]++;
}

// The same in the overflow slot, which threads that found no slot of their own share.
static inline void md_probe_count_atomic(struct md_probe_slot *s, enum md_probe_op op,
                                         uint64_t size)
{
    if (op != MD_OP_MALLOC)
        __atomic_fetch_add(&s->ops[op], 1, __ATOMIC_RELAXED);
    if (op == MD_OP_FREE)
        return;
    if (size < MD_HIST_EXACT) {
        __atomic_fetch_add(&s->hist_exact[size], 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&s->bytes_requested_large, size, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->hist_log2[md_probe_log2_bin(size)], 1, __ATOMIC_RELAXED);
}

// A slot's counts as the calls happened: malloc's count is every request the histogram holds
// but the other requesting calls; the bytes are the histogram's exact sizes plus the large ones.
static inline void md_probe_slot_totals(const struct md_probe_slot *s, uint64_t ops[MD_OP_COUNT],
                                        uint64_t *bytes)
{
    uint64_t requests = 0, small_bytes = 0;
    for (uint64_t size = 0; size < MD_HIST_EXACT; size++) {
        requests += s->hist_exact[size];
        small_bytes += size * s->hist_exact[size];
    }
    for (size_t bin = 0; bin < MD_HIST_LOG2; bin++)
        requests += s->hist_log2[bin];
    memcpy(ops, s->ops, sizeof s->ops);
    // A slot read while its thread counts (or one killed between the two increments) may have
    // the op counted and not yet its size: never below zero.
    uint64_t others = ops[MD_OP_CALLOC] + ops[MD_OP_REALLOC] + ops[MD_OP_ALIGNED];
    ops[MD_OP_MALLOC] = requests > others ? requests - others : 0;
    *bytes = small_bytes + s->bytes_requested_large;
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

// A slow call's end, read from realtime() (CLOCK_REALTIME) once the call has returned, and its
// duration since the tick count t0 taken before it. `now` is the tick count that found the call
// slow. The clock is read between two tick reads: a stall between the reads (an interrupt, a
// preemption, a VM exit: microseconds) shifts the window [end - duration, end], later when it
// falls after the clock read, earlier when before; either way the join with the syscalls then
// misses the call's first syscall or takes in the program's own syscall before it. So the clock
// is read until its two tick reads are at most max_gap apart (at most 4 reads; the closest is
// kept), which bounds the shift by max_gap. The duration runs to the later tick read, so it
// includes the stamping: a stall never shortens the window.
static inline uint64_t md_probe_stamp_end(uint64_t (*realtime)(void), uint64_t t0, uint64_t now,
                                          uint64_t max_gap, uint64_t *duration)
{
    uint64_t best_gap = UINT64_MAX, end = 0, before = now;
    for (int i = 0; i < 4 && best_gap > max_gap; i++) {
        uint64_t stamp = realtime(), after = md_probe_ticks();
        if (i == 0 || after - before < best_gap) {
            best_gap = after - before;
            end = stamp;
            *duration = after - t0;
        }
        before = after;
    }
    return end;
}

// The preload probe's slow paths (alloc/probe.c), which its malloc, free, calloc and realloc
// tail-call: with those entry points and its C++ operators, the probe functions on a thread's
// stack while it is inside an allocator call.
#define MD_PROBE_SLOW_PATHS                                                                        \
    {                                                                                              \
        "malloc_full", "free_full", "calloc_full", "realloc_full", NULL                            \
    }

#endif
