/*
 * sqlite_bench.c - the alternative the trace store (src/collector/store*.c) was measured
 * against: the same spans (gen.c) and the same queries as store_bench.c, kept in SQLite
 * the way a tuned SQLite trace store would keep them. Its numbers are in store.c's essay
 * ("Why not SQLite").
 *
 * The design:
 *   - WAL journal; synchronous=FULL by default: the WAL is synced at every commit, which is
 *     what the segment store's fdatasync per write round promises (an acknowledged span
 *     survives a power cut). NORMAL syncs only at checkpoints (a commit survives kill -9 but
 *     not a power cut) and is given for comparison.
 *   - group commit: one transaction per `group` appends of 100 spans (default 10: 1000 spans
 *     per commit), prepared statements, a 64 MiB page cache.
 *   - spans(trace_id BLOB, span_id, parent_id, service, name, kind, status, start_ns,
 *     duration_ns, resource, scope, rest BLOB), rowid in arrival order. Service and span
 *     names are interned (table names, cached in memory), resources and scopes stored once
 *     (their record encoding, store_codec.c) and referenced. rest is the span record of
 *     store_codec.c without the fields that have columns (what is left: the bits byte,
 *     remote service, flags, status message, attributes, events, links...): plain, zstd
 *     level 1 per row, or zstd with a dictionary trained on the first 20000 spans (blob =
 *     plain | zstd | dict).
 *   - indexes: spans(trace_id) for a trace by id; spans(service, start_ns, duration_ns) for
 *     a search: walked newest first, the duration checked in the index, stopped at the 20th
 *     distinct trace (the segment store's "newest matching span first", exactly).
 * A trace read decodes its rows back into col_span_t (st_decode_span, resources from a
 * cache) as col_store_trace does; the tag search decodes every span of the service as the
 * segment store must.
 *
 * Build: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target
 * sqlite_bench; run: build/bench/sqlite_bench [spans (1000000)] [dir (/tmp)]
 * [sync full|normal|off (full)] [blob plain|zstd|dict (plain)] [appends per commit (10)].
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#include "collector/store_int.h"
#include "gen.h"
#include "weft/common.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
        exit(1);
    }
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die(db, sql);
    return st;
}

enum { BLOB_PLAIN, BLOB_ZSTD, BLOB_DICT };

/* ---- what the store keeps in memory: interned names, resources, scopes ---- */

#define MAX_NAMES  4096
#define MAX_SHARED 4096

typedef struct named_s {
    char *s;
    uint32_t n;
    int64_t id;
} named_t;

typedef struct shared_s { /* a resource or scope: its record body, decoded once for reads */
    uint8_t *body;
    uint32_t n;
    int64_t id;
    col_resource_t res;
    col_scope_t scope;
} shared_t;

typedef struct db_s {
    sqlite3 *db;
    sqlite3_stmt *ins_span, *ins_name, *ins_res, *ins_scope, *trace, *search, *scan;
    named_t names[MAX_NAMES]; /* by id - 1 */
    size_t nnames;
    shared_t res[MAX_SHARED], scopes[MAX_SHARED]; /* by id - 1 */
    size_t nres, nscopes;
    weft_arena_t keep; /* the decoded resources and scopes */
    int blob;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    ZSTD_CDict *cdict;
    ZSTD_DDict *ddict;
} db_t;

static int64_t name_id(db_t *d, col_str_t s)
{
    for (size_t i = 0; i < d->nnames; i++) {
        if (d->names[i].n == s.n && memcmp(d->names[i].s, s.p, s.n) == 0) return d->names[i].id;
    }
    if (d->nnames == MAX_NAMES) {
        fprintf(stderr, "more than %d names\n", MAX_NAMES);
        exit(1);
    }
    sqlite3_bind_text(d->ins_name, 1, s.p, (int)s.n, SQLITE_STATIC);
    if (sqlite3_step(d->ins_name) != SQLITE_DONE) die(d->db, "insert name");
    sqlite3_reset(d->ins_name);
    named_t *x = &d->names[d->nnames++];
    x->s = malloc(s.n + 1);
    memcpy(x->s, s.p, s.n);
    x->s[s.n] = 0;
    x->n = s.n;
    x->id = sqlite3_last_insert_rowid(d->db);
    return x->id;
}

