/*
 * gw_int.h - what the gateway's files share (internal to src/gateway).
 */
#ifndef WEFT_GATEWAY_INT_H
#define WEFT_GATEWAY_INT_H

#include <stdatomic.h>

#include "core/snapshot.h"
#include "gateway/gateway.h"
#include "weft/client.h"

/* One worker's: its upstream client (connection pools) and its balancing state. */
typedef struct gw_worker_s {
    weft_http_client_t *client;
    uint64_t rr;  /* round robin */
    uint64_t rnd; /* xorshift state */
} gw_worker_t;

struct weft_gateway_s {
    weft_host_t *host;
    weft_http_server_t *srv;
    weft_registry_t *reg;
    weft_snap_cell_t table; /* gw_table_t */
    int part;
    atomic_ullong requests, no_route, no_upstream, bad_gateway, timeouts;
};

/* proxy.c: the handler of every request on the gateway's listener. */
void weft__gw_handle(weft_http_request_t *req, void *arg);

#endif
