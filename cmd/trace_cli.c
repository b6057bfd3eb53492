// SPDX-License-Identifier: GPL-3.0-or-later
// What `trace` and `doctor` share: the run with --compare and the gate, and text rendering.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/trace_cli.h"
#include "lib/compare.h"
#include "lib/metrics.h"
#include "lib/path.h"
#include "lib/report.h"
#include "rules/rules.h"

// A year: anything longer is a typo, and the deadline arithmetic stays far from overflow.
#define MD_MAX_TIMEOUT_SECONDS 31536000.0
// --propagate-exit after --timeout ended the run, as timeout(1) does.
#define MD_EXIT_TIMED_OUT 124

// The status --propagate-exit passes on: the exit code, or 128+N for signal N (as shells do).
static int program_status(const struct md_run_result *run)
{
    if (run->timed_out)
        return MD_EXIT_TIMED_OUT;
    return run->exited ? run->exit_code : 128 + run->signal;
}

static bool parse_syscall_source(const struct md_command *cmd, const char *arg,
                                 enum md_syscall_source *out, int *exit_code)
{
    static const char *const names[] = {
        [MD_SYSCALLS_AUTO] = "auto", [MD_SYSCALLS_STRACE] = "strace", [MD_SYSCALLS_PERF] = "perf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(arg, names[i])) {
            *out = (enum md_syscall_source)i;
            return true;
        }
    *exit_code = md_cli_usage_error(cmd, "--syscalls: '%s' is not auto, strace or perf", arg);
    return false;
}

// Seconds as a decimal number greater than zero ("2", "0.5"); strtod's other forms (1e3, 0x10,
// inf) are refused as forms, so that the message does not call 1e3 not greater than 0.
static bool parse_seconds(const struct md_command *cmd, const char *option, const char *arg,
                          double *out, int *exit_code)
{
    char *end;
    errno = 0;
    *out = strtod(arg, &end);
    bool parsed = end != arg && !*end; // a decimal past DBL_MAX is inf: "at most" below
    bool decimal = parsed && strspn(arg, "0123456789.") == strlen(arg);
    if (parsed && *out <= 0) {
        *exit_code = md_cli_usage_error(
            cmd, "%s needs a number of seconds greater than 0 (e.g. 2 or 0.5), not '%s'", option,
            arg);
        return false;
    }
    if (!decimal) {
        *exit_code = md_cli_usage_error(
            cmd, "%s takes seconds in plain decimal digits (e.g. 2 or 0.5), not '%s'", option, arg);
        return false;
    }
    if (*out > MD_MAX_TIMEOUT_SECONDS) {
        *exit_code =
            md_cli_usage_error(cmd, "%s: at most %.0f seconds", option, MD_MAX_TIMEOUT_SECONDS);
        return false;
    }
    return true;
}

// A count greater than 0.
static bool parse_count(const struct md_command *cmd, const char *option, const char *arg,
                        uint64_t *out, int *exit_code)
{
    return md_cli_parse_u64(cmd, option, arg, UINT64_MAX, false, out, exit_code);
}

void md_trace_cli_init(struct md_trace_cli *a)
{
    *a = (struct md_trace_cli){.opt.sample_hz = MD_DEFAULT_SAMPLE_HZ};
    md_cli_gate_init(&a->gate);
}

