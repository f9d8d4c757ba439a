/*
 * test_checker.c - the active health checker (src/registry/checker.h) against real loopback
 * peers: weft's own HTTP server on a worker thread (routes that answer 200, 429, 500, never,
 * from a per-check script, alternately, or by echoing what they were sent), a listening
 * socket for TCP checks, and ports nobody listens on. Every result is observed through
 * on_change: each test waits for the event it expects on a condition variable (with a
 * generous deadline as the failure bound), never on a sleep. Where a test must let time
 * pass to show that something did not happen (no second run in flight, no third call past
 * max_concurrent, no report after a remove), a second check that changes its status at
 * every run serves as the clock, so the wait is still for events.
 *
 * The server counts, per check id, the requests it got (hits) and those it holds (active);
 * an event records the hits of its check at the moment of the change, so thresholds are
 * asserted exactly ("warning after the 4th request").
 *
 * The lateness and jitter test asserts wall-clock bounds, so this test runs alone
 * (RUN_SERIAL in CMakeLists.txt).
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "registry/checker.h"
#include "weft/http.h"
#include "weft/workers.h"

#define DEADLINE_S 20 /* a failure bound, not a synchronisation */
#define NID        64 /* check ids with server-side counters: keys below this */

/* ---- the server (a worker thread) ---- */

static weft_http_server_t *srv;
static weft_workers_t *workers;
static uint16_t port;

static atomic_int hits[NID], active[NID], max_active[NID];
static const int *script[NID]; /* statuses, by hit; the last repeats */
static int script_len[NID];

static pthread_mutex_t smu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scv = PTHREAD_COND_INITIALIZER;
static int count_hits, count_target; /* /count; signalled at count_target */
static uint64_t first_ns[128];       /* /first: arrival times */
static int first_n;
static char echo_method[16], echo_check[64], echo_accept[64], echo_ua[64], echo_body[64];

static int id_of(weft_http_request_t *req)
{
    weft_str_t s = weft_http_request_param(req, "id");
    int id = 0;
    for (size_t i = 0; i < s.len; i++) id = id * 10 + (s.base[i] - '0');
    return id >= 0 && id < NID ? id : 0;
}

static void reply(weft_http_request_t *req, int status, const char *body)
{
    weft_http_respond(req, status, "text/plain", body, strlen(body));
}

static void h_ok(weft_http_request_t *req, void *arg)
{
    reply(req, 200, "ok body");
}

static void h_busy(weft_http_request_t *req, void *arg)
{
    reply(req, 429, "slow down");
}

static void h_fail(weft_http_request_t *req, void *arg)
{
    reply(req, 500, "broken");
}

/* A 500 with 100 KiB of body that starts with bytes that are not UTF-8 (and a NUL). */
static char big[100 * 1024];
static void h_big(weft_http_request_t *req, void *arg)
{
    weft_http_respond(req, 500, "application/octet-stream", big, sizeof(big));
}

static void h_script(weft_http_request_t *req, void *arg)
{
    int id = id_of(req), n = atomic_fetch_add(&hits[id], 1);
    int st = script_len[id] ? script[id][n < script_len[id] ? n : script_len[id] - 1] : 200;
    char body[32];
    snprintf(body, sizeof(body), "run %d", n + 1);
    reply(req, st, body);
}

static void h_alt(weft_http_request_t *req, void *arg)
{
    int id = id_of(req), n = atomic_fetch_add(&hits[id], 1);
    reply(req, n % 2 ? 500 : 200, "alt");
}

static void h_count(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&smu);
    if (++count_hits == count_target) pthread_cond_broadcast(&scv);
    pthread_mutex_unlock(&smu);
    reply(req, 200, "counted");
}

static void h_first(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&smu);
    if (first_n < 128) first_ns[first_n] = weft_now_ns();
    first_n++;
    pthread_cond_broadcast(&scv);
    pthread_mutex_unlock(&smu);
    reply(req, 200, "first");
}

/* /never/:id holds the request until its client goes away (or the server shuts down). */
typedef struct held_s {
    int id;
    bool released;
} held_t;

static void release(weft_http_request_t *req)
{
    held_t *h = req->data;
    if (h->released) return;
    h->released = true;
    atomic_fetch_sub(&active[h->id], 1);
}

static void on_never_abort(weft_http_request_t *req)
{
    release(req);
}

static void on_never_event(weft_http_request_t *req, weft_http_event_t ev)
{
    if (ev != WEFT_HTTP_EVENT_CLIENT_CLOSED && ev != WEFT_HTTP_EVENT_SHUTDOWN) return;
    release(req);
    reply(req, 503, "gone");
}

