/* test_edge_auth.c - digest authentication's pure pieces (edge_auth.c):
 * the RFCs' own examples for HA1 and responses, and the nonces: bound to
 * the secret, a lifetime, counts that must rise, a full table that never
 * lets a forgotten nonce be replayed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "edge_auth.h"

static const unsigned char secret[EDGE_AUTH_SECRET_LEN] = "0123456789abcdef0123456789abcde";
static const unsigned char other_secret[EDGE_AUTH_SECRET_LEN] = "another secret of 32 bytes.....";
static struct edge_auth auth;  /* ~0.5 MB: not on the stack */
static struct edge_auth other; /* another edge (or this one after a restart) */

/* RFC 2617 §3.5 (MD5, qop=auth), as every digest implementation checks it. */
Test(edge_auth, md5_response_is_rfc_2617s_example)
{
    char ha1[EDGE_AUTH_HEX_MAX], resp[EDGE_AUTH_HEX_MAX];

    edge_auth_ha1(EDGE_AUTH_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", ha1);
    edge_auth_response(EDGE_AUTH_MD5, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001",
                       "0a4f113b", "GET", "/dir/index.html", resp);
    cr_assert_str_eq(resp, "6629fae49393a05397450978507c4ef1");
}

/* RFC 7616 §3.9.1: the same request with SHA-256 and with MD5. */
Test(edge_auth, sha256_and_md5_responses_are_rfc_7616s_example)
{
    const char *nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const char *cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    char ha1[EDGE_AUTH_HEX_MAX], resp[EDGE_AUTH_HEX_MAX];

    edge_auth_ha1(EDGE_AUTH_SHA256, "Mufasa", "http-auth@example.org", "Circle of Life", ha1);
    edge_auth_response(EDGE_AUTH_SHA256, ha1, nonce, "00000001", cnonce, "GET", "/dir/index.html",
                       resp);
    cr_assert_str_eq(resp, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    edge_auth_ha1(EDGE_AUTH_MD5, "Mufasa", "http-auth@example.org", "Circle of Life", ha1);
    edge_auth_response(EDGE_AUTH_MD5, ha1, nonce, "00000001", cnonce, "GET", "/dir/index.html",
                       resp);
    cr_assert_str_eq(resp, "8ca523f5e9506fed4657c9700eebdbec");
}

Test(edge_auth, algorithm_names_parse_and_anything_else_is_refused)
{
    enum edge_auth_alg alg = EDGE_AUTH_SHA256;

    cr_assert_eq(edge_auth_alg_parse(NULL, &alg), 0);
    cr_expect_eq(alg, EDGE_AUTH_MD5, "no algorithm parameter means MD5 (RFC 2617)");
    cr_assert_eq(edge_auth_alg_parse("sha-256", &alg), 0);
    cr_expect_eq(alg, EDGE_AUTH_SHA256);
    cr_expect_eq(edge_auth_alg_parse("MD5-sess", &alg), -1);
    cr_expect_eq(edge_auth_alg_parse("SHA-512-256", &alg), -1);
    cr_expect_str_eq(edge_auth_alg_name(EDGE_AUTH_SHA256), "SHA-256");
}

Test(edge_auth, equal_wants_the_same_digest_and_length)
{
    cr_expect(edge_auth_equal("abc123", "abc123"));
    cr_expect_not(edge_auth_equal("abc123", "abc124"));
    cr_expect_not(edge_auth_equal("abc123", "abc12"));
    cr_expect_not(edge_auth_equal("", ""), "an empty digest (libcrypto failed) matches nothing");
}

Test(edge_auth, a_nonce_of_ours_passes_once_per_count_and_a_replay_is_stale)
{
    char nonce[EDGE_AUTH_NONCE_MAX];

    edge_auth_init(&auth, secret, 300);
    edge_auth_nonce(&auth, 1000, nonce);
    cr_assert_eq(strlen(nonce), 57, "nonce %s", nonce);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1001), EDGE_NONCE_OK);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1002), EDGE_NONCE_STALE,
                 "the same count again is a replay");
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000002", 1003), EDGE_NONCE_OK);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000002", 1003), EDGE_NONCE_STALE);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1004), EDGE_NONCE_STALE,
                 "a lower count is a replay too");
    cr_expect_eq(edge_auth_check(&auth, nonce, "0000000a", 1005), EDGE_NONCE_OK,
                 "counts may skip (a phone's other requests used some)");
}

Test(edge_auth, a_nonce_past_its_lifetime_is_stale)
{
    char nonce[EDGE_AUTH_NONCE_MAX];

    edge_auth_init(&auth, secret, 300);
    edge_auth_nonce(&auth, 1000, nonce);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1300), EDGE_NONCE_OK);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000002", 1301), EDGE_NONCE_STALE);
}

Test(edge_auth, a_nonce_not_made_with_the_secret_is_bad)
{
    char nonce[EDGE_AUTH_NONCE_MAX], forged[EDGE_AUTH_NONCE_MAX];

    edge_auth_init(&auth, secret, 300);
    edge_auth_init(&other, other_secret, 300);
    edge_auth_nonce(&other, 1000, nonce);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1001), EDGE_NONCE_BAD,
                 "another edge's secret (or a restart's)");
    edge_auth_nonce(&auth, 1000, nonce);
    snprintf(forged, sizeof(forged), "%s", nonce);
    forged[15] = forged[15] == '9' ? '8' : '9'; /* another issue time, the same MAC */
    cr_expect_eq(edge_auth_check(&auth, forged, "00000001", 1001), EDGE_NONCE_BAD);
    snprintf(forged, sizeof(forged), "%s", nonce);
    forged[23] = forged[23] == '9' ? '8' : '9'; /* another serial, the same MAC */
    cr_expect_eq(edge_auth_check(&auth, forged, "00000001", 1001), EDGE_NONCE_BAD);
    snprintf(forged, sizeof(forged), "%s", nonce);
    forged[56] = forged[56] == '0' ? '1' : '0';
    cr_expect_eq(edge_auth_check(&auth, forged, "00000001", 1001), EDGE_NONCE_BAD);
    cr_expect_eq(edge_auth_check(&auth, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", 1001),
                 EDGE_NONCE_BAD);
    cr_expect_eq(edge_auth_check(&auth, NULL, "00000001", 1001), EDGE_NONCE_BAD);
}

