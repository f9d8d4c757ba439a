/*
 * tcp.c - TCP listeners of a host for framed protocols that are not HTTP (DNS over TCP is
 * the first); see weft/host.h.
 *
 * Design. One SO_REUSEPORT socket per worker (core/listen.c); each worker accepts, reads and
 * writes its own connections through libuv, so nothing is shared between workers. A
 * connection keeps the bytes received and not yet consumed in one buffer that grows up to
 * max_buffer; on_data sees all of them and says how many it consumed (the parser contract
 * of picohttpparser: 0 for "need more", -1 for an error), and is called again while it
 * consumes and bytes remain. A peer that sends a message larger than max_buffer is cut off.
 * Writes are copied into a request of their own and handed to libuv at once; what is queued
 * and not yet sent is bounded by max_pending, so a peer that does not read cannot grow
 * memory. Reading stops while max_pending is reached and resumes when writes complete.
 *
 * Timeouts. A sweep timer per worker (1 s) closes connections idle for idle_timeout_ms and,
 * during shutdown, those still open 2 s after it began.
 *
 * Life cycle of a connection: accepted -> open (reading) -> closing (uv_close called, after
 * the pending writes when closed with weft_tcp_close) -> closed: on_close runs, then the
 * memory is freed. Threads: a worker's slot and its connections are touched only by that
 * worker's thread; the port is an atomic any thread may read.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/host_int.h"

#define SWEEP_MS          1000
#define SHUTDOWN_GRACE_MS 2000

typedef struct tslot_s tslot_t;

struct weft_tcp_conn_s {
    uv_tcp_t tcp;
    tslot_t *slot;
    weft_tcp_conn_t *prev, *next;
    char *buf;
    size_t len, cap;
    size_t pending; /* bytes handed to uv_write and not yet written */
    uint64_t last_read;
    bool opened; /* on_open ran: on_close will */
    bool reading;
    bool close_after; /* weft_tcp_close: close once pending reaches 0 */
    bool closing;     /* uv_close called */
    void *data;
};

struct tslot_s {
    weft_tcp_t *t;
    unsigned index;
    uv_loop_t *loop;
    uv_tcp_t listen;
    uv_timer_t timer;
    bool attached, shutting;
    uint64_t shutdown_at;
    unsigned open_handles; /* listen, timer */
    weft_tcp_conn_t *conns;
    unsigned nconns;
    void (*on_done)(void *);
    void *done_arg;
};

struct weft_tcp_s {
    weft__socklis_t b; /* address and sockets */
    weft_tcp_options_t o;
    tslot_t *slots;
};

typedef struct wreq_s {
    uv_write_t w;
    size_t len;
    char data[];
} wreq_t;

void weft_tcp_options_init(weft_tcp_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->max_connections = 1024;
    o->max_buffer = 65536;
    o->max_pending = 1u << 20;
    o->idle_timeout_ms = 60000;
}

uint16_t weft_tcp_port(const weft_tcp_t *t)
{
    return atomic_load_explicit(&((weft_tcp_t *)t)->b.port, memory_order_acquire);
}

unsigned weft_tcp_conn_worker(const weft_tcp_conn_t *c)
{
    return c->slot->index;
}

void **weft_tcp_conn_data(weft_tcp_conn_t *c)
{
    return &c->data;
}

/* ---- connections ---- */

static void slot_maybe_done(tslot_t *s);

static void on_conn_closed(uv_handle_t *h)
{
    weft_tcp_conn_t *c = h->data;
    tslot_t *s = c->slot;
    if (c->opened && s->t->o.on_close) s->t->o.on_close(c, s->t->o.arg);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    free(c->buf);
    free(c);
    slot_maybe_done(s);
}