static void h_never(weft_http_request_t *req, void *arg)
{
    held_t *h = weft_http_request_alloc(req, sizeof(*h));
    assert_non_null(h);
    h->id = id_of(req);
    h->released = false;
    req->data = h;
    req->on_abort = on_never_abort;
    req->on_event = on_never_event;
    pthread_mutex_lock(&smu);
    atomic_fetch_add(&hits[h->id], 1);
    pthread_cond_broadcast(&scv);
    pthread_mutex_unlock(&smu);
    int now = atomic_fetch_add(&active[h->id], 1) + 1;
    int m = atomic_load(&max_active[h->id]);
    while (now > m && !atomic_compare_exchange_weak(&max_active[h->id], &m, now)) continue;
}

static void copy_str(char *dst, size_t cap, weft_str_t s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n) memcpy(dst, s.base, n);
    dst[n] = 0;
}

/* PUT /echo: 200 when the method, X-Check and the body are what test_request sends. */
static void h_echo(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&smu);
    copy_str(echo_method, sizeof(echo_method), req->method);
    copy_str(echo_check, sizeof(echo_check), weft_http_request_header(req, "x-check"));
    copy_str(echo_accept, sizeof(echo_accept), weft_http_request_header(req, "accept"));
    copy_str(echo_ua, sizeof(echo_ua), weft_http_request_header(req, "user-agent"));
    copy_str(echo_body, sizeof(echo_body), req->body);
    bool good = strcmp(echo_check, "abc") == 0 && strcmp(echo_body, "payload") == 0;
    pthread_mutex_unlock(&smu);
    reply(req, good ? 200 : 400, good ? "matched" : "mismatch");
}

static void attach(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_attach(srv, loop, i);
}

static void stop(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_shutdown(srv, i, NULL, NULL);
}

static int group_setup(void **state)
{
    memset(big, 'x', sizeof(big));
    memcpy(big, "\xff\xfe\0abc", 6);
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.shutdown_timeout_ms = 500;
    assert_int_equal(weft_http_server_new(&o, 1, &srv), 0);
    static const struct {
        const char *method, *pattern;
        weft_http_handler_fn fn;
    } routes[] = {
        {"GET", "/ok", h_ok},
        {"GET", "/busy", h_busy},
        {"GET", "/fail", h_fail},
        {"GET", "/big", h_big},
        {"GET", "/script/:id", h_script},
        {"GET", "/alt/:id", h_alt},
        {"GET", "/count", h_count},
        {"GET", "/first", h_first},
        {"GET", "/never/:id", h_never},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        weft_http_route_t r = {.handler = routes[i].fn};
        assert_int_equal(weft_http_server_route(srv, routes[i].method, routes[i].pattern, &r), 0);
    }
    weft_http_route_t r = {.handler = h_echo, .max_body = 4096};
    assert_int_equal(weft_http_server_route(srv, "PUT", "/echo", &r), 0);
    assert_int_equal(weft_http_server_bind(srv, NULL, 0), 0);
    port = weft_http_server_port(srv);
    assert_int_equal(weft_workers_new(1, &workers), 0);
    weft_workers_start(workers, attach, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    weft_workers_stop(workers, stop, NULL);
    weft_workers_join(workers);
    weft_workers_free(workers);
    weft_http_server_free(srv);
    return 0;
}

/* ---- events (on_change, on the checker's thread) ---- */

typedef struct ev_s {
    uint64_t key;
    weft_health_t status;
    int hits; /* the server's requests for the key (keys below NID) at the change */
    char out[4096];
} ev_t;

static pthread_mutex_t emu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ecv = PTHREAD_COND_INITIALIZER;
static ev_t evs[512];
static int nev;
/* runs after an event is recorded (outside the lock), when set */
typedef void (*hook_fn)(uint64_t key, weft_health_t status);
static _Atomic(hook_fn) hook;

static void on_change(void *arg, uint64_t key, weft_health_t status, const char *output)
{
    assert_true(strlen(output) < 4096);
    pthread_mutex_lock(&emu);
    if (nev < (int)(sizeof(evs) / sizeof(evs[0]))) {
        ev_t *e = &evs[nev++];
        e->key = key;
        e->status = status;
        e->hits = key < NID ? atomic_load(&hits[key]) : -1;
        snprintf(e->out, sizeof(e->out), "%s", output);
    }
    pthread_cond_broadcast(&ecv);
    pthread_mutex_unlock(&emu);
    hook_fn h = atomic_load(&hook);
    if (h) h(key, status);
}

static struct timespec deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += DEADLINE_S;
    return ts;
}

