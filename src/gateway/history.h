/*
 * history.h - the gateway's metric history (internal): the last 15 minutes of each route's
 * and each upstream's numbers at one sample a second, in fixed memory, for the dashboard
 * (GET /v1/weft/history, docs/gateway.md "History"), so that it needs no Prometheus.
 *
 * history.c is the ring itself, a pure data structure on the caller's clock (unit-tested
 * on a fake one); history_sample.c is the sampler that feeds it every second from the
 * gateway's metric families and breakers, and the API that reads it.
 */
#ifndef WEFT_GATEWAY_HISTORY_H
#define WEFT_GATEWAY_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "weft/metrics.h"

#define GW_HIST_SAMPLES     900 /* 15 minutes at one sample a second */
#define GW_HIST_NB          (WEFT_METRICS_MAX_BOUNDS + 1) /* latency buckets, +Inf included */
#define GW_HIST_ROUTE_MAX   128 /* bytes of a route's name kept (a longer one is cut) */
#define GW_HIST_UP_MAX      72  /* bytes of "host:port" kept */
#define GW_HIST_MAX_KEYS    4096 /* the most routes, and upstreams, a history may track */

/* A route's series, in this order in its slot and in the API. */
enum {
    GW_HR_REQ = 0,   /* requests answered per second */
    GW_HR_ERR,       /* of them, the share answered 5xx (the upstream's or the gateway's own
                        502/503/504: proxy errors, timeouts, breaker open, no upstream) */
    GW_HR_P50,       /* latency quantiles over that second, ms (null: no request) */
    GW_HR_P95,
    GW_HR_P99,
    GW_HR_RL,        /* rate-limit rejections per second (429; shadow ones not counted) */
    GW_HR_RETRY,     /* retries started per second */
    GW_HR_BUDGET,    /* retries the retry budget refused per second */
    GW_HR_N
};

/* An upstream's: a breaker ("" for the route's own) on a route, or an instance with traffic. */
enum {
    GW_HU_STATE = 0, /* breaker state: 0 closed, 1 open, 2 half-open; null: no breaker */
    GW_HU_FAIL,      /* the breaker's failure rate over its window, 0..1 (null: unknown) */
    GW_HU_HALF,      /* ms until the breaker half-opens (0 unless open) */
    GW_HU_REQ,       /* requests answered per second with this upstream */
    GW_HU_ERR,       /* of them, the share answered 5xx */
    GW_HU_N
};

/* Counters (cumulative, as read now) indexes in a slot's cum[]. */
enum {
    GW_HC_REQ = 0,
    GW_HC_ERR,
    GW_HC_RL,
    GW_HC_RETRY,
    GW_HC_BUDGET,
    GW_HC_N
};

/* One tracked key. The sampler fills cum[] (and buckets[], gauge[]) between gw_hist_begin
 * and gw_hist_commit; everything else is the ring's. */
typedef struct gw_hist_slot_s {
    char route[GW_HIST_ROUTE_MAX];
    char upstream[GW_HIST_UP_MAX]; /* upstreams: "host:port", "" for the route's breaker */
    double cum[GW_HC_N];           /* this tick's cumulative counters (the sampler adds) */
    uint64_t buckets[GW_HIST_NB];  /* routes: this tick's cumulative latency buckets */
    double gauge[3];               /* upstreams: state, failure rate, ms to half-open (NaN:
                                      not known this tick) */
    /* the ring's */
    bool used, seen, listed, has_prev;
    bool fresh; /* taken this sample for a key that cannot have counted before the last */
    double prev[GW_HC_N];
    uint64_t prev_buckets[GW_HIST_NB];
    uint64_t last_active; /* the sample number when it last moved or was listed */
    float *series;        /* nseries x samples, column-aligned with the ring's times */
} gw_hist_slot_t;

typedef struct gw_hist_s gw_hist_t;

typedef struct gw_hist_options_s {
    size_t samples;       /* columns kept; 0: GW_HIST_SAMPLES */
    size_t max_routes;    /* routes tracked at once (1..GW_HIST_MAX_KEYS) */
    size_t max_upstreams; /* upstreams tracked at once (1..GW_HIST_MAX_KEYS) */
    const double *bounds; /* the latency histogram's upper bounds, seconds (+Inf implied) */
    size_t nbounds;       /* at most WEFT_METRICS_MAX_BOUNDS */
} gw_hist_options_t;

/* A history with every slot free and no sample. Returns 0 and *out, WEFT_EINVAL (a bound
 * out of range) or WEFT_ENOMEM. Every byte it will ever use is allocated here. */
int gw_hist_new(const gw_hist_options_t *o, gw_hist_t **out);
void gw_hist_free(gw_hist_t *h);
/* The bytes h holds (fixed for its life). */
size_t gw_hist_bytes(const gw_hist_t *h);

/* A sample begins: every slot's counters are zeroed for the sampler to add into. */
void gw_hist_begin(gw_hist_t *h);
/* The slot of route (upstream NULL) or of route's upstream for this sample, taken at first
 * sight: a free slot, else the one idle longest if it has been idle (neither listed nor
 * moving) for a whole ring; else NULL, and the key is counted as left out of this sample.
 * listed: the key is in the gateway's table now (a route, a breaker), so it stays while it
 * is, moving or not. */
gw_hist_slot_t *gw_hist_key(gw_hist_t *h, const char *route, const char *upstream, bool listed);
/* The sample is complete at unix_ms (wall clock; one not later than the last is taken as
 * the last + 1, so times strictly increase) and mono_ms (a monotonic clock: rates are per
 * second of its time since the last sample): each seen slot's
 * column gets the rates from its counters' change since the last sample (the first time:
 * from 0 when every counter is 0, or when the key is new since the last sample as far as
 * the history can tell (it has left out or evicted no key of its pool yet); else null), the
 * quantiles from its buckets' change; a slot not seen gets nulls. budget_*: the gateway's
 * retry budget now (retries in flight, and its limit). */
void gw_hist_commit(gw_hist_t *h, uint64_t unix_ms, uint64_t mono_ms, double budget_active,
                    double budget_limit);

/* The q-quantile (0..1) of observations spread over buckets (non-cumulative counts, nbounds
 * + 1 of them, the last +Inf) by linear interpolation inside the bucket the rank falls in
 * (Prometheus's histogram_quantile), in the bounds' unit; the largest finite bound when it
 * falls in +Inf; NaN when there is no observation. */
double gw_hist_quantile(double q, const double *bounds, size_t nbounds, const uint64_t *buckets);

/* Writes the samples taken after since_ms (unix ms) as JSON into b (docs/gateway.md
 * "History"): upstreams false for the routes' series, true for the upstreams'; route: only
 * that route's keys (NULL: all). */
void gw_hist_json(const gw_hist_t *h, bool upstreams, uint64_t since_ms, const char *route,
                  weft_buf_t *b);

/* Samples taken (ever), keys left out of the last sample. */
uint64_t gw_hist_samples(const gw_hist_t *h);
size_t gw_hist_left_out(const gw_hist_t *h, bool upstreams);

#endif
