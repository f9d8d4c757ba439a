/*
 * history_sample.c - the gateway's history in `weft serve`: the sampler that feeds the ring
 * (history.c) once a second, and the API that reads it on the API port.
 *
 *   GET /v1/weft/history?series=routes|upstreams&since=MS&route=NAME
 *       the samples taken after since (unix ms; 0 or absent: all 15 minutes) as arrays of
 *       numbers per series, aligned with "times" (docs/gateway.md "History")
 *   GET /v1/weft/history/transitions?since=MS&route=NAME&upstream=HOST:PORT
 *       the breakers' last transitions per route with their reasons in words
 *
 * The sampler. A timer on the control loop (the host's, where reloads also run, so the
 * route table it reads, g->cur, never changes under it) fires every second and reads what
 * the gateway already keeps, taking no lock that a request takes:
 *   - the metric families (weft_gateway_requests_total{route,upstream,code},
 *     weft_gateway_request_duration_seconds{route}, weft_gateway_upstream_errors_total
 *     {route,kind}, weft_ratelimit_rejected_total{route,shadow}): their per-thread shards
 *     are summed as a scrape sums them (relaxed atomic loads, metrics/each.h);
 *   - each route's breakers (gw_policy_sample): the state is an atomic; the window's failure
 *     rate and the time until half-open are read under the breaker's mutex only when
 *     pthread_mutex_trylock gets it at once (a request holding it is never waited for: the
 *     sample then has the state and nulls);
 *   - the retry budget's counters (atomics).
 * So the request path pays nothing for the history: no store, no atomic, no branch. The
 * ring is under a mutex of its own (hs->mu) between the sampler and the API's readers; a
 * reader holds it while it writes its answer (a few ms for a full ring), and only the
 * sampler and other readers wait for it.
 *
 * Breaker transitions are not copied: the API reads each route policy's own log (the last
 * GW_TRANSITIONS_KEPT, with their reasons, policy.c) from the current table, as
 * /v1/gateway/upstreams does; a route whose policy settings a reload changed starts a new
 * log.
 *
 * Threads: the sampler on the control loop; the API on the worker that received it.
 */
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json_write.h"
#include "core/qs.h"
#include "gateway/gw_int.h"
#include "gateway/history.h"
#include "metrics/each.h"
#include "weft/log.h"
#include "weft/weft.h"

#define HIST_MAX_BODY (32u << 20) /* a full ring of 4096 routes is about 30 MB of JSON */

