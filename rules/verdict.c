// SPDX-License-Identifier: GPL-3.0-or-later
#include "rules/verdict.h"

#include "lib/report.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const cJSON *run_of(const cJSON *r)
{
    return cJSON_GetObjectItemCaseSensitive(r, "run");
}

bool md_run_stopped_short(const cJSON *report, char *what, size_t size)
{
    const cJSON *run = run_of(report);
    const char *signal = md_json_get_str(run, "signal");
    const char *interrupted = md_json_get_str(run, "interrupted_by");
    if (md_json_get_bool(run, "timed_out"))
        snprintf(what, size, "the program timed out (--timeout)");
    else if (signal)
        snprintf(what, size, "the program was killed by SIG%s", signal);
    else if (interrupted)
        snprintf(what, size, "the run was interrupted by SIG%s", interrupted);
    else
        return false;
    return true;
}

// Why a run that stopped short cannot be called healthy, or false when it ran to its end.
static bool cut_short(const cJSON *r, char *why, size_t size)
{
    char what[96];
    if (!md_run_stopped_short(r, what, sizeof what))
        return false;
    snprintf(why, size,
             "%s, so the numbers cover part of a run and that no rule fired does not mean healthy",
             what);
    return true;
}

// The first process ended as a program the probe could not follow (a static PROG exec'd by
// `env` or a shell script): what was counted is the launcher's, not the program's.
static bool program_unprobed(const cJSON *r, char *why, size_t size)
{
    const cJSON *run = run_of(r), *probed = cJSON_GetObjectItemCaseSensitive(run, "program_probed");
    if (!cJSON_IsFalse(probed))
        return false;
    const char *as = md_json_get_str(run, "program_ran_as");
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(run, "program_uid");
    const char *reason = md_json_get_str(run, "program_unprobed_reason");
    if (reason && !strcmp(reason, "exec-again")) {
        snprintf(why, size,
                 "the program (%s) exec'd its own file again, and the static probe, which hooked "
                 "its first image, does not follow an exec: the later images' allocator calls "
                 "were not counted, so the numbers are the first image's only",
                 as);
        return true;
    }
    if (cJSON_IsNumber(uid)) {
        snprintf(why, size,
                 "the program ran as %s as another user (uid %.0f), who could not open the "
                 "probe's file (the descriptor the tool passed was closed on the way): its "
                 "allocator calls were not counted and the rules judged the command instead",
                 as ? as : "another program", uid->valuedouble);
        return true;
    }
    // as is the kernel's process name (comm), not a path: the tool never saw the file, which
    // ran without the probe, so the user is told what the name is rather than given a name to
    // run that may be cut short (count-musl-static runs as count-musl-stat)
    char what[128] = "";
    if (as)
        snprintf(what, sizeof what,
                 " (%s is the kernel's name for the process: its file's name, cut to at most 15 "
                 "characters)",
                 as);
    snprintf(why, size,
             "the program ran as %s, which the probe could not follow (a static or setuid "
             "program exec'd by the command, or LD_PRELOAD set anew on the way): its allocator "
             "calls were not counted and the rules judged the command instead; run doctor on "
             "that program itself%s",
             as ? as : "another program", what);
    return true;
}

// Processes of the program ran in another pid namespace whose ids the probe could not
// translate: their calls were counted, but none of their syscalls could be tied to them, and the
// rules that judge the syscalls inside the allocator saw none.
static bool ran_elsewhere(const cJSON *r, char *why, size_t size)
{
    const cJSON *run = run_of(r);
    if (md_json_get_num(run, "other_pid_namespace_processes") <= 0)
        return false;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(run, "other_pid_namespace_programs");
    const cJSON *first = cJSON_GetArrayItem(names, 0);
    const char *as = cJSON_IsString(first) ? first->valuestring : NULL;
    snprintf(why, size,
             "%s ran in another pid namespace with its own /proc, where the probe cannot learn "
             "the thread ids strace and perf see, so its syscalls could not be tied to its "
             "allocator calls: trace inside the namespace (run malloc-doctor there)",
             as ? as : "the program");
    return true;
}

static bool any_finding(const cJSON *r)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "findings")) > 0;
}

enum md_verdict md_verdict_of(const cJSON *r, char *why, size_t size)
{
    why[0] = 0;
    if (any_finding(r))
        return MD_VERDICT_FINDINGS;
    // Most rules judge rates per allocator operation: without a count they cannot fire, and
    // "healthy" would claim what was never measured; nor when the numbers may be wrong or are
    // another program's, nor when the program died before the part of it a rule would catch.
    if (cut_short(r, why, size) || program_unprobed(r, why, size) || ran_elsewhere(r, why, size))
        return MD_VERDICT_NOT_JUDGED;
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "warnings"))) {
        snprintf(why, size,
                 "the numbers the rules judge may be missing or wrong (the warning above), so "
                 "that no rule fired does not mean healthy");
        return MD_VERDICT_NOT_JUDGED;
    }
    if (!md_json_get_str(cJSON_GetObjectItemCaseSensitive(r, "ops"), "source")) {
        snprintf(why, size,
                 "allocator operations were not counted, so the rules that judge rates per "
                 "operation could not fire (give --ops N)");
        return MD_VERDICT_NOT_JUDGED;
    }
    return MD_VERDICT_HEALTHY;
}

const char *md_verdict_name(enum md_verdict verdict)
{
    static const char *const names[] = {"findings", "healthy", "not-judged"};
    return names[verdict];
}

void md_verdict_add(cJSON *report)
{
    char why[512];
    enum md_verdict v = md_verdict_of(report, why, sizeof why);
    cJSON *o = cJSON_AddObjectToObject(report, "verdict");
    cJSON_AddStringToObject(o, "status", md_verdict_name(v));
    md_json_str(o, "reason", why[0] ? why : NULL);
}
