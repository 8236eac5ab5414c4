/* edge_fast: a draining edge's stateless refusal of new INVITEs, built from
 * the datagram as received (issue #17). Every answer here is checked line
 * by line; everything the path does not take must PASS to the SIP stack. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_fast.h"

static const struct edge_fast_refusal refusal = {
    .status = 503,
    .phrase = "Service Unavailable",
    .retry_after_s = 30,
    .reason = "SIP;cause=503;text=\"edge e1 is draining\"",
    .tag_key = 0x1234567890abcdefULL,
    .src_ip = "127.0.0.1",
    .src_port = 5091,
};

#define INVITE_HEAD(via, to, callid)                                                               \
    "INVITE sip:7000@127.0.0.1:5070 SIP/2.0\r\n"                                                   \
    "Via: " via "\r\n"                                                                             \
    "From: \"gw\" <sip:gw@127.0.0.1:5091>;tag=abc\r\n"                                             \
    "To: " to "\r\n"                                                                               \
    "Call-ID: " callid "\r\n"                                                                      \
    "CSeq: 1 INVITE\r\n"                                                                           \
    "Contact: <sip:gw@127.0.0.1:5091>\r\n"                                                         \
    "Max-Forwards: 70\r\n"                                                                         \
    "Content-Type: application/sdp\r\n"                                                            \
    "Content-Length: 13\r\n"                                                                       \
    "\r\n"                                                                                         \
    "v=0\r\no=x 1 1\r\n"

static const char plain[] = INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-1",
                                        "<sip:7000@127.0.0.1:5070>", "call-1@gw");

static enum edge_fast_verdict check(const char *msg, char *out, size_t size, size_t *len)
{
    return edge_fast_check(msg, strlen(msg), &refusal, out, size, len);
}

/* the To tag of an answer */
static void to_tag(const char *answer, char *tag, size_t size)
{
    const char *t = strstr(answer, "\r\nTo: "), *p = t ? strstr(t, ";tag=") : NULL;

    cr_assert_not_null(p, "no To tag in %s", answer);
    snprintf(tag, size, "%.*s", (int)strcspn(p + 5, "\r"), p + 5);
}

Test(edge_fast, a_plain_invite_gets_the_refusal_with_its_headers_copied_and_a_to_tag)
{
    char out[2048], tag[64];
    size_t len = 0;

    cr_assert_eq(check(plain, out, sizeof(out), &len), EDGE_FAST_ANSWER);
    out[len] = '\0';
    to_tag(out, tag, sizeof(tag));
    cr_expect_eq(strlen(tag), 19, "tag %s", tag);
    cr_expect(strncmp(tag, "sdf", 3) == 0);
    char want[2048];
    snprintf(want, sizeof(want),
             "SIP/2.0 503 Service Unavailable\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-1\r\n"
             "From: \"gw\" <sip:gw@127.0.0.1:5091>;tag=abc\r\n"
             "To: <sip:7000@127.0.0.1:5070>;tag=%s\r\n"
             "Call-ID: call-1@gw\r\n"
             "CSeq: 1 INVITE\r\n"
             "Retry-After: 30\r\n"
             "Reason: SIP;cause=503;text=\"edge e1 is draining\"\r\n"
             "Content-Length: 0\r\n\r\n",
             tag);
    cr_expect_str_eq(out, want);
}

Test(edge_fast, a_retransmitted_invite_gets_the_same_answer_another_call_another_tag)
{
    char a[2048], b[2048], c[2048], ta[64], tc[64];
    size_t la = 0, lb = 0, lc = 0;
    static const char other[] = INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-1",
                                            "<sip:7000@127.0.0.1:5070>", "call-2@gw");

    cr_assert_eq(check(plain, a, sizeof(a), &la), EDGE_FAST_ANSWER);
    cr_assert_eq(check(plain, b, sizeof(b), &lb), EDGE_FAST_ANSWER);
    cr_assert_eq(check(other, c, sizeof(c), &lc), EDGE_FAST_ANSWER);
    a[la] = b[lb] = c[lc] = '\0';
    cr_expect_str_eq(a, b);
    to_tag(a, ta, sizeof(ta));
    to_tag(c, tc, sizeof(tc));
    cr_expect_str_neq(ta, tc);
}

