/*
 * test_client.c - the HTTP client against weft's own server (on a worker thread) and
 * against a scripted raw server (a thread with plain sockets that answers exactly the bytes
 * a test gives it, or closes at a chosen moment): framings, keep-alive reuse, HEAD, 1xx,
 * 204/304, read-until-close, garbage, limits, timeouts, the keep-alive race retry, idle
 * connections closed by either side, streamed request bodies with backpressure, pause and
 * resume of responses, cancel and close from callbacks, the GET helper; the head and body
 * timeouts against a server that stalls, failover across a name's addresses (through the
 * client's resolver hook, since /etc/hosts here gives localhost one address), the per-host
 * counters, and response heads handed over as views into the read buffer. Every test runs
 * its loop until the client is closed and then checks that the loop closes with nothing
 * open.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "http/client_int.h" /* the resolver hook, and the read buffer on_head points into */
#include "weft/client.h"
#include "weft/http.h"
#include "weft/workers.h"

/* ---- weft's server on a worker thread ---- */

static weft_http_server_t *srv;
static weft_workers_t *workers;
static uint16_t port;
static char big[256 * 1024];

static void h_text(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "text/plain", "hello", 5);
}

static void h_chunked(weft_http_request_t *req, void *arg)
{
    weft_http_response_start(req, 201, "text/plain", -1);
    weft_http_response_write(req, "ab", 2);
    weft_http_response_write(req, "cde", 3);
    weft_http_response_end(req);
}

static void h_echo(weft_http_request_t *req, void *arg)
{
    weft_str_t x = weft_http_request_header(req, "x-test");
    weft_str_t te = weft_http_request_header(req, "transfer-encoding");
    char *out = weft_http_request_alloc(req, req->body.len + 256);
    int n = snprintf(out, req->body.len + 256, "%.*s|%s|%.*s", (int)x.len, x.base ? x.base : "",
                     te.len ? "chunked" : "length", (int)req->body.len, req->body.base);
    weft_http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void h_big(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "application/octet-stream", big, sizeof(big));
}

static void release_on_abort(weft_http_request_t *req)
{
    weft_http_response_end(req);
}

static void h_fail(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 503, "text/plain", "down", 4);
}

static void h_never(weft_http_request_t *req, void *arg)
{
    /* answers only when the connection goes away */
    req->on_abort = release_on_abort;
}

static void attach(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_attach(srv, loop, i);
}

static void stop(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_shutdown(srv, i, NULL, NULL);
}

static int group_setup(void **state)
{
    for (size_t i = 0; i < sizeof(big); i++) big[i] = (char)('a' + i % 23);
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.shutdown_timeout_ms = 500;
    assert_int_equal(weft_http_server_new(&o, 1, &srv), 0);
    weft_http_route_t r = {.handler = h_text};
    weft_http_server_route(srv, "GET", "/text", &r);
    r.handler = h_chunked;
    weft_http_server_route(srv, "GET", "/chunked", &r);
    r.handler = h_echo;
    weft_http_server_route(srv, "POST", "/echo", &r);
    weft_http_server_route(srv, "PUT", "/echo", &r);
    r.handler = h_big;
    weft_http_server_route(srv, "GET", "/big", &r);
    r.handler = h_never;
    weft_http_server_route(srv, "GET", "/never", &r);
    r.handler = h_fail;
    weft_http_server_route(srv, "GET", "/fail", &r);
    assert_int_equal(weft_http_server_bind(srv, NULL, 0), 0);
    port = weft_http_server_port(srv);
    assert_int_equal(weft_workers_new(1, &workers), 0);
    weft_workers_start(workers, attach, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    weft_workers_stop(workers, stop, NULL);
    weft_workers_join(workers);
    weft_workers_free(workers);
    weft_http_server_free(srv);
    return 0;
}

/* ---- a scripted raw server ---- */

#define R_CLOSE     "\001close"     /* close now, without reading */
#define R_READCLOSE "\001readclose" /* read a request, close without answering */
#define R_HOLD      "\001hold"      /* read a request, never answer; close on the client's EOF */
#define R_STEPS     8               /* per connection; a NULL step waits for EOF and closes */

typedef struct raw_s {
    int fd;
    uint16_t port;
    int nconns;
    const char *script[8][R_STEPS]; /* per connection, in order of accept */
    int accepted, requests;         /* read by the test after raw_join */
    char last[2048];                /* the last request head */
    pthread_t th;
} raw_t;

static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Reads one request (head, and a Content-Length body) from fd; buf keeps leftovers. */
static bool read_request(raw_t *r, int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        char *end = memmem(buf, *len, "\r\n\r\n", 4);
        if (end) {
            size_t hl = (size_t)(end + 4 - buf);
            size_t keep = hl < sizeof(r->last) ? hl : sizeof(r->last) - 1;
            memcpy(r->last, buf, keep);
            r->last[keep] = 0;
            const char *cl = strcasestr(r->last, "\r\ncontent-length:");
            size_t total = hl + (cl ? strtoul(cl + 17, NULL, 10) : 0);
            if (*len >= total) {
                memmove(buf, buf + total, *len - total);
                *len -= total;
                r->requests++;
                return true;
            }
        }
        if (*len == cap || !readable(fd, 5000)) return false;
        ssize_t n = recv(fd, buf + *len, cap - *len, 0);
        if (n <= 0) return false;
        *len += (size_t)n;
    }
}

static void wait_eof(int fd)
{
    char b[4096];
    while (readable(fd, 10000) && recv(fd, b, sizeof(b), 0) > 0) continue;
}

static void *raw_main(void *arg)
{
    raw_t *r = arg;
    for (int i = 0; i < r->nconns; i++) {
        if (!readable(r->fd, 5000)) break;
        int fd = accept(r->fd, NULL, NULL);
        if (fd < 0) break;
        r->accepted++;
        char buf[8192];
        size_t len = 0;
        for (int s = 0; s < R_STEPS; s++) {
            const char *step = r->script[i][s];
            if (!step) {
                wait_eof(fd);
                break;
            }
            if (strcmp(step, R_CLOSE) == 0) break;
            if (!read_request(r, fd, buf, sizeof(buf), &len)) break;
            if (strcmp(step, R_READCLOSE) == 0) break;
            if (strcmp(step, R_HOLD) == 0) {
                wait_eof(fd);
                break;
            }
            size_t off = 0, n = strlen(step);
            while (off < n) {
                ssize_t w = send(fd, step + off, n - off, MSG_NOSIGNAL);
                if (w <= 0) break;
                off += (size_t)w;
            }
        }
        close(fd);
    }
    return NULL;
}

static int listen_local(int backlog, uint16_t *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *p = ntohs(a.sin_port);
    return fd;
}

static void raw_start(raw_t *r)
{
    r->fd = listen_local(16, &r->port);
    assert_int_equal(pthread_create(&r->th, NULL, raw_main, r), 0);
}

static void raw_join(raw_t *r)
{
    pthread_join(r->th, NULL);
    close(r->fd);
}

/* A port where nothing listens (refused at once). */
static uint16_t dead_port(void)
{
    uint16_t p;
    int fd = listen_local(1, &p);
    close(fd);
    return p;
}

/* ---- client side helpers ---- */

typedef struct {
    int status, err, done, heads, drains;
    int bodies_while_paused, pause_at; /* pause_at: pause after this many on_body calls */
    int nbodies;
    bool paused, cancel_in_head;
    char body[300 * 1024];
    size_t blen;
    char header[128];
} result_t;

