/* edge_sip.c - set-up, the NUA event dispatcher (on_nua), edge.control and
 * the bus queue, signals, and the drain state machine's glue (edge_fsm inputs
 * and actions). */
#include "edge_sip_int.h"

static void on_signal(int signo);
static void line_shape(const char *line, char *out, size_t size);
static void sofia_log_line(const char *line);
static void on_sofia_log(void *stream, char const *fmt, va_list ap);
static void fsm_input(struct edge_sip *e, struct edge_input *in, const char *cause);
static void on_fsm_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);
static void arm_fsm_timer(struct edge_sip *e);
static void on_nua(nua_event_t event, int status, char const *phrase, nua_t *nua,
                   struct edge_sip *e, nua_handle_t *nh, struct edge_leg *leg, sip_t const *sip,
                   tagi_t tags[]);
static bool control_seen(struct edge_sip *e, const char *id);
static int int_or(json_t *d, const char *key, int def);
static void on_control(struct edge_sip *e, json_t *msg);
static void on_queue(void *arg);
static void on_signal_pipe(void *arg);

static int signal_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;

    if (write(signal_pipe[1], &b, 1) < 0) {
        /* the pipe is full: enough signals are pending already */
    }
    errno = saved;
}

#define SOFIA_LOG_BURST 3 /* lines of one shape this often a second, then folded */

/* The shape of a line: its digits as '0', so "garbage from 127.0.0.1:40001"
 * and "...:40002" (a flood from many ports) are the same line. */
static void line_shape(const char *line, char *out, size_t size)
{
    size_t i = 0;

    for (; line[i] != '\0' && i + 1 < size; i++)
        out[i] = line[i] >= '0' && line[i] <= '9' ? '0' : line[i];
    out[i] = '\0';
}

/* Writes a sofia-sip line, or folds it: lines of the same shape more than
 * SOFIA_LOG_BURST times within a second are counted, not written; the
 * count comes out as one line ("repeated=N", with the last of them) with
 * the next line of another shape, or once the second is over (line NULL:
 * the queue's tick asks). A stack stuck in a loop (a resolver without a
 * route, a peer flooding) then costs a line a second, not gigabytes. */
static void sofia_log_line(const char *line)
{
    static char shape[1024], last[1024];
    static int64_t since_ms;
    static unsigned in_window, folded;
    char now_shape[1024] = "";
    int64_t now = sd_mono_ms();

    if (line != NULL)
        line_shape(line, now_shape, sizeof(now_shape));
    if (line != NULL && strcmp(now_shape, shape) == 0 && now - since_ms < 1000) {
        snprintf(last, sizeof(last), "%s", line);
        if (++in_window > SOFIA_LOG_BURST) {
            folded++;
            return;
        }
    } else if (line != NULL || now - since_ms >= 1000) {
        if (folded > 0)
            sd_log_info("sofia-sip", "text=\"%s\" repeated=%u", last, folded);
        folded = 0;
        in_window = 1;
        since_ms = now;
        snprintf(shape, sizeof(shape), "%s", now_shape);
        snprintf(last, sizeof(last), "%s", line != NULL ? line : "");
        if (line == NULL)
            return;
    } else {
        return; /* a tick within the second */
    }
    sd_log_info("sofia-sip", "text=\"%s\"", line);
}

/* sofia-sip's own messages (e.g. "nta: INVITE: Connection refused"), as
 * our log lines instead of raw stderr. They come in pieces: a line is
 * logged when its newline arrives. */
static void on_sofia_log(void *stream, char const *fmt, va_list ap)
{
    static char line[1024];
    size_t len = strlen(line);

    (void)stream;
    vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    len = strlen(line);
    if (len > 0 && (line[len - 1] == '\n' || len == sizeof(line) - 1)) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        for (char *p = line; *p; p++) {
            if (*p == '"')
                *p = '\'';
        }
        sofia_log_line(line);
        line[0] = '\0';
    }
}

