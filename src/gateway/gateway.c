/*
 * gateway.c - the gateway's listener and its part in the host (see gateway.h).
 *
 * The listener is an HTTP server of its own (the engine of weft/http.h, limits from the
 * http.* settings) with one route: every method, the catch-all pattern, request bodies
 * streamed; its handler is proxy.c's. Each worker has a part state: its HTTP client
 * (keep-alive pools per upstream host:port, made in worker_init on that worker's loop and
 * closed in worker_stop), its balancing counters and the buffer its access log lines are
 * formatted in. The span and the access log are observe.c's (the tracer is the host's; the
 * access log's writer thread is started here and stopped by weft_gateway_free). The route table is
 * a snapshot (route.h) published here; a reload publishes a new one.
 *
 * Reloads (POST /v1/gateway/reload in admin.c, SIGHUP through the part's reload hook) run on
 * the control loop, one at a time: the configuration is read and compiled again (the
 * caller's reload function), and a bad one changes nothing. A good one becomes a new table,
 * published with one pointer swap: a worker's next request matches against it, and every
 * request under way keeps the table it holds, so none is dropped or waits. State carries
 * over by route name: a route whose policy settings are unchanged shares its predecessor's
 * policy (policy.h, reference-counted), so its breaker stays open and its rate limits keep
 * counting; the gateway keeps a hold on the table it published last (g->cur) to know what
 * there is to carry over.
 *
 * Threads: new and free on the thread that builds and runs the host; the hooks on each
 * worker; requests on the worker that received them; reloads on the control loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "gateway/gw_int.h"
#include "weft/log.h"

#define BODY_UNLIMITED ((uint64_t)1 << 50) /* a proxy streams bodies: no size of its own */

static void worker_init(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg)
{
    gw_worker_t *w = state;
    (void)h, (void)arg;
    weft_http_client_options_t co;
    weft_http_client_options_init(&co);
    /* as many idle connections per upstream as may be open: a burst of a thousand requests
     * must not close (and later reopen) all but 64 of its connections (bench/gateway saw
     * that churn at 1,000 client connections with the client's default of 64) */
    co.max_idle_per_host = co.max_conns_per_host;
    int rc = weft_http_client_new(loop, &co, &w->client);
    if (rc != 0) {
        w->client = NULL; /* its requests answer 503 */
        weft_error("gateway", "no upstream client on this worker", "worker=%u err=%s", index,
                   weft_strerror(rc));
    }
    w->rnd = 0x9e3779b97f4a7c15ull * (index + 1) ^ (uint64_t)(uintptr_t)w;
    w->index = index;
    weft_buf_init(&w->alog, 16384); /* an access log line; allocated at the first */
}

static void worker_stop(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg)
{
    gw_worker_t *w = state;
    (void)h, (void)loop, (void)index, (void)arg;
    gw_tunnels_close_all(w);
    if (w->client) weft_http_client_close(w->client, NULL, NULL);
    w->client = NULL;
    weft_buf_free(&w->alog);
}

static double alog_dropped(void *arg)
{
    return (double)gw_alog_dropped(((weft_gateway_t *)arg)->alog);
}

