/*
 * test_otlp_pb.c - OTLP protobuf requests decoded into batches (collector/otlp_pb.c):
 * requests written by weft's own exporter, compared field by field; hand-built ones for
 * what the exporter never writes (links, arrays, key-value lists, bytes, unknown fields,
 * fields out of order, several resources); each malformed input refused whole with its
 * path; each semantic fault refusing one span; the limits; every prefix of a request.
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

static weft_arena_t arena;

static int setup(void **state)
{
    weft_arena_init(&arena, 64 * 1024, 64 << 20);
    return 0;
}

static int teardown(void **state)
{
    weft_arena_free(&arena);
    return 0;
}

/* Decodes b's bytes from an exactly sized heap copy (ASan sees any read past the end);
 * the copy is kept until the next call, as the batch points into it. */
static uint8_t *copy;

static int decode(const weft_buf_t *b, col_batch_t *out, char *err, size_t errlen)
{
    free(copy);
    copy = malloc(b->len ? b->len : 1);
    if (b->len) memcpy(copy, b->p, b->len);
    weft_arena_reset(&arena);
    return col_otlp_pb_decode(copy, b->len, &arena, out, err, errlen);
}

/* A request of one resource and scope around the span fields that body() writes. */
static void request(weft_buf_t *b, void (*body)(weft_buf_t *))
{
    size_t rs = weft__pb_open(b, 1);
    size_t ss = weft__pb_open(b, 2);
    size_t sp = weft__pb_open(b, 2);
    body(b);
    weft__pb_close(b, sp);
    weft__pb_close(b, ss);
    weft__pb_close(b, rs);
}

static void test_exporter_request(void **state)
{
    for (size_t n = 0; n <= 100; n += 25) {
        weft_buf_t pb;
        weft_buf_init(&pb, 0);
        req_build(3, n ? n : 1, &pb, NULL);
        col_batch_t b;
        char err[256];
        assert_int_equal(decode(&pb, &b, err, sizeof(err)), 0);
        assert_int_equal(b.n, n ? n : 1);
        assert_int_equal(b.rejected, 0);
        for (size_t i = 0; i < b.n; i++) req_check_span(&b.spans[i], 3 + (int)i);
        /* one resource and one scope, shared */
        for (size_t i = 1; i < b.n; i++) {
            assert_ptr_equal(b.spans[i].resource, b.spans[0].resource);
            assert_ptr_equal(b.spans[i].scope, b.spans[0].scope);
        }
        /* strings point into the body: zero copy */
        const col_span_t *s = &b.spans[0];
        assert_true((const uint8_t *)s->name.p > copy &&
                    (const uint8_t *)s->name.p < copy + pb.len);
        assert_true((const uint8_t *)s->attrs[0].v.s.p > copy &&
                    (const uint8_t *)s->attrs[0].v.s.p < copy + pb.len);
        weft_buf_free(&pb);
    }
    weft_buf_t empty;
    weft_buf_init(&empty, 0);
    col_batch_t b;
    assert_int_equal(decode(&empty, &b, NULL, 0), 0);
    assert_int_equal(b.n, 0);
}

