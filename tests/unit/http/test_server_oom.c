/*
 * test_server_oom.c - the server when memory for a new connection or a request runs out.
 *
 * The server engine (server_srcs.h) is compiled into this test with its allocations going
 * through fault_alloc.h, and its loop runs on the test thread. libuv keeps a connection that the
 * accept callback did not take and stops polling the listener until it is taken, so a server that
 * merely returned on a failed allocation would never accept again. Each case makes the allocation
 * of a new connection fail (and, in one, the retry as well), then checks that the request
 * on that connection is still answered, that later connections are served at once, and
 * that the graceful shutdown leaves nothing open. The same for what a connection takes when
 * its bytes arrive (its exchange and read buffer): the bytes wait in the socket and the
 * sweep tries again. Last, accept errors: logged at
 * most once a second, and an error that persists pauses the listener instead of holding the
 * loop in libuv's accept loop (accept4 is replaced below for libuv's calls).
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "fault_alloc.h"

#include "fault_alloc_begin.h"
#include "server_srcs.h"
#include "fault_alloc_end.h"

/* libuv's accept4 (this definition comes first in the lookup): fails with accept_errno
 * while that is set, counting the failures, else the C library's. */
static int accept_errno, accept_failed_calls;

__attribute__((visibility("default"))) int accept4(int fd, struct sockaddr *addr, socklen_t *len,
                                                   int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (accept_errno) {
        accept_failed_calls++;
        errno = accept_errno;
        return -1;
    }
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "accept4");
    return real(fd, addr, len, flags);
}

#include "server_loop.h"

typedef srv_fx_t fx_t;

static void h_hello(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, "text/plain", "hello", 5);
}

static int setup(void **state)
{
    static const srv_fx_route_t routes[] = {{"GET", "/hello", h_hello}};
    *state = srv_fx_new(routes, 1);
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    alloc_countdown = -1;
    accept_errno = 0;
    srv_fx_shutdown(f);
    srv_fx_free(f);
    return 0;
}

/* How long the loop runs for a condition before the test fails: a guard against a hang,
 * never the expected outcome (the conditions are events, whatever the machine's load). */
#define WAIT_MS 10000

static const char hello_req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

static void send_hello(int fd)
{
    ssize_t n = send(fd, hello_req, sizeof(hello_req) - 1, MSG_NOSIGNAL);
    assert_int_equal(n, (ssize_t)(sizeof(hello_req) - 1));
}

/* Runs the loop until a whole response to GET /hello is in on fd. */
static void await_hello(fx_t *f, int fd)
{
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    char buf[1024];
    size_t n = 0;
    while (uv_now(&f->loop) - t0 < WAIT_MS) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5) == 1) {
            ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
            assert_true(r > 0);
            n += (size_t)r;
            buf[n] = 0;
            if (strstr(buf, "\r\n\r\nhello")) break;
        }
        uv_update_time(&f->loop);
    }
    buf[n] = 0;
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\nhello"));
}

/* Sends GET /hello, then await_hello. */
static void ask(fx_t *f, int fd)
{
    send_hello(fd);
    await_hello(f, fd);
}

/* ask with the listener's sweep timer stopped: the answer cannot have waited for a sweep
 * (it would never come), so the listener is polled again. The timer restarts after. */
static void ask_without_sweep(fx_t *f, int fd)
{
    uv_timer_t *t = &f->srv->listeners[0].timer;
    uv_timer_stop(t);
    ask(f, fd);
    uv_timer_start(t, on_timer, SWEEP_MS, SWEEP_MS);
}

/* Runs the loop (turns 1 ms apart) until *flag is set. */
static void run_until(fx_t *f, const bool *flag)
{
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    while (!*flag && uv_now(&f->loop) - t0 < WAIT_MS) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&f->loop);
    }
    assert_true(*flag);
}

/* Runs the loop until the listener has tried to take the pending connection. */
static void until_stalled(fx_t *f)
{
    run_until(f, &f->srv->listeners[0].accept_stalled);
}

