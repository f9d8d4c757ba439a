/*
 * expose.c - the Prometheus text exposition format 0.0.4 of a registry.
 *
 * Design. One pass over the registry's families (a list that only grows, walked without
 * the registry mutex, so a scrape never blocks registration, child creation or updates),
 * each family written as
 *
 *   # HELP name help-with-\\-and-\n-escaped
 *   # TYPE name counter|gauge|histogram
 *   name{l1="v1",l2="v2"} value                     (counters, gauges)
 *   name_bucket{l1="v1",le="0.005"} cumulative-count (histograms, then le="+Inf")
 *   name_sum{l1="v1"} sum
 *   name_count{l1="v1"} count
 *
 * Children are taken from a snapshot of the family's list head (newer children are left
 * for the next scrape) and printed oldest first, so output order is stable. A histogram's
 * buckets, +Inf and _count come from one read of the shards, so they always agree even
 * while observations land; _sum is read in the same pass but may include an observation
 * whose bucket was read before it landed (Prometheus tolerates that skew).
 *
 * Numbers: integers below 2^53 print without exponent or decimals ("42"), other finite
 * values in the shortest %g form that reads back as the same double, and the special
 * values as +Inf, -Inf and NaN - all of which promtool and the Go parser accept.
 * Escaping: in help, backslash and newline; in label values also the double quote.
 * Names and label values are known valid (names checked at registration, values made
 * valid UTF-8 at child creation), so nothing else needs escaping.
 *
 * Threads: any thread; concurrent scrapes are independent. The output buffer grows by
 * doubling; its size is bounded by the families' child limits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_int.h"

typedef struct buf_s {
    char *p;
    size_t len, cap;
    bool oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n + 1 > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
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

static void put_u64(buf_t *b, uint64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Formats v into tmp (at least 32 bytes) as described at the top; returns tmp. */
static const char *fmt_double(char *tmp, size_t cap, double v)
{
    if (isnan(v)) return "NaN";
    if (isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(tmp, cap, "%.0f", v);
        return tmp;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, cap, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    return tmp;
}

static void put_double(buf_t *b, double v)
{
    char tmp[40];
    puts_(b, fmt_double(tmp, sizeof(tmp), v));
}

/* Escapes backslash and newline, and the double quote when quote is set. */
static void put_escaped(buf_t *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;
        if (!esc) continue;
        put(b, run, (size_t)(s - run));
        put(b, esc, 2);
        run = s + 1;
    }
    put(b, run, (size_t)(s - run));
}

/* One sample line: name suffix{labels[,le="le"]} value. labels is the child's escaped
 * l1="v1",... text (empty for none). */
static void put_sample(buf_t *b, const weft_metrics_family_t *f, const char *suffix,
                       const buf_t *labels, const char *le)
{
    puts_(b, f->name);
    puts_(b, suffix);
    if (labels->len || le) {
        put(b, "{", 1);
        put(b, labels->p, labels->len);
        if (le) {
            if (labels->len) put(b, ",", 1);
            puts_(b, "le=\"");
            puts_(b, le);
            put(b, "\"", 1);
        }
        put(b, "}", 1);
    }
    put(b, " ", 1);
}

static void write_child(buf_t *b, const weft_metrics_family_t *f,
                        const struct weft_metric_child_s *c, buf_t *labels, char les[][40])
{
    labels->len = 0;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i) put(labels, ",", 1);
        puts_(labels, f->labels[i]);
        put(labels, "=\"", 2);
        put_escaped(labels, c->values[i], true);
        put(labels, "\"", 1);
    }
    if (labels->oom) {
        b->oom = true;
        return;
    }
    if (f->type != WEFT__HISTOGRAM) {
        put_sample(b, f, "", labels, NULL);
        put_double(b, weft__child_sum(c, NULL));
        put(b, "\n", 1);
        return;
    }
    uint64_t buckets[WEFT_METRICS_MAX_BOUNDS + 1];
    double sum = weft__child_sum(c, buckets);
    uint64_t cum = 0;
    for (size_t j = 0; j <= f->nbounds; j++) {
        cum += buckets[j];
        put_sample(b, f, "_bucket", labels, j == f->nbounds ? "+Inf" : les[j]);
        put_u64(b, cum);
        put(b, "\n", 1);
    }
    put_sample(b, f, "_sum", labels, NULL);
    put_double(b, sum);
    put(b, "\n", 1);
    put_sample(b, f, "_count", labels, NULL);
    put_u64(b, cum);
    put(b, "\n", 1);
}

static void write_family(buf_t *b, weft_metrics_family_t *f, buf_t *labels)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    puts_(b, "# HELP ");
    puts_(b, f->name);
    put(b, " ", 1);
    put_escaped(b, f->help, false);
    puts_(b, "\n# TYPE ");
    puts_(b, f->name);
    put(b, " ", 1);
    puts_(b, type_names[f->type]);
    put(b, "\n", 1);
    if (f->fn) {
        puts_(b, f->name);
        put(b, " ", 1);
        put_double(b, f->fn(f->fn_arg));
        put(b, "\n", 1);
        return;
    }
    char les[WEFT_METRICS_MAX_BOUNDS][40];
    for (size_t j = 0; j < f->nbounds; j++) {
        const char *s = fmt_double(les[j], sizeof(les[j]), f->bounds[j]);
        if (s != les[j]) snprintf(les[j], sizeof(les[j]), "%s", s);
    }
    /* Snapshot the head once: the nodes behind it never change. Print oldest first. */
    struct weft_metric_child_s *head = atomic_load_explicit(&f->children, memory_order_acquire);
    size_t n = 0;
    for (struct weft_metric_child_s *c = head; c; c = c->next) n++;
    if (n == 0) return;
    struct weft_metric_child_s **order = malloc(n * sizeof(*order));
    if (!order) {
        b->oom = true;
        return;
    }
    size_t k = n;
    for (struct weft_metric_child_s *c = head; c; c = c->next) order[--k] = c;
    for (size_t i = 0; i < n && !b->oom; i++) write_child(b, f, order[i], labels, les);
    free(order);
}

int weft_metrics_write(weft_metrics_registry_t *reg, char **out, size_t *len)
{
    if (!reg || !out || !len) return WEFT_EINVAL;
    buf_t b = {0}, labels = {0};
    put(&b, "", 0); /* an empty registry still gives a valid (empty) string */
    put(&labels, "", 0);
    for (weft_metrics_family_t *f = atomic_load_explicit(&reg->first, memory_order_acquire);
         f && !b.oom; f = atomic_load_explicit(&f->next, memory_order_acquire))
        write_family(&b, f, &labels);
    free(labels.p);
    if (b.oom) {
        free(b.p);
        return WEFT_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
