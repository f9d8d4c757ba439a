/*
 * proxy.c - one request through the gateway: route, pick an upstream, forward the request
 * with its body streamed, stream the response back.
 *
 * Flow. The listener's one route (every method, the catch-all pattern, stream_body) hands
 * every request here at the end of its head. The route table is read from its snapshot and held (a
 * reference) until the request ends, so a reload never changes a request under way. The upstream is
 * chosen from the route's static targets, or from the passing instances of its registry service in
 * the catalog's current snapshot (read in one read section; the address is copied out). The request
 * goes out through the worker's HTTP client (weft/client.h: per-worker keep-alive pools), its body
 * streamed as it arrives, and the response comes back the same way: neither side is ever held whole
 * in memory.
 *
 * Back-pressure, both ways. A request body piece the client cannot take yet (write returns
 * 1: its buffer is full) pauses the reading of the request until the client's on_drain; a
 * response piece the server's output cannot take (WEFT_EAGAIN past 64 KiB) pauses the
 * upstream call until the request's on_drain. So a 1 GiB upload or download passes in
 * constant memory.
 *
 * Headers. Hop-by-hop headers (RFC 9110 7.6.1: Connection and what it names, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade: but see Upgrades) are not
 * forwarded either way;
 * framing is each side's own (Content-Length or chunked, chosen again). Host is kept as the
 * client sent it (as Envoy does), except that an absolute-form target's host replaces it
 * (RFC 9110 7.2: the route matched on that host). Added upstream: X-Forwarded-For (the client's
 * address appended), X-Forwarded-Proto, X-Forwarded-Host, and X-Request-Id when the client sent
 * none (16 random hex digits). With a tracer, the client's traceparent and tracestate are
 * replaced by the gateway span's (observe.c, which also keeps what the access log says).
 *
 * Upgrades. An upgrade request (`Connection: upgrade` + `Upgrade: X`, no body) on a route
 * with websocket.enabled takes a tunnel slot (gateway.max_tunnels, else 503) and keeps its
 * Upgrade header and `Connection: upgrade` upstream. A 101 is not passed on as a response:
 * its head is kept (tunnel_head), the client's on_upgrade gives the upstream's socket, the
 * engine's takeover gives the client's, and tunnel.c joins them. Other answers are proxied
 * as usual.
 *
 * Choice. The balancer picks among the candidates; an instance whose own breaker refuses,
 * or that is at the route's max_requests (policy.h keeps both per instance, shared by the
 * workers), is left out and the balancer picks again among the rest, so a failing
 * instance among healthy ones costs nothing once its breaker is open.
 *
 * Errors, as JSON: no route 404; no passing instance 503, and every instance refused by
 * its breaker or its limits 503 at once (X-Weft-Breaker or X-Weft-Overflow); an upstream
 * that refuses, resets, or sends a malformed response 502; a timeout 504 (connect, head,
 * body or the route's deadline). After the response head went out, an upstream failure can
 * only be told by cutting the connection (weft_http_response_abort): the client sees a
 * truncated response, never a complete-looking one.
 *
 * Memory: the request's state lives in its arena (weft_http_request_alloc), freed with it.
 *
 * Threads: the worker that received the request, for its whole life.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gateway/gw_int.h"
#include "http/syntax.h"
#include "registry/catalog.h"
#include "weft/log.h"
#include "weft/weft.h"

#define GW_RETRY_MAX_ATTEMPTS 10
/* X-Forwarded-For, -Proto, -Host, X-Request-Id, Connection (an upgrade), traceparent,
 * tracestate */
#define HDR_EXTRA 7

typedef struct gw_req_s {
    weft_gateway_t *g;
    gw_worker_t *w;
    weft_http_request_t *req;
    gw_table_t *table; /* held until the end */
    const gw_route_t *route;
    weft_http_client_call_t *call;
    char host[GW_HOST_MAX + 1];
    uint16_t port;
    size_t host_len;
    uint64_t host_key;   /* host_key(host, port), from pick: the tried list's, mslot's */
    bool head_sent;      /* the response head went to the client */
    bool req_paused;     /* reading the request body waits for the client's on_drain */
    bool up_paused;      /* the upstream call waits for the request's on_drain */
    bool finished;       /* the request was finished (or released) */
    int status;          /* the upstream's, once its head came */
    uint64_t body_left;  /* Content-Length bytes of the upstream's answer still to come;
                            UINT64_MAX: chunked, till close, or none for a HEAD */
    bool settled;        /* counted and told to the breakers (settle): at most once */
    bool breaker;        /* admitted by the route's breaker: its result is still to be recorded */
    gw_inst_t *inst;     /* this try's upstream instance state (held), its result still due */
    bool inst_sent;      /* the try went out to it (else its end says nothing about it) */
    bool inst_open;      /* the try ended with its instance's breaker open (retry_if_allowed) */
    uint64_t try_ms;     /* loop time this try's upstream was picked */
    uint64_t key_hash;   /* ring hash: the request's key, hashed */
    uint64_t pick_wait;  /* no upstream admitted: ms until the first breaker half-opens */
    bool pick_half_open; /* ... and every refusing breaker was half-open (trials out) */
    /* retries */
    bool retrying;     /* the call was cancelled to be tried again (a retriable status) */
    bool in_budget;    /* counted as an active request by the retry budget */
    bool retry_active; /* this try is a retry, counted by the budget until it ends */
    unsigned attempt;  /* tries made before this one */
    unsigned ntried;   /* upstreams tried (keys), so that a retry goes elsewhere */
    uint64_t tried[GW_RETRY_MAX_ATTEMPTS + 1];
    uint64_t deadline; /* loop time (ms) when the route's timeout ends every try */
    int last_err;      /* the last try's error, for the answer when no try is left */
    uint64_t end_ns;   /* weft_now_ns() when record() counted the answer (0 before): the
                          breaker's slow-call duration that follows reads no clock again */
    char method[32];
    char *target; /* in the request's arena */
    const weft_http_header_t *hs;
    size_t nh;
    weft_http_client_body_t body_mode;
    bool te_in;     /* the request came with Transfer-Encoding: its body is chunked */
    weft_str_t cip; /* the client's address (client_ip); base NULL until asked */
    /* upgrades (tunnel.c) */
    bool upgrade;   /* forwarded with its Upgrade headers: a 101 opens a tunnel */
    bool tslot;     /* holds one of the gateway's tunnel slots */
    bool tunnel;    /* the upstream switched: the client's connection is to be taken over */
    bool proto_err; /* the upstream answered 101 to a request that did not ask */
    int up_fd;      /* the upstream's socket after its 101, until the tunnel has it; -1 */
    char *tbuf;     /* what goes to the client first: the 101 head, the upstream's bytes */
    size_t tlen;
    gw_obs_t obs; /* the span and the access log's facts (observe.c) */
} gw_req_t;

/* The client's address without port: looked up once a request (the rate limit's key, the
 * ring's, X-Forwarded-For). */
static weft_str_t client_ip(gw_req_t *x)
{
    if (!x->cip.base) x->cip = weft_http_request_peer_ip(x->req);
    return x->cip;
}

static void start_try(gw_req_t *x);
static bool retry_if_allowed(gw_req_t *x, int err, int status, uint64_t retry_after_ms);

/* The try's instance learns how it went (once): result 1 success, 0 failure, -1 nothing
 * learnt (taken as -1 when the try never went out). Its hold and active count are given
 * back. */
static void inst_done(gw_req_t *x, int result)
{
    gw_inst_t *i = x->inst;
    if (!i) return;
    x->inst = NULL;
    uint64_t now = uv_now(x->req->loop);
    x->inst_open =
        gw_inst_done(i, now, x->inst_sent ? result : -1, now > x->try_ms ? now - x->try_ms : 0);
    x->inst_sent = false;
}

/* Neither the route's breaker nor the instance's learns anything from this request (the
 * client left, or a limit refused it after they admitted it): their trials are given back. */
