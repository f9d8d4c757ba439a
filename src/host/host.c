/*
 * host.c - several listeners and parts on shared worker loops, and a control loop
 * (see weft/host.h for the model and the shutdown order).
 *
 * Threads. weft_host_run's caller becomes the control loop's thread: signals, the stop
 * request, weft_host_call's functions, the parts' control hooks. The workers (core/workers.c)
 * each run one loop; a worker's loop->data is its hworker_t, through which weft_host_state
 * finds a part's per-worker state with two loads. Nothing the request path touches is shared
 * between workers: each listener has one socket per worker, each part one state per worker.
 *
 * Cross-thread paths, none of them per request:
 *   - weft_host_stop: an atomic count of stop requests and a uv_async_t, sent under
 *     calls_mu so that no send can follow the handle's close; the control loop handles
 *     each new request once (the first drains or shuts down, a second during the drain
 *     skips the rest of the delay). A stop asked before the loop exists is handled as soon
 *     as it does.
 *   - weft_host_call: an inbox (core/mpsc.h) on the control loop. Posters take calls_mu so
 *     that none can post into the inbox while it closes; calls are rare (control traffic),
 *     so a lock is the simple, correct choice.
 *   - weft_host_post: the workers' own post queues (core/workers.c).
 *   - a worker done with its shutdown counts itself in workers_done; the last one wakes
 *     done_async, and the control loop closes its last handles.
 *
 * Invariants: listeners and parts are added only before run (running is false), so the
 * arrays are read without locks once threads exist. Part states live in one block per
 * worker (state_stride bytes), each part at a 16-byte aligned offset.
 *
 * Memory policy: like the SDK, the host never aborts; failures are returned.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mpsc.h"
#include "host/host_int.h"
#include "weft/log.h"
#include "weft/workers.h"

#define CALL_LIMIT  4096
#define CALL_BATCH  64
#define HOST_MAGIC  0x77656674u /* "weft": tells a host worker's loop->data from others */
#define STATE_ALIGN 16

typedef struct part_s {
    weft_host_part_t p;
    char name[32];
    size_t off; /* in a worker's state block */
} part_t;

typedef struct hworker_s {
    uint32_t magic;
    unsigned index;
    weft_host_t *h;
    uv_loop_t *loop;
    char *state;   /* this worker's block of part states */
    unsigned left; /* listeners still shutting down (worker thread) */
} hworker_t;

typedef struct call_s {
    weft_mpsc_node_t node;
    weft_host_fn fn;
    void *arg;
} call_t;

struct weft_host_s {
    weft_host_options_t o;
    char name[64];
    weft_workers_t *workers;
    unsigned n;
    hworker_t *hw;
    char *state_mem;
    size_t state_stride;
    weft_http_server_t *http[WEFT_HOST_LISTENERS_MAX];
    unsigned nhttp;
    struct {
        const weft__listener_ops_t *ops;
        void *l;
    } other[WEFT_HOST_LISTENERS_MAX]; /* UDP and TCP listeners */
    unsigned nother;
    part_t parts[WEFT_HOST_PARTS_MAX];
    unsigned nparts;
    void (*on_start)(weft_host_t *, void *);
    void *on_start_arg;

    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sigusr1, sighup;
    bool hup; /* sighup is open: some part has a reload hook */
    uv_async_t stop_async, done_async;
    uv_timer_t delay_timer;
    weft_inbox_t inbox;
    uv_mutex_t calls_mu; /* guards calls_open and stop_open against the handles' close */
    bool calls_open;     /* weft_host_call may post to the inbox */
    bool stop_open;      /* weft_host_stop may send to stop_async */
    bool delaying;       /* control loop: the shutdown delay runs */
    bool shut;           /* control loop: shut_down ran */
    bool closed;         /* control loop: close_control ran */
    unsigned stops_seen; /* control loop: stop requests handled */
    atomic_uint stops;   /* stop requests made */
    atomic_bool running;
    atomic_bool stopping;
    atomic_uint workers_done;
};

void weft_host_options_init(weft_host_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "weft";
    o->busy_poll_us = 30;
    o->busy_poll_share = 25;
    o->signals = true;
}

