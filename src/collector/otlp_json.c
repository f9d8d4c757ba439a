/*
 * otlp_json.c - OTLP/HTTP's ExportTraceServiceRequest in JSON, decoded into a batch of
 * spans (collector/decode.h).
 *
 * The OTLP specification's JSON mapping of the protobuf messages: protobuf's canonical
 * JSON (proto3 JSON mapping) with OTLP's own exceptions. The body is read once with the
 * pull reader (core/json_read.h), straight into the batch; strings without escapes stay
 * views into the body.
 *
 * What is taken (as protobuf's JSON parsers take it, so that any OTLP exporter's body
 * reads): member names in lowerCamelCase or as the .proto's snake_case names; unknown
 * members skipped; null for a field is its default; 64-bit integers (times, intValue) as
 * decimal strings or numbers, 32-bit ones (flags, dropped counts) as numbers or strings;
 * enums (kind, status.code) as integers or their names ("SPAN_KIND_SERVER",
 * "STATUS_CODE_ERROR"); doubleValue as a number, a numeric string, or "NaN", "Infinity",
 * "-Infinity"; bytesValue as base64 (standard or URL-safe, padding optional). OTLP's
 * exceptions: traceId, spanId and parentSpanId are hex (either case), not base64.
 *
 * What refuses the whole request (400): text that is not JSON ("offset 1234: invalid
 * JSON: expected ':'"), a known field of the wrong JSON type or out of its type's range,
 * an id that is not hex, an unknown enum name, base64 that is not, AnyValue nested deeper
 * than 16; the message names the field's path ("resourceSpans[0].scopeSpans[1].spans[3]
 * .kind: unknown SpanKind name"). What refuses one span (partial_success), exactly as the
 * protobuf decoder (otlp_pb.c) does: ids of the wrong length (32 and 16 hex digits; an
 * empty or missing parentSpanId is a root), kind outside 0..5, status code outside 0..2,
 * and col_span_check's faults. The same request in either encoding gives the same batch,
 * ARRAY and KVLIST text included (otlp_any.c writes it for both).
 *
 * Arrays of unknown length (spans, attributes, events, links) are gathered in scratch
 * vectors (malloc'd per call, freed at its end) and copied into the arena once complete;
 * the attribute vector is a stack, as event and link attributes finish inside their span.
 * A vector keeps at most one element past its limit (COL_MAX_ATTRS, COL_MAX_EVENTS,
 * COL_MAX_LINKS), counting no further: the span is refused for it anyway, and the scratch
 * memory stays bounded whatever the body. More than COL_MAX_BATCH_SPANS spans: WEFT_ELIMIT.
 *
 * A ResourceSpans' resource and a ScopeSpans' scope usually come before their spans, and
 * each span is checked with them as it is read; one that comes after some of its spans is
 * checked once more at the end of its object (col_shared_check), and its faults refuse the
 * spans read before it too. A member given twice keeps its last value; the protobuf
 * decoder does the same.
 *
 * Recursion: AnyValue's only, bounded (depth 16); the reader bounds the rest (64).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/decode.h"
#include "collector/otlp_any.h"
#include "core/errbuf.h"
#include "core/json_read.h"
#include "weft/common.h"

typedef struct {
    char *p;
    size_t n, cap; /* elements */
} vec_t;

typedef struct {
    weft_jr_t r;
    weft_arena_t *a;
    col_batch_t *b;
    char *err;
    size_t errlen;
    int rc;
    col_path_t path;
    weft_buf_t jb;
    vec_t spans, attrs, events, links;
    vec_t idx;       /* each kept span's number in the request (size_t, parallel to spans) */
    const char *why; /* the span being read: why it is refused (the first reason) */
    char why_buf[96];
    size_t index; /* the request's span number */
} ctx_t;

/* ---- errors and the path ---- */

static void push(ctx_t *c, const char *name, int index)
{
    col_path_push(&c->path, name, index);
}

static void pop(ctx_t *c)
{
    col_path_pop(&c->path);
}

/* Refuses the request: "<path>.<field>: <msg>" (WEFT_EINVAL). Stops the reader. */
static bool bad(ctx_t *c, const char *field, const char *msg)
{
    if (c->rc) return false;
    c->rc = col_path_errf(&c->path, field, msg, c->err, c->errlen);
    weft_jr_fail(&c->r, msg);
    return false;
}

/* A failed read of a known field's value: the reader's phrase under the field's path
 * (unless it is the arena's limit or memory, which stop the request as such). */
static bool bad_read(ctx_t *c, const char *field)
{
    if (c->rc || !c->r.err || c->r.err_code != WEFT_EINVAL) return false;
    return bad(c, field, c->r.err);
}

static bool nomem(ctx_t *c, int rc)
{
    if (c->rc) return false;
    c->rc = rc == WEFT_ELIMIT
                ? weft__errf(c->err, c->errlen, rc, "the request needs more memory than allowed")
                : weft__errf(c->err, c->errlen, rc, "out of memory");
    weft_jr_fail(&c->r, "out of memory");
    return false;
}

static bool ok(const ctx_t *c)
{
    return !c->rc && !c->r.err;
}

static void refuse(ctx_t *c, const char *why)
{
    if (!c->why) c->why = why;
}

