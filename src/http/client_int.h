/*
 * client_int.h - the HTTP client's objects and the functions its files share (internal;
 * the public contract is weft/client.h).
 *
 * Files, one subsystem each:
 *   client.c        the public API: options, new and close, request, streamed bodies,
 *                   cancel, pause and resume, counters, the GET helper
 *   client_call.c   a call's life: its state machine, the end of a call (finish, fail),
 *                   the deferred work (kick) and the sweep (deadlines)
 *   client_pool.c   the host table: one pool per host:port with its wait queue, idle
 *                   connections and counters; dispatch of calls to connections
 *   client_conn.c   connections: name lookup, connect with failover across addresses,
 *                   writes, hand-off between calls, close
 *   client_read.c   responses: reading (src/http/reader.h) into the read buffer, llhttp,
 *                   on_head views into that buffer, completion
 *   client_req.c    requests: validation and the one serialization into the call's buffer
 *
 * Objects. A client has pools (one per host:port), connections and calls. A call is one
 * request; a connection carries at most one call at a time (no pipelining: a proxy cannot
 * know which requests are safe to pipeline). Both are state machines: an enum and a
 * transition function (weft__call_to, conn_to in client_conn.c) that asserts the from-state
 * with WEFT_ASSERT.
 *
 * Threads: everything here belongs to the client's loop thread.
 */
#ifndef WEFT_HTTP_CLIENT_INT_H
#define WEFT_HTTP_CLIENT_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <llhttp.h>

#include "core/buf.h"
#include "http/head.h"
#include "http/reader.h"
#include "weft/client.h"

#define CLIENT_SWEEP_MS   50
#define CLIENT_READ_CHUNK 16384 /* what a read asks for, and the read buffer's first size */
#define CLIENT_READ_MIN   2048  /* less room than this: compact or grow before reading */
#define CLIENT_HEAD_SLACK 16384 /* read buffer beyond max_response_head: framing, spaces */
#define CLIENT_MAX_ADDRS  8     /* addresses of a name tried in turn */
#define CLIENT_POOL_SCAN  1000  /* at most this often (ms) unused pools are looked for */

typedef struct weft__client_conn_s conn_t;
typedef struct weft__client_pool_s pool_t;
typedef struct weft_http_client_call_s call_t;

/* A socket address of either family; the port is in it. */
typedef union weft__addr_u {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} weft__addr_t;

/* Test hook (weft__client_set_resolver): resolves host:port synchronously in place of
 * uv_getaddrinfo, filling up to max addresses (ports included) of out. Returns how many, or
 * a negative error code (WEFT_ENOENT: no such name). */
typedef int (*weft__client_resolve_fn)(void *arg, const char *host, uint16_t port,
                                       weft__addr_t *out, unsigned max);

/* A call's life. Transitions (weft__call_to asserts the from-state):
 *   FREE -> QUEUED | CONNECTING | HEAD     dispatched by weft_http_client_request
 *   QUEUED -> CONNECTING | HEAD            a connection is opened for it, or handed over
 *   CONNECTING -> HEAD                     connected
 *   HEAD -> CONNECTING | QUEUED            the keep-alive race: retried on a fresh connection
 *   HEAD -> BODY -> COMPLETE               on_head ran; the whole response was parsed
 *   QUEUED..COMPLETE -> DYING              failed where on_done cannot run yet (the kick runs it)
 *   any but FREE -> FREE                   on_done ran; the call is recycled */
typedef enum {
    CALL_FREE = 0,   /* on the free list, or being set up */
    CALL_QUEUED,     /* in its pool's wait queue */
    CALL_CONNECTING, /* its connection is being resolved or connected */
    CALL_HEAD,       /* connected: the request goes out, the response head is awaited */
    CALL_BODY,       /* on_head ran: the body streams in */
    CALL_COMPLETE,   /* the response is parsed; on_done(0) is held by a pause */
    CALL_DYING       /* failed; on_done(dying_err) comes from the kick */
} weft__call_state_t;

