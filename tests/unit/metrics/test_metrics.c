/*
 * test_metrics.c - families and names, children and limits, shards and threads, slot
 * recycling, exposition text (exact), escaping, number formatting, callbacks, process
 * metrics, and promtool's verdict on a registry with every kind of metric.
 */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/metrics.h"

/* The registry's own dropped-label-sets counter comes first in every exposition. */
#define DROPPED_HEAD                                                                               \
    "# HELP weft_metrics_label_sets_dropped_total Label sets refused because a family "            \
    "reached its limit or a value was too long.\n"                                                 \
    "# TYPE weft_metrics_label_sets_dropped_total counter\n"
#define DROPPED DROPPED_HEAD "weft_metrics_label_sets_dropped_total 0\n"

static char *expo(weft_metrics_registry_t *reg)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(weft_metrics_write(reg, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

/* Fails unless every line of the NULL-terminated list is a whole line of text (not the
 * first: exposition starts with a # HELP line). */
static void assert_lines(const char *text, const char *const *lines)
{
    for (; *lines; lines++) {
        char want[256];
        snprintf(want, sizeof(want), "\n%s\n", *lines);
        if (!strstr(text, want)) fail_msg("no line \"%s\" in:\n%s", *lines, text);
    }
}

/* The value on the line that starts with prefix (which ends before the value). */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ') {
            const char *v = p + n + 1;
            if (strncmp(v, "NaN", 3) == 0) return NAN;
            if (strncmp(v, "+Inf", 4) == 0) return INFINITY;
            return strtod(v, NULL);
        }
    }
    fail_msg("no sample %s in:\n%s", prefix, text);
    return 0;
}

static double zero_fn(void *arg)
{
    return 0;
}

