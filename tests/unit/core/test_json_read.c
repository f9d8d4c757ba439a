/*
 * test_json_read.c - the JSON pull reader (core/json_read.h): each rule of RFC 8259 it
 * enforces, each error with its offset, strings (views and unescaped copies), numbers
 * (exact doubles, 64-bit integers as numbers and strings), skip and raw, the depth and
 * arena limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json_read.h"
#include "weft/common.h"

/* A canonical rendering of the value at r, read with the typed calls: strings in <>, with
 * bytes outside printable ASCII as \xHH; numbers as %.17g. */
static void walk(weft_jr_t *r, char *out, size_t cap, size_t *o)
{
#define PUT(...) (*o += (size_t)snprintf(out + *o, *o < cap ? cap - *o : 0, __VA_ARGS__))
    weft_jr_str_t s;
    switch (weft_jr_peek(r)) {
    case WEFT_JR_OBJECT:
        weft_jr_object(r);
        PUT("{");
        for (int i = 0; weft_jr_key(r, &s); i++) {
            PUT("%s%.*s:", i ? "," : "", (int)s.n, s.p);
            walk(r, out, cap, o);
        }
        PUT("}");
        break;
    case WEFT_JR_ARRAY:
        weft_jr_array(r);
        PUT("[");
        for (int i = 0; weft_jr_next(r); i++) {
            if (i) PUT(",");
            walk(r, out, cap, o);
        }
        PUT("]");
        break;
    case WEFT_JR_STRING:
        if (!weft_jr_string(r, &s)) break;
        PUT("<");
        for (size_t i = 0; i < s.n; i++) {
            unsigned char c = (unsigned char)s.p[i];
            if (c >= 0x20 && c < 0x7f)
                PUT("%c", c);
            else
                PUT("\\x%02x", c);
        }
        PUT(">");
        break;
    case WEFT_JR_NUMBER: {
        double d;
        if (weft_jr_double(r, &d)) PUT("%.17g", d);
        break;
    }
    case WEFT_JR_TRUE:
    case WEFT_JR_FALSE: {
        bool b;
        if (weft_jr_bool(r, &b)) PUT("%s", b ? "T" : "F");
        break;
    }
    case WEFT_JR_NULL:
        weft_jr_null(r);
        PUT("N");
        break;
    case WEFT_JR_NONE: /* the end of the text where a value must be: reading says so */
        assert_false(weft_jr_skip(r));
        break;
    }
#undef PUT
}

static weft_arena_t arena;

static int setup(void **state)
{
    weft_arena_init(&arena, 4096, 1 << 20);
    return 0;
}

static int teardown(void **state)
{
    weft_arena_free(&arena);
    return 0;
}

/* The canonical rendering of text (whole), or "ERR@<off>: <msg>". Copied into an exactly
 * sized heap block, so that ASan sees any read past the end. */
static const char *canon(const char *text)
{
    static char out[4096];
    size_t n = strlen(text), o = 0;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    weft_jr_t r;
    weft_jr_init(&r, copy, n, &arena);
    walk(&r, out, sizeof(out), &o);
    weft_jr_end(&r);
    if (r.err) snprintf(out, sizeof(out), "ERR@%zu: %s", r.err_off, r.err);
    /* skip agrees with the typed reading: the same verdict, the same offset (but for a
     * number too large for a double, which is valid JSON: only reading it fails) */
    weft_jr_t s;
    weft_jr_init(&s, copy, n, &arena);
    weft_jr_skip(&s);
    weft_jr_end(&s);
    free(copy);
    if (r.err && strcmp(r.err, "number out of range") == 0) {
        assert_null(s.err);
    } else {
        assert_true((s.err == NULL) == (r.err == NULL));
        if (r.err) {
            assert_int_equal(s.err_off, r.err_off);
            assert_string_equal(s.err, r.err);
        }
    }
    weft_arena_reset(&arena);
    return out;
}

