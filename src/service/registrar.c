/*
 * registrar.c - a service's registration with its registry (weft_service_registry_t,
 * weft/service.h): the seed book's ServiceRegistry.register and deregister, done by the
 * service for itself.
 *
 * The registrar is a part of the service's host and lives on the control loop: its start
 * hook (every worker serves, the port is known) makes a discovery client on the control loop
 * (weft/discovery.h) and registers; its drain hook (http.shutdown_delay_ms) and its stop
 * hook deregister. Nothing here runs on a worker, and nothing here can fail the service: an
 * error is logged and retried, or, at worst (out of memory at the start), the service runs
 * unregistered and says so.
 *
 * The states (one transition at a time, each asserting where it comes from):
 *
 *   R_IDLE ──start──▶ R_REGISTERING ──200──▶ R_REGISTERED ──timer──▶ heartbeat or look-up
 *                        │    ▲                    │  ▲                  │ 404: register again
 *                 failed │    │ timer              │  └──────────────────┘ other: next timer
 *                        ▼    │                    │
 *                      R_BACKOFF                   │
 *   REGISTERING, BACKOFF, REGISTERED ──drain/stop──▶ R_LEAVING ──answer or timeout──▶
 *   R_CLOSING ──timer and client closed──▶ R_CLOSED
 *
 * While leaving, the operation in flight (a registration, a heartbeat) is canceled, then the
 * deregistration is sent; its bound is timeout_ms (the discovery client's
 * registry_timeout_ms). The registrar's handles (its timer and the client's) keep the control
 * loop, so the process, alive until the deregistration is answered or has timed out: that is
 * what makes "deregistered before the process exits" hold after SIGTERM.
 *
 * Backoff of registrations: 0.5 s doubling to 30 s, the upper half random, for as long as
 * the service runs (a service started before its registry registers when it comes). Logs:
 * the first failure, every tenth and any change of error at warn, the rest at debug.
 *
 * Threads: the control loop only (weft_service_registry_id reads the ID there or after the
 * run). Memory policy (SDK): WEFT_ENOMEM, never an abort.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/assert.h"
#include "service/discovery_int.h"
#include "service/service_int.h"
#include "weft/log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define TTL_INTERVALS  3

typedef enum reg_state_e {
    R_IDLE = 0,        /* the service does not run yet */
    R_REGISTERING = 1, /* a registration in flight (op) */
    R_BACKOFF = 2,     /* the last registration failed; the timer sends the next */
    R_REGISTERED = 3,  /* the timer sends heartbeats or look-ups (op while in flight) */
    R_LEAVING = 4,     /* the deregistration in flight (op) */
    R_CLOSING = 5,     /* the timer and the client are closing */
    R_CLOSED = 6       /* nothing left open */
} reg_state_t;

struct weft__registrar_s {
    weft_service_t *svc;
    reg_state_t state;
    /* o->registry, copied; one block holds the strings and arrays */
    char *mem;
    const char *url, *token, *id_opt, *address_opt, *name, *version, *listen;
    const char **tags;
    size_t ntags;
    weft_discovery_kv_t *meta; /* the caller's, then "version" unless given */
    size_t nmeta;
    weft_discovery_check_t check;
    uint64_t interval_ms, check_timeout_ms, dereg_after_ms, timeout_ms, resync_ms;
    weft_discovery_policy_t policy;
    /* made at the start */
    char id[WEFT_DISCOVERY_ID_MAX + 1];
    char address[DISC_HOST_MAX + 1];
    char check_url[DISC_HOST_MAX + 32];
    uint16_t port;
    weft_discovery_t *d;
    weft_discovery_call_t *op;
    uv_timer_t timer;
    unsigned open;     /* handles still open: the timer, the client */
    unsigned failures; /* registrations failed in a row */
    int last_err;
    bool registered_once, beat_failing;
    uint64_t rng;
};

