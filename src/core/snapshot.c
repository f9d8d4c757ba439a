/*
 * snapshot.c - RCU publication of immutable snapshots (see core/snapshot.h).
 *
 * What it is for. The control loop owns the catalog; when it changes it builds a new
 * immutable object (route table, healthy instances of a service) and swaps it into a cell.
 * Worker loops read the cell on every request without a lock and without writing any
 * shared cache line. Replaced objects are freed once no reader can see them.
 *
 * Why liburcu's membarrier flavour ("memb") and not QSBR, as DESIGN.md first said. QSBR
 * readers pay nothing per read section, but each reader thread must announce quiescent
 * states, and go offline while it blocks, or grace periods stall. A libuv worker blocks in
 * epoll_wait inside uv_run; to be offline while blocked and online while its callbacks run
 * it would need a hook between poll's return and the I/O callbacks, and libuv has none:
 * prepare handles run before the poll and check handles after the I/O callbacks. A QSBR
 * worker would therefore either stay online while idle (one idle loop stalls every grace
 * period, so nothing is freed) or be offline while its I/O callbacks read snapshots
 * (use-after-free). memb needs no announcements: a thread outside a read section is
 * quiescent whatever it is doing, blocked in epoll_wait included. Its read lock and unlock
 * store a per-thread nesting counter behind a compiler barrier (the writer side pays with
 * the membarrier system call, which makes every reader execute a full barrier); there is
 * no atomic read-modify-write and no fence on the read side. Without membarrier (kernels
 * before 4.3, or a seccomp filter that refuses it) liburcu falls back to a full fence per
 * lock and unlock: slower, still correct.
 *
 * Objects. weft_snap_alloc puts a hidden header in front of the caller's memory:
 *
 *     [ rcu_head | destroy | refs | magic | published ][ caller's object ... ]
 *                                                        ^ the pointer callers see
 *
 * refs counts references: one for the cell the object is published in (before publication,
 * that reference is the creator's, which is how an object never published is dropped with
 * weft_snap_release), plus one per hold.
 *
 * Freeing, and why it happens exactly once. Publishing a new object retires the old one
 * with call_rcu; the callback (on liburcu's reclaim thread, after a grace period) drops the
 * cell's reference. weft_snap_release drops a hold. Both decrement refs with one atomic
 * fetch_sub, and only the decrement that takes refs from 1 to 0 destroys and frees. That is
 * exactly one of them provided refs never rises from 0 again, and it cannot:
 *   - weft_snap_ref increments only when refs >= 1 is guaranteed: either the caller holds a
 *     reference itself, or it is inside a read section that got the object from the cell;
 *     then the cell's reference is still there, because the callback that drops it waits
 *     for every read section that began before the object was unpublished;
 *   - weft_snap_hold is weft_snap_ref inside its own read section.
 * So the last holder's release and the grace-period callback race only on the counter:
 * whichever decrements last frees, the other does nothing, and each of them decrements once
 * (publication is once per object, asserted).
 *
 * Memory order. The cell is a C11 atomic pointer: publish exchanges it with acq_rel (the
 * object's contents before the swap; the old object's contents, from another publisher,
 * after it), weft_snap_get loads it with acquire. This is what rcu_xchg_pointer and
 * rcu_dereference do; on x86-64 the instructions are the same (xchg; a plain mov), and
 * unlike liburcu's inline assembly they are visible to ThreadSanitizer. Decrements of refs
 * are acq_rel, so every use of the object by a thread that dropped a reference happens
 * before destroy runs; increments are relaxed (they follow an existing reference).
 * ThreadSanitizer cannot see liburcu's grace periods or its callback queue (liburcu is not
 * instrumented), so TSan builds annotate them: each read unlock releases a shared address
 * that the callback acquires, and the publisher releases each retired header that the
 * callback acquires. TSan builds also call liburcu's read lock and unlock out of line, as
 * their inlined bodies race on purpose (the grace-period wake-up flag), and tell TSan to
 * ignore liburcu's own allocations, which its uninstrumented queues hand between threads.
 * Other builds compile all of this away.
 *
 * Threads. liburcu requires registration of every thread that takes the read lock, and
 * call_rcu takes it internally, so a publisher must be registered too: publish registers
 * an unregistered caller for the duration of call_rcu (a mutex on each side; long-lived
 * publishers register once). rcu_barrier needs no registration but does nothing (it prints
 * an error) inside a read section, and must not run on the reclaim thread; hence the rules
 * of weft_snap_cell_destroy. Registration nests per thread (a thread-local depth), so a
 * worker's init function may register again without corrupting liburcu's registry, which
 * asserts against double registration.
 *
 * The read lock and unlock are functions here rather than inline functions in the header:
 * liburcu's headers define many unprefixed macros (assert, bool, rdtscll, SYS_*) that
 * would leak into every module that reads snapshots, and the cost is one direct call
 * (a read section with a get measures about 2.6 ns on x86-64). _LGPL_SOURCE inlines
 * liburcu's read lock and unlock into them; those bodies are under ten lines each, which
 * liburcu's headers state is meant for use from code under any license.
 *
 * Errors: weft_snap_alloc returns NULL when out of memory; nothing else here allocates.
 * liburcu aborts the process when it cannot create its reclaim thread or allocate in
 * rcu_barrier (see snapshot.h for where that can happen).
 */
#if defined(__SANITIZE_THREAD__)
#define SNAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SNAP_TSAN 1
#endif
#endif

