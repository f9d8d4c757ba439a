/*
 * service.c - the SDK's service: an HTTP server with /health, /metrics, request metrics,
 * request tracing, signal handling and graceful shutdown, on a host (weft/host.h).
 *
 * Threads. The service is a part of its host: weft_service_run runs the host, whose control
 * loop is the caller's thread (signals, the stop request, on_start work) and whose N worker
 * loops serve the service's HTTP listener and any other listener added to the host
 * (weft_service_host). Per-request instrumentation is three filters of the server's
 * pipeline (tracing, metrics, access log) that run on the worker thread serving the request
 * and touch only that worker's state (the part's per-worker state, weft_host_state): a
 * small cache of metric children, so the hot path resolves
 * `http_requests_total{method,route,code}` with a few compares instead of a labelled lookup,
 * and writes to the metrics module's per-thread shards.
 *
 * Access log (options.access_log). Each request's line is formatted when it ends and kept
 * in its worker's 4 KiB buffer; a check handle writes the buffer once per loop iteration,
 * after the I/O callbacks, so a busy worker writes the lines of a whole batch of requests
 * in one write(2) (one per request when it is idle), no line waits past the iteration in
 * which its request ended, and each write stays within PIPE_BUF (atomic on a pipe, lines of
 * different workers never interleave). A full buffer is written at once; the drained
 * worker writes what is left. A write that fails drops those lines. With access_log_file
 * the lines go to that file (O_APPEND: each write lands whole at its end) through one
 * descriptor, alog_fd, that never changes number: SIGUSR1 opens the path again and dup3s
 * the new file onto alog_fd, so a worker writing at that moment writes wholly to the old
 * file or wholly to the new one, with no lock and no descriptor closed under it.
 *
 * Registry (options.registry.url): the registration is a part of the host of its own
 * (registrar.c, on the control loop). Each worker's discovery client
 * (weft_service_discovery) is made on that worker's thread the first time a handler asks
 * for it, kept in the worker's state of the service's part, and closed by the worker_stop
 * hook once the worker's listeners are done: it is that loop's alone, like everything else
 * in the state.
 *
 * Memory policy: the SDK never aborts its host; allocation failures return WEFT_ENOMEM, and
 * in the request path a failure to instrument is skipped rather than failing the request.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "core/logline.h"
#include "service/service_int.h"
#include "weft/host.h"
#include "weft/log.h"
#include "weft/otlp.h"
#include "weft/service.h"

#define MAX_CHECKS   64
#define METRIC_CACHE 64 /* per worker, direct-mapped */

typedef struct check_s {
    char name[64];
    weft_check_fn fn;
    void *arg;
} check_t;

typedef struct metric_slot_s {
    const char *route;  /* interned pattern pointer (or the "unmatched" literal) */
    const char *method; /* llhttp's static method name */
    int status;
    weft_counter_t *requests;
    weft_histogram_t *duration;
} metric_slot_t;

typedef struct worker_state_s {
    weft_service_t *svc;
    unsigned index;
    metric_slot_t cache[METRIC_CACHE];
    /* access log lines of this loop iteration, written by acheck after the I/O callbacks;
     * at most PIPE_BUF bytes, so each write to a pipe is atomic */
    bool alog_on;
    size_t alen;
    uv_check_t acheck;
    weft_discovery_t *disc; /* weft_service_discovery's, made on first use */
    bool disc_failed;       /* it could not be made: not tried again */
    char alog[WEFT_LOG_LINE_MAX];
} worker_state_t;

struct weft_service_s {
    weft_service_options_t o;
    char name[65];
    char version[65];
    char host_addr[64];
    weft_http_server_t *http; /* the host's, which frees it */
    weft_host_t *host;
    int part; /* the service's part of the host: its per-worker state is worker_state_t */
    weft_metrics_registry_t *metrics;
    weft_metrics_family_t *fam_requests;
    weft_metrics_family_t *fam_duration;
    weft_tracer_t *tracer;
    unsigned extract_mask;        /* the trace context formats read from requests */
    weft_span_exporter_t *orphan; /* an exporter no tracer took: shut down at free */
    check_t checks[MAX_CHECKS];
    unsigned nchecks;
    uint64_t start_ns;
    atomic_bool draining; /* /health answers 503 "draining" (any worker reads it) */
    int alog_fd;          /* where access log lines go: STDERR_FILENO, or access_log_file's */
    char *alog_path;      /* access_log_file, copied; NULL for stderr */
    atomic_bool running;
    _Atomic uint16_t port; /* 0 until bound; read from any thread */
    void (*on_start)(weft_service_t *, void *);
    void *on_start_arg;
    weft__registrar_t *registrar; /* NULL without a registry */
    weft__limits_t *limits;       /* rate limiters (service_limit.c); NULL: none */
    /* the workers' discovery clients: o.registry.client's options, copied */
    weft_discovery_options_t client_o;
    weft_http_client_options_t client_http;
    weft_metrics_family_t *fam_breaker, *fam_breaker_tr;
};

