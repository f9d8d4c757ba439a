/*
 * buf.h - a growable byte buffer for building text: response bodies, export bodies, the
 * Prometheus exposition (internal; the design is in buf.c).
 *
 * Failure is sticky, so a writer checks once at the end instead of after every put:
 *
 *     weft_buf_t b;
 *     weft_buf_init(&b, max_body);
 *     weft_buf_puts(&b, "{\"n\":");
 *     weft_buf_put_u64(&b, n);
 *     weft_buf_putc(&b, '}');
 *     size_t len;
 *     char *body = weft_buf_take(&b, &len);   NULL: out of memory or over max_body
 *     if (!body) return WEFT_ENOMEM;
 *
 * Invariants: len <= limit <= SIZE_MAX / 2; while p != NULL, len < cap and p[len] == 0
 * (the contents are always a C string, though they may hold NUL bytes of their own). Once
 * failed is set (an allocation failed, or a put would have gone past limit), every later
 * put and reserve does nothing and failed stays set until weft_buf_reset or weft_buf_free;
 * the bytes written before the failure stay as they were. A caller may set failed itself to
 * record a failure of its own (the exposition does when a malloc of its own fails).
 *
 * Memory: the buffer owns p (malloc'd) until weft_buf_take hands it over. Never aborts.
 * Threads: one thread at a time; no locking.
 */
#ifndef WEFT_CORE_BUF_H
#define WEFT_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct weft_buf_s {
    char *p;      /* the contents, NUL-terminated; NULL until the first allocation */
    size_t len;   /* bytes written, not counting the terminating NUL */
    size_t cap;   /* bytes allocated at p (room for len, more bytes, and the NUL) */
    size_t limit; /* len never exceeds this */
    bool failed;  /* sticky: an allocation failed or limit was reached */
} weft_buf_t;

/* Sets up an empty buffer that will hold at most limit bytes (0 or anything above
 * SIZE_MAX / 2 means SIZE_MAX / 2). Allocates nothing. */
void weft_buf_init(weft_buf_t *b, size_t limit);
/* Frees the memory; b is empty again, as after weft_buf_init with the same limit. */
void weft_buf_free(weft_buf_t *b);
/* Empties b (len 0, failed cleared) and keeps its memory for the next use. */
void weft_buf_reset(weft_buf_t *b);
/* Makes room for n more bytes and the NUL, so that the next n bytes of puts cannot fail.
 * Returns false (and sets failed) when b has failed, memory ran out, or len + n would pass
 * limit. A successful reserve always leaves p allocated, even for n == 0. */
bool weft_buf_reserve(weft_buf_t *b, size_t n);

/* As weft_buf_reserve, but a refusal leaves b as it was, failed flag included: for a
 * writer that reports "no memory" for one piece and carries on (a streamed request body). */
bool weft_buf_try_reserve(weft_buf_t *b, size_t n);

/* Bytes that can be written at p + len without growing: cap - len - 1, or 0 when nothing is
 * allocated or b has failed. Readers fill this room directly (read(2) into p + len), then
 * call weft_buf_commit. */
static inline size_t weft_buf_room(const weft_buf_t *b)
{
    return b->p && !b->failed ? b->cap - b->len - 1 : 0;
}

/* Counts n bytes that the caller wrote at p + len; n <= weft_buf_room(b). Keeps the NUL. */
static inline void weft_buf_commit(weft_buf_t *b, size_t n)
{
    b->len += n;
    b->p[b->len] = 0;
}

/* Drops the first n bytes (n <= len), moving the rest to the front; the memory stays. */
void weft_buf_consume(weft_buf_t *b, size_t n);

/* The growth path of the puts below; call those instead. */
void weft__buf_put_slow(weft_buf_t *b, const void *s, size_t n);

/* Appends the n bytes at s (which may be NULL when n is 0). A put that does not fail
 * leaves p allocated and NUL-terminated, even for n == 0. */
static inline void weft_buf_put(weft_buf_t *b, const void *s, size_t n)
{
    if (n < b->cap - b->len && !b->failed) { /* cap 0: never true, p is NULL */
        if (n) memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
        return;
    }
    weft__buf_put_slow(b, s, n);
}

/* Appends the C string s (without its NUL). */
static inline void weft_buf_puts(weft_buf_t *b, const char *s)
{
    weft_buf_put(b, s, strlen(s));
}

/* Appends one byte (which may be 0). */
static inline void weft_buf_putc(weft_buf_t *b, char c)
{
    if (b->cap - b->len > 1 && !b->failed) {
        b->p[b->len++] = c;
        b->p[b->len] = 0;
        return;
    }
    weft__buf_put_slow(b, &c, 1);
}

/* Appends v in decimal ("0", "18446744073709551615"). */
void weft_buf_put_u64(weft_buf_t *b, uint64_t v);
/* Appends v in decimal with a '-' when negative ("-9223372036854775808"). */
void weft_buf_put_i64(weft_buf_t *b, int64_t v);
/* Appends v in lowercase hex without leading zeros ("0", "1f", "ffffffffffffffff"): the
 * size line of a chunk. */
void weft_buf_put_x64(weft_buf_t *b, uint64_t v);
/* Appends the n bytes at bytes as 2n lowercase hex digits (trace and span ids). */
void weft_buf_put_hex(weft_buf_t *b, const uint8_t *bytes, size_t n);

/* Hands the contents over: returns p (NUL-terminated, to be released with free()) and
 * stores len in *len (when len is not NULL), then leaves b empty with nothing allocated,
 * as after weft_buf_init with the same limit. An empty buffer that never allocated gives a
 * malloc'd "" (len 0). Returns NULL, with *len = 0, when b has failed (its memory is freed)
 * or when that "" cannot be allocated. So NULL always means "out of memory or over the
 * limit", and a caller needs no other check. */
char *weft_buf_take(weft_buf_t *b, size_t *len);

#endif
