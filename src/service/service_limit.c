/*
 * service_limit.c - a service rate-limits its callers (weft_service_limiter_new,
 * weft_service_rate_limit, weft_service_limit; weft/service.h) with the resilience
 * module's keyed limiter table (weft/ratelimit.h), the gateway's own, and answers a caller
 * over its limit as the gateway does: 429, Retry-After, RateLimit-Policy and RateLimit
 * (weft_ratelimit_headers), a JSON body naming the policy.
 *
 * Design. The limiters and the route -> limiter table are made before the service runs
 * and never change afterwards, so workers read them without a lock (the threads are started
 * after, which orders the writes before every read). The service's "ratelimit" filter
 * (service.c) asks weft__limits_filter for each request: the limiter of its route pattern
 * (a string compare over at most 64 routes: the pattern pointer is the router's copy, not
 * the one the caller gave), else the "*" limiter, except for /health and /metrics. The
 * table is lock-free and holds exactly across workers; its clock is weft_now_ns (one
 * monotonic clock for every thread, as the table requires).
 *
 * Threads: new and attach on the thread that builds the service; the rest on any worker.
 * Memory policy (SDK): WEFT_ENOMEM, never an abort.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errbuf.h"
#include "service/service_int.h"

#define MAX_LIMITERS 64
#define MAX_LIMITED  64
#define NAME_MAX_LEN 128

struct weft_service_limiter_s {
    char name[NAME_MAX_LEN + 1];
    char *header;
    weft_service_limit_options_t o;
    weft_ratelimit_table_t *t;
    weft_counter_t *rejected, *shadowed; /* weft_ratelimit_rejected_total{route,shadow} */
};

typedef struct limited_s {
    char *route;
    weft_service_limiter_t *l;
} limited_t;

struct weft__limits_s {
    weft_service_limiter_t *lims[MAX_LIMITERS];
    unsigned nlims;
    limited_t routes[MAX_LIMITED];
    unsigned nroutes;
    weft_service_limiter_t *any; /* "*" */
    weft_metrics_family_t *fam;
};

void weft_service_limit_options_init(weft_service_limit_options_t *o)
{
    memset(o, 0, sizeof(*o));
    weft_ratelimit_options_init(&o->limiter);
    o->key = WEFT_SERVICE_LIMIT_GLOBAL;
    o->capacity = 65536;
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NAME_MAX_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return false;
    return true;
}

void weft__limits_free(weft__limits_t *ls)
{
    if (!ls) return;
    for (unsigned i = 0; i < ls->nlims; i++) {
        weft_ratelimit_table_free(ls->lims[i]->t);
        free(ls->lims[i]->header);
        free(ls->lims[i]);
    }
    for (unsigned i = 0; i < ls->nroutes; i++) free(ls->routes[i].route);
    free(ls);
}

int weft__limiter_new(weft__limits_t **lsp, weft_metrics_registry_t *metrics,
                      const weft_service_limit_options_t *o, weft_service_limiter_t **out,
                      char *err, size_t errlen)
{
    if (!o || !out) return weft__errf(err, errlen, WEFT_EINVAL, "limiter: no options");
    if (!name_ok(o->name))
        return weft__errf(err, errlen, WEFT_EINVAL,
                          "limiter: name: 1..128 printable bytes without '\"' or '\\' required");
    if ((unsigned)o->key > WEFT_SERVICE_LIMIT_HEADER)
        return weft__errf(err, errlen, WEFT_EINVAL, "limiter %s: key: unknown kind %u", o->name,
                          (unsigned)o->key);
    if (o->key == WEFT_SERVICE_LIMIT_HEADER && (!o->header || !o->header[0]))
        return weft__errf(err, errlen, WEFT_EINVAL,
                          "limiter %s: header: required with WEFT_SERVICE_LIMIT_HEADER", o->name);
    weft_ratelimit_table_options_t to;
    weft_ratelimit_table_options_init(&to);
    to.limiter = o->limiter;
    to.capacity = o->capacity;
    char why[200] = "";
    int rc = weft_ratelimit_options_check(&o->limiter, why, sizeof(why));
    if (rc) return weft__errf(err, errlen, rc, "limiter %s: %s", o->name, why);
    if (!*lsp && !(*lsp = calloc(1, sizeof(**lsp)))) return WEFT_ENOMEM;
    weft__limits_t *ls = *lsp;
    if (ls->nlims >= MAX_LIMITERS)
        return weft__errf(err, errlen, WEFT_ELIMIT, "limiter %s: at most %d limiters", o->name,
                          MAX_LIMITERS);
    weft_service_limiter_t *l = calloc(1, sizeof(*l));
    if (!l) return WEFT_ENOMEM;
    l->o = *o;
    snprintf(l->name, sizeof(l->name), "%s", o->name);
    l->o.name = l->name;
    if (o->key == WEFT_SERVICE_LIMIT_HEADER && !(l->header = strdup(o->header))) {
        free(l);
        return WEFT_ENOMEM;
    }
    l->o.header = l->header;
    if ((rc = weft_ratelimit_table_new(&to, &l->t, why, sizeof(why))) != 0) {
        free(l->header);
        free(l);
        return weft__errf(err, errlen, rc, "limiter %s: %s", o->name, why);
    }
    if (metrics && !ls->fam) {
        static const char *const lbl[] = {"route", "shadow"};
        weft_metrics_counter_new(metrics, "weft_ratelimit_rejected_total",
                                 "Requests a rate limiter rejected (shadow=\"true\": would have "
                                 "rejected), by the limiter's name.",
                                 lbl, 2, &ls->fam);
    }
    if (ls->fam) { /* a family that could not be made: no metric, the limit holds all the same */
        const char *v[2] = {l->name, "false"};
        l->rejected = weft_metrics_counter_child(ls->fam, v);
        v[1] = "true";
        l->shadowed = weft_metrics_counter_child(ls->fam, v);
    }
    ls->lims[ls->nlims++] = l;
    *out = l;
    return 0;
}

