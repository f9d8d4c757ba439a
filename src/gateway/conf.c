/*
 * conf.c - the gateway's settings: `gateway.routes` (a list, read from the YAML tree with
 * the config system's node readers) compiled into route.h's routes.
 *
 * Every error names the file, line, column and path of the value at fault, as the loader's
 * own errors do (`weft.yaml:9:26: gateway.routes[0].retry.attempts: expected a whole
 * number, got "two"`), and the whole list is refused: a reload with a bad route keeps the
 * old table serving.
 *
 * A route (docs/gateway.md has the reference):
 *   name             required, unique; letters, digits, '-', '_', '.'
 *   match            required: path_prefix | path (exact, or a pattern with :name segments
 *                    and a last *); host; methods (a list); headers (a map: name to value,
 *                    "*" for any value)
 *   strip_prefix     bool (path_prefix routes)        rewrite   the upstream path instead
 *   service | upstream {targets: [HOST:PORT | {address, weight}], lb}  exactly one (a
 *                    service route may still give upstream: {lb, hash_on})
 *                    lb: round_robin | least_request | random | ring_hash (hash_on:
 *                    client_ip | header:NAME)
 *   timeout          whole request, default 15s
 *   retry            {attempts, on: [connect-failure, reset, timeout, 5xx, 502...],
 *                     per_try_timeout, methods: idempotent | any}
 *   rate_limit       {algorithm: token_bucket (rate: N/s, burst) | sliding_window (limit,
 *                     window), key: client_ip | route | global | header:NAME, shadow}
 *   circuit_breaker  {consecutive_failures, failure_rate: N%, slow_call_duration,
 *                     slow_call_rate: N%, window, min_requests, open_for, open_for_max,
 *                     half_open_requests; limits per upstream instance: max_connections,
 *                     max_pending_requests (or max_pending), max_requests}
 *   websocket        {enabled (true), idle_timeout (1h)}: upgrades tunnelled (tunnel.c)
 *   tracing          {sample_ratio, sample_rate: N/s (0: no cap), keep_errors,
 *                     keep_slower_than}: the route's own sampling (observe.c)
 *
 * And `gateway.access_log: {path: FILE | "-"}` (observe.c writes it; "-" is standard output).
 *
 * Threads: the thread that loads the configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/gateway.h"
#include "weft/config.h"

#define DEF_TIMEOUT_MS 15000
/* websocket.idle_timeout: an hour, HAProxy's documented `timeout tunnel` and Envoy's
 * connection idle_timeout (NGINX's 60 s is what its users raise for WebSockets) */
#define DEF_WS_IDLE_MS 3600000

typedef const weft_conf_node_t node_t;

static int dup_str(node_t *n, size_t maxlen, char **out, char *err, size_t errlen)
{
    const char *s;
    if (weft_conf_node_string(n, 1, maxlen, &s, err, errlen)) return WEFT_EINVAL;
    if (!(*out = strdup(s))) return weft_conf_node_errorf(n, err, errlen, "out of memory");
    return 0;
}

static bool name_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static bool path_ok(const char *s)
{
    if (s[0] != '/') return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '?' || *s == '#') return false;
    return true;
}