static void test_values(void **state)
{
    assert_string_equal(canon(" {\"a\" : [1, -2.5, true, false, null, \"x\"], \"b\":{}} "),
                        "{a:[1,-2.5,T,F,N,<x>],b:{}}");
    assert_string_equal(canon("[]"), "[]");
    assert_string_equal(canon("[[],[[]],{}]"), "[[],[[]],{}]");
    assert_string_equal(canon("\t\r\n\"top\"\n"), "<top>");
    assert_string_equal(canon("0"), "0");
    assert_string_equal(canon("-0"), "-0");
    assert_string_equal(canon("1e2"), "100");
    assert_string_equal(canon("1E+2"), "100");
    assert_string_equal(canon("25e-1"), "2.5");
    assert_string_equal(canon("0.1"), "0.10000000000000001");
    assert_string_equal(canon("123456789012345678901234567890"), "1.2345678901234568e+29");
    assert_string_equal(canon("1e-400"), "0");
    /* duplicate keys are the caller's business: both are read */
    assert_string_equal(canon("{\"a\":1,\"a\":2}"), "{a:1,a:2}");
    assert_string_equal(canon("\"\x7f\""), "<\\x7f>");
}

static void test_syntax_errors(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "ERR@0: unexpected end of text"},
        {"   ", "ERR@3: unexpected end of text"},
        {"[1,]", "ERR@3: trailing comma"},
        {"{\"a\":1,}", "ERR@7: trailing comma"},
        {"[1 2]", "ERR@3: expected ',' or ']'"},
        {"{\"a\":1 \"b\":2}", "ERR@7: expected ',' or '}'"},
        {"{\"a\" 1}", "ERR@5: expected ':'"},
        {"{a:1}", "ERR@1: expected a string (a member's name)"},
        {"{,}", "ERR@1: expected a string (a member's name)"},
        {"[,1]", "ERR@1: expected a value"},
        {"[1}", "ERR@2: expected ',' or ']'"},
        {"{\"a\":1]", "ERR@6: expected ',' or '}'"},
        {"[", "ERR@1: unexpected end of text in an array"},
        {"{\"a\":", "ERR@5: unexpected end of text"},
        {"{\"a\":1", "ERR@6: unexpected end of text in an object"},
        {"01", "ERR@0: invalid number: leading zeros are not allowed"},
        {"[-01]", "ERR@2: invalid number: leading zeros are not allowed"},
        {"-", "ERR@1: invalid number: expected a digit"},
        {"1.", "ERR@2: invalid number: expected a digit after '.'"},
        {"1.e5", "ERR@2: invalid number: expected a digit after '.'"},
        {"1e", "ERR@2: invalid number: expected a digit in the exponent"},
        {"1e+", "ERR@3: invalid number: expected a digit in the exponent"},
        {"+1", "ERR@0: expected a value"},
        {".5", "ERR@0: expected a value"},
        {"1e999", "ERR@0: number out of range"},
        {"-1e400", "ERR@0: number out of range"},
        {"tru", "ERR@0: expected a value"},
        {"nul", "ERR@0: expected a value"},
        {"True", "ERR@0: expected a value"},
        {"NaN", "ERR@0: expected a value"},
        {"1 2", "ERR@2: text after the value"},
        {"{} x", "ERR@3: text after the value"},
        {"\xef\xbb\xbf{}", "ERR@0: expected a value"}, /* a BOM */
        {"[1]//", "ERR@3: text after the value"},
        {"\f1", "ERR@0: expected a value"}, /* not one of the four blanks */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = canon(cases[i].text);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].text, got,
                     cases[i].want);
    }
}

