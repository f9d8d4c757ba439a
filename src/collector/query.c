/*
 * query.c - the query APIs that existing tracing UIs speak: Zipkin v2's read API on the
 * Zipkin port (/api/v2/services, /spans, /remoteServices, /traces, /trace/{id},
 * /traceMany, /dependencies, /autocompleteKeys, /autocompleteValues: autocomplete.c) and the
 * Jaeger query service's JSON API on the API port (/api/services,
 * /api/services/{s}/operations, /api/operations, /api/traces, /api/traces/{id},
 * /api/dependencies).
 *
 * A handler reads and checks its parameters on the worker (400 with a JSON body naming the
 * parameter), then the store is asked on libuv's thread pool (uv_queue_work: a search may
 * read and inflate blocks from disk, which must not hold up the worker's other requests),
 * the answer is encoded there too, and the worker sends it. A client that goes away
 * meanwhile: the job finishes and its answer is dropped.
 *
 * Zipkin's units: timestamps and durations in microseconds, endTs and lookback in ms.
 * Jaeger's: start/end in microseconds, minDuration/maxDuration/lookback as Go durations
 * ("100ms", "1h"), endTs/lookback of /api/dependencies in ms.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "collector/collector_int.h"
#include "collector/encode.h"
#include "core/json_read.h"
#include "core/json_write.h"
#include "core/qs.h"
#include "weft/common.h"

#define MAX_TRACES      1000      /* limit= at most */
#define DEF_LOOKBACK_MS 86400000u /* Zipkin's and Jaeger's default: a day */
#define MAX_IDS         100       /* traceMany */
#define ANSWER_LIMIT    (256u << 20)

typedef enum {
    Q_Z_SERVICES,
    Q_Z_SPANS,
    Q_Z_REMOTE,
    Q_Z_TRACES,
    Q_Z_TRACE,
    Q_Z_TRACE_MANY,
    Q_Z_DEPS,
    Q_Z_AC_VALUES, /* /autocompleteValues?key= (the key in service) */
    Q_J_SERVICES,
    Q_J_OPERATIONS,     /* /api/services/{s}/operations: names */
    Q_J_OPERATIONS_ALL, /* /api/operations?service=&spanKind=: {name, spanKind} */
    Q_J_TRACES,
    Q_J_TRACE,
    Q_J_DEPS
} qkind_t;

/* One query on its way through the thread pool. Strings it needs are copied into text. */
typedef struct job_s {
    uv_work_t work;
    weft_collector_t *c;
    weft_http_request_t *req; /* NULL once the client went away */
    qkind_t kind;
    col_query_t q;
    uint8_t ids[MAX_IDS][16];
    size_t nids;
    col_str_t service;
    int span_kind; /* Jaeger's spanKind filter: -1 any */
    uint64_t end_ms, lookback_ms;
    /* the answer */
    int status;
    weft_buf_t out;
    char text[8192]; /* the copied parameters */
    size_t used;
} job_t;

/* ---- parameters ---- */

static const char *job_copy(job_t *j, const char *s, size_t n)
{
    if (n + 1 > sizeof(j->text) - j->used) return NULL;
    char *p = j->text + j->used;
    memcpy(p, s, n);
    p[n] = 0;
    j->used += n + 1;
    return p;
}

/* The decoded value of parameter name into the job's text: 1 found, 0 absent, -1 bad. */
static int param(job_t *j, const weft_qs_t *q, const char *name, col_str_t *out)
{
    weft_str_t v;
    if (!weft_qs_get(q, name, &v)) return 0;
    char buf[2048];
    ssize_t n = weft_qs_decode(v, buf, sizeof(buf));
    if (n < 0) return -1;
    const char *p = job_copy(j, buf, (size_t)n);
    if (!p) return -1;
    *out = (col_str_t){p, (uint32_t)n};
    return 1;
}

/* An unsigned decimal parameter: 1 found, 0 absent, -1 bad. */
static int param_u64(const weft_qs_t *q, const char *name, uint64_t *out)
{
    weft_str_t v;
    if (!weft_qs_get(q, name, &v)) return 0;
    if (v.len == 0 || v.len > 19) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v.base[i] - '0');
    }
    *out = x;
    return 1;
}