static int read_match(gw_route_t *r, node_t *m, char *err, size_t errlen)
{
    static const char *const keys[] = {"path_prefix", "path", "host", "methods", "headers", NULL};
    if (weft_conf_node_expect(m, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(m, keys, err, errlen))
        return WEFT_EINVAL;
    node_t *pp = weft_conf_node_get(m, "path_prefix"), *p = weft_conf_node_get(m, "path");
    if ((pp != NULL) == (p != NULL))
        return weft_conf_node_errorf(m, err, errlen, "needs exactly one of path_prefix and path");
    node_t *pn = pp ? pp : p;
    if (dup_str(pn, 1024, &r->path, err, errlen)) return WEFT_EINVAL;
    if (!path_ok(r->path))
        return weft_conf_node_errorf(pn, err, errlen,
                                     "a path starts with '/' and has no spaces, '?' or '#'");
    r->path_len = strlen(r->path);
    r->kind = pp                                               ? GW_MATCH_PREFIX
              : strstr(r->path, "/:") || strstr(r->path, "/*") ? GW_MATCH_PATTERN
                                                               : GW_MATCH_EXACT;
    node_t *h = weft_conf_node_get(m, "host");
    if (h && dup_str(h, GW_HOST_MAX, &r->host, err, errlen)) return WEFT_EINVAL;
    node_t *ms = weft_conf_node_get(m, "methods");
    if (ms) {
        if (weft_conf_node_expect(ms, WEFT_CONF_NODE_SEQ, err, errlen)) return WEFT_EINVAL;
        if (weft_conf_node_len(ms) > GW_MAX_METHODS)
            return weft_conf_node_errorf(ms, err, errlen, "at most %d methods", GW_MAX_METHODS);
        for (size_t i = 0; i < weft_conf_node_len(ms); i++) {
            node_t *it = weft_conf_node_at(ms, i);
            if (dup_str(it, 32, &r->methods[r->nmethods], err, errlen)) return WEFT_EINVAL;
            r->nmethods++;
            for (char *c = r->methods[r->nmethods - 1]; *c; c++)
                if (!(*c >= 'A' && *c <= 'Z') && *c != '-')
                    return weft_conf_node_errorf(it, err, errlen,
                                                 "a method is upper-case letters (GET, POST)");
        }
    }
    node_t *hs = weft_conf_node_get(m, "headers");
    if (hs) {
        if (weft_conf_node_expect(hs, WEFT_CONF_NODE_MAP, err, errlen)) return WEFT_EINVAL;
        if (weft_conf_node_len(hs) > GW_MAX_HEADERS)
            return weft_conf_node_errorf(hs, err, errlen, "at most %d headers", GW_MAX_HEADERS);
        for (size_t i = 0; i < weft_conf_node_len(hs); i++) {
            gw_header_match_t *hm = &r->headers[r->nheaders++];
            if (!(hm->name = strdup(weft_conf_node_key(hs, i))))
                return weft_conf_node_errorf(hs, err, errlen, "out of memory");
            const char *v;
            if (weft_conf_node_string(weft_conf_node_at(hs, i), 0, 4096, &v, err, errlen))
                return WEFT_EINVAL;
            if (strcmp(v, "*") != 0 && !(hm->value = strdup(v)))
                return weft_conf_node_errorf(hs, err, errlen, "out of memory");
        }
    }
    return 0;
}

static int read_target(gw_target_t *t, node_t *n, char *err, size_t errlen)
{
    node_t *addr = n;
    t->weight = 1;
    if (weft_conf_node_kind(n) == WEFT_CONF_NODE_MAP) {
        static const char *const keys[] = {"address", "weight", NULL};
        if (weft_conf_node_check_keys(n, keys, err, errlen) ||
            weft_conf_node_require(n, "address", &addr, err, errlen))
            return WEFT_EINVAL;
        node_t *w = weft_conf_node_get(n, "weight");
        uint64_t wv = 1;
        if (w && weft_conf_node_uint(w, 1, 1000, &wv, err, errlen)) return WEFT_EINVAL;
        t->weight = (unsigned)wv;
    }
    weft_conf_addr_t a;
    if (weft_conf_node_addr(addr, &a, err, errlen)) return WEFT_EINVAL;
    if (a.port == 0) return weft_conf_node_errorf(addr, err, errlen, "port 0 is not a target");
    if (strlen(a.host) > GW_HOST_MAX)
        return weft_conf_node_errorf(addr, err, errlen, "host longer than %d bytes", GW_HOST_MAX);
    snprintf(t->host, sizeof(t->host), "%s", a.host);
    t->port = a.port;
    return 0;
}

static const char *const lb_names[] = {"round_robin", "least_request", "random", "ring_hash", NULL};

/* upstream: {targets, lb, hash_on}; with a service (whose instances are the targets), only
 * lb and hash_on. */
static int read_upstream(gw_route_t *r, node_t *u, bool service, char *err, size_t errlen)
{
    static const char *const keys[] = {"targets", "lb", "hash_on", NULL};
    node_t *ts = NULL;
    if (weft_conf_node_expect(u, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(u, keys, err, errlen))
        return WEFT_EINVAL;
    node_t *lb = weft_conf_node_get(u, "lb");
    int v = 0;
    if (lb && weft_conf_node_enum(lb, lb_names, &v, err, errlen)) return WEFT_EINVAL;
    r->lb = (gw_lb_t)v;
    node_t *ho = weft_conf_node_get(u, "hash_on");
    if (ho) {
        const char *s;
        if (weft_conf_node_string(ho, 1, 300, &s, err, errlen)) return WEFT_EINVAL;
        if (r->lb != GW_LB_RING_HASH)
            return weft_conf_node_errorf(ho, err, errlen, "hash_on needs lb: ring_hash");
        if (strcmp(s, "client_ip") == 0) {
            r->hash_on = GW_HASH_CLIENT_IP;
        } else if (strncmp(s, "header:", 7) == 0 && s[7]) {
            r->hash_on = GW_HASH_HEADER;
            if (!(r->hash_header = strdup(s + 7)))
                return weft_conf_node_errorf(ho, err, errlen, "out of memory");
        } else {
            return weft_conf_node_errorf(ho, err, errlen, "expected client_ip or header:NAME");
        }
    }
    if (service) {
        if ((ts = weft_conf_node_get(u, "targets")))
            return weft_conf_node_errorf(ts, err, errlen,
                                         "a route with a service takes its targets from the "
                                         "registry: give service or upstream.targets, not both");
        return 0;
    }
    if (weft_conf_node_require(u, "targets", &ts, err, errlen) ||
        weft_conf_node_expect(ts, WEFT_CONF_NODE_SEQ, err, errlen))
        return WEFT_EINVAL;
    size_t n = weft_conf_node_len(ts);
    if (n == 0 || n > GW_MAX_TARGETS)
        return weft_conf_node_errorf(ts, err, errlen, "1 to %d targets", GW_MAX_TARGETS);
    if (!(r->targets = calloc(n, sizeof(*r->targets))))
        return weft_conf_node_errorf(ts, err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (read_target(&r->targets[i], weft_conf_node_at(ts, i), err, errlen)) return WEFT_EINVAL;
        r->ntargets++;
    }
    return 0;
}

/* A list of outcomes (retry.on, circuit_breaker.failure_on): connect-failure, reset,
 * timeout, 5xx (GW_RETRY_* bits into *bits) and statuses min_status-599 (at most
 * GW_RETRY_MAX_STATUSES, into statuses[*n]). */
static int read_outcomes(node_t *on, unsigned min_status, unsigned *bits, uint16_t *statuses,
                         unsigned *n, char *err, size_t errlen)
{
    if (weft_conf_node_expect(on, WEFT_CONF_NODE_SEQ, err, errlen)) return WEFT_EINVAL;
    if (weft_conf_node_len(on) == 0)
        return weft_conf_node_errorf(on, err, errlen, "needs at least one outcome");
    *bits = 0;
    *n = 0;
    for (size_t i = 0; i < weft_conf_node_len(on); i++) {
        node_t *it = weft_conf_node_at(on, i);
        const char *s;
        if (weft_conf_node_string(it, 1, 32, &s, err, errlen)) return WEFT_EINVAL;
        if (strcmp(s, "connect-failure") == 0)
            *bits |= GW_RETRY_CONNECT;
        else if (strcmp(s, "reset") == 0)
            *bits |= GW_RETRY_RESET;
        else if (strcmp(s, "timeout") == 0)
            *bits |= GW_RETRY_TIMEOUT;
        else if (strcmp(s, "5xx") == 0)
            *bits |= GW_RETRY_5XX;
        else {
            uint64_t code;
            char e2[8];
            if (weft_conf_node_uint(it, min_status, 599, &code, e2, sizeof(e2)))
                return weft_conf_node_errorf(
                    it, err, errlen, "expected connect-failure, reset, timeout, 5xx or a status %u-599",
                    min_status);
            if (*n == GW_RETRY_MAX_STATUSES)
                return weft_conf_node_errorf(it, err, errlen, "at most %d statuses",
                                             GW_RETRY_MAX_STATUSES);
            statuses[(*n)++] = (uint16_t)code;
        }
    }
    return 0;
}

static int read_retry(gw_retry_conf_t *c, node_t *n, char *err, size_t errlen)
{
    static const char *const keys[] = {"attempts", "on", "per_try_timeout", "methods", NULL};
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen))
        return WEFT_EINVAL;
    uint64_t a = 1;
    node_t *at = weft_conf_node_get(n, "attempts");
    if (at && weft_conf_node_uint(at, 0, 10, &a, err, errlen)) return WEFT_EINVAL;
    c->attempts = (unsigned)a;
    node_t *on = weft_conf_node_get(n, "on");
    if (!on)
        c->on = GW_RETRY_CONNECT | GW_RETRY_RESET;
    else if (read_outcomes(on, 500, &c->on, c->statuses, &c->nstatuses, err, errlen))
        return WEFT_EINVAL;
    node_t *pt = weft_conf_node_get(n, "per_try_timeout");
    if (pt && weft_conf_node_duration(pt, 1, 3600000, &c->per_try_timeout_ms, err, errlen))
        return WEFT_EINVAL;
    node_t *m = weft_conf_node_get(n, "methods");
    static const char *const mnames[] = {"idempotent", "any", NULL};
    int mv = 0;
    if (m && weft_conf_node_enum(m, mnames, &mv, err, errlen)) return WEFT_EINVAL;
    c->any_method = mv == 1;
    return 0;
}

