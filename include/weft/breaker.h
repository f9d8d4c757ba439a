/**
 * weft/breaker.h - circuit breaker, retry budget and backoff: the policies that decide
 * whether a call to an upstream is attempted at all, and whether a failed one is tried again.
 *
 * All three are pure state machines on a clock the caller gives: every function that needs
 * the time takes `now_ms`, milliseconds on any monotonic clock (a loop's uv_now(), or
 * weft_now_ns() / 1000000); nothing here reads a clock, sleeps, allocates after creation,
 * or starts a thread. The same clock must be used for every call on one object, and it must
 * not go backwards (a `now_ms` older than the last one seen is treated as equal to it).
 *
 * Threads: a breaker is used by one thread (a gateway worker keeps its own breaker per
 * upstream endpoint; the SDK's client is on one loop), so it has no locks or atomics. A retry
 * budget is atomic counters and may be shared by several threads.
 */
#ifndef WEFT_BREAKER_H
#define WEFT_BREAKER_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- circuit breaker ---------------------------------------------------------------- */

typedef enum weft_breaker_state_e {
    WEFT_BREAKER_CLOSED = 0, /* calls pass; results are counted */
    WEFT_BREAKER_OPEN,       /* calls are rejected until open_for has passed */
    WEFT_BREAKER_HALF_OPEN,  /* half_open_requests trial calls pass; the rest are rejected */
} weft_breaker_state_t;

/** Why a breaker changed state; given to on_transition and kept as the last reason. */
typedef enum weft_breaker_reason_e {
    WEFT_BREAKER_NONE = 0,             /* no transition yet */
    WEFT_BREAKER_CONSECUTIVE_FAILURES, /* CLOSED -> OPEN */
    WEFT_BREAKER_FAILURE_RATE,         /* CLOSED -> OPEN */
    WEFT_BREAKER_SLOW_CALL_RATE,       /* CLOSED -> OPEN */
    WEFT_BREAKER_HALF_OPEN_FAILURE,    /* HALF_OPEN -> OPEN, with a longer open_for */
    WEFT_BREAKER_HALF_OPEN_SUCCESS,    /* HALF_OPEN -> CLOSED: every trial succeeded */
    WEFT_BREAKER_OPEN_TIMEOUT,         /* OPEN -> HALF_OPEN, at the first allow() after */
} weft_breaker_reason_t;

typedef struct weft_breaker_s weft_breaker_t;

/** Called on every state change, from inside weft_breaker_allow or weft_breaker_record. It
 * may read the breaker (accessors) but must not call allow or record on it. */
typedef void (*weft_breaker_cb)(void *data, weft_breaker_state_t from, weft_breaker_state_t to,
                                weft_breaker_reason_t reason, uint64_t now_ms);

/** Options; weft_breaker_options_init fills the defaults. A rule whose threshold is 0 is off;
 * with every rule off the breaker never opens. */
typedef struct weft_breaker_options_s {
    unsigned consecutive_failures;  /* open after this many failures in a row; default 5 */
    unsigned failure_rate;          /* percent 1..100: open when failures reach it over the
                                       window; default 50; 0: off */
    uint64_t slow_call_duration_ms; /* a call taking at least this long is slow; default 1000 */
    unsigned slow_call_rate;        /* percent 1..100 of slow calls that opens; default 0 (off) */
    uint64_t window_ms;          /* sliding window of the rates, in 10 buckets of window_ms/10 each;
                                    default 10000; at least 10 */
    unsigned min_requests;       /* calls in the window before the rates count; default 20 */
    uint64_t open_for_ms;        /* first time spent OPEN; default 5000; at least 1 */
    uint64_t open_for_max_ms;    /* open_for doubles at each re-open from HALF_OPEN, up to
                                    this; default 60000; >= open_for_ms */
    unsigned half_open_requests; /* trials in HALF_OPEN; default 3; at least 1 */
    weft_breaker_cb on_transition; /* optional */
    void *data;                    /* given to on_transition */
} weft_breaker_options_t;

