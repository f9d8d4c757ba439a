/*
 * registry.c - metric families, their children, per-thread shards and the hot-path updates.
 *
 * Shards. A child (one label set) has WEFT_METRICS_MAX_THREADS cell pointers. A thread that
 * registered owns a slot k > 0 (process-wide, for every registry): it allocates its cell of
 * a child on first touch and then updates it with a relaxed load and a relaxed store. It is
 * the only writer of that cell, so there is no lock and no read-modify-write, and cells are
 * cache-line aligned so two threads never write one line. Slot 0 belongs to every thread
 * that did not register and is updated with compare-and-swap / fetch-add. A scrape sums
 * the cells with relaxed loads: each counter cell only grows, so a scrape may miss an
 * in-flight update but never sees a counter go down.
 *
 * Slots are a small process-wide allocator (the one piece of global state here, a registry
 * of threads): a free list under a mutex, and a pthread key whose destructor hands a slot
 * back when its thread exits. The next thread to register continues the same cells (the
 * mutex orders the old owner's last store before the new owner's first load), so values of
 * exited threads stay counted and the slot count bounds only concurrent threads.
 *
 * Exemplars (weft_histogram_observe_exemplar): a shard also keeps each bucket's latest
 * exemplar behind a sequence lock, allocated on its first one; see "exemplars" below.
 *
 * Gauges: weft_gauge_set stores v minus the shards' current adds into the child's `set`
 * (one relaxed store after reading the shards); the value is set + sum(adds). An add racing
 * with a set lands either before it (and is replaced) or after it (and is kept).
 *
 * Children. A labelled family keeps children in a fixed table of chains, published with
 * release stores and never unlinked, so lookups of existing children take no lock. Creation
 * takes the registry mutex, looks again, and publishes the new child at the head of its
 * chain and of the family's all-children list. A family at its limit refuses new label
 * sets before taking the mutex. Label hashes are seeded per registry so
 * label values chosen by clients cannot be aimed at one chain without knowing the seed.
 * Label values are made valid UTF-8 (invalid runs become U+FFFD) before hashing.
 *
 * Families are appended to the registry's list under the mutex and published with release
 * stores; scrapes walk the list without the mutex. Nothing is freed before the registry.
 *
 * Threads: any thread may register families, look up children, update and scrape, all at
 * once; weft_metrics_registry_free needs everyone else gone.
 *
 * Memory policy (SDK): never aborts; allocation failures return errors or NULL handles,
 * and an update whose cell cannot be allocated is dropped.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/each.h"
#include "metrics/metrics_int.h"

/* ---- thread slots ---- */

static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static int slot_key_ok;
static int slot_free[WEFT_METRICS_MAX_THREADS]; /* stack of released slots, under slot_mu */
static int slot_nfree;
static int slot_next = 1; /* never handed out yet: slot_next..MAX-1 */

/* 0 (the shared slot) until the thread registers. initial-exec: one load off the thread
 * pointer even inside libweft.so (the few bytes come from libc's static TLS reserve). */
static _Thread_local __attribute__((tls_model("initial-exec"))) int my_slot;

static void slot_release(int slot)
{
    pthread_mutex_lock(&slot_mu);
    slot_free[slot_nfree++] = slot;
    pthread_mutex_unlock(&slot_mu);
}

static void slot_destructor(void *p)
{
    slot_release((int)(intptr_t)p);
}

static void slot_init(void)
{
    slot_key_ok = pthread_key_create(&slot_key, slot_destructor) == 0;
}

int weft_metrics_thread_register(void)
{
    if (my_slot) return my_slot;
    pthread_once(&slot_once, slot_init);
    if (!slot_key_ok) return 0; /* no way to hand the slot back: share slot 0 */
    int s = 0;
    pthread_mutex_lock(&slot_mu);
    if (slot_nfree)
        s = slot_free[--slot_nfree];
    else if (slot_next < WEFT_METRICS_MAX_THREADS)
        s = slot_next++;
    pthread_mutex_unlock(&slot_mu);
    if (s && pthread_setspecific(slot_key, (void *)(intptr_t)s) != 0) {
        slot_release(s);
        s = 0;
    }
    my_slot = s;
    return s;
}

