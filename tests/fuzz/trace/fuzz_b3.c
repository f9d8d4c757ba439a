/*
 * fuzz_b3.c - any bytes as a `b3` header value.
 *
 * Properties: no crash; a failed parse leaves the context untouched; a parsed context
 * (valid, or sampling-only) formats to a value that parses back to the same ids, sampled flag
 * and deferral, within WEFT_B3_MAX_LEN bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_trace_context_t a, b, keep;
    memset(&a, 0x5a, sizeof(a));
    keep = a;
    if (weft_b3_parse((const char *)data, size, &a) != 0) {
        if (memcmp(&a, &keep, sizeof(a)) != 0) abort();
        return 0;
    }
    bool valid = weft_trace_context_is_valid(&a);
    static const uint8_t zero[16];
    if (!valid && (memcmp(a.trace_id, zero, 16) || memcmp(a.span_id, zero, 8) || a.deferred))
        abort(); /* invalid means sampling-only: no ids at all */
    char out[WEFT_B3_MAX_LEN + 8];
    memset(out, '#', sizeof(out));
    size_t n = weft_b3_format(&a, out);
    if (n == 0 || n > WEFT_B3_MAX_LEN || out[WEFT_B3_MAX_LEN] != '#') abort();
    if (weft_b3_parse(out, n, &b) != 0) abort();
    if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) ||
        a.flags != b.flags || a.deferred != b.deferred || !b.remote)
        abort();
    return 0;
}
