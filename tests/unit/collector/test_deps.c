/*
 * test_deps.c - the dependency linker (collector/deps.c): the two sides of an RPC in
 * different batches in either order, a chain, errors from either side, uninstrumented
 * callees and callers, Zipkin's shared spans, same-service spans, messaging, the time
 * buckets behind the lookback window and the retention, the bounds (the span ring, edges
 * per bucket, names), the file (round trip, damage of every kind refused whole), and several
 * threads adding at once (run under TSan too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "collector/deps.h"
#include "weft/common.h"

#define MIN_MS  60000ull
#define HOUR_MS (60 * MIN_MS)
#define T0      (1767225600000ull + 10 * HOUR_MS) /* 2026-01-01 10:00 UTC */

static uint64_t g_now = T0;

static uint64_t test_now(void *arg)
{
    (void)arg;
    return __atomic_load_n(&g_now, __ATOMIC_RELAXED);
}

static void set_now(uint64_t ms)
{
    __atomic_store_n(&g_now, ms, __ATOMIC_RELAXED);
}

/* resources by service name (string literals; a few per test) */
static col_resource_t g_res[64];
static size_t g_nres;
static pthread_mutex_t g_res_mu = PTHREAD_MUTEX_INITIALIZER;
static const col_scope_t g_scope;

static const col_resource_t *res(const char *svc)
{
    pthread_mutex_lock(&g_res_mu);
    for (size_t i = 0; i < g_nres; i++) {
        if (g_res[i].service.p == svc) {
            pthread_mutex_unlock(&g_res_mu);
            return &g_res[i];
        }
    }
    assert_true(g_nres < 64);
    g_res[g_nres].service = (col_str_t){svc, (uint32_t)strlen(svc)};
    const col_resource_t *r = &g_res[g_nres++];
    pthread_mutex_unlock(&g_res_mu);
    return r;
}

/* A span of trace `trace`, id `id`, parent `parent` (0: root), started at start_ms (0: now). */
static col_span_t mk(uint32_t trace, uint32_t id, uint32_t parent, uint8_t kind, const char *svc,
                     const char *remote, bool err, uint64_t start_ms)
{
    col_span_t s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 4; i++) {
        s.trace_id[15 - i] = (uint8_t)(trace >> (8 * i));
        s.span_id[7 - i] = (uint8_t)(id >> (8 * i));
        s.parent_id[7 - i] = (uint8_t)(parent >> (8 * i));
    }
    s.trace_id[0] = 0x5a; /* not all zero in the high half either */
    s.kind = kind;
    s.start_ns = (start_ms ? start_ms : test_now(NULL)) * 1000000ull;
    s.end_ns = s.start_ns + 1000000;
    s.resource = res(svc);
    s.scope = &g_scope;
    if (remote) s.remote.service = (col_str_t){remote, (uint32_t)strlen(remote)};
    if (err) s.status = COL_STATUS_ERROR;
    return s;
}

enum {
    S = COL_KIND_SERVER,
    C = COL_KIND_CLIENT,
    I = COL_KIND_INTERNAL,
    P = COL_KIND_PRODUCER,
    K = COL_KIND_CONSUMER
};

static col_deps_t *new_deps(size_t max_spans, size_t max_edges, size_t max_names)
{
    col_deps_conf_t c;
    col_deps_conf_init(&c);
    if (max_spans) c.max_spans = max_spans;
    if (max_edges) c.max_edges = max_edges;
    if (max_names) c.max_names = max_names;
    c.now_ms = test_now;
    col_deps_t *d = NULL;
    assert_int_equal(col_deps_new(&c, &d), 0);
    assert_non_null(d);
    return d;
}

static void add1(col_deps_t *d, col_span_t s)
{
    col_deps_add(d, &s, 1);
}

/* The links of [end - lookback, end] as "parent>child:calls/errors ..." */
static void links_str(col_deps_t *d, uint64_t end, uint64_t lookback, char *out, size_t outlen)
{
    weft_arena_t a;
    weft_arena_init(&a, 4096, 1u << 26);
    col_dep_link_t *l = NULL;
    size_t n = 99;
    assert_int_equal(col_deps_links(d, end, lookback, &a, &l, &n), 0);
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(l[i].parent.p), l[i].parent.n); /* NUL-terminated too */
        off += (size_t)snprintf(out + off, outlen - off, "%s%.*s>%.*s:%llu/%llu", i ? " " : "",
                                (int)l[i].parent.n, l[i].parent.p, (int)l[i].child.n, l[i].child.p,
                                (unsigned long long)l[i].calls, (unsigned long long)l[i].errors);
        assert_true(off < outlen);
    }
    weft_arena_free(&a);
}

#define EXPECT_WINDOW(d, end, lookback, want)                                                      \
    do {                                                                                           \
        char got_[8192];                                                                           \
        links_str((d), (end), (lookback), got_, sizeof got_);                                      \
        assert_string_equal(got_, (want));                                                         \
    } while (0)
