/*
 * test_otlp_json.c - OTLP/JSON requests decoded into batches (collector/otlp_json.c): the
 * same request written by weft's exporter in JSON and in protobuf gives identical batches,
 * and so does a hand-written request using every field, both member spellings, enum
 * names, integers as strings and numbers, nulls and unknown members; each malformed input
 * refused whole (with the field's path, or the offset for syntax); each semantic fault
 * refusing one span with the protobuf decoder's words; the limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/decode.h"
#include "otlp_req.h"
#include "weft/common.h"

static weft_arena_t arena, arena2;
static char *copy;

static int setup(void **state)
{
    weft_arena_init(&arena, 64 * 1024, 64 << 20);
    weft_arena_init(&arena2, 64 * 1024, 64 << 20);
    return 0;
}

static int teardown(void **state)
{
    weft_arena_free(&arena);
    weft_arena_free(&arena2);
    free(copy);
    return 0;
}

/* Decodes text (n bytes) from an exactly sized heap copy, kept until the next call. */
static int decode(const char *text, size_t n, col_batch_t *out, char *err, size_t errlen)
{
    free(copy);
    copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    weft_arena_reset(&arena);
    return col_otlp_json_decode(copy, n, &arena, out, err, errlen);
}

static int decode_z(const char *text, col_batch_t *out, char *err, size_t errlen)
{
    return decode(text, strlen(text), out, err, errlen);
}

static void test_exporter_request_both_ways(void **state)
{
    for (size_t n = 1; n <= 101; n += 25) {
        weft_buf_t pb, js;
        weft_buf_init(&pb, 0);
        weft_buf_init(&js, 0);
        req_build(11, n, &pb, &js);
        col_batch_t bj, bp;
        char err[256] = "";
        assert_int_equal(decode(js.p, js.len, &bj, err, sizeof(err)), 0);
        assert_string_equal(err, "");
        assert_int_equal(bj.n, n);
        assert_int_equal(bj.rejected, 0);
        for (size_t i = 0; i < n; i++) req_check_span(&bj.spans[i], 11 + (int)i);
        /* strings without escapes are views into the body */
        assert_true(bj.spans[0].name.p > copy && bj.spans[0].name.p < copy + js.len);
        weft_arena_reset(&arena2);
        assert_int_equal(
            col_otlp_pb_decode((const uint8_t *)pb.p, pb.len, &arena2, &bp, err, sizeof(err)), 0);
        assert_true(req_same_batch(&bj, &bp));
        weft_buf_free(&pb);
        weft_buf_free(&js);
    }
}

/* The JSON of req_everything_pb, spelled every way a parser must take. */
static const char everything_json[] =
    "{\"resourceSpans\":[\n"
    " {\"schemaUrl\":\"https://schema/1\",\n"
    "  \"scopeSpans\":[{\"spans\":[{\n"
    "    \"flags\":769, \"name\":\"op\", \"unknownField\":{\"a\":[1,2,{\"b\":null}]},\n"
    "    \"span_id\":\"A1A2A3A4A5A6A7A8\", \"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\n"
    "    \"parentSpanId\":\"0000000000000000\", \"trace_state\":\"k=v\",\n"
    "    \"kind\":\"SPAN_KIND_CONSUMER\", \"endTimeUnixNano\":2000, "
    "\"start_time_unix_nano\":\"1000\",\n"
    "    \"droppedAttributesCount\":\"3\", \"dropped_events_count\":4, "
    "\"droppedLinksCount\":5,\n"
    "    \"attributes\":[\n"
    "      {\"key\":\"bin\",\"value\":{\"bytesValue\":\"AP8Q\"}},\n"
    "      {\"key\":\"empty\",\"value\":{}},\n"
    "      {\"key\":\"arr\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\\\"b\"},"
    "{\"intValue\":-7},{\"boolValue\":true},{\"doubleValue\":\"1.5\"},{\"bytes_value\":\"aGk\"},"
    "{},{\"arrayValue\":{}}]}}},\n"
    "      {\"value\":{\"kvlistValue\":{\"values\":[{\"value\":{\"doubleValue\":\"NaN\"},"
    "\"key\":\"x\"},{\"key\":\"y\"}]}},\"key\":\"kvl\"},\n"
    "      {\"key\":\"neg\",\"value\":{\"intValue\":\"-9223372036854775808\"}},\n"
    "      {\"key\":\"novalue\"},\n"
    "      {\"key\":\"last\",\"value\":{\"stringValue\":\"first\",\"intValue\":42}}],\n"
    "    \"events\":[{\"name\":\"ev\",\"timeUnixNano\":\"1500\",\"droppedAttributesCount\":2}],\n"
    "    \"links\":[{\"traceId\":\"0102030405060708090A0B0C0D0E0F10\","
    "\"spanId\":\"a1a2a3a4a5a6a7a8\",\"traceState\":\"l=1\",\"flags\":1,"
    "\"dropped_attributes_count\":6,\"attributes\":[{\"key\":\"lk\",\"value\":"
    "{\"boolValue\":false}}]}],\n"
    "    \"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"broken\"}}],\n"
    "   \"scope\":{\"name\":\"lib\",\"version\":\"1.2\",\"attributes\":[{\"key\":\"scope.attr\","
    "\"value\":{\"stringValue\":\"s\"}}],\"droppedAttributesCount\":9},\n"
    "   \"schemaUrl\":\"https://schema/2\"}],\n"
    "  \"resource\":{\"attributes\":[{\"key\":\"host.name\",\"value\":{\"stringValue\":\"h\"}},"
    "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}],"
    "\"dropped_attributes_count\":8}},\n"
    " {\"scopeSpans\":[{\"scope\":null,\"spans\":[{\"traceId\":"
    "\"0102030405060708090a0b0c0d0e0f10\","
    "\"spanId\":\"a1a2a3a4a5a6a7a8\",\"name\":\"second\",\"startTimeUnixNano\":\"100\","
    "\"endTimeUnixNano\":\"200\",\"status\":null,\"kind\":null,\"attributes\":null}]}]}],\n"
    " \"unknown\":\"x\"}\n";

