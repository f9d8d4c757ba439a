/*
 * encode_util.c - what the query encoders share: attribute values as text and as plain
 * JSON, for Zipkin's string tags and annotations and for Jaeger's string tags; addresses as
 * text; spans put in start order.
 *
 * The rules follow OpenTelemetry's mapping to non-OTLP formats (specification/common/
 * mapping-to-non-otlp.md and the Zipkin exporter's page): booleans are "true"/"false",
 * numbers are written in the invariant (en-US) form, and arrays are "serialized to string
 * like a JSON list". OTLP's arrays and maps are kept in a span as their OTLP/JSON text
 * (span.h: `[{"stringValue":"a"},{"intValue":"5"}]`), which no Zipkin or Jaeger reader
 * understands, so they are rewritten here as the plain JSON a person would write:
 * `["a",5]`, `{"k":"v"}`. intValue's decimal string becomes a number, doubleValue's
 * "NaN"/"Infinity" stay strings (JSON has no such numbers), bytesValue's base64 stays as it
 * is, and an AnyValue with no value is null. That text is rare (OTel instrumentations set
 * few array attributes) and only shown, so it is parsed with jansson rather than by hand;
 * should it ever not parse (it was produced by weft's own decoders, so it should), it is
 * written as the text it is.
 *
 * Doubles: the shortest JSON number that reads back as the same double (json_write.c), so
 * 1.0 is "1" (as Go's and JavaScript's exporters write it; Java's writes "1.0"), and the
 * non-finite values as JavaScript names them.
 *
 * Threads: any; no state. Memory: jansson's tree for an array or map value, freed before
 * returning (a value jansson cannot load, for want of memory too, is written as its text).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collector/encode_util.h"
#include "core/json_write.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void col_base64(weft_buf_t *b, const uint8_t *p, size_t n)
{
    if (!weft_buf_reserve(b, (n + 2) / 3 * 4)) return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64[v >> 18], *o++ = b64[(v >> 12) & 63], *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = b64[v >> 18], *o++ = b64[(v >> 12) & 63], *o++ = '=', *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = b64[v >> 18], *o++ = b64[(v >> 12) & 63], *o++ = b64[(v >> 6) & 63];
        *o++ = '=';
    }
    weft_buf_commit(b, (size_t)(o - (b->p + b->len)));
}

static const char *nonfinite_name(double v)
{
    return isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
}

void col_double_text(weft_buf_t *b, double v)
{
    if (!weft_json_put_double(b, v)) weft_buf_puts(b, nonfinite_name(v));
}

/* ---- OTLP/JSON AnyValue text -> plain JSON ---- */

static void plain_value(weft_buf_t *b, json_t *any);

static void put_jstr(weft_buf_t *b, json_t *s)
{
    weft_json_put_str(b, json_string_value(s), json_string_length(s));
}

/* A list of AnyValues as a JSON list. */
static void plain_list(weft_buf_t *b, json_t *values)
{
    weft_buf_putc(b, '[');
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v)
    {
        if (i) weft_buf_putc(b, ',');
        plain_value(b, v);
    }
    weft_buf_putc(b, ']');
}

/* A list of KeyValues as a JSON object (keys in their order; a key twice is written twice,
 * as it was sent). */
static void plain_kvlist(weft_buf_t *b, json_t *values)
{
    weft_buf_putc(b, '{');
    size_t i, n = 0;
    json_t *kv;
    json_array_foreach(values, i, kv)
    {
        json_t *k = json_object_get(kv, "key");
        if (!json_is_string(k)) continue;
        if (n++) weft_buf_putc(b, ',');
        put_jstr(b, k);
        weft_buf_putc(b, ':');
        plain_value(b, json_object_get(kv, "value"));
    }
    weft_buf_putc(b, '}');
}

/* One AnyValue ({"stringValue": ...} and the others) as a plain JSON value. */
static void plain_value(weft_buf_t *b, json_t *any)
{
    json_t *v;
    if ((v = json_object_get(any, "stringValue")) && json_is_string(v)) {
        put_jstr(b, v);
    } else if ((v = json_object_get(any, "boolValue")) && json_is_boolean(v)) {
        weft_buf_puts(b, json_is_true(v) ? "true" : "false");
    } else if ((v = json_object_get(any, "intValue"))) {
        if (json_is_integer(v)) {
            weft_buf_put_i64(b, (int64_t)json_integer_value(v));
        } else if (json_is_string(v)) {
            /* proto3 JSON's int64 is a decimal string: a number when it is one */
            const char *s = json_string_value(v);
            size_t n = json_string_length(v), i = s[0] == '-';
            bool digits = n > i && n - i <= 19 && (s[i] != '0' || n - i == 1);
            for (size_t k = i; digits && k < n; k++) digits = s[k] >= '0' && s[k] <= '9';
            if (digits)
                weft_buf_put(b, s, n);
            else
                put_jstr(b, v);
        } else {
            weft_buf_puts(b, "null");
        }
    } else if ((v = json_object_get(any, "doubleValue"))) {
        if (json_is_number(v))
            weft_json_put_double(b, json_number_value(v));
        else if (json_is_string(v))
            put_jstr(b, v); /* "NaN", "Infinity", "-Infinity" */
        else
            weft_buf_puts(b, "null");
    } else if ((v = json_object_get(any, "bytesValue")) && json_is_string(v)) {
        put_jstr(b, v);
    } else if ((v = json_object_get(any, "arrayValue"))) {
        json_t *vals = json_object_get(v, "values");
        if (json_is_array(vals))
            plain_list(b, vals);
        else
            weft_buf_puts(b, "[]");
    } else if ((v = json_object_get(any, "kvlistValue"))) {
        json_t *vals = json_object_get(v, "values");
        if (json_is_array(vals))
            plain_kvlist(b, vals);
        else
            weft_buf_puts(b, "{}");
    } else {
        weft_buf_puts(b, "null");
    }
}

