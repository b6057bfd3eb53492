// SPDX-License-Identifier: GPL-3.0-or-later
// The loader emulation: ld.so.conf parsing and load order, inside a temporary sysroot.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/loader.h"

static char root[64];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s", root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mkdir_in_root(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s", root, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/md-loader-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    mkdir_in_root("/etc");
    mkdir_in_root("/etc/ld.so.conf.d");
    write_file("/etc/ld.so.conf", "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/first:/second\n"
                                  "hwcap 0 nosegneg\n");
    write_file("/etc/ld.so.conf.d/b.conf", "/from-b # trailing comment\n");
    write_file("/etc/ld.so.conf.d/a.conf", "include nested.inc\n/from-a\n");
    write_file("/etc/ld.so.conf.d/nested.inc", "/nested, /nested2\n");
    write_file("/etc/ld.so.preload", "/preload/libx.so\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

static void conf_directories_in_order(void **state)
{
    (void)state;
    struct md_matcher m;
    struct md_loader l;
    struct md_error err;
    assert_int_equal(md_matcher_init(&m, &err), 0);
    assert_int_equal(md_loader_init(&l, root, &m, &err), 0);
    const char *want[] = {"/nested", "/nested2", "/from-a", "/from-b", "/first", "/second"};
    assert_int_equal(l.conf_count, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(l.conf_dirs[i], want[i]);
    assert_int_equal(l.preload_count, 1);
    assert_string_equal(l.preload[0], "/preload/libx.so");
    md_loader_free(&l);
}

static void scope_is_breadth_first_and_cached(void **state)
{
    (void)state;
    struct md_matcher m;
    struct md_loader l;
    struct md_error err;
    assert_int_equal(md_matcher_init(&m, &err), 0);
    assert_int_equal(md_loader_init(&l, "", &m, &err), 0);
    struct md_elf e;
    bool is_archive;
    const char *exe = "build/fixtures/mimalloc-dynamic";
    assert_int_equal(md_elf_open(&e, exe, &is_archive, &err), 0);
    struct md_dynamic dyn;
    assert_int_equal(md_elf_dynamic(&e, &dyn, &err), 0);
    struct md_scope scope;
    md_loader_scope(&l, exe, &e, &dyn, "/lib64/ld-linux-x86-64.so.2", &scope);
    assert_true(scope.count >= 2);
    assert_non_null(strstr(scope.object[0]->path, "libmimalloc.so.2"));
    assert_non_null(strstr(scope.object[1]->path, "libc.so.6"));
    assert_true(scope.object[0]->exports_malloc);
    size_t cached = l.lib_count;
    md_loader_scope(&l, exe, &e, &dyn, "/lib64/ld-linux-x86-64.so.2", &scope);
    assert_int_equal(l.lib_count, cached); // the second walk reads nothing new
    md_elf_close(&e);
    md_loader_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conf_directories_in_order),
        cmocka_unit_test(scope_is_breadth_first_and_cached),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
