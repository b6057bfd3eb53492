// SPDX-License-Identifier: GPL-3.0-or-later
// "#!" lines read as the kernel reads them, and the command line each interpreter receives.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/script.h"

static char dir[] = "/tmp/md-test-script-XXXXXX";

// Writes an executable file dir/name with the given bytes; returns its path (static buffer).
static const char *file(const char *name, const char *bytes, size_t size)
{
    static char path[4][PATH_MAX];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    fclose(f);
    assert_int_equal(chmod(p, 0755), 0);
    return p;
}

static const char *script(const char *name, const char *text)
{
    return file(name, text, strlen(text));
}

static int read_line(const char *text, struct md_script_hop *hop)
{
    struct md_error err;
    return md_script_read(script("s", text), hop, &err);
}

static void interpreter_and_one_argument(void **state)
{
    (void)state;
    struct md_script_hop hop;
    assert_int_equal(read_line("#!/bin/sh\necho\n", &hop), 1);
    assert_string_equal(hop.interpreter, "/bin/sh");
    assert_false(hop.has_argument);
    // spaces and tabs around the name; the rest of the line is one argument, spaces kept
    assert_int_equal(read_line("#! \t/usr/bin/awk  -f  x y \t\nBEGIN{}\n", &hop), 1);
    assert_string_equal(hop.interpreter, "/usr/bin/awk");
    assert_true(hop.has_argument);
    assert_string_equal(hop.argument, "-f  x y");
    // no newline at all in a short file: the end of the file ends the line
    assert_int_equal(read_line("#!/bin/sh -e", &hop), 1);
    assert_string_equal(hop.argument, "-e");
}

static void not_a_script(void **state)
{
    (void)state;
    struct md_script_hop hop;
    assert_int_equal(read_line("", &hop), 0);
    assert_int_equal(read_line("#", &hop), 0);
    assert_int_equal(read_line("# !/bin/sh\n", &hop), 0);
    assert_int_equal(md_script_read(file("elf", "\177ELF\2\1\1", 7), &hop, &(struct md_error){0}),
                     0);
}

static void lines_the_kernel_refuses(void **state)
{
    (void)state;
    struct md_script_hop hop;
    struct md_error err;
    assert_int_equal(md_script_read(script("blank", "#!  \t \nx\n"), &hop, &err), -1);
    assert_non_null(strstr(err.msg, "names no interpreter"));
    // an interpreter name cut off by the 256-byte buffer, with no newline or blank after it
    char text[400];
    memset(text, 'a', sizeof text);
    memcpy(text, "#!/", 3);
    assert_int_equal(md_script_read(file("long", text, sizeof text), &hop, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 256 bytes"));
    // a name that ends at the buffer's last byte, a blank in that last byte: the kernel runs it
    char edge[256];
    memset(edge, 'b', sizeof edge);
    memcpy(edge, "#!/", 3);
    edge[255] = ' ';
    assert_int_equal(md_script_read(file("edge", edge, sizeof edge), &hop, &err), 1);
    assert_int_equal(strlen(hop.interpreter), 253);
    // the same long line is fine when the name ends inside the buffer: the argument is cut
    text[100] = ' ';
    assert_int_equal(md_script_read(file("long", text, sizeof text), &hop, &err), 1);
    assert_int_equal(strlen(hop.interpreter), 98);
    assert_int_equal(strlen(hop.argument), 255 - 101);
}

static void argv_is_the_kernels(void **state)
{
    (void)state;
    const char *sh = script("with-arg", "#!/bin/sh -eu\n");
    struct md_exec_plan plan;
    struct md_error err;
    char *argv[] = {"ignored-argv0", "one", "two", NULL};
    assert_int_equal(md_exec_plan_make(sh, argv, &plan, &err), 0);
    assert_string_equal(plan.path, "/bin/sh");
    assert_int_equal(plan.hops, 1);
    const char *want[] = {"/bin/sh", "-eu", sh, "one", "two", NULL};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(plan.argv[i] ? plan.argv[i] : "(null)", want[i] ? want[i] : "(null)");
    md_exec_plan_free(&plan);
}

static void nested_scripts_and_env(void **state)
{
    (void)state;
    char inner_line[PATH_MAX + 8];
    snprintf(inner_line, sizeof inner_line, "#!%s/inner\n", dir);
    script("inner", "#!/usr/bin/env sh\n");
    const char *outer = script("outer", inner_line);
    char *argv[] = {"outer", "x", NULL};
    struct md_exec_plan plan;
    struct md_error err;
    assert_int_equal(md_exec_plan_make(outer, argv, &plan, &err), 0);
    assert_int_equal(plan.hops, 2);
    assert_true(plan.hop[1].via_env);
    assert_string_equal(plan.hop[1].argument, "sh");
    char found[PATH_MAX];
    assert_non_null(realpath(plan.path, found));
    assert_non_null(strstr(found, "sh"));
    // env runs "sh inner outer x": the kernel gave inner "inner outer x" first
    assert_string_equal(plan.argv[0], "sh");
    assert_string_equal(plan.argv[1], plan.hop[1].script);
    assert_string_equal(plan.argv[2], outer);
    assert_string_equal(plan.argv[3], "x");
    assert_null(plan.argv[4]);
    md_exec_plan_free(&plan);
}

static void missing_interpreters_and_loops(void **state)
{
    (void)state;
    struct md_exec_plan plan;
    struct md_error err;
    char *argv[] = {"x", NULL};
    const char *gone = script("gone", "#!/nonexistent/md-interp\n");
    assert_int_equal(md_exec_plan_make(gone, argv, &plan, &err), -1);
    assert_non_null(strstr(err.msg, "its interpreter /nonexistent/md-interp: No such file"));
    const char *env_gone = script("env-gone", "#!/usr/bin/env md-no-such-program\n");
    assert_int_equal(md_exec_plan_make(env_gone, argv, &plan, &err), -1);
    assert_non_null(strstr(err.msg, "md-no-such-program not found in PATH"));
    char self[PATH_MAX + 8];
    snprintf(self, sizeof self, "#!%s/loop\n", dir);
    const char *loop = script("loop", self);
    assert_int_equal(md_exec_plan_make(loop, argv, &plan, &err), -1);
    assert_non_null(strstr(err.msg, "more than 5 nested #! interpreters"));
    // five scripts deep is what the kernel still runs
    script("s0", "#!/bin/echo\n");
    for (int i = 1; i <= 5; i++) {
        char name[8], line[PATH_MAX + 8];
        snprintf(name, sizeof name, "s%d", i);
        snprintf(line, sizeof line, "#!%s/s%d\n", dir, i - 1);
        script(name, line);
    }
    char s4[PATH_MAX], s5[PATH_MAX];
    snprintf(s4, sizeof s4, "%s/s4", dir);
    snprintf(s5, sizeof s5, "%s/s5", dir);
    assert_int_equal(md_exec_plan_make(s4, argv, &plan, &err), 0);
    assert_int_equal(plan.hops, 5);
    assert_string_equal(plan.path, "/bin/echo");
    md_exec_plan_free(&plan);
    assert_int_equal(md_exec_plan_make(s5, argv, &plan, &err), -1);
}

static int make_dir(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(interpreter_and_one_argument),
        cmocka_unit_test(not_a_script),
        cmocka_unit_test(lines_the_kernel_refuses),
        cmocka_unit_test(argv_is_the_kernels),
        cmocka_unit_test(nested_scripts_and_env),
        cmocka_unit_test(missing_interpreters_and_loops),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