static void stalled_then_served(void **state, long countdown, int failures)
{
    fx_t *f = *state;
    listener_t *l = &f->srv->listeners[0];
    alloc_failures = 0;
    alloc_countdown = countdown; /* the connection's calloc */
    int a = test_dial(f->port);
    until_stalled(f);
    assert_int_equal(alloc_failures, 1);
    assert_int_equal(atomic_load(&l->nconns), 0);
    for (int k = 1; k < failures; k++) { /* the retry fails too */
        alloc_countdown = 0;
        for (int i = 0; i < 200 && alloc_failures == k; i++) {
            uv_run(&f->loop, UV_RUN_ONCE);
        }
        assert_int_equal(alloc_failures, k + 1);
        assert_true(l->accept_stalled);
    }
    alloc_countdown = -1;
    /* answered once the sweep timer retries */
    ask(f, a);
    assert_false(l->accept_stalled);
    /* the listener polls again: a new connection is answered without waiting for a timer */
    int b = test_dial(f->port);
    ask_without_sweep(f, b);
    ask_without_sweep(f, a); /* and the first one stays usable */
    assert_int_equal(atomic_load(&l->nconns), 2);
    close(a);
    close(b);
}

static void test_conn_alloc_fails(void **state)
{
    stalled_then_served(state, 0, 1);
}

static void test_retry_fails_too(void **state)
{
    stalled_then_served(state, 0, 3);
}

/* Runs the loop until the listener holds n connections. */

/* A connection is accepted holding no buffers; when its request arrives, the allocation
 * countdown (0: the exchange, 1: its read buffer) fails, and the retries at the sweeps
 * fail failures - 1 more times. The bytes wait in the socket; once memory is there again
 * the request is answered, the connection gives everything back, and its next request and
 * a new connection's are answered at once, from the freelist. */
static void exchange_stalled_then_served(void **state, long countdown, int failures)
{
    fx_t *f = *state;
    listener_t *l = &f->srv->listeners[0];
    int a = test_dial(f->port);
    srv_fx_until_accepted(f, 1);
    conn_t *c = l->conns;
    assert_null(c->x);
    assert_null(c->rbuf);
    alloc_failures = 0;
    alloc_countdown = countdown;
    send_hello(a);
    run_until(f, &l->mem_stalled);
    assert_int_equal(alloc_failures, 1);
    assert_null(c->x);
    assert_int_equal(l->nxfree, 0);
    for (int k = 1; k < failures; k++) { /* the sweep's retry fails too */
        alloc_countdown = 0;
        for (int i = 0; i < 200 && alloc_failures == k; i++) uv_run(&f->loop, UV_RUN_ONCE);
        assert_int_equal(alloc_failures, k + 1);
        assert_null(c->x);
    }
    alloc_countdown = -1;
    await_hello(f, a); /* at a sweep */
    /* idle again: kept a while (conn_rest), then all given back at the second sweep */
    on_timer(&l->timer);
    on_timer(&l->timer);
    assert_null(c->x);
    assert_null(c->rbuf);
    assert_int_equal(l->nxfree, 1);
    alloc_countdown = 0;     /* would fail the next allocation: the requests below make none */
    ask_without_sweep(f, a); /* from the freelist, at once */
    assert_int_equal(alloc_countdown, 0);
    alloc_countdown = -1;
    on_timer(&l->timer); /* a gives its exchange back for b */
    on_timer(&l->timer);
    int b = test_dial(f->port);
    srv_fx_until_accepted(f, 2); /* (its conn_t is allocated) */
    alloc_countdown = 0;
    ask_without_sweep(f, b);
    assert_int_equal(alloc_countdown, 0);
    assert_int_equal(alloc_failures, failures);
    alloc_countdown = -1;
    close(a);
    close(b);
}

static void test_exchange_alloc_fails(void **state)
{
    exchange_stalled_then_served(state, 0, 1);
}

static void test_exchange_rbuf_alloc_fails(void **state)
{
    exchange_stalled_then_served(state, 1, 1);
}

static void test_exchange_retry_fails_too(void **state)
{
    exchange_stalled_then_served(state, 0, 3);
}

