/*
 * test_metrics.c - families, children, shards, exposition text, promtool.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/metrics.h"

/* The registry's own dropped-label-sets counter comes first in every exposition. */
#define DROPPED                                                                                    \
    "# HELP weft_metrics_label_sets_dropped_total Label sets refused because a family "            \
    "reached its limit.\n# TYPE weft_metrics_label_sets_dropped_total counter\n"                   \
    "weft_metrics_label_sets_dropped_total 0\n"

static char *expo(weft_metrics_registry_t *reg)
{
    char *out;
    size_t len;
    assert_int_equal(weft_metrics_write(reg, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_names(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *f;
    const char *bad_label[] = {"__x"};
    const char *dup[] = {"a", "a"};
    const char *le[] = {"le"};
    assert_int_equal(weft_metrics_counter_new(reg, "9bad", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_counter_new(reg, "bad-name", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_counter_new(reg, "", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_counter_new(reg, "ok_total", "", bad_label, 1, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_counter_new(reg, "ok_total", "", dup, 2, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", le, 1, NULL, 0, &f), WEFT_EINVAL);
    double badb[] = {1, 1};
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", NULL, 0, badb, 2, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_counter_new(reg, "ns:ok_total", "", NULL, 0, &f), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "ns:ok_total", "", NULL, 0, &f), WEFT_EEXIST);
    weft_metrics_registry_free(reg);
}

static void test_exposition_exact(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *g, *h;
    const char *lbl[] = {"method", "path"};
    assert_int_equal(
        weft_metrics_counter_new(reg, "req_total", "Requests.\nSecond \\ line", lbl, 2, &c), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "temp", "Temp.", NULL, 0, &g), 0);
    double bounds[] = {0.1, 1, 10};
    assert_int_equal(
        weft_metrics_histogram_new(reg, "lat_seconds", "Latency.", NULL, 0, bounds, 3, &h), 0);
    const char *v1[] = {"GET", "/a"};
    const char *v2[] = {"POST", "quote\" back\\ nl\n"};
    weft_counter_t *c1 = weft_metrics_counter_child(c, v1);
    weft_counter_t *c2 = weft_metrics_counter_child(c, v2);
    assert_ptr_equal(c1, weft_metrics_counter_child(c, v1));
    weft_counter_inc(c1);
    weft_counter_inc(c1);
    weft_counter_add(c2, 2.5);
    weft_counter_add(c2, -7); /* ignored */
    weft_gauge_t *g1 = weft_metrics_gauge_child(g, NULL);
    weft_gauge_add(g1, 5);
    weft_gauge_set(g1, -3);
    weft_gauge_add(g1, 1);
    weft_histogram_t *h1 = weft_metrics_histogram_child(h, NULL);
    weft_histogram_observe(h1, 0.05);
    weft_histogram_observe(h1, 0.1); /* le is inclusive */
    weft_histogram_observe(h1, 5);
    weft_histogram_observe(h1, 100);
    char *out = expo(reg);
    const char *want = DROPPED "# HELP req_total Requests.\\nSecond \\\\ line\n"
                               "# TYPE req_total counter\n"
                               "req_total{method=\"GET\",path=\"/a\"} 2\n"
                               "req_total{method=\"POST\",path=\"quote\\\" back\\\\ nl\\n\"} 2.5\n"
                               "# HELP temp Temp.\n"
                               "# TYPE temp gauge\n"
                               "temp -2\n"
                               "# HELP lat_seconds Latency.\n"
                               "# TYPE lat_seconds histogram\n"
                               "lat_seconds_bucket{le=\"0.1\"} 2\n"
                               "lat_seconds_bucket{le=\"1\"} 2\n"
                               "lat_seconds_bucket{le=\"10\"} 3\n"
                               "lat_seconds_bucket{le=\"+Inf\"} 4\n"
                               "lat_seconds_sum 105.15\n"
                               "lat_seconds_count 4\n";
    assert_string_equal(out, want);
    free(out);
    /* wrong type and missing values give no handle */
    assert_null(weft_metrics_gauge_child(c, v1));
    assert_null(weft_metrics_counter_child(c, NULL));
    weft_metrics_registry_free(reg);
}

static weft_counter_t *shared_counter;
static weft_histogram_t *shared_hist;

static void *hammer(void *arg)
{
    if (arg) weft_metrics_thread_register(); /* half the threads share slot 0 */
    for (int i = 0; i < 100000; i++) {
        weft_counter_inc(shared_counter);
        weft_histogram_observe(shared_hist, 0.003);
    }
    return NULL;
}

static void test_threads_sum_exactly(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *h;
    assert_int_equal(weft_metrics_counter_new(reg, "n_total", "n", NULL, 0, &c), 0);
    assert_int_equal(weft_metrics_histogram_new(reg, "d_seconds", "d", NULL, 0, NULL, 0, &h), 0);
    shared_counter = weft_metrics_counter_child(c, NULL);
    shared_hist = weft_metrics_histogram_child(h, NULL);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, hammer, (i & 1) ? (void *)1 : NULL);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    assert_true(weft_metrics_value(shared_counter) == 800000.0);
    uint64_t count;
    double sum;
    weft_histogram_totals(shared_hist, &count, &sum);
    assert_int_equal(count, 800000);
    char *out = expo(reg);
    assert_non_null(strstr(out, "d_seconds_bucket{le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(out, "d_seconds_bucket{le=\"0.005\"} 800000\n"));
    assert_non_null(strstr(out, "d_seconds_count 800000\n"));
    free(out);
    weft_metrics_registry_free(reg);
}

static double seven(void *arg)
{
    return 7;
}

static void test_callbacks_limits_process(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    assert_int_equal(weft_metrics_gauge_fn(reg, "seven", "Seven.", seven, NULL), 0);
    assert_int_equal(weft_metrics_register_process(reg), 0);
    weft_metrics_family_t *c;
    const char *lbl[] = {"id"};
    assert_int_equal(weft_metrics_counter_new(reg, "many_total", "m", lbl, 1, &c), 0);
    char id[16];
    const char *v[] = {id};
    for (int i = 0; i < WEFT_METRICS_MAX_CHILDREN; i++) {
        snprintf(id, sizeof(id), "%d", i);
        assert_non_null(weft_metrics_counter_child(c, v));
    }
    snprintf(id, sizeof(id), "x");
    assert_null(weft_metrics_counter_child(c, v));
    char *out = expo(reg);
    assert_non_null(strstr(out, "\nseven 7\n"));
    assert_non_null(strstr(out, "weft_metrics_label_sets_dropped_total 1\n"));
    assert_non_null(strstr(out, "\nprocess_resident_memory_bytes "));
    assert_null(strstr(out, "\nprocess_resident_memory_bytes 0\n"));
    assert_null(strstr(out, "\nprocess_cpu_seconds_total -"));
    assert_non_null(strstr(out, "\nprocess_open_fds "));
    assert_non_null(strstr(out, "\nprocess_start_time_seconds 1"));
    free(out);
    weft_metrics_registry_free(reg);
}

static void test_promtool(void **state)
{
    if (access("/usr/bin/promtool", X_OK) != 0) {
        skip();
        return;
    }
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *h;
    const char *lbl[] = {"method", "route", "code"};
    assert_int_equal(weft_metrics_counter_new(reg, "http_requests_total", "Requests.", lbl, 3, &c),
                     0);
    assert_int_equal(weft_metrics_histogram_new(reg, "http_request_duration_seconds", "Latency.",
                                                lbl, 3, NULL, 0, &h),
                     0);
    assert_int_equal(weft_metrics_register_process(reg), 0);
    const char *v[] = {"GET", "/x/:id", "200"};
    weft_counter_inc(weft_metrics_counter_child(c, v));
    weft_histogram_observe(weft_metrics_histogram_child(h, v), 0.01);
    char *out = expo(reg);
    FILE *p = popen("/usr/bin/promtool check metrics >/dev/null 2>&1", "w");
    assert_non_null(p);
    fputs(out, p);
    assert_int_equal(pclose(p), 0);
    free(out);
    weft_metrics_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_exposition_exact),
        cmocka_unit_test(test_threads_sum_exactly),
        cmocka_unit_test(test_callbacks_limits_process),
        cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
