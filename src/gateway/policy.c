/*
 * policy.c - a route's rate limiter and circuit breaker (the resilience module's, see
 * weft/ratelimit.h and weft/breaker.h), built with the route table and shared by every
 * worker.
 *
 * Rate limits hold across workers exactly: the keyed table is lock-free (one atomic word per
 * key). The breaker is a single-threaded state machine; the workers take turns on it under
 * a mutex held for an allow() or a record() (a few dozen instructions), so that it sees
 * every call of the route, whichever worker made it, and trips exactly as configured
 * rather than on each worker's share. Every transition is logged with its reason and
 * counted (weft_breaker_transitions_total), and the state is a gauge (weft_breaker_state:
 * 0 closed, 1 open, 2 half-open).
 *
 * Lifetime. A policy is reference-counted: the route tables that hold it each own one
 * reference. A reload hands the policy of a route whose name and policy settings did not
 * change to the new table (gw_policy_ref), so its limiter and breaker keep their state; a
 * changed or new route gets a fresh one. A table is freed when the last request holding it
 * ends, and drops its references then: a policy lives while any table (so any request in
 * flight) still uses it. So that it may outlive the route it was built from, the policy
 * keeps its own copy of what it reads of the route (p->route: the name, the rate_limit and
 * circuit_breaker settings with the limits, and the balancer). A kept policy keeps its
 * instances' breakers too; the ring of static targets is the table's (route.c), so a
 * reload that changes the targets rebuilds it.
 *
 * Upstream instances. A route with a breaker or concurrency limits also keeps state per
 * upstream instance (host:port): a breaker with the route's settings, and its active
 * requests (an atomic count, exact across workers, for max_requests and the admin API).
 * The instances are found through an index that is an RCU snapshot (core/snapshot.h): an
 * open-addressing table of pointers, read without a lock on every pick, and replaced whole
 * (under ins_mu) only when an instance is seen for the first time. Each instance is a
 * snapshot object of its own, referenced by the index that lists it and held by every try
 * in flight to it, so one evicted from the index lives on until its last try ends. At most
 * GW_INST_MAX instances are kept per route; a new one takes the place of the one unused
 * longest, if that has been unused for GW_INST_IDLE_MS with nothing in flight; else it goes
 * without state (a warning, at most one try a second). An instance breaker's transitions
 * are logged and counted like the route's, with the upstream label set to host:port (the
 * route's own series have upstream=""). The hot path: a hash and a probe to find the
 * instance, an atomic add for its active count, and no mutex while the upstream is healthy.
 *
 * Fast paths, for the route's breaker and the instances' alike: allowing is lock-free while
 * the breaker is closed (allow() would change nothing), and so is recording a success while
 * it is "quiet" (closed, no failure in a row, no rate rule: the record would change
 * nothing that any rule reads; see breaker_quiet). So a breaker without a rate rule does not
 * count those successes in its window (its window_calls in the admin API): no rule reads it.
 *
 * Ring hash. The ring of a route's static targets is built with its table (route.c, with
 * gw_ring_build here); for a registry service the ring depends on the passing instances, so
 * it is cached here per version of the service in the catalog (its modify index), as a
 * snapshot object that the first worker to see a new version builds and publishes, and all
 * share.
 *
 *
 * Threads: any worker; the callbacks run under the mutex of the breaker that moved.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/policy.h"
#include "gateway/route.h"
#include "weft/log.h"

/* The gauge's value for a state: 0 closed, 1 open, 2 half-open. */
static double state_value(weft_breaker_state_t s)
{
    return s == WEFT_BREAKER_CLOSED ? 0 : s == WEFT_BREAKER_OPEN ? 1 : 2;
}

/* The reason of a transition with its numbers, from the breaker that moved (inside its
 * callback: its stats are as of the transition; the window it tripped on is kept in trip_*,
 * as the window itself is cleared when it opens). */
