/* support.c - see support.h. Assertions here fail the calling test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/kafka_acl.h"
#include "support.h"

static pid_t spawn(const char *path, const char *const *args, const char *const *env,
                   const char *out_path, bool both, bool truncate);

const char *sdt_pg_dsn(void)
{
    const char *v = getenv("SIPDRAIN_PG_DSN");
    cr_assert(v != NULL, "SIPDRAIN_PG_DSN unset: run through tests/scripts/with-stack.sh");
    return v;
}

static bool kafka_login_loaded;

void sdt_kafka_as(const char *user)
{
    struct sd_err err = {0};

    cr_assert_eq(sd_kafka_properties_load(sdt_kafka_props(user ? user : "sipdrain-admin"), &err), 0,
                 "%s", err.text);
    kafka_login_loaded = true;
}

const char *sdt_brokers(void)
{
    const char *v = getenv("SIPDRAIN_KAFKA_BROKERS");

    cr_assert(v != NULL, "SIPDRAIN_KAFKA_BROKERS unset: run through tests/scripts/with-stack.sh");
    if (!kafka_login_loaded)
        sdt_kafka_as(NULL); /* the test's own clients: the stack's super user */
    return v;
}

const char *sdt_kafka_props(const char *user)
{
    static char paths[4][1024];
    static unsigned next;
    const char *dir = getenv("SIPDRAIN_KAFKA_CLIENTS");
    char *path = paths[next++ % 4];

    cr_assert(dir != NULL,
              "SIPDRAIN_KAFKA_CLIENTS unset: run through tests/scripts/with-stack.sh"
              " (a stack started before Kafka had users: run tests/scripts/kafka-up.sh)");
    snprintf(path, sizeof(paths[0]), "%s/%s.properties", dir, user);
    cr_assert_eq(access(path, R_OK), 0, "%s: %s", path, strerror(errno));
    return path;
}

/* The Kafka user a program the tests start logs in as (kafka-up.sh's). */
static const char *kafka_user_of(const char *path)
{
    static const struct {
        const char *program, *user;
    } users[] = {{"sip-edge", "sipdrain-edge"},
                 {"agent-state", "sipdrain-agent-state"},
                 {"drain-orchestrator", "sipdrain-orchestrator"},
                 {"drainctl", "sipdrain-operator"}};
    const char *base = strrchr(path, '/');

    base = base != NULL ? base + 1 : path;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        if (!strcmp(base, users[i].program))
            return users[i].user;
    }
    return "sipdrain-admin"; /* test tools: bus_worker, agent_load */
}

