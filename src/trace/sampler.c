/*
 * sampler.c - OpenTelemetry's built-in samplers: AlwaysOn, AlwaysOff, TraceIdRatioBased and
 * ParentBased, as small values rather than objects.
 *
 * TraceIdRatioBased uses the consistent-probability rule of the current OpenTelemetry
 * specification (which builds on W3C Trace Context Level 2's 56 random bits): the randomness
 * R is the trace id's rightmost 7 bytes, or an explicit `rv` sub-key of the `ot` tracestate
 * member when the parent carries one; the rejection threshold is T = 2^56 - round(p * 2^56);
 * a trace is sampled when R >= T. So p = 1 gives T = 0 (all), p = 0 gives T = 2^56 (none,
 * since R < 2^56), every service with the same p decides the same for a trace, and any trace
 * sampled at p is sampled at every p' > p. weft's own trace ids come from a uniform generator,
 * so the 56 bits are random as the rule presumes.
 *
 * ParentBased uses the specification's default delegates: a parent (remote or local) that
 * is sampled gives AlwaysOn, one that is not gives AlwaysOff; no parent gives the root
 * sampler. A B3 parent that deferred its decision counts as no decision: the root sampler
 * decides on the parent's trace id.
 *
 * RateLimiting (Jaeger's "ratelimiting"): at most r new traces a second, decided by a token
 * bucket rather than by the trace id, so downstream services must follow the decision
 * (parent-based). The bucket is GCRA on one 64-bit theoretical arrival time (tat): a start
 * at now is allowed when tat <= now + tolerance, and then moves tat to max(tat, now) +
 * interval; a compare-and-swap publishes the move, so threads share the bucket without a
 * lock and a refused start writes nothing. The tolerance, (burst - 1) intervals with burst
 * = max(1, r), lets one second's worth through at once after a quiet spell, as Jaeger's
 * bucket (balance up to max(r, 1)).
 *
 * Pure functions, except a rate-limiting decision (an atomic on its bucket); any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/errbuf.h"
#include "trace/trace_int.h"

#define TWO56 (1ull << 56)

weft_sampler_t weft_sampler_always_on(void)
{
    return (weft_sampler_t){.root = WEFT_SAMPLER_ALWAYS_ON, .ratio = 1};
}

weft_sampler_t weft_sampler_always_off(void)
{
    return (weft_sampler_t){.root = WEFT_SAMPLER_ALWAYS_OFF, .ratio = 0};
}

weft_sampler_t weft_sampler_ratio(double ratio)
{
    if (!(ratio >= 0)) ratio = 0; /* NaN too */
    if (ratio > 1) ratio = 1;
    return (weft_sampler_t){.root = WEFT_SAMPLER_RATIO, .ratio = ratio};
}

void weft_trace_rate_init(weft_trace_rate_t *b, double per_second)
{
    memset(b, 0, sizeof(*b));
    if (!(per_second > 0)) return; /* NaN too: interval 0, never a token */
    if (per_second > 1e9) per_second = 1e9;
    double iv = 1e9 / per_second;
    b->interval_ns = iv >= 1 ? (uint64_t)llround(iv) : 1;
    double burst = per_second < 1 ? 1 : floor(per_second);
    b->tolerance_ns = (uint64_t)((burst - 1) * (double)b->interval_ns);
    /* tat 0: full at any now >= 0 */
}

