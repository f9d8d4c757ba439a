/*
 * client_pool.c - the HTTP client's host table: one pool per host:port, holding its idle
 * connections, its wait queue and its counters; dispatch of calls to connections.
 *
 * Design. Pools live in a chained hash table (FNV-1a over host and port) that doubles while
 * it holds more than two pools per bucket, up to 65536 buckets. A pool hands a call its most
 * recently used idle connection (warm in the server's caches, and the others age out), opens
 * a new one while under the call's max_conns (max_conns_per_host, or less when the request
 * says so), or queues the call (FIFO; bounded by max_queue, or the request's own, in
 * weft_http_client_request). A connection that closes while calls wait kicks its pool,
 * and the kick opens connections for them (weft__pool_pump), outside any user callback.
 *
 * Counters. Each pool counts what a load balancer and an outlier detector read about its
 * upstream (weft_http_client_host_stats_t): ends of calls by kind, 5xx heads, consecutive
 * failures, latency to the response head. They are updated where a call ends
 * (weft__pool_count_end) and where a final head arrives (weft__pool_count_head), with the
 * client-wide counters beside them, so reading them is a hash lookup and a copy.
 *
 * Life. A pool stays while a call names it or a connection belongs to it. Once unused, it
 * and its counters are kept about host_keep_ms (so an outlier detector does not see a host
 * forget its failures the moment its connections close), then freed by a scan from the
 * sweep, at most once a CLIENT_POOL_SCAN; a pool is never freed under a user callback. At
 * max_hosts, an unused pool is freed at once to make room.
 *
 * Threads: the client's loop thread only. Memory: WEFT_ENOMEM, never an abort.
 */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "http/client_int.h"

#define BUCKETS_MAX 65536

static uint32_t pool_hash(const char *host, size_t len, uint16_t port)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)host[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    return (h ^ (port >> 8)) * 16777619u;
}

static void pools_grow(weft_http_client_t *c)
{
    unsigned n = c->nbuckets * 2;
    pool_t **b = calloc(n, sizeof(*b));
    if (!b) return; /* longer chains, still correct */
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t *p = c->buckets[i], *next; p; p = next) {
            next = p->hnext;
            p->hnext = b[p->hash & (n - 1)];
            b[p->hash & (n - 1)] = p;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

static bool pool_unused(const pool_t *p)
{
    return !p->ncalls && !p->nconns && !p->kicked;
}

static pool_t *find_n(const weft_http_client_t *c, const char *host, size_t hl, uint16_t port)
{
    uint32_t h = pool_hash(host, hl, port);
    for (pool_t *p = c->buckets[h & (c->nbuckets - 1)]; p; p = p->hnext)
        if (p->hash == h && p->port == port && strcmp(p->host, host) == 0) return p;
    return NULL;
}

pool_t *weft__pool_find(const weft_http_client_t *c, const char *host, uint16_t port)
{
    return find_n(c, host, strlen(host), port);
}

/* Frees one unused pool, if there is one. */
static bool pools_evict_one(weft_http_client_t *c)
{
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t **pp = &c->buckets[i]; *pp; pp = &(*pp)->hnext) {
            pool_t *p = *pp;
            if (!pool_unused(p)) continue;
            *pp = p->hnext;
            c->npools--;
            free(p);
            return true;
        }
    }
    return false;
}

