/*
 * test_discovery.c - the discovery client (weft/discovery.h) against a fake Consul written
 * here: a weft HTTP server on the test's loop that answers /v1/health/service/NAME with
 * canned JSON and an X-Consul-Index, holds blocking queries (?index= the current index)
 * until the test changes the answer, and records what the agent endpoints receive; and
 * service instances, more weft servers on the same loop, that say who they are (/who) or
 * hold a request until the test lets it go (/hold). Everything runs on one loop on the test
 * thread; every wait runs the loop until an event (a callback, a count) happened, bounded
 * by a guard timer that fails the test instead of hanging it. Each test ends by closing the
 * client and the servers and checking that the loop closes with nothing left open.
 *
 * Covered: resolution (order, addresses from the node, tags, meta); the cache following
 * the blocking query without polling (request counts); round robin, least outstanding and
 * random; the call's timeout; a refused instance (retried on another; reported when
 * retries are off); broadcasts to one service and to every service, N answers and one
 * error; unknown services and an unreachable registry failing fast; stale instances kept
 * while the registry errs; an index that goes backwards; bounds (entries, calls, instances,
 * bodies); a first resolution past the call's deadline; cancel and close; the agent
 * operations (bodies, token, statuses); bad arguments.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "weft/discovery.h"
#include "weft/http.h"

static uv_loop_t loop;

/* ---- waiting for events ---- */

static bool guard_fired;
static uv_timer_t guard;

static void on_guard(uv_timer_t *t)
{
    guard_fired = true;
}

/* Runs the loop until cond() holds; 10 s without it fail the test. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        guard_fired = false;                                                                       \
        uv_timer_start(&guard, on_guard, 10000, 0);                                                \
        while (!(cond) && !guard_fired) uv_run(&loop, UV_RUN_ONCE);                                \
        uv_timer_stop(&guard);                                                                     \
        if (!(cond)) fail_msg("not within 10 s: %s", #cond);                                       \
    } while (0)

/* ---- the fake Consul ---- */

#define FAKE_SVCS 8
#define FAKE_HELD 64

typedef struct fsvc_s {
    char name[64];
    char *json; /* the health answer's body */
    int status; /* 200, or an error status to answer with */
    bool stall; /* hold even queries without an index */
} fsvc_t;

static struct {
    weft_http_server_t *srv;
    uint16_t port;
    uint64_t index; /* one index for everything, as the fake's simplification */
    fsvc_t svcs[FAKE_SVCS];
    unsigned nsvcs;
    weft_http_request_t *held[FAKE_HELD];
    unsigned nheld;
    unsigned health;     /* health requests received */
    unsigned blocking;   /* of them, with ?index= */
    unsigned unindexed;  /* of them, without */
    char *catalog;       /* /v1/catalog/services answer */
    int op_status;       /* the agent endpoints' answer */
    char op_target[256]; /* the last agent request's target */
    char op_body[4096];  /* and body */
    char op_token[128];  /* and X-Consul-Token */
    unsigned ops;
    bool shut;
} fk;

static fsvc_t *fake_find(const char *name, size_t len)
{
    for (unsigned i = 0; i < fk.nsvcs; i++)
        if (strlen(fk.svcs[i].name) == len && memcmp(fk.svcs[i].name, name, len) == 0)
            return &fk.svcs[i];
    return NULL;
}

static void fake_answer(weft_http_request_t *req, const fsvc_t *f)
{
    char idx[32];
    snprintf(idx, sizeof(idx), "%llu", (unsigned long long)fk.index);
    weft_http_response_header(req, "X-Consul-Index", idx);
    if (f && f->status != 200) {
        weft_http_respond(req, f->status, "text/plain", "broken", 6);
        return;
    }
    const char *body = f && f->json ? f->json : "[]";
    weft_http_respond(req, 200, "application/json", body, strlen(body));
}

static void fake_unhold(weft_http_request_t *req)
{
    for (unsigned i = 0; i < fk.nheld; i++)
        if (fk.held[i] == req) {
            fk.held[i] = fk.held[--fk.nheld];
            return;
        }
}

static void fake_held_event(weft_http_request_t *req, weft_http_event_t ev)
{
    fake_unhold(req);
    weft_str_t name = weft_http_request_param(req, "name");
    fake_answer(req, fake_find(name.base, name.len));
}

static uint64_t query_index(const weft_http_request_t *req, bool *have)
{
    const char *q = req->query.base;
    size_t n = req->query.len;
    *have = false;
    for (size_t i = 0; i + 6 <= n; i++)
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "index=", 6) == 0) {
            *have = true;
            return strtoull(q + i + 6, NULL, 10);
        }
    return 0;
}

static void fake_health(weft_http_request_t *req, void *arg)
{
    fk.health++;
    weft_str_t name = weft_http_request_param(req, "name");
    fsvc_t *f = fake_find(name.base, name.len);
    bool have;
    uint64_t idx = query_index(req, &have);
    if (have)
        fk.blocking++;
    else
        fk.unindexed++;
    if ((have && idx == fk.index) || (f && f->stall)) {
        assert_true(fk.nheld < FAKE_HELD);
        fk.held[fk.nheld++] = req;
        req->on_event = fake_held_event;
        return;
    }
    fake_answer(req, f);
}

/* Sets name's answer (NULL json: unknown), moves the index on and answers held queries. */
static void fake_set(const char *name, const char *json, int status)
{
    fsvc_t *f = fake_find(name, strlen(name));
    if (!f) {
        assert_true(fk.nsvcs < FAKE_SVCS);
        f = &fk.svcs[fk.nsvcs++];
        snprintf(f->name, sizeof(f->name), "%s", name);
    }
    free(f->json);
    f->json = json ? strdup(json) : NULL;
    f->status = status;
    fk.index++;
    while (fk.nheld) {
        weft_http_request_t *req = fk.held[--fk.nheld];
        weft_str_t n = weft_http_request_param(req, "name");
        fake_answer(req, fake_find(n.base, n.len));
    }
}

static void fake_catalog(weft_http_request_t *req, void *arg)
{
    const char *body = fk.catalog ? fk.catalog : "{}";
    weft_http_response_header(req, "X-Consul-Index", "1");
    weft_http_respond(req, 200, "application/json", body, strlen(body));
}

static void fake_agent(weft_http_request_t *req, void *arg)
{
    fk.ops++;
    snprintf(fk.op_target, sizeof(fk.op_target), "%.*s %.*s", (int)req->method.len,
             req->method.base, (int)req->target.len, req->target.base);
    snprintf(fk.op_body, sizeof(fk.op_body), "%.*s", (int)req->body.len,
             req->body.base ? req->body.base : "");
    weft_str_t tok = weft_http_request_header(req, "x-consul-token");
    snprintf(fk.op_token, sizeof(fk.op_token), "%.*s", (int)tok.len, tok.base ? tok.base : "");
    const char *body = fk.op_status == 200 ? "{}" : "{\"error\":\"nope\"}";
    weft_http_respond(req, fk.op_status, "application/json", body, strlen(body));
}

