/*
 * client.c - HTTP/1.1 client with per-host keep-alive pools on one libuv loop.
 *
 * Objects. A client has pools (one per host:port, in a hash table), connections and calls.
 * A call is one request: its serialized bytes, callbacks, deadlines and body state. A
 * connection carries at most one call at a time (no pipelining: a proxy cannot know which
 * requests are safe to pipeline) and owns the parse state of the response it is reading:
 * the llhttp parser, the read buffer, and the buffer of header names and values. A pool
 * hands a call its most recently used idle connection, opens a new one while under
 * max_conns_per_host, or queues the call (bounded by max_queue).
 *
 * Hot path. A call object comes from a free list that keeps its write buffers, connections
 * keep their header buffers, and the request is serialized into one buffer written with
 * one uv_write: in steady state nothing is allocated per request. A streamed body uses two
 * buffers per call: `out` collects what _write gives while `flight` is being written; at
 * most one write is in flight per connection.
 *
 * Deferred work. Callbacks never run inside an API call (except cancel and close, which say
 * so), because the caller could not survive its call being freed under it. A failure found
 * synchronously (connect refused at once, uv_write refused) moves the call to the `dying`
 * list and a uv_idle handle ("kick") delivers on_done on the next loop iteration. The kick
 * also parses bytes held by a paused call after resume, and opens connections for queued
 * calls after a connection of their pool closed.
 *
 * Timers: one 50 ms sweep per client checks call deadlines (connect and request timeouts),
 * closes pooled connections idle past idle_timeout_ms and frees empty pools; it stops when
 * there is nothing to watch. A call pays no timer of its own.
 *
 * Life cycle rules: on_done runs exactly once per accepted call, after which the call is
 * recycled; connections, pools and the client are freed only from close callbacks or the
 * sweep, never synchronously under a user callback, so code running after a user callback
 * may still touch them, and checks the call it was serving by its sequence number.
 * Everything runs on the client's loop thread.
 * Memory policy (SDK): allocation failures fail the call with WEFT_ENOMEM, never abort.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include <llhttp.h>

#include "http/url.h"
#include "weft/client.h"

#define SWEEP_MS         50
#define READ_CHUNK       16384
#define FREE_CALLS_MAX   256        /* recycled call objects kept per client */
#define KEEP_BUF_MAX     8192       /* a recycled call keeps write buffers up to this size */
#define GET_BODY_DEFAULT (1u << 20) /* weft_http_client_get's default body limit */
#define BUCKETS_MIN      16
#define BUCKETS_MAX      65536

typedef struct conn_s conn_t;
typedef struct pool_s pool_t;
typedef struct weft_http_client_call_s call_t;

typedef struct buf_s {
    char *base;
    size_t len, cap;
} buf_t;

typedef struct hoff_s {
    uint32_t noff, nlen, voff, vlen;
} hoff_t;

struct weft_http_client_call_s {
    weft_http_client_t *client;
    pool_t *pool;
    conn_t *conn;          /* the connection carrying it; NULL while queued or dying */
    call_t *prev, *next;   /* c->calls or c->dying; `next` also links the free list */
    call_t *qprev, *qnext; /* the pool's wait queue */
    uint64_t seq;          /* unique per request: tells "still the same call" after callbacks */
    buf_t out;             /* FIXED: the whole request; streamed: bytes not yet written */
    buf_t flight;          /* streamed: the bytes of the write in flight */
    uint64_t body_left;    /* LENGTH: bytes _write may still give */
    size_t head_left;      /* streamed: head bytes in out/flight, not counted as body */
    uint64_t deadline;     /* whole exchange; 0: none */
    uint64_t connect_deadline;
    weft_http_client_cbs_t cbs;
    void *arg;
    int dying_err;
    weft_http_client_body_t bmode;
    bool queued, dying, is_head, idempotent, retried, flushed, ended, want_drain, paused;
    bool connected, connect_timed_out;
};

typedef enum { K_RESOLVING, K_CONNECTING, K_BUSY, K_IDLE } kstate_t;

struct conn_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    llhttp_t parser;
    weft_http_client_t *client;
    pool_t *pool;
    conn_t *prev, *next;   /* all connections of the client */
    conn_t *iprev, *inext; /* the pool's idle list, most recently used first */
    conn_t *next_kick;
    call_t *call;
    uint64_t idle_deadline;
    uint64_t wseq; /* seq of the call whose bytes the write in flight carries */
    char *hbuf;    /* header names and values of the response being parsed */
    size_t hlen, hcap;
    hoff_t *hoffs; /* max_headers entries, allocated once per connection */
    weft_http_header_t *harr;
    unsigned nh;
    int perr;          /* error a parser callback wants reported (limits, memory) */
    size_t rpos, rend; /* rbuf[rpos, rend): received, not parsed yet (a paused call's) */
    kstate_t state;
    bool reused, got_bytes, closing, writing, message_done, in_value, interim, head_done;
    bool parser_paused; /* llhttp returned HPE_PAUSED from a callback: llhttp_resume first */
    bool held;          /* a pause stopped parsing: run the parser before reading again */
    bool kicked;
    char rbuf[READ_CHUNK];
};

struct pool_s {
    pool_t *hnext;     /* hash chain */
    pool_t *next_kick; /* c->kick_pools */
    weft_http_client_t *client;
    conn_t *idle;
    call_t *qhead, *qtail;
    uint32_t hash;
    unsigned nidle, nconns, nq, ncalls; /* ncalls: calls naming this pool, in any state */
    uint16_t port;
    bool kicked, numeric;
    struct sockaddr_storage addr; /* when numeric */
    char host[];
};

struct weft_http_client_s {
    uv_loop_t *loop;
    weft_http_client_options_t o;
    uv_timer_t sweep;
    uv_idle_t kick;
    pool_t **buckets;
    unsigned nbuckets, npools;
    conn_t *conns;
    call_t *calls, *dying, *free_calls;
    unsigned nfree, ndying, ncalls, nconns, nidle, nqueued;
    conn_t *kick_conns;
    pool_t *kick_pools;
    uint64_t seq;
    unsigned open_handles;
    bool closing, pools_dirty;
    void (*on_closed)(void *);
    void *closed_arg;
    weft_http_client_stats_t st;
};

