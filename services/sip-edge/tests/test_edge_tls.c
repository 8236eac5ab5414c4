/* test_edge_tls.c - SIPDRAIN_SIP_URL's list (edge_listen_parse) and the
 * certificate checks and folder of edge_tls.c, against certificates the
 * openssl command line makes for the test (tests/scripts/test-ca.sh). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge_tls.h"

static char ca_dir[64];

static void make_ca(void)
{
    const char *src = getenv("SIPDRAIN_SOURCE_DIR");
    char cmd[512];

    cr_assert_not_null(src, "SIPDRAIN_SOURCE_DIR unset (run through ctest)");
    snprintf(ca_dir, sizeof(ca_dir), "/tmp/sipdrain-test-ca-XXXXXX");
    cr_assert_not_null(mkdtemp(ca_dir));
    snprintf(cmd, sizeof(cmd), "%s/tests/scripts/test-ca.sh %s", src, ca_dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void remove_ca(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", ca_dir);
    cr_expect_eq(system(cmd), 0);
}

static const char *in_ca(const char *name)
{
    static char paths[4][128];
    static int n;

    n = (n + 1) % 4;
    snprintf(paths[n], sizeof(paths[n]), "%s/%s", ca_dir, name);
    return paths[n];
}

Test(edge_tls, the_url_list_takes_one_plain_and_one_tls_url)
{
    struct edge_listen l;
    char why[200];

    cr_assert_eq(edge_listen_parse("sip:0.0.0.0:5060, sips:0.0.0.0:5061", &l, why, sizeof(why)), 0,
                 "%s", why);
    cr_expect_str_eq(l.plain, "sip:0.0.0.0:5060");
    cr_expect_str_eq(l.tls, "sips:0.0.0.0:5061");
    cr_assert_eq(edge_listen_parse("sip:10.0.0.5:5061;transport=TLS", &l, why, sizeof(why)), 0);
    cr_expect_str_eq(l.plain, "");
    cr_expect_str_eq(l.tls, "sip:10.0.0.5:5061;transport=TLS");
    cr_assert_eq(edge_listen_parse("sip:127.0.0.1:5060", &l, why, sizeof(why)), 0);
    cr_expect_str_eq(l.plain, "sip:127.0.0.1:5060");
    cr_expect_str_eq(l.tls, "");
    cr_assert_eq(edge_listen_parse("sip:127.0.0.1:5060;transport=tlsx", &l, why, sizeof(why)), 0);
    cr_expect_str_eq(l.tls, "", "transport=tlsx is not TLS");
}

Test(edge_tls, a_bad_url_list_says_what_is_wrong)
{
    struct edge_listen l;
    char why[200];
    char longer[400];

    cr_expect_eq(edge_listen_parse("sip:a:1,sip:b:2", &l, why, sizeof(why)), -1);
    cr_expect(strstr(why, "more than one sip:") != NULL, "%s", why);
    cr_expect_eq(edge_listen_parse("sips:a:1,sip:b:2;transport=tls", &l, why, sizeof(why)), -1);
    cr_expect(strstr(why, "more than one TLS") != NULL, "%s", why);
    cr_expect_eq(edge_listen_parse("http://a:1", &l, why, sizeof(why)), -1);
    cr_expect(strstr(why, "not a sip: or sips: URL") != NULL, "%s", why);
    cr_expect_eq(edge_listen_parse("sip:a:1,,sips:b:2", &l, why, sizeof(why)), -1);
    cr_expect(strstr(why, "empty") != NULL, "%s", why);
    cr_expect_eq(edge_listen_parse("", &l, why, sizeof(why)), -1);
    memset(longer, 'a', sizeof(longer) - 1);
    memcpy(longer, "sip:", 4);
    longer[sizeof(longer) - 1] = '\0';
    cr_expect_eq(edge_listen_parse(longer, &l, why, sizeof(why)), -1);
    cr_expect(strstr(why, "longer than") != NULL, "%s", why);
}

Test(edge_tls, good_files_pass_and_each_bad_one_is_named, .init = make_ca, .fini = remove_ca)
{
    struct {
        const char *cert, *key, *ca, *says;
    } cases[] = {
        {"edge.pem", "edge.key", "ca.pem", NULL},
        {"expired.pem", "edge.key", "ca.pem", "has expired"},
        {"edge.pem", "wrong.key", "ca.pem", "does not belong to the certificate"},
        {"edge.pem", "edge.key", "empty.pem", "no PEM certificate"},
        {"edge.pem", "edge.key", "missing.pem", "No such file"},
        {"empty.pem", "edge.key", "ca.pem", "not a PEM certificate"},
        {"edge.pem", "edge.pem", "ca.pem", "not an unencrypted PEM private key"},
    };
    char why[400];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct edge_tls_files f = {in_ca(cases[i].cert), in_ca(cases[i].key), in_ca(cases[i].ca)};
        int rc = edge_tls_check(&f, why, sizeof(why));

        if (cases[i].says == NULL) {
            cr_expect_eq(rc, 0, "%s %s %s: %s", cases[i].cert, cases[i].key, cases[i].ca, why);
        } else {
            cr_expect_eq(rc, -1, "%s %s %s passed", cases[i].cert, cases[i].key, cases[i].ca);
            cr_expect(strstr(why, cases[i].says) != NULL, "%s %s %s: \"%s\", want \"%s\"",
                      cases[i].cert, cases[i].key, cases[i].ca, why, cases[i].says);
        }
    }
}

/* The folder tport_tls reads: private, the certificate and its key in
 * agent.pem, the CAs in cafile.pem; gone after edge_tls_remove. */
Test(edge_tls, the_folder_is_private_and_removed, .init = make_ca, .fini = remove_ca)
{
    struct edge_tls_files f = {in_ca("edge.pem"), in_ca("edge.key"), in_ca("ca.pem")};
    char dir[256], why[400], path[300], cmd[700];
    struct stat st;

    setenv("TMPDIR", ca_dir, 1);
    cr_assert_eq(edge_tls_prepare(&f, dir, sizeof(dir), why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(strncmp(dir, ca_dir, strlen(ca_dir)), 0, "%s under $TMPDIR", dir);
    cr_assert_eq(stat(dir, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "folder mode %o", st.st_mode & 0777);
    snprintf(path, sizeof(path), "%s/agent.pem", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "agent.pem mode %o", st.st_mode & 0777);
    /* openssl itself reads the certificate and the key from agent.pem */
    snprintf(cmd, sizeof(cmd),
             "openssl x509 -in %s -noout -subject | grep -q localhost &&"
             " openssl pkey -in %s -noout",
             path, path);
    cr_expect_eq(system(cmd), 0, "agent.pem: %s", cmd);
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s/cafile.pem %s/edge.pem >/dev/null", dir,
             ca_dir);
    cr_expect_eq(system(cmd), 0, "cafile.pem verifies the edge's certificate");
    edge_tls_remove(dir);
    cr_expect_neq(stat(dir, &st), 0, "%s still there", dir);
    /* a bad file leaves nothing behind */
    f.key = in_ca("wrong.key");
    cr_expect_eq(edge_tls_prepare(&f, dir, sizeof(dir), why, sizeof(why)), -1);
    cr_expect_str_eq(dir, "");
    snprintf(cmd, sizeof(cmd), "ls -d %s/sipdrain-tls-* 2>/dev/null | grep -q .", ca_dir);
    cr_expect_neq(system(cmd), 0, "a folder was left in %s", ca_dir);
    unsetenv("TMPDIR");
}
