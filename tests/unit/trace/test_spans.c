/*
 * test_spans.c - ids, samplers, the tracer, span life cycle and limits, exporters, threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "weft/trace.h"

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

/* ---- ids ---- */

static void test_ids(void **state)
{
    uint8_t a[16], b[16], s1[8], s2[8];
    weft_trace_random_trace_id(a);
    weft_trace_random_trace_id(b);
    assert_memory_not_equal(a, b, 16);
    weft_trace_random_span_id(s1);
    weft_trace_random_span_id(s2);
    assert_memory_not_equal(s1, s2, 8);
    /* roughly uniform bits: over 4096 ids each of the 128 bits is set about half the time */
    unsigned ones[128] = {0};
    for (int i = 0; i < 4096; i++) {
        weft_trace_random_trace_id(a);
        for (int bit = 0; bit < 128; bit++) ones[bit] += (a[bit / 8] >> (bit % 8)) & 1;
    }
    for (int bit = 0; bit < 128; bit++) assert_true(ones[bit] > 1700 && ones[bit] < 2400);
}

/* A forked child must not repeat the parent's ids. */
static void test_ids_fork(void **state)
{
    uint8_t warm[8];
    weft_trace_random_span_id(warm); /* the parent's generator is seeded */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t id[8];
        weft_trace_random_span_id(id);
        ssize_t w = write(fds[1], id, 8);
        _exit(w == 8 ? 0 : 1);
    }
    uint8_t mine[8], child[8];
    weft_trace_random_span_id(mine);
    assert_int_equal(read(fds[0], child, 8), 8);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_memory_not_equal(mine, child, 8);
    close(fds[0]);
    close(fds[1]);
}

/* ---- samplers ---- */

/* A trace id whose rightmost 7 bytes are r (big-endian). */
static void id_with_r(uint8_t id[16], uint64_t r)
{
    memset(id, 0xee, 9);
    for (int i = 15; i >= 9; i--, r >>= 8) id[i] = (uint8_t)r;
}

static int ts_set(weft_trace_context_t *c, const char *s)
{
    return weft_tracestate_parse(s, strlen(s), c);
}

