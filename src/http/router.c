/*
 * router.c - a segment trie for method + path routing (see weft/router.h).
 *
 * Purpose. Every request of the HTTP server is routed here, so a lookup must be cheap: about
 * a hundred instructions for a path like "/hello", no allocation, no locks.
 *
 * Design. Each trie node stands for one path segment. A node has literal children, at most
 * one parameter child (":name") and at most one wildcard child ("*name", always a leaf).
 * Literal children are found by a 32-bit key (length, first and last byte), scanned in a
 * row while there are few, else through a small open-addressed table. A node that ends a
 * pattern has an endpoint: its routes by method. The common methods (GET, HEAD, POST, ...)
 * have a small id, classified once per lookup, and the endpoint keeps a table already
 * resolved for each id (the exact route, else GET for HEAD, else the "*" route), so choosing
 * the route is one load; other method tokens are compared as text.
 *
 * Matching first tries the static table: a hash of the whole path over the patterns without
 * parameters (gated by a bit set of their lengths, so most other paths skip the hash). Such
 * a pattern equal to the path is the most specific match there can be, so if it takes the
 * method the lookup is done. Otherwise the trie is walked one segment at a time, trying the
 * literal child, then the parameter, then the wildcard, backtracking when a branch
 * dead-ends, also when the path matches but the method does not (so "DELETE /orders/new"
 * reaches "/orders/:id" when "/orders/new" only has GET). The first endpoint that takes the
 * method wins: of the patterns matching the path, the one whose sequence of segment kinds is
 * smallest in the order literal < parameter < wildcard. Segment boundaries are fixed by the
 * path, so a lookup visits each trie node at most once. The walk recurses only where an
 * alternative remains to be tried (the last alternative at a node continues in the loop), so
 * depth is bounded by the depth of the trie (<= 513: patterns are at most
 * WEFT_ROUTER_MAX_PATTERN bytes). When no route takes the method, a second, slower walk
 * visits every endpoint the path matches and unions their methods for the Allow header.
 *
 * Invariants. Built by one thread; afterwards nothing is written, so any number of threads
 * may match at once. Parameter (and wildcard) names at one position are the same for every
 * pattern through that node (a conflict is rejected at add time), so a match never depends
 * on the order of additions. A pattern holds at most WEFT_ROUTER_MAX_PARAMS parameters and
 * no name twice, so a match fills at most that many. Every literal/static table is at most
 * half/a quarter full, so probing ends. A failed add changes nothing that matching or
 * foreach can see (nodes it created are removed again; tables may have grown).
 *
 * Memory. The router owns its nodes, endpoints, tables and routes (each route holds copies of
 * its method and pattern); never the values. Out of memory is returned, never fatal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/syntax.h"
#include "weft/router.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

#define MAX_METHOD    32 /* method tokens are shorter than this */
#define LINEAR_LITS   4  /* literal children scanned in a row up to this many */
#define MAX_EXT_ALLOW 32 /* extension methods listed in one Allow header, at most */

/* The methods with an id; anything else is an extension method, matched by its text. */
enum { M_GET, M_HEAD, M_POST, M_PUT, M_DELETE, M_PATCH, M_OPTIONS, M_CONNECT, M_TRACE, M_KNOWN };
#define M_EXT (M_KNOWN)     /* a method token without an id */
#define M_ANY (M_KNOWN + 1) /* "*" at add time */

static const char *const method_names[M_KNOWN] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
};

typedef struct route_s {
    struct route_s *next_added; /* addition order, for foreach */
    void *value;
    const char *method; /* points into text */
    const char *pattern;
    size_t method_len;
    char text[]; /* method NUL pattern NUL */
} route_t;

typedef struct endpoint_s {
    route_t *resolved[M_KNOWN]; /* what a request with that id gets: exact, GET for HEAD, any */
    route_t *exact[M_KNOWN];
    route_t *any;  /* registered with "*" */
    route_t **ext; /* extension methods, exact text */
    size_t next;
} endpoint_t;

