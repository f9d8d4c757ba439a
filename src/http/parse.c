/*
 * parse.c - the HTTP server's request parsing: llhttp's callbacks, and the checks llhttp
 * leaves to its user.
 *
 * Design. llhttp splits the bytes; these callbacks keep the pieces of a
 * head as offsets from msg_start (the buffer invariant in conn.c) and, at the end of the
 * head, check what llhttp lets by, build the request, route it and decide how its body is
 * read. They run inside llhttp_execute: no handler code, no rbuf moves, no writes except a
 * "100 Continue". A callback that rejects the request stores the status and the reason
 * (reject) and returns -1; conn.c asks error_status for them after llhttp_execute fails, and
 * answers (response.c). At the end of a message the parser pauses (HPE_PAUSED) so that the
 * handler runs outside llhttp.
 *
 * What is refused here (RFC 9110, RFC 9112): a request line other than exactly "METHOD SP
 * target SP HTTP/1.x", a bare CR, a head or target over its limit (431, 414), control
 * characters in the target or a header value, a header name that is not a token, a missing
 * or repeated or malformed Host, an expectation other than 100-continue (417), transfer
 * codings other than a final chunked (400, 501) or in HTTP/1.0 (400), a body over the
 * route's limit (413), chunk sizes over 16 hex digits and chunk extensions over 4096 bytes a
 * message. The syntax rules themselves are syntax.h's.
 *
 * Bodies. A route that buffers gets the body in the arena (sized from Content-Length, or
 * doubling for chunked); a stream_body route's handler is dispatched at the end of the head
 * and gets the bytes through on_body; a request without a route (404/405) has its body read
 * and dropped. A request with a body has its head copied into the arena first
 * (detach_head), so that rbuf can be reused for the body.
 *
 * Threads: the loop thread of the connection's listener only.
 */
#include <stdlib.h>
#include <string.h>

#include "http/head.h"
#include "http/server_int.h"
#include "http/syntax.h"
#include "weft/router.h"

/* A target that is not origin-form ("/path?query"), RFC 9112 3.2: an absolute http(s) URI
 * is routed on its path, its authority replacing the Host header; authority-form (CONNECT)
 * is left for the router, which knows no such route (404), and asterisk-form (OPTIONS *)
 * gets 200 with an empty body from dispatch. Returns
 * NULL, or the reason for a 400. */
static const char *other_target_form(weft_http_request_t *req, uint8_t method)
{
    const char *t = req->target.base, *end = t + req->target.len;
    if (method == HTTP_CONNECT) return NULL;
    if (req->target.len == 1 && t[0] == '*')
        return method == HTTP_OPTIONS ? NULL : "the target '*' is only for OPTIONS";
    size_t n = req->target.len, skip = 0;
    if (n > 7 && WEFT__HTTP_IEQ_LIT(t, 7, "http://")) skip = 7;
    if (n > 8 && WEFT__HTTP_IEQ_LIT(t, 8, "https://")) skip = 8;
    if (!skip) return "the target must be a path ('/...') or an absolute http(s) URI";
    const char *a = t + skip, *ae = a;
    while (ae < end && *ae != '/' && *ae != '?' && *ae != '#') ae++;
    if (ae == a) return "no host in the absolute target";
    if (memchr(a, '@', (size_t)(ae - a))) return "user information in the target";
    if (!weft__http_authority_valid(a, (size_t)(ae - a)))
        return "invalid host or port in the target";
    req->authority = (weft_str_t){a, (size_t)(ae - a)};
    /* path: from the authority's end to the query (req->path ends there already) */
    const char *pe = req->path.base + req->path.len;
    if (ae < pe && *ae == '/')
        req->path = (weft_str_t){ae, (size_t)(pe - ae)};
    else
        req->path = (weft_str_t){"/", 1};
    return NULL;
}

