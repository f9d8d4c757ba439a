/*
 * exporter.c - weft's own spans (the gateway's, the API's) straight into the trace store:
 * a span exporter (weft/trace.h) that converts each finished span to the collector's model
 * on the thread that ended it and appends it to the store, with no HTTP hop and no encoding.
 *
 * The tracer is made before the collector (weft_service_new needs its exporter; the
 * collector needs the service's host), so the exporter points at a sink that the collector
 * is attached to once it exists; spans ended before that, or after the collector closed,
 * are counted as dropped by the tracer. Nobody waits for these appends: a full write queue
 * drops them (the tracer counts them), never the ingest of other clients' spans.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "collector/collector_int.h"
#include "weft/weft.h"

struct weft_collector_sink_s {
    _Atomic(weft_collector_t *) c;
};

weft_collector_sink_t *weft_collector_sink_new(void)
{
    weft_collector_sink_t *s = calloc(1, sizeof(*s));
    if (s) atomic_init(&s->c, NULL);
    return s;
}

void weft_collector_sink_attach(weft_collector_sink_t *s, weft_collector_t *c)
{
    atomic_store_explicit(&s->c, c, memory_order_release);
}

void weft_collector_sink_free(weft_collector_sink_t *s)
{
    free(s);
}

static uint32_t slen(const char *s)
{
    return s ? (uint32_t)strlen(s) : 0;
}

static void attr_copy(col_attr_t *d, const weft_attr_t *a)
{
    d->key = (col_str_t){a->key, slen(a->key)};
    switch (a->type) {
    case WEFT_ATTR_STRING:
        d->type = COL_V_STRING;
        d->v.s = (col_str_t){a->v.s ? a->v.s : "", slen(a->v.s)};
        break;
    case WEFT_ATTR_INT:
        d->type = COL_V_INT;
        d->v.i = a->v.i;
        break;
    case WEFT_ATTR_DOUBLE:
        d->type = COL_V_DOUBLE;
        d->v.d = a->v.d;
        break;
    default:
        d->type = COL_V_BOOL;
        d->v.b = a->v.b;
        break;
    }
}

/* The most spans one call converts at once; more are appended in several goes. */
#define CHUNK 64

static int export_spans(const weft_span_data_t *const *spans, size_t n, void *arg)
{
    weft_collector_sink_t *s = arg;
    weft_collector_t *c = atomic_load_explicit(&s->c, memory_order_acquire);
    if (!c) return WEFT_ECLOSED;
    int rc = 0;
    weft_arena_t a;
    weft_arena_init(&a, 16 * 1024, 64u << 20);
    static const col_scope_t scope = {.name = {"weft", 4},
                                      .version = {WEFT_VERSION, sizeof(WEFT_VERSION) - 1}};
    for (size_t at = 0; at < n && rc == 0; at += CHUNK) {
        size_t m = n - at < CHUNK ? n - at : CHUNK;
        col_span_t *out = weft_arena_alloc(&a, m * sizeof(*out));
        col_resource_t *res = weft_arena_alloc(&a, m * sizeof(*res));
        col_attr_t *rattr = weft_arena_alloc(&a, m * sizeof(*rattr));
        if (!out || !res || !rattr) {
            rc = WEFT_ENOMEM;
            break;
        }
        memset(out, 0, m * sizeof(*out));
        for (size_t i = 0; i < m && rc == 0; i++) {
            const weft_span_data_t *d = spans[at + i];
            col_span_t *o = &out[i];
            uint32_t sl = slen(d->service_name);
            rattr[i] = (col_attr_t){
                .key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = {d->service_name, sl}};
            res[i] =
                (col_resource_t){.service = {d->service_name, sl}, .attrs = &rattr[i], .nattrs = 1};
            o->resource = &res[i];
            o->scope = &scope;
            memcpy(o->trace_id, d->context.trace_id, 16);
            memcpy(o->span_id, d->context.span_id, 8);
            memcpy(o->parent_id, d->parent_span_id, 8);
            o->start_ns = d->start_ns;
            o->end_ns = d->end_ns;
            o->name = (col_str_t){d->name, (uint32_t)strnlen(d->name, sizeof(d->name))};
            o->trace_state = (col_str_t){d->context.tracestate, d->context.tracestate_len};
            if (d->status_message)
                o->status_message = (col_str_t){d->status_message, slen(d->status_message)};
            o->kind = (uint8_t)(d->kind + 1); /* weft's numbers start at INTERNAL = 0 */
            o->status = (uint8_t)d->status;
            o->flags = d->context.flags;
            o->dropped_attrs = d->dropped_attrs;
            o->dropped_events = d->dropped_events;
            if (d->nattrs) {
                o->attrs = weft_arena_alloc(&a, d->nattrs * sizeof(col_attr_t));
                if (!o->attrs) {
                    rc = WEFT_ENOMEM;
                    break;
                }
                for (unsigned k = 0; k < d->nattrs; k++) attr_copy(&o->attrs[k], &d->attrs[k]);
                o->nattrs = d->nattrs;
            }
            if (d->nevents) {
                o->events = weft_arena_alloc(&a, d->nevents * sizeof(col_event_t));
                if (!o->events) {
                    rc = WEFT_ENOMEM;
                    break;
                }
                for (unsigned k = 0; k < d->nevents; k++) {
                    const weft_span_event_t *e = &d->events[k];
                    col_event_t *ce = &o->events[k];
                    memset(ce, 0, sizeof(*ce));
                    ce->time_ns = e->time_ns;
                    ce->name = (col_str_t){e->name, slen(e->name)};
                    ce->dropped_attrs = e->dropped_attrs;
                    if (e->nattrs) {
                        ce->attrs = weft_arena_alloc(&a, e->nattrs * sizeof(col_attr_t));
                        if (!ce->attrs) {
                            rc = WEFT_ENOMEM;
                            break;
                        }
                        for (unsigned q = 0; q < e->nattrs; q++)
                            attr_copy(&ce->attrs[q], &e->attrs[q]);
                        ce->nattrs = e->nattrs;
                    }
                }
                o->nevents = d->nevents;
            }
        }
        if (rc == 0) {
            if (c->deps) col_deps_add(c->deps, out, m);
            rc = col_store_append(c->store, out, m, NULL, NULL);
            if (rc == 0 && c->fwd) col_fwd_add(c->fwd, out, m);
        }
        weft_arena_reset(&a);
    }
    weft_arena_free(&a);
    return rc;
}

static void sink_shutdown(void *arg)
{
    (void)arg; /* the sink is freed by its owner once the tracer is gone */
}

weft_span_exporter_t weft_collector_sink_exporter(weft_collector_sink_t *s)
{
    return (weft_span_exporter_t){
        .export_spans = export_spans, .shutdown = sink_shutdown, .arg = s};
}