#ifndef SNAP_TSAN
#define _LGPL_SOURCE /* inline liburcu's read lock and unlock (see above) */
#endif
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include <urcu/urcu-memb.h>

#include "core/snapshot.h"

#ifdef SNAP_TSAN
#include <sanitizer/tsan_interface.h>
static char tsan_readers; /* stands for "every read section closed so far" */
#define TSAN_RELEASE(addr) __tsan_release(addr)
#define TSAN_ACQUIRE(addr) __tsan_acquire(addr)
/* liburcu hands memory it allocated (rcu_barrier's work items) to its reclaim thread, which
 * frees it, through queues TSan cannot see: ignore the calls liburcu itself makes. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:liburcu-memb.so\n"
           "called_from_lib:liburcu-common.so\n";
}
#else
#define TSAN_RELEASE(addr) ((void)0)
#define TSAN_ACQUIRE(addr) ((void)0)
#endif

#define SNAP_MAGIC 0x736e6170u /* "snap" */

typedef struct snap_hdr_s {
    struct rcu_head rcu;        /* call_rcu's link; used once, when the object is retired */
    void (*destroy)(void *obj); /* may be NULL */
    atomic_size_t refs;         /* the cell's (or, before publication, the creator's) + holds */
    uint32_t magic;             /* SNAP_MAGIC until the last reference is dropped */
    uint32_t published;         /* set once, by the publisher, before the object is visible */
    _Alignas(max_align_t) unsigned char obj[];
} snap_hdr_t;

/* How many weft_snap_thread_register calls on this thread are not yet undone. */
static _Thread_local unsigned registered;

static snap_hdr_t *hdr_of(void *obj)
{
    snap_hdr_t *h = (snap_hdr_t *)(void *)((unsigned char *)obj - offsetof(snap_hdr_t, obj));
    assert(h->magic == SNAP_MAGIC);
    return h;
}

void *weft_snap_alloc(size_t size, void (*destroy)(void *obj))
{
    if (size > SIZE_MAX - sizeof(snap_hdr_t)) return NULL;
    snap_hdr_t *h = calloc(1, sizeof(*h) + size);
    if (!h) return NULL;
    h->destroy = destroy;
    atomic_init(&h->refs, 1);
    h->magic = SNAP_MAGIC;
    return h->obj;
}

/* Drops one reference; the last one destroys and frees. */
static void put(snap_hdr_t *h)
{
    size_t before = atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel);
    assert(before >= 1); /* 0: released more often than referenced */
    if (before != 1) return;
    h->magic = 0;
    if (h->destroy) h->destroy(h->obj);
    free(h);
}

/* On liburcu's reclaim thread, once every read section that could see the object is over:
 * drops the cell's reference. */
static void on_grace_period(struct rcu_head *head)
{
    snap_hdr_t *h = (snap_hdr_t *)(void *)((char *)head - offsetof(snap_hdr_t, rcu));
    TSAN_ACQUIRE(h);
    TSAN_ACQUIRE(&tsan_readers);
    put(h);
}

void weft_snap_thread_register(void)
{
    if (registered++ == 0) urcu_memb_register_thread();
}

void weft_snap_thread_unregister(void)
{
    assert(registered > 0);
    if (registered == 0) return;
    if (--registered == 0) {
        assert(!urcu_memb_read_ongoing());
        urcu_memb_unregister_thread();
    }
}

void weft_snap_cell_init(weft_snap_cell_t *cell)
{
    atomic_init(&cell->cur, NULL);
    (void)urcu_memb_get_default_call_rcu_data(); /* starts the reclaim thread once */
}

/* Hands h's cell reference to call_rcu. */
static void retire(snap_hdr_t *h)
{
    int temporary = registered == 0; /* call_rcu takes the read lock internally */
    if (temporary) weft_snap_thread_register();
    TSAN_RELEASE(h);
    urcu_memb_call_rcu(&h->rcu, on_grace_period);
    if (temporary) weft_snap_thread_unregister();
}

void weft_snap_publish(weft_snap_cell_t *cell, void *obj)
{
    if (obj) {
        snap_hdr_t *h = hdr_of(obj);
        assert(!h->published); /* one cell, once: its reference is the cell's */
        h->published = 1;
    }
    void *old = atomic_exchange_explicit(&cell->cur, obj, memory_order_acq_rel);
    if (old) retire(hdr_of(old));
}

void weft_snap_cell_destroy(weft_snap_cell_t *cell)
{
    assert(!urcu_memb_read_ongoing()); /* rcu_barrier would return at once */
    weft_snap_publish(cell, NULL);
    urcu_memb_barrier();
}

void weft_snap_read_lock(void)
{
    assert(registered > 0);
    urcu_memb_read_lock();
}

void weft_snap_read_unlock(void)
{
    TSAN_RELEASE(&tsan_readers);
    urcu_memb_read_unlock();
}

int weft_snap_read_ongoing(void)
{
    return urcu_memb_read_ongoing() != 0;
}

void *weft_snap_ref(void *obj)
{
    size_t before = atomic_fetch_add_explicit(&hdr_of(obj)->refs, 1, memory_order_relaxed);
    assert(before >= 1); /* see "Freeing" above */
    (void)before;
    return obj;
}

void *weft_snap_hold(const weft_snap_cell_t *cell)
{
    weft_snap_read_lock();
    void *obj = weft_snap_get(cell);
    if (obj) weft_snap_ref(obj);
    weft_snap_read_unlock();
    return obj;
}

void weft_snap_release(void *obj)
{
    if (obj) put(hdr_of(obj));
}