struct node_s;
typedef struct lit_s {
    uint32_t key; /* lit_key(): length, first and last byte */
    uint32_t len;
    struct node_s *node;
} lit_t;

typedef struct node_s {
    lit_t *lits; /* in addition order */
    uint32_t nlits, caplits;
    uint32_t *slots;      /* open addressing over lits: index + 1, 0 empty; at most half full */
    uint32_t mask;        /* slots has mask + 1 entries, a power of two (or slots is NULL) */
    uint32_t shift;       /* 32 - log2(mask + 1), for lit_slot() */
    struct node_s *param; /* ":name" child */
    struct node_s *wild;  /* "*name" child, a leaf */
    endpoint_t *ep;       /* routes ending here, or NULL */
    uint32_t seg_len;
    char seg[]; /* literal text, or the parameter/wildcard name; NUL-terminated */
} node_t;

/* A pattern without parameters, found by hashing the whole path. */
typedef struct static_s {
    uint64_t hash;      /* path_hash of the pattern */
    const node_t *node; /* its node (holding the endpoint); NULL: empty slot */
    const char *path;   /* the pattern (owned by a route) */
    size_t len;
} static_t;

struct weft_router_s {
    node_t *root;   /* stands for the empty prefix before the first '/' */
    static_t *stab; /* open addressing, at most a quarter full; NULL while there is none */
    size_t smask, nstatic;
    uint64_t static_lens; /* bit min(length, 63) set for each static pattern: a cheap filter */
    route_t *first, *last;
    size_t nroutes;
};

/* ---- small byte helpers, inlined into the lookup ---- */

static ALWAYS_INLINE uint64_t load64(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

static ALWAYS_INLINE uint32_t load32(const char *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* n bytes at a and b equal? Fixed-size loads, overlapping at the tail; no call. */
static ALWAYS_INLINE int bytes_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (load64(a + i) != load64(b + i)) return 0;
        return load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4) return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    if (n == 0) return 1;
    return a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1];
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_WORDS 1
#else
#define LITTLE_ENDIAN_WORDS 0
#endif

/* Bit 7 of each byte of x that is zero is set (exact for the lowest such byte). */
static ALWAYS_INLINE uint64_t zero_bytes(uint64_t x)
{
    return (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
}

/* The first '/' in [p, end), or end; lo <= p is where the bytes may be read from (the start
 * of the path). Eight bytes at a time; a short tail is read as the eight bytes before end
 * when the path is that long. */
static ALWAYS_INLINE const char *seg_end(const char *p, const char *end, const char *lo)
{
    const uint64_t slashes = 0x2f2f2f2f2f2f2f2fULL;
    for (; end - p >= 8; p += 8) {
        uint64_t z = zero_bytes(load64(p) ^ slashes);
        if (z) {
            if (LITTLE_ENDIAN_WORDS) return p + (__builtin_ctzll(z) >> 3);
            break;
        }
    }
    size_t rem = (size_t)(end - p);
    if (LITTLE_ENDIAN_WORDS && rem && end - lo >= 8) {
        /* The bytes before p shift out at the bottom; the zeros shifted in at the top are
         * at or past end, so a hit there means none. */
        uint64_t z = zero_bytes((load64(end - 8) ^ slashes) >> (8 * (8 - rem)));
        size_t i = z ? (size_t)__builtin_ctzll(z) >> 3 : rem;
        return p + (i < rem ? i : rem);
    }
    while (p < end && *p != '/') p++;
    return p;
}

/* The method id of a request method; M_EXT for others. Methods are case-sensitive. */
static ALWAYS_INLINE int method_id(const char *s, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(s, "GET", 3) == 0) return M_GET;
        if (memcmp(s, "PUT", 3) == 0) return M_PUT;
        break;
    case 4:
        if (memcmp(s, "HEAD", 4) == 0) return M_HEAD;
        if (memcmp(s, "POST", 4) == 0) return M_POST;
        break;
    case 5:
        if (memcmp(s, "PATCH", 5) == 0) return M_PATCH;
        if (memcmp(s, "TRACE", 5) == 0) return M_TRACE;
        break;
    case 6:
        if (memcmp(s, "DELETE", 6) == 0) return M_DELETE;
        break;
    case 7:
        if (memcmp(s, "OPTIONS", 7) == 0) return M_OPTIONS;
        if (memcmp(s, "CONNECT", 7) == 0) return M_CONNECT;
        break;
    }
    return M_EXT;
}