static void breakers_release(gw_req_t *x)
{
    inst_done(x, -1);
    if (!x->breaker) return;
    x->breaker = false;
    gw_policy_release(x->route->policy, uv_now(x->req->loop));
}

/* The route's breaker learns how the request it admitted went (once), and the last try's
 * instance how that try went: result 1 success, 0 failure, -1 nothing (an outcome that
 * circuit_breaker.failure_on leaves out). */
static void breaker_done(gw_req_t *x, int result)
{
    if (result < 0) {
        breakers_release(x);
        return;
    }
    bool ok = result == 1;
    inst_done(x, ok ? 1 : 0);
    if (!x->breaker) return;
    x->breaker = false;
    uint64_t now = x->end_ns ? x->end_ns : weft_now_ns(), start = x->req->start_ns;
    uint64_t ms = now > start ? (now - start) / 1000000 : 0;
    gw_policy_record(x->route->policy, uv_now(x->req->loop), ok, ms);
}

/* What an answer with this status is to the route's breakers (circuit_breaker.failure_on):
 * 0 a failure, 1 a success. */
static int status_outcome(const gw_req_t *x, int status)
{
    const gw_breaker_conf_t *c = &x->route->breaker;
    if ((gw_breaker_fail_on(c) & GW_RETRY_5XX) && status >= 500 && status <= 599) return 0;
    for (unsigned i = 0; i < c->nfail_statuses; i++)
        if (c->fail_statuses[i] == status) return 0;
    return 1;
}

static const char *err_kind(int err);

/* What a failed try (err) is to them: 0 a failure, -1 nothing when failure_on leaves its
 * kind out (connect-failure, reset, timeout); an answer that is not HTTP always fails. */
static int err_outcome(const gw_req_t *x, int err)
{
    unsigned on = gw_breaker_fail_on(&x->route->breaker), bit = 0;
    if (err == WEFT_ECONNRESET)
        bit = GW_RETRY_RESET;
    else if (err == WEFT_ETIMEDOUT || err == WEFT_ETIMEDOUT_HEAD || err == WEFT_ETIMEDOUT_BODY)
        bit = GW_RETRY_TIMEOUT;
    else if (err == WEFT_ETIMEDOUT_CONNECT || strcmp(err_kind(err), "connect") == 0)
        bit = GW_RETRY_CONNECT;
    return bit && !(on & bit) ? -1 : 0;
}

/* ---- metrics (handles cached per worker: a child lookup hashes its label values) ---- */

static gw_mslot_t *mslot(gw_req_t *x, int status)
{
    weft_gateway_t *g = x->g;
    if (!g->fam_requests) return NULL;
    const char *route = x->route ? x->route->name : "-";
    /* the slot: from the route (its address: one table's routes live as long as it does,
     * and a slot is checked by name anyway), the status and the upstream's key */
    uint64_t h = ((uint64_t)(uintptr_t)x->route >> 4) * 0x9e3779b97f4a7c15ull ^ (unsigned)status;
    h = (h ^ x->host_key) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    size_t hl = x->host_len;
    gw_mslot_t *s = &x->w->mslots[h % GW_METRIC_SLOTS];
    if (s->requests && s->port == x->port && s->status == status && s->host_len == hl &&
        memcmp(s->host, x->host, hl) == 0 && strcmp(s->route, route) == 0)
        return s;
    char up[GW_HOST_MAX + 8], code[8];
    if (x->port)
        snprintf(up, sizeof(up), "%s:%u", x->host, x->port);
    else
        snprintf(up, sizeof(up), "-");
    snprintf(code, sizeof(code), "%03d", status);
    const char *rv[3] = {route, up, code}, *dv[1] = {route};
    s->requests = weft_metrics_counter_child(g->fam_requests, rv);
    s->duration = weft_metrics_histogram_child(g->fam_duration, dv);
    s->port = x->port;
    s->status = status;
    /* a name too long for the slot is kept as "": it never matches, so it is looked up
     * every time rather than mixed up with another */
    size_t rl = strlen(route);
    s->route[0] = 0;
    s->host_len = UINT16_MAX; /* matches no host: none is that long */
    if (hl < sizeof(s->host)) {
        memcpy(s->host, x->host, hl);
        s->host_len = (uint16_t)hl;
    }
    if (rl < sizeof(s->route)) memcpy(s->route, route, rl + 1);
    return s;
}

/* One request answered with status: counted, and its time observed. */
static void record(gw_req_t *x, int status)
{
    x->obs.status = status;
    gw_mslot_t *s = mslot(x, status);
    if (!s) return;
    weft_counter_inc(s->requests);
    uint64_t now = x->end_ns = weft_now_ns(), start = x->req->start_ns;
    double d = now > start ? (double)(now - start) / 1e9 : 0;
    /* a sampled request's span is the bucket's exemplar; others leave the last one */
    const weft_trace_context_t *c = x->obs.recording ? weft_span_context(x->obs.span) : NULL;
    if (c)
        weft_histogram_observe_exemplar(s->duration, d, c->trace_id, c->span_id);
    else
        weft_histogram_observe(s->duration, d);
}

/* The upstream's answer (x->status) is counted and the breakers told its outcome
 * (breaker_done's result), once. For an answer that came whole this runs before its last
 * bytes go to the client (up_body, or up_done for an answer without a body, whose head
 * waits corked): a client that has seen the answer end and sends its next request finds
 * the breakers told, whichever worker takes that request (a half-open breaker's trials
 * have closed it, a concurrency slot is free). */
static void settle(gw_req_t *x, int outcome)
{
    if (x->settled) return;
    x->settled = true;
    record(x, x->status);
    breaker_done(x, outcome);
}

static const char *err_kind(int err)
{
    switch (err) {
    case WEFT_ETIMEDOUT_CONNECT:
        return "connect_timeout";
    case WEFT_ETIMEDOUT_HEAD:
        return "head_timeout";
    case WEFT_ETIMEDOUT_BODY:
        return "body_timeout";
    case WEFT_ETIMEDOUT:
        return "timeout";
    case WEFT_ECONNRESET:
        return "reset";
    case WEFT_EPARSE:
    case WEFT_ELIMIT:
        return "response";
    default:
        return err == -ECONNREFUSED || err == -ENETUNREACH || err == -EHOSTUNREACH ||
                       err == WEFT_ENOENT
                   ? "connect"
                   : "other";
    }
}

static void record_error(gw_req_t *x, const char *kind)
{
    if (!x->g->fam_errors) return;
    const char *v[2] = {x->route ? x->route->name : "-", kind};
    weft_counter_inc(weft_metrics_counter_child(x->g->fam_errors, v));
}

/* This worker's count of the requests in flight on x's route (the admin API's). */
#define gw_active(x)                                                                               \
    ((x)->table->active[(x)->w->index * (x)->table->active_stride +                                \
                        (size_t)((x)->route - (x)->table->routes)])

/* The request is over for the gateway: the table goes back. x itself lives in the
 * request's arena, which the response's end frees: nothing touches x after that. */
static void finish(gw_req_t *x)
{
    x->finished = true;
    gw_obs_end(x->g, x->req, x->route, x->host, x->port, &x->obs);
    if (x->retry_active) weft_retry_budget_retry_end(x->g->budget);
    if (x->in_budget) weft_retry_budget_request_end(x->g->budget);
    x->retry_active = x->in_budget = false;
    if (x->route && x->table->active) gw_active(x)--;
    if (x->tslot) atomic_fetch_sub_explicit(&x->g->tunnel_slots, 1, memory_order_relaxed);
    x->tslot = false;
    if (x->up_fd >= 0) close(x->up_fd);
    x->up_fd = -1;
    free(x->tbuf);
    x->tbuf = NULL;
    if (x->table) weft_snap_release(x->table);
    x->table = NULL;
    x->route = NULL;
}

/* Answers status with a JSON body naming the route and the upstream (when known), and ends
 * the request. */
