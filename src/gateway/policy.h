/*
 * policy.h - a route's resilience state in the gateway (internal): its rate limiter, its
 * circuit breaker, the state it keeps per upstream instance (a breaker each, active
 * requests against the concurrency limits) and its ring hash, built from the route's
 * configuration with the route table, and shared by every worker (see policy.c).
 */
#ifndef WEFT_GATEWAY_POLICY_H
#define WEFT_GATEWAY_POLICY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>

#include "core/snapshot.h"
#include "weft/balance.h"
#include "weft/breaker.h"
#include "weft/metrics.h"
#include "weft/ratelimit.h"

struct gw_route_s;

#define GW_INST_MAX     1024   /* instances a route keeps state for */
#define GW_INST_IDLE_MS 300000 /* one unused this long may give its place to a new one */

/* The last transitions of a route's breakers (its own and its instances'), for the admin API:
 * "every transition with its reason" beside the counters and the log. */
#define GW_TRANSITIONS_KEPT 64
#define GW_TRANSITION_DETAIL 112 /* bytes of a transition's reason in words, its NUL included */

typedef struct gw_transition_s {
    uint64_t unix_ms;   /* when (wall clock) */
    char upstream[72];  /* "HOST:PORT" of an instance's breaker; "" for the route's own */
    uint8_t from, to;   /* weft_breaker_state_t */
    uint8_t reason;     /* weft_breaker_reason_t */
    /* the reason with its numbers: "failure rate 0.62 >= 0.50 over 21 requests" */
    char detail[GW_TRANSITION_DETAIL];
} gw_transition_t;

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
    /* read without mu: the state as of the last transition, and whether a success recorded
     * now would change nothing (closed, no failure in a row, no rate rule): then allow and
     * a success's record skip the mutex (policy.c) */
    _Atomic int fast_state;
    atomic_bool quiet;
    weft_gauge_t *state_gauge;
    weft_metrics_family_t *fam_transitions;
    atomic_ullong rl_rejected, rl_shadow, breaker_rejected;
    weft_counter_t *rl_rejected_c, *breaker_rejected_c;
    /* per upstream instance: kept when the route has a breaker or limits */
    bool track;
    weft_snap_cell_t insts;      /* the index of the instances' state (policy.c) */
    pthread_mutex_t ins_mu;      /* adding and evicting instances (rare) */
    _Atomic uint64_t full_until; /* the index was full of busy instances: no retry before */
    weft_metrics_family_t *fam_state;
    /* ring hash: a service's ring, per version of its instances in the catalog (a snapshot
     * object); the static targets' ring is the route's (route.h) */
    weft_snap_cell_t ring_cache;
    /* the last GW_TRANSITIONS_KEPT transitions, oldest overwritten first (under hist_mu:
     * taken inside a breaker's mutex, or alone by the admin API) */
    pthread_mutex_t hist_mu;
    gw_transition_t hist[GW_TRANSITIONS_KEPT];
    uint64_t nhist; /* transitions ever seen: hist[(nhist - 1) % KEPT] is the newest */
} gw_policy_t;

/* Copies p's kept transitions, oldest first, into out[0..cap); returns how many (0 for NULL).
 * *seen (may be NULL): transitions p has seen since it was made (so those not kept are
 * *seen minus GW_TRANSITIONS_KEPT, when more). */
size_t gw_policy_transitions(gw_policy_t *p, gw_transition_t *out, size_t cap, uint64_t *seen);

/* A breaker's state as the history's sampler reads it (gw_policy_sample). */
typedef struct gw_breaker_sample_s {
    weft_breaker_state_t state; /* as of its last transition (an atomic: exact) */
    bool stats;                 /* the fields below were read (else its mutex was busy) */
    bool rate_rule;             /* the breaker has a failure-rate rule: failure_rate means it */
    double failure_rate;        /* 0..1, its window's failures over its calls */
    uint64_t window_calls;
    uint64_t ms_until_half_open; /* 0 unless OPEN */
} gw_breaker_sample_t;

/* Calls fn for the route's own breaker (upstream "") and for every instance with a breaker
 * that p keeps, in no order (nothing when p is NULL). Never waits: a breaker's mutex is
 * tried once (pthread_mutex_trylock), and when a request holds it, only the state (an
 * atomic) is filled in and stats is false. Any thread registered with
 * weft_snap_thread_register, holding the route's table. now_ms: the loop clock. */
void gw_policy_sample(gw_policy_t *p, uint64_t now_ms,
                      void (*fn)(const char *upstream, const gw_breaker_sample_t *s, void *arg),
                      void *arg);

