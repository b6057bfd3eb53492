// SPDX-License-Identifier: GPL-3.0-or-later
// The mark patch adds to a libc.a it writes: one more member, an object that defines no symbol
// (so no link ever pulls it in) whose .comment section names the original libc.a by size and
// SHA-256. --restore reads it to know that the backup is the archive the patched file was made
// from, and not an older libc.a that a toolchain update left behind.
#ifndef MD_PATCH_MARK_H
#define MD_PATCH_MARK_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/archive.h"
#include "lib/error.h"

#define MD_PATCH_MARK_MEMBER "malloc-doctor-patch.o"

struct md_patch_mark {
    size_t size;     // of the original libc.a, in bytes
    char sha256[65]; // of its bytes, lowercase hex
};

// The mark of an original libc.a, read with md_archive_read_digest.
void md_patch_mark_of(const struct md_archive *orig, struct md_patch_mark *mark);

// Makes the mark member: an ELF relocatable object of like's class, byte order and machine (like
// is a member of the libc.a, so the mark reads as one of its objects). Fills out, whose name and
// data are malloc'ed (release with md_patch_mark_free).
int md_patch_mark_member(const struct md_ar_member *like, const struct md_patch_mark *mark,
                         struct md_ar_member *out, struct md_error *err);
void md_patch_mark_free(struct md_ar_member *m);

// The mark of an archive patch wrote; false when it has none (not patched, or patched by a
// malloc-doctor older than the mark).
bool md_patch_mark_find(const struct md_archive *ar, struct md_patch_mark *mark);

#endif
