/*
 * otlp.c - the OTLP/HTTP span exporter (see weft/otlp.h): worker threads hand finished spans
 * to an exporter thread that batches them, encodes them as OTLP/JSON and POSTs them.
 *
 * Why here: it needs the HTTP client, and the trace module must not depend on http; the
 * service module already links http, metrics and trace.
 *
 * Threads. export_spans runs on whichever thread ended the span (worker loops, possibly
 * several at once). It deep-copies the span into one malloc'd item (the span data plus a
 * string area sized for what the span points to) and posts it to the exporter's inbox
 * (core/mpsc.h): a lock-free push and a uv_async_send, never a wait. Everything else runs on
 * the exporter's own thread and uv loop: the inbox hands items over, they join a pending
 * FIFO, and batches are encoded with jansson and sent with the loop's weft_http_client.
 * The stats are relaxed atomics, read from any thread.
 *
 * Bound. `held` counts the items that exist (in the inbox, pending, not yet encoded); a
 * producer reserves one before copying and gives up (dropped_queue_full) when max_queue are
 * held. So the exporter holds at most max_queue span copies, plus the encoded body of the one
 * request in flight, whatever the receiver does. The inbox's own limit is max_queue too, so
 * it never refuses a reserved item (the refusal is handled anyway).
 *
 * Sending. One request at a time. A batch (at most max_batch spans from the pending FIFO's
 * head) goes when max_batch are pending, when the oldest pending span has waited
 * flush_interval_ms (a one-shot timer armed for that instant), or at once while shutting
 * down. Items are freed as soon as they are encoded. A batch that fails (non-2xx, timeout,
 * connection error, encoding out of memory) is dropped and counted, never retried: a down
 * receiver costs one failed request per batch, and the queue bound does the rest. The first
 * failure after a success logs one warning; the first success after failures logs one info
 * line with the number of failed batches.
 *
 * Shutdown (the tracer's thread): `accepting` goes false, an async wakes the exporter thread,
 * which drains (sends pending batches back to back) with a shutdown_timeout_ms timer. When
 * nothing is pending or in flight, or the timer fires (the call in flight is cancelled and
 * what is left is counted in dropped_failed), every handle is closed, the HTTP client
 * included; uv_run returns, the caller joins the thread and frees everything.
 *
 * Memory: the SDK never aborts; an allocation failure drops the span or batch and counts it.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/mpsc.h"
#include "weft/client.h"
#include "weft/log.h"
#include "weft/otlp.h"
#include "weft/weft.h"

#define INBOX_BATCH 64 /* items the inbox hands over per loop iteration */

typedef struct item_s {
    weft_mpsc_node_t node;
    struct item_s *next; /* pending FIFO (exporter thread) */
    uint64_t queued_ms;  /* uv_now of the exporter loop when it arrived there */
    weft_span_data_t d;  /* pointers rebased into strings[] */
    char strings[];
} item_t;

typedef struct otlp_s {
    weft_span_exporter_t base; /* handed out; base.arg points back here */
    char *host, *path, *service_name;
    uint16_t port;
    size_t max_queue, max_batch;
    uint64_t flush_ms, timeout_ms, shutdown_ms;

    /* any thread */
    atomic_bool accepting;
    atomic_size_t held;
    atomic_ullong exported, dropped_queue_full, dropped_failed, batches_sent, batches_failed;

    /* exporter thread */
    uv_thread_t thread;
    uv_loop_t loop;
    weft_inbox_t inbox;
    uv_async_t stop_async;
    uv_timer_t flush_timer, shutdown_timer;
    weft_http_client_t *client;
    bool have_loop, have_inbox, have_async, have_timers;
    item_t *head, *tail; /* pending FIFO */
    size_t npending;
    weft_http_client_call_t *inflight;
    size_t inflight_spans;
    int inflight_status;
    bool draining, closing, finished;
    bool failing;          /* the last batch failed: no warning until one succeeds */
    uint64_t burst_failed; /* batches failed since the last warning */
} otlp_t;

/* ------------------------------------------------------------------------------------ */
/* copying a span (any thread)                                                          */

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

