/*
 * test_registrar.c - a weft_service registering itself (weft_service_registry_t,
 * weft/service.h) with a fake registry: a weft HTTP server on a worker thread of the test's
 * that records what the agent endpoints receive and answers with statuses the test sets.
 * The service runs on a thread of its own; the test thread waits for the fake's records
 * (a condition variable signalled on every request, with a 10 s guard), never for a time.
 *
 * Covered: the registration's body (default ID, address, port, tags, meta with the
 * version, the HTTP check and its URL, intervals, the first status); the deregistration
 * arriving before weft_service_run returns; registrations retried until the registry takes
 * them; TTL heartbeats carrying the service's own check status, and a registry that lost
 * the instance (404) getting it again, from a heartbeat and from the HTTP mode's look-up;
 * the deregistration at the start of the drain (http.shutdown_delay_ms); a registry that
 * never answers the deregistration, which holds the exit no longer than registry.timeout;
 * weft_service_discovery; bad registry options.
 */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "loopback.h"

#include "weft/service.h"
#include "weft/workers.h"

/* ---- the fake registry, on a worker thread ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static struct {
    weft_http_server_t *srv;
    weft_workers_t *workers;
    uint16_t port;
    /* under mu */
    unsigned registers, registers_ok, deregisters, updates, lookups;
    int register_status, update_status, lookup_status;
    bool hold_deregister;
    weft_http_request_t *held;
    char register_body[4096], update_body[1024], update_target[256], deregister_id[256];
    bool deregistered_while_running;
} fk;

static atomic_bool running; /* weft_service_run has not returned */

static void record(char *dst, size_t cap, weft_str_t v)
{
    snprintf(dst, cap, "%.*s", (int)v.len, v.base ? v.base : "");
}

static void h_register(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&mu);
    fk.registers++;
    record(fk.register_body, sizeof(fk.register_body), req->body);
    int st = fk.register_status;
    if (st == 200) fk.registers_ok++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    weft_http_respond(req, st, "application/json", "{}", 2);
}

static void release_held(weft_http_request_t *req, weft_http_event_t ev)
{
    pthread_mutex_lock(&mu);
    fk.held = NULL;
    pthread_mutex_unlock(&mu);
    weft_http_respond(req, 200, "application/json", "{}", 2);
}

static void h_deregister(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&mu);
    fk.deregisters++;
    record(fk.deregister_id, sizeof(fk.deregister_id), weft_http_request_param(req, "id"));
    fk.deregistered_while_running = atomic_load(&running);
    bool hold = fk.hold_deregister;
    if (hold) fk.held = req;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (hold) {
        req->on_event = release_held; /* answered only when the client goes, or at shutdown */
        return;
    }
    weft_http_respond(req, 200, "application/json", "{}", 2);
}

static void h_update(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&mu);
    fk.updates++;
    record(fk.update_body, sizeof(fk.update_body), req->body);
    record(fk.update_target, sizeof(fk.update_target), req->path);
    int st = fk.update_status;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    weft_http_respond(req, st, "application/json", "{}", 2);
}

static void h_lookup(weft_http_request_t *req, void *arg)
{
    pthread_mutex_lock(&mu);
    fk.lookups++;
    int st = fk.lookup_status;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    weft_http_respond(req, st, "application/json", "{}", 2);
}

static void attach(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_attach(fk.srv, loop, i);
}

static void stop(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_shutdown(fk.srv, i, NULL, NULL);
}

