/*
 * collector.c - span ingest: OTLP/HTTP `POST /v1/traces` (protobuf or JSON) on the OTLP port
 * and Zipkin v2 `POST /api/v2/spans` (JSON) on the Zipkin port, into the trace store; and
 * the collector's set-up in the host.
 *
 * A request is served on the worker that read it: the body (buffered by the engine up to
 * collector.max_body_size, else 413) is inflated when it is gzip'd (up to
 * collector.max_decoded_size, else 413), decoded into the worker's arena (decode.h), fed to
 * the dependency linker, and handed to the store, which copies it (and, when
 * collector.forward.endpoint is set, to the forwarder, which encodes it: forward.c); the
 * arena is reset at once. The answer waits until the store says the spans are durable: the
 * store's writer thread posts the outcome back to the worker (weft_host_post), which answers
 * 200 (OTLP, with partial_success when spans were refused) or 202 (Zipkin). So an
 * acknowledged span survives a crash; one whose answer never came may or may not.
 *
 * Back-pressure, never an unbounded queue: when the store's write queue is full the
 * request is answered 429 with Retry-After (OTLP/HTTP's throttling answer, which its
 * exporters retry after the delay) at once, before anything is kept.
 *
 * Errors are JSON, {"code": N, "message": "..."} (google.rpc.Status, OTLP/HTTP's error
 * body), whatever the request's format: a message names the field or the limit; clients
 * read a JSON error by its Content-Type, and a person with curl can read it.
 *
 * A request whose client goes away while its spans are being written: the spans are still
 * stored; the answer is dropped. The ingest record (ingest_t) is shared by the request's
 * worker and the store's writer, so it has two references: the request's (dropped when it
 * is answered or aborted) and the store's (dropped when the outcome has been handled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include <zlib.h>

#include "collector/collector_int.h"
#include "collector/decode.h"
#include "core/json_write.h"
#include "weft/common.h"
#include "weft/log.h"

#define OFF(f) offsetof(weft_collector_conf_t, f)

static const char *check_autocomplete_keys(const void *value)
{
    return col_ac_keys_check(*(const char *const *)value);
}

static const char *check_fwd_endpoint(const void *v)
{
    return col_fwd_endpoint_check(*(char *const *)v);
}

static const char *check_fwd_headers(const void *v)
{
    return col_fwd_headers_check(*(char *const *)v);
}

static const weft_conf_option_t options[] = {
    {.key = "collector.max_body_size",
     .type = WEFT_CONF_SIZE,
     .offset = OFF(max_body),
     .def = "16MiB",
     .min = 1024,
     .max = 1024.0 * 1024 * 1024,
     .help = "a span ingest request's body as sent, compressed or not (413 past it)"},
    {.key = "collector.max_decoded_size",
     .type = WEFT_CONF_SIZE,
     .offset = OFF(max_decoded),
     .def = "64MiB",
     .min = 1024,
     .max = 4.0 * 1024 * 1024 * 1024,
     .help = "a gzip'd ingest body once inflated (413 past it)"},
    {.key = "collector.queue_size",
     .type = WEFT_CONF_SIZE,
     .offset = OFF(queue_size),
     .def = "64MiB",
     .min = 1024 * 1024,
     .max = 16.0 * 1024 * 1024 * 1024,
     .help = "spans waiting to be written to the trace store; past it ingest answers 429 "
             "with Retry-After"},
    {.key = "collector.max_disk_size",
     .type = WEFT_CONF_SIZE,
     .offset = OFF(max_disk),
     .def = "1GiB",
     .min = 16.0 * 1024 * 1024,
     .max = 16.0 * 1024 * 1024 * 1024 * 1024,
     .help = "retention by size: the trace store's oldest spans are removed past it"},
    {.key = "collector.retention",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(retention),
     .def = "168h",
     .min = 60000,
     .max = 3650.0 * 86400000,
     .help = "retention by age: spans older than this are removed"},
    {.key = "collector.sync",
     .type = WEFT_CONF_BOOL,
     .offset = OFF(sync),
     .def = "true",
     .help = "fdatasync the trace store before acknowledging spans (survives power loss); "
             "false: survives a crash of weft, not of the machine"},
    {.key = "collector.autocomplete_keys",
     .type = WEFT_CONF_STRING,
     .offset = OFF(autocomplete_keys),
     .max = 4096,
     .env = "WEFT_AUTOCOMPLETE_KEYS",
     .check = check_autocomplete_keys,
     .help = "tag keys, comma-separated, whose values Zipkin's /api/v2/autocompleteValues "
             "offers (Zipkin's AUTOCOMPLETE_KEYS); empty: none, as in Zipkin"},
    {.key = "collector.autocomplete_max_values",
     .type = WEFT_CONF_UINT,
     .offset = OFF(autocomplete_max_values),
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .help = "distinct values kept per autocomplete key (and at most 1MiB of them); past it "
             "the newest blocks' values are offered"},
    {.key = "collector.forward.endpoint",
     .type = WEFT_CONF_STRING,
     .offset = OFF(fwd_endpoint),
     .def = "",
     .max = 2048,
     .check = check_fwd_endpoint,
     .help = "forward every span kept to this OTLP/HTTP traces endpoint (http://host:4318"
             "/v1/traces; the path defaults to /v1/traces) as protobuf; \"\": off"},
    {.key = "collector.forward.headers",
     .type = WEFT_CONF_STRING,
     .offset = OFF(fwd_headers),
     .def = "",
     .max = 4096,
     .check = check_fwd_headers,
     .secret = true,
     .help = "headers of every forward request, name=value,... (%-encoded values, as "
             "OTEL_EXPORTER_OTLP_HEADERS), e.g. for an API key"},
    {.key = "collector.forward.queue_size",
     .type = WEFT_CONF_SIZE,
     .offset = OFF(fwd_queue_size),
     .def = "32MiB",
     .min = 4096,
     .max = 16.0 * 1024 * 1024 * 1024,
     .help = "encoded spans waiting to be forwarded (queued, in flight, retrying); spans past "
             "it are dropped and counted, ingest never waits"},
    {.key = "collector.forward.batch_size",
     .type = WEFT_CONF_UINT,
     .offset = OFF(fwd_batch_size),
     .def = "1024",
     .min = 1,
     .max = 65536,
     .help = "spans per forward request at most"},
    {.key = "collector.forward.flush_interval",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(fwd_flush_interval),
     .def = "1s",
     .min = 1,
     .max = 60000,
     .help = "the longest a span waits for its forward batch to fill"},
    {.key = "collector.forward.timeout",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(fwd_timeout),
     .def = "10s",
     .min = 100,
     .max = 600000,
     .help = "one forward request, from connecting to the answer's end"},
    {.key = "collector.forward.max_retry_time",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(fwd_retry),
     .def = "5m",
     .min = 0,
     .max = 86400000,
     .help = "how long a batch that failed transiently (connection, 429, 502, 503, 504) is "
             "retried, with backoff, before it is dropped"},
    {.key = "collector.forward.max_in_flight",
     .type = WEFT_CONF_UINT,
     .offset = OFF(fwd_in_flight),
     .def = "4",
     .min = 1,
     .max = 64,
     .help = "forward requests at once (in flight or waiting to be retried)"},
    {.key = "collector.forward.shutdown_timeout",
     .type = WEFT_CONF_DURATION,
     .offset = OFF(fwd_shutdown),
     .def = "5s",
     .min = 0,
     .max = 300000,
     .help = "at shutdown, how long what is queued may take to be forwarded (the rest is "
             "dropped)"},
};

weft_conf_section_t weft_collector_conf_section(weft_collector_conf_t *conf)
{
    return (weft_conf_section_t){.name = "collector",
                                 .opts = options,
                                 .n = sizeof(options) / sizeof(options[0]),
                                 .target = conf};
}

/* ---- answers ---- */

