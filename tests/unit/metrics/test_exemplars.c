/*
 * test_exemplars.c - histogram exemplars (latest per bucket, the plain observe leaving them,
 * invalid ids, threads racing scrapes without a torn exemplar), the OpenMetrics text
 * (exact, timestamps checked against the clock), the Prometheus text unchanged by
 * exemplars, and the Accept header's negotiation.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "weft/metrics.h"

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *write_fmt(weft_metrics_registry_t *reg, weft_metrics_format_t f)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(weft_metrics_write_format(reg, f, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

/* Removes the timestamp that ends each exemplar (" # {...} value TS"), after checking it is
 * seconds with three decimals within [t0, t1] (ms precision: t0 rounded down). */
static void strip_exemplar_times(char *text, uint64_t t0, uint64_t t1)
{
    char *line = text;
    while (*line) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        if (strstr(line, " # {") && strstr(line, " # {") < nl) {
            char *sp = nl;
            while (sp[-1] != ' ') sp--;
            unsigned long long sec;
            unsigned ms;
            char dot;
            assert_int_equal(sscanf(sp, "%llu%c%3u", &sec, &dot, &ms), 3);
            assert_int_equal(dot, '.');
            assert_int_equal(nl - sp, (long)(strchr(sp, '.') - sp) + 4); /* 3 decimals */
            uint64_t at = (uint64_t)sec * 1000000000u + ms * 1000000u;
            assert_true(at >= t0 / 1000000 * 1000000 && at <= t1);
            memmove(sp - 1, nl, strlen(nl) + 1);
            nl = sp - 1;
        }
        line = nl + 1;
    }
}