static void test_samplers(void **state)
{
    uint8_t id[16];
    const uint64_t two56 = 1ull << 56;
    weft_sampler_t on = weft_sampler_always_on(), off = weft_sampler_always_off();
    id_with_r(id, 0);
    assert_true(weft_sampler_should_sample(&on, NULL, id));
    assert_false(weft_sampler_should_sample(&off, NULL, id));
    /* ratio 0.5: T = 2^55; R >= T samples */
    weft_sampler_t half = weft_sampler_ratio(0.5);
    id_with_r(id, two56 / 2);
    assert_true(weft_sampler_should_sample(&half, NULL, id));
    id_with_r(id, two56 / 2 - 1);
    assert_false(weft_sampler_should_sample(&half, NULL, id));
    /* ratio 0.25: T = 3 * 2^54 */
    weft_sampler_t q = weft_sampler_ratio(0.25);
    id_with_r(id, 3 * (two56 / 4));
    assert_true(weft_sampler_should_sample(&q, NULL, id));
    id_with_r(id, 3 * (two56 / 4) - 1);
    assert_false(weft_sampler_should_sample(&q, NULL, id));
    /* only the rightmost 7 bytes count */
    id_with_r(id, 3 * (two56 / 4));
    memset(id, 0, 9);
    assert_true(weft_sampler_should_sample(&q, NULL, id));
    memset(id, 0xff, 9);
    assert_true(weft_sampler_should_sample(&q, NULL, id));
    id_with_r(id, 3 * (two56 / 4) - 1);
    memset(id, 0xff, 9);
    assert_false(weft_sampler_should_sample(&q, NULL, id));
    /* the ends: 0 never, 1 always, the smallest ratio only the top R */
    weft_sampler_t zero = weft_sampler_ratio(0), one = weft_sampler_ratio(1);
    id_with_r(id, two56 - 1);
    assert_false(weft_sampler_should_sample(&zero, NULL, id));
    id_with_r(id, 0);
    assert_true(weft_sampler_should_sample(&one, NULL, id));
    weft_sampler_t tiny = weft_sampler_ratio(0x1p-56);
    id_with_r(id, two56 - 1);
    assert_true(weft_sampler_should_sample(&tiny, NULL, id));
    id_with_r(id, two56 - 2);
    assert_false(weft_sampler_should_sample(&tiny, NULL, id));
    /* out-of-range ratios are clamped; NaN is 0 */
    assert_true(weft_sampler_ratio(7).ratio == 1);
    assert_true(weft_sampler_ratio(-1).ratio == 0);
    assert_true(weft_sampler_ratio(0.0 / 0.0).ratio == 0);
    /* a higher ratio samples a superset; the fraction is about the ratio */
    weft_sampler_t r10 = weft_sampler_ratio(0.10), r30 = weft_sampler_ratio(0.30);
    int n10 = 0, n30 = 0;
    for (int i = 0; i < 100000; i++) {
        weft_trace_random_trace_id(id);
        bool a = weft_sampler_should_sample(&r10, NULL, id);
        bool b = weft_sampler_should_sample(&r30, NULL, id);
        if (a && !b) fail_msg("sampled at 0.1 but not at 0.3");
        n10 += a;
        n30 += b;
    }
    assert_true(n10 > 9400 && n10 < 10600);
    assert_true(n30 > 29300 && n30 < 30700);
    /* the ratio sampler ignores a parent's flag... */
    weft_trace_context_t parent;
    memset(&parent, 0, sizeof(parent));
    parent.flags = WEFT_TRACE_FLAG_SAMPLED;
    id_with_r(id, 0);
    assert_false(weft_sampler_should_sample(&half, &parent, id));
    /* ...but honours an explicit randomness value in the parent's tracestate */
    assert_int_equal(ts_set(&parent, "ot=th:8;rv:ffffffffffffff,x=1"), 0);
    assert_true(weft_sampler_should_sample(&half, &parent, id));
    assert_int_equal(ts_set(&parent, "ot=rv:00000000000001"), 0);
    id_with_r(id, two56 - 1);
    assert_false(weft_sampler_should_sample(&half, &parent, id));
    assert_int_equal(ts_set(&parent, "ot=rv:0000000000000g"), 0);
    assert_true(weft_sampler_should_sample(&half, &parent, id)); /* bad rv: the id decides */
    parent.tracestate_len = 0;
    /* parent-based: the parent's flag, remote or local */
    weft_sampler_t pb_off = weft_sampler_parent_based(off), pb_on = weft_sampler_parent_based(on);
    parent.flags = WEFT_TRACE_FLAG_SAMPLED;
    parent.remote = true;
    assert_true(weft_sampler_should_sample(&pb_off, &parent, id));
    parent.remote = false;
    assert_true(weft_sampler_should_sample(&pb_off, &parent, id));
    parent.flags = 0;
    assert_false(weft_sampler_should_sample(&pb_on, &parent, id));
    parent.remote = true;
    assert_false(weft_sampler_should_sample(&pb_on, &parent, id));
    /* no parent: the root sampler */
    assert_false(weft_sampler_should_sample(&pb_off, NULL, id));
    assert_true(weft_sampler_should_sample(&pb_on, NULL, id));
    /* a deferred B3 parent: the root sampler, on the parent's trace id */
    parent.deferred = true;
    assert_true(weft_sampler_should_sample(&pb_on, &parent, id));
    assert_false(weft_sampler_should_sample(&pb_off, &parent, id));
    weft_sampler_t pb_half = weft_sampler_parent_based(half);
    id_with_r(id, two56 / 2);
    assert_true(weft_sampler_should_sample(&pb_half, &parent, id));
    id_with_r(id, two56 / 2 - 1);
    assert_false(weft_sampler_should_sample(&pb_half, &parent, id));
}

/* ---- tracer and spans ---- */

