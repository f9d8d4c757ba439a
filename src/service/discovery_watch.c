/*
 * discovery_watch.c - one cache entry's query: the blocking query that keeps the entry's
 * instances fresh (weft/discovery.h, "The cache").
 *
 * An entry always has one of: a query in flight (W_QUERY), a query due at retry_ns
 * (W_BACKOFF, sent by the tick), or nothing (W_IDLE: being dropped, or the client
 * closing). The first query has no index and is answered at once, within
 * registry_timeout_ms; every later one carries the last X-Consul-Index and a wait, so the
 * registry holds it until the service changes or the wait ends, and is bounded by the
 * wait, its jitter (1/16) and registry_timeout_ms. A good answer (200, X-Consul-Index, a JSON
 * array) replaces the instances and sends the next query at once; anything else keeps the
 * instances (stale beats none while the registry restarts) and sends again after a backoff
 * of retry_min_ms doubled per failure in a row, up to retry_max_ms, half of it random
 * (so the workers of many services do not come back at the same moment). Two more rules
 * of Consul's for blocking queries: an index that goes backwards means the registry's
 * state was reset, so the watch starts over without an index; and an answer with the
 * same index that comes back well before its wait (a registry that does not block) waits
 * retry_min_ms before the next, so a broken registry cannot make it spin.
 *
 * The answer is parsed with jansson into one block per answer: the instances, sorted by
 * ID, then their tag and meta arrays, then every string, so that replacing an entry's
 * instances is one free. The calls in flight to an instance carry over to its successor
 * of the same ID (least-outstanding balancing keeps its counts across updates).
 *
 * Threads: the client's loop thread. Memory policy: out of memory is a failed query.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "service/discovery_int.h"
#include "weft/log.h"

static void on_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    svc_t *s = arg;
    s->qstatus = status;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name.len != 14 || strncasecmp(h[i].name.base, "X-Consul-Index", 14) != 0) continue;
        uint64_t v = 0;
        size_t j = 0;
        for (; j < h[i].value.len && h[i].value.base[j] >= '0' && h[i].value.base[j] <= '9'; j++) {
            if (v > (UINT64_MAX - 9) / 10) break;
            v = v * 10 + (uint64_t)(h[i].value.base[j] - '0');
        }
        if (j > 0 && j == h[i].value.len) {
            s->qindex = v;
            s->qhave_index = true;
        }
    }
}

static void on_body(weft_http_client_call_t *call, const char *data, size_t len, void *arg)
{
    svc_t *s = arg;
    weft_buf_put(&s->qbody, data, len);
    if (s->qbody.failed) {
        s->qoverflow = true;
        weft_http_client_cancel(call); /* on_done(WEFT_ECANCELED) runs now */
    }
}

static const char *str_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *entry_id(const json_t *e)
{
    return str_of(json_object_get(e, "Service"), "ID");
}

static int by_id(const void *a, const void *b)
{
    return strcmp(entry_id(*(json_t *const *)a), entry_id(*(json_t *const *)b));
}

/* Appends s (len bytes) to the strings area at *p; returns where it went. */
static const char *put_str(char **p, const char *s)
{
    size_t n = strlen(s);
    char *at = *p;
    memcpy(at, s, n + 1);
    *p += n + 1;
    return at;
}

/* The instances of a health answer, into s (replacing what it held). Returns 0,
 * WEFT_EPARSE (not a JSON array), WEFT_ENOMEM. Entries without a Service.ID are skipped. */
