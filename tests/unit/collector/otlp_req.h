/*
 * otlp_req.h - OTLP requests for the decoders' tests and benchmark, written by weft's own
 * exporter encoders (src/otlp/encode_pb.c, encode_json.c), and the check that a decoded
 * span holds exactly what was encoded.
 *
 * req_span(i, &d) fills a realistic server or client span: ten attributes of the HTTP
 * semantic conventions (strings, ints, a double, a bool), a parent, a tracestate, an event
 * with attributes on every third span, an error status with a message on every fifth.
 */
#ifndef WEFT_TEST_OTLP_REQ_H
#define WEFT_TEST_OTLP_REQ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/span.h"
#include "core/buf.h"
#include "otlp/otlp_int.h"
#include "weft/weft.h"

static char req_strs[64][3][96]; /* the spans' varying strings (per span index mod 64) */

static inline void req_span(int i, weft_span_data_t *d)
{
    memset(d, 0, sizeof(*d));
    char(*s)[96] = req_strs[i % 64];
    d->kind = i % 2 ? WEFT_SPAN_CLIENT : WEFT_SPAN_SERVER;
    for (int k = 0; k < 16; k++) d->context.trace_id[k] = (uint8_t)(0x10 + k + i / 7);
    for (int k = 0; k < 8; k++) d->context.span_id[k] = (uint8_t)(0xa0 + k + i);
    d->context.flags = 1;
    memcpy(d->context.tracestate, "vendor=abc,other=x", 18);
    d->context.tracestate_len = 18;
    if (i % 4) {
        for (int k = 0; k < 8; k++) d->parent_span_id[k] = (uint8_t)(0x50 + k + i);
        d->parent_remote = i % 8 == 1;
    }
    snprintf(d->name, sizeof(d->name), "%s /api/users/{id}", i % 2 ? "POST" : "GET");
    d->start_ns = 1700000000000000000ull + (uint64_t)i * 1000003;
    d->end_ns = d->start_ns + 1234567 + (uint64_t)i;
    snprintf(s[0], sizeof(s[0]), "http://users-%d.internal:8080/api/users/%d", i % 5, 1000 + i);
    snprintf(s[1], sizeof(s[1]), "users-%d.internal", i % 5);
    snprintf(s[2], sizeof(s[2]), "caf\xc3\xa9 \"quoted\" client/%d", i % 3);
    weft_attr_t attrs[] = {
        WEFT_ATTR_STR("http.method", i % 2 ? "POST" : "GET"),
        WEFT_ATTR_STR("http.route", "/api/users/{id}"),
        WEFT_ATTR_INT("http.status_code", i % 5 == 0 ? 500 : 200),
        WEFT_ATTR_STR("http.url", s[0]),
        WEFT_ATTR_STR("net.peer.name", s[1]),
        WEFT_ATTR_INT("net.peer.port", 8080),
        WEFT_ATTR_STR("http.user_agent", s[2]),
        WEFT_ATTR_STR("http.flavor", "1.1"),
        WEFT_ATTR_DOUBLE("sampling.ratio", 0.25 + i * 1e-3),
        WEFT_ATTR_BOOL("retry", i % 3 == 0),
    };
    memcpy(d->attrs, attrs, sizeof(attrs));
    d->nattrs = sizeof(attrs) / sizeof(attrs[0]);
    d->dropped_attrs = (unsigned)(i % 2);
    if (i % 3 == 0) {
        d->event_attrs[0] = WEFT_ATTR_STR("exception.type", "Timeout");
        d->event_attrs[1] = WEFT_ATTR_INT("attempt", i);
        d->nevent_attrs = 2;
        d->events[0] = (weft_span_event_t){.name = "retry",
                                           .time_ns = d->start_ns + 1000,
                                           .attrs = d->event_attrs,
                                           .nattrs = 2,
                                           .dropped_attrs = 1};
        d->nevents = 1;
    }
    if (i % 5 == 0) {
        d->status = WEFT_SPAN_STATUS_ERROR;
        d->status_message = "upstream timed out";
    } else if (i % 5 == 1) {
        d->status = WEFT_SPAN_STATUS_OK;
    }
}

