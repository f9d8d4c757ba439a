/*
 * store_query.c - the trace store's reads: a trace by id, a search, the name lists, and the
 * cache of decompressed blocks they share (see store.c's essay for the design).
 *
 * Threads: any, concurrently with each other and with the writer. The indexes are read
 * under s->lock held for reading, and only long enough to pick the next block to read; the
 * read itself (pread, CRC, zstd) happens with no lock held, the block's segment pinned by
 * a reference so that retention can delete the file meanwhile without its descriptor being
 * closed (and reused) under the read. The cache has its own mutex, held only to look up,
 * insert and release entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "collector/store_int.h"
#include "weft/common.h"

/* A trace's spans may be spread over at most this many blocks to be read whole. */
#define ST_TRACE_MAX_BLOCKS 4096u

void st_seg_unref(st_seg_t *g)
{
    if (atomic_fetch_sub(&g->refs, 1) == 1) {
        close(g->fd);
        if (g->wti_fd >= 0) close(g->wti_fd);
        free(g);
    }
}

static void cent_free(st_cent_t *e)
{
    free(e->raw);
    free(e);
}

void st_cache_free(col_store_t *s)
{
    for (size_t i = 0; i < ST_CACHE_N; i++) {
        if (s->cache[i]) cent_free(s->cache[i]);
        s->cache[i] = NULL;
    }
}

/* Where a block is, copied out from under the lock, its segment pinned. */
typedef struct loc_s {
    uint32_t id, clen, rlen;
    uint64_t off;
    st_seg_t *seg;
} loc_t;

static loc_t loc_take(col_store_t *s, uint32_t id)
{
    const st_blk_t *b = &s->blks[id - s->blk_first];
    atomic_fetch_add(&b->seg->refs, 1);
    return (loc_t){.id = id, .clen = b->clen, .rlen = b->rlen, .off = b->off, .seg = b->seg};
}

static int blk_read(const loc_t *l, st_cent_t *e)
{
    uint8_t *buf = malloc((size_t)ST_HDR_LEN + l->clen);
    e->raw = malloc(l->rlen ? l->rlen : 1);
    if (!buf || !e->raw) {
        free(buf);
        return WEFT_ENOMEM;
    }
    size_t want = ST_HDR_LEN + l->clen;
    ssize_t got = pread(l->seg->fd, buf, want, (off_t)l->off);
    int rc = 0;
    if (got != (ssize_t)want)
        rc = WEFT_EIO;
    else {
        if (st_block_crc(buf, buf + ST_HDR_LEN, l->clen) != st_le32(buf + 40)) rc = WEFT_EIO;
    }
    if (rc == 0) {
        size_t n = ZSTD_decompress(e->raw, l->rlen, buf + ST_HDR_LEN, l->clen);
        if (ZSTD_isError(n) || n != l->rlen) rc = WEFT_EIO;
    }
    free(buf);
    e->len = l->rlen;
    return rc;
}

/* The decompressed block of l (from the cache, or read and cached); release with
 * blk_release. */
static int blk_get(col_store_t *s, const loc_t *l, st_cent_t **out)
{
    pthread_mutex_lock(&s->cache_mu);
    for (size_t i = 0; i < ST_CACHE_N; i++) {
        st_cent_t *e = s->cache[i];
        if (e && e->blk == l->id) {
            e->refs++;
            e->tick = ++s->cache_tick;
            pthread_mutex_unlock(&s->cache_mu);
            *out = e;
            return 0;
        }
    }
    pthread_mutex_unlock(&s->cache_mu);
    st_cent_t *e = calloc(1, sizeof *e);
    if (!e) return WEFT_ENOMEM;
    int rc = blk_read(l, e);
    if (rc != 0) {
        cent_free(e);
        return rc;
    }
    e->blk = l->id;
    e->refs = 1;
    if (l->rlen > ST_CACHE_BLOCK_MAX) { /* a block of a giant span: not kept, the bound holds */
        *out = e;
        return 0;
    }
    pthread_mutex_lock(&s->cache_mu);
    size_t victim = 0;
    for (size_t i = 0; i < ST_CACHE_N; i++) {
        st_cent_t *c = s->cache[i];
        if (!c) {
            victim = i;
            break;
        }
        if (c->blk == l->id) { /* another reader got it meanwhile: share theirs */
            c->refs++;
            pthread_mutex_unlock(&s->cache_mu);
            cent_free(e);
            *out = c;
            return 0;
        }
        if (c->tick < s->cache[victim]->tick) victim = i;
    }
    st_cent_t *old = s->cache[victim];
    if (old) {
        old->cached = false;
        if (old->refs > 0) old = NULL; /* its last reader frees it */
    }
    e->cached = true;
    e->tick = ++s->cache_tick;
    s->cache[victim] = e;
    pthread_mutex_unlock(&s->cache_mu);
    if (old) cent_free(old);
    *out = e;
    return 0;
}

