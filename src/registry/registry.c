/*
 * registry.c - the registry as a part of a host: settings, start and stop, and the glue
 * between the catalog (control loop), its store, the health checker (its own thread), the
 * API (workers) and the DNS interface (workers).
 *
 * Start-up: weft_registry_new (before the host runs) adds the API routes to the service, a
 * part whose per-worker state holds the parked queries and event streams, and the DNS
 * listeners. The part's start hook, on the control loop, opens the store under data_dir
 * (DATA_DIR/catalog.db), loads the catalog, starts the checker, and publishes the first
 * snapshot; until then the API answers 503. A store that cannot be opened stops the host
 * (weft serve exits 1 with the path and the reason in the log).
 *
 * Health results travel checker thread -> control loop (weft_host_call) -> catalog. Each
 * publication travels control loop -> every worker (weft_host_post_all), where parked
 * queries wake and event streams get the changes.
 *
 * Shutdown (the part's stop hook, control loop): the catalog stops taking writes, the
 * checker stops, the store writes what is queued and closes, and the last answers go out;
 * then the workers answer every parked query (worker_stop) before their loops end.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/cklog.h"
#include "registry/reg_int.h"
#include "weft/log.h"

#define OFF(f) offsetof(weft_registry_conf_t, f)

static const weft_conf_option_t options[] = {
    {.key = "registry.node_name",
     .type = WEFT_CONF_STRING,
     .offset = OFF(node_name),
     .def = "",
     .max = 128,
     .flag = "node-name",
     .env = "WEFT_NODE_NAME",
     .help = "this node's name in the catalog (\"\": the host name)"},
    {.key = "registry.datacenter",
     .type = WEFT_CONF_STRING,
     .offset = OFF(datacenter),
     .def = "dc1",
     .min = 1,
     .max = 64,
     .flag = "datacenter",
     .env = "WEFT_DATACENTER",
     .help = "datacenter name (Consul's; the DNS interface answers NAME.service.DC.consul)"},
    {.key = "registry.sync_full",
     .type = WEFT_CONF_BOOL,
     .offset = OFF(sync_full),
     .def = "true",
     .help = "fsync the catalog at each commit (survives power loss); false: survives a "
             "crash of weft, not of the machine"},
    {.key = "registry.max_instances",
     .type = WEFT_CONF_UINT,
     .offset = OFF(max_instances),
     .def = "100000",
     .min = 1,
     .max = 10000000,
     .help = "registered instances at most (429 past it)"},
    {.key = "registry.max_wait",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(max_wait),
     .def = "10m",
     .min = 1000,
     .max = 3600000,
     .help = "the longest a blocking query waits (?wait= is capped to it; Consul's cap)"},
    {.key = "acl.token",
     .type = WEFT_CONF_STRING,
     .offset = OFF(acl_token),
     .def = "",
     .max = 256,
     .env = "WEFT_ACL_TOKEN",
     .help = "when set, every write to the API needs this token (X-Consul-Token, "
             "Authorization: Bearer, or ?token=); others get 403"},
    {.key = "dns.listen",
     .type = WEFT_CONF_ADDR,
     .offset = OFF(dns),
     .resolve = true,
     .def = "127.0.0.1:8600",
     .flag = "dns",
     .env = "WEFT_DNS",
     .help = "DNS interface, UDP and TCP (Consul's: NAME.service.consul)"},
    {.key = "dns.domain",
     .type = WEFT_CONF_STRING,
     .offset = OFF(dns_domain),
     .def = "consul.",
     .min = 1,
     .max = 128,
     .help = "the DNS domain answered"},
    {.key = "dns.ttl",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(dns_ttl),
     .def = "0",
     .min = 0,
     .max = 86400000,
     .help = "TTL of DNS answers (whole seconds are sent)"},
};

weft_conf_section_t weft_registry_conf_section(weft_registry_conf_t *conf)
{
    return (weft_conf_section_t){.name = "registry",
                                 .opts = options,
                                 .n = sizeof(options) / sizeof(options[0]),
                                 .target = conf};
}

/* ---- workers ---- */

static void worker_init(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg)
{
    (void)h, (void)index, (void)arg;
    weft__reg_worker_init(state, loop);
}

static void worker_stop(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg)
{
    (void)h, (void)loop, (void)index;
    weft__reg_worker_release(arg, state);
}

typedef struct notice_s {
    weft_registry_t *r;
    reg_events_t *ev;
} notice_t;

