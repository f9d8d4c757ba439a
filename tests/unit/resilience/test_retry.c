/*
 * test_retry.c - the retry budget and full-jitter backoff (src/resilience/retry.c): the
 * floor of min_retries, the ratio of requests in flight, ends freeing room, exhaustion
 * counted, the limit holding under four threads, and the backoff's bounds at every attempt.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "weft/balance.h"
#include "weft/breaker.h"

static void test_min_retries(void **state)
{
    (void)state;
    weft_retry_budget_t *rb = NULL;
    assert_int_equal(weft_retry_budget_new(NULL, &rb, NULL, 0), 0); /* 20%, min 3 */
    for (int i = 0; i < 3; i++) assert_int_equal(weft_retry_budget_try_retry(rb), 1);
    assert_int_equal(weft_retry_budget_try_retry(rb), 0);
    weft_retry_budget_retry_end(rb);
    assert_int_equal(weft_retry_budget_try_retry(rb), 1);
    assert_int_equal(weft_retry_budget_try_retry(rb), 0);
    weft_retry_budget_stats_t st;
    weft_retry_budget_stats(rb, &st);
    assert_int_equal(st.retries_active, 3);
    assert_int_equal(st.retries, 4);
    assert_int_equal(st.exhausted, 2);
    weft_retry_budget_free(rb);
}

static void test_ratio(void **state)
{
    (void)state;
    weft_retry_budget_options_t o;
    weft_retry_budget_options_init(&o);
    assert_int_equal(o.ratio, 20);
    assert_int_equal(o.min_retries, 3);
    weft_retry_budget_t *rb = NULL;
    assert_int_equal(weft_retry_budget_new(&o, &rb, NULL, 0), 0);
    for (int i = 0; i < 100; i++) weft_retry_budget_request_start(rb);
    for (int i = 0; i < 20; i++) assert_int_equal(weft_retry_budget_try_retry(rb), 1);
    assert_int_equal(weft_retry_budget_try_retry(rb), 0);
    /* requests ending shrink the budget: 50 in flight allow 10, and 20 are out */
    for (int i = 0; i < 50; i++) weft_retry_budget_request_end(rb);
    for (int i = 0; i < 10; i++) weft_retry_budget_retry_end(rb);
    assert_int_equal(weft_retry_budget_try_retry(rb), 0); /* 10 of 10 */
    weft_retry_budget_retry_end(rb);
    assert_int_equal(weft_retry_budget_try_retry(rb), 1);
    /* unmatched ends do not wrap */
    for (int i = 0; i < 1000; i++) {
        weft_retry_budget_request_end(rb);
        weft_retry_budget_retry_end(rb);
    }
    weft_retry_budget_stats_t st;
    weft_retry_budget_stats(rb, &st);
    assert_int_equal(st.requests_active, 0);
    assert_int_equal(st.retries_active, 0);
    weft_retry_budget_free(rb);

    char err[64];
    o.ratio = 1001;
    assert_int_equal(weft_retry_budget_new(&o, &rb, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "ratio"));
}

typedef struct {
    weft_retry_budget_t *rb;
    unsigned got;
} arg_t;

static void *grab(void *p)
{
    arg_t *a = p;
    for (int i = 0; i < 10000; i++) a->got += weft_retry_budget_try_retry(a->rb);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    weft_retry_budget_t *rb = NULL;
    assert_int_equal(weft_retry_budget_new(NULL, &rb, NULL, 0), 0);
    for (int i = 0; i < 1000; i++) weft_retry_budget_request_start(rb);
    pthread_t th[4];
    arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (arg_t){rb, 0};
        assert_int_equal(pthread_create(&th[i], NULL, grab, &a[i]), 0);
    }
    unsigned total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += a[i].got;
    }
    assert_int_equal(total, 200); /* 20% of 1000, exactly */
    weft_retry_budget_stats_t st;
    weft_retry_budget_stats(rb, &st);
    assert_int_equal(st.exhausted, 40000 - 200);
    weft_retry_budget_free(rb);
}

static void test_backoff(void **state)
{
    (void)state;
    uint64_t rng = 1;
    for (unsigned attempt = 0; attempt < 200; attempt++) {
        uint64_t ceil = attempt < 10 ? (uint64_t)100 << attempt : 30000;
        if (ceil > 30000) ceil = 30000;
        uint64_t max = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t d = weft_backoff_full_jitter(100, 30000, attempt, weft_balance_rand(&rng));
            assert_true(d <= ceil);
            if (d > max) max = d;
        }
        assert_true(max >= ceil * 9 / 10); /* the whole range is used */
    }
    assert_int_equal(weft_backoff_full_jitter(100, 30000, 0, 100), 100);
    assert_int_equal(weft_backoff_full_jitter(100, 30000, 0, 101), 0);
    assert_int_equal(weft_backoff_full_jitter(0, 30000, 5, 12345), 0);
    assert_int_equal(weft_backoff_full_jitter(100, 50, 0, 50), 50); /* cap below base */
    assert_true(weft_backoff_full_jitter(UINT64_MAX, UINT64_MAX, 63, UINT64_MAX) == UINT64_MAX);
    assert_true(weft_backoff_full_jitter(3, UINT64_MAX, 4000000000u, 7) == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_retries),
        cmocka_unit_test(test_ratio),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
