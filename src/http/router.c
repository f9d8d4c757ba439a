/*
 * router.c - a segment trie for method + path routing (see weft/router.h).
 *
 * Design. Each node is one path segment. A node has literal children (an array, searched by
 * length then memcmp: routers have few siblings), at most one parameter child and at most one
 * wildcard child. A node that ends a pattern holds the routes for it: a short list of
 * (method, value) with "*" meaning any method. Matching walks the path segment by segment,
 * trying the literal child, then the parameter child, then the wildcard, and backtracks on
 * a dead end; recursion depth is bounded by the number of segments of the longest pattern.
 *
 * Invariants: built single-threaded; after that, every field is read-only, and match
 * allocates nothing. Parameter names at one position are the same for every pattern through
 * that node (a conflict is rejected at add time), so a match never depends on the order of
 * additions. Memory: the router owns nodes and copies of patterns; never the values.
 */
#include <stdlib.h>
#include <string.h>

#include "weft/router.h"

typedef struct route_s {
    char method[24]; /* "*" for any */
    void *value;
    char *pattern;
    struct route_s *next_added; /* addition order, for foreach */
} route_t;

typedef struct node_s {
    char *seg; /* literal text, or the parameter/wildcard name */
    size_t seg_len;
    struct node_s **lits;
    size_t nlits;
    struct node_s *param;
    struct node_s *wild;
    route_t **routes;
    size_t nroutes;
} node_t;

struct weft_router_s {
    node_t root;
    route_t *first, *last;
    size_t nroutes;
};

weft_router_t *weft_router_new(void)
{
    return calloc(1, sizeof(weft_router_t));
}

static void node_free(node_t *n, int self)
{
    if (!n) return;
    for (size_t i = 0; i < n->nlits; i++) node_free(n->lits[i], 1);
    free(n->lits);
    node_free(n->param, 1);
    node_free(n->wild, 1);
    free(n->routes);
    free(n->seg);
    if (self) free(n);
}

void weft_router_free(weft_router_t *r)
{
    if (!r) return;
    node_free(&r->root, 0);
    for (route_t *rt = r->first, *next; rt; rt = next) {
        next = rt->next_added;
        free(rt->pattern);
        free(rt);
    }
    free(r);
}

static int valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= sizeof(((route_t *)0)->method)) return 0;
    if (strcmp(m, "*") == 0) return 1;
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int valid_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Checks the whole pattern before anything changes. */
static int check_pattern(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || p[0] != '/') return WEFT_EINVAL;
    if (len > WEFT_ROUTER_MAX_PATTERN) return WEFT_ELIMIT;
    unsigned params = 0;
    const char *s = p + 1;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n && s[0] == ':') {
            if (n == 1 || !valid_name(s + 1, n - 1)) return WEFT_EINVAL;
            params++;
        } else if (n && s[0] == '*') {
            if (e || !valid_name(s + 1, n - 1)) return WEFT_EINVAL; /* wildcard must be last */
            params++;
        } else {
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c <= ' ' || c == 0x7f || c == '?' || c == '#') return WEFT_EINVAL;
            }
        }
        if (!e) break;
        s = e + 1;
    }
    return params > WEFT_ROUTER_MAX_PARAMS ? WEFT_ELIMIT : 0;
}

static node_t *node_new(const char *seg, size_t n)
{
    node_t *nd = calloc(1, sizeof(*nd));
    if (!nd) return NULL;
    nd->seg = malloc(n + 1);
    if (!nd->seg) {
        free(nd);
        return NULL;
    }
    memcpy(nd->seg, seg, n);
    nd->seg[n] = 0;
    nd->seg_len = n;
    return nd;
}

