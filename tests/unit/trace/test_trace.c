/*
 * test_trace.c - W3C traceparent/tracestate vectors, B3, samplers, spans and exporters.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/trace.h"

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static int tp(const char *s)
{
    weft_trace_context_t c;
    return weft_traceparent_parse(s, strlen(s), &c);
}

static void test_traceparent_vectors(void **state)
{
    weft_trace_context_t c;
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &c), 0);
    assert_int_equal(c.trace_id[0], 0x0a);
    assert_int_equal(c.span_id[7], 0x31);
    assert_int_equal(c.flags, 1);
    assert_true(c.remote);
    char out[64];
    assert_int_equal(weft_traceparent_format(&c, out), 55);
    assert_memory_equal(out, TP, 55);
    /* valid */
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"), 0);
    assert_int_equal(tp("  " TP "\t"), 0); /* OWS around the value */
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff"), 0);
    assert_int_equal(tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), 0);
    assert_int_equal(
        tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds"), 0);
    /* invalid */
    assert_int_equal(tp("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x"), WEFT_EPARSE);
    assert_int_equal(tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x"), WEFT_EPARSE);
    assert_int_equal(tp("00-00000000000000000000000000000000-b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("0G-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"), WEFT_EPARSE);
    assert_int_equal(tp("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01"), WEFT_EPARSE);
    assert_int_equal(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g"), WEFT_EPARSE);
    assert_int_equal(tp(""), WEFT_EPARSE);
    assert_int_equal(tp("00"), WEFT_EPARSE);
    assert_int_equal(tp("0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), WEFT_EPARSE);
    /* a failed parse leaves the context alone */
    weft_trace_context_t keep = c;
    assert_int_equal(weft_traceparent_parse("junk", 4, &c), WEFT_EPARSE);
    assert_memory_equal(&keep, &c, sizeof(c));
}

static int ts(const char *s, weft_trace_context_t *c)
{
    return weft_tracestate_parse(s, strlen(s), c);
}

static void test_tracestate_vectors(void **state)
{
    weft_trace_context_t c;
    assert_int_equal(ts("foo=1,bar=2", &c), 0);
    assert_int_equal(c.tracestate_len, 11);
    assert_int_equal(ts(" foo=1 , ,bar=2 ,", &c), 0); /* OWS and empty members */
    assert_memory_equal(c.tracestate, "foo=1,bar=2", 11);
    assert_int_equal(c.tracestate_len, 11);
    assert_int_equal(ts("tenant@sys=v", &c), 0);
    assert_int_equal(ts("1tenant@sys=v", &c), 0);
    assert_int_equal(ts("a_-*/0=b c", &c), 0);            /* value with an inner space */
    assert_int_equal(ts("foo=1,foo=2", &c), WEFT_EPARSE); /* duplicate key */
    assert_int_equal(c.tracestate_len, 0);                /* invalid state is dropped */
    assert_int_equal(ts("Foo=1", &c), WEFT_EPARSE);
    assert_int_equal(ts("1foo=1", &c), WEFT_EPARSE); /* simple keys start lcalpha */
    assert_int_equal(ts("@sys=1", &c), WEFT_EPARSE);
    assert_int_equal(ts("t@=1", &c), WEFT_EPARSE);
    assert_int_equal(ts("t@1sys=1", &c), WEFT_EPARSE);
    assert_int_equal(ts("t@abcdefghijklmno=1", &c), WEFT_EPARSE); /* system id > 14 */
    assert_int_equal(ts("foo=", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo=a=b", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo=\x01", &c), WEFT_EPARSE);
    char big[4096];
    size_t o = 0;
    for (int i = 0; i < 32; i++) o += (size_t)sprintf(big + o, "%sk%d=v", i ? "," : "", i);
    assert_int_equal(ts(big, &c), 0);
    sprintf(big + o, ",k32=v");
    assert_int_equal(ts(big, &c), WEFT_EPARSE); /* 33 members */
    memset(big, 'a', 256);
    strcpy(big + 256, "=v");
    assert_int_equal(ts(big, &c), 0); /* 256-byte key */
    memset(big, 'a', 257);
    strcpy(big + 257, "=v");
    assert_int_equal(ts(big, &c), WEFT_EPARSE);
    /* put: ours first, old entry removed, capped at 32 */
    o = 0;
    for (int i = 0; i < 32; i++) o += (size_t)sprintf(big + o, "%sk%d=v", i ? "," : "", i);
    assert_int_equal(ts(big, &c), 0);
    assert_int_equal(weft_tracestate_put(&c, "k5", "new"), 0);
    assert_memory_equal(c.tracestate, "k5=new,k0=v,", 12);
    assert_int_equal(weft_tracestate_put(&c, "weft", "x"), 0);
    assert_memory_equal(c.tracestate, "weft=x,k5=new,", 14);
    assert_null(strstr(c.tracestate, "k31=")); /* oldest member dropped at 32 */
    assert_int_equal(weft_tracestate_put(&c, "Bad", "x"), WEFT_EINVAL);
}

static void test_b3(void **state)
{
    weft_trace_context_t c;
    const char *s = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), 0);
    assert_int_equal(c.trace_id[0], 0x80);
    assert_int_equal(c.flags, 1);
    char out[64];
    assert_int_equal(weft_b3_format(&c, out), 51);
    assert_memory_equal(out, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1", 51);
    s = "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), 0);
    assert_int_equal(c.trace_id[0], 0);
    assert_int_equal(c.trace_id[8], 0x64);
    assert_int_equal(c.flags, 0);
    s = "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), 0);
    assert_int_equal(c.flags, 1);
    assert_int_equal(weft_b3_parse("0", 1, &c), WEFT_ENOENT);
    assert_int_equal(weft_b3_parse("d", 1, &c), WEFT_ENOENT);
    s = "64fe8b2a57d3eff7-e457b5a2e4d86bd1-x";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), WEFT_EPARSE);
    s = "64fe8b2a57d3eff-e457b5a2e4d86bd1";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), WEFT_EPARSE);
    s = "0000000000000000-e457b5a2e4d86bd1";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), WEFT_EPARSE);
    s = "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3";
    assert_int_equal(weft_b3_parse(s, strlen(s), &c), WEFT_EPARSE);
}

