/*
 * test_service.c - the SDK's service end to end in one process: a service with the memory
 * span exporter runs on its own thread; the test sends real requests and checks the server
 * spans (trace continued from traceparent and from B3, names, attributes, status), the
 * request metrics, /health with checks, rate limits (a route's, a handler's own, a shadow
 * one for every route: 429 with the gateway's headers, the counters), and a clean stop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"

#include "weft/service.h"

static weft_service_t *svc;
static weft_span_exporter_t *mem;
static pthread_t runner;
static int run_rc = -1;
static int check_state = WEFT_CHECK_PASSING;

/* Set by on_start, on the control loop, once every worker serves. */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static bool started;

static void h_ok(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 200, NULL, "ok", 2);
}
static void h_fail(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 500, NULL, "x", 1);
}

static weft_service_limiter_t *self_lim;

/* Limits itself, by X-Api-Key, after deciding to (as a handler that read its body would). */
static void h_self(weft_http_request_t *req, void *arg)
{
    if (!weft_service_limit(self_lim, req)) return;
    weft_http_respond(req, 200, NULL, "self", 4);
}

static weft_check_status_t check(void *arg, char *out, size_t cap)
{
    snprintf(out, cap, "state \"%d\"", check_state);
    return (weft_check_status_t)check_state;
}

static void on_start(weft_service_t *s, void *arg)
{
    pthread_mutex_lock(&start_mu);
    started = true;
    pthread_cond_signal(&start_cv);
    pthread_mutex_unlock(&start_mu);
}

static void *run(void *arg)
{
    run_rc = weft_service_run(svc);
    return NULL;
}

