/*
 * expose.c - a registry in the Prometheus text exposition format 0.0.4 or in OpenMetrics
 * text 1.0.0, and the choice between them from a scrape's Accept header.
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
 * OpenMetrics differs in a few places only, so both come from the same writers: "# HELP"
 * and "# TYPE" name a counter's family without its "_total" (the sample keeps it), help
 * escapes the double quote as well, an empty help is left out, each histogram bucket is
 * followed by its newest exemplar (" # {trace_id=\"..\",span_id=\"..\"} value time", the
 * time in seconds with milliseconds), and "# EOF" ends the text. The le values stay as in
 * the Prometheus text (OpenMetrics would rather have "1.0" than "1"), because Prometheus 2.x
 * takes them as they come: another text would make other series when it switches formats.
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

/* The " # {trace_id=\"..\",span_id=\"..\"} value time" after a bucket's count (OpenMetrics):
 * 32 + 16 hex digits and the two names make 63 characters, inside the spec's 128. */
static void put_exemplar(weft_buf_t *b, const weft__exemplar_read_t *e)
{
    weft_buf_puts(b, " # {trace_id=\"");
    weft_buf_put_hex(b, e->trace_id, 16);
    if (e->has_span) {
        weft_buf_puts(b, "\",span_id=\"");
        weft_buf_put_hex(b, e->span_id, 8);
    }
    weft_buf_puts(b, "\"} ");
    put_double(b, e->value);
    /* seconds with milliseconds, as a decimal that needs no rounding of a double */
    weft_buf_putc(b, ' ');
    weft_buf_put_u64(b, e->ts_ns / 1000000000u);
    unsigned ms = (unsigned)(e->ts_ns / 1000000u % 1000u);
    char frac[4] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10)};
    weft_buf_put(b, frac, 4);
}

static void write_child(weft_buf_t *b, const weft_metrics_family_t *f,
                        const struct weft_metric_child_s *c, weft_buf_t *labels,
                        const char *const *les, bool om)
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
    weft__exemplar_read_t ex[WEFT_METRICS_MAX_BOUNDS + 1];
    bool has_ex[WEFT_METRICS_MAX_BOUNDS + 1];
    /* exemplars first: one newer than the counts read next is still in its bucket's count */
    size_t nex = om ? weft__child_exemplars(c, ex, has_ex) : 0;
    double sum = weft__child_sum(c, buckets);
    uint64_t cum = 0;
    for (size_t j = 0; j <= f->nbounds; j++) {
        cum += buckets[j];
        put_sample(b, f, "_bucket", labels, j == f->nbounds ? "+Inf" : les[j]);
        weft_buf_put_u64(b, cum);
        if (nex && has_ex[j]) put_exemplar(b, &ex[j]);
        weft_buf_putc(b, '\n');
    }
    put_sample(b, f, "_sum", labels, NULL);
    put_double(b, sum);
    weft_buf_putc(b, '\n');
    put_sample(b, f, "_count", labels, NULL);
    weft_buf_put_u64(b, cum);
    weft_buf_putc(b, '\n');
}

/* "# HELP" and "# TYPE" name the family: in OpenMetrics a counter's family is its name
 * without "_total" (registration made sure it ends so), and help escapes '"' too (its
 * escaped-string); an empty help is left out there, as OpenMetrics lets metadata be. */
static void write_meta(weft_buf_t *b, const weft_metrics_family_t *f, bool om)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    size_t nl = strlen(f->name);
    if (om && f->type == WEFT__COUNTER) nl -= sizeof("_total") - 1;
    if (!om || f->help[0]) {
        weft_buf_puts(b, "# HELP ");
        weft_buf_put(b, f->name, nl);
        weft_buf_putc(b, ' ');
        put_escaped(b, f->help, om);
        weft_buf_putc(b, '\n');
    }
    weft_buf_puts(b, "# TYPE ");
    weft_buf_put(b, f->name, nl);
    weft_buf_putc(b, ' ');
    weft_buf_puts(b, type_names[f->type]);
    weft_buf_putc(b, '\n');
}

static void write_family(weft_buf_t *b, weft_metrics_family_t *f, weft_buf_t *labels, bool om)
{
    write_meta(b, f, om);
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
    for (size_t i = 0; i < n && !b->failed; i++) write_child(b, f, order[i], labels, les, om);
    free(order);
    weft_buf_free(&letext);
}

