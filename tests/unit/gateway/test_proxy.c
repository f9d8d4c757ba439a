/*
 * test_proxy.c - the gateway proxying on a real host (src/gateway/): one process, a host
 * with two workers serving an upstream server and the gateway in front of it, driven from
 * the test's thread over loopback sockets.
 *
 * Checked: the path sent upstream (strip_prefix, the query), the headers added
 * (X-Forwarded-For/-Proto/-Host, X-Request-Id) and the hop-by-hop ones dropped both ways, a
 * request body streamed (4 MiB, chunked) and a response body streamed (8 MiB) intact; no
 * route 404, an upstream that refuses 502, one too slow for the route's timeout 504, one
 * that breaks off in its body a truncated response; keep-alive to the client across
 * requests. Every answer is read by its framing, with a 10 s bound that only turns a hang
 * into a failure.
 */
#include <arpa/inet.h>
#include <poll.h>
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

#include "loopback.h"

#include "gateway/gateway.h"
#include "weft/weft.h"

static weft_host_t *host;
static weft_gateway_t *gw;
static weft_metrics_registry_t *metrics;
static uint16_t up_port, gw_port, dead_port;
static pthread_t runner;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool started, ran;

/* ---- the upstream ---- */

/* "METHOD TARGET|xff|proto|xhost|rid|te|upgrade|len" then the body. */
static void u_echo(weft_http_request_t *req, void *arg)
{
    (void)arg;
    weft_str_t xff = weft_http_request_header(req, "X-Forwarded-For"),
               pr = weft_http_request_header(req, "X-Forwarded-Proto"),
               xh = weft_http_request_header(req, "X-Forwarded-Host"),
               rid = weft_http_request_header(req, "X-Request-Id"),
               up = weft_http_request_header(req, "Upgrade"),
               kp = weft_http_request_header(req, "X-Keep");
    char head[1024];
    int n = snprintf(head, sizeof(head), "%.*s %.*s|%.*s|%.*s|%.*s|%zu|%.*s|%.*s|%zu\n",
                     (int)req->method.len, req->method.base, (int)req->target.len, req->target.base,
                     (int)xff.len, xff.base, (int)pr.len, pr.base, (int)xh.len, xh.base, rid.len,
                     (int)up.len, up.base, (int)kp.len, kp.base, req->body.len);
    weft_http_response_header(req, "X-Up", "yes");
    weft_http_response_header(req, "Keep-Alive", "timeout=5"); /* hop-by-hop: dropped */
    weft_http_response_start(req, 200, "text/plain", (int64_t)((size_t)n + req->body.len));
    weft_http_response_write(req, head, (size_t)n);
    weft_http_response_write(req, req->body.base, req->body.len);
    weft_http_response_end(req);
}

/* 8 MiB of a repeating pattern, chunked, honouring back-pressure. */
typedef struct {
    size_t sent;
} big_t;
#define BIG (8u << 20)

static void big_more(weft_http_request_t *req)
{
    big_t *b = req->data;
    static char block[16384];
    for (size_t i = 0; i < sizeof(block); i++) block[i] = (char)('a' + i % 26);
    while (b->sent < BIG) {
        int rc = weft_http_response_write(req, block, sizeof(block));
        b->sent += sizeof(block);
        if (rc == WEFT_EAGAIN) return; /* on_drain goes on */
        if (rc != 0) break;
    }
    weft_http_response_end(req);
}

static void u_big(weft_http_request_t *req, void *arg)
{
    (void)arg;
    big_t *b = weft_http_request_alloc(req, sizeof(*b));
    b->sent = 0;
    req->data = b;
    req->on_drain = big_more;
    weft_http_response_start(req, 200, "application/octet-stream", -1);
    big_more(req);
}

static void slow_event(weft_http_request_t *req, weft_http_event_t ev)
{
    (void)ev;
    weft_http_respond(req, 200, "text/plain", "late", 4);
}

