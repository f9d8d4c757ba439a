/*
 * json_read.c - a pull reader of JSON text (core/json_read.h).
 *
 * Span ingest reads OTLP/JSON and Zipkin JSON at 100+ MB/s per core, field by field into
 * structs; a tree (jansson) would cost more than the decoding. The reader is a cursor over
 * the text plus the stack of open containers (depth, and one bit per level saying object or
 * array), so it needs no allocation but for strings with escapes.
 *
 * The grammar is RFC 8259's, strictly: no trailing commas, no leading zeros, no bare
 * control characters in strings, only the four blanks (space, tab, LF, CR), no BOM, no
 * comments. Strings must be well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates
 * encoded in UTF-8, nothing above U+10FFFF); a \uXXXX escape for a surrogate must be the
 * first of a pair (high then low), which decodes to one 4-byte sequence, and a lone one is
 * an error. \u0000 is allowed (strings are {p, n} views, not C strings).
 *
 * Strings: the body is scanned 16 bytes at a time (SSE2, always there on x86-64; 8 bytes
 * with SWAR elsewhere) for '"', '\\', a control byte or a byte >= 0x80, which are the only
 * bytes that need a look; a high byte starts a UTF-8 sequence checked on the spot. A
 * string without escapes is returned as a view into the text. One with escapes is decoded
 * into the arena: the raw body up to its closing quote bounds the decoded length, so that
 * much is allocated (the arena's limit: "string too long", WEFT_ELIMIT in err_code).
 * A skipped string is only checked, never copied.
 *
 * Numbers: the grammar is checked by hand; doubles come from the exact fast path (at most
 * 15 significant digits and a power of ten up to 22: one correctly rounded multiplication
 * or division) or from strtod_l in the C locale (never the process's locale: a service
 * that called setlocale must not read "0.5" as 0), through a copy NUL-terminated on the
 * stack or, for numbers over 127 characters, in the arena. An overflow to infinity is an
 * error; an underflow reads as 0 or a subnormal.
 *
 * weft_jr_skip is a loop over the reader's own container stack, not a recursion, so its
 * depth is the reader's limit (WEFT_JR_MAX_DEPTH) and costs no C stack.
 *
 * Every entry point returns at once after the first error, so the first error (its phrase
 * and offset) is what the caller reports. Never reads outside [start, end).
 *
 * A reader belongs to one thread; nothing here has global mutable state but the C locale
 * object, made once (pthread_once).
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_read.h"
#include "weft/common.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void weft_jr_init(weft_jr_t *r, const char *text, size_t n, weft_arena_t *arena)
{
    memset(r, 0, sizeof(*r));
    r->start = r->p = text;
    r->end = text + n;
    r->arena = arena;
}

static bool fail_at(weft_jr_t *r, const char *at, const char *msg, int code)
{
    if (!r->err) {
        r->err = msg;
        r->err_off = (size_t)(at - r->start);
        r->err_code = code;
    }
    return false;
}

static bool fail(weft_jr_t *r, const char *at, const char *msg)
{
    return fail_at(r, at, msg, WEFT_EINVAL);
}

bool weft_jr_fail(weft_jr_t *r, const char *msg)
{
    return fail(r, r->p, msg);
}

static inline void skip_blanks(weft_jr_t *r)
{
    const char *p = r->p, *end = r->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    r->p = p;
}

/* ---- strings ---- */

/* The first byte at or after p (before end) that is '"', '\\', below 0x20 or above 0x7f;
 * end when there is none. */
static inline const char *scan_plain(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        /* signed: bytes >= 0x80 are negative, so "less than 0x20" takes them too */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                 _mm_cmplt_epi8(x, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
#else
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t m = ((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x;
        if (m & highs) break; /* the byte-wise loop below finds which */
        p += 8;
    }
#endif
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
        p++;
    }
    return end;
}

/* The length of the well-formed UTF-8 sequence at p (whose first byte is >= 0x80), or 0. */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xc2 && c <= 0xdf) return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3) return 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* U+D800..U+DFFF */
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4) return 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
}

