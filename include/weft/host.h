/**
 * weft/host.h - several listeners and parts in one process, on shared worker loops.
 *
 * A host is what `weft serve` and every SDK service run on: N worker threads (one libuv loop
 * each, weft/workers.h) that serve every listener, and a control loop, on the thread that
 * calls weft_host_run, for the work that must never run on a worker (a catalog's owner, a
 * health checker, a store's writer, signals).
 *
 *   listeners   HTTP servers (weft/http.h), each with its own routes and filters: the API
 *               on 8500, the gateway on 8080, OTLP on 4318, ...; and UDP sockets for
 *               protocols that are not HTTP (the registry's DNS on 8600). Every listener has
 *               one SO_REUSEPORT socket per worker, so each worker accepts (or receives) on
 *               its own and nothing on the request path is shared between workers.
 *   parts       a subsystem that lives in the host (the SDK service's instrumentation, the
 *               registry, the gateway): per-worker state with init and stop hooks, and
 *               control-loop hooks for start, drain, stop and SIGUSR1.
 *   posting     weft_host_post runs a function on one worker, weft_host_post_all on every
 *               worker, weft_host_call on the control loop; any thread may post.
 *   snapshots   what the control loop decides (routes, healthy instances) reaches the
 *               workers as an immutable snapshot published with an RCU pointer swap
 *               (src/core/snapshot.h inside weft): every worker thread is a registered
 *               reader for its whole life, and reads without a lock.
 *
 * Life cycle: weft_host_new -> add listeners and parts -> weft_host_run (binds every
 * listener, reporting an address error before any thread starts; starts the workers; runs
 * the control loop until weft_host_stop, SIGTERM or SIGINT) -> weft_host_free.
 *
 * Shutdown, in order: with shutdown_delay_ms, the HTTP listeners first drain (every
 * response says Connection: close, parts' drain hooks run: /health turns 503) for that
 * long, or until a second stop. Then the parts' stop hooks run on the control loop, and
 * every worker shuts its listeners down gracefully (stops accepting, finishes in-flight
 * requests, tells held requests WEFT_HTTP_EVENT_SHUTDOWN, closes the rest at each server's
 * shutdown_timeout); once a worker's listeners are done its parts' worker_stop hooks run
 * there, and its loop ends when every handle on it is closed. The control loop ends when
 * every worker is done, and weft_host_run returns.
 */
#ifndef WEFT_HOST_H
#define WEFT_HOST_H

#include <stdbool.h>
#include <sys/socket.h>

#include "weft/common.h"
#include "weft/http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_host_s weft_host_t;
typedef struct weft_udp_s weft_udp_t;

/** Options; weft_host_options_init fills the defaults. */
typedef struct weft_host_options_s {
    const char *name;           /* for logs; default "weft" */
    unsigned workers;           /* worker threads; 0 (default): one per online CPU */
    unsigned busy_poll_us;      /* weft_workers_set_busy_poll; default 30; 0: off */
    unsigned busy_poll_share;   /* percent of working time a spin may take; default 25 */
    uint64_t shutdown_delay_ms; /* drain this long before the shutdown; default 0 */
    bool signals;               /* default true: SIGTERM and SIGINT stop the host,
                                   SIGUSR1 runs the parts' reopen hooks, SIGHUP their reload
                                   hooks (when one has any), SIGPIPE ignored */
} weft_host_options_t;

/** A function run on a worker (index 0..n-1) or on the control loop (index ~0u). */
typedef void (*weft_host_fn)(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *arg);

/**
 * A part: a subsystem living in the host. Every hook is optional; all get arg.
 * state_size bytes of per-worker state (zeroed, 16-byte aligned; 0: none) are kept for each
 * worker and handed to the worker hooks; weft_host_state finds them from a worker thread.
 */