static void blk_release(col_store_t *s, st_cent_t *e)
{
    pthread_mutex_lock(&s->cache_mu);
    bool gone = --e->refs == 0 && !e->cached;
    pthread_mutex_unlock(&s->cache_mu);
    if (gone) cent_free(e);
}

/* Reads block l (then unpins its segment). */
static int blk_fetch(col_store_t *s, loc_t *l, st_cent_t **out)
{
    int rc = blk_get(s, l, out);
    st_seg_unref(l->seg);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- a trace by id ---- */

/* Adds the spans of trace id in block raw to (*spans, *n, *cap) in a. */
static int trace_scan(const uint8_t *raw, size_t len, const uint8_t id[16], weft_arena_t *a,
                      col_span_t **spans, size_t *n, size_t *cap)
{
    const uint8_t *p = raw, *end = raw + len, *body, *res_body = NULL, *scope_body = NULL;
    uint32_t blen, res_len = 0, scope_len = 0;
    uint8_t type;
    bool bad, oom;
    col_resource_t *res = NULL;
    col_scope_t *scope = NULL;
    while (st_next_record(&p, end, &type, &body, &blen, &bad)) {
        if (type == ST_REC_RESOURCE) {
            res_body = body;
            res_len = blen;
            res = NULL; /* decoded when one of its spans is the trace's */
            continue;
        }
        if (type == ST_REC_SCOPE) {
            scope_body = body;
            scope_len = blen;
            scope = NULL;
            continue;
        }
        if (blen < 16 || memcmp(body, id, 16) != 0) continue;
        if (!res_body || !scope_body) return WEFT_EIO;
        if (!res) {
            res = weft_arena_alloc(a, sizeof *res);
            if (!res) return WEFT_ENOMEM;
            if (!st_decode_resource(res_body, res_len, a, true, res, &oom))
                return oom ? WEFT_ENOMEM : WEFT_EIO;
        }
        if (!scope) {
            scope = weft_arena_alloc(a, sizeof *scope);
            if (!scope) return WEFT_ENOMEM;
            if (!st_decode_scope(scope_body, scope_len, a, true, scope, &oom))
                return oom ? WEFT_ENOMEM : WEFT_EIO;
        }
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            col_span_t *v = weft_arena_alloc(a, c * sizeof *v);
            if (!v) return WEFT_ENOMEM;
            if (*n) memcpy(v, *spans, *n * sizeof *v);
            *spans = v;
            *cap = c;
        }
        col_span_t *sp = &(*spans)[*n];
        sp->resource = res;
        sp->scope = scope;
        if (!st_decode_span(body, blen, a, true, sp, &oom)) return oom ? WEFT_ENOMEM : WEFT_EIO;
        (*n)++;
    }
    return bad ? WEFT_EIO : 0;
}