/* The id of a resource or scope record body, stored at its first sight. */
static int64_t shared_id(db_t *d, bool is_res, const uint8_t *body, uint32_t n)
{
    shared_t *v = is_res ? d->res : d->scopes;
    size_t *nv = is_res ? &d->nres : &d->nscopes;
    for (size_t i = 0; i < *nv; i++) {
        if (v[i].n == n && memcmp(v[i].body, body, n) == 0) return v[i].id;
    }
    if (*nv == MAX_SHARED) {
        fprintf(stderr, "more than %d resources\n", MAX_SHARED);
        exit(1);
    }
    sqlite3_stmt *st = is_res ? d->ins_res : d->ins_scope;
    sqlite3_bind_blob(st, 1, body, (int)n, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) die(d->db, "insert resource");
    sqlite3_reset(st);
    shared_t *x = &v[(*nv)++];
    x->body = malloc(n ? n : 1);
    memcpy(x->body, body, n);
    x->n = n;
    x->id = sqlite3_last_insert_rowid(d->db);
    bool oom;
    if (is_res ? !st_decode_resource(x->body, n, &d->keep, false, &x->res, &oom)
               : !st_decode_scope(x->body, n, &d->keep, false, &x->scope, &oom)) {
        fprintf(stderr, "resource record does not decode\n");
        exit(1);
    }
    return x->id;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return true;
    }
    return false;
}

