/*
 * test_forward.c - the forwarder's encoder (collector/forward.c, col_fwd_encode) read back
 * by the collector's own OTLP protobuf decoder (otlp_pb.c): every field span.h keeps comes
 * back the same (the hand-built request with every field and value type, weft's exporter's
 * request, OTLP/JSON's text of arrays and maps); spans of one resource and scope are
 * grouped, also when their resources are equal copies; pieces concatenate into one request;
 * Zipkin's endpoints come back as attributes; and the endpoint and header checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/decode.h"
#include "collector/forward.h"
#include "otlp_req.h"
#include "weft/common.h"

static weft_arena_t a1, a2;

static int setup(void **state)
{
    (void)state;
    weft_arena_init(&a1, 64 * 1024, 64 << 20);
    weft_arena_init(&a2, 64 * 1024, 64 << 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    weft_arena_free(&a1);
    weft_arena_free(&a2);
    return 0;
}

/* The decoded batch x encoded by the forwarder, then decoded again into y (from an exactly
 * sized heap copy, so ASan sees any read past the end; *copy is the caller's to free). */
static void round_trip(const col_batch_t *x, col_batch_t *y, uint8_t **copy)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_fwd_encode(&b, x->spans, x->n);
    assert_false(b.failed);
    *copy = malloc(b.len ? b.len : 1);
    memcpy(*copy, b.p, b.len);
    char err[256] = "";
    weft_arena_reset(&a2);
    int rc = col_otlp_pb_decode(*copy, b.len, &a2, y, err, sizeof(err));
    if (rc != 0) fprintf(stderr, "decode: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(y->rejected, 0);
    weft_buf_free(&b);
}

static void test_every_field(void **state)
{
    (void)state;
    weft_buf_t pb;
    weft_buf_init(&pb, 0);
    req_everything_pb(&pb);
    col_batch_t x, y;
    char err[256] = "";
    weft_arena_reset(&a1);
    assert_int_equal(col_otlp_pb_decode((const uint8_t *)pb.p, pb.len, &a1, &x, err, sizeof(err)),
                     0);
    assert_int_equal(x.n, 2);
    /* arrays, maps, bytes, an empty value, links: all there to be carried */
    assert_true(x.spans[0].nlinks == 1 && x.spans[0].nevents == 1);
    uint8_t *copy;
    round_trip(&x, &y, &copy);
    assert_true(req_same_batch(&x, &y));
    /* two resources stay two */
    assert_ptr_not_equal(y.spans[0].resource, y.spans[1].resource);
    free(copy);
    weft_buf_free(&pb);
}

