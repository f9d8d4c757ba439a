/**
 * weft/otlp.h - a span exporter that sends spans to an OTLP/HTTP receiver (JSON or protobuf,
 * optionally gzipped), and the OpenTelemetry environment variables that configure one.
 *
 *     weft_otlp_options_t oo;
 *     weft_otlp_options_init(&oo);
 *     oo.service_name = "orders";                  // resource attribute service.name
 *     char err[256];
 *     weft_span_exporter_t *e = weft_otlp_exporter_new(&oo, err, sizeof(err));
 *     if (!e) { fprintf(stderr, "%s\n", err); return 2; }
 *     so.exporter = e;                             // weft_service_options_t: it takes it over
 *
 * Spans are POSTed to http://host:port/path as an ExportTraceServiceRequest in the OTLP/JSON
 * encoding (Content-Type: application/json): ids as lowercase hex, times as decimal strings,
 * enums as integers; or, with protocol WEFT_OTLP_HTTP_PROTOBUF, in protobuf's binary wire
 * format (Content-Type: application/x-protobuf), smaller and cheaper to write; with gzip,
 * compressed (Content-Encoding: gzip), which OTLP/HTTP receivers must accept. Ending a span never
 * blocks and never does I/O: the span is copied into a bounded queue and sent from the exporter's
 * own thread, in batches of at most max_batch spans, one request at a time. A batch goes out when
 * it is full or flush_interval_ms after its oldest span was queued.
 *
 * Retries, as OTLP/HTTP asks of exporters: a batch whose request fails transiently (429,
 * 502, 503 or 504, a timeout, a refused or reset connection, a name not found) is sent again,
 * up to max_attempts requests in all, after an exponential backoff with jitter
 * (retry_initial_backoff_ms, times 1.5 per attempt, at most retry_max_backoff_ms, each
 * wait drawn within ±20% of that), or after the wait a Retry-After header asks for (seconds
 * or an HTTP date). A Retry-After longer than retry_max_backoff_ms ends the batch's retries:
 * the exporter does not hold a batch longer than that between attempts. Other answers
 * (other statuses, a malformed response) are not retried. While a batch waits for its next
 * attempt nothing else is sent, so batches go in order; spans that arrive meanwhile queue
 * up to max_queue. A batch that runs out of attempts, or fails for good, is dropped and
 * counted. One warning is logged per run of failures (comp=otlp), one info line when sending
 * works again. While shutting down, a batch is retried only when its wait ends before the
 * shutdown deadline and the receiver was reachable (a refused connection or a host not
 * found is not retried then): a service does not linger on exit for a receiver that is gone.
 *
 * Shutdown (weft_tracer_free, or e->shutdown(e->arg) for an exporter no tracer took) stops
 * taking spans, sends what is queued (retrying as above), waits at most shutdown_timeout_ms
 * for that, then cancels what is left, joins the thread and frees the exporter.
 *
 * Threads: export_spans (a tracer calls it) from any thread, several at once; the stats from
 * any thread; everything else from one thread at a time, at start-up and shutdown. The
 * library is built from src/otlp/ (module weft_otlp: exporter.c, span.c, encode_json.c,
 * encode_pb.c, options.c, env.c), part of libweft.
 */
#ifndef WEFT_OTLP_H
#define WEFT_OTLP_H

#include "weft/common.h"
#include "weft/metrics.h"
#include "weft/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_OTLP_MAX_QUEUE          1000000 /* max_queue at most */
#define WEFT_OTLP_MAX_BATCH          100000  /* max_batch at most */
#define WEFT_OTLP_MAX_TIMEOUT        3600000 /* any of the *_ms options at most (one hour) */
#define WEFT_OTLP_MAX_ATTEMPTS       100     /* max_attempts at most */
#define WEFT_OTLP_MAX_RESOURCE_ATTRS 64      /* resource_attributes: pairs at most */
#define WEFT_OTLP_MAX_RESOURCE_BYTES 4096    /* resource_attributes: bytes at most */
#define WEFT_OTLP_MAX_HEADERS        64      /* headers: pairs at most */
#define WEFT_OTLP_MAX_HEADER_BYTES   4096    /* headers: bytes at most */

/** How spans are encoded: OTLP/HTTP's two encodings, on the same path. */
typedef enum weft_otlp_protocol_e {
    WEFT_OTLP_HTTP_JSON = 0,    /* Content-Type: application/json (the default) */
    WEFT_OTLP_HTTP_PROTOBUF = 1 /* Content-Type: application/x-protobuf */
} weft_otlp_protocol_t;

