/*
 * workers.c - N threads, one libuv loop each (see weft/workers.h).
 *
 * Each worker owns a uv_loop_t and a uv_async_t through which other threads hand it work.
 * Posted work sits in a per-worker bounded FIFO guarded by a mutex: posts are rare control
 * traffic (start-up, shutdown, configuration pushes), never per request, so a lock is the
 * simple, correct choice here; the hot path never touches it. Snapshots that workers read
 * per request are published through RCU elsewhere, not through this queue.
 *
 * Threads: weft_workers_post and weft_workers_stop may be called from any thread; the
 * worker fields `loop`, `async` are touched only by the worker's own thread after start.
 * Start-up is a barrier: weft_workers_start returns after every init has run. Each worker
 * thread is a registered snapshot reader (core/snapshot.h) from before its init function
 * until its loop has been closed, so everything run on it may read snapshots.
 *
 * Busy polling (weft_workers_set_busy_poll). A worker that finds nothing to do blocks in
 * epoll_wait; the next event must then wake its thread, and on a virtual machine whose idle
 * vCPU halts, that wake-up costs the waker a VM exit and the request tens of microseconds.
 * Under load the wait is short, so a worker may instead poll its loop's epoll descriptor
 * without blocking for a while before it blocks. To keep that from costing an idle or
 * lightly loaded service anything, the loop runs in windows of about 2 ms
 * (SPIN_WINDOW_NS); at the end of each it reads its thread's CPU clock once, and the
 * worker spins in the next window only if it worked (CPU time, less the time it spun) at
 * least 75% of this one (SPIN_MIN_BUSY_PCT). While it spins, each loop iteration adds to
 * a budget share_pct% of the working share of its wall time, a spin draws on the budget,
 * and the budget never exceeds max. So an idle or moderately loaded worker never spins,
 * and a busy one spins at most share_pct% of its working time. Time lost to preemption
 * counts as idle: a worker that does not get its CPU does not spin. Costs per loop
 * iteration: two reads of the vDSO clock, and uv_run(UV_RUN_ONCE) in place of
 * UV_RUN_DEFAULT. (A first version took the working time from libuv's
 * UV_METRICS_IDLE_TIME, which makes libuv poll without blocking before each blocking poll:
 * a system call more per iteration at light load.) Measured in bench/README.md ("Busy
 * polling").
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/snapshot.h"
#include "weft/workers.h"

#define POST_LIMIT 1024
/* Busy polling only while the worker worked at least this share of its recent time (about
 * the last SPIN_WINDOW_NS): near saturation, where a sleeping worker lets requests pile up.
 * Below it, spinning measured no gain and cost latency and CPU (bench/README.md). */
#define SPIN_MIN_BUSY_PCT 75
#define SPIN_WINDOW_NS    2000000

typedef struct post_s {
    struct post_s *next;
    weft_worker_fn fn;
    void *arg;
    int is_stop;
} post_t;

typedef struct worker_s {
    weft_workers_t *group;
    unsigned index;
    uv_thread_t thread;
    int started;
    uv_loop_t loop;
    uv_async_t async;
    uv_mutex_t mu; /* guards head, tail, npost, closed */
    post_t *head, *tail;
    unsigned npost;
    int closed; /* no more posts are taken */
    int held;   /* weft_workers_stop_held: posts are taken until weft_workers_release */
} worker_t;

struct weft_workers_s {
    unsigned n;
    weft_worker_fn init;
    void *init_arg;
    uv_mutex_t mu; /* guards ready, stopping */
    uv_cond_t cond;
    unsigned ready;
    int stopping;
    uint64_t spin_max_ns; /* busy polling: longest spin; 0: off */
    unsigned spin_share;  /* busy polling: percent of working time a spin may take */
    worker_t workers[];
};

int weft_workers_new(unsigned n, weft_workers_t **out)
{
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    if (n > WEFT_WORKERS_MAX) return WEFT_EINVAL;
    weft_workers_t *w = calloc(1, sizeof(*w) + n * sizeof(worker_t));
    if (!w) return WEFT_ENOMEM;
    w->n = n;
    if (uv_mutex_init(&w->mu) != 0) goto fail_mu;
    if (uv_cond_init(&w->cond) != 0) goto fail_cond;
    unsigned i;
    for (i = 0; i < n; i++) {
        w->workers[i].group = w;
        w->workers[i].index = i;
        if (uv_mutex_init(&w->workers[i].mu) != 0) break;
    }
    if (i < n) {
        while (i-- > 0) uv_mutex_destroy(&w->workers[i].mu);
        uv_cond_destroy(&w->cond);
        goto fail_cond;
    }
    *out = w;
    return 0;
fail_cond:
    uv_mutex_destroy(&w->mu);
fail_mu:
    free(w);
    return WEFT_ENOMEM;
}

unsigned weft_workers_count(const weft_workers_t *w)
{
    return w->n;
}