static void test_every_field_same_as_pb(void **state)
{
    col_batch_t bj, bp;
    char err[256] = "";
    assert_int_equal(decode(everything_json, sizeof(everything_json) - 1, &bj, err, sizeof(err)),
                     0);
    assert_string_equal(err, "");
    assert_int_equal(bj.n, 2);
    weft_buf_t pb;
    weft_buf_init(&pb, 0);
    req_everything_pb(&pb);
    weft_arena_reset(&arena2);
    assert_int_equal(
        col_otlp_pb_decode((const uint8_t *)pb.p, pb.len, &arena2, &bp, err, sizeof(err)), 0);
    assert_true(req_same_batch(&bj, &bp));
    /* a few fields spelled out, beyond "the same as protobuf" */
    const col_span_t *s = &bj.spans[0];
    assert_int_equal(s->kind, COL_KIND_CONSUMER);
    assert_int_equal(s->flags, 769);
    assert_int_equal(s->nattrs, 7);
    assert_true(req_str_is(
        s->attrs[2].v.s, "[{\"stringValue\":\"a\\\"b\"},{\"intValue\":\"-7\"},{\"boolValue\":true},"
                         "{\"doubleValue\":1.5},{\"bytesValue\":\"aGk=\"},{},"
                         "{\"arrayValue\":{\"values\":[]}}]"));
    assert_true(req_str_is(s->resource->service, "svc"));
    weft_buf_free(&pb);
}