static void test_strings(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "<a\"b\\c/d\\x08\\x0c\\x0a\\x0d\\x09>"},
        {"\"\\u0041\\u00e9\\u20AC\"", "<A\\xc3\\xa9\\xe2\\x82\\xac>"},
        {"\"\\u0000\"", "<\\x00>"},
        {"\"\\ud83d\\ude00\"", "<\\xf0\\x9f\\x98\\x80>"}, /* a surrogate pair: U+1F600 */
        {"\"\\uDBFF\\uDFFF\"", "<\\xf4\\x8f\\xbf\\xbf>"},
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
         "<\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80>"},
        {"\"\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\"",
         "<\\xed\\x9f\\xbf\\xee\\x80\\x80\\xf4\\x8f\\xbf\\xbf>"},
        /* errors, each at its byte */
        {"\"ab\ncd\"", "ERR@3: control character in a string"},
        {"\"\t\"", "ERR@1: control character in a string"},
        {"\"abc", "ERR@4: unexpected end of text in a string"},
        {"\"abc\\", "ERR@4: unexpected end of text in a string"},
        {"\"a\\x\"", "ERR@2: invalid escape in a string"},
        {"\"a\\'\"", "ERR@2: invalid escape in a string"},
        {"\"\\u12\"", "ERR@1: invalid \\u escape"},
        {"\"\\u12G4\"", "ERR@1: invalid \\u escape"},
        {"\"x\\ud800\"", "ERR@2: lone surrogate in a \\u escape"},
        {"\"\\ud800\\u0041\"", "ERR@1: lone surrogate in a \\u escape"},
        {"\"\\ud800\\ud800\"", "ERR@1: lone surrogate in a \\u escape"},
        {"\"\\udc00\"", "ERR@1: lone surrogate in a \\u escape"},
        {"\"\\ud800x\"", "ERR@1: lone surrogate in a \\u escape"},
        {"\"ab\x80\"", "ERR@3: invalid UTF-8 in a string"},           /* a lone continuation */
        {"\"\xc0\xaf\"", "ERR@1: invalid UTF-8 in a string"},         /* overlong '/' */
        {"\"\xc1\xbf\"", "ERR@1: invalid UTF-8 in a string"},         /* overlong */
        {"\"\xe0\x80\xaf\"", "ERR@1: invalid UTF-8 in a string"},     /* overlong, 3 bytes */
        {"\"\xf0\x80\x80\xaf\"", "ERR@1: invalid UTF-8 in a string"}, /* overlong, 4 bytes */
        {"\"\xed\xa0\x80\"", "ERR@1: invalid UTF-8 in a string"},     /* U+D800 in UTF-8 */
        {"\"\xed\xbf\xbf\"", "ERR@1: invalid UTF-8 in a string"},     /* U+DFFF in UTF-8 */
        {"\"\xf4\x90\x80\x80\"", "ERR@1: invalid UTF-8 in a string"}, /* above U+10FFFF */
        {"\"\xf5\x80\x80\x80\"", "ERR@1: invalid UTF-8 in a string"},
        {"\"\xff\"", "ERR@1: invalid UTF-8 in a string"},
        {"\"\xc3\"", "ERR@1: invalid UTF-8 in a string"}, /* cut short by the quote */
        {"\"\xe2\x82\"", "ERR@1: invalid UTF-8 in a string"},
        {"\"\xc3", "ERR@1: invalid UTF-8 in a string"}, /* cut short by the end */
        /* after an escape, the same rules */
        {"\"\\n\x01\"", "ERR@3: control character in a string"},
        {"\"\\n\xc0\xaf\"", "ERR@3: invalid UTF-8 in a string"},
        {"\"\\n", "ERR@3: unexpected end of text in a string"},
        /* keys are strings too */
        {"{\"\\ud800\":1}", "ERR@2: lone surrogate in a \\u escape"},
        {"{\"k\\u0041\":1}", "{kA:1}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = canon(cases[i].text);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
    }
}

/* Strings longer than one 16-byte block, with the byte that needs a look at every
 * position: the fast scan must find it wherever it is. */