/* Finds or creates the child for one pattern segment. *created tells the caller. */
static int child_for(node_t *n, const char *s, size_t len, node_t **out)
{
    if (len && s[0] == ':') {
        if (n->param) {
            if (n->param->seg_len != len - 1 || memcmp(n->param->seg, s + 1, len - 1) != 0)
                return WEFT_EEXIST;
            *out = n->param;
            return 0;
        }
        if (!(n->param = node_new(s + 1, len - 1))) return WEFT_ENOMEM;
        *out = n->param;
        return 0;
    }
    if (len && s[0] == '*') {
        if (n->wild) {
            if (n->wild->seg_len != len - 1 || memcmp(n->wild->seg, s + 1, len - 1) != 0)
                return WEFT_EEXIST;
            *out = n->wild;
            return 0;
        }
        if (!(n->wild = node_new(s + 1, len - 1))) return WEFT_ENOMEM;
        *out = n->wild;
        return 0;
    }
    for (size_t i = 0; i < n->nlits; i++) {
        if (n->lits[i]->seg_len == len && memcmp(n->lits[i]->seg, s, len) == 0) {
            *out = n->lits[i];
            return 0;
        }
    }
    node_t **lits = realloc(n->lits, sizeof(*lits) * (n->nlits + 1));
    if (!lits) return WEFT_ENOMEM;
    n->lits = lits;
    node_t *c = node_new(s, len);
    if (!c) return WEFT_ENOMEM;
    n->lits[n->nlits++] = c;
    *out = c;
    return 0;
}

int weft_router_add(weft_router_t *r, const char *method, const char *pattern, void *value)
{
    if (!method || !pattern || !valid_method(method)) return WEFT_EINVAL;
    int err = check_pattern(pattern);
    if (err) return err;
    if (r->nroutes >= WEFT_ROUTER_MAX_ROUTES) return WEFT_ELIMIT;
    /* Dry run for conflicts first so that a rejected pattern leaves no nodes behind. */
    node_t *n = &r->root;
    const char *s = pattern + 1;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        node_t *next = NULL;
        if (len && (s[0] == ':' || s[0] == '*')) {
            node_t *have = s[0] == ':' ? n->param : n->wild;
            if (have && (have->seg_len != len - 1 || memcmp(have->seg, s + 1, len - 1) != 0))
                return WEFT_EEXIST;
            next = have;
        } else {
            for (size_t i = 0; i < n->nlits; i++)
                if (n->lits[i]->seg_len == len && memcmp(n->lits[i]->seg, s, len) == 0)
                    next = n->lits[i];
        }
        if (!next) break;
        n = next;
        if (!e) {
            for (size_t i = 0; i < n->nroutes; i++)
                if (strcmp(n->routes[i]->method, method) == 0) return WEFT_EEXIST;
            break;
        }
        s = e + 1;
    }
    route_t *rt = calloc(1, sizeof(*rt));
    if (!rt) return WEFT_ENOMEM;
    rt->pattern = strdup(pattern);
    if (!rt->pattern) {
        free(rt);
        return WEFT_ENOMEM;
    }
    strcpy(rt->method, method);
    rt->value = value;
    n = &r->root;
    s = pattern + 1;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if ((err = child_for(n, s, len, &n)) != 0) goto fail; /* only ENOMEM here */
        if (!e) break;
        s = e + 1;
    }
    route_t **list = realloc(n->routes, sizeof(*list) * (n->nroutes + 1));
    if (!list) {
        err = WEFT_ENOMEM;
        goto fail;
    }
    n->routes = list;
    n->routes[n->nroutes++] = rt;
    if (r->last)
        r->last->next_added = rt;
    else
        r->first = rt;
    r->last = rt;
    r->nroutes++;
    return 0;
fail:
    /* Nodes created so far stay: they are empty and match nothing. */
    free(rt->pattern);
    free(rt);
    return err;
}

typedef struct match_state_s {
    weft_str_t method;
    weft_route_match_t *m;
    const node_t *allow_node; /* the first node whose path matched, for 405 */
    route_t *found;
} match_state_t;

static route_t *pick(const node_t *n, weft_str_t method)
{
    route_t *any = NULL, *get = NULL;
    for (size_t i = 0; i < n->nroutes; i++) {
        route_t *rt = n->routes[i];
        size_t ml = strlen(rt->method);
        if (ml == method.len && memcmp(rt->method, method.base, ml) == 0) return rt;
        if (rt->method[0] == '*' && rt->method[1] == 0)
            any = rt;
        else if (ml == 3 && memcmp(rt->method, "GET", 3) == 0)
            get = rt;
    }
    if (method.len == 4 && memcmp(method.base, "HEAD", 4) == 0 && get) return get;
    return any;
}

static int walk(match_state_t *st, const node_t *n, const char *p, const char *end);