int col_store_trace(col_store_t *s, const uint8_t trace_id[16], weft_arena_t *a, col_span_t **spans,
                    size_t *n)
{
    *spans = NULL;
    *n = 0;
    uint32_t *ids = malloc(ST_TRACE_MAX_BLOCKS * sizeof *ids);
    if (!ids) return WEFT_ENOMEM;
    uint64_t h = st_trace_hash(trace_id);
    pthread_rwlock_rdlock(&s->lock);
    size_t k = st_tix_lookup(&s->tix, h, s->blk_first, ids, ST_TRACE_MAX_BLOCKS);
    pthread_rwlock_unlock(&s->lock);
    /* sized by what was found (usually a few), not by the bound */
    loc_t *locs = malloc((k ? k : 1) * sizeof *locs);
    if (!locs) {
        free(ids);
        return WEFT_ENOMEM;
    }
    qsort(ids, k, sizeof *ids, cmp_u32);
    size_t nl = 0;
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < k; i++) { /* retention may have deleted some meanwhile */
        if (ids[i] - s->blk_first < s->nblk) locs[nl++] = loc_take(s, ids[i]);
    }
    pthread_rwlock_unlock(&s->lock);
    free(ids);
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < nl; i++) {
        st_cent_t *e;
        int r = blk_fetch(s, &locs[i], &e);
        if (rc == 0) rc = r;
        if (r != 0) continue;
        if (rc == 0) rc = trace_scan(e->raw, e->len, trace_id, a, spans, n, &cap);
        blk_release(s, e);
    }
    free(locs);
    if (rc != 0) {
        *spans = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- search ---- */

typedef struct hit_s {
    uint8_t id[16];
    uint64_t start;
} hit_t;

typedef struct search_s {
    const col_query_t *q;
    uint64_t start_ns, end_ns;
    uint32_t svc, name, remote; /* ids of the query's names; 0: not given, or unknown */
    bool unknown;               /* a name given is in no indexed block */
    hit_t *hits;
    size_t nhits, k;
    uint64_t kth; /* with k hits: the oldest start among them (a span must be newer) */
    weft_arena_t res_arena, span_arena;
} search_t;

static bool keys_have(const uint64_t *v, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == key;
}

/* Whether block b may hold a matching span newer than the hits so far (from its summary). */
static bool blk_may_match(const search_t *x, const st_blk_t *b)
{
    const col_query_t *q = x->q;
    if (b->nspans == 0 || b->max_start < x->start_ns || b->min_start > x->end_ns) return false;
    if (x->nhits == x->k && b->max_start <= x->kth) return false;
    if (q->min_duration_ns && b->max_dur < q->min_duration_ns) return false;
    if (q->max_duration_ns && b->min_dur > q->max_duration_ns) return false;
    if (b->unindexed) return true; /* its sets are incomplete: read it */
    if (x->unknown) return false;
    const uint64_t *svc = b->keys, *ops = b->keys + b->nsvc, *rem = ops + b->nops;
    if (x->svc && !keys_have(svc, b->nsvc, x->svc)) return false;
    if (x->name) {
        bool found = false;
        if (x->svc) { /* ops sorted by (svc, name, kind): find the first >= (svc, name, 0) */
            uint64_t key = (uint64_t)x->svc << 32 | (uint64_t)x->name << 8;
            size_t lo = 0, hi = b->nops;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (ops[mid] < key)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            found = lo < b->nops && ops[lo] >> 8 == key >> 8;
        } else {
            for (uint32_t i = 0; i < b->nops && !found; i++)
                found = ((ops[i] >> 8) & 0xffffffu) == x->name;
        }
        if (!found) return false;
    }
    if (x->remote) {
        bool found = false;
        if (x->svc)
            found = keys_have(rem, b->nrem, (uint64_t)x->svc << 32 | x->remote);
        else {
            for (uint32_t i = 0; i < b->nrem && !found; i++) found = (uint32_t)rem[i] == x->remote;
        }
        if (!found) return false;
    }
    return true;
}

/* An attribute's value as text equals v (Zipkin's and Jaeger's tags are text). */
static bool attr_text_eq(const col_attr_t *a, col_str_t v)
{
    char buf[40];
    int n;
    switch (a->type) {
    case COL_V_BOOL:
        return a->v.b ? col_str_eq(v, "true", 4) : col_str_eq(v, "false", 5);
    case COL_V_INT:
        n = snprintf(buf, sizeof buf, "%lld", (long long)a->v.i);
        break;
    case COL_V_DOUBLE: {
        if (v.n == 0 || v.n >= sizeof buf) return false;
        memcpy(buf, v.p, v.n);
        buf[v.n] = 0;
        char *end;
        double d = strtod(buf, &end);
        return *end == 0 && d == a->v.d;
    }
    case COL_V_EMPTY:
        return v.n == 0;
    default:
        return col_str_eq(a->v.s, v.p, v.n);
    }
    return col_str_eq(v, buf, (size_t)n);
}

static bool attrs_match(const col_attr_t *at, uint32_t n, col_str_t key, col_str_t value, bool any)
{
    for (uint32_t i = 0; i < n; i++) {
        if (col_str_eq(at[i].key, key.p, key.n) && (any || attr_text_eq(&at[i], value)))
            return true;
    }
    return false;
}

static bool tags_match(const col_query_t *q, const col_span_t *sp, const col_resource_t *res)
{
    for (size_t t = 0; t < q->ntags && t < COL_QUERY_MAX_TAGS; t++) {
        col_str_t k = q->tags[t].key, v = q->tags[t].value;
        bool any = q->tags[t].any_value;
        bool ok = attrs_match(sp->attrs, sp->nattrs, k, v, any) ||
                  attrs_match(res->attrs, res->nattrs, k, v, any);
        for (uint32_t e = 0; !ok && any && e < sp->nevents; e++)
            ok = col_str_eq(sp->events[e].name, k.p, k.n);
        if (!ok) return false;
    }
    return true;
}

static void hit_add(search_t *x, const uint8_t id[16], uint64_t start)
{
    for (size_t i = 0; i < x->nhits; i++) {
        if (memcmp(x->hits[i].id, id, 16) == 0) {
            if (start > x->hits[i].start) x->hits[i].start = start;
            goto kth;
        }
    }
    if (x->nhits < x->k) {
        memcpy(x->hits[x->nhits].id, id, 16);
        x->hits[x->nhits++].start = start;
    } else {
        size_t min = 0;
        for (size_t i = 1; i < x->nhits; i++) {
            if (x->hits[i].start < x->hits[min].start) min = i;
        }
        if (start <= x->hits[min].start) return;
        memcpy(x->hits[min].id, id, 16);
        x->hits[min].start = start;
    }
kth:
    if (x->nhits == x->k) {
        uint64_t m = UINT64_MAX;
        for (size_t i = 0; i < x->nhits; i++) {
            if (x->hits[i].start < m) m = x->hits[i].start;
        }
        x->kth = m;
    }
}

static int search_block(search_t *x, const uint8_t *raw, size_t len)
{
    const col_query_t *q = x->q;
    const uint8_t *p = raw, *end = raw + len, *body;
    uint32_t blen;
    uint8_t type;
    bool bad, oom;
    col_resource_t res = {0};
    bool have_res = false, res_ok = false;
    while (st_next_record(&p, end, &type, &body, &blen, &bad)) {
        if (type == ST_REC_RESOURCE) {
            /* its attributes are needed only for tags */
            if (q->ntags) {
                weft_arena_reset(&x->res_arena);
                if (!st_decode_resource(body, blen, &x->res_arena, false, &res, &oom))
                    return oom ? WEFT_ENOMEM : WEFT_EIO;
            } else if (!st_read_resource_service(body, blen, &res.service)) {
                return WEFT_EIO;
            }
            have_res = true;
            res_ok = q->service.n == 0 || col_str_eq(res.service, q->service.p, q->service.n);
            continue;
        }
        if (type != ST_REC_SPAN || !res_ok) continue;
        if (!have_res) return WEFT_EIO;
        st_span_head_t h;
        if (!st_read_span_head(body, blen, &h)) return WEFT_EIO;
        uint64_t dur = h.end_ns >= h.start_ns ? h.end_ns - h.start_ns : 0;
        if (h.start_ns < x->start_ns || h.start_ns > x->end_ns) continue;
        if (x->nhits == x->k && h.start_ns <= x->kth) continue;
        if (q->min_duration_ns && dur < q->min_duration_ns) continue;
        if (q->max_duration_ns && dur > q->max_duration_ns) continue;
        if (q->span_name.n && !col_str_eq(h.name, q->span_name.p, q->span_name.n)) continue;
        if (q->remote_service.n &&
            !col_str_eq(h.remote_service, q->remote_service.p, q->remote_service.n))
            continue;
        if (q->ntags) {
            col_span_t sp = {.resource = &res};
            weft_arena_reset(&x->span_arena);
            if (!st_decode_span(body, blen, &x->span_arena, false, &sp, &oom))
                return oom ? WEFT_ENOMEM : WEFT_EIO;
            if (!tags_match(q, &sp, &res)) continue;
        }
        hit_add(x, h.trace_id, h.start_ns);
    }
    return bad ? WEFT_EIO : 0;
}

static int cmp_hit(const void *a, const void *b)
{
    const hit_t *x = a, *y = b;
    if (x->start != y->start) return x->start > y->start ? -1 : 1;
    return memcmp(x->id, y->id, 16);
}

int col_store_search(col_store_t *s, const col_query_t *q, uint8_t (*ids)[16], size_t max,
                     size_t *n)
{
    *n = 0;
    search_t x = {.q = q};
    x.k = q->limit ? q->limit : 20;
    if (x.k > max) x.k = max;
    if (x.k == 0) return 0;
    x.start_ns = q->start_ns;
    x.end_ns = q->end_ns ? q->end_ns : st_now_ns();
    if (x.start_ns > x.end_ns) return 0;
    x.hits = malloc(x.k * sizeof *x.hits);
    if (!x.hits) return WEFT_ENOMEM;
    weft_arena_init(&x.res_arena, 16384, 64u << 20);
    weft_arena_init(&x.span_arena, 16384, 64u << 20);

    pthread_rwlock_rdlock(&s->lock);
    if (q->service.n && !(x.svc = st_intern_find(&s->names, q->service.p, q->service.n)))
        x.unknown = true;
    if (q->span_name.n && !(x.name = st_intern_find(&s->names, q->span_name.p, q->span_name.n)))
        x.unknown = true;
    if (q->remote_service.n &&
        !(x.remote = st_intern_find(&s->names, q->remote_service.p, q->remote_service.n)))
        x.unknown = true;
    uint64_t cursor = (uint64_t)s->blk_first + s->nblk; /* blocks below it are left */
    pthread_rwlock_unlock(&s->lock);

    int rc = 0;
    for (;;) {
        loc_t l;
        bool found = false;
        pthread_rwlock_rdlock(&s->lock);
        while (cursor > s->blk_first) {
            cursor--;
            if (blk_may_match(&x, &s->blks[cursor - s->blk_first])) {
                l = loc_take(s, (uint32_t)cursor);
                found = true;
                break;
            }
        }
        pthread_rwlock_unlock(&s->lock);
        if (!found) break;
        st_cent_t *e;
        rc = blk_fetch(s, &l, &e);
        if (rc != 0) break;
        rc = search_block(&x, e->raw, e->len);
        blk_release(s, e);
        if (rc != 0) break;
    }
    weft_arena_free(&x.res_arena);
    weft_arena_free(&x.span_arena);
    if (rc == 0) {
        if (x.nhits) qsort(x.hits, x.nhits, sizeof *x.hits, cmp_hit);
        for (size_t i = 0; i < x.nhits; i++) memcpy(ids[i], x.hits[i].id, 16);
        *n = x.nhits;
    }
    free(x.hits);
    return rc;
}

/* ---- an attribute's values (Zipkin's autocompleteValues) ---- */

void col_store_blocks(col_store_t *s, uint32_t *first, uint32_t *end)
{
    pthread_rwlock_rdlock(&s->lock);
    *first = s->blk_first;
    *end = s->blk_first + s->nblk;
    pthread_rwlock_unlock(&s->lock);
}

/* fn for the attributes named key among at[0..n); false when fn stopped. */
static bool visit_attrs(const col_attr_t *at, uint32_t n, col_str_t key, col_store_attr_fn fn,
                        void *arg)
{
    for (uint32_t i = 0; i < n; i++) {
        if (col_str_eq(at[i].key, key.p, key.n) && !fn(&at[i], arg)) return false;
    }
    return true;
}

/* 0, 1 when fn stopped, or WEFT_ENOMEM / WEFT_EIO. */
static int values_block(const uint8_t *raw, size_t len, col_str_t key, weft_arena_t *res_a,
                        weft_arena_t *span_a, col_store_attr_fn fn, void *arg)
{
    const uint8_t *p = raw, *end = raw + len, *body;
    uint32_t blen;
    uint8_t type;
    bool bad, oom;
    col_resource_t res = {0};
    bool have_res = false;
    while (st_next_record(&p, end, &type, &body, &blen, &bad)) {
        if (type == ST_REC_RESOURCE) {
            weft_arena_reset(res_a);
            if (!st_decode_resource(body, blen, res_a, false, &res, &oom))
                return oom ? WEFT_ENOMEM : WEFT_EIO;
            have_res = true;
            if (!visit_attrs(res.attrs, res.nattrs, key, fn, arg)) return 1;
            continue;
        }
        if (type != ST_REC_SPAN) continue;
        if (!have_res) return WEFT_EIO;
        col_span_t sp = {.resource = &res};
        weft_arena_reset(span_a);
        if (!st_decode_span(body, blen, span_a, false, &sp, &oom))
            return oom ? WEFT_ENOMEM : WEFT_EIO;
        if (!visit_attrs(sp.attrs, sp.nattrs, key, fn, arg)) return 1;
    }
    return bad ? WEFT_EIO : 0;
}

int col_store_attr_values(col_store_t *s, col_str_t key, uint32_t from, uint32_t to,
                          col_store_attr_fn fn, void *arg)
{
    weft_arena_t res_a, span_a;
    weft_arena_init(&res_a, 16384, 64u << 20);
    weft_arena_init(&span_a, 16384, 64u << 20);
    uint64_t cursor = to; /* blocks below it are left */
    int rc = 0;
    for (;;) {
        loc_t l;
        bool found = false;
        pthread_rwlock_rdlock(&s->lock);
        if (cursor > (uint64_t)s->blk_first + s->nblk) cursor = (uint64_t)s->blk_first + s->nblk;
        if (cursor > from && cursor > s->blk_first) {
            cursor--;
            l = loc_take(s, (uint32_t)cursor);
            found = true;
        }
        pthread_rwlock_unlock(&s->lock);
        if (!found) break;
        st_cent_t *e;
        rc = blk_fetch(s, &l, &e);
        if (rc != 0) break;
        rc = values_block(e->raw, e->len, key, &res_a, &span_a, fn, arg);
        blk_release(s, e);
        if (rc != 0) break;
    }
    weft_arena_free(&res_a);
    weft_arena_free(&span_a);
    return rc == 1 ? 0 : rc;
}

/* ---- the name lists ---- */

static int cmp_str(const void *a, const void *b)
{
    const col_str_t *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m ? memcmp(x->p, y->p, m) : 0;
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static bool str_copy(weft_arena_t *a, col_str_t in, col_str_t *out)
{
    char *p = weft_arena_alloc(a, in.n ? in.n : 1);
    if (!p) return false;
    memcpy(p, in.p, in.n);
    *out = (col_str_t){.p = p, .n = in.n};
    return true;
}

/* The names of the ids picked from set (pick: the id of a key, 0 to skip it), copied into a,
 * sorted and without duplicates. */
static int names_of(col_store_t *s, const st_set_t *set, uint32_t svc,
                    uint32_t (*pick)(uint64_t key, uint32_t svc), weft_arena_t *a,
                    col_str_t **names, size_t *n)
{
    *names = NULL;
    *n = 0;
    int rc = 0;
    pthread_rwlock_rdlock(&s->lock);
    col_str_t *v = set->n ? weft_arena_alloc(a, set->n * sizeof *v) : NULL;
    if (set->n && !v) rc = WEFT_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < set->cap; i++) {
        uint32_t id = set->k[i] ? pick(set->k[i], svc) : 0;
        if (!id) continue;
        col_str_t name = st_intern_str(&s->names, id);
        if (name.n == 0) continue;
        if (!str_copy(a, name, &v[k]))
            rc = WEFT_ENOMEM;
        else
            k++;
    }
    pthread_rwlock_unlock(&s->lock);
    if (rc != 0) return rc;
    if (k) qsort(v, k, sizeof *v, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || cmp_str(&v[u - 1], &v[i]) != 0) v[u++] = v[i];
    }
    *names = v;
    *n = u;
    return 0;
}

