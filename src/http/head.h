/*
 * head.h - one pass over a plain HTTP/1.1 head, before llhttp (internal).
 *
 * Nearly every message a proxy sees has the same shape: "GET /path HTTP/1.1", a handful of
 * ordinary headers, no body or a Content-Length one. llhttp parses that byte by byte through
 * a state machine and calls back for every name and value, and the server then walks the
 * head again for what llhttp lets by; together about a third of a proxied request's
 * instructions (bench/gateway (d)). weft__head_scan reads such a head once, sixteen bytes at
 * a time where it can (SSE2; eight elsewhere), and gives the same offsets the llhttp
 * callbacks would.
 *
 * It answers only for a strict subset of what llhttp accepts, and says no (false) to
 * everything else, which then goes to llhttp as before: a head that is not all there yet,
 * HTTP/1.0, an unusual method or target, a byte in a name or value outside the plain
 * printable set, a bare CR or LF, any of Transfer-Encoding, Upgrade, Expect,
 * Proxy-Connection, a Connection other than exactly "close" or "keep-alive", a request
 * with Content-Length, a response without one (or with two), a 1xx response, more headers
 * than hcap. So the framing of every message it takes is the plain one: a request ends at
 * its blank line; a response's body is exactly Content-Length bytes. tests/fuzz/http/
 * fuzz_head.c checks, against llhttp itself, that every head taken here is one llhttp takes
 * with the same method, target, version, headers, keep-alive and framing.
 *
 * Pure: no allocation, never reads past p + n. Threads: any.
 */
#ifndef WEFT_HTTP_HEAD_H
#define WEFT_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A header's name and value as offsets from the head's first byte; an empty value has
 * voff 0 and vlen 0 (as the llhttp callbacks leave it). vlen counts trailing blanks. */
typedef struct weft__hspan_s {
    uint32_t noff, nlen, voff, vlen;
} weft__hspan_t;

typedef struct {
    uint32_t len;              /* the head's bytes, through the blank line */
    uint32_t nhdr;             /* headers in hs[0..nhdr) */
    uint32_t url_off, url_len; /* a request's target */
    uint16_t status;           /* a response's status, 200-999 */
    uint8_t method;            /* a request's method, as llhttp_method_t */
    bool close;                /* "Connection: close" */
    uint64_t length;           /* a response's Content-Length */
} weft__head_t;

/* Reads a whole request head (response: false) or response head (true) from p[0..n), no
 * longer than max_head bytes, into o and hs[0..hcap). True: taken, o and hs filled; false:
 * not one this takes (or not all there yet), nothing to rely on in o or hs. */
bool weft__head_scan(bool response, const char *p, size_t n, size_t max_head, weft__hspan_t *hs,
                     uint32_t hcap, weft__head_t *o);

#endif
