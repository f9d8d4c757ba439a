/*
 * encode.c - the JSON shapes Consul answers with, and the store's records.
 *
 * Keys are CamelCase as Consul writes them, every field Consul's clients read is present
 * (absent values as "", [], {} or 0, never left out: some clients index them without a
 * check), and strings are escaped by core/json_write. Durations are written as Go writes
 * them ("10s", "1m30s", "500ms"). A check's History (weft's own field: its last
 * transitions, oldest first, times in ms since the epoch) is shown where a check is shown
 * alone (/v1/agent/checks, /v1/health/checks, /v1/health/state) and kept in the store; it
 * is left out of health entries, which discovery clients read at high rates.
 *
 * Pure functions into the caller's buffer; a failed buffer (out of memory, over its limit)
 * is the caller's to check once at the end (core/buf.h).
 */
#include <inttypes.h>
#include <string.h>

#include "core/json_write.h"
#include "registry/model.h"

static void put_s(weft_buf_t *b, const char *key, const char *v)
{
    weft_json_put_key(b, key);
    weft_json_put_str(b, v, strlen(v));
}

static void put_u(weft_buf_t *b, const char *key, uint64_t v)
{
    weft_json_put_key(b, key);
    weft_buf_put_u64(b, v);
}

/* Go's time.Duration.String() for whole milliseconds. */
static void put_dur(weft_buf_t *b, const char *key, uint64_t ms)
{
    char s[64];
    if (ms == 0) {
        snprintf(s, sizeof(s), "0s");
    } else if (ms < 1000) {
        snprintf(s, sizeof(s), "%" PRIu64 "ms", ms);
    } else {
        uint64_t h = ms / 3600000, m = ms / 60000 % 60, sec = ms / 1000 % 60, frac = ms % 1000;
        char secs[32];
        if (frac) {
            int n = snprintf(secs, sizeof(secs), "%" PRIu64 ".%03" PRIu64, sec, frac);
            while (n > 0 && secs[n - 1] == '0') secs[--n] = 0;
        } else {
            snprintf(secs, sizeof(secs), "%" PRIu64, sec);
        }
        if (h)
            snprintf(s, sizeof(s), "%" PRIu64 "h%" PRIu64 "m%ss", h, m, secs);
        else if (m)
            snprintf(s, sizeof(s), "%" PRIu64 "m%ss", m, secs);
        else
            snprintf(s, sizeof(s), "%ss", secs);
    }
    put_s(b, key, s);
}

static void put_tags(weft_buf_t *b, const char *key, const reg_inst_t *in)
{
    weft_json_put_key(b, key);
    weft_buf_putc(b, '[');
    for (uint32_t i = 0; in && i < in->ntags; i++) {
        if (i) weft_buf_putc(b, ',');
        weft_json_put_str(b, in->tags[i], strlen(in->tags[i]));
    }
    weft_buf_putc(b, ']');
}

static void put_kv(weft_buf_t *b, const char *key, const reg_kv_t *kv, uint32_t n)
{
    weft_json_put_key(b, key);
    weft_buf_putc(b, '{');
    for (uint32_t i = 0; i < n; i++) {
        if (i) weft_buf_putc(b, ',');
        weft_json_put_str(b, kv[i].k, strlen(kv[i].k));
        weft_buf_putc(b, ':');
        weft_json_put_str(b, kv[i].v, strlen(kv[i].v));
    }
    weft_buf_putc(b, '}');
}

static void put_weights(weft_buf_t *b, const char *key, const reg_inst_t *in)
{
    weft_json_put_key(b, key);
    weft_buf_puts(b, "{\"Passing\":");
    weft_buf_put_u64(b, (uint64_t)in->w_passing);
    weft_buf_puts(b, ",\"Warning\":");
    weft_buf_put_u64(b, (uint64_t)in->w_warning);
    weft_buf_putc(b, '}');
}