static weft_tracer_t *tracer_with(weft_span_exporter_t *e, weft_sampler_t sampler)
{
    weft_tracer_options_t o;
    weft_tracer_options_init(&o);
    o.service_name = "svc";
    o.exporter = e;
    o.sampler = sampler;
    weft_tracer_t *t = NULL;
    assert_int_equal(weft_tracer_new(&o, &t), 0);
    return t;
}

static const weft_attr_t *find_attr(const weft_attr_t *a, unsigned n, const char *key)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(a[i].key, key) == 0) return &a[i];
    return NULL;
}

static void test_tracer_options(void **state)
{
    weft_tracer_options_t o;
    weft_tracer_options_init(&o);
    assert_string_equal(o.service_name, "unknown_service");
    assert_true(o.sampler.parent_based);
    assert_int_equal(o.sampler.root, WEFT_SAMPLER_ALWAYS_ON);
    weft_tracer_t *t = (weft_tracer_t *)&o; /* must stay untouched on failure */
    o.service_name = "";
    assert_int_equal(weft_tracer_new(&o, &t), WEFT_EINVAL);
    char longname[200];
    memset(longname, 'n', 199);
    longname[199] = 0;
    o.service_name = longname;
    assert_int_equal(weft_tracer_new(&o, &t), WEFT_EINVAL);
    o.service_name = NULL;
    assert_int_equal(weft_tracer_new(&o, &t), WEFT_EINVAL);
    o.service_name = "x";
    weft_span_exporter_t no_fn = {0};
    o.exporter = &no_fn;
    assert_int_equal(weft_tracer_new(&o, &t), WEFT_EINVAL);
    assert_int_equal(weft_tracer_new(NULL, &t), WEFT_EINVAL);
    assert_ptr_equal(t, (weft_tracer_t *)&o);
    /* no exporter: spans do not record, contexts still work */
    o.exporter = NULL;
    assert_int_equal(weft_tracer_new(&o, &t), 0);
    weft_span_t *s = weft_span_start(t, "x", WEFT_SPAN_SERVER, NULL);
    assert_non_null(s);
    assert_false(weft_span_is_recording(s));
    assert_true(weft_trace_context_is_valid(weft_span_context(s)));
    assert_true(weft_span_context(s)->flags & WEFT_TRACE_FLAG_SAMPLED);
    weft_span_end(s);
    weft_tracer_free(t);
    weft_tracer_free(NULL);
    /* NULL everywhere */
    assert_null(weft_span_start(NULL, "x", WEFT_SPAN_SERVER, NULL));
    assert_null(weft_span_context(NULL));
    assert_false(weft_span_is_recording(NULL));
    weft_span_set_name(NULL, "x");
    weft_span_set_attr_int(NULL, "k", 1);
    weft_span_set_attrs(NULL, NULL, 3);
    weft_span_add_event(NULL, "e", NULL, 0);
    weft_span_set_status(NULL, WEFT_SPAN_STATUS_ERROR, "x");
    weft_span_end(NULL);
}