/* The router matched the path as sent; handlers get parameter values percent-decoded
 * ("/hello/J%C3%BCrgen%20B" -> "Jürgen B", "a%2Fb" -> "a/b" within one segment), copied
 * into the arena when they hold a '%'. Returns NULL, or the reason for a 400 (a '%' not
 * followed by two hex digits; %00, which a handler treating the value as a C string
 * would cut short), or "out of memory" (503). */
static const char *decode_params(conn_t *c, weft_route_match_t *m)
{
    for (unsigned i = 0; i < m->nparams; i++) {
        weft_str_t *v = &m->params[i].value;
        if (v->len == 0 || !memchr(v->base, '%', v->len)) continue;
        char *out = weft_arena_alloc(&c->x->arena, v->len);
        if (!out) return "out of memory";
        size_t o = 0;
        for (size_t k = 0; k < v->len; k++) {
            char ch = v->base[k];
            if (ch == '%') {
                int hi = k + 2 < v->len ? weft__http_hex_digit(v->base[k + 1]) : -1;
                int lo = hi >= 0 ? weft__http_hex_digit(v->base[k + 2]) : -1;
                if (lo < 0) return "invalid percent-encoding in a path parameter";
                if (hi == 0 && lo == 0) return "%00 in a path parameter";
                ch = (char)(hi << 4 | lo);
                k += 2;
            }
            out[o++] = ch;
        }
        *v = (weft_str_t){out, o};
    }
    return NULL;
}

/* How many bytes of rbuf from msg_start the head's strings reach: its last string's end. */
size_t weft__http_head_extent(const conn_t *c)
{
    size_t n = c->url_off + c->url_len;
    for (uint32_t i = 0; i < c->nhdr; i++) {
        size_t e = c->hoff[i].voff + c->hoff[i].vlen, f = c->hoff[i].noff + c->hoff[i].nlen;
        if (e > n) n = e;
        if (f > n) n = f;
    }
    return n;
}

/* The request's strings that point into the head's n bytes of rbuf (from msg_start) point
 * into copy, which holds those bytes, from now on. */
void weft__http_head_rebase(conn_t *c, const char *copy, size_t n)
{
    weft_http_request_t *req = &c->x->req;
    const char *lo = c->rbuf + c->msg_start, *hi = lo + n;
#define REBASE(s)                                                                                  \
    do {                                                                                           \
        if ((s).base >= lo && (s).base < hi) (s).base = copy + ((s).base - lo);                    \
    } while (0)
    REBASE(req->target);
    REBASE(req->path);
    REBASE(req->query);
    REBASE(req->authority);
    weft_http_header_t *hs = (weft_http_header_t *)req->headers;
    for (size_t i = 0; i < req->nheaders; i++) {
        REBASE(hs[i].name);
        REBASE(hs[i].value);
    }
    for (unsigned i = 0; i < req->match.nparams; i++) {
        REBASE(req->match.params[i].name);
        REBASE(req->match.params[i].value);
    }
#undef REBASE
}

/* Copies the head's strings into the arena so that rbuf can be reused for the body. */
static int detach_head(conn_t *c)
{
    if (c->head_detached) return 0;
    size_t n = weft__http_head_extent(c);
    char *copy = weft_arena_alloc(&c->x->arena, n ? n : 1);
    if (!copy) return WEFT_ENOMEM;
    memcpy(copy, c->rbuf + c->msg_start, n);
    weft__http_head_rebase(c, copy, n);
    c->head_detached = true;
    return 0;
}

/* llhttp's callbacks, from here on: they run inside llhttp_execute (no handler code, no
 * rbuf moves). */

#define CHUNK_EXT_MAX  4096 /* chunk extension bytes per message (CVE-2024-22019's class) */
#define CHUNK_SIZE_MAX 16   /* hex digits of a chunk size, leading zeros included */

static inline uint64_t pos_of(const conn_t *c, const char *at)
{
    return c->exec_off + (uint64_t)(at - c->exec_base);
}

static int p_message_begin(llhttp_t *p)
{
    conn_t *c = p->data;
    weft__http_conn_to(c, C_HEAD);
    c->deadline = weft__http_loop_now(c) + c->l->srv->o.head_timeout_ms;
    return 0;
}

