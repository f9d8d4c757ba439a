/*
 * client.c - HTTP/1.1 client with per-host keep-alive pools on one libuv loop.
 *
 * Objects. A client has pools (one per host:port), connections and calls. A call is one
 * request: its serialized bytes, callbacks, deadline, and the head of its response as it is
 * parsed. A connection carries at most one call at a time (no pipelining: a proxy cannot
 * know which requests are safe to pipeline). A pool hands a call an idle connection, opens
 * a new one while under max_conns_per_host, or queues the call (bounded).
 *
 * Timers: one 50 ms sweep per client checks call deadlines (connect and request timeouts)
 * and closes pooled connections idle past idle_timeout_ms; a call pays no timer of its own.
 *
 * Life cycle rules: on_done runs exactly once per accepted call, after which the call is
 * freed; connections are freed only in their close callback, so code running after a
 * callback may still touch its connection safely. Everything runs on the client's loop.
 * Memory policy (SDK): allocation failures fail the call with WEFT_ENOMEM, never abort.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "weft/client.h"

#define SWEEP_MS   50
#define READ_CHUNK 16384

typedef struct conn_s conn_t;
typedef struct pool_s pool_t;
typedef struct weft_http_client_call_s call_t;

typedef struct hoff_s {
    uint32_t noff, nlen, voff, vlen;
} hoff_t;

struct weft_http_client_call_s {
    weft_http_client_t *client;
    pool_t *pool;
    conn_t *conn;
    call_t *next_q;
    call_t *prev, *next; /* all live calls of the client */
    char *wbuf;
    size_t wlen;
    weft_http_client_cbs_t cbs;
    void *arg;
    uint64_t deadline;         /* whole exchange; 0: none */
    uint64_t connect_deadline; /* while its connection is being opened */
    bool is_head, idempotent, retried, head_done, interim, paused;
    char *hbuf;
    size_t hlen, hcap;
    hoff_t *hoffs;
    unsigned nh;
    bool in_value;
};

typedef enum { K_RESOLVING, K_CONNECTING, K_BUSY, K_IDLE } kstate_t;

struct conn_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    pool_t *pool;
    weft_http_client_t *client;
    conn_t *next_idle;
    conn_t *prev, *next; /* all connections of the client */
    llhttp_t parser;
    kstate_t state;
    call_t *call;
    uint64_t idle_deadline;
    bool reused, got_bytes, closing, tcp_open, message_done;
    char rbuf[READ_CHUNK];
};

struct pool_s {
    pool_t *next;
    char host[256];
    uint16_t port;
    conn_t *idle;
    unsigned nidle, nconns, nq;
    call_t *qhead, *qtail;
};

struct weft_http_client_s {
    uv_loop_t *loop;
    weft_http_client_options_t o;
    uv_timer_t timer;
    pool_t *pools;
    conn_t *conns;
    call_t *calls;
    unsigned open_handles;
    bool closing;
    void (*on_closed)(void *);
    void *closed_arg;
    weft_http_client_stats_t stats;
};

static const llhttp_settings_t settings;

void weft_http_client_options_init(weft_http_client_options_t *o)
{
    o->connect_timeout_ms = 2000;
    o->request_timeout_ms = 30000;
    o->idle_timeout_ms = 60000;
    o->max_idle_per_host = 64;
    o->max_conns_per_host = 1024;
    o->max_queue = 4096;
    o->max_response_head = 64 * 1024;
    o->max_headers = 100;
}

/* ---- connections ---- */

