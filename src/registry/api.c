/*
 * api.c - the registry's Consul-compatible HTTP API, on the API server's worker loops.
 *
 * Reads are answered on the worker that received them, from the catalog snapshot
 * (catalog.h), inside one read section: no lock, no call to another thread. The answers
 * discovery clients ask for most (/v1/health/service/NAME with and without ?passing,
 * /v1/catalog/service/NAME) are serialized once per change of their service and shared.
 *
 * Blocking queries (Consul's ?index=N&wait=D): when the index that the query depends on is
 * still N (a service's own index for the per-service endpoints, so that unrelated changes
 * do not wake it; the services index for /v1/catalog/services; the global index for the
 * rest), the request is parked on its worker's list, its read buffer given back
 * (weft_http_request_park), with a deadline D plus up to D/16 of jitter (Consul's, so that
 * watchers spread out) away, capped at registry.max_wait, in the worker's queue of
 * deadlines (waitq.c: one timer for them all). Every
 * publication of the catalog posts a notification to every worker (weft__reg_worker_notify),
 * which answers each parked query whose index moved; the deadline answers with the same index;
 * a client that goes away, or the shutdown, answers at once. X-Consul-Index is on every
 * read.
 *
 * Writes are decoded and validated on the worker (400 with the field named, nothing sent
 * anywhere), checked against the ACL token (403), then handed to the control loop
 * (weft_host_call). The catalog answers once the change is durable; the answer comes back
 * to the worker (weft_host_post) and is sent from there. The request stays held meanwhile.
 *
 * The event stream (GET /v1/weft/events) is Server-Sent Events: the catalog's changes as
 * they are published, with a comment every 15 s so proxies keep it open. A client that
 * falls 256 KiB behind is cut off (it reconnects with Last-Event-ID, and the gap shows).
 *
 * Threads: every handler runs on a worker loop; op_apply on the control loop.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "core/qs.h"
#include "registry/acl.h"
#include "registry/cklog.h"
#include "registry/reg_int.h"
#include "weft/log.h"
#include "weft/weft.h"

#define DEF_WAIT_MS    (5 * 60 * 1000)
#define SSE_PING_MS    15000
#define SSE_MAX_BEHIND (256 * 1024)
#define MAX_TAGS_Q     16

/* ---- answers ---- */

static void respond_error(weft_http_request_t *req, int status, const char *msg)
{
    weft_buf_t b;
    weft_buf_init(&b, 4096);
    weft_buf_puts(&b, "{\"error\":");
    weft_json_put_str(&b, msg, strlen(msg));
    /* "Field: what" names the field, as the decoders write their messages. */
    const char *colon = strstr(msg, ": ");
    if (colon && colon - msg < 100 && !memchr(msg, ' ', (size_t)(colon - msg))) {
        weft_buf_puts(&b, ",\"field\":");
        weft_json_put_str(&b, msg, (size_t)(colon - msg));
    }
    weft_buf_puts(&b, "}\n");
    weft_http_respond(req, status, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2);
    weft_buf_free(&b);
}

static void index_headers(weft_http_request_t *req, uint64_t index)
{
    char v[24];
    snprintf(v, sizeof(v), "%" PRIu64, index ? index : 1);
    weft_http_response_header(req, "X-Consul-Index", v);
    weft_http_response_header(req, "X-Consul-KnownLeader", "true");
    weft_http_response_header(req, "X-Consul-LastContact", "0");
}

/* ---- reads ---- */

enum {
    K_AGENT_SERVICES,
    K_AGENT_SERVICE,
    K_AGENT_CHECKS,
    K_AGENT_SELF,
    K_AGENT_MEMBERS,
    K_CAT_SERVICES,
    K_CAT_SERVICE,
    K_CAT_NODES,
    K_CAT_NODE,
    K_CAT_DCS,
    K_HEALTH_SERVICE,
    K_HEALTH_CHECKS,
    K_HEALTH_STATE,
    K_HEALTH_NODE,
    K_STATUS_LEADER,
    K_STATUS_PEERS,
    K_PROM_SD,
    K_COUNT
};

typedef struct route_s {
    const char *method, *pattern;
    int kind;
} route_t;

static const route_t reads[] = {
    {"GET", "/v1/agent/services", K_AGENT_SERVICES},
    {"GET", "/v1/agent/service/:id", K_AGENT_SERVICE},
    {"GET", "/v1/agent/checks", K_AGENT_CHECKS},
    {"GET", "/v1/agent/self", K_AGENT_SELF},
    {"GET", "/v1/agent/members", K_AGENT_MEMBERS},
    {"GET", "/v1/catalog/services", K_CAT_SERVICES},
    {"GET", "/v1/catalog/service/:name", K_CAT_SERVICE},
    {"GET", "/v1/catalog/nodes", K_CAT_NODES},
    {"GET", "/v1/catalog/node/:node", K_CAT_NODE},
    {"GET", "/v1/catalog/datacenters", K_CAT_DCS},
    {"GET", "/v1/health/service/:name", K_HEALTH_SERVICE},
    {"GET", "/v1/health/checks/:name", K_HEALTH_CHECKS},
    {"GET", "/v1/health/state/:state", K_HEALTH_STATE},
    {"GET", "/v1/health/node/:node", K_HEALTH_NODE},
    {"GET", "/v1/status/leader", K_STATUS_LEADER},
    {"GET", "/v1/status/peers", K_STATUS_PEERS},
    {"GET", "/v1/weft/prometheus-sd", K_PROM_SD},
};

typedef struct read_arg_s {
    weft_registry_t *r;
    int kind;
} read_arg_t;

/* The index a read of kind k depends on. */
static uint64_t rel_index(const reg_snap_t *s, int kind, weft_str_t name)
{
    switch (kind) {
    case K_CAT_SERVICE:
    case K_HEALTH_SERVICE:
    case K_HEALTH_CHECKS: {
        reg_svc_t *v = weft__snap_service(s, name.base, name.len);
        return v ? v->index : s->services_index;
    }
    case K_CAT_SERVICES:
        return s->services_index;
    case K_PROM_SD:
        return s->index;
    case K_CAT_DCS:
    case K_STATUS_LEADER:
    case K_STATUS_PEERS:
    case K_AGENT_SELF:
    case K_AGENT_MEMBERS:
        return 1;
    default:
        return s->index;
    }
}