Test(edge_auth, a_nonce_from_the_future_or_a_bad_count_is_bad)
{
    char nonce[EDGE_AUTH_NONCE_MAX];

    edge_auth_init(&auth, secret, 300);
    edge_auth_nonce(&auth, 2000, nonce);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1000), EDGE_NONCE_BAD);
    edge_auth_nonce(&auth, 1000, nonce);
    cr_expect_eq(edge_auth_check(&auth, nonce, "1", 1001), EDGE_NONCE_BAD);
    cr_expect_eq(edge_auth_check(&auth, nonce, "0000000g", 1001), EDGE_NONCE_BAD);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000000", 1001), EDGE_NONCE_BAD);
    cr_expect_eq(edge_auth_check(&auth, nonce, NULL, 1001), EDGE_NONCE_BAD);
    cr_expect_eq(edge_auth_check(&auth, nonce, "00000001", 1001), EDGE_NONCE_OK,
                 "the refused counts were not remembered");
}

/* Every slot taken by a nonce within its lifetime: the next one pushes the
 * oldest out, and that one must not pass again (it would, were it simply
 * forgotten: a replay after a flood of authentications). */
Test(edge_auth, a_nonce_pushed_out_of_a_full_table_is_stale_never_new_again)
{
    char nonce[EDGE_AUTH_NONCE_MAX], first[EDGE_AUTH_NONCE_MAX], second[EDGE_AUTH_NONCE_MAX];
    int64_t now = 100000;

    edge_auth_init(&auth, secret, 100000);
    edge_auth_nonce(&auth, 1, first);
    cr_assert_eq(edge_auth_check(&auth, first, "00000001", now), EDGE_NONCE_OK);
    edge_auth_nonce(&auth, 2, second);
    cr_assert_eq(edge_auth_check(&auth, second, "00000001", now), EDGE_NONCE_OK);
    for (int64_t t = 3; t <= EDGE_AUTH_SEEN_MAX; t++) {
        edge_auth_nonce(&auth, t, nonce);
        cr_assert_eq(edge_auth_check(&auth, nonce, "00000001", now), EDGE_NONCE_OK, "t=%lld",
                     (long long)t);
    }
    cr_assert_eq(edge_auth_check(&auth, first, "00000002", now), EDGE_NONCE_OK,
                 "still remembered: the table is just full");
    edge_auth_nonce(&auth, EDGE_AUTH_SEEN_MAX + 1, nonce);
    cr_assert_eq(edge_auth_check(&auth, nonce, "00000001", now), EDGE_NONCE_OK);
    cr_expect_eq(edge_auth_check(&auth, first, "00000003", now), EDGE_NONCE_STALE,
                 "pushed out: a new challenge, not a fresh start");
    cr_expect_eq(edge_auth_check(&auth, second, "00000002", now), EDGE_NONCE_OK,
                 "the others are still remembered");
    cr_expect_eq(edge_auth_check(&auth, second, "00000002", now), EDGE_NONCE_STALE);
}

Test(edge_auth, the_offered_algorithms_are_a_list_in_order_without_repeats)
{
    enum edge_auth_alg algs[EDGE_AUTH_ALG_COUNT];
    int n = -1;

    cr_assert_eq(edge_auth_algs_parse("SHA-256,MD5", algs, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect_eq(algs[0], EDGE_AUTH_SHA256);
    cr_expect_eq(algs[1], EDGE_AUTH_MD5);
    cr_assert_eq(edge_auth_algs_parse(" md5 ", algs, &n), 0);
    cr_expect_eq(n, 1);
    cr_expect_eq(algs[0], EDGE_AUTH_MD5);
    cr_expect_eq(edge_auth_algs_parse("", algs, &n), -1);
    cr_expect_eq(edge_auth_algs_parse(",", algs, &n), -1);
    cr_expect_eq(edge_auth_algs_parse("MD5,MD5", algs, &n), -1);
    cr_expect_eq(edge_auth_algs_parse("SHA-256,MD5-sess", algs, &n), -1);
    cr_expect_eq(edge_auth_algs_parse("SHA-512", algs, &n), -1);
}

/* Two phones challenged within the same second: two nonces, each good for
 * its own first count. */
Test(edge_auth, challenges_within_one_second_get_nonces_of_their_own)
{
    char a[EDGE_AUTH_NONCE_MAX], b[EDGE_AUTH_NONCE_MAX];

    edge_auth_init(&auth, secret, 300);
    edge_auth_nonce(&auth, 1000, a);
    edge_auth_nonce(&auth, 1000, b);
    cr_assert_str_neq(a, b);
    cr_expect_eq(edge_auth_check(&auth, a, "00000001", 1000), EDGE_NONCE_OK);
    cr_expect_eq(edge_auth_check(&auth, b, "00000001", 1000), EDGE_NONCE_OK);
}