/* Waits (10 s at most) until cond holds, reading the fake's state under mu. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        struct timespec dl;                                                                        \
        clock_gettime(CLOCK_REALTIME, &dl);                                                        \
        dl.tv_sec += 10;                                                                           \
        pthread_mutex_lock(&mu);                                                                   \
        while (!(cond) && pthread_cond_timedwait(&cv, &mu, &dl) == 0) {                            \
        }                                                                                          \
        bool ok_ = (cond);                                                                         \
        pthread_mutex_unlock(&mu);                                                                 \
        if (!ok_) fail_msg("not within 10 s: %s", #cond);                                          \
    } while (0)

static int setup(void **state)
{
    memset(&fk, 0, sizeof(fk));
    fk.register_status = fk.update_status = fk.lookup_status = 200;
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.shutdown_timeout_ms = 500;
    assert_int_equal(weft_http_server_new(&o, 1, &fk.srv), 0);
    weft_http_route_t r = {.handler = h_register};
    weft_http_server_route(fk.srv, "PUT", "/v1/agent/service/register", &r);
    r.handler = h_deregister;
    weft_http_server_route(fk.srv, "PUT", "/v1/agent/service/deregister/:id", &r);
    r.handler = h_update;
    weft_http_server_route(fk.srv, "PUT", "/v1/agent/check/update/:id", &r);
    r.handler = h_lookup;
    weft_http_server_route(fk.srv, "GET", "/v1/agent/service/:id", &r);
    assert_int_equal(weft_http_server_bind(fk.srv, NULL, 0), 0);
    fk.port = weft_http_server_port(fk.srv);
    assert_int_equal(weft_workers_new(1, &fk.workers), 0);
    weft_workers_start(fk.workers, attach, NULL);
    return 0;
}

static int teardown(void **state)
{
    weft_workers_stop(fk.workers, stop, NULL);
    weft_workers_join(fk.workers);
    weft_workers_free(fk.workers);
    weft_http_server_free(fk.srv);
    return 0;
}

/* ---- the service under test, on a thread ---- */

static weft_service_t *svc;
static pthread_t runner;
static int run_rc;
static bool started;
static char url[64];

static void on_start(weft_service_t *s, void *arg)
{
    pthread_mutex_lock(&mu);
    started = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *run(void *arg)
{
    run_rc = weft_service_run(svc);
    atomic_store(&running, false);
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void options(weft_service_options_t *o)
{
    weft_service_options_init(o);
    o->name = "svc-reg";
    o->version = "1.2.3";
    o->port = 0;
    o->workers = 2;
    o->tracing = false;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", fk.port);
    o->registry.url = url;
    o->registry.check_interval_ms = 1000;
}

static void start(const weft_service_options_t *o)
{
    started = false;
    assert_int_equal(weft_service_new(o, &svc), 0);
    weft_service_on_start(svc, on_start, NULL);
    atomic_store(&running, true);
    pthread_create(&runner, NULL, run, NULL);
    WAIT_FOR(started);
}

static void finish(void)
{
    weft_service_stop(svc);
    pthread_join(runner, NULL);
    assert_int_equal(run_rc, 0);
    weft_service_free(svc);
    svc = NULL;
}

static const char *jstr(json_t *o, const char *path)
{
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
        return jstr(json_object_get(o, key), dot + 1);
    }
    const char *v = json_string_value(json_object_get(o, path));
    return v ? v : "(none)";
}

/* ---- tests ---- */

static void test_registers_and_deregisters(void **state)
{
    weft_service_options_t o;
    options(&o);
    const char *tags[] = {"blue", "v1"};
    weft_discovery_kv_t meta[] = {{"team", "core"}};
    o.registry.tags = tags;
    o.registry.ntags = 2;
    o.registry.meta = meta;
    o.registry.nmeta = 1;
    o.registry.resync_ms = 0;
    start(&o);
    WAIT_FOR(fk.registers == 1);
    uint16_t port = weft_service_port(svc);
    char id[96], check[96];
    snprintf(id, sizeof(id), "svc-reg-127.0.0.1-%u", port);
    snprintf(check, sizeof(check), "http://127.0.0.1:%u/health", port);
    pthread_mutex_lock(&mu);
    json_error_t je;
    json_t *j = json_loads(fk.register_body, 0, &je);
    pthread_mutex_unlock(&mu);
    assert_non_null(j);
    assert_string_equal(jstr(j, "ID"), id);
    assert_string_equal(jstr(j, "Name"), "svc-reg");
    assert_string_equal(jstr(j, "Address"), "127.0.0.1");
    assert_int_equal(json_integer_value(json_object_get(j, "Port")), port);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "Tags"), 0)), "blue");
    assert_string_equal(jstr(j, "Meta.team"), "core");
    assert_string_equal(jstr(j, "Meta.version"), "1.2.3");
    assert_string_equal(jstr(j, "Check.HTTP"), check);
    assert_string_equal(jstr(j, "Check.Interval"), "1000ms");
    assert_string_equal(jstr(j, "Check.DeregisterCriticalServiceAfter"), "60000ms");
    assert_string_equal(jstr(j, "Check.Status"), "passing");
    json_decref(j);
    finish();
    /* the deregistration came before weft_service_run returned */
    WAIT_FOR(fk.deregisters == 1 && fk.deregistered_while_running && fk.registers == 1 &&
             strcmp(fk.deregister_id, id) == 0);
}

