/*
 * fuzz_otel_env.c - any bytes as the values of OpenTelemetry's environment variables: the
 * input is split at NUL bytes, the pieces go to the variables of `vars` in order (an empty
 * piece leaves the variable unset).
 *
 * Properties: no crash. weft_sampler_from_env and weft_propagators_from_env return 0, 1 or
 * WEFT_EINVAL, refuse in one line naming their variable, and give a ratio in [0, 1] and a
 * mask within WEFT_PROPAGATE_ALL. weft_otlp_options_from_env returns 0, 1 or WEFT_EINVAL;
 * its refusal is one line naming an OTEL_ variable; the options it accepts have a host, a
 * port, a path starting with '/', a service name of 1..255 bytes and resource attributes
 * within 4096 bytes; and weft_otlp_exporter_new takes every host, path, resource list and
 * header list from_env accepted (it may refuse only a number out of its bounds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/log.h"
#include "weft/otlp.h"
#include "weft/trace.h"

static const char *const vars[] = {
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_RESOURCE_ATTRIBUTES",    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_EXPORTER",        "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_BSP_MAX_QUEUE_SIZE",     "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_BSP_EXPORT_TIMEOUT",     "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",     "OTEL_PROPAGATORS",
    "OTEL_EXPORTER_OTLP_HEADERS",  "OTEL_EXPORTER_OTLP_COMPRESSION",
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

static const char *const bounded[] = {
    "max_queue:", "max_batch:", "flush_interval_ms:", "timeout_ms:"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        weft_log_set_level(WEFT_LOG_ERROR); /* http/protobuf warns */
        once = 1;
    }
    char buf[8192];
    if (size >= sizeof(buf)) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *p = buf, *end = buf + size; /* buf[size] is a NUL too */
    for (size_t i = 0; i < NVARS; i++) {
        if (p <= end && *p)
            setenv(vars[i], p, 1);
        else
            unsetenv(vars[i]);
        if (p <= end) p += strlen(p) + 1;
    }
    weft_otlp_env_t e;
    char err[512];
    weft_sampler_t sm = weft_sampler_always_off();
    int rs = weft_sampler_from_env(&sm, err, sizeof(err));
    if (rs == WEFT_EINVAL ? strncmp(err, "OTEL_TRACES_SAMPLER", 19) != 0 || strchr(err, '\n')
                          : rs != 0 && rs != 1)
        abort();
    if (rs == 1 && !(sm.ratio >= 0 && sm.ratio <= 1)) abort();
    unsigned mask = 0;
    int rp = weft_propagators_from_env(&mask, err, sizeof(err));
    if (rp == WEFT_EINVAL
            ? strncmp(err, "OTEL_PROPAGATORS:", 17) != 0 || strchr(err, '\n')
            : (rp != 0 && rp != 1) || (mask & ~(WEFT_PROPAGATE_ALL | WEFT_PROPAGATE_B3_WINS)))
        abort();
    /* B3 can win over W3C only when both were asked for */
    if ((mask & WEFT_PROPAGATE_B3_WINS) &&
        (!(mask & WEFT_PROPAGATE_W3C) || !(mask & (WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI))))
        abort();
    int r = weft_otlp_options_from_env(&e, "svc", err, sizeof(err));
    if (r == WEFT_EINVAL) {
        if (strncmp(err, "OTEL_", 5) != 0 || strchr(err, '\n')) abort();
        return 0;
    }
    if (r == 0) return 0;
    if (r != 1) abort();
    const weft_otlp_options_t *o = &e.o;
    if (!o->host || !o->host[0] || o->port == 0 || !o->path || o->path[0] != '/') abort();
    size_t nl = strlen(o->service_name);
    if (nl == 0 || nl > 255) abort();
    if (o->resource_attributes && strlen(o->resource_attributes) > WEFT_OTLP_MAX_RESOURCE_BYTES)
        abort();
    weft_span_exporter_t *x = weft_otlp_exporter_new(o, err, sizeof(err));
    if (x) {
        x->shutdown(x->arg);
        return 0;
    }
    for (size_t i = 0; i < sizeof(bounded) / sizeof(bounded[0]); i++)
        if (strncmp(err, bounded[i], strlen(bounded[i])) == 0) return 0;
    fprintf(stderr, "from_env accepted what weft_otlp_exporter_new refuses: %s\n", err);
    abort();
}
