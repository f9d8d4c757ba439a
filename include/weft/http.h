/**
 * weft/http.h - the HTTP/1.1 server: listeners on worker loops, requests, responses.
 *
 * A weft_http_server_t holds the configuration, the routes and the filters (its request
 * pipeline: weft_http_filter_t). It binds its sockets once (weft_http_server_bind, on any
 * thread: errors come back at once), then each worker loop attaches to one of them
 * (weft_http_server_attach, on that loop's thread) and serves its own connections: nothing on the
 * request path is shared between loops.
 *
 * Requests: the server parses the head (llhttp), routes it, enforces the limits, reads the
 * body (buffered up to the route's limit, or streamed to the handler), and calls the route's
 * handler on the loop's thread. The handler answers with weft_http_respond() (one call) or
 * weft_http_response_start/_write/_end (streamed), now or later from the same thread.
 * Every request handed to a handler must be finished exactly once, by weft_http_respond or
 * weft_http_response_end; until then it stays valid even if the client goes away (those
 * calls then return WEFT_ECLOSED and release it). Responses on one connection go out in
 * request order (pipelining). A handler that holds a request for long (a blocking query,
 * a stream) sets req->on_event to learn at once when the client closes the connection,
 * when the server begins to shut down, and when the request's timer fires.
 *
 * Malformed requests never reach a handler: the server answers 400/408/413/414/417/431/
 * 501/505 with a short JSON body and `Connection: close`, then closes the connection
 * without reading another request from it.
 */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <stdbool.h>
#include <time.h>

#include "weft/common.h"
#include "weft/config.h"
#include "weft/router.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_server_s weft_http_server_t;
typedef struct weft_http_request_s weft_http_request_t;

/** Handler of a route: runs on the loop thread that read the request. */
typedef void (*weft_http_handler_fn)(weft_http_request_t *req, void *arg);

/** Called with each piece of a streamed request body; len 0 marks the end of the body. */
typedef void (*weft_http_body_fn)(weft_http_request_t *req, const char *data, size_t len);

/** Called when a streamed response can take more data (its buffer fell below 64 KiB). */
typedef void (*weft_http_drain_fn)(weft_http_request_t *req);

/** Called once if the connection closes before the handler finished the response. */
typedef void (*weft_http_abort_fn)(weft_http_request_t *req);

/** A route: what runs for a method + path pattern. The server copies it. */
typedef struct weft_http_route_s {
    weft_http_handler_fn handler;
    void *arg;
    uint64_t max_body; /* request body limit in bytes; 0: the server's max_body */
    bool stream_body;  /* call the handler at the end of the head; the body goes to
                          req->on_body as it arrives, instead of being buffered */
} weft_http_route_t;

/** Limits and timeouts; weft_http_server_options_init fills the documented defaults. */
typedef struct weft_http_server_options_s {
    const char *host;                /* listen address, numeric IPv4 or IPv6; default 127.0.0.1 */
    uint16_t port;                   /* 0 picks a free port (see weft_http_server_port) */
    unsigned backlog;                /* listen backlog; default 511 */
    size_t max_head;                 /* request line + headers; default 64 KiB (else 431) */
    size_t max_target;               /* request target; default 8 KiB (else 414) */
    unsigned max_headers;            /* header lines; default 100 (else 431) */
    uint64_t max_body;               /* default request body limit; default 1 MiB (else 413) */
    unsigned max_connections;        /* per loop; default 10000; past it: 503 and close */
    uint64_t head_timeout_ms;        /* whole request head must arrive; default 10000 (408) */
    uint64_t idle_timeout_ms;        /* idle keep-alive connection; default 60000 */
    uint64_t body_timeout_ms;        /* between two reads of a body; default 30000 (408) */
    uint64_t write_timeout_ms;       /* a write that makes no progress; default 30000 */
    uint64_t shutdown_timeout_ms;    /* graceful shutdown deadline; default 10000 */
    uint64_t shutdown_delay_ms;      /* for weft_service (the server does not read it): on
                                        SIGTERM, keep serving this long, /health answering 503
                                        "draining", before the shutdown starts; default 0 */
    unsigned max_keepalive_requests; /* per connection; 0: no limit (the default) */
    unsigned busy_poll_us;           /* for weft_service (the server does not read it): the
                                        workers' busy polling (weft_workers_set_busy_poll),
                                        longest spin; default 30; 0: off */
    unsigned busy_poll_share;        /* for weft_service: the most a worker spins, in percent
                                        of the time it spends working; default 25 */
} weft_http_server_options_t;