static void fail(gw_req_t *x, int status, const char *error, const char *detail)
{
    weft_http_request_t *req = x->req;
    char body[1024];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d", error, status);
    if (x->route && n > 0 && (size_t)n < sizeof(body))
        n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"route\":\"%s\"", x->route->name);
    if (x->port && n > 0 && (size_t)n < sizeof(body))
        n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"upstream\":\"%s:%u\"", x->host,
                      x->port);
    if (detail && n > 0 && (size_t)n < sizeof(body))
        n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"detail\":\"%s\"", detail);
    if (n > 0 && (size_t)n < sizeof(body)) n += snprintf(body + n, sizeof(body) - (size_t)n, "}\n");
    if (n < 0 || (size_t)n >= sizeof(body)) n = 0;
    x->obs.bytes_out = (uint64_t)n;
    record(x, status);
    breaker_done(x, status < 500);
    finish(x);
    weft_http_respond(req, status, "application/json", body, (size_t)n);
}

/* What a header is to the proxy. One switch on the length, then at most two
 * case-insensitive compares of a word or two: every header of every request and response
 * passes here (names are tokens: both parsers check). */
typedef enum {
    H_OTHER,
    H_HOP,    /* hop-by-hop (RFC 9110 7.6.1): never forwarded */
    H_TE,     /* Transfer-Encoding: hop-by-hop too; in a request, the body is chunked */
    H_EXPECT, /* Expect: the listener answered 100-continue itself; not sent upstream */
    H_CONNECTION,
    H_CONTENT_LENGTH,
    H_DATE,
    H_HOST,
    H_XFF,
    H_XFP,
    H_XFH,
    H_XRID,
    H_TRACE, /* traceparent, tracestate: the gateway's span replaces the client's */
} hclass_t;

static hclass_t hclass(weft_str_t n)
{
#define IS(lit) (sizeof(lit) - 1 == n.len && weft__http_token_is(n.base, lit, n.len))
    switch (n.len) {
    case 2:
        return IS("te") ? H_HOP : H_OTHER;
    case 4:
        return IS("date") ? H_DATE : IS("host") ? H_HOST : H_OTHER;
    case 6:
        return IS("expect") ? H_EXPECT : H_OTHER;
    case 7:
        return IS("upgrade") || IS("trailer") ? H_HOP : H_OTHER;
    case 10:
        return IS("connection")                                ? H_CONNECTION
               : IS("keep-alive")                              ? H_HOP
               : (n.base[0] | 0x20) == 't' && IS("tracestate") ? H_TRACE
                                                               : H_OTHER;
    case 11:
        return (n.base[0] | 0x20) == 't' && IS("traceparent") ? H_TRACE : H_OTHER;
    case 12:
        return IS("x-request-id") ? H_XRID : H_OTHER;
    case 14:
        return IS("content-length") ? H_CONTENT_LENGTH : H_OTHER;
    case 15:
        return IS("x-forwarded-for") ? H_XFF : H_OTHER;
    case 16:
        return IS("proxy-connection") ? H_HOP : IS("x-forwarded-host") ? H_XFH : H_OTHER;
    case 17:
        return IS("transfer-encoding") ? H_TE : IS("x-forwarded-proto") ? H_XFP : H_OTHER;
    case 18:
        return IS("proxy-authenticate") ? H_HOP : H_OTHER;
    default:
        return H_OTHER;
    }
#undef IS
}

/* Is name one of the tokens of the Connection header's value? */
static bool named_by_connection(weft_str_t conn, const char *n, size_t len)
{
    const char *p = conn.base, *e = conn.base + conn.len;
    while (p < e) {
        while (p < e && (*p == ' ' || *p == '\t' || *p == ',')) p++;
        const char *s = p;
        while (p < e && *p != ',' && *p != ' ' && *p != '\t') p++;
        if ((size_t)(p - s) == len && strncasecmp(s, n, len) == 0) return true;
    }
    return false;
}

/* ---- upgrades: WebSocket and other protocols tunnelled after a 101 (tunnel.c) ---- */

static bool is_upgrade(weft_str_t n)
{
    return n.len == 7 && strncasecmp(n.base, "upgrade", 7) == 0;
}

/* An upgrade request takes one of the gateway's tunnel slots (gateway.max_tunnels, all
 * workers), or is answered 503. The slot goes to the tunnel, or back in finish(). */