void weft__col_error(weft_http_request_t *req, int status, int code, const char *msg)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_puts(&b, "{\"code\":");
    weft_buf_put_u64(&b, (uint64_t)code);
    weft_buf_puts(&b, ",\"message\":");
    weft_json_put_str(&b, msg, strlen(msg));
    weft_buf_putc(&b, '}');
    if (b.failed)
        weft_http_respond(req, 503, "application/json",
                          "{\"code\":8,\"message\":\"out of memory\"}", 36);
    else
        weft_http_respond(req, status, "application/json", b.p, b.len);
    weft_buf_free(&b);
}

/* google.rpc.Code numbers used here */
enum {
    RPC_INVALID_ARGUMENT = 3,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_UNAVAILABLE = 14,
    RPC_INTERNAL = 13
};

/* Answers status with the JSON body `head` N `mid` "msg" `tail` (what was refused). */
static void respond_rejected(weft_http_request_t *req, int status, const char *head, size_t n,
                             const char *mid, const char *msg, const char *tail)
{
    weft_buf_t b;
    weft_buf_init(&b, 4096);
    weft_buf_puts(&b, head);
    weft_buf_put_u64(&b, n);
    weft_buf_puts(&b, mid);
    weft_json_put_str(&b, msg, strlen(msg));
    weft_buf_puts(&b, tail);
    weft_http_respond(req, status, "application/json", b.failed ? "{}" : b.p, b.failed ? 2 : b.len);
    weft_buf_free(&b);
}

