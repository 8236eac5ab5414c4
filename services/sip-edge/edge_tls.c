/* edge_tls.c - see edge_tls.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "edge_tls.h"

static bool is_tls_url(const char *url, size_t len)
{
    if (len >= 5 && strncasecmp(url, "sips:", 5) == 0)
        return true;
    for (size_t i = 0; i + 14 <= len; i++) {
        if (strncasecmp(url + i, ";transport=tls", 14) == 0 &&
            (i + 14 == len || url[i + 14] == ';'))
            return true;
    }
    return false;
}

int edge_listen_parse(const char *list, struct edge_listen *out, char *why, size_t why_size)
{
    const char *p = list;

    memset(out, 0, sizeof(*out));
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *url = p;
        char *slot;

        while (len > 0 && (*url == ' ' || *url == '\t')) {
            url++;
            len--;
        }
        while (len > 0 && (url[len - 1] == ' ' || url[len - 1] == '\t'))
            len--;
        if (len == 0) {
            snprintf(why, why_size, "an empty URL in the list");
            return -1;
        }
        if (strncasecmp(url, "sip:", 4) != 0 && strncasecmp(url, "sips:", 5) != 0) {
            snprintf(why, why_size, "%.*s: not a sip: or sips: URL", (int)len, url);
            return -1;
        }
        if (len >= EDGE_URL_MAX) {
            snprintf(why, why_size, "a URL longer than %d characters", EDGE_URL_MAX - 1);
            return -1;
        }
        slot = is_tls_url(url, len) ? out->tls : out->plain;
        if (slot[0] != '\0') {
            snprintf(why, why_size, "more than one %s URL",
                     slot == out->tls ? "TLS (sips: or ;transport=tls)" : "sip:");
            return -1;
        }
        memcpy(slot, url, len);
        slot[len] = '\0';
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    if (out->plain[0] == '\0' && out->tls[0] == '\0') {
        snprintf(why, why_size, "no URL");
        return -1;
    }
    return 0;
}

/* OpenSSL's first queued error as text (or what). */
static void ssl_why(char *why, size_t why_size, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char text[256] = "";

    if (e != 0)
        ERR_error_string_n(e, text, sizeof(text));
    ERR_clear_error();
    snprintf(why, why_size, "%s: %s%s%s", path, what, text[0] ? ": " : "", text);
}

/* Every certificate of a PEM file (NULL when it cannot be read; may be
 * empty). */
static STACK_OF(X509) * read_certs(const char *path)
{
    FILE *f = fopen(path, "r");
    STACK_OF(X509) * certs;
    X509 *x;

    if (f == NULL)
        return NULL;
    certs = sk_X509_new_null();
    while (certs != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            sk_X509_pop_free(certs, X509_free);
            certs = NULL;
        }
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    fclose(f);
    return certs;
}

/* The certificate and key load, belong together and the certificate is
 * valid now. */
static int check_pair(const char *cert, const char *key, char *why, size_t why_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    FILE *f = fopen(key, "r");
    EVP_PKEY *pkey = NULL;
    X509 *leaf;
    int rc = -1;

    if (f != NULL) {
        /* no passphrase callback: an encrypted key fails here */
        pkey = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
        fclose(f);
    }
    if (ctx == NULL)
        ssl_why(why, why_size, "cannot make a TLS context", "OpenSSL");
    else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        ssl_why(why, why_size, "not a PEM certificate (chain)", cert);
    else if (pkey == NULL)
        ssl_why(why, why_size, "not an unencrypted PEM private key", key);
    else if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        ssl_why(why, why_size, "the private key does not belong to the certificate", key);
    else if ((leaf = SSL_CTX_get0_certificate(ctx)) == NULL)
        snprintf(why, why_size, "%s: no certificate", cert);
    else if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
        snprintf(why, why_size, "%s: the certificate has expired", cert);
    else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0)
        snprintf(why, why_size, "%s: the certificate is not valid yet", cert);
    else
        rc = 0;
    EVP_PKEY_free(pkey);
    SSL_CTX_free(ctx);
    return rc;
}

