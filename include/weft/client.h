/**
 * weft/client.h - HTTP/1.1 client on a libuv loop, with keep-alive pools per host:port.
 *
 * A client belongs to one loop (one thread) and is used only there; its pools are that
 * loop's, so a gateway worker, a health checker or an exporter each reuse their own
 * connections without locks. No function here may be called from another thread.
 *
 * A request is answered through callbacks: on_head once with the status and headers,
 * on_body for each piece of the body as it arrives (streamed), on_done exactly once at the
 * end, with 0 or an error. If weft_http_client_request fails, no callback runs (libuv's
 * rule). Callbacks never run from inside a weft_http_client_* call, except on_done from
 * weft_http_client_cancel and weft_http_client_close, which say so.
 *
 * Framing: Content-Length, chunked, and read-until-close responses; HEAD, 204 and 304 have no
 * body; 1xx interim responses (100 Continue) are skipped. A connection goes back to the pool
 * only after a complete, framed response that allows keep-alive, with nothing extra after
 * it, once the whole request was handed to the kernel; otherwise it is closed. A request
 * sent on a pooled connection that the server had already closed (the keep-alive race: the
 * connection fails before any byte of the response) is retried once on a fresh connection
 * when its method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) and its body was
 * not streamed.
 *
 * Cost: in steady state (pooled connections, recycled call objects) a request allocates
 * nothing and is sent with one write (head and body together).
 */
#ifndef WEFT_CLIENT_H
#define WEFT_CLIENT_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_client_s weft_http_client_t;
typedef struct weft_http_client_call_s weft_http_client_call_t;

/** Options; weft_http_client_options_init fills the defaults. */
typedef struct weft_http_client_options_s {
    uint64_t connect_timeout_ms; /* TCP connect (and name lookup); default 2000; 0: none */
    uint64_t request_timeout_ms; /* whole exchange, queueing included; default 30000; 0: none */
    uint64_t idle_timeout_ms;    /* a pooled idle connection is closed after; default 60000;
                                    0: never */
    unsigned max_idle_per_host;  /* idle connections kept per host:port; default 64; 0: no
                                    keep-alive */
    unsigned max_conns_per_host; /* open connections per host:port; default 1024 */
    unsigned max_queue;          /* requests waiting for a connection, per host:port; default
                                    4096; beyond it weft_http_client_request fails with
                                    WEFT_ELIMIT */
    unsigned max_hosts;          /* distinct host:port pools; default 4096 (WEFT_ELIMIT) */
    size_t max_response_head;    /* bytes of header names and values; default 64 KiB */
    unsigned max_headers;        /* response headers; default 100 */
    size_t max_body_buffer;      /* streamed request body bytes buffered per call before
                                    weft_http_client_write asks to wait; default 256 KiB,
                                    at most 1 GiB */
} weft_http_client_options_t;

/** How the request body is given. */
typedef enum weft_http_client_body_e {
    WEFT_HTTP_CLIENT_BODY_FIXED = 0,  /* body/body_len, copied at once (the default) */
    WEFT_HTTP_CLIENT_BODY_LENGTH = 1, /* streamed with _write/_end, Content-Length:
                                         content_length */
    WEFT_HTTP_CLIENT_BODY_CHUNKED = 2 /* streamed with _write/_end, chunked encoding */
} weft_http_client_body_t;

/** weft_http_client_req_t.timeout_ms value for "no deadline at all". */
#define WEFT_HTTP_CLIENT_NO_TIMEOUT UINT64_MAX

/**
 * One request. Everything is copied by weft_http_client_request; nothing needs to outlive
 * the call to it.
 */
