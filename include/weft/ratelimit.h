/**
 * weft/ratelimit.h - rate limiters: a token bucket (as GCRA), a sliding window, and a table
 * of either kind keyed by client (IP address, API key) in bounded memory.
 *
 * Time: the caller gives now_ms, milliseconds on a monotonic clock shared by every thread
 * that uses one limiter; nothing here reads a clock.
 *
 * Threads: any. A limiter's whole state is one 64-bit atomic word updated by compare-and-
 * swap, so a limit holds exactly across the threads that share it, with no lock; the keyed
 * table is lock-free too (see weft_ratelimit_table_new for what a race can and cannot do).
 *
 * Every decision comes with what the IETF RateLimit and Retry-After headers need
 * (weft_ratelimit_result_t).
 */
#ifndef WEFT_RATELIMIT_H
#define WEFT_RATELIMIT_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_ratelimit_kind_e {
    /* GCRA: rate per second, bursts up to burst. Exact (to a nanosecond of emission
     * interval): over any time t from a full bucket it admits at most burst + rate * t. */
    WEFT_RATELIMIT_TOKEN_BUCKET = 0,
    /* At most about limit per sliding window_ms: the two-window weighted counter (see
     * src/resilience/window.c); limit <= WEFT_RATELIMIT_WINDOW_MAX. */
    WEFT_RATELIMIT_SLIDING_WINDOW,
} weft_ratelimit_kind_t;

#define WEFT_RATELIMIT_WINDOW_MAX 1048575u /* 2^20 - 1: counts share one 64-bit word */

/** Options of one limiter; weft_ratelimit_options_init fills the defaults. */
typedef struct weft_ratelimit_options_s {
    weft_ratelimit_kind_t kind; /* default TOKEN_BUCKET */
    double rate;                /* TOKEN_BUCKET: tokens per second, may be fractional (1.0/60
                                   is one a minute); > 0, >= 1e-6; default 100 */
    uint64_t burst;             /* TOKEN_BUCKET: bucket size, >= 1; default 100 */
    uint32_t limit;             /* SLIDING_WINDOW: calls per window; default 100 */
    uint64_t window_ms;         /* SLIDING_WINDOW: default 1000; >= 1 */
} weft_ratelimit_options_t;

/** One decision, with the values of the RateLimit headers. */
typedef struct weft_ratelimit_result_s {
    int allowed;             /* 1 admitted, 0 denied */
    uint64_t limit;          /* the quota: burst (token bucket) or limit (window) */
    uint64_t remaining;      /* calls that would be admitted right after this one */
    uint64_t reset_s;        /* seconds (rounded up) until the quota is whole again */
    uint64_t retry_after_ms; /* denied: ms until a call would be admitted; 0 when allowed */
} weft_ratelimit_result_t;

typedef struct weft_ratelimit_s weft_ratelimit_t;

/** Fills o with the defaults above. */
WEFT_EXTERN void weft_ratelimit_options_init(weft_ratelimit_options_t *o);
/** Checks o; 0 or WEFT_EINVAL with a line naming the field in err (may be NULL). */
WEFT_EXTERN int weft_ratelimit_options_check(const weft_ratelimit_options_t *o, char *err,
                                             size_t errlen);
/** Creates one limiter (a full bucket, an empty window); o may be NULL (defaults). Returns 0
 * and *out, WEFT_EINVAL (message in err) or WEFT_ENOMEM. */
WEFT_EXTERN int weft_ratelimit_new(const weft_ratelimit_options_t *o, weft_ratelimit_t **out,
                                   char *err, size_t errlen);
/** Frees rl; NULL is a no-op. No thread may be using it. */
WEFT_EXTERN void weft_ratelimit_free(weft_ratelimit_t *rl);
/** Takes one call at now_ms: returns 1 admitted or 0 denied; fills *res if not NULL. */
WEFT_EXTERN int weft_ratelimit_take(weft_ratelimit_t *rl, uint64_t now_ms,
                                    weft_ratelimit_result_t *res);

/* ---- the headers of a limited answer ------------------------------------------------ */

/** The values of Retry-After, RateLimit-Policy and RateLimit for one decision, as weft's
 * gateway (a route's 429) and services (weft_service_limit, weft/service.h) send them. */