static const llhttp_settings_t settings;
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_written(uv_write_t *w, int status);
static void on_kick(uv_idle_t *h);
static void on_sweep(uv_timer_t *t);
static void dispatch(pool_t *p, call_t *call, bool fresh);

void weft_http_client_options_init(weft_http_client_options_t *o)
{
    o->connect_timeout_ms = 2000;
    o->request_timeout_ms = 30000;
    o->idle_timeout_ms = 60000;
    o->max_idle_per_host = 64;
    o->max_conns_per_host = 1024;
    o->max_queue = 4096;
    o->max_hosts = 4096;
    o->max_response_head = 64 * 1024;
    o->max_headers = 100;
    o->max_body_buffer = 256 * 1024;
}

/* ---- small helpers ---- */

static int buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    if (extra > SIZE_MAX / 4 - b->len) return WEFT_ENOMEM;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->base, cap);
    if (!p) return WEFT_ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

/* Appends n bytes; room was reserved. */
static void buf_put(buf_t *b, const void *d, size_t n)
{
    if (n) memcpy(b->base + b->len, d, n);
    b->len += n;
}

static void buf_puts(buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_free(buf_t *b)
{
    free(b->base);
    *b = (buf_t){0};
}

static uint64_t add_ms(uint64_t now, uint64_t ms)
{
    return ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
}

static void kick_start(weft_http_client_t *c)
{
    if (!c->closing) uv_idle_start(&c->kick, on_kick);
}

static void sweep_start(weft_http_client_t *c)
{
    if (!c->closing && !uv_is_active((uv_handle_t *)&c->sweep))
        uv_timer_start(&c->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
}

/* Calls live in one of two doubly linked lists: c->calls (running) or c->dying. */
static void list_push(call_t **head, call_t *call)
{
    call->prev = NULL;
    call->next = *head;
    if (*head) (*head)->prev = call;
    *head = call;
}

static void list_unlink(call_t **head, call_t *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        *head = call->next;
    if (call->next) call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void queue_push(pool_t *p, call_t *call)
{
    call->qnext = NULL;
    call->qprev = p->qtail;
    if (p->qtail)
        p->qtail->qnext = call;
    else
        p->qhead = call;
    p->qtail = call;
    call->queued = true;
    p->nq++;
    p->client->nqueued++;
}

static void queue_remove(pool_t *p, call_t *call)
{
    if (!call->queued) return;
    if (call->qprev)
        call->qprev->qnext = call->qnext;
    else
        p->qhead = call->qnext;
    if (call->qnext)
        call->qnext->qprev = call->qprev;
    else
        p->qtail = call->qprev;
    call->qprev = call->qnext = NULL;
    call->queued = false;
    p->nq--;
    p->client->nqueued--;
}

static void idle_push(pool_t *p, conn_t *k)
{
    k->iprev = NULL;
    k->inext = p->idle;
    if (p->idle) p->idle->iprev = k;
    p->idle = k;
    p->nidle++;
    p->client->nidle++;
}

static void idle_remove(pool_t *p, conn_t *k)
{
    if (k->iprev)
        k->iprev->inext = k->inext;
    else
        p->idle = k->inext;
    if (k->inext) k->inext->iprev = k->iprev;
    k->iprev = k->inext = NULL;
    p->nidle--;
    p->client->nidle--;
}

/* ---- pools ---- */

static uint32_t pool_hash(const char *host, size_t len, uint16_t port)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)host[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    return (h ^ (port >> 8)) * 16777619u;
}

static void pools_grow(weft_http_client_t *c)
{
    unsigned n = c->nbuckets * 2;
    pool_t **b = calloc(n, sizeof(*b));
    if (!b) return; /* longer chains, still correct */
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t *p = c->buckets[i], *next; p; p = next) {
            next = p->hnext;
            p->hnext = b[p->hash & (n - 1)];
            b[p->hash & (n - 1)] = p;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

/* The pool of host:port, created if needed. Returns NULL with *err set. */
static pool_t *pool_get(weft_http_client_t *c, const char *host, uint16_t port, int *err)
{
    size_t hl = strlen(host);
    uint32_t h = pool_hash(host, hl, port);
    for (pool_t *p = c->buckets[h & (c->nbuckets - 1)]; p; p = p->hnext)
        if (p->hash == h && p->port == port && strcmp(p->host, host) == 0) return p;
    if (c->npools >= c->o.max_hosts) {
        *err = WEFT_ELIMIT;
        return NULL;
    }
    pool_t *p = calloc(1, sizeof(*p) + hl + 1);
    if (!p) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    memcpy(p->host, host, hl + 1);
    p->port = port;
    p->hash = h;
    p->client = c;
    p->numeric = uv_ip4_addr(host, port, (struct sockaddr_in *)&p->addr) == 0 ||
                 uv_ip6_addr(host, port, (struct sockaddr_in6 *)&p->addr) == 0;
    p->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = p;
    c->npools++;
    if (c->npools > c->nbuckets * 2 && c->nbuckets < BUCKETS_MAX) pools_grow(c);
    return p;
}

/* Frees pools nothing refers to any more (run from the sweep, never under a callback). */
static void pools_free_empty(weft_http_client_t *c)
{
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t **pp = &c->buckets[i]; *pp;) {
            pool_t *p = *pp;
            if (p->ncalls || p->nconns || p->kicked) {
                pp = &p->hnext;
                continue;
            }
            *pp = p->hnext;
            c->npools--;
            free(p);
        }
    }
}

/* ---- connections ---- */

static void maybe_free_client(weft_http_client_t *c)
{
    if (!c->closing || c->open_handles) return;
    for (unsigned i = 0; i < c->nbuckets; i++) {
        for (pool_t *p = c->buckets[i], *next; p; p = next) {
            next = p->hnext;
            free(p);
        }
    }
    free(c->buckets);
    for (call_t *call = c->free_calls, *next; call; call = next) {
        next = call->next;
        buf_free(&call->out);
        buf_free(&call->flight);
        free(call);
    }
    void (*cb)(void *) = c->on_closed;
    void *arg = c->closed_arg;
    free(c);
    if (cb) cb(arg);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *k = h->data;
    weft_http_client_t *c = k->client;
    free(k->hbuf);
    free(k->hoffs);
    free(k->harr);
    free(k);
    c->open_handles--;
    maybe_free_client(c);
}

/* Closes a connection and detaches its call (which the caller fails or re-dispatches).
 * The pool is not touched after this through k; queued calls get a new connection from
 * the kick. */
static void conn_close(conn_t *k)
{
    if (k->closing) return;
    weft_http_client_t *c = k->client;
    pool_t *p = k->pool;
    k->closing = true;
    if (k->state == K_IDLE) idle_remove(p, k);
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
    if (p->qhead && !c->closing && !p->kicked) {
        p->kicked = true;
        p->next_kick = c->kick_pools;
        c->kick_pools = p;
        kick_start(c);
    }
    c->pools_dirty = true;
    sweep_start(c);
    if (k->state == K_RESOLVING) {
        /* the lookup's callback sees `closing` and closes the handle */
        uv_cancel((uv_req_t *)&k->gai);
        return;
    }
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

/* ---- calls ---- */

static call_t *call_new(weft_http_client_t *c)
{
    call_t *call = c->free_calls;
    if (!call) return calloc(1, sizeof(*call));
    c->free_calls = call->next;
    c->nfree--;
    buf_t out = call->out, flight = call->flight;
    memset(call, 0, sizeof(*call));
    call->out = out;
    call->out.len = 0;
    call->flight = flight;
    call->flight.len = 0;
    return call;
}

static void call_recycle(weft_http_client_t *c, call_t *call)
{
    if (c->closing || c->nfree >= FREE_CALLS_MAX) {
        buf_free(&call->out);
        buf_free(&call->flight);
        free(call);
        return;
    }
    if (call->out.cap > KEEP_BUF_MAX) buf_free(&call->out);
    if (call->flight.cap > KEEP_BUF_MAX) buf_free(&call->flight);
    call->next = c->free_calls;
    c->free_calls = call;
    c->nfree++;
}

static void count_end(weft_http_client_t *c, const call_t *call, int err)
{
    weft_http_client_stats_t *s = &c->st;
    if (err == 0)
        s->responses++;
    else if (err == WEFT_ECANCELED)
        s->fail_canceled++;
    else if (err == WEFT_ETIMEDOUT && call->connect_timed_out)
        s->fail_connect_timeout++;
    else if (err == WEFT_ETIMEDOUT)
        s->fail_timeout++;
    else if (err == WEFT_EPARSE || err == WEFT_ELIMIT)
        s->fail_response++;
    else if (err == WEFT_ENOMEM)
        s->fail_other++;
    else if (!call->connected)
        s->fail_connect++;
    else
        s->fail_io++;
}

/* Ends a call: its connection, if any, must already be released or closed. Runs on_done,
 * then recycles the call. */
static void finish(call_t *call, int err)
{
    weft_http_client_t *c = call->client;
    pool_t *p = call->pool;
    if (call->dying) {
        list_unlink(&c->dying, call);
        c->ndying--;
    } else {
        list_unlink(&c->calls, call);
    }
    queue_remove(p, call);
    call->conn = NULL;
    p->ncalls--;
    c->ncalls--;
    if (!p->ncalls) {
        c->pools_dirty = true;
        sweep_start(c);
    }
    count_end(c, call, err);
    if (call->cbs.on_done) call->cbs.on_done(call, err, call->arg);
    call_recycle(c, call);
}

/* The call failed: close its connection (state unknown), end the call now. Only from libuv
 * callbacks, cancel and close. */
static void fail(call_t *call, int err)
{
    if (call->conn) conn_close(call->conn);
    finish(call, err);
}

/* The call failed inside an API call or where its caller still needs it: close its
 * connection now, deliver on_done from the kick on the next loop iteration. */
static void fail_soon(call_t *call, int err)
{
    weft_http_client_t *c = call->client;
    if (call->conn) conn_close(call->conn);
    queue_remove(call->pool, call);
    if (call->dying) return;
    list_unlink(&c->calls, call);
    call->dying = true;
    call->dying_err = err;
    list_push(&c->dying, call);
    c->ndying++;
    kick_start(c);
}

/* Delivers on_done to the calls that were dying when this started. */
static void process_dying(weft_http_client_t *c)
{
    unsigned n = c->ndying;
    while (n-- && c->dying && !c->closing) fail(c->dying, c->dying->dying_err);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *k = h->data;
    *buf = uv_buf_init(k->rbuf, sizeof(k->rbuf));
}

static int read_start(conn_t *k)
{
    int err = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    return err == UV_EALREADY ? 0 : err;
}

/* Hands the call's unsent bytes to libuv, unless a write is in flight (its callback calls
 * this again). A failure is delivered later (fail_soon): this runs inside API calls. */
static void flush(conn_t *k)
{
    call_t *call = k->call;
    if (!call || k->writing || k->closing || k->state != K_BUSY) return;
    uv_buf_t b;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_FIXED) {
        if (call->flushed) return;
        call->flushed = true;
        b = uv_buf_init(call->out.base, (unsigned)call->out.len);
    } else {
        if (call->out.len == 0) return;
        buf_t t = call->flight;
        call->flight = call->out;
        call->out = t;
        call->out.len = 0;
        b = uv_buf_init(call->flight.base, (unsigned)call->flight.len);
    }
    k->wseq = call->seq;
    k->writing = true;
    k->wreq.data = k;
    int err = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_written);
    if (err) {
        k->writing = false;
        fail_soon(call, err);
    }
}