/* n spans (from index first) as one request, into pb (protobuf) and/or json. NULL frees. */
static inline void req_build(int first, size_t n, weft_buf_t *pb, weft_buf_t *json)
{
    item_t *items = NULL, **tail = &items;
    weft_span_data_t *d = malloc(sizeof(*d));
    if (!d) abort();
    for (size_t i = 0; i < n; i++) {
        req_span(first + (int)i, d);
        item_t *it = weft__otlp_item_new(d);
        if (!it) abort();
        it->next = NULL;
        *tail = it;
        tail = &it->next;
    }
    free(d);
    if (pb) {
        weft_buf_t res;
        weft_buf_init(&res, 0);
        weft__pb_string_kv(&res, 1, "service.name", "users-api");
        weft__pb_string_kv(&res, 1, "host.name", "node-7");
        weft__otlp_pb_batch(pb, res.p, res.len, items, n);
        weft_buf_free(&res);
    }
    if (json) {
        weft_buf_t res;
        weft_buf_init(&res, 0);
        weft__otlp_json_string_kv(&res, "service.name", "users-api");
        weft_buf_putc(&res, ',');
        weft__otlp_json_string_kv(&res, "host.name", "node-7");
        weft__otlp_json_batch(json, res.p, items, n);
        weft_buf_free(&res);
    }
    while (items) {
        item_t *next = items->next;
        free(items);
        items = next;
    }
}

static inline bool req_str_is(col_str_t s, const char *z)
{
    return col_str_eq(s, z, strlen(z));
}

static inline void req_check_attr(const col_attr_t *a, const weft_attr_t *w)
{
    if (!req_str_is(a->key, w->key)) abort();
    switch (w->type) {
    case WEFT_ATTR_STRING:
        if (a->type != COL_V_STRING || !req_str_is(a->v.s, w->v.s)) abort();
        break;
    case WEFT_ATTR_INT:
        if (a->type != COL_V_INT || a->v.i != w->v.i) abort();
        break;
    case WEFT_ATTR_DOUBLE:
        if (a->type != COL_V_DOUBLE || a->v.d != w->v.d) abort();
        break;
    case WEFT_ATTR_BOOL:
        if (a->type != COL_V_BOOL || a->v.b != w->v.b) abort();
        break;
    }
}

/* Whether s is exactly req_span(i): aborts (with the field's line) when not. */
#define REQ_CHECK(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: span %d: %s\n", __FILE__, __LINE__, i, #c);                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline void req_check_span(const col_span_t *s, int i)
{
    weft_span_data_t *d = malloc(sizeof(*d));
    if (!d) abort();
    req_span(i, d);
    static const uint8_t zero[8];
    REQ_CHECK(memcmp(s->trace_id, d->context.trace_id, 16) == 0);
    REQ_CHECK(memcmp(s->span_id, d->context.span_id, 8) == 0);
    REQ_CHECK(memcmp(s->parent_id, i % 4 ? d->parent_span_id : zero, 8) == 0);
    REQ_CHECK(s->start_ns == d->start_ns && s->end_ns == d->end_ns);
    REQ_CHECK(req_str_is(s->name, d->name));
    REQ_CHECK(req_str_is(s->trace_state, "vendor=abc,other=x"));
    REQ_CHECK(s->kind == d->kind + 1);
    REQ_CHECK(s->status == d->status);
    REQ_CHECK(req_str_is(s->status_message, d->status_message ? d->status_message : ""));
    REQ_CHECK(s->flags == (1u | 0x100u | (d->parent_remote ? 0x200u : 0)));
    REQ_CHECK(!s->shared && !s->debug);
    REQ_CHECK(s->nattrs == d->nattrs && s->dropped_attrs == d->dropped_attrs);
    for (unsigned k = 0; k < d->nattrs; k++) req_check_attr(&s->attrs[k], &d->attrs[k]);
    REQ_CHECK(s->nevents == d->nevents && s->dropped_events == 0);
    for (unsigned k = 0; k < d->nevents; k++) {
        const col_event_t *e = &s->events[k];
        REQ_CHECK(req_str_is(e->name, d->events[k].name));
        REQ_CHECK(e->time_ns == d->events[k].time_ns);
        REQ_CHECK(e->nattrs == d->events[k].nattrs);
        REQ_CHECK(e->dropped_attrs == d->events[k].dropped_attrs);
        for (unsigned a = 0; a < e->nattrs; a++)
            req_check_attr(&e->attrs[a], &d->events[k].attrs[a]);
    }
    REQ_CHECK(s->nlinks == 0 && s->dropped_links == 0);
    REQ_CHECK(req_str_is(s->resource->service, "users-api"));
    REQ_CHECK(s->resource->nattrs == 2);
    REQ_CHECK(req_str_is(s->resource->attrs[1].key, "host.name"));
    REQ_CHECK(req_str_is(s->resource->attrs[1].v.s, "node-7"));
    REQ_CHECK(req_str_is(s->scope->name, "weft"));
    REQ_CHECK(req_str_is(s->scope->version, WEFT_VERSION));
    free(d);
}

