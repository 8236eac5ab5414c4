/* edge_status.c - edge.status (heartbeat and every change), /readyz and /metrics. */
#include "edge_sip_int.h"

static void publish_health(struct edge_sip *e);

struct edge_load edge_status_load(const struct edge_sip *e)
{
    struct edge_load l = {0, 0, 0};

    for (const struct edge_call *c = e->calls; c != NULL; c = c->next) {
        if (c->st.phase != CALL_ENDED)
            l.active_calls++;
        l.pending_byes += (unsigned)c->st.leg[CALL_LEG_A].bye_pending +
                          (unsigned)c->st.leg[CALL_LEG_B].bye_pending;
    }
    for (const struct unconfirmed_bye *u = e->byes; u != NULL; u = u->next)
        l.pending_byes++;
    for (const struct nailed *n = e->nailed; n != NULL; n = n->next) {
        if (n->call == NULL && n->leg.bye_pending)
            l.pending_byes++;
        else if (n->call == NULL)
            l.nailed_up_dialogs++;
    }
    return l;
}

void edge_status_send_as(struct edge_sip *e, enum edge_state state)
{
    struct edge_load l = edge_status_load(e);
    char started[SD_EVENT_TIME_LEN + 1], bye_at[SD_EVENT_TIME_LEN + 1];
    json_t *d;

    sd_time_format_ms(e->started_ms, started);
    d = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:s}", "edge",
                  e->cfg.edge_id, "site", e->cfg.site, "state", edge_state_name(state),
                  "active_calls", (json_int_t)l.active_calls, "pending_byes",
                  (json_int_t)l.pending_byes, "nailed_up_dialogs", (json_int_t)l.nailed_up_dialogs,
                  "seq", (json_int_t)++e->seq, "started_at", started, "byes_retransmitted",
                  (json_int_t)e->byes_retransmitted, "invites_rejected",
                  (json_int_t)e->invites_rejected, "calls_cut", (json_int_t)e->calls_cut,
                  "registrations", (json_int_t)e->registrations, "sip_url", e->cfg.sip_url);
    if (state != EDGE_ACTIVE && e->fsm.drain.drain_id[0] != '\0')
        json_object_set_new(d, "drain_id", json_string(e->fsm.drain.drain_id));
    if (e->fsm.held && state != EDGE_ACTIVE)
        json_object_set_new(d, "held", json_true());
    if (state == EDGE_BYE_WAIT && e->fsm.bye_until_ms > 0) {
        sd_time_format_ms(e->fsm.bye_until_ms, bye_at);
        json_object_set_new(d, "bye_timeout_at", json_string(bye_at));
    }
    edge_queue_put(e->to_bus, EDGE_MSG_STATUS, 0, d);
}

/* /readyz and /metrics (SIPDRAIN_HTTP_ADDR): ready only while active, so
 * Kubernetes and HTTP-probing load balancers agree with OPTIONS. */
