// SPDX-License-Identifier: GPL-3.0-or-later
// Futex wait stacks (lib/perf.c with futex_waits, lib/stack_scan.c) on real programs built by
// `make perf-fixtures`: two threads contending a pthread mutex from contend_left and
// contend_right, as a dynamic glibc and a static musl program, and the same calls without a
// second thread. perf_event_open and tracefs must be usable (we run as root): a refusal fails.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/perf.h"
#include "lib/stack_scan.h"
#include "lib/symbolize.h"
#include "tests/unit/spawn_stopped.h"

#define PFX "build/fixtures/perf/"

static const char *const alloc_api[] = {"malloc", "free", NULL};

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct run {
    struct md_perf_result res;
    uint64_t started, ended; // CLOCK_REALTIME around the program's run
};

// Starts argv stopped, opens the events, lets it run to its end and collects; stdout is dropped.
static void run_fixture(char *const argv[], const struct md_perf_options *opt, struct run *r)
{
    if (access(argv[0], X_OK))
        fail_msg("%s missing: run `make perf-fixtures` first", argv[0]);
    pid_t pid = spawn_stopped(argv, "/dev/null");
    int status;
    struct md_perf *p;
    struct md_error err;
    if (md_perf_open(&p, pid, opt, &err)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("md_perf_open: %s", err.msg);
    }
    r->started = realtime_ns();
    kill(pid, SIGCONT);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->ended = realtime_ns();
    int rc = md_perf_collect(p, &r->res, &err);
    md_perf_close(p);
    if (rc)
        fail_msg("md_perf_collect: %s", err.msg);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Waits of the stacks that hold a frame of function fn.
static uint64_t waits_through(const struct md_perf_result *res, const char *fn)
{
    char frame[128];
    snprintf(frame, sizeof frame, "%s (", fn);
    uint64_t waits = 0;
    for (size_t i = 0; i < res->futex_stack_count; i++) {
        const char *f = res->futex_stacks[i].frames;
        bool hit = !strncmp(f, frame, strlen(frame));
        for (const char *nl = strchr(f, '\n'); nl && !hit; nl = strchr(nl + 1, '\n'))
            hit = !strncmp(nl + 1, frame, strlen(frame));
        waits += hit ? res->futex_stacks[i].waits : 0;
    }
    return waits;
}

static void print_stacks(const char *label, const struct md_perf_result *res)
{
    fprintf(stderr, "# %s: %zu waits in %zu stacks, %ju lost\n", label, res->futex_wait_count,
            res->futex_stack_count, (uintmax_t)res->samples_lost);
    for (size_t i = 0; i < res->futex_stack_count && i < 4; i++) {
        fprintf(stderr, "#   %ju:", (uintmax_t)res->futex_stacks[i].waits);
        for (const char *f = res->futex_stacks[i].frames; *f; f++)
            fputs(*f == '\n' ? " <- " : (char[]){*f, 0}, stderr);
        fputc('\n', stderr);
    }
}

// Every wait belongs to one stack, the stacks' counts add up, and the wait times (converted to
// CLOCK_REALTIME) fall inside the run.
static void check_waits(const struct run *r)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < r->res.futex_stack_count; i++)
        sum += r->res.futex_stacks[i].waits;
    assert_int_equal(sum, r->res.futex_wait_count);
    for (size_t i = 0; i < r->res.futex_wait_count; i++) {
        const struct md_perf_futex_wait *w = &r->res.futex_waits[i];
        assert_true(w->stack < r->res.futex_stack_count);
        assert_true(w->time_ns >= r->started && w->time_ns <= r->ended);
    }
}

