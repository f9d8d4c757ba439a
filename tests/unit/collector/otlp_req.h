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

static void req_span(int i, weft_span_data_t *d)
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
static void req_build(int first, size_t n, weft_buf_t *pb, weft_buf_t *json)
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

static bool req_str_is(col_str_t s, const char *z)
{
    return col_str_eq(s, z, strlen(z));
}

static void req_check_attr(const col_attr_t *a, const weft_attr_t *w)
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

static void req_check_span(const col_span_t *s, int i)
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

#endif
