/*
 * test_history.c - the gateway history's ring (src/gateway/history.h) on a fake clock: rates
 * from counter deltas (over the time that passed), quantiles from histogram bucket deltas,
 * the first sample of a key, wrap-around after `samples` columns, ?since filtering, the
 * bounds on keys (left out and counted, an idle key's slot given to a new one), and the
 * JSON the API answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "gateway/history.h"

static const double bounds[] = {0.001, 0.01, 0.1, 1}; /* seconds */

static gw_hist_t *mk(size_t samples, size_t routes, size_t ups)
{
    gw_hist_options_t o = {.samples = samples,
                           .max_routes = routes,
                           .max_upstreams = ups,
                           .bounds = bounds,
                           .nbounds = 4};
    gw_hist_t *h;
    assert_int_equal(gw_hist_new(&o, &h), 0);
    return h;
}

/* The answer for (upstreams, since, route) as parsed JSON. */
static json_t *answer(gw_hist_t *h, bool upstreams, uint64_t since, const char *route)
{
    weft_buf_t b;
    weft_buf_init(&b, 1 << 24);
    gw_hist_json(h, upstreams, since, route, &b);
    assert_false(b.failed);
    json_error_t e;
    json_t *j = json_loadb(b.p, b.len, 0, &e);
    if (!j) fail_msg("bad JSON (%s): %.*s", e.text, (int)b.len, b.p);
    weft_buf_free(&b);
    return j;
}

/* Series `name` of the key at index k of j's list, value i (NAN for null). */
static double val(json_t *j, const char *list, size_t k, const char *name, size_t i)
{
    json_t *v = json_array_get(json_object_get(json_array_get(json_object_get(j, list), k), name), i);
    assert_non_null(v);
    return json_is_null(v) ? NAN : json_number_value(v);
}

/* One sample with route r's cumulative counters. */
static void tick(gw_hist_t *h, uint64_t t, const char *r, double req, double err,
                 const uint64_t *buckets)
{
    gw_hist_begin(h);
    gw_hist_slot_t *s = gw_hist_key(h, r, NULL, true);
    assert_non_null(s);
    s->cum[GW_HC_REQ] = req;
    s->cum[GW_HC_ERR] = err;
    if (buckets) memcpy(s->buckets, buckets, 5 * sizeof(uint64_t));
    gw_hist_commit(h, t, t, 0, 3);
}

static void test_quantile(void **state)
{
    (void)state;
    /* 100 observations: 50 in (0, 1ms], 40 in (1, 10ms], 10 in (10, 100ms] */
    uint64_t b[5] = {50, 40, 10, 0, 0};
    assert_float_equal(gw_hist_quantile(0.5, bounds, 4, b), 0.001, 1e-12);
    /* rank 95: 5 of the 10 in (0.01, 0.1]: half way */
    assert_float_equal(gw_hist_quantile(0.95, bounds, 4, b), 0.055, 1e-12);
    /* rank 70: 20 of the 40 in (0.001, 0.01] */
    assert_float_equal(gw_hist_quantile(0.7, bounds, 4, b), 0.0055, 1e-12);
    /* in +Inf: the largest finite bound */
    uint64_t inf[5] = {0, 0, 0, 0, 3};
    assert_float_equal(gw_hist_quantile(0.99, bounds, 4, inf), 1, 1e-12);
    uint64_t none[5] = {0};
    assert_true(isnan(gw_hist_quantile(0.5, bounds, 4, none)));
}

static void test_rates_and_percentiles_from_deltas(void **state)
{
    (void)state;
    gw_hist_t *h = mk(10, 4, 4);
    uint64_t b0[5] = {1000, 0, 0, 0, 0}; /* history from before: must not count */
    tick(h, 1000, "api", 5000, 100, b0);
    /* +100 requests, 25 errors; latencies all in (10ms, 100ms] */
    uint64_t b1[5] = {1000, 0, 100, 0, 0};
    tick(h, 2000, "api", 5100, 125, b1);
    /* 2 s later (a late tick): +100 over 2 s is 50/s; no latency observed */
    tick(h, 4000, "api", 5200, 125, b1);
    json_t *j = answer(h, false, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "times")), 3);
    /* the first sample has counts from before it: null, not a spike */
    assert_true(isnan(val(j, "routes", 0, "requests_per_s", 0)));
    assert_float_equal(val(j, "routes", 0, "requests_per_s", 1), 100, 1e-6);
    assert_float_equal(val(j, "routes", 0, "error_ratio", 1), 0.25, 1e-6);
    assert_float_equal(val(j, "routes", 0, "p50_ms", 1), 55, 1e-3);
    assert_float_equal(val(j, "routes", 0, "p99_ms", 1), 0.01 * 1000 + 90 * 0.99, 1e-2);
    assert_float_equal(val(j, "routes", 0, "requests_per_s", 2), 50, 1e-6);
    assert_float_equal(val(j, "routes", 0, "error_ratio", 2), 0, 1e-6);
    assert_true(isnan(val(j, "routes", 0, "p50_ms", 2))); /* no observation: null */
    json_decref(j);
    gw_hist_free(h);
}