pool_t *weft__pool_get(weft_http_client_t *c, const char *host, size_t hl, uint16_t port, int *err)
{
    pool_t *p = find_n(c, host, hl, port);
    if (p) {
        p->unused_since = 0;
        return p;
    }
    if (!weft__req_host_valid(host, hl)) {
        *err = WEFT_EINVAL;
        return NULL;
    }
    if (c->npools >= c->o.max_hosts && !pools_evict_one(c)) {
        *err = WEFT_ELIMIT;
        return NULL;
    }
    p = calloc(1, sizeof(*p) + hl + 1);
    if (!p) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    memcpy(p->host, host, hl + 1);
    p->port = port;
    p->hash = pool_hash(host, hl, port);
    p->client = c;
    if (uv_ip4_addr(host, port, &p->addr.in) == 0 || uv_ip6_addr(host, port, &p->addr.in6) == 0)
        p->numeric = true;
    unsigned bi = p->hash & (c->nbuckets - 1);
    p->hnext = c->buckets[bi];
    c->buckets[bi] = p;
    c->npools++;
    if (c->npools > c->nbuckets * 2 && c->nbuckets < BUCKETS_MAX) pools_grow(c);
    return p;
}

void weft__pools_scan(weft_http_client_t *c, uint64_t now, bool force)
{
    bool waiting = false; /* an unused pool is kept for later */
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t **pp = &c->buckets[i]; *pp;) {
            pool_t *p = *pp;
            if (!pool_unused(p)) {
                p->unused_since = 0;
                pp = &p->hnext;
                continue;
            }
            if (!p->unused_since) p->unused_since = now ? now : 1;
            if (!force && now - p->unused_since < c->o.host_keep_ms) {
                waiting = true;
                pp = &p->hnext;
                continue;
            }
            *pp = p->hnext;
            c->npools--;
            free(p);
        }
    }
    c->pools_dirty = waiting;
}

void weft__pools_free_all(weft_http_client_t *c)
{
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t *p = c->buckets[i], *next; p; p = next) {
            next = p->hnext;
            free(p);
        }
    }
    free(c->buckets);
    c->buckets = NULL;
    c->npools = 0;
}

/* ---- the wait queue and the idle list ---- */

void weft__pool_enqueue(pool_t *p, call_t *call)
{
    call->qnext = NULL;
    call->qprev = p->qtail;
    if (p->qtail)
        p->qtail->qnext = call;
    else
        p->qhead = call;
    p->qtail = call;
    p->nq++;
    p->client->nqueued++;
}

void weft__pool_unqueue(pool_t *p, call_t *call)
{
    WEFT_ASSERT(call->state == CALL_QUEUED && p->nq > 0);
    if (call->qprev)
        call->qprev->qnext = call->qnext;
    else
        p->qhead = call->qnext;
    if (call->qnext)
        call->qnext->qprev = call->qprev;
    else
        p->qtail = call->qprev;
    call->qprev = call->qnext = NULL;
    p->nq--;
    p->client->nqueued--;
}

void weft__pool_idle_push(pool_t *p, conn_t *k)
{
    k->iprev = NULL;
    k->inext = p->idle;
    if (p->idle) p->idle->iprev = k;
    p->idle = k;
    p->nidle++;
    p->client->nidle++;
}

void weft__pool_idle_remove(pool_t *p, conn_t *k)
{
    if (k->iprev)
        k->iprev->inext = k->inext;
    else
        p->idle = k->inext;
    if (k->inext) k->inext->iprev = k->iprev;
    k->iprev = k->inext = NULL;
    p->nidle--;
    p->client->nidle--;
}

/* ---- dispatch ---- */

void weft__pool_dispatch(pool_t *p, call_t *call, bool fresh)
{
    weft_http_client_t *c = p->client;
    if (!fresh && p->idle) {
        conn_t *k = p->idle;
        weft__pool_idle_remove(p, k);
        k->reused = true;
        c->st.conns_reused++;
        weft__conn_start_call(k, call);
        return;
    }
    if (p->nconns < call->max_conns) {
        weft__conn_open(p, call);
        return;
    }
    weft__call_to(call, CALL_QUEUED);
}

void weft__pool_pump(pool_t *p)
{
    weft_http_client_t *c = p->client;
    while (p->qhead && p->nconns < p->qhead->max_conns && !c->closing)
        weft__conn_open(p, p->qhead); /* leaves the queue: QUEUED -> CONNECTING */
}

