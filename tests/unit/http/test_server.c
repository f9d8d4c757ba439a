/*
 * test_server.c - the HTTP server over real loopback sockets.
 *
 * One worker loop serves a server with a handful of routes (sync, async, echo, streamed
 * body, streamed response); the test thread talks to it with blocking sockets and checks
 * the bytes that come back. Each test ends with a graceful shutdown and the worker's loop
 * closing with nothing left open.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "loopback.h"

#include "weft/http.h"
#include "weft/workers.h"

typedef struct {
    weft_workers_t *w;
    weft_http_server_t *srv;
    uint16_t port;
} fixture_t;

/* ---- handlers ---- */

static void h_hello(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "text/plain", "hello", 5);
}

static void h_name(weft_http_request_t *req, void *arg)
{
    weft_str_t n = weft_http_request_param(req, "name");
    char buf[128];
    int len = snprintf(buf, sizeof(buf), "hi %.*s", (int)n.len, n.base);
    weft_http_respond(req, 200, "text/plain", buf, (size_t)len);
}

static void h_echo(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "application/octet-stream", req->body.base, req->body.len);
}

/* "authority|path|query" of the request, to see how each target form was taken apart. */
static void h_where(weft_http_request_t *req, void *arg)
{
    char buf[512];
    int len =
        snprintf(buf, sizeof(buf), "%.*s|%.*s|%.*s", (int)req->authority.len, req->authority.base,
                 (int)req->path.len, req->path.base, (int)req->query.len, req->query.base);
    weft_http_respond(req, 200, "text/plain", buf, (size_t)len);
}

