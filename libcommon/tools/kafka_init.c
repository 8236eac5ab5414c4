/* sipdrain-kafka-init - creates the sipdrain topics and the least-privilege
 * ACLs (libcommon/src/kafka_acl.c) on a Kafka cluster, for one topic prefix.
 *
 *   SIPDRAIN_KAFKA_BROKERS=... SIPDRAIN_KAFKA_PROPERTIES=admin.properties \
 *       sipdrain-kafka-init [--list]
 *
 * Both steps are idempotent: run it at every deployment (compose's
 * kafka-init step, the Kubernetes Job) and after a change of the table.
 * It logs in as a super user (SIPDRAIN_KAFKA_PROPERTIES: the admin's SASL
 * settings). --list prints the ACLs Kafka holds for the prefix afterwards,
 * one per line, as Kafka lists them. The programs' SCRAM users themselves
 * are made by the broker's deployment (kafka-storage format --add-scram, or
 * Kafka's admin API): librdkafka 2.0 cannot set them.
 *
 * While Kafka does not answer (a cluster still forming), the whole init is
 * tried again, 3 minutes at most. Exit 0 when the topics and ACLs are in
 * place, 1 when Kafka refused or did not answer by then, 2 on bad
 * configuration.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/cfg.h"
#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/kafka_acl.h"
#include "sipdrain/log.h"
#include "sipdrain/topic.h"

struct init_cfg {
    char *brokers;
    char *prefix;
    long partitions;
    long replication;
    int log_level;
};

static const struct sd_cfg_item items[] = {
    {"SIPDRAIN_KAFKA_BROKERS", SD_CFG_STRING, offsetof(struct init_cfg, brokers), 0, 0, NULL, NULL,
     true, "Kafka bootstrap servers"},
    {"SIPDRAIN_TOPIC_PREFIX", SD_CFG_STRING, offsetof(struct init_cfg, prefix), 0, 0, NULL, NULL,
     false, "prefix of every topic and group name (and so of the ACLs); default: none"},
    {"SIPDRAIN_KAFKA_PARTITIONS", SD_CFG_INT, offsetof(struct init_cfg, partitions), 1, 1000, NULL,
     "6", false, "partitions of each topic made"},
    {"SIPDRAIN_KAFKA_REPLICATION", SD_CFG_INT, offsetof(struct init_cfg, replication), 1, 9, NULL,
     "1", false, "replication factor of each topic made"},
    {"SIPDRAIN_LOG_LEVEL", SD_CFG_ENUM, offsetof(struct init_cfg, log_level), 0, 0,
     "debug|info|warn|error", "info", false, "lowest level logged"},
};
#define N_ITEMS    (sizeof(items) / sizeof(items[0]))
#define TIMEOUT_MS 30000
/* The whole init tried again while Kafka does not answer, up to this long:
 * it runs as the cluster forms, and a compose run saw a node unable to
 * reach the controller for ~30 s (Podman's DNS answering nothing after
 * containers joined: "create acls: no answer in 30000 ms"). */
#define PATIENCE_MS 180000

struct listing {
    FILE *f;
    size_t n;
};

static void print_acl(const char *principal, const char *resource, const char *pattern,
                      const char *name, const char *operation, const char *permission, void *arg)
{
    struct listing *l = arg;

    if (l->n++ == 0)
        fprintf(l->f, "%-28s %-6s %-9s %-44s %-6s %s\n", "principal", "type", "pattern", "name",
                "op", "permission");
    fprintf(l->f, "%-28s %-6s %-9s %-44s %-6s %s\n", principal, resource, pattern, name, operation,
            permission);
}

/* The ACLs printed once a broker lists all n of them: each listing asks a
 * broker of its own choosing, and one that has not applied the new ACLs
 * from the metadata log yet lists fewer (seen with three nodes: 0). */
static int list_acls(const char *brokers, const char *prefix, size_t n, struct sd_err *err)
{
    for (int64_t until = sd_mono_ms() + TIMEOUT_MS;;) {
        struct listing l = {0};
        char *text = NULL;
        size_t size = 0;
        int rc;

        if ((l.f = open_memstream(&text, &size)) == NULL)
            return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        rc = sd_kafka_acls_list(brokers, prefix, TIMEOUT_MS, print_acl, &l, err);
        fclose(l.f);
        if (rc == 0 && (l.n >= n || sd_mono_ms() >= until)) {
            fputs(text, stdout);
            free(text);
            return l.n >= n ? 0
                            : sd_err_set(err, SD_ERR_TRANSIENT,
                                         "%zu of %zu acls listed after %d ms", l.n, n, TIMEOUT_MS);
        }
        free(text);
        if (rc < 0)
            return -1;
        usleep(200 * 1000);
    }
}

int main(int argc, char **argv)
{
    struct init_cfg cfg = {0};
    struct sd_err err = {0};
    size_t n_grants, n_topics;
    const char *prefix;
    int rc = 1;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: sipdrain-kafka-init [--list]\n\n"
               "Creates the sipdrain topics and the ACL table for the topic prefix (both\n"
               "idempotent); --list prints the ACLs Kafka then holds for it. Logs in with\n"
               "SIPDRAIN_KAFKA_PROPERTIES (librdkafka settings of a super user).\n\n"
               "settings (environment):\n");
        fflush(stdout);
        sd_cfg_usage(items, N_ITEMS, 1);
        return 0;
    }
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--list") != 0)) {
        fprintf(stderr, "usage: sipdrain-kafka-init [--list]\n");
        return 2;
    }
    sd_cfg_load_or_exit("sipdrain-kafka-init", items, N_ITEMS, &cfg);
    sd_log_init("sipdrain-kafka-init", NULL, (enum sd_log_level)cfg.log_level);
    sd_kafka_properties_load_or_exit("sipdrain-kafka-init");
    prefix = cfg.prefix != NULL ? cfg.prefix : "";
    if (sd_topic_set_prefix(prefix, &err) < 0) {
        fprintf(stderr, "sipdrain-kafka-init: SIPDRAIN_TOPIC_PREFIX: %s\n", err.text);
        rc = 2;
        goto out;
    }
    (void)sd_kafka_grants(&n_grants);
    (void)sd_kafka_topic_names(&n_topics);
    for (int64_t until = sd_mono_ms() + PATIENCE_MS;;) {
        if (sd_kafka_init(cfg.brokers, prefix, (int)cfg.partitions, (int)cfg.replication,
                          TIMEOUT_MS, &err) == 0)
            break;
        if (err.code != SD_ERR_TRANSIENT || sd_mono_ms() + TIMEOUT_MS > until) {
            sd_log_error("kafka init failed", "brokers=%s prefix=%s reason=\"%s\"", cfg.brokers,
                         prefix, err.text);
            goto out;
        }
        sd_log_warn("kafka init: trying again (both steps are idempotent)", "reason=\"%s\"",
                    err.text);
        sleep(2);
    }
    sd_log_info("topics and acls in place", "brokers=%s prefix=%s topics=%zu acls=%zu", cfg.brokers,
                prefix, n_topics, n_grants);
    if (argc == 2 && list_acls(cfg.brokers, prefix, n_grants, &err) < 0) {
        sd_log_error("cannot list the acls", "reason=\"%s\"", err.text);
        goto out;
    }
    rc = 0;
out:
    sd_cfg_free(items, N_ITEMS, &cfg);
    return rc;
}