static void notify(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    notice_t *n = arg;
    (void)h, (void)index;
    reg_worker_t *w = weft_host_state(loop, n->r->part);
    if (w) weft__reg_worker_notify(n->r, w, n->ev);
    weft__events_release(n->ev);
    free(n);
}

static void on_published(void *arg, const reg_snap_t *snap, reg_events_t *ev)
{
    weft_registry_t *r = arg;
    (void)snap;
    if (!atomic_load(&r->ready)) return; /* the first one: nobody waits yet */
    unsigned nw = weft_host_workers(r->host);
    for (unsigned i = 0; i < nw; i++) {
        notice_t *n = malloc(sizeof(*n));
        if (n) {
            n->r = r;
            n->ev = ev;
            if (ev) atomic_fetch_add(&ev->refs, 1);
            if (weft_host_post(r->host, i, notify, n) == 0) continue;
            weft__events_release(ev);
            free(n);
        }
        weft_warn("registry", "cannot notify a worker (out of memory or its queue is full)",
                  "worker=%u", i);
    }
}

/* ---- the checker ---- */

typedef struct result_s {
    weft_registry_t *r;
    uint64_t key;
    weft_health_t st;
    char output[];
} result_t;

static void apply_result(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    result_t *res = arg;
    (void)h, (void)loop, (void)index;
    if (res->r->cat) weft__cat_check_result(res->r->cat, res->key, res->st, res->output);
    free(res);
}

/* On the checker's thread. */
static void on_check_change(void *arg, uint64_t key, weft_health_t st, const char *output)
{
    weft_registry_t *r = arg;
    size_t n = strlen(output);
    result_t *res = malloc(sizeof(*res) + n + 1);
    if (!res) return;
    res->r = r;
    res->key = key;
    res->st = st;
    memcpy(res->output, output, n + 1);
    if (weft_host_call(r->host, apply_result, res) != 0) free(res);
}

static void check_start(void *arg, uint64_t key, const reg_check_t *c, const reg_inst_t *in)
{
    weft_registry_t *r = arg;
    (void)in;
    if (!r->checker) return;
    weft_check_header_t hdr[REG_MAX_HEADERS];
    for (uint32_t i = 0; i < c->nheaders && i < REG_MAX_HEADERS; i++)
        hdr[i] = (weft_check_header_t){c->headers[i].k, c->headers[i].v};
    weft_check_spec_t spec = {
        .key = key,
        .kind = c->type == REG_CHECK_HTTP ? WEFT_CHECK_HTTP : WEFT_CHECK_TCP,
        .target = c->type == REG_CHECK_HTTP ? c->http : c->tcp,
        .method = *c->method ? c->method : NULL,
        .headers = hdr,
        .n_headers = c->nheaders,
        .body = *c->body ? c->body : NULL,
        .interval_ms = c->interval_ms,
        .timeout_ms = c->timeout_ms,
        .success_before_passing = c->sbp,
        .failures_before_warning = c->fbw,
        .failures_before_critical = c->fbc,
        .initial = c->status,
    };
    int rc = weft_checker_add(r->checker, &spec);
    if (rc != 0)
        weft_warn("registry", "cannot run a check", "check=%s error=%s", c->id, weft_strerror(rc));
}

static void check_stop(void *arg, uint64_t key)
{
    weft_registry_t *r = arg;
    if (r->checker) weft_checker_remove(r->checker, key);
}

/* ---- DNS ---- */

static int dns_lookup(void *arg, char kind, const char *name, size_t name_len, const char *tag,
                      size_t tag_len, const char *dc, size_t dc_len, weft_dns_target_t *out,
                      size_t max)
{
    weft_registry_t *r = arg;
    if (dc &&
        !(dc_len == strlen(r->node.datacenter) && strncasecmp(dc, r->node.datacenter, dc_len) == 0))
        return -1;
    const reg_snap_t *s = weft_snap_get(&r->cell);
    if (!s) return -1;
    if (kind == 'n') {
        if (!(name_len == strlen(r->node.name) && strncasecmp(name, r->node.name, name_len) == 0))
            return -1;
        if (max == 0) return 0;
        out[0] = (weft_dns_target_t){r->node.name, r->node.address, 0, r->node_fam, r->node_bin};
        return 1;
    }
    /* Service names are matched without regard to case, as DNS does. */
    reg_svc_t *v = weft__snap_service(s, name, name_len);
    for (uint32_t j = 0; !v && j < s->nsvc; j++)
        if (s->svc[j]->name_len == name_len &&
            strncasecmp(s->svc[j]->name, name, name_len) == 0)
            v = s->svc[j];
    if (!v) return -1;
    size_t n = 0;
    for (uint32_t i = 0; i < v->n && n < max; i++) {
        const reg_inst_t *in = v->inst[i];
        if (in->health != WEFT_HEALTH_PASSING) continue; /* passing only, not warning */
        if (tag) {
            bool has = false;
            for (uint32_t t = 0; t < in->ntags && !has; t++)
                has = strlen(in->tags[t]) == tag_len && strncasecmp(in->tags[t], tag, tag_len) == 0;
            if (!has) continue;
        }
        out[n++] = *in->address ? (weft_dns_target_t){r->node.name, in->address, in->port,
                                                      in->addr_fam, in->addr_bin}
                                : (weft_dns_target_t){r->node.name, r->node.address, in->port,
                                                      r->node_fam, r->node_bin};
    }
    return (int)n;
}

