/* test_sip_queue - route-point calls that wait for an agent (issue #16),
 * against real sip-edge processes, PostgreSQL, Kafka and SIPp peers: first
 * come first served across two edges of a site, the wait's end, a full
 * queue, a CANCEL while waiting, and a phone that rings out. The SIPp
 * gateways check the dialog (182 Queued, then the same To tag on every
 * later answer); the order and the counts are read from the database and
 * the call.* events, not from the scenarios' verdicts. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "edge_harness.h"
#include "sipdrain/event.h"
#include "support.h"

#define RP "7000" /* the route point of every test */

/* Waits until sql (a count) gives want. */
static void wait_count(struct edge_env *e, const char *sql, long want, const char *what)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    long got;

    while ((got = sdt_pg_scalar(e->dsn, sql)) != want) {
        cr_assert_lt(sd_mono_ms(), deadline, "%s: %ld, want %ld (%s)", what, got, want, sql);
        usleep(50000);
    }
}

/* The id of the newest waiting call, as a number (hashtext of call_id):
 * sdt_pg_scalar reads numbers only. */
static long newest_waiting(struct edge_env *e)
{
    return sdt_pg_scalar(e->dsn, "SELECT hashtext(call_id) FROM waiting_calls"
                                 " ORDER BY queued_at DESC LIMIT 1");
}

/* A gateway's queued call to the route point at edge p, in the background;
 * returns once its waiting_calls row is there (n rows in all). */
static pid_t queued_call(struct edge_env *e, struct edge_proc *p, struct sdp_keys *sk, long n,
                         long *id)
{
    static const char *const hold[] = {"hold_ms", "300", NULL};
    char sql[128];
    pid_t pid = sdt_sipp_start("gateway_queued_call", p->port, RP,
                               sdp_pair_keys(sk, e, "gw", "phone", hold));

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM waiting_calls");
    wait_count(e, sql, n, "calls waiting");
    *id = newest_waiting(e);
    return pid;
}

static size_t count_type(const struct call_events *ce, const char *type, const char *key,
                         const char *value)
{
    size_t n = 0;

    for (size_t i = 0; i < ce->n; i++)
        n += !strcmp(ce->type[i], type) && (key == NULL || !strcmp(field(ce->data[i], key), value));
    return n;
}

Test(sip_queue, the_oldest_waiting_call_of_the_site_gets_each_agent_across_two_edges,
     .timeout = 240)
{
    struct edge_env e;
    struct edge_proc a, b;
    struct sdp_keys sk;
    struct call_events ce;
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=60", NULL};
    const char *agents[3] = {"a1", "a2", "a3"}, *dns[3] = {"2001", "2002", "2003"};
    struct edge_proc *at[3] = {&a, &b, &a}; /* call k comes in at this edge */
    pid_t gw[3], phone[3];
    long id[3];
    char sql[256];

    env_setup(&e);
    edge_start(&e, &a, "edge-2a", extra);
    edge_start(&e, &b, "edge-2b", extra);
    for (int k = 0; k < 3; k++)
        phone[k] = phone_start(&e, &a, "phone_answer", dns[k],
                               sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    /* No agent is Ready: three calls wait, the second at the other edge. */
    for (int k = 0; k < 3; k++)
        gw[k] = queued_call(&e, at[k], &sk, k + 1, &id[k]);
    cr_expect_eq(
        sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls WHERE edge_id = 'edge-2b'"), 1);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0, "nobody offered yet");
    /* Agents become Ready one by one: each takes the oldest waiting call,
     * whichever edge holds it. */
    for (int k = 0; k < 3; k++) {
        agent_ready(&e, agents[k], dns[k], 1);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM calls WHERE agent_id = '%s'", agents[k]);
        wait_count(&e, sql, 1, "the agent's offer");
        snprintf(sql, sizeof(sql),
                 "SELECT hashtext(split_part(call_id, '~', 1)) FROM calls WHERE agent_id = '%s'",
                 agents[k]);
        cr_expect_eq(sdt_pg_scalar(e.dsn, sql), id[k], "agent %s got call %d of 3", agents[k],
                     k + 1);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM calls WHERE agent_id = '%s' AND edge_id = '%s'", agents[k],
                 at[k]->id);
        cr_expect_eq(sdt_pg_scalar(e.dsn, sql), 1, "offered by the edge holding the caller");
        cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls"), 2 - k);
    }
    for (int k = 0; k < 3; k++) {
        cr_expect_eq(sdt_sipp_wait(gw[k], WAIT_MS), 0, "gateway %d: queued, answered, same dialog",
                     k + 1);
        cr_expect_eq(sdt_sipp_wait(phone[k], WAIT_MS), 0, "phone %s", dns[k]);
    }
    wait_count(&e, "SELECT count(*) FROM calls WHERE state = 'ended' AND answered_at IS NOT NULL",
               3, "calls answered and ended");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 3, "no call offered twice");
    /* 3 x (queued, dequeued, offered, established, ended) */
    call_events_read(&e, &ce, 15);
    cr_expect_eq(count_type(&ce, "call.queued", NULL, NULL), 3);
    cr_expect_eq(count_type(&ce, "call.dequeued", "reason", "offered"), 3);
    cr_expect_eq(count_type(&ce, "call.offered", "route_point", RP), 3);
    cr_expect_eq(count_type(&ce, "call.ended", "end_cause", "caller_hangup"), 3);
    call_events_free(&ce);
    kill(a.pid, SIGTERM);
    kill(b.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&a, WAIT_MS), 0);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), 0);
}