bool weft_trace_rate_take(weft_trace_rate_t *b, uint64_t now_ns)
{
    if (!b->interval_ns) return false;
    uint64_t tat = __atomic_load_n(&b->tat_ns, __ATOMIC_RELAXED);
    for (;;) {
        if (tat > now_ns + b->tolerance_ns) return false;
        uint64_t next = (tat > now_ns ? tat : now_ns) + b->interval_ns;
        if (__atomic_compare_exchange_n(&b->tat_ns, &tat, next, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return true;
        /* tat now holds the value another thread wrote: decide again on it */
    }
}

weft_sampler_t weft_sampler_rate_limiting(double per_second)
{
    if (!(per_second >= 0)) per_second = 0;
    return (weft_sampler_t){.root = WEFT_SAMPLER_RATE_LIMITING, .ratio = 1, .rate = per_second};
}

weft_sampler_t weft_sampler_parent_based(weft_sampler_t root)
{
    root.parent_based = true;
    return root;
}

/* The rejection threshold for ratio p, in [0, 2^56]. */
static uint64_t threshold(double p)
{
    if (!(p > 0)) return TWO56;
    if (p >= 1) return 0;
    /* p * 2^56 is exact in a double up to its 53-bit mantissa; round to the nearest. */
    uint64_t accept = (uint64_t)llround(ldexp(p, 56));
    return accept >= TWO56 ? 0 : TWO56 - accept;
}

/* An explicit randomness value: tracestate "ot=...;rv:<14 hex>;...". */
static bool explicit_rv(const weft_trace_context_t *parent, uint64_t *rv)
{
    weft_str_t ot;
    if (!parent || !parent->tracestate_len ||
        !weft__tracestate_find(parent->tracestate, parent->tracestate_len, "ot", 2, &ot))
        return false;
    const char *p = ot.base, *end = ot.base + ot.len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        if (e - p == 17 && p[0] == 'r' && p[1] == 'v' && p[2] == ':') {
            uint8_t b[8] = {0};
            char hex[16] = {'0', '0'};
            memcpy(hex + 2, p + 3, 14);
            if (weft__trace_unhex(hex, 16, b) != 0) return false;
            uint64_t v = 0;
            for (int i = 0; i < 8; i++) v = v << 8 | b[i];
            *rv = v;
            return true;
        }
        p = semi ? semi + 1 : end;
    }
    return false;
}

static bool ratio_sample(double p, const weft_trace_context_t *parent, const uint8_t tid[16])
{
    uint64_t t = threshold(p);
    if (t == 0) return true;
    if (t >= TWO56) return false;
    uint64_t r;
    if (!explicit_rv(parent, &r)) {
        r = 0;
        for (int i = 9; i < 16; i++) r = r << 8 | tid[i];
    }
    return r >= t;
}

bool weft_sampler_should_sample(const weft_sampler_t *s, const weft_trace_context_t *parent,
                                const uint8_t trace_id[16])
{
    if (s->parent_based && parent && !parent->deferred)
        return (parent->flags & WEFT_TRACE_FLAG_SAMPLED) != 0;
    switch (s->root) {
    case WEFT_SAMPLER_ALWAYS_ON:
        return true;
    case WEFT_SAMPLER_ALWAYS_OFF:
        return false;
    case WEFT_SAMPLER_RATIO:
        return ratio_sample(s->ratio, parent, trace_id);
    case WEFT_SAMPLER_RATE_LIMITING:
        return s->limiter && ratio_sample(s->ratio, parent, trace_id) &&
               weft_trace_rate_take(s->limiter, weft_now_ns());
    }
    return false;
}

/* ------------------------------------------------------------------------------------ */
/* OTEL_TRACES_SAMPLER                                                                  */

static int env_fail(char *err, size_t errlen, const char *var, const char *val, const char *why)
{
    return weft__errf(err, errlen, WEFT_EINVAL, "%s: %s, got \"%.64s\"", var, why, val);
}

int weft_sampler_from_env(weft_sampler_t *s, char *err, size_t errlen)
{
    static const char SAMPLER[] = "OTEL_TRACES_SAMPLER", ARG[] = "OTEL_TRACES_SAMPLER_ARG";
    const char *name = getenv(SAMPLER);
    if (!name || !name[0]) return 0;
    bool parent = strncmp(name, "parentbased_", 12) == 0;
    const char *root = parent ? name + 12 : name;
    weft_sampler_t r;
    if (strcmp(root, "always_on") == 0) {
        r = weft_sampler_always_on();
    } else if (strcmp(root, "always_off") == 0) {
        r = weft_sampler_always_off();
    } else if (strcmp(root, "traceidratio") == 0) {
        double ratio = 1.0; /* the specification's default */
        const char *arg = getenv(ARG);
        if (arg && arg[0]) {
            char *end;
            errno = 0;
            ratio = strtod(arg, &end);
            /* a plain decimal only: no hex floats, inf or nan, nothing after it */
            bool plain = strspn(arg, "0123456789.eE+-") == strlen(arg);
            if (!plain || *end || errno || !(ratio >= 0 && ratio <= 1))
                return env_fail(err, errlen, ARG, arg, "expected a number from 0 to 1");
        }
        r = weft_sampler_ratio(ratio);
    } else {
        return env_fail(err, errlen, SAMPLER, name,
                        "expected always_on, always_off, traceidratio, parentbased_always_on, "
                        "parentbased_always_off or parentbased_traceidratio");
    }
    *s = parent ? weft_sampler_parent_based(r) : r;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* OTEL_PROPAGATORS                                                                     */

int weft_propagators_from_env(unsigned *mask, char *err, size_t errlen)
{
    static const char VAR[] = "OTEL_PROPAGATORS";
    static const struct {
        const char *name;
        unsigned bits;
    } known[] = {{"tracecontext", WEFT_PROPAGATE_W3C},
                 {"b3", WEFT_PROPAGATE_B3},
                 {"b3multi", WEFT_PROPAGATE_B3_MULTI},
                 {"baggage", 0},
                 {"none", 0}};
    const char *v = getenv(VAR);
    if (!v || !v[0]) return 0;
    unsigned m = 0, last = 0; /* last: the last of the trace context formats listed */
    for (const char *p = v, *end; *p; p = *end ? end + 1 : end) {
        end = p + strcspn(p, ",");
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (a == b) continue; /* an empty member */
        size_t i = 0, n = sizeof(known) / sizeof(known[0]);
        while (i < n && !(strlen(known[i].name) == (size_t)(b - a) &&
                          memcmp(known[i].name, a, (size_t)(b - a)) == 0))
            i++;
        if (i == n)
            return env_fail(err, errlen, VAR, v,
                            "expected a list of tracecontext, baggage, b3, b3multi or none");
        m |= known[i].bits;
        if (known[i].bits) last = known[i].bits;
    }
    if ((m & WEFT_PROPAGATE_W3C) && last != WEFT_PROPAGATE_W3C) m |= WEFT_PROPAGATE_B3_WINS;
    *mask = m;
    return 1;
}