/* ---- service instances ---- */

#define INSTANCES 4

static struct inst_s {
    weft_http_server_t *srv;
    uint16_t port;
    char who[8];
    weft_http_request_t *held[16];
    unsigned nheld;
    unsigned served;
    bool failing;   /* /flaky answers 503 */
    unsigned flaky; /* /flaky requests received */
} inst[INSTANCES];

static void h_flaky(weft_http_request_t *req, void *arg)
{
    struct inst_s *in = arg;
    in->flaky++;
    if (in->failing)
        weft_http_respond(req, 503, "text/plain", "down", 4);
    else
        weft_http_respond(req, 200, "text/plain", in->who, strlen(in->who));
}

static void h_who(weft_http_request_t *req, void *arg)
{
    struct inst_s *in = arg;
    in->served++;
    weft_http_respond(req, 200, "text/plain", in->who, strlen(in->who));
}

static void held_event(weft_http_request_t *req, weft_http_event_t ev)
{
    struct inst_s *in = req->data;
    for (unsigned i = 0; i < in->nheld; i++)
        if (in->held[i] == req) in->held[i] = in->held[--in->nheld];
    weft_http_respond(req, 503, "text/plain", "bye", 3);
}

static void h_hold(weft_http_request_t *req, void *arg)
{
    struct inst_s *in = arg;
    assert_true(in->nheld < 16);
    in->held[in->nheld++] = req;
    req->data = in;
    req->on_event = held_event;
}

/* Lets instance i's held requests go (200 with its name). */
static void release(unsigned i)
{
    while (inst[i].nheld) {
        weft_http_request_t *req = inst[i].held[--inst[i].nheld];
        weft_http_respond(req, 200, "text/plain", inst[i].who, strlen(inst[i].who));
    }
}

static unsigned held_total(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < INSTANCES; i++) n += inst[i].nheld;
    return n;
}

static weft_http_server_t *server(const char *const *routes, weft_http_handler_fn *fns, void **args,
                                  size_t n, uint16_t *port)
{
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.shutdown_timeout_ms = 1000;
    weft_http_server_t *s;
    assert_int_equal(weft_http_server_new(&o, 1, &s), 0);
    for (size_t i = 0; i < n; i++) {
        weft_http_route_t r = {.handler = fns[i], .arg = args ? args[i] : NULL};
        const char *sp = strchr(routes[i], ' ');
        char method[8];
        snprintf(method, sizeof(method), "%.*s", (int)(sp - routes[i]), routes[i]);
        assert_int_equal(weft_http_server_route(s, method, sp + 1, &r), 0);
    }
    assert_int_equal(weft_http_server_bind(s, NULL, 0), 0);
    *port = weft_http_server_port(s);
    assert_int_equal(weft_http_server_attach(s, &loop, 0), 0);
    return s;
}

/* A loopback port nothing listens on. */
static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* One health entry's JSON: Service.Address empty when addr is "" (the node's is used). */
static char *entry(char *out, size_t cap, const char *svc, const char *id, const char *addr,
                   uint16_t port)
{
    snprintf(out, cap,
             "{\"Node\":{\"Node\":\"n1\",\"Address\":\"127.0.0.1\"},\"Service\":{\"ID\":\"%s\","
             "\"Service\":\"%s\",\"Address\":\"%s\",\"Port\":%u,\"Tags\":[\"v1\",\"blue\"],"
             "\"Meta\":{\"version\":\"1.2\"}},\"Checks\":[]}",
             id, svc, addr, port);
    return out;
}

/* The health answer for service svc with instances ids[0..n) on inst[idx[k]] (or on the
 * dead port when idx[k] is -1). */
static void set_instances(const char *svc, const char *const *ids, const int *idx, size_t n,
                          uint16_t dead)
{
    char body[8192] = "[", e[512];
    for (size_t k = 0; k < n; k++) {
        if (k) strcat(body, ",");
        uint16_t p = idx[k] < 0 ? dead : inst[idx[k]].port;
        strcat(body, entry(e, sizeof(e), svc, ids[k], k % 2 ? "" : "127.0.0.1", p));
    }
    strcat(body, "]");
    fake_set(svc, body, 200);
}

static int setup(void **state)
{
    memset(&fk, 0, sizeof(fk));
    fk.index = 10;
    fk.op_status = 200;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &guard);
    const char *routes[] = {
        "GET /v1/health/service/:name",   "GET /v1/catalog/services",
        "PUT /v1/agent/service/register", "PUT /v1/agent/service/deregister/:id",
        "PUT /v1/agent/check/update/:id", "GET /v1/agent/service/:id"};
    weft_http_handler_fn fns[] = {fake_health, fake_catalog, fake_agent,
                                  fake_agent,  fake_agent,   fake_agent};
    fk.srv = server(routes, fns, NULL, 6, &fk.port);
    for (unsigned i = 0; i < INSTANCES; i++) {
        memset(&inst[i], 0, sizeof(inst[i]));
        snprintf(inst[i].who, sizeof(inst[i].who), "i%u", i);
        const char *r[] = {"GET /who", "GET /hold", "GET /flaky", "POST /flaky"};
        weft_http_handler_fn f[] = {h_who, h_hold, h_flaky, h_flaky};
        void *a[] = {&inst[i], &inst[i], &inst[i], &inst[i]};
        inst[i].srv = server(r, f, a, 4, &inst[i].port);
    }
    return 0;
}

static weft_discovery_t *cur; /* the test's client, closed by teardown if a test failed */
static void close_client(weft_discovery_t *d);

static unsigned shut_left;
static void on_shut(void *arg)
{
    shut_left--;
}

static int teardown(void **state)
{
    if (cur) close_client(cur); /* a test that failed half-way */
    shut_left = 1 + INSTANCES;
    weft_http_server_shutdown(fk.srv, 0, on_shut, NULL);
    for (unsigned i = 0; i < INSTANCES; i++)
        weft_http_server_shutdown(inst[i].srv, 0, on_shut, NULL);
    RUN_UNTIL(shut_left == 0);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    weft_http_server_free(fk.srv);
    for (unsigned i = 0; i < INSTANCES; i++) weft_http_server_free(inst[i].srv);
    for (unsigned i = 0; i < fk.nsvcs; i++) free(fk.svcs[i].json);
    free(fk.catalog);
    return 0;
}

/* ---- the client under test ---- */

static char registry[64];

