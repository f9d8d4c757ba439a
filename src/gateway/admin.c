/*
 * admin.c - the gateway's admin API on the API port (the server of /v1/agent/...,
 * /v1/catalog/...): what the gateway does now, and reloading its routes.
 *
 *   GET  /v1/gateway/routes     the route table in match order: each route's match, where
 *                               it sends (service or targets, balancer), timeout, retry,
 *                               rate_limit and circuit_breaker as configured (durations as
 *                               text and in ms), and its breaker's and limiter's state now
 *   GET  /v1/gateway/upstreams  per route: its instances (static targets, or every instance
 *                               of its registry service with its health), its breaker, its
 *                               requests in flight, and per instance the upstream client's
 *                               connections (open, idle, busy, queued) summed over the
 *                               workers and per worker
 *   POST /v1/gateway/reload     reads the configuration file again and publishes its routes
 *                               (gateway.c); 200 with what was kept, changed, added and
 *                               removed, or 400 with the error's FILE:LINE:COLUMN: KEY:
 *                               reason while the routes in force keep serving
 *
 * Reads answer on the worker that received them, from the route table's snapshot and the
 * catalog's, inside read sections. Breakers are read under their mutex (a few dozen
 * instructions, as a request's allow). What is the workers' own and read nowhere else, each
 * worker's connection pools and its count of requests in flight per route, is collected by
 * asking every worker (weft_host_post): each copies its numbers into its slot of a
 * collection, the last to answer hands it back to the request's worker, which writes the
 * answer. Nothing on the request path is locked or shared for it. The collection is
 * reference-counted (the request's hold, one per post not yet run) so that it outlives
 * whichever side ends last; the request waits at most ADMIN_WAIT_MS for the workers (503
 * past that) and answers at once when the server shuts down.
 *
 * A reload is a write: when acl.token is set, it must carry it (X-Consul-Token,
 * Authorization: Bearer, or ?token=), as the registry's writes must; else 403. It runs on
 * the control loop (one reload at a time, the same path as SIGHUP), and the answer comes
 * back to the request's worker.
 *
 * Threads: handlers and the collection's steps on worker loops; the reload on the control
 * loop.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "gateway/gw_int.h"
#include "registry/acl.h"
#include "registry/catalog.h"
#include "registry/status.h"
#include "weft/log.h"
#include "weft/weft.h"

#define ADMIN_WAIT_MS   5000       /* the longest the workers' numbers are waited for */
#define ADMIN_MAX_BODY  (8u << 20) /* an answer larger than this is refused (507) */
#define ADMIN_MAX_POOLS 4096       /* pools one worker reports (its client's hosts) */

/* ---- writing JSON ---- */

/* A duration as the configuration writes it, from the largest unit down: "2s", "500ms",
 * "1m30s", "1h", "1s500ms"; "0" for none. */
static void put_duration_text(weft_buf_t *b, uint64_t ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    char s[64];
    size_t o = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && ms; i++) {
        if (ms < units[i].ms) continue;
        o += (size_t)snprintf(s + o, sizeof(s) - o, "%" PRIu64 "%s", ms / units[i].ms,
                              units[i].unit);
        ms %= units[i].ms;
    }
    if (o == 0) s[o++] = '0', s[o] = 0;
    weft_json_put_str(b, s, o);
}

/* ,"key":"2s","key_ms":2000 */
static void put_duration(weft_buf_t *b, const char *key, uint64_t ms)
{
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    put_duration_text(b, ms);
    weft_buf_putc(b, ',');
    weft_buf_putc(b, '"');
    weft_buf_puts(b, key);
    weft_buf_puts(b, "_ms\":");
    weft_buf_put_u64(b, ms);
}

static void put_strkey(weft_buf_t *b, const char *key, const char *v)
{
    weft_json_put_key(b, key);
    if (v)
        weft_json_put_str(b, v, strlen(v));
    else
        weft_buf_puts(b, "null");
}

static void put_u64key(weft_buf_t *b, const char *key, uint64_t v)
{
    weft_json_put_key(b, key);
    weft_buf_put_u64(b, v);
}

static void put_percent(weft_buf_t *b, const char *key, double pct)
{
    char s[32];
    int n = snprintf(s, sizeof(s), "%g%%", pct);
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_json_put_str(b, s, n > 0 ? (size_t)n : 0);
}

static const char *lb_name(gw_lb_t lb)
{
    return lb == GW_LB_LEAST_REQUEST ? "least_request"
           : lb == GW_LB_RANDOM      ? "random"
           : lb == GW_LB_RING_HASH   ? "ring_hash"
                                     : "round_robin";
}

