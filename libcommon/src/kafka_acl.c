/* kafka_acl.c - the least-privilege ACL table and the admin requests that
 * make it (topics, ACLs) and list it. See kafka_acl.h. */
#include "sipdrain/kafka_acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "sipdrain/kafka.h"
#include "sipdrain/event.h"
#include "sipdrain/topic.h"

#define EDGE     "User:sipdrain-edge"
#define AGENTS   "User:sipdrain-agent-state"
#define ORCH     "User:sipdrain-orchestrator"
#define OPERATOR "User:sipdrain-operator"
#define DESKTOP  "User:sipdrain-desktop"

#define T  SD_KAFKA_TOPIC
#define G  SD_KAFKA_GROUP
#define C  SD_KAFKA_CLUSTER
#define RD SD_KAFKA_READ
#define WR SD_KAFKA_WRITE
#define DS SD_KAFKA_DESCRIBE
#define DC SD_KAFKA_DESCRIBE_CONFIGS

/* What each program consumes and produces, from the code (DESIGN.md §2). */
static const struct sd_kafka_grant grants[] = {
    /* sip-edge: its control and the agent events in; status, calls and
     * dead letters out. One consumer group per edge: "sip-edge.<edge id>". */
    {EDGE, T, SD_TOPIC_EDGE_CONTROL, false, RD},
    {EDGE, T, SD_TOPIC_AGENT_EVENTS, false, RD},
    {EDGE, G, "sip-edge.", true, RD},
    {EDGE, T, SD_TOPIC_EDGE_STATUS, false, WR},
    {EDGE, T, SD_TOPIC_CALL_EVENTS, false, WR},
    {EDGE, T, SD_TOPIC_DEADLETTER, false, WR},
    /* agent-state: agent commands and call events in; agent events and
     * call.originate (edge.control) out. */
    {AGENTS, T, SD_TOPIC_AGENT_COMMANDS, false, RD},
    {AGENTS, T, SD_TOPIC_CALL_EVENTS, false, RD},
    {AGENTS, G, "agent-state", false, RD},
    {AGENTS, T, SD_TOPIC_AGENT_EVENTS, false, WR},
    {AGENTS, T, SD_TOPIC_EDGE_CONTROL, false, WR},
    {AGENTS, T, SD_TOPIC_DEADLETTER, false, WR},
    /* drain-orchestrator: drain commands in (the rest it reads from
     * PostgreSQL); drain events, edge control and logouts out. */
    {ORCH, T, SD_TOPIC_DRAIN_COMMANDS, false, RD},
    {ORCH, G, "drain-orchestrator", false, RD},
    {ORCH, T, SD_TOPIC_DRAIN_EVENTS, false, WR},
    {ORCH, T, SD_TOPIC_EDGE_CONTROL, false, WR},
    {ORCH, T, SD_TOPIC_AGENT_COMMANDS, false, WR},
    {ORCH, T, SD_TOPIC_DEADLETTER, false, WR},
    /* drainctl: the only writer of drain commands; follows the drain and
     * edge events (assigned partitions, groups "drainctl-<pid>" never
     * joined) and may read the dead letters. */
    {OPERATOR, T, SD_TOPIC_DRAIN_COMMANDS, false, WR},
    {OPERATOR, T, SD_TOPIC_DRAIN_EVENTS, false, RD},
    {OPERATOR, T, SD_TOPIC_EDGE_STATUS, false, RD},
    {OPERATOR, T, SD_TOPIC_DEADLETTER, false, RD},
    {OPERATOR, G, "drainctl-", true, RD},
    /* drainctl stores (issue #18): which broker leads which partition of
     * our topics, and each broker's rack - metadata and configs, no
     * message, no change. */
    {OPERATOR, T, "sipdrain.", true, DS},
    {OPERATOR, T, "__consumer_offsets", false, DS},
    {OPERATOR, C, "kafka-cluster", false, DC},
    /* ... and the KRaft quorum's leader (DescribeQuorum: DESCRIBE on the
     * cluster; nothing it can change) */
    {OPERATOR, C, "kafka-cluster", false, DS},
    /* agent desktops: their commands out, agent events in. */
    {DESKTOP, T, SD_TOPIC_AGENT_COMMANDS, false, WR},
    {DESKTOP, T, SD_TOPIC_AGENT_EVENTS, false, RD},
    {DESKTOP, G, "desktop.", true, RD},
};