Test(sip_queue, a_call_that_waits_too_long_is_refused_480_queue_timeout, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=2", NULL};
    int64_t t0, waited;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    t0 = sd_mono_ms();
    cr_expect_eq(
        sdt_sipp("gateway_queued_timeout", p.port, RP, sdp_pair_keys(&sk, &e, "gw", "phone", NULL)),
        0, "182, then 480 with Retry-After on the same dialog");
    waited = sd_mono_ms() - t0;
    cr_expect_geq(waited, 1900, "refused after the wait, not before: %lld ms", (long long)waited);
    cr_expect_lt(waited, 8000, "refused soon after the wait: %lld ms", (long long)waited);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls"), 0);
    call_events_read(&e, &ce, 3);
    cr_expect_eq(count_type(&ce, "call.queued", NULL, NULL), 1);
    cr_expect_eq(count_type(&ce, "call.dequeued", "reason", "queue_timeout"), 1);
    cr_expect_eq(count_type(&ce, "call.rejected", "reason", "queue_timeout"), 1);
    call_events_free(&ce);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_queue, a_full_queue_refuses_at_once_and_a_cancel_leaves_the_queue, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    char http[64], body[16384];
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=60",
                           "SIPDRAIN_QUEUE_MAX_CALLS=1", http, NULL};
    const char *ring[] = {"ring_ms", "3000", NULL};
    int port = sdt_free_port();
    int64_t deadline;
    pid_t waiting;

    snprintf(http, sizeof(http), "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", port);
    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    waiting = sdt_sipp_start("gateway_queued_cancel", p.port, RP,
                             sdp_pair_keys(&sk, &e, "gw", "phone", ring));
    wait_count(&e, "SELECT count(*) FROM waiting_calls", 1, "the first call waits");
    cr_expect_eq(sdt_sipp("invite_refused_4xx", p.port, RP, NULL), 0, "the second is refused");
    /* /metrics: this edge's waiting call and the site's queue (read every second) */
    deadline = sd_mono_ms() + 5000;
    do {
        cr_assert_eq(sdt_http_get(port, "/metrics", body, sizeof(body)), 200);
        if (strstr(body, "sipdrain_site_queue_calls{edge=\"edge-2a\",site=\"site2\"} 1\n"))
            break;
        usleep(100000);
    } while (sd_mono_ms() < deadline);
    cr_expect(strstr(body, "sipdrain_edge_calls_queued{edge=\"edge-2a\",site=\"site2\"} 1\n") !=
                  NULL,
              "%s", body);
    cr_expect(strstr(body, "sipdrain_site_queue_calls{edge=\"edge-2a\",site=\"site2\"} 1\n") !=
                  NULL,
              "%s", body);
    cr_expect(
        strstr(body,
               "sipdrain_site_queue_oldest_wait_seconds{edge=\"edge-2a\",site=\"site2\"} 0\n") ==
            NULL,
        "the oldest call has waited: %s", body);
    cr_expect_eq(sdt_sipp_wait(waiting, WAIT_MS), 0, "182, CANCEL, 487 on the same dialog");
    wait_count(&e, "SELECT count(*) FROM waiting_calls", 0, "the cancelled call left the queue");
    call_events_read(&e, &ce, 3);
    cr_expect_eq(count_type(&ce, "call.queued", NULL, NULL), 1);
    cr_expect_eq(count_type(&ce, "call.rejected", "reason", "queue_full"), 1);
    cr_expect_eq(count_type(&ce, "call.dequeued", "reason", "cancelled"), 1);
    call_events_free(&ce);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0,
                 "nobody was offered a call");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* A phone that rings out: CANCELled after SIPDRAIN_RING_TIMEOUT, its offer
 * ends no_answer (call.ended with route_point: agent-state sets the agent
 * NotReady), and the call goes back to the queue in its first place -
 * ahead of a call that came after it and waits meanwhile - so the next
 * Ready agent gets it, with the caller's SDP. */
