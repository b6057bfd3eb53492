// SPDX-License-Identifier: GPL-3.0-or-later
#include "cmd/cli.h"

#include "lib/report.h"
#include "lib/run.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

// What an option's argument must name when it is a path (by its name in the option table), or
// NULL: an empty one would otherwise reach open()'s error as "malloc-doctor: CMD: : No such file".
static const char *path_needed(const struct md_command *cmd, int key)
{
    static const char *const files[] = {"FILE", "OUT", "LIB", "ARCHIVE.a"};
    const struct md_opt *o = cmd->options;
    while (o->name && o->key != key)
        o++;
    if (!o->arg)
        return NULL;
    if (!strcmp(o->arg, "DIR"))
        return "a directory name";
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!strcmp(o->arg, files[i]))
            return "a file name";
    return NULL;
}

int md_cli_next(const struct md_command *cmd, int argc, char **argv, const char **arg)
{
    struct option longs[MD_MAX_OPTIONS + 1];
    char shorts[2 * MD_MAX_OPTIONS + 3];
    build_getopt(cmd, longs, shorts);
    opterr = 0;
    int at = -1; // the long option's index; stays -1 for a short one
    int key = getopt_long(argc, argv, shorts, longs, &at);
    *arg = optarg;
    const char *needed = optarg && !*optarg ? path_needed(cmd, key) : NULL;
    if (needed && at >= 0)
        return md_cli_usage_error(cmd, "--%s needs %s", longs[at].name, needed), '?';
    if (needed)
        return md_cli_usage_error(cmd, "-%c needs %s", key, needed), '?';
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
    putc('\n', out);
    md_cli_exit_statuses(cmd->exits, out);
}

void md_cli_exit_statuses(unsigned exits, FILE *out)
{
    static const char *const meaning[] = {
        [MD_EXIT_OK] = "success",
        [MD_EXIT_CHECK] = "a requested check failed",
        [MD_EXIT_USAGE] = "usage or input error",
    };
    const char *sep = "exit status:";
    for (int status = MD_EXIT_OK; status <= MD_EXIT_USAGE; status++) {
        if (!(exits & MD_EXIT_BIT(status)))
            continue;
        fprintf(out, "%s %d %s", sep, status, meaning[status]);
        sep = ",";
    }
    putc('\n', out);
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

volatile sig_atomic_t md_cli_mapping_faults;
static uintptr_t guard_page_size;

static void on_sigbus(int sig, siginfo_t *si, void *context)
{
    (void)context;
    uintptr_t page = (uintptr_t)si->si_addr & ~(guard_page_size - 1);
    // writable too: the mapping it replaces may have been (the probe file)
    if (si->si_code == BUS_ADRERR && page &&
        mmap((void *)page, guard_page_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
        md_cli_mapping_faults++;
        return;
    }
    signal(sig, SIG_DFL); // a real fault: the access repeats and ends the process
}

void md_cli_guard_mappings(void)
{
    guard_page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

// The standard descriptors the caller started the tool with closed (bit N: descriptor N): a
// closed stdout's /dev/full would name the wrong cause with its ENOSPC, and the traced program
// gets them closed. Set once, before any command runs.
static unsigned closed_standard;

// A caller that closed stdin, stdout or stderr would have them reused by the first file opened
// (a report printed into a netlink socket): hold them, as git does. A closed stdout is held by
// /dev/full, so that a report written there fails (and says why) instead of vanishing; the
// others by /dev/null.
void md_cli_hold_standard_descriptors(void)
{
    for (int std = STDIN_FILENO; std <= STDERR_FILENO; std++)
        if (fcntl(std, F_GETFD) < 0)
            closed_standard |= 1u << std;
    int fd;
    while ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0 && fd <= STDERR_FILENO) {
        int full;
        if (fd == STDOUT_FILENO && (full = open("/dev/full", O_WRONLY | O_CLOEXEC)) >= 0) {
            dup2(full, STDOUT_FILENO); // without /dev/full, /dev/null holds it
            close(full);
        }
        fcntl(fd, F_SETFD, 0); // it stands for a standard descriptor: children get it too
    }
    if (fd > STDERR_FILENO)
        close(fd);
}

unsigned md_cli_closed_standard_descriptors(void)
{
    return closed_standard;
}

bool md_cli_flush_stdout(int *error)
{
    static int first_error; // a second flush of a failed stream has no errno left to give
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) {
        *error = 0;
        return true;
    }
    if (!first_error)
        first_error = closed_standard & (1u << STDOUT_FILENO) ? EBADF : errno;
    *error = first_error;
    return false;
}

static size_t utf8_sequence(const unsigned char *s);

// Bytes of the character at s (1 for a byte that is not UTF-8), and whether it is a control: C0,
// DEL, C1 (U+0080..U+009F; and a lone byte 0x80..0x9f, which an 8-bit terminal takes as C1, the
// CSI 0x9b too). One '?' then stands for the character, one column as md_cli_display_width counts.
static size_t control_at(const unsigned char *s, bool *control)
{
    size_t n = utf8_sequence(s);
    *control = s[0] < 0x20 || s[0] == 0x7f || (!n && s[0] >= 0x80 && s[0] < 0xa0) ||
               (n == 2 && s[0] == 0xc2 && s[1] < 0xa0);
    return n ? n : 1;
}

const char *md_cli_printable(const char *s, char *out, size_t size)
{
    const unsigned char *in = (const unsigned char *)s;
    size_t n = 0;
    while (*in && size) {
        bool control;
        size_t len = control_at(in, &control), put = control ? 1 : len;
        if (n + put >= size)
            break; // cut before a character, never inside one
        if (control)
            out[n] = '?';
        else
            memmove(out + n, in, len); // out may be s: n never passes the read position
        n += put;
        in += len;
    }
    if (size)
        out[n] = 0;
    return out;
}

int md_cli_usage_error(const struct md_command *cmd, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "malloc-doctor: %s: %s\nTry 'malloc-doctor %s --help'.\n", cmd->name,
            md_cli_printable(line, line, sizeof line), cmd->name);
    return MD_EXIT_USAGE;
}

