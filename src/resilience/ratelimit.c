/*
 * ratelimit.c - one rate limiter (weft/ratelimit.h): its options, the parameters derived
 * from them, and the dispatch to the token bucket (gcra.c) or the sliding window
 * (window.c). A limiter is one atomic 64-bit word and its parameters; the keyed table
 * (rltable.c) holds millions of the same words and calls the same step functions.
 *
 * Threads: any (the state is updated by compare-and-swap; the parameters are read-only).
 */
#include <math.h>
#include <stdlib.h>

#include "core/errbuf.h"
#include "resilience/res_int.h"

struct weft_ratelimit_s {
    rl_params_t p;
    _Atomic uint64_t state;
};

void weft_ratelimit_options_init(weft_ratelimit_options_t *o)
{
    *o = (weft_ratelimit_options_t){
        .kind = WEFT_RATELIMIT_TOKEN_BUCKET,
        .rate = 100,
        .burst = 100,
        .limit = 100,
        .window_ms = 1000,
    };
}

int weft__rl_params(const weft_ratelimit_options_t *o, rl_params_t *p, char *err, size_t errlen)
{
    *p = (rl_params_t){.kind = o->kind};
    switch (o->kind) {
    case WEFT_RATELIMIT_TOKEN_BUCKET:
        /* written so that NaN fails too */
        if (!(o->rate >= 1e-6 && o->rate <= 1e9))
            return weft__errf(err, errlen, WEFT_EINVAL,
                              "ratelimit: rate %g is not within 1e-6..1e9 per second", o->rate);
        if (o->burst == 0)
            return weft__errf(err, errlen, WEFT_EINVAL, "ratelimit: burst must be >= 1");
        p->t_ns = (uint64_t)llround(1e9 / o->rate);
        if (o->burst > (UINT64_MAX / 4) / p->t_ns)
            return weft__errf(err, errlen, WEFT_EINVAL,
                              "ratelimit: burst %llu is too large for rate %g",
                              (unsigned long long)o->burst, o->rate);
        p->burst = o->burst;
        p->tau_ns = o->burst * p->t_ns;
        return 0;
    case WEFT_RATELIMIT_SLIDING_WINDOW:
        if (o->limit == 0 || o->limit > WEFT_RATELIMIT_WINDOW_MAX)
            return weft__errf(err, errlen, WEFT_EINVAL, "ratelimit: limit %u is not within 1..%u",
                              o->limit, WEFT_RATELIMIT_WINDOW_MAX);
        if (o->window_ms == 0 || o->window_ms > (1ull << 40))
            return weft__errf(err, errlen, WEFT_EINVAL,
                              "ratelimit: window_ms %llu is not within 1..2^40",
                              (unsigned long long)o->window_ms);
        p->limit = o->limit;
        p->window_ms = o->window_ms;
        return 0;
    }
    return weft__errf(err, errlen, WEFT_EINVAL, "ratelimit: unknown kind %d", (int)o->kind);
}

int weft_ratelimit_options_check(const weft_ratelimit_options_t *o, char *err, size_t errlen)
{
    rl_params_t p;
    return weft__rl_params(o, &p, err, errlen);
}

int weft__rl_take(const rl_params_t *p, _Atomic uint64_t *state, uint64_t now_ms,
                  weft_ratelimit_result_t *res)
{
    if (p->kind == WEFT_RATELIMIT_TOKEN_BUCKET) return weft__gcra_take(p, state, now_ms, res);
    return weft__window_take(p, state, now_ms, res);
}

uint64_t weft__rl_idle_age(const rl_params_t *p, uint64_t state, uint64_t now_ms)
{
    if (p->kind == WEFT_RATELIMIT_TOKEN_BUCKET) return weft__gcra_idle_age(p, state, now_ms);
    return weft__window_idle_age(p, state, now_ms);
}

void weft__rl_unlimited(const rl_params_t *p, int allowed, weft_ratelimit_result_t *res)
{
    int tb = p->kind == WEFT_RATELIMIT_TOKEN_BUCKET;
    uint64_t retry = tb ? (p->t_ns + 999999) / 1000000 : p->window_ms;
    *res = (weft_ratelimit_result_t){
        .allowed = allowed,
        .limit = tb ? p->burst : p->limit,
        .remaining = 0,
        .reset_s = 0,
        .retry_after_ms = allowed ? 0 : retry,
    };
}

int weft_ratelimit_new(const weft_ratelimit_options_t *o, weft_ratelimit_t **out, char *err,
                       size_t errlen)
{
    weft_ratelimit_options_t def;
    if (!o) {
        weft_ratelimit_options_init(&def);
        o = &def;
    }
    rl_params_t p;
    int rc = weft__rl_params(o, &p, err, errlen);
    if (rc) return rc;
    weft_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (!rl) return weft__errf(err, errlen, WEFT_ENOMEM, "ratelimit: out of memory");
    rl->p = p;
    atomic_init(&rl->state, 0);
    *out = rl;
    return 0;
}

void weft_ratelimit_free(weft_ratelimit_t *rl)
{
    free(rl);
}

int weft_ratelimit_take(weft_ratelimit_t *rl, uint64_t now_ms, weft_ratelimit_result_t *res)
{
    return weft__rl_take(&rl->p, &rl->state, now_ms, res);
}
