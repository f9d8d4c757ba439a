/*
 * ring.c - the ring hash (consistent hashing, Karger et al.; as Envoy's ring_hash and
 * NGINX's `hash ... consistent`): the same key goes to the same endpoint for as long as
 * that endpoint is in the set, and a change of the set moves few keys.
 *
 * Design: each endpoint contributes vnodes * weight points, point j being the XXH3 hash of
 * the endpoint's id seeded with j; the points are sorted once into one array of
 * {hash, endpoint} (12 bytes of payload, 16 with padding). A key's hash finds its point by
 * binary search (the first point >= it, wrapping to the first). Points depend on ids only,
 * so an endpoint's points are the same in every ring that holds it: removing one frees only
 * the arcs it owned. With 100 points per endpoint the share of keys each one gets stays
 * within about 10% of its weight's share.
 *
 * Exclusion: from the key's point, walk on to the next point of an eligible endpoint.
 *
 * Invariants: points sorted by hash (ties by endpoint index, so the order is deterministic);
 * npoints >= 1 for a ring of any weight.
 *
 * Threads: built by one; then immutable, read by any.
 */
#include <stdlib.h>

#include "resilience/res_int.h"
#include "weft/balance.h"

#define MAX_POINTS (1u << 22)

typedef struct point_s {
    uint64_t hash;
    uint32_t ep;
} point_t;

struct weft_ring_s {
    size_t n;
    size_t npoints;
    point_t *p;
};

static int cmp_point(const void *a, const void *b)
{
    const point_t *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->ep < y->ep ? -1 : x->ep > y->ep;
}

int weft_ring_new(const weft_str_t *ids, const unsigned *weights, size_t n, unsigned vnodes,
                  weft_ring_t **out)
{
    if (n == 0 || n > MAX_POINTS) return WEFT_EINVAL;
    if (vnodes == 0) vnodes = 100;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += (uint64_t)vnodes * weights[i];
        if (total > MAX_POINTS) return WEFT_ELIMIT;
    }
    weft_ring_t *r = calloc(1, sizeof(*r));
    point_t *p = r ? malloc((total ? total : 1) * sizeof(*p)) : NULL;
    if (!p) {
        free(r);
        return WEFT_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t pts = (uint64_t)vnodes * weights[i];
        for (uint64_t j = 0; j < pts; j++)
            p[k++] = (point_t){weft__res_hash_seed(ids[i].base, ids[i].len, j), (uint32_t)i};
    }
    qsort(p, k, sizeof(*p), cmp_point);
    r->n = n;
    r->npoints = k;
    r->p = p;
    *out = r;
    return 0;
}

void weft_ring_free(weft_ring_t *r)
{
    if (!r) return;
    free(r->p);
    free(r);
}

uint64_t weft_ring_hash(const void *key, size_t len)
{
    return weft__res_hash(key, len);
}

size_t weft_ring_points(const weft_ring_t *r)
{
    return r->npoints;
}

static int in_tried(unsigned i, const unsigned *tried, size_t ntried)
{
    for (size_t k = 0; k < ntried; k++)
        if (tried[k] == i) return 1;
    return 0;
}

int weft_ring_pick(const weft_ring_t *r, uint64_t key_hash, const unsigned *tried, size_t ntried)
{
    if (!r->npoints) return -1;
    size_t lo = 0, hi = r->npoints; /* first point with hash >= key_hash */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->p[mid].hash < key_hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->npoints) lo = 0;
    if (!ntried) return (int)r->p[lo].ep;
    for (size_t k = 0; k < r->npoints; k++) { /* at worst once around */
        const point_t *pt = &r->p[(lo + k) % r->npoints];
        if (!in_tried(pt->ep, tried, ntried)) return (int)pt->ep;
    }
    return (int)r->p[lo].ep; /* every endpoint with points was tried */
}
