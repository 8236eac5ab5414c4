/* edge_sdp.c - see edge_sdp.h. */
#include <stdio.h>
#include <string.h>

#include "edge_sdp.h"

#define ORIGIN_FMT "o=sipdrain %lu %lu IN IP4 0.0.0.0"

/* The first line of body (len bytes) starting with prefix, or NULL. */
static const char *line_start(const char *body, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);
    const char *p = body, *end = body + len, *nl;

    while (p < end) {
        if ((size_t)(end - p) >= plen && memcmp(p, prefix, plen) == 0)
            return p;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return NULL;
        p = nl + 1;
    }
    return NULL;
}

bool edge_sdp_plausible(const char *body, size_t len, bool need_media)
{
    if (body == NULL || len < 10 || strncmp(body, "v=0", 3) != 0 ||
        (body[3] != '\r' && body[3] != '\n'))
        return false;
    if (line_start(body, len, "o=") == NULL)
        return false;
    return !need_media || line_start(body, len, "m=") != NULL;
}

int edge_sdp_no_media(const struct edge_sdp_origin *o, char *out, size_t size)
{
    int n = snprintf(out, size,
                     "v=0\r\n" ORIGIN_FMT "\r\ns=sipdrain-3pcc\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n",
                     o->sess_id, o->version);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int edge_sdp_reorigin(const char *body, size_t len, struct edge_sdp_origin *o, bool bump, char *out,
                      size_t size)
{
    const char *start = line_start(body, len, "o="), *end;
    char origin[96];
    size_t head, tail;
    int olen;

    if (size > 0)
        out[0] = '\0';
    if (start == NULL)
        return -1;
    end = memchr(start, '\n', len - (size_t)(start - body));
    end = end == NULL ? body + len : end;
    if (end > start && end[-1] == '\r')
        end--; /* keep the line's own ending */
    olen = snprintf(origin, sizeof(origin), ORIGIN_FMT, o->sess_id, o->version + (bump ? 1 : 0));
    head = (size_t)(start - body);
    tail = len - (size_t)(end - body);
    if (olen < 0 || head + (size_t)olen + tail + 1 > size)
        return -1;
    memcpy(out, body, head);
    memcpy(out + head, origin, (size_t)olen);
    memcpy(out + head + (size_t)olen, end, tail);
    out[head + (size_t)olen + tail] = '\0';
    if (bump)
        o->version++;
    return 0;
}
