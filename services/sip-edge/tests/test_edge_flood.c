/* test_edge_flood.c - per-source flood limits (edge_flood.c): the bucket,
 * the ban and its end, failed authentications, and a table that a flood
 * of new addresses cannot use to free a banned source. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>

#include "edge_flood.h"

static struct edge_flood flood; /* ~0.4 MB: not on the stack */
static const struct edge_flood_config cfg = {
    .rate = 10, .burst = 20, .max_failures = 5, .window_s = 60, .ban_s = 30};

static const unsigned char a[4] = {127, 0, 0, 2}, b[4] = {127, 0, 0, 3};

Test(edge_flood, a_burst_passes_one_more_bans_and_the_ban_ends_with_a_full_bucket)
{
    edge_flood_init(&flood, &cfg);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(edge_flood_request(&flood, AF_INET, a, 1000), EDGE_FLOOD_PASS, "request %d",
                     i);
    cr_expect_eq(edge_flood_request(&flood, AF_INET, a, 1000), EDGE_FLOOD_BANNED_NOW);
    cr_expect_eq(edge_flood_request(&flood, AF_INET, a, 1001), EDGE_FLOOD_BANNED);
    cr_expect_eq(edge_flood_request(&flood, AF_INET, b, 1001), EDGE_FLOOD_PASS,
                 "another source is not touched");
    cr_expect_eq(edge_flood_banned(&flood, 1001), 1);
    cr_expect_eq(edge_flood_request(&flood, AF_INET, a, 30999), EDGE_FLOOD_BANNED,
                 "still within the 30 s");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(edge_flood_request(&flood, AF_INET, a, 31000), EDGE_FLOOD_PASS,
                     "after the ban, request %d", i);
    cr_expect_eq(edge_flood_banned(&flood, 31000), 0);
}

Test(edge_flood, the_rate_refills_the_bucket)
{
    edge_flood_init(&flood, &cfg);
    for (int i = 0; i < 20; i++)
        edge_flood_request(&flood, AF_INET, a, 1000);
    /* 10 a second: 500 ms give 5 more */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(edge_flood_request(&flood, AF_INET, a, 1500), EDGE_FLOOD_PASS, "%d", i);
    cr_expect_eq(edge_flood_request(&flood, AF_INET, a, 1500), EDGE_FLOOD_BANNED_NOW);
    /* a steady 10 a second never bans */
    edge_flood_init(&flood, &cfg);
    for (int64_t t = 0; t < 60000; t += 100)
        cr_assert_eq(edge_flood_request(&flood, AF_INET, a, t), EDGE_FLOOD_PASS, "t=%lld",
                     (long long)t);
}

Test(edge_flood, failed_authentications_ban_within_their_window_only)
{
    edge_flood_init(&flood, &cfg);
    for (int i = 0; i < 4; i++)
        cr_assert_not(edge_flood_auth_failed(&flood, AF_INET, a, 1000 + i));
    cr_expect(edge_flood_auth_failed(&flood, AF_INET, a, 2000), "the fifth one bans");
    cr_expect_eq(edge_flood_request(&flood, AF_INET, a, 2001), EDGE_FLOOD_BANNED);
    /* spread over more than the window: no ban */
    for (int i = 0; i < 4; i++)
        cr_assert_not(edge_flood_auth_failed(&flood, AF_INET, b, 1000 + i));
    cr_expect_not(edge_flood_auth_failed(&flood, AF_INET, b, 62000),
                  "a new window starts after 60 s");
}

Test(edge_flood, a_flood_of_new_addresses_does_not_push_a_banned_source_out)
{
    unsigned char x[16];

    edge_flood_init(&flood, &cfg);
    for (int i = 0; i <= 20; i++)
        edge_flood_request(&flood, AF_INET, a, 1000);
    cr_assert_eq(edge_flood_request(&flood, AF_INET, a, 1000), EDGE_FLOOD_BANNED);
    for (int i = 0; i < 3 * EDGE_FLOOD_SOURCES; i++) {
        memset(x, 0, sizeof(x));
        x[0] = 0x20;
        x[13] = (unsigned char)(i >> 16);
        x[14] = (unsigned char)(i >> 8);
        x[15] = (unsigned char)i;
        edge_flood_request(&flood, AF_INET6, x, 2000);
    }
    cr_expect_eq(edge_flood_request(&flood, AF_INET, a, 2001), EDGE_FLOOD_BANNED,
                 "the banned source was forgotten");
}
