/*
 * tracestate.c - the W3C tracestate header: validation, combination, truncation, mutation.
 *
 * Grammar (W3C Trace Context, "tracestate Header Field Values"):
 *   list        = list-member 0*31( OWS "," OWS list-member )
 *   list-member = key "=" value, or empty (OWS only)
 *   key         = simple-key / multi-tenant-key
 *   simple-key  = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 *   multi-tenant-key = tenant-id "@" system-id
 *   tenant-id   = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 *   system-id   = lcalpha 0*13( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 *   value       = 0*255( %x20 / nblk-chr ) nblk-chr
 *   nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
 * (so a simple key is at most 256 bytes, a tenant id 241, a system id 14, a value 256.)
 *
 * Design: parsing is two passes without allocation. The first collects up to 32 member views
 * into the caller's input, rejecting the whole header on any invalid member, a duplicate key
 * or a 33rd member (the spec says to discard it entirely). Header lines are parsed one after
 * the other into the same collection, which is what joining them with ',' means. The second
 * pass writes the kept members, ',' separated, into the context. When they exceed
 * WEFT_TRACESTATE_MAX bytes, the spec's truncation applies: members longer than 128 bytes go
 * first, then members from the end.
 *
 * Invariant: ctx->tracestate always holds a list that this parser accepts unchanged (the fuzz
 * driver checks it), so code reading it can split on ',' and '=' without re-validating.
 * Pure functions; any thread.
 */
#include <string.h>

#include "trace/trace_int.h"

#define KEY_MAX    256
#define VALUE_MAX  256
#define BIG_MEMBER 128 /* truncation removes members longer than this first */

typedef struct member_s {
    const char *p;
    uint16_t len;  /* whole "key=value" */
    uint16_t klen; /* key */
} member_t;

typedef struct members_s {
    member_t m[WEFT_TRACESTATE_MEMBERS];
    unsigned n;
} members_t;

