// SPDX-License-Identifier: GPL-3.0-or-later
// Planning the static probe's hooks on real static programs (built by `make fixtures`): what is
// hooked, what is left out, and why a program is refused.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/trace_hooks.h"

#define FX "build/fixtures/"

static void musl_static_hooks_malloc_and_free_only(void **state)
{
    (void)state;
    struct md_hooks_plan plan;
    struct md_error err;
    assert_int_equal(md_hooks_plan(FX "musl-static", &plan, &err), 0);
    assert_int_equal(plan.hooked, 2);
    assert_false(plan.usable_size); // this program never links malloc_usable_size
    assert_non_null(strstr(plan.spec, "malloc="));
    assert_non_null(strstr(plan.spec, "free="));
}

// glibc's aligned_alloc and memalign are one function: hooked once. malloc_usable_size is there.
static void glibc_static_hooks_each_function_once(void **state)
{
    (void)state;
    struct md_hooks_plan plan;
    struct md_error err;
    assert_int_equal(md_hooks_plan(FX "glibc-static", &plan, &err), 0);
    assert_true(plan.usable_size);
    assert_non_null(strstr(plan.spec, "malloc_usable_size="));
    bool aligned = strstr(plan.spec, "aligned_alloc=") != NULL;
    bool memalign = strstr(plan.spec, ",memalign=") != NULL;
    assert_true(aligned != memalign);
    // malloc free calloc realloc, one of aligned_alloc/memalign, posix_memalign valloc pvalloc
    assert_int_equal(plan.hooked, 8);
}

static void a_branch_into_the_moved_bytes_refuses(void **state)
{
    (void)state;
    struct md_hooks_plan plan;
    struct md_error err;
    assert_int_equal(md_hooks_plan(FX "unhookable", &plan, &err), -1);
    assert_non_null(strstr(err.msg, "free cannot be hooked"));
    // from another function: only the scan of the whole program sees it
    assert_int_equal(md_hooks_plan(FX "unhookable-foreign", &plan, &err), -1);
    assert_non_null(strstr(err.msg, "free_cold+0x0 branches into the first bytes of free"));
}

static void stripped_and_missing_programs_are_refused(void **state)
{
    (void)state;
    struct md_hooks_plan plan;
    struct md_error err;
    assert_int_equal(md_hooks_plan(FX "musl-static-stripped", &plan, &err), -1);
    assert_non_null(strstr(err.msg, "no malloc symbol"));
    assert_int_equal(md_hooks_plan(FX "no-such-file", &plan, &err), -1);
    assert_non_null(strstr(err.msg, "no-such-file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(musl_static_hooks_malloc_and_free_only),
        cmocka_unit_test(glibc_static_hooks_each_function_once),
        cmocka_unit_test(a_branch_into_the_moved_bytes_refuses),
        cmocka_unit_test(stripped_and_missing_programs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
