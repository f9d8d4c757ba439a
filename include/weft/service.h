/**
 * weft/service.h - write a microservice in C: routes, /health, /metrics, tracing, shutdown.
 *
 *     weft_service_options_t o;
 *     weft_service_options_init(&o);
 *     o.name = "orders";
 *     o.port = 8081;
 *     weft_service_t *svc;
 *     if (weft_service_new(&o, &svc) != 0) return 1;
 *     weft_service_route(svc, "GET", "/orders/:id", get_order, NULL);
 *     int rc = weft_service_run(svc);   // until SIGTERM/SIGINT, then a graceful shutdown
 *     weft_service_free(svc);
 *
 * Every service answers GET /health (JSON: status, service, version, uptime, the results of
 * its registered checks; 200 when passing or warning, 503 when critical) and GET /metrics
 * (Prometheus text 0.0.4: http_requests_total{method,route,code},
 * http_request_duration_seconds{method,route,code}, http_connections_active, process_*). Every
 * request is counted, timed and traced: an incoming `traceparent` (or B3) is continued and a
 * server span recorded. Handlers run on worker threads (o.workers of them, one libuv loop
 * each), so they must not share mutable state without synchronisation.
 *
 * With o.registry.url set (--registry URL), the service registers itself with that
 * Consul-compatible registry (weft serve's, or Consul) once it listens, and deregisters when
 * it shuts down; its handlers call other services by name through their worker's discovery
 * client (weft_service_discovery, weft/discovery.h). See weft_service_registry_t.
 */
#ifndef WEFT_SERVICE_H
#define WEFT_SERVICE_H

#include "weft/common.h"
#include "weft/discovery.h"
#include "weft/host.h"
#include "weft/http.h"
#include "weft/metrics.h"
#include "weft/ratelimit.h"
#include "weft/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_service_s weft_service_t;

/**
 * Registration with a Consul-compatible registry, and the discovery clients of
 * weft_service_discovery: all off while url is NULL or "". The seed book's
 * ServiceRegistry.register and deregister, done by the service for itself:
 *
 *   - Once the service listens (its port known, every worker serving), the control loop
 *     registers it (PUT /v1/agent/service/register): ID, name, address, port, tags, meta,
 *     and one check. Registration never blocks the start and never fails it: while the
 *     registry cannot be reached or refuses, it is tried again after 0.5 s, doubling to
 *     30 s (with jitter), for as long as the service runs; the first failure and every
 *     tenth are logged (comp=registration, warn), the success at info.
 *   - The check: WEFT_DISCOVERY_CHECK_HTTP (the default) has the registry GET
 *     http://ADDRESS:PORT/health every check_interval_ms; WEFT_DISCOVERY_CHECK_TTL has the
 *     service itself report the status of its /health checks (weft_service_check) every
 *     check_interval_ms (PUT /v1/agent/check/update/service:ID), with a TTL of three
 *     intervals; WEFT_DISCOVERY_CHECK_NONE, none (always passing). Its first status is the
 *     service's /health status at the time of registration. An instance critical for
 *     deregister_after_ms is dropped by the registry (DeregisterCriticalServiceAfter): a
 *     killed process does not stay listed.
 *   - A registry that lost the registration (restarted without its data, or deregistered it
 *     by hand) gets it again: a TTL heartbeat answered 404 registers at once; with HTTP or
 *     no checks the registration is looked up every resync_ms (GET /v1/agent/service/ID)
 *     and made again on a 404.
 *   - Shutdown (SIGTERM, weft_service_stop): the instance is deregistered when the drain
 *     begins (http.shutdown_delay_ms: callers stop choosing it while it still serves), or
 *     when the shutdown begins without a drain; the control loop, so the process, does not
 *     end before the registry answered or timeout_ms passed. A registration still in
 *     flight is canceled first, so a registry that applies it after the deregistration
 *     keeps the instance until its check turns critical and deregister_after_ms passes.
 */
