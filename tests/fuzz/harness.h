// SPDX-License-Identifier: GPL-3.0-or-later
// Helpers shared by the fuzz targets.
//
// The engine reads files by path, so fuzz inputs are written to one file per process, in a
// private directory that holds nothing else: a DT_RUNPATH of $ORIGIN in a fuzz input then finds
// only the input itself, never a library of the host. The directory is made under $TMPDIR, else
// /dev/shm (tmpfs: two to three times the executions per second of a disk-backed /tmp), else /tmp.
#ifndef MD_FUZZ_HARNESS_H
#define MD_FUZZ_HARNESS_H

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fuzz_dir {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
};

// Creates the directory once; aborts on failure (a harness that cannot run must not pass).
static inline void fuzz_dir_init(struct fuzz_dir *d, const char *file_name)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
    snprintf(d->dir, sizeof d->dir, "%s/md-fuzz-XXXXXX", tmp);
    if (!mkdtemp(d->dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    snprintf(d->path, sizeof d->path, "%s/%s", d->dir, file_name);
}

// Replaces the file's contents with data.
static inline void fuzz_write(const struct fuzz_dir *d, const uint8_t *data, size_t size)
{
    int fd = open(d->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            perror("fuzz: write");
            abort();
        }
        done += (size_t)n;
    }
    close(fd);
}

// Removes the file and the directory at exit, so runs leave no litter in /tmp.
static inline void fuzz_dir_remove(const struct fuzz_dir *d)
{
    unlink(d->path);
    rmdir(d->dir);
}

// The engine never prints (lib/ returns errors instead), and neither may the libraries it calls
// on its behalf: libbfd, for one, prints some warnings to stderr on its own. While the engine
// runs, the stdio stream stderr points at a scratch file that must stay empty. Sanitizer and
// libFuzzer reports are unaffected: they write to file descriptor 2, or through their own copy of
// the stream taken at start-up.
struct fuzz_stderr {
    FILE *scratch, *saved;
};

static inline void fuzz_stderr_capture(struct fuzz_stderr *c)
{
    if (!c->scratch && !(c->scratch = tmpfile())) {
        perror("fuzz: tmpfile");
        abort();
    }
    rewind(c->scratch);
    if (ftruncate(fileno(c->scratch), 0))
        abort();
    c->saved = stderr;
    stderr = c->scratch;
}

// Restores stderr; aborts, showing what was printed, when anything was.
static inline void fuzz_stderr_check(struct fuzz_stderr *c, const char *who)
{
    stderr = c->saved;
    fflush(c->scratch);
    long printed = ftell(c->scratch);
    if (printed <= 0)
        return;
    char text[512] = {0};
    rewind(c->scratch);
    size_t n = fread(text, 1, sizeof text - 1, c->scratch);
    text[n] = 0;
    fprintf(stderr, "fuzz: %s printed %ld bytes to stderr:\n%s\n", who, printed, text);
    abort();
}

#endif