/* A protobuf length (at most 2 bytes here: the message is kept under 16 KiB). */
static size_t pb_len(uint8_t *out, size_t len)
{
    if (len < 128) {
        out[0] = (uint8_t)len;
        return 1;
    }
    out[0] = (uint8_t)((len & 0x7f) | 0x80);
    out[1] = (uint8_t)(len >> 7);
    return 2;
}

/* The outcome of a stored request (OTLP's ExportTraceServiceResponse, or Zipkin's 202). */
static void respond_ok(weft_http_request_t *req, int format, size_t rejected, const char *msg)
{
    if (format == COL_FMT_ZIPKIN) {
        /* Zipkin has no partial success: the valid spans are stored (202), and the body
         * says what was refused. */
        if (rejected == 0)
            weft_http_respond(req, 202, NULL, NULL, 0);
        else
            respond_rejected(req, 202, "{\"rejected\":", rejected, ",\"message\":", msg, "}");
        return;
    }
    if (format == COL_FMT_OTLP_JSON) {
        if (rejected == 0)
            weft_http_respond(req, 200, "application/json", "{}", 2);
        else
            respond_rejected(req, 200, "{\"partialSuccess\":{\"rejectedSpans\":\"", rejected,
                             "\",\"errorMessage\":", msg, "}}");
        return;
    }
    /* protobuf: ExportTraceServiceResponse { partial_success (1) { rejected_spans (1),
     * error_message (2) } } */
    if (rejected == 0) {
        weft_http_respond(req, 200, "application/x-protobuf", NULL, 0);
        return;
    }
    size_t ml = strlen(msg), k = 0, n = 0;
    if (ml > 255) ml = 255;
    uint8_t inner[300], out[310];
    inner[k++] = 0x08; /* field 1, varint */
    for (uint64_t v = rejected;; v >>= 7) {
        inner[k++] = (uint8_t)(v < 0x80 ? v : (v & 0x7f) | 0x80);
        if (v < 0x80) break;
    }
    inner[k++] = 0x12; /* field 2, bytes */
    k += pb_len(inner + k, ml);
    memcpy(inner + k, msg, ml);
    k += ml;
    out[n++] = 0x0a; /* field 1, bytes */
    n += pb_len(out + n, k);
    memcpy(out + n, inner, k);
    n += k;
    weft_http_respond(req, 200, "application/x-protobuf", (const char *)out, n);
}

/* ---- the ingest record shared with the store's writer ---- */

typedef struct ingest_s {
    atomic_int refs;
    weft_collector_t *c;
    weft_http_request_t *req; /* the worker's: NULL once answered or aborted */
    unsigned worker;
    int format;
    int status; /* the store's outcome, set by the writer before it posts */
    size_t rejected;
    char msg[256];
} ingest_t;

static void ingest_unref(ingest_t *in)
{
    if (atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) == 1) free(in);
}

