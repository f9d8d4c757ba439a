/*
 * test_server_idle.c - an idle keep-alive connection holds its conn_t and nothing else.
 *
 * The server engine (server_srcs.h) is compiled into this test and its loop runs on the test
 * thread, so the test can look at a connection between two of its requests: no exchange
 * (parser, request, arena), no read buffer, no output buffers. It also checks the other side: a
 * connection keeps them while a request is in progress (a head split over two reads, a handler that
 * answers later, a response larger than the output buffer), every request after an idle
 * spell is answered, the listener keeps at most XFREE_MAX exchanges for reuse, and 2,000
 * idle connections, all used again at once, are all answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"

#include "server_srcs.h"

#include "server_loop.h"

typedef srv_fx_t fx_t;

static fx_t *fx;
static uv_timer_t later;               /* /later answers when it fires */
static weft_http_request_t *later_req; /* what /later holds */

static void h_hello(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "text/plain", "hello", 5);
}

static void on_later(uv_timer_t *t)
{
    weft_http_respond(later_req, 200, "text/plain", "hello", 5);
    later_req = NULL;
}

static void h_later(weft_http_request_t *req, void *arg)
{
    later_req = req;
    uv_timer_start(&later, on_later, 20, 0);
}

#define BIG (8 << 20) /* more than OBUF_INITIAL and than the sockets take at once */

static void h_big(weft_http_request_t *req, void *arg)
{
    char *body = malloc(BIG);
    memset(body, 'b', BIG - 5);
    memcpy(body + BIG - 5, "hello", 5);
    weft_http_respond(req, 200, "text/plain", body, BIG);
    free(body);
}

static int setup(void **state)
{
    static const srv_fx_route_t routes[] = {
        {"GET", "/hello", h_hello}, {"GET", "/later", h_later}, {"GET", "/big", h_big}};
    fx = srv_fx_new(routes, 3);
    uv_timer_init(&fx->loop, &later);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    srv_fx_shutdown(f);
    assert_null(f->srv->listeners[0].xfree); /* the freelist went with the listener */
    uv_close((uv_handle_t *)&later, NULL);
    srv_fx_free(f);
    return 0;
}

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Runs the loop and reads fd until `want` whole responses ending in "hello" are in (at most
 * ~5 s); checks each is a 200. */
static void await_hellos(fx_t *f, int fd, int want)
{
    static char buf[65536];
    size_t n = 0;
    int got = 0;
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    while (got < want && uv_now(&f->loop) - t0 < 5000) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) == 1) {
            ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
            assert_true(r > 0);
            n += (size_t)r;
            buf[n] = 0;
            /* a response is whole once its body, which ends in "hello", is in */
            int heads = 0, bodies = 0;
            for (char *q = buf; (q = strstr(q, "HTTP/1.1 200 OK\r\n")); q++) heads++;
            for (char *q = buf; (q = strstr(q, "hello")); q++) bodies++;
            got = heads < bodies ? heads : bodies;
        }
        uv_update_time(&f->loop);
    }
    assert_int_equal(got, want);
}

/* Runs the loop and reads fd until the whole response of /big is in (at most ~10 s). */
static void await_big(fx_t *f, int fd)
{
    static char buf[65536];
    char last[6] = ""; /* the last 5 bytes of the stream */
    size_t total = 0;
    bool head = false;
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    while (uv_now(&f->loop) - t0 < 10000) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (r > 0) {
            if (total == 0) head = strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0;
            total += (size_t)r;
            for (ssize_t i = r > 5 ? r - 5 : 0; i < r; i++) {
                memmove(last, last + 1, 4);
                last[4] = buf[i];
            }
            if (total > BIG && strcmp(last, "hello") == 0) break;
        } else {
            assert_true(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        }
        uv_update_time(&f->loop);
    }
    assert_true(head);
    assert_true(total > BIG);
    assert_string_equal(last, "hello");
}

