/*
 * store_index.c - the trace store's in-memory indexes: interned names, the sets of
 * services/operations/remote services, the trace-id index and the block summaries (see
 * store.c's essay for why these and how big they get).
 *
 * Threads. Only the writer thread (and col_store_open before it starts) changes these; it
 * reads them without a lock (nobody else writes) and changes them under s->lock held for
 * writing, briefly: one new name, or one group of blocks published after their sync. Queries
 * read them under s->lock held for reading.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collector/store_int.h"
#include "weft/common.h"

uint64_t st_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t str_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = st_mix64(h ^ w);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return st_mix64(h ^ w);
}

/* ---- st_set_t ---- */

static int set_grow(st_set_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16;
    uint64_t *k = calloc(cap, sizeof *k);
    if (!k) return WEFT_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->k[i]) continue;
        size_t j = st_mix64(s->k[i]) & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = s->k[i];
    }
    free(s->k);
    s->k = k;
    s->cap = cap;
    return 0;
}

int st_set_add(st_set_t *s, uint64_t key)
{
    if (st_set_has(s, key)) return 0;
    if ((s->n + 1) * 4 > s->cap * 3 && set_grow(s) != 0) return WEFT_ENOMEM;
    size_t j = st_mix64(key) & (s->cap - 1);
    while (s->k[j]) j = (j + 1) & (s->cap - 1);
    s->k[j] = key;
    s->n++;
    return 1;
}

bool st_set_has(const st_set_t *s, uint64_t key)
{
    if (!s->cap) return false;
    size_t j = st_mix64(key) & (s->cap - 1);
    while (s->k[j]) {
        if (s->k[j] == key) return true;
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}

void st_set_free(st_set_t *s)
{
    free(s->k);
    memset(s, 0, sizeof *s);
}

/* ---- interned names ---- */

uint32_t st_intern_find(const st_intern_t *t, const char *p, size_t n)
{
    if (!t->cap) return 0;
    size_t j = str_hash(p, n) & (t->cap - 1);
    for (uint32_t id; (id = t->slot[j]) != 0; j = (j + 1) & (t->cap - 1)) {
        if (t->ent[id].len == n && memcmp(t->pool + t->ent[id].off, p, n) == 0) return id;
    }
    return 0;
}

uint32_t st_intern_add(st_intern_t *t, const char *p, size_t n)
{
    uint32_t id = st_intern_find(t, p, n);
    if (id) return id;
    if (t->n >= ST_INTERN_MAX || t->pool_n + n > ST_INTERN_POOL_MAX) return 0;
    if ((t->n + 2) * 4 > t->cap * 3) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        uint32_t *slot = calloc(cap, sizeof *slot);
        if (!slot) return 0;
        for (uint32_t i = 1; i <= t->n; i++) {
            size_t j = str_hash(t->pool + t->ent[i].off, t->ent[i].len) & (cap - 1);
            while (slot[j]) j = (j + 1) & (cap - 1);
            slot[j] = i;
        }
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    if (t->n + 1 >= t->ent_cap) {
        uint32_t cap = t->ent_cap ? t->ent_cap * 2 : 256;
        void *e = realloc(t->ent, (size_t)cap * sizeof *t->ent);
        if (!e) return 0;
        t->ent = e;
        t->ent_cap = cap;
    }
    if (t->pool_cap - t->pool_n < n) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap - t->pool_n < n) cap *= 2;
        char *pool = realloc(t->pool, cap);
        if (!pool) return 0;
        t->pool = pool;
        t->pool_cap = cap;
    }
    id = ++t->n;
    t->ent[id].off = (uint32_t)t->pool_n;
    t->ent[id].len = (uint32_t)n;
    if (n) memcpy(t->pool + t->pool_n, p, n);
    t->pool_n += n;
    size_t j = str_hash(p, n) & (t->cap - 1);
    while (t->slot[j]) j = (j + 1) & (t->cap - 1);
    t->slot[j] = id;
    return id;
}

col_str_t st_intern_str(const st_intern_t *t, uint32_t id)
{
    if (id == 0 || id > t->n) return (col_str_t){.p = "", .n = 0};
    return (col_str_t){.p = t->pool + t->ent[id].off, .n = t->ent[id].len};
}

