// SPDX-License-Identifier: GPL-3.0-or-later
// Identification on real fixtures (built by `make fixtures`) and on the signature table itself.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/identify.h"

static struct md_matcher matcher;

static int setup(void **state)
{
    (void)state;
    struct md_error err;
    return md_matcher_init(&matcher, &err);
}

// The id of the allocator serving the file's own malloc, or "none".
static const char *active_of(const char *path, struct md_ident *id)
{
    static char answer[64];
    struct md_elf e;
    struct md_error err;
    bool is_archive;
    if (md_elf_open(&e, path, &is_archive, &err))
        fail_msg("%s", err.msg);
    assert_false(is_archive);
    assert_int_equal(md_identify(&matcher, &e, id, &err), 0);
    struct md_active a;
    md_active_local(&matcher, id, &a);
    snprintf(answer, sizeof answer, "%s", a.sig >= 0 ? md_signatures[a.sig].id : "none");
    md_elf_close(&e);
    return answer;
}

static int sig_index(const char *id)
{
    const struct md_signature *s = md_signature_find(id);
    assert_non_null(s);
    return (int)(s - md_signatures);
}

static void musl_static_resolves_through_the_wrapper(void **state)
{
    (void)state;
    struct md_ident id;
    assert_string_equal(active_of("build/fixtures/musl-static", &id), "musl-mallocng");
    assert_true(id.defines_malloc);
    assert_non_null(id.thread_symbol);
    assert_string_equal(md_hit_confidence(&id.hit[sig_index("musl-mallocng")]), "high");
    assert_true(id.hit[sig_index("musl-mallocng")].tables == 1);
    md_ident_free(&id);
}

static void stripped_musl_falls_back_to_elimination(void **state)
{
    (void)state;
    struct md_ident id;
    assert_string_equal(active_of("build/fixtures/musl-static-stripped", &id), "musl-mallocng");
    assert_false(id.has_symtab);
    assert_int_equal(id.hit[sig_index("musl-mallocng")].symbols, 0);
    md_ident_free(&id);
}

static void nofree_is_the_bump_allocator(void **state)
{
    (void)state;
    struct md_ident id;
    assert_string_equal(active_of("build/fixtures/musl-nofree", &id), "musl-lite");
    md_ident_free(&id);
}

static void jemalloc_wins_by_neighbourhood(void **state)
{
    (void)state;
    struct md_ident id;
    assert_string_equal(active_of("build/fixtures/jemalloc-static", &id), "jemalloc");
    md_ident_free(&id);
}

static void big_endian_table_matches(void **state)
{
    (void)state;
    struct md_ident id;
    assert_string_equal(active_of("build/fixtures/elf64-msb", &id), "musl-mallocng");
    assert_int_equal(id.hit[sig_index("musl-mallocng")].tables, 1);
    md_ident_free(&id);
}

static void lookup_handles_exact_and_prefix_names(void **state)
{
    (void)state;
    assert_int_equal(md_matcher_lookup(&matcher, "mi_malloc", NULL), sig_index("mimalloc"));
    assert_int_equal(md_matcher_lookup(&matcher, "_rjem_mallocx", NULL), sig_index("jemalloc"));
    assert_int_equal(md_matcher_lookup(&matcher, "_mi_heap_main", NULL), sig_index("mimalloc"));
    assert_int_equal(md_matcher_lookup(&matcher, "malloc", NULL), -1);
    assert_int_equal(md_matcher_lookup(&matcher, "mi_mallocator", NULL), -1);
    assert_true(md_symbol_pattern_match("je_*", "je_arena"));
    assert_false(md_symbol_pattern_match("je_*", "j"));
}

static void confidence_rules(void **state)
{
    (void)state;
    struct md_hit h = {0};
    assert_null(md_hit_confidence(&h));
    h.imports = 3;
    assert_null(md_hit_confidence(&h)); // calling an API is not containing it
    h.strings = 1;
    assert_string_equal(md_hit_confidence(&h), "low");
    h.symbols = 1;
    assert_string_equal(md_hit_confidence(&h), "high");
    h = (struct md_hit){.symbols = 1};
    assert_string_equal(md_hit_confidence(&h), "medium");
    h = (struct md_hit){.tables = 1};
    assert_string_equal(md_hit_confidence(&h), "high");
    // names other code defines too count only beside other evidence of the row
    h = (struct md_hit){.supporting = 2};
    assert_null(md_hit_confidence(&h));
    h.symbols = 1;
    assert_string_equal(md_hit_confidence(&h), "high");
    h = (struct md_hit){.supporting = 1, .strings = 1};
    assert_string_equal(md_hit_confidence(&h), "high");
}

static void supporting_names_are_looked_up_as_such(void **state)
{
    (void)state;
    bool supporting = false;
    assert_int_equal(md_matcher_lookup(&matcher, "nallocx", &supporting), sig_index("jemalloc"));
    assert_true(supporting);
    assert_int_equal(md_matcher_lookup(&matcher, "mallocx", &supporting), sig_index("jemalloc"));
    assert_false(supporting);
    assert_int_equal(md_matcher_lookup(&matcher, "default_malloc", &supporting),
                     sig_index("musl-lite"));
    assert_true(supporting);
}

static void every_allocator_row_is_findable_and_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < md_signature_count; i++) {
        const struct md_signature *s = &md_signatures[i];
        assert_non_null(s->symbols);
        assert_non_null(s->entries);
        assert_non_null(s->sections);
        assert_non_null(s->bytes);
        assert_ptr_equal(md_signature_find(s->id), s);
        if (s->kind == MD_SIG_ALLOCATOR)
            assert_true(md_allocator_known(s->family));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(musl_static_resolves_through_the_wrapper),
        cmocka_unit_test(stripped_musl_falls_back_to_elimination),
        cmocka_unit_test(nofree_is_the_bump_allocator),
        cmocka_unit_test(jemalloc_wins_by_neighbourhood),
        cmocka_unit_test(big_endian_table_matches),
        cmocka_unit_test(lookup_handles_exact_and_prefix_names),
        cmocka_unit_test(confidence_rules),
        cmocka_unit_test(supporting_names_are_looked_up_as_such),
        cmocka_unit_test(every_allocator_row_is_findable_and_well_formed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
