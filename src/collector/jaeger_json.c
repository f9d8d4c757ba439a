/*
 * jaeger_json.c - one trace as the Jaeger query service's HTTP API returns it (an element of
 * /api/traces's and /api/traces/{id}'s "data"), so that the Jaeger UI and its clients read
 * weft unchanged.
 *
 * The reference is Jaeger's UI model (internal/uimodel/model.go, formerly model/json, with
 * converter/v1/json/from_domain.go and the query service's adjusters), and for spans that
 * came as OTLP, the OpenTelemetry Collector's OTLP → Jaeger translator (pkg/translator/
 * jaeger/traces_to_jaegerproto.go), which Jaeger itself uses to take in OTLP:
 *
 *   {"traceID", "spans": [...], "processes": {"p1": {...}, ...}, "warnings": null}
 *
 * traceID and every id: as Jaeger's TraceID.String() writes them: 16 lowercase hex digits
 * when the high 64 bits are zero, 32 otherwise; span ids always 16.
 * A span, fields in the UI model's order:
 *   traceID, spanID;
 *   flags      Jaeger's: 1 (sampled) when the W3C trace flags have it, | 2 for Zipkin's
 *              debug; left out when 0 (omitempty);
 *   operationName  the span's name as it was sent (Jaeger does not lowercase);
 *   references a CHILD_OF the parent first (backends look for it there), then a
 *              FOLLOWS_FROM for each link, as the translator does; [] for a root;
 *   startTime, duration  microseconds, truncated; duration 0 when end <= start;
 *   tags       [{"key","type","value"}]: each attribute with its type (string, bool, int64,
 *              float64, binary as base64); arrays, maps and empty values as "string" with the
 *              text of encode_util.c (as the translator's AsString). An int64 beyond ±(2^53-1)
 *              has its value as a string, as Jaeger writes it for JavaScript's sake; NaN and
 *              the infinities likewise (JSON has no such numbers; Jaeger would fail).
 *              Added, as the translator does, each unless an attribute has its key:
 *              otel.scope.name and otel.scope.version, span.kind (client, server, producer,
 *              consumer, internal), otel.status_code (OK, ERROR), otel.status_description
 *              (the status message, when there is one), w3c.tracestate, and the generic
 *              mapping's otel.dropped_{attributes,events,links}_count when not zero; the
 *              scope's attributes. A span with status ERROR gets error = true (bool) always:
 *              the Jaeger UI marks a span failed only for true or "true". Its own "error"
 *              attribute (Zipkin's error tag, whose value is the status message weft read
 *              from it) is then written only when it says more than that: not true, not
 *              "true", not the status message.
 *              For a span that came from Zipkin, its endpoints become the tags the
 *              Collector's Zipkin receiver makes of them: net.host.ip and net.host.port
 *              (local), peer.service, net.peer.ip and net.peer.port (remote). shared has no
 *              Jaeger form.
 *              Sorted by key, then type, then value (the query's SortTagsAndLogFields).
 *   logs       one per event: {"timestamp" µs, "fields": [{"key":"event", "type":"string",
 *              "value": its name} first (left out when the name is empty), then its
 *              attributes sorted as tags]}; [] when none;
 *   processID  "p1", "p2", ... in order of first use;
 *   warnings   null.
 * processes: one per distinct resource (same service and same attributes: Jaeger hashes
 * the process), {"serviceName": service.name as sent, "" when none, "tags": the other
 * resource attributes, sorted}.
 * Spans are sorted by start time (the caller's array is reordered), ties in given order.
 *
 * Threads: any; no state. Memory: per trace (span order, process table) and per span (tag
 * tables, text), freed before returning; out of memory marks b failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/encode.h"
#include "collector/encode_util.h"
#include "core/json_write.h"

/* Jaeger's ValueType, in its order (the sort compares types by it). */
enum { JT_STRING = 0, JT_BOOL = 1, JT_INT64 = 2, JT_FLOAT64 = 3, JT_BINARY = 4 };

