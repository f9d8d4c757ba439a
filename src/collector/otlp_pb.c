/*
 * otlp_pb.c - OTLP/HTTP's ExportTraceServiceRequest in protobuf's wire format, decoded
 * into a batch of spans (collector/decode.h).
 *
 * A focused reader of the messages of opentelemetry-proto (collector/trace/v1,
 * trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto) rather than
 * generated code: the request is walked once, each message's fields in any order, and
 * strings and bytes are views into the body (nothing is copied but ARRAY and KVLIST
 * values, which span.h keeps as OTLP/JSON text: otlp_any.c).
 *
 * Counting before filling: before a message's repeated fields are read, one quick walk
 * over its tags (lengths skipped, never descended) counts them, so that the array is
 * allocated once at its size in the arena: the request's spans, and the attributes of a
 * resource, scope, event or link. A counting walk stops silently at malformed bytes; the
 * reading walk then reports them. A span's own attributes, events and links (most of
 * the request) are not counted first: they are gathered in growable scratch arrays in one
 * pass and copied into the arena at the span's end.
 *
 * What refuses the whole request (WEFT_EINVAL, 400; err names the field's path in
 * OTLP/JSON's words, "resourceSpans[0].scopeSpans[1].spans[3].attributes[2].value: ..."):
 * bytes that are not protobuf (a truncated varint or length, a varint over 10 bytes, a
 * group, field number 0), a known field with the wrong wire type, a string field that is
 * not UTF-8 (proto3 requires it), AnyValue nested deeper than COL_ANY_MAX_DEPTH. These are
 * a malformed message, which the OTLP specification answers with 400.
 *
 * What refuses one span (col_batch_reject, OTLP's partial_success): a trace id that is not
 * 16 bytes, a span id not 8, a parent span id neither empty nor 8 bytes (and the same for
 * a link's ids), kind outside SpanKind (0..5), status code outside StatusCode (0..2), and
 * everything col_span_check refuses (all-zero ids, end before start, limits). The message
 * was well formed; the span is what the collector cannot take.
 *
 * Also: more than COL_MAX_BATCH_SPANS spans, or the arena's limit: WEFT_ELIMIT (413).
 * Unknown fields are skipped whatever their wire type but groups (deprecated, never in
 * OTLP). A ResourceSpans' resource and a ScopeSpans' scope are read before their spans
 * wherever they are in the message (one more walk over the tags, lengths skipped), so
 * that every span is checked with them. A non-repeated field given twice keeps its last
 * value (protobuf would merge two messages; no OTLP sender does that); so does the JSON
 * decoder. A uint32 given more bits keeps the low 32, as
 * protobuf's parsers do. service.name's string value is the resource's service.
 *
 * No recursion but AnyValue's, bounded by COL_ANY_MAX_DEPTH. Never reads past the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/decode.h"
#include "collector/otlp_any.h"
#include "core/errbuf.h"
#include "core/json_read.h"
#include "weft/common.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct {
    const uint8_t *p, *end;
} pb_t;

/* A growable array of the span being read: its attributes, events or links, gathered in
 * one pass and copied into the arena at the span's end at their final number (spans do not
 * nest, so one of each serves the request). */
typedef struct {
    void *p;
    size_t n, cap;
} scratch_t;

typedef struct {
    weft_arena_t *a;
    col_batch_t *b;
    char *err;
    size_t errlen;
    int rc; /* the first error, 0 while none */
    col_path_t path;
    weft_buf_t jb;   /* ARRAY and KVLIST values' text while it is written */
    const char *why; /* the span being read: why it is refused (the first reason) */
    char why_buf[96];
    size_t cap;                        /* b->spans' length */
    size_t index;                      /* the request's span number (refusals name it) */
    scratch_t sattrs, sevents, slinks; /* the span being read's */
} ctx_t;

static void push(ctx_t *c, const char *name, int index)
{
    col_path_push(&c->path, name, index);
}

static void pop(ctx_t *c)
{
    col_path_pop(&c->path);
}

/* Refuses the request: "<path>.<field>: <msg>". Returns WEFT_EINVAL. */
static int bad(ctx_t *c, const char *field, const char *msg)
{
    if (c->rc) return c->rc;
    c->rc = col_path_errf(&c->path, field, msg, c->err, c->errlen);
    return c->rc;
}

static int fail_rc(ctx_t *c, int rc)
{
    if (c->rc) return c->rc;
    c->rc = rc == WEFT_ELIMIT
                ? weft__errf(c->err, c->errlen, rc, "the request needs more memory than allowed")
                : weft__errf(c->err, c->errlen, rc, "out of memory");
    return c->rc;
}

/* Room for one more element of size bytes at the end of s: NULL (c->rc set) when memory
 * is out, or when the arena could not take the array anyway (its copy at the span's end
 * needs as much). */
