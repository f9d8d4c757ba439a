/*
 * host_int.h - what host.c and udp.c tell each other (internal).
 *
 * A UDP listener is made by weft_host_add_udp (udp.c), which hands it to the host with
 * weft__host_add_udp; the host binds it (weft__udp_bind, on weft_host_run's thread, before
 * any worker runs), attaches it on each worker (weft__udp_attach, on that worker's thread),
 * closes it there at shutdown (weft__udp_close, on_done on the same thread once its handle
 * is closed), and frees it with itself (weft__udp_free).
 */
#ifndef WEFT_HOST_INT_H
#define WEFT_HOST_INT_H

#include <uv.h>

#include "weft/host.h"

int weft__host_add_udp(weft_host_t *h, weft_udp_t *u);
int weft__udp_bind(weft_udp_t *u, unsigned n_loops, char *err, size_t errlen);
int weft__udp_attach(weft_udp_t *u, uv_loop_t *loop, unsigned index);
void weft__udp_close(weft_udp_t *u, unsigned index, void (*on_done)(void *), void *arg);
void weft__udp_free(weft_udp_t *u);

#endif