static void test_names(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    assert_non_null(reg);
    weft_metrics_family_t *f = NULL;
    const char *bad_label[] = {"__x"};
    const char *colon_label[] = {"a:b"};
    const char *digit_label[] = {"1a"};
    const char *dup[] = {"a", "a"};
    const char *le[] = {"le"};
    const char *nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    char longname[WEFT_METRICS_MAX_NAME_LEN + 8];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;

    assert_int_equal(weft_metrics_gauge_new(reg, "9bad", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "bad-name", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, NULL, "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "sp ace", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, longname, "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(NULL, "g", "", NULL, 0, &f), WEFT_EINVAL);
    /* counters must be named *_total */
    assert_int_equal(weft_metrics_counter_new(reg, "requests", "", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_counter_fn(reg, "requests", "", zero_fn, NULL), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "", bad_label, 1, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "", colon_label, 1, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "", digit_label, 1, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "", dup, 2, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "", nine, 9, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "", NULL, 1, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "bad \xff help", NULL, 0, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", le, 1, NULL, 0, &f), WEFT_EINVAL);
    double same[] = {1, 1}, down[] = {2, 1}, nan[] = {NAN}, inf[] = {1, INFINITY};
    double many[WEFT_METRICS_MAX_BOUNDS + 1];
    for (int i = 0; i <= WEFT_METRICS_MAX_BOUNDS; i++) many[i] = i;
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", NULL, 0, same, 2, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", NULL, 0, down, 2, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", NULL, 0, nan, 1, &f), WEFT_EINVAL);
    assert_int_equal(weft_metrics_histogram_new(reg, "h", "", NULL, 0, inf, 2, &f), WEFT_EINVAL);
    assert_int_equal(
        weft_metrics_histogram_new(reg, "h", "", NULL, 0, many, WEFT_METRICS_MAX_BOUNDS + 1, &f),
        WEFT_EINVAL);
    assert_int_equal(
        weft_metrics_histogram_new(reg, "h", "", NULL, 0, many, WEFT_METRICS_MAX_BOUNDS, &f), 0);

    /* valid: colons in metric names, the maximum of labels, a name of maximum length */
    assert_int_equal(weft_metrics_counter_new(reg, "ns:ok_total", "", NULL, 0, &f), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "eight", "", nine, 8, &f), 0);
    longname[WEFT_METRICS_MAX_NAME_LEN] = 0;
    assert_int_equal(weft_metrics_gauge_new(reg, longname, "", NULL, 0, NULL), 0);

    /* duplicates, across types and through a histogram's sample names */
    assert_int_equal(weft_metrics_gauge_new(reg, "ns:ok_total", "", NULL, 0, &f), WEFT_EEXIST);
    assert_int_equal(weft_metrics_gauge_new(reg, "h_count", "", NULL, 0, &f), WEFT_EEXIST);
    assert_int_equal(weft_metrics_gauge_new(reg, "h_bucket", "", NULL, 0, &f), WEFT_EEXIST);
    assert_int_equal(weft_metrics_gauge_new(reg, "x_sum", "", NULL, 0, &f), 0);
    assert_int_equal(weft_metrics_histogram_new(reg, "x", "", NULL, 0, NULL, 0, &f), WEFT_EEXIST);
    assert_int_equal(weft_metrics_histogram_new(reg, "x_sum", "", NULL, 0, NULL, 0, &f),
                     WEFT_EEXIST);
    assert_int_equal(weft_metrics_histogram_new(reg, "x_s", "", NULL, 0, NULL, 0, &f), 0);
    assert_int_equal(
        weft_metrics_counter_new(reg, "weft_metrics_label_sets_dropped_total", "", NULL, 0, &f),
        WEFT_EEXIST);
    weft_metrics_registry_free(reg);
}

static void test_exposition_exact(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *g, *h, *empty, *plain;
    const char *lbl[] = {"method", "path"};
    assert_int_equal(
        weft_metrics_counter_new(reg, "req_total", "Requests.\nSecond \\ line \"q\"", lbl, 2, &c),
        0);
    assert_int_equal(weft_metrics_gauge_new(reg, "temp", "Temp.", NULL, 0, &g), 0);
    double bounds[] = {0.1, 1, 10};
    assert_int_equal(
        weft_metrics_histogram_new(reg, "lat_seconds", "Latency.", NULL, 0, bounds, 3, &h), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "nobody", NULL, lbl, 2, &empty), 0);
    assert_int_equal(weft_metrics_counter_new(reg, "idle_total", "Idle.", NULL, 0, &plain), 0);
    const char *v1[] = {"GET", "/a"};
    const char *v2[] = {"POST", "quote\" back\\ nl\n"};
    weft_counter_t *c1 = weft_metrics_counter_child(c, v1);
    weft_counter_t *c2 = weft_metrics_counter_child(c, v2);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_ptr_not_equal(c1, c2);
    assert_ptr_equal(c1, weft_metrics_counter_child(c, v1));
    weft_counter_inc(c1);
    weft_counter_inc(c1);
    weft_counter_add(c2, 2.5);
    weft_counter_add(c2, -7);       /* ignored */
    weft_counter_add(c2, 0);        /* ignored */
    weft_counter_add(c2, NAN);      /* ignored */
    weft_counter_add(c2, INFINITY); /* ignored */
    weft_gauge_t *g1 = weft_metrics_gauge_child(g, NULL);
    assert_non_null(g1);
    weft_gauge_add(g1, 5);
    weft_gauge_set(g1, -3);
    weft_gauge_add(g1, 1);
    weft_histogram_t *h1 = weft_metrics_histogram_child(h, NULL);
    weft_histogram_observe(h1, 0.05);
    weft_histogram_observe(h1, 0.1); /* le is inclusive */
    weft_histogram_observe(h1, 5);
    weft_histogram_observe(h1, 100);
    char *out = expo(reg);
    const char *want = DROPPED "# HELP req_total Requests.\\nSecond \\\\ line \"q\"\n"
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
                               "lat_seconds_count 4\n"
                               "# HELP nobody \n"
                               "# TYPE nobody gauge\n"
                               "# HELP idle_total Idle.\n"
                               "# TYPE idle_total counter\n"
                               "idle_total 0\n";
    assert_string_equal(out, want);
    free(out);
    /* wrong type, callback family, missing values: no handle */
    assert_null(weft_metrics_gauge_child(c, v1));
    assert_null(weft_metrics_histogram_child(g, NULL));
    assert_null(weft_metrics_counter_child(c, NULL));
    const char *half[] = {"GET", NULL};
    assert_null(weft_metrics_counter_child(c, half));
    assert_null(weft_metrics_counter_child(NULL, v1));
    /* NULL handles are accepted everywhere */
    weft_counter_inc(NULL);
    weft_counter_add(NULL, 1);
    weft_gauge_set(NULL, 1);
    weft_gauge_add(NULL, 1);
    weft_gauge_inc(NULL);
    weft_gauge_dec(NULL);
    weft_histogram_observe(NULL, 1);
    assert_true(weft_metrics_value(NULL) == 0);
    weft_metrics_registry_free(reg);
    weft_metrics_registry_free(NULL);
}

static void test_numbers(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {42, "42"},
        {-17, "-17"},
        {0.1, "0.1"},
        {-0.5, "-0.5"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e-7, "1e-07"},
        {123456789012.0, "123456789012"},
        {9007199254740991.0, "9007199254740991"},
        {1e20, "1e+20"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        weft_metrics_registry_t *reg = weft_metrics_registry_new();
        weft_metrics_family_t *g;
        assert_int_equal(weft_metrics_gauge_new(reg, "v", "V.", NULL, 0, &g), 0);
        weft_gauge_set(weft_metrics_gauge_child(g, NULL), cases[i].v);
        char want[512];
        snprintf(want, sizeof(want), DROPPED "# HELP v V.\n# TYPE v gauge\nv %s\n", cases[i].text);
        char *out = expo(reg);
        assert_string_equal(out, want);
        free(out);
        weft_metrics_registry_free(reg);
    }
}

/* A program using libweft may switch to a locale whose decimal point is ',' (here de_DE,
 * built with localedef from Debian's locales package into a temporary LOCPATH): the
 * exposition still writes '.', in sample values and in le labels. */
static void test_locale(void **state)
{
    char dir[] = "/tmp/weft-locale-XXXXXX", cmd[256];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    int rc = system(cmd); /* 1: written with warnings */
    assert_true(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) <= 1);
    setenv("LOCPATH", dir, 1);
    assert_non_null(setlocale(LC_NUMERIC, "de_DE.UTF-8"));
    char t[16];
    snprintf(t, sizeof(t), "%.2f", 0.25);
    assert_string_equal(t, "0,25"); /* the locale is really in effect */

    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *g, *h;
    assert_int_equal(weft_metrics_gauge_new(reg, "v", "V.", NULL, 0, &g), 0);
    weft_gauge_set(weft_metrics_gauge_child(g, NULL), 0.25);
    const double bounds[] = {0.005, 1.5};
    assert_int_equal(weft_metrics_histogram_new(reg, "d", "D.", NULL, 0, bounds, 2, &h), 0);
    weft_histogram_observe(weft_metrics_histogram_child(h, NULL), 0.125);
    char *out = expo(reg);
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_lines(out, (const char *const[]){"v 0.25", "d_bucket{le=\"0.005\"} 0",
                                            "d_bucket{le=\"1.5\"} 1", "d_sum 0.125", NULL});
    assert_null(strchr(out, ','));
    free(out);
    weft_metrics_registry_free(reg);
}

