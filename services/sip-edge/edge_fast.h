/* edge_fast.h - a draining edge's refusal of new INVITEs without the SIP
 * stack (issue #17).
 *
 * A draining edge answers every new INVITE with the same refusal (503 +
 * Retry-After + Reason by default). Through sofia-sip each refusal costs a
 * full parse of the INVITE, a server transaction, a NUA handle, a built
 * response, then a full parse of the ACK: ~64 us of CPU, five times
 * Kamailio's stateless sl_send_reply. Here the refusal is stateless, as
 * Kamailio's: the datagram as received is scanned for the few headers an
 * answer copies (Via, From, To, Call-ID, CSeq), the answer is built from
 * them, and the ACK of such an answer is recognised by its To tag and
 * dropped. No state is kept: the To tag is a keyed hash of the request's
 * Call-ID, From and top Via branch, so a retransmitted INVITE gets the same
 * answer and its ACK is known again.
 *
 * Pure: no I/O, no allocation. Anything it does not fully understand - a
 * folded header line, a missing or repeated header, a quoted string in a
 * Via, a request that is not an initial INVITE or the ACK of one of its
 * answers, a message larger than its buffers - PASSES to the SIP stack,
 * which answers it as before: this path only ever takes the plain case.
 */
#ifndef SIPDRAIN_EDGE_FAST_H
#define SIPDRAIN_EDGE_FAST_H

#include <stddef.h>
#include <stdint.h>

/* Room for any answer: the copied headers of a datagram that fits the
 * SIP stack's own limits, and the refusal's own. */
#define EDGE_FAST_ANSWER_MAX 8192

enum edge_fast_verdict {
    EDGE_FAST_PASS,   /* not for this path: the SIP stack takes the datagram */
    EDGE_FAST_ANSWER, /* out holds the answer: send it to the port given */
    EDGE_FAST_DROP,   /* the ACK of one of this path's answers: nothing to do */
};

/* The refusal, and what the answer needs to know about the sender. */
struct edge_fast_refusal {
    int status;         /* 300-699 */
    const char *phrase; /* e.g. "Service Unavailable" */
    int retry_after_s;  /* 0: no Retry-After */
    const char *reason; /* a Reason header's value (RFC 3326), or NULL */
    uint64_t tag_key;   /* keys the To tag (random per process) */
    const char *src_ip; /* the datagram's source address, as text */
    int src_port;       /* its source port */
};

/* The datagram buf (len bytes, as received on UDP). On EDGE_FAST_ANSWER,
 * out (size bytes) holds the answer and *out_len its length; it goes back
 * to the datagram's source address and port, as every answer of the edge
 * does (NTATAG_SERVER_RPORT(2): never to a host or port a Via names). The
 * top Via says so as RFC 3581 and RFC 3261 18.2.1 want: rport filled in
 * when asked for, received added when the sent-by host is not the source
 * (or rport was asked for). */
enum edge_fast_verdict edge_fast_check(const char *buf, size_t len,
                                       const struct edge_fast_refusal *r, char *out, size_t size,
                                       size_t *out_len);

/* An IPv4 address (4 bytes, network order) as a.b.c.d into ip (16 bytes,
 * NUL-terminated), as inet_ntop writes it - without its sprintf, a few per
 * cent of a draining edge's CPU per refusal (perf, issue #17). */
void edge_fast_ip4(char ip[16], const unsigned char addr[4]);

#endif
