/*
 * discovery_policy.c - which instance of a service a discovery call goes to, and whether
 * it may go at all: the client's balancer and its circuit breaker per instance, built on
 * the resilience module's state machines (weft/balance.h, weft/breaker.h), the same ones
 * the gateway uses.
 *
 * A set is one cache entry's policy state. Its arrays are parallel to the entry's
 * instances (sorted by ID); each update (a new answer from the registry) builds them anew
 * and carries every instance's breaker over by ID, so that a registry answer that lists the
 * same instances again (a tag changed, another instance came) does not forget that one of
 * them is failing. An instance that leaves the passing set loses its breaker: if it comes
 * back, its health check passed again, and it starts CLOSED.
 *
 * Picking is a loop: the balancer proposes an instance outside the exclusion set (the
 * instances the call tried, then those whose breaker refused during this pick); its
 * breaker's allow() decides; a refusal adds it to the set and the balancer proposes
 * another. The balancers ignore an exclusion set that covers everything (weft/balance.h),
 * so a proposal inside the set means nothing is left: WEFT_EBREAKER when a breaker refused
 * one, else WEFT_ENOENT. allow() is asked only of the instance the balancer chose, so a
 * half-open breaker's trials go to calls that would have gone there anyway.
 *
 * Round robin keeps the client's original counter (each instance in ID order, the counter
 * surviving updates) while every weight is equal, and is smooth weighted round robin
 * (weft_swrr_t, rebuilt at each update) when they differ. Ring hash builds its ring at each
 * update from the IDs and weights, so that a key's instance moves only when the set does.
 *
 * Threads: the client's loop thread (a breaker is one thread's object).
 */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "service/discovery_policy.h"

static void on_transition(void *data, weft_breaker_state_t from, weft_breaker_state_t to,
                          weft_breaker_reason_t reason, uint64_t now_ms)
{
    dpol_inst_t *pi = data;
    (void)now_ms;
    const dpol_conf_t *c = pi->set->conf;
    if (c->on_breaker) c->on_breaker(c->data, pi->set->service, pi->id, from, to, reason);
}

void weft__dpol_init(dpol_set_t *s, const dpol_conf_t *c, const char *service, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->conf = c;
    s->service = service;
    s->rng = seed | 1;
}

static void inst_free(dpol_inst_t *pi)
{
    if (!pi) return;
    weft_breaker_free(pi->b);
    free(pi->id);
    free(pi);
}

void weft__dpol_clear(dpol_set_t *s)
{
    for (size_t i = 0; i < s->n; i++) inst_free(s->inst[i]);
    free(s->inst);
    free(s->weights);
    free(s->active);
    free(s->excl);
    weft_swrr_free(s->swrr);
    weft_ring_free(s->ring);
    s->inst = NULL;
    s->weights = s->active = s->excl = NULL;
    s->swrr = NULL;
    s->ring = NULL;
    s->n = 0;
}

static dpol_inst_t *inst_new(dpol_set_t *s, const char *id)
{
    dpol_inst_t *pi = calloc(1, sizeof(*pi));
    if (!pi) return NULL;
    pi->set = s;
    if (!(pi->id = strdup(id))) {
        free(pi);
        return NULL;
    }
    if (s->conf->breaker) {
        weft_breaker_options_t bo = s->conf->bconf;
        bo.on_transition = on_transition;
        bo.data = pi;
        if (weft_breaker_new(&bo, &pi->b, NULL, 0) != 0) { /* options checked by the client */
            free(pi->id);
            free(pi);
            return NULL;
        }
    }
    return pi;
}

int weft__dpol_update(dpol_set_t *s, const weft_discovery_instance_t *inst, size_t n,
                      uint64_t now_ms)
{
    (void)now_ms;
    size_t m = n ? n : 1;
    dpol_inst_t **ni = calloc(m, sizeof(*ni));
    unsigned *w = calloc(m, sizeof(*w)), *act = calloc(m, sizeof(*act)),
             *ex = calloc(m, sizeof(*ex));
    weft_swrr_t *swrr = NULL;
    weft_ring_t *ring = NULL;
    weft_str_t *ids = NULL;
    bool *reused = calloc(s->n ? s->n : 1, sizeof(*reused));
    bool *fresh = calloc(m, sizeof(*fresh));
    if (!ni || !w || !act || !ex || !reused || !fresh) goto nomem;
    bool weighted = false;
    for (size_t i = 0; i < n; i++) {
        w[i] = inst[i].weight ? inst[i].weight : 1;
        if (i && w[i] != w[0]) weighted = true;
    }
    /* carry over by ID: both arrays are sorted */
    for (size_t i = 0, j = 0; i < n;) {
        int c = j < s->n ? strcmp(inst[i].id, s->inst[j]->id) : -1;
        if (c == 0) {
            ni[i++] = s->inst[j];
            reused[j++] = true;
        } else if (c < 0) {
            if (!(ni[i] = inst_new(s, inst[i].id))) goto nomem;
            fresh[i++] = true;
        } else {
            j++;
        }
    }
    if (n && s->conf->policy == WEFT_DISCOVERY_ROUND_ROBIN && weighted &&
        weft_swrr_new(w, n, &swrr) != 0)
        goto nomem;
    if (n && s->conf->policy == WEFT_DISCOVERY_RING_HASH) {
        if (!(ids = calloc(n, sizeof(*ids)))) goto nomem;
        for (size_t i = 0; i < n; i++) ids[i] = (weft_str_t){inst[i].id, strlen(inst[i].id)};
        /* 100 points per unit of weight, fewer when the weights are large (the ring holds
         * at most 2^22), none when even one each is too many: such a set is served at
         * random rather than not updated */
        int rc = weft_ring_new(ids, w, n, n > 1000 ? 10 : 100, &ring);
        if (rc == WEFT_ELIMIT) rc = weft_ring_new(ids, w, n, 1, &ring);
        if (rc == WEFT_ENOMEM) goto nomem;
        if (rc) ring = NULL;
        free(ids);
        ids = NULL;
    }
    /* committed: free what left, tell about what came */
    for (size_t j = 0; j < s->n; j++)
        if (!reused[j]) inst_free(s->inst[j]);
    free(s->inst);
    free(s->weights);
    free(s->active);
    free(s->excl);
    weft_swrr_free(s->swrr);
    weft_ring_free(s->ring);
    s->inst = ni;
    s->weights = w;
    s->active = act;
    s->excl = ex;
    s->swrr = swrr;
    s->ring = ring;
    s->weighted = weighted;
    s->n = n;
    if (s->conf->breaker && s->conf->on_breaker)
        for (size_t i = 0; i < n; i++)
            if (fresh[i])
                s->conf->on_breaker(s->conf->data, s->service, ni[i]->id, WEFT_BREAKER_CLOSED,
                                    WEFT_BREAKER_CLOSED, WEFT_BREAKER_NONE);
    free(reused);
    free(fresh);
    return 0;
nomem:
    if (ni && fresh)
        for (size_t i = 0; i < n; i++)
            if (fresh[i]) inst_free(ni[i]);
    free(ni);
    free(w);
    free(act);
    free(ex);
    free(ids);
    free(reused);
    free(fresh);
    weft_swrr_free(swrr);
    weft_ring_free(ring);
    return WEFT_ENOMEM;
}

