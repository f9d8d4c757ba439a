/*
 * fuzz_extract.c - any bytes as a list of header lines ("name:value", '\n' separated) for
 * weft_trace_extract_headers, then a span-free round trip through weft_trace_inject.
 *
 * Properties: no crash; WEFT_ENOENT leaves the context untouched; an extracted context,
 * injected in every format and extracted again from the injected headers, gives back the
 * same ids, sampled flag and tracestate.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

#define MAX_HEADERS 32

typedef struct {
    weft_http_header_t h[8];
    char store[8][600];
    size_t n;
} out_t;

static int set(void *arg, const char *name, const char *value, size_t len)
{
    out_t *o = arg;
    if (o->n == 8 || len > sizeof(o->store[0])) abort();
    memcpy(o->store[o->n], value, len);
    o->h[o->n].name = (weft_str_t){name, strlen(name)};
    o->h[o->n].value = (weft_str_t){o->store[o->n], len};
    o->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    weft_http_header_t hs[MAX_HEADERS];
    size_t n = 0;
    while (s < end && n < MAX_HEADERS) {
        const char *nl = memchr(s, '\n', (size_t)(end - s)), *le = nl ? nl : end;
        const char *colon = memchr(s, ':', (size_t)(le - s));
        if (colon) {
            hs[n].name = (weft_str_t){s, (size_t)(colon - s)};
            hs[n++].value = (weft_str_t){colon + 1, (size_t)(le - colon - 1)};
        }
        s = nl ? nl + 1 : end;
    }
    weft_trace_context_t a, b, keep;
    memset(&a, 0x5a, sizeof(a));
    keep = a;
    if (weft_trace_extract_headers(hs, n, &a) != 0) {
        if (memcmp(&a, &keep, sizeof(a)) != 0) abort();
        return 0;
    }
    if (!a.remote || a.tracestate_len > WEFT_TRACESTATE_MAX) abort();
    out_t o = {.n = 0};
    if (weft_trace_inject(&a, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI, set,
                          &o) != 0)
        abort();
    if (weft_trace_extract_headers(o.h, o.n, &b) != 0) abort();
    if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) ||
        a.flags != b.flags || a.tracestate_len != b.tracestate_len ||
        memcmp(a.tracestate, b.tracestate, a.tracestate_len))
        abort();
    return 0;
}
