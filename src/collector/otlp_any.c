/*
 * otlp_any.c - the OTLP decoders' shared pieces (collector/otlp_any.h): AnyValue's JSON
 * text for ARRAY and KVLIST attributes, the field paths their 400s name and the words of
 * their id refusals (so that both encodings refuse alike), base64, hex.
 *
 * Both decoders render nested values through these functions only, so the two encodings
 * of a request give byte-identical attribute text (test_otlp_json compares whole batches).
 * Pure functions; a weft_buf_t per decode holds the text while it is written.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "collector/otlp_any.h"
#include "core/errbuf.h"
#include "core/json_write.h"
#include "weft/common.h"

void col_any_put_string(weft_buf_t *b, const char *s, size_t n)
{
    weft_buf_puts(b, "{\"stringValue\":");
    weft_json_put_str(b, s, n);
    weft_buf_putc(b, '}');
}

void col_any_put_bool(weft_buf_t *b, bool v)
{
    weft_buf_puts(b, v ? "{\"boolValue\":true}" : "{\"boolValue\":false}");
}

void col_any_put_int(weft_buf_t *b, int64_t v)
{
    weft_buf_puts(b, "{\"intValue\":\"");
    weft_buf_put_i64(b, v);
    weft_buf_puts(b, "\"}");
}

void col_any_put_double(weft_buf_t *b, double v)
{
    weft_buf_puts(b, "{\"doubleValue\":");
    if (!weft_json_put_double(b, v))
        weft_buf_puts(b, isnan(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    weft_buf_putc(b, '}');
}

void col_any_put_bytes(weft_buf_t *b, const uint8_t *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    weft_buf_puts(b, "{\"bytesValue\":\"");
    if (n > SIZE_MAX / 2 || !weft_buf_reserve(b, (n + 2) / 3 * 4)) return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = al[v >> 18];
        *o++ = al[v >> 12 & 63];
        *o++ = al[v >> 6 & 63];
        *o++ = al[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = al[v >> 18];
        *o++ = al[v >> 12 & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = al[v >> 18];
        *o++ = al[v >> 12 & 63];
        *o++ = al[v >> 6 & 63];
        *o++ = '=';
    }
    weft_buf_commit(b, (size_t)(o - (b->p + b->len)));
    weft_buf_puts(b, "\"}");
}

void col_any_put_key(weft_buf_t *b, const char *k, size_t n)
{
    weft_buf_puts(b, "{\"key\":");
    weft_json_put_str(b, k, n);
    weft_buf_puts(b, ",\"value\":");
}

int col_path_errf(const col_path_t *p, const char *field, const char *msg, char *err, size_t errlen)
{
    char path[640]; /* the deepest: 16 nested values, about 450 bytes */
    size_t o = 0;
    unsigned n = p->depth < sizeof(p->seg) / sizeof(p->seg[0])
                     ? p->depth
                     : (unsigned)(sizeof(p->seg) / sizeof(p->seg[0]));
    for (unsigned i = 0; i < n && o < sizeof(path); i++) {
        const col_seg_t *s = &p->seg[i];
        int k = s->index >= 0 ? snprintf(path + o, sizeof(path) - o, "%s%s[%d]", i ? "." : "",
                                         s->name, s->index)
                              : snprintf(path + o, sizeof(path) - o, "%s%s", i ? "." : "", s->name);
        if (k > 0) o += (size_t)k;
    }
    if (o >= sizeof(path)) o = sizeof(path) - 1;
    path[o] = 0;
    if (!o && !field) /* the request itself */
        return weft__errf(err, errlen, WEFT_EINVAL, "%s", msg);
    return weft__errf(err, errlen, WEFT_EINVAL, "%s%s%s: %s", path, field && o ? "." : "",
                      field ? field : "", msg);
}

void col_id_why(char *buf, size_t n, const char *name, size_t want, int li)
{
    if (li >= 0)
        snprintf(buf, n, "links[%d].%s must be %zu bytes (%zu hex digits)", li, name, want,
                 2 * want);
    else
        snprintf(buf, n, "%s must be %zu bytes (%zu hex digits)", name, want, 2 * want);
}

int col_arena_alloc(weft_arena_t *a, size_t n, void **out)
{
    if (n == 0) n = 1;
    if (a->used + n > a->limit || a->used + n < n) return WEFT_ELIMIT;
    *out = weft_arena_alloc(a, n);
    return *out ? 0 : WEFT_ENOMEM;
}

int col_any_take(weft_buf_t *b, weft_arena_t *a, col_str_t *out)
{
    /* a failed buffer reached its limit (a value too long: keep COL_VALUE_MAX + 1 bytes so
     * that col_span_check refuses it) or ran out of memory (taken as the same: the span is
     * refused, the request goes on) */
    size_t n = b->failed ? COL_ANY_BUF_LIMIT : b->len;
    void *p;
    int rc = col_arena_alloc(a, n, &p);
    if (rc) return rc;
    size_t have = b->len < n ? b->len : n;
    if (have) memcpy(p, b->p, have);
    memset((char *)p + have, 0, n - have);
    out->p = p;
    out->n = (uint32_t)n;
    weft_buf_reset(b);
    return 0;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

long col_base64_decode(const char *s, size_t n, uint8_t *out)
{
    /* padding: none, or up to the next multiple of 4 */
    if (n % 4 == 0 && n >= 1 && s[n - 1] == '=') n--;
    if (n % 4 == 3 && n >= 1 && s[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]),
            c = b64val((unsigned char)s[i + 2]), d = b64val((unsigned char)s[i + 3]);
        if ((a | b | c | d) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    size_t rest = n - i;
    if (rest >= 2) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        int c = rest == 3 ? b64val((unsigned char)s[i + 2]) : 0;
        if ((a | b | c) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (rest == 3) out[o++] = (uint8_t)(v >> 8);
    }
    return (long)o;
}

static const int8_t hex_tab[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
}; /* the digit's value + 1; 0: not a digit */

bool col_hex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_tab[(unsigned char)s[2 * i]], lo = hex_tab[(unsigned char)s[2 * i + 1]];
        if (!hi || !lo) return false;
        out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    return true;
}
