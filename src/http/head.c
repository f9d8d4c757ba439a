/*
 * head.c - one pass over a plain HTTP/1.1 head (head.h says what it takes and why).
 *
 * Every "no" here is a return false: the message then goes to llhttp, which gives the
 * answers it always gave (an error status, a body, a 1xx). So nothing here decides an
 * error; a doubt is a no.
 */
#include "http/head.h"

#include <llhttp.h>
#include <string.h>

#include "http/syntax.h"

/* How far the scanners go a step: 16 bytes with SSE2, 8 (SWAR) on other little-endian
 * machines, 1 otherwise. A build may choose a narrower one: tests/unit/http/test_head_swar.c
 * and test_head_bytes.c run test_head.c's cases on the other two. */
#ifndef WEFT__HEAD_STEP
#if defined(__SSE2__)
#define WEFT__HEAD_STEP 16
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WEFT__HEAD_STEP 8
#else
#define WEFT__HEAD_STEP 1
#endif
#endif

#if WEFT__HEAD_STEP == 16
#include <emmintrin.h>

/* With SSE2 (every x86-64 has it) the scanners go sixteen bytes a step: one compare answers
 * for all sixteen bytes, and pmovmskb turns the answers into a 16-bit mask (bit k: byte k)
 * whose lowest set bit is the first byte that stops the scan. A range lo..hi of unsigned
 * bytes is one add and one signed compare: adding 0x80 - lo moves lo to -128 and keeps the
 * bytes in order up to lo + 255, so the range becomes -128..hi - lo - 128 and every byte
 * outside it lies above. */

/* The bytes of v in lo..0x7e (not a control byte, not DEL, below 0x80), as bits. */
static inline unsigned plain16(__m128i v, unsigned lo)
{
    __m128i x = _mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - lo)));
    return (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(x, _mm_set1_epi8((char)(-1 - (int)lo))));
}

/* The bytes of v that are a letter, a digit or '-' (all the bytes of nearly every header
 * name), as bits. ORing 0x20 first folds 'A'..'Z' onto 'a'..'z' and no other byte onto
 * them. */
static inline unsigned namely16(__m128i v)
{
    __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    __m128i letter = _mm_cmplt_epi8(_mm_add_epi8(lower, _mm_set1_epi8((char)(0x80 - 'a'))),
                                    _mm_set1_epi8((char)(-128 + 26)));
    __m128i digit = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - '0'))),
                                   _mm_set1_epi8((char)(-128 + 10)));
    __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), dash));
}

/* What a scan goes on over: SP..'~' (a value, a reason phrase), '!'..'~' (a target), a
 * letter, digit or '-' (a name). */
enum scan { SCAN_VALUE, SCAN_TARGET, SCAN_NAME };

/* The bytes of the sixteen at p that stop a k scan, as bits. */
static inline unsigned stops16(const char *p, enum scan k)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    switch (k) {
    case SCAN_VALUE:
        return plain16(v, 0x20) ^ 0xffffu;
    case SCAN_TARGET:
        return plain16(v, 0x21) ^ 0xffffu;
    default:
        return namely16(v) ^ 0xffffu;
    }
}

/* The index of the first byte of p[i..n) that stops a k scan; n if none (i if i >= n). Needs
 * n >= 16: the last step, when fewer than sixteen bytes are left, loads the last sixteen of
 * p[0..n) instead, so no load reaches past n, and shifts off the bits of those before i
 * (the bits past n are not there: the mask has sixteen). */
static inline size_t first_stop(const char *p, size_t i, size_t n, enum scan k)
{
    for (; i + 16 <= n; i += 16) {
        unsigned m = stops16(p + i, k);
        if (m) return i + (unsigned)__builtin_ctz(m);
    }
    if (i >= n) return i;
    unsigned m = stops16(p + n - 16, k) >> (i - (n - 16));
    return m ? i + (unsigned)__builtin_ctz(m) : n;
}
#elif WEFT__HEAD_STEP == 8
/* Elsewhere eight bytes a step, in a uint64_t (SWAR), on little-endian machines (the first
 * byte's index from the mask needs the first byte in the low bits); byte by byte otherwise. */

/* The bytes of v below lo (lo <= 0x80) or at or above 0x7f, as their high bits. Exact for
 * every byte (no carry crosses a byte: each sum stays below 0x100), so the lowest set bit
 * finds the first such byte. */
static inline uint64_t unplain(uint64_t v, unsigned lo)
{
    uint64_t low7 = v & 0x7f7f7f7f7f7f7f7full;
    uint64_t at_least_lo = low7 + WEFT__HTTP_ONES * (0x80 - lo); /* high bit: low7 >= lo */
    uint64_t at_least_7f = low7 + WEFT__HTTP_ONES;               /* high bit: low7 >= 0x7f */
    return (~at_least_lo | at_least_7f | v) & WEFT__HTTP_HIGHS;
}
#endif

