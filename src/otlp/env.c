/*
 * env.c - OpenTelemetry's environment variables as OTLP exporter options
 * (weft_otlp_options_from_env, weft/otlp.h).
 *
 * A weft service deployed beside OpenTelemetry SDKs takes the same OTEL_* settings they do.
 * Each variable is read once, checked, and written into the caller's weft_otlp_env_t,
 * whose arrays hold the strings the options point to, so nothing is allocated that outlives
 * the call. A value this cannot use is refused in one line naming the variable (never
 * quoting a header list: headers carry API keys), where OpenTelemetry's SDKs would often log
 * it and carry on: a service that was asked to export somewhere should not quietly export
 * nowhere. The URL, host and list checks are options.c's and url.c's, so from_env accepts
 * nothing that weft_otlp_exporter_new then refuses, numbers out of its bounds aside.
 *
 * Reads the environment: call at start-up, not concurrently with setenv. No state.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/errbuf.h"
#include "http/url.h"
#include "otlp/otlp_int.h"
#include "weft/otlp.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static int env_fail(char *err, size_t errlen, const char *var, const char *val, const char *why)
{
    return weft__errf(err, errlen, WEFT_EINVAL, "%s: %s, got \"%.80s\"", var, why, val);
}

/* A whole number 0..max into *out; false when v is anything else. */
static bool env_uint(const char *v, uint64_t max, uint64_t *out)
{
    uint64_t n = 0;
    if (!*v) return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (max - (uint64_t)(*v - '0')) / 10) return false;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return true;
}

/* http://HOST[:PORT][/PATH] into env's host, port and path (suffix appended to the path).
 * Returns NULL, or what is wrong. */
static const char *parse_url(weft_otlp_env_t *e, const char *url, const char *suffix)
{
    weft__url_t u;
    const char *bad = weft__url_split(url, &u);
    if (u.scheme && u.scheme_len == 5 && strncasecmp(u.scheme, "https", 5) == 0)
        return "https is not supported yet; use http://";
    if (!u.scheme || u.scheme_len != 4 || strncasecmp(u.scheme, "http", 4) != 0)
        return "expected http://HOST[:PORT][/PATH]";
    if (bad) return bad;
    unsigned char addr[16];
    if (u.bracketed ? inet_pton(AF_INET6, u.host, addr) != 1 : !weft__otlp_host_ok(u.host))
        return u.bracketed ? "expected an IPv6 address between '[' and ']'"
                           : "expected a numeric address or a host name";
    _Static_assert(sizeof(e->host) == sizeof(u.host), "weft_otlp_env_t.host holds a URL's host");
    strcpy(e->host, u.host);
    e->o.port = u.port ? u.port : 80;
    const char *p = u.rest;
    if (strchr(p, '#')) return "a fragment ('#') has no meaning here";
    const char *q = strchr(p, '?'); /* a suffix goes into the path, before any query */
    size_t pl = q ? (size_t)(q - p) : strlen(p), ql = q ? strlen(q) : 0;
    bool slash = pl > 0 && p[pl - 1] == '/';
    int n = snprintf(e->path, sizeof(e->path), "%s%.*s%s%s%.*s", pl ? "" : "/", (int)pl, p,
                     suffix && !slash && pl ? "/" : "", suffix ? suffix : "", (int)ql, q ? q : "");
    if (n < 0 || (size_t)n >= sizeof(e->path)) return "the path is longer than 2048 bytes";
    if (!weft__otlp_path_ok(e->path)) return "the path must be printable ASCII without spaces";
    return NULL;
}

int weft__otlp_env_extras(weft_otlp_env_t *e, char *err, size_t errlen)
{
    const char *v, *var = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    if (!(v = env(var))) v = env(var = "OTEL_EXPORTER_OTLP_PROTOCOL");
    if (v && strcmp(v, "http/protobuf") == 0)
        e->o.protocol = WEFT_OTLP_HTTP_PROTOBUF;
    else if (v && strcmp(v, "http/json") != 0)
        return env_fail(err, errlen, var, v, "expected http/json or http/protobuf (not grpc)");

    var = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
    if (!(v = env(var))) v = env(var = "OTEL_EXPORTER_OTLP_COMPRESSION");
    if (v && strcmp(v, "gzip") == 0)
        e->o.gzip = true;
    else if (v && strcmp(v, "none") != 0)
        return env_fail(err, errlen, var, v, "expected gzip or none");

    var = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    if (!(v = env(var))) v = env(var = "OTEL_EXPORTER_OTLP_HEADERS");
    if (v) {
        kvlist_t *hs = malloc(sizeof(*hs));
        if (!hs) return weft__errf(err, errlen, WEFT_ENOMEM, "out of memory");
        const char *bad = weft__otlp_kvlist_parse(v, hs);
        if (!bad) bad = weft__otlp_headers_check(hs);
        free(hs);
        /* no value in the message: headers carry API keys */
        if (bad) return weft__errf(err, errlen, WEFT_EINVAL, "%s: %s", var, bad);
        strcpy(e->headers, v); /* parse_kvlist checked its length */
        e->o.headers = e->headers;
    }

    const char *attrs = env("OTEL_RESOURCE_ATTRIBUTES");
    if (attrs) {
        kvlist_t *rs = malloc(sizeof(*rs));
        if (!rs) return weft__errf(err, errlen, WEFT_ENOMEM, "out of memory");
        const char *bad = weft__otlp_kvlist_parse(attrs, rs);
        for (size_t i = 0; !bad && i < rs->n; i++) /* the last one wins */
            if (strcmp(rs->key[i], "service.name") == 0 && rs->value[i][0])
                snprintf(e->service_name, sizeof(e->service_name), "%s", rs->value[i]);
        free(rs);
        if (bad) return env_fail(err, errlen, "OTEL_RESOURCE_ATTRIBUTES", attrs, bad);
        strcpy(e->resource, attrs); /* parse_kvlist checked its length */
        e->o.resource_attributes = e->resource;
    }
    return 0;
}