static void transition_detail(const weft_breaker_t *b, const gw_breaker_conf_t *c,
                              weft_breaker_reason_t reason, uint64_t now_ms, char *out, size_t cap)
{
    weft_breaker_stats_t st;
    weft_breaker_stats(b, now_ms, &st);
    double calls = st.trip_calls ? (double)st.trip_calls : 1;
    switch (reason) {
    case WEFT_BREAKER_CONSECUTIVE_FAILURES:
        snprintf(out, cap, "%u consecutive failures >= %llu", st.trip_consecutive,
                 (unsigned long long)c->consecutive_failures);
        break;
    case WEFT_BREAKER_FAILURE_RATE:
        snprintf(out, cap, "failure rate %.2f >= %.2f over %llu requests",
                 (double)st.trip_failures / calls, c->failure_rate / 100,
                 (unsigned long long)st.trip_calls);
        break;
    case WEFT_BREAKER_SLOW_CALL_RATE:
        snprintf(out, cap, "slow call rate %.2f >= %.2f over %llu requests (slow: >= %llu ms)",
                 (double)st.trip_slow / calls, c->slow_call_rate / 100,
                 (unsigned long long)st.trip_calls,
                 (unsigned long long)(c->slow_call_ms ? c->slow_call_ms : 1000));
        break;
    case WEFT_BREAKER_HALF_OPEN_FAILURE:
        snprintf(out, cap, "half-open probe failed; open again for %llu ms",
                 (unsigned long long)st.open_for_ms);
        break;
    case WEFT_BREAKER_HALF_OPEN_SUCCESS:
        snprintf(out, cap, "half-open probes succeeded (%llu of %llu)",
                 (unsigned long long)c->half_open_requests,
                 (unsigned long long)c->half_open_requests);
        break;
    case WEFT_BREAKER_OPEN_TIMEOUT:
        snprintf(out, cap, "open for %llu ms; letting %llu probe requests through",
                 (unsigned long long)st.open_for_ms, (unsigned long long)c->half_open_requests);
        break;
    case WEFT_BREAKER_NONE:
        snprintf(out, cap, "none");
        break;
    }
}

/* A transition of the route's breaker (upstream "") or of an instance's (b: the breaker
 * that moved, inside its callback): kept with its reason in words, counted, logged. */
static void transition_seen(gw_policy_t *p, const weft_breaker_t *b, const char *upstream,
                            weft_breaker_state_t from, weft_breaker_state_t to,
                            weft_breaker_reason_t reason, uint64_t now_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char detail[GW_TRANSITION_DETAIL];
    transition_detail(b, &p->route->breaker, reason, now_ms, detail, sizeof(detail));
    pthread_mutex_lock(&p->hist_mu);
    gw_transition_t *t = &p->hist[p->nhist++ % GW_TRANSITIONS_KEPT];
    t->unix_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    snprintf(t->upstream, sizeof(t->upstream), "%s", upstream);
    t->from = (uint8_t)from;
    t->to = (uint8_t)to;
    t->reason = (uint8_t)reason;
    memcpy(t->detail, detail, sizeof(detail));
    pthread_mutex_unlock(&p->hist_mu);
    if (p->fam_transitions) {
        const char *v[5] = {p->route->name, upstream, weft_breaker_state_name(from),
                            weft_breaker_state_name(to), weft_breaker_reason_name(reason)};
        weft_counter_inc(weft_metrics_counter_child(p->fam_transitions, v));
    }
    char q[GW_TRANSITION_DETAIL + 8];
    if (to == WEFT_BREAKER_OPEN)
        weft_warn("gateway", "circuit breaker opened",
                  "route=%s upstream=%s from=%s reason=%s detail=%s", p->route->name, upstream,
                  weft_breaker_state_name(from), weft_breaker_reason_name(reason),
                  weft_log_quote(q, sizeof(q), detail, strlen(detail)));
    else
        weft_info("gateway", "circuit breaker moved",
                  "route=%s upstream=%s from=%s to=%s reason=%s detail=%s", p->route->name,
                  upstream, weft_breaker_state_name(from), weft_breaker_state_name(to),
                  weft_breaker_reason_name(reason),
                  weft_log_quote(q, sizeof(q), detail, strlen(detail)));
}

static void on_transition(void *data, weft_breaker_state_t from, weft_breaker_state_t to,
                          weft_breaker_reason_t reason, uint64_t now_ms)
{
    gw_policy_t *p = data;
    p->state = to;
    atomic_store_explicit(&p->fast_state, (int)to, memory_order_release);
    weft_gauge_set(p->state_gauge, state_value(to));
    transition_seen(p, p->breaker, "", from, to, reason, now_ms);
}

static unsigned pct(double v)
{
    return v <= 0 ? 0 : v >= 100 ? 100 : (unsigned)lround(v < 1 ? 1 : v);
}

/* The policy's own copy of r: its name and policy settings, nothing else. */
static gw_route_t *conf_copy(const gw_route_t *r)
{
    gw_route_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->name = strdup(r->name);
    c->rate_limit = r->rate_limit;
    c->rate_limit.key_header = NULL;
    c->breaker = r->breaker;
    c->limits = r->limits;
    c->lb = r->lb;
    c->hash_on = r->hash_on;
    if (!c->name ||
        (r->rate_limit.key_header &&
         !(c->rate_limit.key_header = strdup(r->rate_limit.key_header))) ||
        (r->hash_header && !(c->hash_header = strdup(r->hash_header)))) {
        gw_route_clear(c);
        free(c);
        return NULL;
    }
    return c;
}

