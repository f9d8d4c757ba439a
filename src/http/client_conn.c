/*
 * client_conn.c - the HTTP client's connections: name lookup, connect with failover across
 * a name's addresses, writes, hand-off between calls, close.
 *
 * State machine (weft__conn_state_t in client_int.h; conn_to asserts every from-state). A
 * connection is opened for one call: a numeric host is connected at once, a name is looked
 * up first (uv_getaddrinfo, or the test hook) and its addresses are kept in the connection
 * (at most CLIENT_MAX_ADDRS, in the order given). Each address gets its own connect with
 * its own connect timeout (attempt_deadline, checked by the sweep); when a connect is
 * refused, unreachable or times out and another address is left, the failed socket's handle
 * is closed (NEXT) and its close callback opens the next attempt on the same uv_tcp_t,
 * because libuv lets a handle be reused only after its close callback. When no address is
 * left the call fails with the last error. The call's request deadline bounds it all.
 *
 * Once connected, the socket joins the client's reader (src/http/reader.h: edge-triggered,
 * read in order of arrival); reads and response parsing are client_read.c's. Writes stay
 * libuv's, except the first write of a FIXED request (weft__rfd_try_send, the rest by one
 * uv_write when the socket did not take it all); a streamed body alternates two buffers (`out`
 * collects what weft_http_client_write gives while `flight` is written), at most one write
 * in flight per connection. When the last byte of the request has reached the kernel the
 * call's head timeout starts.
 *
 * Close. weft__conn_close unlinks the connection from the client and its pool at once and
 * detaches its call; the memory goes when the pending callback runs: the lookup's
 * (RESOLVING, after uv_cancel), the failed attempt's close (NEXT), or the handle's close.
 * The client is freed only after its last connection's callback (open_handles).
 *
 * Threads: the client's loop thread only. Memory: a failed allocation fails the call with
 * WEFT_ENOMEM.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "http/client_int.h"

static void conn_to(conn_t *k, weft__conn_state_t to)
{
    weft__conn_state_t from = k->state;
    switch (to) {
    case CONN_RESOLVING:
        WEFT_ASSERT(from == CONN_NEW);
        break;
    case CONN_CONNECTING:
        WEFT_ASSERT(from == CONN_NEW || from == CONN_RESOLVING || from == CONN_NEXT);
        break;
    case CONN_NEXT:
        WEFT_ASSERT(from == CONN_CONNECTING);
        break;
    case CONN_BUSY: /* BUSY again: the hand-off of a finished call's connection to a queued one */
        WEFT_ASSERT(from == CONN_CONNECTING || from == CONN_IDLE || from == CONN_BUSY);
        break;
    case CONN_IDLE:
        WEFT_ASSERT(from == CONN_BUSY);
        break;
    case CONN_CLOSED:
        WEFT_ASSERT(from != CONN_CLOSED);
        break;
    case CONN_NEW:
        WEFT_ASSERT(!"a connection never becomes new again");
        break;
    }
    k->state = to;
}

static void conn_free(conn_t *k)
{
    weft_http_client_t *c = k->client;
    weft_buf_free(&k->rbuf);
    free(k->hoffs);
    free(k->harr);
    free(k);
    c->open_handles--;
    weft__client_maybe_free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_free(h->data);
}

void weft__conn_close(conn_t *k)
{
    if (k->state == CONN_CLOSED) return;
    weft_http_client_t *c = k->client;
    pool_t *p = k->pool;
    weft__conn_state_t from = k->state;
    conn_to(k, CONN_CLOSED);
    if (from == CONN_IDLE) weft__pool_idle_remove(p, k);
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    p->nconns--;
    c->nconns--;
    c->st.conns_closed++;
    if (k->kicked) {
        for (conn_t **pp = &c->kick_conns; *pp; pp = &(*pp)->next_kick) {
            if (*pp == k) {
                *pp = k->next_kick;
                break;
            }
        }
        k->kicked = false;
    }
    if (k->call) k->call->conn = NULL;
    k->call = NULL;
    weft__pool_kick(p); /* queued calls get a connection from the kick */
    c->pools_dirty = true;
    weft__client_sweep_start(c);
    weft__reader_remove(&k->rf); /* before the descriptor closes */
    switch (from) {
    case CONN_RESOLVING:
        uv_cancel((uv_req_t *)&k->gai); /* the lookup's callback sees CLOSED and closes */
        return;
    case CONN_NEXT:
        return; /* the failed attempt's close callback sees CLOSED and frees */
    default:
        uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
    }
}

