/*
 * test_breaker.c - the circuit breaker (src/resilience/breaker.c) on a fake clock: every
 * transition and its reason, the rates over the sliding window with the minimum volume,
 * buckets sliding out, half-open trials, open_for doubling to its cap, allow()'s wait, and
 * the option checks' messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "weft/breaker.h"

typedef struct log_s {
    unsigned n;
    weft_breaker_state_t from[32], to[32];
    weft_breaker_reason_t why[32];
    uint64_t at[32];
} log_t;

static void on_tr(void *data, weft_breaker_state_t from, weft_breaker_state_t to,
                  weft_breaker_reason_t why, uint64_t now)
{
    log_t *l = data;
    if (l->n >= 32) return;
    l->from[l->n] = from;
    l->to[l->n] = to;
    l->why[l->n] = why;
    l->at[l->n] = now;
    l->n++;
}

static weft_breaker_t *mk(weft_breaker_options_t *o, log_t *l)
{
    o->on_transition = on_tr;
    o->data = l;
    weft_breaker_t *b = NULL;
    char err[128];
    assert_int_equal(weft_breaker_new(o, &b, err, sizeof(err)), 0);
    return b;
}

/* allow + record in one, asserting the call was admitted */
static void call(weft_breaker_t *b, uint64_t now, int ok, uint64_t dur)
{
    uint64_t w = 99;
    assert_int_equal(weft_breaker_allow(b, now, &w), 1);
    assert_int_equal(w, 0);
    weft_breaker_record(b, now, ok, dur);
}