/* A Go duration ("1.5s", "100ms", "250us", "1h30m") in ns; false when it is not one. */
static bool go_duration_ns(const char *s, size_t n, uint64_t *out)
{
    static const struct {
        const char *u;
        double ns;
    } units[] = {{"ns", 1},  {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6},
                 {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    double total = 0;
    size_t i = 0;
    if (n == 0) return false;
    while (i < n) {
        size_t d0 = i;
        double v = 0, scale = 1;
        bool frac = false, digits = false;
        while (i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '.' && !frac))) {
            if (s[i] == '.') {
                frac = true;
            } else {
                digits = true;
                if (frac) {
                    scale /= 10;
                    v += (s[i] - '0') * scale;
                } else {
                    v = v * 10 + (s[i] - '0');
                }
            }
            i++;
        }
        if (!digits || i == d0) return false;
        size_t best = 0;
        double mul = 0;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            size_t ul = strlen(units[k].u);
            if (ul > best && i + ul <= n && memcmp(s + i, units[k].u, ul) == 0 &&
                !(ul == 1 && units[k].u[0] == 'm' && i + 1 < n && s[i + 1] == 's')) {
                best = ul;
                mul = units[k].ns;
            }
        }
        if (best == 0) return false;
        i += best;
        total += v * mul;
        if (total > 9.2e18) return false;
    }
    *out = (uint64_t)total;
    return true;
}

static bool hex_id(const char *s, size_t n, uint8_t id[16])
{
    if (n != 16 && n != 32) return false;
    memset(id, 0, 16);
    size_t off = n == 16 ? 8 : 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (v < 0) return false;
        id[off + i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
    }
    return true;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- answers ---- */

static void put_strs(weft_buf_t *b, const col_str_t *s, size_t n)
{
    weft_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) weft_buf_putc(b, ',');
        weft_json_put_str(b, s[i].p, s[i].n);
    }
    weft_buf_putc(b, ']');
}

static void jaeger_open(weft_buf_t *b)
{
    weft_buf_puts(b, "{\"data\":");
}

static void jaeger_close(weft_buf_t *b, size_t total)
{
    weft_buf_puts(b, ",\"total\":");
    weft_buf_put_u64(b, total);
    weft_buf_puts(b, ",\"limit\":0,\"offset\":0,\"errors\":null}");
}

static const char *kind_name(int k)
{
    switch (k) {
    case COL_KIND_SERVER:
        return "server";
    case COL_KIND_CLIENT:
        return "client";
    case COL_KIND_PRODUCER:
        return "producer";
    case COL_KIND_CONSUMER:
        return "consumer";
    case COL_KIND_INTERNAL:
        return "internal";
    default:
        return "unspecified";
    }
}

/* Sorts and removes repeated names (the operations of several kinds share a name). */
static int cmp_str(const void *a, const void *b)
{
    const col_str_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static bool eq_nocase(col_str_t a, col_str_t b)
{
    return a.n == b.n && (a.n == 0 || strncasecmp(a.p, b.p, a.n) == 0);
}

/* Zipkin's names are lowercase (its server lowers service and span names as it stores
 * them, and its clients query with what it listed): weft keeps names as sent, so a Zipkin
 * list is lowercased (and repeats dropped), and a Zipkin search finds the stored name that
 * equals the asked one in any ASCII case (the first, in sorted order, when several do). */
static void lower_unique(col_str_t *names, size_t *n, weft_arena_t *a)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        char *l = weft_arena_alloc(a, names[i].n + 1);
        if (!l) return;
        for (uint32_t c = 0; c < names[i].n; c++)
            l[c] = (char)(names[i].p[c] >= 'A' && names[i].p[c] <= 'Z' ? names[i].p[c] + 32
                                                                       : names[i].p[c]);
        names[k] = (col_str_t){l, names[i].n};
        bool seen = false;
        for (size_t q = 0; q < k && !seen; q++) seen = cmp_str(&names[q], &names[k]) == 0;
        if (!seen) k++;
    }
    *n = k;
    qsort(names, k, sizeof(*names), cmp_str);
}

/* Replaces *want by the stored name among names[0..n) equal to it in any case; false when
 * none is. */
static bool pick_nocase(col_str_t *want, const col_str_t *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (eq_nocase(names[i], *want)) {
            *want = names[i];
            return true;
        }
    return false;
}

/* The stored names a Zipkin search asks for; false when one of them is not stored at all
 * (nothing can match). */
