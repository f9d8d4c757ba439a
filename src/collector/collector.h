/*
 * collector.h - the tracing collector as `weft serve` runs it (the daemon's, not libweft's):
 * span ingest on the OTLP/HTTP and Zipkin ports, the trace store under the data directory,
 * and the query APIs (Zipkin's on the Zipkin port, Jaeger's on the API port).
 */
#ifndef WEFT_COLLECTOR_COLLECTOR_H
#define WEFT_COLLECTOR_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/config.h"
#include "weft/host.h"
#include "weft/http.h"
#include "weft/metrics.h"
#include "weft/service.h"
#include "weft/trace.h"

typedef struct weft_collector_s weft_collector_t;

/* The collector.* settings (sizes in bytes, durations in ms once loaded). */
typedef struct weft_collector_conf_s {
    uint64_t max_body;    /* a request body as sent (compressed or not) */
    uint64_t max_decoded; /* a body after decompression */
    uint64_t queue_size;  /* the store's write queue */
    uint64_t max_disk;    /* retention by size */
    uint64_t retention;   /* retention by age */
    bool sync;            /* fdatasync before acknowledging */
    /* Zipkin's AUTOCOMPLETE_KEYS, comma-separated (NULL: none); its values kept per key */
    char *autocomplete_keys;
    uint64_t autocomplete_max_values;
    /* collector.forward.* (forward.c): NULL or "" endpoint: off */
    char *fwd_endpoint, *fwd_headers;
    uint64_t fwd_queue_size, fwd_batch_size, fwd_flush_interval, fwd_timeout, fwd_retry,
        fwd_shutdown, fwd_in_flight;
} weft_collector_conf_t;

weft_conf_section_t weft_collector_conf_section(weft_collector_conf_t *conf);

typedef struct weft_collector_options_s {
    const weft_collector_conf_t *conf;
    const char *data_dir; /* the store goes in DATA_DIR/traces */
    const char *otlp_host, *zipkin_host;
    uint16_t otlp_port, zipkin_port;        /* 0: a free port */
    const weft_http_server_options_t *http; /* the engine's limits (host/port ignored) */
    weft_service_t *api;                    /* the API's service: Jaeger's query routes */
    weft_metrics_registry_t *metrics;       /* may be NULL */
} weft_collector_options_t;

/* Opens the store (recovering it) and sets up the two listeners on h and the query
 * routes on o->api. 0, or a negative WEFT_E* code with one line in err. */
int weft_collector_new(weft_host_t *h, const weft_collector_options_t *o, weft_collector_t **out,
                       char *err, size_t errlen);
uint16_t weft_collector_otlp_port(const weft_collector_t *c);
uint16_t weft_collector_zipkin_port(const weft_collector_t *c);
/* After the host has stopped: writes what is queued and closes the store. NULL is fine. */
void weft_collector_free(weft_collector_t *c);

/* Where weft's own spans (the gateway's, the API's) go: straight into the store, with no
 * HTTP hop (exporter.c). The service's tracer is made before the collector, so its exporter
 * points at a sink, which the collector is attached to once it exists (spans before that
 * are dropped, and counted so by the tracer). Free the sink after the service. */
typedef struct weft_collector_sink_s weft_collector_sink_t;
weft_collector_sink_t *weft_collector_sink_new(void);
weft_span_exporter_t weft_collector_sink_exporter(weft_collector_sink_t *s);
/* c NULL detaches (before weft_collector_free). */
void weft_collector_sink_attach(weft_collector_sink_t *s, weft_collector_t *c);
void weft_collector_sink_free(weft_collector_sink_t *s);

#endif