static weft_str_t name_param(weft_http_request_t *req, int kind)
{
    switch (kind) {
    case K_AGENT_SERVICE:
        return weft_http_request_param(req, "id");
    case K_CAT_SERVICE:
    case K_HEALTH_SERVICE:
    case K_HEALTH_CHECKS:
        return weft_http_request_param(req, "name");
    case K_HEALTH_STATE:
        return weft_http_request_param(req, "state");
    case K_CAT_NODE:
    case K_HEALTH_NODE:
        return weft_http_request_param(req, "node");
    default:
        return (weft_str_t){"", 0};
    }
}

static bool tags_match(const reg_inst_t *in, char (*tags)[REG_MAX_ID + 1], int ntags)
{
    for (int i = 0; i < ntags; i++)
        if (!weft__inst_has_tag(in, tags[i], strlen(tags[i]))) return false;
    return true;
}

static void put_leader(weft_buf_t *b, weft_registry_t *r)
{
    char out[128];
    bool v6 = strchr(r->api_host, ':') != NULL;
    snprintf(out, sizeof(out), "%s%s%s:%u", v6 ? "[" : "", r->api_host, v6 ? "]" : "",
             weft_service_port(r->svc));
    weft_json_put_str(b, out, strlen(out));
}

static void put_self(weft_buf_t *b, weft_registry_t *r)
{
    const reg_node_t *n = &r->node;
    weft_buf_puts(b, "{\"Config\":{\"Datacenter\":");
    weft_json_put_str(b, n->datacenter, strlen(n->datacenter));
    weft_buf_puts(b, ",\"PrimaryDatacenter\":");
    weft_json_put_str(b, n->datacenter, strlen(n->datacenter));
    weft_buf_puts(b, ",\"NodeName\":");
    weft_json_put_str(b, n->name, strlen(n->name));
    weft_buf_puts(b, ",\"NodeID\":");
    weft_json_put_str(b, n->id, strlen(n->id));
    /* Clients choose features by the Consul version they see: weft speaks the HTTP API of
     * Consul 1.15 (the subset in docs/registry.md); its own version is in Weft. */
    weft_buf_puts(b, ",\"Server\":true,\"Version\":\"1.15.0\",\"Revision\":\"weft\",\"Weft\":\"");
    weft_buf_puts(b, WEFT_VERSION);
    weft_buf_puts(b, "\"},\"Member\":{\"Name\":");
    weft_json_put_str(b, n->name, strlen(n->name));
    weft_buf_puts(b, ",\"Addr\":");
    weft_json_put_str(b, n->address, strlen(n->address));
    weft_buf_puts(b, ",\"Port\":8301,\"Tags\":{\"dc\":");
    weft_json_put_str(b, n->datacenter, strlen(n->datacenter));
    weft_buf_puts(b, ",\"role\":\"consul\"},\"Status\":1}");
    weft_buf_puts(b, ",\"Meta\":{},\"Stats\":{}}");
}

/* One check of a list (want: its status, -1 any; obj: "ID": check, as /v1/agent/checks). */
static void put_check_item(weft_buf_t *b, const reg_snap_t *s, const reg_check_t *k,
                           const reg_inst_t *in, int want, bool obj, bool *first)
{
    if (want >= 0 && (int)k->status != want) return;
    if (!*first) weft_buf_putc(b, ',');
    *first = false;
    if (obj) {
        weft_json_put_str(b, k->id, strlen(k->id));
        weft_buf_putc(b, ':');
    }
    weft__put_check(b, s->node, k, in);
}

/* Every instance as "ID": {agent service}, (/v1/agent/services, /v1/catalog/node/:node). */
static void put_services_by_id(weft_buf_t *b, const reg_snap_t *s)
{
    bool first = true;
    for (uint32_t j = 0; j < s->nsvc; j++)
        for (uint32_t i = 0; i < s->svc[j]->n; i++) {
            const reg_inst_t *in = s->svc[j]->inst[i];
            if (!first) weft_buf_putc(b, ',');
            first = false;
            weft_json_put_str(b, in->id, strlen(in->id));
            weft_buf_putc(b, ':');
            weft__put_agent_service(b, s->node, in);
        }
}

/* Builds the answer of a read into b (or points *shared at a cached body). Returns the HTTP
 * status; an error's message goes to err. */
