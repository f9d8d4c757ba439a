/*
 * test_store.c - the trace store (collector/store*.c) through its interface
 * (collector/store.h), on real files in a temporary directory: every field of a span read
 * back exactly (after the write and after a reopen), each search condition, the name lists,
 * the write queue's bound, close answering what is queued, a torn or corrupt tail dropped
 * with what came before kept, durability across SIGKILL, retention by size and by age, and
 * queries running while appends are written.
 *
 * Waits are on done callbacks (a condition variable, with a deadline that fails the test),
 * never on sleeps.
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "collector/store.h"
#include "collector/store_int.h"
#include "core/crc32c.h"
#include "weft/common.h"

/* ---- fixture ---- */

typedef struct fix_s {
    char dir[64];
    col_store_conf_t conf;
    col_store_t *s;
    weft_arena_t arena;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/weft-cstore-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    col_store_conf_init(&f->conf);
    f->conf.dir = f->dir;
    f->conf.sync = false;
    weft_arena_init(&f->arena, 65536, 256u << 20);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    fix_t *f = *state;
    col_store_close(f->s);
    weft_arena_free(&f->arena);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void open_store(fix_t *f)
{
    char err[256] = "";
    int rc = col_store_open(&f->conf, &f->s, err, sizeof err);
    if (rc != 0) fail_msg("open: %d %s", rc, err);
}

static void reopen(fix_t *f)
{
    col_store_close(f->s);
    f->s = NULL;
    open_store(f);
}

/* ---- waiting for done callbacks ---- */

typedef struct waiter_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, failures, last;
    int block; /* done blocks while this is set (the writer thread stays inside it) */
    int inside;
} waiter_t;

static waiter_t W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};

static void waiter_reset(void)
{
    pthread_mutex_lock(&W.mu);
    W.calls = W.failures = W.last = W.block = W.inside = 0;
    pthread_mutex_unlock(&W.mu);
}

static void on_done(int status, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&W.mu);
    W.calls++;
    W.last = status;
    if (status != 0) W.failures++;
    W.inside++;
    pthread_cond_broadcast(&W.cv);
    while (W.block) pthread_cond_wait(&W.cv, &W.mu);
    W.inside--;
    pthread_mutex_unlock(&W.mu);
}

static bool wait_until(int *what, int want)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&W.mu);
    int rc = 0;
    while (*what < want && rc == 0) rc = pthread_cond_timedwait(&W.cv, &W.mu, &ts);
    bool ok = *what >= want;
    pthread_mutex_unlock(&W.mu);
    return ok;
}

static void wait_done(int calls)
{
    if (!wait_until(&W.calls, calls)) fail_msg("only %d done calls of %d", W.calls, calls);
    assert_int_equal(W.failures, 0);
}

/* ---- spans ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define S(lit) COL_STR(lit)

static const char bytes_val[] = {0, 1, (char)0xff, 'x'};

static col_attr_t all_types[] = {
    {.key = S("s"), .type = COL_V_STRING, .v.s = S("text")},
    {.key = S("b"), .type = COL_V_BOOL, .v.b = true},
    {.key = S("i"), .type = COL_V_INT, .v.i = -4200000000000ll},
    {.key = S("d"), .type = COL_V_DOUBLE, .v.d = 3.25},
    {.key = S("bytes"), .type = COL_V_BYTES, .v.s = {bytes_val, sizeof bytes_val}},
    {.key = S("arr"), .type = COL_V_ARRAY, .v.s = S("[{\"stringValue\":\"a\"}]")},
    {.key = S("kv"),
     .type = COL_V_KVLIST,
     .v.s = S("[{\"key\":\"k\",\"value\":{\"intValue\":\"1\"}}]")},
    {.key = S("e"), .type = COL_V_EMPTY},
    {.key = S("f"), .type = COL_V_BOOL, .v.b = false},
};

static col_attr_t res_attrs[] = {
    {.key = S("service.name"), .type = COL_V_STRING, .v.s = S("checkout")},
    {.key = S("host.name"), .type = COL_V_STRING, .v.s = S("node-7")},
    {.key = S("pid"), .type = COL_V_INT, .v.i = 4242},
};
static const col_resource_t res_checkout = {
    .service = S("checkout"), .attrs = res_attrs, .nattrs = 3, .dropped_attrs = 2};
static col_attr_t res2_attrs[] = {
    {.key = S("service.name"), .type = COL_V_STRING, .v.s = S("payments")},
};
static const col_resource_t res_payments = {
    .service = S("payments"), .attrs = res2_attrs, .nattrs = 1};
static col_attr_t scope_attrs[] = {{.key = S("lib"), .type = COL_V_STRING, .v.s = S("weft")}};
static const col_scope_t scope_a = {.name = S("weft.http"),
                                    .version = S("1.2.3"),
                                    .attrs = scope_attrs,
                                    .nattrs = 1,
                                    .dropped_attrs = 1};
static const col_scope_t scope_b = {.name = S("weft.db")};

static col_attr_t ev_attrs[] = {{.key = S("retry"), .type = COL_V_INT, .v.i = 2}};
static col_event_t rich_events[] = {
    {.time_ns = 0, .name = S("cache-miss"), .attrs = ev_attrs, .nattrs = 1, .dropped_attrs = 3},
    {.time_ns = 0, .name = S("before-start")}, /* times set in rich_span */
};
static col_attr_t link_attrs[] = {{.key = S("why"), .type = COL_V_STRING, .v.s = S("batch")}};
static col_link_t rich_links[] = {
    {.trace_id = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9},
     .span_id = {8, 8, 8, 8, 8, 8, 8, 8},
     .trace_state = S("k=v"),
     .flags = 0x301,
     .attrs = link_attrs,
     .nattrs = 1,
     .dropped_attrs = 5},
};

static void set_id(uint8_t *p, size_t n, uint64_t v)
{
    memset(p, 0, n);
    for (size_t i = 0; i < 8 && i < n; i++) p[n - 1 - i] = (uint8_t)(v >> (8 * i));
    p[0] = 0xa5; /* never all zero */
}