static void on_head(weft_http_client_call_t *c, int status, const weft_http_header_t *h, size_t n,
                    void *arg)
{
    result_t *r = arg;
    r->status = status;
    r->heads++;
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 12 && strncasecmp(h[i].name.base, "content-type", 12) == 0)
            snprintf(r->header, sizeof(r->header), "%.*s", (int)h[i].value.len, h[i].value.base);
    if (r->cancel_in_head) weft_http_client_cancel(c);
}

static void on_body(weft_http_client_call_t *c, const char *d, size_t n, void *arg)
{
    result_t *r = arg;
    if (r->paused) r->bodies_while_paused++;
    assert_true(r->blen + n <= sizeof(r->body));
    memcpy(r->body + r->blen, d, n);
    r->blen += n;
    if (++r->nbodies == r->pause_at) {
        r->paused = true;
        weft_http_client_pause(c);
    }
}

static void on_done(weft_http_client_call_t *c, int err, void *arg)
{
    result_t *r = arg;
    r->err = err;
    r->done++;
}

static void on_drain(weft_http_client_call_t *c, void *arg)
{
    ((result_t *)arg)->drains++;
}

static const weft_http_client_cbs_t cbs = {on_head, on_body, on_done, on_drain, NULL};

static result_t *new_result(void)
{
    result_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

static void run_until(uv_loop_t *loop, int *flag, int want)
{
    for (int i = 0; i < 5000 && *flag < want; i++) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(*flag, want);
}

static int closed;
static void on_closed(void *arg)
{
    closed++;
}

static void close_client(uv_loop_t *loop, weft_http_client_t *c)
{
    closed = 0;
    weft_http_client_close(c, on_closed, NULL);
    run_until(loop, &closed, 1);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A loop and a client on it with options o (NULL: the defaults). */
static weft_http_client_t *client_on(uv_loop_t *loop, const weft_http_client_options_t *o)
{
    assert_int_equal(uv_loop_init(loop), 0);
    weft_http_client_t *c = NULL;
    assert_int_equal(weft_http_client_new(loop, o, &c), 0);
    return c;
}

/* A scripted raw server, not started yet; the test fills nconns and script. */
static raw_t *raw_new(void)
{
    raw_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    return s;
}

static weft_http_client_req_t get_to(uint16_t p, const char *target)
{
    return (weft_http_client_req_t){
        .method = "GET", .host = "127.0.0.1", .port = p, .target = target};
}

static weft_http_client_req_t get_req(const char *target)
{
    return get_to(port, target);
}

/* Runs one request to completion. */
static void exchange(uv_loop_t *loop, weft_http_client_t *c, const weft_http_client_req_t *q,
                     result_t *r)
{
    assert_int_equal(weft_http_client_request(c, q, &cbs, r, NULL), 0);
    assert_int_equal(r->done, 0); /* callbacks never run inside the request call */
    run_until(loop, &r->done, 1);
}

/* ---- tests ---- */

static void test_framings_and_reuse(void **state)
{
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *r = new_result();
    for (int i = 0; i < 5; i++) {
        memset(r, 0, sizeof(*r));
        weft_http_client_req_t q = get_req(i % 2 ? "/chunked" : "/text");
        exchange(&loop, c, &q, r);
        assert_int_equal(r->err, 0);
        assert_int_equal(r->heads, 1);
        if (i % 2) {
            assert_int_equal(r->status, 201);
            assert_int_equal(r->blen, 5);
            assert_memory_equal(r->body, "abcde", 5);
        } else {
            assert_int_equal(r->status, 200);
            assert_int_equal(r->blen, 5);
            assert_memory_equal(r->body, "hello", 5);
            assert_string_equal(r->header, "text/plain");
        }
    }
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 1); /* one connection for all five */
    assert_int_equal(st.conns_reused, 4);
    assert_int_equal(st.conns_idle, 1);
    assert_int_equal(st.responses, 5);
    assert_int_equal(st.in_flight, 0);

    memset(r, 0, sizeof(*r));
    weft_http_header_t hx[] = {{WEFT_STR("X-Test"), WEFT_STR("yes")}};
    weft_http_client_req_t q = {.method = "POST",
                                .host = "127.0.0.1",
                                .port = port,
                                .target = "/echo",
                                .headers = hx,
                                .nheaders = 1,
                                .body = "payload",
                                .body_len = 7};
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 18);
    assert_memory_equal(r->body, "yes|length|payload", 18);

    memset(r, 0, sizeof(*r));
    q = get_req("/text");
    q.method = "HEAD";
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->blen, 0);

    memset(r, 0, sizeof(*r));
    q = get_req("/missing");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 404);

    /* a large body arrives in pieces, in order */
    memset(r, 0, sizeof(*r));
    q = get_req("/big");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, sizeof(big));
    assert_memory_equal(r->body, big, sizeof(big));
    assert_true(r->nbodies > 1);
    st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 1);

    /* concurrent requests open more connections, then all go back to the pool */
    result_t *many = calloc(8, sizeof(*many));
    assert_non_null(many);
    int total = 0;
    for (int i = 0; i < 8; i++) {
        q = get_req("/text");
        assert_int_equal(weft_http_client_request(c, &q, &cbs, &many[i], NULL), 0);
    }
    for (int i = 0; i < 2000 && total < 8; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        total = 0;
        for (int k = 0; k < 8; k++) total += many[k].done;
    }
    assert_int_equal(total, 8);
    for (int k = 0; k < 8; k++) assert_int_equal(many[k].status, 200);
    st = weft_http_client_stats(c);
    assert_int_equal(st.conns_open, st.conns_idle);
    assert_int_equal(st.conns_open, 8); /* one busy plus seven new; all idle now */
    free(many);
    free(r);
    close_client(&loop, c);
}