static int build_read(weft_registry_t *r, const reg_snap_t *s, int kind, weft_str_t name,
                      const weft_qs_t *q, weft_buf_t *b, const reg_body_t **shared, char *err,
                      size_t errlen)
{
    char tags[MAX_TAGS_Q][REG_MAX_ID + 1];
    int ntags = 0;
    for (int i = 0; i < q->n; i++) {
        if (!(q->k[i].len == 3 && memcmp(q->k[i].base, "tag", 3) == 0)) continue;
        if (ntags == MAX_TAGS_Q) {
            snprintf(err, errlen, "tag: at most %d tags", MAX_TAGS_Q);
            return 400;
        }
        if (weft_qs_decode(q->v[i], tags[ntags], sizeof(tags[0])) < 0) {
            snprintf(err, errlen, "tag: bad escape or too long");
            return 400;
        }
        ntags++;
    }
    bool passing = weft_qs_flag(q, "passing");
    switch (kind) {
    case K_HEALTH_SERVICE:
    case K_CAT_SERVICE: {
        reg_svc_t *v = weft__snap_service(s, name.base, name.len);
        if (!v) {
            weft_buf_puts(b, "[]");
            return 200;
        }
        if (ntags == 0 && (kind == K_HEALTH_SERVICE || !passing)) {
            *shared = weft__svc_body(s, v,
                                     kind == K_CAT_SERVICE ? REG_BODY_CATALOG
                                     : passing             ? REG_BODY_PASSING
                                                           : REG_BODY_HEALTH);
            if (!*shared) {
                snprintf(err, errlen, "out of memory");
                return 500;
            }
            return 200;
        }
        weft_buf_putc(b, '[');
        bool first = true;
        for (uint32_t i = 0; i < v->n; i++) {
            const reg_inst_t *in = v->inst[i];
            if (passing && in->health != WEFT_HEALTH_PASSING) continue;
            if (!tags_match(in, tags, ntags)) continue;
            if (!first) weft_buf_putc(b, ',');
            first = false;
            if (kind == K_CAT_SERVICE)
                weft__put_catalog_service(b, s->node, in);
            else
                weft__put_health_entry(b, s->node, in, s->node_checks, s->nnode_checks);
        }
        weft_buf_putc(b, ']');
        return 200;
    }
    case K_HEALTH_CHECKS: {
        reg_svc_t *v = weft__snap_service(s, name.base, name.len);
        weft_buf_putc(b, '[');
        bool first = true;
        for (uint32_t i = 0; v && i < v->n; i++)
            for (uint32_t k = 0; k < v->inst[i]->nchecks; k++) {
                if (!first) weft_buf_putc(b, ',');
                first = false;
                weft__put_check(b, s->node, v->inst[i]->checks[k], v->inst[i]);
            }
        weft_buf_putc(b, ']');
        return 200;
    }
    case K_HEALTH_STATE:
    case K_HEALTH_NODE:
    case K_AGENT_CHECKS: {
        int want = -1; /* -1: any */
        if (kind == K_HEALTH_STATE && !(name.len == 3 && memcmp(name.base, "any", 3) == 0)) {
            weft_health_t h;
            if (weft__health_parse(name.base, name.len, &h) != 0) {
                snprintf(err, errlen, "state: must be any, passing, warning or critical");
                return 400;
            }
            want = (int)h;
        }
        if (kind == K_HEALTH_NODE && !(name.len == strlen(s->node->name) &&
                                       memcmp(name.base, s->node->name, name.len) == 0)) {
            weft_buf_puts(b, "[]");
            return 200;
        }
        bool obj = kind == K_AGENT_CHECKS;
        weft_buf_putc(b, obj ? '{' : '[');
        bool first = true;
        for (uint32_t i = 0; i < s->nnode_checks; i++)
            put_check_item(b, s, s->node_checks[i], NULL, want, obj, &first);
        for (uint32_t j = 0; j < s->nsvc; j++)
            for (uint32_t i = 0; i < s->svc[j]->n; i++) {
                const reg_inst_t *in = s->svc[j]->inst[i];
                for (uint32_t c = 0; c < in->nchecks; c++)
                    put_check_item(b, s, in->checks[c], in, want, obj, &first);
            }
        weft_buf_putc(b, obj ? '}' : ']');
        return 200;
    }
    case K_AGENT_SERVICES:
        weft_buf_putc(b, '{');
        put_services_by_id(b, s);
        weft_buf_putc(b, '}');
        return 200;
    case K_AGENT_SERVICE: {
        reg_inst_t *in = weft__snap_instance(s, name.base, name.len, NULL);
        if (!in) {
            snprintf(err, errlen, "id: unknown service ID \"%.*s\"",
                     (int)(name.len > 200 ? 200 : name.len), name.base);
            return 404;
        }
        weft__put_agent_service(b, s->node, in);
        return 200;
    }
    case K_CAT_SERVICES: {
        weft_buf_putc(b, '{');
        for (uint32_t j = 0; j < s->nsvc; j++) {
            const reg_svc_t *v = s->svc[j];
            if (j) weft_buf_putc(b, ',');
            weft_json_put_str(b, v->name, strlen(v->name));
            weft_buf_puts(b, ":[");
            /* The union of the instances' tags, each once, in first-seen order. */
            bool first = true;
            for (uint32_t i = 0; i < v->n; i++)
                for (uint32_t t = 0; t < v->inst[i]->ntags; t++) {
                    const char *tag = v->inst[i]->tags[t];
                    bool seen = false;
                    for (uint32_t pi = 0; pi <= i && !seen; pi++)
                        for (uint32_t pt = 0; pt < v->inst[pi]->ntags; pt++) {
                            if (pi == i && pt == t) break;
                            if (strcmp(v->inst[pi]->tags[pt], tag) == 0) {
                                seen = true;
                                break;
                            }
                        }
                    if (seen) continue;
                    if (!first) weft_buf_putc(b, ',');
                    first = false;
                    weft_json_put_str(b, tag, strlen(tag));
                }
            weft_buf_putc(b, ']');
        }
        weft_buf_putc(b, '}');
        return 200;
    }
    case K_CAT_NODES:
        weft_buf_putc(b, '[');
        weft__put_node(b, s->node, 1, 1);
        weft_buf_putc(b, ']');
        return 200;
    case K_CAT_NODE: {
        if (!(name.len == strlen(s->node->name) &&
              memcmp(name.base, s->node->name, name.len) == 0)) {
            weft_buf_puts(b, "null");
            return 404;
        }
        weft_buf_puts(b, "{\"Node\":");
        weft__put_node(b, s->node, 1, 1);
        weft_buf_puts(b, ",\"Services\":{");
        put_services_by_id(b, s);
        weft_buf_puts(b, "}}");
        return 200;
    }
    case K_CAT_DCS:
        weft_buf_putc(b, '[');
        weft_json_put_str(b, s->node->datacenter, strlen(s->node->datacenter));
        weft_buf_putc(b, ']');
        return 200;
    case K_AGENT_SELF:
        put_self(b, r);
        return 200;
    case K_AGENT_MEMBERS:
        weft_buf_puts(b, "[{\"Name\":");
        weft_json_put_str(b, s->node->name, strlen(s->node->name));
        weft_buf_puts(b, ",\"Addr\":");
        weft_json_put_str(b, s->node->address, strlen(s->node->address));
        weft_buf_puts(b, ",\"Port\":8301,\"Tags\":{\"dc\":");
        weft_json_put_str(b, s->node->datacenter, strlen(s->node->datacenter));
        weft_buf_puts(b, ",\"role\":\"consul\"},\"Status\":1}]");
        return 200;
    case K_PROM_SD: {
        /* Prometheus's HTTP service discovery (http_sd_configs): one target group per
         * passing instance (every instance with ?passing=false), labelled as consul_sd
         * would label it, under __meta_weft_ as well as __meta_consul_. */
        weft_str_t only = {NULL, 0};
        char svc_name[REG_MAX_ID + 1] = "";
        if (weft_qs_get(q, "service", &only) &&
            weft_qs_decode(only, svc_name, sizeof(svc_name)) < 0) {
            snprintf(err, errlen, "service: bad escape or too long");
            return 400;
        }
        weft_str_t pv;
        bool all =
            weft_qs_get(q, "passing", &pv) && pv.len == 5 && memcmp(pv.base, "false", 5) == 0;
        weft_buf_putc(b, '[');
        bool first = true;
        for (uint32_t j = 0; j < s->nsvc; j++) {
            const reg_svc_t *v = s->svc[j];
            if (svc_name[0] && strcmp(v->name, svc_name) != 0) continue;
            for (uint32_t i = 0; i < v->n; i++) {
                const reg_inst_t *in = v->inst[i];
                if (!all && in->health != WEFT_HEALTH_PASSING) continue;
                if (!tags_match(in, tags, ntags) || !in->port) continue;
                const char *addr = *in->address ? in->address : s->node->address;
                char target[REG_MAX_ID + 16];
                bool v6 = strchr(addr, ':') != NULL;
                snprintf(target, sizeof(target), "%s%s%s:%u", v6 ? "[" : "", addr, v6 ? "]" : "",
                         in->port);
                if (!first) weft_buf_putc(b, ',');
                first = false;
                weft_buf_puts(b, "{\"targets\":[");
                weft_json_put_str(b, target, strlen(target));
                weft_buf_puts(b, "],\"labels\":{");
                static const char *const pre[] = {"__meta_weft_", "__meta_consul_"};
                for (int p = 0; p < 2; p++) {
                    char k[256];
                    if (p) weft_buf_putc(b, ',');
#define LBL(name, val)                                                                             \
    do {                                                                                           \
        snprintf(k, sizeof(k), "%s%s", pre[p], name);                                              \
        weft_json_put_str(b, k, strlen(k));                                                        \
        weft_buf_putc(b, ':');                                                                     \
        weft_json_put_str(b, val, strlen(val));                                                    \
    } while (0)
                    char port[8];
                    snprintf(port, sizeof(port), "%u", in->port);
                    /* health as Go's HealthChecks.AggregatedStatus: maintenance first */
                    weft_health_t hl = in->health;
                    for (uint32_t c = 0; c < in->nchecks; c++)
                        if (in->checks[c]->type == REG_CHECK_MAINT) hl = WEFT_HEALTH_MAINT;
                    /* consul_sd's labels (Prometheus's discovery/consul): service_address is
                     * the service's own, empty when it has none; address and the tagged
                     * addresses are the node's */
                    const char *const lv[][2] = {
                        {"service", in->name},
                        {"service_id", in->id},
                        {"service_address", in->address},
                        {"service_port", port},
                        {"address", s->node->address},
                        {"tagged_address_lan", s->node->address},
                        {"tagged_address_wan", s->node->address},
                        {"node", s->node->name},
                        {"dc", s->node->datacenter},
                        {"health", weft__health_name(hl)},
                    };
                    for (size_t l = 0; l < sizeof(lv) / sizeof(lv[0]); l++) {
                        LBL(lv[l][0], lv[l][1]);
                        weft_buf_putc(b, ',');
                    }
                    /* tags as consul_sd joins them: ",a,b," */
                    weft_buf_t tj;
                    weft_buf_init(&tj, 0);
                    weft_buf_putc(&tj, ',');
                    for (uint32_t t = 0; t < in->ntags; t++) {
                        weft_buf_puts(&tj, in->tags[t]);
                        weft_buf_putc(&tj, ',');
                    }
                    LBL("tags", tj.p && !tj.failed ? tj.p : ",");
                    weft_buf_free(&tj);
                    for (uint32_t m = 0; m < in->nmeta; m++) {
                        char mk[200];
                        snprintf(mk, sizeof(mk), "service_metadata_%s", in->meta[m].k);
                        for (char *c = mk; *c; c++)
                            if (!isalnum((unsigned char)*c) && *c != '_') *c = '_';
                        weft_buf_putc(b, ',');
                        LBL(mk, in->meta[m].v);
                    }
#undef LBL
                }
                weft_buf_puts(b, "}}");
            }
        }
        weft_buf_putc(b, ']');
        return 200;
    }
    case K_STATUS_LEADER:
        put_leader(b, r);
        return 200;
    case K_STATUS_PEERS:
        weft_buf_putc(b, '[');
        put_leader(b, r);
        weft_buf_putc(b, ']');
        return 200;
    }
    snprintf(err, errlen, "unknown endpoint");
    return 404;
}