static inline void mark_start(conn_t *c, const char *at)
{
    if (!c->msg_begun) {
        c->msg_begun = true;
        c->msg_start = (size_t)(at - c->rbuf);
    }
}

static int p_method(llhttp_t *p, const char *at, size_t len)
{
    mark_start(p->data, at);
    return 0;
}

static int reject(conn_t *c, int status, const char *msg)
{
    c->err_status = status;
    c->err_msg = msg;
    return -1;
}

static int p_url(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    mark_start(c, at);
    if (c->url_len == 0) c->url_off = (uint32_t)(at - c->rbuf - c->msg_start);
    if (c->url_len + len > c->l->srv->o.max_target)
        return reject(c, 414, "request target longer than the limit (http.max_target_size)");
    c->url_len += (uint32_t)len;
    return 0;
}

/* A piece of a trailer's name (or value): checked here, not kept. Out of line: the header
 * callbacks, called for every header, stay small. */
__attribute__((cold, noinline)) static int trailer_piece(conn_t *c, const char *at, size_t len,
                                                         bool value)
{
    if (value && !weft__http_value_clean(at, len))
        return reject(c, 400, "control character in a trailer value");
    if (!value && !weft__http_tchars(at, len))
        return reject(c, 400, "invalid character in a trailer name");
    return 0;
}

static int p_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->state == C_BODY) return trailer_piece(c, at, len, false);
    if (c->nhdr == 0 || c->in_value) {
        weft_http_server_t *s = c->l->srv;
        if (c->nhdr >= s->o.max_headers)
            return reject(c, 431, "more header lines than the limit (http.max_headers)");
        if (c->nhdr == INLINE_HEADERS) {
            if (!c->x->hoff_heap) {
                c->x->hoff_heap = malloc(sizeof(hdr_off_t) * s->o.max_headers);
                if (!c->x->hoff_heap) return reject(c, 503, "out of memory");
            }
            memcpy(c->x->hoff_heap, c->x->hoff_inline, sizeof(c->x->hoff_inline));
            c->hoff = c->x->hoff_heap;
        }
        hdr_off_t *h = &c->hoff[c->nhdr++];
        h->noff = (uint32_t)(at - c->rbuf - c->msg_start);
        h->nlen = 0;
        h->voff = 0;
        h->vlen = 0;
        c->in_value = false;
    }
    c->hoff[c->nhdr - 1].nlen += (uint32_t)len;
    return 0;
}

static int p_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->state == C_BODY) return trailer_piece(c, at, len, true);
    hdr_off_t *h = &c->hoff[c->nhdr - 1];
    if (h->vlen == 0) h->voff = (uint32_t)(at - c->rbuf - c->msg_start);
    h->vlen += (uint32_t)len;
    c->in_value = true;
    return 0;
}

static int p_header_value_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if (c->state == C_BODY) return 0;
    c->in_value = true;
    return 0;
}

/* RFC 9112 6.1 and 6.3: chunked must be the final coding (else 400: the length cannot be
 * known), applied once (else 400); any other coding before it is one weft does not
 * implement (501). */
static int check_transfer_encoding(conn_t *c, const weft_http_header_t *hs, size_t n)
{
    int chunked = 0, unknown = 0, last_chunked = 0;
    for (size_t i = 0; i < n; i++) {
        if (!weft__http_ieq(hs[i].name.base, hs[i].name.len, "transfer-encoding")) continue;
        const char *v = hs[i].value.base, *end = v + hs[i].value.len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) v++;
            const char *t = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t' && *v != ';') v++;
            if (v < end && *v == ';') return reject(c, 400, "transfer coding parameters");
            if (v == t) continue; /* only at the end: every other stop char was skipped */
            last_chunked = weft__http_ieq(t, (size_t)(v - t), "chunked");
            if (last_chunked)
                chunked++;
            else
                unknown++;
        }
    }
    if (!last_chunked) return reject(c, 400, "chunked is not the final transfer coding");
    if (chunked > 1) return reject(c, 400, "chunked applied more than once");
    if (unknown) return reject(c, 501, "unsupported transfer coding");
    return 0;
}

