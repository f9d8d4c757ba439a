/*
 * exporter.c - the OTLP/HTTP span exporter (see weft/otlp.h): worker threads hand finished
 * spans to an exporter thread that batches them, encodes them (OTLP/JSON or protobuf),
 * optionally gzips them and POSTs them, retrying what fails transiently.
 *
 * The module (src/otlp/) is its own because it needs the HTTP client, and the trace module
 * must not depend on http; the service module links it. Its seams: span.c copies a span,
 * encode_json.c and encode_pb.c write requests, options.c checks options and builds the
 * resource, env.c reads OpenTelemetry's environment; this file is the thread, the queue,
 * the batching, the requests, the retries and the shutdown.
 *
 * Threads. export_spans runs on whichever thread ended the span (worker loops, possibly
 * several at once). It copies what OTLP needs of the span into one malloc'd item sized for
 * it (span.c: a few hundred bytes for a server span, not the ~3 KB of weft_span_data_t's
 * fixed arrays) and posts it to the exporter's inbox (core/mpsc.h): a lock-free push, never
 * a wait. Posts do not wake the exporter one by one: the inbox wakes it when max_batch are
 * waiting, and a tick timer (every flush_interval_ms / 2) picks up the rest. Waking per
 * span cost an eventfd write on the worker and a context switch of the exporter thread for
 * nearly every span, which on a 2-core machine competed with the worker itself
 * (bench/otlp). Everything else runs on the exporter's own thread and uv loop: items join a
 * pending FIFO, and batches are encoded straight into one reused buffer (encode_json.c,
 * encode_pb.c: no tree of values, no allocation per value) and sent with the loop's
 * weft_http_client. The stats are relaxed atomics, read from any thread; with
 * weft_otlp_exporter_metrics they also go to a metrics registry.
 *
 * Bound. `held` counts the items that exist (in the inbox, pending, not yet encoded); a
 * producer reserves one before copying and gives up (dropped_queue_full) when max_queue are
 * held. So the exporter holds at most max_queue span copies, plus the encoded body of the one
 * request in flight, whatever the receiver does. The inbox's own limit is max_queue too, so
 * it never refuses a reserved item (the refusal is handled anyway).
 *
 * Sending. One request at a time. A batch (at most max_batch spans from the pending FIFO's
 * head) goes when max_batch are pending, when the oldest span has waited flush_interval_ms
 * (at most one tick in the inbox, then a one-shot timer armed for the rest), or at once
 * while shutting down. Items are freed as soon as they are encoded.
 *
 * Retries. The encoded body of the batch stays in `body` until the batch is done, so a
 * retry sends the same bytes again without re-encoding. A failed request is retried when
 * OTLP/HTTP calls the failure transient (429, 502, 503, 504; a timeout or a connection that
 * failed or closed early) and the batch has attempts left: the batch then waits on
 * retry_timer, for what Retry-After asks or for the jittered exponential backoff, and
 * nothing else is sent meanwhile (batches stay in order, one at a time; the queue bound
 * holds what arrives). A batch that fails for good (other status, malformed answer,
 * out of attempts, a Retry-After longer than retry_max_backoff_ms, encoding out of memory)
 * is dropped and counted. The first failed request after a success logs one warning; the
 * first success after failures logs one info line with the number of dropped batches.
 *
 * Shutdown (the tracer's thread): `accepting` goes false, an async wakes the exporter thread,
 * which drains (sends pending batches back to back) with a shutdown_timeout_ms timer. When
 * nothing is pending or in flight, or the timer fires (the call in flight is cancelled and
 * what is left is counted in dropped_failed), every handle is closed, the HTTP client
 * included; uv_run returns, the caller joins the thread and frees everything.
 *
 * Memory: the SDK never aborts; an allocation failure drops the span or batch and counts it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/errbuf.h"
#include "core/mpsc.h"
#include "otlp/otlp_int.h"
#include "weft/client.h"
#include "weft/log.h"
#include "weft/metrics.h"
#include "weft/otlp.h"
#include "weft/weft.h"

#define INBOX_BATCH 64 /* items the inbox hands over per loop iteration */