static void *scratch_grow(ctx_t *c, scratch_t *s, size_t size)
{
    size_t room = (c->a->limit - c->a->used) / size;
    size_t cap = s->cap ? s->cap * 2 : 16;
    if (cap > room) cap = s->n + 1;
    if (cap > room) {
        fail_rc(c, WEFT_ELIMIT);
        return NULL;
    }
    void *p = realloc(s->p, cap * size);
    if (!p) {
        fail_rc(c, WEFT_ENOMEM);
        return NULL;
    }
    s->p = p;
    s->cap = cap;
    return (char *)s->p + s->n++ * size;
}

static inline void *scratch_push(ctx_t *c, scratch_t *s, size_t size)
{
    if (s->n < s->cap) return (char *)s->p + s->n++ * size;
    return scratch_grow(c, s, size);
}

/* s's elements copied into the arena (*out; left alone when there are none). */
static int scratch_take(ctx_t *c, const scratch_t *s, size_t size, void **out)
{
    if (!s->n) return 0;
    int rc = col_arena_alloc(c->a, s->n * size, out);
    if (rc) return fail_rc(c, rc);
    memcpy(*out, s->p, s->n * size);
    return 0;
}

/* The span being read is refused for why (the first reason is kept). */
static void refuse(ctx_t *c, const char *why)
{
    if (!c->why) c->why = why;
}

/* ---- the wire format ---- */

/* A varint: false at the end of the bytes or past 10 bytes. */
static inline bool varint(pb_t *r, uint64_t *v)
{
    const uint8_t *p = r->p, *end = r->end;
    if (p < end && *p < 0x80) {
        *v = *p;
        r->p = p + 1;
        return true;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (p == end) return false;
        uint8_t byte = *p++;
        if (shift == 63 && byte > 1) return false;
        x |= (uint64_t)(byte & 0x7f) << shift;
        if (byte < 0x80) {
            *v = x;
            r->p = p;
            return true;
        }
    }
    return false;
}

/* The next field's number and wire type: 1, 0 at the end, -1 when malformed (*msg). */
static inline int tag(pb_t *r, uint32_t *field, unsigned *wt, const char **msg)
{
    if (r->p == r->end) return 0;
    uint64_t v;
    if (!varint(r, &v)) {
        *msg = "truncated or overlong varint in a tag";
        return -1;
    }
    if (v >> 3 == 0 || v >> 3 > 0x1fffffff) {
        *msg = "invalid field number";
        return -1;
    }
    *field = (uint32_t)(v >> 3);
    *wt = (unsigned)(v & 7);
    return 1;
}

/* A LEN field's contents. */
static inline bool len_field(pb_t *r, pb_t *sub)
{
    uint64_t n;
    if (!varint(r, &n) || n > (uint64_t)(r->end - r->p)) return false;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return true;
}

static inline bool fixed64(pb_t *r, uint64_t *v)
{
    if (r->end - r->p < 8) return false;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = x << 8 | r->p[i];
    *v = x;
    r->p += 8;
    return true;
}

static inline bool fixed32(pb_t *r, uint32_t *v)
{
    if (r->end - r->p < 4) return false;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return true;
}

/* Skips a field of wire type wt: false (*msg) when malformed. */
static bool skip(pb_t *r, unsigned wt, const char **msg)
{
    uint64_t v;
    pb_t sub = {NULL, NULL};
    switch (wt) {
    case WT_VARINT:
        if (varint(r, &v)) return true;
        *msg = "truncated or overlong varint";
        return false;
    case WT_I64:
        if (fixed64(r, &v)) return true;
        *msg = "truncated fixed64";
        return false;
    case WT_LEN:
        if (len_field(r, &sub)) return true;
        *msg = "truncated length-delimited field";
        return false;
    case WT_I32: {
        uint32_t w;
        if (fixed32(r, &w)) return true;
        *msg = "truncated fixed32";
        return false;
    }
    default:
        *msg = "groups (wire types 3 and 4) are not supported";
        return false;
    }
}

/* How many LEN fields numbered f1, f2, f3 the message holds (stops at malformed bytes). */
static void count3(pb_t r, uint32_t f1, uint32_t f2, uint32_t f3, size_t *n1, size_t *n2,
                   size_t *n3)
{
    uint32_t f;
    unsigned wt;
    const char *msg;
    *n1 = *n2 = *n3 = 0;
    while (tag(&r, &f, &wt, &msg) > 0) {
        if (wt == WT_LEN) {
            if (f == f1)
                (*n1)++;
            else if (f == f2)
                (*n2)++;
            else if (f == f3)
                (*n3)++;
        }
        if (!skip(&r, wt, &msg)) return;
    }
}

/* The last LEN field numbered f of the message (the one that counts), in *out: whether
 * there is one (stops at malformed bytes, which the reading walk reports). */
