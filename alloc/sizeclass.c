// SPDX-License-Identifier: MIT
// Size classes: 16-byte steps up to 128, then eight classes per power of two, so a request never
// wastes more than 12.5% of its block above 128 bytes. Class index formula: md_class_of().
// Generated once by a short script; tests/alloc/conformance checks the waste bound.
#include "md_internal.h"

const uint32_t md_class_size[MD_CLASS_COUNT] = {
    16,     32,     48,     64,     80,     96,     112,    128,    144,    160,    176,    192,
    208,    224,    240,    256,    288,    320,    352,    384,    416,    448,    480,    512,
    576,    640,    704,    768,    832,    896,    960,    1024,   1152,   1280,   1408,   1536,
    1664,   1792,   1920,   2048,   2304,   2560,   2816,   3072,   3328,   3584,   3840,   4096,
    4608,   5120,   5632,   6144,   6656,   7168,   7680,   8192,   9216,   10240,  11264,  12288,
    13312,  14336,  15360,  16384,  18432,  20480,  22528,  24576,  26624,  28672,  30720,  32768,
    36864,  40960,  45056,  49152,  53248,  57344,  61440,  65536,  73728,  81920,  90112,  98304,
    106496, 114688, 122880, 131072, 147456, 163840, 180224, 196608, 212992, 229376, 245760, 262144,
    294912, 327680, 360448, 393216, 425984, 458752, 491520, 524288,
};

// Class of every request size n with (n + 15) / 16 == slot, for n <= MD_DIRECT_MAX.
const uint8_t md_direct_class[MD_DIRECT_SLOTS] = {
    0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 16, 17, 17, 18,
    18, 19, 19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26,
    26, 27, 27, 27, 27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31, 31,
};

// Slices (64 KiB) per page: one up to 8 KiB blocks, enough for 8 blocks up to 64 KiB, and one
// block per page above that.
const uint8_t md_class_slices[MD_CLASS_COUNT] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 7, 7,
    8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
};