static void on_start(weft_host_t *h, void *arg);
static void on_drain(weft_host_t *h, void *arg);
static void on_stop(weft_host_t *h, void *arg);

/* ---- options ---- */

static bool has_key(const weft_discovery_kv_t *m, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].key, key) == 0) return true;
    return false;
}

static char *put(char **p, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    char *at = *p;
    *p += n;
    return at;
}

int weft__registrar_new(weft_service_t *svc, const weft_service_options_t *o, weft_host_t *h,
                        weft__registrar_t **out)
{
    const weft_service_registry_t *g = &o->registry;
    *out = NULL;
    if (!g->url || !g->url[0]) return 0;
    char host[DISC_HOST_MAX + 1];
    uint16_t port;
    int err = weft__disc_registry_split(g->url, host, &port);
    if (err) return err;
    if ((g->id && g->id[0] && !weft__disc_name_ok(g->id, WEFT_DISCOVERY_ID_MAX, true)) ||
        (g->address && strlen(g->address) > DISC_HOST_MAX) || g->ntags > DISC_MAX_TAGS ||
        (g->ntags && !g->tags) || g->nmeta >= DISC_MAX_META || (g->nmeta && !g->meta) ||
        (unsigned)g->check > WEFT_DISCOVERY_CHECK_TTL || g->check_interval_ms < 1000 ||
        g->timeout_ms == 0 || (unsigned)g->policy > WEFT_DISCOVERY_RING_HASH)
        return WEFT_EINVAL;
    const char *name = o->name, *version = o->version ? o->version : "0.0.0";
    const char *listen = o->host ? o->host : "127.0.0.1";
    size_t bytes = strlen(g->url) + strlen(name) + strlen(version) + strlen(listen) + 4 +
                   (g->token ? strlen(g->token) : 0) + (g->id ? strlen(g->id) : 0) +
                   (g->address ? strlen(g->address) : 0) + 3 + sizeof("version") +
                   (g->ntags + 1) * sizeof(char *) + (g->nmeta + 1) * sizeof(weft_discovery_kv_t);
    for (size_t i = 0; i < g->ntags; i++) {
        if (!g->tags[i]) return WEFT_EINVAL;
        bytes += strlen(g->tags[i]) + 1;
    }
    for (size_t i = 0; i < g->nmeta; i++) {
        if (!g->meta[i].key || !g->meta[i].key[0] || !g->meta[i].value) return WEFT_EINVAL;
        bytes += strlen(g->meta[i].key) + strlen(g->meta[i].value) + 2;
    }
    weft__registrar_t *r = calloc(1, sizeof(*r));
    char *mem = r ? malloc(bytes) : NULL;
    if (!mem) {
        free(r);
        return WEFT_ENOMEM;
    }
    r->svc = svc;
    r->mem = mem;
    r->tags = (const char **)(void *)mem;
    r->meta = (weft_discovery_kv_t *)(void *)(r->tags + g->ntags + 1);
    char *p = (char *)(r->meta + g->nmeta + 1);
    for (size_t i = 0; i < g->ntags; i++) r->tags[i] = put(&p, g->tags[i]);
    r->ntags = g->ntags;
    for (size_t i = 0; i < g->nmeta; i++) {
        r->meta[i].key = put(&p, g->meta[i].key);
        r->meta[i].value = put(&p, g->meta[i].value);
    }
    r->nmeta = g->nmeta;
    r->url = put(&p, g->url);
    r->token = g->token && g->token[0] ? put(&p, g->token) : NULL;
    r->id_opt = put(&p, g->id ? g->id : "");
    r->address_opt = put(&p, g->address ? g->address : "");
    r->name = put(&p, name);
    r->version = put(&p, version);
    r->listen = put(&p, listen);
    if (!has_key(r->meta, r->nmeta, "version")) {
        r->meta[r->nmeta].key = put(&p, "version");
        r->meta[r->nmeta++].value = r->version;
    }
    r->check = g->check;
    r->interval_ms = g->check_interval_ms;
    r->check_timeout_ms = g->check_timeout_ms;
    r->dereg_after_ms = g->deregister_after_ms;
    r->timeout_ms = g->timeout_ms;
    r->resync_ms = g->resync_ms;
    r->policy = g->policy;
    r->rng = (weft_now_ns() ^ (uint64_t)(uintptr_t)r) | 1;
    weft_host_part_t part = {
        .name = "registration", .start = on_start, .drain = on_drain, .stop = on_stop, .arg = r};
    if ((err = weft_host_add_part(h, &part)) < 0) {
        weft__registrar_free(r);
        return err;
    }
    *out = r;
    return 0;
}

