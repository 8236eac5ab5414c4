/* test_edge_peers.c - SIPDRAIN_TRUSTED_PEERS (edge_peers.c): CIDR lists,
 * IPv4 and IPv6, the bits at a prefix's edge, bad entries named. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "edge_peers.h"

static bool trusted(const struct edge_peers *p, const char *text)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, text, a) == 1)
        return edge_peers_trusted(p, AF_INET, a);
    cr_assert_eq(inet_pton(AF_INET6, text, a), 1, "%s", text);
    return edge_peers_trusted(p, AF_INET6, a);
}

Test(edge_peers, networks_and_hosts_of_both_families_are_matched_to_their_prefix)
{
    struct edge_peers p;
    char why[128] = "";

    cr_assert_eq(
        edge_peers_parse("127.0.0.1, 10.1.2.0/23,fd00::/8 192.0.2.128/25", &p, why, sizeof(why)), 0,
        "%s", why);
    cr_assert_eq(p.n, 4);
    cr_expect(trusted(&p, "127.0.0.1"));
    cr_expect_not(trusted(&p, "127.0.0.2"), "a bare address is one host");
    cr_expect(trusted(&p, "10.1.2.0"));
    cr_expect(trusted(&p, "10.1.3.255"), "/23 spans 10.1.2.0-10.1.3.255");
    cr_expect_not(trusted(&p, "10.1.4.0"));
    cr_expect_not(trusted(&p, "10.1.1.255"));
    cr_expect(trusted(&p, "192.0.2.128"));
    cr_expect_not(trusted(&p, "192.0.2.127"), "the first bit past a byte boundary counts");
    cr_expect(trusted(&p, "fd12:3456::1"));
    cr_expect_not(trusted(&p, "fe80::1"));
    cr_expect(trusted(&p, "::ffff:127.0.0.1"), "an IPv4-mapped address is its IPv4 one");
    cr_expect_not(trusted(&p, "::ffff:127.0.0.2"));
}

Test(edge_peers, zero_prefixes_and_an_empty_list)
{
    struct edge_peers p;
    char why[128] = "";

    cr_assert_eq(edge_peers_parse("0.0.0.0/0", &p, why, sizeof(why)), 0);
    cr_expect(trusted(&p, "203.0.113.9"), "0.0.0.0/0 is every IPv4 host");
    cr_expect_not(trusted(&p, "2001:db8::1"), "but no IPv6 one");
    cr_assert_eq(edge_peers_parse("", &p, why, sizeof(why)), 0);
    cr_expect_eq(p.n, 0);
    cr_expect_not(trusted(&p, "127.0.0.1"), "an empty list trusts nobody");
}

Test(edge_peers, a_bad_entry_is_refused_and_named)
{
    static const char *const bad[] = {"10.0.0.0/33",  "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8x",
                                      "host.example", "::1/129",   "10.0.0.256", "10.0.0.0/-1"};
    struct edge_peers p;
    char why[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char list[64];
        snprintf(list, sizeof(list), "127.0.0.1,%s", bad[i]);
        why[0] = '\0';
        cr_expect_eq(edge_peers_parse(list, &p, why, sizeof(why)), -1, "%s", bad[i]);
        cr_expect_not_null(strstr(why, bad[i]), "'%s' not named in: %s", bad[i], why);
    }
}
