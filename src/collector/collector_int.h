/*
 * collector_int.h - what the collector's files share (internal): the collector itself
 * (collector.c: set-up and ingest), the query APIs (query.c), the in-process exporter
 * (exporter.c) and forwarding to an external OTLP receiver (forward.c).
 */
#ifndef WEFT_COLLECTOR_INT_H
#define WEFT_COLLECTOR_INT_H

#include <stdatomic.h>
#include <uv.h>

#include "collector/autocomplete.h"
#include "collector/collector.h"
#include "collector/deps.h"
#include "collector/forward.h"
#include "collector/store.h"
#include "core/arena.h"
#include "core/buf.h"
#include "weft/metrics.h"

/* A worker's own ingest scratch: the decoded batch's arena and the inflated body, kept
 * between requests (reset, not freed) so that a steady ingest allocates nothing. */
typedef struct col_worker_s {
    weft_arena_t arena;
    weft_buf_t inflated;
} col_worker_t;

struct weft_collector_s {
    weft_host_t *host;
    col_store_t *store;
    col_deps_t *deps;
    col_ac_t *ac; /* Zipkin's tag autocomplete (query.c) */
    char *deps_path;
    uv_timer_t deps_timer; /* control loop: saves the graph once a minute */
    uv_work_t deps_work;
    bool deps_timer_on, deps_saving;
    weft_http_server_t *otlp, *zipkin;
    int part;
    uint64_t max_body, max_decoded, queue_size;
    /* per ingest format (NULL without metrics) */
    weft_counter_t *spans_accepted[3], *spans_rejected[3], *requests_refused[3];
    col_fwd_t *fwd; /* NULL: not forwarding (collector.forward.endpoint empty) */
};

/* The ingest formats, as counted. */
enum { COL_FMT_OTLP_PB = 0, COL_FMT_OTLP_JSON = 1, COL_FMT_ZIPKIN = 2 };

/* Adds the query routes: Zipkin's to c->zipkin, Jaeger's to the API's service (query.c). */
int weft__col_query_routes(weft_collector_t *c, weft_service_t *api);

/* Answers req with status and a JSON body {"code": <google.rpc code>, "message": msg}
 * (the OTLP/HTTP error shape, which names the field or limit in message). */
/* The dependency linker's life (collector.c): loaded from DATA_DIR/dependencies.json, saved
 * back when the collector is freed. */
int weft__col_deps_open(weft_collector_t *c, const char *data_dir, uint64_t retention_ms, char *err,
                        size_t errlen);
void weft__col_deps_close(weft_collector_t *c);

/* Starts forwarding (forward.c) as o->conf->fwd_* say, into c->fwd. */
int weft__col_fwd_open(weft_collector_t *c, const weft_collector_options_t *o, char *err,
                       size_t errlen);

void weft__col_error(weft_http_request_t *req, int status, int code, const char *msg);

#endif