static void test_utf8_values(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *f;
    const char *lbl[] = {"v"};
    assert_int_equal(weft_metrics_gauge_new(reg, "u", "\xc3\xa9t\xc3\xa9", lbl, 1, &f), 0);
    const char *ok[] = {"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac"}; /* é, emoji, euro */
    const char *bad1[] = {"a\xff"
                          "b"};
    const char *bad2[] = {"a\xff\xfe"
                          "b"};                   /* a run: one U+FFFD */
    const char *overlong[] = {"\xc0\xaf"};        /* "/" written in two bytes */
    const char *surrogate[] = {"\xed\xa0\x80"};   /* U+D800 */
    const char *too_big[] = {"\xf4\x90\x80\x80"}; /* U+110000 */
    const char *cut[] = {"x\xe2\x82"};            /* sequence cut short */
    weft_gauge_set(weft_metrics_gauge_child(f, ok), 1);
    weft_gauge_t *b1 = weft_metrics_gauge_child(f, bad1);
    assert_non_null(b1);
    assert_ptr_equal(b1, weft_metrics_gauge_child(f, bad2));
    weft_gauge_inc(b1);
    weft_gauge_inc(weft_metrics_gauge_child(f, overlong));
    weft_gauge_inc(weft_metrics_gauge_child(f, surrogate));
    weft_gauge_inc(weft_metrics_gauge_child(f, too_big));
    weft_gauge_inc(weft_metrics_gauge_child(f, cut));
    char *out = expo(reg);
    assert_string_equal(out, DROPPED "# HELP u \xc3\xa9t\xc3\xa9\n"
                                     "# TYPE u gauge\n"
                                     "u{v=\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"} 1\n"
                                     "u{v=\"a\xef\xbf\xbd"
                                     "b\"} 1\n"
                                     "u{v=\"\xef\xbf\xbd\"} 3\n"
                                     "u{v=\"x\xef\xbf\xbd\"} 1\n");
    free(out);
    weft_metrics_registry_free(reg);
}