static const char *const topic_names[] = {
    SD_TOPIC_DRAIN_COMMANDS, SD_TOPIC_DRAIN_EVENTS,   SD_TOPIC_EDGE_CONTROL, SD_TOPIC_EDGE_STATUS,
    SD_TOPIC_CALL_EVENTS,    SD_TOPIC_AGENT_COMMANDS, SD_TOPIC_AGENT_EVENTS, SD_TOPIC_DEADLETTER,
};

#define N_GRANTS (sizeof(grants) / sizeof(grants[0]))
#define N_TOPICS (sizeof(topic_names) / sizeof(topic_names[0]))

const struct sd_kafka_grant *sd_kafka_grants(size_t *n)
{
    *n = N_GRANTS;
    return grants;
}

const char *const *sd_kafka_topic_names(size_t *n)
{
    *n = N_TOPICS;
    return topic_names;
}

/* Waits for the one result event of an admin request on q. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, const char *what, int timeout_ms,
                                    struct sd_err *err)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);

    if (ev == NULL) {
        sd_err_set(err, SD_ERR_TRANSIENT, "%s: no answer in %d ms", what, timeout_ms);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        sd_err_set(err, SD_ERR_TRANSIENT, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* The cluster and Kafka's own topics have one name for every prefix. */
static bool unprefixed(const struct sd_kafka_grant *g)
{
    return g->resource == SD_KAFKA_CLUSTER || strncmp(g->name, "__", 2) == 0;
}

