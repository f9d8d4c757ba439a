/*
 * cli_traces.c - `weft traces` and `weft trace`: the trace store from the command line,
 * through the Jaeger query API that `weft serve` answers on its API port (query.c), the
 * one the Jaeger UI reads, so that the terminal and the UI show the same traces.
 *
 *   traces  GET /api/traces?service=&operation=&minDuration=&maxDuration=&tags=&lookback=
 *           &limit=: the traces with a span of the service that meets every condition (the
 *           store's rule, store.h). One line per trace: its id, its start (UTC, to the
 *           millisecond), its duration (first span's start to the last span's end), its
 *           root span's service and operation, its spans, how many of them failed. Newest
 *           first by that start (the API orders by the matching span's start, which a
 *           reader of the table cannot see). --json: the answer's data array as it came.
 *   trace   GET /api/traces/{id}: a waterfall, one line per span (see below). --json: the
 *           trace (the data array's one element) as it came.
 *
 * The flags are checked here before anything is sent, so that a mistake is a usage error
 * (exit 2) naming the flag rather than the API's 400: durations read as everywhere in
 * weft (weft_conf_parse_value: 250ms, 1.5s, 1m30s, 2d; sent as milliseconds, which the
 * API's Go-duration parser reads), --limit 1 to 1000 (the API's bound), each --tag
 * KEY=VALUE (split at the first '='; a key given twice is refused rather than one
 * silently dropped), sent as Jaeger's tags={"key":"value"} JSON; a trace id is 1 to 32
 * hex digits (Jaeger writes ids without leading zeros; the API pads them).
 *
 * The waterfall. A span's parent is its first CHILD_OF reference (FOLLOWS_FROM links may
 * point anywhere, other traces included); when several spans share an id (Zipkin's shared
 * client and server spans) the parent is the earliest. Spans are printed depth first, a
 * parent before its children, siblings by start (ties in the API's order), each indented
 * two columns deeper than its parent, down to a depth that leaves the name 16 columns
 * (deeper ones start with their depth, "[12] "). Roots are the spans without a parent
 * and, with a note naming the missing id, those whose parent is not in the trace (not
 * arrived yet, or lost). Spans whose parents form a cycle (bad data: no root reaches them)
 * are printed after those, each unvisited one as a root with a note, so that every span of
 * the answer is on a line exactly once. The bar: the trace's time (first start to last
 * end) scaled to the timeline's width w; a span covers the columns from
 * floor(offset * w / total) to ceil(end * w / total), at least one. The width is $COLUMNS
 * when set (a way to force it), else the terminal's, else 100 (a pipe); the SPAN, SERVICE
 * and NOTE columns take a bounded share (--wide: what they need), the timeline the rest,
 * at least 10 columns.
 *
 * Output is sanitized (table.c): a service or operation name cannot move the cursor.
 * Colours (only where the frame allows them: a terminal, no NO_COLOR, no --no-color): the
 * bars cyan, a failed span's name, bar and note red, other notes yellow.
 *
 * Exit status: 0 done (an empty search says so on stderr); 1 the API answered an error,
 * could not be reached, or answered something that is not Jaeger's JSON, in one line on
 * stderr naming the URL (an unknown trace is the API's 404); 2 a usage error.
 *
 * Bounds: the answer at most 256 MiB (cli_http.c); the request target 8 KiB; spans and
 * traces as many as the answer holds, in arrays sized once from it. Memory: out of memory
 * prints a line and exits 1 (the command line's policy, table.c). Threads: the main
 * thread only.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd/cli_int.h"
#include "weft/weft.h"

#define MAX_TARGET      8192
#define MAX_LIMIT       1000                    /* the API's bound on limit= */
#define MAX_DURATION_MS (365ull * 86400 * 1000) /* a year: far past any span or lookback */
#define MAX_TIME_US     ((int64_t)1 << 61)      /* times and durations are clamped to it */
#define MAX_INDENT      24                      /* levels of indentation at most */
#define DEFAULT_WIDTH   100                     /* the waterfall's width on a pipe */

#define N(a) (sizeof(a) / sizeof((a)[0]))