void weft_metrics_thread_unregister(void)
{
    int s = my_slot;
    if (!s) return;
    my_slot = 0;
    pthread_setspecific(slot_key, NULL);
    slot_release(s);
}

/* ---- registry ---- */

static double dropped_fn(void *arg)
{
    return (double)weft_metrics_dropped(arg);
}

static int fn_new(weft_metrics_registry_t *reg, weft__mtype_t type, const char *name,
                  const char *help, double (*fn)(void *), void *arg);

weft_metrics_registry_t *weft_metrics_registry_new(void)
{
    weft_metrics_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg) return NULL;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return NULL;
    }
    /* splitmix64 of the address and the clock: differs per registry and per run */
    uint64_t z = (uint64_t)(uintptr_t)reg ^ weft_now_ns() ^ 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    reg->seed = z ^ (z >> 31);
    if (fn_new(reg, WEFT__COUNTER, "weft_metrics_label_sets_dropped_total",
               "Label sets refused because a family reached its limit or a value was too long.",
               dropped_fn, reg) != 0) {
        weft_metrics_registry_free(reg);
        return NULL;
    }
    return reg;
}

static void child_free(struct weft_metric_child_s *c, size_t nlabels)
{
    if (c->values)
        for (size_t i = 0; i < nlabels; i++) free(c->values[i]);
    free(c->values);
    for (int i = 0; i < WEFT_METRICS_MAX_THREADS; i++) {
        weft__cell_t *cell = atomic_load_explicit(&c->cells[i], memory_order_relaxed);
        if (cell) free(atomic_load_explicit(&cell->ex, memory_order_relaxed));
        free(cell);
    }
    free(c);
}

static void family_free(weft_metrics_family_t *f)
{
    struct weft_metric_child_s *c = atomic_load_explicit(&f->children, memory_order_relaxed);
    while (c) {
        struct weft_metric_child_s *n = c->next;
        child_free(c, f->nlabels);
        c = n;
    }
    free((void *)atomic_load_explicit(&f->table, memory_order_relaxed));
    if (f->labels)
        for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->labels);
    free(f->name);
    free(f->help);
    free(f);
}