typedef struct weft_host_part_s {
    const char *name; /* for logs; copied */
    size_t state_size;
    /** On each worker's thread before it serves (before any listener is attached). */
    void (*worker_init)(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg);
    /** On each worker's thread at shutdown, once its listeners are done: close the handles
     *  the part put on that loop (the loop ends when none is left). */
    void (*worker_stop)(weft_host_t *h, struct uv_loop_s *loop, unsigned index, void *state,
                        void *arg);
    /** On the control loop's thread before any worker starts (listeners are bound, no
     *  request is served yet, the control loop runs no callback yet but may be given
     *  handles): what must be ready before the first request (a catalog loaded from disk).
     *  A non-zero return (a negative WEFT_E* code) makes weft_host_run log it, run the stop
     *  hooks of the parts initialised before, and return it. */
    int (*init)(weft_host_t *h, void *arg);
    /** On the control loop once every worker serves (before the on_start callback). */
    void (*start)(weft_host_t *h, void *arg);
    /** On the control loop when the shutdown delay begins (still serving, draining). */
    void (*drain)(weft_host_t *h, void *arg);
    /** On the control loop when the shutdown begins: close the part's control handles. */
    void (*stop)(weft_host_t *h, void *arg);
    /** On the control loop on SIGUSR1 (reopen log files). */
    void (*reopen)(weft_host_t *h, void *arg);
    void *arg;
    /** On the control loop on SIGHUP (read the configuration again: the gateway's routes).
     *  The host handles SIGHUP only when some part has this hook (and options.signals is
     *  on); otherwise SIGHUP keeps its default action. */
    void (*reload)(weft_host_t *h, void *arg);
} weft_host_part_t;

/** The most parts and listeners one host holds. */
#define WEFT_HOST_PARTS_MAX     16
#define WEFT_HOST_LISTENERS_MAX 16

/** Fills *o with the defaults documented in weft_host_options_t. */
WEFT_EXTERN void weft_host_options_init(weft_host_options_t *o);

/** Creates a host (no thread runs, nothing listens yet). o may be NULL (defaults). Returns
 *  0 and *out, WEFT_EINVAL (more than WEFT_WORKERS_MAX workers), WEFT_ENOMEM. */
WEFT_EXTERN int weft_host_new(const weft_host_options_t *o, weft_host_t **out);

/** Worker threads of the host: create HTTP servers with this many loops. */
WEFT_EXTERN unsigned weft_host_workers(const weft_host_t *h);

/**
 * Adds an HTTP listener (before weft_host_run). srv was made with weft_http_server_new for
 * weft_host_workers(h) loops and is not bound yet (weft_host_run binds it) or bound already;
 * the host attaches it to every worker and shuts it down, and frees it in weft_host_free.
 * Returns 0, WEFT_EINVAL (wrong number of loops), WEFT_ELIMIT, WEFT_ESTATE (running).
 * On error the caller keeps srv.
 */
WEFT_EXTERN int weft_host_add_http(weft_host_t *h, weft_http_server_t *srv);

/**
 * Adds a part (before weft_host_run; copied). Returns its id (>= 0) for weft_host_state,
 * or WEFT_EINVAL, WEFT_ELIMIT, WEFT_ESTATE (running).
 */
WEFT_EXTERN int weft_host_add_part(weft_host_t *h, const weft_host_part_t *p);

/** On a worker thread of a running host: that worker's state of part id (NULL if the part
 *  has none). loop is the worker's loop (a request's req->loop). */
WEFT_EXTERN void *weft_host_state(const struct uv_loop_s *loop, int id);

/** The worker index of a worker's loop (0..n-1); ~0u for a loop that is not a worker's. */
WEFT_EXTERN unsigned weft_host_worker_index(const struct uv_loop_s *loop);

/** The control loop (valid while weft_host_run runs; use it on that thread only). */
WEFT_EXTERN struct uv_loop_s *weft_host_loop(weft_host_t *h);

