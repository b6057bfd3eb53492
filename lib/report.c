// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/report.h"

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