_Noreturn static void oom(void)
{
    fputs("weft: out of memory\n", stderr);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) oom();
    return p;
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* Appends s to out (NUL-terminated, cap bytes); false when it does not fit. */
static bool append(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out), k = strlen(s);
    if (n + k >= cap) return false;
    memcpy(out + n, s, k + 1);
    return true;
}

static bool is_hex_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdefABCDEF");
    return n >= 1 && n <= 32 && s[n] == 0;
}

/* ---- formatting ---- */

/* "850us", "1.23ms", "120ms", "1.5s", "1m05s", "2h03m": digits truncated, never rounded
 * up into the next unit. */
static void fmt_dur(char *out, size_t cap, int64_t us)
{
    uint64_t u = us > 0 ? (uint64_t)us : 0;
    const char *unit;
    uint64_t whole, frac; /* frac: hundredths */
    if (u < 1000) {
        snprintf(out, cap, "%" PRIu64 "us", u);
        return;
    } else if (u < 1000000) {
        whole = u / 1000, frac = u % 1000 / 10, unit = "ms";
    } else if (u < 60000000) {
        whole = u / 1000000, frac = u % 1000000 / 10000, unit = "s";
    } else if (u < UINT64_C(3600000000)) {
        snprintf(out, cap, "%" PRIu64 "m%02" PRIu64 "s", u / 60000000, u / 1000000 % 60);
        return;
    } else {
        snprintf(out, cap, "%" PRIu64 "h%02" PRIu64 "m", u / UINT64_C(3600000000),
                 u / 60000000 % 60);
        return;
    }
    if (frac == 0)
        snprintf(out, cap, "%" PRIu64 "%s", whole, unit);
    else if (frac % 10 == 0)
        snprintf(out, cap, "%" PRIu64 ".%" PRIu64 "%s", whole, frac / 10, unit);
    else
        snprintf(out, cap, "%" PRIu64 ".%02" PRIu64 "%s", whole, frac, unit);
}

/* "2026-12-06T12:20:09.123Z" for microseconds since the epoch. */
static void fmt_time(char *out, size_t cap, int64_t us)
{
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    if (!gmtime_r(&sec, &tm)) {
        snprintf(out, cap, "%" PRId64 "us", us);
        return;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", day, (int)(us / 1000 % 1000));
}

/* Code points of UTF-8 text (jansson's strings are valid UTF-8): as table.c counts. */
static unsigned width_of(const char *s)
{
    unsigned w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* ---- the API ---- */

/* Runs call (a GET of target) and returns the data array of Jaeger's answer (*root holds
 * it; decref that), or NULL after saying why on stderr. */
static json_t *get_data(const weft__cli_t *cli, weft__api_call_t *call, json_t **root)
{
    *root = NULL;
    weft__api_run(&cli->api, call, 1); /* a failure to set up is in call->err */
    if (!weft__api_ok(&cli->api, call)) return NULL;
    json_error_t e;
    json_t *j = json_loadb(call->resp, call->resp_len, 0, &e);
    if (!j) {
        fprintf(stderr, "weft: %s %s%s: the answer is not JSON (%d:%d: %s)\n", call->method,
                cli->api.url, call->target, e.line, e.column, e.text);
        return NULL;
    }
    json_t *data = json_object_get(j, "data"), *t;
    size_t i;
    bool ok = json_is_array(data);
    json_array_foreach(data, i, t) ok =
        ok && json_is_object(t) && json_is_array(json_object_get(t, "spans"));
    if (!ok) {
        fprintf(stderr,
                "weft: %s %s%s: expected Jaeger's {\"data\": [trace...]}, each trace with "
                "\"spans\"\n",
                call->method, cli->api.url, call->target);
        json_decref(j);
        return NULL;
    }
    *root = j;
    return data;
}

/* Prints j compactly (keys in their order) and a newline. Returns the exit status. */
static int print_json(const json_t *j)
{
    if (json_dumpf(j, stdout, JSON_COMPACT) != 0) {
        fputs("weft: out of memory\n", stderr);
        return 1;
    }
    putchar('\n');
    return 0;
}

/* ---- a trace as a tree ---- */

typedef struct span_s {
    const char *id;        /* "" when the answer has none */
    const char *parent;    /* the first CHILD_OF's spanID, or NULL */
    const char *service;   /* its process's serviceName */
    const char *operation; /* operationName */
    int64_t start, dur;    /* µs, clamped to [0, MAX_TIME_US] */
    bool error;            /* Jaeger's error tag: true or "true" (as the Jaeger UI reads it) */
    size_t pos;            /* in start order */
    size_t up;             /* the parent's index; n: none, or not in the trace */
} span_t;

typedef struct trace_s {
    const char *id;
    span_t *s;
    size_t n;
    size_t *order;      /* indexes by start, ties in the answer's order */
    int64_t start, end; /* the first start, the last end (µs) */
    size_t errors;
    size_t root; /* the root span's index (n when there is no span) */
} trace_t;

static int64_t clamp_us(json_int_t v)
{
    return v < 0 ? 0 : v > MAX_TIME_US ? MAX_TIME_US : (int64_t)v;
}

static bool span_failed(const json_t *sp)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(sp, "tags"), i, g)
    {
        if (strcmp(str(g, "key"), "error") != 0) continue;
        const json_t *v = json_object_get(g, "value");
        if (json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0))
            return true;
    }
    return false;
}

