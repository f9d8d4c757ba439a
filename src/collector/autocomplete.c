/*
 * autocomplete.c - Zipkin's tag autocomplete: the keys configured in
 * collector.autocomplete_keys (Zipkin's AUTOCOMPLETE_KEYS), and per key the distinct values
 * the stored spans have for it, which Zipkin's UI offers in its tag search box.
 *
 * Where the values come from. The trace store indexes services, operations and remote
 * services per block, not attributes: a tag search decodes the blocks it reads. So the values
 * are derived from the stored blocks themselves, not kept at ingest: the first request for a
 * key reads every live block (newest first, like a tag search that matches nothing) and
 * remembers the values and the range of block ids it covered; a later request reads only
 * the blocks written since (usually none or a few), and reads everything again once
 * retention has deleted blocks (the store's first live block id moved), so values of
 * expired spans disappear at the first request after their blocks go. After a restart the
 * first request rebuilds them from what is stored. The ingest path pays nothing, and a key
 * nobody asks about costs nothing. The cost: a whole read takes as long as a tag search
 * that matches nothing (store.c's measurements), once per key asked after each segment
 * retention deletes (an eighth of the store at a time), and it goes through the store's
 * block cache as a search does.
 *
 * Which values. The attributes named key of the spans and of their resources (those a tag
 * search matches, so that picking a value finds traces), as Zipkin shows them: strings as
 * they are, booleans, integers and doubles as text. Empty strings, byte strings, arrays and
 * maps, and values longer than COL_AC_VALUE_MAX are not offered.
 *
 * Bounds. Per key at most max_values distinct values (collector.autocomplete_max_values)
 * and COL_AC_BYTES_PER_KEY bytes of them. The full read stops at the bound, so a key with
 * more values offers the newest blocks' ones; while a key is full, new blocks are not read
 * for it until retention makes it read everything again.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "collector/autocomplete.h"
#include "collector/encode_util.h"
#include "core/json_write.h"
#include "weft/common.h"

typedef struct ac_key_s {
    char *name;
    uint32_t len;
    pthread_mutex_t mu;
    /* the blocks [first, end) have been read; valid: once a read succeeded */
    bool valid, full;
    uint32_t first, end;
    /* the values: their bytes in pool, (offset, length) in ent, ent's index + 1 in slot */
    char *pool;
    size_t pool_n, pool_cap;
    struct {
        uint32_t off, len;
    } * ent;
    size_t n, ent_cap;
    uint32_t *slot;
    size_t cap; /* a power of two, or 0 */
} ac_key_t;

struct col_ac_s {
    ac_key_t *keys; /* sorted by name, no repeats */
    size_t nkeys;
    size_t max_values;
};

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (an > bn) - (an < bn);
}

/* ---- the configured keys ---- */

/* Calls fn for each key of the list, trimmed; stops at the first nonzero return. */
static int each_key(const char *keys, int (*fn)(const char *p, size_t n, void *arg), void *arg)
{
    const char *p = keys ? keys : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if (t > s) {
            int r = fn(s, (size_t)(t - s), arg);
            if (r) return r;
        }
        p = comma ? comma + 1 : e;
    }
    return 0;
}

typedef struct count_s {
    size_t n;
    bool too_long;
} count_t;

static int count_key(const char *p, size_t n, void *arg)
{
    (void)p;
    count_t *c = arg;
    c->n++;
    if (n > COL_AC_KEY_MAX) c->too_long = true;
    return 0;
}

const char *col_ac_keys_check(const char *keys)
{
    count_t c = {0};
    each_key(keys, count_key, &c);
    if (c.n > COL_AC_MAX_KEYS) return "at most 32 keys";
    if (c.too_long) return "a key is longer than 256 bytes";
    return NULL;
}