static void maybe_free_client(weft_http_client_t *c)
{
    if (!c->closing || c->open_handles) return;
    pool_t *p = c->pools;
    while (p) {
        pool_t *n = p->next;
        free(p);
        p = n;
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
    free(k);
    c->open_handles--;
    maybe_free_client(c);
}

static void pool_remove_idle(pool_t *p, conn_t *k)
{
    for (conn_t **pp = &p->idle; *pp; pp = &(*pp)->next_idle) {
        if (*pp == k) {
            *pp = k->next_idle;
            p->nidle--;
            return;
        }
    }
}

static void conn_close(conn_t *k)
{
    if (k->closing) return;
    k->closing = true;
    weft_http_client_t *c = k->client;
    if (k->state == K_IDLE) pool_remove_idle(k->pool, k);
    k->pool->nconns--;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    c->stats.conns_closed++;
    if (k->call) k->call->conn = NULL;
    k->call = NULL;
    if (k->state == K_RESOLVING) {
        /* getaddrinfo is in flight; its callback sees `closing` and closes the handle. */
        return;
    }
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

/* ---- calls ---- */

static void dispatch(pool_t *p, call_t *call, bool fresh);

static void call_free(call_t *call)
{
    free(call->wbuf);
    free(call->hbuf);
    free(call->hoffs);
    free(call);
}

static void queue_remove(pool_t *p, call_t *call)
{
    call_t **pp = &p->qhead, *prev = NULL;
    while (*pp && *pp != call) {
        prev = *pp;
        pp = &(*pp)->next_q;
    }
    if (!*pp) return;
    *pp = call->next_q;
    if (p->qtail == call) p->qtail = prev;
    p->nq--;
}

/* Ends a call: its connection, if any, must already be released or closed. */
static void finish(call_t *call, int err)
{
    weft_http_client_t *c = call->client;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next) call->next->prev = call->prev;
    if (!call->conn) queue_remove(call->pool, call);
    if (err) c->stats.failures++;
    if (err == WEFT_ETIMEDOUT) c->stats.timeouts++;
    call->conn = NULL;
    if (call->cbs.on_done) call->cbs.on_done(call, err, call->arg);
    call_free(call);
}

/* The call failed on its connection: close the connection, fail the call. */
static void fail(call_t *call, int err)
{
    conn_t *k = call->conn;
    if (k) conn_close(k);
    finish(call, err);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *k = h->data;
    *buf = uv_buf_init(k->rbuf, sizeof(k->rbuf));
}

/* A pooled connection failed before any byte of the response: the server had closed it
 * first (the keep-alive race). An idempotent call is retried once, on a fresh connection. */
static bool retry_fresh(conn_t *k, call_t *call)
{
    if (!k->reused || k->got_bytes || !call->idempotent || call->retried) return false;
    call->retried = true;
    k->client->stats.retries++;
    call->conn = NULL;
    k->call = NULL;
    conn_close(k);
    dispatch(call->pool, call, true);
    return true;
}

static void on_written(uv_write_t *w, int status)
{
    conn_t *k = w->data;
    if (status < 0 && k->call && !k->closing) {
        call_t *call = k->call;
        if (retry_fresh(k, call)) return;
        fail(call, status == UV_ECANCELED ? WEFT_ECANCELED : WEFT_ECONNRESET);
    }
}

static void start_call(conn_t *k, call_t *call)
{
    k->call = call;
    call->conn = k;
    k->state = K_BUSY;
    k->got_bytes = false;
    k->message_done = false;
    llhttp_init(&k->parser, HTTP_RESPONSE, &settings);
    k->parser.data = k;
    call->hlen = 0;
    call->nh = 0;
    call->head_done = false;
    k->wreq.data = k;
    uv_buf_t b = uv_buf_init(call->wbuf, (unsigned)call->wlen);
    int err = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_written);
    if (err == 0 && !call->paused) {
        err = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
        if (err == UV_EALREADY) err = 0; /* a pooled connection is read while idle */
    }
    if (err) fail(call, WEFT_ECONNRESET);
}

/* A connection whose call ended cleanly: give it the next queued call, or park it. */
static void release(conn_t *k)
{
    pool_t *p = k->pool;
    weft_http_client_t *c = k->client;
    k->call = NULL;
    if (c->closing || k->closing) return;
    if (p->qhead) {
        call_t *next = p->qhead;
        queue_remove(p, next);
        k->reused = true;
        c->stats.conns_reused++;
        start_call(k, next);
        return;
    }
    if (p->nidle >= c->o.max_idle_per_host) {
        conn_close(k);
        return;
    }
    k->state = K_IDLE;
    k->idle_deadline = uv_now(c->loop) + c->o.idle_timeout_ms;
    k->next_idle = p->idle;
    p->idle = k;
    p->nidle++;
    /* keep reading: an idle connection that the server closes is noticed at once */
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *k = req->data;
    if (k->closing) return;
    call_t *call = k->call;
    if (status < 0) {
        if (call)
            fail(call, status);
        else
            conn_close(k);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    if (call) {
        call->connect_deadline = 0;
        start_call(k, call);
    } else {
        release(k);
    }
}

static void connect_to(conn_t *k, const struct sockaddr *sa)
{
    k->state = K_CONNECTING;
    k->creq.data = k;
    int err = uv_tcp_connect(&k->creq, &k->tcp, sa, on_connect);
    if (err) {
        if (k->call)
            fail(k->call, err);
        else
            conn_close(k);
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
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        if (k->call)
            fail(k->call, status < 0 ? status : WEFT_ENOENT);
        else
            conn_close(k);
        return;
    }
    connect_to(k, res->ai_addr);
    uv_freeaddrinfo(res);
}

static conn_t *conn_new(pool_t *p, weft_http_client_t *c)
{
    conn_t *k = calloc(1, sizeof(*k));
    if (!k) return NULL;
    if (uv_tcp_init(c->loop, &k->tcp) != 0) {
        free(k);
        return NULL;
    }
    k->tcp.data = k;
    k->pool = p;
    k->client = c;
    k->next = c->conns;
    if (c->conns) c->conns->prev = k;
    c->conns = k;
    p->nconns++;
    c->open_handles++;
    c->stats.conns_opened++;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(k, (struct sockaddr *)&ss);
        return k;
    }
    k->state = K_RESOLVING;
    k->gai.data = k;
    char port[8];
    snprintf(port, sizeof(port), "%u", p->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(c->loop, &k->gai, on_resolved, p->host, port, &hints) != 0) {
        k->state = K_CONNECTING;
        conn_close(k);
        return NULL;
    }
    return k;
}