bool weft_jr_utf8_valid(const char *s, size_t n)
{
    const char *end = s + n;
    /* Only bytes >= 0x80 need a look ('"', '\\' and controls are fine here). First the
     * common case, all ASCII, in whole words with no byte loop: the last word overlaps
     * the one before it (protobuf ingest checks every key and value, most of them short
     * and plain; the byte loop over their tails was 4.6% of it). */
    if (n >= 8) {
        uint64_t acc = 0, x;
        for (const char *p = s; p < end - 8; p += 8) {
            memcpy(&x, p, 8);
            acc |= x;
        }
        memcpy(&x, end - 8, 8);
        if (!((acc | x) & 0x8080808080808080ull)) return true;
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4);
        memcpy(&y, end - 4, 4);
        if (!((x | y) & 0x80808080u)) return true;
    }
    while (s < end) {
        while (end - s >= 8) {
            uint64_t x;
            memcpy(&x, s, 8);
            if (x & 0x8080808080808080ull) break;
            s += 8;
        }
        while (s < end && (unsigned char)*s < 0x80) s++;
        if (s == end) return true;
        size_t k = utf8_seq((const unsigned char *)s, (const unsigned char *)end);
        if (!k) return false;
        s += k;
    }
    return true;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The 4 hex digits at p (p + 4 <= end checked by the caller): 0..0xffff, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes (out != NULL) or only checks the string body from p, which is inside a string,
 * up to and past its closing quote. *outn: bytes written. */
static bool string_body(weft_jr_t *r, const char *p, char *out, size_t *outn)
{
    const char *end = r->end;
    size_t o = 0;
    for (;;) {
        const char *q = scan_plain(p, end);
        if (out) memcpy(out + o, p, (size_t)(q - p));
        o += (size_t)(q - p);
        p = q;
        if (p == end) return fail(r, p, "unexpected end of text in a string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            r->p = p + 1;
            *outn = o;
            return true;
        }
        if (c < 0x20) return fail(r, p, "control character in a string");
        if (c >= 0x80) {
            size_t k = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (!k) return fail(r, p, "invalid UTF-8 in a string");
            if (out) memcpy(out + o, p, k);
            o += k;
            p += k;
            continue;
        }
        /* a backslash */
        if (end - p < 2) return fail(r, p, "unexpected end of text in a string");
        char e = p[1], d;
        switch (e) {
        case '"':
            d = '"';
            break;
        case '\\':
            d = '\\';
            break;
        case '/':
            d = '/';
            break;
        case 'b':
            d = '\b';
            break;
        case 'f':
            d = '\f';
            break;
        case 'n':
            d = '\n';
            break;
        case 'r':
            d = '\r';
            break;
        case 't':
            d = '\t';
            break;
        case 'u': {
            if (end - p < 6) return fail(r, p, "invalid \\u escape");
            long cp = hex4(p + 2);
            if (cp < 0) return fail(r, p, "invalid \\u escape");
            size_t used = 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) return fail(r, p, "lone surrogate in a \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) return fail(r, p, "lone surrogate in a \\u escape");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                used = 12;
            }
            char tmp[4];
            size_t k = put_utf8(out ? out + o : tmp, (unsigned long)cp);
            o += k;
            p += used;
            continue;
        }
        default:
            return fail(r, p, "invalid escape in a string");
        }
        if (out) out[o] = d;
        o++;
        p += 2;
    }
}

/* The string at r->p (its opening quote): a view into the text, or decoded into the arena
 * (store) or only checked (!store). */
static bool read_string(weft_jr_t *r, weft_jr_str_t *s, bool store)
{
    const char *body = r->p + 1, *end = r->end;
    const char *p = body;
    for (;;) {
        p = scan_plain(p, end);
        if (p == end) return fail(r, p, "unexpected end of text in a string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            s->p = body;
            s->n = (size_t)(p - body);
            r->p = p + 1;
            return true;
        }
        if (c == '\\') break;
        if (c < 0x20) return fail(r, p, "control character in a string");
        size_t k = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
        if (!k) return fail(r, p, "invalid UTF-8 in a string");
        p += k;
    }
    if (!store) return string_body(r, p, NULL, &s->n);
    /* Escapes: the raw body up to the closing quote bounds the decoded length (every
     * escape decodes to fewer bytes than it takes). */
    const char *q = p;
    while (q < end && *q != '"') q += *q == '\\' ? 2 : 1;
    if (q > end) q = end;
    size_t cap = (size_t)(q - body);
    weft_arena_t *a = r->arena;
    if (!a) return fail_at(r, body - 1, "a string with escapes needs an arena", WEFT_ENOMEM);
    if (a->used + cap > a->limit || a->used + cap < cap)
        return fail_at(r, body - 1, "string too long", WEFT_ELIMIT);
    char *out = weft_arena_alloc(a, cap);
    if (!out) return fail_at(r, body - 1, "out of memory", WEFT_ENOMEM);
    size_t pre = (size_t)(p - body);
    memcpy(out, body, pre);
    size_t n;
    if (!string_body(r, p, out + pre, &n)) return false;
    s->p = out;
    s->n = pre + n;
    return true;
}