/* Runs the loop until cond(c) holds (at most 200 turns 1 ms apart). */
static void until(fx_t *f, bool (*cond)(const conn_t *), const conn_t *c)
{
    for (int i = 0; i < 200 && !cond(c); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(cond(c));
}

static bool holds_exchange(const conn_t *c)
{
    return c->x != NULL;
}

static bool handler_holds(const conn_t *c)
{
    return weft__http_holds(c);
}

static bool writing(const conn_t *c)
{
    return c->writing;
}

/* A connection whose receive buffer is small, so that a large response waits in the server. */
static int dial_small_rcvbuf(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int size = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* c holds nothing but itself. */
static void assert_bare(const conn_t *c)
{
    assert_null(c->x);
    assert_null(c->rbuf);
    assert_null(c->obuf);
    assert_null(c->wbuf);
    assert_int_equal(c->rcap + c->ocap + c->wcap, 0);
    assert_int_equal(c->state, C_IDLE);
}

/* Two sweeps, as the listener's timer runs them every SWEEP_MS. */
static void sweep_twice(listener_t *l)
{
    on_timer(&l->timer);
    on_timer(&l->timer);
}

/* c has just gone quiet after a request: it keeps its exchange (conn_rest) through one
 * sweep and gives everything back at the second; one with grown buffers at once. */
static void assert_rests(conn_t *c)
{
    listener_t *l = c->l;
    if (c->kept) {
        assert_non_null(c->x);
        assert_true(l->nkept >= 1 && l->nkept <= XKEEP_MAX);
        on_timer(&l->timer);
        assert_true(c->kept && c->kept_swept);
        assert_non_null(c->x);
        on_timer(&l->timer);
        assert_false(c->kept);
    }
    assert_bare(c);
}

static void test_idle_holds_nothing(void **state)
{
    fx_t *f = *state;
    listener_t *l = &f->srv->listeners[0];
    /* the budget of issue 17: an idle connection costs its conn_t (and malloc's 16 bytes) */
    assert_true(sizeof(conn_t) + 16 <= 700);

    int a = dial_small_rcvbuf(f->port);
    srv_fx_until_accepted(f, 1);
    conn_t *c = l->conns;
    assert_bare(c); /* accepted: nothing until bytes arrive */

    send_str(a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    await_hellos(f, a, 1);
    assert_true(c->kept); /* a connection busy a moment ago keeps its exchange a while */
    assert_rests(c);
    assert_int_equal(l->nkept, 0);
    assert_int_equal(l->nxfree, 1); /* the exchange, kept for the next connection */
    assert_non_null(l->xfree->rbuf);

    /* a head in two reads: the exchange stays while the head is incomplete */
    send_str(a, "GET /hello HTTP/1.1\r\nHo");
    until(f, holds_exchange, c);
    for (int i = 0; i < 20; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_non_null(c->x);
    assert_int_equal(c->state, C_HEAD);
    assert_int_equal(l->nxfree, 0);
    send_str(a, "st: t\r\n\r\n");
    await_hellos(f, a, 1);
    assert_rests(c);

    /* a handler that answers later holds the exchange until then */
    send_str(a, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    until(f, handler_holds, c);
    assert_non_null(c->x);
    await_hellos(f, a, 1);
    assert_rests(c);

    /* pipelined, the second behind a handler that answers later */
    send_str(a, "GET /later HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    await_hellos(f, a, 2);
    assert_rests(c);

    /* a response larger than the output buffer, and than the sockets take while the client
     * does not read: the rest is written from wbuf (a partial write); all is given back
     * once written, and the freelist keeps buffers of the initial sizes only */
    send_str(a, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    until(f, writing, c);
    assert_non_null(c->x);
    assert_non_null(c->wbuf);
    await_big(f, a);
    assert_false(c->kept); /* grown buffers are not kept */
    assert_bare(c);
    assert_int_equal(l->nxfree, 1);
    assert_non_null(l->xfree->rbuf);

    /* and it still serves, and a kept connection's next request takes nothing */
    send_str(a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    await_hellos(f, a, 1);
    assert_true(c->kept);
    unsigned nxfree = l->nxfree;
    send_str(a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    await_hellos(f, a, 1);
    assert_int_equal(l->nxfree, nxfree);
    assert_rests(c);
    close(a);
}

/* n connections' worth of responses: reads every fd without blocking while the loop runs
 * until each has one whole "hello" response (at most ~10 s). */
static void await_each(fx_t *f, const int *fds, int n)
{
    char(*bufs)[256] = calloc((size_t)n, 256);
    size_t *lens = calloc((size_t)n, sizeof(size_t));
    int done = 0;
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    while (done < n && uv_now(&f->loop) - t0 < 10000) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        for (int i = 0; i < n; i++) {
            if (lens[i] == SIZE_MAX) continue;
            ssize_t r = recv(fds[i], bufs[i] + lens[i], 255 - lens[i], MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
            assert_true(r > 0);
            lens[i] += (size_t)r;
            bufs[i][lens[i]] = 0;
            if (strstr(bufs[i], "\r\n\r\nhello")) {
                assert_non_null(strstr(bufs[i], "HTTP/1.1 200 OK\r\n"));
                lens[i] = SIZE_MAX;
                done++;
            }
        }
        uv_update_time(&f->loop);
    }
    assert_int_equal(done, n);
    free(bufs);
    free(lens);
}

#define MANY  2000
#define BATCH 200 /* within the listen backlog */

/* 2,000 connections, one request each, left idle: at most XKEEP_MAX keep their exchange, and
 * after two sweeps none holds anything, the listener keeping at most XFREE_MAX exchanges;
 * then all of them ask again at once and all are answered. */
static void test_many_idle_then_reused(void **state)
{
    fx_t *f = *state;
    listener_t *l = &f->srv->listeners[0];
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0); /* bind raised it to the hard limit */
    if (rl.rlim_cur < 2 * MANY + 100) {
        printf("skipped: the open-file limit (%llu) holds fewer than %d connections\n",
               (unsigned long long)rl.rlim_cur, MANY);
        skip();
    }
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    static int fds[MANY];
    for (int b = 0; b < MANY; b += BATCH) {
        for (int i = b; i < b + BATCH; i++) fds[i] = test_dial(f->port);
        srv_fx_until_accepted(f, (unsigned)(b + BATCH));
        for (int i = b; i < b + BATCH; i++) send_str(fds[i], req);
        await_each(f, fds + b, BATCH);
    }
    assert_int_equal(atomic_load(&l->nconns), MANY);
    int n = 0, kept = 0;
    for (conn_t *c = l->conns; c; c = c->next, n++) {
        if (c->kept)
            kept++;
        else
            assert_bare(c);
    }
    assert_true(kept <= XKEEP_MAX);
    assert_int_equal((unsigned)kept, l->nkept);
    sweep_twice(l);
    n = 0;
    for (conn_t *c = l->conns; c; c = c->next, n++) assert_bare(c);
    assert_int_equal(n, MANY);
    assert_true(l->nxfree >= 1 && l->nxfree <= XFREE_MAX);

    for (int i = 0; i < MANY; i++) send_str(fds[i], req); /* all at once */
    await_each(f, fds, MANY);
    assert_int_equal(atomic_load(&l->nconns), MANY);
    assert_true(l->nkept <= XKEEP_MAX);
    sweep_twice(l);
    n = 0;
    for (conn_t *c = l->conns; c; c = c->next, n++) assert_bare(c);
    assert_int_equal(n, MANY);
    assert_true(l->nxfree >= 1 && l->nxfree <= XFREE_MAX);
    /* quiet from now on: each sweep frees half of what sat unused on the freelist since the
     * one before (xfree_trim). The exchanges the last sweep put there have not sat a whole
     * sweep yet: two sweeps, and the freelist is shorter; from XFREE_MAX at most one is
     * left after 12. */
    unsigned before = l->nxfree;
    sweep_twice(l);
    assert_true(before < 4 || l->nxfree < before);
    for (int i = 0; i < 10; i++) on_timer(&l->timer);
    assert_true(l->nxfree <= 1);
    for (int i = 0; i < MANY; i++) close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_holds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_idle_then_reused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
