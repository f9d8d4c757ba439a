/*
 * catalog.c - the catalog's writer: registrations, checks and their states, on the control
 * loop; persistence through the store; publication of snapshots (design in catalog.h).
 *
 * State (control loop only):
 *   insts    instance ID -> the current reg_inst_t (the map holds one reference)
 *   svcs     service name -> cat_svc_t: its instances, its index, the reg_svc_t last
 *            published for it and whether it changed since (dirty)
 *   checks   check ID -> cat_rt_t: what a check needs at run time and no reader does (its
 *            TTL timer, since when it is critical, its handle with the checker)
 *   node_checks  checks not tied to a service (serfHealth, always passing, first)
 * Instances never change once built: a write builds a new one (weft__inst_clone) and swaps
 * it in, so the snapshot readers hold stays as it was.
 *
 * A write: apply to the state, take the next index, queue a store batch (the instance's
 * record or its deletion, and "meta/index"); when the store calls back, queue the write's
 * done and arm a zero timer; the timer publishes one snapshot for everything that completed
 * in that loop iteration, then runs the dones (so a client that got 200 reads its own
 * write), then tells the owner (published: blocking queries wake). Group commit in the
 * store and one publication per iteration keep a flood of registrations cheap.
 *
 * Readers may see a change a few milliseconds before it is durable (the snapshot reflects
 * the state, and the state runs ahead of the store by the batches in flight); what is
 * promised is that nobody is answered 200 for a write that is not durable.
 *
 * The index bumps only when a status really changes: a check result with the status the
 * check already has takes no index, is not written to disk and wakes no blocking query; its
 * output is published all the same (the checker tells one only with a check's first result,
 * so that a check that starts critical and stays so says why).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_write.h"
#include "registry/catalog.h"
#include "registry/cklog.h"
#include "registry/strmap.h"
#include "weft/log.h"

#define REAP_EVERY_MS 1000
#define MAINT_PREFIX  "_service_maintenance:"

/* A sorted array of pointers, kept sorted as items come and go (binary search, memmove):
 * a publication copies it as it is, instead of sorting what changed. */
typedef struct sarr_s {
    void **a;
    uint32_t n, cap;
} sarr_t;

typedef struct cat_svc_s {
    char *name;
    uint64_t index;
    sarr_t inst;    /* reg_inst_t* by ID (borrowed from c->insts) */
    reg_svc_t *pub; /* last published (holds a reference), or NULL */
    bool dirty;
} cat_svc_t;

typedef struct cat_rt_s {
    char *check_id;
    char *inst_id; /* NULL: a node check */
    uint32_t slot, gen;
    uv_timer_t *ttl;
    uint64_t ttl_ms, dereg_ms;
    uint64_t critical_since; /* weft_now_ns()/1e6 when it turned critical; 0 if not */
    bool running;            /* the checker has it */
    weft_catalog_t *cat;
} cat_rt_t;

typedef struct cat_write_s {
    weft_store_batch_t b;
    weft_store_op_t ops[2];
    char key[REG_MAX_ID + 8];
    char idx[24];
    char *val;
    reg_done_t *d;
    weft_catalog_t *c;
} cat_write_t;

typedef struct cat_reply_s {
    reg_done_t *d;
    int status;
    char msg[200];
} cat_reply_t;

struct weft_catalog_s {
    weft_catalog_options_t o;
    uint64_t index, services_index;
    weft_strmap_t insts, svcs, checks;
    sarr_t order; /* cat_svc_t* by name */
    cat_rt_t **slots;
    uint32_t nslots, cap_slots;
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t gen;
    reg_check_t **node_checks;
    uint32_t nnode_checks;
    bool node_dirty;
    bool svcs_dirty; /* some service's dirty is set */
    reg_snap_t *cur; /* the last snapshot published (a reference of ours) */
    uv_timer_t publish_timer, reap_timer;
    bool publish_armed, closed, timers_open;
    cat_reply_t *replies;
    size_t nreplies, cap_replies;
    weft_buf_t events;
    uint64_t ev_first, ev_last;
    uint64_t inflight; /* store batches not called back */
    weft_catalog_stats_t st;
};

static uint64_t now_ms(void)
{
    return weft_now_ns() / 1000000;
}

static uint64_t wall_ms(void)
{
    return weft_wall_ns() / 1000000;
}

/* A check's transition (from == to: registered with that status), in its History and in
 * the dashboard's log with its output then (cklog.h). */
static void check_hist(weft_catalog_t *c, reg_check_t *k, weft_health_t from, weft_health_t to,
                       uint64_t at_ms)
{
    weft__check_hist(k, from, to, at_ms);
    weft__cklog_add(c->o.cklog, k->id, (int)from, (int)to, at_ms, k->output);
}

static const char *inst_key(const void *p)
{
    return ((const reg_inst_t *)p)->id;
}

static const char *svc_key(const void *p)
{
    return ((const cat_svc_t *)p)->name;
}

/* Where key is in s (*found) or would go. */
static uint32_t sarr_find(const sarr_t *s, const char *key, const char *(*key_of)(const void *),
                          bool *found)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = strcmp(key, key_of(s->a[mid]));
        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

static int sarr_insert(sarr_t *s, uint32_t pos, void *p)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 4;
        void **a = realloc(s->a, cap * sizeof(void *));
        if (!a) return -1;
        s->a = a;
        s->cap = cap;
    }
    memmove(&s->a[pos + 1], &s->a[pos], (s->n - pos) * sizeof(void *));
    s->a[pos] = p;
    s->n++;
    return 0;
}

static void sarr_remove(sarr_t *s, uint32_t pos)
{
    memmove(&s->a[pos], &s->a[pos + 1], (s->n - pos - 1) * sizeof(void *));
    s->n--;
}

/* ---- replies and publication ---- */

static void publish(weft_catalog_t *c);

static void on_publish_timer(uv_timer_t *t)
{
    weft_catalog_t *c = t->data;
    c->publish_armed = false;
    publish(c);
}

static void arm_publish(weft_catalog_t *c)
{
    if (c->publish_armed || !c->timers_open) return;
    c->publish_armed = true;
    uv_timer_start(&c->publish_timer, on_publish_timer, 0, 0);
}