/* ---- metrics (read on the scraping worker: atomics, the checker's and the store's
 * relaxed counters, and the published snapshot) ---- */

static double snap_value(weft_registry_t *r, int what)
{
    double v = 0;
    weft_snap_read_lock();
    const reg_snap_t *s = weft_snap_get(&r->cell);
    if (s) v = what == 0 ? (double)s->ninst : what == 1 ? (double)s->nsvc : (double)s->index;
    weft_snap_read_unlock();
    return v;
}
static double m_instances(void *a)
{
    return snap_value(a, 0);
}
static double m_services(void *a)
{
    return snap_value(a, 1);
}
static double m_index(void *a)
{
    return snap_value(a, 2);
}
static double m_parked(void *a)
{
    return (double)atomic_load(&((weft_registry_t *)a)->parked);
}
static double m_streams(void *a)
{
    return (double)atomic_load(&((weft_registry_t *)a)->streams);
}
static double m_writes(void *a)
{
    return (double)atomic_load(&((weft_registry_t *)a)->writes);
}
static double m_wakeups(void *a)
{
    return (double)atomic_load(&((weft_registry_t *)a)->wakeups);
}
#define STAT(f)                                                                                    \
    static double m_##f(void *a)                                                                   \
    {                                                                                              \
        return (double)atomic_load_explicit(&((weft_registry_t *)a)->stats.f,                      \
                                            memory_order_relaxed);                                 \
    }
STAT(checks)
STAT(runs)
STAT(changes)
STAT(skipped)
STAT(batches)
STAT(commits)
STAT(failed)
static double m_late_p99(void *a)
{
    return (double)atomic_load(&((weft_registry_t *)a)->stats.late_p99_us) / 1e6;
}
static double m_late_max(void *a)
{
    return (double)atomic_load(&((weft_registry_t *)a)->stats.late_max_us) / 1e6;
}

/* The checker and the store are the control loop's (freed at its stop): their counters are
 * copied every second into the registry, which outlives every scrape. */
static void copy_stats(weft_registry_t *r)
{
    if (r->checker) {
        weft_checker_stats_t c = weft_checker_stats(r->checker);
        atomic_store(&r->stats.checks, c.checks);
        atomic_store(&r->stats.runs, c.runs);
        atomic_store(&r->stats.changes, c.changes);
        atomic_store(&r->stats.skipped, c.skipped);
        atomic_store(&r->stats.late_p99_us, c.late_p99_us);
        atomic_store(&r->stats.late_max_us, c.late_max_us);
    }
    if (r->store) {
        weft_store_stats_t t = weft_store_stats(r->store);
        atomic_store(&r->stats.batches, t.batches);
        atomic_store(&r->stats.commits, t.commits);
        atomic_store(&r->stats.failed, t.failed);
    }
}

static void on_stats_timer(uv_timer_t *t)
{
    copy_stats(t->data);
}

