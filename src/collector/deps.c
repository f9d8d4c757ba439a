/*
 * deps.c - the service dependency graph, linked at ingest (interface: deps.h).
 *
 * What it answers. Zipkin's GET /api/v2/dependencies and Jaeger's GET /api/dependencies: the
 * edges parent-service -> child-service with their calls (and errors) over a time window.
 * Zipkin and Jaeger compute them with a batch job over stored traces (Zipkin's
 * DependencyLinker walks each trace's tree); here each span is linked as it is ingested, so
 * the graph is current to the last batch and costs no pass over the store.
 *
 * The rules: Zipkin's DependencyLinker's, applied to pairs of spans as they arrive instead
 * of to whole trace trees. A span's service is its resource's; its remote service is
 * Zipkin's remoteEndpoint.serviceName (col_span_t.remote.service) or else OTLP's
 * peer.service attribute. A span in error has status ERROR, a Zipkin "error" tag, or
 * otel.status_code "ERROR". A span with no kind (INTERNAL, UNSPECIFIED) but a remote service
 * is taken as a CLIENT (Zipkin does so).
 *   1. An RPC: a SERVER span whose parent span (the CLIENT span calling it, or whatever span
 *      of the caller was current) belongs to another service is one call parent-service ->
 *      server-service. A Zipkin shared SERVER span (same id as its client) is paired with the
 *      non-shared span of that id. The call is an error when the server span is, or the
 *      parent is a CLIENT/PRODUCER span in error (one RPC is counted once however many sides
 *      report the error).
 *   2. A parent of the same service as its SERVER child is no edge (an INTERNAL parent:
 *      local work), unless the parent is a CLIENT/PRODUCER span: a service calling itself
 *      over the network, which Zipkin draws as a loop edge.
 *   3. An uninstrumented callee: a CLIENT span with a remote service ("mysql", "redis")
 *      counts local -> remote at once, when it arrives (the graph shows the call without
 *      waiting for a server span that may never come). If a SERVER child span arrives later,
 *      it takes the call over, as Zipkin prefers the server's own name: the client's count
 *      is taken back (its call and its error) and the call counted by rule 1, so a call seen
 *      from both sides is counted once, under the server's name. A server child that
 *      arrived before its client has already counted the call, and the client then counts
 *      nothing. A CLIENT span without a remote service counts only through its server child.
 *   4. An uninstrumented caller: a root SERVER span (no parent) with a remote service
 *      counts remote -> local (Zipkin's root rule).
 *   5. Messaging (Zipkin's rules where a broker is named): a PRODUCER span with a remote
 *      service counts producer -> broker, a CONSUMER span with one counts broker ->
 *      consumer. Where neither names a broker, a CONSUMER span whose parent is a PRODUCER
 *      span counts producer -> consumer (Zipkin draws nothing then; OTLP's messaging spans
 *      rarely carry peer.service, and the edge is what a reader of the graph wants). A
 *      CONSUMER under a CLIENT span is not linked (Zipkin: the server side is authoritative).
 *      A PRODUCER's SERVER child is an RPC (rule 1).
 *   6. A CLIENT span whose parent is a non-CLIENT span of another service is a call from
 *      that service whose client span is missing (Zipkin's "missing link"): counted without
 *      error, as Zipkin does.
 *   Spans without a service name, or with a zero span id, are not linked. A span resent (the
 *   same trace id, span id and side while it is remembered: an exporter's retry) is linked
 *   once.
 *   Where this departs from Zipkin, knowingly: rule 5's producer -> consumer edge; a CLIENT
 *   span's other children (INTERNAL spans of the client library) do not cancel its own
 *   count (Zipkin drops a client span with any child); an INTERNAL span with no service
 *   name is not walked past to find the nearest named ancestor; a same-service INTERNAL
 *   parent of a SERVER span is not an edge (Zipkin would walk up to the nearest remote
 *   ancestor, which is usually of that service too, and draw a loop).
 *
 * Matching across batches. The two sides of an RPC come from two processes, in two
 * batches, in either order (servers usually export first: their spans end first). So the
 * spans are remembered in a fixed ring of max_spans entries, the oldest forgotten first,
 * with two chained hash indexes over it: by (trace id, span id, shared) to find a parent,
 * and by (trace id, the id of the parent it waits for) for children that arrived before
 * their parent. A span is linked as a child when it arrives (its parent found) or when its
 * parent arrives (it waits). A span whose partner never arrives within the ring's memory is
 * just forgotten: a CLIENT with a remote service was counted already (rule 3); a lone
 * SERVER is not counted (nothing names its caller). At 5,000 spans a second the default
 * ring remembers about 26 s: far more than an exporter's batch delay (5 s by default in the
 * OpenTelemetry SDKs).
 *
 * Time buckets. A call is counted at the start of the span that names the caller (the
 * parent of a pair; the span itself for rules 3-5), clamped to now when it is in the future
 * (clock skew). Minute buckets for the last hour (60 of them, a ring indexed by minute) and
 * hour buckets before (retention hours + 1, a ring indexed by hour): a minute bucket that
 * falls out of the last hour is folded into its hour when its slot is next needed. Zipkin's
 * own stores keep a day per bucket; a minute resolves "the last 5 minutes" and an hour a
 * week, and the memory is (60 + retention hours) buckets times the edges active in each:
 * with the defaults at most 229 x 4096 edges of 24 bytes, and with a real graph (hundreds of
 * edges) a few MiB. Each bucket's edges are a small open-addressing table (parent name id,
 * child name id) -> (calls, errors), at most max_edges of them; a call past that is counted
 * in calls_dropped.
 *
 * Names. Service names are interned (one copy each, reference-counted by the span entries
 * and bucket edges that hold them, freed when the last goes) in a table of at most max_names,
 * each at most COL_DEPS_NAME_MAX bytes: memory stays bounded whatever names arrive.
 *
 * The file (col_deps_save/col_deps_load; the daemon keeps it in its data directory so a
 * restart keeps the graph). Little-endian:
 *   "WEFTDEPS", u32 version (1), u32 names, names x (u16 length, bytes),
 *   u32 buckets, buckets x (u8 tier: 0 minute / 1 hour, u64 minute or hour since the epoch,
 *   u32 edges, edges x (u32 parent name, u32 child name, u64 calls, u64 errors)),
 *   u32 CRC-32 (zlib's) of everything before it.
 * It is written to a temporary file beside it, synced and renamed over, then the directory
 * is synced: a crash leaves the old file or the new one. Load checks everything (the CRC,
 * every length and index, errors <= calls, nothing after the end) before it adds anything,
 * so a damaged file is reported and ignored as a whole.
 *
 * Threads. One mutex over everything, taken once per col_deps_add batch, per query, and
 * twice per save (to measure, then to copy); the file is built and written without it.
 * Allocation under it is only the growth of a bucket's table or a new name (rare).
 *
 * Memory policy: out of memory never aborts; what could not be allocated is counted as
 * dropped (calls_dropped, names_dropped) and the query and save return WEFT_ENOMEM.
 */
