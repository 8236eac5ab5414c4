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

/* The last part of a stop: the service has said "stopped" and now closes
 * its Kafka clients and PostgreSQL sessions. librdkafka can hold that for
 * minutes when the broker is gone (a consumer leaving its group, a producer
 * flushing, a broker thread inside getaddrinfo for a name that no longer
 * resolves: compose stopping Kafka first held edges for 120 s). After
 * this call the process exits with rc at the latest budget_s seconds later,
 * whatever is still open, with a log line saying so. Nothing is lost: every
 * event not yet in Kafka is still an outbox row in PostgreSQL, published by
 * the next start. Call once, just before the clean-up. */
void sd_service_stop_within(int budget_s, int rc);

#endif
