/*
 * checker.c - the active health checker (see checker.h): its thread and loop, the inbox
 * that add and remove post to, the table of checks, the schedule, Consul's thresholds and
 * the lateness statistics. checker_probe.c runs one check; checker_spec.c builds one.
 *
 * Threads. weft_checker_new starts a thread of its own running a libuv loop of its own; the
 * checker's HTTP client lives on that loop. add and remove, from any thread, check and
 * copy what they are given (weft__check_build) and post it to the loop's inbox (core/mpsc.h:
 * a lock-free push and a uv_async wake-up); everything else here runs on the checker's
 * thread and needs no lock. The stats are relaxed atomics written by that thread.
 *
 * Table. Checks by key in an open-addressing hash table (linear probing, at most half full,
 * Fibonacci hashing of the 64-bit key, deletion by backward shift so that no tombstones
 * build up as checks come and go). Adding a key that is there replaces the check: the old
 * one leaves (its run in flight, if any, ends unreported) and the new one starts over with
 * its counters at zero and its first run jittered again.
 *
 * Schedule: one binary min-heap of (due time, check), an array, driven by one uv_timer that
 * is armed for the heap's first due time. Each check is in the heap exactly while it is in
 * the table, with the start time of its next run. When the timer fires, every check that is
 * due is taken from the top in due order (at most PUMP_BATCH per callback, so that a backlog
 * cannot keep the loop from its I/O), started, and put back at its next due time, which is
 * its scheduled time plus its interval (not its completion time plus its interval: the
 * period does not drift by the run's duration or the loop's lateness). A check whose run is
 * still in flight when it is due again is not started a second time: that run is skipped
 * (counted in stats.skipped) and the check waits for the next one. A run that starts so late
 * that its next slot has passed too skips the slots it missed. The first run of a new check
 * is at a random point within its first interval (Consul's stagger), so checks added
 * together spread over the interval instead of firing together.
 *
 * Why this and not one uv_timer per check, or a timer wheel: libuv's own timers are a heap
 * too, but of nodes linked through the handles, one per check, scattered in memory; a
 * start, a stop and every firing touch log2(n) of them, with a callback per firing. Here a
 * firing takes every due check in one callback, and the heap's entries (16 bytes: the due
 * time beside the pointer, 160 KB for 10,000 checks) are compared without touching a check.
 * At 10,000 runs a second that is ~14 moves per run, microseconds per second all told. A
 * timer wheel would make each step O(1) but costs a tick whether anything is due or not,
 * rounds due times to its tick, and needs levels (or long slot lists walked again each turn)
 * for intervals from a second to hours; the heap is exact, has nothing to tune, and is not
 * where the time goes (the HTTP exchanges are). max_concurrent also falls out of the heap:
 * when that many runs are in flight the due checks simply stay at the top, the timer is
 * stopped, and the first run to end re-arms it; they then start in due order and their
 * lateness counts.
 *
 * Time: due times are uv_hrtime() nanoseconds, read when a batch starts; the timer is armed
 * in whole milliseconds, rounded up, after uv_update_time. libuv's loop clock is whole
 * milliseconds, so the timer may fire up to a millisecond before the first due time: that
 * batch finds nothing due and only re-arms. Lateness is measured on uv_hrtime, not on the
 * loop clock.
 *
 * Thresholds (Consul's StatusHandler, checker.h): weft__check_would_change says what a
 * result would do without doing it (checker_probe.c asks before it writes an output or
 * keeps a body), weft__check_done does it and calls on_change when the status changes.
 *
 * Lateness: how late each run started (its start minus its due time, in microseconds) goes
 * into a histogram per second: 16 exact buckets below 16 us, then 16 per power of two (6%
 * wide) up to 2^40 us. Ten of them form a ring; every second the tick timer merges the ten
 * (the last 10 s), writes p99 (the upper bound of the bucket that holds it, at most the
 * maximum) and the maximum into the stats, and clears the oldest for the next second. Its
 * cost does not grow with the number of checks: 592 counters a second, 24 KB in all.
 *
 * Bounds: max_checks is held by `held`, which an add reserves before it posts (so the bound
 * is exact from every thread; a replacement frees its reservation once it is applied, so at
 * the very limit a replacement is refused like a new key: remove it first). max_concurrent
 * bounds runs in flight, abandoned ones (their check removed) included. The inbox is
 * bounded too (max_checks plus INBOX_SLACK messages waiting); beyond it add and remove
 * return WEFT_ELIMIT.
 *
 * Shutdown (weft_checker_free, the owner's thread): `closing` is set and every add or remove
 * already past its look at it is waited for (`users`), so no post can follow; an async
 * wakes the loop (an async of its own rather than a message in the inbox: a post can be
 * refused when the inbox is full, a wake-up cannot), which closes the inbox (messages still
 * queued are freed), abandons the TCP probes, closes the client (its calls end with
 * ECANCELED, unreported), frees every check and closes its handles. The loop then runs out
 * of handles, the thread returns, and the owner joins it and frees the rest.
 *
 * Memory: the SDK's rule, never abort. An add that cannot grow the table or heap on the
 * loop is dropped with an error logged (the caller was told 0 already).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "registry/checker_int.h"
#include "weft/log.h"

#define INBOX_BATCH 256   /* messages handled per loop iteration */
#define INBOX_SLACK 65536 /* messages beyond max_checks that may wait in the inbox */
#define PUMP_BATCH  1024  /* runs started (or skipped) per timer callback */
#define MAX_CHECKS  (1u << 26)