/* Every byte of the request is in the kernel: the connection may carry another request. */
static bool body_sent(conn_t *k, call_t *call)
{
    bool all = call->bmode == WEFT_HTTP_CLIENT_BODY_FIXED ? call->flushed
                                                          : call->ended && call->out.len == 0;
    return all && k->tcp.write_queue_size == 0;
}

static void start_call(conn_t *k, call_t *call)
{
    k->call = call;
    call->conn = k;
    call->connected = true;
    call->connect_deadline = 0;
    k->state = K_BUSY;
    k->got_bytes = k->message_done = k->interim = k->head_done = false;
    k->in_value = k->parser_paused = k->held = false;
    k->nh = 0;
    k->hlen = 0;
    k->perr = 0;
    k->rpos = k->rend = 0;
    llhttp_init(&k->parser, HTTP_RESPONSE, &settings);
    k->parser.data = k;
    int err = 0;
    if (call->paused)
        uv_read_stop((uv_stream_t *)&k->tcp);
    else
        err = read_start(k);
    if (err) {
        fail_soon(call, WEFT_ECONNRESET);
        return;
    }
    flush(k);
}

/* A connection whose call ended cleanly: give it the next queued call, park it, or close
 * it when the pool holds enough idle ones. No user callback runs here. */
static void handoff(conn_t *k)
{
    pool_t *p = k->pool;
    weft_http_client_t *c = k->client;
    if (p->qhead) {
        call_t *next = p->qhead;
        queue_remove(p, next);
        k->reused = true;
        c->st.conns_reused++;
        start_call(k, next);
        return;
    }
    if (p->nidle >= c->o.max_idle_per_host) {
        conn_close(k);
        return;
    }
    k->state = K_IDLE;
    k->idle_deadline = add_ms(uv_now(c->loop), c->o.idle_timeout_ms);
    idle_push(p, k);
    /* keep reading: an idle connection that the server closes is noticed at once */
    if (read_start(k) != 0) {
        conn_close(k);
        return;
    }
    sweep_start(c);
}

