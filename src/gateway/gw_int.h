/*
 * gw_int.h - what the gateway's files share (internal to src/gateway).
 */
#ifndef WEFT_GATEWAY_INT_H
#define WEFT_GATEWAY_INT_H

#include <stdatomic.h>

#include <uv.h>

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
    uint16_t host_len; /* UINT16_MAX: a host too long for host[] (it matches none) */
    int status;
    char host[64]; /* host_len bytes, no NUL */
    weft_counter_t *requests;
    weft_histogram_t *duration;
} gw_mslot_t;

/* One worker's: its upstream client (connection pools), its balancing state, its metric
 * handles. */
typedef struct gw_worker_s {
    unsigned index; /* the worker's (its row of gw_table_t.active) */
    weft_http_client_t *client;
    struct gw_tunnel_s *tunnels; /* this worker's open tunnels (tunnel.c) */
    uint64_t rr;                 /* round robin */
    uint64_t rnd;                /* xorshift state */
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
    bool have_metrics;           /* pm's families exist */
    weft_retry_budget_t *budget; /* retries <= 20% of active requests (at least 3 at once) */
    unsigned nworkers;
    /* reloads: the control loop's (new and free: the thread that builds the host) */
    gw_table_t *cur; /* the published table, held: what a reload carries state over from */
    int (*reload)(void *arg, gw_route_t **routes, size_t *n, char *err, size_t errlen);
    void *reload_arg;
    atomic_ullong generation, reload_failures; /* tables published (the first is 1), refused */
    char *acl_token;                           /* NULL: reloads need no token */
    /* tunnels (tunnel.c): slots taken by upgrade requests admitted and by open tunnels, at
     * most max_tunnels; weft_gateway_tunnels_active{route}, _tunnels_total{route} */
    atomic_uint tunnel_slots;
    unsigned max_tunnels;
    weft_metrics_family_t *fam_tun_active, *fam_tun_total;
    weft_tracer_t *tracer;        /* the host's; NULL: no spans, traceparent passed through */
    gw_alog_t *alog;              /* the JSON access log; NULL: off */
    struct gw_history_s *history; /* history_sample.c; NULL: none */
};

typedef struct gw_history_s gw_history_t;
/* history_sample.c: frees the history (after the host stopped). NULL: nothing. */
void weft__gw_history_free(gw_history_t *hs);

/* gateway.c: reads the configuration again and publishes its routes (the control loop).
 * Returns 0 with summary filled (may be NULL), or a WEFT_E* code with err set; logs the
 * outcome either way. `why` names the trigger in the log ("SIGHUP", "api"). */
int weft__gw_reload_now(weft_gateway_t *g, const char *why, struct weft_buf_s *summary, char *err,
                        size_t errlen);

/* proxy.c: the handler of every request on the gateway's listener. */
void weft__gw_handle(weft_http_request_t *req, void *arg);

/* tunnel.c: copies bytes both ways between the client's socket down_fd and the upstream's
 * up_fd on loop (w's), after an upgrade. down_data: the client's bytes after its request
 * head, sent upstream first; up_data: the 101 head and the upstream's bytes after it, sent
 * to the client first (both malloc'd or NULL; taken). The tunnel takes over one tunnel slot
 * (g->tunnel_slots) and the descriptors, on failure too. Returns 0, or WEFT_ENOMEM or a
 * libuv error (all of it closed and freed, the slot given back). */
int gw_tunnel_start(weft_gateway_t *g, gw_worker_t *w, uv_loop_t *loop, const char *route,
                    int down_fd, char *down_data, size_t down_len, int up_fd, char *up_data,
                    size_t up_len, uint64_t idle_ms);
/* Closes every tunnel of w (the worker stops). */
void gw_tunnels_close_all(gw_worker_t *w);

#endif