Test(edge_fast, the_ack_of_its_own_refusal_is_dropped_any_other_ack_passes)
{
    char out[2048], tag[64], ack[1024];
    size_t len = 0;

    cr_assert_eq(check(plain, out, sizeof(out), &len), EDGE_FAST_ANSWER);
    out[len] = '\0';
    to_tag(out, tag, sizeof(tag));
    const char *fmt = "ACK sip:7000@127.0.0.1:5070 SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP 127.0.0.1:5091;branch=%s\r\n"
                      "From: \"gw\" <sip:gw@127.0.0.1:5091>;tag=abc\r\n"
                      "To: <sip:7000@127.0.0.1:5070>;tag=%s\r\n"
                      "Call-ID: call-1@gw\r\n"
                      "CSeq: 1 ACK\r\n"
                      "Content-Length: 0\r\n\r\n";
    snprintf(ack, sizeof(ack), fmt, "z9hG4bK-1", tag);
    cr_expect_eq(check(ack, out, sizeof(out), &len), EDGE_FAST_DROP);
    snprintf(ack, sizeof(ack), fmt, "z9hG4bK-1", "sdf0000000000000000");
    cr_expect_eq(check(ack, out, sizeof(out), &len), EDGE_FAST_PASS, "another tag");
    snprintf(ack, sizeof(ack), fmt, "z9hG4bK-2", tag);
    cr_expect_eq(check(ack, out, sizeof(out), &len), EDGE_FAST_PASS, "another branch");
    snprintf(ack, sizeof(ack), fmt, "z9hG4bK-1", "x");
    cr_expect_eq(check(ack, out, sizeof(out), &len), EDGE_FAST_PASS, "a 2xx's ACK");
}

Test(edge_fast, rport_is_answered_to_the_source_port_with_received_and_rport_filled_in)
{
    static const char msg[] = INVITE_HEAD("SIP/2.0/UDP 10.1.2.3:5060;rport;branch=z9hG4bK-7",
                                          "<sip:7000@127.0.0.1:5070>", "call-3@gw");
    char out[2048];
    size_t len = 0;

    cr_assert_eq(check(msg, out, sizeof(out), &len), EDGE_FAST_ANSWER);
    out[len] = '\0';
    cr_expect(strstr(out, "\r\nVia: SIP/2.0/UDP 10.1.2.3:5060;rport=5091;branch=z9hG4bK-7;"
                          "received=127.0.0.1\r\n") != NULL,
              "%s", out);
}

Test(edge_fast, a_sent_by_not_the_source_gets_received)
{
    static const char msg[] = INVITE_HEAD("SIP/2.0/UDP gw.example;branch=z9hG4bK-8",
                                          "<sip:7000@127.0.0.1:5070>", "call-4@gw");
    char out[2048];
    size_t len = 0;

    cr_assert_eq(check(msg, out, sizeof(out), &len), EDGE_FAST_ANSWER);
    out[len] = '\0';
    cr_expect(strstr(out, "Via: SIP/2.0/UDP gw.example;branch=z9hG4bK-8;received=127.0.0.1\r\n"),
              "%s", out);
}

Test(edge_fast, compact_names_any_case_and_every_via_in_order)
{
    static const char msg[] = "INVITE sip:7000@127.0.0.1 SIP/2.0\r\n"
                              "v: SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-a\r\n"
                              "VIA: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-b, "
                              "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-c\r\n"
                              "f: <sip:gw@x>;TAG=t1\r\n"
                              "t: sip:7000@127.0.0.1\r\n"
                              "i: c5@gw\r\n"
                              "cseq: 7 INVITE\r\n"
                              "l: 0\r\n\r\n";
    char out[2048];
    size_t len = 0;

    cr_assert_eq(check(msg, out, sizeof(out), &len), EDGE_FAST_ANSWER);
    out[len] = '\0';
    cr_expect(strstr(out, "\r\nVia: SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-a\r\n"
                          "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-b, SIP/2.0/UDP "
                          "10.0.0.8;branch=z9hG4bK-c\r\nFrom: <sip:gw@x>;TAG=t1\r\n"
                          "To: sip:7000@127.0.0.1;tag=sdf") != NULL,
              "%s", out);
    cr_expect(strstr(out, "\r\nCall-ID: c5@gw\r\nCSeq: 7 INVITE\r\n") != NULL, "%s", out);
}