static bool zipkin_resolve(job_t *j, weft_arena_t *a, int *rc)
{
    col_store_t *st = j->c->store;
    col_str_t *names;
    size_t n;
    if (j->q.service.n) {
        if ((*rc = col_store_services(st, a, &names, &n)) != 0) return false;
        if (!pick_nocase(&j->q.service, names, n)) return false;
    }
    if (j->q.span_name.n) {
        col_operation_t *ops;
        if ((*rc = col_store_operations(st, j->q.service, a, &ops, &n)) != 0) return false;
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            if (eq_nocase(ops[i].name, j->q.span_name)) {
                j->q.span_name = ops[i].name;
                found = true;
            }
        if (!found) return false;
    }
    if (j->q.remote_service.n) {
        if ((*rc = col_store_remote_services(st, j->q.service, a, &names, &n)) != 0) return false;
        if (!pick_nocase(&j->q.remote_service, names, n)) return false;
    }
    return true;
}

/* The traces of ids into b: Zipkin's [[span...],...] or Jaeger's data array. */
static int put_traces(job_t *j, weft_arena_t *a, bool jaeger, uint8_t (*ids)[16], size_t n,
                      size_t *found)
{
    weft_buf_t *b = &j->out;
    weft_buf_putc(b, '[');
    *found = 0;
    for (size_t i = 0; i < n; i++) {
        col_span_t *spans;
        size_t ns;
        int rc = col_store_trace(j->c->store, ids[i], a, &spans, &ns);
        if (rc != 0) return rc;
        if (ns == 0) continue;
        if ((*found)++) weft_buf_putc(b, ',');
        if (jaeger)
            col_jaeger_json_trace(b, spans, ns);
        else
            col_zipkin_json_trace(b, spans, ns);
        weft_arena_reset(a);
    }
    weft_buf_putc(b, ']');
    return 0;
}