/* ---- numbers ---- */

typedef struct {
    const char *p;     /* the text */
    size_t n;          /* its length */
    bool neg, integer; /* no fraction, no exponent */
} number_t;

/* Checks the number at r->p and steps over it. */
static bool scan_number(weft_jr_t *r, number_t *num)
{
    const char *p = r->p, *end = r->end, *s = p;
    num->neg = false;
    num->integer = true;
    if (p < end && *p == '-') {
        num->neg = true;
        p++;
    }
    if (p == end || *p < '0' || *p > '9') return fail(r, p, "invalid number: expected a digit");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return fail(r, p - 1, "invalid number: leading zeros are not allowed");
    } else {
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && *p == '.') {
        num->integer = false;
        p++;
        if (p == end || *p < '0' || *p > '9')
            return fail(r, p, "invalid number: expected a digit after '.'");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        num->integer = false;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || *p < '0' || *p > '9')
            return fail(r, p, "invalid number: expected a digit in the exponent");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    num->p = s;
    num->n = (size_t)(p - s);
    r->p = p;
    return true;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The double of a checked number; false (with the error) when it overflows. */
static bool number_double(weft_jr_t *r, const number_t *num, double *out)
{
    /* Fast path: at most 15 significant digits (below 2^53, exact) scaled by an exact
     * power of ten: one IEEE operation, correctly rounded. */
    const char *p = num->p, *end = num->p + num->n;
    if (num->neg) p++;
    uint64_t m = 0;
    int digits = 0, scale = 0;
    bool ok = true;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (m || *p != '0') digits++;
        m = m * 10 + (uint64_t)(*p - '0');
        if (digits > 15) {
            ok = false;
            break;
        }
    }
    if (ok && p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (m || *p != '0') digits++;
            m = m * 10 + (uint64_t)(*p - '0');
            scale--;
            if (digits > 15) {
                ok = false;
                break;
            }
        }
    }
    if (ok && p < end) { /* an exponent */
        p++;
        bool eneg = false;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        long e = 0;
        for (; p < end && e < 100000; p++) e = e * 10 + (*p - '0');
        if (p < end) ok = false; /* a huge exponent: strtod decides */
        scale += (int)(eneg ? -e : e);
    }
    if (ok && (m == 0 || (scale >= -22 && scale <= 22))) {
        double d = (double)m;
        if (m && scale < 0)
            d /= pow10_exact[-scale];
        else if (m && scale > 0)
            d *= pow10_exact[scale];
        *out = num->neg ? -d : d;
        return true;
    }
    pthread_once(&c_locale_once, c_locale_init);
    char buf[128], *z = buf;
    if (num->n >= sizeof(buf)) {
        z = r->arena ? weft_arena_alloc(r->arena, num->n + 1) : NULL;
        if (!z) return fail_at(r, num->p, "out of memory", WEFT_ENOMEM);
    }
    memcpy(z, num->p, num->n);
    z[num->n] = 0;
    double d = c_locale ? strtod_l(z, NULL, c_locale) : strtod(z, NULL);
    if (isinf(d)) return fail(r, num->p, "number out of range");
    *out = d;
    return true;
}

/* The magnitude of an integer's digits (no sign; checked grammar): false on overflow. */
static bool digits_u64(const char *p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (; p < end; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - dgt) / 10) return false;
        x = x * 10 + dgt;
    }
    *v = x;
    return true;
}

/* ---- containers ---- */

static inline bool in_array(const weft_jr_t *r)
{
    return r->arrays >> (r->depth - 1) & 1;
}

static bool enter(weft_jr_t *r, bool array)
{
    if (r->depth >= WEFT_JR_MAX_DEPTH) return fail(r, r->p, "nesting too deep");
    if (array)
        r->arrays |= (uint64_t)1 << r->depth;
    else
        r->arrays &= ~((uint64_t)1 << r->depth);
    r->depth++;
    r->first = true;
    r->p++;
    return true;
}

