/*
 * hello - a service built on libweft: the SDK's example and the benchmark subject.
 *
 *   hello [--name hello] [--port 8081] [--host 127.0.0.1] [--workers N] [--log-level info]
 *         [--access-log] [--access-log-file FILE] [--otlp 127.0.0.1:4318] [--config FILE]
 *         [--registry http://127.0.0.1:8500] [--registry-check-interval 10s] ...
 *         [--fail-rate 0.2]
 *
 * GET /hello          200 "hello, world\n"
 * GET /hello/:name    200 "hello, NAME\n"
 * POST /echo          200 with the request body (at most 1 MiB, else 413)
 * GET /call/SERVICE/PATH
 *                     calls SERVICE by name at /PATH (with this request's query) through the
 *                     worker's discovery client (weft/discovery.h): the callee's status and
 *                     body, its Content-Type, and X-Weft-Instance: the ID of the instance
 *                     that answered. 503 when the service has no passing instance (or hello
 *                     has no --registry), 504 when the call timed out, 502 for other
 *                     failures; their body is JSON: {"error", "service", "instance"}
 * GET /broadcast/SERVICE/PATH
 *                     calls /PATH on every passing instance of SERVICE ("*": of every
 *                     service): 200 with a JSON array, one element per instance, ordered
 *                     by service and ID: {"service", "instance", "address", "port",
 *                     "status", "body"}, or "error" (ECONNREFUSED, ETIMEDOUT, ...) in place
 *                     of status and body; 503 {"error"} when there is no instance at all
 * GET /health, GET /metrics: from the SDK. Every request is counted, timed and traced.
 * --fail-rate R (0 to 1, default 0) makes hello flaky on purpose, for demos and tests of
 * what watches it (`weft demo` starts one such instance): each request to the routes above
 * is answered 500 {"error":"injected failure","fail_rate":R} with probability R, before its
 * handler runs; /health and /metrics never fail, so the registry's check keeps it passing
 * and only the callers see the failures. It is hello's own flag (not the SDK's): it is
 * taken out of argv before the SDK reads the rest, and --help lists it after the SDK's.
 * With --registry URL, hello registers itself with that registry (weft serve's API) once it
 * listens, with an HTTP check of its /health, and deregisters on SIGTERM before it exits.
 * The flags, their HELLO_* variables, the YAML file (http.* limits too) and --help all come
 * from one SDK call, weft_service_options_from_args (weft/service.h); a bad value exits
 * with status 2 and one line saying where it came from. With --otlp HOST:PORT the server
 * spans go to that OTLP/HTTP receiver (POST /v1/traces, service.name = --name, with the
 * OTEL_EXPORTER_OTLP_* headers, compression and protocol); without it, the OTEL_* variables
 * alone may set an exporter up (weft_otlp_options_from_env), else spans go nowhere.
 * Handlers run on the worker threads and share nothing, so they need no locks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft/weft.h"

static weft_service_t *svc;

/* --fail-rate: the share of requests answered 500 on purpose; set before the workers
 * start, only read afterwards. */
static double fail_rate;

/* Whether this request fails on purpose (then it has been answered 500). Each worker
 * thread draws from its own xorshift generator, seeded from the clock and its stack's
 * address, so workers need no lock and no two draw the same sequence. */
static bool injected_failure(weft_http_request_t *req)
{
    static _Thread_local uint64_t x;
    if (fail_rate <= 0) return false;
    if (x == 0) x = (weft_now_ns() ^ (uint64_t)(uintptr_t)&x) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if ((double)(x >> 11) / 9007199254740992.0 >= fail_rate) return false; /* [0, 1) */
    char body[80];
    int n = snprintf(body, sizeof(body), "{\"error\":\"injected failure\",\"fail_rate\":%g}\n",
                     fail_rate);
    weft_http_respond(req, 500, "application/json", body, (size_t)n);
    return true;
}

static void hello(weft_http_request_t *req, void *arg)
{
    if (injected_failure(req)) return;
    static const char body[] = "hello, world\n";
    weft_http_respond(req, 200, "text/plain", body, sizeof(body) - 1);
}

static void hello_name(weft_http_request_t *req, void *arg)
{
    if (injected_failure(req)) return;
    weft_str_t name = weft_http_request_param(req, "name");
    size_t cap = name.len + 16;
    char *out = weft_http_request_alloc(req, cap);
    if (!out) {
        weft_http_respond(req, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    memcpy(out, "hello, ", 7);
    memcpy(out + 7, name.base, name.len);
    out[7 + name.len] = '\n';
    weft_http_respond(req, 200, "text/plain", out, name.len + 8);
}

static void echo(weft_http_request_t *req, void *arg)
{
    if (injected_failure(req)) return;
    weft_str_t ct = weft_http_request_header(req, "content-type");
    char type[128] = "application/octet-stream";
    if (ct.base && ct.len < sizeof(type)) {
        memcpy(type, ct.base, ct.len);
        type[ct.len] = 0;
    }
    weft_http_respond(req, 200, type, req->body.base, req->body.len);
}

/* ---- calling services by name ---- */

/* Appends the n bytes at s to out (at most cap bytes in all, NUL-terminated) as a JSON
 * string; returns the new length. Control characters, quotes and backslashes are escaped;
 * other bytes are copied (hello's bodies are text). */
static size_t json_str(char *out, size_t len, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (len + 3 > cap) return len;
    out[len++] = '"';
    for (size_t i = 0; i < n && len + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + len, "\\u00", 4);
            out[len + 4] = hex[c >> 4];
            out[len + 5] = hex[c & 15];
            len += 6;
        } else {
            out[len++] = (char)c;
        }
    }
    out[len++] = '"';
    out[len] = 0;
    return len;
}