static const uint8_t T1[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                               0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t S1[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
static const uint8_t T2[16] = {[15] = 1};
static const uint8_t S2[8] = {[0] = 0xff, [7] = 2};
static const uint8_t ZERO[16];

static void test_openmetrics_exact(void **state)
{
    (void)state;
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    assert_non_null(reg);
    weft_metrics_family_t *req, *g, *h, *quiet;
    const char *lbl[] = {"route"};
    assert_int_equal(
        weft_metrics_counter_new(reg, "req_total", "Requests \"served\"\\\n", lbl, 1, &req), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "temp", "", NULL, 0, &g), 0);
    const double bounds[] = {0.1, 1};
    assert_int_equal(
        weft_metrics_histogram_new(reg, "lat_seconds", "Latency.", lbl, 1, bounds, 2, &h), 0);
    assert_int_equal(weft_metrics_histogram_new(reg, "quiet_seconds", "No exemplar.", NULL, 0,
                                                bounds, 2, &quiet),
                     0);
    weft_counter_add(weft_metrics_counter_child(req, (const char *[]){"a\"b"}), 3);
    weft_gauge_set(weft_metrics_gauge_child(g, NULL), -1.5);
    weft_histogram_t *ha = weft_metrics_histogram_child(h, (const char *[]){"a"});
    uint64_t t0 = wall_ns();
    weft_histogram_observe_exemplar(ha, 0.05, T2, S2); /* replaced below */
    weft_histogram_observe_exemplar(ha, 0.0123, T1, S1);
    weft_histogram_observe(ha, 0.07);                   /* leaves T1's */
    weft_histogram_observe_exemplar(ha, 5, T2, NULL);   /* +Inf, no span id */
    weft_histogram_observe_exemplar(ha, 0.5, ZERO, S1); /* invalid trace id: counted only */
    weft_histogram_observe(weft_metrics_histogram_child(quiet, NULL), 0.2);
    uint64_t t1 = wall_ns();

    char *om = write_fmt(reg, WEFT_METRICS_OPENMETRICS);
    strip_exemplar_times(om, t0, t1);
    assert_string_equal(
        om,
        "# HELP weft_metrics_label_sets_dropped Label sets refused because a family reached its "
        "limit or a value was too long.\n"
        "# TYPE weft_metrics_label_sets_dropped counter\n"
        "weft_metrics_label_sets_dropped_total 0\n"
        "# HELP req Requests \\\"served\\\"\\\\\\n\n"
        "# TYPE req counter\n"
        "req_total{route=\"a\\\"b\"} 3\n"
        "# TYPE temp gauge\n"
        "temp -1.5\n"
        "# HELP lat_seconds Latency.\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{route=\"a\",le=\"0.1\"} 3 # "
        "{trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 0.0123\n"
        "lat_seconds_bucket{route=\"a\",le=\"1\"} 4\n"
        "lat_seconds_bucket{route=\"a\",le=\"+Inf\"} 5 # "
        "{trace_id=\"00000000000000000000000000000001\"} 5\n"
        "lat_seconds_sum{route=\"a\"} 5.6323\n"
        "lat_seconds_count{route=\"a\"} 5\n"
        "# HELP quiet_seconds No exemplar.\n"
        "# TYPE quiet_seconds histogram\n"
        "quiet_seconds_bucket{le=\"0.1\"} 0\n"
        "quiet_seconds_bucket{le=\"1\"} 1\n"
        "quiet_seconds_bucket{le=\"+Inf\"} 1\n"
        "quiet_seconds_sum 0.2\n"
        "quiet_seconds_count 1\n"
        "# EOF\n");
    free(om);

    /* The Prometheus text has no exemplars and is what weft_metrics_write gives. */
    char *prom = write_fmt(reg, WEFT_METRICS_PROMETHEUS), *plain = NULL;
    size_t plen = 0;
    assert_int_equal(weft_metrics_write(reg, &plain, &plen), 0);
    assert_string_equal(prom, plain);
    assert_null(strstr(prom, "# {"));
    assert_null(strstr(prom, "# EOF"));
    assert_non_null(strstr(prom, "\n# HELP req_total Requests \"served\"\\\\\\n\n"
                                 "# TYPE req_total counter\n"));
    assert_non_null(strstr(prom, "\n# HELP temp \n# TYPE temp gauge\ntemp -1.5\n"));
    assert_non_null(strstr(prom, "\nlat_seconds_bucket{route=\"a\",le=\"0.1\"} 3\n"));
    free(prom);
    free(plain);

    char *x = NULL;
    size_t n = 0;
    assert_int_equal(weft_metrics_write_format(reg, (weft_metrics_format_t)7, &x, &n), WEFT_EINVAL);
    assert_null(x);
    /* NULL handles are ignored, like the plain observe */
    weft_histogram_observe_exemplar(NULL, 1, T1, S1);
    weft_metrics_registry_free(reg);
}

/* An empty registry (after its own counter) still ends with # EOF. */
static void test_openmetrics_eof(void **state)
{
    (void)state;
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    char *om = write_fmt(reg, WEFT_METRICS_OPENMETRICS);
    size_t n = strlen(om);
    assert_true(n > 6 && strcmp(om + n - 6, "# EOF\n") == 0);
    assert_null(strstr(om, "# EOF\n#"));
    free(om);
    weft_metrics_registry_free(reg);
}

/* ---- threads: no torn exemplar, the newest one shown ---- */

#define WRITERS 4

static weft_histogram_t *race_h;
static atomic_int race_done;
static atomic_int race_started; /* writers past their first exemplar */
static uint32_t race_count[WRITERS];

/* Exemplar k: the trace id, span id and value all derive from k, so a scrape that mixed
 * two writes would show ids and a value that disagree. */
static void ids_of(uint32_t k, uint8_t trace[16], uint8_t span[8])
{
    for (int i = 0; i < 16; i++) trace[i] = (uint8_t)(k >> (8 * (i % 4))) ^ (uint8_t)i;
    for (int i = 0; i < 8; i++) span[i] = (uint8_t)(k >> (8 * (i % 4))) ^ (uint8_t)(0x80 | i);
}

static void *race_writer(void *arg)
{
    intptr_t id = (intptr_t)arg;
    if (id % 2) weft_metrics_thread_register(); /* the others share slot 0 */
    uint32_t r = 0;
    /* until the scrapes are over (2^24 exemplars at most: k keeps the writer's id) */
    while (!atomic_load_explicit(&race_done, memory_order_relaxed) && r < (1u << 24) - 1) {
        uint32_t k = (uint32_t)id << 24 | ++r;
        uint8_t trace[16], span[8];
        ids_of(k, trace, span);
        /* all in the first bucket (<= 1): value k / 2^32 */
        weft_histogram_observe_exemplar(race_h, (double)k / 4294967296.0, trace, span);
        if (r == 1) atomic_fetch_add(&race_started, 1);
    }
    race_count[id] = r;
    return NULL;
}

static void check_exemplars(const char *text)
{
    const char *p = strstr(text, "race_bucket{le=\"1\"} ");
    if (!p) fail_msg("no first bucket in:\n%s", text);
    const char *ex = strstr(p, " # {trace_id=\"");
    const char *nl = strchr(p, '\n');
    if (!ex || ex > nl) return; /* no exemplar yet */
    char trace[33], span[17];
    double v;
    assert_int_equal(
        sscanf(ex, " # {trace_id=\"%32[0-9a-f]\",span_id=\"%16[0-9a-f]\"} %lf", trace, span, &v),
        3);
    uint32_t k = (uint32_t)(v * 4294967296.0 + 0.5);
    uint8_t t[16], s[8];
    ids_of(k, t, s);
    char want_t[33], want_s[17];
    for (int i = 0; i < 16; i++) snprintf(want_t + 2 * i, 3, "%02x", t[i]);
    for (int i = 0; i < 8; i++) snprintf(want_s + 2 * i, 3, "%02x", s[i]);
    assert_string_equal(trace, want_t);
    assert_string_equal(span, want_s);
}

static void test_threads_no_torn_exemplar(void **state)
{
    (void)state;
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *f;
    const double b[] = {1};
    assert_int_equal(weft_metrics_histogram_new(reg, "race", "r", NULL, 0, b, 1, &f), 0);
    race_h = weft_metrics_histogram_child(f, NULL);
    atomic_store(&race_done, 0);
    atomic_store(&race_started, 0);
    pthread_t t[WRITERS];
    for (intptr_t i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_writer, (void *)i), 0);
    /* the scrapes start once every writer writes (on a busy machine a writer may not have
     * run at all before 500 quick scrapes are over: nothing would be raced, nor shown) */
    for (int i = 0; atomic_load(&race_started) < WRITERS; i++) {
        assert_true(i < 10000); /* 10 s */
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    for (int k = 0; k < 500; k++) {
        char *om = write_fmt(reg, WEFT_METRICS_OPENMETRICS);
        check_exemplars(om);
        free(om);
    }
    atomic_store(&race_done, 1);
    uint64_t total = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        total += race_count[i];
    }
    char *om = write_fmt(reg, WEFT_METRICS_OPENMETRICS);
    check_exemplars(om);
    char want[64];
    snprintf(want, sizeof(want), "race_bucket{le=\"1\"} %" PRIu64 " # {", total);
    assert_non_null(strstr(om, want)); /* nothing lost, and an exemplar shown */
    free(om);
    weft_metrics_registry_free(reg);
}

