/*
 * fuzz_url.c - any bytes (up to the first NUL) as a URL for weft__url_split.
 *
 * Properties: no crash; a refusal is a non-empty message; an accepted URL has a host of 1 to
 * 255 bytes (no blank, control character or any of "[]@/?#"; no ':' unless bracketed), a port
 * of 0 or 1..65535, a rest that is "" or starts with '/' and is the input's own tail; and
 * writing the parts back out ("scheme://" "[host]" ":port" rest) splits into the same parts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[4096], again[4096 + 600];
    if (size >= sizeof(in)) return 0;
    memcpy(in, data, size);
    in[size] = 0;
    weft__url_t u, v;
    const char *why = weft__url_split(in, &u);
    if (why) {
        if (!why[0]) abort();
        return 0;
    }
    size_t hl = strlen(u.host), len = strlen(in);
    if (hl == 0 || hl > 255 || strpbrk(u.host, "[]@/?#")) abort();
    if (!u.bracketed && strchr(u.host, ':')) abort();
    for (const char *c = u.host; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) abort();
    if (u.rest[0] && u.rest[0] != '/') abort();
    if (u.rest < in || u.rest > in + len || strcmp(u.rest, in + len - strlen(u.rest)) != 0) abort();
    if (u.scheme && (u.scheme < in || u.scheme + u.scheme_len > in + len)) abort();
    int n =
        snprintf(again, sizeof(again), "%.*s%s%s%s%s", (int)u.scheme_len, u.scheme ? u.scheme : "",
                 u.scheme ? "://" : "", u.bracketed ? "[" : "", u.host, u.bracketed ? "]" : "");
    if (u.port) n += snprintf(again + n, sizeof(again) - (size_t)n, ":%u", u.port);
    snprintf(again + n, sizeof(again) - (size_t)n, "%s", u.rest);
    if (weft__url_split(again, &v) != NULL) abort();
    if ((u.scheme == NULL) != (v.scheme == NULL) || u.scheme_len != v.scheme_len ||
        (u.scheme && memcmp(u.scheme, v.scheme, u.scheme_len) != 0) ||
        strcmp(u.host, v.host) != 0 || u.bracketed != v.bracketed || u.port != v.port ||
        strcmp(u.rest, v.rest) != 0)
        abort();
    return 0;
}
