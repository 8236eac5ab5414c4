/* The operator's librdkafka properties (SIPDRAIN_KAFKA_PROPERTIES): read,
 * checked against librdkafka, applied to a client's configuration; what
 * sipdrain sets itself cannot be changed; no message shows a secret. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/kafka.h"

static char *write_props(const char *text)
{
    static char path[64];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/sd-kafka-props-%d", (int)getpid());
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void conf_has(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char value[256];
    size_t size = sizeof(value);

    cr_assert_eq(rd_kafka_conf_get(conf, key, value, &size), RD_KAFKA_CONF_OK, "%s", key);
    cr_expect_str_eq(value, want, "%s", key);
}

Test(kafka_props, the_file_s_properties_reach_every_client_configuration)
{
    struct sd_err err = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *path = write_props("# SASL over plain TCP on loopback\n"
                             "security.protocol = SASL_PLAINTEXT\n"
                             "\n"
                             "sasl.mechanism=SCRAM-SHA-512\n"
                             "  sasl.username = drainctl  \n"
                             "sasl.password=p=ss word\n");

    cr_assert_eq(sd_kafka_properties_load(path, &err), 0, "%s", err.text);
    cr_expect_eq(sd_kafka_properties_count(), 4);
    cr_assert_eq(sd_kafka_conf_apply(conf, &err), 0, "%s", err.text);
    conf_has(conf, "security.protocol", "sasl_plaintext");
    conf_has(conf, "sasl.mechanisms", "SCRAM-SHA-512");
    conf_has(conf, "sasl.username", "drainctl");
    conf_has(conf, "sasl.password", "p=ss word");
    rd_kafka_conf_destroy(conf);
    cr_assert_eq(sd_kafka_properties_load(NULL, &err), 0);
    cr_expect_eq(sd_kafka_properties_count(), 0, "none without a file");
    unlink(path);
}

Test(kafka_props, sipdrain_s_own_settings_unknown_keys_and_refused_values_are_errors)
{
    struct sd_err err = {0};
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"acks=0\n", ":1: acks is sipdrain's own setting"},
        {"# ok\nenable.idempotence=false\n", ":2: enable.idempotence is sipdrain's own setting"},
        {"bootstrap.servers=evil:9092\n", "bootstrap.servers is sipdrain's own setting"},
        {"group.id=other\n", "group.id is sipdrain's own setting"},
        {"security.protocol=carrier-pigeon\n", ":1: security.protocol: Invalid value"},
        {"sasl.passwrod=hunter2-secret\n", ":1: sasl.passwrod: "},
        {"just a line\n", ":1: expected key=value"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *path = write_props(bad[i].text);
        cr_expect_eq(sd_kafka_properties_load(path, &err), -1, "%s", bad[i].text);
        cr_expect(strstr(err.text, bad[i].want) != NULL, "%s -> %s", bad[i].text, err.text);
        cr_expect(strstr(err.text, "hunter2") == NULL, "a secret in the message: %s", err.text);
        cr_expect_eq(sd_kafka_properties_count(), 0, "nothing kept after an error");
        unlink(path);
    }
    cr_expect_eq(sd_kafka_properties_load("/nonexistent/kafka.properties", &err), -1);
    cr_expect(strstr(err.text, "cannot read /nonexistent/kafka.properties") != NULL, "%s",
              err.text);
}