static void reply(weft_catalog_t *c, reg_done_t *d, int status, const char *msg)
{
    if (!d) return;
    if (c->nreplies == c->cap_replies) {
        size_t cap = c->cap_replies ? c->cap_replies * 2 : 64;
        cat_reply_t *r = realloc(c->replies, cap * sizeof(*r));
        if (!r) { /* cannot queue: answer now (before publication: still durable) */
            d->fn(d, status, msg);
            return;
        }
        c->replies = r;
        c->cap_replies = cap;
    }
    cat_reply_t *r = &c->replies[c->nreplies++];
    r->d = d;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
    arm_publish(c);
    if (!c->timers_open) publish(c); /* closing: nothing will run the timer */
}

/* Answers an error at once (nothing changed, nothing to publish first). */
static void fail(reg_done_t *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(reg_done_t *d, int status, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (d) d->fn(d, status, msg);
}

static void event(weft_catalog_t *c, const char *type, const reg_inst_t *in, const char *id,
                  const char *service, const reg_check_t *chk, weft_health_t from)
{
    weft_buf_t *b = &c->events;
    if (b->len > (1u << 20)) return; /* a flood: the stream says so by its index gap */
    if (!c->ev_first) c->ev_first = c->index;
    c->ev_last = c->index;
    weft_buf_puts(b, "id: ");
    weft_buf_put_u64(b, c->index);
    weft_buf_puts(b, "\nevent: ");
    weft_buf_puts(b, type);
    weft_buf_puts(b, "\ndata: {\"Index\":");
    weft_buf_put_u64(b, c->index);
    weft_buf_puts(b, ",\"At\":");
    weft_buf_put_u64(b, wall_ms());
    weft_buf_puts(b, ",\"ServiceID\":");
    weft_json_put_str(b, id ? id : "", id ? strlen(id) : 0);
    weft_buf_puts(b, ",\"Service\":");
    weft_json_put_str(b, service ? service : "", service ? strlen(service) : 0);
    if (in) {
        weft_buf_puts(b, ",\"Address\":");
        weft_json_put_str(b, in->address, strlen(in->address));
        weft_buf_puts(b, ",\"Port\":");
        weft_buf_put_u64(b, in->port);
        weft_buf_puts(b, ",\"Health\":\"");
        weft_buf_puts(b, weft__health_name(in->health));
        weft_buf_putc(b, '"');
    }
    if (chk) {
        weft_buf_puts(b, ",\"CheckID\":");
        weft_json_put_str(b, chk->id, strlen(chk->id));
        weft_buf_puts(b, ",\"From\":\"");
        weft_buf_puts(b, weft__health_name(from));
        weft_buf_puts(b, "\",\"To\":\"");
        weft_buf_puts(b, weft__health_name(chk->status));
        weft_buf_puts(b, "\",\"Output\":");
        weft_json_put_str(b, chk->output, strlen(chk->output) > 512 ? 512 : strlen(chk->output));
    }
    weft_buf_puts(b, "}\n\n");
}

static void svc_destroy(void *obj)
{
    reg_svc_t *v = obj;
    for (uint32_t i = 0; i < v->n; i++) weft_snap_release(v->inst[i]);
    free(v->inst);
    for (int k = 0; k < REG_BODY_N; k++) free(atomic_load(&v->cache[k]));
}

static reg_svc_t *svc_build(cat_svc_t *cs)
{
    reg_svc_t *v = weft_snap_alloc(sizeof(*v), svc_destroy);
    if (!v) return NULL;
    v->index = cs->index;
    if (cs->inst.n && !(v->inst = malloc(cs->inst.n * sizeof(reg_inst_t *)))) {
        weft_snap_release(v);
        return NULL;
    }
    for (uint32_t i = 0; i < cs->inst.n; i++) { /* already in ID order */
        reg_inst_t *in = cs->inst.a[i];
        v->inst[v->n++] = weft_snap_ref(in);
        if (in->health == WEFT_HEALTH_PASSING) v->npassing++;
    }
    v->name = cs->name; /* replaced below by an instance's own copy */
    if (v->n) v->name = v->inst[0]->name;
    v->name_len = (uint32_t)strlen(v->name);
    return v;
}

static void snap_destroy(void *obj)
{
    reg_snap_t *s = obj;
    for (uint32_t i = 0; i < s->nsvc; i++) weft_snap_release(s->svc[i]);
    free(s->svc);
    for (uint32_t i = 0; i < s->nnode_checks; i++) weft__check_free(s->node_checks[i]);
    free(s->node_checks);
}

static void publish(weft_catalog_t *c)
{
    bool changed = c->cur == NULL || c->node_dirty;
    if (c->svcs_dirty) changed = true;
    if (!changed && c->cur && (c->cur->index != c->index || c->cur->nsvc != c->svcs.n))
        changed = true;
    reg_snap_t *s = NULL;
    if (changed) {
        s = weft_snap_alloc(sizeof(*s), snap_destroy);
        if (s) {
            s->index = c->index;
            s->services_index = c->services_index;
            s->node = &c->o.node;
            s->svc = c->svcs.n ? malloc(c->svcs.n * sizeof(reg_svc_t *)) : NULL;
            s->node_checks = malloc(c->nnode_checks * sizeof(reg_check_t *));
            bool ok = (s->svc || !c->svcs.n) && s->node_checks;
            for (uint32_t i = 0; ok && i < c->nnode_checks; i++) {
                reg_check_t *k = weft__check_clone(c->node_checks[i]);
                if (!k)
                    ok = false;
                else
                    s->node_checks[s->nnode_checks++] = k;
                if (k && k->status > s->node_health) s->node_health = k->status;
            }
            for (uint32_t i = 0; ok && i < c->order.n; i++) { /* already in name order */
                cat_svc_t *cs = c->order.a[i];
                if (cs->dirty || !cs->pub || c->node_dirty) {
                    reg_svc_t *v = svc_build(cs);
                    if (!v) {
                        ok = false;
                        break;
                    }
                    weft_snap_release(cs->pub);
                    cs->pub = v;
                    cs->dirty = false;
                }
                s->svc[s->nsvc++] = weft_snap_ref(cs->pub);
                s->ninst += cs->pub->n;
            }
            if (ok) {
                c->node_dirty = false;
                c->svcs_dirty = false;
                weft_snap_release(c->cur);
                c->cur = weft_snap_ref(s);
                weft_snap_publish(c->o.cell, s);
                c->st.publishes++;
            } else {
                weft_snap_release(s);
                s = NULL;
                weft_error("registry", "cannot publish the catalog: out of memory",
                           "index=%" PRIu64, c->index);
            }
        }
    }
    /* Answer the writes, then wake the watchers. */
    size_t n = c->nreplies;
    c->nreplies = 0;
    for (size_t i = 0; i < n; i++)
        c->replies[i].d->fn(c->replies[i].d, c->replies[i].status, c->replies[i].msg);
    reg_events_t *ev = NULL;
    if (c->events.len && !c->events.failed) {
        ev = malloc(sizeof(*ev) + c->events.len + 1);
        if (ev) {
            atomic_init(&ev->refs, 1);
            ev->first_index = c->ev_first;
            ev->last_index = c->ev_last;
            ev->len = c->events.len;
            memcpy(ev->data, c->events.p, c->events.len + 1);
        }
    }
    weft_buf_reset(&c->events);
    c->ev_first = c->ev_last = 0;
    if (s && c->o.published) c->o.published(c->o.arg, s, ev);
    weft__events_release(ev);
}

/* ---- persistence ---- */

static void on_stored(weft_store_batch_t *b, int status, void *arg)
{
    cat_write_t *w = arg;
    weft_catalog_t *c = w->c;
    c->inflight--;
    if (status != 0) {
        weft_error("registry", "the store failed to keep a change", "key=%s error=%s", w->key,
                   weft_strerror(status));
        reply(c, w->d, 500, "the change was applied but could not be stored");
    } else {
        reply(c, w->d, 200, NULL);
    }
    if (!w->d) arm_publish(c);
    free(w->val);
    free(w);
    (void)b;
}

/* Queues the record of instance in (or its deletion: in NULL, key by id) or of node check
 * chk; done(200) once durable. Publishes (via reply) either way. */
static void persist(weft_catalog_t *c, char kind, const char *id, const reg_inst_t *in,
                    const reg_check_t *chk, reg_done_t *d)
{
    c->st.writes++;
    if (!c->o.store) {
        reply(c, d, 200, NULL);
        if (!d) arm_publish(c);
        return;
    }
    cat_write_t *w = calloc(1, sizeof(*w));
    if (!w) {
        reply(c, d, 500, "out of memory");
        return;
    }
    w->c = c;
    w->d = d;
    snprintf(w->key, sizeof(w->key), "%s/%s", kind == 's' ? "svc" : "chk", id);
    snprintf(w->idx, sizeof(w->idx), "%" PRIu64, c->index);
    if (in || chk) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        if (in)
            weft__put_inst_record(&b, in);
        else
            weft__put_check_record(&b, chk);
        size_t len = b.len;
        w->val = b.failed ? NULL : weft_buf_take(&b, &len);
        weft_buf_free(&b);
        if (!w->val) {
            free(w);
            reply(c, d, 500, "out of memory");
            return;
        }
        w->ops[0] = (weft_store_op_t){w->key, strlen(w->key), w->val, len, false};
    } else {
        w->ops[0] = (weft_store_op_t){w->key, strlen(w->key), NULL, 0, true};
    }
    w->ops[1] = (weft_store_op_t){"meta/index", 10, w->idx, strlen(w->idx), false};
    w->b.ops = w->ops;
    w->b.n = 2;
    w->b.done = on_stored;
    w->b.arg = w;
    int err = weft_store_submit(c->o.store, &w->b);
    if (err) {
        free(w->val);
        free(w);
        if (err == WEFT_ELIMIT)
            reply(c, d, 429, "too many writes wait for the disk; retry later");
        else
            reply(c, d, 503, "the registry is shutting down");
        return;
    }
    c->inflight++;
}

