/*
 * test_buf.c - the growable buffer (core/buf.h) and the JSON writer (core/json_write.h):
 * growth, the limit and sticky failure, numbers, hex, hand-over, reading in place; every
 * JSON string escape, each class of invalid UTF-8, the 8-byte fast path against the
 * byte-wise one; doubles that read back exactly; and every allocation failing in turn.
 *
 * Both .c files are compiled into this test with their allocator redirected
 * (fault_alloc.h). Every JSON text written is also read back with jansson.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fault_alloc.h"

#include "fault_alloc_begin.h"
#include "../../../src/core/buf.c"
#include "../../../src/core/json_write.c"
#include "fault_alloc_end.h"

#define FFFD "\xef\xbf\xbd"

/* The invariant of buf.h that holds after every operation. */
static void check_invariant(const weft_buf_t *b)
{
    assert_true(b->len <= b->limit);
    assert_true(b->limit <= SIZE_MAX / 2);
    if (b->p) {
        assert_true(b->len < b->cap);
        assert_int_equal(b->p[b->len], 0);
    } else {
        assert_int_equal(b->len, 0);
        assert_int_equal(b->cap, 0);
    }
}

/* text (len bytes) must be one JSON string that decodes to want (want_len bytes). */
static void assert_json_string(const char *text, size_t len, const char *want, size_t want_len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("jansson: %s at %d in %.*s", err.text, err.position, (int)len, text);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), want_len);
    if (want_len) assert_memory_equal(json_string_value(j), want, want_len);
    json_decref(j);
}

/* ---- the buffer ---- */

static void test_growth(void **state)
{
    (void)state;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    assert_null(b.p);
    assert_int_equal(b.limit, SIZE_MAX / 2);
    check_invariant(&b);
    char want[100000];
    size_t n = 0;
    for (unsigned i = 0; n + 20 < sizeof(want); i++) {
        char piece[16];
        int k = snprintf(piece, sizeof(piece), "<%u>", i);
        if (i % 3 == 0) {
            weft_buf_put(&b, piece, (size_t)k);
        } else if (i % 3 == 1) {
            weft_buf_puts(&b, piece);
        } else {
            for (int j = 0; j < k; j++) weft_buf_putc(&b, piece[j]);
        }
        memcpy(want + n, piece, (size_t)k);
        n += (size_t)k;
        assert_false(b.failed);
        assert_int_equal(b.len, n);
        check_invariant(&b);
        /* doubling from 256: every capacity is 256 times a power of two */
        assert_int_equal(b.cap % 256, 0);
        assert_int_equal((b.cap / 256) & (b.cap / 256 - 1), 0);
    }
    assert_memory_equal(b.p, want, n);
    assert_true(b.cap < 2 * (n + 1)); /* never more than double the need */

    /* a first need above 256 is allocated as it is */
    weft_buf_t c;
    weft_buf_init(&c, 0);
    weft_buf_put(&c, want, 1000);
    assert_int_equal(c.cap, 1001);
    weft_buf_put(&c, "x", 1);
    assert_int_equal(c.cap, 2002);
    check_invariant(&c);
    weft_buf_free(&c);

    /* NUL bytes are data; an empty put allocates and terminates */
    weft_buf_t d;
    weft_buf_init(&d, 0);
    weft_buf_put(&d, NULL, 0);
    assert_non_null(d.p);
    assert_int_equal(d.cap, 256);
    assert_string_equal(d.p, "");
    weft_buf_putc(&d, 0);
    weft_buf_put(&d, "a\0b", 3);
    assert_int_equal(d.len, 4);
    assert_memory_equal(d.p, "\0a\0b", 5);
    weft_buf_free(&d);
    weft_buf_free(&b);
}

