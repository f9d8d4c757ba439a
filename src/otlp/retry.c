/*
 * retry.c - when an OTLP/HTTP export is sent again, and after how long: the rules the
 * OTLP/HTTP specification gives an exporter, shared by the SDK's exporter (exporter.c) and
 * the collector's forwarder (src/collector/forward.c), so that both retry alike.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "otlp/otlp_int.h"
#include "weft/common.h"

bool weft__otlp_transient(int err, int status)
{
    if (err == 0) return status == 429 || status == 502 || status == 503 || status == 504;
    return err != WEFT_EPARSE && err != WEFT_ELIMIT && err != WEFT_ECANCELED &&
           err != WEFT_ENOMEM && err != WEFT_EINVAL && err != WEFT_ECLOSED;
}

bool weft__otlp_unreachable(int err)
{
    return err == -ECONNREFUSED || err == -ENETUNREACH || err == -EHOSTUNREACH ||
           err == WEFT_ENOENT;
}

uint64_t weft__otlp_backoff_ms(uint64_t initial_ms, uint64_t max_ms, unsigned attempts)
{
    double b = (double)initial_ms, max = (double)max_ms;
    for (unsigned i = 1; i < attempts && b < max; i++) b *= 1.5;
    if (b > max) b = max;
    uint8_t r[8];
    weft_trace_random_span_id(r); /* any 8 random bytes */
    uint32_t u = (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
    b *= 0.8 + 0.4 * ((double)u / 4294967296.0);
    if (b > max) b = max;
    return b < 1 ? 1 : (uint64_t)b;
}

int64_t weft__otlp_retry_after(int status, const weft_http_header_t *h, size_t n)
{
    if (status < 300) return -1;
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 11 && strncasecmp(h[i].name.base, "retry-after", 11) == 0) {
            uint64_t ms;
            if (weft_http_retry_after_parse(h[i].value.base, h[i].value.len, time(NULL), &ms) != 0)
                return -1;
            return ms > INT64_MAX ? INT64_MAX : (int64_t)ms;
        }
    return -1;
}

void weft__otlp_failure_name(char *out, size_t cap, int err, int status)
{
    if (err == 0)
        snprintf(out, cap, "http_%d", status);
    else
        snprintf(out, cap, "%s", weft_err_name(err));
}