/* Cheap to compute and already tells most siblings apart: length, first and last byte. */
static ALWAYS_INLINE uint32_t lit_key(const char *p, size_t len)
{
    if (!len) return 0;
    return (uint32_t)len << 16 ^ (uint32_t)(unsigned char)p[0] << 8 ^ (unsigned char)p[len - 1];
}

/* The home slot of a key in a node's slots (multiplicative hashing: the top bits). */
static ALWAYS_INLINE uint32_t lit_slot(const node_t *n, uint32_t key)
{
    return (key * 0x9E3779B1u) >> n->shift;
}

/* A hash of a whole path for the static table. */
static ALWAYS_INLINE uint64_t path_hash(const char *p, size_t n)
{
    const uint64_t k = 0xff51afd7ed558ccdULL;
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    for (; n >= 8; p += 8, n -= 8) h = (h ^ load64(p)) * k;
    if (n >= 4)
        h = (h ^ (load32(p) | (uint64_t)load32(p + n - 4) << 32)) * k;
    else if (n)
        h = (h ^ ((unsigned char)p[0] | (unsigned char)p[n / 2] << 8 |
                  (uint32_t)(unsigned char)p[n - 1] << 16)) *
            k;
    return h ^ (h >> 29);
}

/* The literal child of n equal to p[0..len), or NULL. A few children are scanned; more are
 * looked up in the slots. */
static ALWAYS_INLINE const node_t *find_lit(const node_t *n, const char *p, size_t len)
{
    uint32_t cnt = n->nlits;
    if (!cnt) return NULL;
    uint32_t key = lit_key(p, len);
    const lit_t *l = n->lits;
    if (cnt <= LINEAR_LITS) {
        for (uint32_t i = 0; i < cnt; i++)
            if (l[i].key == key && l[i].len == len && bytes_eq(l[i].node->seg, p, len))
                return l[i].node;
        return NULL;
    }
    for (uint32_t i = lit_slot(n, key);; i = (i + 1) & n->mask) {
        uint32_t s = n->slots[i];
        if (!s) return NULL;
        const lit_t *x = &l[s - 1];
        if (x->key == key && x->len == len && bytes_eq(x->node->seg, p, len)) return x->node;
    }
}

/* ---- building ---- */

static node_t *node_new(const char *seg, size_t n)
{
    node_t *nd = calloc(1, sizeof(*nd) + n + 1);
    if (!nd) return NULL;
    memcpy(nd->seg, seg, n);
    nd->seg[n] = 0;
    nd->seg_len = (uint32_t)n;
    return nd;
}

static void endpoint_free(endpoint_t *ep)
{
    if (!ep) return;
    free(ep->ext);
    free(ep);
}

static void node_free(node_t *n)
{
    if (!n) return;
    for (uint32_t i = 0; i < n->nlits; i++) node_free(n->lits[i].node);
    free(n->lits);
    free(n->slots);
    node_free(n->param);
    node_free(n->wild);
    endpoint_free(n->ep);
    free(n);
}

weft_router_t *weft_router_new(void)
{
    weft_router_t *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    if (!(r->root = node_new("", 0))) {
        free(r);
        return NULL;
    }
    return r;
}

