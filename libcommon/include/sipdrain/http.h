/* http.h - a service's /healthz, /readyz and /metrics (libmicrohttpd, in a
 * thread of its own; its own library, sipdrain_http).
 *
 * The service thread never answers HTTP itself: it hands over what the
 * answers say - ready or not (and why), the Prometheus text of /metrics -
 * whenever it has news (sd_http_set_*), and the HTTP thread serves the
 * latest copy. /healthz is 200 while the service thread keeps handing news
 * over (at least every stale_ms), 503 once it has stopped doing so (a
 * wedged loop), so a liveness probe restarts a stuck process.
 *
 *   GET /healthz  200 "ok" | 503 "stalled: no update for N ms"
 *   GET /readyz   200 "ready" | 503 "<why>" (e.g. "draining")
 *   GET /metrics  200, text/plain; version=0.0.4 (Prometheus text format)
 *   anything else 404; methods other than GET / HEAD 405
 */
#ifndef SIPDRAIN_HTTP_H
#define SIPDRAIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "sipdrain/err.h"

struct sd_http;

/* What one client can hold (issue #15, "health endpoints hold"): a
 * liveness probe must get its answer while someone holds slow connections.
 * Per client address at most SD_HTTP_PER_CLIENT connections (more are
 * closed at once), at most SD_HTTP_MAX_CONNECTIONS in all, and a
 * connection that sends no complete request within SD_HTTP_TIMEOUT_S is
 * closed. */
#define SD_HTTP_PER_CLIENT      8
#define SD_HTTP_MAX_CONNECTIONS 256
#define SD_HTTP_TIMEOUT_S       3

/* addr: "host:port" (e.g. "0.0.0.0:8080", "127.0.0.1:9101"). Not ready and
 * no metrics until the first sd_http_set_*. */
struct sd_http *sd_http_start(const char *addr, int stale_ms, struct sd_err *err) SD_MUST_CHECK;
void sd_http_stop(struct sd_http *h);

/* Thread-safe; why is copied (NULL when ready). Counts as a sign of life. */
void sd_http_set_ready(struct sd_http *h, bool ready, const char *why);
/* Thread-safe; text is copied. Counts as a sign of life. */
void sd_http_set_metrics(struct sd_http *h, const char *text);

/* Building the Prometheus text: a growing buffer (NULL on out of memory,
 * silently: metrics are best effort). */
struct sd_metrics {
    char *buf;
    size_t len, cap;
};
/* # HELP and # TYPE (type "gauge" or "counter") for a metric family. */
void sd_metrics_family(struct sd_metrics *m, const char *name, const char *type, const char *help);
/* One sample: name{labels} value; labels may be NULL or "" (none), else
 * already formatted, e.g. "state=\"draining\"". */
void sd_metrics_sample(struct sd_metrics *m, const char *name, const char *labels, double value);
void sd_metrics_free(struct sd_metrics *m);
/* The bus gauges every service shows: sipdrain_consumer_lag (messages on
 * the instance's partitions not consumed yet) and sipdrain_outbox_backlog
 * (events written and not yet on Kafka). A negative value (not known, or
 * not this instance's to tell) leaves its family out. */
void sd_metrics_bus(struct sd_metrics *m, const char *labels, long consumer_lag,
                    long outbox_backlog);

/* Checks addr ("host:port", port 1-65535) without starting anything. */
int sd_http_addr_valid(const char *addr);

#endif
