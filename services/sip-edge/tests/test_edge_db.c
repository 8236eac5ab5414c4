/* edge_db against the real PostgreSQL: calls routed together in one
 * transaction (edge_db_route_batch, issue #17) come out exactly as each
 * would alone (edge_db_route) - the agent reserved, the calls row, the
 * contact, or the reason for a refusal - including the cases a batch makes
 * possible: two calls to one DN, a Call-ID routed before, more route-point
 * calls than Ready agents, and two connections routing at once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "edge_db.h"
#include "support.h"

static char dsn[512];
static struct sd_pg *pg;

/* A site with agents a1..a5 on DNs 2001..2005, Ready (a1 idle longest),
 * phones registered; a4 logged out, a5's phone not registered; DN 2009
 * unknown. */
static void setup(void)
{
    struct sd_err err = {0};

    sdt_db_create(dsn, sizeof(dsn));
    sdt_pg_run(dsn, "INSERT INTO sites (site_id) VALUES ('site1')");
    sdt_pg_run(dsn, "INSERT INTO edges (edge_id, site, state, last_heartbeat)"
                    " VALUES ('e1', 'site1', 'active', now())");
    sdt_pg_run(dsn, "INSERT INTO agents (agent_id, dn, site, state, ready_since)"
                    " SELECT 'a' || g, (2000 + g)::text, 'site1',"
                    " CASE g WHEN 4 THEN 'logged_out' ELSE 'ready' END,"
                    " now() - (10 - g) * interval '1 minute' FROM generate_series(1, 5) g");
    sdt_pg_run(dsn, "INSERT INTO registrations (dn, contact, edge_id, expires_at)"
                    " SELECT (2000 + g)::text, 'sip:' || (2000 + g) || '@127.0.0.1:5999', 'e1',"
                    " now() + interval '1 hour' FROM generate_series(1, 4) g");
    pg = sd_pg_new(dsn, "test-edge-db");
    cr_assert_eq(sd_pg_connect_wait(pg, 10000, &err), 0, "%s", err.text);
}

static void teardown(void)
{
    sd_pg_free(pg);
}

TestSuite(edge_db, .init = setup, .fini = teardown, .timeout = 60);

static struct edge_route route(const char *call_id, const char *dn, bool route_point)
{
    return (struct edge_route){.call_id = call_id,
                               .dn = dn,
                               .site = "site1",
                               .edge_id = "e1",
                               .route_point = route_point,
                               .behind_queue = route_point};
}

static void batch(struct edge_route *r, size_t n)
{
    struct sd_err err = {0};

    cr_assert_eq(sd_pg_begin(pg, &err), 0, "%s", err.text);
    cr_assert_eq(edge_db_route_batch(pg, r, n, &err), 0, "%s", err.text);
    cr_assert_eq(sd_pg_commit(pg, &err), 0, "%s", err.text);
}

static long scalar(const char *sql)
{
    return sdt_pg_scalar(dsn, sql);
}

Test(edge_db, calls_to_dns_routed_together_reserve_each_agent_and_refuse_as_alone)
{
    struct edge_route r[] = {
        route("c1", "2001", false), route("c2", "2002", false), route("c3", "2004", false),
        route("c4", "2005", false), route("c5", "2009", false),
    };

    batch(r, 5);
    cr_expect_eq(r[0].status, 0);
    cr_expect_str_eq(r[0].agent_id, "a1");
    cr_expect_str_eq(r[0].agent_dn, "2001");
    cr_expect_str_eq(r[0].contact, "sip:2001@127.0.0.1:5999");
    cr_expect_str_eq(r[0].call_id_used, "c1");
    cr_expect_eq(r[1].status, 0);
    cr_expect_str_eq(r[1].agent_id, "a2");
    cr_expect_eq(r[2].status, 480);
    cr_expect_str_eq(r[2].reason, "agent_not_available");
    cr_expect_eq(r[3].status, 480);
    cr_expect_str_eq(r[3].reason, "not_registered");
    cr_expect_eq(r[4].status, 404);
    cr_expect_str_eq(r[4].reason, "unknown_dn");
    cr_expect_eq(scalar("SELECT count(*) FROM agents WHERE (agent_id, call_id) IN"
                        " (('a1', 'c1'), ('a2', 'c2'))"),
                 2);
    cr_expect_eq(scalar("SELECT count(*) FROM agents WHERE call_id IS NOT NULL"), 2);
    cr_expect_eq(scalar("SELECT count(*) FROM calls WHERE (call_id, agent_id, edge_id, site, state,"
                        " direction) IN (('c1', 'a1', 'e1', 'site1', 'offered', 'inbound'),"
                        " ('c2', 'a2', 'e1', 'site1', 'offered', 'inbound'))"),
                 2);
    cr_expect_eq(scalar("SELECT count(*) FROM calls"), 2);
}

Test(edge_db, two_calls_to_one_dn_in_a_batch_the_first_gets_the_agent_the_second_busy)
{
    struct edge_route r[] = {route("first", "2003", false), route("second", "2003", false)};

    batch(r, 2);
    cr_expect_eq(r[0].status, 0);
    cr_expect_str_eq(r[0].agent_id, "a3");
    cr_expect_eq(r[1].status, 486);
    cr_expect_str_eq(r[1].reason, "agent_busy");
    cr_expect_eq(scalar("SELECT count(*) FROM agents WHERE agent_id = 'a3' AND call_id = 'first'"),
                 1);
    cr_expect_eq(scalar("SELECT count(*) FROM calls"), 1);
}

