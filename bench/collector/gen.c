/*
 * gen.c - the spans of the trace store benchmarks (see gen.h). Deterministic: xorshift64
 * from a fixed seed, ids from splitmix64 of the trace and depth numbers.
 */
#include <stdio.h>
#include <string.h>

#include "gen.h"

uint64_t gen_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void gen_trace_id(uint64_t t, uint8_t out[16])
{
    uint64_t a = gen_mix(t + 1), b = gen_mix(t ^ 0xabcdef);
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

#define NROUTE 8
char gen_svc_names[GEN_NSVC][32];
static col_attr_t res_attrs[GEN_NSVC][6];
static col_resource_t resources[GEN_NSVC];
static char host_names[GEN_NSVC][32];
static const col_scope_t scope = {.name = COL_STR("io.opentelemetry.http"),
                                  .version = COL_STR("1.32.0")};
static const char *routes[NROUTE] = {"/api/v1/users/{id}",
                                     "/api/v1/orders",
                                     "/api/v1/orders/{id}",
                                     "/api/v1/cart",
                                     "/health",
                                     "/api/v1/search",
                                     "/api/v1/payments/{id}",
                                     "/api/v1/inventory/{sku}"};
static const char *methods[4] = {"GET", "POST", "PUT", "DELETE"};

col_str_t gen_str(const char *z)
{
    return (col_str_t){.p = z, .n = (uint32_t)strlen(z)};
}

void gen_setup(void)
{
    for (int i = 0; i < GEN_NSVC; i++) {
        snprintf(gen_svc_names[i], sizeof gen_svc_names[i], "service-%02d", i);
        snprintf(host_names[i], sizeof host_names[i], "ip-10-0-%d-%d.internal", i, 17 * i + 3);
        col_attr_t *a = res_attrs[i];
        a[0] = (col_attr_t){
            .key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = gen_str(gen_svc_names[i])};
        a[1] = (col_attr_t){
            .key = COL_STR("host.name"), .type = COL_V_STRING, .v.s = gen_str(host_names[i])};
        a[2] = (col_attr_t){.key = COL_STR("telemetry.sdk.name"),
                            .type = COL_V_STRING,
                            .v.s = COL_STR("opentelemetry")};
        a[3] = (col_attr_t){
            .key = COL_STR("telemetry.sdk.language"), .type = COL_V_STRING, .v.s = COL_STR("go")};
        a[4] = (col_attr_t){.key = COL_STR("telemetry.sdk.version"),
                            .type = COL_V_STRING,
                            .v.s = COL_STR("1.32.0")};
        a[5] = (col_attr_t){.key = COL_STR("process.pid"), .type = COL_V_INT, .v.i = 1000 + i * 37};
        resources[i] =
            (col_resource_t){.service = gen_str(gen_svc_names[i]), .attrs = a, .nattrs = 6};
    }
}

#define SEED 88172645463325252ull
static uint64_t rng = SEED;

void gen_reseed(void)
{
    rng = SEED;
}

uint64_t gen_rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A duration: mostly milliseconds, a long tail to seconds. */
static uint64_t duration(void)
{
    uint64_t r = gen_rnd() % 1000;
    if (r < 700) return 100000 + gen_rnd() % 5000000;   /* 0.1-5 ms */
    if (r < 950) return 5000000 + gen_rnd() % 95000000; /* 5-100 ms */
    return 100000000 + gen_rnd() % 1900000000;          /* 0.1-2 s */
}

/* Fills b with append number i: as an SDK's export, the spans of one service (one
 * resource), here 100 spans of 100 traces. The traces of a round of 10 appends are
 * [round * 100, round * 100 + 100); append k of the round holds the span at depth k of each,
 * so a trace's 10 spans arrive in 10 appends, from 10 services, as they would. */
void gen_fill(gen_batch_t *b, uint64_t i, uint64_t start0)
{
    uint64_t round = i / GEN_PER_TRACE;
    int depth = (int)(i % GEN_PER_TRACE);
    int svc = (int)((round * 7 + (uint64_t)depth) % GEN_NSVC);
    for (int k = 0; k < GEN_PER_APPEND; k++) {
        uint64_t t = round * GEN_PER_APPEND + (uint64_t)k;
        col_span_t *s = &b->spans[k];
        memset(s, 0, sizeof *s);
        gen_trace_id(t, s->trace_id);
        uint64_t sid = gen_mix(t * 64 + (uint64_t)depth),
                 pid = gen_mix(t * 64 + (uint64_t)depth - 1);
        memcpy(s->span_id, &sid, 8);
        if (depth) memcpy(s->parent_id, &pid, 8);
        int route = (int)(gen_mix(t + 7) % NROUTE);
        int method = (int)(gen_mix(t + 9) % 4);
        s->start_ns = start0 + (uint64_t)k * 10000 + (uint64_t)depth * 100000;
        s->end_ns = s->start_ns + duration();
        s->name = gen_str(routes[route]);
        s->kind = depth % 2 ? COL_KIND_CLIENT : COL_KIND_SERVER;
        s->status = gen_rnd() % 50 == 0 ? COL_STATUS_ERROR : COL_STATUS_UNSET;
        s->flags = 0x101;
        s->resource = &resources[svc];
        s->scope = &scope;
        int status = s->status == COL_STATUS_ERROR ? 500 : (gen_rnd() % 10 ? 200 : 404);
        snprintf(b->urls[k], sizeof b->urls[k], "http://%s:8080%s",
                 gen_svc_names[(svc + 1) % GEN_NSVC], routes[route]);
        snprintf(b->peers[k], sizeof b->peers[k], "10.0.%d.%d", (int)(gen_rnd() % 4),
                 (int)(gen_rnd() % 250));
        col_attr_t *a = b->attrs[k];
        a[0] = (col_attr_t){
            .key = COL_STR("http.method"), .type = COL_V_STRING, .v.s = gen_str(methods[method])};
        a[1] = (col_attr_t){
            .key = COL_STR("http.route"), .type = COL_V_STRING, .v.s = gen_str(routes[route])};
        a[2] = (col_attr_t){.key = COL_STR("http.status_code"), .type = COL_V_INT, .v.i = status};
        a[3] = (col_attr_t){.key = COL_STR("net.peer.name"),
                            .type = COL_V_STRING,
                            .v.s = gen_str(gen_svc_names[(svc + 1) % GEN_NSVC])};
        a[4] = (col_attr_t){.key = COL_STR("net.peer.port"), .type = COL_V_INT, .v.i = 8080};
        a[5] = (col_attr_t){
            .key = COL_STR("http.url"), .type = COL_V_STRING, .v.s = gen_str(b->urls[k])};
        a[6] = (col_attr_t){
            .key = COL_STR("http.flavor"), .type = COL_V_STRING, .v.s = COL_STR("1.1")};
        a[7] = (col_attr_t){.key = COL_STR("net.sock.peer.addr"),
                            .type = COL_V_STRING,
                            .v.s = gen_str(b->peers[k])};
        a[8] = (col_attr_t){.key = COL_STR("http.response_content_length"),
                            .type = COL_V_INT,
                            .v.i = (int64_t)(gen_rnd() % 20000)};
        a[9] = (col_attr_t){
            .key = COL_STR("thread.id"), .type = COL_V_INT, .v.i = (int64_t)(gen_rnd() % 64)};
        s->attrs = a;
        s->nattrs = 10;
        if (s->kind == COL_KIND_CLIENT)
            s->remote.service = gen_str(gen_svc_names[(svc + 1) % GEN_NSVC]);
        if (s->status == COL_STATUS_ERROR) {
            b->ev[k] = (col_event_t){.time_ns = s->end_ns - 1000, .name = COL_STR("exception")};
            s->events = &b->ev[k];
            s->nevents = 1;
            s->status_message = COL_STR("upstream returned 500");
        }
    }
}
