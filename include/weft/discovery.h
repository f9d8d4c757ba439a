/**
 * weft/discovery.h - services by name: a client of a Consul-compatible registry (weft
 * serve's, or Consul's own HTTP API) that resolves names to passing instances from a cache
 * kept fresh by blocking queries, calls them with load balancing, broadcasts to them, and
 * registers services.
 *
 *     weft_discovery_options_t o;
 *     weft_discovery_options_init(&o);
 *     o.loop = loop;                          // req->loop in a handler
 *     o.registry = "http://127.0.0.1:8500";
 *     weft_discovery_t *d;
 *     if (weft_discovery_new(&o, &d) != 0) ...
 *     weft_discovery_req_t r = {.service = "orders", .target = "/orders/7"};
 *     weft_discovery_call(d, &r, on_result, arg, NULL);  // on_result(res, arg) runs later
 *     ...
 *     weft_discovery_close(d, NULL, NULL);
 *
 * Where the seed book's classes live:
 *   ServiceRegistry.register     weft_discovery_register; a weft_service registers itself
 *                                (and deregisters at shutdown) with o.registry.url set
 *                                (weft/service.h)
 *   ServiceRegistry.deregister   weft_discovery_deregister
 *   ServiceRegistry.get_service  weft_discovery_resolve: the passing instances of a name
 *   ServiceClient.call           weft_discovery_call: one instance, chosen by the policy
 *   @CircuitBreaker on a call    built in: a breaker per instance (options.breaker_conf),
 *                                WEFT_EBREAKER when every instance's is open
 *   ServiceClient.broadcast      weft_discovery_broadcast: every passing instance of one
 *                                service, or of every service ("*")
 * A weft_service's handlers find their worker's client with weft_service_discovery.
 *
 * One loop, no locks. A client belongs to the loop of its options and is used only on that
 * loop's thread, like weft_http_client_t (which it uses for everything it sends): a service
 * has one per worker loop. Nothing is shared between clients, so N workers watch a service
 * N times (N parked requests at the registry, which holds thousands).
 *
 * The cache. The first use of a service name asks the registry for its passing instances
 * (GET /v1/health/service/NAME?passing) and makes a cache entry; from then on one blocking
 * query per entry (the same, with ?index= the last X-Consul-Index and &wait=) is always
 * parked at the registry, which answers it when the service's instances or their health
 * change; the answer replaces the entry's instances and the query is sent again at once.
 * Nothing is polled: a change reaches the cache in one round trip. Calls read the cache
 * without asking anyone. When a query fails (the registry is down or restarting), the entry
 * keeps its last instances (stale, as Consul agents' caches are) and the query is retried
 * with exponential backoff (retry_min_ms doubling to retry_max_ms, with jitter); an index
 * that goes backwards (a registry that lost its state) starts the entry's watch over. A
 * name the registry does not know answers [] at once: calls to it fail with WEFT_ENOENT
 * without waiting, and its entry keeps watching (the service may come). At most
 * max_services entries exist: a new name drops the least recently used entry that no call
 * is using (its query canceled), or fails with WEFT_ELIMIT when every entry is in use; an
 * entry not used for idle_ms is dropped. Watches keep the loop alive until
 * weft_discovery_close.
 *
 * Instances are those the registry calls passing (?passing: every check passing; warning is
 * not passing), ordered by ID; an instance's address is its service address, or its node's
 * when it registered none. At most max_instances per service are kept (the first by ID).
 *
 * Calls. A call picks one instance by the client's policy (weft_discovery_policy_t) and
 * sends it the request through the HTTP client (keep-alive pools per instance). The call's
 * timeout bounds all of it: waiting for a first resolution, every attempt and backoff, the
 * whole response; each attempt also has the HTTP client's connect, head and body timeouts
 * (weft/client.h).
 *
 * Circuit breakers, retries, balancing: the resilience module's state machines
 * (weft/breaker.h, weft/balance.h), the same as the gateway's, on the loop's clock.
 *   - A breaker per instance (o.breaker, on by default; o.breaker_conf is the gateway's
 *     weft_breaker_options_t): a pick skips an instance whose breaker refuses (OPEN, or
 *     HALF_OPEN with its trials out) and asks the balancer for another; when every
 *     instance left is refused, a call that has not tried any ends at once with
 *     WEFT_EBREAKER, nothing sent. What counts as a failure: a transport error (connect,
 *     reset, garbage, timeout; not the client's own WEFT_ELIMIT or WEFT_ENOMEM) or a 5xx;
 *     a canceled call counts as a failure too (a breaker must hear of every call it let
 *     through). Breakers follow the cache by instance ID: a registry update that keeps an
 *     instance keeps its breaker; one that drops it drops the breaker. on_breaker is told
 *     each transition. Broadcasts go to every instance and bypass the breakers.
 *   - Retries (o.retry_on): a connect failure (nothing was sent) for any method; a reset
 *     or garbage before the response head, a head timeout (off by default), a 502/503/504
 *     only for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) unless the
 *     request sets retry_any_method. A retry goes to an instance the call has not tried
 *     (never the same one twice; with none left the last attempt's result is the call's),
 *     at most `retries` times, after a full-jitter backoff (backoff_base_ms doubling to
 *     backoff_max_ms, random below that), only if it fits before the deadline and the
 *     retry budget admits it (o.retry_budget, on by default: retries in flight at most
 *     retry_budget_percent of the calls in flight, at least retry_budget_min; refusals
 *     are counted in budget_exhausted).
 *   - The balancer (o.policy): round robin (smooth weighted when the instances' weights,
 *     Consul's Weights.Passing, differ), random (weighted), least outstanding, least
 *     request (power of two choices), ring hash on the request's hash_key.
 *
 * Callbacks. Every callback runs on the loop, later, never from inside the weft_discovery_*
 * call that started the work (so a call that fails at once, unknown service included, still
 * answers through its callback on a later loop iteration), except from weft_discovery_cancel
 * and weft_discovery_close, which say so. If a function that takes a callback returns an
 * error, the callback never runs. What a callback is given (results, instances, bodies) is
 * valid only while it runs. A callback may start new work, cancel other calls, or close the
 * client.
 *
 * Registration: weft_discovery_register, _deregister, _check_update and _registered speak
 * Consul's agent API (PUT /v1/agent/service/register, ...), one request each, bounded by
 * registry_timeout_ms; they do not retry (weft_service's registration does, see
 * weft/service.h).
 *
 * Memory policy (SDK): out of memory is WEFT_ENOMEM, never an abort. Responses are parsed
 * with jansson.
 */