/* The gateway's families in the service's registry (weft_gateway_*, and the policies'). */
static int register_metrics(weft_gateway_t *g, weft_metrics_registry_t *m)
{
    static const char *const rl[] = {"route", "upstream", "code"}, *const dl[] = {"route"},
                             *const el[] = {"route", "kind"}, *const sl[] = {"route", "upstream"},
                             *const tl[] = {"route", "upstream", "from", "to", "reason"},
                             *const ql[] = {"route", "shadow"};
    int rc = weft_metrics_counter_new(m, "weft_gateway_requests_total",
                                      "Requests through the gateway, by route, upstream instance "
                                      "and status (upstream \"-\": answered by the gateway)",
                                      rl, 3, &g->fam_requests);
    if (rc == 0)
        rc = weft_metrics_histogram_new(m, "weft_gateway_request_duration_seconds",
                                        "Time from a request's head to its response's end, by "
                                        "route",
                                        dl, 1, NULL, 0, &g->fam_duration);
    if (rc == 0)
        rc = weft_metrics_counter_new(m, "weft_gateway_upstream_errors_total",
                                      "Upstream failures by route and kind (connect, "
                                      "connect_timeout, head_timeout, body_timeout, timeout, "
                                      "reset, response, no_upstream, retried, "
                                      "retry_budget_exhausted, breaker_open, overflow, other)",
                                      el, 2, &g->fam_errors);
    if (rc == 0)
        rc = weft_metrics_gauge_new(m, "weft_breaker_state",
                                    "Circuit breakers: 0 closed, 1 open, 2 half-open; a route's "
                                    "own with upstream=\"\", an instance's with upstream=HOST:PORT",
                                    sl, 2, &g->pm.state);
    if (rc == 0)
        rc = weft_metrics_counter_new(m, "weft_breaker_transitions_total",
                                      "Circuit breaker transitions by route, upstream instance "
                                      "(\"\": the route's own breaker), states and reason",
                                      tl, 5, &g->pm.transitions);
    if (rc == 0)
        rc = weft_metrics_counter_new(m, "weft_breaker_rejected_total",
                                      "Requests a route's open breaker answered 503 at once", dl, 1,
                                      &g->pm.br_rejected);
    if (rc == 0)
        rc = weft_metrics_counter_new(m, "weft_ratelimit_rejected_total",
                                      "Requests over a route's rate limit (shadow=\"true\": "
                                      "counted, not rejected)",
                                      ql, 2, &g->pm.rl_rejected);
    if (rc == 0)
        rc = weft_metrics_gauge_new(m, "weft_gateway_tunnels_active",
                                    "Open tunnels (upgraded connections, e.g. WebSocket) by route",
                                    dl, 1, &g->fam_tun_active);
    if (rc == 0)
        rc = weft_metrics_counter_new(m, "weft_gateway_tunnels_total",
                                      "Tunnels opened (upstream answered 101) by route", dl, 1,
                                      &g->fam_tun_total);
    if (rc == 0)
        rc = weft_metrics_counter_fn(m, "weft_gateway_access_log_dropped_total",
                                     "Access log lines dropped: the writer's buffer was full, or "
                                     "writing failed",
                                     alog_dropped, g);
    if (rc == 0) weft_metrics_family_set_limit(g->fam_requests, 20000);
    return rc;
}

/* The route of t named name, or NULL. */
static const gw_route_t *find_route(const gw_table_t *t, const char *name)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->routes[i].name, name) == 0) return &t->routes[i];
    return NULL;
}

/* What a reload made of a route: kept (its predecessor's state), changed (same name, other
 * policy settings: fresh state), added. */
enum { GW_KEPT = 0, GW_CHANGED = 1, GW_ADDED = 2 };

/* ,"key":[names of t's routes whose fate is `which`] */
static void put_names(weft_buf_t *b, const char *key, const gw_table_t *t,
                      const unsigned char *fate, int which)
{
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_buf_putc(b, '[');
    bool first = true;
    for (size_t i = 0; i < t->n; i++) {
        if (fate[i] != which) continue;
        if (!first) weft_buf_putc(b, ',');
        first = false;
        weft_json_put_str(b, t->routes[i].name, strlen(t->routes[i].name));
    }
    weft_buf_putc(b, ']');
}