static int read_rate_limit(gw_ratelimit_conf_t *c, node_t *n, char *err, size_t errlen)
{
    static const char *const keys[] = {"algorithm", "rate",   "burst",    "limit", "window",
                                       "key",       "shadow", "max_keys", NULL};
    static const char *const algos[] = {"token_bucket", "sliding_window", NULL};
    node_t *al;
    int a;
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen) ||
        weft_conf_node_require(n, "algorithm", &al, err, errlen) ||
        weft_conf_node_enum(al, algos, &a, err, errlen))
        return WEFT_EINVAL;
    c->on = true;
    c->algorithm = (gw_rl_algo_t)a;
    if (c->algorithm == GW_RL_TOKEN_BUCKET) {
        node_t *rate, *b = weft_conf_node_get(n, "burst");
        if (weft_conf_node_require(n, "rate", &rate, err, errlen) ||
            weft_conf_node_rate(rate, &c->rate, err, errlen))
            return WEFT_EINVAL;
        c->burst = c->rate < 1 ? 1 : (uint64_t)c->rate;
        if (b && weft_conf_node_uint(b, 1, UINT32_MAX, &c->burst, err, errlen)) return WEFT_EINVAL;
        if (weft_conf_node_get(n, "limit") || weft_conf_node_get(n, "window"))
            return weft_conf_node_errorf(n, err, errlen,
                                         "token_bucket takes rate and burst, not limit or window");
    } else {
        node_t *l, *w;
        if (weft_conf_node_require(n, "limit", &l, err, errlen) ||
            weft_conf_node_uint(l, 1, UINT32_MAX, &c->limit, err, errlen) ||
            weft_conf_node_require(n, "window", &w, err, errlen) ||
            weft_conf_node_duration(w, 1, 86400000, &c->window_ms, err, errlen))
            return WEFT_EINVAL;
        if (weft_conf_node_get(n, "rate") || weft_conf_node_get(n, "burst"))
            return weft_conf_node_errorf(
                n, err, errlen, "sliding_window takes limit and window, not rate or burst");
    }
    node_t *k = weft_conf_node_get(n, "key");
    if (k) {
        const char *s;
        if (weft_conf_node_string(k, 1, 300, &s, err, errlen)) return WEFT_EINVAL;
        if (strcmp(s, "client_ip") == 0)
            c->key = GW_RL_KEY_CLIENT_IP;
        else if (strcmp(s, "route") == 0)
            c->key = GW_RL_KEY_ROUTE;
        else if (strcmp(s, "global") == 0)
            c->key = GW_RL_KEY_GLOBAL;
        else if (strncmp(s, "header:", 7) == 0 && s[7]) {
            c->key = GW_RL_KEY_HEADER;
            if (!(c->key_header = strdup(s + 7)))
                return weft_conf_node_errorf(k, err, errlen, "out of memory");
        } else
            return weft_conf_node_errorf(k, err, errlen,
                                         "expected client_ip, route, global or header:NAME");
    }
    node_t *sh = weft_conf_node_get(n, "shadow");
    if (sh && weft_conf_node_bool(sh, &c->shadow, err, errlen)) return WEFT_EINVAL;
    c->max_keys = 1u << 20;
    node_t *mk = weft_conf_node_get(n, "max_keys");
    if (mk && weft_conf_node_uint(mk, 16, 1u << 30, &c->max_keys, err, errlen)) return WEFT_EINVAL;
    return 0;
}