typedef struct weft_service_registry_s {
    const char *url;         /* "http://HOST:PORT" of the registry's HTTP API; NULL or "": off */
    const char *token;       /* ACL token (X-Consul-Token) for its writes; NULL: none */
    const char *id;          /* the instance's ID ([A-Za-z0-9_.:-], at most 128 bytes); NULL or
                                "": NAME-ADDRESS-PORT, other characters as '-' ("hello-127.0.0.1-
                                8081"), unique per address and port */
    const char *address;     /* the address callers and the registry's check use; NULL or "":
                                the listen host, or 127.0.0.1 when that is 0.0.0.0 (::1 for ::) */
    const char *const *tags; /* at most 64 */
    size_t ntags;
    const weft_discovery_kv_t *meta; /* at most 63; "version" (the service's) is added
                                        unless meta has it */
    size_t nmeta;
    weft_discovery_check_t check;           /* default WEFT_DISCOVERY_CHECK_HTTP */
    uint64_t check_interval_ms;             /* default 10000; 1000 at least */
    uint64_t check_timeout_ms;              /* HTTP: the check's timeout; 0 (default): the
                                               registry's (10 s) */
    uint64_t deregister_after_ms;           /* default 60000; 0: never */
    uint64_t timeout_ms;                    /* each request to the registry, the deregistration at
                                               shutdown included; default 2000 */
    uint64_t resync_ms;                     /* HTTP and no checks: how often the registration is
                                               looked up; default 30000; 0: never */
    weft_discovery_policy_t policy;         /* weft_service_discovery's clients; default round
                                               robin */
    const weft_discovery_options_t *client; /* the rest of those clients' options: breaker,
                                       retries, budget, backoff, timeouts, limits
                                       (copied, with *client->http); NULL:
                                       weft_discovery_options_init's. loop, registry, token
                                       and policy are ignored (the service's and the fields
                                       above). Its on_breaker, if set, is called (on the
                                       worker's thread) besides the service's own: every
                                       transition is logged (comp=client; opening at warn)
                                       and exposed on /metrics as
                                       weft_client_breaker_state{service,instance,worker}
                                       (0 closed, 1 open, 2 half-open) and
                                       weft_client_breaker_transitions_total{service,
                                       instance,from,to,reason}. Each worker has its own
                                       client, so its own breaker per instance. */
} weft_service_registry_t;

typedef struct weft_service_options_s {
    const char *name;               /* required: [A-Za-z0-9_.-]{1,64} */
    const char *version;            /* default "0.0.0" */
    const char *host;               /* listen address; default 127.0.0.1 */
    uint16_t port;                  /* default 8080; 0 picks a free port */
    unsigned workers;               /* worker threads; 0 (default): one per CPU */
    bool metrics;                   /* count and time every request, serve /metrics; default true */
    bool tracing;                   /* trace every request; default true */
    double sample_ratio;            /* for root spans (parent-based sampling); default 1.0 */
    double sample_rate;             /* and at most this many new traces a second (a
                                       rate-limiting sampler, weft/trace.h); 0 (default):
                                       no cap */
    unsigned propagators;           /* trace context formats read from requests
                                       (WEFT_PROPAGATE_*, weft/trace.h); default
                                       WEFT_PROPAGATE_ALL. B3 or B3_MULTI reads both B3
                                       forms, as OpenTelemetry's B3 propagator does */
    weft_span_exporter_t *exporter; /* where finished spans go; NULL: nowhere (spans are still
                                       created and propagated). weft_service_new takes it over,
                                       even when it fails: it is shut down with the service. */
    bool otel_env;   /* default true: with tracing on, OpenTelemetry's environment variables
                        apply: OTEL_TRACES_SAMPLER (weft_sampler_from_env) replaces the
                        sample_ratio sampler, OTEL_PROPAGATORS (weft_propagators_from_env)
                        replaces propagators, and when exporter is NULL, OTEL_EXPORTER_OTLP_*
                        and friends may ask for an OTLP exporter (weft_otlp_options_from_env;
                        service_name defaults to name). A bad value makes weft_service_new
                        fail with WEFT_EINVAL and an error line naming the variable. */
    bool access_log; /* default false: one logfmt line per request on stderr (comp=access:
                        peer, method, path, query when present, route, status, duration_ms,
                        trace_id and span_id when traced, aborted=true when cut off),
                        written whatever the log level; a worker writes the lines of one
                        loop iteration together, so no line waits past its iteration */
    const char *access_log_file;      /* NULL or "": the access log goes to stderr. Else the file
                             its lines are appended to (created 0644 if missing; opening it
                             is part of weft_service_new, which fails with the errno and an error
                             line naming the path), which turns access_log on; SIGUSR1 reopens
                             it, as NGINX's does, for logrotate (rename, then kill -USR1) */
    weft_http_server_options_t http;  /* limits and timeouts (weft/http.h) */
    weft_service_registry_t registry; /* registration and discovery (above); strings are
                                         copied by weft_service_new */
} weft_service_options_t;

