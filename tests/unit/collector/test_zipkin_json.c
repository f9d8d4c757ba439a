/*
 * test_zipkin_json.c - Zipkin v2 JSON (collector/zipkin_json.c, encode_util.c).
 *
 * Writing: hand-built spans against the exact text Zipkin's server would return (field
 * order, omissions, lowercase names, 16-digit trace ids, sorted tags and annotations), the
 * OpenTelemetry mapping for spans that came as OTLP (status, scope, dropped counts,
 * resource attributes, remote endpoint from attributes, events with attributes), and the
 * value texts (arrays, doubles, bytes, addresses). Every output is re-parsed with jansson.
 * Reading: Zipkin-form bodies decode and encode back byte for byte; what Zipkin's server
 * normalises is normalised the same way; the batch's resources, status and events; every
 * refusal with its words, per span and for the whole request; the limits (span count,
 * arena). The module is compiled in with its allocations failing at each step in turn, to
 * check that out of memory is reported, never a crash or a leak.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "fault_alloc.h"

#include "fault_alloc_begin.h"
#include "../../../src/collector/encode_util.c"
#include "../../../src/collector/zipkin_json.c"
#include "../../../src/core/arena.c"
#include "../../../src/core/buf.c"
#include "fault_alloc_end.h"

/* ---- helpers ---- */

static void assert_json(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("not JSON (%s at %d): %.*s", e.text, e.position, (int)n, s);
    json_decref(j);
}

/* One span as Zipkin JSON (checked to be JSON); free() it. */
static char *zspan(const col_span_t *s)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_zipkin_json_span(&b, s);
    size_t n;
    char *out = weft_buf_take(&b, &n);
    assert_non_null(out);
    assert_json(out, n);
    return out;
}

static void assert_span_json(const col_span_t *s, const char *want)
{
    char *got = zspan(s);
    assert_string_equal(got, want);
    free(got);
}

static col_resource_t no_resource;
static col_scope_t no_scope;

static col_span_t base_span(void)
{
    col_span_t s;
    memset(&s, 0, sizeof(s));
    for (int i = 0; i < 16; i++) s.trace_id[i] = (uint8_t)(i + 1);
    for (int i = 0; i < 8; i++) s.span_id[i] = (uint8_t)(0xa1 + i);
    s.start_ns = 1700000000123456789ull;
    s.end_ns = s.start_ns + 2500;
    s.resource = &no_resource;
    s.scope = &no_scope;
    return s;
}

/* clang-format off */
#define ATTR_S(k, val)    {.key = COL_STR(k), .type = COL_V_STRING, .v.s = COL_STR(val)}
#define ATTR_I(k, x)      {.key = COL_STR(k), .type = COL_V_INT, .v.i = (x)}
#define ATTR_B(k, x)      {.key = COL_STR(k), .type = COL_V_BOOL, .v.b = (x)}
#define ATTR_D(k, x)      {.key = COL_STR(k), .type = COL_V_DOUBLE, .v.d = (x)}
#define ATTR_T(k, t, val) {.key = COL_STR(k), .type = (t), .v.s = COL_STR(val)}
/* clang-format on */

/* ---- writing ---- */

/* A span as an OTLP client sends it: every mapping rule at once. */
static void test_otlp_span(void **state)
{
    col_attr_t res_attrs[] = {ATTR_S("service.name", "Frontend"), ATTR_S("host.name", "h1"),
                              ATTR_S("telemetry.sdk.language", "c")};
    col_resource_t res = {.service = COL_STR("Frontend"), .attrs = res_attrs, .nattrs = 3};
    col_scope_t scope = {.name = COL_STR("weft"), .version = COL_STR("1.0")};
    col_attr_t attrs[] = {
        ATTR_S("http.method", "GET"),
        ATTR_I("http.status_code", 500),
        ATTR_B("retry", true),
        ATTR_D("ratio", 0.5),
        ATTR_T("blob", COL_V_BYTES, "\x01\x02\x03"),
        ATTR_T("list", COL_V_ARRAY, "[{\"stringValue\":\"a\"},{\"intValue\":\"5\"}]"),
        ATTR_S("peer.service", "Users-DB"),
        ATTR_S("network.peer.address", "10.0.0.7"),
        ATTR_I("network.peer.port", 5432),
    };
    col_attr_t ev_attrs[] = {ATTR_S("exception.message", "x\"y"), ATTR_I("count", 2)};
    col_span_t s = base_span();
    col_event_t events[] = {
        {.time_ns = s.start_ns + 2000, .name = COL_STR("ws")},
        {.time_ns = s.start_ns, .name = COL_STR("exception"), .attrs = ev_attrs, .nattrs = 2},
    };
    for (int i = 0; i < 8; i++) s.parent_id[i] = (uint8_t)(0xb1 + i);
    s.kind = COL_KIND_CLIENT;
    s.name = COL_STR("GET /Users");
    s.status = COL_STATUS_ERROR;
    s.status_message = COL_STR("boom");
    s.resource = &res;
    s.scope = &scope;
    s.attrs = attrs;
    s.nattrs = sizeof(attrs) / sizeof(attrs[0]);
    s.events = events;
    s.nevents = 2;
    s.dropped_attrs = 3;
    s.trace_state = COL_STR("k=v"); /* no Zipkin field: not written */
    assert_span_json(
        &s, "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"parentId\":\"b1b2b3b4b5b6b7b8\","
            "\"id\":\"a1a2a3a4a5a6a7a8\",\"kind\":\"CLIENT\",\"name\":\"get /users\","
            "\"timestamp\":1700000000123456,\"duration\":2,"
            "\"localEndpoint\":{\"serviceName\":\"frontend\"},"
            "\"remoteEndpoint\":{\"serviceName\":\"users-db\",\"ipv4\":\"10.0.0.7\",\"port\":5432},"
            "\"annotations\":[{\"timestamp\":1700000000123456,\"value\":"
            "\"\\\"exception\\\":{\\\"exception.message\\\":\\\"x\\\\\\\"y\\\",\\\"count\\\":2}\"},"
            "{\"timestamp\":1700000000123458,\"value\":\"ws\"}],"
            "\"tags\":{\"blob\":\"AQID\",\"error\":\"boom\",\"host.name\":\"h1\","
            "\"http.method\":\"GET\",\"http.status_code\":\"500\",\"list\":\"[\\\"a\\\",5]\","
            "\"network.peer.address\":\"10.0.0.7\",\"network.peer.port\":\"5432\","
            "\"otel.dropped_attributes_count\":\"3\",\"otel.library.name\":\"weft\","
            "\"otel.library.version\":\"1.0\",\"otel.scope.name\":\"weft\","
            "\"otel.scope.version\":\"1.0\",\"otel.status_code\":\"ERROR\","
            "\"peer.service\":\"Users-DB\",\"ratio\":\"0.5\",\"retry\":\"true\","
            "\"telemetry.sdk.language\":\"c\"}}");
}