static void open_db(db_t *d, const char *path, const char *sync, bool create)
{
    if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        die(d->db, "open");
    exec(d->db, "PRAGMA journal_mode=WAL");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync);
    exec(d->db, sql);
    exec(d->db, "PRAGMA cache_size=-65536"); /* 64 MiB */
    exec(d->db, "PRAGMA temp_store=MEMORY");
    if (create) {
        exec(d->db, "CREATE TABLE names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
                    "CREATE TABLE resources(id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
                    "CREATE TABLE scopes(id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
                    "CREATE TABLE dicts(id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
                    "CREATE TABLE spans(trace_id BLOB NOT NULL, span_id INTEGER NOT NULL,"
                    " parent_id INTEGER NOT NULL, service INTEGER NOT NULL,"
                    " name INTEGER NOT NULL, kind INTEGER NOT NULL, status INTEGER NOT NULL,"
                    " start_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,"
                    " resource INTEGER NOT NULL, scope INTEGER NOT NULL, rest BLOB NOT NULL);"
                    "CREATE INDEX spans_trace ON spans(trace_id);"
                    "CREATE INDEX spans_svc_start ON spans(service, start_ns, duration_ns);");
    }
    d->ins_span = prep(d->db, "INSERT INTO spans VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    d->ins_name = prep(d->db, "INSERT INTO names(name) VALUES(?)");
    d->ins_res = prep(d->db, "INSERT INTO resources(body) VALUES(?)");
    d->ins_scope = prep(d->db, "INSERT INTO scopes(body) VALUES(?)");
    d->trace = prep(d->db, "SELECT span_id, parent_id, name, kind, status, start_ns, duration_ns,"
                           " resource, scope, rest FROM spans WHERE trace_id = ?");
    d->search = prep(d->db, "SELECT trace_id FROM spans WHERE service = ? AND duration_ns >= ?"
                            " ORDER BY start_ns DESC");
    d->scan = prep(d->db, "SELECT span_id, parent_id, name, kind, status, start_ns, duration_ns,"
                          " resource, scope, rest, trace_id FROM spans WHERE service = ?"
                          " ORDER BY start_ns DESC");
    weft_arena_init(&d->keep, 1 << 16, 64u << 20);
    d->cctx = ZSTD_createCCtx();
    d->dctx = ZSTD_createDCtx();
    if (!create) {
        /* what a store process caches at open: names, resources, scopes, the dictionary */
        sqlite3_stmt *st = prep(d->db, "SELECT id, name FROM names ORDER BY id");
        while (sqlite3_step(st) == SQLITE_ROW) {
            named_t *x = &d->names[d->nnames++];
            x->id = sqlite3_column_int64(st, 0);
            x->n = (uint32_t)sqlite3_column_bytes(st, 1);
            x->s = strdup((const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
        for (int r = 0; r < 2; r++) {
            st = prep(d->db, r ? "SELECT id, body FROM scopes ORDER BY id"
                               : "SELECT id, body FROM resources ORDER BY id");
            while (sqlite3_step(st) == SQLITE_ROW) {
                shared_t *x = r ? &d->scopes[d->nscopes++] : &d->res[d->nres++];
                x->id = sqlite3_column_int64(st, 0);
                x->n = (uint32_t)sqlite3_column_bytes(st, 1);
                x->body = malloc(x->n ? x->n : 1);
                memcpy(x->body, sqlite3_column_blob(st, 1), x->n);
                bool oom;
                if (r ? !st_decode_scope(x->body, x->n, &d->keep, false, &x->scope, &oom)
                      : !st_decode_resource(x->body, x->n, &d->keep, false, &x->res, &oom))
                    die(d->db, "a stored resource does not decode");
            }
            sqlite3_finalize(st);
        }
        st = prep(d->db, "SELECT body FROM dicts WHERE id = 1");
        if (sqlite3_step(st) == SQLITE_ROW) {
            const void *p = sqlite3_column_blob(st, 0);
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            d->cdict = ZSTD_createCDict(p, n, 1);
            d->ddict = ZSTD_createDDict(p, n);
        }
        sqlite3_finalize(st);
    }
}

static void close_db(db_t *d)
{
    sqlite3_stmt *v[] = {d->ins_span, d->ins_name, d->ins_res, d->ins_scope,
                         d->trace,    d->search,   d->scan};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) sqlite3_finalize(v[i]);
    if (sqlite3_close(d->db) != SQLITE_OK) die(d->db, "close");
    for (size_t i = 0; i < d->nnames; i++) free(d->names[i].s);
    for (size_t i = 0; i < d->nres; i++) free(d->res[i].body);
    for (size_t i = 0; i < d->nscopes; i++) free(d->scopes[i].body);
    weft_arena_free(&d->keep);
    ZSTD_freeCCtx(d->cctx);
    ZSTD_freeDCtx(d->dctx);
    ZSTD_freeCDict(d->cdict);
    ZSTD_freeDDict(d->ddict);
    memset(d, 0, sizeof *d);
}

/* A span record's fields that have columns (views into the record body). */
typedef struct span_cols_s {
    const uint8_t *trace_id;
    uint64_t span_id, parent_id, start_ns, duration_ns;
    uint8_t kind, status;
    col_str_t name;
} span_cols_t;

/* Splits a span record body into its columns (c) and the rest, which has none: the bits byte
 * after kind and status, then everything after the name, copied into rest (*rest_n bytes;
 * rest holds n bytes). false: malformed. */
static bool split_span(const uint8_t *body, uint32_t n, span_cols_t *c, uint8_t *rest,
                       size_t *rest_n)
{
    const uint8_t *p = body, *end = body + n;
    if (n < 40) return false;
    c->trace_id = p;
    memcpy(&c->span_id, p + 16, 8);
    memcpy(&c->parent_id, p + 24, 8);
    c->start_ns = st_le64(p + 32);
    p += 40;
    uint64_t zz, len;
    if (!get_varint(&p, end, &zz) || end - p < 3) return false;
    c->duration_ns = zz >> 1; /* never negative here */
    c->kind = p[0];
    c->status = p[1];
    uint8_t bits = p[2];
    p += 3;
    if (!get_varint(&p, end, &len) || (uint64_t)(end - p) < len) return false;
    c->name = (col_str_t){.p = (const char *)p, .n = (uint32_t)len};
    p += len;
    rest[0] = bits;
    memcpy(rest + 1, p, (size_t)(end - p));
    *rest_n = 1 + (size_t)(end - p);
    return true;
}

/* Rebuilds the span record body from the columns (the inverse of split_span). */
static size_t join_span(uint8_t *out, const uint8_t trace_id[16], uint64_t span_id,
                        uint64_t parent_id, uint64_t start_ns, uint64_t duration_ns, uint8_t kind,
                        uint8_t status, col_str_t name, const uint8_t *rest, size_t rest_n)
{
    size_t n = 0;
    memcpy(out, trace_id, 16);
    memcpy(out + 16, &span_id, 8);
    memcpy(out + 24, &parent_id, 8);
    st_put64(out + 32, start_ns);
    n = 40;
    n += put_varint(out + n, duration_ns << 1);
    out[n++] = kind;
    out[n++] = status;
    out[n++] = rest[0];
    n += put_varint(out + n, name.n);
    memcpy(out + n, name.p, name.n);
    n += name.n;
    memcpy(out + n, rest + 1, rest_n - 1);
    return n + rest_n - 1;
}

#define REC_MAX (COL_MAX_SPAN_BYTES + 65536)

static uint8_t scratch[REC_MAX], packed[REC_MAX], body_buf[REC_MAX];

/* rest as stored: plain, or zstd (a 0 byte: stored plain because it did not shrink). */
static const uint8_t *pack(db_t *d, const uint8_t *rest, size_t n, size_t *out_n)
{
    if (d->blob == BLOB_PLAIN) {
        *out_n = n;
        return rest;
    }
    size_t z = d->cdict
                   ? ZSTD_compress_usingCDict(d->cctx, packed, sizeof packed, rest, n, d->cdict)
                   : ZSTD_compressCCtx(d->cctx, packed, sizeof packed, rest, n, 1);
    if (ZSTD_isError(z)) {
        fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(z));
        exit(1);
    }
    *out_n = z;
    return packed;
}

static const uint8_t *unpack(db_t *d, const uint8_t *blob, size_t n, size_t *out_n)
{
    if (d->blob == BLOB_PLAIN) {
        *out_n = n;
        return blob;
    }
    size_t r = d->ddict
                   ? ZSTD_decompress_usingDDict(d->dctx, scratch, sizeof scratch, blob, n, d->ddict)
                   : ZSTD_decompressDCtx(d->dctx, scratch, sizeof scratch, blob, n);
    if (ZSTD_isError(r)) {
        fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(r));
        exit(1);
    }
    *out_n = r;
    return scratch;
}