/** Fills *o with the defaults above. */
WEFT_EXTERN void weft_service_options_init(weft_service_options_t *o);

/** Creates a service (nothing listens yet). Returns 0 and *out, WEFT_EINVAL (a bad option,
 *  o.registry's included: a url that is not http://HOST:PORT, an id, too many tags or meta,
 *  an unknown check or policy, check_interval_ms under 1000, timeout_ms 0),
 *  WEFT_EUNSUPPORTED (an https registry), WEFT_ENOMEM. */
WEFT_EXTERN int weft_service_new(const weft_service_options_t *o, weft_service_t **out);

/**
 * Adds a route handled by handler(req, arg); see weft/http.h for how handlers answer.
 * Returns 0, WEFT_EINVAL (bad pattern), WEFT_EEXIST, WEFT_ESTATE (the service runs).
 */
WEFT_EXTERN int weft_service_route(weft_service_t *svc, const char *method, const char *pattern,
                                   weft_http_handler_fn handler, void *arg);

/** Same, with the full route description (body limit, streamed body). */
WEFT_EXTERN int weft_service_route_ex(weft_service_t *svc, const char *method, const char *pattern,
                                      const weft_http_route_t *route);

typedef enum {
    WEFT_CHECK_PASSING = 0,
    WEFT_CHECK_WARNING = 1,
    WEFT_CHECK_CRITICAL = 2
} weft_check_status_t;

/** A health check: writes a short human-readable output (NUL-terminated, cap bytes). Runs on
 *  the thread answering GET /health; must be quick and thread-safe. */
typedef weft_check_status_t (*weft_check_fn)(void *arg, char *output, size_t cap);

/** Registers a check reported by GET /health (at most 64). Returns 0, WEFT_ELIMIT, ... */
WEFT_EXTERN int weft_service_check(weft_service_t *svc, const char *name, weft_check_fn fn,
                                   void *arg);

/** The service's metrics registry, to add the service's own metrics. */
WEFT_EXTERN weft_metrics_registry_t *weft_service_metrics(weft_service_t *svc);

/** The service's tracer, to start spans of its own (children of weft_service_span(req)). */
WEFT_EXTERN weft_tracer_t *weft_service_tracer(weft_service_t *svc);

/** The server span of a request being handled (NULL when tracing is off). */
WEFT_EXTERN weft_span_t *weft_service_span(const weft_http_request_t *req);

/**
 * Binds the port (errors are returned here, with a message logged), starts the workers and
 * serves until SIGTERM or SIGINT (or weft_service_stop), then shuts down gracefully: stops
 * accepting, finishes in-flight requests within http.shutdown_timeout_ms, closes the rest.
 * While it runs, SIGUSR1 reopens the access log file (and is otherwise logged and ignored,
 * rather than ending the process). Returns 0 after a clean shutdown, or a negative error.
 */
WEFT_EXTERN int weft_service_run(weft_service_t *svc);

/** Starts the graceful shutdown of a running service; any thread, any number of times.
 *  With http.shutdown_delay_ms, the first call (or SIGTERM/SIGINT) only turns /health to 503
 *  "draining" for that long while requests are still served, each response with
 *  Connection: close (weft_http_server_drain); a second one skips the rest of the delay. */