#ifndef WEFT_DISCOVERY_H
#define WEFT_DISCOVERY_H

#include <stdbool.h>

#include "weft/breaker.h"
#include "weft/client.h"
#include "weft/trace.h"
#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_discovery_s weft_discovery_t;
typedef struct weft_discovery_call_s weft_discovery_call_t;

/** Longest service name (letters, digits, '-', '_', '.') and instance ID (the same and
 *  ':') this client asks for; longer or other names are WEFT_EINVAL. */
#define WEFT_DISCOVERY_NAME_MAX 128
#define WEFT_DISCOVERY_ID_MAX   128

/** How a call chooses among a service's passing instances. */
typedef enum weft_discovery_policy_e {
    WEFT_DISCOVERY_ROUND_ROBIN = 0,       /* each in turn, in ID order (a counter per service,
                                             kept across cache updates) */
    WEFT_DISCOVERY_RANDOM = 1,            /* uniformly at random */
    WEFT_DISCOVERY_LEAST_OUTSTANDING = 2, /* fewest calls in flight from this client (its
                                            broadcasts included); ties go round robin */
    WEFT_DISCOVERY_LEAST_REQUEST = 3,     /* least request, power of two choices: of two
                                             instances drawn at random, the one with fewer
                                             calls in flight per unit of weight (Envoy's) */
    WEFT_DISCOVERY_RING_HASH = 4          /* consistent hashing on the call's hash_key: a
                                             key keeps going to one instance while it is
                                             passing (its breaker closed); a call without a
                                             key is sent at random */
} weft_discovery_policy_t;

