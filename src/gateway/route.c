/*
 * route.c - the gateway's route table: matching a request, and the path it is sent upstream
 * with (see route.h).
 *
 * Matching. Routes are tried in the order the configuration lists them and the first that
 * matches wins, as in Envoy's route lists and Kong's ordered routes: an operator reads the
 * file top-down and knows which route takes a request. A route matches when its path rule
 * holds (prefix at a segment boundary, exact, or a pattern of literal, ":name" and a last
 * "*" segment), the request's host (its authority without the port, any case) equals the
 * route's host if it has one, its method is one of the route's if it lists any, and every
 * header rule holds (present, or present with that exact value). Paths are compared as
 * sent, without percent-decoding, as the router does.
 *
 * Cost. A scan of the routes with a few comparisons each; a table of a few hundred routes
 * costs a few thousand instructions at worst. Nothing is allocated.
 *
 * Threads: tables are immutable; any thread matches.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/snapshot.h"
#include "gateway/policy.h"
#include "gateway/route.h"

static bool prefix_match(const gw_route_t *r, weft_str_t p)
{
    if (p.len < r->path_len || memcmp(p.base, r->path, r->path_len) != 0) return false;
    if (p.len == r->path_len) return true;
    /* at a segment boundary: "/api" is a prefix of "/api/x", not of "/apix" */
    return r->path_len > 0 && (r->path[r->path_len - 1] == '/' || p.base[r->path_len] == '/');
}

/* Segment by segment: a literal equal, ":x" any non-empty segment, a last "*" the rest. */
static bool pattern_match(const gw_route_t *r, weft_str_t p)
{
    const char *a = r->path, *ae = r->path + r->path_len;
    const char *b = p.base, *be = p.base + p.len;
    while (a < ae && b < be) {
        if (*a != '/' || *b != '/') return false;
        a++, b++;
        const char *as = a, *bs = b;
        while (a < ae && *a != '/') a++;
        while (b < be && *b != '/') b++;
        size_t al = (size_t)(a - as), bl = (size_t)(b - bs);
        if (al == 1 && *as == '*' && a == ae) return true;
        if (al && *as == ':') {
            if (bl == 0) return false;
            continue;
        }
        if (al != bl || memcmp(as, bs, al) != 0) return false;
    }
    if (a < ae) /* a trailing wildcard segment also matches the path without it */
        return ae - a == 2 && a[0] == '/' && a[1] == '*' && b == be;
    return b == be;
}

static bool host_match(const gw_route_t *r, weft_str_t auth)
{
    size_t n = auth.len;
    if (n && auth.base[0] == '[') { /* [v6]:port */
        const char *close = memchr(auth.base, ']', n);
        n = close ? (size_t)(close - auth.base) + 1 : n;
    } else {
        const char *colon = memchr(auth.base, ':', n);
        if (colon) n = (size_t)(colon - auth.base);
    }
    return strlen(r->host) == n && strncasecmp(r->host, auth.base, n) == 0;
}

static bool route_match(const gw_route_t *r, const weft_http_request_t *req)
{
    switch (r->kind) {
    case GW_MATCH_PREFIX:
        if (!prefix_match(r, req->path)) return false;
        break;
    case GW_MATCH_EXACT:
        if (req->path.len != r->path_len || memcmp(req->path.base, r->path, r->path_len) != 0)
            return false;
        break;
    case GW_MATCH_PATTERN:
        if (!pattern_match(r, req->path)) return false;
        break;
    }
    if (r->host && !host_match(r, req->authority)) return false;
    if (r->nmethods) {
        bool any = false;
        for (unsigned i = 0; i < r->nmethods && !any; i++)
            any = strlen(r->methods[i]) == req->method.len &&
                  memcmp(r->methods[i], req->method.base, req->method.len) == 0;
        if (!any) return false;
    }
    for (unsigned i = 0; i < r->nheaders; i++) {
        weft_str_t v = weft_http_request_header(req, r->headers[i].name);
        if (!v.base) return false;
        const char *want = r->headers[i].value;
        if (want && !(strlen(want) == v.len && memcmp(want, v.base, v.len) == 0)) return false;
    }
    return true;
}