int weft_host_new(const weft_host_options_t *o, weft_host_t **out)
{
    weft_host_options_t def;
    if (!o) {
        weft_host_options_init(&def);
        o = &def;
    }
    if (o->workers > WEFT_WORKERS_MAX) return WEFT_EINVAL;
    weft_host_t *h = calloc(1, sizeof(*h));
    if (!h) return WEFT_ENOMEM;
    h->o = *o;
    snprintf(h->name, sizeof(h->name), "%s", o->name ? o->name : "weft");
    h->o.name = h->name;
    int err = weft_workers_new(o->workers, &h->workers);
    if (err) {
        free(h);
        return err;
    }
    weft_workers_set_busy_poll(h->workers, o->busy_poll_us, o->busy_poll_share);
    h->n = weft_workers_count(h->workers);
    h->hw = calloc(h->n, sizeof(hworker_t));
    if (!h->hw || uv_mutex_init(&h->calls_mu) != 0) {
        weft_workers_free(h->workers);
        free(h->hw);
        free(h);
        return WEFT_ENOMEM;
    }
    *out = h;
    return 0;
}

unsigned weft_host_workers(const weft_host_t *h)
{
    return h->n;
}

int weft_host_add_http(weft_host_t *h, weft_http_server_t *srv)
{
    if (atomic_load(&h->running)) return WEFT_ESTATE;
    if (!srv || weft_http_server_loops(srv) != h->n) return WEFT_EINVAL;
    if (h->nhttp >= WEFT_HOST_LISTENERS_MAX) return WEFT_ELIMIT;
    h->http[h->nhttp++] = srv;
    return 0;
}

int weft__host_add_listener(weft_host_t *h, const weft__listener_ops_t *ops, void *l)
{
    if (atomic_load(&h->running)) return WEFT_ESTATE;
    if (h->nother >= WEFT_HOST_LISTENERS_MAX) return WEFT_ELIMIT;
    h->other[h->nother].ops = ops;
    h->other[h->nother++].l = l;
    return 0;
}

int weft_host_add_part(weft_host_t *h, const weft_host_part_t *p)
{
    if (atomic_load(&h->running)) return WEFT_ESTATE;
    if (!p || p->state_size > (64u << 20)) return WEFT_EINVAL;
    if (h->nparts >= WEFT_HOST_PARTS_MAX) return WEFT_ELIMIT;
    part_t *pt = &h->parts[h->nparts];
    pt->p = *p;
    snprintf(pt->name, sizeof(pt->name), "%s", p->name ? p->name : "part");
    pt->p.name = pt->name;
    pt->off = h->state_stride;
    h->state_stride += (p->state_size + STATE_ALIGN - 1) / STATE_ALIGN * STATE_ALIGN;
    return (int)h->nparts++;
}

void *weft_host_state(const uv_loop_t *loop, int id)
{
    const hworker_t *hw = loop->data;
    const part_t *pt = &hw->h->parts[id];
    return pt->p.state_size ? hw->state + pt->off : NULL;
}

unsigned weft_host_worker_index(const uv_loop_t *loop)
{
    const hworker_t *hw = loop ? loop->data : NULL;
    if (!hw || hw->magic != HOST_MAGIC || hw->loop != loop) return ~0u;
    return hw->index;
}

uv_loop_t *weft_host_loop(weft_host_t *h)
{
    return &h->loop;
}

void weft_host_on_start(weft_host_t *h, void (*fn)(weft_host_t *, void *), void *arg)
{
    h->on_start = fn;
    h->on_start_arg = arg;
}

bool weft_host_stopping(const weft_host_t *h)
{
    return atomic_load(&((weft_host_t *)h)->stopping);
}

/* ------------------------------------------------------------------------------------ */
/* posting                                                                              */

typedef struct post_s {
    weft_host_t *h;
    weft_host_fn fn;
    void *arg;
} post_t;

static void run_post(uv_loop_t *loop, unsigned index, void *arg)
{
    post_t p = *(post_t *)arg;
    free(arg);
    p.fn(p.h, loop, index, p.arg);
}

int weft_host_post(weft_host_t *h, unsigned index, weft_host_fn fn, void *arg)
{
    if (!fn || index >= h->n) return WEFT_EINVAL;
    if (!atomic_load(&h->running)) return WEFT_ECLOSED;
    post_t *p = malloc(sizeof(*p));
    if (!p) return WEFT_ENOMEM;
    *p = (post_t){h, fn, arg};
    int err = weft_workers_post(h->workers, index, run_post, p);
    if (err) free(p);
    return err;
}

int weft_host_post_all(weft_host_t *h, weft_host_fn fn, void *arg)
{
    int first = 0;
    for (unsigned i = 0; i < h->n; i++) {
        int err = weft_host_post(h, i, fn, arg);
        if (err && !first) first = err;
    }
    return first;
}

static void on_call(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    weft_host_t *h = arg;
    call_t *c = WEFT_MPSC_ITEM(n, call_t, node);
    c->fn(h, &h->loop, ~0u, c->arg);
    free(c);
}