static void u_slow(weft_http_request_t *req, void *arg)
{
    (void)arg;
    req->on_event = slow_event;
    weft_http_request_timer(req, 3000);
}

static void u_cut(weft_http_request_t *req, void *arg)
{
    (void)arg;
    weft_http_response_start(req, 200, "text/plain", 100);
    weft_http_response_write(req, "0123456789", 10);
    weft_http_response_abort(req);
}

/* ---- the host ---- */

static void on_start(weft_host_t *h, void *arg)
{
    (void)h, (void)arg;
    pthread_mutex_lock(&mu);
    started = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
}

static void *run(void *arg)
{
    (void)arg;
    weft_host_run(host);
    pthread_mutex_lock(&mu);
    ran = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static gw_route_t route(const char *name, gw_match_kind_t kind, const char *path, uint16_t port)
{
    gw_route_t r;
    memset(&r, 0, sizeof(r));
    r.name = strdup(name);
    r.kind = kind;
    r.path = strdup(path);
    r.path_len = strlen(path);
    r.targets = calloc(1, sizeof(gw_target_t));
    snprintf(r.targets[0].host, sizeof(r.targets[0].host), "127.0.0.1");
    r.targets[0].port = port;
    r.targets[0].weight = 1;
    r.ntargets = 1;
    return r;
}

static int setup(void **state)
{
    (void)state;
    weft_host_options_t ho;
    weft_host_options_init(&ho);
    ho.name = "gw-test";
    ho.workers = 2;
    ho.signals = false;
    assert_int_equal(weft_host_new(&ho, &host), 0);
    /* the upstream, bound first so that the routes know its port */
    weft_http_server_options_t so;
    weft_http_server_options_init(&so);
    so.port = 0;
    so.max_body = 64u << 20;
    weft_http_server_t *up;
    assert_int_equal(weft_http_server_new(&so, 2, &up), 0);
    weft_http_route_t r = {.handler = u_echo};
    assert_int_equal(weft_http_server_route(up, "*", "/echo", &r), 0);
    assert_int_equal(weft_http_server_route(up, "*", "/echo/*rest", &r), 0);
    r.handler = u_big;
    assert_int_equal(weft_http_server_route(up, "GET", "/big", &r), 0);
    r.handler = u_slow;
    assert_int_equal(weft_http_server_route(up, "GET", "/slow", &r), 0);
    r.handler = u_cut;
    assert_int_equal(weft_http_server_route(up, "GET", "/cut", &r), 0);
    char err[256];
    assert_int_equal(weft_http_server_bind(up, err, sizeof(err)), 0);
    up_port = weft_http_server_port(up);
    assert_int_equal(weft_host_add_http(host, up), 0);
    /* a port nobody listens on */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    dead_port = ntohs(a.sin_port);
    close(fd);

    gw_route_t *rs = calloc(8, sizeof(*rs));
    size_t n = 0;
    rs[n] = route("api", GW_MATCH_PREFIX, "/api", up_port);
    rs[n++].strip_prefix = true;
    rs[n] = route("slow", GW_MATCH_EXACT, "/slow", up_port);
    rs[n++].timeout_ms = 300;
    rs[n++] = route("dead", GW_MATCH_PREFIX, "/dead", dead_port);
    rs[n++] = route("cut", GW_MATCH_EXACT, "/cut", up_port);
    rs[n++] = route("big", GW_MATCH_EXACT, "/big", up_port);
    metrics = weft_metrics_registry_new();
    assert_non_null(metrics);
    weft_gateway_options_t go = {
        .host = "127.0.0.1", .port = 0, .routes = rs, .nroutes = n, .metrics = metrics};
    assert_int_equal(weft_gateway_new(host, &go, &gw, err, sizeof(err)), 0);
    weft_host_on_start(host, on_start, NULL);
    started = ran = false;
    pthread_create(&runner, NULL, run, NULL);
    pthread_mutex_lock(&mu);
    while (!started && !ran) pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    assert_true(started);
    gw_port = weft_gateway_port(gw);
    assert_true(gw_port > 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    weft_host_stop(host);
    pthread_join(runner, NULL);
    weft_host_free(host);
    weft_gateway_free(gw);
    weft_metrics_registry_free(metrics);
    return 0;
}

/* ---- the client ---- */

static void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads one response (Content-Length or chunked, or to the close) into a malloc'd buffer:
 * the head, then the body decoded. *closed: the server closed right after it. */
typedef struct {
    int status;
    char head[4096];
    char *body;
    size_t len;
    bool complete; /* its framing said where it ends, and it got there */
} resp_t;

static size_t fill(int fd, char **buf, size_t *cap, size_t n)
{
    if (*cap - n < 65536) {
        *cap = *cap * 2 + 65536;
        *buf = realloc(*buf, *cap);
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1) fail_msg("nothing for 10 s");
    ssize_t r = recv(fd, *buf + n, *cap - n, 0);
    return r > 0 ? (size_t)r : 0;
}

static resp_t read_resp(int fd)
{
    resp_t r = {0};
    size_t cap = 0, n = 0, got;
    char *buf = NULL;
    char *end;
    while (!(buf && (end = memmem(buf, n, "\r\n\r\n", 4)))) {
        if (!(got = fill(fd, &buf, &cap, n))) fail_msg("closed before a head: %.*s", (int)n, buf);
        n += got;
    }
    size_t hl = (size_t)(end - buf) + 4;
    assert_true(hl < sizeof(r.head));
    memcpy(r.head, buf, hl);
    r.head[hl] = 0;
    r.status = atoi(r.head + 9); /* the head is NUL-terminated, buf is not */
    const char *cl = strcasestr(r.head, "\r\nContent-Length: ");
    bool chunked = strcasestr(r.head, "\r\nTransfer-Encoding: chunked") != NULL;
    r.body = malloc(1);
    size_t pos = hl;
    if (cl) {
        size_t want = strtoul(cl + 18, NULL, 10);
        while (n - hl < want && (got = fill(fd, &buf, &cap, n))) n += got;
        r.len = n - hl < want ? n - hl : want;
        r.complete = n - hl >= want;
        r.body = realloc(r.body, r.len + 1);
        memcpy(r.body, buf + hl, r.len);
    } else if (chunked) {
        for (;;) {
            char *eol;
            while (!(eol = memmem(buf + pos, n - pos, "\r\n", 2))) {
                if (!(got = fill(fd, &buf, &cap, n))) goto out;
                n += got;
            }
            size_t size = strtoul(buf + pos, NULL, 16);
            pos = (size_t)(eol - buf) + 2;
            while (n - pos < size + 2) {
                if (!(got = fill(fd, &buf, &cap, n))) goto out;
                n += got;
            }
            if (size == 0) {
                r.complete = true;
                break;
            }
            r.body = realloc(r.body, r.len + size + 1);
            memcpy(r.body + r.len, buf + pos, size);
            r.len += size;
            pos += size + 2;
        }
    }
out:
    r.body[r.len] = 0;
    free(buf);
    return r;
}

static resp_t ask(int fd, const char *req)
{
    send_all(fd, req, strlen(req));
    return read_resp(fd);
}

/* ---- tests ---- */

static void test_forward(void **state)
{
    (void)state;
    int fd = test_dial(gw_port);
    resp_t r = ask(fd, "GET /api/echo/x?a=1 HTTP/1.1\r\nHost: shop.example\r\n"
                       "Connection: keep-alive, X-Keep\r\nX-Keep: dropped\r\n"
                       "Upgrade: h2c\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    /* stripped prefix, query kept; XFF is the client; proto, host; a new request id;
     * hop-by-hop Upgrade and the header Connection names are not forwarded */
    assert_string_equal(r.body, "GET /echo/x?a=1|127.0.0.1|http|shop.example|16|||0\n");
    assert_non_null(strstr(r.head, "\r\nX-Up: yes\r\n"));
    assert_null(strcasestr(r.head, "Keep-Alive: timeout"));
    free(r.body);
    /* the same connection again: an X-Forwarded-For and a request id of the client's kept */
    r = ask(fd, "POST /api/echo HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.9\r\n"
                "X-Request-Id: abc\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "POST /echo|10.0.0.9, 127.0.0.1|http|h|3|||5\nhello");
    free(r.body);
    close(fd);
}

static void test_bodies_streamed(void **state)
{
    (void)state;
    int fd = test_dial(gw_port);
    /* 4 MiB up, chunked in 64 KiB pieces */
    const char *head = "POST /api/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, strlen(head));
    static char piece[65536];
    for (size_t i = 0; i < sizeof(piece); i++) piece[i] = (char)('A' + i % 23);
    for (int k = 0; k < 64; k++) {
        char sz[16];
        snprintf(sz, sizeof(sz), "%zx\r\n", sizeof(piece));
        send_all(fd, sz, strlen(sz));
        send_all(fd, piece, sizeof(piece));
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    resp_t r = read_resp(fd);
    assert_int_equal(r.status, 200);
    const char *nl = strchr(r.body, '\n');
    assert_non_null(nl);
    assert_true(strstr(r.body, "|4194304\n") == nl - 8);
    size_t blen = r.len - (size_t)(nl + 1 - r.body);
    assert_int_equal(blen, 64 * sizeof(piece));
    for (size_t i = 0; i < blen; i += 4099) assert_int_equal(nl[1 + i], 'A' + (i % 65536) % 23);
    free(r.body);
    /* 8 MiB down */
    r = ask(fd, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    assert_int_equal(r.len, BIG);
    for (size_t i = 0; i < r.len; i += 16384 * 3 + 7)
        assert_int_equal(r.body[i], 'a' + (i % 16384) % 26);
    free(r.body);
    close(fd);
}

static void test_errors(void **state)
{
    (void)state;
    int fd = test_dial(gw_port);
    resp_t r = ask(fd, "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"error\":\"no route\""));
    free(r.body);
    r = ask(fd, "GET /dead/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.body, "\"route\":\"dead\""));
    assert_non_null(strstr(r.head, "application/json"));
    free(r.body);
    r = ask(fd, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.status, 504);
    assert_non_null(strstr(r.body, "\"route\":\"slow\""));
    free(r.body);
    /* the connection still serves */
    r = ask(fd, "GET /api/echo HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.status, 200);
    free(r.body);
    /* an upstream that breaks off in its body: the client's response is cut short too */
    r = ask(fd, "GET /cut HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_false(r.complete);
    assert_true(r.len < 100);
    free(r.body);
    close(fd);
    /* each answer counted by route, upstream and status; errors by kind */
    char *out;
    size_t len;
    assert_int_equal(weft_metrics_write(metrics, &out, &len), 0);
    char want[256];
    snprintf(
        want, sizeof(want),
        "weft_gateway_requests_total{route=\"dead\",upstream=\"127.0.0.1:%u\",code=\"502\"} 1\n",
        dead_port);
    assert_non_null(strstr(out, want));
    assert_non_null(
        strstr(out, "weft_gateway_requests_total{route=\"-\",upstream=\"-\",code=\"404\"} 1\n"));
    assert_non_null(
        strstr(out, "weft_gateway_upstream_errors_total{route=\"dead\",kind=\"connect\"} 1\n"));
    assert_non_null(
        strstr(out, "weft_gateway_upstream_errors_total{route=\"slow\",kind=\"timeout\"} 1\n"));
    assert_non_null(strstr(out, "weft_gateway_request_duration_seconds_count{route=\"slow\"} 1\n"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_bodies_streamed),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