/* The rate as written: N/s, else N/m, else N/h when one of them is whole. */
static void put_rate(weft_buf_t *b, double per_s)
{
    char s[64];
    int n;
    if (per_s == (double)(uint64_t)per_s)
        n = snprintf(s, sizeof(s), "%" PRIu64 "/s", (uint64_t)per_s);
    else if (per_s * 60 == (double)(uint64_t)(per_s * 60))
        n = snprintf(s, sizeof(s), "%" PRIu64 "/m", (uint64_t)(per_s * 60));
    else if (per_s * 3600 == (double)(uint64_t)(per_s * 3600))
        n = snprintf(s, sizeof(s), "%" PRIu64 "/h", (uint64_t)(per_s * 3600));
    else
        n = snprintf(s, sizeof(s), "%g/s", per_s);
    weft_json_put_str(b, s, n > 0 ? (size_t)n : 0);
}

/* The route's breaker now: "breaker":{...} or null. */
/* A breaker's state and window, as an object. */
static void put_breaker_stats(weft_buf_t *b, const weft_breaker_stats_t *st)
{
    weft_buf_putc(b, '{');
    put_strkey(b, "state", weft_breaker_state_name(st->state));
    weft_buf_putc(b, ',');
    put_u64key(b, "ms_until_half_open", st->ms_until_half_open);
    weft_buf_putc(b, ',');
    put_strkey(b, "last_reason", weft_breaker_reason_name(st->last_reason));
    weft_buf_putc(b, ',');
    put_u64key(b, "consecutive_failures", st->consecutive_failures);
    weft_buf_putc(b, ',');
    put_u64key(b, "window_calls", st->window_calls);
    weft_buf_putc(b, ',');
    put_u64key(b, "window_failures", st->window_failures);
    weft_buf_putc(b, ',');
    put_u64key(b, "window_slow", st->window_slow);
    weft_buf_putc(b, ',');
    put_u64key(b, "failure_rate", st->failure_rate);
    weft_buf_putc(b, ',');
    put_u64key(b, "slow_call_rate", st->slow_call_rate);
    put_duration(b, "open_for", st->open_for_ms);
    weft_buf_putc(b, ',');
    put_u64key(b, "opens", st->opens);
    weft_buf_putc(b, ',');
    put_u64key(b, "transitions", st->transitions);
    weft_buf_putc(b, ',');
    put_u64key(b, "rejected", st->rejected);
    weft_buf_putc(b, '}');
}

static void put_breaker_state(weft_buf_t *b, gw_policy_t *p, uint64_t now_ms)
{
    weft_json_put_key(b, "breaker");
    if (!p || !p->breaker) {
        weft_buf_puts(b, "null");
        return;
    }
    weft_breaker_stats_t st;
    pthread_mutex_lock(&p->mu);
    weft_breaker_stats(p->breaker, now_ms, &st);
    pthread_mutex_unlock(&p->mu);
    put_breaker_stats(b, &st);
}

/* Where r sends: "service":... or "upstream":{targets, lb}, and "lb". */
static void put_destination(weft_buf_t *b, const gw_route_t *r)
{
    if (r->service) {
        put_strkey(b, "service", r->service);
    } else {
        weft_buf_puts(b, "\"upstream\":{\"targets\":[");
        for (unsigned i = 0; i < r->ntargets; i++) {
            char a[GW_HOST_MAX + 16];
            const gw_target_t *t = &r->targets[i];
            int n = snprintf(a, sizeof(a), strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host,
                             t->port);
            weft_buf_puts(b, i ? ",{" : "{");
            weft_json_put_key(b, "address");
            weft_json_put_str(b, a, n > 0 ? (size_t)n : 0);
            weft_buf_putc(b, ',');
            put_u64key(b, "weight", t->weight);
            weft_buf_putc(b, '}');
        }
        weft_buf_puts(b, "],");
        put_strkey(b, "lb", lb_name(r->lb));
        weft_buf_putc(b, '}');
    }
    weft_buf_putc(b, ',');
    put_strkey(b, "lb", lb_name(r->lb));
    if (r->lb == GW_LB_RING_HASH) {
        char h[300];
        snprintf(h, sizeof(h), "header:%s", r->hash_header ? r->hash_header : "");
        weft_buf_putc(b, ',');
        put_strkey(b, "hash_on", r->hash_on == GW_HASH_HEADER ? h : "client_ip");
    }
}

/* ,"KEY":[...]: outcomes as retry.on and circuit_breaker.failure_on write them. */
static void put_outcomes(weft_buf_t *b, const char *key, unsigned bits, const uint16_t *statuses,
                         unsigned n)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{GW_RETRY_CONNECT, "connect-failure"},
                 {GW_RETRY_RESET, "reset"},
                 {GW_RETRY_TIMEOUT, "timeout"},
                 {GW_RETRY_5XX, "5xx"}};
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_buf_putc(b, '[');
    bool first = true;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(bits & names[i].bit)) continue;
        if (!first) weft_buf_putc(b, ',');
        first = false;
        weft_json_put_str(b, names[i].name, strlen(names[i].name));
    }
    for (unsigned i = 0; i < n; i++) {
        if (!first) weft_buf_putc(b, ',');
        first = false;
        weft_buf_put_u64(b, statuses[i]);
    }
    weft_buf_putc(b, ']');
}