/* Child c matched the segment ending at e (NULL: the last segment): finish the match there,
 * or go on with the rest of the path. Remembers the first node whose path matched, for 405. */
static int descend(match_state_t *st, const node_t *c, const char *e, const char *end)
{
    if (e) return walk(st, c, e + 1, end);
    if (!c->nroutes) return 0;
    route_t *rt = pick(c, st->method);
    if (rt) {
        st->found = rt;
        return 1;
    }
    if (!st->allow_node) st->allow_node = c;
    return 0;
}

/* Matches the rest of the path p..end starting at node n (p is just after a '/'). */
static int walk(match_state_t *st, const node_t *n, const char *p, const char *end)
{
    const char *e = memchr(p, '/', (size_t)(end - p));
    size_t len = e ? (size_t)(e - p) : (size_t)(end - p);
    for (size_t i = 0; i < n->nlits; i++) {
        const node_t *c = n->lits[i];
        if (c->seg_len != len || memcmp(c->seg, p, len) != 0) continue;
        if (descend(st, c, e, end)) return 1;
        break;
    }
    weft_route_match_t *m = st->m;
    if (n->param && len > 0 && m->nparams < WEFT_ROUTER_MAX_PARAMS) {
        const node_t *c = n->param;
        unsigned k = m->nparams++;
        m->params[k].name = (weft_str_t){c->seg, c->seg_len};
        m->params[k].value = (weft_str_t){p, len};
        if (descend(st, c, e, end)) return 1;
        m->nparams = k;
    }
    if (n->wild && n->wild->nroutes && m->nparams < WEFT_ROUTER_MAX_PARAMS) {
        const node_t *c = n->wild;
        route_t *rt = pick(c, st->method);
        if (rt) {
            unsigned k = m->nparams++;
            m->params[k].name =
                (weft_str_t){c->seg_len ? c->seg : "*", c->seg_len ? c->seg_len : 1};
            m->params[k].value = (weft_str_t){p, (size_t)(end - p)};
            st->found = rt;
            return 1;
        }
        if (!st->allow_node) st->allow_node = c;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void write_allow(const node_t *n, char *allow, size_t cap)
{
    const char *names[64];
    size_t k = 0;
    int has_get = 0, has_head = 0;
    for (size_t i = 0; i < n->nroutes && k < 62; i++) {
        const char *mth = n->routes[i]->method;
        if (strcmp(mth, "*") == 0) continue;
        names[k++] = mth;
        has_get |= strcmp(mth, "GET") == 0;
        has_head |= strcmp(mth, "HEAD") == 0;
    }
    if (has_get && !has_head) names[k++] = "HEAD";
    qsort(names, k, sizeof(names[0]), cmp_str);
    size_t o = 0;
    allow[0] = 0;
    for (size_t i = 0; i < k; i++) {
        if (i && strcmp(names[i], names[i - 1]) == 0) continue;
        size_t nl = strlen(names[i]);
        if (o + nl + 3 > cap) break;
        if (o) {
            memcpy(allow + o, ", ", 2);
            o += 2;
        }
        memcpy(allow + o, names[i], nl);
        o += nl;
        allow[o] = 0;
    }
}

weft_route_result_t weft_router_match(const weft_router_t *r, weft_str_t method, weft_str_t path,
                                      weft_route_match_t *m, char *allow, size_t cap)
{
    m->nparams = 0;
    if (path.len == 0 || path.base[0] != '/') return WEFT_ROUTE_NOT_FOUND;
    match_state_t st = {.method = method, .m = m};
    if (walk(&st, &r->root, path.base + 1, path.base + path.len)) {
        m->value = st.found->value;
        m->pattern = st.found->pattern;
        return WEFT_ROUTE_FOUND;
    }
    m->nparams = 0;
    if (st.allow_node) {
        if (allow && cap) write_allow(st.allow_node, allow, cap);
        return WEFT_ROUTE_METHOD_NOT_ALLOWED;
    }
    return WEFT_ROUTE_NOT_FOUND;
}

void weft_router_foreach(const weft_router_t *r,
                         void (*fn)(const char *, const char *, void *, void *), void *arg)
{
    for (route_t *rt = r->first; rt; rt = rt->next_added)
        fn(rt->method, rt->pattern, rt->value, arg);
}