void md_cli_error(const struct md_command *cmd, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "malloc-doctor: %s: %s\n", cmd->name,
            md_cli_printable(line, line, sizeof line));
}

const char *md_cli_active_name(const cJSON *active)
{
    const char *name = md_json_get_str(active, "name"), *reason = md_json_get_str(active, "reason");
    if (name)
        return name;
    if (reason && !strcmp(reason, MD_NOT_LINKED))
        return "none (malloc not linked)";
    return reason && !strcmp(reason, MD_DEFINED_ELSEWHERE) ? "unknown (malloc defined elsewhere)"
                                                           : "unknown";
}

// Room for a finding's longest line: a file name, then a title; the rules build message and fix
// in at most 2 KiB each.
#define MD_FINDING_LINE (PATH_MAX + 1024)

// "[PREFIX]TEXT\n", TEXT printable.
static void print_line(const char *prefix, const char *text)
{
    char shown[MD_FINDING_LINE];
    printf("%s%s\n", prefix, md_cli_printable(text ? text : "", shown, sizeof shown));
}

void md_cli_print_finding(const char *subject, const cJSON *finding)
{
    char head[MD_FINDING_LINE];
    snprintf(head, sizeof head, "%s%s%s %s: %s", subject ? subject : "", subject ? ": " : "",
             md_json_get_str(finding, "severity"), md_json_get_str(finding, "id"),
             md_json_get_str(finding, "title"));
    putchar('\n');
    print_line("", head);
    print_line("  ", md_json_get_str(finding, "message"));
    if (md_json_get_str(finding, "fix"))
        print_line("  fix: ", md_json_get_str(finding, "fix"));
}

// Length of the valid UTF-8 sequence at s (1 to 4), or 0 when the bytes there are not one.
static size_t utf8_sequence(const unsigned char *s)
{
    size_t n = s[0] < 0x80                   ? 1
               : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
               : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
               : s[0] >= 0xf0 && s[0] < 0xf5 ? 4
                                             : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; // overlong, surrogate or beyond U+10FFFF
    return n;
}

