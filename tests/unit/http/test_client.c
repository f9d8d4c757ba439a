/*
 * test_client.c - the HTTP client against weft's own server (on a worker thread) and a
 * raw socket that answers garbage: framings, keep-alive reuse, HEAD, errors, timeouts,
 * cancel and close. Every test runs its loop until the client is closed and then checks
 * that the loop closes with nothing left open.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/client.h"
#include "weft/http.h"
#include "weft/workers.h"

static weft_http_server_t *srv;
static weft_workers_t *workers;
static uint16_t port;

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
    char out[256];
    int n = snprintf(out, sizeof(out), "%.*s|%.*s", (int)x.len, x.base ? x.base : "",
                     (int)req->body.len, req->body.base);
    weft_http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void release_on_abort(weft_http_request_t *req) { weft_http_response_end(req); }

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
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.shutdown_timeout_ms = 500;
    weft_http_server_new(&o, 1, &srv);
    weft_http_route_t r = {.handler = h_text};
    weft_http_server_route(srv, "GET", "/text", &r);
    r.handler = h_chunked;
    weft_http_server_route(srv, "GET", "/chunked", &r);
    r.handler = h_echo;
    weft_http_server_route(srv, "POST", "/echo", &r);
    r.handler = h_never;
    weft_http_server_route(srv, "GET", "/never", &r);
    assert_int_equal(weft_http_server_bind(srv, NULL, 0), 0);
    port = weft_http_server_port(srv);
    weft_workers_new(1, &workers);
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

typedef struct {
    int status, err, done, heads;
    char body[4096];
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
}

static void on_body(weft_http_client_call_t *c, const char *d, size_t n, void *arg)
{
    result_t *r = arg;
    if (r->blen + n < sizeof(r->body)) memcpy(r->body + r->blen, d, n), r->blen += n;
}

static void on_done(weft_http_client_call_t *c, int err, void *arg)
{
    result_t *r = arg;
    r->err = err;
    r->done++;
}

static const weft_http_client_cbs_t cbs = {on_head, on_body, on_done};

static void run_until(uv_loop_t *loop, int *flag, int want)
{
    for (int i = 0; i < 2000 && *flag < want; i++) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(*flag, want);
}

static int closed;
static void on_closed(void *arg)
{
    closed = 1;
}

static void close_client(uv_loop_t *loop, weft_http_client_t *c)
{
    closed = 0;
    weft_http_client_close(c, on_closed, NULL);
    run_until(loop, &closed, 1);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static weft_http_client_req_t get_req(const char *target)
{
    return (weft_http_client_req_t){
        .method = "GET", .host = "127.0.0.1", .port = port, .target = target};
}

static void test_framings_and_reuse(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    weft_http_client_t *c;
    assert_int_equal(weft_http_client_new(&loop, NULL, &c), 0);
    for (int i = 0; i < 5; i++) {
        result_t r = {0};
        weft_http_client_req_t q = get_req(i % 2 ? "/chunked" : "/text");
        assert_int_equal(weft_http_client_request(c, &q, &cbs, &r, NULL), 0);
        run_until(&loop, &r.done, 1);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.heads, 1);
        if (i % 2) {
            assert_int_equal(r.status, 201);
            assert_int_equal(r.blen, 5);
            assert_memory_equal(r.body, "abcde", 5);
        } else {
            assert_int_equal(r.status, 200);
            assert_memory_equal(r.body, "hello", 5);
            assert_string_equal(r.header, "text/plain");
        }
    }
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_opened, 1); /* one connection for all five */
    assert_int_equal(st.conns_reused, 4);
    result_t r = {0};
    weft_http_header_t hx[] = {{WEFT_STR("X-Test"), WEFT_STR("yes")}};
    weft_http_client_req_t q = {.method = "POST",
                                .host = "127.0.0.1",
                                .port = port,
                                .target = "/echo",
                                .headers = hx,
                                .nheaders = 1,
                                .body = "payload",
                                .body_len = 7};
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r, NULL), 0);
    run_until(&loop, &r.done, 1);
    assert_int_equal(r.blen, 11);
    assert_memory_equal(r.body, "yes|payload", 11);
    result_t h = {0};
    q = get_req("/text");
    q.method = "HEAD";
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &h, NULL), 0);
    run_until(&loop, &h.done, 1);
    assert_int_equal(h.err, 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.blen, 0);
    result_t nf = {0};
    q = get_req("/missing");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &nf, NULL), 0);
    run_until(&loop, &nf.done, 1);
    assert_int_equal(nf.status, 404);
    /* concurrent requests open more connections, then all return to the pool */
    result_t many[8] = {{0}};
    int total = 0;
    for (int i = 0; i < 8; i++) {
        q = get_req("/text");
        assert_int_equal(weft_http_client_request(c, &q, &cbs, &many[i], NULL), 0);
    }
    for (int i = 0; i < 2000; i++) {
        total = 0;
        for (int k = 0; k < 8; k++) total += many[k].done;
        if (total == 8) break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(total, 8);
    for (int k = 0; k < 8; k++) assert_int_equal(many[k].status, 200);
    close_client(&loop, c);
}