static bool tunnel_admit(gw_req_t *x)
{
    weft_gateway_t *g = x->g;
    unsigned n = atomic_load_explicit(&g->tunnel_slots, memory_order_relaxed);
    do {
        if (n >= g->max_tunnels) {
            record_error(x, "tunnel_limit");
            fail(x, 503, "too many tunnels", "over gateway.max_tunnels");
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&g->tunnel_slots, &n, n + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    x->tslot = x->upgrade = true;
    return true;
}

/* The upstream's 101 head for the client, into tbuf: its headers as sent (Sec-WebSocket-
 * Accept, -Protocol, -Extensions...), less the hop-by-hop ones other than Upgrade, with
 * `Connection: Upgrade`. */
static void tunnel_head(gw_req_t *x, const weft_http_header_t *h, size_t n)
{
    static const char line[] = "HTTP/1.1 101 Switching Protocols\r\n";
    static const char tail[] = "Connection: Upgrade\r\n\r\n";
    weft_str_t conn = {NULL, 0};
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 10 && hclass(h[i].name) == H_CONNECTION) conn = h[i].value;
    size_t cap = sizeof(line) + sizeof(tail);
    for (size_t i = 0; i < n; i++) cap += h[i].name.len + h[i].value.len + 4;
    char *b = malloc(cap);
    if (!b) return; /* on_upgrade finds no head: 502 */
    size_t len = sizeof(line) - 1;
    memcpy(b, line, len);
    for (size_t i = 0; i < n; i++) {
        weft_str_t nm = h[i].name, v = h[i].value;
        if (!is_upgrade(nm)) {
            hclass_t c = hclass(nm);
            if (c == H_HOP || c == H_CONNECTION || c == H_CONTENT_LENGTH ||
                (conn.len && named_by_connection(conn, nm.base, nm.len)))
                continue;
        }
        memcpy(b + len, nm.base, nm.len);
        len += nm.len;
        b[len++] = ':';
        b[len++] = ' ';
        memcpy(b + len, v.base, v.len);
        len += v.len;
        b[len++] = '\r';
        b[len++] = '\n';
    }
    memcpy(b + len, tail, sizeof(tail) - 1);
    x->tbuf = b;
    x->tlen = len + sizeof(tail) - 1;
}

static void tunnel_takeover(gw_req_t *x);

static void tunnel_drain(weft_http_request_t *req)
{
    gw_req_t *x = req->data;
    if (x && !x->finished && x->tunnel) tunnel_takeover(x);
}

/* The client's connection is taken over and the tunnel started. An earlier response still
 * going out (pipelining) makes it wait for the request's on_drain. */
static void tunnel_takeover(gw_req_t *x)
{
    weft_http_request_t *req = x->req;
    uv_loop_t *loop = req->loop;
    weft_http_takeover_t tk;
    int rc = weft_http_request_takeover(req, 101, &tk);
    if (rc == WEFT_EAGAIN) {
        req->on_drain = tunnel_drain;
        return;
    }
    if (rc == WEFT_ECLOSED) return; /* req_abort ran first, and cleaned up */
    if (rc != 0) {
        x->tunnel = false;
        fail(x, 502, "bad gateway", "cannot take the client's connection over");
        return;
    }
    /* The request is finished. x, in its arena, lasts until the connection's close
     * callback (a later turn of the loop): what the tunnel needs is handed over now. */
    record(x, 101);
    breaker_done(x, true);
    int up_fd = x->up_fd;
    char *tb = x->tbuf;
    x->up_fd = -1;
    x->tbuf = NULL;
    x->tslot = false; /* the tunnel's now */
    gw_tunnel_start(x->g, x->w, loop, x->route->name, tk.fd, tk.data, tk.len, up_fd, tb, x->tlen,
                    x->route->ws_idle_ms);
    finish(x);
}

/* The upstream switched protocols (after up_head's 101): its socket and the bytes it sent
 * after the head. */
static void up_upgrade(weft_http_client_call_t *call, int fd, const char *data, size_t len,
                       void *arg)
{
    gw_req_t *x = arg;
    (void)call;
    if (x->finished || !x->tbuf) {
        close(fd);
        return; /* the client is gone, or no memory for the head: up_done answers 502 */
    }
    if (len) {
        char *b = realloc(x->tbuf, x->tlen + len);
        if (!b) {
            close(fd);
            return;
        }
        memcpy(b + x->tlen, data, len);
        x->tbuf = b;
        x->tlen += len;
    }
    x->up_fd = fd;
    x->tunnel = true;
    tunnel_takeover(x);
}

/* ---- the response, upstream -> client ---- */

static void up_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    gw_req_t *x = arg;
    if (x->finished) return;
    /* a 429 or 5xx may say how long to wait (Retry-After): a retry waits at least that */
    uint64_t retry_after = 0;
    if (status == 429 || status >= 500)
        for (size_t i = 0; i < n; i++)
            if (h[i].name.len == 11 && weft__http_token_is(h[i].name.base, "retry-after", 11))
                weft_http_retry_after_parse(h[i].value.base, h[i].value.len, time(NULL),
                                            &retry_after);
    if (retry_if_allowed(x, 0, status, retry_after)) {
        inst_done(x, status_outcome(x, status));
        x->retrying = true;
        weft_http_client_cancel(call); /* up_done starts the next try */
        return;
    }
    if (status == 101) {
        if (x->upgrade) {
            x->status = 101;
            tunnel_head(x, h, n);
        } else {
            x->proto_err = true;
            weft_http_client_cancel(call); /* up_done answers 502 */
        }
        return;
    }
    weft_http_request_t *req = x->req;
    int64_t length = -1;
    weft_str_t conn = {NULL, 0};
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 10 && hclass(h[i].name) == H_CONNECTION) conn = h[i].value;
    for (size_t i = 0; i < n; i++) {
        weft_str_t nm = h[i].name, v = h[i].value;
        hclass_t c = hclass(nm);
        if (c == H_CONTENT_LENGTH) {
            /* digits only, no more than 18 of them: the client's parser has checked */
            if (v.len && v.len <= 18) {
                length = 0;
                for (size_t k = 0; k < v.len; k++) length = length * 10 + (v.base[k] - '0');
            }
            continue;
        }
        while (c == H_TE && v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
            v.len--;
        if (c == H_TE && !(v.len == 7 && weft__http_token_is(v.base, "chunked", 7))) {
            /* a transfer coding other than chunked (gzip, ...): the body cannot be passed on
             * as what it is once the framing is the gateway's own, so 502 (as NGINX) */
            x->proto_err = true;
            weft_http_client_cancel(call); /* up_done answers 502 */
            return;
        }
        if (c == H_HOP || c == H_TE || c == H_CONNECTION || c == H_DATE ||
            (conn.len && named_by_connection(conn, nm.base, nm.len)))
            continue;
        /* views of the upstream's head, copied once into the response's (Content-Type
         * included: it goes as it came); a bad one is dropped */
        if (weft_http_response_header_n(req, nm, v) == WEFT_ENOMEM) break;
    }
    x->status = status;
    if (status == 204 || status == 304) length = 0;
    x->body_left = length >= 0 && !req->is_head ? (uint64_t)length : UINT64_MAX;
    /* the body's first bytes are here: head and body go to the client in one write. An
     * answer that is whole with its head (no body) waits for up_done, which settles it
     * first: a client that has seen it end finds the breakers told (settle) */
    if (length == 0 || req->is_head || weft_http_client_more_read(call))
        weft_http_response_cork(req);
    if (weft_http_response_start(req, status, NULL, length) == 0) x->head_sent = true;
}

static void up_body(weft_http_client_call_t *call, const char *data, size_t len, void *arg)
{
    gw_req_t *x = arg;
    if (x->finished || !x->head_sent) return;
    if (x->body_left != UINT64_MAX) {
        x->body_left -= len < x->body_left ? len : x->body_left;
        if (x->body_left == 0) /* before the client can see the answer end */
            settle(x, status_outcome(x, x->status));
    }
    int rc = weft_http_response_write(x->req, data, len);
    if (rc == 0 || rc == WEFT_EAGAIN) x->obs.bytes_out += len;
    if (rc == WEFT_EAGAIN) {
        x->up_paused = true;
        weft_http_client_pause(call);
    } else if (rc != 0) {
        weft_http_client_cancel(call); /* the client is gone, or the body is longer than said */
    }
}

static void req_drain(weft_http_request_t *req)
{
    gw_req_t *x = req->data;
    if (x && x->up_paused && x->call) {
        x->up_paused = false;
        weft_http_client_resume(x->call);
    }
}

static void up_done(weft_http_client_call_t *call, int err, void *arg)
{
    gw_req_t *x = arg;
    (void)call;
    x->call = NULL;
    if (x->finished) return; /* the client went away first (on_abort) */
    if (x->tunnel) return;   /* switched: the client's connection is being taken over */
    if (x->proto_err) err = WEFT_EPARSE;
    if (err == 0 && x->status == 101) err = WEFT_ENOMEM; /* switched, but no tunnel was made */
    if (x->retrying) { /* cancelled by up_head, which decided on the next try */
        x->retrying = false;
        return;
    }
    if (x->retry_active) { /* this try was a retry: it ends */
        x->retry_active = false;
        weft_retry_budget_retry_end(x->g->budget);
    }
    if (err == WEFT_ECANCELED) inst_done(x, -1); /* cancelled here: not the upstream's doing */
    if (err != 0 && !x->head_sent) {
        inst_done(x, err_outcome(x, err)); /* this try failed, whether another follows */
        if (retry_if_allowed(x, err, 0, 0)) return;
    }
    weft_http_request_t *req = x->req;
    weft_gateway_t *g = x->g;
    if (err == 0) {
        settle(x, status_outcome(x, x->status));
        finish(x);
        weft_http_response_end(req);
        return;
    }
    record_error(x, err_kind(err));
    x->obs.error = err_kind(err);
    bool timeout = err == WEFT_ETIMEDOUT || err == WEFT_ETIMEDOUT_CONNECT ||
                   err == WEFT_ETIMEDOUT_HEAD || err == WEFT_ETIMEDOUT_BODY;
    atomic_fetch_add_explicit(timeout ? &g->timeouts : &g->bad_gateway, 1, memory_order_relaxed);
    weft_debug("gateway", "upstream failed", "route=%s upstream=%s:%u err=%s",
               x->route ? x->route->name : "-", x->host, x->port, weft_strerror(err));
    if (x->head_sent) {
        settle(x, err_outcome(x, err)); /* unless settled: the client left at the body's end */
        finish(x);
        weft_http_response_abort(req);
        return;
    }
    breaker_done(x, err_outcome(x, err)); /* before fail(), which would count a 502/504 */
    fail(x, timeout ? 504 : 502, timeout ? "upstream timed out" : "bad gateway",
         weft_strerror(err));
}

/* ---- the request body, client -> upstream ---- */

static void up_drain(weft_http_client_call_t *call, void *arg)
{
    gw_req_t *x = arg;
    (void)call;
    if (x->finished || !x->req_paused) return;
    x->req_paused = false;
    weft_http_request_resume(x->req);
}

static void req_body(weft_http_request_t *req, const char *data, size_t len)
{
    gw_req_t *x = req->data;
    if (!x || x->finished || !x->call) return;
    if (len == 0) {
        weft_http_client_end(x->call);
        return;
    }
    int rc = weft_http_client_write(x->call, data, len);
    if (rc >= 0) x->obs.bytes_in += len;
    if (rc == 1) {
        x->req_paused = true;
        weft_http_request_pause(req);
    } else if (rc < 0) {
        weft_http_client_cancel(x->call); /* up_done answers */
    }
}

