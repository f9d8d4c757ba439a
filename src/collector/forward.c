/*
 * forward.c - every span the collector keeps, forwarded to an external OTLP/HTTP receiver
 * (collector.forward.*): how a user grows past one machine (Jaeger, Tempo, an OpenTelemetry
 * Collector, or another weft in front of them all).
 *
 * Encoding, on the thread that stored the spans (an ingest worker, or whichever thread ended
 * one of weft's own spans). The spans of a decoded batch live only until its arena is reset,
 * so they are encoded at once, into protobuf's wire format (src/otlp's primitives), as the
 * ResourceSpans fields of an ExportTraceServiceRequest. That message is nothing but its
 * repeated field 1, so a request is the pieces of several batches laid end to end: the
 * sender concatenates, never re-encodes. A piece (chunk_t) holds at most batch_spans spans.
 * Encoding costs the worker about what decoding the spans did; it never waits.
 *
 * Bound. `held` counts the bytes of every piece that exists: queued, being sent, or waiting
 * to be retried. A piece that would take it past queue_bytes is dropped (its spans counted
 * as dropped), so a receiver that is down or slow costs at most queue_bytes of memory and
 * never slows ingest; once held is over the bound, new spans are dropped before they are
 * encoded.
 *
 * Sending, on the forwarder's own thread and uv loop (ingest's loops never wait on the
 * receiver). Pieces arrive through an inbox (core/mpsc.h) into a FIFO. A request takes
 * pieces from the FIFO's head up to batch_spans spans; it goes when that many are waiting,
 * when the oldest has waited flush_ms, or at once while shutting down. At most max_inflight
 * requests exist at once (in flight or waiting to retry), each in its own slot with its own
 * body, so that one failing batch does not hold up the rest for long and a slow receiver is
 * not sent more than it can take.
 *
 * Retries: as OTLP/HTTP says, a request that failed transiently (429, 502, 503, 504, a
 * timeout, a connection refused, reset or closed early) is sent again after Retry-After
 * when the answer has one, else after an exponential backoff (500 ms, x1.5 per attempt, at
 * most 30 s) with ±20% jitter, for up to retry_ms after its first attempt; any other answer
 * (400, 401, 413, ...) drops it at once. Dropped batches count as failed spans.
 *
 * Shutdown (col_fwd_free, after the host has stopped, so nothing adds spans): the thread
 * sends everything queued back to back, for at most shutdown_ms; a batch whose next retry
 * is due after that, or whose receiver refuses connections, is dropped at once rather than
 * waited for. At the deadline the calls in flight are cancelled, what is left is counted as
 * failed, and every handle is closed.
 *
 * Memory: a piece or batch that cannot be allocated is dropped and counted; nothing aborts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "collector/collector_int.h"
#include "collector/encode_util.h"
#include "collector/forward.h"
#include "collector/otlp_any.h"
#include "core/errbuf.h"
#include "core/json_read.h"
#include "core/json_write.h"
#include "core/mpsc.h"
#include "http/url.h"
#include "otlp/otlp_int.h"
#include "weft/client.h"
#include "weft/log.h"
#include "weft/trace.h"
#include "weft/weft.h"

#define BACKOFF_INITIAL_MS 500
#define BACKOFF_MAX_MS     30000
#define INBOX_BATCH        64
#define MAX_SLOTS          64

/* ---- encoding (any thread) ---- */

/* A string field, written as UTF-8 (bytes that start no valid sequence become U+FFFD, as
 * the SDK's encoder does: a receiver refuses a whole request over one bad string). */
static void pb_str(weft_buf_t *b, unsigned field, col_str_t s)
{
    size_t at = weft__pb_open(b, field);
    if (s.n) weft_buf_put_utf8(b, s.p, s.n);
    weft__pb_close(b, at);
}

static void pb_double(weft_buf_t *b, unsigned field, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    weft__pb_fixed64(b, field, u);
}

static bool any_json(weft_jr_t *r, weft_buf_t *b, unsigned depth);

/* The elements of an ARRAY's or KVLIST's OTLP/JSON text (otlp_any.h) into b, as AnyValues
 * (field 1 of ArrayValue) or KeyValues (field 1 of KeyValueList). */
static bool list_json(weft_jr_t *r, weft_buf_t *b, bool kv, unsigned depth)
{
    if (!weft_jr_array(r)) return false;
    while (weft_jr_next(r)) {
        if (!kv) {
            size_t at = weft__pb_open(b, 1);
            if (!any_json(r, b, depth + 1)) return false;
            weft__pb_close(b, at);
            continue;
        }
        size_t at = weft__pb_open(b, 1);
        weft_jr_str_t k;
        if (!weft_jr_object(r)) return false;
        while (weft_jr_key(r, &k)) {
            if (weft_jr_key_is(k, "key")) {
                weft_jr_str_t s;
                if (!weft_jr_string(r, &s)) return false;
                weft__pb_bytes(b, 1, s.p, s.n);
            } else if (weft_jr_key_is(k, "value")) {
                size_t v = weft__pb_open(b, 2);
                if (!any_json(r, b, depth + 1)) return false;
                weft__pb_close(b, v);
            } else if (!weft_jr_skip(r)) {
                return false;
            }
        }
        weft__pb_close(b, at);
    }
    return !r->err;
}