/* Comparators of span indexes for glibc's qsort_r; arg is the span array. */
static int by_start(const void *a, const void *b, void *arg)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const span_t *s = arg;
    if (s[x].start != s[y].start) return s[x].start < s[y].start ? -1 : 1;
    return (x > y) - (x < y);
}

static int by_id(const void *a, const void *b, void *arg)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const span_t *s = arg;
    int c = strcmp(s[x].id, s[y].id);
    if (c) return c;
    return (s[x].pos > s[y].pos) - (s[x].pos < s[y].pos);
}

/* The earliest span whose id is id, through byid (indexes sorted by id, then start);
 * n when none is. */
static size_t find_span(const trace_t *t, const size_t *byid, const char *id)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->s[byid[mid]].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && strcmp(t->s[byid[lo]].id, id) == 0 ? byid[lo] : t->n;
}

/* Reads one trace of Jaeger's JSON (tj, which must outlive t) into t. */
static void trace_load(trace_t *t, const json_t *tj)
{
    const json_t *spans = json_object_get(tj, "spans"), *procs = json_object_get(tj, "processes");
    memset(t, 0, sizeof(*t));
    t->id = str(tj, "traceID");
    t->n = json_array_size(spans);
    t->s = xcalloc(t->n, sizeof(*t->s));
    t->order = xcalloc(t->n, sizeof(*t->order));
    size_t *byid = xcalloc(t->n, sizeof(*byid));
    for (size_t i = 0; i < t->n; i++) {
        const json_t *sp = json_array_get(spans, i), *ref;
        span_t *s = &t->s[i];
        size_t k;
        s->id = str(sp, "spanID");
        s->operation = str(sp, "operationName");
        s->service = str(json_object_get(procs, str(sp, "processID")), "serviceName");
        s->start = clamp_us(json_integer_value(json_object_get(sp, "startTime")));
        s->dur = clamp_us(json_integer_value(json_object_get(sp, "duration")));
        s->error = span_failed(sp);
        json_array_foreach(json_object_get(sp, "references"), k, ref)
        {
            if (strcmp(str(ref, "refType"), "CHILD_OF") != 0) continue;
            s->parent = str(ref, "spanID");
            break;
        }
        t->errors += s->error;
        t->order[i] = byid[i] = i;
    }
    qsort_r(t->order, t->n, sizeof(*t->order), by_start, t->s);
    for (size_t k = 0; k < t->n; k++) t->s[t->order[k]].pos = k;
    qsort_r(byid, t->n, sizeof(*byid), by_id, t->s);
    t->root = t->n;
    size_t orphan = t->n;
    for (size_t k = 0; k < t->n; k++) {
        span_t *s = &t->s[t->order[k]];
        s->up = s->parent ? find_span(t, byid, s->parent) : t->n;
        if (!s->parent && t->root == t->n) t->root = t->order[k];
        if (s->parent && s->up == t->n && orphan == t->n) orphan = t->order[k];
        if (k == 0 || s->start < t->start) t->start = s->start;
        if (k == 0 || s->start + s->dur > t->end) t->end = s->start + s->dur;
    }
    /* the root: the first span without a parent, else the first whose parent is missing,
     * else (a cycle) the first */
    if (t->root == t->n) t->root = orphan != t->n ? orphan : t->n ? t->order[0] : t->n;
    free(byid);
}

