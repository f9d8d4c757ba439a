/*
 * test_router.c - routing: literals, parameters, wildcards, precedence and backtracking,
 * 405 with Allow, HEAD and "*" methods, errors and limits, foreach, long paths, many routes,
 * and lookups from several threads at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/router.h"

static weft_str_t S(const char *s)
{
    return (weft_str_t){s, strlen(s)};
}

static int V[64];

/* The common table most tests use. */
static weft_router_t *build(void)
{
    static const struct {
        const char *method, *pattern;
    } table[] = {
        {"GET", "/"},                          /* 0 */
        {"GET", "/hello"},                     /* 1 */
        {"GET", "/hello/:name"},               /* 2 */
        {"POST", "/orders"},                   /* 3 */
        {"GET", "/orders/:id"},                /* 4 */
        {"DELETE", "/orders/:id"},             /* 5 */
        {"GET", "/orders/new"},                /* 6 */
        {"GET", "/a/b/d"},                     /* 7 */
        {"GET", "/a/:x/c"},                    /* 8 */
        {"GET", "/static/*path"},              /* 9 */
        {"*", "/any"},                         /* 10 */
        {"GET", "/files/*"},                   /* 11 */
        {"GET", "/orders/:id/items/:item"},    /* 12 */
        {"PUT", "/any"},                       /* 13 */
        {"GET", "/hello/"},                    /* 14 */
        {"GET", "/e//e"},                      /* 15 */
        {"GET", "/w/:x/y"},                    /* 16 */
        {"GET", "/w/*rest"},                   /* 17 */
        {"HEAD", "/h"},                        /* 18 */
        {"GET", "/h"},                         /* 19 */
        {"PURGE", "/cache/:key"},              /* 20 */
        {"get", "/lower"},                     /* 21 */
        {"POST", "/x/:a/:b/z"},                /* 22 */
        {"GET", "/x/y/:b/w"},                  /* 23 */
        {"*", "/x/y/*t"},                      /* 24 */
        {"GET", "/u/:id/profile"},             /* 25 */
        {"PATCH", "/u/:id"},                   /* 26 */
        {"OPTIONS", "/u/:id"},                 /* 27 */
        {"GET", "/a%2Fb"},                     /* 28 */
        {"GET", "/deep/1/2/3/4/5/6/7/8/9/10"}, /* 29 */
    };
    weft_router_t *r = weft_router_new();
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        assert_int_equal(weft_router_add(r, table[i].method, table[i].pattern, &V[i]), 0);
    return r;
}

static void expect(weft_router_t *r, const char *method, const char *path, void *want)
{
    weft_route_match_t m;
    weft_route_result_t res = weft_router_match(r, S(method), S(path), &m, NULL, 0);
    if (res != WEFT_ROUTE_FOUND || m.value != want)
        fail_msg("%s %s: result %d, value V[%d], want V[%d]", method, path, (int)res,
                 m.value ? (int)((int *)m.value - V) : -1, (int)((int *)want - V));
}

static void expect_res(weft_router_t *r, const char *method, const char *path,
                       weft_route_result_t want)
{
    weft_route_match_t m;
    char allow[128];
    weft_route_result_t res = weft_router_match(r, S(method), S(path), &m, allow, sizeof(allow));
    if (res != want) fail_msg("%s %s: result %d, want %d", method, path, (int)res, (int)want);
    if (res != WEFT_ROUTE_FOUND) {
        assert_null(m.value);
        assert_null(m.pattern);
        assert_int_equal(m.nparams, 0);
    }
}

/* The Allow value for method+path (which must give 405). */
static const char *allow_of(weft_router_t *r, const char *method, const char *path)
{
    static char allow[256];
    weft_route_match_t m;
    memset(allow, 'x', sizeof(allow));
    assert_int_equal(weft_router_match(r, S(method), S(path), &m, allow, sizeof(allow)),
                     WEFT_ROUTE_METHOD_NOT_ALLOWED);
    return allow;
}