void weft__pool_kick(pool_t *p)
{
    weft_http_client_t *c = p->client;
    if (!p->qhead || c->closing || p->kicked) return;
    p->kicked = true;
    p->next_kick = c->kick_pools;
    c->kick_pools = p;
    weft__client_kick_start(c);
}

/* ---- counters ---- */

/* The counter of weft_http_client_stats_t and weft_http_client_host_stats_t that an end
 * counts in; the two structs use the same names. */
#define BOTH(field)                                                                                \
    do {                                                                                           \
        c->st.field++;                                                                             \
        p->st.field++;                                                                             \
    } while (0)

void weft__pool_count_end(pool_t *p, const call_t *call, weft__call_state_t phase, int err)
{
    weft_http_client_t *c = p->client;
    bool host_error = true; /* an error the upstream caused (its counters' business) */
    switch (err) {
    case 0:
        BOTH(responses);
        host_error = false;
        break;
    case WEFT_ECANCELED:
        BOTH(fail_canceled);
        host_error = false;
        break;
    case WEFT_ENOMEM:
        BOTH(fail_other);
        host_error = false;
        break;
    case WEFT_ETIMEDOUT_CONNECT:
        BOTH(fail_connect_timeout);
        break;
    case WEFT_ETIMEDOUT_HEAD:
        BOTH(fail_head_timeout);
        break;
    case WEFT_ETIMEDOUT_BODY:
        BOTH(fail_body_timeout);
        break;
    case WEFT_ETIMEDOUT:
        BOTH(fail_timeout);
        break;
    case WEFT_EPARSE:
    case WEFT_ELIMIT:
        BOTH(fail_response);
        break;
    default:
        if (phase == CALL_QUEUED || phase == CALL_CONNECTING)
            BOTH(fail_connect);
        else
            BOTH(fail_io);
    }
    weft_http_client_host_stats_t *s = &p->st;
    if (host_error || call->status >= 500)
        s->consecutive_failures++;
    else if (err == 0)
        s->consecutive_failures = 0;
    if (host_error)
        s->consecutive_errors++;
    else if (err == 0)
        s->consecutive_errors = 0;
}

void weft__pool_count_head(pool_t *p, const call_t *call)
{
    weft_http_client_t *c = p->client;
    weft_http_client_host_stats_t *s = &p->st;
    uint64_t us = (uv_hrtime() - call->started_ns) / 1000;
    s->latency_last_us = us;
    if (s->heads++ == 0)
        s->latency_ewma_us = us;
    else /* old + (sample - old) / 8, in unsigned arithmetic without going below 0 */
        s->latency_ewma_us = us >= s->latency_ewma_us
                                 ? s->latency_ewma_us + (us - s->latency_ewma_us) / 8
                                 : s->latency_ewma_us - (s->latency_ewma_us - us) / 8;
    if (call->status >= 500 && call->status <= 599) BOTH(responses_5xx);
}

static void fill_gauges(const pool_t *p, weft_http_client_host_stats_t *out)
{
    *out = p->st;
    out->conns_open = p->nconns;
    out->conns_idle = p->nidle;
    out->queued = p->nq;
    out->in_flight = p->ncalls;
}

int weft_http_client_host_stats(const weft_http_client_t *c, const char *host, uint16_t port,
                                weft_http_client_host_stats_t *out)
{
    if (!c || !host || !out) return WEFT_EINVAL;
    const pool_t *p = weft__pool_find(c, host, port);
    if (!p) return WEFT_ENOENT;
    fill_gauges(p, out);
    return 0;
}

void weft_http_client_foreach_host(const weft_http_client_t *c, weft_http_client_host_fn fn,
                                   void *arg)
{
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (const pool_t *p = c->buckets[i]; p; p = p->hnext) {
            weft_http_client_host_stats_t st;
            fill_gauges(p, &st);
            fn(p->host, p->port, &st, arg);
        }
    }
}
