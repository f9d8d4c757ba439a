/*
 * discovery_ops.c - requests to the registry itself: the seed book's ServiceRegistry
 * register and deregister, TTL heartbeats, "is this ID registered", and the catalog read
 * that starts a "*" broadcast (weft/discovery.h).
 *
 * Each is one K_OP call: one request to the registry's address with X-Consul-Token when the
 * client has a token, bounded by registry_timeout_ms, never retried here (a caller that
 * must get through, such as weft_service's registration, retries with its own backoff).
 * The answer's status becomes the error (weft__disc_status_err), so that a caller tells
 * "unknown ID" (404) from "bad field" (400) from "no token" (403) without reading the body.
 *
 * Registration bodies are Consul's service definition, written with core/json_write (every
 * string escaped); durations go out as whole milliseconds ("10000ms"), which Consul's Go
 * parser and weft's both read.
 *
 * Threads: the client's loop thread.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/json_write.h"
#include "service/discovery_int.h"

int weft__disc_status_err(int status)
{
    if (status >= 200 && status <= 299) return 0;
    switch (status) {
    case 400:
        return WEFT_EINVAL;
    case 403:
        return -EACCES;
    case 404:
        return WEFT_ENOENT;
    case 429:
        return WEFT_ELIMIT;
    default:
        return -EPROTO;
    }
}

static void op_head(weft_http_client_call_t *hc, int status, const weft_http_header_t *h, size_t n,
                    void *arg)
{
    ((call_t *)arg)->status = status;
}

static void op_body(weft_http_client_call_t *hc, const char *data, size_t len, void *arg)
{
    call_t *c = arg;
    weft_buf_put(&c->body, data, len);
    if (c->body.failed) {
        c->overflow = true;
        weft_http_client_cancel(hc);
    }
}

static void op_done(weft_http_client_call_t *hc, int err, void *arg)
{
    call_t *c = arg;
    c->hc = NULL;
    if (c->stopping) return;
    WEFT_ASSERT(c->state == C_SENDING);
    if (err == WEFT_ECANCELED && c->overflow) err = WEFT_ELIMIT;
    weft__disc_finish(c, err ? err : weft__disc_status_err(c->status));
}

int weft__disc_op_send(call_t *c)
{
    weft_discovery_t *d = c->d;
    const rq_t *q = c->rq;
    weft_http_client_req_t r = {.method = q->method,
                                .host = d->reg_host,
                                .port = d->reg_port,
                                .target = q->target,
                                .headers = q->hdrs,
                                .nheaders = q->nhdrs,
                                .body = q->body_len ? q->body : NULL,
                                .body_len = q->body_len,
                                .timeout_ms = weft__disc_timeout_ms(d, c->deadline_ns)};
    static const weft_http_client_cbs_t cbs = {op_head, op_body, op_done, NULL, NULL};
    c->state = C_SENDING;
    c->attempts = 1;
    d->st.operations++;
    int err = weft_http_client_request(d->http, &r, &cbs, c, &c->hc);
    if (err) {
        c->hc = NULL;
        c->state = C_NEW;
    }
    return err;
}

/* Makes an operation: method and target to the registry, with an optional JSON body. */
static call_t *op_new(weft_discovery_t *d, call_t *parent, const char *method, const char *target,
                      const char *json, size_t json_len, int *err)
{
    if (d->closing) {
        *err = WEFT_ECLOSED;
        return NULL;
    }
    if (d->active >= d->o.max_calls) {
        *err = WEFT_ELIMIT;
        return NULL;
    }
    call_t *c = weft__disc_call_new(d, K_OP, parent);
    if (!c) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    weft_http_header_t extra[2];
    size_t nextra = 0;
    if (d->token)
        extra[nextra++] =
            (weft_http_header_t){WEFT_STR("X-Consul-Token"), {d->token, strlen(d->token)}};
    if (json)
        extra[nextra++] =
            (weft_http_header_t){WEFT_STR("Content-Type"), WEFT_STR("application/json")};
    weft_discovery_req_t r = {.method = method,
                              .target = target,
                              .body = json,
                              .body_len = json_len,
                              .timeout_ms = d->o.registry_timeout_ms};
    if ((*err = weft__disc_rq_copy(c, &r, "", extra, nextra)) != 0) {
        weft__disc_call_free(c); /* linked nowhere yet */
        return NULL;
    }
    if (parent && parent->deadline_ns < c->deadline_ns) c->deadline_ns = parent->deadline_ns;
    return c;
}