/* ---- writes ---- */

/* The request's last byte is in the kernel: the head timeout starts. */
static void request_sent(call_t *call)
{
    call->sent = true;
    if (call->state == CALL_HEAD && call->head_ms)
        call->head_deadline = weft__add_ms(uv_now(call->client->loop), call->head_ms);
}

bool weft__conn_body_sent(const conn_t *k, const call_t *call)
{
    bool all = call->bmode == WEFT_HTTP_CLIENT_BODY_FIXED ? call->flushed
                                                          : call->ended && call->out.len == 0;
    return all && k->tcp.write_queue_size == 0;
}

static void on_written(uv_write_t *w, int status);

void weft__conn_flush(conn_t *k)
{
    call_t *call = k->call;
    if (!call || k->writing || k->state != CONN_BUSY) return;
    uv_buf_t b;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_FIXED) {
        if (call->flushed) return;
        call->flushed = true;
        /* What the socket takes at once goes now, without a uv_write and its callback on
         * the next turn (a whole GET, almost always). An error is left to the uv_write
         * below, which reports it from on_written (outside the caller's
         * weft_http_client_request) as this first one, the one the peer caused. */
        ssize_t n = weft__rfd_try_send(&k->rf, (uv_stream_t *)&k->tcp, call->out.p, call->out.len);
        k->send_err = n < 0 ? (int)n : 0; /* the retry may meet another (EPIPE after a reset) */
        if (n > 0 && (size_t)n == call->out.len) {
            if (!call->sent) request_sent(call);
            return;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        b = uv_buf_init(call->out.p + done, (unsigned)(call->out.len - done));
    } else {
        if (call->out.len == 0) return;
        weft_buf_t t = call->flight;
        call->flight = call->out;
        call->out = t;
        weft_buf_reset(&call->out);
        b = uv_buf_init(call->flight.p, (unsigned)call->flight.len);
    }
    k->wseq = call->seq;
    k->writing = true;
    k->wreq.data = k;
    int err = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_written);
    if (err) {
        k->writing = false;
        weft__call_fail_soon(call, k->send_err ? k->send_err : err);
        k->send_err = 0;
        return;
    }
    /* libuv wrote what the kernel took at once: nothing queued means all of it */
    if (!call->sent && weft__conn_body_sent(k, call)) request_sent(call);
}

static void on_written(uv_write_t *w, int status)
{
    conn_t *k = w->data;
    k->writing = false;
    if (status < 0 && k->send_err) status = k->send_err;
    k->send_err = 0;
    if (k->state == CONN_CLOSED) return;
    call_t *call = k->call;
    if (status < 0) {
        if (!call)
            weft__conn_close(k);
        else if (!weft__conn_retry_fresh(k, call))
            weft__call_fail(call, status);
        return;
    }
    if (!call) return;
    if (call->seq == k->wseq && call->bmode != WEFT_HTTP_CLIENT_BODY_FIXED) {
        weft_buf_reset(&call->flight);
        call->head_left = 0; /* the first write carried the whole head */
    }
    weft__conn_flush(k);
    if (k->call != call) return; /* the flush failed it */
    if (!call->sent && weft__conn_body_sent(k, call)) request_sent(call);
    if (call->want_drain && call->out.len == 0 && call->flight.len == 0) {
        call->want_drain = false;
        if (call->cbs.on_drain) call->cbs.on_drain(call, call->arg);
    }
}

/* ---- reading on and off ---- */

void weft__conn_read_start(conn_t *k)
{
    weft__reader_start(&k->rf);
}

void weft__conn_read_stop(conn_t *k)
{
    weft__reader_stop(&k->rf);
}

void weft__conn_kick(conn_t *k)
{
    if (k->kicked) return;
    k->kicked = true;
    k->next_kick = k->client->kick_conns;
    k->client->kick_conns = k;
    weft__client_kick_start(k->client);
}

/* ---- calls on connections ---- */

void weft__conn_start_call(conn_t *k, call_t *call)
{
    weft__call_to(call, CALL_HEAD);
    conn_to(k, CONN_BUSY);
    k->call = call;
    call->conn = k;
    call->started_ns = uv_hrtime();
    call->sent = false;
    call->head_deadline = call->body_deadline = 0;
    weft__read_reset(k);
    if (call->paused)
        weft__conn_read_stop(k);
    else
        weft__conn_read_start(k);
    weft__conn_flush(k);
}