void weft_router_free(weft_router_t *r)
{
    if (!r) return;
    node_free(r->root);
    free(r->stab);
    for (route_t *rt = r->first, *next; rt; rt = next) {
        next = rt->next_added;
        free(rt);
    }
    free(r);
}

/* The id of a method given to add: M_ANY for "*", a known id, M_EXT, or -1 if invalid. */
static int add_method_id(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= MAX_METHOD) return -1;
    if (n == 1 && m[0] == '*') return M_ANY;
    if (!weft__http_token(m, n)) return -1;
    return method_id(m, n);
}

static int valid_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!weft__http_is_alpha(c) && !weft__http_is_digit(c) && c != '_' && c != '-') return 0;
    }
    return 1;
}

/* Checks the whole pattern before anything changes: syntax (WEFT_EINVAL), then size and
 * parameter count (WEFT_ELIMIT), then that no parameter name repeats (WEFT_EINVAL). */
static int check_pattern(const char *p)
{
    if (p[0] != '/') return WEFT_EINVAL;
    size_t len = strlen(p);
    if (len > WEFT_ROUTER_MAX_PATTERN) return WEFT_ELIMIT;
    weft_str_t names[WEFT_ROUTER_MAX_PARAMS];
    unsigned params = 0;
    const char *s = p + 1, *end = p + len;
    for (;;) {
        const char *e = seg_end(s, end, p);
        size_t n = (size_t)(e - s);
        if (n && (s[0] == ':' || s[0] == '*')) {
            if (s[0] == ':' && n == 1) return WEFT_EINVAL;   /* ":" names nothing */
            if (s[0] == '*' && e != end) return WEFT_EINVAL; /* wildcard must be last */
            if (!valid_name(s + 1, n - 1)) return WEFT_EINVAL;
            if (params < WEFT_ROUTER_MAX_PARAMS) names[params] = (weft_str_t){s + 1, n - 1};
            params++;
        } else if (!weft__http_target_clean(s, n) || memchr(s, '?', n) || memchr(s, '#', n)) {
            return WEFT_EINVAL; /* a literal segment is target bytes, without a query */
        }
        if (e == end) break;
        s = e + 1;
    }
    if (params > WEFT_ROUTER_MAX_PARAMS) return WEFT_ELIMIT;
    for (unsigned i = 0; i < params; i++)
        for (unsigned j = 0; j < i; j++)
            if (names[i].len && names[i].len == names[j].len &&
                memcmp(names[i].base, names[j].base, names[i].len) == 0)
                return WEFT_EINVAL;
    return 0;
}

/* The existing child of n for pattern segment s[0..len), or NULL; WEFT_EEXIST in *err when
 * a parameter or wildcard there has another name. */
static node_t *existing_child(const node_t *n, const char *s, size_t len, int *err)
{
    *err = 0;
    if (len && (s[0] == ':' || s[0] == '*')) {
        node_t *have = s[0] == ':' ? n->param : n->wild;
        if (have && (have->seg_len != len - 1 || memcmp(have->seg, s + 1, len - 1) != 0))
            *err = WEFT_EEXIST;
        return have;
    }
    return (node_t *)find_lit(n, s, len);
}

/* Enters lits[idx] into n's slots (which have room). */
static void slot_put(node_t *n, uint32_t idx)
{
    const lit_t *l = &n->lits[idx];
    uint32_t i = lit_slot(n, l->key);
    while (n->slots[i]) i = (i + 1) & n->mask;
    n->slots[i] = idx + 1;
}

/* Attaches a new child for pattern segment s[0..len) to n; NULL when out of memory (n keeps
 * the same children, perhaps with more room). */
