/*
 * context.c - trace context propagation: W3C traceparent/tracestate, B3 single and multi
 * headers, random ids.
 *
 * Parsing follows the W3C Trace Context Recommendation exactly: lowercase hex only, fixed
 * lengths for version 00, version ff invalid, all-zero ids invalid, future versions accepted
 * when their first 55 characters parse and the 56th (if any) is '-'. tracestate members are
 * validated against the key and value grammars; an invalid tracestate is dropped as a whole.
 * Nothing here allocates; all functions are pure except the id generator, whose state is
 * per thread (xoshiro256**, seeded from getrandom), so it needs no lock.
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "weft/trace.h"

static const char hexdig[] = "0123456789abcdef";

void weft_trace_hex(const uint8_t *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[bytes[i] >> 4];
        out[2 * i + 1] = hexdig[bytes[i] & 15];
    }
}

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Lowercase hex only (W3C); B3 also only lowercase. */
static int unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* Stores a context parsed from a peer's headers (its tracestate comes separately). */
static void set_remote(weft_trace_context_t *ctx, const uint8_t tid[16], const uint8_t sid[8],
                       uint8_t flags)
{
    memcpy(ctx->trace_id, tid, 16);
    memcpy(ctx->span_id, sid, 8);
    ctx->flags = flags;
    ctx->remote = true;
    ctx->tracestate_len = 0;
}

int weft_traceparent_parse(const char *s, size_t len, weft_trace_context_t *ctx)
{
    /* Surrounding whitespace is OWS in the header; strip it. */
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (len < WEFT_TRACEPARENT_LEN) return WEFT_EPARSE;
    uint8_t version;
    if (unhex(s, 2, &version) != 0 || version == 0xff) return WEFT_EPARSE;
    if (version == 0 && len != WEFT_TRACEPARENT_LEN) return WEFT_EPARSE;
    if (version > 0 && len > WEFT_TRACEPARENT_LEN && s[WEFT_TRACEPARENT_LEN] != '-')
        return WEFT_EPARSE;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return WEFT_EPARSE;
    uint8_t tid[16], sid[8], flags;
    if (unhex(s + 3, 32, tid) || unhex(s + 36, 16, sid) || unhex(s + 53, 2, &flags))
        return WEFT_EPARSE;
    if (all_zero(tid, 16) || all_zero(sid, 8)) return WEFT_EPARSE;
    set_remote(ctx, tid, sid, flags & WEFT_TRACE_FLAG_SAMPLED); /* other bits are not ours */
    return 0;
}

size_t weft_traceparent_format(const weft_trace_context_t *ctx, char *out)
{
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    weft_trace_hex(ctx->trace_id, 16, out + 3);
    out[35] = '-';
    weft_trace_hex(ctx->span_id, 8, out + 36);
    out[52] = '-';
    out[53] = '0';
    out[54] = (ctx->flags & WEFT_TRACE_FLAG_SAMPLED) ? '1' : '0';
    return WEFT_TRACEPARENT_LEN;
}

/* ---- tracestate ---- */