void weft_metrics_registry_free(weft_metrics_registry_t *reg)
{
    if (!reg) return;
    weft_metrics_family_t *f = atomic_load_explicit(&reg->first, memory_order_relaxed);
    while (f) {
        weft_metrics_family_t *n = atomic_load_explicit(&f->next, memory_order_relaxed);
        family_free(f);
        f = n;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static weft_metrics_registry_t *default_reg;

static void default_init(void)
{
    default_reg = weft_metrics_registry_new();
}

weft_metrics_registry_t *weft_metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_reg;
}

uint64_t weft_metrics_dropped(const weft_metrics_registry_t *reg)
{
    return atomic_load_explicit(&((weft_metrics_registry_t *)reg)->dropped, memory_order_relaxed);
}

/* ---- names ---- */

size_t weft__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* no overlong forms */
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; /* nothing past U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

bool weft__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = weft__utf8_seq(p + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* A malloc'd copy of s[0..n) with each run of invalid UTF-8 bytes replaced by U+FFFD. */
static char *utf8_fix(const char *s, size_t n)
{
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    bool in_bad = false;
    for (size_t i = 0; i < n;) {
        size_t k = weft__utf8_seq(p + i, n - i);
        if (k) {
            memcpy(o, p + i, k);
            o += k;
            i += k;
            in_bad = false;
            continue;
        }
        if (!in_bad) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        in_bad = true;
        i++;
    }
    *o = 0;
    return out;
}

static bool name_char(char c, bool first, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

/* Metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* without "__". */
static bool valid_name(const char *s, bool metric)
{
    if (!s || !*s || strlen(s) > WEFT_METRICS_MAX_NAME_LEN) return false;
    if (!metric && s[0] == '_' && s[1] == '_') return false;
    for (size_t i = 0; s[i]; i++)
        if (!name_char(s[i], i == 0, metric)) return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Whether families a and b would write a sample (or HELP/TYPE) name in common: a name
 * equals the other's, or a histogram's name_bucket/_sum/_count equals the other's names. */
static bool names_clash(const char *a, weft__mtype_t ta, const char *b, weft__mtype_t tb)
{
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};
    size_t na = ta == WEFT__HISTOGRAM ? 4 : 1, nb = tb == WEFT__HISTOGRAM ? 4 : 1;
    size_t la = strlen(a), lb = strlen(b);
    for (size_t i = 0; i < na; i++)
        for (size_t k = 0; k < nb; k++) {
            size_t sa = strlen(suffixes[i]), sb = strlen(suffixes[k]);
            if (la + sa != lb + sb) continue;
            char x[WEFT_METRICS_MAX_NAME_LEN + 8], y[WEFT_METRICS_MAX_NAME_LEN + 8];
            memcpy(x, a, la);
            memcpy(x + la, suffixes[i], sa);
            memcpy(y, b, lb);
            memcpy(y + lb, suffixes[k], sb);
            if (memcmp(x, y, la + sa) == 0) return true;
        }
    return false;
}

/* ---- families ---- */

static const double default_bounds[] = {.0005, .001, .0025, .005, .01, .025, .05,
                                        .1,    .25,  .5,    1,    2.5, 5,    10};

static struct weft_metric_child_s *child_alloc(weft_metrics_family_t *f)
{
    struct weft_metric_child_s *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->fam = f;
    if (f->nlabels && !(c->values = calloc(f->nlabels, sizeof(char *)))) {
        free(c);
        return NULL;
    }
    return c;
}

static int family_new(weft_metrics_registry_t *reg, weft__mtype_t type, const char *name,
                      const char *help, const char *const *labels, size_t nlabels,
                      const double *bounds, size_t nbounds, double (*fn)(void *), void *fn_arg,
                      weft_metrics_family_t **out)
{
    if (!reg || !valid_name(name, true) || nlabels > WEFT_METRICS_MAX_LABELS ||
        (nlabels && !labels))
        return WEFT_EINVAL;
    if (type == WEFT__COUNTER && !ends_with(name, "_total")) return WEFT_EINVAL;
    if (!help) help = "";
    size_t help_len = strlen(help);
    if (help_len > WEFT_METRICS_MAX_HELP_LEN || !weft__utf8_valid(help, help_len))
        return WEFT_EINVAL;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], false)) return WEFT_EINVAL;
        if (type == WEFT__HISTOGRAM && strcmp(labels[i], "le") == 0) return WEFT_EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(labels[i], labels[k]) == 0) return WEFT_EINVAL;
    }
    if (type == WEFT__HISTOGRAM) {
        if (!bounds || nbounds == 0) {
            bounds = default_bounds;
            nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
        }
        if (nbounds > WEFT_METRICS_MAX_BOUNDS) return WEFT_EINVAL;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1]))) return WEFT_EINVAL;
    }

    weft_metrics_family_t *f = calloc(1, sizeof(*f));
    if (!f) return WEFT_ENOMEM;
    f->reg = reg;
    f->type = type;
    f->fn = fn;
    f->fn_arg = fn_arg;
    atomic_init(&f->limit, WEFT_METRICS_MAX_CHILDREN);
    f->name = strdup(name);
    f->help = strdup(help);
    if (!f->name || !f->help) goto oom;
    if (nlabels) {
        if (!(f->labels = calloc(nlabels, sizeof(char *)))) goto oom;
        f->nlabels = nlabels;
        for (size_t i = 0; i < nlabels; i++)
            if (!(f->labels[i] = strdup(labels[i]))) goto oom;
    }
    if (type == WEFT__HISTOGRAM) {
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
        f->nbounds = nbounds;
    }
    if (!fn && !nlabels) { /* the one child exists from the start: exposed as 0 */
        if (!(f->only = child_alloc(f))) goto oom;
        atomic_store_explicit(&f->children, f->only, memory_order_relaxed);
        atomic_init(&f->nchildren, 1);
    }

    pthread_mutex_lock(&reg->mu);
    for (weft_metrics_family_t *g = atomic_load_explicit(&reg->first, memory_order_relaxed); g;
         g = atomic_load_explicit(&g->next, memory_order_relaxed)) {
        if (names_clash(g->name, g->type, name, type)) {
            pthread_mutex_unlock(&reg->mu);
            family_free(f);
            return WEFT_EEXIST;
        }
    }
    if (reg->last)
        atomic_store_explicit(&reg->last->next, f, memory_order_release);
    else
        atomic_store_explicit(&reg->first, f, memory_order_release);
    reg->last = f;
    pthread_mutex_unlock(&reg->mu);
    if (out) *out = f;
    return 0;