static weft_discovery_t *client(weft_discovery_options_t *o)
{
    weft_discovery_options_t d;
    if (!o) {
        weft_discovery_options_init(&d);
        o = &d;
    }
    o->loop = &loop;
    snprintf(registry, sizeof(registry), "http://127.0.0.1:%u", fk.port);
    if (!o->registry) o->registry = registry;
    weft_discovery_t *c;
    assert_int_equal(weft_discovery_new(o, &c), 0);
    cur = c;
    return c;
}

static bool closed;
static void on_closed(void *arg)
{
    closed = true;
}

static void close_client(weft_discovery_t *d)
{
    cur = NULL;
    closed = false;
    weft_discovery_close(d, on_closed, NULL);
    RUN_UNTIL(closed);
}

/* What a callback got. */
typedef struct res_s {
    bool done;
    int err, status;
    char instance[64], body[256], ctype[64];
    unsigned attempts;
    uint64_t t_ns; /* when it ran */
} res_t;

static void on_result(const weft_discovery_result_t *r, void *arg)
{
    res_t *x = arg;
    assert_false(x->done);
    x->done = true;
    x->err = r->err;
    x->status = r->status;
    x->attempts = r->attempts;
    x->t_ns = weft_now_ns();
    snprintf(x->instance, sizeof(x->instance), "%s", r->instance);
    snprintf(x->body, sizeof(x->body), "%.*s", (int)r->body_len, r->body);
    assert_int_equal(r->body[r->body_len], 0);
    for (size_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].name.len == 12 &&
            strncasecmp(r->headers[i].name.base, "content-type", 12) == 0)
            snprintf(x->ctype, sizeof(x->ctype), "%.*s", (int)r->headers[i].value.len,
                     r->headers[i].value.base);
}

static res_t call(weft_discovery_t *d, const char *svc, const char *target, uint64_t timeout_ms)
{
    res_t x = {0};
    weft_discovery_req_t r = {.service = svc, .target = target, .timeout_ms = timeout_ms};
    assert_int_equal(weft_discovery_call(d, &r, on_result, &x, NULL), 0);
    assert_false(x.done); /* never from inside the call */
    RUN_UNTIL(x.done);
    return x;
}

typedef struct resolved_s {
    bool done;
    int err;
    size_t n;
    char ids[8][32], addrs[8][32];
    uint16_t ports[8];
    char tags[64], meta[64];
} resolved_t;

static void on_resolved(int err, const weft_discovery_instance_t *in, size_t n, void *arg)
{
    resolved_t *x = arg;
    x->done = true;
    x->err = err;
    x->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(x->ids[i], sizeof(x->ids[i]), "%s", in[i].id);
        snprintf(x->addrs[i], sizeof(x->addrs[i]), "%s", in[i].address);
        x->ports[i] = in[i].port;
    }
    if (n) {
        x->tags[0] = 0;
        for (size_t t = 0; t < in[0].ntags; t++) {
            strcat(x->tags, in[0].tags[t]);
            strcat(x->tags, ";");
        }
        snprintf(x->meta, sizeof(x->meta), "%s=%s", in[0].nmeta ? in[0].meta[0].key : "",
                 in[0].nmeta ? in[0].meta[0].value : "");
    }
}

static resolved_t resolve(weft_discovery_t *d, const char *svc)
{
    resolved_t x = {0};
    assert_int_equal(weft_discovery_resolve(d, svc, on_resolved, &x, NULL), 0);
    assert_false(x.done);
    RUN_UNTIL(x.done);
    return x;
}

/* ---- tests ---- */

static void test_resolve(void **state)
{
    const char *ids[] = {"web-b", "web-a"};
    const int idx[] = {1, 0};
    set_instances("web", ids, idx, 2, 0);
    weft_discovery_t *d = client(NULL);
    resolved_t r = resolve(d, "web");
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ids[0], "web-a"); /* sorted by ID */
    assert_string_equal(r.ids[1], "web-b");
    assert_int_equal(r.ports[0], inst[0].port);
    assert_string_equal(r.addrs[0], "127.0.0.1"); /* from the node: Service.Address "" */
    assert_string_equal(r.addrs[1], "127.0.0.1");
    assert_string_equal(r.tags, "v1;blue;");
    assert_string_equal(r.meta, "version=1.2");
    /* the second comes from the cache: no new query beyond the parked one */
    RUN_UNTIL(fk.nheld == 1);
    unsigned before = fk.health;
    r = resolve(d, "web");
    assert_int_equal(r.n, 2);
    assert_int_equal(fk.health, before);
    close_client(d);
}

static void test_cache_follows_blocking_query(void **state)
{
    const char *ids[] = {"a", "b", "c"};
    const int idx[] = {0, 1, 2};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_t *d = client(NULL);
    assert_int_equal(resolve(d, "web").n, 1);
    RUN_UNTIL(fk.nheld == 1); /* the blocking query is parked */
    assert_int_equal(fk.health, 2);
    assert_int_equal(fk.blocking, 1);
    /* a change answers the parked query; the client parks the next one at once */
    set_instances("web", ids, idx, 3, 0);
    RUN_UNTIL(fk.nheld == 1 && fk.health == 3);
    resolved_t r = resolve(d, "web");
    assert_int_equal(r.n, 3);
    assert_string_equal(r.ids[2], "c");
    assert_int_equal(fk.health, 3); /* nothing polled: three queries for two answers */
    weft_discovery_stats_t st = weft_discovery_stats(d);
    assert_int_equal(st.queries, 3);
    assert_int_equal(st.updates, 2);
    assert_int_equal(st.query_errors, 0);
    assert_int_equal(st.services, 1);
    /* an instance leaving is seen the same way */
    set_instances("web", ids, idx, 2, 0);
    RUN_UNTIL(fk.nheld == 1 && fk.health == 4);
    assert_int_equal(resolve(d, "web").n, 2);
    close_client(d);
}

static void test_round_robin(void **state)
{
    const char *ids[] = {"w1", "w2", "w3"};
    const int idx[] = {0, 1, 2};
    set_instances("web", ids, idx, 3, 0);
    weft_discovery_t *d = client(NULL);
    const char *want[] = {"i0", "i1", "i2", "i0", "i1", "i2"};
    for (int i = 0; i < 6; i++) {
        res_t x = call(d, "web", "/who", 0);
        assert_int_equal(x.err, 0);
        assert_int_equal(x.status, 200);
        assert_string_equal(x.body, want[i]);
        assert_string_equal(x.instance, ids[i % 3]);
        assert_string_equal(x.ctype, "text/plain");
        assert_int_equal(x.attempts, 1);
    }
    close_client(d);
}

