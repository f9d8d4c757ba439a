/*
 * store_bench.c - durable batches per second through the catalog's SQLite store
 * (src/registry/store_sqlite.c): `inflight` batches of one put each are kept in flight (each
 * done callback submits the next, as registrations arriving from many clients would), for
 * `seconds`, with synchronous=FULL and then NORMAL. Prints batches/s, transactions/s,
 * batches per transaction and the slowest transaction.
 *
 * Durability is the disk's: run it with DIR on the file system the catalog will live on
 * (tmpfs makes every fsync free). A fresh database per run, removed afterwards.
 *
 * Not part of the CMake build. Compile against a Release build of the modules:
 *   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build -j2 --target weft_registry weft_core
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc bench/store/store_bench.c \
 *     build/libweft_registry.a build/libweft_core.a -lsqlite3 -luv -lpthread \
 *     -o /tmp/store_bench
 *   /tmp/store_bench [DIR] [seconds] [inflight]      (defaults: /tmp 3 50)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "registry/store.h"
#include "weft/common.h"

typedef struct slot_s {
    weft_store_batch_t b;
    weft_store_op_t op;
    char key[32];
    char val[200]; /* about a registration's JSON */
} slot_t;

typedef struct run_s {
    weft_store_t *s;
    slot_t *slots;
    unsigned long seq, done, failed;
    int stopping;
} run_t;

static void submit(run_t *r, slot_t *sl);

static void on_done(weft_store_batch_t *b, int status, void *arg)
{
    run_t *r = arg;
    slot_t *sl = (slot_t *)(void *)b;
    if (r->stopping) return;
    r->done++;
    if (status) r->failed++;
    submit(r, sl);
}

static void submit(run_t *r, slot_t *sl)
{
    /* keys cycle over 10,000 services: puts are mostly overwrites, as re-registrations are.
     * Each value differs from the one it replaces: SQLite skips writing a cell whose bytes do
     * not change, and a transaction that changes nothing is not synced. */
    snprintf(sl->key, sizeof sl->key, "svc/%05lu", r->seq % 10000);
    snprintf(sl->val, sizeof sl->val, "%020lu", r->seq);
    sl->val[20] = 'x'; /* the rest stays 'x' */
    r->seq++;
    sl->op = (weft_store_op_t){
        .key = sl->key, .key_len = strlen(sl->key), .val = sl->val, .val_len = sizeof sl->val};
    sl->b = (weft_store_batch_t){.ops = &sl->op, .n = 1, .done = on_done, .arg = r};
    if (weft_store_submit(r->s, &sl->b) != 0) r->failed++;
}

static void on_stop(uv_timer_t *t)
{
    run_t *r = t->data;
    r->stopping = 1; /* what is still in flight is answered but not counted */
    uv_close((uv_handle_t *)t, NULL);
}

static int bench(const char *dir, int sync_full, double seconds, unsigned inflight)
{
    char path[512];
    snprintf(path, sizeof path, "%s/store-bench-%ld.db", dir, (long)getpid());
    uv_loop_t loop;
    uv_loop_init(&loop);
    weft_store_sqlite_options_t o;
    weft_store_sqlite_options_init(&o);
    o.path = path;
    o.sync_full = sync_full;
    run_t r = {.slots = calloc(inflight, sizeof(slot_t))};
    char err[512];
    int e = weft_store_sqlite_open(&o, &loop, &r.s, err, sizeof err);
    if (e || !r.slots) {
        fprintf(stderr, "open: %s\n", e ? err : "out of memory");
        return 1;
    }
    for (unsigned i = 0; i < inflight; i++) memset(r.slots[i].val, 'x', sizeof r.slots[i].val);

    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    stop.data = &r;
    uv_timer_start(&stop, on_stop, (uint64_t)(seconds * 1000), 0);
    uint64_t t0 = weft_now_ns();
    for (unsigned i = 0; i < inflight; i++) submit(&r, &r.slots[i]);
    uv_run(&loop, UV_RUN_DEFAULT); /* the timer, then the batches still in flight */
    double elapsed = (double)(weft_now_ns() - t0) / 1e9;

    weft_store_stats_t st = weft_store_stats(r.s);
    weft_store_close(r.s);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    printf("synchronous=%-6s inflight=%u: %8.0f batches/s  %7.0f commits/s  %5.1f "
           "batches/commit  max commit %lu us  failed %lu  (%.2f s)\n",
           sync_full ? "FULL" : "NORMAL", inflight, (double)r.done / seconds,
           (double)st.commits / elapsed, st.commits ? (double)st.batches / (double)st.commits : 0,
           (unsigned long)st.max_commit_us, r.failed, elapsed);
    free(r.slots);
    char side[600];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    unsigned inflight = argc > 3 ? (unsigned)atoi(argv[3]) : 50;
    if (seconds <= 0 || inflight == 0) {
        fprintf(stderr, "usage: store_bench [DIR] [seconds > 0] [inflight > 0]\n");
        return 2;
    }
    return bench(dir, 1, seconds, inflight) || bench(dir, 0, seconds, inflight);
}
