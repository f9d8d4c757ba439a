/*
 * test_host.c - a host (weft/host.h) with everything a platform puts on it, on two workers:
 * an HTTP listener; a second HTTP listener with its own router and filters (a token check
 * that answers 401 itself, a header added to every response); a UDP listener (echo);
 * per-worker state (a part); a control-loop task that publishes a snapshot the handlers
 * read (core/snapshot.h); and requests a handler parks until something happens, released
 * (a) by a change published from the control loop, (b) by their timer, (c) by the client
 * closing its connection, seen within 100 ms, and (d) by the shutdown, which then does not
 * wait out the server's shutdown timeout.
 *
 * The host runs on its own thread (weft_host_run); the test talks to it over loopback
 * sockets with receive timeouts, and waits on events (the start callback, a parked count, a
 * response's Content-Length), never on a sleep. Runs serially (CMake): (c) and (d) bound
 * wall-clock times.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "loopback.h"

#include "core/snapshot.h"
#include "weft/host.h"

#define PARK_MAX 16

/* the snapshot the control loop publishes and the handlers read */
typedef struct version_s {
    unsigned version;
} version_t;

/* per-worker state of the test's part */
typedef struct wstate_s {
    unsigned index;
    unsigned requests; /* counted by listener A's filter */
    weft_http_request_t *parked[PARK_MAX];
    unsigned since[PARK_MAX];
    unsigned nparked;
} wstate_t;

static weft_host_t *host;
static weft_http_server_t *srv_a, *srv_b;
static weft_udp_t *udp;
static weft_tcp_t *tcp;
static int part;
static weft_snap_cell_t cell;
static pthread_t runner;
static int run_rc = -1;
static uint16_t port_a, port_b, port_u, port_t;
static atomic_uint tcp_closed;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool started, ran;

static atomic_uint workers_seen; /* bit per worker index, set by the part's worker_init */
static atomic_uint workers_stopped;
static atomic_int parked_total;    /* requests parked now, all workers */
static _Atomic uint64_t closed_ns; /* when a handler learned that its client closed */
static atomic_uint stop_hook_runs;
/* checks made on the host's threads, where cmocka cannot fail a test: counted, asserted
 * on the test's thread */
static atomic_uint off_thread_errors;
static atomic_uint parked_at_stop;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            atomic_fetch_add(&off_thread_errors, 1);                                               \
        }                                                                                          \
    } while (0)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned current_version(void)
{
    weft_snap_read_lock();
    const version_t *v = weft_snap_get(&cell);
    unsigned n = v ? v->version : 0;
    weft_snap_read_unlock();
    return n;
}

/* ---- the part ---- */

static void part_init(weft_host_t *h, uv_loop_t *loop, unsigned index, void *state, void *arg)
{
    wstate_t *ws = state;
    ws->index = index;
    atomic_fetch_or(&workers_seen, 1u << index);
}

static void part_stop(weft_host_t *h, uv_loop_t *loop, unsigned index, void *state, void *arg)
{
    wstate_t *ws = state;
    atomic_fetch_add(&parked_at_stop, ws->nparked); /* the shutdown released every one */
    atomic_fetch_add(&workers_stopped, 1);
}

static void part_ctl_stop(weft_host_t *h, void *arg)
{
    atomic_fetch_add(&stop_hook_runs, 1);
}

/* ---- listener A: state, parked requests ---- */