void st_intern_free(st_intern_t *t)
{
    free(t->slot);
    free(t->ent);
    free(t->pool);
    memset(t, 0, sizeof *t);
}

size_t st_intern_bytes(const st_intern_t *t)
{
    return t->cap * sizeof *t->slot + t->ent_cap * sizeof *t->ent + t->pool_cap;
}

/* ---- the trace-id index ---- */

uint64_t st_trace_hash(const uint8_t id[16])
{
    /* Both halves: Zipkin's 64-bit trace ids leave the high half zero. */
    return st_mix64(st_le64(id) ^ st_mix64(st_le64(id + 8) + 0x9e3779b97f4a7c15ull));
}

/* An entry keeps only 32 bits of the trace id's hash (the fingerprint), and its home slot
 * is computed from those bits alone, so that a rebuild can move it to a bigger table. Two
 * traces sharing a fingerprint (1 in 2^32 per pair that meets in a probe run) cost a read
 * of a block that then holds none of the trace's spans: the reader filters by full id. */
static inline uint32_t tix_fp(uint64_t h)
{
    uint32_t fp = (uint32_t)(h >> 32);
    return fp ? fp : 1;
}

static inline size_t tix_home(uint32_t fp, size_t cap)
{
    return (size_t)st_mix64(fp) & (cap - 1);
}

static void tix_put(st_tix_t *t, uint32_t fp, uint32_t blk)
{
    size_t j = tix_home(fp, t->cap);
    bool seen = false;
    for (; t->e[j].fp; j = (j + 1) & (t->cap - 1)) {
        if (t->e[j].fp != fp) continue;
        if (t->e[j].blk == blk) return;
        seen = true;
    }
    t->e[j].fp = fp;
    t->e[j].blk = blk;
    t->n++;
    if (!seen) t->traces++;
}

void st_tix_insert(st_tix_t *t, uint64_t h, uint32_t blk)
{
    tix_put(t, tix_fp(h), blk);
}

size_t st_tix_lookup(const st_tix_t *t, uint64_t h, uint32_t first_live, uint32_t *out, size_t max)
{
    if (!t->cap) return 0;
    uint32_t fp = tix_fp(h);
    size_t k = 0;
    for (size_t j = tix_home(fp, t->cap); t->e[j].fp; j = (j + 1) & (t->cap - 1)) {
        if (t->e[j].fp == fp && t->e[j].blk >= first_live && k < max) out[k++] = t->e[j].blk;
    }
    return k;
}

bool st_tix_has_room(const st_tix_t *t, size_t more)
{
    return (t->n + more) * 4 <= t->cap * 3;
}

int st_tix_rebuilt(const st_tix_t *t, uint32_t first_live, size_t more, st_tix_t *out)
{
    size_t live = t->n - (t->stale < t->n ? t->stale : t->n);
    size_t cap = 1024;
    while (cap < (live + more) * 2) cap *= 2; /* half full after: room to grow by half */
    memset(out, 0, sizeof *out);
    out->e = calloc(cap, sizeof *out->e);
    if (!out->e) return WEFT_ENOMEM;
    out->cap = cap;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->e[i].fp && t->e[i].blk >= first_live) tix_put(out, t->e[i].fp, t->e[i].blk);
    }
    return 0;
}

void st_blk_free(st_blk_t *b)
{
    free(b->keys);
    b->keys = NULL;
}

/* ---- block summaries ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* v's distinct values in the order they first come, moved to its front; their count. A
 * block's keys repeat (a span per (service, operation) pair, ten spans a trace): dropping
 * the repeats through a small hash set first leaves the sort a fraction of the values, and
 * a set costs a multiply and a probe a value where qsort's merge sort costs ~90
 * instructions (callgrind: 2.8% of a protobuf span's ingest went to sorting). n when the
 * set cannot be allocated (the caller's sort then does all the work). */