static void test_errors(void **state)
{
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.request_timeout_ms = 300;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();

    /* refused: a port nobody listens on */
    weft_http_client_req_t q = get_to(dead_port(), "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, -ECONNREFUSED);
    assert_int_equal(r->heads, 0);
    assert_int_equal(weft_http_client_stats(c).fail_connect, 1);

    /* timeout: the server never answers */
    memset(r, 0, sizeof(*r));
    q = get_req("/never");
    uint64_t t0 = uv_now(&loop);
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT);
    assert_true(uv_now(&loop) - t0 >= 300);
    assert_int_equal(weft_http_client_stats(c).fail_timeout, 1);

    /* a per-request deadline overrides the client's */
    memset(r, 0, sizeof(*r));
    q.timeout_ms = 60;
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT);
    assert_true(uv_now(&loop) - t0 < 250);

    /* cancel */
    memset(r, 0, sizeof(*r));
    weft_http_client_call_t *call;
    q = get_req("/never");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    for (int i = 0; i < 3; i++) uv_run(&loop, UV_RUN_NOWAIT);
    weft_http_client_cancel(call);
    assert_int_equal(r->done, 1);
    assert_int_equal(r->err, WEFT_ECANCELED);

    /* cancel from on_head: on_done once, no body */
    memset(r, 0, sizeof(*r));
    r->cancel_in_head = true;
    q = get_req("/big");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ECANCELED);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->blen, 0);
    for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r->done, 1);
    assert_int_equal(weft_http_client_stats(c).fail_canceled, 2);

    /* invalid requests are refused up front, with no callback */
    memset(r, 0, sizeof(*r));
    q = get_req("/a b");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q = get_req("/x\r\nInjected: 1");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q = get_req("");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q = get_req("/");
    q.method = "GE T";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q = get_req("/");
    q.host = "evil.example/x";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q.host = "h\r\nInjected: 1";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q.host = "";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    weft_http_client_host_stats_t hst;
    assert_int_equal(weft_http_client_host_stats(c, "evil.example/x", q.port, &hst),
                     WEFT_ENOENT); /* no pool is made for a host the client refuses */
    weft_http_header_t bad[] = {{WEFT_STR("X"), WEFT_STR("a\r\nB: c")}};
    q = get_req("/");
    q.headers = bad;
    q.nheaders = 1;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    weft_http_header_t badname[] = {{WEFT_STR("X Y"), WEFT_STR("z")}};
    q.headers = badname;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    weft_http_header_t cl[] = {{WEFT_STR("content-LENGTH"), WEFT_STR("3")}};
    q.headers = cl;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    q = get_req("/");
    q.body_mode = WEFT_HTTP_CLIENT_BODY_CHUNKED;
    q.body = "x";
    q.body_len = 1;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_EINVAL);
    for (int i = 0; i < 3; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r->done, 0);

    /* close with a call in flight and one queued behind a lookup fails them */
    result_t *y = new_result(), *z = new_result();
    q = get_req("/never");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, y, NULL), 0);
    q.host = "localhost";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, z, NULL), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    closed = 0;
    weft_http_client_close(c, on_closed, NULL);
    assert_int_equal(y->done, 1); /* before close returns */
    assert_int_equal(y->err, WEFT_ECANCELED);
    assert_int_equal(z->done, 1);
    assert_int_equal(z->err, WEFT_ECANCELED);
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, NULL), WEFT_ECLOSED);
    run_until(&loop, &closed, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(r);
    free(y);
    free(z);
}

static void test_garbage_and_until_close(void **state)
{
    raw_t *s = raw_new();
    s->nconns = 5;
    s->script[0][0] = "HTTP/1.0 200 OK\r\n\r\nuntil close";
    s->script[0][1] = R_CLOSE;
    s->script[1][0] = "HTTQ/9 nonsense\r\n\r\n";
    s->script[2][0] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    s->script[2][1] = R_CLOSE;
    s->script[3][0] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
    /* an obs-fold: the user agent blanks the line break (RFC 9112 5.2) */
    s->script[4][0] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/\r\n plain\r\nContent-Length: 2\r\n\r\nok";
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 11);
    assert_memory_equal(r->body, "until close", 11);

    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_EPARSE);

    memset(r, 0, sizeof(*r)); /* the server closes in the middle of the body */
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ECONNRESET);
    assert_int_equal(r->status, 200);

    memset(r, 0, sizeof(*r)); /* bytes after the response: delivered, then not pooled */
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 2);

    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_string_equal(r->header, "text/   plain");
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 5);
    assert_int_equal(st.conns_idle, 1); /* the last one, whole and kept alive */
    assert_int_equal(st.fail_response, 1);
    assert_int_equal(st.fail_io, 1);
    close_client(&loop, c);
    raw_join(s);
    assert_int_equal(s->accepted, 5);
    free(s);
    free(r);
}

/* RFC 9110 15.2.2: a 101 to a request without Upgrade switches to nothing it asked for: a
 * malformed response (EPARSE), its connection closed; what followed it is never a response. */
static void test_unasked_switching_protocols(void **state)
{
    raw_t *s = raw_new();
    s->nconns = 2;
    s->script[0][0] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n"
                      "\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    s->script[1][0] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_EPARSE);
    assert_int_equal(r->heads, 0);
    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->blen, 2);
    assert_memory_equal(r->body, "ok", 2);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 2);
    assert_int_equal(st.fail_response, 1);
    close_client(&loop, c);
    raw_join(s);
    assert_int_equal(s->accepted, 2);
    free(s);
    free(r);
}

static void test_interim_and_bodiless(void **state)
{
    raw_t *s = raw_new();
    s->nconns = 1;
    s->script[0][0] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok";
    s->script[0][1] = "HTTP/1.1 204 No Content\r\n\r\n";
    s->script[0][2] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    s->script[0][3] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
                      "1\r\nd\r\n0\r\n\r\n";
    s->script[0][4] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"; /* answer to HEAD */
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->blen, 2);
    assert_memory_equal(r->body, "ok", 2);
    int want[] = {204, 304, 200, 200};
    for (int i = 0; i < 4; i++) {
        memset(r, 0, sizeof(*r));
        q.method = i == 3 ? "HEAD" : "GET";
        exchange(&loop, c, &q, r);
        assert_int_equal(r->err, 0);
        assert_int_equal(r->status, want[i]);
        assert_int_equal(r->blen, i == 2 ? 4 : 0);
    }
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 1); /* all five on one connection */
    assert_int_equal(st.conns_reused, 4);
    close_client(&loop, c);
    raw_join(s);
    assert_int_equal(s->requests, 5);
    assert_non_null(strstr(s->last, "HEAD / HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", s->port);
    assert_non_null(strstr(s->last, host));
    free(s);
    free(r);
}

static void test_keepalive_race_retry(void **state)
{
    raw_t *s = raw_new();
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    s->nconns = 3;
    s->script[0][0] = ok;
    s->script[0][1] = R_READCLOSE; /* the server closed the pooled connection: GET retried */
    s->script[1][0] = ok;
    s->script[1][1] = R_READCLOSE; /* again, for a POST: not retried */
    s->script[2][0] = ok;
    s->script[2][1] = R_CLOSE;
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r); /* reuses connection 0, which fails; retried on connection 1 */
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->heads, 1);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.conns_opened, 2);

    memset(r, 0, sizeof(*r));
    q.method = "POST"; /* on connection 1, pooled, which the server closes after reading */
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ECONNRESET);
    st = weft_http_client_stats(c);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.fail_io, 1);

    memset(r, 0, sizeof(*r)); /* the next request opens a third connection */
    q.method = "GET";
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    close_client(&loop, c);
    raw_join(s);
    assert_int_equal(s->accepted, 3);
    assert_int_equal(s->requests, 5);
    free(s);
    free(r);
}

static void test_idle_connections(void **state)
{
    raw_t *s = raw_new();
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    s->nconns = 3;
    s->script[0][0] = ok;
    s->script[0][1] = R_CLOSE; /* the server closes the idle connection at once */
    s->script[1][0] = ok;
    s->script[1][1] = NULL; /* kept until the client's idle timeout closes it */
    s->script[2][0] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    s->script[2][1] = R_CLOSE;
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.idle_timeout_ms = 150;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    for (int i = 0; i < 2000 && weft_http_client_stats(c).conns_closed < 1; i++)
        uv_run(&loop, UV_RUN_ONCE);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_closed, 1); /* noticed while idle: no retry needed later */
    assert_int_equal(st.conns_idle, 0);

    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    st = weft_http_client_stats(c);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.conns_opened, 2);
    assert_int_equal(st.conns_idle, 1);
    uint64_t t0 = uv_now(&loop);
    for (int i = 0; i < 2000 && weft_http_client_stats(c).conns_closed < 2; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(weft_http_client_stats(c).conns_closed, 2);
    assert_true(uv_now(&loop) - t0 >= 100);

    memset(r, 0, sizeof(*r)); /* Connection: close is honoured */
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    st = weft_http_client_stats(c);
    assert_int_equal(st.conns_idle, 0);
    assert_int_equal(st.conns_closed, 3);
    close_client(&loop, c);
    raw_join(s);
    free(s);
    free(r);
}