/* Events of key so far (the caller holds emu). */
static int count_locked(uint64_t key)
{
    int n = 0;
    for (int i = 0; i < nev; i++) n += evs[i].key == key;
    return n;
}

static int count_events(uint64_t key)
{
    pthread_mutex_lock(&emu);
    int n = count_locked(key);
    pthread_mutex_unlock(&emu);
    return n;
}

/* The n-th (from 0) event of key, waiting for it; the test fails at the deadline. */
static const ev_t *wait_nth(uint64_t key, int n)
{
    struct timespec ts = deadline();
    pthread_mutex_lock(&emu);
    for (;;) {
        int seen = 0;
        for (int i = 0; i < nev; i++) {
            if (evs[i].key != key) continue;
            if (seen++ == n) {
                pthread_mutex_unlock(&emu);
                return &evs[i];
            }
        }
        if (pthread_cond_timedwait(&ecv, &emu, &ts) != 0) {
            pthread_mutex_unlock(&emu);
            fail_msg("no event %d for key %llu within %d s", n, (unsigned long long)key,
                     DEADLINE_S);
        }
    }
}

static int test_setup(void **state)
{
    pthread_mutex_lock(&emu);
    nev = 0;
    pthread_mutex_unlock(&emu);
    atomic_store(&hook, NULL);
    return 0;
}

static weft_checker_t *checker(size_t max_checks, unsigned max_concurrent)
{
    weft_checker_options_t o;
    weft_checker_options_init(&o);
    o.on_change = on_change;
    if (max_checks) o.max_checks = max_checks;
    if (max_concurrent) o.max_concurrent = max_concurrent;
    weft_checker_t *c;
    assert_int_equal(weft_checker_new(&o, &c), 0);
    return c;
}

static weft_check_spec_t http_spec(uint64_t key, const char *path, char *url, size_t cap)
{
    snprintf(url, cap, "http://127.0.0.1:%u%s", port, path);
    return (weft_check_spec_t){.key = key,
                               .kind = WEFT_CHECK_HTTP,
                               .target = url,
                               .interval_ms = 50,
                               .timeout_ms = 2000,
                               .initial = WEFT_HEALTH_CRITICAL};
}

/* A loopback port nobody listens on (bound, then closed). */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- HTTP results ---- */

/* A 2xx is passing; the output is Consul's line with the body. */
static void test_http_passing(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128], want[256];
    weft_check_spec_t s = http_spec(100, "/ok", url, sizeof(url));
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(100, 0);
    assert_int_equal(e->status, WEFT_HEALTH_PASSING);
    snprintf(want, sizeof(want), "HTTP GET %s: 200 OK Output: ok body", url);
    assert_string_equal(e->out, want);
    weft_checker_stats_t st = weft_checker_stats(c);
    assert_int_equal(st.checks, 1);
    assert_true(st.runs >= 1);
    assert_int_equal(st.changes, 1);
    weft_checker_free(c);
}

/* 429 is warning. */
static void test_http_warning(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128], want[256];
    weft_check_spec_t s = http_spec(101, "/busy", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING;
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(101, 0);
    assert_int_equal(e->status, WEFT_HEALTH_WARNING);
    snprintf(want, sizeof(want), "HTTP GET %s: 429 Too Many Requests Output: slow down", url);
    assert_string_equal(e->out, want);
    weft_checker_free(c);
}

/* Any other status is critical. */
static void test_http_critical(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128], want[256];
    weft_check_spec_t s = http_spec(102, "/fail", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING;
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(102, 0);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    snprintf(want, sizeof(want), "HTTP GET %s: 500 Internal Server Error Output: broken", url);
    assert_string_equal(e->out, want);
    weft_checker_free(c);
}

/* A refused connection is critical, and says why. */
static void test_http_refused(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128], want[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/health", closed_port());
    weft_check_spec_t s = {.key = 103,
                           .kind = WEFT_CHECK_HTTP,
                           .target = url,
                           .interval_ms = 50,
                           .initial = WEFT_HEALTH_PASSING};
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(103, 0);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    snprintf(want, sizeof(want), "HTTP GET %s: ", url);
    assert_memory_equal(e->out, want, strlen(want));
    assert_non_null(strstr(e->out, "refused"));
    weft_checker_free(c);
}

