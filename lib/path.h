// SPDX-License-Identifier: GPL-3.0-or-later
// File path helpers shared by the engine and the CLI.
#ifndef MD_PATH_H
#define MD_PATH_H

#include <string.h>

// The last component of path ("libc.so.6" of "/lib/x86_64-linux-gnu/libc.so.6"); empty when path
// ends in '/'. Points into path.
static inline const char *md_path_base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// The preload probe's file name (alloc/probe.mk builds it for glibc and musl).
#define MD_PROBE_LIBRARY "libmdprobe.so"

// Whether path is the probe trace preloads: its frames are the measurement's, not the program's.
static inline int md_path_is_probe(const char *path)
{
    return !strcmp(md_path_base_name(path), MD_PROBE_LIBRARY);
}

#endif
