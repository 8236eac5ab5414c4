/* cfg.c - table-driven configuration (see sipdrain/cfg.h).
 *
 * Order: defaults, then the file, then the environment; the last one that
 * sets a value wins. Every value is checked against its item the same way,
 * whatever its origin, and the error names the variable, what it saw and
 * what it accepts.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sipdrain/cfg.h"

#define CFG_MAX_ITEMS 128

const char *sd_cfg_type_name(enum sd_cfg_type type)
{
    static const char *const names[SD_CFG_TYPE_COUNT] = {
        [SD_CFG_STRING] = "string",
        [SD_CFG_INT] = "integer",
        [SD_CFG_BOOL] = "boolean",
        [SD_CFG_ENUM] = "one of",
    };
    if ((unsigned)type >= SD_CFG_TYPE_COUNT)
        return "unknown";
    return names[type];
}

/* "accepted: ..." text for an item, used in every error about it. */
static void accepted(const struct sd_cfg_item *it, char *buf, size_t size)
{
    switch (it->type) {
    case SD_CFG_INT:
        snprintf(buf, size, "an integer in %ld..%ld", it->min, it->max);
        break;
    case SD_CFG_BOOL:
        snprintf(buf, size, "true|false");
        break;
    case SD_CFG_ENUM:
        snprintf(buf, size, "%s", it->choices ? it->choices : "");
        break;
    default:
        snprintf(buf, size, "a non-empty string");
        break;
    }
}

static int enum_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int idx = 0;

    for (const char *p = choices; p != NULL && *p != '\0'; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return idx;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Parses value for it into dst; origin says where it came from (for errors). */
static int set_value(const struct sd_cfg_item *it, void *dst, const char *value, const char *origin,
                     struct sd_err *err)
{
    char *field = (char *)dst + it->offset;
    char acc[256];
    char *end;
    long l;

    accepted(it, acc, sizeof(acc));
    switch (it->type) {
    case SD_CFG_STRING: {
        char *copy;
        if (value[0] == '\0')
            return sd_err_set(err, SD_ERR_CONFIG, "%s is empty (%s; accepted: %s)", it->name,
                              origin, acc);
        copy = strdup(value);
        if (copy == NULL)
            return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case SD_CFG_INT:
        errno = 0;
        l = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno != 0)
            return sd_err_set(err, SD_ERR_CONFIG, "%s=\"%s\" is not an integer (%s; accepted: %s)",
                              it->name, value, origin, acc);
        if (l < it->min || l > it->max)
            return sd_err_set(err, SD_ERR_CONFIG, "%s=%ld is out of range (%s; accepted: %s)",
                              it->name, l, origin, acc);
        *(long *)field = l;
        return 0;
    case SD_CFG_BOOL:
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on") ||
            !strcmp(value, "1")) {
            *(bool *)field = true;
            return 0;
        }
        if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off") ||
            !strcmp(value, "0")) {
            *(bool *)field = false;
            return 0;
        }
        return sd_err_set(err, SD_ERR_CONFIG, "%s=\"%s\" is not a boolean (%s; accepted: %s)",
                          it->name, value, origin, acc);
    case SD_CFG_ENUM: {
        int idx = enum_index(it->choices, value);
        if (idx < 0)
            return sd_err_set(err, SD_ERR_CONFIG, "%s=\"%s\" is not accepted (%s; accepted: %s)",
                              it->name, value, origin, acc);
        *(int *)field = idx;
        return 0;
    }
    default:
        return sd_err_set(err, SD_ERR_INTERNAL, "%s: unknown type", it->name);
    }
}

/* SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE -> shutdown-sip-reject-code */
static void dashed_name(const char *name, char *buf, size_t size)
{
    size_t i = 0;

    if (strncmp(name, "SIPDRAIN_", 9) == 0)
        name += 9;
    for (; *name != '\0' && i + 1 < size; name++)
        buf[i++] = *name == '_' ? '-' : (char)tolower((unsigned char)*name);
    buf[i] = '\0';
}

static const struct sd_cfg_item *find_item(const struct sd_cfg_item *items, size_t n,
                                           const char *key)
{
    char dashed[128];

    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].name, key) == 0)
            return &items[i];
        dashed_name(items[i].name, dashed, sizeof(dashed));
        if (strcmp(dashed, key) == 0)
            return &items[i];
    }
    return NULL;
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Reads KEY=value lines; '#' starts a comment line; unknown keys are errors
 * (a typo in a config file must not pass silently). */