static void test_histogram_buckets(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *h, *d;
    const char *lbl[] = {"op"};
    double bounds[] = {1, 2, 4};
    assert_int_equal(weft_metrics_histogram_new(reg, "b", "B.", lbl, 1, bounds, 3, &h), 0);
    const char *v[] = {"x"};
    weft_histogram_t *c = weft_metrics_histogram_child(h, v);
    double obs[] = {-5, 0, 1, 1.5, 2, 3, 4, 4.0001, 100, NAN};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) weft_histogram_observe(c, obs[i]);
    uint64_t n;
    double sum;
    weft_histogram_totals(c, &n, &sum);
    assert_int_equal(n, 9); /* NaN ignored */
    assert_true(fabs(sum - 110.5001) < 1e-9);
    char *out = expo(reg);
    assert_string_equal(out, DROPPED "# HELP b B.\n"
                                     "# TYPE b histogram\n"
                                     "b_bucket{op=\"x\",le=\"1\"} 3\n"
                                     "b_bucket{op=\"x\",le=\"2\"} 5\n"
                                     "b_bucket{op=\"x\",le=\"4\"} 7\n"
                                     "b_bucket{op=\"x\",le=\"+Inf\"} 9\n"
                                     "b_sum{op=\"x\"} 110.5001\n"
                                     "b_count{op=\"x\"} 9\n");
    free(out);
    /* +Inf lands in the last bucket */
    weft_histogram_observe(c, INFINITY);
    weft_histogram_totals(c, &n, &sum);
    assert_int_equal(n, 10);
    assert_true(isinf(sum));
    weft_histogram_totals(NULL, &n, &sum);
    assert_int_equal(n, 0);

    /* the default buckets, exactly */
    assert_int_equal(weft_metrics_histogram_new(reg, "d_seconds", "D.", NULL, 0, NULL, 0, &d), 0);
    weft_histogram_t *dc = weft_metrics_histogram_child(d, NULL);
    weft_histogram_observe(dc, 0.003);
    weft_histogram_observe(dc, 0.0005);
    weft_histogram_observe(dc, 11);
    out = expo(reg);
    const char *want = "# TYPE d_seconds histogram\n"
                       "d_seconds_bucket{le=\"0.0005\"} 1\n"
                       "d_seconds_bucket{le=\"0.001\"} 1\n"
                       "d_seconds_bucket{le=\"0.0025\"} 1\n"
                       "d_seconds_bucket{le=\"0.005\"} 2\n"
                       "d_seconds_bucket{le=\"0.01\"} 2\n"
                       "d_seconds_bucket{le=\"0.025\"} 2\n"
                       "d_seconds_bucket{le=\"0.05\"} 2\n"
                       "d_seconds_bucket{le=\"0.1\"} 2\n"
                       "d_seconds_bucket{le=\"0.25\"} 2\n"
                       "d_seconds_bucket{le=\"0.5\"} 2\n"
                       "d_seconds_bucket{le=\"1\"} 2\n"
                       "d_seconds_bucket{le=\"2.5\"} 2\n"
                       "d_seconds_bucket{le=\"5\"} 2\n"
                       "d_seconds_bucket{le=\"10\"} 2\n"
                       "d_seconds_bucket{le=\"+Inf\"} 3\n"
                       "d_seconds_sum 11.0035\n"
                       "d_seconds_count 3\n";
    const char *at = strstr(out, "# TYPE d_seconds histogram\n");
    assert_non_null(at);
    assert_string_equal(at, want);
    free(out);
    weft_metrics_registry_free(reg);
}

/* cmocka's assertions belong to the main thread: other threads record what they saw. */
static weft_gauge_t *cross_gauge;
static int cross_slot;

static void *add_on_thread(void *arg)
{
    cross_slot = weft_metrics_thread_register();
    weft_gauge_add(cross_gauge, 10);
    weft_gauge_inc(cross_gauge);
    return NULL;
}