/* Feeds one input to edge_fsm and carries out what it asks. */
static void fsm_input(struct edge_sip *e, struct edge_input *in, const char *cause)
{
    struct edge_actions out;
    enum edge_state before = e->fsm.state;

    in->now_ms = sd_wall_ms();
    in->load = edge_status_load(e);
    edge_fsm_step(&e->fsm, in, &out);
    if (out.note != NULL)
        sd_log_info("drain input ignored", "input=%s cause=%s why=\"%s\"",
                    edge_input_name(in->kind), cause, out.note);
    if (before != e->fsm.state)
        sd_log_info("edge state changed", "from=%s to=%s input=%s cause=%s drain=%s",
                    edge_state_name(before), edge_state_name(e->fsm.state),
                    edge_input_name(in->kind), cause,
                    e->fsm.drain.drain_id[0] ? e->fsm.drain.drain_id : "-");
    if (before == EDGE_ACTIVE && e->fsm.state != EDGE_ACTIVE && e->fsm.drain.site_scope)
        edge_call_queue_to_peer(e); /* the site's agents are going: its queue too */
    for (size_t i = 0; i < out.n; i++) {
        switch (out.a[i]) {
        case EDGE_DO_CUT_CALLS: /* the deadline, or a forced stop (second SIGTERM, force) */
            edge_call_cut_all(e, e->fsm.state == EDGE_STOPPING ? STOP_REASON : DEADLINE_REASON);
            break;
        case EDGE_DO_RETRANSMIT_BYES_STOP:
            edge_bye_give_up_all(e);
            break;
        case EDGE_DO_END_NAILED_UP:
            edge_nailed_end_all(e);
            break;
        case EDGE_DO_SHUTDOWN:
            sd_log_info("shutting SIP down", "%s", "");
            nua_shutdown(e->nua);
            break;
        case EDGE_DO_EMIT_STATUS:
            /* One edge.status per phase entered, the last one as it is now. */
            for (size_t k = 0; k + 1 < out.n_passed; k++)
                edge_status_send_as(e, out.passed[k]);
            edge_status_send(e);
            break;
        case EDGE_DO_EXIT:
            e->exit_code = 0;
            su_root_break(e->root);
            break;
        default:
            break;
        }
    }
    arm_fsm_timer(e);
}

static void on_fsm_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct edge_input in = {.kind = EDGE_IN_TICK};

    (void)t;
    (void)arg;
    fsm_input(magic, &in, "timer");
}

static void arm_fsm_timer(struct edge_sip *e)
{
    int64_t due = edge_fsm_due(&e->fsm), now = sd_wall_ms();

    su_timer_reset(e->fsm_timer);
    if (due > 0)
        su_timer_set_interval(e->fsm_timer, on_fsm_timer, NULL,
                              (su_duration_t)(due > now ? due - now : 0));
}

/* NUA's one callback: events of a call's leg go to edge_call.c, of a
 * nailed-up dialog to edge_nailed.c, of a BYE sent again to edge_bye.c;
 * new requests to whoever serves them. */
static void on_nua(nua_event_t event, int status, char const *phrase, nua_t *nua,
                   struct edge_sip *e, nua_handle_t *nh, struct edge_leg *leg, sip_t const *sip,
                   tagi_t tags[])
{
    (void)nua;
    if (leg != NULL &&
        ((event == nua_r_invite && status >= 200 && status < 300) || event == nua_i_invite))
        edge_call_note_target(leg, sip);
    if (leg != NULL && leg->call != NULL) {
        edge_call_on_event(e, leg, event, status, sip, tags);
        return;
    }
    if (leg != NULL && leg->nailed != NULL) {
        edge_nailed_on_event(e, leg->nailed, event, status, sip, tags);
        return;
    }
    if (leg != NULL && leg->retry != NULL) {
        if (event == nua_r_method)
            edge_bye_on_retry_answer(e, leg->retry, status);
        return; /* its handle is freed with its answer */
    }
    switch (event) {
    case nua_i_options:
        edge_register_on_options(e, nh);
        break;
    case nua_i_register:
        edge_register_on_request(e, nh, sip);
        break;
    case nua_i_invite:
        edge_call_on_invite(e, nh, sip);
        break;
    case nua_i_state: {
        int state = nua_callstate_init;
        tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
        if (state == nua_callstate_terminated && nh != NULL)
            nua_handle_destroy(nh);
        break;
    }
    case nua_r_shutdown:
        if (status >= 200) {
            struct edge_input in = {.kind = EDGE_IN_SHUTDOWN_DONE};
            sd_log_info("SIP shut down", "status=%d phrase=\"%s\"", status, phrase);
            fsm_input(e, &in, "nua_r_shutdown");
        }
        break;
    case nua_i_error:
        sd_log_warn("SIP stack error", "status=%d phrase=\"%s\"", status, phrase);
        break;
    default:
        /* Requests the edge does not serve get NUA's own answers; handles
         * it created for them are ours to free. */
        if (status == 0 && nh != NULL && event >= nua_i_chat && event <= nua_i_update)
            nua_handle_destroy(nh);
        break;
    }
}