/* A span using every field. */
static col_span_t rich_span(uint64_t trace, uint64_t span, uint64_t start)
{
    col_span_t s = {0};
    set_id(s.trace_id, 16, trace);
    set_id(s.span_id, 8, span);
    set_id(s.parent_id, 8, span + 1000);
    s.start_ns = start;
    s.end_ns = start + 1234567;
    s.name = S("POST /cart/{id}");
    s.trace_state = S("rojo=00f067aa0ba902b7");
    s.status_message = S("upstream said no");
    s.kind = COL_KIND_CLIENT;
    s.status = COL_STATUS_ERROR;
    s.shared = true;
    s.debug = true;
    s.flags = 0x101;
    s.resource = &res_checkout;
    s.scope = &scope_a;
    s.attrs = all_types;
    s.nattrs = sizeof all_types / sizeof all_types[0];
    s.dropped_attrs = 7;
    rich_events[0].time_ns = start + 500;
    rich_events[1].time_ns = start - 10; /* before the span: a negative delta */
    s.events = rich_events;
    s.nevents = 2;
    s.dropped_events = 1;
    s.links = rich_links;
    s.nlinks = 1;
    s.dropped_links = 4;
    memcpy(s.local.ipv4, "\x0a\x00\x00\x07", 4);
    s.local.has_ipv4 = true;
    s.local.port = 8080;
    s.remote.service = S("payments");
    memcpy(s.remote.ipv6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    s.remote.has_ipv6 = true;
    s.remote.port = 443;
    return s;
}

/* A plain span. */
static col_span_t plain_span(uint64_t trace, uint64_t span, uint64_t start, uint64_t dur,
                             const col_resource_t *res, col_str_t name)
{
    col_span_t s = {0};
    set_id(s.trace_id, 16, trace);
    set_id(s.span_id, 8, span);
    s.start_ns = start;
    s.end_ns = start + dur;
    s.name = name;
    s.kind = COL_KIND_SERVER;
    s.resource = res;
    s.scope = &scope_b;
    return s;
}

static void str_equal(col_str_t a, col_str_t b)
{
    assert_int_equal(a.n, b.n);
    if (a.n) assert_memory_equal(a.p, b.p, a.n);
}

static void attrs_equal(const col_attr_t *a, uint32_t na, const col_attr_t *b, uint32_t nb)
{
    assert_int_equal(na, nb);
    for (uint32_t i = 0; i < na; i++) {
        str_equal(a[i].key, b[i].key);
        assert_int_equal(a[i].type, b[i].type);
        switch (a[i].type) {
        case COL_V_BOOL:
            assert_int_equal(a[i].v.b, b[i].v.b);
            break;
        case COL_V_INT:
            assert_int_equal(a[i].v.i, b[i].v.i);
            break;
        case COL_V_DOUBLE:
            assert_memory_equal(&a[i].v.d, &b[i].v.d, sizeof(double));
            break;
        case COL_V_EMPTY:
            break;
        default:
            str_equal(a[i].v.s, b[i].v.s);
        }
    }
}

static void endpoint_equal(const col_endpoint_t *a, const col_endpoint_t *b)
{
    str_equal(a->service, b->service);
    assert_int_equal(a->has_ipv4, b->has_ipv4);
    assert_int_equal(a->has_ipv6, b->has_ipv6);
    if (a->has_ipv4) assert_memory_equal(a->ipv4, b->ipv4, 4);
    if (a->has_ipv6) assert_memory_equal(a->ipv6, b->ipv6, 16);
    assert_int_equal(a->port, b->port);
}

static void span_equal(const col_span_t *a, const col_span_t *b)
{
    assert_memory_equal(a->trace_id, b->trace_id, 16);
    assert_memory_equal(a->span_id, b->span_id, 8);
    assert_memory_equal(a->parent_id, b->parent_id, 8);
    assert_int_equal(a->start_ns, b->start_ns);
    assert_int_equal(a->end_ns, b->end_ns);
    str_equal(a->name, b->name);
    str_equal(a->trace_state, b->trace_state);
    str_equal(a->status_message, b->status_message);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->shared, b->shared);
    assert_int_equal(a->debug, b->debug);
    assert_int_equal(a->flags, b->flags);
    str_equal(a->resource->service, b->resource->service);
    attrs_equal(a->resource->attrs, a->resource->nattrs, b->resource->attrs, b->resource->nattrs);
    assert_int_equal(a->resource->dropped_attrs, b->resource->dropped_attrs);
    str_equal(a->scope->name, b->scope->name);
    str_equal(a->scope->version, b->scope->version);
    attrs_equal(a->scope->attrs, a->scope->nattrs, b->scope->attrs, b->scope->nattrs);
    assert_int_equal(a->scope->dropped_attrs, b->scope->dropped_attrs);
    attrs_equal(a->attrs, a->nattrs, b->attrs, b->nattrs);
    assert_int_equal(a->dropped_attrs, b->dropped_attrs);
    assert_int_equal(a->nevents, b->nevents);
    assert_int_equal(a->dropped_events, b->dropped_events);
    for (uint32_t i = 0; i < a->nevents; i++) {
        assert_int_equal(a->events[i].time_ns, b->events[i].time_ns);
        str_equal(a->events[i].name, b->events[i].name);
        attrs_equal(a->events[i].attrs, a->events[i].nattrs, b->events[i].attrs,
                    b->events[i].nattrs);
        assert_int_equal(a->events[i].dropped_attrs, b->events[i].dropped_attrs);
    }
    assert_int_equal(a->nlinks, b->nlinks);
    assert_int_equal(a->dropped_links, b->dropped_links);
    for (uint32_t i = 0; i < a->nlinks; i++) {
        assert_memory_equal(a->links[i].trace_id, b->links[i].trace_id, 16);
        assert_memory_equal(a->links[i].span_id, b->links[i].span_id, 8);
        str_equal(a->links[i].trace_state, b->links[i].trace_state);
        assert_int_equal(a->links[i].flags, b->links[i].flags);
        attrs_equal(a->links[i].attrs, a->links[i].nattrs, b->links[i].attrs, b->links[i].nattrs);
        assert_int_equal(a->links[i].dropped_attrs, b->links[i].dropped_attrs);
    }
    endpoint_equal(&a->local, &b->local);
    endpoint_equal(&a->remote, &b->remote);
}

static int cmp_span_id(const void *a, const void *b)
{
    return memcmp(((const col_span_t *)a)->span_id, ((const col_span_t *)b)->span_id, 8);
}

/* The spans of trace (sorted by span id). */
static size_t get_trace(fix_t *f, uint64_t trace, col_span_t **out)
{
    uint8_t id[16];
    set_id(id, 16, trace);
    size_t n = 99;
    assert_int_equal(col_store_trace(f->s, id, &f->arena, out, &n), 0);
    if (n) qsort(*out, n, sizeof **out, cmp_span_id);
    return n;
}

static void append_ok(fix_t *f, const col_span_t *spans, size_t n)
{
    assert_int_equal(col_store_append(f->s, spans, n, on_done, NULL), 0);
}

/* ---- tests ---- */

static void check_rich(fix_t *f, const col_span_t *want, size_t n)
{
    col_span_t *got;
    assert_int_equal(get_trace(f, 1, &got), n);
    for (size_t i = 0; i < n; i++) span_equal(&got[i], &want[i]);
}

