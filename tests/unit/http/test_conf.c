/*
 * test_conf.c - the http.* table's defaults equal weft_http_server_options_init's, so the
 * documented defaults and the engine's cannot drift apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "weft/http.h"

static void test_defaults_agree(void **state)
{
    weft_http_conf_t hc;
    weft_conf_section_t sec = weft_http_conf_section(&hc);
    weft_conf_t conf;
    char err[256];
    char *argv[] = {"t"};
    assert_int_equal(weft_conf_load(&conf, &sec, 1, NULL, 1, argv, err, sizeof(err)), 0);
    weft_http_server_options_t from_table, defaults;
    weft_http_server_options_init(&from_table);
    weft_http_server_options_init(&defaults);
    memset(&from_table.max_head, 0xff, sizeof(from_table.max_head)); /* must be overwritten */
    from_table.shutdown_timeout_ms = 0;
    weft_http_conf_apply(&hc, &from_table);
    assert_memory_equal(&from_table, &defaults, sizeof(defaults));
    weft_conf_free(&conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_defaults_agree)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
