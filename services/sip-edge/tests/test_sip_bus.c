/* test_sip_bus - build/bin/sip-edge's Kafka consumers against the real
 * broker of tests/scripts: an edge started right after its topics were
 * created (or a moment before one of them was) has every partition of
 * sipdrain.edge.control and sipdrain.agent.events within seconds.
 *
 * "Has every partition" is checked from outside, on what the edge did:
 * one record is put on each partition of both topics, and the edge's
 * consumer group must commit an offset past it on all of them (the edge
 * stores an offset only once it has handled the record; records of
 * another edge and agent events it has no use for are handled by being
 * skipped). A partition the edge was never assigned keeps no offset. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "edge_harness.h"
#include "sipdrain/kafka.h"
#include "sipdrain/kafka_acl.h"
#include "support.h"

#define PARTITIONS    6     /* sdt_prefix_create's */
#define ASSIGNED_MS   10000 /* issue #12: every partition within 10 s */
#define BASE_CONTROL  "sipdrain.edge.control"
#define BASE_AGENT_EV "sipdrain.agent.events"

/* One CloudEvent of type on every partition of topic (explicit
 * partitions: keys would leave some empty), each delivered. */
static void one_per_partition(const char *topic, const char *key, const char *type, json_t *data)
{
    char errstr[512];
    rd_kafka_conf_t *conf = sdt_kafka_conf();
    rd_kafka_t *rk;
    struct sd_event ev;
    struct sd_err err = {0};
    size_t len;
    char *text;

    cr_assert_eq(sd_event_init(&ev, "test/producer", type, data, &err), 0, "%s", err.text);
    text = sd_event_encode(&ev, &len, &err);
    cr_assert_not_null(text, "%s", err.text);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    for (int32_t p = 0; p < PARTITIONS; p++)
        cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE(text, len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR, "produce to %s[%d]", topic, p);
    cr_assert_eq(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR, "%s not delivered", topic);
    rd_kafka_destroy(rk);
    free(text);
    sd_event_clear(&ev);
}

/* A handle on the edge's consumer group that only reads its committed
 * offsets (it never joins the group). */
static rd_kafka_t *group_reader(const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = sdt_kafka_conf();
    rd_kafka_t *rk;

    cr_assert_eq(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)),
                 RD_KAFKA_CONF_OK, "%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    return rk;
}

/* The partitions of topics[] on which the group committed an offset past
 * the first record; their names in which ("topic[p] ..."). */
static int consumed(rd_kafka_t *rk, const char *const *topics, size_t n, char *which, size_t size)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS * 2);
    int got = 0;
    size_t used = 0;

    which[0] = '\0';
    for (size_t t = 0; t < n; t++)
        for (int32_t p = 0; p < PARTITIONS; p++)
            rd_kafka_topic_partition_list_add(parts, topics[t], p);
    if (rd_kafka_committed(rk, parts, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].err || parts->elems[i].offset < 1)
                continue;
            got++;
            used += (size_t)snprintf(which + used, used < size ? size - used : 0, "%s[%d] ",
                                     parts->elems[i].topic, (int)parts->elems[i].partition);
            if (used >= size)
                used = size - 1;
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return got;
}

/* Puts a record on every partition of the edge's two topics and waits
 * until the edge has handled all of them, at the latest ASSIGNED_MS after
 * since_ms (sd_mono_ms()). */
