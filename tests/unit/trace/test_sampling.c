/*
 * test_sampling.c - the rate-limiting sampler (its token bucket on a fake clock, then shared
 * by threads on the real one) and record-only spans kept or dropped at their end.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/trace.h"

#define SEC 1000000000ull

/* ---- the bucket ---- */

static void test_rate_bucket(void **state)
{
    (void)state;
    weft_trace_rate_t b;
    uint64_t t0 = 5 * SEC;
    weft_trace_rate_init(&b, 10); /* 10/s: a burst of 10, then one per 100 ms */
    for (int i = 0; i < 10; i++) assert_true(weft_trace_rate_take(&b, t0));
    assert_false(weft_trace_rate_take(&b, t0));
    assert_false(weft_trace_rate_take(&b, t0 + 99 * 1000000ull));
    assert_true(weft_trace_rate_take(&b, t0 + 100 * 1000000ull));
    assert_false(weft_trace_rate_take(&b, t0 + 100 * 1000000ull));
    /* a quiet spell refills one second's worth, not more */
    uint64_t t1 = t0 + 60 * SEC;
    int n = 0;
    while (weft_trace_rate_take(&b, t1)) n++;
    assert_int_equal(n, 10);
    /* over 10 s at a steady 1000 asks a second: 10 a second (plus the burst) */
    weft_trace_rate_init(&b, 10);
    n = 0;
    for (uint64_t t = t0; t < t0 + 10 * SEC; t += SEC / 1000) n += weft_trace_rate_take(&b, t);
    assert_int_equal(n, 10 + 99);

    /* below one a second: a burst of one, then one per 1/rate seconds */
    weft_trace_rate_init(&b, 0.5);
    assert_true(weft_trace_rate_take(&b, t0));
    assert_false(weft_trace_rate_take(&b, t0 + SEC));
    assert_true(weft_trace_rate_take(&b, t0 + 2 * SEC));

    /* 0, negative, NaN: never */
    weft_trace_rate_init(&b, 0);
    assert_false(weft_trace_rate_take(&b, t0));
    weft_trace_rate_init(&b, -3);
    assert_false(weft_trace_rate_take(&b, t0));
    weft_trace_rate_init(&b, __builtin_nan(""));
    assert_false(weft_trace_rate_take(&b, t0));
}

/* ---- the sampler ---- */

static void test_rate_sampler(void **state)
{
    (void)state;
    uint8_t tid[16];
    weft_trace_random_trace_id(tid);
    weft_sampler_t s = weft_sampler_rate_limiting(3);
    assert_int_equal(s.root, WEFT_SAMPLER_RATE_LIMITING);
    assert_true(s.ratio == 1 && s.rate == 3);
    /* without a bucket: nothing */
    assert_false(weft_sampler_should_sample(&s, NULL, tid));
    weft_trace_rate_t b;
    weft_trace_rate_init(&b, 3);
    s.limiter = &b;
    int n = 0;
    for (int i = 0; i < 100; i++) n += weft_sampler_should_sample(&s, NULL, tid);
    assert_int_equal(n, 3); /* the burst; the loop takes far less than 333 ms */

    /* parent-based: a parent's decision is followed and spends no token */
    weft_sampler_t pb = weft_sampler_parent_based(weft_sampler_rate_limiting(1));
    weft_trace_rate_t b1;
    weft_trace_rate_init(&b1, 1);
    pb.limiter = &b1;
    weft_trace_context_t parent;
    memset(&parent, 0, sizeof(parent));
    memcpy(parent.trace_id, tid, 16);
    parent.span_id[7] = 1;
    parent.remote = true;
    parent.flags = WEFT_TRACE_FLAG_SAMPLED;
    for (int i = 0; i < 10; i++) assert_true(weft_sampler_should_sample(&pb, &parent, tid));
    parent.flags = 0;
    assert_false(weft_sampler_should_sample(&pb, &parent, tid));
    assert_true(weft_sampler_should_sample(&pb, NULL, tid)); /* the token is still there */
    assert_false(weft_sampler_should_sample(&pb, NULL, tid));
    /* a deferred B3 parent: the root decides */
    weft_trace_rate_init(&b1, 1);
    parent.deferred = true;
    assert_true(weft_sampler_should_sample(&pb, &parent, tid));
    assert_false(weft_sampler_should_sample(&pb, &parent, tid));

    /* ratio first: a trace the ratio refuses spends no token */
    weft_sampler_t rr = weft_sampler_rate_limiting(1);
    weft_trace_rate_t b2;
    weft_trace_rate_init(&b2, 1);
    rr.limiter = &b2;
    rr.ratio = 0;
    for (int i = 0; i < 5; i++) assert_false(weft_sampler_should_sample(&rr, NULL, tid));
    rr.ratio = 1;
    assert_true(weft_sampler_should_sample(&rr, NULL, tid));

    /* a negative rate is 0; the environment offers no rate sampler */
    assert_true(weft_sampler_rate_limiting(-1).rate == 0);
    setenv("OTEL_TRACES_SAMPLER", "ratelimiting", 1);
    weft_sampler_t e = weft_sampler_always_on();
    char err[256];
    assert_int_equal(weft_sampler_from_env(&e, err, sizeof(err)), WEFT_EINVAL);
    unsetenv("OTEL_TRACES_SAMPLER");
}

