// SPDX-License-Identifier: GPL-3.0-or-later
// MD001: musl's malloc serves a program that starts threads.
//
// musl's allocators take one global lock per call (mallocng, oldmalloc's bins), so threads that
// allocate serialise: seed 001 measured a static wasmtime 20x slower on 48 cores, issue 3 measured
// 14-68x against mimalloc on 2 threads. From inspect alone this is a warning: the program may
// allocate little. trace (issue 4) raises it to an error when futex waits show the contention.
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->file)
        return;
    const char *family = md_rule_active_family(in->file);
    const char *threads = md_json_get_str(in->file, "threads");
    const char *kind = md_json_get_str(in->file, "kind");
    if (!family || strcmp(family, "musl") || !threads || strcmp(threads, "yes") || !kind)
        return;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(in->file, "active");
    bool is_static = !strcmp(kind, "static") || !strcmp(kind, "static-pie");
    char message[512];
    snprintf(message, sizeof message,
             "%s serves malloc in a program that starts threads (%s): musl's allocator takes a "
             "global lock, so threads that allocate wait for each other",
             md_json_get_str(active, "name"), md_json_get_str(in->file, "threads_evidence"));
    const char *fix =
        is_static
            ? "patch a copy of musl's libc.a with mdalloc and relink against it: `malloc-doctor "
              "patch -o ~/musl-mdalloc/libc.a /usr/lib/x86_64-linux-musl/libc.a && musl-gcc "
              "-static -L ~/musl-mdalloc ...`, then check with `malloc-doctor inspect --expect "
              "mdalloc PROGRAM`"
            : "preload a thread-caching allocator built for musl (LD_PRELOAD=build/alloc/musl/"
              "libmdalloc.so, or link -lmimalloc before -lc), then measure with `malloc-doctor "
              "trace -- PROGRAM`";
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddStringToObject(ev, "active", md_json_get_str(active, "id"));
    cJSON_AddStringToObject(ev, "threads_evidence", md_json_get_str(in->file, "threads_evidence"));
}

const struct md_rule md_rule_musl_threads = {
    .id = "MD001",
    .name = "musl-malloc-threads",
    .title = "musl malloc in a multithreaded program",
    .check = check,
};
