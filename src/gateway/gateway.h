/*
 * gateway.h - the API gateway of `weft serve` (internal to the daemon): an HTTP listener on
 * the host's workers that matches each request against the route table and proxies it to a
 * registry service's passing instances or to a static list of targets.
 */
#ifndef WEFT_GATEWAY_H
#define WEFT_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/route.h"
#include "registry/registry.h"
#include "weft/host.h"
#include "weft/http.h"
#include "weft/trace.h"

typedef struct weft_gateway_s weft_gateway_t;

typedef struct weft_gateway_options_s {
    const char *host;                       /* numeric listen address */
    uint16_t port;                          /* 0: a free port (weft_gateway_port) */
    const weft_http_server_options_t *http; /* limits; NULL: the defaults */
    weft_registry_t *registry;              /* for service routes; NULL: none */
    weft_metrics_registry_t *metrics;       /* the gateway's families go here; NULL: none */
    unsigned max_tunnels;                   /* open tunnels (upgrades) at once, all workers;
                                               0: 10000 */
    gw_route_t *routes;                     /* moved in (the gateway owns them, also on
                                               failure) */
    size_t nroutes;
    /* Reloading (POST /v1/gateway/reload, SIGHUP): compiles the routes of the configuration
     * again, from the file weft was started with, into *routes and *n (as
     * weft_gateway_routes_compile does). Returns 0, or a WEFT_E* code with err set to one
     * line ("FILE:LINE:COLUMN: KEY: what is wrong"). Runs on the control loop. NULL:
     * reloads are refused. */
    int (*reload)(void *arg, gw_route_t **routes, size_t *n, char *err, size_t errlen);
    void *reload_arg;
    weft_tracer_t *tracer;  /* a span per request (observe.c); NULL: none (the host's, not
                               owned) */
    const char *access_log; /* gateway.access_log.path: a file, "-" for standard output;
                               NULL: no access log */
} weft_gateway_options_t;

/* gateway.routes (a WEFT_CONF_TREE value; NULL: none) compiled into *out (n of them, the
 * caller's; gw_route_clear each and free the array, or hand them to weft_gateway_new).
 * Returns 0, or WEFT_EINVAL with err "FILE:LINE:COLUMN: gateway.routes[i]...: what". */
struct weft_conf_node_s;
int weft_gateway_routes_compile(const struct weft_conf_node_s *routes, gw_route_t **out, size_t *n,
                                char *err, size_t errlen);

/* Gives the routes with a tracing block the global tracing.sample_ratio and
 * tracing.sample_rate (traces a second, 0: no cap) where they do not set their own, and
 * fills their rate buckets. After weft_gateway_routes_compile, before the routes serve. */
void weft_gateway_routes_tracing(gw_route_t *routes, size_t n, double ratio, double rate);

/* gateway.access_log (a WEFT_CONF_TREE value; NULL: none): *path is its path (the node's
 * string, valid while the configuration is), or NULL when there is no access log. Returns
 * 0, or WEFT_EINVAL with err "FILE:LINE:COLUMN: gateway.access_log...: what". */
int weft_gateway_access_log_compile(const struct weft_conf_node_s *n, const char **path, char *err,
                                    size_t errlen);

/* Adds the gateway's listener and part to h (before weft_host_run). Returns 0 and *out, or
 * a WEFT_E* code with err set. */
int weft_gateway_new(weft_host_t *h, const weft_gateway_options_t *o, weft_gateway_t **out,
                     char *err, size_t errlen);
/* Adds the admin API to svc's API server (before it runs): GET /v1/gateway/routes,
 * GET /v1/gateway/upstreams, POST /v1/gateway/reload (docs/gateway.md). acl_token (copied;
 * NULL or "": none) is what a reload must carry, as the registry's writes do. Returns 0 or
 * a WEFT_E* code with err set. */
int weft_gateway_admin(weft_gateway_t *g, weft_service_t *svc, const char *acl_token, char *err,
                       size_t errlen);

/* The history (GET /v1/weft/history, docs/gateway.md "History"): history.* settings. */
typedef struct gw_history_options_s {
    bool enabled;         /* false: no ring, no sampler (the API answers 404) */
    size_t max_routes;    /* routes tracked at once, 1..4096 */
    size_t max_upstreams; /* upstreams (breakers and instances) tracked at once, 1..4096 */
} gw_history_options_t;

/* Adds the history to g: a ring sampled every second on the host's control loop, and
 * GET /v1/weft/history and /v1/weft/history/transitions on svc's API server (before it
 * runs). Returns 0 or a WEFT_E* code with err set. */
int weft_gateway_history(weft_gateway_t *g, weft_service_t *svc, const gw_history_options_t *o,
                         char *err, size_t errlen);

/* Replaces the route table with routes[0..n) (moved in: the gateway owns them, also on
 * failure). A route whose name and policy settings (rate_limit, circuit_breaker) are those
 * of a route of the current table keeps that route's limiter and breaker with their state;
 * any other gets fresh ones. Requests under way keep the table they matched; the old
 * table, and the state no new route kept, are freed when the last of them ends. summary
 * (may be NULL) receives a JSON object: routes, generation, and the names kept, changed
 * (policy settings changed: fresh state), added and removed. Not concurrently with itself:
 * the control loop, or before the host runs. Returns 0, or a WEFT_E* code with err set
 * (the current table keeps serving). */
struct weft_buf_s;
int weft_gateway_reload(weft_gateway_t *g, gw_route_t *routes, size_t n, struct weft_buf_s *summary,
                        char *err, size_t errlen);

/* The bound port (after the host bound its listeners). */
uint16_t weft_gateway_port(const weft_gateway_t *g);
/* After the host stopped. */
void weft_gateway_free(weft_gateway_t *g);

#endif