static int parse_instances(svc_t *s)
{
    weft_discovery_t *d = s->d;
    json_error_t je;
    json_t *root = json_loadb(s->qbody.p ? s->qbody.p : "", s->qbody.len, 0, &je);
    if (!root) return WEFT_EPARSE;
    if (!json_is_array(root)) {
        json_decref(root);
        return WEFT_EPARSE;
    }
    size_t total = json_array_size(root), n = 0;
    json_t **ents = malloc(sizeof(*ents) * (total ? total : 1));
    if (!ents) {
        json_decref(root);
        return WEFT_ENOMEM;
    }
    for (size_t i = 0; i < total; i++) {
        json_t *e = json_array_get(root, i);
        if (entry_id(e)) ents[n++] = e;
    }
    qsort(ents, n, sizeof(*ents), by_id);
    if (n > d->o.max_instances) n = d->o.max_instances;
    /* sizes: the instances, their tag and meta arrays, then the strings */
    size_t ptrs = 0, kvs = 0, chars = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *sv = json_object_get(ents[i], "Service");
        const char *addr = str_of(sv, "Address");
        if (!addr || !addr[0]) addr = str_of(json_object_get(ents[i], "Node"), "Address");
        const char *name = str_of(sv, "Service");
        chars += strlen(entry_id(ents[i])) + 1 + strlen(addr ? addr : "") + 1 +
                 strlen(name ? name : s->name) + 1;
        const json_t *tags = json_object_get(sv, "Tags"), *t;
        size_t k;
        json_array_foreach(tags, k, t) if (json_is_string(t))
        {
            ptrs++;
            chars += strlen(json_string_value(t)) + 1;
        }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)json_object_get(sv, "Meta"), key, v) if (json_is_string(v))
        {
            kvs++;
            chars += strlen(key) + 1 + strlen(json_string_value(v)) + 1;
        }
    }
    size_t bytes = n * sizeof(weft_discovery_instance_t) + ptrs * sizeof(char *) +
                   kvs * sizeof(weft_discovery_kv_t) + chars;
    char *mem = malloc(bytes ? bytes : 1);
    if (!mem) {
        free(ents);
        json_decref(root);
        return WEFT_ENOMEM;
    }
    weft_discovery_instance_t *inst = (weft_discovery_instance_t *)(void *)mem;
    const char **pp = (const char **)(void *)(mem + n * sizeof(*inst));
    weft_discovery_kv_t *kp = (weft_discovery_kv_t *)(void *)(pp + ptrs);
    char *cp = (char *)(kp + kvs);
    for (size_t i = 0; i < n; i++) {
        const json_t *sv = json_object_get(ents[i], "Service");
        weft_discovery_instance_t *in = &inst[i];
        memset(in, 0, sizeof(*in));
        const char *addr = str_of(sv, "Address");
        if (!addr || !addr[0]) addr = str_of(json_object_get(ents[i], "Node"), "Address");
        const char *name = str_of(sv, "Service");
        in->id = put_str(&cp, entry_id(ents[i]));
        in->service = put_str(&cp, name ? name : s->name);
        in->address = put_str(&cp, addr ? addr : "");
        const json_t *port = json_object_get(sv, "Port");
        if (json_is_integer(port) && json_integer_value(port) > 0 &&
            json_integer_value(port) <= 65535)
            in->port = (uint16_t)json_integer_value(port);
        /* Consul's Weights.Passing (only passing instances are asked for) */
        const json_t *wp = json_object_get(json_object_get(sv, "Weights"), "Passing");
        in->weight = json_is_integer(wp) && json_integer_value(wp) >= 1 &&
                             json_integer_value(wp) <= (1 << 20)
                         ? (unsigned)json_integer_value(wp)
                         : 1;
        in->tags = pp;
        const json_t *tags = json_object_get(sv, "Tags"), *t;
        size_t k;
        json_array_foreach(tags, k, t) if (json_is_string(t))
        {
            *pp++ = put_str(&cp, json_string_value(t));
            in->ntags++;
        }
        in->meta = kp;
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)json_object_get(sv, "Meta"), key, v) if (json_is_string(v))
        {
            kp->key = put_str(&cp, key);
            kp->value = put_str(&cp, json_string_value(v));
            kp++;
            in->nmeta++;
        }
    }
    free(ents);
    json_decref(root);
    /* the balancer and the breakers follow (by ID); out of memory keeps the old set */
    if (weft__dpol_update(&s->pol, inst, n, uv_now(d->loop)) != 0) {
        free(mem);
        return WEFT_ENOMEM;
    }
    /* calls in flight carry over to the instance of the same ID (both sorted) */
    for (size_t i = 0, j = 0; i < n && j < s->n;) {
        int c = strcmp(inst[i].id, s->inst[j].id);
        if (c == 0)
            inst[i++].outstanding = s->inst[j++].outstanding;
        else if (c < 0)
            i++;
        else
            j++;
    }
    free(s->inst);
    s->inst = inst;
    s->n = n;
    return 0;
}

/* The next query after `failures` failures in a row: retry_min doubled, at most retry_max,
 * the upper half of it random. */
static uint64_t backoff_ms(weft_discovery_t *d, unsigned failures)
{
    uint64_t ms = d->o.retry_min_ms;
    for (unsigned i = 1; i < failures && ms < d->o.retry_max_ms; i++) ms *= 2;
    if (ms > d->o.retry_max_ms) ms = d->o.retry_max_ms;
    return ms / 2 + weft__disc_rand(d) % (ms / 2 + 1);
}

static void schedule(svc_t *s, uint64_t ms)
{
    s->wstate = W_BACKOFF;
    s->retry_ns = weft_now_ns() + ms * 1000000ull;
    weft__disc_tick_arm(s->d, s->retry_ns);
}