static bool lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}
static bool digit(char c)
{
    return c >= '0' && c <= '9';
}
static bool keychar(char c)
{
    return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

static bool valid_key(const char *k, size_t n)
{
    if (n == 0 || n > KEY_MAX) return false;
    const char *at = memchr(k, '@', n);
    if (!at) {
        if (!lcalpha(k[0])) return false;
        for (size_t i = 1; i < n; i++)
            if (!keychar(k[i])) return false;
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    if (tn == 0 || tn > 241 || sn == 0 || sn > 14) return false;
    if (!lcalpha(k[0]) && !digit(k[0])) return false;
    for (size_t i = 1; i < tn; i++)
        if (!keychar(k[i])) return false;
    if (!lcalpha(at[1])) return false;
    for (size_t i = 2; i <= sn; i++) /* a second '@' fails here: it is no keychar */
        if (!keychar(at[i])) return false;
    return true;
}

static bool valid_value(const char *v, size_t n)
{
    if (n == 0 || n > VALUE_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
    }
    return v[n - 1] != ' ';
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Adds the members of one header line to *ms. Returns 0 or WEFT_EPARSE. */
static int collect(const char *s, size_t len, members_t *ms)
{
    const char *p = s, *end = s + len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *m = p, *me = comma ? comma : end;
        while (m < me && ows(*m)) m++;
        while (me > m && ows(me[-1])) me--;
        if (me > m) {
            const char *eq = memchr(m, '=', (size_t)(me - m));
            if (!eq) return WEFT_EPARSE;
            size_t kn = (size_t)(eq - m);
            if (!valid_key(m, kn) || !valid_value(eq + 1, (size_t)(me - eq - 1)))
                return WEFT_EPARSE;
            if (ms->n == WEFT_TRACESTATE_MEMBERS) return WEFT_EPARSE;
            for (unsigned i = 0; i < ms->n; i++)
                if (ms->m[i].klen == kn && memcmp(ms->m[i].p, m, kn) == 0) return WEFT_EPARSE;
            ms->m[ms->n++] = (member_t){m, (uint16_t)(me - m), (uint16_t)kn};
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* Writes the members of *ms into ctx, truncated to WEFT_TRACESTATE_MAX bytes; keep_first
 * protects member 0 (the caller's own, in put). */
static void store(const members_t *ms, bool keep_first, weft_trace_context_t *ctx)
{
    bool keep[WEFT_TRACESTATE_MEMBERS];
    size_t sum = 0, kept = ms->n;
    for (unsigned i = 0; i < ms->n; i++) {
        keep[i] = true;
        sum += ms->m[i].len;
    }
#define SIZE() (sum + (kept ? kept - 1 : 0)) /* bytes with the ',' separators */
    unsigned first = keep_first ? 1 : 0;
    for (unsigned i = ms->n; i-- > first && SIZE() > WEFT_TRACESTATE_MAX;)
        if (ms->m[i].len > BIG_MEMBER) {
            keep[i] = false;
            sum -= ms->m[i].len;
            kept--;
        }
    for (unsigned i = ms->n; i-- > first && SIZE() > WEFT_TRACESTATE_MAX;)
        if (keep[i]) {
            keep[i] = false;
            sum -= ms->m[i].len;
            kept--;
        }
#undef SIZE
    /* Write into a local buffer first: the members may point into ctx->tracestate itself. */
    char out[WEFT_TRACESTATE_MAX];
    size_t o = 0;
    for (unsigned i = 0; i < ms->n; i++) {
        if (!keep[i]) continue;
        size_t need = ms->m[i].len + (o ? 1u : 0u);
        if (o + need > sizeof(out)) continue; /* cannot happen after the loops above */
        if (o) out[o++] = ',';
        memcpy(out + o, ms->m[i].p, ms->m[i].len);
        o += ms->m[i].len;
    }
    memcpy(ctx->tracestate, out, o);
    ctx->tracestate_len = (uint16_t)o;
}

int weft_tracestate_parse_lines(const weft_str_t *lines, size_t n, weft_trace_context_t *ctx)
{
    members_t ms;
    ms.n = 0;
    ctx->tracestate_len = 0;
    for (size_t i = 0; i < n; i++)
        if (lines[i].len && collect(lines[i].base, lines[i].len, &ms) != 0) return WEFT_EPARSE;
    store(&ms, false, ctx);
    return 0;
}

int weft_tracestate_parse(const char *s, size_t len, weft_trace_context_t *ctx)
{
    weft_str_t line = {s, len};
    return weft_tracestate_parse_lines(&line, 1, ctx);
}

int weft_tracestate_put(weft_trace_context_t *ctx, const char *key, const char *value)
{
    size_t kn = strlen(key), vn = strlen(value);
    if (!valid_key(key, kn) || !valid_value(value, vn) || kn + 1 + vn > WEFT_TRACESTATE_MAX)
        return WEFT_EINVAL;
    char mine[KEY_MAX + 1 + VALUE_MAX];
    memcpy(mine, key, kn);
    mine[kn] = '=';
    memcpy(mine + kn + 1, value, vn);
    members_t old, ms;
    old.n = 0;
    /* The stored list is valid by the invariant; should it not be, start afresh. */
    if (collect(ctx->tracestate, ctx->tracestate_len, &old) != 0) old.n = 0;
    ms.m[0] = (member_t){mine, (uint16_t)(kn + 1 + vn), (uint16_t)kn};
    ms.n = 1;
    for (unsigned i = 0; i < old.n && ms.n < WEFT_TRACESTATE_MEMBERS; i++)
        if (!(old.m[i].klen == kn && memcmp(old.m[i].p, key, kn) == 0)) ms.m[ms.n++] = old.m[i];
    store(&ms, true, ctx);
    return 0;
}

bool weft__tracestate_find(const char *ts, size_t tslen, const char *key, size_t klen,
                           weft_str_t *value)
{
    const char *p = ts, *end = ts + tslen;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *me = comma ? comma : end;
        if ((size_t)(me - p) > klen && p[klen] == '=' && memcmp(p, key, klen) == 0) {
            value->base = p + klen + 1;
            value->len = (size_t)(me - p) - klen - 1;
            return true;
        }
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool weft_tracestate_get(const weft_trace_context_t *ctx, const char *key, weft_str_t *value)
{
    return weft__tracestate_find(ctx->tracestate, ctx->tracestate_len, key, strlen(key), value);
}
