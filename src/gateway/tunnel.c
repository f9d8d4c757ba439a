/*
 * tunnel.c - the gateway's tunnels: after an upgrade (a WebSocket handshake, or any
 * `Connection: upgrade` + `Upgrade: X` answered 101 by the upstream), raw bytes copied both
 * ways between the client's socket and the upstream's until either side is done.
 *
 * Design. proxy.c hands over two descriptors, both taken from the HTTP engines (the server's
 * weft_http_request_takeover, the client's on_upgrade), with the bytes that each side sent
 * after its head: the client's go upstream first, and the 101 head with the upstream's
 * first bytes go to the client first. Each socket is opened as a libuv TCP handle on the
 * worker's loop. A tunnel is two pipes, client -> upstream and upstream -> client, each
 * moving one buffer at a time:
 *
 *   read from `from` into buf (64 KiB) -> uv_try_write to `to`
 *     all taken: read again
 *     some left: uv_write the rest, and stop reading `from` until it is written
 *
 * so a pipe holds at most one buffer, and a slow reader on one side stops the reading of the
 * other (back-pressure: the bytes wait in the kernel's socket buffers, and TCP's window
 * slows the sender). A buffer is given back whenever a read did not fill it (the peer has
 * paused), so an idle tunnel holds no buffer at all: about 600 bytes and two descriptors.
 *
 * Ends. A read of EOF (the peer's FIN) is passed on as a FIN (uv_shutdown of the other
 * socket's write side) once the pipe's buffer is written: half-closed connections work as
 * TCP's do, and the tunnel closes when both directions have ended. A reset, a read or write
 * error, or the idle timeout (no byte either way for the route's websocket.idle_timeout)
 * closes both sockets at once. When the worker stops, its tunnels close (gw_tunnels_close_all).
 *
 * Counting: a tunnel owns one of the gateway's tunnel slots (gateway.max_tunnels, taken by
 * proxy.c when the upgrade request was admitted) and gives it back when it is freed;
 * weft_gateway_tunnels_active{route} and weft_gateway_tunnels_total{route} count them.
 *
 * Threads: the worker whose loop it was started on, for its whole life.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/gw_int.h"
#include "weft/log.h"

#define TUNNEL_BUF (64 * 1024)

typedef struct gw_tunnel_s gw_tunnel_t;

/* One direction: bytes read from `from` are written to `to`. */
typedef struct gw_pipe_s {
    gw_tunnel_t *t;
    uv_stream_t *from, *to;
    char *buf; /* the bytes being moved, malloc'd; NULL when none are (an idle pipe) */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    bool writing;  /* a uv_write from buf is in flight: `from` is not read */
    bool eof;      /* `from` sent its FIN */
    bool shutting; /* the FIN is passed on (uv_shutdown of `to` in flight or done) */
    bool shut;     /* ... and done */
} gw_pipe_t;

struct gw_tunnel_s {
    uv_tcp_t down, up; /* the client's socket, the upstream's */
    uv_timer_t timer;  /* the idle timeout */
    gw_pipe_t d2u, u2d;
    gw_worker_t *w;
    weft_gateway_t *g;
    gw_tunnel_t *prev, *next; /* the worker's tunnels */
    weft_gauge_t *active;
    uint64_t idle_ms, last; /* the idle timeout; loop time of the last byte either way */
    int handles;            /* open handles: their close callbacks free the tunnel */
    bool closing;
};

static void tunnel_close(gw_tunnel_t *t, const char *why);
static void pipe_read(gw_pipe_t *p);

static void on_handle_closed(uv_handle_t *h)
{
    gw_tunnel_t *t = h->data;
    if (--t->handles > 0) return;
    free(t->d2u.buf);
    free(t->u2d.buf);
    if (t->prev)
        t->prev->next = t->next;
    else
        t->w->tunnels = t->next;
    if (t->next) t->next->prev = t->prev;
    if (t->active) weft_gauge_dec(t->active);
    atomic_fetch_sub_explicit(&t->g->tunnel_slots, 1, memory_order_relaxed);
    free(t);
}