/* Runs on the thread pool. */
static void run_job(uv_work_t *w)
{
    job_t *j = w->data;
    weft_collector_t *c = j->c;
    weft_arena_t a;
    weft_arena_init(&a, 64 * 1024, ANSWER_LIMIT);
    weft_buf_t *b = &j->out;
    int rc = 0;
    j->status = 200;
    switch (j->kind) {
    case Q_Z_SERVICES:
    case Q_J_SERVICES: {
        col_str_t *names;
        size_t n;
        if ((rc = col_store_services(c->store, &a, &names, &n)) != 0) break;
        if (j->kind == Q_Z_SERVICES) lower_unique(names, &n, &a);
        if (j->kind == Q_J_SERVICES) jaeger_open(b);
        put_strs(b, names, n);
        if (j->kind == Q_J_SERVICES) jaeger_close(b, n);
        break;
    }
    case Q_Z_SPANS:
    case Q_J_OPERATIONS: {
        col_operation_t *ops;
        size_t n;
        if (j->kind == Q_Z_SPANS) {
            col_str_t *svcs;
            size_t ns;
            if ((rc = col_store_services(c->store, &a, &svcs, &ns)) != 0) break;
            if (!pick_nocase(&j->service, svcs, ns)) {
                weft_buf_puts(b, "[]");
                break;
            }
        }
        if ((rc = col_store_operations(c->store, j->service, &a, &ops, &n)) != 0) break;
        col_str_t *names = weft_arena_alloc(&a, (n ? n : 1) * sizeof(*names));
        if (!names) {
            rc = WEFT_ENOMEM;
            break;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (k == 0 || cmp_str(&names[k - 1], &ops[i].name) != 0) names[k++] = ops[i].name;
        if (j->kind == Q_Z_SPANS) lower_unique(names, &k, &a);
        if (j->kind == Q_J_OPERATIONS) jaeger_open(b);
        put_strs(b, names, k);
        if (j->kind == Q_J_OPERATIONS) jaeger_close(b, k);
        break;
    }
    case Q_J_OPERATIONS_ALL: {
        col_operation_t *ops;
        size_t n, k = 0;
        if ((rc = col_store_operations(c->store, j->service, &a, &ops, &n)) != 0) break;
        jaeger_open(b);
        weft_buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (j->span_kind >= 0 && ops[i].kind != j->span_kind) continue;
            if (k++) weft_buf_putc(b, ',');
            weft_buf_puts(b, "{\"name\":");
            weft_json_put_str(b, ops[i].name.p, ops[i].name.n);
            weft_buf_puts(b, ",\"spanKind\":\"");
            weft_buf_puts(b, ops[i].kind == COL_KIND_INTERNAL || ops[i].kind == 0
                                 ? ""
                                 : kind_name(ops[i].kind));
            weft_buf_puts(b, "\"}");
        }
        weft_buf_putc(b, ']');
        jaeger_close(b, k);
        break;
    }
    case Q_Z_REMOTE: {
        col_str_t *names, *svcs;
        size_t n, ns;
        if ((rc = col_store_services(c->store, &a, &svcs, &ns)) != 0) break;
        if (!pick_nocase(&j->service, svcs, ns)) {
            weft_buf_puts(b, "[]");
            break;
        }
        if ((rc = col_store_remote_services(c->store, j->service, &a, &names, &n)) != 0) break;
        lower_unique(names, &n, &a);
        put_strs(b, names, n);
        break;
    }
    case Q_Z_TRACES:
    case Q_J_TRACES: {
        static uint8_t none[1][16];
        size_t cap = j->q.limit ? j->q.limit : 20;
        uint8_t(*ids)[16] = weft_arena_alloc(&a, cap * 16);
        weft_arena_t ta;
        size_t n = 0, found;
        if (!ids) {
            rc = WEFT_ENOMEM;
            break;
        }
        if (j->kind == Q_Z_TRACES && !zipkin_resolve(j, &a, &rc)) {
            if (rc != 0) break;
            weft_buf_puts(b, "[]");
            break;
        }
        if ((rc = col_store_search(c->store, &j->q, ids, cap, &n)) != 0) break;
        weft_arena_init(&ta, 64 * 1024, ANSWER_LIMIT);
        if (j->kind == Q_J_TRACES) jaeger_open(b);
        rc = put_traces(j, &ta, j->kind == Q_J_TRACES, n ? ids : none, n, &found);
        if (j->kind == Q_J_TRACES) jaeger_close(b, found);
        weft_arena_free(&ta);
        break;
    }
    case Q_Z_TRACE:
    case Q_J_TRACE: {
        col_span_t *spans;
        size_t n;
        if ((rc = col_store_trace(c->store, j->ids[0], &a, &spans, &n)) != 0) break;
        if (n == 0) {
            j->status = 404;
            if (j->kind == Q_J_TRACE)
                weft_buf_puts(b, "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,"
                                 "\"errors\":[{\"code\":404,\"msg\":\"trace not found\"}]}");
            else
                weft_buf_puts(b, "{\"error\":\"trace not found\"}");
            break;
        }
        if (j->kind == Q_J_TRACE) {
            jaeger_open(b);
            weft_buf_putc(b, '[');
            col_jaeger_json_trace(b, spans, n);
            weft_buf_putc(b, ']');
            jaeger_close(b, 1);
        } else {
            col_zipkin_json_trace(b, spans, n);
        }
        break;
    }
    case Q_Z_AC_VALUES:
        rc = col_ac_values(c->ac, c->store, j->service, b);
        break;
    case Q_Z_TRACE_MANY: {
        size_t found;
        rc = put_traces(j, &a, false, j->ids, j->nids, &found);
        break;
    }
    case Q_Z_DEPS:
    case Q_J_DEPS: {
        col_dep_link_t *links;
        size_t n;
        rc = col_deps_links(c->deps, j->end_ms, j->lookback_ms, &a, &links, &n);
        if (rc != 0) break;
        if (j->kind == Q_J_DEPS) jaeger_open(b);
        weft_buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) weft_buf_putc(b, ',');
            weft_buf_puts(b, "{\"parent\":");
            weft_json_put_str(b, links[i].parent.p, links[i].parent.n);
            weft_buf_puts(b, ",\"child\":");
            weft_json_put_str(b, links[i].child.p, links[i].child.n);
            weft_buf_puts(b, ",\"callCount\":");
            weft_buf_put_u64(b, links[i].calls);
            /* Zipkin's field; Jaeger's model has none, but the dashboard's service map
             * labels edges with their error rate and reads this API (its own origin) */
            if (links[i].errors) {
                weft_buf_puts(b, ",\"errorCount\":");
                weft_buf_put_u64(b, links[i].errors);
            }
            weft_buf_putc(b, '}');
        }
        weft_buf_putc(b, ']');
        if (j->kind == Q_J_DEPS) jaeger_close(b, n);
        break;
    }
    }
    if (rc != 0 || b->failed) {
        bool big = rc == WEFT_ENOMEM || b->failed;
        weft_buf_reset(b);
        b->failed = false;
        j->status = 503;
        weft_buf_puts(b, big ? "{\"code\":8,\"message\":\"the answer is too large or out of "
                               "memory: narrow the query (limit, lookback)\"}"
                             : "{\"code\":13,\"message\":\"the trace store could not be read\"}");
    }
    weft_arena_free(&a);
}

