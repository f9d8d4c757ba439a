/*
 * url.c - see url.h. Pure function; any thread. The byte classes (scheme, host) are
 * syntax.h's.
 */
#include "http/url.h"

#include <string.h>

#include "http/syntax.h"

const char *weft__url_split(const char *url, weft__url_t *u)
{
    memset(u, 0, sizeof(*u));
    u->rest = "";
    const char *s = url;
    if (weft__http_is_alpha((unsigned char)s[0])) {
        size_t n = 1;
        while (weft__http_is_alpha((unsigned char)s[n]) ||
               weft__http_is_digit((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' ||
               s[n] == '.')
            n++;
        if (strncmp(s + n, "://", 3) == 0) {
            u->scheme = s;
            u->scheme_len = n;
            s += n + 3;
        }
    }
    const char *hs = s, *he;
    if (*s == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (!he) return "expected ']' after an IPv6 address";
        s = he + 1;
        u->bracketed = true;
    } else {
        he = s + strcspn(s, ":/?#");
        s = he;
    }
    if (he == hs || (size_t)(he - hs) > 255) return "expected a host (1 to 255 bytes)";
    bool clean = weft__http_target_clean(hs, (size_t)(he - hs)); /* no NUL either: strchr */
    for (const char *c = hs; clean && c < he; c++) clean = !strchr("[]@/?#", *c);
    if (!clean) return "a host holds no blanks, control characters, '[', ']', '@', '/', '?' or '#'";
    memcpy(u->host, hs, (size_t)(he - hs));
    u->host[he - hs] = 0;
    if (*s == ':') {
        unsigned v = 0;
        size_t n = 0;
        for (s++; weft__http_is_digit((unsigned char)*s) && n < 6; s++, n++)
            v = v * 10 + (unsigned)(*s - '0');
        if (n == 0 || n > 5 || v == 0 || v > 65535) return "expected a port from 1 to 65535";
        u->port = (uint16_t)v;
    }
    if (*s && *s != '/') return "expected '/' after the host and port";
    u->rest = s;
    return NULL;
}
