/*
 * test_ratelimit.c - the rate limiters (src/resilience/gcra.c, window.c, ratelimit.c,
 * rltable.c) on a fake clock: the token bucket's exact burst and rate (fractional rates
 * too) and its RateLimit header values; the sliding window's limit; GCRA shared by four
 * threads stepping one fake clock together (pthread barriers, no sleeps) admitting exactly
 * burst + rate * elapsed; the keyed table's fixed memory, idle-slot reuse and full-table
 * policy; option checks.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "weft/ratelimit.h"

static weft_ratelimit_t *mk_tb(double rate, uint64_t burst)
{
    weft_ratelimit_options_t o;
    weft_ratelimit_options_init(&o);
    o.rate = rate;
    o.burst = burst;
    weft_ratelimit_t *rl = NULL;
    assert_int_equal(weft_ratelimit_new(&o, &rl, NULL, 0), 0);
    return rl;
}

static weft_ratelimit_t *mk_sw(uint32_t limit, uint64_t window_ms)
{
    weft_ratelimit_options_t o;
    weft_ratelimit_options_init(&o);
    o.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
    o.limit = limit;
    o.window_ms = window_ms;
    weft_ratelimit_t *rl = NULL;
    assert_int_equal(weft_ratelimit_new(&o, &rl, NULL, 0), 0);
    return rl;
}

/* Takes until denied at now; returns how many were admitted. */
static unsigned drain(weft_ratelimit_t *rl, uint64_t now)
{
    unsigned n = 0;
    while (weft_ratelimit_take(rl, now, NULL)) n++;
    return n;
}

static void test_token_bucket_exact(void **state)
{
    (void)state;
    weft_ratelimit_t *rl = mk_tb(10, 5);
    uint64_t t0 = 123456;
    weft_ratelimit_result_t r;
    assert_int_equal(weft_ratelimit_take(rl, t0, &r), 1);
    assert_int_equal(r.limit, 5);
    assert_int_equal(r.remaining, 4);
    assert_int_equal(r.reset_s, 1);     /* 100 ms to refill the one taken, rounded up */
    assert_int_equal(drain(rl, t0), 4); /* exactly burst at t0 */
    assert_int_equal(weft_ratelimit_take(rl, t0, &r), 0);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_ms, 100);
    assert_int_equal(r.reset_s, 1); /* 500 ms to full */
    /* then exactly rate per second: one every 100 ms, whatever the demand */
    unsigned admitted = 0;
    for (uint64_t t = t0 + 1; t <= t0 + 1000; t++) {
        unsigned k = drain(rl, t);
        if (k) assert_int_equal((t - t0) % 100, 0);
        admitted += k;
    }
    assert_int_equal(admitted, 10);
    assert_int_equal(weft_ratelimit_take(rl, t0 + 1050, &r), 0);
    assert_int_equal(r.retry_after_ms, 50);
    /* idle long enough: a full bucket again, never more than burst */
    assert_int_equal(drain(rl, t0 + 1000000), 5);
    weft_ratelimit_free(rl);
}

static void test_token_bucket_fractional(void **state)
{
    (void)state;
    weft_ratelimit_t *rl = mk_tb(1.0 / 60, 1); /* one a minute */
    weft_ratelimit_result_t r;
    assert_int_equal(weft_ratelimit_take(rl, 0, &r), 1);
    assert_int_equal(r.reset_s, 60);
    assert_int_equal(weft_ratelimit_take(rl, 0, &r), 0);
    assert_int_equal(r.retry_after_ms, 60000);
    assert_int_equal(weft_ratelimit_take(rl, 59999, &r), 0);
    assert_int_equal(r.retry_after_ms, 1);
    assert_int_equal(weft_ratelimit_take(rl, 60000, &r), 1);
    weft_ratelimit_free(rl);

    rl = mk_tb(2.5, 1); /* 400 ms apart */
    unsigned n = 0;
    for (uint64_t t = 0; t < 10000; t++) n += drain(rl, t);
    assert_int_equal(n, 25); /* at 0, 400, ..., 9600 */
    weft_ratelimit_free(rl);
}

