/*
 * model.c - instances and checks: building, copying, freeing, health.
 *
 * An instance is a snapshot object (weft_snap_alloc): its destroy function frees the
 * strings, arrays and checks it owns, once the last snapshot holding it is gone. Checks
 * are plain heap objects owned by one instance. Every string is its own allocation and
 * never NULL ("" when absent), so that encoders and comparisons need no NULL checks.
 *
 * Memory policy: these run on the control loop of the weft daemon, but a failed allocation
 * is still reported (NULL / -1) and turned into a 500 by the caller, never an abort.
 * Thread: whoever builds an object owns it until it is published; afterwards only reads.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "core/snapshot.h"
#include "registry/model.h"

char weft__empty[1];

char *weft__sdup(const char *s)
{
    return *s ? strdup(s) : weft__empty;
}

void weft__sfree(char *s)
{
    if (s != weft__empty) free(s);
}

static void kv_free(reg_kv_t *kv, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        free(kv[i].k);
        free(kv[i].v);
    }
    free(kv);
}

static reg_kv_t *kv_clone(const reg_kv_t *kv, uint32_t n)
{
    if (n == 0) return NULL;
    reg_kv_t *o = calloc(n, sizeof(*o));
    if (!o) return NULL;
    for (uint32_t i = 0; i < n; i++) {
        o[i].k = strdup(kv[i].k);
        o[i].v = strdup(kv[i].v);
        if (!o[i].k || !o[i].v) {
            kv_free(o, i + 1);
            return NULL;
        }
    }
    return o;
}

void weft__check_free(reg_check_t *c)
{
    if (!c) return;
    weft__sfree(c->id);
    weft__sfree(c->name);
    weft__sfree(c->notes);
    weft__sfree(c->output);
    weft__sfree(c->service_id);
    weft__sfree(c->service_name);
    weft__sfree(c->http);
    weft__sfree(c->method);
    weft__sfree(c->body);
    weft__sfree(c->tcp);
    kv_free(c->headers, c->nheaders);
    free(c);
}

#define DUP(f)                                                                                     \
    do {                                                                                           \
        if (!(o->f = weft__sdup(c->f))) goto fail;                                                 \
    } while (0)

reg_check_t *weft__check_clone(const reg_check_t *c)
{
    reg_check_t *o = malloc(sizeof(*o));
    if (!o) return NULL;
    *o = *c;
    o->id = o->name = o->notes = o->output = o->service_id = o->service_name = NULL;
    o->http = o->method = o->body = o->tcp = NULL;
    o->headers = NULL;
    o->nheaders = 0;
    DUP(id);
    DUP(name);
    DUP(notes);
    DUP(output);
    DUP(service_id);
    DUP(service_name);
    DUP(http);
    DUP(method);
    DUP(body);
    DUP(tcp);
    if (c->nheaders) {
        if (!(o->headers = kv_clone(c->headers, c->nheaders))) goto fail;
        o->nheaders = c->nheaders;
    }
    return o;
fail:
    weft__check_free(o);
    return NULL;
}

static void inst_destroy(void *obj)
{
    reg_inst_t *in = obj;
    weft__sfree(in->id);
    weft__sfree(in->name);
    weft__sfree(in->address);
    weft__sfree(in->kind);
    for (uint32_t i = 0; i < in->ntags; i++) weft__sfree(in->tags[i]);
    free(in->tags);
    kv_free(in->meta, in->nmeta);
    for (uint32_t i = 0; i < in->nchecks; i++) weft__check_free(in->checks[i]);
    free(in->checks);
}

reg_inst_t *weft__inst_new(void)
{
    reg_inst_t *in = weft_snap_alloc(sizeof(*in), inst_destroy);
    if (!in) return NULL;
    in->w_passing = 1;
    in->w_warning = 1;
    return in;
}

#undef DUP
#define DUP(f)                                                                                     \
    do {                                                                                           \
        if (!(o->f = weft__sdup(c->f))) goto fail;                                                 \
    } while (0)

reg_inst_t *weft__inst_clone(const reg_inst_t *c)
{
    reg_inst_t *o = weft__inst_new();
    if (!o) return NULL;
    o->port = c->port;
    o->addr_fam = c->addr_fam;
    memcpy(o->addr_bin, c->addr_bin, sizeof(o->addr_bin));
    o->eto = c->eto;
    o->w_passing = c->w_passing;
    o->w_warning = c->w_warning;
    o->create_index = c->create_index;
    o->modify_index = c->modify_index;
    o->health = c->health;
    DUP(id);
    DUP(name);
    DUP(address);
    DUP(kind);
    if (c->ntags) {
        if (!(o->tags = calloc(c->ntags, sizeof(char *)))) goto fail;
        for (uint32_t i = 0; i < c->ntags; i++, o->ntags++)
            if (!(o->tags[i] = weft__sdup(c->tags[i]))) goto fail;
    }
    if (c->nmeta) {
        if (!(o->meta = kv_clone(c->meta, c->nmeta))) goto fail;
        o->nmeta = c->nmeta;
    }
    if (c->nchecks) {
        if (!(o->checks = calloc(c->nchecks, sizeof(reg_check_t *)))) goto fail;
        for (uint32_t i = 0; i < c->nchecks; i++, o->nchecks++)
            if (!(o->checks[i] = weft__check_clone(c->checks[i]))) goto fail;
    }
    return o;
fail:
    weft_snap_release(o);
    return NULL;
}

void weft__inst_parse_addr(reg_inst_t *in)
{
    in->addr_fam = 0;
    if (inet_pton(AF_INET, in->address, in->addr_bin) == 1)
        in->addr_fam = 4;
    else if (inet_pton(AF_INET6, in->address, in->addr_bin) == 1)
        in->addr_fam = 6;
}

void weft__inst_health(reg_inst_t *in, weft_health_t node_health)
{
    weft_health_t h = node_health == WEFT_HEALTH_MAINT ? WEFT_HEALTH_CRITICAL : node_health;
    for (uint32_t i = 0; i < in->nchecks; i++) {
        weft_health_t s = in->checks[i]->status;
        if (in->checks[i]->type == REG_CHECK_MAINT) s = WEFT_HEALTH_CRITICAL;
        if (s > h) h = s;
    }
    in->health = h;
}

reg_check_t *weft__inst_find_check(const reg_inst_t *in, const char *id)
{
    for (uint32_t i = 0; i < in->nchecks; i++)
        if (strcmp(in->checks[i]->id, id) == 0) return in->checks[i];
    return NULL;
}

int weft__inst_put_check(reg_inst_t *in, reg_check_t *c)
{
    for (uint32_t i = 0; i < in->nchecks; i++) {
        if (strcmp(in->checks[i]->id, c->id) == 0) {
            weft__check_free(in->checks[i]);
            in->checks[i] = c;
            return 0;
        }
    }
    if (in->nchecks >= REG_MAX_CHECKS + 1) return -1; /* + 1: room for maintenance */
    reg_check_t **a = realloc(in->checks, (in->nchecks + 1) * sizeof(reg_check_t *));
    if (!a) return -1;
    in->checks = a;
    in->checks[in->nchecks++] = c;
    return 0;
}

int weft__inst_del_check(reg_inst_t *in, const char *id)
{
    for (uint32_t i = 0; i < in->nchecks; i++) {
        if (strcmp(in->checks[i]->id, id) == 0) {
            weft__check_free(in->checks[i]);
            memmove(&in->checks[i], &in->checks[i + 1],
                    (in->nchecks - i - 1) * sizeof(in->checks[0]));
            in->nchecks--;
            return 0;
        }
    }
    return -1;
}

void weft__check_hist(reg_check_t *c, weft_health_t from, weft_health_t to, uint64_t at_ms)
{
    if (c->nhist == REG_HIST) {
        memmove(&c->hist[0], &c->hist[1], (REG_HIST - 1) * sizeof(c->hist[0]));
        c->nhist--;
    }
    c->hist[c->nhist++] = (reg_hist_t){.at_ms = at_ms, .from = (uint8_t)from, .to = (uint8_t)to};
}

bool weft__inst_has_tag(const reg_inst_t *in, const char *tag, size_t n)
{
    for (uint32_t i = 0; i < in->ntags; i++)
        if (strlen(in->tags[i]) == n && memcmp(in->tags[i], tag, n) == 0) return true;
    return false;
}
