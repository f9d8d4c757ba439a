/*
 * test_oom.c - fault injection: the metrics module compiled into this test with its
 * allocator calls redirected, then one scenario (every kind of family, labelled and
 * invalid-UTF-8 children, updates from a registered and an unregistered thread, an
 * exemplar, a scrape in each format)
 * re-run with the k-th allocation failing, for every k until a run completes without a
 * failure. Every run must fail cleanly: WEFT_ENOMEM or a NULL handle, never a crash, and
 * nothing leaked (ASan checks at exit). The complete run must give the reference text.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault_alloc.h"

#include "fault_alloc_begin.h"
#include "../../../src/core/buf.c" /* the exposition buffer grows here */
#include "../../../src/metrics/expose.c"
#include "../../../src/metrics/registry.c"
#include "fault_alloc_end.h"

static weft_counter_t *thread_counter;

static void *unregistered_inc(void *arg)
{
    weft_counter_inc(thread_counter); /* slot 0 */
    return NULL;
}

/* Runs the scenario; returns the exposition (malloc'd) or NULL when an allocation failed
 * on the way (after checking that the failure was reported as documented). */
static char *scenario(char **om)
{
    char *out = NULL;
    *om = NULL;
    size_t len = 0;
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    if (!reg) return NULL;
    weft_metrics_family_t *c, *g, *h;
    const char *lbl[] = {"a", "b"};
    double bounds[] = {1, 2};
    int err;
    if ((err = weft_metrics_counter_new(reg, "c_total", "C.", lbl, 2, &c)) ||
        (err = weft_metrics_gauge_new(reg, "g", "G.", NULL, 0, &g)) ||
        (err = weft_metrics_histogram_new(reg, "h", "H.", lbl, 2, bounds, 2, &h))) {
        assert_int_equal(err, WEFT_ENOMEM);
        goto done;
    }
    const char *v1[] = {"x", "y"};
    const char *v2[] = {"bad\xff", "z"};
    weft_counter_t *c1 = weft_metrics_counter_child(c, v1);
    weft_counter_t *c2 = weft_metrics_counter_child(c, v2);
    weft_histogram_t *h1 = weft_metrics_histogram_child(h, v1);
    weft_gauge_t *g1 = weft_metrics_gauge_child(g, NULL);
    assert_non_null(g1); /* made with the family */
    if (!c1 || !c2 || !h1) goto done;
    weft_counter_inc(c1); /* a failed cell allocation drops the update */
    weft_counter_add(c2, 2);
    weft_gauge_set(g1, 4);
    weft_histogram_observe(h1, 1.5);
    static const uint8_t tid[16] = {[0] = 0xab, [15] = 1}, sid[8] = {[7] = 2};
    weft_histogram_observe_exemplar(h1, 0.5, tid, sid); /* the exemplars' array: dropped */
    thread_counter = c1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, unregistered_inc, NULL), 0);
    pthread_join(t, NULL);
    err = weft_metrics_write(reg, &out, &len);
    if (err) {
        assert_int_equal(err, WEFT_ENOMEM);
        out = NULL;
    }
    err = weft_metrics_write_format(reg, WEFT_METRICS_OPENMETRICS, om, &len);
    if (err) {
        assert_int_equal(err, WEFT_ENOMEM);
        *om = NULL;
    } else {
        assert_non_null(strstr(*om, "\n# EOF\n"));
    }
done:
    weft_metrics_registry_free(reg);
    return out;
}

static void test_every_allocation_fails_once(void **state)
{
    weft_metrics_thread_register();
    alloc_countdown = -1;
    char *om;
    char *ref = scenario(&om);
    assert_non_null(ref);
    assert_non_null(om);
    assert_non_null(strstr(om, "\nh_bucket{a=\"x\",b=\"y\",le=\"1\"} 1 # {trace_id=\"ab00000000000"
                               "0000000000000000001\",span_id=\"0000000000000002\"} 0.5 "));
    assert_non_null(strstr(ref, "\nh_bucket{a=\"x\",b=\"y\",le=\"1\"} 1\n"));
    free(om);
    assert_non_null(strstr(ref, "\nc_total{a=\"x\",b=\"y\"} 2\n"));
    assert_non_null(strstr(ref, "\nc_total{a=\"bad\xef\xbf\xbd\",b=\"z\"} 2\n"));
    int completed = 0;
    long k;
    for (k = 0; k < 10000; k++) {
        alloc_failures = 0;
        alloc_countdown = k;
        char *out = scenario(&om);
        bool injected = alloc_failures > 0;
        free(om);
        alloc_countdown = -1;
        if (!injected) { /* k is past the scenario's last allocation */
            assert_non_null(out);
            assert_string_equal(out, ref);
            free(out);
            completed = 1;
            break;
        }
        free(out); /* may be a complete text with an update dropped: fine */
    }
    assert_true(completed);
    assert_true(k > 10); /* the scenario did allocate: the injection was exercised */
    free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