/** Runs fn(h, loop, index, arg) on worker index, soon. Any thread. Returns 0,
 *  WEFT_ECLOSED (not running, or stopping), WEFT_ELIMIT (1024 posts wait), WEFT_ENOMEM; on
 *  error fn never runs. */
WEFT_EXTERN int weft_host_post(weft_host_t *h, unsigned index, weft_host_fn fn, void *arg);

/** Runs fn on every worker. Returns 0 when every post was taken, else the first error (then
 *  fn runs on the workers that took it: on error, fn must not be relied on to run at all). */
WEFT_EXTERN int weft_host_post_all(weft_host_t *h, weft_host_fn fn, void *arg);

/** Runs fn(h, control loop, ~0u, arg) on the control loop, soon. Any thread, the control
 *  loop's included. Returns 0, WEFT_ECLOSED (not running or done), WEFT_ELIMIT (4096 calls
 *  wait), WEFT_ENOMEM; on error fn never runs. */
WEFT_EXTERN int weft_host_call(weft_host_t *h, weft_host_fn fn, void *arg);

/** A function run on the control loop once every listener is bound and every worker serves. */
WEFT_EXTERN void weft_host_on_start(weft_host_t *h, void (*fn)(weft_host_t *h, void *arg),
                                    void *arg);

/**
 * Binds every listener (errors are logged and returned before any thread starts: -EADDRINUSE,
 * WEFT_EINVAL...), starts the workers, runs the control loop until the host stops, then
 * shuts down (above). Returns 0 after a clean shutdown, or a negative error. Once per host.
 */
WEFT_EXTERN int weft_host_run(weft_host_t *h);

/** Starts the shutdown (with shutdown_delay_ms, the drain first; a second call skips the
 *  rest of the delay). Any thread, any number of times; before weft_host_run it does
 *  nothing. */
WEFT_EXTERN void weft_host_stop(weft_host_t *h);

/** True from weft_host_stop (or a signal) on. Any thread. */
WEFT_EXTERN bool weft_host_stopping(const weft_host_t *h);

/** Frees a host that is not running, with its listeners. */
WEFT_EXTERN void weft_host_free(weft_host_t *h);

/* ---- UDP listeners ---- */

/** One datagram received on a worker: data is valid only during the callback. */
typedef void (*weft_udp_recv_fn)(weft_udp_t *u, unsigned worker, const char *data, size_t len,
                                 const struct sockaddr *from, void *arg);

typedef struct weft_udp_options_s {
    const char *host;         /* numeric IPv4 or IPv6 address; default 127.0.0.1 */
    uint16_t port;            /* 0 picks a free port (see weft_udp_port) */
    size_t max_datagram;      /* bytes read per datagram; longer ones are cut and counted as
                                 truncated; default 4096 (DNS over UDP with EDNS), at most 65535 */
    weft_udp_recv_fn on_recv; /* required; on the receiving worker's thread */
    void *arg;
} weft_udp_options_t;

/** Fills *o with the defaults above. */
WEFT_EXTERN void weft_udp_options_init(weft_udp_options_t *o);

/**
 * Adds a UDP listener (before weft_host_run; o copied): one SO_REUSEPORT socket per worker,
 * bound by weft_host_run. Returns 0 and *out (owned by the host), WEFT_EINVAL (no on_recv,
 * bad host, max_datagram out of range), WEFT_ELIMIT, WEFT_ESTATE, WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_host_add_udp(weft_host_t *h, const weft_udp_options_t *o, weft_udp_t **out);

/** The bound port (0 before weft_host_run bound it). Any thread. */
WEFT_EXTERN uint16_t weft_udp_port(const weft_udp_t *u);

/**
 * Sends a datagram from worker's socket (on that worker's thread: from on_recv, or later).
 * Does not block: returns 0, or a negative error (-EAGAIN when the socket's buffer is full:
 * the datagram is dropped, as UDP allows; WEFT_ESTATE when the listener is closed).
 */
