/*
 * store_codec.c - the trace store's span record: col_span_t to bytes and back (see store.c
 * for where records live).
 *
 * A block's payload is a sequence of records, [type u8][body length u32 LE][body]:
 *   RESOURCE  service, dropped attribute count, attributes
 *   SCOPE     name, version, dropped attribute count, attributes
 *   SPAN      trace id (16), span id (8), parent id (8), start (u64 LE), end - start
 *             (zigzag varint), kind, status, bits (shared, debug, which endpoint addresses
 *             follow), name, remote service, then the rest: flags, trace state, status
 *             message, endpoints, attributes, events (times as deltas from the start),
 *             links.
 * A span belongs to the last RESOURCE and SCOPE before it in its block. The fields the
 * indexes need come first, so that summarising a block reads a span's head and skips the
 * rest by its length. Strings are [varint length][bytes]; integers varints (zigzag for
 * signed), doubles 8 bytes LE. Nothing is deduplicated here but a resource or scope
 * shared by consecutive spans: zstd sees the repetition (attribute keys, service names,
 * routes) across a block, and 56 bytes per span with 10 attributes (store.c) left no
 * reason to build a dictionary of our own.
 *
 * Encoding runs on the appending thread (any); decoding on the querying thread (any) and
 * the writer (summaries). Decoding trusts nothing: every length is checked against the end.
 */
#include <stdlib.h>
#include <string.h>

#include "collector/store_int.h"

