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
 * keeps its own copy of what it reads of the route (p->route: the name and the rate_limit
 * and circuit_breaker settings).
 *
 * Threads: any worker; the callbacks run under the mutex of the breaker that moved.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/policy.h"
#include "gateway/route.h"
#include "weft/log.h"

static void on_transition(void *data, weft_breaker_state_t from, weft_breaker_state_t to,
                          weft_breaker_reason_t reason, uint64_t now_ms)
{
    gw_policy_t *p = data;
    (void)now_ms;
    p->state = to;
    weft_gauge_set(p->state_gauge, to == WEFT_BREAKER_CLOSED ? 0 : to == WEFT_BREAKER_OPEN ? 1 : 2);
    if (p->fam_transitions) {
        const char *v[4] = {p->route->name, weft_breaker_state_name(from),
                            weft_breaker_state_name(to), weft_breaker_reason_name(reason)};
        weft_counter_inc(weft_metrics_counter_child(p->fam_transitions, v));
    }
    if (to == WEFT_BREAKER_OPEN)
        weft_warn("gateway", "circuit breaker opened", "route=%s from=%s reason=%s", p->route->name,
                  weft_breaker_state_name(from), weft_breaker_reason_name(reason));
    else
        weft_info("gateway", "circuit breaker moved", "route=%s from=%s to=%s reason=%s",
                  p->route->name, weft_breaker_state_name(from), weft_breaker_state_name(to),
                  weft_breaker_reason_name(reason));
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
    if (!c->name || (r->rate_limit.key_header &&
                     !(c->rate_limit.key_header = strdup(r->rate_limit.key_header)))) {
        gw_route_clear(c);
        free(c);
        return NULL;
    }
    return c;
}

int gw_policy_new(const gw_route_t *r, const gw_policy_metrics_t *m, gw_policy_t **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (!r->rate_limit.on && !r->breaker.on) return 0;
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
        o.capacity = c->key == GW_RL_KEY_ROUTE || c->key == GW_RL_KEY_GLOBAL ? 16 : 1u << 20;
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
    if (r->breaker.on) {
        const gw_breaker_conf_t *c = &r->breaker;
        weft_breaker_options_t o;
        weft_breaker_options_init(&o);
        o.consecutive_failures = (unsigned)c->consecutive_failures;
        o.failure_rate = pct(c->failure_rate);
        o.slow_call_rate = pct(c->slow_call_rate);
        if (c->slow_call_ms) o.slow_call_duration_ms = c->slow_call_ms;
        o.window_ms = c->window_ms < 10 ? 10 : c->window_ms;
        o.min_requests = (unsigned)c->min_requests;
        o.open_for_ms = c->open_for_ms;
        o.open_for_max_ms =
            c->open_for_max_ms < c->open_for_ms ? c->open_for_ms : c->open_for_max_ms;
        o.half_open_requests = (unsigned)c->half_open_requests;
        o.on_transition = on_transition;
        o.data = p;
        char why[256];
        if (weft_breaker_new(&o, &p->breaker, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "route %s: circuit_breaker: %s", r->name, why);
            gw_policy_free(p);
            return WEFT_EINVAL;
        }
        p->state = WEFT_BREAKER_CLOSED;
        if (m) {
            if (m->state) p->state_gauge = weft_metrics_gauge_child(m->state, rv);
            weft_gauge_set(p->state_gauge, 0);
            p->fam_transitions = m->transitions;
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
    pthread_mutex_destroy(&p->mu);
    gw_route_t *own = (gw_route_t *)p->route;
    gw_route_clear(own);
    free(own);
    free(p);
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
                   !str_eq(x->key_header, y->key_header) || x->shadow != y->shadow)))
        return false;
    const gw_breaker_conf_t *c = &a->breaker, *d = &b->breaker;
    return c->on == d->on &&
           (!c->on || (c->consecutive_failures == d->consecutive_failures &&
                       c->failure_rate == d->failure_rate && c->slow_call_ms == d->slow_call_ms &&
                       c->slow_call_rate == d->slow_call_rate && c->window_ms == d->window_ms &&
                       c->min_requests == d->min_requests && c->open_for_ms == d->open_for_ms &&
                       c->open_for_max_ms == d->open_for_max_ms &&
                       c->half_open_requests == d->half_open_requests));
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
    pthread_mutex_lock(&p->mu);
    weft_breaker_record(p->breaker, now_ms, ok ? 1 : 0, duration_ms);
    pthread_mutex_unlock(&p->mu);
}