/* A pooled connection failed before any byte of the response: the server had closed it
 * first (the keep-alive race). An idempotent call with a replayable body is retried once,
 * on a fresh connection. */
static bool retry_fresh(conn_t *k, call_t *call)
{
    if (!k->reused || k->got_bytes || !call->idempotent || call->retried ||
        call->bmode != WEFT_HTTP_CLIENT_BODY_FIXED)
        return false;
    call->retried = true;
    k->client->st.retries++;
    conn_close(k);
    call->flushed = false;
    dispatch(call->pool, call, true);
    return true;
}

static void on_written(uv_write_t *w, int status)
{
    conn_t *k = w->data;
    k->writing = false;
    if (k->closing) return;
    call_t *call = k->call;
    if (status < 0) {
        if (!call) {
            conn_close(k);
        } else if (!retry_fresh(k, call)) {
            fail(call, status);
        }
        return;
    }
    if (!call) return;
    if (call->seq == k->wseq && call->bmode != WEFT_HTTP_CLIENT_BODY_FIXED) {
        call->flight.len = 0;
        call->head_left = 0; /* the first write carried the whole head */
    }
    flush(k);
    if (call->want_drain && call->out.len == 0 && call->flight.len == 0 && !call->dying) {
        call->want_drain = false;
        if (call->cbs.on_drain) call->cbs.on_drain(call, call->arg);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *k = req->data;
    if (k->closing) return;
    call_t *call = k->call;
    if (!call) {
        conn_close(k);
        return;
    }
    if (status < 0) {
        fail(call, status);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    start_call(k, call);
}

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

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    conn_t *k = g->data;
    k->state = K_CONNECTING;
    if (k->closing) {
        uv_freeaddrinfo(res);
        uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
        return;
    }
    call_t *call = k->call;
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        fail(call, status < 0 ? dns_error(status) : WEFT_ENOENT);
        return;
    }
    struct addrinfo *use = res; /* the first IPv4 address, else the first: weft's servers
                                   listen on 127.0.0.1 by default where localhost may be ::1 */
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            use = a;
            break;
        }
    }
    k->creq.data = k;
    int err = uv_tcp_connect(&k->creq, &k->tcp, use->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (err) fail(call, err);
}

/* Opens a connection for call. Failures are delivered later (fail_soon). */
static void open_conn(pool_t *p, call_t *call)
{
    weft_http_client_t *c = p->client;
    conn_t *k = malloc(sizeof(*k));
    if (!k) {
        fail_soon(call, WEFT_ENOMEM);
        return;
    }
    memset(k, 0, offsetof(conn_t, rbuf)); /* the read buffer needs no zeroing */
    int err = uv_tcp_init(c->loop, &k->tcp);
    if (err) {
        free(k);
        fail_soon(call, err);
        return;
    }
    k->tcp.data = k;
    k->pool = p;
    k->client = c;
    k->next = c->conns;
    if (c->conns) c->conns->prev = k;
    c->conns = k;
    p->nconns++;
    c->nconns++;
    c->open_handles++;
    c->st.conns_opened++;
    k->call = call;
    call->conn = k;
    call->connected = false;
    call->connect_deadline =
        c->o.connect_timeout_ms ? add_ms(uv_now(c->loop), c->o.connect_timeout_ms) : 0;
    if (p->numeric) {
        k->state = K_CONNECTING;
        k->creq.data = k;
        err = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&p->addr, on_connect);
        if (err) fail_soon(call, err);
        return;
    }
    k->state = K_RESOLVING;
    k->gai.data = k;
    char port[8];
    snprintf(port, sizeof(port), "%u", p->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    err = uv_getaddrinfo(c->loop, &k->gai, on_resolved, p->host, port, &hints);
    if (err) {
        k->state = K_CONNECTING; /* no lookup in flight: conn_close closes the handle */
        fail_soon(call, dns_error(err));
    }
}