typedef struct weft__heap_ent_s {
    uint64_t due; /* uv_hrtime() ns */
    weft__check_t *k;
} heap_ent_t;

#define NO_SLOT SIZE_MAX

static void check_to(weft__check_t *k, weft__check_state_t from, weft__check_state_t to)
{
    WEFT_ASSERT(k->state == from);
    (void)from;
    k->state = to;
}

static void stat_add(atomic_ullong *a, uint64_t n)
{
    atomic_fetch_add_explicit(a, n, memory_order_relaxed);
}

/* xorshift64*: the first-run jitter. Not for secrets. */
static uint64_t rng_next(weft_checker_t *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------------------------ */
/* table                                                                                */

static size_t slot_home(const weft_checker_t *c, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - c->slot_bits));
}

static size_t table_find(const weft_checker_t *c, uint64_t key)
{
    if (!c->slot_bits) return NO_SLOT;
    size_t mask = ((size_t)1 << c->slot_bits) - 1;
    for (size_t i = slot_home(c, key);; i = (i + 1) & mask) {
        weft__check_t *k = c->slots[i];
        if (!k) return NO_SLOT;
        if (k->msg.key == key) return i;
    }
}

/* Puts k in its slot; the table has room (at most half full after). */
static void table_put(weft_checker_t *c, weft__check_t *k)
{
    size_t mask = ((size_t)1 << c->slot_bits) - 1, i = slot_home(c, k->msg.key);
    while (c->slots[i]) i = (i + 1) & mask;
    c->slots[i] = k;
}

/* Empties slot i, moving later entries of its cluster back so that every entry stays
 * reachable from its home without tombstones. */
static void table_delete(weft_checker_t *c, size_t i)
{
    size_t mask = ((size_t)1 << c->slot_bits) - 1;
    c->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; c->slots[j]; j = (j + 1) & mask) {
        size_t h = slot_home(c, c->slots[j]->msg.key);
        /* the entry at j stays unless the hole at i lies between its home and j */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays) continue;
        c->slots[i] = c->slots[j];
        c->slots[j] = NULL;
        i = j;
    }
}

