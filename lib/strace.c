// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/strace.h"

#include "alloc/probe_static.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A cursor over one line: never reads past end.
struct cursor {
    const char *p, *end;
};

static bool at_end(const struct cursor *c)
{
    return c->p >= c->end;
}

static void skip_spaces(struct cursor *c)
{
    while (!at_end(c) && *c->p == ' ')
        c->p++;
}

static bool take(struct cursor *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n))
        return false;
    c->p += n;
    return true;
}

static bool parse_u64(struct cursor *c, uint64_t *out, int base)
{
    uint64_t v = 0;
    const char *start = c->p;
    if (base == 16 && !take(c, "0x"))
        return false;
    for (; !at_end(c); c->p++) {
        int d = *c->p >= '0' && *c->p <= '9'                 ? *c->p - '0'
                : base == 16 && *c->p >= 'a' && *c->p <= 'f' ? *c->p - 'a' + 10
                                                             : -1;
        if (d < 0)
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return c->p > start + (base == 16 ? 2 : 0);
}

// "SECONDS.FRACTION" (nanoseconds or microseconds, as strace was asked) into nanoseconds.
static bool parse_time(struct cursor *c, uint64_t *ns)
{
    uint64_t sec, frac = 0;
    // below the quotient, sec * 10^9 leaves room for up to 10^9 - 1 ns of fraction
    if (!parse_u64(c, &sec, 10) || sec >= UINT64_MAX / 1000000000u)
        return false;
    *ns = sec * 1000000000u;
    if (!take(c, "."))
        return true;
    const char *start = c->p;
    if (!parse_u64(c, &frac, 10))
        return false;
    for (long digits = c->p - start; digits < 9; digits++)
        frac *= 10;
    for (long digits = c->p - start; digits > 9; digits--)
        frac /= 10;
    *ns += frac;
    return true;
}

static int sys_of(struct cursor *c)
{
    for (int s = 0; s < MD_SYS_COUNT; s++) {
        struct cursor probe = *c;
        if (take(&probe, md_sys_name((enum md_sys)s)) && !at_end(&probe) &&
            (*probe.p == '(' || *probe.p == ' ')) {
            *c = probe;
            return s;
        }
    }
    return -1;
}

// Points c at the start of argument n (0-based) of "(a, b, c...", within the line.
static bool seek_arg(struct cursor *c, int n)
{
    if (!take(c, "("))
        return false;
    int depth = 0;
    for (int arg = 0; arg < n; c->p++) {
        if (at_end(c))
            return false;
        if (*c->p == '{' || *c->p == '[' || *c->p == '(')
            depth++;
        else if (*c->p == '}' || *c->p == ']' || *c->p == ')')
            depth--;
        else if (*c->p == ',' && depth == 0)
            arg++;
    }
    skip_spaces(c);
    return true;
}

static void parse_args(struct cursor args, struct md_sys_event *e)
{
    if (md_sys_address_arg(e->sys)) {
        struct cursor c = args;
        if (take(&c, "("))
            parse_u64(&c, &e->address, 16);
    }
    if (md_sys_length_arg(e->sys) >= 0) {
        struct cursor c = args;
        if (seek_arg(&c, md_sys_length_arg(e->sys)))
            parse_u64(&c, &e->length, 10);
    }
    if (e->sys == MD_SYS_FUTEX) {
        struct cursor c = args;
        if (seek_arg(&c, 1))
            e->futex_wait = take(&c, "FUTEX_WAIT") || take(&c, "FUTEX_LOCK_PI");
    }
}

// "= RET <DUR>" at the end of the line.
static void parse_result(const char *line, size_t len, struct md_sys_event *e)
{
    const char *eq = NULL;
    for (size_t i = len; i-- > 1;)
        if (line[i] == '=' && line[i - 1] == ' ') {
            eq = line + i;
            break;
        }
    if (!eq)
        return;
    struct cursor c = {eq + 1, line + len};
    skip_spaces(&c);
    if (take(&c, "?"))
        return; // the process went away inside the call
    e->finished = true;
    e->failed = take(&c, "-1 ");
    if (e->sys == MD_SYS_MMAP && !e->failed)
        parse_u64(&c, &e->address, 16);
    if (e->sys == MD_SYS_BRK && !e->failed)
        parse_u64(&c, &e->brk_after, 16);
    const char *lt = memchr(c.p, '<', (size_t)(c.end - c.p));
    if (lt) {
        struct cursor d = {lt + 1, c.end};
        parse_time(&d, &e->dur_ns);
    }
}

// Room in *arr (of elem-sized entries) for one more after count: -1 when out of memory.
static int make_room(void **arr, size_t count, size_t *cap, size_t elem)
{
    if (count < *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 256;
    void *grown = realloc(*arr, n * elem);
    if (!grown)
        return -1;
    *arr = grown;
    *cap = n;
    return 0;
}

static int push(struct md_sys_event **arr, size_t *count, size_t *cap, const struct md_sys_event *e)
{
    if (make_room((void **)arr, *count, cap, sizeof **arr))
        return -1;
    (*arr)[(*count)++] = *e;
    return 0;
}

static struct md_sys_event *pending_of(struct md_strace_log *log, int32_t tid)
{
    for (size_t i = 0; i < log->pending_count; i++)
        if (log->pending[i].tid == tid)
            return &log->pending[i];
    return NULL;
}

static void drop_pending(struct md_strace_log *log, struct md_sys_event *p)
{
    *p = log->pending[--log->pending_count];
}

// "<... name resumed>rest": completes this thread's pending call.
static int resume(struct md_strace_log *log, int32_t tid, struct cursor c, const char *line,
                  size_t len)
{
    struct md_sys_event *p = pending_of(log, tid);
    int sys = sys_of(&c);
    if (!p || sys != (int)p->sys) {
        log->unparsed++;
        return 0;
    }
    struct md_sys_event e = *p;
    drop_pending(log, p);
    parse_result(line, len, &e);
    return push(&log->event, &log->count, &log->cap, &e);
}

static bool ends_with(const char *line, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && !memcmp(line + len - n, suffix, n);
}

// "execve(...) = 0" or "<... execve resumed>...) = 0" (execveat too): a successful exec. A
// thread other than the leader that execs is resumed under its process's id, which is the one
// wanted. Either line's time lies between the old image's run and the new one's: the entry, or
// the moment strace saw the exec end, while the new image was still stopped.
static bool is_exec(struct cursor c)
{
    if (!take(&c, "execve"))
        return false;
    take(&c, "at");
    return !at_end(&c) && (*c.p == '(' || *c.p == ' ');
}

static int note_exec(struct md_strace_log *log, const struct md_sys_event *at, const char *line,
                     size_t len)
{
    // unfinished: its resumed line carries the result (and " = " inside a quoted argument would
    // pass for one here)
    if (ends_with(line, len, "<unfinished ...>"))
        return 0;
    struct md_sys_event e = *at;
    parse_result(line, len, &e);
    if (!e.finished || e.failed)
        return 0;
    if (make_room((void **)&log->execs, log->exec_count, &log->exec_cap, sizeof *log->execs))
        return -1;
    log->execs[log->exec_count++] = (struct md_exec_event){.pid = at->tid, .ts_ns = at->ts_ns};
    return 0;
}

static void note_process_line(struct md_strace_log *log, struct cursor c)
{
    if (take(&c, "+++ exited with"))
        log->exits++;
    else if (take(&c, "+++ killed by"))
        log->kills++;
    else if (!take(&c, "---"))
        log->unparsed++;
}

// The static probe's marker (alloc/probe_static.h): the calls its thread made before it were the
// probe's own, mapping the program.
static bool is_static_probe_marker(const struct md_sys_event *e, struct cursor args)
{
    char marker[64];
    snprintf(marker, sizeof marker, "(%#lx, 0, MADV_NORMAL)", MD_STATIC_MARKER);
    return e->sys == MD_SYS_MADVISE && take(&args, marker);
}

static void drop_thread_events(struct md_strace_log *log, int32_t tid)
{
    size_t kept = 0;
    for (size_t i = 0; i < log->count; i++)
        if (log->event[i].tid != tid)
            log->event[kept++] = log->event[i];
    log->probe_own += log->count - kept;
    log->count = kept;
}

int md_strace_parse_line(struct md_strace_log *log, const char *line, size_t len)
{
    struct cursor c = {line, line + len};
    struct md_sys_event e = {0};
    uint64_t tid;
    log->lines++;
    // strace pads the pid column: "7514  1795322774.999082 brk(NULL) ..."
    if (!parse_u64(&c, &tid, 10) || tid > INT32_MAX || !take(&c, " ") ||
        (skip_spaces(&c), !parse_time(&c, &e.ts_ns)) || !take(&c, " ")) {
        log->unparsed++;
        return 0;
    }
    e.tid = (int32_t)tid;
    bool resumed = take(&c, "<... ");
    if (is_exec(c))
        return note_exec(log, &e, line, len);
    if (resumed)
        return resume(log, e.tid, c, line, len);
    int sys = sys_of(&c);
    if (sys < 0) {
        note_process_line(log, c);
        return 0;
    }
    e.sys = (enum md_sys)sys;
    if (is_static_probe_marker(&e, c)) {
        drop_thread_events(log, e.tid);
        return 0;
    }
    parse_args(c, &e);
    if (ends_with(line, len, "<unfinished ...>")) {
        struct md_sys_event *old = pending_of(log, e.tid);
        if (old) { // a second start without a resume: keep the first as unfinished
            if (push(&log->event, &log->count, &log->cap, old))
                return -1;
            *old = e;
            return 0;
        }
        return push(&log->pending, &log->pending_count, &log->pending_cap, &e);
    }
    parse_result(line, len, &e);
    return push(&log->event, &log->count, &log->cap, &e);
}

int md_strace_parse_file(struct md_strace_log *log, const char *path, struct md_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return md_fail_errno(err, errno, "%s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            n--;
        rc = md_strace_parse_line(log, line, (size_t)n);
    }
    free(line);
    fclose(f);
    // calls still open when their process died count as unfinished events
    for (size_t i = 0; !rc && i < log->pending_count; i++)
        rc = push(&log->event, &log->count, &log->cap, &log->pending[i]);
    log->pending_count = 0;
    return rc ? md_fail(err, "%s: out of memory", path) : 0;
}

void md_strace_log_free(struct md_strace_log *log)
{
    free(log->event);
    free(log->pending);
    free(log->unhooked_execs);
    free(log->execs);
    memset(log, 0, sizeof *log);
}