static void test_roundtrip(void **state)
{
    fix_t *f = *state;
    f->conf.sync = true;
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns() - 60000000000ull;
    col_span_t sp[4];
    sp[0] = rich_span(1, 1, t);
    sp[1] = rich_span(1, 2, t + 5);
    sp[1].resource = &res_payments; /* a second resource and scope in one append */
    sp[1].scope = &scope_b;
    sp[1].nevents = 0;
    sp[1].nlinks = 0;
    sp[1].local.has_ipv4 = false;
    sp[1].local.has_ipv6 = true;
    sp[1].remote = (col_endpoint_t){0};
    sp[1].shared = sp[1].debug = false;
    sp[2] = rich_span(1, 3, t + 9);
    sp[2].end_ns = sp[2].start_ns; /* zero duration */
    sp[2].name = S("");
    sp[3] = plain_span(2, 1, t, 10, &res_checkout, S("other trace"));
    append_ok(f, sp, 4);
    wait_done(1);
    assert_int_equal(W.last, 0);
    check_rich(f, sp, 3);
    col_span_t *got;
    assert_int_equal(get_trace(f, 2, &got), 1);
    span_equal(&got[0], &sp[3]);
    assert_int_equal(get_trace(f, 3, &got), 0);
    /* an arena too small for the answer: ENOMEM, and nothing half-made is returned */
    weft_arena_t tiny;
    weft_arena_init(&tiny, 1024, 2048);
    uint8_t id[16];
    set_id(id, 16, 1);
    size_t n = 5;
    assert_int_equal(col_store_trace(f->s, id, &tiny, &got, &n), WEFT_ENOMEM);
    assert_int_equal(n, 0);
    assert_null(got);
    weft_arena_free(&tiny);

    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_int_equal(st.spans, 4);
    assert_int_equal(st.appended, 4);
    assert_true(st.disk_bytes > 0);
    assert_true(st.memory_bytes > 0);
    assert_int_equal(st.traces, 2);

    reopen(f);
    check_rich(f, sp, 3);
    col_store_stats(f->s, &st);
    assert_int_equal(st.spans, 4);
}

/* Four traces for the search and list tests; base is 10 minutes ago. */
static uint64_t base_ns;

static col_attr_t t1_attrs[] = {
    {.key = S("http.method"), .type = COL_V_STRING, .v.s = S("GET")},
    {.key = S("http.status_code"), .type = COL_V_INT, .v.i = 200},
    {.key = S("ratio"), .type = COL_V_DOUBLE, .v.d = 0.5},
};
static col_attr_t t2_attrs[] = {
    {.key = S("db.system"), .type = COL_V_STRING, .v.s = S("postgresql")},
    {.key = S("error"), .type = COL_V_BOOL, .v.b = true},
};
static col_attr_t t3_attrs[] = {
    {.key = S("http.method"), .type = COL_V_STRING, .v.s = S("GET")},
    {.key = S("http.status_code"), .type = COL_V_INT, .v.i = 500},
};
static col_attr_t fe_attrs[] = {{.key = S("host.name"), .type = COL_V_STRING, .v.s = S("fe-1")}};
static col_attr_t fe2_attrs[] = {{.key = S("host.name"), .type = COL_V_STRING, .v.s = S("fe-2")}};
static const col_resource_t res_fe = {.service = S("frontend"), .attrs = fe_attrs, .nattrs = 1};
static const col_resource_t res_fe2 = {.service = S("frontend"), .attrs = fe2_attrs, .nattrs = 1};
static const col_resource_t res_be = {.service = S("backend")};
static col_event_t t1_events[] = {{.name = S("cache-miss")}};

#define MS  1000000ull
#define SEC 1000000000ull

static void load_four(fix_t *f)
{
    base_ns = now_ns() - 600 * SEC;
    col_span_t sp[7];
    /* T1: frontend "GET /a" 10 ms at base+1s, with a child at base+1.001s */
    sp[0] = plain_span(1, 1, base_ns + SEC, 10 * MS, &res_fe, S("GET /a"));
    sp[0].attrs = t1_attrs;
    sp[0].nattrs = 3;
    sp[0].events = t1_events;
    sp[0].nevents = 1;
    sp[1] = plain_span(1, 2, base_ns + SEC + MS, 2 * MS, &res_fe, S("GET /a"));
    /* T2: backend "query" (client of db) 50 ms at base+2s */
    sp[2] = plain_span(2, 1, base_ns + 2 * SEC, 50 * MS, &res_be, S("query"));
    sp[2].kind = COL_KIND_CLIENT;
    sp[2].remote.service = S("db");
    sp[2].attrs = t2_attrs;
    sp[2].nattrs = 2;
    /* T3: frontend "GET /b" 100 ms at base+3s, calling backend */
    sp[3] = plain_span(3, 1, base_ns + 3 * SEC, 100 * MS, &res_fe2, S("GET /b"));
    sp[3].remote.service = S("backend");
    sp[3].attrs = t3_attrs;
    sp[3].nattrs = 2;
    sp[4] = plain_span(3, 2, base_ns + 3 * SEC + 5 * MS, 40 * MS, &res_be, S("query"));
    /* T4: frontend "GET /a" 1 ms, an hour before base */
    sp[5] = plain_span(4, 1, base_ns - 3600 * SEC, 1 * MS, &res_fe, S("GET /a"));
    /* T5: in the future (clock skew): only a query whose window reaches it finds it */
    sp[6] = plain_span(5, 1, now_ns() + 3600 * SEC, 1 * MS, &res_fe, S("GET /a"));
    waiter_reset();
    append_ok(f, sp, 3);
    append_ok(f, sp + 3, 4);
    wait_done(2);
}

/* Searches and checks the trace numbers found, in order. */
static void expect(fix_t *f, const col_query_t *q, size_t max, int n, ...)
{
    uint8_t ids[32][16];
    size_t got = 99;
    assert_int_equal(col_store_search(f->s, q, ids, max, &got), 0);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        uint8_t want[16];
        int t = va_arg(ap, int);
        set_id(want, 16, (uint64_t)t);
        if (i >= (int)got || memcmp(ids[i], want, 16) != 0)
            fail_msg("result %d of %zu is not trace %d", i, got, t);
    }
    va_end(ap);
    assert_int_equal(got, (size_t)n);
}

