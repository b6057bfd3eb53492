// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/u64map.h"

#include <stdlib.h>
#include <string.h>

static size_t hash_u64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

uint64_t *md_u64map_find(struct md_u64map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hash_u64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return &m->vals[i];
        if (!m->keys[i])
            return NULL;
    }
}

static bool grow(struct md_u64map *m)
{
    struct md_u64map bigger = {0};
    bigger.cap = m->cap ? 2 * m->cap : 64;
    bigger.keys = calloc(bigger.cap, sizeof *bigger.keys);
    bigger.vals = calloc(bigger.cap, sizeof *bigger.vals);
    if (!bigger.keys || !bigger.vals) {
        free(bigger.keys);
        free(bigger.vals);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            md_u64map_put(&bigger, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = bigger;
    return true;
}

bool md_u64map_put(struct md_u64map *m, uint64_t key, uint64_t val)
{
    uint64_t *v = md_u64map_find(m, key);
    if (v) {
        *v = val;
        return true;
    }
    if (2 * (m->count + 1) > m->cap && !grow(m))
        return false;
    size_t i = hash_u64(key) & (m->cap - 1);
    while (m->keys[i])
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
    return true;
}

void md_u64map_free(struct md_u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void md_u64map_free_owned(struct md_u64map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            free((void *)(uintptr_t)m->vals[i]);
    md_u64map_free(m);
}
