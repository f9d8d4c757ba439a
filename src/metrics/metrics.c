/*
 * metrics.c - metric families, children with per-thread shards, Prometheus exposition.
 *
 * Design. A child (one label set) has an array of WEFT_METRICS_MAX_THREADS cell pointers.
 * A registered thread owns slot k > 0: it allocates its cell on first touch and then adds
 * with a relaxed load + relaxed store (it is the only writer of that cell, so no RMW and no
 * lock; the cell is cache-line aligned so threads never share a line). Slot 0 is shared by
 * unregistered threads and uses compare-and-swap. A scrape sums the cells with relaxed
 * loads: each cell is monotonic, so a scrape may miss an in-flight update but never sees a
 * counter go down. Cells are never freed before the registry, so values of exited threads
 * stay counted.
 *
 * Gauges set with weft_gauge_set are a single last-writer-wins value (cell 0's `set` field),
 * plus the shards' adds: value = set + sum(adds).
 *
 * Threads: family registration and child creation take the registry's mutex; updates take
 * none; weft_metrics_write takes the mutex to walk the families (children are appended to
 * lists under it; readers walk lists published with release stores).
 *
 * Memory policy (SDK): never aborts; allocation failures return errors or NULL handles,
 * and an update whose cell cannot be allocated is dropped.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/metrics.h"

typedef enum { T_COUNTER, T_GAUGE, T_HISTOGRAM } mtype_t;

typedef struct cell_s {
    _Alignas(64) _Atomic double value; /* counter/gauge adds; histogram sum */
    _Atomic uint64_t count;            /* histogram observation count */
    _Atomic uint64_t buckets[];        /* histogram: one per bound + 1 (+Inf) */
} cell_t;

struct weft_metric_child_s {
    weft_metrics_family_t *fam;
    struct weft_metric_child_s *next;
    char **values;
    uint64_t hash;
    _Atomic double set; /* gauge_set value */
    _Atomic(cell_t *) cells[WEFT_METRICS_MAX_THREADS];
};

struct weft_metrics_family_s {
    weft_metrics_registry_t *reg;
    struct weft_metrics_family_s *next;
    mtype_t type;
    char *name, *help;
    char **labels;
    size_t nlabels;
    double bounds[WEFT_METRICS_MAX_BOUNDS];
    size_t nbounds;
    double (*fn)(void *);
    void *fn_arg;
    _Atomic(struct weft_metric_child_s *) children;
    size_t nchildren;
};

struct weft_metrics_registry_s {
    pthread_mutex_t mu;
    weft_metrics_family_t *first, *last;
    _Atomic uint64_t dropped;
};

static atomic_int next_slot = 1;
static _Thread_local int my_slot = -1;

static const double default_bounds[] = {.0005, .001, .0025, .005, .01, .025, .05,
                                        .1,    .25,  .5,    1,    2.5, 5,    10};

int weft_metrics_thread_register(void)
{
    if (my_slot >= 0) return my_slot;
    int s = atomic_fetch_add(&next_slot, 1);
    my_slot = s < WEFT_METRICS_MAX_THREADS ? s : 0;
    return my_slot;
}

static double dropped_fn(void *arg)
{
    weft_metrics_registry_t *reg = arg;
    return (double)atomic_load_explicit(&reg->dropped, memory_order_relaxed);
}

weft_metrics_registry_t *weft_metrics_registry_new(void)
{
    weft_metrics_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg) return NULL;
    pthread_mutex_init(&reg->mu, NULL);
    if (weft_metrics_counter_fn(reg, "weft_metrics_label_sets_dropped_total",
                                "Label sets refused because a family reached its limit.",
                                dropped_fn, reg) != 0) {
        weft_metrics_registry_free(reg);
        return NULL;
    }
    return reg;
}

static void child_free(struct weft_metric_child_s *c, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++) free(c->values[i]);
    free(c->values);
    for (int i = 0; i < WEFT_METRICS_MAX_THREADS; i++) free(atomic_load(&c->cells[i]));
    free(c);
}