static void dispatch(pool_t *p, call_t *call, bool fresh)
{
    weft_http_client_t *c = call->client;
    if (!fresh && p->idle) {
        conn_t *k = p->idle;
        idle_remove(p, k);
        k->reused = true;
        c->st.conns_reused++;
        start_call(k, call);
        return;
    }
    if (p->nconns < c->o.max_conns_per_host) {
        open_conn(p, call);
        return;
    }
    queue_push(p, call);
}

/* A connection of p closed while calls wait: open connections for them. */
static void pump(pool_t *p)
{
    weft_http_client_t *c = p->client;
    while (p->qhead && p->nconns < c->o.max_conns_per_host && !c->closing) {
        call_t *call = p->qhead;
        queue_remove(p, call);
        open_conn(p, call);
    }
}

/* ---- response parsing ---- */

static int head_append(conn_t *k, const char *at, size_t len)
{
    if (len == 0) return 0; /* llhttp may report empty pieces; hbuf may still be NULL */
    if (len > k->client->o.max_response_head - k->hlen) {
        k->perr = WEFT_ELIMIT;
        return -1;
    }
    if (k->hlen + len > k->hcap) {
        size_t cap = k->hcap ? k->hcap * 2 : 1024;
        while (cap < k->hlen + len) cap *= 2;
        char *p = realloc(k->hbuf, cap);
        if (!p) {
            k->perr = WEFT_ENOMEM;
            return -1;
        }
        k->hbuf = p;
        k->hcap = cap;
    }
    memcpy(k->hbuf + k->hlen, at, len);
    k->hlen += len;
    return 0;
}

static int r_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    weft_http_client_t *c = k->client;
    if (!k->call) return -1;
    if (k->nh == 0 || k->in_value) {
        if (k->nh >= c->o.max_headers) {
            k->perr = WEFT_ELIMIT;
            return -1;
        }
        if (!k->hoffs) {
            k->hoffs = malloc(sizeof(*k->hoffs) * c->o.max_headers);
            k->harr = malloc(sizeof(*k->harr) * c->o.max_headers);
            if (!k->hoffs || !k->harr) {
                free(k->hoffs);
                free(k->harr);
                k->hoffs = NULL;
                k->harr = NULL;
                k->perr = WEFT_ENOMEM;
                return -1;
            }
        }
        hoff_t *h = &k->hoffs[k->nh++];
        h->noff = (uint32_t)k->hlen;
        h->nlen = h->voff = h->vlen = 0;
        k->in_value = false;
    }
    k->hoffs[k->nh - 1].nlen += (uint32_t)len;
    return head_append(k, at, len);
}

static int r_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    if (!k->call || k->nh == 0) return -1;
    hoff_t *h = &k->hoffs[k->nh - 1];
    if (h->vlen == 0) h->voff = (uint32_t)k->hlen;
    h->vlen += (uint32_t)len;
    k->in_value = true;
    return head_append(k, at, len);
}

static int r_header_value_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    k->in_value = true;
    return 0;
}

static int r_headers_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    int status = llhttp_get_status_code(p);
    if (status < 100 || status > 999) return -1; /* llhttp takes "HTTP/1.1 2 OK": 3DIGIT */
    if (status < 200 && status != 101) {
        k->interim = true; /* 100 Continue and friends: not the response, and no body */
        return 1;
    }
    const char *hb = k->hbuf ? k->hbuf : ""; /* empty names and values: no buffer yet */
    for (unsigned i = 0; i < k->nh; i++) {
        hoff_t *h = &k->hoffs[i];
        k->harr[i].name = (weft_str_t){h->nlen ? hb + h->noff : "", h->nlen};
        k->harr[i].value = (weft_str_t){h->vlen ? hb + h->voff : "", h->vlen};
    }
    k->head_done = true;
    uint64_t seq = call->seq;
    if (call->cbs.on_head) call->cbs.on_head(call, status, k->harr, k->nh, call->arg);
    if (k->closing || !k->call || k->call->seq != seq) return -1;  /* cancelled from on_head */
    if (call->is_head || status == 204 || status == 304) return 1; /* never a body */
    return call->paused ? HPE_PAUSED : 0;
}

static int r_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call || !k->head_done) return -1; /* body bytes with no response head: malformed */
    if (len == 0) return 0;                /* a span flushed by a zero-length execute */
    uint64_t seq = call->seq;
    if (call->cbs.on_body) call->cbs.on_body(call, at, len, call->arg);
    if (k->closing || !k->call || k->call->seq != seq) return HPE_USER;
    return call->paused ? HPE_PAUSED : 0;
}

static int r_message_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    if (!k->call) return -1;
    if (k->interim) {
        k->interim = false;
        k->hlen = 0;
        k->nh = 0;
        k->in_value = false;
        return 0;
    }
    k->message_done = true;
    return HPE_PAUSED; /* stop here: bytes after the response are not ours to parse */
}

static const llhttp_settings_t settings = {
    .on_header_field = r_header_field,
    .on_header_value = r_header_value,
    .on_header_value_complete = r_header_value_complete,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_message_complete,
};

/* The response is complete; all_used: no bytes followed it. */
static void complete(conn_t *k, call_t *call, bool all_used)
{
    bool keep = all_used && llhttp_should_keep_alive(&k->parser) && body_sent(k, call) &&
                !k->client->closing;
    k->call = NULL;
    call->conn = NULL;
    k->rpos = k->rend = 0;
    if (keep)
        handoff(k);
    else
        conn_close(k);
    finish(call, 0);
}

