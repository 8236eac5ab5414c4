/* test_kafka_auth.c - Kafka's identities and ACLs (issue #15 point 1),
 * against the real broker of tests/scripts/kafka-up.sh: SASL/SCRAM with the
 * StandardAuthorizer, and the ACL table sd_kafka_init made for a fresh
 * prefix. Every produce and read below is tried for real and its outcome
 * comes from the broker. The expected writers and readers are written out
 * here from the issue, not derived from the table in kafka_acl.c. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/kafka_acl.h"
#include "support.h"

#define WAIT_MS 15000

static const char *const users[] = {"sipdrain-edge", "sipdrain-agent-state",
                                    "sipdrain-orchestrator", "sipdrain-operator",
                                    "sipdrain-desktop"};
#define N_USERS (sizeof(users) / sizeof(users[0]))

/* Who may write each topic (issue #15: "only the operator principal writes
 * drain.commands; only the orchestrator and agent-state write edge.control;
 * only edges write edge.status and call.events; only agent-state writes
 * agent.events"; the rest from DESIGN.md §2's producers). */
static const struct {
    const char *topic;
    const char *writers;
} writers[] = {
    {"sipdrain.drain.commands", "sipdrain-operator"},
    {"sipdrain.drain.events", "sipdrain-orchestrator"},
    {"sipdrain.edge.control", "sipdrain-orchestrator sipdrain-agent-state"},
    {"sipdrain.edge.status", "sipdrain-edge"},
    {"sipdrain.call.events", "sipdrain-edge"},
    {"sipdrain.agent.commands", "sipdrain-orchestrator sipdrain-desktop"},
    {"sipdrain.agent.events", "sipdrain-agent-state"},
    {"sipdrain.deadletter", "sipdrain-edge sipdrain-agent-state sipdrain-orchestrator"},
};

struct outcome {
    rd_kafka_resp_err_t delivery; /* -1 (none yet), 0 delivered, else why not */
    rd_kafka_resp_err_t error;    /* the last client-wide error (error_cb) */
    bool auth_failed;             /* error_cb said _AUTHENTICATION at least once */
};

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ((struct outcome *)opaque)->delivery = m->err;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)reason;
    ((struct outcome *)opaque)->error = (rd_kafka_resp_err_t)err;
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        ((struct outcome *)opaque)->auth_failed = true;
}

/* Produces one message to topic with conf (taken), waiting for its
 * delivery report or timeout_ms. */
static struct outcome produce_with(rd_kafka_conf_t *conf, const char *topic, int timeout_ms)
{
    struct outcome o = {(rd_kafka_resp_err_t)-1, RD_KAFKA_RESP_ERR_NO_ERROR, false};
    char errstr[256], timeout[32];
    rd_kafka_t *rk;

    snprintf(timeout, sizeof(timeout), "%d", timeout_ms);
    cr_assert_eq(rd_kafka_conf_set(conf, "message.timeout.ms", timeout, errstr, sizeof(errstr)),
                 RD_KAFKA_CONF_OK, "%s", errstr);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, &o);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE("x", 1),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_flush(rk, timeout_ms + 5000);
    rd_kafka_poll(rk, 0);
    rd_kafka_destroy(rk);
    return o;
}

/* As user (kafka-up.sh's login). */
static struct outcome produce_as(const char *user, const char *topic)
{
    rd_kafka_conf_t *conf;

    sdt_kafka_as(user);
    conf = sdt_kafka_conf();
    sdt_kafka_as(NULL);
    return produce_with(conf, topic, WAIT_MS);
}

static bool listed(const char *list, const char *user)
{
    size_t n = strlen(user);

    for (const char *p = strstr(list, user); p != NULL; p = strstr(p + 1, user)) {
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    }
    return false;
}