static void id_refuse(ctx_t *c, const char *name, size_t want, int li)
{
    if (c->why) return;
    col_id_why(c->why_buf, sizeof(c->why_buf), name, want, li);
    c->why = c->why_buf;
}

/* ---- scratch vectors ---- */

/* A new zeroed element at the end of v (elem bytes), or NULL (out of memory, recorded). */
static void *vec_push(ctx_t *c, vec_t *v, size_t elem)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char *p = realloc(v->p, cap * elem);
        if (!p) {
            nomem(c, WEFT_ENOMEM);
            return NULL;
        }
        v->p = p;
        v->cap = cap;
    }
    void *e = v->p + v->n++ * elem;
    memset(e, 0, elem);
    return e;
}

/* Elements [base, v->n) into the arena (*out, *n); v is cut back to base. */
static bool vec_take(ctx_t *c, vec_t *v, size_t base, size_t elem, void **out, uint32_t *n)
{
    size_t cnt = v->n - base;
    *out = NULL;
    *n = (uint32_t)cnt;
    if (cnt) {
        int rc = col_arena_alloc(c->a, cnt * elem, out);
        if (rc) return nomem(c, rc);
        memcpy(*out, v->p + base * elem, cnt * elem);
    }
    v->n = base;
    return true;
}

/* ---- member names: lowerCamelCase and the .proto's names ---- */

typedef struct {
    const char *camel, *snake; /* snake NULL: the same */
    uint8_t cn, sn;            /* their lengths */
} name_t;
#define N(camel, snake)                                                                            \
    {                                                                                              \
        camel, snake, sizeof(camel) - 1, sizeof(snake) - 1                                         \
    }
#define N1(camel)                                                                                  \
    {                                                                                              \
        camel, NULL, sizeof(camel) - 1, 0                                                          \
    }

/* The index of k in names (n entries), or -1. */
static inline int name_of(weft_jr_str_t k, const name_t *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (k.n == names[i].cn && memcmp(k.p, names[i].camel, k.n) == 0) return i;
        if (k.n == names[i].sn && names[i].snake && memcmp(k.p, names[i].snake, k.n) == 0) return i;
    }
    return -1;
}

/* ---- typed reads of known fields (null: the default, nothing read) ---- */

/* The next value is of type got where another belongs: false, with a syntax error when got
 * is none (the reader's), else msg under the field's path. */
static bool type_fault(ctx_t *c, const char *field, weft_jr_type_t got, const char *msg)
{
    if (got == WEFT_JR_NONE) {
        if (!c->r.err) weft_jr_skip(&c->r);
        return false;
    }
    return bad(c, field, msg);
}

static bool want_type(ctx_t *c, const char *field, weft_jr_type_t t, const char *msg)
{
    weft_jr_type_t got = weft_jr_peek(&c->r);
    if (got == t || (t == WEFT_JR_TRUE && got == WEFT_JR_FALSE)) return true;
    return type_fault(c, field, got, msg);
}

static bool get_str(ctx_t *c, const char *field, col_str_t *out)
{
    weft_jr_type_t t = weft_jr_peek(&c->r);
    if (t != WEFT_JR_STRING)
        return t == WEFT_JR_NULL ? weft_jr_null(&c->r)
                                 : type_fault(c, field, t, "must be a string");
    weft_jr_str_t s;
    if (!weft_jr_string(&c->r, &s)) return bad_read(c, field);
    if (s.n > UINT32_MAX) return bad(c, field, "too long");
    out->p = s.p;
    out->n = (uint32_t)s.n;
    return true;
}

static bool get_u64(ctx_t *c, const char *field, uint64_t *v)
{
    weft_jr_type_t t = weft_jr_peek(&c->r);
    if (t != WEFT_JR_NUMBER && t != WEFT_JR_STRING)
        return t == WEFT_JR_NULL
                   ? weft_jr_null(&c->r)
                   : type_fault(c, field, t, "must be an integer (a number or a string)");
    if (!weft_jr_uint64(&c->r, v)) return bad_read(c, field);
    return true;
}

static bool get_u32(ctx_t *c, const char *field, uint32_t *v)
{
    uint64_t x = *v;
    if (!get_u64(c, field, &x)) return false;
    if (x > UINT32_MAX) return bad(c, field, "integer out of range");
    *v = (uint32_t)x;
    return true;
}

/* An enum: an integer (int32), or one of names (names[i] is value i). */
static bool get_enum(ctx_t *c, const char *field, const char *const *names, int nnames,
                     const char *what, int64_t *v)
{
    if (weft_jr_null(&c->r)) return true;
    weft_jr_type_t t = weft_jr_peek(&c->r);
    if (t == WEFT_JR_STRING) {
        weft_jr_str_t s;
        if (!weft_jr_string(&c->r, &s)) return bad_read(c, field);
        for (int i = 0; i < nnames; i++)
            if (weft_jr_key_is(s, names[i])) {
                *v = i;
                return true;
            }
        char msg[64];
        snprintf(msg, sizeof(msg), "unknown %s name", what);
        return bad(c, field, msg);
    }
    if (t != WEFT_JR_NUMBER) {
        if (t == WEFT_JR_NONE) return false;
        return bad(c, field, "must be an integer or an enum name");
    }
    if (!weft_jr_int64(&c->r, v)) return bad_read(c, field);
    if (*v < INT32_MIN || *v > INT32_MAX) return bad(c, field, "integer out of range");
    return true;
}

