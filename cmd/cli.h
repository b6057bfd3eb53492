// SPDX-License-Identifier: GPL-3.0-or-later
// What every subcommand shares: the command table entry, declarative options, exit codes and
// the one way errors are printed.
#ifndef MD_CLI_H
#define MD_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

enum md_exit {
    MD_EXIT_OK = 0,    // success
    MD_EXIT_CHECK = 1, // a requested check failed (--expect, --fail-on)
    MD_EXIT_USAGE = 2, // usage or input error
};

// A set of exit statuses (enum md_exit), for a command's --help.
#define MD_EXIT_BIT(status) (1u << (status))
// Those of a command that runs a check the user asks for (--expect, --fail-on, --baseline...).
#define MD_EXITS_WITH_CHECKS                                                                       \
    (MD_EXIT_BIT(MD_EXIT_OK) | MD_EXIT_BIT(MD_EXIT_CHECK) | MD_EXIT_BIT(MD_EXIT_USAGE))

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
    unsigned exits;              // MD_EXIT_BIT of each status it can return: its --help lists them
    int (*run)(const struct md_command *cmd, int argc, char **argv);
};

extern const struct md_command md_cmd_inspect;
extern const struct md_command md_cmd_trace;
extern const struct md_command md_cmd_patch;
extern const struct md_command md_cmd_doctor;
extern const struct md_command md_cmd_rules;

// Reading a file that shrinks while it is mapped (a build or `cp` rewriting it) raises SIGBUS on
// its lost pages. The handler this installs maps zeros there, so the read finishes, and counts it
// in md_cli_mapping_faults: what was read then is not the file, and the command says so
// (lib/inspect.h, lib/trace.h). Any other SIGBUS still ends the process. Only for a command that
// checks the count after its reads: a fault swallowed elsewhere (the probe file of a full
// /dev/shm) would otherwise turn a crash into a silently wrong report.
void md_cli_guard_mappings(void);
extern volatile sig_atomic_t md_cli_mapping_faults;

// Run first by main: a standard descriptor the caller closed is held open (stdout by /dev/full,
// the others by /dev/null), so that no file the tool opens takes its number.
void md_cli_hold_standard_descriptors(void);
// Those that were closed then, bit N for descriptor N: a traced program gets them closed.
unsigned md_cli_closed_standard_descriptors(void);

// Flushes stdout; false with *error (an errno value, EBADF when the caller closed stdout, 0 when
// unknown) when what was printed did not all reach it.
bool md_cli_flush_stdout(int *error);

// The traced program shares stdout, and its last line may lack its newline (`printf abc`): this
// ends that line, so the report that follows starts on a line of its own. A regular file is read
// back where the program stopped writing; a terminal cannot be asked what it shows last, so there
// the report always starts after an empty line, as bash's `time` does; a pipe is left alone.
void md_cli_start_on_new_line(void);

// Iterates options like getopt_long. Returns the key, -1 after the last option (optind is then
// the first operand), or '?' after printing a usage error (an unknown option, a missing argument,
// an empty file or directory name). --help is handled by the caller.
int md_cli_next(const struct md_command *cmd, int argc, char **argv, const char **arg);