static void test_limit_sticky(void **state)
{
    (void)state;
    weft_buf_t b;
    weft_buf_init(&b, 10);
    assert_int_equal(b.limit, 10);
    weft_buf_puts(&b, "12345");
    assert_int_equal(b.cap, 11); /* capped at limit + 1, not 256 */
    weft_buf_puts(&b, "678901"); /* 11 > 10 */
    assert_true(b.failed);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "12345");
    /* every later write is a no-op, even ones that would fit */
    weft_buf_putc(&b, 'x');
    weft_buf_put(&b, "y", 1);
    weft_buf_puts(&b, "");
    weft_buf_put_u64(&b, 7);
    weft_buf_put_i64(&b, -7);
    weft_buf_put_hex(&b, (const uint8_t *)"\x01", 1);
    weft_json_put_str(&b, "z", 1);
    weft_json_put_key(&b, "k");
    assert_true(weft_json_put_double(&b, 1.5)); /* true: finite; the failure is b's */
    assert_false(weft_buf_reserve(&b, 0));
    assert_true(b.failed);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "12345");
    check_invariant(&b);

    /* reset clears the failure and keeps the memory */
    char *p = b.p;
    weft_buf_reset(&b);
    assert_false(b.failed);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, 11);
    assert_string_equal(b.p, "");
    weft_buf_puts(&b, "0123456789"); /* exactly the limit */
    assert_false(b.failed);
    assert_string_equal(b.p, "0123456789");
    assert_true(weft_buf_reserve(&b, 0));
    assert_false(weft_buf_reserve(&b, 1));
    assert_true(b.failed);

    /* a failed take frees and leaves b empty and usable */
    size_t len = 99;
    assert_null(weft_buf_take(&b, &len));
    assert_int_equal(len, 0);
    assert_null(b.p);
    assert_false(b.failed);
    assert_int_equal(b.limit, 10);
    check_invariant(&b);

    /* a number that would pass the limit is written whole or not at all */
    weft_buf_puts(&b, "12345678");
    weft_buf_put_i64(&b, -5);
    assert_string_equal(b.p, "12345678-5");
    weft_buf_reset(&b);
    weft_buf_puts(&b, "123456789");
    weft_buf_put_i64(&b, -5);
    assert_true(b.failed);
    assert_string_equal(b.p, "123456789");
    weft_buf_free(&b);
    assert_int_equal(b.limit, 10);

    /* limits that would overflow, and requests that would */
    weft_buf_init(&b, SIZE_MAX);
    assert_int_equal(b.limit, SIZE_MAX / 2);
    assert_false(weft_buf_reserve(&b, SIZE_MAX));
    assert_true(b.failed);
    weft_buf_reset(&b);
    assert_false(weft_buf_reserve(&b, SIZE_MAX / 2 + 1));
    weft_buf_reset(&b);
    weft_buf_putc(&b, 'a');
    assert_false(weft_buf_reserve(&b, SIZE_MAX / 2)); /* len 1 + SIZE_MAX/2 > limit */
    weft_buf_reset(&b);
    weft_buf_put_hex(&b, (const uint8_t *)"", SIZE_MAX / 2 + 1); /* 2n wraps: refused */
    assert_true(b.failed);
    weft_buf_reset(&b);
    weft_json_put_str(&b, "", SIZE_MAX); /* n + 2 wraps: refused before reading */
    assert_true(b.failed);
    assert_int_equal(b.len, 0);
    weft_buf_free(&b);
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *s;
    } u[] = {
        {0, "0"},
        {1, "1"},
        {9, "9"},
        {10, "10"},
        {1000000007, "1000000007"},
        {9007199254740993ull, "9007199254740993"},
        {UINT64_MAX, "18446744073709551615"},
    };
    static const struct {
        int64_t v;
        const char *s;
    } s[] = {
        {0, "0"},
        {-1, "-1"},
        {42, "42"},
        {-1000, "-1000"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
        {INT64_MIN + 1, "-9223372036854775807"},
    };
    weft_buf_t b;
    weft_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        weft_buf_reset(&b);
        weft_buf_put_u64(&b, u[i].v);
        assert_string_equal(b.p, u[i].s);
        assert_int_equal(strtoull(b.p, NULL, 10), u[i].v);
    }
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        weft_buf_reset(&b);
        weft_buf_put_i64(&b, s[i].v);
        assert_string_equal(b.p, s[i].s);
        json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL); /* fits json_int_t */
        assert_non_null(j);
        assert_true(json_is_integer(j));
        assert_true(json_integer_value(j) == s[i].v);
        json_decref(j);
    }
    weft_buf_free(&b);
}