/* circuit_breaker's concurrency limits (Envoy's thresholds): max_connections,
 * max_pending_requests (or max_pending), max_requests. */
static int read_limits(gw_limits_conf_t *l, node_t *n, char *err, size_t errlen)
{
    node_t *v, *pa = weft_conf_node_get(n, "max_pending_requests"),
               *pb = weft_conf_node_get(n, "max_pending");
    if (pa && pb)
        return weft_conf_node_errorf(pb, err, errlen,
                                     "max_pending and max_pending_requests are one setting: "
                                     "give one of them");
    if ((v = weft_conf_node_get(n, "max_connections"))) {
        if (weft_conf_node_uint(v, 1, 1000000, &l->max_connections, err, errlen))
            return WEFT_EINVAL;
        l->on = true;
    }
    if ((v = pa ? pa : pb)) {
        if (weft_conf_node_uint(v, 0, 1000000, &l->max_pending, err, errlen)) return WEFT_EINVAL;
        l->pending_set = l->on = true;
    }
    if ((v = weft_conf_node_get(n, "max_requests"))) {
        if (weft_conf_node_uint(v, 1, 1000000, &l->max_requests, err, errlen)) return WEFT_EINVAL;
        l->on = true;
    }
    return 0;
}

static int read_breaker(gw_breaker_conf_t *c, gw_limits_conf_t *l, node_t *n, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"consecutive_failures",
                                       "failure_rate",
                                       "slow_call_duration",
                                       "slow_call_rate",
                                       "window",
                                       "min_requests",
                                       "open_for",
                                       "open_for_max",
                                       "half_open_requests",
                                       "scope",
                                       "failure_on",
                                       "max_connections",
                                       "max_pending_requests",
                                       "max_pending",
                                       "max_requests",
                                       NULL};
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen))
        return WEFT_EINVAL;
    *c = (gw_breaker_conf_t){.on = true,
                             .slow_call_ms = 0,
                             .window_ms = 10000,
                             .min_requests = 20,
                             .open_for_ms = 30000,
                             .half_open_requests = 3};
    node_t *v;
    if ((v = weft_conf_node_get(n, "consecutive_failures")) &&
        weft_conf_node_uint(v, 0, 1000000000, &c->consecutive_failures, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "failure_rate")) &&
        weft_conf_node_percent(v, &c->failure_rate, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "slow_call_duration")) &&
        weft_conf_node_duration(v, 1, 3600000, &c->slow_call_ms, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "slow_call_rate")) &&
        weft_conf_node_percent(v, &c->slow_call_rate, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "window")) &&
        weft_conf_node_duration(v, 100, 3600000, &c->window_ms, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "min_requests")) &&
        weft_conf_node_uint(v, 1, 1000000, &c->min_requests, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "open_for")) &&
        weft_conf_node_duration(v, 1, 86400000, &c->open_for_ms, err, errlen))
        return WEFT_EINVAL;
    c->open_for_max_ms = c->open_for_ms * 10;
    if ((v = weft_conf_node_get(n, "open_for_max")) &&
        weft_conf_node_duration(v, c->open_for_ms, 86400000, &c->open_for_max_ms, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "half_open_requests")) &&
        weft_conf_node_uint(v, 1, 1000, &c->half_open_requests, err, errlen))
        return WEFT_EINVAL;
    static const char *const scopes[] = {"both", "route", "instance", NULL};
    int scope = GW_BREAKER_BOTH;
    if ((v = weft_conf_node_get(n, "scope")) &&
        weft_conf_node_enum(v, scopes, &scope, err, errlen))
        return WEFT_EINVAL;
    c->scope = (gw_breaker_scope_t)scope;
    c->fail_on = GW_RETRY_CONNECT | GW_RETRY_RESET | GW_RETRY_TIMEOUT | GW_RETRY_5XX;
    if ((v = weft_conf_node_get(n, "failure_on")) &&
        read_outcomes(v, 400, &c->fail_on, c->fail_statuses, &c->nfail_statuses, err, errlen))
        return WEFT_EINVAL;
    if (c->slow_call_rate > 0 && c->slow_call_ms == 0)
        return weft_conf_node_errorf(n, err, errlen, "slow_call_rate needs slow_call_duration");
    if (read_limits(l, n, err, errlen)) return WEFT_EINVAL;
    if (!c->consecutive_failures && c->failure_rate == 0 && c->slow_call_rate == 0) {
        if (!l->on)
            return weft_conf_node_errorf(
                n, err, errlen,
                "needs at least one of consecutive_failures, failure_rate, slow_call_rate "
                "(or only limits: max_connections, max_pending_requests, max_requests)");
        c->on = false; /* limits alone: no breaker */
    }
    return 0;
}