/** Retry conditions (weft_discovery_options_t.retry_on). A retry always goes to an instance
 *  the call has not tried yet, after a full-jitter backoff, and only when the retry budget
 *  admits it. */
enum {
    WEFT_DISCOVERY_RETRY_CONNECT = 1 << 0, /* the connection could not be made: nothing was
                                              sent, so any method is retried */
    WEFT_DISCOVERY_RETRY_RESET = 1 << 1,   /* the connection broke before the response head
                                              (reset, closed, garbage) */
    WEFT_DISCOVERY_RETRY_TIMEOUT = 1 << 2, /* no response head within head_timeout_ms */
    WEFT_DISCOVERY_RETRY_5XX = 1 << 3      /* a 502, 503 or 504 answer */
};

/** A circuit breaker of the client's changed state (weft_discovery_options_t.on_breaker):
 *  service and instance (an ID) name it; a breaker just made for an instance the client
 *  saw for the first time is told as from == to == WEFT_BREAKER_CLOSED with reason
 *  WEFT_BREAKER_NONE. Runs on the client's loop, inside the client: it may log, count or
 *  set metrics, and must not call weft_discovery_* functions. */
typedef void (*weft_discovery_breaker_fn)(void *data, const char *service, const char *instance,
                                          weft_breaker_state_t from, weft_breaker_state_t to,
                                          weft_breaker_reason_t reason);

/** A key and a value: registration meta, an instance's meta. */
typedef struct weft_discovery_kv_s {
    const char *key;
    const char *value;
} weft_discovery_kv_t;

/** One passing instance of a service, as the cache holds it. */
typedef struct weft_discovery_instance_s {
    const char *id;      /* the instance's (Consul's service) ID */
    const char *service; /* its service's name */
    const char *address; /* Service.Address, or Node.Address when that is empty */
    uint16_t port;
    const char *const *tags;
    size_t ntags;
    const weft_discovery_kv_t *meta;
    size_t nmeta;
    unsigned outstanding; /* calls from this client in flight to it now */
    unsigned weight;      /* its Weights.Passing (Consul's), 1 when it gave none; 1..2^20 */
} weft_discovery_instance_t;