static void held_unlink(reg_held_t *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = h;
}

static void held_event(weft_http_request_t *req, weft_http_event_t ev);
static void held_abort(weft_http_request_t *req);
static void on_waitq_timer(uv_timer_t *t);

/* The worker's timer is set for the earliest deadline of its blocking queries (waitq.c). A
 * query answered before its deadline leaves the queue and the timer as it is: when that
 * fires early, it answers nothing and is set again. */
static void arm(reg_worker_t *w, uv_loop_t *loop)
{
    const reg_held_t *h = weft__waitq_first(&w->waitq);
    if (!h) {
        uv_timer_stop(&w->timer);
        return;
    }
    uint64_t now = uv_now(loop);
    uv_timer_start(&w->timer, on_waitq_timer, h->deadline > now ? h->deadline - now : 0, 0);
}

/* Answers (or parks) a read. may_block: false when waking a parked query. */
static void answer_read(weft_registry_t *r, weft_http_request_t *req, int kind, bool may_block)
{
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    weft_str_t v;
    if (weft_qs_get(&q, "dc", &v) && v.len &&
        !(v.len == strlen(r->node.datacenter) && memcmp(v.base, r->node.datacenter, v.len) == 0)) {
        /* Consul's answer for a datacenter it has no path to. */
        respond_error(req, 500, "dc: no path to datacenter");
        return;
    }
    if (weft_qs_get(&q, "filter", &v) && v.len) {
        respond_error(req, 400, "filter: filter expressions are not supported by weft");
        return;
    }
    uint64_t want = 0, wait = DEF_WAIT_MS;
    if (weft_qs_get(&q, "index", &v) && v.len) {
        char buf[32];
        char *end;
        if (v.len >= sizeof(buf) || weft_qs_decode(v, buf, sizeof(buf)) < 0 ||
            (want = strtoull(buf, &end, 10), *end != 0 || buf[0] == '-')) {
            respond_error(req, 400, "index: must be a non-negative integer");
            return;
        }
    }
    if (weft_qs_get(&q, "wait", &v) && v.len) {
        char buf[64];
        if (weft_qs_decode(v, buf, sizeof(buf)) < 0 ||
            weft__duration_parse(buf, strlen(buf), &wait) != 0) {
            respond_error(req, 400, "wait: not a duration (like \"30s\", \"5m\")");
            return;
        }
    }
    if (wait > r->conf.max_wait) wait = r->conf.max_wait;
    weft_str_t name = name_param(req, kind);
    weft_snap_read_lock();
    const reg_snap_t *s = weft_snap_get(&r->cell);
    if (!s) {
        weft_snap_read_unlock();
        respond_error(req, 503, "the registry is starting");
        return;
    }
    uint64_t rel = rel_index(s, kind, name);
    if (may_block && want > 0 && rel <= want && wait > 0) {
        weft_snap_read_unlock();
        reg_worker_t *w = weft_host_state(req->loop, r->part);
        /* malloc'd, not from the request's arena: its first block is 4 KiB, and a parked
         * query's memory is what ten thousand watchers multiply */
        reg_held_t *h = malloc(sizeof(*h));
        if (!w || !h) {
            free(h);
            respond_error(req, 503, "cannot hold the query: out of memory");
            return;
        }
        uint64_t jitter = wait >= 16 ? (weft_now_ns() >> 10) % (wait / 16) : 0;
        *h = (reg_held_t){.req = req,
                          .r = r,
                          .index = want,
                          .deadline = uv_now(req->loop) + wait + jitter,
                          .qpos = REG_NOT_QUEUED,
                          .kind = (int8_t)kind};
        if (weft__waitq_add(&w->waitq, h) != 0) {
            free(h);
            respond_error(req, 503, "cannot hold the query: out of memory");
            return;
        }
        if (weft__waitq_first(&w->waitq) == h) arm(w, req->loop);
        h->prev = &w->waiters;
        h->next = w->waiters.next;
        w->waiters.next->prev = h;
        w->waiters.next = h;
        w->nwaiters++;
        atomic_fetch_add_explicit(&r->parked, 1, memory_order_relaxed);
        req->data = h;
        req->on_event = held_event;
        req->on_abort = held_abort;
        /* its read buffer back: ten thousand watchers would hold 40 MB of them (fails only
         * when the client pipelined another request behind it: it keeps its buffer then) */
        weft_http_request_park(req);
        return;
    }
    weft_buf_t b;
    weft_buf_init(&b, 64u << 20);
    const reg_body_t *shared = NULL;
    char err[300];
    int status = build_read(r, s, kind, name, &q, &b, &shared, err, sizeof(err));
    if (status >= 400 && status != 404) {
        weft_snap_read_unlock();
        weft_buf_free(&b);
        respond_error(req, status, err);
        return;
    }
    if (status == 404 && kind == K_AGENT_SERVICE) {
        weft_snap_read_unlock();
        weft_buf_free(&b);
        respond_error(req, 404, err);
        return;
    }
    if (b.failed) {
        weft_snap_read_unlock();
        weft_buf_free(&b);
        respond_error(req, 500, "the answer is too large or memory ran out");
        return;
    }
    index_headers(req, rel);
    atomic_fetch_add_explicit(&r->reads, 1, memory_order_relaxed);
    if (shared)
        weft_http_respond(req, status, "application/json", shared->data, shared->len);
    else
        weft_http_respond(req, status, "application/json", b.p ? b.p : "", b.len);
    weft_snap_read_unlock();
    weft_buf_free(&b);
}

