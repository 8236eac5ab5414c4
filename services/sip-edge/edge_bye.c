/* edge_bye.c - the BYE wait: BYEs the far end did not confirm, sent again
 * within their dialog until graceful-shutdown-sip-timeout, then given up. */
#include "edge_sip_int.h"

static void leg_ref(const struct edge_leg *l, char *out, size_t size);
static const char *leg_name(const struct edge_leg *l);
static void unconfirmed_free(struct unconfirmed_bye *u);
static void leg_give_up_bye(struct edge_leg *l);

/* The call a leg belongs to, for the log. */
static void leg_ref(const struct edge_leg *l, char *out, size_t size)
{
    if (l->call != NULL)
        snprintf(out, size, "%s", l->call->call_id);
    else
        snprintf(out, size, "nailed-up:%s", l->nailed ? l->nailed->agent_id : "?");
}

static const char *leg_name(const struct edge_leg *l)
{
    return l->is_a ? "caller" : "agent";
}

/* Keeps the dialog of a BYE the far end did not confirm, to send it again
 * in new transactions during bye_wait. Its identifiers come from `sip`,
 * the answer to that BYE: the far end's, or the one the transaction layer
 * makes from our own request on a timeout or a transport error
 * (NTATAG_TIMEOUT_408), so From, To (both tags), Call-ID and CSeq are
 * exactly those of the BYE that went out. 481: the far end knows no such
 * dialog, which is as good as a 200. */
void edge_bye_remember(struct edge_sip *e, struct edge_leg *l, int status, const sip_t *sip)
{
    struct unconfirmed_bye *u;
    char *from = NULL, *to = NULL, ref[256];

    leg_ref(l, ref, sizeof(ref));
    if (status == 481)
        return;
    if (sip == NULL || sip->sip_from == NULL || sip->sip_to == NULL || sip->sip_cseq == NULL ||
        sip->sip_call_id == NULL || sip->sip_from->a_tag == NULL || sip->sip_to->a_tag == NULL ||
        l->target[0] == '\0') {
        sd_log_warn("BYE unconfirmed and cannot be sent again: its dialog is not known",
                    "call=%s leg=%s status=%d", ref, leg_name(l), status);
        return;
    }
    u = calloc(1, sizeof(*u));
    from = sip_header_as_string(e->home, (const sip_header_t *)sip->sip_from);
    to = sip_header_as_string(e->home, (const sip_header_t *)sip->sip_to);
    if (u == NULL || from == NULL || to == NULL) {
        free(u);
        su_free(e->home, from);
        su_free(e->home, to);
        sd_log_warn("BYE unconfirmed and cannot be sent again: out of memory",
                    "call=%s leg=%s status=%d", ref, leg_name(l), status);
        return;
    }
    u->leg.retry = u;
    u->leg.is_a = l->is_a;
    snprintf(u->call_ref, sizeof(u->call_ref), "%s", ref);
    snprintf(u->leg_name, sizeof(u->leg_name), "%s", leg_name(l));
    snprintf(u->call_id, sizeof(u->call_id), "%s", sip->sip_call_id->i_id);
    snprintf(u->from, sizeof(u->from), "%s", from);
    snprintf(u->to, sizeof(u->to), "%s", to);
    snprintf(u->target, sizeof(u->target), "%s", l->target);
    snprintf(u->route, sizeof(u->route), "%s", l->route);
    snprintf(u->reason, sizeof(u->reason), "%s", l->bye_reason);
    u->cseq = sip->sip_cseq->cs_seq;
    u->transactions = 1;
    su_free(e->home, from);
    su_free(e->home, to);
    u->next = e->byes;
    e->byes = u;
    sd_log_info("BYE unconfirmed: will be sent again in the dialog while the edge drains",
                "call=%s leg=%s status=%d call_id=%s cseq=%u target=%s route=\"%s\"", u->call_ref,
                u->leg_name, status, u->call_id, (unsigned)u->cseq, u->target, u->route);
}

static void unconfirmed_free(struct unconfirmed_bye *u)
{
    if (u->nh != NULL) {
        nua_handle_bind(u->nh, NULL);
        nua_handle_destroy(u->nh);
    }
    free(u);
}

/* bye_wait: one new BYE transaction per unconfirmed dialog whose last one
 * is over: the same Call-ID, From and To (both tags), route set and
 * remote target, CSeq one above the last one sent. */
