/*
 * encode.h - the query formats, encoded from span.h's spans (internal): Zipkin v2's JSON
 * (zipkin_json.c) and the Jaeger query service's JSON (jaeger_json.c), each field as those
 * projects' own servers write it, so that their UIs and clients read weft unchanged.
 *
 * Out of memory marks b failed (checked once by the caller).
 */
#ifndef WEFT_COLLECTOR_ENCODE_H
#define WEFT_COLLECTOR_ENCODE_H

#include <stddef.h>

#include "collector/span.h"
#include "core/buf.h"

/* One Zipkin v2 Span object. */
void col_zipkin_json_span(weft_buf_t *b, const col_span_t *s);
/* A trace as Zipkin's /api/v2/trace/{id} answers it: a JSON array of its spans, sorted by
 * start time. The spans array is reordered. */
void col_zipkin_json_trace(weft_buf_t *b, col_span_t *spans, size_t n);

/* One trace as the Jaeger query service's /api/traces lists it: {"traceID", "spans",
 * "processes", "warnings"}, spans sorted by start time (the array is reordered), one
 * process per distinct (service, resource). */
void col_jaeger_json_trace(weft_buf_t *b, col_span_t *spans, size_t n);

#endif