struct weft_http_client_call_s {
    weft_http_client_t *client;
    pool_t *pool;
    conn_t *conn;          /* the connection carrying it (CONNECTING..COMPLETE), else NULL */
    call_t *prev, *next;   /* c->calls or c->dying; `next` also links the free list */
    call_t *qprev, *qnext; /* the pool's wait queue (QUEUED) */
    uint64_t seq;          /* unique per request: tells "still the same call" after callbacks */
    weft_buf_t out;        /* FIXED: the whole request; streamed: bytes not yet written */
    weft_buf_t flight;     /* streamed: the bytes of the write in flight */
    uint64_t body_left;    /* LENGTH: bytes _write may still give */
    size_t head_left;      /* streamed: head bytes in out/flight, not counted as body */
    uint64_t connect_ms, head_ms, body_ms; /* this call's timeouts; 0: none */
    unsigned max_conns;                    /* its pool's connections it may open up to */
    uint64_t deadline;                     /* whole exchange (uv_now ms); 0: none */
    uint64_t head_deadline; /* the response head, once the request is all written; 0: none */
    uint64_t body_deadline; /* the next read of the body; 0: none */
    uint64_t started_ns;    /* uv_hrtime when the request started on its connection */
    weft_http_client_cbs_t cbs;
    void *arg;
    int dying_err;
    int status; /* of the final response head; 0 before it */
    weft__call_state_t state;
    weft__call_state_t failed_in; /* DYING: the state it failed in */
    weft_http_client_body_t bmode;
    bool is_head, idempotent, retried; /* what the request is */
    bool upgrade;                      /* it has an Upgrade field: a 101 may answer it */
    bool flushed;                      /* FIXED: the one write was handed to libuv */
    bool ended;                        /* the body is complete (FIXED, or after _end) */
    bool sent;                         /* every byte of the request is in the kernel */
    bool want_drain;                   /* _write asked to wait: on_drain is owed */
    bool paused;                       /* weft_http_client_pause: no delivery until resume */
    bool more_read;                    /* on_head: bytes after the head are read already */
};

/* A connection's life. Transitions (conn_to in client_conn.c asserts the from-state):
 *   NEW -> RESOLVING | CONNECTING          opened for a call (a name, or an address)
 *   RESOLVING -> CONNECTING                the lookup answered
 *   CONNECTING -> NEXT -> CONNECTING       an address failed: its socket closes, the next one
 *   CONNECTING -> BUSY <-> IDLE            connected; carries calls; waits in its pool
 *   any -> CLOSED                          closing: the lookup's or the handle's callback frees */
typedef enum {
    CONN_NEW = 0,    /* allocated, nothing in flight */
    CONN_RESOLVING,  /* uv_getaddrinfo in flight (closing cancels it; its callback closes) */
    CONN_CONNECTING, /* the socket handle is open; a connect to addrs[ai] is (about to be) in
                        flight */
    CONN_NEXT,       /* a failed attempt's handle is closing; its callback tries addrs[ai] */
    CONN_BUSY,       /* carries call */
    CONN_IDLE,       /* in its pool's idle list, read to notice the server closing it */
    CONN_CLOSED      /* closed; freed by the pending callback */
} weft__conn_state_t;

typedef weft__hspan_t hoff_t; /* offsets into rbuf of a header's name and value (head.h) */

struct weft__client_conn_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    weft__rfd_t rf; /* its reading, in the client's reader (added once connected) */
    llhttp_t parser;
    weft_http_client_t *client;
    pool_t *pool;
    conn_t *prev, *next;   /* all open connections of the client */
    conn_t *iprev, *inext; /* the pool's idle list, most recently used first */
    conn_t *next_kick;     /* c->kick_conns */
    call_t *call;
    uint64_t idle_deadline;
    uint64_t attempt_deadline; /* the lookup's or the current connect's; 0: none */
    uint64_t wseq;             /* seq of the call whose bytes the write in flight carries */
    weft_buf_t rbuf;           /* received bytes: [rpos, len) not parsed yet */
    size_t rpos;
    size_t hsize;  /* bytes of header names and values of the head being parsed */
    hoff_t *hoffs; /* max_headers entries, allocated with harr at the first head */
    weft_http_header_t *harr;
    unsigned nh;
    unsigned ai, naddr; /* the address being tried, of addrs */
    int perr;           /* error a parser callback wants reported (limits, memory) */
    int send_err;       /* the failed first write's error, which on_written reports (flush) */
    weft__conn_state_t state;
    bool reused, got_bytes, writing, in_value, interim;
    bool parser_paused; /* llhttp returned HPE_PAUSED from a callback: llhttp_resume first */
    bool parsed;        /* llhttp has seen bytes of this response */
    bool fast;          /* this response's head was read by head.c: llhttp sees none of it */
    bool fast_keep;     /* then: the connection may serve another call */
    uint64_t fast_left; /* then: body bytes still to come */
    bool held;          /* a pause stopped parsing: run the parser before reading again */
    bool kicked;        /* on c->kick_conns */
    weft__addr_t addrs[CLIENT_MAX_ADDRS];
};