/* A tracer made with a rate-limiting sampler gets a bucket of its own. */
static void test_rate_tracer(void **state)
{
    (void)state;
    weft_tracer_options_t o;
    weft_tracer_options_init(&o);
    o.sampler = weft_sampler_parent_based(weft_sampler_rate_limiting(5));
    o.exporter = weft_trace_memory_exporter_new(100);
    weft_span_exporter_t *mem = o.exporter;
    weft_tracer_t *t;
    assert_int_equal(weft_tracer_new(&o, &t), 0);
    int sampled = 0;
    for (int i = 0; i < 50; i++) {
        weft_span_t *s = weft_span_start(t, "root", WEFT_SPAN_SERVER, NULL);
        assert_non_null(s);
        if (weft_span_context(s)->flags & WEFT_TRACE_FLAG_SAMPLED) {
            sampled++;
            /* its child follows it without a token */
            weft_span_t *c = weft_span_start(t, "child", WEFT_SPAN_INTERNAL, weft_span_context(s));
            assert_true(weft_span_is_recording(c));
            weft_span_end(c);
        }
        weft_span_end(s);
    }
    assert_int_equal(sampled, 5);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 10);
    weft_tracer_free(t);
}

/* Threads share the bucket: over a short run they never take more than it holds. */
typedef struct {
    weft_trace_rate_t *b;
    int taken;
} thr_t;

static void *taker(void *arg)
{
    thr_t *a = arg;
    for (int i = 0; i < 20000; i++) a->taken += weft_trace_rate_take(a->b, 1000 * SEC);
    return NULL;
}

static void test_rate_threads(void **state)
{
    (void)state;
    weft_trace_rate_t b;
    weft_trace_rate_init(&b, 1000); /* at one instant: exactly 1000 tokens */
    thr_t a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thr_t){&b, 0};
        assert_int_equal(pthread_create(&th[i], NULL, taker, &a[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += a[i].taken;
    }
    assert_int_equal(total, 1000);
}

/* ---- record-only spans ---- */

static void test_record_only(void **state)
{
    (void)state;
    weft_tracer_options_t o;
    weft_tracer_options_init(&o);
    o.sampler = weft_sampler_always_off(); /* the caller's decision wins over it */
    o.exporter = weft_trace_memory_exporter_new(10);
    weft_span_exporter_t *mem = o.exporter;
    weft_tracer_t *t;
    assert_int_equal(weft_tracer_new(&o, &t), 0);

    /* not kept: records, says "not sampled", is not exported */
    weft_span_t *s = weft_span_start_ex(t, "gw", WEFT_SPAN_SERVER, NULL, WEFT_SAMPLING_RECORD_ONLY);
    assert_true(weft_span_is_recording(s));
    assert_true(weft_span_is_record_only(s));
    assert_int_equal(weft_span_context(s)->flags & WEFT_TRACE_FLAG_SAMPLED, 0);
    weft_span_set_attr_str(s, "a", "b");
    /* a child of it follows the propagated 0 */
    weft_span_t *c = weft_span_start(t, "up", WEFT_SPAN_CLIENT, weft_span_context(s));
    assert_false(weft_span_is_recording(c));
    weft_span_end(c);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 0);

    /* kept: exported once, with its attributes and the sampled flag in the copy */
    s = weft_span_start_ex(t, "gw", WEFT_SPAN_SERVER, NULL, WEFT_SAMPLING_RECORD_ONLY);
    weft_span_set_attr_str(s, "weft.sampling", "tail-error");
    weft_span_keep(s);
    assert_false(weft_span_is_record_only(s));
    assert_true(weft_span_is_recording(s));
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 1);
    weft_span_data_t d;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &d), 0);
    assert_string_equal(d.name, "gw");
    assert_int_equal(d.nattrs, 1);
    assert_string_equal(d.attrs[0].v.s, "tail-error");
    assert_int_equal(d.context.flags & WEFT_TRACE_FLAG_SAMPLED, WEFT_TRACE_FLAG_SAMPLED);

    /* keep on a sampled or dropped span: nothing changes */
    s = weft_span_start_ex(t, "x", WEFT_SPAN_SERVER, NULL, WEFT_SAMPLING_DROP);
    assert_false(weft_span_is_recording(s));
    weft_span_keep(s);
    assert_false(weft_span_is_recording(s));
    weft_span_end(s);
    s = weft_span_start_ex(t, "y", WEFT_SPAN_SERVER, NULL, WEFT_SAMPLING_SAMPLE);
    assert_true(weft_span_is_recording(s));
    assert_false(weft_span_is_record_only(s));
    assert_int_equal(weft_span_context(s)->flags & WEFT_TRACE_FLAG_SAMPLED, 1);
    weft_span_keep(s);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 2);
    /* TRACER: the sampler (always off) decides */
    s = weft_span_start_ex(t, "z", WEFT_SPAN_SERVER, NULL, WEFT_SAMPLING_TRACER);
    assert_false(weft_span_is_recording(s));
    weft_span_end(s);
    weft_span_keep(NULL);
    assert_false(weft_span_is_record_only(NULL));
    weft_tracer_free(t);

    /* without an exporter nothing records, record-only included */
    weft_tracer_options_init(&o);
    assert_int_equal(weft_tracer_new(&o, &t), 0);
    s = weft_span_start_ex(t, "gw", WEFT_SPAN_SERVER, NULL, WEFT_SAMPLING_RECORD_ONLY);
    assert_false(weft_span_is_recording(s));
    assert_false(weft_span_is_record_only(s));
    weft_span_keep(s);
    weft_span_end(s);
    weft_tracer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_bucket), cmocka_unit_test(test_rate_sampler),
        cmocka_unit_test(test_rate_tracer), cmocka_unit_test(test_rate_threads),
        cmocka_unit_test(test_record_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