/* One AnyValue object of OTLP/JSON into the fields of an AnyValue message. */
static bool any_json(weft_jr_t *r, weft_buf_t *b, unsigned depth)
{
    if (depth > COL_ANY_MAX_DEPTH + 1 || !weft_jr_object(r)) return false;
    weft_jr_str_t k;
    while (weft_jr_key(r, &k)) {
        if (weft_jr_key_is(k, "stringValue")) {
            weft_jr_str_t s;
            if (!weft_jr_string(r, &s)) return false;
            weft__pb_bytes(b, 1, s.p, s.n);
        } else if (weft_jr_key_is(k, "boolValue")) {
            bool v;
            if (!weft_jr_bool(r, &v)) return false;
            weft__pb_varint_field(b, 2, v);
        } else if (weft_jr_key_is(k, "intValue")) {
            int64_t v;
            if (!weft_jr_int64(r, &v)) return false;
            weft__pb_varint_field(b, 3, (uint64_t)v);
        } else if (weft_jr_key_is(k, "doubleValue")) {
            double d;
            if (weft_jr_peek(r) == WEFT_JR_STRING) {
                weft_jr_str_t s;
                if (!weft_jr_string(r, &s)) return false;
                if (s.n == 3 && memcmp(s.p, "NaN", 3) == 0)
                    d = __builtin_nan("");
                else if (s.n == 8 && memcmp(s.p, "Infinity", 8) == 0)
                    d = __builtin_inf();
                else if (s.n == 9 && memcmp(s.p, "-Infinity", 9) == 0)
                    d = -__builtin_inf();
                else
                    return false;
            } else if (!weft_jr_double(r, &d)) {
                return false;
            }
            pb_double(b, 4, d);
        } else if (weft_jr_key_is(k, "bytesValue")) {
            weft_jr_str_t s;
            if (!weft_jr_string(r, &s)) return false;
            uint8_t tmp[512];
            uint8_t *out = s.n * 3 / 4 + 3 <= sizeof(tmp) ? tmp : malloc(s.n * 3 / 4 + 3);
            if (!out) return false;
            long n = col_base64_decode(s.p, s.n, out);
            if (n >= 0) weft__pb_bytes(b, 7, out, (size_t)n);
            if (out != tmp) free(out);
            if (n < 0) return false;
        } else if (weft_jr_key_is(k, "arrayValue") || weft_jr_key_is(k, "kvlistValue")) {
            bool kv = k.p[0] == 'k';
            size_t at = weft__pb_open(b, kv ? 6 : 5);
            weft_jr_str_t vk;
            if (!weft_jr_object(r)) return false;
            while (weft_jr_key(r, &vk)) {
                if (weft_jr_key_is(vk, "values")) {
                    if (!list_json(r, b, kv, depth)) return false;
                } else if (!weft_jr_skip(r)) {
                    return false;
                }
            }
            weft__pb_close(b, at);
        } else if (!weft_jr_skip(r)) {
            return false;
        }
    }
    return !r->err;
}

/* An AnyValue (field `field`) of attribute a. ARRAY and KVLIST are kept as OTLP/JSON text
 * (span.h); it is read back into protobuf here. Text that does not read (it always does:
 * the decoders wrote it) goes as a string value rather than nothing. */
static void any_value(weft_buf_t *b, unsigned field, const col_attr_t *a, weft_arena_t *arena)
{
    size_t at = weft__pb_open(b, field);
    switch (a->type) {
    case COL_V_STRING:
        pb_str(b, 1, a->v.s);
        break;
    case COL_V_BOOL:
        weft__pb_varint_field(b, 2, a->v.b);
        break;
    case COL_V_INT:
        weft__pb_varint_field(b, 3, (uint64_t)a->v.i);
        break;
    case COL_V_DOUBLE:
        pb_double(b, 4, a->v.d);
        break;
    case COL_V_BYTES:
        weft__pb_bytes(b, 7, a->v.s.p, a->v.s.n);
        break;
    case COL_V_ARRAY:
    case COL_V_KVLIST: {
        size_t mark = b->len;
        weft_jr_t r;
        /* the text's outer list, wrapped as the AnyValue the decoders would read */
        weft_jr_init(&r, a->v.s.p, a->v.s.n, arena);
        size_t inner = weft__pb_open(b, a->type == COL_V_KVLIST ? 6 : 5);
        bool ok = list_json(&r, b, a->type == COL_V_KVLIST, 1) && weft_jr_end(&r);
        weft__pb_close(b, inner);
        weft_arena_reset(arena);
        if (!ok && !b->failed) {
            b->len = mark;
            pb_str(b, 1, a->v.s);
        }
        break;
    }
    default: /* COL_V_EMPTY: an AnyValue with no value */
        break;
    }
    weft__pb_close(b, at);
}

static void attrs(weft_buf_t *b, unsigned field, const col_attr_t *a, uint32_t n,
                  weft_arena_t *arena)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t at = weft__pb_open(b, field);
        pb_str(b, 1, a[i].key);
        any_value(b, 2, &a[i], arena);
        weft__pb_close(b, at);
    }
}

static bool has_key(const col_span_t *s, const char *k)
{
    size_t n = strlen(k);
    for (uint32_t i = 0; i < s->nattrs; i++)
        if (col_str_eq(s->attrs[i].key, k, n)) return true;
    return false;
}