/* Everything the path does not take goes to the SIP stack as before. */
Test(edge_fast, anything_but_the_plain_case_passes_to_the_sip_stack)
{
    static const char *const cases[] = {
        /* within a dialog */
        INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-1", "<sip:7000@x>;tag=9", "c@gw"),
        /* no branch (RFC 2543) */
        INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:5091", "<sip:7000@x>", "c@gw"),
        /* not UDP */
        INVITE_HEAD("SIP/2.0/TCP 127.0.0.1:5091;branch=z9hG4bK-1", "<sip:7000@x>", "c@gw"),
        /* a quoted string in the Via */
        INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-1;x=\"a,b\"", "<sip:7000@x>",
                    "c@gw"),
        /* a bad port */
        INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bK-1", "<sip:7000@x>", "c@gw"),
        /* an unclosed <: */
        INVITE_HEAD("SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-1", "<sip:7000@x", "c@gw"),
        /* another method */
        "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        /* CSeq of another method */
        "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n",
        /* a folded line */
        "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nTo: <sip:b>\r\n  ;p=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        /* no Call-ID */
        "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nTo: <sip:b>\r\nCSeq: 1 INVITE\r\n\r\n",
        /* two From */
        "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nFrom: <sip:a>;tag=2\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        /* a From without a tag */
        "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>"
        "\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        /* bare LF line ends */
        "INVITE sip:x SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\nFrom: <sip:a>;tag=1"
        "\nTo: <sip:b>\nCall-ID: c\nCSeq: 1 INVITE\n\n",
        /* no end of the head */
        "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
        /* not SIP/2.0 */
        "INVITE sip:x SIP/3.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-1\r\nFrom: <sip:a>;tag=1"
        "\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        "",
    };
    char out[2048];
    size_t len;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(check(cases[i], out, sizeof(out), &len), EDGE_FAST_PASS, "case %zu: %s", i,
                     cases[i]);
}

Test(edge_fast, a_nul_byte_in_the_head_or_a_small_buffer_passes)
{
    char msg[sizeof(plain)], out[2048];
    size_t len;

    memcpy(msg, plain, sizeof(plain));
    msg[60] = '\0';
    cr_expect_eq(edge_fast_check(msg, sizeof(plain) - 1, &refusal, out, sizeof(out), &len),
                 EDGE_FAST_PASS);
    cr_expect_eq(check(plain, out, 100, &len), EDGE_FAST_PASS, "the answer does not fit");
}

/* Hostile input: every prefix of a valid INVITE, and many random
 * corruptions of it, in a buffer of exactly that size (ASan sees any read
 * past it); whatever comes out is an answer that starts as one. */
Test(edge_fast, truncated_and_corrupted_datagrams_never_read_past_their_end)
{
    size_t n = sizeof(plain) - 1;
    char out[2048];
    size_t len;
    unsigned seed = 17;

    for (size_t cut = 0; cut <= n; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, plain, cut);
        if (edge_fast_check(copy, cut, &refusal, out, sizeof(out), &len) == EDGE_FAST_ANSWER)
            cr_expect(cut >= n - 17, "an answer to a head cut at %zu", cut); /* only the body cut */
        free(copy);
    }
    for (int round = 0; round < 20000; round++) {
        char *copy = malloc(n);
        memcpy(copy, plain, n);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 1103515245 + 12345;
            copy[(seed >> 8) % n] = (char)(seed >> 20);
        }
        if (edge_fast_check(copy, n, &refusal, out, sizeof(out), &len) == EDGE_FAST_ANSWER) {
            cr_expect(len > 40 && memcmp(out, "SIP/2.0 503 ", 12) == 0);
            cr_expect(memcmp(out + len - 4, "\r\n\r\n", 4) == 0);
        }
        free(copy);
    }
}

Test(edge_fast, ipv4_text_is_what_inet_ntop_writes_for_every_octet_value)
{
    for (unsigned v = 0; v < 256; v++) {
        /* each octet position takes every value, the others vary with it */
        unsigned char quads[4][4] = {{(unsigned char)v, 0, 10, 255},
                                     {9, (unsigned char)v, 99, 100},
                                     {255, 1, (unsigned char)v, 0},
                                     {127, 0, 0, (unsigned char)v}};
        for (int q = 0; q < 4; q++) {
            char want[INET_ADDRSTRLEN], got[16];
            memset(got, 'x', sizeof(got));
            cr_assert_not_null(inet_ntop(AF_INET, quads[q], want, sizeof(want)));
            edge_fast_ip4(got, quads[q]);
            cr_assert_str_eq(got, want);
        }
    }
}