/* ---- check run-time state ---- */

static void on_ttl(uv_timer_t *t);

static void rt_close_cb(uv_handle_t *h)
{
    free(h);
}

static void rt_free(weft_catalog_t *c, cat_rt_t *rt)
{
    if (rt->running && c->o.check_stop)
        c->o.check_stop(c->o.arg, ((uint64_t)rt->gen << 32) | rt->slot);
    if (rt->ttl) uv_close((uv_handle_t *)rt->ttl, rt_close_cb);
    c->slots[rt->slot] = NULL;
    c->free_slots[c->nfree++] = rt->slot;
    free(rt->check_id);
    free(rt->inst_id);
    free(rt);
}

static void rt_drop(weft_catalog_t *c, const char *check_id)
{
    cat_rt_t *rt = weft_strmap_del(&c->checks, check_id);
    if (rt) rt_free(c, rt);
}

static void ttl_arm(weft_catalog_t *c, cat_rt_t *rt)
{
    if (!rt->ttl_ms || !c->timers_open) return;
    if (!rt->ttl) {
        rt->ttl = malloc(sizeof(*rt->ttl));
        if (!rt->ttl) return;
        uv_timer_init(c->o.loop, rt->ttl);
        rt->ttl->data = rt;
    }
    uv_timer_start(rt->ttl, on_ttl, rt->ttl_ms, 0);
}

/* Makes (or remakes) the run-time state of check k of instance in (NULL: a node check). */
static int rt_set(weft_catalog_t *c, const reg_check_t *k, const reg_inst_t *in)
{
    rt_drop(c, k->id);
    cat_rt_t *rt = calloc(1, sizeof(*rt));
    if (!rt) return -1;
    if (c->nfree == 0) {
        uint32_t cap = c->cap_slots ? c->cap_slots * 2 : 256;
        cat_rt_t **s = realloc(c->slots, cap * sizeof(*s));
        if (!s) goto oom;
        c->slots = s;
        uint32_t *f = realloc(c->free_slots, cap * sizeof(*f));
        if (!f) goto oom;
        c->free_slots = f;
        for (uint32_t i = cap; i-- > c->cap_slots;) {
            c->slots[i] = NULL;
            c->free_slots[c->nfree++] = i;
        }
        c->cap_slots = cap;
    }
    rt->cat = c;
    rt->check_id = strdup(k->id);
    rt->inst_id = in ? strdup(in->id) : NULL;
    if (!rt->check_id || (in && !rt->inst_id)) goto oom;
    if (weft_strmap_put(&c->checks, rt->check_id, rt) != 0) goto oom;
    rt->slot = c->free_slots[--c->nfree];
    rt->gen = ++c->gen;
    c->slots[rt->slot] = rt;
    rt->ttl_ms = k->type == REG_CHECK_TTL ? k->ttl_ms : 0;
    rt->dereg_ms = k->dereg_ms;
    rt->critical_since = k->status == WEFT_HEALTH_CRITICAL ? now_ms() : 0;
    ttl_arm(c, rt);
    if ((k->type == REG_CHECK_HTTP || k->type == REG_CHECK_TCP) && c->o.check_start && in) {
        c->o.check_start(c->o.arg, ((uint64_t)rt->gen << 32) | rt->slot, k, in);
        rt->running = true;
    }
    return 0;
oom:
    free(rt->check_id);
    free(rt->inst_id);
    free(rt);
    return -1;
}