static void kv_str(weft_buf_t *b, const char *key, const char *v, size_t n)
{
    size_t at = weft__pb_open(b, 9);
    weft__pb_bytes(b, 1, key, strlen(key));
    size_t val = weft__pb_open(b, 2);
    pb_str(b, 1, (col_str_t){v, (uint32_t)n});
    weft__pb_close(b, val);
    weft__pb_close(b, at);
}

static void kv_int(weft_buf_t *b, const char *key, int64_t v)
{
    size_t at = weft__pb_open(b, 9);
    weft__pb_bytes(b, 1, key, strlen(key));
    size_t val = weft__pb_open(b, 2);
    weft__pb_varint_field(b, 3, (uint64_t)v);
    weft__pb_close(b, val);
    weft__pb_close(b, at);
}

/* Zipkin's endpoints, which OTLP has no field for, as the attributes the Jaeger API shows
 * for them (jaeger_json.c's endpoint_tags), so a forwarded span reads the same there. */
static void endpoint_attrs(weft_buf_t *b, const col_span_t *s)
{
    const col_endpoint_t *l = &s->local, *r = &s->remote;
    uint32_t room = s->nattrs < COL_MAX_ATTRS ? COL_MAX_ATTRS - s->nattrs : 0;
    char ip[COL_IP_TEXT];
    if (room && (l->has_ipv4 || l->has_ipv6) && !has_key(s, "net.host.ip")) {
        size_t n = l->has_ipv4 ? col_ip_text(l->ipv4, 4, ip) : col_ip_text(l->ipv6, 16, ip);
        kv_str(b, "net.host.ip", ip, n);
        room--;
    }
    if (room && l->port && !has_key(s, "net.host.port")) {
        kv_int(b, "net.host.port", l->port);
        room--;
    }
    if (room && r->service.n && !has_key(s, "peer.service")) {
        kv_str(b, "peer.service", r->service.p, r->service.n);
        room--;
    }
    if (room && (r->has_ipv4 || r->has_ipv6) && !has_key(s, "net.peer.ip")) {
        size_t n = r->has_ipv4 ? col_ip_text(r->ipv4, 4, ip) : col_ip_text(r->ipv6, 16, ip);
        kv_str(b, "net.peer.ip", ip, n);
        room--;
    }
    if (room && r->port && !has_key(s, "net.peer.port")) kv_int(b, "net.peer.port", r->port);
}

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* Span (field 2 of ScopeSpans): 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id,
 * 5 name, 6 kind, 7 start, 8 end, 9 attributes, 10 dropped_attributes_count, 11 events,
 * 12 dropped_events_count, 13 links, 14 dropped_links_count, 15 status, 16 flags.
 * Event: 1 time, 2 name, 3 attributes, 4 dropped. Link: 1 trace_id, 2 span_id,
 * 3 trace_state, 4 attributes, 5 dropped, 6 flags. Status: 2 message, 3 code.
 * Fields at their default are left out, as the decoders read an absent field so. */
static void span(weft_buf_t *b, const col_span_t *s, weft_arena_t *arena)
{
    size_t at = weft__pb_open(b, 2);
    weft__pb_bytes(b, 1, s->trace_id, 16);
    weft__pb_bytes(b, 2, s->span_id, 8);
    if (s->trace_state.n) pb_str(b, 3, s->trace_state);
    if (!is_zero(s->parent_id, 8)) weft__pb_bytes(b, 4, s->parent_id, 8);
    pb_str(b, 5, s->name);
    if (s->kind) weft__pb_varint_field(b, 6, s->kind);
    weft__pb_fixed64(b, 7, s->start_ns);
    weft__pb_fixed64(b, 8, s->end_ns);
    attrs(b, 9, s->attrs, s->nattrs, arena);
    endpoint_attrs(b, s);
    if (s->dropped_attrs) weft__pb_varint_field(b, 10, s->dropped_attrs);
    for (uint32_t i = 0; i < s->nevents; i++) {
        const col_event_t *e = &s->events[i];
        size_t ev = weft__pb_open(b, 11);
        weft__pb_fixed64(b, 1, e->time_ns);
        pb_str(b, 2, e->name);
        attrs(b, 3, e->attrs, e->nattrs, arena);
        if (e->dropped_attrs) weft__pb_varint_field(b, 4, e->dropped_attrs);
        weft__pb_close(b, ev);
    }
    if (s->dropped_events) weft__pb_varint_field(b, 12, s->dropped_events);
    for (uint32_t i = 0; i < s->nlinks; i++) {
        const col_link_t *l = &s->links[i];
        size_t lk = weft__pb_open(b, 13);
        weft__pb_bytes(b, 1, l->trace_id, 16);
        weft__pb_bytes(b, 2, l->span_id, 8);
        if (l->trace_state.n) pb_str(b, 3, l->trace_state);
        attrs(b, 4, l->attrs, l->nattrs, arena);
        if (l->dropped_attrs) weft__pb_varint_field(b, 5, l->dropped_attrs);
        if (l->flags) weft__pb_fixed32(b, 6, l->flags);
        weft__pb_close(b, lk);
    }
    if (s->dropped_links) weft__pb_varint_field(b, 14, s->dropped_links);
    if (s->status || s->status_message.n) {
        size_t st = weft__pb_open(b, 15);
        if (s->status_message.n) pb_str(b, 2, s->status_message);
        if (s->status) weft__pb_varint_field(b, 3, s->status);
        weft__pb_close(b, st);
    }
    if (s->flags) weft__pb_fixed32(b, 16, s->flags);
    weft__pb_close(b, at);
}