static void on_slow_timer(uv_timer_t *t)
{
    weft_http_request_t *req = t->data;
    weft_http_response_header(req, "X-Slow", "yes");
    weft_http_respond(req, 200, "text/plain", "slow", 4);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_slow(weft_http_request_t *req, void *arg)
{
    uv_timer_t *t = malloc(sizeof(*t));
    uv_timer_init(req->loop, t);
    t->data = req;
    uv_timer_start(t, on_slow_timer, 30, 0);
}

typedef struct {
    size_t total;
} count_t;

static void count_body(weft_http_request_t *req, const char *data, size_t len)
{
    count_t *ct = req->data;
    if (len == 0 && data == NULL) {
        char out[64];
        int n = snprintf(out, sizeof(out), "%zu", ct->total);
        weft_http_respond(req, 200, "text/plain", out, (size_t)n);
        return;
    }
    ct->total += len;
}

static void h_count(weft_http_request_t *req, void *arg)
{
    count_t *ct = weft_http_request_alloc(req, sizeof(*ct));
    ct->total = 0;
    req->data = ct;
    req->on_body = count_body;
}

static void h_chunks(weft_http_request_t *req, void *arg)
{
    weft_http_response_start(req, 200, "text/plain", -1);
    weft_http_response_write(req, "abc", 3);
    weft_http_response_write(req, "defgh", 5);
    weft_http_response_end(req);
}

/* GET /peer: "PEER IP", the peer string and the address alone (weft_http_request_peer_ip) */
static void h_peer(weft_http_request_t *req, void *arg)
{
    const char *peer = weft_http_request_peer(req);
    weft_str_t ip = weft_http_request_peer_ip(req);
    char out[128];
    int n = snprintf(out, sizeof(out), "%s %.*s", peer, (int)ip.len, ip.base);
    weft_http_respond(req, 200, "text/plain", out, (size_t)n);
}

/* GET /park: a streamed response begins ("parked"), then reading is paused; the handler
 * finishes when it is told that its client closed ("told"). */
static void on_park_event(weft_http_request_t *req, weft_http_event_t ev)
{
    if (ev != WEFT_HTTP_EVENT_CLIENT_CLOSED) return;
    weft_http_response_write(req, "told", 4);
    weft_http_response_end(req);
}

static void h_park(weft_http_request_t *req, void *arg)
{
    req->on_event = on_park_event;
    weft_http_request_pause(req);
    weft_http_response_start(req, 200, "text/plain", -1);
    weft_http_response_write(req, "parked", 6);
}

/* GET|POST /poll/:name: parks the request (weft_http_request_park, twice: the second call
 * changes nothing), then answers from its strings when its timer fires (20 ms; 60 s with
 * ?long) or when it is told its client is going. Under ASan a string still pointing into
 * the read buffer given back is a use after free. */
static _Atomic int polls_parked;

static void poll_answer(weft_http_request_t *req, weft_http_event_t ev)
{
    weft_str_t n = weft_http_request_param(req, "name"), t = weft_http_request_header(req, "X-Tag");
    char buf[512];
    int len =
        snprintf(buf, sizeof(buf), "park=%d ev=%d name=%.*s q=%.*s tag=%.*s host=%.*s body=%.*s",
                 (int)(intptr_t)req->data, (int)ev, (int)n.len, n.base, (int)req->query.len,
                 req->query.base, (int)t.len, t.base, (int)req->authority.len, req->authority.base,
                 (int)req->body.len, req->body.base);
    weft_http_respond(req, 200, "text/plain", buf, (size_t)len);
}

static void h_poll(weft_http_request_t *req, void *arg)
{
    int rc = weft_http_request_park(req);
    if (rc == 0) rc = weft_http_request_park(req);
    req->data = (void *)(intptr_t)rc;
    req->on_event = poll_answer;
    bool long_wait = req->query.len == 4 && memcmp(req->query.base, "long", 4) == 0;
    assert_int_equal(weft_http_request_timer(req, long_wait ? 60000 : 20), 0);
    atomic_fetch_add(&polls_parked, 1);
}

/* GET /abort: a chunked response that breaks off after its first chunk. */
static void h_abort(weft_http_request_t *req, void *arg)
{
    weft_http_response_start(req, 200, "text/plain", -1);
    weft_http_response_write(req, "part", 4);
    assert_int_equal(weft_http_response_abort(req), 0);
}

/* GET /cork: outside the parser (its timer, 20 ms), a corked head of a 5-byte response is
 * started; the body is written 200 ms later, and the head goes with it, not before. */
static void cork_event(weft_http_request_t *req, weft_http_event_t ev)
{
    if (ev != WEFT_HTTP_EVENT_TIMER) return;
    if (!req->data) {
        weft_http_response_cork(req);
        assert_int_equal(weft_http_response_start(req, 200, "text/plain", 5), 0);
        req->data = req;
        assert_int_equal(weft_http_request_timer(req, 200), 0);
        return;
    }
    assert_int_equal(weft_http_response_write(req, "corky", 5), 0);
    weft_http_response_end(req);
}

static void h_cork(weft_http_request_t *req, void *arg)
{
    req->data = NULL;
    req->on_event = cork_event;
    assert_int_equal(weft_http_request_timer(req, 20), 0);
}

/* ---- fixture ---- */

static void attach(uv_loop_t *loop, unsigned i, void *arg)
{
    fixture_t *f = arg;
    assert_int_equal(weft_http_server_attach(f->srv, loop, i), 0);
}

static void stop_one(uv_loop_t *loop, unsigned i, void *arg)
{
    fixture_t *f = arg;
    weft_http_server_shutdown(f->srv, i, NULL, NULL);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.max_body = 1000;
    o.head_timeout_ms = 1000;
    o.shutdown_timeout_ms = 2000;
    assert_int_equal(weft_http_server_new(&o, 1, &f->srv), 0);
    weft_http_route_t r = {.handler = h_hello};
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/hello", &r), 0);
    r.handler = h_name;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/hello/:name", &r), 0);
    r.handler = h_echo;
    assert_int_equal(weft_http_server_route(f->srv, "POST", "/echo", &r), 0);
    r.handler = h_slow;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/slow", &r), 0);
    r.handler = h_chunks;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/chunks", &r), 0);
    r.handler = h_peer;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/peer", &r), 0);
    r.handler = h_park;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/park", &r), 0);
    r.handler = h_abort;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/abort", &r), 0);
    r.handler = h_cork;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/cork", &r), 0);
    r.handler = h_poll;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/poll/:name", &r), 0);
    assert_int_equal(weft_http_server_route(f->srv, "POST", "/poll/:name", &r), 0);
    r.handler = h_where;
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/", &r), 0);
    assert_int_equal(weft_http_server_route(f->srv, "GET", "/where/*rest", &r), 0);
    r = (weft_http_route_t){.handler = h_count, .stream_body = true, .max_body = 1 << 20};
    assert_int_equal(weft_http_server_route(f->srv, "POST", "/count", &r), 0);
    char err[256];
    assert_int_equal(weft_http_server_bind(f->srv, err, sizeof(err)), 0);
    f->port = weft_http_server_port(f->srv);
    assert_true(f->port > 0);
    assert_int_equal(weft_workers_new(1, &f->w), 0);
    assert_int_equal(weft_workers_start(f->w, attach, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    weft_workers_stop(f->w, stop_one, f);
    weft_workers_join(f->w);
    weft_workers_free(f->w);
    weft_http_server_free(f->srv);
    free(f);
    return 0;
}

/* ---- client ---- */

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* The client reads each response by its framing, as an HTTP client does, never until the
 * line goes quiet: a slow server makes a test slower, not wrong. WAIT_MS without a byte
 * fails the test; it only turns a hang into a failure and is never the expected outcome. */
#define WAIT_MS 10000

/* The length of the response at the start of buf (n bytes) once it is complete, else 0. A
 * 1xx, 204 or 304 response, or one to HEAD (head), ends with its head; otherwise
 * Content-Length or the chunked coding (chunks, trailer fields, empty line) says where the
 * body ends. A response with neither ends when the server closes: 0 here. */
static size_t response_len(const char *buf, size_t n, bool head)
{
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end || n < 12) return 0;
    size_t hlen = (size_t)(end - buf) + 4;
    int status = atoi(buf + 9); /* "HTTP/1.1 200" */
    if (head || (status >= 100 && status < 200) || status == 204 || status == 304) return hlen;
    long long cl = -1;
    bool chunked = false;
    for (const char *line = strstr(buf, "\r\n") + 2; line < end;) {
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            cl = strtoll(line + 15, NULL, 10);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
                 memmem(line, (size_t)(eol - line), "chunked", 7))
            chunked = true;
        line = eol + 2;
    }
    if (chunked) {
        size_t p = hlen;
        for (;;) { /* chunk-size line, data, CRLF; the last chunk has size 0 */
            const char *eol = memmem(buf + p, n - p, "\r\n", 2);
            if (!eol) return 0;
            size_t size = strtoul(buf + p, NULL, 16);
            p = (size_t)(eol - buf) + 2;
            if (size == 0) break;
            if (n - p < size + 2) return 0;
            p += size + 2;
        }
        for (;;) { /* trailer fields up to the empty line */
            const char *eol = memmem(buf + p, n - p, "\r\n", 2);
            if (!eol) return 0;
            bool empty = eol == buf + p;
            p = (size_t)(eol - buf) + 2;
            if (empty) return p;
        }
    }
    if (cl >= 0) return n - hlen >= (size_t)cl ? hlen + (size_t)cl : 0;
    return 0;
}

/* How many complete responses buf (n bytes) holds, one after the other. */
static int responses_in(const char *buf, size_t n, bool head)
{
    int k = 0;
    for (size_t len; n && (len = response_len(buf, n, head)) != 0; buf += len, n -= len) k++;
    return k;
}

/* Reads into buf until it holds `want` complete responses (all to HEAD when head) or the
 * server closes (*closed = 1); returns the bytes read, buf NUL-terminated. */
static size_t recv_responses(int fd, char *buf, size_t cap, int want, bool head, int *closed)
{
    size_t n = 0;
    *closed = 0;
    for (;;) {
        buf[n] = 0;
        if (responses_in(buf, n, head) >= want) return n;
        assert_true(n < cap - 1); /* the buffer holds what the test expects */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1)
            fail_msg("nothing from the server for %d ms; so far: %.300s", WAIT_MS, buf);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0) {
            *closed = 1;
            return n;
        }
        n += (size_t)r;
    }
}