static void put_retry(weft_buf_t *b, const gw_retry_conf_t *c)
{
    weft_json_put_key(b, "retry");
    if (c->attempts == 0) {
        weft_buf_puts(b, "null");
        return;
    }
    weft_buf_putc(b, '{');
    put_u64key(b, "attempts", c->attempts);
    put_outcomes(b, "on", c->on, c->statuses, c->nstatuses);
    if (c->per_try_timeout_ms) put_duration(b, "per_try_timeout", c->per_try_timeout_ms);
    weft_buf_putc(b, ',');
    put_strkey(b, "methods", c->any_method ? "any" : "idempotent");
    weft_buf_putc(b, '}');
}

static void put_rate_limit(weft_buf_t *b, const gw_route_t *r)
{
    const gw_ratelimit_conf_t *c = &r->rate_limit;
    weft_json_put_key(b, "rate_limit");
    if (!c->on) {
        weft_buf_puts(b, "null");
        return;
    }
    weft_buf_putc(b, '{');
    if (c->algorithm == GW_RL_TOKEN_BUCKET) {
        put_strkey(b, "algorithm", "token_bucket");
        weft_buf_puts(b, ",\"rate\":");
        put_rate(b, c->rate);
        weft_buf_puts(b, ",\"rate_per_second\":");
        if (!weft_json_put_double(b, c->rate)) weft_buf_puts(b, "null");
        weft_buf_putc(b, ',');
        put_u64key(b, "burst", c->burst);
    } else {
        put_strkey(b, "algorithm", "sliding_window");
        weft_buf_putc(b, ',');
        put_u64key(b, "limit", c->limit);
        put_duration(b, "window", c->window_ms);
    }
    char key[320];
    int kn = c->key == GW_RL_KEY_HEADER ? snprintf(key, sizeof(key), "header:%s", c->key_header)
                                        : snprintf(key, sizeof(key), "%s",
                                                   c->key == GW_RL_KEY_ROUTE    ? "route"
                                                   : c->key == GW_RL_KEY_GLOBAL ? "global"
                                                                                : "client_ip");
    weft_buf_puts(b, ",\"key\":");
    weft_json_put_str(b, key, kn > 0 && (size_t)kn < sizeof(key) ? (size_t)kn : 0);
    if (c->key == GW_RL_KEY_CLIENT_IP || c->key == GW_RL_KEY_HEADER) {
        weft_buf_putc(b, ',');
        put_u64key(b, "max_keys", c->max_keys);
    }
    weft_buf_puts(b, c->shadow ? ",\"shadow\":true" : ",\"shadow\":false");
    gw_policy_t *p = r->policy;
    if (p) { /* the state: requests over the limit since the route's state began */
        weft_buf_putc(b, ',');
        put_u64key(b, "rejected", atomic_load_explicit(&p->rl_rejected, memory_order_relaxed));
        weft_buf_putc(b, ',');
        put_u64key(b, "shadow_rejected", atomic_load_explicit(&p->rl_shadow, memory_order_relaxed));
    }
    weft_buf_putc(b, '}');
}

static void put_breaker_conf(weft_buf_t *b, const gw_breaker_conf_t *c)
{
    weft_json_put_key(b, "circuit_breaker");
    if (!c->on) {
        weft_buf_puts(b, "null");
        return;
    }
    weft_buf_putc(b, '{');
    put_u64key(b, "consecutive_failures", c->consecutive_failures);
    put_percent(b, "failure_rate", c->failure_rate);
    if (c->slow_call_ms) put_duration(b, "slow_call_duration", c->slow_call_ms);
    put_percent(b, "slow_call_rate", c->slow_call_rate);
    put_duration(b, "window", c->window_ms);
    weft_buf_putc(b, ',');
    put_u64key(b, "min_requests", c->min_requests);
    put_duration(b, "open_for", c->open_for_ms);
    put_duration(b, "open_for_max", c->open_for_max_ms);
    weft_buf_putc(b, ',');
    put_u64key(b, "half_open_requests", c->half_open_requests);
    weft_buf_putc(b, ',');
    put_strkey(b, "scope", c->scope == GW_BREAKER_ROUTE      ? "route"
                           : c->scope == GW_BREAKER_INSTANCE ? "instance"
                                                             : "both");
    put_outcomes(b, "failure_on", gw_breaker_fail_on(c), c->fail_statuses, c->nfail_statuses);
    weft_buf_putc(b, '}');
}