static void put_tagged(weft_buf_t *b, const char *key, const char *addr)
{
    weft_json_put_key(b, key);
    weft_buf_putc(b, '{');
    put_s(b, "lan", addr);
    weft_buf_putc(b, ',');
    put_s(b, "wan", addr);
    weft_buf_putc(b, '}');
}

/* A service object: the agent's (with the datacenter: dc non-NULL) and a health entry's
 * "Service" (without). */
static void put_service(weft_buf_t *b, const reg_inst_t *in, const char *dc)
{
    weft_buf_putc(b, '{');
    put_s(b, "ID", in->id);
    weft_buf_putc(b, ',');
    put_s(b, "Service", in->name);
    weft_buf_putc(b, ',');
    put_tags(b, "Tags", in);
    weft_buf_putc(b, ',');
    put_s(b, "Address", in->address);
    weft_buf_putc(b, ',');
    put_kv(b, "Meta", in->meta, in->nmeta);
    weft_buf_putc(b, ',');
    put_u(b, "Port", in->port);
    weft_buf_putc(b, ',');
    put_weights(b, "Weights", in);
    weft_buf_puts(b, in->eto ? ",\"EnableTagOverride\":true," : ",\"EnableTagOverride\":false,");
    put_s(b, "Kind", in->kind);
    weft_buf_putc(b, ',');
    if (dc) {
        put_s(b, "Datacenter", dc);
        weft_buf_putc(b, ',');
    }
    put_u(b, "CreateIndex", in->create_index);
    weft_buf_putc(b, ',');
    put_u(b, "ModifyIndex", in->modify_index);
    weft_buf_putc(b, '}');
}

void weft__put_agent_service(weft_buf_t *b, const reg_node_t *node, const reg_inst_t *in)
{
    put_service(b, in, node->datacenter);
}

static const char *type_name(reg_check_type_t t)
{
    switch (t) {
    case REG_CHECK_TTL:
        return "ttl";
    case REG_CHECK_HTTP:
        return "http";
    case REG_CHECK_TCP:
        return "tcp";
    case REG_CHECK_MAINT:
        return "maintenance";
    default:
        return "";
    }
}

static void put_history(weft_buf_t *b, const reg_check_t *c)
{
    weft_json_put_key(b, "History");
    weft_buf_putc(b, '[');
    for (unsigned i = 0; i < c->nhist; i++) {
        if (i) weft_buf_putc(b, ',');
        weft_buf_puts(b, "{\"At\":");
        weft_buf_put_u64(b, c->hist[i].at_ms);
        weft_buf_puts(b, ",\"From\":\"");
        weft_buf_puts(b, weft__health_name(c->hist[i].from));
        weft_buf_puts(b, "\",\"To\":\"");
        weft_buf_puts(b, weft__health_name(c->hist[i].to));
        weft_buf_puts(b, "\"}");
    }
    weft_buf_putc(b, ']');
}