int weft_gateway_reload(weft_gateway_t *g, gw_route_t *routes, size_t n, weft_buf_t *summary,
                        char *err, size_t errlen)
{
    gw_table_t *old = g->cur;
    unsigned char *fate = calloc(n + 1, 1);
    gw_table_t *t = fate ? gw_table_new(routes, n) : NULL; /* gw_table_new owns routes now */
    if (!t) {
        if (!fate) {
            for (size_t i = 0; i < n; i++) gw_route_clear(&routes[i]);
            free(routes);
        }
        free(fate);
        snprintf(err, errlen, "gateway: out of memory");
        return WEFT_ENOMEM;
    }
    /* a worker's row: whole cache lines of its own, so that workers never write one line */
    t->active_stride = (n + 15) & ~(size_t)15;
    size_t asize = (size_t)g->nworkers * t->active_stride * sizeof(*t->active);
    t->active = n ? aligned_alloc(64, asize) : NULL;
    if (t->active) memset(t->active, 0, asize);
    int rc = n && !t->active ? WEFT_ENOMEM : 0;
    if (rc) snprintf(err, errlen, "gateway: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        gw_route_t *r = &t->routes[i];
        const gw_route_t *prev = find_route(old, r->name);
        if (prev && gw_policy_conf_equal(prev, r)) {
            r->policy = prev->policy ? gw_policy_ref(prev->policy) : NULL;
            fate[i] = GW_KEPT;
        } else {
            rc = gw_policy_new(r, g->have_metrics ? &g->pm : NULL, &r->policy, err, errlen);
            fate[i] = prev ? GW_CHANGED : GW_ADDED;
        }
    }
    if (rc != 0) {
        weft_snap_release(t); /* drops the references taken on kept policies too */
        free(fate);
        return rc;
    }
    unsigned long long gen = atomic_fetch_add(&g->generation, 1) + 1;
    if (summary) {
        weft_buf_puts(summary, "{\"routes\":");
        weft_buf_put_u64(summary, n);
        weft_buf_puts(summary, ",\"generation\":");
        weft_buf_put_u64(summary, gen);
        put_names(summary, "kept", t, fate, GW_KEPT);
        put_names(summary, "changed", t, fate, GW_CHANGED);
        put_names(summary, "added", t, fate, GW_ADDED);
        weft_buf_puts(summary, ",\"removed\":[");
        bool first = true;
        for (size_t i = 0; old && i < old->n; i++) {
            if (find_route(t, old->routes[i].name)) continue;
            if (!first) weft_buf_putc(summary, ',');
            first = false;
            weft_json_put_str(summary, old->routes[i].name, strlen(old->routes[i].name));
        }
        weft_buf_puts(summary, "]}");
    }
    free(fate);
    g->cur = weft_snap_ref(t); /* the gateway's hold, beside the cell's reference */
    weft_snap_publish(&g->table, t);
    weft_snap_release(old); /* the last request holding it frees it, and what it alone held */
    return 0;
}

int weft__gw_reload_now(weft_gateway_t *g, const char *why, weft_buf_t *summary, char *err,
                        size_t errlen)
{
    int rc;
    gw_route_t *routes = NULL;
    size_t n = 0;
    if (!g->reload) {
        snprintf(err, errlen,
                 "weft serve was started without a configuration file (--config): "
                 "there is nothing to read again");
        rc = WEFT_EINVAL;
    } else if ((rc = g->reload(g->reload_arg, &routes, &n, err, errlen)) == 0) {
        rc = weft_gateway_reload(g, routes, n, summary, err, errlen);
    }
    if (rc != 0) {
        atomic_fetch_add(&g->reload_failures, 1);
        char q[1200];
        weft_error("gateway", "reload refused: the routes in force keep serving",
                   "trigger=%s error=%s", why, weft_log_quote(q, sizeof(q), err, strlen(err)));
        return rc;
    }
    weft_info("gateway", "reloaded", "trigger=%s routes=%zu generation=%llu", why, n,
              (unsigned long long)atomic_load(&g->generation));
    return 0;
}

static void part_reload(weft_host_t *h, void *arg)
{
    char err[1024];
    (void)h;
    weft__gw_reload_now(arg, "SIGHUP", NULL, err, sizeof(err));
}

