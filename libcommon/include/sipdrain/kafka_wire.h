/* kafka_wire.h - the Kafka admin requests librdkafka does not have.
 *
 * Moving partition leaders off a site's brokers (issue #18) takes two
 * requests of Kafka's admin API: AlterPartitionReassignments (a partition's
 * replicas put in a new order, the first being its preferred leader) and
 * ElectLeaders (the preferred leader elected now). Debian 12's librdkafka
 * 2.0.2 has neither (ElectLeaders came in 2.6; no librdkafka has
 * reassignments), so sipdrain speaks them itself, on a connection of its
 * own to one broker, which forwards them to the KRaft controller. Two more
 * questions librdkafka cannot put to one chosen broker: which node leads
 * the KRaft quorum (DescribeQuorum), and that broker's own view of the
 * leaders (Metadata: librdkafka asks any broker it likes). All of them:
 *
 *   TCP, then TLS when security.protocol is ssl or sasl_ssl (the CA of
 *   ssl.ca.location, else the system's; the broker's name checked unless
 *   ssl.endpoint.identification.algorithm=none; a client certificate from
 *   ssl.certificate.location + ssl.key.location), then SASL when it is
 *   sasl_plaintext or sasl_ssl (sasl.mechanism PLAIN, SCRAM-SHA-256 or
 *   SCRAM-SHA-512 with sasl.username / sasl.password) - the properties of
 *   SIPDRAIN_KAFKA_PROPERTIES, the same as every librdkafka client's.
 *
 * Requests and answers are read with every length checked against what
 * arrived: a broker that lies or breaks off gets an error, not a crash.
 * Blocking, one request at a time: for drainctl, not for a service loop.
 */
#ifndef SIPDRAIN_KAFKA_WIRE_H
#define SIPDRAIN_KAFKA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "sipdrain/err.h"

#define SD_KWIRE_REPLICAS_MAX 16

struct sd_kwire;

/* One partition: its new replica order going in (the first is the leader
 * wanted), the broker's answer coming out (error: Kafka's error code, 0
 * none; message: its text or Kafka's error name; leader: sd_kwire_leaders'). */
struct sd_kwire_partition {
    const char *topic;
    int32_t partition;
    int32_t replicas[SD_KWIRE_REPLICAS_MAX];
    int n_replicas;
    int16_t error;
    char message[160];
    int32_t leader;
};

/* Kafka's error codes met here. */
enum {
    SD_KWIRE_NONE = 0,
    SD_KWIRE_CLUSTER_AUTHORIZATION_FAILED = 31,
    SD_KWIRE_SASL_AUTHENTICATION_FAILED = 58,
    SD_KWIRE_PREFERRED_LEADER_NOT_AVAILABLE = 80,
    SD_KWIRE_ELECTION_NOT_NEEDED = 84,
};

/* Connected, TLS and SASL done as the loaded properties say. NULL with
 * err set (SD_ERR_CONFIG: a property it cannot use; SD_ERR_TRANSIENT: the
 * broker unreachable, silent or refusing the login). */
struct sd_kwire *sd_kwire_open(const char *host, int port, int timeout_ms, struct sd_err *err);
void sd_kwire_close(struct sd_kwire *kw);

/* AlterPartitionReassignments v0: every partition's replicas set to its
 * order. -1 when the request as a whole failed (err); else 0 and each
 * partition's own answer in error/message. */
int sd_kwire_reassign(struct sd_kwire *kw, struct sd_kwire_partition *parts, size_t n,
                      int timeout_ms, struct sd_err *err) SD_MUST_CHECK;

/* ElectLeaders v1, preferred: each partition's first replica made its
 * leader (ELECTION_NOT_NEEDED when it already is). As sd_kwire_reassign. */
int sd_kwire_elect_preferred(struct sd_kwire *kw, struct sd_kwire_partition *parts, size_t n,
                             int timeout_ms, struct sd_err *err) SD_MUST_CHECK;

/* DescribeQuorum v0: the KRaft quorum's leader (a controller's node id)
 * and its voters (at most max_voters of them). A login with DESCRIBE on
 * the cluster. */
int sd_kwire_quorum(struct sd_kwire *kw, int32_t *leader, int32_t *voters, int *n_voters,
                    int max_voters, struct sd_err *err) SD_MUST_CHECK;

/* Metadata v1 of the parts' topics: each partition's leader as this broker
 * sees it, in leader (-1: none, or not in its answer). Brokers apply the
 * controller's changes each at its own pace: to know that a change is seen
 * everywhere, ask each broker. */
int sd_kwire_leaders(struct sd_kwire *kw, struct sd_kwire_partition *parts, size_t n,
                     struct sd_err *err) SD_MUST_CHECK;

/* Kafka's name of an error code ("CLUSTER_AUTHORIZATION_FAILED"), or
 * "error <n>" for one not listed here (a static buffer for those). */
const char *sd_kwire_error_name(int code);

/* --- the pieces, exposed for the unit tests -------------------------------- */

/* SCRAM (RFC 5802) as the client: the final message for the server's first
 * one, and the server signature its final message must carry. mech:
 * "SCRAM-SHA-256" or "SCRAM-SHA-512". client_first_bare: "n=<user>,r=<nonce>". */
int sd_kwire_scram_final(const char *mech, const char *password, const char *client_first_bare,
                         const char *server_first, char *client_final, size_t size,
                         char *server_signature, size_t sig_size, struct sd_err *err) SD_MUST_CHECK;

/* An answer's body (after the response header) decoded into parts, matched
 * by topic and partition; -1 when it is malformed or the top-level error
 * is set. */
int sd_kwire_reassign_decode(const unsigned char *body, size_t len,
                             struct sd_kwire_partition *parts, size_t n,
                             struct sd_err *err) SD_MUST_CHECK;
int sd_kwire_quorum_decode(const unsigned char *body, size_t len, int32_t *leader, int32_t *voters,
                           int *n_voters, int max_voters, struct sd_err *err) SD_MUST_CHECK;
int sd_kwire_elect_decode(const unsigned char *body, size_t len, struct sd_kwire_partition *parts,
                          size_t n, struct sd_err *err) SD_MUST_CHECK;
int sd_kwire_leaders_decode(const unsigned char *body, size_t len, struct sd_kwire_partition *parts,
                            size_t n, struct sd_err *err) SD_MUST_CHECK;

/* A request's body, for the tests' round trips: a malloc'ed buffer, its
 * length in *len. */
unsigned char *sd_kwire_reassign_encode(const struct sd_kwire_partition *parts, size_t n,
                                        int timeout_ms, size_t *len);
unsigned char *sd_kwire_elect_encode(const struct sd_kwire_partition *parts, size_t n,
                                     int timeout_ms, size_t *len);
unsigned char *sd_kwire_leaders_encode(const struct sd_kwire_partition *parts, size_t n,
                                       size_t *len);

#endif
