/*
 * history.c - the ring of the gateway's metric history (see history.h).
 *
 * Design. A ring of `samples` columns (one a second: 900, fifteen minutes), each with its
 * wall-clock time, and two fixed pools of slots, one for routes and one for upstreams. A
 * slot is one key (a route; or a route's upstream: an instance "host:port", or "" for the
 * route's own breaker) and holds one float per series per column, so a slot's memory is
 * nseries x samples x 4 bytes whatever it holds, and all of it is allocated by gw_hist_new:
 * the whole history is bounded by max_routes and max_upstreams (gw_hist_bytes says how
 * much). The sampler hands in cumulative counters (the metric families' values, which only
 * grow) and the ring keeps the last ones, so a column holds what happened during that
 * second: counter deltas divided by the time between the samples, and latency quantiles
 * from the histogram buckets' deltas (gw_hist_quantile: Prometheus's histogram_quantile).
 *
 * Keys come and go: a slot is taken at a key's first sight, and given to a new key only
 * once its own key has been idle (neither listed in the gateway's table nor moving) for a
 * whole ring, so that its columns say nothing any more. With no slot to give, the key is
 * left out of the sample and counted (the API's "left_out"), never silently dropped. Keys
 * are found through an open-addressing index of slot numbers (at most half full), rebuilt
 * when a slot changes hands.
 *
 * A column a key has no number for is NaN, written as null. Floats: the series are for
 * charts, and 7 digits are plenty.
 *
 * Invariants: 0 <= nused <= max per pool; a used slot is in the index exactly once; times
 * strictly increase along the ring.
 *
 * Threads: none of its own. The caller serializes (history_sample.c: a mutex between the
 * control loop's sampler and the API's readers).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_write.h"
#include "gateway/history.h"
#include "weft/common.h"

struct gw_hist_s {
    size_t cap;             /* columns */
    uint64_t n;             /* samples committed, ever */
    uint64_t *times;        /* unix ms per column */
    float *budget;          /* 2 x cap: retries in flight, the budget's limit */
    double bounds[WEFT_METRICS_MAX_BOUNDS];
    size_t nbounds;
    uint64_t last_ms;       /* the last sample's time */
    uint64_t last_mono;     /* ... on the monotonic clock */
    gw_hist_slot_t *slots;  /* max_routes route slots, then max_upstreams upstream slots */
    size_t max[2];          /* per pool: 0 routes, 1 upstreams */
    size_t left_out[2];     /* keys left out of the last sample, per pool */
    size_t left_now[2];     /* ... of the sample under way */
    /* per pool: no key was ever evicted or left out, so a key seen for the first time after
     * the first sample is new since the last one (its metric child was made since): its
     * counts are that second's */
    bool exact[2];
    uint32_t *index;        /* slot number + 1, 0: empty */
    size_t index_mask;
    float *store;           /* every slot's series, one block */
    size_t bytes;
};

static size_t nseries(int pool)
{
    return pool ? GW_HU_N : GW_HR_N;
}

static gw_hist_slot_t *pool_slots(gw_hist_t *h, int pool)
{
    return pool ? h->slots + h->max[0] : h->slots;
}

/* Over the bytes a slot keeps of each name (a longer name is cut, and found by its cut). */
static uint64_t key_hash(const char *route, const char *up)
{
    uint64_t x = 1469598103934665603ull ^ (up ? 0x5bd1e995u : 0);
    size_t n = 0;
    for (const char *c = route; *c && n < GW_HIST_ROUTE_MAX - 1; c++, n++)
        x = (x ^ (unsigned char)*c) * 1099511628211ull;
    x = (x ^ 0xff) * 1099511628211ull;
    n = 0;
    for (const char *c = up ? up : ""; *c && n < GW_HIST_UP_MAX - 1; c++, n++)
        x = (x ^ (unsigned char)*c) * 1099511628211ull;
    return x ^ (x >> 31);
}