static void job_abort(weft_http_request_t *req)
{
    job_t *j = req->data;
    j->req = NULL;
}

/* Back on the worker. */
static void job_done(uv_work_t *w, int status)
{
    job_t *j = w->data;
    weft_http_request_t *req = j->req;
    if (req) {
        req->on_abort = NULL;
        if (status != 0)
            weft__col_error(req, 503, 14, "the query was cancelled");
        else
            weft_http_respond(req, j->status, "application/json", j->out.p ? j->out.p : "",
                              j->out.len);
    }
    weft_buf_free(&j->out);
    free(j);
}

static job_t *job_new(weft_http_request_t *req, void *arg, qkind_t kind)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        weft__col_error(req, 503, 8, "out of memory");
        return NULL;
    }
    j->c = arg;
    j->req = req;
    j->kind = kind;
    j->span_kind = -1;
    j->work.data = j;
    weft_buf_init(&j->out, ANSWER_LIMIT);
    return j;
}

static void job_start(job_t *j)
{
    weft_http_request_t *req = j->req;
    if (uv_queue_work(req->loop, &j->work, run_job, job_done) != 0) {
        weft__col_error(req, 503, 14, "cannot queue the query");
        weft_buf_free(&j->out);
        free(j);
        return;
    }
    req->data = j;
    req->on_abort = job_abort;
}

static void bad_param(weft_http_request_t *req, job_t *j, const char *msg)
{
    weft__col_error(req, 400, 3, msg);
    weft_buf_free(&j->out);
    free(j);
}

/* ---- Zipkin ---- */

static void z_services(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_Z_SERVICES);
    if (j) job_start(j);
}

/* serviceName, required by /spans and /remoteServices. */
static void z_by_service(weft_http_request_t *req, void *arg, qkind_t kind)
{
    job_t *j = job_new(req, arg, kind);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    int r = param(j, &q, "serviceName", &j->service);
    if (r <= 0 || j->service.n == 0) {
        bad_param(req, j, r < 0 ? "serviceName: bad escape or too long" : "serviceName: required");
        return;
    }
    job_start(j);
}

static void z_spans(weft_http_request_t *req, void *arg)
{
    z_by_service(req, arg, Q_Z_SPANS);
}

static void z_remote(weft_http_request_t *req, void *arg)
{
    z_by_service(req, arg, Q_Z_REMOTE);
}

/* annotationQuery: "error and http.method=GET": terms joined by " and ". */
static const char *annotation_query(job_t *j, col_str_t aq)
{
    const char *p = aq.p, *end = aq.p + aq.n;
    while (p < end) {
        const char *and = NULL;
        for (const char *s = p; s + 5 <= end; s++)
            if (memcmp(s, " and ", 5) == 0) {
                and = s;
                break;
            }
        const char *te = and? and : end;
        while (p < te && *p == ' ') p++;
        const char *e = te;
        while (e > p && e[-1] == ' ') e--;
        if (e > p) {
            if (j->q.ntags == COL_QUERY_MAX_TAGS) return "annotationQuery: more than 16 terms";
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq) {
                j->q.tags[j->q.ntags].key = (col_str_t){p, (uint32_t)(eq - p)};
                j->q.tags[j->q.ntags].value = (col_str_t){eq + 1, (uint32_t)(e - eq - 1)};
            } else {
                j->q.tags[j->q.ntags].key = (col_str_t){p, (uint32_t)(e - p)};
                j->q.tags[j->q.ntags].any_value = true;
            }
            if (j->q.tags[j->q.ntags].key.n == 0) return "annotationQuery: a term has no key";
            j->q.ntags++;
        }
        p = and? and+5 : end;
    }
    return NULL;
}