static void req_abort(weft_http_request_t *req)
{
    gw_req_t *x = req->data;
    if (!x || x->finished) return;
    breakers_release(x); /* the client went away: nothing learnt about the upstream */
    finish(x);
    if (x->call) weft_http_client_cancel(x->call);
    weft_http_response_end(req); /* releases the aborted request */
}

/* ---- choosing the upstream ---- */

static uint64_t next_rand(gw_worker_t *w)
{
    uint64_t s = w->rnd ? w->rnd : 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return w->rnd = s;
}

/* An upstream the route may send to (policy.h's endpoint: a static target, or a passing
 * instance of its service, strings of the route or of the catalog snapshot while its read
 * section lasts). */
typedef gw_endpoint_t cand_t;

#define MAX_CANDS 256

/* An upstream's key: its host's bytes a word at a time, and its port. Computed once a try
 * (pick) for the tried list and the metrics slot; for no upstream ("", 0) it is 0. */
static uint64_t host_key(const char *host, size_t hl, uint16_t port)
{
    uint64_t h = port, v;
    size_t i = 0;
    for (; i + 8 <= hl; i += 8) {
        memcpy(&v, host + i, 8);
        h = (h ^ v) * 0x9e3779b97f4a7c15ull;
    }
    if (i == hl) return h;
    for (v = 0; i < hl; i++) v = v << 8 | (unsigned char)host[i]; /* no call to memcpy */
    return (h ^ v) * 0x9e3779b97f4a7c15ull;
}

static bool tried(const gw_req_t *x, const cand_t *c)
{
    uint64_t k = host_key(c->host, strnlen(c->host, GW_HOST_MAX), c->port);
    for (unsigned i = 0; i < x->ntried; i++)
        if (x->tried[i] == k) return true;
    return false;
}

/* The candidate at weight unit k (0 <= k < total). */
static unsigned at_weight(const cand_t *c, unsigned n, uint64_t k)
{
    for (unsigned i = 0; i < n; i++) {
        if (k < c[i].weight) return i;
        k -= c[i].weight;
    }
    return n - 1;
}

static unsigned in_flight(gw_req_t *x, const cand_t *c)
{
    weft_http_client_host_stats_t st;
    return weft_http_client_host_stats(x->w->client, c->host, c->port, &st) == 0 ? st.in_flight : 0;
}

/* Candidates left out of this pick (their breaker is open, or they are full): a bit each. */
typedef struct cand_set_s {
    uint64_t bits[MAX_CANDS / 64];
} cand_set_t;

static bool in_set(const cand_set_t *s, unsigned i)
{
    return (s->bits[i >> 6] >> (i & 63)) & 1;
}

/* Chooses among c[0..n) by the route's balancer, leaving out the candidates in out (at least
 * one is not), and avoiding upstreams this request tried already while others remain (a
 * retry goes elsewhere). ring: the ring over c (GW_LB_RING_HASH). Returns its index. */
static unsigned choose(gw_req_t *x, const cand_t *c, unsigned n, const cand_set_t *out,
                       const weft_ring_t *ring)
{
    uint64_t total = 0;
    unsigned fresh = 0;
    for (unsigned i = 0; i < n; i++) {
        total += c[i].weight;
        if (x->ntried && !in_set(out, i) && !tried(x, &c[i])) fresh++; /* a first try: none */
    }
    bool avoid = fresh > 0 && x->ntried > 0;
#define OK(i) (!in_set(out, (i)) && (!avoid || !tried(x, &c[(i)])))
    unsigned pick = 0;
    switch (x->route->lb) {
    case GW_LB_ROUND_ROBIN: { /* weighted: round robin over the weight units */
        uint64_t k = x->w->rr++;
        for (uint64_t step = 0; step < total; step++) {
            pick = at_weight(c, n, (k + step) % total);
            if (OK(pick)) break;
        }
        break;
    }
    case GW_LB_RANDOM:
        for (unsigned t = 0; t < 4 * n + 4; t++) {
            pick = at_weight(c, n, next_rand(x->w) % total);
            if (OK(pick)) break;
        }
        break;
    case GW_LB_LEAST_REQUEST: { /* power of two choices, by this worker's requests in flight */
        unsigned a = 0, b = 0;
        for (unsigned t = 0; t < 4 * n + 4; t++) {
            a = at_weight(c, n, next_rand(x->w) % total);
            if (OK(a)) break;
        }
        for (unsigned t = 0; t < 4 * n + 4; t++) {
            b = at_weight(c, n, next_rand(x->w) % total);
            if (b != a && OK(b)) break;
        }
        pick = a == b || !OK(b) || in_flight(x, &c[a]) <= in_flight(x, &c[b]) ? a : b;
        break;
    }
    case GW_LB_RING_HASH: { /* the key's point, or the next of an eligible endpoint */
        unsigned skip[MAX_CANDS], ns = 0;
        for (unsigned i = 0; i < n; i++)
            if (!OK(i)) skip[ns++] = i;
        int k = ring ? weft_ring_pick(ring, x->key_hash, skip, ns) : -1;
        pick = k >= 0 && (unsigned)k < n ? (unsigned)k : 0;
        break;
    }
    }
    /* a draw that never landed on an eligible one (random, least request), or no ring:
     * the first eligible */
    for (unsigned i = 0; !OK(pick) && i < n; i++) pick = i;
    if (!OK(pick))
        for (unsigned i = 0; in_set(out, pick) && i < n; i++) pick = i;
#undef OK
    return pick;
}

/* The ring of the route's candidates: the static targets' (built with the table), or the
 * service's for this version of its instances (cached, built by the first request that
 * sees the version). Inside the read section. NULL when out of memory. */
static const weft_ring_t *route_ring(gw_req_t *x, const cand_t *c, unsigned n, uint64_t version)
{
    gw_policy_t *p = x->route->policy;
    if (!x->route->service) return x->route->ring;
    if (!p) return NULL;
    const weft_ring_t *ring = gw_policy_ring_get(p, version, n);
    if (ring) return ring;
    weft_ring_t *fresh;
    if (gw_ring_build(c, n, &fresh) != 0) return NULL;
    return gw_policy_ring_put(p, version, n, fresh);
}

/* The request's key for the ring, hashed: the client's address (without its port) or a
 * header's value; a request without the header gets a random point (as Envoy does when a
 * hash policy gives no hash). */
static uint64_t ring_key(gw_req_t *x)
{
    if (x->route->hash_on == GW_HASH_HEADER) {
        weft_str_t v = weft_http_request_header(x->req, x->route->hash_header);
        return v.base ? weft_ring_hash(v.base, v.len) : next_rand(x->w);
    }
    weft_str_t ip = client_ip(x);
    return weft_ring_hash(ip.base, ip.len);
}

typedef enum pick_e {
    PICK_OK = 0,   /* x->host:port, and x->inst admitted (when the route keeps instances) */
    PICK_NONE = 1, /* no static target, no passing instance */
    PICK_OPEN = 2, /* every instance's breaker refused (x->pick_wait, x->pick_half_open) */
    PICK_FULL = 3, /* every instance refused, some for max_requests */
} pick_t;

/* Out of c[0..n), the instance this try goes to: chosen by the balancer, then admitted by
 * its breaker and its max_requests, or left out and chosen again among the others. */