static void put_attrs(char **p, weft_attr_t *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        a[i].key = put(p, a[i].key);
        if (a[i].type == WEFT_ATTR_STRING) a[i].v.s = put(p, a[i].v.s);
    }
}

/* One malloc'd item holding a deep copy of src, or NULL (out of memory). */
static item_t *copy_span(const weft_span_data_t *src)
{
    unsigned na = src->nattrs < WEFT_SPAN_MAX_ATTRS ? src->nattrs : WEFT_SPAN_MAX_ATTRS;
    unsigned ne = src->nevents < WEFT_SPAN_MAX_EVENTS ? src->nevents : WEFT_SPAN_MAX_EVENTS;
    unsigned nea = src->nevent_attrs < WEFT_SPAN_MAX_EVENT_ATTRS ? src->nevent_attrs
                                                                 : WEFT_SPAN_MAX_EVENT_ATTRS;
    size_t need =
        slen(src->status_message) + attrs_len(src->attrs, na) + attrs_len(src->event_attrs, nea);
    for (unsigned i = 0; i < ne; i++) need += slen(src->events[i].name);
    item_t *it = malloc(offsetof(item_t, strings) + need);
    if (!it) return NULL;
    it->next = NULL;
    it->queued_ms = 0;
    it->d = *src;
    weft_span_data_t *d = &it->d;
    d->nattrs = na;
    d->nevents = ne;
    d->nevent_attrs = nea;
    char *p = it->strings;
    d->service_name = NULL; /* the resource carries it */
    d->status_message = put(&p, src->status_message);
    put_attrs(&p, d->attrs, na);
    put_attrs(&p, d->event_attrs, nea);
    for (unsigned i = 0; i < ne; i++) {
        weft_span_event_t *e = &d->events[i];
        e->name = put(&p, e->name);
        /* the event's attributes are a slice of src's event_attrs: take the same slice of
         * ours; anything else (an exporter fed by hand) loses its attributes */
        if (e->attrs && e->attrs >= src->event_attrs &&
            e->attrs + e->nattrs <= src->event_attrs + nea)
            e->attrs = d->event_attrs + (e->attrs - src->event_attrs);
        else
            e->attrs = NULL, e->nattrs = 0;
    }
    return it;
}

static void release(otlp_t *x, item_t *it)
{
    free(it);
    atomic_fetch_sub_explicit(&x->held, 1, memory_order_relaxed);
}

static int otlp_export(const weft_span_data_t *const *spans, size_t n, void *arg)
{
    otlp_t *x = arg;
    size_t refused = 0;
    for (size_t i = 0; i < n; i++) {
        if (!atomic_load_explicit(&x->accepting, memory_order_acquire)) {
            refused++;
            continue;
        }
        /* reserve a place first, so that at most max_queue copies ever exist */
        if (atomic_fetch_add_explicit(&x->held, 1, memory_order_relaxed) >= x->max_queue) {
            atomic_fetch_sub_explicit(&x->held, 1, memory_order_relaxed);
            refused++;
            continue;
        }
        item_t *it = copy_span(spans[i]);
        if (!it) {
            atomic_fetch_sub_explicit(&x->held, 1, memory_order_relaxed);
            refused++;
            continue;
        }
        if (weft_inbox_post(&x->inbox, &it->node) != 0) {
            release(x, it);
            refused++;
        }
    }
    if (refused) atomic_fetch_add_explicit(&x->dropped_queue_full, refused, memory_order_relaxed);
    return refused ? WEFT_ENOSPC : 0;
}

/* ------------------------------------------------------------------------------------ */
/* OTLP/JSON encoding (exporter thread)                                                 */