/** What a filter's on_request returns. */
typedef enum weft_http_filter_result_e {
    WEFT_HTTP_NEXT = 0, /* go on: the next filter, then the route's handler */
    WEFT_HTTP_DONE = 1  /* the filter answered the request (or holds it, and will): neither
                           the filters after it nor the handler run */
} weft_http_filter_result_t;

/**
 * A filter: one link of a server's request pipeline, as in H2O (handlers produce a
 * response, filters change it, loggers record it). A server runs its filters in the order
 * they were added: on_request before the handler (after the head is parsed and routed;
 * route may be NULL for 404/405); on_head, in reverse order, just before a response head is
 * written (it may add headers with weft_http_response_header; not called for the engine's
 * own error answers to malformed requests); on_end, in reverse order, once the response is
 * complete or the request aborted (status is what was sent or would have been; aborted is
 * true when the client went away first). on_end also runs for malformed requests (method
 * and path may then be empty) and for requests a filter answered, so loggers see every
 * request. Every callback is optional and runs on the loop thread that serves the request.
 * Filters know nothing of each other: metrics, tracing, the access log, token checks, rate
 * limits and proxying each add their own.
 */
typedef struct weft_http_filter_s {
    const char *name; /* for logs; copied */
    weft_http_filter_result_t (*on_request)(weft_http_request_t *req, void *arg);
    void (*on_head)(weft_http_request_t *req, int status, void *arg);
    void (*on_end)(weft_http_request_t *req, int status, bool aborted, void *arg);
    void *arg;
} weft_http_filter_t;

/** The most filters one server has. */
#define WEFT_HTTP_FILTERS_MAX 16

/** Why a handler that holds a request is told something (weft_http_request_t.on_event). */
typedef enum weft_http_event_e {
    WEFT_HTTP_EVENT_CLIENT_CLOSED = 1, /* the client closed its side of the connection (its
                                          FIN arrived): nobody may be waiting any more. The
                                          request stays valid and must still be finished;
                                          a reset connection is reported by on_abort */
    WEFT_HTTP_EVENT_SHUTDOWN = 2,      /* the server began its graceful shutdown: answer now
                                          rather than at http.shutdown_timeout */
    WEFT_HTTP_EVENT_TIMER = 3          /* the request's timer (weft_http_request_timer) fired */
} weft_http_event_t;

/** Called on the loop thread for a request a handler holds; see weft_http_event_t. */
typedef void (*weft_http_event_fn)(weft_http_request_t *req, weft_http_event_t ev);

/**
 * A request. Fields are read-only for handlers except those marked "handler sets".
 * Strings point into the connection's buffer or arena and live until the response ends.
 */