typedef struct weft_http_client_req_s {
    const char *method; /* a token: "GET", "POST", ... */
    const char *host;   /* numeric IPv4/IPv6 address (no lookup) or a name (looked up with
                           uv_getaddrinfo for each new connection; the first IPv4
                           address is used, else the first address) */
    uint16_t port;
    const char *target;                /* "/path?query": no spaces or control characters */
    const weft_http_header_t *headers; /* extra headers. Host is added unless given here;
                                          Content-Length and Transfer-Encoding are the
                                          client's (giving them is WEFT_EINVAL) */
    size_t nheaders;
    weft_http_client_body_t body_mode;
    const void *body; /* FIXED: the body (copied, at most 1 GiB); NULL when body_len is 0 */
    size_t body_len;
    uint64_t content_length; /* LENGTH: the exact number of bytes _write will give */
    uint64_t timeout_ms;     /* 0: the client's request_timeout_ms;
                                WEFT_HTTP_CLIENT_NO_TIMEOUT: none */
} weft_http_client_req_t;

/**
 * Callbacks of a call; all optional but on_done. `call` is valid from
 * weft_http_client_request until on_done returns; after that it must not be used.
 */
typedef struct weft_http_client_cbs_s {
    /** The final response's status and headers (views valid only during the callback;
     *  headers may be NULL when n is 0). May pause, cancel, or do nothing. */
    void (*on_head)(weft_http_client_call_t *call, int status, const weft_http_header_t *headers,
                    size_t n, void *arg);
    /** A piece of the response body (valid only during the callback), in order. After
     *  weft_http_client_pause no more pieces come until weft_http_client_resume. */
    void (*on_body)(weft_http_client_call_t *call, const char *data, size_t len, void *arg);
    /** Exactly once. err: 0 (the whole response was delivered), WEFT_ETIMEDOUT (connect or
     *  request deadline), -ECONNREFUSED, -ENETUNREACH, ... (connect), WEFT_ENOENT (name not
     *  found), WEFT_ECONNRESET (the connection closed before the response ended), WEFT_EPARSE
     *  (malformed response), WEFT_ELIMIT (response head over max_response_head or
     *  max_headers), WEFT_ECANCELED (cancel or client close), WEFT_ENOMEM. */
    void (*on_done)(weft_http_client_call_t *call, int err, void *arg);
    /** Streamed request bodies: after weft_http_client_write returned 1, once every buffered
     *  byte has been handed to the kernel (unless on_done comes first); write again from
     *  here. */
    void (*on_drain)(weft_http_client_call_t *call, void *arg);
} weft_http_client_cbs_t;

/** Counters since creation (monotonic) and gauges (now), for metrics. */
typedef struct weft_http_client_stats_s {
    uint64_t requests;  /* accepted by weft_http_client_request */
    uint64_t rejected;  /* refused with WEFT_ELIMIT (queue or host limit) */
    uint64_t responses; /* calls that ended with 0 */
    uint64_t conns_opened, conns_reused, conns_closed;
    uint64_t retries;              /* keep-alive race retries */
    uint64_t fail_connect;         /* refused, unreachable, name lookup, before connecting */
    uint64_t fail_connect_timeout; /* connect_timeout_ms expired */
    uint64_t fail_timeout;         /* the request's deadline expired */
    uint64_t fail_io;              /* reset or closed while the exchange ran */
    uint64_t fail_response;        /* malformed response, or over a response limit */
    uint64_t fail_canceled;        /* weft_http_client_cancel or close */
    uint64_t fail_other;           /* out of memory */
    uint64_t conns_open, conns_idle, queued, in_flight; /* gauges */
} weft_http_client_stats_t;

/** Fills o with the defaults above. */
WEFT_EXTERN void weft_http_client_options_init(weft_http_client_options_t *o);

/**
 * Creates a client on loop; call on the loop's thread. o may be NULL (defaults); it is
 * copied. Returns 0 and *out, WEFT_EINVAL (a zero max_conns_per_host, max_headers,
 * max_hosts, max_response_head or max_body_buffer, max_response_head >= 4 GiB, or
 * max_body_buffer > 1 GiB),
 * WEFT_ENOMEM, or a libuv error. An idle client does not keep the loop alive; pooled
 * connections do (they are read to notice a server closing them) until they time out.
 * The caller owns the client until weft_http_client_close.
 */
WEFT_EXTERN int weft_http_client_new(struct uv_loop_s *loop, const weft_http_client_options_t *o,
                                     weft_http_client_t **out);

