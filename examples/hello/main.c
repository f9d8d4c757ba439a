/*
 * hello - a service built on libweft: the SDK's example and the benchmark subject.
 *
 *   hello --name NAME --port PORT [--host 127.0.0.1] [--workers N] [--log-level info]
 *         [--otlp 127.0.0.1:4318]
 *
 * GET /hello          200 "hello, world\n"
 * GET /hello/:name    200 "hello, NAME\n"
 * POST /echo          200 with the request body (at most 1 MiB, else 413)
 * GET /health, GET /metrics: from the SDK. Every request is counted, timed and traced.
 * With --otlp HOST:PORT the server spans are sent to that OTLP/HTTP
 * receiver (POST /v1/traces, JSON, service.name = --name, more resource attributes from
 * OTEL_RESOURCE_ATTRIBUTES, headers from OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, gzip when
 * OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION=gzip, protobuf when
 * OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=http/protobuf); without it, the OTEL_* variables alone
 * may set an exporter up (weft_otlp_options_from_env), else spans go nowhere.
 * Handlers run on the worker threads and share nothing, so they need no locks.
 */
#include <stdio.h>
#include <stdlib.h>
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

typedef struct hello_conf_s {
    char *name;
    char *host;
    uint64_t port;
    uint64_t workers;
    int log_level;
    bool access_log;
    char *access_log_file;
    weft_conf_addr_t otlp;
} hello_conf_t;

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const weft_conf_option_t hello_options[] = {
    {.key = "name",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(hello_conf_t, name),
     .def = "hello",
     .flag = "name",
     .env = "HELLO_NAME",
     .help = "service name"},
    {.key = "host",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(hello_conf_t, host),
     .def = "127.0.0.1",
     .flag = "host",
     .env = "HELLO_HOST",
     .help = "listen address"},
    {.key = "port",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(hello_conf_t, port),
     .def = "8081",
     .min = 0,
     .max = 65535,
     .flag = "port",
     .env = "HELLO_PORT",
     .help = "listen port (0: any free port)"},
    {.key = "workers",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(hello_conf_t, workers),
     .def = "0",
     .min = 0,
     .max = 256,
     .flag = "workers",
     .env = "HELLO_WORKERS",
     .help = "worker threads (0: one per CPU)"},
    {.key = "log_level",
     .type = WEFT_CONF_ENUM,
     .offset = offsetof(hello_conf_t, log_level),
     .def = "info",
     .choices = log_levels,
     .flag = "log-level",
     .env = "HELLO_LOG_LEVEL",
     .help = "least level logged"},
    {.key = "access_log",
     .type = WEFT_CONF_BOOL,
     .offset = offsetof(hello_conf_t, access_log),
     .def = "false",
     .flag = "access-log",
     .env = "HELLO_ACCESS_LOG",
     .help = "log one line per request (comp=access), whatever the log level"},
    {.key = "access_log_file",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(hello_conf_t, access_log_file),
     .def = "",
     .flag = "access-log-file",
     .env = "HELLO_ACCESS_LOG_FILE",
     .help = "append the access log to this file instead of stderr (turns it on); SIGUSR1 "
             "reopens it"},
    {.key = "otlp",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(hello_conf_t, otlp),
     .def = NULL,
     .flag = "otlp",
     .env = "HELLO_OTLP",
     .help = "send spans to this OTLP/HTTP receiver (host:port)"},
};

/* OTEL_EXPORTER_OTLP_TRACES_<what>, else OTEL_EXPORTER_OTLP_<what>: 0 when unset or a, 1
 * for b, -1 (with a message) for anything else. */
static int otel_choice(const char *what, const char *a, const char *b)
{
    char var[64];
    snprintf(var, sizeof(var), "OTEL_EXPORTER_OTLP_TRACES_%s", what);
    const char *v = getenv(var);
    if (!v || !v[0]) {
        snprintf(var, sizeof(var), "OTEL_EXPORTER_OTLP_%s", what);
        v = getenv(var);
    }
    if (!v || !v[0] || strcmp(v, a) == 0) return 0;
    if (strcmp(v, b) == 0) return 1;
    fprintf(stderr, "hello: %s: expected %s or %s\n", var, a, b);
    return -1;
}

int main(int argc, char **argv)
{
    hello_conf_t hc;
    weft_http_conf_t http;
    memset(&hc, 0, sizeof(hc));
    weft_conf_section_t secs[] = {
        {.name = "hello",
         .opts = hello_options,
         .n = sizeof(hello_options) / sizeof(hello_options[0]),
         .target = &hc},
        weft_http_conf_section(&http), /* http.* limits, from a --config file */
    };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: hello [flags]\n\n");
            weft_conf_help(secs, 2, stdout);
            return 0;
        }
    }
    weft_conf_t conf;
    char err[512];
    if (weft_conf_load(&conf, secs, 2, NULL, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "hello: %s\n", err);
        return 2;
    }
    weft_log_set_level((weft_log_level_t)hc.log_level);

    weft_service_options_t o;
    weft_service_options_init(&o);
    o.name = hc.name;
    o.version = WEFT_VERSION;
    o.host = hc.host;
    o.port = (uint16_t)hc.port;
    o.workers = (unsigned)hc.workers;
    o.access_log = hc.access_log;
    o.access_log_file = hc.access_log_file;
    weft_http_conf_apply(&http, &o.http);
    if (hc.otlp.host[0]) {
        weft_otlp_options_t oo;
        weft_otlp_options_init(&oo);
        oo.host = hc.otlp.host;
        oo.port = hc.otlp.port;
        oo.service_name = hc.name;
        oo.service_version = WEFT_VERSION;
        /* what an OpenTelemetry SDK reads even when code sets its exporter up */
        oo.resource_attributes = getenv("OTEL_RESOURCE_ATTRIBUTES");
        oo.headers = getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
        if (!oo.headers) oo.headers = getenv("OTEL_EXPORTER_OTLP_HEADERS");
        int z = otel_choice("COMPRESSION", "none", "gzip");
        int pr = otel_choice("PROTOCOL", "http/json", "http/protobuf");
        if (z < 0 || pr < 0) {
            weft_conf_free(&conf);
            return 2;
        }
        oo.gzip = z == 1;
        oo.protocol = pr == 1 ? WEFT_OTLP_HTTP_PROTOBUF : WEFT_OTLP_HTTP_JSON;
        o.exporter = weft_otlp_exporter_new(&oo, err, sizeof(err));
        if (!o.exporter) {
            fprintf(stderr, "hello: --otlp: %s\n", err);
            weft_conf_free(&conf);
            return 2;
        }
    }
    weft_service_t *svc;
    int rc = weft_service_new(&o, &svc);
    if (rc != 0) {
        fprintf(stderr, "hello: %s\n", weft_strerror(rc));
        weft_conf_free(&conf);
        return 2;
    }
    weft_service_route(svc, "GET", "/hello", hello, NULL);
    weft_service_route(svc, "GET", "/hello/:name", hello_name, NULL);
    weft_http_route_t r = {.handler = echo, .max_body = 1 << 20};
    weft_service_route_ex(svc, "POST", "/echo", &r);
    rc = weft_service_run(svc);
    weft_service_free(svc);
    weft_conf_free(&conf);
    return rc == 0 ? 0 : 1;
}
