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
 * body; 1xx interim responses (100 Continue) are skipped; 101 Switching Protocols is final
 * and ends the HTTP exchange on its connection (on_upgrade hands the connection over). A connection
 * goes back to the pool only after a complete, framed response that allows keep-alive, with nothing
 * extra after it, once the whole request was handed to the kernel; otherwise it is closed. A
 * request sent on a pooled connection that the server had already closed (the keep-alive race: the
 * connection fails before any byte of the response) is retried once on a fresh connection
 * when its method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) and its body was
 * not streamed.
 *
 * Timeouts, each its own error so that a proxy answers 504 and counts which (per host, see
 * weft_http_client_host_stats): connect_timeout_ms (the lookup, then each address's connect:
 * WEFT_ETIMEDOUT_CONNECT), head_timeout_ms (from the last byte of the request handed to the
 * kernel to the end of the final response head: WEFT_ETIMEDOUT_HEAD), body_timeout_ms (the
 * longest gap between two reads of the response body: WEFT_ETIMEDOUT_BODY), and
 * request_timeout_ms (the whole exchange, queueing included: WEFT_ETIMEDOUT). Deadlines are
 * checked every 50 ms, so one fires up to 50 ms late, never early.
 *
 * Names: each new connection looks the name up (uv_getaddrinfo) and tries the addresses in
 * the order given (IPv6 and IPv4 alike, at most 8), moving to the next when a connect is
 * refused, unreachable or times out, each with its own connect_timeout_ms, within the call's
 * request deadline; when every address fails the call ends with the last one's error.
 *
 * Zero copy of headers: request headers are read from the caller's array once, to serialize
 * the request into its output buffer; on_head's names and values point into the
 * connection's read buffer, where the head arrived. A proxy passes the headers of one side
 * to the other with no copy in between.
 *
 * Reads: connections are read in order of arrival (an edge-triggered epoll per client, as
 * the server's), not through libuv's level-triggered one.
 *
 * Cost: in steady state (pooled connections, recycled call objects) a request allocates
 * nothing and is sent with one write (head and body together).
 */
#ifndef WEFT_CLIENT_H
#define WEFT_CLIENT_H

#include <stdbool.h>

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_client_s weft_http_client_t;
typedef struct weft_http_client_call_s weft_http_client_call_t;

/** Options; weft_http_client_options_init fills the defaults. */
typedef struct weft_http_client_options_s {
    uint64_t connect_timeout_ms; /* name lookup, then each address's TCP connect; default
                                    2000; 0: none (WEFT_ETIMEDOUT_CONNECT) */
    uint64_t head_timeout_ms;    /* from the request's last byte handed to the kernel to the
                                    end of the final response head (1xx interim heads do not
                                    stop it); default 60000; 0: none (WEFT_ETIMEDOUT_HEAD) */
    uint64_t body_timeout_ms;    /* longest gap between two reads of the response body, not
                                    counting time paused; default 60000; 0: none
                                    (WEFT_ETIMEDOUT_BODY) */
    uint64_t request_timeout_ms; /* whole exchange, queueing included; default 30000; 0: none
                                    (WEFT_ETIMEDOUT) */
    uint64_t idle_timeout_ms;    /* a pooled idle connection is closed after; default 60000;
                                    0: never */
    unsigned max_idle_per_host;  /* idle connections kept per host:port; default 64; 0: no
                                    keep-alive */
    unsigned max_conns_per_host; /* open connections per host:port; default 1024 */
    unsigned max_queue;          /* requests waiting for a connection, per host:port; default
                                    4096; beyond it weft_http_client_request fails with
                                    WEFT_ELIMIT */
    unsigned max_hosts;          /* distinct host:port pools; default 4096 (WEFT_ELIMIT; an
                                    unused pool is freed first to make room) */
    uint64_t host_keep_ms;       /* a pool with no call and no connection, and its counters,
                                    are kept about this long; default 60000; 0: freed at
                                    once */
    size_t max_response_head;    /* bytes of header names and values; default 64 KiB. The
                                    read buffer grows to hold a head from its first header
                                    on, up to this plus 32 KiB for framing and whitespace
                                    (else WEFT_ELIMIT) */
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
 * One request. weft_http_client_request serializes it into the call's output buffer (the
 * one copy of the headers and a FIXED body); nothing needs to outlive the call to it.
 */
typedef struct weft_http_client_req_s {
    const char *method; /* a token: "GET", "POST", ... */
    const char *host;   /* numeric IPv4/IPv6 address (no lookup) or a name (looked up with
                           uv_getaddrinfo for each new connection; its addresses are tried
                           in order, see above). Names the pool: "localhost" and
                           "127.0.0.1" are two pools */
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
    /* Overrides of the client's options of the same names (a gateway's per-route or
     * per-cluster settings): 0, the client's; WEFT_HTTP_CLIENT_NO_TIMEOUT, none. */
    uint64_t connect_timeout_ms;
    uint64_t head_timeout_ms;
    uint64_t body_timeout_ms;
    /* true: the caller vouches that every header name is a token and no value holds CR, LF
     * or NUL, as weft's server parser has checked for a request a proxy forwards: they are
     * not checked again (Content-Length, Transfer-Encoding and Host still are looked for). */
    bool headers_checked;
    /* Per-call bounds of the host:port's pool (a gateway's per-upstream limits): the call
     * queues rather than open a connection while the pool has max_conns open (0: the
     * client's max_conns_per_host; never above it), and is refused with WEFT_ELIMIT when it
     * would queue behind max_queue others (0: the client's max_queue;
     * WEFT_HTTP_CLIENT_NO_QUEUE: it may not wait at all). */
    unsigned max_conns;
    unsigned max_queue;
} weft_http_client_req_t;

/** weft_http_client_req_t.max_queue value for "refused rather than queued". */
#define WEFT_HTTP_CLIENT_NO_QUEUE ((unsigned)-1)

/**
 * Callbacks of a call; all optional but on_done. `call` is valid from
 * weft_http_client_request until on_done returns; after that it must not be used.
 */
typedef struct weft_http_client_cbs_s {
    /** The final response's status and headers: views into the connection's read buffer,
     *  valid only during the callback (headers may be NULL when n is 0). May pause, cancel,
     *  or do nothing. */
    void (*on_head)(weft_http_client_call_t *call, int status, const weft_http_header_t *headers,
                    size_t n, void *arg);
    /** A piece of the response body (valid only during the callback), in order. After
     *  weft_http_client_pause no more pieces come until weft_http_client_resume. */
    void (*on_body)(weft_http_client_call_t *call, const char *data, size_t len, void *arg);
    /** Exactly once. err: 0 (the whole response was delivered); a timeout, all four a 504
     *  for a proxy: WEFT_ETIMEDOUT_CONNECT, WEFT_ETIMEDOUT_HEAD, WEFT_ETIMEDOUT_BODY,
     *  WEFT_ETIMEDOUT (the request deadline); -ECONNREFUSED, -ENETUNREACH, ... (connect: the
     *  last address's error), WEFT_ENOENT (name not found), WEFT_ECONNRESET (the connection
     *  closed before the response ended), WEFT_EPARSE (malformed response; a 101 to a
     *  request without an Upgrade field is one, RFC 9110 15.2.2), WEFT_ELIMIT
     *  (response head over max_response_head or max_headers), WEFT_ECANCELED (cancel or
     *  client close), WEFT_ENOMEM. */
    void (*on_done)(weft_http_client_call_t *call, int err, void *arg);
    /** Streamed request bodies: after weft_http_client_write returned 1, once every buffered
     *  byte has been handed to the kernel (unless on_done comes first); write again from
     *  here. */
    void (*on_drain)(weft_http_client_call_t *call, void *arg);
    /** A 101 Switching Protocols answer to a request that asked for an upgrade (it sent
     *  `Connection: upgrade` and `Upgrade: X`): after on_head(101), the connection leaves
     *  the client (never pooled) and is the caller's. fd: a duplicate descriptor of its
     *  socket (non-blocking, close-on-exec), the caller's to close; data/len: the bytes the
     *  server sent after the head (the new protocol's; valid only during the callback).
     *  on_done(0) follows. Without on_upgrade, a 101 ends the call with on_done(0) and its
     *  connection is closed. A 101 before every byte of the request was handed to the
     *  kernel ends the call with WEFT_EPARSE. */
    void (*on_upgrade)(weft_http_client_call_t *call, int fd, const char *data, size_t len,
                       void *arg);
} weft_http_client_cbs_t;

/** Counters since creation (monotonic) and gauges (now), for metrics. */
typedef struct weft_http_client_stats_s {
    uint64_t requests;  /* accepted by weft_http_client_request */
    uint64_t rejected;  /* refused with WEFT_ELIMIT (queue or host limit) */
    uint64_t responses; /* calls that ended with 0 */
    uint64_t conns_opened, conns_reused, conns_closed;
    uint64_t retries;              /* keep-alive race retries */
    uint64_t failovers;            /* connects that moved on to a name's next address */
    uint64_t responses_5xx;        /* final response heads with status 500-599 */
    uint64_t fail_connect;         /* refused, unreachable, name lookup, before connecting */
    uint64_t fail_connect_timeout; /* WEFT_ETIMEDOUT_CONNECT */
    uint64_t fail_head_timeout;    /* WEFT_ETIMEDOUT_HEAD */
    uint64_t fail_body_timeout;    /* WEFT_ETIMEDOUT_BODY */
    uint64_t fail_timeout;         /* WEFT_ETIMEDOUT: the request's deadline expired */
    uint64_t fail_io;              /* reset or closed while the exchange ran */
    uint64_t fail_response;        /* malformed response, or over a response limit */
    uint64_t fail_canceled;        /* weft_http_client_cancel or close */
    uint64_t fail_other;           /* out of memory */
    uint64_t conns_open, conns_idle, queued, in_flight; /* gauges */
} weft_http_client_stats_t;

/**
 * One host:port's counters, for load balancing and outlier detection (a proxy's view of an
 * upstream). Counters count from the pool's creation; a pool unused for host_keep_ms is
 * freed, and its counters start again from zero when it comes back.
 */
typedef struct weft_http_client_host_stats_s {
    uint64_t requests;               /* accepted for this host:port */
    uint64_t responses;              /* calls that ended with 0, whatever their status */
    uint64_t heads;                  /* final response heads received (the latency samples) */
    uint64_t responses_5xx;          /* of them, status 500-599: counted apart from errors */
    uint64_t fail_connect;           /* refused, unreachable, lookup: every address failed */
    uint64_t fail_connect_timeout;   /* WEFT_ETIMEDOUT_CONNECT */
    uint64_t fail_head_timeout;      /* WEFT_ETIMEDOUT_HEAD */
    uint64_t fail_body_timeout;      /* WEFT_ETIMEDOUT_BODY */
    uint64_t fail_timeout;           /* WEFT_ETIMEDOUT (request deadline) */
    uint64_t fail_io;                /* reset: the connection closed or failed mid-exchange */
    uint64_t fail_response;          /* malformed response, or over a response limit */
    uint64_t fail_canceled;          /* cancel or client close: not the host's doing */
    uint64_t fail_other;             /* out of memory: not the host's doing */
    uint64_t failovers;              /* connects that moved on to the name's next address */
    uint64_t consecutive_failures;   /* calls in a row that ended with an error of the host's
                                        (connect, timeouts, reset, response) or got a 5xx;
                                        0 again after a call that got a status below 500 and
                                        ended with 0. A cancel or out-of-memory counts only
                                        after a 5xx head */
    uint64_t consecutive_errors;     /* the same for errors alone (5xx not counted); 0 again
                                        after any call that ended with 0 */
    uint64_t latency_last_us;        /* time to the final response head of the last call that
                                        got one: from the request's first byte handed to its
                                        connection (queueing and connect not included) */
    uint64_t latency_ewma_us;        /* moving average of the same, weight 1/8 to the newest
                                        (new = old + (sample - old) / 8); the first sample as is */
    unsigned conns_open, conns_idle; /* gauges: connections now */
    unsigned queued;                 /* gauge: calls waiting for a connection */
    unsigned in_flight;              /* gauge: calls accepted and not ended, queued included */
} weft_http_client_host_stats_t;

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
 * From on_head: whether bytes after the head (the body's first) are read already, so that
 * on_body or on_done comes before the loop runs again unless the call is paused. A proxy
 * then writes its client the head and the first body bytes in one system call
 * (weft_http_response_cork). False outside on_head.
 */
WEFT_EXTERN bool weft_http_client_more_read(const weft_http_client_call_t *call);

/**
 * Stops delivering the response of a call (backpressure for streamed bodies): no on_body
 * and no on_done(0) until weft_http_client_resume; reading from the socket stops, so at
 * most one read buffer (16 KiB, or the head's size) is held. The request deadline keeps
 * running; the head and body timeouts wait (the gap is the caller's, not the server's), and
 * the body's starts again at resume. Callable from on_head and on_body. Resume delivers
 * what was held from the next loop iteration on.
 */
WEFT_EXTERN void weft_http_client_pause(weft_http_client_call_t *call);
WEFT_EXTERN void weft_http_client_resume(weft_http_client_call_t *call);

/** Counters and gauges now. */
WEFT_EXTERN weft_http_client_stats_t weft_http_client_stats(const weft_http_client_t *c);

/**
 * The counters of host:port (spelled as in weft_http_client_req_t.host) into *out. Returns
 * 0, or WEFT_ENOENT when the client has no pool for it (never used, or freed after
 * host_keep_ms unused). One hash lookup and a copy; loop thread only.
 */
WEFT_EXTERN int weft_http_client_host_stats(const weft_http_client_t *c, const char *host,
                                            uint16_t port, weft_http_client_host_stats_t *out);

/** A pool's counters for weft_http_client_foreach_host; host and st are valid during the
 *  call only. */
typedef void (*weft_http_client_host_fn)(const char *host, uint16_t port,
                                         const weft_http_client_host_stats_t *st, void *arg);

/** Calls fn for every host:port pool, in no particular order. fn must not start requests
 *  or close the client. Loop thread only. */
WEFT_EXTERN void weft_http_client_foreach_host(const weft_http_client_t *c,
                                               weft_http_client_host_fn fn, void *arg);

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
