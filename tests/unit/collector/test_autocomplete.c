/*
 * test_autocomplete.c - Zipkin's tag autocomplete (collector/autocomplete.c) over a real
 * trace store in a temporary directory: the keys' list and its checks, values from span and
 * resource attributes as text (typed ones too; empty, bytes, arrays, over-long ones left
 * out), only new blocks read after an answer, both bounds (values per key, bytes per key),
 * the values of blocks retention deleted gone, the values rebuilt after a reopen, readers
 * asking while spans are written, and every allocation of autocomplete.c failing in turn
 * (WEFT_ENOMEM, nothing leaked, the next call right).
 *
 * Waits are on the store's done callbacks, with a deadline that fails the test.
 */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include "collector/store.h"
#include "fault_alloc.h"
#include "weft/common.h"

/* autocomplete.c compiled in, its allocations able to fail (test_oom) */
#define malloc  oom_malloc
#define calloc  oom_calloc
#define realloc oom_realloc
#include "../../../src/collector/autocomplete.c"
#undef malloc
#undef calloc
#undef realloc

#define S(lit) COL_STR(lit)

typedef struct fix_s {
    char dir[64];
    col_store_conf_t conf;
    col_store_t *s;
    col_ac_t *ac;
    weft_buf_t out;
} fix_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_calls, done_failures;