static void on_ingest_abort(weft_http_request_t *req)
{
    ingest_t *in = req->data;
    in->req = NULL;
    ingest_unref(in);
}

/* On the request's worker: the store's outcome. */
static void ingest_finish(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg)
{
    ingest_t *in = arg;
    (void)h, (void)loop, (void)index;
    weft_http_request_t *req = in->req;
    if (req) {
        in->req = NULL;
        req->on_abort = NULL;
        if (in->status == 0) {
            respond_ok(req, in->format, in->rejected, in->msg);
        } else {
            weft_http_response_header(req, "Retry-After", "1");
            weft__col_error(req, 503, RPC_UNAVAILABLE,
                            "the trace store could not write the spans; retry later");
        }
        ingest_unref(in); /* the request's */
    }
    ingest_unref(in); /* the store's */
}

/* On the store's writer thread. A worker's post queue can be full for a moment: the
 * writer waits for it (this is back-pressure on the writer, bounded to about a second);
 * when the worker has stopped, the request is gone with it. */
static void ingest_stored(int status, void *arg)
{
    ingest_t *in = arg;
    in->status = status;
    for (int tries = 0; tries < 1000; tries++) {
        int rc = weft_host_post(in->c->host, in->worker, ingest_finish, in);
        if (rc == 0) return;
        if (rc != WEFT_ELIMIT) break;
        uv_sleep(1);
    }
    ingest_unref(in);
}

/* ---- decoding ---- */

static void count(weft_counter_t *ctr, size_t n)
{
    if (ctr && n) weft_counter_add(ctr, (double)n);
}

/* Whether the Content-Type's media type (before any ';') is t, in any case. */
static bool media_is(weft_str_t v, const char *t)
{
    size_t n = 0;
    while (n < v.len && v.base[n] != ';') n++;
    while (n > 0 && (v.base[n - 1] == ' ' || v.base[n - 1] == '\t')) n--;
    size_t tl = strlen(t);
    return n == tl && strncasecmp(v.base, t, tl) == 0;
}

/* Inflates a gzip body into out (at most max bytes). NULL, or why not. */
static const char *gunzip(const char *p, size_t n, weft_buf_t *out, uint64_t max)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return "out of memory";
    weft_buf_reset(out);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    const char *why = NULL;
    for (;;) {
        if (out->len >= max) {
            why = "over collector.max_decoded_size once inflated";
            break;
        }
        size_t want = max - out->len < 65536 ? max - out->len : 65536;
        if (!weft_buf_reserve(out, want)) {
            why = "out of memory";
            break;
        }
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = (uInt)want;
        int rc = inflate(&z, Z_NO_FLUSH);
        weft_buf_commit(out, want - z.avail_out);
        if (rc == Z_STREAM_END) {
            if (z.avail_in != 0) why = "data after the end of the gzip stream";
            break;
        }
        if (rc == Z_BUF_ERROR && z.avail_in == 0) {
            why = "the gzip stream is cut short";
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            why = rc == Z_MEM_ERROR ? "out of memory" : "the body is not valid gzip";
            break;
        }
    }
    inflateEnd(&z);
    return why;
}