// Code point ranges a terminal shows two columns wide (East Asian Wide and Fullwidth, emoji), and
// combining marks it shows in the column of the letter before. Not the whole Unicode table: the
// blocks file names use.
struct code_range {
    uint32_t first, last;
};
static const struct code_range wide_ranges[] = {
    {0x1100, 0x115f}, {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},   {0x4e00, 0x9fff},
    {0xa000, 0xa4cf}, {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe30, 0xfe4f},   {0xff00, 0xff60},
    {0xffe0, 0xffe6}, {0x1f300, 0x1f64f}, {0x1f900, 0x1f9ff}, {0x20000, 0x3fffd},
};
static const struct code_range combining_ranges[] = {
    {0x0300, 0x036f}, {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff}, {0x200b, 0x200f},
    {0x20d0, 0x20ff}, {0xfe00, 0xfe0f}, {0xfe20, 0xfe2f},
};

static bool in_ranges(uint32_t c, const struct code_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].first && c <= r[i].last)
            return true;
    return false;
}

static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    static const unsigned char lead_bits[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t c = s[0] & lead_bits[n];
    for (size_t i = 1; i < n; i++)
        c = c << 6 | (s[i] & 0x3f);
    return c;
}

int md_cli_display_width(const char *text)
{
    int width = 0;
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        size_t n = utf8_sequence(s);
        if (!n) { // shown as one replacement character
            width++;
            s++;
            continue;
        }
        uint32_t c = utf8_decode(s, n);
        width +=
            in_ranges(c, wide_ranges, sizeof wide_ranges / sizeof wide_ranges[0]) ? 2
            : in_ranges(c, combining_ranges, sizeof combining_ranges / sizeof combining_ranges[0])
                ? 0
                : 1;
        s += n;
    }
    return width;
}

// JSON is UTF-8: a file name or symbol that is not (Linux names are bytes) gets U+FFFD for each
// byte that does not fit, so a CI parser reads the report instead of failing on it.
void md_cli_print_json(const cJSON *report)
{
    char *text = cJSON_Print(report);
    if (!text)
        return;
    const unsigned char *run = (const unsigned char *)text, *s = run;
    while (*s) {
        size_t n = utf8_sequence(s);
        if (n) {
            s += n;
            continue;
        }
        fwrite(run, 1, (size_t)(s - run), stdout);
        fputs("\xef\xbf\xbd", stdout);
        run = ++s;
    }
    fwrite(run, 1, (size_t)(s - run), stdout);
    putchar('\n');
    free(text);
}

// Where -o puts the report. A regular file (or none yet) gets a temporary file beside it, renamed
// over it when complete: a reader never sees half a report, and a failed run leaves the previous
// one in place. Through a symbolic link, that is the link's target, and the link stays. A
// character device, FIFO or socket (-o /dev/null) is written in place: a rename would replace the
// node itself, for every process. /dev/stdout, /dev/stderr and /dev/fd/N name the tool's own
// descriptors, whatever they are (a file, a pipe, a socket, which open() refuses). A block device
// is refused: writing a report over a disk is never what was meant.
struct output {
    const char *name;       // as given, for messages
    char path[PATH_MAX];    // the file written: name, or its link's target
    char tmp[PATH_MAX + 8]; // the temporary file renamed over path; empty when written in place
    int saved;              // the tool's stdout while the report is written
    const char *refused;    // why open_output would not write there (errno otherwise)
    char reason[160];       // room for a refusal that carries an errno
};

// The descriptor a /dev/stdout-like name stands for, or -1.
static int named_descriptor(const char *name)
{
    if (!strcmp(name, "/dev/stdout"))
        return STDOUT_FILENO;
    if (!strcmp(name, "/dev/stderr"))
        return STDERR_FILENO;
    const char *n = NULL;
    if (!strncmp(name, "/dev/fd/", 8))
        n = name + 8;
    else if (!strncmp(name, "/proc/self/fd/", 14))
        n = name + 14;
    char *end;
    long fd = n && *n ? strtol(n, &end, 10) : -1;
    return fd >= 0 && fd <= INT32_MAX && !*end ? (int)fd : -1;
}

