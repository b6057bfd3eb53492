// SPDX-License-Identifier: GPL-3.0-or-later
// uint64 -> uint64, open addressing; key 0 is never stored (pids, tids and pointers are not 0).
// Zero-initialised is empty.
#ifndef MD_U64MAP_H
#define MD_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct md_u64map {
    uint64_t *keys, *vals;
    size_t cap, count;
};

// The value stored for key, or NULL.
uint64_t *md_u64map_find(struct md_u64map *m, uint64_t key);
// Stores or replaces; false when out of memory.
bool md_u64map_put(struct md_u64map *m, uint64_t key, uint64_t val);
void md_u64map_free(struct md_u64map *m);
// The same, for a map whose values are malloc'ed pointers it owns (0: none): frees them too.
void md_u64map_free_owned(struct md_u64map *m);

#endif