static void put_definition(weft_buf_t *b, const reg_check_t *c, bool record)
{
    if (*c->http) {
        put_s(b, "HTTP", c->http);
        weft_buf_putc(b, ',');
        put_s(b, "Method", c->method);
        weft_buf_putc(b, ',');
        weft_json_put_key(b, "Header");
        weft_buf_putc(b, '{');
        /* Consul's map of arrays: one array per name, in first-seen order. */
        for (uint32_t i = 0; i < c->nheaders; i++) {
            bool seen = false;
            for (uint32_t j = 0; j < i; j++)
                if (strcmp(c->headers[j].k, c->headers[i].k) == 0) seen = true;
            if (seen) continue;
            if (i) weft_buf_putc(b, ',');
            weft_json_put_str(b, c->headers[i].k, strlen(c->headers[i].k));
            weft_buf_puts(b, ":[");
            bool first = true;
            for (uint32_t j = i; j < c->nheaders; j++) {
                if (strcmp(c->headers[j].k, c->headers[i].k) != 0) continue;
                if (!first) weft_buf_putc(b, ',');
                first = false;
                weft_json_put_str(b, c->headers[j].v, strlen(c->headers[j].v));
            }
            weft_buf_putc(b, ']');
        }
        weft_buf_puts(b, "},");
        put_s(b, "Body", c->body);
        weft_buf_putc(b, ',');
    }
    if (*c->tcp) {
        put_s(b, "TCP", c->tcp);
        weft_buf_putc(b, ',');
    }
    if (c->interval_ms) {
        put_dur(b, "Interval", c->interval_ms);
        weft_buf_putc(b, ',');
    }
    if (c->timeout_ms) {
        put_dur(b, "Timeout", c->timeout_ms);
        weft_buf_putc(b, ',');
    }
    if (c->ttl_ms) {
        put_dur(b, "TTL", c->ttl_ms);
        weft_buf_putc(b, ',');
    }
    if (c->dereg_ms) {
        put_dur(b, "DeregisterCriticalServiceAfter", c->dereg_ms);
        weft_buf_putc(b, ',');
    }
    if (record || c->sbp || c->fbw || c->fbc) {
        put_u(b, "SuccessBeforePassing", c->sbp);
        weft_buf_putc(b, ',');
        put_u(b, "FailuresBeforeWarning", c->fbw);
        weft_buf_putc(b, ',');
        put_u(b, "FailuresBeforeCritical", c->fbc);
        weft_buf_putc(b, ',');
    }
}

static void check_body(weft_buf_t *b, const reg_check_t *c, bool record)
{
    put_s(b, "CheckID", c->id);
    weft_buf_putc(b, ',');
    put_s(b, "Name", c->name);
    weft_buf_putc(b, ',');
    put_s(b, "Status",
          weft__health_name(c->status == WEFT_HEALTH_MAINT ? WEFT_HEALTH_CRITICAL : c->status));
    weft_buf_putc(b, ',');
    put_s(b, "Notes", c->notes);
    weft_buf_putc(b, ',');
    put_s(b, "Output", c->output);
    weft_buf_putc(b, ',');
    put_s(b, "ServiceID", c->service_id);
    weft_buf_putc(b, ',');
    put_s(b, "ServiceName", c->service_name);
    weft_buf_putc(b, ',');
    put_s(b, "Type", type_name(c->type));
    weft_buf_putc(b, ',');
    put_definition(b, c, record);
    put_u(b, "CreateIndex", c->create_index);
    weft_buf_putc(b, ',');
    put_u(b, "ModifyIndex", c->modify_index);
}

static void put_check_ex(weft_buf_t *b, const reg_node_t *node, const reg_check_t *c,
                         const reg_inst_t *inst, bool hist)
{
    weft_buf_putc(b, '{');
    put_s(b, "Node", node->name);
    weft_buf_putc(b, ',');
    check_body(b, c, false);
    weft_buf_putc(b, ',');
    put_tags(b, "ServiceTags", inst);
    weft_buf_puts(b, ",\"Definition\":{}");
    if (hist) {
        weft_buf_putc(b, ',');
        put_history(b, c);
    }
    weft_buf_putc(b, '}');
}

void weft__put_check(weft_buf_t *b, const reg_node_t *node, const reg_check_t *c,
                     const reg_inst_t *inst)
{
    put_check_ex(b, node, c, inst, true);
}

/* ID, Node, Address, Datacenter, TaggedAddresses: a node's, and a catalog entry's. */
static void put_node_fields(weft_buf_t *b, const reg_node_t *node)
{
    put_s(b, "ID", node->id);
    weft_buf_putc(b, ',');
    put_s(b, "Node", node->name);
    weft_buf_putc(b, ',');
    put_s(b, "Address", node->address);
    weft_buf_putc(b, ',');
    put_s(b, "Datacenter", node->datacenter);
    weft_buf_putc(b, ',');
    put_tagged(b, "TaggedAddresses", node->address);
}

void weft__put_node(weft_buf_t *b, const reg_node_t *node, uint64_t create, uint64_t modify)
{
    weft_buf_putc(b, '{');
    put_node_fields(b, node);
    weft_buf_puts(b, ",\"Meta\":{},");
    put_u(b, "CreateIndex", create);
    weft_buf_putc(b, ',');
    put_u(b, "ModifyIndex", modify);
    weft_buf_putc(b, '}');
}

