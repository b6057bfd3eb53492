// SPDX-License-Identifier: GPL-3.0-or-later
// Which temporary files a run removes as orphans of killed runs (lib/tempfile.c): only unlocked,
// old enough, regular files of this user with exactly the run's name pattern.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/tempfile.h"

#define PREFIX "malloc-doctor-unit"

static char dir[] = "/tmp/md-test-tempfile-XXXXXX";

static int make_dir(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

// A plain file, its modification time set seconds_ago into the past.
static void make_file(const char *name, int seconds_ago)
{
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= seconds_ago;
    times[1] = times[0];
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static bool exists(const char *name)
{
    char path[256];
    struct stat st;
    path_of(path, sizeof path, name);
    return !lstat(path, &st);
}

static void sweep_removes_only_old_unlocked_orphans(void **state)
{
    (void)state;
    make_file(PREFIX "-aaaaaa", 120);   // an orphan
    make_file(PREFIX "-bbbbbb", 5);     // young: its run may not have locked it yet
    make_file(PREFIX "-cccccc", 120);   // locked below: a live run's
    make_file(PREFIX "-dddddddd", 120); // not the pattern
    make_file("other-eeeeee", 120);
    char path[256], target[256];
    path_of(path, sizeof path, PREFIX "-cccccc");
    int held = open(path, O_RDONLY);
    assert_true(held >= 0);
    assert_int_equal(flock(held, LOCK_EX), 0);
    path_of(target, sizeof target, "other-eeeeee"); // a link's target is never touched
    path_of(path, sizeof path, PREFIX "-ffffff");
    assert_int_equal(symlink(target, path), 0);

    assert_int_equal(md_temp_sweep(dir, PREFIX, 60), 1);
    assert_false(exists(PREFIX "-aaaaaa"));
    assert_true(exists(PREFIX "-bbbbbb"));
    assert_true(exists(PREFIX "-cccccc"));
    assert_true(exists(PREFIX "-dddddddd"));
    assert_true(exists("other-eeeeee"));
    assert_true(exists(PREFIX "-ffffff"));
    close(held); // the run ended without removing it: an orphan now
    assert_int_equal(md_temp_sweep(dir, PREFIX, 60), 1);
    assert_false(exists(PREFIX "-cccccc"));
}

static void created_file_is_locked_and_kept_by_a_sweep(void **state)
{
    (void)state;
    char path[256];
    struct md_error err;
    int fd = md_temp_create(dir, PREFIX, path, sizeof path, &err);
    assert_true(fd >= 0);
    assert_int_equal(strncmp(path, dir, strlen(dir)), 0);
    struct timespec old[2];
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 3600;
    old[1] = old[0];
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    assert_int_equal(md_temp_sweep(dir, PREFIX, 60), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    close(fd);
    assert_int_equal(md_temp_sweep(dir, PREFIX, 60), 1);
    assert_int_not_equal(stat(path, &st), 0);
}

static void create_in_a_missing_directory_names_it(void **state)
{
    (void)state;
    char path[256];
    struct md_error err;
    assert_int_equal(md_temp_create("/nonexistent/md", PREFIX, path, sizeof path, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/md"));
    assert_int_equal(md_temp_sweep("/nonexistent/md", PREFIX, 60), 0);
}

// An empty prefix would match any "-XXXXXX" file, and one with '/' another directory's files.
static void odd_prefix_creates_and_sweeps_nothing(void **state)
{
    (void)state;
    char path[256];
    struct md_error err;
    make_file("-gggggg", 120);
    make_file(".md-tmp-hhhhhh", 120);
    assert_int_equal(md_temp_sweep(dir, "", 0), 0);
    assert_int_equal(md_temp_sweep("/", "tmp/.md-tmp", 0), 0);
    assert_true(exists("-gggggg"));
    assert_true(exists(".md-tmp-hhhhhh"));
    assert_int_equal(md_temp_create(dir, "", path, sizeof path, &err), -1);
    assert_string_equal(path, "");
    assert_int_equal(md_temp_create(dir, "a/b", path, sizeof path, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sweep_removes_only_old_unlocked_orphans),
        cmocka_unit_test(created_file_is_locked_and_kept_by_a_sweep),
        cmocka_unit_test(create_in_a_missing_directory_names_it),
        cmocka_unit_test(odd_prefix_creates_and_sweeps_nothing),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
