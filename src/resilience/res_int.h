/*
 * res_int.h - what the resilience module's files share (internal): the hash, and the two
 * rate limiters' step functions on one atomic word, used by a single limiter
 * (ratelimit.c) and by the keyed table (rltable.c) alike.
 */
#ifndef WEFT_RESILIENCE_INT_H
#define WEFT_RESILIENCE_INT_H

#include <stdatomic.h>

#include "weft/ratelimit.h"

/* XXH3, 64 bits (hash.c). Any value, 0 included: a caller that reserves 0 maps it. */
uint64_t weft__res_hash(const void *p, size_t len);
uint64_t weft__res_hash_seed(const void *p, size_t len, uint64_t seed);

/* A limiter's parameters, derived once from weft_ratelimit_options_t. */
typedef struct rl_params_s {
    weft_ratelimit_kind_t kind;
    uint64_t t_ns;   /* TOKEN_BUCKET: emission interval, 1e9 / rate rounded */
    uint64_t tau_ns; /* TOKEN_BUCKET: burst * t_ns */
    uint64_t burst;
    uint64_t limit;     /* SLIDING_WINDOW */
    uint64_t window_ms; /* SLIDING_WINDOW */
} rl_params_t;

/* Checks o and fills *p: 0 or WEFT_EINVAL with a message in err. */
int weft__rl_params(const weft_ratelimit_options_t *o, rl_params_t *p, char *err, size_t errlen);

/* One call at now_ms against the limiter whose state is *state (0 is a fresh limiter):
 * 1 admitted, 0 denied; *res filled when not NULL. Lock-free (a CAS loop). */
int weft__rl_take(const rl_params_t *p, _Atomic uint64_t *state, uint64_t now_ms,
                  weft_ratelimit_result_t *res);

/* How long the limiter in state has been back to full at now_ms, in the kind's own unit
 * (larger is longer); 0 when it is not full (its key must keep its slot). */
uint64_t weft__rl_idle_age(const rl_params_t *p, uint64_t state, uint64_t now_ms);

/* The two kinds' versions of the above (gcra.c, window.c). */
int weft__gcra_take(const rl_params_t *p, _Atomic uint64_t *state, uint64_t now_ms,
                    weft_ratelimit_result_t *res);
uint64_t weft__gcra_idle_age(const rl_params_t *p, uint64_t state, uint64_t now_ms);
int weft__window_take(const rl_params_t *p, _Atomic uint64_t *state, uint64_t now_ms,
                      weft_ratelimit_result_t *res);
uint64_t weft__window_idle_age(const rl_params_t *p, uint64_t state, uint64_t now_ms);

/* The result for a call admitted or denied without a limiter (the keyed table when full). */
void weft__rl_unlimited(const rl_params_t *p, int allowed, weft_ratelimit_result_t *res);

#endif