static void test_pool_limits(void **state)
{
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.max_conns_per_host = 2;
    o.max_queue = 3;
    o.max_idle_per_host = 1;
    o.max_hosts = 2;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = calloc(6, sizeof(*r));
    assert_non_null(r);
    weft_http_client_req_t q = get_req("/text");
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[i], NULL), 0);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.conns_open, 2);
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[5], NULL), WEFT_ELIMIT);
    int total = 0;
    for (int i = 0; i < 2000 && total < 5; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        total = 0;
        for (int k = 0; k < 5; k++) total += r[k].done;
    }
    assert_int_equal(total, 5);
    for (int k = 0; k < 5; k++) {
        assert_int_equal(r[k].err, 0);
        assert_int_equal(r[k].status, 200);
    }
    assert_int_equal(r[5].done, 0);
    st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 2); /* the queue was served by the two connections */
    assert_int_equal(st.conns_reused, 3);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.conns_idle, 1); /* max_idle_per_host: the second one was closed */
    assert_int_equal(st.conns_closed, 1);
    assert_int_equal(st.queued, 0);

    /* max_hosts: a second host:port is fine, a third is refused */
    memset(r, 0, sizeof(*r) * 2);
    q = get_to(dead_port(), "/");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[0], NULL), 0);
    q.host = "127.0.0.2";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[1], NULL), WEFT_ELIMIT);
    run_until(&loop, &r[0].done, 1);
    assert_int_equal(r[0].err, -ECONNREFUSED);
    free(r);
    close_client(&loop, c);
}

/* A request's own max_conns and max_queue (a gateway's per-upstream limits) bound the
 * pool below the client's options; NO_QUEUE refuses rather than queues. */
static void test_pool_limits_per_request(void **state)
{
    (void)state;
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL); /* 1024 connections, 4096 waiting */
    result_t *r = calloc(6, sizeof(*r));
    assert_non_null(r);
    weft_http_client_req_t q = get_req("/text");
    q.max_conns = 1;
    q.max_queue = 2;
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[i], NULL), 0);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_open, 1);
    assert_int_equal(st.queued, 2);
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[3], NULL), WEFT_ELIMIT);
    q.max_queue = WEFT_HTTP_CLIENT_NO_QUEUE; /* none may wait: refused at once */
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[3], NULL), WEFT_ELIMIT);
    q.max_conns = 2; /* a larger bound opens a second connection */
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[3], NULL), 0);
    st = weft_http_client_stats(c);
    assert_int_equal(st.conns_open, 2);
    assert_int_equal(st.rejected, 2);
    int total = 0;
    for (int i = 0; i < 2000 && total < 4; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        total = 0;
        for (int k = 0; k < 4; k++) total += r[k].done;
    }
    assert_int_equal(total, 4);
    for (int k = 0; k < 4; k++) assert_int_equal(r[k].status, 200);
    st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 2); /* the queued ones waited for those two */
    free(r);
    close_client(&loop, c);
}

static void test_queue_after_connect_failure(void **state)
{
    /* one connection allowed; when it fails, the queued calls get connections at once
       instead of waiting for their deadline */
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.max_conns_per_host = 1;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = calloc(3, sizeof(*r));
    assert_non_null(r);
    weft_http_client_req_t q = get_to(dead_port(), "/");
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_http_client_request(c, &q, &cbs, &r[i], NULL), 0);
    uint64_t t0 = uv_now(&loop);
    run_until(&loop, &r[2].done, 1);
    assert_true(uv_now(&loop) - t0 < 1000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].err, -ECONNREFUSED);
    }
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 3);
    assert_int_equal(st.fail_connect, 3);
    free(r);
    close_client(&loop, c);
}

static void test_connect_timeout(void **state)
{
    /* A listener with backlog 0 whose accept queue is full: the kernel drops further SYNs,
       so a connect neither succeeds nor fails. */
    uint16_t p;
    int lfd = listen_local(0, &p);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fillers[16], nf = 0;
    bool full = false;
    while (nf < 16 && !full) {
        int f = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(f, F_SETFL, O_NONBLOCK);
        fillers[nf++] = f;
        connect(f, (struct sockaddr *)&a, sizeof(a));
        struct pollfd pf = {.fd = f, .events = POLLOUT};
        full = poll(&pf, 1, 300) == 0;
    }
    assert_true(full);
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.connect_timeout_ms = 200;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(p, "/");
    uint64_t t0 = uv_now(&loop);
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT_CONNECT);
    uint64_t took = uv_now(&loop) - t0;
    assert_true(took >= 200 && took < 1000);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.fail_connect_timeout, 1);
    assert_int_equal(st.fail_timeout, 0);
    assert_int_equal(st.conns_open, 0);
    close_client(&loop, c);
    for (int i = 0; i < nf; i++) close(fillers[i]);
    close(lfd);
    free(r);
}

static void test_streamed_request_body(void **state)
{
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.max_body_buffer = 64;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_call_t *call;

    /* chunked: written before and after the connection is up */
    weft_http_client_req_t q = {.method = "POST",
                                .host = "127.0.0.1",
                                .port = port,
                                .target = "/echo",
                                .body_mode = WEFT_HTTP_CLIENT_BODY_CHUNKED};
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    assert_int_equal(weft_http_client_write(call, "pay", 3), 0);
    assert_int_equal(weft_http_client_write(call, "", 0), 0); /* not the end marker */
    for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(weft_http_client_write(call, "load", 4), 0);
    assert_int_equal(weft_http_client_end(call), 0);
    assert_int_equal(weft_http_client_write(call, "x", 1), WEFT_ESTATE);
    assert_int_equal(weft_http_client_end(call), WEFT_ESTATE);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 16);
    assert_memory_equal(r->body, "|chunked|payload", 16);

    /* Content-Length: exact length enforced */
    memset(r, 0, sizeof(*r));
    q.body_mode = WEFT_HTTP_CLIENT_BODY_LENGTH;
    q.content_length = 5;
    q.method = "PUT";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    assert_int_equal(weft_http_client_write(call, "abc", 3), 0);
    assert_int_equal(weft_http_client_write(call, "def", 3), WEFT_EINVAL);
    assert_int_equal(weft_http_client_end(call), WEFT_EINVAL);
    assert_int_equal(weft_http_client_write(call, "de", 2), 0);
    assert_int_equal(weft_http_client_end(call), 0);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 13);
    assert_memory_equal(r->body, "|length|abcde", 13);
    assert_int_equal(weft_http_client_stats(c).conns_opened, 1); /* streamed, still pooled */

    /* backpressure: max_body_buffer is 64 bytes */
    memset(r, 0, sizeof(*r));
    q.body_mode = WEFT_HTTP_CLIENT_BODY_CHUNKED;
    q.method = "POST";
    char piece[40];
    memset(piece, 'x', sizeof(piece));
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    assert_int_equal(weft_http_client_write(call, piece, 65), WEFT_ELIMIT);
    /* not connected yet: everything stays buffered; 46 bytes per chunk, the head not counted */
    assert_int_equal(weft_http_client_write(call, piece, sizeof(piece)), 0);
    assert_int_equal(weft_http_client_write(call, piece, sizeof(piece)), 1);
    assert_int_equal(weft_http_client_write(call, piece, sizeof(piece)), WEFT_EAGAIN);
    size_t sent = 2 * sizeof(piece);
    int waits = 0, rc = 1;
    while (sent < 20 * sizeof(piece)) {
        int d = r->drains;
        run_until(&loop, &r->drains, d + 1);
        waits++;
        assert_int_equal(r->done, 0);
        do {
            rc = weft_http_client_write(call, piece, sizeof(piece));
            assert_true(rc == 0 || rc == 1);
            sent += sizeof(piece);
        } while (rc == 0);
    }
    assert_int_equal(weft_http_client_end(call), 0);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 9 + sent);
    assert_memory_equal(r->body, "|chunked|", 9);
    for (size_t i = 9; i < r->blen; i++) assert_int_equal(r->body[i], 'x');
    /* a drain follows each 1, but the last one may lose the race with the response */
    assert_true(r->drains == waits || (rc == 1 && r->drains == waits + 1));
    assert_true(waits >= 5);

    /* a streamed call cancelled halfway closes its connection */
    memset(r, 0, sizeof(*r));
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    assert_int_equal(weft_http_client_write(call, "abc", 3), 0);
    for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
    weft_http_client_cancel(call);
    assert_int_equal(r->err, WEFT_ECANCELED);
    assert_int_equal(weft_http_client_stats(c).conns_idle, 0);

    /* writing a fixed-body call is a state error */
    memset(r, 0, sizeof(*r));
    q = get_req("/text");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    assert_int_equal(weft_http_client_write(call, "x", 1), WEFT_ESTATE);
    assert_int_equal(weft_http_client_end(call), WEFT_ESTATE);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, 0);
    free(r);
    close_client(&loop, c);
}

