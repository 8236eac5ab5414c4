/* agent_load - the load generator of bench/agent_state.sh, and its peer.
 *
 *   agent_load load BROKERS PREFIX AGENTS N RATE
 *       logs AGENTS agents in (warm-up, not measured), then sends N commands
 *       (agent.ready / agent.not_ready in turn, agent i % AGENTS) to
 *       PREFIXsipdrain.agent.commands at RATE per second on a fixed schedule
 *       (0 = as fast as it can; at a fixed rate WARM_S seconds more are sent
 *       first, unmeasured), and reads PREFIXsipdrain.agent.events until
 *       every command is answered (matched by data.request_id). Prints one
 *       line: sent, answered, errors, commands/s (answered / (last answer -
 *       first send)) and command -> answer latency p50 / p99 / max in ms.
 *   agent_load echo BROKERS PREFIX
 *       the peer: answers every command straight from Kafka (consume,
 *       produce an EventAgentReady with its request_id), no database, no
 *       inbox, no outbox: what the broker alone gives for the same round trip.
 *       Runs until SIGTERM.
 *
 * One clock (this process's) for send and arrival times.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/log.h"
#include "sipdrain/topic.h"

#define TIMEOUT_MS 120000
#define WARM_S     2 /* unmeasured seconds at the start of a fixed-rate run */

struct pending {
    char id[SD_EVENT_ID_LEN + 1];
    int64_t sent_ms;
    int answered;
};

static struct pending *table;
static size_t table_size; /* a power of two, at least twice the commands */

static size_t slot_of(const char *id)
{
    uint64_t h = 1469598103934665603ULL;

    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)h & (table_size - 1);
}

static struct pending *lookup(const char *id, int insert)
{
    for (size_t i = slot_of(id);; i = (i + 1) & (table_size - 1)) {
        if (table[i].id[0] == '\0') {
            if (!insert)
                return NULL;
            memcpy(table[i].id, id, SD_EVENT_ID_LEN + 1);
            return &table[i];
        }
        if (strcmp(table[i].id, id) == 0)
            return &table[i];
    }
}

static rd_kafka_t *reader(const char *brokers, const char *topic, const char *group,
                          const char *reset)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    char errstr[256];
    rd_kafka_t *rk;

    struct sd_err err = {0};

    if (sd_kafka_conf_apply(conf, &err) < 0) {
        fprintf(stderr, "agent_load: %s\n", err.text);
        exit(2);
    }
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", reset, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "agent_load: %s\n", errstr);
        exit(1);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    return rk;
}

static void send_command(struct sd_kafka_producer *p, const char *topic, const char *agent,
                         const char *type, json_t *data, char *id)
{
    struct sd_err err = {0};
    struct sd_event ev;
    size_t len;
    char *text;

    json_object_set_new(data, "agent_id", json_string(agent));
    if (sd_event_init(&ev, "bench/agent-load", type, data, &err) < 0)
        exit(1);
    text = sd_event_encode(&ev, &len, &err);
    memcpy(id, ev.id, SD_EVENT_ID_LEN + 1);
    sd_event_clear(&ev);
    while (sd_kafka_produce(p, topic, agent, strlen(agent), text, len, NULL, 0, NULL, &err) < 0)
        sd_kafka_producer_poll(p);
    free(text);
    sd_kafka_producer_poll(p);
}

struct tally {
    long answered, errors;
    int64_t first_sent, last_answer;
    int64_t *lat;
};