static void test_span_lifecycle(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(8);
    assert_non_null(mem);
    weft_tracer_t *t = tracer_with(mem, weft_sampler_parent_based(weft_sampler_always_on()));
    weft_trace_context_t parent;
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &parent), 0);
    assert_int_equal(weft_tracestate_parse("vendor=1", 8, &parent), 0);
    weft_span_t *s = weft_span_start(t, "GET /x", WEFT_SPAN_SERVER, &parent);
    assert_true(weft_span_is_recording(s));
    const weft_trace_context_t *sc = weft_span_context(s);
    assert_memory_equal(sc->trace_id, parent.trace_id, 16);
    assert_memory_not_equal(sc->span_id, parent.span_id, 8);
    assert_false(sc->remote);
    assert_int_equal(sc->flags, WEFT_TRACE_FLAG_SAMPLED);
    assert_int_equal(sc->tracestate_len, 8); /* inherited */
    weft_span_set_attr_str(s, "http.route", "/x");
    weft_span_set_attr_int(s, "http.response.status_code", 200);
    weft_span_set_attr_int(s, "http.response.status_code", 500); /* replaces */
    weft_span_set_attr_bool(s, "b", true);
    weft_span_set_attr_double(s, "d", 1.5);
    weft_span_set_attr_str(s, "http.route", "/y"); /* replaces, string to string */
    weft_attr_t ev[] = {WEFT_ATTR_INT("attempt", 2), WEFT_ATTR_STR("reason", "timeout"),
                        WEFT_ATTR_INT("attempt", 3)};
    weft_span_add_event(s, "retry", ev, 3);
    weft_span_add_event(s, "plain", NULL, 0);
    weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, "boom");
    weft_span_t *child = weft_span_start(t, "db", WEFT_SPAN_CLIENT, weft_span_context(s));
    weft_span_end(child);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 2);
    /* reuse the span memory, overwriting it, before reading the copies back */
    for (int i = 0; i < 3; i++) {
        weft_span_t *x = weft_span_start(t, "zzzzzzzzzz", WEFT_SPAN_INTERNAL, NULL);
        weft_span_set_attr_str(x, "http.route", "overwritten");
        weft_span_add_event(x, "overwritten", ev, 2);
        weft_span_end(x);
    }
    weft_span_data_t d;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 1, &d), 0);
    assert_string_equal(d.name, "GET /x");
    assert_string_equal(d.service_name, "svc");
    assert_int_equal(d.kind, WEFT_SPAN_SERVER);
    assert_true(d.parent_remote);
    assert_memory_equal(d.parent_span_id, parent.span_id, 8);
    assert_memory_equal(d.context.trace_id, parent.trace_id, 16);
    assert_int_equal(d.nattrs, 4);
    assert_int_equal(d.dropped_attrs, 0);
    assert_int_equal(d.attrs[0].type, WEFT_ATTR_STRING);
    assert_string_equal(d.attrs[0].key, "http.route");
    assert_string_equal(d.attrs[0].v.s, "/y");
    assert_int_equal(find_attr(d.attrs, d.nattrs, "http.response.status_code")->v.i, 500);
    assert_true(find_attr(d.attrs, d.nattrs, "b")->v.b);
    assert_true(find_attr(d.attrs, d.nattrs, "d")->v.d == 1.5);
    assert_int_equal(d.nevents, 2);
    assert_string_equal(d.events[0].name, "retry");
    assert_int_equal(d.events[0].nattrs, 2); /* "attempt" set twice keeps the last */
    assert_int_equal(find_attr(d.events[0].attrs, 2, "attempt")->v.i, 3);
    assert_string_equal(find_attr(d.events[0].attrs, 2, "reason")->v.s, "timeout");
    assert_string_equal(d.events[1].name, "plain");
    assert_int_equal(d.events[1].nattrs, 0);
    assert_true(d.events[0].time_ns >= d.start_ns && d.events[1].time_ns <= d.end_ns);
    assert_int_equal(d.status, WEFT_SPAN_STATUS_ERROR);
    assert_string_equal(d.status_message, "boom");
    assert_true(d.end_ns >= d.start_ns && d.start_ns > 1600000000000000000ull);
    weft_span_data_t cd;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &cd), 0);
    assert_string_equal(cd.name, "db");
    assert_int_equal(cd.kind, WEFT_SPAN_CLIENT);
    assert_memory_equal(cd.parent_span_id, d.context.span_id, 8);
    assert_false(cd.parent_remote);
    assert_int_equal(cd.status, WEFT_SPAN_STATUS_UNSET);
    assert_null(cd.status_message);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 5, &cd), WEFT_ERANGE);
    /* a root span: new trace, no parent, empty tracestate */
    weft_trace_memory_exporter_clear(mem);
    s = weft_span_start(t, "root", WEFT_SPAN_INTERNAL, NULL);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &d), 0);
    assert_memory_not_equal(d.context.trace_id, parent.trace_id, 16);
    static const uint8_t zero[8];
    assert_memory_equal(d.parent_span_id, zero, 8);
    assert_int_equal(d.context.tracestate_len, 0);
    weft_tracer_free(t);
}