int weft__limits_attach(weft__limits_t **lsp, const char *route, weft_service_limiter_t *l)
{
    if (!route || !route[0] || !l || !*lsp) return WEFT_EINVAL;
    weft__limits_t *ls = *lsp;
    bool ours = false;
    for (unsigned i = 0; i < ls->nlims; i++) ours |= ls->lims[i] == l;
    if (!ours) return WEFT_EINVAL; /* another service's limiter */
    if (strcmp(route, "*") == 0) {
        if (ls->any) return WEFT_EEXIST;
        ls->any = l;
        return 0;
    }
    for (unsigned i = 0; i < ls->nroutes; i++)
        if (strcmp(ls->routes[i].route, route) == 0) return WEFT_EEXIST;
    if (ls->nroutes >= MAX_LIMITED) return WEFT_ELIMIT;
    char *r = strdup(route);
    if (!r) return WEFT_ENOMEM;
    ls->routes[ls->nroutes++] = (limited_t){r, l};
    return 0;
}

/* The request's key under l: the peer's address without its port, a header's value, or
 * nothing (one limit). */
static const char *key_of(const weft_service_limiter_t *l, weft_http_request_t *req, size_t *len)
{
    if (l->o.key == WEFT_SERVICE_LIMIT_CLIENT_IP) {
        const char *peer = weft_http_request_peer(req);
        const char *colon = strrchr(peer, ':');
        *len = colon ? (size_t)(colon - peer) : strlen(peer);
        return peer;
    }
    if (l->o.key == WEFT_SERVICE_LIMIT_HEADER) {
        weft_str_t v = weft_http_request_header(req, l->header);
        *len = v.len;
        return v.base ? v.base : "";
    }
    *len = 0;
    return "";
}

int weft_service_limit(weft_service_limiter_t *l, weft_http_request_t *req)
{
    if (!l || !req) return 1;
    size_t len;
    const char *key = key_of(l, req, &len);
    weft_ratelimit_result_t res;
    if (weft_ratelimit_table_take(l->t, key, len, weft_now_ns() / 1000000, &res)) return 1;
    if (l->o.shadow) {
        weft_counter_inc(l->shadowed);
        return 1;
    }
    weft_counter_inc(l->rejected);
    weft_ratelimit_headers_t h;
    weft_ratelimit_headers(&l->o.limiter, l->name, &res, &h);
    weft_http_response_header(req, "Retry-After", h.retry_after);
    weft_http_response_header(req, "RateLimit-Policy", h.policy);
    weft_http_response_header(req, "RateLimit", h.state);
    char body[320];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"rate limited\",\"status\":429,\"route\":\"%s\","
                     "\"detail\":\"retry after %" PRIu64 " ms\"}\n",
                     l->name, res.retry_after_ms);
    weft_http_respond(req, 429, "application/json", body,
                      n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
    return 0;
}

weft_service_limiter_t *weft__limits_for(const weft__limits_t *ls, const weft_http_request_t *req)
{
    if (!ls || !req->route_pattern) return NULL;
    for (unsigned i = 0; i < ls->nroutes; i++)
        if (strcmp(ls->routes[i].route, req->route_pattern) == 0) return ls->routes[i].l;
    if (!ls->any || strcmp(req->route_pattern, "/health") == 0 ||
        strcmp(req->route_pattern, "/metrics") == 0)
        return NULL;
    return ls->any;
}