static void contention(const char *path, unsigned hz)
{
    struct md_perf_options opt = {.futex_waits = true, .sample_hz = hz, .alloc_api = alloc_api};
    char *argv[] = {(char *)path, NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    print_stacks(path, &r.res);
    assert_true(r.res.futex_sampled);
    assert_string_equal(r.res.futex_error, "");
    assert_int_equal(r.res.sampled, hz > 0);
    if (hz)
        assert_true(r.res.samples_total > 0); // CPU samples still parsed in the shared rings
    check_waits(&r);
    assert_true(waits_through(&r.res, "contend_left") >= 20);
    assert_true(waits_through(&r.res, "contend_right") >= 20);
    md_perf_result_free(&r.res);
}

// Own rings (no CPU sampling) and the cpu-clock rings (SET_OUTPUT), both libcs.
static void glibc_waits_own_rings(void **state)
{
    (void)state;
    contention(PFX "futex-contend", 0);
}

static void glibc_waits_shared_rings(void **state)
{
    (void)state;
    contention(PFX "futex-contend", 997);
}

static void musl_static_waits_own_rings(void **state)
{
    (void)state;
    contention(PFX "futex-contend-musl", 0);
}

static void musl_static_waits_shared_rings(void **state)
{
    (void)state;
    contention(PFX "futex-contend-musl", 997);
}

static void no_contention_no_waits(void **state)
{
    (void)state;
    struct md_perf_options opt = {.futex_waits = true};
    char *argv[] = {PFX "futex-contend", "solo", NULL};
    struct run r;
    run_fixture(argv, &opt, &r);
    assert_true(r.res.futex_sampled);
    check_waits(&r);
    assert_int_equal(waits_through(&r.res, "contend_left"), 0);
    assert_int_equal(waits_through(&r.res, "contend_right"), 0);
    assert_true(r.res.futex_wait_count <= 2); // main joining the one thread, at most
    md_perf_result_free(&r.res);
}

// A function's first byte follows padding or the previous function's return, never a call; the
// byte after each `call rel32` (E8) in main does follow one.
static void call_sites_recognised(void **state)
{
    (void)state;
    const char *path = PFX "futex-contend";
    struct md_symtab t;
    struct md_error err;
    if (md_symtab_load(&t, path, &err))
        fail_msg("%s", err.msg);
    const char *names[] = {"main", "contend_left", "contend_right"};
    for (size_t i = 0; i < 3; i++) {
        uint64_t off;
        if (md_elf_func_offset(path, names[i], &off, &err))
            fail_msg("%s", err.msg);
        assert_false(md_follows_call(&t, off));
    }
    uint64_t main_off, main_addr;
    assert_int_equal(md_elf_func_offset(path, "main", &main_off, &err), 0);
    assert_true(md_symtab_offset_to_addr(&t, main_off, &main_addr));
    const struct md_func_sym *m = md_symtab_find(&t, main_addr, NULL);
    assert_non_null(m);
    size_t size;
    const unsigned char *file = (const unsigned char *)elf_rawfile(t.elf.elf, &size);
    unsigned calls = 0;
    for (uint64_t o = main_off; o + 5 <= main_off + m->size; o++)
        if (file[o] == 0xe8 && md_follows_call(&t, o + 5))
            calls++;
    assert_true(calls >= 3); // pthread_create twice, pthread_join twice, printf
    assert_false(md_follows_call(&t, 0));
    assert_false(md_follows_call(&t, size + 1));
    md_symtab_free(&t);
}

// The file offset just after the first `call rel32` in function `from` whose target is `to`.
static uint64_t call_return_offset(const struct md_symtab *t, const char *from, const char *to)
{
    const struct md_func_sym *f = md_symtab_by_name(t, from), *g = md_symtab_by_name(t, to);
    assert_non_null(f);
    assert_non_null(g);
    uint64_t start;
    assert_true(md_symtab_addr_to_offset(t, f->addr, &start));
    size_t size;
    const unsigned char *file = (const unsigned char *)elf_rawfile(t->elf.elf, &size);
    for (uint64_t i = 0; i + 5 <= f->size; i++) {
        int32_t rel;
        memcpy(&rel, file + start + i + 1, sizeof rel);
        if (file[start + i] == 0xe8 && f->addr + i + 5 + (uint64_t)(int64_t)rel == g->addr)
            return start + i + 5;
    }
    fail_msg("no call from %s to %s", from, to);
    return 0;
}

// A direct call leads to its callee, or through the callee's tail jump further on (musl's
// pthread_mutex_lock jumps to __pthread_mutex_timedlock), and to nothing else: a return address
// that claims another inner frame is a stale stack slot.
static void stale_frames_recognised(void **state)
{
    (void)state;
    struct md_symtab t;
    struct md_error err;
    if (md_symtab_load(&t, PFX "futex-contend-musl", &err))
        fail_msg("%s", err.msg);
    uint64_t ret = call_return_offset(&t, "contend_left", "take_turns");
    assert_true(md_call_can_reach(&t, ret, &t, md_symtab_by_name(&t, "take_turns")));
    assert_false(md_call_can_reach(&t, ret, &t, md_symtab_by_name(&t, "main")));
    ret = call_return_offset(&t, "take_turns", "pthread_mutex_lock");
    assert_true(md_call_can_reach(&t, ret, &t, md_symtab_by_name(&t, "pthread_mutex_lock")));
    assert_true(md_call_can_reach(&t, ret, &t, md_symtab_by_name(&t, "__pthread_mutex_timedlock")));
    assert_false(md_call_can_reach(&t, ret, &t, md_symtab_by_name(&t, "contend_right")));
    md_symtab_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(call_sites_recognised),
        cmocka_unit_test(stale_frames_recognised),
        cmocka_unit_test(glibc_waits_own_rings),
        cmocka_unit_test(glibc_waits_shared_rings),
        cmocka_unit_test(musl_static_waits_own_rings),
        cmocka_unit_test(musl_static_waits_shared_rings),
        cmocka_unit_test(no_contention_no_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
