/*
 * snapshot.h - immutable snapshots published by RCU from the control loop to the worker
 * loops (internal; the design and its invariants are in snapshot.c).
 *
 * A snapshot is one object (a route table, the healthy instances of a service) that its
 * publisher builds, publishes into a cell, and never changes again. Readers on any number
 * of threads see either the old or the new object, never a half-built one, and take no
 * lock: the read side is a per-thread nesting counter, with no atomic read-modify-write.
 * An object replaced in its cell is freed once no reader can still see it: after an RCU
 * grace period, and after the last hold on it (below) is released.
 *
 *     control loop (publisher)              worker loop (reader), per request
 *     table_t *t = weft_snap_alloc(sizeof(*t), table_destroy);
 *     if (!t) return WEFT_ENOMEM;           weft_snap_read_lock();
 *     ... fill t ...                        const table_t *r = weft_snap_get(&routes);
 *     weft_snap_publish(&routes, t);        ... use r, copy nothing ...
 *                                           weft_snap_read_unlock();
 *
 * A read section must not outlast the callback it is in (a read section left open across
 * loop iterations stalls every grace period: nothing retired is freed any more). A request
 * that needs the snapshot across iterations (a proxied request waiting for its upstream)
 * takes a hold with weft_snap_hold or weft_snap_ref and gives it back with
 * weft_snap_release.
 *
 * Threads: a thread that reads (read_lock, get, hold) must be registered with
 * weft_snap_thread_register. The SDK's worker threads (weft/workers.h) are registered for
 * the whole life of their loop by workers.c; any other thread that reads registers itself
 * (the control loop if it reads what it publishes, tests). Publishing and releasing work on
 * any thread; a thread that publishes often should register once, as publish otherwise
 * registers the thread for the moment it needs it (a mutex on each side).
 *
 * Destroy functions run on whichever thread drops the last reference: liburcu's reclaim
 * thread (after a grace period) or the thread whose weft_snap_release was the last. They
 * may release holds on other snapshots (a route table that holds instance sets); they must
 * not publish or call weft_snap_cell_destroy.
 *
 * Memory: weft_snap_alloc returns NULL when out of memory. liburcu itself aborts when it
 * cannot create its reclaim thread (at the first weft_snap_cell_init) or allocate inside
 * rcu_barrier (weft_snap_cell_destroy); neither is on a path that handles requests.
 */
#ifndef WEFT_CORE_SNAPSHOT_H
#define WEFT_CORE_SNAPSHOT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>

/* Where a snapshot is published: the current object, or NULL. The caller owns the memory;
 * it must outlive every thread that may still call weft_snap_get or weft_snap_hold on it. */
typedef struct weft_snap_cell_s {
    _Atomic(void *) cur;
} weft_snap_cell_t;

/* Allocates a snapshot object of size bytes, zeroed and aligned for any type, with one
 * reference, owned by the caller: publish it (the reference passes to the cell) or drop it
 * with weft_snap_release (destroy runs, then the memory is freed). destroy(obj) (may be
 * NULL) frees what the object points to, not the object itself. Returns NULL when out of
 * memory or when size is too large. */
void *weft_snap_alloc(size_t size, void (*destroy)(void *obj));

/* Sets up an empty cell. Also starts liburcu's reclaim thread if it is not running yet, so
 * that no later publish creates a thread. */
void weft_snap_cell_init(weft_snap_cell_t *cell);

/* Makes obj (from weft_snap_alloc, never published before; or NULL) the cell's current
 * object, taking over the caller's reference; the caller must not change obj afterwards.
 * The object it replaces is retired: freed after a grace period, or at the release of its
 * last hold if that comes later. Never waits for readers. Any thread, outside or inside a
 * read section. */
void weft_snap_publish(weft_snap_cell_t *cell, void *obj);

/* Retires the cell's current object, then waits until every object retired so far, by any
 * cell on any thread, has been freed, except those still held (they are freed at their last
 * release). Call it when no thread reads the cell any more, and not inside a read section
 * or a destroy function. The cell may then be freed, or set up again. */
void weft_snap_cell_destroy(weft_snap_cell_t *cell);

/* Registers the calling thread as a reader; the thread must call weft_snap_thread_unregister
 * before it ends. Calls nest: only the outermost pair registers and unregisters. */
void weft_snap_thread_register(void);
/* Undoes one weft_snap_thread_register; never inside a read section. */
void weft_snap_thread_unregister(void);

/* Open and close a read section on a registered thread. Sections nest. Objects got inside
 * one stay valid until it is closed. A few instructions each; no atomic read-modify-write,
 * no fence when the kernel has membarrier (Linux >= 4.3). */
void weft_snap_read_lock(void);
void weft_snap_read_unlock(void);

/* True when the calling thread is inside a read section (for assertions). */
int weft_snap_read_ongoing(void);

/* The cell's current object, or NULL; only inside a read section, and valid only until it
 * ends. One load (acquire: the publisher's writes to the object are visible); debug builds
 * also check that a read section is open. */
static inline void *weft_snap_get(const weft_snap_cell_t *cell)
{
    assert(weft_snap_read_ongoing());
    return atomic_load_explicit((_Atomic(void *) *)&cell->cur, memory_order_acquire);
}

/* Holds the cell's current object across read sections and loop iterations: returns it
 * with one more reference (give it back with weft_snap_release), or NULL when the cell is
 * empty. Inside or outside a read section (it opens its own), on a registered thread. Note
 * that it reads the cell again: inside a read section, to keep the very object already got
 * from weft_snap_get, use weft_snap_ref on it instead. */
void *weft_snap_hold(const weft_snap_cell_t *cell);

/* Takes one more reference on obj and returns it. obj must be one the caller holds, or
 * one it got from weft_snap_get in the read section still open. */
void *weft_snap_ref(void *obj);

/* Drops one reference on obj (NULL does nothing). The last one frees it: destroy(obj) runs
 * on this thread, then the memory is freed. Any thread, registered or not. */
void weft_snap_release(void *obj);

#endif