static void test_least_outstanding(void **state)
{
    const char *ids[] = {"w1", "w2", "w3"};
    const int idx[] = {0, 1, 2};
    set_instances("web", ids, idx, 3, 0);
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.policy = WEFT_DISCOVERY_LEAST_OUTSTANDING;
    weft_discovery_t *d = client(&o);
    res_t x[5] = {{0}};
    weft_discovery_req_t r = {.service = "web", .target = "/hold"};
    /* three held calls: one each (ties go round robin) */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_discovery_call(d, &r, on_result, &x[i], NULL), 0);
        RUN_UNTIL(held_total() == (unsigned)i + 1);
    }
    assert_int_equal(inst[0].nheld + inst[1].nheld + inst[2].nheld, 3);
    assert_int_equal(inst[0].nheld, 1);
    assert_int_equal(inst[1].nheld, 1);
    /* w2 is done: it has the fewest outstanding, twice in a row */
    release(1);
    RUN_UNTIL(x[1].done);
    assert_string_equal(x[1].instance, "w2");
    assert_int_equal(weft_discovery_call(d, &r, on_result, &x[3], NULL), 0);
    RUN_UNTIL(inst[1].nheld == 1);
    release(2); /* now w3 has none, w1 one, w2 one */
    RUN_UNTIL(x[2].done);
    assert_int_equal(weft_discovery_call(d, &r, on_result, &x[4], NULL), 0);
    RUN_UNTIL(inst[2].nheld == 1);
    for (unsigned i = 0; i < 3; i++) release(i);
    RUN_UNTIL(x[0].done && x[3].done && x[4].done);
    assert_string_equal(x[0].instance, "w1");
    assert_string_equal(x[3].instance, "w2");
    assert_string_equal(x[4].instance, "w3");
    close_client(d);
}

static void test_random(void **state)
{
    const char *ids[] = {"w1", "w2", "w3"};
    const int idx[] = {0, 1, 2};
    set_instances("web", ids, idx, 3, 0);
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.policy = WEFT_DISCOVERY_RANDOM;
    weft_discovery_t *d = client(&o);
    for (int i = 0; i < 60; i++) assert_int_equal(call(d, "web", "/who", 0).err, 0);
    for (int i = 0; i < 3; i++) assert_true(inst[i].served > 0);
    assert_int_equal(inst[0].served + inst[1].served + inst[2].served, 60);
    close_client(d);
}

static res_t call_req(weft_discovery_t *d, const weft_discovery_req_t *r)
{
    res_t x = {0};
    assert_int_equal(weft_discovery_call(d, r, on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    return x;
}

/* A 503 is retried on another instance for an idempotent method, not for POST unless the
 * request says so; the retry never goes back to the instance that failed. */
static void test_retry_5xx(void **state)
{
    const char *ids[] = {"w1", "w2"};
    const int idx[] = {0, 1};
    set_instances("web", ids, idx, 2, 0);
    inst[0].failing = true;
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.breaker = false;
    weft_discovery_t *d = client(&o);
    weft_discovery_req_t get = {.service = "web", .target = "/flaky"};
    res_t x = call_req(d, &get); /* w1 (503), then w2 */
    assert_int_equal(x.err, 0);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.instance, "w2");
    assert_int_equal(x.attempts, 2);
    assert_int_equal(inst[0].flaky, 1);
    /* round robin comes back to w1 first: POST is not retried */
    weft_discovery_req_t post = {.service = "web", .method = "POST", .target = "/flaky"};
    x = call_req(d, &post);
    assert_int_equal(x.status, 503);
    assert_string_equal(x.body, "down");
    assert_string_equal(x.instance, "w1");
    assert_int_equal(x.attempts, 1);
    x = call_req(d, &get); /* w2 at once */
    assert_int_equal(x.attempts, 1);
    post.retry_any_method = true;
    x = call_req(d, &post);
    assert_int_equal(x.status, 200);
    assert_int_equal(x.attempts, 2);
    /* both failing: the last answer (w2's 503) is the result, each tried once */
    inst[1].failing = true;
    unsigned before = inst[0].flaky + inst[1].flaky;
    x = call_req(d, &get);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.status, 503);
    assert_int_equal(x.attempts, 2);
    assert_int_equal(inst[0].flaky + inst[1].flaky, before + 2);
    /* 5xx off: a 503 is the result */
    close_client(d);
    o.retry_on = WEFT_DISCOVERY_RETRY_CONNECT;
    d = client(&o);
    x = call_req(d, &get);
    assert_int_equal(x.status, 503);
    assert_int_equal(x.attempts, 1);
    close_client(d);
}

/* A budget that admits no retry: the first answer is the result, and it is counted. */
static void test_retry_budget(void **state)
{
    const char *ids[] = {"w1", "w2"};
    const int idx[] = {0, 1};
    set_instances("web", ids, idx, 2, 0);
    inst[0].failing = inst[1].failing = true;
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.breaker = false;
    o.retry_budget_percent = 0;
    o.retry_budget_min = 0;
    weft_discovery_t *d = client(&o);
    weft_discovery_req_t get = {.service = "web", .target = "/flaky"};
    for (int i = 0; i < 3; i++) {
        res_t x = call_req(d, &get);
        assert_int_equal(x.status, 503);
        assert_int_equal(x.attempts, 1);
    }
    weft_discovery_stats_t st = weft_discovery_stats(d);
    assert_int_equal(st.budget_exhausted, 3);
    assert_int_equal(st.retries, 0);
    close_client(d);
}

/* A call canceled while it waits out its backoff: ECANCELED at once, and the retry it held
 * (the budget's only one: meanwhile another call may not retry) is handed back. */