/* Under the breaker's mutex: would a success recorded now change nothing that matters?
 * True when it is closed with no failure in a row and no rate rule (which would count the
 * success in its window). Then a success is not recorded at all, and the mutex not taken:
 * what most requests of a healthy upstream cost. A success that skips this way while
 * another worker records a failure is ordered before that failure, as the mutex could have
 * ordered it. */
static bool breaker_quiet(const weft_breaker_t *b, const gw_breaker_conf_t *c, uint64_t now)
{
    if (c->failure_rate > 0 || c->slow_call_rate > 0 ||
        weft_breaker_state(b) != WEFT_BREAKER_CLOSED)
        return false;
    weft_breaker_stats_t st;
    weft_breaker_stats(b, now, &st);
    return st.consecutive_failures == 0;
}

/* The resilience module's options for the route's breaker conf (the route's and each
 * instance's). */
static void breaker_options(const gw_breaker_conf_t *c, weft_breaker_options_t *o)
{
    weft_breaker_options_init(o);
    o->consecutive_failures = (unsigned)c->consecutive_failures;
    o->failure_rate = pct(c->failure_rate);
    o->slow_call_rate = pct(c->slow_call_rate);
    if (c->slow_call_ms) o->slow_call_duration_ms = c->slow_call_ms;
    o->window_ms = c->window_ms < 10 ? 10 : c->window_ms;
    o->min_requests = (unsigned)c->min_requests;
    o->open_for_ms = c->open_for_ms;
    o->open_for_max_ms = c->open_for_max_ms < c->open_for_ms ? c->open_for_ms : c->open_for_max_ms;
    o->half_open_requests = (unsigned)c->half_open_requests;
}

int gw_policy_new(const gw_route_t *r, const gw_policy_metrics_t *m, gw_policy_t **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (!r->rate_limit.on && !r->breaker.on && !r->limits.on && r->lb != GW_LB_RING_HASH) return 0;
    gw_policy_t *p = calloc(1, sizeof(*p));
    gw_route_t *own = p ? conf_copy(r) : NULL;
    if (!own) {
        free(p);
        snprintf(err, errlen, "route %s: out of memory", r->name);
        return WEFT_ENOMEM;
    }
    p->route = r = own;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->hist_mu, NULL);
    pthread_mutex_init(&p->ins_mu, NULL);
    weft_snap_cell_init(&p->insts);
    weft_snap_cell_init(&p->ring_cache);
    p->track = (r->breaker.on && r->breaker.scope != GW_BREAKER_ROUTE) || r->limits.on;
    if (m) {
        p->fam_state = m->state;
        p->fam_transitions = m->transitions;
    }
    const char *rv[1] = {r->name};
    if (r->rate_limit.on) {
        weft_ratelimit_table_options_t o;
        weft_ratelimit_table_options_init(&o);
        const gw_ratelimit_conf_t *c = &r->rate_limit;
        if (c->algorithm == GW_RL_TOKEN_BUCKET) {
            o.limiter.kind = WEFT_RATELIMIT_TOKEN_BUCKET;
            o.limiter.rate = c->rate;
            o.limiter.burst = c->burst;
        } else {
            o.limiter.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
            o.limiter.limit =
                (uint32_t)(c->limit > WEFT_RATELIMIT_WINDOW_MAX ? WEFT_RATELIMIT_WINDOW_MAX
                                                                : c->limit);
            o.limiter.window_ms = c->window_ms;
        }
        /* one key for route and global; many for addresses and headers */
        o.capacity = c->key == GW_RL_KEY_ROUTE || c->key == GW_RL_KEY_GLOBAL ? 16
                     : c->max_keys                                      ? c->max_keys
                                                                        : 1u << 20;
        char why[256];
        if (weft_ratelimit_table_new(&o, &p->rl, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "route %s: rate_limit: %s", r->name, why);
            gw_policy_free(p);
            return WEFT_EINVAL;
        }
        if (m && m->rl_rejected) {
            const char *v[2] = {r->name, c->shadow ? "true" : "false"};
            p->rl_rejected_c = weft_metrics_counter_child(m->rl_rejected, v);
        }
    }
    if (r->breaker.on && r->breaker.scope != GW_BREAKER_INSTANCE) {
        weft_breaker_options_t o;
        breaker_options(&r->breaker, &o);
        o.on_transition = on_transition;
        o.data = p;
        char why[256];
        if (weft_breaker_new(&o, &p->breaker, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "route %s: circuit_breaker: %s", r->name, why);
            gw_policy_free(p);
            return WEFT_EINVAL;
        }
        p->state = WEFT_BREAKER_CLOSED;
        atomic_init(&p->fast_state, (int)WEFT_BREAKER_CLOSED);
        atomic_init(&p->quiet, breaker_quiet(p->breaker, &r->breaker, 0));
        if (m) {
            const char *sv[2] = {r->name, ""};
            if (m->state) p->state_gauge = weft_metrics_gauge_child(m->state, sv);
            weft_gauge_set(p->state_gauge, 0);
            if (m->br_rejected)
                p->breaker_rejected_c = weft_metrics_counter_child(m->br_rejected, rv);
        }
    }
    *out = p;
    return 0;
}

