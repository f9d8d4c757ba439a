/*
 * fuzz_tracestate.c - any bytes as tracestate header lines ('\n' separates lines).
 *
 * Properties: no crash; a rejected header leaves an empty tracestate; an accepted one is
 * stored within WEFT_TRACESTATE_MAX bytes and 32 members, reparses to itself (the stored form
 * is normalised), and parsing the lines one by one or joined with ',' gives the same result;
 * after weft_tracestate_put the list is still valid, within bounds and starts with our member.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

#define MAX_LINES 16

static unsigned members(const weft_trace_context_t *c)
{
    unsigned n = c->tracestate_len ? 1 : 0;
    for (size_t i = 0; i < c->tracestate_len; i++) n += c->tracestate[i] == ',';
    return n;
}

static void check_stored(const weft_trace_context_t *c)
{
    weft_trace_context_t again;
    if (c->tracestate_len > WEFT_TRACESTATE_MAX || members(c) > WEFT_TRACESTATE_MEMBERS) abort();
    if (weft_tracestate_parse(c->tracestate, c->tracestate_len, &again) != 0) abort();
    if (again.tracestate_len != c->tracestate_len ||
        memcmp(again.tracestate, c->tracestate, c->tracestate_len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    weft_str_t lines[MAX_LINES];
    size_t n = 0, start = 0;
    char joined[4096];
    if (size > sizeof(joined)) return 0;
    for (size_t i = 0; i <= size && n < MAX_LINES; i++)
        if (i == size || s[i] == '\n') {
            lines[n++] = (weft_str_t){s + start, i - start};
            start = i + 1;
        }
    if (start <= size) return 0; /* more lines than we split: keep the cases comparable */
    memcpy(joined, s, size);
    for (size_t i = 0; i < size; i++)
        if (joined[i] == '\n') joined[i] = ',';
    weft_trace_context_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    int ra = weft_tracestate_parse_lines(lines, n, &a);
    int rb = weft_tracestate_parse(joined, size, &b);
    if (ra != rb) abort();
    if (ra != 0) {
        if (a.tracestate_len != 0 || b.tracestate_len != 0) abort();
        return 0;
    }
    if (a.tracestate_len != b.tracestate_len ||
        memcmp(a.tracestate, b.tracestate, a.tracestate_len))
        abort();
    check_stored(&a);
    if (weft_tracestate_put(&a, "weft", "v=1") == 0) abort(); /* '=' is no value character */
    if (weft_tracestate_put(&a, "tenant@weft", "abc") != 0) abort();
    check_stored(&a);
    if (a.tracestate_len < 15 || memcmp(a.tracestate, "tenant@weft=abc", 15) != 0) abort();
    weft_str_t v;
    if (!weft_tracestate_get(&a, "tenant@weft", &v) || v.len != 3) abort();
    return 0;
}