static void z_traces(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_Z_TRACES);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    col_str_t aq = {0};
    uint64_t v = 0, end_ms = now_ms(), lookback = DEF_LOOKBACK_MS;
    const char *bad = NULL;
    if (param(j, &q, "serviceName", &j->q.service) < 0 ||
        param(j, &q, "spanName", &j->q.span_name) < 0 ||
        param(j, &q, "remoteServiceName", &j->q.remote_service) < 0 ||
        param(j, &q, "annotationQuery", &aq) < 0)
        bad = "a parameter has a bad escape or is too long";
    if (!bad && param_u64(&q, "minDuration", &v) != 0) {
        if (param_u64(&q, "minDuration", &v) < 0) bad = "minDuration: microseconds, an integer";
        j->q.min_duration_ns = v * 1000;
    }
    if (!bad && param_u64(&q, "maxDuration", &v) != 0) {
        if (param_u64(&q, "maxDuration", &v) < 0) bad = "maxDuration: microseconds, an integer";
        j->q.max_duration_ns = v * 1000;
    }
    if (!bad && param_u64(&q, "endTs", &v) != 0) {
        if (param_u64(&q, "endTs", &v) < 0) bad = "endTs: milliseconds since the epoch";
        end_ms = v;
    }
    if (!bad && param_u64(&q, "lookback", &v) != 0) {
        if (param_u64(&q, "lookback", &v) < 0) bad = "lookback: milliseconds";
        lookback = v;
    }
    j->q.limit = 10; /* Zipkin's default */
    if (!bad && param_u64(&q, "limit", &v) != 0) {
        if (param_u64(&q, "limit", &v) < 0 || v == 0 || v > MAX_TRACES) bad = "limit: 1 to 1000";
        j->q.limit = (size_t)v;
    }
    if (!bad && j->q.span_name.n == 3 && memcmp(j->q.span_name.p, "all", 3) == 0)
        j->q.span_name.n = 0; /* the Zipkin UI's "all" */
    if (!bad && aq.n) bad = annotation_query(j, aq);
    if (bad) {
        bad_param(req, j, bad);
        return;
    }
    j->q.end_ns = end_ms * 1000000;
    j->q.start_ns = end_ms > lookback ? (end_ms - lookback) * 1000000 : 0;
    job_start(j);
}

static void z_trace(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_Z_TRACE);
    if (!j) return;
    weft_str_t id = weft_http_request_param(req, "id");
    if (!hex_id(id.base, id.len, j->ids[0])) {
        bad_param(req, j, "traceId: 16 or 32 hex digits");
        return;
    }
    job_start(j);
}

static void z_trace_many(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_Z_TRACE_MANY);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    col_str_t ids;
    if (param(j, &q, "traceIds", &ids) <= 0 || ids.n == 0) {
        bad_param(req, j, "traceIds: required, a comma-separated list of trace ids");
        return;
    }
    const char *p = ids.p, *end = ids.p + ids.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (j->nids == MAX_IDS) {
            bad_param(req, j, "traceIds: at most 100");
            return;
        }
        if (!hex_id(p, (size_t)(e - p), j->ids[j->nids++])) {
            bad_param(req, j, "traceIds: each is 16 or 32 hex digits");
            return;
        }
        p = comma ? comma + 1 : end;
    }
    job_start(j);
}

/* endTs (ms, required by Zipkin) and lookback (ms, default endTs: everything before). */
static void deps(weft_http_request_t *req, void *arg, qkind_t kind)
{
    job_t *j = job_new(req, arg, kind);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    uint64_t v = 0;
    int r = param_u64(&q, "endTs", &v);
    if (r < 0 || (r == 0 && kind == Q_Z_DEPS)) {
        bad_param(req, j, "endTs: required, milliseconds since the epoch");
        return;
    }
    j->end_ms = r ? v : now_ms();
    j->lookback_ms = kind == Q_Z_DEPS ? j->end_ms : DEF_LOOKBACK_MS;
    r = param_u64(&q, "lookback", &v);
    if (r < 0) {
        bad_param(req, j, "lookback: milliseconds");
        return;
    }
    if (r) j->lookback_ms = v;
    job_start(j);
}