void weft__registrar_free(weft__registrar_t *r)
{
    if (!r) return;
    WEFT_ASSERT(r->state == R_IDLE || r->state == R_CLOSED);
    free(r->mem);
    free(r);
}

const char *weft__registrar_id(const weft__registrar_t *r)
{
    return r ? r->id : "";
}

void weft__registrar_discovery_options(const weft__registrar_t *r, weft_discovery_options_t *o)
{
    weft_discovery_options_init(o);
    o->registry = r->url;
    o->token = r->token;
    o->policy = r->policy;
}

/* ---- the state machine ---- */

static void send_register(weft__registrar_t *r);
static void leave(weft__registrar_t *r, const char *why);

static uint64_t backoff_ms(weft__registrar_t *r)
{
    uint64_t ms = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < r->failures && ms < BACKOFF_MAX_MS; i++) ms *= 2;
    if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return ms / 2 + (x * 0x2545F4914F6CDD1DULL) % (ms / 2 + 1);
}

static void on_closed_one(weft__registrar_t *r)
{
    WEFT_ASSERT(r->state == R_CLOSING && r->open > 0);
    if (--r->open == 0) r->state = R_CLOSED;
}

static void on_timer_closed(uv_handle_t *h)
{
    on_closed_one(h->data);
}

static void on_client_closed(void *arg)
{
    on_closed_one(arg);
}

/* Closes the timer and the client; the control loop can end once both are. */
static void close_all(weft__registrar_t *r)
{
    WEFT_ASSERT(r->state == R_LEAVING || r->state == R_REGISTERING || r->state == R_BACKOFF ||
                r->state == R_REGISTERED);
    r->state = R_CLOSING;
    r->open = 2;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    weft_discovery_close(r->d, on_client_closed, r);
}

static void arm(weft__registrar_t *r, uint64_t ms);

static void registration_failed(weft__registrar_t *r, int err, const char *body, size_t len)
{
    WEFT_ASSERT(r->state == R_REGISTERING);
    r->state = R_BACKOFF;
    r->failures++;
    uint64_t ms = backoff_ms(r);
    char why[300];
    weft_log_quote(why, sizeof(why), body ? body : "", body ? len : 0);
    if (r->failures == 1 || r->failures % 10 == 0 || err != r->last_err)
        weft_warn("registration", "cannot register with the registry; retrying",
                  "service=%s id=%s registry=%s error=%s%s%s attempts=%u retry_ms=%" PRIu64,
                  r->name, r->id, r->url, weft_err_name(err), len ? " answer=" : "", len ? why : "",
                  r->failures, ms);
    else
        weft_debug("registration", "cannot register with the registry; retrying",
                   "id=%s error=%s attempts=%u retry_ms=%" PRIu64, r->id, weft_err_name(err),
                   r->failures, ms);
    r->last_err = err;
    arm(r, ms);
}

