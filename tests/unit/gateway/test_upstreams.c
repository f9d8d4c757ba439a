/*
 * test_upstreams.c - the gateway's state per upstream instance and its ring hash
 * (src/gateway/policy.c), on a fake clock, without sockets.
 *
 * Checked: each instance of a route has its own breaker with the route's settings (one
 * instance opens, half-opens and closes while another and the route's own stay closed; a
 * released trial is given back), its transitions counted with the upstream label;
 * max_requests admits exactly that many at once, also under four threads racing; the
 * instances kept are bounded (GW_INST_MAX), a new one takes the place of one unused for
 * GW_INST_IDLE_MS and never of one with a try in flight; the ring sends a key to the same
 * endpoint, and removing one endpoint of five moves only its keys; a service's ring is
 * cached per version.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/snapshot.h"
#include "gateway/policy.h"
#include "gateway/route.h"
#include "weft/weft.h"

static weft_metrics_registry_t *reg;
static gw_policy_metrics_t pm;

static int setup(void **state)
{
    (void)state;
    weft_snap_thread_register();
    reg = weft_metrics_registry_new();
    assert_non_null(reg);
    static const char *const sl[] = {"route", "upstream"}, *const tl[] = {"route", "upstream",
                                                                          "from", "to", "reason"};
    assert_int_equal(weft_metrics_gauge_new(reg, "weft_breaker_state", "s", sl, 2, &pm.state), 0);
    assert_int_equal(weft_metrics_counter_new(reg, "weft_breaker_transitions_total", "t", tl, 5,
                                              &pm.transitions),
                     0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* everything retired so far freed (no leak report for what waits for a grace period) */
    weft_snap_cell_t c;
    weft_snap_cell_init(&c);
    weft_snap_cell_destroy(&c);
    weft_metrics_registry_free(reg);
    weft_snap_thread_unregister();
    return 0;
}

static gw_route_t *mk_route(const char *name)
{
    gw_route_t *r = calloc(1, sizeof(*r));
    r->name = strdup(name);
    r->path = strdup("/");
    r->path_len = 1;
    return r;
}

static gw_policy_t *mk_policy(gw_route_t *r)
{
    char err[256];
    assert_int_equal(gw_policy_new(r, &pm, &r->policy, err, sizeof(err)), 0);
    assert_non_null(r->policy);
    return r->policy;
}

static void free_route(gw_route_t *r)
{
    gw_route_clear(r); /* frees the policy too */
    free(r);
}

static gw_inst_t *inst(gw_policy_t *p, const char *host, uint16_t port, uint64_t now)
{
    weft_snap_read_lock();
    gw_inst_t *i = gw_policy_instance(p, host, port, now);
    weft_snap_read_unlock(); /* the policy's index keeps it (nothing is evicted meanwhile) */
    return i;
}

static bool metric_has(const char *want)
{
    char *out;
    size_t len;
    assert_int_equal(weft_metrics_write(reg, &out, &len), 0);
    bool has = strstr(out, want) != NULL;
    if (!has) print_message("not in the metrics: %s\n%s", want, out);
    free(out);
    return has;
}

static void count(const char *h, uint16_t port, const gw_upstream_state_t *s, void *arg)
{
    (void)port;
    assert_true(s->kept && s->breaker && strncmp(h, "10.0.0.", 7) == 0);
    (*(unsigned *)arg)++;
}