static void on_done(int status, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    done_calls++;
    if (status != 0) done_failures++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/weft-cac-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    col_store_conf_init(&f->conf);
    f->conf.dir = f->dir;
    f->conf.sync = false;
    weft_buf_init(&f->out, 0);
    pthread_mutex_lock(&mu);
    done_calls = done_failures = 0;
    pthread_mutex_unlock(&mu);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    fix_t *f = *state;
    col_store_close(f->s);
    col_ac_free(f->ac);
    weft_buf_free(&f->out);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void open_store(fix_t *f)
{
    char err[256] = "";
    int rc = col_store_open(&f->conf, &f->s, err, sizeof err);
    if (rc != 0) fail_msg("open: %d %s", rc, err);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const col_scope_t scope = {.name = S("test")};
static col_attr_t shop_attrs[] = {
    {.key = S("service.name"), .type = COL_V_STRING, .v.s = S("shop")},
    {.key = S("env"), .type = COL_V_STRING, .v.s = S("resource-env")},
};
static const col_resource_t res_shop = {.service = S("shop"), .attrs = shop_attrs, .nattrs = 2};
static const col_resource_t res_cart = {.service = S("cart")};

static uint64_t next_id = 1;

static col_span_t mk_span(const col_resource_t *res, col_attr_t *attrs, uint32_t nattrs)
{
    col_span_t s = {0};
    uint64_t id = next_id++;
    memcpy(s.trace_id + 8, &id, 8);
    memcpy(s.span_id, &id, 8);
    s.start_ns = now_ns();
    s.end_ns = s.start_ns + 1000;
    s.name = S("op");
    s.kind = COL_KIND_SERVER;
    s.resource = res;
    s.scope = &scope;
    s.attrs = attrs;
    s.nattrs = nattrs;
    return s;
}

/* Appends and waits until the spans are durable (and indexed). */
static void append(fix_t *f, const col_span_t *sp, size_t n)
{
    pthread_mutex_lock(&mu);
    int want = done_calls + 1;
    pthread_mutex_unlock(&mu);
    assert_int_equal(col_store_append(f->s, sp, n, on_done, NULL), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (done_calls < want && rc == 0) rc = pthread_cond_timedwait(&cv, &mu, &ts);
    bool ok = done_calls >= want && done_failures == 0;
    pthread_mutex_unlock(&mu);
    if (!ok) fail_msg("append not done (%d failures)", done_failures);
}

/* The answer for key, as a NUL-terminated string. */
static const char *values(fix_t *f, const char *key)
{
    weft_buf_reset(&f->out);
    assert_int_equal(col_ac_values(f->ac, f->s, (col_str_t){key, (uint32_t)strlen(key)}, &f->out),
                     0);
    weft_buf_putc(&f->out, 0);
    assert_false(f->out.failed);
    return f->out.p;
}

static size_t count_values(const char *json)
{
    size_t n = 0;
    for (const char *p = json; *p; p++) n += *p == '"';
    return n / 2;
}

static void test_keys(void **state)
{
    fix_t *f = *state;
    assert_null(col_ac_keys_check(NULL));
    assert_null(col_ac_keys_check(""));
    assert_null(col_ac_keys_check(" , ,"));
    char many[512] = "";
    for (int i = 0; i < 33; i++) snprintf(many + strlen(many), 16, "%sk%d", i ? "," : "", i);
    assert_string_equal(col_ac_keys_check(many), "at most 32 keys");
    *strrchr(many, ',') = 0; /* 32 */
    assert_null(col_ac_keys_check(many));
    char longk[300];
    memset(longk, 'k', 257);
    longk[257] = 0;
    assert_string_equal(col_ac_keys_check(longk), "a key is longer than 256 bytes");
    assert_int_equal(col_ac_new(longk, 10, &f->ac), WEFT_EINVAL);
    assert_int_equal(col_ac_new("env", 0, &f->ac), WEFT_EINVAL);

    assert_int_equal(col_ac_new(" zone,env , http.method,env,,\"q\" ", 10, &f->ac), 0);
    col_ac_keys(f->ac, &f->out);
    weft_buf_putc(&f->out, 0);
    assert_string_equal(f->out.p, "[\"\\\"q\\\"\",\"env\",\"http.method\",\"zone\"]");
    col_ac_free(f->ac);
    f->ac = NULL;
    assert_int_equal(col_ac_new(NULL, 10, &f->ac), 0);
    weft_buf_reset(&f->out);
    col_ac_keys(f->ac, &f->out);
    weft_buf_putc(&f->out, 0);
    assert_string_equal(f->out.p, "[]");
}

static void test_values(void **state)
{
    fix_t *f = *state;
    open_store(f);
    assert_int_equal(col_ac_new("env,n,flag,ratio,blob,long", 100, &f->ac), 0);
    assert_string_equal(values(f, "env"), "[]");
    char longv[COL_AC_VALUE_MAX + 1];
    memset(longv, 'v', sizeof longv);
    static const char blob[] = {1, 2};
    col_attr_t a1[] = {
        {.key = S("env"), .type = COL_V_STRING, .v.s = S("prod")},
        {.key = S("n"), .type = COL_V_INT, .v.i = -42},
        {.key = S("flag"), .type = COL_V_BOOL, .v.b = true},
        {.key = S("ratio"), .type = COL_V_DOUBLE, .v.d = 0.5},
        {.key = S("blob"), .type = COL_V_BYTES, .v.s = {blob, 2}},
        {.key = S("long"), .type = COL_V_STRING, .v.s = {longv, sizeof longv}},
    };
    col_attr_t a2[] = {
        {.key = S("env"), .type = COL_V_STRING, .v.s = S("qa")},
        {.key = S("long"), .type = COL_V_STRING, .v.s = {longv, sizeof longv - 1}},
        {.key = S("other"), .type = COL_V_STRING, .v.s = S("nope")},
    };
    col_attr_t a3[] = {
        {.key = S("env"), .type = COL_V_STRING, .v.s = S("")},
        {.key = S("env"), .type = COL_V_STRING, .v.s = S("prod")},
        {.key = S("flag"), .type = COL_V_BOOL, .v.b = false},
    };
    col_span_t sp[] = {mk_span(&res_cart, a1, 6), mk_span(&res_cart, a2, 3),
                       mk_span(&res_cart, a3, 3)};
    append(f, sp, 3);
    assert_string_equal(values(f, "env"), "[\"prod\",\"qa\"]");
    assert_string_equal(values(f, "n"), "[\"-42\"]");
    assert_string_equal(values(f, "flag"), "[\"false\",\"true\"]");
    assert_string_equal(values(f, "ratio"), "[\"0.5\"]");
    assert_string_equal(values(f, "blob"), "[]");
    /* a value of COL_AC_VALUE_MAX bytes is offered, one byte more is not */
    const char *l = values(f, "long");
    assert_int_equal(count_values(l), 1);
    assert_int_equal(strlen(l), COL_AC_VALUE_MAX + 4);
    assert_string_equal(values(f, "other"), "[]");
    /* a resource attribute, in a block written after the first answers */
    col_span_t sp2 = mk_span(&res_shop, NULL, 0);
    append(f, &sp2, 1);
    assert_string_equal(values(f, "env"), "[\"prod\",\"qa\",\"resource-env\"]");

    /* a reopen: the values are read again from the blocks */
    col_store_close(f->s);
    f->s = NULL;
    col_ac_free(f->ac);
    f->ac = NULL;
    open_store(f);
    assert_int_equal(col_ac_new("env", 100, &f->ac), 0);
    assert_string_equal(values(f, "env"), "[\"prod\",\"qa\",\"resource-env\"]");
}

static void test_bounds(void **state)
{
    fix_t *f = *state;
    open_store(f);
    /* values per key */
    assert_int_equal(col_ac_new("id,big", 5, &f->ac), 0);
    char vals[20][8];
    col_attr_t at[20];
    col_span_t sp[20];
    for (int i = 0; i < 20; i++) {
        snprintf(vals[i], sizeof vals[i], "v%02d", i);
        at[i] = (col_attr_t){
            .key = S("id"), .type = COL_V_STRING, .v.s = {vals[i], (uint32_t)strlen(vals[i])}};
        sp[i] = mk_span(&res_cart, &at[i], 1);
    }
    append(f, sp, 20);
    const char *v = values(f, "id");
    assert_int_equal(count_values(v), 5);
    /* full: later blocks add nothing, the answer stays as it was */
    char before[256];
    snprintf(before, sizeof before, "%s", v);
    append(f, sp, 3);
    assert_string_equal(values(f, "id"), before);
    col_ac_free(f->ac);

    /* bytes per key: 3000 distinct values of 500 bytes (1.5 MB) */
    assert_int_equal(col_ac_new("big", 1000000, &f->ac), 0);
    static char bigv[3000][500];
    static col_attr_t bat[100];
    static col_span_t bsp[100];
    for (int b = 0; b < 30; b++) {
        for (int i = 0; i < 100; i++) {
            memset(bigv[b * 100 + i], 'a' + (i % 26), 500);
            snprintf(bigv[b * 100 + i], 500, "%05d", b * 100 + i);
            bigv[b * 100 + i][5] = '-';
            bat[i] = (col_attr_t){
                .key = S("big"), .type = COL_V_STRING, .v.s = {bigv[b * 100 + i], 500}};
            bsp[i] = mk_span(&res_cart, &bat[i], 1);
        }
        append(f, bsp, 100);
    }
    size_t n = count_values(values(f, "big"));
    assert_int_equal(n, COL_AC_BYTES_PER_KEY / 500);
}

/* Retention by size deletes the oldest segments: their values go from the answer. */
static void test_retention(void **state)
{
    fix_t *f = *state;
    f->conf.max_bytes = 512 * 1024; /* segments of 64 KiB */
    open_store(f);
    assert_int_equal(col_ac_new("env", 100, &f->ac), 0);
    col_attr_t old = {.key = S("env"), .type = COL_V_STRING, .v.s = S("old")};
    col_span_t sp = mk_span(&res_cart, &old, 1);
    append(f, &sp, 1);
    assert_string_equal(values(f, "env"), "[\"old\"]");
    /* incompressible spans with env=new, until the first segment is deleted */
    static char junk[100][256];
    unsigned seed = 3;
    static col_attr_t at[100][2];
    static col_span_t many[100];
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < 256; j++) junk[i][j] = (char)('a' + (rand_r(&seed) % 26));
    for (int b = 0; b < 60; b++) {
        for (int i = 0; i < 100; i++) {
            at[i][0] = (col_attr_t){.key = S("env"), .type = COL_V_STRING, .v.s = S("new")};
            at[i][1] = (col_attr_t){
                .key = S("junk"), .type = COL_V_STRING, .v.s = {junk[(b * 7 + i) % 100], 256}};
            many[i] = mk_span(&res_cart, at[i], 2);
        }
        append(f, many, 100);
    }
    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_true(st.expired > 0);
    assert_string_equal(values(f, "env"), "[\"new\"]");
}

/* Readers asking while spans are written: every answer well formed, none losing a value
 * an earlier one had (no retention runs), the last one complete. */
typedef struct reader_s {
    fix_t *f;
    atomic_bool *stop;
    atomic_int *started; /* readers past their first answer */
    size_t answers, bad;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    size_t last = 0;
    while (!atomic_load(r->stop)) {
        weft_buf_reset(&b);
        if (col_ac_values(r->f->ac, r->f->s, S("env"), &b) != 0) {
            r->bad++;
            break;
        }
        weft_buf_putc(&b, 0);
        size_t n = count_values(b.p);
        if (b.p[0] != '[' || b.p[b.len - 2] != ']' || n < last) r->bad++;
        last = n;
        if (r->answers++ == 0) atomic_fetch_add(r->started, 1);
    }
    weft_buf_free(&b);
    return NULL;
}

static void test_concurrent(void **state)
{
    fix_t *f = *state;
    open_store(f);
    assert_int_equal(col_ac_new("env", 10000, &f->ac), 0);
    atomic_bool stop = false;
    atomic_int started = 0;
    reader_t rs[2] = {{.f = f, .stop = &stop, .started = &started},
                      {.f = f, .stop = &stop, .started = &started}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
    /* the writes start once both readers ask (on a busy machine a reader may not have run
     * at all before the 200 appends are over) */
    for (int i = 0; atomic_load(&started) < 2; i++) {
        assert_true(i < 10000); /* 10 s */
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    static char vals[200][8];
    static col_attr_t at[200];
    for (int i = 0; i < 200; i++) {
        snprintf(vals[i], sizeof vals[i], "c%03d", i);
        at[i] = (col_attr_t){
            .key = S("env"), .type = COL_V_STRING, .v.s = {vals[i], (uint32_t)strlen(vals[i])}};
        col_span_t sp = mk_span(&res_cart, &at[i], 1);
        append(f, &sp, 1);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].bad, 0);
        assert_true(rs[i].answers > 0);
    }
    assert_int_equal(count_values(values(f, "env")), 200);
}

/* Each allocation of col_ac_new and of col_ac_values' first read failing in turn. */
static void test_oom(void **state)
{
    fix_t *f = *state;
    open_store(f);
    char vals[300][8];
    col_attr_t at[300];
    col_span_t sp[300];
    for (int i = 0; i < 300; i++) {
        snprintf(vals[i], sizeof vals[i], "v%03d", i);
        at[i] = (col_attr_t){
            .key = S("env"), .type = COL_V_STRING, .v.s = {vals[i], (uint32_t)strlen(vals[i])}};
        sp[i] = mk_span(&res_cart, &at[i], 1);
    }
    append(f, sp, 300);
    size_t failed = 0;
    for (long k = 0;; k++) {
        alloc_countdown = k;
        long before = alloc_failures;
        int rc = col_ac_new("env,zone", 1000, &f->ac);
        if (rc == 0) {
            weft_buf_reset(&f->out);
            rc = col_ac_values(f->ac, f->s, S("env"), &f->out);
        }
        alloc_countdown = -1;
        if (alloc_failures == before) { /* nothing failed: the run went through */
            assert_int_equal(rc, 0);
            break;
        }
        assert_int_equal(rc, WEFT_ENOMEM);
        failed++;
        if (f->ac) { /* a failed read leaves the key to be read whole next time */
            assert_int_equal(count_values(values(f, "env")), 300);
            col_ac_free(f->ac);
            f->ac = NULL;
        }
    }
    assert_true(failed >= 8); /* the keys, names, and the values' tables growing */
    weft_buf_putc(&f->out, 0);
    assert_int_equal(count_values(f->out.p), 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
