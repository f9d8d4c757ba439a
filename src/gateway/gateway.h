/*
 * gateway.h - the API gateway of `weft serve` (internal to the daemon): an HTTP listener on
 * the host's workers that matches each request against the route table and proxies it to a
 * registry service's passing instances or to a static list of targets.
 */
#ifndef WEFT_GATEWAY_H
#define WEFT_GATEWAY_H

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
    gw_route_t *routes;                     /* moved in (the gateway owns them, also on
                                               failure) */
    size_t nroutes;
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

/* gateway.access_log (a WEFT_CONF_TREE value; NULL: none): *path is its path (the node's
 * string, valid while the configuration is), or NULL when there is no access log. Returns
 * 0, or WEFT_EINVAL with err "FILE:LINE:COLUMN: gateway.access_log...: what". */
int weft_gateway_access_log_compile(const struct weft_conf_node_s *n, const char **path, char *err,
                                    size_t errlen);

/* Adds the gateway's listener and part to h (before weft_host_run). Returns 0 and *out, or
 * a WEFT_E* code with err set. */
int weft_gateway_new(weft_host_t *h, const weft_gateway_options_t *o, weft_gateway_t **out,
                     char *err, size_t errlen);
/* The bound port (after the host bound its listeners). */
uint16_t weft_gateway_port(const weft_gateway_t *g);
/* After the host stopped. */
void weft_gateway_free(weft_gateway_t *g);

#endif
