/*
 * zipkin_json.c - Zipkin v2's JSON: spans written as Zipkin's own server writes them
 * (/api/v2/trace/{id}, /api/v2/traces), and the list of spans its clients POST to
 * /api/v2/spans read into span.h's batch.
 *
 * The reference is openzipkin's zipkin2-api.yaml and what Zipkin's server does with a span
 * (zipkin2.Span.Builder, zipkin2.internal.V2SpanWriter): a client that reads weft must find
 * what it would find in Zipkin, field for field. For spans that came in as OTLP, the
 * OpenTelemetry → Zipkin mapping (specification/trace/sdk_exporters/zipkin.md and the
 * generic mapping-to-non-otlp.md) decides what goes where; where implementations differ
 * (the Java exporter, the Collector's translator), the choice and the reason are below.
 *
 * Writing a span. Fields in V2SpanWriter's order, each left out when Zipkin leaves it out:
 *   traceId    32 lowercase hex digits, or 16 when the high 8 bytes are zero: Zipkin
 *              stores a 64-bit id as 16 digits and trims a 32-digit id whose first 16 are
 *              zeros (Span.normalizeTraceId), so a Zipkin client gets back what it sent.
 *   parentId   16 hex; left out for a root (all zero) and when it equals id (Zipkin undoes
 *              that "circular dependency").
 *   id         16 hex.
 *   kind       CLIENT, SERVER, PRODUCER, CONSUMER; left out for INTERNAL and UNSPECIFIED.
 *   name       the span's name in ASCII lowercase; left out when empty. Zipkin's server
 *              lowercases span and service names as it reads them (Span.Builder.name,
 *              Endpoint.serviceName; openzipkin/zipkin#2438: kept on purpose, for
 *              case-blind indexes), so its clients only ever see lowercase names. weft keeps
 *              the name as it was sent (the Jaeger API and OTLP show it so) and lowercases
 *              only here; the Zipkin query API must match names without regard to ASCII case
 *              to agree. Zipkin's Java toLowerCase also lowers non-ASCII letters; weft does
 *              not (a name with them differs in those letters only).
 *   timestamp  start in epoch microseconds (nanoseconds / 1000, truncated); left out when 0.
 *   duration   (end - start) in microseconds, truncated, but at least 1 for a span that
 *              took any time (the OTel mapping's rule, so that a 400 ns span is not shown as
 *              one of unknown length); left out when end <= start, as Zipkin leaves out a
 *              zero (unknown) duration.
 *   localEndpoint   {serviceName: the resource's service.name, lowercased; ipv4; ipv6;
 *              port}, each when set (span.local); left out when all are empty, as Zipkin
 *              drops an empty endpoint.
 *   remoteEndpoint  span.remote likewise, serviceName lowercased. A span that came as OTLP
 *              has none; for a CLIENT or PRODUCER span it is derived from the attributes, by
 *              the mapping's ranking (without it Zipkin draws no dependency link):
 *              serviceName from the first string of peer.service, server.address,
 *              net.peer.name, network.peer.address, server.socket.domain,
 *              server.socket.address, net.sock.peer.name, net.sock.peer.addr, peer.hostname,
 *              peer.address, db.name; an address from the first of network.peer.address,
 *              server.socket.address, net.sock.peer.addr, net.peer.ip that is an IP literal,
 *              with its port (network.peer.port, ...); with no address, the port of
 *              server.port or net.peer.port. The attributes stay tags too.
 *   annotations  the events, as {timestamp µs, value}, sorted by timestamp then value with
 *              exact duplicates dropped (Zipkin's sortedList). The value is the event's name
 *              when it has no attributes (Zipkin's own annotations, "ws", "wr", come back as
 *              they were sent); otherwise the mapping's `"name":{"key":value,...}` (as the
 *              Java exporter writes it, but with the name and keys escaped and typed JSON
 *              values: strings quoted, numbers and booleans bare, arrays as lists). The
 *              Collector's `name|{json}|dropped` form is not used: it is the Collector's
 *              private round-trip encoding, not the specification's.
 *   tags       a JSON object of strings, sorted by key (Zipkin keeps them in a TreeMap):
 *              - every span attribute, its value as text (encode_util.c: "true", "42", "1.5",
 *                base64 bytes, arrays as JSON lists); of two with one key the later wins
 *                (TreeMap.put);
 *              - status: OK → otel.status_code "OK"; ERROR → otel.status_code "ERROR" and
 *                error = the status message ("" when none), the mapping's rule. But when
 *                the span has an "error" attribute of its own, neither is added for ERROR:
 *                that attribute is Zipkin's own error tag (a Zipkin span's status is read
 *                from it, below), written once, as it came. An "error" attribute that is
 *                false or "false" on a span whose status is not ERROR is dropped (the
 *                mapping: Zipkin takes any error tag for a failure);
 *              - otel.scope.name and otel.scope.version, and their deprecated aliases
 *                otel.library.name and otel.library.version, which the mapping still
 *                requires, when the scope has them;
 *              - otel.dropped_attributes_count, otel.dropped_events_count and
 *                otel.dropped_links_count when not zero;
 *              - the resource's attributes but service.name (the localEndpoint has it), then
 *                the scope's attributes (the generic mapping: "the most suitable place");
 *              a span attribute wins over an added tag of the same key, and an added tag
 *              over a resource or scope attribute. Links and trace_state have no Zipkin
 *              field and no agreed tag (the mapping leaves them TBD): not written.
 *   debug, shared  `true` when set; never `false` (Zipkin writes only true); shared never
 *              on a CLIENT span (Zipkin drops it there).
 * A trace (col_zipkin_json_trace) is a JSON array of its spans sorted by start time, ties
 * kept in the order they were given.
 *
 * Reading (col_zipkin_json_decode) is designed so that every field above reads back the
 * same: a span POSTed in the form Zipkin returns (names lowercase) is returned byte for byte
 * (see its comment further down for the checks and the mapping).
 *
 * Threads: any; no state. Memory: the writer allocates per span (the tag and annotation
 * tables) and per trace (the order), freed before returning; out of memory marks b failed.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/encode_util.h"
#include "collector/decode.h"
#include "collector/encode.h"
#include "core/json_read.h"
#include "core/json_write.h"
#include "weft/common.h"

/* ---- small helpers shared by the writer and the reader ---- */

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