WEFT_EXTERN void weft_service_stop(weft_service_t *svc);

/** The port bound: 0 until weft_service_run has bound it (useful with port 0); any thread. */
WEFT_EXTERN uint16_t weft_service_port(const weft_service_t *svc);

/** The control loop: runs on the thread that called weft_service_run (signals, timers, the
 *  registry later). Valid while the service runs. */
WEFT_EXTERN struct uv_loop_s *weft_service_loop(weft_service_t *svc);

/** The host the service runs on (weft/host.h): add listeners (a second HTTP server with
 *  routes and filters of its own, UDP sockets) and parts to it before weft_service_run, and
 *  they are served by the same workers and shut down with the service. */
WEFT_EXTERN weft_host_t *weft_service_host(weft_service_t *svc);

/**
 * The discovery client (weft/discovery.h) of the worker whose loop is loop (a handler's
 * req->loop), made on its first use on that worker, with o.registry's url, token and
 * policy; closed at shutdown once the worker's listeners are done (calls still unfinished
 * then end with WEFT_ECANCELED). Worker thread only, like everything of the client. NULL
 * when the service has no registry, loop is not one of this service's workers', or the
 * client cannot be made (logged). The seed book's ServiceClient, one per worker: calls to
 * other services by name with weft_discovery_call and weft_discovery_broadcast.
 */
WEFT_EXTERN weft_discovery_t *weft_service_discovery(weft_service_t *svc, struct uv_loop_s *loop);

/** The ID the service registers under (o.registry.id, or the default made from the name,
 *  address and port once it listens); "" when there is no registry or before that. Control
 *  loop, or after weft_service_run returned. */
WEFT_EXTERN const char *weft_service_registry_id(const weft_service_t *svc);

/** A function run on the control loop once the service listens (before serving begins). */
WEFT_EXTERN void weft_service_on_start(weft_service_t *svc, void (*fn)(weft_service_t *, void *),
                                       void *arg);

/** Frees a service that is not running. */
WEFT_EXTERN void weft_service_free(weft_service_t *svc);

/* ---- rate limiting a service's callers ------------------------------------------------- */

/**
 * The seed's RateLimiter and TokenBucket in a service: the same limiters as the gateway's
 * routes (weft/ratelimit.h: a GCRA token bucket or a sliding window, per key in a bounded
 * lock-free table), and the same answer when a caller is over its limit: 429 with
 * Retry-After, the IETF RateLimit-Policy and RateLimit headers (weft_ratelimit_headers)
 * and a JSON body {"error":"rate limited","status":429,"route":NAME,"detail":...}.
 *
 *     weft_service_limit_options_t lo;
 *     weft_service_limit_options_init(&lo);
 *     lo.name = "orders";
 *     lo.limiter.rate = 100;                 // per second
 *     lo.limiter.burst = 50;
 *     lo.key = WEFT_SERVICE_LIMIT_CLIENT_IP;
 *     weft_service_limiter_t *lim;
 *     weft_service_limiter_new(svc, &lo, &lim, err, sizeof(err));
 *     weft_service_rate_limit(svc, "/orders/:id", lim);   // before its handler, or:
 *     // in a handler:  if (!weft_service_limit(lim, req)) return;  // 429 sent
 *
 * One limiter is one limit, held exactly across the service's workers. Counted on /metrics
 * as weft_ratelimit_rejected_total{route,shadow} (route: the limiter's name).
 */
typedef struct weft_service_limiter_s weft_service_limiter_t;

typedef enum weft_service_limit_key_e {
    WEFT_SERVICE_LIMIT_GLOBAL = 0,    /* one limit shared by every caller */
    WEFT_SERVICE_LIMIT_CLIENT_IP = 1, /* one per client address (the connection's peer) */
    WEFT_SERVICE_LIMIT_HEADER = 2     /* one per value of request header `header` (an API
                                         key); requests without it share one */
} weft_service_limit_key_t;