static void conn_close_now(weft_tcp_conn_t *c)
{
    if (c->closing) return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

void weft_tcp_close(weft_tcp_conn_t *c)
{
    if (c->closing) return;
    c->close_after = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (c->pending == 0) conn_close_now(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    weft_tcp_conn_t *c = h->data;
    size_t max = c->slot->t->o.max_buffer;
    if (c->cap - c->len < 4096 && c->cap < max) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        if (cap > max) cap = max;
        char *nb = realloc(c->buf, cap);
        if (nb) {
            c->buf = nb;
            c->cap = cap;
        }
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void update_reading(weft_tcp_conn_t *c);

/* Hands the buffered bytes to on_data until it wants more or the connection ends. */
static void deliver(weft_tcp_conn_t *c)
{
    const weft_tcp_options_t *o = &c->slot->t->o;
    while (c->len > 0 && !c->closing && !c->close_after) {
        long used = o->on_data(c, c->buf, c->len, o->arg);
        if (used < 0 || (size_t)used > c->len) {
            conn_close_now(c);
            return;
        }
        if (used == 0) {
            if (c->len == o->max_buffer) conn_close_now(c); /* a message over the limit */
            return;
        }
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    weft_tcp_conn_t *c = st->data;
    if (nread == 0) return;
    if (nread < 0) { /* EOF, reset, or no memory for a buffer */
        conn_close_now(c);
        return;
    }
    c->len += (size_t)nread;
    c->last_read = uv_now(c->slot->loop);
    deliver(c);
    if (!c->closing) update_reading(c);
}

/* Reads while fewer than max_pending bytes wait to be written. */
static void update_reading(weft_tcp_conn_t *c)
{
    if (c->closing || c->close_after) return;
    bool want = c->pending < c->slot->t->o.max_pending;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_write(uv_write_t *w, int status)
{
    wreq_t *r = (wreq_t *)w;
    weft_tcp_conn_t *c = w->data;
    c->pending -= r->len;
    free(r);
    if (status < 0) {
        conn_close_now(c);
        return;
    }
    if (c->close_after && c->pending == 0) {
        conn_close_now(c);
        return;
    }
    update_reading(c);
}

int weft_tcp_write(weft_tcp_conn_t *c, const void *data, size_t len)
{
    if (c->closing || c->close_after) return WEFT_ECLOSED;
    if (len == 0) return 0;
    if (c->pending + len > c->slot->t->o.max_pending) return WEFT_ELIMIT;
    wreq_t *r = malloc(sizeof(*r) + len);
    if (!r) return WEFT_ENOMEM;
    memcpy(r->data, data, len);
    r->len = len;
    r->w.data = c;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(r);
        conn_close_now(c);
        return WEFT_ECLOSED;
    }
    c->pending += len;
    update_reading(c);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    tslot_t *s = server->data;
    if (status < 0) return; /* libuv retries on the next readiness */
    weft_tcp_conn_t *c = calloc(1, sizeof(*c));
    if (!c || uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return; /* the connection waits in the backlog for the next accept */
    }
    c->slot = s;
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_now(c);
        return;
    }
    if (s->nconns > s->t->o.max_connections || s->shutting) {
        conn_close_now(c); /* never opened: no on_close */
        return;
    }
    c->last_read = uv_now(s->loop);
    c->opened = true;
    if (s->t->o.on_open) s->t->o.on_open(c, s->t->o.arg);
    update_reading(c);
}

/* ---- the listener on each worker ---- */

static void on_sweep(uv_timer_t *t)
{
    tslot_t *s = t->data;
    uint64_t now = uv_now(s->loop), idle = s->t->o.idle_timeout_ms;
    for (weft_tcp_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing) continue;
        if ((s->shutting && now >= s->shutdown_at + SHUTDOWN_GRACE_MS) ||
            (idle && now - c->last_read >= idle))
            conn_close_now(c);
    }
}

static void on_slot_handle_closed(uv_handle_t *h)
{
    tslot_t *s = h->data;
    s->open_handles--;
    slot_maybe_done(s);
}

static void slot_maybe_done(tslot_t *s)
{
    if (!s->shutting || s->conns) return;
    if (!uv_is_closing((uv_handle_t *)&s->timer)) {
        uv_close((uv_handle_t *)&s->timer, on_slot_handle_closed);
        return;
    }
    if (s->open_handles == 0 && s->on_done) {
        void (*cb)(void *) = s->on_done;
        s->on_done = NULL;
        cb(s->done_arg);
    }
}

static int tcp_attach(void *l, uv_loop_t *loop, unsigned index)
{
    weft_tcp_t *t = l;
    tslot_t *s = &t->slots[index];
    s->loop = loop;
    int err = uv_tcp_init(loop, &s->listen);
    if (err) return err;
    s->listen.data = s;
    s->open_handles++;
    uv_os_sock_t fd = weft__socklis_take(&t->b, index);
    if ((err = uv_tcp_open(&s->listen, fd)) == 0)
        err = uv_listen((uv_stream_t *)&s->listen, 511, on_connection);
    else
        close(fd);
    if (err) {
        uv_close((uv_handle_t *)&s->listen, on_slot_handle_closed);
        return err;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles++;
    uv_timer_start(&s->timer, on_sweep, SWEEP_MS, SWEEP_MS);
    s->attached = true;
    return 0;
}

static void tcp_close(void *l, unsigned index, void (*on_done)(void *), void *arg)
{
    weft_tcp_t *t = l;
    tslot_t *s = &t->slots[index];
    if (!s->attached || s->shutting) {
        on_done(arg);
        return;
    }
    s->shutting = true;
    s->shutdown_at = uv_now(s->loop);
    s->on_done = on_done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listen, on_slot_handle_closed);
    for (weft_tcp_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        weft_tcp_close(c); /* after what was written is sent (at most SHUTDOWN_GRACE_MS) */
    }
    slot_maybe_done(s);
}

static int tcp_bind(void *l, unsigned n_loops, char *err, size_t errlen)
{
    weft_tcp_t *t = l;
    if (t->slots) return 0;
    if (!(t->slots = calloc(n_loops, sizeof(tslot_t)))) return WEFT_ENOMEM;
    for (unsigned i = 0; i < n_loops; i++) t->slots[i] = (tslot_t){.t = t, .index = i};
    return weft__socklis_bind(&t->b, SOCK_STREAM, 511, n_loops, err, errlen);
}

static void tcp_free(void *l)
{
    weft_tcp_t *t = l;
    weft__socklis_free(&t->b);
    free(t->slots);
    free(t);
}

static uint16_t tcp_port(const void *l)
{
    return weft_tcp_port(l);
}

static const weft__listener_ops_t tcp_ops = {.kind = "tcp",
                                             .bind = tcp_bind,
                                             .attach = tcp_attach,
                                             .close = tcp_close,
                                             .free = tcp_free,
                                             .port = tcp_port};

int weft_host_add_tcp(weft_host_t *h, const weft_tcp_options_t *o, weft_tcp_t **out)
{
    if (!o || !o->on_data || o->max_buffer == 0 || o->max_buffer > (64u << 20) ||
        o->max_pending == 0 || o->max_connections == 0)
        return WEFT_EINVAL;
    weft_tcp_t *t = calloc(1, sizeof(*t));
    if (!t) return WEFT_ENOMEM;
    t->o = *o;
    int err = weft__socklis_add(h, &t->b, o->host, o->port, &tcp_ops, t);
    if (err) {
        free(t);
        return err;
    }
    t->o.host = t->b.host;
    *out = t;
    return 0;
}
