/* test_edge_flow.c - the table of phones' TCP/TLS connections
 * (edge_flow.c): a flow is found until it expires, a new REGISTER of the
 * same Contact replaces it, an un-REGISTER removes it, the table has a
 * ceiling, and the hop URIs are what sofia-sip's tport looks up. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "edge_flow.h"

static const char *const contact = "sip:2001-0x55@192.0.2.7:5061;transport=tls";

Test(edge_flow, a_flow_is_found_until_it_expires)
{
    struct edge_flows *t = edge_flows_new(10);

    cr_assert_not_null(t);
    cr_expect_null(edge_flows_get(t, "2001", contact, 1000), "nothing before the REGISTER");
    cr_assert_eq(
        edge_flows_set(t, "2001", contact, "sip:198.51.100.9:50312;transport=tls", 61000, 1000), 0);
    cr_expect_str_eq(edge_flows_get(t, "2001", contact, 60999),
                     "sip:198.51.100.9:50312;transport=tls");
    cr_expect_null(edge_flows_get(t, "2001", contact, 61000),
                   "expired: the call goes to the Contact");
    cr_expect_null(edge_flows_get(t, "2001", "sip:2001-0x55@192.0.2.7:5061", 2000),
                   "another Contact (no transport) is another phone");
    edge_flows_free(t);
}

Test(edge_flow, a_new_register_of_the_contact_replaces_its_connection_and_zero_removes_it)
{
    struct edge_flows *t = edge_flows_new(10);

    edge_flows_set(t, "2001", contact, "sip:198.51.100.9:50312;transport=tls", 61000, 1000);
    edge_flows_set(t, "2001", contact, "sip:198.51.100.9:50999;transport=tls", 91000, 31000);
    cr_expect_eq(edge_flows_count(t), 1, "one flow per Contact");
    cr_expect_str_eq(edge_flows_get(t, "2001", contact, 32000),
                     "sip:198.51.100.9:50999;transport=tls");
    edge_flows_remove(t, "2001", contact);
    cr_expect_null(edge_flows_get(t, "2001", contact, 32000));
    cr_expect_eq(edge_flows_count(t), 0);
    edge_flows_remove(t, "2001", contact); /* twice: nothing to do */
    edge_flows_free(t);
}

Test(edge_flow, the_table_has_a_ceiling_and_expired_flows_make_room)
{
    struct edge_flows *t = edge_flows_new(100);
    char c[64];

    for (int i = 0; i < 100; i++) {
        snprintf(c, sizeof(c), "sip:%d@192.0.2.7:5061;transport=tls", i);
        cr_assert_eq(edge_flows_set(t, "2001", c, "sip:192.0.2.7:40000;transport=tls", 5000, 1000),
                     0, "flow %d", i);
    }
    cr_expect_eq(
        edge_flows_set(t, "2001", "sip:x@192.0.2.8", "sip:192.0.2.8:1;transport=tcp", 5000, 1000),
        -1, "full");
    cr_expect_null(edge_flows_get(t, "2001", "sip:x@192.0.2.8", 1000));
    /* expired flows are dropped from the bucket a new one goes into: set
     * them all again after they expired, the count does not grow */
    for (int i = 0; i < 100; i++) {
        snprintf(c, sizeof(c), "sip:%d@192.0.2.7:5061;transport=tls", i);
        cr_assert_eq(edge_flows_set(t, "2001", c, "sip:192.0.2.7:40001;transport=tls", 9000, 6000),
                     0);
    }
    cr_expect_eq(edge_flows_count(t), 100);
    cr_expect_eq(edge_flows_set(t, "2001", contact, "sip:192.0.2.7:1;transport=tls", 9000, 6000),
                 -1, "live flows are never pushed out");
    edge_flows_free(t);
}

/* A phone of DN 2002 that registers 2001's Contact over its own connection
 * does not take 2001's calls: flows are per DN. */
Test(edge_flow, another_dn_registering_the_same_contact_does_not_take_its_flow)
{
    struct edge_flows *t = edge_flows_new(10);

    edge_flows_set(t, "2001", contact, "sip:198.51.100.9:50312;transport=tls", 61000, 1000);
    edge_flows_set(t, "2002", contact, "sip:203.0.113.66:40000;transport=tls", 61000, 1000);
    cr_expect_str_eq(edge_flows_get(t, "2001", contact, 2000),
                     "sip:198.51.100.9:50312;transport=tls");
    cr_expect_str_eq(edge_flows_get(t, "2002", contact, 2000),
                     "sip:203.0.113.66:40000;transport=tls");
    cr_expect_null(edge_flows_get(t, "200", contact, 2000), "a DN that is a prefix of another");
    edge_flows_remove(t, "2002", contact);
    cr_expect_not_null(edge_flows_get(t, "2001", contact, 2000));
    cr_expect_eq(edge_flows_set(t, "20\n01", contact, "sip:1.2.3.4:5;transport=tls", 61000, 1000),
                 -1, "a DN with a line end");
    edge_flows_free(t);
}

Test(edge_flow, a_hop_names_the_far_end_of_the_connection)
{
    char hop[EDGE_FLOW_HOP_MAX];
    struct edge_flows *t = edge_flows_new(1);
    char too_long[EDGE_FLOW_HOP_MAX + 8];

    cr_assert_eq(edge_flow_hop(hop, sizeof(hop), "198.51.100.9", 50312, 0, 1), 0);
    cr_expect_str_eq(hop, "sip:198.51.100.9:50312;transport=tls");
    cr_assert_eq(edge_flow_hop(hop, sizeof(hop), "2001:db8::7", 5060, 1, 0), 0);
    cr_expect_str_eq(hop, "sip:[2001:db8::7]:5060;transport=tcp");
    cr_expect_eq(edge_flow_hop(hop, 16, "198.51.100.9", 50312, 0, 1), -1, "does not fit");
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    cr_expect_eq(edge_flows_set(t, "2001", contact, too_long, 5000, 1000), -1);
    edge_flows_free(t);
}