/* The index of the first byte of p[i..n) below lo or at or above 0x7f; n if none. lo: 0x20 (a
 * value or reason phrase: SP goes on) or 0x21 (a target: SP ends it). */
static inline size_t skip_plain(const char *p, size_t i, size_t n, unsigned lo)
{
#if WEFT__HEAD_STEP == 16
    if (n >= 16) return first_stop(p, i, n, lo == 0x20 ? SCAN_VALUE : SCAN_TARGET);
#elif WEFT__HEAD_STEP == 8
    for (; i + 8 <= n; i += 8) {
        uint64_t m = unplain(weft__http_load8(p + i), lo);
        if (m) return i + ((size_t)__builtin_ctzll(m) >> 3);
    }
#endif
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < lo || ch >= 0x7f) break;
    }
    return i;
}

/* The index of the first ':' in p[i..n), n if none. */
static inline size_t find_colon(const char *p, size_t i, size_t n)
{
#if WEFT__HEAD_STEP == 8
    for (; i + 8 <= n; i += 8) {
        /* a zero byte of t is a ':' of v; the lowest set bit of m marks the first one
         * exactly (a borrow only runs past a byte that is zero) */
        uint64_t t = weft__http_load8(p + i) ^ (WEFT__HTTP_ONES * ':');
        uint64_t m = (t - WEFT__HTTP_ONES) & ~t & WEFT__HTTP_HIGHS;
        if (m) return i + ((size_t)__builtin_ctzll(m) >> 3);
    }
#endif
    for (; i < n; i++)
        if (p[i] == ':') break;
    return i;
}

/* Every byte of p[0..n) is a tchar: the table's answers ANDed, four at a time, no branch
 * a byte. */
static inline bool all_tchars(const char *p, size_t n)
{
    const uint8_t *t = weft__http_tchar;
    const unsigned char *u = (const unsigned char *)p;
    unsigned ok = 1;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) ok &= t[u[i]] & t[u[i + 1]] & t[u[i + 2]] & t[u[i + 3]];
    for (; i < n; i++) ok &= t[u[i]];
    return ok != 0;
}

/* The end of a header name that starts at i: the index of the ':' after it when every byte
 * before that is a tchar. Otherwise n, or the index of a byte that is not a ':'. */
static inline size_t name_end(const char *p, size_t i, size_t n)
{
#if WEFT__HEAD_STEP == 16
    if (n >= 16) {
        /* the first byte that is not a letter, digit or '-' is nearly always the ':'; a
         * rarer tchar ('_', '.', ...) is stepped over and the scan goes on after it */
        for (;;) {
            i = first_stop(p, i, n, SCAN_NAME);
            if (i >= n || p[i] == ':' || !weft__http_is_tchar((unsigned char)p[i])) return i;
            i++;
        }
    }
#endif
    size_t c = find_colon(p, i, n);
    return c < n && all_tchars(p + i, c - i) ? c : n;
}

/* The end of a value or reason phrase from *i: true with *i at its CR, which LF follows. Bytes
 * before it: SP to '~' and HTAB. False for anything else, or no CRLF before n. */
static inline bool line_end(const char *p, size_t *i, size_t n)
{
    size_t k = *i;
    for (;;) {
        k = skip_plain(p, k, n, 0x20);
        if (k + 1 >= n) return false; /* no room for a CRLF */
        if (memcmp(p + k, "\r\n", 2) == 0) break;
        if (p[k] != '\t') return false;
        k++;
    }
    *i = k;
    return true;
}

/* The method at p, with its SP: its length with the SP, and *m; 0 if not one of these. */
static size_t method(const char *p, size_t n, uint8_t *m)
{
    if (n < 8) return 0;
    uint32_t w;
    memcpy(&w, p, 4);
#define W4(a, b, c, d)                                                                             \
    ((uint32_t)(unsigned char)(a) | (uint32_t)(unsigned char)(b) << 8 |                            \
     (uint32_t)(unsigned char)(c) << 16 | (uint32_t)(unsigned char)(d) << 24)
    switch (w) {
    case W4('G', 'E', 'T', ' '):
        *m = HTTP_GET;
        return 4;
    case W4('P', 'U', 'T', ' '):
        *m = HTTP_PUT;
        return 4;
    case W4('H', 'E', 'A', 'D'):
        *m = HTTP_HEAD;
        return p[4] == ' ' ? 5 : 0;
    case W4('P', 'O', 'S', 'T'):
        *m = HTTP_POST;
        return p[4] == ' ' ? 5 : 0;
    case W4('P', 'A', 'T', 'C'):
        *m = HTTP_PATCH;
        return memcmp(p + 4, "H ", 2) == 0 ? 6 : 0;
    case W4('D', 'E', 'L', 'E'):
        *m = HTTP_DELETE;
        return memcmp(p + 4, "TE ", 3) == 0 ? 7 : 0;
    case W4('O', 'P', 'T', 'I'):
        *m = HTTP_OPTIONS;
        return memcmp(p + 4, "ONS ", 4) == 0 ? 8 : 0;
    }
#undef W4
    return 0;
}

