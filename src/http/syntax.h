/*
 * syntax.h - the HTTP syntax rules of libweft, written once (internal; STYLE.md 14).
 *
 * What a token, a header value, a request target and a host may hold (RFC 9110, RFC 9112,
 * RFC 3986), as the server checks requests, the router checks methods and patterns and the
 * URL splitter checks hosts. Each is a pure function over (pointer, length); none of them
 * reads past p + n or needs a NUL terminator.
 *
 * The ones a request runs through on every request are static inline here: is_tchar (every
 * header name byte), target_clean and value_clean (the target and every header value, eight
 * bytes at a time), ieqn for the few header names the server looks for. The rest live in
 * syntax.c. Threads: any.
 */
#ifndef WEFT_HTTP_SYNTAX_H
#define WEFT_HTTP_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RFC 9110 5.6.2 tchar, as a table (1: a tchar): header names are checked byte by byte. */
extern const uint8_t weft__http_tchar[256];

/* ch is a tchar: ALPHA, DIGIT or one of !#$%&'*+-.^_`|~ */
static inline bool weft__http_is_tchar(unsigned char ch)
{
    return weft__http_tchar[ch] != 0;
}

/* Every one of the n bytes at p is a tchar (true for n == 0). */
static inline bool weft__http_tchars(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!weft__http_is_tchar((unsigned char)p[i])) return false;
    return true;
}

/* A token: one or more tchars (a method, a header name). */
static inline bool weft__http_token(const char *p, size_t n)
{
    return n > 0 && weft__http_tchars(p, n);
}

static inline bool weft__http_is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static inline bool weft__http_is_alpha(unsigned char ch)
{
    return (unsigned char)((ch | 0x20) - 'a') < 26;
}

/* The value of a hex digit (either case), or -1. */
static inline int weft__http_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* ASCII case-insensitive a == b (alen and blen bytes). */
static inline bool weft__http_ieqn(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x |= 0x20;
        if (y >= 'A' && y <= 'Z') y |= 0x20;
        if (x != y) return false;
    }
    return true;
}

/* The same against a C string b. */
static inline bool weft__http_ieq(const char *a, size_t alen, const char *b)
{
    return weft__http_ieqn(a, alen, b, strlen(b));
}

/* The same against a string literal: its length is known at compile time. */
#define WEFT__HTTP_IEQ_LIT(a, alen, lit) weft__http_ieqn((a), (alen), (lit), sizeof(lit) - 1)

/* Eight bytes at a time (SWAR): the target and every header value are scanned for control
 * characters on each request. swar_below is exact as a yes/no answer for lim <= 128 (a
 * borrow only propagates out of a byte that is itself below lim). */
#define WEFT__HTTP_ONES  0x0101010101010101ull
#define WEFT__HTTP_HIGHS 0x8080808080808080ull

static inline uint64_t weft__http_load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Some byte of v is below lim (lim <= 128). */
static inline bool weft__http_swar_below(uint64_t v, unsigned lim)
{
    return ((v - WEFT__HTTP_ONES * lim) & ~v & WEFT__HTTP_HIGHS) != 0;
}

/* Some byte of v is b. */
static inline bool weft__http_swar_has(uint64_t v, unsigned char b)
{
    return weft__http_swar_below(v ^ (WEFT__HTTP_ONES * b), 1);
}

/* A request target (and a host in a URL): no byte <= SP, no DEL; bytes >= 0x80 pass. */
static inline bool weft__http_target_clean(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = weft__http_load8(p + i);
        if (weft__http_swar_below(v, 0x21) || weft__http_swar_has(v, 0x7f)) return false;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch == 0x7f) return false;
    }
    return true;
}

/* A header value (RFC 9110 5.5, as received): no CR, LF or NUL. Words with no byte below
 * 0x0e are skipped whole; from the first that has one, bytes are looked at one by one. */
static inline bool weft__http_value_clean(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (weft__http_swar_below(weft__http_load8(p + i), 0x0e)) break;
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r' || ch == '\n' || ch == 0) return false;
    }
    return true;
}

/* Is the token a[0..n) the literal lit[0..n) in any case? lit holds only lowercase letters,
 * digits and '-'. Each byte of a is ORed with 0x20, which lowercases letters and leaves
 * digits and '-' as they are; the only other bytes it could turn into one of those are not
 * tchars, so for a token the answer is exact. Eight bytes at a time (overlapping loads for
 * the tail): a proxy classifies every header of every message. */
static inline bool weft__http_token_is(const char *a, const char *lit, size_t n)
{
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            if ((weft__http_load8(a + i) | 0x2020202020202020ull) != weft__http_load8(lit + i))
                return false;
        return i == n || (weft__http_load8(a + n - 8) | 0x2020202020202020ull) ==
                             weft__http_load8(lit + n - 8);
    }
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)a[i] | 0x20) != (unsigned char)lit[i]) return false;
    return true;
}

/*
 * RFC 3986 authority without user information, as Host carries it (RFC 9110 7.2): a
 * reg-name (unreserved, sub-delims, '%') or a bracketed IP literal (hex digits, ':' and '.'
 * inside the brackets), then ":port" with at most 5 digits (RFC 3986 allows an empty port).
 * An empty value is valid (a Host for a URI without authority); a port without a host is
 * not. Host is what a gateway routes on and handlers build links from, so a value with '/',
 * '@', blanks or quotes is refused.
 */
bool weft__http_authority_valid(const char *p, size_t n);

#endif