/** Options; weft_otlp_options_init fills the defaults. Strings are copied by _new. */
typedef struct weft_otlp_options_s {
    const char *host;                /* numeric IPv4 or IPv6 address, or a host name (looked up
                                        for each new connection); default "127.0.0.1" */
    uint16_t port;                   /* 1-65535; default 4318 */
    const char *path;                /* request target, starting with '/'; default "/v1/traces" */
    const char *service_name;        /* required: resource attribute service.name, 1-255 bytes */
    const char *service_version;     /* resource attribute service.version (unless
                                        resource_attributes has it); NULL or "": none; at most
                                        255 bytes */
    const char *resource_attributes; /* more resource attributes, as OpenTelemetry's
                                        OTEL_RESOURCE_ATTRIBUTES writes them: "key=value,..."
                                        (blanks around keys and values dropped, values
                                        %-decoded; at most 64 pairs and 4096 bytes; a key
                                        given twice keeps its last value). NULL: none.
                                        service.name in it is ignored (service_name is the
                                        name); the exporter adds telemetry.sdk.name "weft",
                                        telemetry.sdk.language "c" and telemetry.sdk.version
                                        unless it has them */
    const char *headers;             /* extra request headers, as OTEL_EXPORTER_OTLP_HEADERS
                                        writes them: "name=value,..." (the form and limits of
                                        resource_attributes; names are tokens, and not
                                        Content-Type, Content-Encoding, Content-Length or
                                        Transfer-Encoding;
                                        decoded values hold no control character but tab; a
                                        name given twice, in any case, keeps its last value).
                                        Error messages never quote a value: headers carry API
                                        keys. NULL: none */
    size_t max_queue;                /* spans held (queued, batched, not yet encoded), 1..1000000;
                                        default 2048. More are dropped (dropped_queue_full) */
    size_t max_batch;                /* spans per request, 1..100000; default 512 */
    uint64_t flush_interval_ms;      /* longest wait of a queued span before its batch is sent,
                                        1..3600000; default 1000 */
    uint64_t timeout_ms;             /* per request (connect included), 1..3600000; default 10000 */
    uint64_t shutdown_timeout_ms;    /* how long shutdown sends what is queued, 0..3600000;
                                        default 5000. 0: what is queued is dropped */
    unsigned max_attempts;           /* requests per batch, the first included, 1..100; default 5
                                        (OpenTelemetry's SDKs). 1: never retried */
    uint64_t retry_initial_backoff_ms; /* wait before the first retry, 1..3600000; default 1000 */
    uint64_t retry_max_backoff_ms;     /* longest wait between attempts, 1..3600000; default 5000 */
    weft_otlp_protocol_t protocol;     /* default WEFT_OTLP_HTTP_JSON */
    bool gzip; /* compress request bodies (Content-Encoding: gzip, zlib level 1); default
                  false, as in OpenTelemetry's SDKs. Server spans shrink about 7x, for CPU
                  on the exporter's thread (bench/README.md, bench/otlp --gzip) */
} weft_otlp_options_t;

/** Counters since creation (monotonic). */
typedef struct weft_otlp_stats_s {
    uint64_t exported;           /* spans in batches the receiver answered with 2xx */
    uint64_t dropped_queue_full; /* spans refused because max_queue were held (or after
                                    shutdown began) */
    uint64_t dropped_failed;     /* spans in batches that failed for good, or that shutdown
                                    could not send in time */
    uint64_t batches_sent;       /* requests answered with 2xx */
    uint64_t batches_failed;     /* batches dropped: their last request failed (non-2xx,
                                    timeout, connection error) and no attempt was left, or the
                                    failure is not one to retry */
    uint64_t retries;            /* requests that failed and whose batch was sent again: every
                                    failed request is counted here or in batches_failed */
} weft_otlp_stats_t;

/** Fills *o with the defaults above (service_name NULL: set it). */
WEFT_EXTERN void weft_otlp_options_init(weft_otlp_options_t *o);

/**
 * Validates o and starts an exporter: its thread, loop and HTTP client (no connection is
 * made until there is something to send). Returns the exporter, to be handed to a tracer or
 * a service (which then own it), or NULL with one line in err (errlen bytes, NUL-terminated;
 * err may be NULL when errlen is 0) naming the bad option ("max_batch: must be 1..100000,
 * got 0"), or saying what failed (out of memory, thread creation).
 */