static uint32_t pick_service(uint64_t key, uint32_t svc)
{
    (void)svc;
    return (uint32_t)key;
}

static uint32_t pick_remote(uint64_t key, uint32_t svc)
{
    return !svc || key >> 32 == svc ? (uint32_t)key : 0;
}

int col_store_services(col_store_t *s, weft_arena_t *a, col_str_t **names, size_t *n)
{
    return names_of(s, &s->services, 0, pick_service, a, names, n);
}

/* The id of service, 0 when none is asked for; *none when it was asked and is unknown. */
static uint32_t service_id(col_store_t *s, col_str_t service, bool *none)
{
    *none = false;
    if (service.n == 0) return 0;
    pthread_rwlock_rdlock(&s->lock);
    uint32_t id = st_intern_find(&s->names, service.p, service.n);
    pthread_rwlock_unlock(&s->lock);
    *none = id == 0;
    return id;
}

int col_store_remote_services(col_store_t *s, col_str_t service, weft_arena_t *a, col_str_t **names,
                              size_t *n)
{
    bool none;
    uint32_t svc = service_id(s, service, &none);
    if (none) {
        *names = NULL;
        *n = 0;
        return 0;
    }
    return names_of(s, &s->remotes, svc, pick_remote, a, names, n);
}

static int cmp_op(const void *a, const void *b)
{
    const col_operation_t *x = a, *y = b;
    int c = cmp_str(&x->name, &y->name);
    return c ? c : (x->kind > y->kind) - (x->kind < y->kind);
}

