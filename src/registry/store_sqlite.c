/*
 * store_sqlite.c - the catalog's embedded store: SQLite in WAL mode, written by a thread of
 * its own with group commit (the interface is registry/store.h).
 *
 * The data: one table, kv(key TEXT PRIMARY KEY, val BLOB) WITHOUT ROWID, so a record is one
 * b-tree entry keyed by its key and load reads it in key order without a sort. The file is
 * an ordinary SQLite database, inspectable with the sqlite3 shell. journal_mode=WAL: a
 * commit appends to the write-ahead log (one fsync under synchronous=FULL; none under
 * NORMAL, where the log is synced at checkpoints, so a commit survives a process crash but
 * may not survive a power cut). busy_timeout lets another process (the shell) hold a lock
 * briefly without failing writes. Every statement is prepared once, at open.
 *
 * Threads. Two touch the store: the owner's (the loop given at open: open, load, submit,
 * close, and every done callback) and the writer (writer_main). The database connection
 * is opened in SQLITE_OPEN_NOMUTEX mode and belongs to one thread at a time: to the owner
 * from open until its first submit (load reads it; a load after a submit is refused), then
 * to the writer until close has joined it; then to the owner again, which closes it. Each
 * hand-over is ordered by the queue (a push is a release, a pop an acquire) or by the join.
 * stats() may be called from any thread: the counters are relaxed atomics.
 *
 * Batches travel through two lock-free queues (core/mpsc.h), linked through their node_:
 *   owner --q--> writer: submit pushes and wakes the writer. The writer sleeps on a
 *     semaphore; `wake_pending` makes one post per round of work instead of one per batch
 *     (submit posts only when it flips the flag from 0 to 1; the writer clears the flag
 *     before it drains the queue, so a push it may have missed is always followed by a post
 *     it has not consumed yet). The mpsc rather than a mutex and condition variable: the
 *     owner is the daemon's control loop, and a submit then never waits for a lock the
 *     writer holds; the writer needs the semaphore for its sleep either way.
 *   writer --inbox--> owner: each batch comes back with its status_ through a weft_inbox_t
 *     on the owner's loop, whose on_item runs the batch's done callback. Both queues are
 *     FIFO with a single producer each, and the writer answers batches in the order it took
 *     them, so done callbacks run in submission order.
 *
 * Group commit. The writer takes every batch queued so far (popping them, and keeping them
 * in order on a private list through node_.next, which a popped node no longer uses), and
 * writes them in one BEGIN IMMEDIATE .. COMMIT: one fsync for the whole round however many
 * registrations arrived while the previous round was syncing.
 *
 * Failure isolation. When a statement fails during a round (a value over SQLite's length
 * limit, a constraint a trigger raises, a full disk), the round is rolled back and written
 * again as one transaction in which each batch has its own SAVEPOINT: a batch whose
 * statement fails is rolled back to its savepoint and answered with the error, the others
 * commit together (still one fsync). The fast pass pays for no savepoint; the second pass
 * also gets over a failure that does not repeat (a transient out-of-memory). If BEGIN or
 * COMMIT fails, or in the second pass a SAVEPOINT fails or SQLite itself abandons the
 * transaction (it does on I/O errors, a full disk, out of memory), every batch of the round
 * is answered with that error: nothing of the round was written. A batch is all or nothing
 * either way. max_commit_us measures a round from BEGIN to the end of COMMIT, both passes.
 *
 * Bound. `pending` counts batches submitted whose done has not run yet (queued, being
 * written, or waiting in the inbox); submit refuses with WEFT_ELIMIT once max_queued are
 * pending. Both queues are sized max_queued, so neither can refuse a counted batch.
 *
 * The inbox's async handle is referenced only while batches are pending, so a store keeps
 * its loop alive exactly as long as it owes done callbacks (like a write request): uv_run
 * returns once every done has run.
 *
 * Lifetime and close (on the owner's thread, from a done callback too). close refuses
 * further submits (WEFT_ECLOSED), tells the writer to stop and joins it: the writer writes
 * whatever is queued first and answers it. The statements and the connection are closed.
 * Then weft_inbox_close hands every answered batch still in the inbox to on_discard, which
 * runs its done callback there, in order, on the caller's thread: when close returns, every
 * accepted batch has been answered, whether or not the loop runs again. What is left is the
 * inbox's uv_async_t, which must be uv_close'd; the store's memory is freed by its close
 * callback (store_freed) on the loop's next iteration. No loop run is needed inside close
 * (which may itself run inside a loop callback); the loop's owner runs the loop once more
 * before uv_loop_close, as for any handle it closes.
 *
 * State machine (owner's thread): LOADABLE (open; load allowed) -> RUNNING (the first
 * submit) -> CLOSED (close, from either).
 *
 * Memory: never aborts. Allocation failures at open are errors; the writer allocates
 * nothing of its own (SQLite may, and an SQLITE_NOMEM is answered as WEFT_ENOMEM). Nothing
 * read from the file is asserted on: a NULL or oddly typed column is read as bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <uv.h>

#include "core/assert.h"
#include "core/errbuf.h"
#include "core/mpsc.h"
#include "registry/store.h"
#include "weft/common.h"
#include "weft/log.h"

#define INBOX_BATCH     64   /* done callbacks per loop iteration */
#define BUSY_TIMEOUT_MS 5000 /* how long a write waits for another process's lock */