static void test_sliding_window(void **state)
{
    (void)state;
    weft_ratelimit_t *rl = mk_sw(10, 1000);
    weft_ratelimit_result_t r;
    assert_int_equal(weft_ratelimit_take(rl, 5000, &r), 1);
    assert_int_equal(r.limit, 10);
    assert_int_equal(r.remaining, 9);
    assert_int_equal(drain(rl, 5000), 9); /* exactly limit in a fresh window */
    assert_int_equal(weft_ratelimit_take(rl, 5000, &r), 0);
    assert_int_equal(r.remaining, 0);
    assert_true(r.retry_after_ms > 0);
    /* the retry-after is right: denied 1 ms before, admitted at it */
    uint64_t at = 5000 + r.retry_after_ms;
    assert_int_equal(weft_ratelimit_take(rl, at - 1, NULL), 0);
    assert_int_equal(weft_ratelimit_take(rl, at, NULL), 1);
    /* after two idle windows, exactly limit again */
    assert_int_equal(drain(rl, 8000), 10);
    weft_ratelimit_free(rl);

    /* steady demand: exactly limit in every 1000 ms once past the first burst's shadow */
    rl = mk_sw(10, 1000);
    static uint8_t got[20000];
    memset(got, 0, sizeof(got));
    for (uint64_t t = 0; t < 20000; t++) got[t] = (uint8_t)drain(rl, t);
    unsigned in = 0, min = 1000, max = 0;
    for (uint64_t t = 0; t < 20000; t++) {
        in += got[t];
        if (t >= 1000) in -= got[t - 1000];
        if (t >= 999 && in > max) max = in;
        if (t >= 3000 && in < min) min = in;
        if (t == 999) assert_int_equal(in, 10); /* the first window: exactly limit */
    }
    assert_int_equal(max, 10);
    assert_int_equal(min, 10);
    /* retry_after answers for each denial are exact at the steady state, too */
    for (uint64_t t = 20000; t < 21000; t++) {
        weft_ratelimit_result_t d;
        if (weft_ratelimit_take(rl, t, &d)) continue;
        assert_true(d.retry_after_ms >= 1);
    }
    weft_ratelimit_free(rl);
}

typedef struct hammer_s {
    weft_ratelimit_t *rl;
    pthread_barrier_t *bar;
    const uint64_t *clock;
    unsigned steps, tries;
    unsigned admitted;
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *h = arg;
    for (unsigned s = 0; s < h->steps; s++) {
        pthread_barrier_wait(h->bar); /* the main thread has set the clock */
        uint64_t now = __atomic_load_n(h->clock, __ATOMIC_ACQUIRE);
        for (unsigned i = 0; i < h->tries; i++)
            h->admitted += weft_ratelimit_take(h->rl, now, NULL);
        pthread_barrier_wait(h->bar); /* every thread is done with this instant */
    }
    return NULL;
}

static void test_gcra_threads(void **state)
{
    (void)state;
    enum { THREADS = 4, STEPS = 2000 };
    weft_ratelimit_t *rl = mk_tb(1000.0 / 3, 50); /* T = 3 ms */
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, THREADS + 1);
    uint64_t clock = 1000;
    hammer_t h[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer_t){rl, &bar, &clock, STEPS, 40, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
    }
    for (unsigned s = 0; s < STEPS; s++) {
        __atomic_store_n(&clock, 1000 + s, __ATOMIC_RELEASE);
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
    }
    unsigned total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += h[i].admitted;
    }
    pthread_barrier_destroy(&bar);
    /* elapsed 1999 ms at 1 per 3 ms: burst + floor(1999 / 3) */
    assert_int_equal(total, 50 + 1999 / 3);
    weft_ratelimit_free(rl);
}

static void test_options(void **state)
{
    (void)state;
    char err[128];
    weft_ratelimit_options_t o;
    weft_ratelimit_t *rl = NULL;
    weft_ratelimit_options_init(&o);
    o.rate = 0;
    assert_int_equal(weft_ratelimit_new(&o, &rl, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "rate"));
    o.rate = 0.0 / 0.0;
    assert_int_equal(weft_ratelimit_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    weft_ratelimit_options_init(&o);
    o.burst = 0;
    assert_int_equal(weft_ratelimit_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "burst"));
    o.burst = UINT64_MAX / 2;
    assert_int_equal(weft_ratelimit_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "burst"));
    weft_ratelimit_options_init(&o);
    o.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
    o.limit = WEFT_RATELIMIT_WINDOW_MAX + 1;
    assert_int_equal(weft_ratelimit_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "limit"));
    o.limit = 5;
    o.window_ms = 0;
    assert_int_equal(weft_ratelimit_options_check(&o, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "window_ms"));
    assert_null(rl);
    assert_int_equal(weft_ratelimit_new(NULL, &rl, NULL, 0), 0);
    weft_ratelimit_free(rl);

    weft_ratelimit_table_options_t to;
    weft_ratelimit_table_t *t = NULL;
    weft_ratelimit_table_options_init(&to);
    to.capacity = 0;
    assert_int_equal(weft_ratelimit_table_new(&to, &t, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "capacity"));
    weft_ratelimit_table_options_init(&to);
    to.probe = 65;
    assert_int_equal(weft_ratelimit_table_new(&to, &t, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "probe"));
    assert_null(t);
}