/* OTLP/JSON's text for arrays and maps (nested, escaped, NaN, bytes) read back exactly. */
static const char json_req[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
    "{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"lib\"},\"spans\":[{"
    "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\","
    "\"parentSpanId\":\"b1b2b3b4b5b6b7b8\",\"name\":\"n\\u00e9\",\"kind\":3,"
    "\"startTimeUnixNano\":\"1000\",\"endTimeUnixNano\":\"2000\",\"flags\":257,"
    "\"attributes\":["
    "{\"key\":\"arr\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\\\"b\\\\c\"},"
    "{\"intValue\":\"-9223372036854775808\"},{\"boolValue\":false},{\"doubleValue\":\"NaN\"},"
    "{\"doubleValue\":-1.5e300},{\"doubleValue\":\"-Infinity\"},{\"bytesValue\":\"AP8Q\"},{},"
    "{\"arrayValue\":{\"values\":[{\"kvlistValue\":{\"values\":[{\"key\":\"deep\",\"value\":"
    "{\"intValue\":\"7\"}}]}}]}},{\"arrayValue\":{}}]}}},"
    "{\"key\":\"map\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"k\\n\",\"value\":"
    "{\"stringValue\":\"\\u2603\"}},{\"key\":\"none\"},{\"key\":\"d\",\"value\":"
    "{\"doubleValue\":0.1}}]}}},"
    "{\"key\":\"emptyarr\",\"value\":{\"arrayValue\":{\"values\":[]}}},"
    "{\"key\":\"emptymap\",\"value\":{\"kvlistValue\":{}}},"
    "{\"key\":\"d\",\"value\":{\"doubleValue\":\"Infinity\"}}],"
    "\"status\":{\"code\":1}}]},{\"scope\":{\"name\":\"other\",\"version\":\"2\"},\"spans\":[{"
    "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"c1a2a3a4a5a6a7a8\","
    "\"name\":\"m\",\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\","
    "\"status\":{\"message\":\"only a message\"}}]}]}]}";

static void test_json_values(void **state)
{
    (void)state;
    col_batch_t x, y;
    char err[256] = "";
    weft_arena_reset(&a1);
    int rc = col_otlp_json_decode(json_req, sizeof(json_req) - 1, &a1, &x, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(x.n, 2);
    assert_int_equal(x.spans[0].attrs[0].type, COL_V_ARRAY);
    assert_int_equal(x.spans[0].attrs[1].type, COL_V_KVLIST);
    uint8_t *copy;
    round_trip(&x, &y, &copy);
    assert_true(req_same_batch(&x, &y));
    /* one resource, two scopes */
    assert_ptr_equal(y.spans[0].resource, y.spans[1].resource);
    assert_ptr_not_equal(y.spans[0].scope, y.spans[1].scope);
    free(copy);
}

static void test_exporter_spans(void **state)
{
    (void)state;
    weft_buf_t pb;
    weft_buf_init(&pb, 0);
    req_build(0, 100, &pb, NULL);
    col_batch_t x, y;
    char err[256] = "";
    weft_arena_reset(&a1);
    assert_int_equal(col_otlp_pb_decode((const uint8_t *)pb.p, pb.len, &a1, &x, err, sizeof(err)),
                     0);
    uint8_t *copy;
    round_trip(&x, &y, &copy);
    assert_true(req_same_batch(&x, &y));
    for (size_t i = 0; i < y.n; i++) req_check_span(&y.spans[i], (int)i);
    free(copy);
    weft_buf_free(&pb);
}

/* Copies of one resource (weft's own spans each carry one) share a ResourceSpans; a
 * different resource or scope starts a new one; bad UTF-8 becomes U+FFFD, not a 400. */
static void test_grouping(void **state)
{
    (void)state;
    col_attr_t ra[3] = {
        {.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = COL_STR("api")},
        {.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = COL_STR("api")},
        {.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = COL_STR("gw")}};
    col_resource_t res[3];
    for (int i = 0; i < 3; i++)
        res[i] = (col_resource_t){.service = ra[i].v.s, .attrs = &ra[i], .nattrs = 1};
    col_scope_t sc1 = {.name = COL_STR("weft"), .version = COL_STR("1")};
    col_scope_t sc2 = {.name = COL_STR("weft"), .version = COL_STR("1")};
    col_span_t s[4];
    memset(s, 0, sizeof(s));
    const col_resource_t *rp[4] = {&res[0], &res[1], &res[1], &res[2]};
    const col_scope_t *sp[4] = {&sc1, &sc2, &sc2, &sc2};
    for (int i = 0; i < 4; i++) {
        memset(s[i].trace_id, 0x11, 16);
        memset(s[i].span_id, 0x20 + i, 8);
        s[i].start_ns = 100;
        s[i].end_ns = 200 + (uint64_t)i;
        s[i].name = i == 2 ? (col_str_t){"a\xff"
                                         "b",
                                         3}
                           : COL_STR("op");
        s[i].resource = rp[i];
        s[i].scope = sp[i];
        s[i].kind = COL_KIND_SERVER;
    }
    col_batch_t x = {.spans = s, .n = 4}, y;
    uint8_t *copy;
    round_trip(&x, &y, &copy);
    assert_int_equal(y.n, 4);
    assert_ptr_equal(y.spans[0].resource, y.spans[1].resource);
    assert_ptr_equal(y.spans[1].resource, y.spans[2].resource);
    assert_ptr_not_equal(y.spans[2].resource, y.spans[3].resource);
    assert_ptr_equal(y.spans[0].scope, y.spans[2].scope);
    assert_true(req_same_str(y.spans[3].resource->service, COL_STR("gw")));
    assert_true(req_same_str(y.spans[2].name, COL_STR("a\xef\xbf\xbd"
                                                      "b")));
    assert_int_equal(y.spans[1].end_ns, 201);
    free(copy);

    /* pieces laid end to end are one request */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_fwd_encode(&b, s, 1);
    col_fwd_encode(&b, s + 3, 1);
    weft_arena_reset(&a2);
    char err[128];
    assert_int_equal(col_otlp_pb_decode((const uint8_t *)b.p, b.len, &a2, &y, err, sizeof(err)), 0);
    assert_int_equal(y.n, 2);
    assert_true(req_same_str(y.spans[0].resource->service, COL_STR("api")));
    assert_true(req_same_str(y.spans[1].resource->service, COL_STR("gw")));
    assert_memory_equal(y.spans[1].span_id, s[3].span_id, 8);
    weft_buf_free(&b);
}

static const col_attr_t *find(const col_span_t *s, const char *k)
{
    for (uint32_t i = 0; i < s->nattrs; i++)
        if (req_same_str(s->attrs[i].key, (col_str_t){k, (uint32_t)strlen(k)})) return &s->attrs[i];
    return NULL;
}

static void test_zipkin_endpoints(void **state)
{
    (void)state;
    static const char z[] =
        "[{\"traceId\":\"00000000000000010000000000000002\",\"id\":\"0000000000000003\","
        "\"parentId\":\"0000000000000004\",\"kind\":\"CLIENT\",\"name\":\"get\","
        "\"timestamp\":1700000000000001,\"duration\":5,"
        "\"localEndpoint\":{\"serviceName\":\"front\",\"ipv4\":\"10.0.0.1\",\"port\":8080},"
        "\"remoteEndpoint\":{\"serviceName\":\"db\",\"ipv6\":\"2001:db8::7\",\"port\":5432},"
        "\"annotations\":[{\"timestamp\":1700000000000002,\"value\":\"ws\"}],"
        "\"tags\":{\"http.method\":\"GET\"}},"
        "{\"traceId\":\"0000000000000002\",\"id\":\"0000000000000005\",\"name\":\"x\","
        "\"timestamp\":1700000000000001,\"duration\":5,"
        "\"localEndpoint\":{\"serviceName\":\"back\"},"
        "\"remoteEndpoint\":{\"serviceName\":\"other\"},\"tags\":{\"peer.service\":\"mine\"}}]";
    col_batch_t x, y;
    char err[256] = "";
    weft_arena_reset(&a1);
    int rc = col_zipkin_json_decode(z, sizeof(z) - 1, &a1, &x, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(x.n, 2);
    uint8_t *copy;
    round_trip(&x, &y, &copy);
    const col_span_t *a = &x.spans[0], *b = &y.spans[0];
    assert_memory_equal(a->trace_id, b->trace_id, 16);
    assert_memory_equal(a->parent_id, b->parent_id, 8);
    assert_int_equal(a->start_ns, b->start_ns);
    assert_int_equal(a->end_ns, b->end_ns);
    assert_int_equal(b->kind, COL_KIND_CLIENT);
    assert_int_equal(b->nevents, 1);
    assert_true(req_same_str(b->resource->service, COL_STR("front")));
    /* the span's own attributes first, as they were, then the endpoints' */
    assert_int_equal(b->nattrs, a->nattrs + 5);
    assert_true(req_same_attrs(a->attrs, a->nattrs, b->attrs, a->nattrs));
    const col_attr_t *t = find(b, "net.host.ip");
    assert_true(t && t->type == COL_V_STRING && req_same_str(t->v.s, COL_STR("10.0.0.1")));
    t = find(b, "net.host.port");
    assert_true(t && t->type == COL_V_INT && t->v.i == 8080);
    t = find(b, "peer.service");
    assert_true(t && t->type == COL_V_STRING && req_same_str(t->v.s, COL_STR("db")));
    t = find(b, "net.peer.ip");
    assert_true(t && t->type == COL_V_STRING && req_same_str(t->v.s, COL_STR("2001:db8::7")));
    t = find(b, "net.peer.port");
    assert_true(t && t->type == COL_V_INT && t->v.i == 5432);
    /* a span's own attribute of that key wins: not written twice */
    const col_span_t *c = &y.spans[1];
    assert_int_equal(c->nattrs, x.spans[1].nattrs);
    t = find(c, "peer.service");
    assert_true(t && req_same_str(t->v.s, COL_STR("mine")));
    /* two services: two resources */
    assert_ptr_not_equal(y.spans[0].resource, y.spans[1].resource);
    free(copy);
}

static void test_checks(void **state)
{
    (void)state;
    assert_null(col_fwd_endpoint_check(""));
    assert_null(col_fwd_endpoint_check(NULL));
    assert_null(col_fwd_endpoint_check("http://127.0.0.1:4318/v1/traces"));
    assert_null(col_fwd_endpoint_check("http://tempo.local"));
    assert_null(col_fwd_endpoint_check("HTTP://[::1]:4318/otlp/v1/traces"));
    assert_non_null(col_fwd_endpoint_check("https://tempo:4318/v1/traces"));
    assert_non_null(col_fwd_endpoint_check("127.0.0.1:4318"));
    assert_non_null(col_fwd_endpoint_check("http://"));
    assert_non_null(col_fwd_endpoint_check("http://host:99999/v1/traces"));
    assert_non_null(col_fwd_endpoint_check("http://host:4318/v1/traces?x=1"));
    assert_non_null(col_fwd_endpoint_check("http://host:4318/a b"));
    assert_non_null(col_fwd_endpoint_check("http://ho$t:4318/"));
    assert_null(col_fwd_headers_check(""));
    assert_null(col_fwd_headers_check("Authorization=Bearer%20abc,X-Scope-OrgID=t1"));
    assert_non_null(col_fwd_headers_check("Content-Type=text/plain"));
    assert_non_null(col_fwd_headers_check("novalue"));
    assert_non_null(col_fwd_headers_check("bad name=x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field),      cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_exporter_spans),   cmocka_unit_test(test_grouping),
        cmocka_unit_test(test_zipkin_endpoints), cmocka_unit_test(test_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