gw_policy_t *gw_policy_ref(gw_policy_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void gw_policy_free(gw_policy_t *p)
{
    /* acq_rel: every use by a thread that dropped its reference happens before the free */
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) return;
    weft_ratelimit_table_free(p->rl);
    weft_breaker_free(p->breaker);
    /* No reader is left (readers hold a table that holds the policy, and none does any
     * more), and this may run in a snapshot's destroy function, where publishing is not
     * allowed: the cells' references are dropped directly. */
    weft_snap_release(atomic_load_explicit(&p->insts.cur, memory_order_acquire));
    weft_snap_release(atomic_load_explicit(&p->ring_cache.cur, memory_order_acquire));
    pthread_mutex_destroy(&p->ins_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->hist_mu);
    gw_route_t *own = (gw_route_t *)p->route;
    gw_route_clear(own);
    free(own);
    free(p);
}

size_t gw_policy_transitions(gw_policy_t *p, gw_transition_t *out, size_t cap, uint64_t *seen)
{
    if (seen) *seen = 0;
    if (!p) return 0;
    pthread_mutex_lock(&p->hist_mu);
    if (seen) *seen = p->nhist;
    uint64_t n = p->nhist < GW_TRANSITIONS_KEPT ? p->nhist : GW_TRANSITIONS_KEPT;
    if (n > cap) n = cap;
    for (uint64_t k = 0; k < n; k++) out[k] = p->hist[(p->nhist - n + k) % GW_TRANSITIONS_KEPT];
    pthread_mutex_unlock(&p->hist_mu);
    return (size_t)n;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool gw_policy_conf_equal(const gw_route_t *a, const gw_route_t *b)
{
    const gw_ratelimit_conf_t *x = &a->rate_limit, *y = &b->rate_limit;
    if (x->on != y->on ||
        (x->on && (x->algorithm != y->algorithm || x->rate != y->rate || x->burst != y->burst ||
                   x->limit != y->limit || x->window_ms != y->window_ms || x->key != y->key ||
                   !str_eq(x->key_header, y->key_header) || x->shadow != y->shadow || x->max_keys != y->max_keys)))
        return false;
    /* the limits and the balancer: a policy reads the first, and exists for ring_hash */
    const gw_limits_conf_t *l = &a->limits, *k = &b->limits;
    if (l->on != k->on || l->max_connections != k->max_connections ||
        l->max_pending != k->max_pending || l->pending_set != k->pending_set ||
        l->max_requests != k->max_requests || a->lb != b->lb)
        return false;
    const gw_breaker_conf_t *c = &a->breaker, *d = &b->breaker;
    return c->on == d->on &&
           (!c->on || (c->consecutive_failures == d->consecutive_failures &&
                       c->failure_rate == d->failure_rate && c->slow_call_ms == d->slow_call_ms &&
                       c->slow_call_rate == d->slow_call_rate && c->window_ms == d->window_ms &&
                       c->min_requests == d->min_requests && c->open_for_ms == d->open_for_ms &&
                       c->open_for_max_ms == d->open_for_max_ms &&
                       c->half_open_requests == d->half_open_requests && c->scope == d->scope &&
                       c->fail_on == d->fail_on && c->nfail_statuses == d->nfail_statuses &&
                       memcmp(c->fail_statuses, d->fail_statuses,
                              c->nfail_statuses * sizeof(c->fail_statuses[0])) == 0));
}

int gw_policy_limit(gw_policy_t *p, const char *key, size_t len, uint64_t now_ms,
                    weft_ratelimit_result_t *res)
{
    if (weft_ratelimit_table_take(p->rl, key, len, now_ms, res)) return 1;
    weft_counter_inc(p->rl_rejected_c);
    if (p->route->rate_limit.shadow) {
        atomic_fetch_add_explicit(&p->rl_shadow, 1, memory_order_relaxed);
        return 1;
    }
    atomic_fetch_add_explicit(&p->rl_rejected, 1, memory_order_relaxed);
    return 0;
}

int gw_policy_allow(gw_policy_t *p, uint64_t now_ms, uint64_t *wait_ms, bool *open)
{
    /* closed: allow() would say yes without changing anything */
    if (atomic_load_explicit(&p->fast_state, memory_order_acquire) == (int)WEFT_BREAKER_CLOSED) {
        *wait_ms = 0;
        *open = false;
        return 1;
    }
    pthread_mutex_lock(&p->mu);
    int ok = weft_breaker_allow(p->breaker, now_ms, wait_ms);
    *open = weft_breaker_state(p->breaker) == WEFT_BREAKER_OPEN;
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        atomic_fetch_add_explicit(&p->breaker_rejected, 1, memory_order_relaxed);
        weft_counter_inc(p->breaker_rejected_c);
    }
    return ok;
}