static void test_first_sample_of_a_new_key(void **state)
{
    (void)state;
    gw_hist_t *h = mk(10, 4, 4);
    tick(h, 1000, "a", 0, 0, NULL); /* zeros: a rate of 0 at once */
    /* b first seen after the first sample, with nothing ever left out: its counts are new */
    gw_hist_begin(h);
    gw_hist_key(h, "a", NULL, true);
    gw_hist_slot_t *s = gw_hist_key(h, "b", NULL, false);
    s->cum[GW_HC_REQ] = 7;
    gw_hist_commit(h, 2000, 2000, 0, 3);
    json_t *j = answer(h, false, 0, "b");
    assert_int_equal(json_array_size(json_object_get(j, "routes")), 1);
    assert_float_equal(val(j, "routes", 0, "requests_per_s", 1), 7, 1e-6);
    assert_true(isnan(val(j, "routes", 0, "requests_per_s", 0))); /* before it existed */
    json_decref(j);
    j = answer(h, false, 0, "a");
    assert_float_equal(val(j, "routes", 0, "requests_per_s", 0), 0, 1e-6);
    json_decref(j);
    gw_hist_free(h);
}

static void test_wrap_around_and_since(void **state)
{
    (void)state;
    gw_hist_t *h = mk(5, 2, 2);
    for (int i = 0; i < 13; i++) tick(h, 1000 * (uint64_t)(i + 1), "r", 10.0 * i, 0, NULL);
    assert_int_equal(gw_hist_samples(h), 13);
    json_t *j = answer(h, false, 0, NULL);
    json_t *times = json_object_get(j, "times");
    /* the last 5 samples, oldest first */
    assert_int_equal(json_array_size(times), 5);
    for (size_t k = 0; k < 5; k++)
        assert_int_equal(json_integer_value(json_array_get(times, k)), 1000 * (9 + k));
    for (size_t k = 0; k < 5; k++)
        assert_float_equal(val(j, "routes", 0, "requests_per_s", k), 10, 1e-6);
    assert_int_equal(json_integer_value(json_object_get(j, "now_ms")), 13000);
    assert_int_equal(json_integer_value(json_object_get(j, "samples_max")), 5);
    json_decref(j);
    /* since: strictly newer */
    j = answer(h, false, 11000, NULL);
    times = json_object_get(j, "times");
    assert_int_equal(json_array_size(times), 2);
    assert_int_equal(json_integer_value(json_array_get(times, 0)), 12000);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(j, "routes"), 0),
                                                     "p95_ms")),
                     2);
    json_decref(j);
    j = answer(h, false, 13000, NULL); /* nothing new: empty arrays */
    assert_int_equal(json_array_size(json_object_get(j, "times")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "routes")), 1);
    json_decref(j);
    j = answer(h, false, 1, NULL); /* older than the ring: all of it */
    assert_int_equal(json_array_size(json_object_get(j, "times")), 5);
    json_decref(j);
    /* a wall clock stepped back: times still increase, and the rate is per second of the
     * monotonic clock */
    gw_hist_begin(h);
    gw_hist_key(h, "r", NULL, true)->cum[GW_HC_REQ] = 140;
    gw_hist_commit(h, 5000, 15000, 0, 3);
    j = answer(h, false, 13000, NULL);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "times"), 0)), 13001);
    assert_float_equal(val(j, "routes", 0, "requests_per_s", 0), 10, 1e-6); /* 20 in 2 s */
    json_decref(j);
    gw_hist_free(h);
}