static weft_ratelimit_table_t *mk_table(size_t cap, unsigned probe, int deny, double rate,
                                        uint64_t burst)
{
    weft_ratelimit_table_options_t o;
    weft_ratelimit_table_options_init(&o);
    o.capacity = cap;
    o.probe = probe;
    o.deny_when_full = deny;
    o.limiter.rate = rate;
    o.limiter.burst = burst;
    weft_ratelimit_table_t *t = NULL;
    char err[128];
    assert_int_equal(weft_ratelimit_table_new(&o, &t, err, sizeof(err)), 0);
    return t;
}

static int take_key(weft_ratelimit_table_t *t, unsigned k, uint64_t now, weft_ratelimit_result_t *r)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "10.1.%u.%u", k / 256, k % 256);
    return weft_ratelimit_table_take(t, key, (size_t)n, now, r);
}

static void test_table_keys(void **state)
{
    (void)state;
    weft_ratelimit_table_t *t = mk_table(1000, 16, 0, 1, 2); /* rounded to 1024 */
    weft_ratelimit_table_stats_t st;
    size_t mem = weft_ratelimit_table_memory(t);
    assert_true(mem >= 1024 * 16 && mem < 1024 * 16 + 4096);
    /* each key its own bucket of 2 */
    for (unsigned k = 0; k < 100; k++) {
        assert_int_equal(take_key(t, k, 0, NULL), 1);
        assert_int_equal(take_key(t, k, 0, NULL), 1);
        assert_int_equal(take_key(t, k, 0, NULL), 0);
    }
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.capacity, 1024);
    assert_int_equal(st.used, 100);
    assert_int_equal(st.inserted, 100);
    assert_int_equal(st.table_full, 0);
    /* 200,000 distinct keys over time through 1024 slots: memory does not move */
    for (unsigned k = 0; k < 200000; k++) take_key(t, k, 10000 + k / 500 * 3000, NULL);
    assert_int_equal(weft_ratelimit_table_memory(t), mem);
    weft_ratelimit_table_stats(t, &st);
    assert_true(st.used <= 1024);
    assert_true(st.reused > 0);
    weft_ratelimit_table_free(t);
}

static void test_table_full_and_reuse(void **state)
{
    (void)state;
    /* 16 slots, probe 16: every key shares one window of all the slots */
    weft_ratelimit_table_t *t = mk_table(16, 16, 0, 1, 1);
    weft_ratelimit_table_stats_t st;
    weft_ratelimit_result_t r;
    for (unsigned k = 0; k < 16; k++) assert_int_equal(take_key(t, k, 0, NULL), 1);
    /* full of keys whose limit is in force: a new key is admitted and counted */
    assert_int_equal(take_key(t, 100, 0, &r), 1);
    assert_int_equal(take_key(t, 100, 0, &r), 1); /* no limiter for it */
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.table_full, 2);
    assert_int_equal(st.used, 16);
    /* the old keys are still limited */
    for (unsigned k = 0; k < 16; k++) assert_int_equal(take_key(t, k, 500, NULL), 0);
    /* at 1000 ms their buckets are full again: a new key takes an idle slot */
    assert_int_equal(take_key(t, 100, 1000, &r), 1);
    assert_int_equal(take_key(t, 100, 1000, &r), 0); /* now limited */
    assert_int_equal(r.retry_after_ms, 1000);
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.reused, 1);
    assert_int_equal(st.used, 16);
    weft_ratelimit_table_free(t);

    /* the slot idle longest goes first: keys 0..3 refill at 1000, 1100, 1200, 1300 */
    t = mk_table(4, 4, 0, 1, 1);
    for (unsigned k = 0; k < 4; k++) assert_int_equal(take_key(t, k, 100 * k, NULL), 1);
    assert_int_equal(take_key(t, 10, 1300, NULL), 1);
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.reused, 1);
    for (unsigned k = 3; k >= 1; k--) assert_int_equal(take_key(t, k, 1300, NULL), 1);
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.reused, 1); /* keys 1..3 kept their slots */
    assert_int_equal(take_key(t, 0, 1300, NULL), 1);
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.reused, 1); /* key 0 lost its, and found no idle one: */
    assert_int_equal(st.table_full, 1);
    weft_ratelimit_table_free(t);

    /* deny_when_full */
    t = mk_table(16, 16, 1, 1, 1);
    for (unsigned k = 0; k < 16; k++) assert_int_equal(take_key(t, k, 0, NULL), 1);
    assert_int_equal(take_key(t, 100, 0, &r), 0);
    assert_int_equal(r.retry_after_ms, 1000);
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.table_full, 1);
    weft_ratelimit_table_free(t);
}

