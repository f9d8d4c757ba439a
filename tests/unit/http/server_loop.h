/*
 * server_loop.h - a fixture for tests that compile the server engine in (server_srcs.h) and
 * run its one loop on the test thread, to look at connections between two events: a server
 * with the routes given, bound on a free loopback port and attached to a loop of the test's;
 * a bounded wait for accepted connections; a graceful shutdown that must finish. Include
 * after <cmocka.h> and server_srcs.h.
 */
#ifndef WEFT_TESTS_SERVER_LOOP_H
#define WEFT_TESTS_SERVER_LOOP_H

#include <stdlib.h>
#include <unistd.h>

typedef struct srv_fx_s {
    uv_loop_t loop;
    weft_http_server_t *srv;
    uint16_t port;
    bool done; /* the shutdown finished */
} srv_fx_t;

typedef struct srv_fx_route_s {
    const char *method, *pattern;
    weft_http_handler_fn handler;
} srv_fx_route_t;

/* A server on one loop of this thread, with n routes, bound and attached. */
static inline srv_fx_t *srv_fx_new(const srv_fx_route_t *routes, size_t n)
{
    srv_fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    assert_int_equal(weft_http_server_new(&o, 1, &f->srv), 0);
    for (size_t i = 0; i < n; i++) {
        weft_http_route_t r = {.handler = routes[i].handler};
        assert_int_equal(weft_http_server_route(f->srv, routes[i].method, routes[i].pattern, &r),
                         0);
    }
    char err[256];
    assert_int_equal(weft_http_server_bind(f->srv, err, sizeof(err)), 0);
    f->port = weft_http_server_port(f->srv);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(weft_http_server_attach(f->srv, &f->loop, 0), 0);
    return f;
}

static void srv_fx_on_done(void *arg)
{
    ((srv_fx_t *)arg)->done = true;
}

/* The graceful shutdown (unless it ran already), run until it has finished. */
static inline void srv_fx_shutdown(srv_fx_t *f)
{
    if (!f->done) weft_http_server_shutdown(f->srv, 0, srv_fx_on_done, f);
    for (int i = 0; i < 1000 && !f->done; i++) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(f->done);
}

/* After srv_fx_shutdown (and closing the test's own handles): nothing may be left open. */
static inline void srv_fx_free(srv_fx_t *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the handles' close callbacks */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    weft_http_server_free(f->srv);
    free(f);
}

/* Runs the loop until the listener holds n connections (at most 2,000 turns 1 ms apart). */
static inline void srv_fx_until_accepted(srv_fx_t *f, unsigned n)
{
    listener_t *l = &f->srv->listeners[0];
    for (int i = 0; i < 2000 && atomic_load(&l->nconns) != n; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (atomic_load(&l->nconns) != n) usleep(1000);
    }
    assert_int_equal(atomic_load(&l->nconns), n);
}

#endif