/* An id: hex digits into out (want bytes), or the span refused for its length. */
static bool get_id(ctx_t *c, const char *field, uint8_t *out, size_t want, bool empty_ok, int li,
                   bool *seen)
{
    memset(out, 0, want);
    weft_jr_type_t t = weft_jr_peek(&c->r);
    if (t != WEFT_JR_STRING)
        return t == WEFT_JR_NULL ? weft_jr_null(&c->r)
                                 : type_fault(c, field, t, "must be a string of hex digits");
    weft_jr_str_t s;
    if (!weft_jr_string(&c->r, &s)) return bad_read(c, field);
    *seen = true;
    if (s.n == 2 * want) {
        if (!col_hex_decode(s.p, want, out)) return bad(c, field, "must be hex digits");
        return true;
    }
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return bad(c, field, "must be hex digits");
    }
    if (!(empty_ok && s.n == 0)) id_refuse(c, field, want, li);
    return true;
}

/* ---- AnyValue ---- */

enum { AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES };
static const name_t any_names[] = {
    N("stringValue", "string_value"), N("boolValue", "bool_value"),
    N("intValue", "int_value"),       N("doubleValue", "double_value"),
    N("arrayValue", "array_value"),   N("kvlistValue", "kvlist_value"),
    N("bytesValue", "bytes_value"),
};

static bool get_double(ctx_t *c, const char *field, double *d)
{
    weft_jr_type_t t = weft_jr_peek(&c->r);
    if (t == WEFT_JR_NUMBER) {
        if (!weft_jr_double(&c->r, d)) return bad_read(c, field);
        return true;
    }
    if (t != WEFT_JR_STRING) {
        if (t == WEFT_JR_NONE) return false;
        return bad(c, field, "must be a number");
    }
    weft_jr_str_t s;
    if (!weft_jr_string(&c->r, &s)) return bad_read(c, field);
    if (weft_jr_key_is(s, "NaN"))
        *d = NAN;
    else if (weft_jr_key_is(s, "Infinity"))
        *d = INFINITY;
    else if (weft_jr_key_is(s, "-Infinity"))
        *d = -INFINITY;
    else {
        weft_jr_t sub;
        weft_jr_init(&sub, s.p, s.n, NULL);
        if (weft_jr_peek(&sub) != WEFT_JR_NUMBER || !weft_jr_double(&sub, d) || !weft_jr_end(&sub))
            return bad(c, field, "must be a number");
    }
    return true;
}

static bool get_bytes(ctx_t *c, const char *field, col_str_t *out)
{
    if (!want_type(c, field, WEFT_JR_STRING, "must be a base64 string")) return false;
    weft_jr_str_t s;
    if (!weft_jr_string(&c->r, &s)) return bad_read(c, field);
    uint8_t *p;
    int rc = col_arena_alloc(c->a, s.n / 4 * 3 + 3, (void **)&p);
    if (rc) return nomem(c, rc);
    long n = col_base64_decode(s.p, s.n, p);
    if (n < 0) return bad(c, field, "must be base64");
    out->p = (const char *)p;
    out->n = (uint32_t)n;
    return true;
}

static bool any_json(ctx_t *c, unsigned depth);

/* An ArrayValue's or KeyValueList's {"values":[...]} elements as JSON into c->jb. */
static bool list_json(ctx_t *c, bool kv, unsigned depth)
{
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    bool first = true;
    while (weft_jr_key(&c->r, &k)) {
        if (!weft_jr_key_is(k, "values")) {
            weft_jr_skip(&c->r);
            continue;
        }
        if (weft_jr_null(&c->r)) continue;
        if (!want_type(c, "values", WEFT_JR_ARRAY, "must be an array")) return false;
        weft_jr_array(&c->r);
        if (!first) weft_buf_putc(&c->jb, ','); /* "values" given twice: both kept */
        for (int i = 0; weft_jr_next(&c->r); i++) {
            if (i) weft_buf_putc(&c->jb, ',');
            first = false;
            push(c, "values", i);
            bool good;
            if (!kv) {
                good = any_json(c, depth);
            } else if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) {
                good = false;
            } else {
                /* KeyValue: the key first in the text, not always */
                col_str_t key = {"", 0};
                weft_buf_t saved = c->jb; /* the value is written after the key */
                weft_buf_t val;
                weft_buf_init(&val, COL_ANY_BUF_LIMIT);
                c->jb = val;
                bool has_val = false;
                good = true;
                weft_jr_object(&c->r);
                weft_jr_str_t kk;
                while (good && weft_jr_key(&c->r, &kk)) {
                    if (weft_jr_key_is(kk, "key")) {
                        good = get_str(c, "key", &key);
                    } else if (weft_jr_key_is(kk, "value")) {
                        if (weft_jr_null(&c->r)) continue;
                        weft_buf_reset(&c->jb);
                        push(c, "value", -1);
                        good = any_json(c, depth);
                        pop(c);
                        has_val = good;
                    } else {
                        weft_jr_skip(&c->r);
                    }
                }
                val = c->jb;
                c->jb = saved;
                good = good && ok(c);
                if (good) {
                    col_any_put_key(&c->jb, key.p, key.n);
                    if (has_val && !val.failed)
                        weft_buf_put(&c->jb, val.p ? val.p : "", val.len);
                    else if (has_val)
                        c->jb.failed = true; /* over the limit, like the value */
                    else
                        col_any_put_empty(&c->jb);
                    weft_buf_putc(&c->jb, '}');
                }
                weft_buf_free(&val);
            }
            pop(c);
            if (!good) return false;
        }
    }
    return ok(c);
}

