/*
 * test_route.c - the gateway's route table (src/gateway/route.h): which route a request
 * matches (prefix at segment boundaries, exact, patterns with ":name" and a last "*",
 * host without port and in any case, methods, headers present or equal; the first match in
 * order wins) and the path sent upstream (strip_prefix, rewrite, the query kept).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/snapshot.h"
#include "gateway/route.h"

static weft_http_header_t hdrs[4];

/* A request as the engine would give it: method, path, query, authority, headers. */
static weft_http_request_t mk(const char *method, const char *path, const char *query,
                              const char *host, const char *hname, const char *hvalue)
{
    weft_http_request_t r;
    memset(&r, 0, sizeof(r));
    r.method = (weft_str_t){method, strlen(method)};
    r.path = (weft_str_t){path, strlen(path)};
    r.query = (weft_str_t){query, strlen(query)};
    r.authority = (weft_str_t){host, strlen(host)};
    if (hname) {
        hdrs[0] = (weft_http_header_t){{hname, strlen(hname)}, {hvalue, strlen(hvalue)}};
        r.headers = hdrs;
        r.nheaders = 1;
    }
    return r;
}

static gw_route_t route(const char *name, gw_match_kind_t kind, const char *path)
{
    gw_route_t r;
    memset(&r, 0, sizeof(r));
    r.name = strdup(name);
    r.kind = kind;
    r.path = strdup(path);
    r.path_len = strlen(path);
    return r;
}

static const char *match(const gw_table_t *t, weft_http_request_t r)
{
    const gw_route_t *m = gw_table_match(t, &r);
    return m ? m->name : "-";
}

static void test_match(void **state)
{
    (void)state;
    gw_route_t *rs = calloc(8, sizeof(*rs));
    size_t n = 0;
    rs[n] = route("host", GW_MATCH_PREFIX, "/");
    rs[n++].host = strdup("Api.Example");
    rs[n] = route("post-only", GW_MATCH_EXACT, "/submit");
    rs[n].methods[0] = strdup("POST");
    rs[n++].nmethods = 1;
    rs[n] = route("beta", GW_MATCH_PREFIX, "/v2");
    rs[n].headers[0] = (gw_header_match_t){strdup("X-Beta"), strdup("1")};
    rs[n++].nheaders = 1;
    rs[n] = route("tagged", GW_MATCH_PREFIX, "/v2");
    rs[n].headers[0] = (gw_header_match_t){strdup("X-Tag"), NULL};
    rs[n++].nheaders = 1;
    rs[n++] = route("orders", GW_MATCH_PREFIX, "/api/orders");
    rs[n++] = route("user", GW_MATCH_PATTERN, "/users/:id/items/*");
    rs[n++] = route("exact", GW_MATCH_EXACT, "/health");
    rs[n++] = route("slash", GW_MATCH_PREFIX, "/static/");
    gw_table_t *t = gw_table_new(rs, n);
    assert_non_null(t);

    assert_string_equal(match(t, mk("GET", "/api/orders", "", "x", NULL, NULL)), "orders");
    assert_string_equal(match(t, mk("GET", "/api/orders/7", "", "x", NULL, NULL)), "orders");
    assert_string_equal(match(t, mk("GET", "/api/ordersx", "", "x", NULL, NULL)), "-");
    assert_string_equal(match(t, mk("GET", "/api", "", "x", NULL, NULL)), "-");
    /* host: without its port, any case; first in order wins */
    assert_string_equal(match(t, mk("GET", "/api/orders", "", "api.example:8080", NULL, NULL)),
                        "host");
    assert_string_equal(match(t, mk("GET", "/x", "", "API.EXAMPLE", NULL, NULL)), "host");
    assert_string_equal(match(t, mk("GET", "/x", "", "api.example.org", NULL, NULL)), "-");
    /* methods */
    assert_string_equal(match(t, mk("POST", "/submit", "", "x", NULL, NULL)), "post-only");
    assert_string_equal(match(t, mk("GET", "/submit", "", "x", NULL, NULL)), "-");
    /* headers: equal value, or present */
    assert_string_equal(match(t, mk("GET", "/v2/a", "", "x", "x-beta", "1")), "beta");
    assert_string_equal(match(t, mk("GET", "/v2/a", "", "x", "X-Beta", "2")), "-");
    assert_string_equal(match(t, mk("GET", "/v2/a", "", "x", "X-Tag", "")), "tagged");
    assert_string_equal(match(t, mk("GET", "/v2/a", "", "x", NULL, NULL)), "-");
    /* patterns */
    assert_string_equal(match(t, mk("GET", "/users/42/items/a/b", "", "x", NULL, NULL)), "user");
    assert_string_equal(match(t, mk("GET", "/users/42/items/", "", "x", NULL, NULL)), "user");
    assert_string_equal(match(t, mk("GET", "/users/42/items", "", "x", NULL, NULL)), "user");
    assert_string_equal(match(t, mk("GET", "/users//items/a", "", "x", NULL, NULL)), "-");
    assert_string_equal(match(t, mk("GET", "/users/42/other", "", "x", NULL, NULL)), "-");
    /* exact */
    assert_string_equal(match(t, mk("GET", "/health", "", "x", NULL, NULL)), "exact");
    assert_string_equal(match(t, mk("GET", "/health/", "", "x", NULL, NULL)), "-");
    /* a prefix ending in '/' */
    assert_string_equal(match(t, mk("GET", "/static/a.css", "", "x", NULL, NULL)), "slash");
    assert_string_equal(match(t, mk("GET", "/static", "", "x", NULL, NULL)), "-");
    weft_snap_release(t);
}

static const char *target(gw_route_t *r, const char *path, const char *query)
{
    static char out[256];
    weft_http_request_t q = mk("GET", path, query, "x", NULL, NULL);
    assert_int_equal(gw_upstream_target(r, &q, out, sizeof(out)), 0);
    return out;
}

static void test_upstream_target(void **state)
{
    (void)state;
    gw_route_t r = route("orders", GW_MATCH_PREFIX, "/api/orders");
    assert_string_equal(target(&r, "/api/orders/7", "a=1"), "/api/orders/7?a=1");
    r.strip_prefix = true;
    assert_string_equal(target(&r, "/api/orders/7", "a=1"), "/7?a=1");
    assert_string_equal(target(&r, "/api/orders", ""), "/");
    assert_string_equal(target(&r, "/api/orders/", ""), "/");
    gw_route_t s = route("slash", GW_MATCH_PREFIX, "/static/");
    s.strip_prefix = true;
    assert_string_equal(target(&s, "/static/a.css", ""), "/a.css");
    s.rewrite = strdup("/assets");
    assert_string_equal(target(&s, "/static/a.css", "v=2"), "/assets?v=2");
    /* too long for the buffer */
    char small[4];
    weft_http_request_t q = mk("GET", "/api/orders/long", "", "x", NULL, NULL);
    gw_route_t u = route("u", GW_MATCH_PREFIX, "/");
    assert_int_equal(gw_upstream_target(&u, &q, small, sizeof(small)), -1);
    gw_route_clear(&r);
    gw_route_clear(&s);
    gw_route_clear(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_match),
                                       cmocka_unit_test(test_upstream_target)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