static void test_string_blocks(void **state)
{
    char text[80], want[200];
    for (size_t at = 0; at < 60; at++) {
        for (int kind = 0; kind < 4; kind++) {
            memset(text, 'a', sizeof(text));
            text[0] = '"';
            text[61] = '"';
            text[62] = 0;
            char *body = text + 1;
            size_t o = 0;
            switch (kind) {
            case 0: /* the closing quote early */
                body[at] = '"';
                text[at + 2] = 0;
                o = (size_t)snprintf(want, sizeof(want), "<%.*s>", (int)at, body);
                break;
            case 1: /* an escaped quote */
                if (at >= 59) continue;
                body[at] = '\\';
                body[at + 1] = '"';
                o = (size_t)snprintf(want, sizeof(want), "<%.*s\"%.*s>", (int)at, body,
                                     (int)(60 - at - 2), body + at + 2);
                break;
            case 2: /* a control byte */
                body[at] = '\x1f';
                o = (size_t)snprintf(want, sizeof(want), "ERR@%zu: control character in a string",
                                     at + 1);
                break;
            case 3: /* a 2-byte sequence */
                if (at >= 59) continue;
                body[at] = '\xc3';
                body[at + 1] = '\xa9';
                o = (size_t)snprintf(want, sizeof(want), "<%.*s\\xc3\\xa9%.*s>", (int)at, body,
                                     (int)(60 - at - 2), body + at + 2);
                break;
            }
            assert_true(o < sizeof(want));
            const char *got = canon(text);
            if (strcmp(got, want) != 0)
                fail_msg("at %zu kind %d: got \"%s\", want \"%s\"", at, kind, got, want);
        }
    }
}

/* weft_jr_utf8_valid at every length up to 40 with one byte >= 0x80 at every place: the
 * all-ASCII case is checked in words (the last overlapping the one before it), so a bad
 * or a good sequence must be seen wherever it falls, first word or last. */
static void test_utf8_valid_lengths(void **state)
{
    (void)state;
    char s[48];
    for (size_t n = 0; n <= 40; n++) {
        memset(s, 'a', sizeof(s));
        if (!weft_jr_utf8_valid(s, n)) fail_msg("n %zu: plain ASCII refused", n);
        for (size_t at = 0; at < n; at++) {
            memset(s, 'a', sizeof(s));
            s[at] = '\xff'; /* never in UTF-8 */
            if (weft_jr_utf8_valid(s, n)) fail_msg("n %zu: 0xff at %zu taken", n, at);
            s[at] = '\xc3'; /* a lead byte cut off at the end, or followed by 'a' */
            if (weft_jr_utf8_valid(s, n)) fail_msg("n %zu: lone 0xc3 at %zu taken", n, at);
            if (at + 1 < n) {
                s[at + 1] = '\xa9'; /* e-acute: valid */
                if (!weft_jr_utf8_valid(s, n)) fail_msg("n %zu: U+00E9 at %zu refused", n, at);
            }
            /* a byte past n is not looked at */
            memset(s, 'a', sizeof(s));
            s[n] = '\xff';
            if (!weft_jr_utf8_valid(s, n)) fail_msg("n %zu: a byte past the end was read", n);
        }
    }
}

static void test_string_views(void **state)
{
    const char *text = "[\"plain\", \"esc\\naped\"]";
    weft_jr_t r;
    weft_jr_init(&r, text, strlen(text), &arena);
    weft_jr_str_t a, b;
    assert_true(weft_jr_array(&r));
    assert_true(weft_jr_next(&r));
    assert_true(weft_jr_string(&r, &a));
    assert_ptr_equal(a.p, text + 2); /* no escapes: into the text */
    assert_int_equal(a.n, 5);
    assert_true(weft_jr_next(&r));
    assert_true(weft_jr_string(&r, &b));
    assert_true(b.p < text || b.p >= text + strlen(text)); /* unescaped: in the arena */
    assert_int_equal(b.n, 8);
    assert_memory_equal(b.p, "esc\naped", 8);
    assert_false(weft_jr_next(&r));
    assert_true(weft_jr_end(&r));
    assert_null(r.err);
    weft_arena_reset(&arena);
}