static int load_file(const struct sd_cfg_item *items, size_t n, void *dst, const char *file,
                     bool *set, struct sd_err *err)
{
    char line[4096], origin[512];
    FILE *f = fopen(file, "r");
    int lineno = 0, rc = -1;

    if (f == NULL)
        return sd_err_set(err, SD_ERR_CONFIG, "cannot read config file %s: %s", file,
                          strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL) {
        char *key, *value, *eq;
        const struct sd_cfg_item *it;

        lineno++;
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (eq == NULL) {
            sd_err_set(err, SD_ERR_CONFIG, "%s:%d: expected KEY=value", file, lineno);
            goto out;
        }
        *eq = '\0';
        key = trim(key);
        value = trim(eq + 1);
        if (strlen(value) >= 2 && value[0] == '"' && value[strlen(value) - 1] == '"') {
            value[strlen(value) - 1] = '\0';
            value++;
        }
        it = find_item(items, n, key);
        if (it == NULL) {
            sd_err_set(err, SD_ERR_CONFIG, "%s:%d: unknown setting %s", file, lineno, key);
            goto out;
        }
        snprintf(origin, sizeof(origin), "from %s:%d", file, lineno);
        if (set_value(it, dst, value, origin, err) < 0)
            goto out;
        set[it - items] = true;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

/* NAME_FILE for a string setting: its value is the named file's content,
 * less trailing line ends (Docker secrets, Kubernetes Secrets mounted as
 * files: a password or a DSN with one never sits in the environment or in
 * `docker inspect`). The value is never put in an error message. */
static int load_secret_file(const struct sd_cfg_item *it, void *dst, const char *path,
                            struct sd_err *err)
{
    char value[SD_CFG_FILE_MAX + 2], origin[600];
    size_t len;
    FILE *f = fopen(path, "r");
    int rc;

    if (f == NULL)
        return sd_err_set(err, SD_ERR_CONFIG, "%s_FILE: cannot read %s: %s", it->name, path,
                          strerror(errno));
    len = fread(value, 1, sizeof(value) - 1, f);
    fclose(f);
    if (len > SD_CFG_FILE_MAX)
        return sd_err_set(err, SD_ERR_CONFIG, "%s_FILE: %s is larger than %d bytes", it->name, path,
                          SD_CFG_FILE_MAX);
    value[len] = '\0';
    while (len > 0 && (value[len - 1] == '\n' || value[len - 1] == '\r'))
        value[--len] = '\0';
    if (strlen(value) != len)
        return sd_err_set(err, SD_ERR_CONFIG, "%s_FILE: %s holds a NUL byte", it->name, path);
    snprintf(origin, sizeof(origin), "from the file %s named by %s_FILE", path, it->name);
    rc = set_value(it, dst, value, origin, err);
    explicit_bzero(value, sizeof(value));
    return rc;
}

int sd_cfg_getenv(const char *name, char **value, struct sd_err *err)
{
    const struct sd_cfg_item it = {name, SD_CFG_STRING, 0, 0, 0, NULL, NULL, false, NULL};
    char file_name[128];
    const char *v = getenv(name), *path;

    *value = NULL;
    snprintf(file_name, sizeof(file_name), "%s_FILE", name);
    path = getenv(file_name);
    if (v != NULL && v[0] != '\0' && path != NULL)
        return sd_err_set(err, SD_ERR_CONFIG, "%s and %s are both set: set one", name, file_name);
    if (path != NULL)
        return load_secret_file(&it, value, path, err);
    if (v == NULL || v[0] == '\0')
        return 0;
    *value = strdup(v);
    return *value != NULL ? 0 : sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
}

int sd_cfg_load(const struct sd_cfg_item *items, size_t n, void *dst, const char *file,
                struct sd_err *err)
{
    bool set[CFG_MAX_ITEMS] = {false};
    char acc[256];

    if (n > CFG_MAX_ITEMS)
        return sd_err_set(err, SD_ERR_INTERNAL, "too many config items (%zu)", n);
    for (size_t i = 0; i < n; i++) {
        if (items[i].def == NULL)
            continue;
        if (set_value(&items[i], dst, items[i].def, "default", err) < 0)
            return -1;
    }
    if (file != NULL && load_file(items, n, dst, file, set, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(items[i].name);
        const char *path = NULL;
        char name[128];
        if (items[i].type == SD_CFG_STRING) {
            snprintf(name, sizeof(name), "%s_FILE", items[i].name);
            path = getenv(name);
        }
        if (v != NULL && path != NULL)
            return sd_err_set(err, SD_ERR_CONFIG, "%s and %s are both set: set one", items[i].name,
                              name);
        if (path != NULL) {
            if (load_secret_file(&items[i], dst, path, err) < 0)
                return -1;
            set[i] = true;
            continue;
        }
        if (v == NULL)
            continue;
        if (set_value(&items[i], dst, v, "from the environment", err) < 0)
            return -1;
        set[i] = true;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].required && !set[i] && items[i].def == NULL) {
            accepted(&items[i], acc, sizeof(acc));
            return sd_err_set(err, SD_ERR_CONFIG, "%s is required and not set (accepted: %s)",
                              items[i].name, acc);
        }
    }
    return 0;
}

void sd_cfg_load_or_exit(const char *service, const struct sd_cfg_item *items, size_t n, void *dst)
{
    struct sd_err err = {0};
    const char *file = getenv("SIPDRAIN_CONFIG");

    if (file != NULL && file[0] == '\0')
        file = NULL;
    if (sd_cfg_load(items, n, dst, file, &err) < 0) {
        fprintf(stderr, "%s: configuration error: %s\n", service, err.text);
        sd_cfg_free(items, n, dst);
        exit(2);
    }
}

void sd_cfg_free(const struct sd_cfg_item *items, size_t n, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].type == SD_CFG_STRING) {
            char **field = (char **)((char *)dst + items[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

void sd_cfg_usage(const struct sd_cfg_item *items, size_t n, int fd)
{
    char acc[256], line[1024];

    for (size_t i = 0; i < n; i++) {
        int len;
        accepted(&items[i], acc, sizeof(acc));
        len = snprintf(line, sizeof(line), "  %-38s %s%s%s%s\n      %s\n", items[i].name, acc,
                       items[i].def ? ", default " : "", items[i].def ? items[i].def : "",
                       items[i].required ? ", required" : "", items[i].help ? items[i].help : "");
        if (len > 0 && write(fd, line, (size_t)len) < 0)
            return;
    }
    dprintf(fd, "  A text setting NAME can be read from a file instead: NAME_FILE=<path>\n"
                "      (Docker secrets, Kubernetes Secrets; the file's content, less its line"
                " end).\n");
}