static void test_hex(void **state)
{
    (void)state;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    const uint8_t id[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
    weft_buf_putc(&b, '"');
    weft_buf_put_hex(&b, id, sizeof(id));
    weft_buf_putc(&b, '"');
    assert_string_equal(b.p, "\"00017f80abcdefff\"");
    assert_json_string(b.p, b.len, "00017f80abcdefff", 16);
    weft_buf_reset(&b);
    weft_buf_put_hex(&b, id, 0);
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    weft_buf_put_hex(&b, all, 256);
    assert_int_equal(b.len, 512);
    for (int i = 0; i < 256; i++) {
        char two[3];
        snprintf(two, sizeof(two), "%02x", i);
        assert_memory_equal(b.p + 2 * i, two, 2);
    }
    check_invariant(&b);
    weft_buf_free(&b);
}

static void test_take_reset_free(void **state)
{
    (void)state;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    /* never written: a malloc'd "" */
    size_t len = 99;
    char *s = weft_buf_take(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    assert_null(b.p);
    /* written: the contents, and b is empty with nothing allocated */
    weft_buf_puts(&b, "hello");
    s = weft_buf_take(&b, &len);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_false(b.failed);
    free(s);
    /* len may be NULL; b is reusable after take */
    weft_buf_puts(&b, "again");
    s = weft_buf_take(&b, NULL);
    assert_string_equal(s, "again");
    free(s);
    /* reset and free on a buffer that never allocated; free twice */
    weft_buf_reset(&b);
    weft_buf_free(&b);
    weft_buf_free(&b);
    assert_null(b.p);
    weft_buf_puts(&b, "x");
    weft_buf_reset(&b);
    assert_string_equal(b.p, "");
    weft_buf_free(&b);
    check_invariant(&b);
}

/* Reading in place: room, commit, consume; try_reserve refuses without failing b; hex
 * numbers for chunk sizes. */
static void test_read_in_place(void **state)
{
    (void)state;
    weft_buf_t b;
    weft_buf_init(&b, 64);
    assert_int_equal(weft_buf_room(&b), 0); /* nothing allocated */
    assert_true(weft_buf_reserve(&b, 10));
    size_t room = weft_buf_room(&b);
    assert_true(room >= 10);
    assert_int_equal(room, b.cap - 1);
    memcpy(b.p, "HTTP/1.1 2", 10); /* as read(2) would */
    weft_buf_commit(&b, 10);
    check_invariant(&b);
    assert_string_equal(b.p, "HTTP/1.1 2");
    weft_buf_consume(&b, 0);
    assert_string_equal(b.p, "HTTP/1.1 2");
    weft_buf_consume(&b, 9);
    check_invariant(&b);
    assert_string_equal(b.p, "2");
    weft_buf_consume(&b, 1);
    assert_int_equal(b.len, 0);
    check_invariant(&b);

    /* over the limit: refused, b not failed, contents kept; plain reserve fails b */
    weft_buf_puts(&b, "keep");
    assert_false(weft_buf_try_reserve(&b, 61));
    assert_false(b.failed);
    assert_string_equal(b.p, "keep");
    assert_true(weft_buf_try_reserve(&b, 60));
    assert_false(weft_buf_reserve(&b, 61));
    assert_true(b.failed);
    assert_int_equal(weft_buf_room(&b), 0);    /* a failed buffer offers no room */
    assert_false(weft_buf_try_reserve(&b, 1)); /* and stays failed */
    assert_true(b.failed);
    weft_buf_free(&b);

    /* out of memory: refused, not failed, the old bytes stay */
    weft_buf_init(&b, 0);
    weft_buf_puts(&b, "abc");
    alloc_countdown = 0;
    assert_false(weft_buf_try_reserve(&b, 100000));
    alloc_countdown = -1;
    assert_false(b.failed);
    assert_string_equal(b.p, "abc");
    weft_buf_reset(&b);

    const struct {
        uint64_t v;
        const char *want;
    } x[] = {{0, "0"},   {1, "1"},         {15, "f"},
             {16, "10"}, {0x1f2e, "1f2e"}, {UINT64_MAX, "ffffffffffffffff"}};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        weft_buf_reset(&b);
        weft_buf_put_x64(&b, x[i].v);
        assert_string_equal(b.p, x[i].want);
    }
    weft_buf_free(&b);
}

/* ---- JSON strings ---- */

/* put_str of in (n bytes) gives exactly want (a JSON text), which jansson decodes to
 * decoded (dn bytes). */
static void check_str(const char *in, size_t n, const char *want, const char *decoded, size_t dn)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_json_put_str(&b, in, n);
    assert_false(b.failed);
    check_invariant(&b);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    assert_json_string(b.p, b.len, decoded, dn);
    weft_buf_free(&b);
}