typedef enum store_state_e { ST_LOADABLE, ST_RUNNING, ST_CLOSED } store_state_t;

typedef struct sqlite_store_s {
    weft_store_t base; /* first: what callers hold */
    char *path;        /* for messages */
    size_t max_queued;
    sqlite3 *db;
    sqlite3_stmt *put, *del, *begin, *commit, *rollback, *savepoint, *release, *rollback_to,
        *select;

    /* owner's thread */
    store_state_t state;
    size_t pending; /* submitted, done not run yet */

    /* owner -> writer */
    weft_mpsc_t q;
    atomic_int wake_pending; /* 1: a post is on its way, no need for another */
    atomic_bool stop;        /* close: write what is queued, then return */
    uv_sem_t wake;
    uv_thread_t thread;

    /* writer -> owner */
    weft_inbox_t inbox;

    /* counters (any thread, relaxed) */
    atomic_uint_fast64_t batches, commits, failed, queued, max_commit_us;
} sqlite_store_t;

static const weft_store_ops_t sqlite_ops;

/* ------------------------------------------------------------------------------------ */
/* errors                                                                               */

/* The errno behind rc when SQLite kept one (a failed open or I/O), else 0. */
static int sys_errno(sqlite3 *db, int rc)
{
    int prim = rc & 0xff;
    if (!db || (prim != SQLITE_CANTOPEN && prim != SQLITE_IOERR)) return 0;
    int e = sqlite3_system_errno(db);
    return e > 0 ? e : 0;
}

/* The WEFT_E* code for SQLite result rc (primary or extended) on db (may be NULL). */
static int code_of(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return WEFT_ENOMEM;
    case SQLITE_FULL:
        return WEFT_ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return WEFT_EAGAIN;
    case SQLITE_TOOBIG:
        return WEFT_ELIMIT;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return WEFT_EINVAL;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FORMAT:
    case SQLITE_SCHEMA:
    case SQLITE_ERROR:
        return WEFT_EPARSE; /* SQL error: the file's schema is not ours */
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    default: { /* CANTOPEN, IOERR, ...: the system's reason when SQLite kept it */
        int e = sys_errno(db, rc);
        return e ? -e : -EIO;
    }
    }
}

/* Fills err with "store: PATH: WHAT: SQLite's message (the system's, if any)" and returns
 * the code for rc. */
static int db_err(sqlite_store_t *s, int rc, const char *what, char *err, size_t errlen)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    int code = code_of(s->db, rc);
    int sys = sys_errno(s->db, rc);
    if (sys)
        return weft__errf(err, errlen, code, "store: %s: %s: %s (%s)", s->path, what, msg,
                          strerror(sys));
    return weft__errf(err, errlen, code, "store: %s: %s: %s", s->path, what, msg);
}

/* ------------------------------------------------------------------------------------ */
/* statements                                                                           */

/* Runs a statement that returns no row (or whose rows do not matter) and resets it.
 * Returns SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    while (rc == SQLITE_ROW) rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Writes op; SQLITE_OK or the error (the statement is reset either way). */