static void on_registered(const weft_discovery_result_t *res, void *arg)
{
    weft__registrar_t *r = arg;
    r->op = NULL;
    if (r->state != R_REGISTERING) return; /* canceled: leaving */
    if (res->err) {
        registration_failed(r, res->err, res->body, res->body_len);
        return;
    }
    r->state = R_REGISTERED;
    weft_info("registration", r->registered_once ? "registered again" : "registered",
              "service=%s id=%s address=%s port=%u registry=%s check=%s attempts=%u", r->name,
              r->id, r->address, r->port, r->url,
              r->check == WEFT_DISCOVERY_CHECK_HTTP  ? "http"
              : r->check == WEFT_DISCOVERY_CHECK_TTL ? "ttl"
                                                     : "none",
              r->failures + 1);
    r->registered_once = true;
    r->failures = 0;
    r->last_err = 0;
    if (r->check == WEFT_DISCOVERY_CHECK_TTL)
        arm(r, r->interval_ms);
    else if (r->resync_ms)
        arm(r, r->resync_ms);
}

static void send_register(weft__registrar_t *r)
{
    WEFT_ASSERT(r->state == R_IDLE || r->state == R_BACKOFF || r->state == R_REGISTERED);
    r->state = R_REGISTERING;
    char out[256];
    weft_check_status_t st = weft__service_health(r->svc, out, sizeof(out));
    weft_discovery_registration_t reg = {.id = r->id,
                                         .name = r->name,
                                         .address = r->address,
                                         .port = r->port,
                                         .tags = r->tags,
                                         .ntags = r->ntags,
                                         .meta = r->meta,
                                         .nmeta = r->nmeta,
                                         .check = r->check,
                                         .check_http = r->check_url,
                                         .check_interval_ms = r->interval_ms,
                                         .check_timeout_ms = r->check_timeout_ms,
                                         .check_ttl_ms = r->interval_ms * TTL_INTERVALS,
                                         .deregister_after_ms = r->dereg_after_ms,
                                         .check_status = weft__service_status_name(st)};
    int err = weft_discovery_register(r->d, &reg, on_registered, r, &r->op);
    if (err) {
        r->op = NULL;
        registration_failed(r, err, NULL, 0);
    }
}

/* A heartbeat's or look-up's answer. */
static void on_kept(const weft_discovery_result_t *res, void *arg)
{
    weft__registrar_t *r = arg;
    r->op = NULL;
    if (r->state != R_REGISTERED) return; /* canceled: leaving */
    if (res->err == WEFT_ENOENT) {
        weft_warn("registration", "the registry no longer knows this instance; registering again",
                  "service=%s id=%s registry=%s", r->name, r->id, r->url);
        send_register(r);
        return;
    }
    if (res->err && !r->beat_failing)
        weft_warn("registration",
                  r->check == WEFT_DISCOVERY_CHECK_TTL ? "cannot report to the registry"
                                                       : "cannot look the registration up",
                  "service=%s id=%s registry=%s error=%s", r->name, r->id, r->url,
                  weft_err_name(res->err));
    else if (!res->err && r->beat_failing)
        weft_info("registration", "the registry answers again", "service=%s id=%s", r->name, r->id);
    r->beat_failing = res->err != 0;
    arm(r, r->check == WEFT_DISCOVERY_CHECK_TTL ? r->interval_ms : r->resync_ms);
}

static void on_timer(uv_timer_t *t)
{
    weft__registrar_t *r = t->data;
    if (r->state == R_BACKOFF) {
        send_register(r);
        return;
    }
    WEFT_ASSERT(r->state == R_REGISTERED && !r->op);
    int err;
    if (r->check == WEFT_DISCOVERY_CHECK_TTL) {
        char check_id[WEFT_DISCOVERY_ID_MAX + 16], out[256];
        snprintf(check_id, sizeof(check_id), "service:%s", r->id);
        weft_check_status_t st = weft__service_health(r->svc, out, sizeof(out));
        err = weft_discovery_check_update(r->d, check_id, weft__service_status_name(st), out,
                                          on_kept, r, &r->op);
    } else {
        err = weft_discovery_registered(r->d, r->id, on_kept, r, &r->op);
    }
    if (err) {
        r->op = NULL;
        arm(r, r->check == WEFT_DISCOVERY_CHECK_TTL ? r->interval_ms : r->resync_ms);
    }
}

