// SPDX-License-Identifier: GPL-3.0-or-later
// lib/perf and lib/symbolize on real fixtures (built by `make perf-fixtures`): exact uprobe
// counts, the allocator's CPU share, fork/exec inheritance and the strace exclusion.
//
// Each test starts its fixture the way `malloc-doctor trace` does: fork, the child stops itself,
// the parent opens the events, continues it, and the child execs the fixture. perf_event_open
// must be permitted (we run as root): a refusal fails the test with the kernel's reason.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/perf.h"
#include "lib/perf_samples.h"
#include "lib/symbolize.h"
#include "tests/unit/spawn_stopped.h"

#define PFX "build/fixtures/perf/"

static const char *const alloc_api[] = {
    "malloc",   "free",   "calloc",  "realloc",      "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "reallocarray", "_Znwm",          "_ZdlPv",
    "_Znam",    "_ZdaPv", "_ZdlPvm", NULL,
};

struct run {
    struct md_perf_result res;
    char out[256]; // the fixture's stdout
    int status;
};

static void read_output(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
}

// Runs argv under perf with opt and fills r; fails the test on any error.
static void run_fixture(char *const argv[], const struct md_perf_options *opt, struct run *r)
{
    if (access(argv[0], X_OK))
        fail_msg("%s missing: run `make perf-fixtures` first", argv[0]);
    char out_path[] = "/tmp/md-perf-out-XXXXXX";
    int fd = mkstemp(out_path);
    assert_true(fd >= 0);
    close(fd);
    pid_t pid = spawn_stopped(argv, out_path);
    struct md_perf *p;
    struct md_error err;
    if (md_perf_open(&p, pid, opt, &err)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(out_path);
        fail_msg("md_perf_open: %s", err.msg);
    }
    kill(pid, SIGCONT);
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
    int rc = md_perf_collect(p, &r->res, &err);
    md_perf_close(p);
    read_output(out_path, r->out, sizeof r->out);
    unlink(out_path);
    if (rc)
        fail_msg("md_perf_collect: %s", err.msg);
    if (!WIFEXITED(r->status))
        fail_msg("%s: killed by signal %d", argv[0], WTERMSIG(r->status));
    assert_int_equal(WEXITSTATUS(r->status), 0);
}

static double alloc_share(const struct md_perf_result *res)
{
    return res->samples_total ? (double)res->samples_alloc / (double)res->samples_total : 0;
}

static void print_result(const char *label, const struct md_perf_result *res)
{
    fprintf(stderr,
            "# %s: %ju samples, %ju in allocator (%.1f%%), %ju kernel, %ju unknown, %ju "
            "excluded, %ju lost, %u cpus%s\n",
            label, (uintmax_t)res->samples_total, (uintmax_t)res->samples_alloc,
            100 * alloc_share(res), (uintmax_t)res->samples_kernel, (uintmax_t)res->samples_unknown,
            (uintmax_t)res->samples_excluded, (uintmax_t)res->samples_lost, res->cpus,
            res->system_wide ? ", whole CPUs" : "");
    for (size_t i = 0; i < res->top_alloc_count && i < 3; i++)
        fprintf(stderr, "#   alloc %-24s %ju\n", res->top_alloc[i].name,
                (uintmax_t)res->top_alloc[i].samples);
    for (size_t i = 0; i < res->top_all_count && i < 3; i++)
        fprintf(stderr, "#   all   %-24s %ju\n", res->top_all[i].name,
                (uintmax_t)res->top_all[i].samples);
}

// ---- symbolize ----------------------------------------------------------------------------

static void func_offset_round_trips(void **state)
{
    (void)state;
    const char *path = PFX "churn-musl-static";
    const char *names[] = {"malloc", "free", "main", "churn"};
    struct md_symtab t;
    struct md_error err;
    if (md_symtab_load(&t, path, &err))
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint64_t off, addr;
        if (md_elf_func_offset(path, names[i], &off, &err))
            fail_msg("%s", err.msg);
        assert_true(md_symtab_offset_to_addr(&t, off, &addr));
        size_t aliases = 0;
        const struct md_func_sym *f = md_symtab_find(&t, addr, &aliases);
        assert_non_null(f);
        bool found = false; // the name may be an alias of the preferred one
        for (size_t k = 0; k < aliases; k++)
            found = found || !strcmp(f[k].name, names[i]);
        assert_true(found);
        // inside the function, too
        assert_ptr_equal(md_symtab_find(&t, addr + 1, NULL), f);
    }
    md_symtab_free(&t);
}