static void family_free(weft_metrics_family_t *f)
{
    struct weft_metric_child_s *c = atomic_load(&f->children);
    while (c) {
        struct weft_metric_child_s *n = c->next;
        child_free(c, f->nlabels);
        c = n;
    }
    for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->labels);
    free(f->name);
    free(f->help);
    free(f);
}

void weft_metrics_registry_free(weft_metrics_registry_t *reg)
{
    if (!reg) return;
    weft_metrics_family_t *f = reg->first;
    while (f) {
        weft_metrics_family_t *n = f->next;
        family_free(f);
        f = n;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static int valid_metric_name(const char *s)
{
    if (!s || !*s) return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_')) return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int family_new(weft_metrics_registry_t *reg, mtype_t type, const char *name,
                      const char *help, const char *const *labels, size_t nlabels,
                      const double *bounds, size_t nbounds, weft_metrics_family_t **out)
{
    if (!valid_metric_name(name) || nlabels > WEFT_METRICS_MAX_LABELS) return WEFT_EINVAL;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_label_name(labels[i])) return WEFT_EINVAL;
        if (type == T_HISTOGRAM && strcmp(labels[i], "le") == 0) return WEFT_EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(labels[i], labels[k]) == 0) return WEFT_EINVAL;
    }
    if (type == T_HISTOGRAM) {
        if (!bounds || nbounds == 0) {
            bounds = default_bounds;
            nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
        }
        if (nbounds > WEFT_METRICS_MAX_BOUNDS) return WEFT_EINVAL;
        for (size_t i = 0; i < nbounds; i++)
            if (isnan(bounds[i]) || isinf(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return WEFT_EINVAL;
    }
    weft_metrics_family_t *f = calloc(1, sizeof(*f));
    if (!f) return WEFT_ENOMEM;
    f->reg = reg;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->labels = calloc(nlabels ? nlabels : 1, sizeof(char *));
    if (!f->name || !f->help || !f->labels) goto oom;
    for (size_t i = 0; i < nlabels; i++) {
        f->nlabels = i + 1;
        if (!(f->labels[i] = strdup(labels[i]))) goto oom;
    }
    f->nlabels = nlabels;
    if (type == T_HISTOGRAM) {
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
        f->nbounds = nbounds;
    }
    pthread_mutex_lock(&reg->mu);
    for (weft_metrics_family_t *g = reg->first; g; g = g->next) {
        if (strcmp(g->name, name) == 0) {
            pthread_mutex_unlock(&reg->mu);
            family_free(f);
            return WEFT_EEXIST;
        }
    }
    if (reg->last)
        reg->last->next = f;
    else
        reg->first = f;
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
    return family_new(reg, T_COUNTER, name, help, labels, nlabels, NULL, 0, out);
}

int weft_metrics_gauge_new(weft_metrics_registry_t *reg, const char *name, const char *help,
                           const char *const *labels, size_t nlabels, weft_metrics_family_t **out)
{
    return family_new(reg, T_GAUGE, name, help, labels, nlabels, NULL, 0, out);
}

int weft_metrics_histogram_new(weft_metrics_registry_t *reg, const char *name, const char *help,
                               const char *const *labels, size_t nlabels, const double *bounds,
                               size_t nbounds, weft_metrics_family_t **out)
{
    return family_new(reg, T_HISTOGRAM, name, help, labels, nlabels, bounds, nbounds, out);
}

static int fn_new(weft_metrics_registry_t *reg, mtype_t type, const char *name, const char *help,
                  double (*fn)(void *), void *arg)
{
    if (!fn) return WEFT_EINVAL;
    weft_metrics_family_t *f;
    int err = family_new(reg, type, name, help, NULL, 0, NULL, 0, &f);
    if (err) return err;
    f->fn = fn;
    f->fn_arg = arg;
    return 0;
}

int weft_metrics_gauge_fn(weft_metrics_registry_t *reg, const char *name, const char *help,
                          double (*fn)(void *), void *arg)
{
    return fn_new(reg, T_GAUGE, name, help, fn, arg);
}

int weft_metrics_counter_fn(weft_metrics_registry_t *reg, const char *name, const char *help,
                            double (*fn)(void *), void *arg)
{
    return fn_new(reg, T_COUNTER, name, help, fn, arg);
}

static uint64_t hash_values(const char *const *v, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const char *p = v[i]; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

static struct weft_metric_child_s *child_get(weft_metrics_family_t *f, mtype_t type,
                                             const char *const *values)
{
    if (!f || f->type != type || f->fn) return NULL;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values || !values[i]) return NULL;
    uint64_t h = hash_values(values, f->nlabels);
    weft_metrics_registry_t *reg = f->reg;
    pthread_mutex_lock(&reg->mu);
    struct weft_metric_child_s *c;
    for (c = atomic_load_explicit(&f->children, memory_order_relaxed); c; c = c->next) {
        if (c->hash != h) continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(c->values[i], values[i]) == 0) i++;
        if (i == f->nlabels) break;
    }
    if (c || f->nchildren >= WEFT_METRICS_MAX_CHILDREN) {
        if (!c) atomic_fetch_add(&reg->dropped, 1);
        pthread_mutex_unlock(&reg->mu);
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (c) c->values = calloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
    if (!c || !c->values) {
        free(c);
        pthread_mutex_unlock(&reg->mu);
        return NULL;
    }
    for (size_t i = 0; i < f->nlabels; i++) {
        if (!(c->values[i] = strdup(values[i]))) {
            child_free(c, f->nlabels);
            pthread_mutex_unlock(&reg->mu);
            return NULL;
        }
    }
    c->fam = f;
    c->hash = h;
    c->next = atomic_load_explicit(&f->children, memory_order_relaxed);
    atomic_store_explicit(&f->children, c, memory_order_release);
    f->nchildren++;
    pthread_mutex_unlock(&reg->mu);
    return c;
}

weft_counter_t *weft_metrics_counter_child(weft_metrics_family_t *f, const char *const *v)
{
    return child_get(f, T_COUNTER, v);
}

weft_gauge_t *weft_metrics_gauge_child(weft_metrics_family_t *f, const char *const *v)
{
    return child_get(f, T_GAUGE, v);
}

weft_histogram_t *weft_metrics_histogram_child(weft_metrics_family_t *f, const char *const *v)
{
    return child_get(f, T_HISTOGRAM, v);
}

/* The calling thread's cell of c, allocated on first use; NULL when out of memory. */
static cell_t *cell_of(struct weft_metric_child_s *c, int *slot_out)
{
    int slot = my_slot < 0 ? 0 : my_slot;
    *slot_out = slot;
    cell_t *cell = atomic_load_explicit(&c->cells[slot], memory_order_acquire);
    if (__builtin_expect(cell != NULL, 1)) return cell;
    size_t nb = c->fam->type == T_HISTOGRAM ? c->fam->nbounds + 1 : 0;
    size_t size = (sizeof(cell_t) + nb * sizeof(uint64_t) + 63) & ~(size_t)63;
    cell_t *fresh = aligned_alloc(64, size);
    if (!fresh) return NULL;
    memset(fresh, 0, size);
    cell_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&c->cells[slot], &expected, fresh)) {
        free(fresh); /* slot 0: another unregistered thread won */
        return expected;
    }
    return fresh;
}