void gw_policy_record(gw_policy_t *p, uint64_t now_ms, bool ok, uint64_t duration_ms)
{
    if (ok && atomic_load_explicit(&p->quiet, memory_order_acquire)) return;
    pthread_mutex_lock(&p->mu);
    weft_breaker_record(p->breaker, now_ms, ok ? 1 : 0, duration_ms);
    atomic_store_explicit(&p->quiet, breaker_quiet(p->breaker, &p->route->breaker, now_ms),
                          memory_order_release);
    pthread_mutex_unlock(&p->mu);
}

void gw_policy_release(gw_policy_t *p, uint64_t now_ms)
{
    pthread_mutex_lock(&p->mu);
    weft_breaker_release(p->breaker, now_ms);
    atomic_store_explicit(&p->quiet, breaker_quiet(p->breaker, &p->route->breaker, now_ms),
                          memory_order_release);
    pthread_mutex_unlock(&p->mu);
}

/* ---- upstream instances ---- */

struct gw_inst_s {
    gw_policy_t *p;
    uint64_t hash;
    uint16_t port;
    _Atomic unsigned active;  /* tries in flight (admitted, not done) */
    _Atomic uint64_t seen_ms; /* loop clock of the last lookup, to the second */
    _Atomic int state;        /* the breaker's, as of its last transition */
    atomic_bool quiet;        /* a success would change nothing (see breaker_quiet) */
    pthread_mutex_t mu;       /* the breaker is one thread's object: workers take turns */
    weft_breaker_t *breaker;  /* NULL: the route has none */
    weft_gauge_t *gauge;      /* weft_breaker_state{route,upstream} */
    char id[GW_HOST_MAX + 8]; /* "host:port" */
    char host[GW_HOST_MAX + 1];
};

/* The index: an open-addressing table (linear probing, at most half full) of the n
 * instances, also listed in all[]; a snapshot object, replaced whole. */
typedef struct inst_index_s {
    size_t n, mask;
    gw_inst_t **slot;
    gw_inst_t **all;
} inst_index_t;