static void test_retries_until_the_registry_takes_it(void **state)
{
    fk.register_status = 503;
    weft_service_options_t o;
    options(&o);
    o.registry.id = "fixed-1";
    start(&o);
    WAIT_FOR(fk.registers >= 2); /* the second after a backoff of 0.25-0.5 s */
    pthread_mutex_lock(&mu);
    fk.register_status = 200;
    pthread_mutex_unlock(&mu);
    WAIT_FOR(fk.registers_ok == 1);
    finish();
    WAIT_FOR(strcmp(fk.deregister_id, "fixed-1") == 0 && fk.registers_ok == 1);
}

static weft_check_status_t db_state = WEFT_CHECK_PASSING;
static weft_check_status_t db_check(void *arg, char *out, size_t cap)
{
    snprintf(out, cap, "slow");
    return db_state;
}

static void test_ttl_heartbeats_and_a_lost_registration(void **state)
{
    weft_service_options_t o;
    options(&o);
    o.registry.check = WEFT_DISCOVERY_CHECK_TTL;
    db_state = WEFT_CHECK_WARNING;
    assert_int_equal(weft_service_new(&o, &svc), 0);
    weft_service_check(svc, "db", db_check, NULL);
    weft_service_on_start(svc, on_start, NULL);
    started = false;
    atomic_store(&running, true);
    pthread_create(&runner, NULL, run, NULL);
    WAIT_FOR(fk.registers == 1);
    pthread_mutex_lock(&mu);
    assert_non_null(strstr(fk.register_body, "\"TTL\":\"3000ms\""));
    assert_non_null(strstr(fk.register_body, "\"Status\":\"warning\""));
    assert_null(strstr(fk.register_body, "\"HTTP\""));
    pthread_mutex_unlock(&mu);
    WAIT_FOR(fk.updates >= 1);
    pthread_mutex_lock(&mu);
    char want[96];
    snprintf(want, sizeof(want), "/v1/agent/check/update/service:svc-reg-127.0.0.1-%u",
             weft_service_port(svc));
    assert_string_equal(fk.update_target, want);
    assert_string_equal(fk.update_body, "{\"Status\":\"warning\",\"Output\":\"db: slow\"}");
    fk.update_status = 404; /* the registry lost it: the next heartbeat registers again */
    pthread_mutex_unlock(&mu);
    WAIT_FOR(fk.registers == 2);
    finish();
    db_state = WEFT_CHECK_PASSING;
}

static void test_lookup_finds_a_lost_registration(void **state)
{
    weft_service_options_t o;
    options(&o);
    o.registry.resync_ms = 200;
    start(&o);
    WAIT_FOR(fk.lookups >= 1 && fk.registers == 1);
    pthread_mutex_lock(&mu);
    fk.lookup_status = 404;
    pthread_mutex_unlock(&mu);
    WAIT_FOR(fk.registers == 2);
    finish();
}

