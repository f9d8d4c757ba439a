/*
 * trace_int.h - helpers shared by the trace module's files (not part of the public API).
 */
#ifndef WEFT_TRACE_INT_H
#define WEFT_TRACE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/trace.h"

/* Decodes n lowercase hex characters (n even) into n/2 bytes; -1 on any other character. */
int weft__trace_unhex(const char *s, size_t n, uint8_t *out);

/* True when all n bytes are zero. */
bool weft__trace_all_zero(const uint8_t *b, size_t n);

/* Strips optional whitespace (SP, HTAB) from both ends of s[0..*len). */
const char *weft__trace_trim(const char *s, size_t *len);

/* Looks key (klen bytes) up in a normalised tracestate list; sets *value on success. */
bool weft__tracestate_find(const char *ts, size_t tslen, const char *key, size_t klen,
                           weft_str_t *value);

#endif
