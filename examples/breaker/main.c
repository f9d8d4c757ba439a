/*
 * breaker - a service whose calls to a peer go through libweft's circuit breaker: the
 * seed's @CircuitBreaker around ServiceClient.call, done by the SDK's discovery client.
 *
 *   breaker --peer NAME [--path /] [--every 200] [--failures 3] [--open-for 1000]
 *           [--registry http://127.0.0.1:8500] [--name breaker] [--port 8082] ...
 *
 * Every --every ms, worker 0 calls service NAME by name at --path (GET) through its
 * discovery client (weft_service_discovery, weft/discovery.h), whose breaker per instance
 * opens after --failures failures in a row (a 5xx, a refused or broken connection, a
 * timeout), fails calls fast while open (WEFT_EBREAKER: nothing is sent), lets one trial
 * through after --open-for ms (doubling at each re-open, up to 8 times that), and closes
 * when the trial succeeds. Each transition is printed on stdout, one line each:
 *
 *     breaker service=peer instance=peer-1 closed -> open reason=consecutive_failures
 *
 * and logged by the SDK (comp=client), and /metrics shows the SDK's
 * weft_client_breaker_state{service,instance,worker} (0 closed, 1 open, 2 half-open) and
 * weft_client_breaker_transitions_total{service,instance,from,to,reason}, besides this
 * example's breaker_example_calls_total{result} (ok: a 2xx-4xx answer; failed: 5xx or no
 * answer; fast_failed: refused by the breaker).
 *
 * GET /status   200 JSON: {"calls", "ok", "failed", "fast_failed", "last",
 *               "transitions": ["closed->open", ...]} (the last 64, oldest first)
 * GET /health, GET /metrics: from the SDK.
 * Every other flag is the SDK's standard settings (weft_service_options_from_args: --help
 * lists them); without --registry (or WEFT_REGISTRY) there is nothing to call.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "weft/weft.h"

#define MAX_TRANSITIONS 64

static weft_service_t *svc;
static const char *peer, *path = "/";
static uint64_t every_ms = 200;
static int part;

/* What /status reports: written by worker 0, read by any worker. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t calls, ok, failed, fast_failed;
    char last[64];
    char transitions[MAX_TRANSITIONS][24];
    unsigned ntransitions; /* total; the last MAX_TRANSITIONS are kept */
} st;

static weft_counter_t *c_ok, *c_failed, *c_fast;

typedef struct caller_s {
    uv_timer_t timer;
    uv_loop_t *loop;
    bool stopping;
    bool in_flight;
} caller_t;

static void on_breaker(void *data, const char *service, const char *instance,
                       weft_breaker_state_t from, weft_breaker_state_t to,
                       weft_breaker_reason_t reason)
{
    (void)data;
    if (from == to) return; /* a new instance's breaker, closed */
    printf("breaker service=%s instance=%s %s -> %s reason=%s\n", service, instance,
           weft_breaker_state_name(from), weft_breaker_state_name(to),
           weft_breaker_reason_name(reason));
    fflush(stdout);
    pthread_mutex_lock(&mu);
    snprintf(st.transitions[st.ntransitions % MAX_TRANSITIONS], sizeof(st.transitions[0]), "%s->%s",
             weft_breaker_state_name(from), weft_breaker_state_name(to));
    st.ntransitions++;
    pthread_mutex_unlock(&mu);
}

static void on_result(const weft_discovery_result_t *r, void *arg)
{
    caller_t *c = arg;
    c->in_flight = false;
    if (r->err == WEFT_ECANCELED) return; /* shutting down */
    pthread_mutex_lock(&mu);
    st.calls++;
    if (r->err == 0 && r->status < 500) {
        st.ok++;
        weft_counter_inc(c_ok);
        snprintf(st.last, sizeof(st.last), "%d", r->status);
    } else if (r->err == WEFT_EBREAKER) {
        st.fast_failed++;
        weft_counter_inc(c_fast);
        snprintf(st.last, sizeof(st.last), "%s", weft_err_name(r->err));
    } else {
        st.failed++;
        weft_counter_inc(c_failed);
        if (r->err)
            snprintf(st.last, sizeof(st.last), "%s", weft_err_name(r->err));
        else
            snprintf(st.last, sizeof(st.last), "%d", r->status);
    }
    pthread_mutex_unlock(&mu);
}

static void tick(uv_timer_t *t)
{
    caller_t *c = t->data;
    if (c->stopping || c->in_flight) return; /* one call at a time: a slow peer slows us */
    weft_discovery_t *d = weft_service_discovery(svc, c->loop);
    if (!d) return;
    weft_discovery_req_t r = {.service = peer, .target = path, .timeout_ms = 2000};
    if (weft_discovery_call(d, &r, on_result, c, NULL) == 0) c->in_flight = true;
}

static void worker_init(weft_host_t *h, uv_loop_t *loop, unsigned index, void *state, void *arg)
{
    caller_t *c = state;
    c->loop = loop;
    if (index != 0) return; /* one caller is enough to watch one breaker */
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, tick, every_ms, every_ms);
}