static void trace_free(trace_t *t)
{
    free(t->s);
    free(t->order);
}

/* ---- weft traces ---- */

/* A duration flag into *ms (0 when not given). Returns 0, or 2 after the usage error. */
static int duration_flag(const weft__cli_t *cli, const char *flag, const char *text,
                         uint64_t min_ms, uint64_t *ms)
{
    static const weft_conf_option_t opt = {.key = "duration", .type = WEFT_CONF_DURATION};
    char why[256];
    *ms = 0;
    if (!text) return 0;
    if (weft_conf_parse_value(&opt, text, ms, why, sizeof(why)) != 0)
        return weft__cli_usage_error(cli->cmd, "--%s: %s", flag, why);
    if (*ms < min_ms || *ms > MAX_DURATION_MS)
        return weft__cli_usage_error(cli->cmd,
                                     "--%s: expected a duration from %s to 365d, got \"%.100s\"",
                                     flag, min_ms ? "1ms" : "0", text);
    return 0;
}

/* Appends "&name=<ms>ms" to target when the flag was given; false when it does not fit. */
static bool put_ms(char *target, const char *name, uint64_t ms, bool given)
{
    char v[64];
    snprintf(v, sizeof(v), "&%s=%" PRIu64 "ms", name, ms);
    return !given || append(target, MAX_TARGET, v);
}

/* The --tag flags as Jaeger's tags parameter (compact JSON, malloc'd) in *out, NULL when
 * none. Returns 0, or 2 after the usage error. */
static int tags_param(const weft__cli_t *cli, char **out)
{
    *out = NULL;
    if (cli->tags.n == 0) return 0;
    json_t *obj = json_object();
    if (!obj) oom();
    for (int i = 0; i < cli->tags.n; i++) {
        const char *kv = cli->tags.v[i], *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            json_decref(obj);
            return weft__cli_usage_error(cli->cmd, "--tag: expected KEY=VALUE, got \"%.100s\"", kv);
        }
        char *key = strndup(kv, (size_t)(eq - kv));
        if (!key) oom();
        bool twice = json_object_get(obj, key) != NULL;
        /* json_string and the set refuse text that is not UTF-8 (the set frees v then) */
        json_t *v = twice ? NULL : json_string(eq + 1);
        bool bad = twice || !v || json_object_set_new(obj, key, v) != 0;
        if (bad) {
            if (twice)
                weft__cli_usage_error(cli->cmd, "--tag: the key \"%.100s\" is given twice", key);
            else
                weft__cli_usage_error(cli->cmd, "--tag: \"%.100s\" is not UTF-8", kv);
        }
        free(key);
        if (bad) {
            json_decref(obj);
            return 2;
        }
    }
    *out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!*out) oom();
    return 0;
}