static int apply_op(sqlite_store_t *s, const weft_store_op_t *op)
{
    sqlite3_stmt *st = op->del ? s->del : s->put;
    /* Never bind a NULL pointer: SQLite would bind SQL NULL, not an empty string or blob. */
    int rc = sqlite3_bind_text64(st, 1, op->key_len ? op->key : "", op->key_len, SQLITE_STATIC,
                                 SQLITE_UTF8);
    if (rc == SQLITE_OK && !op->del)
        rc = sqlite3_bind_blob64(st, 2, op->val_len ? op->val : "", op->val_len, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

static int apply_batch(sqlite_store_t *s, const weft_store_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        int rc = apply_op(s, &b->ops[i]);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* ------------------------------------------------------------------------------------ */
/* the writer thread                                                                    */

/* A round's batches, in order, linked through node_.next once popped (the queue does not
 * touch a node after popping it). */
static weft_store_batch_t *batch_of(weft_mpsc_node_t *n)
{
    return n ? WEFT_MPSC_ITEM(n, weft_store_batch_t, node_) : NULL;
}

static weft_store_batch_t *next_of(weft_store_batch_t *b)
{
    return batch_of(atomic_load_explicit(&b->node_.next, memory_order_relaxed));
}

/* Logs why a batch (or a round) failed, with SQLite's words. */
static void log_failure(sqlite_store_t *s, const char *what, int rc)
{
    char q[512];
    const char *msg = sqlite3_errmsg(s->db);
    weft_warn("store", "write failed", "path=%s what=%s err=%s sqlite=%s", s->path, what,
              weft_err_name(code_of(s->db, rc)), weft_log_quote(q, sizeof q, msg, strlen(msg)));
}

/* Abandons the open transaction (if SQLite has not already) and answers every batch of the
 * round with rc's code, unless it has an error of its own. */
static void fail_round(sqlite_store_t *s, weft_store_batch_t *first, int rc, const char *what)
{
    log_failure(s, what, rc);
    int code = code_of(s->db, rc);
    if (!sqlite3_get_autocommit(s->db)) run(s->rollback);
    for (weft_store_batch_t *b = first; b; b = next_of(b))
        if (b->status_ == 0) b->status_ = code;
}

/* One transaction for the round [first..]. Without isolate (the fast pass): a failing
 * statement rolls the whole round back and returns false (nothing written, no status set).
 * With isolate: each batch in a savepoint; a failing batch gets its own status, the rest
 * commit. Returns true once every batch has its status (always, with isolate). */
static bool write_round(sqlite_store_t *s, weft_store_batch_t *first, bool isolate)
{
    int rc = run(s->begin);
    if (rc != SQLITE_OK) {
        fail_round(s, first, rc, "begin");
        return true;
    }
    for (weft_store_batch_t *b = first; b; b = next_of(b)) {
        if (isolate && (rc = run(s->savepoint)) != SQLITE_OK) {
            fail_round(s, first, rc, "savepoint");
            return true;
        }
        rc = apply_batch(s, b);
        if (rc == SQLITE_OK) {
            if (isolate && (rc = run(s->release)) != SQLITE_OK) {
                fail_round(s, first, rc, "release");
                return true;
            }
            continue;
        }
        if (!isolate) {
            if (!sqlite3_get_autocommit(s->db)) run(s->rollback);
            return false;
        }
        log_failure(s, "batch", rc);
        b->status_ = code_of(s->db, rc);
        if (sqlite3_get_autocommit(s->db)) { /* SQLite abandoned the transaction */
            fail_round(s, first, rc, "batch");
            return true;
        }
        int rc2 = run(s->rollback_to);
        if (rc2 == SQLITE_OK) rc2 = run(s->release);
        if (rc2 != SQLITE_OK) {
            fail_round(s, first, rc2, "rollback to savepoint");
            return true;
        }
    }
    if ((rc = run(s->commit)) != SQLITE_OK) fail_round(s, first, rc, "commit");
    return true;
}

static void count_max(atomic_uint_fast64_t *c, uint64_t v)
{
    if (v > atomic_load_explicit(c, memory_order_relaxed))
        atomic_store_explicit(c, v, memory_order_relaxed); /* one writer: no CAS needed */
}

/* Takes every queued batch, writes them in one transaction (see the top), answers each. */
static void write_queued(sqlite_store_t *s)
{
    weft_store_batch_t *first = NULL, *last = NULL;
    size_t n = 0;
    weft_mpsc_node_t *node;
    while ((node = weft_mpsc_pop(&s->q)) != NULL) {
        weft_store_batch_t *b = batch_of(node);
        atomic_store_explicit(&b->node_.next, NULL, memory_order_relaxed);
        if (last)
            atomic_store_explicit(&last->node_.next, &b->node_, memory_order_relaxed);
        else
            first = b;
        last = b;
        n++;
    }
    if (!first) return;

    uint64_t t0 = weft_now_ns();
    /* The fast pass; if a statement failed, the isolated one (which always answers). */
    if (!write_round(s, first, false)) write_round(s, first, true);
    uint64_t us = (weft_now_ns() - t0) / 1000;

    uint64_t ok = 0;
    for (weft_store_batch_t *b = first; b; b = next_of(b)) ok += b->status_ == 0;
    if (ok) {
        atomic_fetch_add_explicit(&s->commits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->batches, ok, memory_order_relaxed);
        count_max(&s->max_commit_us, us);
    }
    if (ok < n) atomic_fetch_add_explicit(&s->failed, n - ok, memory_order_relaxed);

    /* Answer in order. Read each link before posting: the post reuses node_. */
    for (weft_store_batch_t *b = first, *next; b; b = next) {
        next = next_of(b);
        int e = weft_inbox_post(&s->inbox, &b->node_);
        WEFT_ASSERT(e == 0); /* the inbox holds max_queued, and at most that many are pending */
        (void)e;
    }
}

static void writer_main(void *arg)
{
    sqlite_store_t *s = arg;
    pthread_setname_np(pthread_self(), "weft-store"); /* for top -H and /proc/PID/task */
    for (;;) {
        uv_sem_wait(&s->wake);
        /* Cleared before draining, by an exchange: it reads (and synchronizes with) the
         * flag of every submit that saw it set and did not post, so their pushes are
         * visible to this drain; a submit after it sees 0 and posts again. */
        atomic_exchange(&s->wake_pending, 0);
        bool stop = atomic_load_explicit(&s->stop, memory_order_acquire);
        write_queued(s);
        if (stop) return; /* the owner pushes nothing after setting stop: all was drained */
    }
}

/* ------------------------------------------------------------------------------------ */
/* the owner's side                                                                     */

/* Hands a batch back: the owner's bookkeeping, then its done callback. */
static void answer(sqlite_store_t *s, weft_store_batch_t *b)
{
    WEFT_ASSERT(s->pending > 0);
    s->pending--;
    atomic_store_explicit(&s->queued, s->pending, memory_order_relaxed);
    if (s->pending == 0 && s->state != ST_CLOSED) uv_unref((uv_handle_t *)&s->inbox.async);
    b->done(b, b->status_, b->arg);
}

static void on_answer(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    answer(arg, batch_of(n));
}

static void store_freed(weft_inbox_t *in, void *arg)
{
    free(arg);
}

static int sqlite_load(weft_store_t *base, weft_store_load_fn fn, void *arg, char *err,
                       size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (s->state != ST_LOADABLE)
        return weft__errf(err, errlen, WEFT_ESTATE, "store: %s: load after submit or close",
                          s->path);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s->select)) == SQLITE_ROW) {
        /* Whatever the file holds is read as bytes; NULL from a column is either an SQL
         * NULL (read as empty) or an allocation that failed. */
        const char *key = (const char *)sqlite3_column_text(s->select, 0);
        if (!key && sqlite3_errcode(s->db) == SQLITE_NOMEM) {
            rc = SQLITE_NOMEM;
            break;
        }
        size_t key_len = key ? (size_t)sqlite3_column_bytes(s->select, 0) : 0;
        const void *val = sqlite3_column_blob(s->select, 1);
        if (!val && sqlite3_errcode(s->db) == SQLITE_NOMEM) {
            rc = SQLITE_NOMEM;
            break;
        }
        size_t val_len = val ? (size_t)sqlite3_column_bytes(s->select, 1) : 0;
        if ((ret = fn(arg, key ? key : "", key_len, val ? val : "", val_len)) != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = db_err(s, rc, "reading", err, errlen);
    sqlite3_reset(s->select);
    return ret;
}

/* A batch's shape: what SQLite could not be asked to write (a NULL pointer with a length). */
static bool batch_ok(const weft_store_batch_t *b)
{
    if (!b || !b->done || (b->n && !b->ops)) return false;
    for (size_t i = 0; i < b->n; i++) {
        const weft_store_op_t *op = &b->ops[i];
        if (!op->key && op->key_len) return false;
        if (!op->del && !op->val && op->val_len) return false;
    }
    return true;
}

static int sqlite_submit(weft_store_t *base, weft_store_batch_t *b)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (s->state == ST_CLOSED) return WEFT_ECLOSED;
    if (!batch_ok(b)) return WEFT_EINVAL;
    if (s->pending >= s->max_queued) return WEFT_ELIMIT;
    WEFT_ASSERT(s->state == ST_LOADABLE || s->state == ST_RUNNING);
    s->state = ST_RUNNING; /* the connection is the writer's from now on */
    b->status_ = 0;
    if (s->pending++ == 0) uv_ref((uv_handle_t *)&s->inbox.async);
    atomic_store_explicit(&s->queued, s->pending, memory_order_relaxed);
    int e = weft_mpsc_push(&s->q, &b->node_);
    WEFT_ASSERT(e == 0); /* q holds max_queued, and fewer are pending */
    (void)e;
    if (atomic_exchange(&s->wake_pending, 1) == 0) uv_sem_post(&s->wake);
    return 0;
}

static void close_db(sqlite_store_t *s)
{
    sqlite3_stmt **sts[] = {&s->put,       &s->del,     &s->begin,       &s->commit, &s->rollback,
                            &s->savepoint, &s->release, &s->rollback_to, &s->select};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) {
        sqlite3_finalize(*sts[i]); /* NULL is a no-op */
        *sts[i] = NULL;
    }
    /* The last connection to close checkpoints the log into the database and removes it. */
    int rc = sqlite3_close(s->db);
    if (rc != SQLITE_OK) {
        weft_warn("store", "close failed", "path=%s sqlite=%s", s->path, sqlite3_errstr(rc));
        sqlite3_close_v2(s->db); /* closes once whatever holds it is released */
    }
    s->db = NULL;
}

