/*
 * test_reload.c - the gateway's reload (weft_gateway_reload, src/gateway/gateway.c): which
 * routes keep their policy state, and how long a policy lives.
 *
 * Checked, on a gateway whose host never runs (a reload is a snapshot swap, no socket
 * involved): a route whose name and policy settings are unchanged shares its predecessor's
 * policy, so an open breaker stays open and a rate limit keeps its count, whatever else of
 * the route changed; a route with changed settings or a new name gets a fresh one; the
 * summary names what was kept, changed, added and removed; a table still held by a request
 * keeps its policies alive after a reload replaced them, and the last release frees them
 * (LeakSanitizer and ASan see a leak or a use after free); a reload that fails (a policy
 * that cannot be built) changes nothing and gives back the references it took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/snapshot.h"
#include "gateway/gw_int.h"
#include "weft/weft.h"

static gw_route_t route(const char *name, const char *prefix)
{
    gw_route_t r;
    memset(&r, 0, sizeof(r));
    r.name = strdup(name);
    r.kind = GW_MATCH_PREFIX;
    r.path = strdup(prefix);
    r.path_len = strlen(prefix);
    r.timeout_ms = 15000;
    r.targets = calloc(1, sizeof(*r.targets));
    strcpy(r.targets[0].host, "127.0.0.1");
    r.targets[0].port = 9;
    r.targets[0].weight = 1;
    r.ntargets = 1;
    return r;
}

static void with_breaker(gw_route_t *r, uint64_t consecutive)
{
    r->breaker = (gw_breaker_conf_t){.on = true,
                                     .consecutive_failures = consecutive,
                                     .window_ms = 10000,
                                     .min_requests = 20,
                                     .open_for_ms = 60000,
                                     .open_for_max_ms = 600000,
                                     .half_open_requests = 1};
}

static void with_limit(gw_route_t *r, uint64_t burst, const char *header)
{
    r->rate_limit = (gw_ratelimit_conf_t){.on = true,
                                          .algorithm = GW_RL_TOKEN_BUCKET,
                                          .rate = 1.0 / 60,
                                          .burst = burst,
                                          .key = header ? GW_RL_KEY_HEADER : GW_RL_KEY_ROUTE,
                                          .key_header = header ? strdup(header) : NULL};
}

/* The current table's route named name (read section: the caller's thread is registered). */
static gw_policy_t *policy_of(weft_gateway_t *g, const char *name)
{
    gw_policy_t *p = NULL;
    weft_snap_read_lock();
    const gw_table_t *t = weft_snap_get(&g->table);
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->routes[i].name, name) == 0) p = t->routes[i].policy;
    weft_snap_read_unlock();
    return p;
}

static weft_snap_cell_t barrier;

/* Waits until every table retired so far and not held has been freed (its cell reference
 * goes after an RCU grace period). */
static void settle(void)
{
    weft_snap_cell_destroy(&barrier);
    weft_snap_cell_init(&barrier);
}

static unsigned refs(gw_policy_t *p)
{
    return atomic_load(&p->refs);
}

/* Reloads rs[0..n) (moved in); returns weft_gateway_reload's code, the summary in *sum. */
static int reload(weft_gateway_t *g, gw_route_t *rs, size_t n, char *sum, size_t cap)
{
    gw_route_t *heap = calloc(n ? n : 1, sizeof(*heap));
    memcpy(heap, rs, n * sizeof(*heap));
    weft_buf_t b;
    weft_buf_init(&b, 0);
    char err[256] = "";
    int rc = weft_gateway_reload(g, heap, n, &b, err, sizeof(err));
    snprintf(sum, cap, "%s", rc == 0 ? (b.p ? b.p : "") : err);
    weft_buf_free(&b);
    return rc;
}

