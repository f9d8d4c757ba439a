/*
 * json_write.c - JSON written directly into a growable buffer, without building a jansson
 * tree first.
 *
 * What it is for. Bodies that weft only ever writes: the OTLP/JSON export requests, and
 * later the registry's Consul-compatible HTTP API and the collector's responses. Building
 * a json_t tree for them costs an allocation per value and a second pass to serialise;
 * here each value goes straight into the body, and the body is the only allocation. Parsing
 * still goes through jansson.
 *
 * Strings (weft_json_put_str) take any n bytes and always give a valid JSON string:
 *   - '"' and '\' are escaped as \" and \\;
 *   - \n \r \t \b \f for those controls, \u00XX (lowercase hex) for the other bytes below
 *     0x20 (NUL included: a NUL inside the n bytes is data, written as \u0000) and for 0x7f;
 *   - well-formed UTF-8 sequences (no overlong forms, no surrogates D800-DFFF, nothing past
 *     U+10FFFF, none cut short) are copied as they are;
 *   - each byte that does not start such a sequence (a stray continuation byte, C0, C1,
 *     F5-FF, a lead byte whose sequence is overlong, a surrogate, too large or truncated) is
 *     replaced by U+FFFD (EF BF BD), and decoding goes on at the next byte. So the output
 *     never holds more than 3 bytes of decoded text per input byte.
 * The fast path copies runs of bytes that need nothing (printable ASCII other than '"' and
 * '\', and valid multi-byte sequences) with one memcpy per run; printable ASCII is tested
 * 8 bytes at a time (SWAR: one 64-bit load, a few adds and masks). The test may report a
 * byte as special when it is not (a borrow out of a lane that really is special), never the
 * reverse, and the byte-wise loop after it decides.
 *
 * Numbers (weft_json_put_double): integral values of magnitude below 2^53 as integers
 * ("42", "-7"; negative zero as "-0", which reads back as -0.0 through strtod); other finite
 * values in the shortest of %.15g, %.16g and %.17g that strtod reads back as the same
 * double (%.17g always does). printf's output for finite values is JSON number syntax once
 * the decimal point is '.', and a host that set LC_NUMERIC may have made it something else
 * (',' in de_DE), so whatever stands between the digits is replaced by '.'. NaN and the
 * infinities have no JSON form: the caller decides (null, a string, leave the field out).
 *
 * Keys (weft_json_put_key) are literals in weft's own code, so they are copied unescaped.
 *
 * Threads: any; no state. Memory: only through the buffer (see buf.h: failure is sticky).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_write.h"

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* True when c is copied as it is: printable ASCII other than '"' and '\'. */
static inline bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* True when all 8 bytes of w are plain(). May say false when they are (see the top). */
static inline bool word_plain(uint64_t w)
{
    uint64_t below_20 = (w - ONES * 0x20) & ~w; /* a byte < 0x20 (holds for bounds <= 0x80) */
    uint64_t above_7e = (w + ONES * 0x01) | w;  /* a byte > 0x7e */
    uint64_t q = w ^ (ONES * '"'), bs = w ^ (ONES * '\\');
    uint64_t quote = (q - ONES) & ~q, backslash = (bs - ONES) & ~bs; /* a zero byte */
    return ((below_20 | above_7e | quote | backslash) & HIGHS) == 0;
}

/* The length of the well-formed UTF-8 sequence at s (n >= 1 bytes there), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf; /* the range of the second byte */
    size_t len;
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0; /* a continuation byte, or C0/C1 (always overlong) */
    if (c < 0xe0) {
        len = 2;
    } else if (c < 0xf0) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* below: overlong */
        if (c == 0xed) hi = 0x9f; /* above: surrogates */
    } else if (c < 0xf5) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* below: overlong */
        if (c == 0xf4) hi = 0x8f; /* above: past U+10FFFF */
    } else {
        return 0; /* F5-FF: past U+10FFFF */
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* Appends the escape for ASCII byte c (not plain()). */
static void put_escape(weft_buf_t *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    static const char named[0x20] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
    char e[6] = {'\\', (char)c};
    if (c == '"' || c == '\\') {
        weft_buf_put(b, e, 2);
    } else if (c < 0x20 && named[c]) {
        e[1] = named[c];
        weft_buf_put(b, e, 2);
    } else { /* the other controls and DEL */
        memcpy(e + 1, "u00", 3);
        e[4] = hex[c >> 4];
        e[5] = hex[c & 15];
        weft_buf_put(b, e, 6);
    }
}

void weft_json_put_str(weft_buf_t *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    /* The output is at least n + 2 bytes: one room check for the common case. */
    if (!weft_buf_reserve(b, n <= SIZE_MAX - 2 ? n + 2 : SIZE_MAX)) return;
    weft_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = i, k;
        for (;;) { /* extend the run over bytes copied as they are */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, u + i, 8);
                if (!word_plain(w)) break;
                i += 8;
            }
            /* Byte by byte to the end of the word the test stopped at (or of the input). */
            size_t stop = n - i >= 8 ? i + 8 : n;
            while (i < stop && plain(u[i])) i++;
            if (i == n) break;
            if (i == stop) continue; /* the word was plain after all */
            if (u[i] < 0x80 || (k = utf8_seq(u + i, n - i)) == 0) break;
            i += k;
        }
        if (i > run) weft_buf_put(b, u + run, i - run);
        if (i == n) break;
        if (u[i] < 0x80)
            put_escape(b, u[i]);
        else
            weft_buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD for a byte that starts nothing */
        i++;
    }
    weft_buf_putc(b, '"');
}

void weft_buf_put_utf8(weft_buf_t *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0, k;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
        } else if ((k = utf8_seq(u + i, n - i)) != 0) {
            i += k;
        } else {
            weft_buf_put(b, u + run, i - run);
            weft_buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            run = ++i;
        }
    }
    weft_buf_put(b, u + run, n - run);
}

void weft_json_put_key(weft_buf_t *b, const char *key)
{
    weft_buf_putc(b, '"');
    weft_buf_puts(b, key);
    weft_buf_put(b, "\":", 2);
}

bool weft_json_put_double(weft_buf_t *b, double v)
{
    if (!isfinite(v)) return false;
    if (fabs(v) < 9007199254740992.0) { /* 2^53: every integer below is exact */
        int64_t i = (int64_t)v;         /* truncates; in range */
        if ((double)i == v) {
            if (i == 0 && signbit(v))
                weft_buf_put(b, "-0", 2);
            else
                weft_buf_put_i64(b, i);
            return true;
        }
    }
    char tmp[40], out[40];
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (len <= 0 || (size_t)len >= sizeof(tmp)) { /* not expected for a finite double */
            b->failed = true;
            return true;
        }
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    /* Keep digits, signs and the exponent; whatever else (the locale's decimal point,
     * possibly several bytes) becomes one '.'. */
    size_t o = 0;
    for (int j = 0; j < len; j++) {
        char c = tmp[j];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E')
            out[o++] = c;
        else if (o == 0 || out[o - 1] != '.')
            out[o++] = '.';
    }
    weft_buf_put(b, out, o);
    return true;
}