static bool str_same(col_str_t a, col_str_t b)
{
    return a.n == b.n && (a.n == 0 || a.p == b.p || memcmp(a.p, b.p, a.n) == 0);
}

static bool attrs_same(const col_attr_t *a, uint32_t na, const col_attr_t *b, uint32_t nb)
{
    if (na != nb) return false;
    if (a == b) return true;
    for (uint32_t i = 0; i < na; i++) {
        if (a[i].type != b[i].type || !str_same(a[i].key, b[i].key)) return false;
        switch (a[i].type) {
        case COL_V_BOOL:
            if (a[i].v.b != b[i].v.b) return false;
            break;
        case COL_V_INT:
            if (a[i].v.i != b[i].v.i) return false;
            break;
        case COL_V_DOUBLE:
            if (memcmp(&a[i].v.d, &b[i].v.d, sizeof(double)) != 0) return false;
            break;
        case COL_V_EMPTY:
            break;
        default:
            if (!str_same(a[i].v.s, b[i].v.s)) return false;
        }
    }
    return true;
}

/* Whether two spans' resources (scopes) are one: the same pointer, as the decoders share
 * them, or the same contents, as weft's own spans each carry a copy. */
static bool res_same(const col_resource_t *a, const col_resource_t *b)
{
    return a == b || (a->dropped_attrs == b->dropped_attrs &&
                      attrs_same(a->attrs, a->nattrs, b->attrs, b->nattrs));
}

static bool scope_same(const col_scope_t *a, const col_scope_t *b)
{
    return a == b || (str_same(a->name, b->name) && str_same(a->version, b->version) &&
                      a->dropped_attrs == b->dropped_attrs &&
                      attrs_same(a->attrs, a->nattrs, b->attrs, b->nattrs));
}

void col_fwd_encode(weft_buf_t *b, const col_span_t *spans, size_t n)
{
    weft_arena_t arena; /* escapes in ARRAY and KVLIST text, reset per value */
    weft_arena_init(&arena, 4096, 4 * (size_t)COL_VALUE_MAX);
    /* ResourceSpans: 1 resource { 1 attributes, 2 dropped_attributes_count },
     * 2 scope_spans { 1 scope { 1 name, 2 version, 3 attributes, 4 dropped }, 2 spans } */
    for (size_t i = 0; i < n;) {
        const col_resource_t *res = spans[i].resource;
        size_t rs = weft__pb_open(b, 1);
        size_t r = weft__pb_open(b, 1);
        attrs(b, 1, res->attrs, res->nattrs, &arena);
        if (res->dropped_attrs) weft__pb_varint_field(b, 2, res->dropped_attrs);
        weft__pb_close(b, r);
        while (i < n && res_same(spans[i].resource, res)) {
            const col_scope_t *sc = spans[i].scope;
            size_t ss = weft__pb_open(b, 2);
            size_t scope = weft__pb_open(b, 1);
            if (sc->name.n) pb_str(b, 1, sc->name);
            if (sc->version.n) pb_str(b, 2, sc->version);
            attrs(b, 3, sc->attrs, sc->nattrs, &arena);
            if (sc->dropped_attrs) weft__pb_varint_field(b, 4, sc->dropped_attrs);
            weft__pb_close(b, scope);
            for (; i < n && res_same(spans[i].resource, res) && scope_same(spans[i].scope, sc); i++)
                span(b, &spans[i], &arena);
            weft__pb_close(b, ss);
        }
        weft__pb_close(b, rs);
    }
    weft_arena_free(&arena);
}

/* ---- the forwarder ---- */

/* Encoded spans on their way: a piece of a request (see the top). */
typedef struct chunk_s {
    weft_mpsc_node_t node;
    struct chunk_s *next; /* the FIFO (sender thread) */
    uint64_t queued_ms;   /* uv_now of the sender's loop when it arrived there */
    size_t spans, len;
    _Alignas(8) uint8_t data[];
} chunk_t;

/* A request: in flight, or waiting to be sent again. */
typedef struct slot_s {
    struct col_fwd_s *f;
    bool busy, waiting; /* waiting: on retry */
    weft_buf_t body;
    size_t spans, held; /* its spans; the bytes of held it accounts for */
    unsigned attempts;
    uint64_t first_ms; /* uv_now at its first attempt */
    uv_timer_t retry;
    weft_http_client_call_t *call;
    int status;
    int64_t retry_after; /* ms, or -1 */
} slot_t;

struct col_fwd_s {
    char host[256], *path;
    uint16_t port;
    weft_http_header_t *hdrs;
    size_t nhdrs;
    kvlist_t *hdr_list;
    col_fwd_conf_t conf;

    /* any thread */
    atomic_bool accepting;
    atomic_size_t held;
    atomic_size_t queued_spans;
    weft_counter_t *m_sent, *m_dropped, *m_failed, *m_retried; /* NULL without metrics */

    /* the sender's thread */
    uv_thread_t thread;
    uv_loop_t loop;
    weft_inbox_t inbox;
    uv_async_t stop_async;
    uv_timer_t flush_timer, shutdown_timer;
    weft_http_client_t *client;
    bool have_loop, have_inbox, have_async, have_timers, have_thread;
    chunk_t *head, *tail;
    size_t npending; /* spans in the FIFO */
    slot_t *slots;
    unsigned nslots, nbusy;
    bool draining, closing, finished, failing;
    uint64_t deadline;
};

