/* kafka_acl.h - who may do what on Kafka: the least-privilege ACL table
 * (issue #15), one place for sipdrain-kafka-init, the tests and the docs.
 *
 * Kafka runs with the StandardAuthorizer and no ACL means no access, so a
 * program can only read and write what a grant below names. Each program
 * logs in as its own SCRAM user:
 *
 *   User:sipdrain-edge          sip-edge
 *   User:sipdrain-agent-state   agent-state
 *   User:sipdrain-orchestrator  drain-orchestrator
 *   User:sipdrain-operator      drainctl (people and their scripts)
 *   User:sipdrain-desktop       agent desktops (agent commands in, events out)
 *
 * Topic and group names get the topic prefix (SIPDRAIN_TOPIC_PREFIX) in
 * front, so one broker can hold several environments each with its own
 * ACLs. A grant is LITERAL (that one name) unless it is marked prefixed
 * (every name starting with it: the edges' groups "sip-edge.<edge id>").
 * WRITE and READ imply DESCRIBE; since Kafka 3.0 WRITE on a topic also
 * allows the idempotent producer.
 */
#ifndef SIPDRAIN_KAFKA_ACL_H
#define SIPDRAIN_KAFKA_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "sipdrain/err.h"

/* SD_KAFKA_CLUSTER: the cluster itself (Kafka names it "kafka-cluster");
 * no topic prefix applies, and one grant serves every prefix. */
enum sd_kafka_resource { SD_KAFKA_TOPIC, SD_KAFKA_GROUP, SD_KAFKA_CLUSTER };
/* DESCRIBE: a topic's metadata (partitions, leaders), not its messages;
 * DESCRIBE_CONFIGS: configs (a broker's broker.rack), not to change them. */
enum sd_kafka_operation {
    SD_KAFKA_READ,
    SD_KAFKA_WRITE,
    SD_KAFKA_DESCRIBE,
    SD_KAFKA_DESCRIBE_CONFIGS
};

struct sd_kafka_grant {
    const char *principal; /* "User:sipdrain-edge" */
    enum sd_kafka_resource resource;
    const char *name; /* without the topic prefix */
    bool prefixed;
    enum sd_kafka_operation operation;
};

/* The table; *n gets its length. */
const struct sd_kafka_grant *sd_kafka_grants(size_t *n);

/* The topics of DESIGN.md §2 and the dead-letter topic, without prefix. */
const char *const *sd_kafka_topic_names(size_t *n);

/* Creates the topics that are missing (partitions each, replication) and
 * every grant of the table, for prefix ("" for none): both idempotent.
 * Needs a client allowed to create topics and ACLs (a super user). */
int sd_kafka_init(const char *brokers, const char *prefix, int partitions, int replication,
                  int timeout_ms, struct sd_err *err) SD_MUST_CHECK;

/* Only the grants of the table, for prefix (the topics may come later). */
int sd_kafka_acls_create(const char *brokers, const char *prefix, int timeout_ms,
                         struct sd_err *err) SD_MUST_CHECK;

/* Calls fn for every ACL the cluster holds on a resource whose name starts
 * with prefix (all of them for ""), as Kafka lists them. */
typedef void sd_kafka_acl_fn(const char *principal, const char *resource, const char *pattern,
                             const char *name, const char *operation, const char *permission,
                             void *arg);
int sd_kafka_acls_list(const char *brokers, const char *prefix, int timeout_ms, sd_kafka_acl_fn *fn,
                       void *arg, struct sd_err *err) SD_MUST_CHECK;

#endif