const gw_route_t *gw_table_match(const gw_table_t *t, const weft_http_request_t *req)
{
    for (size_t i = 0; i < t->n; i++)
        if (route_match(&t->routes[i], req)) return &t->routes[i];
    return NULL;
}

/* The path part of what goes upstream for req on r: p[0..n), and whether a '/' goes first. */
static bool upstream_path(const gw_route_t *r, const weft_http_request_t *req, const char **pp,
                          size_t *pn)
{
    const char *p = req->path.base;
    size_t n = req->path.len;
    if (r->rewrite) {
        p = r->rewrite;
        n = strlen(r->rewrite);
    } else if (r->strip_prefix && r->kind == GW_MATCH_PREFIX) {
        size_t k = r->path_len;
        if (k && r->path[k - 1] == '/') k--; /* keep the '/' that begins what is left */
        p += k;
        n -= k;
    }
    *pp = p;
    *pn = n;
    return n == 0 || p[0] != '/';
}

size_t gw_upstream_target_size(const gw_route_t *r, const weft_http_request_t *req)
{
    const char *p;
    size_t n;
    bool slash = upstream_path(r, req, &p, &n);
    return (slash ? 1 : 0) + n + (req->query.len ? 1 + req->query.len : 0) + 1;
}

int gw_upstream_target(const gw_route_t *r, const weft_http_request_t *req, char *out, size_t cap)
{
    const char *p;
    size_t n;
    bool slash = upstream_path(r, req, &p, &n);
    size_t need = (slash ? 1 : 0) + n + (req->query.len ? 1 + req->query.len : 0) + 1;
    if (need > cap) return -1;
    size_t o = 0;
    if (slash) out[o++] = '/';
    memcpy(out + o, p, n);
    o += n;
    if (req->query.len) {
        out[o++] = '?';
        memcpy(out + o, req->query.base, req->query.len);
        o += req->query.len;
    }
    out[o] = 0;
    return 0;
}

void gw_route_clear(gw_route_t *r)
{
    free(r->name);
    free(r->path);
    free(r->host);
    for (unsigned i = 0; i < r->nmethods; i++) free(r->methods[i]);
    for (unsigned i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->rewrite);
    free(r->service);
    free(r->targets);
    free(r->hash_header);
    weft_ring_free(r->ring);
    free(r->rate_limit.key_header);
    gw_policy_free(r->policy);
    memset(r, 0, sizeof(*r));
}

static void table_destroy(void *obj)
{
    gw_table_t *t = obj;
    for (size_t i = 0; i < t->n; i++) gw_route_clear(&t->routes[i]);
    free(t->routes);
    free(t->active);
}

gw_table_t *gw_table_new(gw_route_t *routes, size_t n)
{
    gw_table_t *t = weft_snap_alloc(sizeof(*t), table_destroy);
    if (!t) {
        for (size_t i = 0; i < n; i++) gw_route_clear(&routes[i]);
        free(routes);
        return NULL;
    }
    t->routes = routes;
    t->n = n;
    for (size_t i = 0; i < n; i++) { /* a ring per set of static targets, once per table */
        gw_route_t *r = &routes[i];
        if (r->lb != GW_LB_RING_HASH || !r->ntargets || r->ring) continue;
        gw_endpoint_t e[GW_MAX_TARGETS];
        unsigned k = 0;
        for (; k < r->ntargets && k < GW_MAX_TARGETS; k++)
            e[k] = (gw_endpoint_t){r->targets[k].host, r->targets[k].port, r->targets[k].weight};
        if (gw_ring_build(e, k, &r->ring) != 0) {
            weft_snap_release(t); /* clears the routes */
            return NULL;
        }
    }
    return t;
}