int weft_metrics_write_format(weft_metrics_registry_t *reg, weft_metrics_format_t format,
                              char **out, size_t *len)
{
    if (!reg || !out || !len ||
        (format != WEFT_METRICS_PROMETHEUS && format != WEFT_METRICS_OPENMETRICS))
        return WEFT_EINVAL;
    bool om = format == WEFT_METRICS_OPENMETRICS;
    weft_buf_t b, labels;
    weft_buf_init(&b, 0);
    weft_buf_init(&labels, 0);
    weft_buf_reserve(&b, 4095);   /* 4 KiB to start with: most scrapes need no more */
    weft_buf_put(&labels, "", 0); /* labels.p is a valid (empty) string from here on */
    for (weft_metrics_family_t *f = atomic_load_explicit(&reg->first, memory_order_acquire);
         f && !b.failed; f = atomic_load_explicit(&f->next, memory_order_acquire))
        write_family(&b, f, &labels, om);
    if (om) weft_buf_puts(&b, "# EOF\n");
    weft_buf_free(&labels);
    /* An empty registry still gives a valid (empty) string; NULL: out of memory. */
    size_t n;
    char *text = weft_buf_take(&b, &n);
    if (!text) return WEFT_ENOMEM; /* *out and *len untouched, as documented */
    *out = text;
    *len = n;
    return 0;
}

int weft_metrics_write(weft_metrics_registry_t *reg, char **out, size_t *len)
{
    return weft_metrics_write_format(reg, WEFT_METRICS_PROMETHEUS, out, len);
}

const char *weft_metrics_content_type(weft_metrics_format_t format)
{
    return format == WEFT_METRICS_OPENMETRICS ? WEFT_METRICS_OPENMETRICS_CONTENT_TYPE
                                              : WEFT_METRICS_CONTENT_TYPE;
}

/* ---- content negotiation ---- */

static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n != k) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] | 0x20) : s[i];
        if (c != lit[i]) return false;
    }
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* An RFC 9110 qvalue ("0", "0.5", "1.000") in thousandths, without strtod (whose decimal
 * point follows the locale); -1 when malformed. */
static int qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1') || n > 5 || (n > 1 && s[1] != '.')) return -1;
    int q = (s[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9') return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

weft_metrics_format_t weft_metrics_negotiate(const char *accept, size_t len)
{
    int q_om = 0, q_text = 0; /* the best q of each, in thousandths */
    const char *p = accept, *end = accept ? accept + len : NULL;
    while (p && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *range_end = comma ? comma : end;
        /* media type, then ;key=value parameters */
        const char *semi = memchr(p, ';', (size_t)(range_end - p));
        const char *type = p;
        size_t tn = (size_t)((semi ? semi : range_end) - p);
        trim(&type, &tn);
        const char *version = NULL;
        size_t vn = 0;
        int q = 1000;
        for (const char *a = semi; a && a < range_end;) {
            a++;
            const char *next = memchr(a, ';', (size_t)(range_end - a));
            const char *pe = next ? next : range_end;
            const char *eq = memchr(a, '=', (size_t)(pe - a));
            if (eq) {
                const char *k = a, *v = eq + 1;
                size_t kn = (size_t)(eq - a), vl = (size_t)(pe - v);
                trim(&k, &kn);
                trim(&v, &vl);
                if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') v++, vl -= 2;
                if (ieq(k, kn, "q")) {
                    q = qvalue(v, vl);
                } else if (ieq(k, kn, "version")) {
                    version = v;
                    vn = vl;
                }
            }
            a = next;
        }
        if (q > 0) {
            if (ieq(type, tn, "application/openmetrics-text")) {
                if ((!version || ieq(version, vn, "1.0.0")) && q > q_om) q_om = q;
            } else if (ieq(type, tn, "text/plain")) {
                if ((!version || ieq(version, vn, "0.0.4")) && q > q_text) q_text = q;
            } else if (ieq(type, tn, "text/*") || ieq(type, tn, "*/*")) {
                if (q > q_text) q_text = q;
            }
        }
        p = comma ? comma + 1 : NULL;
    }
    return q_om > 0 && q_om >= q_text ? WEFT_METRICS_OPENMETRICS : WEFT_METRICS_PROMETHEUS;
}