static void count(weft_counter_t *c, size_t n)
{
    if (c && n) weft_counter_add(c, (double)n);
}

static void unhold(col_fwd_t *f, size_t bytes, size_t spans)
{
    atomic_fetch_sub_explicit(&f->held, bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&f->queued_spans, spans, memory_order_relaxed);
}

/* Queues one piece of at most batch_spans spans. */
static void add_piece(col_fwd_t *f, const col_span_t *spans, size_t n)
{
    if (atomic_load_explicit(&f->held, memory_order_relaxed) >= f->conf.queue_bytes ||
        !atomic_load_explicit(&f->accepting, memory_order_acquire)) {
        count(f->m_dropped, n);
        return;
    }
    weft_buf_t b;
    weft_buf_init(&b, (size_t)f->conf.queue_bytes + sizeof(chunk_t));
    if (weft_buf_reserve(&b, sizeof(chunk_t))) weft_buf_commit(&b, sizeof(chunk_t));
    col_fwd_encode(&b, spans, n);
    size_t len = b.len;
    chunk_t *ch = b.failed ? NULL : (chunk_t *)(void *)weft_buf_take(&b, &len);
    weft_buf_free(&b);
    if (!ch) {
        count(f->m_dropped, n);
        return;
    }
    len -= sizeof(chunk_t);
    /* reserve the bytes first, so that held never passes the bound */
    size_t before = atomic_fetch_add_explicit(&f->held, len, memory_order_relaxed);
    if (before + len > f->conf.queue_bytes) {
        atomic_fetch_sub_explicit(&f->held, len, memory_order_relaxed);
        free(ch);
        count(f->m_dropped, n);
        return;
    }
    atomic_fetch_add_explicit(&f->queued_spans, n, memory_order_relaxed);
    ch->spans = n;
    ch->len = len;
    ch->next = NULL;
    if (weft_inbox_post(&f->inbox, &ch->node) != 0) {
        unhold(f, len, n);
        free(ch);
        count(f->m_dropped, n);
    }
}

void col_fwd_add(col_fwd_t *f, const col_span_t *spans, size_t n)
{
    for (size_t at = 0; at < n; at += f->conf.batch_spans)
        add_piece(f, spans + at, n - at < f->conf.batch_spans ? n - at : f->conf.batch_spans);
}

/* ---- sending (the sender's thread) ---- */

static void maybe_send(col_fwd_t *f);
static void check_done(col_fwd_t *f);
static void send_slot(slot_t *s);

static void slot_done(slot_t *s, bool sent, const char *why)
{
    col_fwd_t *f = s->f;
    if (sent) {
        count(f->m_sent, s->spans);
        if (f->failing)
            weft_info("collector", "forwarding recovered", "endpoint=%s:%u%s", f->host, f->port,
                      f->path);
        f->failing = false;
    } else {
        count(f->m_failed, s->spans);
        if (!f->failing && !f->closing)
            weft_warn("collector", "forwarding failed; spans dropped",
                      "endpoint=%s:%u%s reason=%s spans=%zu attempts=%u", f->host, f->port, f->path,
                      why, s->spans, s->attempts);
        f->failing = true;
    }
    unhold(f, s->held, s->spans);
    s->busy = s->waiting = false;
    s->spans = s->held = 0;
    weft_buf_reset(&s->body);
    f->nbusy--;
}

static void on_retry(uv_timer_t *t)
{
    slot_t *s = t->data;
    s->waiting = false;
    send_slot(s);
    maybe_send(s->f); /* when it failed for good at once */
}

static void attempt_failed(slot_t *s, int err, int status, int64_t retry_after)
{
    col_fwd_t *f = s->f;
    char why[32];
    weft__otlp_failure_name(why, sizeof(why), err, status);
    uint64_t now = uv_now(&f->loop);
    if (f->closing || !weft__otlp_transient(err, status)) {
        slot_done(s, false, why);
        return;
    }
    uint64_t wait = retry_after >= 0
                        ? (uint64_t)retry_after
                        : weft__otlp_backoff_ms(BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, s->attempts);
    if (now + wait > s->first_ms + f->conf.retry_ms) {
        slot_done(s, false, retry_after >= 0 ? "retry_after_too_long" : why);
        return;
    }
    /* shutting down: a retry after the deadline would only delay the exit, and a receiver
     * that refuses connections is not coming back within it */
    if (f->draining && (now + wait >= f->deadline || weft__otlp_unreachable(err))) {
        slot_done(s, false, why);
        return;
    }
    if (!f->failing)
        weft_warn("collector", "forwarding failing; retrying",
                  "endpoint=%s:%u%s reason=%s spans=%zu attempt=%u wait_ms=%" PRIu64, f->host,
                  f->port, f->path, why, s->spans, s->attempts, wait);
    f->failing = true;
    count(f->m_retried, 1);
    s->waiting = true;
    uv_timer_start(&s->retry, on_retry, wait, 0);
}

static void on_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    slot_t *s = arg;
    (void)call;
    s->status = status;
    s->retry_after = weft__otlp_retry_after(status, h, n);
}

