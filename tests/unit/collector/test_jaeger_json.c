/*
 * test_jaeger_json.c - the Jaeger query service's JSON (collector/jaeger_json.c).
 *
 * Hand-built traces against the exact text: the UI model's fields and their order, ids as
 * Jaeger writes them, references (parent, links), typed tags and the ones the OTel → Jaeger
 * translator adds (kind, status, scope, trace state, dropped counts), Zipkin endpoints as
 * the Collector's Zipkin receiver names them, logs with "event" first, processes (one per
 * distinct resource, numbered in order of use), the query's tag order (key, type, value).
 * Every output is re-parsed with jansson. The module is compiled in with its allocations
 * failing at each step in turn: a failed buffer, never a crash or a leak.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fault_alloc.h"

#include "fault_alloc_begin.h"
#include "../../../src/collector/encode_util.c"
#include "../../../src/collector/jaeger_json.c"
#include "../../../src/core/buf.c"
#include "fault_alloc_end.h"

/* clang-format off */
#define ATTR_S(k, val)    {.key = COL_STR(k), .type = COL_V_STRING, .v.s = COL_STR(val)}
#define ATTR_I(k, x)      {.key = COL_STR(k), .type = COL_V_INT, .v.i = (x)}
#define ATTR_B(k, x)      {.key = COL_STR(k), .type = COL_V_BOOL, .v.b = (x)}
#define ATTR_D(k, x)      {.key = COL_STR(k), .type = COL_V_DOUBLE, .v.d = (x)}
#define ATTR_T(k, t, val) {.key = COL_STR(k), .type = (t), .v.s = COL_STR(val)}
/* clang-format on */

static char *trace_json(col_span_t *spans, size_t n)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_jaeger_json_trace(&b, spans, n);
    size_t len;
    char *out = weft_buf_take(&b, &len);
    assert_non_null(out);
    json_error_t e;
    json_t *j = json_loadb(out, len, 0, &e);
    if (!j) fail_msg("not JSON (%s at %d): %s", e.text, e.position, out);
    json_decref(j);
    return out;
}

static void assert_trace(col_span_t *spans, size_t n, const char *want)
{
    char *got = trace_json(spans, n);
    assert_string_equal(got, want);
    free(got);
}

static col_resource_t no_resource;
static col_scope_t no_scope;

static col_span_t base_span(void)
{
    col_span_t s;
    memset(&s, 0, sizeof(s));
    s.trace_id[15] = 0x10;
    s.span_id[7] = 1;
    s.start_ns = 1700000000123456789ull;
    s.end_ns = s.start_ns;
    s.resource = &no_resource;
    s.scope = &no_scope;
    return s;
}