static pick_t admit_among(gw_req_t *x, const cand_t *c, unsigned n, const weft_ring_t *ring)
{
    gw_policy_t *p = x->route->policy;
    uint64_t now = uv_now(x->req->loop);
    cand_set_t out = {{0}};
    bool full = false;
    x->pick_wait = UINT64_MAX;
    x->pick_half_open = true;
    for (unsigned left = n; left > 0; left--) {
        unsigned k = choose(x, c, n, &out, ring);
        gw_inst_t *in = gw_policy_instance(p, c[k].host, c[k].port, now);
        uint64_t wait = 0;
        gw_admit_t a = in ? gw_inst_admit(in, now, &wait) : GW_ADMIT_OK;
        if (a == GW_ADMIT_OK) {
            x->inst = in;
            x->inst_sent = false;
            x->inst_open = false;
            x->try_ms = now;
            /* memcpy, not snprintf: this runs for every request (snprintf cost about 600
             * instructions here, bench/gateway's part d) */
            size_t hl = strnlen(c[k].host, sizeof(x->host) - 1);
            memcpy(x->host, c[k].host, hl);
            x->host[hl] = 0;
            x->host_len = hl;
            x->port = c[k].port;
            x->host_key = host_key(x->host, hl, x->port);
            return PICK_OK;
        }
        out.bits[k >> 6] |= 1ull << (k & 63);
        if (a == GW_ADMIT_FULL) {
            full = true;
        } else {
            if (wait) x->pick_half_open = false;
            if (wait && wait < x->pick_wait) x->pick_wait = wait;
        }
    }
    if (x->pick_wait == UINT64_MAX) x->pick_wait = 0;
    return full ? PICK_FULL : PICK_OPEN;
}

/* Chooses the upstream of this try: a static target, or a passing instance of the route's
 * service from the catalog's current snapshot, skipping those whose breaker is open or that
 * are at max_requests. */
static pick_t pick(gw_req_t *x)
{
    const gw_route_t *r = x->route;
    cand_t c[MAX_CANDS];
    unsigned n = 0;
    pick_t rc = PICK_NONE;
    x->port = 0; /* no upstream named in an answer until one is chosen */
    x->host[0] = 0;
    x->host_len = 0;
    x->host_key = 0; /* host_key("", 0, 0) */
    if (x->ntried == 0 && r->lb == GW_LB_RING_HASH) x->key_hash = ring_key(x);
    weft_snap_read_lock(); /* the instances' index, the catalog, a service's ring */
    if (!r->service) {
        for (unsigned i = 0; i < r->ntargets && n < MAX_CANDS; i++)
            c[n++] = (cand_t){r->targets[i].host, r->targets[i].port, r->targets[i].weight};
        if (n) rc = admit_among(x, c, n, r->lb == GW_LB_RING_HASH ? route_ring(x, c, n, 0) : NULL);
        weft_snap_read_unlock();
        return rc;
    }
    weft_registry_t *reg = x->g->reg;
    const reg_snap_t *s = reg ? weft_snap_get(weft_registry_cell(reg)) : NULL;
    const reg_svc_t *v = s ? weft__snap_service(s, r->service, strlen(r->service)) : NULL;
    for (uint32_t i = 0; v && i < v->n && n < MAX_CANDS; i++) {
        const reg_inst_t *in = v->inst[i];
        if (in->health != WEFT_HEALTH_PASSING || in->port == 0) continue;
        int w = in->w_passing > 0 ? in->w_passing : 1;
        c[n++] = (cand_t){*in->address ? in->address : s->node->address, in->port, (unsigned)w};
    }
    if (n)
        rc = admit_among(x, c, n, r->lb == GW_LB_RING_HASH ? route_ring(x, c, n, v->index) : NULL);
    weft_snap_read_unlock();
    return rc;
}

/* No upstream for this try (pick's rc): 503, as a breaker's refusal (Retry-After,
 * X-Weft-Breaker) when every instance's breaker refused, as an overflow (X-Weft-Overflow)
 * when some were at max_requests. */
static void answer_no_pick(gw_req_t *x, pick_t rc, const char *none_detail)
{
    weft_http_request_t *req = x->req;
    gw_policy_t *p = x->route->policy;
    char v[96];
    if (rc == PICK_OPEN) {
        if (p) {
            atomic_fetch_add_explicit(&p->breaker_rejected, 1, memory_order_relaxed);
            weft_counter_inc(p->breaker_rejected_c);
        }
        record_error(x, "breaker_open");
        x->obs.breaker = GW_OBS_BR_OPEN;
        snprintf(v, sizeof(v), "%" PRIu64, x->pick_wait ? (x->pick_wait + 999) / 1000 : 1);
        weft_http_response_header(req, "Retry-After", v);
        weft_http_response_header(req, "X-Weft-Breaker", x->pick_half_open ? "half-open" : "open");
        snprintf(v, sizeof(v),
                 "every upstream instance's breaker is open; one half-opens in %" PRIu64 " ms",
                 x->pick_wait);
        fail(x, 503, "circuit breaker open", v);
        return;
    }
    if (rc == PICK_FULL) {
        record_error(x, "overflow");
        weft_http_response_header(req, "X-Weft-Overflow", "max_requests");
        snprintf(v, sizeof(v),
                 "max_requests: every upstream instance has %" PRIu64 " active requests",
                 x->route->limits.max_requests);
        fail(x, 503, "upstream overflow", v);
        return;
    }
    x->obs.no_upstream = true;
    atomic_fetch_add_explicit(&x->g->no_upstream, 1, memory_order_relaxed);
    record_error(x, "no_upstream");
    fail(x, 503, "no healthy upstream", none_detail);
}

/* ---- policies: the rate limit, then the breaker ---- */

/* The request's key for the route's rate limit into *len (a view of the request's, or of
 * its peer's, strings). */
static const char *limit_key(gw_req_t *x, size_t *len)
{
    const gw_ratelimit_conf_t *c = &x->route->rate_limit;
    if (c->key == GW_RL_KEY_CLIENT_IP) {
        weft_str_t ip = client_ip(x);
        *len = ip.len;
        return ip.base;
    }
    if (c->key == GW_RL_KEY_HEADER) {
        weft_str_t v = weft_http_request_header(x->req, c->key_header);
        *len = v.len;
        return v.base ? v.base : "";
    }
    *len = 0; /* route, global: one bucket for the route */
    return "";
}

/* 429 with Retry-After and the IETF RateLimit-Policy / RateLimit fields (draft-ietf-httpapi-
 * ratelimit-headers: a policy named after the route, q its quota over w seconds; r what
 * remains, t seconds until it is whole). */
static void reject_limited(gw_req_t *x, const weft_ratelimit_result_t *res)
{
    weft_http_request_t *req = x->req;
    const gw_ratelimit_conf_t *c = &x->route->rate_limit;
    weft_ratelimit_options_t o = {.kind = WEFT_RATELIMIT_TOKEN_BUCKET,
                                  .rate = c->rate,
                                  .burst = c->burst,
                                  .window_ms = c->window_ms};
    if (c->algorithm != GW_RL_TOKEN_BUCKET) o.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
    weft_ratelimit_headers_t h;
    weft_ratelimit_headers(&o, x->route->name, res, &h);
    weft_http_response_header(req, "Retry-After", h.retry_after);
    weft_http_response_header(req, "RateLimit-Policy", h.policy);
    weft_http_response_header(req, "RateLimit", h.state);
    char detail[64];
    snprintf(detail, sizeof(detail), "retry after %" PRIu64 " ms", res->retry_after_ms);
    fail(x, 429, "rate limited", detail);
}

/* Passes the route's rate limit, or answers 429 and returns false. */
static bool within_limit(gw_req_t *x)
{
    gw_policy_t *p = x->route->policy;
    if (!p || !p->rl) return true;
    size_t len;
    const char *key = limit_key(x, &len);
    weft_ratelimit_result_t res;
    bool ok = gw_policy_limit(p, key, len, uv_now(x->req->loop), &res);
    gw_obs_ratelimit(&x->obs, !ok           ? GW_OBS_RL_REJECTED
                              : res.allowed ? GW_OBS_RL_ALLOWED
                                            : GW_OBS_RL_SHADOW);
    if (ok) return true;
    reject_limited(x, &res);
    return false;
}