static bool endpoint_empty(const col_endpoint_t *e, col_str_t service)
{
    return service.n == 0 && !e->has_ipv4 && !e->has_ipv6 && e->port == 0;
}

/* Writes the n bytes at s as a JSON string in ASCII lowercase (see the top: Zipkin's
 * names). The escapes json_write.c makes hold no uppercase letter, so lowering what it
 * wrote lowers exactly the string's own letters. */
static void put_lower(weft_buf_t *b, const char *s, size_t n)
{
    size_t from = b->len;
    weft_json_put_str(b, s, n);
    if (b->failed) return;
    for (size_t i = from; i < b->len; i++)
        if (b->p[i] >= 'A' && b->p[i] <= 'Z') b->p[i] = (char)(b->p[i] + ('a' - 'A'));
}

static bool key_is(col_str_t k, const char *z)
{
    return col_str_eq(k, z, strlen(z));
}

/* The last attribute named key among attrs (the one Zipkin's TreeMap would keep), or NULL. */
static const col_attr_t *find_attr(const col_attr_t *attrs, uint32_t n, const char *key)
{
    size_t kn = strlen(key);
    for (uint32_t i = n; i-- > 0;)
        if (col_str_eq(attrs[i].key, key, kn)) return &attrs[i];
    return NULL;
}

/* ---- writing: tags ---- */

typedef struct ztag_s {
    col_str_t key;
    const col_attr_t *attr; /* the value, or NULL: text */
    col_str_t text;
    uint32_t rank; /* 0 span attributes, 1 added tags, 2 resource, 3 scope */
    uint32_t seq;  /* order added: among equal keys and ranks, the later wins */
} ztag_t;

static int ztag_cmp(const void *x, const void *y)
{
    const ztag_t *a = x, *b = y;
    uint32_t n = a->key.n < b->key.n ? a->key.n : b->key.n;
    int c = n ? memcmp(a->key.p, b->key.p, n) : 0;
    if (c) return c;
    if (a->key.n != b->key.n) return a->key.n < b->key.n ? -1 : 1;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    return a->seq > b->seq ? -1 : a->seq < b->seq ? 1 : 0;
}

typedef struct ztags_s {
    ztag_t *v;
    uint32_t n;
} ztags_t;

static void add_attr(ztags_t *t, const col_attr_t *a, uint32_t rank)
{
    t->v[t->n] = (ztag_t){.key = a->key, .attr = a, .rank = rank, .seq = t->n};
    t->n++;
}

static void add_text(ztags_t *t, const char *key, col_str_t text)
{
    t->v[t->n] =
        (ztag_t){.key = {key, (uint32_t)strlen(key)}, .text = text, .rank = 1, .seq = t->n};
    t->n++;
}

/* Writes the tags object (see the top), or nothing when there are none. */
static void write_tags(weft_buf_t *b, const col_span_t *s)
{
    const col_resource_t *res = s->resource;
    const col_scope_t *scope = s->scope;
    size_t cap = (size_t)s->nattrs + res->nattrs + scope->nattrs + 12;
    ztags_t t = {.v = malloc(cap * sizeof(ztag_t))};
    if (!t.v) {
        b->failed = true;
        return;
    }
    char counts[3][24];
    bool has_error = false;
    for (uint32_t i = 0; i < s->nattrs; i++) {
        const col_attr_t *a = &s->attrs[i];
        if (key_is(a->key, "error")) {
            if (s->status != COL_STATUS_ERROR &&
                ((a->type == COL_V_BOOL && !a->v.b) ||
                 (a->type == COL_V_STRING && col_str_eq(a->v.s, "false", 5))))
                continue;
            has_error = true;
        }
        add_attr(&t, a, 0);
    }
    if (s->status == COL_STATUS_OK) {
        add_text(&t, "otel.status_code", COL_STR("OK"));
    } else if (s->status == COL_STATUS_ERROR && !has_error) {
        add_text(&t, "otel.status_code", COL_STR("ERROR"));
        add_text(&t, "error", s->status_message);
    }
    if (scope->name.n) {
        add_text(&t, "otel.scope.name", scope->name);
        add_text(&t, "otel.library.name", scope->name);
    }
    if (scope->version.n) {
        add_text(&t, "otel.scope.version", scope->version);
        add_text(&t, "otel.library.version", scope->version);
    }
    static const char *const count_keys[3] = {
        "otel.dropped_attributes_count", "otel.dropped_events_count", "otel.dropped_links_count"};
    const uint32_t count_vals[3] = {s->dropped_attrs, s->dropped_events, s->dropped_links};
    for (int i = 0; i < 3; i++) {
        if (!count_vals[i]) continue;
        int len = snprintf(counts[i], sizeof(counts[i]), "%u", (unsigned)count_vals[i]);
        add_text(&t, count_keys[i], (col_str_t){counts[i], (uint32_t)len});
    }
    for (uint32_t i = 0; i < res->nattrs; i++)
        if (!key_is(res->attrs[i].key, "service.name")) add_attr(&t, &res->attrs[i], 2);
    for (uint32_t i = 0; i < scope->nattrs; i++) add_attr(&t, &scope->attrs[i], 3);

    if (t.n) {
        qsort(t.v, t.n, sizeof(ztag_t), ztag_cmp);
        weft_buf_t scratch;
        weft_buf_init(&scratch, 0);
        weft_buf_puts(b, ",\"tags\":{");
        bool first = true;
        for (uint32_t i = 0; i < t.n; i++) {
            const ztag_t *g = &t.v[i];
            if (i && t.v[i - 1].key.n == g->key.n &&
                (g->key.n == 0 || memcmp(t.v[i - 1].key.p, g->key.p, g->key.n) == 0))
                continue; /* the first of equal keys is the one that wins */
            if (!first) weft_buf_putc(b, ',');
            first = false;
            weft_json_put_str(b, g->key.p, g->key.n);
            weft_buf_putc(b, ':');
            if (!g->attr) {
                weft_json_put_str(b, g->text.p, g->text.n);
            } else if (g->attr->type == COL_V_STRING) {
                weft_json_put_str(b, g->attr->v.s.p, g->attr->v.s.n);
            } else {
                weft_buf_reset(&scratch);
                col_attr_text(&scratch, g->attr);
                if (scratch.failed) b->failed = true;
                weft_json_put_str(b, scratch.p ? scratch.p : "", scratch.len);
            }
        }
        weft_buf_putc(b, '}');
        weft_buf_free(&scratch);
    }
    free(t.v);
}

