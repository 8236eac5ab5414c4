/* service.h - what every sipdrain service does the same way at start-up. */
#ifndef SIPDRAIN_SERVICE_H
#define SIPDRAIN_SERVICE_H

#include <stddef.h>

/* A service instance's identity and its shared settings:
 *   *instance (the variable instance_var, SIPDRAIN_INSTANCE_ID or for an
 *   edge SIPDRAIN_EDGE_ID; may be NULL or ""): defaults to the host
 *   name; must be 1..(SD_OUTBOX_OWNER_MAX - strlen(service) - 1) characters
 *   without spaces, quotes or '=', since "service/instance" names the
 *   instance's outbox rows;
 *   topic_prefix (SIPDRAIN_TOPIC_PREFIX, may be NULL).
 * Exits 2 with a line naming the variable when one is invalid. Then starts
 * the log at log_level, sets the outbox owner and writes "service/instance"
 * to source. *instance is replaced by a malloc'ed string when defaulted. */
void sd_service_init(const char *service, const char *instance_var, char **instance,
                     const char *topic_prefix, int log_level, char *source, size_t size);

#endif