/* Parses rbuf[rpos, rend) for the connection's call. */
static void parse(conn_t *k)
{
    call_t *call = k->call;
    uint64_t seq = call->seq;
    llhttp_errno_t e = llhttp_execute(&k->parser, k->rbuf + k->rpos, k->rend - k->rpos);
    if (k->closing || !k->call || k->call->seq != seq) return; /* ended from a callback */
    if (e == HPE_OK) {
        k->rpos = k->rend = 0;
        return;
    }
    size_t used = (size_t)(llhttp_get_error_pos(&k->parser) - k->rbuf);
    if (e == HPE_PAUSED && k->message_done && !call->paused) {
        complete(k, call, used == k->rend);
        return;
    }
    if (e == HPE_PAUSED) { /* paused from on_head or on_body; or complete, but paused */
        k->rpos = used;
        k->parser_paused = !k->message_done;
        k->held = true;
        uv_read_stop((uv_stream_t *)&k->tcp);
        return;
    }
    fail(call, k->perr ? k->perr : WEFT_EPARSE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *k = s->data;
    if (k->closing || nread == 0) return;
    call_t *call = k->call;
    if (!call) {
        conn_close(k); /* an idle connection closed, or sent bytes nobody asked for */
        return;
    }
    if (nread > 0) {
        k->got_bytes = true;
        k->rpos = 0;
        k->rend = (size_t)nread;
        parse(k);
        return;
    }
    if (retry_fresh(k, call)) return;
    if (nread == UV_EOF && k->got_bytes) {
        /* read-until-close bodies end here */
        llhttp_errno_t e = llhttp_finish(&k->parser);
        if (k->closing || k->call != call) return;
        if ((e == HPE_OK || e == HPE_PAUSED) && k->message_done) {
            complete(k, call, false);
            return;
        }
        fail(call, k->head_done ? WEFT_ECONNRESET : WEFT_EPARSE);
        return;
    }
    fail(call, nread == UV_EOF ? WEFT_ECONNRESET : (int)nread);
}

/* ---- deferred work and timers ---- */

static void kick_conn(conn_t *k)
{
    if (k->kicked) return;
    k->kicked = true;
    k->next_kick = k->client->kick_conns;
    k->client->kick_conns = k;
    kick_start(k->client);
}

static void on_kick(uv_idle_t *h)
{
    weft_http_client_t *c = h->data;
    /* resumed calls: parse what they held back, then read again */
    conn_t *batch = c->kick_conns;
    c->kick_conns = NULL;
    while (batch && !c->closing) {
        conn_t *k = batch;
        batch = k->next_kick;
        if (!k->kicked) continue; /* closed meanwhile: conn_close unlinked it */
        k->kicked = false;
        call_t *call = k->call;
        if (k->closing || !call || call->paused || !k->held) continue; /* resume kicks again */
        k->held = false;
        uint64_t seq = call->seq;
        if (k->message_done)
            complete(k, call, k->rpos == k->rend); /* held back by a pause */
        else
            parse(k); /* may be zero bytes: lets the parser finish a step */
        if (!k->closing && k->call && k->call->seq == seq && !k->call->paused && !k->held &&
            read_start(k) != 0)
            fail(k->call, WEFT_ECONNRESET);
    }
    for (conn_t *k = batch; k; k = k->next_kick) k->kicked = false; /* client closed */
    process_dying(c);
    while (c->kick_pools && !c->closing) {
        pool_t *p = c->kick_pools;
        c->kick_pools = p->next_kick;
        p->kicked = false;
        pump(p);
    }
    if (!c->kick_conns && !c->dying && !c->kick_pools && !c->closing) uv_idle_stop(h);
}

static void on_sweep(uv_timer_t *t)
{
    weft_http_client_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    for (call_t *call = c->calls, *next; call; call = next) {
        next = call->next;
        bool ct = call->connect_deadline && now >= call->connect_deadline;
        if (ct || (call->deadline && now >= call->deadline)) {
            call->connect_timed_out = ct;
            fail_soon(call, WEFT_ETIMEDOUT);
        }
    }
    if (c->o.idle_timeout_ms) {
        for (conn_t *k = c->conns, *next; k; k = next) {
            next = k->next;
            if (k->state == K_IDLE && now >= k->idle_deadline) conn_close(k);
        }
    }
    if (c->pools_dirty) {
        c->pools_dirty = false;
        pools_free_empty(c);
    }
    process_dying(c);
    if (!c->closing && !c->calls && !c->dying && !c->nidle && !c->pools_dirty) uv_timer_stop(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    weft_http_client_t *c = h->data;
    c->open_handles--;
    maybe_free_client(c);
}

/* ---- public ---- */

int weft_http_client_new(uv_loop_t *loop, const weft_http_client_options_t *o,
                         weft_http_client_t **out)
{
    weft_http_client_options_t d;
    if (!o) {
        weft_http_client_options_init(&d);
        o = &d;
    }
    if (!loop || !out || o->max_headers == 0 || o->max_conns_per_host == 0 || o->max_hosts == 0 ||
        o->max_response_head == 0 || o->max_body_buffer == 0 ||
        o->max_response_head >= UINT32_MAX || o->max_body_buffer > (1u << 30))
        return WEFT_EINVAL;
    weft_http_client_t *c = calloc(1, sizeof(*c));
    if (!c) return WEFT_ENOMEM;
    c->loop = loop;
    c->o = *o;
    c->nbuckets = BUCKETS_MIN;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return WEFT_ENOMEM;
    }
    int err = uv_timer_init(loop, &c->sweep);
    if (err == 0) {
        err = uv_idle_init(loop, &c->kick);
        if (err) {
            /* the timer is initialized: it must be closed, and the client freed after */
            c->closing = true;
            c->open_handles = 1;
            c->sweep.data = c;
            uv_close((uv_handle_t *)&c->sweep, on_handle_closed);
            return err;
        }
    }
    if (err) {
        free(c->buckets);
        free(c);
        return err;
    }
    c->sweep.data = c;
    c->kick.data = c;
    c->open_handles = 2;
    uv_unref((uv_handle_t *)&c->sweep); /* an idle client does not keep the loop alive */
    *out = c;
    return 0;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool valid_token(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return false;
    return true;
}

/* Header values: anything but CR, LF and NUL (the bytes that could inject a header). */
static bool valid_value(const char *s, size_t n)
{
    if (n && !s) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) return false;
    return true;
}

/* Request targets and hosts: visible ASCII and no space. */
static bool valid_visible(const char *s, const char *extra_bad)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr(extra_bad, *s))
            return false;
    return true;
}