/* --- edge.control -------------------------------------------------------- */

static bool control_seen(struct edge_sip *e, const char *id)
{
    for (unsigned i = 0; i < CONTROL_SEEN_MAX; i++) {
        if (strcmp(e->control_seen[i], id) == 0)
            return true;
    }
    snprintf(e->control_seen[e->control_next], sizeof(e->control_seen[0]), "%s", id);
    e->control_next = (e->control_next + 1) % CONTROL_SEEN_MAX;
    return false;
}

static int int_or(json_t *d, const char *key, int def)
{
    json_t *v = json_object_get(d, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static void on_control(struct edge_sip *e, json_t *msg)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *id = json_string_value(json_object_get(msg, "id"));
    json_t *d = json_object_get(msg, "data");
    struct edge_input in;

    if (type == NULL || id == NULL || control_seen(e, id))
        return;
    if (!strcmp(type, "call.originate")) {
        edge_originate_on_control(e, d);
        return;
    }
    memset(&in, 0, sizeof(in));
    snprintf(in.drain.drain_id, sizeof(in.drain.drain_id), "%s",
             json_string_value(json_object_get(d, "drain_id")));
    if (!strcmp(type, "edge.drain")) {
        const char *deadline = json_string_value(json_object_get(d, "deadline_at"));
        int64_t ms = 0;
        in.kind = EDGE_IN_DRAIN;
        in.drain.site_scope = !strcmp(json_string_value(json_object_get(d, "scope")), "site");
        in.drain.reject_code = int_or(d, "reject_code", -1);
        in.drain.sip_timeout_s = int_or(d, "sip_timeout_s", -1);
        in.drain.retry_after_s = int_or(d, "retry_after_s", -1);
        if (deadline != NULL && sd_time_parse_rfc3339(deadline, &ms) == 0)
            in.drain.deadline_ms = ms;
    } else if (!strcmp(type, "edge.resume")) {
        in.kind = EDGE_IN_RESUME;
    } else {
        in.kind = EDGE_IN_SHUTDOWN;
        in.force = json_is_true(json_object_get(d, "force"));
    }
    fsm_input(e, &in, type);
}

static void on_queue(void *arg)
{
    struct edge_sip *e = arg;
    struct edge_msg *m;

    sofia_log_line(NULL); /* a folded count whose second is over */

    while ((m = edge_queue_take(e->to_sip)) != NULL) {
        if (m->kind == EDGE_MSG_REGISTER_DONE)
            edge_register_on_done(e, m);
        else if (m->kind == EDGE_MSG_ROUTE_DONE)
            edge_call_on_route_done(e, m);
        else if (m->kind == EDGE_MSG_QUEUED)
            edge_call_on_queued(e, m);
        else if (m->kind == EDGE_MSG_NAILED)
            edge_nailed_on_msg(e, m->data);
        else if (m->kind == EDGE_MSG_CONTROL)
            on_control(e, m->data);
        else if (m->kind == EDGE_MSG_BUS_STATS) {
            e->consumer_lag = (long)json_integer_value(json_object_get(m->data, "consumer_lag"));
            e->outbox_backlog =
                (long)json_integer_value(json_object_get(m->data, "outbox_backlog"));
            e->queue_site_calls = (long)json_integer_value(json_object_get(m->data, "queue_calls"));
            e->queue_oldest_ms =
                (long)json_integer_value(json_object_get(m->data, "queue_oldest_ms"));
        }
        edge_msg_free(m);
    }
    edge_call_ring_check(e);
}

static void on_signal_pipe(void *arg)
{
    struct edge_sip *e = arg;
    unsigned char b;

    while (read(signal_pipe[0], &b, 1) == 1) {
        struct edge_input in = {.kind = EDGE_IN_SIGTERM};
        sd_log_info("signal", "signo=%d count=%d", (int)b, e->fsm.sigterms + 1);
        fsm_input(e, &in, b == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

/* --- set-up --------------------------------------------------------------- */

/* tport_tls's verify policy for SIPDRAIN_TLS_VERIFY. "servers": a server
 * the edge connects to (a sips: peer site or proxy) must present a chain
 * to SIPDRAIN_TLS_CA whose names include the host it was reached by. */
static unsigned tls_policy(enum edge_tls_verify v)
{
    switch (v) {
    case EDGE_TLS_VERIFY_NONE:
        return TPTLS_VERIFY_NONE;
    case EDGE_TLS_VERIFY_ALL:
        return TPTLS_VERIFY_SUBJECTS_OUT | TPTLS_VERIFY_INCOMING;
    case EDGE_TLS_VERIFY_SERVERS:
        break;
    }
    return TPTLS_VERIFY_SUBJECTS_OUT;
}

struct edge_sip *edge_sip_new(const struct edge_sip_config *cfg, struct edge_queue *to_bus,
                              struct edge_queue *to_sip, struct sd_err *err)
{
    struct edge_sip *e = calloc(1, sizeof(*e));
    struct sigaction sa;

    if (e == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    for (const char *p = cfg->route_points; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ", ");
        if (len > 0 && len < sizeof(e->route_points[0]) && e->n_route_points < ROUTE_POINTS_MAX)
            snprintf(e->route_points[e->n_route_points++], sizeof(e->route_points[0]), "%.*s",
                     (int)len, p);
        p += len;
        p += strspn(p, ", ");
    }
    e->to_bus = to_bus;
    e->to_sip = to_sip;
    e->exit_code = 1;
    e->consumer_lag = e->outbox_backlog = e->queue_site_calls = e->queue_oldest_ms = -1;
    e->started_ms = sd_wall_ms();
    {
        /* the nonces' secret: this process's own, never stored; a restart
         * makes the phones' nonces unknown, and they get new challenges */
        unsigned char secret[EDGE_AUTH_SECRET_LEN];
        if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret) ||
            getrandom(&e->fast_tag_key, sizeof(e->fast_tag_key), 0) !=
                (ssize_t)sizeof(e->fast_tag_key)) {
            sd_err_set(err, SD_ERR_INTERNAL, "getrandom: %s", strerror(errno));
            free(e);
            return NULL;
        }
        edge_auth_init(&e->auth, secret, cfg->nonce_lifetime_s);
        edge_flood_init(&e->flood, &cfg->flood);
        memset(secret, 0, sizeof(secret));
    }
    e->flows = edge_flows_new(EDGE_FLOWS_MAX);
    if (e->flows == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        free(e);
        return NULL;
    }
    if (cfg->hold != NULL)
        edge_fsm_init_held(&e->fsm, &cfg->drain, cfg->hold);
    else
        edge_fsm_init(&e->fsm, &cfg->drain);
    su_home_init(e->home);
    su_log_redirect(su_log_default, on_sofia_log, NULL);
    e->root = su_root_create(e);
    if (e->root == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "su_root_create failed");
        goto fail;
    }
    /* NUA's stack runs in this thread, not in a clone thread of its own:
     * every request and event would otherwise cross threads (a message, a
     * wake-up and a context switch each; measured: half the edge's CPU per
     * call). The SIP thread never blocks, so nothing is lost. */
    su_root_threading(e->root, 0);
    e->nua = nua_create(
        e->root, on_nua, e, NUTAG_URL(cfg->sip_url),
        TAG_IF(cfg->tls_url != NULL, NUTAG_SIPS_URL(cfg->tls_url)),
        /* SIP over TLS (edge_tls.h): the folder of the certificate, its key
         * and the CAs; who is verified; TLS 1.2 or later (tools/sofia-sip/0004) */
        TAG_IF(cfg->tls_dir != NULL, TPTAG_CERTIFICATE(cfg->tls_dir)),
        TAG_IF(cfg->tls_dir != NULL, TPTAG_TLS_VERIFY_POLICY(tls_policy(cfg->tls_policy))),
        NUTAG_AUTOANSWER(0), NUTAG_MEDIA_ENABLE(0), /* B2BUA: SDP passes through untouched */
        /* A burst (a failover sends another edge's callers here at once)
         * must wait in the socket, not be dropped; the kernel caps this at
         * net.core.rmem_max / wmem_max. */
        TPTAG_UDP_RMEM(UDP_BUFFER_BYTES), TPTAG_UDP_WMEM(UDP_BUFFER_BYTES),
        /* A TCP or TLS peer that began a message (or a TLS handshake,
         * tools/sofia-sip/0005) and does not finish it within a
         * transaction's lifetime (64 x T1) loses it, and its connection for
         * a handshake: without this, each such connection held a socket
         * for ever (nta sets UDP's own timeout over this one) */
        TPTAG_TIMEOUT((unsigned)cfg->sip_t1_ms * 64),
        /* T1 alone does not shorten Timer F in sofia-sip 1.12.11 */
        NTATAG_SIP_T1((unsigned)cfg->sip_t1_ms), NTATAG_SIP_T1X64((unsigned)cfg->sip_t1_ms * 64),
        /* A BYE that times out is reported with a 408 made from the BYE
         * itself (its From, To, Call-ID, CSeq): what a BYE sent again in
         * the same dialog needs (remember_unconfirmed). */
        NTATAG_TIMEOUT_408(1),
        /* Responses go back to the address and port the request came from
         * (RFC 3581 rport, used even when the client did not ask), never to
         * a host named in its Via. */
        NTATAG_SERVER_RPORT(2),
        /* A SIP message of an edge's (an INVITE with its SDP) is a few KiB:
         * anything over 64 KiB is refused (413, TCP closed), not buffered
         * up to nta's default of 2 MB per message. */
        NTATAG_MAXSIZE(EDGE_MAX_MESSAGE),
        /* Who may place calls, decided before sofia-sip keeps anything
         * (edge_guard.c; tools/sofia-sip/0003) */
        NTATAG_REQUEST_FILTER(edge_guard_filter), NTATAG_REQUEST_FILTER_MAGIC(e),
        /* A draining edge's refusals, before sofia-sip parses anything
         * (edge_call_fast_filter; tools/sofia-sip/0006) */
        TPTAG_DGRAM_FILTER(edge_call_fast_filter), TPTAG_DGRAM_FILTER_MAGIC(e),
        NUTAG_APPL_METHOD("OPTIONS"), NUTAG_APPL_METHOD("REGISTER"),
        /* Exactly what the edge handles (NUA's default list names MESSAGE,
         * SUBSCRIBE, NOTIFY, REFER, PRACK and UPDATE, and answered some of
         * them 200 with nothing behind it): every other method gets 405
         * with this Allow, in a dialog or not. */
        SIPTAG_ALLOW_STR(EDGE_ALLOW), SIPTAG_SUPPORTED(NULL), NUTAG_SHUTDOWN_EVENTS(1), TAG_END());
    if (e->nua == NULL) {
        sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_SIP_URL: cannot listen on %s%s%s", cfg->sip_url,
                   cfg->tls_url != NULL ? " and " : "", cfg->tls_url != NULL ? cfg->tls_url : "");
        goto fail;
    }
    if (pipe(signal_pipe) < 0) {
        sd_err_set(err, SD_ERR_INTERNAL, "pipe: %s", strerror(errno));
        goto fail;
    }
    fcntl(signal_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    e->queue_watch =
        sd_suroot_watch_new(e->root, edge_queue_fd(to_sip), QUEUE_TICK_MS, on_queue, e);
    e->signal_watch = sd_suroot_watch_new(e->root, signal_pipe[0], 1000, on_signal_pipe, e);
    e->status_timer = su_timer_create(su_root_task(e->root), STATUS_EVERY_MS);
    e->fsm_timer = su_timer_create(su_root_task(e->root), 1000);
    e->bye_timer = su_timer_create(su_root_task(e->root), BYE_RETRY_MS);
    if (e->queue_watch == NULL || e->signal_watch == NULL || e->status_timer == NULL ||
        e->fsm_timer == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "su_root set-up failed");
        goto fail;
    }
    su_timer_set_for_ever(e->status_timer, edge_status_on_timer, NULL);
    if (e->bye_timer == NULL)
        goto fail;
    su_timer_set_for_ever(e->bye_timer, edge_bye_on_timer, NULL);
    return e;
fail:
    edge_sip_free(e);
    return NULL;
}