typedef struct weft_service_limit_options_s {
    const char *name;                 /* required: the policy's name in the headers, the
                                         body and the metric; printable ASCII without '"'
                                         or '\\', 1..128 bytes */
    weft_ratelimit_options_t limiter; /* default weft_ratelimit_options_init's (a token
                                         bucket, 100/s, burst 100) */
    weft_service_limit_key_t key;     /* default WEFT_SERVICE_LIMIT_GLOBAL */
    const char *header;               /* WEFT_SERVICE_LIMIT_HEADER: the header's name */
    size_t capacity;                  /* keys held at once (16 bytes each); default 65536 */
    bool shadow;                      /* count what would be rejected, reject nothing */
} weft_service_limit_options_t;

/** Fills *o with the defaults above. */
WEFT_EXTERN void weft_service_limit_options_init(weft_service_limit_options_t *o);

/** Makes a limiter owned by svc (freed by weft_service_free); o is copied. Before
 *  weft_service_run. Returns 0 and *out; WEFT_EINVAL (a bad option: a line naming it in
 *  err, errlen bytes, err may be NULL), WEFT_ESTATE (the service runs), WEFT_ELIMIT (64
 *  limiters), WEFT_ENOMEM. */
WEFT_EXTERN int weft_service_limiter_new(weft_service_t *svc, const weft_service_limit_options_t *o,
                                         weft_service_limiter_t **out, char *err, size_t errlen);

/** Applies limiter l to every request of route (a pattern exactly as given to
 *  weft_service_route, any method), or with "*" to every request that matched a route and
 *  has no limiter of its own, /health and /metrics excepted (a registry's checks and a
 *  scraper are never limited). A limited request is answered 429 before its handler runs.
 *  Before weft_service_run. Returns 0, WEFT_EINVAL, WEFT_EEXIST (route has one),
 *  WEFT_ELIMIT (64 routes), WEFT_ESTATE. */
WEFT_EXTERN int weft_service_rate_limit(weft_service_t *svc, const char *route,
                                        weft_service_limiter_t *l);

/** For a handler that limits by itself (after reading the body, say): takes one call of
 *  req's key now. Returns 1: go on (admitted, or over the limit in shadow mode); 0: req was
 *  answered 429 (the handler must not answer it). Any worker thread. */
WEFT_EXTERN int weft_service_limit(weft_service_limiter_t *l, weft_http_request_t *req);

/** What weft_service_options_from_args loaded: the strings it set in the options. */
typedef struct weft_service_settings_s weft_service_settings_t;