WEFT_EXTERN weft_span_exporter_t *weft_otlp_exporter_new(const weft_otlp_options_t *o, char *err,
                                                         size_t errlen);

/**
 * The exporter's counters now (any thread; relaxed reads), until it is shut down. Returns 0,
 * or WEFT_EINVAL when e is not an OTLP exporter (*out unchanged).
 */
WEFT_EXTERN int weft_otlp_exporter_stats(const weft_span_exporter_t *e, weft_otlp_stats_t *out);

/** What weft_otlp_options_from_env fills: the options and the storage their strings use. */
typedef struct weft_otlp_env_s {
    weft_otlp_options_t o;
    char host[256];
    char path[2049];
    char service_name[256];
    char resource[WEFT_OTLP_MAX_RESOURCE_BYTES + 1];
    char headers[WEFT_OTLP_MAX_HEADER_BYTES + 1];
} weft_otlp_env_t;

/**
 * The OTLP trace exporter OpenTelemetry's environment variables ask for, so that a weft
 * service deployed beside OpenTelemetry SDKs takes the same settings:
 *   OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: no exporter;
 *   OTEL_TRACES_EXPORTER: otlp (or unset); any other exporter is refused;
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the URL spans go to, as it is (an empty path is "/");
 *   else OTEL_EXPORTER_OTLP_ENDPOINT: a base URL, "v1/traces" is appended to its path;
 *     URLs are http://HOST[:PORT][/PATH], HOST a numeric IPv4 address, [IPv6] or a host
 *     name, PORT default 80; https is refused (not yet built);
 *     when neither is set, an exporter is wanted only if OTEL_TRACES_EXPORTER=otlp says so,
 *     and then at http://localhost:4318/v1/traces (OpenTelemetry's default);
 *   OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL: http/json or
 *     http/protobuf (unset: http/json, where OpenTelemetry's SDKs default to http/protobuf;
 *     receivers take both on the same path); grpc is refused;
 *   OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else
 *     default_service_name;
 *   OTEL_RESOURCE_ATTRIBUTES: resource_attributes (its form and limits there; a bad list is
 *     refused, where OpenTelemetry SDKs would log it and drop it);
 *   OTEL_EXPORTER_OTLP_TRACES_HEADERS, else OTEL_EXPORTER_OTLP_HEADERS: headers (a bad
 *     list is refused without quoting it);
 *   OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, else OTEL_EXPORTER_OTLP_COMPRESSION: gzip or
 *     none;
 *   OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, else OTEL_EXPORTER_OTLP_TIMEOUT: timeout_ms;
 *   OTEL_BSP_EXPORT_TIMEOUT: a ceiling on timeout_ms (per request; retries are not in it);
 *   OTEL_BSP_SCHEDULE_DELAY: flush_interval_ms; OTEL_BSP_MAX_QUEUE_SIZE: max_queue;
 *   OTEL_BSP_MAX_EXPORT_BATCH_SIZE: max_batch (whole numbers, milliseconds for times).
 * Unset or empty variables keep weft_otlp_options_init's defaults. Returns 1 when an
 * exporter is wanted (env->o is ready for weft_otlp_exporter_new, which checks the bounds),
 * 0 when none is, WEFT_EINVAL with one line in err naming the variable and what is wrong
 * (WEFT_ENOMEM: out of memory). env->o's strings point into *env: keep it until
 * weft_otlp_exporter_new, which copies them, has returned. Reads the environment: call at
 * start-up, not concurrently with setenv.
 */
WEFT_EXTERN int weft_otlp_options_from_env(weft_otlp_env_t *env, const char *default_service_name,
                                           char *err, size_t errlen);

/**
 * Counts the exporter's work in reg from now on, as the counters
 * weft_otlp_spans_exported_total, weft_otlp_spans_dropped_total{reason="queue_full"|"failed"}
 * and weft_otlp_batches_total{result="sent"|"retried"|"failed"} (what the stats counted before this
 * call is carried over). Call once, before spans flow (a service does it for the exporter
 * it is given); reg must outlive the exporter. Returns 0; WEFT_EINVAL when e is not an OTLP
 * exporter or reg is NULL; WEFT_EEXIST when reg already has these names (one OTLP exporter
 * per registry); WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_otlp_exporter_metrics(weft_span_exporter_t *e, weft_metrics_registry_t *reg);

#ifdef __cplusplus
}
#endif
#endif