static void test_cancel_in_backoff(void **state)
{
    const char *ids[] = {"w1", "w2"};
    const int idx[] = {0, 1};
    set_instances("web", ids, idx, 2, 0);
    inst[0].failing = true;
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.breaker = false;
    /* a backoff drawn from [0, 3000 s] outlasts the test but for odds of 1 in 30,000 */
    o.backoff_base_ms = o.backoff_max_ms = 3000000;
    o.retry_budget_percent = 0;
    o.retry_budget_min = 1;
    weft_discovery_t *d = client(&o);
    weft_discovery_req_t get = {.service = "web", .target = "/flaky", .timeout_ms = 3600000};
    res_t x = {0};
    weft_discovery_call_t *c;
    assert_int_equal(weft_discovery_call(d, &get, on_result, &x, &c), 0);
    RUN_UNTIL(inst[0].flaky == 1);
    for (int i = 0; i < 20 && !x.done; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(x.done); /* waiting to retry on w2 */
    assert_int_equal(weft_discovery_stats(d).retries, 1);
    assert_int_equal(weft_discovery_stats(d).retries_active, 1);
    /* the budget's one retry is taken: another call's 503 (w2's, now failing too) is its
     * result */
    inst[1].failing = true;
    res_t y = call_req(d, &get);
    assert_int_equal(y.status, 503);
    assert_int_equal(y.attempts, 1);
    assert_int_equal(weft_discovery_stats(d).budget_exhausted, 1);
    weft_discovery_cancel(c);
    assert_true(x.done);
    assert_int_equal(x.err, WEFT_ECANCELED);
    assert_int_equal(weft_discovery_stats(d).retries_active, 0);
    close_client(d);
}

typedef struct brlog_s {
    unsigned n;
    weft_breaker_state_t from[16], to[16];
    weft_breaker_reason_t why[16];
} brlog_t;

static void on_brk(void *data, const char *service, const char *instance, weft_breaker_state_t from,
                   weft_breaker_state_t to, weft_breaker_reason_t why)
{
    brlog_t *l = data;
    assert_string_equal(service, "web");
    assert_string_equal(instance, "w1");
    if (l->n >= 16) return;
    l->from[l->n] = from;
    l->to[l->n] = to;
    l->why[l->n] = why;
    l->n++;
}

/* The only instance fails: its breaker opens and calls fail fast with WEFT_EBREAKER without
 * reaching it; after open_for a trial goes through and, the instance healthy again,
 * closes it. */
static void test_breaker_fail_fast(void **state)
{
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    inst[0].failing = true;
    brlog_t l = {0};
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.breaker_conf.consecutive_failures = 2;
    o.breaker_conf.open_for_ms = 200;
    o.breaker_conf.half_open_requests = 1;
    o.on_breaker = on_brk;
    o.on_breaker_data = &l;
    weft_discovery_t *d = client(&o);
    weft_discovery_req_t get = {.service = "web", .target = "/flaky"};
    for (int i = 0; i < 2; i++) assert_int_equal(call_req(d, &get).status, 503);
    res_t x = call_req(d, &get);
    assert_int_equal(x.err, WEFT_EBREAKER);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.attempts, 0);
    assert_string_equal(weft_err_name(x.err), "EBREAKER");
    assert_int_equal(inst[0].flaky, 2); /* nothing reached it */
    inst[0].failing = false;
    usleep(250 * 1000);
    uv_update_time(&loop);
    x = call_req(d, &get);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.status, 200);
    x = call_req(d, &get);
    assert_int_equal(x.status, 200);
    /* made, opened, half-opened, closed: in that order */
    assert_int_equal(l.n, 4);
    assert_int_equal(l.why[0], WEFT_BREAKER_NONE);
    assert_int_equal(l.from[1], WEFT_BREAKER_CLOSED);
    assert_int_equal(l.to[1], WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[1], WEFT_BREAKER_CONSECUTIVE_FAILURES);
    assert_int_equal(l.to[2], WEFT_BREAKER_HALF_OPEN);
    assert_int_equal(l.why[2], WEFT_BREAKER_OPEN_TIMEOUT);
    assert_int_equal(l.to[3], WEFT_BREAKER_CLOSED);
    assert_int_equal(l.why[3], WEFT_BREAKER_HALF_OPEN_SUCCESS);
    weft_discovery_stats_t st = weft_discovery_stats(d);
    assert_int_equal(st.breaker_failfast, 1);
    assert_int_equal(st.breaker_transitions, 3);
    assert_true(st.breaker_rejected >= 1);
    close_client(d);
}

/* An open breaker's instance is skipped while another is closed: no call fails. */
static void test_breaker_skips_instance(void **state)
{
    const char *ids[] = {"w1", "w2"};
    const int idx[] = {0, 1};
    set_instances("web", ids, idx, 2, 0);
    inst[0].failing = true;
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.breaker_conf.consecutive_failures = 2;
    o.breaker_conf.open_for_ms = 60000;
    weft_discovery_t *d = client(&o);
    weft_discovery_req_t get = {.service = "web", .target = "/flaky"};
    for (int i = 0; i < 20; i++) {
        res_t x = call_req(d, &get);
        assert_int_equal(x.status, 200);
        assert_string_equal(x.instance, "w2");
    }
    /* w1 saw its two failures (each retried on w2), then nothing */
    assert_int_equal(inst[0].flaky, 2);
    close_client(d);
}

static void test_call_timeout(void **state)
{
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_t *d = client(NULL);
    assert_int_equal(resolve(d, "web").n, 1);
    uint64_t t0 = weft_now_ns();
    res_t x = call(d, "web", "/hold", 300);
    uint64_t ms = (x.t_ns - t0) / 1000000;
    assert_int_equal(x.err, WEFT_ETIMEDOUT);
    assert_int_equal(x.status, 0);
    assert_string_equal(x.instance, "w1");
    if (!(ms >= 300 && ms < 1500)) fail_msg("the call ended after %llu ms", (unsigned long long)ms);
    close_client(d);
}

static void test_refused_instance(void **state)
{
    uint16_t dead = dead_port();
    const char *ids[] = {"w1-dead", "w2"};
    const int idx[] = {-1, 1};
    set_instances("web", ids, idx, 2, dead);
    /* with retries (the default), every call gets an answer */
    weft_discovery_t *d = client(NULL);
    for (int i = 0; i < 4; i++) {
        res_t x = call(d, "web", "/who", 0);
        assert_int_equal(x.err, 0);
        assert_string_equal(x.body, "i1");
        assert_string_equal(x.instance, "w2");
        /* round robin moves past the instance it took last (w2): the dead one comes first
         * every time, until the catalog stops listing it */
        assert_int_equal(x.attempts, 2);
    }
    assert_int_equal(weft_discovery_stats(d).retries, 4);
    close_client(d);
    /* without, the refusal is the answer */
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.retries = 0;
    d = client(&o);
    res_t x = call(d, "web", "/who", 0);
    assert_int_equal(x.err, -ECONNREFUSED);
    assert_string_equal(x.instance, "w1-dead");
    assert_int_equal(call(d, "web", "/who", 0).err, 0);
    assert_int_equal(weft_discovery_stats(d).call_errors, 1);
    close_client(d);
}

typedef struct bres_s {
    bool done;
    int err;
    size_t n;
    struct {
        int err, status;
        char service[32], instance[32], body[32];
    } r[8];
} bres_t;

static void on_bcast(int err, const weft_discovery_result_t *r, size_t n, void *arg)
{
    bres_t *x = arg;
    x->done = true;
    x->err = err;
    x->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        x->r[i].err = r[i].err;
        x->r[i].status = r[i].status;
        snprintf(x->r[i].service, sizeof(x->r[i].service), "%s", r[i].service);
        snprintf(x->r[i].instance, sizeof(x->r[i].instance), "%s", r[i].instance);
        snprintf(x->r[i].body, sizeof(x->r[i].body), "%.*s", (int)r[i].body_len, r[i].body);
    }
}

