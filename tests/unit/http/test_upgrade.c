/*
 * test_upgrade.c - protocol upgrades in the HTTP engines: the server's
 * weft_http_request_takeover and the client's on_upgrade.
 *
 * The server engine (server_srcs.h) is compiled in and its loop runs on the test thread, with
 * blocking loopback sockets for the other side. What is checked: a handler takes an upgrade
 * request's connection over and gets the bytes that followed the head; the engine writes
 * nothing more, lets the socket go (its connection count drops to 0) without closing it,
 * and the socket carries bytes both ways afterwards; requests that are not upgrades (none
 * asked, or one with a body) cannot be taken over; an upgrade request answered as usual
 * gets its response and the connection closes. On the client's side: a 101 hands the
 * socket and the bytes after the head to on_upgrade before on_done(0), and the connection is
 * never pooled; without on_upgrade, a 101 ends the call and closes its connection.
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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"

#include "server_srcs.h"

#include "server_loop.h"
#include "weft/client.h"

static srv_fx_t *fx;

/* what the handler of /up saw and did */
static struct {
    int calls, eagain;
    bool upgrade;
    int rc;
    weft_http_takeover_t tk;
} up;

/* An earlier response was still going out: the engine runs on_drain once it is. */
static void up_drain(weft_http_request_t *req)
{
    up.rc = weft_http_request_takeover(req, 101, &up.tk);
    assert_int_equal(up.rc, 0);
}

static void h_up(weft_http_request_t *req, void *arg)
{
    (void)arg;
    up.calls++;
    up.upgrade = req->upgrade;
    up.rc = weft_http_request_takeover(req, 101, &up.tk);
    if (up.rc == WEFT_EAGAIN) {
        up.eagain++;
        req->on_drain = up_drain;
        return;
    }
    if (up.rc != 0) weft_http_respond(req, 200, "text/plain", "plain", 5);
}

static void h_small(weft_http_request_t *req, void *arg)
{
    (void)arg;
    weft_http_respond(req, 200, "text/plain", "small", 5);
}

static void h_refuse(weft_http_request_t *req, void *arg)
{
    (void)arg;
    assert_true(req->upgrade);
    weft_http_respond(req, 403, "text/plain", "no", 2);
}

static int setup(void **state)
{
    (void)state;
    memset(&up, 0, sizeof(up));
    up.tk.fd = -1;
    static const srv_fx_route_t routes[] = {
        {"*", "/up", h_up}, {"GET", "/refuse", h_refuse}, {"GET", "/small", h_small}};
    fx = srv_fx_new(routes, 3);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    srv_fx_shutdown(fx);
    srv_fx_free(fx);
    if (up.tk.fd >= 0) close(up.tk.fd);
    free(up.tk.data);
    return 0;
}

/* Runs the loop while reading fd until buf holds needle (or, needle NULL, until EOF), at
 * most 3 s. Returns the bytes read. */
static size_t pump_read(uv_loop_t *loop, int fd, char *buf, size_t cap, const char *needle)
{
    size_t n = 0;
    for (int i = 0; i < 3000; i++) {
        if (loop) uv_run(loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) == 1) {
            ssize_t r = recv(fd, buf + n, cap - 1 - n, MSG_DONTWAIT);
            if (r == 0 && !needle) break;
            assert_true(r > 0 || errno == EAGAIN);
            if (r > 0) n += (size_t)r;
            buf[n] = 0;
            if (needle && memmem(buf, n, needle, strlen(needle))) break;
        }
    }
    buf[n] = 0;
    return n;
}