/* Passes the route's breaker, or answers 503 and returns false. Asked once an upstream is
 * chosen: a route with no passing instance answers 503 without the breaker learning
 * anything, so that instances coming back are not kept waiting by it. */
static bool breaker_admits(gw_req_t *x)
{
    gw_policy_t *p = x->route->policy;
    uint64_t now = uv_now(x->req->loop);
    if (p && p->breaker) {
        uint64_t wait = 0;
        bool open = false;
        bool ok = gw_policy_allow(p, now, &wait, &open);
        gw_obs_breaker(x->g, &x->obs, p, ok, open);
        if (!ok) {
            inst_done(x, -1); /* the instance's admission is not used */
            weft_http_request_t *req = x->req;
            char v[64];
            snprintf(v, sizeof(v), "%" PRIu64, wait ? (wait + 999) / 1000 : 1);
            weft_http_response_header(req, "Retry-After", v);
            weft_http_response_header(req, "X-Weft-Breaker", open ? "open" : "half-open");
            snprintf(v, sizeof(v), "half-open in %" PRIu64 " ms", wait);
            fail(x, 503, "circuit breaker open", v);
            return false;
        }
        x->breaker = true;
    }
    return true;
}

/* ---- the handler ---- */

static const weft_http_header_t *upstream_headers(gw_req_t *x, size_t *n)
{
    weft_http_request_t *req = x->req;
    weft_http_header_t *out =
        weft_http_request_alloc(req, (req->nheaders + HDR_EXTRA) * sizeof(*out));
    if (!out) return NULL;
    weft_str_t conn = {NULL, 0}; /* the first Connection header (a length, then a word) */
    for (size_t i = 0; i < req->nheaders && !conn.base; i++)
        if (req->headers[i].name.len == 10 && hclass(req->headers[i].name) == H_CONNECTION)
            conn = req->headers[i].value;
    weft_str_t xff = {NULL, 0}, rid = {NULL, 0};
    size_t k = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        weft_str_t nm = req->headers[i].name;
        if (x->upgrade && is_upgrade(nm)) { /* kept, with a Connection naming it (below) */
            out[k++] = req->headers[i];
            continue;
        }
        hclass_t c = hclass(nm);
        if (c == H_TE && req->headers[i].value.len) x->te_in = true;
        if (c == H_HOP || c == H_TE || c == H_CONNECTION || c == H_CONTENT_LENGTH || c == H_XFP ||
            c == H_XFH || c == H_EXPECT || (c == H_TRACE && x->obs.span) ||
            (conn.len && named_by_connection(conn, nm.base, nm.len)))
            continue;
        if (c == H_XFF) {
            xff = req->headers[i].value;
            continue;
        }
        if (c == H_XRID) rid = req->headers[i].value;
        out[k] = req->headers[i];
        /* RFC 9110 7.2: an absolute-form target's host replaces the Host field (the route
         * matched on it; the upstream must not see another) */
        if (c == H_HOST) out[k].value = req->authority;
        k++;
    }
    /* the client's address, without its port */
    weft_str_t ip = client_ip(x);
    const char *peer = ip.base;
    size_t pl = ip.len;
    size_t xl = xff.len ? xff.len + 2 + pl : pl;
    char *xv = weft_http_request_alloc(req, xl + 1);
    if (!xv) return NULL;
    if (xff.len) {
        memcpy(xv, xff.base, xff.len);
        memcpy(xv + xff.len, ", ", 2);
        memcpy(xv + xff.len + 2, peer, pl);
    } else {
        memcpy(xv, peer, pl);
    }
    out[k++] = (weft_http_header_t){{"X-Forwarded-For", 15}, {xv, xl}};
    out[k++] = (weft_http_header_t){{"X-Forwarded-Proto", 17}, {"http", 4}};
    if (req->authority.len)
        out[k++] = (weft_http_header_t){{"X-Forwarded-Host", 16}, req->authority};
    if (!rid.len) {
        char *id = weft_http_request_alloc(req, 17);
        if (!id) return NULL;
        uint8_t v[8];
        uint64_t r = next_rand(x->w);
        memcpy(v, &r, 8);
        weft_trace_hex(v, 8, id); /* a pair of digits a byte */
        id[16] = 0;
        out[k++] = (weft_http_header_t){{"X-Request-Id", 12}, {id, 16}};
        rid = (weft_str_t){id, 16};
    }
    if (x->upgrade) out[k++] = (weft_http_header_t){{"Connection", 10}, {"upgrade", 7}};
    x->obs.request_id = rid;
    k += gw_obs_inject(&x->obs, out + k);
    *n = k;
    return out;
}

