/*
 * catalog.h - the registry's catalog: owned by the control loop, read by everyone through
 * immutable snapshots (internal to src/registry; the gateway reads the snapshots too).
 *
 * Writes (weft__cat_* below) run on the control loop only. Each write that changes
 * something takes the next value of the global index (Consul's "raft index": it only grows,
 * across restarts too) and sets it as the modify index of what it changed and of the
 * service it belongs to. The catalog then hands the change to its store (store.h) and, once
 * the store made it durable, publishes a new snapshot and calls the write's done function:
 * a registration is answered only after it is on disk, and every reader sees it by then.
 *
 * Snapshots (reg_snap_t) are published in a core/snapshot.h cell. A snapshot holds the
 * services sorted by name; each service (reg_svc_t) holds its instances sorted by ID. Both
 * are reference-counted snapshot objects: a new snapshot shares every service that did not
 * change with the one before, so a change costs what changed plus one array of pointers.
 * A service also caches its serialized answers (the bodies of /v1/health/service/NAME with
 * and without ?passing, /v1/catalog/service/NAME), built by the first reader that needs one
 * and then shared by every reader and every blocking query woken by the same change.
 */
#ifndef WEFT_REGISTRY_CATALOG_H
#define WEFT_REGISTRY_CATALOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/snapshot.h"
#include "registry/model.h"
#include "registry/store.h"

/* A serialized answer, shared. */
typedef struct reg_body_s {
    size_t len;
    char data[];
} reg_body_t;

typedef enum reg_cache_e {
    REG_BODY_HEALTH = 0,  /* /v1/health/service/NAME */
    REG_BODY_PASSING = 1, /* ... ?passing */
    REG_BODY_CATALOG = 2, /* /v1/catalog/service/NAME */
    REG_BODY_N = 3
} reg_cache_t;

typedef struct reg_svc_s {
    const char *name; /* = inst[0]->name */
    uint64_t index;   /* the last change to this service (its instances or their checks) */
    uint32_t n, npassing;
    uint32_t name_len; /* strlen(name): lookups compare without measuring it each time */
    reg_inst_t **inst; /* sorted by ID; each holds a reference */
    _Atomic(reg_body_t *) cache[REG_BODY_N];
} reg_svc_t;

typedef struct reg_snap_s {
    uint64_t index;          /* the global index */
    uint64_t services_index; /* the last change to the set of services or their tags */
    uint64_t ninst;
    uint32_t nsvc;
    reg_svc_t **svc;           /* sorted by name; each holds a reference */
    reg_check_t **node_checks; /* owned copies; serfHealth first */
    uint32_t nnode_checks;
    weft_health_t node_health;
    const reg_node_t *node;
} reg_snap_t;

/* The changes one publication brings, for the event stream (GET /v1/weft/events): a
 * reference-counted block of server-sent events, "id: INDEX\nevent: TYPE\ndata: JSON\n\n"
 * each, handed to every worker. */
typedef struct reg_events_s {
    atomic_uint refs;
    uint64_t first_index, last_index;
    size_t len;
    char data[];
} reg_events_t;
void weft__events_release(reg_events_t *e);

/* ---- readers (any registered thread, inside a read section or holding the snapshot) ---- */

/* The service named name, or NULL. */
reg_svc_t *weft__snap_service(const reg_snap_t *s, const char *name, size_t len);
/* The instance with this ID, or NULL (and its service in *svc). */
reg_inst_t *weft__snap_instance(const reg_snap_t *s, const char *id, size_t len, reg_svc_t **svc);
/* The cached body of kind k for svc, building it on first use. NULL when out of memory. */
const reg_body_t *weft__svc_body(const reg_snap_t *s, reg_svc_t *svc, reg_cache_t k);

/* ---- the writer (control loop) ---- */

typedef struct weft_catalog_s weft_catalog_t;

typedef struct weft_catalog_options_s {
    reg_node_t node;
    weft_store_t *store;    /* NULL: nothing is kept (tests) */
    weft_snap_cell_t *cell; /* where snapshots are published */
    uv_loop_t *loop;        /* the control loop */
    /* Health checks to run or stop (the checker; NULL in tests). */
    void (*check_start)(void *arg, uint64_t key, const reg_check_t *c, const reg_inst_t *inst);
    void (*check_stop)(void *arg, uint64_t key);
    /* After each publication (blocking queries wake from here). events: what changed, or
     * NULL; the callee takes a reference if it keeps it. */
    void (*published)(void *arg, const reg_snap_t *snap, reg_events_t *events);
    void *arg;
    size_t max_instances; /* default 100000 */
    struct reg_cklog_s *cklog; /* each check's transitions with outputs (cklog.h); NULL: none */
} weft_catalog_options_t;

/* A write's completion: status 0 (done and durable) or an HTTP status with a message. */
typedef struct reg_done_s {
    void (*fn)(struct reg_done_s *d, int http_status, const char *msg);
} reg_done_t;

int weft_catalog_new(const weft_catalog_options_t *o, weft_catalog_t **out, char *err,
                     size_t errlen);
/* Reads the store (before anything else) and publishes the first snapshot. */
int weft_catalog_load(weft_catalog_t *c, char *err, size_t errlen);

/* Each write calls done exactly once (maybe before it returns, for an error): 200 once the
 * change is durable and published, 404 for an unknown ID, 400 for a bad request, 429 when the
 * store's queue is full, 503 when closing, 500 when the store failed. */
void weft__cat_register(weft_catalog_t *c, reg_inst_t *in, bool replace_checks, reg_done_t *d);
void weft__cat_deregister(weft_catalog_t *c, const char *id, reg_done_t *d);
void weft__cat_check_register(weft_catalog_t *c, reg_check_t *chk, reg_done_t *d);
void weft__cat_check_deregister(weft_catalog_t *c, const char *id, reg_done_t *d);
/* TTL update: status and output (NULL: keep). */
void weft__cat_check_update(weft_catalog_t *c, const char *id, weft_health_t st, const char *output,
                            reg_done_t *d);
void weft__cat_maintenance(weft_catalog_t *c, const char *id, bool enable, const char *reason,
                           reg_done_t *d);
/* A result from the checker (key from check_start). Stale keys are ignored. */
void weft__cat_check_result(weft_catalog_t *c, uint64_t key, weft_health_t st, const char *output);

typedef struct weft_catalog_stats_s {
    uint64_t instances, services, checks, index, publishes, writes, reaped;
} weft_catalog_stats_t;
weft_catalog_stats_t weft_catalog_stats(const weft_catalog_t *c);

/* Flushes and stops: no write is taken afterwards (done gets 503). Control loop. Closes its
 * timers; the store is closed by its owner afterwards. */
void weft_catalog_close(weft_catalog_t *c);
/* After the store closed (its last done callbacks ran): answers what they queued. */
void weft__cat_flush(weft_catalog_t *c);
/* Frees it, after its handles closed (the loop ran once after weft_catalog_close). */
void weft_catalog_free(weft_catalog_t *c);

#endif