/* Stores the spans of one append (within the open transaction). */
static void append(db_t *d, const col_span_t *spans, size_t n, st_buf_t *buf)
{
    buf->n = 0;
    if (!st_encode_spans(buf, spans, n)) {
        fprintf(stderr, "encode: out of memory\n");
        exit(1);
    }
    const uint8_t *p = buf->p, *end = buf->p + buf->n, *body;
    uint8_t type;
    uint32_t len;
    bool bad;
    int64_t res = 0, scope = 0, service = 0;
    while (st_next_record(&p, end, &type, &body, &len, &bad)) {
        if (type == ST_REC_RESOURCE) {
            res = shared_id(d, true, body, len);
            col_str_t svc;
            if (!st_read_resource_service(body, len, &svc)) die(NULL, "resource service");
            service = name_id(d, svc);
            continue;
        }
        if (type == ST_REC_SCOPE) {
            scope = shared_id(d, false, body, len);
            continue;
        }
        span_cols_t c;
        size_t rest_n, blob_n;
        if (!split_span(body, len, &c, scratch, &rest_n)) die(NULL, "span record");
        const uint8_t *blob = pack(d, scratch, rest_n, &blob_n);
        sqlite3_stmt *st = d->ins_span;
        sqlite3_bind_blob(st, 1, c.trace_id, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)c.span_id);
        sqlite3_bind_int64(st, 3, (int64_t)c.parent_id);
        sqlite3_bind_int64(st, 4, service);
        sqlite3_bind_int64(st, 5, name_id(d, c.name));
        sqlite3_bind_int(st, 6, c.kind);
        sqlite3_bind_int(st, 7, c.status);
        sqlite3_bind_int64(st, 8, (int64_t)c.start_ns);
        sqlite3_bind_int64(st, 9, (int64_t)c.duration_ns);
        sqlite3_bind_int64(st, 10, res);
        sqlite3_bind_int64(st, 11, scope);
        sqlite3_bind_blob(st, 12, blob, (int)blob_n, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) die(d->db, "insert span");
        sqlite3_reset(st);
    }
    if (bad) die(NULL, "record framing");
}

static const named_t *name_by_id(db_t *d, int64_t id)
{
    if (id < 1 || (uint64_t)id > d->nnames || d->names[id - 1].id != id) die(NULL, "name id");
    return &d->names[id - 1];
}