static void publish_health(struct edge_sip *e)
{
    struct edge_load l = edge_status_load(e);
    struct sd_metrics m = {0};
    char labels[256];

    if (e->cfg.http == NULL)
        return;
    sd_http_set_ready(e->cfg.http, e->fsm.state == EDGE_ACTIVE,
                      e->fsm.held ? "drained (held: resume with drainctl resume)"
                                  : edge_state_name(e->fsm.state));
    sd_metrics_family(&m, "sipdrain_edge_state", "gauge",
                      "1 for the drain state the edge is in (edges.state), 0 for the others");
    for (int s = 0; s < EDGE_STATE_COUNT; s++) {
        snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",state=\"%s\"", e->cfg.edge_id,
                 e->cfg.site, edge_state_name((enum edge_state)s));
        sd_metrics_sample(&m, "sipdrain_edge_state", labels, e->fsm.state == (enum edge_state)s);
    }
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    sd_metrics_family(&m, "sipdrain_edge_held", "gauge",
                      "1 while the edge refuses because its site or itself stays drained"
                      " (started under a hold; until drainctl resume)");
    sd_metrics_sample(&m, "sipdrain_edge_held", labels, e->fsm.held);
    sd_metrics_family(&m, "sipdrain_edge_calls_active", "gauge", "calls up or being set up");
    sd_metrics_sample(&m, "sipdrain_edge_calls_active", labels, l.active_calls);
    sd_metrics_family(&m, "sipdrain_edge_calls_total", "counter", "calls handled since start");
    sd_metrics_sample(&m, "sipdrain_edge_calls_total", labels, (double)e->calls_total);
    sd_metrics_family(&m, "sipdrain_edge_byes_pending", "gauge",
                      "BYEs sent and not yet confirmed by 200 OK");
    sd_metrics_sample(&m, "sipdrain_edge_byes_pending", labels, l.pending_byes);
    sd_metrics_family(&m, "sipdrain_edge_byes_retransmitted_total", "counter",
                      "BYEs sent again in new transactions while draining");
    sd_metrics_sample(&m, "sipdrain_edge_byes_retransmitted_total", labels,
                      (double)e->byes_retransmitted);
    sd_metrics_family(&m, "sipdrain_edge_nailed_up_dialogs", "gauge", "idle nailed-up dialogs");
    sd_metrics_sample(&m, "sipdrain_edge_nailed_up_dialogs", labels, l.nailed_up_dialogs);
    sd_metrics_family(&m, "sipdrain_edge_calls_cut_total", "counter",
                      "calls ended by the edge at a drain deadline or a forced stop");
    sd_metrics_sample(&m, "sipdrain_edge_calls_cut_total", labels, (double)e->calls_cut);
    sd_metrics_family(&m, "sipdrain_edge_registrations_total", "counter",
                      "REGISTERs stored since start");
    sd_metrics_sample(&m, "sipdrain_edge_registrations_total", labels, (double)e->registrations);
    sd_metrics_family(&m, "sipdrain_edge_register_auth_total", "counter",
                      "REGISTERs by what became of their credentials (401 challenged or stale,"
                      " 200 accepted, 403 bad_password, no_credentials or wrong_user)");
    for (int o = 0; o < EDGE_AUTH_OUTCOME_COUNT; o++) {
        snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",outcome=\"%s\"", e->cfg.edge_id,
                 e->cfg.site, edge_auth_outcome_names[o]);
        sd_metrics_sample(&m, "sipdrain_edge_register_auth_total", labels,
                          (double)e->auth_outcomes[o]);
    }
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    sd_metrics_family(&m, "sipdrain_edge_requests_refused_total", "counter",
                      "new requests refused before any state was kept (403 answered"
                      " statelessly), by why");
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",why=\"untrusted\"", e->cfg.edge_id,
             e->cfg.site);
    sd_metrics_sample(&m, "sipdrain_edge_requests_refused_total", labels,
                      (double)e->refused_untrusted);
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",why=\"banned\"", e->cfg.edge_id,
             e->cfg.site);
    sd_metrics_sample(&m, "sipdrain_edge_requests_refused_total", labels, (double)e->refused_flood);
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    sd_metrics_family(&m, "sipdrain_edge_sources_banned", "gauge",
                      "source addresses whose requests are dropped now (flood limits)");
    sd_metrics_sample(&m, "sipdrain_edge_sources_banned", labels,
                      (double)edge_flood_banned(&e->flood, sd_mono_ms()));
    sd_metrics_family(&m, "sipdrain_edge_bans_total", "counter", "sources banned since start");
    sd_metrics_sample(&m, "sipdrain_edge_bans_total", labels, (double)e->bans);
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    sd_metrics_family(&m, "sipdrain_edge_invites_rejected_total", "counter",
                      "new INVITEs refused while draining, by SIP status");
    for (int code = 300; code < 700; code++) {
        if (e->rejected_by_code[code] == 0)
            continue;
        snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",code=\"%d\"", e->cfg.edge_id,
                 e->cfg.site, code);
        sd_metrics_sample(&m, "sipdrain_edge_invites_rejected_total", labels,
                          (double)e->rejected_by_code[code]);
    }
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    {
        unsigned long queued = 0;
        for (const struct edge_call *c = e->calls; c != NULL; c = c->next)
            queued += c->st.phase == CALL_QUEUED;
        sd_metrics_family(&m, "sipdrain_edge_calls_queued", "gauge",
                          "route-point calls this edge holds waiting for an agent (182 Queued)");
        sd_metrics_sample(&m, "sipdrain_edge_calls_queued", labels, (double)queued);
    }
    if (e->queue_site_calls >= 0) {
        sd_metrics_family(&m, "sipdrain_site_queue_calls", "gauge",
                          "calls waiting for an agent at the site, at all its edges"
                          " (waiting_calls, as this edge reads it every second)");
        sd_metrics_sample(&m, "sipdrain_site_queue_calls", labels, (double)e->queue_site_calls);
        sd_metrics_family(&m, "sipdrain_site_queue_oldest_wait_seconds", "gauge",
                          "how long the site's oldest waiting call has waited (0: none waits)");
        sd_metrics_sample(&m, "sipdrain_site_queue_oldest_wait_seconds", labels,
                          (double)e->queue_oldest_ms / 1000.0);
    }
    sd_metrics_bus(&m, labels, e->consumer_lag, e->outbox_backlog);
    sd_http_set_metrics(e->cfg.http, m.buf);
    sd_metrics_free(&m);
}

void edge_status_send(struct edge_sip *e)
{
    edge_status_send_as(e, e->fsm.state);
    publish_health(e);
}

void edge_status_on_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    (void)t;
    (void)arg;
    edge_status_send(magic);
}