int md_trace_cli_option(const struct md_command *cmd, int key, const char *arg,
                        struct md_trace_cli *a, int *exit_code)
{
    switch (key) {
    case MD_TOPT_JSON:
        a->json = true;
        return 1;
    case 'o':
        a->output = arg;
        return 1;
    case MD_TOPT_COMPARE_WITH:
    case MD_TOPT_COMPARE:
        // one or the other: each names what the second run preloads
        if (a->compare_with || a->compare) {
            *exit_code = md_cli_usage_error(cmd, "--compare and --compare-with: one, once");
            return -1;
        }
        a->compare_with = key == MD_TOPT_COMPARE_WITH ? arg : NULL;
        a->compare = true;
        return 1;
    case MD_TOPT_PROPAGATE:
        a->propagate = true;
        return 1;
    case MD_TOPT_PROBE_DIR:
        a->opt.probe_dir = arg;
        return 1;
    case MD_TOPT_OPS:
        return parse_count(cmd, "--ops", arg, &a->opt.ops, exit_code) ? 1 : -1;
    case MD_TOPT_LEAK_MIN:
        return parse_count(cmd, "--leak-min", arg, &a->opt.leak_min_bytes, exit_code) ? 1 : -1;
    case MD_TOPT_SYSCALLS:
        return parse_syscall_source(cmd, arg, &a->opt.syscalls, exit_code) ? 1 : -1;
    case MD_TOPT_TIMEOUT:
        return parse_seconds(cmd, "--timeout", arg, &a->opt.timeout_seconds, exit_code) ? 1 : -1;
    case MD_OPT_FAIL_ON:
    case MD_OPT_BASELINE:
    case MD_OPT_MAX_REGRESSION:
        return md_cli_gate_option(cmd, key, arg, &a->gate, exit_code) ? 1 : -1;
    }
    return 0;
}

bool md_trace_cli_operands(const struct md_command *cmd, int argc, char **argv,
                           struct md_trace_cli *a, int *exit_code)
{
    if (optind >= argc) {
        *exit_code =
            md_cli_usage_error(cmd, "no command given (malloc-doctor %s -- CMD ARGS)", cmd->name);
        return false;
    }
    a->opt.argv = argv + optind;
    // a failing run would replace the baseline it failed against with itself, and folded
    // stacks would replace the report or the baseline (doctor has no --folded: NULL)
    const struct md_cli_file files[] = {
        {"--baseline", a->gate.baseline}, {"--folded", a->folded}, {"-o", a->output}};
    return md_cli_files_distinct(cmd, files, sizeof files / sizeof files[0], exit_code) &&
           md_cli_gate_valid(cmd, &a->gate, exit_code);
}

// Ends the process by the signal it received (a shell stops its loop only when a child died of
// SIGINT, not when it exited 130); 128 + the signal if that does not end it.
static void die_of(int sig, const sigset_t *before)
{
    fflush(NULL);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_SETMASK, before, NULL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    exit(128 + sig);
}

int md_trace_cli_run(const struct md_command *cmd, const struct md_trace_cli *a,
                     void (*render_text)(const cJSON *report))
{
    cJSON *baseline;
    if (!md_cli_gate_load(cmd, &a->gate, &baseline))
        return MD_EXIT_USAGE;
    if (a->output && !md_cli_output_usable(cmd, a->output)) { // not after a long run
        cJSON_Delete(baseline);
        return MD_EXIT_USAGE;
    }
    cJSON *report = md_report_new(cmd->name, MD_VERSION);
    struct md_run_result result = {0};
    struct md_error err;
    fflush(NULL); // the program writes to the same stdout
    // Ctrl-C, kill, a closed terminal: the run ends, and the report is still written and the
    // temporary files removed; the exit status then says which signal stopped the tool
    sigset_t stop, before;
    md_run_stop_signals(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, &before);
    struct md_trace_options opt = a->opt;
    // folded stacks are collected in memory and written whole after the report, like -o
    char *folded = NULL;
    size_t folded_size = 0;
    if (a->folded && !(opt.folded = open_memstream(&folded, &folded_size))) {
        md_cli_error(cmd, "%s: %s", a->folded, strerror(errno));
        cJSON_Delete(report), cJSON_Delete(baseline);
        pthread_sigmask(SIG_SETMASK, &before, NULL);
        return MD_EXIT_USAGE;
    }
    opt.stop_signals = &stop;
    opt.closed_std_fds = md_cli_closed_standard_descriptors(); // CMD's, as the tool got them
    md_cli_guard_mappings();
    opt.mapping_faults = &md_cli_mapping_faults;
    int failed = a->compare ? md_trace_compare(&opt, a->compare_with, report, &result, &err)
                            : md_trace(&opt, report, &result, &err);
    int rc = MD_EXIT_USAGE;
    if (failed) {
        md_cli_error(cmd, "%s", err.msg);
    } else {
        rc = md_cli_gate_apply(cmd, &a->gate, baseline, report);
        if (a->propagate && program_status(&result))
            rc = program_status(&result);
        // the report is what the run was for: a pipe whose reader left is an error that says so
        // (exit 2), not a silent death by SIGPIPE; every process of the run has ended by now
        signal(SIGPIPE, SIG_IGN);
        // JSON too: after `printf abc` the report's first line is then the JSON alone, which a
        // reader can split off the program's output
        if (!a->output)
            md_cli_start_on_new_line();
        if (md_cli_render(cmd, report, a->output, a->json, render_text))
            rc = MD_EXIT_USAGE;
    }
    if (opt.folded && fclose(opt.folded) && !failed) {
        md_cli_error(cmd, "%s: %s", a->folded, strerror(errno));
        rc = MD_EXIT_USAGE;
    } else if (opt.folded && !failed && md_cli_write_file(cmd, a->folded, folded, folded_size)) {
        rc = MD_EXIT_USAGE;
    }
    free(folded);
    int late = md_run_take_signal(&stop);
    int interrupted = result.interrupted_by ? result.interrupted_by : late;
    cJSON_Delete(report);
    cJSON_Delete(baseline);
    // the report is out and the files are gone: now die of it, as shells expect. Not of a SIGINT
    // that the program ignored or handled and ran on after: a shell that waited for a program
    // which handled its Ctrl-C goes on too
    if (interrupted)
        die_of(interrupted, &before);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    return rc;
}