static void put_route(weft_buf_t *b, const gw_route_t *r, uint64_t now_ms)
{
    weft_buf_putc(b, '{');
    put_strkey(b, "name", r->name);
    weft_buf_puts(b, ",\"match\":{");
    put_strkey(b, r->kind == GW_MATCH_PREFIX ? "path_prefix" : "path", r->path);
    if (r->kind == GW_MATCH_PATTERN) weft_buf_puts(b, ",\"pattern\":true");
    if (r->host) {
        weft_buf_putc(b, ',');
        put_strkey(b, "host", r->host);
    }
    if (r->nmethods) {
        weft_buf_puts(b, ",\"methods\":[");
        for (unsigned i = 0; i < r->nmethods; i++) {
            if (i) weft_buf_putc(b, ',');
            weft_json_put_str(b, r->methods[i], strlen(r->methods[i]));
        }
        weft_buf_putc(b, ']');
    }
    if (r->nheaders) {
        weft_buf_puts(b, ",\"headers\":{");
        for (unsigned i = 0; i < r->nheaders; i++) {
            const gw_header_match_t *h = &r->headers[i];
            if (i) weft_buf_putc(b, ',');
            weft_json_put_str(b, h->name, strlen(h->name));
            weft_buf_putc(b, ':');
            const char *v = h->value ? h->value : "*";
            weft_json_put_str(b, v, strlen(v));
        }
        weft_buf_putc(b, '}');
    }
    weft_buf_puts(b, "},");
    weft_buf_puts(b, r->strip_prefix ? "\"strip_prefix\":true," : "\"strip_prefix\":false,");
    put_strkey(b, "rewrite", r->rewrite);
    weft_buf_putc(b, ',');
    put_destination(b, r);
    put_duration(b, "timeout", r->timeout_ms);
    weft_buf_putc(b, ',');
    put_retry(b, &r->retry);
    weft_buf_putc(b, ',');
    put_rate_limit(b, r);
    weft_buf_putc(b, ',');
    put_breaker_conf(b, &r->breaker);
    /* the concurrency limits per instance (given among circuit_breaker's keys) */
    weft_buf_putc(b, ',');
    weft_json_put_key(b, "limits");
    if (!r->limits.on) {
        weft_buf_puts(b, "null");
    } else {
        weft_buf_putc(b, '{');
        put_u64key(b, "max_connections", r->limits.max_connections);
        weft_buf_putc(b, ',');
        weft_json_put_key(b, "max_pending_requests");
        if (r->limits.pending_set)
            weft_buf_put_u64(b, r->limits.max_pending);
        else
            weft_buf_puts(b, "null");
        weft_buf_putc(b, ',');
        put_u64key(b, "max_requests", r->limits.max_requests);
        weft_buf_putc(b, '}');
    }
    weft_buf_putc(b, ',');
    put_breaker_state(b, r->policy, now_ms);
    weft_buf_putc(b, '}');
}

/* Answers the body in b (JSON), or 507 when it was cut at ADMIN_MAX_BODY or memory ran out. */
static void respond_buf(weft_http_request_t *req, int status, weft_buf_t *b)
{
    if (b->failed || !b->p) {
        static const char big[] = "{\"error\":\"the answer is over its limit (8 MiB) or memory "
                                  "ran out\"}\n";
        weft_http_respond(req, 507, "application/json", big, sizeof(big) - 1);
    } else {
        weft_http_respond(req, status, "application/json", b->p, b->len);
    }
    weft_buf_free(b);
}

static void respond_error(weft_http_request_t *req, int status, const char *msg)
{
    weft_buf_t b;
    weft_buf_init(&b, 8192);
    weft_buf_puts(&b, "{\"error\":");
    weft_json_put_str(&b, msg, strlen(msg));
    weft_buf_puts(&b, "}\n");
    respond_buf(req, status, &b);
}

/* ---- GET /v1/gateway/routes ---- */

static void on_routes(weft_http_request_t *req, void *arg)
{
    weft_gateway_t *g = arg;
    weft_buf_t b;
    weft_buf_init(&b, ADMIN_MAX_BODY);
    uint64_t now = uv_now(req->loop);
    weft_snap_read_lock();
    const gw_table_t *t = weft_snap_get(&g->table);
    weft_buf_putc(&b, '[');
    for (size_t i = 0; t && i < t->n; i++) {
        if (i) weft_buf_putc(&b, ',');
        put_route(&b, &t->routes[i], now);
    }
    weft_snap_read_unlock();
    weft_buf_puts(&b, "]\n");
    char gen[24];
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)atomic_load(&g->generation));
    weft_http_response_header(req, "X-Weft-Gateway-Generation", gen);
    respond_buf(req, 200, &b);
}

/* ---- GET /v1/gateway/upstreams: the workers' numbers, collected ---- */

/* One pool of a worker's upstream client. */
typedef struct pool_row_s {
    char host[GW_HOST_MAX + 1];
    uint16_t port;
    weft_http_client_host_stats_t st;
} pool_row_t;

