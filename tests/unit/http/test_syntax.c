/*
 * test_syntax.c - the HTTP syntax rules (src/http/syntax.h) against references written the
 * slow, obvious way: every byte value for the byte classes; for the eight-bytes-at-a-time
 * scanners (target_clean, value_clean) every length up to four words with a byte of each
 * kind at each offset, so that the word loop, the tail loop and the hand-over between them
 * are all covered, and the bytes just past the end are never looked at; SWAR's "some byte
 * below" against a byte-by-byte answer on words made of the values around each limit;
 * case-insensitive comparison, and Host values.
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

#include "http/syntax.h"

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool ref_tchar(unsigned ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != 0 && ch < 128 && strchr("!#$%&'*+-.^_`|~", (int)ch));
}

static void test_byte_classes(void **state)
{
    for (unsigned ch = 0; ch < 256; ch++) {
        bool digit = ch >= '0' && ch <= '9';
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        assert_int_equal(weft__http_is_tchar((unsigned char)ch), ref_tchar(ch));
        assert_int_equal(weft__http_is_digit((unsigned char)ch), digit);
        assert_int_equal(weft__http_is_alpha((unsigned char)ch), alpha);
        int hex = digit                    ? (int)ch - '0'
                  : ch >= 'a' && ch <= 'f' ? (int)ch - 'a' + 10
                  : ch >= 'A' && ch <= 'F' ? (int)ch - 'A' + 10
                                           : -1;
        assert_int_equal(weft__http_hex_digit((char)ch), hex);
    }
}

static void test_tokens(void **state)
{
    assert_true(weft__http_tchars("", 0));
    assert_false(weft__http_token("", 0));
    assert_true(weft__http_token("GET", 3));
    assert_true(weft__http_token("X-Custom_Header.v2~!#$%&'*+^`|", 30));
    assert_false(weft__http_token("Bad Name", 8));
    assert_false(weft__http_token("a:b", 3));
    assert_false(weft__http_token("a\0b", 3)); /* NUL inside: the length is what counts */
    assert_true(weft__http_tchars("abc(", 3)); /* only n bytes are looked at */
    /* one bad byte at each offset of a 20-byte token */
    for (size_t at = 0; at < 20; at++) {
        char t[20];
        memset(t, 'a', sizeof(t));
        t[at] = '"';
        assert_false(weft__http_token(t, sizeof(t)));
        t[at] = '-';
        assert_true(weft__http_token(t, sizeof(t)));
    }
}

