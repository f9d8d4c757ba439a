/*
 * client_req.c - the HTTP client's requests: validation, and the one serialization of the
 * head (and a FIXED body) into the call's output buffer; chunk framing of streamed bodies.
 *
 * Design. weft_http_client_request checks the request against the rules of weft/client.h
 * first (weft__req_check; the host's bytes once, when its pool is made), so a request that
 * cannot be sent costs nothing and runs no callback. The head is then written into the call's
 * weft_buf_t with one reservation sized from the parts, so the puts after it cannot fail: header
 * names and values go from the caller's weft_http_header_t array straight into that buffer, which
 * is the only copy a header ever gets on its way out (a proxy hands the server request's array over
 * as is).
 *
 * Invariants. Nothing written here can inject a header or a request: methods and header
 * names are tokens, header values hold no CR, LF or NUL, targets and hosts hold no space or
 * control character, and Content-Length and Transfer-Encoding are always the client's.
 *
 * Threads: pure functions over their arguments; the client's loop thread calls them.
 * Memory: WEFT_ENOMEM on allocation failure, never an abort.
 */
#include <stdint.h>
#include <string.h>

#include "http/client_int.h"
#include "http/syntax.h"

/* Request targets, as the client sends them: visible ASCII only (the server's
 * weft__http_target_clean also lets bytes >= 0x80 through, which a client must not send
 * unencoded). Eight bytes at a time: every request of a proxy passes here. */
static bool valid_target(const char *s, size_t n)
{
    if (n == 0) return false;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* a byte below 0x21, or one at 0x7f or above: its high bit, or its low seven bits
         * all set (then adding 1 to them sets bit 7, with no carry out of the byte) */
        uint64_t v = weft__http_load8(s + i);
        uint64_t high = (v | ((v & 0x7f7f7f7f7f7f7f7full) + WEFT__HTTP_ONES)) & WEFT__HTTP_HIGHS;
        if (high || weft__http_swar_below(v, 0x21)) return false;
    }
    for (; i < n; i++)
        if ((unsigned char)((unsigned char)s[i] - 0x21) >= 0x7f - 0x21) return false;
    return true;
}

/* Hosts: a valid target without the bytes that would end or change the authority. Checked
 * once per host, when its pool is made (weft__pool_get). */
bool weft__req_host_valid(const char *s, size_t n)
{
    if (n > 255 || !valid_target(s, n)) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '/' || ch == '?' || ch == '#' || ch == '@' || ch == '[' || ch == ']')
            return false;
    }
    return true;
}

int weft__req_check(const weft_http_client_req_t *r, weft__req_facts_t *f)
{
    if (!r->method || !r->host || !r->target) return WEFT_EINVAL;
    size_t ml = strlen(r->method), hl = strlen(r->host), tl = strlen(r->target);
    if (!weft__http_token(r->method, ml) || hl == 0 || hl > 255 || !valid_target(r->target, tl) ||
        (r->body_len && !r->body) || r->body_len > (1u << 30) ||
        (unsigned)r->body_mode > WEFT_HTTP_CLIENT_BODY_CHUNKED ||
        (r->body_mode != WEFT_HTTP_CLIENT_BODY_FIXED && r->body_len) ||
        (r->nheaders && !r->headers))
        return WEFT_EINVAL;
    *f = (weft__req_facts_t){.method_len = ml, .host_len = hl, .target_len = tl};
    bool *give_host = &f->give_host;
    *give_host = true;
    for (size_t i = 0; i < r->nheaders; i++) {
        weft_str_t n = r->headers[i].name;
        weft_str_t v = r->headers[i].value;
        if (!n.base || !n.len || (v.len && !v.base)) return WEFT_EINVAL;
        if (!r->headers_checked &&
            (!weft__http_token(n.base, n.len) || !weft__http_value_clean(v.base, v.len)))
            return WEFT_EINVAL;
        /* names are tokens here (checked above, or vouched for) */
        if ((n.len == 14 && weft__http_token_is(n.base, "content-length", 14)) ||
            (n.len == 17 && weft__http_token_is(n.base, "transfer-encoding", 17)))
            return WEFT_EINVAL;
        if (n.len == 4 && weft__http_token_is(n.base, "host", 4)) *give_host = false;
        if (n.len == 7 && weft__http_token_is(n.base, "upgrade", 7)) f->upgrade = true;
    }
    return 0;
}