/* A nested AnyValue as JSON into c->jb. */
static bool any_json(ctx_t *c, unsigned depth)
{
    if (depth > COL_ANY_MAX_DEPTH) return bad(c, NULL, "values nested deeper than 16");
    if (weft_jr_null(&c->r)) {
        col_any_put_empty(&c->jb);
        return true;
    }
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    /* oneof: the last value given wins, so each is written to a scratch text first */
    size_t start = c->jb.len;
    bool any = false;
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        int f = name_of(k, any_names, 7);
        if (f < 0) {
            weft_jr_skip(&c->r);
            continue;
        }
        const char *field = any_names[f].camel;
        if (weft_jr_null(&c->r)) continue;
        if (any) { /* a second value: drop the first */
            c->jb.len = start;
            if (c->jb.p) c->jb.p[start] = 0;
        }
        any = true;
        switch (f) {
        case AV_STRING: {
            col_str_t s = {"", 0};
            if (!get_str(c, field, &s)) return false;
            col_any_put_string(&c->jb, s.p, s.n);
            break;
        }
        case AV_BOOL: {
            bool v;
            if (!want_type(c, field, WEFT_JR_TRUE, "must be true or false")) return false;
            if (!weft_jr_bool(&c->r, &v)) return bad_read(c, field);
            col_any_put_bool(&c->jb, v);
            break;
        }
        case AV_INT: {
            int64_t v;
            weft_jr_type_t t = weft_jr_peek(&c->r);
            if (t != WEFT_JR_NUMBER && t != WEFT_JR_STRING)
                return t == WEFT_JR_NONE ? false : bad(c, field, "must be an integer");
            if (!weft_jr_int64(&c->r, &v)) return bad_read(c, field);
            col_any_put_int(&c->jb, v);
            break;
        }
        case AV_DOUBLE: {
            double d;
            if (!get_double(c, field, &d)) return false;
            col_any_put_double(&c->jb, d);
            break;
        }
        case AV_ARRAY:
        case AV_KVLIST:
            weft_buf_puts(&c->jb, f == AV_ARRAY ? COL_ANY_ARRAY_OPEN : COL_ANY_KVLIST_OPEN);
            push(c, field, -1);
            if (!list_json(c, f == AV_KVLIST, depth + 1)) return false;
            pop(c);
            weft_buf_puts(&c->jb, COL_ANY_CLOSE);
            break;
        case AV_BYTES: {
            col_str_t s;
            if (!get_bytes(c, field, &s)) return false;
            col_any_put_bytes(&c->jb, (const uint8_t *)s.p, s.n);
            break;
        }
        }
    }
    if (!ok(c)) return false;
    if (!any) col_any_put_empty(&c->jb);
    return true;
}

/* An attribute's AnyValue into a. */
static bool any_value(ctx_t *c, col_attr_t *a)
{
    a->type = COL_V_EMPTY;
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        int f = name_of(k, any_names, 7);
        if (f < 0) {
            weft_jr_skip(&c->r);
            continue;
        }
        const char *field = any_names[f].camel;
        if (weft_jr_null(&c->r)) continue;
        switch (f) {
        case AV_STRING:
            a->v.s = (col_str_t){"", 0};
            if (!get_str(c, field, &a->v.s)) return false;
            a->type = COL_V_STRING;
            break;
        case AV_BOOL:
            if (!want_type(c, field, WEFT_JR_TRUE, "must be true or false")) return false;
            if (!weft_jr_bool(&c->r, &a->v.b)) return bad_read(c, field);
            a->type = COL_V_BOOL;
            break;
        case AV_INT: {
            weft_jr_type_t t = weft_jr_peek(&c->r);
            if (t != WEFT_JR_NUMBER && t != WEFT_JR_STRING)
                return t == WEFT_JR_NONE ? false : bad(c, field, "must be an integer");
            if (!weft_jr_int64(&c->r, &a->v.i)) return bad_read(c, field);
            a->type = COL_V_INT;
            break;
        }
        case AV_DOUBLE:
            if (!get_double(c, field, &a->v.d)) return false;
            a->type = COL_V_DOUBLE;
            break;
        case AV_ARRAY:
        case AV_KVLIST: {
            push(c, field, -1);
            weft_buf_putc(&c->jb, '[');
            bool good = list_json(c, f == AV_KVLIST, 2);
            weft_buf_putc(&c->jb, ']');
            pop(c);
            if (!good) return false;
            int rc = col_any_take(&c->jb, c->a, &a->v.s);
            if (rc) return nomem(c, rc);
            a->type = f == AV_ARRAY ? COL_V_ARRAY : COL_V_KVLIST;
            break;
        }
        case AV_BYTES:
            if (!get_bytes(c, field, &a->v.s)) return false;
            a->type = COL_V_BYTES;
            break;
        }
    }
    return ok(c);
}