static double num(const cJSON *o, const char *key)
{
    return md_json_get_num(o, key);
}

static const char *str(const cJSON *o, const char *key, const char *fallback)
{
    const char *s = md_json_get_str(o, key);
    return s ? s : fallback;
}

// The probe file's pages count in the peak RSS (with --leaks, up to twice the live heap): when
// the rules take a tenth of it or more out, the peak RSS without them (one process), or how much
// they were (several processes, which shared them in proportions the tool cannot know). Below
// that, or where the rules keep the peak RSS whole (a small program, whose exit records read
// low), they change no figure much.
#define MD_PROBE_RSS_NOTE_SHARE 0.1
static void probe_rss_note(const cJSON *r, char *out, size_t size)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "run");
    double probe = num(run, "probe_file_kb"), processes, rss = num(run, "max_rss_kb");
    bool clamped; // the rules keep a floor: the file's pages were more than they took out
    double own = md_rule_trace_program_rss_kb(r, &processes, &clamped);
    if (probe <= 0 || rss - own < MD_PROBE_RSS_NOTE_SHARE * rss)
        *out = 0;
    else if (processes <= 1)
        snprintf(out, size, " (%s%.1f MB without the probe's file)", clamped ? "at least " : "",
                 own / 1024);
    else // without the kernel's exit records the count holds the threads too
        snprintf(out, size, " (the probe's file counts in it: %.1f MB over the %.0f %s)",
                 probe / 1024, processes,
                 strcmp(str(run, "max_rss_source", ""), "taskstats") ? "processes or threads"
                                                                     : "processes");
}