static const char UNMATCHED[] = "unmatched";

/* ------------------------------------------------------------------------------------ */
/* built-in routes                                                                      */

const char *weft__service_status_name(weft_check_status_t st)
{
    static const char *const names[] = {"passing", "warning", "critical"};
    return (unsigned)st <= WEFT_CHECK_CRITICAL ? names[st] : names[WEFT_CHECK_CRITICAL];
}

weft_check_status_t weft__service_health(weft_service_t *svc, char *out, size_t cap)
{
    if (atomic_load_explicit(&svc->draining, memory_order_relaxed)) {
        snprintf(out, cap, "draining");
        return WEFT_CHECK_CRITICAL;
    }
    weft_check_status_t worst = WEFT_CHECK_PASSING;
    snprintf(out, cap, "passing");
    for (unsigned i = 0; i < svc->nchecks; i++) {
        char output[512] = "";
        weft_check_status_t st = svc->checks[i].fn(svc->checks[i].arg, output, sizeof(output));
        if (st > WEFT_CHECK_CRITICAL) st = WEFT_CHECK_CRITICAL;
        output[sizeof(output) - 1] = 0;
        if (st > worst) {
            worst = st;
            snprintf(out, cap, "%s: %s", svc->checks[i].name, output);
        }
    }
    return worst;
}

static void h_health(weft_http_request_t *req, void *arg)
{
    weft_service_t *svc = arg;
    static const char *const names[] = {"passing", "warning", "critical"};
    if (atomic_load_explicit(&svc->draining, memory_order_relaxed)) {
        static const char d[] = "{\"status\":\"draining\"}\n";
        weft_http_respond(req, 503, "application/json", d, sizeof(d) - 1);
        return;
    }
    weft_check_status_t worst = WEFT_CHECK_PASSING;
    weft_buf_t checks, b;
    weft_buf_init(&checks, 1u << 20);
    weft_buf_init(&b, 1u << 20);
    for (unsigned i = 0; i < svc->nchecks; i++) {
        char output[512] = "";
        weft_check_status_t st = svc->checks[i].fn(svc->checks[i].arg, output, sizeof(output));
        if (st > WEFT_CHECK_CRITICAL) st = WEFT_CHECK_CRITICAL;
        if (st > worst) worst = st;
        output[sizeof(output) - 1] = 0;
        weft_buf_puts(&checks, i ? ",{" : "{");
        weft_json_put_key(&checks, "name");
        weft_json_put_str(&checks, svc->checks[i].name, strlen(svc->checks[i].name));
        weft_buf_putc(&checks, ',');
        weft_json_put_key(&checks, "status");
        weft_json_put_str(&checks, names[st], strlen(names[st]));
        weft_buf_putc(&checks, ',');
        weft_json_put_key(&checks, "output");
        weft_json_put_str(&checks, output, strlen(output));
        weft_buf_putc(&checks, '}');
    }
    weft_buf_putc(&b, '{');
    weft_json_put_key(&b, "status");
    weft_json_put_str(&b, names[worst], strlen(names[worst]));
    weft_buf_putc(&b, ',');
    weft_json_put_key(&b, "service");
    weft_json_put_str(&b, svc->name, strlen(svc->name));
    weft_buf_putc(&b, ',');
    weft_json_put_key(&b, "version");
    weft_json_put_str(&b, svc->version, strlen(svc->version));
    weft_buf_putc(&b, ',');
    weft_json_put_key(&b, "uptime_seconds");
    weft_json_put_double(&b, (double)((weft_now_ns() - svc->start_ns) / 1000000) / 1e3);
    weft_buf_putc(&b, ',');
    weft_json_put_key(&b, "checks");
    weft_buf_putc(&b, '[');
    if (checks.len) weft_buf_put(&b, checks.p, checks.len);
    weft_buf_puts(&b, "]}\n");
    if (checks.failed || b.failed) {
        static const char err[] = "{\"status\":\"critical\",\"error\":\"out of memory\"}\n";
        weft_http_respond(req, 503, "application/json", err, sizeof(err) - 1);
    } else {
        weft_http_respond(req, worst == WEFT_CHECK_CRITICAL ? 503 : 200, "application/json", b.p,
                          b.len);
    }
    weft_buf_free(&checks);
    weft_buf_free(&b);
}

static void h_metrics(weft_http_request_t *req, void *arg)
{
    weft_service_t *svc = arg;
    char *text = NULL;
    size_t len = 0;
    weft_str_t accept = weft_http_request_header(req, "accept");
    weft_metrics_format_t fmt = weft_metrics_negotiate(accept.base, accept.len);
    if (weft_metrics_write_format(svc->metrics, fmt, &text, &len) != 0) {
        static const char err[] = "{\"error\":\"out of memory\"}\n";
        weft_http_respond(req, 503, "application/json", err, sizeof(err) - 1);
        return;
    }
    weft_http_respond(req, 200, weft_metrics_content_type(fmt), text, len);
    free(text);
}