static int error_status(int err)
{
    if (err == WEFT_ENOENT) return 503;
    if (err == WEFT_ETIMEDOUT || err == WEFT_ETIMEDOUT_CONNECT || err == WEFT_ETIMEDOUT_HEAD ||
        err == WEFT_ETIMEDOUT_BODY)
        return 504;
    return err == WEFT_ECANCELED ? 503 : 502;
}

static void respond_error(weft_http_request_t *req, int status, int err, const char *service,
                          const char *instance)
{
    char body[600];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"error\":\"%s\",\"service\":",
                                err ? weft_err_name(err) : "no registry (start with --registry)");
    n = json_str(body, n, sizeof(body), service, strlen(service));
    n += (size_t)snprintf(body + n, sizeof(body) - n, ",\"instance\":");
    n = json_str(body, n, sizeof(body), instance, strlen(instance));
    n += (size_t)snprintf(body + n, sizeof(body) - n, "}\n");
    weft_http_respond(req, status, "application/json", body, n);
}

/* The request's SERVICE (NUL-terminated, in its arena) and the target to send: the path
 * after /call/SERVICE as sent (not decoded), and the query. NULL when out of memory. */
static const char *target_of(weft_http_request_t *req, const char **service)
{
    weft_str_t name = weft_http_request_param(req, "service");
    char *sv = weft_http_request_alloc(req, name.len + 1);
    const char *p = req->path.base, *end = p + req->path.len;
    p = memchr(p + 1, '/', (size_t)(end - p - 1));            /* after /call or /broadcast */
    p = p ? memchr(p + 1, '/', (size_t)(end - p - 1)) : NULL; /* after /SERVICE */
    size_t rest = p ? (size_t)(end - p) : 0;
    char *t = weft_http_request_alloc(req, rest + req->query.len + 3);
    if (!sv || !t) return NULL;
    memcpy(sv, name.base, name.len);
    sv[name.len] = 0;
    *service = sv;
    size_t n = 0;
    if (rest)
        memcpy(t, p, rest), n = rest;
    else
        t[n++] = '/';
    if (req->query.len) {
        t[n++] = '?';
        memcpy(t + n, req->query.base, req->query.len);
        n += req->query.len;
    }
    t[n] = 0;
    return t;
}

/* A held request whose client left, or the shutdown: the call ends now (503). */
static void on_call_event(weft_http_request_t *req, weft_http_event_t ev)
{
    if (ev == WEFT_HTTP_EVENT_TIMER || !req->data) return;
    weft_discovery_cancel(req->data); /* its callback answers */
}

static void on_called(const weft_discovery_result_t *r, void *arg)
{
    weft_http_request_t *req = arg;
    req->data = NULL;
    if (r->err) {
        respond_error(req, error_status(r->err), r->err, r->service, r->instance);
        return;
    }
    const char *type = NULL;
    char tbuf[128];
    for (size_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].name.len == 12 &&
            strncasecmp(r->headers[i].name.base, "content-type", 12) == 0 &&
            r->headers[i].value.len < sizeof(tbuf)) {
            memcpy(tbuf, r->headers[i].value.base, r->headers[i].value.len);
            tbuf[r->headers[i].value.len] = 0;
            type = tbuf;
        }
    weft_http_response_header(req, "X-Weft-Instance", r->instance);
    weft_http_respond(req, r->status, type, r->body, r->body_len);
}

static void on_broadcast(int err, const weft_discovery_result_t *r, size_t n, void *arg);

/* /call and /broadcast: the service and path from the request, then one call by name or
 * one broadcast through the worker's discovery client; the answer comes in done. */