void weft__conn_handoff(conn_t *k)
{
    pool_t *p = k->pool;
    weft_http_client_t *c = k->client;
    WEFT_ASSERT(k->state == CONN_BUSY && !k->call);
    if (p->qhead) {
        k->reused = true;
        c->st.conns_reused++;
        weft__conn_start_call(k, p->qhead);
        return;
    }
    if (p->nidle >= c->o.max_idle_per_host) {
        weft__conn_close(k);
        return;
    }
    conn_to(k, CONN_IDLE);
    k->idle_deadline = weft__add_ms(uv_now(c->loop), c->o.idle_timeout_ms);
    weft__pool_idle_push(p, k);
    /* keep reading: an idle connection that the server closes is noticed at once */
    weft__conn_read_start(k);
    weft__client_sweep_start(c);
}

bool weft__conn_retry_fresh(conn_t *k, call_t *call)
{
    if (!k->reused || k->got_bytes || !call->idempotent || call->retried ||
        call->bmode != WEFT_HTTP_CLIENT_BODY_FIXED || call->state != CALL_HEAD)
        return false;
    call->retried = true;
    k->client->st.retries++;
    weft__conn_close(k);
    call->flushed = false;
    call->sent = false;
    call->head_deadline = 0;
    weft__pool_dispatch(call->pool, call, true);
    return true;
}

/* ---- opening: lookup, connect, failover ---- */

static void attempt(conn_t *k);

static int dns_error(int status)
{
    switch (status) {
    case UV_EAI_MEMORY:
        return WEFT_ENOMEM;
    case UV_EAI_AGAIN:
        return WEFT_EAGAIN;
    case UV_ECANCELED:
        return WEFT_ECANCELED;
    default:
        return WEFT_ENOENT;
    }
}

/* Errors after which the next address may do better: this one refused or was not there. */
static bool failover_error(int err)
{
    switch (err) {
    case UV_ECONNREFUSED:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_EADDRNOTAVAIL:
    case UV_EAFNOSUPPORT:
    case UV_ETIMEDOUT:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case WEFT_ETIMEDOUT_CONNECT:
        return true;
    default:
        return false;
    }
}

/* The failed attempt's handle closed: the next address on a new socket, unless k was
 * closed meanwhile. */
static void on_attempt_closed(uv_handle_t *h)
{
    conn_t *k = h->data;
    if (k->state == CONN_CLOSED) {
        conn_free(k);
        return;
    }
    WEFT_ASSERT(k->state == CONN_NEXT);
    int err = uv_tcp_init(k->client->loop, &k->tcp); /* makes no socket: does not fail */
    if (err) {
        weft__call_fail(k->call, err); /* closes k: from NEXT, no handle to close */
        conn_free(k);
        return;
    }
    k->tcp.data = k;
    conn_to(k, CONN_CONNECTING);
    attempt(k);
}

/* The connect to addrs[ai] failed with err: the next address, or the call fails with err. */
static void connect_failed(conn_t *k, int err)
{
    WEFT_ASSERT(k->state == CONN_CONNECTING);
    if (k->ai + 1 < k->naddr && failover_error(err)) {
        k->ai++;
        k->client->st.failovers++;
        k->pool->st.failovers++;
        k->attempt_deadline = 0;
        conn_to(k, CONN_NEXT);
        uv_close((uv_handle_t *)&k->tcp, on_attempt_closed);
        return;
    }
    weft__call_fail_soon(k->call, err);
}

void weft__conn_attempt_timed_out(conn_t *k)
{
    if (k->state == CONN_RESOLVING)
        weft__call_fail_soon(k->call, WEFT_ETIMEDOUT_CONNECT);
    else if (k->state == CONN_CONNECTING)
        connect_failed(k, WEFT_ETIMEDOUT_CONNECT);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *k = req->data;
    if (k->state != CONN_CONNECTING) return; /* closed, or an attempt given up (NEXT) */
    if (status < 0) {
        connect_failed(k, status);
        return;
    }
    k->attempt_deadline = 0;
    uv_tcp_nodelay(&k->tcp, 1);
    uv_os_fd_t fd;
    int err = uv_fileno((uv_handle_t *)&k->tcp, &fd);
    if (!err)
        err = weft__reader_add(&k->client->reader, &k->rf, fd, weft__read_alloc, weft__read_cb, k);
    if (err) {
        weft__call_fail(k->call, err);
        return;
    }
    weft__conn_start_call(k, k->call);
}

