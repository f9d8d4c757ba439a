/*
 * hello - a service built on libweft: the SDK's example and the benchmark subject.
 *
 *   hello [--name hello] [--port 8081] [--host 127.0.0.1] [--workers N] [--log-level info]
 *         [--access-log] [--access-log-file FILE] [--otlp 127.0.0.1:4318] [--config FILE]
 *
 * GET /hello          200 "hello, world\n"
 * GET /hello/:name    200 "hello, NAME\n"
 * POST /echo          200 with the request body (at most 1 MiB, else 413)
 * GET /health, GET /metrics: from the SDK. Every request is counted, timed and traced.
 * The flags, their HELLO_* variables, the YAML file (http.* limits too) and --help all come
 * from one SDK call, weft_service_options_from_args (weft/service.h); a bad value exits
 * with status 2 and one line saying where it came from. With --otlp HOST:PORT the server
 * spans go to that OTLP/HTTP receiver (POST /v1/traces, service.name = --name, with the
 * OTEL_EXPORTER_OTLP_* headers, compression and protocol); without it, the OTEL_* variables
 * alone may set an exporter up (weft_otlp_options_from_env), else spans go nowhere.
 * Handlers run on the worker threads and share nothing, so they need no locks.
 */
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"

static void hello(weft_http_request_t *req, void *arg)
{
    static const char body[] = "hello, world\n";
    weft_http_respond(req, 200, "text/plain", body, sizeof(body) - 1);
}

static void hello_name(weft_http_request_t *req, void *arg)
{
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
    weft_str_t ct = weft_http_request_header(req, "content-type");
    char type[128] = "application/octet-stream";
    if (ct.base && ct.len < sizeof(type)) {
        memcpy(type, ct.base, ct.len);
        type[ct.len] = 0;
    }
    weft_http_respond(req, 200, type, req->body.base, req->body.len);
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
    int rc = weft_service_options_from_args(&o, argc, argv, &settings, err, sizeof(err));
    if (rc != 0) { /* 1: --help was printed */
        if (rc < 0) fprintf(stderr, "hello: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    weft_service_t *svc;
    if ((rc = weft_service_new(&o, &svc)) != 0) {
        fprintf(stderr, "hello: %s\n", weft_strerror(rc));
        weft_service_settings_free(settings);
        return 2;
    }
    weft_service_route(svc, "GET", "/hello", hello, NULL);
    weft_service_route(svc, "GET", "/hello/:name", hello_name, NULL);
    weft_http_route_t r = {.handler = echo, .max_body = 1 << 20};
    weft_service_route_ex(svc, "POST", "/echo", &r);
    rc = weft_service_run(svc);
    weft_service_free(svc);
    weft_service_settings_free(settings);
    return rc == 0 ? 0 : 1;
}
