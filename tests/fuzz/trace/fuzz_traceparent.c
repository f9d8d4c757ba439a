/*
 * fuzz_traceparent.c - any bytes as a traceparent value.
 *
 * Properties: no crash; a failed parse leaves the context untouched; a parsed context is
 * valid, formats to a version-00 value that parses back to the same ids and sampled flag;
 * for a version-00 input the formatted value equals the (trimmed) input up to the flags,
 * whose second digit is the sampled bit alone.
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
    const char *s = (const char *)data;
    if (weft_traceparent_parse(s, size, &a) != 0) {
        if (memcmp(&a, &keep, sizeof(a)) != 0) abort();
        return 0;
    }
    if (!weft_trace_context_is_valid(&a) || !a.remote || a.deferred || a.tracestate_len) abort();
    if (a.flags & ~WEFT_TRACE_FLAG_SAMPLED) abort();
    char out[WEFT_TRACEPARENT_LEN];
    if (weft_traceparent_format(&a, out) != WEFT_TRACEPARENT_LEN) abort();
    if (weft_traceparent_parse(out, sizeof(out), &b) != 0) abort();
    if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) || a.flags != b.flags)
        abort();
    while (size && (*s == ' ' || *s == '\t')) s++, size--;
    if (s[0] == '0' && s[1] == '0') {
        if (memcmp(out, s, 53) != 0) abort();
        if (out[54] != "01"[s[54] == '1' || s[54] == '3' || s[54] == '5' || s[54] == '7' ||
                            s[54] == '9' || s[54] == 'b' || s[54] == 'd' || s[54] == 'f'])
            abort();
    }
    return 0;
}
