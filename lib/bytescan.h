// SPDX-License-Identifier: GPL-3.0-or-later
// One pass over a buffer looking for many byte patterns at once.
//
// inspect must read a 100 MB library in well under a second, so each section is scanned once
// for all patterns: a 64 Ki-bit filter on a hash of every 4-byte window rejects almost every
// position, and only filter hits are compared with memcmp.
#ifndef MD_BYTESCAN_H
#define MD_BYTESCAN_H

#include <stddef.h>
#include <stdint.h>

#define MD_SCAN_MAX_PATTERNS 64
#define MD_SCAN_MIN_LEN 4

struct md_scan_pattern {
    const unsigned char *bytes; // not owned; must outlive the scanner
    size_t len;
    int tag; // returned to the caller on a match
};

struct md_scanner {
    uint64_t filter[65536 / 64];
    size_t count;
    struct md_scan_pattern pattern[MD_SCAN_MAX_PATTERNS];
};

void md_scanner_init(struct md_scanner *s);

// Returns -1 when the table is full or the pattern is shorter than MD_SCAN_MIN_LEN.
int md_scanner_add(struct md_scanner *s, const void *bytes, size_t len, int tag);

// Sets found[i] = 1 for every pattern i that occurs in data; found has s->count entries.
void md_scanner_run(const struct md_scanner *s, const void *data, size_t n, unsigned char *found);

#endif