static void dispatch(pool_t *p, call_t *call, bool fresh)
{
    weft_http_client_t *c = call->client;
    if (!fresh && p->idle) {
        conn_t *k = p->idle;
        p->idle = k->next_idle;
        p->nidle--;
        k->reused = true;
        c->stats.conns_reused++;
        start_call(k, call);
        return;
    }
    if (p->nconns < c->o.max_conns_per_host) {
        conn_t *k = conn_new(p, c);
        if (!k) {
            finish(call, WEFT_ENOMEM);
            return;
        }
        k->call = call;
        call->conn = k;
        call->connect_deadline =
            c->o.connect_timeout_ms ? uv_now(c->loop) + c->o.connect_timeout_ms : 0;
        return;
    }
    call->next_q = NULL;
    if (p->qtail)
        p->qtail->next_q = call;
    else
        p->qhead = call;
    p->qtail = call;
    p->nq++;
}

/* ---- response parsing ---- */

static int head_append(call_t *call, weft_http_client_t *c, const char *at, size_t len)
{
    if (len == 0) return 0; /* llhttp may report empty pieces; hbuf may still be NULL */
    if (call->hlen + len > c->o.max_response_head) return -1;
    if (call->hlen + len > call->hcap) {
        size_t cap = call->hcap ? call->hcap * 2 : 1024;
        while (cap < call->hlen + len) cap *= 2;
        char *p = realloc(call->hbuf, cap);
        if (!p) return -1;
        call->hbuf = p;
        call->hcap = cap;
    }
    memcpy(call->hbuf + call->hlen, at, len);
    call->hlen += len;
    return 0;
}

static int r_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    if (call->nh == 0 || call->in_value) {
        if (call->nh >= k->client->o.max_headers) return -1;
        if (!call->hoffs) {
            call->hoffs = malloc(sizeof(hoff_t) * k->client->o.max_headers);
            if (!call->hoffs) return -1;
        }
        hoff_t *h = &call->hoffs[call->nh++];
        h->noff = (uint32_t)call->hlen;
        h->nlen = h->voff = h->vlen = 0;
        call->in_value = false;
    }
    call->hoffs[call->nh - 1].nlen += (uint32_t)len;
    return head_append(call, k->client, at, len);
}

static int r_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    hoff_t *h = &call->hoffs[call->nh - 1];
    if (h->vlen == 0) h->voff = (uint32_t)call->hlen;
    h->vlen += (uint32_t)len;
    call->in_value = true;
    return head_append(call, k->client, at, len);
}

static int r_header_value_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    if (k->call) k->call->in_value = true;
    return 0;
}

static int r_headers_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    int status = p->status_code;
    if (status >= 100 && status < 200 && status != 101) {
        call->interim = true; /* 100 Continue and friends: not the response, and no body */
        return 1;
    }
    call->interim = false;
    weft_http_header_t hs[128];
    weft_http_header_t *arr = call->nh <= 128 ? hs : malloc(sizeof(*arr) * call->nh);
    if (!arr) return -1;
    const char *hb = call->hbuf ? call->hbuf : ""; /* empty names and values: no buffer yet */
    for (unsigned i = 0; i < call->nh; i++) {
        hoff_t *h = &call->hoffs[i];
        arr[i].name = (weft_str_t){h->nlen ? hb + h->noff : "", h->nlen};
        arr[i].value = (weft_str_t){h->vlen ? hb + h->voff : "", h->vlen};
    }
    call->head_done = true;
    if (call->cbs.on_head) call->cbs.on_head(call, status, arr, call->nh, call->arg);
    if (arr != hs) free(arr);
    if (k->call != call) return HPE_USER; /* cancelled from on_head */
    return call->is_head ? 1 : 0;
}