typedef struct {
    result_t *r;
    weft_http_client_call_t *call;
    int resumes;
} resumer_t;

static void on_resume_timer(uv_timer_t *t)
{
    resumer_t *z = t->data;
    if (z->r->done || !z->r->paused) return;
    z->r->paused = false;
    z->r->pause_at = z->r->nbodies + 1; /* pause again after one more piece */
    z->resumes++;
    weft_http_client_resume(z->call);
}

static void test_pause_resume(void **state)
{
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *r = new_result();
    r->pause_at = 1;
    resumer_t z = {.r = r};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &z;
    weft_http_client_req_t q = get_req("/big");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &z.call), 0);
    uv_timer_start(&t, on_resume_timer, 20, 20);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->bodies_while_paused, 0); /* nothing delivered while paused */
    assert_true(z.resumes >= 2);
    assert_int_equal(r->blen, sizeof(big));
    assert_memory_equal(r->body, big, sizeof(big));
    uv_close((uv_handle_t *)&t, NULL);

    /* paused before the response comes: held until resume, on_done included */
    memset(r, 0, sizeof(*r));
    q = get_req("/text");
    weft_http_client_call_t *call;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    weft_http_client_pause(call);
    for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
    usleep(20000);
    for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r->done, 0);
    assert_int_equal(r->heads, 0);
    weft_http_client_resume(call);
    assert_int_equal(r->done, 0);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->blen, 5);
    assert_int_equal(weft_http_client_stats(c).conns_opened, 1); /* and pooled */
    free(r);
    close_client(&loop, c);
}

typedef struct {
    weft_http_client_t *c;
    result_t *others;
    int done;
} closer_t;

static void close_in_done(weft_http_client_call_t *call, int err, void *arg)
{
    closer_t *x = arg;
    x->done++;
    weft_http_client_close(x->c, on_closed, NULL);
    assert_int_equal(x->others[0].done, 1); /* failed inside close */
    assert_int_equal(x->others[0].err, WEFT_ECANCELED);
}

static void test_close_from_callback(void **state)
{
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    result_t *others = calloc(2, sizeof(*others));
    assert_non_null(others);
    closer_t x = {.c = c, .others = others};
    weft_http_client_req_t q = get_req("/never");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &others[0], NULL), 0);
    q = get_req("/text");
    weft_http_client_cbs_t xc = {.on_done = close_in_done};
    closed = 0;
    assert_int_equal(weft_http_client_request(c, &q, &xc, &x, NULL), 0);
    run_until(&loop, &closed, 1);
    assert_int_equal(x.done, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(others);
}

typedef struct {
    int err, status, calls;
    char body[64];
    size_t len;
} got_t;

static void on_got(int err, int status, const char *body, size_t len, void *arg)
{
    got_t *g = arg;
    g->err = err;
    g->status = status;
    g->calls++;
    g->len = len;
    memcpy(g->body, body, len < sizeof(g->body) ? len : sizeof(g->body));
}

static void test_get_helper(void **state)
{
    uv_loop_t loop;
    weft_http_client_t *c = client_on(&loop, NULL);
    char url[128];
    got_t g = {0};
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/text#frag", port);
    assert_int_equal(weft_http_client_get(c, url, 0, on_got, &g, NULL), 0);
    run_until(&loop, &g.calls, 1);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.len, 5);
    assert_memory_equal(g.body, "hello", 5);

    memset(&g, 0, sizeof(g)); /* a name, no scheme */
    snprintf(url, sizeof(url), "localhost:%u/chunked", port);
    assert_int_equal(weft_http_client_get(c, url, 0, on_got, &g, NULL), 0);
    run_until(&loop, &g.calls, 1);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 201);
    assert_memory_equal(g.body, "abcde", 5);

    memset(&g, 0, sizeof(g)); /* over the body limit */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/big", port);
    assert_int_equal(weft_http_client_get(c, url, 1000, on_got, &g, NULL), 0);
    run_until(&loop, &g.calls, 1);
    assert_int_equal(g.err, WEFT_ELIMIT);
    assert_int_equal(g.status, 200);

    assert_int_equal(weft_http_client_get(c, "https://127.0.0.1/", 0, on_got, &g, NULL),
                     WEFT_EUNSUPPORTED);
    assert_int_equal(weft_http_client_get(c, "http://127.0.0.1:99999/", 0, on_got, &g, NULL),
                     WEFT_EINVAL);
    assert_int_equal(weft_http_client_get(c, "http://[::1/", 0, on_got, &g, NULL), WEFT_EINVAL);
    assert_int_equal(weft_http_client_get(c, "http:///x", 0, on_got, &g, NULL), WEFT_EINVAL);
    assert_int_equal(weft_http_client_get(c, "127.0.0.1:80 /x", 0, on_got, &g, NULL), WEFT_EINVAL);
    for (int i = 0; i < 3; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 1);
    close_client(&loop, c);
}

