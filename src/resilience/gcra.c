/*
 * gcra.c - the token bucket as GCRA (the generic cell rate algorithm of ATM networks, as
 * used by redis-cell and Stripe): a whole bucket in one 64-bit word.
 *
 * A bucket of `burst` tokens refilled at `rate` per second is equivalent to remembering one
 * time, the theoretical arrival time (TAT): when the bucket would be full again if no call
 * came. With T = 1e9 / rate ns (the emission interval) and tau = burst * T, a call at time
 * now is admitted when max(TAT, now) + T - now <= tau, and then TAT becomes
 * max(TAT, now) + T. From a full bucket (TAT <= now) that admits exactly burst calls at one
 * instant, then one every T: burst + floor(elapsed / T) in all, never more.
 *
 * The word is TAT in nanoseconds of the caller's clock (now_ms * 1e6; 2^64 ns is 584 years
 * of uptime); 0 is a full bucket. It is updated by compare-and-swap, so any number of
 * threads share a bucket exactly, with no lock: a CAS that loses re-reads and decides
 * again. Relaxed ordering suffices: the word is the whole state and publishes nothing else.
 *
 * T is rounded to the nearest nanosecond (1/3 per second: T = 333333333 ns); the rate is
 * exact to that rounding.
 *
 * Threads: any.
 */
#include "resilience/res_int.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S  1000000000ull

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

int weft__gcra_take(const rl_params_t *p, _Atomic uint64_t *state, uint64_t now_ms,
                    weft_ratelimit_result_t *res)
{
    uint64_t now = now_ms * NS_PER_MS;
    uint64_t old = atomic_load_explicit(state, memory_order_relaxed);
    uint64_t tat, next;
    for (;;) {
        tat = old > now ? old : now;
        next = tat + p->t_ns;
        if (next - now > p->tau_ns) {
            if (res)
                *res = (weft_ratelimit_result_t){
                    .allowed = 0,
                    .limit = p->burst,
                    .remaining = 0,
                    .reset_s = ceil_div(tat - now, NS_PER_S),
                    .retry_after_ms = ceil_div(next - now - p->tau_ns, NS_PER_MS),
                };
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(state, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    if (res)
        *res = (weft_ratelimit_result_t){
            .allowed = 1,
            .limit = p->burst,
            .remaining = (p->tau_ns - (next - now)) / p->t_ns,
            .reset_s = ceil_div(next - now, NS_PER_S),
            .retry_after_ms = 0,
        };
    return 1;
}

uint64_t weft__gcra_idle_age(const rl_params_t *p, uint64_t state, uint64_t now_ms)
{
    uint64_t now = now_ms * NS_PER_MS;
    return state <= now ? now - state + 1 : 0;
}