/* The least a span can have: no parent, kind, name, endpoints, tags; a 64-bit trace id. */
static void test_minimal_span(void **state)
{
    col_span_t s = base_span();
    memset(s.trace_id, 0, 8);
    s.end_ns = s.start_ns; /* zero duration: left out, as Zipkin leaves out an unknown one */
    s.kind = COL_KIND_INTERNAL;
    assert_span_json(&s, "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a7a8\","
                         "\"timestamp\":1700000000123456}");
    s.end_ns = s.start_ns + 1; /* 1 ns: at least 1 µs, it took some time */
    s.kind = COL_KIND_UNSPECIFIED;
    assert_span_json(&s, "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a7a8\","
                         "\"timestamp\":1700000000123456,\"duration\":1}");
    s.end_ns = s.start_ns - 1; /* end before start (col_span_check refuses it): no duration */
    memcpy(s.parent_id, s.span_id, 8); /* parent == id: Zipkin writes a root */
    s.start_ns = 999;                  /* below 1 µs: timestamp 0, left out */
    s.end_ns = 999;
    assert_span_json(&s, "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a7a8\"}");
}

static void test_kinds_flags_endpoints(void **state)
{
    static const struct {
        uint8_t kind;
        const char *name;
    } kinds[] = {{COL_KIND_SERVER, "SERVER"},
                 {COL_KIND_PRODUCER, "PRODUCER"},
                 {COL_KIND_CONSUMER, "CONSUMER"}};
    col_span_t s = base_span();
    s.end_ns = s.start_ns;
    s.debug = true;
    s.shared = true;
    s.local.has_ipv4 = true;
    memcpy(s.local.ipv4, "\x0a\x00\x00\x01", 4);
    s.local.has_ipv6 = true;
    memcpy(s.local.ipv6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    s.local.port = 8080;
    s.remote.has_ipv6 = true;
    memcpy(s.remote.ipv6, "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x02", 16);
    for (size_t i = 0; i < 3; i++) {
        s.kind = kinds[i].kind;
        char want[512];
        snprintf(want, sizeof(want),
                 "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a7a8\","
                 "\"kind\":\"%s\",\"timestamp\":1700000000123456,"
                 "\"localEndpoint\":{\"ipv4\":\"10.0.0.1\",\"ipv6\":\"2001:db8::1\","
                 "\"port\":8080},\"remoteEndpoint\":{\"ipv6\":\"fe80::2\"},"
                 "\"debug\":true,\"shared\":true}",
                 kinds[i].name);
        assert_span_json(&s, want);
    }
    /* shared is a server's flag: Zipkin drops it on a CLIENT span */
    s.kind = COL_KIND_CLIENT;
    s.local = (col_endpoint_t){0};
    assert_span_json(&s, "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                         "\"id\":\"a1a2a3a4a5a6a7a8\",\"kind\":\"CLIENT\","
                         "\"timestamp\":1700000000123456,\"remoteEndpoint\":{\"ipv6\":\"fe80::2\"},"
                         "\"debug\":true}");
}

/* Status: OK, ERROR without message, an "error" attribute (Zipkin's own tag), a false one. */
static void test_status_tags(void **state)
{
    col_span_t s = base_span();
    s.end_ns = s.start_ns;
    memset(s.trace_id, 0, 8);
    const char *head = "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a7a8\","
                       "\"timestamp\":1700000000123456,";
    char want[512];

    s.status = COL_STATUS_OK;
    snprintf(want, sizeof(want), "%s\"tags\":{\"otel.status_code\":\"OK\"}}", head);
    assert_span_json(&s, want);

    s.status = COL_STATUS_ERROR;
    snprintf(want, sizeof(want), "%s\"tags\":{\"error\":\"\",\"otel.status_code\":\"ERROR\"}}",
             head);
    assert_span_json(&s, want);

    /* an error attribute is the error tag, once; no otel.status_code is added for it */
    col_attr_t zerr[] = {ATTR_S("error", "timeout")};
    s.attrs = zerr;
    s.nattrs = 1;
    s.status_message = COL_STR("timeout");
    snprintf(want, sizeof(want), "%s\"tags\":{\"error\":\"timeout\"}}", head);
    assert_span_json(&s, want);

    /* error=false on a span that did not fail: dropped (Zipkin would call it failed) */
    col_attr_t ok_err[] = {ATTR_B("error", false), ATTR_S("a", "1")};
    s.attrs = ok_err;
    s.nattrs = 2;
    s.status = COL_STATUS_UNSET;
    snprintf(want, sizeof(want), "%s\"tags\":{\"a\":\"1\"}}", head);
    assert_span_json(&s, want);
    col_attr_t ok_err2[] = {ATTR_S("error", "false")};
    s.attrs = ok_err2;
    s.nattrs = 1;
    snprintf(want, sizeof(want), "%s\"id\":\"a1a2a3a4a5a6a7a8\",\"timestamp\":1700000000123456}",
             "{\"traceId\":\"090a0b0c0d0e0f10\",");
    assert_span_json(&s, want);

    /* a span attribute wins over an added tag and an added tag over a resource attribute;
     * of two attributes with one key, the later */
    col_attr_t dup[] = {ATTR_S("k", "first"), ATTR_S("otel.status_code", "mine"),
                        ATTR_S("k", "second")};
    col_attr_t rattrs[] = {ATTR_S("otel.scope.name", "res"), ATTR_S("r", "x")};
    col_resource_t res = {.attrs = rattrs, .nattrs = 2};
    col_attr_t sattrs[] = {ATTR_S("r", "scope"), ATTR_S("s", "y")};
    col_scope_t scope = {.name = COL_STR("sc"), .attrs = sattrs, .nattrs = 2};
    s.attrs = dup;
    s.nattrs = 3;
    s.status = COL_STATUS_OK;
    s.resource = &res;
    s.scope = &scope;
    s.dropped_events = 4;
    s.dropped_links = 5;
    snprintf(want, sizeof(want),
             "%s\"tags\":{\"k\":\"second\",\"otel.dropped_events_count\":\"4\","
             "\"otel.dropped_links_count\":\"5\",\"otel.library.name\":\"sc\","
             "\"otel.scope.name\":\"sc\",\"otel.status_code\":\"mine\",\"r\":\"x\","
             "\"s\":\"y\"}}",
             head);
    assert_span_json(&s, want);
}

/* The remote endpoint of an OTLP CLIENT/PRODUCER span, from its attributes. */
static void test_remote_from_attributes(void **state)
{
    col_span_t s = base_span();
    s.end_ns = s.start_ns;
    s.kind = COL_KIND_PRODUCER;
    const struct {
        col_attr_t attrs[3];
        uint32_t n;
        const char *remote; /* NULL: none */
    } cases[] = {
        {{ATTR_S("server.address", "Kafka"), ATTR_I("server.port", 9092)},
         2,
         "{\"serviceName\":\"kafka\",\"port\":9092}"},
        {{ATTR_S("net.peer.name", "db"), ATTR_S("net.peer.ip", "2001:DB8::7"),
          ATTR_S("net.peer.port", "5432")},
         3,
         "{\"serviceName\":\"db\",\"ipv6\":\"2001:db8::7\",\"port\":5432}"},
        {{ATTR_S("network.peer.address", "::ffff:10.1.2.3"), ATTR_S("network.peer.port", "x")},
         2,
         "{\"serviceName\":\"::ffff:10.1.2.3\",\"ipv4\":\"10.1.2.3\"}"},
        {{ATTR_S("peer.hostname", "h"), ATTR_S("db.name", "users"), ATTR_I("net.peer.port", 0)},
         3,
         "{\"serviceName\":\"h\"}"},
        {{ATTR_I("peer.service", 7), ATTR_S("db.name", "users"),
          ATTR_S("net.sock.peer.addr", "not-an-ip")},
         3,
         "{\"serviceName\":\"not-an-ip\"}"}, /* rank 8: before db.name, an IP or not */
        {{ATTR_S("unrelated", "x")}, 1, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s.attrs = (col_attr_t *)cases[i].attrs;
        s.nattrs = cases[i].n;
        char *got = zspan(&s);
        const char *r = strstr(got, "\"remoteEndpoint\":");
        if (!cases[i].remote) {
            assert_null(r);
        } else {
            assert_non_null(r);
            r += strlen("\"remoteEndpoint\":");
            assert_memory_equal(r, cases[i].remote, strlen(cases[i].remote));
        }
        free(got);
    }
    /* only for CLIENT and PRODUCER, and never over an endpoint the span has */
    s.attrs = (col_attr_t *)cases[0].attrs;
    s.nattrs = 2;
    s.kind = COL_KIND_SERVER;
    char *got = zspan(&s);
    assert_null(strstr(got, "remoteEndpoint"));
    free(got);
    s.kind = COL_KIND_CLIENT;
    s.remote.service = COL_STR("Given");
    got = zspan(&s);
    assert_non_null(strstr(got, "\"remoteEndpoint\":{\"serviceName\":\"given\"}"));
    free(got);
}

static void assert_text(const col_attr_t *a, const char *text, const char *json)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_attr_text(&b, a);
    assert_false(b.failed);
    assert_int_equal(b.len, strlen(text));
    assert_memory_equal(b.len ? b.p : "", text, b.len);
    weft_buf_reset(&b);
    col_attr_json(&b, a);
    assert_false(b.failed);
    assert_string_equal(b.p, json);
    assert_json(b.p, b.len);
    weft_buf_free(&b);
}

static void test_value_text(void **state)
{
    col_attr_t a = ATTR_S("k", "plain \"q\"");
    assert_text(&a, "plain \"q\"", "\"plain \\\"q\\\"\"");
    a = (col_attr_t)ATTR_B("k", false);
    assert_text(&a, "false", "false");
    a = (col_attr_t)ATTR_I("k", INT64_MIN);
    assert_text(&a, "-9223372036854775808", "-9223372036854775808");
    a = (col_attr_t)ATTR_D("k", 1.0);
    assert_text(&a, "1", "1");
    a = (col_attr_t)ATTR_D("k", 1e300);
    assert_text(&a, "1e+300", "1e+300");
    a = (col_attr_t)ATTR_D("k", -0.1);
    assert_text(&a, "-0.1", "-0.1");
    a = (col_attr_t)ATTR_D("k", NAN);
    assert_text(&a, "NaN", "\"NaN\"");
    a = (col_attr_t)ATTR_D("k", -INFINITY);
    assert_text(&a, "-Infinity", "\"-Infinity\"");
    a = (col_attr_t)ATTR_T("k", COL_V_BYTES, "");
    assert_text(&a, "", "\"\"");
    a = (col_attr_t)ATTR_T("k", COL_V_BYTES, "\xff");
    assert_text(&a, "/w==", "\"/w==\"");
    a = (col_attr_t)ATTR_T("k", COL_V_BYTES, "\xfb\xff");
    assert_text(&a, "+/8=", "\"+/8=\"");
    a = (col_attr_t)ATTR_T("k", COL_V_BYTES, "weft!");
    assert_text(&a, "d2VmdCE=", "\"d2VmdCE=\"");
    a = (col_attr_t){.key = COL_STR("k"), .type = COL_V_EMPTY};
    assert_text(&a, "", "null");
    a = (col_attr_t)ATTR_T(
        "k", COL_V_ARRAY,
        "[{\"stringValue\":\"a\"},{\"boolValue\":true},{\"intValue\":\"-12\"},{\"intValue\":7},"
        "{\"intValue\":\"007\"},{\"doubleValue\":2.5},{\"doubleValue\":\"NaN\"},"
        "{\"bytesValue\":\"AQI=\"},{},{\"arrayValue\":{\"values\":[{\"stringValue\":\"n\"}]}},"
        "{\"arrayValue\":{}},{\"kvlistValue\":{\"values\":[{\"key\":\"x\",\"value\":"
        "{\"intValue\":\"1\"}}]}}]");
    assert_text(&a, "[\"a\",true,-12,7,\"007\",2.5,\"NaN\",\"AQI=\",null,[\"n\"],[],{\"x\":1}]",
                "[\"a\",true,-12,7,\"007\",2.5,\"NaN\",\"AQI=\",null,[\"n\"],[],{\"x\":1}]");
    a = (col_attr_t)ATTR_T("k", COL_V_KVLIST,
                           "[{\"key\":\"a\",\"value\":{\"stringValue\":\"b\"}},{\"key\":\"c\"}]");
    assert_text(&a, "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\",\"c\":null}");
    /* text that does not parse (weft's decoders never make it) is shown as it is */
    a = (col_attr_t)ATTR_T("k", COL_V_ARRAY, "[broken");
    assert_text(&a, "[broken", "\"[broken\"");
}

static void test_ip_text(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"::", "::"},
        {"::1", "::1"},
        {"1::", "1::"},
        {"2001:db8::1", "2001:db8::1"},
        {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"}, /* one zero group: not "::" */
        {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},          /* the longest run */
        {"1:0:0:2:0:0:3:4", "1::2:0:0:3:4"},              /* the first of equal runs */
        {"ABCD:EF01:2345:6789:abcd:ef01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"},
        {"fe80:0:0:0:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf"},
    };
    char out[COL_IP_TEXT];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t ip[16];
        assert_int_equal(inet_pton(AF_INET6, cases[i].in, ip), 1);
        size_t n = col_ip_text(ip, 16, out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    const uint8_t v4[4] = {0, 10, 100, 255};
    assert_int_equal(col_ip_text(v4, 4, out), 12);
    assert_string_equal(out, "0.10.100.255");
    const uint8_t max6[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(col_ip_text(max6, 16, out), 39);
}

/* A trace: sorted by start time, ties in the order given; an empty trace is []. */
static void test_trace_order(void **state)
{
    col_span_t spans[4];
    for (int i = 0; i < 4; i++) {
        spans[i] = base_span();
        memset(spans[i].trace_id, 0, 8);
        spans[i].span_id[7] = (uint8_t)i;
    }
    spans[0].start_ns += 5000000;
    spans[3].start_ns -= 5000000;
    for (int i = 0; i < 4; i++) spans[i].end_ns = spans[i].start_ns;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_zipkin_json_trace(&b, spans, 4);
    assert_false(b.failed);
    assert_json(b.p, b.len);
    const char *want = "[{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a703\","
                       "\"timestamp\":1700000000118456},"
                       "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a701\","
                       "\"timestamp\":1700000000123456},"
                       "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a702\","
                       "\"timestamp\":1700000000123456},"
                       "{\"traceId\":\"090a0b0c0d0e0f10\",\"id\":\"a1a2a3a4a5a6a700\","
                       "\"timestamp\":1700000000128456}]";
    assert_string_equal(b.p, want);
    assert_int_equal(spans[0].span_id[7], 3); /* the array was reordered */
    weft_buf_reset(&b);
    col_zipkin_json_trace(&b, spans, 0);
    assert_string_equal(b.p, "[]");
    weft_buf_free(&b);
}

/* ---- reading ---- */

static weft_arena_t arena;
static col_batch_t batch;
static char err[256];

static int decode(const char *body)
{
    weft_arena_reset(&arena);
    memset(&batch, 0xa5, sizeof(batch)); /* the decoder must set every field */
    err[0] = 0;
    return col_zipkin_json_decode(body, strlen(body), &arena, &batch, err, sizeof(err));
}

/* The batch's spans written back as a JSON array (not sorted: in decoded order). */
static char *encode_batch(void)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_putc(&b, '[');
    for (size_t i = 0; i < batch.n; i++) {
        if (i) weft_buf_putc(&b, ',');
        col_zipkin_json_span(&b, &batch.spans[i]);
    }
    weft_buf_putc(&b, ']');
    size_t n;
    char *out = weft_buf_take(&b, &n);
    assert_non_null(out);
    assert_json(out, n);
    return out;
}

static void assert_round_trip(const char *body)
{
    assert_int_equal(decode(body), 0);
    assert_int_equal(batch.rejected, 0);
    char *out = encode_batch();
    assert_string_equal(out, body);
    free(out);
}

/* Spans in the form Zipkin returns read back byte for byte. */
static void test_round_trip(void **state)
{
    assert_round_trip(
        "[{\"traceId\":\"5af7183fb1d4cf5f\",\"parentId\":\"6b221d5bc9e6496c\","
        "\"id\":\"352bff9a74ca9ad2\",\"kind\":\"SERVER\",\"name\":\"get /api\","
        "\"timestamp\":1556604172355737,\"duration\":1431,"
        "\"localEndpoint\":{\"serviceName\":\"backend\",\"ipv4\":\"192.168.99.1\",\"port\":3306},"
        "\"remoteEndpoint\":{\"serviceName\":\"frontend\",\"ipv6\":\"2001:db8::c001\","
        "\"port\":62081},"
        "\"annotations\":[{\"timestamp\":1556604172355740,\"value\":\"wr\"},"
        "{\"timestamp\":1556604172355811,\"value\":\"ws\"}],"
        "\"tags\":{\"error\":\"timeout\",\"http.method\":\"GET\",\"http.path\":\"/api\"},"
        "\"debug\":true,\"shared\":true},"
        "{\"traceId\":\"5af7183fb1d4cf5f6b221d5bc9e6496c\",\"id\":\"6b221d5bc9e6496c\","
        "\"kind\":\"CLIENT\",\"name\":\"post\",\"timestamp\":1556604172355737},"
        "{\"traceId\":\"0000000000000001\",\"id\":\"0000000000000002\",\"kind\":\"PRODUCER\","
        "\"name\":\"say \\\"hi\\\"\\n\\u0001 caf\xc3\xa9 \xe2\x82\xac\","
        "\"timestamp\":1,\"duration\":1,\"localEndpoint\":{\"serviceName\":\"q\"},"
        "\"remoteEndpoint\":{\"serviceName\":\"kafka\"},"
        "\"annotations\":[{\"timestamp\":0,\"value\":\"\"},{\"timestamp\":1,\"value\":\"a\"},"
        "{\"timestamp\":1,\"value\":\"b\"}],"
        "\"tags\":{\"\":\"\",\"a\\\\b\":\"\\t\",\"error\":\"\",\"z\":\"true\"}},"
        "{\"traceId\":\"ffffffffffffffffffffffffffffffff\",\"id\":\"ffffffffffffffff\","
        "\"kind\":\"CONSUMER\",\"timestamp\":18446744073709550,\"duration\":1,"
        "\"localEndpoint\":{\"ipv6\":\"::1\"},\"remoteEndpoint\":{\"port\":65535}}]");
    assert_round_trip("[]");
}

/* What Zipkin's server normalises is normalised the same way. */
static void test_normalised(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        /* names lowercased; a 32-digit id with zero high half is 16 digits */
        {"[{\"traceId\":\"00000000000000005af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\","
         "\"name\":\"GET /Api\",\"timestamp\":5,\"localEndpoint\":{\"serviceName\":\"BackEnd\"},"
         "\"remoteEndpoint\":{\"serviceName\":\"DB\"}}]",
         "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"name\":\"get /api\","
         "\"timestamp\":5,\"localEndpoint\":{\"serviceName\":\"backend\"},"
         "\"remoteEndpoint\":{\"serviceName\":\"db\"}}]"},
        /* parentId == id, all-zero parentId: roots; shared dropped on CLIENT; false flags,
         * null members, zero port, empty endpoint and unknown members: left out */
        {"[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\","
         "\"parentId\":\"352bff9a74ca9ad2\",\"kind\":\"CLIENT\",\"timestamp\":5,\"duration\":0,"
         "\"shared\":true,\"debug\":false,\"name\":null,\"tags\":null,\"annotations\":null,"
         "\"localEndpoint\":{\"port\":0,\"serviceName\":null,\"other\":[1]},"
         "\"remoteEndpoint\":null,\"binaryAnnotations\":[{\"x\":1}]},"
         "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad3\","
         "\"parentId\":\"0000000000000000\",\"timestamp\":6,\"shared\":false,\"debug\":null}]",
         "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"kind\":\"CLIENT\","
         "\"timestamp\":5},{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad3\","
         "\"timestamp\":6}]"},
        /* annotations sorted, duplicates dropped; a tag twice: the later; field order */
        {"[{\"tags\":{\"b\":\"1\",\"a\":\"2\",\"b\":\"3\"},\"annotations\":["
         "{\"value\":\"y\",\"timestamp\":7},{\"timestamp\":6,\"value\":\"z\"},"
         "{\"timestamp\":7,\"value\":\"x\"},{\"timestamp\":7,\"value\":\"y\",\"endpoint\":{}}],"
         "\"timestamp\":5,\"id\":\"352bff9a74ca9ad2\",\"traceId\":\"5af7183fb1d4cf5f\"}]",
         "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"timestamp\":5,"
         "\"annotations\":[{\"timestamp\":6,\"value\":\"z\"},{\"timestamp\":7,\"value\":\"x\"},"
         "{\"timestamp\":7,\"value\":\"y\"}],\"tags\":{\"a\":\"2\",\"b\":\"3\"}}]"},
        /* addresses: an IPv4-mapped IPv6 is IPv4, either family in either field, IPv6 in
         * RFC 5952 form; escapes decoded and written the one way */
        {"[ {\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"timestamp\":5,"
         "\"localEndpoint\":{\"ipv6\":\"::FFFF:1.2.3.4\"},"
         "\"remoteEndpoint\":{\"ipv4\":\"2001:DB8:0:0:0:0:0:1\",\"port\":80},"
         "\"name\":\"\\u0041\\/b\"} ]",
         "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"name\":\"a/b\","
         "\"timestamp\":5,\"localEndpoint\":{\"ipv4\":\"1.2.3.4\"},"
         "\"remoteEndpoint\":{\"ipv6\":\"2001:db8::1\",\"port\":80}}]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(decode(cases[i].in), 0);
        assert_int_equal(batch.rejected, 0);
        char *out = encode_batch();
        assert_string_equal(out, cases[i].out);
        free(out);
    }
}

/* A body as a real client writes it: py_zipkin 0.15's V2_JSON encoder (Debian's
 * python3-py-zipkin; json.dumps, so blanks after ':' and ',', its own member order), with
 * one local service for both spans. */
static void test_py_zipkin_body(void **state)
{
    const char *body =
        "[{\"traceId\": \"5af7183fb1d4cf5f\", \"id\": \"352bff9a74ca9ad2\", \"name\": \"GET "
        "/Api\", "
        "\"parentId\": \"6b221d5bc9e6496c\", \"timestamp\": 1556604172355737, \"duration\": 1431, "
        "\"kind\": \"SERVER\", \"localEndpoint\": {\"serviceName\": \"Backend\", \"port\": 3306, "
        "\"ipv4\": \"192.168.99.1\"}, \"remoteEndpoint\": {\"serviceName\": \"frontend\", "
        "\"port\": 62081, \"ipv6\": \"2001:db8::c001\"}, \"tags\": {\"http.method\": \"GET\", "
        "\"error\": \"timeout\"}, \"annotations\": [{\"timestamp\": 1556604172355740, \"value\": "
        "\"wr\"}, {\"timestamp\": 1556604172355811, \"value\": \"ws\"}]},{\"traceId\": "
        "\"5af7183fb1d4cf5f\", \"id\": \"452bff9a74ca9ad2\", \"name\": \"select\", \"parentId\": "
        "\"352bff9a74ca9ad2\", \"timestamp\": 1556604172355800, \"duration\": 200, \"kind\": "
        "\"CLIENT\", \"localEndpoint\": {\"serviceName\": \"Backend\", \"ipv4\": "
        "\"192.168.99.1\"}}]";
    assert_int_equal(decode(body), 0);
    assert_int_equal(batch.n, 2);
    assert_int_equal(batch.rejected, 0);
    assert_true(batch.spans[0].resource == batch.spans[1].resource);
    assert_true(col_str_eq(batch.spans[0].resource->service, "Backend", 7));
    char *out = encode_batch();
    assert_string_equal(
        out,
        "[{\"traceId\":\"5af7183fb1d4cf5f\",\"parentId\":\"6b221d5bc9e6496c\","
        "\"id\":\"352bff9a74ca9ad2\",\"kind\":\"SERVER\",\"name\":\"get /api\","
        "\"timestamp\":1556604172355737,\"duration\":1431,\"localEndpoint\":{\"serviceName\":"
        "\"backend\",\"ipv4\":\"192.168.99.1\",\"port\":3306},\"remoteEndpoint\":{\"serviceName\":"
        "\"frontend\",\"ipv6\":\"2001:db8::c001\",\"port\":62081},\"annotations\":[{\"timestamp\":"
        "1556604172355740,\"value\":\"wr\"},{\"timestamp\":1556604172355811,\"value\":\"ws\"}],"
        "\"tags\":{\"error\":\"timeout\",\"http.method\":\"GET\"}},"
        "{\"traceId\":\"5af7183fb1d4cf5f\",\"parentId\":\"352bff9a74ca9ad2\","
        "\"id\":\"452bff9a74ca9ad2\",\"kind\":\"CLIENT\",\"name\":\"select\","
        "\"timestamp\":1556604172355800,\"duration\":200,\"localEndpoint\":{\"serviceName\":"
        "\"backend\",\"ipv4\":\"192.168.99.1\"}}]");
    free(out);
}

/* The batch itself: resources per service, the empty scope, status, events, times. */
static void test_batch_mapping(void **state)
{
    assert_int_equal(
        decode("[{\"traceId\":\"5af7183fb1d4cf5f6b221d5bc9e6496c\",\"id\":\"0000000000000001\","
               "\"timestamp\":10,\"duration\":3,\"localEndpoint\":{\"serviceName\":\"A\","
               "\"ipv4\":\"10.0.0.1\",\"port\":1},\"tags\":{\"error\":\"true\",\"k\":\"v\"},"
               "\"annotations\":[{\"timestamp\":11,\"value\":\"ev\"}]},"
               "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"0000000000000002\",\"timestamp\":10,"
               "\"localEndpoint\":{\"serviceName\":\"B\"},\"tags\":{\"error\":\"boom\"}},"
               "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"0000000000000003\",\"timestamp\":10,"
               "\"localEndpoint\":{\"serviceName\":\"A\"}},"
               "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"0000000000000004\",\"timestamp\":10},"
               "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"0000000000000005\",\"timestamp\":10,"
               "\"localEndpoint\":{\"serviceName\":\"\"}}]"),
        0);
    assert_int_equal(batch.n, 5);
    assert_int_equal(batch.rejected, 0);
    const col_span_t *s = batch.spans;
    assert_true(s[0].resource == s[2].resource);
    assert_true(s[0].resource != s[1].resource);
    assert_true(s[3].resource == s[4].resource);
    assert_true(col_str_eq(s[0].resource->service, "A", 1));
    assert_int_equal(s[0].resource->nattrs, 1);
    assert_true(col_str_eq(s[0].resource->attrs[0].key, "service.name", 12));
    assert_true(col_str_eq(s[0].resource->attrs[0].v.s, "A", 1));
    assert_int_equal(s[3].resource->service.n, 0);
    assert_int_equal(s[3].resource->nattrs, 0);
    for (int i = 0; i < 5; i++) {
        assert_true(s[i].scope == s[0].scope);
        assert_int_equal(s[i].scope->name.n + s[i].scope->version.n + s[i].scope->nattrs, 0);
        assert_int_equal(s[i].flags, 0);
    }
    assert_int_equal(s[0].start_ns, 10000);
    assert_int_equal(s[0].end_ns, 13000);
    assert_int_equal(s[1].end_ns, 10000);
    assert_int_equal(s[0].kind, COL_KIND_UNSPECIFIED);
    assert_true(s[0].local.has_ipv4 && !s[0].local.has_ipv6);
    assert_int_equal(s[0].local.port, 1);
    assert_int_equal(s[0].local.service.n, 0);
    assert_int_equal(s[0].status, COL_STATUS_ERROR);
    assert_int_equal(s[0].status_message.n, 0); /* "true" says nothing more */
    assert_int_equal(s[1].status, COL_STATUS_ERROR);
    assert_true(col_str_eq(s[1].status_message, "boom", 4));
    assert_int_equal(s[2].status, COL_STATUS_UNSET);
    assert_int_equal(s[0].nattrs, 2);
    assert_int_equal(s[0].attrs[1].type, COL_V_STRING);
    assert_int_equal(s[0].nevents, 1);
    assert_int_equal(s[0].events[0].time_ns, 11000);
    assert_true(col_str_eq(s[0].events[0].name, "ev", 2));
    assert_int_equal(s[0].events[0].nattrs, 0);
    assert_int_equal(s[0].trace_id[0], 0x5a);
    static const uint8_t low_only[16] = {0,    0,    0,    0,    0,    0,    0,    0,
                                         0x5a, 0xf7, 0x18, 0x3f, 0xb1, 0xd4, 0xcf, 0x5f};
    assert_memory_equal(s[1].trace_id, low_only, 16);
}

/* Each refusal of one span, with its words; the other spans are kept. */
static void test_span_refusals(void **state)
{
#define TR "\"traceId\":\"5af7183fb1d4cf5f\","
#define ID "\"id\":\"352bff9a74ca9ad3\","
#define TS "\"timestamp\":5,"
    /* fields: the members of the span under test (a trailing comma is fine: "x":0 ends it) */
    const struct {
        const char *fields, *why;
    } cases[] = {
        {ID TS, "traceId: missing"},
        {"\"traceId\":null," ID TS, "traceId: missing"},
        {"\"traceId\":\"abc\"," ID TS, "traceId: must be 16 or 32 lowercase hex digits"},
        {"\"traceId\":\"5AF7183FB1D4CF5F\"," ID TS,
         "traceId: must be 16 or 32 lowercase hex digits"},
        {"\"traceId\":\"5af7183fb1d4cf5f0\"," ID TS,
         "traceId: must be 16 or 32 lowercase hex digits"},
        {"\"traceId\":5," ID TS, "traceId: must be a string"},
        {"\"traceId\":\"0000000000000000\"," ID TS, "traceId is all zero"},
        {TR TS, "id: missing"},
        {TR "\"id\":\"123\"," TS, "id: must be 16 lowercase hex digits"},
        {TR "\"id\":\"0000000000000000\"," TS, "spanId is all zero"},
        {TR ID TS "\"parentId\":\"xyzxyzxyzxyzxyzx\",",
         "parentId: must be 16 lowercase hex digits"},
        {TR ID TS "\"parentId\":[],", "parentId: must be a string"},
        {TR ID TS "\"kind\":\"client\",", "kind: must be CLIENT, SERVER, PRODUCER or CONSUMER"},
        {TR ID TS "\"name\":5,", "name: must be a string"},
        {TR ID, "timestamp: missing (weft stores only spans that have a start time)"},
        {TR ID "\"timestamp\":null,",
         "timestamp: missing (weft stores only spans that have a start time)"},
        {TR ID "\"timestamp\":0,",
         "timestamp: missing (weft stores only spans that have a start time)"},
        {TR ID "\"timestamp\":-1,", "timestamp: must be a non-negative integer"},
        {TR ID "\"timestamp\":1.5,", "timestamp: must be a non-negative integer"},
        {TR ID "\"timestamp\":1e3,", "timestamp: must be a non-negative integer"},
        {TR ID "\"timestamp\":\"123\",", "timestamp: must be a non-negative integer"},
        {TR ID "\"timestamp\":18446744073709552,", "timestamp: must be at most 18446744073709551"},
        {TR ID "\"timestamp\":99999999999999999999999,",
         "timestamp: must be at most 18446744073709551"},
        {TR ID TS "\"duration\":-5,", "duration: must be a non-negative integer"},
        {TR ID "\"timestamp\":18446744073709551,\"duration\":1,",
         "timestamp + duration: too large"},
        {TR ID TS "\"localEndpoint\":\"x\",", "localEndpoint: must be an object"},
        {TR ID TS "\"localEndpoint\":{\"ipv4\":\"1.2.3\"},",
         "localEndpoint.ipv4: not an IP address"},
        {TR ID TS "\"localEndpoint\":{\"ipv4\":\"01.2.3.4\"},",
         "localEndpoint.ipv4: not an IP address"},
        {TR ID TS "\"localEndpoint\":{\"ipv4\":\"1.2.3.4\\u0000\"},",
         "localEndpoint.ipv4: not an IP address"},
        {TR ID TS "\"remoteEndpoint\":{\"ipv6\":\"zz::1\"},",
         "remoteEndpoint.ipv6: not an IP address"},
        {TR ID TS "\"remoteEndpoint\":{\"ipv6\":\"fe80::1%eth0\"},",
         "remoteEndpoint.ipv6: not an IP address"},
        {TR ID TS "\"localEndpoint\":{\"port\":70000},",
         "localEndpoint.port: must be at most 65535"},
        {TR ID TS "\"localEndpoint\":{\"port\":-1},",
         "localEndpoint.port: must be a non-negative integer"},
        {TR ID TS "\"localEndpoint\":{\"serviceName\":1},",
         "localEndpoint.serviceName: must be a string"},
        {TR ID TS "\"annotations\":{},", "annotations: must be an array"},
        {TR ID TS "\"annotations\":[1],", "annotations[0]: must be an object"},
        {TR ID TS "\"annotations\":[{\"timestamp\":1,\"value\":\"a\"},{\"value\":\"x\"}],",
         "annotations[1].timestamp: missing"},
        {TR ID TS "\"annotations\":[{\"timestamp\":1}],", "annotations[0].value: missing"},
        {TR ID TS "\"annotations\":[{\"timestamp\":1,\"value\":2}],",
         "annotations[0].value: must be a string"},
        {TR ID TS "\"annotations\":[{\"timestamp\":-1,\"value\":\"a\"}],",
         "annotations[0].timestamp: must be a non-negative integer"},
        {TR ID TS "\"tags\":[],", "tags: must be an object"},
        {TR ID TS "\"tags\":{\"a\":\"1\",\"http.status\":200},",
         "tags.http.status: must be a string"},
        {TR ID TS "\"tags\":{\"a\":true},", "tags.a: must be a string"},
        {TR ID TS "\"tags\":{\"a\":null},", "tags.a: must be a string"},
        {TR ID TS "\"debug\":\"yes\",", "debug: must be true or false"},
        {TR ID TS "\"shared\":1,", "shared: must be true or false"},
    };
#undef TR
#undef ID
#undef TS
    char body[768], want[300];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* the span under test sits between two good ones, which are kept */
        const char *good = "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\","
                           "\"timestamp\":5}";
        snprintf(body, sizeof(body), "[%s,{%s\"x\":0},%s]", good, cases[i].fields, good);
        int rc = decode(body);
        if (rc != 0) fail_msg("case %zu: rc %d: %s", i, rc, err);
        snprintf(want, sizeof(want), "span 1: %s", cases[i].why);
        if (batch.rejected != 1 || strcmp(batch.reject_msg, want) != 0)
            fail_msg("case %zu: %zu refused, \"%s\", want \"%s\"", i, batch.rejected,
                     batch.reject_msg, want);
        assert_int_equal(batch.n, 2);
    }
    /* not an object; the first refusal is the message, all are counted */
    assert_int_equal(decode("[1,\"x\",{\"id\":\"352bff9a74ca9ad2\"}]"), 0);
    assert_int_equal(batch.n, 0);
    assert_int_equal(batch.rejected, 3);
    assert_string_equal(batch.reject_msg, "span 0: must be a JSON object (a Zipkin v2 span)");
    /* the shared limits (col_span_check) */
    char *big = malloc(COL_NAME_MAX + 200);
    memset(big, 'n', COL_NAME_MAX + 200);
    int len = snprintf(big, 100,
                       "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\","
                       "\"timestamp\":5,\"name\":\"");
    big[len] = 'n';
    strcpy(big + len + COL_NAME_MAX + 1, "\"}]");
    assert_int_equal(decode(big), 0);
    assert_int_equal(batch.rejected, 1);
    assert_string_equal(batch.reject_msg, "span 0: name is longer than 1024 bytes");
    free(big);
}

