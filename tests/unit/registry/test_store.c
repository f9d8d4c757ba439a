/*
 * test_store.c - the SQLite store (registry/store_sqlite.c) through its interface
 * (registry/store.h): puts, deletes and overwrites surviving close and reopen, group commit,
 * done order, the bound, close (answering what is queued, refusing what comes after, from a
 * done callback too), empty values, a failing batch that fails alone, open on bad paths,
 * load's rules, and durability across a SIGKILL of the writing process.
 *
 * Each test has its own directory and loop; waits are on events (uv_run returns once every
 * done callback owed has run, a byte on a pipe), never on sleeps. Each test ends with the
 * loop closing cleanly: nothing the store opened is left.
 */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "registry/store.h"
#include "weft/common.h"
#include "weft/log.h"

typedef struct fix_s {
    uv_loop_t loop;
    char dir[64];
    char path[128];
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/weft-store-XXXXXX");
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
    int e = uv_loop_close(&f->loop); /* UV_EBUSY: the store left a handle */
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return e == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------------------ */
/* batches and their answers                                                            */

typedef struct tally_s {
    unsigned answered;     /* done callbacks run */
    unsigned next;         /* the sequence number expected next */
    unsigned out_of_order; /* answers that came before an earlier batch's */
    unsigned failed;       /* answers with a non-zero status */
} tally_t;

typedef struct item_s {
    weft_store_batch_t b;
    weft_store_op_t ops[2];
    char key[2][32], val[32];
    unsigned seq;
    int status, ran;
    tally_t *t;
    void (*then)(struct item_s *it); /* run from done, after the tally */
    void *ctx;
} item_t;

static void on_done(weft_store_batch_t *b, int status, void *arg)
{
    item_t *it = arg;
    tally_t *t = it->t;
    assert_ptr_equal(b, &it->b);
    it->ran++;
    it->status = status;
    if (it->seq != t->next) t->out_of_order++;
    t->next = it->seq + 1;
    t->answered++;
    if (status) t->failed++;
    if (it->then) it->then(it);
}

/* A batch of one put (key = val) or, with val NULL, one delete. */
static void item_one(item_t *it, tally_t *t, unsigned seq, const char *key, const char *val)
{
    memset(it, 0, sizeof *it);
    snprintf(it->key[0], sizeof it->key[0], "%s", key);
    it->ops[0] = (weft_store_op_t){.key = it->key[0], .key_len = strlen(key), .del = !val};
    if (val) {
        snprintf(it->val, sizeof it->val, "%s", val);
        it->ops[0].val = it->val;
        it->ops[0].val_len = strlen(val);
    }
    it->b = (weft_store_batch_t){.ops = it->ops, .n = 1, .done = on_done, .arg = it};
    it->seq = seq;
    it->t = t;
}

static weft_store_t *open_store(fix_t *f, bool sync_full, size_t max_queued)
{
    weft_store_sqlite_options_t o;
    weft_store_sqlite_options_init(&o);
    o.path = f->path;
    o.sync_full = sync_full;
    if (max_queued) o.max_queued = max_queued;
    weft_store_t *s = NULL;
    char err[256] = "";
    int e = weft_store_sqlite_open(&o, &f->loop, &s, err, sizeof err);
    if (e) fail_msg("open %s: %s (%s)", f->path, err, weft_err_name(e));
    assert_non_null(s);
    assert_string_equal(s->ops->name, "sqlite");
    return s;
}

/* Closes s and lets the loop run the close callback that frees it. */
static void close_store(fix_t *f, weft_store_t *s)
{
    weft_store_close(s);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

/* ------------------------------------------------------------------------------------ */
/* what load reads                                                                      */

enum { MAX_RECORDS = 4096 };

typedef struct loaded_s {
    size_t n;
    unsigned unordered; /* keys that did not come after the previous one */
    unsigned bad_val;   /* val was NULL */
    char key[MAX_RECORDS][32];
    char val[MAX_RECORDS][64];
    size_t val_len[MAX_RECORDS];
    unsigned stop_after; /* 0: never; else return 42 after this many */
} loaded_t;

static int on_record(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    loaded_t *l = arg;
    assert_true(l->n < MAX_RECORDS);
    assert_true(key_len < sizeof l->key[0] && val_len <= sizeof l->val[0]);
    assert_int_equal(key[key_len], '\0');
    if (!val) l->bad_val++;
    memcpy(l->key[l->n], key, key_len);
    l->key[l->n][key_len] = '\0';
    if (val) memcpy(l->val[l->n], val, val_len);
    l->val_len[l->n] = val_len;
    if (l->n > 0 && strcmp(l->key[l->n - 1], l->key[l->n]) >= 0) l->unordered++;
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

/* Opens the store at f->path, loads it into a new loaded_t (the caller frees it), closes. */
static loaded_t *reload(fix_t *f)
{
    loaded_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    weft_store_t *s = open_store(f, true, 0);
    char err[256] = "";
    int e = weft_store_load(s, on_record, l, err, sizeof err);
    if (e) fail_msg("load: %s (%d)", err, e);
    close_store(f, s);
    assert_int_equal(l->unordered, 0);
    assert_int_equal(l->bad_val, 0);
    return l;
}

static void assert_record(const loaded_t *l, size_t i, const char *key, const char *val)
{
    assert_true(i < l->n);
    assert_string_equal(l->key[i], key);
    assert_int_equal(l->val_len[i], strlen(val));
    if (val[0]) assert_memory_equal(l->val[i], val, strlen(val));
}

/* ------------------------------------------------------------------------------------ */
/* tests                                                                                */

/* Puts, deletes and overwrites, in one batch and across batches, survive close and reopen;
 * a second session changes what the first wrote. */
static void test_roundtrip(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    item_t it[4];
    weft_store_t *s = open_store(f, true, 0);

    /* one batch of three puts, then a delete, then an overwrite and a put in one batch */
    weft_store_op_t three[3] = {
        {.key = "svc/a", .key_len = 5, .val = "1", .val_len = 1},
        {.key = "svc/b", .key_len = 5, .val = "2", .val_len = 1},
        {.key = "svc/c", .key_len = 5, .val = "3", .val_len = 1},
    };
    item_one(&it[0], &t, 0, "unused", "x");
    it[0].b.ops = three;
    it[0].b.n = 3;
    item_one(&it[1], &t, 1, "svc/b", NULL);
    item_one(&it[2], &t, 2, "svc/a", "10");
    it[2].ops[1] = (weft_store_op_t){.key = "meta/index", .key_len = 10, .val = "7", .val_len = 1};
    it[2].b.n = 2;
    for (int i = 0; i < 3; i++) assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* returns once all are answered */
    assert_int_equal(t.answered, 3);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.out_of_order, 0);
    weft_store_stats_t st = weft_store_stats(s);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.failed, 0);
    close_store(f, s);

    loaded_t *l = reload(f);
    assert_int_equal(l->n, 3);
    assert_record(l, 0, "meta/index", "7");
    assert_record(l, 1, "svc/a", "10");
    assert_record(l, 2, "svc/c", "3");
    free(l);

    /* second session: delete what the first wrote, delete a key that never was, put */
    s = open_store(f, false, 0);
    t = (tally_t){0};
    item_one(&it[0], &t, 0, "svc/c", NULL);
    item_one(&it[1], &t, 1, "svc/nothing", NULL);
    item_one(&it[2], &t, 2, "svc/d", "4");
    for (int i = 0; i < 3; i++) assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, 3);
    assert_int_equal(t.failed, 0);
    close_store(f, s);

    l = reload(f);
    assert_int_equal(l->n, 3);
    assert_record(l, 0, "meta/index", "7");
    assert_record(l, 1, "svc/a", "10");
    assert_record(l, 2, "svc/d", "4");
    free(l);
}

