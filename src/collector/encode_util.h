/*
 * encode_util.h - what the query encoders (zipkin_json.c, jaeger_json.c) share: attribute
 * values written as text or as plain JSON, addresses as text, spans put in start order
 * (internal; the rules are in encode_util.c).
 *
 * Zipkin's tags are strings, so every attribute becomes text there; Jaeger's tags have a type
 * but no array or map, so those become text there too. Both encoders write values through
 * these so that a value reads the same in either API.
 */
#ifndef WEFT_COLLECTOR_ENCODE_UTIL_H
#define WEFT_COLLECTOR_ENCODE_UTIL_H

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "core/buf.h"

/* Appends a's value as text (unquoted, unescaped): a string as it is; a bool "true" or
 * "false"; an int in decimal; a double as its shortest JSON number that reads back exactly
 * ("1.5", "42", "1e+300"), or "NaN", "Infinity", "-Infinity"; bytes in base64 (RFC 4648,
 * padded); an array as a JSON list of plain values (`["a",1,true]`), a kvlist as a JSON
 * object (`{"k":"v"}`); an empty value as nothing. */
void col_attr_text(weft_buf_t *b, const col_attr_t *a);

/* Appends a's value as one JSON value: a string, bytes (base64), an empty value (null), a
 * number (NaN and the infinities as the strings of col_attr_text), true/false, or the list
 * or object of col_attr_text. */
void col_attr_json(weft_buf_t *b, const col_attr_t *a);

/* Appends the n bytes at p in base64 (standard alphabet, '=' padding). */
void col_base64(weft_buf_t *b, const uint8_t *p, size_t n);

/* Appends the finite or non-finite double v as col_attr_text does. */
void col_double_text(weft_buf_t *b, double v);

/* Room for an address written by col_ip_text, NUL included. */
#define COL_IP_TEXT 46

/* Writes the IPv4 (n 4) or IPv6 (n 16) address at ip into out (COL_IP_TEXT bytes) as
 * text, NUL-terminated, and returns its length: dotted decimal, or RFC 5952's form
 * (lowercase, no leading zeros, the longest run of two or more zero groups as "::", the
 * first of equal runs). */
size_t col_ip_text(const uint8_t *ip, size_t n, char *out);

/* Sorts the n spans by start time, spans that start together keeping their order (a stable
 * sort: the query answers must not change from one call to the next). false, with spans
 * unchanged, when out of memory. */
bool col_sort_by_start(col_span_t *spans, size_t n);

#endif
