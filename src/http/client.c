/*
 * client.c - the HTTP client's public API (weft/client.h): options, new and close,
 * requests, streamed request bodies, cancel, pause and resume, counters, the GET helper.
 *
 * The client is split by subsystem (client_int.h lists the files): this file checks the
 * caller's arguments, sets a call up and hands it to its pool; the call's life is
 * client_call.c's, connections are client_conn.c's, responses client_read.c's, the host
 * table and its counters client_pool.c's, serialization client_req.c's.
 *
 * Handles. A client owns a sweep timer (unref'd: an idle client does not keep the loop
 * alive), a kick idle handle, a reader (src/http/reader.h: its epoll and two handles, which
 * hold the loop only while a connection reads) and its connections' handles; it is freed
 * once all of them have closed after weft_http_client_close (open_handles counts them), and
 * then on_closed runs.
 *
 * Rules kept here: no callback runs inside weft_http_client_request, _write, _end, _pause or
 * _resume (failures inside them are delivered from the kick); cancel and close run on_done
 * before they return, as weft/client.h says.
 *
 * Threads: the client's loop thread only. Memory policy (SDK): allocation failures are
 * WEFT_ENOMEM, never an abort.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "core/assert.h"
#include "http/client_int.h"
#include "http/syntax.h"
#include "http/url.h"

#define GET_BODY_DEFAULT (1u << 20) /* weft_http_client_get's default body limit */
#define BUCKETS_MIN      16

void weft_http_client_options_init(weft_http_client_options_t *o)
{
    o->connect_timeout_ms = 2000;
    o->head_timeout_ms = 60000;
    o->body_timeout_ms = 60000;
    o->request_timeout_ms = 30000;
    o->idle_timeout_ms = 60000;
    o->max_idle_per_host = 64;
    o->max_conns_per_host = 1024;
    o->max_queue = 4096;
    o->max_hosts = 4096;
    o->host_keep_ms = 60000;
    o->max_response_head = 64 * 1024;
    o->max_headers = 100;
    o->max_body_buffer = 256 * 1024;
}

static void on_handle_closed(uv_handle_t *h)
{
    weft_http_client_t *c = h->data;
    c->open_handles--;
    weft__client_maybe_free(c);
}

static void on_reader_closed(weft__reader_t *r)
{
    weft_http_client_t *c = r->data;
    c->open_handles--;
    weft__client_maybe_free(c);
}

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
    int err = weft__reader_init(&c->reader, loop);
    if (err) {
        free(c->buckets);
        free(c);
        return err;
    }
    c->reader.data = c;
    /* a timer and an idle handle only fill their structs in: they cannot fail */
    uv_timer_init(loop, &c->sweep);
    uv_idle_init(loop, &c->kick);
    c->sweep.data = c;
    c->kick.data = c;
    c->open_handles = 3;                /* sweep, kick, reader */
    uv_unref((uv_handle_t *)&c->sweep); /* an idle client does not keep the loop alive */
    *out = c;
    return 0;
}

/* The call's timeout from the request's override, else the client's option. */
static uint64_t pick_ms(uint64_t req, uint64_t opt)
{
    if (req == WEFT_HTTP_CLIENT_NO_TIMEOUT) return 0;
    return req ? req : opt;
}

int weft_http_client_request(weft_http_client_t *c, const weft_http_client_req_t *r,
                             const weft_http_client_cbs_t *cbs, void *arg,
                             weft_http_client_call_t **out)
{
    if (!c || !r || !cbs) return WEFT_EINVAL;
    if (c->closing) return WEFT_ECLOSED;
    weft__req_facts_t f;
    if (weft__req_check(r, &f) != 0) return WEFT_EINVAL;
    int err = 0;
    pool_t *p = weft__pool_get(c, r->host, f.host_len, r->port, &err);
    if (!p) {
        if (err == WEFT_ELIMIT) c->st.rejected++;
        return err;
    }
    unsigned max_conns = r->max_conns && r->max_conns < c->o.max_conns_per_host
                             ? r->max_conns
                             : c->o.max_conns_per_host;
    unsigned max_queue = r->max_queue == WEFT_HTTP_CLIENT_NO_QUEUE ? 0
                         : r->max_queue                            ? r->max_queue
                                                                   : c->o.max_queue;
    if (!p->idle && p->nconns >= max_conns && p->nq >= max_queue) {
        c->st.rejected++;
        c->pools_dirty = true; /* the pool may be new and unused */
        weft__client_sweep_start(c);
        return WEFT_ELIMIT;
    }
    call_t *call = weft__call_new(c);
    if (!call || weft__req_serialize(&call->out, r, &f) != 0) {
        if (call) weft__call_recycle(c, call);
        c->pools_dirty = true;
        weft__client_sweep_start(c);
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
    call->is_head = f.method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    call->idempotent = weft__req_idempotent(r->method, f.method_len);
    call->upgrade = f.upgrade;
    uint64_t now = uv_now(c->loop);
    uint64_t timeout = pick_ms(r->timeout_ms, c->o.request_timeout_ms);
    if (timeout) call->deadline = weft__add_ms(now, timeout);
    call->connect_ms = pick_ms(r->connect_timeout_ms, c->o.connect_timeout_ms);
    call->head_ms = pick_ms(r->head_timeout_ms, c->o.head_timeout_ms);
    call->body_ms = pick_ms(r->body_timeout_ms, c->o.body_timeout_ms);
    call->max_conns = max_conns;
    call->prev = NULL;
    call->next = c->calls;
    if (c->calls) c->calls->prev = call;
    c->calls = call;
    p->ncalls++;
    c->ncalls++;
    c->st.requests++;
    p->st.requests++;
    if (out) *out = call;
    weft__client_sweep_start(c);
    weft__pool_dispatch(p, call, false);
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
    if (call->state == CALL_DYING) return WEFT_ECLOSED; /* failed; on_done comes next */
    if (len == 0) return 0;
    if (!data) return WEFT_EINVAL;
    if (len > c->o.max_body_buffer) return WEFT_ELIMIT;
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_LENGTH && len > call->body_left) return WEFT_EINVAL;
    if (body_pending(call) >= c->o.max_body_buffer) {
        call->want_drain = true;
        return WEFT_EAGAIN;
    }
    bool chunked = call->bmode == WEFT_HTTP_CLIENT_BODY_CHUNKED;
    if (weft__req_body_piece(&call->out, chunked, data, len) != 0) return WEFT_ENOMEM;
    if (!chunked) call->body_left -= len;
    if (call->conn) weft__conn_flush(call->conn);
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
    if (call->bmode == WEFT_HTTP_CLIENT_BODY_CHUNKED && weft__req_body_end(&call->out) != 0)
        return WEFT_ENOMEM;
    call->ended = true;
    if (call->conn) weft__conn_flush(call->conn);
    return 0;
}