/* Runs every post queued for this worker; after a stop post, closes the async handle. */
static void on_async(uv_async_t *a)
{
    worker_t *wk = a->data;
    uv_mutex_lock(&wk->mu);
    post_t *p = wk->head;
    wk->head = wk->tail = NULL;
    wk->npost = 0;
    uv_mutex_unlock(&wk->mu);
    int stop = 0;
    while (p) {
        post_t *next = p->next;
        if (p->fn) p->fn(&wk->loop, wk->index, p->arg);
        stop |= p->is_stop;
        free(p);
        p = next;
    }
    uv_mutex_lock(&wk->mu);
    int held = wk->held;
    uv_mutex_unlock(&wk->mu);
    if (stop && !held && !uv_is_closing((uv_handle_t *)&wk->async))
        uv_close((uv_handle_t *)&wk->async, NULL);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Polls the loop's epoll descriptor without blocking until it has an event or the spin
 * allowed by *budget (ns) is used up; takes the time spent from *budget and returns it. */
static uint64_t spin(uv_loop_t *loop, uint64_t *budget)
{
    if (*budget == 0 || uv_backend_timeout(loop) == 0) return 0; /* work is pending already */
    struct pollfd p = {.fd = uv_backend_fd(loop), .events = POLLIN};
    uint64_t t0 = uv_hrtime(), spent = 0;
    while (spent < *budget) {
        if (poll(&p, 1, 0) != 0) break;
        spent = uv_hrtime() - t0;
    }
    *budget = spent < *budget ? *budget - spent : 0;
    return spent;
}

/* CPU time of the calling thread, in ns (a system call: read once per window). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* uv_run(UV_RUN_DEFAULT), with busy polling between iterations when it is on. */
static void run_loop(weft_workers_t *w, uv_loop_t *loop)
{
    if (w->spin_max_ns == 0) {
        uv_run(loop, UV_RUN_DEFAULT);
        return;
    }
    /* The window: its start (wall, thread CPU) and the time spun in it so far. */
    uint64_t win_t0 = uv_hrtime(), win_cpu0 = thread_cpu_ns(), win_spun = 0;
    uint64_t budget = 0;
    uint64_t rate = 0; /* budget per ns of wall time, in millionths: share x the last
                          window's working share; 0: that window was not busy enough */
    for (;;) {
        uint64_t t0 = uv_hrtime();
        if (!uv_run(loop, UV_RUN_ONCE)) return;
        uint64_t now = uv_hrtime();
        if (now - win_t0 >= SPIN_WINDOW_NS) {
            uint64_t cpu = thread_cpu_ns(), wall = now - win_t0;
            uint64_t used = cpu > win_cpu0 ? cpu - win_cpu0 : 0;
            uint64_t work = used > win_spun ? used - win_spun : 0;
            if (work > wall) work = wall;
            rate = work * 100 >= wall * SPIN_MIN_BUSY_PCT
                       ? (uint64_t)((double)work / (double)wall * w->spin_share * 10000)
                       : 0;
            win_t0 = now;
            win_cpu0 = cpu;
            win_spun = 0;
            if (rate == 0) budget = 0;
        }
        if (rate == 0) continue;
        uint64_t iter = now - t0;
        if (iter > SPIN_WINDOW_NS) iter = SPIN_WINDOW_NS;
        budget += iter * rate / 1000000;
        if (budget > w->spin_max_ns) budget = w->spin_max_ns;
        win_spun += spin(loop, &budget);
    }
}

static void worker_run(void *arg)
{
    worker_t *wk = arg;
    weft_workers_t *w = wk->group;
    weft_snap_thread_register();
    if (w->init) w->init(&wk->loop, wk->index, w->init_arg);
    uv_mutex_lock(&w->mu);
    w->ready++;
    uv_cond_broadcast(&w->cond);
    uv_mutex_unlock(&w->mu);
    run_loop(w, &wk->loop);
    if (uv_loop_close(&wk->loop) == UV_EBUSY) {
        /* Handles left open by an owner: close them so the loop can be freed. */
        uv_walk(&wk->loop, close_walk, NULL);
        uv_run(&wk->loop, UV_RUN_DEFAULT);
        uv_loop_close(&wk->loop);
    }
    weft_snap_thread_unregister();
}

/* Closes worker wk's async handle and loop, for a worker whose thread never ran. */
static void unprepare(worker_t *wk)
{
    uv_mutex_lock(&wk->mu);
    wk->started = 0; /* no more posts: the handle is closed next */
    uv_mutex_unlock(&wk->mu);
    uv_close((uv_handle_t *)&wk->async, NULL);
    uv_run(&wk->loop, UV_RUN_DEFAULT);
    uv_loop_close(&wk->loop);
}

int weft_workers_start(weft_workers_t *w, weft_worker_fn init, void *arg)
{
    w->init = init;
    w->init_arg = arg;
    unsigned i, prepared;
    int err = 0;
    /* Every worker takes posts before any thread runs: one already serving may post to
     * one whose thread does not exist yet, and the post waits in its queue. */
    for (prepared = 0; prepared < w->n; prepared++) {
        worker_t *wk = &w->workers[prepared];
        if ((err = uv_loop_init(&wk->loop)) != 0) break;
        if ((err = uv_async_init(&wk->loop, &wk->async, on_async)) != 0) {
            uv_loop_close(&wk->loop);
            break;
        }
        wk->async.data = wk;
        uv_mutex_lock(&wk->mu);
        wk->started = 1;
        uv_mutex_unlock(&wk->mu);
    }
    for (i = 0; err == 0 && i < w->n; i++)
        if ((err = uv_thread_create(&w->workers[i].thread, worker_run, &w->workers[i])) != 0) break;
    for (unsigned j = i; j < prepared; j++) unprepare(&w->workers[j]);
    uv_mutex_lock(&w->mu);
    while (w->ready < i) uv_cond_wait(&w->cond, &w->mu);
    uv_mutex_unlock(&w->mu);
    if (err != 0) {
        weft_workers_stop(w, NULL, NULL);
        weft_workers_join(w);
        return err;
    }
    return 0;
}

void weft_workers_set_busy_poll(weft_workers_t *w, uint64_t max_us, unsigned share_pct)
{
    if (share_pct > 100) share_pct = 100;
    w->spin_max_ns = share_pct ? max_us * 1000 : 0;
    w->spin_share = share_pct;
}

static int post(worker_t *wk, weft_worker_fn fn, void *arg, int is_stop)
{
    post_t *p = malloc(sizeof(*p));
    if (!p) return WEFT_ENOMEM;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    p->is_stop = is_stop;
    uv_mutex_lock(&wk->mu);
    int err = 0;
    if (wk->closed || !wk->started)
        err = WEFT_ECLOSED;
    else if (wk->npost >= POST_LIMIT && !is_stop)
        err = WEFT_ELIMIT;
    if (err == 0) {
        if (wk->tail)
            wk->tail->next = p;
        else
            wk->head = p;
        wk->tail = p;
        wk->npost++;
        if (is_stop) wk->closed = !wk->held;
        uv_async_send(&wk->async); /* under the lock: the handle is not closed yet */
    }
    uv_mutex_unlock(&wk->mu);
    if (err != 0) free(p);
    return err;
}

int weft_workers_post(weft_workers_t *w, unsigned index, weft_worker_fn fn, void *arg)
{
    if (index >= w->n) return WEFT_EINVAL;
    return post(&w->workers[index], fn, arg, 0);
}

static void stop(weft_workers_t *w, weft_worker_fn fn, void *arg, int held)
{
    uv_mutex_lock(&w->mu);
    int already = w->stopping;
    w->stopping = 1;
    uv_mutex_unlock(&w->mu);
    if (already) return;
    for (unsigned i = 0; i < w->n; i++) {
        uv_mutex_lock(&w->workers[i].mu);
        w->workers[i].held = held;
        uv_mutex_unlock(&w->workers[i].mu);
        /* A stop post can only fail on allocation; retry briefly rather than hang a join. */
        for (int tries = 0; tries < 100; tries++) {
            int err = post(&w->workers[i], fn, arg, 1);
            if (err != WEFT_ENOMEM) break;
            uv_sleep(10);
        }
    }
}

void weft_workers_stop(weft_workers_t *w, weft_worker_fn fn, void *arg)
{
    stop(w, fn, arg, 0);
}

void weft_workers_stop_held(weft_workers_t *w, weft_worker_fn fn, void *arg)
{
    stop(w, fn, arg, 1);
}

void weft_workers_release(weft_workers_t *w, unsigned index)
{
    if (index >= w->n) return;
    worker_t *wk = &w->workers[index];
    uv_mutex_lock(&wk->mu);
    int was = wk->held;
    wk->held = 0;
    wk->closed = 1; /* no post can follow: the handle closes below */
    uv_mutex_unlock(&wk->mu);
    if (!was) return;
    on_async(&wk->async); /* what was queued before the close runs now */
    if (!uv_is_closing((uv_handle_t *)&wk->async)) uv_close((uv_handle_t *)&wk->async, NULL);
}

void weft_workers_join(weft_workers_t *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        worker_t *wk = &w->workers[i];
        if (wk->started) {
            uv_thread_join(&wk->thread);
            uv_mutex_lock(&wk->mu);
            wk->started = 0;
            uv_mutex_unlock(&wk->mu);
        }
    }
}

void weft_workers_free(weft_workers_t *w)
{
    if (!w) return;
    for (unsigned i = 0; i < w->n; i++) {
        post_t *p = w->workers[i].head;
        while (p) {
            post_t *next = p->next;
            free(p);
            p = next;
        }
        uv_mutex_destroy(&w->workers[i].mu);
    }
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->mu);
    free(w);
}