/* ---- writing: annotations ---- */

typedef struct zann_s {
    uint64_t us;
    const char *p; /* the value: the event's name, or text in the scratch buffer */
    size_t off, n;
    bool built; /* p is scratch.p + off (set once the scratch buffer stops growing) */
} zann_t;

static int zann_cmp(const void *x, const void *y)
{
    const zann_t *a = x, *b = y;
    if (a->us != b->us) return a->us < b->us ? -1 : 1;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    if (c) return c;
    return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

static void write_annotations(weft_buf_t *b, const col_span_t *s)
{
    if (!s->nevents) return;
    zann_t *v = malloc(s->nevents * sizeof(zann_t));
    if (!v) {
        b->failed = true;
        return;
    }
    weft_buf_t scratch;
    weft_buf_init(&scratch, 0);
    for (uint32_t i = 0; i < s->nevents; i++) {
        const col_event_t *e = &s->events[i];
        v[i] = (zann_t){.us = e->time_ns / 1000, .p = e->name.p, .n = e->name.n};
        if (!e->nattrs) continue;
        /* the mapping's "name":{"key":value,...} */
        v[i].built = true;
        v[i].off = scratch.len;
        weft_json_put_str(&scratch, e->name.p, e->name.n);
        weft_buf_puts(&scratch, ":{");
        for (uint32_t k = 0; k < e->nattrs; k++) {
            if (k) weft_buf_putc(&scratch, ',');
            weft_json_put_str(&scratch, e->attrs[k].key.p, e->attrs[k].key.n);
            weft_buf_putc(&scratch, ':');
            col_attr_json(&scratch, &e->attrs[k]);
        }
        weft_buf_putc(&scratch, '}');
        v[i].n = scratch.len - v[i].off;
    }
    if (scratch.failed) {
        b->failed = true;
    } else {
        for (uint32_t i = 0; i < s->nevents; i++)
            if (v[i].built) v[i].p = scratch.p + v[i].off;
        qsort(v, s->nevents, sizeof(zann_t), zann_cmp);
        weft_buf_puts(b, ",\"annotations\":[");
        for (uint32_t i = 0; i < s->nevents; i++) {
            if (i && zann_cmp(&v[i - 1], &v[i]) == 0) continue; /* Zipkin drops duplicates */
            if (i) weft_buf_putc(b, ',');
            weft_buf_puts(b, "{\"timestamp\":");
            weft_buf_put_u64(b, v[i].us);
            weft_buf_puts(b, ",\"value\":");
            weft_json_put_str(b, v[i].p, v[i].n);
            weft_buf_putc(b, '}');
        }
        weft_buf_putc(b, ']');
    }
    weft_buf_free(&scratch);
    free(v);
}

/* ---- writing: endpoints ---- */

static void write_endpoint(weft_buf_t *b, const char *field, const col_endpoint_t *e,
                           col_str_t service)
{
    if (endpoint_empty(e, service)) return;
    char ip[COL_IP_TEXT];
    weft_buf_putc(b, ',');
    weft_json_put_key(b, field);
    weft_buf_putc(b, '{');
    bool first = true;
    if (service.n) {
        weft_buf_puts(b, "\"serviceName\":");
        put_lower(b, service.p, service.n);
        first = false;
    }
    if (e->has_ipv4) {
        weft_buf_puts(b, first ? "\"ipv4\":" : ",\"ipv4\":");
        weft_json_put_str(b, ip, col_ip_text(e->ipv4, 4, ip));
        first = false;
    }
    if (e->has_ipv6) {
        weft_buf_puts(b, first ? "\"ipv6\":" : ",\"ipv6\":");
        weft_json_put_str(b, ip, col_ip_text(e->ipv6, 16, ip));
        first = false;
    }
    if (e->port) {
        weft_buf_puts(b, first ? "\"port\":" : ",\"port\":");
        weft_buf_put_u64(b, e->port);
    }
    weft_buf_putc(b, '}');
}

/* A port attribute's value (an int, or a string of digits) in 1..65535, else 0. */
static uint16_t attr_port(const col_attr_t *a)
{
    if (!a) return 0;
    if (a->type == COL_V_INT) return a->v.i > 0 && a->v.i <= 65535 ? (uint16_t)a->v.i : 0;
    if (a->type != COL_V_STRING || a->v.s.n == 0 || a->v.s.n > 5) return 0;
    uint32_t v = 0;
    for (uint32_t i = 0; i < a->v.s.n; i++) {
        char c = a->v.s.p[i];
        if (c < '0' || c > '9') return 0;
        v = v * 10 + (uint32_t)(c - '0');
    }
    return v <= 65535 ? (uint16_t)v : 0;
}

/* Parses the n bytes at s as an IPv4 or IPv6 literal into e (an IPv4-mapped IPv6 address
 * as IPv4, as Zipkin's Endpoint does). false when it is neither. */
static bool parse_ip(const char *s, size_t n, col_endpoint_t *e)
{
    char z[COL_IP_TEXT];
    if (n == 0 || n >= sizeof(z) || memchr(s, 0, n)) return false;
    memcpy(z, s, n);
    z[n] = 0;
    if (inet_pton(AF_INET, z, e->ipv4) == 1) {
        e->has_ipv4 = true;
        return true;
    }
    uint8_t v6[16];
    if (inet_pton(AF_INET6, z, v6) != 1) return false;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(v6, mapped, 12) == 0) {
        memcpy(e->ipv4, v6 + 12, 4);
        e->has_ipv4 = true;
    } else {
        memcpy(e->ipv6, v6, 16);
        e->has_ipv6 = true;
    }
    return true;
}

/* The remote endpoint of an OTLP CLIENT or PRODUCER span, from its attributes (see the
 * top). */