/* The query of `weft traces` into target. Returns 0, or 2 after the usage error. */
static int traces_target(const weft__cli_t *cli, char *target)
{
    const weft__cli_cmd_t *c = cli->cmd;
    if (!cli->service || !*cli->service) return weft__cli_usage_error(c, "--service is required");
    if (cli->operation && !*cli->operation) return weft__cli_usage_error(c, "--operation is empty");
    uint64_t min_ms, max_ms, lookback_ms;
    int rc;
    if ((rc = duration_flag(cli, "min-duration", cli->min_duration, 0, &min_ms)) != 0 ||
        (rc = duration_flag(cli, "max-duration", cli->max_duration, 1, &max_ms)) != 0 ||
        (rc = duration_flag(cli, "lookback", cli->lookback, 1, &lookback_ms)) != 0)
        return rc;
    if (cli->max_duration && min_ms > max_ms)
        return weft__cli_usage_error(c, "--min-duration: longer than --max-duration");
    unsigned long limit = 0;
    if (cli->limit) {
        const char *p = cli->limit;
        size_t digits = strspn(p, "0123456789");
        if (digits > 0 && digits <= 4 && !p[digits]) limit = strtoul(p, NULL, 10);
        if (limit < 1 || limit > MAX_LIMIT)
            return weft__cli_usage_error(
                c, "--limit: expected a number from 1 to %d, got \"%.100s\"", MAX_LIMIT, p);
    }
    char *tags;
    if ((rc = tags_param(cli, &tags)) != 0) return rc;

    bool fits = append(target, MAX_TARGET, "/api/traces?service=") &&
                weft__api_escape(target, MAX_TARGET, cli->service);
    if (fits && cli->operation)
        fits = append(target, MAX_TARGET, "&operation=") &&
               weft__api_escape(target, MAX_TARGET, cli->operation);
    fits = fits && put_ms(target, "minDuration", min_ms, cli->min_duration) &&
           put_ms(target, "maxDuration", max_ms, cli->max_duration) &&
           put_ms(target, "lookback", lookback_ms, cli->lookback);
    if (fits && limit) {
        char v[32];
        snprintf(v, sizeof(v), "&limit=%lu", limit);
        fits = append(target, MAX_TARGET, v);
    }
    if (fits && tags)
        fits = append(target, MAX_TARGET, "&tags=") && weft__api_escape(target, MAX_TARGET, tags);
    free(tags);
    if (!fits)
        return weft__cli_usage_error(c,
                                     "the query is too long (--service, --operation and "
                                     "--tag together over %d bytes)",
                                     MAX_TARGET);
    return 0;
}

typedef struct row_s {
    trace_t t;
    size_t at; /* in the answer */
} row_t;

static int row_cmp(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->t.start != y->t.start) return x->t.start > y->t.start ? -1 : 1;
    int c = strcmp(x->t.id, y->t.id);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

static void traces_table(const weft__cli_t *cli, const json_t *data)
{
    static const weft__col_t cols[] = {{.title = "TRACE ID"},
                                       {.title = "START"},
                                       {.title = "DURATION", .right = true},
                                       {.title = "SERVICE", .max = 30},
                                       {.title = "OPERATION", .max = 60, .flex = true},
                                       {.title = "SPANS", .right = true},
                                       {.title = "ERRORS", .right = true}};
    size_t n = json_array_size(data);
    row_t *rows = xcalloc(n, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        trace_load(&rows[i].t, json_array_get(data, i));
        rows[i].at = i;
    }
    qsort(rows, n, sizeof(*rows), row_cmp);
    weft__table_t *tb = weft__table_new(cols, N(cols));
    for (size_t i = 0; i < n; i++) {
        const trace_t *t = &rows[i].t;
        const span_t *root = t->root < t->n ? &t->s[t->root] : NULL;
        char start[48], dur[32], spans[24], errs[24];
        fmt_time(start, sizeof(start), t->start);
        fmt_dur(dur, sizeof(dur), t->end - t->start);
        snprintf(spans, sizeof(spans), "%zu", t->n);
        snprintf(errs, sizeof(errs), "%zu", t->errors);
        weft__table_add(tb, t->id, NULL);
        weft__table_add(tb, t->n ? start : "", NULL);
        weft__table_add(tb, t->n ? dur : "", NULL);
        weft__table_add(tb, root ? root->service : "", NULL);
        weft__table_add(tb, root ? root->operation : "", NULL);
        weft__table_add(tb, spans, NULL);
        weft__table_add(tb, errs, t->errors ? "31" : NULL);
    }
    if (n)
        weft__table_print(tb, stdout, &cli->table);
    else
        fprintf(stderr, "no traces of service \"%.500s\" match\n", cli->service);
    weft__table_free(tb);
    for (size_t i = 0; i < n; i++) trace_free(&rows[i].t);
    free(rows);
}

static int run_traces(weft__cli_t *cli)
{
    char target[MAX_TARGET] = "";
    int rc = traces_target(cli, target);
    if (rc != 0) return rc;
    weft__api_call_t call = {.method = "GET", .target = target};
    json_t *root, *data = get_data(cli, &call, &root);
    rc = 1;
    if (data) {
        if (cli->json)
            rc = print_json(data);
        else
            rc = 0, traces_table(cli, data);
    }
    json_decref(root);
    weft__api_call_free(&call);
    return rc;
}