/** Counts and gauges of a breaker, as of `now_ms` (weft_breaker_stats). */
typedef struct weft_breaker_stats_s {
    weft_breaker_state_t state;
    weft_breaker_reason_t last_reason; /* of the last transition; NONE before any */
    unsigned failure_rate;             /* percent of failures in the window (0 if empty) */
    unsigned slow_call_rate;           /* percent of slow calls in the window */
    uint64_t window_calls;             /* calls recorded in the window while CLOSED */
    uint64_t window_failures;
    uint64_t window_slow;
    unsigned consecutive_failures; /* current run */
    uint64_t open_for_ms;          /* the open_for of the current (or next) open */
    uint64_t ms_until_half_open;   /* 0 unless OPEN */
    uint64_t transitions;          /* state changes since creation */
    uint64_t opens;                /* of them, into OPEN */
    uint64_t rejected;             /* allow() calls that returned 0 */
    /* the window and the run of failures as they were when CLOSED last went OPEN (the
     * numbers behind its reason; 0 before any such trip) */
    uint64_t trip_calls, trip_failures, trip_slow;
    unsigned trip_consecutive;
} weft_breaker_stats_t;

/** Fills o with the defaults above. */
WEFT_EXTERN void weft_breaker_options_init(weft_breaker_options_t *o);

/** Checks o. Returns 0, or WEFT_EINVAL with a line naming the bad field in err (errlen bytes;
 * err may be NULL). */
WEFT_EXTERN int weft_breaker_options_check(const weft_breaker_options_t *o, char *err,
                                           size_t errlen);

/** Creates a CLOSED breaker; o may be NULL (defaults) and is copied. Returns 0 and *out,
 * WEFT_EINVAL (see weft_breaker_options_check, message in err) or WEFT_ENOMEM. The caller
 * owns the breaker until weft_breaker_free. */
WEFT_EXTERN int weft_breaker_new(const weft_breaker_options_t *o, weft_breaker_t **out, char *err,
                                 size_t errlen);

/** Frees b; NULL is a no-op. */
WEFT_EXTERN void weft_breaker_free(weft_breaker_t *b);

/**
 * May a call go out now? Returns 1: admitted (the caller must later call weft_breaker_record
 * once for it). Returns 0: rejected; *wait_ms (if not NULL) is the time until the breaker
 * turns half-open (for Retry-After), or 0 when it is HALF_OPEN with every trial already
 * admitted (the answer comes as soon as the trials end). An OPEN breaker whose open_for has
 * passed turns HALF_OPEN here (OPEN_TIMEOUT) and admits this call as its first trial.
 */
WEFT_EXTERN int weft_breaker_allow(weft_breaker_t *b, uint64_t now_ms, uint64_t *wait_ms);

/**
 * The result of an admitted call: ok 1 for success, 0 for failure (what counts as a failure,
 * such as a 5xx or a connect error, is the caller's choice); duration_ms its latency (slow
 * when >= slow_call_duration_ms). In HALF_OPEN a result is a trial's: a failure (or a slow
 * call, when slow_call_rate is on) re-opens at once; the last of half_open_requests
 * successes closes. Results recorded while OPEN (calls admitted before it opened) are
 * ignored, and so are results beyond the trials admitted while HALF_OPEN. A call admitted
 * while CLOSED that ends after the breaker went HALF_OPEN counts as a trial: the breaker has
 * no ticket to tell them apart.
 */
WEFT_EXTERN void weft_breaker_record(weft_breaker_t *b, uint64_t now_ms, int ok,
                                     uint64_t duration_ms);

/**
 * An admitted call that was not made after all, or whose end says nothing about the upstream
 * (the caller went away, another policy refused it after this one admitted it): instead of
 * weft_breaker_record. In HALF_OPEN it gives its trial back, so that a trial that never ends
 * cannot keep the breaker half-open forever; otherwise it does nothing. Like record, it
 * cannot tell a call admitted while CLOSED from a trial: such a call released in HALF_OPEN
 * lets one more trial through.
 */