/* Refusals of the whole request: not JSON, not an array, too many spans, too big. */
static void test_request_refusals(void **state)
{
    static const struct {
        const char *body;
        int rc;
        const char *err;
    } cases[] = {
        {"", WEFT_EINVAL, "offset 0: expected a JSON array of Zipkin v2 spans"},
        {"  {}", WEFT_EINVAL, "offset 2: expected a JSON array of Zipkin v2 spans"},
        {"x", WEFT_EINVAL, "offset 0: invalid JSON: expected a value"},
        {"[{\"traceId\":", WEFT_EINVAL, "offset 12: invalid JSON: unexpected end of text"},
        {"[1,]", WEFT_EINVAL, "offset 3: invalid JSON: trailing comma"},
        {"[] x", WEFT_EINVAL, "offset 3: invalid JSON: text after the value"},
        {"[{\"traceId\":5,\"name\":\"\xff\"}]", WEFT_EINVAL,
         "offset 22: invalid JSON: invalid "
         "UTF-8 in a string"},
        {"[{\"tags\":{\"a\":1,}}]", WEFT_EINVAL, "offset 16: invalid JSON: trailing comma"},
        /* tags in the shape read straight up to the trailing comma */
        {"[{\"tags\":{\"a\":\"1\",}}]", WEFT_EINVAL, "offset 18: invalid JSON: trailing comma"},
        {"[{\"tags\":{\"a\":\"1\"", WEFT_EINVAL,
         "offset 17: invalid JSON: unexpected end of text in an object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode(cases[i].body);
        if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu: rc %d \"%s\", want %d \"%s\"", i, rc, err, cases[i].rc,
                     cases[i].err);
        assert_int_equal(batch.n, 0);
        assert_null(batch.spans);
        assert_int_equal(batch.rejected, 0);
    }
    /* more than COL_MAX_BATCH_SPANS elements */
    size_t n = 2 + 2 * (COL_MAX_BATCH_SPANS + 1);
    char *body = malloc(n + 1);
    body[0] = '[';
    for (size_t i = 0; i <= COL_MAX_BATCH_SPANS; i++) memcpy(body + 1 + 2 * i, "1,", 2);
    body[n - 2] = '1';
    body[n - 1] = ']';
    body[n] = 0;
    assert_int_equal(decode(body), WEFT_ELIMIT);
    assert_string_equal(err, "more than 65536 spans in one request");
    assert_int_equal(batch.rejected, 0);
    body[2 * COL_MAX_BATCH_SPANS] = ']'; /* exactly COL_MAX_BATCH_SPANS: read, each refused */
    body[2 * COL_MAX_BATCH_SPANS + 1] = 0;
    assert_int_equal(decode(body), 0);
    assert_int_equal(batch.rejected, COL_MAX_BATCH_SPANS);
    free(body);

    /* the arena's limit: 413, whether the reader or the decoder hits it */
    weft_arena_t small;
    weft_arena_init(&small, 256, 64);
    const char *one = "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\","
                      "\"timestamp\":5,\"localEndpoint\":{\"serviceName\":\"a\"}}]";
    assert_int_equal(col_zipkin_json_decode(one, strlen(one), &small, &batch, err, sizeof(err)),
                     WEFT_ELIMIT);
    assert_string_equal(err, "the request needs more memory than allowed");
    assert_int_equal(batch.n, 0);
    weft_arena_reset(&small);
    char esc[200];
    snprintf(esc, sizeof(esc), "[{\"name\":\"%s\"}]",
             "\\u0041aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(col_zipkin_json_decode(esc, strlen(esc), &small, &batch, err, sizeof(err)),
                     WEFT_ELIMIT);
    assert_string_equal(err, "offset 9: string too long");
    weft_arena_free(&small);
}

