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
    fputs("\n'malloc-doctor COMMAND --help' describes a command.\n"
          "exit status: 0 success, 1 a requested check failed, 2 usage or input error\n",
          out);
}

static const struct md_command *find(const char *name)
{
    for (const struct md_command *const *c = commands; *c; c++)
        if (!strcmp((*c)->name, name))
            return *c;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MD_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return MD_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("malloc-doctor %s\n", MD_VERSION);
        return MD_EXIT_OK;
    }
    if (!strcmp(name, "help") && argc > 2 && find(argv[2])) {
        md_cli_usage(find(argv[2]), stdout);
        return MD_EXIT_OK;
    }
    const struct md_command *cmd = find(name);
    if (!cmd) {
        fprintf(stderr, "malloc-doctor: '%s' is not a command. See 'malloc-doctor --help'.\n",
                name);
        return MD_EXIT_USAGE;
    }
    return cmd->run(cmd, argc - 1, argv + 1);
}
