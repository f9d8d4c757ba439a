/*
 * buf.c - the growable byte buffer of buf.h: the growth path, numbers, hex, hand-over.
 *
 * Design. The common put (enough room: one memcpy and a NUL) is inline in buf.h; only a put
 * that needs more room, or meets a failed buffer, calls weft__buf_put_slow here. Growth
 * doubles the allocation, starting at 256 bytes (or the need, if larger), and is capped at
 * limit + 1 bytes, so a buffer near its limit does not allocate twice what it may hold.
 *
 * Arithmetic. limit is at most SIZE_MAX / 2 and len <= limit, so limit - len never wraps, a
 * request is refused by comparing n with limit - len (never by adding first), and the need,
 * len + n + 1 <= SIZE_MAX / 2 + 1, can be doubled towards without overflow.
 *
 * Failure is sticky (see buf.h): weft_buf_reserve is the one place that sets failed for
 * growth, and every writer goes through it or through the inline fast path, which checks
 * failed first. Numbers are formatted by hand (no printf, no locale). Never aborts: a
 * failed malloc/realloc only sets failed and the old contents stay allocated until freed.
 *
 * Reading into a buffer. weft_buf_room and weft_buf_commit (inline) let a reader fill the
 * room after len in place, so bytes are never copied from a separate read buffer, and
 * weft_buf_consume drops what was parsed from the front (one memmove of the rest).
 * weft_buf_try_reserve is reserve without the sticky failure, for a writer that refuses one
 * piece and carries on.
 *
 * Threads: one thread at a time per buffer; no shared state.
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define BUF_MAX   (SIZE_MAX / 2)
#define BUF_FIRST 256 /* the first allocation, unless the first need is larger */

void weft_buf_init(weft_buf_t *b, size_t limit)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit == 0 || limit > BUF_MAX ? BUF_MAX : limit;
    b->failed = false;
}

void weft_buf_free(weft_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}

void weft_buf_reset(weft_buf_t *b)
{
    b->len = 0;
    b->failed = false;
    if (b->p) b->p[0] = 0;
}

bool weft_buf_reserve(weft_buf_t *b, size_t n)
{
    if (b->failed) return false;
    if (n < b->cap - b->len) return true; /* room for n bytes and the NUL already */
    if (n > b->limit - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + n + 1;                 /* <= limit + 1 <= BUF_MAX + 1: no overflow */
    size_t cap = b->cap ? b->cap * 2 : BUF_FIRST; /* cap <= limit + 1: no overflow */
    if (cap < need) cap = need;
    if (cap > b->limit + 1) cap = b->limit + 1;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    if (!b->p) p[0] = 0; /* a new allocation holds the empty string */
    b->p = p;
    b->cap = cap;
    return true;
}

bool weft_buf_try_reserve(weft_buf_t *b, size_t n)
{
    if (b->failed) return false;
    if (weft_buf_reserve(b, n)) return true;
    b->failed = false; /* the refusal changed nothing else: contents and memory are intact */
    return false;
}

void weft_buf_consume(weft_buf_t *b, size_t n)
{
    if (n == 0) return;
    memmove(b->p, b->p + n, b->len - n + 1); /* the NUL comes along */
    b->len -= n;
}

void weft__buf_put_slow(weft_buf_t *b, const void *s, size_t n)
{
    if (!weft_buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Writes v in decimal, preceded by '-' when neg, ending just before end; returns the
 * first character. end must have 21 bytes before it. */
static char *fmt_dec(char *end, uint64_t v, bool neg)
{
    char *d = end;
    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg) *--d = '-';
    return d;
}

void weft_buf_put_u64(weft_buf_t *b, uint64_t v)
{
    char tmp[21]; /* UINT64_MAX has 20 digits; INT64_MIN has 19 and a '-' */
    char *d = fmt_dec(tmp + sizeof(tmp), v, false);
    weft_buf_put(b, d, (size_t)(tmp + sizeof(tmp) - d));
}

void weft_buf_put_i64(weft_buf_t *b, int64_t v)
{
    char tmp[21];
    /* modular negation gives the magnitude, INT64_MIN's (2^63) included */
    char *d = fmt_dec(tmp + sizeof(tmp), v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
    weft_buf_put(b, d, (size_t)(tmp + sizeof(tmp) - d));
}

void weft_buf_put_x64(weft_buf_t *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    char *d = tmp + sizeof(tmp);
    do {
        *--d = digits[v & 15];
        v >>= 4;
    } while (v);
    weft_buf_put(b, d, (size_t)(tmp + sizeof(tmp) - d));
}

void weft_buf_put_hex(weft_buf_t *b, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (n > BUF_MAX / 2) { /* 2n would pass any limit */
        b->failed = true;
        return;
    }
    if (!weft_buf_reserve(b, 2 * n)) return;
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        *o++ = digits[bytes[i] >> 4];
        *o++ = digits[bytes[i] & 15];
    }
    b->len += 2 * n;
    b->p[b->len] = 0;
}

char *weft_buf_take(weft_buf_t *b, size_t *len)
{
    if (len) *len = 0;
    if (!b->failed && !b->p) weft_buf_reserve(b, 0); /* "" for a buffer never written to */
    if (b->failed) {
        weft_buf_free(b);
        return NULL;
    }
    char *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
