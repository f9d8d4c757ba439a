/*
 * reg_int.h - what the registry's files share (internal to src/registry): the registry
 * object, the per-worker state, and the functions api.c and registry.c call across.
 */
#ifndef WEFT_REGISTRY_INT_H
#define WEFT_REGISTRY_INT_H

#include <stdatomic.h>

#include "registry/catalog.h"
#include "registry/checker.h"
#include "registry/dns.h"
#include "registry/registry.h"
#include "registry/store.h"

#define REG_NOT_QUEUED UINT32_MAX

/* A held request: a blocking query or an event stream. 56 bytes: ten thousand watchers. */
typedef struct reg_held_s {
    struct reg_held_s *prev, *next;
    weft_http_request_t *req;
    weft_registry_t *r;
    uint64_t index;    /* blocking: the index the client has; stream: the last sent */
    uint64_t deadline; /* blocking: when its wait ends (loop time, ms) */
    uint32_t qpos;     /* its slot in the worker's waitq; REG_NOT_QUEUED when in none */
    int8_t kind;       /* api.c's read kind; -1 for an event stream */
    bool done;
} reg_held_t;

/* The deadlines of a worker's blocking queries (waitq.c). */
typedef struct reg_waitq_s {
    reg_held_t **v;
    unsigned n, cap;
} reg_waitq_t;

typedef struct reg_worker_s {
    reg_held_t waiters; /* list head (blocking queries) */
    reg_held_t streams; /* list head (event streams) */
    size_t nwaiters, nstreams;
    reg_waitq_t waitq;
    uv_timer_t timer; /* for the earliest deadline in waitq (api.c) */
} reg_worker_t;

/* waitq.c: a min-heap by deadline. add: 0, or WEFT_ENOMEM (nothing changed). */
int weft__waitq_add(reg_waitq_t *q, reg_held_t *h);
/* h leaves the queue; nothing when it is in none. */
void weft__waitq_remove(reg_waitq_t *q, reg_held_t *h);
/* The one whose deadline comes first; NULL when empty. */
reg_held_t *weft__waitq_first(const reg_waitq_t *q);
void weft__waitq_free(reg_waitq_t *q);

struct weft_registry_s {
    weft_service_t *svc;
    weft_host_t *host;
    weft_registry_conf_t conf;
    char *data_dir;
    char api_host[64];
    char node_name[256], node_id[40], node_addr[64];
    uint8_t node_fam, node_bin[16]; /* node_addr parsed, for DNS */
    reg_node_t node;
    weft_snap_cell_t cell;
    weft_catalog_t *cat;
    struct reg_cklog_s *cklog; /* the checks' transitions with outputs (cklog.h) */
    weft_store_t *store;
    weft_checker_t *checker;
    weft_dns_server_t *dns;
    int part;
    void *route_args; /* api.c's */
    atomic_bool failed, ready;
    atomic_ullong parked, streams, writes, reads, wakeups;
    struct {
        atomic_ullong checks, runs, changes, skipped, late_p99_us, late_max_us;
        atomic_ullong batches, commits, failed;
    } stats; /* copied from the checker and the store every second (registry.c) */
    uv_timer_t stats_timer;
    bool stats_timer_open;
};

/* api.c */
int weft__reg_routes(weft_registry_t *r, char *err, size_t errlen);
/* On a worker: a new snapshot (and its events) arrived: wake what waits. */
void weft__reg_worker_notify(weft_registry_t *r, reg_worker_t *w, reg_events_t *ev);
/* On a worker before it serves: w's lists and timer. */
void weft__reg_worker_init(reg_worker_t *w, uv_loop_t *loop);
/* On a worker at shutdown: answer everything held, close w's timer. */
void weft__reg_worker_release(weft_registry_t *r, reg_worker_t *w);

#endif