static int r_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call || !call->head_done) return -1; /* body bytes with no response head: malformed */
    if (call->cbs.on_body) call->cbs.on_body(call, at, len, call->arg);
    return k->call == call ? 0 : HPE_USER;
}

static int r_message_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    if (call->interim) {
        call->interim = false;
        call->hlen = 0;
        call->nh = 0;
        return 0;
    }
    k->message_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_header_field = r_header_field,
    .on_header_value = r_header_value,
    .on_header_value_complete = r_header_value_complete,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_message_complete,
};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *k = s->data;
    if (k->closing || nread == 0) return;
    call_t *call = k->call;
    if (!call) {
        conn_close(k); /* an idle connection closed, or sent bytes nobody asked for */
        return;
    }
    if (nread < 0) {
        if (retry_fresh(k, call)) return;
        if (nread == UV_EOF && k->got_bytes) {
            /* read-until-close bodies end here */
            llhttp_errno_t e = llhttp_finish(&k->parser);
            if ((e == HPE_OK || e == HPE_PAUSED) && k->message_done) {
                conn_close(k);
                finish(call, 0);
                return;
            }
            fail(call, WEFT_EPARSE);
            return;
        }
        fail(call, nread == UV_EOF ? WEFT_ECONNRESET : (int)nread);
        return;
    }
    k->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&k->parser, buf->base, (size_t)nread);
    if (k->closing || k->call != call) return; /* cancelled from a callback */
    if (e == HPE_PAUSED && k->message_done) {
        size_t used = (size_t)(llhttp_get_error_pos(&k->parser) - buf->base);
        bool keep = llhttp_should_keep_alive(&k->parser) && used == (size_t)nread;
        uv_read_stop(s);
        call->conn = NULL;
        if (keep)
            release(k);
        else
            conn_close(k);
        finish(call, 0);
        return;
    }
    if (e != HPE_OK) fail(call, WEFT_EPARSE);
}

/* ---- timers ---- */

static void on_sweep(uv_timer_t *t)
{
    weft_http_client_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    for (call_t *call = c->calls, *next; call; call = next) {
        next = call->next;
        if ((call->deadline && now >= call->deadline) ||
            (call->connect_deadline && now >= call->connect_deadline))
            fail(call, WEFT_ETIMEDOUT);
    }
    for (conn_t *k = c->conns, *next; k; k = next) {
        next = k->next;
        if (k->state == K_IDLE && now >= k->idle_deadline) conn_close(k);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    weft_http_client_t *c = h->data;
    c->open_handles--;
    maybe_free_client(c);
}

/* ---- public ---- */

int weft_http_client_new(uv_loop_t *loop, const weft_http_client_options_t *o,
                         weft_http_client_t **out)
{
    weft_http_client_t *c = calloc(1, sizeof(*c));
    if (!c) return WEFT_ENOMEM;
    c->loop = loop;
    if (o)
        c->o = *o;
    else
        weft_http_client_options_init(&c->o);
    if (c->o.max_headers == 0 || c->o.max_conns_per_host == 0) {
        free(c);
        return WEFT_EINVAL;
    }
    int err = uv_timer_init(loop, &c->timer);
    if (err) {
        free(c);
        return err;
    }
    c->timer.data = c;
    c->open_handles = 1;
    uv_timer_start(&c->timer, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&c->timer); /* an idle client does not keep the loop alive */
    *out = c;
    return 0;
}

static bool valid_token(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s)) return false;
    return true;
}

static bool valid_field(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) return false;
    return true;
}