static inline void cell_add(cell_t *cell, int slot, double v)
{
    if (slot) {
        double cur = atomic_load_explicit(&cell->value, memory_order_relaxed);
        atomic_store_explicit(&cell->value, cur + v, memory_order_relaxed);
    } else {
        double cur = atomic_load_explicit(&cell->value, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&cell->value, &cur, cur + v,
                                                      memory_order_relaxed, memory_order_relaxed))
            ;
    }
}

static inline void u64_inc(_Atomic uint64_t *p, int slot)
{
    if (slot)
        atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(p, 1, memory_order_relaxed);
}

void weft_counter_inc(weft_counter_t *c)
{
    weft_counter_add(c, 1.0);
}

void weft_counter_add(weft_counter_t *c, double v)
{
    if (!c || !(v > 0)) return;
    int slot;
    cell_t *cell = cell_of(c, &slot);
    if (cell) cell_add(cell, slot, v);
}

void weft_gauge_set(weft_gauge_t *g, double v)
{
    if (!g) return;
    /* set() replaces everything added so far: fold the shards into the set value. */
    double adds = 0;
    for (int i = 0; i < WEFT_METRICS_MAX_THREADS; i++) {
        cell_t *cell = atomic_load_explicit(&g->cells[i], memory_order_acquire);
        if (cell) adds += atomic_load_explicit(&cell->value, memory_order_relaxed);
    }
    atomic_store_explicit(&g->set, v - adds, memory_order_relaxed);
}

