/*
 * store.h - where the catalog keeps what must survive a restart (internal).
 *
 * The catalog reaches its storage only through this interface: a key-value store with
 * batched, durable writes. Nothing outside a store's own file knows how it keeps the data
 * (SQL, files, an etcd cluster in a later issue), so a store is a table of operations.
 *
 * Keys are short printable strings chosen by the catalog ("svc/web-1", "chk/service:web-1",
 * "meta/index"); values are opaque bytes (the catalog writes JSON). A batch is a list of
 * puts and deletes that becomes durable as a whole or not at all.
 *
 * Threads and ownership: a store is opened, loaded, submitted to and closed on one thread
 * (the control loop's), whose libuv loop the store is given at open. submit never blocks and
 * never touches the disk on the caller's thread: it queues the batch and returns. A writer
 * thread of the store's own takes every batch queued so far, writes them in one transaction
 * and makes it durable (group commit: one fsync for many batches, so a flood of
 * registrations costs one disk flush per round, not one each), then hands each batch back:
 * done(b, status, arg) runs on the loop given at open, in submission order. Until done runs,
 * the caller must keep b, its ops and their bytes unchanged; afterwards they are the
 * caller's again. status is 0 (durable) or a negative WEFT_E* code (the batch was not
 * written; batches after it may still be).
 */
#ifndef WEFT_REGISTRY_STORE_H
#define WEFT_REGISTRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/mpsc.h"

typedef struct weft_store_s weft_store_t;
typedef struct weft_store_batch_s weft_store_batch_t;

/* One write: put key = val (val_len bytes, may be 0), or delete key when del is true. */
typedef struct weft_store_op_s {
    const char *key;
    size_t key_len;
    const void *val;
    size_t val_len;
    bool del;
} weft_store_op_t;

typedef void (*weft_store_done_fn)(weft_store_batch_t *b, int status, void *arg);

struct weft_store_batch_s {
    const weft_store_op_t *ops; /* caller's, kept unchanged until done */
    size_t n;
    weft_store_done_fn done; /* required; on the open loop's thread */
    void *arg;
    /* the store's, while the batch is queued: */
    weft_mpsc_node_t node_;
    int status_;
};

/* Called by load for every record; return 0 to go on, anything else to stop load with it.
 * key (followed by a NUL) and val (never NULL, even when val_len is 0) are valid during the
 * call only. */
typedef int (*weft_store_load_fn)(void *arg, const char *key, size_t key_len, const void *val,
                                  size_t val_len);

/* Counters (any thread; relaxed reads). */
typedef struct weft_store_stats_s {
    uint64_t batches;       /* batches made durable */
    uint64_t commits;       /* transactions (group commits) */
    uint64_t failed;        /* batches answered with an error */
    uint64_t queued;        /* batches submitted whose done has not run yet */
    uint64_t max_commit_us; /* the slowest commit so far */
} weft_store_stats_t;

typedef struct weft_store_ops_s {
    const char *name; /* "sqlite" */
    /* Reads every record, in key order, calling fn, on the caller's thread; before any
     * submit (after one: WEFT_ESTATE). Returns 0, fn's non-zero result, or a negative error
     * with a message in err. */
    int (*load)(weft_store_t *s, weft_store_load_fn fn, void *arg, char *err, size_t errlen);
    /* Queues b (see the top). Returns 0 (done will run), or WEFT_ELIMIT when max_queued
     * batches already wait, WEFT_ECLOSED after close began (from a done callback that close
     * runs), WEFT_EINVAL for a malformed batch (no done; ops NULL with n > 0; a NULL key or
     * value with a non-zero length): then done never runs. */
    int (*submit)(weft_store_t *s, weft_store_batch_t *b);
    /* Writes what is queued, runs the done callbacks of every batch (from inside close, on
     * the caller's thread), stops the writer thread, frees the store. May be called from a
     * done callback. A store that holds a libuv handle on the loop frees its memory from the
     * handle's close callback: the loop's owner runs the loop once more before
     * uv_loop_close, as for any handle; s must not be used after close. */
    void (*close)(weft_store_t *s);
    weft_store_stats_t (*stats)(const weft_store_t *s);
} weft_store_ops_t;

struct weft_store_s {
    const weft_store_ops_t *ops;
};

static inline int weft_store_load(weft_store_t *s, weft_store_load_fn fn, void *arg, char *err,
                                  size_t errlen)
{
    return s->ops->load(s, fn, arg, err, errlen);
}
static inline int weft_store_submit(weft_store_t *s, weft_store_batch_t *b)
{
    return s->ops->submit(s, b);
}
static inline void weft_store_close(weft_store_t *s)
{
    s->ops->close(s);
}
static inline weft_store_stats_t weft_store_stats(const weft_store_t *s)
{
    return s->ops->stats(s);
}

/* The embedded store: SQLite in WAL mode. */
typedef struct weft_store_sqlite_options_s {
    const char *path;  /* database file, created if missing (e.g. DATA_DIR/catalog.db) */
    size_t max_queued; /* batches waiting at most (submitted, done not run); default
                          65536; 0 is refused */
    bool sync_full;    /* synchronous=FULL (survives power loss); default true. false:
                          NORMAL, which in WAL mode survives a process crash (kill -9)
                          but not a power cut */
} weft_store_sqlite_options_t;

void weft_store_sqlite_options_init(weft_store_sqlite_options_t *o);

/* Opens (creating the file and its table if needed) and starts the writer thread. done
 * callbacks run on loop; the store keeps loop alive only while done callbacks are owed (so
 * uv_run returns once every submitted batch is answered). Returns 0 and *out, or a negative
 * WEFT_E* with a message naming the path in err (a file that is not a database: WEFT_EPARSE;
 * a directory that cannot be written: the system's errno...); then *out is NULL. */
int weft_store_sqlite_open(const weft_store_sqlite_options_t *o, uv_loop_t *loop,
                           weft_store_t **out, char *err, size_t errlen);

#endif