static const shared_t *shared_by_id(db_t *d, bool is_res, int64_t id)
{
    size_t n = is_res ? d->nres : d->nscopes;
    const shared_t *v = is_res ? d->res : d->scopes;
    if (id < 1 || (uint64_t)id > n || v[id - 1].id != id) die(NULL, "resource id");
    return &v[id - 1];
}

/* The row under st (the trace or scan statement's columns) as a col_span_t in a. */
static bool row_span(db_t *d, sqlite3_stmt *st, const uint8_t trace_id[16], weft_arena_t *a,
                     bool copy, col_span_t *sp)
{
    const named_t *nm = name_by_id(d, sqlite3_column_int64(st, 2));
    size_t rest_n;
    const uint8_t *rest =
        unpack(d, sqlite3_column_blob(st, 9), (size_t)sqlite3_column_bytes(st, 9), &rest_n);
    if (rest_n < 1) return false;
    size_t n = join_span(
        body_buf, trace_id, (uint64_t)sqlite3_column_int64(st, 0),
        (uint64_t)sqlite3_column_int64(st, 1), (uint64_t)sqlite3_column_int64(st, 5),
        (uint64_t)sqlite3_column_int64(st, 6), (uint8_t)sqlite3_column_int(st, 3),
        (uint8_t)sqlite3_column_int(st, 4), (col_str_t){.p = nm->s, .n = nm->n}, rest, rest_n);
    sp->resource = &shared_by_id(d, true, sqlite3_column_int64(st, 7))->res;
    sp->scope = &shared_by_id(d, false, sqlite3_column_int64(st, 8))->scope;
    bool oom;
    return st_decode_span(body_buf, n, a, copy, sp, &oom);
}

/* col_store_trace's work: the spans of one trace, decoded, copied into a. */
static size_t read_trace(db_t *d, const uint8_t id[16], weft_arena_t *a, col_span_t *out,
                         size_t max)
{
    sqlite3_stmt *st = d->trace;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    size_t k = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == max) continue;
        if (!row_span(d, st, id, a, true, &out[k])) die(NULL, "decode");
        if (memcmp(out[k].trace_id, id, 16) != 0) die(NULL, "wrong trace");
        k++;
    }
    if (rc != SQLITE_DONE) die(d->db, "trace");
    sqlite3_reset(st);
    return k;
}

/* Service + min duration, limit 20, newest matching span first. */
static size_t search(db_t *d, col_str_t service, uint64_t min_dur, uint8_t (*ids)[16], size_t limit)
{
    int64_t svc = 0;
    for (size_t i = 0; i < d->nnames; i++) {
        if (d->names[i].n == service.n && memcmp(d->names[i].s, service.p, service.n) == 0)
            svc = d->names[i].id;
    }
    if (!svc) return 0;
    sqlite3_stmt *st = d->search;
    sqlite3_bind_int64(st, 1, svc);
    sqlite3_bind_int64(st, 2, (int64_t)min_dur);
    size_t k = 0;
    while (k < limit) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) die(d->db, "search");
        const void *id = sqlite3_column_blob(st, 0);
        if (sqlite3_column_bytes(st, 0) != 16) die(NULL, "trace id");
        size_t i = 0;
        while (i < k && memcmp(ids[i], id, 16) != 0) i++;
        if (i == k) memcpy(ids[k++], id, 16);
    }
    sqlite3_reset(st);
    return k;
}

static bool attr_text_eq(const col_attr_t *a, col_str_t v)
{
    char buf[40];
    int n;
    switch (a->type) {
    case COL_V_BOOL:
        n = snprintf(buf, sizeof buf, "%s", a->v.b ? "true" : "false");
        break;
    case COL_V_INT:
        n = snprintf(buf, sizeof buf, "%lld", (long long)a->v.i);
        break;
    case COL_V_DOUBLE:
        n = snprintf(buf, sizeof buf, "%.17g", a->v.d);
        break;
    default:
        return a->v.s.n == v.n && memcmp(a->v.s.p, v.p, v.n) == 0;
    }
    return (size_t)n == v.n && memcmp(buf, v.p, v.n) == 0;
}

