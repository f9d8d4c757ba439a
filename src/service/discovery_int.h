/*
 * discovery_int.h - the discovery client's insides (weft/discovery.h), shared by its files:
 *
 *   discovery.c        the object: options, new, close, stats; the cache's table of entries
 *                      (lookup, eviction, idleness); the tick timer (deadlines of waiting
 *                      calls, backoffs, idle entries); the ready queue and its kick
 *   discovery_watch.c  one entry's blocking query: sending it, reading the answer, parsing
 *                      the instances, backoff
 *   discovery_call.c   calls, broadcasts and resolutions: picking an instance, attempts and
 *                      retries, gathering results, cancel, delivery
 *   discovery_policy.c the balancer and the breaker per instance of an entry (no sockets:
 *                      discovery_policy.h, tested on a fake clock)
 *   discovery_ops.c    registry operations (register, deregister, check update, registered)
 *                      and the catalog read of a "*" broadcast
 *
 * Everything runs on the client's loop thread; nothing here is locked.
 *
 * Lifetimes. A call (any kind) is owned by the client from its start to its delivery: a
 * top-level call is on d->calls until its callback ran (then it is freed); a child (an
 * instance of a broadcast, a "*" broadcast's per-service broadcasts and its catalog read) is
 * owned by its parent and freed with it. A call that uses a cache entry holds it (users), so
 * an entry is dropped only when no call uses it. Every user callback runs from deliver(),
 * called by the kick (an idle handle that drains d->ready) or by cancel/close, never while
 * the client's own state is being walked: state changes only queue calls.
 */
#ifndef WEFT_SERVICE_DISCOVERY_INT_H
#define WEFT_SERVICE_DISCOVERY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "service/discovery_policy.h"
#include "weft/breaker.h"
#include "weft/client.h"
#include "weft/discovery.h"

#define DISC_MAX_SERVICES 4096
#define DISC_MAX_RETRIES  16
#define DISC_MAX_TAGS     64
#define DISC_MAX_META     64
#define DISC_HOST_MAX     255

/* ---- an intrusive doubly-linked list: a node linked to itself is in no list ---- */

typedef struct dlink_s {
    struct dlink_s *prev, *next;
} dlink_t;

