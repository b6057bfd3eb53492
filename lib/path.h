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

#endif
