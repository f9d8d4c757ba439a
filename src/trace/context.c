/*
 * context.c - trace context propagation: W3C traceparent, B3 single and multi headers, and
 * the extract/inject helpers that choose between them.
 *
 * traceparent follows the W3C Trace Context Recommendation and Level 2's rule for future
 * versions: lowercase hex only, exactly 55 characters for version 00, version ff invalid,
 * all-zero ids invalid, a higher version accepted when its first 55 characters parse and the
 * 56th (if any) is '-'. Only the sampled flag is kept.
 *
 * B3 (openzipkin/b3-propagation): 16- or 32-hex trace ids (a 64-bit id is stored in the low
 * half), sampling states accept/deny/debug/defer, and the sampling-only form (`b3: 0`) that
 * carries a decision without ids. weft keeps debug as accept; a deferred decision sets
 * ctx->deferred so that the local root sampler decides. The parent span id B3 may send is
 * validated and not kept: like W3C, weft gives every span its own id and takes the sender's
 * span id as the parent.
 *
 * Extraction order: a valid traceparent (then tracestate), else `b3`, else X-B3-*: W3C first
 * because it is the standard, and B3 says its single header wins over the multi ones. An
 * invalid traceparent is ignored (with its tracestate, as the spec requires), not an error.
 *
 * Nothing here allocates or keeps state; every function is pure and thread-safe.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "trace/trace_int.h"

/* The two digits of each byte value: a load and a store per byte. A gateway writes a
 * traceparent (24 bytes) per proxied request: with the unrolling below this takes about a
 * third of the instructions of a table lookup per digit (callgrind). */
static const char hexpairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

#define HEXPAIR(i) memcpy(out + 2 * (i), hexpairs + 2 * bytes[i], 2)

void weft_trace_hex(const uint8_t *bytes, size_t n, char *out)
{
    /* eight at a time, unrolled: ids are 8 and 16 bytes, and a loop's own instructions
     * would double the cost */
    for (; n >= 8; n -= 8, bytes += 8, out += 16) {
        HEXPAIR(0), HEXPAIR(1), HEXPAIR(2), HEXPAIR(3);
        HEXPAIR(4), HEXPAIR(5), HEXPAIR(6), HEXPAIR(7);
    }
    for (size_t i = 0; i < n; i++) HEXPAIR(i);
}

#undef HEXPAIR

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int weft__trace_unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool weft__trace_all_zero(const uint8_t *b, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= b[i];
    return acc == 0;
}

const char *weft__trace_trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    *len = n;
    return s;
}

bool weft_trace_context_is_valid(const weft_trace_context_t *ctx)
{
    return !weft__trace_all_zero(ctx->trace_id, 16) && !weft__trace_all_zero(ctx->span_id, 8);
}

/* Stores ids and a decision from a peer's headers; its tracestate comes separately. */
static void set_remote(weft_trace_context_t *ctx, const uint8_t tid[16], const uint8_t sid[8],
                       bool sampled, bool deferred)
{
    memcpy(ctx->trace_id, tid, 16);
    memcpy(ctx->span_id, sid, 8);
    ctx->flags = sampled ? WEFT_TRACE_FLAG_SAMPLED : 0;
    ctx->remote = true;
    ctx->deferred = deferred;
    ctx->tracestate_len = 0;
}

/* ---- traceparent ---- */

int weft_traceparent_parse(const char *s, size_t len, weft_trace_context_t *ctx)
{
    s = weft__trace_trim(s, &len);
    if (len < WEFT_TRACEPARENT_LEN) return WEFT_EPARSE;
    uint8_t version, tid[16], sid[8], flags;
    if (weft__trace_unhex(s, 2, &version) != 0 || version == 0xff) return WEFT_EPARSE;
    if (version == 0 && len != WEFT_TRACEPARENT_LEN) return WEFT_EPARSE;
    if (len > WEFT_TRACEPARENT_LEN && s[WEFT_TRACEPARENT_LEN] != '-') return WEFT_EPARSE;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return WEFT_EPARSE;
    if (weft__trace_unhex(s + 3, 32, tid) || weft__trace_unhex(s + 36, 16, sid) ||
        weft__trace_unhex(s + 53, 2, &flags))
        return WEFT_EPARSE;
    if (weft__trace_all_zero(tid, 16) || weft__trace_all_zero(sid, 8)) return WEFT_EPARSE;
    set_remote(ctx, tid, sid, flags & WEFT_TRACE_FLAG_SAMPLED, false);
    return 0;
}