static void on_call_discard(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    free(WEFT_MPSC_ITEM(n, call_t, node)); /* cannot happen: posts stop before the close */
}

int weft_host_call(weft_host_t *h, weft_host_fn fn, void *arg)
{
    if (!fn) return WEFT_EINVAL;
    call_t *c = malloc(sizeof(*c));
    if (!c) return WEFT_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    uv_mutex_lock(&h->calls_mu);
    int err = h->calls_open ? weft_inbox_post(&h->inbox, &c->node) : WEFT_ECLOSED;
    uv_mutex_unlock(&h->calls_mu);
    if (err) free(c);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* workers                                                                              */

static void worker_init(uv_loop_t *loop, unsigned index, void *arg)
{
    weft_host_t *h = arg;
    hworker_t *hw = &h->hw[index];
    hw->magic = HOST_MAGIC;
    hw->index = index;
    hw->h = h;
    hw->loop = loop;
    /* no part keeps state: no memory (and no arithmetic on NULL, which UBSan reports) */
    hw->state = h->state_mem ? h->state_mem + (size_t)index * h->state_stride : NULL;
    loop->data = hw;
    for (unsigned i = 0; i < h->nparts; i++) {
        part_t *pt = &h->parts[i];
        if (pt->p.worker_init)
            pt->p.worker_init(h, loop, index, pt->p.state_size ? hw->state + pt->off : NULL,
                              pt->p.arg);
    }
    for (unsigned i = 0; i < h->nhttp; i++) {
        int err = weft_http_server_attach(h->http[i], loop, index);
        if (err)
            weft_error("host", "cannot serve on a worker", "host=%s worker=%u port=%u err=%s",
                       h->name, index, weft_http_server_port(h->http[i]), uv_err_name(err));
    }
    for (unsigned i = 0; i < h->nother; i++) {
        int err = h->other[i].ops->attach(h->other[i].l, loop, index);
        if (err)
            weft_error("host", "cannot serve on a worker", "host=%s worker=%u %s_port=%u err=%s",
                       h->name, index, h->other[i].ops->kind, h->other[i].ops->port(h->other[i].l),
                       uv_err_name(err));
    }
}

/* On the worker, once all its listeners are shut down. */
static void worker_done(hworker_t *hw)
{
    weft_host_t *h = hw->h;
    for (unsigned i = h->nparts; i-- > 0;) {
        part_t *pt = &h->parts[i];
        if (pt->p.worker_stop)
            pt->p.worker_stop(h, hw->loop, hw->index, pt->p.state_size ? hw->state + pt->off : NULL,
                              pt->p.arg);
    }
    /* Answers posted to this worker until now (a registry write held over the shutdown)
     * have run; none is taken after this. */
    weft_workers_release(h->workers, hw->index);
    /* Only the last worker wakes the control loop, which then closes done_async: a send
     * from an earlier worker could otherwise come after that close. */
    if (atomic_fetch_add(&h->workers_done, 1) + 1 == h->n) uv_async_send(&h->done_async);
}

static void listener_done(void *arg)
{
    hworker_t *hw = arg;
    if (--hw->left == 0) worker_done(hw);
}

static void worker_stop(uv_loop_t *loop, unsigned index, void *arg)
{
    weft_host_t *h = arg;
    hworker_t *hw = &h->hw[index];
    hw->left = h->nhttp + h->nother + 1; /* + 1: none finishes the worker before the loops end */
    for (unsigned i = 0; i < h->nhttp; i++)
        weft_http_server_shutdown(h->http[i], index, listener_done, hw);
    for (unsigned i = 0; i < h->nother; i++)
        h->other[i].ops->close(h->other[i].l, index, listener_done, hw);
    listener_done(hw);
}

/* ------------------------------------------------------------------------------------ */
/* the control loop                                                                     */

static void close_signals(weft_host_t *h)
{
    if (h->o.signals) {
        uv_close((uv_handle_t *)&h->sigterm, NULL);
        uv_close((uv_handle_t *)&h->sigint, NULL);
        uv_close((uv_handle_t *)&h->sigusr1, NULL);
        if (h->hup) uv_close((uv_handle_t *)&h->sighup, NULL);
    }
    uv_mutex_lock(&h->calls_mu); /* no weft_host_stop may send to stop_async after this */
    h->stop_open = false;
    uv_mutex_unlock(&h->calls_mu);
    uv_close((uv_handle_t *)&h->stop_async, NULL);
    uv_close((uv_handle_t *)&h->delay_timer, NULL);
}

/* Every worker is done: the last handles of the control loop go, and uv_run returns. */
static void close_control(weft_host_t *h)
{
    if (h->closed) return;
    h->closed = true;
    if (!h->shut) close_signals(h);
    uv_mutex_lock(&h->calls_mu);
    h->calls_open = false;
    uv_mutex_unlock(&h->calls_mu);
    weft_inbox_close(&h->inbox, NULL);
    uv_close((uv_handle_t *)&h->done_async, NULL);
}

static void on_done_async(uv_async_t *a)
{
    weft_host_t *h = a->data;
    if (atomic_load(&h->workers_done) == h->n) close_control(h);
}

static void shut_down(weft_host_t *h, const char *why)
{
    if (h->shut) return;
    h->shut = true;
    weft_info("host", "shutting down", "host=%s reason=%s", h->name, why);
    for (unsigned i = h->nparts; i-- > 0;)
        if (h->parts[i].p.stop) h->parts[i].p.stop(h, h->parts[i].p.arg);
    close_signals(h);
    /* held: a worker takes posts until its listeners are shut down (worker_done), so that
     * the answer to a request held over the shutdown (a registry write, decided on this
     * loop) can still reach the worker that holds it */
    weft_workers_stop_held(h->workers, worker_stop, h);
}

static void on_delay_over(uv_timer_t *t)
{
    weft_host_t *h = t->data;
    h->delaying = false;
    shut_down(h, "shutdown_delay");
}

/* The first stop drains (with a delay) or shuts down; one during the drain ends it. */
static void begin_stop(weft_host_t *h, const char *why)
{
    if (atomic_exchange(&h->stopping, true)) {
        if (h->delaying) {
            h->delaying = false;
            uv_timer_stop(&h->delay_timer);
            shut_down(h, why);
        }
        return;
    }
    uint64_t delay = h->o.shutdown_delay_ms;
    if (delay == 0) {
        shut_down(h, why);
        return;
    }
    for (unsigned i = 0; i < h->nhttp; i++) weft_http_server_drain(h->http[i]);
    for (unsigned i = 0; i < h->nparts; i++)
        if (h->parts[i].p.drain) h->parts[i].p.drain(h, h->parts[i].p.arg);
    h->delaying = true;
    uv_timer_start(&h->delay_timer, on_delay_over, delay, 0);
    weft_info("host", "draining: requests are still served, with Connection: close",
              "host=%s reason=%s shutdown_delay_ms=%llu", h->name, why, (unsigned long long)delay);
}

static void on_signal(uv_signal_t *s, int signum)
{
    begin_stop(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_reopen(uv_signal_t *s, int signum)
{
    weft_host_t *h = s->data;
    bool any = false;
    for (unsigned i = 0; i < h->nparts; i++)
        if (h->parts[i].p.reopen) {
            h->parts[i].p.reopen(h, h->parts[i].p.arg);
            any = true;
        }
    if (!any) weft_info("host", "SIGUSR1: nothing to reopen", "host=%s", h->name);
}

static void on_reload(uv_signal_t *s, int signum)
{
    weft_host_t *h = s->data;
    weft_info("host", "SIGHUP: reloading", "host=%s", h->name);
    for (unsigned i = 0; i < h->nparts; i++)
        if (h->parts[i].p.reload) h->parts[i].p.reload(h, h->parts[i].p.arg);
}

static void on_stop_async(uv_async_t *a)
{
    weft_host_t *h = a->data;
    unsigned asked = atomic_load(&h->stops);
    while (h->stops_seen < asked && !h->shut) {
        h->stops_seen++;
        begin_stop(h, "stop");
    }
}

void weft_host_stop(weft_host_t *h)
{
    atomic_fetch_add(&h->stops, 1);
    uv_mutex_lock(&h->calls_mu);
    if (h->stop_open) uv_async_send(&h->stop_async);
    uv_mutex_unlock(&h->calls_mu);
}

/* Binds every listener not bound yet; on error, logs the address. */
static int bind_all(weft_host_t *h)
{
    char msg[256];
    for (unsigned i = 0; i < h->nhttp; i++) {
        if (weft_http_server_port(h->http[i]) != 0) continue;
        int err = weft_http_server_bind(h->http[i], msg, sizeof(msg));
        if (err) {
            weft_error("host", "cannot listen", "host=%s error=\"%s\"", h->name, msg);
            return err;
        }
    }
    for (unsigned i = 0; i < h->nother; i++) {
        int err = h->other[i].ops->bind(h->other[i].l, h->n, msg, sizeof(msg));
        if (err) {
            weft_error("host", "cannot listen", "host=%s error=\"%s\"", h->name, msg);
            return err;
        }
    }
    return 0;
}

static int control_init(weft_host_t *h)
{
    int err = uv_loop_init(&h->loop);
    if (err) return err;
    if ((err = weft_inbox_init(&h->inbox, &h->loop, CALL_LIMIT, CALL_BATCH, on_call,
                               on_call_discard, h)) != 0) {
        uv_loop_close(&h->loop);
        return err;
    }
    uv_async_init(&h->loop, &h->stop_async, on_stop_async);
    uv_async_init(&h->loop, &h->done_async, on_done_async);
    uv_timer_init(&h->loop, &h->delay_timer);
    h->stop_async.data = h->done_async.data = h->delay_timer.data = h;
    if (h->o.signals) {
        signal(SIGPIPE, SIG_IGN);
        uv_signal_init(&h->loop, &h->sigterm);
        uv_signal_init(&h->loop, &h->sigint);
        uv_signal_init(&h->loop, &h->sigusr1);
        h->sigterm.data = h->sigint.data = h->sigusr1.data = h;
        uv_signal_start(&h->sigterm, on_signal, SIGTERM);
        uv_signal_start(&h->sigint, on_signal, SIGINT);
        uv_signal_start(&h->sigusr1, on_reopen, SIGUSR1);
        /* SIGHUP only when a part reloads: a service with nothing to reload keeps the
         * default action (a hang-up ends it, as it would any program) */
        for (unsigned i = 0; i < h->nparts && !h->hup; i++) h->hup = h->parts[i].p.reload != NULL;
        if (h->hup) {
            uv_signal_init(&h->loop, &h->sighup);
            h->sighup.data = h;
            uv_signal_start(&h->sighup, on_reload, SIGHUP);
        }
    }
    uv_mutex_lock(&h->calls_mu);
    h->calls_open = h->stop_open = true;
    uv_mutex_unlock(&h->calls_mu);
    return 0;
}

int weft_host_run(weft_host_t *h)
{
    if (atomic_exchange(&h->running, true)) return WEFT_ESTATE;
    int err = bind_all(h);
    if (err) goto out;
    if (h->state_stride && !h->state_mem) {
        h->state_mem = aligned_alloc(STATE_ALIGN, h->state_stride * h->n);
        if (!h->state_mem) {
            err = WEFT_ENOMEM;
            goto out;
        }
        memset(h->state_mem, 0, h->state_stride * h->n);
    }
    if ((err = control_init(h)) != 0) goto out;
    for (unsigned i = 0; i < h->nparts; i++) {
        if (!h->parts[i].p.init || (err = h->parts[i].p.init(h, h->parts[i].p.arg)) == 0) continue;
        weft_error("host", "a part could not start", "host=%s part=%s err=%s", h->name,
                   h->parts[i].p.name, weft_strerror(err));
        h->shut = true;
        for (unsigned j = i; j-- > 0;)
            if (h->parts[j].p.stop) h->parts[j].p.stop(h, h->parts[j].p.arg);
        close_signals(h);
        close_control(h);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    if ((err = weft_workers_start(h->workers, worker_init, h)) != 0) {
        weft_error("host", "cannot start the workers", "host=%s err=%s", h->name,
                   weft_strerror(err));
        h->shut = true;
        for (unsigned j = h->nparts; j-- > 0;) /* undo what init hooks opened */
            if (h->parts[j].p.init && h->parts[j].p.stop) h->parts[j].p.stop(h, h->parts[j].p.arg);
        close_signals(h);
        close_control(h);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    for (unsigned i = 0; i < h->nparts; i++)
        if (h->parts[i].p.start) h->parts[i].p.start(h, h->parts[i].p.arg);
    if (h->on_start) h->on_start(h, h->on_start_arg);
    on_stop_async(&h->stop_async); /* a stop asked before the loop was ready */
    uv_run(&h->loop, UV_RUN_DEFAULT);
    weft_workers_join(h->workers);
out_loop:
    if (uv_loop_close(&h->loop) == UV_EBUSY)
        weft_warn("host", "control loop had open handles at exit", "host=%s", h->name);
out:
    atomic_store(&h->running, false);
    return err;
}

void weft_host_free(weft_host_t *h)
{
    if (!h) return;
    for (unsigned i = 0; i < h->nhttp; i++) weft_http_server_free(h->http[i]);
    for (unsigned i = 0; i < h->nother; i++) h->other[i].ops->free(h->other[i].l);
    weft_workers_free(h->workers);
    uv_mutex_destroy(&h->calls_mu);
    free(h->state_mem);
    free(h->hw);
    free(h);
}
