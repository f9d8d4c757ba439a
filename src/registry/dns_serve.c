/*
 * dns_serve.c - the registry's DNS interface on a host's worker loops: weft_dns_answer
 * (dns.c) behind one UDP and one TCP listener (see dns.h).
 *
 * Design. The host gives each worker its own SO_REUSEPORT socket of each listener
 * (weft/host.h), so a query is received, answered and sent on one worker thread and nothing
 * on that path is shared: each worker has a slot here with an answer buffer (2 + 65535
 * bytes: the largest TCP message with its length prefix; a UDP answer uses the first 4096)
 * and the state of its random numbers. Each answer runs inside a snapshot read section
 * (core/snapshot.h; the workers are registered readers), so the lookup may read the
 * catalog's current snapshot and hand out pointers into it that stay valid until the
 * answer is written; the section never outlasts the callback.
 *
 * UDP: one datagram, one answer, sent at once or dropped when the socket's buffer is full
 * (weft_udp_send); a datagram weft_dns_answer gives nothing for (a response, under 12
 * bytes) gets nothing. TCP (RFC 1035 4.2.2, RFC 7766): each message is preceded by its
 * length in two bytes, big-endian; on_data answers one whole message per call and the host
 * calls it again while bytes remain, so several messages in one read and messages split
 * over reads both work. A zero length, or a message that gets no answer, closes the
 * connection; so does a peer whose unsent answers pass the host's max_pending.
 *
 * Random numbers: each worker's slot keeps a Weyl sequence (a counter stepped by an odd
 * constant, seeded from the clock, the server's address and the worker's index); its next
 * value is an answer's rnd, which weft_dns_answer mixes (splitmix64) before shuffling with
 * it. One addition per answer, and no state shared between workers.
 *
 * Ports: the UDP and the TCP listener are bound separately by weft_host_run; with port 0
 * each picks its own free port (they may differ; weft_dns_server_udp_port / _tcp_port say
 * which). A fixed port is asked of both.
 *
 * Threads: serve and free on the thread that builds the host, before it runs and after it
 * stopped; the callbacks on the worker that received, touching that worker's slot only.
 * Memory: the server and its slots are allocated by weft_dns_serve; the hot path allocates
 * nothing (weft_tcp_write copies the answer).
 */
#include <stdlib.h>
#include <string.h>

#include "core/snapshot.h"
#include "registry/dns.h"

#define TCP_MSG_MAX 65535
#define UDP_ANSWER  4096  /* the largest UDP answer weft_dns_answer writes (EDNS0) */
#define TCP_IDLE_MS 30000 /* an idle DNS connection is closed after this */
#define WEYL_STEP   0x9e3779b97f4a7c15ull

typedef struct wslot_s {
    _Alignas(64) uint64_t rnd;
    uint8_t buf[2 + TCP_MSG_MAX];
} wslot_t;

struct weft_dns_server_s {
    weft_dns_serve_options_t o;
    weft_udp_t *udp;
    weft_tcp_t *tcp;
    unsigned n; /* workers */
    wslot_t *slots;
};

void weft_dns_serve_options_init(weft_dns_serve_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 8600;
    o->cfg.domain = "consul.";
    o->cfg.datacenter = "dc1";
    o->cfg.ttl = 0;
    o->cfg.max_targets = 256;
}

/* Answers q[0..qlen) into out[0..cap) on worker s's thread, inside a read section. */
static size_t answer(weft_dns_server_t *d, wslot_t *s, const void *q, size_t qlen, uint8_t *out,
                     size_t cap, bool tcp)
{
    s->rnd += WEYL_STEP;
    weft_snap_read_lock();
    size_t n = weft_dns_answer(&d->o.cfg, q, qlen, out, cap, tcp, s->rnd, d->o.lookup, d->o.arg);
    weft_snap_read_unlock();
    return n;
}

static void on_datagram(weft_udp_t *u, unsigned worker, const char *data, size_t len,
                        const struct sockaddr *from, void *arg)
{
    weft_dns_server_t *d = arg;
    if (worker >= d->n) return;
    wslot_t *s = &d->slots[worker];
    size_t n = answer(d, s, data, len, s->buf, UDP_ANSWER, false);
    if (n) weft_udp_send(u, worker, s->buf, n, from); /* -EAGAIN: dropped, as UDP allows */
}

/* One framed message per call: bytes consumed, 0 for more, -1 to close (weft/host.h). */
static long on_stream(weft_tcp_conn_t *c, const char *data, size_t len, void *arg)
{
    weft_dns_server_t *d = arg;
    if (len < 2) return 0;
    size_t m = ((size_t)(uint8_t)data[0] << 8) | (uint8_t)data[1];
    if (m == 0) return -1;
    if (len - 2 < m) return 0;
    unsigned worker = weft_tcp_conn_worker(c);
    if (worker >= d->n) return -1;
    wslot_t *s = &d->slots[worker];
    size_t n = answer(d, s, data + 2, m, s->buf + 2, TCP_MSG_MAX, true);
    if (n == 0) return -1;
    s->buf[0] = (uint8_t)(n >> 8);
    s->buf[1] = (uint8_t)n;
    if (weft_tcp_write(c, s->buf, 2 + n) != 0) return -1;
    return (long)(2 + m);
}

int weft_dns_serve(weft_host_t *h, const weft_dns_serve_options_t *o, weft_dns_server_t **out)
{
    if (!h || !o || !out || !o->lookup || weft_dns_config_check(&o->cfg) != 0) return WEFT_EINVAL;
    weft_dns_server_t *d = calloc(1, sizeof(*d));
    if (!d) return WEFT_ENOMEM;
    d->o = *o;
    d->n = weft_host_workers(h);
    d->slots = aligned_alloc(_Alignof(wslot_t), (size_t)d->n * sizeof(wslot_t));
    if (!d->slots) {
        free(d);
        return WEFT_ENOMEM;
    }
    uint64_t seed = weft_now_ns() ^ (uint64_t)(uintptr_t)d;
    for (unsigned i = 0; i < d->n; i++) d->slots[i].rnd = seed + (uint64_t)i * (WEYL_STEP << 20);

    weft_udp_options_t uo;
    weft_udp_options_init(&uo);
    uo.host = o->host;
    uo.port = o->port;
    uo.max_datagram = UDP_ANSWER;
    uo.on_recv = on_datagram;
    uo.arg = d;
    int err = weft_host_add_udp(h, &uo, &d->udp);
    if (err == 0) {
        weft_tcp_options_t to;
        weft_tcp_options_init(&to);
        to.host = o->host;
        to.port = o->port;
        to.max_buffer = 2 + TCP_MSG_MAX;
        to.idle_timeout_ms = TCP_IDLE_MS;
        to.on_data = on_stream;
        to.arg = d;
        err = weft_host_add_tcp(h, &to, &d->tcp);
    }
    if (err) {
        weft_dns_server_free(d);
        return err;
    }
    *out = d;
    return 0;
}

uint16_t weft_dns_server_udp_port(const weft_dns_server_t *d)
{
    return weft_udp_port(d->udp);
}

uint16_t weft_dns_server_tcp_port(const weft_dns_server_t *d)
{
    return weft_tcp_port(d->tcp);
}

void weft_dns_server_free(weft_dns_server_t *d)
{
    if (!d) return;
    free(d->slots);
    free(d);
}
