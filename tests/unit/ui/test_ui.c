/*
 * test_ui.c - the dashboard's header rules (src/ui/ui.c): which Accept-Encoding values take
 * the gzip copy (q values, "*", a coding named outright winning over "*", case, blanks),
 * which If-None-Match values match an entity-tag (weak comparison, lists, "*", malformed
 * values matching nothing); and the embedded table: sorted, index.html present, each gzip
 * copy smaller than its file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ui/assets.h"
#include "ui/ui.h"

static weft_str_t S(const char *s)
{
    return (weft_str_t){s, strlen(s)};
}

static void test_accepts_gzip(void **state)
{
    (void)state;
    static const char *yes[] = {"gzip",
                                "GZIP",
                                "x-gzip",
                                "gzip, deflate, br",
                                "br;q=1, gzip;q=0.5",
                                "*",
                                "deflate, *",
                                "gzip;q=0.001",
                                " gzip ; q=1 ",
                                "gzip;Q=1",
                                "identity;q=0, gzip",
                                "*;q=0, gzip",
                                "gzip;level=9"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(weft__ui_accepts_gzip(S(yes[i])));
    static const char *no[] = {
        "",      "identity", "br",  "deflate", "gzip;q=0", "gzip;q=0.000", "*;q=0", "gzip;q=0, *",
        "gzipx", "xgzip",    "gzi", ",,,",     ";q=1",     "*;q=0.0"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(weft__ui_accepts_gzip(S(no[i])));
    assert_false(weft__ui_accepts_gzip((weft_str_t){NULL, 0})); /* no header */
}

static void test_etag_matches(void **state)
{
    (void)state;
    const char *e = "\"abc\"";
    static const char *yes[] = {"\"abc\"",
                                "W/\"abc\"",
                                "*",
                                "\"x\", \"abc\"",
                                "\"x\",W/\"abc\"",
                                "  \"abc\"  ",
                                "\"x\" , \"abc\" , \"y\""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(weft__ui_etag_matches(S(yes[i]), e));
    static const char *no[] = {"",      "\"ab\"",     "\"abcd\"", "abc",       "\"abc",
                               "W/abc", "\"x\", abc", "\"ABC\"",  "w/\"abc\"", ","};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(weft__ui_etag_matches(S(no[i]), e));
}

static void test_table(void **state)
{
    (void)state;
    assert_true(weft__ui_nassets > 0);
    int index = 0;
    for (unsigned i = 0; i < weft__ui_nassets; i++) {
        const weft_ui_asset_t *a = &weft__ui_assets[i];
        if (i) assert_true(strcmp(weft__ui_assets[i - 1].name, a->name) < 0);
        if (strcmp(a->name, "index.html") == 0) index = 1;
        assert_int_equal(strlen(a->etag), 34);
        assert_true(a->len > 0);
        if (a->gz) assert_true(a->gzlen < a->len);
        assert_non_null(a->type);
    }
    assert_true(index);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_gzip),
        cmocka_unit_test(test_etag_matches),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
