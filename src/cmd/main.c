/*
 * main.c - the weft command: `weft serve`, `weft version`, `weft config-docs`, help, and
 * the client commands of the API that `weft serve` runs: the registry's (`weft services`,
 * `instances`, `register`, `deregister`, `checks`: cli_registry.c) and the trace store's
 * (`weft traces`, `trace`: cli_traces.c), both through cli.c's frame; and `weft demo`
 * (demo.c), which runs `weft serve` with example services and traffic.
 *
 * `weft serve` runs the parts of the platform in one process. Today that is the HTTP API
 * (`/health`, `/metrics`, `/v1/status/leader`), built on the SDK's service so that weft's
 * own API is served, counted and traced exactly like a user's service; the registry,
 * gateway and collector attach to it in later issues. Its configuration is the union of the
 * modules' declaration tables (this file's, and the HTTP engine's in src/http/conf.c), so one table
 * per module drives the YAML file, the environment, the flags, `--help` and docs/config.md.
 *
 * Exit status: 0 after a clean shutdown, 1 on a runtime failure (a port in use), 2 on a
 * usage or configuration error. The client commands: 0 done, 1 the API answered an error
 * or could not be reached, 2 a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "cmd/demo.h"
#include "collector/collector.h"
#include "gateway/gateway.h"
#include "registry/registry.h"
#include "ui/ui.h"
#include "weft/weft.h"

typedef struct serve_conf_s {
    uint64_t workers;
    int log_level;
    bool access_log;
    char *access_log_file;
    char *data_dir;
    weft_conf_addr_t api, gateway, otlp, zipkin;
    const weft_conf_node_t *routes, *gw_access_log;
    uint64_t max_tunnels;
    bool tracing;
    double sample_ratio;
    double sample_rate;
    bool history;
    uint64_t history_routes, history_upstreams;
} serve_conf_t;

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const weft_conf_option_t serve_options[] = {
    {.key = "workers",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(serve_conf_t, workers),
     .def = "0",
     .min = 0,
     .max = WEFT_WORKERS_MAX,
     .flag = "workers",
     .env = "WEFT_WORKERS",
     .help = "worker threads serving HTTP (0: one per CPU)"},
    {.key = "log_level",
     .type = WEFT_CONF_ENUM,
     .offset = offsetof(serve_conf_t, log_level),
     .def = "info",
     .choices = log_levels,
     .flag = "log-level",
     .env = "WEFT_LOG_LEVEL",
     .help = "least level logged (logfmt on stderr)"},
    {.key = "access_log",
     .type = WEFT_CONF_BOOL,
     .offset = offsetof(serve_conf_t, access_log),
     .def = "false",
     .flag = "access-log",
     .env = "WEFT_ACCESS_LOG",
     .help = "log one line per request (comp=access), whatever the log level"},
    {.key = "access_log_file",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(serve_conf_t, access_log_file),
     .def = "",
     .flag = "access-log-file",
     .env = "WEFT_ACCESS_LOG_FILE",
     .help = "append the access log to this file instead of stderr (turns it on); SIGUSR1 "
             "reopens it"},
    {.key = "data_dir",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(serve_conf_t, data_dir),
     .def = "./weft-data",
     .flag = "data-dir",
     .env = "WEFT_DATA_DIR",
     .help = "directory for persistent state (created if missing)"},
    {.key = "api.listen",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(serve_conf_t, api),
     .resolve = true,
     .def = "127.0.0.1:8500",
     .flag = "api",
     .env = "WEFT_API",
     .help = "HTTP API address (Consul's port: Consul clients work unchanged)"},
    {.key = "gateway.listen",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(serve_conf_t, gateway),
     .resolve = true,
     .def = "0.0.0.0:8080",
     .flag = "gateway",
     .env = "WEFT_GATEWAY",
     .help = "gateway listener"},
    {.key = "gateway.routes",
     .type = WEFT_CONF_TREE,
     .offset = offsetof(serve_conf_t, routes),
     .help = "the gateway's routes, in order (a list; see docs/gateway.md)"},
    {.key = "gateway.max_tunnels",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(serve_conf_t, max_tunnels),
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .flag = "gateway-max-tunnels",
     .env = "WEFT_GATEWAY_MAX_TUNNELS",
     .help = "open WebSocket (upgrade) tunnels through the gateway at once, all workers; "
             "past it an upgrade request gets 503"},
    {.key = "gateway.access_log",
     .type = WEFT_CONF_TREE,
     .offset = offsetof(serve_conf_t, gw_access_log),
     .help = "the gateway's JSON access log, {path: FILE} (\"-\": standard output); off "
             "when absent"},
    {.key = "otlp.listen",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(serve_conf_t, otlp),
     .resolve = true,
     .def = "127.0.0.1:4318",
     .flag = "otlp",
     .env = "WEFT_OTLP",
     .help = "the collector's OTLP/HTTP span ingest (POST /v1/traces)"},
    {.key = "zipkin.listen",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(serve_conf_t, zipkin),
     .resolve = true,
     .def = "127.0.0.1:9411",
     .flag = "zipkin",
     .env = "WEFT_ZIPKIN",
     .help = "the collector's Zipkin v2 span ingest (POST /api/v2/spans) and query API"},
    {.key = "tracing.enabled",
     .type = WEFT_CONF_BOOL,
     .offset = offsetof(serve_conf_t, tracing),
     .def = "true",
     .env = "WEFT_TRACING",
     .help = "weft traces its own requests (the gateway's and the API's) into its trace "
             "store; false: no spans are made (trace context is still passed on)"},
    {.key = "tracing.sample_ratio",
     .type = WEFT_CONF_DOUBLE,
     .offset = offsetof(serve_conf_t, sample_ratio),
     .def = "1",
     .min = 0,
     .max = 1,
     .flag = "trace-sample-ratio",
     .env = "WEFT_TRACE_SAMPLE_RATIO",
     .help = "share of the traces that start at weft that are kept (head sampling, "
             "parent-based: a request that carries a sampling decision keeps it)"},
    {.key = "tracing.sample_rate",
     .type = WEFT_CONF_DOUBLE,
     .offset = offsetof(serve_conf_t, sample_rate),
     .def = "100",
     .min = 0,
     .max = 1e9,
     .flag = "trace-sample-rate",
     .env = "WEFT_TRACE_SAMPLE_RATE",
     .help = "at most this many new traces a second start at weft (head sampling after "
             "sample_ratio, parent-based; the gateway's routes with a tracing block each "
             "count their own): a gateway at 50,000 requests/s stores 100 traces a second, "
             "not 50,000; 0: no cap"},
    {.key = "history.enabled",
     .type = WEFT_CONF_BOOL,
     .offset = offsetof(serve_conf_t, history),
     .def = "true",
     .env = "WEFT_HISTORY",
     .help = "keep the gateway's last 15 minutes per route and upstream at one sample a "
             "second in memory, for the dashboard (GET /v1/weft/history)"},
    {.key = "history.max_routes",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(serve_conf_t, history_routes),
     .def = "64",
     .min = 1,
     .max = 4096,
     .env = "WEFT_HISTORY_MAX_ROUTES",
     .help = "routes the history tracks at once (28.8 KB each); more are left out and "
             "counted"},
    {.key = "history.max_upstreams",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(serve_conf_t, history_upstreams),
     .def = "128",
     .min = 1,
     .max = 4096,
     .env = "WEFT_HISTORY_MAX_UPSTREAMS",
     .help = "upstreams (a route's own breaker, each instance) the history tracks at once "
             "(18 KB each); more are left out and counted"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "weft %s - service registry, gateway, tracing and metrics in one binary\n\n"
            "usage: weft <command> [flags]\n\n"
            "commands:\n"
            "  serve                     run the platform (see `weft serve --help`)\n"
            "  demo                      weft serve with example services and traffic\n"
            "  version                   print the version\n"
            "  config-docs               print the configuration reference (Markdown)\n"
            "  help [COMMAND]            this text, or a command's (as COMMAND --help)\n",
            WEFT_VERSION);
    weft__cli_usage(f);
    fprintf(f, "\n`weft COMMAND --help` tells more; the API is --api, $WEFT_API_ADDR,\n"
               "$CONSUL_HTTP_ADDR or http://127.0.0.1:8500.\n");
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (strlen(path) >= sizeof(tmp)) {
        snprintf(err, errlen, "data_dir: path too long");
        return -1;
    }
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST) goto fail;
        *p = '/';
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) goto fail;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "data_dir: cannot create %s: %s", path, strerror(errno));
    return -1;
}

/* What a reload of the gateway needs to read the configuration again: the arguments `weft
 * serve` was started with (so the same file, environment and flags, in the same order). */