static int add_key(const char *p, size_t n, void *arg)
{
    col_ac_t *ac = arg;
    for (size_t i = 0; i < ac->nkeys; i++)
        if (cmp_bytes(ac->keys[i].name, ac->keys[i].len, p, n) == 0) return 0;
    ac_key_t *k = &ac->keys[ac->nkeys];
    if (!(k->name = malloc(n + 1))) return WEFT_ENOMEM;
    memcpy(k->name, p, n);
    k->name[n] = 0;
    k->len = (uint32_t)n;
    pthread_mutex_init(&k->mu, NULL);
    ac->nkeys++;
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    const ac_key_t *x = a, *y = b;
    return cmp_bytes(x->name, x->len, y->name, y->len);
}

int col_ac_new(const char *keys, size_t max_values, col_ac_t **out)
{
    *out = NULL;
    if (col_ac_keys_check(keys) || max_values == 0) return WEFT_EINVAL;
    col_ac_t *ac = calloc(1, sizeof *ac);
    if (!ac || !(ac->keys = calloc(COL_AC_MAX_KEYS, sizeof *ac->keys))) {
        free(ac);
        return WEFT_ENOMEM;
    }
    ac->max_values = max_values;
    int rc = each_key(keys, add_key, ac);
    if (rc != 0) {
        col_ac_free(ac);
        return rc;
    }
    if (ac->nkeys) qsort(ac->keys, ac->nkeys, sizeof *ac->keys, cmp_key);
    *out = ac;
    return 0;
}

static void values_clear(ac_key_t *k)
{
    free(k->pool);
    free(k->ent);
    free(k->slot);
    k->pool = NULL;
    k->ent = NULL;
    k->slot = NULL;
    k->pool_n = k->pool_cap = k->n = k->ent_cap = k->cap = 0;
    k->full = k->valid = false;
}

void col_ac_free(col_ac_t *ac)
{
    if (!ac) return;
    for (size_t i = 0; i < ac->nkeys; i++) {
        values_clear(&ac->keys[i]);
        pthread_mutex_destroy(&ac->keys[i].mu);
        free(ac->keys[i].name);
    }
    free(ac->keys);
    free(ac);
}

void col_ac_keys(const col_ac_t *ac, weft_buf_t *out)
{
    weft_buf_putc(out, '[');
    for (size_t i = 0; i < ac->nkeys; i++) {
        if (i) weft_buf_putc(out, ',');
        weft_json_put_str(out, ac->keys[i].name, ac->keys[i].len);
    }
    weft_buf_putc(out, ']');
}

/* ---- one key's values ---- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h ^ h >> 29;
}

static bool slots_grow(ac_key_t *k)
{
    size_t cap = k->cap ? k->cap * 2 : 64;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    for (size_t i = 0; i < k->n; i++) {
        size_t j = hash_bytes(k->pool + k->ent[i].off, k->ent[i].len) & (cap - 1);
        while (slot[j]) j = (j + 1) & (cap - 1);
        slot[j] = (uint32_t)i + 1;
    }
    free(k->slot);
    k->slot = slot;
    k->cap = cap;
    return true;
}

typedef struct add_ctx_s {
    ac_key_t *k;
    size_t max_values;
    weft_buf_t text; /* a non-string value as text */
    bool oom;
} add_ctx_t;

/* Adds v unless it is there; false: the bound is reached (k->full) or memory ran out. */
static bool value_add(add_ctx_t *x, const char *v, size_t n)
{
    ac_key_t *k = x->k;
    if (n == 0 || n > COL_AC_VALUE_MAX) return true;
    uint64_t h = hash_bytes(v, n);
    if (k->cap) {
        for (size_t j = h & (k->cap - 1); k->slot[j]; j = (j + 1) & (k->cap - 1)) {
            uint32_t i = k->slot[j] - 1;
            if (k->ent[i].len == n && memcmp(k->pool + k->ent[i].off, v, n) == 0) return true;
        }
    }
    if (k->n >= x->max_values || k->pool_n + n > COL_AC_BYTES_PER_KEY) {
        k->full = true;
        return false;
    }
    if ((k->n + 1) * 4 > k->cap * 3 && !slots_grow(k)) goto oom;
    if (k->n == k->ent_cap) {
        size_t cap = k->ent_cap ? k->ent_cap * 2 : 64;
        void *e = realloc(k->ent, cap * sizeof *k->ent);
        if (!e) goto oom;
        k->ent = e;
        k->ent_cap = cap;
    }
    if (k->pool_cap - k->pool_n < n) {
        size_t cap = k->pool_cap ? k->pool_cap : 4096;
        while (cap - k->pool_n < n) cap *= 2;
        char *pool = realloc(k->pool, cap);
        if (!pool) goto oom;
        k->pool = pool;
        k->pool_cap = cap;
    }
    memcpy(k->pool + k->pool_n, v, n);
    k->ent[k->n].off = (uint32_t)k->pool_n;
    k->ent[k->n].len = (uint32_t)n;
    k->pool_n += n;
    size_t j = h & (k->cap - 1);
    while (k->slot[j]) j = (j + 1) & (k->cap - 1);
    k->slot[j] = (uint32_t)++k->n;
    return true;
oom:
    x->oom = true;
    return false;
}