rd_kafka_conf_t *sdt_kafka_conf(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct sd_err err = {0};
    char errstr[256];

    cr_assert_eq(
        rd_kafka_conf_set(conf, "bootstrap.servers", sdt_brokers(), errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK, "%s", errstr);
    cr_assert_eq(sd_kafka_conf_apply(conf, &err), 0, "%s", err.text);
    return conf;
}

const char *sdt_source_dir(void)
{
    const char *v = getenv("SIPDRAIN_SOURCE_DIR");
    cr_assert(v != NULL, "SIPDRAIN_SOURCE_DIR unset (set by CTest)");
    return v;
}

static void random_suffix(char *buf, size_t size)
{
    char id[SD_EVENT_ID_LEN + 1];

    sd_uuid_v4(id);
    snprintf(buf, size, "%.8s%.4s", id, id + 9);
}

void sdt_db_create(char *dsn, size_t size)
{
    const char *admin = sdt_pg_dsn();
    char name[32], sql[128], dir[1024];
    const char *slash = strrchr(admin, '/');
    struct sd_err err = {0};
    struct sd_pg *pg;

    random_suffix(name + 2, sizeof(name) - 2);
    name[0] = 't';
    name[1] = '_';
    pg = sd_pg_new(admin, "sipdrain-test");
    cr_assert_eq(sd_pg_connect_wait(pg, 30000, &err), 0, "%s", err.text);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    cr_assert_geq(sd_pg_exec(pg, sql, 0, NULL, &err), 0, "%s", err.text);
    sd_pg_free(pg);
    cr_assert(slash != NULL && strncmp(admin, "postgresql://", 13) == 0, "DSN %s", admin);
    snprintf(dsn, size, "%.*s/%s", (int)(slash - admin), admin, name);
    pg = sd_pg_new(dsn, "sipdrain-test");
    snprintf(dir, sizeof(dir), "%s/schemas/sql", sdt_source_dir());
    cr_assert_geq(sd_pg_migrate(pg, dir, &err), 1, "%s", err.text);
    /* Every four-digit DN authenticates with SDT_PHONE_PASSWORD (as
     * sipdrain-passwd would store it: HA1 per algorithm, realm sipdrain);
     * a DN of another length has no credentials (its REGISTER gets 403). */
    cr_assert_geq(
        sd_pg_exec(pg,
                   "INSERT INTO sip_credentials (dn, realm, algorithm, ha1)"
                   " SELECT d::text, 'sipdrain', a, CASE a"
                   " WHEN 'MD5' THEN md5(d || ':sipdrain:" SDT_PHONE_PASSWORD "')"
                   " ELSE encode(sha256(convert_to(d || ':sipdrain:" SDT_PHONE_PASSWORD
                   "', 'UTF8')), 'hex') END"
                   " FROM generate_series(1000, 9999) d, (VALUES ('MD5'), ('SHA-256')) v(a)",
                   0, NULL, &err),
        0, "%s", err.text);
    sd_pg_free(pg);
    /* The programs' roles (migration 0005) log in here: the local cluster
     * trusts 127.0.0.1, so LOGIN is all they lack. Roles are the cluster's,
     * shared by every test database; a test running this at the same time
     * may win the race, which is as good. */
    pg = sd_pg_new(admin, "sipdrain-test");
    cr_assert_geq(sd_pg_exec(pg,
                             "DO $$ DECLARE r text; BEGIN FOR r IN SELECT rolname FROM pg_roles"
                             " WHERE rolname LIKE 'sipdrain\\_%' AND NOT rolcanlogin LOOP"
                             " BEGIN EXECUTE format('ALTER ROLE %I LOGIN', r);"
                             " EXCEPTION WHEN OTHERS THEN NULL; END; END LOOP; END $$",
                             0, NULL, &err),
                  0, "%s", err.text);
    sd_pg_free(pg);
}

void sdt_dsn_as(const char *dsn, const char *role, char *out, size_t size)
{
    const char *host = strstr(dsn, "://"), *at;

    cr_assert_not_null(host, "not a postgresql:// DSN: %s", dsn);
    host += 3;
    at = strchr(host, '@');
    if (at != NULL && at < strchr(host, '/'))
        host = at + 1;
    snprintf(out, size, "postgresql://%s@%s", role, host);
}

void sdt_topic_create(char *name, size_t size, const char *base, int partitions)
{
    char suffix[16];
    struct sd_err err = {0};
    const char *topics[1];

    random_suffix(suffix, sizeof(suffix));
    snprintf(name, size, "t.%s.%s", suffix, base);
    topics[0] = name;
    cr_assert_eq(sd_kafka_topics_create(sdt_brokers(), topics, 1, partitions, 30000, &err), 0, "%s",
                 err.text);
}

struct sdt_msgs sdt_consume(const char *topic, size_t want, int timeout_ms)
{
    rd_kafka_conf_t *conf = sdt_kafka_conf();
    rd_kafka_topic_partition_list_t *subs;
    struct sdt_msgs out = {0, calloc(want + 1, sizeof(struct sdt_msg))};
    char group[64], errstr[256];
    int64_t deadline = sd_mono_ms() + timeout_ms;
    rd_kafka_t *rk;

    snprintf(group, sizeof(group), "sdt-reader-");
    random_suffix(group + strlen(group), sizeof(group) - strlen(group));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    rd_kafka_poll_set_consumer(rk);
    subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(rk, subs), 0);
    rd_kafka_topic_partition_list_destroy(subs);
    while (out.n < want && sd_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        /* Keep the message past rd_kafka_destroy: copy it into our own. */
        struct sdt_msg *copy = &out.m[out.n++];
        copy->len = m->len;
        copy->value = malloc(m->len + 1);
        memcpy(copy->value, m->payload, m->len);
        copy->value[m->len] = '\0';
        copy->key_len = m->key_len;
        copy->key = malloc(m->key_len + 1);
        if (m->key_len)
            memcpy(copy->key, m->key, m->key_len);
        copy->key[m->key_len] = '\0';
        copy->partition = m->partition;
        copy->offset = m->offset;
        if (rd_kafka_message_detach_headers(m, &copy->headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
            copy->headers = NULL;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

long sdt_topic_count(const char *topic)
{
    rd_kafka_conf_t *conf = sdt_kafka_conf();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    char errstr[256];
    rd_kafka_t *rk;
    long total = 0;

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    cr_assert_eq(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    cr_assert_eq(md->topic_cnt, 1);
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int64_t lo = 0, hi = 0, deadline = sd_mono_ms() + 20000;
        rd_kafka_resp_err_t e;
        /* A broker busy with a leader change answers some queries with a
         * transient error (seen once in CI): ask again for a while. */
        while ((e = rd_kafka_query_watermark_offsets(rk, topic, md->topics[0].partitions[p].id, &lo,
                                                     &hi, 10000)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
               sd_mono_ms() < deadline) {
            fprintf(stderr, "sdt: watermarks of %s [%d]: %s; asking again\n", topic,
                    md->topics[0].partitions[p].id, rd_kafka_err2str(e));
            usleep(200000);
        }
        cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s [%d]: %s", topic,
                     md->topics[0].partitions[p].id, rd_kafka_err2str(e));
        total += (long)(hi - lo);
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return total;
}

void sdt_msgs_free(struct sdt_msgs *msgs)
{
    for (size_t i = 0; i < msgs->n; i++) {
        if (msgs->m[i].headers != NULL)
            rd_kafka_headers_destroy(msgs->m[i].headers);
        free(msgs->m[i].value);
        free(msgs->m[i].key);
    }
    free(msgs->m);
    msgs->m = NULL;
    msgs->n = 0;
}

int sdt_header(const struct sdt_msg *msg, const char *name, char *buf, size_t size)
{
    return sd_kafka_headers_get(msg->headers, name, buf, size);
}

struct dr_count {
    int ok, failed;
};

static void count_dr(void *opaque, const struct sd_err *err, void *arg)
{
    struct dr_count *c = arg;

    (void)opaque;
    if (err)
        c->failed++;
    else
        c->ok++;
}

void sdt_produce_keyed(const char *topic, const char *const *keys, const void *const *values,
                       const size_t *lens, size_t n)
{
    struct dr_count c = {0, 0};
    struct sd_err err = {0};
    struct sd_kafka_producer *p =
        sd_kafka_producer_new(sdt_brokers(), "sdt-producer", count_dr, &c, &err);

    cr_assert_not_null(p, "%s", err.text);
    for (size_t i = 0; i < n; i++) {
        const char *key = keys ? keys[i] : NULL;
        while (sd_kafka_produce(p, topic, key, key ? strlen(key) : 0, values[i], lens[i], NULL, 0,
                                NULL, &err) < 0) {
            cr_assert_eq(err.code, SD_ERR_TRANSIENT, "%s", err.text);
            sd_kafka_producer_poll(p); /* local queue full: let deliveries drain */
            usleep(1000);
        }
    }
    cr_assert_eq(sd_kafka_producer_flush(p, 30000), 0, "flush timed out");
    sd_kafka_producer_poll(p);
    cr_assert_eq(c.ok, (int)n, "delivered %d of %zu (failed %d)", c.ok, n, c.failed);
    sd_kafka_producer_free(p);
}

void sdt_produce_raw(const char *topic, const void *const *values, const size_t *lens, size_t n)
{
    char **keys = calloc(n, sizeof(*keys));

    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(32);
        snprintf(keys[i], 32, "k%zu", i);
    }
    sdt_produce_keyed(topic, (const char *const *)keys, values, lens, n);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

void sdt_send_event(const char *topic, const char *key, const char *type, json_t *data, char *id)
{
    sdt_send_event_from("test/producer", topic, key, type, data, id);
}

void sdt_send_event_from(const char *source, const char *topic, const char *key, const char *type,
                         json_t *data, char *id)
{
    struct sd_event ev;
    struct sd_err err = {0};
    size_t len;
    char *text;
    const void *values[1];
    const char *keys[1] = {key};

    cr_assert_eq(sd_event_init(&ev, source, type, data, &err), 0, "%s", err.text);
    text = sd_event_encode(&ev, &len, &err);
    cr_assert_not_null(text);
    if (id != NULL)
        memcpy(id, ev.id, SD_EVENT_ID_LEN + 1);
    values[0] = text;
    sdt_produce_keyed(topic, keys, values, &len, 1);
    free(text);
    sd_event_clear(&ev);
}

/* Test ports come from TEST_PORT_LOW..TEST_PORT_HIGH: below the kernel's
 * ephemeral range (32768-60999 by default), where every outgoing TCP
 * connection of every process (Kafka and PostgreSQL clients, SIPp, curl)
 * takes its local port, and below the 20000-32767 that pg-up.sh and
 * kafka-up.sh pick from. A port the kernel chose with bind(0) could be handed
 * to someone's connect() before the service under test bound it: one CI run
 * lost an orchestrator that way ("cannot listen for HTTP on 127.0.0.1:41790").
 * Each process starts at a random point and walks on, so it never hands out
 * the same port twice and two test processes rarely meet. */
#define TEST_PORT_LOW  10000
#define TEST_PORT_HIGH 19999

bool sdt_port_free(int port, bool tcp)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    int u = socket(AF_INET, SOCK_DGRAM, 0), t = tcp ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    bool ok;

    cr_assert(u >= 0 && (!tcp || t >= 0));
    ok = bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 &&
         (!tcp || bind(t, (struct sockaddr *)&a, sizeof(a)) == 0);
    close(u);
    if (t >= 0)
        close(t);
    return ok;
}

/* True when the kernel may give port to an outgoing connection. */
static bool ephemeral(int port)
{
    static int low = -1, high = -1;

    if (low < 0) {
        FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

        if (f == NULL || fscanf(f, "%d %d", &low, &high) != 2) {
            low = 32768;
            high = 60999;
        }
        if (f != NULL)
            fclose(f);
    }
    return port >= low && port <= high;
}

int sdt_free_port(void)
{
    static int next = -1;
    const int span = TEST_PORT_HIGH - TEST_PORT_LOW + 1;

    if (next < 0) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        next = (int)(((unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec) % (unsigned)span);
    }
    for (int attempt = 0; attempt < span; attempt++) {
        int port = TEST_PORT_LOW + next;

        next = (next + 1) % span;
        if (!ephemeral(port) && sdt_port_free(port, true))
            return port;
    }
    cr_assert_fail("no free loopback port in %d-%d", TEST_PORT_LOW, TEST_PORT_HIGH);
    return -1;
}

const char *sdt_sipp_remote_host;

/* SIPp's argv for one scenario run; strings live in a static pool per call
 * (a test runs at most a few at once). */
static const char **sipp_argv(const char *scenario, int local_port, int remote_port,
                              const char *service, const char *const *keys)
{
    static char pool[4][8][600];
    static const char *argv[4][40];
    static int slot;
    int n = 0, k = 0;
    char(*str)[600] = pool[slot];
    const char **av = argv[slot];
    int port = local_port > 0 ? local_port : sdt_free_port();

    slot = (slot + 1) % 4;
    snprintf(str[k], 600, "%s:%d",
             sdt_sipp_remote_host != NULL ? sdt_sipp_remote_host : "127.0.0.1", remote_port);
    av[n++] = "sipp";
    av[n++] = str[k++];
    snprintf(str[k], 600, "%s/tests/e2e/sipp/%s.xml", sdt_source_dir(), scenario);
    av[n++] = "-sf";
    av[n++] = str[k++];
    snprintf(str[k], 600, "%d", port);
    av[n++] = "-p";
    av[n++] = str[k++];
    snprintf(str[k], 600, "%d", sdt_free_port());
    av[n++] = "-cp";
    av[n++] = str[k++];
    snprintf(str[k], 600, "/tmp/sipdrain-sipp-%s-%d.err", scenario, port);
    av[n++] = "-error_file";
    av[n++] = str[k++];
    av[n++] = "-trace_err";
    av[n++] = "-m";
    av[n++] = "1";
    av[n++] = "-i";
    av[n++] = "127.0.0.1";
    av[n++] = "-t";
    av[n++] = "u1";
    av[n++] = "-s";
    av[n++] = service;
    av[n++] = "-ap"; /* the password of every test DN (sdt_db_create) */
    av[n++] = SDT_PHONE_PASSWORD;
    av[n++] = "-timeout";
    av[n++] = "60s";
    av[n++] = "-timeout_error";
    av[n++] = "-nostdin";
    if (strncmp(scenario, "phone_", 6) == 0) {
        /* A phone registers (its own call) and answers the edge's INVITE
         * (another Call-ID): SIPp starts that as an out-of-call scenario
         * from the same file (tests/e2e/sipp/README.md). */
        av[n++] = "-oocsf";
        av[n++] = av[3];
    }
    if (strcmp(scenario, "phone_ignore_bye") == 0 || strstr(scenario, "bye_strict") != NULL)
        av[n++] = "-nr"; /* count every BYE datagram, retransmissions too */
    for (size_t i = 0; keys != NULL && keys[i] != NULL && keys[i + 1] != NULL && n < 36; i += 2) {
        av[n++] = "-key";
        av[n++] = keys[i];
        av[n++] = keys[i + 1];
    }
    av[n] = NULL;
    return av;
}

pid_t sdt_sipp_start(const char *scenario, int remote_port, const char *service,
                     const char *const *keys)
{
    return sdt_sipp_start_on(scenario, 0, remote_port, service, keys);
}

pid_t sdt_sipp_start_on(const char *scenario, int local_port, int remote_port, const char *service,
                        const char *const *keys)
{
    const char **av = sipp_argv(scenario, local_port, remote_port, service, keys);

    return spawn("/usr/bin/sipp", av + 1, NULL, "/dev/null", true, false);
}

int sdt_sipp_wait(pid_t pid, int timeout_ms)
{
    int status = sdt_wait(pid, timeout_ms);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int sdt_sipp(const char *scenario, int remote_port, const char *service, const char *const *keys)
{
    return sdt_sipp_wait(sdt_sipp_start(scenario, remote_port, service, keys), 90000);
}

void sdt_prefix_create(char *prefix, size_t size)
{
    char suffix[16];
    struct sd_err err = {0};

    random_suffix(suffix, sizeof(suffix));
    snprintf(prefix, size, "t.%s.", suffix);
    /* The topics and the ACL table for the prefix, as sipdrain-kafka-init. */
    cr_assert_eq(sd_kafka_init(sdt_brokers(), prefix, 6, 1, 30000, &err), 0, "%s", err.text);
}

/* fork + exec of path with args; env entries added. stdout (and with
 * both, stderr) to out_path: appended, or truncated first with truncate. */
static pid_t spawn(const char *path, const char *const *args, const char *const *env,
                   const char *out_path, bool both, bool truncate)
{
    const char *argv[48];
    size_t n = 0;
    pid_t pid;

    argv[n++] = path;
    for (; args != NULL && args[n - 1] != NULL && n < 47; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* A test that fails half-way leaves no process behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Each program logs in to Kafka as its own user, as deployed,
         * unless env names other settings. */
        if (getenv("SIPDRAIN_KAFKA_CLIENTS") != NULL)
            setenv("SIPDRAIN_KAFKA_PROPERTIES", sdt_kafka_props(kafka_user_of(path)), 1);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        if (out_path != NULL) {
            int fd = open(out_path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                if (both)
                    dup2(fd, 2);
            }
        }
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t sdt_spawn(const char *path, const char *const *args, const char *const *env,
                const char *out_path)
{
    return spawn(path, args, env, out_path, true, false);
}

void sdt_pg_run(const char *dsn, const char *sql)
{
    struct sd_err err = {0};
    struct sd_pg *pg = sd_pg_new(dsn, "sipdrain-test");

    cr_assert_eq(sd_pg_connect_wait(pg, 30000, &err), 0, "%s", err.text);
    cr_assert_geq(sd_pg_exec(pg, sql, 0, NULL, &err), 0, "%s: %s", sql, err.text);
    sd_pg_free(pg);
}

int sdt_validate_events(const struct sdt_msgs *msgs)
{
    char path[] = "/tmp/sipdrain-events-XXXXXX", cmd[1024];
    int fd = mkstemp(path), rc;
    FILE *f;

    cr_assert(fd >= 0);
    f = fdopen(fd, "w");
    for (size_t i = 0; i < msgs->n; i++)
        fprintf(f, "%s\n", msgs->m[i].value);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 tests/schema/validate.py --schemas schemas/events --jsonl %s", path);
    rc = sdt_script(cmd);
    unlink(path);
    return rc;
}

void sdt_produce_pings(const char *topic, size_t n, size_t first_seq)
{
    const void **values = calloc(n, sizeof(*values));
    size_t *lens = calloc(n, sizeof(*lens));
    struct sd_err err = {0};

    for (size_t i = 0; i < n; i++) {
        struct sd_event ev;
        cr_assert_eq(sd_event_init(&ev, "test/producer", "test.ping",
                                   json_pack("{s:I}", "seq", (json_int_t)(first_seq + i)), &err),
                     0);
        values[i] = sd_event_encode(&ev, &lens[i], &err);
        cr_assert_not_null(values[i]);
        sd_event_clear(&ev);
    }
    sdt_produce_raw(topic, values, lens, n);
    for (size_t i = 0; i < n; i++)
        free((void *)values[i]);
    free(values);
    free(lens);
}

pid_t sdt_worker_start(const char *const *args, const char *const *env, const char *out_path)
{
    static char worker[1024];
    const char *dir = getenv("SIPDRAIN_TEST_BIN_DIR");

    cr_assert(dir != NULL, "SIPDRAIN_TEST_BIN_DIR unset (set by CTest)");
    snprintf(worker, sizeof(worker), "%s/bus_worker", dir);
    /* stdout only, truncated: the worker's summary line */
    return spawn(worker, args, env, out_path, false, true);
}

int sdt_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;
    int status = 0;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        cr_assert(r == 0, "waitpid: %s", strerror(errno));
        if (sd_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("worker %d did not finish in %d ms", (int)pid, timeout_ms);
        }
        usleep(20000);
    }
}

long sdt_pg_scalar(const char *dsn, const char *sql)
{
    struct sd_err err = {0};
    struct sd_pg *pg = sd_pg_new(dsn, "sipdrain-test");
    PGresult *res;
    long v;

    cr_assert_eq(sd_pg_connect_wait(pg, 30000, &err), 0, "%s", err.text);
    res = sd_pg_query(pg, sql, 0, NULL, NULL, NULL, &err);
    cr_assert_not_null(res, "%s: %s", sql, err.text);
    cr_assert_eq(PQntuples(res), 1);
    v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    sd_pg_free(pg);
    return v;
}

int sdt_script(const char *cmd)
{
    size_t size = strlen(cmd) + strlen(sdt_source_dir()) + 32;
    char *line = malloc(size);
    int status;

    cr_assert_not_null(line);
    snprintf(line, size, "cd '%s' && %s >&2", sdt_source_dir(), cmd);
    status = system(line);
    free(line);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int sdt_file_line(const char *path, const char *text)
{
    char line[4096];
    int n = 0, found = 0;
    FILE *f = fopen(path, "r");

    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
        n++;
        if (strstr(line, text) != NULL)
            found = n;
    }
    if (f != NULL)
        fclose(f);
    return found;
}

bool sdt_file_has(const char *path, const char *text)
{
    return sdt_file_line(path, text) > 0;
}

int sdt_http_get(int port, const char *path, char *body, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[512], *buf = calloc(1, 65536);
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
    const char *sep;

    cr_assert_not_null(buf);
    body[0] = '\0';
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        free(buf);
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
        while (got < 65535 && (n = read(fd, buf + got, 65535 - got)) > 0)
            got += (size_t)n;
    }
    close(fd);
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    sep = strstr(buf, "\r\n\r\n");
    snprintf(body, size, "%s", sep != NULL ? sep + 4 : "");
    free(buf);
    return status;
}
