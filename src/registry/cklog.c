/*
 * cklog.c - each health check's last REG_CKLOG_KEPT status transitions, with the output the
 * check had at each, for the dashboard (see cklog.h; served as GET /v1/weft/checks/ID/history).
 *
 * Why beside the catalog's own History (model.h, REG_HIST): that one travels in every copy
 * of an instance (copy-on-write snapshots), in every Consul answer that lists checks and in
 * the store, so it stays small (8 transitions, no output). This log is memory only, written
 * once per transition by the catalog's owner and read only when the dashboard asks: it may
 * hold 32 transitions with their outputs without making any other path heavier. It starts
 * empty at each start (the persisted History survives restarts).
 *
 * Memory: at most REG_CKLOG_CHECKS checks; each holds a fixed ring of REG_CKLOG_KEPT entries
 * and each entry an output of at most REG_CKLOG_OUTPUT_MAX bytes, allocated at its length:
 * at most 2048 x 32 x (256 + 32) bytes = 18.9 MB, about a tenth of that with outputs of
 * ordinary length. A check seen when the log is full takes the place of the check whose
 * last transition is oldest (usually one deregistered long ago); a deregistered check is
 * otherwise kept, so that its last transitions can still be read.
 *
 * Threads: weft__cklog_add on the control loop (the catalog's writes); weft__cklog_json on
 * any (an API worker). One mutex, taken by both, never by a request of any other API.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_write.h"
#include "registry/cklog.h"
#include "registry/status.h"
#include "registry/strmap.h"

typedef struct ck_ent_s {
    uint64_t at_ms;
    uint8_t from, to;
    char *output; /* malloc'd, cut at REG_CKLOG_OUTPUT_MAX - 1 bytes; NULL: "" */
} ck_ent_t;

typedef struct ck_s {
    char *id;     /* the map's key */
    uint64_t n;   /* transitions ever logged: ent[(n - 1) % KEPT] is the newest */
    uint64_t last_ms;
    ck_ent_t ent[REG_CKLOG_KEPT];
} ck_t;

struct reg_cklog_s {
    pthread_mutex_t mu;
    weft_strmap_t map; /* id -> ck_t */
    uint64_t evicted;  /* checks that gave their place to another */
};

reg_cklog_t *weft__cklog_new(void)
{
    reg_cklog_t *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    pthread_mutex_init(&l->mu, NULL);
    weft_strmap_init(&l->map);
    return l;
}

static void ck_free(ck_t *k)
{
    if (!k) return;
    for (size_t i = 0; i < REG_CKLOG_KEPT; i++) free(k->ent[i].output);
    free(k->id);
    free(k);
}

void weft__cklog_free(reg_cklog_t *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->map.cap; i++)
        if (l->map.slots[i].key) ck_free(l->map.slots[i].val);
    weft_strmap_free(&l->map);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* Under mu: the check whose last transition is oldest, out of the map. */
static ck_t *evict_oldest(reg_cklog_t *l)
{
    ck_t *v = NULL;
    for (size_t i = 0; i < l->map.cap; i++) {
        ck_t *k = l->map.slots[i].key ? l->map.slots[i].val : NULL;
        if (k && (!v || k->last_ms < v->last_ms)) v = k;
    }
    if (v) {
        weft_strmap_del(&l->map, v->id);
        l->evicted++;
    }
    return v;
}

void weft__cklog_add(reg_cklog_t *l, const char *id, int from, int to, uint64_t at_ms,
                     const char *output)
{
    if (!l) return;
    size_t olen = output ? strlen(output) : 0;
    if (olen >= REG_CKLOG_OUTPUT_MAX) olen = REG_CKLOG_OUTPUT_MAX - 1;
    char *o = olen ? malloc(olen + 1) : NULL; /* outside the lock */
    if (o) {
        memcpy(o, output, olen);
        o[olen] = 0;
    }
    pthread_mutex_lock(&l->mu);
    ck_t *k = weft_strmap_get(&l->map, id);
    if (!k) {
        ck_t *old = l->map.n >= REG_CKLOG_CHECKS ? evict_oldest(l) : NULL;
        ck_free(old);
        k = calloc(1, sizeof(*k));
        if (k && !(k->id = strdup(id))) {
            free(k);
            k = NULL;
        }
        if (k && weft_strmap_put(&l->map, k->id, k) != 0) {
            ck_free(k);
            k = NULL;
        }
        if (!k) { /* out of memory: this transition is not logged */
            pthread_mutex_unlock(&l->mu);
            free(o);
            return;
        }
    }
    ck_ent_t *e = &k->ent[k->n++ % REG_CKLOG_KEPT];
    free(e->output);
    *e = (ck_ent_t){.at_ms = at_ms, .from = (uint8_t)from, .to = (uint8_t)to, .output = o};
    k->last_ms = at_ms;
    pthread_mutex_unlock(&l->mu);
}

int weft__cklog_json(reg_cklog_t *l, const char *id, uint64_t since_ms, weft_buf_t *b)
{
    pthread_mutex_lock(&l->mu);
    ck_t *k = weft_strmap_get(&l->map, id);
    if (!k) {
        pthread_mutex_unlock(&l->mu);
        return WEFT_ENOENT;
    }
    uint64_t kept = k->n < REG_CKLOG_KEPT ? k->n : REG_CKLOG_KEPT;
    weft_buf_puts(b, "{\"check_id\":");
    weft_json_put_str(b, k->id, strlen(k->id));
    weft_buf_puts(b, ",\"kept_max\":");
    weft_buf_put_u64(b, REG_CKLOG_KEPT);
    weft_buf_puts(b, ",\"output_max_bytes\":");
    weft_buf_put_u64(b, REG_CKLOG_OUTPUT_MAX - 1);
    weft_buf_puts(b, ",\"dropped\":");
    weft_buf_put_u64(b, k->n - kept);
    weft_buf_puts(b, ",\"transitions\":[");
    bool first = true;
    for (uint64_t i = k->n - kept; i < k->n; i++) {
        const ck_ent_t *e = &k->ent[i % REG_CKLOG_KEPT];
        if (e->at_ms <= since_ms) continue;
        weft_buf_puts(b, first ? "{\"time_ms\":" : ",{\"time_ms\":");
        first = false;
        weft_buf_put_u64(b, e->at_ms);
        weft_buf_puts(b, ",\"from\":\"");
        weft_buf_puts(b, weft__health_name((weft_health_t)e->from));
        weft_buf_puts(b, "\",\"to\":\"");
        weft_buf_puts(b, weft__health_name((weft_health_t)e->to));
        weft_buf_puts(b, "\",\"output\":");
        weft_json_put_str(b, e->output ? e->output : "", e->output ? strlen(e->output) : 0);
        weft_buf_putc(b, '}');
    }
    weft_buf_puts(b, "]}\n");
    pthread_mutex_unlock(&l->mu);
    return 0;
}