int weft_gateway_new(weft_host_t *h, const weft_gateway_options_t *o, weft_gateway_t **out,
                     char *err, size_t errlen)
{
    weft_gateway_t *g = calloc(1, sizeof(*g));
    if (!g) {
        for (size_t i = 0; i < o->nroutes; i++) gw_route_clear(&o->routes[i]);
        free(o->routes);
        snprintf(err, errlen, "gateway: out of memory");
        return WEFT_ENOMEM;
    }
    g->host = h;
    g->reg = o->registry;
    g->nworkers = weft_host_workers(h);
    g->reload = o->reload;
    g->reload_arg = o->reload_arg;
    g->max_tunnels = o->max_tunnels ? o->max_tunnels : 10000;
    g->tracer = o->tracer;
    weft_snap_cell_init(&g->table);
    int rc = 0;
    if (o->metrics && (rc = register_metrics(g, o->metrics)) != 0)
        snprintf(err, errlen, "gateway: cannot register its metrics: %s", weft_strerror(rc));
    g->have_metrics = o->metrics != NULL;
    if (rc == 0) {
        weft_retry_budget_options_t bo;
        weft_retry_budget_options_init(&bo);
        char why[200];
        if ((rc = weft_retry_budget_new(&bo, &g->budget, why, sizeof(why))) != 0)
            snprintf(err, errlen, "gateway: retry budget: %s", why);
    }
    if (rc == 0 && o->access_log) rc = gw_alog_new(o->access_log, &g->alog, err, errlen);
    if (rc == 0)
        rc = weft_gateway_reload(g, o->routes, o->nroutes, NULL, err, errlen);
    else {
        for (size_t i = 0; i < o->nroutes; i++) gw_route_clear(&o->routes[i]);
        free(o->routes);
    }
    if (rc != 0) {
        weft_retry_budget_free(g->budget);
        gw_alog_free(g->alog);
        free(g);
        return rc;
    }

    weft_http_server_options_t so;
    if (o->http)
        so = *o->http;
    else
        weft_http_server_options_init(&so);
    so.host = o->host;
    so.port = o->port;
    rc = weft_http_server_new(&so, weft_host_workers(h), &g->srv);
    weft_http_route_t r = {
        .handler = weft__gw_handle, .arg = g, .stream_body = true, .max_body = BODY_UNLIMITED};
    if (rc == 0) {
        rc = weft_http_server_route(g->srv, "*", "/*", &r);
        if (rc == 0) rc = weft_host_add_http(h, g->srv);
        if (rc != 0) { /* not the host's yet */
            weft_http_server_free(g->srv);
            g->srv = NULL;
        }
    }
    if (rc == 0) {
        weft_host_part_t p = {.name = "gateway",
                              .state_size = sizeof(gw_worker_t),
                              .worker_init = worker_init,
                              .worker_stop = worker_stop,
                              .reload = part_reload,
                              .arg = g};
        int id = weft_host_add_part(h, &p);
        if (id < 0)
            rc = id;
        else
            g->part = id;
    }
    if (rc != 0) {
        snprintf(err, errlen, "gateway: cannot set up its listener on %s:%u: %s", o->host, o->port,
                 weft_strerror(rc));
        weft_snap_publish(&g->table, NULL);
        weft_snap_release(g->cur);
        weft_retry_budget_free(g->budget);
        gw_alog_free(g->alog);
        free(g); /* srv, when added, is the host's */
        return rc;
    }
    *out = g;
    return 0;
}

uint16_t weft_gateway_port(const weft_gateway_t *g)
{
    return weft_http_server_port(g->srv);
}

void weft_gateway_free(weft_gateway_t *g)
{
    if (!g) return;
    weft_snap_publish(&g->table, NULL);
    weft_snap_release(g->cur);
    weft_retry_budget_free(g->budget);
    free(g->acl_token);
    gw_alog_free(g->alog); /* writes what is left */
    weft__gw_history_free(g->history);
    free(g);
}