void edge_bye_on_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct edge_sip *e = magic;
    char cseq[32];

    (void)t;
    (void)arg;
    if (!edge_fsm_retransmitting(&e->fsm))
        return;
    for (struct unconfirmed_bye *u = e->byes; u != NULL; u = u->next) {
        if (u->nh != NULL)
            continue; /* the last one is still trying */
        u->nh = nua_handle(e->nua, &u->leg, SIPTAG_CALL_ID_STR(u->call_id),
                           SIPTAG_FROM_STR(u->from), SIPTAG_TO_STR(u->to), TAG_END());
        if (u->nh == NULL)
            continue;
        snprintf(cseq, sizeof(cseq), "%u BYE", (unsigned)++u->cseq);
        nua_method(u->nh, NUTAG_METHOD("BYE"), NUTAG_URL(u->target), SIPTAG_CSEQ_STR(cseq),
                   TAG_IF(u->route[0] != '\0', SIPTAG_ROUTE_STR(u->route)),
                   TAG_IF(u->reason[0] != '\0', SIPTAG_REASON_STR(u->reason)), TAG_END());
        u->transactions++;
        e->byes_retransmitted++;
        sd_log_info("BYE sent again", "call=%s leg=%s call_id=%s cseq=%u target=%s transaction=%u",
                    u->call_ref, u->leg_name, u->call_id, (unsigned)u->cseq, u->target,
                    u->transactions);
    }
}

/* The answer to a BYE sent again: 2xx (or 481) ends the matter; any other
 * final answer, or none, leaves it for the next transaction. */
void edge_bye_on_retry_answer(struct edge_sip *e, struct unconfirmed_bye *u, int status)
{
    struct unconfirmed_bye **pp;

    if (status < 200)
        return;
    nua_handle_bind(u->nh, NULL);
    nua_handle_destroy(u->nh);
    u->nh = NULL;
    if (status >= 300 && status != 481) {
        sd_log_info("BYE sent again not confirmed", "call=%s leg=%s cseq=%u status=%d", u->call_ref,
                    u->leg_name, (unsigned)u->cseq, status);
        return;
    }
    sd_log_info("BYE confirmed", "call=%s leg=%s status=%d cseq=%u transactions=%u", u->call_ref,
                u->leg_name, status, (unsigned)u->cseq, u->transactions);
    for (pp = &e->byes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
    free(u);
    edge_sip_load_changed(e);
}

/* Gives up waiting for the answer to a leg's first BYE: its handle is
 * destroyed, so the transaction no longer holds the SIP shutdown (NUA
 * would wait for it up to Timer F, 32 s). */
static void leg_give_up_bye(struct edge_leg *l)
{
    char ref[256];

    leg_ref(l, ref, sizeof(ref));
    sd_log_warn("BYE never confirmed, given up", "call=%s leg=%s bye_transactions=1 answered=0",
                ref, leg_name(l));
    l->bye_pending = false;
    l->gone = true;
    nua_handle_bind(l->nh, NULL);
    nua_handle_destroy(l->nh);
}

/* The BYE timeout is over, or the edge stops (or the drain was cancelled):
 * no more BYE transactions. Stopping or at the timeout, the ones still in
 * flight are abandoned too, so the edge stops within a second of the
 * timeout whatever is in flight (the transport may still retransmit an
 * abandoned one until the process exits). Every dialog is logged with the
 * BYE transactions it got, none of them answered. */
void edge_bye_give_up_all(struct edge_sip *e)
{
    struct unconfirmed_bye *u;
    bool stopping = e->fsm.state != EDGE_ACTIVE;

    while ((u = e->byes) != NULL) {
        e->byes = u->next;
        sd_log_warn("BYE never confirmed, given up",
                    "call=%s leg=%s call_id=%s bye_transactions=%u answered=0 target=%s",
                    u->call_ref, u->leg_name, u->call_id, u->transactions, u->target);
        unconfirmed_free(u);
    }
    if (!stopping)
        return; /* a cancelled drain: first BYEs in flight get their answers */
    for (struct edge_call *c = e->calls, *next; c != NULL; c = next) {
        struct call_input in_a = {.kind = CALL_IN_TERMINATED, .leg = CALL_LEG_A};
        struct call_input in_b = {.kind = CALL_IN_TERMINATED, .leg = CALL_LEG_B};
        struct call_ctx quiet = {.quiet = true}; /* edge_fsm is the caller */
        bool a = c->st.leg[CALL_LEG_A].bye_pending && c->a.nh != NULL && !c->a.gone;
        bool b = c->st.leg[CALL_LEG_B].bye_pending && c->b.nh != NULL && !c->b.gone;

        next = c->next;
        if (a)
            leg_give_up_bye(&c->a);
        if (b)
            leg_give_up_bye(&c->b);
        /* A BYE out means the leg is open, so the first input cannot free
         * the call while the second is still to come. */
        if (a)
            edge_call_input(e, c, &in_a, &quiet);
        if (b)
            edge_call_input(e, c, &in_b, &quiet);
    }
    for (struct nailed *n = e->nailed, *next; n != NULL; n = next) {
        next = n->next;
        if (n->call == NULL && n->leg.bye_pending && !n->leg.gone) {
            leg_give_up_bye(&n->leg);
            edge_nailed_unlink(e, n);
        }
    }
}