static bool on_attr(const col_attr_t *a, void *arg)
{
    add_ctx_t *x = arg;
    switch (a->type) {
    case COL_V_STRING:
        return value_add(x, a->v.s.p, a->v.s.n);
    case COL_V_BOOL:
    case COL_V_INT:
    case COL_V_DOUBLE:
        weft_buf_reset(&x->text);
        col_attr_text(&x->text, a);
        if (x->text.failed) {
            x->oom = true;
            return false;
        }
        return value_add(x, x->text.p, x->text.len);
    default:
        return true; /* bytes, arrays, maps, empty: nothing to type into a search box */
    }
}

typedef struct view_s {
    const char *p;
    size_t n;
} view_t;

static int cmp_view(const void *a, const void *b)
{
    const view_t *x = a, *y = b;
    return cmp_bytes(x->p, x->n, y->p, y->n);
}

/* Brings k's values up to date with the store (k->mu held). 0 or an error (k then reads
 * everything next time). */
static int refresh(col_ac_t *ac, ac_key_t *k, col_store_t *st)
{
    uint32_t first, end, from;
    col_store_blocks(st, &first, &end);
    if (!k->valid || first != k->first) {
        values_clear(k); /* retention deleted blocks read before (or nothing was read) */
        from = first;
    } else {
        from = k->end; /* only what was written since */
    }
    if (!k->full && from < end) {
        add_ctx_t x = {.k = k, .max_values = ac->max_values};
        weft_buf_init(&x.text, 1024);
        int rc = col_store_attr_values(st, (col_str_t){k->name, k->len}, from, end, on_attr, &x);
        weft_buf_free(&x.text);
        if (rc == 0 && x.oom) rc = WEFT_ENOMEM;
        if (rc != 0) {
            values_clear(k);
            return rc;
        }
    }
    k->valid = true;
    k->first = first;
    k->end = end;
    return 0;
}

int col_ac_values(col_ac_t *ac, col_store_t *st, col_str_t key, weft_buf_t *out)
{
    ac_key_t *k = NULL;
    for (size_t i = 0; i < ac->nkeys && !k; i++)
        if (cmp_bytes(ac->keys[i].name, ac->keys[i].len, key.p, key.n) == 0) k = &ac->keys[i];
    if (!k) {
        weft_buf_puts(out, "[]");
        return 0;
    }
    pthread_mutex_lock(&k->mu);
    int rc = refresh(ac, k, st);
    view_t *v = NULL;
    if (rc == 0 && k->n && !(v = malloc(k->n * sizeof *v))) rc = WEFT_ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < k->n; i++) v[i] = (view_t){k->pool + k->ent[i].off, k->ent[i].len};
        if (k->n) qsort(v, k->n, sizeof *v, cmp_view);
        weft_buf_putc(out, '[');
        for (size_t i = 0; i < k->n; i++) {
            if (i) weft_buf_putc(out, ',');
            weft_json_put_str(out, v[i].p, v[i].n);
        }
        weft_buf_putc(out, ']');
    }
    pthread_mutex_unlock(&k->mu);
    free(v);
    return rc;
}
