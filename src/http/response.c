/*
 * response.c - responses of the HTTP server: the response API a handler calls
 * (weft_http_respond, weft_http_response_*), the head every response starts with, and the
 * engine's own answers to requests it rejects (send_error).
 *
 * Design. A response is serialized into the connection's obuf; conn.c writes it out (at the
 * end of the read being processed, or at once when the handler answers outside of one). The
 * head is written in one reservation: status line, the listener's cached Date, Content-Type,
 * the framing (Content-Length, or chunked for a streamed response of unknown length on
 * HTTP/1.1; HTTP/1.0 ends such a response by closing), the handler's extra headers
 * (serialized into the arena by weft_http_response_header) and Connection when it differs
 * from the version's default. Just before a handler's head is written the filters' on_head
 * run (request.c). A response may stream (response_start, _write, _end): writes past
 * OBUF_HIGH_WATER return WEFT_EAGAIN and on_drain tells the handler when to go on.
 *
 * Errors. A request the server rejects (malformed, too large, too slow) is answered with its
 * status and a JSON body {"error": ..., "status": ...} and `Connection: close`; conn.c then
 * shuts the write side down and lingers. A handler holding the request (streamed body) is
 * told through its abort callback; if its response has begun, nothing more can be said and
 * the connection just closes.
 *
 * Threads: the loop thread of the connection's listener only.
 */
#include <stdio.h>
#include <string.h>

#include "http/server_int.h"
#include "http/syntax.h"

/* v in decimal at out (at most 20 bytes, no NUL); returns the length. */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

const char *weft_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* The response head into obuf (see the top); clen < 0: no Content-Length. Returns 0, or
 * WEFT_ENOMEM with nothing written. */
static int write_head(conn_t *c, int status, const char *ctype, int64_t clen, bool chunked)
{
    weft_http_request_t *req = &c->x->req;
    if (c->l->srv->nf_head && weft__http_holds(c)) weft__http_filters_head(c, status);
    const char *reason = weft_http_status_text(status);
    size_t rlen = strlen(reason), tlen = ctype ? strlen(ctype) : 0;
    size_t need = 64 + rlen + c->l->date_len + tlen + c->xlen + 64;
    if (weft__http_out_reserve(c, need) != 0) return WEFT_ENOMEM;
    if (c->l->shutting_down ||
        (c->l->srv->o.max_keepalive_requests &&
         c->served + 1 >= c->l->srv->o.max_keepalive_requests) ||
        atomic_load_explicit(&c->l->srv->draining, memory_order_relaxed))
        req->keep_alive = false;
    /* An answer that starts before the request's body is all read (a streamed body): the
     * unread bytes cannot be told from a next request, so the connection closes after it
     * (even if the body does end first: the head has gone out); say so (RFC 9110 10.1.1) */
    if (!c->message_done) req->keep_alive = false;

    char *o = c->obuf + c->olen;
    memcpy(o, "HTTP/1.1 ", 9);
    o[9] = (char)('0' + status / 100 % 10);
    o[10] = (char)('0' + status / 10 % 10);
    o[11] = (char)('0' + status % 10);
    o[12] = ' ';
    o += 13;
    memcpy(o, reason, rlen);
    o += rlen;
    *o++ = '\r';
    *o++ = '\n';
    memcpy(o, c->l->date, c->l->date_len);
    o += c->l->date_len;
    if (ctype) {
        memcpy(o, "Content-Type: ", 14);
        o += 14;
        memcpy(o, ctype, tlen);
        o += tlen;
        *o++ = '\r';
        *o++ = '\n';
    }
    bool no_body_status = status < 200 || status == 204 || status == 304;
    if (chunked) {
        memcpy(o, "Transfer-Encoding: chunked\r\n", 28);
        o += 28;
    } else if (clen >= 0 && !(no_body_status)) {
        memcpy(o, "Content-Length: ", 16);
        o += 16;
        o += fmt_u64(o, (uint64_t)clen);
        *o++ = '\r';
        *o++ = '\n';
    }
    if (c->xlen) {
        memcpy(o, c->xhdr, c->xlen);
        o += c->xlen;
    }
    if (!req->keep_alive) {
        memcpy(o, "Connection: close\r\n", 19);
        o += 19;
    } else if (req->version_minor == 0) {
        memcpy(o, "Connection: keep-alive\r\n", 24);
        o += 24;
    }
    *o++ = '\r';
    *o++ = '\n';
    c->olen = (size_t)(o - c->obuf);
    req->status = status;
    weft__http_resp_to(c, R_STARTED);
    return 0;
}