void weft__put_catalog_service(weft_buf_t *b, const reg_node_t *node, const reg_inst_t *in)
{
    weft_buf_putc(b, '{');
    put_node_fields(b, node);
    weft_buf_puts(b, ",\"NodeMeta\":{},");
    put_s(b, "ServiceKind", in->kind);
    weft_buf_putc(b, ',');
    put_s(b, "ServiceID", in->id);
    weft_buf_putc(b, ',');
    put_s(b, "ServiceName", in->name);
    weft_buf_putc(b, ',');
    put_tags(b, "ServiceTags", in);
    weft_buf_putc(b, ',');
    put_s(b, "ServiceAddress", in->address);
    weft_buf_putc(b, ',');
    put_weights(b, "ServiceWeights", in);
    weft_buf_putc(b, ',');
    put_kv(b, "ServiceMeta", in->meta, in->nmeta);
    weft_buf_putc(b, ',');
    put_u(b, "ServicePort", in->port);
    weft_buf_puts(b, in->eto ? ",\"ServiceEnableTagOverride\":true,"
                             : ",\"ServiceEnableTagOverride\":false,");
    put_u(b, "CreateIndex", in->create_index);
    weft_buf_putc(b, ',');
    put_u(b, "ModifyIndex", in->modify_index);
    weft_buf_putc(b, '}');
}

void weft__put_health_entry(weft_buf_t *b, const reg_node_t *node, const reg_inst_t *in,
                            reg_check_t *const *node_checks, size_t n_node_checks)
{
    weft_buf_puts(b, "{\"Node\":");
    weft__put_node(b, node, 1, 1);
    weft_buf_puts(b, ",\"Service\":");
    put_service(b, in, NULL);
    weft_buf_puts(b, ",\"Checks\":[");
    size_t k = 0;
    for (size_t i = 0; i < n_node_checks; i++, k++) {
        if (k) weft_buf_putc(b, ',');
        put_check_ex(b, node, node_checks[i], NULL, false);
    }
    for (uint32_t i = 0; i < in->nchecks; i++, k++) {
        if (k) weft_buf_putc(b, ',');
        put_check_ex(b, node, in->checks[i], in, false);
    }
    weft_buf_puts(b, "]}");
}

void weft__put_check_record(weft_buf_t *b, const reg_check_t *c)
{
    weft_buf_putc(b, '{');
    check_body(b, c, true);
    weft_buf_putc(b, ',');
    put_history(b, c);
    weft_buf_putc(b, '}');
}

void weft__put_inst_record(weft_buf_t *b, const reg_inst_t *in)
{
    weft_buf_putc(b, '{');
    put_s(b, "ID", in->id);
    weft_buf_putc(b, ',');
    put_s(b, "Name", in->name);
    weft_buf_putc(b, ',');
    put_tags(b, "Tags", in);
    weft_buf_putc(b, ',');
    put_s(b, "Address", in->address);
    weft_buf_putc(b, ',');
    put_s(b, "Kind", in->kind);
    weft_buf_putc(b, ',');
    if (in->port) {
        put_u(b, "Port", in->port);
        weft_buf_putc(b, ',');
    }
    put_kv(b, "Meta", in->meta, in->nmeta);
    weft_buf_putc(b, ',');
    put_weights(b, "Weights", in);
    weft_buf_puts(b, in->eto ? ",\"EnableTagOverride\":true," : ",\"EnableTagOverride\":false,");
    put_u(b, "CreateIndex", in->create_index);
    weft_buf_putc(b, ',');
    put_u(b, "ModifyIndex", in->modify_index);
    weft_buf_puts(b, ",\"Checks\":[");
    for (uint32_t i = 0; i < in->nchecks; i++) {
        if (i) weft_buf_putc(b, ',');
        weft__put_check_record(b, in->checks[i]);
    }
    weft_buf_puts(b, "]}");
}