static int add_metrics(weft_registry_t *r)
{
    weft_metrics_registry_t *m = weft_service_metrics(r->svc);
    static const struct {
        bool counter;
        const char *name, *help;
        double (*fn)(void *);
    } t[] = {
        {0, "weft_registry_instances", "service instances registered", m_instances},
        {0, "weft_registry_services", "services registered", m_services},
        {0, "weft_registry_index", "the catalog's index (Consul's X-Consul-Index)", m_index},
        {0, "weft_registry_blocking_queries", "blocking queries parked now", m_parked},
        {0, "weft_registry_event_streams", "GET /v1/weft/events streams open", m_streams},
        {1, "weft_registry_writes_total", "writes applied to the catalog", m_writes},
        {1, "weft_registry_wakeups_total", "blocking queries woken by a change", m_wakeups},
        {0, "weft_checker_checks", "HTTP and TCP checks the checker runs", m_checks},
        {1, "weft_checker_runs_total", "check runs started", m_runs},
        {1, "weft_checker_changes_total", "status changes the checker reported", m_changes},
        {1, "weft_checker_skipped_total", "runs skipped (the previous one still in flight)",
         m_skipped},
        {0, "weft_checker_late_p99_seconds", "p99 of how late runs started, last 10 s", m_late_p99},
        {0, "weft_checker_late_max_seconds", "the latest run start, last 10 s", m_late_max},
        {1, "weft_store_batches_total", "catalog writes made durable", m_batches},
        {1, "weft_store_commits_total", "store transactions (group commits)", m_commits},
        {1, "weft_store_failed_total", "catalog writes the store failed", m_failed},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int rc = t[i].counter ? weft_metrics_counter_fn(m, t[i].name, t[i].help, t[i].fn, r)
                              : weft_metrics_gauge_fn(m, t[i].name, t[i].help, t[i].fn, r);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- life ---- */

static void part_stop(weft_host_t *h, void *arg);

static int part_init(weft_host_t *h, void *arg)
{
    weft_registry_t *r = arg;
    char err[512];
    int rc;
    weft_snap_thread_register(); /* the catalog reads what it published */
    if (r->data_dir) {
        weft_store_sqlite_options_t so;
        weft_store_sqlite_options_init(&so);
        char path[4200];
        snprintf(path, sizeof(path), "%s/catalog.db", r->data_dir);
        so.path = path;
        so.sync_full = r->conf.sync_full;
        rc = weft_store_sqlite_open(&so, weft_host_loop(h), &r->store, err, sizeof(err));
        if (rc != 0) {
            weft_error("registry", "cannot open the catalog's store", "error=\"%s\"", err);
            goto fail;
        }
    }
    weft_catalog_options_t co = {
        .node = r->node,
        .store = r->store,
        .cell = &r->cell,
        .loop = weft_host_loop(h),
        .check_start = check_start,
        .check_stop = check_stop,
        .published = on_published,
        .arg = r,
        .max_instances = r->conf.max_instances,
        .cklog = r->cklog,
    };
    weft_checker_options_t ko;
    weft_checker_options_init(&ko);
    ko.on_change = on_check_change;
    ko.arg = r;
    rc = weft_checker_new(&ko, &r->checker);
    if (rc != 0) {
        weft_error("registry", "cannot start the health checker", "error=%s", weft_strerror(rc));
        goto fail;
    }
    uv_timer_init(weft_host_loop(h), &r->stats_timer);
    r->stats_timer.data = r;
    r->stats_timer_open = true;
    uv_timer_start(&r->stats_timer, on_stats_timer, 1000, 1000);
    uv_unref((uv_handle_t *)&r->stats_timer);
    if ((rc = weft_catalog_new(&co, &r->cat, err, sizeof(err))) != 0 ||
        (rc = weft_catalog_load(r->cat, err, sizeof(err))) != 0) {
        weft_error("registry", "cannot load the catalog", "error=\"%s\"", err);
        goto fail;
    }
    return 0;
fail:
    atomic_store(&r->failed, true);
    part_stop(h, r); /* the host runs the stop hooks of the parts before this one only */
    return rc ? rc : WEFT_EINVAL;
}

static void part_start(weft_host_t *h, void *arg)
{
    weft_registry_t *r = arg;
    (void)h;
    atomic_store(&r->ready, true); /* from now on publications reach the workers */
}

static void part_stop(weft_host_t *h, void *arg)
{
    weft_registry_t *r = arg;
    (void)h;
    if (r->stats_timer_open) {
        copy_stats(r);
        uv_close((uv_handle_t *)&r->stats_timer, NULL);
        r->stats_timer_open = false;
    }
    if (r->cat) weft_catalog_close(r->cat);
    if (r->checker) {
        weft_checker_free(r->checker);
        r->checker = NULL;
    }
    if (r->store) {
        weft_store_close(r->store); /* runs the last done callbacks */
        r->store = NULL;
    }
    if (r->cat) weft__cat_flush(r->cat);
    weft_snap_thread_unregister();
}

static void make_node_id(weft_registry_t *r)
{
    /* A UUID-shaped ID derived from the node name and data directory, so that it stays the
     * same across restarts (Consul keeps its node ID in its data directory). */
    uint64_t h1 = 1469598103934665603ULL, h2 = 0x9e3779b97f4a7c15ULL;
    const char *parts[2] = {r->node_name, r->data_dir ? r->data_dir : ""};
    for (int p = 0; p < 2; p++)
        for (const char *s = parts[p]; *s; s++) {
            h1 = (h1 ^ (unsigned char)*s) * 1099511628211ULL;
            h2 = (h2 ^ (unsigned char)*s) * 0x100000001b3ULL + 0x9e37;
        }
    snprintf(r->node_id, sizeof(r->node_id), "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(h1 >> 32),
             (unsigned)(h1 >> 16) & 0xffff, (unsigned)h1 & 0xfff, (unsigned)(h2 >> 52) & 0xfff,
             (unsigned long long)(h2 & 0xffffffffffffULL));
}

int weft_registry_new(weft_service_t *svc, const weft_registry_options_t *o, weft_registry_t **out,
                      char *err, size_t errlen)
{
    weft_registry_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return WEFT_ENOMEM;
    }
    r->svc = svc;
    r->host = weft_service_host(svc);
    r->conf = *o->conf;
    if (!(r->cklog = weft__cklog_new()) ||
        (o->data_dir && !(r->data_dir = strdup(o->data_dir)))) {
        weft__cklog_free(r->cklog);
        free(r);
        snprintf(err, errlen, "out of memory");
        return WEFT_ENOMEM;
    }
    snprintf(r->api_host, sizeof(r->api_host), "%s", o->api_host ? o->api_host : "127.0.0.1");
    if (o->conf->node_name && *o->conf->node_name) {
        snprintf(r->node_name, sizeof(r->node_name), "%s", o->conf->node_name);
    } else if (gethostname(r->node_name, sizeof(r->node_name) - 1) != 0 || !r->node_name[0]) {
        snprintf(r->node_name, sizeof(r->node_name), "weft");
    }
    /* The node's address: the API's, unless it listens on every address. */
    const char *a = r->api_host;
    snprintf(r->node_addr, sizeof(r->node_addr), "%s",
             strcmp(a, "0.0.0.0") == 0 ? "127.0.0.1"
             : strcmp(a, "::") == 0    ? "::1"
                                       : a);
    make_node_id(r);
    if (inet_pton(AF_INET, r->node_addr, r->node_bin) == 1)
        r->node_fam = 4;
    else if (inet_pton(AF_INET6, r->node_addr, r->node_bin) == 1)
        r->node_fam = 6;
    r->node = (reg_node_t){r->node_name, r->node_id, r->node_addr, r->conf.datacenter};
    weft_snap_cell_init(&r->cell);
    weft_host_part_t p = {
        .name = "registry",
        .state_size = sizeof(reg_worker_t),
        .worker_init = worker_init,
        .worker_stop = worker_stop,
        .init = part_init,
        .start = part_start,
        .stop = part_stop,
        .arg = r,
    };
    int rc = weft_host_add_part(r->host, &p);
    if (rc < 0) {
        snprintf(err, errlen, "cannot add the registry to the host: %s", weft_strerror(rc));
        weft_registry_free(r);
        return rc;
    }
    r->part = rc;
    rc = weft__reg_routes(r, err, errlen);
    if (rc != 0) {
        weft_registry_free(r);
        return rc;
    }
    if ((rc = add_metrics(r)) != 0) {
        snprintf(err, errlen, "cannot add the registry's metrics: %s", weft_strerror(rc));
        weft_registry_free(r);
        return rc;
    }
    if (o->dns) {
        weft_dns_serve_options_t d;
        weft_dns_serve_options_init(&d);
        d.host = r->conf.dns.host;
        d.port = r->conf.dns.port;
        d.cfg.domain = r->conf.dns_domain;
        d.cfg.datacenter = r->conf.datacenter;
        d.cfg.ttl = (uint32_t)(r->conf.dns_ttl / 1000);
        d.lookup = dns_lookup;
        d.arg = r;
        rc = weft_dns_serve(r->host, &d, &r->dns);
        if (rc != 0) {
            snprintf(err, errlen, "dns.listen %s:%u: %s", d.host, d.port, weft_strerror(rc));
            weft_registry_free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

bool weft_registry_failed(const weft_registry_t *r)
{
    return atomic_load(&((weft_registry_t *)r)->failed);
}

weft_snap_cell_t *weft_registry_cell(weft_registry_t *r)
{
    return &r->cell;
}

void weft_registry_free(weft_registry_t *r)
{
    if (!r) return;
    weft_catalog_free(r->cat);
    weft__cklog_free(r->cklog);
    weft_snap_cell_destroy(&r->cell);
    weft_dns_server_free(r->dns);
    free(r->route_args);
    free(r->data_dir);
    free(r);
}