static void test_search(void **state)
{
    fix_t *f = *state;
    open_store(f);
    load_four(f);
    for (int round = 0; round < 2; round++) {
        col_query_t q = {0};
        expect(f, &q, 32, 4, 3, 2, 1, 4); /* T5 starts after now */
        q.service = S("frontend");
        expect(f, &q, 32, 3, 3, 1, 4);
        q.limit = 2;
        expect(f, &q, 32, 2, 3, 1);
        q.limit = 0;
        expect(f, &q, 1, 1, 3); /* max below limit */
        q.service = S("backend");
        expect(f, &q, 32, 2, 3, 2);
        q.service = S("nobody");
        expect(f, &q, 32, 0);

        q = (col_query_t){.span_name = S("GET /a")};
        expect(f, &q, 32, 2, 1, 4);
        q.service = S("frontend");
        expect(f, &q, 32, 2, 1, 4);
        q.service = S("backend");
        expect(f, &q, 32, 0);
        q = (col_query_t){.span_name = S("query"), .service = S("backend")};
        expect(f, &q, 32, 2, 3, 2);

        q = (col_query_t){.remote_service = S("db")};
        expect(f, &q, 32, 1, 2);
        q.service = S("frontend");
        expect(f, &q, 32, 0);
        q = (col_query_t){.remote_service = S("backend"), .service = S("frontend")};
        expect(f, &q, 32, 1, 3);

        q = (col_query_t){.min_duration_ns = 40 * MS};
        expect(f, &q, 32, 2, 3, 2);
        q = (col_query_t){.min_duration_ns = 41 * MS, .service = S("backend")};
        expect(f, &q, 32, 1, 2);
        q = (col_query_t){.max_duration_ns = 20 * MS};
        expect(f, &q, 32, 2, 1, 4);
        q = (col_query_t){.min_duration_ns = 20 * MS, .max_duration_ns = 60 * MS};
        expect(f, &q, 32, 2, 3, 2); /* T3's backend span is 40 ms */
        q.service = S("frontend");
        expect(f, &q, 32, 0);

        q = (col_query_t){.start_ns = base_ns + 1500 * MS, .end_ns = base_ns + 2500 * MS};
        expect(f, &q, 32, 1, 2);
        q = (col_query_t){.start_ns = base_ns};
        expect(f, &q, 32, 3, 3, 2, 1);
        q = (col_query_t){.end_ns = base_ns};
        expect(f, &q, 32, 1, 4);
        q = (col_query_t){.start_ns = base_ns + 2 * SEC, .end_ns = base_ns + 2 * SEC};
        expect(f, &q, 32, 1, 2); /* both bounds inclusive */
        q = (col_query_t){.end_ns = now_ns() + 7200 * SEC};
        expect(f, &q, 32, 5, 5, 3, 2, 1, 4);

        q = (col_query_t){.ntags = 1};
        q.tags[0].key = S("http.status_code");
        q.tags[0].value = S("500");
        expect(f, &q, 32, 1, 3);
        q.tags[0].value = S("200");
        expect(f, &q, 32, 1, 1);
        q.tags[0].key = S("http.method");
        q.tags[0].value = S("GET");
        expect(f, &q, 32, 2, 3, 1);
        q.tags[0].key = S("host.name"); /* a resource attribute */
        q.tags[0].value = S("fe-1");
        expect(f, &q, 32, 2, 1, 4);
        q.tags[0].key = S("error");
        q.tags[0].value = S("true");
        expect(f, &q, 32, 1, 2);
        q.tags[0].value = S("false");
        expect(f, &q, 32, 0);
        q.tags[0].key = S("ratio");
        q.tags[0].value = S("0.5");
        expect(f, &q, 32, 1, 1);
        q.tags[0].key = S("cache-miss"); /* an event's name, any value */
        q.tags[0].value = S("");
        q.tags[0].any_value = true;
        expect(f, &q, 32, 1, 1);
        q.tags[0].key = S("db.system"); /* an attribute, any value */
        expect(f, &q, 32, 1, 2);
        q.tags[0].any_value = false;
        q.tags[0].value = S("mysql");
        expect(f, &q, 32, 0);
        q.ntags = 2;
        q.tags[0].key = S("http.method");
        q.tags[0].value = S("GET");
        q.tags[1].key = S("http.status_code");
        q.tags[1].value = S("200");
        expect(f, &q, 32, 1, 1);
        q.tags[1].value = S("404");
        expect(f, &q, 32, 0);
        q.service = S("frontend");
        q.tags[1].value = S("500");
        expect(f, &q, 32, 1, 3);
        reopen(f); /* the same answers from what open rebuilt */
    }
}

static void names_are(col_str_t *v, size_t n, int count, ...)
{
    assert_int_equal(n, (size_t)count);
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        const char *z = va_arg(ap, const char *);
        if (!col_str_eq(v[i], z, strlen(z)))
            fail_msg("name %d is %.*s, not %s", i, (int)v[i].n, v[i].p, z);
    }
    va_end(ap);
}