typedef struct otlp_s {
    weft_span_exporter_t base; /* handed out; base.arg points back here */
    char *host, *path;
    char *resource; /* the resource attributes, encoded once: JSON array members,
                       or (pb) Resource's KeyValue fields */
    size_t resource_len;
    bool pb;                  /* protocol http/protobuf */
    weft_http_header_t *hdrs; /* nhdrs request headers: Content-Type, then options.headers */
    size_t nhdrs;
    struct kvlist_s *hdr_list; /* what hdrs point into */
    uint16_t port;
    size_t max_queue, max_batch;
    uint64_t flush_ms, timeout_ms, shutdown_ms;
    uint64_t tick_ms; /* how often the exporter looks at its inbox */
    unsigned max_attempts;
    uint64_t backoff_initial_ms, backoff_max_ms;
    bool gzip;

    /* any thread */
    atomic_bool accepting;
    atomic_size_t held;
    atomic_ullong exported, dropped_queue_full, dropped_failed, batches_sent, batches_failed,
        retries;
    /* metrics (weft_otlp_exporter_metrics): set before spans flow, then only read */
    _Atomic(weft_counter_t *) m_exported, m_dropped_full, m_dropped_failed, m_sent, m_failed,
        m_retried;

    /* exporter thread */
    uv_thread_t thread;
    uv_loop_t loop;
    weft_inbox_t inbox;
    uv_async_t stop_async;
    uv_timer_t flush_timer, shutdown_timer, tick_timer, retry_timer;
    weft_http_client_t *client;
    bool have_loop, have_inbox, have_async, have_timers;
    item_t *head, *tail; /* pending FIFO */
    size_t npending;
    weft_buf_t body;  /* the current batch, encoded; its memory is reused */
    weft_buf_t zbody; /* gzip: body compressed, what is sent; its memory is reused */
    z_stream z;       /* gzip: one deflate state, reset per batch */
    bool have_z;
    weft_http_client_call_t *inflight;
    size_t batch_spans;  /* spans in the current batch (in flight or waiting to be retried) */
    unsigned attempts;   /* requests made for the current batch */
    bool retry_waiting;  /* the current batch waits on retry_timer */
    int inflight_status; /* of the request in flight, from on_head; 0 before */
    int64_t retry_after; /* its Retry-After in ms, or -1 (none, or not understood) */
    bool draining, closing, finished;
    uint64_t deadline;     /* while draining: uv_now when the shutdown timer fires */
    bool failing;          /* a request failed since the last success: no more warnings */
    uint64_t burst_failed; /* batches dropped since the last warning */
} otlp_t;

/* Adds v to a stat and to its counter in the metrics registry, if there is one. */
static void count(atomic_ullong *stat, _Atomic(weft_counter_t *) *metric, uint64_t v)
{
    atomic_fetch_add_explicit(stat, v, memory_order_relaxed);
    weft_counter_t *c = atomic_load_explicit(metric, memory_order_acquire);
    if (c) weft_counter_add(c, (double)v);
}

static void release(otlp_t *x, item_t *it)
{
    free(it);
    atomic_fetch_sub_explicit(&x->held, 1, memory_order_relaxed);
}

static int otlp_export(const weft_span_data_t *const *spans, size_t n, void *arg)
{
    otlp_t *x = arg;
    size_t refused = 0;
    for (size_t i = 0; i < n; i++) {
        if (!atomic_load_explicit(&x->accepting, memory_order_acquire)) {
            refused++;
            continue;
        }
        /* reserve a place first, so that at most max_queue copies ever exist */
        if (atomic_fetch_add_explicit(&x->held, 1, memory_order_relaxed) >= x->max_queue) {
            atomic_fetch_sub_explicit(&x->held, 1, memory_order_relaxed);
            refused++;
            continue;
        }
        item_t *it = weft__otlp_item_new(spans[i]);
        if (!it) {
            atomic_fetch_sub_explicit(&x->held, 1, memory_order_relaxed);
            refused++;
            continue;
        }
        if (weft_inbox_post(&x->inbox, &it->node) != 0) {
            release(x, it);
            refused++;
        }
    }
    if (refused) count(&x->dropped_queue_full, &x->m_dropped_full, refused);
    return refused ? WEFT_ENOSPC : 0;
}

