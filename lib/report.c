// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/report.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void md_tool_dir(char *dir, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", dir, size - 1);
    dir[n > 0 ? n : 0] = 0;
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, size, ".");
}

cJSON *md_report_new(const char *command, const char *version)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "schema", MD_SCHEMA);
    cJSON *tool = cJSON_AddObjectToObject(r, "tool");
    cJSON_AddStringToObject(tool, "name", "malloc-doctor");
    cJSON_AddStringToObject(tool, "version", version);
    cJSON_AddStringToObject(r, "command", command);
    return r;
}

void md_json_str(cJSON *obj, const char *key, const char *value)
{
    if (value)
        cJSON_AddStringToObject(obj, key, value);
    else
        cJSON_AddNullToObject(obj, key);
}

const char *md_plural_s(double count)
{
    return count == 1 ? "" : "s";
}

void md_json_num_or_null(cJSON *obj, const char *key, bool known, double value)
{
    if (known)
        cJSON_AddNumberToObject(obj, key, value);
    else
        cJSON_AddNullToObject(obj, key);
}

void md_json_strs(cJSON *obj, const char *key, const char *const *values, size_t count)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; i < count; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(values[i]));
}

const char *md_json_get_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double md_json_get_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int md_json_get_bool(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

cJSON *md_json_lines(const char *text)
{
    cJSON *arr = cJSON_CreateArray();
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        char line[MD_JSON_LINE_MAX];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        cJSON_AddItemToArray(arr, cJSON_CreateString(line));
        p += len + (p[len] == '\n');
    }
    return arr;
}

bool md_lines_append(char *text, size_t size, size_t *len, const char *line)
{
    size_t at = *len + (*len > 0), n = strlen(line);
    if (at + n + 1 > size)
        return false;
    if (*len)
        text[*len] = '\n';
    for (size_t i = 0; i < n; i++)
        text[at + i] = line[i] == '\n' ? '?' : line[i];
    text[at + n] = 0;
    *len = at + n;
    return true;
}

// Characters a shell takes literally; anything else gets single quotes.
static bool shell_plain(const char *word)
{
    if (!*word)
        return false;
    for (const char *c = word; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,@%+-", *c))
            return false;
    return true;
}

void md_report_warn(cJSON *report, const char *warning)
{
    cJSON *warnings = cJSON_GetObjectItemCaseSensitive(report, "warnings");
    if (!warnings)
        warnings = cJSON_AddArrayToObject(report, "warnings");
    cJSON_AddItemToArray(warnings, cJSON_CreateString(warning));
}

const char *md_report_program_str(const cJSON *report, const char *key)
{
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(report, "target");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(target, "exec_image");
    return md_json_get_str(cJSON_IsObject(image) ? image : target, key);
}

const cJSON *md_report_ran_allocator(const cJSON *report)
{
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(report, "target");
    const cJSON *ran = cJSON_GetObjectItemCaseSensitive(target, "malloc_at_run_time");
    return cJSON_IsObject(ran) ? ran : cJSON_GetObjectItemCaseSensitive(target, "active");
}

bool md_report_attributed(const cJSON *report)
{
    const char *mode = md_json_get_str(report, "mode");
    return mode && (!strcmp(mode, "preload") || !strcmp(mode, "hooks")) &&
           md_json_get_bool(cJSON_GetObjectItemCaseSensitive(report, "attribution"), "available");
}

void md_append_text(char *out, size_t size, size_t *len, const char *text)
{
    int n = snprintf(out + *len, size - *len, "%s", text);
    if (n > 0)
        *len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

void md_append_shell_word(char *out, size_t size, size_t *len, const char *word)
{
    if (shell_plain(word)) {
        md_append_text(out, size, len, word);
        return;
    }
    md_append_text(out, size, len, "'");
    for (const char *c = word; *c; c++) {
        char one[2] = {*c, 0};
        md_append_text(out, size, len, *c == '\'' ? "'\\''" : one);
    }
    md_append_text(out, size, len, "'");
}