/* A JSON string for s; bytes that are not valid UTF-8 become U+FFFD (jansson refuses
 * invalid UTF-8, and a receiver would too). NULL only when out of memory. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *o = malloc(n * 3 + 1), *q = o;
    if (!o) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = u[i] < 0x80             ? 1
                     : (u[i] & 0xe0) == 0xc0 ? 2
                     : (u[i] & 0xf0) == 0xe0 ? 3
                     : (u[i] & 0xf8) == 0xf0 ? 4
                                             : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = (u[i + k] & 0xc0) == 0x80;
        if (ok && len > 1) { /* overlong forms, surrogates, beyond U+10FFFF */
            unsigned c = u[i] & (0xff >> (len + 1));
            for (size_t k = 1; k < len; k++) c = (c << 6) | (u[i + k] & 0x3f);
            ok = !(c < (len == 2   ? 0x80u
                        : len == 3 ? 0x800u
                                   : 0x10000u)) &&
                 !(c >= 0xd800 && c <= 0xdfff) && c <= 0x10ffff;
        }
        if (ok) {
            memcpy(q, u + i, len);
            q += len;
            i += len;
        } else {
            memcpy(q, "\xef\xbf\xbd", 3);
            q += 3;
            i++;
        }
    }
    *q = 0;
    j = json_string(o);
    free(o);
    return j;
}

static json_t *jhex(const uint8_t *b, size_t n)
{
    char h[33];
    weft_trace_hex(b, n, h);
    return json_stringn(h, 2 * n);
}

static json_t *jdec(uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRIu64, v);
    return json_stringn(b, (size_t)n);
}

/* AnyValue: int64 as a decimal string, doubles that JSON cannot hold as proto3 JSON's
 * "NaN", "Infinity", "-Infinity". */
static json_t *any_value(const weft_attr_t *a)
{
    char b[24];
    switch (a->type) {
    case WEFT_ATTR_STRING:
        return json_pack("{s:o}", "stringValue", jstr(a->v.s ? a->v.s : ""));
    case WEFT_ATTR_INT:
        snprintf(b, sizeof(b), "%" PRId64, a->v.i);
        return json_pack("{s:s}", "intValue", b);
    case WEFT_ATTR_DOUBLE:
        if (isnan(a->v.d)) return json_pack("{s:s}", "doubleValue", "NaN");
        if (isinf(a->v.d))
            return json_pack("{s:s}", "doubleValue", a->v.d > 0 ? "Infinity" : "-Infinity");
        return json_pack("{s:f}", "doubleValue", a->v.d);
    case WEFT_ATTR_BOOL:
        return json_pack("{s:b}", "boolValue", (int)a->v.b);
    }
    return NULL;
}