static void test_consecutive(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 3;
    o.failure_rate = 0;
    weft_breaker_t *b = mk(&o, &l);
    call(b, 0, 0, 1);
    call(b, 1, 0, 1);
    call(b, 2, 1, 1); /* a success resets the run */
    call(b, 3, 0, 1);
    call(b, 4, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    call(b, 5, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.from[0], WEFT_BREAKER_CLOSED);
    assert_int_equal(l.to[0], WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[0], WEFT_BREAKER_CONSECUTIVE_FAILURES);
    assert_int_equal(l.at[0], 5);
    uint64_t w = 0;
    assert_int_equal(weft_breaker_allow(b, 1005, &w), 0);
    assert_int_equal(w, 4000); /* open_for 5000 from t=5 */
    assert_int_equal(weft_breaker_ms_until_half_open(b, 1005), 4000);
    weft_breaker_stats_t st;
    weft_breaker_stats(b, 1005, &st);
    assert_int_equal(st.state, WEFT_BREAKER_OPEN);
    assert_int_equal(st.last_reason, WEFT_BREAKER_CONSECUTIVE_FAILURES);
    assert_int_equal(st.transitions, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.ms_until_half_open, 4000);
    assert_string_equal(weft_breaker_reason_name(st.last_reason), "consecutive_failures");
    assert_string_equal(weft_breaker_state_name(st.state), "open");
    /* the numbers behind the reason: the run that tripped it */
    assert_int_equal(st.trip_consecutive, 3);
    assert_int_equal(st.trip_calls, 6);
    assert_int_equal(st.trip_failures, 5);
    weft_breaker_free(b);
}

static void test_failure_rate_min_volume(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 0;
    o.failure_rate = 50;
    o.min_requests = 10;
    o.window_ms = 10000;
    weft_breaker_t *b = mk(&o, &l);
    /* 9 calls, all failures: below the volume, stays closed */
    for (int i = 0; i < 9; i++) call(b, 100 + i, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    weft_breaker_stats_t st;
    weft_breaker_stats(b, 200, &st);
    assert_int_equal(st.window_calls, 9);
    assert_int_equal(st.window_failures, 9);
    assert_int_equal(st.failure_rate, 100);
    /* the 10th is a success: 9/10 = 90% >= 50% with the volume reached */
    call(b, 300, 1, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[0], WEFT_BREAKER_FAILURE_RATE);
    /* the window it tripped on is kept (the window itself is cleared on opening) */
    weft_breaker_stats(b, 300, &st);
    assert_int_equal(st.window_calls, 0);
    assert_int_equal(st.trip_calls, 10);
    assert_int_equal(st.trip_failures, 9);
    assert_int_equal(st.trip_slow, 0);
    weft_breaker_free(b);

    /* exactly below the rate stays closed: 4 failures of 10 is 40% */
    log_t l2 = {0};
    b = mk(&o, &l2);
    for (int i = 0; i < 6; i++) call(b, 10 + i, 1, 1);
    for (int i = 0; i < 4; i++) call(b, 20 + i, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    call(b, 30, 0, 1); /* 5 of 11 = 45% */
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    call(b, 31, 0, 1); /* 6 of 12 = 50% */
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    assert_int_equal(l2.n, 1);
    weft_breaker_free(b);
}

static void test_slow_rate(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 0;
    o.failure_rate = 50;
    o.slow_call_rate = 60;
    o.slow_call_duration_ms = 200;
    o.min_requests = 5;
    weft_breaker_t *b = mk(&o, &l);
    call(b, 0, 1, 10);
    call(b, 1, 1, 199); /* just under: not slow */
    call(b, 2, 1, 200); /* at the threshold: slow */
    call(b, 3, 1, 500);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED); /* 4 < min_requests */
    call(b, 4, 1, 900);                                           /* 3 slow of 5 = 60% */
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[0], WEFT_BREAKER_SLOW_CALL_RATE);
    weft_breaker_free(b);
}

static void test_window_slides(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 0;
    o.failure_rate = 50;
    o.min_requests = 10;
    o.window_ms = 1000; /* buckets of 100 ms */
    weft_breaker_t *b = mk(&o, &l);
    for (int i = 0; i < 5; i++) call(b, 0, 0, 1); /* bucket 0: 5 failures */
    weft_breaker_stats_t st;
    weft_breaker_stats(b, 999, &st);
    assert_int_equal(st.window_calls, 5); /* still inside [0, 1000) */
    weft_breaker_stats(b, 1000, &st);
    assert_int_equal(st.window_calls, 0); /* bucket 0 left at t=1000 */
    /* the old failures no longer count: 6 successes and 4 failures now: 40% */
    for (int i = 0; i < 6; i++) call(b, 1050, 1, 1);
    for (int i = 0; i < 4; i++) call(b, 1150, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    weft_breaker_stats(b, 1150, &st);
    assert_int_equal(st.window_calls, 10);
    assert_int_equal(st.window_failures, 4);
    /* a bucket reused after a full turn of the ring starts from zero */
    weft_breaker_stats(b, 2049, &st);
    assert_int_equal(st.window_calls, 4); /* the 1050 bucket left at 2000 */
    call(b, 2050, 1, 1);                  /* the slot of 1050's bucket, restarted */
    weft_breaker_stats(b, 2050, &st);
    assert_int_equal(st.window_calls, 5);
    assert_int_equal(st.window_failures, 4);
    assert_int_equal(l.n, 0);
    weft_breaker_free(b);
}

/* Opens b (consecutive_failures 1) at now. */
static void open_it(weft_breaker_t *b, uint64_t now)
{
    call(b, now, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
}

static void test_half_open(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 1;
    o.failure_rate = 0;
    o.open_for_ms = 1000;
    o.open_for_max_ms = 3000;
    o.half_open_requests = 2;
    weft_breaker_t *b = mk(&o, &l);
    open_it(b, 0);
    uint64_t w;
    assert_int_equal(weft_breaker_allow(b, 999, &w), 0);
    assert_int_equal(w, 1);
    /* due: the first allow turns half-open and is a trial; a second trial; then no more */
    assert_int_equal(weft_breaker_allow(b, 1000, &w), 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_HALF_OPEN);
    assert_int_equal(l.why[1], WEFT_BREAKER_OPEN_TIMEOUT);
    assert_int_equal(weft_breaker_allow(b, 1001, &w), 1);
    w = 7;
    assert_int_equal(weft_breaker_allow(b, 1002, &w), 0);
    assert_int_equal(w, 0);
    /* one trial fails: open again, open_for doubled to 2000 */
    weft_breaker_record(b, 1010, 1, 1);
    weft_breaker_record(b, 1020, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[2], WEFT_BREAKER_HALF_OPEN_FAILURE);
    assert_int_equal(weft_breaker_ms_until_half_open(b, 1020), 2000);
    weft_breaker_record(b, 1030, 1, 1); /* a late result while OPEN: ignored */
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    /* again: 4000 capped to 3000 */
    assert_int_equal(weft_breaker_allow(b, 3020, &w), 1);
    weft_breaker_record(b, 3021, 0, 1);
    assert_int_equal(weft_breaker_ms_until_half_open(b, 3021), 3000);
    assert_int_equal(weft_breaker_allow(b, 6020, &w), 0);
    assert_int_equal(w, 1);
    assert_int_equal(weft_breaker_allow(b, 6021, &w), 1);
    weft_breaker_record(b, 6022, 0, 1);
    assert_int_equal(weft_breaker_ms_until_half_open(b, 6022), 3000); /* stays capped */
    /* all trials succeed: closed, with open_for back to its base */
    assert_int_equal(weft_breaker_allow(b, 9022, &w), 1);
    assert_int_equal(weft_breaker_allow(b, 9022, &w), 1);
    weft_breaker_record(b, 9030, 1, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_HALF_OPEN); /* one of two */
    weft_breaker_record(b, 9031, 1, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    assert_int_equal(l.why[l.n - 1], WEFT_BREAKER_HALF_OPEN_SUCCESS);
    weft_breaker_record(b, 9032, 1, 1); /* a result beyond the trials: a closed call */
    open_it(b, 10000);
    assert_int_equal(weft_breaker_ms_until_half_open(b, 10000), 1000);
    weft_breaker_stats_t st;
    weft_breaker_stats(b, 10000, &st);
    /* open, half, open, half, open, half, open, half, closed, open */
    assert_int_equal(st.transitions, 10);
    assert_int_equal(st.opens, 5);
    assert_int_equal(l.n, 10);
    static const weft_breaker_reason_t want[] = {
        WEFT_BREAKER_CONSECUTIVE_FAILURES, WEFT_BREAKER_OPEN_TIMEOUT,
        WEFT_BREAKER_HALF_OPEN_FAILURE,    WEFT_BREAKER_OPEN_TIMEOUT,
        WEFT_BREAKER_HALF_OPEN_FAILURE,    WEFT_BREAKER_OPEN_TIMEOUT,
        WEFT_BREAKER_HALF_OPEN_FAILURE,    WEFT_BREAKER_OPEN_TIMEOUT,
        WEFT_BREAKER_HALF_OPEN_SUCCESS,    WEFT_BREAKER_CONSECUTIVE_FAILURES,
    };
    for (unsigned i = 0; i < 10; i++) assert_int_equal(l.why[i], want[i]);
    weft_breaker_free(b);
}

static void test_slow_trial_reopens(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 1;
    o.slow_call_rate = 50;
    o.slow_call_duration_ms = 100;
    o.half_open_requests = 1;
    weft_breaker_t *b = mk(&o, &l);
    open_it(b, 0);
    uint64_t w;
    assert_int_equal(weft_breaker_allow(b, 5000, &w), 1);
    weft_breaker_record(b, 5200, 1, 200); /* succeeded, but slow */
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[2], WEFT_BREAKER_HALF_OPEN_FAILURE);
    weft_breaker_free(b);
}

/* A trial that is released (never made) gives its place back: without it, a half-open
 * breaker whose trial never ends would refuse every call for ever. */
static void test_release_gives_trial_back(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 1;
    o.half_open_requests = 1;
    weft_breaker_t *b = mk(&o, &l);
    open_it(b, 0);
    uint64_t w = 99;
    assert_int_equal(weft_breaker_allow(b, 5000, &w), 1); /* the one trial */
    assert_int_equal(weft_breaker_allow(b, 5001, &w), 0);
    assert_int_equal(w, 0);
    weft_breaker_release(b, 5002);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_HALF_OPEN);
    assert_int_equal(weft_breaker_allow(b, 5003, &w), 1); /* its place again */
    weft_breaker_record(b, 5004, 1, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    /* closed: a release changes nothing, and a second one is not taken as a trial */
    weft_breaker_release(b, 5005);
    weft_breaker_release(b, 5006);
    call(b, 5007, 0, 1);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_OPEN);
    weft_breaker_free(b);
    /* half-open with its trials recorded: nothing to give back, no extra trial appears */
    o.half_open_requests = 2;
    b = mk(&o, &l);
    open_it(b, 0);
    assert_int_equal(weft_breaker_allow(b, 5000, &w), 1);
    weft_breaker_record(b, 5001, 1, 1);
    weft_breaker_release(b, 5002);
    assert_int_equal(weft_breaker_allow(b, 5003, &w), 1);
    assert_int_equal(weft_breaker_allow(b, 5004, &w), 0);
    weft_breaker_free(b);
}

static void test_clock_backwards(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 1;
    weft_breaker_t *b = mk(&o, &l);
    open_it(b, 10000);
    uint64_t w;
    assert_int_equal(weft_breaker_allow(b, 5, &w), 0); /* taken as 10000 */
    assert_int_equal(w, 5000);
    weft_breaker_free(b);
}

static void test_check(void **state)
{
    (void)state;
    char err[128];
    weft_breaker_options_t o;
    weft_breaker_t *b = NULL;
    weft_breaker_options_init(&o);
    o.failure_rate = 101;
    assert_int_equal(weft_breaker_new(&o, &b, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "failure_rate"));
    weft_breaker_options_init(&o);
    o.slow_call_rate = 200;
    assert_int_equal(weft_breaker_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "slow_call_rate"));
    weft_breaker_options_init(&o);
    o.slow_call_rate = 10;
    o.slow_call_duration_ms = 0;
    assert_int_equal(weft_breaker_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "slow_call_duration_ms"));
    weft_breaker_options_init(&o);
    o.window_ms = 9;
    assert_int_equal(weft_breaker_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "window_ms"));
    weft_breaker_options_init(&o);
    o.open_for_ms = 0;
    assert_int_equal(weft_breaker_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "open_for_ms"));
    weft_breaker_options_init(&o);
    o.open_for_max_ms = 10;
    assert_int_equal(weft_breaker_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "open_for_max_ms"));
    weft_breaker_options_init(&o);
    o.half_open_requests = 0;
    assert_int_equal(weft_breaker_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "half_open_requests"));
    assert_null(b);
    /* defaults, and NULL options */
    assert_int_equal(weft_breaker_new(NULL, &b, NULL, 0), 0);
    weft_breaker_free(b);
    weft_breaker_free(NULL);
}

static void test_all_rules_off(void **state)
{
    (void)state;
    log_t l = {0};
    weft_breaker_options_t o;
    weft_breaker_options_init(&o);
    o.consecutive_failures = 0;
    o.failure_rate = 0;
    o.slow_call_rate = 0;
    weft_breaker_t *b = mk(&o, &l);
    for (int i = 0; i < 1000; i++) call(b, (uint64_t)i, 0, 100000);
    assert_int_equal(weft_breaker_state(b), WEFT_BREAKER_CLOSED);
    assert_int_equal(l.n, 0);
    weft_breaker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consecutive),     cmocka_unit_test(test_failure_rate_min_volume),
        cmocka_unit_test(test_slow_rate),       cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_half_open),       cmocka_unit_test(test_slow_trial_reopens),
        cmocka_unit_test(test_clock_backwards), cmocka_unit_test(test_check),
        cmocka_unit_test(test_all_rules_off),   cmocka_unit_test(test_release_gives_trial_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
