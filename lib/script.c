// SPDX-License-Identifier: GPL-3.0-or-later
// "#!" scripts, parsed as the kernel's binfmt_script does (fs/binfmt_script.c): the line ends at
// the first newline within the first 256 bytes; the interpreter is the first word after "#!"
// (ended by a space, a tab or a NUL); everything after it, trailing spaces and tabs trimmed, is
// one single argument.
#include "lib/script.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/run.h"
#include "lib/path.h"

static bool is_space_or_tab(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_spaces(const char *p, const char *end)
{
    while (p < end && is_space_or_tab(*p))
        p++;
    return p;
}

static const char *word_end(const char *p, const char *end)
{
    while (p < end && *p && !is_space_or_tab(*p))
        p++;
    return p;
}

// Copies [from, to) up to its first NUL.
static void copy_field(char *out, size_t size, const char *from, const char *to)
{
    size_t n = strnlen(from, (size_t)(to - from));
    if (n >= size)
        n = size - 1;
    memcpy(out, from, n);
    out[n] = 0;
}

// The end of the "#!" line in buf, or NULL when the kernel would refuse the file (ENOEXEC).
static const char *line_end(const char *buf, size_t size)
{
    const char *end = buf + size - 1; // the kernel keeps the last byte for a NUL
    const char *newline = memchr(buf, '\n', size);
    if (newline)
        return newline;
    // No newline: the interpreter may be cut off by the buffer, unless a terminator follows it
    // (the kernel looks for one up to and including the last byte).
    const char *name = skip_spaces(buf + 2, end);
    if (name == end || word_end(name, buf + size) == buf + size)
        return NULL;
    return end;
}

static int parse_line(const char *path, const char *buf, size_t size, struct md_script_hop *hop,
                      struct md_error *err)
{
    const char *end = line_end(buf, size);
    if (!end)
        return md_fail(err, "%s: the #! line names no interpreter or it is longer than %d bytes",
                       path, MD_SCRIPT_LINE_MAX);
    while (end > buf + 2 && is_space_or_tab(end[-1]))
        end--;
    const char *name = skip_spaces(buf + 2, end);
    const char *name_end = word_end(name, end);
    if (name == name_end)
        return md_fail(err, "%s: the #! line names no interpreter", path);
    copy_field(hop->interpreter, sizeof hop->interpreter, name, name_end);
    const char *arg = name_end < end && *name_end ? skip_spaces(name_end, end) : end;
    copy_field(hop->argument, sizeof hop->argument, arg, end);
    hop->has_argument = hop->argument[0] != 0;
    return 0;
}

int md_script_read(const char *path, struct md_script_hop *hop, struct md_error *err)
{
    char buf[MD_SCRIPT_LINE_MAX] = {0};
    // O_NONBLOCK: opening a FIFO must not wait for a writer (only regular files are read)
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    // an execute-only file (mode 711) runs: a bare "Permission denied" would read as a refused
    // exec, when it is this read (which chooses how to count the calls) that was refused
    if (fd < 0 && errno == EACCES && !access(path, X_OK))
        return md_fail(err,
                       "%s: can be executed but not read (execute-only), and trace must read it "
                       "to choose how to count its allocator calls: make it readable to this "
                       "user, or run trace as one who can read it",
                       path);
    if (fd < 0)
        return md_fail_errno(err, errno, "%s", path);
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    int read_errno = errno;
    close(fd);
    if (n < 0)
        return md_fail_errno(err, read_errno, "%s", path);
    if (n < 2 || buf[0] != '#' || buf[1] != '!')
        return 0;
    memset(hop, 0, sizeof *hop);
    snprintf(hop->script, sizeof hop->script, "%s", path);
    return parse_line(path, buf, sizeof buf, hop, err) ? -1 : 1;
}

// "#!/usr/bin/env NAME": the program env runs. Options to env (and "env -S" lines) are left to
// env: then env itself is the program.
static bool runs_through_env(const struct md_script_hop *hop)
{
    const char *base = md_path_base_name(hop->interpreter);
    return !strcmp(base, "env") && hop->has_argument && hop->argument[0] != '-' &&
           !strchr(hop->argument, '=') && !strpbrk(hop->argument, " \t");
}

// Where the hop leads: its interpreter, or the program env finds.
static int next_program(struct md_script_hop *hop, struct md_error *err)
{
    hop->via_env = runs_through_env(hop);
    if (hop->via_env) {
        struct md_error why;
        if (md_find_program(hop->argument, hop->runs, sizeof hop->runs, &why))
            return md_fail(err, "%s: its interpreter %s %s: %s not found in PATH", hop->script,
                           hop->interpreter, hop->argument, hop->argument);
        return 0;
    }
    if (access(hop->interpreter, X_OK))
        return md_fail_errno(err, errno, "%s: its interpreter %s", hop->script, hop->interpreter);
    copy_field(hop->runs, sizeof hop->runs, hop->interpreter,
               hop->interpreter + sizeof hop->interpreter);
    return 0;
}

// The command line the next program gets: the kernel's "INTERPRETER [ARGUMENT] SCRIPT ARGS...",
// or env's "NAME SCRIPT ARGS...".
static char **next_argv(const struct md_script_hop *hop, char **argv)
{
    size_t n = 0;
    while (argv[n])
        n++;
    char **out = calloc(n + 3, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    if (hop->via_env) {
        out[k++] = (char *)hop->argument;
    } else {
        out[k++] = (char *)hop->interpreter;
        if (hop->has_argument)
            out[k++] = (char *)hop->argument;
    }
    out[k++] = (char *)hop->script;
    for (size_t i = 1; i < n; i++)
        out[k++] = argv[i];
    return out;
}

static int copy_argv(char *const *argv, struct md_exec_plan *plan, struct md_error *err)
{
    size_t n = 0;
    while (argv[n])
        n++;
    plan->argv = calloc(n + 1, sizeof *plan->argv);
    if (!plan->argv)
        return md_fail(err, "out of memory");
    memcpy(plan->argv, argv, n * sizeof *argv);
    return 0;
}

int md_exec_plan_make(const char *path, char *const *argv, struct md_exec_plan *plan,
                      struct md_error *err)
{
    memset(plan, 0, sizeof *plan);
    snprintf(plan->path, sizeof plan->path, "%s", path);
    if (copy_argv(argv, plan, err))
        return -1;
    for (;;) {
        struct md_script_hop hop;
        int is_script = md_script_read(plan->path, &hop, err);
        if (is_script <= 0) {
            if (is_script < 0)
                md_exec_plan_free(plan);
            return is_script;
        }
        if (plan->hops == MD_SCRIPT_MAX_HOPS) {
            md_exec_plan_free(plan);
            return md_fail(err, "%s: more than %d nested #! interpreters", path,
                           MD_SCRIPT_MAX_HOPS);
        }
        struct md_script_hop *h = &plan->hop[plan->hops++];
        *h = hop;
        if (next_program(h, err)) {
            md_exec_plan_free(plan);
            return -1;
        }
        char **argv_next = next_argv(h, plan->argv);
        if (!argv_next) {
            md_exec_plan_free(plan);
            return md_fail(err, "out of memory");
        }
        free(plan->argv);
        plan->argv = argv_next;
        copy_field(plan->path, sizeof plan->path, h->runs, h->runs + sizeof h->runs);
    }
}

void md_exec_plan_free(struct md_exec_plan *plan)
{
    free(plan->argv);
    plan->argv = NULL;
}