/* Starts a top-level operation; on failure nothing is left of it. */
static int op_start(weft_discovery_t *d, const char *method, const char *target, const char *json,
                    size_t json_len, weft_discovery_call_fn cb, void *arg,
                    weft_discovery_call_t **out)
{
    if (!cb) return WEFT_EINVAL;
    int err;
    call_t *c = op_new(d, NULL, method, target, json, json_len, &err);
    if (!c) return err;
    c->cb.call = cb;
    c->arg = arg;
    if ((err = weft__disc_op_send(c)) != 0) {
        weft__disc_call_free(c);
        return err;
    }
    dl_push(&d->calls, &c->link);
    if (out) *out = c;
    return 0;
}

call_t *weft__disc_catalog_read(call_t *parent, int *err)
{
    call_t *c = op_new(parent->d, parent, "GET", "/v1/catalog/services", NULL, 0, err);
    if (!c) return NULL;
    if ((*err = weft__disc_op_send(c)) != 0) {
        weft__disc_call_free(c);
        return NULL;
    }
    return c;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int weft__disc_catalog_names(call_t *op, char ***names, size_t *n)
{
    json_error_t je;
    json_t *root = json_loadb(op->body.p ? op->body.p : "", op->body.len, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return WEFT_EPARSE;
    }
    size_t cap = json_object_size(root), k = 0;
    if (cap > op->d->o.max_services) cap = op->d->o.max_services;
    char **v = calloc(cap ? cap : 1, sizeof(*v));
    if (!v) {
        json_decref(root);
        return WEFT_ENOMEM;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (k == cap) break;
        if (!(v[k] = strdup(key))) {
            for (size_t i = 0; i < k; i++) free(v[i]);
            free(v);
            json_decref(root);
            return WEFT_ENOMEM;
        }
        k++;
    }
    json_decref(root);
    qsort(v, k, sizeof(*v), by_name);
    *names = v;
    *n = k;
    return 0;
}

/* ---- the agent API ---- */

static void put_ms(weft_buf_t *b, const char *key, uint64_t ms)
{
    char v[32];
    snprintf(v, sizeof(v), "%" PRIu64 "ms", ms);
    weft_buf_putc(b, ',');
    weft_json_put_key(b, key);
    weft_json_put_str(b, v, strlen(v));
}

static void put_s(weft_buf_t *b, const char *key, const char *v)
{
    weft_json_put_key(b, key);
    weft_json_put_str(b, v, strlen(v));
}

static bool status_ok(const char *s)
{
    return s &&
           (strcmp(s, "passing") == 0 || strcmp(s, "warning") == 0 || strcmp(s, "critical") == 0);
}

int weft_discovery_register(weft_discovery_t *d, const weft_discovery_registration_t *r,
                            weft_discovery_call_fn cb, void *arg, weft_discovery_call_t **out)
{
    if (!d || !r || !weft__disc_name_ok(r->id, WEFT_DISCOVERY_ID_MAX, true) ||
        !weft__disc_name_ok(r->name, WEFT_DISCOVERY_NAME_MAX, false) || r->ntags > DISC_MAX_TAGS ||
        r->nmeta > DISC_MAX_META || (r->ntags && !r->tags) || (r->nmeta && !r->meta) ||
        (r->check_status && !status_ok(r->check_status)) ||
        (unsigned)r->check > WEFT_DISCOVERY_CHECK_TTL)
        return WEFT_EINVAL;
    if (r->check == WEFT_DISCOVERY_CHECK_HTTP && (!r->check_http || !r->check_http[0]))
        return WEFT_EINVAL;
    if (r->check == WEFT_DISCOVERY_CHECK_TTL && r->check_ttl_ms == 0) return WEFT_EINVAL;
    for (size_t i = 0; i < r->ntags; i++)
        if (!r->tags[i]) return WEFT_EINVAL;
    for (size_t i = 0; i < r->nmeta; i++)
        if (!r->meta[i].key || !r->meta[i].key[0] || !r->meta[i].value) return WEFT_EINVAL;
    weft_buf_t b;
    weft_buf_init(&b, 1u << 20);
    weft_buf_putc(&b, '{');
    put_s(&b, "ID", r->id);
    weft_buf_putc(&b, ',');
    put_s(&b, "Name", r->name);
    if (r->address && r->address[0]) {
        weft_buf_putc(&b, ',');
        put_s(&b, "Address", r->address);
    }
    weft_buf_puts(&b, ",\"Port\":");
    weft_buf_put_u64(&b, r->port);
    weft_buf_puts(&b, ",\"Tags\":[");
    for (size_t i = 0; i < r->ntags; i++) {
        if (i) weft_buf_putc(&b, ',');
        weft_json_put_str(&b, r->tags[i], strlen(r->tags[i]));
    }
    weft_buf_puts(&b, "],\"Meta\":{");
    for (size_t i = 0; i < r->nmeta; i++) {
        if (i) weft_buf_putc(&b, ',');
        weft_json_put_str(&b, r->meta[i].key, strlen(r->meta[i].key));
        weft_buf_putc(&b, ':');
        weft_json_put_str(&b, r->meta[i].value, strlen(r->meta[i].value));
    }
    weft_buf_putc(&b, '}');
    if (r->check != WEFT_DISCOVERY_CHECK_NONE) {
        weft_buf_puts(&b, ",\"Check\":{");
        if (r->check == WEFT_DISCOVERY_CHECK_HTTP) {
            put_s(&b, "HTTP", r->check_http);
            put_ms(&b, "Interval", r->check_interval_ms ? r->check_interval_ms : 10000);
            if (r->check_timeout_ms) put_ms(&b, "Timeout", r->check_timeout_ms);
        } else {
            weft_json_put_key(&b, "TTL");
            char v[32];
            snprintf(v, sizeof(v), "%" PRIu64 "ms", r->check_ttl_ms);
            weft_json_put_str(&b, v, strlen(v));
        }
        if (r->deregister_after_ms)
            put_ms(&b, "DeregisterCriticalServiceAfter", r->deregister_after_ms);
        if (r->check_status) {
            weft_buf_putc(&b, ',');
            put_s(&b, "Status", r->check_status);
        }
        weft_buf_putc(&b, '}');
    }
    weft_buf_putc(&b, '}');
    if (b.failed) {
        weft_buf_free(&b);
        return WEFT_ENOMEM;
    }
    int err = op_start(d, "PUT", "/v1/agent/service/register", b.p, b.len, cb, arg, out);
    weft_buf_free(&b);
    return err;
}

static int by_id(weft_discovery_t *d, const char *method, const char *prefix, const char *id,
                 weft_discovery_call_fn cb, void *arg, weft_discovery_call_t **out)
{
    if (!d || !weft__disc_name_ok(id, WEFT_DISCOVERY_ID_MAX + 16, true)) return WEFT_EINVAL;
    char target[WEFT_DISCOVERY_ID_MAX + 64];
    snprintf(target, sizeof(target), "%s%s", prefix, id);
    return op_start(d, method, target, NULL, 0, cb, arg, out);
}

int weft_discovery_deregister(weft_discovery_t *d, const char *id, weft_discovery_call_fn cb,
                              void *arg, weft_discovery_call_t **out)
{
    return by_id(d, "PUT", "/v1/agent/service/deregister/", id, cb, arg, out);
}

int weft_discovery_registered(weft_discovery_t *d, const char *id, weft_discovery_call_fn cb,
                              void *arg, weft_discovery_call_t **out)
{
    return by_id(d, "GET", "/v1/agent/service/", id, cb, arg, out);
}

int weft_discovery_check_update(weft_discovery_t *d, const char *check_id, const char *status,
                                const char *output, weft_discovery_call_fn cb, void *arg,
                                weft_discovery_call_t **out)
{
    if (!d || !status_ok(status) || !weft__disc_name_ok(check_id, WEFT_DISCOVERY_ID_MAX + 16, true))
        return WEFT_EINVAL;
    weft_buf_t b;
    weft_buf_init(&b, 1u << 20);
    weft_buf_putc(&b, '{');
    put_s(&b, "Status", status);
    weft_buf_putc(&b, ',');
    put_s(&b, "Output", output ? output : "");
    weft_buf_putc(&b, '}');
    if (b.failed) {
        weft_buf_free(&b);
        return WEFT_ENOMEM;
    }
    char target[WEFT_DISCOVERY_ID_MAX + 64];
    snprintf(target, sizeof(target), "/v1/agent/check/update/%s", check_id);
    int err = op_start(d, "PUT", target, b.p, b.len, cb, arg, out);
    weft_buf_free(&b);
    return err;
}
