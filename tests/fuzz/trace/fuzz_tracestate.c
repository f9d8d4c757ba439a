/*
 * fuzz_tracestate.c - any bytes as a tracestate: no crash, the stored state stays within
 * bounds, and a stored (normalised) state parses again to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_trace_context_t a, b;
    if (weft_tracestate_parse((const char *)data, size, &a) != 0) {
        if (a.tracestate_len != 0) abort();
        return 0;
    }
    if (a.tracestate_len > WEFT_TRACESTATE_MAX) abort();
    if (weft_tracestate_parse(a.tracestate, a.tracestate_len, &b) != 0) abort();
    if (a.tracestate_len != b.tracestate_len ||
        memcmp(a.tracestate, b.tracestate, a.tracestate_len))
        abort();
    if (weft_tracestate_put(&b, "weft", "x") == 0 && b.tracestate_len > WEFT_TRACESTATE_MAX)
        abort();
    return 0;
}