static void on_ingest(weft_http_request_t *req, void *arg, bool zipkin)
{
    weft_collector_t *c = arg;
    col_worker_t *w = weft_host_state(req->loop, c->part);
    weft_str_t ct = weft_http_request_header(req, "Content-Type");
    int format;
    if (zipkin) {
        if (ct.len && !media_is(ct, "application/json")) {
            weft__col_error(req, 415, RPC_INVALID_ARGUMENT,
                            "Content-Type: only application/json is taken (Zipkin v2 JSON)");
            return;
        }
        format = COL_FMT_ZIPKIN;
    } else if (media_is(ct, "application/x-protobuf")) {
        format = COL_FMT_OTLP_PB;
    } else if (media_is(ct, "application/json")) {
        format = COL_FMT_OTLP_JSON;
    } else {
        weft__col_error(req, 415, RPC_INVALID_ARGUMENT,
                        "Content-Type: must be application/x-protobuf or application/json");
        return;
    }
    const char *body = req->body.base;
    size_t len = req->body.len;
    weft_str_t ce = weft_http_request_header(req, "Content-Encoding");
    if (ce.len && !(ce.len == 8 && strncasecmp(ce.base, "identity", 8) == 0)) {
        if (!(ce.len == 4 && strncasecmp(ce.base, "gzip", 4) == 0)) {
            weft__col_error(req, 415, RPC_INVALID_ARGUMENT, "Content-Encoding: only gzip is taken");
            return;
        }
        const char *why = gunzip(body, len, &w->inflated, c->max_decoded);
        if (why) {
            bool big = strncmp(why, "over", 4) == 0;
            char msg[160];
            snprintf(msg, sizeof(msg), "Content-Encoding: gzip: %s", why);
            if (big) {
                snprintf(msg, sizeof(msg),
                         "the body is over collector.max_decoded_size (%llu bytes) once "
                         "inflated",
                         (unsigned long long)c->max_decoded);
            }
            weft__col_error(req, big ? 413 : 400, RPC_INVALID_ARGUMENT, msg);
            return;
        }
        body = w->inflated.p ? w->inflated.p : "";
        len = w->inflated.len;
    }
    col_batch_t b;
    memset(&b, 0, sizeof(b));
    char err[512];
    err[0] = 0;
    weft_arena_t *a = &w->arena;
    /* the decoded spans take about as much room as their encoding; JSON's escapes and
     * protobuf's packed numbers can take more, hence the margin */
    a->limit = 4 * (size_t)len + (1u << 20);
    int rc;
    if (format == COL_FMT_OTLP_PB)
        rc = col_otlp_pb_decode((const uint8_t *)body, len, a, &b, err, sizeof(err));
    else if (format == COL_FMT_OTLP_JSON)
        rc = col_otlp_json_decode(body, len, a, &b, err, sizeof(err));
    else
        rc = col_zipkin_json_decode(body, len, a, &b, err, sizeof(err));
    if (rc != 0) {
        weft_arena_reset(a);
        count(c->requests_refused[format], 1);
        if (rc == WEFT_ELIMIT)
            weft__col_error(req, 413, RPC_INVALID_ARGUMENT, err[0] ? err : "too many spans");
        else if (rc == WEFT_EINVAL)
            weft__col_error(req, 400, RPC_INVALID_ARGUMENT, err[0] ? err : "invalid request");
        else
            weft__col_error(req, 503, RPC_INTERNAL, "out of memory");
        return;
    }
    count(c->spans_rejected[format], b.rejected);
    if (b.n == 0) { /* nothing to store: answer now */
        weft_arena_reset(a);
        if (format == COL_FMT_ZIPKIN && b.rejected > 0)
            weft__col_error(req, 400, RPC_INVALID_ARGUMENT, b.reject_msg);
        else
            respond_ok(req, format, b.rejected, b.reject_msg);
        return;
    }
    ingest_t *in = malloc(sizeof(*in));
    if (!in) {
        weft_arena_reset(a);
        weft__col_error(req, 503, RPC_INTERNAL, "out of memory");
        return;
    }
    atomic_init(&in->refs, 2);
    in->c = c;
    in->req = req;
    in->worker = weft_host_worker_index(req->loop);
    in->format = format;
    in->status = 0;
    in->rejected = b.rejected;
    snprintf(in->msg, sizeof(in->msg), "%s", b.reject_msg);
    if (c->deps) col_deps_add(c->deps, b.spans, b.n);
    rc = col_store_append(c->store, b.spans, b.n, ingest_stored, in);
    if (rc == 0 && c->fwd) col_fwd_add(c->fwd, b.spans, b.n);
    weft_arena_reset(a);
    if (rc != 0) {
        free(in);
        count(c->requests_refused[format], 1);
        if (rc == WEFT_ELIMIT) {
            weft_http_response_header(req, "Retry-After", "1");
            weft__col_error(req, 429, RPC_RESOURCE_EXHAUSTED,
                            "the trace store's write queue is full (collector.queue_size); "
                            "retry later");
        } else {
            weft_http_response_header(req, "Retry-After", "1");
            weft__col_error(req, 503, RPC_UNAVAILABLE,
                            rc == WEFT_ECLOSED ? "the collector is shutting down"
                                               : "out of memory");
        }
        return;
    }
    count(c->spans_accepted[format], b.n);
    req->data = in;
    req->on_abort = on_ingest_abort;
}