Test(kafka_auth, a_client_without_credentials_or_with_a_wrong_password_cannot_produce,
     .timeout = 120)
{
    char prefix[64], topic[160], path[] = "/tmp/sipdrain-badpw-XXXXXX", errstr[256];
    rd_kafka_conf_t *conf;
    struct outcome o;
    FILE *f;
    int fd;

    sdt_prefix_create(prefix, sizeof(prefix));
    snprintf(topic, sizeof(topic), "%ssipdrain.drain.commands", prefix);

    /* PLAINTEXT: the broker's listener takes only SASL */
    conf = rd_kafka_conf_new();
    cr_assert_eq(
        rd_kafka_conf_set(conf, "bootstrap.servers", sdt_brokers(), errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    o = produce_with(conf, topic, 5000);
    cr_expect_neq(o.delivery, RD_KAFKA_RESP_ERR_NO_ERROR, "delivered without credentials");
    fprintf(stderr, "kafka_auth: no credentials: %s (client error: %s)\n",
            rd_kafka_err2str(o.delivery), rd_kafka_err2str(o.error));

    /* the operator's name with a wrong password */
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    f = fdopen(fd, "w");
    fprintf(f, "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
               "sasl.username=sipdrain-operator\nsasl.password=not-the-password\n");
    fclose(f);
    {
        struct sd_err err = {0};
        cr_assert_eq(sd_kafka_properties_load(path, &err), 0, "%s", err.text);
        conf = sdt_kafka_conf();
        sdt_kafka_as(NULL);
    }
    unlink(path);
    o = produce_with(conf, topic, 5000);
    cr_expect_neq(o.delivery, RD_KAFKA_RESP_ERR_NO_ERROR, "delivered with a wrong password");
    cr_expect(o.auth_failed, "no authentication failure reported (last client error: %s)",
              rd_kafka_err2str(o.error));
    fprintf(stderr, "kafka_auth: wrong password: %s (authentication failed: %s)\n",
            rd_kafka_err2str(o.delivery), o.auth_failed ? "yes" : "no");

    cr_expect_eq(sdt_topic_count(topic), 0, "something reached %s", topic);
}

/* Every program's login against every topic: the broker lets exactly the
 * writers above through and answers TOPIC_AUTHORIZATION_FAILED otherwise. */
Test(kafka_auth, each_topic_takes_writes_only_from_its_producers, .timeout = 300)
{
    char prefix[64], topic[160];

    sdt_prefix_create(prefix, sizeof(prefix));
    for (size_t t = 0; t < sizeof(writers) / sizeof(writers[0]); t++) {
        long allowed = 0;

        snprintf(topic, sizeof(topic), "%s%s", prefix, writers[t].topic);
        for (size_t u = 0; u < N_USERS; u++) {
            bool may = listed(writers[t].writers, users[u]);
            struct outcome o = produce_as(users[u], topic);

            fprintf(stderr, "kafka_auth: %-22s -> %-24s %s\n", users[u], writers[t].topic,
                    o.delivery == RD_KAFKA_RESP_ERR_NO_ERROR ? "delivered"
                                                             : rd_kafka_err2name(o.delivery));
            if (may) {
                cr_expect_eq(o.delivery, RD_KAFKA_RESP_ERR_NO_ERROR, "%s may write %s: %s",
                             users[u], writers[t].topic, rd_kafka_err2str(o.delivery));
                allowed++;
            } else {
                cr_expect_eq(o.delivery, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                             "%s must not write %s: %s", users[u], writers[t].topic,
                             rd_kafka_err2str(o.delivery));
            }
        }
        cr_expect_eq(sdt_topic_count(topic), allowed, "%s holds what its writers sent", topic);
    }
}

/* Reads topic as user in group; 1 when a message came, 0 when the broker
 * refused (*why gets the error), -1 when neither happened in time. */
static int read_as(const char *user, const char *topic, const char *group, rd_kafka_resp_err_t *why)
{
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    char errstr[256];
    rd_kafka_t *rk;
    int got = -1;

    sdt_kafka_as(user);
    conf = sdt_kafka_conf();
    sdt_kafka_as(NULL);
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(rk, subs), 0);
    rd_kafka_topic_partition_list_destroy(subs);
    while (got < 0 && sd_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
            m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
            *why = m->err;
            got = 0;
        } else if (!m->err) {
            got = 1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}

/* Each reads only what it consumes: the orchestrator its drain commands,
 * an edge its control topic; an edge cannot read the drain commands, a
 * desktop the call events, the operator the agent events. */
Test(kafka_auth, each_program_reads_only_what_it_consumes, .timeout = 180)
{
    static const struct {
        const char *user, *topic, *group;
        int want;
    } cases[] = {
        {"sipdrain-orchestrator", "sipdrain.drain.commands", "drain-orchestrator", 1},
        {"sipdrain-edge", "sipdrain.edge.control", "sip-edge.edge-9z", 1},
        {"sipdrain-edge", "sipdrain.drain.commands", "sip-edge.edge-9z", 0},
        {"sipdrain-desktop", "sipdrain.call.events", "desktop.d1", 0},
        {"sipdrain-operator", "sipdrain.agent.events", "drainctl-1", 0},
        {"sipdrain-agent-state", "sipdrain.agent.commands", "drain-orchestrator", 0},
    };
    char prefix[64], topic[160], group[160];
    const char *value = "x";
    size_t len = 1;

    sdt_prefix_create(prefix, sizeof(prefix));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rd_kafka_resp_err_t why = RD_KAFKA_RESP_ERR_NO_ERROR;
        int got;

        snprintf(topic, sizeof(topic), "%s%s", prefix, cases[i].topic);
        snprintf(group, sizeof(group), "%s%s", prefix, cases[i].group);
        sdt_produce_raw(topic, (const void *const *)&value, &len, 1); /* as the admin */
        got = read_as(cases[i].user, topic, group, &why);
        fprintf(stderr, "kafka_auth: %-22s reads %-24s as %-20s %s\n", cases[i].user,
                cases[i].topic, cases[i].group,
                got == 1   ? "read"
                : got == 0 ? rd_kafka_err2name(why)
                           : "no answer");
        cr_expect_eq(got, cases[i].want, "%s reading %s (group %s): %d", cases[i].user,
                     cases[i].topic, cases[i].group, got);
    }
}
