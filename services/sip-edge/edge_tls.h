/* edge_tls.h - SIP over TLS for sip-edge: which of SIPDRAIN_SIP_URL's URLs
 * is served over TLS, and the certificate folder sofia-sip reads.
 *
 * sofia-sip's tport_tls takes one folder (TPTAG_CERTIFICATE): agent.pem
 * (the certificate chain and its private key in one file) and cafile.pem
 * (the CAs that peers' certificates are verified against). It reads them
 * when nua_create binds the TLS port and only logs a certificate that does
 * not load. So the edge checks the operator's files itself first (a bad
 * one stops it at start, exit 2), copies them to a private folder of its
 * own (0700, files 0600) in that layout, and removes the folder as soon as
 * NUA is up: no copy of the key outlives the start. */
#ifndef SIPDRAIN_EDGE_TLS_H
#define SIPDRAIN_EDGE_TLS_H

#include <stddef.h>

#define EDGE_URL_MAX 256

/* SIPDRAIN_SIP_URL split: plain is the sip: URL served over UDP and TCP
 * (or the one transport its ;transport= names), tls the TLS one (sips:, or
 * sip: with ;transport=tls); either may be "" (not both). */
struct edge_listen {
    char plain[EDGE_URL_MAX];
    char tls[EDGE_URL_MAX];
};

/* Parses a comma-separated list of at most one plain and one TLS URL, e.g.
 * "sip:0.0.0.0:5060,sips:0.0.0.0:5061". 0, or -1 with why. */
int edge_listen_parse(const char *list, struct edge_listen *out, char *why, size_t why_size);

/* SIPDRAIN_TLS_VERIFY */
enum edge_tls_verify {
    EDGE_TLS_VERIFY_NONE,    /* nothing is verified (a lab) */
    EDGE_TLS_VERIFY_SERVERS, /* servers the edge connects to: chain and name */
    EDGE_TLS_VERIFY_ALL,     /* and every client: mutual TLS */
};

struct edge_tls_files {
    const char *cert; /* PEM: the edge's certificate, then its chain */
    const char *key;  /* PEM: its private key, unencrypted */
    const char *ca;   /* PEM: CA certificates peers are verified against */
};

/* Checks the files with OpenSSL: certificate and key load and belong
 * together, the certificate is within its validity, the CA file holds at
 * least one certificate. 0, or -1 with why. */
int edge_tls_check(const struct edge_tls_files *f, char *why, size_t why_size);

/* edge_tls_check, then writes tport_tls's folder: a new private folder
 * under $TMPDIR (else /tmp), its path in dir. 0, or -1 with why (nothing is
 * left behind then). */
int edge_tls_prepare(const struct edge_tls_files *f, char *dir, size_t dir_size, char *why,
                     size_t why_size);

/* Removes what edge_tls_prepare wrote (dir may be ""). */
void edge_tls_remove(const char *dir);

#endif