/* A KeyValue as senders write it, {"key":"k","value":{"stringValue":"v"}} with no blanks
 * and no escapes, read straight into a: true. Anything else leaves the reader where it was
 * (false) for the member loop below, which reads and judges it (the same result, the same
 * messages). The loop cost about 1,000 instructions an attribute, 45% of OTLP/JSON ingest. */
static bool kv_fast(ctx_t *c, col_attr_t *a)
{
#define LIT(s) weft_jr_lit(&c->r, s, sizeof(s) - 1)
    const char *at = c->r.p;
    weft_jr_str_t k, v;
    if (!LIT("{\"key\":") || !weft_jr_plain_string(&c->r, &k) || k.n > UINT32_MAX ||
        !LIT(",\"value\":{\""))
        goto miss;
    if (LIT("stringValue\":")) {
        if (!weft_jr_plain_string(&c->r, &v) || v.n > UINT32_MAX || !LIT("}}")) goto miss;
        a->type = COL_V_STRING;
        a->v.s = (col_str_t){v.p, (uint32_t)v.n};
    } else if (LIT("intValue\":\"")) {
        /* as OTLP/JSON writes an int64: a string of decimal digits; here only 1 to 18 of
         * them without a leading zero (no overflow, one spelling), else the long way */
        const char *p = c->r.p, *end = c->r.end;
        int64_t x = 0;
        size_t nd = 0;
        while (p < end && *p >= '0' && *p <= '9' && nd < 19) x = x * 10 + (*p++ - '0'), nd++;
        if (nd == 0 || nd > 18 || (nd > 1 && c->r.p[0] == '0')) goto miss;
        c->r.p = p;
        if (!LIT("\"}}")) goto miss;
        a->type = COL_V_INT;
        a->v.i = x;
    } else {
        goto miss;
    }
    a->key = (col_str_t){k.p, (uint32_t)k.n};
    return true;
miss:
    c->r.p = at;
    a->type = COL_V_EMPTY;
    return false;
#undef LIT
}

/* "attributes": [KeyValue...] into *out (arena), *n. */
static bool attributes(ctx_t *c, const char *field, col_attr_t **out, uint32_t *n)
{
    *out = NULL;
    *n = 0;
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, field, WEFT_JR_ARRAY, "must be an array")) return false;
    size_t base = c->attrs.n, count = 0;
    col_attr_t spare;
    weft_jr_array(&c->r);
    for (int i = 0; weft_jr_next(&c->r); i++) {
        col_attr_t *a = &spare; /* past the limit: read, not kept */
        if (count <= COL_MAX_ATTRS) {
            a = vec_push(c, &c->attrs, sizeof(col_attr_t));
            if (!a) return false;
            count++;
        }
        a->key = (col_str_t){"", 0};
        a->type = COL_V_EMPTY;
        if (kv_fast(c, a)) continue;
        push(c, field, i);
        bool good = want_type(c, NULL, WEFT_JR_OBJECT, "must be an object");
        if (good) {
            weft_jr_object(&c->r);
            weft_jr_str_t k;
            while (good && weft_jr_key(&c->r, &k)) {
                if (weft_jr_key_is(k, "key")) {
                    good = get_str(c, "key", &a->key);
                } else if (weft_jr_key_is(k, "value")) {
                    push(c, "value", -1);
                    good = any_value(c, a);
                    pop(c);
                } else {
                    weft_jr_skip(&c->r);
                }
            }
        }
        pop(c);
        if (!good || !ok(c)) return false;
    }
    if (!ok(c)) return false;
    return vec_take(c, &c->attrs, base, sizeof(col_attr_t), (void **)out, n);
}

/* ---- Resource, InstrumentationScope ---- */

