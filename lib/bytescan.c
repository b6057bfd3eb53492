// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/bytescan.h"

#include <string.h>

static inline uint32_t load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t window_hash(uint32_t v)
{
    return (v * 2654435761u) >> 16; // Fibonacci hashing: the top 16 bits mix all four bytes
}

void md_scanner_init(struct md_scanner *s)
{
    memset(s, 0, sizeof *s);
}

int md_scanner_add(struct md_scanner *s, const void *bytes, size_t len, int tag)
{
    if (s->count == MD_SCAN_MAX_PATTERNS || len < MD_SCAN_MIN_LEN)
        return -1;
    struct md_scan_pattern *p = &s->pattern[s->count++];
    p->bytes = bytes;
    p->len = len;
    p->tag = tag;
    uint32_t h = window_hash(load32(p->bytes));
    s->filter[h / 64] |= 1ull << (h % 64);
    return 0;
}

static void match_at(const struct md_scanner *s, const unsigned char *at, size_t left,
                     unsigned char *found)
{
    uint32_t head = load32(at);
    for (size_t i = 0; i < s->count; i++) {
        const struct md_scan_pattern *p = &s->pattern[i];
        if (!found[i] && p->len <= left && load32(p->bytes) == head &&
            !memcmp(at, p->bytes, p->len))
            found[i] = 1;
    }
}

void md_scanner_run(const struct md_scanner *s, const void *data, size_t n, unsigned char *found)
{
    const unsigned char *base = data;
    if (n < MD_SCAN_MIN_LEN || s->count == 0)
        return;
    for (size_t i = 0; i + MD_SCAN_MIN_LEN <= n; i++) {
        uint32_t h = window_hash(load32(base + i));
        if (s->filter[h / 64] & (1ull << (h % 64)))
            match_at(s, base + i, n - i, found);
    }
}