/* Closes both sockets now (pending writes are cancelled: their callbacks see closing). */
static void tunnel_close(gw_tunnel_t *t, const char *why)
{
    if (t->closing) return;
    t->closing = true;
    weft_debug("gateway", "tunnel closed", "why=%s", why);
    uv_close((uv_handle_t *)&t->down, on_handle_closed);
    uv_close((uv_handle_t *)&t->up, on_handle_closed);
    uv_close((uv_handle_t *)&t->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    gw_pipe_t *p = s->data;
    gw_tunnel_t *t = p->t;
    if (t->closing) return;
    if (status < 0) {
        tunnel_close(t, "shutdown failed");
        return;
    }
    p->shut = true;
    if (t->d2u.shut && t->u2d.shut) tunnel_close(t, "both sides closed");
}

/* `from` ended and everything it sent is written: the FIN goes on to `to`. */
static void pipe_finish(gw_pipe_t *p)
{
    if (!p->eof || p->writing || p->shutting) return;
    p->shutting = true;
    free(p->buf);
    p->buf = NULL;
    p->sreq.data = p;
    if (uv_shutdown(&p->sreq, p->to, on_shutdown) != 0) tunnel_close(p->t, "shutdown failed");
}

static void on_written(uv_write_t *wr, int status)
{
    gw_pipe_t *p = wr->data;
    gw_tunnel_t *t = p->t;
    p->writing = false;
    if (t->closing) return;
    if (status < 0) {
        tunnel_close(t, "write failed");
        return;
    }
    t->last = uv_now(t->down.loop);
    free(p->buf); /* the peer was slow: give the buffer back, take a new one when needed */
    p->buf = NULL;
    if (p->eof)
        pipe_finish(p);
    else
        pipe_read(p);
}

/* Moves buf[0, n) to `to`: at once if the socket takes it all, else by uv_write, with `from`
 * not read until that is done. full: the read filled buf (more is likely to follow at once:
 * the buffer is kept). */
static void pipe_send(gw_pipe_t *p, size_t n, bool full)
{
    gw_tunnel_t *t = p->t;
    uv_buf_t b = uv_buf_init(p->buf, (unsigned)n);
    int r = uv_try_write(p->to, &b, 1);
    if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
    if (r < 0) {
        tunnel_close(t, "write failed");
        return;
    }
    if ((size_t)r == n) {
        if (!full) {
            free(p->buf);
            p->buf = NULL;
        }
        return;
    }
    uv_read_stop(p->from);
    b = uv_buf_init(p->buf + r, (unsigned)(n - (size_t)r));
    p->wreq.data = p;
    if (uv_write(&p->wreq, p->to, &b, 1, on_written) != 0) {
        tunnel_close(t, "write failed");
        return;
    }
    p->writing = true;
}

static gw_pipe_t *pipe_of(uv_stream_t *s)
{
    gw_tunnel_t *t = s->data;
    return s == (uv_stream_t *)&t->down ? &t->d2u : &t->u2d;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    gw_pipe_t *p = pipe_of((uv_stream_t *)h);
    (void)suggested;
    if (!p->buf) p->buf = malloc(TUNNEL_BUF);
    *buf = uv_buf_init(p->buf, p->buf ? TUNNEL_BUF : 0); /* none: UV_ENOBUFS, closed */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gw_pipe_t *p = pipe_of(s);
    gw_tunnel_t *t = p->t;
    (void)buf;
    if (t->closing) return;
    if (nread > 0) {
        t->last = uv_now(s->loop);
        pipe_send(p, (size_t)nread, nread == TUNNEL_BUF);
        return;
    }
    if (nread == 0) return; /* EAGAIN */
    if (nread == UV_EOF) {
        p->eof = true;
        uv_read_stop(s);
        pipe_finish(p);
        return;
    }
    tunnel_close(t, nread == UV_ENOBUFS ? "out of memory" : "read failed");
}

static void pipe_read(gw_pipe_t *p)
{
    if (p->t->closing || p->eof || p->writing) return;
    if (uv_read_start(p->from, on_alloc, on_read) != 0) tunnel_close(p->t, "read failed");
}

static void on_timer(uv_timer_t *tm)
{
    gw_tunnel_t *t = tm->data;
    uint64_t now = uv_now(tm->loop), quiet = now - t->last;
    if (quiet >= t->idle_ms) {
        tunnel_close(t, "idle timeout");
        return;
    }
    uv_timer_start(tm, on_timer, t->idle_ms - quiet, 0);
}

/* A pipe starts with what its side sent before the switch (data, malloc'd, taken), or
 * reading. */
static void pipe_start(gw_pipe_t *p, char *data, size_t len)
{
    if (len) {
        p->buf = data;
        pipe_send(p, len, false);
    } else {
        free(data);
    }
    pipe_read(p);
}

int gw_tunnel_start(weft_gateway_t *g, gw_worker_t *w, uv_loop_t *loop, const char *route,
                    int down_fd, char *down_data, size_t down_len, int up_fd, char *up_data,
                    size_t up_len, uint64_t idle_ms)
{
    gw_tunnel_t *t = calloc(1, sizeof(*t));
    if (!t) {
        close(down_fd);
        close(up_fd);
        free(down_data);
        free(up_data);
        atomic_fetch_sub_explicit(&g->tunnel_slots, 1, memory_order_relaxed);
        return WEFT_ENOMEM;
    }
    /* uv_tcp_init without a socket and uv_timer_init allocate nothing and cannot fail */
    uv_tcp_init(loop, &t->down);
    uv_tcp_init(loop, &t->up);
    uv_timer_init(loop, &t->timer);
    t->down.data = t->up.data = t->timer.data = t;
    t->handles = 3;
    t->w = w;
    t->g = g;
    t->idle_ms = idle_ms ? idle_ms : 1;
    t->last = uv_now(loop);
    t->d2u = (gw_pipe_t){.t = t, .from = (uv_stream_t *)&t->down, .to = (uv_stream_t *)&t->up};
    t->u2d = (gw_pipe_t){.t = t, .from = (uv_stream_t *)&t->up, .to = (uv_stream_t *)&t->down};
    t->next = w->tunnels;
    if (w->tunnels) w->tunnels->prev = t;
    w->tunnels = t;
    if (g->fam_tun_active) {
        const char *v[1] = {route};
        t->active = weft_metrics_gauge_child(g->fam_tun_active, v);
        if (t->active) weft_gauge_inc(t->active);
        weft_counter_t *total = weft_metrics_counter_child(g->fam_tun_total, v);
        if (total) weft_counter_inc(total);
    }
    int err = uv_tcp_open(&t->down, down_fd);
    if (err) close(down_fd);
    if (err || (err = uv_tcp_open(&t->up, up_fd)) != 0) {
        close(up_fd);
        free(down_data);
        free(up_data);
        tunnel_close(t, "cannot open the sockets"); /* the close callbacks free it */
        return err;
    }
    uv_timer_start(&t->timer, on_timer, t->idle_ms, 0);
    pipe_start(&t->u2d, up_data, up_len); /* the 101 head goes to the client first */
    if (t->closing)
        free(down_data);
    else
        pipe_start(&t->d2u, down_data, down_len);
    return 0;
}

void gw_tunnels_close_all(gw_worker_t *w)
{
    for (gw_tunnel_t *t = w->tunnels; t; t = t->next) tunnel_close(t, "the gateway stops");
}