static void on_read(weft_http_request_t *req, void *arg)
{
    read_arg_t *a = arg;
    answer_read(a->r, req, a->kind, true);
}

/* A parked query ends: answer it with what there is now. */
static void held_answer(reg_held_t *h)
{
    if (h->done) return;
    h->done = true;
    reg_worker_t *w = weft_host_state(h->req->loop, h->r->part);
    held_unlink(h);
    if (w) {
        w->nwaiters--;
        weft__waitq_remove(&w->waitq, h);
    }
    atomic_fetch_sub_explicit(&h->r->parked, 1, memory_order_relaxed);
    weft_http_request_t *req = h->req;
    weft_registry_t *r = h->r;
    int kind = h->kind;
    req->on_event = NULL;
    req->on_abort = NULL;
    req->data = NULL;
    free(h);
    answer_read(r, req, kind, false);
}

/* Every blocking query whose wait is over is answered, with the index it has. */
static void on_waitq_timer(uv_timer_t *t)
{
    reg_worker_t *w = t->data;
    uint64_t now = uv_now(t->loop);
    reg_held_t *h;
    while ((h = weft__waitq_first(&w->waitq)) && h->deadline <= now) held_answer(h);
    arm(w, t->loop);
}

void weft__reg_worker_init(reg_worker_t *w, uv_loop_t *loop)
{
    w->waiters.prev = w->waiters.next = &w->waiters;
    w->streams.prev = w->streams.next = &w->streams;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
}

static void held_event(weft_http_request_t *req, weft_http_event_t ev)
{
    reg_held_t *h = req->data;
    (void)ev; /* client gone, shutdown: each answers now */
    if (h && h->kind >= 0) held_answer(h);
}

