/*
 * acl.c - the token a write must carry when acl.token is set, for the registry's API and the
 * gateway's admin API alike: X-Consul-Token, Authorization: Bearer, or ?token= (as Consul
 * takes it), compared in constant time.
 */
#include <string.h>
#include <strings.h>

#include "registry/acl.h"

/* a equals b, in time that depends on the lengths only (not on where they differ) */
static bool ct_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char d = alen != blen;
    for (size_t i = 0; i < alen; i++) d |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return d == 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* ?token=... percent-decoded into out (cap bytes with the NUL); false when absent or bad. */
static bool query_token(weft_str_t q, char *out, size_t cap)
{
    const char *p = q.base, *e = q.base + q.len;
    while (p < e) {
        const char *amp = memchr(p, '&', (size_t)(e - p));
        const char *end = amp ? amp : e;
        if (end - p >= 6 && memcmp(p, "token=", 6) == 0) {
            size_t o = 0;
            for (const char *s = p + 6; s < end; s++) {
                int c = (unsigned char)*s;
                if (c == '%') {
                    int hi = s + 2 < end ? hexval(s[1]) : -1, lo = hi >= 0 ? hexval(s[2]) : -1;
                    if (lo < 0) return false;
                    c = hi * 16 + lo;
                    s += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (o + 1 >= cap || c == 0) return false;
                out[o++] = (char)c;
            }
            out[o] = 0;
            return true;
        }
        p = end + 1;
    }
    return false;
}

bool weft__acl_ok(weft_http_request_t *req, const char *want)
{
    if (!want || !*want) return true;
    weft_str_t t = weft_http_request_header(req, "X-Consul-Token");
    if (t.base && ct_eq(t.base, t.len, want)) return true;
    weft_str_t a = weft_http_request_header(req, "Authorization");
    if (a.base && a.len > 7 && strncasecmp(a.base, "Bearer ", 7) == 0 &&
        ct_eq(a.base + 7, a.len - 7, want))
        return true;
    char buf[512];
    return query_token(req->query, buf, sizeof(buf)) && ct_eq(buf, strlen(buf), want);
}