static void test_options(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    weft_http_client_t *c = NULL;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    assert_int_equal(o.connect_timeout_ms, 2000);
    assert_int_equal(o.request_timeout_ms, 30000);
    assert_int_equal(o.idle_timeout_ms, 60000);
    assert_int_equal(o.max_idle_per_host, 64);
    assert_int_equal(o.max_conns_per_host, 1024);
    assert_int_equal(o.max_queue, 4096);
    assert_int_equal(o.max_response_head, 64 * 1024);
    assert_int_equal(o.max_headers, 100);
    o.max_conns_per_host = 0;
    assert_int_equal(weft_http_client_new(&loop, &o, &c), WEFT_EINVAL);
    weft_http_client_options_init(&o);
    o.max_headers = 0;
    assert_int_equal(weft_http_client_new(&loop, &o, &c), WEFT_EINVAL);
    assert_null(c);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_response_limits(void **state)
{
    raw_t *s = raw_new();
    s->nconns = 3;
    s->script[0][0] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
    /* llhttp passes an empty header name in a response; the client does not */
    s->script[2][0] = "HTTP/1.1 200 OK\r\n:Content-Length: 5\r\n\r\nhello";
    s->script[1][0] = "HTTP/1.1 200 OK\r\nX-Long: 0123456789012345678901234567890123456789\r\n"
                      "Content-Length: 0\r\n\r\n";
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.max_headers = 3;
    o.max_response_head = 32;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ELIMIT); /* four headers */
    assert_int_equal(r->heads, 0);
    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ELIMIT); /* 46 bytes of names and values */
    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_EPARSE);
    assert_int_equal(r->heads, 0);
    assert_int_equal(weft_http_client_stats(c).fail_response, 3);
    close_client(&loop, c);
    raw_join(s);
    free(s);
    free(r);
}

/* ---- the new timeouts, failover, per-host counters, heads in the read buffer ---- */

/* Accepts, reads the request and never answers: the head timeout, not the request's. */
static void test_head_timeout(void **state)
{
    raw_t *s = raw_new();
    s->nconns = 2;
    s->script[0][0] = R_HOLD;
    s->script[1][0] = R_HOLD;
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.head_timeout_ms = 200;
    o.request_timeout_ms = 20000;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    uint64_t t0 = uv_now(&loop);
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT_HEAD);
    uint64_t took = uv_now(&loop) - t0;
    assert_true(took >= 200);  /* not early */
    assert_true(took < 10000); /* and long before the request deadline */
    assert_int_equal(r->heads, 0);

    /* a per-request override of the client's head timeout */
    memset(r, 0, sizeof(*r));
    o.head_timeout_ms = 0;
    q.head_timeout_ms = 100;
    t0 = uv_now(&loop);
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT_HEAD);
    assert_true(uv_now(&loop) - t0 >= 100);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.fail_head_timeout, 2);
    assert_int_equal(st.fail_timeout, 0);
    weft_http_client_host_stats_t hs;
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", s->port, &hs), 0);
    assert_int_equal(hs.fail_head_timeout, 2);
    assert_int_equal(hs.consecutive_failures, 2);
    assert_int_equal(hs.consecutive_errors, 2);
    assert_int_equal(hs.requests, 2);
    assert_string_equal(weft_err_name(WEFT_ETIMEDOUT_HEAD), "ETIMEDOUT_HEAD");
    close_client(&loop, c);
    raw_join(s);
    free(s);
    free(r);
}

typedef struct {
    result_t *r;
    weft_http_client_call_t *call;
    uv_timer_t t;
    int fired;
} waiter_t;

static void on_wait_timer(uv_timer_t *t)
{
    ((waiter_t *)t->data)->fired++;
}

/* Answers the head and a part of the body, then stalls: the body timeout; not while the
 * caller has paused the call, and counted from resume. */
static void test_body_timeout(void **state)
{
    raw_t *s = raw_new();
    s->nconns = 2;
    s->script[0][0] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    s->script[0][1] = NULL; /* then nothing, until the client closes */
    s->script[1][0] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    s->script[1][1] = NULL;
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.body_timeout_ms = 200;
    o.head_timeout_ms = 200;
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_req_t q = get_to(s->port, "/");
    uint64_t t0 = uv_now(&loop);
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT_BODY);
    assert_true(uv_now(&loop) - t0 >= 200);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->blen, 3);
    assert_memory_equal(r->body, "abc", 3);

    /* paused after the first piece: a wait of 3 body timeouts ends without a timeout */
    memset(r, 0, sizeof(*r));
    r->pause_at = 1;
    waiter_t w = {.r = r};
    uv_timer_init(&loop, &w.t);
    w.t.data = &w;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &w.call), 0);
    run_until(&loop, &r->nbodies, 1);
    uv_timer_start(&w.t, on_wait_timer, 600, 0);
    run_until(&loop, &w.fired, 1);
    assert_int_equal(r->done, 0); /* paused: the gap is ours, not the server's */
    r->paused = false;
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    weft_http_client_resume(w.call);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, WEFT_ETIMEDOUT_BODY);
    assert_true(uv_now(&loop) - t0 >= 200); /* counted from resume */
    uv_close((uv_handle_t *)&w.t, NULL);
    weft_http_client_host_stats_t hs;
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", s->port, &hs), 0);
    assert_int_equal(hs.fail_body_timeout, 2);
    assert_int_equal(hs.heads, 2);
    assert_int_equal(weft_http_client_stats(c).fail_body_timeout, 2);
    close_client(&loop, c);
    raw_join(s);
    free(s);
    free(r);
}

/* The test resolver: the addresses it was given, in order. */
typedef struct {
    weft__addr_t a[4];
    int n, calls;
} fake_dns_t;

static int fake_resolve(void *arg, const char *host, uint16_t pt, weft__addr_t *out, unsigned max)
{
    fake_dns_t *d = arg;
    d->calls++;
    if (strcmp(host, "multi.test") != 0) return WEFT_ENOENT;
    for (int i = 0; i < d->n && (unsigned)i < max; i++) out[i] = d->a[i];
    return d->n;
}

static void addr4(weft__addr_t *a, uint16_t p)
{
    assert_int_equal(uv_ip4_addr("127.0.0.1", p, &a->in), 0);
}

/* A listener whose backlog is full: a connect to it neither succeeds nor fails. */
static int blackhole(uint16_t *p, int *fillers, int *nf)
{
    int lfd = listen_local(0, p);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(*p)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bool full = false;
    *nf = 0;
    while (*nf < 16 && !full) {
        int f = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(f, F_SETFL, O_NONBLOCK);
        fillers[(*nf)++] = f;
        connect(f, (struct sockaddr *)&a, sizeof(a));
        struct pollfd pf = {.fd = f, .events = POLLOUT};
        full = poll(&pf, 1, 300) == 0;
    }
    assert_true(full);
    return lfd;
}

typedef struct {
    weft_http_client_t *c;
    weft_http_client_call_t *call;
    uv_check_t check;
    uint64_t failovers;
    int cancels;
} cancel_in_next_t;

static void cancel_in_next(uv_check_t *h)
{
    cancel_in_next_t *x = h->data;
    if (!x->call || weft_http_client_stats(x->c).failovers == x->failovers) return;
    assert_int_equal(x->call->conn->state, CONN_NEXT);
    weft_http_client_cancel(x->call);
    x->call = NULL;
    x->cancels++;
}

