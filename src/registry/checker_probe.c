/*
 * checker_probe.c - one run of a check: an HTTP call or a TCP connect, and its output
 * (see checker_int.h; the semantics are checker.h's).
 *
 * HTTP. A call on the checker's client (weft/client.h: keep-alive pools per host:port), with
 * the check's timeout as the whole exchange's deadline and as each phase's (connect, head,
 * body). The status code decides the result as soon as the head is in (2xx passing, 429
 * warning, anything else critical); an error before the head (refused, reset, a timeout, a
 * malformed answer) is critical. As Consul does, an error after the head (the body cut
 * short, too slow) does not change what the status said. The body is read to its end so
 * the connection can go back to the pool, but only its first bytes are kept, and only when
 * the result will change the status (weft__check_would_change, asked at the head): a
 * passing check that stays passing copies nothing and allocates nothing. A body longer than
 * BODY_READ_MAX ends the call (the connection is closed): a health endpoint that streams
 * forever costs one cut, not a timeout's worth of reading.
 *
 * TCP. A probe of its own (uv_tcp_t, uv_connect_t, a uv_timer_t for the timeout and, for a
 * name, a uv_getaddrinfo_t): the addresses are tried in the order the lookup gives them
 * until one accepts, all within the one timeout (as Go's net.DialTimeout does for Consul);
 * the connection is closed at once. The probe's memory outlives its report: it is freed
 * when its last handle is closed and its lookup has called back (`pending` counts them), so
 * a timeout that fires mid-connect, or a stop, just closes what is open.
 *
 * Output (checker.h): "HTTP GET <url>: 200 OK Output: <body>", "HTTP GET <url>: <error>",
 * "TCP connect <target>: Success", "TCP connect <target>: <error>", at most
 * WEFT__CHECK_OUTPUT_MAX bytes with the NUL, and always valid UTF-8, since the owner keeps
 * outputs in JSON: every piece (the URL too: a request target may hold any byte above 0x7F)
 * is copied through a UTF-8 check that replaces what is not, NUL bytes included, with
 * U+FFFD, and that never cuts a character in two. An output is written only when the
 * status changes; a run that changes nothing writes none.
 *
 * Threads: the checker's only.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "registry/checker_int.h"
#include "weft/http.h"

#define BODY_KEEP     (WEFT__CHECK_OUTPUT_MAX - 1) /* body bytes kept for the output */
#define BODY_READ_MAX (64 * 1024)                  /* beyond this the call is cut */

static weft_health_t classify(int status)
{
    if (status >= 200 && status <= 299) return WEFT_HEALTH_PASSING;
    if (status == 429) return WEFT_HEALTH_WARNING;
    return WEFT_HEALTH_CRITICAL;
}

static bool is_timeout(int err)
{
    return err == WEFT_ETIMEDOUT || err == WEFT_ETIMEDOUT_CONNECT || err == WEFT_ETIMEDOUT_HEAD ||
           err == WEFT_ETIMEDOUT_BODY || err == UV_ETIMEDOUT;
}

/* Appends the n bytes at s to out (len bytes used of cap, cap >= 1), as valid UTF-8:
 * well-formed sequences are copied, every other byte (and NUL) becomes U+FFFD; stops before
 * a character that would not fit. Keeps out NUL-terminated; returns the new length. */
static size_t put_utf8(char *out, size_t len, size_t cap, const unsigned char *s, size_t n)
{
    static const char repl[] = "\xEF\xBF\xBD";
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        size_t w = 0; /* the length of a well-formed sequence at i, or 0 */
        if (b >= 0x01 && b <= 0x7F) {
            w = 1;
        } else if (b >= 0xC2 && b <= 0xF4) {
            size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range (RFC 3629) */
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
            if (i + need <= n && s[i + 1] >= lo && s[i + 1] <= hi) {
                w = need;
                for (size_t j = 2; j < need; j++)
                    if (s[i + j] < 0x80 || s[i + j] > 0xBF) w = 0;
            }
        }
        const char *from = w ? (const char *)s + i : repl;
        size_t flen = w ? w : 3;
        if (len + flen >= cap) break;
        memcpy(out + len, from, flen);
        len += flen;
        i += w ? w : 1;
    }
    out[len] = 0;
    return len;
}

/* An output being written: every piece goes through put_utf8, the URL and target included
 * (a request target may hold bytes above 0x7F that are not UTF-8). */
typedef struct output_s {
    char s[WEFT__CHECK_OUTPUT_MAX];
    size_t len;
} output_t;

static void out_init(output_t *o)
{
    o->len = 0;
    o->s[0] = 0;
}

static void out_bytes(output_t *o, const void *p, size_t n)
{
    o->len = put_utf8(o->s, o->len, sizeof(o->s), p, n);
}