static void test_arena_limit(void **state)
{
    weft_arena_t small;
    weft_arena_init(&small, 64, 64);
    char text[200];
    memset(text, 'x', sizeof(text));
    text[0] = '"';
    text[1] = '\\';
    text[2] = 'n';
    text[199] = '"';
    weft_jr_t r;
    weft_jr_init(&r, text, sizeof(text), &small);
    weft_jr_str_t s;
    assert_false(weft_jr_string(&r, &s));
    assert_string_equal(r.err, "string too long");
    assert_int_equal(r.err_code, WEFT_ELIMIT);
    assert_int_equal(r.err_off, 0);
    /* skipping it allocates nothing, so it passes */
    weft_jr_init(&r, text, sizeof(text), &small);
    assert_true(weft_jr_skip(&r));
    assert_true(weft_jr_end(&r));
    assert_int_equal(small.used, 0);
    /* a short one fits */
    weft_jr_init(&r, "\"a\\tb\"", 6, &small);
    assert_true(weft_jr_string(&r, &s));
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.p, "a\tb", 3);
    weft_arena_free(&small);
    /* without an arena, escapes cannot be decoded */
    weft_jr_init(&r, "\"a\\tb\"", 6, NULL);
    assert_false(weft_jr_string(&r, &s));
    assert_int_equal(r.err_code, WEFT_ENOMEM);
    /* a syntax error is WEFT_EINVAL */
    weft_jr_init(&r, "[1,]", 4, NULL);
    assert_false(weft_jr_skip(&r));
    assert_int_equal(r.err_code, WEFT_EINVAL);
}

static void test_depth(void **state)
{
    char text[2 * WEFT_JR_MAX_DEPTH + 4];
    for (int d = WEFT_JR_MAX_DEPTH; d <= WEFT_JR_MAX_DEPTH + 1; d++) {
        memset(text, '[', (size_t)d);
        memset(text + d, ']', (size_t)d);
        text[2 * d] = 0;
        const char *got = canon(text);
        if (d == WEFT_JR_MAX_DEPTH) {
            assert_int_equal(strlen(got), 2 * (size_t)d);
        } else {
            char want[64];
            snprintf(want, sizeof(want), "ERR@%d: nesting too deep", WEFT_JR_MAX_DEPTH);
            assert_string_equal(got, want);
        }
    }
    /* objects count too, mixed with arrays: the kinds are kept per level */
    char mixed[1024];
    size_t o = 0;
    for (int i = 0; i < 40; i++) o += (size_t)sprintf(mixed + o, i % 2 ? "[" : "{\"k\":");
    for (int i = 39; i >= 0; i--) mixed[o++] = i % 2 ? ']' : '}';
    mixed[o] = 0;
    /* innermost is "[" at i = 39: empty; the rest closes in order */
    const char *got = canon(mixed);
    assert_true(strncmp(got, "ERR", 3) != 0);
    /* a wrong closer deep inside is found */
    mixed[o - 3] = mixed[o - 3] == ']' ? '}' : ']';
    got = canon(mixed);
    assert_true(strncmp(got, "ERR@", 4) == 0);
}