/* ------------------------------------------------------------------------------------ */
/* instrumentation hooks (worker threads)                                               */

/* The tracing filter: a server span per request, continuing an incoming context. */
static weft_http_filter_result_t trace_request(weft_http_request_t *req, void *arg)
{
    weft_service_t *svc = arg;
    weft_trace_context_t parent;
    /* One pass over the headers: every traceparent/tracestate line is seen (a duplicated
     * traceparent is invalid; tracestate lines are joined), which a lookup by name is not. */
    int have = weft_trace_extract_headers_mask(req->headers, req->nheaders, svc->extract_mask,
                                               &parent) == 0;
    const char *route = req->route_pattern ? req->route_pattern : UNMATCHED;
    weft_span_t *span =
        weft_span_start(svc->tracer, route, WEFT_SPAN_SERVER, have ? &parent : NULL);
    if (weft_span_is_recording(span)) {
        /* "GET /orders/:id", the HTTP semantic conventions' server span name; built only
         * for spans that record, so unsampled traffic pays nothing for it. */
        char name[WEFT_SPAN_NAME_MAX];
        size_t ml = req->method.len < 16 ? req->method.len : 16, rl = strlen(route);
        if (rl > sizeof(name) - ml - 2) rl = sizeof(name) - ml - 2;
        memcpy(name, req->method.base ? req->method.base : "", ml);
        name[ml] = ' ';
        memcpy(name + ml + 1, route, rl);
        name[ml + 1 + rl] = 0;
        weft_span_set_name(span, name);
        weft_span_set_attr_str(span, "http.route", route);
        /* method.base is llhttp's static, NUL-terminated method name */
        if (req->method.base) weft_span_set_attr_str(span, "http.request.method", req->method.base);
    }
    req->hook_data = span;
    return WEFT_HTTP_NEXT;
}

/* The tracing filter's end: the span takes the status and ends. Runs after the access log
 * (filters end in reverse order), which reads the span's ids. */
/* The route's rate limiter (weft_service_rate_limit), if it has one: 429 or on. */
static weft_http_filter_result_t rate_limit_request(weft_http_request_t *req, void *arg)
{
    weft_service_t *svc = arg;
    weft_service_limiter_t *l = weft__limits_for(svc->limits, req);
    if (!l || weft_service_limit(l, req)) return WEFT_HTTP_NEXT;
    return WEFT_HTTP_DONE;
}

static void trace_end(weft_http_request_t *req, int status, bool aborted, void *arg)
{
    weft_span_t *span = req->hook_data;
    if (!span) return;
    req->hook_data = NULL;
    weft_span_set_attr_int(span, "http.response.status_code", status);
    if (status >= 500 || aborted)
        weft_span_set_status(span, WEFT_SPAN_STATUS_ERROR, aborted ? "aborted" : NULL);
    weft_span_end(span);
}

static metric_slot_t *metric_slot(weft_service_t *svc, worker_state_t *ws, const char *method,
                                  const char *route, int status)
{
    uintptr_t h = ((uintptr_t)route >> 3) * 31u + ((uintptr_t)method >> 3) * 7u + (unsigned)status;
    metric_slot_t *slot = &ws->cache[h % METRIC_CACHE];
    if (slot->route == route && slot->method == method && slot->status == status) return slot;
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), 0};
    const char *lv[3] = {method, route, code};
    weft_counter_t *c = weft_metrics_counter_child(svc->fam_requests, lv);
    weft_histogram_t *d = weft_metrics_histogram_child(svc->fam_duration, lv);
    if (!c || !d) return NULL;
    slot->route = route;
    slot->method = method;
    slot->status = status;
    slot->requests = c;
    slot->duration = d;
    return slot;
}

static size_t access_format(char *out, const char *kv, ...) __attribute__((format(printf, 2, 3)));

static size_t access_format(char *out, const char *kv, ...)
{
    va_list ap;
    va_start(ap, kv);
    size_t n = weft__log_vformat(out, WEFT_LOG_INFO, "access", "request", kv, ap);
    va_end(ap);
    return n;
}

static void alog_write(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* gone or full: the lines are dropped, not retried */
        p += w;
        n -= (size_t)w;
    }
}

static void alog_flush(worker_state_t *ws)
{
    alog_write(ws->svc->alog_fd, ws->alog, ws->alen);
    ws->alen = 0;
}

/* One access log line (weft_service_options_t.access_log). Runs before the span ends, while
 * its context can still be read; the path and route are quoted when logfmt needs it. */