/* websocket: {enabled, idle_timeout}: tunnelling of upgrade requests (on by default, as in
 * Kong and Traefik), and how long a tunnel may carry nothing either way. */
static int read_websocket(gw_route_t *r, node_t *n, char *err, size_t errlen)
{
    static const char *const keys[] = {"enabled", "idle_timeout", NULL};
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen))
        return WEFT_EINVAL;
    node_t *v;
    bool on = true;
    if ((v = weft_conf_node_get(n, "enabled")) && weft_conf_node_bool(v, &on, err, errlen))
        return WEFT_EINVAL;
    r->ws_off = !on;
    if ((v = weft_conf_node_get(n, "idle_timeout")) &&
        weft_conf_node_duration(v, 1, 7 * 86400000ull, &r->ws_idle_ms, err, errlen))
        return WEFT_EINVAL;
    return 0;
}

/* tracing: {sample_ratio, sample_rate, keep_errors, keep_slower_than}: the route's head
 * sampling (what it does not give comes from the global tracing.* keys, filled in by
 * weft_gateway_routes_tracing) and its tail rules. */
static int read_tracing(gw_trace_conf_t *c, node_t *n, char *err, size_t errlen)
{
    static const char *const keys[] = {"sample_ratio", "sample_rate", "keep_errors",
                                       "keep_slower_than", NULL};
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen))
        return WEFT_EINVAL;
    c->on = true;
    node_t *v;
    if ((v = weft_conf_node_get(n, "sample_ratio"))) {
        static const weft_conf_option_t ratio = {.type = WEFT_CONF_DOUBLE, .min = 0, .max = 1};
        if (weft_conf_node_value(v, &ratio, &c->ratio, err, errlen)) return WEFT_EINVAL;
        c->ratio_set = true;
    }
    if ((v = weft_conf_node_get(n, "sample_rate"))) {
        /* "100/s" as rate_limit.rate, or a number of traces a second (0: no cap) */
        const char *s;
        if (weft_conf_node_string(v, 1, 64, &s, err, errlen)) return WEFT_EINVAL;
        if (strchr(s, '/')) {
            if (weft_conf_node_rate(v, &c->rate, err, errlen)) return WEFT_EINVAL;
        } else {
            static const weft_conf_option_t rate = {.type = WEFT_CONF_DOUBLE, .min = 0, .max = 1e9};
            if (weft_conf_node_value(v, &rate, &c->rate, err, errlen)) return WEFT_EINVAL;
        }
        c->rate_set = true;
    }
    if ((v = weft_conf_node_get(n, "keep_errors")) &&
        weft_conf_node_bool(v, &c->keep_errors, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "keep_slower_than")) &&
        weft_conf_node_duration(v, 1, 86400000, &c->keep_slower_ms, err, errlen))
        return WEFT_EINVAL;
    return 0;
}