static void every_partition_handled(struct edge_env *e, struct edge_proc *p, int64_t since_ms)
{
    const char *topics[2] = {e->control, e->agent_events};
    char group[160], which[4096];
    rd_kafka_t *rk;
    int got;

    /* another edge's command: edge-2a skips it; an agent going Ready: the
     * edge has nothing to do for it */
    one_per_partition(e->control, "edge-other", "edge.resume",
                      json_pack("{s:s, s:s}", "edge", "edge-other", "site", "site2"));
    one_per_partition(
        e->agent_events, "agent-x", "EventAgentReady",
        json_pack("{s:s, s:s, s:s}", "agent_id", "agent-x", "dn", "2999", "site", "site2"));
    snprintf(group, sizeof(group), "%ssip-edge.%s", e->prefix, p->id);
    rk = group_reader(group);
    while ((got = consumed(rk, topics, 2, which, sizeof(which))) < 2 * PARTITIONS) {
        cr_assert_lt(sd_mono_ms() - since_ms, ASSIGNED_MS,
                     "after %d ms the edge has handled the records of only %d of the %d"
                     " partitions of %s and %s: %s(%s)",
                     ASSIGNED_MS, got, 2 * PARTITIONS, e->control, e->agent_events, which, p->log);
        usleep(200000);
    }
    rd_kafka_destroy(rk);
}

Test(sip_bus, an_edge_started_right_after_its_topics_were_created_gets_every_partition,
     .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    int64_t created_ms;

    env_setup(&e); /* the database, then the topics: created last */
    created_ms = sd_mono_ms();
    edge_start(&e, &p, "edge-2a", NULL);
    every_partition_handled(&e, &p, created_ms);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* The same race, made certain: sipdrain.agent.events is created half a
 * second after the edge subscribed to it (its first look at the broker
 * does not find it). */
Test(sip_bus, a_topic_created_just_after_the_edge_subscribed_is_consumed_within_seconds,
     .timeout = 120)
{
    static const char *const bases[] = {
        "sipdrain.drain.commands", "sipdrain.drain.events", BASE_CONTROL,
        "sipdrain.edge.status",    "sipdrain.call.events",  "sipdrain.agent.commands",
        "sipdrain.deadletter"};
    struct edge_env e;
    struct edge_proc p;
    struct sd_err err = {0};
    char names[7][160], id[SD_EVENT_ID_LEN + 1];
    const char *topics[7], *late[1];
    int64_t created_ms;

    /* env_setup without the agent events topic */
    memset(&e, 0, sizeof(e));
    sdt_db_create(e.dsn, sizeof(e.dsn));
    sdt_dsn_as(e.dsn, "sipdrain_edge", e.edge_dsn, sizeof(e.edge_dsn));
    sdt_pg_run(e.dsn, "INSERT INTO sites (site_id, peer) VALUES ('site1', 'site2'),"
                      " ('site2', 'site1')");
    sd_uuid_v4(id);
    snprintf(e.prefix, sizeof(e.prefix), "t.%.8s%.4s.", id, id + 9);
    for (size_t i = 0; i < 7; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%s", e.prefix, bases[i]);
        topics[i] = names[i];
    }
    cr_assert_eq(sd_kafka_topics_create(sdt_brokers(), topics, 7, PARTITIONS, 30000, &err), 0, "%s",
                 err.text);
    /* the edge's grants, also on the topic not made yet */
    cr_assert_eq(sd_kafka_acls_create(sdt_brokers(), e.prefix, 30000, &err), 0, "%s", err.text);
    snprintf(e.control, sizeof(e.control), "%s" BASE_CONTROL, e.prefix);
    snprintf(e.status, sizeof(e.status), "%ssipdrain.edge.status", e.prefix);
    snprintf(e.agent_events, sizeof(e.agent_events), "%s" BASE_AGENT_EV, e.prefix);

    edge_start(&e, &p, "edge-2a", NULL); /* has edge.control's partitions */
    created_ms = sd_mono_ms();
    while (!sdt_file_has(p.log, "Subscribed topic not available")) {
        cr_assert_lt(sd_mono_ms() - created_ms, 5000,
                     "the edge found %s before it was created? (%s)", e.agent_events, p.log);
        usleep(50000);
    }
    usleep(500000);
    late[0] = e.agent_events;
    cr_assert_eq(sd_kafka_topics_create(sdt_brokers(), late, 1, PARTITIONS, 30000, &err), 0, "%s",
                 err.text);
    created_ms = sd_mono_ms();
    every_partition_handled(&e, &p, created_ms);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}
