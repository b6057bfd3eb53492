// SPDX-License-Identifier: MIT
// Fork from a multithreaded process while other threads allocate and free (also each other's
// blocks), then allocate in the child, including from a new thread. A deadlock in the child is
// caught by alarm(). The program's own fork handlers, registered from a constructor (in a static
// link, before those of the allocator's archive), allocate a huge block in parent and child, as
// handlers that re-create per-process state do. usage: fork_mt FORKS
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deadlock_watch.h"

#define SLOTS 1024
static _Atomic(char *) slots[SLOTS];
static atomic_int stop;

static void *volatile handler_block;

static void allocate_in_handler(void)
{
    handler_block = malloc(1 << 20);
    if (handler_block == NULL)
        abort();
    memset(handler_block, 1, 1 << 20);
    free(handler_block);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(NULL, allocate_in_handler, allocate_in_handler);
}

static void *churn(void *arg)
{
    unsigned r = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop)) {
        r = r * 1103515245u + 12345u;
        size_t n = (r >> 8) % 3 == 0 ? (r >> 4) % 300000 : (r >> 4) % 512;
        char *p = malloc(n + 1);
        p[0] = 'x';
        p[n] = 'y';
        char *old = atomic_exchange(&slots[(r >> 12) % SLOTS], p);
        free(old);
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++)
        free(malloc((size_t)(i % 5000) + 1));
    return malloc(100);
}

static int child_work(void)
{
    signal(SIGALRM, SIG_DFL); // the child's own deadlock ends the child: the parent reports it
    alarm(20);
    char *blocks[2000];
    for (int i = 0; i < 2000; i++) {
        blocks[i] = malloc((size_t)(i * 13 % 70000) + 1);
        memset(blocks[i], i & 0xff, (size_t)(i * 13 % 70000) + 1);
    }
    for (int i = 0; i < SLOTS; i++) // blocks of the parent's threads, freed in the child
        free(atomic_exchange(&slots[i], NULL));
    pthread_t t;
    void *ret = NULL;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &ret) != 0)
        return 3;
    free(ret);
    for (int i = 0; i < 2000; i++) {
        if (blocks[i][0] != (char)(i & 0xff))
            return 4;
        free(blocks[i]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 50;
    watch_for_deadlock(30); // a deadlock in the parent or a child handler fails too
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            _exit(child_work());
        int status;
        if (waitpid(pid, &status, 0) != pid) {
            perror("waitpid");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork_mt: child %d failed: status 0x%x%s\n", i, status,
                    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock)" : "");
            return 1;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++)
        free(atomic_exchange(&slots[i], NULL));
    printf("ok %d forks\n", forks);
    return 0;
}