static void test_span_status_rules(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(8);
    weft_tracer_t *t = tracer_with(mem, weft_sampler_always_on());
    weft_span_data_t d;
    /* UNSET is ignored; a newer ERROR replaces the message; OK wins and is final */
    weft_span_t *s = weft_span_start(t, "a", WEFT_SPAN_INTERNAL, NULL);
    weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, "first");
    weft_span_set_status(s, WEFT_SPAN_STATUS_UNSET, NULL);
    weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, "second");
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &d), 0);
    assert_int_equal(d.status, WEFT_SPAN_STATUS_ERROR);
    assert_string_equal(d.status_message, "second");
    s = weft_span_start(t, "b", WEFT_SPAN_INTERNAL, NULL);
    weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, "x");
    weft_span_set_status(s, WEFT_SPAN_STATUS_OK, "ignored for OK");
    weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, "too late");
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 1, &d), 0);
    assert_int_equal(d.status, WEFT_SPAN_STATUS_OK);
    assert_null(d.status_message);
    weft_tracer_free(t);
}

static void test_span_limits(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(8);
    weft_tracer_t *t = tracer_with(mem, weft_sampler_always_on());
    weft_span_data_t d;
    char key[32];
    /* attribute count */
    weft_span_t *s = weft_span_start(t, "many", WEFT_SPAN_INTERNAL, NULL);
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        weft_span_set_attr_int(s, key, i);
    }
    weft_span_set_attr_int(s, "k3", 333); /* an existing key still updates when full */
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &d), 0);
    assert_int_equal(d.nattrs, WEFT_SPAN_MAX_ATTRS);
    assert_int_equal(d.dropped_attrs, 8);
    assert_int_equal(d.attrs[31].v.i, 31);
    assert_int_equal(d.attrs[3].v.i, 333);
    assert_null(find_attr(d.attrs, d.nattrs, "k32"));
    /* string bytes: values cut to 255 bytes, and the span's area runs out */
    char big[1000];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    s = weft_span_start(t, "bytes", WEFT_SPAN_INTERNAL, NULL);
    int set = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        weft_span_set_attr_str(s, key, big);
        set++;
    }
    weft_span_set_attr_bool(s, "fits", true); /* a small one still fits */
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 1, &d), 0);
    assert_int_equal(strlen(d.attrs[0].v.s), WEFT_SPAN_VALUE_MAX - 1);
    /* each string attribute takes 3 or 4 key bytes + 256 value bytes: 7 fit in 2048 */
    assert_int_equal(d.nattrs, 8);
    assert_int_equal(d.dropped_attrs, (unsigned)set - 7);
    assert_true(find_attr(d.attrs, d.nattrs, "fits")->v.b);
    for (unsigned i = 0; i < d.nattrs; i++) assert_non_null(d.attrs[i].key);
    /* names and values are cut at a UTF-8 boundary */
    char name[200];
    memset(name, 'a', 126);
    memcpy(name + 126, "\xc3\xa9\xc3\xa9", 4); /* "éé" across the 127-byte limit */
    name[130] = 0;
    s = weft_span_start(t, name, WEFT_SPAN_INTERNAL, NULL);
    char val[300];
    memset(val, 'b', 253);
    memcpy(val + 253, "\xe2\x82\xac", 3); /* "€" straddling byte 255 */
    val[256] = 0;
    weft_span_set_attr_str(s, "utf8", val);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 2, &d), 0);
    assert_int_equal(strlen(d.name), 126);
    assert_int_equal(strlen(d.attrs[0].v.s), 253);
    /* events: count and the shared attribute pool */
    s = weft_span_start(t, "events", WEFT_SPAN_INTERNAL, NULL);
    weft_attr_t ev[3] = {WEFT_ATTR_INT("a", 1), WEFT_ATTR_INT("b", 2), WEFT_ATTR_INT("c", 3)};
    for (int i = 0; i < 20; i++) weft_span_add_event(s, "e", ev, 3);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 3, &d), 0);
    assert_int_equal(d.nevents, WEFT_SPAN_MAX_EVENTS);
    assert_int_equal(d.dropped_events, 4);
    assert_int_equal(d.nevent_attrs, WEFT_SPAN_MAX_EVENT_ATTRS);
    /* 10 events get 3 attributes, the 11th 2 (32 in all), the rest none */
    assert_int_equal(d.events[9].nattrs, 3);
    assert_int_equal(d.events[10].nattrs, 2);
    assert_int_equal(d.events[10].dropped_attrs, 1);
    assert_int_equal(d.events[15].nattrs, 0);
    assert_int_equal(d.events[15].dropped_attrs, 3);
    assert_int_equal(d.events[10].attrs[1].v.i, 2);
    assert_ptr_equal(d.events[1].attrs, d.events[0].attrs + 3);
    weft_tracer_free(t);
}