#define EXPECT(d, want) EXPECT_WINDOW(d, test_now(NULL), HOUR_MS, want)

static int setup(void **state)
{
    (void)state;
    set_now(T0);
    return 0;
}

/* OpenTelemetry style (no shared ids): a's client span, b's server span its child. */
static void test_client_server_both_orders(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    add1(d, mk(1, 10, 1, C, "a", NULL, false, 0)); /* no remote name: waits for its server */
    EXPECT(d, "");
    add1(d, mk(1, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:1/0");
    /* the server first (the usual order: it ends first) */
    add1(d, mk(2, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:1/0");
    add1(d, mk(2, 10, 1, C, "a", NULL, false, 0));
    EXPECT(d, "a>b:2/0");
    /* the same ids in another trace are another RPC */
    col_span_t batch[2] = {mk(3, 11, 10, S, "b", NULL, false, 0),
                           mk(3, 10, 1, C, "a", NULL, false, 0)};
    col_deps_add(d, batch, 2);
    EXPECT(d, "a>b:3/0");
    /* a resend of a batch (an exporter's retry) is linked once */
    col_deps_add(d, batch, 2);
    EXPECT(d, "a>b:3/0");
    col_deps_free(d);
}

/* A client naming its callee counts at once; its server, when it comes, takes the call over
 * under its own name; a server that came first leaves the client nothing to count. */
static void test_client_remote_then_server(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    add1(d, mk(1, 10, 1, C, "a", "b-alias", false, 0));
    EXPECT(d, "a>b-alias:1/0");
    add1(d, mk(1, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:1/0");
    /* the same name on both sides: still one call */
    add1(d, mk(2, 10, 1, C, "a", "b", false, 0));
    EXPECT(d, "a>b:2/0");
    add1(d, mk(2, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:2/0");
    /* the server first */
    add1(d, mk(3, 11, 10, S, "b", NULL, false, 0));
    add1(d, mk(3, 10, 1, C, "a", "b-alias", false, 0));
    EXPECT(d, "a>b:3/0");
    /* two server children (a retry the client library did not show): two calls */
    add1(d, mk(4, 10, 1, C, "a", "b", false, 0));
    add1(d, mk(4, 11, 10, S, "b", NULL, false, 0));
    add1(d, mk(4, 12, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:5/0");
    col_deps_free(d);
}

/* a -> b -> c, every span in its own batch, in reverse order of start. */
static void test_chain(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    col_span_t spans[] = {
        mk(7, 1, 0, S, "a", NULL, false, 0),       mk(7, 2, 1, I, "a", NULL, false, 0),
        mk(7, 3, 2, C, "a", NULL, false, 0),       mk(7, 4, 3, S, "b", NULL, false, 0),
        mk(7, 5, 4, C, "b", NULL, false, 0),       mk(7, 6, 5, S, "c", NULL, false, 0),
        mk(7, 7, 6, C, "c", "postgres", false, 0),
    };
    size_t n = sizeof spans / sizeof spans[0];
    for (size_t i = n; i-- > 0;) add1(d, spans[i]);
    EXPECT(d, "a>b:1/0 b>c:1/0 c>postgres:1/0");
    /* and all in one batch, in order */
    for (size_t i = 0; i < n; i++) spans[i].trace_id[1] = 1;
    col_deps_add(d, spans, n);
    EXPECT(d, "a>b:2/0 b>c:2/0 c>postgres:2/0");
    col_deps_free(d);
}

static void test_errors(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    /* the server in error */
    add1(d, mk(1, 10, 1, C, "a", NULL, false, 0));
    add1(d, mk(1, 11, 10, S, "b", NULL, true, 0));
    EXPECT(d, "a>b:1/1");
    /* the client in error (a timeout the server never saw) */
    add1(d, mk(2, 11, 10, S, "b", NULL, false, 0));
    add1(d, mk(2, 10, 1, C, "a", NULL, true, 0));
    EXPECT(d, "a>b:2/2");
    /* both: one error for one call */
    add1(d, mk(3, 10, 1, C, "a", NULL, true, 0));
    add1(d, mk(3, 11, 10, S, "b", NULL, true, 0));
    EXPECT(d, "a>b:3/3");
    /* neither */
    add1(d, mk(4, 10, 1, C, "a", NULL, false, 0));
    add1(d, mk(4, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:4/3");
    /* a client counted alone in error, taken over by its server: the error moves with it */
    add1(d, mk(5, 10, 1, C, "a", "bee", true, 0));
    EXPECT(d, "a>b:4/3 a>bee:1/1");
    add1(d, mk(5, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:5/4");
    /* Zipkin's "error" tag (any value) and otel.status_code */
    col_attr_t tag = {.key = COL_STR("error"), .type = COL_V_STRING, .v.s = COL_STR("")};
    col_span_t s = mk(6, 10, 1, C, "a", "redis", false, 0);
    s.attrs = &tag;
    s.nattrs = 1;
    add1(d, s);
    col_attr_t code = {
        .key = COL_STR("otel.status_code"), .type = COL_V_STRING, .v.s = COL_STR("ERROR")};
    s = mk(7, 10, 1, C, "a", "redis", false, 0);
    s.attrs = &code;
    s.nattrs = 1;
    add1(d, s);
    col_attr_t ok = {
        .key = COL_STR("otel.status_code"), .type = COL_V_STRING, .v.s = COL_STR("OK")};
    s = mk(8, 10, 1, C, "a", "redis", false, 0);
    s.attrs = &ok;
    s.nattrs = 1;
    add1(d, s);
    EXPECT(d, "a>b:5/4 a>redis:3/2");
    col_deps_free(d);
}

static void test_uninstrumented(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    /* callees: remote endpoint, peer.service, a kindless span with a remote name */
    add1(d, mk(1, 10, 1, C, "a", "mysql", false, 0));
    col_attr_t peer = {
        .key = COL_STR("peer.service"), .type = COL_V_STRING, .v.s = COL_STR("redis")};
    col_span_t s = mk(2, 10, 1, C, "a", NULL, true, 0);
    s.attrs = &peer;
    s.nattrs = 1;
    add1(d, s);
    add1(d, mk(3, 10, 1, I, "a", "s3", false, 0));
    /* a client naming nobody, whose server never comes: nothing */
    add1(d, mk(4, 10, 1, C, "a", NULL, false, 0));
    /* a caller: a root server span that names its client */
    add1(d, mk(5, 1, 0, S, "a", "browser", false, 0));
    /* a non-root server's remote name is not its caller (Zipkin: the parent is) */
    add1(d, mk(6, 2, 1, S, "a", "proxy", false, 0));
    EXPECT(d, "a>mysql:1/0 a>redis:1/1 a>s3:1/0 browser>a:1/0");
    col_deps_free(d);
}

/* Zipkin's shared spans (B3 single-span RPCs): the server side reuses the client's id. The
 * trace of Zipkin's DependencyLinkerTest: web's root server, web's client (id b) to app, app's
 * shared server (id b), app's client to db (in error). */
static void shared_trace(col_span_t out[4], uint32_t trace)
{
    out[0] = mk(trace, 0xc, 0xb, C, "app", "db", true, 0);
    out[1] = mk(trace, 0xb, 0xa, S, "app", "web", false, 0);
    out[1].shared = true;
    out[2] = mk(trace, 0xb, 0xa, C, "web", "app", false, 0);
    out[3] = mk(trace, 0xa, 0, S, "web", NULL, false, 0);
}

static void test_shared_spans(void **state)
{
    (void)state;
    col_span_t t[4];
    /* reported in reverse, in one batch */
    col_deps_t *d = new_deps(0, 0, 0);
    shared_trace(t, 1);
    col_deps_add(d, t, 4);
    EXPECT(d, "app>db:1/1 web>app:1/0");
    col_deps_free(d);
    /* every order of the four, one span a batch */
    static const int perms[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 3, 0, 1},
                                   {1, 3, 0, 2}, {2, 0, 3, 1}, {0, 2, 1, 3}, {3, 1, 2, 0}};
    for (size_t p = 0; p < sizeof perms / sizeof perms[0]; p++) {
        d = new_deps(0, 0, 0);
        shared_trace(t, 2);
        for (int i = 0; i < 4; i++) add1(d, t[perms[p][i]]);
        char got[256];
        links_str(d, test_now(NULL), HOUR_MS, got, sizeof got);
        if (strcmp(got, "app>db:1/1 web>app:1/0") != 0)
            fail_msg("order %d%d%d%d: %s", perms[p][0], perms[p][1], perms[p][2], perms[p][3], got);
        col_deps_free(d);
    }
    /* the client side lost: the shared server alone names nobody upstream of it */
    d = new_deps(0, 0, 0);
    shared_trace(t, 3);
    add1(d, t[0]);
    add1(d, t[1]);
    add1(d, t[3]);
    EXPECT(d, "app>db:1/1");
    /* an error on the client side of a shared span counts for the call */
    shared_trace(t, 4);
    t[2].status = COL_STATUS_ERROR;
    col_deps_add(d, t, 4);
    EXPECT(d, "app>db:2/2 web>app:1/1");
    col_deps_free(d);
}

static void test_same_service(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    /* server, internal work, a client with no remote name whose server never comes */
    add1(d, mk(1, 3, 2, C, "a", NULL, false, 0));
    add1(d, mk(1, 2, 1, I, "a", NULL, false, 0));
    add1(d, mk(1, 1, 0, S, "a", NULL, false, 0));
    /* a server span under an internal span of its own service (instrumented twice) */
    add1(d, mk(2, 1, 0, S, "a", NULL, false, 0));
    add1(d, mk(2, 2, 1, I, "a", NULL, false, 0));
    add1(d, mk(2, 3, 2, S, "a", NULL, true, 0));
    EXPECT(d, "");
    /* a service calling itself over the network is a loop edge (as in Zipkin) */
    add1(d, mk(3, 2, 1, C, "a", NULL, false, 0));
    add1(d, mk(3, 3, 2, S, "a", NULL, false, 0));
    EXPECT(d, "a>a:1/0");
    /* spans with no service name, or a zero span id, are not linked */
    add1(d, mk(4, 10, 1, C, "", "mysql", false, 0));
    add1(d, mk(4, 0, 1, C, "a", "mysql", false, 0));
    add1(d, mk(5, 10, 1, C, "", NULL, false, 0));
    add1(d, mk(5, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>a:1/0");
    col_deps_free(d);
}

static void test_messaging_and_missing_link(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    /* brokers named: through them (Zipkin) */
    add1(d, mk(1, 1, 0, P, "producer", "kafka", false, 0));
    add1(d, mk(1, 2, 1, K, "consumer", "kafka", false, 0));
    EXPECT(d, "kafka>consumer:1/0 producer>kafka:1/0");
    /* only the producer names it: the consumer adds nothing */
    add1(d, mk(2, 2, 1, K, "consumer", NULL, false, 0));
    add1(d, mk(2, 1, 0, P, "producer", "kafka", false, 0));
    EXPECT(d, "kafka>consumer:1/0 producer>kafka:2/0");
    /* no broker named: producer -> consumer */
    add1(d, mk(3, 2, 1, K, "consumer", NULL, true, 0));
    add1(d, mk(3, 1, 0, P, "producer", NULL, false, 0));
    EXPECT(d, "kafka>consumer:1/0 producer>consumer:1/1 producer>kafka:2/0");
    /* a consumer under a client span: not linked (Zipkin) */
    add1(d, mk(4, 1, 0, C, "client", NULL, false, 0));
    add1(d, mk(4, 2, 1, K, "consumer", NULL, false, 0));
    /* a producer's server child is an RPC */
    add1(d, mk(5, 1, 0, P, "producer", NULL, false, 0));
    add1(d, mk(5, 2, 1, S, "server", NULL, false, 0));
    EXPECT(d, "kafka>consumer:1/0 producer>consumer:1/1 producer>kafka:2/0 producer>server:1/0");
    col_deps_free(d);

    /* a client span under a server of another service: its own server span is missing */
    d = new_deps(0, 0, 0);
    add1(d, mk(6, 2, 1, C, "app", NULL, true, 0));
    add1(d, mk(6, 1, 0, S, "web", NULL, false, 0));
    EXPECT(d, "web>app:1/0");
    col_deps_free(d);
}

/* The window, the minute and hour buckets, the fold of old minutes into hours, retention. */
static void test_lookback(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(0, 0, 0);
    uint64_t now = T0 + 30 * MIN_MS; /* 10:30 */
    set_now(now);
    add1(d, mk(1, 10, 1, C, "a", "m5", false, now - 5 * MIN_MS));
    add1(d, mk(2, 10, 1, C, "a", "m30", false, now - 30 * MIN_MS));
    add1(d, mk(3, 10, 1, C, "a", "h2", false, now - 2 * HOUR_MS));
    add1(d, mk(4, 10, 1, C, "a", "d2", false, now - 48 * HOUR_MS));
    add1(d, mk(5, 10, 1, C, "a", "future", false, now + HOUR_MS)); /* skew: counted now */
    EXPECT_WINDOW(d, now, 10 * MIN_MS, "a>future:1/0 a>m5:1/0");
    EXPECT_WINDOW(d, now, HOUR_MS, "a>future:1/0 a>m30:1/0 a>m5:1/0");
    EXPECT_WINDOW(d, now, 3 * HOUR_MS, "a>future:1/0 a>h2:1/0 a>m30:1/0 a>m5:1/0");
    EXPECT_WINDOW(d, now, 7 * 24 * HOUR_MS, "a>d2:1/0 a>future:1/0 a>h2:1/0 a>m30:1/0 a>m5:1/0");
    /* a window in the past: 8:00-8:40 holds the hour 08:00-09:00 whole */
    EXPECT_WINDOW(d, T0 - 2 * HOUR_MS + 40 * MIN_MS, 40 * MIN_MS, "a>h2:1/0");
    /* the minute edges: [now - 30 min, now - 29 min) is m30's minute */
    EXPECT_WINDOW(d, now - 30 * MIN_MS, 0, "a>m30:1/0");
    EXPECT_WINDOW(d, now - 29 * MIN_MS - 1, 0, "a>m30:1/0");
    EXPECT_WINDOW(d, now - 31 * MIN_MS, MIN_MS - 1, "");

    /* an hour and a half later, a span lands in m30's minute slot: m30 goes to its hour */
    now += 90 * MIN_MS; /* 12:00 */
    set_now(now);
    add1(d, mk(6, 10, 1, C, "a", "m30", false, now));
    EXPECT_WINDOW(d, now, 0, "a>m30:1/0");
    EXPECT_WINDOW(d, now, 3 * HOUR_MS, "a>future:1/0 a>m30:2/0 a>m5:1/0");
    col_deps_stats_t st;
    col_deps_stats(d, &st);
    assert_int_equal(st.too_old, 0);

    /* a client counted alone 2 hours ago whose server arrives now: taken over in its hour */
    add1(d, mk(7, 10, 1, C, "a", "alias", false, now - 2 * HOUR_MS));
    EXPECT_WINDOW(d, now, 3 * HOUR_MS, "a>alias:1/0 a>future:1/0 a>m30:2/0 a>m5:1/0");
    add1(d, mk(7, 11, 10, S, "b", NULL, false, now));
    EXPECT_WINDOW(d, now, 3 * HOUR_MS, "a>b:1/0 a>future:1/0 a>m30:2/0 a>m5:1/0");

    /* past the retention (7 days): gone from the answers, and late spans are too old */
    now += 8 * 24 * HOUR_MS;
    set_now(now);
    EXPECT_WINDOW(d, now, 30 * 24 * HOUR_MS, "");
    add1(d, mk(8, 10, 1, C, "a", "late", false, now - 7 * 24 * HOUR_MS - 2 * HOUR_MS));
    add1(d, mk(9, 10, 1, C, "a", "kept", false, now - 7 * 24 * HOUR_MS + 2 * HOUR_MS));
    EXPECT_WINDOW(d, now, 30 * 24 * HOUR_MS, "a>kept:1/0");
    col_deps_stats(d, &st);
    assert_int_equal(st.too_old, 1);
    col_deps_free(d);
}

static void test_bounds(void **state)
{
    (void)state;
    /* the ring: 4 spans; the oldest is forgotten first */
    col_deps_t *d = new_deps(4, 0, 0);
    add1(d, mk(1, 10, 1, C, "a", NULL, false, 0));
    for (uint32_t i = 0; i < 4; i++) add1(d, mk(100 + i, 5, 0, I, "x", NULL, false, 0));
    add1(d, mk(1, 11, 10, S, "b", NULL, false, 0)); /* its client was forgotten */
    EXPECT(d, "");
    add1(d, mk(2, 10, 1, C, "a", NULL, false, 0));
    add1(d, mk(2, 11, 10, S, "b", NULL, false, 0));
    EXPECT(d, "a>b:1/0");
    /* a waiting server forgotten before its client comes */
    add1(d, mk(3, 11, 10, S, "b", NULL, false, 0));
    for (uint32_t i = 0; i < 4; i++) add1(d, mk(200 + i, 5, 0, I, "x", NULL, false, 0));
    add1(d, mk(3, 10, 1, C, "a", NULL, false, 0));
    EXPECT(d, "a>b:1/0");
    col_deps_stats_t st;
    col_deps_stats(d, &st);
    assert_int_equal(st.spans, 4);
    assert_int_equal(st.evicted, 14 - 4); /* 14 spans through a ring of 4 */
    col_deps_free(d);

    /* edges per bucket: 2; a third edge in the same minute is dropped, counted */
    d = new_deps(0, 2, 0);
    add1(d, mk(1, 10, 1, C, "a", "x", false, 0));
    add1(d, mk(2, 10, 1, C, "a", "y", false, 0));
    add1(d, mk(3, 10, 1, C, "a", "z", false, 0));
    add1(d, mk(4, 10, 1, C, "a", "x", false, 0)); /* an existing edge still counts */
    EXPECT(d, "a>x:2/0 a>y:1/0");
    col_deps_stats(d, &st);
    assert_int_equal(st.calls_dropped, 1);
    assert_int_equal(st.edges, 2);
    /* the next minute is another bucket */
    set_now(T0 + MIN_MS);
    add1(d, mk(5, 10, 1, C, "a", "z", false, 0));
    EXPECT(d, "a>x:2/0 a>y:1/0 a>z:1/0");
    col_deps_free(d);

    /* names: at most 2 held */
    set_now(T0);
    d = new_deps(2, 0, 2);
    add1(d, mk(1, 10, 1, C, "a", "b", false, 0));
    add1(d, mk(2, 10, 1, C, "c", "d", false, 0)); /* no room for c */
    col_deps_stats(d, &st);
    assert_int_equal(st.names, 2);
    assert_int_equal(st.names_dropped, 1);
    EXPECT(d, "a>b:1/0");
    /* a too long name is not linked either */
    char longname[COL_DEPS_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    add1(d, mk(3, 10, 1, C, longname, "b", false, 0));
    col_deps_stats(d, &st);
    assert_int_equal(st.names_dropped, 2);
    /* a name held by nothing any more (its spans forgotten, its buckets expired) is freed */
    set_now(T0 + 8 * 24 * HOUR_MS);
    add1(d, mk(4, 5, 0, I, "a", NULL, false, 0));
    add1(d, mk(5, 5, 0, I, "a", NULL, false, 0));
    col_deps_stats(d, &st);
    assert_int_equal(st.names, 1);
    assert_int_equal(st.buckets, 0);
    add1(d, mk(6, 10, 1, C, "a", "z", false, 0));
    EXPECT(d, "a>z:1/0");
    col_deps_free(d);

    /* out-of-range configuration */
    col_deps_conf_t c;
    col_deps_t *bad = (col_deps_t *)1;
    col_deps_conf_init(&c);
    c.max_spans = 1;
    assert_int_equal(col_deps_new(&c, &bad), WEFT_EINVAL);
    assert_null(bad);
    col_deps_conf_init(&c);
    c.retention_ms = 1000;
    assert_int_equal(col_deps_new(&c, &bad), WEFT_EINVAL);
    col_deps_conf_init(&c);
    c.max_edges = 0;
    assert_int_equal(col_deps_new(&c, &bad), WEFT_EINVAL);
    assert_int_equal(col_deps_new(NULL, &bad), 0); /* the defaults */
    col_deps_free(bad);
    col_deps_free(NULL);
}

/* A small ring has few hash chains: children waiting for different parents share them, and
 * each parent must take only its own. */
static void test_shared_chains(void **state)
{
    (void)state;
    col_deps_t *d = new_deps(16, 0, 0);
    for (uint32_t i = 0; i < 15; i++) add1(d, mk(1, 200 + i, 100 + i, S, "b", NULL, false, 0));
    for (uint32_t i = 0; i < 15; i++) {
        add1(d, mk(1, 100 + i, 1, C, "a", NULL, false, 0));
        char want[64];
        snprintf(want, sizeof want, "a>b:%u/0", i + 1);
        EXPECT(d, want);
    }
    col_deps_free(d);
}

static char g_dir[256];

static int setup_dir(void **state)
{
    (void)state;
    set_now(T0);
    snprintf(g_dir, sizeof g_dir, "/tmp/weft-test-deps-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    DIR *dir = opendir(g_dir);
    struct dirent *e;
    char p[512];
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    if (dir) closedir(dir);
    rmdir(g_dir);
    return 0;
}

static size_t dir_entries(void)
{
    DIR *dir = opendir(g_dir);
    assert_non_null(dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n;
}

/* A graph with minute and hour buckets, errors, and a client awaiting its server. */
static col_deps_t *sample_graph(void)
{
    col_deps_t *d = new_deps(0, 0, 0);
    uint64_t now = test_now(NULL);
    add1(d, mk(1, 10, 1, C, "a", NULL, true, now - 3 * MIN_MS));
    add1(d, mk(1, 11, 10, S, "b", NULL, false, now - 3 * MIN_MS));
    add1(d, mk(2, 10, 1, C, "b", "mysql", false, now - 40 * MIN_MS));
    add1(d, mk(3, 10, 1, C, "b", "mysql", true, now - 5 * HOUR_MS));
    add1(d, mk(4, 1, 0, S, "a", "browser", false, now - 50 * HOUR_MS));
    return d;
}

static void test_save_load(void **state)
{
    (void)state;
    col_deps_t *d = sample_graph();
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/deps.bin", g_dir);
    assert_int_equal(col_deps_save(d, path, err, sizeof err), 0);
    assert_int_equal(dir_entries(), 1); /* no temporary file left behind */
    /* saving again replaces it */
    assert_int_equal(col_deps_save(d, path, err, sizeof err), 0);
    assert_int_equal(dir_entries(), 1);

    col_deps_t *e = new_deps(0, 0, 0);
    assert_int_equal(col_deps_load(e, path, err, sizeof err), 0);
    static const uint64_t windows[] = {0,       2 * MIN_MS,  10 * MIN_MS,
                                       HOUR_MS, 6 * HOUR_MS, 7 * 24 * HOUR_MS};
    uint64_t now = test_now(NULL);
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
        char a[512], b[512];
        links_str(d, now, windows[i], a, sizeof a);
        links_str(e, now, windows[i], b, sizeof b);
        assert_string_equal(a, b);
    }
    EXPECT_WINDOW(e, now, 7 * 24 * HOUR_MS, "a>b:1/1 b>mysql:2/1 browser>a:1/0");
    EXPECT_WINDOW(e, now, 10 * MIN_MS, "a>b:1/1");

    /* the spans remembered for matching are not saved: a late server is not linked */
    add1(e, mk(2, 11, 10, S, "mysql-real", NULL, false, 0));
    add1(d, mk(2, 11, 10, S, "mysql-real", NULL, false, 0));
    EXPECT_WINDOW(d, now, HOUR_MS, "a>b:1/1 b>mysql-real:1/0");
    EXPECT_WINDOW(e, now, HOUR_MS, "a>b:1/1 b>mysql:1/0");

    /* loaded two hours later: the minutes went into their hours, the window still sees them */
    col_deps_t *f = new_deps(0, 0, 0);
    set_now(now + 2 * HOUR_MS);
    assert_int_equal(col_deps_load(f, path, err, sizeof err), 0);
    EXPECT_WINDOW(f, now + 2 * HOUR_MS, 3 * HOUR_MS, "a>b:1/1 b>mysql:1/0");
    /* and eight days later, nothing is left of it */
    col_deps_t *g = new_deps(0, 0, 0);
    set_now(now + 8 * 24 * HOUR_MS);
    assert_int_equal(col_deps_load(g, path, err, sizeof err), 0);
    EXPECT_WINDOW(g, now + 8 * 24 * HOUR_MS, 30 * 24 * HOUR_MS, "");

    /* an empty graph saves and loads */
    col_deps_t *h = new_deps(0, 0, 0);
    assert_int_equal(col_deps_save(h, path, err, sizeof err), 0);
    assert_int_equal(col_deps_load(h, path, err, sizeof err), 0);
    EXPECT(h, "");

    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/missing/deps.bin", g_dir);
    assert_int_equal(col_deps_save(d, path, err, sizeof err), WEFT_ENOENT);
    assert_non_null(strstr(err, "missing/deps.bin"));
    col_deps_free(d);
    col_deps_free(e);
    col_deps_free(f);
    col_deps_free(g);
    col_deps_free(h);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 20);
    assert_non_null(buf);
    *n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Rewrites the CRC after a change, so that the content's own checks are what refuses it. */
static void fix_crc(uint8_t *p, size_t n)
{
    uint32_t c = (uint32_t)crc32(0L, p, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) p[n - 4 + i] = (uint8_t)(c >> (8 * i));
}

static void expect_refused(const char *path, const uint8_t *p, size_t n, const char *why)
{
    write_file(path, p, n);
    col_deps_t *d = new_deps(0, 0, 0);
    add1(d, mk(1, 10, 1, C, "x", "y", false, 0));
    char err[512] = "";
    int rc = col_deps_load(d, path, err, sizeof err);
    if (rc != WEFT_EPARSE || !strstr(err, why) || !strstr(err, path))
        fail_msg("want %s, got %d: %s", why, rc, err);
    EXPECT_WINDOW(d, test_now(NULL), 30 * 24 * HOUR_MS, "x>y:1/0"); /* nothing of it added */
    col_deps_free(d);
}

static void test_corrupt_file(void **state)
{
    (void)state;
    col_deps_t *d = sample_graph();
    char path[512], bad[512], err[512];
    snprintf(path, sizeof path, "%s/deps.bin", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", g_dir);
    assert_int_equal(col_deps_save(d, path, err, sizeof err), 0);
    col_deps_free(d);
    size_t n;
    uint8_t *good = read_file(path, &n);
    uint8_t *p = malloc(n);
    assert_non_null(p);

    /* no file: a first start */
    d = new_deps(0, 0, 0);
    assert_int_equal(col_deps_load(d, bad, err, sizeof err), WEFT_ENOENT);
    col_deps_free(d);

    /* a flipped bit anywhere */
    for (size_t i = 8; i < n; i += 7) {
        memcpy(p, good, n);
        p[i] ^= 0x10;
        expect_refused(bad, p, n, "checksum");
    }
    /* cut short anywhere */
    for (size_t cut = 1; cut < n; cut += 5) {
        memcpy(p, good, n);
        expect_refused(bad, p, cut, cut < 24 ? "bytes" : "checksum");
    }
    /* another file entirely */
    memcpy(p, good, n);
    memcpy(p, "NOTDEPS!", 8);
    expect_refused(bad, p, n, "not a dependency graph file");
    /* a later version */
    memcpy(p, good, n);
    p[8] = 2;
    fix_crc(p, n);
    expect_refused(bad, p, n, "version 2");
    /* with a good CRC over bad content: the first name's length 0 */
    memcpy(p, good, n);
    p[16] = 0;
    p[17] = 0;
    fix_crc(p, n);
    expect_refused(bad, p, n, "name 0: length 0");
    /* the last edge's errors above its calls (the last 4 + 8 bytes before the CRC) */
    memcpy(p, good, n);
    p[n - 4 - 8] = 0xff;
    fix_crc(p, n);
    expect_refused(bad, p, n, "more errors than calls");
    /* the last edge's child: a name index out of range */
    memcpy(p, good, n);
    p[n - 4 - 16 - 4 + 3] = 0x7f;
    fix_crc(p, n);
    expect_refused(bad, p, n, "name index out of range");
    /* bytes after the end (CRC'd) */
    uint8_t *longer = malloc(n + 3);
    assert_non_null(longer);
    memcpy(longer, good, n - 4);
    memset(longer + n - 4, 0, 3);
    fix_crc(longer, n + 3);
    expect_refused(bad, longer, n + 3, "3 bytes after the end");
    free(longer);

    /* the good file still loads */
    d = new_deps(0, 0, 0);
    assert_int_equal(col_deps_load(d, path, err, sizeof err), 0);
    EXPECT_WINDOW(d, test_now(NULL), 7 * 24 * HOUR_MS, "a>b:1/1 b>mysql:2/1 browser>a:1/0");
    col_deps_free(d);
    free(p);
    free(good);
}

/* Several threads add RPCs (each side in its own batch, the server first half the time),
 * another queries and saves meanwhile; every call is counted exactly once. */
#define THREADS 4
#define RPCS    3000

static col_deps_t *g_shared;
static char g_save_path[512];

static const char *const g_callers[THREADS] = {"t0", "t1", "t2", "t3"};

static void *adder(void *arg)
{
    uint32_t t = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < RPCS; i++) {
        uint32_t trace = t * 1000000 + i + 1;
        col_span_t client = mk(trace, 10, 1, C, g_callers[t], NULL, i % 3 == 0, 0);
        col_span_t server = mk(trace, 11, 10, S, "shared-callee", NULL, false, 0);
        if (i % 2) {
            add1(g_shared, client);
            add1(g_shared, server);
        } else {
            add1(g_shared, server);
            add1(g_shared, client);
        }
        col_span_t db = mk(trace, 12, 11, C, "shared-callee", "db", false, 0);
        add1(g_shared, db);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    weft_arena_t a;
    weft_arena_init(&a, 4096, 1u << 24);
    char err[512];
    for (int i = 0; i < 50; i++) {
        col_dep_link_t *l;
        size_t n;
        assert_int_equal(col_deps_links(g_shared, test_now(NULL), HOUR_MS, &a, &l, &n), 0);
        assert_true(n <= THREADS + 1);
        weft_arena_reset(&a);
        if (i % 10 == 0) assert_int_equal(col_deps_save(g_shared, g_save_path, err, sizeof err), 0);
        col_deps_stats_t st;
        col_deps_stats(g_shared, &st);
    }
    weft_arena_free(&a);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    g_shared = new_deps(1 << 16, 0, 0);
    snprintf(g_save_path, sizeof g_save_path, "%s/threads.bin", g_dir);
    pthread_t th[THREADS + 1];
    for (uintptr_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, adder, (void *)t), 0);
    assert_int_equal(pthread_create(&th[THREADS], NULL, reader, NULL), 0);
    for (int t = 0; t <= THREADS; t++) pthread_join(th[t], NULL);
    char want[512];
    snprintf(want, sizeof want,
             "shared-callee>db:%d/0 t0>shared-callee:%d/%d t1>shared-callee:%d/%d "
             "t2>shared-callee:%d/%d t3>shared-callee:%d/%d",
             THREADS * RPCS, RPCS, RPCS / 3, RPCS, RPCS / 3, RPCS, RPCS / 3, RPCS, RPCS / 3);
    EXPECT(g_shared, want);
    col_deps_stats_t st;
    col_deps_stats(g_shared, &st);
    assert_int_equal(st.evicted, 0);
    assert_int_equal(st.spans, THREADS * RPCS * 3);
    /* the file saved meanwhile is whole */
    col_deps_t *e = new_deps(0, 0, 0);
    char err[512];
    assert_int_equal(col_deps_load(e, g_save_path, err, sizeof err), 0);
    col_deps_free(e);
    col_deps_free(g_shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_client_server_both_orders, setup),
        cmocka_unit_test_setup(test_client_remote_then_server, setup),
        cmocka_unit_test_setup(test_chain, setup),
        cmocka_unit_test_setup(test_errors, setup),
        cmocka_unit_test_setup(test_uninstrumented, setup),
        cmocka_unit_test_setup(test_shared_spans, setup),
        cmocka_unit_test_setup(test_same_service, setup),
        cmocka_unit_test_setup(test_messaging_and_missing_link, setup),
        cmocka_unit_test_setup(test_lookback, setup),
        cmocka_unit_test_setup(test_bounds, setup),
        cmocka_unit_test_setup(test_shared_chains, setup),
        cmocka_unit_test_setup_teardown(test_save_load, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_corrupt_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_threads, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