/* A server that never answers: critical once the timeout has passed. */
static void test_http_timeout(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128];
    weft_check_spec_t s = http_spec(10, "/never/10", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING;
    s.timeout_ms = 200;
    s.interval_ms = 1000;
    uint64_t t0 = weft_now_ns();
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(10, 0);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    assert_true(weft_now_ns() - t0 >= 200 * 1000000ull); /* never before the timeout */
    assert_int_equal(e->hits, 1);
    assert_non_null(strstr(e->out, "timed out after 200 ms"));
    weft_checker_free(c);
}

/* The output holds at most 4 KiB of a long body, as valid UTF-8 (bytes that are not become
 * U+FFFD), and the long body does not stop the result. */
static void test_http_long_body(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128], want[256];
    weft_check_spec_t s = http_spec(104, "/big", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING;
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(104, 0);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    snprintf(want, sizeof(want),
             "HTTP GET %s: 500 Internal Server Error Output: "
             "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
             "abcxxx",
             url);
    assert_memory_equal(e->out, want, strlen(want));
    size_t n = strlen(e->out);
    assert_true(n <= 4095 && n > 4000);
    json_t *j = json_string(e->out); /* NULL if not valid UTF-8 */
    assert_non_null(j);
    json_decref(j);
    weft_checker_free(c);
}

/* An output is valid UTF-8 even when the URL is not (a request target may hold any byte
 * above 0x7F). */
static void test_output_utf8(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/\xff\xfe", closed_port());
    weft_check_spec_t s = {.key = 106,
                           .kind = WEFT_CHECK_HTTP,
                           .target = url,
                           .interval_ms = 50,
                           .initial = WEFT_HEALTH_PASSING};
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(106, 0);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    assert_non_null(strstr(e->out, "/\xEF\xBF\xBD\xEF\xBF\xBD: "));
    json_t *j = json_string(e->out);
    assert_non_null(j);
    json_decref(j);
    weft_checker_free(c);
}

/* Method, headers and body reach the server; the default User-Agent is added and an Accept
 * given by the spec replaces the default one. */
static void test_http_request(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128];
    weft_check_spec_t s = http_spec(105, "/echo", url, sizeof(url));
    weft_check_header_t h[] = {{"X-Check", "abc"}, {"Accept", "application/json"}};
    s.method = "PUT";
    s.headers = h;
    s.n_headers = 2;
    s.body = "payload";
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(105, 0);
    assert_int_equal(e->status, WEFT_HEALTH_PASSING);
    pthread_mutex_lock(&smu);
    assert_string_equal(echo_method, "PUT");
    assert_string_equal(echo_check, "abc");
    assert_string_equal(echo_body, "payload");
    assert_string_equal(echo_accept, "application/json");
    assert_string_equal(echo_ua, "weft Health Check");
    pthread_mutex_unlock(&smu);
    assert_non_null(strstr(e->out, "HTTP PUT "));
    weft_checker_free(c);
}

/* ---- TCP ---- */

static void test_tcp(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 128), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    unsigned open_port = ntohs(a.sin_port);

    weft_checker_t *c = checker(0, 0);
    char open_t[64], closed_t[64], name_t[64], want[128];
    snprintf(open_t, sizeof(open_t), "127.0.0.1:%u", open_port);
    snprintf(closed_t, sizeof(closed_t), "127.0.0.1:%u", closed_port());
    snprintf(name_t, sizeof(name_t), "localhost:%u", open_port); /* looked up, then tried */
    weft_check_spec_t s = {.kind = WEFT_CHECK_TCP, .interval_ms = 50, .timeout_ms = 2000};
    s.key = 200, s.target = open_t, s.initial = WEFT_HEALTH_CRITICAL;
    assert_int_equal(weft_checker_add(c, &s), 0);
    s.key = 201, s.target = closed_t, s.initial = WEFT_HEALTH_PASSING;
    assert_int_equal(weft_checker_add(c, &s), 0);
    s.key = 202, s.target = name_t, s.initial = WEFT_HEALTH_CRITICAL;
    assert_int_equal(weft_checker_add(c, &s), 0);

    const ev_t *e = wait_nth(200, 0);
    assert_int_equal(e->status, WEFT_HEALTH_PASSING);
    snprintf(want, sizeof(want), "TCP connect %s: Success", open_t);
    assert_string_equal(e->out, want);
    e = wait_nth(201, 0);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    snprintf(want, sizeof(want), "TCP connect %s: connection refused", closed_t);
    assert_string_equal(e->out, want);
    e = wait_nth(202, 0);
    assert_int_equal(e->status, WEFT_HEALTH_PASSING);
    weft_checker_free(c);
    close(fd);
}

/* ---- thresholds ---- */