static void sqlite_close(weft_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (s->state == ST_CLOSED) return; /* from a done callback that close itself runs */
    s->state = ST_CLOSED;
    atomic_store_explicit(&s->stop, true, memory_order_release);
    uv_sem_post(&s->wake);
    uv_thread_join(&s->thread);
    close_db(s);
    uv_sem_destroy(&s->wake);
    free(s->path);
    s->path = NULL;
    /* Every batch is answered now; their done callbacks run here, in order (on_discard). */
    weft_inbox_close(&s->inbox, store_freed);
}

static weft_store_stats_t sqlite_stats(const weft_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base; /* not const for atomic_load; only read */
    return (weft_store_stats_t){
        .batches = atomic_load_explicit(&s->batches, memory_order_relaxed),
        .commits = atomic_load_explicit(&s->commits, memory_order_relaxed),
        .failed = atomic_load_explicit(&s->failed, memory_order_relaxed),
        .queued = atomic_load_explicit(&s->queued, memory_order_relaxed),
        .max_commit_us = atomic_load_explicit(&s->max_commit_us, memory_order_relaxed),
    };
}

static const weft_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .load = sqlite_load,
    .submit = sqlite_submit,
    .close = sqlite_close,
    .stats = sqlite_stats,
};

/* ------------------------------------------------------------------------------------ */
/* open                                                                                 */