static void z_deps(weft_http_request_t *req, void *arg)
{
    deps(req, arg, Q_Z_DEPS);
}

/* The configured keys (collector.autocomplete_keys; autocomplete.c): in memory, answered
 * on the worker. */
static void z_autocomplete_keys(weft_http_request_t *req, void *arg)
{
    weft_collector_t *c = arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    col_ac_keys(c->ac, &b);
    if (b.failed)
        weft__col_error(req, 503, 8, "out of memory");
    else
        weft_http_respond(req, 200, "application/json", b.p, b.len);
    weft_buf_free(&b);
}

/* key, required: the values stored spans have for it ([] for a key not configured). */
static void z_autocomplete_values(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_Z_AC_VALUES);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    int r = param(j, &q, "key", &j->service);
    if (r <= 0 || j->service.n == 0) {
        bad_param(req, j, r < 0 ? "key: bad escape or too long" : "key: required, a tag key");
        return;
    }
    job_start(j);
}

/* ---- Jaeger ---- */

static void j_services(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_J_SERVICES);
    if (j) job_start(j);
}

static void j_service_operations(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_J_OPERATIONS);
    if (!j) return;
    weft_str_t s = weft_http_request_param(req, "service");
    const char *p = job_copy(j, s.base, s.len);
    if (!p || s.len == 0) {
        bad_param(req, j, "service: required, at most 2 KiB");
        return;
    }
    j->service = (col_str_t){p, (uint32_t)s.len};
    job_start(j);
}

static void j_operations(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_J_OPERATIONS_ALL);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    col_str_t kind = {0};
    if (param(j, &q, "service", &j->service) < 0 || param(j, &q, "spanKind", &kind) < 0) {
        bad_param(req, j, "service or spanKind: bad escape or too long");
        return;
    }
    if (kind.n) {
        static const char *const kinds[] = {"server", "client", "producer", "consumer", "internal"};
        static const int nums[] = {COL_KIND_SERVER, COL_KIND_CLIENT, COL_KIND_PRODUCER,
                                   COL_KIND_CONSUMER, COL_KIND_INTERNAL};
        for (size_t i = 0; i < 5; i++)
            if (col_str_eq(kind, kinds[i], strlen(kinds[i]))) j->span_kind = nums[i];
        if (j->span_kind < 0) {
            bad_param(req, j, "spanKind: server, client, producer, consumer or internal");
            return;
        }
    }
    job_start(j);
}

/* tags={"k":"v",...} (Jaeger's UI sends JSON; values as text). */
static const char *jaeger_tags(job_t *j, col_str_t t)
{
    weft_arena_t a;
    weft_arena_init(&a, 4096, sizeof(j->text));
    weft_jr_t r;
    weft_jr_init(&r, t.p, t.n, &a);
    weft_jr_str_t k, v;
    const char *bad = NULL;
    if (weft_jr_object(&r))
        while (!bad && weft_jr_key(&r, &k)) {
            if (weft_jr_peek(&r) != WEFT_JR_STRING) {
                bad = "tags: each value is a string";
                break;
            }
            weft_jr_string(&r, &v);
            if (j->q.ntags == COL_QUERY_MAX_TAGS) {
                bad = "tags: at most 16";
                break;
            }
            const char *kp = job_copy(j, k.p, k.n), *vp = kp ? job_copy(j, v.p, v.n) : NULL;
            if (!vp) {
                bad = "tags: too long";
                break;
            }
            j->q.tags[j->q.ntags].key = (col_str_t){kp, (uint32_t)k.n};
            j->q.tags[j->q.ntags].value = (col_str_t){vp, (uint32_t)v.n};
            j->q.ntags++;
        }
    weft_jr_end(&r);
    if (!bad && r.err) bad = "tags: a JSON object of strings, {\"key\":\"value\"}";
    weft_arena_free(&a);
    return bad;
}

