// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/taskstats.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/acct.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/u64map.h"

// Room for exit bursts (a build forking hundreds of compilers) while the reader thread sleeps.
#define MD_TASKSTATS_RCVBUF (8 << 20)
#define MD_NL_BUF 16384

struct nl_request {
    struct nlmsghdr n;
    struct genlmsghdr g;
    char attrs[256];
};

static void add_attr(struct nl_request *r, uint16_t type, const void *data, size_t len)
{
    struct nlattr *a = (struct nlattr *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy((char *)a + NLA_HDRLEN, data, len);
    r->n.nlmsg_len = NLMSG_ALIGN(r->n.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static int send_request(int fd, uint16_t family, uint8_t cmd, uint8_t version, uint16_t attr,
                        const void *data, size_t len)
{
    struct nl_request r = {0};
    r.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
    r.n.nlmsg_type = family;
    r.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    r.g.cmd = cmd;
    r.g.version = version;
    add_attr(&r, attr, data, len);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    return sendto(fd, &r, r.n.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0 ? -1 : 0;
}

// Walks the attributes in [data, data+len); calls visit for each, stops when it returns true.
static bool each_attr(const char *data, size_t len,
                      bool (*visit)(const struct nlattr *a, const char *payload, size_t size,
                                    void *ctx),
                      void *ctx)
{
    while (len >= NLA_HDRLEN) {
        const struct nlattr *a = (const struct nlattr *)data;
        if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
            return false;
        if (visit(a, data + NLA_HDRLEN, a->nla_len - NLA_HDRLEN, ctx))
            return true;
        size_t step = NLA_ALIGN(a->nla_len);
        if (step >= len)
            return false;
        data += step;
        len -= step;
    }
    return false;
}

static bool family_id_attr(const struct nlattr *a, const char *payload, size_t size, void *ctx)
{
    if ((a->nla_type & NLA_TYPE_MASK) != CTRL_ATTR_FAMILY_ID || size < sizeof(uint16_t))
        return false;
    memcpy(ctx, payload, sizeof(uint16_t));
    return true;
}

// Reads replies until the ack; returns the errno of a refusal (0: acked), and the family id
// when the reply carried one.
static int read_reply(int fd, uint16_t *family)
{
    char buf[MD_NL_BUF];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0)
            return errno;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                return -e->error;
            }
            if (family && h->nlmsg_type == GENL_ID_CTRL)
                each_attr((const char *)NLMSG_DATA(h) + GENL_HDRLEN,
                          h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), family_id_attr, family);
        }
    }
}

static uint16_t taskstats_family(int fd)
{
    uint16_t family = 0;
    if (send_request(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, CTRL_ATTR_FAMILY_NAME,
                     TASKSTATS_GENL_NAME, sizeof TASKSTATS_GENL_NAME) ||
        read_reply(fd, &family))
        return 0;
    return family;
}

static void keep_record(struct md_taskstats *ts, const struct taskstats *t)
{
    if (ts->count == ts->capacity) {
        size_t capacity = ts->capacity ? 2 * ts->capacity : 1024;
        struct md_exit_record *grown = realloc(ts->records, capacity * sizeof *grown);
        if (!grown) {
            ts->overflow = true;
            return;
        }
        ts->records = grown;
        ts->capacity = capacity;
    }
    struct md_exit_record *r = &ts->records[ts->count++];
    r->pid = (pid_t)t->ac_pid;
    r->tgid = (pid_t)t->ac_tgid;
    r->forked_only = t->ac_flag & AFORK;
    r->ppid = (pid_t)t->ac_ppid;
    r->uid = (uid_t)t->ac_uid;
    r->hiwater_rss_kb = t->hiwater_rss;
    snprintf(r->comm, sizeof r->comm, "%.*s", (int)sizeof t->ac_comm, t->ac_comm);
}

// Inside TASKSTATS_TYPE_AGGR_PID: the stats of the task that exited. Older kernels send a
// shorter struct: without ac_tgid it cannot be placed in a process, so it is skipped.
static bool stats_attr(const struct nlattr *a, const char *payload, size_t size, void *ctx)
{
    if ((a->nla_type & NLA_TYPE_MASK) != TASKSTATS_TYPE_STATS ||
        size < offsetof(struct taskstats, ac_tgid) + sizeof(uint32_t))
        return false;
    struct taskstats t = {0};
    memcpy(&t, payload, size < sizeof t ? size : sizeof t);
    keep_record(ctx, &t);
    return true;
}

static bool aggregate_attr(const struct nlattr *a, const char *payload, size_t size, void *ctx)
{
    if ((a->nla_type & NLA_TYPE_MASK) == TASKSTATS_TYPE_AGGR_PID)
        each_attr(payload, size, stats_attr, ctx);
    return false;
}

static void take_messages(struct md_taskstats *ts, const char *buf, ssize_t n)
{
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN) || h->nlmsg_type == NLMSG_ERROR)
            continue;
        each_attr((const char *)NLMSG_DATA(h) + GENL_HDRLEN,
                  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), aggregate_attr, ts);
    }
}