/* The handler of an aborted request gives up its hold; frees a connection closed meanwhile. */
static bool release_if_aborted(conn_t *c)
{
    if (c->hstate != H_ABORTED) return false;
    weft__http_handler_to(c, H_DONE);
    if (c->life == L_CLOSED) weft__http_conn_free(c);
    return true;
}

int weft_http_respond(weft_http_request_t *req, int status, const char *content_type,
                      const void *body, size_t len)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c)) return WEFT_ESTATE;
    if (release_if_aborted(c)) return WEFT_ECLOSED;
    if (c->rstate != R_NONE) return WEFT_ESTATE;
    if (status < 100 || status > 999) status = 500;
    if (write_head(c, status, content_type, (int64_t)len, false) != 0 ||
        (!req->is_head && len && weft__http_out_reserve(c, len) != 0)) {
        c->olen = 0;
        c->x->req.keep_alive = false;
        weft__http_life_to(c, L_ENDING);
        weft__http_request_finish(c);
        return WEFT_ENOMEM;
    }
    if (!req->is_head && len) weft__http_out_put(c, body, len);
    weft__http_request_finish(c);
    return 0;
}

int weft_http_response_start(weft_http_request_t *req, int status, const char *content_type,
                             int64_t content_length)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c) || c->rstate != R_NONE) return WEFT_ESTATE;
    if (weft__http_closing(c)) return WEFT_ECLOSED;
    bool chunked = content_length < 0 && req->version_minor >= 1;
    if (content_length < 0 && !chunked) req->keep_alive = false; /* HTTP/1.0: close ends it */
    if (write_head(c, status, content_type, content_length, chunked) != 0) return WEFT_ENOMEM;
    c->resp_chunked = chunked;
    c->resp_remaining = content_length < 0 ? UINT64_MAX : (uint64_t)content_length;
    if (!c->processing && !c->corked) weft__http_flush(c);
    return 0;
}

int weft_http_response_write(weft_http_request_t *req, const void *data, size_t len)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c) || c->rstate != R_STARTED) return WEFT_ESTATE;
    if (weft__http_closing(c)) return WEFT_ECLOSED;
    c->corked = false; /* the head goes with this piece */
    if (len == 0 || req->is_head) {
        if (!c->processing) weft__http_flush(c);
        return 0;
    }
    if (!c->resp_chunked && c->resp_remaining != UINT64_MAX) {
        if (len > c->resp_remaining) return WEFT_ERANGE;
        c->resp_remaining -= len;
    }
    if (weft__http_out_reserve(c, len + 24) != 0) return WEFT_ENOMEM;
    if (c->resp_chunked) {
        char size[20];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        weft__http_out_put(c, size, (size_t)n);
    }
    weft__http_out_put(c, data, len);
    if (c->resp_chunked) weft__http_out_put(c, "\r\n", 2);
    if (!c->processing) weft__http_flush(c);
    if (c->olen + (c->writing ? 1 : 0) > OBUF_HIGH_WATER) {
        c->drain_wanted = true;
        return WEFT_EAGAIN;
    }
    return 0;
}

void weft_http_response_cork(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    if (weft__http_holds(c) && c->rstate == R_NONE) c->corked = true;
}