static void func_offset_unknown_name_fails(void **state)
{
    (void)state;
    struct md_error err;
    uint64_t off;
    assert_int_equal(md_elf_func_offset(PFX "compute", "no_such_function", &off, &err), -1);
    assert_non_null(strstr(err.msg, "no_such_function"));
    assert_int_equal(md_elf_func_offset("/nonexistent/file", "malloc", &off, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/file"));
}

static void symcache_remembers_unreadable_files(void **state)
{
    (void)state;
    struct md_symcache c;
    md_symcache_init(&c);
    assert_null(md_symcache_get(&c, "/nonexistent/lib.so"));
    assert_null(md_symcache_get(&c, "/nonexistent/lib.so"));
    assert_int_equal(c.count, 1);
    const struct md_symtab *t = md_symcache_get(&c, PFX "compute");
    assert_non_null(t);
    assert_ptr_equal(md_symcache_get(&c, PFX "compute"), t);
    md_symcache_free(&c);
}

// Debian's libc.so.6 has no .symtab; with libc6-dbg its local functions (the allocator's
// internals) come from the build-id debug file.
static void stripped_libc_gets_debug_file_symbols(void **state)
{
    (void)state;
    const char *libc = "/lib/x86_64-linux-gnu/libc.so.6";
    struct md_symtab t;
    struct md_error err;
    if (md_symtab_load(&t, libc, &err))
        fail_msg("%s", err.msg);
    if (!t.debug_path) {
        md_symtab_free(&t);
        fprintf(stderr, "# no build-id debug file for %s: install libc6-dbg\n", libc);
        skip();
    }
    const struct md_func_sym *f = md_symtab_by_name(&t, "_int_malloc");
    assert_non_null(f);
    uint64_t off, addr;
    assert_true(md_symtab_addr_to_offset(&t, f->addr, &off));
    assert_true(md_symtab_offset_to_addr(&t, off + 16, &addr));
    const struct md_func_sym *g = md_symtab_find(&t, addr, NULL);
    assert_non_null(g);
    assert_string_equal(g->name, "_int_malloc");
    md_symtab_free(&t);
}

// musl's memset is assembly without a size. With a full symbol table (a static program) it is
// trusted up to the next function; in Debian's stripped libc.so, whose hidden functions (the
// syscall entry) follow it unnamed, only its first byte is memset's.
static void unsized_function_in_stripped_object_is_not_stretched(void **state)
{
    (void)state;
    const char *paths[] = {"/usr/lib/x86_64-linux-musl/libc.so", PFX "churn-musl-static"};
    for (size_t i = 0; i < 2; i++) {
        struct md_symtab t;
        struct md_error err;
        if (md_symtab_load(&t, paths[i], &err))
            fail_msg("%s", err.msg);
        const struct md_func_sym *f = md_symtab_by_name(&t, "memset");
        assert_non_null(f);
        assert_int_equal(f->size, 0);
        assert_int_equal(t.exports_only, i == 0);
        assert_ptr_equal(md_symtab_find(&t, f->addr, NULL), f);
        const struct md_func_sym *inside = md_symtab_find(&t, f->addr + 1, NULL);
        if (i == 0)
            assert_null(inside);
        else
            assert_string_equal(inside->name, "memset");
        md_symtab_free(&t);
    }
}

static void names_match_up_to_clone_suffix(void **state)
{
    (void)state;
    const char *const list[] = {"toy_refill", "malloc", NULL};
    assert_true(md_perf_name_in("malloc", list));
    assert_true(md_perf_name_in("toy_refill.constprop.0", list));
    assert_true(md_perf_name_in("toy_refill.cold", list));
    assert_false(md_perf_name_in("toy_refill_x", list));
    assert_false(md_perf_name_in("mallo", list));
    assert_false(md_perf_name_in("malloc_trim", list));
    assert_false(md_perf_name_in("free", list));
    assert_false(md_perf_name_in("malloc", NULL));
}

// ---- the record log -----------------------------------------------------------------------

static void log_counts_samples_over_its_bound(void **state)
{
    (void)state;
    struct md_perf_log l;
    md_perf_log_init(&l, 64);
    unsigned char rec[48] = {0};
    struct perf_event_header h = {.type = PERF_RECORD_SAMPLE, .size = sizeof rec};
    memcpy(rec, &h, sizeof h);
    md_perf_log_add(&l, rec, sizeof rec);
    md_perf_log_add(&l, rec, sizeof rec); // over 64 bytes: counted, not stored
    h.type = PERF_RECORD_COMM;
    memcpy(rec, &h, sizeof h);
    md_perf_log_add(&l, rec, sizeof rec); // side-band records are kept over the bound
    assert_int_equal(l.len, 2 * sizeof rec);
    assert_int_equal(l.dropped_samples, 1);
    struct md_perf_names names = {.api = alloc_api, .top_n = MD_PERF_TOP};
    struct md_perf_result res = {0};
    struct md_error err;
    assert_int_equal(md_perf_replay(&l, &names, &res, &err), 0);
    assert_int_equal(res.samples_lost, 1); // the dropped sample is reported
    md_perf_log_free(&l);
}

// ---- syscall records ----------------------------------------------------------------------

enum { SYS_ENTER_ID = 7, SYS_EXIT_ID = 8 };

// Appends one raw_syscalls record as the kernel writes it (MD_PERF_SYS_SAMPLE_TYPE): identifier,
// ip, pid/tid, time, raw size, then the record: 8 bytes of common fields, the syscall number and
// six arguments (enter) or the result (exit).
static void add_sys_record(struct md_perf_log *l, uint64_t id, uint32_t tid, uint64_t time, long nr,
                           const uint64_t *args)
{
    unsigned char rec[sizeof(struct perf_event_header) + 36 + 68] = {0};
    struct perf_event_header h = {.type = PERF_RECORD_SAMPLE, .size = sizeof rec};
    uint32_t pidtid[2] = {tid, tid}, raw_size = 68;
    unsigned char *p = rec;
    memcpy(p, &h, sizeof h), p += sizeof h;
    memcpy(p, &id, 8), p += 16; // identifier, ip
    memcpy(p, pidtid, 8), p += 8;
    memcpy(p, &time, 8), p += 8;
    memcpy(p, &raw_size, 4), p += 4;
    int64_t number = nr;
    memcpy(p + 8, &number, 8);
    memcpy(p + 16, args, id == SYS_ENTER_ID ? 48 : 8);
    md_perf_log_add(l, rec, sizeof rec);
}

static void syscall_records_become_events(void **state)
{
    (void)state;
    struct md_perf_log l;
    md_perf_log_init(&l, 1 << 20);
    const uint64_t marker = 0x6d6400000000ul;
    const uint64_t mmap_args[6] = {0, 8192, 3, 0x22, (uint64_t)-1, 0}, mmap_ret[1] = {0x7f0000};
    const uint64_t wait_args[6] = {0x1000, 128 /* FUTEX_WAIT_PRIVATE */}, timedout[1] = {-110ul};
    const uint64_t munmap_args[6] = {0x7f0000, 4096}, marker_args[6] = {marker, 0, 0};
    // thread 12 is a static probe setting up: everything up to its marker is dropped
    add_sys_record(&l, SYS_ENTER_ID, 12, 50, SYS_mmap, mmap_args);
    add_sys_record(&l, SYS_EXIT_ID, 12, 60, SYS_mmap, mmap_ret);
    add_sys_record(&l, SYS_ENTER_ID, 12, 70, SYS_madvise, marker_args);
    add_sys_record(&l, SYS_EXIT_ID, 12, 71, SYS_madvise, mmap_ret);
    // out of time order, as records from two CPUs' rings arrive
    add_sys_record(&l, SYS_EXIT_ID, 11, 500, SYS_futex, timedout);
    add_sys_record(&l, SYS_ENTER_ID, 10, 100, SYS_mmap, mmap_args);
    add_sys_record(&l, SYS_ENTER_ID, 11, 105, SYS_futex, wait_args);
    add_sys_record(&l, SYS_EXIT_ID, 10, 150, SYS_mmap, mmap_ret);
    add_sys_record(&l, SYS_ENTER_ID, 10, 600, SYS_munmap, munmap_args); // never returned
    // the kernel names the event that writes next, not the one that lost: in a shared ring a
    // loss named after a CPU-clock event (id 99) may be of syscalls too
    unsigned char lost[sizeof(struct perf_event_header) + 16] = {0};
    struct perf_event_header h = {.type = PERF_RECORD_LOST, .size = sizeof lost};
    uint64_t lost_body[2] = {99, 7};
    memcpy(lost, &h, sizeof h);
    memcpy(lost + sizeof h, lost_body, sizeof lost_body);
    md_perf_log_add(&l, lost, sizeof lost);
    const uint64_t enter_ids[1] = {SYS_ENTER_ID}, exit_ids[1] = {SYS_EXIT_ID};
    struct md_perf_names names = {.api = alloc_api,
                                  .top_n = MD_PERF_TOP,
                                  .sys_enter_ids = enter_ids,
                                  .sys_exit_ids = exit_ids,
                                  .sys_id_count = 1,
                                  .sys_marker = marker,
                                  .sys_nr_at = 8,
                                  .sys_args_at = 16,
                                  .sys_ret_at = 16};
    // over the log's bound a syscall record is counted as such
    l.names = &names;
    l.max = l.len;
    add_sys_record(&l, SYS_ENTER_ID, 10, 700, SYS_mmap, mmap_args);
    struct md_perf_result res = {0};
    struct md_error err;
    assert_int_equal(md_perf_replay(&l, &names, &res, &err), 0);
    assert_int_equal(res.sys_lost, 7 + 1);
    assert_int_equal(res.samples_lost, 7);  // the dropped record was a syscall's
    assert_int_equal(res.samples_total, 0); // syscall records are not CPU samples
    assert_int_equal(res.sys_event_count, 3);
    const struct md_sys_event *e = res.sys_events;
    assert_int_equal(e[0].tid, 10);
    assert_int_equal(e[0].sys, MD_SYS_MMAP);
    assert_int_equal(e[0].ts_ns, 100);
    assert_int_equal(e[0].dur_ns, 50);
    assert_int_equal(e[0].length, 8192);
    assert_true(e[0].finished && !e[0].failed && !e[0].futex_wait);
    assert_int_equal(e[1].tid, 11);
    assert_int_equal(e[1].sys, MD_SYS_FUTEX);
    assert_int_equal(e[1].dur_ns, 395);
    assert_true(e[1].futex_wait && e[1].finished && e[1].failed);
    assert_int_equal(e[2].sys, MD_SYS_MUNMAP);
    assert_int_equal(e[2].length, 4096);
    assert_false(e[2].finished);
    md_perf_result_free(&res);
    md_perf_log_free(&l);
}

static void format_file_fields_are_found(void **state)
{
    (void)state;
    static const char format[] =
        "name: sys_enter\nID: 21\nformat:\n"
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
        "\tfield:int idx;\toffset:6;\tsize:4;\tsigned:1;\n" // a name that starts like "id"
        "\n"
        "\tfield:long id;\toffset:12;\tsize:8;\tsigned:1;\n"
        "\tfield:unsigned long args[6];\toffset:20;\tsize:48;\tsigned:0;\n"
        "\nprint fmt: \"NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)\", REC->id\n";
    struct {
        const char *field;
        bool found;
        size_t offset;
    } cases[] = {{"id", true, 12},  {"args", true, 20}, {"common_pid", true, 4},
                 {"pid", false, 0}, {"ret", false, 0},  {"idx", true, 6}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fmemopen((void *)format, sizeof format - 1, "r");
        assert_non_null(f);
        size_t offset = 0;
        bool found = md_perf_format_field(f, cases[i].field, &offset);
        fclose(f);
        if (found != cases[i].found || offset != cases[i].offset)
            fail_msg("%s: found %d at %zu", cases[i].field, found, offset);
    }
}

// A real program: its syscalls arrive with lengths, durations and results, and none is lost.
// sys-pattern makes a known number of them, few enough (~1300 pairs of records) that they fit in
// the ring even when the reader thread is never scheduled, as on a loaded CI machine: a program
// that makes more syscalls than the ring holds may lose some, and the loss is reported instead.
#define PATTERN_ROUNDS 200
#define PATTERN_ROUNDS_ARG "200"
static void syscalls_of_a_real_program_are_recorded(void **state)
{
    (void)state;
    struct md_perf_options opt = {.syscalls = true};
    char *argv[] = {"build/fixtures/sys-pattern", PATTERN_ROUNDS_ARG, NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    assert_true(r.res.syscalls_recorded);
    assert_int_equal(r.res.sys_lost, 0);
    size_t by_sys[MD_SYS_COUNT] = {0}, page_maps = 0, finished = 0;
    for (size_t i = 0; i < r.res.sys_event_count; i++) {
        const struct md_sys_event *e = &r.res.sys_events[i];
        by_sys[e->sys]++;
        page_maps += e->sys == MD_SYS_MMAP && e->length == 4096;
        finished += e->finished && e->dur_ns > 0;
    }
    fprintf(stderr, "# %zu syscalls: %zu mmap (%zu of one page), %zu munmap, %zu finished\n",
            r.res.sys_event_count, by_sys[MD_SYS_MMAP], page_maps, by_sys[MD_SYS_MUNMAP], finished);
    // each round: malloc(200000) maps and free unmaps, then one page is mapped, protected,
    // advised and unmapped; musl's start-up adds no mprotect or madvise of its own
    assert_int_equal(by_sys[MD_SYS_MPROTECT], PATTERN_ROUNDS);
    assert_int_equal(by_sys[MD_SYS_MADVISE], PATTERN_ROUNDS);
    assert_true(page_maps >= PATTERN_ROUNDS);
    assert_true(by_sys[MD_SYS_MMAP] >= 2 * PATTERN_ROUNDS);
    assert_true(by_sys[MD_SYS_MUNMAP] >= 2 * PATTERN_ROUNDS);
    assert_int_equal(finished, r.res.sys_event_count); // the program ran to its end
    md_perf_result_free(&r.res);
}

// ---- uprobes ------------------------------------------------------------------------------

static void uprobes_count_static_musl_calls_exactly(void **state)
{
    (void)state;
    const char *path = PFX "churn-musl-static";
    struct md_uprobe_spec up[2] = {{"malloc", path, 0}, {"free", path, 0}};
    struct md_error err;
    for (size_t i = 0; i < 2; i++)
        if (md_elf_func_offset(path, up[i].name, &up[i].file_offset, &err))
            fail_msg("%s", err.msg);
    struct md_perf_options opt = {.uprobes = up, .uprobe_count = 2};
    char *argv[] = {(char *)path, NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    unsigned long mallocs, frees;
    assert_int_equal(sscanf(r.out, "malloc=%lu free=%lu", &mallocs, &frees), 2);
    assert_true(mallocs > 0);
    assert_int_equal(r.res.uprobe_count, 2);
    fprintf(stderr, "# printed malloc=%lu free=%lu, uprobes malloc=%ju free=%ju\n", mallocs, frees,
            (uintmax_t)r.res.uprobe_hits[0], (uintmax_t)r.res.uprobe_hits[1]);
    assert_int_equal(r.res.uprobe_hits[0], mallocs);
    assert_int_equal(r.res.uprobe_hits[1], frees);
    assert_false(r.res.sampled);
    md_perf_result_free(&r.res);
}

// The same counts with sampling on at the same time. Each uprobe hit traps into the kernel and
// costs far more than the malloc it counts: those samples must be set apart, not charged to
// malloc. musl's malloc is a tail jump to __libc_malloc_impl and musl has no frame pointers, so
// its time is only found through the internal names (as the signature table would give them).
static void uprobes_and_sampling_together(void **state)
{
    (void)state;
    const char *path = PFX "churn-musl-static";
    struct md_uprobe_spec up = {"malloc", path, 0};
    struct md_error err;
    if (md_elf_func_offset(path, "malloc", &up.file_offset, &err))
        fail_msg("%s", err.msg);
    const char *const internal[] = {"__libc_malloc_impl", "__libc_free", "alloc_slot", NULL};
    struct md_perf_options opt = {.uprobes = &up,
                                  .uprobe_count = 1,
                                  .sample_hz = 4000,
                                  .alloc_api = alloc_api,
                                  .alloc_internal = internal};
    char *argv[] = {(char *)path, NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    print_result("churn-musl-static", &r.res);
    fprintf(stderr, "# %ju samples in uprobe handling\n", (uintmax_t)r.res.samples_uprobe);
    unsigned long mallocs, frees;
    assert_int_equal(sscanf(r.out, "malloc=%lu free=%lu", &mallocs, &frees), 2);
    assert_int_equal(r.res.uprobe_hits[0], mallocs);
    assert_true(r.res.sampled);
    assert_int_equal(r.res.samples_excluded, 0);
    assert_true(r.res.samples_uprobe > 0);
    assert_true(r.res.samples_total > 0);
    assert_true(r.res.samples_alloc > 0);
    for (size_t i = 0; i < r.res.top_all_count; i++)
        assert_string_not_equal(r.res.top_all[i].name, "malloc"); // a single jmp instruction
    md_perf_result_free(&r.res);
}

static void uprobe_open_failure_is_reported(void **state)
{
    (void)state;
    struct md_uprobe_spec up = {"malloc", "/nonexistent/file", 0x1000};
    struct md_perf_options opt = {.uprobes = &up, .uprobe_count = 1};
    char *argv[] = {(char *)"/bin/true", NULL};
    char out_path[] = "/tmp/md-perf-out-XXXXXX";
    int fd = mkstemp(out_path);
    close(fd);
    pid_t pid = spawn_stopped(argv, out_path);
    struct md_perf *p;
    struct md_error err;
    int rc = md_perf_open(&p, pid, &opt, &err);
    kill(pid, SIGKILL); // before any assertion, so that a failure leaves no stopped child
    waitpid(pid, NULL, 0);
    unlink(out_path);
    assert_int_equal(rc, -1);
    assert_null(p);
    fprintf(stderr, "# %s\n", err.msg);
    assert_non_null(strstr(err.msg, "uprobe malloc at /nonexistent/file+0x1000"));
}

// ---- CPU sampling -------------------------------------------------------------------------

// The toy allocator with a global lock, sampled at 2000 Hz with toy_refill named internal.
static void run_toy_alloc(struct run *r)
{
    static const char *const internal[] = {"toy_refill", NULL};
    struct md_perf_options opt = {
        .sample_hz = 2000, .alloc_api = alloc_api, .alloc_internal = internal};
    char *argv[] = {(char *)PFX "toy-alloc", NULL};
    run_fixture(argv, &opt, r);
}

static void toy_global_lock_allocator_dominates(void **state)
{
    (void)state;
    struct run r;
    run_toy_alloc(&r);
    print_result("toy-alloc", &r.res);
    if (r.res.samples_total < 100)
        fail_msg("only %ju samples for 800 ms of CPU time", (uintmax_t)r.res.samples_total);
    assert_true(alloc_share(&r.res) > 0.5);
    assert_true(r.res.top_alloc_count > 0);
    assert_string_equal(r.res.top_alloc[0].name, "toy_refill");
    assert_string_equal(r.res.top_all[0].name, "toy_refill");
    md_perf_result_free(&r.res);
}

// toy_refill is found through the callchain (malloc -> toy_refill) without naming it internal.
static void callchain_attributes_callee_to_malloc(void **state)
{
    (void)state;
    struct md_perf_options opt = {.sample_hz = 2000, .alloc_api = alloc_api};
    char *argv[] = {(char *)PFX "toy-alloc", NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    print_result("toy-alloc, api only", &r.res);
    assert_true(alloc_share(&r.res) > 0.5);
    assert_string_equal(r.res.top_alloc[0].name, "toy_refill");
    md_perf_result_free(&r.res);
}

static void compute_bound_program_has_low_share(void **state)
{
    (void)state;
    struct md_perf_options opt = {.sample_hz = 2000, .alloc_api = alloc_api};
    char *argv[] = {(char *)PFX "compute", NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    print_result("compute", &r.res);
    if (r.res.samples_total < 100)
        fail_msg("only %ju samples for 400 ms of CPU time", (uintmax_t)r.res.samples_total);
    assert_true(alloc_share(&r.res) < 0.10);
    assert_string_equal(r.res.top_all[0].name, "spin_compute");
    assert_true(r.res.samples_unknown < r.res.samples_total / 10);
    md_perf_result_free(&r.res);
}

// Whole-CPU sampling (as root) keeps the program's tree only: a busy process that is not the
// program's, on the other CPU, leaves no sample. Without the privilege the events are per process,
// which cannot see it in the first place.
static void other_processes_are_left_out(void **state)
{
    (void)state;
    char *spin_argv[] = {(char *)PFX "compute", NULL};
    pid_t spinner = spawn_stopped(spin_argv, "/dev/null");
    kill(spinner, SIGCONT); // not under perf: started before, and not the program's child
    struct run r;
    run_toy_alloc(&r);
    kill(spinner, SIGKILL);
    waitpid(spinner, NULL, 0);
    print_result("toy-alloc beside a busy process", &r.res);
    if (geteuid() == 0)
        assert_true(r.res.system_wide);
    // the other process's samples would be unknown (its mappings were never seen) or its own
    if (r.res.samples_unknown > r.res.samples_total / 10)
        fail_msg("%ju of %ju samples unknown", (uintmax_t)r.res.samples_unknown,
                 (uintmax_t)r.res.samples_total);
    for (size_t i = 0; i < r.res.top_all_count; i++)
        if (!strcmp(r.res.top_all[i].name, "spin_compute"))
            fail_msg("%ju samples of the other process's spin_compute",
                     (uintmax_t)r.res.top_all[i].samples);
    assert_string_equal(r.res.top_all[0].name, "toy_refill");
    md_perf_result_free(&r.res);
}

// Samples follow a plain fork (mappings inherited without MMAP records) and leave out a child
// whose command is "strace".
static void fork_is_followed_and_strace_excluded(void **state)
{
    (void)state;
    struct md_perf_options opt = {.sample_hz = 2000, .alloc_api = alloc_api};
    char *argv[] = {(char *)PFX "forker", (char *)PFX "bin/strace", NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    print_result("forker", &r.res);
    if (r.res.samples_excluded < 100)
        fail_msg("only %ju samples from the process named strace",
                 (uintmax_t)r.res.samples_excluded);
    if (r.res.samples_total < 100)
        fail_msg("only %ju samples from the forked worker", (uintmax_t)r.res.samples_total);
    assert_string_equal(r.res.top_all[0].name, "spin_compute");
    assert_true(alloc_share(&r.res) < 0.10);
    md_perf_result_free(&r.res);
}

// The offset of CLOCK_REALTIME from CLOCK_MONOTONIC moves only when the clock is stepped: a move
// within the readings' errors (and a microsecond) is none, a larger one either way is a step.
static void a_clock_step_is_told_from_reading_error(void **state)
{
    (void)state;
    const int64_t offset = 1700000000000000000;
    assert_int_equal(md_perf_clock_step(offset, offset, 20), 0);
    assert_int_equal(md_perf_clock_step(offset, offset + 1040, 20), 0);
    assert_int_equal(md_perf_clock_step(offset, offset - 1040, 20), 0);
    assert_int_equal(md_perf_clock_step(offset, offset + 1041, 20), 1041);
    assert_int_equal(md_perf_clock_step(offset, offset - 5000000, 20), -5000000);
    assert_int_equal(md_perf_clock_step(offset, offset + 3000000000, 0), 3000000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(func_offset_round_trips),
        cmocka_unit_test(func_offset_unknown_name_fails),
        cmocka_unit_test(symcache_remembers_unreadable_files),
        cmocka_unit_test(stripped_libc_gets_debug_file_symbols),
        cmocka_unit_test(unsized_function_in_stripped_object_is_not_stretched),
        cmocka_unit_test(names_match_up_to_clone_suffix),
        cmocka_unit_test(log_counts_samples_over_its_bound),
        cmocka_unit_test(syscall_records_become_events),
        cmocka_unit_test(format_file_fields_are_found),
        cmocka_unit_test(syscalls_of_a_real_program_are_recorded),
        cmocka_unit_test(uprobes_count_static_musl_calls_exactly),
        cmocka_unit_test(uprobes_and_sampling_together),
        cmocka_unit_test(uprobe_open_failure_is_reported),
        cmocka_unit_test(toy_global_lock_allocator_dominates),
        cmocka_unit_test(callchain_attributes_callee_to_malloc),
        cmocka_unit_test(compute_bound_program_has_low_share),
        cmocka_unit_test(fork_is_followed_and_strace_excluded),
        cmocka_unit_test(other_processes_are_left_out),
        cmocka_unit_test(a_clock_step_is_told_from_reading_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
