/*
 * forward.h - forwarding every span the collector keeps to an external OTLP/HTTP receiver
 * (Jaeger, Tempo, an OpenTelemetry Collector, another weft), batched, from a bounded queue
 * (internal; the design is in forward.c).
 */
#ifndef WEFT_COLLECTOR_FORWARD_H
#define WEFT_COLLECTOR_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "core/buf.h"
#include "weft/metrics.h"

typedef struct col_fwd_s col_fwd_t;

typedef struct col_fwd_conf_s {
    const char *endpoint;  /* "http://host[:port][/path]", checked by col_fwd_endpoint_check */
    const char *headers;   /* "name=value,..." (NULL or ""), checked by col_fwd_headers_check */
    uint64_t queue_bytes;  /* encoded spans held (queued, in flight, waiting to be retried) */
    size_t batch_spans;    /* spans per request at most */
    uint64_t flush_ms;     /* the longest a span waits for its batch to fill */
    uint64_t timeout_ms;   /* one request, connect to last byte of the answer */
    uint64_t retry_ms;     /* how long a batch is retried before it is dropped */
    uint64_t shutdown_ms;  /* the final flush at most */
    unsigned max_inflight; /* requests at once */
} col_fwd_conf_t;

/* NULL, or what is wrong with an endpoint URL (a constant phrase, for the config check):
 * the scheme must be http, the host a name or a numeric address, the path (default
 * /v1/traces) printable ASCII. "" is fine (forwarding off). */
const char *col_fwd_endpoint_check(const char *url);
/* NULL, or what is wrong with a header list (never quotes it: headers carry API keys). */
const char *col_fwd_headers_check(const char *headers);

/* Starts the sender thread. m (may be NULL) gets the forward metrics. 0, or a negative
 * WEFT_E* code with one line in err. */
int col_fwd_new(const col_fwd_conf_t *conf, weft_metrics_registry_t *m, col_fwd_t **out, char *err,
                size_t errlen);

/* Any thread, never waits: encodes the n spans (their strings are read now, not kept) and
 * queues them; when the queue has no room for them they are dropped and counted. */
void col_fwd_add(col_fwd_t *f, const col_span_t *spans, size_t n);

/* Once nobody calls col_fwd_add any more: sends what is queued, for at most shutdown_ms
 * (what is left then is dropped and counted), stops the thread and frees f. NULL is fine. */
void col_fwd_free(col_fwd_t *f);

/* The n spans as the repeated ResourceSpans fields (1) of an ExportTraceServiceRequest, so
 * that requests are the concatenation of such pieces: consecutive spans of one resource
 * share a ResourceSpans, of one scope a ScopeSpans. Every field span.h keeps is written;
 * Zipkin's endpoints become the attributes the OpenTelemetry Collector's Zipkin receiver
 * makes of them (net.host.ip, net.host.port, peer.service, net.peer.ip, net.peer.port),
 * unless the span has an attribute of that key. Out of memory marks b failed. */
void col_fwd_encode(weft_buf_t *b, const col_span_t *spans, size_t n);

#endif