/* What a request head says about its message: from llhttp's parser, or from head.c. */
typedef struct {
    const char *mname; /* the method's name, mlen bytes */
    size_t mlen;
    uint8_t method; /* llhttp_method_t */
    uint8_t minor;  /* HTTP/1.minor */
    bool chunked, keep_alive, upgrade;
    bool checked;            /* head.c read it: target and header bytes are plain already */
    uint64_t content_length; /* UINT64_MAX: none */
} head_facts_t;

static int head_complete(conn_t *c, const head_facts_t *f);

static int p_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    const char *base = c->rbuf + c->msg_start;

    /* Request line: exactly "METHOD SP target SP HTTP/x.y" (llhttp lets extra spaces by). */
    const char *mname = llhttp_method_name((llhttp_method_t)p->method);
    size_t mlen = strlen(mname);
    const char *after_url = base + c->url_off + c->url_len;
    if (c->url_off != mlen + 1) return reject(c, 400, "malformed request line");
    if (p->http_major == 0 && p->http_minor == 9 && *after_url != ' ')
        return reject(c, 400, "missing HTTP version in the request line");
    if (*after_url != ' ' || after_url[1] != 'H') return reject(c, 400, "malformed request line");
    {
        /* The end of the head: every CR is followed by LF, and the size is within limit
         * even when the whole head came in one read. */
        size_t hi = c->url_off + c->url_len;
        for (uint32_t i = 0; i < c->nhdr; i++) {
            size_t e = c->hoff[i].voff + c->hoff[i].vlen, f = c->hoff[i].noff + c->hoff[i].nlen;
            if (e > hi) hi = e;
            if (f > hi) hi = f;
        }
        const char *q = base + hi, *lim = c->rbuf + c->rlen;
        int lfs = 0;
        while (q < lim && lfs < 2) {
            if (*q == '\r' && (q + 1 >= lim || q[1] != '\n'))
                return reject(c, 400, "bare CR in the request head");
            if (*q == '\n') lfs++;
            q++;
        }
        if ((size_t)(q - base) > c->l->srv->o.max_head)
            return reject(c, 431, "request head larger than the limit (http.max_head_size)");
        c->data_end = pos_of(c, q);
    }
    if (p->http_major != 1 || p->http_minor > 1)
        return reject(c, 505, "HTTP version not supported");
    head_facts_t f = {
        .mname = mname,
        .mlen = mlen,
        .method = p->method,
        .minor = p->http_minor,
        .chunked = (p->flags & F_CHUNKED) != 0,
        .keep_alive = llhttp_should_keep_alive(p) != 0 && !p->upgrade, /* no upgrades: close */
        .upgrade = p->upgrade,
        .content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : UINT64_MAX,
    };
    return head_complete(c, &f);
}

/* The rest of a head's checks, the request built, routed, and its body's reading decided:
 * for llhttp's heads and head.c's alike. c->data_end is the head's end already. */
