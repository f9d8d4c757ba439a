/*
 * fuzz_b3.c - any bytes as a b3 header: no crash; a parsed context formats to a header that
 * parses back to the same ids and sampled flag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_trace_context_t a, b;
    if (weft_b3_parse((const char *)data, size, &a) != 0) return 0;
    char out[64];
    size_t n = weft_b3_format(&a, out);
    if (weft_b3_parse(out, n, &b) != 0) abort();
    if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) || a.flags != b.flags)
        abort();
    return 0;
}
