// SPDX-License-Identifier: GPL-3.0-or-later
// The report model: every command collects into one cJSON tree, then cmd/ renders it as text or
// prints it as JSON. The tree is the single source of both outputs.
#ifndef MD_REPORT_H
#define MD_REPORT_H

#include <cJSON.h>
#include <stdbool.h>

#define MD_SCHEMA "malloc-doctor/1"

// An inspect "active" object's reason when no allocator serves malloc: the file never links it.
#define MD_NOT_LINKED "malloc-not-linked"
// active.reason: malloc is defined outside the code of the allocators present (the program's own,
// or one no signature knows)
#define MD_DEFINED_ELSEWHERE "defined-elsewhere"

// {"schema": MD_SCHEMA, "tool": {"name", "version"}, "command": command}; NULL when out of memory.
cJSON *md_report_new(const char *command, const char *version);

// The plural ending of a count's noun: "" for 1 ("1 block"), "s" otherwise ("0 blocks"), for
// messages the rules and the renderers build.
const char *md_plural_s(double count);

// The directory of the running tool: its probe and allocator builds are found from here.
void md_tool_dir(char *dir, size_t size);

// Small helpers that keep builders short; all accept NULL values and store JSON null.
void md_json_str(cJSON *obj, const char *key, const char *value);
void md_json_num_or_null(cJSON *obj, const char *key, bool known,
                         double value); // null unless known
void md_json_strs(cJSON *obj, const char *key, const char *const *values, size_t count);
const char *md_json_get_str(const cJSON *obj, const char *key); // NULL unless a string
int md_json_get_bool(const cJSON *obj, const char *key);        // 0 unless true
double md_json_get_num(const cJSON *obj, const char *key);      // 0 unless a number
// An array of strings, one per line of text (a call stack's frames, innermost first); a line
// longer than MD_JSON_LINE_MAX - 1 bytes is cut there.
#define MD_JSON_LINE_MAX 256
cJSON *md_json_lines(const char *text);
// Appends line to text (of size bytes, *len used) as its last line, when it fits whole; a newline
// inside line (a file or symbol name can hold one) becomes '?', so that one frame stays one line
// here, in JSON and in folded stacks. Returns whether it fitted.
bool md_lines_append(char *text, size_t size, size_t *len, const char *line);

// Adds warning to the report's "warnings" array (created on first use): something that makes
// part of the report less trustworthy, which the text output shows at its top.
void md_report_warn(cJSON *report, const char *warning);

// Of a trace report: the program that ran is the one CMD exec'd in place (target.exec_image:
// `env PROG`) when there is one, else CMD's file. Its "kind" or "libc", or NULL.
const char *md_report_program_str(const cJSON *report, const char *key);
// The allocator that served the run: target.malloc_at_run_time when the probe said, else the one
// CMD's file links (target.active); NULL when neither is there.
const cJSON *md_report_ran_allocator(const cJSON *report);
// Whether a trace report knows which syscalls and waits were inside allocator calls: a probe saw
// every call (preload mode, or the static probe's hooks) and tied the syscalls to them.
bool md_report_attributed(const cJSON *report);

// Appends text to out (length *len, capacity size), cut where it does not fit; *len stays below
// size.
void md_append_text(char *out, size_t size, size_t *len, const char *text);
// Appends word the same way as one shell word: as it is when a shell takes
// every character literally, else in single quotes ('\'' for a quote inside). A word that does
// not fit is cut; *len stays below size.
void md_append_shell_word(char *out, size_t size, size_t *len, const char *word);

#endif