static int read_route(gw_route_t *r, node_t *n, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "name",  "match",      "strip_prefix",    "rewrite",   "service", "upstream", "timeout",
        "retry", "rate_limit", "circuit_breaker", "websocket", "tracing", NULL};
    node_t *name, *match;
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen) ||
        weft_conf_node_require(n, "name", &name, err, errlen) ||
        dup_str(name, 128, &r->name, err, errlen))
        return WEFT_EINVAL;
    if (!name_ok(r->name))
        return weft_conf_node_errorf(name, err, errlen,
                                     "a name is letters, digits, '-', '_' and '.'");
    if (weft_conf_node_require(n, "match", &match, err, errlen) ||
        read_match(r, match, err, errlen))
        return WEFT_EINVAL;
    node_t *v;
    if ((v = weft_conf_node_get(n, "strip_prefix"))) {
        if (weft_conf_node_bool(v, &r->strip_prefix, err, errlen)) return WEFT_EINVAL;
        if (r->strip_prefix && r->kind != GW_MATCH_PREFIX)
            return weft_conf_node_errorf(v, err, errlen, "strip_prefix needs match.path_prefix");
    }
    if ((v = weft_conf_node_get(n, "rewrite"))) {
        if (dup_str(v, 1024, &r->rewrite, err, errlen)) return WEFT_EINVAL;
        if (!path_ok(r->rewrite))
            return weft_conf_node_errorf(v, err, errlen,
                                         "a path starts with '/' and has no spaces, '?' or '#'");
    }
    node_t *svc = weft_conf_node_get(n, "service"), *up = weft_conf_node_get(n, "upstream");
    if (!svc && !up)
        return weft_conf_node_errorf(n, err, errlen, "needs exactly one of service and upstream");
    if (svc && dup_str(svc, 255, &r->service, err, errlen)) return WEFT_EINVAL;
    if (up && read_upstream(r, up, svc != NULL, err, errlen)) return WEFT_EINVAL;
    r->timeout_ms = DEF_TIMEOUT_MS;
    if ((v = weft_conf_node_get(n, "timeout")) &&
        weft_conf_node_duration(v, 1, 3600000, &r->timeout_ms, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "retry")) && read_retry(&r->retry, v, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "rate_limit")) &&
        read_rate_limit(&r->rate_limit, v, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "circuit_breaker")) &&
        read_breaker(&r->breaker, &r->limits, v, err, errlen))
        return WEFT_EINVAL;
    r->ws_idle_ms = DEF_WS_IDLE_MS;
    if ((v = weft_conf_node_get(n, "websocket")) && read_websocket(r, v, err, errlen))
        return WEFT_EINVAL;
    if ((v = weft_conf_node_get(n, "tracing")) && read_tracing(&r->trace, v, err, errlen))
        return WEFT_EINVAL;
    weft_gateway_routes_tracing(r, 1, 1, 0); /* until the caller gives the global values */
    return 0;
}