int col_store_operations(col_store_t *s, col_str_t service, weft_arena_t *a, col_operation_t **ops,
                         size_t *n)
{
    *ops = NULL;
    *n = 0;
    bool none;
    uint32_t svc = service_id(s, service, &none);
    if (none) return 0;
    int rc = 0;
    size_t k = 0;
    pthread_rwlock_rdlock(&s->lock);
    col_operation_t *v = s->ops.n ? weft_arena_alloc(a, s->ops.n * sizeof *v) : NULL;
    if (s->ops.n && !v) rc = WEFT_ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->ops.cap; i++) {
        uint64_t key = s->ops.k[i];
        if (!key || (svc && key >> 32 != svc)) continue;
        col_str_t name = st_intern_str(&s->names, (uint32_t)(key >> 8) & 0xffffffu);
        if (name.n == 0) continue;
        v[k].kind = (uint8_t)key;
        if (!str_copy(a, name, &v[k].name))
            rc = WEFT_ENOMEM;
        else
            k++;
    }
    pthread_rwlock_unlock(&s->lock);
    if (rc != 0) return rc;
    if (k) qsort(v, k, sizeof *v, cmp_op);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || cmp_op(&v[u - 1], &v[i]) != 0) v[u++] = v[i];
    }
    *ops = v;
    *n = u;
    return 0;
}