static void test_unsampled_and_propagation(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(8);
    weft_tracer_t *t = tracer_with(mem, weft_sampler_parent_based(weft_sampler_always_on()));
    weft_trace_context_t parent;
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &parent), 0);
    parent.flags = 0;
    weft_span_t *s = weft_span_start(t, "no", WEFT_SPAN_SERVER, &parent);
    assert_false(weft_span_is_recording(s));
    const weft_trace_context_t *c = weft_span_context(s);
    assert_memory_equal(c->trace_id, parent.trace_id, 16);
    assert_int_equal(c->flags, 0);
    weft_span_set_attr_int(s, "x", 1);
    weft_span_set_name(s, "renamed");
    weft_span_add_event(s, "e", NULL, 0);
    /* its child is unsampled too, and injection still carries the trace */
    weft_span_t *child = weft_span_start(t, "child", WEFT_SPAN_CLIENT, c);
    assert_false(weft_span_is_recording(child));
    char tp[WEFT_TRACEPARENT_LEN];
    assert_int_equal(weft_traceparent_format(weft_span_context(child), tp), WEFT_TRACEPARENT_LEN);
    assert_memory_equal(tp + 3, &TP[3], 32);
    assert_int_equal(tp[54], '0');
    weft_span_end(child);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 0);
    /* a sampling-only parent (b3: 0): a new trace that follows the decision */
    weft_trace_context_t deny;
    assert_int_equal(weft_b3_parse("0", 1, &deny), 0);
    s = weft_span_start(t, "denied", WEFT_SPAN_SERVER, &deny);
    assert_false(weft_span_is_recording(s));
    assert_true(weft_trace_context_is_valid(weft_span_context(s)));
    weft_span_end(s);
    weft_trace_context_t accept;
    assert_int_equal(weft_b3_parse("1", 1, &accept), 0);
    weft_span_exporter_t *mem2 = weft_trace_memory_exporter_new(8);
    weft_tracer_t *t_off = tracer_with(mem2, weft_sampler_parent_based(weft_sampler_always_off()));
    s = weft_span_start(t_off, "accepted", WEFT_SPAN_SERVER, &accept);
    assert_true(weft_span_is_recording(s));
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem2), 1);
    weft_span_data_t d;
    assert_int_equal(weft_trace_memory_exporter_get(mem2, 0, &d), 0);
    static const uint8_t zero[8];
    assert_memory_equal(d.parent_span_id, zero, 8); /* a root: the decision had no ids */
    /* a deferred B3 parent: the root sampler decides, in the parent's trace */
    weft_trace_context_t deferred;
    assert_int_equal(weft_b3_parse("64fe8b2a57d3eff7-e457b5a2e4d86bd1", 33, &deferred), 0);
    s = weft_span_start(t_off, "deferred", WEFT_SPAN_SERVER, &deferred);
    assert_false(weft_span_is_recording(s));
    assert_memory_equal(weft_span_context(s)->trace_id, deferred.trace_id, 16);
    assert_false(weft_span_context(s)->deferred);
    weft_span_end(s);
    s = weft_span_start(t, "deferred", WEFT_SPAN_SERVER, &deferred); /* root always_on */
    assert_true(weft_span_is_recording(s));
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 1);
    weft_tracer_free(t_off);
    weft_tracer_free(t);
}

/* ---- exporters ---- */