static void test_names(void **state)
{
    fix_t *f = *state;
    open_store(f);
    load_four(f);
    for (int round = 0; round < 2; round++) {
        col_str_t *names;
        size_t n;
        assert_int_equal(col_store_services(f->s, &f->arena, &names, &n), 0);
        names_are(names, n, 2, "backend", "frontend");
        col_operation_t *ops;
        assert_int_equal(col_store_operations(f->s, S("frontend"), &f->arena, &ops, &n), 0);
        assert_int_equal(n, 2);
        assert_true(col_str_eq(ops[0].name, "GET /a", 6) && ops[0].kind == COL_KIND_SERVER);
        assert_true(col_str_eq(ops[1].name, "GET /b", 6) && ops[1].kind == COL_KIND_SERVER);
        assert_int_equal(col_store_operations(f->s, S("backend"), &f->arena, &ops, &n), 0);
        assert_int_equal(n, 2); /* "query" as CLIENT and as SERVER */
        assert_true(col_str_eq(ops[0].name, "query", 5) && ops[0].kind == COL_KIND_SERVER);
        assert_true(col_str_eq(ops[1].name, "query", 5) && ops[1].kind == COL_KIND_CLIENT);
        assert_int_equal(col_store_operations(f->s, S(""), &f->arena, &ops, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(col_store_operations(f->s, S("nobody"), &f->arena, &ops, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(col_store_remote_services(f->s, S("frontend"), &f->arena, &names, &n), 0);
        names_are(names, n, 1, "backend");
        assert_int_equal(col_store_remote_services(f->s, S("backend"), &f->arena, &names, &n), 0);
        names_are(names, n, 1, "db");
        assert_int_equal(col_store_remote_services(f->s, S(""), &f->arena, &names, &n), 0);
        names_are(names, n, 2, "backend", "db");
        assert_int_equal(col_store_remote_services(f->s, S("nobody"), &f->arena, &names, &n), 0);
        assert_int_equal(n, 0);
        reopen(f);
    }
}

static void test_queue_full(void **state)
{
    fix_t *f = *state;
    f->conf.queue_bytes = 64 * 1024;
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns();
    col_span_t big[1000];
    for (int i = 0; i < 1000; i++) big[i] = rich_span(7, (uint64_t)i + 1, t);
    /* larger than the whole queue: refused even when it is empty */
    assert_int_equal(col_store_append(f->s, big, 1000, on_done, NULL), WEFT_ELIMIT);

    /* hold the writer inside the first done callback: what is queued after stays queued */
    pthread_mutex_lock(&W.mu);
    W.block = 1;
    pthread_mutex_unlock(&W.mu);
    append_ok(f, big, 1);
    assert_true(wait_until(&W.inside, 1));
    int accepted = 1, rc;
    while ((rc = col_store_append(f->s, big, 10, on_done, NULL)) == 0) accepted++;
    assert_int_equal(rc, WEFT_ELIMIT);
    assert_true(accepted > 2); /* 10 rich spans are a few KiB: several fit in 64 KiB */
    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_true(st.queued_bytes <= 64 * 1024);
    assert_int_equal(st.refused_full, 2);
    pthread_mutex_lock(&W.mu);
    W.block = 0;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    wait_done(accepted);
    /* once written, the queue takes appends again */
    append_ok(f, big, 10);
    wait_done(accepted + 1);
    col_span_t *got;
    assert_int_equal(get_trace(f, 7, &got), (size_t)(accepted - 1) * 10 + 1 + 10);
}

static void test_close_answers_queued(void **state)
{
    fix_t *f = *state;
    f->conf.sync = true;
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns();
    col_span_t sp[20];
    for (int i = 0; i < 50; i++) {
        for (int j = 0; j < 20; j++)
            sp[j] = plain_span(100 + i, (uint64_t)j + 1, t, MS, &res_fe, S("x"));
        append_ok(f, sp, 20);
    }
    assert_int_equal(col_store_append(f->s, sp, 1, NULL, NULL), 0); /* done may be NULL */
    col_store_close(f->s);
    f->s = NULL;
    assert_int_equal(W.calls, 50);
    assert_int_equal(W.failures, 0);
    open_store(f);
    col_span_t *got;
    for (int i = 0; i < 50; i++)
        assert_int_equal(get_trace(f, 100 + (uint64_t)i, &got), i == 49 ? 21 : 20);
}

/* A done callback that appends again: during close that is refused (WEFT_ECLOSED), and
 * its own done is never called. */
static col_store_t *closing_store;
static int reappend_rc = 1;

static void on_done_reappend(int status, void *arg)
{
    (void)arg;
    col_span_t sp = plain_span(77, 1, now_ns(), MS, &res_fe, S("again"));
    reappend_rc = col_store_append(closing_store, &sp, 1, on_done, NULL);
    on_done(status, NULL);
}

static void *close_main(void *arg)
{
    col_store_close(arg);
    return NULL;
}

static void test_append_during_close(void **state)
{
    fix_t *f = *state;
    open_store(f);
    waiter_reset();
    /* no spans at all: answered like any other append */
    assert_int_equal(col_store_append(f->s, NULL, 0, on_done, NULL), 0);
    wait_done(1);
    /* the writer held inside A's done; B queued behind it; then close begins */
    pthread_mutex_lock(&W.mu);
    W.block = 1;
    pthread_mutex_unlock(&W.mu);
    col_span_t a = plain_span(75, 1, now_ns(), MS, &res_fe, S("a"));
    col_span_t b = plain_span(76, 1, now_ns(), MS, &res_fe, S("b"));
    append_ok(f, &a, 1);
    assert_true(wait_until(&W.inside, 1));
    closing_store = f->s;
    assert_int_equal(col_store_append(f->s, &b, 1, on_done_reappend, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, close_main, f->s), 0);
    /* closing has begun once appends are refused (a state, polled: close blocks) */
    col_span_t c = plain_span(78, 1, now_ns(), MS, &res_fe, S("c"));
    int rc;
    while ((rc = col_store_append(f->s, &c, 1, NULL, NULL)) == 0 || rc == WEFT_ELIMIT)
        sched_yield();
    assert_int_equal(rc, WEFT_ECLOSED);
    pthread_mutex_lock(&W.mu);
    W.block = 0;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(th, NULL);
    f->s = NULL;
    assert_int_equal(reappend_rc, WEFT_ECLOSED); /* from B's done, during close */
    assert_int_equal(W.calls, 3);
    assert_int_equal(W.failures, 0);
    open_store(f);
    col_span_t *got;
    assert_int_equal(get_trace(f, 75, &got), 1);
    assert_int_equal(get_trace(f, 76, &got), 1); /* queued before close: written */
    assert_int_equal(get_trace(f, 77, &got), 0);
}

/* The segment files, newest last. */
static int seg_files(fix_t *f, char paths[][256], int max)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s/seg-*.wts 2>/dev/null | sort", f->dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    while (n < max && fgets(paths[n], 256, p)) {
        paths[n][strcspn(paths[n], "\n")] = 0;
        n++;
    }
    pclose(p);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Two appends written apart (two blocks in one segment); then the file is damaged by
 * `damage`; a reopen keeps the first and drops the second, and takes new appends. */
static void torn(fix_t *f, void (*damage)(const char *path, off_t first_end, off_t size))
{
    f->conf.sync = true;
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns();
    col_span_t a[30], b[30];
    for (int j = 0; j < 30; j++) {
        a[j] = rich_span(1, (uint64_t)j + 1, t);
        b[j] = rich_span(2, (uint64_t)j + 1, t);
    }
    append_ok(f, a, 30);
    wait_done(1);
    char paths[8][256];
    assert_int_equal(seg_files(f, paths, 8), 1);
    off_t first_end = file_size(paths[0]);
    append_ok(f, b, 30);
    wait_done(2);
    off_t size = file_size(paths[0]);
    assert_true(size > first_end);
    col_store_close(f->s);
    f->s = NULL;
    damage(paths[0], first_end, size);
    open_store(f);
    col_span_t *got;
    assert_int_equal(get_trace(f, 1, &got), 30);
    for (int j = 0; j < 30; j++) span_equal(&got[j], &a[j]);
    assert_int_equal(get_trace(f, 2, &got), 0);
    assert_int_equal(file_size(paths[0]), first_end); /* the tail was cut off */
    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_int_equal(st.spans, 30);
    append_ok(f, b, 30);
    wait_done(3);
    reopen(f);
    assert_int_equal(get_trace(f, 1, &got), 30);
    assert_int_equal(get_trace(f, 2, &got), 30);
}

static void cut_mid_block(const char *path, off_t first_end, off_t size)
{
    assert_int_equal(truncate(path, first_end + (size - first_end) / 2), 0);
}

static void cut_mid_header(const char *path, off_t first_end, off_t size)
{
    (void)size;
    assert_int_equal(truncate(path, first_end + 20), 0);
}

static void flip_last_bytes(const char *path, off_t first_end, off_t size)
{
    (void)first_end;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c[4];
    assert_int_equal(pread(fd, c, 4, size - 4), 4);
    for (int i = 0; i < 4; i++) c[i] ^= 0x5a;
    assert_int_equal(pwrite(fd, c, 4, size - 4), 4);
    close(fd);
}

static void garbage_after(const char *path, off_t first_end, off_t size)
{
    /* the second block zeroed (a file system that extended the file but lost the data) */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    size_t n = (size_t)(size - first_end);
    uint8_t *z = calloc(1, n);
    assert_int_equal(pwrite(fd, z, n, first_end), (ssize_t)n);
    free(z);
    close(fd);
}

static void test_torn_mid_block(void **state)
{
    torn(*state, cut_mid_block);
}
static void test_torn_mid_header(void **state)
{
    torn(*state, cut_mid_header);
}
static void test_corrupt_tail(void **state)
{
    torn(*state, flip_last_bytes);
}
static void test_zeroed_tail(void **state)
{
    torn(*state, garbage_after);
}

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

/* The index sidecar: open loads the summaries from it (seen here by what it does not read:
 * a block damaged in the middle of the segment is found only when a query reads it), falls
 * back to reading the blocks when it is damaged or missing, and answers alike. */
static void reopen_expect(fix_t *f, int t400, int t401, int t402, uint64_t spans)
{
    open_store(f);
    col_span_t *got;
    int want[3] = {t400, t401, t402};
    for (int b = 0; b < 3; b++) {
        uint8_t id[16];
        set_id(id, 16, 400 + (uint64_t)b);
        size_t n;
        int rc = col_store_trace(f->s, id, &f->arena, &got, &n);
        if (want[b] < 0)
            assert_int_equal(rc, WEFT_EIO);
        else {
            assert_int_equal(rc, 0);
            assert_int_equal(n, (size_t)want[b]);
        }
    }
    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_int_equal(st.spans, spans);
    col_store_close(f->s);
    f->s = NULL;
}

static void test_sidecar(void **state)
{
    fix_t *f = *state;
    f->conf.sync = true;
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns() - 60 * SEC;
    off_t ends[3];
    char paths[8][256];
    for (int b = 0; b < 3; b++) {
        col_span_t sp[30];
        for (int j = 0; j < 30; j++)
            sp[j] = rich_span(400 + (uint64_t)b, (uint64_t)j + 1, t + (uint64_t)b);
        append_ok(f, sp, 30);
        wait_done(b + 1);
        assert_int_equal(seg_files(f, paths, 8), 1);
        ends[b] = file_size(paths[0]);
    }
    col_query_t q = {.service = S("checkout")};
    expect(f, &q, 32, 3, 402, 401, 400);
    col_store_close(f->s);
    f->s = NULL;
    char wti[300];
    snprintf(wti, sizeof wti, "%.*s.wti", (int)strlen(paths[0]) - 4, paths[0]);
    off_t wti_size = file_size(wti);
    assert_true(wti_size > 12);

    reopen_expect(f, 30, 30, 30, 90); /* from the sidecar */
    flip_byte(wti, wti_size / 2);
    reopen_expect(f, 30, 30, 30, 90); /* a damaged sidecar: the blocks are read */
    flip_byte(wti, wti_size / 2);     /* the sidecar whole again */
    flip_byte(paths[0], ends[0] + (ends[1] - ends[0]) / 2); /* the middle block's payload */
    /* the sidecar is trusted for all but the newest block: the damage shows on reading */
    reopen_expect(f, 30, -1, 30, 90);
    open_store(f);
    uint8_t ids[4][16];
    size_t n;
    assert_int_equal(col_store_search(f->s, &q, ids, 4, &n), WEFT_EIO); /* it reads block 2 */
    q.limit = 1;
    expect(f, &q, 32, 1, 402); /* it stops before */
    q.limit = 0;
    col_store_close(f->s);
    f->s = NULL;
    assert_int_equal(unlink(wti), 0);
    /* without it, recovery reads every block and ends the segment at the damaged one */
    reopen_expect(f, 30, 0, 0, 30);
}

/* Blocks are written with CRC-32C (flags ST_BLK_CRC32C); blocks written before, with zlib's
 * crc32 and flags 0, are still read: a store from an older weft opens whole. A block whose
 * flags say crc32 while it carries a CRC-32C is damage (recovery ends the segment there). */
static void rewrite_blocks(const char *path, bool old_crc_right)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END), off = 0;
    int blocks = 0;
    while (off + ST_HDR_LEN <= size) {
        uint8_t h[ST_HDR_LEN];
        assert_int_equal(pread(fd, h, ST_HDR_LEN, off), ST_HDR_LEN);
        assert_int_equal(st_le32(h), ST_BLOCK_MAGIC);
        assert_int_equal(st_le32(h + 44), ST_BLK_CRC32C);
        uint32_t clen = st_le32(h + 4);
        uint8_t *pl = malloc(clen);
        assert_non_null(pl);
        assert_int_equal(pread(fd, pl, clen, off + ST_HDR_LEN), (ssize_t)clen);
        uint32_t want = weft_crc32c(weft_crc32c(0, h, 40), pl, clen);
        assert_int_equal(st_le32(h + 40), want);
        memset(h + 44, 0, 4);
        if (old_crc_right) {
            uLong crc = crc32(0, h, 40);
            crc = crc32(crc, pl, clen);
            for (int i = 0; i < 4; i++) h[40 + i] = (uint8_t)(crc >> (8 * i));
        }
        assert_int_equal(pwrite(fd, h, ST_HDR_LEN, off), ST_HDR_LEN);
        free(pl);
        off += ST_HDR_LEN + clen;
        blocks++;
    }
    assert_int_equal(off, size);
    assert_true(blocks >= 3);
    close(fd);
}

static void test_old_crc(void **state)
{
    fix_t *f = *state;
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns() - 60 * SEC;
    char paths[8][256];
    for (int b = 0; b < 3; b++) {
        col_span_t sp[30];
        for (int j = 0; j < 30; j++)
            sp[j] = rich_span(400 + (uint64_t)b, (uint64_t)j + 1, t + (uint64_t)b);
        append_ok(f, sp, 30);
        wait_done(b + 1);
    }
    col_store_close(f->s);
    f->s = NULL;
    assert_int_equal(seg_files(f, paths, 8), 1);
    char wti[300];
    snprintf(wti, sizeof wti, "%.*s.wti", (int)strlen(paths[0]) - 4, paths[0]);
    /* the segment as written, to restore after the damage */
    off_t size = file_size(paths[0]);
    uint8_t *orig = malloc((size_t)size);
    assert_non_null(orig);
    int fd = open(paths[0], O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, orig, (size_t)size, 0), size);
    close(fd);
    /* the sidecar as an older weft wrote it (records "WTI1" with zlib's crc32) is trusted
     * too: seen by a damaged middle block, which only a query finds then (without the
     * sidecar, recovery would end the segment there) */
    fd = open(wti, O_RDWR);
    assert_true(fd >= 0);
    off_t wsize = lseek(fd, 0, SEEK_END), at = 0;
    int records = 0;
    while (at + 12 <= wsize) {
        uint8_t h[12];
        assert_int_equal(pread(fd, h, 12, at), 12);
        assert_int_equal(st_le32(h), 0x32495457u); /* "WTI2" */
        uint32_t len = st_le32(h + 4);
        uint8_t *pl = malloc(len ? len : 1);
        assert_non_null(pl);
        assert_int_equal(pread(fd, pl, len, at + 12), (ssize_t)len);
        uLong crc = crc32(0, pl, len);
        memcpy(h, "WTI1", 4);
        for (int i = 0; i < 4; i++) h[8 + i] = (uint8_t)(crc >> (8 * i));
        assert_int_equal(pwrite(fd, h, 12, at), 12);
        free(pl);
        at += 12 + len;
        records++;
    }
    close(fd);
    assert_true(records >= 1);
    off_t ends[2] = {0, 0};
    {
        fd = open(paths[0], O_RDONLY);
        assert_true(fd >= 0);
        uint8_t h[ST_HDR_LEN];
        assert_int_equal(pread(fd, h, ST_HDR_LEN, 0), ST_HDR_LEN);
        ends[0] = ST_HDR_LEN + (off_t)st_le32(h + 4);
        assert_int_equal(pread(fd, h, ST_HDR_LEN, ends[0]), ST_HDR_LEN);
        ends[1] = ends[0] + ST_HDR_LEN + (off_t)st_le32(h + 4);
        close(fd);
    }
    flip_byte(paths[0], ends[0] + (ends[1] - ends[0]) / 2); /* the middle block's payload */
    reopen_expect(f, 30, -1, 30, 90);
    fd = open(paths[0], O_RDWR); /* the segment whole again */
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, orig, (size_t)size, 0), size);
    close(fd);

    /* flags 0 over a CRC-32C: damage; without the sidecar, recovery ends the segment at the
     * first block */
    rewrite_blocks(paths[0], false);
    assert_int_equal(unlink(wti), 0);
    reopen_expect(f, 0, 0, 0, 0);

    /* the blocks as an older weft wrote them: flags 0 and zlib's crc32 */
    fd = open(paths[0], O_RDWR | O_CREAT | O_TRUNC, 0644); /* recovery removed it, empty */
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, orig, (size_t)size, 0), size);
    close(fd);
    free(orig);
    unlink(wti);
    rewrite_blocks(paths[0], true);
    reopen_expect(f, 30, 30, 30, 90); /* every block read and checked by recovery */
    reopen_expect(f, 30, 30, 30, 90); /* again */
}