/* Reads into buf until the server closes the connection. */
static size_t recv_to_close(int fd, char *buf, size_t cap)
{
    int closed;
    return recv_responses(fd, buf, cap, INT_MAX, false, &closed);
}

static int count_of(const char *hay, const char *needle)
{
    int k = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) k++;
    return k;
}

/* After the answers in buf have been read from fd: *closed says whether the server closed
 * the connection. A response that says Connection: close must be followed by the close, and
 * anything sent before it is appended to buf (a test counting responses sees it); else one
 * more request must be answered on the connection, 200 and nothing besides. */
static void after_answers(int fd, char *buf, size_t n, size_t cap, int *closed)
{
    if (*closed) return;
    if (strcasestr(buf, "\r\nConnection: close\r\n")) {
        recv_to_close(fd, buf + n, cap - n);
        *closed = 1;
        return;
    }
    static const char probe[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char got[4096];
    got[0] = 0;
    if (send(fd, probe, sizeof(probe) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(probe) - 1))
        recv_to_close(fd, got, sizeof(got));
    *closed = got[0] == 0;
    if (!*closed && (responses_in(got, strlen(got), false) != 1 || !strstr(got, "\r\n\r\nhello")))
        fail_msg("a request after the answers got: %.300s", got);
}

/* Sends req on a new connection and reads `want` responses (to HEAD when head); *closed as
 * after_answers says. The buffer is reused by the next call. */
static char *exchange_n(fixture_t *f, const char *req, int want, bool head, int *closed)
{
    static char buf[65536];
    int fd = test_dial(f->port);
    send_all(fd, req, strlen(req));
    size_t n = recv_responses(fd, buf, sizeof(buf), want, head, closed);
    after_answers(fd, buf, n, sizeof(buf), closed);
    close(fd);
    return buf;
}

/* One request, one response. */
static char *exchange(fixture_t *f, const char *req, int *closed)
{
    return exchange_n(f, req, 1, false, closed);
}

/* ---- tests ---- */

static void test_get(void **state)
{
    int closed;
    char *r = exchange(*state, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "\r\nContent-Length: 5\r\n"));
    assert_non_null(strstr(r, "\r\nDate: "));
    assert_non_null(strstr(r, "\r\n\r\nhello"));
    assert_false(closed); /* keep-alive */
}