/* KeyValue list; NULL when out of memory. */
static json_t *key_values(const weft_attr_t *a, unsigned n)
{
    json_t *arr = json_array();
    for (unsigned i = 0; arr && i < n; i++) {
        json_t *kv = json_pack("{s:o,s:o}", "key", jstr(a[i].key ? a[i].key : ""), "value",
                               any_value(&a[i]));
        if (!kv || json_array_append_new(arr, kv) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* Sets key to v (a new reference) on o; false (v released) when v is NULL or on OOM. */
static bool set(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0;
}

static json_t *encode_span(const weft_span_data_t *d)
{
    static const uint8_t zero[8];
    json_t *s = json_object();
    if (!s) return NULL;
    /* SpanFlags: W3C trace flags in bits 0-7; bit 8 says bit 9 (parent is remote) is known */
    uint32_t flags = (d->context.flags & 0xffu) | 0x100u | (d->parent_remote ? 0x200u : 0);
    bool ok =
        set(s, "traceId", jhex(d->context.trace_id, 16)) &&
        set(s, "spanId", jhex(d->context.span_id, 8)) &&
        (memcmp(d->parent_span_id, zero, 8) == 0 ||
         set(s, "parentSpanId", jhex(d->parent_span_id, 8))) &&
        (d->context.tracestate_len == 0 ||
         set(s, "traceState", json_stringn(d->context.tracestate, d->context.tracestate_len))) &&
        set(s, "flags", json_integer(flags)) && set(s, "name", jstr(d->name)) &&
        set(s, "kind", json_integer((json_int_t)d->kind + 1)) && /* SPAN_KIND_* */
        set(s, "startTimeUnixNano", jdec(d->start_ns)) &&
        set(s, "endTimeUnixNano", jdec(d->end_ns)) &&
        set(s, "attributes", key_values(d->attrs, d->nattrs)) &&
        (d->dropped_attrs == 0 ||
         set(s, "droppedAttributesCount", json_integer(d->dropped_attrs))) &&
        (d->dropped_events == 0 || set(s, "droppedEventsCount", json_integer(d->dropped_events)));
    if (ok && d->nevents) {
        json_t *evs = json_array();
        ok = set(s, "events", evs);
        for (unsigned i = 0; ok && i < d->nevents; i++) {
            const weft_span_event_t *e = &d->events[i];
            json_t *ev = json_object();
            ok = ev && json_array_append_new(evs, ev) == 0 &&
                 set(ev, "timeUnixNano", jdec(e->time_ns)) &&
                 set(ev, "name", jstr(e->name ? e->name : "")) &&
                 set(ev, "attributes", key_values(e->attrs, e->attrs ? e->nattrs : 0)) &&
                 (e->dropped_attrs == 0 ||
                  set(ev, "droppedAttributesCount", json_integer(e->dropped_attrs)));
        }
    }
    if (ok && d->status != WEFT_SPAN_STATUS_UNSET) {
        json_t *st = json_pack("{s:i}", "code", (int)d->status); /* STATUS_CODE_OK 1, ERROR 2 */
        ok = set(s, "status", st) && (!d->status_message || !d->status_message[0] ||
                                      set(st, "message", jstr(d->status_message)));
    }
    if (!ok) {
        json_decref(s);
        return NULL;
    }
    return s;
}

/* The ExportTraceServiceRequest for the first n pending items; NULL when out of memory. */
static char *encode_batch(otlp_t *x, item_t *first, size_t n, size_t *len)
{
    json_t *spans = json_array();
    json_t *root = json_pack("{s:[{s:{s:[{s:s,s:{s:o}}]},s:[{s:{s:s,s:s},s:o}]}]}", "resourceSpans",
                             "resource", "attributes", "key", "service.name", "value",
                             "stringValue", jstr(x->service_name), "scopeSpans", "scope", "name",
                             "weft", "version", WEFT_VERSION, "spans", spans);
    if (!root) return NULL; /* json_pack released spans */
    item_t *it = first;
    for (size_t i = 0; i < n; i++, it = it->next) {
        json_t *s = encode_span(&it->d);
        if (!s || json_array_append_new(spans, s) != 0) {
            json_decref(root);
            return NULL;
        }
    }
    char *body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (body) *len = strlen(body);
    return body;
}

/* ------------------------------------------------------------------------------------ */
/* sending (exporter thread)                                                            */

static void maybe_send(otlp_t *x);
static void check_done(otlp_t *x);

static void batch_failed(otlp_t *x, size_t n, const char *why)
{
    atomic_fetch_add_explicit(&x->batches_failed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->dropped_failed, n, memory_order_relaxed);
    x->burst_failed++;
    if (x->failing || x->closing) return;
    x->failing = true;
    weft_warn("otlp", "export failing; dropping batches until it works again",
              "endpoint=%s:%u%s reason=%s spans=%zu", x->host, x->port, x->path, why, n);
}

static void batch_sent(otlp_t *x, size_t n)
{
    atomic_fetch_add_explicit(&x->batches_sent, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->exported, n, memory_order_relaxed);
    if (x->failing)
        weft_info("otlp", "export recovered", "endpoint=%s:%u%s failed_batches=%" PRIu64, x->host,
                  x->port, x->path, x->burst_failed);
    x->failing = false;
    x->burst_failed = 0;
}

static void on_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    ((otlp_t *)arg)->inflight_status = status;
}

static void on_done(weft_http_client_call_t *call, int err, void *arg)
{
    otlp_t *x = arg;
    size_t n = x->inflight_spans;
    int status = x->inflight_status;
    x->inflight = NULL;
    x->inflight_spans = 0;
    if (err == 0 && status >= 200 && status < 300) {
        batch_sent(x, n);
    } else if (err == 0) {
        char why[16];
        snprintf(why, sizeof(why), "http_%d", status);
        batch_failed(x, n, why);
    } else {
        batch_failed(x, n, weft_err_name(err));
    }
    if (x->closing) return; /* cancelled by abort_all, which carries on */
    maybe_send(x);
}

/* Encodes and sends the first max_batch pending spans (freeing them). */
static void send_batch(otlp_t *x)
{
    size_t n = x->npending < x->max_batch ? x->npending : x->max_batch;
    size_t len = 0;
    char *body = encode_batch(x, x->head, n, &len);
    for (size_t i = 0; i < n; i++) {
        item_t *it = x->head;
        x->head = it->next;
        release(x, it);
    }
    if (!x->head) x->tail = NULL;
    x->npending -= n;
    if (!body) {
        batch_failed(x, n, "ENOMEM");
        return;
    }
    static const weft_http_header_t hdr[] = {
        {{"Content-Type", 12}, {"application/json", 16}},
    };
    weft_http_client_req_t r = {.method = "POST",
                                .host = x->host,
                                .port = x->port,
                                .target = x->path,
                                .headers = hdr,
                                .nheaders = 1,
                                .body = body,
                                .body_len = len,
                                .timeout_ms = x->timeout_ms};
    static const weft_http_client_cbs_t cbs = {.on_head = on_head, .on_done = on_done};
    x->inflight_spans = n;
    x->inflight_status = 0;
    int err = weft_http_client_request(x->client, &r, &cbs, x, &x->inflight);
    free(body);
    if (err != 0) {
        x->inflight = NULL;
        x->inflight_spans = 0;
        batch_failed(x, n, weft_err_name(err));
    }
}

static void on_flush(uv_timer_t *t)
{
    otlp_t *x = t->data;
    maybe_send(x);
}

/* Sends every batch that is due, while no request is in flight; otherwise arms the flush
 * timer for the moment the oldest pending span is due. While draining, finishes once
 * everything is sent. */
static void maybe_send(otlp_t *x)
{
    while (!x->closing && !x->inflight && x->head) {
        uint64_t now = uv_now(&x->loop), due = x->head->queued_ms + x->flush_ms;
        if (x->npending < x->max_batch && !x->draining && now < due) {
            uv_timer_start(&x->flush_timer, on_flush, due - now, 0);
            return;
        }
        uv_timer_stop(&x->flush_timer);
        send_batch(x);
    }
    if (x->draining) check_done(x);
}

static void on_item(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    otlp_t *x = arg;
    item_t *it = WEFT_MPSC_ITEM(n, item_t, node);
    it->next = NULL;
    it->queued_ms = uv_now(&x->loop);
    if (x->tail)
        x->tail->next = it;
    else
        x->head = it;
    x->tail = it;
    x->npending++;
    /* a new batch is due when it fills up; otherwise the timer is already armed */
    if (x->npending == 1 || x->npending >= x->max_batch || x->draining) maybe_send(x);
}

static void on_discard(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    otlp_t *x = arg;
    atomic_fetch_add_explicit(&x->dropped_failed, 1, memory_order_relaxed);
    release(x, WEFT_MPSC_ITEM(n, item_t, node));
}

/* ------------------------------------------------------------------------------------ */
/* shutdown (exporter thread)                                                           */

/* Closes every handle; the loop then runs out of work and the thread returns. Also used by
 * weft_otlp_exporter_new to undo a partial start (before the thread exists). */
static void finish(otlp_t *x)
{
    if (x->finished) return;
    x->finished = x->closing = true;
    while (x->head) {
        item_t *it = x->head;
        x->head = it->next;
        atomic_fetch_add_explicit(&x->dropped_failed, 1, memory_order_relaxed);
        release(x, it);
    }
    x->tail = NULL;
    x->npending = 0;
    if (x->have_inbox) weft_inbox_close(&x->inbox, NULL);
    if (x->have_async) uv_close((uv_handle_t *)&x->stop_async, NULL);
    if (x->have_timers) {
        uv_close((uv_handle_t *)&x->flush_timer, NULL);
        uv_close((uv_handle_t *)&x->shutdown_timer, NULL);
    }
    if (x->client) weft_http_client_close(x->client, NULL, NULL);
}

/* The shutdown deadline: cancel the request in flight, drop what is left. */
static void abort_all(otlp_t *x)
{
    x->closing = true;
    if (x->inflight) weft_http_client_cancel(x->inflight); /* on_done counts it */
    finish(x);
}

static void check_done(otlp_t *x)
{
    if (x->draining && !x->closing && !x->inflight && !x->head && weft_mpsc_size(&x->inbox.q) == 0)
        finish(x);
}

static void on_shutdown_timer(uv_timer_t *t)
{
    otlp_t *x = t->data;
    if (x->head || x->inflight)
        weft_warn("otlp", "shutdown timed out; dropping what was not sent",
                  "endpoint=%s:%u%s spans=%zu timeout_ms=%" PRIu64, x->host, x->port, x->path,
                  x->npending + x->inflight_spans, x->shutdown_ms);
    abort_all(x);
}

static void on_stop(uv_async_t *a)
{
    otlp_t *x = a->data;
    if (x->draining) return;
    x->draining = true;
    if (x->shutdown_ms == 0) {
        abort_all(x);
        return;
    }
    uv_timer_start(&x->shutdown_timer, on_shutdown_timer, x->shutdown_ms, 0);
    maybe_send(x); /* finishes at once when nothing is queued */
}

static void run(void *arg)
{
    otlp_t *x = arg;
    uv_run(&x->loop, UV_RUN_DEFAULT);
}

/* The tracer's thread: no producer is left (weft_tracer_free's contract). */
static void otlp_shutdown(void *arg)
{
    otlp_t *x = arg;
    atomic_store_explicit(&x->accepting, false, memory_order_release);
    uv_async_send(&x->stop_async);
    uv_thread_join(&x->thread);
    uv_loop_close(&x->loop);
    free(x->host);
    free(x->path);
    free(x->service_name);
    free(x);
}

/* ------------------------------------------------------------------------------------ */
/* options and creation                                                                 */

void weft_otlp_options_init(weft_otlp_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 4318;
    o->path = "/v1/traces";
    o->service_name = NULL;
    o->max_queue = 2048;
    o->max_batch = 512;
    o->flush_interval_ms = 1000;
    o->timeout_ms = 10000;
    o->shutdown_timeout_ms = 5000;
}

static weft_span_exporter_t *fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static weft_span_exporter_t *fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static bool path_ok(const char *p)
{
    if (p[0] != '/' || strlen(p) > 2048) return false;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return false;
    return true;
}

weft_span_exporter_t *weft_otlp_exporter_new(const weft_otlp_options_t *o, char *err, size_t errlen)
{
    unsigned char addr[16];
    if (!o) return fail(err, errlen, "options: NULL");
    if (!o->host ||
        (inet_pton(AF_INET, o->host, addr) != 1 && inet_pton(AF_INET6, o->host, addr) != 1))
        return fail(err, errlen, "host: expected a numeric IPv4 or IPv6 address, got \"%.64s\"",
                    o->host ? o->host : "(null)");
    if (o->port == 0) return fail(err, errlen, "port: must be 1..65535, got 0");
    if (!o->path || !path_ok(o->path))
        return fail(err, errlen,
                    "path: expected '/' then printable ASCII without spaces (at most 2048 "
                    "bytes), got \"%.64s\"",
                    o->path ? o->path : "(null)");
    if (!o->service_name || !o->service_name[0] || strlen(o->service_name) > 255)
        return fail(err, errlen, "service_name: required, 1..255 bytes");
    if (o->max_queue < 1 || o->max_queue > WEFT_OTLP_MAX_QUEUE)
        return fail(err, errlen, "max_queue: must be 1..%u, got %zu", WEFT_OTLP_MAX_QUEUE,
                    o->max_queue);
    if (o->max_batch < 1 || o->max_batch > WEFT_OTLP_MAX_BATCH)
        return fail(err, errlen, "max_batch: must be 1..%u, got %zu", WEFT_OTLP_MAX_BATCH,
                    o->max_batch);
    if (o->flush_interval_ms < 1 || o->flush_interval_ms > WEFT_OTLP_MAX_TIMEOUT)
        return fail(err, errlen, "flush_interval_ms: must be 1..%u, got %" PRIu64,
                    WEFT_OTLP_MAX_TIMEOUT, o->flush_interval_ms);
    if (o->timeout_ms < 1 || o->timeout_ms > WEFT_OTLP_MAX_TIMEOUT)
        return fail(err, errlen, "timeout_ms: must be 1..%u, got %" PRIu64, WEFT_OTLP_MAX_TIMEOUT,
                    o->timeout_ms);
    if (o->shutdown_timeout_ms > WEFT_OTLP_MAX_TIMEOUT)
        return fail(err, errlen, "shutdown_timeout_ms: must be 0..%u, got %" PRIu64,
                    WEFT_OTLP_MAX_TIMEOUT, o->shutdown_timeout_ms);

    otlp_t *x = calloc(1, sizeof(*x));
    if (!x) return fail(err, errlen, "otlp exporter: out of memory");
    x->host = strdup(o->host);
    x->path = strdup(o->path);
    x->service_name = strdup(o->service_name);
    x->port = o->port;
    x->max_queue = o->max_queue;
    x->max_batch = o->max_batch;
    x->flush_ms = o->flush_interval_ms;
    x->timeout_ms = o->timeout_ms;
    x->shutdown_ms = o->shutdown_timeout_ms;
    atomic_init(&x->accepting, true);
    atomic_init(&x->held, 0);
    atomic_init(&x->exported, 0);
    atomic_init(&x->dropped_queue_full, 0);
    atomic_init(&x->dropped_failed, 0);
    atomic_init(&x->batches_sent, 0);
    atomic_init(&x->batches_failed, 0);
    x->base.export_spans = otlp_export;
    x->base.shutdown = otlp_shutdown;
    x->base.arg = x;

    /* Everything is set up here, before the thread starts (creating it orders these writes
     * before its first read); from then on only the exporter thread touches the loop. */
    int e = 0;
    const char *what = "out of memory";
    if (!x->host || !x->path || !x->service_name) {
        e = WEFT_ENOMEM;
        goto out;
    }
    what = "uv_loop_init";
    if ((e = uv_loop_init(&x->loop)) != 0) goto out;
    x->have_loop = true;
    weft_http_client_options_t co;
    weft_http_client_options_init(&co);
    co.connect_timeout_ms = o->timeout_ms;
    co.request_timeout_ms = o->timeout_ms;
    co.max_idle_per_host = 1;  /* one request at a time: one connection is all it needs */
    co.idle_timeout_ms = 4000; /* below common server idle timeouts (5 s and up): a POST is
                                  not retried on a connection the server just closed */
    co.max_conns_per_host = 2;
    co.max_queue = 4;
    co.max_hosts = 1;
    what = "http client";
    if ((e = weft_http_client_new(&x->loop, &co, &x->client)) != 0) goto out;
    what = "inbox";
    if ((e = weft_inbox_init(&x->inbox, &x->loop, x->max_queue, INBOX_BATCH, on_item, on_discard,
                             x)) != 0)
        goto out;
    x->have_inbox = true;
    what = "uv_async_init";
    if ((e = uv_async_init(&x->loop, &x->stop_async, on_stop)) != 0) goto out;
    x->stop_async.data = x;
    x->have_async = true;
    uv_timer_init(&x->loop, &x->flush_timer);
    uv_timer_init(&x->loop, &x->shutdown_timer);
    x->flush_timer.data = x->shutdown_timer.data = x;
    x->have_timers = true;
    what = "uv_thread_create";
    if ((e = uv_thread_create(&x->thread, run, x)) != 0) goto out;
    return &x->base;

out:
    fail(err, errlen, "otlp exporter: %s: %s", what, weft_strerror(e));
    if (x->have_loop) {
        finish(x);
        uv_run(&x->loop, UV_RUN_DEFAULT);
        uv_loop_close(&x->loop);
    }
    free(x->host);
    free(x->path);
    free(x->service_name);
    free(x);
    return NULL;
}

int weft_otlp_exporter_stats(const weft_span_exporter_t *e, weft_otlp_stats_t *out)
{
    if (!e || e->export_spans != otlp_export || !out) return WEFT_EINVAL;
    otlp_t *x = e->arg;
    out->exported = atomic_load_explicit(&x->exported, memory_order_relaxed);
    out->dropped_queue_full = atomic_load_explicit(&x->dropped_queue_full, memory_order_relaxed);
    out->dropped_failed = atomic_load_explicit(&x->dropped_failed, memory_order_relaxed);
    out->batches_sent = atomic_load_explicit(&x->batches_sent, memory_order_relaxed);
    out->batches_failed = atomic_load_explicit(&x->batches_failed, memory_order_relaxed);
    return 0;
}