#include "collector/deps.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/errbuf.h"
#include "weft/common.h"

#define NONE      UINT32_MAX
#define MINUTE_MS 60000u
#define FINE      60u /* minute buckets: the last hour */

#define DEPS_MAGIC    "WEFTDEPS"
#define DEPS_VERSION  1u
#define DEPS_FILE_MAX (1024u * 1024u * 1024u) /* refuse to read more */

enum { F_LIVE = 1, F_ERR = 2, F_SHARED = 4, F_COUNTED = 8, F_WAITING = 16 };

/* A remembered span: what matching needs of it. */
typedef struct ent_s {
    uint8_t trace[16], id[8], parent[8];
    uint32_t svc, rs;            /* name ids; rs NONE: no remote service */
    uint32_t minute;             /* its start, minutes since the epoch, clamped to now */
    uint32_t next_id, next_wait; /* the two indexes' chains */
    uint8_t kind;                /* COL_KIND_*; a kindless span with a remote service: CLIENT */
    uint8_t flags;               /* F_* */
} ent_t;

typedef struct edge_s {
    uint32_t parent, child; /* name ids; parent NONE: a free slot */
    uint64_t calls, errors;
} edge_t;

typedef struct bucket_s {
    uint64_t index; /* minutes (fine) or hours since the epoch */
    edge_t *edges;  /* open addressing, cap a power of two, at most 3/4 full */
    uint32_t cap, n;
    bool used;
} bucket_t;

typedef struct name_s {
    char *s;
    uint32_t n, refs, hash;
    uint32_t next; /* the hash chain while used, the free list while not */
} name_t;

struct col_deps_s {
    pthread_mutex_t mu;
    uint64_t (*now_ms)(void *);
    void *now_arg;
    size_t max_edges;
    uint32_t hours;     /* hour buckets: retention hours + 1 */
    uint64_t now_min;   /* the current call's clock (under mu) */
    uint64_t swept_min; /* when expire last ran */

    ent_t *ents;
    uint32_t nents, ring_next, live;
    uint32_t *heads_id, *heads_wait, mask;

    name_t *names;
    uint32_t names_cap, names_hi, free_name, nnames;
    uint32_t *heads_name, name_mask;

    bucket_t fine[FINE];
    bucket_t *hour;

    uint64_t evicted, calls_dropped, names_dropped, too_old;
};

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t key_hash(const uint8_t trace[16], const uint8_t id[8])
{
    return (uint32_t)mix64(load64(trace) ^ mix64(load64(trace + 8) ^ mix64(load64(id))));
}