enum { FLOOD = 2000 };

/* Batches submitted back to back are written in far fewer transactions than batches, and
 * answered in submission order. */
static void test_group_commit_and_order(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    item_t *it = calloc(FLOOD, sizeof *it);
    assert_non_null(it);
    weft_store_t *s = open_store(f, true, 0);
    for (unsigned i = 0; i < FLOOD; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "svc/%05u", i);
        snprintf(val, sizeof val, "v%u", i);
        item_one(&it[i], &t, i, key, val);
        assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    }
    assert_int_equal(weft_store_stats(s).queued > 0, 1);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, FLOOD);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.out_of_order, 0);
    for (unsigned i = 0; i < FLOOD; i++) assert_int_equal(it[i].ran, 1);
    weft_store_stats_t st = weft_store_stats(s);
    assert_int_equal(st.batches, FLOOD);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.queued, 0);
    assert_true(st.commits >= 1);
    assert_true(st.commits < FLOOD);
    close_store(f, s);

    loaded_t *l = reload(f);
    assert_int_equal(l->n, FLOOD);
    assert_record(l, 0, "svc/00000", "v0");
    assert_record(l, FLOOD - 1, "svc/01999", "v1999");
    free(l);
    free(it);
}

/* A done callback that submits again (what a busy catalog does): order holds throughout. */
enum { CHAIN_WIDTH = 50, CHAIN_TOTAL = 600 };