/* Shuts the listener down and checks that client a, never served, is closed. */
static void shutdown_then_closed(fx_t *f, int a)
{
    srv_fx_shutdown(f);
    char c;
    struct pollfd p = {.fd = a, .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    assert_true(recv(a, &c, 1, 0) <= 0);
    close(a);
}

/* Shutting down with a connection still pending: it is closed with the listener. */
static void test_shutdown_while_stalled(void **state)
{
    fx_t *f = *state;
    alloc_countdown = 0;
    int a = test_dial(f->port);
    until_stalled(f);
    alloc_countdown = -1;
    shutdown_then_closed(f, a);
}

/* Accept errors (ENOBUFS here) come back at once, one callback each: one warning a second,
 * which says how many were left out. */
static size_t count_lines(FILE *fp, const char *needle, char *last, size_t cap)
{
    char line[512];
    size_t n = 0;
    rewind(fp);
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, needle)) {
            n++;
            snprintf(last, cap, "%s", line);
        }
    return n;
}

static void test_accept_errors_rate_limited(void **state)
{
    fx_t *f = *state;
    listener_t *l = &f->srv->listeners[0];
    FILE *fp = tmpfile();
    assert_non_null(fp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(dup2(fileno(fp), 2) == 2);
    uv_update_time(&f->loop);
    for (int i = 0; i < 1000; i++) on_connection((uv_stream_t *)&l->tcp, UV_ENOBUFS);
    usleep(1100 * 1000); /* past the second: the next error is logged, with the count */
    uv_update_time(&f->loop);
    on_connection((uv_stream_t *)&l->tcp, UV_ENOBUFS);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char last[512] = "";
    assert_int_equal(count_lines(fp, "accept failed", last, sizeof(last)), 2);
    assert_non_null(strstr(last, "err=ENOBUFS"));
    assert_non_null(strstr(last, "errors_not_logged=999"));
    fclose(fp);
    assert_int_equal(atomic_load(&l->nconns), 0);
    /* and the listener still serves, once the sweep has ended the pause those errors caused */
    assert_true(l->accept_paused);
    int a = test_dial(f->port);
    ask(f, a);
    assert_false(l->accept_paused);
    close(a);
}

/* Runs the loop until the listener pauses (each uv_run returning is the point: libuv alone
 * would retry the failing accept forever inside the first). */
static void until_paused(fx_t *f)
{
    run_until(f, &f->srv->listeners[0].accept_paused);
}

/* accept4 fails with ENOMEM while a client waits: the loop goes on running, the listener
 * tries again at each sweep (ACCEPT_RETRIES failures, then a pause until the next one), and
 * once accept works the waiting client is answered: it stayed queued on the socket. */
static void test_persistent_accept_error_pauses(void **state)
{
    fx_t *f = *state;
    listener_t *l = &f->srv->listeners[0];
    alarm(60); /* a loop stuck in accept would hang the test: kill it instead */
    accept_errno = ENOMEM;
    accept_failed_calls = 0;
    int a = test_dial(f->port);
    until_paused(f);
    assert_int_equal(accept_failed_calls, ACCEPT_RETRIES);
    /* two more sweeps, each one whole round of failures (alarm: a hang fails) */
    while (accept_failed_calls < 3 * ACCEPT_RETRIES) {
        uv_run(&f->loop, UV_RUN_ONCE); /* returns at each sweep at the latest */
        assert_int_equal(accept_failed_calls % ACCEPT_RETRIES, 0);
    }
    assert_int_equal(atomic_load(&l->nconns), 0);
    accept_errno = 0;
    ask(f, a); /* at the next sweep */
    assert_false(l->accept_paused);
    int b = test_dial(f->port);
    ask_without_sweep(f, b);
    assert_int_equal(atomic_load(&l->nconns), 2);
    close(a);
    close(b);
    alarm(0);
}

/* Shutting down while paused: the socket's last descriptor is closed with the listener, so
 * the waiting client is reset and new ones are refused. */
static void test_shutdown_while_paused(void **state)
{
    fx_t *f = *state;
    alarm(60);
    accept_errno = EMFILE;
    int a = test_dial(f->port);
    until_paused(f);
    shutdown_then_closed(f, a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(s);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conn_alloc_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_fails_too, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_alloc_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_rbuf_alloc_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_retry_fails_too, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_while_stalled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_errors_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent_accept_error_pauses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_while_paused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