static uint32_t str_hash(const char *p, uint32_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

/* ---- names ---- */

/* The id of name (p, n) with one more reference for the caller, or NONE (too long, the
 * table full, out of memory). */
static uint32_t name_get(col_deps_t *d, const char *p, uint32_t n)
{
    if (n == 0 || n > COL_DEPS_NAME_MAX) return NONE;
    uint32_t h = str_hash(p, n);
    uint32_t *head = &d->heads_name[h & d->name_mask];
    for (uint32_t i = *head; i != NONE; i = d->names[i].next) {
        name_t *nm = &d->names[i];
        if (nm->hash == h && nm->n == n && memcmp(nm->s, p, n) == 0) {
            nm->refs++;
            return i;
        }
    }
    if (d->free_name == NONE && d->names_hi == d->names_cap) return NONE;
    char *s = malloc(n + 1);
    if (!s) return NONE;
    memcpy(s, p, n);
    s[n] = '\0';
    uint32_t id;
    if (d->free_name != NONE) {
        id = d->free_name;
        d->free_name = d->names[id].next;
    } else {
        id = d->names_hi++;
    }
    d->names[id] = (name_t){.s = s, .n = n, .refs = 1, .hash = h, .next = *head};
    *head = id;
    d->nnames++;
    return id;
}

static void name_ref(col_deps_t *d, uint32_t id)
{
    if (id != NONE) d->names[id].refs++;
}

static void name_put(col_deps_t *d, uint32_t id)
{
    if (id == NONE) return;
    name_t *nm = &d->names[id];
    if (--nm->refs > 0) return;
    uint32_t *pp = &d->heads_name[nm->hash & d->name_mask];
    while (*pp != id) pp = &d->names[*pp].next;
    *pp = nm->next;
    free(nm->s);
    nm->s = NULL;
    nm->next = d->free_name;
    d->free_name = id;
    d->nnames--;
}

/* ---- buckets and their edges ---- */

static uint32_t edge_slot(uint32_t p, uint32_t c, uint32_t cap)
{
    return (uint32_t)mix64(((uint64_t)p << 32) | c) & (cap - 1);
}

static edge_t *edge_find(bucket_t *b, uint32_t p, uint32_t c)
{
    if (b->cap == 0) return NULL;
    for (uint32_t i = edge_slot(p, c, b->cap);; i = (i + 1) & (b->cap - 1)) {
        edge_t *e = &b->edges[i];
        if (e->parent == NONE) return NULL;
        if (e->parent == p && e->child == c) return e;
    }
}

static bool bucket_grow(bucket_t *b)
{
    uint32_t cap = b->cap ? b->cap * 2 : 8;
    edge_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return false;
    for (uint32_t i = 0; i < cap; i++) t[i].parent = NONE;
    for (uint32_t i = 0; i < b->cap; i++) {
        edge_t *e = &b->edges[i];
        if (e->parent == NONE) continue;
        uint32_t j = edge_slot(e->parent, e->child, cap);
        while (t[j].parent != NONE) j = (j + 1) & (cap - 1);
        t[j] = *e;
    }
    free(b->edges);
    b->edges = t;
    b->cap = cap;
    return true;
}

/* The edge p -> c of b, created (holding its names) if missing; NULL at max_edges or out of
 * memory. */
static edge_t *edge_add(col_deps_t *d, bucket_t *b, uint32_t p, uint32_t c)
{
    edge_t *e = edge_find(b, p, c);
    if (e) return e;
    if (b->n >= d->max_edges) return NULL;
    if (((uint64_t)b->n + 1) * 4 > (uint64_t)b->cap * 3 && !bucket_grow(b)) return NULL;
    uint32_t i = edge_slot(p, c, b->cap);
    while (b->edges[i].parent != NONE) i = (i + 1) & (b->cap - 1);
    e = &b->edges[i];
    *e = (edge_t){.parent = p, .child = c};
    b->n++;
    name_ref(d, p);
    name_ref(d, c);
    return e;
}

static void bucket_reset(col_deps_t *d, bucket_t *b)
{
    for (uint32_t i = 0; i < b->cap; i++) {
        if (b->edges[i].parent == NONE) continue;
        name_put(d, b->edges[i].parent);
        name_put(d, b->edges[i].child);
    }
    free(b->edges);
    memset(b, 0, sizeof *b);
}

/* The bucket of hour h: NULL when h is out of the retention (or, without create, when it
 * holds nothing). */
static bucket_t *hour_bucket(col_deps_t *d, uint64_t h, bool create)
{
    uint64_t now_h = d->now_min / 60;
    if (h > now_h || h + (d->hours - 1) < now_h) return NULL;
    bucket_t *b = &d->hour[h % d->hours];
    if (b->used && b->index == h) return b;
    if (!create) return NULL;
    if (b->used) {
        if (b->index > h) return NULL; /* the clock went back: the slot holds a later hour */
        bucket_reset(d, b);            /* an expired hour */
    }
    b->used = true;
    b->index = h;
    return b;
}

static void add_counts(col_deps_t *d, int tier, uint64_t index, uint32_t p, uint32_t c,
                       uint64_t calls, uint64_t errors);

/* The minute bucket of minute m when m is in the last hour (its slot's older minute folded
 * into its hour first), else NULL; without create, m's bucket only if it holds m. */
static bucket_t *fine_bucket(col_deps_t *d, uint64_t m, bool create)
{
    bucket_t *b = &d->fine[m % FINE];
    if (b->used && b->index == m) return b;
    if (!create || m + FINE <= d->now_min) return NULL;
    if (b->used) {
        if (b->index > m) return NULL;
        /* fold the old minute into its hour, then take the slot */
        for (uint32_t i = 0; i < b->cap; i++) {
            edge_t *e = &b->edges[i];
            if (e->parent != NONE && e->calls > 0)
                add_counts(d, 1, b->index / 60, e->parent, e->child, e->calls, e->errors);
        }
        bucket_reset(d, b);
    }
    b->used = true;
    b->index = m;
    return b;
}

/* Adds calls and errors to p -> c in the bucket of (tier 0: minute, 1: hour) index. */
static void add_counts(col_deps_t *d, int tier, uint64_t index, uint32_t p, uint32_t c,
                       uint64_t calls, uint64_t errors)
{
    if (p == NONE || c == NONE || calls == 0) return;
    bucket_t *b;
    if (tier == 0) {
        if (index > d->now_min) index = d->now_min;
        b = fine_bucket(d, index, true);
        if (!b) b = hour_bucket(d, index / 60, true);
    } else {
        if (index > d->now_min / 60) index = d->now_min / 60;
        b = hour_bucket(d, index, true);
    }
    if (!b) {
        d->too_old = sat_add(d->too_old, calls);
        return;
    }
    edge_t *e = edge_add(d, b, p, c);
    if (!e) {
        d->calls_dropped = sat_add(d->calls_dropped, calls);
        return;
    }
    e->calls = sat_add(e->calls, calls);
    e->errors = sat_add(e->errors, errors);
}

static void count(col_deps_t *d, uint64_t minute, uint32_t p, uint32_t c, bool err)
{
    add_counts(d, 0, minute, p, c, 1, err ? 1 : 0);
}

/* Takes back one call counted by count(d, minute, p, c, err), wherever it went since (its
 * minute, or that minute's hour); nothing if it was not kept (dropped, or expired). */
static void uncount(col_deps_t *d, uint64_t minute, uint32_t p, uint32_t c, bool err)
{
    bucket_t *b = fine_bucket(d, minute, false);
    edge_t *e = b ? edge_find(b, p, c) : NULL;
    if (!e || e->calls == 0) {
        b = hour_bucket(d, minute / 60, false);
        e = b ? edge_find(b, p, c) : NULL;
    }
    if (!e || e->calls == 0) return;
    e->calls--;
    if (err && e->errors > 0) e->errors--;
}

/* ---- remembered spans ---- */

static bool is_zero8(const uint8_t id[8])
{
    return load64(id) == 0;
}

static const uint8_t *wait_key(const ent_t *e)
{
    return (e->flags & F_SHARED) ? e->id : e->parent;
}

static ent_t *ent_find(col_deps_t *d, const uint8_t trace[16], const uint8_t id[8], bool shared)
{
    for (uint32_t i = d->heads_id[key_hash(trace, id) & d->mask]; i != NONE;
         i = d->ents[i].next_id) {
        ent_t *e = &d->ents[i];
        if (((e->flags & F_SHARED) != 0) == shared && memcmp(e->id, id, 8) == 0 &&
            memcmp(e->trace, trace, 16) == 0)
            return e;
    }
    return NULL;
}

static void unlink_chain(col_deps_t *d, uint32_t *head, uint32_t idx, bool wait)
{
    uint32_t *pp = head;
    while (*pp != NONE && *pp != idx) pp = wait ? &d->ents[*pp].next_wait : &d->ents[*pp].next_id;
    if (*pp == idx) *pp = wait ? d->ents[idx].next_wait : d->ents[idx].next_id;
}

static void ent_evict(col_deps_t *d, uint32_t idx)
{
    ent_t *e = &d->ents[idx];
    unlink_chain(d, &d->heads_id[key_hash(e->trace, e->id) & d->mask], idx, false);
    if (e->flags & F_WAITING)
        unlink_chain(d, &d->heads_wait[key_hash(e->trace, wait_key(e)) & d->mask], idx, true);
    name_put(d, e->svc);
    name_put(d, e->rs);
    e->flags = 0;
    d->live--;
    d->evicted++;
}

static void ent_wait(col_deps_t *d, uint32_t idx)
{
    ent_t *e = &d->ents[idx];
    uint32_t *head = &d->heads_wait[key_hash(e->trace, wait_key(e)) & d->mask];
    e->next_wait = *head;
    *head = idx;
    e->flags |= F_WAITING;
}

/* Links parent p and child c per the rules (see the top of the file). false: c does not
 * take p as its parent (a CLIENT under a CLIENT/PRODUCER of the same id: likely the other
 * side of a shared span id) and should keep waiting. */
static bool link_pair(col_deps_t *d, ent_t *p, ent_t *c)
{
    bool caller = p->kind == COL_KIND_CLIENT || p->kind == COL_KIND_PRODUCER;
    switch (c->kind) {
    case COL_KIND_SERVER: {
        if (p->svc == c->svc && !caller) return true; /* local work, not a call */
        bool err = (c->flags & F_ERR) || (caller && (p->flags & F_ERR));
        if (p->flags & F_COUNTED) { /* rule 3: the server's side takes the call over */
            p->flags &= (uint8_t)~F_COUNTED;
            uncount(d, p->minute, p->svc, p->rs, p->flags & F_ERR);
        }
        count(d, p->minute, p->svc, c->svc, err);
        return true;
    }
    case COL_KIND_CONSUMER:
        if (p->kind == COL_KIND_PRODUCER && p->rs == NONE)
            count(d, p->minute, p->svc, c->svc, ((p->flags | c->flags) & F_ERR) != 0);
        return true;
    case COL_KIND_CLIENT:
        if (caller) return false;
        if (p->svc != c->svc) count(d, p->minute, p->svc, c->svc, false); /* rule 6 */
        return true;
    default:
        return true;
    }
}

/* Links the children waiting for span idx; returns how many were SERVER spans. */
static unsigned adopt(col_deps_t *d, uint32_t idx)
{
    ent_t *p = &d->ents[idx];
    unsigned servers = 0;
    uint32_t *pp = &d->heads_wait[key_hash(p->trace, p->id) & d->mask];
    while (*pp != NONE) {
        uint32_t ci = *pp;
        ent_t *c = &d->ents[ci];
        /* a shared server waits for the non-shared span of its id, not for another shared */
        if (ci == idx || memcmp(wait_key(c), p->id, 8) != 0 ||
            memcmp(c->trace, p->trace, 16) != 0 || ((c->flags & p->flags) & F_SHARED) ||
            !link_pair(d, p, c)) {
            pp = &c->next_wait;
            continue;
        }
        *pp = c->next_wait;
        c->flags &= (uint8_t)~F_WAITING;
        if (c->kind == COL_KIND_SERVER) servers++;
    }
    return servers;
}

static bool attr_key_is(const col_attr_t *a, const char *key, size_t n)
{
    return col_str_eq(a->key, key, n);
}

static col_str_t remote_service(const col_span_t *s)
{
    if (s->remote.service.n > 0) return s->remote.service;
    for (uint32_t i = 0; i < s->nattrs; i++) {
        const col_attr_t *a = &s->attrs[i];
        if (a->type == COL_V_STRING && attr_key_is(a, "peer.service", 12)) return a->v.s;
    }
    return (col_str_t){0};
}

static bool span_error(const col_span_t *s)
{
    if (s->status == COL_STATUS_ERROR) return true;
    for (uint32_t i = 0; i < s->nattrs; i++) {
        const col_attr_t *a = &s->attrs[i];
        if (attr_key_is(a, "error", 5)) return true;
        if (a->type == COL_V_STRING && attr_key_is(a, "otel.status_code", 16) &&
            col_str_eq(a->v.s, "ERROR", 5))
            return true;
    }
    return false;
}

/* The kind a span is linked as: a kindless span with a remote service is a CLIENT. */
static uint8_t span_kind(const col_span_t *s)
{
    uint8_t kind = s->kind > COL_KIND_CONSUMER ? COL_KIND_UNSPECIFIED : s->kind;
    if ((kind == COL_KIND_INTERNAL || kind == COL_KIND_UNSPECIFIED) && remote_service(s).n > 0)
        kind = COL_KIND_CLIENT;
    return kind;
}

static void add_span(col_deps_t *d, const col_span_t *s)
{
    if (is_zero8(s->span_id) || !s->resource || s->resource->service.n == 0) return;
    bool shared = s->shared && s->kind == COL_KIND_SERVER;
    const ent_t *same = ent_find(d, s->trace_id, s->span_id, shared);
    if (same && same->kind == span_kind(s)) return; /* a resend */

    /* the ring's next slot first: the names it frees may be what this span needs */
    uint32_t idx = d->ring_next;
    d->ring_next = d->ring_next + 1 == d->nents ? 0 : d->ring_next + 1;
    if (d->ents[idx].flags & F_LIVE) ent_evict(d, idx);

    col_str_t rs = remote_service(s);
    uint8_t kind = span_kind(s);
    uint32_t svc = name_get(d, s->resource->service.p, s->resource->service.n);
    if (svc == NONE) {
        d->names_dropped++;
        return;
    }
    uint32_t rsid = NONE;
    if (rs.n > 0 && (rsid = name_get(d, rs.p, rs.n)) == NONE) d->names_dropped++;

    uint64_t minute = s->start_ns / 1000000 / MINUTE_MS;
    if (s->start_ns == 0 || minute > d->now_min) minute = d->now_min;

    ent_t *e = &d->ents[idx];
    memcpy(e->trace, s->trace_id, 16);
    memcpy(e->id, s->span_id, 8);
    memcpy(e->parent, s->parent_id, 8);
    e->svc = svc;
    e->rs = rsid;
    e->minute = (uint32_t)minute;
    e->kind = kind;
    e->flags = (uint8_t)(F_LIVE | (shared ? F_SHARED : 0) | (span_error(s) ? F_ERR : 0));
    uint32_t *head = &d->heads_id[key_hash(e->trace, e->id) & d->mask];
    e->next_id = *head;
    *head = idx;
    e->next_wait = NONE;
    d->live++;
    bool err = e->flags & F_ERR;

    /* rules 4 and 5: the span alone names both sides */
    if (rsid != NONE) {
        if (kind == COL_KIND_SERVER && !shared && is_zero8(e->parent))
            count(d, minute, rsid, svc, err);
        else if (kind == COL_KIND_CONSUMER)
            count(d, minute, rsid, svc, err);
        else if (kind == COL_KIND_PRODUCER)
            count(d, minute, svc, rsid, err);
    }

    /* as a child: linked now if its parent is remembered, else when the parent arrives */
    bool child;
    if (shared)
        child = true;
    else if (is_zero8(e->parent))
        child = false;
    else
        child = kind == COL_KIND_SERVER || kind == COL_KIND_CLIENT ||
                (kind == COL_KIND_CONSUMER && rsid == NONE);
    if (child) {
        ent_t *p;
        if (shared) {
            p = ent_find(d, e->trace, e->id, false);
        } else { /* a shared id's children belong to its server side */
            p = ent_find(d, e->trace, e->parent, true);
            if (!p) p = ent_find(d, e->trace, e->parent, false);
        }
        if (!p || !link_pair(d, p, e)) ent_wait(d, idx);
    }

    /* as a parent; then rule 3 when no server child has taken the call */
    unsigned servers = adopt(d, idx);
    if (kind == COL_KIND_CLIENT && rsid != NONE && servers == 0) {
        count(d, minute, svc, rsid, err);
        e->flags |= F_COUNTED;
    }
}

/* ---- the public functions ---- */

static uint64_t real_now_ms(void *arg)
{
    (void)arg;
    return weft_wall_ns() / 1000000;
}

void col_deps_conf_init(col_deps_conf_t *c)
{
    *c = (col_deps_conf_t){
        .max_spans = 131072,
        .max_edges = 4096,
        .max_names = 16384,
        .retention_ms = 7ull * 24 * 3600 * 1000,
    };
}

int col_deps_new(const col_deps_conf_t *conf, col_deps_t **out)
{
    col_deps_conf_t defaults;
    if (!conf) {
        col_deps_conf_init(&defaults);
        conf = &defaults;
    }
    *out = NULL;
    const uint64_t hour_ms = 3600000;
    if (conf->max_spans < 2 || conf->max_spans > (1u << 26) || conf->max_edges < 1 ||
        conf->max_edges > (1u << 24) || conf->max_names < 2 || conf->max_names > (1u << 24) ||
        conf->retention_ms < hour_ms || conf->retention_ms > 366 * 24 * hour_ms)
        return WEFT_EINVAL;
    col_deps_t *d = calloc(1, sizeof *d);
    if (!d) return WEFT_ENOMEM;
    d->now_ms = conf->now_ms ? conf->now_ms : real_now_ms;
    d->now_arg = conf->now_arg;
    d->max_edges = conf->max_edges;
    d->hours = (uint32_t)((conf->retention_ms + hour_ms - 1) / hour_ms) + 1;
    d->nents = (uint32_t)conf->max_spans;
    uint32_t heads = pow2_at_least(conf->max_spans);
    d->mask = heads - 1;
    d->names_cap = (uint32_t)conf->max_names;
    uint32_t name_heads = pow2_at_least(conf->max_names);
    d->name_mask = name_heads - 1;
    d->free_name = NONE;
    d->ents = calloc(d->nents, sizeof *d->ents);
    d->heads_id = malloc((size_t)heads * sizeof(uint32_t));
    d->heads_wait = malloc((size_t)heads * sizeof(uint32_t));
    d->names = calloc(d->names_cap, sizeof *d->names);
    d->heads_name = malloc((size_t)name_heads * sizeof(uint32_t));
    d->hour = calloc(d->hours, sizeof *d->hour);
    if (!d->ents || !d->heads_id || !d->heads_wait || !d->names || !d->heads_name || !d->hour ||
        pthread_mutex_init(&d->mu, NULL) != 0) {
        free(d->ents);
        free(d->heads_id);
        free(d->heads_wait);
        free(d->names);
        free(d->heads_name);
        free(d->hour);
        free(d);
        return WEFT_ENOMEM;
    }
    memset(d->heads_id, 0xff, (size_t)heads * sizeof(uint32_t));
    memset(d->heads_wait, 0xff, (size_t)heads * sizeof(uint32_t));
    memset(d->heads_name, 0xff, (size_t)name_heads * sizeof(uint32_t));
    *out = d;
    return 0;
}

void col_deps_free(col_deps_t *d)
{
    if (!d) return;
    for (uint32_t i = 0; i < FINE; i++) free(d->fine[i].edges);
    for (uint32_t i = 0; i < d->hours; i++) free(d->hour[i].edges);
    for (uint32_t i = 0; i < d->names_hi; i++) free(d->names[i].s);
    free(d->ents);
    free(d->heads_id);
    free(d->heads_wait);
    free(d->names);
    free(d->heads_name);
    free(d->hour);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Frees the buckets past the retention (and the names only they held), once a minute. */
static void expire(col_deps_t *d)
{
    if (d->now_min == d->swept_min) return;
    d->swept_min = d->now_min;
    uint64_t now_h = d->now_min / 60;
    uint64_t oldest = now_h >= d->hours - 1 ? now_h - (d->hours - 1) : 0;
    for (uint32_t i = 0; i < FINE; i++)
        if (d->fine[i].used && d->fine[i].index / 60 < oldest) bucket_reset(d, &d->fine[i]);
    for (uint32_t i = 0; i < d->hours; i++)
        if (d->hour[i].used && d->hour[i].index < oldest) bucket_reset(d, &d->hour[i]);
}

void col_deps_add(col_deps_t *d, const col_span_t *spans, size_t n)
{
    if (n == 0) return;
    pthread_mutex_lock(&d->mu);
    d->now_min = d->now_ms(d->now_arg) / MINUTE_MS;
    expire(d);
    for (size_t i = 0; i < n; i++) add_span(d, &spans[i]);
    pthread_mutex_unlock(&d->mu);
}

/* Whether bucket b (tier 0: minute, 1: hour) is within the retention and overlaps
 * [from, to] (ms). */
static bool bucket_in(const col_deps_t *d, const bucket_t *b, int tier, uint64_t from, uint64_t to)
{
    if (!b->used) return false;
    uint64_t width = tier == 0 ? MINUTE_MS : 60ull * MINUTE_MS;
    uint64_t start = b->index * width;
    uint64_t oldest_h = d->now_min / 60 >= d->hours - 1 ? d->now_min / 60 - (d->hours - 1) : 0;
    uint64_t hour = tier == 0 ? b->index / 60 : b->index;
    return hour >= oldest_h && start <= to && start + width > from;
}

typedef struct agg_s {
    uint32_t parent, child; /* parent NONE: free */
    uint64_t calls, errors;
} agg_t;

static int link_cmp(const void *x, const void *y)
{
    const col_dep_link_t *a = x, *b = y;
    const col_str_t *sa[2] = {&a->parent, &a->child}, *sb[2] = {&b->parent, &b->child};
    for (int i = 0; i < 2; i++) {
        uint32_t n = sa[i]->n < sb[i]->n ? sa[i]->n : sb[i]->n;
        int r = memcmp(sa[i]->p, sb[i]->p, n);
        if (r != 0) return r;
        if (sa[i]->n != sb[i]->n) return sa[i]->n < sb[i]->n ? -1 : 1;
    }
    return 0;
}

int col_deps_links(col_deps_t *d, uint64_t end_ms, uint64_t lookback_ms, weft_arena_t *a,
                   col_dep_link_t **links, size_t *n)
{
    *links = NULL;
    *n = 0;
    uint64_t from = lookback_ms > end_ms ? 0 : end_ms - lookback_ms;
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    d->now_min = d->now_ms(d->now_arg) / MINUTE_MS;
    size_t total = 0;
    for (uint32_t i = 0; i < FINE; i++)
        if (bucket_in(d, &d->fine[i], 0, from, end_ms)) total += d->fine[i].n;
    for (uint32_t i = 0; i < d->hours; i++)
        if (bucket_in(d, &d->hour[i], 1, from, end_ms)) total += d->hour[i].n;
    if (total == 0) goto out;

    uint32_t cap = pow2_at_least((uint64_t)total * 2);
    agg_t *agg = weft_arena_alloc(a, (size_t)cap * sizeof *agg);
    if (!agg) {
        rc = WEFT_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < cap; i++) agg[i].parent = NONE;
    size_t distinct = 0;
    for (uint32_t t = 0; t < FINE + d->hours; t++) {
        bucket_t *b = t < FINE ? &d->fine[t] : &d->hour[t - FINE];
        if (!bucket_in(d, b, t < FINE ? 0 : 1, from, end_ms)) continue;
        for (uint32_t i = 0; i < b->cap; i++) {
            const edge_t *e = &b->edges[i];
            if (e->parent == NONE || e->calls == 0) continue;
            uint32_t j = edge_slot(e->parent, e->child, cap);
            while (agg[j].parent != NONE &&
                   (agg[j].parent != e->parent || agg[j].child != e->child))
                j = (j + 1) & (cap - 1);
            if (agg[j].parent == NONE) {
                agg[j] = (agg_t){.parent = e->parent, .child = e->child};
                distinct++;
            }
            agg[j].calls = sat_add(agg[j].calls, e->calls);
            agg[j].errors = sat_add(agg[j].errors, e->errors);
        }
    }
    if (distinct == 0) goto out;
    col_dep_link_t *l = weft_arena_alloc(a, distinct * sizeof *l);
    if (!l) {
        rc = WEFT_ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (uint32_t j = 0; j < cap; j++) {
        if (agg[j].parent == NONE) continue;
        const name_t *pn = &d->names[agg[j].parent], *cn = &d->names[agg[j].child];
        char *ps = weft_arena_strndup(a, pn->s, pn->n);
        char *cs = weft_arena_strndup(a, cn->s, cn->n);
        if (!ps || !cs) {
            rc = WEFT_ENOMEM;
            goto out;
        }
        l[k++] = (col_dep_link_t){.parent = {ps, pn->n},
                                  .child = {cs, cn->n},
                                  .calls = agg[j].calls,
                                  .errors = agg[j].errors};
    }
    *links = l;
    *n = k;
out:
    pthread_mutex_unlock(&d->mu);
    if (rc == 0 && *n > 1) qsort(*links, *n, sizeof **links, link_cmp);
    return rc;
}

void col_deps_stats(col_deps_t *d, col_deps_stats_t *st)
{
    pthread_mutex_lock(&d->mu);
    *st = (col_deps_stats_t){.spans = d->live,
                             .names = d->nnames,
                             .evicted = d->evicted,
                             .calls_dropped = d->calls_dropped,
                             .names_dropped = d->names_dropped,
                             .too_old = d->too_old};
    for (uint32_t t = 0; t < FINE + d->hours; t++) {
        const bucket_t *b = t < FINE ? &d->fine[t] : &d->hour[t - FINE];
        if (!b->used) continue;
        st->buckets++;
        st->edges += b->n;
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- save ---- */

typedef struct snap_bucket_s {
    uint8_t tier;
    uint64_t index;
    uint32_t first, n; /* its edges in snap.edges */
} snap_bucket_t;

typedef struct snap_s {
    edge_t *edges;
    snap_bucket_t *buckets;
    uint32_t *name_off, *name_len; /* by name id, into blob; name_len 0: no such name */
    char *blob;
    size_t nedges, nbuckets, nnames, blob_len;          /* used */
    size_t cap_edges, cap_buckets, cap_names, cap_blob; /* allocated */
} snap_t;

static void snap_free(snap_t *s)
{
    free(s->edges);
    free(s->buckets);
    free(s->name_off);
    free(s->name_len);
    free(s->blob);
    memset(s, 0, sizeof *s);
}

/* What a snapshot of d needs (under d->mu). */
static void snap_measure(col_deps_t *d, size_t *edges, size_t *buckets, size_t *names, size_t *blob)
{
    *edges = *buckets = 0;
    for (uint32_t t = 0; t < FINE + d->hours; t++) {
        const bucket_t *b = t < FINE ? &d->fine[t] : &d->hour[t - FINE];
        if (!bucket_in(d, b, t < FINE ? 0 : 1, 0, UINT64_MAX)) continue;
        (*buckets)++;
        *edges += b->n;
    }
    *names = d->names_hi;
    *blob = 0;
    for (uint32_t i = 0; i < d->names_hi; i++)
        if (d->names[i].s) *blob += d->names[i].n;
}

/* Copies d into s if it fits what s has room for (under d->mu); false if not. */
static bool snap_copy(col_deps_t *d, snap_t *s)
{
    size_t e, b, nm, bl;
    snap_measure(d, &e, &b, &nm, &bl);
    if (e > s->cap_edges || b > s->cap_buckets || nm > s->cap_names || bl > s->cap_blob)
        return false;
    s->nedges = s->nbuckets = s->blob_len = 0;
    s->nnames = nm;
    for (uint32_t t = 0; t < FINE + d->hours; t++) {
        const bucket_t *bk = t < FINE ? &d->fine[t] : &d->hour[t - FINE];
        if (!bucket_in(d, bk, t < FINE ? 0 : 1, 0, UINT64_MAX)) continue;
        snap_bucket_t *sb = &s->buckets[s->nbuckets++];
        *sb = (snap_bucket_t){
            .tier = t < FINE ? 0 : 1, .index = bk->index, .first = (uint32_t)s->nedges};
        for (uint32_t i = 0; i < bk->cap; i++)
            if (bk->edges[i].parent != NONE && bk->edges[i].calls > 0)
                s->edges[s->nedges++] = bk->edges[i];
        sb->n = (uint32_t)(s->nedges - sb->first);
    }
    for (uint32_t i = 0; i < nm; i++) {
        const name_t *n = &d->names[i];
        s->name_len[i] = n->s ? n->n : 0;
        s->name_off[i] = (uint32_t)s->blob_len;
        if (n->s) {
            memcpy(s->blob + s->blob_len, n->s, n->n);
            s->blob_len += n->n;
        }
    }
    return true;
}

static int snap_take(col_deps_t *d, snap_t *s)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        size_t e, b, nm, bl;
        pthread_mutex_lock(&d->mu);
        d->now_min = d->now_ms(d->now_arg) / MINUTE_MS;
        snap_measure(d, &e, &b, &nm, &bl);
        pthread_mutex_unlock(&d->mu);
        /* room for what arrives between the two looks */
        snap_free(s);
        s->cap_edges = e + e / 4 + 64;
        s->cap_buckets = b + 8;
        s->cap_names = nm + nm / 4 + 64;
        s->cap_blob = bl + bl / 4 + 4096;
        s->edges = malloc(s->cap_edges * sizeof *s->edges);
        s->buckets = malloc(s->cap_buckets * sizeof *s->buckets);
        s->name_off = malloc(s->cap_names * sizeof(uint32_t));
        s->name_len = malloc(s->cap_names * sizeof(uint32_t));
        s->blob = malloc(s->cap_blob);
        if (!s->edges || !s->buckets || !s->name_off || !s->name_len || !s->blob) {
            snap_free(s);
            return WEFT_ENOMEM;
        }
        pthread_mutex_lock(&d->mu);
        d->now_min = d->now_ms(d->now_arg) / MINUTE_MS;
        bool ok = snap_copy(d, s);
        pthread_mutex_unlock(&d->mu);
        if (ok) return 0;
    }
    snap_free(s);
    return WEFT_EAGAIN;
}

typedef struct wbuf_s {
    uint8_t *p;
    size_t n;
} wbuf_t;

static void put_u8(wbuf_t *w, uint8_t v)
{
    w->p[w->n++] = v;
}
static void put_u16(wbuf_t *w, uint16_t v)
{
    for (int i = 0; i < 2; i++) w->p[w->n++] = (uint8_t)(v >> (8 * i));
}
static void put_u32(wbuf_t *w, uint32_t v)
{
    for (int i = 0; i < 4; i++) w->p[w->n++] = (uint8_t)(v >> (8 * i));
}
static void put_u64(wbuf_t *w, uint64_t v)
{
    for (int i = 0; i < 8; i++) w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

/* The file's bytes for snapshot s, in *out (malloc'd). */
static int snap_encode(const snap_t *s, uint8_t **out, size_t *outlen)
{
    /* names referenced by the edges, numbered densely in order of first use */
    uint32_t *map = malloc((s->nnames ? s->nnames : 1) * sizeof(uint32_t));
    if (!map) return WEFT_ENOMEM;
    memset(map, 0xff, (s->nnames ? s->nnames : 1) * sizeof(uint32_t));
    uint32_t used = 0;
    size_t size = 8 + 4 + 4 + 4 + 4, nbuckets = 0;
    for (size_t i = 0; i < s->nedges; i++) {
        uint32_t ids[2] = {s->edges[i].parent, s->edges[i].child};
        for (int k = 0; k < 2; k++) {
            if (map[ids[k]] != NONE) continue;
            map[ids[k]] = used++;
            size += 2 + s->name_len[ids[k]];
        }
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        if (s->buckets[i].n == 0) continue;
        nbuckets++;
        size += 1 + 8 + 4 + (size_t)s->buckets[i].n * 24;
    }
    wbuf_t w = {.p = malloc(size)};
    if (!w.p) {
        free(map);
        return WEFT_ENOMEM;
    }
    memcpy(w.p, DEPS_MAGIC, 8);
    w.n = 8;
    put_u32(&w, DEPS_VERSION);
    put_u32(&w, used);
    /* names in dense order: walk the ids, place each at its number */
    uint32_t *order = malloc((used ? used : 1) * sizeof(uint32_t));
    if (!order) {
        free(map);
        free(w.p);
        return WEFT_ENOMEM;
    }
    for (uint32_t i = 0; i < s->nnames; i++)
        if (map[i] != NONE) order[map[i]] = i;
    for (uint32_t k = 0; k < used; k++) {
        uint32_t id = order[k];
        put_u16(&w, (uint16_t)s->name_len[id]);
        memcpy(w.p + w.n, s->blob + s->name_off[id], s->name_len[id]);
        w.n += s->name_len[id];
    }
    free(order);
    put_u32(&w, (uint32_t)nbuckets);
    for (size_t i = 0; i < s->nbuckets; i++) {
        const snap_bucket_t *b = &s->buckets[i];
        if (b->n == 0) continue;
        put_u8(&w, b->tier);
        put_u64(&w, b->index);
        put_u32(&w, b->n);
        for (uint32_t j = 0; j < b->n; j++) {
            const edge_t *e = &s->edges[b->first + j];
            put_u32(&w, map[e->parent]);
            put_u32(&w, map[e->child]);
            put_u64(&w, e->calls);
            put_u64(&w, e->errors);
        }
    }
    put_u32(&w, (uint32_t)crc32(0L, w.p, (uInt)w.n));
    free(map);
    *out = w.p;
    *outlen = w.n;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int col_deps_save(col_deps_t *d, const char *path, char *err, size_t errlen)
{
    snap_t s = {0};
    int rc = snap_take(d, &s);
    if (rc != 0)
        return weft__errf(err, errlen, rc, "%s: cannot snapshot the graph: %s", path,
                          weft_strerror(rc));
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = snap_encode(&s, &buf, &len);
    snap_free(&s);
    if (rc != 0) return weft__errf(err, errlen, rc, "%s: %s", path, weft_strerror(rc));

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    char *dirbuf = malloc(plen + 1);
    if (!tmp || !dirbuf) {
        free(buf);
        free(tmp);
        free(dirbuf);
        return weft__errf(err, errlen, WEFT_ENOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    memcpy(dirbuf, path, plen + 1);
    const char *what = "create a temporary file for";
    bool created = false;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    created = true;
    what = "write";
    if ((rc = write_all(fd, buf, len)) != 0) goto fail;
    what = "fsync";
    if (fsync(fd) != 0) {
        rc = -errno;
        goto fail;
    }
    what = "close";
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = -errno;
        goto fail;
    }
    what = "rename the temporary file over";
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto fail;
    }
    /* the rename is durable once the directory is */
    int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0) rc = -errno;
        close(dfd);
        if (rc != 0) {
            created = false; /* renamed: the new file is in place, only its sync failed */
            what = "fsync the directory of";
            goto fail;
        }
    }
    free(buf);
    free(tmp);
    free(dirbuf);
    return 0;
fail:
    weft__errf(err, errlen, rc, "%s: cannot %s it: %s", path, what, strerror(-rc));
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    free(buf);
    free(tmp);
    free(dirbuf);
    return rc;
}

/* ---- load ---- */

typedef struct rbuf_s {
    const uint8_t *p;
    size_t n, off;
} rbuf_t;

static bool get_bytes(rbuf_t *r, size_t n, const uint8_t **out)
{
    if (r->n - r->off < n) return false;
    *out = r->p + r->off;
    r->off += n;
    return true;
}

static bool get_uint(rbuf_t *r, int bytes, uint64_t *v)
{
    const uint8_t *q;
    if (!get_bytes(r, (size_t)bytes, &q)) return false;
    *v = 0;
    for (int i = 0; i < bytes; i++) *v |= (uint64_t)q[i] << (8 * i);
    return true;
}

/* Reads the file's body (after the CRC was checked). With d NULL it only validates; with d
 * (under d->mu) it adds the edges, names mapped through map (nnames entries). */
static int parse(rbuf_t *r, col_deps_t *d, uint32_t *map, uint32_t *nnames_out, const char *path,
                 char *err, size_t errlen)
{
#define BAD(...) return weft__errf(err, errlen, WEFT_EPARSE, __VA_ARGS__)
#define GET(bytes, v, what)                                                                        \
    do {                                                                                           \
        if (!get_uint(r, bytes, v)) BAD("%s: truncated at byte %zu (%s)", path, r->off, what);     \
    } while (0)
    const uint8_t *magic;
    uint64_t v, nnames, nbuckets;
    r->off = 0;
    if (!get_bytes(r, 8, &magic) || memcmp(magic, DEPS_MAGIC, 8) != 0)
        BAD("%s: not a dependency graph file (no %s at its start)", path, DEPS_MAGIC);
    GET(4, &v, "version");
    if (v != DEPS_VERSION)
        BAD("%s: version %llu, expected %u", path, (unsigned long long)v, DEPS_VERSION);
    GET(4, &nnames, "name count");
    if (nnames > (r->n - r->off) / 2)
        BAD("%s: %llu names cannot fit in the file", path, (unsigned long long)nnames);
    if (nnames_out) *nnames_out = (uint32_t)nnames;
    for (uint64_t i = 0; i < nnames; i++) {
        uint64_t len;
        const uint8_t *s;
        GET(2, &len, "name length");
        if (len == 0 || len > COL_DEPS_NAME_MAX)
            BAD("%s: name %llu: length %llu, must be 1 to %u", path, (unsigned long long)i,
                (unsigned long long)len, COL_DEPS_NAME_MAX);
        if (!get_bytes(r, (size_t)len, &s)) BAD("%s: truncated at byte %zu (name)", path, r->off);
        if (d) {
            map[i] = name_get(d, (const char *)s, (uint32_t)len);
            if (map[i] == NONE) d->names_dropped++;
        }
    }
    GET(4, &nbuckets, "bucket count");
    for (uint64_t i = 0; i < nbuckets; i++) {
        uint64_t tier, index, nedges;
        GET(1, &tier, "bucket tier");
        GET(8, &index, "bucket time");
        GET(4, &nedges, "edge count");
        if (tier > 1)
            BAD("%s: bucket %llu: tier %llu, must be 0 or 1", path, (unsigned long long)i,
                (unsigned long long)tier);
        if (nedges > (r->n - r->off) / 24)
            BAD("%s: bucket %llu: %llu edges cannot fit in the file", path, (unsigned long long)i,
                (unsigned long long)nedges);
        for (uint64_t j = 0; j < nedges; j++) {
            uint64_t p, c, calls, errors;
            GET(4, &p, "edge parent");
            GET(4, &c, "edge child");
            GET(8, &calls, "calls");
            GET(8, &errors, "errors");
            if (p >= nnames || c >= nnames)
                BAD("%s: bucket %llu edge %llu: name index out of range", path,
                    (unsigned long long)i, (unsigned long long)j);
            if (errors > calls)
                BAD("%s: bucket %llu edge %llu: more errors than calls", path,
                    (unsigned long long)i, (unsigned long long)j);
            if (d) {
                if (map[p] == NONE || map[c] == NONE)
                    d->calls_dropped = sat_add(d->calls_dropped, calls);
                else
                    add_counts(d, (int)tier, index, map[p], map[c], calls, errors);
            }
        }
    }
    if (r->off != r->n) BAD("%s: %zu bytes after the end of the graph", path, r->n - r->off);
    return 0;
#undef GET
#undef BAD
}

int col_deps_load(col_deps_t *d, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return weft__errf(err, errlen, rc, "%s: %s", path, strerror(-rc));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return weft__errf(err, errlen, rc, "%s: %s", path, strerror(-rc));
    }
    if (st.st_size < 8 + 4 + 4 + 4 + 4 || (uint64_t)st.st_size > DEPS_FILE_MAX) {
        close(fd);
        return weft__errf(err, errlen, WEFT_EPARSE, "%s: %lld bytes: not a dependency graph file",
                          path, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n);
    if (!buf) {
        close(fd);
        return weft__errf(err, errlen, WEFT_ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int rc = r < 0 ? -errno : WEFT_EPARSE;
            close(fd);
            free(buf);
            return weft__errf(err, errlen, rc, "%s: %s", path,
                              r < 0 ? strerror(errno) : "shorter than its size");
        }
        got += (size_t)r;
    }
    close(fd);

    uint32_t want = (uint32_t)buf[n - 4] | (uint32_t)buf[n - 3] << 8 | (uint32_t)buf[n - 2] << 16 |
                    (uint32_t)buf[n - 1] << 24;
    rbuf_t r = {.p = buf, .n = n - 4};
    int rc;
    if (memcmp(buf, DEPS_MAGIC, 8) != 0) {
        rc = parse(&r, NULL, NULL, NULL, path, err, errlen); /* names the bad magic */
        free(buf);
        return rc;
    }
    if ((uint32_t)crc32(0L, buf, (uInt)(n - 4)) != want) {
        free(buf);
        return weft__errf(err, errlen, WEFT_EPARSE, "%s: checksum mismatch (damaged file)", path);
    }
    uint32_t nnames = 0;
    if ((rc = parse(&r, NULL, NULL, &nnames, path, err, errlen)) != 0) {
        free(buf);
        return rc;
    }
    uint32_t *map = malloc((nnames ? nnames : 1) * sizeof(uint32_t));
    if (!map) {
        free(buf);
        return weft__errf(err, errlen, WEFT_ENOMEM, "%s: out of memory", path);
    }
    pthread_mutex_lock(&d->mu);
    d->now_min = d->now_ms(d->now_arg) / MINUTE_MS;
    rc = parse(&r, d, map, NULL, path, err, errlen);
    for (uint32_t i = 0; i < nnames; i++) name_put(d, map[i]); /* the edges hold their own */
    pthread_mutex_unlock(&d->mu);
    free(map);
    free(buf);
    return rc;
}
