// The overhead benchmark's program: 2 threads (argv[2]: 1 to 4), each a tight malloc/free loop
// over mixed sizes (a little work per block, as real programs do); argv[1] iterations per thread.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long iterations = 20000000; // per thread; argv[1] overrides

static void *loop(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    unsigned long sum = 0;
    for (long i = 0; i < iterations; i++) {
        unsigned char *volatile p = malloc(16 + (rand_r(&seed) & 511));
        if (!p)
            abort();
        p[0] = (unsigned char)i;
        sum += p[0];
        free(p);
    }
    return (void *)sum;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        iterations = atol(argv[1]);
    size_t threads = argc > 2 ? (size_t)atoi(argv[2]) : 2;
    if (threads < 1 || threads > 4)
        threads = 2;
    pthread_t t[4];
    for (size_t i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, loop, (void *)(i + 1));
    for (size_t i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    puts("done");
    return 0;
}