/* The names as the slot keeps them (cut to its arrays). */
static void key_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static bool key_eq(const gw_hist_slot_t *s, const char *route, const char *up)
{
    return strncmp(s->route, route, GW_HIST_ROUTE_MAX - 1) == 0 &&
           strncmp(s->upstream, up ? up : "", GW_HIST_UP_MAX - 1) == 0;
}

static void index_put(gw_hist_t *h, size_t slot)
{
    gw_hist_slot_t *s = &h->slots[slot];
    bool up = slot >= h->max[0];
    size_t k = key_hash(s->route, up ? s->upstream : NULL) & h->index_mask;
    while (h->index[k]) k = (k + 1) & h->index_mask;
    h->index[k] = (uint32_t)slot + 1;
}

static void index_rebuild(gw_hist_t *h)
{
    memset(h->index, 0, (h->index_mask + 1) * sizeof(*h->index));
    for (size_t i = 0; i < h->max[0] + h->max[1]; i++)
        if (h->slots[i].used) index_put(h, i);
}

int gw_hist_new(const gw_hist_options_t *o, gw_hist_t **out)
{
    *out = NULL;
    size_t cap = o->samples ? o->samples : GW_HIST_SAMPLES;
    if (o->max_routes == 0 || o->max_routes > GW_HIST_MAX_KEYS || o->max_upstreams == 0 ||
        o->max_upstreams > GW_HIST_MAX_KEYS || o->nbounds > WEFT_METRICS_MAX_BOUNDS ||
        cap > 86400)
        return WEFT_EINVAL;
    gw_hist_t *h = calloc(1, sizeof(*h));
    if (!h) return WEFT_ENOMEM;
    h->cap = cap;
    h->exact[0] = h->exact[1] = true;
    h->max[0] = o->max_routes;
    h->max[1] = o->max_upstreams;
    h->nbounds = o->nbounds;
    if (o->nbounds) memcpy(h->bounds, o->bounds, o->nbounds * sizeof(double));
    size_t nslots = h->max[0] + h->max[1], isize = 8;
    while (isize < 2 * nslots) isize *= 2;
    size_t floats = (h->max[0] * GW_HR_N + h->max[1] * GW_HU_N) * cap;
    h->times = calloc(cap, sizeof(*h->times));
    h->budget = calloc(2 * cap, sizeof(*h->budget));
    h->slots = calloc(nslots, sizeof(*h->slots));
    h->index = calloc(isize, sizeof(*h->index));
    h->store = malloc(floats * sizeof(float));
    if (!h->times || !h->budget || !h->slots || !h->index || !h->store) {
        gw_hist_free(h);
        return WEFT_ENOMEM;
    }
    h->index_mask = isize - 1;
    float *f = h->store;
    for (size_t i = 0; i < nslots; i++) {
        h->slots[i].series = f;
        f += nseries(i >= h->max[0]) * cap;
    }
    h->bytes = sizeof(*h) + cap * sizeof(*h->times) + 2 * cap * sizeof(*h->budget) +
               nslots * sizeof(*h->slots) + isize * sizeof(*h->index) + floats * sizeof(float);
    *out = h;
    return 0;
}

void gw_hist_free(gw_hist_t *h)
{
    if (!h) return;
    free(h->times);
    free(h->budget);
    free(h->slots);
    free(h->index);
    free(h->store);
    free(h);
}

size_t gw_hist_bytes(const gw_hist_t *h)
{
    return h->bytes;
}

uint64_t gw_hist_samples(const gw_hist_t *h)
{
    return h->n;
}

size_t gw_hist_left_out(const gw_hist_t *h, bool upstreams)
{
    return h->left_out[upstreams ? 1 : 0];
}