enum output_way { OUTPUT_DESCRIPTOR, OUTPUT_CREATE_THROUGH_LINK, OUTPUT_IN_PLACE, OUTPUT_RENAME };

// How the report gets to o->name (see struct output), without writing anything: -1 when it
// cannot, with o->refused set. *named is the descriptor of OUTPUT_DESCRIPTOR.
static int output_way(struct output *o, int *named)
{
    o->tmp[0] = 0;
    if ((*named = named_descriptor(o->name)) >= 0)
        return OUTPUT_DESCRIPTOR;
    struct stat st;
    bool link = !lstat(o->name, &st) && S_ISLNK(st.st_mode);
    if (link && !realpath(o->name, o->path)) // dangling: create its target through it, as `>` does
        return OUTPUT_CREATE_THROUGH_LINK;
    if (!link)
        snprintf(o->path, sizeof o->path, "%s", o->name);
    if (stat(o->path, &st) || S_ISREG(st.st_mode))
        return OUTPUT_RENAME;
    if (S_ISBLK(st.st_mode))
        o->refused = "a block device; -o writes a report file";
    else if (S_ISDIR(st.st_mode))
        o->refused = strerror(EISDIR);
    else
        return OUTPUT_IN_PLACE;
    return -1;
}

// The temporary file that replaces o->path: a file there keeps its mode and, where permitted,
// its owner; a new one gets 0666 less the umask.
static int make_temp(struct output *o)
{
    snprintf(o->tmp, sizeof o->tmp, "%s.XXXXXX", o->path);
    int fd = mkstemp(o->tmp);
    struct stat old;
    if (fd < 0) {
        int why = errno;            // stat() below fails on a new name and would say ENOENT instead
        if (!stat(o->path, &old)) { // the file is there (/proc/version): say what failed
            snprintf(o->reason, sizeof o->reason,
                     "cannot create a temporary file beside it to replace it whole (%s)",
                     strerror(why));
            o->refused = o->reason;
        }
        errno = why;
        return fd;
    }
    if (!stat(o->path, &old) && S_ISREG(old.st_mode)) {
        fchmod(fd, old.st_mode & 07777);
        (void)!fchown(fd, old.st_uid, old.st_gid); // not permitted: it becomes the caller's
    } else {
        mode_t mask = umask(0);
        umask(mask);
        fchmod(fd, 0666 & ~mask);
    }
    return fd;
}

