/*
 * decode.h - the ingest formats, decoded into span.h's batch (internal): OTLP/HTTP's
 * ExportTraceServiceRequest in protobuf (otlp_pb.c) and in JSON (otlp_json.c), and Zipkin
 * v2's JSON list of spans (zipkin_json.c).
 *
 * Each returns:
 *   0            the body was read; b->spans/b->n are the accepted spans and b->rejected
 *                those refused one by one (col_span_check), with b->reject_msg;
 *   WEFT_EINVAL  the body is not a valid request: err says where and what ("resourceSpans[0]
 *                .scopeSpans[1].spans[3].traceId: must be 16 bytes", "offset 1234: invalid
 *                JSON: expected ':'"); nothing of it is kept (400);
 *   WEFT_ELIMIT  more than COL_MAX_BATCH_SPANS spans, or the arena's limit (413);
 *   WEFT_ENOMEM.
 * Strings point into the body or into a (they live until a is reset). Never reads past
 * n bytes; no recursion deeper than the formats' own nesting limits.
 */
#ifndef WEFT_COLLECTOR_DECODE_H
#define WEFT_COLLECTOR_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "core/arena.h"

int col_otlp_pb_decode(const uint8_t *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                       size_t errlen);
int col_otlp_json_decode(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                         size_t errlen);
int col_zipkin_json_decode(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                           size_t errlen);

#endif
