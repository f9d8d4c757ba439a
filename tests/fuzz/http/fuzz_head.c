/*
 * fuzz_head.c - weft__head_scan against llhttp itself.
 *
 * The first byte of an input picks a request (even) or a response (odd) head; the rest is
 * the bytes. Whenever weft__head_scan takes a head, llhttp must take the same bytes the same
 * way: the message ends where the scan says (a request at its blank line; a response after
 * its Content-Length body, when all of it is there), with the same method and target, or
 * status, HTTP/1.1, the same header names and values at the same offsets, the same
 * keep-alive and no chunked framing. A head the scan declines tells nothing (llhttp then
 * parses it as before), so only acceptance is checked. Seeds: tests/fuzz/http/corpus/
 * fuzz_head.
 */
#include <llhttp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/head.h"

#define HCAP 16

typedef struct {
    const char *base;
    weft__hspan_t h[HCAP + 1];
    uint32_t nh;
    bool in_value;
    uint32_t url_off, url_len;
    bool got_url;
    bool headers_done, done;
    uint64_t body;
} got_t;

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    got_t *g = p->data;
    if (!g->got_url) g->url_off = (uint32_t)(at - g->base);
    g->got_url = true;
    g->url_len += (uint32_t)len;
    return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    got_t *g = p->data;
    if (g->nh == 0 || g->in_value) {
        if (g->nh > HCAP) abort(); /* the scan took at most HCAP */
        weft__hspan_t *h = &g->h[g->nh++];
        h->noff = (uint32_t)(at - g->base);
        h->nlen = h->voff = h->vlen = 0;
        g->in_value = false;
    }
    g->h[g->nh - 1].nlen += (uint32_t)len;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    got_t *g = p->data;
    weft__hspan_t *h = &g->h[g->nh - 1];
    if (h->vlen == 0) h->voff = (uint32_t)(at - g->base);
    h->vlen += (uint32_t)len;
    g->in_value = true;
    return 0;
}

static int on_value_complete(llhttp_t *p)
{
    ((got_t *)p->data)->in_value = true;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    ((got_t *)p->data)->headers_done = true;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    ((got_t *)p->data)->body += len;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    ((got_t *)p->data)->done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_head: %s (line %d)\n", #cond, __LINE__);                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    bool response = data[0] & 1;
    size_t n = size - 1;
    /* a copy of exactly n bytes: ASan sees any read past the end */
    char *p = malloc(n ? n : 1);
    if (!p) return 0;
    memcpy(p, data + 1, n);
    weft__hspan_t hs[HCAP];
    weft__head_t o;
    if (!weft__head_scan(response, p, n, 8192, hs, HCAP, &o)) {
        free(p);
        return 0;
    }
    CHECK(o.len <= n && o.nhdr <= HCAP);

    llhttp_t parser;
    got_t g = {.base = p};
    llhttp_init(&parser, response ? HTTP_RESPONSE : HTTP_REQUEST, &settings);
    parser.data = &g;
    /* a request ends at its head; a response after its body, when all of it is here */
    size_t want = response ? o.len + (size_t)o.length : o.len;
    size_t feed = want <= n ? want : n;
    llhttp_errno_t e = llhttp_execute(&parser, p, feed);
    if (want <= n) {
        CHECK(e == HPE_PAUSED && g.done);
        CHECK(llhttp_get_error_pos(&parser) == p + want);
    } else {
        CHECK(e == HPE_OK && g.headers_done && !g.done);
    }
    CHECK(parser.http_major == 1 && parser.http_minor == 1);
    CHECK(!(parser.flags & F_CHUNKED) && !parser.upgrade);
    CHECK((llhttp_should_keep_alive(&parser) != 0) == !o.close);
    if (response) {
        CHECK(parser.status_code == o.status);
        CHECK((parser.flags & F_CONTENT_LENGTH) != 0);
        CHECK(g.body == (want <= n ? o.length : n - o.len));
    } else {
        CHECK(parser.method == o.method);
        CHECK(g.got_url && g.url_off == o.url_off && g.url_len == o.url_len);
        CHECK(!(parser.flags & F_CONTENT_LENGTH) && g.body == 0);
    }
    CHECK(g.nh == o.nhdr);
    for (uint32_t i = 0; i < o.nhdr; i++) {
        CHECK(g.h[i].noff == hs[i].noff && g.h[i].nlen == hs[i].nlen);
        CHECK(g.h[i].vlen == hs[i].vlen);
        CHECK(hs[i].vlen == 0 || g.h[i].voff == hs[i].voff);
    }
    free(p);
    return 0;
}
