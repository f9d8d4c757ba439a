/*
 * test_client.c - the HTTP client against weft's own server (on a worker thread) and
 * against a scripted raw server (a thread with plain sockets that answers exactly the bytes
 * a test gives it, or closes at a chosen moment): framings, keep-alive reuse, HEAD, 1xx,
 * 204/304, read-until-close, garbage, limits, timeouts, the keep-alive race retry, idle
 * connections closed by either side, streamed request bodies with backpressure, pause and
 * resume of responses, cancel and close from callbacks, the GET helper. Every test runs its
 * loop until the client is closed and then checks that the loop closes with nothing open.
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

#include <cmocka.h>

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
    const char *script[4][R_STEPS];
    int accepted, requests; /* read by the test after raw_join */
    char last[2048];        /* the last request head */
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

static const weft_http_client_cbs_t cbs = {on_head, on_body, on_done, on_drain};

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
    s->nconns = 4;
    s->script[0][0] = "HTTP/1.0 200 OK\r\n\r\nuntil close";
    s->script[0][1] = R_CLOSE;
    s->script[1][0] = "HTTQ/9 nonsense\r\n\r\n";
    s->script[2][0] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    s->script[2][1] = R_CLOSE;
    s->script[3][0] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
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
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 4);
    assert_int_equal(st.conns_idle, 0);
    assert_int_equal(st.fail_response, 1);
    assert_int_equal(st.fail_io, 1);
    close_client(&loop, c);
    raw_join(s);
    assert_int_equal(s->accepted, 4);
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
    s->nconns = 2;
    s->script[0][0] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
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
    assert_int_equal(weft_http_client_stats(c).fail_response, 2);
    close_client(&loop, c);
    raw_join(s);
    free(s);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_framings_and_reuse),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_garbage_and_until_close),
        cmocka_unit_test(test_interim_and_bodiless),
        cmocka_unit_test(test_keepalive_race_retry),
        cmocka_unit_test(test_idle_connections),
        cmocka_unit_test(test_pool_limits),
        cmocka_unit_test(test_queue_after_connect_failure),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_streamed_request_body),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_get_helper),
        cmocka_unit_test(test_response_limits),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
