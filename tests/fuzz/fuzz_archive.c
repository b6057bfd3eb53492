// SPDX-License-Identifier: GPL-3.0-or-later
// Fuzz target: one input is one `ar` archive given to md_archive_read (libbfd), the reader of
// `malloc-doctor patch`. An archive that reads is then written back with md_archive_serialize
// and read again: patch relies on that round trip, so it must give the same members and bytes.
// Nothing may be printed on the way (libbfd prints some warnings itself).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/archive.h"
#include "tests/fuzz/harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_dir input, output;
static struct fuzz_stderr quiet;

static void cleanup(void)
{
    fuzz_dir_remove(&input);
    fuzz_dir_remove(&output);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir_init(&input, "input.a");
    fuzz_dir_init(&output, "output.a");
    atexit(cleanup);
    return 0;
}

static bool same_member(const struct md_ar_member *a, const struct md_ar_member *b)
{
    if (strcmp(a->name, b->name) || a->size != b->size || memcmp(a->data, b->data, a->size) ||
        a->nsyms != b->nsyms)
        return false;
    for (size_t i = 0; i < a->nsyms; i++)
        if (strcmp(a->syms[i].name, b->syms[i].name) || a->syms[i].kind != b->syms[i].kind)
            return false;
    return true;
}

static void round_trip(const struct md_archive *ar)
{
    const struct md_ar_member **order = malloc(ar->count * sizeof *order);
    if (!order)
        abort();
    for (size_t i = 0; i < ar->count; i++)
        order[i] = &ar->members[i];
    unsigned char *buf;
    size_t size;
    struct md_error err;
    if (md_archive_serialize(order, ar->count, &buf, &size, &err))
        abort();
    free(order);
    fuzz_write(&output, buf, size);
    free(buf);
    struct md_archive back;
    fuzz_stderr_capture(&quiet);
    int rc = md_archive_read(&back, output.path, &err);
    fuzz_stderr_check(&quiet, "md_archive_read");
    if (rc || back.count != ar->count || !back.has_map)
        abort();
    for (size_t i = 0; i < ar->count; i++)
        if (!same_member(&ar->members[i], &back.members[i]))
            abort();
    md_archive_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(&input, data, size);
    struct md_archive ar;
    struct md_error err;
    fuzz_stderr_capture(&quiet);
    int rc = md_archive_read(&ar, input.path, &err);
    fuzz_stderr_check(&quiet, "md_archive_read");
    // a refusal is one line that names the archive
    if (rc && (strncmp(err.msg, input.path, strlen(input.path)) || strchr(err.msg, '\n'))) {
        fprintf(stderr, "fuzz: bad error message: %s\n", err.msg);
        abort();
    }
    if (!rc)
        round_trip(&ar);
    md_archive_free(&ar);
    return 0;
}
