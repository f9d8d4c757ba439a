/*
 * route.h - the gateway's route table (internal): what a request is matched against, in
 * order, and where a matched request goes.
 *
 * A table is immutable once built and published as a snapshot (core/snapshot.h): the
 * workers match against the one they read, and a reload publishes a new one, so a request
 * in flight keeps the route it matched (it holds a reference to its table).
 */
#ifndef WEFT_GATEWAY_ROUTE_H
#define WEFT_GATEWAY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/http.h"
#include "weft/trace.h"

#define GW_MAX_ROUTES  1024
#define GW_MAX_TARGETS 256
#define GW_MAX_METHODS 16
#define GW_MAX_HEADERS 16
#define GW_HOST_MAX    255

typedef enum gw_match_kind_e {
    GW_MATCH_PREFIX = 0,  /* path starts with it, at a segment boundary ("/api" matches
                             "/api", "/api/", "/api/x", not "/apix") */
    GW_MATCH_EXACT = 1,   /* path equals it */
    GW_MATCH_PATTERN = 2, /* segments: literals, ":name" (one whole segment), a last "*" */
} gw_match_kind_t;

typedef enum gw_lb_e {
    GW_LB_ROUND_ROBIN = 0,
    GW_LB_LEAST_REQUEST = 1,
    GW_LB_RANDOM = 2,
    GW_LB_RING_HASH = 3, /* consistent hashing on hash_on (policy.h keeps the ring) */
} gw_lb_t;

typedef enum gw_hash_on_e { GW_HASH_CLIENT_IP = 0, GW_HASH_HEADER = 1 } gw_hash_on_t;

typedef struct gw_target_s {
    char host[GW_HOST_MAX + 1]; /* numeric address or a name (looked up per connection) */
    uint16_t port;
    unsigned weight; /* >= 1 */
} gw_target_t;

typedef struct gw_header_match_s {
    char *name;
    char *value; /* NULL: the header must be present, any value */
} gw_header_match_t;

/* retry.on, as bits */
enum {
    GW_RETRY_CONNECT = 1 << 0, /* connect-failure: refused, unreachable, connect timeout */
    GW_RETRY_RESET = 1 << 1,   /* reset: the connection broke before the response head */
    GW_RETRY_TIMEOUT = 1 << 2, /* timeout: per_try_timeout passed before the head */
    GW_RETRY_5XX = 1 << 3,     /* any 5xx */
};
#define GW_RETRY_MAX_STATUSES 8

typedef struct gw_retry_conf_s {
    unsigned attempts; /* retries after the first try; 0: none */
    unsigned on;       /* GW_RETRY_* */
    uint16_t statuses[GW_RETRY_MAX_STATUSES];
    unsigned nstatuses;
    uint64_t per_try_timeout_ms; /* 0: the route's timeout only */
    bool any_method;             /* also methods that are not idempotent */
} gw_retry_conf_t;

typedef enum gw_rl_algo_e { GW_RL_TOKEN_BUCKET = 0, GW_RL_SLIDING_WINDOW = 1 } gw_rl_algo_t;
typedef enum gw_rl_key_e {
    GW_RL_KEY_CLIENT_IP = 0,
    GW_RL_KEY_HEADER = 1,
    GW_RL_KEY_ROUTE = 2,
    GW_RL_KEY_GLOBAL = 3,
} gw_rl_key_t;

typedef struct gw_ratelimit_conf_s {
    bool on;
    gw_rl_algo_t algorithm;
    double rate;        /* token bucket: per second */
    uint64_t burst;     /* token bucket */
    uint64_t limit;     /* sliding window: requests per window */
    uint64_t window_ms; /* sliding window */
    gw_rl_key_t key;
    char *key_header; /* GW_RL_KEY_HEADER */
    bool shadow;      /* count what would be rejected, reject nothing */
    uint64_t max_keys; /* keys held at once (16 bytes each; one whose limit has passed is
                          reused); client_ip and header keys only */
} gw_ratelimit_conf_t;

/* circuit_breaker.scope: the route's own breaker (every instance's failures together), one
 * per upstream instance (Envoy's outlier detection), or both (the default) */
typedef enum gw_breaker_scope_e {
    GW_BREAKER_BOTH = 0,
    GW_BREAKER_ROUTE = 1,
    GW_BREAKER_INSTANCE = 2,
} gw_breaker_scope_t;

typedef struct gw_breaker_conf_s {
    bool on;
    uint64_t consecutive_failures; /* 0: off */
    double failure_rate;           /* percent; 0: off */
    uint64_t slow_call_ms;
    double slow_call_rate; /* percent; 0: off */
    uint64_t window_ms, min_requests, open_for_ms, open_for_max_ms, half_open_requests;
    gw_breaker_scope_t scope; /* which breakers these settings make */
    /* failure_on: what a breaker counts as a failure (GW_RETRY_* bits and statuses, as
     * retry.on); default connect-failure, reset, timeout, 5xx */
    unsigned fail_on;
    uint16_t fail_statuses[GW_RETRY_MAX_STATUSES];
    unsigned nfail_statuses;
} gw_breaker_conf_t;