struct weft__client_pool_s {
    pool_t *hnext;     /* hash chain */
    pool_t *next_kick; /* c->kick_pools */
    weft_http_client_t *client;
    conn_t *idle;
    call_t *qhead, *qtail;
    uint64_t unused_since;            /* uv_now when a scan first found it unused; 0: in use */
    weft_http_client_host_stats_t st; /* counters; the gauges are filled in when read */
    uint32_t hash;
    unsigned nidle, nconns, nq, ncalls; /* ncalls: calls naming this pool, in any state */
    uint16_t port;
    bool kicked, numeric;
    weft__addr_t addr; /* when numeric */
    char host[];
};

struct weft_http_client_s {
    uv_loop_t *loop;
    weft_http_client_options_t o;
    uv_timer_t sweep;
    uv_idle_t kick;
    weft__reader_t reader;
    pool_t **buckets;
    unsigned nbuckets, npools;
    conn_t *conns;
    call_t *calls, *dying, *free_calls;
    unsigned nfree, ndying, ncalls, nconns, nidle, nqueued;
    conn_t *kick_conns;
    pool_t *kick_pools;
    uint64_t seq;
    uint64_t pool_scan_at; /* uv_now of the next look for unused pools */
    unsigned open_handles; /* sweep, kick, reader, connections */
    bool closing, pools_dirty;
    void (*on_closed)(void *);
    void *closed_arg;
    weft__client_resolve_fn resolve;
    void *resolve_arg;
    weft_http_client_stats_t st;
};

/* ---- client_call.c ---- */

/* Moves call to state `to`, asserting the from-state; keeps the wait queue in step. */
void weft__call_to(call_t *call, weft__call_state_t to);
/* A call object (recycled or new, state FREE), or NULL when out of memory. */
call_t *weft__call_new(weft_http_client_t *c);
/* Gives a call object back (free list, or free). */
void weft__call_recycle(weft_http_client_t *c, call_t *call);
/* Ends a call now: closes its connection (state unknown) and runs on_done(err). Only from
 * libuv callbacks, cancel and close: never where the caller still needs the call. */
void weft__call_fail(call_t *call, int err);
/* Ends a call from the kick on the next loop turn: closes its connection now. */
void weft__call_fail_soon(call_t *call, int err);
/* Ends a call that completed (its connection already handed off or closed): on_done(0). */
void weft__call_finish(call_t *call, int err);
/* Runs on_done for the calls that were dying when this started. */
void weft__calls_process_dying(weft_http_client_t *c);
/* The kick (idle handle) and the sweep (timer) callbacks, and starting them. */
void weft__client_on_kick(uv_idle_t *h);
void weft__client_on_sweep(uv_timer_t *t);
void weft__client_kick_start(weft_http_client_t *c);
void weft__client_sweep_start(weft_http_client_t *c);
/* Frees the client once it is closing and its last handle has closed. */
void weft__client_maybe_free(weft_http_client_t *c);
/* now + ms, saturating. */
static inline uint64_t weft__add_ms(uint64_t now, uint64_t ms)
{
    return ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
}

/* ---- client_pool.c ---- */

/* The pool of host:port (host: hl bytes), created if needed: only for a valid host
 * (weft__req_host_valid), and an unused pool may be freed to make room under max_hosts.
 * Returns NULL with *err set (WEFT_EINVAL, WEFT_ELIMIT, WEFT_ENOMEM). */
pool_t *weft__pool_get(weft_http_client_t *c, const char *host, size_t hl, uint16_t port, int *err);
/* The pool of host:port if there is one. */
pool_t *weft__pool_find(const weft_http_client_t *c, const char *host, uint16_t port);
/* Frees pools unused for host_keep_ms (every one when force); run from the sweep. */
void weft__pools_scan(weft_http_client_t *c, uint64_t now, bool force);
/* Frees every pool (the client is being freed). */
void weft__pools_free_all(weft_http_client_t *c);
/* The wait queue (weft__call_to calls these on entering and leaving QUEUED). */
void weft__pool_enqueue(pool_t *p, call_t *call);
void weft__pool_unqueue(pool_t *p, call_t *call);
/* The idle list. */
void weft__pool_idle_push(pool_t *p, conn_t *k);
void weft__pool_idle_remove(pool_t *p, conn_t *k);
/* Gives call a connection: an idle one (unless fresh), a new one, or a place in the queue.
 * Failures are delivered later (fail_soon). */