void gw_hist_begin(gw_hist_t *h)
{
    for (size_t i = 0; i < h->max[0] + h->max[1]; i++) {
        gw_hist_slot_t *s = &h->slots[i];
        if (!s->used) continue;
        s->seen = s->listed = false;
        memset(s->cum, 0, sizeof(s->cum));
        memset(s->buckets, 0, sizeof(s->buckets));
        for (int g = 0; g < 3; g++) s->gauge[g] = NAN;
    }
    h->left_now[0] = h->left_now[1] = 0;
}

/* A slot for a new key in pool: a free one, else the one idle longest if idle for a ring. */
static gw_hist_slot_t *take_slot(gw_hist_t *h, int pool)
{
    gw_hist_slot_t *base = pool_slots(h, pool), *victim = NULL;
    for (size_t i = 0; i < h->max[pool]; i++) {
        gw_hist_slot_t *s = &base[i];
        if (!s->used) return s;
        if (!s->seen && h->n - s->last_active >= h->cap &&
            (!victim || s->last_active < victim->last_active))
            victim = s;
    }
    if (victim) {
        victim->used = false;
        h->exact[pool] = false; /* it may come back with counts from before */
        index_rebuild(h);
    }
    return victim;
}

gw_hist_slot_t *gw_hist_key(gw_hist_t *h, const char *route, const char *upstream, bool listed)
{
    int pool = upstream ? 1 : 0;
    size_t k = key_hash(route, upstream) & h->index_mask;
    gw_hist_slot_t *s = NULL;
    for (; h->index[k]; k = (k + 1) & h->index_mask) {
        gw_hist_slot_t *c = &h->slots[h->index[k] - 1];
        if ((c >= h->slots + h->max[0]) == (pool == 1) && key_eq(c, route, upstream)) {
            s = c;
            break;
        }
    }
    if (!s) {
        if (!(s = take_slot(h, pool))) {
            h->left_now[pool]++;
            h->exact[pool] = false;
            return NULL;
        }
        bool fresh = h->n > 0 && h->exact[pool];
        float *series = s->series;
        memset(s, 0, sizeof(*s));
        s->series = series;
        for (size_t j = 0; j < nseries(pool) * h->cap; j++) series[j] = NAN;
        key_copy(s->route, sizeof(s->route), route);
        key_copy(s->upstream, sizeof(s->upstream), upstream ? upstream : "");
        for (int g = 0; g < 3; g++) s->gauge[g] = NAN;
        s->used = true;
        s->fresh = fresh;
        s->last_active = h->n;
        index_put(h, (size_t)(s - h->slots));
    }
    s->seen = true;
    s->listed |= listed;
    return s;
}

double gw_hist_quantile(double q, const double *bounds, size_t nbounds, const uint64_t *buckets)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= nbounds; i++) total += buckets[i];
    if (total == 0) return NAN;
    double rank = q * (double)total, below = 0;
    for (size_t i = 0; i <= nbounds; i++) {
        double c = (double)buckets[i];
        if (c > 0 && below + c >= rank) {
            if (i == nbounds) return nbounds ? bounds[nbounds - 1] : NAN;
            double lo = i ? bounds[i - 1] : 0, hi = bounds[i];
            /* a lowest bucket with a positive bound starts at 0 (latencies) */
            double f = (rank - below) / c;
            if (f < 0) f = 0;
            return lo + (hi - lo) * f;
        }
        below += c;
    }
    return nbounds ? bounds[nbounds - 1] : NAN;
}