/* Consul's StatusHandler: successes and failures count in a row; a success resets the
 * failures. Script: 500 200 500 500 500 200 200 with success_before_passing 2,
 * failures_before_warning 2, failures_before_critical 3, from passing. */
static void test_thresholds(void **state)
{
    static const int sc[] = {500, 200, 500, 500, 500, 200, 200};
    script[1] = sc;
    script_len[1] = 7;
    weft_checker_t *c = checker(0, 0);
    char url[128];
    weft_check_spec_t s = http_spec(1, "/script/1", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING;
    s.success_before_passing = 2;
    s.failures_before_warning = 2;
    s.failures_before_critical = 3;
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(1, 0); /* the first result is told, though it keeps the status */
    assert_int_equal(e->status, WEFT_HEALTH_PASSING);
    assert_int_equal(e->hits, 1);
    assert_non_null(strstr(e->out, "500 Internal Server Error"));
    e = wait_nth(1, 1);
    assert_int_equal(e->status, WEFT_HEALTH_WARNING); /* 500 200 500 500: two in a row */
    assert_int_equal(e->hits, 4);
    assert_string_equal(strstr(e->out, ": "), ": 500 Internal Server Error Output: run 4");
    e = wait_nth(1, 2);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    assert_int_equal(e->hits, 5);
    e = wait_nth(1, 3);
    assert_int_equal(e->status, WEFT_HEALTH_PASSING); /* the second 200 in a row */
    assert_int_equal(e->hits, 7);
    assert_string_equal(strstr(e->out, ": "), ": 200 OK Output: run 7");
    weft_checker_free(c);
}

/* Below failures_before_critical but at failures_before_warning, a failure makes a critical
 * check warning (Consul does the same); 0 means "at once". */
static void test_thresholds_warning(void **state)
{
    static const int sc[] = {500};
    script[2] = sc;
    script_len[2] = 1;
    weft_checker_t *c = checker(0, 0);
    char url[128];
    weft_check_spec_t s = http_spec(2, "/script/2", url, sizeof(url));
    s.initial = WEFT_HEALTH_CRITICAL;
    s.failures_before_warning = 0;
    s.failures_before_critical = 3;
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(2, 0);
    assert_int_equal(e->status, WEFT_HEALTH_WARNING);
    assert_int_equal(e->hits, 1);
    e = wait_nth(2, 1);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    assert_int_equal(e->hits, 3);
    weft_checker_free(c);
}

/* A success threshold holds 429s too: they count as successes, and the status becomes
 * warning only at the threshold. */
static void test_thresholds_success(void **state)
{
    static const int sc[] = {429};
    script[3] = sc;
    script_len[3] = 1;
    weft_checker_t *c = checker(0, 0);
    char url[128];
    weft_check_spec_t s = http_spec(3, "/script/3", url, sizeof(url));
    s.success_before_passing = 3;
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(3, 0); /* the first result, told with the status it keeps */
    assert_int_equal(e->status, s.initial);
    assert_int_equal(e->hits, 1);
    e = wait_nth(3, 1);
    assert_int_equal(e->status, WEFT_HEALTH_WARNING);
    assert_int_equal(e->hits, 3);
    weft_checker_free(c);
}

/* ---- replace and remove ---- */

static weft_checker_t *hook_checker;
static weft_check_spec_t hook_spec;

static atomic_bool replaced;

static void replace_on_warning(uint64_t key, weft_health_t status)
{
    /* once: the replacement's own first result is told as warning too */
    if (key == 4 && status == WEFT_HEALTH_WARNING && !atomic_exchange(&replaced, true))
        assert_int_equal(weft_checker_add(hook_checker, &hook_spec), 0);
}

/* Adding a key again replaces the check: its counters start over. Always 500, warning at
 * one failure, critical at two: the first run makes it warning, and the replacement (added
 * from on_change, before the second run) needs two failures of its own, so critical comes
 * with the third request, not the second. */
static void test_replace_resets(void **state)
{
    static const int sc[] = {500};
    script[4] = sc;
    script_len[4] = 1;
    weft_checker_t *c = checker(0, 0);
    static char url[128];
    weft_check_spec_t s = http_spec(4, "/script/4", url, sizeof(url));
    s.interval_ms = 200; /* the replacement is applied within one loop turn: well before */
    s.initial = WEFT_HEALTH_PASSING;
    s.failures_before_warning = 1;
    s.failures_before_critical = 2;
    hook_checker = c;
    hook_spec = s;
    hook_spec.initial = WEFT_HEALTH_WARNING; /* what the owner shows now */
    atomic_store(&hook, replace_on_warning);
    assert_int_equal(weft_checker_add(c, &s), 0);
    const ev_t *e = wait_nth(4, 0);
    assert_int_equal(e->status, WEFT_HEALTH_WARNING);
    assert_int_equal(e->hits, 1);
    e = wait_nth(4, 1); /* the replacement's first result: told, still warning */
    assert_int_equal(e->status, WEFT_HEALTH_WARNING);
    assert_int_equal(e->hits, 2);
    e = wait_nth(4, 2);
    assert_int_equal(e->status, WEFT_HEALTH_CRITICAL);
    assert_int_equal(e->hits, 3);
    atomic_store(&hook, NULL);
    assert_int_equal(weft_checker_stats(c).checks, 1);
    weft_checker_free(c);
}

/* After a remove, the check neither runs nor reports. Both checks change at every run
 * (alternately 200 and 500, no thresholds); the remove is posted before the second check's
 * add, so by the second check's first event it has been applied, and from its second event
 * on (a whole interval later, time for a run in flight to end) the removed check's requests
 * and events stay where they were. */
static void test_remove(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url5[128], url6[128];
    weft_check_spec_t s5 = http_spec(5, "/alt/5", url5, sizeof(url5));
    weft_check_spec_t s6 = http_spec(6, "/alt/6", url6, sizeof(url6));
    assert_int_equal(weft_checker_add(c, &s5), 0);
    wait_nth(5, 1);
    assert_int_equal(weft_checker_remove(c, 5), 0);
    assert_int_equal(weft_checker_remove(c, 12345), 0); /* unknown: nothing happens */
    assert_int_equal(weft_checker_add(c, &s6), 0);
    wait_nth(6, 1);
    int ev5 = count_events(5), hits5 = atomic_load(&hits[5]);
    wait_nth(6, 5); /* four more intervals */
    assert_int_equal(count_events(5), ev5);
    assert_int_equal(atomic_load(&hits[5]), hits5);
    assert_int_equal(weft_checker_stats(c).checks, 1);
    weft_checker_free(c);
}

/* A check removed while its run is in flight: the run ends (here at its timeout) without a
 * report, and the check is freed then (ASan would see it leak otherwise). */
static void test_remove_in_flight(void **state)
{
    weft_checker_t *c = checker(0, 0);
    char url[128], curl[128];
    weft_check_spec_t s = http_spec(16, "/never/16", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING;
    s.timeout_ms = 200;
    assert_int_equal(weft_checker_add(c, &s), 0);
    struct timespec ts = deadline();
    pthread_mutex_lock(&smu);
    while (atomic_load(&hits[16]) < 1) assert_int_equal(pthread_cond_timedwait(&scv, &smu, &ts), 0);
    pthread_mutex_unlock(&smu);
    assert_int_equal(weft_checker_remove(c, 16), 0);
    weft_check_spec_t cs = http_spec(17, "/alt/17", curl, sizeof(curl));
    assert_int_equal(weft_checker_add(c, &cs), 0);
    wait_nth(17, 7); /* seven intervals (350 ms) after the remove: past the timeout */
    assert_int_equal(count_events(16), 0);
    assert_int_equal(atomic_load(&hits[16]), 1);
    assert_int_equal(weft_checker_stats(c).checks, 1);
    weft_checker_free(c);
}

/* ---- overlap and concurrency ---- */

/* A run still in flight when its check is due again is not doubled: the check's slots pass
 * as skipped. The clock is a second checker whose check changes at every run. */
static void test_no_overlap(void **state)
{
    weft_checker_t *c = checker(0, 0), *clock = checker(0, 0);
    char url[128], curl[128];
    weft_check_spec_t s = http_spec(11, "/never/11", url, sizeof(url));
    s.timeout_ms = 10000;
    assert_int_equal(weft_checker_add(c, &s), 0);
    weft_check_spec_t cs = http_spec(12, "/alt/12", curl, sizeof(curl));
    assert_int_equal(weft_checker_add(clock, &cs), 0);
    wait_nth(12, 5); /* at least five intervals */
    assert_int_equal(atomic_load(&hits[11]), 1);
    assert_int_equal(atomic_load(&max_active[11]), 1);
    weft_checker_stats_t st = weft_checker_stats(c);
    assert_int_equal(st.runs, 1);
    assert_true(st.skipped >= 2);
    weft_checker_free(c); /* with the run in flight: abandoned, nothing leaks */
    weft_checker_free(clock);
}

/* max_concurrent bounds the runs in flight: of five checks whose servers never answer,
 * two are held and the rest wait. Freeing abandons the two. */
static void test_max_concurrent(void **state)
{
    weft_checker_t *c = checker(0, 2), *clock = checker(0, 0);
    char url[128], curl[128];
    for (uint64_t k = 20; k < 25; k++) {
        weft_check_spec_t s = http_spec(k, "/never/13", url, sizeof(url));
        s.interval_ms = 50;
        s.timeout_ms = 10000;
        assert_int_equal(weft_checker_add(c, &s), 0);
    }
    weft_check_spec_t cs = http_spec(14, "/alt/14", curl, sizeof(curl));
    assert_int_equal(weft_checker_add(clock, &cs), 0);
    wait_nth(14, 5);
    assert_int_equal(atomic_load(&hits[13]), 2);
    assert_int_equal(atomic_load(&max_active[13]), 2);
    assert_int_equal(weft_checker_stats(c).runs, 2);
    weft_checker_free(c);
    weft_checker_free(clock);
}

/* ---- API ---- */

static void test_invalid(void **state)
{
    weft_checker_options_t o;
    weft_checker_options_init(&o);
    assert_int_equal(o.max_checks, 100000);
    assert_int_equal(o.max_concurrent, 4096);
    weft_checker_t *c;
    assert_int_equal(weft_checker_new(&o, &c), WEFT_EINVAL); /* no on_change */
    c = checker(2, 0);
    weft_check_spec_t s = {.key = 1, .kind = WEFT_CHECK_HTTP, .interval_ms = 1000};
    assert_int_equal(weft_checker_add(c, NULL), WEFT_EINVAL);
    assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL); /* no target */
    const char *bad[] = {"http://",     "ftp://x/",     "http://x:0/", "http://x:99999/",
                         "http://x y/", "http://x/a b", "http://[::1/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s.target = bad[i];
        assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL);
    }
    s.target = "https://127.0.0.1/";
    assert_int_equal(weft_checker_add(c, &s), WEFT_EUNSUPPORTED);
    s.target = "http://127.0.0.1:1/";
    s.interval_ms = 0;
    assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL);
    s.interval_ms = 1000;
    s.method = "GE T";
    assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL);
    s.method = NULL;
    weft_check_header_t h = {"X-A", "a\r\nb"};
    s.headers = &h;
    s.n_headers = 1;
    assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL);
    h = (weft_check_header_t){"Content-Length", "3"};
    assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL);
    s.headers = NULL;
    assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL); /* n_headers without headers */
    s.n_headers = 0;
    s.kind = WEFT_CHECK_TCP;
    const char *tbad[] = {"127.0.0.1", "127.0.0.1:80/x", "tcp://127.0.0.1:80", "[x]:80"};
    for (size_t i = 0; i < sizeof(tbad) / sizeof(tbad[0]); i++) {
        s.target = tbad[i];
        assert_int_equal(weft_checker_add(c, &s), WEFT_EINVAL);
    }
    /* max_checks: two are held (or on their way), a third is refused */
    s.target = "[::1]:1";
    s.interval_ms = 3600 * 1000;
    assert_int_equal(weft_checker_add(c, &s), 0);
    s.key = 2;
    s.target = "127.0.0.1:1";
    assert_int_equal(weft_checker_add(c, &s), 0);
    s.key = 3;
    assert_int_equal(weft_checker_add(c, &s), WEFT_ELIMIT);
    weft_checker_free(c);
}