/* Room for one more check in the table and the heap. False: out of memory. */
static bool make_room(weft_checker_t *c)
{
    size_t nslots = c->slot_bits ? (size_t)1 << c->slot_bits : 0;
    if ((c->nchecks + 1) * 2 > nslots) {
        size_t bits = c->slot_bits ? c->slot_bits + 1 : 4;
        weft__check_t **old = c->slots, **s = calloc((size_t)1 << bits, sizeof(*s));
        if (!s) return false;
        c->slots = s;
        c->slot_bits = bits;
        for (size_t i = 0; i < nslots; i++)
            if (old[i]) table_put(c, old[i]);
        free(old);
    }
    if (c->nchecks == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 16;
        heap_ent_t *h = realloc(c->heap, cap * sizeof(*h));
        if (!h) return false;
        c->heap = h;
        c->heap_cap = cap;
    }
    return true;
}

/* ------------------------------------------------------------------------------------ */
/* heap                                                                                 */

static void heap_set(weft_checker_t *c, size_t i, heap_ent_t e)
{
    c->heap[i] = e;
    e.k->heap_i = i;
}

static void sift_up(weft_checker_t *c, size_t i)
{
    heap_ent_t e = c->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (c->heap[parent].due <= e.due) break;
        heap_set(c, i, c->heap[parent]);
        i = parent;
    }
    heap_set(c, i, e);
}

static void sift_down(weft_checker_t *c, size_t i)
{
    heap_ent_t e = c->heap[i];
    size_t n = c->nchecks;
    for (;;) {
        size_t m = 2 * i + 1;
        if (m >= n) break;
        if (m + 1 < n && c->heap[m + 1].due < c->heap[m].due) m++;
        if (c->heap[m].due >= e.due) break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, e);
}

/* Takes entry i out; nchecks is the heap's size before, and is decremented here. */
static void heap_remove(weft_checker_t *c, size_t i)
{
    size_t last = --c->nchecks;
    if (i == last) return;
    heap_set(c, i, c->heap[last]);
    if (i > 0 && c->heap[i].due < c->heap[(i - 1) / 2].due)
        sift_up(c, i);
    else
        sift_down(c, i);
}

/* ------------------------------------------------------------------------------------ */
/* lateness                                                                             */

static unsigned late_bucket(uint64_t us)
{
    if (us < 16) return (unsigned)us;
    unsigned e = 63 - (unsigned)__builtin_clzll(us); /* 4.. */
    if (e > 39) return WEFT__LATE_BUCKETS - 1;
    return 16 + (e - 4) * 16 + (unsigned)((us >> (e - 4)) & 15);
}

/* The largest value that bucket b holds. */
static uint64_t late_upper(unsigned b)
{
    if (b < 16) return b;
    unsigned e = (b - 16) / 16 + 4, sub = (b - 16) % 16;
    return ((uint64_t)(17 + sub) << (e - 4)) - 1;
}

static void late_record(weft_checker_t *c, uint64_t us)
{
    c->late[c->late_cur][late_bucket(us)]++;
    if (us > c->late_max[c->late_cur]) c->late_max[c->late_cur] = us;
}

/* Every second: p99 and max of the last ten seconds into the stats; the oldest second
 * makes room for the next. */
static void on_tick(uv_timer_t *t)
{
    weft_checker_t *c = t->data;
    uint64_t sum[WEFT__LATE_BUCKETS] = {0}, total = 0, max = 0, p99 = 0;
    for (unsigned s = 0; s < WEFT__LATE_SLOTS; s++) {
        for (unsigned b = 0; b < WEFT__LATE_BUCKETS; b++) sum[b] += c->late[s][b];
        if (c->late_max[s] > max) max = c->late_max[s];
    }
    for (unsigned b = 0; b < WEFT__LATE_BUCKETS; b++) total += sum[b];
    if (total) {
        uint64_t rank = total - total / 100, seen = 0; /* ceil(0.99 * total) */
        for (unsigned b = 0; b < WEFT__LATE_BUCKETS; b++) {
            seen += sum[b];
            if (seen >= rank) {
                p99 = late_upper(b);
                break;
            }
        }
        if (p99 > max) p99 = max;
    }
    atomic_store_explicit(&c->st_late_p99, p99, memory_order_relaxed);
    atomic_store_explicit(&c->st_late_max, max, memory_order_relaxed);
    c->late_cur = (c->late_cur + 1) % WEFT__LATE_SLOTS;
    memset(c->late[c->late_cur], 0, sizeof(c->late[c->late_cur]));
    c->late_max[c->late_cur] = 0;
}

