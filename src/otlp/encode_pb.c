/*
 * encode_pb.c - OTLP spans in protobuf's wire format (see otlp/otlp_int.h).
 *
 * The messages and field numbers are opentelemetry-proto's (trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto): written by hand rather than
 * generated, as there are few of them and the exporter writes, never reads, them. Fields
 * with their default value are left out, as protobuf's own encoders do, except where the
 * JSON encoder (encode_json.c) writes them too (names, times, kind), so both say the same.
 *
 * Nested messages are length-prefixed; their length is known only once they are written.
 * weft__pb_open leaves one byte for it; weft__pb_close fills it in and, for contents of
 * 128 bytes or more, moves them up by the extra bytes the varint needs. A batch's outer
 * messages (ResourceSpans, ScopeSpans) thus move the batch once each: a memmove of the
 * body, small beside encoding it.
 */
#include <string.h>

#include "core/json_write.h"
#include "otlp/otlp_int.h"
#include "weft/weft.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void varint(weft_buf_t *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    weft_buf_put(b, t, n);
}

static void tag(weft_buf_t *b, unsigned field, unsigned wt)
{
    varint(b, (uint64_t)field << 3 | wt);
}

void weft__pb_fixed64(weft_buf_t *b, unsigned field, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++) t[i] = (uint8_t)(v >> (8 * i));
    tag(b, field, WT_I64);
    weft_buf_put(b, t, 8);
}

void weft__pb_fixed32(weft_buf_t *b, unsigned field, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++) t[i] = (uint8_t)(v >> (8 * i));
    tag(b, field, WT_I32);
    weft_buf_put(b, t, 4);
}

void weft__pb_varint_field(weft_buf_t *b, unsigned field, uint64_t v)
{
    tag(b, field, WT_VARINT);
    varint(b, v);
}

void weft__pb_bytes(weft_buf_t *b, unsigned field, const void *p, size_t n)
{
    tag(b, field, WT_LEN);
    varint(b, n);
    weft_buf_put(b, p, n);
}

/* A string field: protobuf requires UTF-8 there, and receivers refuse a whole request over
 * one bad string, so each byte that starts no valid sequence becomes U+FFFD (as in JSON). */
static void string(weft_buf_t *b, unsigned field, const char *s)
{
    size_t at = weft__pb_open(b, field);
    if (s) weft_buf_put_utf8(b, s, strlen(s));
    weft__pb_close(b, at);
}

size_t weft__pb_open(weft_buf_t *b, unsigned field)
{
    tag(b, field, WT_LEN);
    weft_buf_putc(b, 0); /* the length, when it fits one byte */
    return b->len;
}

void weft__pb_close(weft_buf_t *b, size_t start)
{
    if (b->failed) return;
    size_t len = b->len - start, extra = 0;
    for (size_t v = len >> 7; v; v >>= 7) extra++;
    if (extra) {
        if (!weft_buf_reserve(b, extra)) return;
        memmove(b->p + start + extra, b->p + start, len);
        b->len += extra;
        b->p[b->len] = 0;
    }
    uint8_t *out = (uint8_t *)b->p + start - 1;
    size_t v = len;
    for (size_t i = 0; i < extra; i++, v >>= 7) *out++ = (uint8_t)(v | 0x80);
    *out = (uint8_t)v;
}

/* AnyValue: 1 string_value, 2 bool_value, 3 int_value, 4 double_value. */
static void any_value(weft_buf_t *b, unsigned field, const weft_attr_t *a)
{
    size_t at = weft__pb_open(b, field);
    switch (a->type) {
    case WEFT_ATTR_STRING:
        string(b, 1, a->v.s);
        break;
    case WEFT_ATTR_BOOL:
        weft__pb_varint_field(b, 2, a->v.b ? 1 : 0);
        break;
    case WEFT_ATTR_INT:
        weft__pb_varint_field(b, 3, (uint64_t)a->v.i); /* int64: two's complement, 10 bytes */
        break;
    case WEFT_ATTR_DOUBLE: {
        uint64_t u;
        memcpy(&u, &a->v.d, 8);
        weft__pb_fixed64(b, 4, u);
        break;
    }
    default: /* an unknown type: an empty AnyValue */
        break;
    }
    weft__pb_close(b, at);
}

