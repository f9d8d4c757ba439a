/**
 * weft/client.h - HTTP/1.1 client on a libuv loop, with keep-alive pools per host:port.
 *
 * A client belongs to one loop (one thread) and is used only there; its pools are that
 * loop's, so a gateway worker, a health checker or an exporter each reuse their own
 * connections without locks. A request is answered through callbacks: on_head once with the
 * status and headers, on_body for each piece of the body as it arrives (streamed), on_done
 * exactly once at the end, with 0 or an error. If weft_http_client_request fails, no
 * callback runs.
 *
 * Framing: Content-Length, chunked, and read-until-close responses; HEAD, 204 and 304 have no
 * body; 1xx interim responses are skipped. A connection goes back to the pool only after a
 * complete response that allows keep-alive. A request sent on a pooled connection that the
 * server had already closed (no byte of response received) is retried once on a fresh
 * connection when its method is idempotent.
 */
#ifndef WEFT_CLIENT_H
#define WEFT_CLIENT_H

#include <uv.h>

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_client_s weft_http_client_t;
typedef struct weft_http_client_call_s weft_http_client_call_t;

typedef struct weft_http_client_options_s {
    uint64_t connect_timeout_ms; /* default 2000 */
    uint64_t request_timeout_ms; /* whole exchange, default 30000; 0: none */
    uint64_t idle_timeout_ms;    /* pooled idle connection, default 60000 */
    unsigned max_idle_per_host;  /* default 64 */
    unsigned max_conns_per_host; /* default 1024 */
    unsigned max_queue;          /* requests waiting for a connection, per host; default 4096 */
    size_t max_response_head;    /* default 64 KiB (else WEFT_EPARSE) */
    unsigned max_headers;        /* default 100 */
} weft_http_client_options_t;

typedef struct weft_http_client_req_s {
    const char *method; /* "GET" */
    const char *host;   /* numeric address or name (resolved asynchronously) */
    uint16_t port;
    const char *target;                /* "/path?query" */
    const weft_http_header_t *headers; /* extra headers (Host and Content-Length are added) */
    size_t nheaders;
    const void *body; /* copied; may be NULL */
    size_t body_len;
    uint64_t timeout_ms; /* 0: the client's request_timeout_ms */
} weft_http_client_req_t;

typedef struct weft_http_client_cbs_s {
    void (*on_head)(weft_http_client_call_t *call, int status, const weft_http_header_t *headers,
                    size_t n, void *arg);
    void (*on_body)(weft_http_client_call_t *call, const char *data, size_t len, void *arg);
    /** err: 0, WEFT_ETIMEDOUT, -ECONNREFUSED, WEFT_ECONNRESET, WEFT_EPARSE, WEFT_ECANCELED... */
    void (*on_done)(weft_http_client_call_t *call, int err, void *arg);
} weft_http_client_cbs_t;

typedef struct weft_http_client_stats_s {
    uint64_t conns_opened, conns_reused, conns_closed, requests, failures, retries, timeouts;
} weft_http_client_stats_t;

WEFT_EXTERN void weft_http_client_options_init(weft_http_client_options_t *o);

/** Creates a client on loop (call on the loop's thread). Returns 0, WEFT_ENOMEM, uv errors. */
WEFT_EXTERN int weft_http_client_new(uv_loop_t *loop, const weft_http_client_options_t *o,
                                     weft_http_client_t **out);

/**
 * Starts a request; strings in r are copied. Returns 0 (callbacks will run; *out, if not
 * NULL, identifies the call until on_done), WEFT_EINVAL, WEFT_ELIMIT (queue full),
 * WEFT_ECLOSED (client closing), WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_http_client_request(weft_http_client_t *c, const weft_http_client_req_t *r,
                                         const weft_http_client_cbs_t *cbs, void *arg,
                                         weft_http_client_call_t **out);

/** Ends a call now: on_done(WEFT_ECANCELED) runs before this returns. */
WEFT_EXTERN void weft_http_client_cancel(weft_http_client_call_t *call);

/** Stops / resumes reading the response of a call (backpressure for streamed bodies). */
WEFT_EXTERN void weft_http_client_pause(weft_http_client_call_t *call);
WEFT_EXTERN void weft_http_client_resume(weft_http_client_call_t *call);

/** Counters since creation. */
WEFT_EXTERN weft_http_client_stats_t weft_http_client_stats(const weft_http_client_t *c);

/**
 * Fails every queued and in-flight call with WEFT_ECANCELED, closes every connection and
 * frees the client; on_closed(arg) runs once every handle is closed (may be NULL).
 */
WEFT_EXTERN void weft_http_client_close(weft_http_client_t *c, void (*on_closed)(void *arg),
                                        void *arg);

#ifdef __cplusplus
}
#endif
#endif
