/*
 * discovery.c - the discovery client (weft/discovery.h): its options, new, close and
 * counters; the cache's table of entries; the tick timer; the ready queue.
 *
 * The cache is a small table of entries, one per service name in use (svc_t, defined in
 * discovery_int.h), looked up by a linear scan: max_services is small (64 by default,
 * at most 4096), a scan of names is cheaper than the HTTP request that follows it, and the
 * table is this loop's alone. Each entry keeps one query parked at the registry
 * (discovery_watch.c). A new name takes a free slot, or the slot of the least recently used
 * entry that no call holds (its query canceled), or fails with WEFT_ELIMIT.
 *
 * One timer, tick, does everything that waits for a time: calls waiting for an entry's
 * first answer past their deadline end with WEFT_ETIMEDOUT; calls whose retry backoff is
 * over make their next attempt; entries in backoff send their query again; entries unused
 * for idle_ms are dropped. It is armed for the earliest of these (weft__disc_tick_arm
 * lowers it when something earlier comes; a run recomputes it from scratch), so an idle
 * client wakes only when something is due.
 *
 * The ready queue holds finished top-level calls; an idle handle (kick), active only
 * while the queue has something, delivers them on the next loop iteration. So every user
 * callback runs from the kick (or from cancel and close, which say so), never while the
 * client walks its own lists.
 *
 * Closing: every call is canceled (callbacks with WEFT_ECANCELED), every entry's query
 * canceled, then the HTTP client and the two handles are closed; the client and its entries
 * are freed when the last of them is, and on_closed runs.
 *
 * Threads: the client's loop thread only. Memory policy (SDK): WEFT_ENOMEM, never an abort.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/url.h"
#include "service/discovery_int.h"

void weft_discovery_options_init(weft_discovery_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->policy = WEFT_DISCOVERY_ROUND_ROBIN;
    o->retries = 2;
    o->call_timeout_ms = 10000;
    o->registry_timeout_ms = 5000;
    o->wait_ms = 300000;
    o->retry_min_ms = 100;
    o->retry_max_ms = 10000;
    o->idle_ms = 600000;
    o->max_services = 64;
    o->max_instances = 1024;
    o->max_calls = 4096;
    o->max_body = 1u << 20;
    o->max_registry_body = 16u << 20;
    o->breaker = true;
    weft_breaker_options_init(&o->breaker_conf);
    o->retry_on =
        WEFT_DISCOVERY_RETRY_CONNECT | WEFT_DISCOVERY_RETRY_RESET | WEFT_DISCOVERY_RETRY_5XX;
    o->backoff_base_ms = 25;
    o->backoff_max_ms = 250;
    o->retry_budget = true;
    o->retry_budget_percent = 20;
    o->retry_budget_min = 3;
}

/* Letters, digits, '-', '_', '.' (and ':' when colon), 1..max bytes: what goes into a URL
 * path unescaped. */
bool weft__disc_name_ok(const char *s, size_t max, bool colon)
{
    if (!s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= max) return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || (colon && c == ':')))
            return false;
    }
    return n > 0;
}

