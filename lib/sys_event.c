// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/sys_event.h"

#include <sys/syscall.h>

static const char *const sys_names[MD_SYS_COUNT] = {
    [MD_SYS_MMAP] = "mmap",       [MD_SYS_MUNMAP] = "munmap", [MD_SYS_MREMAP] = "mremap",
    [MD_SYS_MADVISE] = "madvise", [MD_SYS_BRK] = "brk",       [MD_SYS_MPROTECT] = "mprotect",
    [MD_SYS_FUTEX] = "futex",
};

static const int length_arg[MD_SYS_COUNT] = {
    [MD_SYS_MMAP] = 1, [MD_SYS_MUNMAP] = 1,   [MD_SYS_MREMAP] = 2, [MD_SYS_MADVISE] = 1,
    [MD_SYS_BRK] = -1, [MD_SYS_MPROTECT] = 1, [MD_SYS_FUTEX] = -1,
};

bool md_sys_address_arg(enum md_sys sys)
{
    return sys == MD_SYS_MUNMAP || sys == MD_SYS_MREMAP || sys == MD_SYS_MADVISE ||
           sys == MD_SYS_MPROTECT || sys == MD_SYS_BRK;
}

const char *md_sys_name(enum md_sys sys)
{
    return sys < MD_SYS_COUNT ? sys_names[sys] : "?";
}

int md_sys_length_arg(enum md_sys sys)
{
    return sys < MD_SYS_COUNT ? length_arg[sys] : -1;
}

bool md_sys_futex_op_blocks(uint64_t op)
{
    switch (op & ~(uint64_t)(128 | 256)) { // FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME
    case 0:                                // FUTEX_WAIT
    case 6:                                // FUTEX_LOCK_PI
    case 9:                                // FUTEX_WAIT_BITSET
    case 11:                               // FUTEX_WAIT_REQUEUE_PI
    case 13:                               // FUTEX_LOCK_PI2
        return true;
    default:
        return false;
    }
}

// This machine's syscall numbers (the tool and the programs it traces share the architecture).
static const long sys_numbers[MD_SYS_COUNT] = {
    [MD_SYS_MMAP] = SYS_mmap,       [MD_SYS_MUNMAP] = SYS_munmap, [MD_SYS_MREMAP] = SYS_mremap,
    [MD_SYS_MADVISE] = SYS_madvise, [MD_SYS_BRK] = SYS_brk,       [MD_SYS_MPROTECT] = SYS_mprotect,
    [MD_SYS_FUTEX] = SYS_futex,
};

long md_sys_number(enum md_sys sys)
{
    return sys < MD_SYS_COUNT ? sys_numbers[sys] : -1;
}

int md_sys_from_number(long nr)
{
    for (int s = 0; s < MD_SYS_COUNT; s++)
        if (sys_numbers[s] == nr)
            return s;
    return -1;
}