/* ---- services ---- */

static cat_svc_t *svc_get(weft_catalog_t *c, const char *name, bool create)
{
    cat_svc_t *cs = weft_strmap_get(&c->svcs, name);
    if (cs || !create) return cs;
    cs = calloc(1, sizeof(*cs));
    if (!cs || !(cs->name = strdup(name))) {
        free(cs);
        return NULL;
    }
    bool found;
    uint32_t pos = sarr_find(&c->order, name, svc_key, &found);
    if (sarr_insert(&c->order, pos, cs) != 0) {
        free(cs->name);
        free(cs);
        return NULL;
    }
    if (weft_strmap_put(&c->svcs, cs->name, cs) != 0) {
        sarr_remove(&c->order, pos);
        free(cs->name);
        free(cs);
        return NULL;
    }
    return cs;
}

static void svc_free(cat_svc_t *cs)
{
    weft_snap_release(cs->pub);
    free(cs->inst.a);
    free(cs->name);
    free(cs);
}

static void svc_drop_if_empty(weft_catalog_t *c, cat_svc_t *cs)
{
    if (cs->inst.n) return;
    bool found;
    uint32_t pos = sarr_find(&c->order, cs->name, svc_key, &found);
    if (found) sarr_remove(&c->order, pos);
    weft_strmap_del(&c->svcs, cs->name);
    svc_free(cs);
}

/* Takes instance id out of service cs's array (if there). */
static void svc_unlist(cat_svc_t *cs, const char *id)
{
    bool found;
    uint32_t pos = sarr_find(&cs->inst, id, inst_key, &found);
    if (found) sarr_remove(&cs->inst, pos);
}

static void node_health_apply(weft_catalog_t *c, reg_inst_t *in)
{
    weft_health_t nh = WEFT_HEALTH_PASSING;
    for (uint32_t i = 0; i < c->nnode_checks; i++)
        if (c->node_checks[i]->status > nh) nh = c->node_checks[i]->status;
    weft__inst_health(in, nh);
}

/* Puts in (one reference, passed to the catalog) in place of what has its ID. Returns 0 or
 * -1 (out of memory: nothing changed, in released). */
static int inst_put(weft_catalog_t *c, reg_inst_t *in)
{
    reg_inst_t *old = weft_strmap_get(&c->insts, in->id);
    cat_svc_t *cs = svc_get(c, in->name, true);
    if (!cs) {
        weft_snap_release(in);
        return -1;
    }
    bool found;
    uint32_t pos = sarr_find(&cs->inst, in->id, inst_key, &found);
    void *prev = found ? cs->inst.a[pos] : NULL;
    if (found) {
        cs->inst.a[pos] = in;
    } else if (sarr_insert(&cs->inst, pos, in) != 0) {
        svc_drop_if_empty(c, cs);
        weft_snap_release(in);
        return -1;
    }
    if (weft_strmap_put(&c->insts, in->id, in) != 0) {
        if (found)
            cs->inst.a[pos] = prev;
        else
            sarr_remove(&cs->inst, pos);
        svc_drop_if_empty(c, cs);
        weft_snap_release(in);
        return -1;
    }
    node_health_apply(c, in);
    cs->dirty = true;
    c->svcs_dirty = true;
    cs->index = c->index;
    if (old) {
        if (strcmp(old->name, in->name) != 0) {
            cat_svc_t *os = svc_get(c, old->name, false);
            if (os) {
                svc_unlist(os, old->id);
                os->dirty = true;
                c->svcs_dirty = true;
                os->index = c->index;
                svc_drop_if_empty(c, os);
            }
        }
        weft_snap_release(old);
    }
    return 0;
}

static void inst_remove(weft_catalog_t *c, reg_inst_t *in)
{
    cat_svc_t *cs = svc_get(c, in->name, false);
    for (uint32_t i = 0; i < in->nchecks; i++) rt_drop(c, in->checks[i]->id);
    weft_strmap_del(&c->insts, in->id);
    if (cs) {
        svc_unlist(cs, in->id);
        cs->dirty = true;
        c->svcs_dirty = true;
        cs->index = c->index;
        svc_drop_if_empty(c, cs);
    }
    weft_snap_release(in);
}

/* The node's checks changed: it is part of every instance's health, so each instance whose
 * health that changes is rebuilt (instances are immutable: snapshots may hold them). */
static void node_changed(weft_catalog_t *c)
{
    c->node_dirty = true;
    weft_health_t nh = WEFT_HEALTH_PASSING;
    for (uint32_t i = 0; i < c->nnode_checks; i++)
        if (c->node_checks[i]->status > nh) nh = c->node_checks[i]->status;
    for (size_t i = 0; i < c->insts.cap; i++) {
        if (!c->insts.slots[i].key) continue;
        reg_inst_t *in = c->insts.slots[i].val;
        reg_inst_t probe = *in;
        weft__inst_health(&probe, nh);
        if (probe.health == in->health) continue;
        reg_inst_t *copy = weft__inst_clone(in);
        /* inst_put replaces an existing key's value in place: the iteration stays valid */
        if (!copy || inst_put(c, copy) != 0)
            weft_error("registry", "cannot update an instance's health: out of memory",
                       "service_id=%s", in->id);
    }
}

/* ---- writes ---- */