/* The ExportTraceServiceRequest for the first n pending items, in x->body; false when out
 * of memory (or over the buffer's limit). */
static bool encode_batch(otlp_t *x, item_t *first, size_t n)
{
    weft_buf_t *b = &x->body;
    weft_buf_reset(b);
    if (x->pb)
        weft__otlp_pb_batch(b, x->resource, x->resource_len, first, n);
    else
        weft__otlp_json_batch(b, x->resource, first, n);
    return !b->failed;
}

/* ------------------------------------------------------------------------------------ */
/* sending (exporter thread)                                                            */

static void maybe_send(otlp_t *x);
static void check_done(otlp_t *x);

/* Logs the first failed request of a run of failures. */
static void warn_failing(otlp_t *x, const char *why, const char *action)
{
    if (x->failing || x->closing) return;
    x->failing = true;
    weft_warn("otlp", "export failing", "endpoint=%s:%u%s reason=%s spans=%zu attempt=%u action=%s",
              x->host, x->port, x->path, why, x->batch_spans, x->attempts, action);
}

/* The current batch is dropped: its spans count as failed. */
static void batch_failed(otlp_t *x, const char *why)
{
    warn_failing(x, why, "drop");
    count(&x->batches_failed, &x->m_failed, 1);
    count(&x->dropped_failed, &x->m_dropped_failed, x->batch_spans);
    x->burst_failed++;
    x->batch_spans = 0;
}

static void batch_sent(otlp_t *x)
{
    count(&x->batches_sent, &x->m_sent, 1);
    count(&x->exported, &x->m_exported, x->batch_spans);
    x->batch_spans = 0;
    if (x->failing)
        weft_info("otlp", "export recovered", "endpoint=%s:%u%s dropped_batches=%" PRIu64, x->host,
                  x->port, x->path, x->burst_failed);
    x->failing = false;
    x->burst_failed = 0;
}

static void send_body(otlp_t *x);

static void on_retry(uv_timer_t *t)
{
    otlp_t *x = t->data;
    x->retry_waiting = false;
    send_body(x);
    if (!x->inflight && !x->retry_waiting) maybe_send(x); /* failed at once, for good */
}

/* The request of the current batch failed (err, or a status that is not 2xx): retries it
 * later, or drops it. */
static void attempt_failed(otlp_t *x, int err, int status, int64_t retry_after)
{
    char why[32];
    weft__otlp_failure_name(why, sizeof(why), err, status);
    if (x->closing || !weft__otlp_transient(err, status) || x->attempts >= x->max_attempts) {
        batch_failed(x, why);
        return;
    }
    uint64_t wait = weft__otlp_backoff_ms(x->backoff_initial_ms, x->backoff_max_ms, x->attempts);
    if (retry_after >= 0) {
        if ((uint64_t)retry_after > x->backoff_max_ms) {
            batch_failed(x, "retry_after_too_long");
            return;
        }
        wait = (uint64_t)retry_after;
    }
    /* Shutting down: a wait that outlasts the deadline would only delay the exit, and a
     * receiver that nothing answers for is not coming back within it. */
    if (x->draining && (uv_now(&x->loop) + wait >= x->deadline || weft__otlp_unreachable(err))) {
        batch_failed(x, why);
        return;
    }
    warn_failing(x, why, "retry");
    count(&x->retries, &x->m_retried, 1);
    x->retry_waiting = true;
    uv_timer_start(&x->retry_timer, on_retry, wait, 0);
}

static void on_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    otlp_t *x = arg;
    x->inflight_status = status;
    x->retry_after = weft__otlp_retry_after(status, h, n);
}