static void test_malformed(void **state)
{
#define SPAN(x) "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{" x "}]}]}]}"
#define P       "resourceSpans[0].scopeSpans[0].spans[0]."
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "offset 0: invalid JSON: unexpected end of text"},
        {"[]", "the request must be a JSON object"},
        {"{\"resourceSpans\":[],}", "offset 20: invalid JSON: trailing comma"},
        {"{} {}", "offset 3: invalid JSON: text after the value"},
        {"{\"resourceSpans\":{}}", "resourceSpans: must be an array"},
        {"{\"resourceSpans\":[1]}", "resourceSpans[0]: must be an object"},
        {SPAN("\"traceId\":\"zz02030405060708090a0b0c0d0e0f10\""), P "traceId: must be hex digits"},
        {SPAN("\"spanId\":\"a1a2-\""), P "spanId: must be hex digits"},
        {SPAN("\"traceId\":5"), P "traceId: must be a string of hex digits"},
        {SPAN("\"kind\":\"SPAN_KIND_BOGUS\""), P "kind: unknown SpanKind name"},
        {SPAN("\"kind\":4294967296"), P "kind: integer out of range"},
        {SPAN("\"kind\":[]"), P "kind: must be an integer or an enum name"},
        {SPAN("\"status\":{\"code\":\"ERROR\"}"), P "status.code: unknown StatusCode name"},
        {SPAN("\"startTimeUnixNano\":1.5"), P "startTimeUnixNano: expected an integer"},
        {SPAN("\"startTimeUnixNano\":\"-1\""), P "startTimeUnixNano: integer out of range"},
        {SPAN("\"endTimeUnixNano\":true"),
         P "endTimeUnixNano: must be an integer (a number or a string)"},
        {SPAN("\"flags\":4294967296"), P "flags: integer out of range"},
        {SPAN("\"name\":5"), P "name: must be a string"},
        {SPAN("\"name\":\"caf\xc3\""), P "name: invalid UTF-8 in a string"},
        {SPAN("\"attributes\":{}"), P "attributes: must be an array"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":\"caf\xc3\"}}]"),
         P "attributes[0].value.stringValue: invalid UTF-8 in a string"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"12x\"}}]"),
         P "attributes[0].value.intValue: expected an integer"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"x\"}}]"),
         P "attributes[0].value.intValue: expected an integer"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"!!\"}}]"),
         P "attributes[0].value.bytesValue: must be base64"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":1}}]"),
         P "attributes[0].value.boolValue: must be true or false"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":\"x\"}}]"),
         P "attributes[0].value.doubleValue: must be a number"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"arrayValue\":{\"values\":[{"
              "\"intValue\":true}]}}}]"),
         P "attributes[0].value.arrayValue.values[0].intValue: must be an integer"},
        {SPAN("\"attributes\":[{\"key\":\"k\",\"value\":{\"kvlistValue\":{\"values\":[{"
              "\"key\":1}]}}}]"),
         P "attributes[0].value.kvlistValue.values[0].key: must be a string"},
        {SPAN("\"events\":[{\"timeUnixNano\":{}}]"),
         P "events[0].timeUnixNano: must be an integer (a number or a string)"},
        {SPAN("\"links\":[{\"traceState\":1}]"), P "links[0].traceState: must be a string"},
        {SPAN("\"name\":\"x\" \"kind\":1"), "offset 55: invalid JSON: expected ',' or '}'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        col_batch_t out;
        char err[512] = "";
        int rc = decode_z(cases[i].text, &out, err, sizeof(err));
        if (rc != WEFT_EINVAL || strcmp(err, cases[i].want) != 0)
            fail_msg("case %zu: rc %d, err \"%s\"\n want \"%s\"", i, rc, err, cases[i].want);
        assert_int_equal(out.n, 0);
    }
    /* AnyValue: 16 levels pass, 17 do not */
    for (int levels = 16; levels <= 17; levels++) {
        char text[2048];
        size_t o = (size_t)snprintf(text, sizeof(text),
                                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
                                    "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                                    "\"spanId\":\"a1a2a3a4a5a6a7a8\",\"attributes\":[{"
                                    "\"key\":\"deep\",\"value\":");
        for (int d = 1; d < levels; d++)
            o += (size_t)snprintf(text + o, sizeof(text) - o, "{\"arrayValue\":{\"values\":[");
        o += (size_t)snprintf(text + o, sizeof(text) - o, "{}");
        for (int d = 1; d < levels; d++) o += (size_t)snprintf(text + o, sizeof(text) - o, "]}}");
        o += (size_t)snprintf(text + o, sizeof(text) - o, "}]}]}]}]}");
        col_batch_t out;
        char err[512] = "";
        int rc = decode(text, o, &out, err, sizeof(err));
        if (levels == 16) {
            assert_int_equal(rc, 0);
            assert_int_equal(out.n, 1);
        } else {
            assert_int_equal(rc, WEFT_EINVAL);
            if (!strstr(err, ".values[0]: values nested deeper than 16")) fail_msg("%s", err);
        }
    }
#undef SPAN
#undef P
}