void weft__pool_dispatch(pool_t *p, call_t *call, bool fresh);
/* Opens connections for queued calls while under max_conns_per_host (after a close). */
void weft__pool_pump(pool_t *p);
/* Asks the kick to pump p (a connection of p closed while calls wait). */
void weft__pool_kick(pool_t *p);
/* Counts the end of a call in the client's and its pool's counters. phase: the state the
 * call was in when it ended or failed. */
void weft__pool_count_end(pool_t *p, const call_t *call, weft__call_state_t phase, int err);
/* Counts a final response head: latency (since started_ns) and heads. */
void weft__pool_count_head(pool_t *p, const call_t *call);

/* ---- client_conn.c ---- */

/* Opens a connection for call (state FREE or QUEUED or HEAD) and moves the call to
 * CONNECTING. Failures are delivered later (fail_soon). */
void weft__conn_open(pool_t *p, call_t *call);
/* Closes k and detaches its call (which the caller ends or re-dispatches). */
void weft__conn_close(conn_t *k);
/* Starts call on k, which is connected (a fresh connection, or one from the pool). */
void weft__conn_start_call(conn_t *k, call_t *call);
/* k's call ended cleanly: the next queued call, the idle list, or close. No user callback. */
void weft__conn_handoff(conn_t *k);
/* Hands the call's unsent bytes to libuv unless a write is in flight. */
void weft__conn_flush(conn_t *k);
/* Every byte of the request is in the kernel. */
bool weft__conn_body_sent(const conn_t *k, const call_t *call);
/* The keep-alive race: a pooled connection failed before any byte of the response; an
 * idempotent call with a replayable body is retried once on a fresh connection. Returns
 * true when it was (k is closed then). */
bool weft__conn_retry_fresh(conn_t *k, call_t *call);
/* The lookup's or the current attempt's connect_timeout expired (from the sweep). */
void weft__conn_attempt_timed_out(conn_t *k);
/* Puts k on the kick list: its held bytes are parsed on the next turn. */
void weft__conn_kick(conn_t *k);
/* Reading on (a busy or idle connection), or off. */
void weft__conn_read_start(conn_t *k);
void weft__conn_read_stop(conn_t *k);

/* ---- client_read.c ---- */

/* Readies k's parser for the response of the call it starts carrying. */
void weft__read_reset(conn_t *k);
/* Parses the bytes k holds for its call (the kick, after a resume). */
void weft__read_parse(conn_t *k);
/* The response is complete (after a pause held it back); all_used: no bytes followed. */
void weft__read_complete(conn_t *k, call_t *call, bool all_used);
/* The reader's callbacks for a client connection. */
void weft__read_alloc(weft__rfd_t *f, size_t suggested, uv_buf_t *buf);
void weft__read_cb(weft__rfd_t *f, ssize_t nread, const uv_buf_t *buf);

/* ---- client_req.c ---- */

/* What weft__req_check learns of a request on the way, for weft__req_serialize. */
typedef struct weft__req_facts_s {
    size_t method_len, host_len, target_len;
    bool give_host; /* no Host header among the request's */
    bool upgrade;   /* an Upgrade header among them: a 101 may answer */
} weft__req_facts_t;

/* Checks r against the rules of weft/client.h and fills *f. Returns 0 or WEFT_EINVAL. The
 * host is checked only by its length here: weft__pool_get checks the rest of it once, when
 * it makes the host's pool (a pool is never made for a host that is not valid, so a host
 * that has one is). */
int weft__req_check(const weft_http_client_req_t *r, weft__req_facts_t *f);
/* A host of n bytes the client may send: 1 to 255 visible ASCII bytes, none of "/?#@[]". */
bool weft__req_host_valid(const char *host, size_t n);
/* Writes the request head (and a FIXED body) into out. Returns 0 or WEFT_ENOMEM. */
int weft__req_serialize(weft_buf_t *out, const weft_http_client_req_t *r,
                        const weft__req_facts_t *f);
/* Appends one piece of a streamed body to out, framed as a chunk when chunked. Returns 0 or
 * WEFT_ENOMEM (nothing appended). */
int weft__req_body_piece(weft_buf_t *out, bool chunked, const void *data, size_t len);
/* Appends the last chunk ("0\r\n\r\n"). Returns 0 or WEFT_ENOMEM (nothing appended). */
int weft__req_body_end(weft_buf_t *out);
/* GET, HEAD, PUT, DELETE, OPTIONS, TRACE. */
bool weft__req_idempotent(const char *method, size_t len);

/* ---- tests ---- */

/* Makes c resolve names with fn instead of uv_getaddrinfo (NULL: uv_getaddrinfo again). */
void weft__client_set_resolver(weft_http_client_t *c, weft__client_resolve_fn fn, void *arg);

#endif