typedef struct slot_s {
    pool_row_t *rows; /* sorted by host, port */
    size_t n, cap;
    bool truncated;   /* the worker had more than ADMIN_MAX_POOLS pools */
    uint32_t *active; /* its requests in flight per route of the collection's table */
    bool reported;
} slot_t;

typedef struct collect_s {
    atomic_uint refs;    /* the request's, one per post not yet run, the hand-back's */
    atomic_uint pending; /* workers (and the poster) still to report */
    weft_gateway_t *g;
    gw_table_t *table; /* held: the one the answer describes */
    unsigned origin;   /* the request's worker */
    unsigned n;        /* workers */
    /* the request's worker only: */
    weft_http_request_t *req; /* NULL once answered */
    slot_t slots[];
} collect_t;

static void collect_unref(collect_t *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    for (unsigned i = 0; i < c->n; i++) {
        free(c->slots[i].rows);
        free(c->slots[i].active);
    }
    weft_snap_release(c->table);
    free(c);
}

static int row_cmp(const void *a, const void *b)
{
    const pool_row_t *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c ? c : (int)x->port - (int)y->port;
}

static void count_row(const char *host, uint16_t port, const weft_http_client_host_stats_t *st,
                      void *arg)
{
    (void)host, (void)port, (void)st;
    ++*(size_t *)arg;
}

static void add_row(const char *host, uint16_t port, const weft_http_client_host_stats_t *st,
                    void *arg)
{
    slot_t *s = arg;
    if (s->n == s->cap || strlen(host) > GW_HOST_MAX) {
        s->truncated = true;
        return;
    }
    pool_row_t *r = &s->rows[s->n++];
    memcpy(r->host, host, strlen(host) + 1);
    r->port = port;
    r->st = *st;
}

static void answer(collect_t *c);

/* On the request's worker, once every worker reported. */
static void hand_back(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    collect_t *c = arg;
    (void)h, (void)loop, (void)index;
    answer(c);
    collect_unref(c); /* the hand-back's */
}

/* One report is in (a worker's, or the poster's own share). The last hands the collection
 * back to the request's worker. */
static void reported(collect_t *c)
{
    if (atomic_fetch_sub_explicit(&c->pending, 1, memory_order_acq_rel) != 1) return;
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* the hand-back's */
    if (weft_host_post(c->g->host, c->origin, hand_back, c) != 0) {
        /* the worker is shutting down: its request was answered by the shutdown event */
        collect_unref(c);
    }
}

/* On each worker: copies its pools and its requests in flight into its slot. */
static void collect_worker(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    collect_t *c = arg;
    (void)h;
    gw_worker_t *w = weft_host_state(loop, c->g->part);
    slot_t *s = index < c->n ? &c->slots[index] : NULL;
    if (s && w) {
        size_t pools = 0;
        if (w->client) weft_http_client_foreach_host(w->client, count_row, &pools);
        s->cap = pools < ADMIN_MAX_POOLS ? pools : ADMIN_MAX_POOLS;
        s->truncated = pools > s->cap;
        if (s->cap && !(s->rows = malloc(s->cap * sizeof(*s->rows)))) {
            s->truncated = true; /* out of memory: this worker's pools are left out */
        } else if (s->cap) {
            weft_http_client_foreach_host(w->client, add_row, s);
            qsort(s->rows, s->n, sizeof(*s->rows), row_cmp);
        }
        const gw_table_t *t = c->table;
        if (t && t->active && (s->active = malloc((t->n ? t->n : 1) * sizeof(*s->active))))
            memcpy(s->active, t->active + (size_t)index * t->active_stride,
                   t->n * sizeof(*s->active));
        s->reported = true;
    }
    reported(c);
    collect_unref(c); /* the post's */
}

/* The route's state for one instance: its own breaker, its tries in flight (every
 * worker's), and the route's limits per instance. */
static void put_instance_policy(weft_buf_t *b, const gw_route_t *r, const char *host,
                                uint16_t port, uint64_t now_ms)
{
    gw_upstream_state_t st;
    gw_policy_upstream(r->policy, host, port, now_ms, &st);
    weft_buf_putc(b, ',');
    weft_json_put_key(b, "breaker");
    if (st.breaker && st.kept)
        put_breaker_stats(b, &st.stats);
    else
        weft_buf_puts(b, "null");
    weft_buf_putc(b, ',');
    put_u64key(b, "active", st.active);
    weft_buf_puts(b, ",\"limits\":{");
    put_u64key(b, "max_connections", st.max_connections);
    weft_buf_putc(b, ',');
    weft_json_put_key(b, "max_pending_requests");
    if (st.pending_set || st.max_pending)
        weft_buf_put_u64(b, st.max_pending);
    else
        weft_buf_puts(b, "null");
    weft_buf_putc(b, ',');
    put_u64key(b, "max_requests", st.max_requests);
    weft_buf_putc(b, '}');
}