static void test_gauges(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *f;
    assert_int_equal(weft_metrics_gauge_new(reg, "g", "G.", NULL, 0, &f), 0);
    cross_gauge = weft_metrics_gauge_child(f, NULL);
    assert_true(weft_metrics_value(cross_gauge) == 0);
    weft_gauge_inc(cross_gauge);
    weft_gauge_inc(cross_gauge);
    weft_gauge_dec(cross_gauge);
    assert_true(weft_metrics_value(cross_gauge) == 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, add_on_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_true(cross_slot > 0);
    assert_true(weft_metrics_value(cross_gauge) == 12);
    /* set replaces the adds of every thread, including an exited one */
    weft_gauge_set(cross_gauge, 7.5);
    assert_true(weft_metrics_value(cross_gauge) == 7.5);
    weft_gauge_dec(cross_gauge);
    assert_true(weft_metrics_value(cross_gauge) == 6.5);
    weft_gauge_set(cross_gauge, -1);
    assert_true(weft_metrics_value(cross_gauge) == -1);
    weft_metrics_registry_free(reg);
}

static weft_counter_t *shared_counter;
static weft_histogram_t *shared_hist;
static weft_gauge_t *shared_gauge;
static atomic_int hammer_unslotted;

static void *hammer(void *arg)
{
    if (arg && weft_metrics_thread_register() == 0) /* the others share slot 0 */
        atomic_fetch_add(&hammer_unslotted, 1);
    for (int i = 0; i < 100000; i++) {
        weft_counter_inc(shared_counter);
        weft_histogram_observe(shared_hist, (i & 1) ? 0.003 : 0.5);
        weft_gauge_inc(shared_gauge);
        if (i & 1) weft_gauge_dec(shared_gauge);
    }
    return NULL;
}

static void test_threads_sum_exactly(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *h, *g;
    assert_int_equal(weft_metrics_counter_new(reg, "n_total", "n", NULL, 0, &c), 0);
    assert_int_equal(weft_metrics_histogram_new(reg, "d_seconds", "d", NULL, 0, NULL, 0, &h), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "level", "l", NULL, 0, &g), 0);
    shared_counter = weft_metrics_counter_child(c, NULL);
    shared_hist = weft_metrics_histogram_child(h, NULL);
    shared_gauge = weft_metrics_gauge_child(g, NULL);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (i & 1) ? (void *)1 : NULL), 0);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&hammer_unslotted), 0);
    /* the threads have exited: their shards still count */
    assert_true(weft_metrics_value(shared_counter) == 800000.0);
    assert_true(weft_metrics_value(shared_gauge) == 400000.0);
    uint64_t count;
    double sum;
    weft_histogram_totals(shared_hist, &count, &sum);
    assert_int_equal(count, 800000);
    assert_true(fabs(sum - 400000 * 0.503) < 1e-3);
    char *out = expo(reg);
    assert_lines(out, (const char *const[]){"d_seconds_bucket{le=\"0.0025\"} 0",
                                            "d_seconds_bucket{le=\"0.005\"} 400000",
                                            "d_seconds_bucket{le=\"0.25\"} 400000",
                                            "d_seconds_bucket{le=\"0.5\"} 800000",
                                            "d_seconds_count 800000", "n_total 800000", NULL});
    free(out);
    weft_metrics_registry_free(reg);
}

/* ---- slots ---- */

#define NSLOTS WEFT_METRICS_MAX_THREADS
static pthread_barrier_t slot_barrier;
static int slots_seen[NSLOTS];
static atomic_int slot_unstable;

static void *take_slot(void *arg)
{
    int s = weft_metrics_thread_register();
    if (weft_metrics_thread_register() != s) atomic_fetch_add(&slot_unstable, 1);
    slots_seen[(intptr_t)arg] = s;
    for (int i = 0; i < 1000; i++) weft_counter_inc(shared_counter);
    pthread_barrier_wait(&slot_barrier); /* every slot held at once */
    return NULL;
}

static void *one_slot(void *arg)
{
    int s = weft_metrics_thread_register();
    *(int *)arg = s;
    weft_counter_inc(shared_counter);
    return NULL;
}

