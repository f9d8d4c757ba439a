/*
 * store_int.h - the trace store's insides, shared by store.c (open, recovery, the writer,
 * retention), store_codec.c (the span record), store_index.c (interned names, the trace-id
 * index, block summaries) and store_query.c (reads and the block cache). Internal to
 * src/collector/store*.c; the design is in store.c's opening essay.
 */
#ifndef WEFT_COLLECTOR_STORE_INT_H
#define WEFT_COLLECTOR_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store.h"

/* ---- on disk ---- */

#define ST_BLOCK_MAGIC 0x31425457u /* "WTB1" little-endian */
/* A block header's last word (byte 44): flags. ST_BLK_CRC32C: its CRC is CRC-32C (written
 * since 2026-12-06; hardware-computed, core/crc32c.h); without it, zlib's crc32 (older
 * blocks, still read). */
#define ST_BLK_CRC32C 1u
#define ST_HDR_LEN    48u
/* A block's payload before compression: appends are packed into blocks up to this; one
 * append larger than it is cut at span boundaries. 128 KiB: measured against 32, 64 and
 * 256 in store.c's essay (bytes per span fall as blocks grow; a trace read decompresses
 * whole blocks, and past 128 KiB that starts to show). */
#ifndef ST_BLOCK_RAW_TARGET /* a -D may override it, for the measurements in store.c */
#define ST_BLOCK_RAW_TARGET (128u * 1024u)
#endif
/* Recovery refuses a header claiming more than this (one span record can reach
 * COL_MAX_SPAN_BYTES plus its framing, and one resource and scope ride along). */
#define ST_BLOCK_RAW_MAX (8u * 1024u * 1024u)

/* Record types inside a block's payload: [type u8][body length u32 LE][body]. */
enum { ST_REC_RESOURCE = 1, ST_REC_SCOPE = 2, ST_REC_SPAN = 3 };
#define ST_REC_HDR 5u

/* ---- growable byte buffer (the codec's output) ---- */

typedef struct st_buf_s {
    uint8_t *p;
    size_t n, cap;
    bool oom; /* a put failed: the content is incomplete */
} st_buf_t;

void st_buf_free(st_buf_t *b);
/* st_buf_reserve's slow path: grows b (doubling) to hold `more` bytes past b->n. */
bool st_buf_grow(st_buf_t *b, size_t more);
/* Room for `more` bytes past b->n; false (b->oom) when memory is out. Inline: the codec
 * calls it before every string. */
static inline bool st_buf_reserve(st_buf_t *b, size_t more)
{
    if (!b->oom && b->cap - b->n >= more) return true;
    return st_buf_grow(b, more);
}

/* ---- codec (store_codec.c) ---- */

/* Appends the records of n spans to out: a resource record when spans[i].resource differs
 * from the previous span's, a scope record likewise, then the span record. false: out of
 * memory. */
bool st_encode_spans(st_buf_t *out, const col_span_t *spans, size_t n);

/* A bounds-checked reader over a record body. */
typedef struct st_rd_s {
    const uint8_t *p, *end;
    bool bad;
} st_rd_t;

/* The fields of a span record that the indexes need, read without decoding the rest. */
typedef struct st_span_head_s {
    const uint8_t *trace_id; /* 16 bytes */
    uint64_t start_ns, end_ns;
    uint8_t kind;
    col_str_t name, remote_service;
} st_span_head_t;

bool st_read_span_head(const uint8_t *body, size_t n, st_span_head_t *h);
/* The resource record's service string (a view into body). */
bool st_read_resource_service(const uint8_t *body, size_t n, col_str_t *service);

/* Decodes a record body into a col_span_t / col_resource_t / col_scope_t whose arrays come
 * from a. copy: strings are copied into a (else they are views into body). false: malformed
 * or a is exhausted (*oom tells which). */
bool st_decode_span(const uint8_t *body, size_t n, weft_arena_t *a, bool copy, col_span_t *s,
                    bool *oom);
bool st_decode_resource(const uint8_t *body, size_t n, weft_arena_t *a, bool copy,
                        col_resource_t *r, bool *oom);
bool st_decode_scope(const uint8_t *body, size_t n, weft_arena_t *a, bool copy, col_scope_t *sc,
                     bool *oom);

/* Walks a block's payload record by record: *type, *body, *n of the next record and true,
 * false at the end or on a malformed frame (*bad then). */
