/*
 * fuzz_exposition.c - label values, help text and sample values from the fuzzer go
 * through a registry and out as Prometheus text, which a strict 0.0.4 parser here reads
 * back. It checks that the output is always well-formed (names, escapes, UTF-8, numbers,
 * no duplicate series, histograms cumulative with +Inf == _count) and that it says what was
 * recorded: every child's labels and value, every gauge bit for bit, every histogram count.
 *
 * Input: records separated by NUL bytes. The first record is the help text. Each later
 * record is  a \x01 b \x01 number : label values a and b (the child of three families with
 * labels a, b) and optionally a number read by strtod (a gauge set and a histogram
 * observation; hex floats reach every double); every record increments the counter child.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_int.h"

#define LIMIT 64 /* children per family, small so the limit path runs too */

typedef struct model_s {
    weft_counter_t *c;
    weft_gauge_t *g;
    weft_histogram_t *h;
    double count, gauge;
    uint64_t observed;
    bool gauge_set;
} model_t;

/* ---- a strict reader of the text format ---- */

/* A sample: its series key (the line up to the space before the value, i.e. the name and
 * the label block exactly as written) and its value. Escaping is deterministic and labels
 * come in family order, so equal keys mean equal series. */
typedef struct series_s {
    const char *key;
    size_t keylen;
    double value;
} series_t;

static bool name_ok(const char *s, size_t n, bool metric)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (metric && c == ':') || (i && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* Unescapes s[0..n) into out (cap bytes); quote: label value rules (\" allowed, an
 * unescaped " ends the value). Sets *used to the bytes consumed; returns false for a bad
 * escape, a raw newline, a missing end quote or invalid UTF-8. */
static bool unescape(const char *s, size_t n, char *out, size_t cap, bool quote, size_t *used)
{
    size_t o = 0, i = 0;
    bool closed = !quote;
    for (; i < n; i++) {
        char c = s[i];
        if (quote && c == '"') {
            closed = true;
            break;
        }
        if (c == '\n') return false;
        if (c == '\\') {
            if (++i >= n) return false;
            c = s[i] == 'n' ? '\n' : s[i] == '\\' ? '\\' : (quote && s[i] == '"') ? '"' : 0;
            if (!c) return false;
        }
        if (o + 1 >= cap) return false;
        out[o++] = c;
    }
    out[o] = 0;
    *used = i;
    return closed && weft__utf8_valid(out, o);
}

static double parse_value(const char *s, size_t n)
{
    if (n == 3 && memcmp(s, "NaN", 3) == 0) return NAN;
    if (n == 4 && memcmp(s, "+Inf", 4) == 0) return INFINITY;
    if (n == 4 && memcmp(s, "-Inf", 4) == 0) return -INFINITY;
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp)) abort();
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end;
    double v = strtod(tmp, &end);
    if (*end || isnan(v) || isinf(v)) abort(); /* specials only in the spellings above */
    if (strpbrk(tmp, "eE") && fabs(v) < 9007199254740992.0 && v == floor(v))
        abort(); /* integers below 2^53 print without exponent */
    return v;
}

/* Parses one sample line (without its newline); aborts on anything malformed. */
static void parse_sample(const char *s, size_t n, series_t *out)
{
    static char tmp[16384];
    size_t i = 0;
    while (i < n && s[i] != '{' && s[i] != ' ') i++;
    if (!name_ok(s, i, true)) abort();
    if (i < n && s[i] == '{') {
        i++;
        for (int nl = 0;; nl++) {
            if (nl == 3) abort(); /* a, b, le at most */
            size_t st = i, used;
            while (i < n && s[i] != '=') i++;
            if (i >= n || !name_ok(s + st, i - st, false)) abort();
            if (++i >= n || s[i] != '"') abort();
            i++;
            if (!unescape(s + i, n - i, tmp, sizeof(tmp), true, &used)) abort();
            i += used + 1;
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i >= n || s[i] != '}') abort();
            i++;
            break;
        }
    }
    if (i >= n || s[i] != ' ') abort();
    out->key = s;
    out->keylen = i;
    i++;
    out->value = parse_value(s + i, n - i);
}