#define STR(in, want, decoded) check_str(in, sizeof(in) - 1, want, decoded, sizeof(decoded) - 1)
#define SAME(in, want)         STR(in, want, in) /* valid UTF-8: decodes to the input */

static void test_json_escapes(void **state)
{
    (void)state;
    SAME("", "\"\"");
    SAME("plain text, 0-9 ~!@#$%^&*()_+{}[]|:;'<>?,./`",
         "\"plain text, 0-9 ~!@#$%^&*()_+{}[]|:;'<>?,./`\"");
    SAME("\"", "\"\\\"\"");
    SAME("\\", "\"\\\\\"");
    SAME("a\nb\rc\td\be\ff", "\"a\\nb\\rc\\td\\be\\ff\"");
    SAME("/", "\"/\""); /* the solidus needs no escape */
    SAME("a\0b", "\"a\\u0000b\"");
    SAME("\0", "\"\\u0000\"");
    SAME("\x7f", "\"\\u007f\"");
    SAME("\x01\x1f\x0b\x1b", "\"\\u0001\\u001f\\u000b\\u001b\"");
    /* every byte below 0x20, one at a time */
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c, want[16];
        const char *esc = c == '\n'   ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc)
            snprintf(want, sizeof(want), "\"%s\"", esc);
        else
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        check_str(&in, 1, want, &in, 1);
    }
    /* every printable ASCII byte other than " and \ as it is */
    for (int c = 0x20; c < 0x7f; c++) {
        if (c == '"' || c == '\\') continue;
        char in = (char)c, want[4] = {'"', in, '"', 0};
        check_str(&in, 1, want, &in, 1);
    }
}

