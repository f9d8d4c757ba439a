/*
 * otlp_any.h - what the two OTLP decoders share (internal): the OTLP/JSON text that
 * span.h keeps for ARRAY and KVLIST attribute values, written the same from protobuf
 * (otlp_pb.c) and from JSON (otlp_json.c), so that one request decodes to the same bytes
 * in either encoding; the path of the field a 400 names; base64 and hex for the JSON side.
 *
 * The text is protobuf's canonical JSON of the values (field names in lowerCamelCase,
 * int64 as a decimal string, bytes as padded standard base64, NaN and infinities as
 * "NaN"/"Infinity"/"-Infinity", an AnyValue with no value as {}):
 *   ARRAY   [{"stringValue":"a"},{"intValue":"1"}]
 *   KVLIST  [{"key":"k","value":{"boolValue":true}}]
 * with nested arrays as {"arrayValue":{"values":[...]}} and lists as
 * {"kvlistValue":{"values":[...]}}.
 */
#ifndef WEFT_COLLECTOR_OTLP_ANY_H
#define WEFT_COLLECTOR_OTLP_ANY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "core/arena.h"
#include "core/buf.h"

/* One AnyValue of each kind, as a JSON object. */
void col_any_put_string(weft_buf_t *b, const char *s, size_t n);
void col_any_put_bool(weft_buf_t *b, bool v);
void col_any_put_int(weft_buf_t *b, int64_t v);
void col_any_put_double(weft_buf_t *b, double v);
void col_any_put_bytes(weft_buf_t *b, const uint8_t *p, size_t n);
static inline void col_any_put_empty(weft_buf_t *b)
{
    weft_buf_puts(b, "{}");
}
/* A nested array or list: open, the elements (separated by ','), close. */
#define COL_ANY_ARRAY_OPEN  "{\"arrayValue\":{\"values\":["
#define COL_ANY_KVLIST_OPEN "{\"kvlistValue\":{\"values\":["
#define COL_ANY_CLOSE       "]}}"
/* A KeyValue's start, {"key":"k","value": (the caller writes the value, then '}'). */
void col_any_put_key(weft_buf_t *b, const char *k, size_t n);

/* A value's text from b (reset afterwards) into a: 0, WEFT_ELIMIT (the arena's limit) or
 * WEFT_ENOMEM. b's limit is COL_VALUE_MAX + 1: text that reached it is over the limit
 * whatever its end, so what was written is kept (zero-filled to the limit) and
 * col_span_check refuses the span for it. */
int col_any_take(weft_buf_t *b, weft_arena_t *a, col_str_t *out);
#define COL_ANY_BUF_LIMIT (COL_VALUE_MAX + 1)

/* How deep AnyValues nest (an attribute's value is depth 1); deeper is a 400. */
#define COL_ANY_MAX_DEPTH 16

/* The path to the field being read, for messages naming it in OTLP/JSON's words
 * ("resourceSpans[0].scopeSpans[1].spans[3].attributes[2].value"): one step per message
 * entered, with its index in a repeated field (-1: none). Steps past the array's room are
 * counted, not kept (the message then stops at the deepest kept). */
typedef struct {
    const char *name;
    int index;
} col_seg_t;
typedef struct {
    col_seg_t seg[8 + 2 * COL_ANY_MAX_DEPTH];
    unsigned depth;
} col_path_t;

static inline void col_path_push(col_path_t *p, const char *name, int index)
{
    if (p->depth < sizeof(p->seg) / sizeof(p->seg[0])) p->seg[p->depth] = (col_seg_t){name, index};
    p->depth++;
}

static inline void col_path_pop(col_path_t *p)
{
    p->depth--;
}

/* "<path>.<field>: <msg>" into err (msg alone with neither path nor field); returns
 * WEFT_EINVAL. */
int col_path_errf(const col_path_t *p, const char *field, const char *msg, char *err,
                  size_t errlen);

/* Why a span is refused for an id that is not want bytes: "spanId must be 8 bytes (16 hex
 * digits)", or for link li (>= 0) "links[2].spanId ...", into buf. */
void col_id_why(char *buf, size_t n, const char *name, size_t want, int li);

/* Arena allocation with the right error: 0, WEFT_ELIMIT or WEFT_ENOMEM. */
int col_arena_alloc(weft_arena_t *a, size_t n, void **out);

/* Base64 (standard or URL-safe alphabet, padding optional, as protobuf's JSON parsers
 * take it) into out (room for n * 3 / 4 bytes): the length, or -1 when s is not base64. */
long col_base64_decode(const char *s, size_t n, uint8_t *out);
/* 2n hex digits (either case) into n bytes: false when one is not a hex digit. */
bool col_hex_decode(const char *s, size_t n, uint8_t *out);

#endif
