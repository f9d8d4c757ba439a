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
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade) are not forwarded either way;
 * framing is each side's own (Content-Length or chunked, chosen again). Host is kept as the
 * client sent it (as Envoy does), except that an absolute-form target's host replaces it
 * (RFC 9110 7.2: the route matched on that host). Added upstream: X-Forwarded-For (the client's address
 * appended), X-Forwarded-Proto, X-Forwarded-Host, and X-Request-Id when the client sent
 * none (16 random hex digits).
 *
 * Errors, as JSON: no route 404; no passing instance 503; an upstream that refuses,
 * resets, or sends a malformed response 502; a timeout 504 (connect, head, body or the
 * route's deadline). After the response head went out, an upstream failure can only be
 * told by cutting the connection (weft_http_response_abort): the client sees a truncated
 * response, never a complete-looking one.
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

#include "gateway/gw_int.h"
#include "registry/catalog.h"
#include "weft/log.h"
#include "weft/weft.h"

#define GW_RETRY_MAX_ATTEMPTS 10
#define HDR_EXTRA             4 /* X-Forwarded-For, -Proto, -Host, X-Request-Id */

typedef struct gw_req_s {
    weft_gateway_t *g;
    gw_worker_t *w;
    weft_http_request_t *req;
    gw_table_t *table; /* held until the end */
    const gw_route_t *route;
    weft_http_client_call_t *call;
    char host[GW_HOST_MAX + 1];
    uint16_t port;
    bool head_sent;  /* the response head went to the client */
    bool req_paused; /* reading the request body waits for the client's on_drain */
    bool up_paused;  /* the upstream call waits for the request's on_drain */
    bool finished;   /* the request was finished (or released) */
    int status;      /* the upstream's, once its head came */
    bool breaker;    /* admitted by the route's breaker: its result is still to be recorded */
    /* retries */
    bool retrying;     /* the call was cancelled to be tried again (a retriable status) */
    bool in_budget;    /* counted as an active request by the retry budget */
    bool retry_active; /* this try is a retry, counted by the budget until it ends */
    unsigned attempt;  /* tries made before this one */
    unsigned ntried;   /* upstreams tried (keys), so that a retry goes elsewhere */
    uint64_t tried[GW_RETRY_MAX_ATTEMPTS + 1];
    uint64_t deadline; /* loop time (ms) when the route's timeout ends every try */
    int last_err;      /* the last try's error, for the answer when no try is left */
    char method[32];
    char *target; /* in the request's arena */
    const weft_http_header_t *hs;
    size_t nh;
    weft_http_client_body_t body_mode;
} gw_req_t;

static void start_try(gw_req_t *x);
static bool retry_if_allowed(gw_req_t *x, int err, int status);

/* The route's breaker learns how the request it admitted went (once). */
static void breaker_done(gw_req_t *x, bool ok)
{
    if (!x->breaker) return;
    x->breaker = false;
    uint64_t now = weft_now_ns(), start = x->req->start_ns;
    uint64_t ms = now > start ? (now - start) / 1000000 : 0;
    gw_policy_record(x->route->policy, uv_now(x->req->loop), ok, ms);
}

/* ---- metrics (handles cached per worker: a child lookup hashes its label values) ---- */

static gw_mslot_t *mslot(gw_req_t *x, int status)
{
    weft_gateway_t *g = x->g;
    if (!g->fam_requests) return NULL;
    const char *route = x->route ? x->route->name : "-";
    uint64_t h = (uint64_t)x->port * 7 + (unsigned)status;
    for (const char *p = route; *p; p++) h = h * 131 + (unsigned char)*p;
    for (const char *p = x->host; *p; p++) h = h * 131 + (unsigned char)*p;
    gw_mslot_t *s = &x->w->mslots[h % GW_METRIC_SLOTS];
    if (s->requests && s->port == x->port && s->status == status && strcmp(s->host, x->host) == 0 &&
        strcmp(s->route, route) == 0)
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
    size_t hl = strlen(x->host), rl = strlen(route);
    s->host[0] = s->route[0] = 0;
    if (hl < sizeof(s->host)) memcpy(s->host, x->host, hl + 1);
    if (rl < sizeof(s->route)) memcpy(s->route, route, rl + 1);
    return s;
}

/* One request answered with status: counted, and its time observed. */
static void record(gw_req_t *x, int status)
{
    gw_mslot_t *s = mslot(x, status);
    if (!s) return;
    weft_counter_inc(s->requests);
    uint64_t now = weft_now_ns(), start = x->req->start_ns;
    weft_histogram_observe(s->duration, now > start ? (double)(now - start) / 1e9 : 0);
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

/* The request is over for the gateway: the table goes back. x itself lives in the
 * request's arena, which the response's end frees: nothing touches x after that. */
static void finish(gw_req_t *x)
{
    x->finished = true;
    if (x->retry_active) weft_retry_budget_retry_end(x->g->budget);
    if (x->in_budget) weft_retry_budget_request_end(x->g->budget);
    x->retry_active = x->in_budget = false;
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
    record(x, status);
    breaker_done(x, status < 500);
    finish(x);
    weft_http_respond(req, status, "application/json", body, (size_t)n);
}

/* What a header is to the proxy. One switch on the length, then at most two
 * case-insensitive compares: every header of every request and response passes here. */
typedef enum {
    H_OTHER,
    H_HOP, /* hop-by-hop (RFC 9110 7.6.1): never forwarded */
    H_CONNECTION,
    H_CONTENT_LENGTH,
    H_CONTENT_TYPE,
    H_DATE,
    H_HOST,
    H_XFF,
    H_XFP,
    H_XFH,
    H_XRID,
} hclass_t;

static hclass_t hclass(weft_str_t n)
{
#define IS(lit) (strncasecmp(n.base, lit, n.len) == 0)
    switch (n.len) {
    case 2:
        return IS("te") ? H_HOP : H_OTHER;
    case 4:
        return IS("date") ? H_DATE : IS("host") ? H_HOST : H_OTHER;
    case 7:
        return IS("upgrade") || IS("trailer") ? H_HOP : H_OTHER;
    case 10:
        return IS("connection") ? H_CONNECTION : IS("keep-alive") ? H_HOP : H_OTHER;
    case 12:
        return IS("content-type") ? H_CONTENT_TYPE : IS("x-request-id") ? H_XRID : H_OTHER;
    case 14:
        return IS("content-length") ? H_CONTENT_LENGTH : H_OTHER;
    case 15:
        return IS("x-forwarded-for") ? H_XFF : H_OTHER;
    case 16:
        return IS("proxy-connection") ? H_HOP : IS("x-forwarded-host") ? H_XFH : H_OTHER;
    case 17:
        return IS("transfer-encoding") ? H_HOP : IS("x-forwarded-proto") ? H_XFP : H_OTHER;
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

/* ---- the response, upstream -> client ---- */

static void up_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    gw_req_t *x = arg;
    if (x->finished) return;
    if (retry_if_allowed(x, 0, status)) {
        x->retrying = true;
        weft_http_client_cancel(call); /* up_done starts the next try */
        return;
    }
    weft_http_request_t *req = x->req;
    int64_t length = -1;
    char ctype[512] = "";
    weft_str_t conn = {NULL, 0};
    for (size_t i = 0; i < n; i++)
        if (hclass(h[i].name) == H_CONNECTION) conn = h[i].value;
    for (size_t i = 0; i < n; i++) {
        weft_str_t nm = h[i].name, v = h[i].value;
        hclass_t c = hclass(nm);
        if (c == H_CONTENT_LENGTH) {
            char num[24];
            if (v.len && v.len < sizeof(num)) {
                memcpy(num, v.base, v.len);
                num[v.len] = 0;
                length = strtoll(num, NULL, 10);
            }
            continue;
        }
        if (c == H_CONTENT_TYPE) {
            if (v.len < sizeof(ctype)) {
                memcpy(ctype, v.base, v.len);
                ctype[v.len] = 0;
            }
            continue;
        }
        if (c == H_HOP || c == H_CONNECTION || c == H_DATE ||
            (conn.len && named_by_connection(conn, nm.base, nm.len)))
            continue;
        char *name = weft_http_request_alloc(req, nm.len + 1 + v.len + 1);
        if (!name) break;
        memcpy(name, nm.base, nm.len);
        name[nm.len] = 0;
        char *value = name + nm.len + 1;
        memcpy(value, v.base, v.len);
        value[v.len] = 0;
        weft_http_response_header(req, name, value); /* a bad one is dropped */
    }
    x->status = status;
    if (status == 204 || status == 304) length = 0;
    if (weft_http_response_start(req, status, ctype[0] ? ctype : NULL, length) == 0)
        x->head_sent = true;
}

static void up_body(weft_http_client_call_t *call, const char *data, size_t len, void *arg)
{
    gw_req_t *x = arg;
    if (x->finished || !x->head_sent) return;
    int rc = weft_http_response_write(x->req, data, len);
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
    if (x->retrying) {       /* cancelled by up_head, which decided on the next try */
        x->retrying = false;
        return;
    }
    if (x->retry_active) { /* this try was a retry: it ends */
        x->retry_active = false;
        weft_retry_budget_retry_end(x->g->budget);
    }
    if (err != 0 && !x->head_sent && retry_if_allowed(x, err, 0)) return;
    weft_http_request_t *req = x->req;
    weft_gateway_t *g = x->g;
    if (err == 0) {
        record(x, x->status);
        breaker_done(x, x->status < 500);
        finish(x);
        weft_http_response_end(req);
        return;
    }
    record_error(x, err_kind(err));
    bool timeout = err == WEFT_ETIMEDOUT || err == WEFT_ETIMEDOUT_CONNECT ||
                   err == WEFT_ETIMEDOUT_HEAD || err == WEFT_ETIMEDOUT_BODY;
    atomic_fetch_add_explicit(timeout ? &g->timeouts : &g->bad_gateway, 1, memory_order_relaxed);
    weft_debug("gateway", "upstream failed", "route=%s upstream=%s:%u err=%s",
               x->route ? x->route->name : "-", x->host, x->port, weft_strerror(err));
    if (x->head_sent) {
        record(x, x->status);
        breaker_done(x, false);
        finish(x);
        weft_http_response_abort(req);
        return;
    }
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
    x->breaker = false; /* the client went away: nothing learnt about the upstream */
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

/* An upstream the route may send to: a static target, or a passing instance of its service
 * (strings of the route, or of the catalog snapshot while its read section lasts). */
typedef struct cand_s {
    const char *host;
    uint16_t port;
    unsigned weight;
} cand_t;

#define MAX_CANDS 256

static uint64_t host_key(const char *host, uint16_t port)
{
    uint64_t h = port;
    for (const char *p = host; *p; p++) h = h * 131 + (unsigned char)*p;
    return h;
}

static bool tried(const gw_req_t *x, const cand_t *c)
{
    uint64_t k = host_key(c->host, c->port);
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

/* Chooses among c[0..n) by the route's balancer, avoiding upstreams this request tried
 * already while others remain (a retry goes elsewhere), and copies it into x. */
static void choose(gw_req_t *x, const cand_t *c, unsigned n)
{
    uint64_t total = 0;
    unsigned fresh = 0;
    for (unsigned i = 0; i < n; i++) {
        total += c[i].weight;
        if (!tried(x, &c[i])) fresh++;
    }
    bool avoid = fresh > 0 && x->ntried > 0;
    unsigned pick = 0;
    switch (x->route->lb) {
    case GW_LB_ROUND_ROBIN: { /* weighted: round robin over the weight units */
        uint64_t k = x->w->rr++;
        for (uint64_t step = 0; step < total; step++) {
            pick = at_weight(c, n, (k + step) % total);
            if (!avoid || !tried(x, &c[pick])) break;
        }
        break;
    }
    case GW_LB_RANDOM:
        for (unsigned t = 0; t < 4 * n + 4; t++) {
            pick = at_weight(c, n, next_rand(x->w) % total);
            if (!avoid || !tried(x, &c[pick])) break;
        }
        break;
    case GW_LB_LEAST_REQUEST: { /* power of two choices, by this worker's requests in flight */
        unsigned a = 0, b = 0;
        for (unsigned t = 0; t < 4 * n + 4; t++) {
            a = at_weight(c, n, next_rand(x->w) % total);
            if (!avoid || !tried(x, &c[a])) break;
        }
        for (unsigned t = 0; t < 4 * n + 4; t++) {
            b = at_weight(c, n, next_rand(x->w) % total);
            if (b != a && (!avoid || !tried(x, &c[b]))) break;
        }
        pick = a == b || in_flight(x, &c[a]) <= in_flight(x, &c[b]) ? a : b;
        if (avoid && tried(x, &c[pick])) pick = a;
        break;
    }
    }
    /* memcpy, not snprintf: this runs for every request (snprintf cost about 600
     * instructions here, bench/gateway's part d) */
    size_t hl = strnlen(c[pick].host, sizeof(x->host) - 1);
    memcpy(x->host, c[pick].host, hl);
    x->host[hl] = 0;
    x->port = c[pick].port;
}

/* Chooses the upstream of this try: a static target, or a passing instance of the route's
 * service from the catalog's current snapshot. Returns false when there is none. */
static bool pick(gw_req_t *x)
{
    const gw_route_t *r = x->route;
    cand_t c[MAX_CANDS];
    unsigned n = 0;
    if (!r->service) {
        for (unsigned i = 0; i < r->ntargets && n < MAX_CANDS; i++)
            c[n++] = (cand_t){r->targets[i].host, r->targets[i].port, r->targets[i].weight};
        if (n) choose(x, c, n);
        return n > 0;
    }
    weft_registry_t *reg = x->g->reg;
    if (!reg) return false;
    weft_snap_read_lock();
    const reg_snap_t *s = weft_snap_get(weft_registry_cell(reg));
    const reg_svc_t *v = s ? weft__snap_service(s, r->service, strlen(r->service)) : NULL;
    for (uint32_t i = 0; v && i < v->n && n < MAX_CANDS; i++) {
        const reg_inst_t *in = v->inst[i];
        if (in->health != WEFT_HEALTH_PASSING || in->port == 0) continue;
        int w = in->w_passing > 0 ? in->w_passing : 1;
        c[n++] = (cand_t){*in->address ? in->address : s->node->address, in->port, (unsigned)w};
    }
    if (n) choose(x, c, n);
    weft_snap_read_unlock();
    return n > 0;
}

/* ---- policies: the rate limit, then the breaker ---- */

/* The request's key for the route's rate limit into *len (a view of the request's, or of
 * its peer's, strings). */
static const char *limit_key(gw_req_t *x, size_t *len)
{
    const gw_ratelimit_conf_t *c = &x->route->rate_limit;
    if (c->key == GW_RL_KEY_CLIENT_IP) {
        const char *peer = weft_http_request_peer(x->req);
        const char *colon = strrchr(peer, ':');
        *len = colon ? (size_t)(colon - peer) : strlen(peer);
        return peer;
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
    uint64_t w = c->algorithm == GW_RL_TOKEN_BUCKET
                     ? (uint64_t)ceil((double)c->burst / (c->rate > 0 ? c->rate : 1))
                     : (c->window_ms + 999) / 1000;
    char v[320];
    snprintf(v, sizeof(v), "%" PRIu64, (res->retry_after_ms + 999) / 1000);
    weft_http_response_header(req, "Retry-After", v);
    snprintf(v, sizeof(v), "\"%s\";q=%" PRIu64 ";w=%" PRIu64, x->route->name, res->limit,
             w ? w : 1);
    weft_http_response_header(req, "RateLimit-Policy", v);
    snprintf(v, sizeof(v), "\"%s\";r=%" PRIu64 ";t=%" PRIu64, x->route->name, res->remaining,
             res->reset_s);
    weft_http_response_header(req, "RateLimit", v);
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
    if (gw_policy_limit(p, key, len, uv_now(x->req->loop), &res)) return true;
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
        if (!gw_policy_allow(p, now, &wait, &open)) {
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
    weft_str_t conn = weft_http_request_header(req, "Connection");
    weft_str_t xff = {NULL, 0}, rid = {NULL, 0};
    size_t k = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        weft_str_t nm = req->headers[i].name;
        hclass_t c = hclass(nm);
        if (c == H_HOP || c == H_CONNECTION || c == H_CONTENT_LENGTH || c == H_XFP || c == H_XFH ||
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
    const char *peer = weft_http_request_peer(req);
    size_t pl = strlen(peer);
    const char *colon = strrchr(peer, ':');
    if (colon) pl = (size_t)(colon - peer);
    if (pl >= 2 && peer[0] == '[') peer++, pl -= 2;
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
        static const char hex[] = "0123456789abcdef";
        uint64_t v = next_rand(x->w);
        for (int i = 15; i >= 0; i--, v >>= 4) id[i] = hex[v & 15];
        id[16] = 0;
        out[k++] = (weft_http_header_t){{"X-Request-Id", 12}, {id, 16}};
    }
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
    *x = (gw_req_t){.g = g, .w = w, .req = req};
    weft_snap_read_lock();
    gw_table_t *t = weft_snap_get(&g->table);
    x->table = t ? weft_snap_ref(t) : NULL;
    weft_snap_read_unlock();
    x->route = x->table ? gw_table_match(x->table, req) : NULL;
    if (!x->route) {
        atomic_fetch_add_explicit(&g->no_route, 1, memory_order_relaxed);
        fail(x, 404, "no route", NULL);
        return;
    }
    if (!within_limit(x)) return;
    bool have = pick(x);
    if (!have) {
        atomic_fetch_add_explicit(&g->no_upstream, 1, memory_order_relaxed);
        record_error(x, "no_upstream");
        char detail[300];
        snprintf(detail, sizeof(detail), "no passing instance of service %s",
                 x->route->service ? x->route->service : "-");
        fail(x, 503, "no healthy upstream", detail);
        return;
    }
    if (!breaker_admits(x)) return;
    /* the path sent upstream is the request's (or the rewrite) with '/', '?' and a NUL at
     * most: a target at the listener's own limit (http.max_target_size) goes through */
    const char *rw = x->route->rewrite;
    size_t tcap = (rw ? strlen(rw) : req->path.len) + req->query.len + 3;
    char *target = weft_http_request_alloc(req, tcap);
    if (!target || gw_upstream_target(x->route, req, target, tcap) != 0) {
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
    weft_str_t te = weft_http_request_header(req, "Transfer-Encoding");
    if (te.len)
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

static const weft_http_client_cbs_t up_cbs = {
    .on_head = up_head, .on_body = up_body, .on_done = up_done, .on_drain = up_drain};

/* One try at the upstream in x->host:port, within what is left of the route's timeout (and
 * the retry's per-try timeout). */
static void start_try(gw_req_t *x)
{
    weft_http_request_t *req = x->req;
    if (x->ntried < sizeof(x->tried) / sizeof(x->tried[0]))
        x->tried[x->ntried++] = host_key(x->host, x->port);
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
                                .timeout_ms = per && (left == 0 || per < left) ? per : left};
    if (x->body_mode == WEFT_HTTP_CLIENT_BODY_LENGTH) r.content_length = req->content_length;
    int rc = weft_http_client_request(x->w->client, &r, &up_cbs, x, &x->call);
    if (rc != 0) {
        atomic_fetch_add_explicit(&x->g->bad_gateway, 1, memory_order_relaxed);
        fail(x, rc == WEFT_ELIMIT ? 503 : 502, "cannot reach the upstream", weft_strerror(rc));
    }
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
    if (!pick(x)) {
        fail(x, 503, "no healthy upstream", "no passing instance left to retry on");
        return;
    }
    start_try(x);
}

/* After a failed try (err), or a response head with a status the route retries on: when
 * the route allows another try (attempts left, an idempotent method or `methods: any`, no
 * streamed body to replay, time left before its timeout) and the retry budget has room,
 * the next try is set for after a full-jitter backoff (25 ms doubling, at most 250 ms) and
 * true returned; else false, and the caller answers with what it has. */
static bool retry_if_allowed(gw_req_t *x, int err, int status)
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
    if (x->retry_active) { /* the try that just failed was a retry */
        x->retry_active = false;
        weft_retry_budget_retry_end(x->g->budget);
    }
    if (!weft_retry_budget_try_retry(x->g->budget)) {
        record_error(x, "retry_budget_exhausted");
        return false;
    }
    x->retry_active = true;
    x->attempt++;
    x->last_err = err;
    record_error(x, "retried");
    uint64_t wait = weft_backoff_full_jitter(25, 250, x->attempt - 1, next_rand(x->w));
    if (wait >= x->deadline - now) wait = 0;
    req->on_event = retry_event;
    if (weft_http_request_timer(req, wait ? wait : 1) != 0) {
        req->on_event = NULL;
        return false;
    }
    return true;
}