int weft_http_client_request(weft_http_client_t *c, const weft_http_client_req_t *r,
                             const weft_http_client_cbs_t *cbs, void *arg,
                             weft_http_client_call_t **out)
{
    if (c->closing) return WEFT_ECLOSED;
    if (!r || !valid_token(r->method) || !r->host || !*r->host || strlen(r->host) >= 256 ||
        !r->target || r->target[0] == 0 || !valid_field(r->target, strlen(r->target)) ||
        strchr(r->target, ' ') || !valid_field(r->host, strlen(r->host)))
        return WEFT_EINVAL;
    for (size_t i = 0; i < r->nheaders; i++) {
        char name[128];
        if (r->headers[i].name.len == 0 || r->headers[i].name.len >= sizeof(name))
            return WEFT_EINVAL;
        memcpy(name, r->headers[i].name.base, r->headers[i].name.len);
        name[r->headers[i].name.len] = 0;
        if (!valid_token(name) || !valid_field(r->headers[i].value.base, r->headers[i].value.len))
            return WEFT_EINVAL;
    }
    pool_t *p = c->pools;
    while (p && !(p->port == r->port && strcmp(p->host, r->host) == 0)) p = p->next;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p) return WEFT_ENOMEM;
        strcpy(p->host, r->host);
        p->port = r->port;
        p->next = c->pools;
        c->pools = p;
    }
    if (!p->idle && p->nconns >= c->o.max_conns_per_host && p->nq >= c->o.max_queue)
        return WEFT_ELIMIT;
    call_t *call = calloc(1, sizeof(*call));
    if (!call) return WEFT_ENOMEM;
    /* Serialize: request line, Host, caller's headers, Content-Length, body. */
    size_t need = strlen(r->method) + strlen(r->target) + strlen(r->host) + 96 + r->body_len;
    for (size_t i = 0; i < r->nheaders; i++)
        need += r->headers[i].name.len + r->headers[i].value.len + 4;
    call->wbuf = malloc(need);
    if (!call->wbuf) {
        free(call);
        return WEFT_ENOMEM;
    }
    bool is_default_port = r->port == 80;
    size_t n = (size_t)snprintf(call->wbuf, need, "%s %s HTTP/1.1\r\nHost: %s%s%s%s", r->method,
                                r->target, strchr(r->host, ':') ? "[" : "", r->host,
                                strchr(r->host, ':') ? "]" : "", is_default_port ? "" : ":");
    if (!is_default_port) n += (size_t)snprintf(call->wbuf + n, need - n, "%u", r->port);
    n += (size_t)snprintf(call->wbuf + n, need - n, "\r\n");
    for (size_t i = 0; i < r->nheaders; i++) {
        memcpy(call->wbuf + n, r->headers[i].name.base, r->headers[i].name.len);
        n += r->headers[i].name.len;
        memcpy(call->wbuf + n, ": ", 2);
        n += 2;
        memcpy(call->wbuf + n, r->headers[i].value.base, r->headers[i].value.len);
        n += r->headers[i].value.len;
        memcpy(call->wbuf + n, "\r\n", 2);
        n += 2;
    }
    bool body_method = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                       strcmp(r->method, "PATCH") == 0;
    if (r->body_len || body_method)
        n += (size_t)snprintf(call->wbuf + n, need - n, "Content-Length: %zu\r\n", r->body_len);
    memcpy(call->wbuf + n, "\r\n", 2);
    n += 2;
    if (r->body_len) {
        memcpy(call->wbuf + n, r->body, r->body_len);
        n += r->body_len;
    }
    call->wlen = n;
    call->client = c;
    call->pool = p;
    call->cbs = *cbs;
    call->arg = arg;
    call->is_head = strcmp(r->method, "HEAD") == 0;
    call->idempotent = call->is_head || strcmp(r->method, "GET") == 0 ||
                       strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0 ||
                       strcmp(r->method, "OPTIONS") == 0;
    uint64_t timeout = r->timeout_ms ? r->timeout_ms : c->o.request_timeout_ms;
    call->deadline = timeout ? uv_now(c->loop) + timeout : 0;
    call->next = c->calls;
    if (c->calls) c->calls->prev = call;
    c->calls = call;
    c->stats.requests++;
    if (out) *out = call;
    dispatch(p, call, false);
    return 0;
}

void weft_http_client_cancel(weft_http_client_call_t *call)
{
    fail(call, WEFT_ECANCELED);
}

void weft_http_client_pause(weft_http_client_call_t *call)
{
    call->paused = true;
    if (call->conn && !call->conn->closing) uv_read_stop((uv_stream_t *)&call->conn->tcp);
}

void weft_http_client_resume(weft_http_client_call_t *call)
{
    call->paused = false;
    if (call->conn && !call->conn->closing && call->conn->state == K_BUSY)
        uv_read_start((uv_stream_t *)&call->conn->tcp, on_alloc, on_read);
}

weft_http_client_stats_t weft_http_client_stats(const weft_http_client_t *c)
{
    return c->stats;
}

void weft_http_client_close(weft_http_client_t *c, void (*on_closed)(void *), void *arg)
{
    if (c->closing) return;
    c->closing = true;
    c->on_closed = on_closed;
    c->closed_arg = arg;
    while (c->calls) fail(c->calls, WEFT_ECANCELED);
    while (c->conns) conn_close(c->conns);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
