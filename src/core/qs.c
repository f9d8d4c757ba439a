/*
 * qs.c - query strings: see qs.h.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/qs.h"

void weft_qs_parse(weft_str_t q, weft_qs_t *out)
{
    out->n = 0;
    size_t i = 0;
    while (i < q.len && out->n < WEFT_QS_MAX) {
        size_t j = i;
        while (j < q.len && q.base[j] != '&') j++;
        size_t eq = i;
        while (eq < j && q.base[eq] != '=') eq++;
        if (j > i) {
            out->k[out->n] = (weft_str_t){q.base + i, eq - i};
            out->v[out->n] =
                eq < j ? (weft_str_t){q.base + eq + 1, j - eq - 1} : (weft_str_t){q.base + j, 0};
            out->n++;
        }
        i = j + 1;
    }
}

bool weft_qs_get(const weft_qs_t *q, const char *name, weft_str_t *v)
{
    size_t n = strlen(name);
    for (int i = 0; i < q->n; i++) {
        if (q->k[i].len == n && memcmp(q->k[i].base, name, n) == 0) {
            if (v) *v = q->v[i];
            return true;
        }
    }
    return false;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

ssize_t weft_qs_decode(weft_str_t v, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.base[i];
        if (c == '+')
            c = ' ';
        else if (c == '%') {
            if (i + 2 >= v.len) return -1;
            int h = hexv(v.base[i + 1]), l = hexv(v.base[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = 0;
    return (ssize_t)o;
}

bool weft_qs_flag(const weft_qs_t *q, const char *name)
{
    weft_str_t v;
    if (!weft_qs_get(q, name, &v)) return false;
    return v.len == 0 || (v.len == 4 && strncasecmp(v.base, "true", 4) == 0) ||
           (v.len == 1 && v.base[0] == '1');
}