static void access_line(weft_service_t *svc, weft_http_request_t *req, int status, bool aborted,
                        weft_span_t *span, uint64_t now)
{
    char path[1100], route[600], ids[80] = "";
    weft_log_quote(path, sizeof(path), req->path.base ? req->path.base : "", req->path.len);
    const char *r = req->route_pattern ? req->route_pattern : UNMATCHED;
    weft_log_quote(route, sizeof(route), r, strlen(r));
    const weft_trace_context_t *ctx = span ? weft_span_context(span) : NULL;
    if (ctx && weft_trace_context_is_valid(ctx)) {
        memcpy(ids, " trace_id=", 10);
        weft_trace_hex(ctx->trace_id, 16, ids + 10);
        memcpy(ids + 42, " span_id=", 9);
        weft_trace_hex(ctx->span_id, 8, ids + 51);
        ids[67] = 0;
    }
    char query[1100] = "";
    if (req->query.len) {
        memcpy(query, " query=", 7);
        weft_log_quote(query + 7, sizeof(query) - 7, req->query.base, req->query.len);
    }
    double ms = req->start_ns ? (double)(now - req->start_ns) / 1e6 : 0;
    char line[WEFT_LOG_LINE_MAX];
    size_t n =
        access_format(line, "peer=%s method=%s path=%s%s route=%s status=%d duration_ms=%.3f%s%s",
                      weft_http_request_peer(req), req->method.base ? req->method.base : "-", path,
                      query, route, status, ms, ids, aborted ? " aborted=true" : "");
    worker_state_t *ws = weft_host_state(req->loop, svc->part);
    if (!ws->alog_on) {
        alog_write(svc->alog_fd, line, n);
        return;
    }
    /* n <= WEFT_LOG_LINE_MAX == sizeof(ws->alog): a line always fits an emptied buffer */
    if (ws->alen + n > sizeof(ws->alog)) alog_flush(ws);
    memcpy(ws->alog + ws->alen, line, n);
    ws->alen += n;
}

/* Once per loop iteration, after the I/O callbacks: the lines of the requests that ended in
 * it, in one write. */
static void on_alog_check(uv_check_t *h)
{
    worker_state_t *ws = h->data;
    if (ws->alen) alog_flush(ws);
}

/* The metrics filter: http_requests_total and http_request_duration_seconds. */
static void metrics_end(weft_http_request_t *req, int status, bool aborted, void *arg)
{
    weft_service_t *svc = arg;
    worker_state_t *ws = weft_host_state(req->loop, svc->part);
    const char *method = req->method.base ? req->method.base : "";
    const char *route = req->route_pattern ? req->route_pattern : UNMATCHED;
    metric_slot_t *slot = metric_slot(svc, ws, method, route, status);
    if (slot) {
        weft_counter_inc(slot->requests);
        if (req->start_ns) {
            double d = (double)(weft_now_ns() - req->start_ns) / 1e9;
            /* the tracing filter's span, still open (its end runs after this one): a
             * sampled request's span is the bucket's exemplar; others leave the last one */
            weft_span_t *span = svc->tracer ? req->hook_data : NULL;
            const weft_trace_context_t *c =
                span && weft_span_is_recording(span) ? weft_span_context(span) : NULL;
            if (c)
                weft_histogram_observe_exemplar(slot->duration, d, c->trace_id, c->span_id);
            else
                weft_histogram_observe(slot->duration, d);
        }
    }
}

/* The access log filter: one line per request. */
static void access_end(weft_http_request_t *req, int status, bool aborted, void *arg)
{
    access_line(arg, req, status, aborted, req->hook_data, weft_now_ns());
}

/* ------------------------------------------------------------------------------------ */
/* life cycle                                                                           */

