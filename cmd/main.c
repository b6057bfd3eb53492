// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor: find, prove and fix allocator problems in ELF programs.
// The one dispatch table of subcommands; each lives in its own file under cmd/.
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"

static const struct md_command *const commands[] = {
    &md_cmd_doctor, &md_cmd_inspect, &md_cmd_trace, &md_cmd_patch, &md_cmd_rules, NULL,
};

static void usage(FILE *out)
{
    fputs("usage: malloc-doctor [--help] [--version] COMMAND [OPTIONS] [ARGS]\n\n"
          "Finds which allocator a program really uses, proves what it costs, and fixes it.\n\n"
          "commands:\n",
          out);
    for (const struct md_command *const *c = commands; *c; c++)
        fprintf(out, "  %-10s %s\n", (*c)->name, (*c)->summary);
    fputs("\n'malloc-doctor COMMAND --help' describes a command.\n", out);
    unsigned exits = 0; // each status some command can return
    for (const struct md_command *const *c = commands; *c; c++)
        exits |= (*c)->exits;
    md_cli_exit_statuses(exits, out);
}

static const struct md_command *find(const char *name)
{
    for (const struct md_command *const *c = commands; *c; c++)
        if (!strcmp((*c)->name, name))
            return *c;
    return NULL;
}

// A report that could not be written (a full disk, /dev/full, a closed pipe's EPIPE under
// SIG_IGN, a closed stdout) must not end in exit status 0.
static int check_standard_output(const char *name, int rc)
{
    int e;
    if (md_cli_flush_stdout(&e))
        return rc;
    fprintf(stderr, "malloc-doctor: %s: cannot write the standard output%s%s\n", name,
            e ? ": " : "", e ? strerror(e) : "");
    return MD_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    md_cli_hold_standard_descriptors();
    if (argc < 2) {
        usage(stderr);
        return MD_EXIT_USAGE;
    }
    const char *name = argv[1];
    if ((argc == 2 && (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help"))) ||
        (argc == 3 && !strcmp(name, "help") && !strcmp(argv[2], "help"))) {
        usage(stdout);
        return check_standard_output(name, MD_EXIT_OK);
    }
    if (argc == 2 && !strcmp(name, "--version")) {
        printf("malloc-doctor %s\n", MD_VERSION);
        return check_standard_output(name, MD_EXIT_OK);
    }
    if (!strcmp(name, "help")) { // argc > 2 here
        if (argc == 3 && find(argv[2])) {
            md_cli_usage(find(argv[2]), stdout);
            return check_standard_output(name, MD_EXIT_OK);
        }
        fprintf(stderr,
                argc > 3 ? "malloc-doctor: help takes one command name\n"
                         : "malloc-doctor: '%s' is not a command. See 'malloc-doctor --help'.\n",
                argv[2]);
        return MD_EXIT_USAGE;
    }
    bool known_option =
        !strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "--version");
    if (known_option || (name[0] == '-' && name[1])) {
        if (known_option)
            fprintf(stderr, "malloc-doctor: %s takes no argument ('%s')\n", name, argv[2]);
        else
            fprintf(stderr, "malloc-doctor: unknown option '%s'. See 'malloc-doctor --help'.\n",
                    name);
        return MD_EXIT_USAGE;
    }
    const struct md_command *cmd = find(name);
    if (!cmd) {
        fprintf(stderr, "malloc-doctor: '%s' is not a command. See 'malloc-doctor --help'.\n",
                name);
        return MD_EXIT_USAGE;
    }
    return check_standard_output(name, cmd->run(cmd, argc - 1, argv + 1));
}