/* A child appends batches with sync on and writes each batch's number to a pipe from its
 * done(0); the parent kills it with SIGKILL after 30 acknowledgements (while it is still
 * appending); every acknowledged batch is there whole after a reopen. */
static int ack_fd;

static void on_durable(int status, void *arg)
{
    if (status != 0) _exit(4);
    uint64_t i = (uint64_t)(uintptr_t)arg;
    if (write(ack_fd, &i, sizeof i) != sizeof i) _exit(5);
}

static void test_kill9(void **state)
{
    fix_t *f = *state;
    f->conf.sync = true;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        ack_fd = pfd[1];
        col_store_t *s;
        char err[256];
        if (col_store_open(&f->conf, &s, err, sizeof err) != 0) _exit(3);
        uint64_t t = now_ns();
        for (uint64_t i = 0;; i++) {
            col_span_t sp[50];
            for (int j = 0; j < 50; j++)
                sp[j] = plain_span(1000 + i, (uint64_t)j + 1, t, MS, &res_fe, S("k"));
            int rc;
            while ((rc = col_store_append(s, sp, 50, on_durable, (void *)(uintptr_t)i)) ==
                   WEFT_ELIMIT)
                usleep(1000); /* the child's own back-off, not a test wait */
            if (rc != 0) _exit(6);
        }
    }
    close(pfd[1]);
    static uint8_t acked[1u << 16];
    uint64_t max = 0;
    int got = 0;
    while (got < 30) {
        uint64_t i;
        ssize_t k = read(pfd[0], &i, sizeof i);
        if (k != sizeof i) break;
        if (i < sizeof acked) acked[i] = 1;
        if (i > max) max = i;
        got++;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(pfd[0]);
    assert_int_equal(got, 30);
    assert_true(WIFSIGNALED(status));
    open_store(f);
    col_span_t *sp;
    for (uint64_t i = 0; i <= max; i++) {
        size_t n = get_trace(f, 1000 + i, &sp);
        if (acked[i])
            assert_int_equal(n, 50);
        else
            assert_true(n == 0 || n == 50); /* written but not yet acknowledged: whole or not */
    }
}