oom:
    family_free(f);
    return WEFT_ENOMEM;
}

int weft_metrics_counter_new(weft_metrics_registry_t *reg, const char *name, const char *help,
                             const char *const *labels, size_t nlabels, weft_metrics_family_t **out)
{
    return family_new(reg, WEFT__COUNTER, name, help, labels, nlabels, NULL, 0, NULL, NULL, out);
}

int weft_metrics_gauge_new(weft_metrics_registry_t *reg, const char *name, const char *help,
                           const char *const *labels, size_t nlabels, weft_metrics_family_t **out)
{
    return family_new(reg, WEFT__GAUGE, name, help, labels, nlabels, NULL, 0, NULL, NULL, out);
}

int weft_metrics_histogram_new(weft_metrics_registry_t *reg, const char *name, const char *help,
                               const char *const *labels, size_t nlabels, const double *bounds,
                               size_t nbounds, weft_metrics_family_t **out)
{
    return family_new(reg, WEFT__HISTOGRAM, name, help, labels, nlabels, bounds, nbounds, NULL,
                      NULL, out);
}

static int fn_new(weft_metrics_registry_t *reg, weft__mtype_t type, const char *name,
                  const char *help, double (*fn)(void *), void *arg)
{
    if (!fn) return WEFT_EINVAL;
    return family_new(reg, type, name, help, NULL, 0, NULL, 0, fn, arg, NULL);
}

int weft_metrics_gauge_fn(weft_metrics_registry_t *reg, const char *name, const char *help,
                          double (*fn)(void *), void *arg)
{
    return fn_new(reg, WEFT__GAUGE, name, help, fn, arg);
}

int weft_metrics_counter_fn(weft_metrics_registry_t *reg, const char *name, const char *help,
                            double (*fn)(void *), void *arg)
{
    return fn_new(reg, WEFT__COUNTER, name, help, fn, arg);
}

int weft_metrics_family_set_limit(weft_metrics_family_t *f, size_t limit)
{
    if (!f || limit == 0) return WEFT_EINVAL;
    atomic_store_explicit(&f->limit, limit, memory_order_relaxed);
    return 0;
}

/* ---- children ---- */