/* xorshift64*: the random policy and the backoff's jitter; not for secrets. */
uint64_t weft__disc_rand(weft_discovery_t *d)
{
    uint64_t x = d->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    d->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* One of the kick, the tick and the HTTP client is closed; the last one frees d. */
static void closed_one(weft_discovery_t *d)
{
    if (--d->open_handles > 0) return;
    void (*fn)(void *) = d->on_closed;
    void *arg = d->closed_arg;
    for (unsigned i = 0; i < d->nsvcs; i++) weft__disc_entry_free(d->svcs[i]);
    free(d->svcs);
    free(d->reg_url);
    free(d->token);
    weft_retry_budget_free(d->budget);
    free(d);
    if (fn) fn(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void on_http_closed(void *arg)
{
    closed_one(arg);
}

/* The request timeout that ends at deadline_ns: the HTTP client counts it from the loop's
 * time (uv_now, whole milliseconds), which lags the clock by however long this iteration
 * has run so far, so that lag and the millisecond it rounds away are added: a call's
 * timeout never fires early. */
uint64_t weft__disc_timeout_ms(weft_discovery_t *d, uint64_t deadline_ns)
{
    uint64_t now = weft_now_ns(), loop_ms = uv_now(d->loop), now_ms = now / 1000000;
    uint64_t left = deadline_ns > now ? (deadline_ns - now + 999999) / 1000000 : 1;
    return left + 1 + (now_ms > loop_ms ? now_ms - loop_ms : 0);
}

/* ---- the ready queue ---- */

static void on_kick(uv_idle_t *h)
{
    weft_discovery_t *d = h->data;
    while (!dl_empty(&d->ready)) {
        call_t *c = DL_ITEM(d->ready.next, call_t, rlink);
        weft__disc_deliver(c); /* unlinks and frees c; may close d (d stays allocated) */
    }
    if (!d->closing) uv_idle_stop(&d->kick);
}

void weft__disc_kick(weft_discovery_t *d)
{
    if (!d->closing) uv_idle_start(&d->kick, on_kick);
}

/* ---- the tick ---- */

static void on_tick(uv_timer_t *t)
{
    weft_discovery_t *d = t->data;
    d->tick_due_ns = 0;
    weft__disc_tick_run(d, weft_now_ns());
}

void weft__disc_tick_arm(weft_discovery_t *d, uint64_t due_ns)
{
    if (d->closing) return;
    if (d->tick_due_ns && d->tick_due_ns <= due_ns) return;
    uint64_t now = weft_now_ns();
    uint64_t ms = due_ns > now ? (due_ns - now + 999999) / 1000000 : 0;
    d->tick_due_ns = due_ns;
    uv_timer_start(&d->tick, on_tick, ms, 0);
}

/* Whatever is due at now: deadlines of waiting calls, backoffs, idle entries; then the
 * timer again for the earliest of what is left. */
void weft__disc_tick_run(weft_discovery_t *d, uint64_t now)
{
    /* Expiring a call only queues it (or its parent), so the walk is safe; take the next
     * node first all the same, since an expired call leaves the list. */
    for (dlink_t *n = d->waiting.next, *next; n != &d->waiting; n = next) {
        next = n->next;
        call_t *c = DL_ITEM(n, call_t, dlink);
        if (c->state == C_BACKOFF) {
            if (c->retry_ns <= now) weft__disc_retry_now(c); /* leaves the list */
        } else if (c->deadline_ns <= now) {
            weft__disc_expire(c);
        }
    }
    uint64_t idle_ns = d->o.idle_ms * 1000000ull;
    for (unsigned i = d->nsvcs; i-- > 0;) {
        svc_t *s = d->svcs[i];
        if (s->wstate == W_BACKOFF && s->retry_ns <= now) weft__disc_watch_send(s);
        if (idle_ns && s->users == 0 && dl_empty(&s->waiters) && s->used_ns + idle_ns <= now) {
            weft__disc_watch_stop(s);
            d->svcs[i] = d->svcs[--d->nsvcs];
            weft__disc_entry_free(s);
            d->st.evictions++;
        }
    }
    uint64_t due = 0;
    for (dlink_t *n = d->waiting.next; n != &d->waiting; n = n->next) {
        call_t *c = DL_ITEM(n, call_t, dlink);
        uint64_t at = c->state == C_BACKOFF ? c->retry_ns : c->deadline_ns;
        if (!due || at < due) due = at;
    }
    for (unsigned i = 0; i < d->nsvcs; i++) {
        svc_t *s = d->svcs[i];
        if (s->wstate == W_BACKOFF && (!due || s->retry_ns < due)) due = s->retry_ns;
        if (idle_ns && s->users == 0 && (!due || s->used_ns + idle_ns < due))
            due = s->used_ns + idle_ns;
    }
    if (due) weft__disc_tick_arm(d, due);
}

/* ---- the table of entries ---- */

svc_t *weft__disc_entry(weft_discovery_t *d, const char *name, int *err)
{
    uint64_t now = weft_now_ns();
    for (unsigned i = 0; i < d->nsvcs; i++)
        if (strcmp(d->svcs[i]->name, name) == 0) {
            d->svcs[i]->used_ns = now;
            return d->svcs[i];
        }
    if (d->nsvcs >= d->o.max_services) {
        unsigned victim = ~0u;
        for (unsigned i = 0; i < d->nsvcs; i++) {
            svc_t *s = d->svcs[i];
            if (s->users || !dl_empty(&s->waiters)) continue;
            if (victim == ~0u || s->used_ns < d->svcs[victim]->used_ns) victim = i;
        }
        if (victim == ~0u) {
            *err = WEFT_ELIMIT;
            return NULL;
        }
        svc_t *s = d->svcs[victim];
        weft__disc_watch_stop(s);
        d->svcs[victim] = d->svcs[--d->nsvcs];
        weft__disc_entry_free(s);
        d->st.evictions++;
    }
    svc_t *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    s->d = d;
    strcpy(s->name, name); /* checked by the caller: at most WEFT_DISCOVERY_NAME_MAX */
    dl_init(&s->waiters);
    s->used_ns = now;
    weft_buf_init(&s->qbody, d->o.max_registry_body);
    weft__dpol_init(&s->pol, &d->pconf, s->name, weft__disc_rand(d));
    d->svcs[d->nsvcs++] = s;
    weft__disc_watch_send(s); /* a failure to send is a failed query: a backoff */
    if (d->o.idle_ms) weft__disc_tick_arm(d, now + d->o.idle_ms * 1000000ull);
    return s;
}

/* ---- the object ---- */

int weft__disc_registry_split(const char *url, char host[DISC_HOST_MAX + 1], uint16_t *port)
{
    weft__url_t u;
    const char *bad = weft__url_split(url, &u);
    if (u.scheme && !(u.scheme_len == 4 && strncmp(u.scheme, "http", 4) == 0))
        return u.scheme_len == 5 && strncmp(u.scheme, "https", 5) == 0 ? WEFT_EUNSUPPORTED
                                                                       : WEFT_EINVAL;
    if (bad || u.port == 0 || (u.rest[0] && strcmp(u.rest, "/") != 0)) return WEFT_EINVAL;
    snprintf(host, DISC_HOST_MAX + 1, "%s", u.host);
    *port = u.port;
    return 0;
}

/* Every breaker's transitions: counted, then told to the user's on_breaker. */
static void on_breaker(void *data, const char *service, const char *instance,
                       weft_breaker_state_t from, weft_breaker_state_t to,
                       weft_breaker_reason_t reason)
{
    weft_discovery_t *d = data;
    if (from != to) d->st.breaker_transitions++;
    if (d->o.on_breaker) d->o.on_breaker(d->o.on_breaker_data, service, instance, from, to, reason);
}

int weft_discovery_new(const weft_discovery_options_t *o, weft_discovery_t **out)
{
    if (!o || !out || !o->loop || !o->registry) return WEFT_EINVAL;
    if (o->max_services == 0 || o->max_services > DISC_MAX_SERVICES || o->max_instances == 0 ||
        o->max_calls == 0 || o->max_body == 0 || o->max_registry_body == 0 ||
        o->retry_min_ms == 0 || o->retry_min_ms > o->retry_max_ms || o->wait_ms < 1000 ||
        o->retries > DISC_MAX_RETRIES || o->registry_timeout_ms == 0 ||
        (unsigned)o->policy > WEFT_DISCOVERY_RING_HASH || o->retry_budget_percent > 1000 ||
        o->backoff_base_ms > o->backoff_max_ms ||
        (o->breaker && weft_breaker_options_check(&o->breaker_conf, NULL, 0) != 0))
        return WEFT_EINVAL;
    char host[DISC_HOST_MAX + 1];
    uint16_t port;
    int err = weft__disc_registry_split(o->registry, host, &port);
    if (err) return err;
    weft_discovery_t *d = calloc(1, sizeof(*d));
    if (!d) return WEFT_ENOMEM;
    d->o = *o;
    if (o->http)
        d->http_o = *o->http;
    else
        weft_http_client_options_init(&d->http_o);
    d->o.http = &d->http_o;
    d->reg_url = strdup(o->registry);
    d->token = o->token && o->token[0] ? strdup(o->token) : NULL;
    d->svcs = calloc(o->max_services, sizeof(*d->svcs));
    if (!d->reg_url || (o->token && o->token[0] && !d->token) || !d->svcs) {
        free(d->reg_url);
        free(d->token);
        free(d->svcs);
        free(d);
        return WEFT_ENOMEM;
    }
    if (o->retry_budget) {
        weft_retry_budget_options_t bo = {.ratio = o->retry_budget_percent,
                                          .min_retries = o->retry_budget_min};
        if (weft_retry_budget_new(&bo, &d->budget, NULL, 0) != 0) {
            free(d->reg_url);
            free(d->token);
            free(d->svcs);
            free(d);
            return WEFT_ENOMEM;
        }
    }
    d->pconf = (dpol_conf_t){.policy = o->policy,
                             .breaker = o->breaker,
                             .bconf = o->breaker_conf,
                             .on_breaker = on_breaker,
                             .data = d};
    d->o.registry = d->reg_url;
    d->o.token = d->token;
    memcpy(d->reg_host, host, sizeof(host));
    d->reg_port = port;
    d->loop = o->loop;
    d->rng = (weft_now_ns() ^ (uint64_t)(uintptr_t)d) | 1;
    dl_init(&d->calls);
    dl_init(&d->waiting);
    dl_init(&d->ready);
    if ((err = weft_http_client_new(o->loop, &d->http_o, &d->http)) != 0) {
        weft_retry_budget_free(d->budget);
        free(d->reg_url);
        free(d->token);
        free(d->svcs);
        free(d);
        return err;
    }
    uv_idle_init(o->loop, &d->kick);
    uv_timer_init(o->loop, &d->tick);
    d->kick.data = d->tick.data = d;
    d->open_handles = 3;
    *out = d;
    return 0;
}

weft_discovery_stats_t weft_discovery_stats(const weft_discovery_t *d)
{
    weft_discovery_stats_t s = d->st;
    s.services = d->nsvcs;
    s.active = d->active;
    for (unsigned i = 0; i < d->nsvcs; i++) s.breaker_rejected += d->svcs[i]->pol.rejected;
    s.breaker_rejected += d->gone_rejected;
    if (d->budget) {
        weft_retry_budget_stats_t bs;
        weft_retry_budget_stats(d->budget, &bs);
        s.retries_active = bs.retries_active;
    }
    return s;
}

void weft_discovery_close(weft_discovery_t *d, void (*on_closed)(void *), void *arg)
{
    if (!d || d->closing) return;
    d->closing = true;
    d->on_closed = on_closed;
    d->closed_arg = arg;
    /* callbacks may cancel other calls, but start none (WEFT_ECLOSED) */
    while (!dl_empty(&d->calls)) weft__disc_cancel(DL_ITEM(d->calls.next, call_t, link));
    /* The entries' memory stays until the last handle is closed: a call being delivered
     * (close was called from its callback) still holds its entry until it is freed. */
    for (unsigned i = 0; i < d->nsvcs; i++) weft__disc_watch_stop(d->svcs[i]);
    uv_close((uv_handle_t *)&d->kick, on_handle_closed);
    uv_close((uv_handle_t *)&d->tick, on_handle_closed);
    weft_http_client_close(d->http, on_http_closed, d);
}