typedef struct gw_policy_metrics_s {
    weft_metrics_family_t *state;       /* weft_breaker_state{route,upstream} */
    weft_metrics_family_t *transitions; /* weft_breaker_transitions_total{route,upstream,from,
                                           to,reason}; upstream "" for the route's own */
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
/* Breaker: an admitted request that was not sent after all, or whose end says nothing about
 * the upstream (the client left): instead of gw_policy_record. */
void gw_policy_release(gw_policy_t *p, uint64_t now_ms);

/* ---- upstream instances ---- */

/* An upstream the route may send to: a static target, or a passing instance of its service
 * (the strings are the route's, or the catalog snapshot's while its read section lasts). */
typedef struct gw_endpoint_s {
    const char *host;
    uint16_t port;
    unsigned weight;
} gw_endpoint_t;

typedef struct gw_inst_s gw_inst_t;

typedef enum gw_admit_e {
    GW_ADMIT_OK = 0,   /* go: counted active, admitted by its breaker; gw_inst_done once */
    GW_ADMIT_OPEN = 1, /* its breaker refused: open, or half-open with its trials out */
    GW_ADMIT_FULL = 2, /* it has max_requests active requests already */
} gw_admit_t;

/* The state of host:port on p's route: found, or made at first sight (the only time this
 * allocates). NULL when p is NULL or keeps none (no breaker and no limits), or when it keeps
 * GW_INST_MAX instances all used within GW_INST_IDLE_MS (then this one goes without a
 * breaker or limits of its own, and a warning is logged). Inside a read section: the
 * pointer is valid until it closes. now_ms: the loop clock (uv_now). */
gw_inst_t *gw_policy_instance(gw_policy_t *p, const char *host, uint16_t port, uint64_t now_ms);

/* May a try go to i now? OK: it holds i (valid beyond the read section) until gw_inst_done.
 * OPEN: *wait_ms until the breaker half-opens (0: half-open with every trial out). FULL: at
 * max_requests. Lock-free unless the breaker is open or half-open. */
gw_admit_t gw_inst_admit(gw_inst_t *i, uint64_t now_ms, uint64_t *wait_ms);

/* An admitted try ended: result 1 success, 0 failure (counted by its breaker, duration_ms
 * its latency), -1 nothing learnt (not sent, or the client left). Drops the hold. Returns
 * true when i's breaker is open after it (this failure, or an earlier one, took i out). */
bool gw_inst_done(gw_inst_t *i, uint64_t now_ms, int result, uint64_t duration_ms);

/* "host:port" of i. */
const char *gw_inst_id(const gw_inst_t *i);

/* What the admin API shows of one upstream instance of a route. */
typedef struct gw_upstream_state_s {
    bool kept;    /* the route keeps state for it (else only the limits are filled in) */
    bool breaker; /* the route has a breaker: state and stats are its instance breaker's */
    weft_breaker_state_t state; /* CLOSED without a breaker */
    weft_breaker_stats_t stats; /* zero without a breaker */
    unsigned active;            /* tries in flight to it, every worker's */
    uint64_t last_used_ms;      /* loop clock of its last pick (to the second) */
    /* the route's limits per instance (0: none; max_pending also 0 when pending_set is
     * false): max_connections and max_pending hold per worker as ceil(value / workers) */
    uint64_t max_connections, max_pending, max_requests;
    bool pending_set;
} gw_upstream_state_t;

/* The state of host:port on route policy p (may be NULL: a route without any policy) at
 * now_ms (uv_now of the caller's loop; the same monotonic clock as the workers'). Returns 0,
 * or WEFT_ENOENT when p keeps nothing for it (never picked, evicted, or the route keeps no
 * instance state): *out then has kept false, state CLOSED, active 0 and the limits. Any
 * thread registered with weft_snap_thread_register, holding the route's table (a reference
 * or a read section). */
int gw_policy_upstream(gw_policy_t *p, const char *host, uint16_t port, uint64_t now_ms,
                       gw_upstream_state_t *out);

/* Calls fn for every instance p keeps state for (none when p is NULL), in no order; fn
 * must not call back into p. Same threads as gw_policy_upstream. */
void gw_policy_foreach_upstream(gw_policy_t *p, uint64_t now_ms,
                                void (*fn)(const char *host, uint16_t port,
                                           const gw_upstream_state_t *st, void *arg),
                                void *arg);

/* ---- ring hash ---- */

/* A ring over e[0..n) (ids "host:port", weight points each: 100 per unit of weight, fewer
 * when the total would pass 2^20). Returns 0 and *out, or a WEFT_E* code. */
int gw_ring_build(const gw_endpoint_t *e, size_t n, weft_ring_t **out);

/* A service's ring for version (its catalog index) over n endpoints: the one cached, or
 * NULL when the cache holds another version. Inside a read section, valid until it ends. */
const weft_ring_t *gw_policy_ring_get(gw_policy_t *p, uint64_t version, size_t n);
/* Caches ring (taken over, also on failure) as the service's for version and returns it
 * (valid until the read section ends), or NULL when out of memory. */
const weft_ring_t *gw_policy_ring_put(gw_policy_t *p, uint64_t version, size_t n,
                                      weft_ring_t *ring);

#endif