static void on_done(weft_http_client_call_t *call, int err, void *arg)
{
    slot_t *s = arg;
    (void)call;
    s->call = NULL;
    if (err == 0 && s->status >= 200 && s->status < 300)
        slot_done(s, true, NULL);
    else
        attempt_failed(s, err, err == 0 ? s->status : 0, err == 0 ? s->retry_after : -1);
    if (s->f->closing) return; /* cancelled by abort_all, which carries on */
    maybe_send(s->f);
}

static void send_slot(slot_t *s)
{
    col_fwd_t *f = s->f;
    weft_http_client_req_t r = {.method = "POST",
                                .host = f->host,
                                .port = f->port,
                                .target = f->path,
                                .headers = f->hdrs,
                                .nheaders = f->nhdrs,
                                .body = s->body.p,
                                .body_len = s->body.len,
                                .timeout_ms = f->conf.timeout_ms};
    static const weft_http_client_cbs_t cbs = {.on_head = on_head, .on_done = on_done};
    if (s->attempts++ == 0) s->first_ms = uv_now(&f->loop);
    s->status = 0;
    s->retry_after = -1;
    int err = weft_http_client_request(f->client, &r, &cbs, s, &s->call);
    if (err != 0) {
        s->call = NULL;
        attempt_failed(s, err, 0, -1);
    }
}

/* Fills free slot s from the FIFO's head (at most batch_spans spans, at least one piece)
 * and sends it. */
static void send_batch(col_fwd_t *f, slot_t *s)
{
    s->busy = true;
    s->attempts = 0;
    f->nbusy++;
    weft_buf_reset(&s->body);
    while (f->head && (s->spans == 0 || s->spans + f->head->spans <= f->conf.batch_spans)) {
        chunk_t *ch = f->head;
        f->head = ch->next;
        weft_buf_put(&s->body, ch->data, ch->len);
        s->spans += ch->spans;
        s->held += ch->len;
        f->npending -= ch->spans;
        free(ch);
    }
    if (!f->head) f->tail = NULL;
    if (s->body.failed) {
        weft_buf_free(&s->body);
        slot_done(s, false, "ENOMEM");
        return;
    }
    send_slot(s);
}

static void on_flush(uv_timer_t *t)
{
    maybe_send(t->data);
}

/* Sends every batch that is due while a slot is free; otherwise arms the flush timer for
 * when the oldest piece is due. */
static void maybe_send(col_fwd_t *f)
{
    while (!f->closing && f->head && f->nbusy < f->nslots) {
        uint64_t now = uv_now(&f->loop), due = f->head->queued_ms + f->conf.flush_ms;
        if (f->npending < f->conf.batch_spans && !f->draining && now < due) {
            uv_timer_start(&f->flush_timer, on_flush, due - now, 0);
            return;
        }
        uv_timer_stop(&f->flush_timer);
        slot_t *s = NULL;
        for (unsigned i = 0; i < f->nslots && !s; i++)
            if (!f->slots[i].busy) s = &f->slots[i];
        send_batch(f, s);
    }
    if (f->draining) check_done(f);
}

static void on_chunk(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    col_fwd_t *f = arg;
    (void)in;
    chunk_t *ch = WEFT_MPSC_ITEM(n, chunk_t, node);
    ch->next = NULL;
    ch->queued_ms = uv_now(&f->loop);
    if (f->tail)
        f->tail->next = ch;
    else
        f->head = ch;
    f->tail = ch;
    f->npending += ch->spans;
    if (f->head == ch || f->npending >= f->conf.batch_spans || f->draining) maybe_send(f);
}

static void on_discard(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    col_fwd_t *f = arg;
    (void)in;
    chunk_t *ch = WEFT_MPSC_ITEM(n, chunk_t, node);
    count(f->m_failed, ch->spans);
    unhold(f, ch->len, ch->spans);
    free(ch);
}

/* ---- shutdown (the sender's thread) ---- */

static void finish(col_fwd_t *f)
{
    if (f->finished) return;
    f->finished = f->closing = true;
    while (f->head) {
        chunk_t *ch = f->head;
        f->head = ch->next;
        count(f->m_failed, ch->spans);
        unhold(f, ch->len, ch->spans);
        free(ch);
    }
    f->tail = NULL;
    f->npending = 0;
    if (f->have_inbox) weft_inbox_close(&f->inbox, NULL);
    if (f->have_async) uv_close((uv_handle_t *)&f->stop_async, NULL);
    if (f->have_timers) {
        uv_close((uv_handle_t *)&f->flush_timer, NULL);
        uv_close((uv_handle_t *)&f->shutdown_timer, NULL);
        for (unsigned i = 0; i < f->nslots; i++) uv_close((uv_handle_t *)&f->slots[i].retry, NULL);
    }
    if (f->client) weft_http_client_close(f->client, NULL, NULL);
}

/* The deadline: cancel what is in flight, drop what waits. */
static void abort_all(col_fwd_t *f)
{
    f->closing = true;
    for (unsigned i = 0; i < f->nslots; i++) {
        slot_t *s = &f->slots[i];
        if (s->call)
            weft_http_client_cancel(s->call); /* on_done counts it */
        else if (s->waiting) {
            uv_timer_stop(&s->retry);
            slot_done(s, false, "shutdown");
        }
    }
    finish(f);
}

static void check_done(col_fwd_t *f)
{
    if (f->draining && !f->closing && f->nbusy == 0 && !f->head && weft_mpsc_size(&f->inbox.q) == 0)
        finish(f);
}