static void derive_remote(const col_span_t *s, col_endpoint_t *e)
{
    static const char *const service_keys[] = {"peer.service",
                                               "server.address",
                                               "net.peer.name",
                                               "network.peer.address",
                                               "server.socket.domain",
                                               "server.socket.address",
                                               "net.sock.peer.name",
                                               "net.sock.peer.addr",
                                               "peer.hostname",
                                               "peer.address",
                                               "db.name"};
    static const char *const ip_keys[][2] = {{"network.peer.address", "network.peer.port"},
                                             {"server.socket.address", "server.socket.port"},
                                             {"net.sock.peer.addr", "net.sock.peer.port"},
                                             {"net.peer.ip", "net.peer.port"}};
    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < sizeof(service_keys) / sizeof(service_keys[0]); i++) {
        const col_attr_t *a = find_attr(s->attrs, s->nattrs, service_keys[i]);
        if (a && a->type == COL_V_STRING && a->v.s.n) {
            e->service = a->v.s;
            break;
        }
    }
    for (size_t i = 0; i < sizeof(ip_keys) / sizeof(ip_keys[0]); i++) {
        const col_attr_t *a = find_attr(s->attrs, s->nattrs, ip_keys[i][0]);
        if (a && a->type == COL_V_STRING && parse_ip(a->v.s.p, a->v.s.n, e)) {
            e->port = attr_port(find_attr(s->attrs, s->nattrs, ip_keys[i][1]));
            return;
        }
    }
    e->port = attr_port(find_attr(s->attrs, s->nattrs, "server.port"));
    if (!e->port) e->port = attr_port(find_attr(s->attrs, s->nattrs, "net.peer.port"));
}

/* ---- writing: spans ---- */

static const char *zipkin_kind(uint8_t kind)
{
    switch (kind) {
    case COL_KIND_CLIENT:
        return "CLIENT";
    case COL_KIND_SERVER:
        return "SERVER";
    case COL_KIND_PRODUCER:
        return "PRODUCER";
    case COL_KIND_CONSUMER:
        return "CONSUMER";
    default:
        return NULL;
    }
}

void col_zipkin_json_span(weft_buf_t *b, const col_span_t *s)
{
    weft_buf_puts(b, "{\"traceId\":\"");
    if (all_zero(s->trace_id, 8))
        weft_buf_put_hex(b, s->trace_id + 8, 8);
    else
        weft_buf_put_hex(b, s->trace_id, 16);
    weft_buf_putc(b, '"');
    if (!all_zero(s->parent_id, 8) && memcmp(s->parent_id, s->span_id, 8) != 0) {
        weft_buf_puts(b, ",\"parentId\":\"");
        weft_buf_put_hex(b, s->parent_id, 8);
        weft_buf_putc(b, '"');
    }
    weft_buf_puts(b, ",\"id\":\"");
    weft_buf_put_hex(b, s->span_id, 8);
    weft_buf_putc(b, '"');
    const char *kind = zipkin_kind(s->kind);
    if (kind) {
        weft_buf_puts(b, ",\"kind\":\"");
        weft_buf_puts(b, kind);
        weft_buf_putc(b, '"');
    }
    if (s->name.n) {
        weft_buf_puts(b, ",\"name\":");
        put_lower(b, s->name.p, s->name.n);
    }
    uint64_t ts = s->start_ns / 1000;
    if (ts) {
        weft_buf_puts(b, ",\"timestamp\":");
        weft_buf_put_u64(b, ts);
    }
    if (s->end_ns > s->start_ns) {
        uint64_t d = (s->end_ns - s->start_ns) / 1000;
        weft_buf_puts(b, ",\"duration\":");
        weft_buf_put_u64(b, d ? d : 1);
    }
    write_endpoint(b, "localEndpoint", &s->local, s->resource->service);
    const col_endpoint_t *remote = &s->remote;
    col_endpoint_t derived;
    if (endpoint_empty(remote, remote->service) &&
        (s->kind == COL_KIND_CLIENT || s->kind == COL_KIND_PRODUCER)) {
        derive_remote(s, &derived);
        remote = &derived;
    }
    write_endpoint(b, "remoteEndpoint", remote, remote->service);
    write_annotations(b, s);
    write_tags(b, s);
    if (s->debug) weft_buf_puts(b, ",\"debug\":true");
    if (s->shared && s->kind != COL_KIND_CLIENT) weft_buf_puts(b, ",\"shared\":true");
    weft_buf_putc(b, '}');
}

void col_zipkin_json_trace(weft_buf_t *b, col_span_t *spans, size_t n)
{
    if (!col_sort_by_start(spans, n)) {
        b->failed = true;
        return;
    }
    weft_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) weft_buf_putc(b, ',');
        col_zipkin_json_span(b, &spans[i]);
    }
    weft_buf_putc(b, ']');
}