void weft_store_sqlite_options_init(weft_store_sqlite_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_queued = 65536;
    o->sync_full = true;
}

static int prepare(sqlite_store_t *s, sqlite3_stmt **st, const char *sql, char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_OK) return 0;
    return weft__errf(err, errlen, code_of(s->db, rc), "store: %s: preparing \"%s\": %s", s->path,
                      sql, sqlite3_errmsg(s->db));
}

/* Opens the database and sets it up (see the top). On failure the caller closes it. */
static int open_db(sqlite_store_t *s, bool sync_full, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(
        s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (!s->db) return weft__errf(err, errlen, WEFT_ENOMEM, "store: %s: out of memory", s->path);
    if (rc != SQLITE_OK) return db_err(s, rc, "cannot open", err, errlen);
    sqlite3_extended_result_codes(s->db, 1);
    /* SQLite falls back to read-only, silently, on a file it may not write. */
    if (sqlite3_db_readonly(s->db, "main") == 1)
        return weft__errf(err, errlen, -EACCES, "store: %s: cannot be written", s->path);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* The first statement reads the file: a file that is not a database fails here. */
    sqlite3_stmt *st = NULL;
    int e = prepare(s, &st, "PRAGMA journal_mode=WAL", err, errlen);
    if (e) return e;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        e = db_err(s, rc, "setting journal_mode=WAL", err, errlen);
        sqlite3_finalize(st);
        return e;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
        e = weft__errf(err, errlen, WEFT_EUNSUPPORTED, "store: %s: journal_mode is %s, not wal",
                       s->path, mode ? mode : "unknown");
        sqlite3_finalize(st);
        return e;
    }
    sqlite3_finalize(st);

    const char *setup[] = {
        sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
        "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY NOT NULL, val BLOB NOT NULL) "
        "WITHOUT ROWID",
    };
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        char *msg = NULL;
        rc = sqlite3_exec(s->db, setup[i], NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            e = weft__errf(err, errlen, code_of(s->db, rc), "store: %s: \"%s\": %s", s->path,
                           setup[i], msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            return e;
        }
    }

    const struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&s->put, "INSERT INTO kv(key, val) VALUES(?1, ?2) "
                  "ON CONFLICT(key) DO UPDATE SET val = excluded.val"},
        {&s->del, "DELETE FROM kv WHERE key = ?1"},
        {&s->begin, "BEGIN IMMEDIATE"},
        {&s->commit, "COMMIT"},
        {&s->rollback, "ROLLBACK"},
        {&s->savepoint, "SAVEPOINT batch"},
        {&s->release, "RELEASE batch"},
        {&s->rollback_to, "ROLLBACK TO batch"},
        {&s->select, "SELECT key, val FROM kv ORDER BY key"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if ((e = prepare(s, stmts[i].st, stmts[i].sql, err, errlen)) != 0) return e;
    return 0;
}