void md_cli_usage(const struct md_command *cmd, FILE *out);
// "exit status: 0 success, ..." for the statuses in exits (MD_EXIT_BIT), one line.
void md_cli_exit_statuses(unsigned exits, FILE *out);
// For the default branch of a command's option loop: prints --help or --version (exit 0) or
// leaves a usage error (exit 2, already printed by md_cli_next). Returns false: stop parsing.
bool md_cli_stop(const struct md_command *cmd, int key, int *exit_code);
// "malloc-doctor: CMD: MESSAGE" (md_cli_error's prefix) + "Try 'malloc-doctor CMD --help'." on
// stderr; returns 2.
int md_cli_usage_error(const struct md_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// "malloc-doctor: CMD: MESSAGE" on stderr, on one line whatever a file name in it holds.
void md_cli_error(const struct md_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// s as text output shows it (into out, cut at size; out may be s): each control character (C0,
// DEL, C1 as UTF-8 or as a lone byte 0x80..0x9f) is '?',
// so that a file name (they may hold any byte but '/' and NUL) can neither break a line or a
// table row nor send escape sequences to the terminal. JSON keeps names as they are.
const char *md_cli_printable(const char *s, char *out, size_t size);

// Columns text takes in a terminal: one per character, two for an East Asian wide one or an
// emoji, none for a combining mark; a byte that is not UTF-8 shows as one replacement character.
int md_cli_display_width(const char *text);

// The name of the allocator serving malloc (an inspect "active" object, may be NULL) for people:
// "none (malloc not linked)" for a file that never links malloc, "unknown" when not identified.
const char *md_cli_active_name(const cJSON *active);

// Prints one rule finding for people (printable): "\n[SUBJECT: ]severity ID: title", message, fix.
void md_cli_print_finding(const char *subject, const cJSON *finding);

// Prints the report as JSON on stdout (one document, newline terminated).
void md_cli_print_json(const cJSON *report);

// The same path, or two names of one existing file: writing one replaces the other.
bool md_cli_same_file(const char *a, const char *b);

// A file a command reads or writes, with the option that names it (path NULL: not given).
struct md_cli_file {
    const char *option;
    const char *path;
};

// Refuses any two of files that name one file (md_cli_same_file): a report or folded stacks
// written there would replace the other, a --baseline among them. False after the usage error
// "A and B name the same file: B's path" (*exit_code set).
bool md_cli_files_distinct(const struct md_command *cmd, const struct md_cli_file *files,
                           size_t count, int *exit_code);

// Before a long run: whether -o OUTPUT can be written, checked the way md_cli_render will write it
// (a temporary file is created and removed); prints the error when not.
bool md_cli_output_usable(const struct md_command *cmd, const char *output);

// Writes size bytes of data to the file name as -o writes a report: whole or not at all (a
// temporary file renamed over it), the old file kept on failure; -1 after printing the error.
int md_cli_write_file(const struct md_command *cmd, const char *name, const char *data,
                      size_t size);

// Prints the report to output (NULL: stdout) as JSON or with render_text; returns -1 after
// printing an error when output cannot be opened.
int md_cli_render(const struct md_command *cmd, const cJSON *report, const char *output, bool json,
                  void (*render_text)(const cJSON *report));

// A number in decimal digits for option, at most max; zero is allowed only with allow_zero. False
// after a usage error that says which of these arg is not.
bool md_cli_parse_u64(const struct md_command *cmd, const char *option, const char *arg,
                      uint64_t max, bool allow_zero, uint64_t *out, int *exit_code);

#define MD_OPT_HELP 'h'
#define MD_OPT_VERSION 0x100

// --- the CI gate, shared by the commands that produce findings (cmd/cli_gate.c) ---------------

enum { MD_OPT_FAIL_ON = 0x1f0, MD_OPT_BASELINE, MD_OPT_MAX_REGRESSION };

#define MD_OPT_FAIL_ON_ENTRY                                                                       \
    {                                                                                              \
        "fail-on", MD_OPT_FAIL_ON, "LEVEL",                                                        \
            "exit 1 if a finding is at least LEVEL (info|warning|error)"                           \
    }
#define MD_OPT_BASELINE_ENTRIES                                                                    \
    {"baseline", MD_OPT_BASELINE, "FILE",                                                          \
     "compare with a saved `--json` report; exit 1 on a regression"},                              \
    {                                                                                              \
        "max-regression", MD_OPT_MAX_REGRESSION, "PCT",                                            \
            "with --baseline: growth allowed per metric, in percent (default 10)"                  \
    }

struct md_gate_args {
    int fail_on;           // enum md_severity, or -1: findings never fail the run
    const char *baseline;  // --baseline FILE, or NULL
    double max_regression; // percent
    bool max_regression_set;
};

void md_cli_gate_init(struct md_gate_args *g);
// Handles a gate option's key; returns false (with *exit_code) on a bad value.
bool md_cli_gate_option(const struct md_command *cmd, int key, const char *arg,
                        struct md_gate_args *g, int *exit_code);
// Checks the combination after parsing (--max-regression needs --baseline).
bool md_cli_gate_valid(const struct md_command *cmd, const struct md_gate_args *g, int *exit_code);
// Loads the baseline before anything runs, so a bad file costs no run; *baseline stays NULL
// without --baseline. Returns false after printing the error.
bool md_cli_gate_load(const struct md_command *cmd, const struct md_gate_args *g, cJSON **baseline);
// Applies the gate to the finished report: adds "gate" when there is a baseline, prints one line
// per regression on stderr, and returns MD_EXIT_CHECK when the gate fails, else MD_EXIT_OK.
int md_cli_gate_apply(const struct md_command *cmd, const struct md_gate_args *g,
                      const cJSON *baseline, cJSON *report);

#endif