static bool last_field(pb_t r, uint32_t f, pb_t *out)
{
    uint32_t g;
    unsigned wt;
    const char *msg;
    bool found = false;
    while (tag(&r, &g, &wt, &msg) > 0) {
        if (g == f && wt == WT_LEN) {
            if (!len_field(&r, out)) return false;
            found = true;
        } else if (!skip(&r, wt, &msg)) {
            return false;
        }
    }
    return found;
}

static const char *wt_name(unsigned wt)
{
    static const char *const names[] = {"varint",    "fixed64", "length-delimited", "group start",
                                        "group end", "fixed32", "wire type 6",      "wire type 7"};
    return names[wt & 7];
}

/* The wire type of field `name` is not want's. */
static int bad_wt(ctx_t *c, const char *name, unsigned got, unsigned want)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "wire type %u (%s) where %s belongs", got, wt_name(got),
             wt_name(want));
    return bad(c, name, msg);
}

/* Field reading with the checks every caller makes: the wire type, then the value. */
#define WANT(c, name, got, want)                                                                   \
    do {                                                                                           \
        if ((got) != (want)) return bad_wt((c), (name), (got), (want));                            \
    } while (0)

static int get_str(ctx_t *c, pb_t *r, unsigned wt, const char *name, col_str_t *out)
{
    WANT(c, name, wt, WT_LEN);
    pb_t sub = {NULL, NULL};
    if (!len_field(r, &sub)) return bad(c, name, "truncated length-delimited field");
    size_t n = (size_t)(sub.end - sub.p);
    if (n > UINT32_MAX) return bad(c, name, "too long");
    if (!weft_jr_utf8_valid((const char *)sub.p, n)) return bad(c, name, "invalid UTF-8");
    out->p = (const char *)sub.p;
    out->n = (uint32_t)n;
    return 0;
}

static int get_bytes(ctx_t *c, pb_t *r, unsigned wt, const char *name, pb_t *out)
{
    WANT(c, name, wt, WT_LEN);
    if (!len_field(r, out)) return bad(c, name, "truncated length-delimited field");
    return 0;
}

static int get_u64(ctx_t *c, pb_t *r, unsigned wt, const char *name, uint64_t *v)
{
    WANT(c, name, wt, WT_VARINT);
    if (!varint(r, v)) return bad(c, name, "truncated or overlong varint");
    return 0;
}

static int get_u32(ctx_t *c, pb_t *r, unsigned wt, const char *name, uint32_t *v)
{
    uint64_t x;
    int rc = get_u64(c, r, wt, name, &x);
    *v = (uint32_t)x;
    return rc;
}

static int get_fixed64(ctx_t *c, pb_t *r, unsigned wt, const char *name, uint64_t *v)
{
    WANT(c, name, wt, WT_I64);
    if (!fixed64(r, v)) return bad(c, name, "truncated fixed64");
    return 0;
}

static int get_fixed32(ctx_t *c, pb_t *r, unsigned wt, const char *name, uint32_t *v)
{
    WANT(c, name, wt, WT_I32);
    if (!fixed32(r, v)) return bad(c, name, "truncated fixed32");
    return 0;
}

static int skip_field(ctx_t *c, pb_t *r, uint32_t f, unsigned wt)
{
    const char *msg;
    if (skip(r, wt, &msg)) return 0;
    char name[24];
    snprintf(name, sizeof(name), "field %u", f);
    return bad(c, name, msg);
}

/* The loop over a message's fields: `case N:` per known field, then skip the rest. */
#define FIELDS(c, r, f, wt)                                                                        \
    for (int tag_rc_; (tag_rc_ = tag((r), &(f), &(wt), &tag_msg_)) != 0;)                          \
        if (tag_rc_ < 0)                                                                           \
            return bad((c), NULL, tag_msg_);                                                       \
        else

/* ---- AnyValue ---- */

static int any_json(ctx_t *c, pb_t r, unsigned depth);

/* An ArrayValue's or KeyValueList's elements as JSON into c->jb. */
static int list_json(ctx_t *c, pb_t r, bool kv, unsigned depth)
{
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int i = 0, rc;
    FIELDS(c, &r, f, wt)
    {
        if (f != 1) {
            if ((rc = skip_field(c, &r, f, wt))) return rc;
            continue;
        }
        pb_t el = {NULL, NULL};
        if ((rc = get_bytes(c, &r, wt, "values", &el))) return rc;
        if (i) weft_buf_putc(&c->jb, ',');
        push(c, "values", i++);
        if (!kv) {
            rc = any_json(c, el, depth);
        } else {
            /* KeyValue: key 1, value 2 */
            col_str_t key = {"", 0};
            pb_t val = {NULL, NULL};
            bool has_val = false;
            const char *tag_msg2_;
            uint32_t g;
            unsigned wt2;
            int t;
            rc = 0;
            while (!rc && (t = tag(&el, &g, &wt2, &tag_msg2_)) != 0) {
                if (t < 0)
                    rc = bad(c, NULL, tag_msg2_);
                else if (g == 1)
                    rc = get_str(c, &el, wt2, "key", &key);
                else if (g == 2)
                    rc = get_bytes(c, &el, wt2, "value", &val), has_val = true;
                else
                    rc = skip_field(c, &el, g, wt2);
            }
            if (!rc) {
                col_any_put_key(&c->jb, key.p, key.n);
                if (has_val) {
                    push(c, "value", -1);
                    rc = any_json(c, val, depth);
                    pop(c);
                } else {
                    col_any_put_empty(&c->jb);
                }
                weft_buf_putc(&c->jb, '}');
            }
        }
        pop(c);
        if (rc) return rc;
    }
    return 0;
}

