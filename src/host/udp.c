/*
 * udp.c - UDP listeners of a host: one SO_REUSEPORT socket per worker (see weft/host.h).
 *
 * For protocols that are not HTTP; the registry's DNS interface is the first. The kernel
 * spreads datagrams over the workers' sockets by a hash of the sender's address, so one
 * client's queries all reach one worker, and nothing here is shared between workers: each
 * has its own uv_udp_t, its own receive buffer (max_datagram bytes, allocated at attach)
 * and its own counters.
 *
 * Batches. Under load a worker receives with recvmmsg (libuv's UV_UDP_RECVMMSG: up to 20
 * datagrams per system call, into a buffer of 20 x 64 KiB whose pages are touched only as
 * far as datagrams reach), and the answers sent from on_recv while a batch is handled are
 * gathered (up to 20, copied into a buffer of 20 x max_datagram) and sent together with one
 * sendmmsg when libuv says the batch is over. One or two system calls per batch instead of
 * two per datagram: that is what a DNS server spends most of its time on. A datagram sent
 * outside a batch (later, from a timer) goes at once.
 *
 * Sending never queues beyond the batch: a datagram is sent now (or at the end of the batch
 * it was made in) or dropped (-EAGAIN when the socket's send buffer is full), so a flood of
 * answers cannot grow memory. A datagram longer than max_datagram is counted (truncated)
 * and dropped, since a protocol cannot parse half a message.
 *
 * Threads: made and bound on the thread that builds and runs the host; each slot (handle,
 * buffer, counters' writes) touched only by its worker's thread after attach; the counters
 * are atomics that any thread may read.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/host_int.h"

#define BATCH      20          /* libuv's UV__MMSG_MAXWIDTH: datagrams per recvmmsg */
#define CHUNK_SIZE (64 * 1024) /* libuv's UV__UDP_DGRAM_MAXSIZE: a recvmmsg slot */

