/*
 * fuzz_router.c - the router against a plain reference model written for this driver.
 *
 * Input: byte 0 picks the route table (even: the fixed table below; odd: routes read from
 * the input), byte 1 an Allow buffer size for a second, truncated call; then lines. With a
 * table from the input, lines up to the first empty one are routes "METHOD pattern"; the
 * other lines are requests "METHOD path" (any bytes; up to the first space is the method).
 *
 * Every add must return what the reference rules give (validity, limits, duplicates, name
 * conflicts). Every request must give what a naive scan of the accepted routes gives: the
 * patterns matching the path, the most specific one (literal < parameter < wildcard at the
 * first segment where they differ) among those taking the method (exact, HEAD -> GET, "*"),
 * its parameters as the same pointers into the path; else 405 with the union of the
 * methods of the matching patterns (sorted, unique, HEAD with GET); else 404. A cut Allow
 * buffer must hold the longest prefix of whole names that fits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/router.h"

#define MAX_ROUTES 32 /* also keeps extension methods within the 32 an Allow list holds */
#define MAX_LINE   2100
#define MAX_SEGS   8192

static const char *const fixed_table[][2] = {
    {"GET", "/"},
    {"GET", "/a/b/d"},
    {"GET", "/a/:x/c"},
    {"*", "/s/*rest"},
    {"POST", "/o/:id/i/:item"},
    {"GET", "/o/new"},
    {"GET", "/o/:id"},
    {"DELETE", "/o/:id"},
    {"PUT", "/o/:id/i/:item"},
    {"GET", "/f/*"},
    {"HEAD", "/h"},
    {"GET", "/h"},
    {"PURGE", "/c/:k"},
    {"PURGE", "/c/*rest"},
    {"LOCK", "/c/:k"},
    {"get", "/lower"},
    {"GET", "/x/:a/:b/z"},
    {"GET", "/x/y/:b/w"},
    {"POST", "/x/*tail"},
    {"GET", "//"},
    {"GET", "/e//e"},
    {"GET", "/t/"},
    {"GET", "/p/:a/*"},
    {"GET", "/m/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/:p"},
    {"GET", "/static/long/path/with/many/segments/to/hash/beyond/sixty-four/bytes/xx"},
    {"GET", "/u/:id/profile"},
    {"PATCH", "/u/:id"},
    {"*", "/any"},
    {"GET", "/any/x"},
    {"OPTIONS", "/any/x"},
    {"GET", "/o/:other"},  /* EEXIST: another name at :id's place */
    {"GET", "/s/*other"},  /* EEXIST */
    {"GET", "/h"},         /* EEXIST: duplicate */
    {"GET", "/bad/*x/y"},  /* EINVAL */
    {"GET", "/:dup/:dup"}, /* EINVAL */
};

typedef struct ref_route_s {
    char method[MAX_LINE];
    char pattern[MAX_LINE];
} ref_route_t;

static ref_route_t routes[MAX_ROUTES];
static int nroutes;
static int values[MAX_ROUTES];

typedef struct seg_s {
    const char *p;
    size_t n;
} seg_t;

/* Splits s[0..len) (just after the leading '/') at every '/'. Returns the count (>= 1). */
static size_t split(const char *s, size_t len, seg_t *out, size_t max)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len && k < max; i++) {
        if (i == len || s[i] == '/') {
            out[k++] = (seg_t){s + start, i - start};
            start = i + 1;
        }
    }
    return k;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static seg_t psegs[MAX_LINE], qsegs[MAX_LINE];

