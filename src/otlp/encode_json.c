/*
 * encode_json.c - spans as OTLP/JSON: an ExportTraceServiceRequest in the JSON mapping of
 * opentelemetry-proto (lowerCamelCase field names, trace and span ids as lowercase hex,
 * 64-bit integers and times as decimal strings, enums as integers).
 *
 * Written straight into the caller's buffer (core/buf.h): no tree of JSON values, no
 * allocation once the buffer has grown to a batch's size. Strings go through
 * weft_json_put_str (core/json_write.h), which escapes them and replaces bytes that are not
 * valid UTF-8 with U+FFFD: a receiver refuses a whole batch over one bad string. Doubles
 * JSON cannot hold are written as proto3 JSON's "NaN", "Infinity", "-Infinity". Fields are
 * the ones encode_pb.c writes, so the two encodings say the same of each span.
 *
 * A failed allocation marks the buffer failed (b->failed) and later writes do nothing; the
 * caller checks once at the end. Pure functions of their arguments: any thread.
 */
#include <math.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "otlp/otlp_int.h"
#include "weft/weft.h"

static void put_cstr(weft_buf_t *b, const char *s)
{
    weft_json_put_str(b, s, strlen(s));
}

/* A decimal string, as proto3 JSON writes 64-bit integers and OTLP its times. */
static void put_dec(weft_buf_t *b, uint64_t v)
{
    weft_buf_putc(b, '"');
    weft_buf_put_u64(b, v);
    weft_buf_putc(b, '"');
}

static void put_hex(weft_buf_t *b, const uint8_t *id, size_t n)
{
    weft_buf_putc(b, '"');
    weft_buf_put_hex(b, id, n);
    weft_buf_putc(b, '"');
}

/* AnyValue: int64 as a decimal string, doubles that JSON cannot hold as proto3 JSON's
 * "NaN", "Infinity", "-Infinity". */
static void put_any_value(weft_buf_t *b, const weft_attr_t *a)
{
    switch (a->type) {
    case WEFT_ATTR_STRING:
        weft_buf_puts(b, "{\"stringValue\":");
        put_cstr(b, a->v.s ? a->v.s : "");
        break;
    case WEFT_ATTR_INT:
        weft_buf_puts(b, "{\"intValue\":\"");
        weft_buf_put_i64(b, a->v.i);
        weft_buf_putc(b, '"');
        break;
    case WEFT_ATTR_DOUBLE:
        weft_buf_puts(b, "{\"doubleValue\":");
        if (!weft_json_put_double(b, a->v.d))
            weft_buf_puts(b, isnan(a->v.d) ? "\"NaN\""
                             : a->v.d > 0  ? "\"Infinity\""
                                           : "\"-Infinity\"");
        break;
    case WEFT_ATTR_BOOL:
        weft_buf_puts(b, a->v.b ? "{\"boolValue\":true" : "{\"boolValue\":false");
        break;
    default:
        weft_buf_puts(b, "{"); /* an unknown type: an empty AnyValue */
        break;
    }
    weft_buf_putc(b, '}');
}

/* "attributes":[KeyValue...] */
static void put_attributes(weft_buf_t *b, const weft_attr_t *a, unsigned n)
{
    weft_buf_puts(b, "\"attributes\":[");
    for (unsigned i = 0; i < n; i++) {
        if (i) weft_buf_putc(b, ',');
        weft_buf_puts(b, "{\"key\":");
        put_cstr(b, a[i].key ? a[i].key : "");
        weft_buf_puts(b, ",\"value\":");
        put_any_value(b, &a[i]);
        weft_buf_putc(b, '}');
    }
    weft_buf_putc(b, ']');
}

static void put_count(weft_buf_t *b, const char *key, uint64_t v)
{
    if (!v) return;
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_buf_put_u64(b, v);
}

static void encode_span(weft_buf_t *b, const item_t *d)
{
    static const uint8_t zero[8];
    /* SpanFlags: W3C trace flags in bits 0-7; bit 8 says bit 9 (parent is remote) is known */
    uint32_t flags = (d->flags & 0xffu) | 0x100u | (d->parent_remote ? 0x200u : 0);
    weft_buf_puts(b, "{\"traceId\":");
    put_hex(b, d->trace_id, 16);
    weft_buf_puts(b, ",\"spanId\":");
    put_hex(b, d->span_id, 8);
    if (memcmp(d->parent_span_id, zero, 8) != 0) {
        weft_buf_puts(b, ",\"parentSpanId\":");
        put_hex(b, d->parent_span_id, 8);
    }
    if (d->tracestate_len) {
        weft_buf_puts(b, ",\"traceState\":");
        weft_json_put_str(b, d->tracestate, d->tracestate_len);
    }
    weft_buf_puts(b, ",\"flags\":");
    weft_buf_put_u64(b, flags);
    weft_buf_puts(b, ",\"name\":");
    put_cstr(b, d->name);
    weft_buf_puts(b, ",\"kind\":"); /* SPAN_KIND_*: weft's kinds in proto order, from 1 */
    weft_buf_put_u64(b, (uint64_t)d->kind + 1);
    weft_buf_puts(b, ",\"startTimeUnixNano\":");
    put_dec(b, d->start_ns);
    weft_buf_puts(b, ",\"endTimeUnixNano\":");
    put_dec(b, d->end_ns);
    weft_buf_putc(b, ',');
    put_attributes(b, d->attrs, d->nattrs);
    put_count(b, "droppedAttributesCount", d->dropped_attrs);
    put_count(b, "droppedEventsCount", d->dropped_events);
    if (d->nevents) {
        weft_buf_puts(b, ",\"events\":[");
        for (unsigned i = 0; i < d->nevents; i++) {
            const weft_span_event_t *e = &d->events[i];
            if (i) weft_buf_putc(b, ',');
            weft_buf_puts(b, "{\"timeUnixNano\":");
            put_dec(b, e->time_ns);
            weft_buf_puts(b, ",\"name\":");
            put_cstr(b, e->name ? e->name : "");
            weft_buf_putc(b, ',');
            put_attributes(b, e->attrs, e->attrs ? e->nattrs : 0);
            put_count(b, "droppedAttributesCount", e->dropped_attrs);
            weft_buf_putc(b, '}');
        }
        weft_buf_putc(b, ']');
    }
    if (d->status != WEFT_SPAN_STATUS_UNSET) { /* STATUS_CODE_OK 1, ERROR 2 */
        weft_buf_puts(b, ",\"status\":{\"code\":");
        weft_buf_put_u64(b, d->status);
        if (d->status_message && d->status_message[0]) {
            weft_buf_puts(b, ",\"message\":");
            put_cstr(b, d->status_message);
        }
        weft_buf_putc(b, '}');
    }
    weft_buf_putc(b, '}');
}

void weft__otlp_json_string_kv(weft_buf_t *b, const char *key, const char *value)
{
    weft_buf_puts(b, "{\"key\":");
    put_cstr(b, key);
    weft_buf_puts(b, ",\"value\":{\"stringValue\":");
    put_cstr(b, value);
    weft_buf_puts(b, "}}");
}

void weft__otlp_json_batch(weft_buf_t *b, const char *resource, const item_t *first, size_t n)
{
    weft_buf_puts(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    weft_buf_puts(b, resource);
    weft_buf_puts(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"weft\",\"version\":\"" WEFT_VERSION
                     "\"},\"spans\":[");
    const item_t *it = first;
    for (size_t i = 0; i < n; i++, it = it->next) {
        if (i) weft_buf_putc(b, ',');
        encode_span(b, it);
    }
    weft_buf_puts(b, "]}]}]}");
}
