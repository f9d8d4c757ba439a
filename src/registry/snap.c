/*
 * snap.c - reading catalog snapshots: lookups and the cached answers of a service.
 *
 * Any thread that reads snapshots (a worker inside its read section, or one holding the
 * snapshot). The only thing that changes in a published service is its body cache: each
 * slot goes once from NULL to a body, by compare-and-swap, so that two workers that build
 * the same body at once keep one and free the other; the body is freed with its service.
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "registry/catalog.h"

static int cmp_name_len(const char *a, size_t alen, const char *b, size_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r) return r;
    return alen < blen ? -1 : alen > blen;
}

static int cmp_name(const char *a, size_t alen, const char *b)
{
    return cmp_name_len(a, alen, b, strlen(b));
}

reg_svc_t *weft__snap_service(const reg_snap_t *s, const char *name, size_t len)
{
    size_t lo = 0, hi = s->nsvc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = cmp_name_len(name, len, s->svc[mid]->name, s->svc[mid]->name_len);
        if (r == 0) return s->svc[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

reg_inst_t *weft__snap_instance(const reg_snap_t *s, const char *id, size_t len, reg_svc_t **svc)
{
    for (uint32_t i = 0; i < s->nsvc; i++) {
        reg_svc_t *v = s->svc[i];
        size_t lo = 0, hi = v->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int r = cmp_name(id, len, v->inst[mid]->id);
            if (r == 0) {
                if (svc) *svc = v;
                return v->inst[mid];
            }
            if (r < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
    }
    return NULL;
}

static reg_body_t *build(const reg_snap_t *s, const reg_svc_t *svc, reg_cache_t k)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    /* Room for the header first, so the body can be handed over without a copy. */
    weft_buf_put(&b, "\0\0\0\0\0\0\0\0", sizeof(reg_body_t));
    weft_buf_putc(&b, '[');
    bool first = true;
    for (uint32_t i = 0; i < svc->n; i++) {
        const reg_inst_t *in = svc->inst[i];
        if (k == REG_BODY_PASSING && in->health != WEFT_HEALTH_PASSING) continue;
        if (!first) weft_buf_putc(&b, ',');
        first = false;
        if (k == REG_BODY_CATALOG)
            weft__put_catalog_service(&b, s->node, in);
        else
            weft__put_health_entry(&b, s->node, in, s->node_checks, s->nnode_checks);
    }
    weft_buf_putc(&b, ']');
    if (b.failed) {
        weft_buf_free(&b);
        return NULL;
    }
    size_t len = b.len;
    reg_body_t *body = (reg_body_t *)(void *)weft_buf_take(&b, &len);
    if (!body) return NULL;
    body->len = len - sizeof(reg_body_t);
    return body;
}

const reg_body_t *weft__svc_body(const reg_snap_t *s, reg_svc_t *svc, reg_cache_t k)
{
    reg_body_t *cur = atomic_load_explicit(&svc->cache[k], memory_order_acquire);
    if (cur) return cur;
    reg_body_t *b = build(s, svc, k);
    if (!b) return NULL;
    reg_body_t *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&svc->cache[k], &expected, b, memory_order_acq_rel,
                                                memory_order_acquire))
        return b;
    free(b);
    return expected;
}

void weft__events_release(reg_events_t *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) free(e);
}