static void test_slot_recycling(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c;
    assert_int_equal(weft_metrics_counter_new(reg, "s_total", "s", NULL, 0, &c), 0);
    shared_counter = weft_metrics_counter_child(c, NULL);
    weft_metrics_thread_unregister(); /* the main thread holds none during this test */

    /* NSLOTS threads at once: NSLOTS - 1 distinct own slots, one shares slot 0 */
    pthread_t t[NSLOTS];
    assert_int_equal(pthread_barrier_init(&slot_barrier, NULL, NSLOTS), 0);
    for (intptr_t i = 0; i < NSLOTS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, take_slot, (void *)i), 0);
    for (int i = 0; i < NSLOTS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&slot_barrier);
    assert_int_equal(atomic_load(&slot_unstable), 0);
    int zero = 0, used[NSLOTS] = {0};
    for (int i = 0; i < NSLOTS; i++) {
        assert_in_range(slots_seen[i], 0, NSLOTS - 1);
        if (slots_seen[i] == 0)
            zero++;
        else
            used[slots_seen[i]]++;
    }
    assert_int_equal(zero, 1);
    for (int s = 1; s < NSLOTS; s++) assert_int_equal(used[s], 1);
    assert_true(weft_metrics_value(shared_counter) == NSLOTS * 1000.0);

    /* exited threads gave their slots back: many more threads, one after another, each
     * gets a slot of its own and continues the shard of an earlier thread */
    for (int i = 0; i < 3 * NSLOTS; i++) {
        int s = -1;
        pthread_t one;
        assert_int_equal(pthread_create(&one, NULL, one_slot, &s), 0);
        pthread_join(one, NULL);
        assert_in_range(s, 1, NSLOTS - 1);
    }
    assert_true(weft_metrics_value(shared_counter) == NSLOTS * 1000.0 + 3 * NSLOTS);

    /* unregister and register again on the main thread */
    int s = weft_metrics_thread_register();
    assert_in_range(s, 1, NSLOTS - 1);
    weft_counter_inc(shared_counter);
    weft_metrics_thread_unregister();
    weft_counter_inc(shared_counter); /* slot 0 */
    weft_metrics_thread_unregister(); /* a no-op */
    assert_in_range(weft_metrics_thread_register(), 1, NSLOTS - 1);
    weft_counter_inc(shared_counter);
    assert_true(weft_metrics_value(shared_counter) == NSLOTS * 1000.0 + 3 * NSLOTS + 3);
    weft_metrics_registry_free(reg);
}

/* ---- limits ---- */

static void test_child_limit(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *small;
    const char *lbl[] = {"id"};
    assert_int_equal(weft_metrics_counter_new(reg, "many_total", "m", lbl, 1, &c), 0);
    char id[16];
    const char *v[] = {id};
    weft_counter_t *first = NULL;
    for (int i = 0; i < WEFT_METRICS_MAX_CHILDREN; i++) {
        snprintf(id, sizeof(id), "%d", i);
        weft_counter_t *h = weft_metrics_counter_child(c, v);
        assert_non_null(h);
        if (i == 0) first = h;
    }
    snprintf(id, sizeof(id), "x");
    assert_null(weft_metrics_counter_child(c, v));
    assert_int_equal(weft_metrics_dropped(reg), 1);
    snprintf(id, sizeof(id), "0"); /* existing children are still found */
    assert_ptr_equal(weft_metrics_counter_child(c, v), first);
    snprintf(id, sizeof(id), "9999");
    assert_non_null(weft_metrics_counter_child(c, v));
    assert_int_equal(weft_metrics_dropped(reg), 1);

    /* a family's own limit; a value past WEFT_METRICS_MAX_VALUE_LEN */
    assert_int_equal(weft_metrics_gauge_new(reg, "small", "s", lbl, 1, &small), 0);
    assert_int_equal(weft_metrics_family_set_limit(small, 0), WEFT_EINVAL);
    assert_int_equal(weft_metrics_family_set_limit(small, 2), 0);
    char big[WEFT_METRICS_MAX_VALUE_LEN + 2];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    const char *vb[] = {big};
    assert_null(weft_metrics_gauge_child(small, vb));
    assert_int_equal(weft_metrics_dropped(reg), 2);
    big[WEFT_METRICS_MAX_VALUE_LEN] = 0; /* exactly the limit is fine */
    assert_non_null(weft_metrics_gauge_child(small, vb));
    snprintf(id, sizeof(id), "a");
    assert_non_null(weft_metrics_gauge_child(small, v));
    snprintf(id, sizeof(id), "b");
    assert_null(weft_metrics_gauge_child(small, v));
    assert_int_equal(weft_metrics_dropped(reg), 3);
    char *out = expo(reg);
    assert_true(sample(out, "weft_metrics_label_sets_dropped_total") == 3);
    free(out);
    weft_metrics_registry_free(reg);
}

/* ---- callbacks ---- */

static double seven(void *arg)
{
    return 7;
}

static double count_calls(void *arg)
{
    return ++*(int *)arg;
}

static weft_metrics_family_t *from_callback;

/* Uses the registry during a scrape: a new child and an update. */
static double create_child(void *arg)
{
    const char *v[] = {"made-in-callback"};
    weft_counter_inc(weft_metrics_counter_child(from_callback, v));
    return 1;
}