static void held_abort(weft_http_request_t *req)
{
    reg_held_t *h = req->data;
    if (h && h->kind >= 0) held_answer(h);
}

/* ---- the event stream ---- */

static void stream_end(reg_held_t *h)
{
    if (h->done) return;
    h->done = true;
    reg_worker_t *w = weft_host_state(h->req->loop, h->r->part);
    held_unlink(h);
    if (w) w->nstreams--;
    atomic_fetch_sub_explicit(&h->r->streams, 1, memory_order_relaxed);
    h->req->on_event = NULL;
    h->req->on_abort = NULL;
    h->req->on_drain = NULL;
    weft_http_response_end(h->req);
}

static void stream_event(weft_http_request_t *req, weft_http_event_t ev)
{
    reg_held_t *h = req->data;
    if (ev == WEFT_HTTP_EVENT_TIMER) {
        if (weft_http_response_write(req, ": ping\n\n", 8) == WEFT_ECLOSED) {
            stream_end(h);
            return;
        }
        weft_http_request_timer(req, SSE_PING_MS);
        return;
    }
    stream_end(h);
}

static void stream_abort(weft_http_request_t *req)
{
    stream_end(req->data);
}

static void on_events(weft_http_request_t *req, void *arg)
{
    weft_registry_t *r = arg;
    reg_worker_t *w = weft_host_state(req->loop, r->part);
    reg_held_t *h = weft_http_request_alloc(req, sizeof(*h));
    if (!w || !h) {
        respond_error(req, 503, "cannot open the stream: out of memory");
        return;
    }
    weft_snap_read_lock();
    const reg_snap_t *s = weft_snap_get(&r->cell);
    uint64_t index = s ? s->index : 0;
    uint64_t services = s ? s->nsvc : 0, insts = s ? s->ninst : 0;
    weft_snap_read_unlock();
    weft_http_response_header(req, "Cache-Control", "no-cache");
    weft_http_response_header(req, "X-Accel-Buffering", "no");
    if (weft_http_response_start(req, 200, "text/event-stream", -1) != 0) return;
    char hello[256];
    int n = snprintf(hello, sizeof(hello),
                     "retry: 2000\nevent: hello\ndata: {\"Index\":%" PRIu64 ",\"Services\":%" PRIu64
                     ",\"Instances\":%" PRIu64 "}\n\n",
                     index, services, insts);
    weft_http_response_write(req, hello, (size_t)n);
    *h = (reg_held_t){.req = req, .r = r, .index = index, .qpos = REG_NOT_QUEUED, .kind = -1};
    h->prev = &w->streams;
    h->next = w->streams.next;
    w->streams.next->prev = h;
    w->streams.next = h;
    w->nstreams++;
    atomic_fetch_add_explicit(&r->streams, 1, memory_order_relaxed);
    req->data = h;
    req->on_event = stream_event;
    req->on_abort = stream_abort;
    weft_http_request_timer(req, SSE_PING_MS);
}

void weft__reg_worker_notify(weft_registry_t *r, reg_worker_t *w, reg_events_t *ev)
{
    if (w->nwaiters) {
        weft_snap_read_lock();
        const reg_snap_t *s = weft_snap_get(&r->cell);
        /* Collect first: answering unlinks. */
        reg_held_t *wake = NULL;
        for (reg_held_t *h = w->waiters.next; h != &w->waiters;) {
            reg_held_t *next = h->next;
            if (s && rel_index(s, h->kind, name_param(h->req, h->kind)) > h->index) {
                held_unlink(h);
                h->next = wake;
                wake = h;
            }
            h = next;
        }
        weft_snap_read_unlock();
        while (wake) {
            reg_held_t *h = wake;
            wake = h->next;
            h->prev = h->next = h; /* held_answer unlinks again: harmless on itself */
            atomic_fetch_add_explicit(&r->wakeups, 1, memory_order_relaxed);
            held_answer(h);
        }
    }
    if (ev && w->nstreams) {
        for (reg_held_t *h = w->streams.next; h != &w->streams;) {
            reg_held_t *next = h->next;
            int rc = weft_http_response_write(h->req, ev->data, ev->len);
            if (rc == WEFT_ECLOSED)
                stream_end(h);
            else if (rc == WEFT_EAGAIN) {
                /* EAGAIN past 64 KiB; the stream is cut when it falls far behind. */
                h->index += ev->len;
                if (h->index > SSE_MAX_BEHIND) stream_end(h);
            } else {
                h->index = 0;
            }
            h = next;
        }
    }
}

void weft__reg_worker_release(weft_registry_t *r, reg_worker_t *w)
{
    while (w->waiters.next != &w->waiters) held_answer(w->waiters.next);
    while (w->streams.next != &w->streams) stream_end(w->streams.next);
    weft__waitq_free(&w->waitq);
    uv_close((uv_handle_t *)&w->timer, NULL);
    (void)r;
}

/* ---- writes ---- */

enum {
    W_REGISTER,
    W_DEREGISTER,
    W_CHECK_REGISTER,
    W_CHECK_DEREGISTER,
    W_PASS,
    W_WARN,
    W_FAIL,
    W_UPDATE,
    W_MAINT
};

typedef struct op_s {
    reg_done_t done; /* first: the catalog calls back with it */
    weft_registry_t *r;
    weft_http_request_t *req;
    unsigned worker;
    int kind;
    reg_inst_t *inst;
    reg_check_t *chk;
    char id[REG_MAX_ID + 1];
    weft_health_t st;
    bool flag, has_output;
    char *text; /* output or reason */
    int status;
    char msg[300];
} op_t;

static void op_free(op_t *op)
{
    if (op->inst) weft_snap_release(op->inst);
    weft__check_free(op->chk);
    free(op->text);
    free(op);
}

/* On the worker: send the catalog's answer. */
static void op_reply(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    op_t *op = arg;
    (void)h, (void)loop, (void)index;
    if (op->status == 200) {
        weft_http_respond(op->req, 200, "application/json", "", 0);
    } else {
        respond_error(op->req, op->status, op->msg);
    }
    op_free(op);
}