/* Writes that fail (the file size limit, as a full disk would): their appends are answered
 * WEFT_ENOSPC and are not there after a reopen; the store goes on in a new segment once
 * there is room; what was acknowledged before and after is there. In a child process,
 * which alone gets the limit; it reports through its exit status. */
static int child_calls, child_fail;
static void on_child_done(int status, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&W.mu);
    child_calls++;
    if (status == WEFT_ENOSPC)
        child_fail++;
    else if (status != 0)
        _exit(20);
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static void test_write_error(void **state)
{
    fix_t *f = *state;
    f->conf.sync = true;
    f->conf.max_bytes = 8u << 20; /* segments of 1 MiB */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        col_store_t *s;
        char err[256];
        if (col_store_open(&f->conf, &s, err, sizeof err) != 0) _exit(10);
        /* batch 0 acknowledged; then a limit below the segment's size makes batch 1 fail */
        col_span_t sp[20];
        uint64_t t = now_ns();
        for (uint64_t b = 0; b < 3; b++) {
            for (int j = 0; j < 20; j++) sp[j] = rich_span(300 + b, (uint64_t)j + 1, t);
            if (b == 1) {
                struct stat st;
                char path[256];
                snprintf(path, sizeof path, "%s/seg-0000000000000000.wts", f->dir);
                if (stat(path, &st) != 0) _exit(11);
                struct rlimit rl;
                getrlimit(RLIMIT_FSIZE, &rl);
                rl.rlim_cur = (rlim_t)st.st_size + 100;
                if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(12);
            }
            if (b == 2) {
                struct rlimit rl;
                getrlimit(RLIMIT_FSIZE, &rl);
                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(13);
            }
            if (col_store_append(s, sp, 20, on_child_done, NULL) != 0) _exit(14);
            pthread_mutex_lock(&W.mu);
            while (child_calls < (int)b + 1) pthread_cond_wait(&W.cv, &W.mu);
            pthread_mutex_unlock(&W.mu);
            if (child_fail != (b >= 1 ? 1 : 0)) _exit(15 + (int)b);
        }
        col_store_stats_t st;
        col_store_stats(s, &st);
        if (st.write_errors != 1 || st.spans != 40) _exit(18);
        col_store_close(s);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    open_store(f);
    col_span_t *got;
    assert_int_equal(get_trace(f, 300, &got), 20);
    assert_int_equal(get_trace(f, 301, &got), 0);
    assert_int_equal(get_trace(f, 302, &got), 20);
    char paths[8][256];
    assert_int_equal(seg_files(f, paths, 8), 2); /* the failed segment was left for a new one */
}