static void on_done(weft_http_client_call_t *call, int err, void *arg)
{
    otlp_t *x = arg;
    int status = x->inflight_status;
    x->inflight = NULL;
    if (err == 0 && status >= 200 && status < 300)
        batch_sent(x);
    else
        attempt_failed(x, err, err == 0 ? status : 0, err == 0 ? x->retry_after : -1);
    if (x->closing) return; /* cancelled by abort_all, which carries on */
    maybe_send(x);
}

/* Sends the current batch (x->body, x->batch_spans) once more. */
static void send_body(otlp_t *x)
{
    weft_http_client_req_t r = {.method = "POST",
                                .host = x->host,
                                .port = x->port,
                                .target = x->path,
                                .headers = x->hdrs,
                                .nheaders = x->nhdrs,
                                .body = x->gzip ? x->zbody.p : x->body.p,
                                .body_len = x->gzip ? x->zbody.len : x->body.len,
                                .timeout_ms = x->timeout_ms};
    static const weft_http_client_cbs_t cbs = {.on_head = on_head, .on_done = on_done};
    x->attempts++;
    x->inflight_status = 0;
    x->retry_after = -1;
    int err = weft_http_client_request(x->client, &r, &cbs, x, &x->inflight); /* copies it */
    if (err != 0) {
        x->inflight = NULL;
        attempt_failed(x, err, 0, -1);
    }
}

/* x->body gzip-compressed into x->zbody, in one deflate call into room deflateBound
 * promises; false when out of memory. */
static bool compress_body(otlp_t *x)
{
    weft_buf_reset(&x->zbody);
    if (x->body.len > UINT32_MAX / 2 || deflateReset(&x->z) != Z_OK) return false;
    uLong bound = deflateBound(&x->z, (uLong)x->body.len);
    if (!weft_buf_reserve(&x->zbody, bound)) return false;
    x->z.next_in = (Bytef *)x->body.p;
    x->z.avail_in = (uInt)x->body.len;
    x->z.next_out = (Bytef *)x->zbody.p;
    x->z.avail_out = (uInt)bound;
    if (deflate(&x->z, Z_FINISH) != Z_STREAM_END) return false;
    x->zbody.len = bound - x->z.avail_out;
    return true;
}

/* Encodes the first max_batch pending spans (freeing them) and sends them. */
static void send_batch(otlp_t *x)
{
    size_t n = x->npending < x->max_batch ? x->npending : x->max_batch;
    bool encoded = encode_batch(x, x->head, n);
    for (size_t i = 0; i < n; i++) {
        item_t *it = x->head;
        x->head = it->next;
        release(x, it);
    }
    if (!x->head) x->tail = NULL;
    x->npending -= n;
    x->batch_spans = n;
    x->attempts = 0;
    if (!encoded) {
        weft_buf_free(&x->body); /* whatever it grew to, it did not fit */
        batch_failed(x, "ENOMEM");
        return;
    }
    if (x->gzip && !compress_body(x)) {
        weft_buf_free(&x->zbody);
        batch_failed(x, "gzip");
        return;
    }
    send_body(x);
}

static void on_flush(uv_timer_t *t)
{
    otlp_t *x = t->data;
    maybe_send(x);
}

/* Posts wake the loop only when max_batch are waiting (weft_inbox_set_wake); this timer
 * picks up the rest every tick_ms. */
static void on_tick(uv_timer_t *t)
{
    otlp_t *x = t->data;
    weft_inbox_poll(&x->inbox);
}

/* Sends every batch that is due, while no request is in flight; otherwise arms the flush
 * timer for the moment the oldest pending span is due. While draining, finishes once
 * everything is sent. */
static void maybe_send(otlp_t *x)
{
    while (!x->closing && !x->inflight && !x->retry_waiting && x->head) {
        /* a span reached the pending FIFO at most tick_ms after it was queued */
        uint64_t now = uv_now(&x->loop), due = x->head->queued_ms + x->flush_ms - x->tick_ms;
        if (x->npending < x->max_batch && !x->draining && now < due) {
            uv_timer_start(&x->flush_timer, on_flush, due - now, 0);
            return;
        }
        uv_timer_stop(&x->flush_timer);
        send_batch(x);
    }
    if (x->draining) check_done(x);
}