static void expect_param(const weft_route_match_t *m, unsigned i, const char *name,
                         const char *value)
{
    assert_true(i < m->nparams);
    assert_int_equal(m->params[i].name.len, strlen(name));
    assert_memory_equal(m->params[i].name.base, name, strlen(name));
    assert_int_equal(m->params[i].value.len, strlen(value));
    if (*value) assert_memory_equal(m->params[i].value.base, value, strlen(value));
}

static void test_literals_and_params(void **state)
{
    weft_router_t *r = build();
    expect(r, "GET", "/", &V[0]);
    expect(r, "GET", "/hello", &V[1]);
    expect(r, "GET", "/deep/1/2/3/4/5/6/7/8/9/10", &V[29]);
    expect_res(r, "GET", "/deep/1/2/3/4/5/6/7/8/9/1", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "/deep/1/2/3/4/5/6/7/8/9/10/", WEFT_ROUTE_NOT_FOUND);

    weft_route_match_t m;
    const char *path = "/hello/bob";
    assert_int_equal(weft_router_match(r, S("GET"), S(path), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[2]);
    assert_string_equal(m.pattern, "/hello/:name");
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "name", "bob");
    assert_ptr_equal(m.params[0].value.base, path + 7); /* points into the path */

    assert_int_equal(weft_router_match(r, S("GET"), S("/orders/7/items/9"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[12]);
    assert_int_equal(m.nparams, 2);
    expect_param(&m, 0, "id", "7");
    expect_param(&m, 1, "item", "9");

    /* Values are taken as sent: no decoding, any bytes but '/'. */
    assert_int_equal(weft_router_match(r, S("GET"), S("/hello/a%2Fb:c*d"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    expect_param(&m, 0, "name", "a%2Fb:c*d");
    expect(r, "GET", "/a%2Fb", &V[28]);
    expect_res(r, "GET", "/a/b", WEFT_ROUTE_NOT_FOUND);

    /* Pattern syntax in a path is just bytes. */
    assert_int_equal(weft_router_match(r, S("GET"), S("/hello/:name"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[2]);
    expect_param(&m, 0, "name", ":name");
    assert_int_equal(weft_router_match(r, S("GET"), S("/static/*path"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[9]);
    expect_param(&m, 0, "path", "*path");

    /* Paths that are not NUL-terminated: only len bytes count. */
    assert_int_equal(weft_router_match(r, S("GET"), (weft_str_t){"/hello/bobXYZ", 10}, &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    expect_param(&m, 0, "name", "bob");
    assert_int_equal(
        weft_router_match(r, (weft_str_t){"GETX", 3}, (weft_str_t){"/hellooo", 6}, &m, NULL, 0),
        WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[1]);

    /* Empty segments and trailing slashes are distinct; a parameter is never empty. */
    expect(r, "GET", "/hello/", &V[14]);
    expect_res(r, "GET", "/hello//", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "//hello", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "/orders/", WEFT_ROUTE_NOT_FOUND);
    expect(r, "GET", "/e//e", &V[15]);
    expect_res(r, "GET", "/e/e", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "/e/x/e", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "hello", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "/hell", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "/hellp", WEFT_ROUTE_NOT_FOUND);
    expect_res(r, "GET", "/Hello", WEFT_ROUTE_NOT_FOUND);
    assert_int_equal(weft_router_match(r, S("GET"), (weft_str_t){NULL, 0}, &m, NULL, 0),
                     WEFT_ROUTE_NOT_FOUND);
    weft_router_free(r);
}

static void test_precedence_and_backtracking(void **state)
{
    weft_router_t *r = build();
    weft_route_match_t m;
    expect(r, "GET", "/orders/new", &V[6]); /* literal beats :id */
    expect(r, "GET", "/orders/42", &V[4]);
    expect(r, "GET", "/a/b/d", &V[7]);
    expect(r, "GET", "/a/b/c", &V[8]); /* literal b dead-ends, :x matches */
    assert_int_equal(weft_router_match(r, S("GET"), S("/a/b/c"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "x", "b");
    expect_res(r, "GET", "/a/b/e", WEFT_ROUTE_NOT_FOUND);

    /* Parameter before wildcard, and the wildcard when the parameter branch dead-ends. */
    expect(r, "GET", "/w/1/y", &V[16]);
    assert_int_equal(weft_router_match(r, S("GET"), S("/w/1/z"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[17]);
    assert_int_equal(m.nparams, 1); /* the dead branch's :x is gone */
    expect_param(&m, 0, "rest", "1/z");
    expect(r, "GET", "/w/1/y/", &V[17]);

    /* /x/y/:b/w (GET), /x/:a/:b/z (POST), /x/y/ *t (any method). */
    expect(r, "GET", "/x/y/2/w", &V[23]);
    assert_int_equal(weft_router_match(r, S("POST"), S("/x/q/2/z"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[22]);
    assert_int_equal(m.nparams, 2);
    expect_param(&m, 0, "a", "q");
    expect_param(&m, 1, "b", "2");
    assert_string_equal(allow_of(r, "GET", "/x/q/2/z"), "POST");
    /* The literal y wins over :a although /x/:a/:b/z would match the whole path: the y branch
     * does not dead-end, its wildcard takes the request. */
    assert_int_equal(weft_router_match(r, S("POST"), S("/x/y/2/z"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[24]);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "t", "2/z");
    /* The method decides too: /x/y/:b/w has no POST route, so the wildcard takes it. */
    assert_int_equal(weft_router_match(r, S("POST"), S("/x/y/2/w"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[24]);
    expect_param(&m, 0, "t", "2/w");
    /* DELETE /orders/new: the literal has GET only; :id has DELETE. */
    assert_int_equal(weft_router_match(r, S("DELETE"), S("/orders/new"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[5]);
    expect_param(&m, 0, "id", "new");
    weft_router_free(r);
}

static void test_wildcards(void **state)
{
    weft_router_t *r = build();
    weft_route_match_t m;
    const char *path = "/static/css/a.css";
    assert_int_equal(weft_router_match(r, S("GET"), S(path), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[9]);
    assert_string_equal(m.pattern, "/static/*path");
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "path", "css/a.css");
    assert_ptr_equal(m.params[0].value.base, path + 8);
    /* Empty rest. */
    assert_int_equal(weft_router_match(r, S("GET"), S("/static/"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    expect_param(&m, 0, "path", "");
    /* The slash before the wildcard is required. */
    expect_res(r, "GET", "/static", WEFT_ROUTE_NOT_FOUND);
    /* The rest may hold empty segments and trailing slashes. */
    assert_int_equal(weft_router_match(r, S("GET"), S("/static//x//"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    expect_param(&m, 0, "path", "/x//");
    /* Unnamed: the parameter is called "*". */
    assert_int_equal(weft_router_match(r, S("GET"), S("/files/x/y"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[11]);
    expect_param(&m, 0, "*", "x/y");

    /* A catch-all at the root loses to everything more specific. */
    weft_router_t *r2 = weft_router_new();
    assert_int_equal(weft_router_add(r2, "GET", "/*all", &V[0]), 0);
    assert_int_equal(weft_router_add(r2, "GET", "/api/:v", &V[1]), 0);
    expect(r2, "GET", "/", &V[0]);
    expect(r2, "GET", "/api/1", &V[1]);
    expect(r2, "GET", "/api", &V[0]);
    expect(r2, "GET", "/api/1/2", &V[0]);
    expect(r2, "GET", "/api/", &V[0]); /* :v is never empty */
    assert_int_equal(weft_router_match(r2, S("GET"), S("/api/1/2"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "all", "api/1/2");
    weft_router_free(r2);
    weft_router_free(r);
}

static void test_methods_405_head(void **state)
{
    weft_router_t *r = build();
    weft_route_match_t m;

    /* 405 with the Allow list: sorted, unique, HEAD along with GET. */
    assert_string_equal(allow_of(r, "PUT", "/orders/1"), "DELETE, GET, HEAD");
    assert_string_equal(allow_of(r, "GET", "/orders"), "POST");
    assert_string_equal(allow_of(r, "HEAD", "/orders"), "POST");
    assert_string_equal(allow_of(r, "DELETE", "/u/1"), "OPTIONS, PATCH");
    /* The union over every pattern matching the path: /orders/new has GET, :id adds DELETE. */
    assert_string_equal(allow_of(r, "PUT", "/orders/new"), "DELETE, GET, HEAD");
    /* Extension methods are listed; methods are case-sensitive. */
    assert_string_equal(allow_of(r, "GET", "/cache/k"), "PURGE");
    assert_string_equal(allow_of(r, "GET", "/lower"), "get");
    expect(r, "get", "/lower", &V[21]);
    expect(r, "PURGE", "/cache/k", &V[20]);
    expect_res(r, "purge", "/cache/k", WEFT_ROUTE_METHOD_NOT_ALLOWED);
    /* A wildcard's methods count too, with the rest of the path empty or not. */
    assert_string_equal(allow_of(r, "POST", "/files/x/y"), "GET, HEAD");
    assert_string_equal(allow_of(r, "POST", "/files/"), "GET, HEAD");
    assert_string_equal(allow_of(r, "DELETE", "/w/1/y"), "GET, HEAD");
    /* Explicit HEAD and GET both listed once. */
    assert_string_equal(allow_of(r, "POST", "/h"), "GET, HEAD");

    /* HEAD: its own route first, else GET's; never another method's. */
    expect(r, "HEAD", "/hello", &V[1]);
    expect(r, "HEAD", "/h", &V[18]);
    expect(r, "GET", "/h", &V[19]);
    expect(r, "HEAD", "/orders/5", &V[4]);
    expect_res(r, "HEAD", "/u/5", WEFT_ROUTE_METHOD_NOT_ALLOWED);

    /* "*": any method without a route of its own on that pattern. */
    expect(r, "PATCH", "/any", &V[10]);
    expect(r, "GET", "/any", &V[10]);
    expect(r, "HEAD", "/any", &V[10]);
    expect(r, "FOO", "/any", &V[10]);
    expect(r, "PUT", "/any", &V[13]);
    weft_router_t *r2 = weft_router_new();
    assert_int_equal(weft_router_add(r2, "*", "/p", &V[0]), 0);
    assert_int_equal(weft_router_add(r2, "GET", "/p", &V[1]), 0);
    expect(r2, "HEAD", "/p", &V[1]); /* HEAD prefers GET to "*" */
    expect(r2, "POST", "/p", &V[0]);
    weft_router_free(r2);

    /* Nothing matches the path: 404, whatever the method; Allow untouched. */
    char allow[16] = "untouched";
    assert_int_equal(weft_router_match(r, S("GET"), S("/nope"), &m, allow, sizeof(allow)),
                     WEFT_ROUTE_NOT_FOUND);
    assert_string_equal(allow, "untouched");
    expect_res(r, "DELETE", "/hello/a/b", WEFT_ROUTE_NOT_FOUND);

    /* A small Allow buffer holds whole names only, never overruns, always terminated. */
    char small[32];
    static const struct {
        size_t cap;
        const char *want;
    } cuts[] = {{1, ""},
                {6, ""},
                {7, "DELETE"},
                {11, "DELETE"},
                {12, "DELETE, GET"},
                {17, "DELETE, GET"},
                {18, "DELETE, GET, HEAD"},
                {31, "DELETE, GET, HEAD"}};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        memset(small, 'x', sizeof(small));
        assert_int_equal(weft_router_match(r, S("PUT"), S("/orders/1"), &m, small, cuts[i].cap),
                         WEFT_ROUTE_METHOD_NOT_ALLOWED);
        assert_string_equal(small, cuts[i].want);
        assert_int_equal(small[cuts[i].cap], 'x');
    }
    /* No buffer at all, or cap 0: the result alone. */
    assert_int_equal(weft_router_match(r, S("PUT"), S("/orders/1"), &m, NULL, 0),
                     WEFT_ROUTE_METHOD_NOT_ALLOWED);
    small[0] = 'x';
    assert_int_equal(weft_router_match(r, S("PUT"), S("/orders/1"), &m, small, 0),
                     WEFT_ROUTE_METHOD_NOT_ALLOWED);
    assert_int_equal(small[0], 'x');
    weft_router_free(r);
}

static void test_all_methods_allow(void **state)
{
    static const char *const methods[] = {"TRACE", "CONNECT", "OPTIONS", "PATCH", "DELETE", "PUT",
                                          "POST",  "HEAD",    "GET",     "MKCOL", "LOCK",   "GET2"};
    weft_router_t *r = weft_router_new();
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        assert_int_equal(weft_router_add(r, methods[i], "/r/:id", &V[i]), 0);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        expect(r, methods[i], "/r/1", &V[i]);
    assert_string_equal(allow_of(r, "BREW", "/r/1"),
                        "CONNECT, DELETE, GET, GET2, HEAD, LOCK, MKCOL, OPTIONS, PATCH, POST, "
                        "PUT, TRACE");
    /* Listed once though two matching patterns have it; the wildcard's own adds to the list. */
    assert_int_equal(weft_router_add(r, "MKCOL", "/r/*rest", &V[20]), 0);
    assert_int_equal(weft_router_add(r, "COPY", "/r/*rest", &V[21]), 0);
    assert_string_equal(allow_of(r, "BREW", "/r/1"),
                        "CONNECT, COPY, DELETE, GET, GET2, HEAD, LOCK, MKCOL, OPTIONS, PATCH, "
                        "POST, PUT, TRACE");
    assert_string_equal(allow_of(r, "BREW", "/r/1/2"), "COPY, MKCOL");
    /* An empty segment is no parameter: "/q/" allows GET only, not :id's DELETE. */
    assert_int_equal(weft_router_add(r, "GET", "/q/", &V[22]), 0);
    assert_int_equal(weft_router_add(r, "DELETE", "/q/:id", &V[23]), 0);
    assert_string_equal(allow_of(r, "PUT", "/q/"), "GET, HEAD");
    assert_string_equal(allow_of(r, "PUT", "/q/1"), "DELETE");
    expect_res(r, "GE", "/r/1", WEFT_ROUTE_METHOD_NOT_ALLOWED);
    expect_res(r, "", "/r/1", WEFT_ROUTE_METHOD_NOT_ALLOWED);
    weft_router_free(r);
}

static int listing_count(weft_router_t *r);

static void test_errors_and_limits(void **state)
{
    weft_router_t *r = build();
    int before = listing_count(r);
    /* Duplicates and conflicting names. */
    assert_int_equal(weft_router_add(r, "GET", "/hello", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "*", "/any", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "GET", "/hello/:other", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "GET", "/hello/:other/deeper", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "GET", "/static/*other", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "GET", "/files/*named", &V[0]), WEFT_EEXIST);
    /* Bad patterns. */
    static const char *const bad[] = {
        "",       "nope",  "/a/:",   "/a/*x/b", "/a/*/b", "/a b",   "/a\tb", "/a?b",  "/a#b",
        "/a\x7f", "/:a.b", "/:a/:a", "/:a/*a",  "/*a/",   "/:",     "/:x:y", "/*x*y", "/a/:b c",
        "/\x01",  "*",     ":x",     "/a/*b/*", "/a/::",  "/:-/:-", "/a/:é"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (weft_router_add(r, "GET", bad[i], &V[0]) != WEFT_EINVAL)
            fail_msg("pattern \"%s\" accepted", bad[i]);
    /* Bad methods. */
    static const char *const badm[] = {"",    "G T",  "GET\n", "G:T",
                                       "G/T", "\x80", "G\"T",  "GETGETGETGETGETGETGETGETGETGETGE"};
    for (size_t i = 0; i < sizeof(badm) / sizeof(badm[0]); i++)
        if (weft_router_add(r, badm[i], "/ok", &V[0]) != WEFT_EINVAL)
            fail_msg("method \"%s\" accepted", badm[i]);
    assert_int_equal(weft_router_add(r, NULL, "/ok", &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(r, "GET", NULL, &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(NULL, "GET", "/ok", &V[0]), WEFT_EINVAL);
    /* Parameters: 16 fine, 17 too many (the wildcard counts). */
    char pat[2048] = "/lim";
    for (int i = 0; i < 17; i++) sprintf(pat + strlen(pat), "/:p%d", i);
    assert_int_equal(weft_router_add(r, "GET", pat, &V[0]), WEFT_ELIMIT);
    strcpy(pat, "/lim");
    for (int i = 0; i < 16; i++) sprintf(pat + strlen(pat), "/:p%d", i);
    strcat(pat, "/*rest");
    assert_int_equal(weft_router_add(r, "GET", pat, &V[0]), WEFT_ELIMIT);
    before = listing_count(r);
    *strrchr(pat, '/') = 0;
    assert_int_equal(weft_router_add(r, "GET", pat, &V[30]), 0);
    before++;
    char path[256] = "/lim";
    for (int i = 0; i < 16; i++) sprintf(path + strlen(path), "/v%d", i);
    weft_route_match_t m;
    assert_int_equal(weft_router_match(r, S("GET"), S(path), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[30]);
    assert_int_equal(m.nparams, 16);
    expect_param(&m, 15, "p15", "v15");
    /* Pattern size: 1024 bytes fine, 1025 too long. */
    memset(pat, 'a', sizeof(pat));
    pat[0] = '/';
    pat[1025] = 0;
    assert_int_equal(weft_router_add(r, "GET", pat, &V[0]), WEFT_ELIMIT);
    pat[1024] = 0;
    assert_int_equal(weft_router_add(r, "GET", pat, &V[31]), 0);
    before++;
    expect(r, "GET", pat, &V[31]);
    /* A rejected add changed nothing. */
    assert_int_equal(listing_count(r), before);
    expect(r, "GET", "/hello/x", &V[2]);
    expect(r, "GET", "/static/x", &V[9]);
    expect_res(r, "GET", "/ok", WEFT_ROUTE_NOT_FOUND);
    weft_router_free(r);
    weft_router_free(NULL);
}

static void test_route_limit(void **state)
{
    weft_router_t *r = weft_router_new();
    char pat[64];
    for (int i = 0; i < WEFT_ROUTER_MAX_ROUTES; i++) {
        snprintf(pat, sizeof(pat), i % 2 ? "/r%d/:id" : "/r%d", i);
        assert_int_equal(weft_router_add(r, "GET", pat, &V[i % 64]), 0);
    }
    assert_int_equal(weft_router_add(r, "GET", "/one-more", &V[0]), WEFT_ELIMIT);
    assert_int_equal(weft_router_add(r, "POST", "/r0", &V[0]), WEFT_ELIMIT);
    assert_int_equal(listing_count(r), WEFT_ROUTER_MAX_ROUTES);
    for (int i = 0; i < WEFT_ROUTER_MAX_ROUTES; i++) {
        snprintf(pat, sizeof(pat), i % 2 ? "/r%d/x" : "/r%d", i);
        expect(r, "GET", pat, &V[i % 64]);
    }
    expect_res(r, "GET", "/one-more", WEFT_ROUTE_NOT_FOUND);
    weft_router_free(r);
}

typedef struct listing_s {
    int n;
    char text[4096];
} listing_t;

static void list_cb(const char *method, const char *pattern, void *value, void *arg)
{
    listing_t *l = arg;
    size_t o = strlen(l->text);
    snprintf(l->text + o, sizeof(l->text) - o, "%s %s %d\n", method, pattern,
             (int)((int *)value - V));
    l->n++;
}

static int listing_count(weft_router_t *r)
{
    listing_t l = {0};
    weft_router_foreach(r, list_cb, &l);
    return l.n;
}

static void test_foreach(void **state)
{
    weft_router_t *r = weft_router_new();
    listing_t l = {0};
    weft_router_foreach(r, list_cb, &l);
    assert_int_equal(l.n, 0);
    assert_int_equal(weft_router_add(r, "GET", "/b/:id", &V[2]), 0);
    assert_int_equal(weft_router_add(r, "*", "/a", &V[1]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/a", &V[3]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/a", &V[4]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "PURGE", "/c/*", &V[5]), 0);
    weft_router_foreach(r, list_cb, &l);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.text, "GET /b/:id 2\n* /a 1\nGET /a 3\nPURGE /c/* 5\n");
    weft_router_free(r);
}

static void test_long_paths(void **state)
{
    weft_router_t *r = build();
    weft_route_match_t m;
    size_t n = 1 << 16;
    char *path = malloc(n + 1);
    assert_non_null(path);
    /* One huge segment as a parameter. */
    memcpy(path, "/hello/", 7);
    memset(path + 7, 'q', n - 7);
    path[n] = 0;
    assert_int_equal(weft_router_match(r, S("GET"), (weft_str_t){path, n}, &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[2]);
    assert_int_equal(m.params[0].value.len, n - 7);
    /* Thousands of segments under a wildcard. */
    memcpy(path, "/static/", 8);
    for (size_t i = 8; i < n; i++) path[i] = i % 2 ? '/' : 'z';
    assert_int_equal(weft_router_match(r, S("GET"), (weft_str_t){path, n}, &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[9]);
    assert_int_equal(m.params[0].value.len, n - 8);
    /* Thousands of segments matching nothing; all slashes. */
    memcpy(path, "/hello/", 7);
    assert_int_equal(weft_router_match(r, S("GET"), (weft_str_t){path, n}, &m, NULL, 0),
                     WEFT_ROUTE_NOT_FOUND);
    memset(path, '/', n);
    assert_int_equal(weft_router_match(r, S("GET"), (weft_str_t){path, n}, &m, NULL, 0),
                     WEFT_ROUTE_NOT_FOUND);
    /* Segment lengths around the 8-byte steps of the scanner. */
    weft_router_t *r2 = weft_router_new();
    char pat[64];
    for (int len = 1; len <= 20; len++) {
        snprintf(pat, sizeof(pat), "/%.*s/:p", len, "abcdefghijklmnopqrstuvwxyz");
        assert_int_equal(weft_router_add(r2, "GET", pat, &V[len]), 0);
    }
    for (int len = 1; len <= 20; len++) {
        for (int vl = 1; vl <= 17; vl++) {
            snprintf(path, 64, "/%.*s/%.*s", len, "abcdefghijklmnopqrstuvwxyz", vl,
                     "0123456789ABCDEFGHIJ");
            assert_int_equal(weft_router_match(r2, S("GET"), S(path), &m, NULL, 0),
                             WEFT_ROUTE_FOUND);
            assert_ptr_equal(m.value, &V[len]);
            assert_int_equal(m.params[0].value.len, (size_t)vl);
            strcat(path, "/");
            assert_int_equal(weft_router_match(r2, S("GET"), S(path), &m, NULL, 0),
                             WEFT_ROUTE_NOT_FOUND);
        }
        snprintf(path, 64, "/%.*sX/1", len, "abcdefghijklmnopqrstuvwxyz");
        assert_int_equal(weft_router_match(r2, S("GET"), S(path), &m, NULL, 0),
                         WEFT_ROUTE_NOT_FOUND);
    }
    weft_router_free(r2);

    /* Literal segments of every length up to 40, as static patterns and inside the trie:
     * a path differing in any one byte does not match. */
    r2 = weft_router_new();
    char seg[41];
    for (int len = 1; len <= 40; len++) {
        for (int i = 0; i < len; i++) seg[i] = (char)('a' + (i * 7 + len) % 26);
        seg[len] = 0;
        snprintf(pat, sizeof(pat), "/%s", seg);
        assert_int_equal(weft_router_add(r2, "GET", pat, &V[len]), 0);
        snprintf(pat, sizeof(pat), "/t/:x/%s", seg);
        assert_int_equal(weft_router_add(r2, "GET", pat, &V[len]), 0);
    }
    for (int len = 1; len <= 40; len++) {
        for (int i = 0; i < len; i++) seg[i] = (char)('a' + (i * 7 + len) % 26);
        seg[len] = 0;
        for (int pre = 0; pre < 2; pre++) {
            snprintf(path, 64, "%s/%s", pre ? "/t/1" : "", seg);
            expect(r2, "GET", path, &V[len]);
            for (size_t i = strlen(path) - (size_t)len; path[i]; i++) {
                char keep = path[i];
                path[i] = 'Z';
                expect_res(r2, "GET", path, WEFT_ROUTE_NOT_FOUND);
                path[i] = keep;
            }
        }
    }
    weft_router_free(r2);
    free(path);
    weft_router_free(r);
}

static void test_many_routes(void **state)
{
    weft_router_t *r = weft_router_new();
    char pat[64];
    static int vals[3000];
    /* Wide fan-out at the root and below one node, static and parameterised. */
    for (int i = 0; i < 1000; i++) {
        snprintf(pat, sizeof(pat), "/svc%d/:id/x", i);
        assert_int_equal(weft_router_add(r, "GET", pat, &vals[i]), 0);
        snprintf(pat, sizeof(pat), "/svc%d", i);
        assert_int_equal(weft_router_add(r, "GET", pat, &vals[1000 + i]), 0);
        snprintf(pat, sizeof(pat), "/k/%d", i);
        assert_int_equal(weft_router_add(r, i % 3 ? "GET" : "POST", pat, &vals[2000 + i]), 0);
    }
    assert_int_equal(listing_count(r), 3000);
    weft_route_match_t m;
    for (int i = 0; i < 1000; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/svc%d/%d/x", i, i * 7);
        expect(r, "GET", path, &vals[i]);
        snprintf(path, sizeof(path), "/svc%d", i);
        expect(r, "GET", path, &vals[1000 + i]);
        snprintf(path, sizeof(path), "/k/%d", i);
        expect(r, i % 3 ? "GET" : "POST", path, &vals[2000 + i]);
        assert_int_equal(weft_router_match(r, S("PUT"), S(path), &m, NULL, 0),
                         WEFT_ROUTE_METHOD_NOT_ALLOWED);
        snprintf(path, sizeof(path), "/k/%d0000", i);
        expect_res(r, "GET", path, WEFT_ROUTE_NOT_FOUND);
        snprintf(path, sizeof(path), "/svc%d/", i);
        expect_res(r, "GET", path, WEFT_ROUTE_NOT_FOUND);
    }
    weft_router_free(r);
}

/* Many threads matching the same router at once get the same answers as one. */
static weft_router_t *shared;

static void *lookups(void *arg)
{
    static const struct {
        const char *method, *path;
        int want; /* index into V, or -1: not found */
    } cases[] = {
        {"GET", "/hello", 1},     {"GET", "/orders/9", 4},   {"DELETE", "/orders/9", 5},
        {"GET", "/a/b/c", 8},     {"GET", "/static/x/y", 9}, {"HEAD", "/h", 18},
        {"POST", "/x/y/2/w", 24}, {"GET", "/nope", -1},      {"GET", "/orders/1/items/2", 12}};
    long bad = 0;
    for (int round = 0; round < 20000; round++) {
        size_t i = (size_t)(round + (intptr_t)arg) % (sizeof(cases) / sizeof(cases[0]));
        weft_route_match_t m;
        weft_route_result_t res =
            weft_router_match(shared, S(cases[i].method), S(cases[i].path), &m, NULL, 0);
        if (cases[i].want < 0)
            bad += res != WEFT_ROUTE_NOT_FOUND;
        else
            bad += res != WEFT_ROUTE_FOUND || m.value != &V[cases[i].want];
    }
    return (void *)bad;
}

static void test_concurrent_lookups(void **state)
{
    shared = build();
    pthread_t t[4];
    for (intptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, lookups, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        assert_int_equal(pthread_join(t[i], &bad), 0);
        assert_null(bad);
    }
    weft_router_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals_and_params),
        cmocka_unit_test(test_precedence_and_backtracking),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_methods_405_head),
        cmocka_unit_test(test_all_methods_allow),
        cmocka_unit_test(test_errors_and_limits),
        cmocka_unit_test(test_route_limit),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_long_paths),
        cmocka_unit_test(test_many_routes),
        cmocka_unit_test(test_concurrent_lookups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