/** Options; weft_discovery_options_init fills the defaults. */
typedef struct weft_discovery_options_s {
    struct uv_loop_s *loop; /* required: the loop the client runs on (and is used on) */
    const char *registry;   /* required: the registry's HTTP API, "http://HOST:PORT" (a
                               numeric address or a name; "http://" may be left out);
                               https is WEFT_EUNSUPPORTED */
    const char *token;      /* ACL token sent as X-Consul-Token to the registry; NULL: none */
    weft_discovery_policy_t policy; /* default WEFT_DISCOVERY_ROUND_ROBIN */
    unsigned retries;               /* other instances tried after a failed attempt (see
                                       retry_on); default 2, at most 16 */
    uint64_t call_timeout_ms;       /* a call's or broadcast's whole time, resolution
                                       included, when its request gives none; default 10000 */
    uint64_t registry_timeout_ms;   /* a request to the registry that is not a blocking
                                       query (a first resolution, the catalog, registration);
                                       default 5000 */
    uint64_t wait_ms;               /* a blocking query's wait= (the registry adds up to 1/16 of
                                       jitter; weft's caps it at 10 min); default 300000 */
    uint64_t retry_min_ms;          /* first backoff after a failed query; default 100 */
    uint64_t retry_max_ms;          /* longest backoff; default 10000 */
    uint64_t idle_ms;               /* an entry no call used for this long is dropped; default
                                       600000; 0: never */
    unsigned max_services;          /* cache entries (watched services); default 64, at most
                                       4096 */
    unsigned max_instances;         /* instances kept per service; default 1024 */
    unsigned max_calls;             /* calls, resolutions and registry operations unfinished at
                                       once, each instance of a broadcast counted; default 4096 */
    size_t max_body;                /* response body kept per call (more: WEFT_ELIMIT); default
                                       1 MiB */
    size_t max_registry_body;       /* a registry answer's body (more: WEFT_ELIMIT); default
                                       16 MiB */
    const weft_http_client_options_t *http; /* the HTTP client's options (copied); NULL:
                                               weft_http_client_options_init's */
    /* --- resilience (see "Circuit breakers, retries, balancing" above) --- */
    bool breaker;                         /* a circuit breaker per instance; default true */
    weft_breaker_options_t breaker_conf;  /* its options, as a gateway route's breaker takes
                                             them (weft/breaker.h); default
                                             weft_breaker_options_init's (5 failures in a row,
                                             or 50% over 10 s with 20 calls, open 5 s doubling
                                             to 60 s, 3 trials). on_transition and data are
                                             ignored: use on_breaker */
    weft_tracer_t *tracer;                /* makes the CLIENT span of calls that give a
                                             parent span (weft_discovery_req_t.parent); NULL:
                                             none, and no trace headers */
    weft_discovery_breaker_fn on_breaker; /* every transition of every breaker; NULL: none */
    void *on_breaker_data;
    unsigned retry_on;             /* WEFT_DISCOVERY_RETRY_*; default CONNECT | RESET | 5XX.
                                      Conditions other than CONNECT retry only idempotent
                                      methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) unless
                                      the request says retry_any_method */
    uint64_t backoff_base_ms;      /* full-jitter backoff before retry k: random in
                                      [0, min(backoff_max_ms, base * 2^k)]; default 25; 0: none */
    uint64_t backoff_max_ms;       /* default 250 */
    bool retry_budget;             /* default true: retries in flight at most
                                      retry_budget_percent of the calls in flight, and at least
                                      retry_budget_min, so a failing service cannot cause a
                                      retry storm */
    unsigned retry_budget_percent; /* default 20; 0..1000 */
    unsigned retry_budget_min;     /* default 3 */
} weft_discovery_options_t;

/** What a call, a broadcast's instance or a registry operation came to. */
typedef struct weft_discovery_result_s {
    int err;              /* calls: 0 when a response came, whatever its status; else
                             WEFT_ENOENT (no passing instance, or the name is unknown),
                             WEFT_EBREAKER (every passing instance's breaker is open:
                             nothing was sent),
                             WEFT_ETIMEDOUT (the call's timeout), the HTTP client's error of
                             the last attempt (-ECONNREFUSED, WEFT_ETIMEDOUT_HEAD, ...; see
                             weft/client.h), the registry's when the service could not be
                             resolved, WEFT_ELIMIT, WEFT_ECANCELED, WEFT_ENOMEM. Registry
                             operations: 0 only for a 2xx status; WEFT_EINVAL (400: body says
                             which field), -EACCES (403: token), WEFT_ENOENT (404),
                             WEFT_ELIMIT (429), -EPROTO (another status), or a transport error */
    int status;           /* the response's status; 0 when none came */
    const char *service;  /* the service's name ("" for registry operations) */
    const char *instance; /* the instance's ID; "" when none was chosen */
    const char *address;  /* the instance's address ("" when none) */
    uint16_t port;
    unsigned attempts;                 /* instances tried (a connect failure moves on to another) */
    const weft_http_header_t *headers; /* the response's headers (names as sent) */
    size_t nheaders;
    const char *body; /* the response's body, NUL-terminated ("" when none) */
    size_t body_len;
} weft_discovery_result_t;