typedef struct jtag_s {
    col_str_t key;
    uint8_t type;
    bool in_scratch; /* s is text at scratch offset off (until resolved) */
    bool bv;
    col_str_t s; /* STRING and BINARY (raw bytes) */
    size_t off;
    int64_t i;
    double d;
    uint32_t seq;
} jtag_t;

typedef struct jtags_s {
    jtag_t *v;
    uint32_t n, cap;
    weft_buf_t text; /* text values (arrays, addresses, counts) */
    bool failed;
} jtags_t;

static jtag_t *jt_add(jtags_t *t, col_str_t key, uint8_t type)
{
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 32;
        jtag_t *v = realloc(t->v, cap * sizeof(*v));
        if (!v) {
            t->failed = true;
            return NULL;
        }
        t->v = v;
        t->cap = cap;
    }
    jtag_t *g = &t->v[t->n];
    *g = (jtag_t){.key = key, .type = type, .seq = t->n};
    t->n++;
    return g;
}

static void jt_str(jtags_t *t, const char *key, col_str_t v)
{
    jtag_t *g = jt_add(t, (col_str_t){key, (uint32_t)strlen(key)}, JT_STRING);
    if (g) g->s = v;
}

static void jt_int(jtags_t *t, const char *key, int64_t v)
{
    jtag_t *g = jt_add(t, (col_str_t){key, (uint32_t)strlen(key)}, JT_INT64);
    if (g) g->i = v;
}

/* A string value written into t->text (resolved to a pointer by jt_sort). */
static jtag_t *jt_text_begin(jtags_t *t, col_str_t key)
{
    jtag_t *g = jt_add(t, key, JT_STRING);
    if (g) {
        g->in_scratch = true;
        g->off = t->text.len;
    }
    return g;
}

static void jt_text_end(jtags_t *t, jtag_t *g)
{
    if (g) g->s.n = (uint32_t)(t->text.len - g->off);
}

static void jt_attr(jtags_t *t, const col_attr_t *a)
{
    jtag_t *g;
    switch (a->type) {
    case COL_V_STRING:
        if ((g = jt_add(t, a->key, JT_STRING))) g->s = a->v.s;
        break;
    case COL_V_BOOL:
        if ((g = jt_add(t, a->key, JT_BOOL))) g->bv = a->v.b;
        break;
    case COL_V_INT:
        if ((g = jt_add(t, a->key, JT_INT64))) g->i = a->v.i;
        break;
    case COL_V_DOUBLE:
        if ((g = jt_add(t, a->key, JT_FLOAT64))) g->d = a->v.d;
        break;
    case COL_V_BYTES:
        if ((g = jt_add(t, a->key, JT_BINARY))) g->s = a->v.s;
        break;
    default: /* arrays, maps, empty: their text, as a string */
        g = jt_text_begin(t, a->key);
        col_attr_text(&t->text, a);
        jt_text_end(t, g);
        break;
    }
}

static bool has_key(const col_attr_t *attrs, uint32_t n, const char *key)
{
    size_t kn = strlen(key);
    for (uint32_t i = 0; i < n; i++)
        if (col_str_eq(attrs[i].key, key, kn)) return true;
    return false;
}