typedef struct weft_ratelimit_headers_s {
    char retry_after[24]; /* whole seconds until a call would be admitted, rounded up */
    char policy[320];     /* "NAME";q=QUOTA;w=WINDOW_S (a name past ~280 bytes is cut) */
    char state[320];      /* "NAME";r=REMAINING;t=RESET_S */
} weft_ratelimit_headers_t;

/** The window, in whole seconds (rounded up, at least 1), over which o's quota refills:
 * burst / rate for a token bucket, window_ms for a sliding window (RateLimit-Policy's w). */
WEFT_EXTERN uint64_t weft_ratelimit_policy_window_s(const weft_ratelimit_options_t *o);

/** Formats the three header values for decision res of a limiter made with o, whose
 * policy is called name (a route's name, a service's route; NULL: ""), into *out. */
WEFT_EXTERN void weft_ratelimit_headers(const weft_ratelimit_options_t *o, const char *name,
                                        const weft_ratelimit_result_t *res,
                                        weft_ratelimit_headers_t *out);

/* ---- keyed table -------------------------------------------------------------------- */

typedef struct weft_ratelimit_table_s weft_ratelimit_table_t;

typedef struct weft_ratelimit_table_options_s {
    weft_ratelimit_options_t limiter; /* each key's limiter */
    size_t capacity;    /* keys held at once; rounded up to a power of two; default 65536;
                           16 bytes each; at most 2^30 */
    unsigned probe;     /* slots a key may live in (its probe window); default 16; 1..64 */
    int deny_when_full; /* a new key that finds no free slot: 0 (default) admit it and count
                           table_full; 1 deny it */
} weft_ratelimit_table_options_t;

typedef struct weft_ratelimit_table_stats_s {
    uint64_t capacity;   /* slots */
    uint64_t used;       /* slots holding a key (a scan: O(capacity)) */
    uint64_t inserted;   /* counter: keys given an empty slot */
    uint64_t reused;     /* counter: keys given the slot of an idle key */
    uint64_t table_full; /* counter: keys that found no slot */
} weft_ratelimit_table_stats_t;

/** Fills o with the defaults above. */
WEFT_EXTERN void weft_ratelimit_table_options_init(weft_ratelimit_table_options_t *o);

/**
 * Creates a table of limiters keyed by byte strings, in fixed memory (16 bytes a slot,
 * allocated here once). o may be NULL (defaults). Returns 0 and *out, WEFT_EINVAL (message in
 * err) or WEFT_ENOMEM.
 *
 * A key is known by its 64-bit XXH3 hash (two keys with the same hash share a limiter:
 * with a million keys the chance that any two collide is about 3e-8). It lives in one of
 * the `probe` slots after hash % capacity. A key not present takes the first empty slot of
 * its window, else the slot of an idle key (a limiter back to full: a bucket refilled, a
 * window with no count left in it), the one idle longest; a key that finds neither is
 * admitted (or denied, deny_when_full) without a limiter and counted in table_full.
 *
 * Concurrency: open addressing with a per-slot atomic key and state, no lock. Two threads
 * inserting one new key converge on the same empty slot (both try the first one, by
 * compare-and-swap). What a race can do, rarely, when slots are being reused: a key taking
 * over an idle slot at the instant another thread counts a call of the idle key there
 * charges that call to the new key; and two threads inserting one new key into a window
 * with no empty slot may each take a different idle slot, giving the key two limiters until
 * one goes idle (up to one extra burst for that key). Neither can happen while the table
 * has empty slots in the key's window.
 */
WEFT_EXTERN int weft_ratelimit_table_new(const weft_ratelimit_table_options_t *o,
                                         weft_ratelimit_table_t **out, char *err, size_t errlen);
/** Frees t; NULL is a no-op. No thread may be using it. */
WEFT_EXTERN void weft_ratelimit_table_free(weft_ratelimit_table_t *t);
/** Takes one call for key (len bytes) at now_ms: 1 admitted, 0 denied; fills *res. */
WEFT_EXTERN int weft_ratelimit_table_take(weft_ratelimit_table_t *t, const void *key, size_t len,
                                          uint64_t now_ms, weft_ratelimit_result_t *res);
/** Reads the counters. */
WEFT_EXTERN void weft_ratelimit_table_stats(const weft_ratelimit_table_t *t,
                                            weft_ratelimit_table_stats_t *st);
/** Bytes the table holds (its struct and its slots): fixed at creation. */
WEFT_EXTERN size_t weft_ratelimit_table_memory(const weft_ratelimit_table_t *t);

#ifdef __cplusplus
}
#endif
#endif
