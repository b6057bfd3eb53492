// SPDX-License-Identifier: GPL-3.0-or-later
// Fuzz target: `strace -f -ttt -T` output for the trace parser. Each line is handed to
// md_strace_parse_line in a heap buffer of exactly its length (no terminator), so a read past
// the line is an ASan report; then the whole input goes through md_strace_parse_file, the path
// trace uses. The counters must stay consistent whatever the input.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strace.h"
#include "tests/fuzz/harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_dir input;

static void cleanup(void)
{
    fuzz_dir_remove(&input);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir_init(&input, "strace.out");
    atexit(cleanup);
    return 0;
}

static void check(const struct md_strace_log *log, size_t lines)
{
    if (log->lines != lines || log->unparsed > log->lines || log->exits + log->kills > log->lines ||
        log->count > log->lines || log->pending_count > log->lines)
        abort();
    for (size_t i = 0; i < log->count; i++)
        if (log->event[i].sys >= MD_SYS_COUNT || log->event[i].tid < 0 ||
            (log->event[i].failed && !log->event[i].finished))
            abort();
}

static void parse_lines(const uint8_t *data, size_t size)
{
    struct md_strace_log log = {0};
    size_t lines = 0;
    for (size_t start = 0; start < size;) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t len = nl ? (size_t)(nl - (data + start)) : size - start;
        char *line = malloc(len ? len : 1);
        if (!line)
            abort();
        memcpy(line, data + start, len);
        if (md_strace_parse_line(&log, line, len))
            abort(); // only out of memory may fail
        free(line);
        lines++;
        start += len + 1;
    }
    check(&log, lines);
    md_strace_log_free(&log);
}

static void parse_file(const uint8_t *data, size_t size)
{
    fuzz_write(&input, data, size);
    struct md_strace_log log = {0};
    struct md_error err;
    if (md_strace_parse_file(&log, input.path, &err))
        abort();
    if (log.pending_count != 0) // parse_file closes every unfinished call
        abort();
    md_strace_log_free(&log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_lines(data, size);
    parse_file(data, size);
    return 0;
}