bool st_next_record(const uint8_t **p, const uint8_t *end, uint8_t *type, const uint8_t **body,
                    uint32_t *n, bool *bad);

/* ---- hash sets and interned names (store_index.c) ---- */

uint64_t st_mix64(uint64_t x);

/* A set of nonzero uint64 keys, open addressing. */
typedef struct st_set_s {
    uint64_t *k;
    size_t cap, n; /* cap: 0 or a power of two */
} st_set_t;
/* 1 added, 0 already there, WEFT_ENOMEM. */
int st_set_add(st_set_t *s, uint64_t key);
bool st_set_has(const st_set_t *s, uint64_t key);
void st_set_free(st_set_t *s);

/* Interned names (services, span names, remote services) -> ids 1..; bounded: past
 * ST_INTERN_MAX names or ST_INTERN_POOL_MAX bytes, new names get id 0 ("not indexed"). */
#define ST_INTERN_MAX      ((1u << 20) - 1)
#define ST_INTERN_POOL_MAX (32u * 1024u * 1024u)
typedef struct st_intern_s {
    uint32_t *slot; /* id or 0 */
    size_t cap;     /* power of two */
    struct {
        uint32_t off, len;
    } * ent; /* by id; ent[0] unused */
    uint32_t n, ent_cap;
    char *pool;
    size_t pool_n, pool_cap;
} st_intern_t;
uint32_t st_intern_find(const st_intern_t *t, const char *p, size_t n);
/* The id of p (adding it); 0 when the bound is reached or memory is out. */
uint32_t st_intern_add(st_intern_t *t, const char *p, size_t n);
col_str_t st_intern_str(const st_intern_t *t, uint32_t id);
void st_intern_free(st_intern_t *t);
size_t st_intern_bytes(const st_intern_t *t);

/* The trace-id index: (fingerprint of the trace id, global block id) pairs in an open
 * addressing table keyed by the trace id's hash. A lookup returns a superset of the blocks
 * holding the trace (another trace can share the fingerprint); the reader filters by the
 * full id. Entries of deleted blocks (id below the first live block) are skipped and dropped
 * at the next rebuild. */
typedef struct st_tix_ent_s {
    uint32_t fp, blk;
} st_tix_ent_t;
typedef struct st_tix_s {
    st_tix_ent_t *e;
    size_t cap, n, stale;
    size_t traces; /* distinct fingerprints inserted (deleted ones counted until a rebuild) */
} st_tix_t;
uint64_t st_trace_hash(const uint8_t id[16]);
/* Inserts (h, blk) unless an equal entry is there; needs room (st_tix_room). */
void st_tix_insert(st_tix_t *t, uint64_t h, uint32_t blk);
/* Up to max block ids (>= first_live) for h into out; the count. */
size_t st_tix_lookup(const st_tix_t *t, uint64_t h, uint32_t first_live, uint32_t *out, size_t max);
/* A new table holding the live entries of t with room for `more`; *out. 0 or ENOMEM. */
int st_tix_rebuilt(const st_tix_t *t, uint32_t first_live, size_t more, st_tix_t *out);
bool st_tix_has_room(const st_tix_t *t, size_t more);

/* ---- the store ---- */

typedef struct st_seg_s {
    uint64_t seq;             /* its file is seg-<seq as 16 hex digits>.wts */
    int fd;                   /* read by queries (pread), written by the writer */
    uint64_t size;            /* bytes of whole, durable blocks */
    uint32_t first_blk, nblk; /* its blocks' global ids */
    uint64_t max_end, nspans; /* newest span end; spans in it */
    atomic_int refs;          /* 1 while listed, + 1 per read in flight */
    int wti_fd;               /* its index sidecar (the writer's, while it is current); -1 */
    uint64_t wti_size;        /* bytes of whole records in it */
} st_seg_t;

/* A block's summary: where it is and what it holds, enough to skip it in a search. */
typedef struct st_blk_s {
    st_seg_t *seg;
    uint64_t off; /* of its header */
    uint32_t clen, rlen, nspans, ntix;
    uint64_t min_start, max_start, max_end;
    uint64_t min_dur, max_dur;
    /* sorted: service ids; (svc << 32 | name << 8 | kind) for its spans' operations;
     * (svc << 32 | remote) for its remote services. One allocation: keys[0..nsvc) then
     * ops then remotes. */
    uint64_t *keys;
    uint32_t nsvc, nops, nrem;
    bool unindexed; /* a name of it had no id (intern bound): its sets are incomplete */
} st_blk_t;

