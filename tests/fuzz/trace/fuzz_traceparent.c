/*
 * fuzz_traceparent.c - any bytes as a traceparent: no crash; a parsed context formats to a
 * value that parses back to the same ids and sampled flag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_trace_context_t a, b;
    if (weft_traceparent_parse((const char *)data, size, &a) != 0) return 0;
    char out[WEFT_TRACEPARENT_LEN];
    weft_traceparent_format(&a, out);
    if (weft_traceparent_parse(out, sizeof(out), &b) != 0) abort();
    if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) || a.flags != b.flags)
        abort();
    return 0;
}
