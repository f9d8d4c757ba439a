/*
 * retry.c - the retry budget and full-jitter backoff (weft/breaker.h).
 *
 * Retry budget. Retries multiply load exactly when an upstream is least able to take it; a
 * budget (Finagle's and Envoy's idea) caps the retries in flight at ratio percent of the
 * original requests in flight, with a floor of min_retries so that a quiet client can still
 * retry. The counters are C11 atomics so a budget can be shared by the workers that call one
 * upstream. try_retry is a compare-and-swap loop on the retries-in-flight counter: a retry
 * is counted in flight only if, at that instant, the count was below the limit computed
 * from the requests in flight, so concurrent callers can never together exceed the limit
 * as it stood when each of them succeeded. (The requests counter may move meanwhile: a
 * budget follows load, it is not a lock.)
 *
 * Backoff. AWS's "full jitter": sleep = random in [0, min(cap, base * 2^attempt)]. The
 * exponent is clamped so the shift cannot overflow; the random value is the caller's.
 *
 * Threads: any, for the budget; backoff is a pure function.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "core/errbuf.h"
#include "weft/breaker.h"

struct weft_retry_budget_s {
    unsigned ratio, min_retries;
    _Atomic uint64_t requests, retries_active;
    _Atomic uint64_t retries, exhausted;
};

void weft_retry_budget_options_init(weft_retry_budget_options_t *o)
{
    *o = (weft_retry_budget_options_t){.ratio = 20, .min_retries = 3};
}

int weft_retry_budget_new(const weft_retry_budget_options_t *o, weft_retry_budget_t **out,
                          char *err, size_t errlen)
{
    weft_retry_budget_options_t def;
    if (!o) {
        weft_retry_budget_options_init(&def);
        o = &def;
    }
    if (o->ratio > 1000)
        return weft__errf(err, errlen, WEFT_EINVAL, "retry_budget: ratio %u is above 1000 percent",
                          o->ratio);
    weft_retry_budget_t *rb = calloc(1, sizeof(*rb));
    if (!rb) return weft__errf(err, errlen, WEFT_ENOMEM, "retry_budget: out of memory");
    rb->ratio = o->ratio;
    rb->min_retries = o->min_retries;
    *out = rb;
    return 0;
}

void weft_retry_budget_free(weft_retry_budget_t *rb)
{
    free(rb);
}

void weft_retry_budget_request_start(weft_retry_budget_t *rb)
{
    atomic_fetch_add_explicit(&rb->requests, 1, memory_order_relaxed);
}

/* Decrements c unless it is 0 (an unmatched end is a caller's bug, but must not wrap). */
static void dec(_Atomic uint64_t *c)
{
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
    while (v && !atomic_compare_exchange_weak_explicit(c, &v, v - 1, memory_order_relaxed,
                                                       memory_order_relaxed)) {
    }
}

void weft_retry_budget_request_end(weft_retry_budget_t *rb)
{
    dec(&rb->requests);
}

int weft_retry_budget_try_retry(weft_retry_budget_t *rb)
{
    uint64_t r = atomic_load_explicit(&rb->retries_active, memory_order_relaxed);
    for (;;) {
        uint64_t req = atomic_load_explicit(&rb->requests, memory_order_relaxed);
        uint64_t limit = req * rb->ratio / 100;
        if (limit < rb->min_retries) limit = rb->min_retries;
        if (r >= limit) {
            atomic_fetch_add_explicit(&rb->exhausted, 1, memory_order_relaxed);
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(&rb->retries_active, &r, r + 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    atomic_fetch_add_explicit(&rb->retries, 1, memory_order_relaxed);
    return 1;
}

void weft_retry_budget_retry_end(weft_retry_budget_t *rb)
{
    dec(&rb->retries_active);
}

void weft_retry_budget_stats(const weft_retry_budget_t *rb, weft_retry_budget_stats_t *st)
{
    weft_retry_budget_t *m = (weft_retry_budget_t *)rb; /* atomic loads take non-const */
    st->requests_active = atomic_load_explicit(&m->requests, memory_order_relaxed);
    st->retries_active = atomic_load_explicit(&m->retries_active, memory_order_relaxed);
    st->retries = atomic_load_explicit(&m->retries, memory_order_relaxed);
    st->exhausted = atomic_load_explicit(&m->exhausted, memory_order_relaxed);
}

uint64_t weft_backoff_full_jitter(uint64_t base_ms, uint64_t cap_ms, unsigned attempt, uint64_t rnd)
{
    uint64_t ceil = cap_ms;
    if (base_ms == 0)
        ceil = 0;
    else if (attempt < 64 && base_ms <= (cap_ms >> attempt))
        ceil = base_ms << attempt; /* base * 2^attempt <= cap */
    if (ceil == UINT64_MAX) return rnd;
    return rnd % (ceil + 1); /* [0, ceil]; modulo bias is at most ceil / 2^64 */
}