static void test_params_404_405(void **state)
{
    int closed;
    char *r = exchange(*state, "GET /hello/bob HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    assert_non_null(strstr(r, "\r\n\r\nhi bob"));
    r = exchange(*state, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    r = exchange(*state, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
}

static void test_pipelined_in_order(void **state)
{
    int closed;
    char *r = exchange_n(*state,
                         "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /hello/b HTTP/1.1\r\nHost: x\r\n\r\n",
                         4, false, &closed);
    assert_int_equal(count_of(r, "HTTP/1.1 200 OK"), 4);
    char *s1 = strstr(r, "slow"), *a = strstr(r, "hi a"), *b = strstr(r, "hi b");
    assert_non_null(s1);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(s1 < a);
    assert_true(a < strstr(a, "slow"));
    assert_true(strstr(a, "slow") < b);
}

/* More pipelined bytes than the read buffer holds arrive behind a slow request: reading
 * stops with the rest still in the socket and resumes when that request ends, without new
 * bytes to announce them (the connection's reads are edge-triggered: reader.c, do_read). */
static void test_pipelined_beyond_the_read_buffer(void **state)
{
    static char req[32768];
    size_t n = (size_t)snprintf(req, sizeof(req), "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 400; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n",
                              i);
    assert_true(n > 3 * 4096 && n < sizeof(req) - 1); /* 4096: RBUF_INITIAL, server_int.h */
    int closed;
    char *r = exchange_n(*state, req, 401, false, &closed);
    assert_int_equal(count_of(r, "HTTP/1.1 200 OK"), 401);
    assert_non_null(strstr(r, "\r\n\r\nhi 399"));
    assert_false(closed);
}

/* A parked request keeps its strings (target, query, headers, path parameters, authority,
 * body) after its read buffer is given back, and its connection serves the next request
 * (exchange's probe) with a read buffer taken again. */
static void test_park(void **state)
{
    int closed;
    char *r = exchange(*state,
                       "GET /poll/J%C3%BCrgen?x=1 HTTP/1.1\r\nHost: example\r\n"
                       "X-Tag: tagged\r\n\r\n",
                       &closed);
    assert_non_null(
        strstr(r, "park=0 ev=3 name=J\xc3\xbcrgen q=x=1 tag=tagged host=example body="));
    assert_false(closed);
    /* a request with a body: its head was copied for the body already */
    r = exchange(*state,
                 "POST /poll/b HTTP/1.1\r\nHost: h\r\nX-Tag: t2\r\n"
                 "Content-Length: 5\r\n\r\nabcde",
                 &closed);
    assert_non_null(strstr(r, "park=0 ev=3 name=b q= tag=t2 host=h body=abcde"));
    assert_false(closed);
}

/* An aborted response reaches the client truncated: its first chunk, then the close, never
 * the last chunk that would make it look complete. */
static void test_response_abort(void **state)
{
    fixture_t *f = *state;
    int fd = test_dial(f->port);
    static const char req[] = "GET /abort HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    char buf[4096];
    size_t n = recv_to_close(fd, buf, sizeof(buf));
    close(fd);
    buf[n] = 0;
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "\r\n4\r\npart\r\n"));
    assert_null(strstr(buf, "\r\n0\r\n\r\n"));
}

/* A corked head is not sent on its own: nothing arrives until the body is written (at
 * 220 ms; an uncorked head would come at 20 ms), then head and body together. */
static void test_response_cork(void **state)
{
    fixture_t *f = *state;
    int fd = test_dial(f->port);
    static const char req[] = "GET /cork HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 120), 0); /* nothing yet at 120 ms */
    char buf[4096] = "";
    size_t n = 0;
    while (!strstr(buf, "corky")) {
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        assert_true(r > 0);
        n += (size_t)r;
        buf[n] = 0;
    }
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Length: 5\r\n"));
}

/* A request with the next one buffered behind it keeps its buffer (WEFT_ESTATE); both are
 * answered in order. */
static void test_park_pipelined(void **state)
{
    int closed;
    char *r = exchange_n(*state,
                         "GET /poll/a HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                         2, false, &closed);
    char want[64];
    snprintf(want, sizeof(want), "park=%d ev=3 name=a", WEFT_ESTATE);
    assert_non_null(strstr(r, want));
    assert_non_null(strstr(r, "\r\n\r\nhello"));
    assert_true(strstr(r, want) < strstr(r, "\r\n\r\nhello"));
    assert_false(closed);
}

/* With its buffer given back, the connection does not read; the client's FIN is still told
 * at once (the reader's hup hook), long before the request's 60 s timer. */
static void test_park_client_closed(void **state)
{
    fixture_t *f = *state;
    int before = atomic_load(&polls_parked);
    int fd = test_dial(f->port);
    static const char req[] = "GET /poll/c?long HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    for (int i = 0; atomic_load(&polls_parked) == before; i++) {
        if (i == WAIT_MS) fail_msg("the request was not parked in %d ms", WAIT_MS);
        usleep(1000);
    }
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    char buf[4096];
    int closed;
    recv_responses(fd, buf, sizeof(buf), 1, false, &closed);
    close(fd);
    char want[64];
    snprintf(want, sizeof(want), "park=0 ev=%d name=c q=long", WEFT_HTTP_EVENT_CLIENT_CLOSED);
    assert_non_null(strstr(buf, want));
}

/* A handler holding a request whose reading is paused still learns at once that its client
 * is going: the FIN is not read (reading is off), but its edge is seen (the reader's hup
 * hook) and on_event(CLIENT_CLOSED) runs. The client half-closes only once the handler holds
 * the request ("parked" came back), then reads the rest of the response. */
static void test_client_closed_while_paused(void **state)
{
    fixture_t *f = *state;
    int fd = test_dial(f->port);
    static const char req[] = "GET /park HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    char buf[4096];
    size_t n = 0;
    bool half_closed = false;
    while (responses_in(buf, n, false) < 1) { /* "parked", then (after the FIN) "told" */
        if (!half_closed && memmem(buf, n, "parked", 6)) {
            assert_int_equal(shutdown(fd, SHUT_WR), 0);
            half_closed = true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1)
            fail_msg("nothing in %d ms; so far: %.*s", WAIT_MS, (int)n, buf);
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        assert_true(r > 0);
        n += (size_t)r;
    }
    buf[n] = 0;
    assert_true(half_closed);
    assert_non_null(strstr(buf, "told"));
    assert_non_null(strstr(buf, "\r\n0\r\n\r\n"));
    close(fd);
}

/* Requests and the client's FIN arrive together: both are answered, then the server
 * closes. The FIN has no edge of its own after the bytes it came with (reader.c, do_read). */
static void test_requests_then_half_close(void **state)
{
    fixture_t *f = *state;
    static const char req[] = "GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /hello/b HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 20; i++) {
        static char buf[4096];
        int closed, fd = test_dial(f->port);
        send_all(fd, req, sizeof(req) - 1);
        shutdown(fd, SHUT_WR);
        recv_responses(fd, buf, sizeof(buf), INT_MAX, false, &closed); /* to the close */
        close(fd);
        assert_int_equal(count_of(buf, "HTTP/1.1 200 OK"), 2);
        assert_true(closed);
    }
}