static int series_cmp(const void *x, const void *y)
{
    const series_t *a = x, *b = y;
    size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
    int c = memcmp(a->key, b->key, n);
    return c ? c : (a->keylen > b->keylen) - (a->keylen < b->keylen);
}

/* ---- the check ---- */

static series_t *parse_all(const char *text, size_t len, const char *help, size_t *count)
{
    static char help_buf[16384];
    size_t cap = 64, n = 0;
    series_t *all = malloc(cap * sizeof(*all));
    if (!all) abort();
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        if (!nl) abort(); /* every line ends with a newline */
        size_t ll = (size_t)(nl - line);
        pos += ll + 1;
        if (ll >= 7 && memcmp(line, "# HELP ", 7) == 0) {
            const char *sp = memchr(line + 7, ' ', ll - 7);
            if (!sp || !name_ok(line + 7, (size_t)(sp - line - 7), true)) abort();
            size_t hl = ll - (size_t)(sp + 1 - line), used;
            if (!unescape(sp + 1, hl, help_buf, sizeof(help_buf), false, &used) || used != hl)
                abort();
            if (strncmp(line + 7, "fz_total ", 9) == 0 && strcmp(help_buf, help) != 0) abort();
            continue;
        }
        if (ll >= 7 && memcmp(line, "# TYPE ", 7) == 0) {
            const char *t = memchr(line + 7, ' ', ll - 7);
            if (!t || !name_ok(line + 7, (size_t)(t - line - 7), true)) abort();
            size_t tl = ll - (size_t)(t + 1 - line);
            if (!(tl == 7 && memcmp(t + 1, "counter", 7) == 0) &&
                !(tl == 5 && memcmp(t + 1, "gauge", 5) == 0) &&
                !(tl == 9 && memcmp(t + 1, "histogram", 9) == 0))
                abort();
            continue;
        }
        if (ll == 0 || line[0] == '#') abort();
        if (n == cap) {
            cap *= 2;
            series_t *more = realloc(all, cap * sizeof(*all));
            if (!more) abort();
            all = more;
        }
        parse_sample(line, ll, &all[n++]);
    }
    qsort(all, n, sizeof(*all), series_cmp);
    for (size_t i = 1; i < n; i++)
        if (series_cmp(&all[i - 1], &all[i]) == 0) abort(); /* no series twice */
    *count = n;
    return all;
}

static void esc_append(char **o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            *(*o)++ = '\\';
            *(*o)++ = *s == '\n' ? 'n' : *s;
        } else
            *(*o)++ = *s;
    }
}

