// SPDX-License-Identifier: MIT
// musl preload glue (LD_PRELOAD into programs linked against musl's libc.so). musl's fork only
// locks its own internal malloc, so mdalloc registers ordinary fork handlers.
#include "md_internal.h"

#include <pthread.h>

const char md_glue_target[] = "musl-preload";

// A constructor, not the first malloc: musl's pthread_atfork allocates.
__attribute__((constructor)) static void md_musl_init(void)
{
    pthread_atfork(md_fork_prepare, md_fork_parent, md_fork_child);
}
