/*
 * test_head.c - weft__head_scan (src/http/head.c): the heads it takes, with their offsets,
 * and each kind it leaves to llhttp. Every head is put at the end of an allocation of
 * exactly its size, so that ASan sees a read past it. The scanners go sixteen bytes a step
 * (SSE2; eight elsewhere) and load the last sixteen bytes of the head for a shorter rest: a
 * target, a header name and a header value of every length to 72, with a byte that stops
 * them at each offset, and with 0 to 17 bytes after the head, cross every step boundary
 * both ways. The differential check against llhttp itself is tests/fuzz/http/fuzz_head.c.
 * test_head_swar.c and test_head_bytes.c run these cases on the eight-byte and the
 * byte-by-byte scanners too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <llhttp.h>

#include "http/head.h"

#define HCAP 8

static weft__hspan_t hs[HCAP];
static weft__head_t o;

/* Scans a copy of s (exactly its bytes) as a request or a response. */
static bool scan(bool response, const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    memset(&o, 0xa5, sizeof(o));
    bool ok = weft__head_scan(response, p, n, 8192, hs, HCAP, &o);
    free(p);
    return ok;
}

/* Scans a copy of exactly n bytes of s (NUL is a byte here). */
static bool scan_n(bool response, const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    bool ok = weft__head_scan(response, p, n, 8192, hs, HCAP, &o);
    free(p);
    return ok;
}

static void expect_span(const char *s, uint32_t i, const char *name, const char *value)
{
    assert_int_equal(hs[i].nlen, strlen(name));
    assert_memory_equal(s + hs[i].noff, name, hs[i].nlen);
    assert_int_equal(hs[i].vlen, strlen(value));
    if (hs[i].vlen)
        assert_memory_equal(s + hs[i].voff, value, hs[i].vlen);
    else
        assert_int_equal(hs[i].voff, 0);
}

