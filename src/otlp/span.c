/*
 * span.c - the exporter's copy of a finished span (item_t, otlp/otlp_int.h): what OTLP
 * needs of a weft_span_data_t, in one allocation sized for it.
 *
 * weft_span_data_t has fixed arrays for the most attributes and events a span may hold
 * (about 3 KB); a server span uses a few hundred bytes of that. A span waits in the
 * exporter's queue for up to a flush interval, and up to max_queue of them wait at once, so
 * each is copied into an item that holds the fixed fields, then the attribute and event
 * arrays, then every string they point to: one malloc, one free, nothing shared with the
 * span it came from, which the tracer reuses as soon as export_spans returns.
 *
 * Invariants: the arrays come first in data (pointer-aligned: data is, and the element
 * sizes are multiples of 8), then the strings; every pointer in an item points into the
 * item; an event's attributes are a slice of the item's event_attrs. Counts are capped at
 * the span model's maxima (WEFT_SPAN_MAX_*), whatever the source claims.
 *
 * Runs on whichever thread ends the span (worker loops, several at once); touches only its
 * arguments.
 */
#include <stdlib.h>
#include <string.h>

#include "otlp/otlp_int.h"

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static size_t attrs_len(const weft_attr_t *a, unsigned n)
{
    size_t t = 0;
    for (unsigned i = 0; i < n; i++) {
        t += slen(a[i].key);
        if (a[i].type == WEFT_ATTR_STRING) t += slen(a[i].v.s);
    }
    return t;
}

static const char *put(char **p, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = *p;
    memcpy(d, s, n);
    *p += n;
    return d;
}

static void put_attrs(char **p, weft_attr_t *d, const weft_attr_t *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        d[i] = s[i];
        d[i].key = put(p, s[i].key);
        if (s[i].type == WEFT_ATTR_STRING) d[i].v.s = put(p, s[i].v.s);
    }
}

item_t *weft__otlp_item_new(const weft_span_data_t *src)
{
    unsigned na = src->nattrs < WEFT_SPAN_MAX_ATTRS ? src->nattrs : WEFT_SPAN_MAX_ATTRS;
    unsigned ne = src->nevents < WEFT_SPAN_MAX_EVENTS ? src->nevents : WEFT_SPAN_MAX_EVENTS;
    unsigned nea = src->nevent_attrs < WEFT_SPAN_MAX_EVENT_ATTRS ? src->nevent_attrs
                                                                 : WEFT_SPAN_MAX_EVENT_ATTRS;
    size_t namelen = strnlen(src->name, sizeof(src->name));
    size_t tslen = src->context.tracestate_len < sizeof(src->context.tracestate)
                       ? src->context.tracestate_len
                       : sizeof(src->context.tracestate);
    size_t arrays = (na + nea) * sizeof(weft_attr_t) + ne * sizeof(weft_span_event_t);
    size_t need = arrays + namelen + 1 + tslen + 1 + slen(src->status_message) +
                  attrs_len(src->attrs, na) + attrs_len(src->event_attrs, nea);
    for (unsigned i = 0; i < ne; i++) need += slen(src->events[i].name);
    item_t *it = malloc(offsetof(item_t, data) + need);
    if (!it) return NULL;
    it->next = NULL;
    it->queued_ms = 0;
    it->start_ns = src->start_ns;
    it->end_ns = src->end_ns;
    memcpy(it->trace_id, src->context.trace_id, 16);
    memcpy(it->span_id, src->context.span_id, 8);
    memcpy(it->parent_span_id, src->parent_span_id, 8);
    it->flags = src->context.flags;
    it->parent_remote = src->parent_remote;
    it->kind = (uint8_t)src->kind;
    it->status = (uint8_t)src->status;
    it->tracestate_len = (uint16_t)tslen;
    it->nattrs = (uint16_t)na;
    it->nevents = (uint16_t)ne;
    it->nevent_attrs = (uint16_t)nea;
    it->dropped_attrs = src->dropped_attrs;
    it->dropped_events = src->dropped_events;
    /* the arrays first (pointer-aligned: data is, and the element sizes are multiples of
     * 8), then the strings */
    it->attrs = (weft_attr_t *)(void *)it->data;
    it->event_attrs = it->attrs + na;
    it->events = (weft_span_event_t *)(void *)(it->event_attrs + nea);
    char *p = it->data + arrays;
    memcpy(p, src->name, namelen);
    p[namelen] = 0;
    it->name = p;
    p += namelen + 1;
    memcpy(p, src->context.tracestate, tslen);
    p[tslen] = 0;
    it->tracestate = p;
    p += tslen + 1;
    it->status_message = put(&p, src->status_message);
    put_attrs(&p, it->attrs, src->attrs, na);
    put_attrs(&p, it->event_attrs, src->event_attrs, nea);
    for (unsigned i = 0; i < ne; i++) {
        weft_span_event_t *e = &it->events[i];
        *e = src->events[i];
        e->name = put(&p, e->name);
        /* the event's attributes are a slice of src's event_attrs: take the same slice of
         * ours; anything else (an exporter fed by hand) loses its attributes */
        if (e->attrs && e->attrs >= src->event_attrs &&
            e->attrs + e->nattrs <= src->event_attrs + nea)
            e->attrs = it->event_attrs + (e->attrs - src->event_attrs);
        else
            e->attrs = NULL, e->nattrs = 0;
    }
    return it;
}