Test(sip_queue, a_phone_that_rings_out_sends_the_call_back_to_the_head_of_the_queue, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=60",
                           "SIPDRAIN_RING_TIMEOUT=2", NULL};
    const char *hold[] = {"hold_ms", "300", NULL};
    pid_t silent, first, second, gw_x, gw_y;
    long id_y, x;
    int64_t t0;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a-silent", "2001", 60);
    silent =
        phone_start(&e, &p, "phone_no_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    first =
        phone_start(&e, &p, "phone_answer", "2002", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    second =
        phone_start(&e, &p, "phone_answer", "2003", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    /* X goes straight to the only Ready agent, whose phone only rings */
    t0 = sd_mono_ms();
    gw_x = sdt_sipp_start("gateway_call", p.port, RP, sdp_pair_keys(&sk, &e, "gw", "phone", hold));
    wait_count(&e, "SELECT count(*) FROM calls WHERE agent_id = 'a-silent'", 1, "X rings");
    x = sdt_pg_scalar(e.dsn, "SELECT hashtext(call_id) FROM calls WHERE agent_id = 'a-silent'");
    /* Y comes after X and waits */
    gw_y = queued_call(&e, &p, &sk, 1, &id_y);
    /* X rings out and waits again: ahead of Y */
    wait_count(&e, "SELECT count(*) FROM waiting_calls", 2, "X back in the queue");
    cr_expect_geq(sd_mono_ms() - t0, 1900, "X rang the ring timeout first");
    cr_expect_eq(sdt_sipp_wait(silent, WAIT_MS), 0, "the silent phone got the edge's CANCEL");
    agent_ready(&e, "a-first", "2002", 1);
    wait_count(&e, "SELECT count(*) FROM calls WHERE agent_id = 'a-first'", 1, "a-first's offer");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT hashtext(split_part(call_id, '~', 1)) FROM calls"
                                      " WHERE agent_id = 'a-first'"),
                 x, "the next Ready agent gets X, which came first, not Y");
    agent_ready(&e, "a-second", "2003", 1);
    wait_count(&e, "SELECT count(*) FROM calls WHERE agent_id = 'a-second'", 1, "a-second's offer");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT hashtext(call_id) FROM calls"
                                      " WHERE agent_id = 'a-second'"),
                 id_y);
    cr_expect_eq(sdt_sipp_wait(gw_x, WAIT_MS), 0, "X answered by a-first, the caller's SDP intact");
    cr_expect_eq(sdt_sipp_wait(gw_y, WAIT_MS), 0, "Y: queued, then answered");
    cr_expect_eq(sdt_sipp_wait(first, WAIT_MS), 0);
    cr_expect_eq(sdt_sipp_wait(second, WAIT_MS), 0);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a-silent'"
                                      " AND end_cause = 'no_answer' AND answered_at IS NULL"),
                 1);
    wait_count(&e, "SELECT count(*) FROM calls WHERE answered_at IS NOT NULL AND state = 'ended'",
               2, "X and Y answered and ended");
    /* X: offered, ended no_answer, queued, dequeued, offered, established,
     * ended; Y: queued, dequeued, offered, established, ended */
    call_events_read(&e, &ce, 12);
    cr_expect_eq(count_type(&ce, "call.ended", "end_cause", "no_answer"), 1);
    for (size_t i = 0; i < ce.n; i++) {
        if (!strcmp(ce.type[i], "call.ended") &&
            !strcmp(field(ce.data[i], "end_cause"), "no_answer"))
            cr_expect_str_eq(field(ce.data[i], "route_point"), RP);
    }
    cr_expect_eq(count_type(&ce, "call.queued", NULL, NULL), 2, "Y once, X again");
    call_events_free(&ce);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_queue, a_site_drain_sends_the_waiting_calls_to_the_peer_site_where_agents_answer,
     .timeout = 240)
{
    struct edge_env e;
    struct edge_proc peer, p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *peer_extra[] = {"SIPDRAIN_SITE=site1", "SIPDRAIN_ROUTE_POINTS=" RP, NULL};
    char peer_uri[96];
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=60", peer_uri,
                           NULL};
    pid_t gw[2], phone[2];
    long id;

    env_setup(&e);
    edge_start(&e, &peer, "edge-1a", peer_extra);
    snprintf(peer_uri, sizeof(peer_uri), "SIPDRAIN_PEER_SITE_URI=sip:127.0.0.1:%d", peer.port);
    edge_start(&e, &p, "edge-2a", extra);
    /* site1 has two Ready agents; site2 none: its calls wait */
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, ready_since) VALUES"
                      " ('b1', '1001', 'site1', 'ready', now() - interval '20 seconds'),"
                      " ('b2', '1002', 'site1', 'ready', now() - interval '10 seconds')");
    phone[0] =
        phone_start(&e, &peer, "phone_answer", "1001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    phone[1] =
        phone_start(&e, &peer, "phone_answer", "1002", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gw[0] = queued_call(&e, &p, &sk, 1, &id);
    gw[1] = queued_call(&e, &p, &sk, 2, &id);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0,
                 "site1's agents are not "
                 "site2's");
    drain(&e, "edge-2a", DRAIN_A, "site", json_pack("{s:i}", "sip_timeout_s", 0));
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(sdt_sipp_wait(gw[k], WAIT_MS), 0,
                     "gateway %d: queued at site2, answered from site1 on the same dialog", k + 1);
        cr_expect_eq(sdt_sipp_wait(phone[k], WAIT_MS), 0, "site1 phone %d", k + 1);
    }
    wait_count(&e,
               "SELECT count(*) FROM calls WHERE edge_id = 'edge-1a' AND agent_id IN ('b1', 'b2')"
               " AND answered_at IS NOT NULL AND state = 'ended'",
               2, "answered by site1's agents");
    wait_count(&e,
               "SELECT count(*) FROM calls WHERE edge_id = 'edge-2a' AND agent_id IS NULL"
               " AND answered_at IS NOT NULL AND state = 'ended'",
               2, "site2's legs to the peer site");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls"), 0);
    wait_edge_state(&e, "edge-2a", "drained");
    call_events_read(&e, &ce, 2 * 2 + 2 * 3); /* site2: queued, dequeued; site1: the calls */
    cr_expect_eq(count_type(&ce, "call.dequeued", "reason", "peer_site"), 2);
    cr_expect_eq(count_type(&ce, "call.rejected", NULL, NULL), 0, "no call refused");
    cr_expect_eq(count_type(&ce, "call.offered", "edge", "edge-1a"), 2);
    cr_expect_eq(count_type(&ce, "call.offered", "edge", "edge-2a"), 0);
    call_events_free(&ce);
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
    kill(peer.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&peer, WAIT_MS), 0);
}