static void reply(weft_http_request_t *req, int status, const char *fmt, ...)
{
    char body[200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    weft_http_respond(req, status, "text/plain", body, (size_t)n);
}

static void h_state(weft_http_request_t *req, void *arg)
{
    wstate_t *ws = weft_host_state(req->loop, part);
    CHECK(weft_host_worker_index(req->loop) == ws->index);
    reply(req, 200, "worker=%u version=%u", ws->index, current_version());
}

static void unpark(wstate_t *ws, weft_http_request_t *req)
{
    for (unsigned i = 0; i < ws->nparked; i++)
        if (ws->parked[i] == req) {
            ws->parked[i] = ws->parked[ws->nparked - 1];
            ws->since[i] = ws->since[ws->nparked - 1];
            ws->nparked--;
            atomic_fetch_sub(&parked_total, 1);
            return;
        }
}

static void on_park_event(weft_http_request_t *req, weft_http_event_t ev)
{
    wstate_t *ws = weft_host_state(req->loop, part);
    unpark(ws, req);
    switch (ev) {
    case WEFT_HTTP_EVENT_CLIENT_CLOSED:
        atomic_store(&closed_ns, now_ns());
        weft_http_respond(req, 499, NULL, NULL, 0); /* nobody reads it; releases req */
        break;
    case WEFT_HTTP_EVENT_TIMER:
        reply(req, 200, "timeout version=%u", current_version());
        break;
    case WEFT_HTTP_EVENT_SHUTDOWN:
        reply(req, 503, "shutdown");
        break;
    }
}

static void on_park_abort(weft_http_request_t *req)
{
    unpark(weft_host_state(req->loop, part), req);
    weft_http_respond(req, 499, NULL, NULL, 0); /* releases it (WEFT_ECLOSED) */
}

/* GET /wait/:since/:ms - answers at once when the version is past since, else parks until
 * it is (or ms milliseconds, when ms > 0), like a blocking query with ?index= and ?wait=. */
static void h_wait(weft_http_request_t *req, void *arg)
{
    weft_str_t s = weft_http_request_param(req, "since"), m = weft_http_request_param(req, "ms");
    unsigned since = (unsigned)strtoul(s.base, NULL, 10);
    unsigned long ms = strtoul(m.base, NULL, 10);
    unsigned v = current_version();
    if (v > since) {
        reply(req, 200, "changed version=%u", v);
        return;
    }
    wstate_t *ws = weft_host_state(req->loop, part);
    if (ws->nparked == PARK_MAX) {
        reply(req, 429, "too many parked");
        return;
    }
    req->on_event = on_park_event;
    req->on_abort = on_park_abort;
    if (ms) CHECK(weft_http_request_timer(req, ms) == 0);
    ws->parked[ws->nparked] = req;
    ws->since[ws->nparked++] = since;
    atomic_fetch_add(&parked_total, 1);
}

/* On each worker after a publish: release what waited for an older version. */
static void release_changed(weft_host_t *h, uv_loop_t *loop, unsigned index, void *arg)
{
    wstate_t *ws = weft_host_state(loop, part);
    unsigned v = current_version();
    for (unsigned i = ws->nparked; i-- > 0;) {
        if (ws->since[i] >= v) continue;
        weft_http_request_t *req = ws->parked[i];
        unpark(ws, req);
        reply(req, 200, "changed version=%u", v);
    }
}

/* The control-loop task: a new version, then every worker is told. */
static void publish_next(weft_host_t *h, uv_loop_t *loop, unsigned index, void *arg)
{
    CHECK(index == ~0u && loop == weft_host_loop(h));
    weft_snap_thread_register(); /* the control loop reads what it publishes */
    unsigned next = current_version() + 1;
    weft_snap_thread_unregister();
    version_t *v = weft_snap_alloc(sizeof(*v), NULL);
    CHECK(v != NULL);
    if (!v) return;
    v->version = next;
    weft_snap_publish(&cell, v);
    CHECK(weft_host_post_all(h, release_changed, NULL) == 0);
}

static weft_http_filter_result_t count_request(weft_http_request_t *req, void *arg)
{
    wstate_t *ws = weft_host_state(req->loop, part);
    ws->requests++;
    return WEFT_HTTP_NEXT;
}

/* ---- listener B: its own routes and filters ---- */

static void h_b(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "text/plain", "b", 1);
}

static weft_http_filter_result_t need_token(weft_http_request_t *req, void *arg)
{
    weft_str_t t = weft_http_request_header(req, "x-token");
    if (t.len == 6 && memcmp(t.base, "secret", 6) == 0) return WEFT_HTTP_NEXT;
    static const char body[] = "{\"error\":\"missing or wrong X-Token\"}\n";
    weft_http_respond(req, 401, "application/json", body, sizeof(body) - 1);
    return WEFT_HTTP_DONE;
}