/* An ARRAY or KVLIST attribute's OTLP/JSON text as plain JSON; false when it does not
 * parse as the list it should be (nothing written then, unless memory ran out). */
static bool plain_attr(weft_buf_t *b, const col_attr_t *a)
{
    json_error_t err;
    json_t *j = json_loadb(a->v.s.p, a->v.s.n, JSON_ALLOW_NUL, &err);
    if (!json_is_array(j)) {
        json_decref(j);
        return false;
    }
    if (a->type == COL_V_ARRAY)
        plain_list(b, j);
    else
        plain_kvlist(b, j);
    json_decref(j);
    return true;
}

void col_attr_text(weft_buf_t *b, const col_attr_t *a)
{
    switch (a->type) {
    case COL_V_STRING:
        weft_buf_put(b, a->v.s.p, a->v.s.n);
        break;
    case COL_V_BOOL:
        weft_buf_puts(b, a->v.b ? "true" : "false");
        break;
    case COL_V_INT:
        weft_buf_put_i64(b, a->v.i);
        break;
    case COL_V_DOUBLE:
        col_double_text(b, a->v.d);
        break;
    case COL_V_BYTES:
        col_base64(b, (const uint8_t *)a->v.s.p, a->v.s.n);
        break;
    case COL_V_ARRAY:
    case COL_V_KVLIST:
        if (!plain_attr(b, a)) weft_buf_put(b, a->v.s.p, a->v.s.n);
        break;
    default: /* COL_V_EMPTY */
        break;
    }
}

void col_attr_json(weft_buf_t *b, const col_attr_t *a)
{
    switch (a->type) {
    case COL_V_STRING:
        weft_json_put_str(b, a->v.s.p, a->v.s.n);
        break;
    case COL_V_BOOL:
    case COL_V_INT:
        col_attr_text(b, a);
        break;
    case COL_V_DOUBLE:
        if (!weft_json_put_double(b, a->v.d)) {
            const char *s = nonfinite_name(a->v.d);
            weft_json_put_str(b, s, strlen(s));
        }
        break;
    case COL_V_BYTES:
        weft_buf_putc(b, '"');
        col_base64(b, (const uint8_t *)a->v.s.p, a->v.s.n);
        weft_buf_putc(b, '"');
        break;
    case COL_V_ARRAY:
    case COL_V_KVLIST:
        if (!plain_attr(b, a)) weft_json_put_str(b, a->v.s.p, a->v.s.n);
        break;
    default:
        weft_buf_puts(b, "null");
        break;
    }
}

size_t col_ip_text(const uint8_t *ip, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    if (n == 4) {
        for (int i = 0; i < 4; i++) {
            unsigned v = ip[i];
            if (i) *o++ = '.';
            if (v >= 100) *o++ = (char)('0' + v / 100);
            if (v >= 10) *o++ = (char)('0' + v / 10 % 10);
            *o++ = (char)('0' + v % 10);
        }
        *o = 0;
        return (size_t)(o - out);
    }
    unsigned g[8];
    for (int i = 0; i < 8; i++) g[i] = (unsigned)ip[2 * i] << 8 | ip[2 * i + 1];
    int best = -1, best_len = 1; /* a single zero group is not compressed (RFC 5952 4.2.2) */
    for (int i = 0; i < 8;) {
        if (g[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && !g[j]) j++;
        if (j - i > best_len) best = i, best_len = j - i;
        i = j;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *o++ = ':', *o++ = ':';
            i += best_len - 1;
            continue;
        }
        if (i && i != best + best_len) *o++ = ':';
        bool started = false;
        for (int sh = 12; sh >= 0; sh -= 4) {
            unsigned d = (g[i] >> sh) & 15;
            if (d || started || sh == 0) *o++ = hex[d], started = true;
        }
    }
    *o = 0;
    return (size_t)(o - out);
}

/* ---- spans in start order ---- */

/* Orders spans by start time; ties keep the order given (pointers into one array). */
static int by_start(const void *x, const void *y)
{
    const col_span_t *a = *(const col_span_t *const *)x, *b = *(const col_span_t *const *)y;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
}

bool col_sort_by_start(col_span_t *spans, size_t n)
{
    if (n < 2) return true;
    col_span_t **order = malloc(n * sizeof(*order));
    col_span_t *copy = malloc(n * sizeof(*copy));
    if (!order || !copy) {
        free(order);
        free(copy);
        return false;
    }
    for (size_t i = 0; i < n; i++) order[i] = &spans[i];
    qsort(order, n, sizeof(*order), by_start);
    for (size_t i = 0; i < n; i++) copy[i] = *order[i];
    memcpy(spans, copy, n * sizeof(*copy));
    free(copy);
    free(order);
    return true;
}