/* The sample of name for child c (and bucket le), by its expected key. */
static const series_t *find(const series_t *all, size_t n, const char *name,
                            const struct weft_metric_child_s *c, const char *le)
{
    static char key[16384];
    char *o = key;
    o += sprintf(o, "%s{a=\"", name);
    esc_append(&o, c->values[0]);
    o += sprintf(o, "\",b=\"");
    esc_append(&o, c->values[1]);
    *o++ = '"';
    if (le) o += sprintf(o, ",le=\"%s\"", le);
    *o++ = '}';
    series_t want = {key, (size_t)(o - key), 0};
    return bsearch(&want, all, n, sizeof(*all), series_cmp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;

    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    if (!reg) abort();
    const char *lbl[] = {"a", "b"};
    weft_metrics_family_t *fc, *fg, *fh;
    const char *help = buf; /* up to the first NUL */
    size_t help_len = strlen(help);
    int err = weft_metrics_counter_new(reg, "fz_total", help, lbl, 2, &fc);
    bool help_ok = help_len <= WEFT_METRICS_MAX_HELP_LEN && weft__utf8_valid(help, help_len);
    if (help_ok ? err != 0 : err != WEFT_EINVAL) abort();
    if (err) {
        help = "fallback";
        if (weft_metrics_counter_new(reg, "fz_total", help, lbl, 2, &fc)) abort();
    }
    if (weft_metrics_gauge_new(reg, "fz_gauge", "g", lbl, 2, &fg) ||
        weft_metrics_histogram_new(reg, "fz_seconds", "h", lbl, 2, NULL, 0, &fh))
        abort();
    weft_metrics_family_set_limit(fc, LIMIT);
    weft_metrics_family_set_limit(fg, LIMIT);
    weft_metrics_family_set_limit(fh, LIMIT);

    model_t model[LIMIT];
    size_t nmodel = 0;
    uint64_t refused = 0;
    for (size_t pos = help_len + 1; pos < size;) {
        char *rec = buf + pos;
        size_t rl = strlen(rec);
        pos += rl + 1;
        char *a = rec, *b = "", *raw = NULL;
        char *sep = strchr(a, '\x01');
        if (sep) {
            *sep = 0;
            b = sep + 1;
            if ((sep = strchr(b, '\x01'))) {
                *sep = 0;
                raw = sep + 1;
            }
        }
        double v = 0;
        bool have_v = raw && *raw;
        if (have_v) v = strtod(raw, NULL); /* any double: "nan", "-inf", "0x1p-1074" */
        const char *vals[] = {a, b};
        weft_counter_t *c = weft_metrics_counter_child(fc, vals);
        weft_gauge_t *g = weft_metrics_gauge_child(fg, vals);
        weft_histogram_t *h = weft_metrics_histogram_child(fh, vals);
        bool too_long =
            strlen(a) > WEFT_METRICS_MAX_VALUE_LEN || strlen(b) > WEFT_METRICS_MAX_VALUE_LEN;
        if (!c) {
            if (!too_long && nmodel < LIMIT) abort(); /* refused without a reason */
            refused++;
            if (g || h) abort(); /* the three families agree */
            continue;
        }
        if (!g || !h || too_long) abort();
        /* a valid value is kept as is */
        if (weft__utf8_valid(a, strlen(a)) && strcmp(c->values[0], a)) abort();
        if (weft__utf8_valid(b, strlen(b)) && strcmp(c->values[1], b)) abort();
        model_t *m = NULL;
        for (size_t i = 0; i < nmodel; i++)
            if (model[i].c == c) m = &model[i];
        if (!m) {
            if (nmodel == LIMIT) abort();
            m = &model[nmodel++];
            memset(m, 0, sizeof(*m));
            m->c = c;
            m->g = g;
            m->h = h;
        } else if (m->g != g || m->h != h)
            abort();
        weft_counter_inc(c);
        m->count++;
        if (have_v) {
            weft_gauge_set(g, v);
            m->gauge = v;
            m->gauge_set = true;
            weft_histogram_observe(h, v);
            if (!isnan(v)) m->observed++;
        }
    }
    if (weft_metrics_dropped(reg) != refused * 3) abort();

    char *text;
    size_t len;
    if (weft_metrics_write(reg, &text, &len)) abort();
    if (strlen(text) != len) abort();
    size_t n;
    series_t *all = parse_all(text, len, help, &n);
    if (n != 1 + nmodel * 2 + nmodel * (14 + 1 + 2)) abort(); /* dropped + c, g + histograms */
    for (size_t i = 0; i < nmodel; i++) {
        model_t *m = &model[i];
        const series_t *s = find(all, n, "fz_total", m->c, NULL);
        if (!s || s->value != m->count) abort();
        s = find(all, n, "fz_gauge", m->c, NULL);
        double want = m->gauge_set ? m->gauge : 0;
        if (!s || !(s->value == want || (isnan(want) && isnan(s->value)))) abort();
        s = find(all, n, "fz_seconds_count", m->c, NULL);
        if (!s || s->value != (double)m->observed) abort();
        const series_t *inf = find(all, n, "fz_seconds_bucket", m->c, "+Inf");
        if (!inf || inf->value != s->value) abort();
        static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                          "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                          "1",      "2.5",   "5",      "10"};
        double prev = 0;
        for (size_t k = 0; k < 14; k++) {
            const series_t *bk = find(all, n, "fz_seconds_bucket", m->c, les[k]);
            if (!bk || bk->value < prev) abort();
            prev = bk->value;
        }
        if (prev > inf->value) abort();
    }
    free(all);
    free(text);
    weft_metrics_registry_free(reg);
    free(buf);
    return 0;
}