static void test_failover(void **state)
{
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.connect_timeout_ms = 200;
    weft_http_client_t *c = client_on(&loop, &o);
    fake_dns_t d = {0};
    weft__client_set_resolver(c, fake_resolve, &d);
    result_t *r = new_result();

    /* the first address refuses, the second answers */
    addr4(&d.a[0], dead_port());
    addr4(&d.a[1], port);
    d.n = 2;
    weft_http_client_req_t q = {
        .method = "GET", .host = "multi.test", .port = 80, .target = "/text"};
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);
    assert_memory_equal(r->body, "hello", 5);
    assert_int_equal(d.calls, 1);
    weft_http_client_host_stats_t hs;
    assert_int_equal(weft_http_client_host_stats(c, "multi.test", 80, &hs), 0);
    assert_int_equal(hs.failovers, 1);
    assert_int_equal(hs.fail_connect, 0);
    assert_int_equal(hs.responses, 1);

    /* IPv6 loopback first (refused, or unavailable here), then IPv4 */
    memset(r, 0, sizeof(*r));
    assert_int_equal(uv_ip6_addr("::1", dead_port(), &d.a[0].in6), 0);
    weft_http_client_req_t fresh = q;
    fresh.port = 81; /* another pool: a new connection */
    exchange(&loop, c, &fresh, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);

    /* every address refuses: the last one's error, counted as one connect failure */
    memset(r, 0, sizeof(*r));
    addr4(&d.a[0], dead_port());
    addr4(&d.a[1], dead_port());
    addr4(&d.a[2], dead_port());
    d.n = 3;
    fresh.port = 82;
    exchange(&loop, c, &fresh, r);
    assert_int_equal(r->err, -ECONNREFUSED);
    assert_int_equal(weft_http_client_host_stats(c, "multi.test", 82, &hs), 0);
    assert_int_equal(hs.failovers, 2);
    assert_int_equal(hs.fail_connect, 1);
    assert_int_equal(hs.consecutive_errors, 1);

    /* the first address times out (its own connect timeout), the second answers */
    memset(r, 0, sizeof(*r));
    int fillers[16], nf;
    uint16_t bp;
    int lfd = blackhole(&bp, fillers, &nf);
    addr4(&d.a[0], bp);
    addr4(&d.a[1], port);
    d.n = 2;
    fresh.port = 83;
    uint64_t t0 = uv_now(&loop);
    exchange(&loop, c, &fresh, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);
    assert_true(uv_now(&loop) - t0 >= 200);

    /* both time out: WEFT_ETIMEDOUT_CONNECT after both timeouts */
    memset(r, 0, sizeof(*r));
    addr4(&d.a[1], bp);
    fresh.port = 84;
    t0 = uv_now(&loop);
    exchange(&loop, c, &fresh, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT_CONNECT);
    assert_true(uv_now(&loop) - t0 >= 400);
    assert_int_equal(weft_http_client_host_stats(c, "multi.test", 84, &hs), 0);
    assert_int_equal(hs.fail_connect_timeout, 1);
    assert_int_equal(hs.failovers, 1);

    /* the request deadline bounds the whole: one timeout of 200 ms each, a deadline of 300 */
    memset(r, 0, sizeof(*r));
    d.n = 2;
    fresh.port = 85;
    fresh.timeout_ms = 300;
    exchange(&loop, c, &fresh, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT);

    /* cancelled while a failed attempt's socket closes (NEXT): a check handle runs after
       the refused connect's callback and before the close callback that would try the
       next address */
    cancel_in_next_t x = {.c = c};
    uv_check_init(&loop, &x.check);
    x.check.data = &x;
    uv_check_start(&x.check, cancel_in_next);
    addr4(&d.a[0], dead_port());
    addr4(&d.a[1], port);
    d.n = 2;
    fresh.port = 86;
    fresh.timeout_ms = 0;
    memset(r, 0, sizeof(*r));
    x.failovers = weft_http_client_stats(c).failovers;
    assert_int_equal(weft_http_client_request(c, &fresh, &cbs, r, &x.call), 0);
    run_until(&loop, &r->done, 1);
    assert_int_equal(r->err, WEFT_ECANCELED);
    assert_int_equal(x.cancels, 1);
    uv_close((uv_handle_t *)&x.check, NULL);

    /* a name the resolver does not know */
    memset(r, 0, sizeof(*r));
    fresh.host = "nowhere.test";
    exchange(&loop, c, &fresh, r);
    assert_int_equal(r->err, WEFT_ENOENT);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.failovers, 1 + 1 + 2 + 1 + 1 + 1 + 1);
    close_client(&loop, c);
    for (int i = 0; i < nf; i++) close(fillers[i]);
    close(lfd);
    free(r);
}

typedef struct {
    weft_http_client_t *c;
    weft_http_client_host_stats_t in_head;
    int pools;
} peek_t;

static void peek_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                      size_t n, void *arg)
{
    peek_t *k = arg;
    weft_http_client_host_stats(k->c, "127.0.0.1", port, &k->in_head);
}

static void peek_done(weft_http_client_call_t *call, int err, void *arg)
{
    peek_t *k = arg;
    k->pools = -1;
}

static void count_pool(const char *host, uint16_t p, const weft_http_client_host_stats_t *st,
                       void *arg)
{
    peek_t *k = arg;
    k->pools++;
    assert_true(strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0);
    assert_true(st->requests >= 1);
}

static void test_host_counters(void **state)
{
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.host_keep_ms = 0; /* an unused pool goes at the next scan */
    weft_http_client_t *c = client_on(&loop, &o);
    result_t *r = new_result();
    weft_http_client_host_stats_t hs;
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), WEFT_ENOENT);

    for (int i = 0; i < 2; i++) { /* two 5xx: failures, but not errors */
        memset(r, 0, sizeof(*r));
        weft_http_client_req_t q = get_req("/fail");
        exchange(&loop, c, &q, r);
        assert_int_equal(r->err, 0);
        assert_int_equal(r->status, 503);
    }
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), 0);
    assert_int_equal(hs.requests, 2);
    assert_int_equal(hs.responses, 2);
    assert_int_equal(hs.responses_5xx, 2);
    assert_int_equal(hs.heads, 2);
    assert_int_equal(hs.consecutive_failures, 2);
    assert_int_equal(hs.consecutive_errors, 0);
    assert_true(hs.latency_last_us > 0 && hs.latency_last_us < 10000000);
    assert_true(hs.latency_ewma_us > 0 && hs.latency_ewma_us < 10000000);
    assert_int_equal(hs.conns_open, 1);
    assert_int_equal(hs.conns_idle, 1);
    assert_int_equal(hs.in_flight, 0);
    assert_int_equal(weft_http_client_stats(c).responses_5xx, 2);

    /* a 200 ends the run; in_flight counts the call while it runs */
    peek_t k = {.c = c};
    weft_http_client_cbs_t pc = {.on_head = peek_head, .on_done = peek_done};
    weft_http_client_req_t q = get_req("/text");
    assert_int_equal(weft_http_client_request(c, &q, &pc, &k, NULL), 0);
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), 0);
    assert_int_equal(hs.in_flight, 1);
    for (int i = 0; i < 5000 && k.pools == 0; i++) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(k.in_head.in_flight, 1);
    assert_int_equal(k.in_head.heads, 3);
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), 0);
    assert_int_equal(hs.consecutive_failures, 0);
    assert_int_equal(hs.responses, 3);

    /* a reset mid-call: an error of the host's (on /never, cancelled by the deadline) */
    memset(r, 0, sizeof(*r));
    q = get_req("/never");
    q.timeout_ms = 50;
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ETIMEDOUT);
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), 0);
    assert_int_equal(hs.fail_timeout, 1);
    assert_int_equal(hs.consecutive_failures, 1);
    assert_int_equal(hs.consecutive_errors, 1);

    /* a cancel is not the host's: nothing changes */
    memset(r, 0, sizeof(*r));
    weft_http_client_call_t *call;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, r, &call), 0);
    weft_http_client_cancel(call);
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), 0);
    assert_int_equal(hs.fail_canceled, 1);
    assert_int_equal(hs.consecutive_failures, 1);

    /* two pools: "localhost" is its own */
    memset(r, 0, sizeof(*r));
    q = get_req("/text");
    q.host = "localhost";
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    k.pools = 0;
    weft_http_client_foreach_host(c, count_pool, &k);
    assert_int_equal(k.pools, 2);

    /* once unused (no call, no connection), a pool goes away with host_keep_ms 0; one with
       an idle connection stays */
    memset(r, 0, sizeof(*r));
    q = get_req("/text");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    memset(r, 0, sizeof(*r));
    q = get_to(dead_port(), "/");
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, -ECONNREFUSED);
    int gone = 0;
    for (int i = 0; i < 5000 && !gone; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        gone = weft_http_client_host_stats(c, "127.0.0.1", q.port, &hs) == WEFT_ENOENT;
    }
    assert_true(gone);
    assert_int_equal(weft_http_client_host_stats(c, "127.0.0.1", port, &hs), 0); /* in use */
    free(r);
    close_client(&loop, c);
}