/* ---- a little protobuf writer for hand-built messages ---- */

static inline void tagv(weft_buf_t *b, unsigned field, unsigned wt)
{
    uint64_t v = (uint64_t)field << 3 | wt;
    while (v >= 0x80) {
        weft_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    weft_buf_putc(b, (char)v);
}

static inline void fx64(weft_buf_t *b, unsigned field, uint64_t v)
{
    tagv(b, field, 1);
    for (int i = 0; i < 8; i++) weft_buf_putc(b, (char)(v >> (8 * i)));
}

static inline void fx32(weft_buf_t *b, unsigned field, uint32_t v)
{
    tagv(b, field, 5);
    for (int i = 0; i < 4; i++) weft_buf_putc(b, (char)(v >> (8 * i)));
}

static inline void str(weft_buf_t *b, unsigned field, const char *s)
{
    weft__pb_bytes(b, field, s, strlen(s));
}

static const uint8_t TID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t SID[8] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};

/* A minimal valid span's fields (ids, name, times). */
static inline void span_min(weft_buf_t *b, const char *name)
{
    weft__pb_bytes(b, 1, TID, 16);
    weft__pb_bytes(b, 2, SID, 8);
    str(b, 5, name);
    fx64(b, 7, 100);
    fx64(b, 8, 200);
}

static inline void req_everything_span(weft_buf_t *b)
{
    /* fields out of order, unknown ones of every wire type between them */
    fx32(b, 16, 0x301);
    str(b, 5, "op");
    weft__pb_varint_field(b, 99, 12345); /* unknown varint */
    fx64(b, 98, 7);                      /* unknown fixed64 */
    fx32(b, 97, 7);                      /* unknown fixed32 */
    str(b, 96, "unknown");               /* unknown LEN */
    weft__pb_bytes(b, 2, SID, 8);
    weft__pb_bytes(b, 1, TID, 16);
    weft__pb_bytes(b, 4, "\0\0\0\0\0\0\0\0", 8); /* all-zero parent: a root */
    str(b, 3, "k=v");
    weft__pb_varint_field(b, 6, 5);
    fx64(b, 8, 2000);
    fx64(b, 7, 1000);
    weft__pb_varint_field(b, 10, 3);
    weft__pb_varint_field(b, 12, 4);
    weft__pb_varint_field(b, 14, 0x100000005ull); /* uint32: the low 32 bits */
    /* attributes: bytes, empty, array, kvlist, negative int, double, a missing value */
    size_t kv = weft__pb_open(b, 9);
    str(b, 1, "bin");
    size_t v = weft__pb_open(b, 2);
    weft__pb_bytes(b, 7, "\x00\xff\x10", 3);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    kv = weft__pb_open(b, 9);
    str(b, 1, "empty");
    v = weft__pb_open(b, 2);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    kv = weft__pb_open(b, 9);
    str(b, 1, "arr");
    v = weft__pb_open(b, 2);
    size_t arr = weft__pb_open(b, 5);
    size_t el = weft__pb_open(b, 1);
    str(b, 1, "a\"b");
    weft__pb_close(b, el);
    el = weft__pb_open(b, 1);
    weft__pb_varint_field(b, 3, (uint64_t)-7);
    weft__pb_close(b, el);
    el = weft__pb_open(b, 1);
    weft__pb_varint_field(b, 2, 1);
    weft__pb_close(b, el);
    el = weft__pb_open(b, 1);
    fx64(b, 4, 0x3ff8000000000000ull); /* 1.5 */
    weft__pb_close(b, el);
    el = weft__pb_open(b, 1);
    weft__pb_bytes(b, 7, "hi", 2);
    weft__pb_close(b, el);
    el = weft__pb_open(b, 1); /* an empty AnyValue */
    weft__pb_close(b, el);
    el = weft__pb_open(b, 1); /* a nested array */
    size_t inner = weft__pb_open(b, 5);
    weft__pb_close(b, inner);
    weft__pb_close(b, el);
    weft__pb_close(b, arr);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    kv = weft__pb_open(b, 9);
    str(b, 1, "kvl");
    v = weft__pb_open(b, 2);
    size_t list = weft__pb_open(b, 6);
    size_t e = weft__pb_open(b, 1);
    str(b, 1, "x");
    size_t ev = weft__pb_open(b, 2);
    fx64(b, 4, 0x7ff8000000000000ull); /* NaN */
    weft__pb_close(b, ev);
    weft__pb_close(b, e);
    e = weft__pb_open(b, 1); /* a KeyValue without value */
    str(b, 1, "y");
    weft__pb_close(b, e);
    weft__pb_close(b, list);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    kv = weft__pb_open(b, 9);
    str(b, 1, "neg");
    v = weft__pb_open(b, 2);
    weft__pb_varint_field(b, 3, (uint64_t)INT64_MIN);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    kv = weft__pb_open(b, 9); /* a KeyValue with no value field */
    str(b, 1, "novalue");
    weft__pb_close(b, kv);
    kv = weft__pb_open(b, 9); /* oneof: the last value given wins */
    str(b, 1, "last");
    v = weft__pb_open(b, 2);
    str(b, 1, "first");
    weft__pb_varint_field(b, 3, 42);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    /* events and links */
    ev = weft__pb_open(b, 11);
    str(b, 2, "ev");
    fx64(b, 1, 1500);
    weft__pb_varint_field(b, 4, 2);
    weft__pb_close(b, ev);
    size_t ln = weft__pb_open(b, 13);
    weft__pb_bytes(b, 1, TID, 16);
    weft__pb_bytes(b, 2, SID, 8);
    str(b, 3, "l=1");
    fx32(b, 6, 1);
    weft__pb_varint_field(b, 5, 6);
    kv = weft__pb_open(b, 4);
    str(b, 1, "lk");
    v = weft__pb_open(b, 2);
    weft__pb_varint_field(b, 2, 0);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
    weft__pb_close(b, ln);
    size_t st = weft__pb_open(b, 15);
    weft__pb_varint_field(b, 3, 2);
    str(b, 2, "broken");
    weft__pb_close(b, st);
}