void weft__cat_register(weft_catalog_t *c, reg_inst_t *in, bool replace_checks, reg_done_t *d)
{
    if (c->closed) {
        weft_snap_release(in);
        return fail(d, 503, "the registry is shutting down");
    }
    reg_inst_t *old = weft_strmap_get(&c->insts, in->id);
    if (!old && c->insts.n >= c->o.max_instances) {
        weft_snap_release(in);
        return fail(d, 429, "the catalog holds its limit of %zu instances (registry.max_instances)",
                    c->o.max_instances);
    }
    for (uint32_t i = 0; i < in->nchecks; i++) {
        cat_rt_t *rt = weft_strmap_get(&c->checks, in->checks[i]->id);
        if (rt && (!rt->inst_id || strcmp(rt->inst_id, in->id) != 0)) {
            char id[REG_MAX_ID + 1];
            snprintf(id, sizeof(id), "%s", in->checks[i]->id);
            weft_snap_release(in);
            return fail(d, 400, "CheckID: \"%s\" belongs to another service or the node", id);
        }
    }
    c->index++;
    in->create_index = old ? old->create_index : c->index;
    in->modify_index = c->index;
    /* Checks: keep the state of those registered again with the same type; keep those
     * the body leaves out, unless replace-existing-checks. */
    for (uint32_t i = 0; i < in->nchecks; i++) {
        reg_check_t *k = in->checks[i];
        reg_check_t *was = old ? weft__inst_find_check(old, k->id) : NULL;
        k->create_index = was ? was->create_index : c->index;
        k->modify_index = c->index;
        if (was && was->type == k->type) {
            k->status = was->status;
            weft__sfree(k->output);
            k->output = strdup(was->output);
            if (!k->output) k->output = strdup("");
            k->nhist = was->nhist;
            memcpy(k->hist, was->hist, sizeof(k->hist));
        } else {
            check_hist(c, k, k->status, k->status, wall_ms());
        }
    }
    if (old) {
        for (uint32_t i = 0; i < old->nchecks; i++) {
            reg_check_t *k = old->checks[i];
            if (weft__inst_find_check(in, k->id)) continue;
            if (replace_checks && k->type != REG_CHECK_MAINT) continue;
            reg_check_t *copy = weft__check_clone(k);
            if (!copy || weft__inst_put_check(in, copy) != 0) {
                weft__check_free(copy);
                weft_snap_release(in);
                return fail(d, 500, "out of memory");
            }
        }
        for (uint32_t i = 0; i < old->nchecks; i++)
            if (!weft__inst_find_check(in, old->checks[i]->id)) rt_drop(c, old->checks[i]->id);
    }
    if (!old || strcmp(old->name, in->name) != 0 || old->ntags != in->ntags ||
        old->port != in->port || strcmp(old->address, in->address) != 0)
        c->services_index = c->index;
    else
        for (uint32_t i = 0; i < in->ntags; i++)
            if (strcmp(old->tags[i], in->tags[i]) != 0) c->services_index = c->index;
    if (inst_put(c, in) != 0) return fail(d, 500, "out of memory");
    for (uint32_t i = 0; i < in->nchecks; i++) {
        reg_check_t *k = in->checks[i];
        cat_rt_t *rt = weft_strmap_get(&c->checks, k->id);
        /* A check registered again runs again (its definition may have changed). */
        if (rt_set(c, k, in) != 0)
            weft_warn("registry", "cannot track check: out of memory", "check=%s", k->id);
        (void)rt;
    }
    event(c, "register", in, in->id, in->name, NULL, WEFT_HEALTH_PASSING);
    persist(c, 's', in->id, in, NULL, d);
}

void weft__cat_deregister(weft_catalog_t *c, const char *id, reg_done_t *d)
{
    if (c->closed) return fail(d, 503, "the registry is shutting down");
    reg_inst_t *in = weft_strmap_get(&c->insts, id);
    if (!in) return fail(d, 404, "Unknown service ID \"%s\"", id);
    c->index++;
    c->services_index = c->index;
    char sid[REG_MAX_ID + 1], name[REG_MAX_ID + 1];
    snprintf(sid, sizeof(sid), "%s", in->id);
    snprintf(name, sizeof(name), "%s", in->name);
    inst_remove(c, in);
    event(c, "deregister", NULL, sid, name, NULL, WEFT_HEALTH_PASSING);
    persist(c, 's', sid, NULL, NULL, d);
}

/* Puts a copy of old in its place and returns it (the catalog's; not published yet, so the
 * caller may still change it), or NULL when out of memory (nothing changed). */
static reg_inst_t *inst_cow(weft_catalog_t *c, reg_inst_t *old)
{
    reg_inst_t *in = weft__inst_clone(old);
    if (!in) return NULL;
    return inst_put(c, in) == 0 ? in : NULL; /* inst_put released it on failure */
}

void weft__cat_check_register(weft_catalog_t *c, reg_check_t *k, reg_done_t *d)
{
    if (c->closed) {
        weft__check_free(k);
        return fail(d, 503, "the registry is shutting down");
    }
    cat_rt_t *rt = weft_strmap_get(&c->checks, k->id);
    if (*k->service_id) {
        reg_inst_t *old = weft_strmap_get(&c->insts, k->service_id);
        if (!old) {
            char sid[REG_MAX_ID + 1];
            snprintf(sid, sizeof(sid), "%s", k->service_id);
            weft__check_free(k);
            return fail(d, 400, "ServiceID: no service with ID \"%s\" is registered", sid);
        }
        if (rt && (!rt->inst_id || strcmp(rt->inst_id, old->id) != 0)) {
            weft__check_free(k);
            return fail(d, 400, "CheckID: belongs to another service or the node");
        }
        if (old->nchecks >= REG_MAX_CHECKS && !weft__inst_find_check(old, k->id)) {
            weft__check_free(k);
            return fail(d, 400, "Checks: the service has %d checks already", REG_MAX_CHECKS);
        }
        weft__sfree(k->service_name);
        if (!(k->service_name = strdup(old->name))) {
            weft__check_free(k);
            return fail(d, 500, "out of memory");
        }
        reg_inst_t *in = weft__inst_clone(old);
        reg_check_t *was = weft__inst_find_check(old, k->id);
        c->index++;
        k->create_index = was ? was->create_index : c->index;
        k->modify_index = c->index;
        check_hist(c, k, k->status, k->status, wall_ms());
        if (!in || weft__inst_put_check(in, k) != 0) {
            weft_snap_release(in);
            weft__check_free(k);
            return fail(d, 500, "out of memory");
        }
        if (inst_put(c, in) != 0) return fail(d, 500, "out of memory");
        rt_set(c, k, in);
        event(c, "check", in, in->id, in->name, k, k->status);
        persist(c, 's', in->id, in, NULL, d);
        return;
    }
    if (rt && rt->inst_id) {
        weft__check_free(k);
        return fail(d, 400, "CheckID: belongs to a service");
    }
    c->index++;
    k->create_index = k->modify_index = c->index;
    check_hist(c, k, k->status, k->status, wall_ms());
    uint32_t i = 0;
    while (i < c->nnode_checks && strcmp(c->node_checks[i]->id, k->id) != 0) i++;
    if (i == c->nnode_checks) {
        if (c->nnode_checks >= REG_MAX_CHECKS + 1) {
            weft__check_free(k);
            return fail(d, 400, "Checks: the node has %d checks already", REG_MAX_CHECKS);
        }
        reg_check_t **a = realloc(c->node_checks, (c->nnode_checks + 1) * sizeof(*a));
        if (!a) {
            weft__check_free(k);
            return fail(d, 500, "out of memory");
        }
        c->node_checks = a;
        c->nnode_checks++;
    } else {
        k->create_index = c->node_checks[i]->create_index;
        weft__check_free(c->node_checks[i]);
    }
    c->node_checks[i] = k;
    node_changed(c);
    rt_set(c, k, NULL);
    event(c, "check", NULL, "", "", k, k->status);
    persist(c, 'c', k->id, NULL, k, d);
}

