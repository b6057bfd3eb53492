// SPDX-License-Identifier: GPL-3.0-or-later
// The tool's side of the probe file: reading its sparse tables without allocating their holes.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "lib/probe_file.h"

static uint64_t allocated_bytes(const struct md_probe_file *pf)
{
    struct stat st;
    assert_int_equal(fstat(pf->lock_fd, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

// Entries written by hand far apart in the 4M-entry live table: the runs visit them and little
// else, and visiting reads no hole into the file.
static void runs_cover_written_entries_only(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    struct md_probe_live *live = md_probe_live_table(pf.header);
    uint64_t n = pf.header->live_max;
    const uint64_t written[] = {0, 1000, 1000000, n - 1};
    for (size_t k = 0; k < sizeof written / sizeof written[0]; k++)
        live[written[k]].address = 0x1000 + k;
    uint64_t before = allocated_bytes(&pf);

    size_t first, end, visited = 0, found = 0;
    for (size_t from = 0; md_probe_file_data_run(&pf, live, sizeof *live, n, from, &first, &end);
         from = end) {
        assert_true(first >= from && end > first && end <= n);
        visited += end - first;
        for (size_t i = first; i < end; i++)
            found += live[i].address != 0;
    }
    assert_int_equal(found, 4);
    // each written entry's page and the entries that straddle its edges (4 KiB pages here; even
    // 2 MiB pages would stay under an eighth of the table)
    assert_true(visited >= 4 && visited < n / 8);
    assert_int_equal(allocated_bytes(&pf), before);

    // a start inside a run gives the rest of it; the next run holds the last entry; then none
    assert_true(md_probe_file_data_run(&pf, live, sizeof *live, n, 1000000, &first, &end));
    assert_int_equal(first, 1000000);
    size_t after = end;
    assert_true(md_probe_file_data_run(&pf, live, sizeof *live, n, after, &first, &end));
    assert_true(first > after && end == n);
    assert_false(md_probe_file_data_run(&pf, live, sizeof *live, n, n, &first, &end));
    md_probe_file_close(&pf);
}

// A stack entry (96 bytes) whose key is on a written page and whose tail crosses into a hole is
// in the run that ends at that hole.
static void an_entry_across_a_page_edge_is_found(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_STACKS, &err), 0);
    struct md_probe_stack *table = md_probe_stacks(pf.header);
    size_t base = (size_t)((char *)table - (char *)pf.header), i = 1000;
    while (i < 1200 && ((base + i * sizeof *table) % 4096 + sizeof *table <= 4096 ||
                        (base + i * sizeof *table) % 4096 + 8 > 4096))
        i++;
    assert_true(i < 1200);
    table[i].hash = 12345; // the key alone, on the page before the edge

    size_t first, end, found = 0;
    for (size_t from = 0; md_probe_file_data_run(&pf, table, sizeof *table, pf.header->stack_max,
                                                 from, &first, &end);
         from = end)
        for (size_t k = first; k < end; k++)
            found += table[k].hash == 12345;
    assert_int_equal(found, 1);
    md_probe_file_close(&pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_cover_written_entries_only),
        cmocka_unit_test(an_entry_across_a_page_edge_is_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
