// SPDX-License-Identifier: GPL-3.0-or-later
#include "cmd/cli.h"

#include "lib/report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MD_MAX_OPTIONS 32

static size_t build_getopt(const struct md_command *cmd, struct option *out, char *shorts)
{
    const struct md_opt *opts = cmd->options;
    size_t n = 0, s = 0;
    if (cmd->options_end_at_operand)
        shorts[s++] = '+';
    shorts[s++] = ':'; // report a missing argument as ':' instead of '?'
    for (; opts[n].name && n < MD_MAX_OPTIONS; n++) {
        out[n] = (struct option){opts[n].name, opts[n].arg ? required_argument : no_argument, NULL,
                                 opts[n].key};
        if (opts[n].key < 256) {
            shorts[s++] = (char)opts[n].key;
            if (opts[n].arg)
                shorts[s++] = ':';
        }
    }
    out[n] = (struct option){0};
    shorts[s] = 0;
    return n;
}

int md_cli_next(const struct md_command *cmd, int argc, char **argv, const char **arg)
{
    struct option longs[MD_MAX_OPTIONS + 1];
    char shorts[2 * MD_MAX_OPTIONS + 3];
    build_getopt(cmd, longs, shorts);
    opterr = 0;
    int key = getopt_long(argc, argv, shorts, longs, NULL);
    *arg = optarg;
    if (key == '?') {
        if (optopt && optopt < 256)
            return md_cli_usage_error(cmd, "unknown option -%c", optopt), '?';
        return md_cli_usage_error(cmd, "unknown option %s", argv[optind - 1]), '?';
    }
    if (key == ':')
        return md_cli_usage_error(cmd, "option %s needs an argument", argv[optind - 1]), '?';
    return key;
}

void md_cli_usage(const struct md_command *cmd, FILE *out)
{
    fprintf(out, "usage: malloc-doctor %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->synopsis,
            cmd->description);
    for (const struct md_opt *o = cmd->options; o->name; o++) {
        char left[64];
        if (o->key < 256)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->key, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        fprintf(out, "  %-26s %s\n", left, o->help);
    }
    fputs("\nexit status: 0 success, 1 a requested check failed, 2 usage or input error\n", out);
}

bool md_cli_stop(const struct md_command *cmd, int key, int *exit_code)
{
    *exit_code = MD_EXIT_OK;
    if (key == MD_OPT_HELP)
        md_cli_usage(cmd, stdout);
    else if (key == MD_OPT_VERSION)
        printf("malloc-doctor %s\n", MD_VERSION);
    else
        *exit_code = MD_EXIT_USAGE;
    return false;
}

int md_cli_usage_error(const struct md_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "malloc-doctor %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'malloc-doctor %s --help'.\n", cmd->name);
    return MD_EXIT_USAGE;
}

void md_cli_error(const struct md_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "malloc-doctor: %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void md_cli_print_finding(const char *subject, const cJSON *finding)
{
    const char *fix = md_json_get_str(finding, "fix");
    printf("\n%s%s%s %s: %s\n  %s\n", subject ? subject : "", subject ? ": " : "",
           md_json_get_str(finding, "severity"), md_json_get_str(finding, "id"),
           md_json_get_str(finding, "title"), md_json_get_str(finding, "message"));
    if (fix)
        printf("  fix: %s\n", fix);
}

void md_cli_print_json(const cJSON *report)
{
    char *text = cJSON_Print(report);
    if (text)
        printf("%s\n", text);
    free(text);
}

// A device, pipe or socket (-o /dev/null, -o /dev/stderr) is written in place: renaming a
// temporary file over it would replace /dev/null with a regular file for every process.
static bool is_special_file(const char *path)
{
    struct stat st;
    return !stat(path, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

// The report goes to a temporary file next to output, renamed over it when complete: a reader
// never sees half a report, and a failed run leaves the previous one in place. tmp is left empty
// when output is a special file, written directly.
static int redirect_stdout(const struct md_command *cmd, const char *output, char *tmp, size_t size,
                           int *saved)
{
    bool special = is_special_file(output);
    if (special)
        tmp[0] = 0;
    else
        snprintf(tmp, size, "%s.XXXXXX", output);
    int fd = special ? open(output, O_WRONLY | O_CLOEXEC) : mkstemp(tmp);
    if (fd < 0) {
        md_cli_error(cmd, "%s: %s", output, strerror(errno));
        return -1;
    }
    if (!special) {
        mode_t mask = umask(0);
        umask(mask);
        fchmod(fd, 0666 & ~mask);
    }
    fflush(stdout);
    *saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    return 0;
}

static int restore_stdout(const struct md_command *cmd, const char *output, const char *tmp,
                          int saved)
{
    bool special = !tmp[0]; // written in place: nothing to sync or rename
    bool written = fflush(stdout) == 0 && !ferror(stdout) && (special || fsync(STDOUT_FILENO) == 0);
    int write_errno = errno;
    dup2(saved, STDOUT_FILENO);
    close(saved);
    clearerr(stdout);
    if (written && (special || rename(tmp, output) == 0))
        return 0;
    md_cli_error(cmd, "%s: %s", output, strerror(written ? errno : write_errno));
    if (!special)
        unlink(tmp);
    return -1;
}

int md_cli_render(const struct md_command *cmd, const cJSON *report, const char *output, bool json,
                  void (*render_text)(const cJSON *report))
{
    char tmp[4096];
    int saved = -1;
    if (output && redirect_stdout(cmd, output, tmp, sizeof tmp, &saved))
        return -1;
    if (json)
        md_cli_print_json(report);
    else
        render_text(report);
    return output ? restore_stdout(cmd, output, tmp, saved) : 0;
}

bool md_cli_parse_u64(const struct md_command *cmd, const char *option, const char *arg,
                      uint64_t *out, bool allow_zero, int *exit_code)
{
    char *end;
    errno = 0;
    *out = strtoull(arg, &end, 10);
    if (!*arg || *end || *arg == '-' || errno || (*out == 0 && !allow_zero)) {
        *exit_code = md_cli_usage_error(cmd, "%s needs a %s number, not '%s'", option,
                                        allow_zero ? "whole" : "positive", arg);
        return false;
    }
    return true;
}