static void test_every_field(void **state)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    req_everything_pb(&b);
    col_batch_t out;
    char err[256] = "";
    assert_int_equal(decode(&b, &out, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(out.n, 2);
    assert_int_equal(out.rejected, 0);
    const col_span_t *s = &out.spans[0];
    assert_memory_equal(s->trace_id, TID, 16);
    assert_memory_equal(s->span_id, SID, 8);
    assert_memory_equal(s->parent_id, "\0\0\0\0\0\0\0\0", 8);
    assert_true(req_str_is(s->name, "op"));
    assert_true(req_str_is(s->trace_state, "k=v"));
    assert_int_equal(s->kind, COL_KIND_CONSUMER);
    assert_int_equal(s->start_ns, 1000);
    assert_int_equal(s->end_ns, 2000);
    assert_int_equal(s->flags, 0x301);
    assert_int_equal(s->dropped_attrs, 3);
    assert_int_equal(s->dropped_events, 4);
    assert_int_equal(s->dropped_links, 5);
    assert_int_equal(s->status, COL_STATUS_ERROR);
    assert_true(req_str_is(s->status_message, "broken"));
    assert_int_equal(s->nattrs, 7);
    assert_true(req_str_is(s->attrs[0].key, "bin"));
    assert_int_equal(s->attrs[0].type, COL_V_BYTES);
    assert_int_equal(s->attrs[0].v.s.n, 3);
    assert_memory_equal(s->attrs[0].v.s.p, "\x00\xff\x10", 3);
    assert_int_equal(s->attrs[1].type, COL_V_EMPTY);
    assert_int_equal(s->attrs[2].type, COL_V_ARRAY);
    assert_true(req_str_is(
        s->attrs[2].v.s, "[{\"stringValue\":\"a\\\"b\"},{\"intValue\":\"-7\"},{\"boolValue\":true},"
                         "{\"doubleValue\":1.5},{\"bytesValue\":\"aGk=\"},{},"
                         "{\"arrayValue\":{\"values\":[]}}]"));
    assert_int_equal(s->attrs[3].type, COL_V_KVLIST);
    assert_true(req_str_is(s->attrs[3].v.s, "[{\"key\":\"x\",\"value\":{\"doubleValue\":\"NaN\"}},"
                                            "{\"key\":\"y\",\"value\":{}}]"));
    assert_int_equal(s->attrs[4].type, COL_V_INT);
    assert_true(s->attrs[4].v.i == INT64_MIN);
    assert_true(req_str_is(s->attrs[5].key, "novalue"));
    assert_int_equal(s->attrs[5].type, COL_V_EMPTY);
    assert_int_equal(s->attrs[6].type, COL_V_INT);
    assert_int_equal(s->attrs[6].v.i, 42);
    assert_int_equal(s->nevents, 1);
    assert_true(req_str_is(s->events[0].name, "ev"));
    assert_int_equal(s->events[0].time_ns, 1500);
    assert_int_equal(s->events[0].dropped_attrs, 2);
    assert_int_equal(s->events[0].nattrs, 0);
    assert_int_equal(s->nlinks, 1);
    const col_link_t *l = &s->links[0];
    assert_memory_equal(l->trace_id, TID, 16);
    assert_memory_equal(l->span_id, SID, 8);
    assert_true(req_str_is(l->trace_state, "l=1"));
    assert_int_equal(l->flags, 1);
    assert_int_equal(l->dropped_attrs, 6);
    assert_int_equal(l->nattrs, 1);
    assert_int_equal(l->attrs[0].type, COL_V_BOOL);
    assert_false(l->attrs[0].v.b);
    /* the resource read after its spans still applies to them */
    assert_true(req_str_is(s->resource->service, "svc"));
    assert_int_equal(s->resource->nattrs, 2);
    assert_int_equal(s->resource->dropped_attrs, 8);
    assert_true(req_str_is(s->scope->name, "lib"));
    assert_true(req_str_is(s->scope->version, "1.2"));
    assert_int_equal(s->scope->nattrs, 1);
    assert_int_equal(s->scope->dropped_attrs, 9);
    /* the second: an empty resource and scope, never NULL */
    s = &out.spans[1];
    assert_true(req_str_is(s->name, "second"));
    assert_non_null(s->resource);
    assert_true(req_str_is(s->resource->service, ""));
    assert_int_equal(s->resource->nattrs, 0);
    assert_true(req_str_is(s->scope->name, ""));
    assert_int_equal(s->kind, COL_KIND_UNSPECIFIED);
    assert_int_equal(s->status, COL_STATUS_UNSET);
    weft_buf_free(&b);
}

/* ---- malformed requests: refused whole, with the path ---- */

static void bad_wt_kind(weft_buf_t *b)
{
    span_min(b, "x");
    fx64(b, 6, 2); /* kind as fixed64 */
}
static void bad_wt_start(weft_buf_t *b)
{
    weft__pb_bytes(b, 1, TID, 16);
    weft__pb_varint_field(b, 7, 5); /* start as a varint */
}
static void bad_utf8_name(weft_buf_t *b)
{
    span_min(b, "caf\xc3");
}
/* A KeyValue with a string value, the bytes as given (weft__pb_string_kv mends UTF-8). */
static void raw_kv(weft_buf_t *b, unsigned field, const char *k, const char *v)
{
    size_t kv = weft__pb_open(b, field);
    str(b, 1, k);
    size_t at = weft__pb_open(b, 2);
    str(b, 1, v);
    weft__pb_close(b, at);
    weft__pb_close(b, kv);
}
static void bad_utf8_key(weft_buf_t *b)
{
    span_min(b, "x");
    weft__pb_varint_field(b, 6, 1);
    raw_kv(b, 9, "ok", "v");
    raw_kv(b, 9, "\xed\xa0\x80", "v"); /* a surrogate in UTF-8 */
}
static void bad_utf8_value(weft_buf_t *b)
{
    span_min(b, "x");
    raw_kv(b, 9, "k", "\xc0\xaf"); /* overlong */
}
static void bad_group(weft_buf_t *b)
{
    span_min(b, "x");
    tagv(b, 50, 3); /* a group, field 50 */
    tagv(b, 50, 4);
}
static void bad_truncated_varint(weft_buf_t *b)
{
    span_min(b, "x");
    weft_buf_putc(b, 6 << 3);
    weft_buf_putc(b, (char)0x80); /* continues past the span's end */
}
static void bad_field_zero(weft_buf_t *b)
{
    span_min(b, "x");
    weft_buf_putc(b, 0 << 3 | 0);
    weft_buf_putc(b, 1);
}
static void bad_event_wt(weft_buf_t *b)
{
    span_min(b, "x");
    size_t ev = weft__pb_open(b, 11);
    fx64(b, 1, 5);
    weft__pb_varint_field(b, 2, 1); /* name as a varint */
    weft__pb_close(b, ev);
}
static void bad_status_wt(weft_buf_t *b)
{
    span_min(b, "x");
    size_t st = weft__pb_open(b, 15);
    fx32(b, 3, 2);
    weft__pb_close(b, st);
}
static void bad_deep(weft_buf_t *b)
{
    span_min(b, "x");
    size_t kv = weft__pb_open(b, 9);
    str(b, 1, "deep");
    size_t open[40];
    int k = 0;
    open[k++] = weft__pb_open(b, 2); /* the value: depth 1 */
    for (int d = 2; d <= 17; d++) {  /* an array holding an AnyValue, 16 more deep */
        open[k++] = weft__pb_open(b, 5);
        open[k++] = weft__pb_open(b, 1);
    }
    while (k) weft__pb_close(b, open[--k]);
    weft__pb_close(b, kv);
}
static void ok_deep16(weft_buf_t *b)
{
    span_min(b, "x");
    size_t kv = weft__pb_open(b, 9);
    str(b, 1, "deep");
    size_t open[40];
    int k = 0;
    open[k++] = weft__pb_open(b, 2);
    for (int d = 2; d <= 16; d++) {
        open[k++] = weft__pb_open(b, 5);
        open[k++] = weft__pb_open(b, 1);
    }
    while (k) weft__pb_close(b, open[--k]);
    weft__pb_close(b, kv);
}
static void bad_link_state(weft_buf_t *b)
{
    span_min(b, "x");
    size_t ln = weft__pb_open(b, 13);
    str(b, 3, "\xff");
    weft__pb_close(b, ln);
}
static void bad_kvlist_key(weft_buf_t *b)
{
    span_min(b, "x");
    size_t kv = weft__pb_open(b, 9);
    str(b, 1, "k");
    size_t v = weft__pb_open(b, 2);
    size_t l = weft__pb_open(b, 6);
    size_t e = weft__pb_open(b, 1);
    weft__pb_varint_field(b, 1, 3); /* key as a varint */
    weft__pb_close(b, e);
    weft__pb_close(b, l);
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
}

static void test_malformed(void **state)
{
    static const struct {
        void (*body)(weft_buf_t *);
        const char *want;
    } cases[] = {
        {bad_wt_kind, "resourceSpans[0].scopeSpans[0].spans[0].kind: wire type 1 (fixed64) where "
                      "varint belongs"},
        {bad_wt_start, "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: wire type 0 "
                       "(varint) where fixed64 belongs"},
        {bad_utf8_name, "resourceSpans[0].scopeSpans[0].spans[0].name: invalid UTF-8"},
        {bad_utf8_key, "resourceSpans[0].scopeSpans[0].spans[0].attributes[1].key: invalid UTF-8"},
        {bad_utf8_value,
         "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.stringValue: invalid UTF-8"},
        {bad_group, "resourceSpans[0].scopeSpans[0].spans[0].field 50: groups (wire types 3 and 4) "
                    "are not supported"},
        {bad_truncated_varint, "resourceSpans[0].scopeSpans[0].spans[0].kind: truncated or "
                               "overlong varint"},
        {bad_field_zero, "resourceSpans[0].scopeSpans[0].spans[0]: invalid field number"},
        {bad_event_wt, "resourceSpans[0].scopeSpans[0].spans[0].events[0].name: wire type 0 "
                       "(varint) where length-delimited belongs"},
        {bad_status_wt, "resourceSpans[0].scopeSpans[0].spans[0].status.code: wire type 5 "
                        "(fixed32) where varint belongs"},
        {bad_deep, "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.arrayValue"
                   ".values[0].arrayValue.values[0].arrayValue.values[0].arrayValue.values[0]"
                   ".arrayValue.values[0].arrayValue.values[0].arrayValue.values[0].arrayValue"
                   ".values[0].arrayValue.values[0].arrayValue.values[0].arrayValue.values[0]"
                   ".arrayValue.values[0].arrayValue.values[0].arrayValue.values[0].arrayValue"
                   ".values[0].arrayValue.values[0]: values nested deeper than 16"},
        {bad_link_state, "resourceSpans[0].scopeSpans[0].spans[0].links[0].traceState: invalid "
                         "UTF-8"},
        {bad_kvlist_key, "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.kvlistValue"
                         ".values[0].key: wire type 0 (varint) where length-delimited belongs"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        request(&b, cases[i].body);
        col_batch_t out;
        char err[512] = "";
        int rc = decode(&b, &out, err, sizeof(err));
        if (rc != WEFT_EINVAL || strcmp(err, cases[i].want) != 0)
            fail_msg("case %zu: rc %d, err \"%s\"\n want \"%s\"", i, rc, err, cases[i].want);
        assert_int_equal(out.n, 0);
        weft_buf_free(&b);
    }
    /* 16 levels are allowed */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    request(&b, ok_deep16);
    col_batch_t out;
    char err[256];
    assert_int_equal(decode(&b, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.spans[0].attrs[0].type, COL_V_ARRAY);
    weft_buf_free(&b);
    /* not protobuf at all; wrong wire type at the top */
    static const struct {
        const char *bytes;
        size_t n;
        const char *want;
    } raw[] = {
        {"\x0a\x05\x12", 3, "resourceSpans: truncated length-delimited field"},
        {"\x08\x01", 2, "resourceSpans: wire type 0 (varint) where length-delimited belongs"},
        {"\x0a\x02\x12\x01", 4, "resourceSpans[0].scopeSpans: truncated length-delimited field"},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11,
         "truncated or overlong varint in a tag"},
        {"{\"resourceSpans\":[]}", 20, "field 15: groups (wire types 3 and 4) are not supported"},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        weft_buf_t r;
        weft_buf_init(&r, 0);
        weft_buf_put(&r, raw[i].bytes, raw[i].n);
        int rc = decode(&r, &out, err, sizeof(err));
        if (rc != WEFT_EINVAL || strcmp(err, raw[i].want) != 0)
            fail_msg("raw %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, raw[i].want);
        weft_buf_free(&r);
    }
}

/* ---- one span refused, the others kept ---- */

static void rej_short_trace(weft_buf_t *b)
{
    weft__pb_bytes(b, 1, TID, 15);
    weft__pb_bytes(b, 2, SID, 8);
}
static void rej_long_span(weft_buf_t *b)
{
    weft__pb_bytes(b, 1, TID, 16);
    weft__pb_bytes(b, 2, TID, 9);
}
static void rej_parent(weft_buf_t *b)
{
    span_min(b, "x");
    weft__pb_bytes(b, 4, SID, 4);
}
static void rej_no_ids(weft_buf_t *b)
{
    str(b, 5, "no ids");
}
static void rej_zero(weft_buf_t *b)
{
    weft__pb_bytes(b, 1, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    weft__pb_bytes(b, 2, SID, 8);
}
static void rej_times(weft_buf_t *b)
{
    span_min(b, "x");
    fx64(b, 8, 99);
}
static void rej_kind(weft_buf_t *b)
{
    span_min(b, "x");
    weft__pb_varint_field(b, 6, 6);
}
static void rej_status(weft_buf_t *b)
{
    span_min(b, "x");
    size_t st = weft__pb_open(b, 15);
    weft__pb_varint_field(b, 3, 3);
    weft__pb_close(b, st);
}
static void rej_link(weft_buf_t *b)
{
    span_min(b, "x");
    size_t ln = weft__pb_open(b, 13);
    weft__pb_bytes(b, 1, TID, 16);
    weft__pb_close(b, ln);
}
static void rej_name(weft_buf_t *b)
{
    char name[COL_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    span_min(b, name);
}

static void test_rejected_spans(void **state)
{
    static const struct {
        void (*body)(weft_buf_t *);
        const char *want;
    } cases[] = {
        {rej_short_trace, "span 1: traceId must be 16 bytes (32 hex digits)"},
        {rej_long_span, "span 1: spanId must be 8 bytes (16 hex digits)"},
        {rej_parent, "span 1: parentSpanId must be 8 bytes (16 hex digits)"},
        {rej_no_ids, "span 1: traceId must be 16 bytes (32 hex digits)"},
        {rej_zero, "span 1: traceId is all zero"},
        {rej_times, "span 1: endTimeUnixNano is before startTimeUnixNano"},
        {rej_kind, "span 1: kind is not a SpanKind (0 to 5)"},
        {rej_status, "span 1: status.code is not a StatusCode (0 to 2)"},
        {rej_link, "span 1: links[0].spanId must be 8 bytes (16 hex digits)"},
        {rej_name, "span 1: name is longer than 1024 bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* a good span, the bad one, a good one */
        weft_buf_t b;
        weft_buf_init(&b, 0);
        size_t rs = weft__pb_open(&b, 1);
        size_t ss = weft__pb_open(&b, 2);
        size_t sp = weft__pb_open(&b, 2);
        span_min(&b, "first");
        weft__pb_close(&b, sp);
        sp = weft__pb_open(&b, 2);
        cases[i].body(&b);
        weft__pb_close(&b, sp);
        sp = weft__pb_open(&b, 2);
        span_min(&b, "third");
        weft__pb_close(&b, sp);
        weft__pb_close(&b, ss);
        weft__pb_close(&b, rs);
        col_batch_t out;
        char err[256] = "";
        assert_int_equal(decode(&b, &out, err, sizeof(err)), 0);
        assert_int_equal(out.n, 2);
        assert_int_equal(out.rejected, 1);
        if (strcmp(out.reject_msg, cases[i].want) != 0)
            fail_msg("case %zu: \"%s\", want \"%s\"", i, out.reject_msg, cases[i].want);
        assert_true(req_str_is(out.spans[0].name, "first"));
        assert_true(req_str_is(out.spans[1].name, "third"));
        weft_buf_free(&b);
    }
}

/* A resource (or scope) after its spans still refuses them when it is over a limit. */
static void test_resource_after_spans(void **state)
{
    char key[COL_KEY_MAX + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = 0;
    for (int which = 0; which < 2; which++) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        size_t rs = weft__pb_open(&b, 1);
        size_t ss = weft__pb_open(&b, 2);
        for (int i = 0; i < 2; i++) {
            size_t sp = weft__pb_open(&b, 2);
            span_min(&b, "s");
            weft__pb_close(&b, sp);
        }
        if (which == 1) { /* the scope, after the spans */
            size_t sc = weft__pb_open(&b, 1);
            weft__pb_string_kv(&b, 3, key, "v");
            weft__pb_close(&b, sc);
        }
        weft__pb_close(&b, ss);
        if (which == 0) { /* the resource, after its scopeSpans */
            size_t res = weft__pb_open(&b, 1);
            weft__pb_string_kv(&b, 1, key, "v");
            weft__pb_close(&b, res);
        }
        weft__pb_close(&b, rs);
        col_batch_t out;
        char err[256];
        assert_int_equal(decode(&b, &out, err, sizeof(err)), 0);
        assert_int_equal(out.n, 0);
        assert_int_equal(out.rejected, 2);
        assert_string_equal(out.reject_msg, which == 0
                                                ? "span 0: resource.attributes[0].key is longer "
                                                  "than 256 bytes"
                                                : "span 0: scope.attributes[0].key is longer than "
                                                  "256 bytes");
        weft_buf_free(&b);
    }
}

static void test_limits(void **state)
{
    /* more than COL_MAX_BATCH_SPANS spans (empty ones: 2 bytes each) */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    size_t rs = weft__pb_open(&b, 1);
    size_t ss = weft__pb_open(&b, 2);
    for (unsigned i = 0; i < COL_MAX_BATCH_SPANS + 1; i++) weft_buf_put(&b, "\x12\x00", 2);
    weft__pb_close(&b, ss);
    weft__pb_close(&b, rs);
    col_batch_t out;
    char err[256];
    assert_int_equal(decode(&b, &out, err, sizeof(err)), WEFT_ELIMIT);
    assert_string_equal(err, "more than 65536 spans in one request");
    weft_buf_free(&b);

    /* the arena's limit */
    weft_buf_init(&b, 0);
    req_build(0, 100, &b, NULL);
    weft_arena_t small;
    weft_arena_init(&small, 4096, 8192);
    assert_int_equal(
        col_otlp_pb_decode((const uint8_t *)b.p, b.len, &small, &out, err, sizeof(err)),
        WEFT_ELIMIT);
    assert_string_equal(err, "the request needs more memory than allowed");
    assert_int_equal(out.n, 0);
    weft_arena_free(&small);
    weft_buf_free(&b);
}

/* Every prefix of a valid request: an error or a batch, never a read past the end (the
 * prefix is copied to an exactly sized block). */
/* ---- KeyValues in and out of the common shape (otlp_pb.c reads that one straight) ---- */

static void kv_open(weft_buf_t *b, const char *key, size_t *kv, size_t *v)
{
    *kv = weft__pb_open(b, 9);
    if (key) str(b, 1, key);
    *v = weft__pb_open(b, 2);
}
static void kv_close(weft_buf_t *b, size_t kv, size_t v)
{
    weft__pb_close(b, v);
    weft__pb_close(b, kv);
}
static char long_str[201], long_key[151];

static void kv_shapes(weft_buf_t *b)
{
    span_min(b, "x");
    size_t kv, v;
    kv_open(b, "s", &kv, &v), str(b, 1, "v"), kv_close(b, kv, v);                 /* 0 */
    kv_open(b, "b", &kv, &v), weft__pb_varint_field(b, 2, 1), kv_close(b, kv, v); /* 1 */
    kv_open(b, "i", &kv, &v), weft__pb_varint_field(b, 3, (uint64_t)-1);          /* 2 */
    kv_close(b, kv, v);
    kv_open(b, "d", &kv, &v), fx64(b, 4, 0x4004000000000000ull), kv_close(b, kv, v); /* 3 */
    /* 4: the value before the key */
    kv = weft__pb_open(b, 9);
    v = weft__pb_open(b, 2);
    str(b, 1, "late");
    weft__pb_close(b, v);
    str(b, 1, "order");
    weft__pb_close(b, kv);
    kv_open(b, "two", &kv, &v), str(b, 1, "a"), str(b, 1, "b"), kv_close(b, kv, v); /* 5 */
    /* 6: the key twice */
    kv = weft__pb_open(b, 9);
    str(b, 1, "k1");
    str(b, 1, "k2");
    v = weft__pb_open(b, 2);
    weft__pb_varint_field(b, 3, 5);
    kv_close(b, kv, v);
    kv_open(b, "long", &kv, &v), str(b, 1, long_str), kv_close(b, kv, v);        /* 7 */
    kv_open(b, "unk", &kv, &v), str(b, 1, "u"), weft__pb_varint_field(b, 99, 1); /* 8 */
    kv_close(b, kv, v);
    kv_open(b, "empty", &kv, &v), kv_close(b, kv, v);                                  /* 9 */
    kv_open(b, "f", &kv, &v), weft__pb_varint_field(b, 2, 0), kv_close(b, kv, v);      /* 10 */
    kv_open(b, long_key, &kv, &v), weft__pb_varint_field(b, 3, 7), kv_close(b, kv, v); /* 11 */
    kv_open(b, "bool2", &kv, &v), weft__pb_varint_field(b, 2, 2), kv_close(b, kv, v);  /* 12 */
}

static void test_kv_shapes(void **state)
{
    memset(long_str, 'x', 200);
    memset(long_key, 'k', 150);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    request(&b, kv_shapes);
    col_batch_t out;
    char err[256] = "";
    assert_int_equal(decode(&b, &out, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(out.n, 1);
    const col_attr_t *a = out.spans[0].attrs;
    assert_int_equal(out.spans[0].nattrs, 13);
    assert_true(req_str_is(a[0].key, "s"));
    assert_int_equal(a[0].type, COL_V_STRING);
    assert_true(req_str_is(a[0].v.s, "v"));
    assert_true(req_str_is(a[1].key, "b"));
    assert_int_equal(a[1].type, COL_V_BOOL);
    assert_true(a[1].v.b);
    assert_true(req_str_is(a[2].key, "i"));
    assert_int_equal(a[2].type, COL_V_INT);
    assert_true(a[2].v.i == -1);
    assert_true(req_str_is(a[3].key, "d"));
    assert_int_equal(a[3].type, COL_V_DOUBLE);
    assert_true(a[3].v.d == 2.5);
    assert_true(req_str_is(a[4].key, "order"));
    assert_int_equal(a[4].type, COL_V_STRING);
    assert_true(req_str_is(a[4].v.s, "late"));
    assert_true(req_str_is(a[5].key, "two"));
    assert_true(req_str_is(a[5].v.s, "b")); /* the last value given */
    assert_true(req_str_is(a[6].key, "k2"));
    assert_int_equal(a[6].type, COL_V_INT);
    assert_int_equal(a[6].v.i, 5);
    assert_int_equal(a[7].type, COL_V_STRING);
    assert_true(req_str_is(a[7].v.s, long_str));
    assert_int_equal(a[8].type, COL_V_STRING);
    assert_true(req_str_is(a[8].v.s, "u"));
    assert_true(req_str_is(a[9].key, "empty"));
    assert_int_equal(a[9].type, COL_V_EMPTY);
    assert_int_equal(a[10].type, COL_V_BOOL);
    assert_false(a[10].v.b);
    assert_true(req_str_is(a[11].key, long_key));
    assert_int_equal(a[11].v.i, 7);
    assert_int_equal(a[12].type, COL_V_BOOL);
    assert_true(a[12].v.b);
    weft_buf_free(&b);
}

static void test_prefixes(void **state)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    request(&b, req_everything_span);
    for (size_t n = 0; n < b.len; n++) {
        weft_buf_t pre;
        weft_buf_init(&pre, 0);
        weft_buf_put(&pre, b.p, n);
        col_batch_t out;
        char err[256];
        int rc = decode(&pre, &out, err, sizeof(err));
        assert_true(rc == 0 || rc == WEFT_EINVAL);
        if (rc == 0) assert_true(out.n <= 1);
        weft_buf_free(&pre);
    }
    weft_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exporter_request), cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_rejected_spans),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_resource_after_spans),
        cmocka_unit_test(test_prefixes),         cmocka_unit_test(test_kv_shapes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