/* Fills s's column col from its counters (pool 0: a route). */
static void column(gw_hist_t *h, gw_hist_slot_t *s, int pool, size_t col, double secs)
{
    float *v = s->series;
    size_t cap = h->cap, ns = nseries(pool);
    for (size_t j = 0; j < ns; j++) v[j * cap + col] = NAN;
    if (!s->seen) return;
    if (pool) {
        for (int g = 0; g < 3; g++) v[(size_t)(GW_HU_STATE + g) * cap + col] = (float)s->gauge[g];
    }
    bool zero = true, back = false;
    for (int c = 0; c < GW_HC_N; c++) {
        zero &= s->cum[c] == 0;
        back |= s->has_prev && s->cum[c] < s->prev[c];
    }
    for (size_t b = 0; b <= h->nbounds; b++) {
        zero &= s->buckets[b] == 0;
        back |= s->has_prev && s->buckets[b] < s->prev_buckets[b];
    }
    bool moved = false;
    if ((s->has_prev || zero || s->fresh) && !back) {
        double d[GW_HC_N];
        uint64_t db[GW_HIST_NB];
        for (int c = 0; c < GW_HC_N; c++) {
            d[c] = s->cum[c] - (s->has_prev ? s->prev[c] : 0);
            moved |= d[c] != 0;
        }
        for (size_t b = 0; b <= h->nbounds; b++) {
            db[b] = s->buckets[b] - (s->has_prev ? s->prev_buckets[b] : 0);
            moved |= db[b] != 0;
        }
        double req = d[GW_HC_REQ];
        float err = req > 0 ? (float)(d[GW_HC_ERR] / req) : NAN;
        if (pool) {
            v[GW_HU_REQ * cap + col] = (float)(req / secs);
            v[GW_HU_ERR * cap + col] = err;
        } else {
            v[GW_HR_REQ * cap + col] = (float)(req / secs);
            v[GW_HR_ERR * cap + col] = err;
            v[GW_HR_RL * cap + col] = (float)(d[GW_HC_RL] / secs);
            v[GW_HR_RETRY * cap + col] = (float)(d[GW_HC_RETRY] / secs);
            v[GW_HR_BUDGET * cap + col] = (float)(d[GW_HC_BUDGET] / secs);
            static const double qs[3] = {0.5, 0.95, 0.99};
            for (int k = 0; k < 3; k++)
                v[(size_t)(GW_HR_P50 + k) * cap + col] =
                    (float)(gw_hist_quantile(qs[k], h->bounds, h->nbounds, db) * 1000);
        }
    } else if (!s->has_prev) {
        moved = true; /* first sight with counts: active now */
    }
    memcpy(s->prev, s->cum, sizeof(s->prev));
    memcpy(s->prev_buckets, s->buckets, sizeof(s->prev_buckets));
    s->has_prev = true;
    s->fresh = false;
    if (moved || s->listed) s->last_active = h->n;
}

void gw_hist_commit(gw_hist_t *h, uint64_t unix_ms, uint64_t mono_ms, double budget_active,
                    double budget_limit)
{
    if (h->n && unix_ms <= h->last_ms) unix_ms = h->last_ms + 1; /* times strictly increase */
    /* rates per second of the time that passed, on the monotonic clock (a late timer does
     * not inflate them, a step of the wall clock does not either) */
    double secs = h->n && mono_ms > h->last_mono ? (double)(mono_ms - h->last_mono) / 1000.0 : 1.0;
    size_t col = (size_t)(h->n % h->cap);
    h->times[col] = unix_ms;
    h->budget[col] = (float)budget_active;
    h->budget[h->cap + col] = (float)budget_limit;
    for (size_t i = 0; i < h->max[0] + h->max[1]; i++) {
        gw_hist_slot_t *s = &h->slots[i];
        if (s->used) column(h, s, i >= h->max[0], col, secs);
    }
    h->left_out[0] = h->left_now[0];
    h->left_out[1] = h->left_now[1];
    h->last_ms = unix_ms;
    h->last_mono = mono_ms;
    h->n++;
}

/* ---- JSON ---- */

static void put_num(weft_buf_t *b, float f)
{
    double v = f;
    if (isnan(v) || isinf(v)) {
        weft_buf_puts(b, "null");
        return;
    }
    char s[32];
    int n = v == (double)(long long)v && fabs(v) < 1e15 ? snprintf(s, sizeof(s), "%lld", (long long)v)
                                                        : snprintf(s, sizeof(s), "%.4g", v);
    weft_buf_put(b, s, n > 0 ? (size_t)n : 0);
}