static int cmp_bytes(col_str_t a, col_str_t b)
{
    uint32_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

/* Jaeger's KeyValues order: key, type, value; then the order added (a stable sort). */
static int jtag_cmp(const void *x, const void *y)
{
    const jtag_t *a = x, *b = y;
    int c = cmp_bytes(a->key, b->key);
    if (c) return c;
    if (a->type != b->type) return a->type < b->type ? -1 : 1;
    switch (a->type) {
    case JT_STRING:
    case JT_BINARY:
        c = cmp_bytes(a->s, b->s);
        break;
    case JT_BOOL:
        c = a->bv == b->bv ? 0 : a->bv ? 1 : -1;
        break;
    case JT_INT64:
        c = a->i < b->i ? -1 : a->i > b->i;
        break;
    default:
        c = a->d < b->d ? -1 : a->d > b->d;
        break;
    }
    if (c) return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Points text values at their bytes (t->text no longer grows) and sorts tags [from, n). */
static void jt_sort(jtags_t *t, uint32_t from)
{
    if (t->text.failed) t->failed = true;
    for (uint32_t i = from; i < t->n; i++)
        if (t->v[i].in_scratch) t->v[i].s.p = t->text.p ? t->text.p + t->v[i].off : "";
    if (t->n - from > 1) qsort(t->v + from, t->n - from, sizeof(jtag_t), jtag_cmp);
}

#define JS_MAX_SAFE ((int64_t)1 << 53) - 1

static void write_tag(weft_buf_t *b, const jtag_t *g)
{
    static const char *const names[] = {"string", "bool", "int64", "float64", "binary"};
    weft_buf_puts(b, "{\"key\":");
    weft_json_put_str(b, g->key.p, g->key.n);
    weft_buf_puts(b, ",\"type\":\"");
    weft_buf_puts(b, names[g->type]);
    weft_buf_puts(b, "\",\"value\":");
    switch (g->type) {
    case JT_STRING:
        weft_json_put_str(b, g->s.p, g->s.n);
        break;
    case JT_BOOL:
        weft_buf_puts(b, g->bv ? "true" : "false");
        break;
    case JT_INT64:
        if (g->i > JS_MAX_SAFE || g->i < -(JS_MAX_SAFE)) {
            weft_buf_putc(b, '"');
            weft_buf_put_i64(b, g->i);
            weft_buf_putc(b, '"');
        } else {
            weft_buf_put_i64(b, g->i);
        }
        break;
    case JT_FLOAT64:
        if (!weft_json_put_double(b, g->d)) {
            weft_buf_putc(b, '"');
            col_double_text(b, g->d);
            weft_buf_putc(b, '"');
        }
        break;
    default:
        weft_buf_putc(b, '"');
        col_base64(b, (const uint8_t *)g->s.p, g->s.n);
        weft_buf_putc(b, '"');
        break;
    }
    weft_buf_putc(b, '}');
}

static void write_tags(weft_buf_t *b, const jtags_t *t, uint32_t from)
{
    weft_buf_putc(b, '[');
    for (uint32_t i = from; i < t->n; i++) {
        if (i > from) weft_buf_putc(b, ',');
        write_tag(b, &t->v[i]);
    }
    weft_buf_putc(b, ']');
}

static void put_id(weft_buf_t *b, const uint8_t trace_id[16])
{
    weft_buf_putc(b, '"');
    bool short_id = true;
    for (int i = 0; i < 8; i++) short_id = short_id && trace_id[i] == 0;
    if (short_id)
        weft_buf_put_hex(b, trace_id + 8, 8);
    else
        weft_buf_put_hex(b, trace_id, 16);
    weft_buf_putc(b, '"');
}

static void put_span_id(weft_buf_t *b, const uint8_t span_id[8])
{
    weft_buf_putc(b, '"');
    weft_buf_put_hex(b, span_id, 8);
    weft_buf_putc(b, '"');
}

static const char *span_kind(uint8_t kind)
{
    switch (kind) {
    case COL_KIND_INTERNAL:
        return "internal";
    case COL_KIND_SERVER:
        return "server";
    case COL_KIND_CLIENT:
        return "client";
    case COL_KIND_PRODUCER:
        return "producer";
    case COL_KIND_CONSUMER:
        return "consumer";
    default:
        return NULL;
    }
}

/* The endpoint tags of a span that came from Zipkin (see the top). */
static void endpoint_tags(jtags_t *t, const col_span_t *s)
{
    char ip[COL_IP_TEXT];
    const col_endpoint_t *l = &s->local, *r = &s->remote;
    if ((l->has_ipv4 || l->has_ipv6) && !has_key(s->attrs, s->nattrs, "net.host.ip")) {
        jtag_t *g = jt_text_begin(t, COL_STR("net.host.ip"));
        size_t n = l->has_ipv4 ? col_ip_text(l->ipv4, 4, ip) : col_ip_text(l->ipv6, 16, ip);
        weft_buf_put(&t->text, ip, n);
        jt_text_end(t, g);
    }
    if (l->port && !has_key(s->attrs, s->nattrs, "net.host.port"))
        jt_int(t, "net.host.port", l->port);
    if (r->service.n && !has_key(s->attrs, s->nattrs, "peer.service"))
        jt_str(t, "peer.service", r->service);
    if ((r->has_ipv4 || r->has_ipv6) && !has_key(s->attrs, s->nattrs, "net.peer.ip")) {
        jtag_t *g = jt_text_begin(t, COL_STR("net.peer.ip"));
        size_t n = r->has_ipv4 ? col_ip_text(r->ipv4, 4, ip) : col_ip_text(r->ipv6, 16, ip);
        weft_buf_put(&t->text, ip, n);
        jt_text_end(t, g);
    }
    if (r->port && !has_key(s->attrs, s->nattrs, "net.peer.port"))
        jt_int(t, "net.peer.port", r->port);
}

/* The span's tags into t (emptied first), sorted. */
static void span_tags(jtags_t *t, const col_span_t *s)
{
    t->n = 0;
    weft_buf_reset(&t->text);
    bool error = s->status == COL_STATUS_ERROR;
    for (uint32_t i = 0; i < s->nattrs; i++) {
        const col_attr_t *a = &s->attrs[i];
        if (error && col_str_eq(a->key, "error", 5) &&
            ((a->type == COL_V_BOOL && a->v.b) ||
             (a->type == COL_V_STRING &&
              (col_str_eq(a->v.s, "true", 4) ||
               col_str_eq(a->v.s, s->status_message.p, s->status_message.n)))))
            continue; /* error = true below says it */
        jt_attr(t, a);
    }
#define ADD_STR(key, val)                                                                          \
    do {                                                                                           \
        if (!has_key(s->attrs, s->nattrs, key)) jt_str(t, key, val);                               \
    } while (0)
    if (s->scope->name.n) ADD_STR("otel.scope.name", s->scope->name);
    if (s->scope->version.n) ADD_STR("otel.scope.version", s->scope->version);
    const char *kind = span_kind(s->kind);
    if (kind) ADD_STR("span.kind", ((col_str_t){kind, (uint32_t)strlen(kind)}));
    if (s->status == COL_STATUS_OK) ADD_STR("otel.status_code", COL_STR("OK"));
    if (error) {
        ADD_STR("otel.status_code", COL_STR("ERROR"));
        jtag_t *g = jt_add(t, COL_STR("error"), JT_BOOL);
        if (g) g->bv = true;
    }
    if (s->status != COL_STATUS_UNSET && s->status_message.n)
        ADD_STR("otel.status_description", s->status_message);
    if (s->trace_state.n) ADD_STR("w3c.tracestate", s->trace_state);
#undef ADD_STR
    static const char *const count_keys[3] = {
        "otel.dropped_attributes_count", "otel.dropped_events_count", "otel.dropped_links_count"};
    const uint32_t counts[3] = {s->dropped_attrs, s->dropped_events, s->dropped_links};
    for (int i = 0; i < 3; i++)
        if (counts[i] && !has_key(s->attrs, s->nattrs, count_keys[i]))
            jt_int(t, count_keys[i], counts[i]);
    for (uint32_t i = 0; i < s->scope->nattrs; i++) {
        const col_attr_t *a = &s->scope->attrs[i];
        bool dup = false;
        for (uint32_t k = 0; k < s->nattrs && !dup; k++)
            dup = col_str_eq(s->attrs[k].key, a->key.p, a->key.n);
        if (!dup) jt_attr(t, a);
    }
    endpoint_tags(t, s);
    jt_sort(t, 0);
}

static void write_logs(weft_buf_t *b, jtags_t *t, const col_span_t *s)
{
    weft_buf_puts(b, ",\"logs\":[");
    for (uint32_t i = 0; i < s->nevents; i++) {
        const col_event_t *e = &s->events[i];
        if (i) weft_buf_putc(b, ',');
        weft_buf_puts(b, "{\"timestamp\":");
        weft_buf_put_u64(b, e->time_ns / 1000);
        weft_buf_puts(b, ",\"fields\":[");
        if (e->name.n) {
            weft_buf_puts(b, "{\"key\":\"event\",\"type\":\"string\",\"value\":");
            weft_json_put_str(b, e->name.p, e->name.n);
            weft_buf_putc(b, '}');
        }
        t->n = 0;
        weft_buf_reset(&t->text);
        for (uint32_t k = 0; k < e->nattrs; k++) jt_attr(t, &e->attrs[k]);
        jt_sort(t, 0);
        for (uint32_t k = 0; k < t->n; k++) {
            if (k || e->name.n) weft_buf_putc(b, ',');
            write_tag(b, &t->v[k]);
        }
        weft_buf_puts(b, "]}");
    }
    weft_buf_putc(b, ']');
}

static void write_span(weft_buf_t *b, jtags_t *t, const col_span_t *s, size_t process)
{
    weft_buf_puts(b, "{\"traceID\":");
    put_id(b, s->trace_id);
    weft_buf_puts(b, ",\"spanID\":");
    put_span_id(b, s->span_id);
    uint32_t flags = (s->flags & 1) | (s->debug ? 2 : 0);
    if (flags) {
        weft_buf_puts(b, ",\"flags\":");
        weft_buf_put_u64(b, flags);
    }
    weft_buf_puts(b, ",\"operationName\":");
    weft_json_put_str(b, s->name.p, s->name.n);
    weft_buf_puts(b, ",\"references\":[");
    bool any = false;
    bool has_parent = false;
    for (int i = 0; i < 8; i++) has_parent = has_parent || s->parent_id[i];
    if (has_parent) {
        weft_buf_puts(b, "{\"refType\":\"CHILD_OF\",\"traceID\":");
        put_id(b, s->trace_id);
        weft_buf_puts(b, ",\"spanID\":");
        put_span_id(b, s->parent_id);
        weft_buf_putc(b, '}');
        any = true;
    }
    for (uint32_t i = 0; i < s->nlinks; i++) {
        if (any) weft_buf_putc(b, ',');
        weft_buf_puts(b, "{\"refType\":\"FOLLOWS_FROM\",\"traceID\":");
        put_id(b, s->links[i].trace_id);
        weft_buf_puts(b, ",\"spanID\":");
        put_span_id(b, s->links[i].span_id);
        weft_buf_putc(b, '}');
        any = true;
    }
    weft_buf_puts(b, "],\"startTime\":");
    weft_buf_put_u64(b, s->start_ns / 1000);
    weft_buf_puts(b, ",\"duration\":");
    weft_buf_put_u64(b, s->end_ns > s->start_ns ? (s->end_ns - s->start_ns) / 1000 : 0);
    weft_buf_puts(b, ",\"tags\":");
    span_tags(t, s);
    write_tags(b, t, 0);
    write_logs(b, t, s);
    weft_buf_puts(b, ",\"processID\":\"p");
    weft_buf_put_u64(b, process + 1);
    weft_buf_puts(b, "\",\"warnings\":null}");
}

/* ---- processes: distinct resources ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

static bool attr_eq(const col_attr_t *a, const col_attr_t *b)
{
    if (a->type != b->type || cmp_bytes(a->key, b->key)) return false;
    switch (a->type) {
    case COL_V_BOOL:
        return a->v.b == b->v.b;
    case COL_V_INT:
        return a->v.i == b->v.i;
    case COL_V_DOUBLE:
        return memcmp(&a->v.d, &b->v.d, sizeof(double)) == 0;
    case COL_V_EMPTY:
        return true;
    default:
        return cmp_bytes(a->v.s, b->v.s) == 0;
    }
}

static uint64_t resource_hash(const col_resource_t *r)
{
    uint64_t h = fnv(0xcbf29ce484222325ull, r->service.p, r->service.n);
    for (uint32_t i = 0; i < r->nattrs; i++) {
        const col_attr_t *a = &r->attrs[i];
        h = fnv(h, a->key.p, a->key.n);
        h = fnv(h, &a->type, 1);
        switch (a->type) {
        case COL_V_BOOL:
            h = fnv(h, &a->v.b, sizeof(a->v.b));
            break;
        case COL_V_INT:
            h = fnv(h, &a->v.i, sizeof(a->v.i));
            break;
        case COL_V_DOUBLE:
            h = fnv(h, &a->v.d, sizeof(a->v.d));
            break;
        case COL_V_EMPTY:
            break;
        default:
            h = fnv(h, a->v.s.p, a->v.s.n);
            break;
        }
    }
    return h;
}

static bool resource_eq(const col_resource_t *a, const col_resource_t *b)
{
    if (a == b) return true;
    if (cmp_bytes(a->service, b->service) || a->nattrs != b->nattrs) return false;
    for (uint32_t i = 0; i < a->nattrs; i++)
        if (!attr_eq(&a->attrs[i], &b->attrs[i])) return false;
    return true;
}

/* Numbers the distinct resources of the n spans in order of first use: proc[i] is span i's,
 * procs[0..*nprocs) the resources. false when out of memory. */
static bool number_processes(const col_span_t *spans, size_t n, uint32_t *proc,
                             const col_resource_t **procs, size_t *nprocs)
{
    typedef struct {
        uint64_t hash;
        uint32_t proc; /* index + 1 into procs; 0: free */
    } slot_t;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slot_t *slot = calloc(cap, sizeof(*slot));
    if (!slot) return false;
    *nprocs = 0;
    for (size_t i = 0; i < n; i++) {
        const col_resource_t *r = spans[i].resource;
        if (i && r == spans[i - 1].resource) { /* the common case: one resource in a row */
            proc[i] = proc[i - 1];
            continue;
        }
        uint64_t h = resource_hash(r);
        size_t k = h & (cap - 1);
        while (slot[k].proc && !(slot[k].hash == h && resource_eq(procs[slot[k].proc - 1], r)))
            k = (k + 1) & (cap - 1);
        if (!slot[k].proc) {
            procs[*nprocs] = r;
            slot[k] = (slot_t){.hash = h, .proc = (uint32_t)++ * nprocs};
        }
        proc[i] = slot[k].proc - 1;
    }
    free(slot);
    return true;
}

static void write_process(weft_buf_t *b, jtags_t *t, const col_resource_t *r, size_t index)
{
    weft_buf_puts(b, "\"p");
    weft_buf_put_u64(b, index + 1);
    weft_buf_puts(b, "\":{\"serviceName\":");
    weft_json_put_str(b, r->service.p, r->service.n);
    weft_buf_puts(b, ",\"tags\":");
    t->n = 0;
    weft_buf_reset(&t->text);
    for (uint32_t i = 0; i < r->nattrs; i++)
        if (!col_str_eq(r->attrs[i].key, "service.name", 12)) jt_attr(t, &r->attrs[i]);
    jt_sort(t, 0);
    write_tags(b, t, 0);
    weft_buf_putc(b, '}');
}

void col_jaeger_json_trace(weft_buf_t *b, col_span_t *spans, size_t n)
{
    if (!col_sort_by_start(spans, n)) {
        b->failed = true;
        return;
    }
    uint32_t *proc = malloc((n ? n : 1) * sizeof(*proc));
    const col_resource_t **procs = malloc((n ? n : 1) * sizeof(*procs));
    size_t nprocs = 0;
    jtags_t t = {0};
    weft_buf_init(&t.text, 0);
    if (!proc || !procs || !number_processes(spans, n, proc, procs, &nprocs)) {
        b->failed = true;
        goto out;
    }
    weft_buf_puts(b, "{\"traceID\":");
    if (n)
        put_id(b, spans[0].trace_id);
    else
        weft_buf_puts(b, "\"\"");
    weft_buf_puts(b, ",\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) weft_buf_putc(b, ',');
        write_span(b, &t, &spans[i], proc[i]);
    }
    weft_buf_puts(b, "],\"processes\":{");
    for (size_t i = 0; i < nprocs; i++) {
        if (i) weft_buf_putc(b, ',');
        write_process(b, &t, procs[i], i);
    }
    weft_buf_puts(b, "},\"warnings\":null}");
    if (t.failed) b->failed = true;
out:
    free(t.v);
    weft_buf_free(&t.text);
    free(procs);
    free(proc);
}