static void test_callbacks(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    int calls = 0;
    assert_int_equal(weft_metrics_gauge_fn(reg, "seven", "Seven.", seven, NULL), 0);
    assert_int_equal(weft_metrics_counter_fn(reg, "scrapes_total", "Calls.", count_calls, &calls),
                     0);
    assert_int_equal(weft_metrics_gauge_fn(reg, "none", "", NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_metrics_gauge_fn(reg, "seven", "", seven, NULL), WEFT_EEXIST);
    const char *lbl[] = {"k"};
    assert_int_equal(weft_metrics_counter_new(reg, "cb_total", "c", lbl, 1, &from_callback), 0);
    assert_int_equal(weft_metrics_gauge_fn(reg, "maker", "m", create_child, NULL), 0);
    char *out = expo(reg);
    assert_non_null(strstr(out, "# HELP seven Seven.\n# TYPE seven gauge\nseven 7\n"));
    assert_non_null(strstr(
        out, "# HELP scrapes_total Calls.\n# TYPE scrapes_total counter\nscrapes_total 1\n"));
    assert_true(sample(out, "maker") == 1);
    free(out);
    out = expo(reg);
    assert_true(sample(out, "scrapes_total") == 2);
    assert_true(sample(out, "cb_total{k=\"made-in-callback\"}") == 1);
    free(out);
    assert_int_equal(calls, 2);
    weft_metrics_registry_free(reg);
}

static void test_process(void **state)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    assert_int_equal(weft_metrics_register_process(reg), 0);
    assert_int_equal(weft_metrics_register_process(reg), WEFT_EEXIST);
    /* burn a little CPU so the CPU counter has something to show */
    clock_t until = clock() + CLOCKS_PER_SEC / 20;
    while (clock() < until) continue;
    char *out = expo(reg);
    struct timeval now;
    gettimeofday(&now, NULL);
    double cpu = sample(out, "process_cpu_seconds_total");
    double rss = sample(out, "process_resident_memory_bytes");
    double vsz = sample(out, "process_virtual_memory_bytes");
    double fds = sample(out, "process_open_fds");
    double maxfds = sample(out, "process_max_fds");
    double start = sample(out, "process_start_time_seconds");
    assert_true(cpu > 0 && cpu < 3600);
    assert_true(rss > 1e5);
    assert_true(vsz >= rss);
    assert_true(fds >= 3 && fds <= maxfds);
    long limit = sysconf(_SC_OPEN_MAX);
    assert_true(maxfds == (double)limit);
    assert_true(start <= (double)now.tv_sec + 1 && start > (double)now.tv_sec - 600);
    free(out);
    weft_metrics_registry_free(reg);
}

static void test_default(void **state)
{
    weft_metrics_registry_t *a = weft_metrics_default();
    assert_non_null(a);
    assert_ptr_equal(a, weft_metrics_default());
    weft_metrics_family_t *f;
    assert_int_equal(weft_metrics_counter_new(a, "default_total", "d", NULL, 0, &f), 0);
    weft_counter_inc(weft_metrics_counter_child(f, NULL));
    char *out = expo(a);
    assert_true(sample(out, "default_total") == 1);
    free(out);
}

/* ---- scrapes concurrent with creation and updates ---- */

static weft_metrics_family_t *busy_fam;
static weft_metrics_registry_t *busy_reg;
static int late_err = 1;

static void *creator(void *arg)
{
    weft_metrics_thread_register();
    char id[16];
    const char *v[] = {id};
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "%d", i % 500);
        weft_counter_inc(weft_metrics_counter_child(busy_fam, v));
        if (i == 1000) {
            weft_metrics_family_t *late;
            int err = weft_metrics_gauge_new(busy_reg, "late", "L.", NULL, 0, &late);
            if (err != WEFT_EEXIST) late_err = err; /* one of the two threads wins */
        }
    }
    return NULL;
}

static void test_scrape_while_busy(void **state)
{
    busy_reg = weft_metrics_registry_new();
    const char *lbl[] = {"id"};
    assert_int_equal(weft_metrics_counter_new(busy_reg, "busy_total", "b", lbl, 1, &busy_fam), 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, creator, NULL), 0);
    double last0 = 0;
    for (int k = 0; k < 50; k++) {
        char *out = expo(busy_reg);
        if (strstr(out, "busy_total{id=\"0\"} ")) { /* never goes down between scrapes */
            double v = sample(out, "busy_total{id=\"0\"}");
            assert_true(v >= last0);
            last0 = v;
        }
        free(out);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    assert_int_equal(late_err, 0);
    char *out = expo(busy_reg);
    char key[64];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "busy_total{id=\"%d\"}", i);
        assert_true(sample(out, key) == 8); /* 2 threads x 4 passes */
    }
    assert_non_null(strstr(out, "\nlate 0\n"));
    free(out);
    weft_metrics_registry_free(busy_reg);
}