void weft__cat_check_deregister(weft_catalog_t *c, const char *id, reg_done_t *d)
{
    if (c->closed) return fail(d, 503, "the registry is shutting down");
    cat_rt_t *rt = weft_strmap_get(&c->checks, id);
    if (!rt && strcmp(id, "serfHealth") != 0) return fail(d, 404, "Unknown check ID \"%s\"", id);
    if (!rt) return fail(d, 400, "CheckID: serfHealth is the node's own check");
    c->index++;
    if (rt->inst_id) {
        reg_inst_t *old = weft_strmap_get(&c->insts, rt->inst_id);
        rt_drop(c, id);
        reg_inst_t *in = old ? weft__inst_clone(old) : NULL;
        if (!in) return fail(d, 500, "out of memory");
        weft__inst_del_check(in, id);
        if (inst_put(c, in) != 0) return fail(d, 500, "out of memory");
        event(c, "check-deregister", in, in->id, in->name, NULL, WEFT_HEALTH_PASSING);
        persist(c, 's', in->id, in, NULL, d);
        return;
    }
    char cid[REG_MAX_ID + 1];
    snprintf(cid, sizeof(cid), "%s", id);
    rt_drop(c, id);
    for (uint32_t i = 0; i < c->nnode_checks; i++) {
        if (strcmp(c->node_checks[i]->id, cid) != 0) continue;
        weft__check_free(c->node_checks[i]);
        memmove(&c->node_checks[i], &c->node_checks[i + 1],
                (c->nnode_checks - i - 1) * sizeof(c->node_checks[0]));
        c->nnode_checks--;
        break;
    }
    node_changed(c);
    event(c, "check-deregister", NULL, "", "", NULL, WEFT_HEALTH_PASSING);
    persist(c, 'c', cid, NULL, NULL, d);
}

/* Sets check rt's status and output; the core of TTL updates, checker results and TTL
 * expiry. d may be NULL. */
static void set_status(weft_catalog_t *c, cat_rt_t *rt, weft_health_t st, const char *output,
                       reg_done_t *d)
{
    reg_check_t *cur = NULL;
    reg_inst_t *old = NULL;
    uint32_t ni = 0;
    if (rt->inst_id) {
        old = weft_strmap_get(&c->insts, rt->inst_id);
        cur = old ? weft__inst_find_check(old, rt->check_id) : NULL;
    } else {
        for (ni = 0; ni < c->nnode_checks; ni++)
            if (strcmp(c->node_checks[ni]->id, rt->check_id) == 0) {
                cur = c->node_checks[ni];
                break;
            }
    }
    if (!cur) return fail(d, 404, "Unknown check ID \"%s\"", rt->check_id);
    if (st == WEFT_HEALTH_CRITICAL) {
        if (!rt->critical_since) rt->critical_since = now_ms();
    } else {
        rt->critical_since = 0;
    }
    bool status_changed = cur->status != st;
    bool output_changed = output && strcmp(cur->output, output) != 0;
    if (!status_changed && !output_changed) {
        reply(c, d, 200, NULL);
        return;
    }
    if (!status_changed) {
        /* Output only: no new index, no disk write. */
        char *o = strdup(output);
        if (!o) return fail(d, 500, "out of memory");
        if (old) {
            /* Published, but the service keeps its index: readers see the output, and no
             * blocking query wakes for it (the checker tells outputs only with a change of
             * status and with a check's first result, so this is rare). */
            cat_svc_t *cs = svc_get(c, old->name, false);
            uint64_t idx = cs ? cs->index : 0;
            reg_inst_t *in = inst_cow(c, old);
            if (!in) {
                free(o);
                return fail(d, 500, "out of memory");
            }
            cur = weft__inst_find_check(in, rt->check_id);
            if (cs) cs->index = idx;
        }
        weft__sfree(cur->output);
        cur->output = o;
        if (!old) c->node_dirty = true;
        reply(c, d, 200, NULL);
        if (!d) arm_publish(c);
        return;
    }
    c->index++;
    weft_health_t from = cur->status;
    if (old) {
        reg_inst_t *in = weft__inst_clone(old);
        reg_check_t *k = in ? weft__inst_find_check(in, rt->check_id) : NULL;
        char *o = output ? strdup(output) : NULL;
        if (!k || (output && !o)) {
            free(o);
            weft_snap_release(in);
            return fail(d, 500, "out of memory");
        }
        if (o) {
            weft__sfree(k->output);
            k->output = o;
        }
        k->status = st;
        k->modify_index = c->index;
        check_hist(c, k, from, st, wall_ms());
        if (inst_put(c, in) != 0) return fail(d, 500, "out of memory");
        c->st.writes += 0;
        event(c, "health", in, in->id, in->name, k, from);
        persist(c, 's', in->id, in, NULL, d);
        return;
    }
    char *o = output ? strdup(output) : NULL;
    if (output && !o) return fail(d, 500, "out of memory");
    if (o) {
        weft__sfree(cur->output);
        cur->output = o;
    }
    cur->status = st;
    cur->modify_index = c->index;
    check_hist(c, cur, from, st, wall_ms());
    node_changed(c);
    event(c, "health", NULL, "", "", cur, from);
    persist(c, 'c', cur->id, NULL, cur, d);
}