/* Two ResourceSpans: the first with its scopeSpans before its resource, a scope with
 * attributes, schema urls, the span above; the second with no resource, no scope and a
 * minimal span; an unknown field of the request. (test_otlp_json has the same in JSON.) */
static inline void req_everything_pb(weft_buf_t *b)
{
    /* resourceSpans[0]: its scopeSpans before its resource; a second ResourceSpans with no
     * resource and a scope without name; schema urls */
    size_t rs = weft__pb_open(b, 1);
    str(b, 3, "https://schema/1");
    size_t ss = weft__pb_open(b, 2);
    size_t sp = weft__pb_open(b, 2);
    req_everything_span(b);
    weft__pb_close(b, sp);
    size_t sc = weft__pb_open(b, 1);
    str(b, 1, "lib");
    str(b, 2, "1.2");
    weft__pb_string_kv(b, 3, "scope.attr", "s");
    weft__pb_varint_field(b, 4, 9);
    weft__pb_close(b, sc);
    str(b, 3, "https://schema/2");
    weft__pb_close(b, ss);
    size_t res = weft__pb_open(b, 1);
    weft__pb_string_kv(b, 1, "host.name", "h");
    weft__pb_string_kv(b, 1, "service.name", "svc");
    weft__pb_varint_field(b, 2, 8);
    weft__pb_close(b, res);
    weft__pb_close(b, rs);
    rs = weft__pb_open(b, 1);
    ss = weft__pb_open(b, 2);
    sp = weft__pb_open(b, 2);
    span_min(b, "second");
    weft__pb_close(b, sp);
    weft__pb_close(b, ss);
    weft__pb_close(b, rs);
    str(b, 77, "an unknown field of the request");
}

/* Two batches hold the same spans, field by field (strings by content). */
static inline bool req_same_str(col_str_t x, col_str_t y)
{
    return x.n == y.n && (x.n == 0 || memcmp(x.p, y.p, x.n) == 0);
}