/* On the control loop: the catalog is done with op. */
static void op_done(reg_done_t *d, int status, const char *msg)
{
    op_t *op = (op_t *)d;
    op->status = status;
    snprintf(op->msg, sizeof(op->msg), "%s", msg ? msg : "");
    if (weft_host_post(op->r->host, op->worker, op_reply, op) != 0) {
        /* The worker is gone (the very end of a shutdown): its connection went with it. */
        weft_warn("registry", "cannot answer a write: its worker is gone", "status=%d", status);
        op_free(op);
    }
}

static void op_apply(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    op_t *op = arg;
    weft_catalog_t *c = op->r->cat;
    (void)h, (void)loop, (void)index;
    if (!c) {
        op_done(&op->done, 503, "the registry is not running");
        return;
    }
    atomic_fetch_add_explicit(&op->r->writes, 1, memory_order_relaxed);
    switch (op->kind) {
    case W_REGISTER: {
        reg_inst_t *in = op->inst;
        op->inst = NULL;
        weft__cat_register(c, in, op->flag, &op->done);
        break;
    }
    case W_DEREGISTER:
        weft__cat_deregister(c, op->id, &op->done);
        break;
    case W_CHECK_REGISTER: {
        reg_check_t *k = op->chk;
        op->chk = NULL;
        weft__cat_check_register(c, k, &op->done);
        break;
    }
    case W_CHECK_DEREGISTER:
        weft__cat_check_deregister(c, op->id, &op->done);
        break;
    case W_PASS:
    case W_WARN:
    case W_FAIL:
    case W_UPDATE:
        weft__cat_check_update(c, op->id, op->st, op->has_output ? op->text : NULL, &op->done);
        break;
    case W_MAINT:
        weft__cat_maintenance(c, op->id, op->flag, op->text, &op->done);
        break;
    }
}

static json_t *parse_body(weft_http_request_t *req, bool required)
{
    if (req->body.len == 0) {
        if (required) respond_error(req, 400, "body: a JSON object is required");
        return required ? NULL : json_object();
    }
    json_error_t je;
    json_t *root = json_loadb(req->body.base, req->body.len, 0, &je);
    if (!root) {
        char msg[300];
        snprintf(msg, sizeof(msg), "body: invalid JSON at line %d column %d: %s", je.line,
                 je.column, je.text);
        respond_error(req, 400, msg);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        respond_error(req, 400, "body: must be a JSON object");
        return NULL;
    }
    return root;
}

static void on_write(weft_http_request_t *req, void *arg)
{
    read_arg_t *a = arg;
    weft_registry_t *r = a->r;
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    if (!weft__acl_ok(req, r->conf.acl_token)) {
        respond_error(req, 403,
                      "token: permission denied (acl.token is set: send it in "
                      "X-Consul-Token, Authorization: Bearer or ?token=)");
        return;
    }
    op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        respond_error(req, 503, "out of memory");
        return;
    }
    op->done.fn = op_done;
    op->r = r;
    op->req = req;
    op->worker = weft_host_worker_index(req->loop);
    op->kind = a->kind;
    char err[512];
    weft_str_t id = weft_http_request_param(req, "id");
    if (id.base) {
        if (id.len > REG_MAX_ID) {
            op_free(op);
            respond_error(req, 400, "id: too long");
            return;
        }
        memcpy(op->id, id.base, id.len);
        op->id[id.len] = 0;
    }
    switch (a->kind) {
    case W_REGISTER: {
        json_t *root = parse_body(req, true);
        if (!root) goto done_err;
        int rc = weft__inst_decode(root, REG_SRC_API, &op->inst, err, sizeof(err));
        json_decref(root);
        if (rc != 0) {
            respond_error(req, 400, err);
            goto done_err;
        }
        op->flag = weft_qs_flag(&q, "replace-existing-checks");
        break;
    }
    case W_CHECK_REGISTER: {
        json_t *root = parse_body(req, true);
        if (!root) goto done_err;
        int rc = weft__check_decode(root, REG_SRC_API, NULL, NULL, &op->chk, err, sizeof(err));
        json_decref(root);
        if (rc != 0) {
            respond_error(req, 400, err);
            goto done_err;
        }
        break;
    }
    case W_PASS:
    case W_WARN:
    case W_FAIL: {
        op->st = a->kind == W_PASS   ? WEFT_HEALTH_PASSING
                 : a->kind == W_WARN ? WEFT_HEALTH_WARNING
                                     : WEFT_HEALTH_CRITICAL;
        weft_str_t v;
        if (weft_qs_get(&q, "note", &v)) {
            char *note = malloc(REG_MAX_OUTPUT + 1);
            if (!note || weft_qs_decode(v, note, REG_MAX_OUTPUT + 1) < 0) {
                free(note);
                respond_error(req, 400, "note: bad escape or longer than 4096 bytes");
                goto done_err;
            }
            op->text = note;
            op->has_output = true;
        }
        break;
    }
    case W_UPDATE: {
        json_t *root = parse_body(req, true);
        if (!root) goto done_err;
        json_t *st = weft__json_get(root, "Status"), *out = weft__json_get(root, "Output");
        if (!json_is_string(st) ||
            weft__health_parse(json_string_value(st), json_string_length(st), &op->st) != 0) {
            json_decref(root);
            respond_error(req, 400, "Status: must be \"passing\", \"warning\" or \"critical\"");
            goto done_err;
        }
        if (out && !json_is_null(out)) {
            if (!json_is_string(out) || json_string_length(out) > REG_MAX_OUTPUT) {
                json_decref(root);
                respond_error(req, 400, "Output: must be a string of at most 4096 bytes");
                goto done_err;
            }
            op->text = strdup(json_string_value(out));
            op->has_output = op->text != NULL;
        }
        json_decref(root);
        break;
    }
    case W_MAINT: {
        weft_str_t v;
        if (!weft_qs_get(&q, "enable", &v)) {
            respond_error(req, 400, "enable: required (true or false)");
            goto done_err;
        }
        if (v.len == 4 && strncasecmp(v.base, "true", 4) == 0)
            op->flag = true;
        else if (v.len == 5 && strncasecmp(v.base, "false", 5) == 0)
            op->flag = false;
        else {
            respond_error(req, 400, "enable: must be true or false");
            goto done_err;
        }
        if (weft_qs_get(&q, "reason", &v)) {
            char *reason = malloc(REG_MAX_STR + 1);
            if (!reason || weft_qs_decode(v, reason, REG_MAX_STR + 1) < 0) {
                free(reason);
                respond_error(req, 400, "reason: bad escape or too long");
                goto done_err;
            }
            op->text = reason;
        }
        break;
    }
    default:
        break;
    }
    if (weft_host_call(r->host, op_apply, op) != 0) {
        respond_error(req, 503, "the registry is busy or shutting down; retry");
        goto done_err;
    }
    return;