// Opens what the report is written to: a descriptor, or -1 with o->refused or errno saying why.
static int open_output(struct output *o)
{
    int named;
    switch (output_way(o, &named)) {
    case OUTPUT_DESCRIPTOR:
        return fcntl(named, F_DUPFD_CLOEXEC, 0);
    case OUTPUT_CREATE_THROUGH_LINK:
        return open(o->name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    case OUTPUT_IN_PLACE:
        return open(o->path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    case OUTPUT_RENAME:
        return make_temp(o);
    default:
        return -1;
    }
}

bool md_cli_same_file(const char *a, const char *b)
{
    return md_same_file(a, b) || !strcmp(a, b); // a name not created yet is the same by name
}

bool md_cli_files_distinct(const struct md_command *cmd, const struct md_cli_file *files,
                           size_t count, int *exit_code)
{
    for (size_t i = 0; i < count; i++)
        for (size_t j = i + 1; j < count; j++)
            if (files[i].path && files[j].path && md_cli_same_file(files[i].path, files[j].path)) {
                *exit_code = md_cli_usage_error(cmd, "%s and %s name the same file: %s",
                                                files[i].option, files[j].option, files[j].path);
                return false;
            }
    return true;
}

bool md_cli_output_usable(const struct md_command *cmd, const char *output)
{
    struct output o = {.name = output};
    int named, way = output_way(&o, &named), fd = 0;
    if (way == OUTPUT_DESCRIPTOR)
        fd = fcntl(named, F_GETFD);
    else if (way == OUTPUT_RENAME && (fd = make_temp(&o)) >= 0) // can it be created there?
        unlink(o.tmp), close(fd);
    if (way >= 0 && fd >= 0) // a FIFO is not opened: that waits for a reader
        return true;
    md_cli_error(cmd, "%s: %s", output, o.refused ? o.refused : strerror(errno));
    return false;
}

static int redirect_stdout(const struct md_command *cmd, struct output *o)
{
    int fd = open_output(o);
    if (fd < 0) {
        md_cli_error(cmd, "%s: %s", o->name, o->refused ? o->refused : strerror(errno));
        return -1;
    }
    fflush(stdout);
    o->saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    return 0;
}

static int restore_stdout(const struct md_command *cmd, struct output *o)
{
    bool in_place = !o->tmp[0]; // nothing to sync or rename
    bool written =
        fflush(stdout) == 0 && !ferror(stdout) && (in_place || fsync(STDOUT_FILENO) == 0);
    int write_errno = errno;
    dup2(o->saved, STDOUT_FILENO);
    close(o->saved);
    clearerr(stdout);
    if (written && (in_place || rename(o->tmp, o->path) == 0))
        return 0;
    md_cli_error(cmd, "%s: %s", o->name, strerror(written ? errno : write_errno));
    if (!in_place)
        unlink(o->tmp);
    return -1;
}

// Whether stdout, a regular file, ends in anything but a newline where it is written next. It is
// read through /proc because `> FILE` opens it for writing only.
static bool file_line_open(void)
{
    off_t at = lseek(STDOUT_FILENO, 0, SEEK_CUR);
    if (at <= 0)
        return false;
    int fd = open("/proc/self/fd/1", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    char last;
    bool open_line = pread(fd, &last, 1, at - 1) == 1 && last != '\n';
    close(fd);
    return open_line;
}

void md_cli_start_on_new_line(void)
{
    struct stat st;
    fflush(stdout);
    if (isatty(STDOUT_FILENO) ||
        (!fstat(STDOUT_FILENO, &st) && S_ISREG(st.st_mode) && file_line_open()))
        putchar('\n');
}

int md_cli_write_file(const struct md_command *cmd, const char *name, const char *data, size_t size)
{
    struct output o = {.name = name, .saved = -1};
    if (redirect_stdout(cmd, &o))
        return -1;
    fwrite(data, 1, size, stdout);
    return restore_stdout(cmd, &o);
}

int md_cli_render(const struct md_command *cmd, const cJSON *report, const char *output, bool json,
                  void (*render_text)(const cJSON *report))
{
    struct output o = {.name = output, .saved = -1};
    if (output && redirect_stdout(cmd, &o))
        return -1;
    if (json)
        md_cli_print_json(report);
    else
        render_text(report);
    return output ? restore_stdout(cmd, &o) : 0;
}

bool md_cli_parse_u64(const struct md_command *cmd, const char *option, const char *arg,
                      uint64_t max, bool allow_zero, uint64_t *out, int *exit_code)
{
    // digits only: strtoull would also take blanks, a sign (wrapping "-1" to 2^64-1) and "0x"
    bool digits = *arg && strspn(arg, "0123456789") == strlen(arg);
    errno = 0;
    *out = digits ? strtoull(arg, NULL, 10) : 0;
    if (!digits || (*out == 0 && !allow_zero)) {
        *exit_code = md_cli_usage_error(cmd, "%s needs a %s number, not '%s'", option,
                                        allow_zero ? "whole" : "positive", arg);
        return false;
    }
    if (errno == ERANGE || *out > max) { // past 2^64-1, strtoull gives its maximum and ERANGE
        *exit_code =
            md_cli_usage_error(cmd, "%s: '%s' is too large: at most %" PRIu64, option, arg, max);
        return false;
    }
    return true;
}
