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
 */
#ifndef WEFT_SERVICE_H
#define WEFT_SERVICE_H

#include "weft/common.h"
#include "weft/host.h"
#include "weft/http.h"
#include "weft/metrics.h"
#include "weft/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_service_s weft_service_t;

typedef struct weft_service_options_s {
    const char *name;               /* required: [A-Za-z0-9_.-]{1,64} */
    const char *version;            /* default "0.0.0" */
    const char *host;               /* listen address; default 127.0.0.1 */
    uint16_t port;                  /* default 8080; 0 picks a free port */
    unsigned workers;               /* worker threads; 0 (default): one per CPU */
    bool metrics;                   /* count and time every request, serve /metrics; default true */
    bool tracing;                   /* trace every request; default true */
    double sample_ratio;            /* for root spans (parent-based sampling); default 1.0 */
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
    const char *access_log_file;     /* NULL or "": the access log goes to stderr. Else the file
                            its lines are appended to (created 0644 if missing; opening it
                            is part of weft_service_new, which fails with the errno and an error
                            line naming the path), which turns access_log on; SIGUSR1 reopens
                            it, as NGINX's does, for logrotate (rename, then kill -USR1) */
    weft_http_server_options_t http; /* limits and timeouts (weft/http.h) */
} weft_service_options_t;

/** Fills *o with the defaults above. */
WEFT_EXTERN void weft_service_options_init(weft_service_options_t *o);

/** Creates a service (nothing listens yet). Returns 0 and *out, WEFT_EINVAL, WEFT_ENOMEM. */
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

/** A function run on the control loop once the service listens (before serving begins). */
WEFT_EXTERN void weft_service_on_start(weft_service_t *svc, void (*fn)(weft_service_t *, void *),
                                       void *arg);

/** Frees a service that is not running. */
WEFT_EXTERN void weft_service_free(weft_service_t *svc);

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
 * Returns 0: *o is filled, and *settings owns the strings it now points to (name, host,
 * access_log_file); free it with weft_service_settings_free after weft_service_free.
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