/** The end of a call or registry operation: r is valid during the callback only. */
typedef void (*weft_discovery_call_fn)(const weft_discovery_result_t *r, void *arg);

/** The end of a broadcast: err is 0 and r[0..n) one result per instance (ordered by service
 *  name, then instance ID), or err says why there are none (WEFT_ENOENT: no passing
 *  instance; the registry's error; WEFT_ETIMEDOUT; WEFT_ECANCELED; ...). A service of a
 *  "*" broadcast that cannot be resolved has one result with its name, instance "" and the
 *  error; one without passing instances has none. Valid during the callback only. */
typedef void (*weft_discovery_broadcast_fn)(int err, const weft_discovery_result_t *r, size_t n,
                                            void *arg);

/** The end of a resolution: err 0 and the passing instances inst[0..n) (n may be 0: the
 *  name is known to no passing instance, or not at all), or the error that kept the first
 *  answer from coming (the registry's, WEFT_ETIMEDOUT, WEFT_ECANCELED...). Valid during the
 *  callback only. */
typedef void (*weft_discovery_resolve_fn)(int err, const weft_discovery_instance_t *inst, size_t n,
                                          void *arg);

/** One request to a service by name. Copied by the function it is given to. */
typedef struct weft_discovery_req_s {
    const char *service; /* the name; for broadcast, "*" is every service of the catalog
                            (GET /v1/catalog/services) */
    const char *method;  /* default "GET" */
    const char *target;  /* "/path?query"; default "/" */
    const weft_http_header_t *headers; /* extra headers, as for weft_http_client_req_t */
    size_t nheaders;
    const void *body; /* copied; NULL when body_len is 0 */
    size_t body_len;
    uint64_t timeout_ms;         /* the whole call; 0: the client's call_timeout_ms */
    uint64_t connect_timeout_ms; /* per attempt, as in weft_http_client_req_t (0: the HTTP */
    uint64_t head_timeout_ms;    /* client's option of the same name) */
    uint64_t body_timeout_ms;
    const void *hash_key; /* WEFT_DISCOVERY_RING_HASH: the key (a user ID, a session...);
                             NULL: none */
    size_t hash_key_len;
    bool retry_any_method;     /* retry on every retry_on condition whatever the method (the
                                  caller knows the request may be applied twice); default false:
                                  only CONNECT for methods that are not idempotent */
    const weft_span_t *parent; /* weft_discovery_call only: the span this call is part of
                                  (weft_service_span(req) in a handler), or NULL. With the
                                  client's tracer (options.tracer; a service's clients have
                                  the service's), the call gets a CLIENT span, child of parent,
                                  named "METHOD SERVICE", with peer.service, the instance
                                  that answered (server.address, server.port), the status and
                                  the attempts; every attempt carries its W3C traceparent
                                  (and tracestate), so the callee's spans hang under it */
} weft_discovery_req_t;

/** How a registered service is checked. */
typedef enum weft_discovery_check_e {
    WEFT_DISCOVERY_CHECK_NONE = 0, /* no check: always passing (Consul's rule) */
    WEFT_DISCOVERY_CHECK_HTTP = 1, /* the registry GETs check_http every check_interval_ms */
    WEFT_DISCOVERY_CHECK_TTL = 2   /* the service reports (weft_discovery_check_update) at
                                      least every check_ttl_ms, else it turns critical */
} weft_discovery_check_t;

