/* topic.h - the Kafka topics of DESIGN.md §2, by one name everywhere.
 *
 * SIPDRAIN_TOPIC_PREFIX (default empty) is put in front of every topic and
 * consumer group name on the wire, so several environments (or every
 * integration test) can share one broker: with prefix "t.ab12." the agent
 * commands are read from "t.ab12.sipdrain.agent.commands". Set it once at
 * start-up, before any sd_topic() call; afterwards sd_topic() only reads.
 */
#ifndef SIPDRAIN_TOPIC_H
#define SIPDRAIN_TOPIC_H

#include "sipdrain/err.h"

#define SD_TOPIC_DRAIN_COMMANDS "sipdrain.drain.commands"
#define SD_TOPIC_DRAIN_EVENTS   "sipdrain.drain.events"
#define SD_TOPIC_EDGE_CONTROL   "sipdrain.edge.control"
#define SD_TOPIC_EDGE_STATUS    "sipdrain.edge.status"
#define SD_TOPIC_CALL_EVENTS    "sipdrain.call.events"
#define SD_TOPIC_AGENT_COMMANDS "sipdrain.agent.commands"
#define SD_TOPIC_AGENT_EVENTS   "sipdrain.agent.events"
/* SD_TOPIC_DEADLETTER ("sipdrain.deadletter") is in kafka.h. */

#define SD_TOPIC_PREFIX_MAX 64

/* prefix: letters, digits, '.', '_', '-', at most SD_TOPIC_PREFIX_MAX chars. */
int sd_topic_set_prefix(const char *prefix, struct sd_err *err) SD_MUST_CHECK;
const char *sd_topic_prefix(void);
/* The wire name of a topic (or consumer group) name: prefix + name. The
 * returned string lives until the next sd_topic_set_prefix(). */
const char *sd_topic(const char *name);

#endif