/* KeyValue: 1 key, 2 value. */
static void attributes(weft_buf_t *b, unsigned field, const weft_attr_t *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t at = weft__pb_open(b, field);
        string(b, 1, a[i].key);
        any_value(b, 2, &a[i]);
        weft__pb_close(b, at);
    }
}

void weft__pb_string_kv(weft_buf_t *b, unsigned field, const char *key, const char *value)
{
    weft_attr_t a = {.key = key, .type = WEFT_ATTR_STRING, .v.s = value}; /* keys too: UTF-8 */
    attributes(b, field, &a, 1);
}

/* Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind,
 * 7 start_time_unix_nano, 8 end_time_unix_nano, 9 attributes, 10 dropped_attributes_count,
 * 11 events, 12 dropped_events_count, 15 status, 16 flags.
 * Event: 1 time_unix_nano, 2 name, 3 attributes, 4 dropped_attributes_count.
 * Status: 2 message, 3 code. */
void weft__otlp_pb_span(weft_buf_t *b, const item_t *d)
{
    static const uint8_t zero[8];
    size_t span = weft__pb_open(b, 2);
    weft__pb_bytes(b, 1, d->trace_id, 16);
    weft__pb_bytes(b, 2, d->span_id, 8);
    if (d->tracestate_len) weft__pb_bytes(b, 3, d->tracestate, d->tracestate_len);
    if (memcmp(d->parent_span_id, zero, 8) != 0) weft__pb_bytes(b, 4, d->parent_span_id, 8);
    string(b, 5, d->name);
    weft__pb_varint_field(b, 6, (uint64_t)d->kind + 1); /* SPAN_KIND_*, as in JSON */
    weft__pb_fixed64(b, 7, d->start_ns);
    weft__pb_fixed64(b, 8, d->end_ns);
    attributes(b, 9, d->attrs, d->nattrs);
    if (d->dropped_attrs) weft__pb_varint_field(b, 10, d->dropped_attrs);
    for (unsigned i = 0; i < d->nevents; i++) {
        const weft_span_event_t *e = &d->events[i];
        size_t ev = weft__pb_open(b, 11);
        weft__pb_fixed64(b, 1, e->time_ns);
        string(b, 2, e->name);
        attributes(b, 3, e->attrs, e->attrs ? e->nattrs : 0);
        if (e->dropped_attrs) weft__pb_varint_field(b, 4, e->dropped_attrs);
        weft__pb_close(b, ev);
    }
    if (d->dropped_events) weft__pb_varint_field(b, 12, d->dropped_events);
    if (d->status != WEFT_SPAN_STATUS_UNSET) {
        size_t st = weft__pb_open(b, 15);
        if (d->status_message && d->status_message[0]) string(b, 2, d->status_message);
        weft__pb_varint_field(b, 3, d->status);
        weft__pb_close(b, st);
    }
    /* SpanFlags, as in JSON: W3C flags, bit 8 "bit 9 is known", bit 9 parent is remote */
    weft__pb_fixed32(b, 16, (d->flags & 0xffu) | 0x100u | (d->parent_remote ? 0x200u : 0));
    weft__pb_close(b, span);
}

void weft__otlp_pb_batch(weft_buf_t *b, const char *resource, size_t resource_len,
                         const item_t *first, size_t n)
{
    /* ExportTraceServiceRequest { 1 ResourceSpans { 1 Resource { 1 attributes },
     * 2 ScopeSpans { 1 InstrumentationScope { 1 name, 2 version }, 2 spans } } } */
    size_t rs = weft__pb_open(b, 1);
    weft__pb_bytes(b, 1, resource, resource_len);
    size_t ss = weft__pb_open(b, 2);
    size_t scope = weft__pb_open(b, 1);
    weft__pb_bytes(b, 1, "weft", 4);
    weft__pb_bytes(b, 2, WEFT_VERSION, strlen(WEFT_VERSION));
    weft__pb_close(b, scope);
    const item_t *it = first;
    for (size_t i = 0; i < n; i++, it = it->next) weft__otlp_pb_span(b, it);
    weft__pb_close(b, ss);
    weft__pb_close(b, rs);
}