static void arm(weft__registrar_t *r, uint64_t ms)
{
    uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void on_deregistered(const weft_discovery_result_t *res, void *arg)
{
    weft__registrar_t *r = arg;
    r->op = NULL;
    WEFT_ASSERT(r->state == R_LEAVING);
    if (res->err == 0)
        weft_info("registration", "deregistered", "service=%s id=%s registry=%s", r->name, r->id,
                  r->url);
    else if (res->err == WEFT_ENOENT)
        weft_info("registration", "deregistered: the registry did not know this instance",
                  "service=%s id=%s", r->name, r->id);
    else
        weft_warn("registration",
                  "cannot deregister; the registry drops the instance once its "
                  "check is critical for deregister_after",
                  "service=%s id=%s registry=%s error=%s", r->name, r->id, r->url,
                  weft_err_name(res->err));
    close_all(r);
}

static void leave(weft__registrar_t *r, const char *why)
{
    if (r->state != R_REGISTERING && r->state != R_BACKOFF && r->state != R_REGISTERED) return;
    uv_timer_stop(&r->timer);
    reg_state_t was = r->state;
    r->state = R_LEAVING; /* first: the canceled operation's callback ignores its end */
    if (r->op) weft_discovery_cancel(r->op);
    r->op = NULL;
    weft_debug("registration", "deregistering", "id=%s reason=%s was=%d", r->id, why, (int)was);
    if (weft_discovery_deregister(r->d, r->id, on_deregistered, r, &r->op) != 0) {
        r->op = NULL;
        close_all(r);
    }
}

/* ---- the part's hooks (control loop) ---- */

/* NAME-ADDRESS-PORT, characters an ID may not hold as '-'. */
static void default_id(weft__registrar_t *r)
{
    char id[sizeof(r->address) + 96];
    snprintf(id, sizeof(id), "%s-%s-%u", r->name, r->address, r->port);
    snprintf(r->id, sizeof(r->id), "%.128s", id); /* an IPv6 address may not fit whole */
    for (char *c = r->id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            *c = '-';
}

static void on_start(weft_host_t *h, void *arg)
{
    weft__registrar_t *r = arg;
    WEFT_ASSERT(r->state == R_IDLE);
    r->port = weft_service_port(r->svc);
    const char *addr = r->address_opt[0] ? r->address_opt : r->listen;
    if (strcmp(addr, "0.0.0.0") == 0) addr = "127.0.0.1";
    if (strcmp(addr, "::") == 0) addr = "::1";
    snprintf(r->address, sizeof(r->address), "%s", addr);
    if (r->id_opt[0])
        snprintf(r->id, sizeof(r->id), "%s", r->id_opt);
    else
        default_id(r);
    snprintf(r->check_url, sizeof(r->check_url),
             strchr(r->address, ':') ? "http://[%s]:%u/health" : "http://%s:%u/health", r->address,
             r->port);
    weft_discovery_options_t o;
    weft__registrar_discovery_options(r, &o);
    o.loop = weft_host_loop(h);
    o.registry_timeout_ms = r->timeout_ms;
    o.max_services = 1;
    int err = weft_discovery_new(&o, &r->d);
    if (err) {
        weft_error("registration", "cannot register: no client for the registry",
                   "service=%s registry=%s error=%s", r->name, r->url, weft_err_name(err));
        r->state = R_CLOSED;
        return;
    }
    uv_timer_init(o.loop, &r->timer);
    r->timer.data = r;
    send_register(r);
}

static void on_drain(weft_host_t *h, void *arg)
{
    leave(arg, "drain");
}

static void on_stop(weft_host_t *h, void *arg)
{
    leave(arg, "shutdown");
}
