/*
 * host_int.h - what the host and its listeners that are not HTTP tell each other
 * (internal).
 *
 * A UDP or TCP listener is made by weft_host_add_udp / _tcp, which hands it to the host
 * with its operations (weft__host_add_listener). The host binds it (bind, on
 * weft_host_run's thread, before any worker runs: one socket per worker), attaches it on
 * each worker (attach, on that worker's thread), closes it there at shutdown (close;
 * on_done runs on the same thread once its handles are closed), and frees it with itself
 * (free). core/listen.h makes their sockets.
 */
#ifndef WEFT_HOST_INT_H
#define WEFT_HOST_INT_H

#include <stdatomic.h>
#include <uv.h>

#include "weft/host.h"

typedef struct weft__listener_ops_s {
    const char *kind; /* "udp", "tcp": for logs */
    int (*bind)(void *l, unsigned n_loops, char *err, size_t errlen);
    int (*attach)(void *l, uv_loop_t *loop, unsigned index);
    void (*close)(void *l, unsigned index, void (*on_done)(void *), void *arg);
    void (*free)(void *l);
    uint16_t (*port)(const void *l);
} weft__listener_ops_t;

/* Before weft_host_run: WEFT_ESTATE after, WEFT_ELIMIT past WEFT_HOST_LISTENERS_MAX. */
int weft__host_add_listener(weft_host_t *h, const weft__listener_ops_t *ops, void *l);

/* What a UDP and a TCP listener share (socklis.c): the address, and once bound the sockets,
 * one per worker, each taken by that worker's handle at attach. */
typedef struct weft__socklis_s {
    char host[64];
    uint16_t want;         /* the port asked for; 0: any free one */
    _Atomic uint16_t port; /* the port bound; 0 before */
    unsigned n;            /* workers, once bound */
    int *fds;              /* once bound: fds[i] until worker i's handle takes it, then -1 */
} weft__socklis_t;

/* Checks host (NULL: 127.0.0.1; a numeric address), fills b and adds l, the listener that
 * holds b, to h. 0, WEFT_EINVAL, or weft__host_add_listener's errors. */
int weft__socklis_add(weft_host_t *h, weft__socklis_t *b, const char *host, uint16_t port,
                      const weft__listener_ops_t *ops, void *l);
/* Binds one socket of type per worker (core/listen.c); n_loops: the host's workers. */
int weft__socklis_bind(weft__socklis_t *b, int type, int backlog, unsigned n_loops, char *err,
                       size_t errlen);
/* Worker index takes its socket (-1 if none is left). */
int weft__socklis_take(weft__socklis_t *b, unsigned index);
/* Closes the sockets no worker took. */
void weft__socklis_free(weft__socklis_t *b);

#endif