static void test_integers(void **state)
{
    static const struct {
        const char *text;
        bool ok64, oku64;
        int64_t v;
        uint64_t u;
    } cases[] = {
        {"0", true, true, 0, 0},
        {"-0", true, true, 0, 0},
        {"42", true, true, 42, 42},
        {"\"42\"", true, true, 42, 42},
        {"-7", true, false, -7, 0},
        {"\"-7\"", true, false, -7, 0},
        {"9223372036854775807", true, true, INT64_MAX, 9223372036854775807ull},
        {"\"-9223372036854775808\"", true, false, INT64_MIN, 0},
        {"9223372036854775808", false, true, 0, 9223372036854775808ull},
        {"-9223372036854775809", false, false, 0, 0},
        {"\"18446744073709551615\"", false, true, 0, UINT64_MAX},
        {"18446744073709551616", false, false, 0, 0},
        {"1700000000123456789", true, true, 1700000000123456789, 1700000000123456789ull},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        weft_jr_t r;
        int64_t v = 0;
        uint64_t u = 0;
        size_t n = strlen(cases[i].text);
        weft_jr_init(&r, cases[i].text, n, &arena);
        assert_int_equal(weft_jr_int64(&r, &v), cases[i].ok64);
        if (cases[i].ok64) {
            assert_true(v == cases[i].v);
            assert_true(weft_jr_end(&r));
        } else {
            assert_string_equal(r.err, "integer out of range");
            assert_int_equal(r.err_off, 0);
        }
        weft_jr_init(&r, cases[i].text, n, &arena);
        assert_int_equal(weft_jr_uint64(&r, &u), cases[i].oku64);
        if (cases[i].oku64)
            assert_true(u == cases[i].u);
        else
            assert_string_equal(r.err, "integer out of range");
    }
    static const char *const bad[] = {"1.0",    "1e3",    "\"1.5\"", "\"\"", "\" 1\"", "\"01\"",
                                      "\"+1\"", "\"1x\"", "true",    "null", "[1]",    "\"0x10\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft_jr_t r;
        int64_t v;
        weft_jr_init(&r, bad[i], strlen(bad[i]), &arena);
        assert_false(weft_jr_int64(&r, &v));
        assert_string_equal(r.err, "expected an integer");
        assert_int_equal(r.err_off, 0);
    }
    /* the offset is the value's, after blanks */
    weft_jr_t r;
    int64_t v;
    weft_jr_init(&r, "[1,  \"x\"]", 9, &arena);
    weft_jr_array(&r);
    weft_jr_next(&r);
    assert_true(weft_jr_int64(&r, &v));
    weft_jr_next(&r);
    assert_false(weft_jr_int64(&r, &v));
    assert_int_equal(r.err_off, 5);
    weft_arena_reset(&arena);
}

/* Doubles through the fast path and through strtod_l agree with strtod on the same text. */
static void test_doubles(void **state)
{
    static const char *const texts[] = {
        "0.5",
        "-0.0",
        "3.14159",
        "1e22",
        "1e23",
        "123456789012345",
        "1234567890123456",
        "9007199254740993",
        "0.000001",
        "1.7976931348623157e308",
        "4.9e-324",
        "2.2250738585072014e-308",
        "0.1e1",
        "100e-2",
        "12345.678901234e-5",
        "1e-22",
        "1e-23",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        weft_jr_t r;
        double d;
        weft_jr_init(&r, texts[i], strlen(texts[i]), &arena);
        assert_true(weft_jr_double(&r, &d));
        double want = strtod(texts[i], NULL);
        if (memcmp(&d, &want, sizeof(d)) != 0) fail_msg("%s: %.17g != %.17g", texts[i], d, want);
    }
    weft_jr_t r;
    double d;
    weft_jr_init(&r, "\"1\"", 3, &arena);
    assert_false(weft_jr_double(&r, &d));
    assert_string_equal(r.err, "expected a number");
    /* a long number goes through the arena */
    char longnum[300];
    memset(longnum, '1', sizeof(longnum));
    longnum[1] = '.';
    weft_jr_init(&r, longnum, sizeof(longnum), &arena);
    assert_true(weft_jr_double(&r, &d));
    assert_true(d > 1.111 && d < 1.112);
    weft_arena_reset(&arena);
}

