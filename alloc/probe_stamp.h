// SPDX-License-Identifier: MIT
// A loaded file's stamp (struct md_probe_file_stamp in alloc/probe_shared.h), taken by the
// preload probe when it records the object and again by the tool after the run: any difference
// means the file changed in between (rebuilt, replaced, copied over with `cp -p`, which keeps
// the modification time but not the change time). Needs _POSIX_C_SOURCE 200809L (st_mtim).
#ifndef MD_PROBE_STAMP_H
#define MD_PROBE_STAMP_H

#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc/probe_shared.h"

static inline void md_probe_stamp_of(struct md_probe_file_stamp *out, const struct stat *st)
{
    memset(out, 0, sizeof *out);
    out->dev = (uint64_t)st->st_dev;
    out->ino = (uint64_t)st->st_ino;
    out->size = (uint64_t)st->st_size;
    out->mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    out->ctime_ns = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
}

static inline bool md_probe_stamp_equal(const struct md_probe_file_stamp *a,
                                        const struct md_probe_file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

#endif