typedef struct chain_s {
    weft_store_t *s;
    item_t *items;
    unsigned submitted;
} chain_t;

static void chain_next(item_t *done)
{
    chain_t *c = done->ctx;
    if (c->submitted == CHAIN_TOTAL) return;
    item_t *it = &c->items[c->submitted];
    char key[32];
    snprintf(key, sizeof key, "chain/%04u", c->submitted);
    item_one(it, done->t, c->submitted, key, "x");
    it->then = chain_next;
    it->ctx = c;
    assert_int_equal(weft_store_submit(c->s, &it->b), 0);
    c->submitted++;
}

static void test_submit_from_done(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    chain_t c = {.s = open_store(f, false, 0), .items = calloc(CHAIN_TOTAL, sizeof(item_t))};
    assert_non_null(c.items);
    item_t seed = {.t = &t, .ctx = &c};
    for (int i = 0; i < CHAIN_WIDTH; i++) chain_next(&seed);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, CHAIN_TOTAL);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.out_of_order, 0);
    close_store(f, c.s);
    loaded_t *l = reload(f);
    assert_int_equal(l->n, CHAIN_TOTAL);
    free(l);
    free(c.items);
}

/* max_queued batches may wait; one more is refused (and never answered) until one is. */
static void test_limit(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    item_t it[5];
    weft_store_t *s = open_store(f, true, 3);
    for (unsigned i = 0; i < 5; i++) item_one(&it[i], &t, i, "k", "v");
    for (unsigned i = 0; i < 3; i++) assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    assert_int_equal(weft_store_submit(s, &it[3].b), WEFT_ELIMIT);
    assert_int_equal(weft_store_stats(s).queued, 3);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, 3);
    assert_int_equal(it[3].ran, 0);
    it[4].seq = 3; /* the refused one took no place in the order */
    assert_int_equal(weft_store_submit(s, &it[4].b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, 4);
    assert_int_equal(t.failed, 0);
    assert_int_equal(it[3].ran, 0);

    /* malformed batches are refused and never answered */
    weft_store_batch_t nodone = {.ops = it[0].ops, .n = 1};
    assert_int_equal(weft_store_submit(s, &nodone), WEFT_EINVAL);
    weft_store_op_t nullval = {.key = "k", .key_len = 1, .val = NULL, .val_len = 3};
    weft_store_batch_t bad = {.ops = &nullval, .n = 1, .done = on_done, .arg = &it[3]};
    assert_int_equal(weft_store_submit(s, &bad), WEFT_EINVAL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(it[3].ran, 0);
    close_store(f, s);
}

/* close writes and answers what is queued from inside close, without the loop running; a
 * submit from one of those done callbacks gets WEFT_ECLOSED and is never answered. */
enum { AT_CLOSE = 100 };

typedef struct late_s {
    weft_store_t *s;
    item_t extra;
    int rc;
} late_t;

static void submit_late(item_t *done)
{
    late_t *late = done->ctx;
    late->rc = weft_store_submit(late->s, &late->extra.b);
}

static void test_close_answers_queued(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    item_t *it = calloc(AT_CLOSE, sizeof *it);
    assert_non_null(it);
    weft_store_t *s = open_store(f, true, 0);
    late_t late = {.s = s, .rc = 1};
    item_one(&late.extra, &t, 999, "late", "x");
    for (unsigned i = 0; i < AT_CLOSE; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%03u", i);
        item_one(&it[i], &t, i, key, "v");
        assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    }
    it[AT_CLOSE / 2].then = submit_late;
    it[AT_CLOSE / 2].ctx = &late;
    weft_store_close(s);
    assert_int_equal(t.answered, AT_CLOSE); /* all of them, inside close */
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.out_of_order, 0);
    assert_int_equal(late.rc, WEFT_ECLOSED);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* the handle's close: the free */
    assert_int_equal(late.extra.ran, 0);

    loaded_t *l = reload(f);
    assert_int_equal(l->n, AT_CLOSE);
    free(l);
    free(it);
}