static bres_t broadcast(weft_discovery_t *d, const char *svc)
{
    bres_t x = {0};
    weft_discovery_req_t r = {.service = svc, .target = "/who"};
    assert_int_equal(weft_discovery_broadcast(d, &r, on_bcast, &x, NULL), 0);
    assert_false(x.done);
    RUN_UNTIL(x.done);
    return x;
}

static void test_broadcast(void **state)
{
    uint16_t dead = dead_port();
    const char *ids[] = {"w0", "w1", "w2", "w3-dead"};
    const int idx[] = {0, 1, 2, -1};
    set_instances("web", ids, idx, 4, dead);
    weft_discovery_t *d = client(NULL);
    bres_t x = broadcast(d, "web");
    assert_int_equal(x.err, 0);
    assert_int_equal(x.n, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x.r[i].err, 0);
        assert_int_equal(x.r[i].status, 200);
        assert_string_equal(x.r[i].service, "web");
        assert_string_equal(x.r[i].instance, ids[i]);
        char want[8];
        snprintf(want, sizeof(want), "i%d", i);
        assert_string_equal(x.r[i].body, want);
    }
    assert_int_equal(x.r[3].err, -ECONNREFUSED);
    assert_int_equal(x.r[3].status, 0);
    assert_string_equal(x.r[3].instance, "w3-dead");
    for (int i = 0; i < 3; i++) assert_int_equal(inst[i].served, 1);
    /* a service without passing instances */
    fake_set("none", "[]", 200);
    x = broadcast(d, "none");
    assert_int_equal(x.err, WEFT_ENOENT);
    assert_int_equal(x.n, 0);
    close_client(d);
}

static void test_broadcast_all(void **state)
{
    const char *w[] = {"w1", "w0"};
    const int wi[] = {1, 0};
    set_instances("web", w, wi, 2, 0);
    const char *a[] = {"api-1"};
    const int ai[] = {2};
    set_instances("api", a, ai, 1, 0);
    fake_set("empty", "[]", 200);
    fk.catalog = strdup("{\"web\":[\"v1\"],\"api\":[],\"empty\":[]}");
    weft_discovery_t *d = client(NULL);
    bres_t x = broadcast(d, "*");
    assert_int_equal(x.err, 0);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.r[0].service, "api");
    assert_string_equal(x.r[0].instance, "api-1");
    assert_string_equal(x.r[0].body, "i2");
    assert_string_equal(x.r[1].service, "web");
    assert_string_equal(x.r[1].instance, "w0");
    assert_string_equal(x.r[1].body, "i0");
    assert_string_equal(x.r[2].instance, "w1");
    assert_string_equal(x.r[2].body, "i1");
    assert_int_equal(weft_discovery_stats(d).services, 3);
    close_client(d);
}

static void test_unknown_service_fails_fast(void **state)
{
    weft_discovery_t *d = client(NULL);
    uint64_t t0 = weft_now_ns();
    res_t x = call(d, "nope", "/who", 5000);
    assert_int_equal(x.err, WEFT_ENOENT);
    assert_string_equal(x.instance, "");
    assert_true(x.t_ns - t0 < 1000000000ull);
    /* the entry keeps watching: when the service comes, calls reach it */
    RUN_UNTIL(fk.nheld == 1);
    const char *ids[] = {"n1"};
    const int idx[] = {3};
    set_instances("nope", ids, idx, 1, 0);
    RUN_UNTIL(fk.nheld == 1 && fk.health == 3);
    x = call(d, "nope", "/who", 0);
    assert_int_equal(x.err, 0);
    assert_string_equal(x.body, "i3");
    close_client(d);
}

static void test_registry_unreachable(void **state)
{
    char url[64];
    snprintf(url, sizeof(url), "127.0.0.1:%u", dead_port()); /* no scheme: http */
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.registry = url;
    weft_discovery_t *d = client(&o);
    uint64_t t0 = weft_now_ns();
    res_t x = call(d, "web", "/who", 5000);
    assert_int_equal(x.err, -ECONNREFUSED);
    assert_true(x.t_ns - t0 < 1000000000ull);
    /* a call during the backoff fails at once with the same error */
    x = call(d, "web", "/who", 5000);
    assert_int_equal(x.err, -ECONNREFUSED);
    assert_true(weft_discovery_stats(d).query_errors >= 1);
    close_client(d);
}

static void test_stale_instances_while_registry_errs(void **state)
{
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.retry_min_ms = 50;
    o.retry_max_ms = 100;
    weft_discovery_t *d = client(&o);
    assert_int_equal(resolve(d, "web").n, 1);
    RUN_UNTIL(fk.nheld == 1);
    fake_set("web", NULL, 500); /* the parked query gets a 500; so do the retries */
    RUN_UNTIL(weft_discovery_stats(d).query_errors >= 2);
    res_t x = call(d, "web", "/who", 0);
    assert_int_equal(x.err, 0);
    assert_string_equal(x.body, "i0");
    /* the registry comes back: the next retry picks the new answer up */
    const int idx2[] = {1};
    set_instances("web", ids, idx2, 1, 0);
    RUN_UNTIL(fk.nheld == 1);
    x = call(d, "web", "/who", 0);
    assert_string_equal(x.body, "i1");
    close_client(d);
}

static void test_index_backwards_starts_over(void **state)
{
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_t *d = client(NULL);
    assert_int_equal(resolve(d, "web").n, 1);
    RUN_UNTIL(fk.nheld == 1);
    assert_int_equal(fk.unindexed, 1);
    fk.index = 2; /* a registry that lost its state; fake_set makes it 3 */
    const int idx2[] = {1};
    set_instances("web", ids, idx2, 1, 0);
    RUN_UNTIL(fk.nheld == 1 && fk.unindexed == 2); /* asked again without an index */
    assert_string_equal(call(d, "web", "/who", 0).body, "i1");
    close_client(d);
}