static void test_skip_raw_and_misuse(void **state)
{
    const char *text = "{\"skip\":{\"a\":[1,{\"b\":\"\\u00e9\"}],\"c\":null},\"raw\": [ 1 , 2 ] ,"
                       "\"n\":null,\"t\":true}";
    weft_jr_t r;
    weft_jr_init(&r, text, strlen(text), &arena);
    weft_jr_str_t k, raw;
    assert_true(weft_jr_object(&r));
    assert_true(weft_jr_key(&r, &k));
    assert_true(weft_jr_key_is(k, "skip"));
    assert_true(weft_jr_skip(&r));
    assert_true(weft_jr_key(&r, &k));
    assert_true(weft_jr_key_is(k, "raw"));
    assert_true(weft_jr_raw(&r, &raw));
    assert_int_equal(raw.n, 9);
    assert_memory_equal(raw.p, "[ 1 , 2 ]", 9);
    assert_true(weft_jr_key(&r, &k));
    bool bv;
    /* a bool read on null is an error, sticky afterwards */
    assert_false(weft_jr_bool(&r, &bv));
    assert_string_equal(r.err, "expected true or false");
    assert_false(weft_jr_key(&r, &k));
    assert_int_equal(weft_jr_peek(&r), WEFT_JR_NONE);
    assert_false(weft_jr_end(&r));

    /* null: true and read only on null */
    weft_jr_init(&r, "[null, 1]", 9, &arena);
    weft_jr_array(&r);
    weft_jr_next(&r);
    assert_true(weft_jr_null(&r));
    weft_jr_next(&r);
    assert_false(weft_jr_null(&r));
    assert_null(r.err);
    int64_t v;
    assert_true(weft_jr_int64(&r, &v));
    assert_false(weft_jr_next(&r));
    assert_true(weft_jr_end(&r));

    /* key in an array and next in an object are refused */
    weft_jr_init(&r, "[1]", 3, &arena);
    weft_jr_array(&r);
    assert_false(weft_jr_key(&r, &k));
    assert_string_equal(r.err, "not in an object");
    weft_jr_init(&r, "{}", 2, &arena);
    weft_jr_object(&r);
    assert_false(weft_jr_next(&r));
    assert_string_equal(r.err, "not in an array");
    /* end inside an open container */
    weft_jr_init(&r, "[1]", 3, &arena);
    weft_jr_array(&r);
    assert_false(weft_jr_end(&r));
    assert_string_equal(r.err, "unexpected end of the value");
    /* a decoder's own refusal carries the offset */
    weft_jr_init(&r, "{\"id\": \"zz\"}", 12, &arena);
    weft_jr_object(&r);
    weft_jr_key(&r, &k);
    weft_jr_str_t id;
    weft_jr_string(&r, &id);
    assert_false(weft_jr_fail(&r, "traceId must be 32 hex digits"));
    assert_int_equal(r.err_off, 11);
    assert_false(weft_jr_fail(&r, "second"));
    assert_string_equal(r.err, "traceId must be 32 hex digits");
    /* wrong types */
    weft_jr_init(&r, "[1]", 3, &arena);
    assert_false(weft_jr_object(&r));
    assert_string_equal(r.err, "expected an object");
    weft_jr_init(&r, "{}", 2, &arena);
    assert_false(weft_jr_array(&r));
    assert_string_equal(r.err, "expected an array");
    weft_jr_init(&r, "1", 1, &arena);
    assert_false(weft_jr_string(&r, &k));
    assert_string_equal(r.err, "expected a string");
    /* peek at the end inside a container is an error, at the top level not */
    weft_jr_init(&r, "[", 1, &arena);
    weft_jr_array(&r);
    weft_jr_next(&r);
    weft_jr_init(&r, "  ", 2, &arena);
    assert_int_equal(weft_jr_peek(&r), WEFT_JR_NONE);
    assert_null(r.err);
    weft_jr_init(&r, "{\"a\":", 5, &arena);
    weft_jr_object(&r);
    weft_jr_key(&r, &k);
    assert_int_equal(weft_jr_peek(&r), WEFT_JR_NONE);
    assert_string_equal(r.err, "unexpected end of text");
    weft_jr_init(&r, "[@]", 3, &arena);
    weft_jr_array(&r);
    weft_jr_next(&r);
    assert_int_equal(weft_jr_peek(&r), WEFT_JR_NONE);
    assert_string_equal(r.err, "expected a value");
    assert_int_equal(r.err_off, 1);
    weft_arena_reset(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_string_blocks),
        cmocka_unit_test(test_string_views),
        cmocka_unit_test(test_arena_limit),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_skip_raw_and_misuse),
        cmocka_unit_test(test_utf8_valid_lengths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
