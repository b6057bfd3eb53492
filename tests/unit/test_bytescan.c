// SPDX-License-Identifier: GPL-3.0-or-later
// The multi-pattern scanner: finds every pattern wherever it sits, and nothing else.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/bytescan.h"

static void finds_patterns_at_start_middle_and_end(void **state)
{
    (void)state;
    struct md_scanner s;
    md_scanner_init(&s);
    assert_int_equal(md_scanner_add(&s, "alpha", 5, 0), 0);
    assert_int_equal(md_scanner_add(&s, "middle!", 7, 1), 0);
    assert_int_equal(md_scanner_add(&s, "omega", 5, 2), 0);
    const char buf[] = "alpha....middle!....omega";
    unsigned char found[3] = {0};
    md_scanner_run(&s, buf, strlen(buf), found);
    assert_true(found[0] && found[1] && found[2]);
}

static void a_cut_pattern_is_not_found(void **state)
{
    (void)state;
    struct md_scanner s;
    md_scanner_init(&s);
    md_scanner_add(&s, "omega", 5, 0);
    md_scanner_add(&s, "alphx", 5, 1);
    const char buf[] = "alpha....omeg";
    unsigned char found[2] = {0};
    md_scanner_run(&s, buf, strlen(buf), found);
    assert_false(found[0]);
    assert_false(found[1]); // same first four bytes as "alpha", different fifth
}

static void rejects_short_patterns_and_overflow(void **state)
{
    (void)state;
    struct md_scanner s;
    md_scanner_init(&s);
    assert_int_equal(md_scanner_add(&s, "abc", 3, 0), -1);
    for (int i = 0; i < MD_SCAN_MAX_PATTERNS; i++)
        assert_int_equal(md_scanner_add(&s, "abcd", 4, i), 0);
    assert_int_equal(md_scanner_add(&s, "abcd", 4, 0), -1);
}

static void binary_patterns_with_zero_bytes(void **state)
{
    (void)state;
    static const unsigned char table[] = {1, 0, 2, 0, 3, 0, 4, 0};
    unsigned char buf[64] = {0};
    memcpy(buf + 37, table, sizeof table);
    struct md_scanner s;
    md_scanner_init(&s);
    md_scanner_add(&s, table, sizeof table, 0);
    unsigned char found[1] = {0};
    md_scanner_run(&s, buf, sizeof buf, found);
    assert_true(found[0]);
    buf[44] = 9; // break the last byte
    found[0] = 0;
    md_scanner_run(&s, buf, sizeof buf, found);
    assert_false(found[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_patterns_at_start_middle_and_end),
        cmocka_unit_test(a_cut_pattern_is_not_found),
        cmocka_unit_test(rejects_short_patterns_and_overflow),
        cmocka_unit_test(binary_patterns_with_zero_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