void md_render_trace_header(const cJSON *r)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "target");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "run");
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(t, "active");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(r, "syscall_recording");
    char path[PATH_MAX], interp[PATH_MAX], arg[PATH_MAX]; // names made printable
    printf("%s: %s (%s, %s; malloc: %s; counted by: %s; syscalls by: %s)\n",
           str(r, "command", "trace"), md_cli_printable(str(t, "path", "?"), path, sizeof path),
           str(t, "kind", "?"), str(t, "libc", "?"), md_cli_active_name(active),
           str(r, "mode", "?"), str(rec, "source", "?"));
    if (md_json_get_str(rec, "note"))
        printf("note: %s\n", md_json_get_str(rec, "note"));
    const cJSON *script;
    cJSON_ArrayForEach(script, cJSON_GetObjectItemCaseSensitive(t, "scripts"))
    {
        bool has_arg = md_json_get_str(script, "argument") != NULL;
        printf("script: %s (#!%s%s%s)\n",
               md_cli_printable(str(script, "path", "?"), path, sizeof path),
               md_cli_printable(str(script, "interpreter", "?"), interp, sizeof interp),
               has_arg ? " " : "", md_cli_printable(str(script, "argument", ""), arg, sizeof arg));
    }
    const char *image = md_json_get_str(cJSON_GetObjectItemCaseSensitive(t, "exec_image"), "path");
    if (image) {
        // without the kernel's exit records strace's exits count threads too (see lib/trace.c)
        char count[48] = "";
        double processes = num(run, "processes");
        if (!strcmp(str(run, "max_rss_source", ""), "taskstats"))
            snprintf(count, sizeof count, " (%.0f process%s)", processes,
                     processes == 1 ? "" : "es");
        printf("note: the command exec'd %s, which the rules judge; the counts cover the whole "
               "run%s\n",
               md_cli_printable(image, path, sizeof path), count);
    }
    const cJSON *ran = cJSON_GetObjectItemCaseSensitive(t, "malloc_at_run_time");
    if (ran && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(ran, "same_as_file")))
        printf("note: at run time malloc came from %s (%s), not from what %s links: "
               "LD_PRELOAD, /etc/ld.so.preload or the library path changed it\n",
               md_cli_printable(str(ran, "provider", "?"), path, sizeof path),
               str(ran, "name", "unknown allocator"), image ? "that program" : "the file");
    if (md_json_get_str(r, "mode_note"))
        printf("note: %s\n", md_json_get_str(r, "mode_note"));
    const cJSON *warning;
    cJSON_ArrayForEach(warning, cJSON_GetObjectItemCaseSensitive(r, "warnings"))
        printf("warning: %s\n", cJSON_GetStringValue(warning));
    const char *sig = md_json_get_str(run, "signal");
    if (sig)
        printf("exit: killed by SIG%s", sig);
    else
        printf("exit: %d", (int)num(run, "exit_code"));
    char probe[96];
    probe_rss_note(r, probe, sizeof probe);
    printf("   wall %.3f s   user %.3f s   sys %.3f s   peak RSS %.1f MB%s   faults %.0f minor, "
           "%.0f major\n",
           num(run, "wall_seconds"), num(run, "user_seconds"), num(run, "sys_seconds"),
           num(run, "max_rss_kb") / 1024, probe, num(run, "minor_faults"),
           num(run, "major_faults"));
    if (md_json_get_str(run, "interrupted_by"))
        printf("INTERRUPTED by SIG%s: the run ended early; the counts cover it until then\n",
               md_json_get_str(run, "interrupted_by"));
    else if (md_json_get_str(run, "signal_passed_on"))
        printf("note: SIG%s reached the program during the run (the tool passes the first one "
               "on; a second ends the run), and the program went on to its own end: the counts "
               "cover the whole run\n",
               md_json_get_str(run, "signal_passed_on"));
    if (md_json_get_bool(run, "timed_out")) {
        char limit[64]; // as --timeout took it
        md_format_decimal(num(run, "timeout_seconds"), limit, sizeof limit);
        printf("TIMED OUT after %s s: every process of the program was stopped (SIGTERM, then "
               "SIGKILL); the counts cover the run until then\n",
               limit);
    }
}