static void test_instance_breakers(void **state)
{
    (void)state;
    gw_route_t *r = mk_route("r");
    r->breaker = (gw_breaker_conf_t){.on = true,
                                     .consecutive_failures = 2,
                                     .window_ms = 10000,
                                     .min_requests = 20,
                                     .open_for_ms = 1000,
                                     .open_for_max_ms = 8000,
                                     .half_open_requests = 1};
    gw_policy_t *p = mk_policy(r);
    gw_inst_t *a = inst(p, "10.0.0.1", 80, 0), *b = inst(p, "10.0.0.2", 80, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(inst(p, "10.0.0.1", 80, 5), a); /* found again, not made twice */
    assert_ptr_not_equal(inst(p, "10.0.0.1", 81, 5), a);
    assert_string_equal(gw_inst_id(a), "10.0.0.1:80");
    uint64_t wait = 99;
    /* a fails twice: its breaker opens; b and the route's own breaker do not move */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(gw_inst_admit(a, 10, &wait), GW_ADMIT_OK);
        assert_int_equal(wait, 0);
        gw_inst_done(a, 20, 0, 10);
    }
    assert_int_equal(gw_inst_admit(a, 100, &wait), GW_ADMIT_OPEN);
    assert_int_equal(wait, 920); /* opened at 20, for 1000 */
    assert_int_equal(gw_inst_admit(b, 100, &wait), GW_ADMIT_OK);
    gw_inst_done(b, 110, 1, 10);
    assert_int_equal(weft_breaker_state(p->breaker), WEFT_BREAKER_CLOSED);
    gw_upstream_state_t st;
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 100, &st), 0);
    assert_true(st.kept && st.breaker);
    assert_int_equal(st.state, WEFT_BREAKER_OPEN);
    assert_int_equal(st.stats.ms_until_half_open, 920);
    assert_int_equal(st.active, 0);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.2", 80, 100, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_CLOSED);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.9", 80, 100, &st), WEFT_ENOENT);
    assert_false(st.kept);
    /* half-open: one trial, the next refused with no wait; a released trial comes back */
    assert_int_equal(gw_inst_admit(a, 1020, &wait), GW_ADMIT_OK);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 1020, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_HALF_OPEN);
    assert_int_equal(st.active, 1);
    assert_int_equal(gw_inst_admit(a, 1021, &wait), GW_ADMIT_OPEN);
    assert_int_equal(wait, 0);
    gw_inst_done(a, 1022, -1, 0);
    assert_int_equal(gw_inst_admit(a, 1023, &wait), GW_ADMIT_OK);
    gw_inst_done(a, 1030, 1, 7);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 1030, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_CLOSED);
    assert_int_equal(st.active, 0);
    /* counted with the upstream label; the route's own series has upstream="" */
    assert_true(metric_has("weft_breaker_transitions_total{route=\"r\",upstream=\"10.0.0.1:80\","
                           "from=\"closed\",to=\"open\",reason=\"consecutive_failures\"} 1\n"));
    assert_true(metric_has("weft_breaker_transitions_total{route=\"r\",upstream=\"10.0.0.1:80\","
                           "from=\"half_open\",to=\"closed\",reason=\"half_open_success\"} 1\n"));
    assert_true(metric_has("weft_breaker_state{route=\"r\",upstream=\"10.0.0.1:80\"} 0\n"));
    assert_true(metric_has("weft_breaker_state{route=\"r\",upstream=\"\"} 0\n"));
    /* the whole list */
    unsigned seen = 0;
    gw_policy_foreach_upstream(p, 1030, count, &seen);
    assert_int_equal(seen, 3); /* 10.0.0.1:80, :81, 10.0.0.2:80 */
    free_route(r);
}

/* The lock-free path for successes ("quiet") must not change what the breaker decides: a
 * success after a failure still breaks the run of failures; with a rate rule every success
 * is counted in the window. */
static void test_quiet_successes(void **state)
{
    (void)state;
    gw_route_t *r = mk_route("q");
    r->breaker = (gw_breaker_conf_t){.on = true,
                                     .consecutive_failures = 2,
                                     .window_ms = 10000,
                                     .min_requests = 100,
                                     .open_for_ms = 1000,
                                     .open_for_max_ms = 1000,
                                     .half_open_requests = 1};
    gw_policy_t *p = mk_policy(r);
    gw_inst_t *a = inst(p, "10.0.0.1", 80, 0);
    uint64_t wait;
    gw_upstream_state_t st;
    const int run[] = {1, 1, 0, 1, 0, 1, 1, 0}; /* never two failures in a row */
    for (unsigned k = 0; k < sizeof(run) / sizeof(run[0]); k++) {
        assert_int_equal(gw_inst_admit(a, 10 + k, &wait), GW_ADMIT_OK);
        assert_false(gw_inst_done(a, 10 + k, run[k], 1)); /* still closed */
        gw_policy_record(p, 10 + k, run[k], 1);            /* the route's too */
    }
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 20, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_CLOSED);
    assert_int_equal(st.stats.consecutive_failures, 1);
    assert_int_equal(weft_breaker_state(p->breaker), WEFT_BREAKER_CLOSED);
    assert_int_equal(gw_inst_admit(a, 30, &wait), GW_ADMIT_OK);
    assert_true(gw_inst_done(a, 30, 0, 1)); /* this failure opened it */
    gw_policy_record(p, 30, false, 1);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 31, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_OPEN);
    assert_int_equal(weft_breaker_state(p->breaker), WEFT_BREAKER_OPEN);
    bool open = false;
    assert_int_equal(gw_policy_allow(p, 31, &wait, &open), 0); /* the locked path again */
    assert_true(open);
    free_route(r);
    /* a rate rule reads the window: every success is counted there */
    r = mk_route("rate");
    r->breaker = (gw_breaker_conf_t){.on = true,
                                     .failure_rate = 50,
                                     .window_ms = 10000,
                                     .min_requests = 4,
                                     .open_for_ms = 1000,
                                     .open_for_max_ms = 1000,
                                     .half_open_requests = 1};
    p = mk_policy(r);
    a = inst(p, "10.0.0.1", 80, 0);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(gw_inst_admit(a, 10, &wait), GW_ADMIT_OK);
        gw_inst_done(a, 10, 1, 1);
    }
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 10, &st), 0);
    assert_int_equal(st.stats.window_calls, 3);
    for (int k = 0; k < 2; k++) { /* 2 of 5: 40%, below 50% */
        assert_int_equal(gw_inst_admit(a, 11, &wait), GW_ADMIT_OK);
        gw_inst_done(a, 11, 0, 1);
    }
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 11, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_CLOSED);
    assert_int_equal(gw_inst_admit(a, 12, &wait), GW_ADMIT_OK); /* 3 of 6: 50%, opens */
    gw_inst_done(a, 12, 0, 1);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 12, &st), 0);
    assert_int_equal(st.state, WEFT_BREAKER_OPEN);
    free_route(r);
}

