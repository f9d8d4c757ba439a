/*
 * observe.c - the gateway's span per request and its JSON access log (see observe.h).
 *
 * The span. One SERVER span per request on the gateway's listener, as Envoy's ingress span:
 * a child of the client's context when the request carries one (traceparent, else B3; the
 * tracer's sampler, parent-based by default, follows the client's sampled flag), else the
 * root of a new trace. Every try at an upstream carries a traceparent naming this span as
 * its parent (the client's traceparent and tracestate are replaced, the tracestate by the
 * span's, which is the client's, normalised), so the upstream's server span hangs under the
 * gateway's. There is no CLIENT span per try: the tries are told apart by the span's
 * "retry" events (which instance failed, why, the backoff), so a waterfall shows one
 * gateway span with its decisions as attributes (route, chosen instance, rate-limit and
 * breaker verdicts, retries, the decision). The tracer is the host's (`weft serve`'s, with
 * the OTLP exporter its OTEL_* environment configures). Without an exporter there is no span
 * at all and the client's trace context passes through unchanged (gw_obs_begin). For a
 * trace not sampled the span does not record (weft/trace.h): it costs two random ids, a
 * sampler decision and a free-list pop, nothing here formats or copies anything for it, and
 * the gateway's traceparent still goes upstream.
 *
 * Sampling. A route without a `tracing` block leaves the head decision to the tracer
 * (tracing.sample_ratio and tracing.sample_rate, parent-based). A route with one decides
 * itself (head_decision): a client's decision is followed (parent-based); a trace that
 * starts here (no context, or B3 ids that deferred it) is sampled by the route's ratio, then
 * its rate bucket (weft_trace_rate_t, shared by the workers: one compare-and-swap). When the
 * head says "drop" and the route has tail rules (keep_errors, keep_slower_than), the span is
 * started record-only: it records as a sampled one does, but the traceparent sent upstream
 * says sampled=0, so the upstreams record nothing. At the end (gw_obs_end) it is kept
 * (exported, weft.sampling = tail-error or tail-slow) when the request failed or was slow,
 * and dropped otherwise. "Failed": a 5xx answered (the upstream's, or the gateway's own 502,
 * 503, 504: upstream error, timeout, breaker open, no upstream), or an upstream failure that
 * ended the request (the client gone meanwhile). A 429 of the route's rate limit is not a
 * failure here: under a flood that would record every refused request, when recording costs
 * most. The tail keeps are not capped by the rate: they are what the rate would lose. Only
 * the gateway's span of such a trace exists (the upstreams were told 0), which is why it
 * says weft.sampling. Routes without a tracing block pay one branch for all this.
 *
 * The access log (gateway.access_log.path; off by default): one JSON object per line, written
 * by a thread of its own. A worker formats its line into its own buffer, then copies it
 * under a mutex into the writer's buffer (ALOG_BUF bytes); when that is full the line is
 * dropped and counted (weft_gateway_access_log_dropped_total), so a slow disk never holds a
 * worker. The writer swaps the full buffer for an empty one and writes it out, waking at
 * least every second; freeing it writes what is left.
 *
 * Threads: the hooks on the worker that serves the request; the writer on its own thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json_write.h"
#include "gateway/gw_int.h"
#include "weft/log.h"

#define ALOG_BUF      (1u << 20) /* bytes of lines waiting for the writer (and as many written) */
#define ALOG_LINE_MAX 8192       /* a line longer than this (a huge path) is cut, never split */
#define ALOG_WAKE_MS  1000

struct gw_alog_s {
    int fd;
    bool close_fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf, *spare; /* workers append to buf; the writer writes spare */
    size_t len;        /* bytes in buf */
    bool stop;
    bool warned; /* the writer logged a failed write (once per log) */
    atomic_ullong dropped;
};

/* ---- the writer ---- */