static void on_item(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    otlp_t *x = arg;
    item_t *it = WEFT_MPSC_ITEM(n, item_t, node);
    it->next = NULL;
    it->queued_ms = uv_now(&x->loop);
    if (x->tail)
        x->tail->next = it;
    else
        x->head = it;
    x->tail = it;
    x->npending++;
    /* a new batch is due when it fills up; otherwise the timer is already armed */
    if (x->npending == 1 || x->npending >= x->max_batch || x->draining) maybe_send(x);
}

static void on_discard(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    otlp_t *x = arg;
    count(&x->dropped_failed, &x->m_dropped_failed, 1);
    release(x, WEFT_MPSC_ITEM(n, item_t, node));
}

/* ------------------------------------------------------------------------------------ */
/* shutdown (exporter thread)                                                           */

/* Closes every handle; the loop then runs out of work and the thread returns. Also used by
 * weft_otlp_exporter_new to undo a partial start (before the thread exists). */
static void finish(otlp_t *x)
{
    if (x->finished) return;
    x->finished = x->closing = true;
    while (x->head) {
        item_t *it = x->head;
        x->head = it->next;
        count(&x->dropped_failed, &x->m_dropped_failed, 1);
        release(x, it);
    }
    x->tail = NULL;
    x->npending = 0;
    if (x->have_inbox) weft_inbox_close(&x->inbox, NULL);
    if (x->have_async) uv_close((uv_handle_t *)&x->stop_async, NULL);
    if (x->have_timers) {
        uv_close((uv_handle_t *)&x->flush_timer, NULL);
        uv_close((uv_handle_t *)&x->shutdown_timer, NULL);
        uv_close((uv_handle_t *)&x->tick_timer, NULL);
        uv_close((uv_handle_t *)&x->retry_timer, NULL);
    }
    if (x->client) weft_http_client_close(x->client, NULL, NULL);
}

/* The shutdown deadline: cancel the request in flight, drop what is left. */
static void abort_all(otlp_t *x)
{
    x->closing = true;
    if (x->inflight) weft_http_client_cancel(x->inflight); /* on_done counts it */
    if (x->retry_waiting) {
        x->retry_waiting = false;
        batch_failed(x, "shutdown");
    }
    finish(x);
}

static void check_done(otlp_t *x)
{
    if (x->draining && !x->closing && !x->inflight && !x->retry_waiting && !x->head &&
        weft_mpsc_size(&x->inbox.q) == 0)
        finish(x);
}

static void on_shutdown_timer(uv_timer_t *t)
{
    otlp_t *x = t->data;
    if (x->head || x->inflight || x->retry_waiting)
        weft_warn("otlp", "shutdown timed out; dropping what was not sent",
                  "endpoint=%s:%u%s spans=%zu timeout_ms=%" PRIu64, x->host, x->port, x->path,
                  x->npending + x->batch_spans, x->shutdown_ms);
    abort_all(x);
}

static void on_stop(uv_async_t *a)
{
    otlp_t *x = a->data;
    if (x->draining) return;
    /* everything in the inbox joins the pending FIFO first (no producer is left, so the
     * loop ends; bounded all the same), so that it leaves in full batches rather than as
     * each inbox batch arrives */
    for (size_t i = 0; i <= x->max_queue / INBOX_BATCH && weft_mpsc_size(&x->inbox.q) > 0; i++)
        weft_inbox_poll(&x->inbox);
    x->draining = true;
    if (x->shutdown_ms == 0) {
        abort_all(x);
        return;
    }
    uv_timer_start(&x->shutdown_timer, on_shutdown_timer, x->shutdown_ms, 0);
    x->deadline = uv_now(&x->loop) + x->shutdown_ms;
    /* a retry due after the deadline would never be made: the batch is dropped now */
    if (x->retry_waiting && uv_timer_get_due_in(&x->retry_timer) >= x->shutdown_ms) {
        uv_timer_stop(&x->retry_timer);
        x->retry_waiting = false;
        batch_failed(x, "shutdown");
    }
    maybe_send(x); /* finishes at once when nothing is queued */
}