/** A service instance to register (Consul's agent service definition). */
typedef struct weft_discovery_registration_s {
    const char *id;      /* required: [A-Za-z0-9_.:-], 1..WEFT_DISCOVERY_ID_MAX bytes */
    const char *name;    /* required: [A-Za-z0-9_.-], 1..WEFT_DISCOVERY_NAME_MAX bytes */
    const char *address; /* NULL or "": the registry's node address */
    uint16_t port;
    const char *const *tags; /* at most 64 */
    size_t ntags;
    const weft_discovery_kv_t *meta; /* at most 64 */
    size_t nmeta;
    weft_discovery_check_t check; /* its one check, ID "service:ID" */
    const char *check_http;       /* HTTP: the URL (http://...) */
    uint64_t check_interval_ms;   /* HTTP: default (0) 10000 */
    uint64_t check_timeout_ms;    /* HTTP: 0: the registry's default (10 s) */
    uint64_t check_ttl_ms;        /* TTL: required */
    uint64_t deregister_after_ms; /* DeregisterCriticalServiceAfter; 0: never */
    const char *check_status;     /* the check's first status: "passing", "warning",
                                     "critical"; NULL: the registry's (critical) */
} weft_discovery_registration_t;

/** Counters since creation, and gauges (now). */
typedef struct weft_discovery_stats_s {
    uint64_t queries;          /* health queries sent: first resolutions and blocking queries */
    uint64_t updates;          /* answers that changed an entry's index (a first answer counts) */
    uint64_t query_errors;     /* queries that failed (each is retried after a backoff) */
    uint64_t calls;            /* calls started (a broadcast's instances each count) */
    uint64_t call_errors;      /* calls that ended without a response */
    uint64_t retries;          /* attempts on another instance after a failed one (retry_on) */
    uint64_t evictions;        /* entries dropped for room or idleness */
    uint64_t operations;       /* registry operations and catalog reads sent */
    unsigned services;         /* gauge: cache entries */
    unsigned active;           /* gauge: unfinished calls, resolutions, operations */
    uint64_t breaker_rejected; /* instances a pick skipped because their breaker refused */
    uint64_t breaker_failfast; /* calls that ended with WEFT_EBREAKER */
    uint64_t budget_exhausted; /* retries the retry budget refused */
    uint64_t breaker_transitions; /* state changes of the client's breakers */
    uint64_t retries_active;      /* gauge: retries under way the budget counts (in flight
                                     or waiting out their backoff) */
} weft_discovery_stats_t;

/** Fills *o with the defaults above (loop and registry NULL). */
WEFT_EXTERN void weft_discovery_options_init(weft_discovery_options_t *o);

/**
 * Creates a client on o->loop (call on that loop's thread); o is copied, strings included.
 * Nothing is sent until a first use. Returns 0 and *out, WEFT_EINVAL (no loop, a registry
 * that is not http://HOST:PORT, max_services 0 or over 4096, max_instances, max_calls,
 * max_body, max_registry_body or registry_timeout_ms 0, retry_min_ms 0 or over
 * retry_max_ms, wait_ms under 1000, retries over 16, an unknown policy, bad HTTP client
 * options, with breaker on a breaker_conf weft_breaker_options_check refuses,
 * retry_budget_percent over 1000, backoff_base_ms over backoff_max_ms), WEFT_EUNSUPPORTED (https),
 * WEFT_ENOMEM, or a libuv error. The caller owns the client until weft_discovery_close.
 */
WEFT_EXTERN int weft_discovery_new(const weft_discovery_options_t *o, weft_discovery_t **out);

/**
 * Calls service r->service at r->target on one of its passing instances (see "Calls"
 * above). Returns 0 (cb runs once, later) and *out if out is not NULL, valid for
 * weft_discovery_cancel until cb runs; or, with cb never run: WEFT_EINVAL (bad name,
 * method, target or header; no cb), WEFT_ELIMIT (max_calls unfinished, or every cache entry
 * in use), WEFT_ECLOSED (the client is closing), WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_discovery_call(weft_discovery_t *d, const weft_discovery_req_t *r,
                                    weft_discovery_call_fn cb, void *arg,
                                    weft_discovery_call_t **out);

/**
 * Sends r to every passing instance of r->service ("*": of every service in the catalog,
 * each resolved through the cache) at once, one attempt each (no retry), and gathers every
 * answer or error into one callback when the last is in, or at r->timeout_ms (the client's
 * call_timeout_ms when 0), when the unfinished ones end with WEFT_ETIMEDOUT. Instances past
 * what max_calls allows end with WEFT_ELIMIT without being sent anything. Returns as
 * weft_discovery_call.
 */