static bool name_is(weft_str_t n, const char *lit)
{
    return n.len == strlen(lit) && strncasecmp(n.base, lit, n.len) == 0;
}

/* Writes the request head (and a FIXED body) into call->out. */
static int serialize(call_t *call, const weft_http_client_req_t *r, bool give_host)
{
    size_t hl = strlen(r->host);
    size_t need = strlen(r->method) + strlen(r->target) + hl + 128;
    for (size_t i = 0; i < r->nheaders; i++)
        need += r->headers[i].name.len + r->headers[i].value.len + 4;
    if (r->body_mode == WEFT_HTTP_CLIENT_BODY_FIXED) need += r->body_len;
    buf_t *b = &call->out;
    if (buf_reserve(b, need)) return WEFT_ENOMEM;
    char num[32];
    buf_puts(b, r->method);
    buf_put(b, " ", 1);
    buf_puts(b, r->target);
    buf_puts(b, " HTTP/1.1\r\n");
    if (give_host) {
        bool v6 = strchr(r->host, ':') != NULL;
        buf_puts(b, "Host: ");
        if (v6) buf_put(b, "[", 1);
        buf_put(b, r->host, hl);
        if (v6) buf_put(b, "]", 1);
        if (r->port != 80) buf_put(b, num, (size_t)snprintf(num, sizeof(num), ":%u", r->port));
        buf_puts(b, "\r\n");
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        buf_put(b, r->headers[i].name.base, r->headers[i].name.len);
        buf_put(b, ": ", 2);
        buf_put(b, r->headers[i].value.base, r->headers[i].value.len);
        buf_put(b, "\r\n", 2);
    }
    bool body_method = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                       strcmp(r->method, "PATCH") == 0;
    switch (r->body_mode) {
    case WEFT_HTTP_CLIENT_BODY_FIXED:
        if (r->body_len || body_method)
            buf_put(b, num,
                    (size_t)snprintf(num, sizeof(num), "Content-Length: %zu\r\n", r->body_len));
        break;
    case WEFT_HTTP_CLIENT_BODY_LENGTH:
        buf_put(b, num,
                (size_t)snprintf(num, sizeof(num), "Content-Length: %llu\r\n",
                                 (unsigned long long)r->content_length));
        break;
    case WEFT_HTTP_CLIENT_BODY_CHUNKED:
        buf_puts(b, "Transfer-Encoding: chunked\r\n");
        break;
    }
    buf_put(b, "\r\n", 2);
    if (r->body_mode == WEFT_HTTP_CLIENT_BODY_FIXED) buf_put(b, r->body, r->body_len);
    return 0;
}

int weft_http_client_request(weft_http_client_t *c, const weft_http_client_req_t *r,
                             const weft_http_client_cbs_t *cbs, void *arg,
                             weft_http_client_call_t **out)
{
    if (!c || !r || !cbs) return WEFT_EINVAL;
    if (c->closing) return WEFT_ECLOSED;
    if (!r->method || !valid_token(r->method, strlen(r->method)) ||
        !valid_visible(r->host, "/?#@[]") || strlen(r->host) > 255 ||
        !valid_visible(r->target, "") || (r->body_len && !r->body) || r->body_len > (1u << 30) ||
        (unsigned)r->body_mode > WEFT_HTTP_CLIENT_BODY_CHUNKED ||
        (r->body_mode != WEFT_HTTP_CLIENT_BODY_FIXED && r->body_len) ||
        (r->nheaders && !r->headers))
        return WEFT_EINVAL;
    bool give_host = true;
    for (size_t i = 0; i < r->nheaders; i++) {
        weft_str_t n = r->headers[i].name;
        if (!n.base || !valid_token(n.base, n.len) ||
            !valid_value(r->headers[i].value.base, r->headers[i].value.len) ||
            name_is(n, "content-length") || name_is(n, "transfer-encoding"))
            return WEFT_EINVAL;
        if (name_is(n, "host")) give_host = false;
    }
    int err = 0;
    pool_t *p = pool_get(c, r->host, r->port, &err);
    if (!p) {
        if (err == WEFT_ELIMIT) c->st.rejected++;
        return err;
    }
    if (!p->idle && p->nconns >= c->o.max_conns_per_host && p->nq >= c->o.max_queue) {
        c->st.rejected++;
        c->pools_dirty = true; /* the pool may be new and empty */
        sweep_start(c);
        return WEFT_ELIMIT;
    }
    call_t *call = call_new(c);
    if (!call || serialize(call, r, give_host) != 0) {
        if (call) call_recycle(c, call);
        c->pools_dirty = true;
        sweep_start(c);
        return WEFT_ENOMEM;
    }
    call->client = c;
    call->pool = p;
    call->seq = ++c->seq;
    call->cbs = *cbs;
    call->arg = arg;
    call->bmode = r->body_mode;
    call->body_left = r->content_length;
    call->ended = r->body_mode == WEFT_HTTP_CLIENT_BODY_FIXED;
    if (!call->ended) call->head_left = call->out.len;
    call->is_head = strcmp(r->method, "HEAD") == 0;
    call->idempotent = call->is_head || strcmp(r->method, "GET") == 0 ||
                       strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0 ||
                       strcmp(r->method, "OPTIONS") == 0 || strcmp(r->method, "TRACE") == 0;
    uint64_t timeout = r->timeout_ms ? r->timeout_ms : c->o.request_timeout_ms;
    if (timeout && timeout != WEFT_HTTP_CLIENT_NO_TIMEOUT)
        call->deadline = add_ms(uv_now(c->loop), timeout);
    list_push(&c->calls, call);
    p->ncalls++;
    c->ncalls++;
    c->st.requests++;
    if (out) *out = call;
    sweep_start(c);
    dispatch(p, call, false);
    return 0;
}

/* Streamed body bytes (with chunk framing) given to _write and not yet written. */
static size_t body_pending(const call_t *call)
{
    return call->out.len + call->flight.len - call->head_left;
}