struct gw_history_s {
    weft_gateway_t *g;
    pthread_mutex_t mu; /* the ring: the sampler and the readers */
    gw_hist_t *h;       /* NULL: history.enabled is false */
    uv_timer_t timer;
    bool timer_on;
    int part;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the sampler ---- */

static void on_requests(const char *const *v, double value, const uint64_t *b, void *arg)
{
    gw_hist_t *h = arg;
    (void)b;
    bool err = v[2][0] == '5'; /* "503": the codes are three digits */
    gw_hist_slot_t *s = gw_hist_key(h, v[0], NULL, false);
    if (s) {
        s->cum[GW_HC_REQ] += value;
        if (err) s->cum[GW_HC_ERR] += value;
    }
    if (strcmp(v[1], "-") == 0) return; /* answered by the gateway before any upstream */
    if ((s = gw_hist_key(h, v[0], v[1], false))) {
        s->cum[GW_HC_REQ] += value;
        if (err) s->cum[GW_HC_ERR] += value;
    }
}

static void on_duration(const char *const *v, double value, const uint64_t *b, void *arg)
{
    gw_hist_t *h = arg;
    (void)value;
    gw_hist_slot_t *s = gw_hist_key(h, v[0], NULL, false);
    if (!s || !b) return;
    for (size_t i = 0; i < GW_HIST_NB; i++) s->buckets[i] += b[i];
}

static void on_errors(const char *const *v, double value, const uint64_t *b, void *arg)
{
    (void)b;
    int c = strcmp(v[1], "retried") == 0                  ? GW_HC_RETRY
            : strcmp(v[1], "retry_budget_exhausted") == 0 ? GW_HC_BUDGET
                                                          : -1;
    gw_hist_slot_t *s = c >= 0 ? gw_hist_key(arg, v[0], NULL, false) : NULL;
    if (s) s->cum[c] += value;
}

static void on_rejected(const char *const *v, double value, const uint64_t *b, void *arg)
{
    (void)b;
    gw_hist_slot_t *s = strcmp(v[1], "false") == 0 ? gw_hist_key(arg, v[0], NULL, false) : NULL;
    if (s) s->cum[GW_HC_RL] += value;
}

typedef struct sample_ctx_s {
    gw_hist_t *h;
    const char *route;
    gw_hist_slot_t *rs; /* the route's slot (NULL: left out) */
} sample_ctx_t;

static void on_breaker(const char *upstream, const gw_breaker_sample_t *b, void *arg)
{
    sample_ctx_t *c = arg;
    gw_hist_slot_t *s = gw_hist_key(c->h, c->route, upstream, true);
    if (!s) return;
    s->gauge[0] = (double)(b->state == WEFT_BREAKER_CLOSED ? 0 : b->state == WEFT_BREAKER_OPEN ? 1
                                                                                                : 2);
    if (b->stats) {
        /* without a failure-rate rule the breaker skips recording most successes (policy.c's
         * fast path), so its window's rate would mean nothing */
        s->gauge[1] = b->rate_rule ? b->failure_rate : NAN;
        s->gauge[2] = (double)b->ms_until_half_open;
    }
    if (!*upstream && c->rs) { /* the route's own breaker sees all of the route's requests */
        s->cum[GW_HC_REQ] = c->rs->cum[GW_HC_REQ];
        s->cum[GW_HC_ERR] = c->rs->cum[GW_HC_ERR];
    }
}

static void sample(gw_history_t *hs, uint64_t loop_ms)
{
    weft_gateway_t *g = hs->g;
    gw_hist_t *h = hs->h;
    pthread_mutex_lock(&hs->mu);
    gw_hist_begin(h);
    const gw_table_t *t = g->cur;
    for (size_t i = 0; t && i < t->n; i++) gw_hist_key(h, t->routes[i].name, NULL, true);
    if (g->have_metrics) {
        weft__metrics_each(g->fam_requests, on_requests, h);
        weft__metrics_each(g->fam_duration, on_duration, h);
        weft__metrics_each(g->fam_errors, on_errors, h);
        weft__metrics_each(g->pm.rl_rejected, on_rejected, h);
    }
    weft_snap_read_lock(); /* the policies' instance indexes are snapshots */
    for (size_t i = 0; t && i < t->n; i++) {
        sample_ctx_t c = {h, t->routes[i].name, gw_hist_key(h, t->routes[i].name, NULL, true)};
        gw_policy_sample(t->routes[i].policy, loop_ms, on_breaker, &c);
    }
    weft_snap_read_unlock();
    weft_retry_budget_stats_t bs;
    weft_retry_budget_stats(g->budget, &bs);
    weft_retry_budget_options_t bo; /* the gateway's budget has the defaults */
    weft_retry_budget_options_init(&bo);
    uint64_t limit = bs.requests_active * bo.ratio / 100;
    if (limit < bo.min_retries) limit = bo.min_retries;
    gw_hist_commit(h, wall_ms(), loop_ms, (double)bs.retries_active, (double)limit);
    pthread_mutex_unlock(&hs->mu);
}

/* The monotonic clock now, in ms: the workers' loop clock (uv_now) is uv_hrtime's, cached at
 * each loop iteration; the control loop's cached one may be old by a long callback, and a
 * rate is per second of this clock. */
static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void on_tick(uv_timer_t *t)
{
    sample(t->data, mono_ms());
}

static void part_start(weft_host_t *h, void *arg)
{
    gw_history_t *hs = arg;
    if (!hs->h) return;
    uv_loop_t *loop = weft_host_loop(h);
    if (uv_timer_init(loop, &hs->timer) != 0) return;
    hs->timer.data = hs;
    hs->timer_on = true;
    /* the first sample at once: it sets every counter's base, so the next is a rate */
    sample(hs, mono_ms());
    uv_timer_start(&hs->timer, on_tick, 1000, 1000);
}

static void part_stop(weft_host_t *h, void *arg)
{
    gw_history_t *hs = arg;
    (void)h;
    if (!hs->timer_on) return;
    hs->timer_on = false;
    uv_timer_stop(&hs->timer);
    uv_close((uv_handle_t *)&hs->timer, NULL);
}

/* ---- the API ---- */

static void respond_json(weft_http_request_t *req, int status, weft_buf_t *b)
{
    if (b->failed || !b->p) {
        static const char big[] = "{\"error\":\"the answer is over its limit (32 MiB) or memory "
                                  "ran out\"}\n";
        weft_http_respond(req, 507, "application/json", big, sizeof(big) - 1);
    } else {
        weft_http_respond(req, status, "application/json", b->p, b->len);
    }
    weft_buf_free(b);
}

static void respond_error(weft_http_request_t *req, int status, const char *param, const char *msg)
{
    weft_buf_t b;
    weft_buf_init(&b, 8192);
    weft_buf_puts(&b, "{\"error\":");
    char s[512];
    int n = snprintf(s, sizeof(s), "%s%s%s", param ? param : "", param ? ": " : "", msg);
    weft_json_put_str(&b, s, n > 0 && (size_t)n < sizeof(s) ? (size_t)n : strlen(msg));
    if (param) {
        weft_buf_puts(&b, ",\"field\":"); /* as the registry's API names it */
        weft_json_put_str(&b, param, strlen(param));
    }
    weft_buf_puts(&b, "}\n");
    respond_json(req, status, &b);
}

/* ?since=: unix ms, digits only. Returns false (400 answered) when bad. */
static bool get_since(weft_http_request_t *req, const weft_qs_t *q, uint64_t *since)
{
    weft_str_t v;
    *since = 0;
    if (!weft_qs_get(q, "since", &v)) return true;
    uint64_t x = 0;
    bool ok = v.len > 0 && v.len <= 19;
    for (size_t i = 0; ok && i < v.len; i++) {
        ok = v.base[i] >= '0' && v.base[i] <= '9';
        x = x * 10 + (uint64_t)(v.base[i] - '0');
    }
    if (!ok) {
        respond_error(req, 400, "since",
                      "must be a time in unix milliseconds (digits, at most 19)");
        return false;
    }
    *since = x;
    return true;
}

/* ?NAME=: decoded into out (cap bytes), "" when absent. Returns false (400 answered) when
 * bad. */
static bool get_name(weft_http_request_t *req, const weft_qs_t *q, const char *name, char *out,
                     size_t cap, bool *given)
{
    weft_str_t v;
    out[0] = 0;
    *given = weft_qs_get(q, name, &v);
    if (!*given) return true;
    if (weft_qs_decode(v, out, cap) < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "must be at most %zu bytes, percent-encoded", cap - 1);
        respond_error(req, 400, name, msg);
        return false;
    }
    return true;
}