int weft_http_response_end(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c)) return WEFT_ESTATE;
    if (release_if_aborted(c)) return WEFT_ECLOSED;
    if (c->rstate == R_NONE) return weft_http_respond(req, 200, NULL, NULL, 0);
    if (c->resp_chunked && !req->is_head) {
        if (weft__http_out_reserve(c, 5) != 0) {
            weft__http_life_to(c, L_ENDING);
        } else {
            weft__http_out_put(c, "0\r\n\r\n", 5);
        }
    } else if (c->resp_remaining != UINT64_MAX && c->resp_remaining != 0 && !req->is_head) {
        /* Fewer bytes than announced: the framing is broken; only closing can say so. */
        req->keep_alive = false;
    }
    weft__http_request_finish(c);
    return 0;
}

/* The request finishes without its response's end (no last chunk; fewer bytes than
 * announced) and the connection closes once what was written is out: the client sees a
 * truncated message, never one that looks complete. Filters see it aborted. */
int weft_http_response_abort(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c)) return WEFT_ESTATE;
    if (release_if_aborted(c)) return WEFT_ECLOSED;
    req->keep_alive = false;
    c->resp_aborted = true;
    weft__http_life_to(c, L_ENDING);
    weft__http_request_finish(c);
    return 0;
}

int weft_http_response_header(weft_http_request_t *req, const char *name, const char *value)
{
    return weft_http_response_header_n(req, (weft_str_t){name, strlen(name)},
                                       (weft_str_t){value, strlen(value)});
}

int weft_http_response_header_n(weft_http_request_t *req, weft_str_t name, weft_str_t value)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c) || c->rstate != R_NONE) return WEFT_ESTATE;
    size_t nl = name.len, vl = value.len;
    if (!name.base || (vl && !value.base) || !weft__http_token(name.base, nl) ||
        !weft__http_value_clean(value.base, vl))
        return WEFT_EINVAL;
    if ((nl == 14 && weft__http_token_is(name.base, "content-length", 14)) ||
        (nl == 17 && weft__http_token_is(name.base, "transfer-encoding", 17)) ||
        (nl == 4 && weft__http_token_is(name.base, "date", 4)) ||
        (nl == 10 && weft__http_token_is(name.base, "connection", 10)))
        return WEFT_EINVAL;
    size_t need = c->xlen + nl + vl + 4;
    if (need > c->xcap) {
        size_t cap = c->xcap ? c->xcap * 2 : 256;
        while (cap < need) cap *= 2;
        char *p = weft_arena_alloc(&c->x->arena, cap);
        if (!p) return WEFT_ENOMEM;
        if (c->xlen) memcpy(p, c->xhdr, c->xlen);
        c->xhdr = p;
        c->xcap = cap;
    }
    memcpy(c->xhdr + c->xlen, name.base, nl);
    c->xlen += nl;
    c->xhdr[c->xlen++] = ':';
    c->xhdr[c->xlen++] = ' ';
    if (vl) memcpy(c->xhdr + c->xlen, value.base, vl);
    c->xlen += vl;
    c->xhdr[c->xlen++] = '\r';
    c->xhdr[c->xlen++] = '\n';
    return 0;
}

/* Answers a request the server rejects, then closes. Works at any point of parsing; a
 * handler holding the request (streamed body) is told through its abort callback. */
void weft__http_send_error(conn_t *c, int status, const char *msg)
{
    if (weft__http_closing(c) || c->state == C_LINGER) return;
    weft_http_request_t *req = &c->x->req;
    c->corked = false;
    weft__http_life_to(c, L_ENDING);
    if (c->hstate == H_PENDING) weft__http_handler_to(c, H_NONE); /* its handler never runs */
    bool was_active = weft__http_holds(c);
    weft__http_abort_handler(c, status);
    if (c->rstate != R_NONE) return; /* too late to answer: the handler's response is going out */
    req->keep_alive = false;
    c->xlen = 0;
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);
    if (n < 0 || (size_t)n >= sizeof(body)) n = 0;
    if (write_head(c, status, "application/json", n, false) == 0 &&
        weft__http_out_reserve(c, (size_t)n) == 0)
        weft__http_out_put(c, body, (size_t)n);
    if (!was_active) weft__http_filters_end(c, status, false);
    if (!c->processing) weft__http_flush(c);
}
