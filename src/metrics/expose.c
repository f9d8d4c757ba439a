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
 * values in the shortest %g form that reads back as the same double, always with '.' as
 * the decimal point whatever the locale (weft_json_put_double, core/json_write.h), and the
 * special values as +Inf, -Inf and NaN - all of which promtool and the Go parser accept.
 * Escaping: in help, backslash and newline; in label values also the double quote.
 * Names and label values are known valid (names checked at registration, values made
 * valid UTF-8 at child creation), so nothing else needs escaping.
 *
 * Threads: any thread; concurrent scrapes are independent. The output is a weft_buf_t
 * (core/buf.h) that grows by doubling from 4 KiB; its size is bounded by the families'
 * child limits. Its failure flag is sticky, so the writers below never check it except to
 * stop early, and an allocation failure anywhere is one WEFT_ENOMEM at the end.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "metrics/metrics_int.h"

/* Shortest text that reads back as v, '.' as the decimal point whatever the locale (a
 * program using libweft may have called setlocale); NaN and +Inf/-Inf as Prometheus
 * writes them. */
static void put_double(weft_buf_t *b, double v)
{
    if (!weft_json_put_double(b, v)) weft_buf_puts(b, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
}

/* Escapes backslash and newline, and the double quote when quote is set. */
static void put_escaped(weft_buf_t *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;
        if (!esc) continue;
        weft_buf_put(b, run, (size_t)(s - run));
        weft_buf_put(b, esc, 2);
        run = s + 1;
    }
    weft_buf_put(b, run, (size_t)(s - run));
}

/* One sample line: name suffix{labels[,le="le"]} value. labels is the child's escaped
 * l1="v1",... text (empty for none). */
static void put_sample(weft_buf_t *b, const weft_metrics_family_t *f, const char *suffix,
                       const weft_buf_t *labels, const char *le)
{
    weft_buf_puts(b, f->name);
    weft_buf_puts(b, suffix);
    if (labels->len || le) {
        weft_buf_putc(b, '{');
        weft_buf_put(b, labels->p, labels->len);
        if (le) {
            if (labels->len) weft_buf_putc(b, ',');
            weft_buf_puts(b, "le=\"");
            weft_buf_puts(b, le);
            weft_buf_putc(b, '"');
        }
        weft_buf_putc(b, '}');
    }
    weft_buf_putc(b, ' ');
}

static void write_child(weft_buf_t *b, const weft_metrics_family_t *f,
                        const struct weft_metric_child_s *c, weft_buf_t *labels,
                        const char *const *les)
{
    weft_buf_reset(labels);
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i) weft_buf_putc(labels, ',');
        weft_buf_puts(labels, f->labels[i]);
        weft_buf_put(labels, "=\"", 2);
        put_escaped(labels, c->values[i], true);
        weft_buf_putc(labels, '"');
    }
    if (labels->failed) {
        b->failed = true;
        return;
    }
    if (f->type != WEFT__HISTOGRAM) {
        put_sample(b, f, "", labels, NULL);
        put_double(b, weft__child_sum(c, NULL));
        weft_buf_putc(b, '\n');
        return;
    }
    uint64_t buckets[WEFT_METRICS_MAX_BOUNDS + 1];
    double sum = weft__child_sum(c, buckets);
    uint64_t cum = 0;
    for (size_t j = 0; j <= f->nbounds; j++) {
        cum += buckets[j];
        put_sample(b, f, "_bucket", labels, j == f->nbounds ? "+Inf" : les[j]);
        weft_buf_put_u64(b, cum);
        weft_buf_putc(b, '\n');
    }
    put_sample(b, f, "_sum", labels, NULL);
    put_double(b, sum);
    weft_buf_putc(b, '\n');
    put_sample(b, f, "_count", labels, NULL);
    weft_buf_put_u64(b, cum);
    weft_buf_putc(b, '\n');
}

static void write_family(weft_buf_t *b, weft_metrics_family_t *f, weft_buf_t *labels)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    weft_buf_puts(b, "# HELP ");
    weft_buf_puts(b, f->name);
    weft_buf_putc(b, ' ');
    put_escaped(b, f->help, false);
    weft_buf_puts(b, "\n# TYPE ");
    weft_buf_puts(b, f->name);
    weft_buf_putc(b, ' ');
    weft_buf_puts(b, type_names[f->type]);
    weft_buf_putc(b, '\n');
    if (f->fn) {
        weft_buf_puts(b, f->name);
        weft_buf_putc(b, ' ');
        put_double(b, f->fn(f->fn_arg));
        weft_buf_putc(b, '\n');
        return;
    }
    /* The bounds' le="..." texts, written once per family into one buffer. */
    weft_buf_t letext;
    weft_buf_init(&letext, 0);
    size_t leoff[WEFT_METRICS_MAX_BOUNDS];
    const char *les[WEFT_METRICS_MAX_BOUNDS];
    for (size_t j = 0; j < f->nbounds; j++) {
        leoff[j] = letext.len;
        put_double(&letext, f->bounds[j]);
        weft_buf_putc(&letext, 0);
    }
    if (letext.failed) {
        weft_buf_free(&letext);
        b->failed = true;
        return;
    }
    for (size_t j = 0; j < f->nbounds; j++) les[j] = letext.p + leoff[j];
    /* Snapshot the head once: the nodes behind it never change. Print oldest first. */
    struct weft_metric_child_s *head = atomic_load_explicit(&f->children, memory_order_acquire);
    size_t n = 0;
    for (struct weft_metric_child_s *c = head; c; c = c->next) n++;
    struct weft_metric_child_s **order = n ? malloc(n * sizeof(*order)) : NULL;
    if (n && !order) b->failed = true;
    if (!order) {
        weft_buf_free(&letext);
        return;
    }
    size_t k = n;
    for (struct weft_metric_child_s *c = head; c; c = c->next) order[--k] = c;
    for (size_t i = 0; i < n && !b->failed; i++) write_child(b, f, order[i], labels, les);
    free(order);
    weft_buf_free(&letext);
}

int weft_metrics_write(weft_metrics_registry_t *reg, char **out, size_t *len)
{
    if (!reg || !out || !len) return WEFT_EINVAL;
    weft_buf_t b, labels;
    weft_buf_init(&b, 0);
    weft_buf_init(&labels, 0);
    weft_buf_reserve(&b, 4095);   /* 4 KiB to start with: most scrapes need no more */
    weft_buf_put(&labels, "", 0); /* labels.p is a valid (empty) string from here on */
    for (weft_metrics_family_t *f = atomic_load_explicit(&reg->first, memory_order_acquire);
         f && !b.failed; f = atomic_load_explicit(&f->next, memory_order_acquire))
        write_family(&b, f, &labels);
    weft_buf_free(&labels);
    /* An empty registry still gives a valid (empty) string; NULL: out of memory. */
    size_t n;
    char *text = weft_buf_take(&b, &n);
    if (!text) return WEFT_ENOMEM; /* *out and *len untouched, as documented */
    *out = text;
    *len = n;
    return 0;
}