/* What weft_router_add should return, by the rules in weft/router.h. */
static int ref_add(const char *method, const char *pattern)
{
    size_t ml = strlen(method);
    if (ml == 0 || ml >= 32) return WEFT_EINVAL;
    if (strcmp(method, "*") != 0)
        for (size_t i = 0; i < ml; i++)
            if (!is_tchar((unsigned char)method[i])) return WEFT_EINVAL;
    if (pattern[0] != '/') return WEFT_EINVAL;
    size_t pl = strlen(pattern);
    if (pl > WEFT_ROUTER_MAX_PATTERN) return WEFT_ELIMIT;
    size_t np = split(pattern + 1, pl - 1, psegs, MAX_LINE);
    unsigned params = 0;
    for (size_t i = 0; i < np; i++) {
        seg_t s = psegs[i];
        if (s.n && (s.p[0] == ':' || s.p[0] == '*')) {
            if (s.p[0] == ':' && s.n == 1) return WEFT_EINVAL;
            if (s.p[0] == '*' && i + 1 != np) return WEFT_EINVAL;
            if (!name_ok(s.p + 1, s.n - 1)) return WEFT_EINVAL;
            params++;
        } else {
            for (size_t j = 0; j < s.n; j++) {
                unsigned char c = (unsigned char)s.p[j];
                if (c <= ' ' || c == 0x7f || c == '?' || c == '#') return WEFT_EINVAL;
            }
        }
    }
    if (params > WEFT_ROUTER_MAX_PARAMS) return WEFT_ELIMIT;
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < i; j++) {
            seg_t a = psegs[i], b = psegs[j];
            if (a.n > 1 && b.n == a.n && (a.p[0] == ':' || a.p[0] == '*') &&
                (b.p[0] == ':' || b.p[0] == '*') && memcmp(a.p + 1, b.p + 1, a.n - 1) == 0)
                return WEFT_EINVAL;
        }
    if (nroutes >= WEFT_ROUTER_MAX_ROUTES) return WEFT_ELIMIT;
    for (int r = 0; r < nroutes; r++) {
        if (strcmp(routes[r].pattern, pattern) == 0 && strcmp(routes[r].method, method) == 0)
            return WEFT_EEXIST;
        const char *q = routes[r].pattern;
        size_t nq = split(q + 1, strlen(q) - 1, qsegs, MAX_LINE);
        for (size_t i = 0; i < np && i < nq; i++) { /* the first difference decides */
            seg_t a = psegs[i], b = qsegs[i];
            char ka = a.n && (a.p[0] == ':' || a.p[0] == '*') ? a.p[0] : 'l';
            char kb = b.n && (b.p[0] == ':' || b.p[0] == '*') ? b.p[0] : 'l';
            if (ka != kb) break;
            if (a.n == b.n && memcmp(a.p, b.p, a.n) == 0) continue;
            if (ka != 'l') return WEFT_EEXIST; /* same place, another name */
            break;
        }
    }
    return 0;
}

static seg_t path_segs[MAX_SEGS];
static size_t npath;

/* Does route r's pattern match the split path? Fills kinds ('a' literal, 'b' parameter, 'c'
 * wildcard, NUL-terminated) and the parameters. */
static int ref_path_match(int r, const char *end, char *kinds, weft_route_param_t *params,
                          unsigned *nparams)
{
    const char *pat = routes[r].pattern;
    size_t np = split(pat + 1, strlen(pat) - 1, psegs, MAX_LINE);
    *nparams = 0;
    for (size_t i = 0; i < np; i++) {
        seg_t s = psegs[i];
        if (s.n && s.p[0] == '*') {
            if (i >= npath) return 0;
            kinds[i] = 'c';
            kinds[i + 1] = 0;
            params[*nparams].name = s.n > 1 ? (weft_str_t){s.p + 1, s.n - 1} : WEFT_STR("*");
            params[(*nparams)++].value =
                (weft_str_t){path_segs[i].p, (size_t)(end - path_segs[i].p)};
            return 1;
        }
        if (i >= npath) return 0;
        if (s.n && s.p[0] == ':') {
            if (path_segs[i].n == 0) return 0;
            kinds[i] = 'b';
            params[*nparams].name = (weft_str_t){s.p + 1, s.n - 1};
            params[(*nparams)++].value = (weft_str_t){path_segs[i].p, path_segs[i].n};
        } else {
            if (s.n != path_segs[i].n || memcmp(s.p, path_segs[i].p, s.n) != 0) return 0;
            kinds[i] = 'a';
        }
    }
    kinds[np] = 0;
    return np == npath;
}