int edge_sip_run(struct edge_sip *e)
{
    struct rlimit rl = {0};

    getrlimit(RLIMIT_NOFILE, &rl);
    if (e->cfg.tls_url != NULL)
        sd_log_info("listening", "sip_url=%s tls_url=%s state=%s max_fds=%llu", e->cfg.sip_url,
                    e->cfg.tls_url, edge_state_name(e->fsm.state), (unsigned long long)rl.rlim_cur);
    else
        sd_log_info("listening", "sip_url=%s state=%s max_fds=%llu", e->cfg.sip_url,
                    edge_state_name(e->fsm.state), (unsigned long long)rl.rlim_cur);
    edge_status_send(e);
    su_root_run(e->root);
    return e->exit_code;
}

void edge_sip_free(struct edge_sip *e)
{
    if (e == NULL)
        return;
    for (int i = 0; i < REGISTER_MAX; i++) {
        if (e->registers[i] != NULL) {
            nua_destroy_event(e->registers[i]->saved);
            free(e->registers[i]);
        }
    }
    if (e->nua != NULL)
        nua_destroy(e->nua); /* every handle with it */
    while (e->byes != NULL) {
        struct unconfirmed_bye *u = e->byes;
        e->byes = u->next;
        free(u);
    }
    while (e->nailed != NULL) {
        struct nailed *n = e->nailed;
        e->nailed = n->next;
        free(n);
    }
    su_timer_destroy(e->bye_timer);
    su_timer_destroy(e->status_timer);
    su_timer_destroy(e->fsm_timer);
    sd_suroot_watch_free(e->queue_watch);
    sd_suroot_watch_free(e->signal_watch);
    if (e->root != NULL)
        su_root_destroy(e->root);
    su_home_deinit(e->home);
    edge_flows_free(e->flows);
    if (signal_pipe[0] >= 0) {
        close(signal_pipe[0]);
        close(signal_pipe[1]);
        signal_pipe[0] = signal_pipe[1] = -1;
    }
    free(e);
}

void edge_sip_load_changed(struct edge_sip *e)
{
    struct edge_input in = {.kind = EDGE_IN_LOAD};

    if (e->fsm.state != EDGE_ACTIVE)
        fsm_input(e, &in, "calls");
}

/* Publishes one event through the bus thread's outbox. */
void edge_sip_publish(struct edge_sip *e, const char *topic, const char *key, const char *type,
                      json_t *data)
{
    edge_queue_put(
        e->to_bus, EDGE_MSG_EVENT, 0,
        json_pack("{s:s, s:s, s:s, s:o}", "topic", topic, "key", key, "type", type, "data", data));
}

/* The host[:port] of a sip: URI (up to its parameters). */
void edge_sip_uri_hostport(const char *uri, char *out, size_t size)
{
    const char *h = strchr(uri, ':') + 1, *at = strchr(h, '@');

    if (at != NULL && at < h + strcspn(h, ";?>"))
        h = at + 1;
    snprintf(out, size, "%.*s", (int)strcspn(h, ";?>"), h);
}