static void test_state_carried_over_and_freed(void **state)
{
    (void)state;
    weft_snap_thread_register();
    weft_snap_cell_init(&barrier);
    weft_host_options_t ho;
    weft_host_options_init(&ho);
    ho.workers = 2;
    ho.signals = false;
    weft_host_t *h;
    assert_int_equal(weft_host_new(&ho, &h), 0);

    gw_route_t *rs = calloc(3, sizeof(*rs));
    rs[0] = route("a", "/a");
    with_breaker(&rs[0], 1);
    rs[1] = route("b", "/b");
    with_limit(&rs[1], 2, "X-Key");
    rs[2] = route("c", "/c");
    weft_gateway_options_t o = {.host = "127.0.0.1", .routes = rs, .nroutes = 3};
    weft_gateway_t *g;
    char err[256];
    assert_int_equal(weft_gateway_new(h, &o, &g, err, sizeof(err)), 0);
    assert_int_equal(atomic_load(&g->generation), 1);

    gw_policy_t *pa = policy_of(g, "a"), *pb = policy_of(g, "b");
    assert_non_null(pa);
    assert_non_null(pb);
    assert_null(policy_of(g, "c"));
    assert_int_equal(refs(pa), 1);
    /* a request in flight holds the first table */
    gw_table_t *t1 = weft_snap_hold(&g->table);
    /* a's breaker opens on one failure; b's bucket for key "k" has one token left */
    uint64_t wait = 0;
    bool open = false;
    assert_int_equal(gw_policy_allow(pa, 1000, &wait, &open), 1);
    gw_policy_record(pa, 1000, false, 5);
    assert_int_equal(gw_policy_allow(pa, 1001, &wait, &open), 0);
    assert_true(open);
    weft_ratelimit_result_t res;
    assert_int_equal(gw_policy_limit(pb, "k", 1, 1000, &res), 1);

    /* unchanged policies, other things changed (order, paths, timeout); c gone, d new */
    gw_route_t n2[3];
    n2[0] = route("b", "/bee");
    with_limit(&n2[0], 2, "X-Key");
    n2[1] = route("a", "/a");
    with_breaker(&n2[1], 1);
    n2[1].timeout_ms = 3000;
    n2[2] = route("d", "/d");
    with_breaker(&n2[2], 1);
    char sum[512];
    assert_int_equal(reload(g, n2, 3, sum, sizeof(sum)), 0);
    assert_string_equal(sum, "{\"routes\":3,\"generation\":2,\"kept\":[\"b\",\"a\"],"
                             "\"changed\":[],\"added\":[\"d\"],\"removed\":[\"c\"]}");
    assert_ptr_equal(policy_of(g, "a"), pa);
    assert_ptr_equal(policy_of(g, "b"), pb);
    gw_policy_t *pd = policy_of(g, "d");
    assert_non_null(pd);
    assert_true(pd != pa);
    assert_int_equal(refs(pa), 2); /* t1 and the new table */
    assert_int_equal(weft_breaker_state(pa->breaker), WEFT_BREAKER_OPEN);
    assert_int_equal(gw_policy_allow(pa, 1002, &wait, &open), 0);
    assert_int_equal(gw_policy_limit(pb, "k", 1, 1001, &res), 1);
    assert_int_equal(gw_policy_limit(pb, "k", 1, 1002, &res), 0); /* the count went on */

    /* a failing reload (a rate limit that cannot be built) changes nothing, and gives back
     * the reference it took on a's policy */
    gw_route_t bad[2];
    bad[0] = route("a", "/a");
    with_breaker(&bad[0], 1);
    bad[1] = route("x", "/x");
    with_limit(&bad[1], 0, NULL); /* burst 0 */
    bad[1].rate_limit.rate = 0;
    assert_int_not_equal(reload(g, bad, 2, sum, sizeof(sum)), 0);
    assert_non_null(strstr(sum, "route x: rate_limit:"));
    assert_int_equal(refs(pa), 2);
    assert_ptr_equal(policy_of(g, "d"), pd);
    assert_int_equal(atomic_load(&g->generation), 2);

    /* changed settings: fresh state; the header of the key counts as a setting */
    gw_route_t n3[2];
    n3[0] = route("a", "/a");
    with_breaker(&n3[0], 2);
    n3[1] = route("b", "/b");
    with_limit(&n3[1], 2, "X-Other");
    assert_int_equal(reload(g, n3, 2, sum, sizeof(sum)), 0);
    assert_string_equal(sum, "{\"routes\":2,\"generation\":3,\"kept\":[],"
                             "\"changed\":[\"a\",\"b\"],\"added\":[],\"removed\":[\"d\"]}");
    gw_policy_t *pa3 = policy_of(g, "a");
    assert_true(pa3 != pa);
    assert_int_equal(weft_breaker_state(pa3->breaker), WEFT_BREAKER_CLOSED);
    assert_int_equal(gw_policy_limit(policy_of(g, "b"), "k", 1, 1003, &res), 1);
    /* the first table's request still uses the old state, alone now (once the second
     * table's cell reference went) */
    settle();
    assert_int_equal(refs(pa), 1);
    assert_ptr_equal(t1->routes[0].policy, pa);
    assert_int_equal(gw_policy_allow(pa, 1004, &wait, &open), 0);
    assert_string_equal(pa->route->name, "a"); /* the policy's own copy of the name */
    weft_snap_release(t1); /* the request ends: t1 and the policies only it held go */

    weft_host_free(h);
    weft_gateway_free(g);
    weft_snap_cell_destroy(&barrier);
    weft_snap_thread_unregister();
}

/* gw_policy_conf_equal: every policy setting counts, nothing else does. */
static void test_conf_equal(void **state)
{
    (void)state;
    gw_route_t a = route("r", "/a"), b = route("r", "/b");
    assert_true(gw_policy_conf_equal(&a, &b)); /* no policy either side */
    with_breaker(&a, 5);
    assert_false(gw_policy_conf_equal(&a, &b));
    with_breaker(&b, 5);
    b.timeout_ms = 1;
    b.retry.attempts = 3;
    assert_true(gw_policy_conf_equal(&a, &b));
    b.breaker.open_for_max_ms++;
    assert_false(gw_policy_conf_equal(&a, &b));
    b.breaker = a.breaker;
    b.breaker.failure_rate = 50;
    assert_false(gw_policy_conf_equal(&a, &b));
    b.breaker = a.breaker;
    with_limit(&a, 10, "X-K");
    with_limit(&b, 10, "X-K");
    assert_true(gw_policy_conf_equal(&a, &b));
    b.rate_limit.shadow = true;
    assert_false(gw_policy_conf_equal(&a, &b));
    b.rate_limit.shadow = false;
    b.rate_limit.rate *= 2;
    assert_false(gw_policy_conf_equal(&a, &b));
    b.rate_limit.rate = a.rate_limit.rate;
    free(b.rate_limit.key_header);
    b.rate_limit.key_header = strdup("X-k");
    assert_false(gw_policy_conf_equal(&a, &b));
    gw_route_clear(&a);
    gw_route_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_carried_over_and_freed),
        cmocka_unit_test(test_conf_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