void st_buf_free(st_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

bool st_buf_grow(st_buf_t *b, size_t more)
{
    if (b->oom) return false;
    if (b->cap - b->n >= more) return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->n < more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

/* ---- writing: the callers reserve first, then put without checks ---- */

static inline void put_u8(st_buf_t *b, uint8_t v)
{
    b->p[b->n++] = v;
}

static inline void put_varint(st_buf_t *b, uint64_t v)
{
    if (v < 0x80) { /* most: lengths of names and values, counts */
        b->p[b->n++] = (uint8_t)v;
        return;
    }
    while (v >= 0x80) {
        b->p[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->n++] = (uint8_t)v;
}

static inline uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline void put_raw(st_buf_t *b, const void *p, size_t n)
{
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Worst-case bytes of a string: its varint length and the bytes. */
#define STR_ROOM(s) ((size_t)(s).n + 5)

/* A string, its room reserved by the caller. */
static inline void put_str_nr(st_buf_t *b, col_str_t s)
{
    put_varint(b, s.n);
    put_raw(b, s.p, s.n);
}

static inline bool put_str(st_buf_t *b, col_str_t s)
{
    if (!st_buf_reserve(b, STR_ROOM(s))) return false;
    put_str_nr(b, s);
    return true;
}

static bool put_attrs(st_buf_t *b, const col_attr_t *a, uint32_t n, uint32_t dropped)
{
    if (!st_buf_reserve(b, 10)) return false;
    put_varint(b, dropped);
    put_varint(b, n);
    for (uint32_t i = 0; i < n; i++) {
        /* one reservation an attribute: its key, type and a scalar, or its key and a
         * string value (the value's own below) */
        if (!st_buf_reserve(b, STR_ROOM(a[i].key) + 11)) return false;
        put_str_nr(b, a[i].key);
        uint8_t t = a[i].type <= COL_V_EMPTY ? a[i].type : COL_V_EMPTY;
        put_u8(b, t);
        switch (t) {
        case COL_V_BOOL:
            put_u8(b, a[i].v.b ? 1 : 0);
            break;
        case COL_V_INT:
            put_varint(b, zigzag(a[i].v.i));
            break;
        case COL_V_DOUBLE: {
            uint64_t u;
            memcpy(&u, &a[i].v.d, 8);
            st_put64(b->p + b->n, u);
            b->n += 8;
            break;
        }
        case COL_V_EMPTY:
            break;
        default:
            if (!put_str(b, a[i].v.s)) return false;
        }
    }
    return true;
}

/* Starts a record: type and a length patched by rec_end. */
static bool rec_begin(st_buf_t *b, uint8_t type, size_t *at)
{
    if (!st_buf_reserve(b, ST_REC_HDR)) return false;
    *at = b->n;
    put_u8(b, type);
    b->n += 4;
    return true;
}

static bool rec_end(st_buf_t *b, size_t at)
{
    size_t len = b->n - at - ST_REC_HDR;
    if (len > UINT32_MAX) {
        b->oom = true;
        return false;
    }
    st_put32(b->p + at + 1, (uint32_t)len);
    return true;
}

static bool put_endpoint(st_buf_t *b, const col_endpoint_t *e)
{
    if (!st_buf_reserve(b, 3 + 4 + 16)) return false;
    put_varint(b, e->port);
    if (e->has_ipv4) put_raw(b, e->ipv4, 4);
    if (e->has_ipv6) put_raw(b, e->ipv6, 16);
    return true;
}

static bool encode_span(st_buf_t *b, const col_span_t *s)
{
    size_t at;
    if (!rec_begin(b, ST_REC_SPAN, &at) || !st_buf_reserve(b, 32 + 8 + 10 + 3)) return false;
    put_raw(b, s->trace_id, 16);
    put_raw(b, s->span_id, 8);
    put_raw(b, s->parent_id, 8);
    st_put64(b->p + b->n, s->start_ns);
    b->n += 8;
    put_varint(b, zigzag((int64_t)(s->end_ns - s->start_ns)));
    put_u8(b, s->kind);
    put_u8(b, s->status);
    uint8_t bits = (uint8_t)((s->shared ? 1 : 0) | (s->debug ? 2 : 0) |
                             (s->local.has_ipv4 ? 4 : 0) | (s->local.has_ipv6 ? 8 : 0) |
                             (s->remote.has_ipv4 ? 16 : 0) | (s->remote.has_ipv6 ? 32 : 0));
    put_u8(b, bits);
    if (!put_str(b, s->name) || !put_str(b, s->remote.service)) return false;
    if (!st_buf_reserve(b, 5)) return false;
    put_varint(b, s->flags);
    if (!put_str(b, s->trace_state) || !put_str(b, s->status_message)) return false;
    if (!put_endpoint(b, &s->local) || !put_endpoint(b, &s->remote)) return false;
    if (!put_attrs(b, s->attrs, s->nattrs, s->dropped_attrs)) return false;
    if (!st_buf_reserve(b, 10)) return false;
    put_varint(b, s->dropped_events);
    put_varint(b, s->nevents);
    for (uint32_t i = 0; i < s->nevents; i++) {
        const col_event_t *e = &s->events[i];
        if (!st_buf_reserve(b, 10)) return false;
        put_varint(b, zigzag((int64_t)(e->time_ns - s->start_ns)));
        if (!put_str(b, e->name) || !put_attrs(b, e->attrs, e->nattrs, e->dropped_attrs))
            return false;
    }
    if (!st_buf_reserve(b, 10)) return false;
    put_varint(b, s->dropped_links);
    put_varint(b, s->nlinks);
    for (uint32_t i = 0; i < s->nlinks; i++) {
        const col_link_t *l = &s->links[i];
        if (!st_buf_reserve(b, 24 + 5)) return false;
        put_raw(b, l->trace_id, 16);
        put_raw(b, l->span_id, 8);
        put_varint(b, l->flags);
        if (!put_str(b, l->trace_state) || !put_attrs(b, l->attrs, l->nattrs, l->dropped_attrs))
            return false;
    }
    return rec_end(b, at);
}

bool st_encode_spans(st_buf_t *out, const col_span_t *spans, size_t n)
{
    const col_resource_t *res = NULL;
    const col_scope_t *scope = NULL;
    for (size_t i = 0; i < n; i++) {
        const col_span_t *s = &spans[i];
        size_t at;
        if (s->resource != res) {
            res = s->resource;
            if (!rec_begin(out, ST_REC_RESOURCE, &at) || !put_str(out, res->service) ||
                !put_attrs(out, res->attrs, res->nattrs, res->dropped_attrs) || !rec_end(out, at))
                return false;
        }
        if (s->scope != scope) {
            scope = s->scope;
            if (!rec_begin(out, ST_REC_SCOPE, &at) || !put_str(out, scope->name) ||
                !put_str(out, scope->version) ||
                !put_attrs(out, scope->attrs, scope->nattrs, scope->dropped_attrs) ||
                !rec_end(out, at))
                return false;
        }
        if (!encode_span(out, s)) return false;
    }
    return !out->oom;
}

/* ---- reading ---- */

static inline uint8_t rd_u8(st_rd_t *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static inline uint64_t rd_varint(st_rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) break;
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    r->bad = true;
    return 0;
}

static inline uint32_t rd_u32v(st_rd_t *r)
{
    uint64_t v = rd_varint(r);
    if (v > UINT32_MAX) r->bad = true;
    return (uint32_t)v;
}

static inline int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline const uint8_t *rd_raw(st_rd_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        r->p = r->end;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static inline col_str_t rd_str(st_rd_t *r)
{
    uint32_t n = rd_u32v(r);
    const uint8_t *p = rd_raw(r, n);
    return p ? (col_str_t){.p = (const char *)p, .n = n} : (col_str_t){.p = "", .n = 0};
}

bool st_read_span_head(const uint8_t *body, size_t n, st_span_head_t *h)
{
    st_rd_t r = {.p = body, .end = body + n};
    h->trace_id = rd_raw(&r, 32);
    const uint8_t *t = rd_raw(&r, 8);
    if (!t) return false;
    h->start_ns = st_le64(t);
    h->end_ns = h->start_ns + (uint64_t)unzigzag(rd_varint(&r));
    h->kind = rd_u8(&r);
    rd_u8(&r);
    rd_u8(&r);
    h->name = rd_str(&r);
    h->remote_service = rd_str(&r);
    return !r.bad;
}

bool st_read_resource_service(const uint8_t *body, size_t n, col_str_t *service)
{
    st_rd_t r = {.p = body, .end = body + n};
    *service = rd_str(&r);
    return !r.bad;
}

/* A string for the decoded object: a view, or a copy in a. */
static col_str_t out_str(st_rd_t *r, weft_arena_t *a, bool copy, bool *oom)
{
    col_str_t s = rd_str(r);
    if (!copy || s.n == 0 || r->bad) return s;
    char *p = weft_arena_alloc(a, s.n);
    if (!p) {
        *oom = r->bad = true;
        return (col_str_t){.p = "", .n = 0};
    }
    memcpy(p, s.p, s.n);
    return (col_str_t){.p = p, .n = s.n};
}

/* Reads a count and checks it against what the remaining bytes could hold (at least `each`
 * bytes per item), so that a corrupt count cannot ask the arena for gigabytes. */
static uint32_t rd_count(st_rd_t *r, size_t each)
{
    uint32_t n = rd_u32v(r);
    if ((size_t)(r->end - r->p) / each < n) {
        r->bad = true;
        return 0;
    }
    return n;
}

static void *arena_array(weft_arena_t *a, size_t n, size_t size, st_rd_t *r, bool *oom)
{
    if (n == 0) return NULL;
    void *p = weft_arena_alloc(a, n * size);
    if (!p) *oom = r->bad = true;
    return p;
}

static void rd_attrs(st_rd_t *r, weft_arena_t *a, bool copy, col_attr_t **out, uint32_t *n,
                     uint32_t *dropped, bool *oom)
{
    *dropped = rd_u32v(r);
    uint32_t k = rd_count(r, 2);
    col_attr_t *at = arena_array(a, k, sizeof *at, r, oom);
    *out = at;
    *n = 0;
    if (r->bad) return;
    for (uint32_t i = 0; i < k && !r->bad; i++) {
        memset(&at[i], 0, sizeof at[i]);
        at[i].key = out_str(r, a, copy, oom);
        at[i].type = rd_u8(r);
        switch (at[i].type) {
        case COL_V_BOOL:
            at[i].v.b = rd_u8(r) != 0;
            break;
        case COL_V_INT:
            at[i].v.i = unzigzag(rd_varint(r));
            break;
        case COL_V_DOUBLE: {
            const uint8_t *p = rd_raw(r, 8);
            if (p) {
                uint64_t u = st_le64(p);
                memcpy(&at[i].v.d, &u, 8);
            }
            break;
        }
        case COL_V_EMPTY:
            break;
        case COL_V_STRING:
        case COL_V_BYTES:
        case COL_V_ARRAY:
        case COL_V_KVLIST:
            at[i].v.s = out_str(r, a, copy, oom);
            break;
        default:
            r->bad = true;
        }
    }
    if (!r->bad) *n = k;
}

static void rd_endpoint(st_rd_t *r, col_endpoint_t *e, bool v4, bool v6)
{
    uint32_t port = rd_u32v(r);
    if (port > 65535) r->bad = true;
    e->port = (uint16_t)port;
    e->has_ipv4 = v4;
    e->has_ipv6 = v6;
    const uint8_t *p;
    if (v4 && (p = rd_raw(r, 4))) memcpy(e->ipv4, p, 4);
    if (v6 && (p = rd_raw(r, 16))) memcpy(e->ipv6, p, 16);
}

bool st_decode_span(const uint8_t *body, size_t n, weft_arena_t *a, bool copy, col_span_t *s,
                    bool *oom)
{
    st_rd_t r = {.p = body, .end = body + n};
    *oom = false;
    const col_resource_t *res = s->resource;
    const col_scope_t *scope = s->scope;
    memset(s, 0, sizeof *s);
    s->resource = res;
    s->scope = scope;
    const uint8_t *ids = rd_raw(&r, 40);
    if (!ids) return false;
    memcpy(s->trace_id, ids, 16);
    memcpy(s->span_id, ids + 16, 8);
    memcpy(s->parent_id, ids + 24, 8);
    s->start_ns = st_le64(ids + 32);
    s->end_ns = s->start_ns + (uint64_t)unzigzag(rd_varint(&r));
    s->kind = rd_u8(&r);
    s->status = rd_u8(&r);
    uint8_t bits = rd_u8(&r);
    s->shared = bits & 1;
    s->debug = (bits & 2) != 0;
    s->name = out_str(&r, a, copy, oom);
    s->remote.service = out_str(&r, a, copy, oom);
    s->flags = rd_u32v(&r);
    s->trace_state = out_str(&r, a, copy, oom);
    s->status_message = out_str(&r, a, copy, oom);
    rd_endpoint(&r, &s->local, bits & 4, bits & 8);
    rd_endpoint(&r, &s->remote, bits & 16, bits & 32);
    rd_attrs(&r, a, copy, &s->attrs, &s->nattrs, &s->dropped_attrs, oom);
    s->dropped_events = rd_u32v(&r);
    uint32_t ne = rd_count(&r, 4);
    s->events = arena_array(a, ne, sizeof *s->events, &r, oom);
    for (uint32_t i = 0; i < ne && !r.bad; i++) {
        col_event_t *e = &s->events[i];
        e->time_ns = s->start_ns + (uint64_t)unzigzag(rd_varint(&r));
        e->name = out_str(&r, a, copy, oom);
        rd_attrs(&r, a, copy, &e->attrs, &e->nattrs, &e->dropped_attrs, oom);
    }
    if (!r.bad) s->nevents = ne;
    s->dropped_links = rd_u32v(&r);
    uint32_t nl = rd_count(&r, 28);
    s->links = arena_array(a, nl, sizeof *s->links, &r, oom);
    for (uint32_t i = 0; i < nl && !r.bad; i++) {
        col_link_t *l = &s->links[i];
        const uint8_t *p = rd_raw(&r, 24);
        if (!p) break;
        memcpy(l->trace_id, p, 16);
        memcpy(l->span_id, p + 16, 8);
        l->flags = rd_u32v(&r);
        l->trace_state = out_str(&r, a, copy, oom);
        rd_attrs(&r, a, copy, &l->attrs, &l->nattrs, &l->dropped_attrs, oom);
    }
    if (!r.bad) s->nlinks = nl;
    return !r.bad && r.p == r.end;
}

bool st_decode_resource(const uint8_t *body, size_t n, weft_arena_t *a, bool copy,
                        col_resource_t *res, bool *oom)
{
    st_rd_t r = {.p = body, .end = body + n};
    *oom = false;
    memset(res, 0, sizeof *res);
    res->service = out_str(&r, a, copy, oom);
    rd_attrs(&r, a, copy, &res->attrs, &res->nattrs, &res->dropped_attrs, oom);
    return !r.bad && r.p == r.end;
}

bool st_decode_scope(const uint8_t *body, size_t n, weft_arena_t *a, bool copy, col_scope_t *sc,
                     bool *oom)
{
    st_rd_t r = {.p = body, .end = body + n};
    *oom = false;
    memset(sc, 0, sizeof *sc);
    sc->name = out_str(&r, a, copy, oom);
    sc->version = out_str(&r, a, copy, oom);
    rd_attrs(&r, a, copy, &sc->attrs, &sc->nattrs, &sc->dropped_attrs, oom);
    return !r.bad && r.p == r.end;
}

bool st_next_record(const uint8_t **p, const uint8_t *end, uint8_t *type, const uint8_t **body,
                    uint32_t *n, bool *bad)
{
    *bad = false;
    if (*p == end) return false;
    if ((size_t)(end - *p) < ST_REC_HDR) {
        *bad = true;
        return false;
    }
    *type = (*p)[0];
    *n = st_le32(*p + 1);
    if ((size_t)(end - *p) - ST_REC_HDR < *n || *type < ST_REC_RESOURCE || *type > ST_REC_SPAN) {
        *bad = true;
        return false;
    }
    *body = *p + ST_REC_HDR;
    *p += ST_REC_HDR + *n;
    return true;
}