static void test_table_window_kind(void **state)
{
    (void)state;
    weft_ratelimit_table_options_t o;
    weft_ratelimit_table_options_init(&o);
    o.capacity = 8;
    o.probe = 8;
    o.limiter.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
    o.limiter.limit = 3;
    o.limiter.window_ms = 1000;
    weft_ratelimit_table_t *t = NULL;
    assert_int_equal(weft_ratelimit_table_new(&o, &t, NULL, 0), 0);
    for (unsigned k = 0; k < 8; k++)
        for (int i = 0; i < 3; i++) assert_int_equal(take_key(t, k, 0, NULL), 1);
    assert_int_equal(take_key(t, 0, 0, NULL), 0);
    weft_ratelimit_table_stats_t st;
    take_key(t, 50, 1500, NULL); /* windows still hold counts: full */
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.table_full, 1);
    assert_int_equal(take_key(t, 50, 2000, NULL), 1); /* the counts are gone at 2000 */
    weft_ratelimit_table_stats(t, &st);
    assert_int_equal(st.reused, 1);
    weft_ratelimit_table_free(t);
}

/* The 429's header values, as the gateway and the SDK send them. */
static void test_headers(void **state)
{
    (void)state;
    weft_ratelimit_options_t o;
    weft_ratelimit_options_init(&o);
    o.rate = 100;
    o.burst = 50; /* refills in 0.5 s: w rounds up to 1 */
    weft_ratelimit_t *rl;
    assert_int_equal(weft_ratelimit_new(&o, &rl, NULL, 0), 0);
    weft_ratelimit_result_t res;
    for (int i = 0; i < 50; i++) assert_int_equal(weft_ratelimit_take(rl, 1000, &res), 1);
    assert_int_equal(weft_ratelimit_take(rl, 1000, &res), 0);
    weft_ratelimit_headers_t h;
    weft_ratelimit_headers(&o, "orders", &res, &h);
    assert_string_equal(h.retry_after, "1"); /* 10 ms, rounded up to a second */
    assert_string_equal(h.policy, "\"orders\";q=50;w=1");
    assert_string_equal(h.state, "\"orders\";r=0;t=1");
    weft_ratelimit_free(rl);
    /* a bucket that refills in 250 s; a window of 60.5 s rounds up to 61 */
    o.rate = 0.2;
    assert_int_equal(weft_ratelimit_policy_window_s(&o), 250);
    o.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
    o.window_ms = 60500;
    assert_int_equal(weft_ratelimit_policy_window_s(&o), 61);
    res = (weft_ratelimit_result_t){
        .limit = 1000, .remaining = 7, .reset_s = 42, .retry_after_ms = 0};
    weft_ratelimit_headers(&o, NULL, &res, &h);
    assert_string_equal(h.retry_after, "0");
    assert_string_equal(h.policy, "\"\";q=1000;w=61");
    assert_string_equal(h.state, "\"\";r=7;t=42");
    o.window_ms = 1; /* never a window of 0 s */
    assert_int_equal(weft_ratelimit_policy_window_s(&o), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_bucket_exact),
        cmocka_unit_test(test_token_bucket_fractional),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_gcra_threads),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_table_keys),
        cmocka_unit_test(test_table_full_and_reuse),
        cmocka_unit_test(test_table_window_kind),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