static size_t drop_repeats(uint64_t *v, size_t n)
{
    unsigned bits = 6;
    while (((size_t)1 << bits) < 2 * n) bits++;
    size_t mask = ((size_t)1 << bits) - 1;
    uint64_t *set = calloc(mask + 1, sizeof *set); /* 0: an empty slot */
    if (!set) return n;
    bool zero = false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = v[i];
        if (x == 0) {
            if (!zero) v[k++] = 0;
            zero = true;
            continue;
        }
        size_t h = (size_t)((x * 0x9e3779b97f4a7c15ull) >> (64 - bits));
        while (set[h] && set[h] != x) h = (h + 1) & mask;
        if (!set[h]) {
            set[h] = x;
            v[k++] = x;
        }
    }
    free(set);
    return k;
}

static size_t sort_unique(uint64_t *v, size_t n)
{
    if (n < 2) return n;
    if (n >= 32) n = drop_repeats(v, n);
    qsort(v, n, sizeof *v, cmp_u64);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (v[i] != v[k - 1]) v[k++] = v[i];
    }
    return k;
}

/* The id of a name, interning it (under the lock: queries read the table). */
uint32_t st_name_id(col_store_t *s, col_str_t n)
{
    uint32_t id = st_intern_find(&s->names, n.p, n.n);
    if (id) return id;
    pthread_rwlock_wrlock(&s->lock);
    id = st_intern_add(&s->names, n.p, n.n);
    pthread_rwlock_unlock(&s->lock);
    return id;
}

int st_blk_build(col_store_t *s, const uint8_t *raw, size_t rlen, st_blk_t *b, uint64_t **hashes,
                 size_t *nh, size_t *hcap)
{
    const uint8_t *p = raw, *end = raw + rlen, *body;
    uint8_t type;
    uint32_t n;
    bool bad;
    size_t nrec = 0;
    while (st_next_record(&p, end, &type, &body, &n, &bad)) nrec++;
    if (bad) return WEFT_EPARSE;

    uint64_t *v = malloc((3 * nrec + 1) * sizeof *v);
    if (!v) return WEFT_ENOMEM;
    uint64_t *svc = v, *ops = v + nrec, *rem = v + 2 * nrec;
    size_t nsvc = 0, nops = 0, nrem = 0;
    b->nspans = b->ntix = 0;
    b->min_start = b->min_dur = UINT64_MAX;
    b->max_start = b->max_end = b->max_dur = 0;
    b->unindexed = false;
    uint32_t cur_svc = 0;
    bool have_res = false;
    size_t h0 = *nh;
    int rc = 0;
    p = raw;
    while (st_next_record(&p, end, &type, &body, &n, &bad)) {
        if (type == ST_REC_RESOURCE) {
            col_str_t sv;
            if (!st_read_resource_service(body, n, &sv)) goto parse;
            cur_svc = st_name_id(s, sv);
            have_res = true;
            if (cur_svc)
                svc[nsvc++] = cur_svc;
            else
                b->unindexed = true;
            continue;
        }
        if (type != ST_REC_SPAN) continue;
        st_span_head_t h;
        if (!have_res || !st_read_span_head(body, n, &h)) goto parse;
        b->nspans++;
        uint64_t dur = h.end_ns >= h.start_ns ? h.end_ns - h.start_ns : 0;
        if (h.start_ns < b->min_start) b->min_start = h.start_ns;
        if (h.start_ns > b->max_start) b->max_start = h.start_ns;
        if (h.end_ns > b->max_end) b->max_end = h.end_ns;
        if (dur < b->min_dur) b->min_dur = dur;
        if (dur > b->max_dur) b->max_dur = dur;
        uint32_t name = st_name_id(s, h.name);
        if (cur_svc && name)
            ops[nops++] = (uint64_t)cur_svc << 32 | (uint64_t)name << 8 | h.kind;
        else
            b->unindexed = true;
        if (h.remote_service.n) {
            uint32_t r = st_name_id(s, h.remote_service);
            if (cur_svc && r)
                rem[nrem++] = (uint64_t)cur_svc << 32 | r;
            else
                b->unindexed = true;
        }
        if (*nh == *hcap) {
            size_t cap = *hcap ? *hcap * 2 : 1024;
            uint64_t *hv = realloc(*hashes, cap * sizeof *hv);
            if (!hv) {
                rc = WEFT_ENOMEM;
                goto out;
            }
            *hashes = hv;
            *hcap = cap;
        }
        (*hashes)[(*nh)++] = st_trace_hash(h.trace_id);
    }
    if (bad) goto parse;
    if (b->nspans == 0) b->min_start = b->min_dur = 0;
    nsvc = sort_unique(svc, nsvc);
    nops = sort_unique(ops, nops);
    nrem = sort_unique(rem, nrem);
    b->keys = malloc((nsvc + nops + nrem + 1) * sizeof *b->keys);
    if (!b->keys) {
        rc = WEFT_ENOMEM;
        goto out;
    }
    memcpy(b->keys, svc, nsvc * sizeof *v);
    memcpy(b->keys + nsvc, ops, nops * sizeof *v);
    memcpy(b->keys + nsvc + nops, rem, nrem * sizeof *v);
    b->nsvc = (uint32_t)nsvc;
    b->nops = (uint32_t)nops;
    b->nrem = (uint32_t)nrem;
    /* a trace once per block: the index and the sidecar need no more */
    *nh = h0 + sort_unique(*hashes + h0, *nh - h0);
    b->ntix = (uint32_t)(*nh - h0);
    free(v);
    return 0;
parse:
    rc = WEFT_EPARSE;
out:
    *nh = h0;
    free(v);
    return rc;
}

