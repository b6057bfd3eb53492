// SPDX-License-Identifier: GPL-3.0-or-later
// Fuzz target: one input is one file given to `malloc-doctor inspect`, the whole engine path:
// ELF and ar reading (libelf), symbol and version tables, the byte scanner, identification, the
// loader's DT_NEEDED resolution, the rules, and the JSON report that cmd/ would print.
//
// DT_NEEDED is resolved inside an empty sysroot (--root), so the run never reads the host's
// libraries: fast, and the same input always takes the same path. --expect is set so the expect
// check and MD003 run too. Nothing may be printed: errors belong in the report, one line each
// that names the file.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/inspect.h"
#include "tests/fuzz/harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_dir input, sysroot;
static struct fuzz_stderr quiet;

static void cleanup(void)
{
    fuzz_dir_remove(&input);
    fuzz_dir_remove(&sysroot);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir_init(&input, "input");
    fuzz_dir_init(&sysroot, "none");
    atexit(cleanup);
    return 0;
}

// Bad input gets one line that names the file and the reason: every error entry's message starts
// with the input's path (an archive member's is "path(member)") and has no line break.
static void check_errors(const cJSON *files)
{
    const cJSON *entry;
    cJSON_ArrayForEach(entry, files)
    {
        const char *msg = md_json_get_str(entry, "error");
        if (msg && (strncmp(msg, input.path, strlen(input.path)) || strchr(msg, '\n'))) {
            fprintf(stderr, "fuzz: bad error message: %s\n", msg);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(&input, data, size);
    cJSON *report = md_report_new("inspect", "fuzz");
    cJSON *files = cJSON_AddArrayToObject(report, "files");
    struct md_inspect_options opt = {.root = sysroot.dir, .expect = "mimalloc"};
    struct md_inspector in;
    struct md_error err;
    // a fresh inspector per input: the loader caches libraries by path, and the path is reused
    if (md_inspector_init(&in, &opt, files, &err))
        abort(); // the signature table is fixed: this cannot fail
    fuzz_stderr_capture(&quiet);
    md_inspect_path(&in, input.path);
    fuzz_stderr_check(&quiet, "md_inspect_path");
    check_errors(files);
    md_inspect_summary(&in, report);
    // printing reads every string of the report: one that points into the unmapped file shows
    char *text = cJSON_PrintUnformatted(report);
    if (!text)
        abort();
    free(text);
    md_inspector_free(&in);
    cJSON_Delete(report);
    return 0;
}