static void test_json_utf8(void **state)
{
    (void)state;
    /* well-formed sequences, at the edges of each range, are kept */
    SAME("\xc2\x80", "\"\xc2\x80\"");
    SAME("\xdf\xbf", "\"\xdf\xbf\"");
    SAME("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    SAME("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");
    SAME("\xed\x9f\xbf", "\"\xed\x9f\xbf\""); /* U+D7FF, just below the surrogates */
    SAME("\xee\x80\x80", "\"\xee\x80\x80\""); /* U+E000, just above */
    SAME("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");
    SAME(FFFD, "\"" FFFD "\"");
    SAME("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\"");
    SAME("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    SAME("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    SAME("\xe2\x82\xac\"\xe2\x82\xac", "\"\xe2\x82\xac\\\"\xe2\x82\xac\"");

    /* stray continuation bytes */
    STR("\x80", "\"" FFFD "\"", FFFD);
    STR("a\xbf"
        "b",
        "\"a" FFFD "b\"", "a" FFFD "b");
    /* bytes that never start anything */
    STR("\xc0\xc1\xf5\xfe\xff", "\"" FFFD FFFD FFFD FFFD FFFD "\"", FFFD FFFD FFFD FFFD FFFD);
    /* overlong forms: the lead byte and every continuation byte after it */
    STR("\xc0\x80", "\"" FFFD FFFD "\"", FFFD FFFD);
    STR("\xc1\xbf", "\"" FFFD FFFD "\"", FFFD FFFD);
    STR("\xe0\x80\x80", "\"" FFFD FFFD FFFD "\"", FFFD FFFD FFFD);
    STR("\xe0\x9f\xbf", "\"" FFFD FFFD FFFD "\"", FFFD FFFD FFFD);
    STR("\xf0\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"", FFFD FFFD FFFD FFFD);
    STR("\xf0\x8f\xbf\xbf", "\"" FFFD FFFD FFFD FFFD "\"", FFFD FFFD FFFD FFFD);
    /* surrogates */
    STR("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"", FFFD FFFD FFFD);
    STR("\xed\xbf\xbf", "\"" FFFD FFFD FFFD "\"", FFFD FFFD FFFD);
    /* past U+10FFFF */
    STR("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"", FFFD FFFD FFFD FFFD);
    STR("\xf5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"", FFFD FFFD FFFD FFFD);
    /* truncated: at the end, and before ASCII, a quote, and another sequence */
    STR("\xc3", "\"" FFFD "\"", FFFD);
    STR("\xe2\x82", "\"" FFFD FFFD "\"", FFFD FFFD);
    STR("\xf0\x9f\x98", "\"" FFFD FFFD FFFD "\"", FFFD FFFD FFFD);
    STR("\xe2\x82"
        "A",
        "\"" FFFD FFFD "A\"", FFFD FFFD "A");
    STR("\xf0\x9f\x98\"", "\"" FFFD FFFD FFFD "\\\"\"", FFFD FFFD FFFD "\"");
    STR("\xe2\xc3\xa9", "\"" FFFD "\xc3\xa9\"", FFFD "\xc3\xa9");
    /* a lone byte in valid text, and NUL next to it */
    STR("ok\xff\0ok", "\"ok" FFFD "\\u0000ok\"", "ok" FFFD "\0ok");
}

/* The 8-byte test must agree with the byte-wise loop: every byte value at every position
 * of a run of plain ASCII long enough for the fast path, and multi-byte sequences and
 * invalid bytes across word boundaries. */
static void test_json_fast_path(void **state)
{
    (void)state;
    weft_buf_t one, b;
    weft_buf_init(&one, 0);
    weft_buf_init(&b, 0);
    char in[40], want[128];
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        weft_buf_reset(&one);
        weft_json_put_str(&one, &ch, 1); /* n < 8: byte-wise only */
        for (size_t len = 1; len <= 24; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                memset(in, 'a' + (int)(pos % 26), len);
                in[pos] = ch;
                /* want: the a-run, the byte's own output without quotes, the rest */
                size_t w = 0;
                want[w++] = '"';
                memcpy(want + w, in, pos);
                w += pos;
                memcpy(want + w, one.p + 1, one.len - 2);
                w += one.len - 2;
                memcpy(want + w, in + pos + 1, len - pos - 1);
                w += len - pos - 1;
                want[w++] = '"';
                weft_buf_reset(&b);
                weft_json_put_str(&b, in, len);
                assert_int_equal(b.len, w);
                assert_memory_equal(b.p, want, w);
            }
        }
    }
    /* a 2-, 3- and 4-byte sequence starting at every offset of a longer string */
    static const char *const seqs[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(seqs[k]);
        for (size_t pos = 0; pos + sl <= 30; pos++) {
            memset(in, 'x', 30);
            memcpy(in + pos, seqs[k], sl);
            weft_buf_reset(&b);
            weft_json_put_str(&b, in, 30);
            assert_int_equal(b.len, 32);
            assert_memory_equal(b.p + 1, in, 30);
            assert_json_string(b.p, b.len, in, 30);
            /* cut short at the end of the input: every byte of it replaced */
            if (pos + sl == 30) {
                weft_buf_reset(&b);
                weft_json_put_str(&b, in, 29);
                assert_int_equal(b.len, 2 + pos + 3 * (sl - 1));
                assert_json_string(b.p, b.len, b.p + 1, b.len - 2);
            }
        }
    }
    /* a long mixed string, in one piece and cut at every length */
    char mix[300];
    size_t m = 0;
    for (int i = 0; m + 8 < sizeof(mix); i++) {
        const char *piece =
            (const char *[]){"plain words ", "\xc3\xa9", "\"", "\n",    "\xff",
                             "\xe2\x82\xac", "\\",       "\0", "tab\t", "\xf0\x9f\x98\x80"}[i % 10];
        size_t pl = i % 10 == 7 ? 1 : strlen(piece);
        memcpy(mix + m, piece, pl);
        m += pl;
    }
    for (size_t len = 0; len <= m; len++) {
        weft_buf_reset(&b);
        weft_json_put_str(&b, mix, len);
        assert_false(b.failed);
        json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(j);
        assert_true(json_is_string(j));
        assert_true(json_string_length(j) <= 3 * len);
        json_decref(j);
    }
    weft_buf_free(&one);
    weft_buf_free(&b);
}

static void test_json_key(void **state)
{
    (void)state;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_putc(&b, '{');
    weft_json_put_key(&b, "traceId");
    weft_json_put_str(&b, "x", 1);
    weft_buf_putc(&b, ',');
    weft_json_put_key(&b, "");
    weft_buf_put_u64(&b, 1);
    weft_buf_putc(&b, '}');
    assert_string_equal(b.p, "{\"traceId\":\"x\",\"\":1}");
    json_t *j = json_loadb(b.p, b.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "traceId")), "x");
    assert_int_equal(json_integer_value(json_object_get(j, "")), 1);
    json_decref(j);
    weft_buf_free(&b);
}

/* ---- JSON numbers ---- */

/* put_double(v) gives want (when not NULL); the text reads back as exactly v with strtod
 * (bit for bit, so -0 stays -0) and with jansson (== , as a real or an integer). */
static void check_double(double v, const char *want)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_putc(&b, '[');
    assert_true(weft_json_put_double(&b, v));
    weft_buf_putc(&b, ']');
    assert_false(b.failed);
    if (want) {
        assert_int_equal(b.len, strlen(want) + 2);
        assert_memory_equal(b.p + 1, want, strlen(want));
    }
    char *end;
    double back = strtod(b.p + 1, &end);
    assert_ptr_equal(end, b.p + b.len - 1);
    assert_memory_equal(&back, &v, sizeof(v));
    for (size_t i = 1; i + 1 < b.len; i++) /* JSON number characters only */
        assert_non_null(strchr("-0123456789.e+", b.p[i]));
    assert_true(b.p[1] == '-' || (b.p[1] >= '0' && b.p[1] <= '9'));
    json_error_t err;
    json_t *j = json_loadb(b.p, b.len, 0, &err);
    if (!j) fail_msg("jansson: %s in %s", err.text, b.p);
    json_t *x = json_array_get(j, 0);
    assert_true(json_is_number(x));
    assert_true(json_number_value(x) == v);
    json_decref(j);
    weft_buf_free(&b);
}

static void test_json_double(void **state)
{
    (void)state;
    check_double(0.0, "0");
    check_double(-0.0, "-0"); /* reads back as -0.0; a JSON-valid integer form */
    check_double(1.0, "1");
    check_double(-7.0, "-7");
    check_double(0.1, "0.1");
    check_double(-1.5, "-1.5");
    check_double(0.1 + 0.2, "0.30000000000000004");
    check_double(1.0 / 3, "0.3333333333333333");
    check_double(1e15, "1000000000000000");
    check_double(1e16, "1e+16");
    check_double(1e300, "1e+300");
    check_double(1e-7, "1e-07");
    check_double(5e-324, "4.94065645841247e-324");
    check_double(-5e-324, "-4.94065645841247e-324");
    check_double(9007199254740991.0, "9007199254740991"); /* 2^53 - 1: integer path */
    check_double(9007199254740992.0, "9007199254740992"); /* 2^53: %.16g */
    check_double(-9007199254740992.0, "-9007199254740992");
    check_double(9007199254740994.0, "9007199254740994");
    check_double(123456789012345678.0, "1.2345678901234568e+17");
    check_double(4503599627370495.5, "4503599627370495.5");
    check_double(DBL_MAX, "1.7976931348623157e+308");
    check_double(-DBL_MAX, "-1.7976931348623157e+308");
    check_double(DBL_MIN, "2.2250738585072014e-308");
    check_double(1e21, "1e+21");
    check_double(1.7e308, NULL);
    /* a sweep of magnitudes and mantissas */
    for (int e = -320; e <= 308; e += 7)
        for (double m = 1.0; m < 10.0; m += 1.2345) check_double(m * pow(10.0, e), NULL);

    /* no JSON form: false, nothing written */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_puts(&b, "x");
    assert_false(weft_json_put_double(&b, NAN));
    assert_false(weft_json_put_double(&b, -NAN));
    assert_false(weft_json_put_double(&b, INFINITY));
    assert_false(weft_json_put_double(&b, -INFINITY));
    assert_string_equal(b.p, "x");
    assert_false(b.failed);
    weft_buf_free(&b);
}

/* ---- allocation failure ---- */

/* Writes a body that needs several growths, checking after each step that a failure, once
 * there, is sticky: len and contents stay as they were at the failure. Returns the take. */
static char *oom_scenario(size_t *len)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    size_t frozen = 0;
    char *at_failure = NULL;
    char big[700];
    memset(big, 'b', sizeof(big));
    big[100] = '\n';
    big[200] = (char)0xff;
    for (int step = 0; step < 16; step++) {
        switch (step % 8) {
        case 0:
            weft_buf_put(&b, big, sizeof(big));
            break;
        case 1:
            weft_buf_put_u64(&b, UINT64_MAX);
            break;
        case 2:
            weft_buf_put_i64(&b, INT64_MIN);
            break;
        case 3:
            weft_buf_put_hex(&b, (const uint8_t *)big, 150);
            break;
        case 4:
            weft_json_put_str(&b, big, sizeof(big));
            break;
        case 5:
            weft_json_put_double(&b, 0.1);
            break;
        case 6:
            weft_json_put_key(&b, "key");
            break;
        case 7:
            for (int i = 0; i < 300; i++) weft_buf_putc(&b, 'c');
            break;
        }
        check_invariant(&b);
        if (b.failed && !at_failure) {
            frozen = b.len;
            at_failure = b.p ? strndup(b.p, b.len) : NULL; /* not redirected: never fails */
        }
        if (at_failure) {
            assert_true(b.failed); /* sticky, though allocations succeed again */
            assert_int_equal(b.len, frozen);
            assert_memory_equal(b.p, at_failure, frozen);
        }
    }
    free(at_failure);
    return weft_buf_take(&b, len);
}