/* Reads what is there (waiting at most wait_ms) and matches answers. */
static void collect(rd_kafka_t *rk, struct tally *t, int wait_ms)
{
    rd_kafka_message_t *m;

    while ((m = rd_kafka_consumer_poll(rk, wait_ms)) != NULL) {
        struct sd_event ev;
        struct sd_err err = {0};
        wait_ms = 0;
        if (!m->err && sd_event_parse(m->payload, m->len, &ev, &err) == 0) {
            const char *req = json_string_value(json_object_get(ev.data, "request_id"));
            struct pending *pd = req ? lookup(req, 0) : NULL;
            if (pd != NULL && !pd->answered) {
                int64_t now = sd_wall_ms();
                pd->answered = 1;
                if (pd->sent_ms > 0) {
                    if (getenv("AGENT_LOAD_TRACE") != NULL && now - pd->sent_ms > 50)
                        fprintf(stderr, "slow answer: sent %lld ms into the run, %lld ms\n",
                                (long long)(pd->sent_ms - t->first_sent),
                                (long long)(now - pd->sent_ms));
                    t->lat[t->answered++] = now - pd->sent_ms;
                    t->last_answer = now;
                    if (strcmp(ev.type, "EventError") == 0)
                        t->errors++;
                } else {
                    pd->sent_ms = -1; /* a warm-up answer */
                }
            }
            sd_event_clear(&ev);
        }
        rd_kafka_message_destroy(m);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int do_load(const char *brokers, long agents, long n, long rate)
{
    struct sd_err err = {0};
    struct sd_kafka_producer *p = sd_kafka_producer_new(brokers, "agent-load", NULL, NULL, &err);
    char group[64], id[SD_EVENT_ID_LEN + 1], agent[32], dn[32];
    rd_kafka_t *rk;
    struct tally t = {0};
    long warm = 0;
    int64_t deadline, start;

    if (p == NULL) {
        fprintf(stderr, "agent_load: %s\n", err.text);
        return 1;
    }
    for (table_size = 1024; table_size < 2 * (size_t)(n + agents);)
        table_size *= 2;
    table = calloc(table_size, sizeof(*table));
    t.lat = calloc((size_t)n + 1, sizeof(*t.lat));
    sd_uuid_v4(id);
    snprintf(group, sizeof(group), "agent-load-%.8s", id);
    rk = reader(brokers, sd_topic(SD_TOPIC_AGENT_EVENTS), group, "earliest");
    /* Warm-up: every agent logged in (NotReady), all answers seen. */
    for (long i = 0; i < agents; i++) {
        snprintf(agent, sizeof(agent), "load%05ld", i);
        snprintf(dn, sizeof(dn), "7%05ld", i);
        send_command(
            p, sd_topic(SD_TOPIC_AGENT_COMMANDS), agent, "agent.login",
            json_pack("{s:s, s:s, s:s}", "dn", dn, "site", "site1", "work_mode", "manual_in"), id);
        lookup(id, 1)->sent_ms = 0;
    }
    sd_kafka_producer_flush(p, 30000);
    deadline = sd_mono_ms() + TIMEOUT_MS;
    while (warm < agents && sd_mono_ms() < deadline) {
        collect(rk, &t, 100);
        warm = 0;
        for (size_t i = 0; i < table_size; i++)
            warm += table[i].id[0] != '\0' && table[i].sent_ms == -1;
    }
    if (warm < agents) {
        fprintf(stderr, "agent_load: warm-up: %ld of %ld logins answered\n", warm, agents);
        return 3;
    }
    /* The run. At a fixed rate the first WARM_S seconds of commands are
     * sent on the same schedule but not measured: the figures are those of
     * the steady state, not of the step from idle to load. */
    warm = rate > 0 ? rate * WARM_S : 0;
    start = sd_wall_ms();
    t.first_sent = start;
    for (long j = 0; j < warm + n; j++) {
        snprintf(agent, sizeof(agent), "load%05ld", j % agents);
        send_command(p, sd_topic(SD_TOPIC_AGENT_COMMANDS), agent,
                     (j / agents) % 2 == 0 ? "agent.ready" : "agent.not_ready", json_object(), id);
        if (j == warm)
            t.first_sent = sd_wall_ms();
        lookup(id, 1)->sent_ms = j < warm ? 0 : sd_wall_ms();
        collect(rk, &t, 0);
        while (rate > 0 && sd_wall_ms() < start + (j + 1) * 1000 / rate) {
            sd_kafka_producer_poll(p);
            collect(rk, &t, 1);
        }
    }
    sd_kafka_producer_flush(p, 30000);
    while (t.answered < n && sd_mono_ms() < deadline)
        collect(rk, &t, 100);
    qsort(t.lat, (size_t)t.answered, sizeof(*t.lat), cmp_i64);
    printf("sent=%ld answered=%ld errors=%ld commands_per_s=%.0f p50_ms=%lld p99_ms=%lld "
           "max_ms=%lld\n",
           n, t.answered, t.errors,
           t.answered
               ? (double)t.answered * 1000.0 /
                     (double)(t.last_answer > t.first_sent ? t.last_answer - t.first_sent : 1)
               : 0.0,
           t.answered ? (long long)t.lat[(t.answered - 1) / 2] : -1LL,
           t.answered ? (long long)t.lat[(t.answered * 99 - 1) / 100] : -1LL,
           t.answered ? (long long)t.lat[t.answered - 1] : -1LL);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    sd_kafka_producer_free(p);
    free(table);
    free(t.lat);
    return t.answered == n ? 0 : 3;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* The peer: every command answered by an event with its request_id. */
static int do_echo(const char *brokers)
{
    struct sd_err err = {0};
    struct sd_kafka_producer *p = sd_kafka_producer_new(brokers, "agent-echo", NULL, NULL, &err);
    rd_kafka_t *rk =
        reader(brokers, sd_topic(SD_TOPIC_AGENT_COMMANDS), sd_topic("agent-echo"), "earliest");

    signal(SIGTERM, on_term);
    while (!stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        struct sd_event in, out;
        char *text;
        size_t len;

        sd_kafka_producer_poll(p);
        if (m == NULL)
            continue;
        if (!m->err && sd_event_parse(m->payload, m->len, &in, &err) == 0) {
            json_t *d =
                json_pack("{s:O?, s:s, s:s}", "agent_id", json_object_get(in.data, "agent_id"),
                          "request_id", in.id, "state", "ready");
            if (sd_event_init(&out, "bench/agent-echo", "EventAgentReady", d, &err) == 0) {
                text = sd_event_encode(&out, &len, &err);
                while (text != NULL &&
                       sd_kafka_produce(p, sd_topic(SD_TOPIC_AGENT_EVENTS), m->key, m->key_len,
                                        text, len, NULL, 0, NULL, &err) < 0)
                    sd_kafka_producer_poll(p);
                free(text);
                sd_event_clear(&out);
            }
            sd_event_clear(&in);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    sd_kafka_producer_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    struct sd_err err = {0};

    sd_log_init("agent-load", NULL, SD_LOG_WARN);
    sd_kafka_properties_load_or_exit("agent-load");
    if (argc >= 4 && sd_topic_set_prefix(argv[3], &err) < 0) {
        fprintf(stderr, "agent_load: %s\n", err.text);
        return 2;
    }
    if (argc == 7 && !strcmp(argv[1], "load"))
        return do_load(argv[2], strtol(argv[4], NULL, 10), strtol(argv[5], NULL, 10),
                       strtol(argv[6], NULL, 10));
    if (argc == 4 && !strcmp(argv[1], "echo"))
        return do_echo(argv[2]);
    fprintf(stderr, "usage: agent_load load BROKERS PREFIX AGENTS N RATE | echo BROKERS PREFIX\n");
    return 2;
}