static uint64_t hash_values(uint64_t seed, const char *const *v, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a, seeded, then a final mix */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* 0xff never occurs in UTF-8: a separator */
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static struct weft_metric_child_s *chain_find(struct weft_metric_child_s *c, uint64_t h,
                                              const char *const *v, size_t n)
{
    for (; c; c = c->hnext) {
        if (c->hash != h) continue;
        size_t i = 0;
        while (i < n && strcmp(c->values[i], v[i]) == 0) i++;
        if (i == n) return c;
    }
    return NULL;
}

/* The child for v (valid UTF-8 already), creating it under the registry mutex. */
static struct weft_metric_child_s *child_find_or_add(weft_metrics_family_t *f, const char *const *v)
{
    weft_metrics_registry_t *reg = f->reg;
    uint64_t h = hash_values(reg->seed, v, f->nlabels);
    size_t b = h % WEFT__CHILD_BUCKETS;
    _Atomic(struct weft_metric_child_s *) *table =
        atomic_load_explicit(&f->table, memory_order_acquire);
    struct weft_metric_child_s *c;
    if (table &&
        (c = chain_find(atomic_load_explicit(&table[b], memory_order_acquire), h, v, f->nlabels)))
        return c;
    /* A full family refuses without the lock, so a flood of new label sets costs no
     * contention once the limit is reached. */
    if (atomic_load_explicit(&f->nchildren, memory_order_relaxed) >=
        atomic_load_explicit(&f->limit, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&reg->dropped, 1, memory_order_relaxed);
        return NULL;
    }

    pthread_mutex_lock(&reg->mu);
    table = atomic_load_explicit(&f->table, memory_order_relaxed);
    if (!table) {
        table = calloc(WEFT__CHILD_BUCKETS, sizeof(*table));
        if (!table) goto fail;
        atomic_store_explicit(&f->table, table, memory_order_release);
    }
    struct weft_metric_child_s *head = atomic_load_explicit(&table[b], memory_order_relaxed);
    if ((c = chain_find(head, h, v, f->nlabels))) goto out; /* another thread made it */
    if (atomic_load_explicit(&f->nchildren, memory_order_relaxed) >=
        atomic_load_explicit(&f->limit, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&reg->dropped, 1, memory_order_relaxed);
        goto fail;
    }
    if (!(c = child_alloc(f))) goto fail;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (!(c->values[i] = strdup(v[i]))) {
            child_free(c, f->nlabels);
            goto fail;
        }
    }
    c->hash = h;
    c->hnext = head;
    c->next = atomic_load_explicit(&f->children, memory_order_relaxed);
    atomic_store_explicit(&table[b], c, memory_order_release);
    atomic_store_explicit(&f->children, c, memory_order_release);
    atomic_store_explicit(&f->nchildren,
                          atomic_load_explicit(&f->nchildren, memory_order_relaxed) + 1,
                          memory_order_relaxed);
out:
    pthread_mutex_unlock(&reg->mu);
    return c;
fail:
    pthread_mutex_unlock(&reg->mu);
    return NULL;
}

static struct weft_metric_child_s *child_get(weft_metrics_family_t *f, weft__mtype_t type,
                                             const char *const *values)
{
    if (!f || f->type != type || f->fn) return NULL;
    if (f->nlabels == 0) return f->only;
    if (!values) return NULL;
    const char *v[WEFT_METRICS_MAX_LABELS];
    char *fixed[WEFT_METRICS_MAX_LABELS] = {0};
    struct weft_metric_child_s *c = NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (!values[i]) goto out;
        size_t n = strnlen(values[i], WEFT_METRICS_MAX_VALUE_LEN + 1);
        if (n > WEFT_METRICS_MAX_VALUE_LEN) {
            atomic_fetch_add_explicit(&f->reg->dropped, 1, memory_order_relaxed);
            goto out;
        }
        v[i] = values[i];
        if (!weft__utf8_valid(values[i], n)) {
            if (!(fixed[i] = utf8_fix(values[i], n))) goto out;
            v[i] = fixed[i];
        }
    }
    c = child_find_or_add(f, v);
out:
    for (size_t k = 0; k < f->nlabels; k++) free(fixed[k]);
    return c;
}

weft_counter_t *weft_metrics_counter_child(weft_metrics_family_t *f, const char *const *v)
{
    return child_get(f, WEFT__COUNTER, v);
}

weft_gauge_t *weft_metrics_gauge_child(weft_metrics_family_t *f, const char *const *v)
{
    return child_get(f, WEFT__GAUGE, v);
}

weft_histogram_t *weft_metrics_histogram_child(weft_metrics_family_t *f, const char *const *v)
{
    return child_get(f, WEFT__HISTOGRAM, v);
}

