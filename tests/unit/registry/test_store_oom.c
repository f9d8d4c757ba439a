/*
 * test_store_oom.c - the SQLite store when memory runs out: open, load, writes and close
 * re-run with the k-th allocation failing, for every k until one runs without a failure.
 * Allocations are SQLite's (its allocator replaced through SQLITE_CONFIG_MALLOC) and the
 * store's own (store_sqlite.c is compiled in here with calloc and strdup wrapped). Each step
 * must fail with a negative code or succeed, never crash or leak (ASan), and a write that
 * was answered 0 must be on disk while one answered with an error must not be.
 *
 * The countdown is atomic: the writer thread allocates through SQLite too. The main thread
 * waits for the writer's answers before it looks, so which allocation fails is still
 * deterministic.
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
#include <sqlite3.h>
#include <uv.h>

static atomic_long countdown = -1; /* the allocation that fails: 0 the next; -1 none */
static atomic_bool sticky;         /* every allocation after that one fails too */
static atomic_long failures;       /* failures injected */

static bool should_fail(void)
{
    long c = atomic_load(&countdown);
    while (c >= 0) {
        long next = c > 0 ? c - 1 : atomic_load(&sticky) ? 0 : -1;
        if (atomic_compare_exchange_weak(&countdown, &c, next)) {
            if (c != 0) return false;
            atomic_fetch_add(&failures, 1);
            return true;
        }
    }
    return false;
}

static void *oom_calloc(size_t a, size_t b)
{
    return should_fail() ? NULL : calloc(a, b);
}
static char *oom_strdup(const char *s)
{
    return should_fail() ? NULL : strdup(s);
}

#define calloc oom_calloc
#define strdup oom_strdup
#include "../../../src/registry/store_sqlite.c"
#undef calloc
#undef strdup

static sqlite3_mem_methods sqlite_mem;
static void *sqlite_malloc(int n)
{
    return should_fail() ? NULL : sqlite_mem.xMalloc(n);
}
static void *sqlite_realloc(void *p, int n)
{
    return should_fail() ? NULL : sqlite_mem.xRealloc(p, n);
}

/* Arms the countdown: the k-th allocation from now fails (-1: none), and with stay, every
 * one after it. */
static void fail_from(long k, bool stay)
{
    atomic_store(&countdown, -1);
    atomic_store(&failures, 0);
    atomic_store(&sticky, stay);
    atomic_store(&countdown, k);
}

static void fail_at(long k)
{
    fail_from(k, false);
}

