// SPDX-License-Identifier: MIT
// Fork in a multithreaded program whose library (tests/alloc/atfork_lib.c) has fork handlers that
// allocate and were registered before mdalloc's: parent and child must not wait forever for the
// allocator's locks (alarm() turns a deadlock into a failure). usage: fork_lib FORKS
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deadlock_watch.h"

int atfork_lib_loaded(void);

static void *allocate(void *arg)
{
    void *volatile p = malloc(1000);
    free(p);
    return arg;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 10;
    if (!atfork_lib_loaded())
        return 1;
    watch_for_deadlock(20);
    pthread_t t;
    if (pthread_create(&t, NULL, allocate, NULL) || pthread_join(t, NULL))
        return 1;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            void *volatile p = malloc(2 << 20);
            free(p);
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "fork_lib: child %d failed: status 0x%x\n", i, status);
            return 1;
        }
    }
    printf("ok %d forks\n", forks);
    return 0;
}