/* ---- hot path ---- */

/* Allocates the cell of c for slot; another slot-0 thread may win the race. */
static __attribute__((noinline)) weft__cell_t *cell_new(struct weft_metric_child_s *c, int slot)
{
    size_t nb = c->fam->type == WEFT__HISTOGRAM ? c->fam->nbounds + 1 : 0;
    size_t size = (sizeof(weft__cell_t) + nb * sizeof(uint64_t) + 63) & ~(size_t)63;
    weft__cell_t *fresh = aligned_alloc(64, size);
    if (!fresh) return NULL;
    memset(fresh, 0, size);
    weft__cell_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&c->cells[slot], &expected, fresh,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        free(fresh);
        return expected;
    }
    return fresh;
}

static inline void cell_add(_Atomic double *p, int slot, double v)
{
    double cur = atomic_load_explicit(p, memory_order_relaxed);
    if (slot) {
        atomic_store_explicit(p, cur + v, memory_order_relaxed);
        return;
    }
    while (!atomic_compare_exchange_weak_explicit(p, &cur, cur + v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static __attribute__((noinline)) void add_slow(struct weft_metric_child_s *c, int slot, double v)
{
    weft__cell_t *cell = cell_new(c, slot);
    if (cell) cell_add(&cell->value, slot, v);
}

/* The fast path: one TLS load, the cell pointer, load + add + store. */
static inline void add(struct weft_metric_child_s *c, double v)
{
    int slot = my_slot;
    weft__cell_t *cell = atomic_load_explicit(&c->cells[slot], memory_order_acquire);
    if (__builtin_expect(cell == NULL, 0)) {
        add_slow(c, slot, v);
        return;
    }
    cell_add(&cell->value, slot, v);
}

void weft_counter_inc(weft_counter_t *c)
{
    if (c) add(c, 1.0);
}

void weft_counter_add(weft_counter_t *c, double v)
{
    if (c && v > 0 && v < INFINITY) add(c, v);
}

void weft_gauge_add(weft_gauge_t *g, double v)
{
    if (g) add(g, v);
}

void weft_gauge_inc(weft_gauge_t *g)
{
    if (g) add(g, 1.0);
}

void weft_gauge_dec(weft_gauge_t *g)
{
    if (g) add(g, -1.0);
}

void weft_gauge_set(weft_gauge_t *g, double v)
{
    if (!g) return;
    double adds = 0;
    for (int i = 0; i < WEFT_METRICS_MAX_THREADS; i++) {
        weft__cell_t *cell = atomic_load_explicit(&g->cells[i], memory_order_acquire);
        if (cell) adds += atomic_load_explicit(&cell->value, memory_order_relaxed);
    }
    atomic_store_explicit(&g->set, v - adds, memory_order_relaxed);
}

/* Counts v in its bucket and the sum; returns the bucket's index. */
static inline size_t observe(weft__cell_t *cell, const weft_metrics_family_t *f, int slot, double v)
{
    size_t i = 0, n = f->nbounds;
    while (i < n && v > f->bounds[i]) i++;
    _Atomic uint64_t *b = &cell->buckets[i];
    if (slot)
        atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(b, 1, memory_order_relaxed);
    cell_add(&cell->value, slot, v);
    return i;
}

static __attribute__((noinline)) void observe_slow(weft_histogram_t *h, int slot, double v)
{
    weft__cell_t *cell = cell_new(h, slot);
    if (cell) observe(cell, h->fam, slot, v);
}

void weft_histogram_observe(weft_histogram_t *h, double v)
{
    if (!h || isnan(v)) return;
    int slot = my_slot;
    weft__cell_t *cell = atomic_load_explicit(&h->cells[slot], memory_order_acquire);
    if (__builtin_expect(cell == NULL, 0)) {
        observe_slow(h, slot, v);
        return;
    }
    observe(cell, h->fam, slot, v);
}

/*
 * Exemplars. Each shard keeps, per bucket, the latest exemplar observed through it; the
 * array is allocated on the shard's first exemplar, so histograms that never get one
 * (and the plain observe) pay nothing. The shard's owner is the only writer of its
 * entries (a sequence lock needs no atomic read-modify-write then); slot 0's writers take
 * the entry with a compare-and-swap of seq from even to odd, and a writer that finds it
 * taken drops its exemplar, since the other one is just as recent. A scrape picks the
 * newest of the shards' entries for each bucket (weft__child_exemplar).
 */

static __attribute__((noinline)) weft__exemplar_t *ex_new(const weft_histogram_t *h,
                                                          weft__cell_t *cell)
{
    weft__exemplar_t *fresh = calloc(h->fam->nbounds + 1, sizeof(*fresh));
    if (!fresh) return NULL;
    weft__exemplar_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&cell->ex, &expected, fresh, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(fresh); /* another slot-0 thread made it first */
        return expected;
    }
    return fresh;
}

static inline uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static inline void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static void exemplar_put(weft__exemplar_t *e, int slot, uint64_t hi, uint64_t lo, uint64_t span,
                         double v)
{
    uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if (slot) {
        atomic_store_explicit(&e->seq, s + 1, memory_order_relaxed);
    } else if ((s & 1) || !atomic_compare_exchange_strong_explicit(
                              &e->seq, &s, s + 1, memory_order_acquire, memory_order_relaxed)) {
        return; /* another slot-0 writer is storing its exemplar here: it stands */
    }
    /* the odd seq is visible before any field changes (pairs with the reader's fence) */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->trace_hi, hi, memory_order_relaxed);
    atomic_store_explicit(&e->trace_lo, lo, memory_order_relaxed);
    atomic_store_explicit(&e->span, span, memory_order_relaxed);
    atomic_store_explicit(&e->value, v, memory_order_relaxed);
    atomic_store_explicit(&e->ts_ns, weft_wall_ns(), memory_order_relaxed);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

void weft_histogram_observe_exemplar(weft_histogram_t *h, double v, const uint8_t trace_id[16],
                                     const uint8_t span_id[8])
{
    if (!h || isnan(v)) return;
    int slot = my_slot;
    weft__cell_t *cell = atomic_load_explicit(&h->cells[slot], memory_order_acquire);
    if (__builtin_expect(cell == NULL, 0) && !(cell = cell_new(h, slot))) return;
    size_t i = observe(cell, h->fam, slot, v);
    if (!trace_id) return;
    uint64_t hi = be64(trace_id), lo = be64(trace_id + 8);
    if (!hi && !lo) return; /* the all-zero trace id is invalid (W3C): no exemplar */
    weft__exemplar_t *ex = atomic_load_explicit(&cell->ex, memory_order_acquire);
    if (__builtin_expect(ex == NULL, 0) && !(ex = ex_new(h, cell))) return;
    exemplar_put(&ex[i], slot, hi, lo, span_id ? be64(span_id) : 0, v);
}

/* ---- reading ---- */

double weft__child_sum(const struct weft_metric_child_s *c, uint64_t *buckets)
{
    struct weft_metric_child_s *m = (struct weft_metric_child_s *)c;
    size_t nb = c->fam->type == WEFT__HISTOGRAM ? c->fam->nbounds + 1 : 0;
    double v =
        c->fam->type == WEFT__GAUGE ? atomic_load_explicit(&m->set, memory_order_relaxed) : 0;
    if (buckets) memset(buckets, 0, nb * sizeof(uint64_t));
    for (int s = 0; s < WEFT_METRICS_MAX_THREADS; s++) {
        weft__cell_t *cell = atomic_load_explicit(&m->cells[s], memory_order_acquire);
        if (!cell) continue;
        v += atomic_load_explicit(&cell->value, memory_order_relaxed);
        if (buckets)
            for (size_t j = 0; j < nb; j++)
                buckets[j] += atomic_load_explicit(&cell->buckets[j], memory_order_relaxed);
    }
    return v;
}

double weft_metrics_value(const weft_counter_t *c)
{
    return c ? weft__child_sum(c, NULL) : 0;
}

void weft_histogram_totals(const weft_histogram_t *h, uint64_t *count, double *sum)
{
    uint64_t b[WEFT_METRICS_MAX_BOUNDS + 1], n = 0;
    double s = 0;
    if (h && h->fam->type == WEFT__HISTOGRAM) {
        s = weft__child_sum(h, b);
        for (size_t j = 0; j <= h->fam->nbounds; j++) n += b[j];
    }
    if (count) *count = n;
    if (sum) *sum = s;
}

/* One consistent read of e, or false (never written, or a writer kept it busy at every
 * try: the scrape then goes without this shard's exemplar rather than wait). */
static bool exemplar_get(weft__exemplar_t *e, weft__exemplar_read_t *out)
{
    for (int tries = 0; tries < 16; tries++) {
        uint32_t s = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s == 0) return false;
        if (s & 1) continue;
        uint64_t hi = atomic_load_explicit(&e->trace_hi, memory_order_relaxed);
        uint64_t lo = atomic_load_explicit(&e->trace_lo, memory_order_relaxed);
        uint64_t span = atomic_load_explicit(&e->span, memory_order_relaxed);
        double v = atomic_load_explicit(&e->value, memory_order_relaxed);
        uint64_t ts = atomic_load_explicit(&e->ts_ns, memory_order_relaxed);
        /* the fields are read before seq is read again (pairs with the writer's fence) */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s) continue;
        be64_put(out->trace_id, hi);
        be64_put(out->trace_id + 8, lo);
        be64_put(out->span_id, span);
        out->has_span = span != 0;
        out->value = v;
        out->ts_ns = ts;
        return true;
    }
    return false;
}