/* The newest exemplar across shards wins: one thread writes, then another. */
static void *late_writer(void *arg)
{
    weft_metrics_thread_register();
    weft_histogram_observe_exemplar(arg, 0.5, T1, S1);
    return NULL;
}

static void test_newest_across_shards(void **state)
{
    (void)state;
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *f;
    const double b[] = {1};
    assert_int_equal(weft_metrics_histogram_new(reg, "nw", "n", NULL, 0, b, 1, &f), 0);
    weft_histogram_t *h = weft_metrics_histogram_child(f, NULL);
    weft_histogram_observe_exemplar(h, 0.25, T2, S2); /* slot 0, this thread */
    struct timespec d = {0, 2000000};                 /* a later millisecond */
    nanosleep(&d, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_writer, h), 0);
    pthread_join(t, NULL);
    char *om = write_fmt(reg, WEFT_METRICS_OPENMETRICS);
    assert_non_null(strstr(om, "nw_bucket{le=\"1\"} 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e"
                               "4736\",span_id=\"00f067aa0ba902b7\"} 0.5 "));
    free(om);
    nanosleep(&d, NULL);
    weft_histogram_observe_exemplar(h, 0.75, T2, S2); /* slot 0 again, newer still */
    om = write_fmt(reg, WEFT_METRICS_OPENMETRICS);
    assert_non_null(strstr(om, "nw_bucket{le=\"1\"} 3 # {trace_id=\"00000000000000000000000000000"
                               "001\",span_id=\"ff00000000000002\"} 0.75 "));
    free(om);
    weft_metrics_registry_free(reg);
}