static void test_retention_size(void **state)
{
    fix_t *f = *state;
    f->conf.max_bytes = 512 * 1024; /* segments of 64 KiB */
    open_store(f);
    waiter_reset();
    uint64_t t = now_ns();
    /* incompressible attribute values, so that the bytes on disk grow with the spans */
    static char junk[100][256];
    unsigned seed = 7;
    col_attr_t at[100];
    for (int i = 0; i < 100; i++) {
        for (int j = 0; j < 256; j++) junk[i][j] = (char)('a' + (rand_r(&seed) % 26));
        at[i] = (col_attr_t){.key = S("junk"), .type = COL_V_STRING, .v.s = {junk[i], 256}};
    }
    int batches = 60;
    for (int i = 0; i < batches; i++) {
        col_span_t sp[100];
        for (int j = 0; j < 100; j++) {
            sp[j] = plain_span(5000 + (uint64_t)i, (uint64_t)j + 1, t + (uint64_t)i, MS, &res_fe,
                               S("r"));
            sp[j].attrs = &at[(i * 7 + j) % 100];
            sp[j].nattrs = 1;
        }
        append_ok(f, sp, 100);
        wait_done(i + 1);
    }
    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_true(st.disk_bytes <= f->conf.max_bytes);
    assert_true(st.disk_bytes >= f->conf.max_bytes / 2);
    assert_true(st.expired > 0);
    assert_int_equal(st.spans + st.expired, (uint64_t)batches * 100);
    col_span_t *got;
    assert_int_equal(get_trace(f, 5000, &got), 0);                 /* the oldest went */
    assert_int_equal(get_trace(f, 5000 + batches - 1, &got), 100); /* the newest stayed */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cat %s/seg-* | wc -c", f->dir); /* segments and sidecars */
    FILE *p = popen(cmd, "r");
    unsigned long long total = 0;
    assert_int_equal(fscanf(p, "%llu", &total), 1);
    pclose(p);
    assert_int_equal(total, st.disk_bytes);
    col_query_t q = {.service = S("frontend"), .limit = 1000};
    uint8_t ids[128][16];
    size_t n;
    assert_int_equal(col_store_search(f->s, &q, ids, 128, &n), 0);
    assert_int_equal(n, st.spans / 100);
    reopen(f);
    col_store_stats_t st2;
    col_store_stats(f->s, &st2);
    assert_int_equal(st2.spans, st.spans);
}

static void test_retention_age(void **state)
{
    fix_t *f = *state;
    f->conf.max_age_ms = 3600 * 1000;
    open_store(f);
    waiter_reset();
    uint64_t now = now_ns();
    col_span_t both[20], *old = both, *young = both + 10;
    for (int j = 0; j < 10; j++) {
        old[j] = plain_span(1, (uint64_t)j + 1, now - 7200 * SEC, MS, &res_fe, S("old"));
        young[j] = plain_span(2, (uint64_t)j + 1, now - 60 * SEC, MS, &res_fe, S("young"));
    }
    /* old spans sharing their segment with young ones stay with it */
    append_ok(f, both, 20);
    wait_done(1);
    reopen(f);
    col_span_t *got;
    assert_int_equal(get_trace(f, 1, &got), 10);
    /* a segment of old spans only goes, right after its write (the writer checks after each
     * write, every minute, and at open) */
    col_store_close(f->s);
    f->s = NULL;
    char paths[8][256];
    assert_int_equal(seg_files(f, paths, 8), 1);
    assert_int_equal(unlink(paths[0]), 0);
    open_store(f);
    waiter_reset();
    append_ok(f, old, 10);
    wait_done(1);
    col_store_stats_t st;
    col_store_stats(f->s, &st);
    assert_int_equal(st.spans, 0); /* deleted right after its write */
    assert_int_equal(st.expired, 10);
    assert_int_equal(get_trace(f, 1, &got), 0);
    append_ok(f, young, 10);
    wait_done(2);
    reopen(f);
    assert_int_equal(get_trace(f, 2, &got), 10);
    assert_int_equal(get_trace(f, 1, &got), 0);
}

/* ---- queries while appends are written ---- */

typedef struct reader_s {
    fix_t *f;
    atomic_int *stop;
    int traces_found;
    atomic_int searches;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    weft_arena_t a;
    weft_arena_init(&a, 65536, 64u << 20);
    while (!atomic_load(r->stop)) {
        uint8_t id[16];
        set_id(id, 16, 9000 + (uint64_t)(atomic_load(&r->searches) % 100));
        col_span_t *sp;
        size_t n;
        if (col_store_trace(r->f->s, id, &a, &sp, &n) != 0) abort();
        if (n && n % 10 != 0) abort(); /* appends are all or nothing */
        r->traces_found += n > 0;
        col_query_t q = {.service = S("frontend"), .min_duration_ns = 5 * MS, .limit = 20};
        uint8_t ids[20][16];
        if (col_store_search(r->f->s, &q, ids, 20, &n) != 0) abort();
        col_str_t *names;
        if (col_store_services(r->f->s, &a, &names, &n) != 0) abort();
        col_store_stats_t st;
        col_store_stats(r->f->s, &st);
        atomic_fetch_add(&r->searches, 1);
        weft_arena_reset(&a);
    }
    weft_arena_free(&a);
    return NULL;
}

static void test_concurrent(void **state)
{
    fix_t *f = *state;
    f->conf.max_bytes = 256 * 1024; /* retention runs meanwhile too */
    open_store(f);
    waiter_reset();
    atomic_int stop = 0;
    reader_t r[2] = {{.f = f, .stop = &stop}, {.f = f, .stop = &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
    uint64_t t = now_ns() - 60 * SEC;
    int accepted = 0;
    /* at least 300 appends, and on until each reader has run 50 rounds during them */
    for (int i = 0; i < 300 || atomic_load(&r[0].searches) < 50 || atomic_load(&r[1].searches) < 50;
         i++) {
        col_span_t sp[10];
        for (int j = 0; j < 10; j++) {
            sp[j] = rich_span(9000 + (uint64_t)(i % 100), (uint64_t)(i * 10 + j + 1),
                              t + (uint64_t)i * MS);
            sp[j].resource = &res_fe;
        }
        if (col_store_append(f->s, sp, 10, on_done, NULL) == 0) accepted++;
        if (i > 1000000) fail_msg("the readers made no progress");
    }
    wait_done(accepted);
    /* every append is durable now: the readers' next rounds must find traces (their
     * rounds so far may all have run before the writer's first block, on a busy machine) */
    int base0 = atomic_load(&r[0].searches), base1 = atomic_load(&r[1].searches);
    uint64_t deadline = now_ns() + 30 * SEC;
    while ((atomic_load(&r[0].searches) < base0 + 20 || atomic_load(&r[1].searches) < base1 + 20) &&
           now_ns() < deadline)
        usleep(1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_true(accepted > 0);
    assert_true(r[0].traces_found > 0 && r[1].traces_found > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_answers_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_during_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_mid_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_mid_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sidecar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_crc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