/* c's failure_on bits: none set and no status (a conf made in code) means the default. */
static inline unsigned gw_breaker_fail_on(const gw_breaker_conf_t *c)
{
    return c->fail_on || c->nfail_statuses
               ? c->fail_on
               : GW_RETRY_CONNECT | GW_RETRY_RESET | GW_RETRY_TIMEOUT | GW_RETRY_5XX;
}

/* Concurrency limits per upstream instance (circuit_breaker's max_* keys, Envoy's
 * thresholds); 0: none of the gateway's own (the HTTP client's bounds still hold). */
typedef struct gw_limits_conf_s {
    bool on;
    uint64_t max_connections; /* open connections, across workers: ceil(max / workers) each */
    uint64_t max_pending;     /* requests waiting for a connection, the same way per worker */
    bool pending_set;         /* max_pending given (0 then means: no waiting at all) */
    uint64_t max_requests;    /* active requests, exact across workers */
} gw_limits_conf_t;

/* tracing: the route's own sampling (observe.c). A route without it leaves the head
 * decision to the tracer (tracing.sample_ratio, tracing.sample_rate) and keeps nothing by
 * tail. */
typedef struct gw_trace_conf_s {
    bool on;                  /* the route has a tracing block */
    bool ratio_set, rate_set; /* given on the route; else the global tracing.* value */
    double ratio;             /* head: the share of new traces sampled */
    double rate;              /* head: at most this many new traces a second; 0: no cap */
    bool keep_errors;         /* tail: keep a dropped trace's span when the request failed */
    uint64_t keep_slower_ms;  /* tail: ... or took longer than this; 0: not by latency */
    weft_trace_rate_t bucket; /* the rate's tokens, shared by the workers (atomics); the
                                 table is immutable but for this */
} gw_trace_conf_t;

typedef struct gw_route_s {
    char *name;
    gw_match_kind_t kind;
    char *path; /* prefix, exact path or pattern */
    size_t path_len;
    char *host; /* the request's host must be this (no port, any case); NULL: any */
    char *methods[GW_MAX_METHODS];
    unsigned nmethods; /* 0: any method */
    gw_header_match_t headers[GW_MAX_HEADERS];
    unsigned nheaders;
    bool strip_prefix; /* PREFIX: the prefix is taken off the path sent upstream */
    char *rewrite;     /* the path sent upstream instead (after a strip); NULL: none */
    uint64_t timeout_ms;
    /* where it goes: a registry service (its passing instances), or static targets */
    char *service;
    gw_target_t *targets;
    unsigned ntargets;
    gw_lb_t lb;
    gw_hash_on_t hash_on;     /* GW_LB_RING_HASH: the key */
    char *hash_header;        /* GW_HASH_HEADER: its name */
    struct weft_ring_s *ring; /* GW_LB_RING_HASH over targets: built by gw_table_new */
    /* policies, as configured (the resilience module enforces them) */
    gw_retry_conf_t retry;
    gw_ratelimit_conf_t rate_limit;
    gw_breaker_conf_t breaker;
    bool ws_off;         /* websocket.enabled: false: upgrade requests are proxied as plain
                            requests (the Upgrade headers dropped) */
    uint64_t ws_idle_ms; /* websocket.idle_timeout: a tunnel with no byte either way */
    gw_limits_conf_t limits;
    gw_trace_conf_t trace;
    struct gw_policy_s *policy; /* their state (policy.h); NULL: none */
} gw_route_t;

typedef struct gw_table_s {
    gw_route_t *routes;
    size_t n;
    /* Requests in flight per worker and route: worker w's count of routes[i] is
     * active[w * active_stride + i], written and read only by worker w (proxy.c counts, the
     * admin API reads it there); NULL: not counted. Freed with the table. */
    uint32_t *active;
    size_t active_stride;
} gw_table_t;

/* The first route of t that req matches (path, host, method, headers), or NULL. */
const gw_route_t *gw_table_match(const gw_table_t *t, const weft_http_request_t *req);

/* The path to send upstream for req on route r into out[0..cap) (with the query), or -1
 * when it does not fit. */
int gw_upstream_target(const gw_route_t *r, const weft_http_request_t *req, char *out, size_t cap);
/* The bytes gw_upstream_target needs for req on r, its NUL included. */
size_t gw_upstream_target_size(const gw_route_t *r, const weft_http_request_t *req);

/* Frees what the route owns (not the route itself). */
void gw_route_clear(gw_route_t *r);

/* A new table owning routes[0..n) (moved in), with the ring of each ring_hash route over
 * static targets built; NULL when out of memory (routes are cleared then). A snapshot
 * object: released with weft_snap_release. */
gw_table_t *gw_table_new(gw_route_t *routes, size_t n);

#endif
