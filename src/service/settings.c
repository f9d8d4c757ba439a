/*
 * settings.c - weft's standard settings for a service in one call
 * (weft_service_options_from_args, weft/service.h): name, listen address, workers, log level,
 * access log, the HTTP server's limits, an OTLP receiver, and the registry the service
 * registers with, from flags, environment variables and an optional YAML file.
 *
 * Every service built on the SDK would otherwise declare the same table and write the same
 * forty lines of main(). The settings are one declaration table (STYLE: configuration
 * declared beside the code), loaded with the http.* section by the configuration system
 * (weft/config.h), so flags, variables, the file, --help and the error messages all come from
 * the table. Two things in it are made per call: the defaults, which are what the caller's
 * options hold (a service says "my port is 8081" the way it always did, by setting o.port),
 * and the variables' prefix, taken from the service's name in code ("orders": ORDERS_PORT),
 * so two services on one host read different variables. What the types and bounds cannot
 * say (a name's characters, an OTLP host) is the table's check functions, so a bad value
 * in the file is reported at its line and column like any other.
 *
 * The registry's URL and token have a second default, host-wide: WEFT_REGISTRY and
 * WEFT_REGISTRY_TOKEN (Consul's CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN play that part), read
 * when the caller's options leave them unset, so that every service on a host finds its
 * registry without a flag each; the service's own variable, file and flag override them.
 * Tags are one comma-separated string in flags, variables and the file, split into the
 * array the options point to.
 *
 * Ownership: the strings the options point to afterwards live in the weft_conf_t held by the
 * settings object (the tags in a copy of its own), which the caller frees after
 * weft_service_free. Nothing is written to
 * the caller's options, nor the log level changed, unless the whole call succeeds; an OTLP
 * exporter it made is created last, so a failure has nothing of it to undo.
 *
 * Runs once, on the thread that starts the service, before its threads exist; reads the
 * environment; no state of its own. Out of memory is returned, never an abort.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errbuf.h"
#include "otlp/otlp_int.h"
#include "service/discovery_int.h"
#include "weft/config.h"
#include "weft/log.h"
#include "weft/otlp.h"
#include "weft/service.h"
#include "weft/workers.h"

/* Where the table stores what it loads. */
typedef struct std_conf_s {
    char *name;
    char *host;
    uint64_t port;
    uint64_t workers;
    weft_log_level_t log_level;
    bool access_log;
    char *access_log_file;
    weft_conf_addr_t otlp;
    char *reg_url, *reg_token, *reg_id, *reg_address, *reg_tags;
    int reg_check, reg_policy;
    uint64_t reg_interval, reg_check_timeout, reg_dereg_after, reg_timeout, reg_resync;
} std_conf_t;

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* weft_service_new's rule for names; the length is the table's bound. */
static const char *check_name(const void *v)
{
    for (const char *s = *(const char *const *)v; *s; s++)
        if (!name_char(*s)) return "expected letters, digits, '-', '_' and '.'";
    return NULL;
}

/* What weft_otlp_exporter_new would refuse of a host:port, said at the flag, the variable
 * or the file's line; "" (no value) is no exporter. */
static const char *check_otlp(const void *v)
{
    const weft_conf_addr_t *a = v;
    if (!a->host[0]) return NULL;
    if (!weft__otlp_host_ok(a->host))
        return "expected a numeric IPv4 or IPv6 address or a host name as the host";
    if (a->port == 0) return "expected a port from 1 to 65535 (spans need somewhere to go)";
    return NULL;
}

/* The listen address must be numeric: the server binds it as written, and a name would
 * fail only there, past the configuration (exit 1 instead of 2). */
static const char *check_listen_host(const void *v)
{
    const char *host = *(const char *const *)v;
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) return NULL;
    return "expected a numeric IPv4 or IPv6 address to listen on (127.0.0.1 for localhost)";
}

