/**
 * weft/workers.h - a group of worker threads, each running its own libuv loop.
 *
 * This is the process model of DESIGN.md: N threads, one uv_loop_t each, sharing nothing
 * mutable on the hot path. Servers attach a listener to each loop (SO_REUSEPORT), and the
 * owner of the group (the service SDK, `weft serve`) runs control work on its own loop.
 *
 * Life cycle: weft_workers_new -> weft_workers_start (runs an init function on every
 * worker thread, waits for all of them) -> ... weft_workers_post to run functions on a
 * worker ... -> weft_workers_stop (runs a stop function on every worker; each worker's loop
 * then ends once the handles it holds are closed) -> weft_workers_join -> weft_workers_free.
 *
 * Every worker thread is registered as an RCU reader of weft's snapshots (route tables,
 * instance sets) for its whole life, init and stop functions included, so code running on
 * a worker may read them without registering. Threads not made here register themselves.
 */
#ifndef WEFT_WORKERS_H
#define WEFT_WORKERS_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The most worker threads one group may have. */
#define WEFT_WORKERS_MAX 256

typedef struct weft_workers_s weft_workers_t;

/** A function run on a worker thread, with that worker's loop and index (0..n-1). */
typedef void (*weft_worker_fn)(struct uv_loop_s *loop, unsigned index, void *arg);

/**
 * Creates a group of n threads (0 means one per online CPU; at most WEFT_WORKERS_MAX).
 * No thread runs before weft_workers_start. Returns 0 and *out, or WEFT_EINVAL/WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_workers_new(unsigned n, weft_workers_t **out);

/** Number of workers in the group. */
WEFT_EXTERN unsigned weft_workers_count(const weft_workers_t *w);

/**
 * Starts the threads. Each runs init(loop, index, arg) on its own thread before its loop
 * runs; this call returns once every init has returned. init may be NULL.
 * Returns 0 or a negative error (a thread could not be created; those already started are
 * stopped and joined before returning).
 */
WEFT_EXTERN int weft_workers_start(weft_workers_t *w, weft_worker_fn init, void *arg);

/**
 * Busy polling, off unless set, and set only before weft_workers_start: a worker about to
 * block for events first polls for them without blocking, for at most max_us, and in all
 * for at most share_pct% of the time it spent working, and only while its thread's CPU
 * time shows it busy at least 75% of its last 2 ms (idle and moderately loaded workers
 * never spin). weft_service turns it on by default (http.busy_poll_us, 30). Near
 * saturation this spares requests the wake-up of a sleeping thread (tens of microseconds on
 * a virtual machine) and the pile-up behind it; the cost is CPU, bounded by share_pct.
 * max_us 0 or share_pct 0: off.
 */
WEFT_EXTERN void weft_workers_set_busy_poll(weft_workers_t *w, uint64_t max_us, unsigned share_pct);

/**
 * Runs fn(loop, index, arg) on worker index's thread, soon. Any thread may call it.
 * Returns 0, WEFT_ECLOSED once the worker is stopping, WEFT_ELIMIT when 1024 posts are
 * already waiting for that worker, or WEFT_ENOMEM. On error fn never runs.
 */
WEFT_EXTERN int weft_workers_post(weft_workers_t *w, unsigned index, weft_worker_fn fn, void *arg);

/**
 * Asks every worker to stop: each runs fn(loop, index, arg) (fn may be NULL), then stops
 * taking posts; its loop ends when every handle on it is closed, so fn must start closing
 * the handles its owner put there. Any thread may call it; calling it twice does nothing.
 */
WEFT_EXTERN void weft_workers_stop(weft_workers_t *w, weft_worker_fn fn, void *arg);

/**
 * As weft_workers_stop, but each worker keeps taking posts after fn ran, until its own
 * thread calls weft_workers_release: for a worker whose shutdown waits on answers that other
 * threads post to it (a request held by a handler whose answer comes from the control loop).
 */
WEFT_EXTERN void weft_workers_stop_held(weft_workers_t *w, weft_worker_fn fn, void *arg);

/**
 * On worker index's own thread, after weft_workers_stop_held: no more posts are taken, the
 * ones already queued run now, and the worker's loop may end. Calling it again does nothing.
 */
WEFT_EXTERN void weft_workers_release(weft_workers_t *w, unsigned index);

/** Waits for every worker thread to end. Call after weft_workers_stop. */
WEFT_EXTERN void weft_workers_join(weft_workers_t *w);

/** Frees the group; its threads must have been joined (or never started). */
WEFT_EXTERN void weft_workers_free(weft_workers_t *w);

#ifdef __cplusplus
}
#endif
#endif