static void count_lines_dropped(gw_alog_t *a, const char *p, size_t n)
{
    unsigned long long k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++) k++;
    atomic_fetch_add_explicit(&a->dropped, k, memory_order_relaxed);
}

static void write_out(gw_alog_t *a, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(a->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { /* a full disk, a closed pipe: those lines are lost, and counted */
            if (!a->warned)
                weft_warn("gateway", "cannot write the access log", "err=%s",
                          strerror(w < 0 ? errno : EIO));
            a->warned = true;
            count_lines_dropped(a, p, n);
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void *writer_main(void *arg)
{
    gw_alog_t *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->len == 0 && !a->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += ALOG_WAKE_MS / 1000;
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        }
        if (a->len == 0 && a->stop) break;
        char *full = a->buf;
        size_t n = a->len;
        a->buf = a->spare;
        a->spare = full;
        a->len = 0;
        pthread_mutex_unlock(&a->mu);
        write_out(a, full, n);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int gw_alog_new(const char *path, gw_alog_t **out, char *err, size_t errlen)
{
    gw_alog_t *a = calloc(1, sizeof(*a));
    if (!a || !(a->buf = malloc(ALOG_BUF)) || !(a->spare = malloc(ALOG_BUF))) {
        if (a) free(a->buf);
        free(a);
        snprintf(err, errlen, "gateway.access_log: out of memory");
        return WEFT_ENOMEM;
    }
    if (strcmp(path, "-") == 0) {
        a->fd = STDOUT_FILENO;
    } else {
        a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (a->fd < 0) {
            int e = errno;
            snprintf(err, errlen, "gateway.access_log.path: cannot open %s: %s", path, strerror(e));
            free(a->buf);
            free(a->spare);
            free(a);
            return -e;
        }
        a->close_fd = true;
    }
    atomic_init(&a->dropped, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc == 0 && (rc = pthread_mutex_init(&a->mu, NULL)) != 0) pthread_cond_destroy(&a->cv);
    if (rc == 0 && (rc = pthread_create(&a->thread, NULL, writer_main, a)) != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
    }
    if (rc != 0) {
        snprintf(err, errlen, "gateway.access_log: cannot start its writer: %s", strerror(rc));
        if (a->close_fd) close(a->fd);
        free(a->buf);
        free(a->spare);
        free(a);
        return -rc;
    }
    *out = a;
    return 0;
}

uint64_t gw_alog_dropped(const gw_alog_t *a)
{
    return a ? atomic_load_explicit(&((gw_alog_t *)a)->dropped, memory_order_relaxed) : 0;
}

void gw_alog_free(gw_alog_t *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    if (a->close_fd) close(a->fd);
    free(a->buf);
    free(a->spare);
    free(a);
}

void gw_alog_write(gw_alog_t *a, const char *line, size_t n)
{
    pthread_mutex_lock(&a->mu);
    if (a->len + n > ALOG_BUF) {
        pthread_mutex_unlock(&a->mu);
        atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
        return;
    }
    bool was_empty = a->len == 0;
    memcpy(a->buf + a->len, line, n);
    a->len += n;
    if (was_empty) pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* ---- the hooks ---- */

static const char *const rl_names[] = {NULL, "allowed", "rejected", "shadow"};
static const char *const br_names[] = {NULL, "closed", "half_open", "open", "half_open_full"};


/* A NUL-terminated copy of v (cut to cap - 1 bytes) in buf. */
static const char *cstr(char *buf, size_t cap, weft_str_t v)
{
    size_t n = v.len < cap - 1 ? v.len : cap - 1;
    if (n) memcpy(buf, v.base, n);
    buf[n] = 0;
    return buf;
}

/* Whether req has a header that may carry a trace context (traceparent, b3, X-B3-*): a
 * look at each name's length and first bytes, so that the requests of untraced clients skip
 * the extraction's full pass (it clears a state of several hundred bytes and compares
 * names; about a hundred instructions, against this loop's few per header). X-B3-SpanId
 * (11 bytes, like traceparent) is not looked for: without X-B3-TraceId it carries nothing. */
static bool may_carry_context(const weft_http_request_t *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        weft_str_t n = req->headers[i].name;
        if (n.len == 11  ? (n.base[0] | 0x20) == 't'
            : n.len == 2 ? (n.base[0] | 0x20) == 'b' && n.base[1] == '3'
                         : n.len >= 10 && n.len <= 17 && n.base[1] == '-' &&
                               (n.base[2] | 0x20) == 'b' && n.base[3] == '3')
            return true;
    }
    return false;
}

/* A route's own head decision (its tracing block): parent-based, else its ratio and rate;
 * a drop is record-only when the route has tail rules. */
static weft_sampling_t head_decision(const gw_route_t *r, const weft_trace_context_t *parent)
{
    const gw_trace_conf_t *c = &r->trace;
    bool sampled;
    if (parent && !parent->deferred) {
        sampled = (parent->flags & WEFT_TRACE_FLAG_SAMPLED) != 0;
    } else {
        /* the trace starts here: its id is made by weft_span_start_ex, so the ratio is
         * asked on random bits of the same kind (a deferred B3 parent's id is known) */
        uint8_t tid[16];
        if (parent && weft_trace_context_is_valid(parent))
            memcpy(tid, parent->trace_id, 16);
        else
            weft_trace_random_trace_id(tid);
        weft_sampler_t s =
            c->rate > 0 ? weft_sampler_rate_limiting(c->rate) : weft_sampler_ratio(c->ratio);
        s.ratio = c->ratio;
        /* the bucket is the table's one mutable part, atomics only (route.h) */
        s.limiter = (weft_trace_rate_t *)&c->bucket;
        sampled = weft_sampler_should_sample(&s, parent, tid);
    }
    if (sampled) return WEFT_SAMPLING_SAMPLE;
    return c->keep_errors || c->keep_slower_ms ? WEFT_SAMPLING_RECORD_ONLY : WEFT_SAMPLING_DROP;
}

void gw_obs_begin(weft_gateway_t *g, weft_http_request_t *req, const gw_route_t *r, gw_obs_t *o)
{
    /* A tracer without an exporter records nothing: no span, and the client's trace context
     * goes upstream unchanged (the gateway does not take part, as W3C Trace Context lets a
     * hop do), so the upstream's spans hang under the client's, never under a span nobody
     * can see. */
    if (g->tracer && weft_tracer_exports(g->tracer)) {
        weft_trace_context_t parent;
        bool have = may_carry_context(req) &&
                    weft_trace_extract_headers(req->headers, req->nheaders, &parent) == 0;
        const weft_trace_context_t *pp = have ? &parent : NULL;
        weft_sampling_t dec = r && r->trace.on ? head_decision(r, pp) : WEFT_SAMPLING_TRACER;
        o->span = weft_span_start_ex(g->tracer, "gateway", WEFT_SPAN_SERVER, pp, dec);
        o->recording = weft_span_is_recording(o->span);
        o->tail = weft_span_is_record_only(o->span);
        if (o->recording) {
            /* "GET orders": the method and the route's name (OpenTelemetry's "{method}
             * {route}"; the method alone without a route), built only for spans that record */
            char name[WEFT_SPAN_NAME_MAX], buf[1024];
            size_t ml = req->method.len < 16 ? req->method.len : 16;
            memcpy(name, req->method.base, ml);
            name[ml] = 0;
            if (r) snprintf(name + ml, sizeof(name) - ml, " %s", r->name);
            weft_span_set_name(o->span, name);
            weft_span_set_attr_str(o->span, "http.request.method",
                                   cstr(buf, sizeof(buf), req->method));
            weft_span_set_attr_str(o->span, "url.path", cstr(buf, sizeof(buf), req->path));
            weft_span_set_attr_str(o->span, "url.scheme", "http");
            weft_span_set_attr_str(o->span, "client.address",
                                   cstr(buf, sizeof(buf), weft_http_request_peer_ip(req)));
            if (r) {
                weft_span_set_attr_str(o->span, "weft.route", r->name);
                weft_span_set_attr_str(o->span, "http.route", r->path);
            }
        }
    }
    if (g->alog) {
        o->tried = weft_http_request_alloc(req, GW_OBS_TRIED_MAX);
        o->tried_len = 0;
    }
}

void gw_obs_ratelimit(gw_obs_t *o, gw_obs_rl_t v)
{
    o->rl = (uint8_t)v;
}

void gw_obs_breaker(weft_gateway_t *g, gw_obs_t *o, gw_policy_t *p, bool admitted, bool open)
{
    if (!admitted) {
        o->breaker = open ? GW_OBS_BR_OPEN : GW_OBS_BR_HALF_OPEN_FULL;
        return;
    }
    o->breaker = GW_OBS_BR_CLOSED;
    if (!g->alog && !o->recording) return;
    pthread_mutex_lock(&p->mu);
    bool half = weft_breaker_state(p->breaker) == WEFT_BREAKER_HALF_OPEN;
    pthread_mutex_unlock(&p->mu);
    if (half) o->breaker = GW_OBS_BR_HALF_OPEN;
}

void gw_obs_try(gw_obs_t *o, const char *host, uint16_t port, unsigned attempt)
{
    (void)attempt;
    if (o->tries < UINT8_MAX) o->tries++;
    if (!o->tried) return;
    char hp[GW_HOST_MAX + 8];
    int n = snprintf(hp, sizeof(hp), "%s%s:%u", o->tried_len ? " " : "", host, port);
    if (n > 0 && (size_t)o->tried_len + (size_t)n < GW_OBS_TRIED_MAX) {
        memcpy(o->tried + o->tried_len, hp, (size_t)n);
        o->tried_len += (uint16_t)n;
    }
}

void gw_obs_retry(gw_obs_t *o, const char *host, uint16_t port, const char *kind, int status,
                  uint64_t backoff_ms, bool retried)
{
    if (retried && o->retries < UINT8_MAX) o->retries++;
    if (!o->recording) return;
    char up[GW_HOST_MAX + 8], why[16];
    snprintf(up, sizeof(up), "%s:%u", host, port);
    if (status) snprintf(why, sizeof(why), "%d", status);
    weft_attr_t at[4] = {WEFT_ATTR_STR("server.address", up),
                         WEFT_ATTR_STR("weft.retry.reason", status ? why : kind),
                         WEFT_ATTR_INT("weft.retry.attempt", o->retries),
                         WEFT_ATTR_INT("weft.retry.backoff_ms", (int64_t)backoff_ms)};
    if (retried)
        weft_span_add_event(o->span, "retry", at, 4);
    else
        weft_span_add_event(o->span, "retry_budget_exhausted", at, 2);
}

size_t gw_obs_inject(gw_obs_t *o, weft_http_header_t *out)
{
    const weft_trace_context_t *c = weft_span_context(o->span);
    if (!c || weft_traceparent_format(c, o->traceparent) == 0) return 0;
    out[0] = (weft_http_header_t){{"traceparent", 11}, {o->traceparent, WEFT_TRACEPARENT_LEN}};
    if (!c->tracestate_len) return 1;
    out[1] = (weft_http_header_t){{"tracestate", 10}, {c->tracestate, c->tracestate_len}};
    return 2;
}

/* What the gateway did with the request, in one word (docs/gateway.md lists them). */
static const char *decision(const gw_route_t *r, const gw_obs_t *o, unsigned tries)
{
    if (!r) return "no_route";
    if (o->rl == GW_OBS_RL_REJECTED) return "rate_limited";
    if (o->breaker == GW_OBS_BR_OPEN || o->breaker == GW_OBS_BR_HALF_OPEN_FULL)
        return "breaker_open";
    if (o->no_upstream) return "no_upstream";
    if (o->status == 0) return "client_closed";
    if (o->error) return strstr(o->error, "timeout") ? "timeout" : "upstream_error";
    if (tries == 0) return "gateway_error"; /* 414, out of memory */
    if (o->rl == GW_OBS_RL_SHADOW) return "rate_limited_shadow";
    return "proxied";
}

static void put_kv_str(weft_buf_t *b, const char *key, const char *s, size_t n)
{
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_json_put_str(b, s, n);
}

static void put_kv_u64(weft_buf_t *b, const char *key, uint64_t v)
{
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_buf_put_u64(b, v);
}

/* The access log line of a finished request into b. */
static void format_line(weft_buf_t *b, weft_http_request_t *req, const gw_route_t *r,
                        const char *host, uint16_t port, const gw_obs_t *o, const char *dec,
                        int status, uint64_t now_ns)
{
    char ts[40];
    uint64_t wall = weft_wall_ns();
    time_t sec = (time_t)(wall / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03uZ", (unsigned)(wall / 1000000u % 1000u));
    weft_buf_puts(b, "{\"time\":\"");
    weft_buf_puts(b, ts);
    weft_buf_putc(b, '"');
    if (r)
        put_kv_str(b, "route", r->name, strlen(r->name));
    else
        weft_buf_puts(b, ",\"route\":null");
    put_kv_str(b, "method", req->method.base, req->method.len);
    put_kv_str(b, "path", req->path.base, req->path.len > 2048 ? 2048 : req->path.len);
    put_kv_u64(b, "status", (uint64_t)status);
    char ms[32];
    uint64_t d = now_ns > req->start_ns ? now_ns - req->start_ns : 0;
    snprintf(ms, sizeof(ms), "%" PRIu64 ".%03u", d / 1000000u, (unsigned)(d / 1000u % 1000u));
    weft_buf_puts(b, ",\"duration_ms\":");
    weft_buf_puts(b, ms);
    put_kv_u64(b, "bytes_in", o->bytes_in);
    put_kv_u64(b, "bytes_out", o->bytes_out);
    weft_str_t ip = weft_http_request_peer_ip(req);
    put_kv_str(b, "client_ip", ip.base, ip.len);
    if (port) {
        char up[GW_HOST_MAX + 8];
        int n = snprintf(up, sizeof(up), "%s:%u", host, port);
        put_kv_str(b, "upstream", up, n > 0 ? (size_t)n : 0);
    } else {
        weft_buf_puts(b, ",\"upstream\":null");
    }
    weft_buf_puts(b, ",\"tried\":[");
    for (size_t i = 0, s = 0; o->tried && i <= o->tried_len; i++) {
        if (i < o->tried_len && o->tried[i] != ' ') continue;
        if (i > s) {
            if (s) weft_buf_putc(b, ',');
            weft_json_put_str(b, o->tried + s, i - s);
        }
        s = i + 1;
    }
    weft_buf_putc(b, ']');
    put_kv_str(b, "decision", dec, strlen(dec));
    put_kv_u64(b, "retries", o->retries);
    if (o->rl) put_kv_str(b, "ratelimit", rl_names[o->rl], strlen(rl_names[o->rl]));
    if (o->breaker) put_kv_str(b, "breaker", br_names[o->breaker], strlen(br_names[o->breaker]));
    if (o->error)
        put_kv_str(b, "upstream_error", o->error, strlen(o->error));
    else
        weft_buf_puts(b, ",\"upstream_error\":null");
    const weft_trace_context_t *c = weft_span_context(o->span);
    weft_trace_context_t in;
    if (c && weft_trace_context_is_valid(c)) {
        char hex[32];
        weft_trace_hex(c->trace_id, 16, hex);
        put_kv_str(b, "trace_id", hex, 32);
        weft_trace_hex(c->span_id, 8, hex);
        put_kv_str(b, "span_id", hex, 16);
    } else if (!o->span && weft_trace_extract_headers(req->headers, req->nheaders, &in) == 0 &&
               weft_trace_context_is_valid(&in)) {
        /* no span of the gateway's (no exporter): the client's trace, which went upstream */
        char hex[32];
        weft_trace_hex(in.trace_id, 16, hex);
        put_kv_str(b, "trace_id", hex, 32);
        weft_buf_puts(b, ",\"span_id\":null");
    } else {
        weft_buf_puts(b, ",\"trace_id\":null,\"span_id\":null");
    }
    weft_str_t rid = o->request_id;
    if (!rid.len) rid = weft_http_request_header(req, "X-Request-Id");
    if (rid.len)
        put_kv_str(b, "request_id", rid.base, rid.len > 256 ? 256 : rid.len);
    else
        weft_buf_puts(b, ",\"request_id\":null");
    weft_buf_puts(b, "}\n");
}

void gw_obs_end(weft_gateway_t *g, weft_http_request_t *req, const gw_route_t *r, const char *host,
                uint16_t port, gw_obs_t *o)
{
    if (o->done) return;
    o->done = true;
    bool rec = o->recording;
    if (!rec && !g->alog) {
        weft_span_end(o->span);
        o->span = NULL;
        return;
    }
    const char *dec = decision(r, o, o->tries);
    int status = o->status ? o->status : 499; /* nginx's "client closed request" */
    if (o->tail) { /* record-only: the route's tail rules keep it, or it goes unexported */
        const char *why = NULL;
        uint64_t now = weft_now_ns(), took = now > req->start_ns ? now - req->start_ns : 0;
        if (r->trace.keep_errors && (o->status >= 500 || o->error))
            why = "tail-error";
        else if (r->trace.keep_slower_ms && took > r->trace.keep_slower_ms * 1000000u)
            why = "tail-slow";
        if (why) {
            weft_span_keep(o->span);
            weft_span_set_attr_str(o->span, "weft.sampling", why);
        } else {
            rec = false; /* nothing more to write into a span nobody will see */
        }
    }
    if (rec) {
        weft_span_t *s = o->span;
        if (o->status) weft_span_set_attr_int(s, "http.response.status_code", o->status);
        weft_span_set_attr_str(s, "weft.decision", dec);
        if (o->rl) weft_span_set_attr_str(s, "weft.ratelimit", rl_names[o->rl]);
        if (o->breaker) weft_span_set_attr_str(s, "weft.breaker", br_names[o->breaker]);
        weft_span_set_attr_int(s, "weft.retries", o->retries);
        if (port) {
            weft_span_set_attr_str(s, "server.address", host);
            weft_span_set_attr_int(s, "server.port", port);
        }
        if (o->request_id.len) {
            char buf[257];
            weft_span_set_attr_str(s, "weft.request_id", cstr(buf, sizeof(buf), o->request_id));
        }
        if (o->error) {
            weft_span_set_attr_str(s, "error.type", o->error);
            weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, o->error);
        } else if (o->status >= 500) {
            char code[16];
            snprintf(code, sizeof(code), "%d", o->status);
            weft_span_set_attr_str(s, "error.type", code);
            weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, NULL);
        }
    }
    if (g->alog) {
        gw_worker_t *w = weft_host_state(req->loop, g->part);
        if (w) {
            weft_buf_reset(&w->alog);
            format_line(&w->alog, req, r, host, port, o, dec, status, weft_now_ns());
            if (!w->alog.failed)
                gw_alog_write(g->alog, w->alog.p, w->alog.len);
            else
                atomic_fetch_add_explicit(&g->alog->dropped, 1, memory_order_relaxed);
        }
    }
    weft_span_end(o->span); /* after the line, which reads its ids */
    o->span = NULL;
}
