/*
 * client_req.c - the HTTP client's requests: validation, and the one serialization of the
 * head (and a FIXED body) into the call's output buffer; chunk framing of streamed bodies.
 *
 * Design. weft_http_client_request checks the request against the rules of weft/client.h
 * first (weft__req_check), so a request that cannot be sent costs nothing and runs no
 * callback. The head is then written into the call's weft_buf_t with one reservation sized
 * from the parts, so the puts after it cannot fail: header names and values go from the
 * caller's weft_http_header_t array straight into that buffer, which is the only copy a
 * header ever gets on its way out (a proxy hands the server request's array over as is).
 *
 * Invariants. Nothing written here can inject a header or a request: methods and header
 * names are tokens, header values hold no CR, LF or NUL, targets and hosts hold no space or
 * control character, and Content-Length and Transfer-Encoding are always the client's.
 *
 * Threads: pure functions over their arguments; the client's loop thread calls them.
 * Memory: WEFT_ENOMEM on allocation failure, never an abort.
 */
#include <string.h>

#include "http/client_int.h"
#include "http/syntax.h"

/* Request targets and hosts, as the client sends them: visible ASCII only (the server's
 * weft__http_target_clean also lets bytes >= 0x80 through, which a client must not send
 * unencoded), and none of extra_bad. */
static bool valid_visible(const char *s, const char *extra_bad)
{
    if (!s || !*s) return false;
    size_t n = strlen(s);
    if (!weft__http_target_clean(s, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80 || strchr(extra_bad, s[i])) return false;
    return true;
}

int weft__req_check(const weft_http_client_req_t *r, bool *give_host)
{
    if (!r->method || !weft__http_token(r->method, strlen(r->method)) ||
        !valid_visible(r->host, "/?#@[]") || strlen(r->host) > 255 ||
        !valid_visible(r->target, "") || (r->body_len && !r->body) || r->body_len > (1u << 30) ||
        (unsigned)r->body_mode > WEFT_HTTP_CLIENT_BODY_CHUNKED ||
        (r->body_mode != WEFT_HTTP_CLIENT_BODY_FIXED && r->body_len) ||
        (r->nheaders && !r->headers))
        return WEFT_EINVAL;
    *give_host = true;
    for (size_t i = 0; i < r->nheaders; i++) {
        weft_str_t n = r->headers[i].name;
        weft_str_t v = r->headers[i].value;
        if (!n.base || !weft__http_token(n.base, n.len) || (v.len && !v.base) ||
            !weft__http_value_clean(v.base, v.len) ||
            WEFT__HTTP_IEQ_LIT(n.base, n.len, "content-length") ||
            WEFT__HTTP_IEQ_LIT(n.base, n.len, "transfer-encoding"))
            return WEFT_EINVAL;
        if (WEFT__HTTP_IEQ_LIT(n.base, n.len, "host")) *give_host = false;
    }
    return 0;
}

bool weft__req_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0 || strcmp(m, "TRACE") == 0;
}

int weft__req_serialize(weft_buf_t *b, const weft_http_client_req_t *r, bool give_host)
{
    size_t hl = strlen(r->host);
    /* the fixed parts (request line, Host, framing header, CRLFs) fit in 128 bytes */
    size_t need = strlen(r->method) + strlen(r->target) + hl + 128;
    for (size_t i = 0; i < r->nheaders; i++)
        need += r->headers[i].name.len + r->headers[i].value.len + 4;
    if (r->body_mode == WEFT_HTTP_CLIENT_BODY_FIXED) need += r->body_len;
    if (!weft_buf_try_reserve(b, need)) return WEFT_ENOMEM;
    weft_buf_puts(b, r->method);
    weft_buf_putc(b, ' ');
    weft_buf_puts(b, r->target);
    weft_buf_puts(b, " HTTP/1.1\r\n");
    if (give_host) {
        bool v6 = strchr(r->host, ':') != NULL;
        weft_buf_puts(b, "Host: ");
        if (v6) weft_buf_putc(b, '[');
        weft_buf_put(b, r->host, hl);
        if (v6) weft_buf_putc(b, ']');
        if (r->port != 80) {
            weft_buf_putc(b, ':');
            weft_buf_put_u64(b, r->port);
        }
        weft_buf_puts(b, "\r\n");
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        weft_buf_put(b, r->headers[i].name.base, r->headers[i].name.len);
        weft_buf_put(b, ": ", 2);
        weft_buf_put(b, r->headers[i].value.base, r->headers[i].value.len);
        weft_buf_put(b, "\r\n", 2);
    }
    bool body_method = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                       strcmp(r->method, "PATCH") == 0;
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