static void test_bounds(void **state)
{
    const char *ids[] = {"x1", "x2", "x3"};
    const int idx[] = {0, 1, 2};
    set_instances("a", ids, idx, 3, 0);
    set_instances("b", ids, idx, 1, 0);
    set_instances("c", ids, idx, 1, 0);
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.max_services = 2;
    o.max_instances = 2;
    o.max_calls = 2;
    o.max_body = 1;
    weft_discovery_t *d = client(&o);
    resolved_t r = resolve(d, "a");
    assert_int_equal(r.n, 2); /* max_instances: the first two by ID */
    assert_string_equal(r.ids[1], "x2");
    assert_int_equal(resolve(d, "b").n, 1);
    assert_int_equal(resolve(d, "c").n, 1); /* drops a, the least recently used */
    weft_discovery_stats_t st = weft_discovery_stats(d);
    assert_int_equal(st.services, 2);
    assert_int_equal(st.evictions, 1);
    /* two held calls: max_calls, and both entries in use */
    res_t x[2] = {{0}};
    weft_discovery_req_t rb = {.service = "b", .target = "/hold"};
    weft_discovery_req_t rc = {.service = "c", .target = "/hold"};
    assert_int_equal(weft_discovery_call(d, &rb, on_result, &x[0], NULL), 0);
    assert_int_equal(weft_discovery_call(d, &rc, on_result, &x[1], NULL), 0);
    res_t y = {0};
    weft_discovery_req_t ra = {.service = "a", .target = "/who"};
    assert_int_equal(weft_discovery_call(d, &ra, on_result, &y, NULL), WEFT_ELIMIT);
    RUN_UNTIL(held_total() == 2);
    release(0);
    RUN_UNTIL(x[0].done && x[1].done);
    close_client(d);
    /* every entry in use: a new name cannot come in */
    weft_discovery_options_init(&o);
    o.max_services = 1;
    o.max_body = 1;
    d = client(&o);
    memset(&x[0], 0, sizeof(x[0]));
    assert_int_equal(weft_discovery_call(d, &rb, on_result, &x[0], NULL), 0);
    RUN_UNTIL(held_total() == 1);
    assert_int_equal(weft_discovery_call(d, &ra, on_result, &y, NULL), WEFT_ELIMIT);
    release(0);
    RUN_UNTIL(x[0].done);
    assert_int_equal(x[0].err, WEFT_ELIMIT); /* "i0" is over max_body 1 */
    close_client(d);
    assert_false(y.done);
}

static void test_first_resolution_past_deadline(void **state)
{
    fake_set("slow", "[]", 200);
    fk.svcs[0].stall = true;
    weft_discovery_t *d = client(NULL);
    uint64_t t0 = weft_now_ns();
    res_t x = call(d, "slow", "/who", 200);
    uint64_t ms = (x.t_ns - t0) / 1000000;
    assert_int_equal(x.err, WEFT_ETIMEDOUT);
    assert_true(ms >= 200 && ms < 1500);
    close_client(d);
}

static void test_cancel_and_close(void **state)
{
    fake_set("slow", "[]", 200);
    fk.svcs[0].stall = true;
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_t *d = client(NULL);
    res_t x = {0}, y = {0}, z = {0};
    weft_discovery_call_t *c;
    weft_discovery_req_t r = {.service = "slow", .target = "/who"};
    assert_int_equal(weft_discovery_call(d, &r, on_result, &x, &c), 0);
    RUN_UNTIL(fk.nheld == 1);
    weft_discovery_cancel(c);
    assert_true(x.done); /* before cancel returned */
    assert_int_equal(x.err, WEFT_ECANCELED);
    /* close: a call in flight and a waiting one end now */
    weft_discovery_req_t rw = {.service = "web", .target = "/hold"};
    assert_int_equal(weft_discovery_call(d, &rw, on_result, &y, NULL), 0);
    RUN_UNTIL(inst[0].nheld == 1);
    assert_int_equal(weft_discovery_call(d, &r, on_result, &z, NULL), 0);
    closed = false;
    cur = NULL;
    weft_discovery_close(d, on_closed, NULL);
    assert_true(y.done && z.done);
    assert_int_equal(y.err, WEFT_ECANCELED);
    assert_int_equal(z.err, WEFT_ECANCELED);
    assert_false(closed);
    RUN_UNTIL(closed);
}

static void on_cancel_other(const weft_discovery_result_t *r, void *arg)
{
    weft_discovery_call_t **other = arg;
    if (*other) weft_discovery_cancel(*other);
    *other = NULL;
}

static void test_cancel_from_a_callback(void **state)
{
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_t *d = client(NULL);
    res_t y = {0};
    weft_discovery_call_t *held = NULL;
    weft_discovery_req_t rh = {.service = "web", .target = "/hold"};
    assert_int_equal(weft_discovery_call(d, &rh, on_result, &y, &held), 0);
    weft_discovery_req_t rw = {.service = "web", .target = "/who"};
    assert_int_equal(weft_discovery_call(d, &rw, on_cancel_other, &held, NULL), 0);
    RUN_UNTIL(held == NULL);
    assert_true(y.done);
    assert_int_equal(y.err, WEFT_ECANCELED);
    close_client(d);
}

static void close_in_callback(const weft_discovery_result_t *r, void *arg)
{
    res_t *x = arg;
    x->done = true;
    x->err = r->err;
    weft_discovery_close(cur, on_closed, NULL); /* the call's entry is still held */
    cur = NULL;
}

static void test_close_from_a_callback(void **state)
{
    const char *ids[] = {"w1"};
    const int idx[] = {0};
    set_instances("web", ids, idx, 1, 0);
    weft_discovery_t *d = client(NULL);
    res_t x = {0}, y = {0};
    weft_discovery_req_t rh = {.service = "web", .target = "/hold"};
    assert_int_equal(weft_discovery_call(d, &rh, on_result, &y, NULL), 0);
    weft_discovery_req_t rw = {.service = "web", .target = "/who"};
    closed = false;
    assert_int_equal(weft_discovery_call(d, &rw, close_in_callback, &x, NULL), 0);
    RUN_UNTIL(closed);
    assert_int_equal(x.err, 0);
    assert_true(y.done);
    assert_int_equal(y.err, WEFT_ECANCELED);
}