static void print_ops(const cJSON *r)
{
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(r, "ops");
    if (!md_json_get_str(ops, "source")) {
        printf("\nallocator operations: not counted (give --ops N)\n");
        return;
    }
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(ops, "malloc")))
        printf("\nallocator operations: %.0f (from %s)\n", num(ops, "total"),
               str(ops, "source", "?"));
    else
        printf("\nallocator operations: %.0f (malloc %.0f, free %.0f, calloc %.0f, realloc %.0f, "
               "aligned %.0f; from %s)\n",
               num(ops, "total"), num(ops, "malloc"), num(ops, "free"), num(ops, "calloc"),
               num(ops, "realloc"), num(ops, "aligned"), str(ops, "source", "?"));
    if (num(ops, "operator_new") > 0 || num(ops, "operator_delete") > 0)
        printf("C++: %.0f of the allocations were operator new, %.0f of the frees operator "
               "delete\n",
               num(ops, "operator_new"), num(ops, "operator_delete"));
    if (num(ops, "uncounted_calls") > 0)
        printf("warning: %.0f calls were not counted: the program ran more threads at once than "
               "the static probe can tell apart\n",
               num(ops, "uncounted_calls"));
    md_render_unprobed_note(r);
}

// Why one program ran without the probe (run.unprobed), after its name.
static void print_unprobed_reason(const cJSON *e)
{
    const char *reason = md_json_get_str(e, "reason");
    if (reason && !strcmp(reason, "other-user"))
        printf(": ran as another user (uid %.0f) who could not open the probe's file",
               num(e, "uid"));
    else if (reason && !strcmp(reason, "exec-again"))
        printf(": a static program that exec'd its own file again, which the static probe does "
               "not follow: only its first image was counted");
    else
        printf(": a program it cannot follow, such as a static or setuid one, or a sanitizer "
               "build that refuses a preloaded library");
}

void md_render_unprobed_note(const cJSON *r)
{
    // processes from the kernel's exit records; a program exec'd by a static one, or a static
    // one exec'd by a dynamic one, runs without a probe, and so does one that switched to
    // another user and closed the probe's descriptor on the way
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "run");
    const char *rss_source = md_json_get_str(run, "max_rss_source");
    double probed = num(run, "probed_processes"), all = num(run, "processes");
    if (!rss_source || strcmp(rss_source, "taskstats") ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(run, "probed_processes")) || probed >= all)
        return;
    printf("note: %.0f of %.0f processes ran without the probe (", all - probed, all);
    const cJSON *e;
    bool first = true;
    char shown[PATH_MAX];
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(run, "unprobed"))
    {
        printf("%s%s", first ? "" : "; ",
               md_cli_printable(md_json_get_str(e, "program"), shown, sizeof shown));
        print_unprobed_reason(e);
        first = false;
    }
    printf("%s): their allocator calls are not counted, their syscalls are\n",
           first ? "programs it cannot follow" : "");
}

// Under the syscall table, when the heap was given back: which way brk moved the break.
static void print_brk_moves(const cJSON *r)
{
    const cJSON *s = md_rule_trace_syscall(r, "brk");
    if (!s || num(s, "shrinks") <= 0)
        return;
    char down[64] = "", up[64] = "";
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "shrinks_in_allocator")))
        snprintf(down, sizeof down, " (%.0f inside allocator calls)",
                 num(s, "shrinks_in_allocator"));
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "grows_in_allocator")))
        snprintf(up, sizeof up, " (%.0f inside allocator calls)", num(s, "grows_in_allocator"));
    printf("note: brk moved the break down %.0f times%s and up %.0f times%s\n", num(s, "shrinks"),
           down, num(s, "grows"), up);
}