static bool leave(weft_jr_t *r)
{
    r->depth--;
    r->first = false; /* the parent holds at least this one */
    r->p++;
    return false;
}

/* Before a value: blanks skipped; false (with the error) at the end of the text. */
static inline bool at_value(weft_jr_t *r)
{
    if (r->err) return false;
    skip_blanks(r);
    if (r->p == r->end) return fail(r, r->p, "unexpected end of text");
    return true;
}

weft_jr_type_t weft_jr_peek(weft_jr_t *r)
{
    if (r->err) return WEFT_JR_NONE;
    skip_blanks(r);
    if (r->p == r->end) {
        if (r->depth) fail(r, r->p, "unexpected end of text");
        return WEFT_JR_NONE;
    }
    switch (*r->p) {
    case '{':
        return WEFT_JR_OBJECT;
    case '[':
        return WEFT_JR_ARRAY;
    case '"':
        return WEFT_JR_STRING;
    case 't':
        return WEFT_JR_TRUE;
    case 'f':
        return WEFT_JR_FALSE;
    case 'n':
        return WEFT_JR_NULL;
    case '-':
    case '0' ... '9':
        return WEFT_JR_NUMBER;
    default:
        fail(r, r->p, "expected a value");
        return WEFT_JR_NONE;
    }
}

bool weft_jr_object(weft_jr_t *r)
{
    if (!at_value(r)) return false;
    if (*r->p != '{') return fail(r, r->p, "expected an object");
    return enter(r, false);
}

bool weft_jr_array(weft_jr_t *r)
{
    if (!at_value(r)) return false;
    if (*r->p != '[') return fail(r, r->p, "expected an array");
    return enter(r, true);
}

/* The next member's key (decoded when store, else only checked), false after '}'. */
static bool object_key(weft_jr_t *r, weft_jr_str_t *key, bool store)
{
    if (r->err) return false;
    if (r->depth == 0 || in_array(r)) return fail(r, r->p, "not in an object");
    skip_blanks(r);
    if (r->p == r->end) return fail(r, r->p, "unexpected end of text in an object");
    if (*r->p == '}') return leave(r);
    if (!r->first) {
        if (*r->p != ',') return fail(r, r->p, "expected ',' or '}'");
        r->p++;
        skip_blanks(r);
        if (r->p < r->end && *r->p == '}') return fail(r, r->p, "trailing comma");
    }
    if (r->p == r->end) return fail(r, r->p, "unexpected end of text in an object");
    if (*r->p != '"') return fail(r, r->p, "expected a string (a member's name)");
    if (!read_string(r, key, store)) return false;
    skip_blanks(r);
    if (r->p == r->end || *r->p != ':') return fail(r, r->p, "expected ':'");
    r->p++;
    r->first = false;
    return true;
}

bool weft_jr_key(weft_jr_t *r, weft_jr_str_t *key)
{
    return object_key(r, key, true);
}

bool weft_jr_next(weft_jr_t *r)
{
    if (r->err) return false;
    if (r->depth == 0 || !in_array(r)) return fail(r, r->p, "not in an array");
    skip_blanks(r);
    if (r->p == r->end) return fail(r, r->p, "unexpected end of text in an array");
    if (*r->p == ']') return leave(r);
    if (!r->first) {
        if (*r->p != ',') return fail(r, r->p, "expected ',' or ']'");
        r->p++;
        skip_blanks(r);
        if (r->p < r->end && *r->p == ']') return fail(r, r->p, "trailing comma");
    }
    r->first = false;
    return true;
}

/* ---- scalars ---- */

bool weft_jr_plain_string(weft_jr_t *r, weft_jr_str_t *s)
{
    if (r->err || r->p == r->end || *r->p != '"') return false;
    const char *body = r->p + 1, *end = r->end, *p = body;
    for (;;) {
        p = scan_plain(p, end);
        if (p == end) return false;
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c < 0x80) return false; /* an escape or a control byte */
        size_t k = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
        if (!k) return false;
        p += k;
    }
    s->p = body;
    s->n = (size_t)(p - body);
    r->p = p + 1;
    return true;
}

bool weft_jr_string(weft_jr_t *r, weft_jr_str_t *s)
{
    if (!at_value(r)) return false;
    if (*r->p != '"') return fail(r, r->p, "expected a string");
    return read_string(r, s, true);
}

static bool literal(weft_jr_t *r, const char *lit, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return fail(r, r->p, "expected a value");
    r->p += n;
    return true;
}