static void worker_stop(weft_host_t *h, uv_loop_t *loop, unsigned index, void *state, void *arg)
{
    caller_t *c = state;
    c->stopping = true;
    if (index == 0) uv_close((uv_handle_t *)&c->timer, NULL);
}

static void status(weft_http_request_t *req, void *arg)
{
    char *out = weft_http_request_alloc(req, 4096);
    if (!out) {
        weft_http_respond(req, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    pthread_mutex_lock(&mu);
    int n = snprintf(out, 4096,
                     "{\"calls\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
                     ",\"fast_failed\":%" PRIu64 ",\"last\":\"%s\",\"transitions\":[",
                     st.calls, st.ok, st.failed, st.fast_failed, st.last);
    unsigned first = st.ntransitions > MAX_TRANSITIONS ? st.ntransitions - MAX_TRANSITIONS : 0;
    for (unsigned i = first; i < st.ntransitions; i++)
        n += snprintf(out + n, 4096 - (size_t)n, "%s\"%s\"", i > first ? "," : "",
                      st.transitions[i % MAX_TRANSITIONS]);
    pthread_mutex_unlock(&mu);
    n += snprintf(out + n, 4096 - (size_t)n, "]}\n");
    weft_http_respond(req, 200, "application/json", out, (size_t)n);
}

/* Takes this example's own flags out of argv (the rest are the SDK's); 0, or -1 with a
 * message on stderr. */
static int own_flags(int *argc, char **argv, weft_discovery_options_t *co)
{
    int k = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        bool ours = strcmp(a, "--peer") == 0 || strcmp(a, "--path") == 0 ||
                    strcmp(a, "--every") == 0 || strcmp(a, "--failures") == 0 ||
                    strcmp(a, "--open-for") == 0;
        if (!ours) {
            argv[k++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc) {
            fprintf(stderr, "breaker: %s: a value is required\n", a);
            return -1;
        }
        const char *v = argv[++i];
        char *end;
        unsigned long long x = strtoull(v, &end, 10);
        bool num = *v && !*end && x > 0 && x < 86400000ull;
        if (strcmp(a, "--peer") == 0)
            peer = v;
        else if (strcmp(a, "--path") == 0 && v[0] == '/')
            path = v;
        else if (strcmp(a, "--every") == 0 && num)
            every_ms = x;
        else if (strcmp(a, "--failures") == 0 && num && x < 1000)
            co->breaker_conf.consecutive_failures = (unsigned)x;
        else if (strcmp(a, "--open-for") == 0 && num) {
            co->breaker_conf.open_for_ms = x;
            co->breaker_conf.open_for_max_ms = 8 * x;
        } else {
            fprintf(stderr, "breaker: %s: bad value \"%s\"\n", a, v);
            return -1;
        }
    }
    argv[k] = NULL;
    *argc = k;
    if (!peer) {
        fprintf(stderr, "breaker: --peer NAME is required\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    weft_discovery_options_t co;
    weft_discovery_options_init(&co);
    co.breaker_conf.consecutive_failures = 3;
    co.breaker_conf.open_for_ms = 1000;
    co.breaker_conf.open_for_max_ms = 8000;
    co.breaker_conf.half_open_requests = 1;
    co.on_breaker = on_breaker;
    if (own_flags(&argc, argv, &co) != 0) return 2;

    weft_service_options_t o;
    weft_service_options_init(&o);
    o.name = "breaker";
    o.version = WEFT_VERSION;
    o.port = 8082;
    o.workers = 2;
    weft_service_settings_t *settings;
    char err[512];
    int rc = weft_service_options_from_args(&o, argc, argv, &settings, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "breaker: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    o.registry.client = &co;
    if ((rc = weft_service_new(&o, &svc)) != 0) {
        fprintf(stderr, "breaker: %s\n", weft_strerror(rc));
        weft_service_settings_free(settings);
        return 2;
    }
    static const char *const lbl[] = {"result"};
    weft_metrics_family_t *fam;
    if (weft_metrics_counter_new(weft_service_metrics(svc), "breaker_example_calls_total",
                                 "Calls to the peer, by how they ended.", lbl, 1, &fam) == 0) {
        const char *v[1] = {"ok"};
        c_ok = weft_metrics_counter_child(fam, v);
        v[0] = "failed";
        c_failed = weft_metrics_counter_child(fam, v);
        v[0] = "fast_failed";
        c_fast = weft_metrics_counter_child(fam, v);
    }
    weft_host_part_t p = {.name = "breaker-caller",
                          .state_size = sizeof(caller_t),
                          .worker_init = worker_init,
                          .worker_stop = worker_stop};
    if ((part = weft_host_add_part(weft_service_host(svc), &p)) < 0) {
        fprintf(stderr, "breaker: %s\n", weft_strerror(part));
        weft_service_free(svc);
        weft_service_settings_free(settings);
        return 2;
    }
    weft_service_route(svc, "GET", "/status", status, NULL);
    rc = weft_service_run(svc);
    weft_service_free(svc);
    weft_service_settings_free(settings);
    return rc == 0 ? 0 : 1;
}