/* ---- reading: POST /api/v2/spans ----
 *
 * The body is zipkin2-api.yaml's ListOfSpans, read with the pull reader (core/json_read.h)
 * straight into the batch. Text that is not JSON, or not an array at the top, refuses the
 * request (WEFT_EINVAL, err "offset N: ..."); a span that is JSON but not a valid Zipkin span
 * is refused alone (col_batch_reject: "span 3: tags.http.path: must be a string") and the
 * others are kept, as OTLP's partial success does. Each field is checked before it is read
 * (its JSON type by a peek), so that a wrong one costs the span and not the reader.
 *
 * Checks, with the words of the refusal (the field, then what is wrong):
 *   traceId    required; 16 or 32 lowercase hex digits (the API's pattern; Zipkin's server
 *              also pads shorter ids, which the API does not allow and weft refuses).
 *   id         required; 16 lowercase hex digits. parentId: the same, or absent/null.
 *   kind       CLIENT, SERVER, PRODUCER or CONSUMER, or absent/null.
 *   name       a string or absent/null.
 *   timestamp  required (see below); duration optional: non-negative integers (JSON numbers
 *              without fraction or exponent), microseconds; timestamp + duration must fit
 *              in nanoseconds (year 2554).
 *   localEndpoint, remoteEndpoint  objects or null: serviceName a string; ipv4 and ipv6 IP
 *              literals (either family in either field, as Zipkin's Endpoint.parseIp takes
 *              them; an IPv4-mapped IPv6 address is kept as IPv4, as Zipkin does); port an
 *              integer 0..65535 (0 is none).
 *   annotations  an array of {timestamp, value}, both required, an integer and a string.
 *   tags       an object whose values are strings.
 *   debug, shared  true, false or null.
 * Unknown members are skipped (Zipkin ignores them), and null is "absent" everywhere
 * (Zipkin's reader skips nulls).
 *
 * A span without a timestamp (or with 0: Zipkin's "unset") is refused: "timestamp: missing
 * (weft stores only spans that have a start time)". Zipkin accepts one (an incomplete span,
 * the late half of a shared span), and shows it at no time; weft's store indexes spans by
 * start time and keeps them by age, so a span of epoch 0 would be both unsearchable and
 * deleted at once. Refusing says so to the client instead of losing it quietly.
 *
 * The mapping, chosen so that col_zipkin_json_span writes the span back as Zipkin would:
 *   traceId → trace_id (a 16-digit id in the low 8 bytes, high bytes zero); id, parentId
 *   (parentId == id → root, as Zipkin undoes it); kind → COL_KIND_*, absent → UNSPECIFIED
 *   (not INTERNAL: Zipkin's "no kind" is also a span of unknown kind); name as sent (case
 *   kept); timestamp/duration → start_ns, end_ns = start + duration (µs × 1000);
 *   localEndpoint.serviceName → the resource's service.name: one col_resource_t per
 *   distinct name per request (and one without attributes for spans that have none), its
 *   only attribute service.name; the scope is one empty col_scope_t; localEndpoint's
 *   addresses and port → span.local; remoteEndpoint → span.remote (its serviceName too);
 *   annotations → events (time, name = value, no attributes), in the order sent;
 *   tags → string attributes, in the order sent; an "error" tag also sets status ERROR with
 *   the tag's value as its message ("" when the value is "" or "true"), the tag kept as it
 *   is (the writer then adds neither error nor otel.status_code: written once, as sent);
 *   debug, shared → span.debug, span.shared (shared cleared on a CLIENT span, as Zipkin
 *   does); flags 0 (Zipkin's JSON has no sampled bit).
 * Then col_span_check applies the limits every format shares.
 *
 * Memory: strings point into the body or the arena (escaped ones). A span's tags and
 * annotations are gathered in scratch arrays reused from span to span and copied into the
 * arena only when the span is kept, so a refused span costs the arena nothing; likewise the
 * spans until the end. The scratch is bounded by the body (every element costs body bytes).
 */

typedef struct zres_slot_s {
    col_str_t service;
    col_resource_t *res;
} zres_slot_t;

typedef struct zdec_s {
    weft_jr_t r;
    weft_arena_t *a;
    col_batch_t *b;
    int fail; /* 0, or WEFT_ENOMEM / WEFT_ELIMIT from an allocation of ours */
    col_attr_t *attrs;
    size_t nattrs, cap_attrs;
    col_event_t *events;
    size_t nevents, cap_events;
    col_span_t *spans;
    size_t nspans, cap_spans;
    zres_slot_t *res; /* open addressing by service name */
    size_t nres, cap_res;
    col_resource_t *no_service;
    col_scope_t *scope;
    char why[224]; /* the refusal of the span being read, "" while it is fine */
} zdec_t;

/* An allocation of ours failed: past the arena's limit (413) or out of memory. */
static void *zalloc(zdec_t *d, size_t n)
{
    void *p = weft_arena_alloc(d->a, n ? n : 1);
    if (!p && !d->fail) d->fail = d->a->used + n > d->a->limit ? WEFT_ELIMIT : WEFT_ENOMEM;
    return p;
}

/* Grows the scratch array *v (of *cap elements of size sz) to hold one more. */
static bool grow(zdec_t *d, void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*v, c * sz);
    if (!p) {
        if (!d->fail) d->fail = WEFT_ENOMEM;
        return false;
    }
    *v = p;
    *cap = c;
    return true;
}