/* "" (no registry) or what weft_service_new takes: http://HOST:PORT. */
static const char *check_registry(const void *v)
{
    const char *url = *(const char *const *)v;
    char host[DISC_HOST_MAX + 1];
    uint16_t port;
    if (!url[0]) return NULL;
    int err = weft__disc_registry_split(url, host, &port);
    if (err == WEFT_EUNSUPPORTED) return "https is not supported (the client has no TLS yet)";
    return err ? "expected http://HOST:PORT" : NULL;
}

static const char *check_reg_id(const void *v)
{
    const char *id = *(const char *const *)v;
    if (!id[0] || weft__disc_name_ok(id, WEFT_DISCOVERY_ID_MAX, true)) return NULL;
    return "expected letters, digits, '-', '_', '.' and ':'";
}

static const char *check_tags(const void *v)
{
    size_t n = 1;
    for (const char *c = *(const char *const *)v; *c; c++) n += *c == ',';
    return n > DISC_MAX_TAGS ? "expected at most 64 comma-separated tags" : NULL;
}

enum {
    O_NAME,
    O_HOST,
    O_PORT,
    O_WORKERS,
    O_LOG_LEVEL,
    O_ACCESS_LOG,
    O_ACCESS_LOG_FILE,
    O_OTLP,
    O_REG_URL,
    O_REG_TOKEN,
    O_REG_ID,
    O_REG_ADDRESS,
    O_REG_TAGS,
    O_REG_CHECK,
    O_REG_INTERVAL,
    O_REG_CHECK_TIMEOUT,
    O_REG_DEREG_AFTER,
    O_REG_TIMEOUT,
    O_REG_RESYNC,
    O_REG_POLICY
};

/* In the order of weft_discovery_check_t and weft_discovery_policy_t. */
static const char *const check_kinds[] = {"none", "http", "ttl", NULL};
static const char *const policies[] = {"round_robin",   "random",    "least_outstanding",
                                       "least_request", "ring_hash", NULL};