static void send_all(int fd, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void test_takeover(void **state)
{
    (void)state;
    int c = test_dial(fx->port);
    send_all(c, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nEARLY");
    for (int i = 0; i < 3000 && !up.calls; i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(up.calls, 1);
    assert_true(up.upgrade);
    assert_int_equal(up.rc, 0);
    assert_true(up.tk.fd >= 0);
    /* the bytes after the head came with it: they are the caller's (may arrive in a second
     * read, after the handler ran: then they are in the socket, for the caller) */
    char buf[256];
    size_t early = up.tk.len;
    if (early) {
        assert_int_equal(early, 5);
        assert_memory_equal(up.tk.data, "EARLY", 5);
    } else {
        assert_int_equal(pump_read(&fx->loop, up.tk.fd, buf, sizeof(buf), "EARLY"), 5);
    }
    srv_fx_until_accepted(fx, 0); /* the engine let go of the connection */
    send_all(up.tk.fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n\r\nhello");
    size_t n = pump_read(&fx->loop, c, buf, sizeof(buf), "hello");
    assert_string_equal(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n\r\nhello");
    (void)n;
    send_all(c, "more");
    assert_int_equal(pump_read(&fx->loop, up.tk.fd, buf, sizeof(buf), "more"), 4);
    close(up.tk.fd);
    up.tk.fd = -1;
    assert_int_equal(pump_read(&fx->loop, c, buf, sizeof(buf), NULL), 0); /* EOF, nothing more */
    close(c);
}

/* A pipelined request's response is still in the output when the upgrade request's handler
 * runs (both came in one read): the takeover waits for it (WEFT_EAGAIN, then on_drain), and
 * the client gets that response, then what the new protocol sends. */
static void test_takeover_after_pipelined_response(void **state)
{
    (void)state;
    int c = test_dial(fx->port);
    send_all(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n");
    for (int i = 0; i < 3000 && !(up.calls && up.rc == 0); i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(up.calls, 1);
    assert_int_equal(up.eagain, 1);
    assert_int_equal(up.rc, 0);
    assert_int_equal(up.tk.len, 0);
    send_all(up.tk.fd, "HTTP/1.1 101 Switching Protocols\r\n\r\nswitched");
    char buf[1024];
    size_t n = pump_read(&fx->loop, c, buf, sizeof(buf), "switched");
    const char *second = strstr(buf, "HTTP/1.1 101");
    assert_non_null(second);
    assert_non_null(memmem(buf, (size_t)(second - buf), "small", 5)); /* in order */
    assert_string_equal(second, "HTTP/1.1 101 Switching Protocols\r\n\r\nswitched");
    (void)n;
    close(c);
}

static void test_not_upgrades(void **state)
{
    (void)state;
    /* no Upgrade at all */
    int c = test_dial(fx->port);
    send_all(c, "GET /up HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[512];
    pump_read(&fx->loop, c, buf, sizeof(buf), "plain");
    assert_int_equal(up.calls, 1);
    assert_false(up.upgrade);
    assert_int_equal(up.rc, WEFT_ESTATE);
    /* an upgrade with a body is a plain request (the body would come before the switch) */
    send_all(c, "POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n"
                "Content-Length: 3\r\n\r\nabc");
    size_t n = pump_read(&fx->loop, c, buf, sizeof(buf), NULL); /* answered, then closed */
    assert_non_null(memmem(buf, n, "plain", 5));
    assert_int_equal(up.calls, 2);
    assert_false(up.upgrade);
    assert_int_equal(up.rc, WEFT_ESTATE);
    close(c);
}

static void test_upgrade_answered_as_usual(void **state)
{
    (void)state;
    int c = test_dial(fx->port);
    send_all(c, "GET /refuse HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"
                "GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[1024];
    size_t n = pump_read(&fx->loop, c, buf, sizeof(buf), NULL);
    assert_true(n > 12 && memcmp(buf, "HTTP/1.1 403", 12) == 0);
    /* one response: what followed the upgrade request is not HTTP, it is never parsed */
    assert_null(memmem(buf + 12, n - 12, "HTTP/1.1", 8));
    close(c);
}

/* ---- the client ---- */

static struct {
    int status, err, order, upgraded_at, done_at, fd;
    char data[64];
    size_t len;
} cl;

static void c_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h, size_t n,
                   void *arg)
{
    (void)call, (void)h, (void)n, (void)arg;
    cl.status = status;
}

static void c_done(weft_http_client_call_t *call, int err, void *arg)
{
    (void)call, (void)arg;
    cl.err = err;
    cl.done_at = ++cl.order;
}

static void c_upgrade(weft_http_client_call_t *call, int fd, const char *data, size_t len,
                      void *arg)
{
    (void)call, (void)arg;
    cl.fd = fd;
    assert_true(len < sizeof(cl.data));
    memcpy(cl.data, data, len);
    cl.len = len;
    cl.upgraded_at = ++cl.order;
}

static void client_closed(void *arg)
{
    *(bool *)arg = true;
}

/* A client on loop asks a raw server socket for an upgrade; the server answers 101 and
 * "AFTER". with_cb: on_upgrade set. Returns the server's accepted socket. */
static int client_upgrade(uv_loop_t *loop, weft_http_client_t **out, bool with_cb)
{
    memset(&cl, 0, sizeof(cl));
    cl.fd = -1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t al = sizeof(a);
    getsockname(ls, (struct sockaddr *)&a, &al);
    weft_http_client_t *c;
    assert_int_equal(weft_http_client_new(loop, NULL, &c), 0);
    weft_http_header_t hs[] = {{{"Connection", 10}, {"Upgrade", 7}}, {{"Upgrade", 7}, {"test", 4}}};
    weft_http_client_req_t r = {.method = "GET",
                                .host = "127.0.0.1",
                                .port = ntohs(a.sin_port),
                                .target = "/",
                                .headers = hs,
                                .nheaders = 2};
    weft_http_client_cbs_t cbs = {.on_head = c_head, .on_done = c_done};
    if (with_cb) cbs.on_upgrade = c_upgrade;
    assert_int_equal(weft_http_client_request(c, &r, &cbs, NULL, NULL), 0);
    int s = -1;
    for (int i = 0; i < 3000 && s < 0; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        s = accept(ls, NULL, NULL);
        if (s < 0) usleep(1000);
    }
    assert_true(s >= 0);
    close(ls);
    char buf[1024];
    pump_read(loop, s, buf, sizeof(buf), "\r\n\r\n");
    assert_non_null(strstr(buf, "Upgrade: test"));
    send_all(s, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n"
                "\r\nAFTER");
    for (int i = 0; i < 3000 && !cl.done_at; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(cl.done_at > 0);
    *out = c;
    return s;
}

static void client_close(uv_loop_t *loop, weft_http_client_t *c)
{
    bool closed = false;
    weft_http_client_close(c, client_closed, &closed);
    for (int i = 0; i < 3000 && !closed; i++) uv_run(loop, UV_RUN_NOWAIT);
    assert_true(closed);
}

static void test_client_on_upgrade(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    weft_http_client_t *c;
    int s = client_upgrade(&loop, &c, true);
    assert_int_equal(cl.status, 101);
    assert_int_equal(cl.err, 0);
    assert_int_equal(cl.upgraded_at, 1); /* before on_done */
    assert_int_equal(cl.done_at, 2);
    assert_true(cl.fd >= 0);
    assert_int_equal(cl.len, 5);
    assert_memory_equal(cl.data, "AFTER", 5);
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_idle, 0); /* never pooled */
    assert_int_equal(st.conns_open, 0);
    /* the socket is the caller's, and still connected both ways */
    send_all(cl.fd, "x");
    char buf[64];
    assert_int_equal(pump_read(&loop, s, buf, sizeof(buf), "x"), 1);
    send_all(s, "y");
    assert_int_equal(pump_read(&loop, cl.fd, buf, sizeof(buf), "y"), 1);
    close(cl.fd);
    assert_int_equal(pump_read(&loop, s, buf, sizeof(buf), NULL), 0);
    close(s);
    client_close(&loop, c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_client_101_without_on_upgrade(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    weft_http_client_t *c;
    int s = client_upgrade(&loop, &c, false);
    assert_int_equal(cl.status, 101);
    assert_int_equal(cl.err, 0);
    assert_int_equal(cl.upgraded_at, 0);
    char buf[64];
    assert_int_equal(pump_read(&loop, s, buf, sizeof(buf), NULL), 0); /* closed, not pooled */
    weft_http_client_stats_t st = weft_http_client_stats(c);
    assert_int_equal(st.conns_idle, 0);
    close(s);
    client_close(&loop, c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_after_pipelined_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_upgrades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_answered_as_usual, setup, teardown),
        cmocka_unit_test(test_client_on_upgrade),
        cmocka_unit_test(test_client_101_without_on_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