static node_t *attach_child(node_t *n, const char *s, size_t len)
{
    if (len && (s[0] == ':' || s[0] == '*')) {
        node_t *c = node_new(s + 1, len - 1);
        if (c) *(s[0] == ':' ? &n->param : &n->wild) = c;
        return c;
    }
    if (n->nlits == n->caplits) {
        uint32_t cap = n->caplits ? n->caplits * 2 : 2;
        lit_t *lits = realloc(n->lits, sizeof(*lits) * cap);
        if (!lits) return NULL;
        n->lits = lits;
        n->caplits = cap;
    }
    if (!n->slots || (n->nlits + 1) * 2 > n->mask + 1) {
        uint32_t size = n->slots ? (n->mask + 1) * 2 : 4;
        uint32_t *slots = calloc(size, sizeof(*slots));
        if (!slots) return NULL;
        free(n->slots);
        n->slots = slots;
        n->mask = size - 1;
        n->shift = 32 - (uint32_t)__builtin_ctz(size);
        for (uint32_t i = 0; i < n->nlits; i++) slot_put(n, i);
    }
    node_t *c = node_new(s, len);
    if (!c) return NULL;
    n->lits[n->nlits] = (lit_t){lit_key(s, len), (uint32_t)len, c};
    slot_put(n, n->nlits++);
    return c;
}

/* Undoes the last attach_child(n, ...), which returned c: frees c and everything below. */
static void detach_child(node_t *n, node_t *c)
{
    if (n->param == c)
        n->param = NULL;
    else if (n->wild == c)
        n->wild = NULL;
    else { /* c is the last literal: drop it and rebuild the slots in place */
        n->nlits--;
        memset(n->slots, 0, sizeof(*n->slots) * (n->mask + 1));
        for (uint32_t i = 0; i < n->nlits; i++) slot_put(n, i);
    }
    node_free(c);
}

/* Does the pattern have a ":name" or "*name" segment? */
static int has_param_segment(const char *p)
{
    for (; *p; p++)
        if (p[0] == '/' && (p[1] == ':' || p[1] == '*')) return 1;
    return 0;
}

/* Enters e into the static table tab (mask + 1 slots, with room). */
static void static_put(static_t *tab, size_t mask, const static_t *e)
{
    size_t i = e->hash & mask;
    while (tab[i].node) i = (i + 1) & mask;
    tab[i] = *e;
}

/* Fills ep->resolved from exact and any: HEAD falls back to GET, everything to "*". */
static void endpoint_resolve(endpoint_t *ep)
{
    for (int i = 0; i < M_KNOWN; i++) {
        route_t *rt = ep->exact[i];
        if (!rt && i == M_HEAD) rt = ep->exact[M_GET];
        ep->resolved[i] = rt ? rt : ep->any;
    }
}

/* Is method (id mid, text m) already registered at ep? */
static int endpoint_has(const endpoint_t *ep, int mid, const char *m)
{
    if (mid == M_ANY) return ep->any != NULL;
    if (mid < M_KNOWN) return ep->exact[mid] != NULL;
    for (size_t i = 0; i < ep->next; i++)
        if (strcmp(ep->ext[i]->method, m) == 0) return 1;
    return 0;
}