static int method_is(const char *m, weft_str_t want)
{
    return strlen(m) == want.len && memcmp(m, want.base, want.len) == 0;
}

/* The route of pattern (the one of route r) taking method, or -1. */
static int ref_resolve(int r, weft_str_t method)
{
    int get = -1, any = -1;
    for (int i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].pattern, routes[r].pattern) != 0) continue;
        if (strcmp(routes[i].method, "*") == 0) {
            any = i;
            continue;
        }
        if (method_is(routes[i].method, method)) return i;
        if (strcmp(routes[i].method, "GET") == 0) get = i;
    }
    if (get >= 0 && method.len == 4 && memcmp(method.base, "HEAD", 4) == 0) return get;
    return any;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char kinds_buf[MAX_LINE], best_kinds[MAX_LINE];
static const char *allow_names[MAX_ROUTES + 1];

static void check_request(const weft_router_t *router, weft_str_t method, weft_str_t path,
                          size_t small_cap)
{
    weft_route_match_t m;
    static char allow[8192], small[256];
    memset(allow, 0x55, 64);
    weft_route_result_t got = weft_router_match(router, method, path, &m, allow, sizeof(allow));
    if (m.nparams > WEFT_ROUTER_MAX_PARAMS) abort();

    /* The reference. */
    weft_route_result_t want = WEFT_ROUTE_NOT_FOUND;
    int best = -1, any_match = 0;
    weft_route_param_t params[WEFT_ROUTER_MAX_PARAMS + 1], best_params[WEFT_ROUTER_MAX_PARAMS + 1];
    unsigned np = 0, best_np = 0;
    size_t nnames = 0;
    if (path.len > 0 && path.base[0] == '/') {
        npath = split(path.base + 1, path.len - 1, path_segs, MAX_SEGS);
        if (npath == MAX_SEGS) return; /* too many segments for the model; skip */
        for (int r = 0; r < nroutes; r++) {
            int first = 1; /* look at each pattern once */
            for (int j = 0; j < r; j++)
                if (strcmp(routes[j].pattern, routes[r].pattern) == 0) first = 0;
            if (!first || !ref_path_match(r, path.base + path.len, kinds_buf, params, &np))
                continue;
            any_match = 1;
            for (int i = 0; i < nroutes; i++) /* its methods, for Allow */
                if (strcmp(routes[i].pattern, routes[r].pattern) == 0 &&
                    strcmp(routes[i].method, "*") != 0)
                    allow_names[nnames++] = routes[i].method;
            int rt = ref_resolve(r, method);
            if (rt < 0) continue;
            if (best < 0 || strcmp(kinds_buf, best_kinds) < 0) {
                best = rt;
                strcpy(best_kinds, kinds_buf);
                memcpy(best_params, params, sizeof(params));
                best_np = np;
            }
        }
        want = best >= 0 ? WEFT_ROUTE_FOUND
                         : (any_match ? WEFT_ROUTE_METHOD_NOT_ALLOWED : WEFT_ROUTE_NOT_FOUND);
    }
    if (got != want) abort();
    if (got == WEFT_ROUTE_FOUND) {
        if (m.value != &values[best] || strcmp(m.pattern, routes[best].pattern) != 0) abort();
        if (m.nparams != best_np) abort();
        for (unsigned i = 0; i < best_np; i++) {
            if (m.params[i].name.len != best_params[i].name.len ||
                memcmp(m.params[i].name.base, best_params[i].name.base, best_params[i].name.len) !=
                    0)
                abort();
            if (m.params[i].value.base != best_params[i].value.base ||
                m.params[i].value.len != best_params[i].value.len)
                abort();
        }
        return;
    }
    if (m.value || m.pattern || m.nparams) abort();
    if (got == WEFT_ROUTE_NOT_FOUND) {
        if (allow[0] != 0x55) abort(); /* untouched */
        return;
    }
    /* 405: the expected Allow list. */
    int has_get = 0;
    for (size_t i = 0; i < nnames; i++) has_get |= strcmp(allow_names[i], "GET") == 0;
    if (has_get) allow_names[nnames++] = "HEAD";
    qsort(allow_names, nnames, sizeof(allow_names[0]), cmp_names);
    static char want_allow[8192];
    size_t o = 0;
    want_allow[0] = 0;
    for (size_t i = 0; i < nnames; i++) {
        if (i && strcmp(allow_names[i], allow_names[i - 1]) == 0) continue;
        o += (size_t)snprintf(want_allow + o, sizeof(want_allow) - o, "%s%s", o ? ", " : "",
                              allow_names[i]);
    }
    if (strcmp(allow, want_allow) != 0) abort();
    /* Cut: the longest prefix of whole names that fits in small_cap bytes. */
    if (small_cap == 0) return;
    memset(small, 0x55, sizeof(small));
    if (weft_router_match(router, method, path, &m, small, small_cap) != got) abort();
    size_t cut = 0;
    for (size_t i = 0; i <= strlen(want_allow); i++)
        if ((want_allow[i] == ',' || want_allow[i] == 0) && i + 1 <= small_cap) cut = i;
    if (strlen(small) != cut || memcmp(small, want_allow, cut) != 0) abort();
    if (small_cap < sizeof(small) && (unsigned char)small[small_cap] != 0x55) abort();
}