done_err:
    op_free(op);
}

static const struct {
    const char *method, *pattern;
    int kind;
} writes[] = {
    {"PUT", "/v1/agent/service/register", W_REGISTER},
    {"PUT", "/v1/agent/service/deregister/:id", W_DEREGISTER},
    {"GET", "/v1/agent/service/deregister/:id", W_DEREGISTER},
    {"PUT", "/v1/agent/check/register", W_CHECK_REGISTER},
    {"PUT", "/v1/agent/check/deregister/:id", W_CHECK_DEREGISTER},
    {"PUT", "/v1/agent/check/pass/:id", W_PASS},
    {"PUT", "/v1/agent/check/warn/:id", W_WARN},
    {"PUT", "/v1/agent/check/fail/:id", W_FAIL},
    /* GET for these too, as Consul before 1.0 took them: Debian's python3-consul (0.7.1)
     * still sends GET. */
    {"GET", "/v1/agent/check/deregister/:id", W_CHECK_DEREGISTER},
    {"GET", "/v1/agent/check/pass/:id", W_PASS},
    {"GET", "/v1/agent/check/warn/:id", W_WARN},
    {"GET", "/v1/agent/check/fail/:id", W_FAIL},
    {"PUT", "/v1/agent/check/update/:id", W_UPDATE},
    {"PUT", "/v1/agent/service/maintenance/:id", W_MAINT},
};

#define NREADS  (sizeof(reads) / sizeof(reads[0]))
#define NWRITES (sizeof(writes) / sizeof(writes[0]))

/* GET /v1/weft/checks/:id/history[?since=MS]: the check's last transitions with their
 * outputs (cklog.c), for the dashboard. */
static void on_check_history(weft_http_request_t *req, void *arg)
{
    weft_registry_t *r = arg;
    weft_str_t id = weft_http_request_param(req, "id");
    weft_qs_t q;
    weft_qs_parse(req->query, &q);
    weft_str_t v;
    uint64_t since = 0;
    if (weft_qs_get(&q, "since", &v)) {
        bool ok = v.len > 0 && v.len <= 19;
        for (size_t i = 0; ok && i < v.len; i++) {
            ok = v.base[i] >= '0' && v.base[i] <= '9';
            since = since * 10 + (uint64_t)(v.base[i] - '0');
        }
        if (!ok)
            return respond_error(req, 400,
                                 "since: must be a time in unix milliseconds (digits, at most 19)");
    }
    char cid[REG_MAX_ID + 1];
    if (!id.base || id.len == 0 || id.len > REG_MAX_ID) {
        char msg[64];
        snprintf(msg, sizeof(msg), "id: must be 1 to %d bytes", REG_MAX_ID);
        return respond_error(req, 400, msg);
    }
    memcpy(cid, id.base, id.len);
    cid[id.len] = 0;
    weft_buf_t b;
    weft_buf_init(&b, 1 << 20);
    if (weft__cklog_json(r->cklog, cid, since, &b) != 0) {
        weft_buf_free(&b);
        char msg[REG_MAX_ID + 64];
        snprintf(msg, sizeof(msg), "no transition of check \"%s\" is known", cid);
        return respond_error(req, 404, msg);
    }
    weft_http_respond(req, 200, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2);
    weft_buf_free(&b);
}

int weft__reg_routes(weft_registry_t *r, char *err, size_t errlen)
{
    /* Each route's argument: the registry and what the route does (freed with r). */
    read_arg_t *read_args = calloc(K_COUNT + NWRITES, sizeof(read_arg_t));
    if (!read_args) {
        snprintf(err, errlen, "out of memory");
        return WEFT_ENOMEM;
    }
    read_arg_t *write_args = read_args + K_COUNT;
    r->route_args = read_args;
    for (size_t i = 0; i < NREADS; i++) {
        read_args[reads[i].kind] = (read_arg_t){r, reads[i].kind};
        int rc = weft_service_route(r->svc, reads[i].method, reads[i].pattern, on_read,
                                    &read_args[reads[i].kind]);
        if (rc != 0) {
            snprintf(err, errlen, "route %s %s: %s", reads[i].method, reads[i].pattern,
                     weft_strerror(rc));
            return rc;
        }
    }
    for (size_t i = 0; i < NWRITES; i++) {
        write_args[i] = (read_arg_t){r, writes[i].kind};
        weft_http_route_t rt = {.handler = on_write, .arg = &write_args[i], .max_body = 1 << 20};
        int rc = weft_service_route_ex(r->svc, writes[i].method, writes[i].pattern, &rt);
        if (rc != 0) {
            snprintf(err, errlen, "route %s %s: %s", writes[i].method, writes[i].pattern,
                     weft_strerror(rc));
            return rc;
        }
    }
    int rc = weft_service_route(r->svc, "GET", "/v1/weft/events", on_events, r);
    if (rc != 0) {
        snprintf(err, errlen, "route GET /v1/weft/events: %s", weft_strerror(rc));
        return rc;
    }
    rc = weft_service_route(r->svc, "GET", "/v1/weft/checks/:id/history", on_check_history, r);
    if (rc != 0) {
        snprintf(err, errlen, "route GET /v1/weft/checks/:id/history: %s", weft_strerror(rc));
        return rc;
    }
    return 0;
}