static int acls_request(rd_kafka_t *rk, const char *prefix, int timeout_ms, struct sd_err *err)
{
    rd_kafka_AclBinding_t *b[N_GRANTS] = {0};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    char name[SD_TOPIC_PREFIX_MAX + 128], errstr[256];
    int rc = -1;

    for (size_t i = 0; i < N_GRANTS; i++) {
        const struct sd_kafka_grant *g = &grants[i];

        snprintf(name, sizeof(name), "%s%s", unprefixed(g) ? "" : prefix, g->name);
        b[i] = rd_kafka_AclBinding_new(
            g->resource == SD_KAFKA_TOPIC   ? RD_KAFKA_RESOURCE_TOPIC
            : g->resource == SD_KAFKA_GROUP ? RD_KAFKA_RESOURCE_GROUP
                                            : RD_KAFKA_RESOURCE_BROKER,
            name,
            g->prefixed ? RD_KAFKA_RESOURCE_PATTERN_PREFIXED : RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            g->principal, "*",
            g->operation == SD_KAFKA_READ       ? RD_KAFKA_ACL_OPERATION_READ
            : g->operation == SD_KAFKA_WRITE    ? RD_KAFKA_ACL_OPERATION_WRITE
            : g->operation == SD_KAFKA_DESCRIBE ? RD_KAFKA_ACL_OPERATION_DESCRIBE
                                                : RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
            RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr, sizeof(errstr));
        if (b[i] == NULL) {
            sd_err_set(err, SD_ERR_INVALID, "acl %s on %s: %s", g->principal, name, errstr);
            goto out;
        }
    }
    rd_kafka_CreateAcls(rk, b, N_GRANTS, NULL, q);
    if ((ev = admin_wait(q, "create acls", timeout_ms, err)) == NULL)
        goto out;
    {
        size_t cnt = 0;
        const rd_kafka_acl_result_t **res =
            rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            const rd_kafka_error_t *e = rd_kafka_acl_result_error(res[i]);
            if (e != NULL) {
                sd_err_set(err, SD_ERR_TRANSIENT, "create acl %zu (%s): %s", i,
                           i < N_GRANTS ? grants[i].principal : "?", rd_kafka_error_string(e));
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; i < N_GRANTS; i++) {
        if (b[i] != NULL)
            rd_kafka_AclBinding_destroy(b[i]);
    }
    return rc;
}

static void count_acl(const char *principal, const char *resource, const char *pattern,
                      const char *name, const char *operation, const char *permission, void *arg)
{
    (void)principal, (void)resource, (void)pattern, (void)name, (void)operation, (void)permission;
    ++*(size_t *)arg;
}

int sd_kafka_init(const char *brokers, const char *prefix, int partitions, int replication,
                  int timeout_ms, struct sd_err *err)
{
    char names[N_TOPICS][SD_TOPIC_PREFIX_MAX + 64];
    const char *topics[N_TOPICS];

    for (size_t i = 0; i < N_TOPICS; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%s", prefix, topic_names[i]);
        topics[i] = names[i];
    }
    if (sd_kafka_topics_create_replicated(brokers, topics, N_TOPICS, partitions, replication,
                                          timeout_ms, err) < 0)
        return -1;
    return sd_kafka_acls_create(brokers, prefix, timeout_ms, err);
}

int sd_kafka_acls_create(const char *brokers, const char *prefix, int timeout_ms,
                         struct sd_err *err)
{
    rd_kafka_t *rk;
    int rc;

    if ((rk = sd_kafka_admin_new(brokers, err)) == NULL)
        return -1;
    rc = acls_request(rk, prefix, timeout_ms, err);
    rd_kafka_destroy(rk);
    if (rc < 0)
        return -1;
    /* The broker applies new ACLs from the metadata log a moment after it
     * answered: wait until it lists them, so a program started right after
     * is not refused. */
    for (int64_t until = sd_mono_ms() + timeout_ms;;) {
        size_t seen = 0;
        if (sd_kafka_acls_list(brokers, prefix, timeout_ms, count_acl, &seen, err) < 0)
            return -1;
        if (seen >= N_GRANTS)
            return 0;
        if (sd_mono_ms() >= until)
            return sd_err_set(err, SD_ERR_TRANSIENT, "acls: %zu of %zu listed after %d ms", seen,
                              (size_t)N_GRANTS, timeout_ms);
        usleep(100 * 1000);
    }
}

int sd_kafka_acls_list(const char *brokers, const char *prefix, int timeout_ms, sd_kafka_acl_fn *fn,
                       void *arg, struct sd_err *err)
{
    rd_kafka_AclBindingFilter_t *filter;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_t *rk;
    char errstr[256];
    int rc = -1;

    if ((rk = sd_kafka_admin_new(brokers, err)) == NULL)
        return -1;
    filter = rd_kafka_AclBindingFilter_new(
        RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
        RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof(errstr));
    if (filter == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "acl filter: %s", errstr);
        goto out;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeAcls(rk, filter, NULL, q);
    if ((ev = admin_wait(q, "describe acls", timeout_ms, err)) == NULL)
        goto out;
    {
        size_t cnt = 0;
        const rd_kafka_AclBinding_t **acls =
            rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            const char *name = rd_kafka_AclBinding_name(acls[i]);
            /* the prefix's own, and the grants every prefix shares */
            if (strncmp(name, prefix, strlen(prefix)) != 0 &&
                rd_kafka_AclBinding_restype(acls[i]) != RD_KAFKA_RESOURCE_BROKER &&
                strcmp(name, "__consumer_offsets") != 0)
                continue;
            fn(rd_kafka_AclBinding_principal(acls[i]),
               rd_kafka_ResourceType_name(rd_kafka_AclBinding_restype(acls[i])),
               rd_kafka_ResourcePatternType_name(
                   rd_kafka_AclBinding_resource_pattern_type(acls[i])),
               name, rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(acls[i])),
               rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(acls[i])), arg);
        }
    }
    rc = 0;
out:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    if (filter != NULL)
        rd_kafka_AclBinding_destroy(filter);
    rd_kafka_destroy(rk);
    return rc;
}