void weft_http_client_cancel(weft_http_client_call_t *call)
{
    weft__call_fail(call, WEFT_ECANCELED);
}

void weft_http_client_pause(weft_http_client_call_t *call)
{
    call->paused = true;
    conn_t *k = call->conn;
    if (k && k->state == CONN_BUSY) weft__conn_read_stop(k);
}

void weft_http_client_resume(weft_http_client_call_t *call)
{
    if (!call->paused) return;
    call->paused = false;
    conn_t *k = call->conn;
    if (!k || k->state != CONN_BUSY) return;
    if (call->state == CALL_BODY && call->body_ms) /* the gap starts again */
        call->body_deadline = weft__add_ms(uv_now(call->client->loop), call->body_ms);
    if (k->parser_paused) {
        llhttp_resume(&k->parser);
        k->parser_paused = false;
    }
    if (k->held) {
        /* held bytes, or only the parser's next step (the end of a body that ended with
           the last piece), run from the loop; then reading restarts */
        weft__conn_kick(k);
        return;
    }
    weft__conn_read_start(k);
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
        weft__call_fail(call, call->state == CALL_DYING ? call->dying_err : WEFT_ECANCELED);
    }
    while (c->conns) weft__conn_close(c->conns);
    c->kick_pools = NULL;
    uv_close((uv_handle_t *)&c->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&c->kick, on_handle_closed);
    weft__reader_close(&c->reader, on_reader_closed);
}

/* ---- weft_http_client_get ---- */

typedef struct get_s {
    weft_http_client_get_cb cb;
    void *arg;
    int status;
    weft_buf_t body; /* limited to the caller's max_body */
} get_t;

static void get_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                     size_t n, void *arg)
{
    ((get_t *)arg)->status = status;
}

static void get_body(weft_http_client_call_t *call, const char *d, size_t n, void *arg)
{
    get_t *g = arg;
    if (n > g->body.limit - g->body.len) {
        weft__call_fail(call, WEFT_ELIMIT);
        return;
    }
    weft_buf_put(&g->body, d, n);
    if (g->body.failed) weft__call_fail(call, WEFT_ENOMEM);
}

static void get_done(weft_http_client_call_t *call, int err, void *arg)
{
    get_t *g = arg;
    g->cb(err, g->status, g->body.p ? g->body.p : "", g->body.len, g->arg);
    weft_buf_free(&g->body);
    free(g);
}

int weft_http_client_get(weft_http_client_t *c, const char *url, size_t max_body,
                         weft_http_client_get_cb cb, void *arg, weft_http_client_call_t **out)
{
    if (!c || !url || !cb) return WEFT_EINVAL;
    weft__url_t u;
    const char *bad = weft__url_split(url, &u);
    if (u.scheme && !WEFT__HTTP_IEQ_LIT(u.scheme, u.scheme_len, "http")) return WEFT_EUNSUPPORTED;
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
    weft_buf_init(&g->body, max_body ? max_body : GET_BODY_DEFAULT);
    weft_http_client_req_t r = {
        .method = "GET", .host = u.host, .port = u.port ? u.port : 80, .target = target};
    static const weft_http_client_cbs_t gcbs = {get_head, get_body, get_done, NULL, NULL};
    int err = weft_http_client_request(c, &r, &gcbs, g, out);
    if (err) free(g);
    return err;
}

bool weft_http_client_more_read(const weft_http_client_call_t *call)
{
    return call && call->more_read;
}