Test(edge_db, a_call_id_routed_before_gets_a_new_id_and_its_agent_follows)
{
    struct edge_route r[] = {route("same", "2001", false), route("other", "2002", false)};

    sdt_pg_run(dsn, "INSERT INTO calls (call_id, edge_id, site, direction, state)"
                    " VALUES ('same', 'e1', 'site1', 'inbound', 'ended')");
    batch(r, 2);
    cr_expect_eq(r[0].status, 0);
    cr_expect(strncmp(r[0].call_id_used, "same~e1~", 8) == 0, "%s", r[0].call_id_used);
    cr_expect_str_eq(r[1].call_id_used, "other");
    cr_expect_eq(scalar("SELECT count(*) FROM agents a JOIN calls c ON c.call_id = a.call_id"
                        " AND c.agent_id = a.agent_id WHERE a.agent_id = 'a1'"
                        " AND c.call_id LIKE 'same~e1~%' AND c.state = 'offered'"),
                 1);
    cr_expect_eq(scalar("SELECT count(*) FROM calls WHERE call_id = 'same' AND state = 'ended'"),
                 1);
}

Test(edge_db, route_point_calls_get_the_longest_idle_agents_in_order_and_the_rest_no_agent)
{
    /* Ready with a registered phone: a1, a2, a3 (a1 idle longest); a5 has
     * no phone. Four calls: three agents. */
    struct edge_route r[] = {route("p1", "7000", true), route("p2", "7000", true),
                             route("d2", "2002", false), route("p3", "7000", true),
                             route("p4", "7000", true)};

    batch(r, 5);
    /* the DN call is routed first (one statement for DNs, then route
     * points): a2 is taken before the route points pick */
    cr_expect_eq(r[2].status, 0);
    cr_expect_str_eq(r[2].agent_id, "a2");
    cr_expect_eq(r[0].status, 0);
    cr_expect_str_eq(r[0].agent_id, "a1");
    cr_expect_eq(r[1].status, 0);
    cr_expect_str_eq(r[1].agent_id, "a3");
    cr_expect_eq(r[3].status, 480);
    cr_expect_str_eq(r[3].reason, "no_agent");
    cr_expect_eq(r[4].status, 480);
    cr_expect_eq(scalar("SELECT count(*) FROM calls"), 3);
    cr_expect_eq(scalar("SELECT count(*) FROM agents WHERE call_id IS NOT NULL"), 3);
}

Test(edge_db, route_point_calls_behind_waiting_calls_get_no_agent)
{
    struct edge_route r[] = {route("p1", "7000", true), route("p2", "7000", true)};

    sdt_pg_run(dsn, "INSERT INTO waiting_calls (edge_id, call_id, site, route_point, token,"
                    " queued_at, deadline) VALUES ('e1', 'w', 'site1', '7000', 1, now(),"
                    " now() + interval '1 minute')");
    batch(r, 2);
    cr_expect_eq(r[0].status, 480);
    cr_expect_eq(r[1].status, 480);
    cr_expect_eq(scalar("SELECT count(*) FROM agents WHERE call_id IS NOT NULL"), 0);
}

/* Two connections route overlapping batches at once, in opposite orders,
 * many times: every call gets a distinct agent or a refusal, no deadlock
 * (the agents are locked in one order). */
struct racer {
    const char *prefix;
    bool reverse;
    int routed, failed;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    struct sd_pg *c = sd_pg_new(dsn, "test-edge-db-race");
    struct sd_err err = {0};

    if (sd_pg_connect_wait(c, 10000, &err) < 0) {
        x->failed++;
        return NULL;
    }
    for (int round = 0; round < 50; round++) {
        char ids[3][32];
        const char *dns[3] = {"2001", "2002", "2003"};
        struct edge_route r[3];

        for (int k = 0; k < 3; k++) {
            snprintf(ids[k], sizeof(ids[k]), "%s-%d-%d", x->prefix, round, k);
            r[k] = route(ids[k], dns[x->reverse ? 2 - k : k], false);
        }
        if (sd_pg_begin(c, &err) < 0 || edge_db_route_batch(c, r, 3, &err) < 0 ||
            sd_pg_commit(c, &err) < 0) {
            sd_pg_rollback(c);
            x->failed++;
            continue;
        }
        for (int k = 0; k < 3; k++) {
            x->routed += r[k].status == 0;
            /* a refusal here can only be the other's call on the agent */
            if (r[k].status != 0 && r[k].status != 486)
                x->failed++;
        }
        /* free the agents again (what agent-state does after call.ended) */
        if (sd_pg_exec(c, "UPDATE agents SET call_id = NULL WHERE call_id LIKE $1 || '-%'", 1,
                       &x->prefix, &err) < 0)
            x->failed++;
    }
    sd_pg_free(c);
    return NULL;
}

Test(edge_db, two_edges_routing_overlapping_batches_never_deadlock_or_share_an_agent)
{
    struct racer a = {"A", false, 0, 0}, b = {"B", true, 0, 0};
    pthread_t ta, tb;

    cr_assert_eq(pthread_create(&ta, NULL, race, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_expect_eq(a.failed + b.failed, 0, "batches failed: %d (deadlock or error)",
                 a.failed + b.failed);
    /* both made progress (how far depends on how the two interleave: a
     * batch that finds the other's calls on the agents gets 486s) */
    cr_expect_gt(a.routed, 0, "A routed nothing");
    cr_expect_gt(b.routed, 0, "B routed nothing");
    /* a calls row for every call routed, none for a refused one */
    cr_expect_eq(scalar("SELECT count(*) FROM calls"), a.routed + b.routed);
    cr_expect_eq(scalar("SELECT count(*) FROM agents WHERE call_id IS NOT NULL"), 0);
}
