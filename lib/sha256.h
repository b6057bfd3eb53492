// SPDX-License-Identifier: GPL-3.0-or-later
// SHA-256 (FIPS 180-4) of a buffer: patch records the original libc.a's by it, so that --restore
// can tell the backup the patch was made from from any other archive (lib/patch_mark.c).
#ifndef MD_SHA256_H
#define MD_SHA256_H

#include <stddef.h>

// The digest in lowercase hex, as sha256sum prints it: 64 characters and a NUL.
void md_sha256_hex(const void *data, size_t size, char hex[65]);

#endif
