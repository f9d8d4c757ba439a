/*
 * test_url.c - weft__url_split: schemes, hosts (names, addresses, [IPv6]), ports, the rest,
 * and every refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/url.h"

static void test_split(void **state)
{
    static const struct {
        const char *url, *scheme, *host;
        bool bracketed;
        unsigned port;
        const char *rest;
    } ok[] = {
        {"http://example.com", "http", "example.com", false, 0, ""},
        {"HTTP://h:8080/a/b?q=1#f", "HTTP", "h", false, 8080, "/a/b?q=1#f"},
        {"h", NULL, "h", false, 0, ""},
        {"127.0.0.1:4318/v1/traces", NULL, "127.0.0.1", false, 4318, "/v1/traces"},
        {"[::1]:9/x", NULL, "::1", true, 9, "/x"},
        {"http://[fe80::1%eth0]/", "http", "fe80::1%eth0", true, 0, "/"},
        {"svc+v2.x-y://h/", "svc+v2.x-y", "h", false, 0, "/"},
        {"h:00080", NULL, "h", false, 80, ""},
        {"h:65535/", NULL, "h", false, 65535, "/"},
        {"h/a://b", NULL, "h", false, 0, "/a://b"}, /* "://" later on is not a scheme */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        weft__url_t u;
        const char *why = weft__url_split(ok[i].url, &u);
        if (why) fail_msg("%s: %s", ok[i].url, why);
        if (ok[i].scheme) {
            assert_non_null(u.scheme);
            assert_int_equal(u.scheme_len, strlen(ok[i].scheme));
            assert_memory_equal(u.scheme, ok[i].scheme, u.scheme_len);
        } else {
            assert_null(u.scheme);
        }
        assert_string_equal(u.host, ok[i].host);
        assert_int_equal(u.bracketed, ok[i].bracketed);
        assert_int_equal(u.port, ok[i].port);
        assert_string_equal(u.rest, ok[i].rest);
    }
}

static void test_refusals(void **state)
{
    char longhost[300];
    memset(longhost, 'a', 256);
    longhost[256] = 0;
    static const struct {
        const char *url, *says;
    } bad[] = {
        {"", "host"},
        {"http://", "host"},
        {"http:///x", "host"},
        {":80", "host"},
        {"[]:80", "host"},
        {"[::1", "']'"},
        {"h:", "port"},
        {"h:0", "port"},
        {"h:65536", "port"},
        {"h:123456", "port"},
        {"h:8x", "'/'"},
        {"h?q", "'/'"},
        {"h#f", "'/'"},
        {"[::1]x", "'/'"},
        {"h: 80", "port"},
        {"1http://h", "port"}, /* no scheme starts with a digit: host "1http", then ":/" */
        {"http://user@h/", "'@'"},
        {"h]x/", "']'"},
        {"a b/", "blanks"},
        {"[a b]", "blanks"},
        {"h\x01/", "control"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft__url_t u;
        const char *why = weft__url_split(bad[i].url, &u);
        if (!why || !strstr(why, bad[i].says))
            fail_msg("\"%s\": %s (want \"%s\")", bad[i].url, why ? why : "accepted", bad[i].says);
    }
    weft__url_t u;
    assert_non_null(weft__url_split(longhost, &u)); /* 256 bytes */
    longhost[255] = 0;
    assert_null(weft__url_split(longhost, &u)); /* 255 */
    /* the scheme is known even when the rest is refused */
    assert_non_null(weft__url_split("https://:0", &u));
    assert_non_null(u.scheme);
    assert_int_equal(u.scheme_len, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_split),
                                       cmocka_unit_test(test_refusals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
