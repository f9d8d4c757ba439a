/*
 * span.h - the collector's span: what every ingest format is decoded into, what the trace
 * store keeps, and what every query format is encoded from (internal).
 *
 * It is OTLP's Span with its Resource and InstrumentationScope, plus the few fields of
 * Zipkin v2 that OTLP has no place for (the endpoints' addresses and ports, shared, debug),
 * so that a span sent in either format reads back exactly through either query API.
 *
 * Strings are views ({p, n}, not NUL-terminated): a decoder points them into the request
 * body where it can (protobuf, JSON strings without escapes) and copies into the batch's
 * arena where it must. A batch and everything it points to live until the arena is reset;
 * the decoded body must outlive it too.
 *
 * Limits (checked by col_span_check, shared by every decoder, so that each format refuses
 * the same things with the same words): below.
 */
#ifndef WEFT_COLLECTOR_SPAN_H
#define WEFT_COLLECTOR_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

#define COL_NAME_MAX          1024u   /* span, event and operation names, bytes */
#define COL_KEY_MAX           256u    /* attribute keys, bytes */
#define COL_VALUE_MAX         65536u  /* one attribute value (string, bytes, array as JSON) */
#define COL_MAX_ATTRS         256u    /* per span, resource, scope, event or link */
#define COL_MAX_EVENTS        1024u   /* per span */
#define COL_MAX_LINKS         128u    /* per span */
#define COL_MAX_SPAN_BYTES    1048576u /* a span's strings together */
#define COL_MAX_BATCH_SPANS   65536u  /* per request */

typedef struct col_str_s {
    const char *p;
    uint32_t n;
} col_str_t;

#define COL_STR(lit) ((col_str_t){.p = (lit), .n = sizeof(lit) - 1})

/* OTLP's AnyValue. ARRAY and KVLIST values are kept as their OTLP/JSON text in v.s
 * (`[{"stringValue":"a"},...]`, `[{"key":"k","value":{...}},...]`): they are rare, only
 * shown, never searched. BYTES are the raw bytes. */
typedef enum {
    COL_V_STRING = 0,
    COL_V_BOOL = 1,
    COL_V_INT = 2,
    COL_V_DOUBLE = 3,
    COL_V_BYTES = 4,
    COL_V_ARRAY = 5,
    COL_V_KVLIST = 6,
    COL_V_EMPTY = 7 /* an AnyValue with no value set */
} col_vtype_t;

typedef struct col_attr_s {
    col_str_t key;
    uint8_t type; /* col_vtype_t */
    union {
        col_str_t s; /* STRING, BYTES, ARRAY, KVLIST */
        int64_t i;
        double d;
        bool b;
    } v;
} col_attr_t;

typedef struct col_event_s {
    uint64_t time_ns; /* Unix epoch */
    col_str_t name;
    col_attr_t *attrs;
    uint32_t nattrs, dropped_attrs;
} col_event_t;

typedef struct col_link_s {
    uint8_t trace_id[16], span_id[8];
    col_str_t trace_state;
    uint32_t flags;
    col_attr_t *attrs;
    uint32_t nattrs, dropped_attrs;
} col_link_t;

/* Zipkin's endpoint. The service name of a span's local endpoint is its resource's
 * service; a remote endpoint's service is kept here. */
typedef struct col_endpoint_s {
    col_str_t service; /* remote only */
    uint8_t ipv4[4], ipv6[16];
    bool has_ipv4, has_ipv6;
    uint16_t port; /* 0: none */
} col_endpoint_t;

/* A Resource (shared by the spans of one ResourceSpans, or of one Zipkin service). */
typedef struct col_resource_s {
    col_str_t service; /* service.name's string value; "" when it has none */
    col_attr_t *attrs; /* all of them, service.name too */
    uint32_t nattrs, dropped_attrs;
} col_resource_t;

/* An InstrumentationScope (shared by the spans of one ScopeSpans). */
typedef struct col_scope_s {
    col_str_t name, version;
    col_attr_t *attrs;
    uint32_t nattrs, dropped_attrs;
} col_scope_t;

/* OTLP's numbers for kind and status, which Zipkin's and Jaeger's are mapped from. */
enum {
    COL_KIND_UNSPECIFIED = 0,
    COL_KIND_INTERNAL = 1,
    COL_KIND_SERVER = 2,
    COL_KIND_CLIENT = 3,
    COL_KIND_PRODUCER = 4,
    COL_KIND_CONSUMER = 5
};
enum { COL_STATUS_UNSET = 0, COL_STATUS_OK = 1, COL_STATUS_ERROR = 2 };

typedef struct col_span_s {
    uint8_t trace_id[16], span_id[8], parent_id[8]; /* parent all zero: a root span */
    uint64_t start_ns, end_ns;                      /* Unix epoch */
    col_str_t name, trace_state, status_message;
    uint8_t kind;   /* COL_KIND_* */
    uint8_t status; /* COL_STATUS_* */
    bool shared, debug; /* Zipkin's */
    uint32_t flags;     /* OTLP's Span.flags (W3C trace flags in the low byte) */
    const col_resource_t *resource; /* never NULL */
    const col_scope_t *scope;       /* never NULL */
    col_attr_t *attrs;
    uint32_t nattrs, dropped_attrs;
    col_event_t *events;
    uint32_t nevents, dropped_events;
    col_link_t *links;
    uint32_t nlinks, dropped_links;
    col_endpoint_t local, remote; /* Zipkin's; local.service is unused */
} col_span_t;

/* A decoded request: its spans, and what was refused of it (OTLP's partial_success). */
typedef struct col_batch_s {
    col_span_t *spans; /* in the arena */
    size_t n;
    size_t rejected;     /* spans refused one by one (col_span_check) */
    char reject_msg[256]; /* the first refusal, naming the span and what is wrong */
} col_batch_t;

/* NULL, or what is wrong with s (trace or span id all zero, end before start, a name,
 * key or value over its limit, more attributes/events/links than allowed): one phrase,
 * e.g. "traceId is all zero", "endTimeUnixNano is before startTimeUnixNano". */
const char *col_span_check(const col_span_t *s);

/* NULL, or what is wrong with a resource or scope (either may be NULL) by the limits that
 * col_span_check applies to them with each span ("resource.attributes[2].key is longer
 * than 256 bytes"): for a decoder that reads one after some of its spans. */
const char *col_shared_check(const col_resource_t *r, const col_scope_t *s);

/* Records a refused span in b: counts it, and keeps the first message as
 * "span <index>: <why>". */
void col_batch_reject(col_batch_t *b, size_t index, const char *why);

/* The string value of attribute key among attrs, or NULL when it is missing or not a
 * string. */
const col_str_t *col_attr_str(const col_attr_t *attrs, uint32_t n, const char *key);

static inline bool col_str_eq(col_str_t s, const char *z, size_t n)
{
    return s.n == n && (n == 0 || __builtin_memcmp(s.p, z, n) == 0);
}

#endif