static inline bool req_same_attrs(const col_attr_t *x, uint32_t nx, const col_attr_t *y, uint32_t ny)
{
    if (nx != ny) return false;
    for (uint32_t i = 0; i < nx; i++) {
        if (!req_same_str(x[i].key, y[i].key) || x[i].type != y[i].type) return false;
        switch (x[i].type) {
        case COL_V_BOOL:
            if (x[i].v.b != y[i].v.b) return false;
            break;
        case COL_V_INT:
            if (x[i].v.i != y[i].v.i) return false;
            break;
        case COL_V_DOUBLE:
            if (memcmp(&x[i].v.d, &y[i].v.d, sizeof(double)) != 0) return false;
            break;
        case COL_V_EMPTY:
            break;
        default:
            if (!req_same_str(x[i].v.s, y[i].v.s)) return false;
        }
    }
    return true;
}

#define REQ_SAME(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: span %zu differs: %s\n", __FILE__, __LINE__, i, #c);           \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static inline bool req_same_batch(const col_batch_t *x, const col_batch_t *y)
{
    size_t i = 0;
    REQ_SAME(x->n == y->n && x->rejected == y->rejected);
    REQ_SAME(strcmp(x->reject_msg, y->reject_msg) == 0);
    for (i = 0; i < x->n; i++) {
        const col_span_t *a = &x->spans[i], *b = &y->spans[i];
        REQ_SAME(memcmp(a->trace_id, b->trace_id, 16) == 0);
        REQ_SAME(memcmp(a->span_id, b->span_id, 8) == 0);
        REQ_SAME(memcmp(a->parent_id, b->parent_id, 8) == 0);
        REQ_SAME(a->start_ns == b->start_ns && a->end_ns == b->end_ns);
        REQ_SAME(req_same_str(a->name, b->name));
        REQ_SAME(req_same_str(a->trace_state, b->trace_state));
        REQ_SAME(req_same_str(a->status_message, b->status_message));
        REQ_SAME(a->kind == b->kind && a->status == b->status && a->flags == b->flags);
        REQ_SAME(a->shared == b->shared && a->debug == b->debug);
        REQ_SAME(req_same_attrs(a->attrs, a->nattrs, b->attrs, b->nattrs));
        REQ_SAME(a->dropped_attrs == b->dropped_attrs && a->dropped_events == b->dropped_events &&
                 a->dropped_links == b->dropped_links);
        REQ_SAME(a->nevents == b->nevents && a->nlinks == b->nlinks);
        for (uint32_t k = 0; k < a->nevents; k++) {
            const col_event_t *e = &a->events[k], *f = &b->events[k];
            REQ_SAME(e->time_ns == f->time_ns && req_same_str(e->name, f->name));
            REQ_SAME(e->dropped_attrs == f->dropped_attrs);
            REQ_SAME(req_same_attrs(e->attrs, e->nattrs, f->attrs, f->nattrs));
        }
        for (uint32_t k = 0; k < a->nlinks; k++) {
            const col_link_t *l = &a->links[k], *m = &b->links[k];
            REQ_SAME(memcmp(l->trace_id, m->trace_id, 16) == 0);
            REQ_SAME(memcmp(l->span_id, m->span_id, 8) == 0);
            REQ_SAME(req_same_str(l->trace_state, m->trace_state) && l->flags == m->flags);
            REQ_SAME(l->dropped_attrs == m->dropped_attrs);
            REQ_SAME(req_same_attrs(l->attrs, l->nattrs, m->attrs, m->nattrs));
        }
        const col_resource_t *r = a->resource, *q = b->resource;
        REQ_SAME(req_same_str(r->service, q->service) && r->dropped_attrs == q->dropped_attrs);
        REQ_SAME(req_same_attrs(r->attrs, r->nattrs, q->attrs, q->nattrs));
        const col_scope_t *s = a->scope, *t = b->scope;
        REQ_SAME(req_same_str(s->name, t->name) && req_same_str(s->version, t->version));
        REQ_SAME(s->dropped_attrs == t->dropped_attrs);
        REQ_SAME(req_same_attrs(s->attrs, s->nattrs, t->attrs, t->nattrs));
        REQ_SAME(memcmp(&a->local, &b->local, sizeof(a->local)) == 0);
        REQ_SAME(req_same_str(a->remote.service, b->remote.service));
    }
    return true;
}

#endif