bool weft_jr_bool(weft_jr_t *r, bool *b)
{
    if (!at_value(r)) return false;
    if (*r->p == 't') {
        if (!literal(r, "true", 4)) return false;
        *b = true;
        return true;
    }
    if (*r->p == 'f') {
        if (!literal(r, "false", 5)) return false;
        *b = false;
        return true;
    }
    return fail(r, r->p, "expected true or false");
}

bool weft_jr_null(weft_jr_t *r)
{
    if (r->err) return false;
    skip_blanks(r);
    if (r->p == r->end || *r->p != 'n') return false;
    return literal(r, "null", 4);
}

bool weft_jr_double(weft_jr_t *r, double *d)
{
    if (!at_value(r)) return false;
    if (*r->p != '-' && (*r->p < '0' || *r->p > '9')) return fail(r, r->p, "expected a number");
    number_t num;
    return scan_number(r, &num) && number_double(r, &num, d);
}

/* An integer's text: a number without fraction or exponent, or a string holding one. */
static bool integer_text(weft_jr_t *r, number_t *num, const char **atp)
{
    if (!at_value(r)) return false;
    const char *at = *atp = r->p;
    if (*r->p == '"') {
        weft_jr_str_t s;
        if (!read_string(r, &s, true)) return false;
        weft_jr_t sub;
        weft_jr_init(&sub, s.p, s.n, NULL);
        if (s.n == 0 || (*s.p != '-' && (*s.p < '0' || *s.p > '9')) || !scan_number(&sub, num) ||
            sub.p != sub.end || !num->integer)
            return fail(r, at, "expected an integer");
        return true;
    }
    if (*r->p != '-' && (*r->p < '0' || *r->p > '9')) return fail(r, at, "expected an integer");
    if (!scan_number(r, num)) return false;
    if (!num->integer) return fail(r, at, "expected an integer");
    return true;
}

bool weft_jr_int64(weft_jr_t *r, int64_t *v)
{
    const char *at;
    number_t num;
    if (!integer_text(r, &num, &at)) return false;
    uint64_t m;
    if (!digits_u64(num.p + num.neg, num.p + num.n, &m) ||
        m > (num.neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return fail(r, at, "integer out of range");
    *v = num.neg ? (int64_t)(0 - m) : (int64_t)m;
    return true;
}

bool weft_jr_uint64(weft_jr_t *r, uint64_t *v)
{
    const char *at;
    number_t num;
    if (!integer_text(r, &num, &at)) return false;
    uint64_t m;
    if (!digits_u64(num.p + num.neg, num.p + num.n, &m) || (num.neg && m != 0))
        return fail(r, at, "integer out of range");
    *v = m;
    return true;
}

/* ---- whole values ---- */

/* One scalar read and dropped, or a container entered. */
static bool skip_one(weft_jr_t *r)
{
    if (!at_value(r)) return false;
    weft_jr_str_t s;
    number_t num;
    switch (*r->p) {
    case '{':
        return enter(r, false);
    case '[':
        return enter(r, true);
    case '"':
        return read_string(r, &s, false);
    case 't':
        return literal(r, "true", 4);
    case 'f':
        return literal(r, "false", 5);
    case 'n':
        return literal(r, "null", 4);
    case '-':
    case '0' ... '9':
        return scan_number(r, &num);
    default:
        return fail(r, r->p, "expected a value");
    }
}

bool weft_jr_skip(weft_jr_t *r)
{
    if (r->err) return false;
    unsigned base = r->depth;
    do {
        if (!skip_one(r)) return false;
        while (r->depth > base) {
            weft_jr_str_t k;
            bool more = in_array(r) ? weft_jr_next(r) : object_key(r, &k, false);
            if (r->err) return false;
            if (more) break;
        }
    } while (r->depth > base);
    return true;
}

bool weft_jr_raw(weft_jr_t *r, weft_jr_str_t *raw)
{
    if (!at_value(r)) return false;
    const char *s = r->p;
    if (!weft_jr_skip(r)) return false;
    raw->p = s;
    raw->n = (size_t)(r->p - s);
    return true;
}

bool weft_jr_end(weft_jr_t *r)
{
    if (r->err) return false;
    if (r->depth) return fail(r, r->p, "unexpected end of the value");
    skip_blanks(r);
    if (r->p != r->end) return fail(r, r->p, "text after the value");
    return true;
}
