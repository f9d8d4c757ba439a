/*
 * balance.c - the pickers that need no table built in advance (weft/balance.h): smooth
 * weighted round robin, least request by power of two choices, weighted random; and the
 * PRNG they share (splitmix64, Vigna's: one 64-bit word of state, passes BigCrush).
 *
 * Exclusion. `tried` is small (the attempts of one call, a handful), so membership is a
 * linear scan of it; an endpoint is eligible when its weight is > 0 and it is not in tried.
 * When no endpoint is eligible but some have weight, tried is ignored (honour() below).
 *
 * Smooth WRR is NGINX's (ngx_http_upstream_get_peer): current[i] += weight[i] for the
 * eligible, pick the largest current, take the eligible total from it. Over a full cycle
 * (sum of weights picks) each endpoint is picked exactly weight times, interleaved.
 *
 * Power of two choices (Mitzenmacher): two distinct eligible endpoints drawn uniformly, the
 * less loaded wins; the draw is by rejection from [0, n) (expected under 2 draws while most
 * endpoints are eligible), falling back after 8 misses to the k-th eligible by a scan. A
 * pick still makes one O(n * ntried) pass to count the eligible (so that 0 and 1 are
 * answered exactly); fine for the tens of endpoints of an upstream, and the place to
 * optimise if a set of thousands shows up in a profile. Weighted random is one such pass.
 *
 * Threads: a weft_swrr_t is one thread's; the rest are pure functions.
 */
#include <stdlib.h>

#include "weft/balance.h"

#define MAX_ENDPOINTS (1u << 24)
#define MAX_WEIGHT    (1u << 20)

uint64_t weft_balance_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int in_tried(unsigned i, const unsigned *tried, size_t ntried)
{
    for (size_t k = 0; k < ntried; k++)
        if (tried[k] == i) return 1;
    return 0;
}

static int weight_ok(const unsigned *weights, size_t i)
{
    return !weights || weights[i] > 0;
}

/* Whether tried is to be honoured: some endpoint of weight > 0 is outside it. */
static int honour(const unsigned *weights, size_t n, const unsigned *tried, size_t ntried)
{
    if (!ntried) return 0;
    for (size_t i = 0; i < n; i++)
        if (weight_ok(weights, i) && !in_tried((unsigned)i, tried, ntried)) return 1;
    return 0;
}

struct weft_swrr_s {
    size_t n;
    unsigned *w;
    int64_t *cur;
};

int weft_swrr_new(const unsigned *weights, size_t n, weft_swrr_t **out)
{
    if (n == 0 || n > MAX_ENDPOINTS) return WEFT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (weights[i] > MAX_WEIGHT) return WEFT_EINVAL;
    weft_swrr_t *s = calloc(1, sizeof(*s));
    unsigned *w = s ? malloc(n * sizeof(*w)) : NULL;
    int64_t *cur = w ? calloc(n, sizeof(*cur)) : NULL;
    if (!cur) {
        free(w);
        free(s);
        return WEFT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) w[i] = weights[i];
    s->n = n;
    s->w = w;
    s->cur = cur;
    *out = s;
    return 0;
}

void weft_swrr_free(weft_swrr_t *s)
{
    if (!s) return;
    free(s->w);
    free(s->cur);
    free(s);
}

int weft_swrr_pick(weft_swrr_t *s, const unsigned *tried, size_t ntried)
{
    int h = honour(s->w, s->n, tried, ntried);
    int64_t total = 0;
    int best = -1;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->w[i] || (h && in_tried((unsigned)i, tried, ntried))) continue;
        s->cur[i] += s->w[i];
        total += s->w[i];
        if (best < 0 || s->cur[i] > s->cur[best]) best = (int)i;
    }
    if (best >= 0) s->cur[best] -= total;
    return best;
}

static int eligible(const unsigned *weights, size_t i, int h, const unsigned *tried, size_t ntried)
{
    return weight_ok(weights, i) && !(h && in_tried((unsigned)i, tried, ntried));
}

/* A uniformly drawn eligible endpoint other than `not` (-1: none excluded); m eligible in
 * all (m >= 1, or 2 when not >= 0). */
static int draw(const unsigned *weights, size_t n, int h, const unsigned *tried, size_t ntried,
                size_t m, int not, uint64_t *rng)
{
    for (int tries = 0; tries < 8; tries++) {
        size_t i = (size_t)(weft_balance_rand(rng) % n);
        if ((int)i != not &&eligible(weights, i, h, tried, ntried)) return (int)i;
    }
    size_t k = (size_t)(weft_balance_rand(rng) % (not >= 0 ? m - 1 : m));
    for (size_t i = 0; i < n; i++) {
        if ((int)i == not || !eligible(weights, i, h, tried, ntried)) continue;
        if (k-- == 0) return (int)i;
    }
    return -1; /* not reached: m counted them */
}

int weft_balance_p2c(const unsigned *active, const unsigned *weights, size_t n,
                     const unsigned *tried, size_t ntried, uint64_t *rng)
{
    int h = honour(weights, n, tried, ntried);
    size_t m = 0;
    int only = -1;
    for (size_t i = 0; i < n; i++)
        if (eligible(weights, i, h, tried, ntried)) {
            m++;
            only = (int)i;
        }
    if (m <= 1) return only;
    int a = draw(weights, n, h, tried, ntried, m, -1, rng);
    int b = draw(weights, n, h, tried, ntried, m, a, rng);
    if (!weights) return active[b] < active[a] ? b : a;
    /* (active_b + 1) / w_b < (active_a + 1) / w_a, without division */
    uint64_t lb = ((uint64_t)active[b] + 1) * weights[a];
    uint64_t la = ((uint64_t)active[a] + 1) * weights[b];
    return lb < la ? b : a;
}

int weft_balance_weighted_random(const unsigned *weights, size_t n, const unsigned *tried,
                                 size_t ntried, uint64_t rnd)
{
    int h = honour(weights, n, tried, ntried);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (eligible(weights, i, h, tried, ntried)) total += weights[i];
    if (!total) return -1;
    uint64_t r = rnd % total;
    for (size_t i = 0; i < n; i++) {
        if (!eligible(weights, i, h, tried, ntried)) continue;
        if (r < weights[i]) return (int)i;
        r -= weights[i];
    }
    return -1; /* not reached */
}