static void j_traces(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_J_TRACES);
    if (!j) return;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    col_str_t s, tags = {0};
    const char *bad = NULL;
    uint64_t v = 0, end_us = now_ms() * 1000, start_us = 0, lookback_ns = 0;
    if (param(j, &q, "service", &j->q.service) < 0 ||
        param(j, &q, "operation", &j->q.span_name) < 0 || param(j, &q, "tags", &tags) < 0)
        bad = "a parameter has a bad escape or is too long";
    if (!bad && param(j, &q, "minDuration", &s) > 0 && s.n &&
        !go_duration_ns(s.p, s.n, &j->q.min_duration_ns))
        bad = "minDuration: a duration such as 100ms or 1.5s";
    if (!bad && param(j, &q, "maxDuration", &s) > 0 && s.n &&
        !go_duration_ns(s.p, s.n, &j->q.max_duration_ns))
        bad = "maxDuration: a duration such as 100ms or 1.5s";
    if (!bad && param(j, &q, "lookback", &s) > 0 && s.n &&
        !(s.n == 6 && memcmp(s.p, "custom", 6) == 0) && !go_duration_ns(s.p, s.n, &lookback_ns))
        bad = "lookback: a duration such as 1h";
    if (!bad && param_u64(&q, "end", &v) != 0) {
        if (param_u64(&q, "end", &v) < 0) bad = "end: microseconds since the epoch";
        end_us = v;
    }
    if (!bad && param_u64(&q, "start", &v) != 0) {
        if (param_u64(&q, "start", &v) < 0) bad = "start: microseconds since the epoch";
        start_us = v;
    } else if (!bad) {
        uint64_t lb_us = lookback_ns ? lookback_ns / 1000 : (uint64_t)DEF_LOOKBACK_MS * 1000;
        start_us = end_us > lb_us ? end_us - lb_us : 0;
    }
    j->q.limit = 20;
    if (!bad && param_u64(&q, "limit", &v) != 0) {
        if (param_u64(&q, "limit", &v) < 0 || v > MAX_TRACES) bad = "limit: 0 to 1000";
        if (v) j->q.limit = (size_t)v;
    }
    if (!bad && j->q.service.n == 0) bad = "service: required";
    if (!bad && tags.n) bad = jaeger_tags(j, tags);
    if (bad) {
        bad_param(req, j, bad);
        return;
    }
    j->q.start_ns = start_us * 1000;
    j->q.end_ns = end_us * 1000;
    job_start(j);
}

static void j_trace(weft_http_request_t *req, void *arg)
{
    job_t *j = job_new(req, arg, Q_J_TRACE);
    if (!j) return;
    weft_str_t id = weft_http_request_param(req, "id");
    /* Jaeger writes ids without leading zeros: pad them */
    char pad[32];
    if (id.len == 0 || id.len > 32) {
        bad_param(req, j, "traceID: 1 to 32 hex digits");
        return;
    }
    memset(pad, '0', sizeof(pad));
    memcpy(pad + 32 - id.len, id.base, id.len);
    if (!hex_id(pad, 32, j->ids[0])) {
        bad_param(req, j, "traceID: 1 to 32 hex digits");
        return;
    }
    job_start(j);
}

static void j_deps(weft_http_request_t *req, void *arg)
{
    deps(req, arg, Q_J_DEPS);
}

int weft__col_query_routes(weft_collector_t *c, weft_service_t *api)
{
    static const struct {
        const char *pattern;
        weft_http_handler_fn fn;
    } z[] = {{"/api/v2/services", z_services},
             {"/api/v2/spans", z_spans},
             {"/api/v2/remoteServices", z_remote},
             {"/api/v2/traces", z_traces},
             {"/api/v2/trace/:id", z_trace},
             {"/api/v2/traceMany", z_trace_many},
             {"/api/v2/dependencies", z_deps},
             {"/api/v2/autocompleteKeys", z_autocomplete_keys},
             {"/api/v2/autocompleteValues", z_autocomplete_values}},
      jg[] = {{"/api/services", j_services},
              {"/api/services/:service/operations", j_service_operations},
              {"/api/operations", j_operations},
              {"/api/traces", j_traces},
              {"/api/traces/:id", j_trace},
              {"/api/dependencies", j_deps}};
    for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
        weft_http_route_t r = {.handler = z[i].fn, .arg = c};
        int rc = weft_http_server_route(c->zipkin, "GET", z[i].pattern, &r);
        if (rc != 0) return rc;
    }
    for (size_t i = 0; api && i < sizeof(jg) / sizeof(jg[0]); i++) {
        weft_http_route_t r = {.handler = jg[i].fn, .arg = c};
        int rc = weft_service_route_ex(api, "GET", jg[i].pattern, &r);
        if (rc != 0) return rc;
    }
    return 0;
}