WEFT_EXTERN int weft_discovery_broadcast(weft_discovery_t *d, const weft_discovery_req_t *r,
                                         weft_discovery_broadcast_fn cb, void *arg,
                                         weft_discovery_call_t **out);

/**
 * The passing instances of service, from the cache: cb runs on a later loop iteration with
 * the cached instances, or once the first answer about a new name came (at most
 * registry_timeout_ms). Returns as weft_discovery_call.
 */
WEFT_EXTERN int weft_discovery_resolve(weft_discovery_t *d, const char *service,
                                       weft_discovery_resolve_fn cb, void *arg,
                                       weft_discovery_call_t **out);

/**
 * Ends an unfinished call, broadcast, resolution or registry operation now: its callback
 * runs with WEFT_ECANCELED (a broadcast's with no results) before this returns. Requests in
 * flight are canceled (their connections closed). call must be one whose callback has not
 * run yet.
 */
WEFT_EXTERN void weft_discovery_cancel(weft_discovery_call_t *call);

/**
 * Registers r (PUT /v1/agent/service/register): cb gets err 0 once the registry answered
 * 200 (weft's registry answers once the registration is durable). Returns 0, WEFT_EINVAL (a
 * bad field: id, name, tags or meta over 64, a check without its URL or TTL), WEFT_ELIMIT,
 * WEFT_ECLOSED, WEFT_ENOMEM; then cb never runs.
 */
WEFT_EXTERN int weft_discovery_register(weft_discovery_t *d, const weft_discovery_registration_t *r,
                                        weft_discovery_call_fn cb, void *arg,
                                        weft_discovery_call_t **out);

/** Deregisters instance id (PUT /v1/agent/service/deregister/ID): err 0, or WEFT_ENOENT
 *  (unknown ID), ... Returns as weft_discovery_register. */
WEFT_EXTERN int weft_discovery_deregister(weft_discovery_t *d, const char *id,
                                          weft_discovery_call_fn cb, void *arg,
                                          weft_discovery_call_t **out);

/** Sets TTL check check_id's status ("passing", "warning" or "critical") and output (NULL:
 *  "") (PUT /v1/agent/check/update/CHECK_ID): a heartbeat. err WEFT_ENOENT: the registry
 *  does not know the check (re-register). Returns as weft_discovery_register. */
WEFT_EXTERN int weft_discovery_check_update(weft_discovery_t *d, const char *check_id,
                                            const char *status, const char *output,
                                            weft_discovery_call_fn cb, void *arg,
                                            weft_discovery_call_t **out);

/** Asks whether instance id is registered (GET /v1/agent/service/ID): err 0 (yes; body
 *  holds its definition) or WEFT_ENOENT (no). Returns as weft_discovery_register. */
WEFT_EXTERN int weft_discovery_registered(weft_discovery_t *d, const char *id,
                                          weft_discovery_call_fn cb, void *arg,
                                          weft_discovery_call_t **out);

/** Counters and gauges now (loop thread). */
WEFT_EXTERN weft_discovery_stats_t weft_discovery_stats(const weft_discovery_t *d);

/**
 * Ends every unfinished call, broadcast, resolution and operation (their callbacks run with
 * WEFT_ECANCELED before this returns), cancels the watches, closes the HTTP client and the
 * client's handles, frees it, and then runs on_closed(arg) (may be NULL) on the loop. Callable
 * from a callback. From here on the functions that start work return WEFT_ECLOSED; after
 * on_closed, d must not be used.
 */
WEFT_EXTERN void weft_discovery_close(weft_discovery_t *d, void (*on_closed)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