size_t weft__child_exemplars(const struct weft_metric_child_s *c, weft__exemplar_read_t *out,
                             bool *found)
{
    struct weft_metric_child_s *m = (struct weft_metric_child_s *)c;
    size_t nb = c->fam->nbounds + 1, n = 0;
    memset(found, 0, nb * sizeof(bool));
    if (c->fam->type != WEFT__HISTOGRAM) return 0;
    for (int s = 0; s < WEFT_METRICS_MAX_THREADS; s++) {
        weft__cell_t *cell = atomic_load_explicit(&m->cells[s], memory_order_acquire);
        weft__exemplar_t *ex = cell ? atomic_load_explicit(&cell->ex, memory_order_acquire) : NULL;
        for (size_t j = 0; ex && j < nb; j++) {
            weft__exemplar_read_t r;
            if (!exemplar_get(&ex[j], &r)) continue;
            if (!found[j]) n++;
            if (!found[j] || r.ts_ns > out[j].ts_ns) out[j] = r;
            found[j] = true;
        }
    }
    return n;
}

void weft__metrics_each(weft_metrics_family_t *fam,
                        void (*fn)(const char *const *values, double value,
                                   const uint64_t *buckets, void *arg),
                        void *arg)
{
    if (!fam || fam->fn) return;
    uint64_t b[WEFT_METRICS_MAX_BOUNDS + 1];
    bool hist = fam->type == WEFT__HISTOGRAM;
    /* the list is newest first and a child's next is fixed before it is published: a
     * snapshot of the head is a list no writer changes */
    for (struct weft_metric_child_s *c = atomic_load_explicit(&fam->children, memory_order_acquire);
         c; c = c->next) {
        double v = weft__child_sum(c, hist ? b : NULL);
        fn((const char *const *)c->values, v, hist ? b : NULL, arg);
    }
}

size_t weft__metrics_bounds(const weft_metrics_family_t *fam, const double **bounds)
{
    *bounds = fam ? fam->bounds : NULL;
    return fam && fam->type == WEFT__HISTOGRAM ? fam->nbounds : 0;
}