static uint64_t inst_hash(const char *host, uint16_t port)
{
    uint64_t h = 1469598103934665603ull ^ port; /* FNV-1a over the host, seeded with the port */
    for (const char *c = host; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return h ^ (h >> 29);
}

static void inst_destroy(void *obj)
{
    gw_inst_t *i = obj;
    weft_breaker_free(i->breaker);
    pthread_mutex_destroy(&i->mu);
}

static void index_destroy(void *obj)
{
    inst_index_t *ix = obj;
    for (size_t k = 0; k < ix->n; k++) weft_snap_release(ix->all[k]);
}

static gw_inst_t *index_find(const inst_index_t *ix, uint64_t h, const char *host, uint16_t port)
{
    if (!ix) return NULL;
    for (size_t k = h & ix->mask;; k = (k + 1) & ix->mask) {
        gw_inst_t *i = ix->slot[k];
        if (!i) return NULL;
        if (i->hash == h && i->port == port && strcmp(i->host, host) == 0) return i;
    }
}

static void on_inst_transition(void *data, weft_breaker_state_t from, weft_breaker_state_t to,
                               weft_breaker_reason_t reason, uint64_t now_ms)
{
    gw_inst_t *i = data;
    atomic_store_explicit(&i->state, (int)to, memory_order_release);
    weft_gauge_set(i->gauge, state_value(to));
    transition_seen(i->p, i->breaker, i->id, from, to, reason, now_ms);
}

static gw_inst_t *inst_new(gw_policy_t *p, const char *host, uint16_t port, uint64_t h,
                           uint64_t now)
{
    gw_inst_t *i = weft_snap_alloc(sizeof(*i), inst_destroy);
    if (!i) return NULL;
    i->p = p;
    i->hash = h;
    i->port = port;
    snprintf(i->host, sizeof(i->host), "%s", host);
    snprintf(i->id, sizeof(i->id), "%s:%u", host, port);
    atomic_init(&i->active, 0);
    atomic_init(&i->seen_ms, now);
    atomic_init(&i->state, (int)WEFT_BREAKER_CLOSED);
    pthread_mutex_init(&i->mu, NULL);
    if (p->route->breaker.on && p->route->breaker.scope != GW_BREAKER_ROUTE) {
        weft_breaker_options_t o;
        breaker_options(&p->route->breaker, &o);
        o.on_transition = on_inst_transition;
        o.data = i;
        char why[256];
        /* the options were checked with the route's breaker: this fails for memory only */
        if (weft_breaker_new(&o, &i->breaker, why, sizeof(why)) != 0) {
            weft_snap_release(i);
            return NULL;
        }
        atomic_init(&i->quiet, breaker_quiet(i->breaker, &p->route->breaker, now));
        if (p->fam_state) {
            const char *v[2] = {p->route->name, i->id};
            i->gauge = weft_metrics_gauge_child(p->fam_state, v);
            weft_gauge_set(i->gauge, 0);
        }
    }
    return i;
}

/* Under ins_mu, in a read section: the index with i added (and victim, if any, left out),
 * published. Returns false when out of memory. */
static bool index_replace(gw_policy_t *p, const inst_index_t *old, gw_inst_t *i, gw_inst_t *victim)
{
    size_t n = (old ? old->n : 0) + 1 - (victim ? 1 : 0), slots = 8;
    while (slots < 2 * n) slots *= 2;
    inst_index_t *ix =
        weft_snap_alloc(sizeof(*ix) + (slots + n) * sizeof(gw_inst_t *), index_destroy);
    if (!ix) return false;
    ix->slot = (gw_inst_t **)(ix + 1);
    ix->all = ix->slot + slots;
    ix->mask = slots - 1;
    for (size_t k = 0; k <= (old ? old->n : 0); k++) {
        gw_inst_t *e = old && k < old->n ? old->all[k] : i;
        if (e == victim) continue;
        if (e != i) weft_snap_ref(e); /* the new index's reference; i brings its own */
        ix->all[ix->n++] = e;
        size_t s = e->hash & ix->mask;
        while (ix->slot[s]) s = (s + 1) & ix->mask;
        ix->slot[s] = e;
    }
    weft_snap_publish(&p->insts, ix);
    return true;
}

/* The instance unused longest, if it may give its place: nothing in flight, unused for
 * GW_INST_IDLE_MS. */
static gw_inst_t *index_victim(const inst_index_t *ix, uint64_t now)
{
    gw_inst_t *v = NULL;
    uint64_t oldest = UINT64_MAX;
    for (size_t k = 0; k < ix->n; k++) {
        gw_inst_t *e = ix->all[k];
        uint64_t seen = atomic_load_explicit(&e->seen_ms, memory_order_relaxed);
        if (atomic_load_explicit(&e->active, memory_order_acquire) == 0 && seen < oldest) {
            oldest = seen;
            v = e;
        }
    }
    return v && now >= oldest && now - oldest >= GW_INST_IDLE_MS ? v : NULL;
}

/* The slow path of gw_policy_instance: first sight of host:port. */
static gw_inst_t *instance_add(gw_policy_t *p, const char *host, uint16_t port, uint64_t h,
                               uint64_t now)
{
    if (now < atomic_load_explicit(&p->full_until, memory_order_relaxed)) return NULL;
    pthread_mutex_lock(&p->ins_mu);
    const inst_index_t *ix = weft_snap_get(&p->insts);
    gw_inst_t *i = index_find(ix, h, host, port); /* another worker may have added it */
    if (i) goto out;
    gw_inst_t *victim = NULL;
    if (ix && ix->n >= GW_INST_MAX && !(victim = index_victim(ix, now))) {
        atomic_store_explicit(&p->full_until, now + 1000, memory_order_relaxed);
        weft_warn("gateway", "too many upstream instances to keep state for",
                  "route=%s upstream=%s:%u max=%d", p->route->name, host, port, GW_INST_MAX);
        goto out;
    }
    if (!(i = inst_new(p, host, port, h, now))) goto out;
    if (!index_replace(p, ix, i, victim)) {
        weft_snap_release(i);
        i = NULL;
        goto out;
    }
    if (victim) {
        weft_gauge_set(victim->gauge, 0); /* its series stays; it no longer says open */
        weft_info("gateway", "upstream state evicted", "route=%s upstream=%s unused_ms=%llu",
                  p->route->name, victim->id,
                  (unsigned long long)(now - atomic_load(&victim->seen_ms)));
    }
out:
    pthread_mutex_unlock(&p->ins_mu);
    return i;
}

gw_inst_t *gw_policy_instance(gw_policy_t *p, const char *host, uint16_t port, uint64_t now_ms)
{
    if (!p || !p->track) return NULL;
    uint64_t h = inst_hash(host, port);
    gw_inst_t *i = index_find(weft_snap_get(&p->insts), h, host, port);
    if (!i) return instance_add(p, host, port, h, now_ms);
    /* one store a second at most: the line stays shared between the workers */
    if (now_ms - atomic_load_explicit(&i->seen_ms, memory_order_relaxed) >= 1000)
        atomic_store_explicit(&i->seen_ms, now_ms, memory_order_relaxed);
    return i;
}

gw_admit_t gw_inst_admit(gw_inst_t *i, uint64_t now_ms, uint64_t *wait_ms)
{
    *wait_ms = 0;
    uint64_t max = i->p->route->limits.max_requests;
    unsigned before = atomic_fetch_add_explicit(&i->active, 1, memory_order_acq_rel);
    if (max && before >= max) {
        atomic_fetch_sub_explicit(&i->active, 1, memory_order_release);
        return GW_ADMIT_FULL;
    }
    /* closed: allow() would say yes without changing anything; no lock */
    if (i->breaker &&
        atomic_load_explicit(&i->state, memory_order_acquire) != (int)WEFT_BREAKER_CLOSED) {
        pthread_mutex_lock(&i->mu);
        int ok = weft_breaker_allow(i->breaker, now_ms, wait_ms);
        pthread_mutex_unlock(&i->mu);
        if (!ok) {
            atomic_fetch_sub_explicit(&i->active, 1, memory_order_release);
            return GW_ADMIT_OPEN;
        }
    }
    weft_snap_ref(i);
    return GW_ADMIT_OK;
}

bool gw_inst_done(gw_inst_t *i, uint64_t now_ms, int result, uint64_t duration_ms)
{
    bool open = false;
    if (i->breaker && !(result == 1 && atomic_load_explicit(&i->quiet, memory_order_acquire))) {
        pthread_mutex_lock(&i->mu);
        if (result < 0)
            weft_breaker_release(i->breaker, now_ms);
        else
            weft_breaker_record(i->breaker, now_ms, result, duration_ms);
        atomic_store_explicit(&i->quiet, breaker_quiet(i->breaker, &i->p->route->breaker, now_ms),
                              memory_order_release);
        open = weft_breaker_state(i->breaker) == WEFT_BREAKER_OPEN;
        pthread_mutex_unlock(&i->mu);
    }
    atomic_fetch_sub_explicit(&i->active, 1, memory_order_release);
    weft_snap_release(i);
    return open;
}

const char *gw_inst_id(const gw_inst_t *i)
{
    return i->id;
}

static void upstream_fill(const gw_policy_t *p, gw_inst_t *i, uint64_t now,
                          gw_upstream_state_t *out)
{
    memset(out, 0, sizeof(*out));
    out->state = WEFT_BREAKER_CLOSED;
    if (p) {
        const gw_limits_conf_t *l = &p->route->limits;
        out->max_connections = l->max_connections;
        out->max_pending = l->max_pending;
        out->max_requests = l->max_requests;
        out->pending_set = l->pending_set;
    }
    if (!i) return;
    out->kept = true;
    out->active = atomic_load_explicit(&i->active, memory_order_acquire);
    out->last_used_ms = atomic_load_explicit(&i->seen_ms, memory_order_relaxed);
    if (i->breaker) {
        out->breaker = true;
        pthread_mutex_lock(&i->mu);
        weft_breaker_stats(i->breaker, now, &out->stats);
        pthread_mutex_unlock(&i->mu);
        out->state = out->stats.state;
    }
}

int gw_policy_upstream(gw_policy_t *p, const char *host, uint16_t port, uint64_t now_ms,
                       gw_upstream_state_t *out)
{
    gw_inst_t *i = NULL;
    weft_snap_read_lock();
    if (p && p->track) i = index_find(weft_snap_get(&p->insts), inst_hash(host, port), host, port);
    upstream_fill(p, i, now_ms, out);
    weft_snap_read_unlock();
    return i ? 0 : WEFT_ENOENT;
}

void gw_policy_foreach_upstream(gw_policy_t *p, uint64_t now_ms,
                                void (*fn)(const char *host, uint16_t port,
                                           const gw_upstream_state_t *st, void *arg),
                                void *arg)
{
    if (!p || !p->track) return;
    weft_snap_read_lock();
    const inst_index_t *ix = weft_snap_get(&p->insts);
    for (size_t k = 0; ix && k < ix->n; k++) {
        gw_upstream_state_t st;
        upstream_fill(p, ix->all[k], now_ms, &st);
        fn(ix->all[k]->host, ix->all[k]->port, &st, arg);
    }
    weft_snap_read_unlock();
}

/* ---- ring hash ---- */

#define RING_POINTS_MAX (1u << 20)

int gw_ring_build(const gw_endpoint_t *e, size_t n, weft_ring_t **out)
{
    *out = NULL;
    if (n == 0) return WEFT_EINVAL;
    uint64_t total = 0;
    for (size_t k = 0; k < n; k++) total += e[k].weight ? e[k].weight : 1;
    /* 100 points per unit of weight (each endpoint's share within about 10% of its due);
     * fewer when that would be over a million points */
    unsigned vnodes = total * 100 <= RING_POINTS_MAX ? 100 : (unsigned)(RING_POINTS_MAX / total);
    if (vnodes == 0) vnodes = 1;
    weft_str_t *ids = calloc(n, sizeof(*ids));
    unsigned *w = calloc(n, sizeof(*w));
    char *buf = calloc(n, GW_HOST_MAX + 8);
    int rc = ids && w && buf ? 0 : WEFT_ENOMEM;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        char *id = buf + k * (GW_HOST_MAX + 8);
        int len = snprintf(id, GW_HOST_MAX + 8, "%s:%u", e[k].host, e[k].port);
        ids[k] = (weft_str_t){id, len > 0 ? (size_t)len : 0};
        w[k] = e[k].weight ? e[k].weight : 1;
    }
    if (rc == 0) rc = weft_ring_new(ids, w, n, vnodes, out);
    free(ids);
    free(w);
    free(buf);
    return rc;
}