/* An edge killed while calls wait loses its own callers (their INVITE
 * transactions die with it: the gateway must try again, as with any B2BUA)
 * and nothing else: its rows hold the head of the queue 5 s at most, no
 * agent is ever reserved for one of its dead calls, the other edge's calls
 * are served in order, and the edge started again removes its old rows. */
Test(sip_queue, an_edge_killed_while_calls_wait_takes_only_its_own_callers, .timeout = 240)
{
    struct edge_env e;
    struct edge_proc a, b;
    struct sdp_keys sk;
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=60", NULL};
    pid_t gw[4], phone[3];
    long id[4];
    char sql[256];

    env_setup(&e);
    edge_start(&e, &a, "edge-2a", extra);
    edge_start(&e, &b, "edge-2b", extra);
    phone[0] =
        phone_start(&e, &a, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    phone[1] =
        phone_start(&e, &a, "phone_answer", "2002", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gw[0] = queued_call(&e, &a, &sk, 1, &id[0]);
    gw[1] = queued_call(&e, &b, &sk, 2, &id[1]); /* at the edge about to die */
    gw[2] = queued_call(&e, &a, &sk, 3, &id[2]);
    kill(b.pid, SIGKILL);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), -1);
    agent_ready(&e, "a1", "2001", 1);
    wait_count(&e, "SELECT count(*) FROM calls WHERE agent_id = 'a1'", 1, "a1's offer");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT hashtext(call_id) FROM calls WHERE agent_id = 'a1'"),
                 id[0], "the oldest call");
    agent_ready(&e, "a2", "2002", 1);
    wait_count(&e, "SELECT count(*) FROM calls WHERE agent_id = 'a2'", 1,
               "a2's offer, once the dead edge's row no longer holds the head");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT hashtext(call_id) FROM calls WHERE agent_id = 'a2'"),
                 id[2], "the third call: the second died with its edge");
    for (int k = 0; k < 3; k += 2)
        cr_expect_eq(sdt_sipp_wait(gw[k], WAIT_MS), 0, "gateway %d", k + 1);
    kill(gw[1], SIGKILL);
    sdt_wait(gw[1], WAIT_MS);
    for (int k = 0; k < 2; k++)
        cr_expect_eq(sdt_sipp_wait(phone[k], WAIT_MS), 0, "phone %d", k + 1);
    /* started again: its old row goes; a new call there waits and is served */
    edge_start(&e, &b, "edge-2b", extra);
    wait_count(&e, "SELECT count(*) FROM waiting_calls", 0, "the dead edge's row removed");
    phone[2] =
        phone_start(&e, &b, "phone_answer", "2003", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gw[3] = queued_call(&e, &b, &sk, 1, &id[3]);
    agent_ready(&e, "a3", "2003", 1);
    cr_expect_eq(sdt_sipp_wait(gw[3], WAIT_MS), 0, "a new call at the restarted edge");
    cr_expect_eq(sdt_sipp_wait(phone[2], WAIT_MS), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM calls WHERE hashtext(call_id) = %ld", id[1]);
    cr_expect_eq(sdt_pg_scalar(e.dsn, sql), 0, "no agent was offered the dead call");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 3, "none offered twice");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE call_id IS NOT NULL"
                                      " AND call_id NOT IN (SELECT call_id FROM calls)"),
                 0, "no agent reserved for a call that is not there");
    kill(a.pid, SIGTERM);
    kill(b.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&a, WAIT_MS), 0);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), 0);
}