typedef struct reload_src_s {
    int argc;
    char **argv;
} reload_src_t;

/* weft serve's settings and the sections that read them (its own, http.*, the registry's):
 * one place for the start and for reloads, so that both read the file the same way. */
typedef struct serve_confs_s {
    serve_conf_t sc;
    weft_http_conf_t hc;
    weft_registry_conf_t rc;
    weft_collector_conf_t kc;
    weft_conf_section_t secs[4];
} serve_confs_t;

static void serve_confs_init(serve_confs_t *c)
{
    memset(c, 0, sizeof(*c));
    c->secs[0] = (weft_conf_section_t){
        .name = "weft", .opts = serve_options, .n = N(serve_options), .target = &c->sc};
    c->secs[1] = weft_http_conf_section(&c->hc);
    c->secs[2] = weft_registry_conf_section(&c->rc);
    c->secs[3] = weft_collector_conf_section(&c->kc);
}

/* The gateway's reload function (gateway.h): the whole configuration loaded again, exactly
 * as at the start, so that a mistake anywhere in the file is refused with its position;
 * only gateway.routes is taken from it (the other settings need a restart). */
static int reload_routes(void *arg, gw_route_t **routes, size_t *n, char *err, size_t errlen)
{
    const reload_src_t *src = arg;
    serve_confs_t cf;
    serve_confs_init(&cf);
    weft_conf_t conf;
    int rc = weft_conf_load(&conf, cf.secs, N(cf.secs), NULL, src->argc, src->argv, err, errlen);
    if (rc != 0) return rc;
    if (!conf.file) {
        snprintf(err, errlen,
                 "weft serve was started without a configuration file (--config): "
                 "there is nothing to read again");
        rc = WEFT_EINVAL;
    } else {
        rc = weft_gateway_routes_compile(cf.sc.routes, routes, n, err, errlen);
        if (rc == 0)
            weft_gateway_routes_tracing(*routes, *n, cf.sc.sample_ratio, cf.sc.sample_rate);
    }
    weft_conf_free(&conf);
    return rc;
}

