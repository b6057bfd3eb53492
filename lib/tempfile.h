// SPDX-License-Identifier: GPL-3.0-or-later
// A run's temporary files (strace's log, the probe file) that a killed run cannot remove. Each is
// held with flock(LOCK_EX) by the tool for as long as the run lives, so a later run tells an
// orphan (unlocked) from a live run's file, also when the directory is shared across pid
// namespaces, where a pid in the name would mislead.
#ifndef MD_TEMPFILE_H
#define MD_TEMPFILE_H

#include <stddef.h>

#include "lib/error.h"

// Creates DIR/PREFIX-XXXXXX (mode 0600, close-on-exec) and locks it; returns the fd, which must
// stay open while the file is in use. path receives the name (empty on failure). PREFIX must be
// a non-empty file name without '/'; md_temp_sweep removes nothing for any other.
int md_temp_create(const char *dir, const char *prefix, char *path, size_t size,
                   struct md_error *err);

// Removes a file md_temp_create made, then closes its lock (last: a sweep never sees the file
// unlocked), and empties path. Nothing when path is empty.
void md_temp_remove(char *path, int fd);

// A file older than this and not locked is taken for an orphan: far above the instant between
// creating a file and locking it.
#define MD_TEMP_ORPHAN_SECONDS 60.0

// Removes this user's DIR/PREFIX-XXXXXX regular files that nobody holds locked and that were not
// changed for min_age_seconds (a file is created before it is locked). Returns how many.
int md_temp_sweep(const char *dir, const char *prefix, double min_age_seconds);

// The directory for temporary files: $TMPDIR when set, else /tmp.
const char *md_temp_dir(void);

#endif
