// SPDX-License-Identifier: GPL-3.0-or-later
// What every subcommand shares: the command table entry, declarative options, exit codes and
// the one way errors are printed.
#ifndef MD_CLI_H
#define MD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <cJSON.h>

enum md_exit {
    MD_EXIT_OK = 0,    // success
    MD_EXIT_CHECK = 1, // a requested check failed (--expect, --fail-on)
    MD_EXIT_USAGE = 2, // usage or input error
};

// One option: long name, short letter (or a value > 255 for long-only), argument name (NULL for
// a flag) and help text. Tables end with {0}.
struct md_opt {
    const char *name;
    int key;
    const char *arg;
    const char *help;
};

struct md_command {
    const char *name;
    const char *summary;  // one line for `malloc-doctor --help`
    const char *synopsis; // after "usage: malloc-doctor NAME "
    const char *description;
    const struct md_opt *options;
    bool options_end_at_operand; // `trace CMD -x`: -x belongs to CMD, not to us
    int (*run)(const struct md_command *cmd, int argc, char **argv);
};

extern const struct md_command md_cmd_inspect;
extern const struct md_command md_cmd_trace;
extern const struct md_command md_cmd_patch;

// Iterates options like getopt_long. Returns the key, -1 after the last option (optind is then
// the first operand), or '?' after printing a usage error. --help is handled by the caller.
int md_cli_next(const struct md_command *cmd, int argc, char **argv, const char **arg);

void md_cli_usage(const struct md_command *cmd, FILE *out);
// For the default branch of a command's option loop: prints --help or --version (exit 0) or
// leaves a usage error (exit 2, already printed by md_cli_next). Returns false: stop parsing.
bool md_cli_stop(const struct md_command *cmd, int key, int *exit_code);
// "malloc-doctor CMD: MESSAGE" + "Try 'malloc-doctor CMD --help'." on stderr; returns 2.
int md_cli_usage_error(const struct md_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// "malloc-doctor: CMD: MESSAGE" on stderr.
void md_cli_error(const struct md_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Prints one rule finding for people: "\n[SUBJECT: ]severity ID: title", message, fix.
void md_cli_print_finding(const char *subject, const cJSON *finding);

// Prints the report as JSON on stdout (one document, newline terminated).
void md_cli_print_json(const cJSON *report);

#define MD_OPT_HELP 'h'
#define MD_OPT_VERSION 0x100

#endif