static void on_history(weft_http_request_t *req, void *arg)
{
    gw_history_t *hs = arg;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    weft_str_t sv;
    bool upstreams = false;
    if (weft_qs_get(&q, "series", &sv)) {
        if (sv.len == 6 && memcmp(sv.base, "routes", 6) == 0)
            upstreams = false;
        else if (sv.len == 9 && memcmp(sv.base, "upstreams", 9) == 0)
            upstreams = true;
        else
            return respond_error(req, 400, "series", "must be routes or upstreams");
    }
    uint64_t since;
    char route[GW_HIST_ROUTE_MAX];
    bool has_route;
    if (!get_since(req, &q, &since) ||
        !get_name(req, &q, "route", route, sizeof(route), &has_route))
        return;
    if (!hs->h)
        return respond_error(req, 404, NULL,
                             "the history is off (history.enabled: false in the configuration)");
    weft_buf_t b;
    weft_buf_init(&b, HIST_MAX_BODY);
    pthread_mutex_lock(&hs->mu);
    gw_hist_json(hs->h, upstreams, since, has_route ? route : NULL, &b);
    pthread_mutex_unlock(&hs->mu);
    respond_json(req, 200, &b);
}

static void on_transitions(weft_http_request_t *req, void *arg)
{
    gw_history_t *hs = arg;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    uint64_t since;
    char route[GW_HIST_ROUTE_MAX], up[GW_HIST_UP_MAX];
    bool has_route, has_up;
    if (!get_since(req, &q, &since) ||
        !get_name(req, &q, "route", route, sizeof(route), &has_route) ||
        !get_name(req, &q, "upstream", up, sizeof(up), &has_up))
        return;
    weft_buf_t b;
    weft_buf_init(&b, HIST_MAX_BODY);
    gw_transition_t *tr = malloc(GW_TRANSITIONS_KEPT * sizeof(*tr));
    if (!tr) return respond_error(req, 503, NULL, "out of memory");
    weft_buf_puts(&b, "{\"kept_per_route\":");
    weft_buf_put_u64(&b, GW_TRANSITIONS_KEPT);
    weft_buf_puts(&b, ",\"routes\":[");
    weft_snap_read_lock();
    const gw_table_t *t = weft_snap_get(&hs->g->table);
    bool first = true;
    for (size_t i = 0; t && i < t->n; i++) {
        const gw_route_t *r = &t->routes[i];
        if (has_route && strcmp(r->name, route) != 0) continue;
        uint64_t seen;
        size_t n = gw_policy_transitions(r->policy, tr, GW_TRANSITIONS_KEPT, &seen);
        weft_buf_puts(&b, first ? "{" : ",{");
        first = false;
        weft_json_put_key(&b, "route");
        weft_json_put_str(&b, r->name, strlen(r->name));
        weft_buf_puts(&b, ",\"breaker\":");
        weft_buf_puts(&b, r->breaker.on ? "true" : "false");
        weft_buf_puts(&b, ",\"dropped\":");
        weft_buf_put_u64(&b, seen > n ? seen - n : 0);
        weft_buf_puts(&b, ",\"transitions\":[");
        bool f2 = true;
        for (size_t k = 0; k < n; k++) {
            if (tr[k].unix_ms <= since || (has_up && strcmp(tr[k].upstream, up) != 0)) continue;
            weft_buf_puts(&b, f2 ? "{\"time_ms\":" : ",{\"time_ms\":");
            f2 = false;
            weft_buf_put_u64(&b, tr[k].unix_ms);
            weft_buf_puts(&b, ",\"upstream\":");
            weft_json_put_str(&b, tr[k].upstream, strlen(tr[k].upstream));
            weft_buf_puts(&b, ",\"from\":\"");
            weft_buf_puts(&b, weft_breaker_state_name((weft_breaker_state_t)tr[k].from));
            weft_buf_puts(&b, "\",\"to\":\"");
            weft_buf_puts(&b, weft_breaker_state_name((weft_breaker_state_t)tr[k].to));
            weft_buf_puts(&b, "\",\"reason\":\"");
            weft_buf_puts(&b, weft_breaker_reason_name((weft_breaker_reason_t)tr[k].reason));
            weft_buf_puts(&b, "\",\"detail\":");
            weft_json_put_str(&b, tr[k].detail, strlen(tr[k].detail));
            weft_buf_putc(&b, '}');
        }
        weft_buf_puts(&b, "]}");
    }
    weft_snap_read_unlock();
    free(tr);
    weft_buf_puts(&b, "],\"now_ms\":");
    weft_buf_put_u64(&b, wall_ms());
    weft_buf_puts(&b, "}\n");
    respond_json(req, 200, &b);
}