int weft_store_sqlite_open(const weft_store_sqlite_options_t *o, uv_loop_t *loop,
                           weft_store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o || !loop) return weft__errf(err, errlen, WEFT_EINVAL, "store: no options or loop");
    if (!o->path || !o->path[0])
        return weft__errf(err, errlen, WEFT_EINVAL, "store: no database path");
    if (o->max_queued == 0)
        return weft__errf(err, errlen, WEFT_EINVAL, "store: %s: max_queued is 0", o->path);
    if (!sqlite3_threadsafe())
        return weft__errf(err, errlen, WEFT_EUNSUPPORTED,
                          "store: %s: this SQLite was built without thread support", o->path);

    sqlite_store_t *s = calloc(1, sizeof *s);
    char *path = strdup(o->path);
    if (!s || !path) {
        free(s);
        free(path);
        return weft__errf(err, errlen, WEFT_ENOMEM, "store: %s: out of memory", o->path);
    }
    s->base.ops = &sqlite_ops;
    s->path = path;
    s->max_queued = o->max_queued;
    s->state = ST_LOADABLE;
    weft_mpsc_init(&s->q, o->max_queued);
    atomic_init(&s->wake_pending, 0);
    atomic_init(&s->stop, false);
    atomic_init(&s->batches, 0);
    atomic_init(&s->commits, 0);
    atomic_init(&s->failed, 0);
    atomic_init(&s->queued, 0);
    atomic_init(&s->max_commit_us, 0);

    int e = open_db(s, o->sync_full, err, errlen);
    if (e) goto fail_db;
    if ((e = uv_sem_init(&s->wake, 0)) != 0) {
        weft__errf(err, errlen, e, "store: %s: semaphore: %s", s->path, uv_strerror(e));
        goto fail_db;
    }
    /* The writer touches nothing but the semaphore until the first batch arrives. */
    if ((e = uv_thread_create(&s->thread, writer_main, s)) != 0) {
        weft__errf(err, errlen, e, "store: %s: writer thread: %s", s->path, uv_strerror(e));
        goto fail_sem;
    }
    /* Last, as a handle cannot be undone without a loop iteration (its close callback). */
    if ((e = weft_inbox_init(&s->inbox, loop, o->max_queued, INBOX_BATCH, on_answer, on_answer,
                             s)) != 0) {
        weft__errf(err, errlen, e, "store: %s: inbox: %s", s->path, weft_strerror(e));
        goto fail_thread;
    }
    uv_unref((uv_handle_t *)&s->inbox.async); /* referenced while batches are pending */
    *out = &s->base;
    return 0;

fail_thread:
    atomic_store_explicit(&s->stop, true, memory_order_release);
    uv_sem_post(&s->wake);
    uv_thread_join(&s->thread);
fail_sem:
    uv_sem_destroy(&s->wake);
fail_db:
    close_db(s);
    free(s->path);
    free(s);
    return e;
}