/* add and remove from several threads at once (a TSan target): every post is applied. */
#define NTHREADS 4
#define PER      250

static weft_checker_t *mt_checker;
static uint16_t mt_port;

static void *mt_main(void *arg)
{
    uint64_t base = 1000 + (uint64_t)(uintptr_t)arg * PER;
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%u", mt_port);
    weft_check_spec_t s = {.kind = WEFT_CHECK_TCP,
                           .target = target,
                           .interval_ms = 3600 * 1000,
                           .initial = WEFT_HEALTH_CRITICAL};
    for (uint64_t i = 0; i < PER; i++) {
        s.key = base + i;
        assert_int_equal(weft_checker_add(mt_checker, &s), 0);
    }
    for (uint64_t i = 0; i < PER; i += 2)
        assert_int_equal(weft_checker_remove(mt_checker, base + i), 0);
    return NULL;
}

static void test_threads(void **state)
{
    mt_checker = checker(0, 0);
    mt_port = closed_port();
    pthread_t th[NTHREADS];
    for (uintptr_t i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mt_main, (void *)i), 0);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    /* every post above is linked; one more, whose first event says they were all applied */
    char url[128];
    weft_check_spec_t s = http_spec(15, "/alt/15", url, sizeof(url));
    s.initial = WEFT_HEALTH_PASSING; /* alt answers 200 first: no change until the 500 */
    assert_int_equal(weft_checker_add(mt_checker, &s), 0);
    wait_nth(15, 0);
    assert_int_equal(weft_checker_stats(mt_checker).checks, NTHREADS * PER / 2 + 1);
    weft_checker_free(mt_checker);
}