/**
 * weft's standard settings for a service, from its command line, its environment and an
 * optional YAML file, into *o: the one call main() makes before weft_service_new.
 *
 *     weft_service_options_t o;
 *     weft_service_options_init(&o);
 *     o.name = "orders";                    // the default of --name; variables ORDERS_*
 *     o.port = 8081;                        // the default of --port
 *     weft_service_settings_t *st;
 *     char err[512];
 *     int rc = weft_service_options_from_args(&o, argc, argv, &st, err, sizeof(err));
 *     if (rc != 0) {                        // 1: --help was printed
 *         if (rc < 0) fprintf(stderr, "orders: %s\n", err);
 *         return rc < 0 ? 2 : 0;
 *     }
 *     // weft_service_new(&o, &svc), routes, weft_service_run, weft_service_free(svc), then:
 *     weft_service_settings_free(st);
 *
 * The settings, each with what *o holds on entry as its default; P is o->name in capitals
 * with '-' and '.' as '_' ("orders": ORDERS_PORT), so services on one host read their own:
 *   --name NAME           name             P_NAME             [A-Za-z0-9_.-], 1-64 bytes
 *   --host HOST           host             P_HOST             listen address (127.0.0.1)
 *   --port N              port             P_PORT             0-65535, 0: a free port
 *   --workers N           workers          P_WORKERS          0-256, 0: one per CPU
 *   --log-level LEVEL     log_level        P_LOG_LEVEL        default: the current level
 *   --access-log          access_log       P_ACCESS_LOG
 *   --access-log-file F   access_log_file  P_ACCESS_LOG_FILE
 *   --otlp HOST:PORT      otlp             P_OTLP             default: none
 *   --registry URL        registry.url     P_REGISTRY         default: WEFT_REGISTRY, else
 *                                                             none (o.registry.url)
 *   --registry-token T    registry.token   P_REGISTRY_TOKEN   default: WEFT_REGISTRY_TOKEN
 *   --registry-id ID      registry.id      P_REGISTRY_ID
 *   --registry-address A  registry.address P_REGISTRY_ADDRESS
 *   --registry-tags A,B   registry.tags    P_REGISTRY_TAGS    comma-separated, at most 64
 *   --registry-check K    registry.check   P_REGISTRY_CHECK   http, ttl or none
 *   --registry-check-interval D, -check-timeout D, -deregister-after D, -timeout D,
 *   -resync D             registry.*       P_REGISTRY_*       durations ("10s", "500ms")
 *   --registry-policy P   registry.policy  P_REGISTRY_POLICY  round_robin, random,
 *                                                             least_outstanding,
 *                                                             least_request, ring_hash
 *   (in the file)         http.*           the server's limits and timeouts (weft/http.h)
 *   --config FILE         the YAML file holding any of these keys
 *   --help, -h            prints every setting (flag, key, default, variable, range) to
 *                         stdout, and nothing else is done
 * Precedence and value syntax: weft/config.h (defaults, the file, the environment, flags).
 * Besides *o: log_level sets the process's level (weft_log_set_level). otlp makes an OTLP
 * exporter (weft/otlp.h) for HOST:PORT/v1/traces, its service.name the loaded name and
 * service.version o->version, with OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _COMPRESSION and _PROTOCOL applied, and puts it in
 * o->exporter (shutting down any exporter o->exporter held); weft_service_new takes it
 * over like any exporter (a caller that gives up before weft_service_new shuts it down:
 * o->exporter->shutdown(o->exporter->arg)). Without otlp, the OTEL_* variables are
 * weft_service_new's to read (o->otel_env). Every o->http field an http.* key sets is
 * replaced, by the table's default when the file does not set it: to force one, set it
 * after this call.
 *
 * WEFT_REGISTRY and WEFT_REGISTRY_TOKEN are read by every service on a host (as Consul's
 * CONSUL_HTTP_ADDR is): they give the defaults that P_REGISTRY, the file and the flags
 * override. The registry.* settings replace o->registry's fields (meta stays code-only).
 * Returns 0: *o is filled, and *settings owns the strings it now points to (name, host,
 * access_log_file, the registry's); free it with weft_service_settings_free after
 * weft_service_free.
 * 1: --help was printed to stdout; *o unchanged, *settings NULL: exit with status 0.
 * A negative error, *o unchanged, *settings NULL, one line in err (errlen bytes) saying
 * where the bad value came from and what is wrong: a file's as FILE:LINE:COLUMN: key:
 * ("weft.yaml:3:7: port: 70000 is above the maximum 65535"), a flag's or a variable's by
 * its name ("--workers: expected a whole number, got \"many\"", "ORDERS_NAME: ...",
 * "OTEL_EXPORTER_OTLP_PROTOCOL: ..."); WEFT_EINVAL (a bad value, flag or key, or argv
 * with positional arguments), WEFT_ENOENT (the file cannot be read), WEFT_ENOMEM, or the
 * exporter's failure. The caller prints it and exits with status 2.
 * Reads the environment: call at start-up, before any thread that calls setenv.
 */
WEFT_EXTERN int weft_service_options_from_args(weft_service_options_t *o, int argc, char **argv,
                                               weft_service_settings_t **settings, char *err,
                                               size_t errlen);

/** Frees what weft_service_options_from_args loaded (NULL: nothing); the options' strings
 *  dangle afterwards, so call it after weft_service_free. */
WEFT_EXTERN void weft_service_settings_free(weft_service_settings_t *s);

#ifdef __cplusplus
}
#endif
#endif