static void on_shutdown_timer(uv_timer_t *t)
{
    col_fwd_t *f = t->data;
    if (f->head || f->nbusy)
        weft_warn("collector", "forwarding: shutdown timed out; dropping what was not sent",
                  "endpoint=%s:%u%s spans=%zu timeout_ms=%" PRIu64, f->host, f->port, f->path,
                  atomic_load_explicit(&f->queued_spans, memory_order_relaxed),
                  f->conf.shutdown_ms);
    abort_all(f);
}

static void on_stop(uv_async_t *a)
{
    col_fwd_t *f = a->data;
    if (f->draining) return;
    /* what is still in the inbox joins the FIFO first, to leave in full batches */
    for (size_t i = 0; i < 1u << 20 && weft_mpsc_size(&f->inbox.q) > 0; i++)
        weft_inbox_poll(&f->inbox);
    f->draining = true;
    if (f->conf.shutdown_ms == 0) {
        abort_all(f);
        return;
    }
    f->deadline = uv_now(&f->loop) + f->conf.shutdown_ms;
    uv_timer_start(&f->shutdown_timer, on_shutdown_timer, f->conf.shutdown_ms, 0);
    for (unsigned i = 0; i < f->nslots; i++) {
        slot_t *s = &f->slots[i];
        if (s->waiting && uv_timer_get_due_in(&s->retry) >= f->conf.shutdown_ms) {
            uv_timer_stop(&s->retry);
            slot_done(s, false, "shutdown");
        }
    }
    maybe_send(f);
}