/* ---- max_requests, exact under threads ---- */

typedef struct race_s {
    gw_inst_t *i;
    _Atomic unsigned in, most, admitted, refused;
} race_t;

static void *racer(void *arg)
{
    race_t *r = arg;
    for (int k = 0; k < 20000; k++) {
        uint64_t wait;
        if (gw_inst_admit(r->i, 1, &wait) != GW_ADMIT_OK) {
            atomic_fetch_add(&r->refused, 1);
            continue;
        }
        unsigned now = atomic_fetch_add(&r->in, 1) + 1;
        for (unsigned m = atomic_load(&r->most); now > m;)
            if (atomic_compare_exchange_weak(&r->most, &m, now)) break;
        atomic_fetch_add(&r->admitted, 1);
        atomic_fetch_sub(&r->in, 1);
        gw_inst_done(r->i, 1, 1, 0);
    }
    return NULL;
}

static void test_max_requests(void **state)
{
    (void)state;
    gw_route_t *r = mk_route("lim");
    r->limits = (gw_limits_conf_t){.on = true, .max_requests = 2};
    gw_policy_t *p = mk_policy(r);
    assert_null(p->breaker); /* limits alone: no breaker */
    gw_inst_t *a = inst(p, "10.0.0.1", 80, 0);
    assert_non_null(a);
    uint64_t wait;
    assert_int_equal(gw_inst_admit(a, 1, &wait), GW_ADMIT_OK);
    assert_int_equal(gw_inst_admit(a, 1, &wait), GW_ADMIT_OK);
    assert_int_equal(gw_inst_admit(a, 1, &wait), GW_ADMIT_FULL);
    gw_upstream_state_t st;
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 1, &st), 0);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.max_requests, 2);
    assert_false(st.breaker);
    gw_inst_done(a, 2, 0, 1);
    assert_int_equal(gw_inst_admit(a, 2, &wait), GW_ADMIT_OK);
    gw_inst_done(a, 2, 1, 1);
    gw_inst_done(a, 2, 1, 1);
    /* four threads: never more than 2 at once, and all admitted ones counted back */
    race_t rc = {.i = a};
    pthread_t t[4];
    for (int k = 0; k < 4; k++) pthread_create(&t[k], NULL, racer, &rc);
    for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
    assert_true(atomic_load(&rc.most) <= 2);
    assert_int_equal(atomic_load(&rc.admitted) + atomic_load(&rc.refused), 4 * 20000);
    assert_true(atomic_load(&rc.admitted) >= 20000);
    assert_int_equal(gw_policy_upstream(p, "10.0.0.1", 80, 1, &st), 0);
    assert_int_equal(st.active, 0);
    free_route(r);
}

/* ---- bounded: GW_INST_MAX, eviction of the unused ---- */

static void test_bounded(void **state)
{
    (void)state;
    gw_route_t *r = mk_route("many");
    r->limits = (gw_limits_conf_t){.on = true, .max_requests = 100};
    gw_policy_t *p = mk_policy(r);
    char host[32];
    for (int k = 0; k < GW_INST_MAX; k++) {
        snprintf(host, sizeof(host), "10.1.%d.%d", k / 256, k % 256);
        assert_non_null(inst(p, host, 80, 1));
    }
    /* a try in flight to #9 */
    gw_inst_t *nine = inst(p, "10.1.0.9", 80, 1);
    uint64_t wait;
    assert_int_equal(gw_inst_admit(nine, 1, &wait), GW_ADMIT_OK);
    /* every one used lately: a newcomer goes without */
    for (int k = 0; k < GW_INST_MAX; k++) {
        if (k == 7 || k == 9) continue;
        snprintf(host, sizeof(host), "10.1.%d.%d", k / 256, k % 256);
        assert_non_null(inst(p, host, 80, 2000)); /* used at 2000 */
    }
    assert_null(inst(p, "10.2.0.1", 80, 2000));
    /* GW_INST_IDLE_MS later #7 and #9 have been unused that long; #9 has a try in flight,
     * so #7 gives its place */
    uint64_t later = 1 + GW_INST_IDLE_MS;
    gw_inst_t *fresh = inst(p, "10.2.0.1", 80, later);
    assert_non_null(fresh);
    gw_upstream_state_t st;
    assert_int_equal(gw_policy_upstream(p, "10.1.0.7", 80, later, &st), WEFT_ENOENT);
    assert_int_equal(gw_policy_upstream(p, "10.1.0.9", 80, later, &st), 0);
    assert_int_equal(st.active, 1);
    assert_int_equal(gw_policy_upstream(p, "10.2.0.1", 80, later, &st), 0);
    /* still full: the next newcomer waits (no one else unused long enough) */
    assert_null(inst(p, "10.2.0.2", 80, later + 1));
    gw_inst_done(nine, later, 1, 1);
    free_route(r);
}

