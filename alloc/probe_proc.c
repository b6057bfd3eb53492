// SPDX-License-Identifier: MIT
#include "alloc/probe_proc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// Reads a small /proc file into buf (NUL-terminated); false when it cannot. No allocation: the
// probe runs this inside the program's first allocator call of a thread.
static bool read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t used = 0;
    for (ssize_t n; used + 1 < size && (n = read(fd, buf + used, size - 1 - used)) > 0;)
        used += (size_t)n;
    close(fd);
    buf[used] = 0;
    return used > 0;
}

static bool same_file(const char *path, uint64_t dev, uint64_t ino)
{
    struct stat st;
    return !stat(path, &st) && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

static void format_pid(char *out, const char *before, int32_t pid, const char *after)
{
    char digits[16];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + pid % 10);
    while ((pid /= 10) > 0);
    size_t at = strlen(before);
    memcpy(out, before, at);
    while (n)
        out[at++] = digits[--n];
    strcpy(out + at, after);
}

enum md_ids_mode md_probe_ids_mode(const struct md_probe_header *h)
{
    struct stat own;
    // no namespace known (the tool had no /proc): as before, the probe's own numbers
    if (!h->tool_pidns_ino ||
        (!stat("/proc/self/ns/pid", &own) && (uint64_t)own.st_dev == h->tool_pidns_dev &&
         (uint64_t)own.st_ino == h->tool_pidns_ino))
        return MD_IDS_SAME;
    // Another namespace, or no /proc to tell (a chroot, a sandbox). NSpid lists the ids from the
    // namespace of the /proc mount down: its first entry is the tool's only when that mount is
    // the tool's namespace, which the tool's own entry there shows (unshare -p alone keeps it;
    // --mount-proc, bwrap and containers mount their own). Otherwise tokens, which the tool maps
    // in any namespace.
    char tool[48];
    format_pid(tool, "/proc/", h->tool_pid > 0 ? h->tool_pid : 0, "/ns/pid");
    return h->tool_pid > 0 && same_file(tool, h->tool_pidns_dev, h->tool_pidns_ino)
               ? MD_IDS_NSPID
               : MD_IDS_NEGATED;
}

// The first number after key (a line start such as "\nNSpid:") in a status file, or 0.
static int32_t first_id(const char *status, const char *key)
{
    const char *at = strstr(status, key);
    if (!at)
        return 0;
    long id = strtol(at + strlen(key), NULL, 10);
    return id > 0 && id <= INT32_MAX ? (int32_t)id : 0;
}

// A token for an id the probe cannot translate, negated; announced by a marker syscall of the
// calling thread when it is that thread's (see foreign_pid_processes). Past the last token, the
// process's own id, negated: not mapped, but not a pid of the tool's namespace either.
static int32_t token(struct md_probe_header *h, bool announce, int32_t own)
{
    uint32_t t = atomic_fetch_add(&h->id_tokens, 1) + 1;
    if (t >= MD_PROBE_ID_TOKEN_MAX)
        return -own;
    if (announce)
        syscall(SYS_madvise, md_probe_id_mark(t), 0, MADV_NORMAL);
    return -(int32_t)t;
}

static int32_t translated(enum md_ids_mode mode, int32_t own, const char *status, const char *key)
{
    char buf[4096];
    if (mode == MD_IDS_SAME)
        return own;
    if (mode == MD_IDS_NSPID && read_small(status, buf, sizeof buf))
        return first_id(buf, key);
    return 0;
}

int32_t md_probe_ids_pid(enum md_ids_mode mode, struct md_probe_header *h, int32_t *tid)
{
    int32_t own = (int32_t)getpid();
    bool main_thread = (int32_t)syscall(SYS_gettid) == own;
    int32_t id = translated(mode, own, "/proc/self/status", "\nNStgid:");
    if (!id) // the main thread's token is its tid's too, which announces it
        id = token(h, main_thread, own);
    *tid = main_thread ? id : 0;
    return id;
}

int32_t md_probe_ids_tid(enum md_ids_mode mode, struct md_probe_header *h, int32_t pid_id)
{
    int32_t own = (int32_t)syscall(SYS_gettid);
    int32_t id = translated(mode, own, "/proc/thread-self/status", "\nNSpid:");
    if (id)
        return id;
    // the main thread's tid is its process's pid: when another thread attached first, the pid's
    // token was taken unannounced (only the main thread's own syscall maps it to the pid)
    if (own == (int32_t)getpid() && pid_id < 0 && (uint32_t)-pid_id < MD_PROBE_ID_TOKEN_MAX) {
        syscall(SYS_madvise, md_probe_id_mark((uint32_t)-pid_id), 0, MADV_NORMAL);
        return pid_id;
    }
    return token(h, true, own);
}

uint64_t md_probe_start_time(void)
{
    char buf[1024];
    if (!read_small("/proc/self/stat", buf, sizeof buf))
        return 0;
    // the name, field 2, may hold blanks and parentheses: count fields after its last ')'
    const char *at = strrchr(buf, ')');
    for (int field = 2; at && field < 22; field++)
        at = strchr(at + 1, ' ');
    return at ? strtoull(at + 1, NULL, 10) : 0;
}

int md_probe_inherited_fd(void)
{
    const char *env = getenv(MD_PROBE_FD_ENV);
    char *end;
    if (!env)
        return -1;
    long fd = strtol(env, &end, 10);
    unsigned long long dev = strtoull(end, &end, 10), ino = strtoull(end, &end, 10);
    struct stat st;
    // the program may have closed it and opened something else under the number
    if (fd < 0 || fd > INT32_MAX || *end || fstat((int)fd, &st) || (uint64_t)st.st_dev != dev ||
        (uint64_t)st.st_ino != ino)
        return -1;
    return (int)fd;
}