static void tag_response(weft_http_request_t *req, int status, void *arg)
{
    weft_http_response_header(req, "X-Listener", "b");
}

static atomic_uint b_ends;
static void count_b_end(weft_http_request_t *req, int status, bool aborted, void *arg)
{
    atomic_fetch_add(&b_ends, 1);
}

/* ---- UDP: echo ---- */

static void on_datagram(weft_udp_t *u, unsigned worker, const char *data, size_t len,
                        const struct sockaddr *from, void *arg)
{
    char out[600];
    int n = snprintf(out, sizeof(out), "echo %u:%.*s", worker, (int)len, data);
    weft_udp_send(u, worker, out, (size_t)n, from);
}

/* ---- TCP: DNS-like framing (a 2-byte length, then the message), answered reversed ---- */

static long on_tcp_data(weft_tcp_conn_t *c, const char *data, size_t len, void *arg)
{
    if (len < 2) return 0;
    size_t n = ((size_t)(unsigned char)data[0] << 8) | (unsigned char)data[1];
    if (n == 0) return -1; /* a protocol error: the connection is closed */
    if (len < 2 + n) return 0;
    char out[2 + 65535];
    out[0] = data[0];
    out[1] = data[1];
    for (size_t i = 0; i < n; i++) out[2 + i] = data[2 + n - 1 - i];
    CHECK(weft_tcp_write(c, out, 2 + n) == 0);
    return (long)(2 + n);
}

static void on_tcp_close(weft_tcp_conn_t *c, void *arg)
{
    atomic_fetch_add(&tcp_closed, 1);
}

/* ---- running it ---- */

static void on_start(weft_host_t *h, void *arg)
{
    pthread_mutex_lock(&mu);
    started = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
}