void weft__cat_check_update(weft_catalog_t *c, const char *id, weft_health_t st, const char *output,
                            reg_done_t *d)
{
    if (c->closed) return fail(d, 503, "the registry is shutting down");
    cat_rt_t *rt = weft_strmap_get(&c->checks, id);
    if (!rt) return fail(d, 404, "Unknown check ID \"%s\"", id);
    if (!rt->ttl_ms) return fail(d, 400, "CheckID: \"%s\" is not a TTL check", id);
    ttl_arm(c, rt);
    set_status(c, rt, st, output, d);
}

static void on_ttl(uv_timer_t *t)
{
    cat_rt_t *rt = t->data;
    weft_catalog_t *c = rt->cat;
    if (c->closed) return;
    char out[128];
    snprintf(out, sizeof(out), "TTL expired (no update for %" PRIu64 " ms)", rt->ttl_ms);
    set_status(c, rt, WEFT_HEALTH_CRITICAL, out, NULL);
}

void weft__cat_check_result(weft_catalog_t *c, uint64_t key, weft_health_t st, const char *output)
{
    uint32_t slot = (uint32_t)key, gen = (uint32_t)(key >> 32);
    if (c->closed || slot >= c->cap_slots || !c->slots[slot] || c->slots[slot]->gen != gen) return;
    set_status(c, c->slots[slot], st, output, NULL);
}

void weft__cat_maintenance(weft_catalog_t *c, const char *id, bool enable, const char *reason,
                           reg_done_t *d)
{
    if (c->closed) return fail(d, 503, "the registry is shutting down");
    reg_inst_t *old = weft_strmap_get(&c->insts, id);
    if (!old) return fail(d, 404, "Unknown service ID \"%s\"", id);
    char cid[REG_MAX_ID + 32];
    snprintf(cid, sizeof(cid), MAINT_PREFIX "%s", id);
    reg_check_t *was = weft__inst_find_check(old, cid);
    if (enable && was && (!reason || strcmp(was->notes, reason) == 0))
        return reply(c, d, 200, NULL);
    if (!enable && !was) return reply(c, d, 200, NULL);
    reg_inst_t *in = weft__inst_clone(old);
    if (!in) return fail(d, 500, "out of memory");
    c->index++;
    if (enable) {
        reg_check_t *k = calloc(1, sizeof(*k));
        const char *notes = reason && *reason ? reason
                                              : "Maintenance mode is enabled for this service, "
                                                "but no reason was provided. This is a default "
                                                "message.";
        if (k) {
            k->id = strdup(cid);
            k->name = strdup("Service Maintenance Mode");
            k->notes = strdup(notes);
            k->output = strdup("");
            k->service_id = strdup(in->id);
            k->service_name = strdup(in->name);
            k->http = strdup("");
            k->method = strdup("");
            k->body = strdup("");
            k->tcp = strdup("");
            k->type = REG_CHECK_MAINT;
            k->status = WEFT_HEALTH_CRITICAL;
            k->create_index = k->modify_index = c->index;
        }
        if (!k || !k->id || !k->name || !k->notes || !k->output || !k->service_id ||
            !k->service_name || !k->http || !k->method || !k->body || !k->tcp ||
            weft__inst_put_check(in, k) != 0) {
            weft__check_free(k);
            weft_snap_release(in);
            return fail(d, 500, "out of memory");
        }
        check_hist(c, k, WEFT_HEALTH_PASSING, WEFT_HEALTH_CRITICAL, wall_ms());
    } else {
        weft__inst_del_check(in, cid);
    }
    if (inst_put(c, in) != 0) return fail(d, 500, "out of memory");
    event(c, enable ? "maintenance-on" : "maintenance-off", in, in->id, in->name, NULL,
          WEFT_HEALTH_PASSING);
    persist(c, 's', in->id, in, NULL, d);
}

/* ---- reaping ---- */

static void on_reap(uv_timer_t *t)
{
    weft_catalog_t *c = t->data;
    uint64_t now = now_ms();
    for (;;) {
        const char *victim = NULL;
        for (uint32_t i = 0; i < c->cap_slots && !victim; i++) {
            cat_rt_t *rt = c->slots[i];
            if (rt && rt->inst_id && rt->dereg_ms && rt->critical_since &&
                now - rt->critical_since >= rt->dereg_ms)
                victim = rt->inst_id;
        }
        if (!victim) break;
        char id[REG_MAX_ID + 1];
        snprintf(id, sizeof(id), "%s", victim);
        weft_info("registry", "deregistering a service critical for too long", "service_id=%s", id);
        c->st.reaped++;
        weft__cat_deregister(c, id, NULL);
    }
}

/* ---- life ---- */

static reg_check_t *serf_health(void)
{
    reg_check_t *k = calloc(1, sizeof(*k));
    if (!k) return NULL;
    k->id = strdup("serfHealth");
    k->name = strdup("Serf Health Status");
    k->notes = strdup("");
    k->output = strdup("Agent alive and reachable");
    k->service_id = strdup("");
    k->service_name = strdup("");
    k->http = strdup("");
    k->method = strdup("");
    k->body = strdup("");
    k->tcp = strdup("");
    k->type = REG_CHECK_NONE;
    k->status = WEFT_HEALTH_PASSING;
    k->create_index = k->modify_index = 1;
    if (!k->id || !k->name || !k->notes || !k->output || !k->service_id || !k->service_name ||
        !k->http || !k->method || !k->body || !k->tcp) {
        weft__check_free(k);
        return NULL;
    }
    return k;
}

int weft_catalog_new(const weft_catalog_options_t *o, weft_catalog_t **out, char *err,
                     size_t errlen)
{
    weft_catalog_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return WEFT_ENOMEM;
    }
    c->o = *o;
    if (!c->o.max_instances) c->o.max_instances = 100000;
    weft_strmap_init(&c->insts);
    weft_strmap_init(&c->svcs);
    weft_strmap_init(&c->checks);
    weft_buf_init(&c->events, 4u << 20);
    c->index = 1;
    c->services_index = 1;
    reg_check_t *serf = serf_health();
    c->node_checks = malloc(sizeof(reg_check_t *));
    if (!serf || !c->node_checks) {
        weft__check_free(serf);
        free(c->node_checks);
        free(c);
        snprintf(err, errlen, "out of memory");
        return WEFT_ENOMEM;
    }
    c->node_checks[0] = serf;
    c->nnode_checks = 1;
    uv_timer_init(o->loop, &c->publish_timer);
    uv_timer_init(o->loop, &c->reap_timer);
    c->publish_timer.data = c->reap_timer.data = c;
    c->timers_open = true;
    uv_timer_start(&c->reap_timer, on_reap, REAP_EVERY_MS, REAP_EVERY_MS);
    uv_unref((uv_handle_t *)&c->reap_timer);
    *out = c;
    return 0;
}