static void test_promtool(void **state)
{
    if (access("/usr/bin/promtool", X_OK) != 0) {
        const char *ci = getenv("CI"); /* under CI every test must run: missing fails */
        if (ci && *ci && strcmp(ci, "false") != 0 && strcmp(ci, "0") != 0)
            fail_msg("/usr/bin/promtool is missing (scripts/install-deps installs it)");
        print_message("[  SKIPPED ] /usr/bin/promtool is missing: not checked\n");
        skip();
        return;
    }
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    weft_metrics_family_t *c, *h, *g, *e, *small;
    const char *lbl[] = {"method", "route", "code"};
    const char *one[] = {"v"};
    assert_int_equal(weft_metrics_counter_new(reg, "http_requests_total",
                                              "Requests \\ with \"odd\"\nhelp.", lbl, 3, &c),
                     0);
    assert_int_equal(weft_metrics_histogram_new(reg, "http_request_duration_seconds", "Latency.",
                                                lbl, 3, NULL, 0, &h),
                     0);
    assert_int_equal(weft_metrics_gauge_new(reg, "odd_values", "Odd.", one, 1, &g), 0);
    assert_int_equal(weft_metrics_gauge_new(reg, "never_used", "Empty.", one, 1, &e), 0);
    double b[] = {0.5, 0.75, 1e9};
    assert_int_equal(weft_metrics_histogram_new(reg, "small_bytes", "S.", NULL, 0, b, 3, &small),
                     0);
    assert_int_equal(weft_metrics_gauge_fn(reg, "fn_value", "F.", seven, NULL), 0);
    assert_int_equal(weft_metrics_register_process(reg), 0);
    const char *v[] = {"GET", "/x/:id", "200"};
    const char *w[] = {"PO\"ST", "/a\\b\nc", "5\xff"};
    weft_counter_inc(weft_metrics_counter_child(c, v));
    weft_counter_add(weft_metrics_counter_child(c, w), 0.25);
    weft_histogram_observe(weft_metrics_histogram_child(h, v), 0.01);
    weft_histogram_observe(weft_metrics_histogram_child(h, w), 20);
    const char *nan[] = {"nan"}, *inf[] = {"inf"}, *ninf[] = {"-inf"}, *tiny[] = {"tiny"};
    weft_gauge_set(weft_metrics_gauge_child(g, nan), NAN);
    weft_gauge_set(weft_metrics_gauge_child(g, inf), INFINITY);
    weft_gauge_set(weft_metrics_gauge_child(g, ninf), -INFINITY);
    weft_gauge_set(weft_metrics_gauge_child(g, tiny), 1e-300);
    weft_histogram_observe(weft_metrics_histogram_child(small, NULL), 0.6);
    char *out = expo(reg);
    char cmd[512];
    char tmp[] = "/tmp/weft-promtool-XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics >%s 2>&1", tmp);
    FILE *p = popen(cmd, "w");
    assert_non_null(p);
    fputs(out, p);
    int rc = pclose(p);
    if (rc != 0) {
        char msg[2048] = {0};
        FILE *f = fopen(tmp, "r");
        if (f) {
            size_t n = fread(msg, 1, sizeof(msg) - 1, f);
            msg[n] = 0;
            fclose(f);
        }
        unlink(tmp);
        fail_msg("promtool rc=%d: %s\n--- input ---\n%s", rc, msg, out);
    }
    unlink(tmp);
    free(out);
    weft_metrics_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),          cmocka_unit_test(test_exposition_exact),
        cmocka_unit_test(test_numbers),        cmocka_unit_test(test_locale),
        cmocka_unit_test(test_utf8_values),    cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_gauges),         cmocka_unit_test(test_threads_sum_exactly),
        cmocka_unit_test(test_slot_recycling), cmocka_unit_test(test_child_limit),
        cmocka_unit_test(test_callbacks),      cmocka_unit_test(test_process),
        cmocka_unit_test(test_default),        cmocka_unit_test(test_scrape_while_busy),
        cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