struct weft_http_request_s {
    weft_str_t method;     /* "GET" */
    weft_str_t target;     /* as sent: "/a/b?x=1" (or "http://host/a/b?x=1") */
    weft_str_t path;       /* target without the query (and without an absolute-form
                              target's scheme and authority: "/" when it has no path):
                              "/a/b" */
    weft_str_t query;      /* after '?', without it; empty if none */
    weft_str_t authority;  /* the host the request is for: from an absolute-form target
                              ("GET http://api.example:8080/a"; RFC 9112 3.2.2: the Host
                              header is then ignored), else the Host header; may be empty
                              for HTTP/1.0 */
    uint8_t version_minor; /* 0 or 1 (HTTP/1.x) */
    bool keep_alive;       /* the connection stays open after this response */
    bool is_head;          /* HEAD: the response body is not sent */
    bool upgrade;          /* the request asks to switch protocols (`Connection: upgrade`
                              and `Upgrade: X`, RFC 9110 7.8) and has no body: a handler
                              that agrees takes the connection over with
                              weft_http_request_takeover; otherwise it is answered as any
                              request and the connection closes after the response */
    const weft_http_header_t *headers;
    size_t nheaders;
    uint64_t content_length;        /* UINT64_MAX when unknown (chunked) or absent */
    weft_str_t body;                /* the whole body, for routes that buffer it */
    const weft_http_route_t *route; /* NULL for 404/405 and malformed requests */
    const char *route_pattern;      /* the matched pattern ("/orders/:id") or NULL */
    weft_route_match_t match;       /* path parameters, percent-decoded */
    uint64_t start_ns;              /* weft_now_ns() when the head was complete */
    struct uv_loop_s *loop;         /* the loop (thread) serving this request */
    void *data;                     /* handler sets: anything */
    void *hook_data;                /* filters set: the SDK's tracing filter keeps the
                                       request's server span here (weft_service_span) */
    weft_http_body_fn on_body;      /* handler sets, for stream_body routes */
    weft_http_drain_fn on_drain;    /* handler sets, for streamed responses */
    weft_http_abort_fn on_abort;    /* handler sets: the connection closed (reset, error,
                                       timeout) before the response was finished */
    weft_http_event_fn on_event;    /* handler sets, for requests it holds (long polls,
                                       streams): client closed, shutdown, timer */
    int status;                     /* the status sent, once the response has started */
};

/**
 * The engine's limits as the configuration system sees them: keys http.max_head_size,
 * http.max_target_size, http.max_headers, http.max_body_size, http.max_connections,
 * http.head_timeout, http.idle_timeout, http.body_timeout, http.write_timeout,
 * http.shutdown_timeout, http.shutdown_delay, http.busy_poll_us, http.busy_poll_share (sizes
 * in bytes, durations in ms once loaded).
 */
typedef struct weft_http_conf_s {
    uint64_t max_head, max_target, max_headers, max_body, max_connections;
    uint64_t head_timeout, idle_timeout, body_timeout, write_timeout, shutdown_timeout;
    uint64_t shutdown_delay;
    uint64_t busy_poll_us, busy_poll_share;
} weft_http_conf_t;

/** A configuration section over the http.* declaration table, storing into *conf. */
WEFT_EXTERN weft_conf_section_t weft_http_conf_section(weft_http_conf_t *conf);

/** Copies loaded settings into server options (other fields of *o are left alone). */
WEFT_EXTERN void weft_http_conf_apply(const weft_http_conf_t *conf, weft_http_server_options_t *o);

/** Fills *o with the defaults documented in weft_http_server_options_t. */
WEFT_EXTERN void weft_http_server_options_init(weft_http_server_options_t *o);

/**
 * Creates a server with options o (copied; NULL for the defaults) for n_loops loops.
 * Returns 0 and *out, or WEFT_EINVAL / WEFT_ENOMEM. No socket is opened yet.
 */
WEFT_EXTERN int weft_http_server_new(const weft_http_server_options_t *o, unsigned n_loops,
                                     weft_http_server_t **out);

/**
 * Adds a route (before bind). method: a method token or "*"; pattern: see weft/router.h.
 * Returns 0, WEFT_EINVAL, WEFT_EEXIST, WEFT_ELIMIT, WEFT_ENOMEM, WEFT_ESTATE after bind.
 */
WEFT_EXTERN int weft_http_server_route(weft_http_server_t *s, const char *method,
                                       const char *pattern, const weft_http_route_t *route);

/**
 * Appends a filter to the server's pipeline (before bind; copied). Returns 0, WEFT_EINVAL
 * (no callback at all), WEFT_ELIMIT (WEFT_HTTP_FILTERS_MAX reached), WEFT_ESTATE after bind.
 */