void weft_service_options_init(weft_service_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->version = "0.0.0";
    o->host = "127.0.0.1";
    o->port = 8080;
    o->metrics = true;
    o->tracing = true;
    o->sample_ratio = 1.0;
    o->propagators = WEFT_PROPAGATE_ALL;
    o->otel_env = true;
    weft_http_server_options_init(&o->http);
    o->registry.check = WEFT_DISCOVERY_CHECK_HTTP;
    o->registry.check_interval_ms = 10000;
    o->registry.deregister_after_ms = 60000;
    o->registry.timeout_ms = 2000;
    o->registry.resync_ms = 30000;
    o->registry.policy = WEFT_DISCOVERY_ROUND_ROBIN;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static double http_connections(void *arg)
{
    weft_service_t *svc = arg;
    if (!svc->http) return 0;
    double n = 0;
    for (unsigned i = 0; i < weft_http_server_loops(svc->http); i++)
        n += weft_http_server_connections(svc->http, i);
    return n;
}

static double http_rejected(void *arg)
{
    weft_service_t *svc = arg;
    return svc->http ? (double)weft_http_server_rejected(svc->http) : 0;
}

static double uptime_seconds(void *arg)
{
    weft_service_t *svc = arg;
    return (double)(weft_now_ns() - svc->start_ns) / 1e9;
}

/* weft_service_new failed before a service held the exporter: it still takes it over. */
static int refuse(const weft_service_options_t *o, int err)
{
    if (o && o->exporter && o->exporter->shutdown) o->exporter->shutdown(o->exporter->arg);
    return err;
}

/* OpenTelemetry's environment variables: the sampler, and an OTLP exporter when the
 * service was given none. A bad value is logged (naming the variable) and refused. */
static int otel_env(weft_service_t *svc, weft_sampler_t *sampler)
{
    char why[384], q[512];
    if (weft_sampler_from_env(sampler, why, sizeof(why)) < 0) goto bad;
    if (weft_propagators_from_env(&svc->o.propagators, why, sizeof(why)) < 0) goto bad;
    if (svc->orphan) return 0; /* an exporter from code wins */
    weft_otlp_env_t oe;
    int r = weft_otlp_options_from_env(&oe, svc->name, why, sizeof(why));
    if (r < 0) goto bad;
    if (r == 0) return 0;
    oe.o.service_version = svc->version;
    if (!(svc->orphan = weft_otlp_exporter_new(&oe.o, why, sizeof(why)))) goto bad;
    weft_info("service", "exporting spans over OTLP/HTTP (OTEL_* environment)",
              "endpoint=%s:%u%s service_name=%s", oe.o.host, oe.o.port, oe.o.path,
              oe.o.service_name);
    return 0;
bad:
    weft_error("service", "cannot use the OpenTelemetry environment", "error=%s",
               weft_log_quote(q, sizeof(q), why, strlen(why)));
    return WEFT_EINVAL;
}

/* ------------------------------------------------------------------------------------ */
/* the service's part of its host                                                       */

static void worker_init(weft_host_t *h, uv_loop_t *loop, unsigned index, void *state, void *arg)
{
    weft_service_t *svc = arg;
    worker_state_t *ws = state;
    ws->svc = svc;
    ws->index = index;
    if (svc->o.access_log && uv_check_init(loop, &ws->acheck) == 0) {
        ws->acheck.data = ws;
        uv_check_start(&ws->acheck, on_alog_check);
        uv_unref((uv_handle_t *)&ws->acheck);
        ws->alog_on = true;
    }
    weft_metrics_thread_register();
}

/* On the worker's thread, once its listeners have drained. */
static void worker_stop(weft_host_t *h, uv_loop_t *loop, unsigned index, void *state, void *arg)
{
    worker_state_t *ws = state;
    if (ws->alen) alog_flush(ws); /* requests that ended after the last check phase */
    if (ws->alog_on) uv_close((uv_handle_t *)&ws->acheck, NULL);
    ws->alog_on = false;
    if (ws->disc) weft_discovery_close(ws->disc, NULL, NULL); /* its handles end the loop */
    ws->disc = NULL;
}

/* Control loop's thread, the listener bound, before any worker serves: the port is known
 * before the first request can ask for it (/v1/status/leader answers with it). */
static int on_host_init(weft_host_t *h, void *arg)
{
    weft_service_t *svc = arg;
    (void)h;
    atomic_store_explicit(&svc->port, weft_http_server_port(svc->http), memory_order_release);
    return 0;
}

/* Control loop: every worker serves. */
static void on_host_start(weft_host_t *h, void *arg)
{
    weft_service_t *svc = arg;
    weft_info("service", "listening", "service=%s version=%s addr=%s:%u workers=%u", svc->name,
              svc->version, svc->host_addr, weft_service_port(svc), weft_host_workers(h));
    if (svc->on_start) svc->on_start(svc, svc->on_start_arg);
}

/* http.shutdown_delay: /health answers 503 "draining" while requests are still served. */
static void on_drain(weft_host_t *h, void *arg)
{
    weft_service_t *svc = arg;
    atomic_store_explicit(&svc->draining, true, memory_order_relaxed);
}

/* SIGUSR1: the access log file again, at its path (logrotate renamed the old one). */
static void on_reopen(weft_host_t *h, void *arg)
{
    weft_service_t *svc = arg;
    if (!svc->alog_path) {
        weft_info("service", "SIGUSR1: no access log file to reopen", "service=%s", svc->name);
        return;
    }
    int fd = open(svc->alog_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || dup3(fd, svc->alog_fd, O_CLOEXEC) < 0) {
        weft_error("service", "cannot reopen the access log; still writing the old file",
                   "path=%s error=\"%s\"", svc->alog_path, strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    close(fd);
    weft_info("service", "access log reopened", "path=%s", svc->alog_path);
}

int weft_service_new(const weft_service_options_t *o, weft_service_t **out)
{
    if (!o || !o->name || !valid_name(o->name)) return refuse(o, WEFT_EINVAL);
    const char *version = o->version ? o->version : "0.0.0";
    const char *host = o->host ? o->host : "127.0.0.1";
    if (strlen(version) > 64 || strlen(host) >= 64) return refuse(o, WEFT_EINVAL);
    if (o->sample_ratio < 0 || o->sample_ratio > 1) return refuse(o, WEFT_EINVAL);
    if (!(o->sample_rate >= 0)) return refuse(o, WEFT_EINVAL);
    weft_service_t *svc = calloc(1, sizeof(*svc));
    if (!svc) return refuse(o, WEFT_ENOMEM);
    svc->o = *o;
    strcpy(svc->name, o->name);
    strcpy(svc->version, version);
    strcpy(svc->host_addr, host);
    svc->o.name = svc->name;
    svc->o.version = svc->version;
    svc->o.host = svc->host_addr;
    svc->start_ns = weft_now_ns();
    svc->orphan = o->exporter; /* owned from here on, whatever happens below */
    svc->alog_fd = STDERR_FILENO;
    weft_sampler_t sampler = weft_sampler_parent_based(weft_sampler_ratio(o->sample_ratio));
    if (o->sample_rate > 0) { /* the ratio first, then the cap (weft_sampler_rate_limiting) */
        weft_sampler_t rl = weft_sampler_rate_limiting(o->sample_rate);
        rl.ratio = sampler.ratio;
        sampler = weft_sampler_parent_based(rl);
    }
    int err = 0;
    if (o->tracing && o->otel_env && (err = otel_env(svc, &sampler)) != 0) goto fail;
    svc->extract_mask = svc->o.propagators & WEFT_PROPAGATE_W3C;
    if (svc->o.propagators & (WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI))
        svc->extract_mask |= WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI |
                             (svc->o.propagators & WEFT_PROPAGATE_B3_WINS);
    if (o->access_log_file && o->access_log_file[0]) {
        if (!(svc->alog_path = strdup(o->access_log_file))) {
            err = WEFT_ENOMEM;
            goto fail;
        }
        int fd = open(svc->alog_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            err = -errno;
            weft_error("service", "cannot open the access log", "path=%s error=\"%s\"",
                       svc->alog_path, strerror(errno));
            goto fail;
        }
        svc->alog_fd = fd;
        svc->o.access_log = true;
    }
    svc->o.access_log_file = svc->alog_path;
    weft_host_options_t hopt;
    weft_host_options_init(&hopt);
    hopt.name = svc->name;
    hopt.workers = o->workers;
    hopt.busy_poll_us = o->http.busy_poll_us;
    hopt.busy_poll_share = o->http.busy_poll_share;
    hopt.shutdown_delay_ms = o->http.shutdown_delay_ms;
    if ((err = weft_host_new(&hopt, &svc->host)) != 0) goto fail;
    weft_host_part_t part = {.name = "service",
                             .state_size = sizeof(worker_state_t),
                             .worker_init = worker_init,
                             .worker_stop = worker_stop,
                             .init = on_host_init,
                             .start = on_host_start,
                             .drain = on_drain,
                             .reopen = on_reopen,
                             .arg = svc};
    if ((svc->part = weft_host_add_part(svc->host, &part)) < 0) {
        err = svc->part;
        goto fail;
    }
    weft_http_server_options_t ho = o->http;
    ho.host = svc->host_addr;
    ho.port = o->port;
    weft_http_server_t *http;
    if ((err = weft_http_server_new(&ho, weft_host_workers(svc->host), &http)) != 0) goto fail;
    if ((err = weft_host_add_http(svc->host, http)) != 0) {
        weft_http_server_free(http);
        goto fail;
    }
    svc->http = http;
    if ((err = weft__registrar_new(svc, &svc->o, svc->host, &svc->registrar)) != 0) goto fail;
    weft_discovery_options_init(&svc->client_o);
    if (o->registry.client) {
        svc->client_o = *o->registry.client;
        if (o->registry.client->http) {
            svc->client_http = *o->registry.client->http;
            svc->client_o.http = &svc->client_http;
        }
        if (svc->client_o.breaker &&
            weft_breaker_options_check(&svc->client_o.breaker_conf, NULL, 0) != 0) {
            err = WEFT_EINVAL;
            goto fail;
        }
    }
    svc->o.registry.client = NULL; /* copied above; not kept pointing at the caller's */

    svc->metrics = weft_metrics_registry_new();
    if (!svc->metrics) {
        err = WEFT_ENOMEM;
        goto fail;
    }
    if (o->metrics) {
        static const char *const lbl[] = {"method", "route", "code"};
        if ((err = weft_metrics_counter_new(svc->metrics, "http_requests_total",
                                            "HTTP requests served, by method, route and status.",
                                            lbl, 3, &svc->fam_requests)) != 0 ||
            (err = weft_metrics_histogram_new(
                 svc->metrics, "http_request_duration_seconds",
                 "Time from a complete request head to the end of the response.", lbl, 3, NULL, 0,
                 &svc->fam_duration)) != 0 ||
            (err = weft_metrics_gauge_fn(svc->metrics, "http_connections_active",
                                         "Open HTTP connections.", http_connections, svc)) != 0 ||
            (err = weft_metrics_counter_fn(
                 svc->metrics, "http_connections_rejected_total",
                 "Connections answered 503 and closed at accept: the worker was at "
                 "http.max_connections or at what the open-file limit holds.",
                 http_rejected, svc)) != 0 ||
            (err = weft_metrics_gauge_fn(svc->metrics, "weft_service_uptime_seconds",
                                         "Seconds since the service started.", uptime_seconds,
                                         svc)) != 0 ||
            (err = weft_metrics_register_process(svc->metrics)) != 0)
            goto fail;
        static const char *const blbl[] = {"service", "instance", "worker"};
        static const char *const tlbl[] = {"service", "instance", "from", "to", "reason"};
        if (svc->registrar &&
            ((err = weft_metrics_gauge_new(
                  svc->metrics, "weft_client_breaker_state",
                  "The discovery client's circuit breaker per instance of a called service, "
                  "per worker: 0 closed, 1 open, 2 half-open.",
                  blbl, 3, &svc->fam_breaker)) != 0 ||
             (err = weft_metrics_counter_new(
                  svc->metrics, "weft_client_breaker_transitions_total",
                  "State changes of the discovery client's circuit breakers, with the reason.",
                  tlbl, 5, &svc->fam_breaker_tr)) != 0))
            goto fail;
        /* an OTLP exporter's counters go with the service's (the registry outlives it:
         * weft_service_free shuts the exporter down first); other exporters: EINVAL */
        if (svc->orphan && (err = weft_otlp_exporter_metrics(svc->orphan, svc->metrics)) != 0 &&
            err != WEFT_EINVAL)
            goto fail;
        err = 0;
    }
    if (o->tracing) {
        weft_tracer_options_t to;
        weft_tracer_options_init(&to);
        to.service_name = svc->name;
        to.sampler = sampler;
        to.exporter = svc->orphan;
        if ((err = weft_tracer_new(&to, &svc->tracer)) != 0) goto fail;
        svc->orphan = NULL; /* the tracer owns it now */
    }
    /* The pipeline: tracing first, so that its span is open while the others end */
    weft_http_filter_t f = {
        .name = "tracing", .on_request = trace_request, .on_end = trace_end, .arg = svc};
    if (svc->tracer && (err = weft_http_server_filter(svc->http, &f)) != 0) goto fail;
    f = (weft_http_filter_t){.name = "metrics", .on_end = metrics_end, .arg = svc};
    if (svc->fam_requests && (err = weft_http_server_filter(svc->http, &f)) != 0) goto fail;
    f = (weft_http_filter_t){.name = "access_log", .on_end = access_end, .arg = svc};
    if (svc->o.access_log && (err = weft_http_server_filter(svc->http, &f)) != 0) goto fail;
    /* last: a 429 is traced, counted and logged like any answer */
    f = (weft_http_filter_t){.name = "ratelimit", .on_request = rate_limit_request, .arg = svc};
    if ((err = weft_http_server_filter(svc->http, &f)) != 0) goto fail;
    weft_http_route_t r = {.handler = h_health, .arg = svc};
    if ((err = weft_http_server_route(svc->http, "GET", "/health", &r)) != 0) goto fail;
    if (o->metrics) {
        r.handler = h_metrics;
        if ((err = weft_http_server_route(svc->http, "GET", "/metrics", &r)) != 0) goto fail;
    }
    *out = svc;
    return 0;
fail:
    weft_service_free(svc);
    return err;
}

int weft_service_limiter_new(weft_service_t *svc, const weft_service_limit_options_t *o,
                             weft_service_limiter_t **out, char *err, size_t errlen)
{
    if (!svc) return WEFT_EINVAL;
    if (atomic_load(&svc->running)) return WEFT_ESTATE;
    return weft__limiter_new(&svc->limits, svc->o.metrics ? svc->metrics : NULL, o, out, err,
                             errlen);
}

int weft_service_rate_limit(weft_service_t *svc, const char *route, weft_service_limiter_t *l)
{
    if (!svc) return WEFT_EINVAL;
    if (atomic_load(&svc->running)) return WEFT_ESTATE;
    return weft__limits_attach(&svc->limits, route, l);
}

int weft_service_route_ex(weft_service_t *svc, const char *method, const char *pattern,
                          const weft_http_route_t *route)
{
    if (atomic_load(&svc->running)) return WEFT_ESTATE;
    return weft_http_server_route(svc->http, method, pattern, route);
}

int weft_service_route(weft_service_t *svc, const char *method, const char *pattern,
                       weft_http_handler_fn handler, void *arg)
{
    weft_http_route_t r = {.handler = handler, .arg = arg};
    return weft_service_route_ex(svc, method, pattern, &r);
}

int weft_service_check(weft_service_t *svc, const char *name, weft_check_fn fn, void *arg)
{
    if (!name || !fn || strlen(name) >= sizeof(svc->checks[0].name)) return WEFT_EINVAL;
    if (atomic_load(&svc->running)) return WEFT_ESTATE;
    if (svc->nchecks >= MAX_CHECKS) return WEFT_ELIMIT;
    check_t *c = &svc->checks[svc->nchecks++];
    strcpy(c->name, name);
    c->fn = fn;
    c->arg = arg;
    return 0;
}

weft_metrics_registry_t *weft_service_metrics(weft_service_t *svc)
{
    return svc->metrics;
}
weft_tracer_t *weft_service_tracer(weft_service_t *svc)
{
    return svc->tracer;
}
weft_span_t *weft_service_span(const weft_http_request_t *req)
{
    return req->hook_data;
}
uint16_t weft_service_port(const weft_service_t *svc)
{
    return atomic_load_explicit(&svc->port, memory_order_acquire);
}

void weft_service_on_start(weft_service_t *svc, void (*fn)(weft_service_t *, void *), void *arg)
{
    svc->on_start = fn;
    svc->on_start_arg = arg;
}

uv_loop_t *weft_service_loop(weft_service_t *svc)
{
    return weft_host_loop(svc->host);
}

weft_host_t *weft_service_host(weft_service_t *svc)
{
    return svc->host;
}

/* A worker's discovery client's breaker moved (its loop's thread): the gauge, the counter,
 * the log, then the caller's own on_breaker. */
static void on_client_breaker(void *data, const char *service, const char *instance,
                              weft_breaker_state_t from, weft_breaker_state_t to,
                              weft_breaker_reason_t reason)
{
    worker_state_t *ws = data;
    weft_service_t *svc = ws->svc;
    char worker[16];
    snprintf(worker, sizeof(worker), "%u", ws->index);
    if (svc->fam_breaker) {
        const char *v[3] = {service, instance, worker};
        double g = to == WEFT_BREAKER_CLOSED ? 0 : to == WEFT_BREAKER_OPEN ? 1 : 2;
        weft_gauge_set(weft_metrics_gauge_child(svc->fam_breaker, v), g);
    }
    if (from != to) {
        if (svc->fam_breaker_tr) {
            const char *v[5] = {service, instance, weft_breaker_state_name(from),
                                weft_breaker_state_name(to), weft_breaker_reason_name(reason)};
            weft_counter_inc(weft_metrics_counter_child(svc->fam_breaker_tr, v));
        }
        if (to == WEFT_BREAKER_OPEN)
            weft_warn("client", "circuit breaker opened",
                      "service=%s instance=%s worker=%u from=%s reason=%s", service, instance,
                      ws->index, weft_breaker_state_name(from), weft_breaker_reason_name(reason));
        else
            weft_info("client", "circuit breaker moved",
                      "service=%s instance=%s worker=%u from=%s to=%s reason=%s", service, instance,
                      ws->index, weft_breaker_state_name(from), weft_breaker_state_name(to),
                      weft_breaker_reason_name(reason));
    }
    if (svc->client_o.on_breaker)
        svc->client_o.on_breaker(svc->client_o.on_breaker_data, service, instance, from, to,
                                 reason);
}

weft_discovery_t *weft_service_discovery(weft_service_t *svc, uv_loop_t *loop)
{
    if (!svc || !svc->registrar || weft_host_worker_index(loop) == ~0u) return NULL;
    worker_state_t *ws = weft_host_state(loop, svc->part);
    if (!ws || ws->svc != svc) return NULL;
    if (ws->disc || ws->disc_failed) return ws->disc;
    weft_discovery_options_t base, o = svc->client_o;
    weft__registrar_discovery_options(svc->registrar, &base);
    o.registry = base.registry;
    o.token = base.token;
    o.policy = base.policy;
    o.loop = loop;
    o.on_breaker = on_client_breaker;
    o.on_breaker_data = ws;
    o.tracer = svc->tracer;
    int err = weft_discovery_new(&o, &ws->disc);
    if (err) {
        ws->disc = NULL;
        ws->disc_failed = true;
        weft_error("service", "cannot make the worker's discovery client", "worker=%u error=%s",
                   ws->index, weft_err_name(err));
    }
    return ws->disc;
}

const char *weft_service_registry_id(const weft_service_t *svc)
{
    return weft__registrar_id(svc->registrar);
}

void weft_service_stop(weft_service_t *svc)
{
    if (atomic_load(&svc->running)) weft_host_stop(svc->host);
}

int weft_service_run(weft_service_t *svc)
{
    if (atomic_exchange(&svc->running, true)) return WEFT_ESTATE;
    int err = weft_host_run(svc->host);
    if (err == 0) weft_info("service", "stopped", "service=%s", svc->name);
    atomic_store(&svc->running, false);
    return err;
}

void weft_service_free(weft_service_t *svc)
{
    if (!svc) return;
    if (svc->tracer) weft_tracer_free(svc->tracer);
    if (svc->orphan && svc->orphan->shutdown) svc->orphan->shutdown(svc->orphan->arg);
    weft_host_free(svc->host); /* and the server */
    weft__registrar_free(svc->registrar);
    weft__limits_free(svc->limits);
    if (svc->metrics) weft_metrics_registry_free(svc->metrics);
    if (svc->alog_path) {
        if (svc->alog_fd > STDERR_FILENO) close(svc->alog_fd);
        free(svc->alog_path);
    }
    free(svc);
}
