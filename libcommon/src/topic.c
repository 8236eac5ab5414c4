/* topic.c - see topic.h. */
#include "sipdrain/topic.h"

#include <stdio.h>
#include <string.h>

#include "sipdrain/kafka.h"

#define TOPIC_NAME_MAX 128
#define TOPIC_SLOTS    16

/* Every name ever asked for, with its prefixed form: a handful of topics
 * and groups per process, filled at start-up. */
static struct {
    char name[TOPIC_NAME_MAX], wire[SD_TOPIC_PREFIX_MAX + TOPIC_NAME_MAX];
} slots[TOPIC_SLOTS];
static size_t nslots;
static char prefix_text[SD_TOPIC_PREFIX_MAX + 1];

int sd_topic_set_prefix(const char *prefix, struct sd_err *err)
{
    size_t len = prefix ? strlen(prefix) : 0;

    if (len > SD_TOPIC_PREFIX_MAX)
        return sd_err_set(err, SD_ERR_CONFIG, "topic prefix longer than %d characters",
                          SD_TOPIC_PREFIX_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = prefix[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return sd_err_set(err, SD_ERR_CONFIG,
                              "topic prefix may hold only letters, digits, '.', '_' and '-'");
    }
    memcpy(prefix_text, prefix ? prefix : "", len);
    prefix_text[len] = '\0';
    nslots = 0;
    return 0;
}

const char *sd_topic_prefix(void)
{
    return prefix_text;
}

const char *sd_topic(const char *name)
{
    size_t i;

    if (prefix_text[0] == '\0' || strlen(name) >= TOPIC_NAME_MAX)
        return name;
    for (i = 0; i < nslots; i++) {
        if (strcmp(slots[i].name, name) == 0)
            return slots[i].wire;
    }
    if (nslots == TOPIC_SLOTS)
        return name; /* cannot happen with the topics of DESIGN.md */
    snprintf(slots[nslots].name, sizeof(slots[nslots].name), "%s", name);
    snprintf(slots[nslots].wire, sizeof(slots[nslots].wire), "%s%s", prefix_text, name);
    return slots[nslots++].wire;
}