static void test_request(void **state)
{
    (void)state;
    const char *r = "GET /hello?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: weft\r\n"
                    "X-Empty:\r\nX-Blank: a b \t\r\n\r\nGET /next";
    assert_true(scan(false, r));
    assert_int_equal(o.method, HTTP_GET);
    assert_int_equal(o.url_off, 4);
    assert_int_equal(o.url_len, strlen("/hello?x=1"));
    assert_int_equal(o.nhdr, 4);
    assert_false(o.close);
    assert_int_equal(o.len, strstr(r, "GET /next") - r); /* the next request is not its */
    expect_span(r, 0, "Host", "127.0.0.1:8080");
    expect_span(r, 1, "User-Agent", "weft");
    expect_span(r, 2, "X-Empty", "");
    expect_span(r, 3, "X-Blank", "a b \t"); /* trailing blanks kept, as llhttp gives them */

    static const struct {
        const char *line;
        uint8_t method;
    } methods[] = {{"GET", HTTP_GET},    {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
                   {"PUT", HTTP_PUT},    {"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS},
                   {"PATCH", HTTP_PATCH}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char b[128];
        snprintf(b, sizeof(b), "%s / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                 methods[i].line);
        assert_true(scan(false, b));
        assert_int_equal(o.method, methods[i].method);
        assert_true(o.close);
    }
    assert_true(scan(false, "GET / HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n"));
    assert_false(o.close);
    assert_true(scan(false, "GET / HTTP/1.1\r\n\r\n")); /* no Host: head.c's caller says 400 */
    assert_int_equal(o.nhdr, 0);
}

static void test_response(void **state)
{
    (void)state;
    const char *r = "HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 16:55:22 GMT\r\n"
                    "Content-Length: 13\r\n\r\nhello, world\n";
    assert_true(scan(true, r));
    assert_int_equal(o.status, 200);
    assert_int_equal(o.length, 13);
    assert_int_equal(o.len, strlen(r) - 13);
    expect_span(r, 1, "Content-Length", "13");
    assert_true(scan(true, "HTTP/1.1 503 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    assert_int_equal(o.status, 503);
    assert_true(o.close);
    assert_true(scan(true, "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n")); /* body later */
    assert_int_equal(o.length, 2);
}

/* Each of these goes to llhttp: a doubt, an unusual framing, or not all there yet. */
static void test_declined(void **state)
{
    (void)state;
    static const char *requests[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n",                              /* not all there */
        "GET / HTTP/1.1\r\nHost: a\r\n\r",                            /* not all there */
        "GET / HTTP/1.0\r\nHost: a\r\n\r\n",                          /* HTTP/1.0 */
        "GET / HTTP/1.1\nHost: a\r\n\r\n",                            /* bare LF */
        "GET / HTTP/1.1\r\nHost: a\n\r\n",                            /* bare LF */
        "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",                        /* bare CR */
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",                         /* two spaces */
        "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",                  /* absolute form */
        "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",                  /* authority form */
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",                      /* asterisk form */
        "get / HTTP/1.1\r\nHost: a\r\n\r\n",                          /* not a method here */
        "PURGE / HTTP/1.1\r\nHost: a\r\n\r\n",                        /* unknown method */
        "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",                      /* obs-text in the target */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",                         /* blank before ':' */
        "GET / HTTP/1.1\r\nH(st: a\r\n\r\n",                          /* not a token */
        "GET / HTTP/1.1\r\n: a\r\n\r\n",                              /* empty name */
        "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",                      /* control byte */
        "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",                      /* DEL */
        "GET / HTTP/1.1\r\nX: \xc3\xa9\r\n\r\n",                      /* obs-text in a value */
        "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",                       /* obs-fold */
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", /* a body */
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n",
        "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", /* a CRLF first: llhttp skips it */
        ("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\n"
         "I: 9\r\n\r\n"), /* more than hcap */
    };
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
        if (scan(false, requests[i])) fail_msg("request %zu was taken", i);
    static const char *responses[] = {
        "HTTP/1.1 200 OK\r\n\r\n",                                           /* read to the close */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",             /* chunked */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", /* twice */
        "HTTP/1.1 200 OK\r\nContent-Length: 1 \r\n\r\n",                     /* a blank after it */
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n", /* 16 digits */
        "HTTP/1.1 100 Continue\r\n\r\n",                               /* interim */
        "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", /* no SP after the status */
        "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
    };
    for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++)
        if (scan(true, responses[i])) fail_msg("response %zu was taken", i);
}

/* Bytes after a head (the next request's, pipelined): 0 to 17 of them move the head's end
 * against the end of the bytes, so that its last line is read both in a whole step and in
 * the shorter last one. */
#define MAX_PAD 17
static const char pad[MAX_PAD + 1] = "GET /next HTTP/1.";

/* A value of every length to 72: taken plain, and with '!' or '~' at any offset; with a
 * control byte (or DEL, or a byte at or above 0x80) at any offset, declined; a tab anywhere
 * taken. So every step boundary of the
 * scanners is crossed, and no byte past n is read (the copy ends there). */
static void test_value_lengths(void **state)
{
    (void)state;
    static const unsigned char bad[] = {0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f, 0x80, 0xff};
    static const unsigned char edge[] = {'!', '~'}; /* the ends of the visible bytes */
    for (size_t len = 0; len <= 72; len++) {
        for (size_t np = 0; np <= MAX_PAD; np++) {
            char b[160];
            int pre = snprintf(b, sizeof(b), "GET / HTTP/1.1\r\nX-Value: ");
            memset(b + pre, 'v', len);
            memcpy(b + pre + len, "\r\n\r\n", 4);
            memcpy(b + pre + len + 4, pad, np);
            size_t n = (size_t)pre + len + 4 + np;
            assert_true(scan_n(false, b, n));
            assert_int_equal(o.len, n - np);
            assert_int_equal(hs[0].voff, len ? (size_t)pre : 0);
            assert_int_equal(hs[0].vlen, len);
            for (size_t at = 0; at < len; at++) {
                char c[160];
                memcpy(c, b, sizeof(c));
                c[pre + at] = '\t';
                if (at > 0) { /* a leading tab is blank before it */
                    assert_true(scan_n(false, c, n));
                    assert_int_equal(hs[0].vlen, len);
                }
                for (size_t k = 0; k < sizeof(edge); k++) {
                    c[pre + at] = (char)edge[k];
                    if (!scan_n(false, c, n))
                        fail_msg("len %zu, pad %zu, byte %02x at %zu declined", len, np, edge[k],
                                 at);
                    assert_int_equal(hs[0].vlen, len);
                }
                for (size_t k = 0; k < sizeof(bad); k++) {
                    c[pre + at] = (char)bad[k];
                    if (scan_n(false, c, n))
                        fail_msg("len %zu, pad %zu, byte %02x at %zu taken", len, np, bad[k], at);
                }
            }
        }
    }
}

/* A header name of every length to 72: taken when every byte is a tchar, the rarer ones
 * (not a letter, digit or '-') at any offset too; declined with a byte that is not a tchar
 * at any offset. */
static void test_name_lengths(void **state)
{
    (void)state;
    static const char rare[] = "!#$%&'*+.^_`|~";
    static const unsigned char bad[] = {0x00, 0x09, 0x0d, ' ', '"',  '(',  ')', ',',
                                        '/',  ';',  '<',  '=', '>',  '?',  '@', '[',
                                        '\\', ']',  '{',  '}', 0x7f, 0x80, 0xff};
    for (size_t len = 1; len <= 72; len++) {
        for (size_t np = 0; np <= MAX_PAD; np++) {
            char b[160];
            int pre = snprintf(b, sizeof(b), "GET / HTTP/1.1\r\n");
            for (size_t j = 0; j < len; j++) b[pre + j] = "aZ9-"[j % 4];
            memcpy(b + pre + len, ": v\r\n\r\n", 8);
            memcpy(b + pre + len + 8, pad, np);
            size_t n = (size_t)pre + len + 8 + np;
            assert_true(scan_n(false, b, n));
            assert_int_equal(hs[0].noff, pre);
            assert_int_equal(hs[0].nlen, len);
            for (size_t at = 0; at < len; at++) {
                char c[160];
                memcpy(c, b, sizeof(c));
                for (size_t k = 0; rare[k]; k++) {
                    c[pre + at] = rare[k];
                    if (!scan_n(false, c, n))
                        fail_msg("len %zu, pad %zu, '%c' at %zu declined", len, np, rare[k], at);
                    assert_int_equal(hs[0].nlen, len);
                }
                c[pre + at] = '_';
                c[pre + (at * 7 + 3) % len] = '.'; /* two rare ones */
                assert_true(scan_n(false, c, n));
                assert_int_equal(hs[0].nlen, len);
                memcpy(c, b, sizeof(c));
                for (size_t k = 0; k < sizeof(bad); k++) {
                    c[pre + at] = (char)bad[k];
                    if (scan_n(false, c, n))
                        fail_msg("len %zu, pad %zu, byte %02x at %zu taken", len, np, bad[k], at);
                }
                c[pre + at] = ':'; /* an earlier ':': a shorter name, with a value with ':' */
                assert_true(scan_n(false, c, n) == (at > 0));
                if (at > 0) assert_int_equal(hs[0].nlen, at);
            }
        }
    }
}

/* A request target of every length to 72: taken, and with '!' or '~' at any offset; with SP, a
 * control byte, DEL or a byte at or above 0x80 at any offset past its '/', declined. */
static void test_target_lengths(void **state)
{
    (void)state;
    static const unsigned char bad[] = {0x00, 0x09, 0x0d, ' ', 0x7f, 0x80, 0xff};
    static const unsigned char edge[] = {'!', '~'}; /* the ends of the visible bytes */
    for (size_t len = 1; len <= 72; len++) {
        for (size_t np = 0; np <= MAX_PAD; np++) {
            char b[160];
            b[0] = 'G', b[1] = 'E', b[2] = 'T', b[3] = ' ', b[4] = '/';
            memset(b + 5, 't', len - 1);
            memcpy(b + 4 + len, " HTTP/1.1\r\n\r\n", 13);
            memcpy(b + 4 + len + 13, pad, np);
            size_t n = 4 + len + 13 + np;
            assert_true(scan_n(false, b, n));
            assert_int_equal(o.url_off, 4);
            assert_int_equal(o.url_len, len);
            assert_int_equal(o.len, n - np);
            for (size_t at = 1; at < len; at++) {
                char c[160];
                memcpy(c, b, sizeof(c));
                for (size_t k = 0; k < sizeof(edge); k++) {
                    c[4 + at] = (char)edge[k];
                    if (!scan_n(false, c, n))
                        fail_msg("len %zu, pad %zu, byte %02x at %zu declined", len, np, edge[k],
                                 at);
                    assert_int_equal(o.url_len, len);
                }
                for (size_t k = 0; k < sizeof(bad); k++) {
                    c[4 + at] = (char)bad[k];
                    if (scan_n(false, c, n))
                        fail_msg("len %zu, pad %zu, byte %02x at %zu taken", len, np, bad[k], at);
                }
            }
        }
    }
}

/* A head longer than max_head is declined (llhttp's path answers 431). */
static void test_max_head(void **state)
{
    (void)state;
    const char *r = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = strlen(r);
    assert_true(weft__head_scan(false, r, n, n, hs, HCAP, &o));
    assert_false(weft__head_scan(false, r, n, n - 1, hs, HCAP, &o));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),      cmocka_unit_test(test_response),
        cmocka_unit_test(test_declined),     cmocka_unit_test(test_value_lengths),
        cmocka_unit_test(test_name_lengths), cmocka_unit_test(test_target_lengths),
        cmocka_unit_test(test_max_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