static void test_ieq(void **state)
{
    assert_true(weft__http_ieqn("Content-Length", 14, "content-length", 14));
    assert_true(weft__http_ieq("HOST", 4, "host"));
    assert_true(WEFT__HTTP_IEQ_LIT("eXpEcT", 6, "expect"));
    assert_false(weft__http_ieq("host", 4, "hosts"));
    assert_false(weft__http_ieqn("host", 4, "hos", 3));
    assert_true(weft__http_ieqn("", 0, "", 0));
    /* only letters fold: bytes 0x20 apart that are not letters stay different */
    assert_false(weft__http_ieqn("@", 1, "`", 1));
    assert_false(weft__http_ieqn("[", 1, "{", 1));
    assert_false(weft__http_ieqn("^", 1, "~", 1));
    assert_false(weft__http_ieqn("\xc1", 1, "\xe1", 1));
    for (unsigned ch = 0; ch < 256; ch++)
        for (unsigned dh = 0; dh < 256; dh++) {
            char a = (char)ch, b = (char)dh;
            bool ref =
                ch == dh || ((ch ^ dh) == 0x20 && ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'));
            if (weft__http_ieqn(&a, 1, &b, 1) != ref) fail_msg("ieqn %02x %02x", ch, dh);
        }
}

/* Byte by byte: some byte of the 8 at p is below lim. */
static bool ref_below(const unsigned char *p, unsigned lim)
{
    for (int i = 0; i < 8; i++)
        if (p[i] < lim) return true;
    return false;
}

/* Words made of the values around the limit (and the extremes), in every position. */
static void test_swar(void **state)
{
    static const unsigned lims[] = {1, 0x0e, 0x21, 0x80};
    for (size_t k = 0; k < sizeof(lims) / sizeof(lims[0]); k++) {
        unsigned lim = lims[k];
        const unsigned char vals[] = {0,
                                      (unsigned char)(lim - 1),
                                      (unsigned char)lim,
                                      (unsigned char)(lim + 1),
                                      0x7f,
                                      0x80,
                                      0xfe,
                                      0xff};
        uint32_t seed = 12345;
        for (int n = 0; n < 200000; n++) {
            unsigned char w[8];
            for (int i = 0; i < 8; i++) {
                seed = seed * 1103515245u + 12345u;
                w[i] = vals[(seed >> 16) % sizeof(vals)];
            }
            uint64_t v = weft__http_load8((const char *)w);
            if (weft__http_swar_below(v, lim) != ref_below(w, lim))
                fail_msg("swar_below lim %u word %02x%02x%02x%02x%02x%02x%02x%02x", lim, w[0], w[1],
                         w[2], w[3], w[4], w[5], w[6], w[7]);
        }
    }
    /* swar_has: b at each position, and its neighbours nowhere */
    for (unsigned b = 0; b < 256; b++)
        for (int at = -1; at < 8; at++) {
            unsigned char w[8];
            for (int i = 0; i < 8; i++) w[i] = (unsigned char)(i == at ? b : b ^ 1);
            assert_int_equal(
                weft__http_swar_has(weft__http_load8((const char *)w), (unsigned char)b), at >= 0);
        }
}

#define SCAN_MAX 33 /* four words and one byte */

/* target_clean: no byte <= SP, no DEL. Every length to SCAN_MAX, every byte value at every
 * offset of a clean string; a bad byte right after the end is never seen. */
static void test_target_clean(void **state)
{
    char buf[SCAN_MAX + 1];
    for (size_t n = 0; n <= SCAN_MAX; n++) {
        memset(buf, 'a', sizeof(buf));
        buf[n] = ' '; /* just past the end */
        assert_true(weft__http_target_clean(buf, n));
        for (size_t at = 0; at < n; at++)
            for (unsigned ch = 0; ch < 256; ch++) {
                buf[at] = (char)ch;
                bool ok = ch > ' ' && ch != 0x7f;
                if (weft__http_target_clean(buf, n) != ok)
                    fail_msg("target_clean n %zu at %zu byte %02x", n, at, ch);
                buf[at] = 'a';
            }
    }
    assert_true(weft__http_target_clean("/caf\xc3\xa9?q=\xff", 10)); /* obs-text passes */
    assert_false(weft__http_target_clean("/a b", 4));
}

/* value_clean: no CR, LF or NUL. Every byte value at every offset; a harmless byte below
 * 0x0e (which sends the scan from words to bytes) followed by a bad one in a later word; a
 * bad byte right after the end is never seen. */
static void test_value_clean(void **state)
{
    char buf[SCAN_MAX + 1];
    for (size_t n = 0; n <= SCAN_MAX; n++) {
        memset(buf, 'v', sizeof(buf));
        buf[n] = '\n'; /* just past the end */
        assert_true(weft__http_value_clean(buf, n));
        for (size_t at = 0; at < n; at++) {
            for (unsigned ch = 0; ch < 256; ch++) {
                buf[at] = (char)ch;
                bool ok = ch != '\r' && ch != '\n' && ch != 0;
                if (weft__http_value_clean(buf, n) != ok)
                    fail_msg("value_clean n %zu at %zu byte %02x", n, at, ch);
                buf[at] = 'v';
            }
            /* a tab (below 0x0e, allowed) at `at`, then a bad byte at each later offset */
            buf[at] = '\t';
            assert_true(weft__http_value_clean(buf, n));
            for (size_t bad = at + 1; bad < n; bad++) {
                buf[bad] = '\r';
                if (weft__http_value_clean(buf, n)) fail_msg("value_clean tab %zu cr %zu", at, bad);
                buf[bad] = 'v';
            }
            buf[at] = 'v';
        }
    }
    static const char v[] = "text/html; charset=\"utf-8\"\t\x01\x7f\xff";
    assert_true(weft__http_value_clean(v, sizeof(v) - 1));
    assert_false(weft__http_value_clean(v, sizeof(v))); /* with its NUL */
}

static void test_authority(void **state)
{
    static const char *const good[] = {
        "",
        "example.com",
        "example.com:8080",
        "example.com:",
        "a",
        "127.0.0.1:1",
        "[::1]",
        "[::1]:8080",
        "[2001:db8::a.b.c.d]",
        "xn--bcher-kva.example",
        "a-b_c~d.e!f$g&h'i(j)k*l+m,n;o=p%41",
        "h:65535",
        "h:99999", /* at most 5 digits; the range is not the syntax's */
    };
    static const char *const bad[] = {
        ":80",         /* a port without a host */
        "[]",          /* an empty literal */
        "[::1",        /* unclosed */
        "[::1]x",      /* after the literal: only ":port" */
        "[::g]",       /* not hex */
        "host:123456", /* 6 digits */
        "host:8a",     /* not a digit */
        "user@host",   /* user information */
        "host/path",   /* a path */
        "host name",   /* a blank */
        "\"host\"",    /* quotes */
        "host:80:81",  /* two ports */
        "caf\xc3\xa9", /* not ASCII */
        "host\x7f",    /* DEL */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!weft__http_authority_valid(good[i], strlen(good[i]))) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (weft__http_authority_valid(bad[i], strlen(bad[i]))) fail_msg("accepted %s", bad[i]);
    /* the length is what counts: "host" out of "host/x" */
    assert_true(weft__http_authority_valid("host/x", 4));
    /* every byte as a reg-name byte */
    for (unsigned ch = 1; ch < 256; ch++) {
        char h[3] = {'a', (char)ch, 'b'};
        bool ok = ch < 128 &&
                  (weft__http_is_alpha((unsigned char)ch) ||
                   weft__http_is_digit((unsigned char)ch) || strchr("-._~!$&'()*+,;=%", (int)ch));
        if (weft__http_authority_valid(h, 3) != ok) fail_msg("reg-name byte %02x", ch);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_classes), cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_ieq),          cmocka_unit_test(test_swar),
        cmocka_unit_test(test_target_clean), cmocka_unit_test(test_value_clean),
        cmocka_unit_test(test_authority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