/* "pool":{...}: host:port's connections summed over the workers, and per worker. */
static void put_pool(weft_buf_t *b, const collect_t *c, const char *host, uint16_t port)
{
    pool_row_t key;
    size_t hl = strlen(host);
    if (hl > GW_HOST_MAX) hl = GW_HOST_MAX;
    memcpy(key.host, host, hl);
    key.host[hl] = 0;
    key.port = port;
    uint64_t open = 0, idle = 0, queued = 0, in_flight = 0, requests = 0, fivexx = 0, cf = 0;
    uint64_t lat = 0, heads = 0;
    const pool_row_t *found[WEFT_WORKERS_MAX];
    for (unsigned i = 0; i < c->n && i < WEFT_WORKERS_MAX; i++) {
        const slot_t *s = &c->slots[i];
        const pool_row_t *r =
            s->rows && s->n ? bsearch(&key, s->rows, s->n, sizeof(*s->rows), row_cmp) : NULL;
        found[i] = r;
        if (!r) continue;
        open += r->st.conns_open;
        idle += r->st.conns_idle;
        queued += r->st.queued;
        in_flight += r->st.in_flight;
        requests += r->st.requests;
        fivexx += r->st.responses_5xx;
        if (r->st.consecutive_failures > cf) cf = r->st.consecutive_failures;
        if (r->st.heads) { /* the workers' averages, weighted by their samples */
            lat += r->st.latency_ewma_us * r->st.heads;
            heads += r->st.heads;
        }
    }
    weft_buf_puts(b, ",\"pool\":{");
    put_u64key(b, "open", open);
    weft_buf_putc(b, ',');
    put_u64key(b, "idle", idle);
    weft_buf_putc(b, ',');
    put_u64key(b, "busy", open - idle);
    weft_buf_putc(b, ',');
    put_u64key(b, "queued", queued);
    weft_buf_putc(b, ',');
    put_u64key(b, "in_flight", in_flight);
    weft_buf_puts(b, ",\"workers\":[");
    for (unsigned i = 0; i < c->n && i < WEFT_WORKERS_MAX; i++) {
        const pool_row_t *r = found[i];
        if (i) weft_buf_putc(b, ',');
        weft_buf_putc(b, '{');
        put_u64key(b, "idle", r ? r->st.conns_idle : 0);
        weft_buf_putc(b, ',');
        put_u64key(b, "busy", r ? r->st.conns_open - r->st.conns_idle : 0);
        weft_buf_putc(b, '}');
    }
    weft_buf_puts(b, "]},");
    put_u64key(b, "requests", requests);
    weft_buf_putc(b, ',');
    put_u64key(b, "responses_5xx", fivexx);
    weft_buf_putc(b, ',');
    put_u64key(b, "consecutive_failures", cf);
    weft_buf_puts(b, ",\"latency_ewma_ms\":");
    if (!heads || !weft_json_put_double(b, (double)lat / (double)heads / 1000.0))
        weft_buf_puts(b, "null");
}