static void test_rejected_spans(void **state)
{
#define IDS "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\""
    static const struct {
        const char *span, *want;
    } cases[] = {
        {"\"traceId\":\"0102030405060708090a0b0c0d0e0f\",\"spanId\":\"a1a2a3a4a5a6a7a8\"",
         "span 1: traceId must be 16 bytes (32 hex digits)"},
        {"\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8a9\"",
         "span 1: spanId must be 8 bytes (16 hex digits)"},
        {IDS ",\"parentSpanId\":\"a1a2\"", "span 1: parentSpanId must be 8 bytes (16 hex digits)"},
        {"\"name\":\"no ids\"", "span 1: traceId must be 16 bytes (32 hex digits)"},
        {"\"traceId\":\"\",\"spanId\":\"a1a2a3a4a5a6a7a8\"",
         "span 1: traceId must be 16 bytes (32 hex digits)"},
        {"\"traceId\":\"00000000000000000000000000000000\",\"spanId\":\"a1a2a3a4a5a6a7a8\"",
         "span 1: traceId is all zero"},
        {IDS ",\"startTimeUnixNano\":100,\"endTimeUnixNano\":99",
         "span 1: endTimeUnixNano is before startTimeUnixNano"},
        {IDS ",\"kind\":6", "span 1: kind is not a SpanKind (0 to 5)"},
        {IDS ",\"kind\":-1", "span 1: kind is not a SpanKind (0 to 5)"},
        {IDS ",\"status\":{\"code\":3}", "span 1: status.code is not a StatusCode (0 to 2)"},
        {IDS ",\"links\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\"}]",
         "span 1: links[0].spanId must be 8 bytes (16 hex digits)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{" IDS
                 ",\"name\":\"first\"},{%s},"
                 "{" IDS ",\"name\":\"third\"}]}]}]}",
                 cases[i].span);
        col_batch_t out;
        char err[256] = "";
        assert_int_equal(decode_z(text, &out, err, sizeof(err)), 0);
        assert_int_equal(out.n, 2);
        assert_int_equal(out.rejected, 1);
        if (strcmp(out.reject_msg, cases[i].want) != 0)
            fail_msg("case %zu: \"%s\", want \"%s\"", i, out.reject_msg, cases[i].want);
        assert_true(req_str_is(out.spans[0].name, "first"));
        assert_true(req_str_is(out.spans[1].name, "third"));
    }
    /* more attributes than allowed: refused by count, whatever their number */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_puts(&b, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{" IDS ",\"attributes\":[");
    for (int i = 0; i < 1000; i++) weft_buf_puts(&b, i ? ",{}" : "{}");
    weft_buf_puts(&b, "]}]}]}]}");
    col_batch_t out;
    char err[256];
    assert_int_equal(decode(b.p, b.len, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, 0);
    assert_string_equal(out.reject_msg, "span 0: attributes: more than 256 attributes");
    weft_buf_free(&b);
#undef IDS
}

/* A resource (or scope) after its spans still refuses them when it is over a limit, and
 * the last of two counts (as in protobuf). */
static void test_resource_after_spans(void **state)
{
    char key[COL_KEY_MAX + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = 0;
    static const char span[] = "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                               "\"spanId\":\"a1a2a3a4a5a6a7a8\"}";
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[%s,%s]}],\"resource\":{"
             "\"attributes\":[{\"key\":\"%s\"}]}}]}",
             span, span, key);
    col_batch_t out;
    char err[256];
    assert_int_equal(decode_z(text, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.rejected, 2);
    assert_string_equal(out.reject_msg,
                        "span 0: resource.attributes[0].key is longer than 256 bytes");
    snprintf(text, sizeof(text),
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[%s],\"scope\":{"
             "\"attributes\":[{\"key\":\"%s\"}]}}]}]}",
             span, key);
    assert_int_equal(decode_z(text, &out, err, sizeof(err)), 0);
    assert_int_equal(out.rejected, 1);
    assert_string_equal(out.reject_msg, "span 0: scope.attributes[0].key is longer than 256 bytes");
    /* two resources: the last counts, as in protobuf */
    snprintf(text, sizeof(text),
             "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
             "\"value\":{\"stringValue\":\"one\"}}]},\"scopeSpans\":[{\"spans\":[%s]}],"
             "\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
             "\"stringValue\":\"two\"}}]}}]}",
             span);
    assert_int_equal(decode_z(text, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, 1);
    assert_true(req_str_is(out.spans[0].resource->service, "two"));
}

static void test_limits(void **state)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_puts(&b, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
    for (unsigned i = 0; i < COL_MAX_BATCH_SPANS + 1; i++) weft_buf_puts(&b, i ? ",{}" : "{}");
    weft_buf_puts(&b, "]}]}]}");
    col_batch_t out;
    char err[256];
    assert_int_equal(decode(b.p, b.len, &out, err, sizeof(err)), WEFT_ELIMIT);
    assert_string_equal(err, "more than 65536 spans in one request");
    weft_buf_free(&b);

    weft_buf_init(&b, 0);
    req_build(0, 100, NULL, &b);
    weft_arena_t small;
    weft_arena_init(&small, 4096, 8192);
    assert_int_equal(col_otlp_json_decode(b.p, b.len, &small, &out, err, sizeof(err)), WEFT_ELIMIT);
    assert_string_equal(err, "the request needs more memory than allowed");
    assert_int_equal(out.n, 0);
    weft_arena_free(&small);
    weft_buf_free(&b);
}

/* Every prefix of a request: an error or a batch, never a read past the end. */
/* KeyValues in the shape otlp_json.c reads straight and near it (the member loop reads
 * those): the same values either way. */
static void test_kv_shapes(void **state)
{
    static const char text[] =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
        "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\","
        "\"name\":\"x\",\"attributes\":["
        "{\"key\":\"s\",\"value\":{\"stringValue\":\"v\"}},"                      /* 0 */
        "{\"key\":\"i\",\"value\":{\"intValue\":\"200\"}},"                       /* 1 */
        "{\"key\":\"z\",\"value\":{\"intValue\":\"0\"}},"                         /* 2 */
        "{\"key\":\"neg\",\"value\":{\"intValue\":\"-5\"}},"                      /* 3 */
        "{\"key\":\"big\",\"value\":{\"intValue\":\"9223372036854775807\"}},"     /* 4 */
        "{\"key\":\"esc\",\"value\":{\"stringValue\":\"a\\\"b\"}},"               /* 5 */
        "{ \"key\":\"sp\",\"value\":{\"stringValue\":\"x\"}},"                    /* 6 */
        "{\"key\":\"n\",\"value\":{\"intValue\":5}},"                             /* 7 */
        "{\"key\":\"e\\u0041\",\"value\":{\"stringValue\":\"y\"}},"               /* 8 */
        "{\"value\":{\"stringValue\":\"late\"},\"key\":\"order\"},"               /* 9 */
        "{\"key\":\"caf\xc3\xa9\",\"value\":{\"stringValue\":\"\xe2\x82\xac\"}}," /* 10 */
        /* 11: the value twice */
        "{\"key\":\"two\",\"value\":{\"stringValue\":\"a\"},\"value\":{\"intValue\":\"9\"}}"
        "]}]}]}]}";
    col_batch_t out;
    char err[256] = "";
    assert_int_equal(decode_z(text, &out, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(out.n, 1);
    const col_attr_t *a = out.spans[0].attrs;
    assert_int_equal(out.spans[0].nattrs, 12);
    assert_true(req_str_is(a[0].key, "s"));
    assert_int_equal(a[0].type, COL_V_STRING);
    assert_true(req_str_is(a[0].v.s, "v"));
    assert_true(req_str_is(a[1].key, "i"));
    assert_int_equal(a[1].type, COL_V_INT);
    assert_int_equal(a[1].v.i, 200);
    assert_int_equal(a[2].type, COL_V_INT);
    assert_int_equal(a[2].v.i, 0);
    assert_int_equal(a[3].type, COL_V_INT);
    assert_int_equal(a[3].v.i, -5);
    assert_int_equal(a[4].type, COL_V_INT);
    assert_true(a[4].v.i == INT64_MAX);
    assert_true(req_str_is(a[5].v.s, "a\"b"));
    assert_true(req_str_is(a[6].key, "sp"));
    assert_true(req_str_is(a[6].v.s, "x"));
    assert_int_equal(a[7].type, COL_V_INT);
    assert_int_equal(a[7].v.i, 5);
    assert_true(req_str_is(a[8].key, "eA"));
    assert_true(req_str_is(a[9].key, "order"));
    assert_true(req_str_is(a[9].v.s, "late"));
    assert_true(req_str_is(a[10].key, "caf\xc3\xa9"));
    assert_true(req_str_is(a[10].v.s, "\xe2\x82\xac"));
    assert_true(req_str_is(a[11].key, "two"));
    assert_int_equal(a[11].type, COL_V_INT); /* the last value given */
    assert_int_equal(a[11].v.i, 9);
}

static void test_prefixes(void **state)
{
    size_t n = sizeof(everything_json) - 1;
    for (size_t k = 0; k + 1 < n; k++) { /* the last byte is a newline */
        col_batch_t out;
        char err[256];
        int rc = decode(everything_json, k, &out, err, sizeof(err));
        assert_int_equal(rc, WEFT_EINVAL);
        assert_int_equal(out.n, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exporter_request_both_ways),
        cmocka_unit_test(test_every_field_same_as_pb),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rejected_spans),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_resource_after_spans),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_kv_shapes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
