/*
 * policy.h - a route's resilience state in the gateway (internal): its rate limiter and its
 * circuit breaker, built from the route's configuration with the route table, and shared by
 * every worker (see policy.c).
 */
#ifndef WEFT_GATEWAY_POLICY_H
#define WEFT_GATEWAY_POLICY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>

#include "weft/breaker.h"
#include "weft/metrics.h"
#include "weft/ratelimit.h"

struct gw_route_s;

typedef struct gw_policy_s {
    /* The policy's own copy of its route's name and policy settings (rate_limit, breaker;
     * nothing else is set): a reload that keeps a route's state hands the policy to the new
     * table, so it outlives the route it was built from. */
    const struct gw_route_s *route;
    atomic_uint refs;           /* the route tables that hold it (gw_policy_ref, gw_policy_free) */
    weft_ratelimit_table_t *rl; /* NULL: no rate limit */
    pthread_mutex_t mu;         /* the breaker is one thread's object: workers take turns */
    weft_breaker_t *breaker;    /* NULL: no breaker */
    weft_breaker_state_t state; /* as of the last transition (for metrics, under mu) */
    weft_gauge_t *state_gauge;
    weft_metrics_family_t *fam_transitions;
    atomic_ullong rl_rejected, rl_shadow, breaker_rejected;
    weft_counter_t *rl_rejected_c, *breaker_rejected_c;
} gw_policy_t;

typedef struct gw_policy_metrics_s {
    weft_metrics_family_t *state;       /* weft_breaker_state{route} */
    weft_metrics_family_t *transitions; /* weft_breaker_transitions_total{route,from,to,reason} */
    weft_metrics_family_t *rl_rejected; /* weft_ratelimit_rejected_total{route,shadow} */
    weft_metrics_family_t *br_rejected; /* weft_breaker_rejected_total{route} */
} gw_policy_metrics_t;

/* The state of route r (its config in r->rate_limit and r->breaker); NULL when it has no
 * policy. One reference, the caller's. Returns 0, or WEFT_ENOMEM / WEFT_EINVAL with err. */
int gw_policy_new(const struct gw_route_s *r, const gw_policy_metrics_t *m, gw_policy_t **out,
                  char *err, size_t errlen);
/* One more reference on p (a reload's new table keeping an unchanged route's state); p. */
gw_policy_t *gw_policy_ref(gw_policy_t *p);
/* Drops one reference (NULL: nothing); the last frees. Any thread. */
void gw_policy_free(gw_policy_t *p);
/* Would a and b's policy settings build the same state (rate_limit and circuit_breaker)?
 * A reload keeps a route's state when its name and these are unchanged. */
bool gw_policy_conf_equal(const struct gw_route_s *a, const struct gw_route_s *b);

/* Rate limit: 1 admitted (or shadow), 0 rejected, with *res for the headers. key: the
 * route's key of the request (client address, header value...). */
int gw_policy_limit(gw_policy_t *p, const char *key, size_t len, uint64_t now_ms,
                    weft_ratelimit_result_t *res);

/* Breaker: 1 may go (then gw_policy_record once), 0 refused: *wait_ms until half-open, *open
 * whether it is OPEN (else HALF_OPEN with its trials out). */
int gw_policy_allow(gw_policy_t *p, uint64_t now_ms, uint64_t *wait_ms, bool *open);
void gw_policy_record(gw_policy_t *p, uint64_t now_ms, bool ok, uint64_t duration_ms);

#endif