static void test_bodies(void **state)
{
    int closed;
    char *r = exchange(*state, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nabcdefg",
                       &closed);
    assert_non_null(strstr(r, "\r\nContent-Length: 7\r\n\r\nabcdefg"));
    r = exchange(*state,
                 "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
                 &closed);
    assert_non_null(strstr(r, "\r\nContent-Length: 5\r\n\r\nabcde"));
    r = exchange(*state, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", &closed);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    assert_non_null(strstr(r, "Connection: close"));
    assert_true(closed);
}

static void test_expect_continue_and_head(void **state)
{
    fixture_t *f = *state;
    int fd = test_dial(f->port), closed;
    char buf[4096];
    const char *h =
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    send_all(fd, h, strlen(h));
    recv_responses(fd, buf, sizeof(buf), 1, false, &closed);
    assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    send_all(fd, "xyz", 3);
    recv_responses(fd, buf, sizeof(buf), 1, false, &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\nxyz"));
    close(fd);
    char *r = exchange_n(f, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", 1, true, &closed);
    assert_non_null(strstr(r, "\r\nContent-Length: 5\r\n"));
    assert_null(strstr(r, "hello"));
}

static void test_streams(void **state)
{
    int closed;
    char *r = exchange(*state, "GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    assert_non_null(strstr(r, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"));
    /* A streamed request body larger than the buffered limit, in many pieces. */
    fixture_t *f = *state;
    int fd = test_dial(f->port);
    const char *h = "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n";
    send_all(fd, h, strlen(h));
    char chunk[10000];
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 20; i++) send_all(fd, chunk, sizeof(chunk));
    char buf[4096];
    recv_responses(fd, buf, sizeof(buf), 1, false, &closed);
    assert_non_null(strstr(buf, "\r\n\r\n200000"));
    close(fd);
}

static void test_malformed_and_smuggling(void **state)
{
    static const struct {
        const char *req;
        const char *status;
    } cases[] = {
        {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
         "400"},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
         "400"},
        {"GET /hello HTTP/1.1\r\n\r\n", "400"},
        {"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
        {"FOO /hello HTTP/1.1\r\nHost: x\r\n\r\n", "501"},
        {"G@T /hello HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
        {"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", "505"},
        {"GET /hello HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", "417"},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         "501"},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"},
        {"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "400"},
        {"GET /hello HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "400"},
    };
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int closed;
        char *r = exchange(f, cases[i].req, &closed);
        char want[32];
        snprintf(want, sizeof(want), "HTTP/1.1 %s ", cases[i].status);
        if (strncmp(r, want, strlen(want)) != 0)
            fail_msg("case %zu: want %s, got: %.80s", i, cases[i].status, r);
        assert_int_equal(count_of(r, "HTTP/1.1 "), 1);
        assert_non_null(strstr(r, "Connection: close"));
        assert_true(closed);
    }
    int closed;
    char *r = exchange(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
}

/* The target and header values are scanned eight bytes at a time: put one byte at every
 * position of a 24-byte piece, so it lands in each lane of a word and in the tail. Bytes
 * >= 0x80 must pass (no false alarm from the word tricks); DEL in the target and a bare CR
 * in a value must be caught wherever they are. */
static void test_scan_every_position(void **state)
{
    fixture_t *f = *state;
    char req[256];
    for (int k = 0; k < 24; k++) {
        char piece[25];
        memset(piece, 'a', 24);
        piece[24] = 0;
        static const struct {
            int in_target;
            char byte;
            const char *status;
        } cases[] = {{1, (char)0xc3, "200"},
                     {1, 0x7f, "400"},
                     {0, (char)0xc3, "200"},
                     {0, (char)0xff, "200"},
                     {0, '\r', "400"}};
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            piece[k] = cases[i].byte;
            if (cases[i].in_target)
                snprintf(req, sizeof(req), "GET /hello/%s HTTP/1.1\r\nHost: x\r\n\r\n", piece);
            else
                snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: x\r\nX-V: %s\r\n\r\n",
                         piece);
            piece[k] = 'a';
            int closed;
            char *r = exchange(f, req, &closed);
            char want[32];
            snprintf(want, sizeof(want), "HTTP/1.1 %s ", cases[i].status);
            if (strncmp(r, want, strlen(want)) != 0)
                fail_msg("position %d, case %zu: want %s, got: %.80s", k, i, cases[i].status, r);
        }
    }
}

static void test_head_limits(void **state)
{
    fixture_t *f = *state;
    size_t big = 70 * 1024;
    char *req = malloc(big + 128);
    int n = sprintf(req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    int closed;
    char *r = exchange(f, req, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 431 "));
    n = sprintf(req, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 101; i++) n += sprintf(req + n, "X-H%d: v\r\n", i);
    strcpy(req + n, "\r\n");
    r = exchange(f, req, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 431 "));
    n = sprintf(req, "GET /");
    memset(req + n, 'a', 9000);
    strcpy(req + n + 9000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    r = exchange(f, req, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 414 "));
    free(req);
}

static void test_head_timeout(void **state)
{
    fixture_t *f = *state;
    int fd = test_dial(f->port), closed;
    send_all(fd, "GET /hel", 8);
    char buf[4096];
    recv_responses(fd, buf, sizeof(buf), INT_MAX, false, &closed); /* after head_timeout_ms */
    assert_non_null(strstr(buf, "HTTP/1.1 408 "));
    assert_true(closed);
    close(fd);
}

static void test_http10(void **state)
{
    int closed;
    char *r = exchange(*state, "GET /hello HTTP/1.0\r\n\r\n", &closed);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(r, "Connection: close"));
    assert_true(closed);
    r = exchange(*state, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &closed);
    assert_non_null(strstr(r, "Connection: keep-alive"));
    assert_false(closed);
}

/* RFC 9112 3.2: origin-form, absolute-form (routed on its path; its authority replaces the
 * Host header), asterisk-form only for OPTIONS, anything else a 400. */
static void test_target_forms(void **state)
{
    static const struct {
        const char *req;
        const char *want; /* in the response */
    } cases[] = {
        {"GET /where/a?x=1 HTTP/1.1\r\nHost: h.example:81\r\n\r\n",
         "\r\n\r\nh.example:81|/where/a|x=1"},
        {"GET http://api.example:8080/where/b?y=2 HTTP/1.1\r\nHost: other\r\n\r\n",
         "\r\n\r\napi.example:8080|/where/b|y=2"},
        {"GET HTTPS://[::1]:8443/where/c HTTP/1.1\r\nHost: other\r\n\r\n",
         "\r\n\r\n[::1]:8443|/where/c|"},
        {"GET http://api.example HTTP/1.1\r\nHost: api.example\r\n\r\n", "\r\n\r\napi.example|/|"},
        {"GET http://api.example?z=3 HTTP/1.1\r\nHost: api.example\r\n\r\n",
         "\r\n\r\napi.example|/|z=3"},
        {"GET /where/d HTTP/1.0\r\n\r\n", "\r\n\r\n|/where/d|"},
        {"GET http://u:p@api.example/where HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET http:///where HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET ftp://api.example/where HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 "},
        {"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n", "HTTP/1.1 404 "},
        /* Host (and an absolute target's authority) must be a host[:port] */
        {"GET /where/h HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "\r\n\r\n[::1]:8080|/where/h|"},
        {"GET /where/h HTTP/1.1\r\nHost: a-b.c_d~e:\r\n\r\n", "\r\n\r\na-b.c_d~e:|/where/h|"},
        {"GET /where/h HTTP/1.1\r\nHost:\r\n\r\n", "\r\n\r\n|/where/h|"},
        {"GET /where/h HTTP/1.1\r\nHost: a/b\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: u@h\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: :80\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: h:123456\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: h:8o\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: [zz]\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: []\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: [::1\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /where/h HTTP/1.1\r\nHost: h\"x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET http://a<b/where HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int closed;
        char *r = exchange(*state, cases[i].req, &closed);
        if (!strstr(r, cases[i].want)) fail_msg("%s\n-> %s", cases[i].req, r);
    }
}

/* Path parameters reach handlers percent-decoded; the route was matched on the path as
 * sent, so "%2F" stays inside one segment. Bad escapes and %00 get 400. */
static void test_params_decoded(void **state)
{
    static const struct {
        const char *req;
        const char *want;
    } cases[] = {
        {"GET /hello/J%C3%BCrgen%20B HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n\r\nhi J\xc3\xbcrgen B"},
        {"GET /hello/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n\r\nhi a/b"},
        {"GET /hello/%41%62%63 HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n\r\nhi Abc"},
        {"GET /hello/plain HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n\r\nhi plain"},
        {"GET /where/x%3Fy/%25 HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nh|/where/x%3Fy/%25|"},
        {"GET /hello/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /hello/ab%4 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /hello/ab% HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /hello/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /nope/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "}, /* no route: 404 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int closed;
        char *r = exchange(*state, cases[i].req, &closed);
        if (!strstr(r, cases[i].want)) fail_msg("%s\n-> %s", cases[i].req, r);
    }
}

/* weft_http_request_peer: the client's "ip:port", the same on every request of a
 * connection; IPv6 in brackets. */
static void test_peer(void **state)
{
    fixture_t *f = *state;
    int fd = test_dial(f->port), closed;
    struct sockaddr_in me;
    socklen_t ml = sizeof(me);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
    char want[64], buf[4096];
    snprintf(want, sizeof(want), "\r\n\r\n127.0.0.1:%u 127.0.0.1", (unsigned)ntohs(me.sin_port));
    for (int i = 0; i < 2; i++) { /* the second answer comes from the kept string */
        static const char req[] = "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n";
        send_all(fd, req, sizeof(req) - 1);
        recv_responses(fd, buf, sizeof(buf), 1, false, &closed);
        if (!strstr(buf, want)) fail_msg("want %s in %s", want + 4, buf);
    }
    close(fd);

    /* a server of its own on ::1 */
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.host = "::1";
    weft_http_server_t *srv;
    assert_int_equal(weft_http_server_new(&o, 1, &srv), 0);
    weft_http_route_t r = {.handler = h_peer};
    assert_int_equal(weft_http_server_route(srv, "GET", "/peer", &r), 0);
    char err[256];
    if (weft_http_server_bind(srv, err, sizeof(err)) != 0) { /* no IPv6 loopback here */
        weft_http_server_free(srv);
        return;
    }
    fixture_t f6 = {.srv = srv, .port = weft_http_server_port(srv)};
    assert_int_equal(weft_workers_new(1, &f6.w), 0);
    assert_int_equal(weft_workers_start(f6.w, attach, &f6), 0);
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(f6.port)};
    inet_pton(AF_INET6, "::1", &a.sin6_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct sockaddr_in6 me6;
    ml = sizeof(me6);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me6, &ml), 0);
    snprintf(want, sizeof(want), "\r\n\r\n[::1]:%u ::1", (unsigned)ntohs(me6.sin6_port));
    static const char req[] = "GET /peer HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    recv_to_close(fd, buf, sizeof(buf));
    close(fd);
    if (!strstr(buf, want)) fail_msg("want %s in %s", want + 4, buf);
    weft_workers_stop(f6.w, stop_one, &f6);
    weft_workers_join(f6.w);
    weft_workers_free(f6.w);
    weft_http_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_404_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_beyond_the_read_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_closed_while_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_cork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_client_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_then_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_and_smuggling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_every_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