typedef struct load_s {
    weft_catalog_t *c;
    char *err;
    size_t errlen;
    uint64_t max_index;
    unsigned bad;
} load_t;

static int load_one(void *arg, const char *key, size_t klen, const void *val, size_t vlen)
{
    load_t *l = arg;
    weft_catalog_t *c = l->c;
    char kb[REG_MAX_ID + 16];
    snprintf(kb, sizeof(kb), "%.*s", (int)(klen < sizeof(kb) - 1 ? klen : sizeof(kb) - 1), key);
    if (strcmp(kb, "meta/index") == 0) {
        char nb[32];
        snprintf(nb, sizeof(nb), "%.*s", (int)(vlen < 31 ? vlen : 31), (const char *)val);
        uint64_t v = strtoull(nb, NULL, 10);
        if (v > l->max_index) l->max_index = v;
        return 0;
    }
    json_error_t je;
    json_t *root = json_loadb(val, vlen, 0, &je);
    char msg[300];
    if (!root) {
        weft_warn("registry", "skipping a record that is not JSON", "key=%s error=\"%s\"", kb,
                  je.text);
        l->bad++;
        return 0;
    }
    if (strncmp(kb, "svc/", 4) == 0) {
        reg_inst_t *in;
        if (weft__inst_decode(root, REG_SRC_STORE, &in, msg, sizeof(msg)) != 0) {
            weft_warn("registry", "skipping a bad record", "key=%s error=\"%s\"", kb, msg);
            l->bad++;
        } else {
            if (in->modify_index > l->max_index) l->max_index = in->modify_index;
            if (inst_put(c, in) != 0) {
                json_decref(root);
                snprintf(l->err, l->errlen, "out of memory loading the catalog");
                return WEFT_ENOMEM;
            }
        }
    } else if (strncmp(kb, "chk/", 4) == 0) {
        reg_check_t *k;
        if (weft__check_decode(root, REG_SRC_STORE, NULL, NULL, &k, msg, sizeof(msg)) != 0) {
            weft_warn("registry", "skipping a bad record", "key=%s error=\"%s\"", kb, msg);
            l->bad++;
        } else {
            reg_check_t **a = realloc(c->node_checks, (c->nnode_checks + 1) * sizeof(*a));
            if (!a) {
                weft__check_free(k);
                json_decref(root);
                return WEFT_ENOMEM;
            }
            c->node_checks = a;
            c->node_checks[c->nnode_checks++] = k;
            if (k->modify_index > l->max_index) l->max_index = k->modify_index;
        }
    } else {
        weft_warn("registry", "skipping a record of an unknown kind", "key=%s", kb);
    }
    json_decref(root);
    return 0;
}

int weft_catalog_load(weft_catalog_t *c, char *err, size_t errlen)
{
    load_t l = {.c = c, .err = err, .errlen = errlen};
    if (c->o.store) {
        int rc = weft_store_load(c->o.store, load_one, &l, err, errlen);
        if (rc != 0) return rc;
    }
    if (l.max_index > c->index) c->index = l.max_index;
    c->index++; /* a restart is a change: every watcher's index is behind */
    c->services_index = c->index;
    /* Node health first (instances read it), then run-time state for every check. */
    for (uint32_t i = 0; i < c->nnode_checks; i++) rt_set(c, c->node_checks[i], NULL);
    for (size_t i = 0; i < c->insts.cap; i++) {
        if (!c->insts.slots[i].key) continue;
        reg_inst_t *in = c->insts.slots[i].val;
        node_health_apply(c, in);
        for (uint32_t k = 0; k < in->nchecks; k++) rt_set(c, in->checks[k], in);
    }
    for (size_t i = 0; i < c->svcs.cap; i++)
        if (c->svcs.slots[i].key) ((cat_svc_t *)c->svcs.slots[i].val)->index = c->index;
    if (c->insts.n || l.bad)
        weft_info("registry", "catalog loaded",
                  "instances=%zu services=%zu index=%" PRIu64 " skipped=%u", c->insts.n, c->svcs.n,
                  c->index, l.bad);
    node_changed(c);
    publish(c);
    return 0;
}

weft_catalog_stats_t weft_catalog_stats(const weft_catalog_t *c)
{
    weft_catalog_stats_t s = c->st;
    s.instances = c->insts.n;
    s.services = c->svcs.n;
    s.checks = c->checks.n;
    s.index = c->index;
    return s;
}

void weft_catalog_close(weft_catalog_t *c)
{
    if (c->closed) return;
    c->closed = true;
    for (uint32_t i = 0; i < c->cap_slots; i++) {
        cat_rt_t *rt = c->slots[i];
        if (!rt) continue;
        if (rt->ttl) {
            uv_close((uv_handle_t *)rt->ttl, rt_close_cb);
            rt->ttl = NULL;
        }
    }
    c->timers_open = false;
    uv_close((uv_handle_t *)&c->publish_timer, NULL);
    uv_close((uv_handle_t *)&c->reap_timer, NULL);
    if (c->nreplies) publish(c);
}

/* After the store closed (its last dones ran): answers what they queued. */
void weft__cat_flush(weft_catalog_t *c)
{
    if (c->nreplies) publish(c);
}

void weft_catalog_free(weft_catalog_t *c)
{
    if (!c) return;
    for (uint32_t i = 0; i < c->cap_slots; i++) {
        cat_rt_t *rt = c->slots[i];
        if (!rt) continue;
        rt->running = false;
        free(rt->check_id);
        free(rt->inst_id);
        free(rt);
    }
    free(c->slots);
    free(c->free_slots);
    weft_strmap_free(&c->checks);
    for (uint32_t i = 0; i < c->order.n; i++) svc_free(c->order.a[i]);
    free(c->order.a);
    weft_strmap_free(&c->svcs);
    for (size_t i = 0; i < c->insts.cap; i++)
        if (c->insts.slots[i].key) weft_snap_release(c->insts.slots[i].val);
    weft_strmap_free(&c->insts);
    for (uint32_t i = 0; i < c->nnode_checks; i++) weft__check_free(c->node_checks[i]);
    free(c->node_checks);
    weft_snap_release(c->cur);
    free(c->replies);
    weft_buf_free(&c->events);
    free(c);
}
