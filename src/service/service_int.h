/*
 * service_int.h - what the SDK service's files share (internal): service.c (the service),
 * settings.c (its standard settings) and registrar.c (its registration with a registry).
 */
#ifndef WEFT_SERVICE_SERVICE_INT_H
#define WEFT_SERVICE_SERVICE_INT_H

#include "weft/discovery.h"
#include "weft/host.h"
#include "weft/service.h"

/* service.c: the worst status of the service's checks (CRITICAL while it drains), and one
 * line saying why into out (cap bytes): the worst check's "NAME: OUTPUT", or "passing".
 * Runs the checks on the calling thread (they are quick and thread-safe by contract). */
weft_check_status_t weft__service_health(weft_service_t *svc, char *out, size_t cap);

/* The name weft_check_status_t has in Consul's API: "passing", "warning", "critical". */
const char *weft__service_status_name(weft_check_status_t st);

/* registrar.c */
typedef struct weft__registrar_s weft__registrar_t;

/* Checks and copies o->registry (when o->registry.url is set) and adds the registrar's
 * part to host h: *out NULL when there is no registry. Returns 0, WEFT_EINVAL,
 * WEFT_EUNSUPPORTED, WEFT_ENOMEM, or weft_host_add_part's error (then nothing is left). */
int weft__registrar_new(weft_service_t *svc, const weft_service_options_t *o, weft_host_t *h,
                        weft__registrar_t **out);

/* Frees a registrar whose host does not run (NULL: nothing). */
void weft__registrar_free(weft__registrar_t *r);

/* The registered ID ("" before the start). */
const char *weft__registrar_id(const weft__registrar_t *r);

/* Options for a discovery client of the service's: the registry, its token, the policy;
 * loop is the caller's to set. */
void weft__registrar_discovery_options(const weft__registrar_t *r, weft_discovery_options_t *o);

/* service_limit.c: the service's rate limiters and the routes they apply to */
typedef struct weft__limits_s weft__limits_t;

/* A limiter in *ls (made on first use); its counters in metrics (NULL: none). Returns as
 * weft_service_limiter_new. */
int weft__limiter_new(weft__limits_t **ls, weft_metrics_registry_t *metrics,
                      const weft_service_limit_options_t *o, weft_service_limiter_t **out,
                      char *err, size_t errlen);
/* Applies l to route (or "*"). Returns as weft_service_rate_limit. */
int weft__limits_attach(weft__limits_t **ls, const char *route, weft_service_limiter_t *l);
/* The limiter that applies to req (its matched route), or NULL. */
weft_service_limiter_t *weft__limits_for(const weft__limits_t *ls, const weft_http_request_t *req);
void weft__limits_free(weft__limits_t *ls);

#endif
