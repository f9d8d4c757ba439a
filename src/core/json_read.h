/*
 * json_read.h - a pull reader of JSON text (internal; the rules are in json_read.c).
 *
 * For bodies that are decoded straight into a struct, field by field, where building a
 * tree (jansson) first would cost more than the decoding: span ingest reads hundreds of
 * MB/s of OTLP/JSON and Zipkin JSON. Nothing is allocated but strings with escapes, which
 * are unescaped into the arena; other strings point into the text.
 *
 *     weft_jr_t r;
 *     weft_jr_init(&r, body, len, arena);
 *     weft_jr_str_t key;
 *     if (weft_jr_object(&r))
 *         while (weft_jr_key(&r, &key)) {
 *             if (weft_jr_key_is(key, "name")) weft_jr_string(&r, &name);
 *             else weft_jr_skip(&r);
 *         }
 *     weft_jr_end(&r);          // nothing but blanks may follow the value
 *     if (r.err) ... 400 with r.err and r.err_off
 *
 * Every call after the first error does nothing and returns false/0, so a decoder checks
 * r.err once at the end (or earlier to stop work). The text must be valid JSON (RFC 8259):
 * a reader that skips a value still checks its syntax; strings must be valid UTF-8;
 * nesting is limited to WEFT_JR_MAX_DEPTH.
 */
#ifndef WEFT_CORE_JSON_READ_H
#define WEFT_CORE_JSON_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

#define WEFT_JR_MAX_DEPTH 64

typedef enum {
    WEFT_JR_NONE = 0, /* end of text, or after an error */
    WEFT_JR_OBJECT,
    WEFT_JR_ARRAY,
    WEFT_JR_STRING,
    WEFT_JR_NUMBER,
    WEFT_JR_TRUE,
    WEFT_JR_FALSE,
    WEFT_JR_NULL
} weft_jr_type_t;

typedef struct weft_jr_str_s {
    const char *p; /* into the text, or into the arena when it had escapes */
    size_t n;
} weft_jr_str_t;

typedef struct weft_jr_s {
    const char *start, *p, *end;
    weft_arena_t *arena;
    unsigned depth;
    uint64_t arrays; /* bit d: the container at depth d + 1 is an array (else an object) */
    bool first;      /* no member/element read yet in the innermost object/array */
    const char *err; /* NULL, or a static phrase: "expected a string", "invalid UTF-8", ... */
    size_t err_off;  /* byte offset of the error in the text */
    int err_code;    /* with err: WEFT_EINVAL (the text), WEFT_ELIMIT (a string with escapes
                      * past the arena's limit: "string too long") or WEFT_ENOMEM */
} weft_jr_t;

void weft_jr_init(weft_jr_t *r, const char *text, size_t n, weft_arena_t *arena);

/* The type of the next value, without reading it (blanks are skipped). */
weft_jr_type_t weft_jr_peek(weft_jr_t *r);

/* Enters the object that is the next value: true, or false with an error when it is not
 * one. Then weft_jr_key gives each member's key (the caller must read or skip the value
 * before the next call), and false after the closing brace (or on error). */
bool weft_jr_object(weft_jr_t *r);
bool weft_jr_key(weft_jr_t *r, weft_jr_str_t *key);
/* Enters the array that is the next value; weft_jr_next says whether an element follows
 * (to be read or skipped), false after the closing bracket (or on error). */
bool weft_jr_array(weft_jr_t *r);
bool weft_jr_next(weft_jr_t *r);

/* Read the next value, which must be of their type (else an error, and false): */
bool weft_jr_string(weft_jr_t *r, weft_jr_str_t *s);
bool weft_jr_bool(weft_jr_t *r, bool *b);
bool weft_jr_double(weft_jr_t *r, double *d); /* a number */
/* An integer: a JSON number without fraction or exponent, or a string holding one (as
 * proto3 JSON writes 64-bit values); out of range is an error. */
bool weft_jr_int64(weft_jr_t *r, int64_t *v);
bool weft_jr_uint64(weft_jr_t *r, uint64_t *v);
/* null: true (and read) when the next value is null, false (nothing read, no error) else. */
bool weft_jr_null(weft_jr_t *r);
/* Skips the next value, whatever it is (checking its syntax). */
bool weft_jr_skip(weft_jr_t *r);
/* The next value's text exactly as written (no surrounding blanks), after checking it. */
bool weft_jr_raw(weft_jr_t *r, weft_jr_str_t *raw);
/* After the top-level value: only blanks may follow. */
bool weft_jr_end(weft_jr_t *r);

/* Sets the error (when none is set yet) at the current position; returns false. For a
 * decoder's own refusals ("traceId must be 32 hex digits"), so that they carry an offset. */
bool weft_jr_fail(weft_jr_t *r, const char *msg);

/* Whether s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), with the strings' fast scan: for protobuf's string fields. */
bool weft_jr_utf8_valid(const char *s, size_t n);

/* Raw steps, for a decoder's fast path over text that senders write in one exact form
 * (OTLP/JSON's {"key":"k","value":{"stringValue":"v"}}): they read r->p as it is (no blanks
 * skipped), never set an error and leave the reader's nesting alone, so the caller must
 * step over whole values only, and on a miss put r->p back where its fast path began and
 * read that text the ordinary way (which then judges it).
 * weft_jr_lit: the n bytes of lit are next: stepped over, true. weft_jr_plain_string: a
 * string with no escapes, no control bytes and well-formed UTF-8 is next: *s views it, it
 * is stepped over, true; false for anything else (nothing read). */
static inline bool weft_jr_lit(weft_jr_t *r, const char *lit, size_t n)
{
    /* inline: with n a constant the comparison is a few instructions, not a call */
    if (r->err || (size_t)(r->end - r->p) < n || __builtin_memcmp(r->p, lit, n) != 0) return false;
    r->p += n;
    return true;
}
bool weft_jr_plain_string(weft_jr_t *r, weft_jr_str_t *s);

static inline bool weft_jr_key_is(weft_jr_str_t k, const char *lit)
{
    size_t n = __builtin_strlen(lit);
    return k.n == n && __builtin_memcmp(k.p, lit, n) == 0;
}

#endif