void weft_gauge_add(weft_gauge_t *g, double v)
{
    if (!g) return;
    int slot;
    cell_t *cell = cell_of(g, &slot);
    if (cell) cell_add(cell, slot, v);
}

void weft_histogram_observe(weft_histogram_t *h, double v)
{
    if (!h || isnan(v)) return;
    int slot;
    cell_t *cell = cell_of(h, &slot);
    if (!cell) return;
    const weft_metrics_family_t *f = h->fam;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i]) i++;
    u64_inc(&cell->buckets[i], slot);
    u64_inc(&cell->count, slot);
    cell_add(cell, slot, v);
}

double weft_metrics_value(const weft_counter_t *c)
{
    double v = c->fam->type == T_GAUGE ? atomic_load_explicit(&c->set, memory_order_relaxed) : 0;
    for (int i = 0; i < WEFT_METRICS_MAX_THREADS; i++) {
        cell_t *cell = atomic_load_explicit(&((struct weft_metric_child_s *)c)->cells[i],
                                            memory_order_acquire);
        if (cell) v += atomic_load_explicit(&cell->value, memory_order_relaxed);
    }
    return v;
}

void weft_histogram_totals(const weft_histogram_t *h, uint64_t *count, double *sum)
{
    uint64_t n = 0;
    double s = 0;
    for (int i = 0; i < WEFT_METRICS_MAX_THREADS; i++) {
        cell_t *cell = atomic_load_explicit(&((struct weft_metric_child_s *)h)->cells[i],
                                            memory_order_acquire);
        if (!cell) continue;
        n += atomic_load_explicit(&cell->count, memory_order_relaxed);
        s += atomic_load_explicit(&cell->value, memory_order_relaxed);
    }
    *count = n;
    *sum = s;
}

/* ---- exposition ---- */

typedef struct buf_s {
    char *p;
    size_t len, cap;
    int oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_double(buf_t *b, double v)
{
    char tmp[40];
    if (isnan(v))
        puts_(b, "NaN");
    else if (isinf(v))
        puts_(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(tmp, sizeof(tmp), "%.0f", v);
        puts_(b, tmp);
    } else {
        /* The shortest form that reads back as the same double ("0.1", not 0.1000...01). */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
        puts_(b, tmp);
    }
}

static void put_u64(buf_t *b, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    puts_(b, tmp);
}

/* Escapes \ and newline (help); also " (label values). */
static void put_escaped(buf_t *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (quote && *s == '"')
            puts_(b, "\\\"");
        else
            put(b, s, 1);
    }
}