int weft_http_client_write(weft_http_client_call_t *call, const void *data, size_t len)
{
    weft_http_client_t *c = call->client;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_FIXED || call->ended) return WEFT_ESTATE;
    if (call->dying) return WEFT_ECLOSED; /* failed; on_done comes next */
    if (len == 0) return 0;
    if (!data) return WEFT_EINVAL;
    if (len > c->o.max_body_buffer) return WEFT_ELIMIT;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_LENGTH && len > call->body_left) return WEFT_EINVAL;
    if (body_pending(call) >= c->o.max_body_buffer) {
        call->want_drain = true;
        return WEFT_EAGAIN;
    }
    char hdr[24];
    size_t hn = 0;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_CHUNKED)
        hn = (size_t)snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
    if (buf_reserve(&call->out, hn + len + 2)) return WEFT_ENOMEM;
    buf_put(&call->out, hdr, hn);
    buf_put(&call->out, data, len);
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_CHUNKED)
        buf_put(&call->out, "\r\n", 2);
    else
        call->body_left -= len;
    if (call->conn) flush(call->conn);
    if (body_pending(call) >= c->o.max_body_buffer) {
        call->want_drain = true;
        return 1;
    }
    return 0;
}

int weft_http_client_end(weft_http_client_call_t *call)
{
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_FIXED || call->ended) return WEFT_ESTATE;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_LENGTH && call->body_left) return WEFT_EINVAL;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_CHUNKED) {
        if (buf_reserve(&call->out, 5)) return WEFT_ENOMEM;
        buf_put(&call->out, "0\r\n\r\n", 5);
    }
    call->ended = true;
    if (call->conn) flush(call->conn);
    return 0;
}

void weft_http_client_cancel(weft_http_client_call_t *call)
{
    fail(call, WEFT_ECANCELED);
}

void weft_http_client_pause(weft_http_client_call_t *call)
{
    call->paused = true;
    conn_t *k = call->conn;
    if (k && !k->closing && k->state == K_BUSY) uv_read_stop((uv_stream_t *)&k->tcp);
}

void weft_http_client_resume(weft_http_client_call_t *call)
{
    if (!call->paused) return;
    call->paused = false;
    conn_t *k = call->conn;
    if (!k || k->closing || k->state != K_BUSY) return;
    if (k->parser_paused) {
        llhttp_resume(&k->parser);
        k->parser_paused = false;
    }
    if (k->held) {
        /* held bytes, or only the parser's next step (the end of a body that ended with
           the last piece), run from the loop; then reading restarts */
        kick_conn(k);
        return;
    }
    if (read_start(k) != 0) fail_soon(call, WEFT_ECONNRESET);
}

weft_http_client_stats_t weft_http_client_stats(const weft_http_client_t *c)
{
    weft_http_client_stats_t s = c->st;
    s.conns_open = c->nconns;
    s.conns_idle = c->nidle;
    s.queued = c->nqueued;
    s.in_flight = c->ncalls;
    return s;
}

void weft_http_client_close(weft_http_client_t *c, void (*on_closed)(void *), void *arg)
{
    if (c->closing) return;
    c->closing = true;
    c->on_closed = on_closed;
    c->closed_arg = arg;
    while (c->calls || c->dying) {
        call_t *call = c->calls ? c->calls : c->dying;
        fail(call, call->dying ? call->dying_err : WEFT_ECANCELED);
    }
    while (c->conns) conn_close(c->conns);
    c->kick_pools = NULL;
    uv_close((uv_handle_t *)&c->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}

/* ---- weft_http_client_get ---- */

typedef struct get_s {
    weft_http_client_get_cb cb;
    void *arg;
    int status;
    size_t max;
    buf_t body;
} get_t;

static void get_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                     size_t n, void *arg)
{
    ((get_t *)arg)->status = status;
}

static void get_body(weft_http_client_call_t *call, const char *d, size_t n, void *arg)
{
    get_t *g = arg;
    if (n > g->max - g->body.len) {
        fail(call, WEFT_ELIMIT);
        return;
    }
    if (buf_reserve(&g->body, n)) {
        fail(call, WEFT_ENOMEM);
        return;
    }
    buf_put(&g->body, d, n);
}

static void get_done(weft_http_client_call_t *call, int err, void *arg)
{
    get_t *g = arg;
    g->cb(err, g->status, g->body.base ? g->body.base : "", g->body.len, g->arg);
    buf_free(&g->body);
    free(g);
}

int weft_http_client_get(weft_http_client_t *c, const char *url, size_t max_body,
                         weft_http_client_get_cb cb, void *arg, weft_http_client_call_t **out)
{
    if (!c || !url || !cb) return WEFT_EINVAL;
    weft__url_t u;
    const char *bad = weft__url_split(url, &u);
    if (u.scheme && !(u.scheme_len == 4 && strncasecmp(u.scheme, "http", 4) == 0))
        return WEFT_EUNSUPPORTED;
    if (bad) return WEFT_EINVAL;
    const char *target = u.rest[0] ? u.rest : "/";
    char *hash = strchr(target, '#'); /* a fragment is not sent */
    char tbuf[2048];
    if (hash) {
        if ((size_t)(hash - target) >= sizeof(tbuf)) return WEFT_EINVAL;
        memcpy(tbuf, target, (size_t)(hash - target));
        tbuf[hash - target] = 0;
        target = tbuf;
    }
    get_t *g = calloc(1, sizeof(*g));
    if (!g) return WEFT_ENOMEM;
    g->cb = cb;
    g->arg = arg;
    g->max = max_body ? max_body : GET_BODY_DEFAULT;
    weft_http_client_req_t r = {
        .method = "GET", .host = u.host, .port = u.port ? u.port : 80, .target = target};
    static const weft_http_client_cbs_t gcbs = {get_head, get_body, get_done, NULL};
    int err = weft_http_client_request(c, &r, &gcbs, g, out);
    if (err) free(g);
    return err;
}