WEFT_EXTERN int weft_http_server_filter(weft_http_server_t *s, const weft_http_filter_t *f);

/**
 * Opens one SO_REUSEPORT listening socket per loop, on the calling thread, so that address
 * errors are reported here: WEFT_EINVAL (bad host), -EADDRINUSE (also when another process
 * already listens there, even with SO_REUSEPORT), -EACCES, ... On error nothing stays open.
 * err_msg (may be NULL) receives a message naming the address.
 *
 * Open files. Every connection is one, so the first bind in a process raises the soft
 * RLIMIT_NOFILE to the hard limit, as Go's runtime does (Debian's soft default of 1024 holds
 * a tenth of max_connections on one loop), and logs it (comp=http, info). Then, when the
 * limit still cannot hold max_connections on every loop, besides the descriptors open now
 * (about: the highest listening descriptor + 1)
 * and 64 kept for everything else, each loop takes (limit - open - 64) / loops at most and
 * the log says so (a warning when that is under 1024, else info): past that, a new connection gets
 * the same 503 as past max_connections, whose body names the open-file limit, instead of being
 * closed without a word when accept() fails. weft_http_server_max_connections tells what was
 * decided.
 */
WEFT_EXTERN int weft_http_server_bind(weft_http_server_t *s, char *err_msg, size_t err_len);

/** Connections each loop takes (after bind): max_connections, or fewer when the open-file
 *  limit cannot hold that many (see weft_http_server_bind). */
WEFT_EXTERN unsigned weft_http_server_max_connections(const weft_http_server_t *s);

/** The bound port (useful when options asked for port 0). */
WEFT_EXTERN uint16_t weft_http_server_port(const weft_http_server_t *s);

/**
 * Starts serving socket index on loop. Call on the loop's thread (or before it runs),
 * once per index. Returns 0 or a libuv error.
 */
WEFT_EXTERN int weft_http_server_attach(weft_http_server_t *s, struct uv_loop_s *loop,
                                        unsigned index);

/**
 * Graceful shutdown of loop index's listener: stops accepting, closes idle connections,
 * lets in-flight requests finish (their responses carry `Connection: close`), and after
 * shutdown_timeout_ms closes whatever is left. on_done(arg) runs on the loop's thread when
 * every handle of this listener is closed. Call on the loop's thread.
 */
WEFT_EXTERN void weft_http_server_shutdown(weft_http_server_t *s, unsigned index,
                                           void (*on_done)(void *arg), void *arg);

/** Frees the server; every attached loop must have finished its shutdown. */
WEFT_EXTERN void weft_http_server_free(weft_http_server_t *s);

/** The number of loops the server was made for (weft_http_server_new's n_loops). */
WEFT_EXTERN unsigned weft_http_server_loops(const weft_http_server_t *s);

/** Open connections on loop index right now (any thread; a relaxed read). */
WEFT_EXTERN unsigned weft_http_server_connections(const weft_http_server_t *s, unsigned index);

/** From now on every response says Connection: close and its connection closes after it
 *  (any thread): kept-alive clients reconnect, and a load balancer that is taking this
 *  instance out of rotation sends them elsewhere. New connections are still accepted. */
WEFT_EXTERN void weft_http_server_drain(weft_http_server_t *s);

/** Connections answered 503 and closed at accept because their loop was at its cap
 *  (max_connections or the open-file limit; not those refused while shutting down), summed
 *  over the loops since bind (any thread; relaxed reads). */
WEFT_EXTERN uint64_t weft_http_server_rejected(const weft_http_server_t *s);

/* ---- requests ---- */

/** The first header named name (ASCII case-insensitive); {NULL, 0} if absent. */
WEFT_EXTERN weft_str_t weft_http_request_header(const weft_http_request_t *req, const char *name);