/* close from a done callback: the rest are answered inside that close, in order. */
static void close_from_done(item_t *done)
{
    weft_store_close(done->ctx);
}

static void test_close_from_done(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    item_t it[10];
    weft_store_t *s = open_store(f, true, 0);
    for (unsigned i = 0; i < 10; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%u", i);
        item_one(&it[i], &t, i, key, "v");
        assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    }
    it[0].then = close_from_done;
    it[0].ctx = s;
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, 10);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.out_of_order, 0);
    loaded_t *l = reload(f);
    assert_int_equal(l->n, 10);
    free(l);
}

/* Empty values (NULL or not) are values, not SQL NULLs; binary values round-trip; a batch
 * of no operations is answered. */
static void test_empty_values(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    weft_store_t *s = open_store(f, true, 0);
    static const char bin[] = {'a', 0, 'b', 0, (char)0xff};
    weft_store_op_t ops[3] = {
        {.key = "e/null", .key_len = 6, .val = NULL, .val_len = 0},
        {.key = "e/empty", .key_len = 7, .val = "", .val_len = 0},
        {.key = "e/bin", .key_len = 5, .val = bin, .val_len = sizeof bin},
    };
    item_t it[2];
    item_one(&it[0], &t, 0, "unused", "x");
    it[0].b.ops = ops;
    it[0].b.n = 3;
    item_one(&it[1], &t, 1, "unused", "x");
    it[1].b.ops = NULL;
    it[1].b.n = 0;
    for (int i = 0; i < 2; i++) assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, 2);
    assert_int_equal(t.failed, 0);
    close_store(f, s);

    loaded_t *l = reload(f); /* fails on a NULL val */
    assert_int_equal(l->n, 3);
    assert_string_equal(l->key[0], "e/bin");
    assert_int_equal(l->val_len[0], sizeof bin);
    assert_memory_equal(l->val[0], bin, sizeof bin);
    assert_record(l, 1, "e/empty", "");
    assert_record(l, 2, "e/null", "");
    free(l);

    /* and SQLite holds blobs, not NULLs */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM kv WHERE typeof(val) = 'blob'", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A batch whose statement fails (a trigger refuses key "bad") fails alone: the batches
 * written in the same transaction are durable, and the failed batch left nothing behind
 * (its first op, a good put, is rolled back with it). Another connection holds the write
 * lock while the batches are submitted, so that they reach the writer together. */