static bool in_set(const unsigned *set, size_t n, long i)
{
    for (size_t k = 0; k < n; k++)
        if ((long)set[k] == i) return true;
    return false;
}

/* The balancer's proposal outside excl[0..nexcl): an index, maybe inside excl when nothing
 * outside is left (the balancers then ignore it), or -1. */
static long propose(dpol_set_t *s, const weft_discovery_instance_t *inst, size_t nexcl,
                    bool has_key, uint64_t key_hash)
{
    size_t n = s->n;
    switch (s->conf->policy) {
    case WEFT_DISCOVERY_ROUND_ROBIN:
        if (s->weighted) return weft_swrr_pick(s->swrr, s->excl, nexcl);
        for (size_t k = 0; k < n; k++) {
            size_t i = (s->rr + k) % n;
            if (!in_set(s->excl, nexcl, (long)i)) {
                s->rr = (unsigned)(i + 1);
                return (long)i;
            }
        }
        return -1;
    case WEFT_DISCOVERY_LEAST_OUTSTANDING: {
        /* the fewest in flight, walking from the counter so that ties take turns */
        long best = -1;
        for (size_t k = 0; k < n; k++) {
            size_t i = (s->rr + k) % n;
            if (in_set(s->excl, nexcl, (long)i)) continue;
            if (best < 0 || inst[i].outstanding < inst[best].outstanding) best = (long)i;
        }
        if (best >= 0) s->rr = (unsigned)((size_t)best + 1);
        return best;
    }
    case WEFT_DISCOVERY_LEAST_REQUEST:
        for (size_t i = 0; i < n; i++) s->active[i] = inst[i].outstanding;
        return weft_balance_p2c(s->active, s->weights, n, s->excl, nexcl, &s->rng);
    case WEFT_DISCOVERY_RING_HASH: /* without a key (or a ring): a random instance */
        if (has_key && s->ring) return weft_ring_pick(s->ring, key_hash, s->excl, nexcl);
        /* fall through */
    case WEFT_DISCOVERY_RANDOM:
    default:
        return weft_balance_weighted_random(s->weights, n, s->excl, nexcl,
                                            weft_balance_rand(&s->rng));
    }
}

long weft__dpol_pick(dpol_set_t *s, const weft_discovery_instance_t *inst, const unsigned *tried,
                     size_t ntried, bool has_key, uint64_t key_hash, uint64_t now_ms, int *err)
{
    *err = WEFT_ENOENT;
    if (s->n == 0) return -1;
    size_t nexcl = 0;
    for (size_t k = 0; k < ntried && nexcl < s->n; k++)
        if (tried[k] < s->n && !in_set(s->excl, nexcl, tried[k])) s->excl[nexcl++] = tried[k];
    bool refused = false;
    while (nexcl < s->n) {
        long i = propose(s, inst, nexcl, has_key, key_hash);
        if (i < 0 || (size_t)i >= s->n || in_set(s->excl, nexcl, i)) break;
        dpol_inst_t *pi = s->inst[i];
        if (!pi->b || weft_breaker_allow(pi->b, now_ms, NULL)) return i;
        s->rejected++;
        refused = true;
        s->excl[nexcl++] = (unsigned)i;
    }
    if (refused) *err = WEFT_EBREAKER;
    return -1;
}

static dpol_inst_t *find(const dpol_set_t *s, const char *id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(s->inst[mid]->id, id);
        if (r == 0) return s->inst[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void weft__dpol_record(dpol_set_t *s, const char *id, uint64_t now_ms, bool ok,
                       uint64_t duration_ms)
{
    dpol_inst_t *pi = find(s, id);
    if (pi && pi->b) weft_breaker_record(pi->b, now_ms, ok, duration_ms);
}

weft_breaker_state_t weft__dpol_state(const dpol_set_t *s, const char *id)
{
    const dpol_inst_t *pi = find(s, id);
    return pi && pi->b ? weft_breaker_state(pi->b) : WEFT_BREAKER_CLOSED;
}