static void print_syscalls(const cJSON *r)
{
    printf("\n%-10s %10s %14s %14s %10s\n", "SYSCALL", "COUNT", "PER 1000 OPS", "IN ALLOCATOR",
           "SECONDS");
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r, "syscalls"))
    {
        const cJSON *per = cJSON_GetObjectItemCaseSensitive(s, "per_op");
        char per_k[32] = "-";
        if (cJSON_IsNumber(per))
            md_format_rate(per->valuedouble * 1000, per_k, sizeof per_k);
        char inside[32] = "-";
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "in_allocator")))
            snprintf(inside, sizeof inside, "%.0f", num(s, "in_allocator"));
        printf("%-10s %10.0f %14s %14s %10.4f\n", str(s, "name", "?"), num(s, "count"), per_k,
               inside, num(s, "seconds"));
    }
    print_brk_moves(r);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "futex");
    printf("\nfutex waits: %.0f, %.4f s blocked (%.1f%% of wall time); ", num(f, "waits"),
           num(f, "wait_seconds"), 100 * num(f, "wait_share_of_wall"));
    // null when no probe tied the waits to calls: a 0 would say that no call waited
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(f, "allocator_waits")))
        printf(
            "inside allocator calls: not known (%s)\n",
            num(cJSON_GetObjectItemCaseSensitive(r, "attribution"), "other_pid_namespace_calls") > 0
                ? "another pid namespace"
            : md_json_get_bool(cJSON_GetObjectItemCaseSensitive(r, "futex_wait_stacks"), "sampled")
                ? "no probe ties waits to calls in this mode; their call stacks are below"
                : "no probe ties waits to calls in this mode; --stacks tells them by their "
                  "call stacks");
    else
        printf("%.0f inside allocator calls (%.4f s)\n", num(f, "allocator_waits"),
               num(f, "allocator_wait_seconds"));
    double after = num(cJSON_GetObjectItemCaseSensitive(r, "attribution"), "events_after_return");
    if (after > 0)
        printf("note: %.0f syscall(s) came after quiet allocator calls the probe forwarded without "
               "regaining control (tail mode): made inside a call or by the program right after "
               "it, they are not in the IN ALLOCATOR column; --no-tail-calls ties those made "
               "inside a call\n",
               after);
}

static void print_bands(const cJSON *r, const char *key, const char *title)
{
    const cJSON *bands = cJSON_GetObjectItemCaseSensitive(r, key), *b;
    if (!cJSON_GetArraySize(bands))
        return;
    printf("\n%s:\n%-22s %18s %22s\n", title, "SIZE BAND", "REQUESTS", "MEMORY SYSCALLS");
    cJSON_ArrayForEach(b, bands)
    {
        char band[48], req[40] = "-", sys[40];
        if (num(b, "from") == num(b, "to")) // one size
            snprintf(band, sizeof band, "%.0f B", num(b, "from"));
        else
            snprintf(band, sizeof band, "%.0f-%.0f B", num(b, "from"), num(b, "to"));
        if (cJSON_GetObjectItemCaseSensitive(b, "requests"))
            snprintf(req, sizeof req, "%.0f (%.2f%%)", num(b, "requests"),
                     100 * num(b, "request_share"));
        snprintf(sys, sizeof sys, "%.0f (%.1f%%)", num(b, "memory_syscalls"),
                 100 * num(b, "memory_syscall_share"));
        printf("%-22s %18s %22s\n", band, req, sys);
    }
}

// decimals: of the second number (seconds need some; bytes none)
static void print_stack_list(const cJSON *list, const char *title, const char *count_key,
                             const char *bytes_key, const char *bytes_label, int decimals)
{
    const cJSON *st;
    int shown = 0, listed = cJSON_GetArraySize(list);
    cJSON_ArrayForEach(st, list)
    {
        if (shown++ == 5) {
            printf("  (%d more in the JSON report, --json)\n", listed - 5);
            break;
        }
        if (shown == 1)
            printf("\n%s:\n", title);
        double count = num(st, count_key); // the key is the plural: "1 block"
        printf("  %.0f %.*s, %.*f %s\n", count, (int)strlen(count_key) - (count == 1), count_key,
               decimals, num(st, bytes_key), bytes_label);
        const cJSON *f;
        char frame[MD_JSON_LINE_MAX]; // a frame names a file, and a symbol from it
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(st, "frames"))
            printf("      %s\n", md_cli_printable(f->valuestring, frame, sizeof frame));
    }
}