/* ---- out of memory ---- */

/* Decoding and encoding with the k-th allocation failing, every k: WEFT_ENOMEM (or a failed
 * buffer), never a crash or a leak; the run that completes gives the reference text. */
static void test_out_of_memory(void **state)
{
    const char *body =
        "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"name\":\"a\\u0042\","
        "\"timestamp\":5,\"localEndpoint\":{\"serviceName\":\"s1\"},\"tags\":{\"b\":\"1\","
        "\"a\":\"2\"},\"annotations\":[{\"timestamp\":6,\"value\":\"x\"}]},"
        "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad3\",\"timestamp\":4,"
        "\"localEndpoint\":{\"serviceName\":\"s2\"}}]";
    const char *want =
        "[{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad3\",\"timestamp\":4,"
        "\"localEndpoint\":{\"serviceName\":\"s2\"}},"
        "{\"traceId\":\"5af7183fb1d4cf5f\",\"id\":\"352bff9a74ca9ad2\",\"name\":\"ab\","
        "\"timestamp\":5,\"localEndpoint\":{\"serviceName\":\"s1\"},"
        "\"annotations\":[{\"timestamp\":6,\"value\":\"x\"}],\"tags\":{\"a\":\"2\",\"b\":\"1\"}}]";
    bool completed = false;
    for (long k = 0; !completed && k < 1000; k++) {
        weft_arena_t a;
        weft_arena_init(&a, 128, 1 << 20); /* small blocks: several allocations */
        col_batch_t b;
        char e[128];
        alloc_countdown = k;
        long before = alloc_failures;
        int rc = col_zipkin_json_decode(body, strlen(body), &a, &b, e, sizeof(e));
        if (rc) {
            if (rc != WEFT_ENOMEM) fail_msg("k %ld: rc %d: %s", k, rc, e);
            assert_string_equal(e, "out of memory");
            assert_int_equal(b.n, 0);
            assert_true(alloc_failures > before);
        } else {
            weft_buf_t out;
            weft_buf_init(&out, 0);
            col_zipkin_json_trace(&out, b.spans, b.n);
            if (alloc_failures > before) {
                assert_true(out.failed);
            } else {
                assert_false(out.failed);
                assert_string_equal(out.p, want);
                completed = true;
            }
            weft_buf_free(&out);
        }
        alloc_countdown = -1;
        weft_arena_free(&a);
    }
    assert_true(completed);
}

static int setup(void **state)
{
    weft_arena_init(&arena, 4096, 64u << 20);
    return 0;
}

static int teardown(void **state)
{
    weft_arena_free(&arena);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_otlp_span),
        cmocka_unit_test(test_minimal_span),
        cmocka_unit_test(test_kinds_flags_endpoints),
        cmocka_unit_test(test_status_tags),
        cmocka_unit_test(test_remote_from_attributes),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_ip_text),
        cmocka_unit_test(test_trace_order),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_normalised),
        cmocka_unit_test(test_py_zipkin_body),
        cmocka_unit_test(test_batch_mapping),
        cmocka_unit_test(test_span_refusals),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