/* Writes {a="x",b="y"[,le="..."]} or nothing when there are no labels. */
static void put_labels(buf_t *b, const weft_metrics_family_t *f,
                       const struct weft_metric_child_s *c, const char *le)
{
    if (f->nlabels == 0 && !le) return;
    puts_(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i) puts_(b, ",");
        puts_(b, f->labels[i]);
        puts_(b, "=\"");
        put_escaped(b, c->values[i], 1);
        puts_(b, "\"");
    }
    if (le) {
        if (f->nlabels) puts_(b, ",");
        puts_(b, "le=\"");
        puts_(b, le);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

static void write_family(buf_t *b, weft_metrics_family_t *f)
{
    static const char *const tnames[] = {"counter", "gauge", "histogram"};
    puts_(b, "# HELP ");
    puts_(b, f->name);
    puts_(b, " ");
    put_escaped(b, f->help, 0);
    puts_(b, "\n# TYPE ");
    puts_(b, f->name);
    puts_(b, " ");
    puts_(b, tnames[f->type]);
    puts_(b, "\n");
    if (f->fn) {
        puts_(b, f->name);
        puts_(b, " ");
        put_double(b, f->fn(f->fn_arg));
        puts_(b, "\n");
        return;
    }
    /* Children are prepended; print them in creation order for stable output. */
    size_t n = 0;
    for (struct weft_metric_child_s *c = atomic_load(&f->children); c; c = c->next) n++;
    struct weft_metric_child_s **order = malloc(sizeof(*order) * (n ? n : 1));
    if (!order) {
        b->oom = 1;
        return;
    }
    size_t k = n;
    for (struct weft_metric_child_s *c = atomic_load(&f->children); c; c = c->next) order[--k] = c;
    for (size_t i = 0; i < n; i++) {
        struct weft_metric_child_s *c = order[i];
        if (f->type != T_HISTOGRAM) {
            puts_(b, f->name);
            put_labels(b, f, c, NULL);
            puts_(b, " ");
            put_double(b, weft_metrics_value(c));
            puts_(b, "\n");
            continue;
        }
        uint64_t buckets[WEFT_METRICS_MAX_BOUNDS + 1] = {0}, count = 0;
        double sum = 0;
        for (int s = 0; s < WEFT_METRICS_MAX_THREADS; s++) {
            cell_t *cell = atomic_load_explicit(&c->cells[s], memory_order_acquire);
            if (!cell) continue;
            for (size_t j = 0; j <= f->nbounds; j++)
                buckets[j] += atomic_load_explicit(&cell->buckets[j], memory_order_relaxed);
            sum += atomic_load_explicit(&cell->value, memory_order_relaxed);
        }
        /* count from the buckets so that +Inf and _count always agree */
        uint64_t cum = 0;
        for (size_t j = 0; j <= f->nbounds; j++) {
            cum += buckets[j];
            char le[40];
            if (j == f->nbounds)
                strcpy(le, "+Inf");
            else {
                buf_t t = {0};
                put_double(&t, f->bounds[j]);
                snprintf(le, sizeof(le), "%s", t.p ? t.p : "0");
                free(t.p);
            }
            puts_(b, f->name);
            puts_(b, "_bucket");
            put_labels(b, f, c, le);
            puts_(b, " ");
            put_u64(b, cum);
            puts_(b, "\n");
        }
        count = cum;
        puts_(b, f->name);
        puts_(b, "_sum");
        put_labels(b, f, c, NULL);
        puts_(b, " ");
        put_double(b, sum);
        puts_(b, "\n");
        puts_(b, f->name);
        puts_(b, "_count");
        put_labels(b, f, c, NULL);
        puts_(b, " ");
        put_u64(b, count);
        puts_(b, "\n");
    }
    free(order);
}

int weft_metrics_write(weft_metrics_registry_t *reg, char **out, size_t *len)
{
    buf_t b = {0};
    pthread_mutex_lock(&reg->mu);
    for (weft_metrics_family_t *f = reg->first; f; f = f->next) write_family(&b, f);
    pthread_mutex_unlock(&reg->mu);
    if (b.oom) {
        free(b.p);
        return WEFT_ENOMEM;
    }
    if (!b.p) put(&b, "", 0);
    if (b.oom) return WEFT_ENOMEM;
    *out = b.p;
    *len = b.len;
    return 0;
}