typedef struct uslot_s {
    weft_udp_t *u;
    unsigned index;
    uv_udp_t udp;
    bool attached; /* udp holds the worker's socket */
    bool batching; /* inside a recvmmsg batch: sends are gathered */
    char *buf;     /* BATCH x CHUNK_SIZE: recvmmsg's */
    char *sbuf;    /* BATCH x max_datagram: the gathered answers */
    unsigned nout;
    struct mmsghdr out[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage to[BATCH];
    void (*on_done)(void *);
    void *done_arg;
    _Atomic uint64_t received, sent, send_errors, truncated;
} uslot_t;

struct weft_udp_s {
    weft__socklis_t b; /* address and sockets */
    weft_udp_options_t o;
    uslot_t *slots;
};

void weft_udp_options_init(weft_udp_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->max_datagram = 4096;
}

static const weft__listener_ops_t udp_ops;

int weft_host_add_udp(weft_host_t *h, const weft_udp_options_t *o, weft_udp_t **out)
{
    if (!o || !o->on_recv || o->max_datagram == 0 || o->max_datagram > 65535) return WEFT_EINVAL;
    weft_udp_t *u = calloc(1, sizeof(*u));
    if (!u) return WEFT_ENOMEM;
    u->o = *o;
    int err = weft__socklis_add(h, &u->b, o->host, o->port, &udp_ops, u);
    if (err) {
        free(u);
        return err;
    }
    u->o.host = u->b.host;
    *out = u;
    return 0;
}

uint16_t weft_udp_port(const weft_udp_t *u)
{
    return atomic_load_explicit(&((weft_udp_t *)u)->b.port, memory_order_acquire);
}

static uint16_t udp_port(const void *l)
{
    return weft_udp_port(l);
}

static int udp_bind(void *l, unsigned n_loops, char *err, size_t errlen)
{
    weft_udp_t *u = l;
    if (u->slots) return 0;
    if (!(u->slots = calloc(n_loops, sizeof(uslot_t)))) return WEFT_ENOMEM;
    for (unsigned i = 0; i < n_loops; i++) u->slots[i] = (uslot_t){.u = u, .index = i};
    return weft__socklis_bind(&u->b, SOCK_DGRAM, 0, n_loops, err, errlen);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    uslot_t *s = h->data;
    (void)suggested;
    *buf = uv_buf_init(s->buf, BATCH * CHUNK_SIZE);
}

/* Sends what the batch gathered: one sendmmsg (more if the kernel takes part of it). */
static void flush(uslot_t *s)
{
    unsigned done = 0;
    uv_os_fd_t fd;
    if (s->nout && uv_fileno((uv_handle_t *)&s->udp, &fd) == 0) {
        while (done < s->nout) {
            int r = sendmmsg(fd, s->out + done, s->nout - done, MSG_DONTWAIT);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break; /* EAGAIN and the rest: dropped, as UDP may */
            done += (unsigned)r;
        }
    }
    atomic_fetch_add_explicit(&s->sent, done, memory_order_relaxed);
    if (s->nout > done)
        atomic_fetch_add_explicit(&s->send_errors, s->nout - done, memory_order_relaxed);
    s->nout = 0;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    uslot_t *s = h->data;
    if (nread <= 0 || !from) { /* a batch is over (UV_UDP_MMSG_FREE), nothing more, an error */
        flush(s);
        s->batching = false;
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || (size_t)nread > s->u->o.max_datagram) {
        atomic_fetch_add_explicit(&s->truncated, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&s->received, 1, memory_order_relaxed);
    /* recvmmsg's chunks end with a callback of their own (above), which flushes: until then
     * answers are gathered. A datagram read alone is answered alone. */
    s->batching = (flags & UV_UDP_MMSG_CHUNK) != 0;
    s->u->o.on_recv(s->u, s->index, buf->base, (size_t)nread, from, s->u->o.arg);
    if (!s->batching) flush(s);
}

static int udp_attach(void *l, uv_loop_t *loop, unsigned index)
{
    weft_udp_t *u = l;
    uslot_t *s = &u->slots[index];
    if (!(s->buf = malloc((size_t)BATCH * CHUNK_SIZE))) return UV_ENOMEM;
    if (!(s->sbuf = malloc((size_t)BATCH * u->o.max_datagram))) return UV_ENOMEM;
    int err = uv_udp_init_ex(loop, &s->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
    if (err) return err;
    s->udp.data = s;
    uv_os_sock_t fd = weft__socklis_take(&u->b, index);
    if ((err = uv_udp_open(&s->udp, fd)) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&s->udp, NULL);
        return err;
    }
    s->attached = true;
    return uv_udp_recv_start(&s->udp, on_alloc, on_recv);
}

static void on_closed(uv_handle_t *h)
{
    uslot_t *s = h->data;
    s->attached = false;
    if (s->on_done) s->on_done(s->done_arg);
}

static void udp_close(void *l, unsigned index, void (*on_done)(void *), void *arg)
{
    weft_udp_t *u = l;
    uslot_t *s = &u->slots[index];
    if (!s->attached || uv_is_closing((uv_handle_t *)&s->udp)) {
        on_done(arg);
        return;
    }
    s->on_done = on_done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->udp, on_closed);
}

int weft_udp_send(weft_udp_t *u, unsigned worker, const void *data, size_t len,
                  const struct sockaddr *to)
{
    if (!u->slots || worker >= u->b.n || !to) return WEFT_EINVAL;
    uslot_t *s = &u->slots[worker];
    if (!s->attached || uv_is_closing((uv_handle_t *)&s->udp)) return WEFT_ESTATE;
    if (s->batching && len <= u->o.max_datagram) {
        if (s->nout == BATCH) flush(s);
        unsigned i = s->nout++;
        char *p = s->sbuf + (size_t)i * u->o.max_datagram;
        memcpy(p, data, len);
        socklen_t tl =
            to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        memcpy(&s->to[i], to, tl);
        s->iov[i] = (struct iovec){p, len};
        s->out[i] = (struct mmsghdr){
            .msg_hdr = {
                .msg_name = &s->to[i], .msg_namelen = tl, .msg_iov = &s->iov[i], .msg_iovlen = 1}};
        return 0;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_udp_try_send(&s->udp, &b, 1, to);
    if (r < 0) {
        atomic_fetch_add_explicit(&s->send_errors, 1, memory_order_relaxed);
        return r;
    }
    atomic_fetch_add_explicit(&s->sent, 1, memory_order_relaxed);
    return 0;
}

weft_udp_stats_t weft_udp_stats(const weft_udp_t *u)
{
    weft_udp_stats_t st = {0};
    for (unsigned i = 0; u->slots && i < u->b.n; i++) {
        uslot_t *s = &u->slots[i];
        st.received += atomic_load_explicit(&s->received, memory_order_relaxed);
        st.sent += atomic_load_explicit(&s->sent, memory_order_relaxed);
        st.send_errors += atomic_load_explicit(&s->send_errors, memory_order_relaxed);
        st.truncated += atomic_load_explicit(&s->truncated, memory_order_relaxed);
    }
    return st;
}

static void udp_free(void *l)
{
    weft_udp_t *u = l;
    for (unsigned i = 0; u->slots && i < u->b.n; i++) {
        free(u->slots[i].buf);
        free(u->slots[i].sbuf);
    }
    weft__socklis_free(&u->b);
    free(u->slots);
    free(u);
}

static const weft__listener_ops_t udp_ops = {.kind = "udp",
                                             .bind = udp_bind,
                                             .attach = udp_attach,
                                             .close = udp_close,
                                             .free = udp_free,
                                             .port = udp_port};
