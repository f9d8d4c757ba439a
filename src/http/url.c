/*
 * url.c - see url.h. Pure function; any thread.
 */
#include "http/url.h"

#include <ctype.h>
#include <string.h>

const char *weft__url_split(const char *url, weft__url_t *u)
{
    memset(u, 0, sizeof(*u));
    u->rest = "";
    const char *s = url;
    if (isalpha((unsigned char)s[0])) {
        size_t n = 1;
        while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' || s[n] == '.') n++;
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
    for (const char *c = hs; c < he; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || strchr("[]@/?#", *c))
            return "a host holds no blanks, control characters, '[', ']', '@', '/', '?' or '#'";
    memcpy(u->host, hs, (size_t)(he - hs));
    u->host[he - hs] = 0;
    if (*s == ':') {
        unsigned v = 0;
        size_t n = 0;
        for (s++; *s >= '0' && *s <= '9' && n < 6; s++, n++) v = v * 10 + (unsigned)(*s - '0');
        if (n == 0 || n > 5 || v == 0 || v > 65535) return "expected a port from 1 to 65535";
        u->port = (uint16_t)v;
    }
    if (*s && *s != '/') return "expected '/' after the host and port";
    u->rest = s;
    return NULL;
}