static char *exchange(const char *req)
{
    static char buf[65536];
    int fd = test_dial(weft_service_port(svc));
    send(fd, req, strlen(req), 0);
    size_t n = 0;
    ssize_t r;
    while ((r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fd);
    return buf;
}

static int setup(void **state)
{
    weft_service_options_t o;
    weft_service_options_init(&o);
    o.name = "svc-test";
    o.port = 0;
    o.workers = 2;
    o.exporter = mem = weft_trace_memory_exporter_new(64);
    assert_int_equal(weft_service_new(&o, &svc), 0);
    assert_int_equal(weft_service_route(svc, "GET", "/ok/:id", h_ok, NULL), 0);
    assert_int_equal(weft_service_route(svc, "GET", "/fail", h_fail, NULL), 0);
    assert_int_equal(weft_service_check(svc, "db", check, NULL), 0);
    assert_int_equal(weft_service_route(svc, "GET", "/ok/:id", h_ok, NULL), WEFT_EEXIST);
    /* /limited: 2, then 429 (a token bucket that refills once in 11 days) */
    assert_int_equal(weft_service_route(svc, "GET", "/limited", h_ok, NULL), 0);
    weft_service_limit_options_t lo;
    weft_service_limit_options_init(&lo);
    lo.name = "limited";
    lo.limiter.rate = 1e-6;
    lo.limiter.burst = 2;
    weft_service_limiter_t *l;
    char err[256];
    assert_int_equal(weft_service_limiter_new(svc, &lo, &l, err, sizeof(err)), 0);
    assert_int_equal(weft_service_rate_limit(svc, "/limited", l), 0);
    assert_int_equal(weft_service_rate_limit(svc, "/limited", l), WEFT_EEXIST);
    /* /self: a sliding window of 1 per minute per API key, asked by the handler */
    assert_int_equal(weft_service_route(svc, "GET", "/self", h_self, NULL), 0);
    weft_service_limit_options_init(&lo);
    lo.name = "self";
    lo.limiter.kind = WEFT_RATELIMIT_SLIDING_WINDOW;
    lo.limiter.limit = 1;
    lo.limiter.window_ms = 60000;
    lo.key = WEFT_SERVICE_LIMIT_HEADER;
    lo.header = "X-Api-Key";
    assert_int_equal(weft_service_limiter_new(svc, &lo, &self_lim, err, sizeof(err)), 0);
    /* every other route: a shadow limit of 1 that only counts */
    weft_service_limit_options_init(&lo);
    lo.name = "any";
    lo.limiter.rate = 1e-6;
    lo.limiter.burst = 1;
    lo.shadow = true;
    assert_int_equal(weft_service_limiter_new(svc, &lo, &l, err, sizeof(err)), 0);
    assert_int_equal(weft_service_rate_limit(svc, "*", l), 0);
    /* bad options, with the field named */
    weft_service_limit_options_init(&lo);
    assert_int_equal(weft_service_limiter_new(svc, &lo, &l, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "name"));
    lo.name = "h";
    lo.key = WEFT_SERVICE_LIMIT_HEADER;
    assert_int_equal(weft_service_limiter_new(svc, &lo, &l, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "header"));
    lo.key = WEFT_SERVICE_LIMIT_GLOBAL;
    lo.limiter.burst = 0;
    assert_int_equal(weft_service_limiter_new(svc, &lo, &l, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "burst"));
    weft_service_on_start(svc, on_start, NULL);
    pthread_create(&runner, NULL, run, NULL);
    /* on_start runs once the workers attached: requests are served from then on. The
     * deadline only turns a service that never starts into a failure instead of a hang. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&start_mu);
    while (!started && pthread_cond_timedwait(&start_cv, &start_mu, &deadline) == 0) {
    }
    bool ok = started;
    pthread_mutex_unlock(&start_mu);
    assert_true(ok);
    assert_true(weft_service_port(svc) > 0);
    return 0;
}

static int teardown(void **state)
{
    weft_service_stop(svc);
    pthread_join(runner, NULL);
    assert_int_equal(run_rc, 0);
    weft_service_free(svc); /* frees the exporter with the tracer */
    return 0;
}

static int find_span(const char *name, weft_span_data_t *out)
{
    size_t n = weft_trace_memory_exporter_count(mem);
    for (size_t i = 0; i < n; i++) {
        weft_trace_memory_exporter_get(mem, i, out);
        if (strcmp(out->name, name) == 0) return 1;
    }
    return 0;
}

static const weft_attr_t *attr(const weft_span_data_t *d, const char *key)
{
    for (unsigned i = 0; i < d->nattrs; i++)
        if (strcmp(d->attrs[i].key, key) == 0) return &d->attrs[i];
    return NULL;
}

static void test_traces_and_metrics(void **state)
{
    char *r = exchange("GET /ok/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\ntraceparent: "
                       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
    weft_span_data_t d;
    assert_true(find_span("GET /ok/:id", &d));
    assert_int_equal(d.kind, WEFT_SPAN_SERVER);
    assert_string_equal(d.service_name, "svc-test");
    assert_int_equal(d.context.trace_id[0], 0x0a);
    assert_int_equal(d.context.trace_id[15], 0x9c);
    assert_int_equal(d.parent_span_id[0], 0xb7);
    assert_true(d.parent_remote);
    assert_int_equal(attr(&d, "http.response.status_code")->v.i, 200);
    assert_string_equal(attr(&d, "http.route")->v.s, "/ok/:id");
    weft_trace_memory_exporter_clear(mem);
    /* B3 multi headers, and an error status */
    r = exchange("GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124\r\n"
                 "X-B3-SpanId: a2fb4a1d1a96d312\r\nX-B3-Sampled: 1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 500 "));
    assert_true(find_span("GET /fail", &d));
    assert_int_equal(d.context.trace_id[0], 0x46);
    assert_int_equal(d.parent_span_id[0], 0xa2);
    assert_int_equal(d.status, WEFT_SPAN_STATUS_ERROR);
    weft_trace_memory_exporter_clear(mem);
    /* an unsampled parent: the span does not record */
    exchange("GET /ok/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\ntraceparent: "
             "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n\r\n");
    assert_int_equal(weft_trace_memory_exporter_count(mem), 0);
    /* no context: a new root trace */
    exchange("GET /ok/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(find_span("GET /ok/:id", &d));
    for (int i = 0; i < 8; i++) assert_int_equal(d.parent_span_id[i], 0);
    r = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(
        strstr(r, "http_requests_total{method=\"GET\",route=\"/ok/:id\",code=\"200\"} 3\n"));
    assert_non_null(
        strstr(r, "http_requests_total{method=\"GET\",route=\"/fail\",code=\"500\"} 1\n"));
    assert_non_null(strstr(
        r,
        "http_request_duration_seconds_count{method=\"GET\",route=\"/ok/:id\",code=\"200\"} 3\n"));
}

static void test_health_checks(void **state)
{
    check_state = WEFT_CHECK_PASSING;
    char *r = exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(r, "\"status\":\"passing\",\"service\":\"svc-test\""));
    assert_non_null(
        strstr(r, "{\"name\":\"db\",\"status\":\"passing\",\"output\":\"state \\\"0\\\"\"}"));
    check_state = WEFT_CHECK_WARNING;
    r = exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(r, "\"status\":\"warning\""));
    check_state = WEFT_CHECK_CRITICAL;
    r = exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 "));
    assert_non_null(strstr(r, "\"status\":\"critical\""));
    check_state = WEFT_CHECK_PASSING;
}