static void query_failed(svc_t *s, int err)
{
    weft_discovery_t *d = s->d;
    d->st.query_errors++;
    s->err = err;
    s->failures++;
    uint64_t ms = backoff_ms(d, s->failures);
    if (s->failures == 1)
        weft_warn("discovery", "cannot read the service's instances from the registry; retrying",
                  "service=%s registry=%s error=%s retry_ms=%" PRIu64 "%s", s->name, d->reg_url,
                  weft_err_name(err), ms, s->state == SVC_READY ? " using=last_known" : "");
    else
        weft_debug("discovery", "registry query failed again", "service=%s error=%s failures=%u",
                   s->name, weft_err_name(err), s->failures);
    schedule(s, ms);
    if (s->state == SVC_NEW) weft__disc_entry_answered(s); /* waiters fail with err */
}

static void on_done(weft_http_client_call_t *call, int err, void *arg)
{
    svc_t *s = arg;
    weft_discovery_t *d = s->d;
    s->hc = NULL;
    s->wstate = W_IDLE;
    if (s->dropping || d->closing) return;
    if (err == WEFT_ECANCELED && s->qoverflow) err = WEFT_ELIMIT;
    if (!err && s->qstatus != 200) err = weft__disc_status_err(s->qstatus);
    if (!err && !s->qhave_index) err = WEFT_EPARSE; /* not a Consul API: nothing to block on */
    if (!err) err = parse_instances(s);
    if (err) {
        weft_buf_free(&s->qbody);
        query_failed(s, err);
        return;
    }
    weft_buf_free(&s->qbody);
    uint64_t now = weft_now_ns(), old = s->index, idx = s->qindex;
    bool first = s->state == SVC_NEW;
    if (s->failures)
        weft_info("discovery", "the registry answers again", "service=%s failures=%u", s->name,
                  s->failures);
    s->failures = 0;
    s->err = 0;
    s->state = SVC_READY;
    if (first || idx != old) d->st.updates++;
    bool early = old && idx == old && now - s->sent_ns < d->o.wait_ms * 1000000ull / 2;
    s->index = idx < old ? 0 : idx; /* backwards: the registry was reset; start over */
    if (first) weft__disc_entry_answered(s);
    if (early || idx == 0)
        schedule(s, d->o.retry_min_ms);
    else
        weft__disc_watch_send(s);
}

void weft__disc_watch_send(svc_t *s)
{
    weft_discovery_t *d = s->d;
    if (d->closing || s->dropping) return;
    char target[WEFT_DISCOVERY_NAME_MAX + 128];
    uint64_t timeout = d->o.registry_timeout_ms;
    if (s->index) {
        snprintf(target, sizeof(target),
                 "/v1/health/service/%s?passing&index=%" PRIu64 "&wait=%" PRIu64 "ms", s->name,
                 s->index, d->o.wait_ms);
        timeout += d->o.wait_ms + d->o.wait_ms / 16;
    } else {
        snprintf(target, sizeof(target), "/v1/health/service/%s?passing", s->name);
    }
    weft_http_header_t tok = {WEFT_STR("X-Consul-Token"),
                              {d->token, d->token ? strlen(d->token) : 0}};
    weft_http_client_req_t r = {.method = "GET",
                                .host = d->reg_host,
                                .port = d->reg_port,
                                .target = target,
                                .headers = d->token ? &tok : NULL,
                                .nheaders = d->token ? 1 : 0,
                                .timeout_ms = timeout,
                                .head_timeout_ms = timeout};
    static const weft_http_client_cbs_t cbs = {on_head, on_body, on_done, NULL, NULL};
    s->qstatus = 0;
    s->qhave_index = s->qoverflow = false;
    s->qindex = 0;
    weft_buf_free(&s->qbody);
    s->sent_ns = weft_now_ns();
    d->st.queries++;
    int err = weft_http_client_request(d->http, &r, &cbs, s, &s->hc);
    if (err) {
        s->hc = NULL;
        query_failed(s, err);
        return;
    }
    s->wstate = W_QUERY;
}

void weft__disc_watch_stop(svc_t *s)
{
    s->dropping = true;
    if (s->hc) weft_http_client_cancel(s->hc); /* on_done runs now and lets go */
    s->hc = NULL;
    s->wstate = W_IDLE;
}

void weft__disc_entry_free(svc_t *s)
{
    s->d->gone_rejected += s->pol.rejected;
    weft__dpol_clear(&s->pol);
    weft_buf_free(&s->qbody);
    free(s->inst);
    free(s);
}
