/* test_http - sd_http (libmicrohttpd) under a client that holds slow
 * connections (issue #15, "health endpoints hold"): a liveness probe from
 * another address still gets its answer at once; the hoarder keeps
 * SD_HTTP_PER_CLIENT connections, the others are closed at once, and the
 * kept ones once SD_HTTP_TIMEOUT_S has passed without a whole request.
 * Real TCP on loopback: the hoarder connects from 127.0.0.3, the probe
 * from 127.0.0.1. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/http.h"
#include "support.h"

#define HOARDED 64

/* A TCP connection from src to 127.0.0.1:port (-1 when refused). */
static int connect_from(const char *src, int port)
{
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    inet_pton(AF_INET, src, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    to.sin_port = htons((uint16_t)port);
    cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0, "bind %s: %s", src,
                 strerror(errno));
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path from src; the status code, or -1 when no whole status line came
 * within wait_ms. */
static int get_from(const char *src, int port, const char *path, int wait_ms)
{
    char req[128], buf[512];
    size_t got = 0;
    int fd = connect_from(src, port), status = -1;
    int64_t deadline = sd_mono_ms() + wait_ms;

    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    while (got < sizeof(buf) - 1 && sd_mono_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, (int)(deadline - sd_mono_ms())) <= 0)
            break;
        n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n") != NULL)
            break;
    }
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    close(fd);
    return status;
}

/* Is fd closed by the server (EOF or reset), without waiting? */
static bool closed_now(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int count_closed(const int *fds, int n)
{
    int closed = 0;

    for (int i = 0; i < n; i++)
        closed += fds[i] < 0 || closed_now(fds[i]);
    return closed;
}

Test(http, a_client_holding_slow_connections_does_not_starve_the_probe, .timeout = 60)
{
    struct sd_err err = {0};
    char addr[32];
    int port = sdt_free_port(), fds[HOARDED], closed;
    struct sd_http *h;
    int64_t deadline;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    h = sd_http_start(addr, 60000, &err);
    cr_assert_not_null(h, "%s", err.text);
    sd_http_set_ready(h, true, NULL);
    cr_assert_eq(get_from("127.0.0.1", port, "/healthz", 2000), 200, "before");

    /* the hoarder: half a request on each of 64 connections */
    for (int i = 0; i < HOARDED; i++) {
        fds[i] = connect_from("127.0.0.3", port);
        if (fds[i] >= 0)
            (void)send(fds[i], "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
    }
    /* the probe, from another address, within a kubelet's default 1 s */
    cr_expect_eq(get_from("127.0.0.1", port, "/healthz", 1000), 200, "/healthz while hoarded");
    cr_expect_eq(get_from("127.0.0.1", port, "/readyz", 1000), 200, "/readyz while hoarded");
    /* the hoarder keeps SD_HTTP_PER_CLIENT; the rest are closed at once */
    deadline = sd_mono_ms() + 1000;
    while ((closed = count_closed(fds, HOARDED)) < HOARDED - SD_HTTP_PER_CLIENT &&
           sd_mono_ms() < deadline)
        usleep(50000);
    cr_expect_eq(closed, HOARDED - SD_HTTP_PER_CLIENT, "closed at once: %d of %d", closed, HOARDED);
    /* and the kept ones once SD_HTTP_TIMEOUT_S passed without a request */
    deadline = sd_mono_ms() + (SD_HTTP_TIMEOUT_S + 3) * 1000;
    while ((closed = count_closed(fds, HOARDED)) < HOARDED && sd_mono_ms() < deadline)
        usleep(100000);
    cr_expect_eq(closed, HOARDED, "closed after %d s: %d of %d", SD_HTTP_TIMEOUT_S + 3, closed,
                 HOARDED);
    /* the hoarder's address is served again */
    cr_expect_eq(get_from("127.0.0.3", port, "/healthz", 1000), 200, "the hoarder, after");
    for (int i = 0; i < HOARDED; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    sd_http_stop(h);
}