/* A nested AnyValue as JSON into c->jb. */
static int any_json(ctx_t *c, pb_t r, unsigned depth)
{
    if (depth > COL_ANY_MAX_DEPTH) return bad(c, NULL, "values nested deeper than 16");
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int rc;
    /* oneof: the last value given wins */
    int kind = -1;
    pb_t last = {NULL, NULL};
    uint64_t u = 0;
    col_str_t s = {"", 0};
    FIELDS(c, &r, f, wt)
    {
        switch (f) {
        case 1:
            rc = get_str(c, &r, wt, "stringValue", &s);
            break;
        case 2:
            rc = get_u64(c, &r, wt, "boolValue", &u);
            break;
        case 3:
            rc = get_u64(c, &r, wt, "intValue", &u);
            break;
        case 4:
            rc = get_fixed64(c, &r, wt, "doubleValue", &u);
            break;
        case 5:
        case 6:
        case 7:
            rc = get_bytes(c, &r, wt,
                           f == 5   ? "arrayValue"
                           : f == 6 ? "kvlistValue"
                                    : "bytesValue",
                           &last);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
        if (f >= 1 && f <= 7) kind = (int)f;
    }
    switch (kind) {
    case 1:
        col_any_put_string(&c->jb, s.p, s.n);
        break;
    case 2:
        col_any_put_bool(&c->jb, u != 0);
        break;
    case 3:
        col_any_put_int(&c->jb, (int64_t)u);
        break;
    case 4: {
        double d;
        memcpy(&d, &u, sizeof(d));
        col_any_put_double(&c->jb, d);
        break;
    }
    case 5:
    case 6:
        weft_buf_puts(&c->jb, kind == 5 ? COL_ANY_ARRAY_OPEN : COL_ANY_KVLIST_OPEN);
        push(c, kind == 5 ? "arrayValue" : "kvlistValue", -1);
        rc = list_json(c, last, kind == 6, depth + 1);
        pop(c);
        if (rc) return rc;
        weft_buf_puts(&c->jb, COL_ANY_CLOSE);
        break;
    case 7:
        col_any_put_bytes(&c->jb, last.p, (size_t)(last.end - last.p));
        break;
    default:
        col_any_put_empty(&c->jb);
        break;
    }
    return 0;
}

/* An attribute's AnyValue into a. */
static int any_value(ctx_t *c, pb_t r, col_attr_t *a)
{
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int rc;
    a->type = COL_V_EMPTY;
    pb_t last = {NULL, NULL};
    FIELDS(c, &r, f, wt)
    {
        uint64_t u;
        switch (f) {
        case 1:
            if ((rc = get_str(c, &r, wt, "stringValue", &a->v.s))) return rc;
            a->type = COL_V_STRING;
            break;
        case 2:
            if ((rc = get_u64(c, &r, wt, "boolValue", &u))) return rc;
            a->type = COL_V_BOOL;
            a->v.b = u != 0;
            break;
        case 3:
            if ((rc = get_u64(c, &r, wt, "intValue", &u))) return rc;
            a->type = COL_V_INT;
            a->v.i = (int64_t)u;
            break;
        case 4:
            if ((rc = get_fixed64(c, &r, wt, "doubleValue", &u))) return rc;
            a->type = COL_V_DOUBLE;
            memcpy(&a->v.d, &u, sizeof(u));
            break;
        case 5:
        case 6: {
            if ((rc = get_bytes(c, &r, wt, f == 5 ? "arrayValue" : "kvlistValue", &last)))
                return rc;
            push(c, f == 5 ? "arrayValue" : "kvlistValue", -1);
            weft_buf_putc(&c->jb, '[');
            rc = list_json(c, last, f == 6, 2);
            weft_buf_putc(&c->jb, ']');
            pop(c);
            if (!rc) rc = col_any_take(&c->jb, c->a, &a->v.s);
            if (rc) return rc < 0 && !c->rc ? fail_rc(c, rc) : rc;
            a->type = f == 5 ? COL_V_ARRAY : COL_V_KVLIST;
            break;
        }
        case 7:
            if ((rc = get_bytes(c, &r, wt, "bytesValue", &last))) return rc;
            a->type = COL_V_BYTES;
            a->v.s.p = (const char *)last.p;
            a->v.s.n = (uint32_t)(last.end - last.p);
            break;
        default:
            if ((rc = skip_field(c, &r, f, wt))) return rc;
            break;
        }
    }
    return 0;
}

/* A KeyValue of the shape senders write, read straight: key (1), then value (2) holding
 * one stringValue (1), boolValue (2), intValue (3) or doubleValue (4), each length in one
 * byte, nothing else. True when r is that and a is filled; false for anything else (longer
 * fields, other fields or order, invalid UTF-8), which key_value's field loop then reads
 * and judges (the same result, the same messages). The loop cost 141 instructions an
 * attribute; attributes are most of a span. */
static inline bool key_value_fast(pb_t r, col_attr_t *a)
{
    const uint8_t *p = r.p, *end = r.end;
    if (end - p < 4 || p[0] != 0x0a || p[1] >= 0x80) return false;
    size_t kn = p[1];
    const uint8_t *q = p + 2 + kn; /* the value's tag */
    if (end - q < 4 || q[0] != 0x12 || q[1] >= 0x80 || q + 2 + q[1] != end) return false;
    const uint8_t *v = q + 2; /* the AnyValue: v..end, 2 to 127 bytes */
    pb_t vr = {v + 1, end};
    uint64_t u;
    switch (v[0]) {
    case 0x0a: /* stringValue */
        if (v[1] >= 0x80 || v + 2 + v[1] != end) return false;
        /* the key, the 4 ASCII bytes of tags and lengths, the value: one check. No UTF-8
         * sequence spans an ASCII byte, so the whole is valid when both are. */
        if (!weft_jr_utf8_valid((const char *)p + 2, (size_t)(end - p - 2))) return false;
        a->type = COL_V_STRING;
        a->v.s = (col_str_t){(const char *)v + 2, v[1]};
        a->key = (col_str_t){(const char *)p + 2, (uint32_t)kn};
        return true;
    case 0x10: /* boolValue */
        if (!varint(&vr, &u) || vr.p != end) return false;
        a->type = COL_V_BOOL;
        a->v.b = u != 0;
        break;
    case 0x18: /* intValue */
        if (!varint(&vr, &u) || vr.p != end) return false;
        a->type = COL_V_INT;
        a->v.i = (int64_t)u;
        break;
    case 0x21: /* doubleValue */
        if (end - v != 9) return false;
        if (!fixed64(&vr, &u)) return false;
        a->type = COL_V_DOUBLE;
        memcpy(&a->v.d, &u, sizeof(u));
        break;
    default:
        return false;
    }
    if (!weft_jr_utf8_valid((const char *)p + 2, kn)) return false;
    a->key = (col_str_t){(const char *)p + 2, (uint32_t)kn};
    return true;
}

/* A KeyValue into a. */
static int key_value(ctx_t *c, pb_t r, col_attr_t *a)
{
    if (key_value_fast(r, a)) return 0;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int rc;
    a->key = (col_str_t){"", 0};
    a->type = COL_V_EMPTY;
    FIELDS(c, &r, f, wt)
    {
        if (f == 1) {
            rc = get_str(c, &r, wt, "key", &a->key);
        } else if (f == 2) {
            pb_t v = {NULL, NULL};
            rc = get_bytes(c, &r, wt, "value", &v);
            if (!rc) {
                push(c, "value", -1);
                rc = any_value(c, v, a);
                pop(c);
            }
        } else {
            rc = skip_field(c, &r, f, wt);
        }
        if (rc) return rc;
    }
    return 0;
}

/* The attributes (field number af) of message r: counted, allocated, read. */
static int attributes(ctx_t *c, pb_t r, uint32_t af, const char *name, col_attr_t **out,
                      uint32_t *n)
{
    size_t cnt, x, y;
    count3(r, af, 0, 0, &cnt, &x, &y);
    *out = NULL;
    *n = 0;
    if (!cnt) return 0;
    int rc = col_arena_alloc(c->a, cnt * sizeof(col_attr_t), (void **)out);
    if (rc) return fail_rc(c, rc);
    *n = (uint32_t)cnt;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    size_t i = 0;
    FIELDS(c, &r, f, wt)
    {
        if (f != af) {
            if (skip(&r, wt, &tag_msg_)) continue;
            return 0; /* the caller's walk reports it */
        }
        pb_t kv = {NULL, NULL};
        if (wt != WT_LEN || !len_field(&r, &kv) || i == cnt) return 0; /* likewise */
        push(c, name, (int)i);
        rc = key_value(c, kv, &(*out)[i++]);
        pop(c);
        if (rc) return rc;
    }
    return 0;
}

/* ---- Resource, InstrumentationScope ---- */

static int resource(ctx_t *c, pb_t r, col_resource_t *res)
{
    int rc = attributes(c, r, 1, "attributes", &res->attrs, &res->nattrs);
    if (rc) return rc;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    FIELDS(c, &r, f, wt)
    {
        if (f == 1)
            rc = get_bytes(c, &r, wt, "attributes", &(pb_t){0});
        else if (f == 2)
            rc = get_u32(c, &r, wt, "droppedAttributesCount", &res->dropped_attrs);
        else
            rc = skip_field(c, &r, f, wt);
        if (rc) return rc;
    }
    const col_str_t *svc = col_attr_str(res->attrs, res->nattrs, "service.name");
    res->service = svc ? *svc : (col_str_t){"", 0};
    return 0;
}

static int scope(ctx_t *c, pb_t r, col_scope_t *sc)
{
    int rc = attributes(c, r, 3, "attributes", &sc->attrs, &sc->nattrs);
    if (rc) return rc;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    FIELDS(c, &r, f, wt)
    {
        switch (f) {
        case 1:
            rc = get_str(c, &r, wt, "name", &sc->name);
            break;
        case 2:
            rc = get_str(c, &r, wt, "version", &sc->version);
            break;
        case 3:
            rc = get_bytes(c, &r, wt, "attributes", &(pb_t){0});
            break;
        case 4:
            rc = get_u32(c, &r, wt, "droppedAttributesCount", &sc->dropped_attrs);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
    }
    return 0;
}

/* ---- Span ---- */

/* The span being read is refused for an id of the wrong length (li: a link's, or -1). */
static void id_refuse(ctx_t *c, const char *name, size_t want, int li)
{
    if (c->why) return;
    col_id_why(c->why_buf, sizeof(c->why_buf), name, want, li);
    c->why = c->why_buf;
}

/* An id field: want bytes (or none when empty_ok), else the span is refused. */
static int id_field(ctx_t *c, pb_t *r, unsigned wt, const char *name, uint8_t *out, size_t want,
                    bool empty_ok, int li)
{
    pb_t v = {NULL, NULL};
    int rc = get_bytes(c, r, wt, name, &v);
    if (rc) return rc;
    size_t n = (size_t)(v.end - v.p);
    if (n == want) {
        memcpy(out, v.p, want);
        return 0;
    }
    memset(out, 0, want);
    if (!(empty_ok && n == 0)) id_refuse(c, name, want, li);
    return 0;
}

static int event(ctx_t *c, pb_t r, col_event_t *e)
{
    int rc = attributes(c, r, 3, "attributes", &e->attrs, &e->nattrs);
    if (rc) return rc;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    FIELDS(c, &r, f, wt)
    {
        switch (f) {
        case 1:
            rc = get_fixed64(c, &r, wt, "timeUnixNano", &e->time_ns);
            break;
        case 2:
            rc = get_str(c, &r, wt, "name", &e->name);
            break;
        case 3:
            rc = get_bytes(c, &r, wt, "attributes", &(pb_t){0});
            break;
        case 4:
            rc = get_u32(c, &r, wt, "droppedAttributesCount", &e->dropped_attrs);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
    }
    return 0;
}

static int link(ctx_t *c, pb_t r, col_link_t *l, int li)
{
    int rc = attributes(c, r, 4, "attributes", &l->attrs, &l->nattrs);
    if (rc) return rc;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    bool has_tid = false, has_sid = false;
    FIELDS(c, &r, f, wt)
    {
        switch (f) {
        case 1:
            rc = id_field(c, &r, wt, "traceId", l->trace_id, 16, false, li);
            has_tid = true;
            break;
        case 2:
            rc = id_field(c, &r, wt, "spanId", l->span_id, 8, false, li);
            has_sid = true;
            break;
        case 3:
            rc = get_str(c, &r, wt, "traceState", &l->trace_state);
            break;
        case 4:
            rc = get_bytes(c, &r, wt, "attributes", &(pb_t){0});
            break;
        case 5:
            rc = get_u32(c, &r, wt, "droppedAttributesCount", &l->dropped_attrs);
            break;
        case 6:
            rc = get_fixed32(c, &r, wt, "flags", &l->flags);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
    }
    if (!has_tid) id_refuse(c, "traceId", 16, li);
    if (!has_sid) id_refuse(c, "spanId", 8, li);
    return 0;
}

static int status(ctx_t *c, pb_t r, col_span_t *s)
{
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int rc;
    FIELDS(c, &r, f, wt)
    {
        uint64_t code;
        if (f == 2) {
            rc = get_str(c, &r, wt, "message", &s->status_message);
        } else if (f == 3) {
            rc = get_u64(c, &r, wt, "code", &code);
            if (!rc && code > COL_STATUS_ERROR)
                refuse(c, "status.code is not a StatusCode (0 to 2)");
            s->status = code <= COL_STATUS_ERROR ? (uint8_t)code : COL_STATUS_UNSET;
        } else {
            rc = skip_field(c, &r, f, wt);
        }
        if (rc) return rc;
    }
    return 0;
}

static int span(ctx_t *c, pb_t r, col_span_t *s)
{
    /* attributes, events and links gathered in the scratch arrays, one pass (counting
     * them first was a walk over every tag of every span: 5% of protobuf ingest) */
    c->sattrs.n = c->sevents.n = c->slinks.n = 0;
    int rc;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    bool has_tid = false, has_sid = false;
    FIELDS(c, &r, f, wt)
    {
        pb_t m = {NULL, NULL};
        uint64_t u;
        switch (f) {
        case 1:
            rc = id_field(c, &r, wt, "traceId", s->trace_id, 16, false, -1);
            has_tid = true;
            break;
        case 2:
            rc = id_field(c, &r, wt, "spanId", s->span_id, 8, false, -1);
            has_sid = true;
            break;
        case 3:
            rc = get_str(c, &r, wt, "traceState", &s->trace_state);
            break;
        case 4:
            rc = id_field(c, &r, wt, "parentSpanId", s->parent_id, 8, true, -1);
            break;
        case 5:
            rc = get_str(c, &r, wt, "name", &s->name);
            break;
        case 6:
            rc = get_u64(c, &r, wt, "kind", &u);
            if (!rc && u > COL_KIND_CONSUMER) refuse(c, "kind is not a SpanKind (0 to 5)");
            s->kind = u <= COL_KIND_CONSUMER ? (uint8_t)u : COL_KIND_UNSPECIFIED;
            break;
        case 7:
            rc = get_fixed64(c, &r, wt, "startTimeUnixNano", &s->start_ns);
            break;
        case 8:
            rc = get_fixed64(c, &r, wt, "endTimeUnixNano", &s->end_ns);
            break;
        case 9:
            rc = get_bytes(c, &r, wt, "attributes", &m);
            if (!rc) {
                col_attr_t *a = scratch_push(c, &c->sattrs, sizeof(col_attr_t));
                if (!a) return c->rc;
                push(c, "attributes", (int)s->nattrs++);
                rc = key_value(c, m, a);
                pop(c);
            }
            break;
        case 10:
            rc = get_u32(c, &r, wt, "droppedAttributesCount", &s->dropped_attrs);
            break;
        case 11:
            rc = get_bytes(c, &r, wt, "events", &m);
            if (!rc) {
                col_event_t *e = scratch_push(c, &c->sevents, sizeof(col_event_t));
                if (!e) return c->rc;
                push(c, "events", (int)s->nevents++);
                memset(e, 0, sizeof(*e));
                e->name = (col_str_t){"", 0};
                rc = event(c, m, e);
                pop(c);
            }
            break;
        case 12:
            rc = get_u32(c, &r, wt, "droppedEventsCount", &s->dropped_events);
            break;
        case 13:
            rc = get_bytes(c, &r, wt, "links", &m);
            if (!rc) {
                col_link_t *l = scratch_push(c, &c->slinks, sizeof(col_link_t));
                if (!l) return c->rc;
                push(c, "links", (int)s->nlinks);
                memset(l, 0, sizeof(*l));
                l->trace_state = (col_str_t){"", 0};
                rc = link(c, m, l, (int)s->nlinks++);
                pop(c);
            }
            break;
        case 14:
            rc = get_u32(c, &r, wt, "droppedLinksCount", &s->dropped_links);
            break;
        case 15:
            rc = get_bytes(c, &r, wt, "status", &m);
            if (!rc) {
                s->status = COL_STATUS_UNSET;
                s->status_message = (col_str_t){"", 0};
                push(c, "status", -1);
                rc = status(c, m, s);
                pop(c);
            }
            break;
        case 16:
            rc = get_fixed32(c, &r, wt, "flags", &s->flags);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
    }
    if (!has_tid) id_refuse(c, "traceId", 16, -1);
    if (!has_sid) id_refuse(c, "spanId", 8, -1);
    if ((rc = scratch_take(c, &c->sattrs, sizeof(col_attr_t), (void **)&s->attrs)) ||
        (rc = scratch_take(c, &c->sevents, sizeof(col_event_t), (void **)&s->events)) ||
        (rc = scratch_take(c, &c->slinks, sizeof(col_link_t), (void **)&s->links)))
        return rc;
    return 0;
}

/* ---- the request ---- */

static int scope_spans(ctx_t *c, pb_t r, const col_resource_t *res)
{
    col_scope_t *sc;
    int rc = col_arena_alloc(c->a, sizeof(*sc), (void **)&sc);
    if (rc) return fail_rc(c, rc);
    memset(sc, 0, sizeof(*sc));
    sc->name = sc->version = (col_str_t){"", 0};
    /* the scope first, wherever it is: its spans are checked against it as they are read */
    pb_t m = {NULL, NULL};
    if (last_field(r, 1, &m)) {
        push(c, "scope", -1);
        rc = scope(c, m, sc);
        pop(c);
        if (rc) return rc;
    }
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int si = 0;
    FIELDS(c, &r, f, wt)
    {
        col_str_t url;
        switch (f) {
        case 1:
            rc = get_bytes(c, &r, wt, "scope", &m);
            break; /* read above */
        case 2: {
            if ((rc = get_bytes(c, &r, wt, "spans", &m))) return rc;
            if (c->b->n >= c->cap) return bad(c, "spans", "more spans than counted");
            col_span_t *s = &c->b->spans[c->b->n];
            memset(s, 0, sizeof(*s));
            s->name = s->trace_state = s->status_message = (col_str_t){"", 0};
            s->remote.service = (col_str_t){"", 0};
            s->resource = res;
            s->scope = sc;
            c->why = NULL;
            push(c, "spans", si++);
            rc = span(c, m, s);
            pop(c);
            if (rc) return rc;
            const char *why = c->why ? c->why : col_span_check(s);
            if (why)
                col_batch_reject(c->b, c->index, why);
            else
                c->b->n++;
            c->index++;
            break;
        }
        case 3:
            rc = get_str(c, &r, wt, "schemaUrl", &url);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
    }
    return 0;
}

static int resource_spans(ctx_t *c, pb_t r)
{
    col_resource_t *res;
    int rc = col_arena_alloc(c->a, sizeof(*res), (void **)&res);
    if (rc) return fail_rc(c, rc);
    memset(res, 0, sizeof(*res));
    res->service = (col_str_t){"", 0};
    /* the resource first, wherever it is: its spans are checked against it as they are
     * read (col_span_check looks at their resource's attributes too) */
    pb_t m = {NULL, NULL};
    if (last_field(r, 1, &m)) {
        push(c, "resource", -1);
        rc = resource(c, m, res);
        pop(c);
        if (rc) return rc;
    }
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int si = 0;
    FIELDS(c, &r, f, wt)
    {
        col_str_t url;
        switch (f) {
        case 1:
            rc = get_bytes(c, &r, wt, "resource", &m);
            break; /* read above */
        case 2:
            if ((rc = get_bytes(c, &r, wt, "scopeSpans", &m))) return rc;
            push(c, "scopeSpans", si++);
            rc = scope_spans(c, m, res);
            pop(c);
            break;
        case 3:
            rc = get_str(c, &r, wt, "schemaUrl", &url);
            break;
        default:
            rc = skip_field(c, &r, f, wt);
            break;
        }
        if (rc) return rc;
    }
    return 0;
}

/* The spans of the request (a counting walk, three levels down). */
static size_t count_spans(pb_t req)
{
    size_t total = 0, n1, x, y;
    uint32_t f;
    unsigned wt;
    const char *msg;
    pb_t rs = {NULL, NULL}, ss = {NULL, NULL};
    while (tag(&req, &f, &wt, &msg) > 0) {
        if (f != 1 || wt != WT_LEN) {
            if (!skip(&req, wt, &msg)) break;
            continue;
        }
        if (!len_field(&req, &rs)) break;
        while (tag(&rs, &f, &wt, &msg) > 0) {
            if (f != 2 || wt != WT_LEN) {
                if (!skip(&rs, wt, &msg)) break;
                continue;
            }
            if (!len_field(&rs, &ss)) break;
            count3(ss, 2, 0, 0, &n1, &x, &y);
            total += n1;
        }
    }
    return total;
}

int col_otlp_pb_decode(const uint8_t *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                       size_t errlen)
{
    memset(b, 0, sizeof(*b));
    if (err && errlen) err[0] = 0;
    ctx_t c = {.a = a, .b = b, .err = err, .errlen = errlen};
    pb_t req = {p, p + n};
    size_t total = count_spans(req);
    if (total > COL_MAX_BATCH_SPANS)
        return weft__errf(err, errlen, WEFT_ELIMIT, "more than %u spans in one request",
                          COL_MAX_BATCH_SPANS);
    int rc;
    if (total && (rc = col_arena_alloc(a, total * sizeof(col_span_t), (void **)&b->spans)))
        return fail_rc(&c, rc);
    c.cap = total;
    weft_buf_init(&c.jb, COL_ANY_BUF_LIMIT);
    rc = 0;
    const char *tag_msg_;
    uint32_t f;
    unsigned wt;
    int ri = 0;
    for (int t; !rc && (t = tag(&req, &f, &wt, &tag_msg_)) != 0;) {
        pb_t m = {NULL, NULL};
        if (t < 0) {
            rc = bad(&c, NULL, tag_msg_);
        } else if (f == 1) {
            if (!(rc = get_bytes(&c, &req, wt, "resourceSpans", &m))) {
                push(&c, "resourceSpans", ri++);
                rc = resource_spans(&c, m);
                pop(&c);
            }
        } else {
            rc = skip_field(&c, &req, f, wt);
        }
    }
    weft_buf_free(&c.jb);
    free(c.sattrs.p);
    free(c.sevents.p);
    free(c.slinks.p);
    if (rc) {
        b->n = 0;
        b->rejected = 0;
        b->reject_msg[0] = 0;
    }
    return rc;
}