WEFT_EXTERN void weft_breaker_release(weft_breaker_t *b, uint64_t now_ms);

/** The state now (an OPEN breaker stays OPEN here until allow() sees it has timed out). */
WEFT_EXTERN weft_breaker_state_t weft_breaker_state(const weft_breaker_t *b);

/** Time until an OPEN breaker admits a trial, at now_ms; 0 when not OPEN or already due. */
WEFT_EXTERN uint64_t weft_breaker_ms_until_half_open(const weft_breaker_t *b, uint64_t now_ms);

/** Fills *st with b's counts; the window counts are those of the window ending at now_ms. */
WEFT_EXTERN void weft_breaker_stats(const weft_breaker_t *b, uint64_t now_ms,
                                    weft_breaker_stats_t *st);

/** "closed", "open", "half_open". */
WEFT_EXTERN const char *weft_breaker_state_name(weft_breaker_state_t s);
/** "consecutive_failures", "failure_rate", ..., "none". */
WEFT_EXTERN const char *weft_breaker_reason_name(weft_breaker_reason_t r);

/* ---- retry budget ------------------------------------------------------------------- */

/**
 * Retries in flight are allowed up to ratio percent of the requests in flight, but at
 * least min_retries (so a quiet service can still retry). `requests in flight` counts the
 * original requests (weft_retry_budget_request_start/end), not the retries. All counters
 * are atomic: one budget may be shared by the workers that call one upstream.
 */
typedef struct weft_retry_budget_s weft_retry_budget_t;

typedef struct weft_retry_budget_options_s {
    unsigned ratio;       /* percent 0..1000; default 20 */
    unsigned min_retries; /* concurrent retries always allowed; default 3 */
} weft_retry_budget_options_t;

typedef struct weft_retry_budget_stats_s {
    uint64_t requests_active; /* gauge */
    uint64_t retries_active;  /* gauge */
    uint64_t retries;         /* counter: try_retry said yes */
    uint64_t exhausted;       /* counter: try_retry said no */
} weft_retry_budget_stats_t;

/** Fills o with the defaults above. */
WEFT_EXTERN void weft_retry_budget_options_init(weft_retry_budget_options_t *o);
/** Creates a budget; o may be NULL (defaults). Returns 0 and *out, WEFT_EINVAL (ratio > 1000,
 * message in err) or WEFT_ENOMEM. */
WEFT_EXTERN int weft_retry_budget_new(const weft_retry_budget_options_t *o,
                                      weft_retry_budget_t **out, char *err, size_t errlen);
/** Frees rb; NULL is a no-op. No thread may be using it. */
WEFT_EXTERN void weft_retry_budget_free(weft_retry_budget_t *rb);
/** An original request starts / ends (each start once matched by one end). */
WEFT_EXTERN void weft_retry_budget_request_start(weft_retry_budget_t *rb);
WEFT_EXTERN void weft_retry_budget_request_end(weft_retry_budget_t *rb);
/** May a retry start now? Returns 1 and counts it in flight (end it with
 * weft_retry_budget_retry_end), or 0 and counts an exhaustion. */
WEFT_EXTERN int weft_retry_budget_try_retry(weft_retry_budget_t *rb);
/** A retry that try_retry admitted has ended. */
WEFT_EXTERN void weft_retry_budget_retry_end(weft_retry_budget_t *rb);
/** Reads the counters (each atomically, not all together). */
WEFT_EXTERN void weft_retry_budget_stats(const weft_retry_budget_t *rb,
                                         weft_retry_budget_stats_t *st);

/**
 * AWS's "full jitter" backoff before retry number attempt (0 for the first retry): a value
 * in [0, min(cap_ms, base_ms * 2^attempt)], drawn from rnd (any uniformly random 64-bit
 * value the caller supplies, e.g. from weft_balance_rand). No overflow for any attempt.
 */
WEFT_EXTERN uint64_t weft_backoff_full_jitter(uint64_t base_ms, uint64_t cap_ms, unsigned attempt,
                                              uint64_t rnd);

#ifdef __cplusplus
}
#endif
#endif