typedef struct {
    int calls;
    size_t spans;
    int shutdowns;
    int fail;
    char last_name[WEFT_SPAN_NAME_MAX];
} probe_t;

static int probe_export(const weft_span_data_t *const *spans, size_t n, void *arg)
{
    probe_t *p = arg;
    p->calls++;
    p->spans += n;
    if (n) snprintf(p->last_name, sizeof(p->last_name), "%s", spans[n - 1]->name);
    return p->fail ? WEFT_EAGAIN : 0;
}

static void probe_shutdown(void *arg)
{
    ((probe_t *)arg)->shutdowns++;
}

static void test_exporter_interface(void **state)
{
    probe_t p = {0};
    /* the exporter value may live on the stack: the tracer copies it */
    weft_tracer_t *t;
    {
        weft_span_exporter_t e = {probe_export, probe_shutdown, &p};
        t = tracer_with(&e, weft_sampler_always_on());
        memset(&e, 0, sizeof(e));
    }
    weft_span_end(weft_span_start(t, "one", WEFT_SPAN_INTERNAL, NULL));
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.spans, 1);
    assert_string_equal(p.last_name, "one");
    assert_int_equal(weft_tracer_dropped(t), 0);
    p.fail = 1;
    weft_span_end(weft_span_start(t, "two", WEFT_SPAN_INTERNAL, NULL));
    weft_span_end(weft_span_start(t, "three", WEFT_SPAN_INTERNAL, NULL));
    assert_int_equal(weft_tracer_dropped(t), 2);
    /* unsampled spans never reach the exporter */
    weft_trace_context_t parent;
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &parent), 0);
    parent.flags = 0;
    weft_tracer_t *t2;
    weft_span_exporter_t e2 = {probe_export, NULL, &p};
    t2 = tracer_with(&e2, weft_sampler_parent_based(weft_sampler_always_on()));
    weft_span_end(weft_span_start(t2, "unsampled", WEFT_SPAN_INTERNAL, &parent));
    assert_int_equal(p.calls, 3);
    weft_tracer_free(t2); /* shutdown NULL: fine */
    assert_int_equal(p.shutdowns, 0);
    weft_tracer_free(t);
    assert_int_equal(p.shutdowns, 1);
}

static void test_memory_exporter(void **state)
{
    assert_null(weft_trace_memory_exporter_new(0));
    assert_null(weft_trace_memory_exporter_new(1000001));
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(2);
    weft_tracer_t *t = tracer_with(mem, weft_sampler_always_on());
    weft_span_end(weft_span_start(t, "a", WEFT_SPAN_INTERNAL, NULL));
    weft_span_data_t first;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &first), 0);
    weft_span_end(weft_span_start(t, "b", WEFT_SPAN_INTERNAL, NULL));
    weft_span_end(weft_span_start(t, "c", WEFT_SPAN_INTERNAL, NULL)); /* full: refused */
    assert_int_equal(weft_trace_memory_exporter_count(mem), 2);
    assert_int_equal(weft_trace_memory_exporter_dropped(mem), 1);
    assert_int_equal(weft_tracer_dropped(t), 1);
    assert_string_equal(first.name, "a"); /* earlier reads stay valid while full */
    assert_string_equal(first.service_name, "svc");
    weft_span_data_t d;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 1, &d), 0);
    assert_string_equal(d.name, "b");
    weft_trace_memory_exporter_clear(mem);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 0);
    assert_int_equal(weft_trace_memory_exporter_dropped(mem), 0);
    weft_span_end(weft_span_start(t, "d", WEFT_SPAN_INTERNAL, NULL));
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &d), 0);
    assert_string_equal(d.name, "d");
    /* batches: several spans in one call, the overflow counted */
    const weft_span_data_t *batch[3] = {&d, &d, &d};
    assert_int_equal(mem->export_spans(batch, 3, mem->arg), WEFT_ENOSPC);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 2);
    assert_int_equal(weft_trace_memory_exporter_dropped(mem), 2);
    weft_tracer_free(t);
    /* freed without a tracer */
    weft_span_exporter_t *lone = weft_trace_memory_exporter_new(1);
    lone->shutdown(lone->arg);
}