static void on_otlp(weft_http_request_t *req, void *arg)
{
    on_ingest(req, arg, false);
}

static void on_zipkin(weft_http_request_t *req, void *arg)
{
    on_ingest(req, arg, true);
}

/* ---- the host part: per-worker scratch ---- */

static void worker_init(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg)
{
    (void)h, (void)loop, (void)index;
    weft_collector_t *c = arg;
    col_worker_t *w = state;
    weft_arena_init(&w->arena, 256 * 1024, 4 * (size_t)c->max_decoded + (1u << 20));
    weft_buf_init(&w->inflated, (size_t)c->max_decoded);
}

static void worker_stop(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg)
{
    (void)h, (void)loop, (void)index, (void)arg;
    col_worker_t *w = state;
    weft_arena_free(&w->arena);
    weft_buf_free(&w->inflated);
}

/* ---- metrics ---- */

static const char *const fmt_names[3] = {"otlp_protobuf", "otlp_json", "zipkin_json"};

static double store_stat(void *arg, int which)
{
    col_store_stats_t st;
    col_store_stats(((weft_collector_t *)arg)->store, &st);
    switch (which) {
    case 0:
        return (double)st.spans;
    case 1:
        return (double)st.disk_bytes;
    case 2:
        return (double)st.memory_bytes;
    case 3:
        return (double)st.queued_bytes;
    default:
        return (double)st.expired;
    }
}
static double m_spans(void *arg)
{
    return store_stat(arg, 0);
}
static double m_disk(void *arg)
{
    return store_stat(arg, 1);
}
static double m_mem(void *arg)
{
    return store_stat(arg, 2);
}
static double m_queued(void *arg)
{
    return store_stat(arg, 3);
}
static double m_expired(void *arg)
{
    return store_stat(arg, 4);
}

/* Registers the store's gauges and the ingest counters (label format). */
static int register_metrics(weft_collector_t *c, weft_metrics_registry_t *m)
{
    struct {
        const char *name, *help;
        double (*fn)(void *);
        bool counter;
    } g[] = {
        {"weft_trace_store_spans", "spans in the trace store", m_spans, false},
        {"weft_trace_store_disk_bytes", "bytes of the trace store's files", m_disk, false},
        {"weft_trace_store_memory_bytes", "bytes of the trace store's indexes", m_mem, false},
        {"weft_trace_store_queued_bytes", "bytes waiting to be written", m_queued, false},
        {"weft_trace_store_expired_spans_total", "spans removed by retention", m_expired, true},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        int rc = g[i].counter ? weft_metrics_counter_fn(m, g[i].name, g[i].help, g[i].fn, c)
                              : weft_metrics_gauge_fn(m, g[i].name, g[i].help, g[i].fn, c);
        if (rc != 0) return rc;
    }
    struct {
        const char *name, *help;
        weft_counter_t **ctr;
    } f[] = {
        {"weft_collector_spans_accepted_total", "spans taken for storage, by ingest format",
         c->spans_accepted},
        {"weft_collector_spans_rejected_total",
         "spans refused one by one (partial success), by ingest format", c->spans_rejected},
        {"weft_collector_requests_refused_total",
         "ingest requests refused whole (invalid, too large, store full), by format",
         c->requests_refused},
    };
    static const char *const labels[] = {"format"};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        weft_metrics_family_t *fam;
        int rc = weft_metrics_counter_new(m, f[i].name, f[i].help, labels, 1, &fam);
        if (rc != 0) return rc;
        for (int k = 0; k < 3; k++) {
            const char *v[] = {fmt_names[k]};
            if (!(f[i].ctr[k] = weft_metrics_counter_child(fam, v))) return WEFT_ENOMEM;
        }
    }
    return 0;
}