/* Connects to addrs[ai], with its own connect timeout. */
static void attempt(conn_t *k)
{
    WEFT_ASSERT(k->state == CONN_CONNECTING && k->ai < k->naddr);
    call_t *call = k->call;
    k->attempt_deadline =
        call->connect_ms ? weft__add_ms(uv_now(k->client->loop), call->connect_ms) : 0;
    k->creq.data = k;
    int err = uv_tcp_connect(&k->creq, &k->tcp, &k->addrs[k->ai].sa, on_connect);
    if (err) connect_failed(k, err);
}

/* Keeps the IPv4 and IPv6 addresses of res, in order, at most CLIENT_MAX_ADDRS. */
static unsigned take_addrs(conn_t *k, const struct addrinfo *res)
{
    unsigned n = 0;
    for (const struct addrinfo *a = res; a && n < CLIENT_MAX_ADDRS; a = a->ai_next) {
        if (a->ai_family == AF_INET && a->ai_addrlen >= sizeof(struct sockaddr_in))
            memcpy(&k->addrs[n++].in, a->ai_addr, sizeof(struct sockaddr_in));
        else if (a->ai_family == AF_INET6 && a->ai_addrlen >= sizeof(struct sockaddr_in6))
            memcpy(&k->addrs[n++].in6, a->ai_addr, sizeof(struct sockaddr_in6));
    }
    return n;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    conn_t *k = g->data;
    if (k->state == CONN_CLOSED) {
        uv_freeaddrinfo(res);
        uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
        return;
    }
    conn_to(k, CONN_CONNECTING); /* the lookup is over: closing now closes the handle */
    unsigned n = status < 0 ? 0 : take_addrs(k, res);
    uv_freeaddrinfo(res);
    if (n == 0) {
        weft__call_fail(k->call, status < 0 ? dns_error(status) : WEFT_ENOENT);
        return;
    }
    k->naddr = n;
    attempt(k);
}

/* The read buffer's limit: a whole head must fit (offsets into it are 32-bit). */
static size_t rbuf_limit(const weft_http_client_t *c)
{
    uint64_t lim = (uint64_t)c->o.max_response_head + CLIENT_HEAD_SLACK + CLIENT_READ_CHUNK;
    return lim < UINT32_MAX ? (size_t)lim : UINT32_MAX - 1;
}

void weft__conn_open(pool_t *p, call_t *call)
{
    weft_http_client_t *c = p->client;
    weft__call_to(call, CALL_CONNECTING);
    conn_t *k = malloc(sizeof(*k));
    if (!k) {
        weft__call_fail_soon(call, WEFT_ENOMEM);
        return;
    }
    memset(k, 0, offsetof(conn_t, addrs)); /* the addresses are written before they are read */
    int err = uv_tcp_init(c->loop, &k->tcp);
    if (err) {
        free(k);
        weft__call_fail_soon(call, err);
        return;
    }
    k->tcp.data = k;
    k->pool = p;
    k->client = c;
    weft_buf_init(&k->rbuf, rbuf_limit(c));
    k->next = c->conns;
    if (c->conns) c->conns->prev = k;
    c->conns = k;
    p->nconns++;
    c->nconns++;
    c->open_handles++;
    c->st.conns_opened++;
    k->call = call;
    call->conn = k;
    if (p->numeric) {
        k->addrs[0] = p->addr;
        k->naddr = 1;
        conn_to(k, CONN_CONNECTING);
        attempt(k);
        return;
    }
    if (c->resolve) {
        int n = c->resolve(c->resolve_arg, p->host, p->port, k->addrs, CLIENT_MAX_ADDRS);
        conn_to(k, CONN_CONNECTING);
        if (n <= 0) {
            weft__call_fail_soon(call, n < 0 ? n : WEFT_ENOENT);
            return;
        }
        k->naddr = n > CLIENT_MAX_ADDRS ? CLIENT_MAX_ADDRS : (unsigned)n;
        attempt(k);
        return;
    }
    conn_to(k, CONN_RESOLVING);
    k->attempt_deadline = call->connect_ms ? weft__add_ms(uv_now(c->loop), call->connect_ms) : 0;
    k->gai.data = k;
    char port[8];
    snprintf(port, sizeof(port), "%u", p->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    err = uv_getaddrinfo(c->loop, &k->gai, on_resolved, p->host, port, &hints);
    if (err) {
        conn_to(k, CONN_CONNECTING); /* no lookup in flight: closing closes the handle */
        weft__call_fail_soon(call, dns_error(err));
    }
}

void weft__client_set_resolver(weft_http_client_t *c, weft__client_resolve_fn fn, void *arg)
{
    c->resolve = fn;
    c->resolve_arg = arg;
}
