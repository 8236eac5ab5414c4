/* test_edge_sdp - the edge's SDP text handling (pure). */
#include <criterion/criterion.h>
#include <string.h>

#include "edge_sdp.h"

static const char DEST[] = "v=0\r\no=dest 42 7 IN IP4 127.0.0.1\r\ns=dest-offer\r\n"
                           "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

Test(edge_sdp, plausible_needs_version_origin_and_media_when_asked)
{
    const char *no_media = "v=0\r\no=a 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

    cr_expect(edge_sdp_plausible(DEST, strlen(DEST), true));
    cr_expect(edge_sdp_plausible(no_media, strlen(no_media), false));
    cr_expect_not(edge_sdp_plausible(no_media, strlen(no_media), true));
    cr_expect_not(edge_sdp_plausible("hello world, not sdp", 20, false));
    cr_expect_not(edge_sdp_plausible("v=0\r\ns=no-origin\r\nm=audio 1 RTP/AVP 0\r\n", 38, false));
    cr_expect_not(edge_sdp_plausible("v=01\r\no=a 1 1 IN IP4 0.0.0.0\r\n", 29, false));
    cr_expect_not(edge_sdp_plausible(NULL, 0, false));
    /* "m=" inside a line is no media line */
    cr_expect_not(edge_sdp_plausible("v=0\no=a 1 1 IN IP4 0.0.0.0\ns=m=audio\n", 36, true));
}

Test(edge_sdp, reorigin_replaces_only_the_origin_and_counts_versions)
{
    struct edge_sdp_origin o = {.sess_id = 1234, .version = 1};
    char out[512];

    cr_assert_eq(edge_sdp_reorigin(DEST, strlen(DEST), &o, true, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "v=0\r\no=sipdrain 1234 2 IN IP4 0.0.0.0\r\ns=dest-offer\r\n"
                          "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n");
    cr_expect_eq(o.version, 2);
    cr_assert_eq(edge_sdp_reorigin(DEST, strlen(DEST), &o, true, out, sizeof(out)), 0);
    cr_expect(strstr(out, "o=sipdrain 1234 3 IN IP4 0.0.0.0\r\n") != NULL, "%s", out);
    /* an answer repeating the last SDP keeps the version */
    cr_assert_eq(edge_sdp_reorigin(DEST, strlen(DEST), &o, false, out, sizeof(out)), 0);
    cr_expect(strstr(out, "o=sipdrain 1234 3 IN IP4 0.0.0.0\r\n") != NULL, "%s", out);
    cr_expect_eq(o.version, 3);
}

Test(edge_sdp, reorigin_keeps_bare_newlines_and_a_last_line_without_one)
{
    struct edge_sdp_origin o = {.sess_id = 9, .version = 0};
    const char *in = "v=0\no=x 1 1 IN IP4 10.0.0.1";
    char out[128];

    cr_assert_eq(edge_sdp_reorigin(in, strlen(in), &o, true, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "v=0\no=sipdrain 9 1 IN IP4 0.0.0.0");
}

Test(edge_sdp, reorigin_refuses_no_origin_and_a_short_buffer_without_counting)
{
    struct edge_sdp_origin o = {.sess_id = 9, .version = 5};
    const char *in = "v=0\r\ns=x\r\n";
    char out[40];

    cr_expect_eq(edge_sdp_reorigin(in, strlen(in), &o, true, out, sizeof(out)), -1);
    cr_expect_str_eq(out, "");
    cr_expect_eq(edge_sdp_reorigin(DEST, strlen(DEST), &o, true, out, sizeof(out)), -1);
    cr_expect_str_eq(out, "");
    cr_expect_eq(o.version, 5);
}

Test(edge_sdp, no_media_offer_has_the_origin_and_no_media_line)
{
    struct edge_sdp_origin o = {.sess_id = 77, .version = 1};
    char out[256];

    cr_assert_eq(edge_sdp_no_media(&o, out, sizeof(out)), 0);
    cr_expect(strstr(out, "\r\no=sipdrain 77 1 IN IP4 0.0.0.0\r\n") != NULL, "%s", out);
    cr_expect(edge_sdp_plausible(out, strlen(out), false));
    cr_expect_not(edge_sdp_plausible(out, strlen(out), true));
    cr_expect_eq(edge_sdp_no_media(&o, out, 20), -1);
}
