// SPDX-License-Identifier: GPL-3.0-or-later
// Names shown for C++ and Rust functions: demangled through libbfd, without parameters, C names
// untouched, hostile names refused without a crash, and each symbol demangled once per cache.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/archive.h"
#include "lib/symbolize.h"

static void expect_demangled(const char *mangled, const char *shown)
{
    char *d = md_demangle(mangled);
    assert_non_null(d);
    assert_string_equal(d, shown);
    free(d);
}

static void cxx_and_rust_names(void **state)
{
    (void)state;
    expect_demangled("_Znam", "operator new[]");
    expect_demangled("_ZN4demo5Arena4growEm", "demo::Arena::grow");
    expect_demangled("_ZNSt6vectorIiSaIiEE9push_backERKi",
                     "std::vector<int, std::allocator<int> >::push_back");
    expect_demangled("_ZN3foo3bar17h05af221e174051e9E", "foo::bar"); // Rust, legacy: hash dropped
    expect_demangled("_RNvCs15kBYyAo9fc_7mycrate4main", "mycrate::main"); // Rust v0
}

static void c_and_broken_names_stay(void **state)
{
    (void)state;
    const char *as_is[] = {"malloc", "__libc_malloc", "_int_malloc", "_Z", "_ZZZ", "_R", ""};
    for (size_t i = 0; i < sizeof as_is / sizeof *as_is; i++)
        assert_null(md_demangle(as_is[i]));
}

// A symbol table is the file's: a name nested 100,000 deep must not exhaust the stack.
static void hostile_names_do_not_crash(void **state)
{
    (void)state;
    size_t n = 300000;
    char *name = malloc(n + 8);
    assert_non_null(name);
    strcpy(name, "_Z1f");
    memset(name + 4, 'P', n);
    strcpy(name + 4 + n, "v");
    free(md_demangle(name)); // demangled or refused: either, but it returns
    strcpy(name, "_ZN");
    for (size_t i = 3; i + 4 < n; i += 3)
        memcpy(name + i, "1aN", 3);
    free(md_demangle(name));
    free(name);
}

// A function of this test program under a C++ name, so its own symbol table has one.
__attribute__((noinline, used)) void cxx_named(void) __asm__("_ZN4demo4unit5probeEv");
void cxx_named(void)
{
    __asm__ volatile("");
}

static const char long_named_symbol[] =
    "_ZNSt8_Rb_treeIlSt4pairIKlSt6vectorIcSaIcEEESt10_Select1stIS5_ESt4lessIlESaIS5_EE22_M_"
    "emplace_hint_uniqueIJRKSt21piecewise_construct_tSt5tupleIJOlEESG_IJEEEEESt17_Rb_tree_"
    "iteratorIS5_ESt23_Rb_tree_const_iteratorIS5_EDpOT_";

// A long template name: the shown name keeps the function's own name and drops the arguments.
__attribute__((noinline, used)) void long_named(void) __asm__(
    "_ZNSt8_Rb_treeIlSt4pairIKlSt6vectorIcSaIcEEESt10_Select1stIS5_ESt4lessIlESaIS5_EE22_M_"
    "emplace_hint_uniqueIJRKSt21piecewise_construct_tSt5tupleIJOlEESG_IJEEEEESt17_Rb_tree_"
    "iteratorIS5_ESt23_Rb_tree_const_iteratorIS5_EDpOT_");
void long_named(void)
{
    __asm__ volatile("");
}

// An operator's '<' is no template bracket: "Printer<...>::operator<<" keeps its name.
#define SHIFT_SYMBOL                                                                               \
    "_ZN4demo7PrinterISt3mapINSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEESt6vectorISt4pai" \
    "rIlS7_ESaISA_EESt4lessIS7_ESaIS9_IKS7_SC_EEEElsEi"
__attribute__((noinline, used)) void shift_named(void) __asm__(SHIFT_SYMBOL);
void shift_named(void)
{
    __asm__ volatile("");
}

static void symcache_shows_the_demangled_name_once(void **state)
{
    (void)state;
    struct md_symcache c;
    md_symcache_init(&c);
    const struct md_symtab *t = md_symcache_get(&c, "/proc/self/exe");
    assert_non_null(t);
    const struct md_func_sym *cxx = md_symtab_by_name(t, "_ZN4demo4unit5probeEv");
    const struct md_func_sym *c_func = md_symtab_by_name(t, "main");
    assert_non_null(cxx);
    assert_non_null(c_func);
    const char *shown = md_symcache_shown_name(&c, cxx);
    assert_string_equal(shown, "demo::unit::probe");
    assert_ptr_equal(md_symcache_shown_name(&c, cxx), shown); // cached, not demangled again
    assert_ptr_equal(md_symcache_shown_name(&c, c_func), c_func->name);
    const struct md_func_sym *tree = md_symtab_by_name(t, long_named_symbol);
    assert_non_null(tree);
    assert_string_equal(md_symcache_shown_name(&c, tree),
                        "std::_Rb_tree<...>::_M_emplace_hint_unique<...>");
    const struct md_func_sym *shift = md_symtab_by_name(t, SHIFT_SYMBOL);
    assert_non_null(shift);
    assert_string_equal(md_symcache_shown_name(&c, shift), "demo::Printer<...>::operator<<");
    md_symcache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cxx_and_rust_names),
        cmocka_unit_test(c_and_broken_names_stay),
        cmocka_unit_test(hostile_names_do_not_crash),
        cmocka_unit_test(symcache_shows_the_demangled_name_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