/* Three spans: an OTLP server span with everything, its client child, a Zipkin consumer. */
static void test_trace(void **state)
{
    col_attr_t r1_attrs[] = {ATTR_S("service.name", "frontend"), ATTR_S("host.name", "h1"),
                             ATTR_I("z.num", 3)};
    col_attr_t r2_attrs[] = {ATTR_S("service.name", "frontend"), ATTR_S("host.name", "h1"),
                             ATTR_I("z.num", 3)};
    col_resource_t r1 = {.service = COL_STR("frontend"), .attrs = r1_attrs, .nattrs = 3};
    col_resource_t r2 = {.service = COL_STR("frontend"), .attrs = r2_attrs, .nattrs = 3};
    col_attr_t r3_attrs[] = {ATTR_S("service.name", "db")};
    col_resource_t r3 = {.service = COL_STR("db"), .attrs = r3_attrs, .nattrs = 1};
    col_attr_t scope_attrs[] = {ATTR_B("lib.attr", true)};
    col_scope_t scope = {
        .name = COL_STR("weft"), .version = COL_STR("1.0"), .attrs = scope_attrs, .nattrs = 1};

    col_attr_t a_attrs[] = {
        ATTR_I("http.status_code", 500),
        ATTR_I("big", (int64_t)1 << 53),
        ATTR_D("ratio", NAN),
        ATTR_T("blob", COL_V_BYTES, "\x01\x02\x03"),
        ATTR_T("list", COL_V_ARRAY, "[{\"stringValue\":\"a\"},{\"intValue\":\"5\"}]"),
        ATTR_S("error", "boom"), /* what the status says: error = true says it */
    };
    col_attr_t e1_attrs[] = {ATTR_S("z", "last"), ATTR_I("a", 1)};
    col_attr_t e2_attrs[] = {ATTR_B("b", false)};
    col_span_t spans[3];
    col_span_t *a = &spans[1], *b = &spans[2], *c = &spans[0];
    *a = base_span();
    for (int i = 0; i < 16; i++) a->trace_id[i] = (uint8_t)(i + 1);
    for (int i = 0; i < 8; i++) a->span_id[i] = (uint8_t)(0xa1 + i);
    a->end_ns = a->start_ns + 2500;
    a->flags = 0x301;
    a->kind = COL_KIND_SERVER;
    a->name = COL_STR("GET /Users");
    a->status = COL_STATUS_ERROR;
    a->status_message = COL_STR("boom");
    a->resource = &r1;
    a->scope = &scope;
    a->attrs = a_attrs;
    a->nattrs = sizeof(a_attrs) / sizeof(a_attrs[0]);
    a->trace_state = COL_STR("k=v");
    a->dropped_attrs = 2;
    col_event_t events[] = {
        {.time_ns = a->start_ns + 1000,
         .name = COL_STR("exception"),
         .attrs = e1_attrs,
         .nattrs = 2},
        {.time_ns = a->start_ns + 2000, .attrs = e2_attrs, .nattrs = 1},
    };
    a->events = events;
    a->nevents = 2;
    col_link_t link = {.span_id = {0, 0, 0, 0, 0, 0, 0, 1}};
    link.trace_id[15] = 0xff;
    a->links = &link;
    a->nlinks = 1;

    col_attr_t b_attrs[] = {ATTR_S("span.kind", "custom")};
    *b = base_span();
    memcpy(b->trace_id, a->trace_id, 16);
    b->span_id[7] = 2;
    memcpy(b->parent_id, a->span_id, 8);
    b->start_ns = a->start_ns + 1000;
    b->end_ns = b->start_ns;
    b->kind = COL_KIND_CLIENT;
    b->name = COL_STR("query");
    b->status = COL_STATUS_OK;
    b->resource = &r2; /* equal to r1: the same process */
    b->scope = &scope;
    b->attrs = b_attrs;
    b->nattrs = 1;

    *c = base_span();
    memcpy(c->trace_id, a->trace_id, 16);
    c->span_id[7] = 3;
    c->start_ns = a->start_ns + 5000;
    c->end_ns = c->start_ns + 1000;
    c->kind = COL_KIND_CONSUMER;
    c->name = COL_STR("consume");
    c->debug = true;
    c->resource = &r3;
    c->local.has_ipv4 = true;
    memcpy(c->local.ipv4, "\x0a\x00\x00\x01", 4);
    c->local.port = 8080;
    c->remote.service = COL_STR("users");
    c->remote.has_ipv6 = true;
    memcpy(c->remote.ipv6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    c->remote.port = 5432;

#define TID         "\"0102030405060708090a0b0c0d0e0f10\""
#define KV(k, t, v) "{\"key\":\"" k "\",\"type\":\"" t "\",\"value\":" v "}"
    /* clang-format off */
    assert_trace(spans, 3,
        "{\"traceID\":" TID ",\"spans\":["
        /* a */
        "{\"traceID\":" TID ",\"spanID\":\"a1a2a3a4a5a6a7a8\",\"flags\":1,"
        "\"operationName\":\"GET /Users\",\"references\":[{\"refType\":\"FOLLOWS_FROM\","
        "\"traceID\":\"00000000000000ff\",\"spanID\":\"0000000000000001\"}],"
        "\"startTime\":1700000000123456,\"duration\":2,\"tags\":["
        KV("big", "int64", "\"9007199254740992\"") ","
        KV("blob", "binary", "\"AQID\"") ","
        KV("error", "bool", "true") ","
        KV("http.status_code", "int64", "500") ","
        KV("lib.attr", "bool", "true") ","
        KV("list", "string", "\"[\\\"a\\\",5]\"") ","
        KV("otel.dropped_attributes_count", "int64", "2") ","
        KV("otel.scope.name", "string", "\"weft\"") ","
        KV("otel.scope.version", "string", "\"1.0\"") ","
        KV("otel.status_code", "string", "\"ERROR\"") ","
        KV("otel.status_description", "string", "\"boom\"") ","
        KV("ratio", "float64", "\"NaN\"") ","
        KV("span.kind", "string", "\"server\"") ","
        KV("w3c.tracestate", "string", "\"k=v\"") "],"
        "\"logs\":[{\"timestamp\":1700000000123457,\"fields\":["
        KV("event", "string", "\"exception\"") ","
        KV("a", "int64", "1") ","
        KV("z", "string", "\"last\"") "]},"
        "{\"timestamp\":1700000000123458,\"fields\":[" KV("b", "bool", "false") "]}],"
        "\"processID\":\"p1\",\"warnings\":null},"
        /* b */
        "{\"traceID\":" TID ",\"spanID\":\"0000000000000002\",\"operationName\":\"query\","
        "\"references\":[{\"refType\":\"CHILD_OF\",\"traceID\":" TID ","
        "\"spanID\":\"a1a2a3a4a5a6a7a8\"}],\"startTime\":1700000000123457,\"duration\":0,"
        "\"tags\":["
        KV("lib.attr", "bool", "true") ","
        KV("otel.scope.name", "string", "\"weft\"") ","
        KV("otel.scope.version", "string", "\"1.0\"") ","
        KV("otel.status_code", "string", "\"OK\"") ","
        KV("span.kind", "string", "\"custom\"") "],"
        "\"logs\":[],\"processID\":\"p1\",\"warnings\":null},"
        /* c */
        "{\"traceID\":" TID ",\"spanID\":\"0000000000000003\",\"flags\":2,"
        "\"operationName\":\"consume\",\"references\":[],\"startTime\":1700000000123461,"
        "\"duration\":1,\"tags\":["
        KV("net.host.ip", "string", "\"10.0.0.1\"") ","
        KV("net.host.port", "int64", "8080") ","
        KV("net.peer.ip", "string", "\"2001:db8::1\"") ","
        KV("net.peer.port", "int64", "5432") ","
        KV("peer.service", "string", "\"users\"") ","
        KV("span.kind", "string", "\"consumer\"") "],"
        "\"logs\":[],\"processID\":\"p2\",\"warnings\":null}],"
        "\"processes\":{\"p1\":{\"serviceName\":\"frontend\",\"tags\":["
        KV("host.name", "string", "\"h1\"") ","
        KV("z.num", "int64", "3") "]},"
        "\"p2\":{\"serviceName\":\"db\",\"tags\":[]}},\"warnings\":null}");
    /* clang-format on */
#undef KV
#undef TID
    assert_int_equal(spans[0].span_id[0], 0xa1); /* reordered by start time */
}

/* The query's order: key, then type (string, bool, int64, float64, binary), then value; the
 * error attribute beside error = true when it says more; numbers JavaScript cannot hold. */
static void test_tag_order_and_values(void **state)
{
    col_attr_t attrs[] = {
        ATTR_S("k", "b"),
        ATTR_T("k", COL_V_BYTES, "x"),
        ATTR_D("k", 1.5),
        ATTR_I("k", 2),
        ATTR_B("k", true),
        ATTR_S("k", "a"),
        ATTR_I("k", -2),
        ATTR_B("k", false),
        ATTR_D("k", -INFINITY),
        ATTR_S("error", "other"),
        ATTR_I("m", -((int64_t)1 << 53)),
        ATTR_I("n", -(((int64_t)1 << 53) - 1)),
        ATTR_I("o", INT64_MAX),
        ATTR_D("p", 1.0),
        {.key = COL_STR("q"), .type = COL_V_EMPTY},
        ATTR_T("r", COL_V_KVLIST, "[{\"key\":\"x\",\"value\":{\"boolValue\":false}}]"),
    };
    col_span_t s = base_span();
    s.attrs = attrs;
    s.nattrs = sizeof(attrs) / sizeof(attrs[0]);
    s.status = COL_STATUS_ERROR;
    s.kind = COL_KIND_INTERNAL;
    assert_trace(&s, 1,
                 "{\"traceID\":\"0000000000000010\",\"spans\":[{\"traceID\":\"0000000000000010\","
                 "\"spanID\":\"0000000000000001\",\"operationName\":\"\",\"references\":[],"
                 "\"startTime\":1700000000123456,\"duration\":0,\"tags\":["
                 "{\"key\":\"error\",\"type\":\"string\",\"value\":\"other\"},"
                 "{\"key\":\"error\",\"type\":\"bool\",\"value\":true},"
                 "{\"key\":\"k\",\"type\":\"string\",\"value\":\"a\"},"
                 "{\"key\":\"k\",\"type\":\"string\",\"value\":\"b\"},"
                 "{\"key\":\"k\",\"type\":\"bool\",\"value\":false},"
                 "{\"key\":\"k\",\"type\":\"bool\",\"value\":true},"
                 "{\"key\":\"k\",\"type\":\"int64\",\"value\":-2},"
                 "{\"key\":\"k\",\"type\":\"int64\",\"value\":2},"
                 "{\"key\":\"k\",\"type\":\"float64\",\"value\":\"-Infinity\"},"
                 "{\"key\":\"k\",\"type\":\"float64\",\"value\":1.5},"
                 "{\"key\":\"k\",\"type\":\"binary\",\"value\":\"eA==\"},"
                 "{\"key\":\"m\",\"type\":\"int64\",\"value\":\"-9007199254740992\"},"
                 "{\"key\":\"n\",\"type\":\"int64\",\"value\":-9007199254740991},"
                 "{\"key\":\"o\",\"type\":\"int64\",\"value\":\"9223372036854775807\"},"
                 "{\"key\":\"otel.status_code\",\"type\":\"string\",\"value\":\"ERROR\"},"
                 "{\"key\":\"p\",\"type\":\"float64\",\"value\":1},"
                 "{\"key\":\"q\",\"type\":\"string\",\"value\":\"\"},"
                 "{\"key\":\"r\",\"type\":\"string\",\"value\":\"{\\\"x\\\":false}\"},"
                 "{\"key\":\"span.kind\",\"type\":\"string\",\"value\":\"internal\"}],"
                 "\"logs\":[],\"processID\":\"p1\",\"warnings\":null}],"
                 "\"processes\":{\"p1\":{\"serviceName\":\"\",\"tags\":[]}},\"warnings\":null}");
}

/* Processes: one per distinct (service, attributes), numbered in order of first use, the
 * same resource used again later keeping its number. */
static void test_processes(void **state)
{
    col_attr_t a1[] = {ATTR_S("service.name", "a"), ATTR_S("v", "1")};
    col_attr_t a2[] = {ATTR_S("service.name", "a"), ATTR_S("v", "2")};
    col_attr_t a3[] = {ATTR_S("service.name", "a"), ATTR_S("v", "1")};
    col_attr_t a4[] = {ATTR_S("service.name", "a"), ATTR_D("v", 0.0)};
    col_attr_t a5[] = {ATTR_S("service.name", "a"), ATTR_D("v", -0.0)};
    col_resource_t res[] = {
        {.service = COL_STR("a"), .attrs = a1, .nattrs = 2},
        {.service = COL_STR("a"), .attrs = a2, .nattrs = 2},
        {.service = COL_STR("a"), .attrs = a3, .nattrs = 2},
        {.service = COL_STR("b"), .attrs = a1 + 1, .nattrs = 1}, /* no service.name */
        {.service = COL_STR("a"), .attrs = a4, .nattrs = 2},
        {.service = COL_STR("a"), .attrs = a5, .nattrs = 2}, /* -0.0 is not 0.0 */
    };
    const int use[] = {0, 1, 2, 3, 1, 0, 4, 5};
    const int want_proc[] = {1, 2, 1, 3, 2, 1, 4, 5};
    enum { N = sizeof(use) / sizeof(use[0]) };
    col_span_t spans[N];
    for (int i = 0; i < N; i++) {
        spans[i] = base_span();
        spans[i].start_ns += (uint64_t)i * 1000;
        spans[i].span_id[7] = (uint8_t)(i + 1);
        spans[i].resource = &res[use[i]];
    }
    char *got = trace_json(spans, N);
    json_t *j = json_loads(got, 0, NULL);
    json_t *jspans = json_object_get(j, "spans");
    assert_int_equal(json_array_size(jspans), N);
    for (int i = 0; i < N; i++) {
        char want[8];
        snprintf(want, sizeof(want), "p%d", want_proc[i]);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(jspans, (size_t)i), "processID")),
            want);
    }
    json_t *procs = json_object_get(j, "processes");
    assert_int_equal(json_object_size(procs), 5);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(procs, "p3"), "serviceName")), "b");
    json_t *p3tags = json_object_get(json_object_get(procs, "p3"), "tags");
    assert_int_equal(json_array_size(p3tags), 1); /* v, the only attribute it has */
    json_decref(j);
    free(got);
}