static void run(void *arg)
{
    otlp_t *x = arg;
    weft_metrics_thread_register();
    uv_run(&x->loop, UV_RUN_DEFAULT);
    weft_buf_free(&x->body);
    weft_buf_free(&x->zbody);
}

/* What weft_otlp_exporter_new allocated besides the loop and the thread. */
static void otlp_free(otlp_t *x)
{
    free(x->host);
    free(x->path);
    free(x->resource);
    free(x->hdrs);
    free(x->hdr_list);
    if (x->have_z) deflateEnd(&x->z);
    free(x);
}

/* The tracer's thread: no producer is left (weft_tracer_free's contract). */
static void otlp_shutdown(void *arg)
{
    otlp_t *x = arg;
    atomic_store_explicit(&x->accepting, false, memory_order_release);
    uv_async_send(&x->stop_async);
    uv_thread_join(&x->thread);
    uv_loop_close(&x->loop);
    otlp_free(x);
}

/* ------------------------------------------------------------------------------------ */
/* creation                                                                             */

/* Content-Type (and Content-Encoding with gzip), then the headers of h (the last of a name
 * wins), into x->hdrs, which points into h (kept in x->hdr_list); false when out of memory. */
static bool headers_build(otlp_t *x, kvlist_t *h, bool gzip)
{
    x->hdr_list = h;
    x->hdrs = malloc((2 + h->n) * sizeof(*x->hdrs));
    if (!x->hdrs) return false;
    x->hdrs[0] = x->pb ? (weft_http_header_t){{"Content-Type", 12}, {"application/x-protobuf", 22}}
                       : (weft_http_header_t){{"Content-Type", 12}, {"application/json", 16}};
    x->nhdrs = 1;
    if (gzip) x->hdrs[x->nhdrs++] = (weft_http_header_t){{"Content-Encoding", 16}, {"gzip", 4}};
    for (size_t i = 0; i < h->n; i++)
        if (!weft__otlp_kvlist_overridden(h, i, true))
            x->hdrs[x->nhdrs++] = (weft_http_header_t){{h->key[i], strlen(h->key[i])},
                                                       {h->value[i], strlen(h->value[i])}};
    return true;
}