static void by_name(weft_http_request_t *req, bool all)
{
    weft_discovery_t *d = weft_service_discovery(svc, req->loop);
    const char *service = "", *target = target_of(req, &service);
    if (!target) {
        weft_http_respond(req, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    if (!d) {
        respond_error(req, 503, 0, service, "");
        return;
    }
    /* parent: the call's CLIENT span hangs under this request's server span, and the
     * callee's under it (traceparent) */
    weft_discovery_req_t r = {
        .service = service, .target = target, .parent = weft_service_span(req)};
    weft_discovery_call_t *call;
    int err = all ? weft_discovery_broadcast(d, &r, on_broadcast, req, &call)
                  : weft_discovery_call(d, &r, on_called, req, &call);
    if (err) {
        respond_error(req, err == WEFT_EINVAL ? 400 : 503, err, service, "");
        return;
    }
    req->data = call;
    req->on_event = on_call_event;
}

static void call_by_name(weft_http_request_t *req, void *arg)
{
    if (injected_failure(req)) return;
    (void)arg;
    by_name(req, false);
}

static void on_broadcast(int err, const weft_discovery_result_t *r, size_t n, void *arg)
{
    weft_http_request_t *req = arg;
    req->data = NULL;
    if (err) {
        respond_error(req, error_status(err), err, "", "");
        return;
    }
    size_t cap = 64;
    for (size_t i = 0; i < n; i++)
        cap += 160 + 2 * strlen(r[i].service) + 2 * strlen(r[i].instance) + strlen(r[i].address) +
               6 * r[i].body_len;
    char *out = weft_http_request_alloc(req, cap);
    if (!out) {
        weft_http_respond(req, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    size_t len = 0;
    out[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(out + len, cap - len, "%s{\"service\":", i ? "," : "");
        len = json_str(out, len, cap, r[i].service, strlen(r[i].service));
        len += (size_t)snprintf(out + len, cap - len, ",\"instance\":");
        len = json_str(out, len, cap, r[i].instance, strlen(r[i].instance));
        len += (size_t)snprintf(out + len, cap - len, ",\"address\":");
        len = json_str(out, len, cap, r[i].address, strlen(r[i].address));
        len += (size_t)snprintf(out + len, cap - len, ",\"port\":%u,", r[i].port);
        if (r[i].err) {
            len += (size_t)snprintf(out + len, cap - len, "\"error\":\"%s\"}",
                                    weft_err_name(r[i].err));
            continue;
        }
        len += (size_t)snprintf(out + len, cap - len, "\"status\":%d,\"body\":", r[i].status);
        len = json_str(out, len, cap, r[i].body, r[i].body_len);
        out[len++] = '}';
    }
    out[len++] = ']';
    out[len++] = '\n';
    weft_http_respond(req, 200, "application/json", out, len);
}

static void broadcast(weft_http_request_t *req, void *arg)
{
    if (injected_failure(req)) return;
    (void)arg;
    by_name(req, true);
}

/* Takes --fail-rate R (or --fail-rate=R) out of argv (argc updated), into fail_rate.
 * Returns 0, or -1 with a line in err (a bad value: the caller exits with status 2). */
static int take_fail_rate(int *argc, char **argv, char *err, size_t errlen)
{
    static const char flag[] = "--fail-rate";
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--") == 0) { /* the SDK's: the rest is not flags */
            while (i < *argc) argv[out++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], flag) == 0) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "%s: expected a value", flag);
                return -1;
            }
            v = argv[++i];
        } else if (strncmp(argv[i], flag, sizeof(flag) - 1) == 0 &&
                   argv[i][sizeof(flag) - 1] == '=') {
            v = argv[i] + sizeof(flag);
        } else {
            argv[out++] = argv[i];
            continue;
        }
        char *end;
        errno = 0;
        double r = strtod(v, &end);
        if (!*v || *end || errno || !(r >= 0 && r <= 1)) {
            snprintf(err, errlen, "%s: expected a number from 0 to 1, got \"%.64s\"", flag, v);
            return -1;
        }
        fail_rate = r;
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    weft_service_options_t o;
    weft_service_options_init(&o);
    o.name = "hello"; /* the defaults of --name and --port; variables HELLO_* */
    o.version = WEFT_VERSION;
    o.port = 8081;
    weft_service_settings_t *settings;
    char err[512];
    if (take_fail_rate(&argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "hello: %s\n", err);
        return 2;
    }
    int rc = weft_service_options_from_args(&o, argc, argv, &settings, err, sizeof(err));
    if (rc != 0) { /* 1: --help was printed */
        if (rc < 0)
            fprintf(stderr, "hello: %s\n", err);
        else
            printf("\nhello's own flag (not from the SDK; no key or variable):\n"
                   "  --fail-rate number           answer this share of the requests to /hello,\n"
                   "                               /echo, /call and /broadcast 500 on purpose\n"
                   "                               (/health and /metrics never fail)\n"
                   "                                 default 0, range 0..1\n");
        return rc < 0 ? 2 : 0;
    }
    if ((rc = weft_service_new(&o, &svc)) != 0) {
        fprintf(stderr, "hello: %s\n", weft_strerror(rc));
        weft_service_settings_free(settings);
        return 2;
    }
    weft_service_route(svc, "GET", "/hello", hello, NULL);
    weft_service_route(svc, "GET", "/hello/:name", hello_name, NULL);
    weft_http_route_t r = {.handler = echo, .max_body = 1 << 20};
    weft_service_route_ex(svc, "POST", "/echo", &r);
    weft_service_route(svc, "GET", "/call/:service/*path", call_by_name, NULL);
    weft_service_route(svc, "GET", "/broadcast/:service/*path", broadcast, NULL);
    rc = weft_service_run(svc);
    weft_service_free(svc);
    weft_service_settings_free(settings);
    return rc == 0 ? 0 : 1;
}