static bool attrs_have(const col_attr_t *at, uint32_t n, col_str_t key, col_str_t value)
{
    for (uint32_t i = 0; i < n; i++) {
        if (at[i].key.n == key.n && memcmp(at[i].key.p, key.p, key.n) == 0 &&
            attr_text_eq(&at[i], value))
            return true;
    }
    return false;
}

/* Service + one tag (key = value as text, of the span or its resource), limit 20: every
 * span of the service is decoded until 20 traces match. */
static size_t search_tag(db_t *d, col_str_t service, col_str_t key, col_str_t value,
                         weft_arena_t *a, uint8_t (*ids)[16], size_t limit)
{
    int64_t svc = 0;
    for (size_t i = 0; i < d->nnames; i++) {
        if (d->names[i].n == service.n && memcmp(d->names[i].s, service.p, service.n) == 0)
            svc = d->names[i].id;
    }
    if (!svc) return 0;
    sqlite3_stmt *st = d->scan;
    sqlite3_bind_int64(st, 1, svc);
    size_t k = 0;
    while (k < limit) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) die(d->db, "search");
        const uint8_t *id = sqlite3_column_blob(st, 10);
        col_span_t sp;
        if (!row_span(d, st, id, a, false, &sp)) die(NULL, "decode");
        if (attrs_have(sp.attrs, sp.nattrs, key, value) ||
            attrs_have(sp.resource->attrs, sp.resource->nattrs, key, value)) {
            size_t i = 0;
            while (i < k && memcmp(ids[i], id, 16) != 0) i++;
            if (i == k) memcpy(ids[k++], id, 16);
        }
        weft_arena_reset(a);
    }
    sqlite3_reset(st);
    return k;
}