/** The path parameter name (":id" -> "id", "*rest" -> "rest"), percent-decoded
 *  ("/hello/J%C3%BCrgen%20B" -> "Jürgen B"; "%2F" gives a '/' inside the value, while the
 *  route matched the path as sent); {NULL, 0} if absent. A request whose parameter holds a
 *  bad escape or %00 gets 400 before any handler runs. req->path stays as sent. */
WEFT_EXTERN weft_str_t weft_http_request_param(const weft_http_request_t *req, const char *name);

/** The client's address as "ip:port" ("[::1]:51234" for IPv6), looked up once per
 *  connection (one getpeername) and kept; "-" when it cannot be had. The string lives as
 *  long as the connection. Loop thread only. */
WEFT_EXTERN const char *weft_http_request_peer(weft_http_request_t *req);

/** The client's address without its port or brackets ("10.0.0.5", "::1"), a view of
 *  weft_http_request_peer's string ("-" when it cannot be had). Loop thread only. */
WEFT_EXTERN weft_str_t weft_http_request_peer_ip(weft_http_request_t *req);

/** n bytes from the request's arena, freed when the response ends; NULL if over the limit. */
WEFT_EXTERN void *weft_http_request_alloc(weft_http_request_t *req, size_t n);

/**
 * Arms the request's one timer (again, replacing an earlier setting): after ms
 * milliseconds req->on_event(req, WEFT_HTTP_EVENT_TIMER) runs on the loop, unless the
 * request was finished or aborted first. For a handler that holds a request: a blocking
 * query's wait, an SSE keep-alive. Returns 0, WEFT_ESTATE (no handler holds req, or no
 * on_event is set), WEFT_ENOMEM. Loop thread only.
 */
WEFT_EXTERN int weft_http_request_timer(weft_http_request_t *req, uint64_t ms);

/**
 * For a handler that will hold req for long (a long poll, a blocking query): the request's
 * strings (target, path, query, authority, headers, path parameters) are copied into a
 * block of their size and the connection's 4 KiB read buffer is given back, so that a
 * parked request costs little more than its connection. Nothing changes for the handler;
 * reading stops until the request is finished (the client's close is still told by
 * on_event and on_abort). Returns 0 (also when it was parked already), WEFT_ESTATE (no
 * handler holds req, its message is not fully read, or bytes of a next request wait behind
 * it: then it keeps its buffer), WEFT_ENOMEM (nothing changed). Loop thread only.
 */
WEFT_EXTERN int weft_http_request_park(weft_http_request_t *req);

/** What weft_http_request_takeover hands over. */
typedef struct weft_http_takeover_s {
    int fd;     /* the connection's socket (a duplicate descriptor, non-blocking, close-on-
                   exec): the caller's, to close */
    char *data; /* the bytes the client sent after the request head (they belong to the new
                   protocol), malloc'd: the caller frees them; NULL when len is 0 */
    size_t len;
} weft_http_takeover_t;

/**
 * Takes the connection of an upgrade request (req->upgrade) over, for a protocol of the
 * caller's (a WebSocket tunnel, say): the engine lets go of the socket without a byte more
 * and without shutting it down, and *out gets a descriptor of it and the bytes that followed
 * the head. The caller writes the response (e.g. "HTTP/1.1 101 Switching Protocols\r\n...")
 * itself, on out->fd. The request is finished: filters' on_end see status (what the caller
 * answers, 101 as a rule) and the engine's connection is gone (it no longer counts towards
 * max_connections). Loop thread only.
 *
 * Returns 0; WEFT_EAGAIN when an earlier response on the connection (pipelined) is still
 * being written: nothing changed, call again from req->on_drain, which the engine runs once
 * it is out; WEFT_ESTATE (no handler holds req, it is not an upgrade request, or its
 * response has started); WEFT_ECLOSED (the connection closed first: the request is released
 * all the same, as by weft_http_response_end); WEFT_ENOMEM or a negative errno (dup failed:
 * nothing changed, the request is still the handler's to answer).
 */
WEFT_EXTERN int weft_http_request_takeover(weft_http_request_t *req, int status,
                                           weft_http_takeover_t *out);

