// SPDX-License-Identifier: MIT
// For the fork tests: a deadlock in a fork handler of the child happens before the child's own
// code runs, and a child does not inherit the parent's alarm. So when the parent's alarm fires,
// the whole process group ends, and a failed run leaves no spinning child behind.
#ifndef MD_TEST_DEADLOCK_WATCH_H
#define MD_TEST_DEADLOCK_WATCH_H

#include <signal.h>
#include <unistd.h>

static void end_group(int sig)
{
    (void)sig;
    kill(0, SIGKILL);
}

static void watch_for_deadlock(unsigned seconds)
{
    setpgid(0, 0);
    signal(SIGALRM, end_group);
    alarm(seconds);
}

#endif