/* ------------------------------------------------------------------------------------ */
/* schedule                                                                             */

static void on_timer(uv_timer_t *t);

/* Arms the timer for the first due time; stops it when nothing is held, or when
 * max_concurrent runs are in flight (the first to end arms it again). */
static void arm(weft_checker_t *c)
{
    if (c->stopping) return;
    if (!c->nchecks || c->in_flight >= c->o.max_concurrent) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_update_time(&c->loop);
    uint64_t now = uv_hrtime(), due = c->heap[0].due;
    uint64_t ms = due > now ? (due - now + 999999) / 1000000 : 0;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Moves k (at the heap's top, its due time passed) to its next slot on its own grid: due +
 * interval, or the first slot after now when that one has passed too (counted skipped). */
static void reschedule(weft_checker_t *c, weft__check_t *k, uint64_t now)
{
    WEFT_ASSERT(k->heap_i == 0);
    uint64_t next = c->heap[0].due + k->interval_ns;
    if (next <= now) {
        uint64_t missed = (now - next) / k->interval_ns + 1;
        next += missed * k->interval_ns;
        stat_add(&c->st_skipped, missed);
    }
    c->heap[0].due = next;
    sift_down(c, 0);
}

static void run_link(weft_checker_t *c, weft__check_t *k)
{
    k->run_prev = NULL;
    k->run_next = c->running;
    if (c->running) c->running->run_prev = k;
    c->running = k;
}

static void run_unlink(weft_checker_t *c, weft__check_t *k)
{
    if (k->run_prev)
        k->run_prev->run_next = k->run_next;
    else
        c->running = k->run_next;
    if (k->run_next) k->run_next->run_prev = k->run_prev;
    k->run_prev = k->run_next = NULL;
}

/* Starts every due check, in due order, while runs may start. */
static void on_timer(uv_timer_t *t)
{
    weft_checker_t *c = t->data;
    uint64_t now = uv_hrtime();
    unsigned n = 0;
    while (c->nchecks && c->in_flight < c->o.max_concurrent && n < PUMP_BATCH) {
        heap_ent_t top = c->heap[0];
        if (top.due > now) break;
        weft__check_t *k = top.k;
        n++;
        if (k->state == WEFT__CHECK_RUNNING) { /* the last run is still in flight */
            stat_add(&c->st_skipped, 1);
            reschedule(c, k, now);
            continue;
        }
        late_record(c, (now - top.due) / 1000);
        stat_add(&c->st_runs, 1);
        reschedule(c, k, now);
        check_to(k, WEFT__CHECK_IDLE, WEFT__CHECK_RUNNING);
        run_link(c, k);
        c->in_flight++;
        weft__probe_start(c, k); /* may end at once (weft__check_done) */
    }
    if (n == PUMP_BATCH && !c->stopping) {
        /* more may be due: after this iteration's I/O (a 0 ms timer started from a timer
         * callback would run again within the same pass in libuv 1.44) */
        uv_timer_start(&c->timer, on_timer, 1, 0);
        return;
    }
    arm(c);
}

/* ------------------------------------------------------------------------------------ */
/* thresholds                                                                           */

/* Consul's StatusHandler: the status result leads to (or -1: none yet), and the counters
 * after it. */
static int next_status(const weft__check_t *k, weft_health_t result, unsigned *succ, unsigned *fail)
{
    unsigned s = k->successes, f = k->failures;
    int next = -1;
    if (result == WEFT_HEALTH_PASSING || result == WEFT_HEALTH_WARNING) {
        f = 0;
        if (s < UINT32_MAX) s++;
        if (s >= k->succ_need) next = (int)result;
    } else {
        s = 0;
        if (f < UINT32_MAX) f++;
        if (f >= k->crit_need)
            next = WEFT_HEALTH_CRITICAL;
        else if (f >= k->warn_need)
            next = WEFT_HEALTH_WARNING;
    }
    *succ = s;
    *fail = f;
    return next;
}

bool weft__check_would_change(const weft__check_t *k, weft_health_t result)
{
    unsigned s, f;
    int next = next_status(k, result, &s, &f);
    return !k->reported || (next >= 0 && (weft_health_t)next != k->status);
}

void weft__check_done(weft__check_t *k, weft_health_t result, const char *output)
{
    weft_checker_t *c = k->owner;
    WEFT_ASSERT(c->in_flight > 0);
    bool was_full = c->in_flight >= c->o.max_concurrent;
    run_unlink(c, k);
    c->in_flight--;
    if (k->state == WEFT__CHECK_GONE) { /* removed or replaced meanwhile: unreported */
        weft__ckr_free(k);
    } else {
        check_to(k, WEFT__CHECK_RUNNING, WEFT__CHECK_IDLE);
        unsigned s, f;
        int next = next_status(k, result, &s, &f);
        if (!c->stopping) {
            k->successes = s;
            k->failures = f;
            if (next >= 0 && (weft_health_t)next != k->status) {
                k->status = (weft_health_t)next;
                k->reported = true;
                stat_add(&c->st_changes, 1);
                c->o.on_change(c->o.arg, k->msg.key, k->status, output ? output : "");
            } else if (!k->reported) {
                /* The first result is told even when it keeps the status (a check that
                 * starts critical and fails): its output says why, and nothing else would. */
                k->reported = true;
                c->o.on_change(c->o.arg, k->msg.key, k->status, output ? output : "");
            }
        }
        free(k->out);
        k->out = NULL;
        k->out_len = 0;
    }
    if (was_full) arm(c);
}

/* ------------------------------------------------------------------------------------ */
/* inbox                                                                                */

/* Takes the check in slot i out of the table and the heap; frees it unless a run holds it
 * (that run then ends unreported and frees it). */
static void drop(weft_checker_t *c, size_t i)
{
    weft__check_t *k = c->slots[i];
    table_delete(c, i);
    heap_remove(c, k->heap_i);
    atomic_store_explicit(&c->st_checks, c->nchecks, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->held, 1, memory_order_relaxed);
    if (k->state == WEFT__CHECK_RUNNING) {
        check_to(k, WEFT__CHECK_RUNNING, WEFT__CHECK_GONE);
        return;
    }
    WEFT_ASSERT(k->state == WEFT__CHECK_IDLE);
    weft__ckr_free(k);
}

static void insert(weft_checker_t *c, weft__check_t *k)
{
    size_t i = table_find(c, k->msg.key);
    if (i != NO_SLOT) drop(c, i); /* a replacement */
    if (!make_room(c)) {
        weft_error("checker", "out of memory: check dropped", "key=%llu",
                   (unsigned long long)k->msg.key);
        atomic_fetch_sub_explicit(&c->held, 1, memory_order_relaxed);
        weft__ckr_free(k);
        return;
    }
    table_put(c, k);
    check_to(k, WEFT__CHECK_QUEUED, WEFT__CHECK_IDLE);
    size_t at = c->nchecks++;
    heap_set(c, at, (heap_ent_t){uv_hrtime() + rng_next(c) % k->interval_ns, k});
    sift_up(c, at);
    atomic_store_explicit(&c->st_checks, c->nchecks, memory_order_relaxed);
    if (k->heap_i == 0) arm(c); /* the first due time moved earlier */
}

static void on_item(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    weft_checker_t *c = arg;
    weft__check_msg_t *m = WEFT_MPSC_ITEM(n, weft__check_msg_t, node);
    if (m->type == WEFT__CHECK_MSG_ADD) {
        insert(c, (weft__check_t *)m);
        return;
    }
    size_t i = table_find(c, m->key);
    if (i != NO_SLOT) drop(c, i);
    free(m);
}

static void on_discard(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    weft__check_msg_t *m = WEFT_MPSC_ITEM(n, weft__check_msg_t, node);
    if (m->type == WEFT__CHECK_MSG_ADD)
        weft__ckr_free((weft__check_t *)m);
    else
        free(m);
}

/* ------------------------------------------------------------------------------------ */
/* the thread and shutdown                                                              */

/* Closes every handle of the checker's and frees every check; the loop then runs out of
 * work. Also undoes a partial weft_checker_new (before the thread exists). */
static void close_all(weft_checker_t *c)
{
    c->stopping = true;
    if (c->have_inbox) weft_inbox_close(&c->inbox, NULL);
    if (c->have_async) uv_close((uv_handle_t *)&c->stop_async, NULL);
    if (c->have_timers) {
        uv_close((uv_handle_t *)&c->timer, NULL);
        uv_close((uv_handle_t *)&c->tick, NULL);
    }
    /* TCP runs stop here; HTTP runs end in the client's close (ECANCELED, unreported) */
    for (weft__check_t *k = c->running, *next; k; k = next) {
        next = k->run_next;
        if (k->kind != WEFT_CHECK_TCP) continue;
        weft__probe_abandon(k);
        run_unlink(c, k);
        c->in_flight--;
        if (k->state == WEFT__CHECK_GONE)
            weft__ckr_free(k);
        else
            check_to(k, WEFT__CHECK_RUNNING, WEFT__CHECK_IDLE);
    }
    if (c->client) weft_http_client_close(c->client, NULL, NULL);
    c->client = NULL;
    WEFT_ASSERT(!c->running && c->in_flight == 0);
    size_t nslots = c->slot_bits ? (size_t)1 << c->slot_bits : 0;
    for (size_t i = 0; i < nslots; i++) weft__ckr_free(c->slots[i]);
    free(c->slots);
    free(c->heap);
    c->slots = NULL;
    c->heap = NULL;
    c->slot_bits = c->nchecks = c->heap_cap = 0;
}

static void on_stop(uv_async_t *a)
{
    close_all(a->data);
}

static void run(void *arg)
{
    weft_checker_t *c = arg;
    pthread_setname_np(pthread_self(), "weft-checker");
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------------------------------ */
/* API                                                                                  */

void weft_checker_options_init(weft_checker_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->max_checks = 100000;
    o->max_concurrent = 4096;
}

int weft_checker_new(const weft_checker_options_t *o, weft_checker_t **out)
{
    if (!o || !out || !o->on_change || o->max_checks == 0 || o->max_checks > MAX_CHECKS ||
        o->max_concurrent == 0)
        return WEFT_EINVAL;
    weft_checker_t *c = calloc(1, sizeof(*c));
    if (!c) return WEFT_ENOMEM;
    c->o = *o;
    atomic_init(&c->closing, false);
    atomic_init(&c->users, 0);
    atomic_init(&c->held, 0);
    atomic_init(&c->st_checks, 0);
    atomic_init(&c->st_runs, 0);
    atomic_init(&c->st_changes, 0);
    atomic_init(&c->st_skipped, 0);
    atomic_init(&c->st_late_p99, 0);
    atomic_init(&c->st_late_max, 0);
    c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;
    if (!c->rng) c->rng = 1;

    /* Everything is set up before the thread starts (creating it orders these writes
     * before its first read); from then on only the checker's thread touches the loop. */
    int err = uv_loop_init(&c->loop);
    if (err) {
        free(c);
        return err;
    }
    c->have_loop = true;
    weft_http_client_options_t co;
    weft_http_client_options_init(&co);
    co.request_timeout_ms = WEFT__CHECK_TIMEOUT_MS; /* every call gives its own */
    /* below common servers' idle timeouts (5 s and up), so that a check's request rarely
     * meets a connection the server is closing (a non-idempotent method is not retried) */
    co.idle_timeout_ms = 4000;
    co.max_queue = o->max_concurrent; /* never refuse a call max_concurrent let through */
    co.max_hosts = o->max_checks > 4096 ? (unsigned)o->max_checks : 4096;
    if ((err = weft_http_client_new(&c->loop, &co, &c->client)) != 0) goto fail;
    size_t limit = o->max_checks + INBOX_SLACK;
    if ((err = weft_inbox_init(&c->inbox, &c->loop, limit, INBOX_BATCH, on_item, on_discard, c)) !=
        0)
        goto fail;
    c->have_inbox = true;
    if ((err = uv_async_init(&c->loop, &c->stop_async, on_stop)) != 0) goto fail;
    c->stop_async.data = c;
    c->have_async = true;
    uv_timer_init(&c->loop, &c->timer); /* fill the structs in: cannot fail */
    uv_timer_init(&c->loop, &c->tick);
    c->timer.data = c->tick.data = c;
    c->have_timers = true;
    uv_timer_start(&c->tick, on_tick, 1000, 1000);
    if ((err = uv_thread_create(&c->thread, run, c)) != 0) goto fail;
    *out = c;
    return 0;

fail:
    close_all(c);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    free(c);
    return err;
}

/* An add or remove may post only while the checker is not closing; free waits until none
 * is between this and leave (seq_cst on both sides: either the caller sees closing, or free
 * sees the caller). */
static bool enter(weft_checker_t *c)
{
    atomic_fetch_add(&c->users, 1);
    if (atomic_load(&c->closing)) {
        atomic_fetch_sub(&c->users, 1);
        return false;
    }
    return true;
}

static void leave(weft_checker_t *c)
{
    atomic_fetch_sub(&c->users, 1);
}

int weft_checker_add(weft_checker_t *c, const weft_check_spec_t *spec)
{
    if (!c) return WEFT_EINVAL;
    weft__check_t *k;
    int err = weft__check_build(spec, c, &k);
    if (err) return err;
    if (!enter(c)) {
        weft__ckr_free(k);
        return WEFT_ECLOSED;
    }
    size_t before = atomic_fetch_add_explicit(&c->held, 1, memory_order_relaxed);
    if (before >= c->o.max_checks || weft_inbox_post(&c->inbox, &k->msg.node) != 0) {
        atomic_fetch_sub_explicit(&c->held, 1, memory_order_relaxed);
        leave(c);
        weft__ckr_free(k);
        return WEFT_ELIMIT;
    }
    leave(c);
    return 0;
}

int weft_checker_remove(weft_checker_t *c, uint64_t key)
{
    if (!c) return WEFT_EINVAL;
    weft__check_msg_t *m = malloc(sizeof(*m));
    if (!m) return WEFT_ENOMEM;
    m->type = WEFT__CHECK_MSG_REMOVE;
    m->key = key;
    if (!enter(c)) {
        free(m);
        return WEFT_ECLOSED;
    }
    int err = weft_inbox_post(&c->inbox, &m->node);
    leave(c);
    if (err) free(m);
    return err;
}

weft_checker_stats_t weft_checker_stats(const weft_checker_t *c)
{
    weft_checker_t *w = (weft_checker_t *)c; /* atomics are read, never written */
    weft_checker_stats_t s;
    s.checks = atomic_load_explicit(&w->st_checks, memory_order_relaxed);
    s.runs = atomic_load_explicit(&w->st_runs, memory_order_relaxed);
    s.changes = atomic_load_explicit(&w->st_changes, memory_order_relaxed);
    s.skipped = atomic_load_explicit(&w->st_skipped, memory_order_relaxed);
    s.late_p99_us = atomic_load_explicit(&w->st_late_p99, memory_order_relaxed);
    s.late_max_us = atomic_load_explicit(&w->st_late_max, memory_order_relaxed);
    return s;
}

void weft_checker_free(weft_checker_t *c)
{
    if (!c) return;
    atomic_store(&c->closing, true);
    while (atomic_load(&c->users) != 0) sched_yield();
    uv_async_send(&c->stop_async);
    uv_thread_join(&c->thread);
    int err = uv_loop_close(&c->loop);
    WEFT_ASSERT(err == 0); /* every handle was closed, and uv_run returned */
    (void)err;
    free(c);
}