int weft_gateway_history(weft_gateway_t *g, weft_service_t *svc, const gw_history_options_t *o,
                         char *err, size_t errlen)
{
    gw_history_t *hs = calloc(1, sizeof(*hs));
    if (!hs) {
        snprintf(err, errlen, "history: out of memory");
        return WEFT_ENOMEM;
    }
    hs->g = g;
    pthread_mutex_init(&hs->mu, NULL);
    /* the gateway's from now on (weft_gateway_free frees it): the routes and the part
     * added below refer to it, also when a later step fails */
    g->history = hs;
    int rc = 0;
    if (o->enabled) {
        const double *bounds = NULL;
        gw_hist_options_t ho = {.max_routes = o->max_routes, .max_upstreams = o->max_upstreams};
        ho.nbounds = weft__metrics_bounds(g->fam_duration, &bounds);
        ho.bounds = bounds;
        if ((rc = gw_hist_new(&ho, &hs->h)) != 0)
            snprintf(err, errlen, "history: %s", rc == WEFT_EINVAL ? "max_routes and max_upstreams "
                                                                      "must be 1..4096"
                                                                    : "out of memory");
    }
    static const struct {
        const char *pattern;
        weft_http_handler_fn fn;
    } routes[] = {{"/v1/weft/history", on_history},
                  {"/v1/weft/history/transitions", on_transitions}};
    for (size_t i = 0; rc == 0 && i < sizeof(routes) / sizeof(routes[0]); i++) {
        weft_http_route_t rt = {.handler = routes[i].fn, .arg = hs, .max_body = 4096};
        if ((rc = weft_service_route_ex(svc, "GET", routes[i].pattern, &rt)) != 0)
            snprintf(err, errlen, "history: route GET %s: %s", routes[i].pattern,
                     weft_strerror(rc));
    }
    if (rc == 0) {
        weft_host_part_t p = {
            .name = "history", .start = part_start, .stop = part_stop, .arg = hs};
        int id = weft_host_add_part(weft_service_host(svc), &p);
        if (id < 0) {
            rc = id;
            snprintf(err, errlen, "history: cannot add its part: %s", weft_strerror(rc));
        }
    }
    if (rc != 0) return rc;
    if (hs->h)
        weft_info("gateway", "history on", "samples=%d max_routes=%zu max_upstreams=%zu bytes=%zu",
                  GW_HIST_SAMPLES, o->max_routes, o->max_upstreams, gw_hist_bytes(hs->h));
    return 0;
}

void weft__gw_history_free(gw_history_t *hs)
{
    if (!hs) return;
    gw_hist_free(hs->h);
    pthread_mutex_destroy(&hs->mu);
    free(hs);
}