static bool resource(ctx_t *c, col_resource_t *res)
{
    static const name_t names[] = {N1("attributes"),
                                   N("droppedAttributesCount", "dropped_attributes_count")};
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        switch (name_of(k, names, 2)) {
        case 0:
            good = attributes(c, "attributes", &res->attrs, &res->nattrs);
            break;
        case 1:
            good = get_u32(c, "droppedAttributesCount", &res->dropped_attrs);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    const col_str_t *svc = col_attr_str(res->attrs, res->nattrs, "service.name");
    res->service = svc ? *svc : (col_str_t){"", 0};
    return ok(c);
}

static bool scope(ctx_t *c, col_scope_t *sc)
{
    static const name_t names[] = {N1("name"), N1("version"), N1("attributes"),
                                   N("droppedAttributesCount", "dropped_attributes_count")};
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        switch (name_of(k, names, 4)) {
        case 0:
            good = get_str(c, "name", &sc->name);
            break;
        case 1:
            good = get_str(c, "version", &sc->version);
            break;
        case 2:
            good = attributes(c, "attributes", &sc->attrs, &sc->nattrs);
            break;
        case 3:
            good = get_u32(c, "droppedAttributesCount", &sc->dropped_attrs);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    return ok(c);
}

/* ---- Span ---- */

static const char *const kind_names[] = {"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL",
                                         "SPAN_KIND_SERVER",      "SPAN_KIND_CLIENT",
                                         "SPAN_KIND_PRODUCER",    "SPAN_KIND_CONSUMER"};
static const char *const status_names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                           "STATUS_CODE_ERROR"};

static bool event(ctx_t *c, col_event_t *e)
{
    static const name_t names[] = {N("timeUnixNano", "time_unix_nano"), N1("name"),
                                   N1("attributes"),
                                   N("droppedAttributesCount", "dropped_attributes_count")};
    e->name = (col_str_t){"", 0};
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        switch (name_of(k, names, 4)) {
        case 0:
            good = get_u64(c, "timeUnixNano", &e->time_ns);
            break;
        case 1:
            good = get_str(c, "name", &e->name);
            break;
        case 2:
            good = attributes(c, "attributes", &e->attrs, &e->nattrs);
            break;
        case 3:
            good = get_u32(c, "droppedAttributesCount", &e->dropped_attrs);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    return ok(c);
}

static bool link(ctx_t *c, col_link_t *l, int li)
{
    static const name_t names[] = {N("traceId", "trace_id"),
                                   N("spanId", "span_id"),
                                   N("traceState", "trace_state"),
                                   N1("attributes"),
                                   N("droppedAttributesCount", "dropped_attributes_count"),
                                   N1("flags")};
    l->trace_state = (col_str_t){"", 0};
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    bool has_tid = false, has_sid = false;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        switch (name_of(k, names, 6)) {
        case 0:
            good = get_id(c, "traceId", l->trace_id, 16, false, li, &has_tid);
            break;
        case 1:
            good = get_id(c, "spanId", l->span_id, 8, false, li, &has_sid);
            break;
        case 2:
            good = get_str(c, "traceState", &l->trace_state);
            break;
        case 3:
            good = attributes(c, "attributes", &l->attrs, &l->nattrs);
            break;
        case 4:
            good = get_u32(c, "droppedAttributesCount", &l->dropped_attrs);
            break;
        case 5:
            good = get_u32(c, "flags", &l->flags);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    if (!has_tid) id_refuse(c, "traceId", 16, li);
    if (!has_sid) id_refuse(c, "spanId", 8, li);
    return ok(c);
}

static bool status(ctx_t *c, col_span_t *s)
{
    static const name_t names[] = {N1("message"), N1("code")};
    s->status = COL_STATUS_UNSET;
    s->status_message = (col_str_t){"", 0};
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        int64_t code = 0;
        switch (name_of(k, names, 2)) {
        case 0:
            good = get_str(c, "message", &s->status_message);
            break;
        case 1:
            good = get_enum(c, "code", status_names, 3, "StatusCode", &code);
            if (good && (code < 0 || code > COL_STATUS_ERROR))
                refuse(c, "status.code is not a StatusCode (0 to 2)");
            s->status = code >= 0 && code <= COL_STATUS_ERROR ? (uint8_t)code : COL_STATUS_UNSET;
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    return ok(c);
}

/* "events" or "links": an array of messages into the span. */
static bool events(ctx_t *c, col_span_t *s)
{
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, "events", WEFT_JR_ARRAY, "must be an array")) return false;
    size_t base = c->events.n, count = 0;
    col_event_t spare;
    weft_jr_array(&c->r);
    for (int i = 0; weft_jr_next(&c->r); i++) {
        col_event_t *e = &spare;
        if (count <= COL_MAX_EVENTS) {
            if (!(e = vec_push(c, &c->events, sizeof(*e)))) return false;
            count++;
        } else {
            memset(e, 0, sizeof(*e));
        }
        push(c, "events", i);
        bool good = event(c, e);
        pop(c);
        if (!good) return false;
    }
    if (!ok(c)) return false;
    return vec_take(c, &c->events, base, sizeof(col_event_t), (void **)&s->events, &s->nevents);
}

static bool links(ctx_t *c, col_span_t *s)
{
    if (weft_jr_null(&c->r)) return true;
    if (!want_type(c, "links", WEFT_JR_ARRAY, "must be an array")) return false;
    size_t base = c->links.n, count = 0;
    col_link_t spare;
    weft_jr_array(&c->r);
    for (int i = 0; weft_jr_next(&c->r); i++) {
        col_link_t *l = &spare;
        if (count <= COL_MAX_LINKS) {
            if (!(l = vec_push(c, &c->links, sizeof(*l)))) return false;
            count++;
        } else {
            memset(l, 0, sizeof(*l));
        }
        push(c, "links", i);
        bool good = link(c, l, i);
        pop(c);
        if (!good) return false;
    }
    if (!ok(c)) return false;
    return vec_take(c, &c->links, base, sizeof(col_link_t), (void **)&s->links, &s->nlinks);
}

enum {
    SP_TRACE_ID,
    SP_SPAN_ID,
    SP_TRACE_STATE,
    SP_PARENT,
    SP_FLAGS,
    SP_NAME,
    SP_KIND,
    SP_START,
    SP_END,
    SP_ATTRS,
    SP_DROPPED_ATTRS,
    SP_EVENTS,
    SP_DROPPED_EVENTS,
    SP_LINKS,
    SP_DROPPED_LINKS,
    SP_STATUS
};
static const name_t span_names[] = {
    [SP_TRACE_ID] = N("traceId", "trace_id"),
    [SP_SPAN_ID] = N("spanId", "span_id"),
    [SP_TRACE_STATE] = N("traceState", "trace_state"),
    [SP_PARENT] = N("parentSpanId", "parent_span_id"),
    [SP_FLAGS] = N1("flags"),
    [SP_NAME] = N1("name"),
    [SP_KIND] = N1("kind"),
    [SP_START] = N("startTimeUnixNano", "start_time_unix_nano"),
    [SP_END] = N("endTimeUnixNano", "end_time_unix_nano"),
    [SP_ATTRS] = N1("attributes"),
    [SP_DROPPED_ATTRS] = N("droppedAttributesCount", "dropped_attributes_count"),
    [SP_EVENTS] = N1("events"),
    [SP_DROPPED_EVENTS] = N("droppedEventsCount", "dropped_events_count"),
    [SP_LINKS] = N1("links"),
    [SP_DROPPED_LINKS] = N("droppedLinksCount", "dropped_links_count"),
    [SP_STATUS] = N1("status"),
};

static bool span(ctx_t *c, col_span_t *s)
{
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    bool has_tid = false, has_sid = false, has_parent = false;
    while (weft_jr_key(&c->r, &k)) {
        int f = name_of(k, span_names, (int)(sizeof(span_names) / sizeof(span_names[0])));
        const char *field = f >= 0 ? span_names[f].camel : NULL;
        bool good = true;
        int64_t kind = 0;
        switch (f) {
        case SP_TRACE_ID:
            good = get_id(c, field, s->trace_id, 16, false, -1, &has_tid);
            break;
        case SP_SPAN_ID:
            good = get_id(c, field, s->span_id, 8, false, -1, &has_sid);
            break;
        case SP_TRACE_STATE:
            good = get_str(c, field, &s->trace_state);
            break;
        case SP_PARENT:
            good = get_id(c, field, s->parent_id, 8, true, -1, &has_parent);
            break;
        case SP_FLAGS:
            good = get_u32(c, field, &s->flags);
            break;
        case SP_NAME:
            good = get_str(c, field, &s->name);
            break;
        case SP_KIND:
            good = get_enum(c, field, kind_names, 6, "SpanKind", &kind);
            if (good && (kind < 0 || kind > COL_KIND_CONSUMER))
                refuse(c, "kind is not a SpanKind (0 to 5)");
            s->kind = kind >= 0 && kind <= COL_KIND_CONSUMER ? (uint8_t)kind : COL_KIND_UNSPECIFIED;
            break;
        case SP_START:
            good = get_u64(c, field, &s->start_ns);
            break;
        case SP_END:
            good = get_u64(c, field, &s->end_ns);
            break;
        case SP_ATTRS:
            good = attributes(c, field, &s->attrs, &s->nattrs);
            break;
        case SP_DROPPED_ATTRS:
            good = get_u32(c, field, &s->dropped_attrs);
            break;
        case SP_EVENTS:
            good = events(c, s);
            break;
        case SP_DROPPED_EVENTS:
            good = get_u32(c, field, &s->dropped_events);
            break;
        case SP_LINKS:
            good = links(c, s);
            break;
        case SP_DROPPED_LINKS:
            good = get_u32(c, field, &s->dropped_links);
            break;
        case SP_STATUS:
            push(c, "status", -1);
            good = status(c, s);
            pop(c);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    if (!has_tid) id_refuse(c, "traceId", 16, -1);
    if (!has_sid) id_refuse(c, "spanId", 8, -1);
    return ok(c);
}

/* ---- the request ---- */

/* Spans [first, c->spans.n) are refused for why (a resource or scope read after them,
 * over a limit). */
static void refuse_from(ctx_t *c, size_t first, const char *why)
{
    const size_t *idx = (const size_t *)c->idx.p;
    for (size_t i = first; i < c->spans.n; i++) col_batch_reject(c->b, idx[i], why);
    c->spans.n = c->idx.n = first;
}

static bool scope_spans(ctx_t *c, const col_resource_t *res)
{
    static const name_t names[] = {N1("scope"), N1("spans"), N("schemaUrl", "schema_url")};
    col_scope_t *sc;
    int rc = col_arena_alloc(c->a, sizeof(*sc), (void **)&sc);
    if (rc) return nomem(c, rc);
    memset(sc, 0, sizeof(*sc));
    sc->name = sc->version = (col_str_t){"", 0};
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    size_t first = c->spans.n;
    bool late = false; /* the scope came after some of its spans */
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        col_str_t url;
        switch (name_of(k, names, 3)) {
        case 0:
            late = late || c->spans.n > first;
            memset(sc, 0, sizeof(*sc));
            sc->name = sc->version = (col_str_t){"", 0};
            push(c, "scope", -1);
            good = scope(c, sc);
            pop(c);
            break;
        case 1:
            if (weft_jr_null(&c->r)) break;
            if (!want_type(c, "spans", WEFT_JR_ARRAY, "must be an array")) return false;
            weft_jr_array(&c->r);
            for (int i = 0; good && weft_jr_next(&c->r); i++) {
                if (c->index >= COL_MAX_BATCH_SPANS) { /* refused ones count too */
                    if (!c->rc)
                        c->rc =
                            weft__errf(c->err, c->errlen, WEFT_ELIMIT,
                                       "more than %u spans in one request", COL_MAX_BATCH_SPANS);
                    weft_jr_fail(&c->r, "too many spans");
                    return false;
                }
                col_span_t *s = vec_push(c, &c->spans, sizeof(col_span_t));
                if (!s) return false;
                s->name = s->trace_state = s->status_message = (col_str_t){"", 0};
                s->remote.service = (col_str_t){"", 0};
                s->resource = res;
                s->scope = sc;
                c->why = NULL;
                push(c, "spans", i);
                good = span(c, s);
                pop(c);
                if (!good) return false;
                const char *why = c->why ? c->why : col_span_check(s);
                if (why) {
                    col_batch_reject(c->b, c->index, why);
                    c->spans.n--;
                } else {
                    size_t *ix = vec_push(c, &c->idx, sizeof(size_t));
                    if (!ix) return false;
                    *ix = c->index;
                }
                c->index++;
            }
            break;
        case 2:
            good = get_str(c, "schemaUrl", &url);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    const char *why;
    if (late && ok(c) && (why = col_shared_check(res, sc))) refuse_from(c, first, why);
    return ok(c);
}

static bool resource_spans(ctx_t *c)
{
    static const name_t names[] = {N1("resource"), N("scopeSpans", "scope_spans"),
                                   N("schemaUrl", "schema_url")};
    col_resource_t *res;
    int rc = col_arena_alloc(c->a, sizeof(*res), (void **)&res);
    if (rc) return nomem(c, rc);
    memset(res, 0, sizeof(*res));
    res->service = (col_str_t){"", 0};
    if (!want_type(c, NULL, WEFT_JR_OBJECT, "must be an object")) return false;
    size_t first = c->spans.n;
    bool late = false; /* the resource came after some of its spans */
    weft_jr_object(&c->r);
    weft_jr_str_t k;
    while (weft_jr_key(&c->r, &k)) {
        bool good = true;
        col_str_t url;
        switch (name_of(k, names, 3)) {
        case 0:
            late = late || c->spans.n > first;
            push(c, "resource", -1);
            memset(res, 0, sizeof(*res));
            res->service = (col_str_t){"", 0};
            good = resource(c, res);
            pop(c);
            break;
        case 1:
            if (weft_jr_null(&c->r)) break;
            if (!want_type(c, "scopeSpans", WEFT_JR_ARRAY, "must be an array")) return false;
            weft_jr_array(&c->r);
            for (int i = 0; good && weft_jr_next(&c->r); i++) {
                push(c, "scopeSpans", i);
                good = scope_spans(c, res);
                pop(c);
            }
            break;
        case 2:
            good = get_str(c, "schemaUrl", &url);
            break;
        default:
            weft_jr_skip(&c->r);
            break;
        }
        if (!good) return false;
    }
    /* the resource's faults refuse its spans; when it came late, those read before it */
    const char *why;
    if (late && ok(c) && (why = col_shared_check(res, NULL))) refuse_from(c, first, why);
    return ok(c);
}

int col_otlp_json_decode(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                         size_t errlen)
{
    memset(b, 0, sizeof(*b));
    if (err && errlen) err[0] = 0;
    ctx_t *c = calloc(1, sizeof(*c));
    if (!c) return weft__errf(err, errlen, WEFT_ENOMEM, "out of memory");
    c->a = a;
    c->b = b;
    c->err = err;
    c->errlen = errlen;
    weft_jr_init(&c->r, p, n, a);
    weft_buf_init(&c->jb, COL_ANY_BUF_LIMIT);
    if (want_type(c, NULL, WEFT_JR_OBJECT, "the request must be a JSON object")) {
        weft_jr_object(&c->r);
        weft_jr_str_t k;
        while (weft_jr_key(&c->r, &k)) {
            if (!weft_jr_key_is(k, "resourceSpans") && !weft_jr_key_is(k, "resource_spans")) {
                weft_jr_skip(&c->r);
                continue;
            }
            if (weft_jr_null(&c->r)) continue;
            if (!want_type(c, "resourceSpans", WEFT_JR_ARRAY, "must be an array")) break;
            weft_jr_array(&c->r);
            bool good = true;
            for (int i = 0; good && weft_jr_next(&c->r); i++) {
                push(c, "resourceSpans", i);
                good = resource_spans(c);
                pop(c);
            }
            if (!good) break;
        }
        weft_jr_end(&c->r);
    }
    int rc = c->rc;
    if (!rc && c->r.err) {
        if (c->r.err_code == WEFT_EINVAL)
            rc = weft__errf(err, errlen, WEFT_EINVAL, "offset %zu: invalid JSON: %s", c->r.err_off,
                            c->r.err);
        else
            rc = c->r.err_code == WEFT_ELIMIT
                     ? weft__errf(err, errlen, WEFT_ELIMIT,
                                  "the request needs more memory than allowed")
                     : weft__errf(err, errlen, WEFT_ENOMEM, "out of memory");
    }
    if (!rc) {
        uint32_t cnt;
        if (vec_take(c, &c->spans, 0, sizeof(col_span_t), (void **)&b->spans, &cnt))
            b->n = cnt;
        else
            rc = c->rc;
    }
    if (rc) {
        b->spans = NULL;
        b->n = 0;
        b->rejected = 0;
        b->reject_msg[0] = 0;
    }
    weft_buf_free(&c->jb);
    free(c->spans.p);
    free(c->attrs.p);
    free(c->events.p);
    free(c->links.p);
    free(c->idx.p);
    free(c);
    return rc;
}