typedef struct ring_cache_s {
    uint64_t version;
    size_t n;
    weft_ring_t *ring;
} ring_cache_t;

static void ring_cache_destroy(void *obj)
{
    weft_ring_free(((ring_cache_t *)obj)->ring);
}

const weft_ring_t *gw_policy_ring_get(gw_policy_t *p, uint64_t version, size_t n)
{
    const ring_cache_t *c = weft_snap_get(&p->ring_cache);
    return c && c->version == version && c->n == n ? c->ring : NULL;
}

const weft_ring_t *gw_policy_ring_put(gw_policy_t *p, uint64_t version, size_t n, weft_ring_t *ring)
{
    ring_cache_t *c = weft_snap_alloc(sizeof(*c), ring_cache_destroy);
    if (!c) {
        weft_ring_free(ring);
        return NULL;
    }
    *c = (ring_cache_t){version, n, ring};
    weft_snap_publish(&p->ring_cache, c);
    return ring;
}

/* ---- the history's sampler ---- */

/* b's numbers if its mutex is free now; else only the state. */
static void sample_one(weft_breaker_t *b, pthread_mutex_t *mu, int state, const gw_breaker_conf_t *c,
                       uint64_t now_ms, gw_breaker_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    s->state = (weft_breaker_state_t)state;
    s->rate_rule = c->failure_rate > 0;
    if (pthread_mutex_trylock(mu) != 0) return;
    weft_breaker_stats_t st;
    weft_breaker_stats(b, now_ms, &st);
    pthread_mutex_unlock(mu);
    s->stats = true;
    s->state = st.state;
    s->failure_rate = st.window_calls ? (double)st.window_failures / (double)st.window_calls : 0;
    s->window_calls = st.window_calls;
    s->ms_until_half_open = st.ms_until_half_open;
}

void gw_policy_sample(gw_policy_t *p, uint64_t now_ms,
                      void (*fn)(const char *upstream, const gw_breaker_sample_t *s, void *arg),
                      void *arg)
{
    if (!p) return;
    gw_breaker_sample_t s;
    if (p->breaker) {
        sample_one(p->breaker, &p->mu, atomic_load_explicit(&p->fast_state, memory_order_acquire),
                   &p->route->breaker, now_ms, &s);
        fn("", &s, arg);
    }
    if (!p->track) return;
    weft_snap_read_lock();
    const inst_index_t *ix = weft_snap_get(&p->insts);
    for (size_t k = 0; ix && k < ix->n; k++) {
        gw_inst_t *i = ix->all[k];
        if (!i->breaker) continue;
        sample_one(i->breaker, &i->mu, atomic_load_explicit(&i->state, memory_order_acquire),
                   &p->route->breaker, now_ms, &s);
        fn(i->id, &s, arg);
    }
    weft_snap_read_unlock();
}