/* ---- weft trace ---- */

/* The waterfall's width: $COLUMNS, the terminal's, or DEFAULT_WIDTH. */
static unsigned waterfall_width(const weft__cli_t *cli)
{
    const char *cols = getenv("COLUMNS");
    if (cols && *cols && strspn(cols, "0123456789") == strlen(cols) && strlen(cols) <= 5) {
        unsigned long w = strtoul(cols, NULL, 10);
        if (w >= 20 && w <= 10000) return (unsigned)w;
    }
    return cli->table.width ? cli->table.width : DEFAULT_WIDTH;
}

/* One line of the waterfall: a span, how deep, and why it is a root if it has a parent. */
typedef struct line_s {
    size_t span;
    unsigned depth;
    enum { ROOT_NATURAL, ROOT_ORPHAN, ROOT_CYCLE } why;
} line_t;

/* The lines in print order (see the opening comment): t->n of them. */
static line_t *waterfall_lines(const trace_t *t)
{
    size_t n = t->n;
    line_t *out = xcalloc(n, sizeof(*out));
    size_t *first = xcalloc(n + 1, sizeof(*first)), *kids = xcalloc(n, sizeof(*kids)),
           *fill = xcalloc(n + 1, sizeof(*fill));
    bool *seen = xcalloc(n, sizeof(*seen));
    size_t *mark = xcalloc(n, sizeof(*mark));
    line_t *stack = xcalloc(n, sizeof(*stack));
    /* children lists in start order: counts, prefix sums, then filled by start */
    for (size_t i = 0; i < n; i++)
        if (t->s[i].up < n) first[t->s[i].up + 1]++;
    for (size_t i = 0; i < n; i++) first[i + 1] += first[i];
    memcpy(fill, first, (n + 1) * sizeof(*fill));
    for (size_t k = 0; k < n; k++) {
        size_t i = t->order[k];
        if (t->s[i].up < n) kids[fill[t->s[i].up]++] = i;
    }
    size_t nout = 0;
    /* two passes over the spans by start: the roots and orphans, then what cycles hid */
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < n; k++) {
            size_t i = t->order[k];
            if (seen[i] || (pass == 0 && t->s[i].up < n)) continue;
            if (pass == 1) {
                /* i is below a cycle or on one (its ancestors are all unseen, each with a
                 * parent in the trace): up from it to the first span met twice, on the
                 * cycle, then around it to its earliest span, the one shown at the top */
                size_t j = i;
                while (j < n && mark[j] != k + 1) mark[j] = k + 1, j = t->s[j].up;
                if (j < n) { /* always (see above); checked all the same */
                    for (size_t c = t->s[j].up, e = j; c != e; c = t->s[c].up)
                        if (t->s[c].pos < t->s[j].pos) j = c;
                    i = j;
                }
            }
            size_t top = 0;
            stack[top++] = (line_t){i, 0,
                                    pass                                ? ROOT_CYCLE
                                    : t->s[i].up == n && t->s[i].parent ? ROOT_ORPHAN
                                                                        : ROOT_NATURAL};
            seen[i] = true;
            while (top) {
                line_t l = stack[--top];
                out[nout++] = l;
                /* children pushed last first, so that the earliest is printed first */
                for (size_t c = first[l.span + 1]; c-- > first[l.span];) {
                    if (seen[kids[c]]) continue;
                    seen[kids[c]] = true;
                    stack[top++] = (line_t){kids[c], l.depth + 1, ROOT_NATURAL};
                }
            }
        }
    free(first);
    free(kids);
    free(fill);
    free(seen);
    free(mark);
    free(stack);
    return out;
}

/* The note of a line: "error", why a span with a parent is shown at the top, or both. */
static void line_note(char *out, size_t cap, const line_t *l, const span_t *s)
{
    char why[160] = "";
    if (l->why == ROOT_ORPHAN)
        snprintf(why, sizeof(why), "missing parent %.64s", s->parent);
    else if (l->why == ROOT_CYCLE)
        snprintf(why, sizeof(why), "parent %.64s, in a cycle", s->parent);
    snprintf(out, cap, "%s%s%s", s->error ? "error" : "", s->error && *why ? "; " : "", why);
}