/* A decompressed block in the cache. */
typedef struct st_cent_s {
    uint32_t blk;
    uint8_t *raw;
    uint32_t len;
    int refs;
    bool cached;
    uint64_t tick;
} st_cent_t;
#define ST_CACHE_N 16
/* Blocks larger than this (one giant span) are read but not cached: the cache stays under
 * ST_CACHE_N * ST_CACHE_BLOCK_MAX bytes (16 MiB). */
#define ST_CACHE_BLOCK_MAX (1024u * 1024u)

/* One append queued for the writer. */
typedef struct st_item_s {
    struct st_item_s *next;
    st_buf_t rec; /* the records */
    size_t nspans;
    col_store_done_fn done;
    void *arg;
} st_item_t;

struct col_store_s {
    col_store_conf_t conf;
    char *dir;
    uint64_t seg_max; /* a segment is rolled past this many bytes */

    /* the queue (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    st_item_t *head, *tail;
    size_t queued_bytes;
    bool closing;
    pthread_t writer;
    bool writer_started;

    /* the indexes (lock: queries read, the writer writes briefly) */
    pthread_rwlock_t lock;
    st_seg_t **segs; /* oldest first */
    size_t nseg, seg_cap;
    st_seg_t *cur; /* the segment written to; NULL: the next write starts one */
    uint64_t next_seq;
    st_blk_t *blks; /* live blocks, oldest first: global ids blk_first.. */
    uint32_t blk_first, nblk, blk_cap;
    st_tix_t tix;
    st_intern_t names;
    st_set_t services, ops, remotes; /* every (interned) one the live blocks ever held */
    uint64_t spans, disk_bytes, sets_bytes;

    /* the block cache (cache_mu) */
    pthread_mutex_t cache_mu;
    st_cent_t *cache[ST_CACHE_N];
    uint64_t cache_tick;

    /* the writer's own (no lock) */
    void *cctx; /* ZSTD_CCtx */
    uint64_t last_retention_ms;

    /* counters */
    atomic_uint_fast64_t appended, refused_full, write_errors, expired;
    atomic_size_t queued_pub; /* queued_bytes, readable without mu */
    /* record bytes per span of the last append (x16): the next append's buffer is sized
     * from it, so that encoding does not grow it by doubling (each doubling copied the
     * records so far: 3.5% of ingest's instructions) */
    atomic_size_t rec_hint16;
};

/* store_index.c: the summary of a block's payload (raw, rlen bytes): b's time range,
 * durations, key sets; the trace hashes of its spans pushed to *hashes (n, cap). Interns
 * names (taking s->lock to add one). 0, WEFT_ENOMEM, or WEFT_EPARSE (malformed payload). */
int st_blk_build(col_store_t *s, const uint8_t *raw, size_t rlen, st_blk_t *b, uint64_t **hashes,
                 size_t *nh, size_t *hcap);
/* Publishes the blocks bs[0..n) (summaries built, seg/off set) and their trace hashes, under
 * s->lock: appends them to s->blks, the trace index and the name sets. 0 or ENOMEM (then
 * nothing is published and the summaries are still the caller's). */
int st_publish(col_store_t *s, st_blk_t *bs, size_t n, const uint64_t *hashes);
void st_blk_free(st_blk_t *b);
/* The id of name n, interning it (the writer's, or open's); 0 past the bound. */
uint32_t st_name_id(col_store_t *s, col_str_t n);

/* store_query.c */
void st_seg_unref(st_seg_t *g);
void st_cache_free(col_store_t *s);

/* The wall clock in ns / ms (span times are Unix epoch). */
uint64_t st_now_ns(void);

static inline uint32_t st_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t st_le64(const uint8_t *p)
{
    return (uint64_t)st_le32(p) | (uint64_t)st_le32(p + 4) << 32;
}

/* The CRC a block's header h (its first 40 bytes) and compressed payload should carry, by
 * the kind its flags (byte 44) name. store.c. */
uint32_t st_block_crc(const uint8_t *h, const uint8_t *payload, uint32_t clen);
static inline void st_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void st_put64(uint8_t *p, uint64_t v)
{
    st_put32(p, (uint32_t)v);
    st_put32(p + 4, (uint32_t)(v >> 32));
}

#endif
