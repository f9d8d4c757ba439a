/**
 * weft/balance.h - load balancers: which of N endpoints gets the next call.
 *
 * Endpoints are indexes 0..n-1 into the caller's own array, each with an integer weight
 * (0: never picked). Every picker takes an exclusion set, `tried` (ntried indexes, may be
 * NULL when ntried is 0): the endpoints a call has already been sent to, so that a retry
 * goes elsewhere; it is honoured whenever some endpoint of weight > 0 is not in it, and
 * ignored otherwise (a retry to the same endpoint beats no retry). A pick returns an index,
 * or -1 when n is 0 or every weight is 0.
 *
 * Randomness is the caller's: a pick that needs it takes a random value or a PRNG state
 * (weft_balance_rand), so that tests are deterministic and each thread keeps its own.
 *
 * Threads: a weft_swrr_t is used by one thread (it keeps per-endpoint counters); a ring is
 * immutable once built and may be read by any number of threads; the other pickers are pure.
 */
#ifndef WEFT_BALANCE_H
#define WEFT_BALANCE_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The next value of a splitmix64 generator whose state is *state (any seed): a small,
 * fast PRNG for the pickers and for backoff jitter. Not for secrets. */
WEFT_EXTERN uint64_t weft_balance_rand(uint64_t *state);

/* ---- smooth weighted round robin (NGINX's) --------------------------------------------- */

/**
 * Each pick adds every eligible endpoint's weight to its current value, picks the largest
 * (the lowest index on a tie), and takes the eligible weights' total from it: weights 5,1,1
 * give a a b a c a a, spread evenly rather than a a a a a b c.
 */
typedef struct weft_swrr_s weft_swrr_t;

/** Creates a picker over n endpoints with these weights (copied). Returns 0 and *out,
 * WEFT_EINVAL (n is 0 or above 2^24, or a weight above 2^20) or WEFT_ENOMEM. */
WEFT_EXTERN int weft_swrr_new(const unsigned *weights, size_t n, weft_swrr_t **out);
/** Frees s; NULL is a no-op. */
WEFT_EXTERN void weft_swrr_free(weft_swrr_t *s);
/** The next endpoint, not in tried when another is eligible; -1 if every weight is 0. */
WEFT_EXTERN int weft_swrr_pick(weft_swrr_t *s, const unsigned *tried, size_t ntried);

/* ---- least request, power of two choices ----------------------------------------------- */

/**
 * Draws two distinct eligible endpoints at random (from *rng, advanced) and returns the one
 * with fewer active requests (active[i], the caller's count of calls in flight to i); with
 * weights (may be NULL: all equal) it compares (active + 1) / weight instead. A tie goes to
 * the first drawn. One eligible endpoint: that one.
 */
WEFT_EXTERN int weft_balance_p2c(const unsigned *active, const unsigned *weights, size_t n,
                                 const unsigned *tried, size_t ntried, uint64_t *rng);

/* ---- weighted random -------------------------------------------------------------------- */

/** Endpoint i with probability weights[i] / (sum of the eligible weights), from rnd. */
WEFT_EXTERN int weft_balance_weighted_random(const unsigned *weights, size_t n,
                                             const unsigned *tried, size_t ntried, uint64_t rnd);

/* ---- ring hash (consistent hashing) ---------------------------------------------------- */

/**
 * A ring of vnodes * weight points per endpoint, each the XXH3 hash of the endpoint's id
 * (its stable name, such as "10.0.0.7:8080") with the point's number as seed, sorted. A key
 * goes to the endpoint of the first point at or after the key's hash (wrapping). Because
 * the points depend on the ids, not on the indexes, removing one of N endpoints moves only
 * the keys it held (about 1/N of them), and adding one takes about 1/(N+1).
 * Built once per endpoint set (O(P log P) for P points), then immutable: lookups are a
 * binary search, from any thread.
 */
typedef struct weft_ring_s weft_ring_t;

/** Builds a ring: ids[i] and weights[i] for n endpoints (ids are hashed, not kept); vnodes
 * per unit of weight, 0 for the default 100. Returns 0 and *out, WEFT_EINVAL (n is 0), WEFT_ELIMIT
 * (more than 2^22 points in all: lower vnodes or the weights) or WEFT_ENOMEM. */
WEFT_EXTERN int weft_ring_new(const weft_str_t *ids, const unsigned *weights, size_t n,
                              unsigned vnodes, weft_ring_t **out);
/** Frees r; NULL is a no-op. */
WEFT_EXTERN void weft_ring_free(weft_ring_t *r);
/** The hash of a key (XXH3, 64 bits) as weft_ring_pick wants it. */
WEFT_EXTERN uint64_t weft_ring_hash(const void *key, size_t len);
/** The endpoint for key_hash: the first point's at or after it, skipping points of tried
 * endpoints when another endpoint is eligible; -1 if the ring has no point. */
WEFT_EXTERN int weft_ring_pick(const weft_ring_t *r, uint64_t key_hash, const unsigned *tried,
                               size_t ntried);
/** Points on the ring. */
WEFT_EXTERN size_t weft_ring_points(const weft_ring_t *r);

#ifdef __cplusplus
}
#endif
#endif
