/*
 * fuzz_json_write.c - arbitrary bytes through the JSON writer (core/json_write.h), read back
 * with jansson.
 *
 * Strings: the whole input goes through weft_json_put_str. The output must be one JSON
 * string that jansson accepts (JSON_DECODE_ANY | JSON_ALLOW_NUL) and that holds no raw
 * control byte. Its decoded value must be exactly what a reference decoder here predicts (a
 * different formulation of "well-formed UTF-8": decode the code point, then reject overlong,
 * surrogate and too large ones; each byte that starts no sequence becomes U+FFFD): the
 * input itself when the input is valid UTF-8, otherwise valid UTF-8 no longer than 3 times
 * the input. The limit is exact: a buffer limited to the output's length gives the same
 * output, one byte less fails, having written a prefix of it. weft_buf_put_utf8 must give
 * exactly the reference's decoded value.
 *
 * Numbers: the first 8 input bytes (and the next three 8-byte chunks, when there) as a
 * double. put_double must return false, writing nothing, exactly for NaN and infinities;
 * otherwise the text must match the JSON number grammar, read back with strtod as the same
 * double bit for bit (-0 included), and read back with jansson as the same value. jansson
 * gives an integer for a text without '.' or exponent; such a text is either an integer
 * below 2^53 or the %.16g/%.17g form of an integral double, at most 17 digits (a longer
 * integer needs the exponent form), so it always fits json_int_t and converts to the double
 * exactly: an integer from jansson is compared as strictly as a real.
 *
 * Any violation aborts.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_write.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

/* The well-formed UTF-8 sequence at s (n >= 1 bytes): its length, or 0. */
static size_t ref_seq(const uint8_t *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* What the decoded string must be: into out (3n bytes); returns its length. */
static size_t ref_decode(const uint8_t *s, size_t n, uint8_t *out, bool *valid)
{
    size_t o = 0;
    *valid = true;
    for (size_t i = 0; i < n;) {
        size_t k = ref_seq(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            *valid = false;
        }
    }
    return o;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = ref_seq(s + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

static void fuzz_string(const uint8_t *data, size_t size)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_json_put_str(&b, (const char *)data, size);
    CHECK(!b.failed && b.p && b.p[b.len] == 0);
    CHECK(b.len >= size + 2 && b.p[0] == '"' && b.p[b.len - 1] == '"');
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.p[i];
        CHECK(c >= 0x20 && c != 0x7f);
    }

    json_error_t err;
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    CHECK(j && json_is_string(j));
    const uint8_t *got = (const uint8_t *)json_string_value(j);
    size_t got_len = json_string_length(j);

    uint8_t *want = malloc(3 * size + 1);
    CHECK(want);
    bool valid;
    size_t want_len = ref_decode(data, size, want, &valid);
    CHECK(valid == utf8_valid(data, size));
    if (valid) {
        CHECK(got_len == size && memcmp(got, data, size) == 0);
    } else {
        CHECK(utf8_valid(got, got_len) && got_len <= 3 * size);
    }
    CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
    /* weft_buf_put_utf8 gives the same text, unquoted and unescaped */
    weft_buf_t u;
    weft_buf_init(&u, 0);
    weft_buf_put_utf8(&u, (const char *)data, size);
    CHECK(!u.failed && u.len == want_len && memcmp(u.p ? u.p : "", want, want_len) == 0);
    weft_buf_free(&u);
    free(want);
    json_decref(j);

    /* The limit is exact, and a put that would pass it writes nothing. */
    weft_buf_t l;
    weft_buf_init(&l, b.len);
    weft_json_put_str(&l, (const char *)data, size);
    CHECK(!l.failed && l.len == b.len && memcmp(l.p, b.p, b.len) == 0);
    weft_buf_free(&l);
    weft_buf_init(&l, b.len - 1);
    weft_json_put_str(&l, (const char *)data, size);
    CHECK(l.failed && l.len < b.len && memcmp(l.p ? l.p : "", b.p, l.len) == 0);
    weft_buf_free(&l);
    weft_buf_free(&b);
}

/* True when s[0..n) is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_syntax(const char *s, size_t n, bool *integer)
{
    size_t i = 0;
    *integer = true;
    if (i < n && s[i] == '-') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < n && s[i] == '.') {
        *integer = false;
        if (++i >= n || s[i] < '0' || s[i] > '9') return false;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *integer = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return false;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    return i == n;
}

static void fuzz_double(double v)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    bool ok = weft_json_put_double(&b, v);
    if (!isfinite(v)) {
        CHECK(!ok && !b.failed && b.len == 0 && !b.p);
        return;
    }
    CHECK(ok && !b.failed && b.p && b.p[b.len] == 0 && b.len > 0);
    bool integer;
    CHECK(json_number_syntax(b.p, b.len, &integer));

    char *end;
    double back = strtod(b.p, &end);
    CHECK(end == b.p + b.len && memcmp(&back, &v, sizeof(v)) == 0);

    json_error_t err;
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY, &err);
    CHECK(j);
    if (integer) {
        /* at most 17 digits (and a '-'): fits json_int_t, converts exactly (see the top) */
        CHECK(b.len <= 18 && json_is_integer(j));
        json_int_t iv = json_integer_value(j);
        CHECK((double)iv == v && (json_int_t)v == iv);
    } else {
        CHECK(json_is_real(j) && json_real_value(j) == v);
    }
    json_decref(j);
    weft_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_string(data, size);
    for (size_t off = 0; off + 8 <= size && off < 32; off += 8) {
        double v;
        memcpy(&v, data + off, sizeof(v));
        fuzz_double(v);
    }
    return 0;
}
