// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/tempfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MD_TEMP_SUFFIX_LEN 6 // mkstemp's XXXXXX

const char *md_temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp && *tmp ? tmp : "/tmp";
}

// A prefix names one kind of file: an empty one would make every "-XXXXXX" a candidate, and a
// '/' would reach into another directory.
static bool valid_prefix(const char *prefix)
{
    return prefix[0] && !strchr(prefix, '/');
}

int md_temp_create(const char *dir, const char *prefix, char *path, size_t size,
                   struct md_error *err)
{
    if (!valid_prefix(prefix)) {
        path[0] = '\0';
        return md_fail(err, "'%s': not a name for temporary files", prefix);
    }
    if ((size_t)snprintf(path, size, "%s/%s-XXXXXX", dir, prefix) >= size) {
        path[0] = '\0';
        return md_fail(err, "%s: the directory name is too long for a temporary file", dir);
    }
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        path[0] = '\0';
        return md_fail_errno(err, errno, "cannot create a file in %s", dir);
    }
    // A new file: only a sweep could hold it, for an instant. On a file system without flock
    // (ENOLCK, EOPNOTSUPP) the run goes on with the file unlocked; a sweep cannot lock files
    // there either, so it removes none.
    if (flock(fd, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK) {
        md_fail_errno(err, errno, "%s: cannot lock it", path);
        md_temp_remove(path, fd);
        return -1;
    }
    return fd;
}

void md_temp_remove(char *path, int fd)
{
    if (!path[0])
        return;
    unlink(path);
    close(fd);
    path[0] = '\0';
}

static bool is_temp_name(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(name, prefix, n) && name[n] == '-' &&
           strlen(name + n + 1) == MD_TEMP_SUFFIX_LEN && !strchr(name + n + 1, '/');
}

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

// One candidate: ours, a regular file, old enough, and lockable (no live run holds it). The
// unlink names the file that was checked: the lock is held, and a new file never reuses a
// name (mkstemp creates with O_EXCL).
static bool sweep_one(int dir_fd, const char *name, double min_age_seconds)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid())
        return false;
    if (seconds_since(&st.st_mtim) < min_age_seconds)
        return false;
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat opened;
    bool removed = !fstat(fd, &opened) && opened.st_ino == st.st_ino &&
                   opened.st_dev == st.st_dev && !flock(fd, LOCK_EX | LOCK_NB) &&
                   !unlinkat(dir_fd, name, 0);
    close(fd);
    return removed;
}

int md_temp_sweep(const char *dir, const char *prefix, double min_age_seconds)
{
    if (!valid_prefix(prefix))
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (is_temp_name(de->d_name, prefix))
            removed += sweep_one(dirfd(d), de->d_name, min_age_seconds);
    closedir(d);
    return removed;
}