int st_publish(col_store_t *s, st_blk_t *bs, size_t n, const uint64_t *hashes)
{
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) nh += bs[i].ntix;
    st_tix_t fresh = {0};
    bool swap = !st_tix_has_room(&s->tix, nh) || s->tix.stale * 2 > s->tix.n + 1024;
    /* The writer is the only one changing the index, so it reads it without the lock. */
    if (swap && st_tix_rebuilt(&s->tix, s->blk_first, nh, &fresh) != 0) return WEFT_ENOMEM;
    st_blk_t *blks = s->blks;
    uint32_t cap = s->blk_cap;
    if (s->nblk + n > cap) {
        while (s->nblk + n > cap) cap = cap ? cap * 2 : 256;
        /* realloc moves what queries read: they read under the lock, so realloc under it */
    }

    pthread_rwlock_wrlock(&s->lock);
    if (cap != s->blk_cap) {
        blks = realloc(s->blks, (size_t)cap * sizeof *blks);
        if (!blks) {
            pthread_rwlock_unlock(&s->lock);
            free(fresh.e);
            return WEFT_ENOMEM;
        }
        s->blks = blks;
        s->blk_cap = cap;
    }
    st_tix_t old = s->tix;
    if (swap) s->tix = fresh;
    const uint64_t *h = hashes;
    for (size_t i = 0; i < n; i++) {
        st_blk_t *b = &bs[i];
        uint32_t id = s->blk_first + s->nblk;
        size_t before = s->tix.n;
        for (uint32_t k = 0; k < b->ntix; k++) st_tix_insert(&s->tix, h[k], id);
        h += b->ntix;
        b->ntix = (uint32_t)(s->tix.n - before);
        s->blks[s->nblk++] = *b;
        st_seg_t *g = b->seg;
        if (g->nblk == 0) g->first_blk = id;
        g->nblk++;
        g->nspans += b->nspans;
        if (b->max_end > g->max_end) g->max_end = b->max_end;
        uint64_t end = b->off + ST_HDR_LEN + b->clen;
        if (end > g->size) {
            s->disk_bytes += end - g->size;
            g->size = end;
        }
        s->spans += b->nspans;
        s->sets_bytes += (b->nsvc + b->nops + b->nrem) * sizeof(uint64_t);
        /* the name sets: a failed add only leaves a name out of the lists */
        for (uint32_t k = 0; k < b->nsvc; k++) (void)st_set_add(&s->services, b->keys[k]);
        for (uint32_t k = 0; k < b->nops; k++) (void)st_set_add(&s->ops, b->keys[b->nsvc + k]);
        for (uint32_t k = 0; k < b->nrem; k++)
            (void)st_set_add(&s->remotes, b->keys[b->nsvc + b->nops + k]);
    }
    pthread_rwlock_unlock(&s->lock);
    if (swap) free(old.e);
    return 0;
}
