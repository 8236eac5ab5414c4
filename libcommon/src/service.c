/* service.c - see service.h. */
#include "sipdrain/service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/log.h"
#include "sipdrain/outbox.h"
#include "sipdrain/topic.h"

void sd_service_init(const char *service, const char *instance_var, char **instance,
                     const char *topic_prefix, int log_level, char *source, size_t size)
{
    struct sd_err err = {0};
    char host[256];
    int max = SD_OUTBOX_OWNER_MAX - (int)strlen(service) - 1;

    if (*instance == NULL || (*instance)[0] == '\0') {
        if (gethostname(host, sizeof(host)) < 0)
            snprintf(host, sizeof(host), "%s-0", service);
        host[sizeof(host) - 1] = '\0';
        free(*instance);
        *instance = strdup(host);
    }
    if (*instance == NULL || (int)strlen(*instance) > max ||
        strpbrk(*instance, " \t\"=/") != NULL) {
        fprintf(stderr, "%s: %s: must be 1-%d characters without spaces, quotes, '/' or '='\n",
                service, instance_var, max);
        exit(2);
    }
    if (sd_topic_set_prefix(topic_prefix, &err) < 0) {
        fprintf(stderr, "%s: SIPDRAIN_TOPIC_PREFIX: %s\n", service, err.text);
        exit(2);
    }
    sd_log_init(service, *instance, (enum sd_log_level)log_level);
    snprintf(source, size, "%s/%s", service, *instance);
    sd_outbox_set_owner(source);
}

static int stop_budget_s, stop_rc;

static void *stop_watchdog(void *arg)
{
    (void)arg;
    sleep((unsigned)stop_budget_s);
    sd_log_warn("the stop took too long: exiting now (events not yet in Kafka stay in the"
                " outbox for the next start)",
                "budget_s=%d exit=%d", stop_budget_s, stop_rc);
    _exit(stop_rc);
    return NULL;
}

void sd_service_stop_within(int budget_s, int rc)
{
    pthread_t t;
    pthread_attr_t a;

    stop_budget_s = budget_s;
    stop_rc = rc;
    if (pthread_attr_init(&a) != 0)
        return;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, stop_watchdog, NULL) != 0)
        sd_log_warn("no stop watchdog: the stop may wait for Kafka", "%s", "");
    pthread_attr_destroy(&a);
}
