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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/encode_util.h"
#include "collector/decode.h"
#include "collector/encode.h"
#include "core/json_write.h"

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
    t->v[t->n] = (ztag_t){.key = {key, (uint32_t)strlen(key)}, .text = text, .rank = 1,
                          .seq = t->n};
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
    static const char *const service_keys[] = {
        "peer.service",          "server.address",     "net.peer.name",
        "network.peer.address",  "server.socket.domain", "server.socket.address",
        "net.sock.peer.name",    "net.sock.peer.addr", "peer.hostname",
        "peer.address",          "db.name"};
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