/**
 * Starts a request. Returns 0: callbacks will run (never before this returns), and *out,
 * if out is not NULL, names the call until on_done. Or, with no callback ever: WEFT_EINVAL
 * (bad method, host, target, header, body mode), WEFT_ELIMIT (per-host queue full, or
 * max_hosts reached), WEFT_ECLOSED (the client is closing), WEFT_ENOMEM.
 * A streamed body (LENGTH, CHUNKED) is given afterwards with weft_http_client_write and
 * weft_http_client_end; bytes written before the connection is up are buffered.
 */
WEFT_EXTERN int weft_http_client_request(weft_http_client_t *c, const weft_http_client_req_t *r,
                                         const weft_http_client_cbs_t *cbs, void *arg,
                                         weft_http_client_call_t **out);

/**
 * Appends len bytes of a streamed request body (copied). Returns 0 (taken; write on), 1
 * (taken, but max_body_buffer bytes now wait: write again after on_drain), WEFT_EAGAIN
 * (nothing taken: the buffer was already full), WEFT_ELIMIT (len alone is over
 * max_body_buffer: split it), WEFT_EINVAL (more than content_length in total), WEFT_ESTATE
 * (not a streamed body, or after _end), WEFT_ENOMEM. A response may arrive, and on_done
 * run, before the body is complete; the call must not be used after on_done.
 */
WEFT_EXTERN int weft_http_client_write(weft_http_client_call_t *call, const void *data, size_t len);

/**
 * Ends a streamed request body. Returns 0, WEFT_EINVAL (LENGTH: fewer bytes than
 * content_length were written; nothing changes), WEFT_ESTATE (not streamed, or ended).
 */
WEFT_EXTERN int weft_http_client_end(weft_http_client_call_t *call);

/** Ends a call now: on_done(WEFT_ECANCELED) runs before this returns. Its connection is
 *  closed (its state is unknown). */
WEFT_EXTERN void weft_http_client_cancel(weft_http_client_call_t *call);

/**
 * Stops delivering the response of a call (backpressure for streamed bodies): no on_body
 * and no on_done(0) until weft_http_client_resume; reading from the socket stops, so at
 * most one read buffer (16 KiB) is held. Deadlines keep running. Callable from on_head and
 * on_body. Resume delivers what was held from the next loop iteration on.
 */
WEFT_EXTERN void weft_http_client_pause(weft_http_client_call_t *call);
WEFT_EXTERN void weft_http_client_resume(weft_http_client_call_t *call);

/** Counters and gauges now. */
WEFT_EXTERN weft_http_client_stats_t weft_http_client_stats(const weft_http_client_t *c);

/** Result of weft_http_client_get: err as on_done; status 0 if no response head came. The
 *  body is valid only during the callback. */
typedef void (*weft_http_client_get_cb)(int err, int status, const char *body, size_t len,
                                        void *arg);

/**
 * Simple GET: url is "http://host[:port]/path?query", or the same without "http://"
 * (host may be "[v6addr]"; port defaults to 80; path to "/"). The body is collected up to
 * max_body bytes (0: 1 MiB); a longer body ends the call with WEFT_ELIMIT. Returns 0 (cb
 * runs once, later), WEFT_EINVAL (bad url), WEFT_EUNSUPPORTED (https or another scheme),
 * or any error of weft_http_client_request (then cb never runs). *out, if out is not NULL,
 * may be passed to weft_http_client_cancel until cb runs.
 */
WEFT_EXTERN int weft_http_client_get(weft_http_client_t *c, const char *url, size_t max_body,
                                     weft_http_client_get_cb cb, void *arg,
                                     weft_http_client_call_t **out);

/**
 * Fails every queued and in-flight call (on_done runs for each before this returns, with
 * WEFT_ECANCELED), closes every connection, and frees the client once all its handles are
 * closed; then on_closed(arg) runs (may be NULL). Callable from a callback. After this,
 * weft_http_client_request returns WEFT_ECLOSED until on_closed; after on_closed the
 * client must not be used.
 */
WEFT_EXTERN void weft_http_client_close(weft_http_client_t *c, void (*on_closed)(void *arg),
                                        void *arg);

#ifdef __cplusplus
}
#endif
#endif
