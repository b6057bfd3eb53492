// SPDX-License-Identifier: GPL-3.0-or-later
// How lib/error.c keeps a too-long message: its start and its end (the reason) around "...".
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/error.h"

static bool ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), m = strlen(end);
    return n >= m && !strcmp(s + n - m, end);
}

static void short_message_is_whole(void **state)
{
    (void)state;
    struct md_error err;
    assert_int_equal(md_fail(&err, "%s: %s", "/bin/x", "empty file"), -1);
    assert_string_equal(err.msg, "/bin/x: empty file");
    md_fail_errno(&err, ENOENT, "cannot open %s", "/bin/y");
    assert_string_equal(err.msg, "cannot open /bin/y: No such file or directory");
}

// A 12 KB path (inspect -r on a deep tree): the reason and the file's last components survive.
static void long_path_keeps_both_ends(void **state)
{
    (void)state;
    static char path[12001];
    memset(path, 'a', sizeof path - 1);
    memcpy(path, "/tmp/", 5);
    memcpy(path + sizeof path - 7, "/trunc", 6);
    struct md_error err;
    md_fail(&err, "%s: truncated section header table", path);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_memory_equal(err.msg, "/tmp/aaa", 8);
    assert_non_null(strstr(err.msg, "..."));
    assert_true(ends_with(err.msg, "aaa/trunc: truncated section header table"));

    md_fail_errno(&err, EACCES, "cannot open %s", path);
    assert_memory_equal(err.msg, "cannot open /tmp/", 17);
    assert_true(ends_with(err.msg, "/trunc: Permission denied"));
}

// Cuts never split a UTF-8 character; the message may quote err->msg itself.
static void cuts_on_characters_and_self_reference(void **state)
{
    (void)state;
    static char path[3001];
    for (size_t i = 0; i + 2 < sizeof path; i += 2)
        memcpy(path + i, "\xc3\xa9", 2); // é
    path[sizeof path - 1] = 0;
    struct md_error err;
    for (size_t skew = 0; skew < 2; skew++) {
        md_fail(&err, "%.*s%s: reason", (int)skew, "x", path);
        assert_true(ends_with(err.msg, ": reason"));
        const char *dots = strstr(err.msg, "...");
        assert_non_null(dots);
        assert_int_not_equal((unsigned char)dots[3] & 0xc0, 0x80);
        assert_int_not_equal((unsigned char)dots[-1], 0xc3); // a lead byte without its tail
    }
    md_fail(&err, "archive(%s)", "m.o");
    md_fail(&err, "%s: corrupt member header", err.msg);
    assert_string_equal(err.msg, "archive(m.o): corrupt member header");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(short_message_is_whole),
        cmocka_unit_test(long_path_keeps_both_ends),
        cmocka_unit_test(cuts_on_characters_and_self_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