static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fail_msg("%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

static void test_bad_batch_fails_alone(void **state)
{
    fix_t *f = *state;
    weft_log_set_level(WEFT_LOG_OFF); /* the store logs each failure */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    exec_ok(db, "PRAGMA journal_mode=WAL");
    exec_ok(db, "CREATE TABLE kv(key TEXT PRIMARY KEY NOT NULL, val BLOB NOT NULL) WITHOUT ROWID");
    exec_ok(db, "CREATE TRIGGER refuse BEFORE INSERT ON kv WHEN NEW.key = 'bad' "
                "BEGIN SELECT RAISE(ABORT, 'bad key'); END");

    tally_t t = {0};
    enum { GOOD = 10 };
    item_t it[GOOD + 2];
    weft_store_t *s = open_store(f, true, 0);
    exec_ok(db, "BEGIN IMMEDIATE");
    unsigned seq = 0;
    for (unsigned i = 0; i < GOOD + 2; i++) {
        char key[16];
        snprintf(key, sizeof key, "good/%02u", i);
        if (i == GOOD / 2) { /* a put that would succeed, then the refused one */
            item_one(&it[i], &t, seq++, "half/1", "x");
            it[i].ops[1] = (weft_store_op_t){.key = "bad", .key_len = 3, .val = "x", .val_len = 1};
            it[i].b.n = 2;
        } else if (i == GOOD / 2 + 1) {
            item_one(&it[i], &t, seq++, "bad", "y");
        } else {
            item_one(&it[i], &t, seq++, key, "ok");
        }
        assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    }
    exec_ok(db, "COMMIT"); /* the writer may go */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.answered, GOOD + 2);
    assert_int_equal(t.out_of_order, 0);
    assert_int_equal(t.failed, 2);
    for (unsigned i = 0; i < GOOD + 2; i++)
        assert_int_equal(it[i].status, i == GOOD / 2 || i == GOOD / 2 + 1 ? WEFT_EINVAL : 0);
    weft_store_stats_t st = weft_store_stats(s);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.batches, GOOD);
    assert_true(st.commits <= 2); /* the batches that were waiting went in one transaction */

    /* a bad batch alone in its transaction, then a good one */
    t = (tally_t){0};
    item_one(&it[0], &t, 0, "bad", "z");
    assert_int_equal(weft_store_submit(s, &it[0].b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    item_one(&it[1], &t, 1, "good/last", "ok");
    assert_int_equal(weft_store_submit(s, &it[1].b), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(it[0].status, WEFT_EINVAL);
    assert_int_equal(it[1].status, 0);
    close_store(f, s);
    sqlite3_close(db);
    weft_log_set_level(WEFT_LOG_INFO);

    loaded_t *l = reload(f);
    assert_int_equal(l->n, GOOD + 1);
    for (size_t i = 0; i < l->n; i++) assert_memory_equal(l->key[i], "good/", 5);
    free(l);
}

/* open refuses, with a negative code and a message naming the path: a file that is not a
 * database, a database whose kv table is not the store's, a directory that is a file, a
 * directory that does not exist; and options without a path or room. */
static void expect_open_error(fix_t *f, const char *path, size_t max_queued, int code)
{
    weft_store_sqlite_options_t o;
    weft_store_sqlite_options_init(&o);
    o.path = path;
    if (max_queued != (size_t)-1) o.max_queued = max_queued;
    weft_store_t *s = (weft_store_t *)&o; /* not NULL: open must clear it */
    char err[512] = "";
    int e = weft_store_sqlite_open(&o, &f->loop, &s, err, sizeof err);
    assert_true(e < 0);
    if (code) assert_int_equal(e, code);
    assert_null(s);
    if (path && path[0]) {
        if (!strstr(err, path)) fail_msg("message without the path: %s", err);
    } else {
        assert_true(err[0] != '\0');
    }
}

static void test_open_errors(void **state)
{
    fix_t *f = *state;
    char p[256];

    snprintf(p, sizeof p, "%s/garbage.db", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++) fputs("this is not a database ", fp);
    fclose(fp);
    expect_open_error(f, p, -1, WEFT_EPARSE);

    snprintf(p, sizeof p, "%s/other.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    exec_ok(db, "CREATE TABLE kv(a INTEGER, b INTEGER)");
    sqlite3_close(db);
    expect_open_error(f, p, -1, 0);

    snprintf(p, sizeof p, "%s/garbage.db/catalog.db", f->dir); /* a file as directory */
    expect_open_error(f, p, -1, 0);
    snprintf(p, sizeof p, "%s/missing/catalog.db", f->dir);
    expect_open_error(f, p, -1, 0);

    expect_open_error(f, NULL, -1, WEFT_EINVAL);
    expect_open_error(f, "", -1, WEFT_EINVAL);
    expect_open_error(f, f->path, 0, WEFT_EINVAL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* nothing was left open */
}

/* load reads in key order, stops with fn's result, and is refused once a batch went in. */
static void test_load_rules(void **state)
{
    fix_t *f = *state;
    tally_t t = {0};
    item_t it[3];
    weft_store_t *s = open_store(f, true, 0);
    item_one(&it[0], &t, 0, "c", "3");
    item_one(&it[1], &t, 1, "a", "1");
    item_one(&it[2], &t, 2, "b", "2");
    for (int i = 0; i < 3; i++) assert_int_equal(weft_store_submit(s, &it[i].b), 0);
    char err[256] = "";
    loaded_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(weft_store_load(s, on_record, l, err, sizeof err), WEFT_ESTATE);
    assert_non_null(strstr(err, f->path));
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    close_store(f, s);

    s = open_store(f, true, 0);
    l->stop_after = 2;
    assert_int_equal(weft_store_load(s, on_record, l, err, sizeof err), 42);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->key[0], "a");
    assert_string_equal(l->key[1], "b");
    memset(l, 0, sizeof *l); /* a load that stopped can be run again */
    assert_int_equal(weft_store_load(s, on_record, l, err, sizeof err), 0);
    assert_int_equal(l->n, 3);
    close_store(f, s);
    free(l);
}

/* A child process opens the store, submits N batches, and writes a byte to a pipe once every
 * done callback has run; the parent then kills it with SIGKILL (no close, no checkpoint)
 * and finds every batch on reopening. */
enum { KILLED_N = 200 };

static void child_writes(fix_t *f, int wfd)
{
    uv_loop_t loop;
    char ok = 'f';
    if (uv_loop_init(&loop) != 0) goto out;
    weft_store_sqlite_options_t o;
    weft_store_sqlite_options_init(&o);
    o.path = f->path;
    weft_store_t *s;
    char err[256];
    if (weft_store_sqlite_open(&o, &loop, &s, err, sizeof err) != 0) goto out;
    static item_t it[KILLED_N];
    static tally_t t;
    for (unsigned i = 0; i < KILLED_N; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "killed/%04u", i);
        snprintf(val, sizeof val, "value %u", i);
        item_one(&it[i], &t, i, key, val);
        if (weft_store_submit(s, &it[i].b) != 0) goto out;
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* until every done has run */
    if (t.answered == KILLED_N && t.failed == 0 && t.out_of_order == 0) ok = 'k';
out:
    if (write(wfd, &ok, 1) != 1) _exit(3);
    for (;;) pause(); /* the parent's SIGKILL ends this */
}

static void test_durable_across_sigkill(void **state)
{
    fix_t *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_writes(f, p[1]);
    }
    close(p[1]);
    char c = 0;
    ssize_t r = read(p[0], &c, 1);
    while (r < 0 && errno == EINTR) r = read(p[0], &c, 1);
    close(p[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_int_equal(r, 1);
    assert_int_equal(c, 'k');
    assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);

    loaded_t *l = reload(f);
    assert_int_equal(l->n, KILLED_N);
    for (unsigned i = 0; i < KILLED_N; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "killed/%04u", i);
        snprintf(val, sizeof val, "value %u", i);
        assert_record(l, i, key, val);
    }
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_from_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_answers_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_batch_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_across_sigkill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