typedef struct {
    const char *names[8];
    const char *values[8];
    int n;
    char set_buf[4][128];
    int nset;
} hdrs_t;

static int get(void *arg, const char *name, const char **v, size_t *len)
{
    hdrs_t *h = arg;
    for (int i = 0; i < h->n; i++)
        if (strcasecmp(h->names[i], name) == 0) {
            *v = h->values[i];
            *len = strlen(h->values[i]);
            return 1;
        }
    return 0;
}

static int set(void *arg, const char *name, const char *v, size_t len)
{
    hdrs_t *h = arg;
    snprintf(h->set_buf[h->nset++], 128, "%s: %.*s", name, (int)len, v);
    return 0;
}

static void test_extract_inject(void **state)
{
    weft_trace_context_t c;
    hdrs_t h = {.names = {"traceparent", "tracestate"}, .values = {TP, "a=1"}, .n = 2};
    assert_int_equal(weft_trace_extract(get, &h, &c), 0);
    assert_int_equal(c.tracestate_len, 3);
    hdrs_t h2 = {.names = {"traceparent", "b3"},
                 .values = {"bogus", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0"},
                 .n = 2};
    assert_int_equal(weft_trace_extract(get, &h2, &c), 0); /* falls back to b3 */
    assert_int_equal(c.flags, 0);
    hdrs_t h3 = {.names = {"X-B3-TraceId", "X-B3-SpanId", "X-B3-Sampled"},
                 .values = {"463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "1"},
                 .n = 3};
    assert_int_equal(weft_trace_extract(get, &h3, &c), 0);
    assert_int_equal(c.trace_id[0], 0x46);
    hdrs_t none = {.n = 0};
    assert_int_equal(weft_trace_extract(get, &none, &c), WEFT_ENOENT);
    hdrs_t out = {0};
    assert_int_equal(weft_trace_extract(get, &h, &c), 0);
    assert_int_equal(weft_trace_inject(&c, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3, set, &out), 0);
    assert_int_equal(out.nset, 3);
    assert_string_equal(out.set_buf[0], "traceparent: " TP);
    assert_string_equal(out.set_buf[1], "tracestate: a=1");
    assert_string_equal(out.set_buf[2], "b3: 0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1");
}

static void test_samplers(void **state)
{
    uint8_t id[16] = {0};
    weft_sampler_t on = weft_sampler_always_on(), off = weft_sampler_always_off();
    assert_true(weft_sampler_should_sample(&on, NULL, id));
    assert_false(weft_sampler_should_sample(&off, NULL, id));
    weft_sampler_t half = weft_sampler_ratio(0.5);
    memset(id + 8, 0x7f, 8); /* just below 2^63 */
    assert_true(weft_sampler_should_sample(&half, NULL, id));
    memset(id + 8, 0x80, 8);
    assert_false(weft_sampler_should_sample(&half, NULL, id));
    weft_sampler_t zero = weft_sampler_ratio(0);
    memset(id + 8, 0, 8);
    assert_false(weft_sampler_should_sample(&zero, NULL, id));
    weft_sampler_t one = weft_sampler_ratio(1);
    memset(id + 8, 0xff, 8);
    assert_true(weft_sampler_should_sample(&one, NULL, id));
    /* about the ratio over many random ids */
    int n = 0;
    weft_sampler_t q = weft_sampler_ratio(0.25);
    for (int i = 0; i < 100000; i++) {
        weft_trace_random_trace_id(id);
        n += weft_sampler_should_sample(&q, NULL, id);
    }
    assert_true(n > 24000 && n < 26000);
    weft_sampler_t pb = weft_sampler_parent_based(weft_sampler_always_off());
    weft_trace_context_t parent = {.flags = 1};
    assert_true(weft_sampler_should_sample(&pb, &parent, id));
    parent.flags = 0;
    weft_sampler_t pb_on = weft_sampler_parent_based(on);
    assert_false(weft_sampler_should_sample(&pb_on, &parent, id));
    assert_false(weft_sampler_should_sample(&pb, NULL, id));
}

static void test_spans(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(4);
    weft_tracer_options_t o;
    weft_tracer_options_init(&o);
    o.service_name = "svc";
    o.exporter = mem;
    weft_tracer_t *t;
    assert_int_equal(weft_tracer_new(&o, &t), 0);
    weft_trace_context_t parent;
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &parent), 0);
    weft_span_t *s = weft_span_start(t, "GET /x", WEFT_SPAN_SERVER, &parent);
    assert_true(weft_span_is_recording(s));
    const weft_trace_context_t *sc = weft_span_context(s);
    assert_memory_equal(sc->trace_id, parent.trace_id, 16);
    assert_memory_not_equal(sc->span_id, parent.span_id, 8);
    weft_span_set_attr_str(s, "http.route", "/x");
    weft_span_set_attr_int(s, "http.response.status_code", 200);
    weft_span_set_attr_int(s, "http.response.status_code", 500); /* replaces */
    weft_span_set_attr_bool(s, "b", true);
    weft_span_set_attr_double(s, "d", 1.5);
    weft_span_add_event(s, "retry");
    weft_span_set_status(s, WEFT_SPAN_STATUS_ERROR, "boom");
    weft_span_t *child = weft_span_start(t, "db", WEFT_SPAN_CLIENT, weft_span_context(s));
    weft_span_end(child);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 2);
    weft_span_data_t d;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 1, &d), 0);
    assert_string_equal(d.name, "GET /x");
    assert_string_equal(d.service_name, "svc");
    assert_int_equal(d.kind, WEFT_SPAN_SERVER);
    assert_true(d.parent_remote);
    assert_memory_equal(d.parent_span_id, parent.span_id, 8);
    assert_int_equal(d.nattrs, 4);
    assert_string_equal(d.attrs[0].v.s, "/x");
    assert_int_equal(d.attrs[1].v.i, 500);
    assert_int_equal(d.nevents, 1);
    assert_string_equal(d.events[0].name, "retry");
    assert_int_equal(d.status, WEFT_SPAN_STATUS_ERROR);
    assert_string_equal(d.status_message, "boom");
    assert_true(d.end_ns >= d.start_ns && d.start_ns > 1600000000000000000ull);
    weft_span_data_t cd;
    assert_int_equal(weft_trace_memory_exporter_get(mem, 0, &cd), 0);
    assert_memory_equal(cd.parent_span_id, d.context.span_id, 8);
    assert_false(cd.parent_remote);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 2, &cd), WEFT_ERANGE);
    /* attribute limit */
    s = weft_span_start(t, "many", WEFT_SPAN_INTERNAL, NULL);
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        weft_span_set_attr_int(s, key, i);
    }
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_get(mem, 2, &d), 0);
    assert_int_equal(d.nattrs, WEFT_SPAN_MAX_ATTRS);
    assert_int_equal(d.dropped_attrs, 8);
    /* unsampled: context valid, nothing exported */
    weft_trace_context_t unsampled = parent;
    unsampled.flags = 0;
    s = weft_span_start(t, "no", WEFT_SPAN_SERVER, &unsampled);
    assert_false(weft_span_is_recording(s));
    assert_memory_equal(weft_span_context(s)->trace_id, parent.trace_id, 16);
    weft_span_set_attr_int(s, "x", 1);
    weft_span_end(s);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 3);
    /* ring keeps the newest capacity spans */
    for (int i = 0; i < 5; i++) weft_span_end(weft_span_start(t, "r", WEFT_SPAN_INTERNAL, NULL));
    assert_int_equal(weft_trace_memory_exporter_count(mem), 4);
    weft_tracer_free(t);
}

static weft_tracer_t *mt_tracer;

static void *spans_thread(void *arg)
{
    for (int i = 0; i < 2000; i++) {
        weft_span_t *s = weft_span_start(mt_tracer, "t", WEFT_SPAN_INTERNAL, NULL);
        weft_span_set_attr_int(s, "i", i);
        weft_span_end(s);
    }
    return NULL;
}

static void test_threads(void **state)
{
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(100000);
    weft_tracer_options_t o;
    weft_tracer_options_init(&o);
    o.exporter = mem;
    assert_int_equal(weft_tracer_new(&o, &mt_tracer), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, spans_thread, NULL);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(weft_trace_memory_exporter_count(mem), 8000);
    weft_tracer_free(mt_tracer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_vectors),
        cmocka_unit_test(test_tracestate_vectors),
        cmocka_unit_test(test_b3),
        cmocka_unit_test(test_extract_inject),
        cmocka_unit_test(test_samplers),
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