static inline void dl_init(dlink_t *n)
{
    n->prev = n->next = n;
}
static inline bool dl_empty(const dlink_t *h)
{
    return h->next == h;
}
static inline void dl_push(dlink_t *h, dlink_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void dl_del(dlink_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define DL_ITEM(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

/* ---- cache entries ---- */

/* What is known of an entry's service. */
typedef enum svc_state_e {
    SVC_NEW = 0,  /* no answer yet (the first query is in flight, or failed) */
    SVC_READY = 1 /* answered at least once: inst/n is the last answer (maybe stale) */
} svc_state_t;

/* Its query, a state machine of its own (discovery_watch.c). */
typedef enum watch_state_e {
    W_IDLE = 0,   /* nothing in flight, nothing scheduled (dropping, or closing) */
    W_QUERY = 1,  /* a query is in flight (hc) */
    W_BACKOFF = 2 /* the next query is due at retry_ns (the tick sends it) */
} watch_state_t;

typedef struct svc_s {
    weft_discovery_t *d;
    char name[WEFT_DISCOVERY_NAME_MAX + 1];
    svc_state_t state;
    watch_state_t wstate;
    int err;                         /* the last query's error; 0 after a good answer */
    uint64_t index;                  /* X-Consul-Index to block on; 0: ask without blocking */
    weft_discovery_instance_t *inst; /* sorted by ID; one block with their strings */
    size_t n;
    unsigned rr;       /* round-robin position */
    unsigned users;    /* calls holding the entry */
    dlink_t waiters;   /* calls waiting for the first answer (call_t.wlink) */
    uint64_t used_ns;  /* last started call */
    uint64_t retry_ns; /* W_BACKOFF: when to query again */
    unsigned failures; /* queries failed in a row (the backoff's exponent) */
    uint64_t sent_ns;  /* when the query in flight was sent */
    bool dropping;     /* its query is being canceled for good */
    /* the query in flight */
    weft_http_client_call_t *hc;
    int qstatus;
    bool qhave_index, qoverflow;
    uint64_t qindex;
    weft_buf_t qbody;
    dpol_set_t pol; /* balancer and breakers over inst (discovery_policy.c) */
} svc_t;

/* ---- calls ---- */

typedef enum kind_e {
    K_CALL = 0,      /* one request to one instance (retries to others); a broadcast's child
                        is a K_CALL pinned to its instance */
    K_BCAST = 1,     /* every instance of one service: children K_CALL */
    K_BCAST_ALL = 2, /* every service: a catalog read (K_OP), then children K_BCAST */
    K_RESOLVE = 3,   /* the instances of one service */
    K_OP = 4         /* one request to the registry */
} kind_t;

typedef enum cstate_e {
    C_NEW = 0,      /* made, not started */
    C_WAITING = 1,  /* waiting for its entry's first answer (wlink, dlink linked) */
    C_SENDING = 2,  /* an HTTP request in flight (hc) */
    C_CHILDREN = 3, /* a broadcast waiting for its children (pending) */
    C_DONE = 4,     /* finished: err, status, body final; queued or waiting for its parent */
    C_BACKOFF = 5   /* between two attempts, until retry_ns (dlink linked: the tick) */
} cstate_t;

/* A request as a call keeps it (one allocation with its strings); broadcast children share
 * their parent's. */
typedef struct rq_s {
    char service[WEFT_DISCOVERY_NAME_MAX + 1];
    const char *method, *target;
    weft_http_header_t *hdrs;
    size_t nhdrs;
    const char *body;
    size_t body_len;
    uint64_t timeout_ms, connect_ms, head_ms, body_ms;
    bool has_key, any_method, idempotent;
    uint64_t key_hash; /* RING_HASH: the hash of the request's hash_key */
} rq_t;

struct weft_discovery_call_s {
    weft_discovery_t *d;
    kind_t kind;
    cstate_t state;
    bool stopping; /* being canceled: its HTTP call's on_done must only let go */
    bool queued;   /* on d->ready */
    bool pinned;   /* K_CALL: inst_* chosen by the parent; never another */
    bool svc_held; /* svc->users counts this call */
    dlink_t link;  /* top-level: d->calls until delivered */
    dlink_t rlink; /* top-level, finished: d->ready */
    dlink_t wlink; /* C_WAITING: svc->waiters */
    dlink_t dlink; /* C_WAITING: d->waiting (deadlines) */
    struct weft_discovery_call_s *parent;
    svc_t *svc;
    uint64_t deadline_ns;
    const rq_t *rq; /* the request: rq_own, or the parent's */
    rq_t *rq_own;
    /* the instance of the last attempt */
    char inst_id[WEFT_DISCOVERY_ID_MAX + 1];
    char inst_addr[DISC_HOST_MAX + 1];
    uint16_t inst_port;
    char *tried; /* IDs tried, NUL-separated (tried_len bytes) */
    size_t tried_len;
    unsigned attempts;
    bool owes_record;  /* a breaker admitted the attempt in flight: it must hear how it went */
    bool budget_req;   /* counted in the retry budget's requests */
    bool budget_retry; /* the attempt in flight is a retry the budget admitted */
    uint64_t sent_ns;  /* when the attempt in flight was sent */
    uint64_t retry_ns; /* C_BACKOFF: when the next attempt goes */
    weft_http_client_call_t *hc;
    weft_span_t *span; /* top-level K_CALL with a parent span: its CLIENT span, ended at
                          delivery (or when the call is freed undelivered) */
    int err, status;
    bool overflow;
    weft_buf_t body;
    weft_buf_t head; /* the response's header names and values, NUL-separated */
    size_t nhdrs;
    weft_http_header_t *hdrs; /* built from head at delivery */
    /* broadcasts */
    struct weft_discovery_call_s **kids;
    size_t nkids, pending;
    struct weft_discovery_call_s *catalog; /* K_BCAST_ALL: its catalog read */
    weft_discovery_result_t *results;      /* built at delivery */
    union {
        weft_discovery_call_fn call;
        weft_discovery_broadcast_fn bcast;
        weft_discovery_resolve_fn resolve;
    } cb;
    void *arg;
};

typedef struct weft_discovery_call_s call_t;

/* ---- the client ---- */

struct weft_discovery_s {
    weft_discovery_options_t o; /* o.registry and o.token point at reg_url and token */
    weft_http_client_options_t http_o;
    char *reg_url, *token;
    char reg_host[DISC_HOST_MAX + 1];
    uint16_t reg_port;
    uv_loop_t *loop;
    weft_http_client_t *http;
    uv_idle_t kick;        /* delivers d->ready */
    uv_timer_t tick;       /* waiting calls' deadlines, backoffs, idle entries */
    uint64_t tick_due_ns;  /* when tick fires; 0: not armed */
    unsigned open_handles; /* kick, tick, the HTTP client */
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
    svc_t **svcs;
    unsigned nsvcs;
    dlink_t calls;   /* top-level calls not yet delivered (call_t.link) */
    dlink_t waiting; /* calls of every level in C_WAITING (call_t.dlink) */
    dlink_t ready;   /* finished top-level calls (call_t.rlink) */
    unsigned active; /* calls of every level, made and not freed */
    uint64_t rng;
    weft_discovery_stats_t st;
    dpol_conf_t pconf;           /* the entries' policy (o.policy, breakers) */
    uint64_t gone_rejected;      /* breaker_rejected of entries dropped */
    weft_retry_budget_t *budget; /* NULL: o.retry_budget off */
};

/* discovery.c */
/* "[http://]HOST:PORT[/]" into host and port: 0, WEFT_EINVAL, WEFT_EUNSUPPORTED (https). */
int weft__disc_registry_split(const char *url, char host[DISC_HOST_MAX + 1], uint16_t *port);
svc_t *weft__disc_entry(weft_discovery_t *d, const char *name, int *err);
void weft__disc_tick_arm(weft_discovery_t *d, uint64_t due_ns);
void weft__disc_kick(weft_discovery_t *d);
uint64_t weft__disc_timeout_ms(weft_discovery_t *d, uint64_t deadline_ns);
uint64_t weft__disc_rand(weft_discovery_t *d);
bool weft__disc_name_ok(const char *s, size_t max, bool colon);
void weft__disc_tick_run(weft_discovery_t *d, uint64_t now);

/* discovery_watch.c */
void weft__disc_watch_send(svc_t *s);
void weft__disc_watch_stop(svc_t *s);
void weft__disc_entry_free(svc_t *s);

/* discovery_call.c: the entry's first answer came, or its first query failed */
void weft__disc_entry_answered(svc_t *s);
call_t *weft__disc_call_new(weft_discovery_t *d, kind_t kind, call_t *parent);
void weft__disc_call_free(call_t *c);
void weft__disc_finish(call_t *c, int err);
void weft__disc_deliver(call_t *c);
void weft__disc_cancel(call_t *c);
void weft__disc_expire(call_t *c);
void weft__disc_retry_now(call_t *c);
int weft__disc_rq_copy(call_t *c, const weft_discovery_req_t *r, const char *service,
                       const weft_http_header_t *extra, size_t nextra);

/* discovery_ops.c */
int weft__disc_op_send(call_t *c);
int weft__disc_status_err(int status);
call_t *weft__disc_catalog_read(call_t *parent, int *err);
int weft__disc_catalog_names(call_t *op, char ***names, size_t *n);

#endif