/** Stops / resumes reading a streamed request body (backpressure). */
WEFT_EXTERN void weft_http_request_pause(weft_http_request_t *req);
WEFT_EXTERN void weft_http_request_resume(weft_http_request_t *req);

/* ---- responses ---- */

/**
 * Adds a response header (before the response starts). name and value are copied.
 * Must not contain CR, LF or NUL (WEFT_EINVAL). Content-Length, Transfer-Encoding, Date and
 * Connection are the server's: WEFT_EINVAL. Returns 0, WEFT_ENOMEM, WEFT_ESTATE.
 */
WEFT_EXTERN int weft_http_response_header(weft_http_request_t *req, const char *name,
                                          const char *value);
/** As weft_http_response_header, with lengths: name and value need no NUL (a proxy passes
 *  views of an upstream's head). */
WEFT_EXTERN int weft_http_response_header_n(weft_http_request_t *req, weft_str_t name,
                                            weft_str_t value);

/**
 * Sends a whole response: status, Content-Type (may be NULL), body (copied) and
 * Content-Length. Finishes the request. Returns 0, WEFT_ECLOSED (the client went away; the
 * request is released all the same), WEFT_ESTATE (already responded).
 */
WEFT_EXTERN int weft_http_respond(weft_http_request_t *req, int status, const char *content_type,
                                  const void *body, size_t len);

/**
 * Before weft_http_response_start: the head is not sent on its own but with the first
 * weft_http_response_write (or at _end), in one system call. For a handler that will write
 * before it returns to the loop, such as a proxy whose upstream's first body bytes are read
 * already (weft_http_client_more_read); otherwise the head waits for them.
 */
WEFT_EXTERN void weft_http_response_cork(weft_http_request_t *req);

/**
 * Starts a streamed response. content_length: the body's size, or -1 for chunked encoding
 * (on HTTP/1.0, -1 means the body ends when the connection closes).
 */
WEFT_EXTERN int weft_http_response_start(weft_http_request_t *req, int status,
                                         const char *content_type, int64_t content_length);

/**
 * Appends body bytes (copied). Returns 0, WEFT_ECLOSED, WEFT_ESTATE. When more than 64 KiB
 * wait to be sent, returns WEFT_EAGAIN after queueing the bytes: stop producing until
 * req->on_drain runs.
 */
WEFT_EXTERN int weft_http_response_write(weft_http_request_t *req, const void *data, size_t len);

/** Ends a streamed response and finishes the request. Returns 0 or WEFT_ECLOSED. */
WEFT_EXTERN int weft_http_response_end(weft_http_request_t *req);

/**
 * The response cannot be completed (a proxy's upstream failed in the middle of its body):
 * the connection is closed at once, so that the client sees a truncated message rather
 * than one that looks complete. Finishes the request (filters see it aborted; on_abort does
 * not run). Returns 0, WEFT_ECLOSED (the client was gone already; released all the same),
 * WEFT_ESTATE (no handler holds req).
 */
WEFT_EXTERN int weft_http_response_abort(weft_http_request_t *req);

/** The reason phrase of a status code ("Not Found"); "Unknown" for unlisted codes. */
WEFT_EXTERN const char *weft_http_status_text(int status);

/**
 * A Retry-After header value (RFC 9110 10.2.3), v[0..n) (need not be NUL-terminated):
 * delay-seconds (digits only) or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), with
 * blanks (space, tab) around it allowed. now: the wall clock in seconds since the epoch
 * (time(NULL); a parameter so that tests and callers with a clock of their own choose it).
 * Returns 0 and sets *ms to the wait in milliseconds (0 for a date that has passed; seconds
 * beyond 2^32 are taken as 2^32), or WEFT_EINVAL for anything else (the obsolete RFC 850
 * and asctime date forms included), leaving *ms unchanged. Any thread; allocates nothing.
 */
WEFT_EXTERN int weft_http_retry_after_parse(const char *v, size_t n, time_t now, uint64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