static void *reader(void *arg)
{
    struct md_taskstats *ts = arg;
    char buf[MD_NL_BUF];
    struct pollfd fds[2] = {{.fd = ts->fd, .events = POLLIN},
                            {.fd = ts->stop_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        // drain the socket first: the exits that came before the stop still count
        ssize_t n = recv(ts->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            take_messages(ts, buf, n);
            continue;
        }
        if (n < 0 && errno == ENOBUFS)
            ts->overflow = true;
        if (fds[1].revents)
            break;
    }
    return NULL;
}

static void close_all(struct md_taskstats *ts)
{
    close(ts->fd);
    close(ts->stop_pipe[0]);
    close(ts->stop_pipe[1]);
    ts->fd = -1;
}

bool md_taskstats_start(struct md_taskstats *ts)
{
    *ts = (struct md_taskstats){.fd = -1};
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd < 0)
        return false;
    int size = MD_TASKSTATS_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_nl self = {.nl_family = AF_NETLINK};
    uint16_t family = 0;
    char cpus[32];
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    snprintf(cpus, sizeof cpus, "0-%ld", ncpu > 0 ? ncpu - 1 : 0);
    if (bind(fd, (struct sockaddr *)&self, sizeof self) || !(family = taskstats_family(fd)) ||
        send_request(fd, family, TASKSTATS_CMD_GET, TASKSTATS_GENL_VERSION,
                     TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus, strlen(cpus) + 1) ||
        read_reply(fd, NULL) || pipe2(ts->stop_pipe, O_CLOEXEC)) {
        close(fd);
        return false;
    }
    ts->fd = fd;
    if (pthread_create(&ts->reader, NULL, reader, ts)) {
        close_all(ts);
        return false;
    }
    return true;
}

void md_taskstats_stop(struct md_taskstats *ts)
{
    if (ts->fd < 0)
        return;
    if (write(ts->stop_pipe[1], "", 1) < 0)
        ts->overflow = true; // cannot happen with a fresh pipe; do not trust partial data
    pthread_join(ts->reader, NULL);
    close_all(ts); // closing the socket unregisters it
}

// The processes of the tree: pid -> 1 (pids are never 0, which the map cannot hold).
static bool in_tree(struct md_u64map *tree, pid_t pid)
{
    return pid > 0 && md_u64map_find(tree, (uint64_t)pid);
}

// Whether a record is part of the program's tree. strace -D starts in the program's process and
// forks its tracer and probes from there: those are strace's, not the program's. Orphans of the
// program are reparented to the tool (the subreaper), as are the tool's own short-lived forks.
static bool joins_tree(struct md_u64map *tree, const struct md_exit_record *r, pid_t tool_pid,
                       const char *tool_comm)
{
    if (r->tgid <= 0 || in_tree(tree, r->tgid) || !strcmp(r->comm, "strace"))
        return false;
    return in_tree(tree, r->ppid) || (r->ppid == tool_pid && strcmp(r->comm, tool_comm));
}

// Adds every record that joins the tree; a child's record comes before its parent joins, so it
// repeats until nothing joins. False when out of memory.
static bool grow_tree(const struct md_taskstats *ts, struct md_u64map *tree, pid_t tool_pid,
                      const char *tool_comm, unsigned *processes)
{
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < ts->count; i++) {
            const struct md_exit_record *r = &ts->records[i];
            if (!joins_tree(tree, r, tool_pid, tool_comm))
                continue;
            if (!md_u64map_put(tree, (uint64_t)r->tgid, 1))
                return false;
            ++*processes;
            grew = true;
        }
    }
    return true;
}

bool md_taskstats_tree(const struct md_taskstats *ts, pid_t root, pid_t tool_pid,
                       const char *tool_comm, struct md_tree_usage *usage)
{
    if (ts->overflow || !ts->count || root <= 0)
        return false;
    struct md_u64map tree = {0};
    *usage = (struct md_tree_usage){.processes = 1};
    bool seen_root = false;
    if (md_u64map_put(&tree, (uint64_t)root, 1) &&
        grow_tree(ts, &tree, tool_pid, tool_comm, &usage->processes) &&
        (usage->members = calloc(usage->processes, sizeof *usage->members)))
        for (size_t i = 0; i < ts->count; i++) {
            const struct md_exit_record *r = &ts->records[i];
            if (!in_tree(&tree, r->tgid))
                continue;
            seen_root |= r->tgid == root;
            if (r->hiwater_rss_kb > usage->peak_rss_kb)
                usage->peak_rss_kb = r->hiwater_rss_kb;
            if (r->pid == r->tgid && usage->member_count < usage->processes)
                usage->members[usage->member_count++] = *r;
        }
    md_u64map_free(&tree);
    if (!seen_root) {
        free(usage->members);
        usage->members = NULL;
        usage->member_count = 0;
    }
    return seen_root;
}

bool md_taskstats_program_tree(const struct md_taskstats *ts, pid_t program,
                               struct md_tree_usage *tree)
{
    char comm[32] = "";
    FILE *f = fopen("/proc/self/comm", "re");
    if (f) {
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
    }
    return md_taskstats_tree(ts, program, getpid(), comm, tree);
}

void md_taskstats_free(struct md_taskstats *ts)
{
    free(ts->records);
    ts->records = NULL;
    ts->count = ts->capacity = 0;
}