int weft_router_add(weft_router_t *r, const char *method, const char *pattern, void *value)
{
    if (!r || !method || !pattern) return WEFT_EINVAL;
    int mid = add_method_id(method);
    if (mid < 0) return WEFT_EINVAL;
    int err = check_pattern(pattern);
    if (err) return err;
    if (r->nroutes >= WEFT_ROUTER_MAX_ROUTES) return WEFT_ELIMIT;

    /* Follow the existing nodes as far as they go, checking for conflicts. On leaving, n is
     * the pattern's node (reached) or the parent of the first missing one, s its segment. */
    size_t plen = strlen(pattern);
    const char *s = pattern + 1, *end = pattern + plen;
    node_t *n = r->root;
    int reached = 0;
    for (;;) {
        const char *e = seg_end(s, end, pattern);
        node_t *c = existing_child(n, s, (size_t)(e - s), &err);
        if (err) return err;
        if (!c) break;
        n = c;
        if (e == end) {
            if (n->ep && endpoint_has(n->ep, mid, method)) return WEFT_EEXIST;
            reached = 1;
            break;
        }
        s = e + 1;
    }

    /* A parameterless pattern seen for the first time goes into the static table: make room
     * first (a bigger table holds the same entries, so failing later changes nothing). */
    int new_static = !has_param_segment(pattern) && !(reached && n->ep);
    if (new_static && (r->nstatic + 1) * 4 > (r->stab ? r->smask + 1 : 0)) {
        size_t size = r->stab ? (r->smask + 1) * 2 : 32;
        static_t *tab = calloc(size, sizeof(*tab));
        if (!tab) return WEFT_ENOMEM;
        for (size_t i = 0; r->stab && i <= r->smask; i++)
            if (r->stab[i].node) static_put(tab, size - 1, &r->stab[i]);
        free(r->stab);
        r->stab = tab;
        r->smask = size - 1;
    }

    size_t mlen = strlen(method);
    route_t *rt = malloc(sizeof(*rt) + mlen + 1 + plen + 1);
    if (!rt) return WEFT_ENOMEM;
    memcpy(rt->text, method, mlen + 1);
    memcpy(rt->text + mlen + 1, pattern, plen + 1);
    rt->method = rt->text;
    rt->method_len = mlen;
    rt->pattern = rt->text + mlen + 1;
    rt->value = value;
    rt->next_added = NULL;

    /* Create the missing nodes; on failure, the first one created is detached again. */
    node_t *first_parent = NULL, *first_new = NULL;
    endpoint_t *ep = NULL;
    while (!reached) {
        const char *e = seg_end(s, end, pattern);
        node_t *c = attach_child(n, s, (size_t)(e - s));
        if (!c) goto fail;
        if (!first_new) {
            first_parent = n;
            first_new = c;
        }
        n = c;
        if (e == end) break;
        s = e + 1;
    }
    ep = n->ep;
    if (!ep && !(ep = calloc(1, sizeof(*ep)))) goto fail;
    if (mid == M_EXT) {
        route_t **ext = realloc(ep->ext, sizeof(*ext) * (ep->next + 1));
        if (!ext) goto fail;
        ep->ext = ext;
        ep->ext[ep->next++] = rt;
    } else if (mid == M_ANY) {
        ep->any = rt;
    } else {
        ep->exact[mid] = rt;
    }
    endpoint_resolve(ep);
    n->ep = ep;
    if (new_static) {
        static_t e = {path_hash(pattern, plen), n, rt->pattern, plen};
        static_put(r->stab, r->smask, &e);
        r->nstatic++;
        r->static_lens |= 1ULL << (plen < 63 ? plen : 63);
    }
    if (r->last)
        r->last->next_added = rt;
    else
        r->first = rt;
    r->last = rt;
    r->nroutes++;
    return 0;
fail:
    if (ep && ep != n->ep) endpoint_free(ep);
    if (first_new) detach_child(first_parent, first_new);
    free(rt);
    return WEFT_ENOMEM;
}

/* ---- matching ---- */

typedef struct match_state_s {
    const char *start, *end; /* the path */
    weft_str_t method;
    int mid;
    int seen; /* an endpoint matched the path but not the method */
    route_t *found;
    weft_route_match_t *m;
} match_state_t;

/* The route of ep for the request's method, or NULL. */
static ALWAYS_INLINE route_t *resolve(const endpoint_t *ep, int mid, weft_str_t method)
{
    if (mid < M_KNOWN) return ep->resolved[mid];
    for (size_t i = 0; i < ep->next; i++) {
        const route_t *rt = ep->ext[i];
        if (rt->method_len == method.len && memcmp(rt->method, method.base, method.len) == 0)
            return ep->ext[i];
    }
    return ep->any;
}