static void *run(void *arg)
{
    run_rc = weft_host_run(host);
    pthread_mutex_lock(&mu);
    ran = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static int setup(void **state)
{
    weft_snap_cell_init(&cell);
    weft_host_options_t o;
    weft_host_options_init(&o);
    o.name = "test";
    o.workers = 2;
    o.signals = false;
    assert_int_equal(weft_host_new(&o, &host), 0);
    assert_int_equal(weft_host_workers(host), 2);

    weft_host_part_t p = {.name = "test",
                          .state_size = sizeof(wstate_t),
                          .worker_init = part_init,
                          .worker_stop = part_stop,
                          .stop = part_ctl_stop};
    part = weft_host_add_part(host, &p);
    assert_true(part >= 0);

    weft_http_server_options_t so;
    weft_http_server_options_init(&so);
    so.port = 0;
    so.shutdown_timeout_ms = 20000; /* (d) must not wait for it */
    assert_int_equal(weft_http_server_new(&so, 2, &srv_a), 0);
    weft_http_route_t r = {.handler = h_state};
    assert_int_equal(weft_http_server_route(srv_a, "GET", "/state", &r), 0);
    r.handler = h_wait;
    assert_int_equal(weft_http_server_route(srv_a, "GET", "/wait/:since/:ms", &r), 0);
    weft_http_filter_t f = {.name = "count", .on_request = count_request};
    assert_int_equal(weft_http_server_filter(srv_a, &f), 0);
    assert_int_equal(weft_host_add_http(host, srv_a), 0);

    assert_int_equal(weft_http_server_new(&so, 2, &srv_b), 0);
    r.handler = h_b;
    assert_int_equal(weft_http_server_route(srv_b, "GET", "/b", &r), 0);
    f = (weft_http_filter_t){.name = "token", .on_request = need_token};
    assert_int_equal(weft_http_server_filter(srv_b, &f), 0);
    f = (weft_http_filter_t){.name = "tag", .on_head = tag_response, .on_end = count_b_end};
    assert_int_equal(weft_http_server_filter(srv_b, &f), 0);
    assert_int_equal(weft_host_add_http(host, srv_b), 0);

    weft_http_server_t *wrong;
    assert_int_equal(weft_http_server_new(&so, 3, &wrong), 0);
    assert_int_equal(weft_host_add_http(host, wrong), WEFT_EINVAL); /* 3 loops, 2 workers */
    weft_http_server_free(wrong);

    weft_udp_options_t uo;
    weft_udp_options_init(&uo);
    uo.on_recv = on_datagram;
    assert_int_equal(weft_host_add_udp(host, &uo, &udp), 0);
    uo.on_recv = NULL;
    weft_udp_t *bad;
    assert_int_equal(weft_host_add_udp(host, &uo, &bad), WEFT_EINVAL);

    weft_tcp_options_t to;
    weft_tcp_options_init(&to);
    to.max_buffer = 64;
    to.on_data = on_tcp_data;
    to.on_close = on_tcp_close;
    assert_int_equal(weft_host_add_tcp(host, &to, &tcp), 0);

    assert_int_equal(weft_host_call(host, publish_next, NULL), WEFT_ECLOSED); /* not running */
    weft_host_on_start(host, on_start, NULL);
    pthread_create(&runner, NULL, run, NULL);
    pthread_mutex_lock(&mu);
    while (!started && !ran) pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    assert_true(started);
    port_a = weft_http_server_port(srv_a);
    port_b = weft_http_server_port(srv_b);
    port_u = weft_udp_port(udp);
    port_t = weft_tcp_port(tcp);
    assert_true(port_a && port_b && port_u && port_t && port_a != port_b);
    assert_int_equal(weft_host_add_part(host, &p), WEFT_ESTATE);
    return 0;
}

static int teardown(void **state)
{
    weft_host_stop(host); /* already stopped by the last test: does nothing more */
    pthread_join(runner, NULL);
    assert_int_equal(run_rc, 0);
    weft_host_free(host);
    weft_snap_cell_destroy(&cell);
    return 0;
}

/* A connection with a 5 s receive timeout: no test can hang on a read. */
static int dial(uint16_t port)
{
    int fd = test_dial(port);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads one response: the head, then Content-Length bytes of body. Returns the status and
 * fills head and body (NUL-terminated). */
static int read_response(int fd, char *head, size_t hcap, char *body, size_t bcap)
{
    size_t n = 0;
    char *end = NULL;
    while (!(end = strstr(head, "\r\n\r\n"))) {
        assert_true(n < hcap - 1);
        ssize_t r = recv(fd, head + n, 1, 0); /* byte by byte: nothing past the head is read */
        assert_true(r == 1);
        n++;
        head[n] = 0;
    }
    const char *cl = strcasestr(head, "content-length:");
    size_t len = cl ? strtoul(cl + 15, NULL, 10) : 0;
    assert_true(len < bcap);
    size_t got = 0;
    while (got < len) {
        ssize_t r = recv(fd, body + got, len - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    body[len] = 0;
    return atoi(head + 9);
}

static int get(uint16_t port, const char *path, const char *extra, char *body, size_t bcap,
               char *head, size_t hcap)
{
    int fd = dial(port);
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, extra ? extra : "");
    send_all(fd, req);
    head[0] = 0;
    int status = read_response(fd, head, hcap, body, bcap);
    close(fd);
    return status;
}

/* Waits (bounded) until parked_total reaches n: the request has reached its handler. */
static void wait_parked(int n)
{
    uint64_t deadline = now_ns() + 5000000000u;
    while (atomic_load(&parked_total) != n) {
        assert_true(now_ns() < deadline);
        sched_yield();
    }
}

static void test_workers_state_and_snapshot(void **state)
{
    assert_int_equal(atomic_load(&workers_seen), 3); /* both workers ran the part's init */
    char head[2048], body[256];
    assert_int_equal(get(port_a, "/state", NULL, body, sizeof(body), head, sizeof(head)), 200);
    assert_non_null(strstr(body, "version=0"));
    assert_null(strcasestr(head, "X-Listener")); /* B's filter is B's alone */

    /* the control-loop task publishes version 1; handlers read it */
    assert_int_equal(weft_host_call(host, publish_next, NULL), 0);
    uint64_t deadline = now_ns() + 5000000000u;
    do {
        assert_true(now_ns() < deadline);
        get(port_a, "/state", NULL, body, sizeof(body), head, sizeof(head));
    } while (!strstr(body, "version=1"));
    assert_int_equal(weft_host_post(host, 2, release_changed, NULL), WEFT_EINVAL);
}

static void test_second_listener(void **state)
{
    char head[2048], body[256];
    unsigned ends = atomic_load(&b_ends);
    assert_int_equal(get(port_b, "/b", NULL, body, sizeof(body), head, sizeof(head)), 401);
    assert_non_null(strstr(body, "X-Token"));
    assert_non_null(strcasestr(head, "X-Listener: b")); /* on_head runs for a filter's answer */
    assert_int_equal(
        get(port_b, "/b", "X-Token: secret\r\n", body, sizeof(body), head, sizeof(head)), 200);
    assert_string_equal(body, "b");
    assert_non_null(strcasestr(head, "X-Listener: b"));
    /* each listener has its own router */
    assert_int_equal(
        get(port_b, "/state", "X-Token: secret\r\n", body, sizeof(body), head, sizeof(head)), 404);
    assert_int_equal(get(port_a, "/b", NULL, body, sizeof(body), head, sizeof(head)), 404);
    /* every request reaches the loggers, the one the token filter answered included */
    uint64_t deadline = now_ns() + 5000000000u;
    while (atomic_load(&b_ends) != ends + 3) {
        assert_true(now_ns() < deadline);
        sched_yield();
    }
}

static void test_udp(void **state)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_u)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(sendto(fd, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a)), 4);
    char buf[128];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = 0;
    assert_true(strncmp(buf, "echo ", 5) == 0 && strstr(buf, ":ping"));
    close(fd);
    /* the worker counts the send after the datagram left: wait for the count */
    uint64_t deadline = now_ns() + 5000000000u;
    while (weft_udp_stats(udp).sent != 1) {
        assert_true(now_ns() < deadline);
        sched_yield();
    }
    assert_int_equal(weft_udp_stats(udp).received, 1);
}