static void test_errors(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    weft_http_client_t *c;
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.request_timeout_ms = 300;
    assert_int_equal(weft_http_client_new(&loop, &o, &c), 0);
    /* refused: a port nobody listens on */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    socklen_t al = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    result_t r = {0};
    weft_http_client_req_t q = get_req("/");
    q.port = ntohs(a.sin_port);
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r, NULL), 0);
    run_until(&loop, &r.done, 1);
    assert_int_equal(r.err, -ECONNREFUSED);
    /* timeout: the server never answers */
    result_t t = {0};
    q = get_req("/never");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &t, NULL), 0);
    run_until(&loop, &t.done, 1);
    assert_int_equal(t.err, WEFT_ETIMEDOUT);
    /* cancel */
    result_t x = {0};
    weft_http_client_call_t *call;
    q = get_req("/never");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &x, &call), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    weft_http_client_cancel(call);
    assert_int_equal(x.done, 1);
    assert_int_equal(x.err, WEFT_ECANCELED);
    /* invalid requests are refused up front, with no callback */
    q = get_req("/a b");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &x, NULL), WEFT_EINVAL);
    q = get_req("/x\r\nInjected: 1");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &x, NULL), WEFT_EINVAL);
    weft_http_header_t bad[] = {{WEFT_STR("X"), WEFT_STR("a\r\nB: c")}};
    q = get_req("/");
    q.headers = bad;
    q.nheaders = 1;
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &x, NULL), WEFT_EINVAL);
    assert_int_equal(x.done, 1);
    /* close with a call in flight fails it */
    result_t y = {0};
    q = get_req("/never");
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &y, NULL), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    close_client(&loop, c);
    assert_int_equal(y.done, 1);
    assert_int_equal(y.err, WEFT_ECANCELED);
}

/* A raw server that answers every connection with fixed bytes and closes. */
static int raw_fd;
static const char *raw_answer;

static void *raw_server(void *arg)
{
    for (int i = 0; i < 1; i++) {
        int c = accept(raw_fd, NULL, NULL);
        if (c < 0) return NULL;
        char buf[1024];
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        (void)n;
        send(c, raw_answer, strlen(raw_answer), MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static void test_garbage_and_until_close(void **state)
{
    raw_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(raw_fd, (struct sockaddr *)&a, sizeof(a));
    listen(raw_fd, 4);
    socklen_t al = sizeof(a);
    getsockname(raw_fd, (struct sockaddr *)&a, &al);
    uv_loop_t loop;
    uv_loop_init(&loop);
    weft_http_client_t *c;
    assert_int_equal(weft_http_client_new(&loop, NULL, &c), 0);
    pthread_t th;
    raw_answer = "HTTP/1.0 200 OK\r\n\r\nuntil close";
    pthread_create(&th, NULL, raw_server, NULL);
    result_t r = {0};
    weft_http_client_req_t q = get_req("/");
    q.port = ntohs(a.sin_port);
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &r, NULL), 0);
    run_until(&loop, &r.done, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.blen, 11);
    assert_memory_equal(r.body, "until close", 11);
    pthread_join(th, NULL);
    raw_answer = "HTTQ/9 nonsense\r\n\r\n";
    pthread_create(&th, NULL, raw_server, NULL);
    result_t g = {0};
    assert_int_equal(weft_http_client_request(c, &q, &cbs, &g, NULL), 0);
    run_until(&loop, &g.done, 1);
    assert_int_equal(g.err, WEFT_EPARSE);
    close(raw_fd);
    pthread_join(th, NULL);
    close_client(&loop, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framings_and_reuse),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_garbage_and_until_close),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
