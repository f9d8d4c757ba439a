/*
 * json_write.h - JSON strings, keys and numbers written straight into a weft_buf_t
 * (internal; the rules are in json_write.c).
 *
 * For bodies that are only ever written, never read back: build them with weft_buf_putc for
 * the punctuation, these for the values, and check b->failed once at the end.
 *
 *     weft_buf_putc(&b, '{');
 *     weft_json_put_key(&b, "name");
 *     weft_json_put_str(&b, span->name, strlen(span->name));
 *     weft_buf_putc(&b, ',');
 *     weft_json_put_key(&b, "value");
 *     if (!weft_json_put_double(&b, v)) weft_buf_puts(&b, "null");
 *     weft_buf_putc(&b, '}');
 */
#ifndef WEFT_CORE_JSON_WRITE_H
#define WEFT_CORE_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Appends the n bytes at s as one quoted JSON string. Any bytes are accepted (NUL bytes
 * and invalid UTF-8 included): controls are escaped, each byte that does not start a valid
 * UTF-8 sequence becomes U+FFFD, so the result is always a valid JSON string. */
void weft_json_put_str(weft_buf_t *b, const char *s, size_t n);
/* Appends the n bytes at s as UTF-8, unquoted and unescaped: each byte that does not start a
 * well-formed sequence becomes U+FFFD, as in weft_json_put_str (protobuf's string fields,
 * which receivers refuse whole requests for, must be valid UTF-8). */
void weft_buf_put_utf8(weft_buf_t *b, const char *s, size_t n);
/* Appends "key": for a key that needs no escaping (a plain ASCII literal; not checked). */
void weft_json_put_key(weft_buf_t *b, const char *key);
/* Appends finite v as a JSON number that reads back (strtod) as exactly v. Returns false
 * and appends nothing when v is NaN or infinite (JSON has no such numbers); true
 * otherwise, whether or not b had room (that is reported by b->failed). */
bool weft_json_put_double(weft_buf_t *b, double v);

#endif
