/*
 * test_store_oom.c - the trace store when memory runs out: open (with recovery), an append,
 * a trace read, a search, the name lists and close, re-run with the k-th allocation failing
 * for every k until a run goes through without one failing. The store's files are compiled
 * in here with malloc, calloc and realloc wrapped (zstd's own allocations are not). Each step
 * must succeed or fail with a negative code, never crash or leak (ASan); an append answered
 * 0 must read back whole after a reopen without faults, one answered with an error must not
 * be there.
 *
 * The countdown is atomic: the writer thread allocates too. The main thread waits for the
 * append's done before it goes on, so which allocation fails is still deterministic.
 */
#include <ftw.h>
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

static atomic_long countdown = -1; /* the allocation that fails: 0 the next; -1 none */
static atomic_long failures;

static bool should_fail(void)
{
    long c = atomic_load(&countdown);
    while (c >= 0) {
        if (atomic_compare_exchange_weak(&countdown, &c, c - 1)) {
            if (c != 0) return false;
            atomic_fetch_add(&failures, 1);
            return true;
        }
    }
    return false;
}

static void *oom_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}
static void *oom_calloc(size_t a, size_t b)
{
    return should_fail() ? NULL : calloc(a, b);
}
static void *oom_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}
static char *oom_strdup(const char *s)
{
    return should_fail() ? NULL : strdup(s);
}

#define malloc  oom_malloc
#define calloc  oom_calloc
#define realloc oom_realloc
#define strdup  oom_strdup
#include "../../../src/collector/store.c"
#include "../../../src/collector/store_codec.c"
#include "../../../src/collector/store_index.c"
#include "../../../src/collector/store_query.c"
#undef malloc
#undef calloc
#undef realloc
#undef strdup

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_calls, done_status;

static void on_done(int status, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    done_calls++;
    done_status = status;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int wait_done(int calls)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&mu);
    while (done_calls < calls) {
        if (pthread_cond_timedwait(&cv, &mu, &ts) != 0) break;
    }
    int st = done_calls >= calls ? done_status : 1;
    pthread_mutex_unlock(&mu);
    return st;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static col_attr_t attrs[] = {
    {.key = COL_STR("http.method"), .type = COL_V_STRING, .v.s = COL_STR("GET")},
    {.key = COL_STR("http.status_code"), .type = COL_V_INT, .v.i = 200},
};
static const col_resource_t res = {.service = COL_STR("frontend"), .attrs = attrs, .nattrs = 1};
static const col_scope_t scope = {.name = COL_STR("s")};

static void batch(uint64_t k, col_span_t *sp, size_t n)
{
    uint64_t now = st_now_ns();
    for (size_t i = 0; i < n; i++) {
        memset(&sp[i], 0, sizeof sp[i]);
        memcpy(sp[i].trace_id, &k, 8);
        sp[i].trace_id[15] = 1;
        sp[i].span_id[0] = (uint8_t)(i + 1);
        sp[i].start_ns = now - 1000000;
        sp[i].end_ns = now;
        sp[i].name = COL_STR("GET /x");
        sp[i].remote.service = COL_STR("db");
        sp[i].resource = &res;
        sp[i].scope = &scope;
        sp[i].attrs = attrs;
        sp[i].nattrs = 2;
    }
}

/* Opens the store in c->dir with no fault, appends batch k, closes. */
static void put_clean(const col_store_conf_t *c, uint64_t k)
{
    col_store_t *s;
    char err[256];
    assert_int_equal(col_store_open(c, &s, err, sizeof err), 0);
    col_span_t sp[5];
    batch(k, sp, 5);
    int before = done_calls;
    assert_int_equal(col_store_append(s, sp, 5, on_done, NULL), 0);
    assert_int_equal(wait_done(before + 1), 0);
    col_store_close(s);
}

/* Batch k's spans in the store: 0 or all 5. */
static size_t count(col_store_t *s, uint64_t k)
{
    weft_arena_t a;
    weft_arena_init(&a, 4096, 1 << 20);
    col_span_t sp[5], *got;
    size_t n;
    batch(k, sp, 5);
    assert_int_equal(col_store_trace(s, sp[0].trace_id, &a, &got, &n), 0);
    weft_arena_free(&a);
    return n;
}

static void test_oom(void **state)
{
    (void)state;
    long k;
    for (k = 0; k < 100000; k++) {
        /* a fresh directory holding one batch (1000), so that every run allocates alike */
        char dir[64];
        snprintf(dir, sizeof dir, "/tmp/weft-cstore-oom-XXXXXX");
        assert_non_null(mkdtemp(dir));
        col_store_conf_t c;
        col_store_conf_init(&c);
        c.dir = dir;
        c.sync = false;
        put_clean(&c, 1000);

        atomic_store(&failures, 0);
        atomic_store(&countdown, k);
        col_store_t *s = NULL;
        char err[256];
        int answer = -1; /* 1: batch 1 acknowledged */
        int rc = col_store_open(&c, &s, err, sizeof err);
        if (rc == 0) {
            col_span_t sp[5];
            batch(1, sp, 5);
            int before = done_calls;
            rc = col_store_append(s, sp, 5, on_done, NULL);
            if (rc == 0)
                answer = wait_done(before + 1) == 0 ? 1 : -1;
            else
                assert_true(rc < 0);
            weft_arena_t a;
            weft_arena_init(&a, 4096, 1 << 20);
            col_span_t *got;
            size_t n;
            rc = col_store_trace(s, sp[0].trace_id, &a, &got, &n);
            assert_true(rc == 0 || rc == WEFT_ENOMEM);
            col_query_t q = {.service = COL_STR("frontend"), .ntags = 1};
            q.tags[0].key = COL_STR("http.method");
            q.tags[0].value = COL_STR("GET");
            uint8_t ids[20][16];
            rc = col_store_search(s, &q, ids, 20, &n);
            assert_true(rc == 0 || rc == WEFT_ENOMEM);
            col_str_t *names;
            rc = col_store_services(s, &a, &names, &n);
            assert_true(rc == 0 || rc == WEFT_ENOMEM);
            col_operation_t *ops;
            rc = col_store_operations(s, COL_STR(""), &a, &ops, &n);
            assert_true(rc == 0 || rc == WEFT_ENOMEM);
            rc = col_store_remote_services(s, COL_STR("frontend"), &a, &names, &n);
            assert_true(rc == 0 || rc == WEFT_ENOMEM);
            weft_arena_free(&a);
            col_store_close(s);
        } else {
            assert_true(rc < 0);
            assert_true(err[0] != 0);
        }
        bool clean = atomic_load(&failures) == 0;
        atomic_store(&countdown, -1);

        /* without faults: what was acknowledged is there, whole; what was not, is not */
        assert_int_equal(col_store_open(&c, &s, err, sizeof err), 0);
        assert_int_equal(count(s, 1000), 5);
        assert_int_equal(count(s, 1), answer == 1 ? 5 : 0);
        col_store_close(s);
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        if (clean) break; /* a run with no allocation failing: every step was tried */
    }
    print_message("%ld allocation failures injected, one per run\n", k);
    assert_true(k > 20); /* the steps above allocate more than that */
    assert_true(k < 100000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_oom)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