/* Ends spans in a steady loop and checks the same memory comes back (no allocation). */
static void test_freelist_reuse(void **state)
{
    weft_tracer_t *t = tracer_with(NULL, weft_sampler_always_on());
    weft_span_t *a = weft_span_start(t, "a", WEFT_SPAN_SERVER, NULL);
    weft_span_end(a);
    for (int i = 0; i < 100; i++) {
        weft_span_t *b = weft_span_start(t, "b", WEFT_SPAN_SERVER, NULL);
        assert_ptr_equal(a, b);
        weft_span_end(b);
    }
    /* more open spans than the list keeps: all still work, the surplus is freed */
    weft_span_t *open[100];
    for (int i = 0; i < 100; i++) open[i] = weft_span_start(t, "o", WEFT_SPAN_INTERNAL, NULL);
    for (int i = 0; i < 100; i++) weft_span_end(open[i]);
    weft_tracer_free(t);
}

/* ---- threads ---- */

#define THREADS    4
#define PER_THREAD 3000
static weft_tracer_t *mt_tracer;

static void *spans_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        weft_span_t *s = weft_span_start(mt_tracer, "outer", WEFT_SPAN_SERVER, NULL);
        weft_span_set_attr_int(s, "i", i);
        weft_span_t *c =
            weft_span_start(mt_tracer, "inner", WEFT_SPAN_CLIENT, weft_span_context(s));
        weft_span_add_event(c, "e", &WEFT_ATTR_INT("i", i), 1);
        weft_span_end(c);
        weft_span_end(s);
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 8);
}

static void test_threads(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(THREADS * PER_THREAD * 2);
    mt_tracer = tracer_with(mem, weft_sampler_always_on());
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, spans_thread, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    size_t n = weft_trace_memory_exporter_count(mem);
    assert_int_equal(n, THREADS * PER_THREAD * 2);
    assert_int_equal(weft_tracer_dropped(mt_tracer), 0);
    /* every span id distinct; every inner span is the child of an outer one with its i */
    typedef struct {
        uint8_t id[8];
        int64_t i;
    } rec_t;
    rec_t *outer = malloc(n * sizeof(rec_t)), *all = malloc(n * sizeof(rec_t));
    assert_true(outer && all);
    size_t nouter = 0;
    weft_span_data_t d;
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(weft_trace_memory_exporter_get(mem, k, &d), 0);
        memcpy(all[k].id, d.context.span_id, 8);
        if (strcmp(d.name, "outer") == 0) {
            assert_int_equal(d.nattrs, 1);
            memcpy(outer[nouter].id, d.context.span_id, 8);
            outer[nouter++].i = d.attrs[0].v.i;
        }
    }
    assert_int_equal(nouter, n / 2);
    qsort(outer, nouter, sizeof(rec_t), cmp_id);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(weft_trace_memory_exporter_get(mem, k, &d), 0);
        if (strcmp(d.name, "inner") != 0) continue;
        assert_int_equal(d.nevents, 1);
        assert_int_equal(d.events[0].nattrs, 1);
        rec_t *o = bsearch(d.parent_span_id, outer, nouter, sizeof(rec_t), cmp_id);
        assert_non_null(o);
        assert_int_equal(o->i, d.events[0].attrs[0].v.i);
    }
    qsort(all, n, sizeof(rec_t), cmp_id);
    for (size_t k = 1; k < n; k++) assert_memory_not_equal(all[k - 1].id, all[k].id, 8);
    free(outer);
    free(all);
    weft_tracer_free(mt_tracer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_ids_fork),
        cmocka_unit_test(test_samplers),
        cmocka_unit_test(test_tracer_options),
        cmocka_unit_test(test_span_lifecycle),
        cmocka_unit_test(test_span_status_rules),
        cmocka_unit_test(test_span_limits),
        cmocka_unit_test(test_unsampled_and_propagation),
        cmocka_unit_test(test_exporter_interface),
        cmocka_unit_test(test_memory_exporter),
        cmocka_unit_test(test_freelist_reuse),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