size_t weft_traceparent_format(const weft_trace_context_t *ctx, char *out)
{
    if (!weft_trace_context_is_valid(ctx)) return 0;
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

/* ---- B3 ---- */

/* A 16- or 32-hex trace id, not all zero. */
static int b3_trace_id(const char *s, size_t n, uint8_t tid[16])
{
    if (n == 16) {
        memset(tid, 0, 8);
        if (weft__trace_unhex(s, 16, tid + 8)) return -1;
    } else if (n != 32 || weft__trace_unhex(s, 32, tid)) {
        return -1;
    }
    return weft__trace_all_zero(tid, 16) ? -1 : 0;
}

/* A 16-hex span id, not all zero. */
static int b3_span_id(const char *s, size_t n, uint8_t sid[8])
{
    if (n != 16 || weft__trace_unhex(s, 16, sid)) return -1;
    return weft__trace_all_zero(sid, 8) ? -1 : 0;
}

/* A sampling state character: 1 accept (or debug), 0 deny, -1 invalid. */
static int b3_sampling(char c)
{
    return c == '1' || c == 'd' ? 1 : c == '0' ? 0 : -1;
}

/* A context that carries only a sampling decision. */
static void set_decision_only(weft_trace_context_t *ctx, bool sampled)
{
    memset(ctx->trace_id, 0, 16);
    memset(ctx->span_id, 0, 8);
    ctx->flags = sampled ? WEFT_TRACE_FLAG_SAMPLED : 0;
    ctx->remote = true;
    ctx->deferred = false;
    ctx->tracestate_len = 0;
}

int weft_b3_parse(const char *s, size_t len, weft_trace_context_t *ctx)
{
    s = weft__trace_trim(s, &len);
    if (len == 1) {
        int st = b3_sampling(s[0]);
        if (st < 0) return WEFT_EPARSE;
        set_decision_only(ctx, st);
        return 0;
    }
    const char *end = s + len, *d1 = memchr(s, '-', len);
    if (!d1) return WEFT_EPARSE;
    uint8_t tid[16], sid[8], parent[8];
    if (b3_trace_id(s, (size_t)(d1 - s), tid)) return WEFT_EPARSE;
    const char *sp = d1 + 1, *d2 = memchr(sp, '-', (size_t)(end - sp));
    if (b3_span_id(sp, (size_t)((d2 ? d2 : end) - sp), sid)) return WEFT_EPARSE;
    if (!d2) {
        set_remote(ctx, tid, sid, false, true);
        return 0;
    }
    const char *f = d2 + 1, *d3 = memchr(f, '-', (size_t)(end - f));
    int st = (d3 ? d3 : end) - f == 1 ? b3_sampling(*f) : -1;
    if (st < 0) return WEFT_EPARSE;
    if (d3 && (end - (d3 + 1) != 16 || weft__trace_unhex(d3 + 1, 16, parent))) return WEFT_EPARSE;
    set_remote(ctx, tid, sid, st, false);
    return 0;
}

/* The trace id as B3 writes it: 16 hex when the high half is zero. Returns the length. */
static size_t b3_trace_hex(const weft_trace_context_t *ctx, char *out)
{
    if (weft__trace_all_zero(ctx->trace_id, 8)) {
        weft_trace_hex(ctx->trace_id + 8, 8, out);
        return 16;
    }
    weft_trace_hex(ctx->trace_id, 16, out);
    return 32;
}

size_t weft_b3_format(const weft_trace_context_t *ctx, char *out)
{
    char sampled = (ctx->flags & WEFT_TRACE_FLAG_SAMPLED) ? '1' : '0';
    if (!weft_trace_context_is_valid(ctx)) {
        out[0] = sampled;
        return 1;
    }
    size_t o = b3_trace_hex(ctx, out);
    out[o++] = '-';
    weft_trace_hex(ctx->span_id, 8, out + o);
    o += 16;
    if (!ctx->deferred) {
        out[o++] = '-';
        out[o++] = sampled;
    }
    return o;
}

/* ---- extraction ---- */

/* The header values extraction looks at; base NULL when absent. */
typedef struct found_s {
    weft_str_t traceparent;
    bool traceparent_twice;
    size_t ntracestate;
    bool tracestate_overflow;
    weft_str_t b3, trace_id, span_id, parent_id, sampled, flags;
    /* Last, and not cleared (found_clear): only the first ntracestate are ever read. */
    weft_str_t tracestate[WEFT_TRACESTATE_MEMBERS * 2];
} found_t;

/* Clears everything but the tracestate array (1 KiB: clearing it was a quarter of the
 * cost of extracting from a request without any trace header). */
static inline void found_clear(found_t *f)
{
    memset(f, 0, offsetof(found_t, tracestate));
}

static bool value_is(weft_str_t v, const char *lit)
{
    size_t n = strlen(lit);
    return v.len == n && memcmp(v.base, lit, n) == 0;
}

/* X-B3-* headers. Returns 0 or WEFT_ENOENT. */
static int b3_multi(found_t *f, weft_trace_context_t *ctx)
{
    int st = -1; /* -1: deferred */
    if (f->sampled.base) {
        weft_str_t v = f->sampled;
        v.base = weft__trace_trim(v.base, &v.len);
        /* "true"/"false": what tracers sent before the spec; B3 allows accepting them. */
        if (value_is(v, "1") || value_is(v, "true"))
            st = 1;
        else if (value_is(v, "0") || value_is(v, "false"))
            st = 0;
        else
            return WEFT_ENOENT;
    }
    if (f->flags.base) {
        weft_str_t v = f->flags;
        v.base = weft__trace_trim(v.base, &v.len);
        if (value_is(v, "1")) st = 1; /* debug implies accept */
    }
    if (!f->trace_id.base) {
        if (st < 0) return WEFT_ENOENT;
        set_decision_only(ctx, st);
        return 0;
    }
    uint8_t tid[16], sid[8], parent[8];
    weft_str_t t = f->trace_id, s = f->span_id, p = f->parent_id;
    t.base = weft__trace_trim(t.base, &t.len);
    if (b3_trace_id(t.base, t.len, tid) || !s.base) return WEFT_ENOENT;
    s.base = weft__trace_trim(s.base, &s.len);
    if (b3_span_id(s.base, s.len, sid)) return WEFT_ENOENT;
    if (p.base) {
        p.base = weft__trace_trim(p.base, &p.len);
        if (p.len != 16 || weft__trace_unhex(p.base, 16, parent)) return WEFT_ENOENT;
    }
    set_remote(ctx, tid, sid, st > 0, st < 0);
    return 0;
}

/* B3: the single header when it parses, else the multi headers. */
static int b3_any(found_t *f, weft_trace_context_t *ctx)
{
    if (f->b3.base && weft_b3_parse(f->b3.base, f->b3.len, ctx) == 0) return 0;
    return b3_multi(f, ctx);
}

static int decide(found_t *f, bool b3_wins, weft_trace_context_t *ctx)
{
    weft_trace_context_t tmp;
    if (b3_wins && f->traceparent.base) {
        /* Only B3 ids override a traceparent, not a B3 sampling decision alone. */
        memset(tmp.trace_id, 0, sizeof(tmp.trace_id));
        memset(tmp.span_id, 0, sizeof(tmp.span_id));
        if (b3_any(f, &tmp) == 0 && weft_trace_context_is_valid(&tmp)) {
            set_remote(ctx, tmp.trace_id, tmp.span_id, tmp.flags & WEFT_TRACE_FLAG_SAMPLED,
                       tmp.deferred);
            return 0;
        }
    }
    if (f->traceparent.base && !f->traceparent_twice &&
        weft_traceparent_parse(f->traceparent.base, f->traceparent.len, &tmp) == 0) {
        memcpy(ctx->trace_id, tmp.trace_id, 16);
        memcpy(ctx->span_id, tmp.span_id, 8);
        ctx->flags = tmp.flags;
        ctx->remote = true;
        ctx->deferred = false;
        if (f->tracestate_overflow ||
            weft_tracestate_parse_lines(f->tracestate, f->ntracestate, ctx) != 0)
            ctx->tracestate_len = 0;
        return 0;
    }
    return b3_any(f, ctx);
}

int weft_trace_extract(weft_trace_getter_fn get, void *arg, weft_trace_context_t *ctx)
{
    found_t f;
    const char *p;
    size_t n;
    found_clear(&f);
    /* Lazily, in order of preference: most requests carry one format, or none. */
    if (get(arg, "traceparent", &p, &n)) {
        f.traceparent = (weft_str_t){p ? p : "", p ? n : 0};
        if (get(arg, "tracestate", &p, &n))
            f.tracestate[f.ntracestate++] = (weft_str_t){p ? p : "", p ? n : 0};
        if (decide(&f, false, ctx) == 0) return 0;
        f.traceparent.base = NULL; /* invalid: fall back to B3 */
    }
    static const struct {
        const char *name;
        size_t off;
    } b3[] = {
        {"b3", offsetof(found_t, b3)},
        {"X-B3-TraceId", offsetof(found_t, trace_id)},
        {"X-B3-SpanId", offsetof(found_t, span_id)},
        {"X-B3-ParentSpanId", offsetof(found_t, parent_id)},
        {"X-B3-Sampled", offsetof(found_t, sampled)},
        {"X-B3-Flags", offsetof(found_t, flags)},
    };
    for (size_t i = 0; i < sizeof(b3) / sizeof(b3[0]); i++) {
        if (!get(arg, b3[i].name, &p, &n)) continue;
        *(weft_str_t *)((char *)&f + b3[i].off) = (weft_str_t){p ? p : "", p ? n : 0};
        if (i == 0 && weft_b3_parse(f.b3.base, f.b3.len, ctx) == 0) return 0;
    }
    return decide(&f, false, ctx);
}

/* ASCII case-insensitive comparison of a header name with a lowercase literal. */
static bool name_is(weft_str_t name, const char *lower, size_t n)
{
    if (name.len != n) return false;
    for (size_t i = 0; i < n; i++)
        if ((char)(name.base[i] | (name.base[i] >= 'A' && name.base[i] <= 'Z' ? 0x20 : 0)) !=
            lower[i])
            return false;
    return true;
}

#define NAME_IS(n, lit) name_is((n), lit, sizeof(lit) - 1)

static void first(weft_str_t *slot, weft_str_t v)
{
    if (!slot->base) *slot = (weft_str_t){v.base ? v.base : "", v.len};
}

int weft_trace_extract_headers(const weft_http_header_t *headers, size_t n,
                               weft_trace_context_t *ctx)
{
    return weft_trace_extract_headers_mask(
        headers, n, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI, ctx);
}

int weft_trace_extract_headers_mask(const weft_http_header_t *headers, size_t n, unsigned mask,
                                    weft_trace_context_t *ctx)
{
    found_t f;
    found_clear(&f);
    for (size_t i = 0; i < n; i++) {
        weft_str_t name = headers[i].name, v = headers[i].value;
        if (name.len < 2 || !name.base) continue;
        switch (name.base[0] | 0x20) {
        case 't':
            if (NAME_IS(name, "traceparent")) {
                if (f.traceparent.base) f.traceparent_twice = true;
                first(&f.traceparent, v);
            } else if (NAME_IS(name, "tracestate")) {
                if (f.ntracestate == sizeof(f.tracestate) / sizeof(f.tracestate[0]))
                    f.tracestate_overflow = true;
                else
                    f.tracestate[f.ntracestate++] = (weft_str_t){v.base ? v.base : "", v.len};
            }
            break;
        case 'b':
            if (NAME_IS(name, "b3")) first(&f.b3, v);
            break;
        case 'x':
            if (name.len < 10 || !NAME_IS(((weft_str_t){name.base, 5}), "x-b3-")) break;
            if (NAME_IS(name, "x-b3-traceid"))
                first(&f.trace_id, v);
            else if (NAME_IS(name, "x-b3-spanid"))
                first(&f.span_id, v);
            else if (NAME_IS(name, "x-b3-parentspanid"))
                first(&f.parent_id, v);
            else if (NAME_IS(name, "x-b3-sampled"))
                first(&f.sampled, v);
            else if (NAME_IS(name, "x-b3-flags"))
                first(&f.flags, v);
            break;
        }
    }
    /* Formats left out are treated as absent (found_clear zeroed them before the loop). */
    if (!(mask & WEFT_PROPAGATE_W3C)) {
        f.traceparent = (weft_str_t){0};
        f.traceparent_twice = false;
        f.ntracestate = 0;
        f.tracestate_overflow = false;
    }
    if (!(mask & WEFT_PROPAGATE_B3)) f.b3 = (weft_str_t){0};
    if (!(mask & WEFT_PROPAGATE_B3_MULTI))
        f.trace_id = f.span_id = f.parent_id = f.sampled = f.flags = (weft_str_t){0};
    return decide(&f, (mask & WEFT_PROPAGATE_B3_WINS) != 0, ctx);
}

/* ---- injection ---- */

int weft_trace_inject(const weft_trace_context_t *ctx, unsigned mask, weft_trace_setter_fn set,
                      void *arg)
{
    char buf[64];
    int err;
    bool valid = weft_trace_context_is_valid(ctx);
    if ((mask & WEFT_PROPAGATE_W3C) && valid) {
        if ((err = set(arg, "traceparent", buf, weft_traceparent_format(ctx, buf))) != 0)
            return err;
        if (ctx->tracestate_len &&
            (err = set(arg, "tracestate", ctx->tracestate, ctx->tracestate_len)) != 0)
            return err;
    }
    if (mask & WEFT_PROPAGATE_B3) {
        if ((err = set(arg, "b3", buf, weft_b3_format(ctx, buf))) != 0) return err;
    }
    if (mask & WEFT_PROPAGATE_B3_MULTI) {
        if (valid) {
            if ((err = set(arg, "X-B3-TraceId", buf, b3_trace_hex(ctx, buf))) != 0) return err;
            weft_trace_hex(ctx->span_id, 8, buf);
            if ((err = set(arg, "X-B3-SpanId", buf, 16)) != 0) return err;
        }
        if (!(valid && ctx->deferred)) {
            buf[0] = (ctx->flags & WEFT_TRACE_FLAG_SAMPLED) ? '1' : '0';
            if ((err = set(arg, "X-B3-Sampled", buf, 1)) != 0) return err;
        }
    }
    return 0;
}
