/*
 * gw_int.h - what the gateway's files share (internal to src/gateway).
 */
#ifndef WEFT_GATEWAY_INT_H
#define WEFT_GATEWAY_INT_H

#include <stdatomic.h>

#include "core/buf.h"
#include "core/snapshot.h"
#include "gateway/gateway.h"
#include "gateway/observe.h"
#include "gateway/policy.h"
#include "weft/breaker.h"
#include "weft/client.h"
#include "weft/metrics.h"

#define GW_METRIC_SLOTS 128

/* A worker's cached metric handles for one (route, upstream, status). */
typedef struct gw_mslot_s {
    char route[64]; /* the route's name (a longer one is looked up every time) */
    uint16_t port;
    int status;
    char host[64];
    weft_counter_t *requests;
    weft_histogram_t *duration;
} gw_mslot_t;

/* One worker's: its upstream client (connection pools), its balancing state, its metric
 * handles. */
typedef struct gw_worker_s {
    weft_http_client_t *client;
    uint64_t rr;  /* round robin */
    uint64_t rnd; /* xorshift state */
    gw_mslot_t mslots[GW_METRIC_SLOTS];
    weft_buf_t alog; /* the access log line being formatted (observe.c) */
} gw_worker_t;

struct weft_gateway_s {
    weft_host_t *host;
    weft_http_server_t *srv;
    weft_registry_t *reg;
    weft_snap_cell_t table; /* gw_table_t */
    int part;
    atomic_ullong requests, no_route, no_upstream, bad_gateway, timeouts;
    /* weft_gateway_requests_total{route,upstream,code}, _request_duration_seconds{route},
     * _upstream_errors_total{route,kind}; NULL without a metrics registry */
    weft_metrics_family_t *fam_requests, *fam_duration, *fam_errors;
    gw_policy_metrics_t pm;      /* the policies' families */
    weft_retry_budget_t *budget; /* retries <= 20% of active requests (at least 3 at once) */
    weft_tracer_t *tracer;       /* the host's; NULL: no spans, traceparent passed through */
    gw_alog_t *alog;             /* the JSON access log; NULL: off */
};

/* proxy.c: the handler of every request on the gateway's listener. */
void weft__gw_handle(weft_http_request_t *req, void *arg);

#endif