void weft_gateway_routes_tracing(gw_route_t *routes, size_t n, double ratio, double rate)
{
    for (size_t i = 0; i < n; i++) {
        gw_trace_conf_t *c = &routes[i].trace;
        if (!c->on) continue;
        if (!c->ratio_set) c->ratio = ratio;
        if (!c->rate_set) c->rate = rate;
        weft_trace_rate_init(&c->bucket, c->rate);
    }
}

int weft_gateway_routes_compile(const weft_conf_node_t *routes, gw_route_t **out, size_t *nout,
                                char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    if (!routes) return 0;
    if (weft_conf_node_expect(routes, WEFT_CONF_NODE_SEQ, err, errlen)) return WEFT_EINVAL;
    size_t n = weft_conf_node_len(routes);
    if (n > GW_MAX_ROUTES)
        return weft_conf_node_errorf(routes, err, errlen, "at most %d routes", GW_MAX_ROUTES);
    gw_route_t *rs = calloc(n ? n : 1, sizeof(*rs));
    if (!rs) return weft_conf_node_errorf(routes, err, errlen, "out of memory");
    int rc = 0;
    size_t i;
    for (i = 0; i < n && rc == 0; i++) {
        node_t *rn = weft_conf_node_at(routes, i);
        rc = read_route(&rs[i], rn, err, errlen);
        for (size_t j = 0; j < i && rc == 0; j++)
            if (strcmp(rs[j].name, rs[i].name) == 0)
                rc = weft_conf_node_errorf(weft_conf_node_get(rn, "name"), err, errlen,
                                           "a second route named \"%s\"", rs[i].name);
    }
    if (rc != 0) {
        for (size_t j = 0; j < i; j++) gw_route_clear(&rs[j]);
        free(rs);
        return rc;
    }
    *out = rs;
    *nout = n;
    return 0;
}

/* gateway.access_log: { path: FILE | "-" } (docs/gateway.md). */
int weft_gateway_access_log_compile(const weft_conf_node_t *n, const char **path, char *err,
                                    size_t errlen)
{
    static const char *const keys[] = {"path", NULL};
    *path = NULL;
    if (!n) return 0;
    node_t *p;
    if (weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen) ||
        weft_conf_node_check_keys(n, keys, err, errlen) ||
        weft_conf_node_require(n, "path", &p, err, errlen) ||
        weft_conf_node_string(p, 1, 4095, path, err, errlen)) {
        *path = NULL;
        return WEFT_EINVAL;
    }
    /* opened (and created) here to say where a bad path was written; the gateway opens it
     * again for good when it starts */
    if (strcmp(*path, "-") != 0) {
        int fd = open(*path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            int e = errno;
            *path = NULL;
            return weft_conf_node_errorf(p, err, errlen, "cannot open it: %s", strerror(e));
        }
        close(fd);
    }
    return 0;
}