/* The path ended at node c: take its route for the method, if any. */
static ALWAYS_INLINE int finish(match_state_t *st, const node_t *c)
{
    if (!c->ep) return 0;
    route_t *rt = resolve(c->ep, st->mid, st->method);
    if (!rt) {
        st->seen = 1;
        return 0;
    }
    st->found = rt;
    return 1;
}

/* Matches the path from p (just after a '/') below node n. Returns 1 when st->found is set,
 * with the parameters on the way in st->m; else 0, with st->m->nparams as on entry.
 * Recursion only where a later alternative must be tried if an earlier one fails; the last
 * alternative at a node is continued in the loop. */
static int walk(match_state_t *st, const node_t *n, const char *p)
{
    weft_route_match_t *m = st->m;
    const unsigned base = m->nparams;
    const char *end = st->end;
    for (;;) {
        const char *e = seg_end(p, end, st->start);
        size_t len = (size_t)(e - p);
        const node_t *c = find_lit(n, p, len);
        const node_t *pc = len ? n->param : NULL; /* a parameter is never empty */
        const node_t *w = n->wild && n->wild->ep ? n->wild : NULL;
        if (c) {
            if (!pc && !w) { /* the only way on */
                if (e != end) {
                    n = c;
                    p = e + 1;
                    continue;
                }
                if (finish(st, c)) return 1;
                break;
            }
            if (e == end ? finish(st, c) : walk(st, c, e + 1)) return 1;
        }
        if (pc && m->nparams < WEFT_ROUTER_MAX_PARAMS) {
            unsigned k = m->nparams++;
            m->params[k].name = (weft_str_t){pc->seg, pc->seg_len};
            m->params[k].value = (weft_str_t){p, len};
            if (!w) { /* the last way on */
                if (e != end) {
                    n = pc;
                    p = e + 1;
                    continue;
                }
                if (finish(st, pc)) return 1;
                break;
            }
            if (e == end ? finish(st, pc) : walk(st, pc, e + 1)) return 1;
            m->nparams = k;
        }
        if (w && m->nparams < WEFT_ROUTER_MAX_PARAMS) {
            route_t *rt = resolve(w->ep, st->mid, st->method);
            if (rt) {
                unsigned k = m->nparams++;
                m->params[k].name = w->seg_len ? (weft_str_t){w->seg, w->seg_len} : WEFT_STR("*");
                m->params[k].value = (weft_str_t){p, (size_t)(end - p)};
                st->found = rt;
                return 1;
            }
            st->seen = 1;
        }
        break;
    }
    m->nparams = base;
    return 0;
}

/* The methods allowed for a path: a bit per method id, and extension method names. */
typedef struct allow_set_s {
    unsigned mask;
    const char *ext[MAX_EXT_ALLOW];
    size_t next;
} allow_set_t;

static void allow_add(allow_set_t *as, const endpoint_t *ep)
{
    for (int i = 0; i < M_KNOWN; i++)
        if (ep->exact[i]) as->mask |= 1u << i;
    for (size_t i = 0; i < ep->next; i++) {
        const char *m = ep->ext[i]->method;
        size_t j = 0;
        while (j < as->next && strcmp(as->ext[j], m) != 0) j++;
        if (j == as->next && as->next < MAX_EXT_ALLOW) as->ext[as->next++] = m;
    }
}

/* Visits every endpoint that matches the path from p below n (no method check). */
static void collect(const node_t *n, const char *p, const match_state_t *st, allow_set_t *as)
{
    const char *end = st->end, *e = seg_end(p, end, st->start);
    size_t len = (size_t)(e - p);
    const node_t *kids[2] = {find_lit(n, p, len), len ? n->param : NULL};
    for (int i = 0; i < 2; i++) {
        if (!kids[i]) continue;
        if (e != end)
            collect(kids[i], e + 1, st, as);
        else if (kids[i]->ep)
            allow_add(as, kids[i]->ep);
    }
    if (n->wild && n->wild->ep) allow_add(as, n->wild->ep);
}

