/*
 * registry.h - the service registry as a part of a weft host (internal; `weft serve` uses
 * it): the catalog on the control loop, its store, the health checker, the Consul-compatible
 * HTTP API on the API server's workers, blocking queries, the event stream and the DNS
 * interface.
 */
#ifndef WEFT_REGISTRY_REGISTRY_H
#define WEFT_REGISTRY_REGISTRY_H

#include "core/snapshot.h"
#include "weft/config.h"
#include "weft/host.h"
#include "weft/service.h"

typedef struct weft_registry_s weft_registry_t;

/* registry.* and dns.* settings (one declaration table, registry.c). */
typedef struct weft_registry_conf_s {
    char *node_name;  /* "": the host name */
    char *datacenter; /* "dc1" */
    char *acl_token;  /* "": writes are open */
    bool sync_full;   /* synchronous=FULL (power-loss safe) */
    uint64_t max_instances;
    uint64_t max_wait;    /* ms: the longest ?wait */
    weft_conf_addr_t dns; /* 127.0.0.1:8600 */
    char *dns_domain;     /* "consul." */
    uint64_t dns_ttl;     /* seconds */
} weft_registry_conf_t;

weft_conf_section_t weft_registry_conf_section(weft_registry_conf_t *conf);

typedef struct weft_registry_options_s {
    const weft_registry_conf_t *conf;
    const char *data_dir; /* NULL: nothing persists */
    const char *api_host; /* the API's address, for /v1/status/leader and the node */
    bool dns;             /* open the DNS listeners */
} weft_registry_options_t;

/* Adds the registry to svc's host: its routes on svc's API server, a part (the catalog
 * opens from the part's start hook, on the control loop), the DNS listeners. Before the
 * service runs. Returns 0 or a negative error with a message in err. */
int weft_registry_new(weft_service_t *svc, const weft_registry_options_t *o, weft_registry_t **out,
                      char *err, size_t errlen);

/* True once the catalog was loaded (a failed load stops the host and leaves this false). */
bool weft_registry_failed(const weft_registry_t *r);

/* The published catalog (for the gateway): a cell of reg_snap_t (registry/catalog.h). */
weft_snap_cell_t *weft_registry_cell(weft_registry_t *r);

/* After the host stopped. */
void weft_registry_free(weft_registry_t *r);

#endif