/* Appends the file at path to fd. */
static int copy_into(int fd, const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n;
    int rc = 0;

    if (f == NULL)
        return -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (write(fd, buf, n) != (ssize_t)n)
            rc = -1;
    }
    if (ferror(f))
        rc = -1;
    fclose(f);
    /* a file without a final line end must not run into the next one */
    if (rc == 0 && write(fd, "\n", 1) != 1)
        rc = -1;
    return rc;
}

/* Writes certs (from the second one) as PEM to fd. */
static int write_chain(int fd, STACK_OF(X509) * certs)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int rc = 0;

    if (b == NULL)
        return -1;
    for (int i = 1; i < sk_X509_num(certs) && rc == 0; i++)
        rc = PEM_write_bio_X509(b, sk_X509_value(certs, i)) == 1 ? 0 : -1;
    len = BIO_get_mem_data(b, &data);
    if (rc == 0 && len > 0 && write(fd, data, (size_t)len) != len)
        rc = -1;
    BIO_free(b);
    return rc;
}

static int open_new(const char *dir, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

/* The checks of edge_tls_check; the certificate's chain in *chain. */
static int check(const struct edge_tls_files *f, STACK_OF(X509) * *chain, char *why,
                 size_t why_size)
{
    STACK_OF(X509) * cas;
    int n_cas;

    *chain = NULL;
    if (check_pair(f->cert, f->key, why, why_size) < 0)
        return -1;
    cas = read_certs(f->ca);
    n_cas = cas != NULL ? sk_X509_num(cas) : 0;
    if (cas == NULL || n_cas < 1) {
        snprintf(why, why_size, "%s: %s", f->ca,
                 cas == NULL ? strerror(errno) : "no PEM certificate in it");
        sk_X509_pop_free(cas, X509_free);
        return -1;
    }
    sk_X509_pop_free(cas, X509_free);
    *chain = read_certs(f->cert);
    if (*chain == NULL || sk_X509_num(*chain) < 1) {
        snprintf(why, why_size, "%s: cannot read it again", f->cert);
        sk_X509_pop_free(*chain, X509_free);
        *chain = NULL;
        return -1;
    }
    return 0;
}

int edge_tls_check(const struct edge_tls_files *f, char *why, size_t why_size)
{
    STACK_OF(X509) * chain;
    int rc = check(f, &chain, why, why_size);

    sk_X509_pop_free(chain, X509_free);
    return rc;
}

int edge_tls_prepare(const struct edge_tls_files *f, char *dir, size_t dir_size, char *why,
                     size_t why_size)
{
    const char *tmp = getenv("TMPDIR");
    STACK_OF(X509) * chain;
    int agent = -1, cafile = -1, rc = -1;

    dir[0] = '\0';
    if (check(f, &chain, why, why_size) < 0)
        return -1;
    snprintf(dir, dir_size, "%s/sipdrain-tls-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        snprintf(why, why_size, "cannot make a private folder for the certificate (%s): %s", dir,
                 strerror(errno));
        dir[0] = '\0';
        goto out;
    }
    /* agent.pem: tport_tls reads the certificate and the key from it;
     * cafile.pem: the CAs, and the certificate's chain (OpenSSL builds the
     * chain it sends from the trusted store) */
    agent = open_new(dir, "agent.pem");
    cafile = open_new(dir, "cafile.pem");
    if (agent < 0 || cafile < 0 || copy_into(agent, f->cert) < 0 || copy_into(agent, f->key) < 0 ||
        copy_into(cafile, f->ca) < 0 || write_chain(cafile, chain) < 0) {
        snprintf(why, why_size, "cannot write the certificate into %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (agent >= 0)
        close(agent);
    if (cafile >= 0)
        close(cafile);
    if (rc < 0) {
        edge_tls_remove(dir);
        dir[0] = '\0';
    }
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

void edge_tls_remove(const char *dir)
{
    static const char *const names[] = {"agent.pem", "cafile.pem"};
    char path[512];

    if (dir == NULL || dir[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}