/* ---- schedule (wall-clock bounds: RUN_SERIAL) ---- */

/* First runs are spread over the interval (Consul's stagger): 100 checks added at once with
 * a 1 s interval do not all fire together. */
static void test_jitter(void **state)
{
    pthread_mutex_lock(&smu);
    first_n = 0;
    pthread_mutex_unlock(&smu);
    weft_checker_t *c = checker(0, 0);
    char url[128];
    for (uint64_t k = 300; k < 400; k++) {
        weft_check_spec_t s = http_spec(k, "/first", url, sizeof(url));
        s.interval_ms = 1000;
        assert_int_equal(weft_checker_add(c, &s), 0);
    }
    struct timespec ts = deadline();
    pthread_mutex_lock(&smu);
    while (first_n < 100) assert_int_equal(pthread_cond_timedwait(&scv, &smu, &ts), 0);
    uint64_t spread = first_ns[99] - first_ns[0];
    pthread_mutex_unlock(&smu);
    /* 100 uniform starts over 1 s span ~980 ms; all within 300 ms has odds below 1e-40 */
    assert_true(spread >= 300 * 1000000ull);
    assert_true(spread < 1100 * 1000000ull); /* and all within the first interval */
    weft_checker_free(c);
}

/* 200 checks at a 100 ms interval: 2,000 runs a second, started on time. */
static void test_lateness(void **state)
{
    pthread_mutex_lock(&smu);
    count_hits = 0;
    count_target = 5000; /* 2.5 s: the stats are computed at least twice */
    pthread_mutex_unlock(&smu);
    weft_checker_t *c = checker(0, 0);
    char url[128];
    for (uint64_t k = 400; k < 600; k++) {
        weft_check_spec_t s = http_spec(k, "/count", url, sizeof(url));
        s.interval_ms = 100;
        assert_int_equal(weft_checker_add(c, &s), 0);
    }
    struct timespec ts = deadline();
    pthread_mutex_lock(&smu);
    while (count_hits < count_target) assert_int_equal(pthread_cond_timedwait(&scv, &smu, &ts), 0);
    pthread_mutex_unlock(&smu);
    weft_checker_stats_t st = weft_checker_stats(c);
    print_message("runs %llu skipped %llu late p99 %llu us max %llu us\n",
                  (unsigned long long)st.runs, (unsigned long long)st.skipped,
                  (unsigned long long)st.late_p99_us, (unsigned long long)st.late_max_us);
    assert_int_equal(st.checks, 200);
    assert_true(st.runs >= 5000);
    assert_true(st.late_max_us > 0);
    assert_true(st.late_p99_us <= st.late_max_us);
    assert_true(st.late_p99_us < 100 * 1000); /* sanitizer builds included */
    weft_checker_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_http_passing, test_setup),
        cmocka_unit_test_setup(test_http_warning, test_setup),
        cmocka_unit_test_setup(test_http_critical, test_setup),
        cmocka_unit_test_setup(test_http_refused, test_setup),
        cmocka_unit_test_setup(test_http_timeout, test_setup),
        cmocka_unit_test_setup(test_http_long_body, test_setup),
        cmocka_unit_test_setup(test_output_utf8, test_setup),
        cmocka_unit_test_setup(test_http_request, test_setup),
        cmocka_unit_test_setup(test_tcp, test_setup),
        cmocka_unit_test_setup(test_thresholds, test_setup),
        cmocka_unit_test_setup(test_thresholds_warning, test_setup),
        cmocka_unit_test_setup(test_thresholds_success, test_setup),
        cmocka_unit_test_setup(test_replace_resets, test_setup),
        cmocka_unit_test_setup(test_remove, test_setup),
        cmocka_unit_test_setup(test_remove_in_flight, test_setup),
        cmocka_unit_test_setup(test_no_overlap, test_setup),
        cmocka_unit_test_setup(test_max_concurrent, test_setup),
        cmocka_unit_test_setup(test_invalid, test_setup),
        cmocka_unit_test_setup(test_threads, test_setup),
        cmocka_unit_test_setup(test_jitter, test_setup),
        cmocka_unit_test_setup(test_lateness, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