static void put_instance(weft_buf_t *b, const collect_t *c, const gw_route_t *r, const char *id,
                         const char *host, uint16_t port, unsigned weight, const char *health,
                         uint64_t now_ms)
{
    char a[GW_HOST_MAX + 16];
    int n = snprintf(a, sizeof(a), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    weft_buf_putc(b, '{');
    if (id) {
        put_strkey(b, "id", id);
        weft_buf_putc(b, ',');
    }
    weft_json_put_key(b, "address");
    weft_json_put_str(b, a, n > 0 ? (size_t)n : 0);
    weft_buf_putc(b, ',');
    put_strkey(b, "host", host);
    weft_buf_putc(b, ',');
    put_u64key(b, "port", port);
    weft_buf_putc(b, ',');
    put_u64key(b, "weight", weight);
    weft_buf_putc(b, ',');
    put_strkey(b, "health", health);
    put_pool(b, c, host, port);
    put_instance_policy(b, r, host, port, now_ms);
    weft_buf_putc(b, '}');
}

/* The last transitions of the route's breakers, oldest first: when (RFC 3339, UTC), which
 * breaker (upstream "" for the route's own), from, to, and why. */
static void put_transitions(weft_buf_t *b, gw_policy_t *p)
{
    gw_transition_t t[GW_TRANSITIONS_KEPT];
    size_t n = gw_policy_transitions(p, t, GW_TRANSITIONS_KEPT, NULL);
    weft_buf_puts(b, ",\"transitions\":[");
    for (size_t k = 0; k < n; k++) {
        char when[40];
        time_t secs = (time_t)(t[k].unix_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + w, sizeof(when) - w, ".%03uZ", (unsigned)(t[k].unix_ms % 1000));
        weft_buf_puts(b, k ? ",{" : "{");
        put_strkey(b, "time", when);
        weft_buf_putc(b, ',');
        put_strkey(b, "upstream", t[k].upstream);
        weft_buf_putc(b, ',');
        put_strkey(b, "from", weft_breaker_state_name((weft_breaker_state_t)t[k].from));
        weft_buf_putc(b, ',');
        put_strkey(b, "to", weft_breaker_state_name((weft_breaker_state_t)t[k].to));
        weft_buf_putc(b, ',');
        put_strkey(b, "reason", weft_breaker_reason_name((weft_breaker_reason_t)t[k].reason));
        weft_buf_putc(b, ',');
        put_strkey(b, "detail", t[k].detail);
        weft_buf_putc(b, '}');
    }
    weft_buf_putc(b, ']');
}

static void put_upstreams(weft_buf_t *b, const collect_t *c, uint64_t now_ms)
{
    const gw_table_t *t = c->table;
    weft_registry_t *reg = c->g->reg;
    weft_buf_putc(b, '[');
    for (size_t i = 0; t && i < t->n; i++) {
        const gw_route_t *r = &t->routes[i];
        if (i) weft_buf_putc(b, ',');
        weft_buf_putc(b, '{');
        put_strkey(b, "route", r->name);
        weft_buf_putc(b, ',');
        put_strkey(b, "service", r->service);
        weft_buf_putc(b, ',');
        put_strkey(b, "lb", lb_name(r->lb));
        weft_buf_putc(b, ',');
        put_breaker_state(b, r->policy, now_ms);
        put_transitions(b, r->policy);
        uint64_t active = 0;
        bool all = true;
        for (unsigned w = 0; w < c->n; w++) {
            if (c->slots[w].reported && c->slots[w].active)
                active += c->slots[w].active[i];
            else /* a worker that could not report (shutting down, out of memory) */
                all = false;
        }
        weft_buf_putc(b, ',');
        put_u64key(b, "in_flight", active);
        if (!all) weft_buf_puts(b, ",\"in_flight_partial\":true");
        weft_buf_puts(b, ",\"instances\":[");
        if (!r->service) {
            for (unsigned k = 0; k < r->ntargets; k++) {
                if (k) weft_buf_putc(b, ',');
                put_instance(b, c, r, NULL, r->targets[k].host, r->targets[k].port,
                             r->targets[k].weight, NULL, now_ms);
            }
        } else if (reg) {
            /* every instance of the service, whatever its health: only passing ones are
             * sent requests (proxy.c) */
            weft_snap_read_lock();
            const reg_snap_t *s = weft_snap_get(weft_registry_cell(reg));
            const reg_svc_t *v = s ? weft__snap_service(s, r->service, strlen(r->service)) : NULL;
            for (uint32_t k = 0; v && k < v->n; k++) {
                const reg_inst_t *in = v->inst[k];
                int wt = in->w_passing > 0 ? in->w_passing : 1;
                if (k) weft_buf_putc(b, ',');
                put_instance(b, c, r, in->id, *in->address ? in->address : s->node->address,
                             in->port, (unsigned)wt, weft__health_name(in->health), now_ms);
            }
            weft_snap_read_unlock();
        }
        weft_buf_puts(b, "]}");
    }
    weft_buf_puts(b, "]\n");
}

static void answer(collect_t *c)
{
    weft_http_request_t *req = c->req;
    if (!req) return; /* answered already (a shutdown, the wait's end) */
    c->req = NULL;
    req->on_event = NULL;
    bool truncated = false;
    for (unsigned i = 0; i < c->n; i++) truncated |= c->slots[i].truncated;
    weft_buf_t b;
    weft_buf_init(&b, ADMIN_MAX_BODY);
    put_upstreams(&b, c, uv_now(req->loop));
    if (truncated) weft_http_response_header(req, "X-Weft-Pools-Truncated", "true");
    respond_buf(req, 200, &b);
    collect_unref(c); /* the request's */
}

static void collect_event(weft_http_request_t *req, weft_http_event_t ev)
{
    collect_t *c = req->data;
    if (ev == WEFT_HTTP_EVENT_CLIENT_CLOSED || !c || c->req != req) return;
    c->req = NULL;
    req->on_event = NULL;
    respond_error(req, 503,
                  ev == WEFT_HTTP_EVENT_SHUTDOWN
                      ? "weft is shutting down"
                      : "the workers did not report their connection pools in time; retry");
    collect_unref(c); /* the request's */
}

static void on_upstreams(weft_http_request_t *req, void *arg)
{
    weft_gateway_t *g = arg;
    unsigned n = g->nworkers, origin = weft_host_worker_index(req->loop);
    collect_t *c = calloc(1, sizeof(*c) + n * sizeof(slot_t));
    if (!c) {
        respond_error(req, 503, "out of memory");
        return;
    }
    atomic_init(&c->refs, 1);
    atomic_init(&c->pending, n + 1); /* + the poster's own share, given back last */
    c->g = g;
    c->n = n;
    c->origin = origin;
    c->req = req;
    c->table = weft_snap_hold(&g->table);
    req->data = c;
    req->on_event = collect_event;
    if (weft_http_request_timer(req, ADMIN_WAIT_MS) != 0) {
        c->req = NULL;
        req->on_event = NULL;
        respond_error(req, 503, "out of memory");
        collect_unref(c);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* the post's */
        if (weft_host_post(g->host, i, collect_worker, c) != 0) {
            reported(c); /* that worker will not: its slot stays empty */
            collect_unref(c);
        }
    }
    reported(c); /* the poster's share: the last report hands back (perhaps right now) */
}

/* ---- POST /v1/gateway/reload ---- */

/* The token the request carries, checked against acl.token as the registry's writes are. */
static bool authorized(const weft_gateway_t *g, weft_http_request_t *req)
{
    return weft__acl_ok(req, g->acl_token);
}

typedef struct reload_op_s {
    weft_gateway_t *g;
    weft_http_request_t *req;
    unsigned worker;
    int status;
    weft_buf_t body;
} reload_op_t;

/* On the request's worker: the reload's answer. */
static void reload_reply(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    reload_op_t *op = arg;
    (void)h, (void)loop, (void)index;
    respond_buf(op->req, op->status, &op->body);
    free(op);
}

/* On the control loop: the reload itself (the same as SIGHUP's). */
static void reload_apply(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    reload_op_t *op = arg;
    (void)loop, (void)index;
    char err[1024];
    weft_buf_t sum;
    weft_buf_init(&sum, ADMIN_MAX_BODY);
    int rc = weft__gw_reload_now(op->g, "api", &sum, err, sizeof(err));
    if (rc == 0) {
        op->status = 200;
        weft_buf_puts(&op->body, "{\"reloaded\":true,\"summary\":");
        weft_buf_put(&op->body, sum.p ? sum.p : "{}", sum.p ? sum.len : 2);
        weft_buf_puts(&op->body, "}\n");
    } else {
        /* a configuration that does not load or compile is the client's to fix (400);
         * anything else (memory) is ours */
        op->status = rc == WEFT_EINVAL || rc == WEFT_ENOENT ? 400 : 503;
        weft_buf_puts(&op->body, "{\"reloaded\":false,\"error\":");
        weft_json_put_str(&op->body, err, strlen(err));
        weft_buf_puts(&op->body, "}\n");
    }
    weft_buf_free(&sum);
    if (weft_host_post(h, op->worker, reload_reply, op) != 0) {
        /* the worker is gone (the very end of a shutdown): its connection went with it */
        weft_warn("gateway", "cannot answer a reload: its worker is gone", "status=%d", op->status);
        weft_buf_free(&op->body);
        free(op);
    }
}

static void on_reload(weft_http_request_t *req, void *arg)
{
    weft_gateway_t *g = arg;
    if (!authorized(g, req)) {
        respond_error(req, 403,
                      "token: permission denied (acl.token is set: send it in X-Consul-Token, "
                      "Authorization: Bearer or ?token=)");
        return;
    }
    reload_op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        respond_error(req, 503, "out of memory");
        return;
    }
    op->g = g;
    op->req = req;
    op->worker = weft_host_worker_index(req->loop);
    weft_buf_init(&op->body, ADMIN_MAX_BODY);
    if (weft_host_call(g->host, reload_apply, op) != 0) {
        free(op);
        respond_error(req, 503, "weft is busy or shutting down; retry");
    }
}

int weft_gateway_admin(weft_gateway_t *g, weft_service_t *svc, const char *acl_token, char *err,
                       size_t errlen)
{
    if (acl_token && *acl_token && !(g->acl_token = strdup(acl_token))) {
        snprintf(err, errlen, "gateway: out of memory");
        return WEFT_ENOMEM;
    }
    static const struct {
        const char *method, *pattern;
        weft_http_handler_fn fn;
    } routes[] = {{"GET", "/v1/gateway/routes", on_routes},
                  {"GET", "/v1/gateway/upstreams", on_upstreams},
                  {"POST", "/v1/gateway/reload", on_reload},
                  {"PUT", "/v1/gateway/reload", on_reload}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        weft_http_route_t rt = {.handler = routes[i].fn, .arg = g, .max_body = 4096};
        int rc = weft_service_route_ex(svc, routes[i].method, routes[i].pattern, &rt);
        if (rc != 0) {
            snprintf(err, errlen, "gateway: admin route %s %s: %s", routes[i].method,
                     routes[i].pattern, weft_strerror(rc));
            return rc;
        }
    }
    return 0;
}