// Every blocking futex call of the program, with the frames found on its stack.
static void print_futex_wait_stacks(const cJSON *r)
{
    const cJSON *fw = cJSON_GetObjectItemCaseSensitive(r, "futex_wait_stacks");
    if (!fw)
        return;
    if (!md_json_get_bool(fw, "sampled")) {
        printf("\ncall stacks of futex waits: not sampled: %s\n", str(fw, "error", "?"));
        return;
    }
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(r, "syscall_recording");
    printf("\nfutex waits sampled with their call stacks: %.0f, %.0f timed by %s (%.4f s "
           "blocked); %.0f in allocator functions (%.4f s)%s\n",
           num(fw, "waits"), num(fw, "timed_waits"), str(rec, "source", "?"),
           num(fw, "wait_seconds"), num(fw, "allocator_waits"), num(fw, "allocator_wait_seconds"),
           num(fw, "lost_samples") > 0 ? "; some samples were lost" : "");
    print_stack_list(cJSON_GetObjectItemCaseSensitive(fw, "stacks"),
                     "call stacks of futex waits (all code; frames from a stack scan)", "waits",
                     "wait_seconds", "s blocked", 4);
}

static void print_stacks(const cJSON *r)
{
    print_stack_list(cJSON_GetObjectItemCaseSensitive(r, "stacks"), "top allocating call stacks",
                     "allocations", "bytes", "bytes", 0);
    print_stack_list(cJSON_GetObjectItemCaseSensitive(r, "futex_stacks"),
                     "call stacks of futex waits inside the allocator", "waits", "wait_seconds",
                     "s blocked", 4);
    print_futex_wait_stacks(r);
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(r, "leaks");
    if (!leaks)
        return;
    if (!md_json_get_bool(leaks, "tracked")) {
        printf("\nleaks: not tracked: %s\n", str(leaks, "reason", "?"));
        return;
    }
    printf("\nleaks: %.0f block%s, %.0f byte%s never freed\n", num(leaks, "blocks"),
           md_plural_s(num(leaks, "blocks")), num(leaks, "bytes"),
           md_plural_s(num(leaks, "bytes")));
    // the heap of an image that exec'd another program went with it
    const cJSON *exec = cJSON_GetObjectItemCaseSensitive(leaks, "live_at_exec");
    if (num(exec, "blocks") > 0)
        printf("(not counted: %.0f block%s, %.0f byte%s still live when their program exec'd "
               "another, which discards its heap)\n",
               num(exec, "blocks"), md_plural_s(num(exec, "blocks")), num(exec, "bytes"),
               md_plural_s(num(exec, "bytes")));
    print_stack_list(cJSON_GetObjectItemCaseSensitive(leaks, "by_stack"), "leaked from", "blocks",
                     "bytes", "bytes", 0);
}

static void print_cpu(const cJSON *r)
{
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(r, "cpu"), *f;
    if (md_json_get_str(cpu, "error"))
        printf("\nCPU share: %s\n", md_json_get_str(cpu, "error"));
    if (!md_json_get_bool(cpu, "sampled"))
        return;
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cpu, "allocator_share"))) {
        printf("CPU share inside the allocator: unknown (%.0f samples, see above)\n",
               num(cpu, "samples"));
        return;
    }
    // samples in the libc's code that has no symbol may be its allocator's: the share is a floor
    double unnamed = num(cpu, "unnamed_allocator_library_samples");
    printf("\nCPU share inside the allocator: %s%.1f%% of %.0f samples",
           unnamed > 0 ? "at least " : "", 100 * num(cpu, "allocator_share"), num(cpu, "samples"));
    if (unnamed > 0) {
        const cJSON *active = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "target"), "active");
        printf(" (%.0f more in %s code without symbols)", unnamed,
               md_path_base_name(str(active, "provider", "the libc")));
    }
    int shown = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cpu, "top_allocator_functions"))
    {
        if (shown++ == 3)
            break;
        printf("%s %s %.1f%%", shown == 1 ? "; hottest:" : ",", str(f, "name", "?"),
               100 * num(f, "share"));
    }
    putchar('\n');
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cpu, "kernel_samples")))
        printf("note: user mode only: the kernel's time (syscalls, page faults) was not sampled "
               "(it needs root or CAP_PERFMON, or kernel.perf_event_paranoid 1 or lower)\n");
}