WEFT_EXTERN int weft_udp_send(weft_udp_t *u, unsigned worker, const void *data, size_t len,
                              const struct sockaddr *to);

/** Datagrams received, sent, refused by the kernel on send, and truncated on receipt,
 *  summed over the workers (any thread; relaxed reads). */
typedef struct weft_udp_stats_s {
    uint64_t received, sent, send_errors, truncated;
} weft_udp_stats_t;
WEFT_EXTERN weft_udp_stats_t weft_udp_stats(const weft_udp_t *u);

/* ---- TCP listeners (protocols that are not HTTP) ---- */

typedef struct weft_tcp_s weft_tcp_t;
typedef struct weft_tcp_conn_s weft_tcp_conn_t;

/**
 * A TCP listener for a framed protocol (DNS over TCP: a 2-byte length, then the message).
 * Callbacks run on the worker thread that accepted the connection.
 */
typedef struct weft_tcp_options_s {
    const char *host;         /* numeric IPv4 or IPv6 address; default 127.0.0.1 */
    uint16_t port;            /* 0 picks a free port (see weft_tcp_port) */
    unsigned max_connections; /* per worker; past it a new connection is closed; default 1024 */
    size_t max_buffer;        /* bytes received and not yet consumed, per connection; a
                                 message that needs more closes the connection; default 65536 */
    size_t max_pending;       /* bytes written and not yet sent, per connection; past it
                                 weft_tcp_write fails; default 1 MiB */
    uint64_t idle_timeout_ms; /* a connection that receives nothing this long is closed;
                                 default 60000; 0: never */
    /** A connection opened (may be NULL). */
    void (*on_open)(weft_tcp_conn_t *c, void *arg);
    /** Bytes arrived: data holds every byte not consumed yet. Returns how many it consumed
     *  (0: a message is not complete yet, keep them), or -1 to close the connection. Runs
     *  again while it consumes and bytes remain. Required. */
    long (*on_data)(weft_tcp_conn_t *c, const char *data, size_t len, void *arg);
    /** The connection is closing (the peer closed, an error, a timeout, weft_tcp_close, the
     *  shutdown); c is valid until this returns (may be NULL). */
    void (*on_close)(weft_tcp_conn_t *c, void *arg);
    void *arg;
} weft_tcp_options_t;

/** Fills *o with the defaults above. */
WEFT_EXTERN void weft_tcp_options_init(weft_tcp_options_t *o);

/**
 * Adds a TCP listener (before weft_host_run; o copied): one SO_REUSEPORT socket per worker,
 * bound by weft_host_run. Returns 0 and *out (owned by the host), WEFT_EINVAL (no on_data,
 * bad host or limits), WEFT_ELIMIT, WEFT_ESTATE, WEFT_ENOMEM. At shutdown the listener stops
 * accepting and its connections are closed once their pending writes are sent (at most 2 s).
 */
WEFT_EXTERN int weft_host_add_tcp(weft_host_t *h, const weft_tcp_options_t *o, weft_tcp_t **out);

/** The bound port (0 before weft_host_run bound it). Any thread. */
WEFT_EXTERN uint16_t weft_tcp_port(const weft_tcp_t *t);

/** Queues len bytes (copied) on the connection; worker thread only. Returns 0, WEFT_ECLOSED
 *  (closing), WEFT_ELIMIT (over max_pending: nothing queued), WEFT_ENOMEM. */
WEFT_EXTERN int weft_tcp_write(weft_tcp_conn_t *c, const void *data, size_t len);

/** Closes the connection once what was written is sent; on_close runs then. */
WEFT_EXTERN void weft_tcp_close(weft_tcp_conn_t *c);

/** The worker serving the connection, and a pointer the caller may set. */
WEFT_EXTERN unsigned weft_tcp_conn_worker(const weft_tcp_conn_t *c);
WEFT_EXTERN void **weft_tcp_conn_data(weft_tcp_conn_t *c);

#ifdef __cplusplus
}
#endif
#endif