static int lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}
static int digit(char c)
{
    return c >= '0' && c <= '9';
}
static int keychar(char c)
{
    return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* key = simple-key / multi-tenant-key (W3C Trace Context, 3.3.1.3.1). */
static int valid_key(const char *k, size_t n)
{
    if (n == 0 || n > 256) return 0;
    const char *at = memchr(k, '@', n);
    if (!at) {
        if (!lcalpha(k[0])) return 0;
        for (size_t i = 1; i < n; i++)
            if (!keychar(k[i])) return 0;
        return 1;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    if (tn == 0 || tn > 241 || sn == 0 || sn > 14) return 0;
    if (!lcalpha(k[0]) && !digit(k[0])) return 0;
    for (size_t i = 1; i < tn; i++)
        if (!keychar(k[i])) return 0;
    if (!lcalpha(at[1])) return 0;
    for (size_t i = 2; i <= sn; i++)
        if (!keychar(at[i])) return 0;
    return 1;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static int valid_value(const char *v, size_t n)
{
    if (n == 0 || n > 256) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return 0;
    }
    return v[n - 1] != ' ';
}

int weft_tracestate_parse(const char *s, size_t len, weft_trace_context_t *ctx)
{
    char out[WEFT_TRACESTATE_MAX];
    size_t o = 0;
    struct {
        const char *k;
        size_t n;
    } keys[WEFT_TRACESTATE_MEMBERS];
    unsigned nkeys = 0;
    const char *p = s, *end = s + len;
    ctx->tracestate_len = 0;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *m = p, *me = comma ? comma : end;
        while (m < me && (*m == ' ' || *m == '\t')) m++;
        while (me > m && (me[-1] == ' ' || me[-1] == '\t')) me--;
        if (me > m) {
            const char *eq = memchr(m, '=', (size_t)(me - m));
            if (!eq || !valid_key(m, (size_t)(eq - m)) ||
                !valid_value(eq + 1, (size_t)(me - eq - 1)))
                return WEFT_EPARSE;
            if (nkeys == WEFT_TRACESTATE_MEMBERS) return WEFT_EPARSE;
            size_t kn = (size_t)(eq - m);
            for (unsigned i = 0; i < nkeys; i++)
                if (keys[i].n == kn && memcmp(keys[i].k, m, kn) == 0) return WEFT_EPARSE;
            keys[nkeys].k = m;
            keys[nkeys++].n = kn;
            size_t mn = (size_t)(me - m);
            if (o + mn + (o ? 1 : 0) > sizeof(out)) return WEFT_EPARSE;
            if (o) out[o++] = ',';
            memcpy(out + o, m, mn);
            o += mn;
        }
        if (!comma) break;
        p = comma + 1;
    }
    memcpy(ctx->tracestate, out, o);
    ctx->tracestate_len = (uint16_t)o;
    return 0;
}

int weft_tracestate_put(weft_trace_context_t *ctx, const char *key, const char *value)
{
    size_t kn = strlen(key), vn = strlen(value);
    if (!valid_key(key, kn) || !valid_value(value, vn)) return WEFT_EINVAL;
    char out[WEFT_TRACESTATE_MAX];
    size_t o = kn + 1 + vn;
    if (o > sizeof(out)) return WEFT_EINVAL;
    memcpy(out, key, kn);
    out[kn] = '=';
    memcpy(out + kn + 1, value, vn);
    unsigned members = 1;
    const char *p = ctx->tracestate, *end = p + ctx->tracestate_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *me = comma ? comma : end;
        size_t mn = (size_t)(me - p);
        int same = mn > kn && p[kn] == '=' && memcmp(p, key, kn) == 0;
        if (!same && mn) {
            if (members == WEFT_TRACESTATE_MEMBERS || o + 1 + mn > sizeof(out)) break;
            out[o++] = ',';
            memcpy(out + o, p, mn);
            o += mn;
            members++;
        }
        p = comma ? comma + 1 : end;
    }
    memcpy(ctx->tracestate, out, o);
    ctx->tracestate_len = (uint16_t)o;
    return 0;
}

/* ---- B3 ---- */

static int parse_b3_trace(const char *s, size_t n, uint8_t tid[16])
{
    if (n == 16) {
        memset(tid, 0, 8);
        if (unhex(s, 16, tid + 8)) return -1;
    } else if (n == 32) {
        if (unhex(s, 32, tid)) return -1;
    } else {
        return -1;
    }
    return all_zero(tid, 16) ? -1 : 0;
}

int weft_b3_parse(const char *s, size_t len, weft_trace_context_t *ctx)
{
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (len == 1 && (s[0] == '0' || s[0] == '1' || s[0] == 'd')) return WEFT_ENOENT;
    const char *d1 = memchr(s, '-', len);
    if (!d1) return WEFT_EPARSE;
    uint8_t tid[16], sid[8];
    if (parse_b3_trace(s, (size_t)(d1 - s), tid)) return WEFT_EPARSE;
    const char *rest = d1 + 1, *end = s + len;
    const char *d2 = memchr(rest, '-', (size_t)(end - rest));
    const char *se = d2 ? d2 : end;
    if (se - rest != 16 || unhex(rest, 16, sid) || all_zero(sid, 8)) return WEFT_EPARSE;
    uint8_t flags = WEFT_TRACE_FLAG_SAMPLED; /* absent sampling state: defer; we sample */
    if (d2) {
        const char *f = d2 + 1;
        const char *d3 = memchr(f, '-', (size_t)(end - f));
        const char *fe = d3 ? d3 : end;
        if (fe - f != 1) return WEFT_EPARSE;
        if (*f == '0')
            flags = 0;
        else if (*f == '1' || *f == 'd')
            flags = WEFT_TRACE_FLAG_SAMPLED;
        else
            return WEFT_EPARSE;
        if (d3) {
            uint8_t parent[8];
            if (end - (d3 + 1) != 16 || unhex(d3 + 1, 16, parent)) return WEFT_EPARSE;
        }
    }
    set_remote(ctx, tid, sid, flags);
    return 0;
}