weft_span_exporter_t *weft_otlp_exporter_new(const weft_otlp_options_t *o, char *err, size_t errlen)
{
    kvlist_t *rs, *hs;
    if (weft__otlp_options_check(o, &rs, &hs, err, errlen) != 0) return NULL;
    otlp_t *x = calloc(1, sizeof(*x));
    if (!x) {
        free(rs);
        free(hs);
        weft__errf(err, errlen, WEFT_ENOMEM, "otlp exporter: out of memory");
        return NULL;
    }
    x->host = strdup(o->host);
    x->path = strdup(o->path);
    x->pb = o->protocol == WEFT_OTLP_HTTP_PROTOBUF;
    x->resource = weft__otlp_resource_encode(o, rs, x->pb, &x->resource_len);
    bool have_headers = headers_build(x, hs, o->gzip);
    x->port = o->port;
    x->max_queue = o->max_queue;
    x->max_batch = o->max_batch;
    x->flush_ms = o->flush_interval_ms;
    x->timeout_ms = o->timeout_ms;
    x->shutdown_ms = o->shutdown_timeout_ms;
    x->max_attempts = o->max_attempts;
    x->backoff_initial_ms = o->retry_initial_backoff_ms;
    x->backoff_max_ms = o->retry_max_backoff_ms;
    x->gzip = o->gzip;
    /* half the flush interval: a span then waits at most one tick in the inbox and
     * flush_ms - tick_ms in the pending FIFO */
    x->tick_ms = o->flush_interval_ms / 2 ? o->flush_interval_ms / 2 : 1;
    if (x->tick_ms > o->flush_interval_ms) x->tick_ms = o->flush_interval_ms;
    weft_buf_init(&x->body, 0);
    weft_buf_init(&x->zbody, 0);
    atomic_init(&x->accepting, true);
    atomic_init(&x->held, 0);
    atomic_init(&x->exported, 0);
    atomic_init(&x->dropped_queue_full, 0);
    atomic_init(&x->dropped_failed, 0);
    atomic_init(&x->batches_sent, 0);
    atomic_init(&x->batches_failed, 0);
    atomic_init(&x->retries, 0);
    atomic_init(&x->m_exported, NULL);
    atomic_init(&x->m_dropped_full, NULL);
    atomic_init(&x->m_dropped_failed, NULL);
    atomic_init(&x->m_sent, NULL);
    atomic_init(&x->m_failed, NULL);
    atomic_init(&x->m_retried, NULL);
    x->base.export_spans = otlp_export;
    x->base.shutdown = otlp_shutdown;
    x->base.arg = x;

    /* Everything is set up here, before the thread starts (creating it orders these writes
     * before its first read); from then on only the exporter thread touches the loop. */
    int e = 0;
    const char *what = "out of memory";
    if (!x->host || !x->path || !x->resource || !have_headers) {
        e = WEFT_ENOMEM;
        goto out;
    }
    what = "zlib";
    /* level 1: most of the shrinking at a fraction of the CPU of the default level on
     * OTLP/JSON (bench/otlp); 15 + 16: a 32 KiB window with the gzip wrapper */
    if (x->gzip && deflateInit2(&x->z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        e = WEFT_ENOMEM;
        goto out;
    }
    x->have_z = x->gzip;
    what = "uv_loop_init";
    if ((e = uv_loop_init(&x->loop)) != 0) goto out;
    x->have_loop = true;
    weft_http_client_options_t co;
    weft_http_client_options_init(&co);
    co.connect_timeout_ms = o->timeout_ms;
    co.request_timeout_ms = o->timeout_ms;
    co.head_timeout_ms = o->timeout_ms; /* OTEL_EXPORTER_OTLP_TIMEOUT bounds the export whole */
    co.body_timeout_ms = o->timeout_ms;
    co.max_idle_per_host = 1;  /* one request at a time: one connection is all it needs */
    co.idle_timeout_ms = 4000; /* below common server idle timeouts (5 s and up): a POST is
                                  not retried on a connection the server just closed */
    co.max_conns_per_host = 2;
    co.max_queue = 4;
    co.max_hosts = 1;
    what = "http client";
    if ((e = weft_http_client_new(&x->loop, &co, &x->client)) != 0) goto out;
    what = "inbox";
    if ((e = weft_inbox_init(&x->inbox, &x->loop, x->max_queue, INBOX_BATCH, on_item, on_discard,
                             x)) != 0)
        goto out;
    x->have_inbox = true;
    weft_inbox_set_wake(&x->inbox, x->max_batch);
    what = "uv_async_init";
    if ((e = uv_async_init(&x->loop, &x->stop_async, on_stop)) != 0) goto out;
    x->stop_async.data = x;
    x->have_async = true;
    uv_timer_init(&x->loop, &x->flush_timer);
    uv_timer_init(&x->loop, &x->shutdown_timer);
    uv_timer_init(&x->loop, &x->tick_timer);
    uv_timer_init(&x->loop, &x->retry_timer);
    x->flush_timer.data = x->shutdown_timer.data = x->tick_timer.data = x->retry_timer.data = x;
    x->have_timers = true;
    uv_timer_start(&x->tick_timer, on_tick, x->tick_ms, x->tick_ms);
    what = "uv_thread_create";
    if ((e = uv_thread_create(&x->thread, run, x)) != 0) goto out;
    return &x->base;

out:
    weft__errf(err, errlen, e, "otlp exporter: %s: %s", what, weft_strerror(e));
    if (x->have_loop) {
        finish(x);
        uv_run(&x->loop, UV_RUN_DEFAULT);
        uv_loop_close(&x->loop);
    }
    otlp_free(x);
    return NULL;
}

int weft_otlp_exporter_stats(const weft_span_exporter_t *e, weft_otlp_stats_t *out)
{
    if (!e || e->export_spans != otlp_export || !out) return WEFT_EINVAL;
    otlp_t *x = e->arg;
    out->exported = atomic_load_explicit(&x->exported, memory_order_relaxed);
    out->dropped_queue_full = atomic_load_explicit(&x->dropped_queue_full, memory_order_relaxed);
    out->dropped_failed = atomic_load_explicit(&x->dropped_failed, memory_order_relaxed);
    out->batches_sent = atomic_load_explicit(&x->batches_sent, memory_order_relaxed);
    out->batches_failed = atomic_load_explicit(&x->batches_failed, memory_order_relaxed);
    out->retries = atomic_load_explicit(&x->retries, memory_order_relaxed);
    return 0;
}

int weft_otlp_exporter_metrics(weft_span_exporter_t *e, weft_metrics_registry_t *reg)
{
    if (!e || e->export_spans != otlp_export || !reg) return WEFT_EINVAL;
    otlp_t *x = e->arg;
    static const char *const reason[] = {"reason"}, *const result[] = {"result"};
    weft_metrics_family_t *spans, *dropped, *batches;
    int err;
    if ((err = weft_metrics_counter_new(reg, "weft_otlp_spans_exported_total",
                                        "Spans the OTLP receiver accepted (2xx).", NULL, 0,
                                        &spans)) != 0 ||
        (err = weft_metrics_counter_new(reg, "weft_otlp_spans_dropped_total",
                                        "Spans not exported: queue_full (max_queue spans were "
                                        "held) or failed (their batch failed, or shutdown ran "
                                        "out of time).",
                                        reason, 1, &dropped)) != 0 ||
        (err = weft_metrics_counter_new(reg, "weft_otlp_batches_total",
                                        "Export requests by result: sent (2xx), retried (failed, "
                                        "sent again later) or failed (failed, batch dropped).",
                                        result, 1, &batches)) != 0)
        return err;
    weft_counter_t *c[6] = {
        weft_metrics_counter_child(spans, NULL),
        weft_metrics_counter_child(dropped, (const char *const[]){"queue_full"}),
        weft_metrics_counter_child(dropped, (const char *const[]){"failed"}),
        weft_metrics_counter_child(batches, (const char *const[]){"sent"}),
        weft_metrics_counter_child(batches, (const char *const[]){"failed"}),
        weft_metrics_counter_child(batches, (const char *const[]){"retried"}),
    };
    for (int i = 0; i < 6; i++)
        if (!c[i]) return WEFT_ENOMEM;
    /* What was counted before starts the counters, so they equal the stats from here on
     * (up to updates racing with this call, which may be counted in one but not the
     * other). */
    weft_counter_add(c[0], (double)atomic_load_explicit(&x->exported, memory_order_relaxed));
    weft_counter_add(c[1],
                     (double)atomic_load_explicit(&x->dropped_queue_full, memory_order_relaxed));
    weft_counter_add(c[2], (double)atomic_load_explicit(&x->dropped_failed, memory_order_relaxed));
    weft_counter_add(c[3], (double)atomic_load_explicit(&x->batches_sent, memory_order_relaxed));
    weft_counter_add(c[4], (double)atomic_load_explicit(&x->batches_failed, memory_order_relaxed));
    weft_counter_add(c[5], (double)atomic_load_explicit(&x->retries, memory_order_relaxed));
    atomic_store_explicit(&x->m_exported, c[0], memory_order_release);
    atomic_store_explicit(&x->m_dropped_full, c[1], memory_order_release);
    atomic_store_explicit(&x->m_dropped_failed, c[2], memory_order_release);
    atomic_store_explicit(&x->m_sent, c[3], memory_order_release);
    atomic_store_explicit(&x->m_failed, c[4], memory_order_release);
    atomic_store_explicit(&x->m_retried, c[5], memory_order_release);
    return 0;
}