/* The bar of a span: columns [c0, c1) of w, floor(offset * w / total) to
 * ceil(end * w / total) with exact integers (times are at most 2^61, w at most 10,000), at
 * least one; no trailing blanks (the table pads when a note follows). */
static void span_bar(char *bar, unsigned w, const trace_t *t, const span_t *s)
{
    uint64_t total = (uint64_t)(t->end - t->start), c0 = 0, c1 = 1;
    if (total > 0) {
        unsigned __int128 off = (uint64_t)(s->start - t->start), end = off + (uint64_t)s->dur;
        c0 = (uint64_t)(off * w / total);
        c1 = (uint64_t)((end * w + total - 1) / total);
    }
    if (c0 >= w) c0 = w - 1;
    if (c1 > w) c1 = w;
    if (c1 <= c0) c1 = c0 + 1;
    memset(bar, ' ', c0);
    memset(bar + c0, '=', c1 - c0);
    bar[c1] = 0;
}

static void waterfall(const weft__cli_t *cli, const trace_t *t, const char *asked)
{
    char dur[32], start[48];
    fmt_dur(dur, sizeof(dur), t->end - t->start);
    fmt_time(start, sizeof(start), t->start);
    printf("trace %s: %zu span%s, %zu error%s, %s, started %s\n\n",
           is_hex_id(t->id) ? t->id : asked, t->n, t->n == 1 ? "" : "s", t->errors,
           t->errors == 1 ? "" : "s", dur, start);

    /* the cells but the bars, and the widths they need */
    typedef struct cells_s {
        char *name; /* indentation and operation, malloc'd */
        char dur[32], note[240];
    } cells_t;
    line_t *lines = waterfall_lines(t);
    cells_t *cells = xcalloc(t->n, sizeof(*cells));
    /* the names and notes take a bounded share of the width (--wide: what they need),
     * the timeline the rest; indentation leaves 16 columns of the name column to the name,
     * deeper spans say their depth, "[12] " */
    unsigned width = waterfall_width(cli);
    unsigned name_max = width * 3 / 10 > 24 ? width * 3 / 10 : 24;
    unsigned levels = cli->wide ? MAX_INDENT : (name_max - 16) / 2;
    if (levels > MAX_INDENT) levels = MAX_INDENT;
    unsigned name_w = 4, svc_w = 7, dur_w = 8, note_w = 0; /* the titles: SPAN, SERVICE... */
    for (size_t k = 0; k < t->n; k++) {
        const span_t *s = &t->s[lines[k].span];
        cells_t *c = &cells[k];
        unsigned d = lines[k].depth, ind = (d > levels ? levels : d) * 2;
        char deep[32] = "";
        if (d > levels) snprintf(deep, sizeof(deep), "[%u] ", d);
        size_t len = ind + strlen(deep) + strlen(s->operation) + 1;
        if (!(c->name = malloc(len))) oom();
        snprintf(c->name, len, "%*s%s%s", (int)ind, "", deep, s->operation);
        fmt_dur(c->dur, sizeof(c->dur), s->dur);
        line_note(c->note, sizeof(c->note), &lines[k], s);
        unsigned w;
        if ((w = width_of(c->name)) > name_w) name_w = w;
        if ((w = width_of(s->service)) > svc_w) svc_w = w;
        if ((w = width_of(c->dur)) > dur_w) dur_w = w;
        if ((w = width_of(c->note)) > note_w) note_w = w;
    }
    if (!cli->wide) {
        if (name_w > name_max) name_w = name_max;
        if (svc_w > 24) svc_w = 24;
        if (note_w > 40) note_w = 40;
    }
    if (note_w && note_w < 4) note_w = 4; /* NOTE */
    unsigned used = name_w + 2 + svc_w + 2 + dur_w + 2 + (note_w ? note_w + 2 : 0);
    unsigned bar_w = width > used + 10 ? width - used : 10;

    /* the timeline's title: its scale, 0 at the left, the trace's duration at the right */
    char *axis = xcalloc(bar_w + 1, 1);
    memset(axis, ' ', bar_w);
    if (bar_w >= strlen(dur) + 3) {
        axis[0] = '0';
        memcpy(axis + bar_w - strlen(dur), dur, strlen(dur));
    } else {
        memcpy(axis, "TIMELINE", bar_w < 8 ? bar_w : 8);
    }
    const weft__col_t cols[] = {{.title = "SPAN", .max = name_w},
                                {.title = "SERVICE", .max = svc_w},
                                {.title = "DURATION", .right = true},
                                {.title = axis},
                                {.title = "NOTE", .max = note_w}};
    weft__table_t *tb = weft__table_new(cols, note_w ? 5 : 4);
    char *bar = xcalloc(bar_w + 1, 1);
    for (size_t k = 0; k < t->n; k++) {
        const span_t *s = &t->s[lines[k].span];
        span_bar(bar, bar_w, t, s);
        weft__table_add(tb, cells[k].name, s->error ? "31" : NULL);
        weft__table_add(tb, s->service, NULL);
        weft__table_add(tb, cells[k].dur, NULL);
        weft__table_add(tb, bar, s->error ? "31" : "36");
        if (note_w)
            weft__table_add(tb, *cells[k].note ? cells[k].note : NULL, s->error ? "31" : "33");
        free(cells[k].name);
    }
    weft__table_print(tb, stdout,
                      &(weft__table_opts_t){.wide = cli->wide, .color = cli->table.color});
    weft__table_free(tb);
    free(cells);
    free(bar);
    free(axis);
    free(lines);
}