static void test_agent_operations(void **state)
{
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    o.token = "s3cret";
    weft_discovery_t *d = client(&o);
    const char *tags[] = {"v1", "q\"uote"};
    weft_discovery_kv_t meta[] = {{"version", "1.2.3"}};
    weft_discovery_registration_t reg = {.id = "hello-127.0.0.1-8081",
                                         .name = "hello",
                                         .address = "127.0.0.1",
                                         .port = 8081,
                                         .tags = tags,
                                         .ntags = 2,
                                         .meta = meta,
                                         .nmeta = 1,
                                         .check = WEFT_DISCOVERY_CHECK_HTTP,
                                         .check_http = "http://127.0.0.1:8081/health",
                                         .check_interval_ms = 1000,
                                         .deregister_after_ms = 60000,
                                         .check_status = "passing"};
    res_t x = {0};
    assert_int_equal(weft_discovery_register(d, &reg, on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.status, 200);
    assert_string_equal(fk.op_target, "PUT /v1/agent/service/register");
    assert_string_equal(fk.op_token, "s3cret");
    json_error_t je;
    json_t *j = json_loads(fk.op_body, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "ID")), "hello-127.0.0.1-8081");
    assert_string_equal(json_string_value(json_object_get(j, "Name")), "hello");
    assert_int_equal(json_integer_value(json_object_get(j, "Port")), 8081);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "Tags"), 1)),
                        "q\"uote");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "Meta"), "version")),
                        "1.2.3");
    json_t *chk = json_object_get(j, "Check");
    assert_string_equal(json_string_value(json_object_get(chk, "HTTP")),
                        "http://127.0.0.1:8081/health");
    assert_string_equal(json_string_value(json_object_get(chk, "Interval")), "1000ms");
    assert_string_equal(json_string_value(json_object_get(chk, "DeregisterCriticalServiceAfter")),
                        "60000ms");
    assert_string_equal(json_string_value(json_object_get(chk, "Status")), "passing");
    json_decref(j);
    /* TTL */
    reg.check = WEFT_DISCOVERY_CHECK_TTL;
    reg.check_ttl_ms = 30000;
    memset(&x, 0, sizeof(x));
    assert_int_equal(weft_discovery_register(d, &reg, on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    assert_non_null(strstr(fk.op_body, "\"TTL\":\"30000ms\""));
    assert_null(strstr(fk.op_body, "\"HTTP\""));
    /* heartbeat */
    memset(&x, 0, sizeof(x));
    assert_int_equal(weft_discovery_check_update(d, "service:hello-127.0.0.1-8081", "warning",
                                                 "slow \"db\"", on_result, &x, NULL),
                     0);
    RUN_UNTIL(x.done);
    assert_string_equal(fk.op_target, "PUT /v1/agent/check/update/service:hello-127.0.0.1-8081");
    assert_string_equal(fk.op_body, "{\"Status\":\"warning\",\"Output\":\"slow \\\"db\\\"\"}");
    /* statuses become errors */
    fk.op_status = 404;
    memset(&x, 0, sizeof(x));
    assert_int_equal(weft_discovery_deregister(d, "hello-127.0.0.1-8081", on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    assert_string_equal(fk.op_target, "PUT /v1/agent/service/deregister/hello-127.0.0.1-8081");
    assert_int_equal(x.err, WEFT_ENOENT);
    assert_int_equal(x.status, 404);
    assert_string_equal(x.body, "{\"error\":\"nope\"}");
    memset(&x, 0, sizeof(x));
    assert_int_equal(weft_discovery_registered(d, "hello-1", on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    assert_string_equal(fk.op_target, "GET /v1/agent/service/hello-1");
    assert_int_equal(x.err, WEFT_ENOENT);
    fk.op_status = 403;
    memset(&x, 0, sizeof(x));
    assert_int_equal(weft_discovery_registered(d, "hello-1", on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    assert_int_equal(x.err, -EACCES);
    fk.op_status = 400;
    memset(&x, 0, sizeof(x));
    assert_int_equal(weft_discovery_registered(d, "hello-1", on_result, &x, NULL), 0);
    RUN_UNTIL(x.done);
    assert_int_equal(x.err, WEFT_EINVAL);
    assert_int_equal(weft_discovery_stats(d).operations, 7);
    close_client(d);
}

static void never(const weft_discovery_result_t *r, void *arg)
{
    fail_msg("a callback ran after its function failed");
}

static void never_b(int err, const weft_discovery_result_t *r, size_t n, void *arg)
{
    fail_msg("a callback ran after its function failed");
}

static void test_bad_arguments(void **state)
{
    weft_discovery_options_t o;
    weft_discovery_options_init(&o);
    weft_discovery_t *d = NULL;
    o.loop = &loop;
    assert_int_equal(weft_discovery_new(&o, &d), WEFT_EINVAL); /* no registry */
    const char *bad[] = {"http://127.0.0.1", "ftp://127.0.0.1:1", "http://127.0.0.1:1/x",
                         "http://:1", "http://a b:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.registry = bad[i];
        assert_int_equal(weft_discovery_new(&o, &d), WEFT_EINVAL);
    }
    o.registry = "https://127.0.0.1:8501";
    assert_int_equal(weft_discovery_new(&o, &d), WEFT_EUNSUPPORTED);
    o.registry = "http://127.0.0.1:1";
    o.max_services = 0;
    assert_int_equal(weft_discovery_new(&o, &d), WEFT_EINVAL);
    o.max_services = 64;
    o.retry_min_ms = 20000;
    assert_int_equal(weft_discovery_new(&o, &d), WEFT_EINVAL);
    o.retry_min_ms = 100;
    o.loop = NULL;
    assert_int_equal(weft_discovery_new(&o, &d), WEFT_EINVAL);
    d = client(NULL);
    weft_discovery_req_t r = {.service = "a/b", .target = "/"};
    assert_int_equal(weft_discovery_call(d, &r, never, NULL, NULL), WEFT_EINVAL);
    r.service = "*";
    assert_int_equal(weft_discovery_call(d, &r, never, NULL, NULL), WEFT_EINVAL);
    r.service = "";
    assert_int_equal(weft_discovery_call(d, &r, never, NULL, NULL), WEFT_EINVAL);
    r.service = "web";
    r.target = "no-slash";
    assert_int_equal(weft_discovery_call(d, &r, never, NULL, NULL), WEFT_EINVAL);
    r.target = "/a b";
    assert_int_equal(weft_discovery_broadcast(d, &r, never_b, NULL, NULL), WEFT_EINVAL);
    r.target = "/";
    r.method = "G E T";
    assert_int_equal(weft_discovery_call(d, &r, never, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_discovery_call(d, &r, NULL, NULL, NULL), WEFT_EINVAL);
    weft_discovery_registration_t reg = {.id = "x/y", .name = "x"};
    assert_int_equal(weft_discovery_register(d, &reg, never, NULL, NULL), WEFT_EINVAL);
    reg.id = "x";
    reg.check = WEFT_DISCOVERY_CHECK_HTTP; /* without its URL */
    assert_int_equal(weft_discovery_register(d, &reg, never, NULL, NULL), WEFT_EINVAL);
    reg.check = WEFT_DISCOVERY_CHECK_TTL; /* without its TTL */
    assert_int_equal(weft_discovery_register(d, &reg, never, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_discovery_check_update(d, "service:x", "fine", NULL, never, NULL, NULL),
                     WEFT_EINVAL);
    assert_int_equal(weft_discovery_deregister(d, "", never, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_discovery_stats(d).active, 0);
    closed = false;
    cur = NULL;
    weft_discovery_close(d, on_closed, NULL);
    r.method = NULL;
    assert_int_equal(weft_discovery_call(d, &r, never, NULL, NULL), WEFT_ECLOSED);
    RUN_UNTIL(closed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_follows_blocking_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_outstanding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_service_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_instances_while_registry_errs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_backwards_starts_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_resolution_past_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_a_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_a_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_5xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_fail_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_skips_instance, setup, teardown),
    };
    /* TEST_FILTER=test_call_timeout (cmocka's patterns) runs some tests alone */
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