/* A Content-Length value: 1 to 15 digits, nothing else (no blanks, no list). */
static bool length_value(const char *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 15) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!weft__http_is_digit((unsigned char)v[i])) return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

bool weft__head_scan(bool response, const char *p, size_t n, size_t max_head, weft__hspan_t *hs,
                     uint32_t hcap, weft__head_t *o)
{
    if (n > max_head) n = max_head; /* a head must end within max_head */
    /* the shortest head taken is 18 bytes ("GET / HTTP/1.1\r\n\r\n"); from here on the
     * scanners above always find sixteen bytes to load */
    if (n < 18) return false;
    size_t i;
    o->close = false;
    o->length = 0;
    bool has_length = false;
    if (!response) {
        i = method(p, n, &o->method);
        if (i == 0 || i >= n || p[i] != '/') return false;
        size_t t = i;
        i = skip_plain(p, i, n, 0x21);
        if (i + 11 > n || memcmp(p + i, " HTTP/1.1\r\n", 11) != 0) return false;
        o->url_off = (uint32_t)t;
        o->url_len = (uint32_t)(i - t);
        i += 11;
    } else {
        /* "HTTP/1.1 DDD " and a reason phrase (maybe empty); 1xx goes to llhttp */
        if (n < 15 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[12] != ' ') return false;
        unsigned d0 = (unsigned char)p[9] - '0', d1 = (unsigned char)p[10] - '0',
                 d2 = (unsigned char)p[11] - '0';
        if (d0 > 9 || d1 > 9 || d2 > 9 || d0 < 2) return false;
        o->status = (uint16_t)(d0 * 100 + d1 * 10 + d2);
        if (o->status == 204 || o->status == 304) return false; /* framing of their own */
        i = 13;
        if (!line_end(p, &i, n)) return false;
        i += 2;
    }
    uint32_t nh = 0;
    for (;;) {
        if (i >= n) return false;
        if (p[i] == '\r') {
            if (i + 1 >= n || p[i + 1] != '\n') return false;
            i += 2;
            break;
        }
        size_t name = i;
        i = name_end(p, i, n);
        if (i == name || i >= n || p[i] != ':' || nh == hcap) return false;
        size_t nlen = i - name;
        i++;
        if (i + 1 < n && p[i] == ' ' && (unsigned char)p[i + 1] > ' ')
            i++; /* the usual: one SP, then the value */
        else
            while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
        size_t v = i;
        if (!line_end(p, &i, n)) return false;
        size_t vlen = i - v;
        weft__hspan_t *h = &hs[nh++];
        h->noff = (uint32_t)name;
        h->nlen = (uint32_t)nlen;
        h->voff = vlen ? (uint32_t)v : 0;
        h->vlen = (uint32_t)vlen;
        i += 2;
        /* the names that change framing or the connection */
        const char *nm = p + name;
        switch (nlen) {
        case 6:
            if (weft__http_token_is(nm, "expect", 6)) return false;
            break;
        case 7:
            if (weft__http_token_is(nm, "upgrade", 7)) return false;
            break;
        case 10:
            if (weft__http_token_is(nm, "connection", 10)) {
                /* exactly, no trailing blanks (llhttp reads "close\t" as no token) */
                if (WEFT__HTTP_IEQ_LIT(p + v, vlen, "close"))
                    o->close = true;
                else if (!WEFT__HTTP_IEQ_LIT(p + v, vlen, "keep-alive"))
                    return false;
            }
            break;
        case 14:
            if (weft__http_token_is(nm, "content-length", 14)) {
                if (!response || has_length || !length_value(p + v, vlen, &o->length)) return false;
                has_length = true;
            }
            break;
        case 16:
            if (weft__http_token_is(nm, "proxy-connection", 16)) return false;
            break;
        case 17:
            if (weft__http_token_is(nm, "transfer-encoding", 17)) return false;
            break;
        }
    }
    if (response && !has_length) return false;
    o->len = (uint32_t)i;
    o->nhdr = nh;
    return true;
}