static int run_trace(weft__cli_t *cli)
{
    const char *id = cli->arg[0];
    if (!is_hex_id(id))
        return weft__cli_usage_error(cli->cmd, "ID: expected 1 to 32 hex digits, got \"%.100s\"",
                                     id);
    char target[64] = "/api/traces/";
    append(target, sizeof(target), id);
    weft__api_call_t call = {.method = "GET", .target = target};
    json_t *root, *data = get_data(cli, &call, &root);
    const json_t *tj = json_array_get(data, 0);
    int rc = 1;
    if (data && (!tj || json_array_size(json_object_get(tj, "spans")) == 0)) {
        fprintf(stderr, "weft: GET %s%s: the answer holds no span\n", cli->api.url, target);
    } else if (data && cli->json) {
        rc = print_json(tj);
    } else if (data) {
        trace_t t;
        trace_load(&t, tj);
        waterfall(cli, &t, id);
        trace_free(&t);
        rc = 0;
    }
    json_decref(root);
    weft__api_call_free(&call);
    return rc;
}

const weft__cli_cmd_t weft__cli_trace_cmds[] = {
    {"traces", "", 0, 0, WEFT__CLI_ALL | WEFT__CLI_TABLE | WEFT__CLI_TRACES,
     "search traces: by service, operation, duration, tags",
     "Searches the trace store for traces with a span of --service that meets every other\n"
     "condition given (--operation, --min-duration, --max-duration, each --tag) and started\n"
     "within --lookback, through Jaeger's GET /api/traces on the API. One line per trace,\n"
     "newest first: its id, its start (UTC), its duration (first span's start to last span's\n"
     "end), its root span's service and operation, its spans and how many failed (status\n"
     "ERROR, or an error tag). `weft trace ID` shows one. --json prints the answer's data\n"
     "array (Jaeger's traces) as it came. For example\n"
     "  weft traces --service shop --min-duration 250ms --tag http.status_code=500 --lookback 1h\n",
     run_traces},
    {"trace", "ID", 1, 1, WEFT__CLI_ALL | WEFT__CLI_TABLE, "show a trace as a waterfall",
     "Shows trace ID (1 to 32 hex digits) as a waterfall, from Jaeger's GET /api/traces/ID:\n"
     "one line per span, under its parent and indented one step deeper, siblings by start;\n"
     "its operation, service and duration, a bar placing it in the trace (its offset from\n"
     "the trace's start and its length, scaled to the width), and a note: \"error\" for a\n"
     "failed span; for a span whose parent is not in the trace, the parent's id (the span is\n"
     "shown at the top level). The width is $COLUMNS when set, else the terminal's, else\n"
     "100. An unknown ID is an error (exit status 1). --json prints the trace as the API\n"
     "gives it.\n",
     run_trace},
};

const size_t weft__cli_trace_ncmds = N(weft__cli_trace_cmds);