/* Trains the dictionary on the first 20000 spans' rests (the generator is reseeded after). */
static void train(db_t *d, uint64_t wall, uint64_t step, st_buf_t *buf)
{
    enum { SAMPLES = 20000 };
    size_t *sizes = malloc(SAMPLES * sizeof *sizes), total = 0, ns = 0;
    uint8_t *all = malloc((size_t)SAMPLES * 1024);
    gen_batch_t *b = malloc(sizeof *b);
    for (uint64_t i = 0; ns < SAMPLES; i++) {
        gen_fill(b, i, wall + i * step);
        buf->n = 0;
        if (!st_encode_spans(buf, b->spans, GEN_PER_APPEND)) die(NULL, "encode");
        const uint8_t *p = buf->p, *end = buf->p + buf->n, *body;
        uint8_t type;
        uint32_t len;
        bool bad;
        while (ns < SAMPLES && st_next_record(&p, end, &type, &body, &len, &bad)) {
            if (type != ST_REC_SPAN) continue;
            span_cols_t c;
            size_t rest_n;
            if (!split_span(body, len, &c, scratch, &rest_n) || rest_n > 1024) die(NULL, "sample");
            memcpy(all + total, scratch, rest_n);
            sizes[ns++] = rest_n;
            total += rest_n;
        }
    }
    uint8_t dict[16384];
    size_t dn = ZDICT_trainFromBuffer(dict, sizeof dict, all, sizes, (unsigned)ns);
    if (ZDICT_isError(dn)) {
        fprintf(stderr, "dictionary: %s\n", ZDICT_getErrorName(dn));
        exit(1);
    }
    sqlite3_stmt *st = prep(d->db, "INSERT INTO dicts(id, body) VALUES(1, ?)");
    sqlite3_bind_blob(st, 1, dict, (int)dn, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) die(d->db, "insert dictionary");
    sqlite3_finalize(st);
    d->cdict = ZSTD_createCDict(dict, dn, 1);
    d->ddict = ZSTD_createDDict(dict, dn);
    printf("dictionary             %zu bytes from %zu spans\n", dn, ns);
    free(sizes);
    free(all);
    free(b);
    gen_reseed();
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void pct(const char *what, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
    printf("%-22s p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms\n", what, v[n / 2] * 1e3,
           v[n * 99 / 100] * 1e3, v[n - 1] * 1e3);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    const char *parent = argc > 2 ? argv[2] : "/tmp";
    const char *sync = argc > 3 ? argv[3] : "full";
    const char *blob = argc > 4 ? argv[4] : "plain";
    uint64_t group = argc > 5 ? strtoull(argv[5], NULL, 10) : 10;
    if (strcmp(sync, "full") && strcmp(sync, "normal") && strcmp(sync, "off")) {
        fprintf(stderr, "sync: full, normal or off\n");
        return 2;
    }
    db_t *d = calloc(1, sizeof *d);
    if (!strcmp(blob, "plain"))
        d->blob = BLOB_PLAIN;
    else if (!strcmp(blob, "zstd"))
        d->blob = BLOB_ZSTD;
    else if (!strcmp(blob, "dict"))
        d->blob = BLOB_DICT;
    else {
        fprintf(stderr, "blob: plain, zstd or dict\n");
        return 2;
    }
    if (group < 1) group = 1;
    n = (n + GEN_PER_APPEND - 1) / GEN_PER_APPEND * GEN_PER_APPEND;
    char path[512], wal[520];
    snprintf(path, sizeof path, "%s/weft-sqlite-bench-%d.db", parent, (int)getpid());
    snprintf(wal, sizeof wal, "%s-wal", path);
    gen_setup();
    open_db(d, path, sync, true);
    int blob_mode = d->blob;

    gen_batch_t *b = malloc(sizeof *b);
    st_buf_t buf = {0};
    uint64_t ntraces = n / GEN_PER_TRACE, appends = n / GEN_PER_APPEND;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t step = 3600ull * 1000000000ull / (appends ? appends : 1);
    if (blob_mode == BLOB_DICT) train(d, wall - 3600ull * 1000000000ull, step, &buf);
    double g0 = cpu_s();
    for (uint64_t i = 0; i < appends; i++)
        gen_fill(b, i, wall - 3600ull * 1000000000ull + i * step);
    double gen = cpu_s() - g0;
    gen_reseed();
    double t0 = now_s(), c0 = cpu_s();
    uint64_t commits = 0;
    for (uint64_t i = 0; i < appends; i++) {
        gen_fill(b, i, wall - 3600ull * 1000000000ull + i * step);
        if (i % group == 0) exec(d->db, "BEGIN");
        append(d, b->spans, GEN_PER_APPEND, &buf);
        if (i % group == group - 1 || i == appends - 1) {
            exec(d->db, "COMMIT");
            commits++;
        }
    }
    double t1 = now_s(), c1 = cpu_s();
    sqlite3_int64 mem_used = sqlite3_memory_used(), mem_high = sqlite3_memory_highwater(0);
    exec(d->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    off_t db_bytes = file_size(path), wal_bytes = file_size(wal);
    printf("spans %" PRIu64 " (%" PRIu64 " traces), SQLite %s, WAL, synchronous=%s, blob %s, "
           "%" PRIu64 " appends of %d per transaction (%" PRIu64 " commits)\n",
           n, ntraces, sqlite3_libversion(), sync, blob, group, GEN_PER_APPEND, commits);
    double store_cpu = c1 - c0 - gen;
    printf("ingest                 %.0f spans/s wall; CPU of the store %.2f us/span (%.0f spans/s "
           "per core; generating them: %.2f us/span more)\n",
           (double)n / (t1 - t0), store_cpu * 1e6 / (double)n, (double)n / store_cpu,
           gen * 1e6 / (double)n);
    printf("size                   %.1f bytes/span on disk (db %.1f MiB + wal %.1f MiB after "
           "checkpoint); SQLite's memory %.1f MiB (high %.1f MiB: the 64 MiB page cache)\n",
           (double)(db_bytes + wal_bytes) / (double)n, (double)db_bytes / 1048576.0,
           (double)wal_bytes / 1048576.0, (double)mem_used / 1048576.0,
           (double)mem_high / 1048576.0);
    {
        /* what each part takes: sqlite's dbstat, when compiled in */
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(d->db,
                               "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC",
                               -1, &st, NULL) == SQLITE_OK) {
            printf("  by part:");
            while (sqlite3_step(st) == SQLITE_ROW)
                printf(" %s %.1f", (const char *)sqlite3_column_text(st, 0),
                       (double)sqlite3_column_int64(st, 1) / (double)n);
            printf(" (bytes/span)\n");
            sqlite3_finalize(st);
        }
    }
    close_db(d);

    double o0 = now_s(), oc0 = cpu_s();
    open_db(d, path, sync, false);
    d->blob = blob_mode;
    printf("open                   %.3f s, CPU %.3f s (%" PRIu64 " spans)\n", now_s() - o0,
           cpu_s() - oc0, n);
    {
        sqlite3_stmt *st = prep(d->db, "EXPLAIN QUERY PLAN SELECT trace_id FROM spans WHERE "
                                       "service = 1 AND duration_ns >= 5 ORDER BY start_ns DESC");
        while (sqlite3_step(st) == SQLITE_ROW)
            printf("  search plan: %s\n", (const char *)sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
    }

    weft_arena_t a;
    weft_arena_init(&a, 1 << 16, 256u << 20);
    enum { NT = 2000, NS = 500 };
    double *lat = malloc(NT * sizeof *lat), *cpu = malloc(NT * sizeof *cpu);
    col_span_t spans[64];
    for (int pass = 0; pass < 2; pass++) {
        uint64_t r = 12345;
        size_t missing = 0;
        for (int i = 0; i < NT; i++) {
            r = gen_mix(r);
            uint8_t id[16];
            gen_trace_id(r % ntraces, id);
            double q0 = now_s(), u0 = thread_cpu_s();
            size_t k = read_trace(d, id, &a, spans, 64);
            lat[i] = now_s() - q0;
            cpu[i] = thread_cpu_s() - u0;
            if (k != GEN_PER_TRACE) missing++;
            for (size_t j = 0; j < k; j++) {
                if (spans[j].nattrs != 10 || spans[j].resource->nattrs != 6) missing++;
            }
            weft_arena_reset(&a);
        }
        pct(pass ? "trace by id (again)" : "trace by id", lat, NT);
        pct("  its CPU time", cpu, NT);
        if (missing) printf("  %zu traces not whole!\n", missing);
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t short_answers = 0;
        for (int i = 0; i < NS; i++) {
            col_str_t svc = gen_str(gen_svc_names[gen_rnd() % GEN_NSVC]);
            uint8_t ids[20][16];
            double q0 = now_s(), u0 = thread_cpu_s();
            size_t k = search(d, svc, pass ? 500000000ull : 50000000ull, ids, 20);
            lat[i] = now_s() - q0;
            cpu[i] = thread_cpu_s() - u0;
            if (k < 20) short_answers++;
        }
        pct(pass ? "search svc+dur>500ms" : "search svc+dur>50ms", lat, NS);
        pct("  its CPU time", cpu, NS);
        if (short_answers) printf("  %zu answers under 20\n", short_answers);
    }
    {
        enum { NW = 20 };
        for (int i = 0; i < NW; i++) {
            col_str_t svc = gen_str(gen_svc_names[gen_rnd() % GEN_NSVC]);
            uint8_t ids[20][16];
            double q0 = now_s();
            if (search(d, svc, 3000000000ull, ids, 20) != 0) return 1;
            lat[i] = now_s() - q0;
        }
        pct("search none (dur>3s)", lat, NW);
        for (int i = 0; i < NW; i++) {
            col_str_t svc = gen_str(gen_svc_names[gen_rnd() % GEN_NSVC]);
            uint8_t ids[20][16];
            double q0 = now_s();
            if (search_tag(d, svc, COL_STR("http.status_code"), COL_STR("599"), &a, ids, 20) != 0)
                return 1;
            lat[i] = now_s() - q0;
        }
        pct("search none (tag)", lat, NW);
        /* the tag search finds what is there (so that "none" above is not a broken scan) */
        uint8_t ids[20][16];
        if (search_tag(d, gen_str(gen_svc_names[0]), COL_STR("http.status_code"), COL_STR("500"),
                       &a, ids, 20) != 20) {
            fprintf(stderr, "tag search found fewer than 20 errors\n");
            return 1;
        }
    }
    weft_arena_free(&a);
    free(lat);
    free(cpu);
    free(b);
    st_buf_free(&buf);
    close_db(d);
    free(d);
    unlink(path);
    unlink(wal);
    char shm[520];
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(shm);
    return 0;
}