/* A burst: the worker reads it in recvmmsg batches and answers each batch with sendmmsg at
 * its end; every datagram gets its own answer, and none waits for a later batch. */
static void test_udp_burst(void **state)
{
    enum { N = 200 };
    uint64_t sent0 = weft_udp_stats(udp).sent;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rcv = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_u)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < N; i++) {
        char m[16];
        int len = snprintf(m, sizeof(m), "b%d", i);
        assert_int_equal(sendto(fd, m, (size_t)len, 0, (struct sockaddr *)&a, sizeof(a)), len);
    }
    bool seen[N] = {false};
    for (int got = 0; got < N; got++) {
        char buf[128];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0); /* else an answer waited in a batch that never ended */
        buf[n] = 0;
        const char *p = strstr(buf, ":b");
        assert_non_null(p);
        int i = atoi(p + 2);
        assert_true(i >= 0 && i < N && !seen[i]);
        seen[i] = true;
    }
    close(fd);
    uint64_t deadline = now_ns() + 5000000000u;
    while (weft_udp_stats(udp).sent != sent0 + N) {
        assert_true(now_ns() < deadline);
        sched_yield();
    }
}

static void test_tcp(void **state)
{
    int fd = dial(port_t);
    /* two messages in one write, the second split over two more */
    send(fd, "\0\3abc\0\4de", 9, MSG_NOSIGNAL);
    send(fd, "fg", 2, MSG_NOSIGNAL);
    char buf[64];
    size_t n = 0;
    while (n < 11) {
        ssize_t r = recv(fd, buf + n, sizeof(buf) - n, 0);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_memory_equal(buf, "\0\3cba\0\4gfed", 11);
    /* a message over max_buffer (64) closes the connection */
    send(fd, "\0\xc8", 2, MSG_NOSIGNAL);
    char big[100];
    memset(big, 'x', sizeof(big));
    send(fd, big, sizeof(big), MSG_NOSIGNAL);
    assert_true(recv(fd, buf, sizeof(buf), 0) <= 0);
    close(fd);
    uint64_t deadline = now_ns() + 5000000000u;
    while (atomic_load(&tcp_closed) != 1) {
        assert_true(now_ns() < deadline);
        sched_yield();
    }
}

/* (a) released by a change published from the control loop */
static void test_park_change(void **state)
{
    unsigned v;
    {
        char head[2048], body[256];
        get(port_a, "/state", NULL, body, sizeof(body), head, sizeof(head));
        v = (unsigned)atoi(strstr(body, "version=") + 8);
    }
    int fd = dial(port_a);
    char req[128], head[2048] = "", body[256];
    snprintf(req, sizeof(req), "GET /wait/%u/0 HTTP/1.1\r\nHost: t\r\n\r\n", v);
    send_all(fd, req);
    wait_parked(1);
    assert_int_equal(weft_host_call(host, publish_next, NULL), 0);
    assert_int_equal(read_response(fd, head, sizeof(head), body, sizeof(body)), 200);
    char want[64];
    snprintf(want, sizeof(want), "changed version=%u", v + 1);
    assert_string_equal(body, want);
    wait_parked(0);
    close(fd);
}

/* (b) released by its timer */
static void test_park_timeout(void **state)
{
    int fd = dial(port_a);
    send_all(fd, "GET /wait/1000/150 HTTP/1.1\r\nHost: t\r\n\r\n");
    uint64_t t0 = now_ns();
    char head[2048] = "", body[256];
    assert_int_equal(read_response(fd, head, sizeof(head), body, sizeof(body)), 200);
    /* not before its time: libuv arms timers against the loop time cached at the start of
     * the iteration, in whole ms, so the timer may end a few ms short of 150 ms real time */
    assert_true(now_ns() - t0 >= 140000000u);
    assert_non_null(strstr(body, "timeout"));
    wait_parked(0);
    /* the connection serves on after a held request */
    send_all(fd, "GET /state HTTP/1.1\r\nHost: t\r\n\r\n");
    head[0] = 0;
    assert_int_equal(read_response(fd, head, sizeof(head), body, sizeof(body)), 200);
    close(fd);
}

/* (c) released by the client closing: the handler learns it within 100 ms */
static void test_park_client_close(void **state)
{
    atomic_store(&closed_ns, 0);
    int fd = dial(port_a);
    send_all(fd, "GET /wait/1000/0 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_parked(1);
    uint64_t t0 = now_ns();
    close(fd);
    uint64_t deadline = t0 + 5000000000u;
    while (atomic_load(&closed_ns) == 0) {
        assert_true(now_ns() < deadline);
        sched_yield();
    }
    uint64_t seen = atomic_load(&closed_ns) - t0;
    assert_true(seen < 100000000u);
    wait_parked(0);
}

/* (d) released by the shutdown, which then ends without waiting out shutdown_timeout */
static void test_park_shutdown(void **state)
{
    int fd = dial(port_a);
    send_all(fd, "GET /wait/1000/0 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_parked(1);
    uint64_t t0 = now_ns();
    weft_host_stop(host);
    char head[2048] = "", body[256];
    assert_int_equal(read_response(fd, head, sizeof(head), body, sizeof(body)), 503);
    assert_string_equal(body, "shutdown");
    assert_non_null(strcasestr(head, "Connection: close"));
    close(fd);
    pthread_mutex_lock(&mu);
    while (!ran) pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    assert_true(now_ns() - t0 < 5000000000u); /* far below the 20 s shutdown_timeout */
    assert_int_equal(run_rc, 0);
    assert_int_equal(atomic_load(&workers_stopped), 2);
    assert_int_equal(atomic_load(&stop_hook_runs), 1);
    assert_int_equal(atomic_load(&parked_at_stop), 0);
    assert_int_equal(atomic_load(&off_thread_errors), 0);
    assert_int_equal(weft_host_call(host, publish_next, NULL), WEFT_ECLOSED);
    assert_int_equal(weft_host_post(host, 0, release_changed, NULL), WEFT_ECLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_state_and_snapshot),
        cmocka_unit_test(test_second_listener),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_udp_burst),
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_park_change),
        cmocka_unit_test(test_park_timeout),
        cmocka_unit_test(test_park_client_close),
        cmocka_unit_test(test_park_shutdown), /* last: it stops the host */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