/* ---- negotiation ---- */

static weft_metrics_format_t neg(const char *s)
{
    return weft_metrics_negotiate(s, s ? strlen(s) : 0);
}

static void test_negotiate(void **state)
{
    (void)state;
    const weft_metrics_format_t P = WEFT_METRICS_PROMETHEUS, O = WEFT_METRICS_OPENMETRICS;
    /* Prometheus 2.x's scrape Accept */
    assert_int_equal(neg("application/openmetrics-text;version=1.0.0,application/"
                         "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                         "*/*;q=0.1"),
                     O);
    assert_int_equal(neg("application/openmetrics-text"), O);
    assert_int_equal(neg(" Application/OpenMetrics-Text ; Version=\"1.0.0\" "), O);
    assert_int_equal(neg("text/plain, application/openmetrics-text"), O); /* a tie */
    assert_int_equal(neg("application/openmetrics-text;q=0.5,text/plain"), P);
    assert_int_equal(neg("application/openmetrics-text;q=0.5,*/*;q=0.6"), P);
    assert_int_equal(neg("application/openmetrics-text;q=0.6,*/*;q=0.5"), O);
    assert_int_equal(neg("application/openmetrics-text;q=0"), P);
    assert_int_equal(neg("application/openmetrics-text;q=0.000"), P);
    assert_int_equal(neg("application/openmetrics-text;q=1.0001"), P); /* malformed q */
    assert_int_equal(neg("application/openmetrics-text;q=abc"), P);
    assert_int_equal(neg("application/openmetrics-text;version=0.0.1"), P);
    assert_int_equal(neg("application/openmetrics-text;version=2.0.0"), P);
    assert_int_equal(neg("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;q=0.4"), P);
    /* a text/plain of another version does not compete */
    assert_int_equal(neg("text/plain;version=9,application/openmetrics-text;q=0.4"), O);
    assert_int_equal(neg("*/*"), P);
    assert_int_equal(neg("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), P);
    assert_int_equal(neg(""), P);
    assert_int_equal(neg(NULL), P);
    assert_int_equal(neg(",;,=;q=,application/openmetrics-text;;=x;q"), O);
    /* len bounds the header: the bytes after it are not read */
    const char *s = "text/plainapplication/openmetrics-text";
    assert_int_equal(weft_metrics_negotiate(s, 10), P);
    assert_int_equal(weft_metrics_negotiate(s + 10, strlen(s + 10)), O);
    assert_string_equal(weft_metrics_content_type(P), "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(weft_metrics_content_type(O),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openmetrics_exact),
        cmocka_unit_test(test_openmetrics_eof),
        cmocka_unit_test(test_threads_no_torn_exemplar),
        cmocka_unit_test(test_newest_across_shards),
        cmocka_unit_test(test_negotiate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