size_t weft_b3_format(const weft_trace_context_t *ctx, char *out)
{
    weft_trace_hex(ctx->trace_id, 16, out);
    out[32] = '-';
    weft_trace_hex(ctx->span_id, 8, out + 33);
    out[49] = '-';
    out[50] = (ctx->flags & WEFT_TRACE_FLAG_SAMPLED) ? '1' : '0';
    return 51;
}

int weft_trace_extract(weft_trace_getter_fn get, void *arg, weft_trace_context_t *ctx)
{
    const char *v;
    size_t n;
    if (get(arg, "traceparent", &v, &n) && weft_traceparent_parse(v, n, ctx) == 0) {
        if (get(arg, "tracestate", &v, &n)) weft_tracestate_parse(v, n, ctx);
        return 0;
    }
    if (get(arg, "b3", &v, &n) && weft_b3_parse(v, n, ctx) == 0) return 0;
    uint8_t tid[16], sid[8];
    if (!get(arg, "x-b3-traceid", &v, &n) || parse_b3_trace(v, n, tid)) return WEFT_ENOENT;
    if (!get(arg, "x-b3-spanid", &v, &n) || n != 16 || unhex(v, 16, sid) || all_zero(sid, 8))
        return WEFT_ENOENT;
    uint8_t flags = WEFT_TRACE_FLAG_SAMPLED;
    if (get(arg, "x-b3-sampled", &v, &n)) {
        if ((n == 1 && v[0] == '0') || (n == 5 && memcmp(v, "false", 5) == 0))
            flags = 0;
        else if (!((n == 1 && v[0] == '1') || (n == 4 && memcmp(v, "true", 4) == 0)))
            return WEFT_ENOENT;
    }
    if (get(arg, "x-b3-flags", &v, &n) && n == 1 && v[0] == '1') flags = WEFT_TRACE_FLAG_SAMPLED;
    set_remote(ctx, tid, sid, flags);
    return 0;
}

int weft_trace_inject(const weft_trace_context_t *ctx, unsigned mask, weft_trace_setter_fn set,
                      void *arg)
{
    char buf[64];
    int err;
    if (mask & WEFT_PROPAGATE_W3C) {
        if ((err = set(arg, "traceparent", buf, weft_traceparent_format(ctx, buf))) != 0)
            return err;
        if (ctx->tracestate_len &&
            (err = set(arg, "tracestate", ctx->tracestate, ctx->tracestate_len)) != 0)
            return err;
    }
    if (mask & WEFT_PROPAGATE_B3) {
        if ((err = set(arg, "b3", buf, weft_b3_format(ctx, buf))) != 0) return err;
    }
    return 0;
}

/* ---- ids ---- */

static _Thread_local uint64_t rng[4];
static _Thread_local int rng_ready;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next64(void)
{
    if (__builtin_expect(!rng_ready, 0)) {
        if (getrandom(rng, sizeof(rng), 0) != (ssize_t)sizeof(rng)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ull;
            rng[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ull;
            rng[2] = (uint64_t)(uintptr_t)&rng_ready;
            rng[3] = 0x94d049bb133111ebull;
        }
        if (!(rng[0] | rng[1] | rng[2] | rng[3])) rng[0] = 1;
        rng_ready = 1;
    }
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

void weft_trace_random_trace_id(uint8_t id[16])
{
    uint64_t a, b;
    do {
        a = next64();
        b = next64();
    } while (!(a | b));
    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
}

void weft_trace_random_span_id(uint8_t id[8])
{
    uint64_t a;
    do a = next64();
    while (!a);
    memcpy(id, &a, 8);
}
