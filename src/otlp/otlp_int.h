/*
 * otlp_int.h - what the OTLP exporter keeps internal but tests and fuzzers reach.
 */
#ifndef WEFT_OTLP_INT_H
#define WEFT_OTLP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/mpsc.h"
#include "weft/trace.h"

/* A finished span as the exporter keeps it: the fields OTLP needs, and one data area for
 * the arrays and strings, sized for this span (a few hundred bytes for a server span,
 * where weft_span_data_t's fixed arrays take about 3 KB). */
typedef struct item_s {
    weft_mpsc_node_t node;
    struct item_s *next; /* pending FIFO (exporter thread) */
    uint64_t queued_ms;  /* uv_now of the exporter loop when it arrived there */
    uint64_t start_ns, end_ns;
    uint8_t trace_id[16], span_id[8], parent_span_id[8];
    uint8_t flags; /* W3C trace flags */
    bool parent_remote;
    uint8_t kind;   /* weft_span_kind_t */
    uint8_t status; /* weft_span_status_t */
    uint16_t tracestate_len;
    uint16_t nattrs, nevents, nevent_attrs;
    unsigned dropped_attrs, dropped_events;
    const char *name, *tracestate, *status_message; /* into data; status_message may be NULL */
    weft_attr_t *attrs;                             /* nattrs, into data */
    weft_span_event_t *events;                      /* nevents, into data */
    weft_attr_t *event_attrs;                       /* nevent_attrs, into data */
    _Alignas(8) char data[];
} item_t;

/*
 * OTLP protobuf (otlp_pb.c), the wire format of opentelemetry-proto's messages, written
 * straight into a buffer: weft__pb_open writes a length-delimited field's tag and a
 * one-byte length placeholder and returns where its contents start; weft__pb_close sets the
 * length, moving the contents when it needs more than one byte.
 */
size_t weft__pb_open(weft_buf_t *b, unsigned field);
void weft__pb_close(weft_buf_t *b, size_t start);
void weft__pb_bytes(weft_buf_t *b, unsigned field, const void *p, size_t n);
void weft__pb_varint_field(weft_buf_t *b, unsigned field, uint64_t v);
/* A KeyValue (field `field`) with a string AnyValue. */
void weft__pb_string_kv(weft_buf_t *b, unsigned field, const char *key, const char *value);
/* A Span message as field 2 of ScopeSpans. */
void weft__otlp_pb_span(weft_buf_t *b, const item_t *d);

#endif