/* Copies line [p, e) into dst (NUL-terminated, cut to MAX_LINE - 1). */
static void copy_line(char *dst, const char *p, const char *e)
{
    size_t n = (size_t)(e - p);
    if (n > MAX_LINE - 1) n = MAX_LINE - 1;
    memcpy(dst, p, n);
    dst[n] = 0;
}

static void add_route(weft_router_t *router, const char *method, const char *pattern)
{
    int want = ref_add(method, pattern);
    int got =
        weft_router_add(router, method, pattern, nroutes < MAX_ROUTES ? &values[nroutes] : NULL);
    if (got != want) abort();
    if (got == 0) {
        strcpy(routes[nroutes].method, method);
        strcpy(routes[nroutes].pattern, pattern);
        nroutes++;
    }
}

static void count_cb(const char *method, const char *pattern, void *value, void *arg)
{
    int *k = arg;
    if (strcmp(method, routes[*k].method) != 0 || strcmp(pattern, routes[*k].pattern) != 0 ||
        value != &values[*k])
        abort();
    (*k)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int from_input = data[0] & 1;
    size_t small_cap = data[1] % 80;
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    static char method[MAX_LINE], pattern[MAX_LINE];

    weft_router_t *router = weft_router_new();
    if (!router) abort();
    nroutes = 0;
    if (!from_input) {
        for (size_t i = 0; i < sizeof(fixed_table) / sizeof(fixed_table[0]); i++)
            add_route(router, fixed_table[i][0], fixed_table[i][1]);
    } else {
        while (p < end) {
            const char *e = memchr(p, '\n', (size_t)(end - p));
            if (!e) e = end;
            if (e == p) { /* the empty line: requests follow */
                p++;
                break;
            }
            if (nroutes == MAX_ROUTES) break;
            const char *sp = memchr(p, ' ', (size_t)(e - p));
            copy_line(method, p, sp ? sp : e);
            copy_line(pattern, sp ? sp + 1 : e, e);
            add_route(router, method, pattern);
            p = e + 1;
        }
    }
    int k = 0;
    weft_router_foreach(router, count_cb, &k);
    if (k != nroutes) abort();

    for (int n = 0; p < end && n < 64; n++) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        const char *sp = memchr(p, ' ', (size_t)(e - p));
        weft_str_t meth = {p, sp ? (size_t)(sp - p) : 0};
        weft_str_t path = {sp ? sp + 1 : p, (size_t)(e - (sp ? sp + 1 : p))};
        check_request(router, meth, path, small_cap);
        p = e + 1;
    }
    weft_router_free(router);
    return 0;
}