/* ---- the dependency graph: loaded at the start, saved at the end ---- */

int weft__col_deps_open(weft_collector_t *c, const char *data_dir, uint64_t retention_ms, char *err,
                        size_t errlen)
{
    size_t n = strlen(data_dir) + sizeof("/dependencies.bin");
    if (!(c->deps_path = malloc(n))) {
        snprintf(err, errlen, "collector: out of memory");
        return WEFT_ENOMEM;
    }
    snprintf(c->deps_path, n, "%s/dependencies.bin", data_dir);
    col_deps_conf_t dc;
    col_deps_conf_init(&dc);
    dc.retention_ms = retention_ms;
    int rc = col_deps_new(&dc, &c->deps);
    if (rc != 0) {
        snprintf(err, errlen, "collector: dependency graph: %s", weft_strerror(rc));
        return rc;
    }
    char why[512];
    rc = col_deps_load(c->deps, c->deps_path, why, sizeof(why));
    /* a graph that cannot be read is rebuilt by the spans to come: said, not fatal */
    if (rc != 0 && rc != WEFT_ENOENT)
        weft_warn("collector", "dependency graph not loaded", "error=\"%s\"", why);
    return 0;
}

/* Once a minute the graph is saved, on libuv's thread pool (a write, an fsync and a rename
 * must not hold up the control loop), so that a crash loses at most a minute of it. */
#define DEPS_SAVE_MS 60000

static void deps_save_work(uv_work_t *w)
{
    weft_collector_t *c = w->data;
    char why[512];
    if (col_deps_save(c->deps, c->deps_path, why, sizeof(why)) != 0)
        weft_warn("collector", "dependency graph not saved", "error=\"%s\"", why);
}

static void deps_save_done(uv_work_t *w, int status)
{
    weft_collector_t *c = w->data;
    (void)status;
    c->deps_saving = false;
}

static void on_deps_timer(uv_timer_t *t)
{
    weft_collector_t *c = t->data;
    if (c->deps_saving) return;
    c->deps_work.data = c;
    if (uv_queue_work(t->loop, &c->deps_work, deps_save_work, deps_save_done) == 0)
        c->deps_saving = true;
}

static void part_start(weft_host_t *h, void *arg)
{
    weft_collector_t *c = arg;
    uv_loop_t *loop = weft_host_loop(h);
    if (uv_timer_init(loop, &c->deps_timer) == 0) {
        c->deps_timer.data = c;
        c->deps_timer_on = true;
        uv_timer_start(&c->deps_timer, on_deps_timer, DEPS_SAVE_MS, DEPS_SAVE_MS);
    }
}

static void part_stop(weft_host_t *h, void *arg)
{
    weft_collector_t *c = arg;
    (void)h;
    if (c->deps_timer_on) {
        uv_close((uv_handle_t *)&c->deps_timer, NULL);
        c->deps_timer_on = false;
    }
}

void weft__col_deps_close(weft_collector_t *c)
{
    if (c->deps) {
        char why[512];
        if (col_deps_save(c->deps, c->deps_path, why, sizeof(why)) != 0)
            weft_warn("collector", "dependency graph not saved", "error=\"%s\"", why);
        col_deps_free(c->deps);
        c->deps = NULL;
    }
    free(c->deps_path);
    c->deps_path = NULL;
}

/* ---- set-up ---- */

static int add_listener(weft_collector_t *c, const weft_collector_options_t *o, const char *host,
                        uint16_t port, bool zipkin, weft_http_server_t **out)
{
    weft_http_server_options_t so;
    if (o->http)
        so = *o->http;
    else
        weft_http_server_options_init(&so);
    so.host = host;
    so.port = port;
    int rc = weft_http_server_new(&so, weft_host_workers(c->host), out);
    if (rc != 0) return rc;
    weft_http_route_t r = {
        .handler = zipkin ? on_zipkin : on_otlp, .arg = c, .max_body = o->conf->max_body};
    rc = weft_http_server_route(*out, "POST", zipkin ? "/api/v2/spans" : "/v1/traces", &r);
    if (rc != 0) {
        weft_http_server_free(*out);
        *out = NULL;
    }
    return rc;
}

