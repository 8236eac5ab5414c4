/* http.c - see http.h. */
#include "sipdrain/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "sipdrain/event.h"
#include "sipdrain/log.h"

struct sd_http {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    bool ready;
    char why[160];
    char *metrics;
    int64_t updated_ms; /* last sign of life (monotonic) */
    int stale_ms;
};

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
    char *end;
    long port;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return -1;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "") || !strcmp(host, "*"))
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -1;
    return 0;
}

int sd_http_addr_valid(const char *addr)
{
    struct sockaddr_in sa;
    return parse_addr(addr, &sa) == 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    struct sd_http *h = cls;
    char text[256];
    enum MHD_Result rc;

    (void)version;
    (void)upload;
    (void)state;
    if (*upload_size != 0) {
        *upload_size = 0; /* a body: ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    pthread_mutex_lock(&h->lock);
    if (!strcmp(url, "/healthz")) {
        int64_t quiet = sd_mono_ms() - h->updated_ms;
        if (h->updated_ms > 0 && quiet > h->stale_ms)
            snprintf(text, sizeof(text), "stalled: no update for %lld ms\n", (long long)quiet);
        else
            snprintf(text, sizeof(text), "ok\n");
        rc = reply(c, text[0] == 'o' ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
                   text);
    } else if (!strcmp(url, "/readyz")) {
        snprintf(text, sizeof(text), "%s\n", h->ready ? "ready" : h->why);
        rc = reply(c, h->ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", text);
    } else if (!strcmp(url, "/metrics")) {
        rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                   h->metrics != NULL ? h->metrics : "");
    } else {
        rc = reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found: /healthz /readyz /metrics\n");
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* libmicrohttpd's own complaints (a client over its connection limit, a
 * timed-out connection): one log line per SD_HTTP_LOG_EVERY_MS at most, so
 * a client that opens connections in a loop cannot flood the log. */
#define SD_HTTP_LOG_EVERY_MS 10000

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t last_ms = -SD_HTTP_LOG_EVERY_MS;
    static long suppressed;
    char text[256];
    size_t len;

    (void)cls;
    vsnprintf(text, sizeof(text), fmt, ap);
    len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    pthread_mutex_lock(&lock);
    if (sd_mono_ms() - last_ms < SD_HTTP_LOG_EVERY_MS) {
        suppressed++;
    } else {
        sd_log_warn("http server", "text=\"%s\" similar_lines_suppressed=%ld", text, suppressed);
        last_ms = sd_mono_ms();
        suppressed = 0;
    }
    pthread_mutex_unlock(&lock);
}

struct sd_http *sd_http_start(const char *addr, int stale_ms, struct sd_err *err)
{
    struct sockaddr_in sa;
    struct sd_http *h;

    if (parse_addr(addr, &sa) < 0) {
        sd_err_set(err, SD_ERR_CONFIG, "not a host:port address: %s", addr ? addr : "(null)");
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->stale_ms = stale_ms;
    snprintf(h->why, sizeof(h->why), "starting");
    /* A probe's request comes in at once and is answered from memory, so
     * the limits can be tight (issue #15: one client holding 64 slow
     * connections made /healthz fail for 20 s, and a liveness probe would
     * have restarted a healthy process): a client address holds at most
     * SD_HTTP_PER_CLIENT connections, the rest wait at most
     * SD_HTTP_TIMEOUT_S for a request, and epoll has no FD_SETSIZE wall. */
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)SD_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)SD_HTTP_PER_CLIENT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)SD_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
    if (h->daemon == NULL) {
        sd_err_set(err, SD_ERR_CONFIG, "cannot listen for HTTP on %s (in use?)", addr);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    return h;
}

void sd_http_stop(struct sd_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->lock);
    free(h->metrics);
    free(h);
}

void sd_http_set_ready(struct sd_http *h, bool ready, const char *why)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->ready = ready;
    snprintf(h->why, sizeof(h->why), "%s", why != NULL ? why : "not ready");
    h->updated_ms = sd_mono_ms();
    pthread_mutex_unlock(&h->lock);
}

void sd_http_set_metrics(struct sd_http *h, const char *text)
{
    char *copy;

    if (h == NULL)
        return;
    copy = strdup(text != NULL ? text : "");
    pthread_mutex_lock(&h->lock);
    free(h->metrics);
    h->metrics = copy;
    h->updated_ms = sd_mono_ms();
    pthread_mutex_unlock(&h->lock);
}

static void append(struct sd_metrics *m, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        if (m->cap - m->len < 2 || m->buf == NULL) {
            size_t cap = m->cap ? m->cap * 2 : 4096;
            char *b = realloc(m->buf, cap);
            if (b == NULL)
                return;
            m->buf = b;
            m->cap = cap;
        }
        va_start(ap, fmt);
        n = vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < m->cap - m->len) {
            m->len += (size_t)n;
            return;
        }
        m->buf[m->len] = '\0';
        {
            char *b = realloc(m->buf, m->cap + (size_t)n + 1);
            if (b == NULL)
                return;
            m->buf = b;
            m->cap += (size_t)n + 1;
        }
    }
}

void sd_metrics_family(struct sd_metrics *m, const char *name, const char *type, const char *help)
{
    append(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void sd_metrics_sample(struct sd_metrics *m, const char *name, const char *labels, double value)
{
    if (labels != NULL && labels[0] != '\0')
        append(m, "%s{%s} %.17g\n", name, labels, value);
    else
        append(m, "%s %.17g\n", name, value);
}

void sd_metrics_free(struct sd_metrics *m)
{
    free(m->buf);
    m->buf = NULL;
    m->len = m->cap = 0;
}

void sd_metrics_bus(struct sd_metrics *m, const char *labels, long consumer_lag,
                    long outbox_backlog)
{
    if (consumer_lag >= 0) {
        sd_metrics_family(m, "sipdrain_consumer_lag", "gauge",
                          "messages on this instance's partitions not consumed yet");
        sd_metrics_sample(m, "sipdrain_consumer_lag", labels, (double)consumer_lag);
    }
    if (outbox_backlog >= 0) {
        sd_metrics_family(m, "sipdrain_outbox_backlog", "gauge",
                          "events of this instance written and not yet on Kafka");
        sd_metrics_sample(m, "sipdrain_outbox_backlog", labels, (double)outbox_backlog);
    }
}