/* Writes the Allow value for as into allow[cap]: sorted, unique, HEAD with GET; whole names
 * only, cut when it does not fit; always NUL-terminated (cap > 0). */
static void write_allow(allow_set_t *as, char *allow, size_t cap)
{
    const char *names[M_KNOWN + MAX_EXT_ALLOW];
    size_t k = 0;
    if (as->mask & (1u << M_GET)) as->mask |= 1u << M_HEAD;
    for (int i = 0; i < M_KNOWN; i++)
        if (as->mask & (1u << i)) names[k++] = method_names[i];
    for (size_t i = 0; i < as->next; i++) names[k++] = as->ext[i];
    for (size_t i = 1; i < k; i++) { /* insertion sort: a handful of names */
        const char *x = names[i];
        size_t j = i;
        for (; j > 0 && strcmp(names[j - 1], x) > 0; j--) names[j] = names[j - 1];
        names[j] = x;
    }
    size_t o = 0;
    allow[0] = 0;
    for (size_t i = 0; i < k; i++) {
        size_t nl = strlen(names[i]), sep = o ? 2 : 0;
        if (o + sep + nl + 1 > cap) break;
        memcpy(allow + o, ", ", sep);
        memcpy(allow + o + sep, names[i], nl);
        o += sep + nl;
        allow[o] = 0;
    }
}

/* The trie walk, and the Allow header when it finds no route for the method. Out of line so
 * that the static fast path in weft_router_match stays small. */
static __attribute__((noinline)) weft_route_result_t match_walk(const weft_router_t *r,
                                                                weft_str_t method, weft_str_t path,
                                                                weft_route_match_t *m, char *allow,
                                                                size_t cap)
{
    match_state_t st = {
        .start = path.base,
        .end = path.base + path.len,
        .method = method,
        .mid = method_id(method.base, method.len),
        .m = m,
    };
    if (walk(&st, r->root, path.base + 1)) {
        m->value = st.found->value;
        m->pattern = st.found->pattern;
        return WEFT_ROUTE_FOUND;
    }
    m->nparams = 0;
    m->value = NULL;
    m->pattern = NULL;
    if (!st.seen) return WEFT_ROUTE_NOT_FOUND;
    if (allow && cap) {
        allow_set_t as = {0};
        collect(r->root, path.base + 1, &st, &as);
        write_allow(&as, allow, cap);
    }
    return WEFT_ROUTE_METHOD_NOT_ALLOWED;
}

weft_route_result_t weft_router_match(const weft_router_t *r, weft_str_t method, weft_str_t path,
                                      weft_route_match_t *m, char *allow, size_t cap)
{
    m->nparams = 0;
    if (path.len == 0 || path.base[0] != '/') {
        m->value = NULL;
        m->pattern = NULL;
        return WEFT_ROUTE_NOT_FOUND;
    }
    /* A parameterless pattern equal to the whole path wins outright. */
    if (r->static_lens >> (path.len < 63 ? path.len : 63) & 1) {
        uint64_t h = path_hash(path.base, path.len);
        const static_t *e;
        for (size_t i = h & r->smask; (e = &r->stab[i])->node; i = (i + 1) & r->smask) {
            if (e->hash != h || e->len != path.len || !bytes_eq(e->path, path.base, path.len))
                continue;
            route_t *rt = resolve(e->node->ep, method_id(method.base, method.len), method);
            if (!rt) break; /* a parameter route may still take the method: walk */
            m->value = rt->value;
            m->pattern = rt->pattern;
            return WEFT_ROUTE_FOUND;
        }
    }
    return match_walk(r, method, path, m, allow, cap); /* the same arguments: a jump */
}

void weft_router_foreach(const weft_router_t *r,
                         void (*fn)(const char *, const char *, void *, void *), void *arg)
{
    for (const route_t *rt = r->first; rt; rt = rt->next_added)
        fn(rt->method, rt->pattern, rt->value, arg);
}