/* .def and .env are filled per call (options_from_args); the rest is fixed. */
static const weft_conf_option_t std_options[] = {
    [O_NAME] = {.key = "name",
                .type = WEFT_CONF_STRING,
                .offset = offsetof(std_conf_t, name),
                .min = 1,
                .max = 64,
                .flag = "name",
                .help = "service name (/health, metrics, spans' service.name)",
                .check = check_name},
    [O_HOST] = {.key = "host",
                .type = WEFT_CONF_STRING,
                .offset = offsetof(std_conf_t, host),
                .min = 1,
                .max = 63,
                .flag = "host",
                .help = "listen address (numeric IPv4 or IPv6)",
                .check = check_listen_host},
    [O_PORT] = {.key = "port",
                .type = WEFT_CONF_UINT,
                .offset = offsetof(std_conf_t, port),
                .min = 0,
                .max = 65535,
                .flag = "port",
                .help = "listen port (0: any free port)"},
    [O_WORKERS] = {.key = "workers",
                   .type = WEFT_CONF_UINT,
                   .offset = offsetof(std_conf_t, workers),
                   .min = 0,
                   .max = WEFT_WORKERS_MAX,
                   .flag = "workers",
                   .help = "worker threads (0: one per CPU)"},
    [O_LOG_LEVEL] = {.key = "log_level",
                     .type = WEFT_CONF_LOGLEVEL,
                     .offset = offsetof(std_conf_t, log_level),
                     .flag = "log-level",
                     .help = "least level logged (logfmt on stderr)"},
    [O_ACCESS_LOG] = {.key = "access_log",
                      .type = WEFT_CONF_BOOL,
                      .offset = offsetof(std_conf_t, access_log),
                      .flag = "access-log",
                      .help = "log one line per request (comp=access), whatever the log level"},
    [O_ACCESS_LOG_FILE] = {.key = "access_log_file",
                           .type = WEFT_CONF_STRING,
                           .offset = offsetof(std_conf_t, access_log_file),
                           .flag = "access-log-file",
                           .help = "append the access log to this file instead of stderr (turns "
                                   "it on); SIGUSR1 reopens it"},
    [O_OTLP] = {.key = "otlp",
                .type = WEFT_CONF_ADDR,
                .offset = offsetof(std_conf_t, otlp),
                .flag = "otlp",
                .help = "send spans to this OTLP/HTTP receiver (POST /v1/traces)",
                .check = check_otlp},
    [O_REG_URL] = {.key = "registry.url",
                   .type = WEFT_CONF_STRING,
                   .offset = offsetof(std_conf_t, reg_url),
                   .max = 1024,
                   .flag = "registry",
                   .help = "register with this Consul-compatible registry (weft serve's API: "
                           "http://HOST:PORT), deregister at shutdown, and call services by "
                           "name through it; \"\": none",
                   .check = check_registry},
    [O_REG_TOKEN] = {.key = "registry.token",
                     .type = WEFT_CONF_STRING,
                     .offset = offsetof(std_conf_t, reg_token),
                     .max = 256,
                     .flag = "registry-token",
                     .help = "ACL token for the registry's writes (X-Consul-Token)"},
    [O_REG_ID] = {.key = "registry.id",
                  .type = WEFT_CONF_STRING,
                  .offset = offsetof(std_conf_t, reg_id),
                  .max = WEFT_DISCOVERY_ID_MAX,
                  .flag = "registry-id",
                  .help = "the instance's ID (\"\": NAME-ADDRESS-PORT)",
                  .check = check_reg_id},
    [O_REG_ADDRESS] = {.key = "registry.address",
                       .type = WEFT_CONF_STRING,
                       .offset = offsetof(std_conf_t, reg_address),
                       .max = DISC_HOST_MAX,
                       .flag = "registry-address",
                       .help = "the address registered for callers and the check (\"\": the "
                               "listen host; 127.0.0.1 for 0.0.0.0)"},
    [O_REG_TAGS] = {.key = "registry.tags",
                    .type = WEFT_CONF_STRING,
                    .offset = offsetof(std_conf_t, reg_tags),
                    .max = 4096,
                    .flag = "registry-tags",
                    .help = "tags to register, comma-separated",
                    .check = check_tags},
    [O_REG_CHECK] = {.key = "registry.check",
                     .type = WEFT_CONF_ENUM,
                     .offset = offsetof(std_conf_t, reg_check),
                     .choices = check_kinds,
                     .flag = "registry-check",
                     .help = "http: the registry GETs /health; ttl: the service reports its "
                             "health; none: always passing"},
    [O_REG_INTERVAL] = {.key = "registry.check_interval",
                        .type = WEFT_CONF_DURATION,
                        .offset = offsetof(std_conf_t, reg_interval),
                        .min = 1000,
                        .max = 86400000,
                        .flag = "registry-check-interval",
                        .help = "how often the check runs (ttl: the report; the TTL is three "
                                "times this)"},
    [O_REG_CHECK_TIMEOUT] = {.key = "registry.check_timeout",
                             .type = WEFT_CONF_DURATION,
                             .offset = offsetof(std_conf_t, reg_check_timeout),
                             .min = 0,
                             .max = 3600000,
                             .flag = "registry-check-timeout",
                             .help = "the HTTP check's timeout (0: the registry's, 10 s)"},
    [O_REG_DEREG_AFTER] = {.key = "registry.deregister_after",
                           .type = WEFT_CONF_DURATION,
                           .offset = offsetof(std_conf_t, reg_dereg_after),
                           .min = 0,
                           .max = 2592000000.0,
                           .flag = "registry-deregister-after",
                           .help = "the registry drops the instance once its check is critical "
                                   "this long (0: never)"},
    [O_REG_TIMEOUT] = {.key = "registry.timeout",
                       .type = WEFT_CONF_DURATION,
                       .offset = offsetof(std_conf_t, reg_timeout),
                       .min = 1,
                       .max = 600000,
                       .flag = "registry-timeout",
                       .help = "each request to the registry, the deregistration at shutdown "
                               "included"},
    [O_REG_RESYNC] = {.key = "registry.resync",
                      .type = WEFT_CONF_DURATION,
                      .offset = offsetof(std_conf_t, reg_resync),
                      .min = 0,
                      .max = 86400000,
                      .flag = "registry-resync",
                      .help = "how often the registration is looked up and made again if the "
                              "registry lost it (http and none checks; 0: never)"},
    [O_REG_POLICY] = {.key = "registry.policy",
                      .type = WEFT_CONF_ENUM,
                      .offset = offsetof(std_conf_t, reg_policy),
                      .choices = policies,
                      .flag = "registry-policy",
                      .help = "how calls by name choose an instance"},
};