/* ---- the ring ---- */

static void test_ring(void **state)
{
    (void)state;
    static const char *const hosts[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"};
    gw_endpoint_t e[5], f[4];
    for (int k = 0; k < 5; k++) e[k] = (gw_endpoint_t){hosts[k], 8080, 1};
    for (int k = 0, j = 0; k < 5; k++)
        if (k != 2) f[j++] = e[k];
    weft_ring_t *r5, *r4;
    assert_int_equal(gw_ring_build(e, 5, &r5), 0);
    weft_ring_t *none = r5;
    assert_int_equal(gw_ring_build(e, 0, &none), WEFT_EINVAL);
    assert_null(none);
    assert_int_equal(gw_ring_build(f, 4, &r4), 0);
    unsigned moved = 0, on2 = 0, share[5] = {0};
    for (int k = 0; k < 10000; k++) {
        char key[32];
        snprintf(key, sizeof(key), "user-%d", k);
        uint64_t h = weft_ring_hash(key, strlen(key));
        int a = weft_ring_pick(r5, h, NULL, 0), b = weft_ring_pick(r4, h, NULL, 0);
        assert_int_equal(a, weft_ring_pick(r5, h, NULL, 0)); /* the same key, the same one */
        share[a]++;
        const char *ha = e[a].host, *hb = f[b].host;
        if (a == 2) {
            on2++;
            continue;
        }
        if (strcmp(ha, hb) != 0) moved++;
    }
    assert_int_equal(moved, 0); /* only the removed endpoint's keys moved */
    assert_in_range(on2, 1200, 2800);
    for (int k = 0; k < 5; k++) assert_in_range(share[k], 1200, 2800);
    weft_ring_free(r5);
    weft_ring_free(r4);
    /* a service's ring, cached per version */
    gw_route_t *rt = mk_route("ring");
    rt->lb = GW_LB_RING_HASH;
    rt->service = strdup("svc");
    gw_policy_t *p = mk_policy(rt);
    weft_ring_t *built;
    assert_int_equal(gw_ring_build(e, 5, &built), 0);
    weft_snap_read_lock();
    assert_null(gw_policy_ring_get(p, 7, 5));
    assert_ptr_equal(gw_policy_ring_put(p, 7, 5, built), built);
    assert_ptr_equal(gw_policy_ring_get(p, 7, 5), built);
    assert_null(gw_policy_ring_get(p, 8, 5));
    assert_null(gw_policy_ring_get(p, 7, 4));
    weft_snap_read_unlock();
    free_route(rt);
    /* static targets: built with the table */
    rt = calloc(1, sizeof(*rt));
    rt->name = strdup("static");
    rt->path = strdup("/");
    rt->path_len = 1;
    rt->lb = GW_LB_RING_HASH;
    rt->targets = calloc(2, sizeof(gw_target_t));
    rt->ntargets = 2;
    for (int k = 0; k < 2; k++) {
        snprintf(rt->targets[k].host, sizeof(rt->targets[k].host), "%s", hosts[k]);
        rt->targets[k].port = 80;
        rt->targets[k].weight = 1;
    }
    gw_table_t *t = gw_table_new(rt, 1); /* owns rt now */
    assert_non_null(t);
    assert_non_null(t->routes[0].ring);
    assert_int_equal(weft_ring_points(t->routes[0].ring), 200);
    p = mk_policy(&t->routes[0]);
    assert_false(p->track); /* no breaker, no limits: no state per instance */
    weft_snap_read_lock();
    assert_null(gw_policy_instance(p, "10.0.0.1", 80, 1));
    weft_snap_read_unlock();
    weft_snap_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_breakers),
        cmocka_unit_test(test_quiet_successes),
        cmocka_unit_test(test_max_requests),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_ring),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