static void test_every_allocation_fails_once(void **state)
{
    (void)state;
    alloc_countdown = -1;
    size_t ref_len;
    char *ref = oom_scenario(&ref_len);
    assert_non_null(ref);
    int completed = 0;
    long k;
    for (k = 0; k < 1000; k++) {
        alloc_failures = 0;
        alloc_countdown = k;
        size_t len = 99;
        char *out = oom_scenario(&len);
        bool injected = alloc_failures > 0;
        alloc_countdown = -1;
        if (!injected) {
            assert_non_null(out);
            assert_int_equal(len, ref_len);
            assert_memory_equal(out, ref, len + 1);
            free(out);
            completed = 1;
            break;
        }
        assert_null(out); /* the failure reached the take */
        assert_int_equal(len, 0);
    }
    assert_true(completed);
    assert_true(k >= 4); /* several growths: the injection was exercised */
    free(ref);

    /* take of a buffer that never allocated, when the "" cannot be allocated */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    alloc_countdown = 0;
    size_t len = 99;
    assert_null(weft_buf_take(&b, &len));
    alloc_countdown = -1;
    assert_int_equal(len, 0);
    assert_null(b.p);
    assert_false(b.failed);
    /* a failed growth keeps what was there; reset makes the buffer usable again */
    char grow[300];
    memset(grow, 'g', sizeof(grow));
    weft_buf_puts(&b, "kept");
    alloc_countdown = 0;
    weft_buf_put(&b, grow, sizeof(grow));
    alloc_countdown = -1;
    assert_true(b.failed);
    assert_string_equal(b.p, "kept");
    weft_buf_reset(&b);
    weft_buf_put(&b, grow, sizeof(grow));
    assert_false(b.failed);
    assert_int_equal(b.len, 300);
    weft_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth),          cmocka_unit_test(test_limit_sticky),
        cmocka_unit_test(test_numbers),         cmocka_unit_test(test_hex),
        cmocka_unit_test(test_take_reset_free), cmocka_unit_test(test_read_in_place),
        cmocka_unit_test(test_json_escapes),    cmocka_unit_test(test_json_utf8),
        cmocka_unit_test(test_json_fast_path),  cmocka_unit_test(test_json_key),
        cmocka_unit_test(test_json_double),     cmocka_unit_test(test_every_allocation_fails_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