static void test_drain_deregisters_first(void **state)
{
    weft_service_options_t o;
    options(&o);
    o.http.shutdown_delay_ms = 60000;
    start(&o);
    WAIT_FOR(fk.registers == 1);
    weft_service_stop(svc); /* the drain begins: deregistered while still serving */
    WAIT_FOR(fk.deregisters == 1);
    assert_true(atomic_load(&running));
    int fd = test_dial(weft_service_port(svc));
    const char rq[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(fd, rq, sizeof(rq) - 1, 0);
    char buf[512] = "";
    size_t n = 0;
    ssize_t r;
    while ((r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0) n += (size_t)r;
    close(fd);
    assert_non_null(strstr(buf, "503"));
    assert_non_null(strstr(buf, "draining"));
    finish(); /* a second stop skips the rest of the delay; nothing is sent again */
    WAIT_FOR(fk.deregisters == 1);
}

static void test_deregistration_is_bounded(void **state)
{
    fk.hold_deregister = true;
    weft_service_options_t o;
    options(&o);
    o.registry.timeout_ms = 300;
    start(&o);
    WAIT_FOR(fk.registers == 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    finish();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    WAIT_FOR(fk.deregisters == 1);
    assert_true(s >= 0.29 && s < 3.0);
}

static _Atomic int found = -1;
static void h_which(weft_http_request_t *req, void *arg)
{
    weft_discovery_t *d = weft_service_discovery(svc, req->loop);
    atomic_store(&found, d != NULL && d == weft_service_discovery(svc, req->loop));
    weft_http_respond(req, 200, "text/plain", "ok", 2);
}

static void test_discovery_per_worker(void **state)
{
    weft_service_options_t o;
    options(&o);
    assert_int_equal(weft_service_new(&o, &svc), 0);
    weft_service_route(svc, "GET", "/which", h_which, NULL);
    weft_service_on_start(svc, on_start, NULL);
    /* A loop of no worker's, open across the run: made and closed while the service's
     * threads make theirs, its descriptor could be reused by one of them, which TSan
     * reports as a race on the descriptor (CI saw it). */
    uv_loop_t other = {.data = NULL}; /* uv_loop_init keeps data; the host reads it */
    uv_loop_init(&other);
    started = false;
    atomic_store(&running, true);
    pthread_create(&runner, NULL, run, NULL);
    WAIT_FOR(started);
    int fd = test_dial(weft_service_port(svc));
    const char rq[] = "GET /which HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(fd, rq, sizeof(rq) - 1, 0);
    char buf[256];
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    close(fd);
    assert_int_equal(atomic_load(&found), 1);         /* made once, then the same */
    assert_null(weft_service_discovery(svc, &other)); /* not a worker's */
    finish();
    uv_loop_close(&other);
    /* without a registry: none */
    options(&o);
    o.registry.url = NULL;
    atomic_store(&found, -1);
    assert_int_equal(weft_service_new(&o, &svc), 0);
    weft_service_route(svc, "GET", "/which", h_which, NULL);
    weft_service_on_start(svc, on_start, NULL);
    started = false;
    atomic_store(&running, true);
    pthread_create(&runner, NULL, run, NULL);
    WAIT_FOR(started);
    fd = test_dial(weft_service_port(svc));
    send(fd, rq, sizeof(rq) - 1, 0);
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    close(fd);
    assert_int_equal(atomic_load(&found), 0);
    assert_string_equal(weft_service_registry_id(svc), "");
    finish();
}

static void test_bad_registry_options(void **state)
{
    weft_service_options_t o;
    weft_service_t *s = NULL;
    const char *urls[] = {"ftp://127.0.0.1:1", "http://127.0.0.1", "http://127.0.0.1:1/v1"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        options(&o);
        o.registry.url = urls[i];
        assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    }
    options(&o);
    o.registry.url = "https://127.0.0.1:8501";
    assert_int_equal(weft_service_new(&o, &s), WEFT_EUNSUPPORTED);
    options(&o);
    o.registry.check_interval_ms = 500;
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    options(&o);
    o.registry.id = "a/b";
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    options(&o);
    const char *tags[65] = {0};
    for (int i = 0; i < 65; i++) tags[i] = "t";
    o.registry.tags = tags;
    o.registry.ntags = 65;
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    options(&o);
    o.registry.timeout_ms = 0;
    assert_int_equal(weft_service_new(&o, &s), WEFT_EINVAL);
    /* an empty url is no registry */
    options(&o);
    o.registry.url = "";
    assert_int_equal(weft_service_new(&o, &s), 0);
    weft_service_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registers_and_deregisters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_until_the_registry_takes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_heartbeats_and_a_lost_registration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lookup_finds_a_lost_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_deregisters_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deregistration_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_per_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_registry_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