/* Whether OpenTelemetry's variables say where weft's own spans go (or that they go
 * nowhere): then they decide, as before the collector (the SDK reads them), and the
 * collector's store gets other clients' spans only. */
static bool otel_env_exports(void)
{
    static const char *const vars[] = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER",
                                       "OTEL_SDK_DISABLED"};
    for (size_t i = 0; i < N(vars); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return true;
    }
    return false;
}

static int serve(int argc, char **argv)
{
    serve_confs_t cf;
    serve_confs_init(&cf);
    serve_conf_t *sc = &cf.sc; /* the settings of its own */
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: weft serve [--config FILE] [flags]\n\n"
                   "Settings come from the defaults, then FILE (YAML), then the environment,\n"
                   "then flags. Keys without a flag are set in the file.\n\n");
            weft_conf_help(cf.secs, N(cf.secs), stdout);
            return 0;
        }
    }
    weft_conf_t conf;
    char err[1024];
    if (weft_conf_load(&conf, cf.secs, N(cf.secs), file, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft: %s\n", err);
        return 2;
    }
    weft_log_set_level((weft_log_level_t)sc->log_level);
    if (make_dir(sc->data_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft: %s\n", err);
        weft_conf_free(&conf);
        return 2;
    }

    weft_service_options_t o;
    weft_service_options_init(&o);
    o.name = "weft";
    o.version = WEFT_VERSION;
    o.host = sc->api.host;
    o.port = sc->api.port;
    o.workers = (unsigned)sc->workers;
    o.access_log = sc->access_log;
    o.access_log_file = sc->access_log_file;
    weft_http_conf_apply(&cf.hc, &o.http);
    /* weft's own spans go to its trace store, through a sink the collector is attached to
     * once it exists (it needs the service's host) */
    o.tracing = sc->tracing;
    o.sample_ratio = sc->sample_ratio;
    o.sample_rate = sc->sample_rate;
    weft_collector_sink_t *sink = weft_collector_sink_new();
    weft_span_exporter_t sink_exp;
    if (sink && sc->tracing && !otel_env_exports()) {
        sink_exp = weft_collector_sink_exporter(sink);
        o.exporter = &sink_exp;
    }
    weft_service_t *svc;
    int rc = sink ? weft_service_new(&o, &svc) : WEFT_ENOMEM;
    if (rc != 0) {
        fprintf(stderr, "weft: cannot start: %s\n", weft_strerror(rc));
        weft_collector_sink_free(sink);
        weft_conf_free(&conf);
        return 2;
    }
    weft_registry_options_t ro = {
        .conf = &cf.rc, .data_dir = sc->data_dir, .api_host = sc->api.host, .dns = true};
    weft_registry_t *reg;
    rc = weft_registry_new(svc, &ro, &reg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "weft: %s\n", err);
        weft_service_free(svc);
        weft_collector_sink_free(sink);
        weft_conf_free(&conf);
        return 2;
    }
    gw_route_t *routes;
    size_t nroutes;
    const char *gw_alog;
    /* the access log first: it allocates nothing, so a bad one leaks no routes */
    if (weft_gateway_access_log_compile(sc->gw_access_log, &gw_alog, err, sizeof(err)) != 0 ||
        weft_gateway_routes_compile(sc->routes, &routes, &nroutes, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft: %s\n", err);
        weft_registry_free(reg);
        weft_service_free(svc);
        weft_collector_sink_free(sink);
        weft_conf_free(&conf);
        return 2;
    }
    weft_gateway_routes_tracing(routes, nroutes, sc->sample_ratio, sc->sample_rate);
    weft_http_server_options_t gso;
    weft_http_server_options_init(&gso);
    weft_http_conf_apply(&cf.hc, &gso);
    weft_gateway_options_t go = {.host = sc->gateway.host,
                                 .port = sc->gateway.port,
                                 .http = &gso,
                                 .registry = reg,
                                 .metrics = weft_service_metrics(svc),
                                 .max_tunnels = (unsigned)sc->max_tunnels,
                                 .routes = routes,
                                 .nroutes = nroutes,
                                 .tracer = weft_service_tracer(svc),
                                 .access_log = gw_alog};
    reload_src_t src = {argc, argv};
    if (conf.file) {
        go.reload = reload_routes;
        go.reload_arg = &src;
    }
    weft_gateway_t *gw;
    rc = weft_gateway_new(weft_service_host(svc), &go, &gw, err, sizeof(err));
    gw_history_options_t ho = {.enabled = sc->history,
                               .max_routes = (size_t)sc->history_routes,
                               .max_upstreams = (size_t)sc->history_upstreams};
    if (rc == 0 && ((rc = weft_gateway_admin(gw, svc, cf.rc.acl_token, err, sizeof(err))) != 0 ||
                    (rc = weft_gateway_history(gw, svc, &ho, err, sizeof(err))) != 0))
        weft_gateway_free(gw);
    if (rc == 0 && (rc = weft_ui_register(svc, err, sizeof(err))) != 0) weft_gateway_free(gw);
    weft_collector_t *col = NULL;
    if (rc == 0) {
        weft_collector_options_t ko = {.conf = &cf.kc,
                                       .data_dir = sc->data_dir,
                                       .otlp_host = sc->otlp.host,
                                       .otlp_port = sc->otlp.port,
                                       .zipkin_host = sc->zipkin.host,
                                       .zipkin_port = sc->zipkin.port,
                                       .http = &gso,
                                       .api = svc,
                                       .metrics = weft_service_metrics(svc)};
        rc = weft_collector_new(weft_service_host(svc), &ko, &col, err, sizeof(err));
        if (rc != 0) weft_gateway_free(gw);
    }
    if (rc != 0) {
        fprintf(stderr, "weft: %s\n", err);
        weft_registry_free(reg);
        weft_service_free(svc);
        weft_collector_sink_free(sink);
        weft_conf_free(&conf);
        return 2;
    }
    weft_collector_sink_attach(sink, col);
    weft_info("weft", "starting",
              "version=%s data_dir=%s api=%s:%u dns=%s:%u gateway=%s:%u routes=%zu", WEFT_VERSION,
              sc->data_dir, sc->api.host, sc->api.port, cf.rc.dns.host, cf.rc.dns.port,
              sc->gateway.host, sc->gateway.port, nroutes);
    weft_info("weft", "collector", "otlp=%s:%u zipkin=%s:%u traces=%s/traces", sc->otlp.host,
              sc->otlp.port, sc->zipkin.host, sc->zipkin.port, sc->data_dir);
    rc = weft_service_run(svc);
    bool failed = weft_registry_failed(reg);
    weft_collector_sink_attach(sink, NULL);
    weft_collector_free(col); /* what is queued is written */
    weft_registry_free(reg);
    weft_service_free(svc);
    weft_collector_sink_free(sink);
    weft_gateway_free(gw);
    weft_conf_free(&conf);
    return rc == 0 && !failed ? 0 : 1;
}

const char *weft__serve_default(const char *key)
{
    serve_confs_t cf;
    serve_confs_init(&cf);
    for (size_t i = 0; i < N(cf.secs); i++)
        for (size_t k = 0; k < cf.secs[i].n; k++)
            if (strcmp(cf.secs[i].opts[k].key, key) == 0) return cf.secs[i].opts[k].def;
    return NULL;
}

static int config_docs(void)
{
    serve_confs_t cf;
    serve_confs_init(&cf);
    weft_conf_section_t *secs = cf.secs;
    printf("# weft configuration reference\n\n"
           "Generated by `weft config-docs` from the declaration tables in the source.\n"
           "Precedence: defaults, then the YAML file (`--config`), then the environment,\n"
           "then flags. Sizes take KiB/MiB/GiB suffixes; durations ms/s/m/h.\n\n");
    weft_conf_markdown(secs, N(cf.secs), stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return serve(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0) return weft__demo_run(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("weft %s\n", WEFT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "config-docs") == 0) return config_docs();
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && strcmp(cmd, "help") == 0) { /* weft help CMD: weft CMD --help */
            char *args[] = {argv[2], "--help", NULL};
            int rc = strcmp(argv[2], "serve") == 0  ? serve(2, args)
                     : strcmp(argv[2], "demo") == 0 ? weft__demo_run(2, args)
                                                    : weft__cli_run(2, args);
            if (rc >= 0) return rc;
            fprintf(stderr, "weft: unknown command \"%s\"\n\n", argv[2]);
            usage(stderr);
            return 2;
        }
        usage(stdout);
        return 0;
    }
    int rc = weft__cli_run(argc - 1, argv + 1);
    if (rc >= 0) return rc;
    fprintf(stderr, "weft: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
}