/* [,]"name":[the count values from column first on] */
static void put_series(weft_buf_t *b, bool comma, const char *name, const float *v, size_t cap,
                       size_t first, size_t count)
{
    if (comma) weft_buf_putc(b, ',');
    weft_json_put_key(b, name);
    weft_buf_putc(b, '[');
    for (size_t k = 0; k < count; k++) {
        if (k) weft_buf_putc(b, ',');
        put_num(b, v[(first + k) % cap]);
    }
    weft_buf_putc(b, ']');
}

void gw_hist_json(const gw_hist_t *ch, bool upstreams, uint64_t since_ms, const char *route,
                  weft_buf_t *b)
{
    gw_hist_t *h = (gw_hist_t *)ch;
    size_t avail = h->n < h->cap ? (size_t)h->n : h->cap;
    size_t first = (size_t)((h->n - avail) % h->cap), skip = 0;
    while (skip < avail && h->times[(first + skip) % h->cap] <= since_ms) skip++;
    first = (first + skip) % h->cap;
    size_t count = avail - skip;
    int pool = upstreams ? 1 : 0;
    weft_buf_puts(b, "{\"series\":");
    weft_buf_puts(b, upstreams ? "\"upstreams\"" : "\"routes\"");
    weft_buf_puts(b, ",\"interval_ms\":1000,\"samples_max\":");
    weft_buf_put_u64(b, h->cap);
    weft_buf_puts(b, ",\"now_ms\":");
    weft_buf_put_u64(b, h->n ? h->last_ms : 0);
    weft_buf_puts(b, ",\"limit\":");
    weft_buf_put_u64(b, h->max[pool]);
    weft_buf_puts(b, ",\"left_out\":");
    weft_buf_put_u64(b, h->left_out[pool]);
    weft_buf_puts(b, ",\"memory_bytes\":");
    weft_buf_put_u64(b, h->bytes);
    weft_buf_puts(b, ",\"times\":[");
    for (size_t k = 0; k < count; k++) {
        if (k) weft_buf_putc(b, ',');
        weft_buf_put_u64(b, h->times[(first + k) % h->cap]);
    }
    weft_buf_putc(b, ']');
    if (!upstreams) {
        weft_buf_puts(b, ",\"retry_budget\":{");
        put_series(b, false, "retries_active", h->budget, h->cap, first, count);
        put_series(b, true, "limit", h->budget + h->cap, h->cap, first, count);
        weft_buf_putc(b, '}');
    }
    static const char *const rnames[GW_HR_N] = {
        "requests_per_s", "error_ratio",   "p50_ms", "p95_ms", "p99_ms", "rate_limited_per_s",
        "retries_per_s",  "retry_budget_exhausted_per_s"};
    static const char *const unames[GW_HU_N] = {"state", "failure_rate", "ms_until_half_open",
                                                "requests_per_s", "error_ratio"};
    weft_buf_puts(b, upstreams ? ",\"upstreams\":[" : ",\"routes\":[");
    gw_hist_slot_t *base = pool_slots(h, pool);
    bool any = false;
    for (size_t i = 0; i < h->max[pool]; i++) {
        const gw_hist_slot_t *s = &base[i];
        if (!s->used || (route && strcmp(s->route, route) != 0)) continue;
        weft_buf_puts(b, any ? ",{" : "{");
        any = true;
        weft_json_put_key(b, "route");
        weft_json_put_str(b, s->route, strlen(s->route));
        if (upstreams) {
            weft_buf_putc(b, ',');
            weft_json_put_key(b, "upstream");
            weft_json_put_str(b, s->upstream, strlen(s->upstream));
        }
        size_t ns = nseries(pool);
        for (size_t j = 0; j < ns; j++)
            put_series(b, true, upstreams ? unames[j] : rnames[j], s->series + j * h->cap, h->cap,
                       first, count);
        weft_buf_putc(b, '}');
    }
    weft_buf_puts(b, "]}\n");
}