static void test_bounds_left_out_and_eviction(void **state)
{
    (void)state;
    gw_hist_t *h = mk(3, 2, 1);
    size_t bytes = gw_hist_bytes(h);
    /* 2 route slots: a third route is left out and counted */
    gw_hist_begin(h);
    assert_non_null(gw_hist_key(h, "a", NULL, true));
    assert_non_null(gw_hist_key(h, "b", NULL, false));
    assert_null(gw_hist_key(h, "c", NULL, false));
    assert_null(gw_hist_key(h, "d", NULL, false));
    assert_non_null(gw_hist_key(h, "x", "1.2.3.4:80", true));
    assert_null(gw_hist_key(h, "x", "1.2.3.4:81", true));
    gw_hist_commit(h, 1000, 1000, 0, 3);
    assert_int_equal(gw_hist_left_out(h, false), 2);
    assert_int_equal(gw_hist_left_out(h, true), 1);
    json_t *j = answer(h, false, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "left_out")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "limit")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "routes")), 2);
    json_decref(j);
    /* b goes idle (not listed, not moving): after a whole ring its slot goes to c; a, listed,
     * keeps its own however long it is idle */
    for (uint64_t t = 2000; t <= 4000; t += 1000) {
        gw_hist_begin(h);
        gw_hist_key(h, "a", NULL, true);
        gw_hist_key(h, "b", NULL, false);
        gw_hist_commit(h, t, t, 0, 3);
    }
    gw_hist_begin(h);
    gw_hist_key(h, "a", NULL, true);
    gw_hist_slot_t *c = gw_hist_key(h, "c", NULL, false);
    assert_non_null(c);
    c->cum[GW_HC_REQ] = 4;
    gw_hist_commit(h, 5000, 5000, 0, 3);
    assert_int_equal(gw_hist_left_out(h, false), 0);
    j = answer(h, false, 0, NULL);
    json_t *routes = json_object_get(j, "routes");
    assert_int_equal(json_array_size(routes), 2);
    const char *n0 = json_string_value(json_object_get(json_array_get(routes, 0), "route"));
    const char *n1 = json_string_value(json_object_get(json_array_get(routes, 1), "route"));
    assert_true((!strcmp(n0, "a") && !strcmp(n1, "c")) || (!strcmp(n0, "c") && !strcmp(n1, "a")));
    /* c's columns before it came are null, and its first counts are not a rate (keys were
     * left out before: they may be old) */
    size_t ci = strcmp(n0, "c") == 0 ? 0 : 1;
    for (size_t k = 0; k < 3; k++) assert_true(isnan(val(j, "routes", ci, "requests_per_s", k)));
    json_decref(j);
    /* a name longer than a slot keeps is found again by its cut */
    char longname[300];
    for (size_t k = 0; k < sizeof(longname) - 1; k++) longname[k] = (char)('a' + k % 26);
    longname[sizeof(longname) - 1] = 0;
    gw_hist_t *h2 = mk(3, 100, 1);
    gw_hist_slot_t *first = NULL;
    for (uint64_t t = 1000; t <= 3000; t += 1000) {
        gw_hist_begin(h2);
        gw_hist_slot_t *s = gw_hist_key(h2, longname, NULL, false);
        assert_non_null(s);
        if (!first) first = s;
        assert_ptr_equal(s, first); /* the same slot, not one more each time */
        assert_int_equal(strlen(s->route), GW_HIST_ROUTE_MAX - 1);
        gw_hist_commit(h2, t, t, 0, 3);
    }
    gw_hist_free(h2);
    /* the memory never changed */
    assert_int_equal(gw_hist_bytes(h), bytes);
    gw_hist_free(h);
    /* the bounds on the options */
    gw_hist_options_t o = {.max_routes = 0, .max_upstreams = 1};
    gw_hist_t *bad;
    assert_int_equal(gw_hist_new(&o, &bad), WEFT_EINVAL);
    o.max_routes = GW_HIST_MAX_KEYS + 1;
    assert_int_equal(gw_hist_new(&o, &bad), WEFT_EINVAL);
    /* the default ring: 900 samples, the stated bytes per key */
    o = (gw_hist_options_t){.max_routes = 64, .max_upstreams = 64, .bounds = bounds, .nbounds = 4};
    assert_int_equal(gw_hist_new(&o, &h), 0);
    assert_true(gw_hist_bytes(h) >= 64 * (size_t)(GW_HR_N + GW_HU_N) * 900 * 4);
    assert_true(gw_hist_bytes(h) < 64 * (size_t)(GW_HR_N + GW_HU_N) * 900 * 4 + 256 * 1024);
    gw_hist_free(h);
}

static void test_upstream_gauges_and_unseen_keys(void **state)
{
    (void)state;
    gw_hist_t *h = mk(4, 2, 2);
    gw_hist_begin(h);
    gw_hist_slot_t *u = gw_hist_key(h, "r", "10.0.0.1:80", true);
    u->gauge[0] = 1;
    u->gauge[1] = 0.62;
    u->gauge[2] = 4500;
    u->cum[GW_HC_REQ] = 0;
    gw_hist_commit(h, 1000, 1000, 0, 3);
    gw_hist_begin(h); /* not seen this time: nulls, not the last values */
    gw_hist_commit(h, 2000, 2000, 0, 3);
    json_t *j = answer(h, true, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "series")), "upstreams");
    json_t *e = json_array_get(json_object_get(j, "upstreams"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "upstream")), "10.0.0.1:80");
    assert_float_equal(val(j, "upstreams", 0, "state", 0), 1, 1e-6);
    assert_float_equal(val(j, "upstreams", 0, "failure_rate", 0), 0.62, 1e-6);
    assert_float_equal(val(j, "upstreams", 0, "ms_until_half_open", 0), 4500, 1e-6);
    assert_float_equal(val(j, "upstreams", 0, "requests_per_s", 0), 0, 1e-6);
    for (int k = 0; k < 5; k++) {
        static const char *const n[] = {"state", "failure_rate", "ms_until_half_open",
                                        "requests_per_s", "error_ratio"};
        assert_true(isnan(val(j, "upstreams", 0, n[k], 1)));
    }
    json_decref(j);
    gw_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_rates_and_percentiles_from_deltas),
        cmocka_unit_test(test_first_sample_of_a_new_key),
        cmocka_unit_test(test_wrap_around_and_since),
        cmocka_unit_test(test_bounds_left_out_and_eviction),
        cmocka_unit_test(test_upstream_gauges_and_unseen_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