typedef struct fix_s {
    uv_loop_t loop;
    char dir[64];
    char path[128];
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/weft-store-oom-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/catalog.db", f->dir);
    if (uv_loop_init(&f->loop) != 0) return -1;
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int teardown(void **state)
{
    fix_t *f = *state;
    fail_at(-1);
    int e = uv_loop_close(&f->loop);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return e == 0 ? 0 : -1;
}

enum { MAX_STEPS = 2000 }; /* far more allocations than any step makes */

static int try_open(fix_t *f, weft_store_t **s, char *err, size_t errlen)
{
    weft_store_sqlite_options_t o;
    weft_store_sqlite_options_init(&o);
    o.path = f->path;
    return weft_store_sqlite_open(&o, &f->loop, s, err, errlen);
}

static void close_store(fix_t *f, weft_store_t *s)
{
    weft_store_close(s);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static int count_record(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    (*(size_t *)arg)++;
    return 0;
}

/* open fails cleanly at every allocation, on a new file and on an existing one. */
static void test_open(void **state)
{
    fix_t *f = *state;
    for (int existing = 0; existing < 2; existing++) {
        long k;
        for (k = 0; k < MAX_STEPS; k++) {
            weft_store_t *s = NULL;
            char err[256] = "";
            fail_at(k);
            int e = try_open(f, &s, err, sizeof err);
            long failed = atomic_load(&failures);
            fail_at(-1);
            if (e == 0) {
                assert_non_null(s);
                close_store(f, s);
                if (failed == 0) break; /* ran to the end without an injected failure */
                continue;               /* SQLite got over the failure */
            }
            assert_true(e < 0);
            assert_null(s);
            assert_true(err[0] != '\0');
            assert_int_equal(failed, 1);
        }
        assert_true(k > 0 && k < MAX_STEPS);
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

/* Batches of OPS puts, each with keys of its own id; written[id] says which were answered
 * 0. */
enum { OPS = 20, MAX_IDS = 4 * MAX_STEPS };
static char keys[MAX_IDS][OPS][24];
static int written[MAX_IDS];
static long next_id;

static void on_done(weft_store_batch_t *b, int status, void *arg)
{
    *(int *)arg = status;
}

static int write_one(fix_t *f, weft_store_t *s)
{
    long id = next_id++;
    assert_true(id < MAX_IDS);
    weft_store_op_t ops[OPS];
    for (int i = 0; i < OPS; i++) {
        snprintf(keys[id][i], sizeof keys[id][i], "k%05ld/%02d", id, i);
        ops[i] = (weft_store_op_t){
            .key = keys[id][i], .key_len = strlen(keys[id][i]), .val = "value", .val_len = 5};
    }
    int status = 1;
    weft_store_batch_t b = {.ops = ops, .n = OPS, .done = on_done, .arg = &status};
    assert_int_equal(weft_store_submit(s, &b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* until it is answered */
    assert_true(status <= 0);
    written[id] = status == 0;
    return status;
}

/* Writes a batch with the k-th allocation failing (and every one after it, when stay), for
 * k = 0, 1, ... until one runs without a failure. With stay, a clean batch after each must
 * be answered 0: the store recovers. Returns the batches answered with an error. */
static long write_failing(fix_t *f, weft_store_t *s, bool stay)
{
    long k, errors = 0;
    for (k = 0; k < MAX_STEPS; k++) {
        fail_from(k, stay);
        int status = write_one(f, s);
        long failed = atomic_load(&failures);
        fail_at(-1);
        if (status) errors++;
        if (stay) assert_int_equal(write_one(f, s), 0);
        if (failed == 0) break;
    }
    assert_true(k > 0 && k < MAX_STEPS);
    return errors;
}

/* Every batch answered 0 is there, whole; the others left nothing. Returns the records. */
static size_t check_written(fix_t *f)
{
    sqlite3 *db;
    size_t total = 0;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    for (long id = 0; id < next_id; id++) {
        sqlite3_stmt *st;
        char sql[96];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM kv WHERE key >= 'k%05ld/' AND key < 'k%05ld0'", id, id);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int n = sqlite3_column_int(st, 0);
        assert_int_equal(n, written[id] ? OPS : 0);
        total += (size_t)n;
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return total;
}

static void test_write_and_load(void **state)
{
    fix_t *f = *state;
    weft_store_t *s;
    char err[256];

    /* one failure: SQLite or the second, isolated, pass gets over it */
    assert_int_equal(try_open(f, &s, err, sizeof err), 0);
    write_failing(f, s, false);
    close_store(f, s);
    check_written(f);

    /* failing from the k-th on: the batch is answered with an error, the next one works */
    assert_int_equal(try_open(f, &s, err, sizeof err), 0);
    assert_true(write_failing(f, s, true) > 0);
    fail_from(0, true); /* close checkpoints: failing there is logged, not fatal */
    close_store(f, s);
    fail_at(-1);
    size_t want = check_written(f);
    assert_true(want > 0);

    /* load: an error, or every record */
    long k;
    for (k = 0; k < MAX_STEPS; k++) {
        assert_int_equal(try_open(f, &s, err, sizeof err), 0);
        size_t n = 0;
        fail_at(k);
        int e = weft_store_load(s, count_record, &n, err, sizeof err);
        long failed = atomic_load(&failures);
        fail_at(-1);
        if (e == 0)
            assert_int_equal(n, want);
        else
            assert_true(e < 0);
        close_store(f, s);
        if (failed == 0) break;
    }
    assert_true(k < MAX_STEPS);
}

int main(void)
{
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_mem);
    static sqlite3_mem_methods faulty;
    faulty = sqlite_mem;
    faulty.xMalloc = sqlite_malloc;
    faulty.xRealloc = sqlite_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &faulty) != SQLITE_OK) return 1;
    weft_log_set_level(WEFT_LOG_OFF); /* the store logs what fails */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