__attribute__((format(printf, 2, 3))) static void out_printf(output_t *o, const char *fmt, ...)
{
    char tmp[WEFT__CHECK_OUTPUT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    out_bytes(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ------------------------------------------------------------------------------------ */
/* HTTP                                                                                 */

static void http_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                      size_t n, void *arg)
{
    weft__check_t *k = arg;
    k->http_status = status;
    k->capture = weft__check_would_change(k, classify(status));
}

static void http_body(weft_http_client_call_t *call, const char *data, size_t len, void *arg)
{
    weft__check_t *k = arg;
    k->body_seen += len;
    if (k->capture && k->out_len < BODY_KEEP) {
        if (!k->out) k->out = malloc(BODY_KEEP);
        if (k->out) {
            size_t n = len < BODY_KEEP - k->out_len ? len : BODY_KEEP - k->out_len;
            memcpy(k->out + k->out_len, data, n);
            k->out_len += n;
        }
    }
    /* on_done runs inside cancel, and may free k: nothing after it */
    if (k->body_seen > BODY_READ_MAX) weft_http_client_cancel(call);
}

static void http_done(weft_http_client_call_t *call, int err, void *arg)
{
    weft__check_t *k = arg;
    k->call = NULL;
    weft_health_t result = k->http_status ? classify(k->http_status) : WEFT_HEALTH_CRITICAL;
    output_t out; /* written only on a change: not zeroed for every run */
    const char *output = NULL;
    if (weft__check_would_change(k, result)) {
        out_init(&out);
        if (k->http_status) {
            out_printf(&out, "HTTP %s %s: %d %s Output: ", k->method, k->target, k->http_status,
                       weft_http_status_text(k->http_status));
            if (k->out) out_bytes(&out, k->out, k->out_len);
        } else if (is_timeout(err)) {
            out_printf(&out, "HTTP %s %s: timed out after %" PRIu64 " ms (%s)", k->method,
                       k->target, k->timeout_ms, weft_strerror(err));
        } else {
            out_printf(&out, "HTTP %s %s: %s", k->method, k->target, weft_strerror(err));
        }
        output = out.s;
    }
    weft__check_done(k, result, output);
}

static void http_start(weft_checker_t *c, weft__check_t *k)
{
    static const weft_http_client_cbs_t cbs = {http_head, http_body, http_done, NULL, NULL};
    weft_http_client_req_t r = {
        .method = k->method,
        .host = k->host,
        .port = k->port,
        .target = k->path,
        .headers = k->headers,
        .nheaders = k->nheaders,
        .body_mode = WEFT_HTTP_CLIENT_BODY_FIXED,
        .body = k->body,
        .body_len = k->body_len,
        .timeout_ms = k->timeout_ms,
        .connect_timeout_ms = k->timeout_ms,
        .head_timeout_ms = k->timeout_ms,
        .body_timeout_ms = k->timeout_ms,
    };
    int err = weft_http_client_request(c->client, &r, &cbs, k, &k->call);
    if (err) {
        k->call = NULL;
        http_done(NULL, err, k); /* no callback will run: the run ends here */
    }
}

/* ------------------------------------------------------------------------------------ */
/* TCP                                                                                  */

typedef struct probe_s {
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_getaddrinfo_t gai;
    uv_loop_t *loop;
    weft__check_t *k;          /* NULL once reported or abandoned */
    const struct sockaddr *sa; /* numeric: the one address, until tried */
    struct addrinfo *ai;       /* a name: what the lookup gave */
    struct addrinfo *next;     /* the next of them to try */
    unsigned pending;          /* open handles and the lookup, if it has not called back */
    bool tcp_open;             /* tcp is initialised and not yet closing */
    bool resolving;
    bool done;
    int last_err; /* the last connect's error */
} probe_t;

static void probe_maybe_free(probe_t *p)
{
    if (p->pending) return;
    if (p->ai) uv_freeaddrinfo(p->ai);
    free(p);
}

static void on_probe_handle_closed(uv_handle_t *h)
{
    probe_t *p = h->data;
    WEFT_ASSERT(p->pending > 0);
    p->pending--;
    probe_maybe_free(p);
}

static void try_next(probe_t *p);

/* The tcp handle of a failed connect is closed: on to the next address. */
static void on_tcp_closed(uv_handle_t *h)
{
    probe_t *p = h->data;
    WEFT_ASSERT(p->pending > 0);
    p->pending--;
    if (!p->done)
        try_next(p);
    else
        probe_maybe_free(p);
}

static void close_tcp(probe_t *p)
{
    if (!p->tcp_open) return;
    p->tcp_open = false;
    uv_close((uv_handle_t *)&p->tcp, on_tcp_closed);
}

/* The result: err 0 (connected) or what failed. Closes what is open; reports unless the
 * run was abandoned. */
static void probe_finish(probe_t *p, int err)
{
    if (p->done) return;
    p->done = true;
    uv_close((uv_handle_t *)&p->timer, on_probe_handle_closed);
    close_tcp(p);
    if (p->resolving) uv_cancel((uv_req_t *)&p->gai); /* may be too late: then it completes */
    weft__check_t *k = p->k;
    p->k = NULL;
    if (!k) return;
    k->probe = NULL;
    weft_health_t result = err ? WEFT_HEALTH_CRITICAL : WEFT_HEALTH_PASSING;
    output_t out; /* written only on a change: not zeroed for every run */
    const char *output = NULL;
    if (weft__check_would_change(k, result)) {
        out_init(&out);
        if (!err)
            out_printf(&out, "TCP connect %s: Success", k->target);
        else if (err == UV_ETIMEDOUT)
            out_printf(&out, "TCP connect %s: timed out after %" PRIu64 " ms", k->target,
                       k->timeout_ms);
        else
            out_printf(&out, "TCP connect %s: %s", k->target,
                       err == WEFT_ENOMEM ? "out of memory" : uv_strerror(err));
        output = out.s;
    }
    weft__check_done(k, result, output);
}

static void on_connect(uv_connect_t *req, int status)
{
    probe_t *p = req->data;
    if (p->done) return; /* closed by the timeout or a stop: the close callback follows */
    if (status == 0) {
        probe_finish(p, 0);
        return;
    }
    p->last_err = status;
    close_tcp(p); /* on_tcp_closed tries the next address */
}

/* Connects to the next address, or finishes with the last error when none is left. */
static void try_next(probe_t *p)
{
    for (;;) {
        const struct sockaddr *sa = NULL;
        if (p->sa) {
            sa = p->sa;
            p->sa = NULL;
        } else {
            while (p->next && p->next->ai_family != AF_INET && p->next->ai_family != AF_INET6)
                p->next = p->next->ai_next;
            if (p->next) {
                sa = p->next->ai_addr;
                p->next = p->next->ai_next;
            }
        }
        if (!sa) {
            probe_finish(p, p->last_err ? p->last_err : UV_EAI_NONAME);
            return;
        }
        int err = uv_tcp_init(p->loop, &p->tcp);
        if (err) {
            p->last_err = err;
            continue;
        }
        p->tcp.data = p;
        p->tcp_open = true;
        p->pending++;
        p->conn.data = p;
        if ((err = uv_tcp_connect(&p->conn, &p->tcp, sa, on_connect)) == 0) return;
        p->last_err = err;
        close_tcp(p); /* on_tcp_closed comes back here */
        return;
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    probe_t *p = req->data;
    WEFT_ASSERT(p->pending > 0);
    p->pending--;
    p->resolving = false;
    if (p->done) { /* timed out or abandoned meanwhile */
        if (res) uv_freeaddrinfo(res);
        probe_maybe_free(p);
        return;
    }
    if (status < 0) {
        probe_finish(p, status);
        return;
    }
    p->ai = p->next = res;
    try_next(p);
}

static void on_probe_timeout(uv_timer_t *t)
{
    probe_finish(t->data, UV_ETIMEDOUT);
}

static void tcp_start(weft_checker_t *c, weft__check_t *k)
{
    probe_t *p = calloc(1, sizeof(*p));
    if (!p) {
        output_t out;
        out_init(&out);
        out_printf(&out, "TCP connect %s: out of memory", k->target);
        weft__check_done(k, WEFT_HEALTH_CRITICAL, out.s);
        return;
    }
    p->loop = &c->loop;
    p->k = k;
    k->probe = p;
    uv_timer_init(&c->loop, &p->timer); /* fills the struct in: cannot fail */
    p->timer.data = p;
    p->pending = 1;
    uv_timer_start(&p->timer, on_probe_timeout, k->timeout_ms, 0);
    if (k->numeric) {
        p->sa = (const struct sockaddr *)&k->addr;
        try_next(p);
        return;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)k->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    p->gai.data = p;
    int err = uv_getaddrinfo(&c->loop, &p->gai, on_resolved, k->host, port, &hints);
    if (err) {
        probe_finish(p, err);
        return;
    }
    p->pending++;
    p->resolving = true;
}

/* ------------------------------------------------------------------------------------ */

void weft__probe_start(weft_checker_t *c, weft__check_t *k)
{
    WEFT_ASSERT(k->state == WEFT__CHECK_RUNNING);
    k->http_status = 0;
    k->capture = false;
    k->out_len = 0;
    k->body_seen = 0;
    if (k->kind == WEFT_CHECK_HTTP)
        http_start(c, k);
    else
        tcp_start(c, k);
}

void weft__probe_abandon(weft__check_t *k)
{
    probe_t *p = k->probe;
    if (!p) return;
    p->k = NULL;
    k->probe = NULL;
    probe_finish(p, 0);
}
