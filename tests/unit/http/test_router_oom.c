/*
 * test_router_oom.c - fault injection: the router compiled into this test with its allocator
 * calls redirected, then a table of routes added with the k-th allocation failing, for every
 * k until the whole table goes in without a failure. An add that fails must return
 * WEFT_ENOMEM and leave no trace: the same listing and the same answers to a set of probe
 * requests as before it. Retried without the failure, it must succeed, and the finished
 * router must answer exactly like one built without failures. ASan checks for leaks at exit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault_alloc.h"

#define malloc  oom_malloc
#define calloc  oom_calloc
#define realloc oom_realloc
#include "../../../src/http/router.c"
#undef malloc
#undef calloc
#undef realloc

static int V[64];

static const struct {
    const char *method, *pattern;
} table[] = {
    {"GET", "/"},
    {"GET", "/hello"},
    {"GET", "/hello/:name"},
    {"POST", "/orders"},
    {"GET", "/orders/:id"},
    {"DELETE", "/orders/:id"},
    {"GET", "/orders/new"},
    {"GET", "/a/b/d"},
    {"GET", "/a/:x/c"},
    {"*", "/s/*rest"},
    {"PURGE", "/c/:k"},
    {"LOCK", "/c/:k"},
    {"GET", "/w/:x/y"},
    {"GET", "/w/*"},
    {"GET", "/e//e/"},
    {"HEAD", "/h"},
    {"GET", "/h"},
    {"GET", "/r1"},
    {"GET", "/r2"},
    {"GET", "/r3"},
    {"GET", "/r4"},
    {"GET", "/r5"},
    {"GET", "/r6"},
    {"GET", "/r7"},
    {"GET", "/r8"},
    {"GET", "/r9"},
    {"GET", "/r10/:id/x/:y"},
    {"PUT", "/r10/:id/x/:y"},
    {"GET", "/r10/:id/z"},
    {"OPTIONS", "/r10"},
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static const struct {
    const char *method, *path;
} probes[] = {
    {"GET", "/"},         {"GET", "/hello"},     {"HEAD", "/hello/x"},   {"PUT", "/orders"},
    {"GET", "/orders/1"}, {"PUT", "/orders/1"},  {"GET", "/orders/new"}, {"DELETE", "/orders/new"},
    {"GET", "/a/b/c"},    {"GET", "/a/b/d"},     {"X", "/s/"},           {"GET", "/s/a/b"},
    {"GET", "/c/1"},      {"LOCK", "/c/1"},      {"PURGE", "/c/1"},      {"GET", "/w/1/y"},
    {"GET", "/w/1/z"},    {"GET", "/e//e/"},     {"HEAD", "/h"},         {"GET", "/r5"},
    {"GET", "/r9"},       {"PUT", "/r10/1/x/2"}, {"POST", "/r10/1/x/2"}, {"GET", "/r10/1/z"},
    {"GET", "/r10"},      {"GET", "/nope"},      {"GET", "/r10/1"},
};
#define NPROBES (sizeof(probes) / sizeof(probes[0]))

static void list_cb(const char *method, const char *pattern, void *value, void *arg)
{
    char *out = arg;
    size_t o = strlen(out);
    snprintf(out + o, 4096 - o, "%s %s %d;", method, pattern, (int)((int *)value - V));
}

/* Everything a user of r can observe, as text (out holds 16 KiB). */
static void observe(const weft_router_t *r, char *out)
{
    char listing[4096] = "";
    weft_router_foreach(r, list_cb, listing);
    size_t o = (size_t)snprintf(out, 16384, "%s\n", listing);
    for (size_t i = 0; i < NPROBES; i++) {
        weft_route_match_t m;
        char allow[128] = "";
        weft_str_t meth = {probes[i].method, strlen(probes[i].method)};
        weft_str_t path = {probes[i].path, strlen(probes[i].path)};
        weft_route_result_t res = weft_router_match(r, meth, path, &m, allow, sizeof(allow));
        o += (size_t)snprintf(out + o, 16384 - o, "%d %d %s [%s]", (int)res,
                              m.value ? (int)((int *)m.value - V) : -1, m.pattern ? m.pattern : "-",
                              allow);
        for (unsigned k = 0; k < m.nparams; k++)
            o += (size_t)snprintf(out + o, 16384 - o, " %.*s=%.*s", (int)m.params[k].name.len,
                                  m.params[k].name.base, (int)m.params[k].value.len,
                                  m.params[k].value.base);
        o += (size_t)snprintf(out + o, 16384 - o, "\n");
    }
}

/* Builds the table with allocation number k (from 0, counted over the whole build) failing
 * once; checks each failed add left no trace and then retries it. Returns the number of
 * allocation failures injected (0: k was past the last allocation). */
static long build_failing_at(long k, char *final)
{
    static char before[16384], after[16384];
    alloc_failures = 0;
    alloc_countdown = k;
    weft_router_t *r = weft_router_new();
    if (!r) { /* the very first allocation failed */
        assert_int_equal(alloc_failures, 1);
        alloc_countdown = -1;
        r = weft_router_new();
        assert_non_null(r);
    }
    for (size_t i = 0; i < NTABLE; i++) {
        observe(r, before);
        long failures = alloc_failures;
        int err = weft_router_add(r, table[i].method, table[i].pattern, &V[i]);
        if (alloc_failures > failures) {
            assert_int_equal(err, WEFT_ENOMEM);
            observe(r, after);
            assert_string_equal(before, after);
            err = weft_router_add(r, table[i].method, table[i].pattern, &V[i]);
        }
        assert_int_equal(err, 0);
    }
    alloc_countdown = -1;
    observe(r, final);
    weft_router_free(r);
    return alloc_failures;
}

static void test_every_allocation_failing(void **state)
{
    static char reference[16384], got[16384];
    assert_int_equal(build_failing_at(-1, reference), 0);
    /* The reference is meaningful: every probe's answer is in it. */
    assert_non_null(strstr(reference, "0 4 /orders/:id [] id=1\n"));
    assert_non_null(strstr(reference, "2 -1 - [DELETE, GET, HEAD]\n"));
    long k = 0;
    while (build_failing_at(k, got) > 0) {
        assert_string_equal(got, reference);
        k++;
    }
    assert_string_equal(got, reference);
    assert_true(k > 2 * (long)NTABLE); /* each add allocates; the loop covered them all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_failing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
