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

#endif
