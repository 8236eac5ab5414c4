/* pg: the text[] literal a batch statement's parameter is built from
 * (sd_pg_text_array). Call-IDs and DNs come from the network: quotes,
 * backslashes, commas and braces must come out as data. The database's own
 * reading of these literals is exercised by the edge's routing tests. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "sipdrain/pg.h"

static void expect(const char *const *items, size_t n, const char *want)
{
    char *got = sd_pg_text_array(items, n);

    cr_assert_not_null(got);
    cr_expect_str_eq(got, want);
    free(got);
}

Test(pg_text_array, empty_is_two_braces)
{
    expect(NULL, 0, "{}");
}

Test(pg_text_array, every_element_is_quoted)
{
    const char *items[] = {"a", "b c", ""};

    expect(items, 3, "{\"a\",\"b c\",\"\"}");
}

Test(pg_text_array, quotes_and_backslashes_are_escaped_commas_and_braces_kept)
{
    const char *items[] = {"x\"y", "1\\2", "{a,b}", "NULL"};

    expect(items, 4, "{\"x\\\"y\",\"1\\\\2\",\"{a,b}\",\"NULL\"}");
}

Test(pg_text_array, a_null_item_is_sql_null)
{
    const char *items[] = {"a", NULL};

    expect(items, 2, "{\"a\",NULL}");
}