static void test_rate_limits(void **state)
{
    const char *get = "GET /limited HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 2; i++) assert_non_null(strstr(exchange(get), "HTTP/1.1 200 OK"));
    char *r = exchange(get);
    assert_non_null(strstr(r, "HTTP/1.1 429 "));
    /* the gateway's headers: the quota of 2 over the bucket's refill time, none left */
    assert_non_null(strstr(r, "\r\nRateLimit-Policy: \"limited\";q=2;w=2000000\r\n"));
    assert_non_null(strstr(r, "\r\nRateLimit: \"limited\";r=0;t="));
    assert_non_null(strstr(r, "\r\nRetry-After: 1000000\r\n"));
    assert_non_null(strstr(r, "{\"error\":\"rate limited\",\"status\":429,\"route\":\"limited\""));
    /* one per key: a and b pass once each, a second a does not */
    const char *a = "GET /self HTTP/1.1\r\nHost: x\r\nX-Api-Key: a\r\nConnection: close\r\n\r\n";
    const char *b = "GET /self HTTP/1.1\r\nHost: x\r\nX-Api-Key: b\r\nConnection: close\r\n\r\n";
    assert_non_null(strstr(exchange(a), "HTTP/1.1 200 OK"));
    assert_non_null(strstr(exchange(b), "HTTP/1.1 200 OK"));
    r = exchange(a);
    assert_non_null(strstr(r, "HTTP/1.1 429 "));
    assert_non_null(strstr(r, "\r\nRateLimit-Policy: \"self\";q=1;w=60\r\n"));
    /* /health and /metrics are never limited, not even counted by "*" */
    for (int i = 0; i < 3; i++)
        assert_non_null(strstr(exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: "
                                        "close\r\n\r\n"),
                               "HTTP/1.1 200 OK"));
    r = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(
        strstr(r, "weft_ratelimit_rejected_total{route=\"limited\",shadow=\"false\"} 1\n"));
    assert_non_null(
        strstr(r, "weft_ratelimit_rejected_total{route=\"self\",shadow=\"false\"} 1\n"));
    assert_non_null(
        strstr(r, "http_requests_total{method=\"GET\",route=\"/limited\",code=\"429\"} 1\n"));
    /* the shadow limit saw /ok and /fail (test_traces_and_metrics) and /self's: only counted */
    const char *sh = strstr(r, "weft_ratelimit_rejected_total{route=\"any\",shadow=\"true\"} ");
    assert_non_null(sh);
    assert_true(
        atoi(sh + strlen("weft_ratelimit_rejected_total{route=\"any\",shadow=\"true\"} ")) >= 3);
    /* the service runs: no more limiters */
    weft_service_limit_options_t lo;
    weft_service_limit_options_init(&lo);
    lo.name = "late";
    weft_service_limiter_t *l;
    assert_int_equal(weft_service_limiter_new(svc, &lo, &l, NULL, 0), WEFT_ESTATE);
}

static void test_bad_options(void **state)
{
    weft_service_options_t o;
    weft_service_options_init(&o);
    weft_service_t *s;
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL); /* no name */
    o.name = "bad name";
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    o.name = "ok";
    o.sample_ratio = 2;
    o.exporter = weft_trace_memory_exporter_new(4); /* taken over even on failure: no leak */
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    /* the discovery clients' breaker options are checked at once */
    o.sample_ratio = 1;
    o.exporter = NULL;
    o.registry.url = "http://127.0.0.1:1";
    weft_discovery_options_t co;
    weft_discovery_options_init(&co);
    co.breaker_conf.half_open_requests = 0;
    o.registry.client = &co;
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traces_and_metrics),
        cmocka_unit_test(test_health_checks),
        cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