static void run(void *arg)
{
    col_fwd_t *f = arg;
    weft_metrics_thread_register();
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* ---- set-up ---- */

const char *col_fwd_endpoint_check(const char *url)
{
    if (!url || !url[0]) return NULL;
    weft__url_t u;
    const char *why = weft__url_split(url, &u);
    if (u.scheme == NULL || !(u.scheme_len == 4 && strncasecmp(u.scheme, "http", 4) == 0))
        return "expected an http:// URL of an OTLP/HTTP traces endpoint "
               "(http://host:4318/v1/traces)";
    if (why) return why;
    if (!weft__otlp_host_ok(u.host)) return "the host is neither a name nor an IP address";
    if (u.rest[0] && (strpbrk(u.rest, "?#") || !weft__otlp_path_ok(u.rest)))
        return "the path must be printable ASCII without blanks, a query or a fragment";
    return NULL;
}

const char *col_fwd_headers_check(const char *headers)
{
    if (!headers || !headers[0]) return NULL;
    kvlist_t *h = malloc(sizeof(*h));
    if (!h) return "out of memory";
    const char *why = weft__otlp_kvlist_parse(headers, h);
    if (!why) why = weft__otlp_headers_check(h);
    free(h);
    return why;
}

static double m_queued(void *arg)
{
    return (double)atomic_load_explicit(&((col_fwd_t *)arg)->queued_spans, memory_order_relaxed);
}

static int register_metrics(col_fwd_t *f, weft_metrics_registry_t *m)
{
    static const char *const outcome[] = {"outcome"};
    weft_metrics_family_t *spans, *retries;
    int rc = weft_metrics_counter_new(
        m, "weft_collector_forward_spans_total",
        "spans forwarded to collector.forward.endpoint: sent (2xx), dropped (the forward "
        "queue was full), failed (refused, out of retries, or left at shutdown)",
        outcome, 1, &spans);
    if (rc == 0)
        rc = weft_metrics_counter_new(m, "weft_collector_forward_retries_total",
                                      "forward requests that failed transiently and were sent "
                                      "again",
                                      NULL, 0, &retries);
    if (rc == 0)
        rc = weft_metrics_gauge_fn(m, "weft_collector_forward_queued_spans",
                                   "spans waiting to be forwarded (queued, in flight, retrying)",
                                   m_queued, f);
    if (rc != 0) return rc;
    f->m_sent = weft_metrics_counter_child(spans, (const char *const[]){"sent"});
    f->m_dropped = weft_metrics_counter_child(spans, (const char *const[]){"dropped"});
    f->m_failed = weft_metrics_counter_child(spans, (const char *const[]){"failed"});
    f->m_retried = weft_metrics_counter_child(retries, NULL);
    return f->m_sent && f->m_dropped && f->m_failed && f->m_retried ? 0 : WEFT_ENOMEM;
}

static void fwd_release(col_fwd_t *f)
{
    if (f->slots)
        for (unsigned i = 0; i < f->nslots; i++) weft_buf_free(&f->slots[i].body);
    free(f->slots);
    free(f->path);
    free(f->hdrs);
    free(f->hdr_list);
    free(f);
}

int col_fwd_new(const col_fwd_conf_t *conf, weft_metrics_registry_t *m, col_fwd_t **out, char *err,
                size_t errlen)
{
    const char *why = col_fwd_endpoint_check(conf->endpoint);
    if (!why) why = col_fwd_headers_check(conf->headers);
    if (why || !conf->endpoint || !conf->endpoint[0])
        return weft__errf(err, errlen, WEFT_EINVAL, "collector.forward: %s",
                          why ? why : "no endpoint");
    col_fwd_t *f = calloc(1, sizeof(*f));
    if (!f) return weft__errf(err, errlen, WEFT_ENOMEM, "collector.forward: out of memory");
    f->conf = *conf;
    f->conf.endpoint = f->conf.headers = NULL; /* not kept */
    if (f->conf.batch_spans == 0) f->conf.batch_spans = 1;
    weft__url_t u;
    weft__url_split(conf->endpoint, &u);
    snprintf(f->host, sizeof(f->host), "%s", u.host);
    f->port = u.port ? u.port : 80;
    f->path = strdup(u.rest[0] ? u.rest : "/v1/traces");
    f->hdr_list = calloc(1, sizeof(*f->hdr_list));
    int e = WEFT_ENOMEM;
    const char *what = "out of memory";
    if (!f->path || !f->hdr_list) goto fail;
    weft__otlp_kvlist_parse(conf->headers ? conf->headers : "", f->hdr_list);
    f->hdrs = malloc((1 + f->hdr_list->n) * sizeof(*f->hdrs));
    if (!f->hdrs) goto fail;
    f->hdrs[f->nhdrs++] =
        (weft_http_header_t){{"Content-Type", 12}, {"application/x-protobuf", 22}};
    for (size_t i = 0; i < f->hdr_list->n; i++)
        if (!weft__otlp_kvlist_overridden(f->hdr_list, i, true))
            f->hdrs[f->nhdrs++] =
                (weft_http_header_t){{f->hdr_list->key[i], strlen(f->hdr_list->key[i])},
                                     {f->hdr_list->value[i], strlen(f->hdr_list->value[i])}};
    f->nslots = conf->max_inflight < 1           ? 1
                : conf->max_inflight > MAX_SLOTS ? MAX_SLOTS
                                                 : conf->max_inflight;
    if (!(f->slots = calloc(f->nslots, sizeof(*f->slots)))) goto fail;
    for (unsigned i = 0; i < f->nslots; i++) {
        f->slots[i].f = f;
        weft_buf_init(&f->slots[i].body, 0);
    }
    atomic_init(&f->accepting, true);
    atomic_init(&f->held, 0);
    atomic_init(&f->queued_spans, 0);
    what = "cannot register its metrics";
    if (m && (e = register_metrics(f, m)) != 0) goto fail;

    /* Everything is set up before the thread starts; from then on only it touches the loop. */
    what = "uv_loop_init";
    if ((e = uv_loop_init(&f->loop)) != 0) goto fail;
    f->have_loop = true;
    weft_http_client_options_t co;
    weft_http_client_options_init(&co);
    co.connect_timeout_ms = co.request_timeout_ms = co.head_timeout_ms = co.body_timeout_ms =
        f->conf.timeout_ms;
    co.max_idle_per_host = f->nslots;
    co.idle_timeout_ms = 4000; /* below common server idle timeouts: a POST is not sent on a
                                  connection the server has just closed */
    co.max_conns_per_host = f->nslots;
    co.max_queue = f->nslots;
    co.max_hosts = 1;
    what = "http client";
    if ((e = weft_http_client_new(&f->loop, &co, &f->client)) != 0) goto fail;
    what = "inbox";
    /* pieces are at least a few dozen bytes each: the byte bound holds them first */
    size_t limit = (size_t)(f->conf.queue_bytes / 32) + 16;
    if ((e = weft_inbox_init(&f->inbox, &f->loop, limit, INBOX_BATCH, on_chunk, on_discard, f)) !=
        0)
        goto fail;
    f->have_inbox = true;
    what = "uv_async_init";
    if ((e = uv_async_init(&f->loop, &f->stop_async, on_stop)) != 0) goto fail;
    f->stop_async.data = f;
    f->have_async = true;
    uv_timer_init(&f->loop, &f->flush_timer);
    uv_timer_init(&f->loop, &f->shutdown_timer);
    f->flush_timer.data = f->shutdown_timer.data = f;
    for (unsigned i = 0; i < f->nslots; i++) {
        uv_timer_init(&f->loop, &f->slots[i].retry);
        f->slots[i].retry.data = &f->slots[i];
    }
    f->have_timers = true;
    what = "uv_thread_create";
    if ((e = uv_thread_create(&f->thread, run, f)) != 0) goto fail;
    f->have_thread = true;
    *out = f;
    return 0;

fail:
    weft__errf(err, errlen, e, "collector.forward: %s: %s", what, weft_strerror(e));
    if (f->have_loop) {
        finish(f);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    fwd_release(f);
    return e;
}

void col_fwd_free(col_fwd_t *f)
{
    if (!f) return;
    atomic_store_explicit(&f->accepting, false, memory_order_release);
    uv_async_send(&f->stop_async);
    uv_thread_join(&f->thread);
    uv_loop_close(&f->loop);
    fwd_release(f);
}

int weft__col_fwd_open(weft_collector_t *c, const weft_collector_options_t *o, char *err,
                       size_t errlen)
{
    const weft_collector_conf_t *k = o->conf;
    col_fwd_conf_t fc = {.endpoint = k->fwd_endpoint,
                         .headers = k->fwd_headers,
                         .queue_bytes = k->fwd_queue_size,
                         .batch_spans = (size_t)k->fwd_batch_size,
                         .flush_ms = k->fwd_flush_interval,
                         .timeout_ms = k->fwd_timeout,
                         .retry_ms = k->fwd_retry,
                         .shutdown_ms = k->fwd_shutdown,
                         .max_inflight = (unsigned)k->fwd_in_flight};
    return col_fwd_new(&fc, o->metrics, &c->fwd, err, errlen);
}