/* A response head of 40 KiB, larger than one read: on_head's names and values are views
 * into the connection's read buffer, exactly as sent, after the buffer grew and moved. */
static char big_head[48 * 1024];
static char big_names[40][16];

typedef struct {
    int heads, inside, good, n;
} headcheck_t;

static void check_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                       size_t n, void *arg)
{
    headcheck_t *x = arg;
    x->heads++;
    x->n = (int)n;
    const weft_buf_t *rb = &call->conn->rbuf;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name.base >= rb->p && h[i].name.base + h[i].name.len <= rb->p + rb->len &&
            h[i].value.base >= rb->p && h[i].value.base + h[i].value.len <= rb->p + rb->len)
            x->inside++;
        if (i < 40 && h[i].name.len == strlen(big_names[i]) &&
            memcmp(h[i].name.base, big_names[i], h[i].name.len) == 0 && h[i].value.len == 1000 &&
            h[i].value.base[0] == (char)('a' + i % 26) && h[i].value.base[999] == 'Z')
            x->good++;
    }
}

static void check_done(weft_http_client_call_t *call, int err, void *arg)
{
    ((headcheck_t *)arg)->heads += 100 * (err == 0);
}

static void test_head_in_read_buffer(void **state)
{
    size_t off = (size_t)snprintf(big_head, sizeof(big_head), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 40; i++) {
        snprintf(big_names[i], sizeof(big_names[i]), "X-Header-%d", i);
        off += (size_t)snprintf(big_head + off, sizeof(big_head) - off, "%s: ", big_names[i]);
        memset(big_head + off, 'a' + i % 26, 999);
        big_head[off + 999] = 'Z';
        off += 1000;
        memcpy(big_head + off, "\r\n", 2);
        off += 2;
    }
    snprintf(big_head + off, sizeof(big_head) - off, "Content-Length: 2\r\n\r\nok");
    /* a 40 KiB reason phrase: parsed and let go, never held */
    static char long_reason[40 * 1024];
    memcpy(long_reason, "HTTP/1.1 200 ", 13);
    memset(long_reason + 13, 'r', sizeof(long_reason) - 13 - 40);
    strcpy(long_reason + sizeof(long_reason) - 40, "\r\nContent-Length: 0\r\n\r\n");
    /* 40 KiB of whitespace between two short headers: held, since the head must stay whole */
    static char wide[48 * 1024];
    off = (size_t)snprintf(wide, sizeof(wide), "HTTP/1.1 200 OK\r\nA:");
    memset(wide + off, ' ', 20000);
    off += 20000;
    off += (size_t)snprintf(wide + off, sizeof(wide) - off, "1\r\nB:");
    memset(wide + off, ' ', 20000);
    off += 20000;
    snprintf(wide + off, sizeof(wide) - off, "2\r\nContent-Length: 0\r\n\r\n");

    raw_t *s = raw_new();
    s->nconns = 3;
    s->script[0][0] = big_head;
    s->script[1][0] = long_reason;
    s->script[2][0] = wide;
    raw_start(s);
    uv_loop_t loop;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    weft_http_client_t *c = client_on(&loop, &o);
    headcheck_t x = {0};
    weft_http_client_cbs_t hc = {.on_head = check_head, .on_done = check_done};
    weft_http_client_req_t q = get_to(s->port, "/");
    assert_int_equal(weft_http_client_request(c, &q, &hc, &x, NULL), 0);
    for (int i = 0; i < 5000 && x.heads < 100; i++) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(x.heads, 101); /* one on_head, on_done(0) */
    assert_int_equal(x.n, 41);
    assert_int_equal(x.inside, 41);
    assert_int_equal(x.good, 40);

    /* with a 64-byte max_response_head the read buffer holds at most 64 + 32 KiB of a head:
       the long status line passes, the wide head does not fit (WEFT_ELIMIT) */
    weft_http_client_close(c, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    o.max_response_head = 64;
    c = client_on(&loop, &o);
    result_t *r = new_result();
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->status, 200);
    memset(r, 0, sizeof(*r));
    exchange(&loop, c, &q, r);
    assert_int_equal(r->err, WEFT_ELIMIT);
    assert_int_equal(r->heads, 0);
    assert_int_equal(weft_http_client_stats(c).fail_response, 1);
    close_client(&loop, c);
    raw_join(s);
    free(s);
    free(r);
}

/* Targets and hosts the client sends: every byte value at every position of targets of 1 to
 * 24 bytes (the checks go a word at a time, then byte by byte): taken exactly when it is
 * visible ASCII (0x21-0x7e); a host also never holds one of "/?#@[]". */
static void test_target_bytes(void **state)
{
    (void)state;
    char t[32];
    for (size_t len = 1; len <= 24; len++)
        for (size_t pos = 0; pos < len; pos++)
            for (int b = 1; b < 256; b++) {
                memset(t, 'a', len);
                t[len] = 0;
                t[pos] = (char)b;
                weft_http_client_req_t q = {.method = "GET", .host = "h", .port = 80, .target = t};
                weft__req_facts_t f;
                bool ok = b >= 0x21 && b <= 0x7e;
                if ((weft__req_check(&q, &f) == 0) != ok)
                    fail_msg("target byte 0x%02x at %zu of %zu: %s", b, pos, len,
                             ok ? "refused" : "taken");
                ok = ok && !strchr("/?#@[]", b);
                if (weft__req_host_valid(t, len) != ok)
                    fail_msg("host byte 0x%02x at %zu of %zu: %s", b, pos, len,
                             ok ? "refused" : "taken");
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_target_bytes),
        cmocka_unit_test(test_framings_and_reuse),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_garbage_and_until_close),
        cmocka_unit_test(test_unasked_switching_protocols),
        cmocka_unit_test(test_interim_and_bodiless),
        cmocka_unit_test(test_keepalive_race_retry),
        cmocka_unit_test(test_idle_connections),
        cmocka_unit_test(test_pool_limits),
        cmocka_unit_test(test_pool_limits_per_request),
        cmocka_unit_test(test_queue_after_connect_failure),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_streamed_request_body),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_get_helper),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_head_timeout),
        cmocka_unit_test(test_body_timeout),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_host_counters),
        cmocka_unit_test(test_head_in_read_buffer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