#define NSTD (sizeof(std_options) / sizeof(std_options[0]))

struct weft_service_settings_s {
    weft_conf_t conf; /* owns the strings the caller's options point to */
    std_conf_t v;
    weft_http_conf_t http;
    weft_conf_option_t opts[NSTD]; /* std_options with this call's defaults and variables */
    char env[NSTD][96];
    char port[12], workers[12]; /* their defaults, as text */
    char durations[5][24];      /* the registry's durations' defaults, as text */
    char *tags_def;             /* registry.tags's default: o's tags, joined */
    char *tags_mem;             /* the loaded tags, split in place */
    const char *tags[DISC_MAX_TAGS];
    weft_otlp_env_t otlp; /* the exporter's options while it is made */
};

static const char *level_name(weft_log_level_t l)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    return (unsigned)l < sizeof(names) / sizeof(names[0]) ? names[l] : "info";
}

static const char *env_or(const char *v, const char *var)
{
    if (v && v[0]) return v;
    const char *e = getenv(var);
    return e ? e : "";
}

/* The table for this call: defaults from o, variables PREFIX_FLAG (PREFIX from name).
 * Returns 0 or WEFT_ENOMEM. */
static int make_table(weft_service_settings_t *s, const weft_service_options_t *o)
{
    char prefix[80];
    size_t n = 0;
    if (o->name[0] >= '0' && o->name[0] <= '9') prefix[n++] = '_'; /* variables start so */
    for (const char *c = o->name; *c && n < sizeof(prefix) - 1; c++)
        prefix[n++] = *c >= 'a' && *c <= 'z'   ? (char)(*c - 'a' + 'A')
                      : *c == '-' || *c == '.' ? '_'
                                               : *c;
    prefix[n] = 0;
    snprintf(s->port, sizeof(s->port), "%u", (unsigned)o->port);
    snprintf(s->workers, sizeof(s->workers), "%u", o->workers);
    memcpy(s->opts, std_options, sizeof(std_options));
    for (size_t i = 0; i < NSTD; i++) {
        char flag[64];
        size_t j = 0;
        for (const char *c = s->opts[i].flag; *c && j < sizeof(flag) - 1; c++)
            flag[j++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        flag[j] = 0;
        snprintf(s->env[i], sizeof(s->env[i]), "%s_%s", prefix, flag);
        s->opts[i].env = s->env[i];
    }
    s->opts[O_NAME].def = o->name;
    s->opts[O_HOST].def = o->host ? o->host : "127.0.0.1";
    s->opts[O_PORT].def = s->port;
    s->opts[O_WORKERS].def = s->workers;
    s->opts[O_LOG_LEVEL].def = level_name(weft_log_get_level());
    s->opts[O_ACCESS_LOG].def = o->access_log ? "true" : "false";
    s->opts[O_ACCESS_LOG_FILE].def = o->access_log_file ? o->access_log_file : "";
    /* O_OTLP: no default (no exporter) */
    const weft_service_registry_t *g = &o->registry;
    s->opts[O_REG_URL].def = env_or(g->url, "WEFT_REGISTRY");
    s->opts[O_REG_TOKEN].def = env_or(g->token, "WEFT_REGISTRY_TOKEN");
    s->opts[O_REG_ID].def = g->id ? g->id : "";
    s->opts[O_REG_ADDRESS].def = g->address ? g->address : "";
    size_t tl = 1;
    for (size_t i = 0; i < g->ntags; i++) tl += (g->tags[i] ? strlen(g->tags[i]) : 0) + 1;
    if (!(s->tags_def = calloc(1, tl))) return WEFT_ENOMEM;
    for (size_t i = 0; i < g->ntags; i++) {
        if (i) strcat(s->tags_def, ",");
        if (g->tags[i]) strcat(s->tags_def, g->tags[i]);
    }
    s->opts[O_REG_TAGS].def = s->tags_def;
    s->opts[O_REG_CHECK].def = check_kinds[(unsigned)g->check <= 2 ? g->check : 1];
    s->opts[O_REG_POLICY].def = policies[(unsigned)g->policy <= 4 ? g->policy : 0];
    const uint64_t ms[] = {g->check_interval_ms, g->check_timeout_ms, g->deregister_after_ms,
                           g->timeout_ms, g->resync_ms};
    for (int i = 0; i < 5; i++) {
        if (ms[i] % 1000 == 0)
            snprintf(s->durations[i], sizeof(s->durations[i]), "%llus",
                     (unsigned long long)(ms[i] / 1000));
        else
            snprintf(s->durations[i], sizeof(s->durations[i]), "%llums", (unsigned long long)ms[i]);
        s->opts[O_REG_INTERVAL + i].def = s->durations[i];
    }
    return 0;
}

/* Splits the loaded tags (comma-separated, blanks around each trimmed, empty ones dropped)
 * into s->tags. Returns the count, or -1 when out of memory. */
static long split_tags(weft_service_settings_t *s)
{
    if (!(s->tags_mem = strdup(s->v.reg_tags ? s->v.reg_tags : ""))) return -1;
    long n = 0;
    for (char *p = s->tags_mem, *next; p; p = next) {
        next = strchr(p, ',');
        if (next) *next++ = 0;
        while (*p == ' ' || *p == '\t') p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (*p && n < DISC_MAX_TAGS) s->tags[n++] = p;
    }
    return n;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (argv[i] && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) return true;
    return false;
}

static void print_help(const weft_conf_section_t *secs, size_t n, const char *prog)
{
    const char *slash = prog ? strrchr(prog, '/') : NULL;
    printf("usage: %s [--config FILE] [flags]\n\n"
           "Settings come from the defaults, then FILE (YAML), then the environment, then\n"
           "flags. Keys without a flag are set in the file. OpenTelemetry's variables\n"
           "(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...) apply\n"
           "as in OpenTelemetry's SDKs.\n\n",
           slash ? slash + 1 : prog);
    weft_conf_help(secs, n, stdout);
    fflush(stdout);
}

/* An OTLP exporter for the loaded otlp address, named as the service, into *out. Returns 0,
 * or an error with one line in err (an OTEL_* variable, or the exporter's own failure). */
static int make_exporter(weft_service_settings_t *s, const char *version,
                         weft_span_exporter_t **out, char *err, size_t errlen)
{
    weft_otlp_env_t *e = &s->otlp;
    memset(e, 0, sizeof(*e));
    weft_otlp_options_init(&e->o);
    int rc = weft__otlp_env_extras(e, err, errlen);
    if (rc != 0) return rc;
    e->o.host = s->v.otlp.host;
    e->o.port = s->v.otlp.port;
    e->o.service_name = s->v.name;
    e->o.service_version = version;
    *out = weft_otlp_exporter_new(&e->o, err, errlen);
    return *out ? 0 : WEFT_EINVAL;
}

int weft_service_options_from_args(weft_service_options_t *o, int argc, char **argv,
                                   weft_service_settings_t **settings, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    if (!settings) return weft__errf(err, errlen, WEFT_EINVAL, "settings: NULL");
    *settings = NULL;
    if (!o) return weft__errf(err, errlen, WEFT_EINVAL, "options: NULL");
    if (!o->name || !o->name[0] || strlen(o->name) > 64 || check_name(&o->name))
        return weft__errf(err, errlen, WEFT_EINVAL,
                          "options: name must be set to the service's name (1-64 letters, "
                          "digits, '-', '_', '.'): the default of --name and the prefix of "
                          "its environment variables");
    weft_service_settings_t *s = calloc(1, sizeof(*s));
    if (!s || make_table(s, o) != 0) {
        weft_service_settings_free(s);
        return weft__errf(err, errlen, WEFT_ENOMEM, "out of memory");
    }
    weft_conf_section_t secs[] = {
        {.name = "service", .opts = s->opts, .n = NSTD, .target = &s->v},
        weft_http_conf_section(&s->http),
    };
    size_t nsecs = sizeof(secs) / sizeof(secs[0]);
    if (wants_help(argc, argv)) {
        /* the table itself must hold (a default from o out of its bounds) */
        int rc = weft_conf_check(secs, nsecs, err, errlen);
        if (rc == 0) print_help(secs, nsecs, argc > 0 && argv[0] ? argv[0] : o->name);
        weft_service_settings_free(s);
        return rc == 0 ? 1 : rc;
    }
    int rc = weft_conf_load(&s->conf, secs, nsecs, NULL, argc, argv, err, errlen);
    if (rc != 0) {
        s->conf = (weft_conf_t){0}; /* owns nothing after a failure */
        weft_service_settings_free(s);
        return rc;
    }
    long ntags = split_tags(s);
    if (ntags < 0) {
        weft_service_settings_free(s);
        return weft__errf(err, errlen, WEFT_ENOMEM, "out of memory");
    }
    weft_span_exporter_t *exporter = NULL;
    if (s->v.otlp.host[0] && (rc = make_exporter(s, o->version, &exporter, err, errlen)) != 0) {
        weft_service_settings_free(s);
        return rc;
    }
    /* nothing can fail from here on */
    weft_log_set_level(s->v.log_level);
    o->name = s->v.name;
    o->host = s->v.host;
    o->port = (uint16_t)s->v.port;
    o->workers = (unsigned)s->v.workers;
    o->access_log = s->v.access_log;
    o->access_log_file = s->v.access_log_file[0] ? s->v.access_log_file : NULL;
    weft_http_conf_apply(&s->http, &o->http);
    weft_service_registry_t *g = &o->registry;
    g->url = s->v.reg_url[0] ? s->v.reg_url : NULL;
    g->token = s->v.reg_token[0] ? s->v.reg_token : NULL;
    g->id = s->v.reg_id[0] ? s->v.reg_id : NULL;
    g->address = s->v.reg_address[0] ? s->v.reg_address : NULL;
    g->tags = ntags ? s->tags : NULL;
    g->ntags = (size_t)ntags;
    g->check = (weft_discovery_check_t)s->v.reg_check;
    g->policy = (weft_discovery_policy_t)s->v.reg_policy;
    g->check_interval_ms = s->v.reg_interval;
    g->check_timeout_ms = s->v.reg_check_timeout;
    g->deregister_after_ms = s->v.reg_dereg_after;
    g->timeout_ms = s->v.reg_timeout;
    g->resync_ms = s->v.reg_resync;
    if (exporter) {
        if (o->exporter && o->exporter->shutdown) o->exporter->shutdown(o->exporter->arg);
        o->exporter = exporter;
    }
    *settings = s;
    return 0;
}

void weft_service_settings_free(weft_service_settings_t *s)
{
    if (!s) return;
    weft_conf_free(&s->conf);
    free(s->tags_def);
    free(s->tags_mem);
    free(s);
}