static int head_complete(conn_t *c, const head_facts_t *f)
{
    weft_http_server_t *s = c->l->srv;
    weft_http_request_t *req = &c->x->req;
    const char *base = c->rbuf + c->msg_start;
    c->chunk_start = true;
    c->chunk_ext = c->chunk_ext_now = 0;
    req->version_minor = f->minor;
    req->method = (weft_str_t){f->mname, f->mlen};
    req->target = (weft_str_t){base + c->url_off, c->url_len};
    if (req->target.len == 0) return reject(c, 400, "empty request target");
    const char *q = memchr(req->target.base, '?', req->target.len);
    if (q) {
        req->path = (weft_str_t){req->target.base, (size_t)(q - req->target.base)};
        req->query = (weft_str_t){q + 1, req->target.len - req->path.len - 1};
    } else {
        req->path = req->target;
        req->query = (weft_str_t){req->target.base + req->target.len, 0};
    }
    if (!f->checked && !weft__http_target_clean(req->target.base, req->target.len))
        return reject(c, 400, "control character in the target");
    req->authority = (weft_str_t){base, 0};
    if (req->target.base[0] != '/') {
        const char *why = other_target_form(req, f->method);
        if (why) return reject(c, 400, why);
    }

    weft_http_header_t *hs = c->nhdr <= INLINE_HEADERS
                                 ? c->x->hdr_inline
                                 : weft_arena_alloc(&c->x->arena, sizeof(*hs) * c->nhdr);
    if (!hs) return reject(c, 503, "out of memory");
    int hosts = 0;
    bool expect_continue = false, has_te = false, absolute = req->authority.len > 0;
    for (uint32_t i = 0; i < c->nhdr; i++) {
        hdr_off_t *h = &c->hoff[i];
        hs[i].name = (weft_str_t){base + h->noff, h->nlen};
        const char *v = base + h->voff;
        size_t vl = h->vlen;
        /* llhttp hands over the raw value: trim trailing whitespace; reject folds/CR/NUL. */
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
        if (!f->checked) {
            if (!weft__http_value_clean(v, vl))
                return reject(c, 400, "line folding or control character in a header value");
            if (h->nlen == 0) return reject(c, 400, "empty header name");
            if (!weft__http_tchars(hs[i].name.base, h->nlen))
                return reject(c, 400, "invalid character in a header name");
        }
        if (h->vlen == 0) v = base;
        hs[i].value = (weft_str_t){v, vl};
        switch (h->nlen) {
        case 4:
            if (WEFT__HTTP_IEQ_LIT(hs[i].name.base, 4, "host")) {
                hosts++;
                if (!weft__http_authority_valid(v, vl))
                    return reject(c, 400, "invalid Host header");
                if (!absolute) req->authority = hs[i].value;
            }
            break;
        case 6:
            if (WEFT__HTTP_IEQ_LIT(hs[i].name.base, 6, "expect")) {
                if (!WEFT__HTTP_IEQ_LIT(v, vl, "100-continue"))
                    return reject(c, 417, "unsupported expectation");
                expect_continue = true;
            }
            break;
        case 17:
            if (WEFT__HTTP_IEQ_LIT(hs[i].name.base, 17, "transfer-encoding")) has_te = true;
            break;
        }
    }
    req->headers = hs;
    req->nheaders = c->nhdr;
    if (hosts > 1) return reject(c, 400, "more than one Host header");
    if (hosts == 0 && req->version_minor == 1) return reject(c, 400, "missing Host header");
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing (a 1.0 recipient
     * behind a proxy would read it by Content-Length, or to the close) */
    if (has_te && req->version_minor == 0)
        return reject(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (has_te && check_transfer_encoding(c, hs, c->nhdr) != 0) return -1;

    bool chunked = f->chunked;
    req->content_length = f->content_length;
    req->keep_alive = f->keep_alive;
    req->is_head = f->method == HTTP_HEAD;
    req->start_ns = weft_now_ns();
    req->loop = c->l->loop;

    weft_route_match_t *m = &req->match;
    weft_route_result_t r = weft_router_match(s->router, req->method, req->path, m, NULL, 0);
    if (r == WEFT_ROUTE_FOUND) {
        req->route = m->value;
        req->route_pattern = m->pattern;
        const char *why = decode_params(c, m);
        if (why) return reject(c, strcmp(why, "out of memory") == 0 ? 503 : 400, why);
    } else {
        req->route = NULL;
        m->nparams = 0;
    }
    c->body_limit = req->route && req->route->max_body ? req->route->max_body : s->o.max_body;
    bool has_body = chunked || (req->content_length != UINT64_MAX && req->content_length > 0);
    /* An upgrade with a body is answered as a plain request (the body would come before the
     * switch); CONNECT is routed as usual (no route takes it: 404). */
    req->upgrade = f->upgrade && f->method != HTTP_CONNECT && !has_body;
    if (req->content_length != UINT64_MAX && req->content_length > c->body_limit)
        return reject(c, 413, "request body larger than the limit (http.max_body_size)");
    if (has_body) {
        if (detach_head(c) != 0) return reject(c, 503, "out of memory");
        weft__http_conn_to(c, C_BODY);
        c->deadline = weft__http_loop_now(c) + s->o.body_timeout_ms;
        c->body_discard = req->route == NULL;
        if (expect_continue && req->version_minor >= 1 && weft__http_out_reserve(c, 25) == 0) {
            weft__http_out_put(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            weft__http_flush(c);
        }
        if (req->route && req->route->stream_body) {
            weft__http_handler_to(c, H_PENDING); /* its handler gets the body as it comes */
            return HPE_PAUSED;
        }
        if (!c->body_discard && !chunked) {
            c->body = weft_arena_alloc(&c->x->arena, (size_t)req->content_length);
            if (!c->body) return reject(c, 413, "request body does not fit in memory");
            c->body_cap = (size_t)req->content_length;
        }
    }
    return 0;
}

static int p_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (p->flags & F_CHUNKED) {
        uint64_t here = pos_of(c, at);
        if (c->chunk_start) {
            /* Between the last data (or the head) and this chunk's data: CRLF, the size,
             * extensions, CRLF. Anything longer is a size with too many digits. */
            if (here - c->data_end > c->chunk_ext_now + CHUNK_SIZE_MAX + 4)
                return reject(c, 400, "chunk size longer than 16 hex digits");
            c->chunk_start = false;
            c->chunk_ext_now = 0;
        }
        c->data_end = here + len;
    }
    c->deadline = weft__http_loop_now(c) + c->l->srv->o.body_timeout_ms;
    if (c->body_len + len > c->body_limit)
        return reject(c, 413, "request body larger than the limit (http.max_body_size)");
    weft_http_request_t *req = &c->x->req;
    if (req->route && req->route->stream_body) {
        c->body_len += len;
        if (req->on_body && weft__http_holds(c)) req->on_body(req, at, len);
        return 0;
    }
    if (c->body_discard) {
        c->body_len += len;
        return 0;
    }
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap * 2 : 4096;
        while (cap < c->body_len + len) cap *= 2;
        if (cap > c->body_limit) cap = (size_t)c->body_limit;
        char *nb = weft_arena_alloc(&c->x->arena, cap);
        if (!nb) return reject(c, 413, "request body does not fit in memory");
        if (c->body_len) memcpy(nb, c->body, c->body_len);
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int p_chunk_header(llhttp_t *p)
{
    ((conn_t *)p->data)->chunk_start = true;
    return 0;
}

static int p_chunk_ext(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    c->chunk_ext += (uint32_t)len + 2; /* with the ';' and '=' around it, roughly */
    c->chunk_ext_now += (uint32_t)len + 2;
    if (c->chunk_ext > CHUNK_EXT_MAX)
        return reject(c, 400, "chunk extensions longer than 4096 bytes");
    return 0;
}

/* The whole message is read: its handler runs next, outside the parser. */
static void message_complete(conn_t *c)
{
    weft_http_request_t *req = &c->x->req;
    c->message_done = true;
    c->deadline = 0;
    req->body = (weft_str_t){c->body ? c->body : "", c->body_len};
    if (c->hstate == H_NONE) weft__http_handler_to(c, H_PENDING); /* not streamed */
    if (req->route && req->route->stream_body) c->stream_end_pending = true;
    weft__http_conn_to(c, C_HANDLER);
}

static int p_message_complete(llhttp_t *p)
{
    message_complete(p->data);
    return HPE_PAUSED;
}

long weft__http_fast_head(conn_t *c, const char *data, size_t n)
{
    weft_http_server_t *s = c->l->srv;
    uint32_t cap = s->o.max_headers < INLINE_HEADERS ? s->o.max_headers : INLINE_HEADERS;
    weft__head_t o;
    if (!weft__head_scan(false, data, n, s->o.max_head, c->x->hoff_inline, cap, &o) ||
        o.url_len > s->o.max_target) /* llhttp's path answers 414 */
        return 0;
    /* what p_message_begin, p_method, p_url and the header callbacks would have left */
    weft__http_conn_to(c, C_HEAD);
    c->deadline = weft__http_loop_now(c) + s->o.head_timeout_ms;
    c->msg_begun = true;
    c->msg_start = (size_t)(data - c->rbuf);
    c->url_off = o.url_off;
    c->url_len = o.url_len;
    c->hoff = c->x->hoff_inline;
    c->nhdr = o.nhdr;
    c->in_value = true;
    c->exec_base = data;
    c->data_end = c->exec_off + o.len;
    size_t mlen = o.url_off - 1;
    head_facts_t f = {
        .mname = llhttp_method_name((llhttp_method_t)o.method),
        .mlen = mlen,
        .method = o.method,
        .minor = 1,
        .keep_alive = !o.close,
        .checked = true,
        .content_length = UINT64_MAX,
    };
    int rc = head_complete(c, &f);
    WEFT_ASSERT(rc <= 0); /* no body: nothing to pause for */
    if (rc < 0) return -1;
    message_complete(c);
    return (long)o.len;
}

const llhttp_settings_t weft__http_parser_settings = {
    .on_message_begin = p_message_begin,
    .on_method = p_method,
    .on_url = p_url,
    .on_header_field = p_header_field,
    .on_header_value = p_header_value,
    .on_header_value_complete = p_header_value_complete,
    .on_headers_complete = p_headers_complete,
    .on_body = p_body,
    .on_message_complete = p_message_complete,
    .on_chunk_header = p_chunk_header,
    .on_chunk_extension_name = p_chunk_ext,
    .on_chunk_extension_value = p_chunk_ext,
};

int weft__http_error_status(conn_t *c, llhttp_errno_t e, const char **msg)
{
    if (c->err_status) {
        *msg = c->err_msg;
        return c->err_status;
    }
    *msg = llhttp_errno_name(e);
    const char *line = c->rbuf + (c->msg_begun ? c->msg_start : c->rpos);
    const char *end = c->rbuf + c->rlen;
    if (e == HPE_INVALID_METHOD) {
        /* A well-formed token we do not know is 501; anything else is malformed. */
        const char *t = line;
        while (t < end && weft__http_is_tchar((unsigned char)*t)) t++;
        if (t > line && t < end && *t == ' ') {
            *msg = "method not implemented";
            return 501;
        }
        *msg = "malformed method";
        return 400;
    }
    if (e == HPE_INVALID_VERSION) {
        /* "HTTP/d.d" followed by CRLF is well-formed but unsupported. */
        const char *eol = memchr(line, '\r', (size_t)(end - line));
        if (eol && eol - line >= 9) {
            const char *v = eol - 8;
            if (memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
                v[7] >= '0' && v[7] <= '9' && v[-1] == ' ' && eol + 1 < end && eol[1] == '\n' &&
                !(v[5] == '1' && (v[7] == '0' || v[7] == '1'))) {
                *msg = "HTTP version not supported";
                return 505;
            }
        }
        *msg = "malformed HTTP version";
        return 400;
    }
    switch (e) {
    case HPE_INVALID_HEADER_TOKEN:
        *msg = "malformed header";
        break;
    case HPE_INVALID_CONTENT_LENGTH:
        *msg = "malformed Content-Length";
        break;
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        *msg = "conflicting Content-Length or Content-Length with Transfer-Encoding";
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        *msg = "malformed Transfer-Encoding";
        break;
    case HPE_INVALID_CHUNK_SIZE:
        *msg = "malformed chunk size";
        break;
    case HPE_INVALID_URL:
        *msg = "malformed request target";
        break;
    case HPE_STRICT:
    case HPE_CR_EXPECTED:
    case HPE_LF_EXPECTED:
        *msg = "malformed line ending";
        break;
    default:
        *msg = "malformed request";
        break;
    }
    return 400;
}
