/* metrics: the Prometheus text the services' /metrics pages are made of. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sipdrain/http.h"

Test(metrics, a_family_and_its_samples_in_prometheus_text)
{
    struct sd_metrics m = {0};

    sd_metrics_family(&m, "sipdrain_edge_calls_active", "gauge", "calls in progress");
    sd_metrics_sample(&m, "sipdrain_edge_calls_active", "edge=\"edge-2a\"", 3);
    sd_metrics_sample(&m, "sipdrain_edge_calls_active", NULL, 0.5);
    sd_metrics_sample(&m, "sipdrain_edge_calls_active", "", 12345678901.0);
    cr_assert_str_eq(m.buf, "# HELP sipdrain_edge_calls_active calls in progress\n"
                            "# TYPE sipdrain_edge_calls_active gauge\n"
                            "sipdrain_edge_calls_active{edge=\"edge-2a\"} 3\n"
                            "sipdrain_edge_calls_active 0.5\n"
                            "sipdrain_edge_calls_active 12345678901\n");
    sd_metrics_free(&m);
    cr_expect_null(m.buf);
}

Test(metrics, the_page_grows_past_its_first_buffer)
{
    struct sd_metrics m = {0};
    char labels[64];

    for (int i = 0; i < 2000; i++) {
        snprintf(labels, sizeof(labels), "agent=\"a%d\"", i);
        sd_metrics_sample(&m, "sipdrain_agents", labels, i);
    }
    cr_assert_not_null(m.buf);
    cr_expect_eq(strlen(m.buf), m.len);
    cr_expect(strstr(m.buf, "sipdrain_agents{agent=\"a0\"} 0\n") == m.buf);
    cr_expect(strstr(m.buf, "sipdrain_agents{agent=\"a1999\"} 1999\n") != NULL);
    sd_metrics_free(&m);
}

Test(metrics, the_bus_gauges_show_what_is_known_and_leave_out_the_rest)
{
    struct sd_metrics m = {0};

    sd_metrics_bus(&m, "edge=\"edge-2a\"", 7, 0);
    cr_assert_not_null(m.buf);
    cr_expect(strstr(m.buf, "# TYPE sipdrain_consumer_lag gauge\n"
                            "sipdrain_consumer_lag{edge=\"edge-2a\"} 7\n") != NULL,
              "%s", m.buf);
    cr_expect(strstr(m.buf, "# TYPE sipdrain_outbox_backlog gauge\n"
                            "sipdrain_outbox_backlog{edge=\"edge-2a\"} 0\n") != NULL,
              "%s", m.buf);
    sd_metrics_free(&m);

    sd_metrics_bus(&m, NULL, -1, 4);
    cr_assert_not_null(m.buf);
    cr_expect(strstr(m.buf, "sipdrain_consumer_lag") == NULL, "an unknown lag is left out");
    cr_expect(strstr(m.buf, "\nsipdrain_outbox_backlog 4\n") != NULL, "%s", m.buf);
    sd_metrics_free(&m);

    sd_metrics_bus(&m, NULL, -1, -1);
    cr_expect(m.buf == NULL || m.buf[0] == '\0', "nothing known, nothing written");
    sd_metrics_free(&m);
}