/* Records the first thing wrong with the span being read. */
static void refuse(zdec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(zdec_t *d, const char *fmt, ...)
{
    if (d->why[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof(d->why), fmt, ap);
    va_end(ap);
}

static col_str_t view(weft_jr_str_t s)
{
    /* bodies are far below 4 GiB (the listener's limit); col_span_check bounds strings */
    return (col_str_t){s.p, s.n > UINT32_MAX ? UINT32_MAX : (uint32_t)s.n};
}

/* A key for a message: at most 64 bytes of it (the message has a bounded size). */
#define KEYFMT    "%.*s"
#define KEYARG(k) (int)((k).n > 64 ? 64 : (k).n), (k).p

/* Reads a string member into *out, or null (out untouched): true when it was a string. */
static bool read_str(zdec_t *d, const char *field, weft_jr_str_t *out)
{
    weft_jr_type_t t = weft_jr_peek(&d->r);
    if (t == WEFT_JR_NULL) return weft_jr_null(&d->r), false;
    if (t != WEFT_JR_STRING) {
        refuse(d, "%s: must be a string", field);
        weft_jr_skip(&d->r);
        return false;
    }
    return weft_jr_string(&d->r, out);
}

/* Reads a non-negative integer member (a JSON number without fraction or exponent) of at
 * most max: true with *v, false for null (*present false) or a refusal. */
static bool read_uint(zdec_t *d, const char *field, uint64_t max, uint64_t *v, bool *present)
{
    *present = false;
    weft_jr_type_t t = weft_jr_peek(&d->r);
    if (t == WEFT_JR_NULL) return weft_jr_null(&d->r), false;
    weft_jr_str_t raw;
    if (t != WEFT_JR_NUMBER) {
        refuse(d, "%s: must be a non-negative integer", field);
        weft_jr_skip(&d->r);
        return false;
    }
    if (!weft_jr_raw(&d->r, &raw)) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < raw.n; i++) {
        char c = raw.p[i];
        if (c < '0' || c > '9') {
            refuse(d, "%s: must be a non-negative integer", field);
            return false;
        }
        if (x > (max - (uint64_t)(c - '0')) / 10) {
            refuse(d, "%s: must be at most %llu", field, (unsigned long long)max);
            return false;
        }
        x = x * 10 + (uint64_t)(c - '0');
    }
    *v = x;
    *present = true;
    return true;
}

static bool read_bool(zdec_t *d, const char *field, bool *v)
{
    weft_jr_type_t t = weft_jr_peek(&d->r);
    if (t == WEFT_JR_NULL) return weft_jr_null(&d->r), false;
    if (t != WEFT_JR_TRUE && t != WEFT_JR_FALSE) {
        refuse(d, "%s: must be true or false", field);
        weft_jr_skip(&d->r);
        return false;
    }
    return weft_jr_bool(&d->r, v);
}

/* Lowercase hex digits' values plus one; 0 for every other byte (Zipkin's ids are
 * lowercase, as weft__trace_unhex takes them). A table: the ids of every span, 3 a span,
 * decoded a digit at a time by comparisons cost 3.8% of Zipkin ingest. */
#define H(c, v) [c] = (v) + 1
static const uint8_t hex_lower[256] = {
    H('0', 0), H('1', 1), H('2', 2),  H('3', 3),  H('4', 4),  H('5', 5),  H('6', 6),  H('7', 7),
    H('8', 8), H('9', 9), H('a', 10), H('b', 11), H('c', 12), H('d', 13), H('e', 14), H('f', 15),
};
#undef H

/* n (even) lowercase hex digits into n/2 bytes at out: false when one is not. */
static bool unhex_lower(const char *s, size_t n, uint8_t *out)
{
    unsigned bad = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned hi = hex_lower[(unsigned char)s[i]], lo = hex_lower[(unsigned char)s[i + 1]];
        bad |= (hi - 1) | (lo - 1); /* a 0 entry wraps to all ones: > 15 */
        out[i / 2] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    return bad <= 15;
}

/* n lowercase hex digits into n/2 bytes at out; false (refused) otherwise. */
static bool read_hex(zdec_t *d, const char *field, weft_jr_str_t s, size_t n1, size_t n2,
                     uint8_t *out, size_t outn)
{
    memset(out, 0, outn); /* a 16-digit trace id leaves the high bytes zero */
    if ((s.n != n1 && s.n != n2) || !unhex_lower(s.p, s.n, out + outn - s.n / 2)) {
        if (n1 == n2)
            refuse(d, "%s: must be %zu lowercase hex digits", field, n1);
        else
            refuse(d, "%s: must be %zu or %zu lowercase hex digits", field, n1, n2);
        return false;
    }
    return true;
}

/* An endpoint's field names for messages, whole (built with snprintf for each endpoint,
 * they cost 14% of Zipkin ingest): the endpoint, then its serviceName, ipv4, ipv6, port. */
enum { EP_SELF, EP_SERVICE, EP_IPV4, EP_IPV6, EP_PORT };
static const char *const ep_local[] = {"localEndpoint", "localEndpoint.serviceName",
                                       "localEndpoint.ipv4", "localEndpoint.ipv6",
                                       "localEndpoint.port"};
static const char *const ep_remote[] = {"remoteEndpoint", "remoteEndpoint.serviceName",
                                        "remoteEndpoint.ipv4", "remoteEndpoint.ipv6",
                                        "remoteEndpoint.port"};

static void read_endpoint(zdec_t *d, const char *const names[5], col_endpoint_t *e,
                          col_str_t *service)
{
    const char *field = names[EP_SELF];
    weft_jr_type_t t = weft_jr_peek(&d->r);
    if (t == WEFT_JR_NULL) {
        weft_jr_null(&d->r);
        return;
    }
    if (t != WEFT_JR_OBJECT) {
        refuse(d, "%s: must be an object", field);
        weft_jr_skip(&d->r);
        return;
    }
    weft_jr_object(&d->r);
    weft_jr_str_t key, s;
    while (weft_jr_key(&d->r, &key)) {
        if (weft_jr_key_is(key, "serviceName")) {
            if (read_str(d, names[EP_SERVICE], &s)) *service = view(s);
        } else if (weft_jr_key_is(key, "ipv4") || weft_jr_key_is(key, "ipv6")) {
            const char *name = names[key.p[3] == '4' ? EP_IPV4 : EP_IPV6];
            if (read_str(d, name, &s) && !parse_ip(s.p, s.n, e))
                refuse(d, "%s: not an IP address", name);
        } else if (weft_jr_key_is(key, "port")) {
            uint64_t v;
            bool present;
            if (read_uint(d, names[EP_PORT], 65535, &v, &present)) e->port = (uint16_t)v;
        } else {
            weft_jr_skip(&d->r);
        }
    }
}

static void read_annotations(zdec_t *d)
{
    weft_jr_type_t t = weft_jr_peek(&d->r);
    if (t == WEFT_JR_NULL) {
        weft_jr_null(&d->r);
        return;
    }
    if (t != WEFT_JR_ARRAY) {
        refuse(d, "annotations: must be an array");
        weft_jr_skip(&d->r);
        return;
    }
    weft_jr_array(&d->r);
    for (size_t i = 0; weft_jr_next(&d->r); i++) {
        if (weft_jr_peek(&d->r) != WEFT_JR_OBJECT) {
            refuse(d, "annotations[%zu]: must be an object", i);
            weft_jr_skip(&d->r);
            continue;
        }
        weft_jr_object(&d->r);
        weft_jr_str_t key, value = {0};
        uint64_t ts = 0;
        bool has_ts = false, has_value = false;
        char name[48];
        while (weft_jr_key(&d->r, &key)) {
            if (weft_jr_key_is(key, "timestamp")) {
                snprintf(name, sizeof(name), "annotations[%zu].timestamp", i);
                read_uint(d, name, UINT64_MAX / 1000, &ts, &has_ts);
            } else if (weft_jr_key_is(key, "value")) {
                snprintf(name, sizeof(name), "annotations[%zu].value", i);
                has_value = read_str(d, name, &value);
            } else {
                weft_jr_skip(&d->r);
            }
        }
        if (!has_ts) refuse(d, "annotations[%zu].timestamp: missing", i);
        if (!has_value) refuse(d, "annotations[%zu].value: missing", i);
        if (d->why[0] || d->r.err) continue;
        if (!grow(d, (void **)&d->events, &d->cap_events, d->nevents, sizeof(col_event_t))) return;
        d->events[d->nevents++] = (col_event_t){.time_ns = ts * 1000, .name = view(value)};
    }
}

/* Tags as senders write them, {"k":"v",...} with no blanks and no escapes, read straight:
 * true. Anything else leaves the reader and the span's tags as they were (false) for
 * read_tags' member loop, which reads and judges it (the same tags, the same messages). */
static bool tags_fast(zdec_t *d)
{
    weft_jr_t *r = &d->r;
    const char *at = r->p;
    size_t n0 = d->nattrs;
    if (d->why[0] || !weft_jr_lit(r, "{", 1)) return false;
    if (weft_jr_lit(r, "}", 1)) return true;
    for (;;) {
        weft_jr_str_t key, value;
        if (!weft_jr_plain_string(r, &key) || !weft_jr_lit(r, ":", 1) ||
            !weft_jr_plain_string(r, &value))
            break;
        if (!grow(d, (void **)&d->attrs, &d->cap_attrs, d->nattrs, sizeof(col_attr_t)))
            return true; /* d->fail: the request is refused as out of memory */
        d->attrs[d->nattrs++] =
            (col_attr_t){.key = view(key), .type = COL_V_STRING, .v.s = view(value)};
        if (weft_jr_lit(r, "}", 1)) return true;
        if (!weft_jr_lit(r, ",", 1)) break;
    }
    r->p = at;
    d->nattrs = n0;
    return false;
}

static void read_tags(zdec_t *d)
{
    if (tags_fast(d)) return;
    weft_jr_type_t t = weft_jr_peek(&d->r);
    if (t == WEFT_JR_NULL) {
        weft_jr_null(&d->r);
        return;
    }
    if (t != WEFT_JR_OBJECT) {
        refuse(d, "tags: must be an object");
        weft_jr_skip(&d->r);
        return;
    }
    weft_jr_object(&d->r);
    weft_jr_str_t key, value;
    while (weft_jr_key(&d->r, &key)) {
        if (weft_jr_peek(&d->r) != WEFT_JR_STRING) {
            refuse(d, "tags." KEYFMT ": must be a string", KEYARG(key));
            weft_jr_skip(&d->r);
            continue;
        }
        if (!weft_jr_string(&d->r, &value) || d->why[0]) continue;
        if (!grow(d, (void **)&d->attrs, &d->cap_attrs, d->nattrs, sizeof(col_attr_t))) return;
        d->attrs[d->nattrs++] =
            (col_attr_t){.key = view(key), .type = COL_V_STRING, .v.s = view(value)};
    }
}

static uint64_t str_hash(col_str_t s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 0x100000001b3ull;
    return h;
}

/* The request's resource for a local service name (made on first use). */
static const col_resource_t *resource_for(zdec_t *d, col_str_t service)
{
    if (service.n == 0) {
        if (!d->no_service && (d->no_service = zalloc(d, sizeof(col_resource_t))))
            *d->no_service = (col_resource_t){.service = {"", 0}};
        return d->no_service;
    }
    if (2 * (d->nres + 1) > d->cap_res) { /* keep the table at most half full */
        size_t cap = d->cap_res ? d->cap_res * 2 : 16;
        zres_slot_t *t = calloc(cap, sizeof(*t));
        if (!t) {
            if (!d->fail) d->fail = WEFT_ENOMEM;
            return NULL;
        }
        for (size_t i = 0; i < d->cap_res; i++) {
            if (!d->res[i].res) continue;
            size_t k = str_hash(d->res[i].service) & (cap - 1);
            while (t[k].res) k = (k + 1) & (cap - 1);
            t[k] = d->res[i];
        }
        free(d->res);
        d->res = t;
        d->cap_res = cap;
    }
    size_t k = str_hash(service) & (d->cap_res - 1);
    for (; d->res[k].res; k = (k + 1) & (d->cap_res - 1))
        if (col_str_eq(d->res[k].service, service.p, service.n)) return d->res[k].res;
    col_resource_t *r = zalloc(d, sizeof(col_resource_t) + sizeof(col_attr_t));
    if (!r) return NULL;
    col_attr_t *attr = (col_attr_t *)(r + 1);
    *attr = (col_attr_t){.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = service};
    *r = (col_resource_t){.service = service, .attrs = attr, .nattrs = 1};
    d->res[k] = (zres_slot_t){.service = service, .res = r};
    d->nres++;
    return r;
}

/* Reads spans[index] (the reader is at its value) and keeps or refuses it. */
static void read_span(zdec_t *d, size_t index)
{
    d->why[0] = 0;
    d->nattrs = d->nevents = 0;
    if (weft_jr_peek(&d->r) != WEFT_JR_OBJECT) {
        weft_jr_skip(&d->r);
        if (!d->r.err) col_batch_reject(d->b, index, "must be a JSON object (a Zipkin v2 span)");
        return;
    }
    col_span_t s = {0};
    col_str_t service = {"", 0};
    bool has_trace = false, has_id = false, has_ts = false, present;
    uint64_t ts = 0, dur = 0;
    weft_jr_str_t key, v;
    weft_jr_object(&d->r);
    while (weft_jr_key(&d->r, &key)) {
        if (weft_jr_key_is(key, "traceId")) {
            if (read_str(d, "traceId", &v))
                has_trace = read_hex(d, "traceId", v, 16, 32, s.trace_id, 16);
        } else if (weft_jr_key_is(key, "id")) {
            if (read_str(d, "id", &v)) has_id = read_hex(d, "id", v, 16, 16, s.span_id, 8);
        } else if (weft_jr_key_is(key, "parentId")) {
            if (read_str(d, "parentId", &v)) read_hex(d, "parentId", v, 16, 16, s.parent_id, 8);
        } else if (weft_jr_key_is(key, "kind")) {
            if (!read_str(d, "kind", &v)) continue;
            static const struct {
                const char *name;
                uint8_t kind;
            } kinds[] = {{"CLIENT", COL_KIND_CLIENT},
                         {"SERVER", COL_KIND_SERVER},
                         {"PRODUCER", COL_KIND_PRODUCER},
                         {"CONSUMER", COL_KIND_CONSUMER}};
            size_t i = 0;
            while (i < 4 && !weft_jr_key_is(v, kinds[i].name)) i++;
            if (i < 4)
                s.kind = kinds[i].kind;
            else
                refuse(d, "kind: must be CLIENT, SERVER, PRODUCER or CONSUMER");
        } else if (weft_jr_key_is(key, "name")) {
            if (read_str(d, "name", &v)) s.name = view(v);
        } else if (weft_jr_key_is(key, "timestamp")) {
            read_uint(d, "timestamp", UINT64_MAX / 1000, &ts, &has_ts);
        } else if (weft_jr_key_is(key, "duration")) {
            read_uint(d, "duration", UINT64_MAX / 1000, &dur, &present);
        } else if (weft_jr_key_is(key, "localEndpoint")) {
            read_endpoint(d, ep_local, &s.local, &service);
        } else if (weft_jr_key_is(key, "remoteEndpoint")) {
            read_endpoint(d, ep_remote, &s.remote, &s.remote.service);
        } else if (weft_jr_key_is(key, "annotations")) {
            read_annotations(d);
        } else if (weft_jr_key_is(key, "tags")) {
            read_tags(d);
        } else if (weft_jr_key_is(key, "debug")) {
            read_bool(d, "debug", &s.debug);
        } else if (weft_jr_key_is(key, "shared")) {
            read_bool(d, "shared", &s.shared);
        } else {
            weft_jr_skip(&d->r);
        }
    }
    if (d->r.err || d->fail) return;
    if (!has_trace) refuse(d, "traceId: missing");
    if (!has_id) refuse(d, "id: missing");
    if (!has_ts || ts == 0)
        refuse(d, "timestamp: missing (weft stores only spans that have a "
                  "start time)");
    if (ts + dur > UINT64_MAX / 1000) refuse(d, "timestamp + duration: too large");
    if (d->why[0]) {
        col_batch_reject(d->b, index, d->why);
        return;
    }
    s.start_ns = ts * 1000;
    s.end_ns = (ts + dur) * 1000;
    if (memcmp(s.parent_id, s.span_id, 8) == 0) memset(s.parent_id, 0, 8);
    if (s.kind == COL_KIND_CLIENT) s.shared = false;
    s.attrs = d->attrs;
    s.nattrs = (uint32_t)d->nattrs;
    s.events = d->events;
    s.nevents = (uint32_t)d->nevents;
    const col_attr_t *err = find_attr(d->attrs, s.nattrs, "error");
    if (err) {
        s.status = COL_STATUS_ERROR;
        if (!col_str_eq(err->v.s, "true", 4)) s.status_message = err->v.s;
    }
    /* col_span_check sees the resource the span will have, made only once it is kept */
    col_scope_t empty_scope = {0};
    col_attr_t probe_attr = {.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = service};
    col_resource_t probe = {.service = service, .attrs = &probe_attr, .nattrs = service.n != 0};
    s.resource = &probe;
    s.scope = &empty_scope;
    const char *why = col_span_check(&s);
    if (why) {
        col_batch_reject(d->b, index, why);
        return;
    }
    if (!(s.resource = resource_for(d, service))) return;
    s.scope = d->scope;
    if (s.nattrs) {
        if (!(s.attrs = zalloc(d, s.nattrs * sizeof(col_attr_t)))) return;
        memcpy(s.attrs, d->attrs, s.nattrs * sizeof(col_attr_t));
    } else {
        s.attrs = NULL;
    }
    if (s.nevents) {
        if (!(s.events = zalloc(d, s.nevents * sizeof(col_event_t)))) return;
        memcpy(s.events, d->events, s.nevents * sizeof(col_event_t));
    } else {
        s.events = NULL;
    }
    if (!grow(d, (void **)&d->spans, &d->cap_spans, d->nspans, sizeof(col_span_t))) return;
    d->spans[d->nspans++] = s;
}

int col_zipkin_json_decode(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                           size_t errlen)
{
    memset(b, 0, sizeof(*b));
    zdec_t d = {.a = a, .b = b};
    weft_jr_init(&d.r, p, n, a);
    int rc = 0;
    d.scope = zalloc(&d, sizeof(col_scope_t));
    if (d.scope) *d.scope = (col_scope_t){0};
    weft_jr_type_t top = weft_jr_peek(&d.r);
    if (!d.r.err && top != WEFT_JR_ARRAY) {
        snprintf(err, errlen, "offset %zu: expected a JSON array of Zipkin v2 spans",
                 (size_t)(d.r.p - p));
        rc = WEFT_EINVAL;
        goto out;
    }
    weft_jr_array(&d.r);
    for (size_t i = 0; !d.fail && weft_jr_next(&d.r); i++) {
        if (i == COL_MAX_BATCH_SPANS) {
            snprintf(err, errlen, "more than %u spans in one request", COL_MAX_BATCH_SPANS);
            rc = WEFT_ELIMIT;
            goto out;
        }
        read_span(&d, i);
    }
    if (!d.fail) weft_jr_end(&d.r);
    if (!d.fail && !d.r.err && d.nspans) {
        if ((b->spans = zalloc(&d, d.nspans * sizeof(col_span_t)))) {
            memcpy(b->spans, d.spans, d.nspans * sizeof(col_span_t));
            b->n = d.nspans;
        }
    }
    /* our allocation failing stops a span half read, which the reader may then take for
     * bad JSON: that failure is the one to report */
    if (d.fail) {
        rc = d.fail;
        snprintf(err, errlen, "%s",
                 rc == WEFT_ELIMIT ? "the request needs more memory than allowed"
                                   : "out of memory");
    } else if (d.r.err) {
        rc = d.r.err_code ? d.r.err_code : WEFT_EINVAL;
        if (rc == WEFT_EINVAL)
            snprintf(err, errlen, "offset %zu: invalid JSON: %s", d.r.err_off, d.r.err);
        else if (rc == WEFT_ELIMIT)
            snprintf(err, errlen, "offset %zu: %s", d.r.err_off, d.r.err);
        else
            snprintf(err, errlen, "out of memory");
    }
out:
    if (rc) memset(b, 0, sizeof(*b));
    free(d.attrs);
    free(d.events);
    free(d.spans);
    free(d.res);
    return rc;
}
