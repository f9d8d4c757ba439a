/*
 * test_router.c - routing: literals, parameters, wildcards, precedence, 405 and Allow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "weft/router.h"

static weft_str_t S(const char *s)
{
    return (weft_str_t){s, strlen(s)};
}

static int V[16];

static weft_router_t *build(void)
{
    weft_router_t *r = weft_router_new();
    assert_non_null(r);
    assert_int_equal(weft_router_add(r, "GET", "/", &V[0]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/hello", &V[1]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/hello/:name", &V[2]), 0);
    assert_int_equal(weft_router_add(r, "POST", "/orders", &V[3]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/orders/:id", &V[4]), 0);
    assert_int_equal(weft_router_add(r, "DELETE", "/orders/:id", &V[5]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/orders/new", &V[6]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/a/b/d", &V[7]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/a/:x/c", &V[8]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/static/*path", &V[9]), 0);
    assert_int_equal(weft_router_add(r, "*", "/any", &V[10]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/files/*", &V[11]), 0);
    assert_int_equal(weft_router_add(r, "GET", "/orders/:id/items/:item", &V[12]), 0);
    return r;
}

static void expect(weft_router_t *r, const char *method, const char *path, void *want)
{
    weft_route_match_t m;
    weft_route_result_t res = weft_router_match(r, S(method), S(path), &m, NULL, 0);
    assert_int_equal(res, WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, want);
}

static void test_literals_and_params(void **state)
{
    weft_router_t *r = build();
    expect(r, "GET", "/", &V[0]);
    expect(r, "GET", "/hello", &V[1]);
    weft_route_match_t m;
    assert_int_equal(weft_router_match(r, S("GET"), S("/hello/bob"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[2]);
    assert_string_equal(m.pattern, "/hello/:name");
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.params[0].name.len, 4);
    assert_memory_equal(m.params[0].name.base, "name", 4);
    assert_int_equal(m.params[0].value.len, 3);
    assert_memory_equal(m.params[0].value.base, "bob", 3);
    assert_int_equal(weft_router_match(r, S("GET"), S("/orders/7/items/9"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_memory_equal(m.params[1].value.base, "9", 1);
    /* Empty segments and trailing slashes are distinct. */
    assert_int_equal(weft_router_match(r, S("GET"), S("/hello/"), &m, NULL, 0),
                     WEFT_ROUTE_NOT_FOUND);
    assert_int_equal(weft_router_match(r, S("GET"), S("/hello//"), &m, NULL, 0),
                     WEFT_ROUTE_NOT_FOUND);
    assert_int_equal(weft_router_match(r, S("GET"), S("hello"), &m, NULL, 0), WEFT_ROUTE_NOT_FOUND);
    assert_int_equal(weft_router_match(r, S("GET"), S(""), &m, NULL, 0), WEFT_ROUTE_NOT_FOUND);
    weft_router_free(r);
}

static void test_precedence_and_backtracking(void **state)
{
    weft_router_t *r = build();
    expect(r, "GET", "/orders/new", &V[6]); /* literal beats :id */
    expect(r, "GET", "/orders/42", &V[4]);
    expect(r, "GET", "/a/b/d", &V[7]);
    expect(r, "GET", "/a/b/c", &V[8]); /* literal b dead-ends, :x matches */
    weft_route_match_t m;
    assert_int_equal(weft_router_match(r, S("GET"), S("/a/b/c"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    assert_memory_equal(m.params[0].value.base, "b", 1);
    weft_router_free(r);
}

static void test_wildcards(void **state)
{
    weft_router_t *r = build();
    weft_route_match_t m;
    assert_int_equal(weft_router_match(r, S("GET"), S("/static/css/a.css"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_ptr_equal(m.value, &V[9]);
    assert_int_equal(m.nparams, 1);
    assert_memory_equal(m.params[0].name.base, "path", 4);
    assert_int_equal(m.params[0].value.len, strlen("css/a.css"));
    assert_int_equal(weft_router_match(r, S("GET"), S("/static/"), &m, NULL, 0), WEFT_ROUTE_FOUND);
    assert_int_equal(m.params[0].value.len, 0);
    assert_int_equal(weft_router_match(r, S("GET"), S("/files/x/y"), &m, NULL, 0),
                     WEFT_ROUTE_FOUND);
    assert_memory_equal(m.params[0].name.base, "*", 1);
    weft_router_free(r);
}

static void test_methods_405_head(void **state)
{
    weft_router_t *r = build();
    weft_route_match_t m;
    char allow[128];
    assert_int_equal(weft_router_match(r, S("PUT"), S("/orders/1"), &m, allow, sizeof(allow)),
                     WEFT_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "DELETE, GET, HEAD");
    assert_int_equal(weft_router_match(r, S("GET"), S("/orders"), &m, allow, sizeof(allow)),
                     WEFT_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "POST");
    expect(r, "HEAD", "/hello", &V[1]);
    expect(r, "PATCH", "/any", &V[10]);
    expect(r, "GET", "/any", &V[10]);
    assert_int_equal(weft_router_match(r, S("GET"), S("/nope"), &m, allow, sizeof(allow)),
                     WEFT_ROUTE_NOT_FOUND);
    /* A tiny Allow buffer is cut, never overrun. */
    char small[5];
    assert_int_equal(weft_router_match(r, S("PUT"), S("/orders/1"), &m, small, sizeof(small)),
                     WEFT_ROUTE_METHOD_NOT_ALLOWED);
    assert_true(strlen(small) < sizeof(small));
    weft_router_free(r);
}

static void test_errors_and_limits(void **state)
{
    weft_router_t *r = build();
    assert_int_equal(weft_router_add(r, "GET", "/hello", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "GET", "/hello/:other", &V[0]), WEFT_EEXIST);
    assert_int_equal(weft_router_add(r, "GET", "nope", &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(r, "GET", "", &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(r, "GET", "/a/:", &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(r, "GET", "/a/*x/b", &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(r, "GET", "/a b", &V[0]), WEFT_EINVAL);
    assert_int_equal(weft_router_add(r, "G T", "/x", &V[0]), WEFT_EINVAL);
    char pat[2048] = "/";
    for (int i = 0; i < 17; i++) sprintf(pat + strlen(pat), "%s:p%d", i ? "/" : "", i);
    assert_int_equal(weft_router_add(r, "GET", pat, &V[0]), WEFT_ELIMIT);
    memset(pat, 'a', sizeof(pat) - 1);
    pat[0] = '/';
    pat[sizeof(pat) - 1] = 0;
    assert_int_equal(weft_router_add(r, "GET", pat, &V[0]), WEFT_ELIMIT);
    /* A rejected add changed nothing. */
    expect(r, "GET", "/hello/x", &V[2]);
    weft_router_free(r);
}

static void count_cb(const char *method, const char *pattern, void *value, void *arg)
{
    (*(int *)arg)++;
}

static void test_foreach_and_many(void **state)
{
    weft_router_t *r = weft_router_new();
    char pat[64];
    static int vals[1000];
    for (int i = 0; i < 1000; i++) {
        snprintf(pat, sizeof(pat), "/svc%d/:id/x", i);
        assert_int_equal(weft_router_add(r, "GET", pat, &vals[i]), 0);
    }
    int n = 0;
    weft_router_foreach(r, count_cb, &n);
    assert_int_equal(n, 1000);
    expect(r, "GET", "/svc999/7/x", &vals[999]);
    weft_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals_and_params),
        cmocka_unit_test(test_precedence_and_backtracking),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_methods_405_head),
        cmocka_unit_test(test_errors_and_limits),
        cmocka_unit_test(test_foreach_and_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