/* An edge restarted the way a supervisor does it (SIGTERM: it drains
 * itself) while calls wait there: it refuses new calls at once, its
 * waiting calls are still served by the site's agents, in order with the
 * other edge's, it stops once they are over, and it comes back and queues
 * again. No call lost, none offered twice. */
Test(sip_queue, an_edge_restarted_with_sigterm_while_calls_wait_serves_them_first, .timeout = 240)
{
    struct edge_env e;
    struct edge_proc a, b;
    struct sdp_keys sk;
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=" RP, "SIPDRAIN_QUEUE_MAX_WAIT=60",
                           "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=0", NULL};
    const char *agents[3] = {"a1", "a2", "a3"}, *dns[3] = {"2001", "2002", "2003"};
    const char *refused[] = {"retry_after", "30", NULL};
    pid_t gw[3], phone[3];
    long id[3];
    char sql[256];

    env_setup(&e);
    edge_start(&e, &a, "edge-2a", extra);
    edge_start(&e, &b, "edge-2b", extra);
    for (int k = 0; k < 3; k++)
        phone[k] = phone_start(&e, &a, "phone_answer", dns[k],
                               sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gw[0] = queued_call(&e, &b, &sk, 1, &id[0]); /* at the edge about to restart */
    gw[1] = queued_call(&e, &a, &sk, 2, &id[1]);
    kill(b.pid, SIGTERM);
    wait_edge_state(&e, "edge-2b", "draining");
    cr_expect_eq(sdt_sipp("invite_refused_503", b.port, RP, refused), 0,
                 "the stopping edge refuses a new call at once");
    for (int k = 0; k < 2; k++) {
        agent_ready(&e, agents[k], dns[k], 1);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM calls WHERE agent_id = '%s'", agents[k]);
        wait_count(&e, sql, 1, "the agent's offer");
        snprintf(sql, sizeof(sql), "SELECT hashtext(call_id) FROM calls WHERE agent_id = '%s'",
                 agents[k]);
        cr_expect_eq(sdt_pg_scalar(e.dsn, sql), id[k], "agent %s got call %d of 2", agents[k],
                     k + 1);
    }
    for (int k = 0; k < 2; k++)
        cr_expect_eq(sdt_sipp_wait(gw[k], WAIT_MS), 0, "gateway %d: queued, then answered", k + 1);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), 0, "edge-2b stops once its call is over (%s)", b.log);
    /* back again: it queues and serves as before */
    edge_start(&e, &b, "edge-2b", extra);
    gw[2] = queued_call(&e, &b, &sk, 1, &id[2]);
    agent_ready(&e, agents[2], dns[2], 1);
    cr_expect_eq(sdt_sipp_wait(gw[2], WAIT_MS), 0, "a call at the restarted edge");
    for (int k = 0; k < 3; k++)
        cr_expect_eq(sdt_sipp_wait(phone[k], WAIT_MS), 0, "phone %s", dns[k]);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 3, "none offered twice");
    wait_count(&e, "SELECT count(*) FROM calls WHERE answered_at IS NOT NULL AND state = 'ended'",
               3, "every call answered and ended");
    kill(a.pid, SIGTERM);
    kill(b.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&a, WAIT_MS), 0);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), 0);
}