void weft__gw_handle(weft_http_request_t *req, void *arg)
{
    weft_gateway_t *g = arg;
    atomic_fetch_add_explicit(&g->requests, 1, memory_order_relaxed);
    gw_worker_t *w = weft_host_state(req->loop, g->part);
    gw_req_t *x = weft_http_request_alloc(req, sizeof(*x));
    if (!w || !w->client || !x) {
        static const char oom[] = "{\"error\":\"gateway out of memory\",\"status\":503}\n";
        weft_http_respond(req, 503, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    *x = (gw_req_t){.g = g, .w = w, .req = req, .up_fd = -1};
    weft_snap_read_lock();
    gw_table_t *t = weft_snap_get(&g->table);
    x->table = t ? weft_snap_ref(t) : NULL;
    weft_snap_read_unlock();
    x->route = x->table ? gw_table_match(x->table, req) : NULL;
    gw_obs_begin(g, req, x->route, &x->obs);
    if (!x->route) {
        atomic_fetch_add_explicit(&g->no_route, 1, memory_order_relaxed);
        fail(x, 404, "no route", NULL);
        return;
    }
    if (x->table->active) gw_active(x)++;
    if (!within_limit(x)) return;
    if (req->upgrade && !x->route->ws_off && !tunnel_admit(x)) return;
    pick_t picked = pick(x);
    if (picked != PICK_OK) {
        char detail[300];
        snprintf(detail, sizeof(detail), "no passing instance of service %s",
                 x->route->service ? x->route->service : "-");
        answer_no_pick(x, picked, detail);
        return;
    }
    if (!breaker_admits(x)) return;
    /* sized to fit the path sent upstream (the request's, or the rewrite, with '/', '?' and
     * a NUL at most): a target at the listener's own limit (http.max_target_size) goes
     * through, and no block of a fixed size (an arena block of its own: a malloc and a free
     * per request) is taken */
    size_t tsize = gw_upstream_target_size(x->route, req);
    char *target = weft_http_request_alloc(req, tsize);
    if (!target || gw_upstream_target(x->route, req, target, tsize) != 0) {
        fail(x, target ? 414 : 503,
             target ? "target too long for the upstream" : "gateway out of memory", NULL);
        return;
    }
    x->target = target;
    x->hs = upstream_headers(x, &x->nh);
    if (!x->hs) {
        fail(x, 503, "gateway out of memory", NULL);
        return;
    }
    size_t ml = req->method.len < sizeof(x->method) - 1 ? req->method.len : sizeof(x->method) - 1;
    memcpy(x->method, req->method.base, ml);
    x->method[ml] = 0;
    if (x->te_in) /* seen by upstream_headers */
        x->body_mode = WEFT_HTTP_CLIENT_BODY_CHUNKED;
    else if (req->content_length != UINT64_MAX && req->content_length > 0)
        x->body_mode = WEFT_HTTP_CLIENT_BODY_LENGTH;
    x->deadline = x->route->timeout_ms ? uv_now(req->loop) + x->route->timeout_ms : UINT64_MAX;
    weft_retry_budget_request_start(g->budget);
    x->in_budget = true;
    req->data = x;
    req->on_body = x->body_mode != WEFT_HTTP_CLIENT_BODY_FIXED ? req_body : NULL;
    req->on_drain = req_drain;
    req->on_abort = req_abort;
    start_try(x);
}

/* ---- tries ---- */

static const weft_http_client_cbs_t up_cbs = {.on_head = up_head,
                                              .on_body = up_body,
                                              .on_done = up_done,
                                              .on_drain = up_drain,
                                              .on_upgrade = up_upgrade};

/* The route's max_connections and max_pending_requests as this worker's share (ceil(max /
 * workers)) into r, for the client's pool of the upstream. Returns whether any is set. */
static bool pool_limits(gw_req_t *x, weft_http_client_req_t *r)
{
    const gw_limits_conf_t *l = &x->route->limits;
    uint64_t nw = x->g->nworkers ? x->g->nworkers : 1;
    if (l->max_connections) r->max_conns = (unsigned)((l->max_connections + nw - 1) / nw);
    if (l->pending_set)
        r->max_queue =
            l->max_pending ? (unsigned)((l->max_pending + nw - 1) / nw) : WEFT_HTTP_CLIENT_NO_QUEUE;
    return l->max_connections || l->pending_set;
}

/* The client refused the try: its pool of the upstream has max_connections open and
 * max_pending_requests waiting (this worker's shares). 503 at once, naming the limit; the
 * breakers learn nothing (the upstream was not asked). */
static void overflow_pending(gw_req_t *x, const weft_http_client_req_t *r)
{
    breakers_release(x);
    record_error(x, "overflow");
    weft_http_response_header(x->req, "X-Weft-Overflow", "max_pending_requests");
    char v[160];
    unsigned q = r->max_queue == WEFT_HTTP_CLIENT_NO_QUEUE ? 0 : r->max_queue;
    if (r->max_conns)
        snprintf(v, sizeof(v),
                 "max_pending_requests: %u requests wait for one of this worker's %u "
                 "connections to the upstream",
                 q, r->max_conns);
    else
        snprintf(v, sizeof(v),
                 "max_pending_requests: %u requests wait for a connection to the upstream", q);
    fail(x, 503, "upstream overflow", v);
}

/* One try at the upstream in x->host:port, within what is left of the route's timeout (and
 * the retry's per-try timeout). */
static void start_try(gw_req_t *x)
{
    weft_http_request_t *req = x->req;
    if (x->ntried < sizeof(x->tried) / sizeof(x->tried[0])) x->tried[x->ntried++] = x->host_key;
    gw_obs_try(&x->obs, x->host, x->port, x->attempt);
    uint64_t now = uv_now(req->loop);
    /* UINT64_MAX: a route without a timeout of its own (the client's request_timeout_ms) */
    uint64_t left = x->deadline == UINT64_MAX ? 0 : x->deadline > now ? x->deadline - now : 1;
    uint64_t per = x->route->retry.per_try_timeout_ms;
    weft_http_client_req_t r = {.method = x->method,
                                .host = x->host,
                                .port = x->port,
                                .target = x->target,
                                .headers = x->hs,
                                .nheaders = x->nh,
                                .body_mode = x->body_mode,
                                /* names and values passed weft's request parser, and
                                 * what upstream_headers adds is made of checked parts */
                                .headers_checked = true,
                                .timeout_ms = per && (left == 0 || per < left) ? per : left};
    if (x->body_mode == WEFT_HTTP_CLIENT_BODY_LENGTH) r.content_length = req->content_length;
    bool pooled = pool_limits(x, &r);
    int rc = weft_http_client_request(x->w->client, &r, &up_cbs, x, &x->call);
    if (rc == 0) {
        x->inst_sent = true;
        return;
    }
    if (rc == WEFT_ELIMIT && pooled) {
        overflow_pending(x, &r);
        return;
    }
    x->obs.error = err_kind(rc);
    atomic_fetch_add_explicit(&x->g->bad_gateway, 1, memory_order_relaxed);
    fail(x, rc == WEFT_ELIMIT ? 503 : 502, "cannot reach the upstream", weft_strerror(rc));
}

static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcmp(m, ok[i]) == 0) return true;
    return false;
}

/* A retry's backoff is over (or the client left, or the server shuts down meanwhile). */
static void retry_event(weft_http_request_t *req, weft_http_event_t ev)
{
    gw_req_t *x = req->data;
    req->on_event = NULL;
    if (!x || x->finished) return;
    if (ev != WEFT_HTTP_EVENT_TIMER) {
        fail(x, 502, "bad gateway", "the retry was given up");
        return;
    }
    pick_t picked = pick(x);
    if (picked != PICK_OK) {
        answer_no_pick(x, picked, "no passing instance left to retry on");
        return;
    }
    start_try(x);
}

/* After a failed try (err), or a response head with a status the route retries on: when
 * the route allows another try (attempts left, an idempotent method or `methods: any`, no
 * streamed body to replay, time left before its timeout) and the retry budget has room,
 * the next try is set for after a full-jitter backoff (25 ms doubling, at most 250 ms) and
 * true returned; else false, and the caller answers with what it has. */
/* Starts the next try after a backoff when the route's retry policy, the deadline and the
 * retry budget allow it. retry_after_ms: what the upstream asked for (Retry-After), 0 when
 * nothing: the backoff is at least that, and a wait past the deadline means no retry (the
 * upstream's answer goes to the client). */
static bool retry_if_allowed(gw_req_t *x, int err, int status, uint64_t retry_after_ms)
{
    const gw_retry_conf_t *rc = &x->route->retry;
    if (x->head_sent || x->attempt >= rc->attempts || x->body_mode != WEFT_HTTP_CLIENT_BODY_FIXED)
        return false;
    if (!rc->any_method && !idempotent(x->method)) return false;
    bool want = false;
    if (status) {
        want = (rc->on & GW_RETRY_5XX) && status >= 500 && status <= 599;
        for (unsigned i = 0; i < rc->nstatuses && !want; i++) want = rc->statuses[i] == status;
    } else if (err == WEFT_ECONNRESET) {
        want = rc->on & GW_RETRY_RESET;
    } else if (err == WEFT_ETIMEDOUT_HEAD || err == WEFT_ETIMEDOUT) {
        want = rc->on & GW_RETRY_TIMEOUT;
    } else if (err == WEFT_ETIMEDOUT_CONNECT || strcmp(err_kind(err), "connect") == 0) {
        want = rc->on & GW_RETRY_CONNECT;
    }
    weft_http_request_t *req = x->req;
    uint64_t now = uv_now(req->loop);
    if (!want || now + 1 >= x->deadline) return false;
    /* the route's deadline (or, with none, 30 s) bounds what an upstream may ask for */
    if (retry_after_ms && retry_after_ms >= (x->deadline == UINT64_MAX ? 30000 : x->deadline - now))
        return false;
    if (x->retry_active) { /* the try that just failed was a retry */
        x->retry_active = false;
        weft_retry_budget_retry_end(x->g->budget);
    }
    const char *why = status ? NULL : err_kind(err);
    /* A retry away from an instance whose breaker this failure (or an earlier one) left
     * open is not charged to the budget: there are at most as many as tries were in flight
     * to it when it opened (and its half-open trials), since the balancer sends it nothing
     * more, so they cannot grow into a storm; refused, they would fail requests the other
     * instances can serve (a kill -9 with more tries in flight to it than the budget's 3). */
    bool away = !status && x->inst_open;
    if (!away && !weft_retry_budget_try_retry(x->g->budget)) {
        record_error(x, "retry_budget_exhausted");
        gw_obs_retry(&x->obs, x->host, x->port, why, status, 0, false);
        return false;
    }
    x->retry_active = !away;
    x->attempt++;
    x->last_err = err;
    record_error(x, "retried");
    uint64_t wait = weft_backoff_full_jitter(25, 250, x->attempt - 1, next_rand(x->w));
    if (wait < retry_after_ms) wait = retry_after_ms;
    if (wait >= x->deadline - now) wait = 0;
    gw_obs_retry(&x->obs, x->host, x->port, why, status, wait, true);
    req->on_event = retry_event;
    if (weft_http_request_timer(req, wait ? wait : 1) != 0) {
        req->on_event = NULL;
        return false;
    }
    return true;
}