static void test_empty_trace(void **state)
{
    assert_trace(NULL, 0, "{\"traceID\":\"\",\"spans\":[],\"processes\":{},\"warnings\":null}");
}

/* With the k-th allocation failing, every k: a failed buffer; the complete run is the same
 * text as without failures. */
static void test_out_of_memory(void **state)
{
    col_attr_t attrs[] = {ATTR_T("list", COL_V_ARRAY, "[{\"stringValue\":\"a\"}]"),
                          ATTR_S("s", "v")};
    col_attr_t rattrs[] = {ATTR_S("service.name", "svc"), ATTR_I("x", 1)};
    col_resource_t res = {.service = COL_STR("svc"), .attrs = rattrs, .nattrs = 2};
    col_event_t ev = {.time_ns = 5, .name = COL_STR("e"), .attrs = attrs, .nattrs = 2};
    col_span_t spans[2];
    for (int i = 0; i < 2; i++) {
        spans[i] = base_span();
        spans[i].span_id[7] = (uint8_t)(i + 1);
        spans[i].attrs = attrs;
        spans[i].nattrs = 2;
        spans[i].events = &ev;
        spans[i].nevents = 1;
        spans[i].resource = &res;
        spans[i].local.has_ipv4 = true;
    }
    char *want = trace_json(spans, 2);
    bool completed = false;
    for (long k = 0; !completed && k < 1000; k++) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        alloc_countdown = k;
        long before = alloc_failures;
        col_jaeger_json_trace(&b, spans, 2);
        alloc_countdown = -1;
        if (alloc_failures > before) {
            assert_true(b.failed);
        } else {
            assert_false(b.failed);
            assert_string_equal(b.p, want);
            completed = true;
        }
        weft_buf_free(&b);
    }
    assert_true(completed);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace),         cmocka_unit_test(test_tag_order_and_values),
        cmocka_unit_test(test_processes),     cmocka_unit_test(test_empty_trace),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