void md_render_trace(const cJSON *r)
{
    md_render_trace_header(r);
    print_ops(r);
    print_syscalls(r);
    print_cpu(r);
    print_bands(r, "size_bands", "request sizes whose calls made memory syscalls");
    print_bands(r, "free_bands", "freed block sizes whose free made memory syscalls");
    print_stacks(r);
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "findings"))
        md_cli_print_finding(NULL, x);
}

static void print_metric_value(const cJSON *row, const char *value_key)
{
    char text[48];
    md_format_metric(str(row, "metric", ""), num(row, value_key), text, sizeof text);
    printf(" %*s", MD_METRIC_TEXT_MAX, text);
}

void md_render_compare(const cJSON *r)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "compare"), *m;
    if (!c)
        return;
    if (!md_json_get_bool(c, "possible")) {
        printf("\ncompare: no comparison: %s\n", str(c, "reason", "?"));
        if (md_json_get_str(c, "fix"))
            printf("  fix: %s\n", md_json_get_str(c, "fix"));
        return;
    }
    const char *with = str(c, "allocator", "?");
    printf("\ncompare: the program's allocator vs %s (%s), the same command run traced and "
           "untraced\n",
           with, str(c, "library", "?"));
    // a library's file name (libtcmalloc_minimal.so.4) is named in the line above; the column
    // gets a heading that fits it
    const char *heading = strlen(with) <= MD_METRIC_TEXT_MAX ? with : "WITH";
    printf("%-32s %*s %*s %8s\n", "METRIC", MD_METRIC_TEXT_MAX, "OWN", MD_METRIC_TEXT_MAX, heading,
           "RATIO");
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(c, "metrics"))
    {
        printf("%-32s", str(m, "label", "?"));
        print_metric_value(m, "own");
        print_metric_value(m, "with");
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m, "ratio")))
            printf(" %7.2fx\n", num(m, "ratio"));
        else
            printf(" %8s\n", "-");
    }
    printf("(ratio = %s / own: below 1.00 is better with %s; ", with, with);
    const char *sep = "";
    fputs("from one more run of each without strace or the probe: ", stdout);
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(c, "metrics"))
    {
        const char *from = md_json_get_str(m, "from");
        if (from && !strcmp(from, "untraced"))
            printf("%s%s", sep, str(m, "label", "?")), sep = ", ";
    }
    printf("%s)\n", *sep ? "" : "none");
}

// After the CHANGE of a row past the limit that passed all the same, why: "+900.0%" alone on a
// passing gate reads as a regression missed.
static const char *noise_note(const char *result)
{
    if (!strcmp(result, "below-noise-floor"))
        return " (below noise floor)";
    return strcmp(result, "within-sampling-error") ? "" : " (within sampling error)";
}

void md_render_gate(const cJSON *r)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(r, "gate"), *m, *name;
    if (!g)
        return;
    char limit[64]; // as --max-regression took it
    md_format_decimal(num(g, "max_regression_pct"), limit, sizeof limit);
    printf("\ngate: against %s, at most +%s%% per metric: %s\n", str(g, "baseline", "?"), limit,
           md_json_get_bool(g, "passed") ? "passed" : "FAILED");
    printf("%-32s %*s %*s %*s\n", "METRIC", MD_METRIC_TEXT_MAX, "BASELINE", MD_METRIC_TEXT_MAX,
           "NOW", MD_CHANGE_TEXT_MAX, "CHANGE");
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(g, "compared"))
    {
        printf("%-32s", str(m, "label", "?"));
        print_metric_value(m, "baseline");
        print_metric_value(m, "current");
        char change[32];
        md_format_row_change(m, change, sizeof change);
        printf(" %*s%s\n", MD_CHANGE_TEXT_MAX, change, noise_note(str(m, "result", "")));
    }
    const char *sep = "not judged (not measured in both runs, or not alike, or too few waits or "
                      "samples): ";
    cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(g, "not_comparable"))
    {
        printf("%s%s", sep, name->valuestring);
        sep = ", ";
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "not_comparable")))
        printf("\n");
}