bool weft__req_idempotent(const char *m, size_t n)
{
    switch (n) {
    case 3:
        return memcmp(m, "GET", 3) == 0 || memcmp(m, "PUT", 3) == 0;
    case 4:
        return memcmp(m, "HEAD", 4) == 0;
    case 5:
        return memcmp(m, "TRACE", 5) == 0;
    case 6:
        return memcmp(m, "DELETE", 6) == 0;
    case 7:
        return memcmp(m, "OPTIONS", 7) == 0;
    default:
        return false;
    }
}

/* Appends n bytes at o: the serializer below writes into space reserved once. Most
 * pieces (names, values, separators) are short: up to 16 bytes are copied with two
 * overlapping loads and stores of a word, inline, rather than by a call to memcpy. */
static inline char *put(char *o, const void *src, size_t n)
{
    const char *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(o, &a, 8);
        memcpy(o + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++) o[i] = s[i];
    } else {
        memcpy(o, s, n);
    }
    return o + n;
}

int weft__req_serialize(weft_buf_t *b, const weft_http_client_req_t *r, const weft__req_facts_t *f)
{
    size_t ml = f->method_len, tl = f->target_len, hl = f->host_len;
    /* the fixed parts (request line, Host, framing header, CRLFs) fit in 128 bytes */
    size_t need = ml + tl + hl + 128;
    for (size_t i = 0; i < r->nheaders; i++)
        need += r->headers[i].name.len + r->headers[i].value.len + 4;
    if (r->body_mode == WEFT_HTTP_CLIENT_BODY_FIXED) need += r->body_len;
    if (!weft_buf_try_reserve(b, need)) return WEFT_ENOMEM;
    char *o0 = b->p + b->len, *o = o0;
    o = put(o, r->method, ml);
    *o++ = ' ';
    o = put(o, r->target, tl);
    o = put(o, " HTTP/1.1\r\n", 11);
    if (f->give_host) {
        bool v6 = memchr(r->host, ':', hl) != NULL;
        o = put(o, "Host: ", 6);
        if (v6) *o++ = '[';
        o = put(o, r->host, hl);
        if (v6) *o++ = ']';
        if (r->port != 80) {
            char d[8];
            size_t k = sizeof(d);
            unsigned v = r->port;
            do {
                d[--k] = (char)('0' + v % 10);
            } while ((v /= 10) != 0);
            *o++ = ':';
            o = put(o, d + k, sizeof(d) - k);
        }
        o = put(o, "\r\n", 2);
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        const weft_http_header_t *h = &r->headers[i];
        o = put(o, h->name.base, h->name.len);
        o = put(o, ": ", 2);
        if (h->value.len) o = put(o, h->value.base, h->value.len);
        o = put(o, "\r\n", 2);
    }
    weft_buf_commit(b, (size_t)(o - o0));
    bool body_method = (ml == 4 && memcmp(r->method, "POST", 4) == 0) ||
                       (ml == 3 && memcmp(r->method, "PUT", 3) == 0) ||
                       (ml == 5 && memcmp(r->method, "PATCH", 5) == 0);
    switch (r->body_mode) {
    case WEFT_HTTP_CLIENT_BODY_FIXED:
        if (r->body_len || body_method) {
            weft_buf_puts(b, "Content-Length: ");
            weft_buf_put_u64(b, r->body_len);
            weft_buf_puts(b, "\r\n");
        }
        break;
    case WEFT_HTTP_CLIENT_BODY_LENGTH:
        weft_buf_puts(b, "Content-Length: ");
        weft_buf_put_u64(b, r->content_length);
        weft_buf_puts(b, "\r\n");
        break;
    case WEFT_HTTP_CLIENT_BODY_CHUNKED:
        weft_buf_puts(b, "Transfer-Encoding: chunked\r\n");
        break;
    }
    weft_buf_put(b, "\r\n", 2);
    if (r->body_mode == WEFT_HTTP_CLIENT_BODY_FIXED) weft_buf_put(b, r->body, r->body_len);
    return b->failed ? WEFT_ENOMEM : 0; /* the reservation covered it: never failed */
}

int weft__req_body_piece(weft_buf_t *b, bool chunked, const void *data, size_t len)
{
    if (!weft_buf_try_reserve(b, len + (chunked ? 16 + 2 + 2 : 0))) return WEFT_ENOMEM;
    if (chunked) {
        weft_buf_put_x64(b, len);
        weft_buf_put(b, "\r\n", 2);
    }
    weft_buf_put(b, data, len);
    if (chunked) weft_buf_put(b, "\r\n", 2);
    return 0;
}

int weft__req_body_end(weft_buf_t *b)
{
    if (!weft_buf_try_reserve(b, 5)) return WEFT_ENOMEM;
    weft_buf_put(b, "0\r\n\r\n", 5);
    return 0;
}