int weft_collector_new(weft_host_t *h, const weft_collector_options_t *o, weft_collector_t **out,
                       char *err, size_t errlen)
{
    weft_collector_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "collector: out of memory");
        return WEFT_ENOMEM;
    }
    c->host = h;
    c->max_body = o->conf->max_body;
    c->max_decoded = o->conf->max_decoded;
    c->queue_size = o->conf->queue_size;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/traces", o->data_dir);
    col_store_conf_t sc;
    col_store_conf_init(&sc);
    sc.dir = dir;
    sc.max_bytes = o->conf->max_disk;
    sc.max_age_ms = o->conf->retention;
    sc.queue_bytes = (size_t)o->conf->queue_size;
    sc.sync = o->conf->sync;
    int rc = col_store_open(&sc, &c->store, err, errlen);
    if (rc != 0) {
        free(c);
        return rc;
    }
    rc = col_ac_new(o->conf->autocomplete_keys, (size_t)o->conf->autocomplete_max_values, &c->ac);
    if (rc != 0) {
        snprintf(err, errlen, "collector: cannot set up the autocomplete keys: %s",
                 weft_strerror(rc));
        col_store_close(c->store);
        free(c);
        return rc;
    }
    rc = weft__col_deps_open(c, o->data_dir, o->conf->retention, err, errlen);
    if (rc == 0 && o->conf->fwd_endpoint && o->conf->fwd_endpoint[0])
        rc = weft__col_fwd_open(c, o, err, errlen);
    if (rc == 0 && o->metrics && (rc = register_metrics(c, o->metrics)) != 0)
        snprintf(err, errlen, "collector: cannot register its metrics: %s", weft_strerror(rc));
    if (rc == 0) {
        rc = add_listener(c, o, o->otlp_host, o->otlp_port, false, &c->otlp);
        if (rc == 0 && (rc = weft_host_add_http(h, c->otlp)) != 0) {
            weft_http_server_free(c->otlp);
            c->otlp = NULL;
        }
        if (rc == 0) rc = add_listener(c, o, o->zipkin_host, o->zipkin_port, true, &c->zipkin);
        if (rc == 0 && (rc = weft__col_query_routes(c, o->api)) != 0) {
            weft_http_server_free(c->zipkin);
            c->zipkin = NULL;
        }
        if (rc == 0 && (rc = weft_host_add_http(h, c->zipkin)) != 0) {
            weft_http_server_free(c->zipkin);
            c->zipkin = NULL;
        }
        if (rc == 0) {
            weft_host_part_t p = {.name = "collector",
                                  .state_size = sizeof(col_worker_t),
                                  .worker_init = worker_init,
                                  .worker_stop = worker_stop,
                                  .start = part_start,
                                  .stop = part_stop,
                                  .arg = c};
            int id = weft_host_add_part(h, &p);
            if (id < 0)
                rc = id;
            else
                c->part = id;
        }
        if (rc != 0)
            snprintf(err, errlen, "collector: cannot set up its listeners (%s:%u, %s:%u): %s",
                     o->otlp_host, o->otlp_port, o->zipkin_host, o->zipkin_port, weft_strerror(rc));
    }
    if (rc != 0) {
        col_fwd_free(c->fwd);
        weft__col_deps_close(c);
        col_store_close(c->store);
        col_ac_free(c->ac);
        free(c); /* listeners, when added, are the host's */
        return rc;
    }
    *out = c;
    return 0;
}

uint16_t weft_collector_otlp_port(const weft_collector_t *c)
{
    return weft_http_server_port(c->otlp);
}

uint16_t weft_collector_zipkin_port(const weft_collector_t *c)
{
    return weft_http_server_port(c->zipkin);
}

void weft_collector_free(weft_collector_t *c)
{
    if (!c) return;
    col_store_close(c->store); /* the last outcomes find their workers stopped */
    col_fwd_free(c->fwd);      /* a bounded final flush */
    weft__col_deps_close(c);
    col_ac_free(c->ac);
    free(c);
}