int weft_otlp_options_from_env(weft_otlp_env_t *e, const char *default_service_name, char *err,
                               size_t errlen)
{
    memset(e, 0, sizeof(*e));
    weft_otlp_options_init(&e->o);
    const char *v;
    if ((v = env("OTEL_SDK_DISABLED")) && strcasecmp(v, "true") == 0) return 0;
    const char *exporter = env("OTEL_TRACES_EXPORTER");
    if (exporter && strcmp(exporter, "none") == 0) return 0;
    if (exporter && strcmp(exporter, "otlp") != 0)
        return env_fail(err, errlen, "OTEL_TRACES_EXPORTER", exporter,
                        "weft exports spans with otlp only (or none)");
    const char *url, *var = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", *suffix = NULL;
    if (!(url = env(var))) {
        var = "OTEL_EXPORTER_OTLP_ENDPOINT";
        suffix = "v1/traces";
        if (!(url = env(var))) {
            if (!exporter) return 0; /* nothing asks for an exporter */
            url = "http://localhost:4318";
        }
    }
    const char *why = parse_url(e, url, suffix);
    if (why) return env_fail(err, errlen, var, url, why);
    e->o.host = e->host;
    e->o.path = e->path;

    int r = weft__otlp_env_extras(e, err, errlen);
    if (r != 0) return r;

    const char *name = env("OTEL_SERVICE_NAME");
    if (name) {
        if (strlen(name) >= sizeof(e->service_name))
            return env_fail(err, errlen, "OTEL_SERVICE_NAME", name, "longer than 255 bytes");
        strcpy(e->service_name, name);
    } else if (!e->service_name[0]) {
        snprintf(e->service_name, sizeof(e->service_name), "%s",
                 default_service_name ? default_service_name : "");
    }
    e->o.service_name = e->service_name;

    static const struct {
        const char *var;
        size_t off;
        bool size; /* size_t, else uint64_t */
        uint64_t min, max;
        bool cap; /* lowers the field to the value, never raises it */
    } nums[] = {
        {"OTEL_EXPORTER_OTLP_TIMEOUT", offsetof(weft_otlp_options_t, timeout_ms), false, 1,
         WEFT_OTLP_MAX_TIMEOUT, false},
        {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", offsetof(weft_otlp_options_t, timeout_ms), false, 1,
         WEFT_OTLP_MAX_TIMEOUT, false},
        {"OTEL_BSP_SCHEDULE_DELAY", offsetof(weft_otlp_options_t, flush_interval_ms), false, 1,
         WEFT_OTLP_MAX_TIMEOUT, false},
        {"OTEL_BSP_MAX_QUEUE_SIZE", offsetof(weft_otlp_options_t, max_queue), true, 1,
         WEFT_OTLP_MAX_QUEUE, false},
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", offsetof(weft_otlp_options_t, max_batch), true, 1,
         WEFT_OTLP_MAX_BATCH, false},
        /* the most an export may take: here a ceiling on each request's timeout above
         * (the waits between retries are not in it) */
        {"OTEL_BSP_EXPORT_TIMEOUT", offsetof(weft_otlp_options_t, timeout_ms), false, 1,
         WEFT_OTLP_MAX_TIMEOUT, true},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        uint64_t n;
        if (!(v = env(nums[i].var))) continue;
        if (!env_uint(v, nums[i].max, &n) || n < nums[i].min) {
            char range[80];
            snprintf(range, sizeof(range), "expected a whole number%s from %" PRIu64 " to %" PRIu64,
                     nums[i].size ? "" : " of milliseconds", nums[i].min, nums[i].max);
            return env_fail(err, errlen, nums[i].var, v, range);
        }
        char *field = (char *)&e->o + nums[i].off;
        if (nums[i].size)
            *(size_t *)(void *)field = (size_t)n;
        else if (!nums[i].cap || n < *(uint64_t *)(void *)field)
            *(uint64_t *)(void *)field = n;
    }
    return 1;
}
