/*
 * server_int.h - the HTTP/1.1 server engine's shared definitions (internal): the connection
 * (conn_t), the exchange it holds while it has work (exch_t), the listener of one loop
 * (listener_t), the server, and the functions the engine's files call in each other.
 *
 * The engine is one subsystem per file:
 *   listener.c  the server object, binding, attaching a loop, accepting, the sweep, shutdown
 *   exchange.c  exchanges and buffers: taken when bytes arrive, given back when idle
 *   conn.c      the connection: reading, the parse loop, writing, closing
 *   parse.c     llhttp's callbacks: the request head and body, checked and stored
 *   request.c   a request's life cycle: dispatch, filters, finishing, held-request events,
 *               the request accessors
 *   response.c  the response API, response heads, the engine's own error answers
 *   syntax.h    the HTTP syntax rules (tokens, values, targets, hosts), shared with the
 *               router and the URL splitter
 *
 * Threads. A server is configured and bound on one thread, then each worker loop attaches
 * one listener (its own SO_REUSEPORT socket) and from then on every connection, buffer and
 * timer of that listener is touched only by that loop's thread. The only cross-thread read
 * is the connection count (an atomic) for metrics.
 *
 * Connections. A connection with work to do has one read buffer (rbuf), one exchange (x:
 * the llhttp parser, the request, its header arrays and arena) and two output buffers (obuf
 * collects responses; wbuf is the one libuv is writing). Requests on a connection are
 * handled one at a time: the parser pauses at the end of each message, the handler runs
 * outside the parser, and parsing of pipelined bytes resumes only when the response is
 * finished, so responses go out in order and a handler never runs inside llhttp.
 *
 * Cost. What every request calls across files is static inline here (the transitions,
 * loop_now, conn_of, out_reserve, out_put, conn_quiet, conn_take) or sits in the file of its
 * caller, so the split costs a few calls a request, not inlining on the hot path
 * (/work/shared/tools/ir-per-request on examples/hello tells).
 */
#ifndef WEFT_HTTP_SERVER_INT_H
#define WEFT_HTTP_SERVER_INT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include <llhttp.h>

#include "core/arena.h"
#include "core/assert.h"
#include "http/head.h"
#include "http/reader.h"
#include "weft/http.h"

#define RBUF_INITIAL    4096
#define RBUF_MIN_READ   2048
#define OBUF_INITIAL    4096
#define OBUF_HIGH_WATER (64 * 1024)  /* stop pipelining / ask producers to wait */
#define OBUF_MAX        (256u << 20) /* a response never buffers more than this */
#define INLINE_HEADERS  24
#define XFREE_MAX       1024 /* exchanges (and their buffers) a listener keeps for reuse */
#define XKEEP_MAX       64   /* idle connections of a listener that keep theirs for a while */
#define ARENA_BLOCK     4096
#define ARENA_LIMIT     (8u << 20)
#define LINGER_MS       2000
#define SWEEP_MS        250
#define ACCEPT_RETRIES  8 /* failed accepts in a row that pause the listener until a sweep */

/*
 * State machines (STYLE.md 12). A connection's state is four small machines, each an enum
 * with a transition function below (weft__http_*_to) that asserts the state it leaves;
 * the assertions are on in the Debug (sanitizer) trees, and compile to nothing in Release.
 * What is left as booleans are independent facts (writing, peer_eof, message_done...).
 *
 *   conn_state_t (c->state), where the connection is in the byte stream:
 *     IDLE -> HEAD (a message begins) -> BODY (its head announced a body)
 *     HEAD, BODY -> HANDLER (the message is read) -> IDLE (its response is finished)
 *     any but LINGER -> LINGER (answered with close: the write side is shut down)
 *   handler_state_t (c->hstate), the handler's hold on the current request:
 *     NONE -> PENDING (ready for its handler) -> ACTIVE (dispatched: a handler holds it)
 *     ACTIVE -> ABORTED (told on_abort, still holds it) -> DONE (its finishing call)
 *     ACTIVE -> DONE (request_finish); DONE -> NONE (the next request)
 *     PENDING -> NONE (refused by the server before its handler ran)
 *   resp_state_t (c->rstate), the response:
 *     NONE -> STARTED (its head is written) -> DONE (request_finish); DONE -> NONE;
 *     NONE -> DONE (a response whose head found no memory)
 *   conn_life_t (c->life), the connection:
 *     OPEN -> ENDING (close after the response in progress) -> CLOSING (uv_close)
 *     OPEN -> CLOSING; CLOSING -> CLOSED (handle closed while a handler holds the request)
 * The enums are one byte each (packed): conn_t stays within its budget (test_server_idle).
 */
typedef enum __attribute__((packed)) {
    C_IDLE,    /* between requests */
    C_HEAD,    /* reading a request head */
    C_BODY,    /* reading a body (handler may already run, for streamed bodies) */
    C_HANDLER, /* message read; waiting for the handler's response */
    C_LINGER,  /* answered and shut down; discarding input until EOF or timeout */
} conn_state_t;

typedef enum __attribute__((packed)) {
    H_NONE,    /* no handler has the request: it is being read, or was refused */
    H_PENDING, /* the message (or a streamed body's head) is ready for its handler */
    H_ACTIVE,  /* a handler holds the request and has not finished it */
    H_ABORTED, /* a handler holds it but was told it is aborted: its next call releases it */
    H_DONE,    /* the handler is through with it: finished, or released after an abort */
} handler_state_t;

typedef enum __attribute__((packed)) {
    R_NONE,    /* nothing of the response is written */
    R_STARTED, /* its head is in obuf (a streamed body may follow) */
    R_DONE,    /* complete */
} resp_state_t;

typedef enum __attribute__((packed)) {
    L_OPEN,    /* serving requests */
    L_ENDING,  /* closes once the response in progress is written (then lingers) */
    L_CLOSING, /* uv_close called: no more I/O; the close callback frees it */
    L_CLOSED,  /* the handle is closed, but a handler holds the request: its call frees it */
} conn_life_t;

typedef weft__hspan_t hdr_off_t; /* a header's offsets from msg_start (head.h) */

typedef struct listener_s listener_t;
typedef struct conn_s conn_t;

/* What a connection holds only while it has work: the parser, the request with its header
 * arrays and arena, the write and shutdown requests (see "Memory" in exchange.c). */
typedef struct exch_s {
    conn_t *c;           /* the connection holding it; NULL on the freelist */
    struct exch_s *next; /* the listener's freelist */
    char *rbuf, *obuf;   /* on the freelist: the buffers kept for the next connection (rbuf
                            RBUF_INITIAL bytes; obuf OBUF_INITIAL bytes, or NULL); NULL while
                            a connection holds it (they are the connection's then) */
    llhttp_t parser;
    weft_http_request_t req;
    weft_arena_t arena;
    hdr_off_t *hoff_heap; /* when more than INLINE_HEADERS, up to max_headers */
    char *parked_head;    /* the head of a parked request (weft_http_request_park), malloc'd */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    hdr_off_t hoff_inline[INLINE_HEADERS];
    weft_http_header_t hdr_inline[INLINE_HEADERS];
} exch_t;

struct conn_s {
    uv_tcp_t tcp;
    weft__rfd_t rf; /* its socket in the listener's reader, from accept to close */
    listener_t *l;
    struct conn_s *prev, *next;
    exch_t *x; /* NULL while idle with nothing buffered: then rbuf, obuf and wbuf are NULL */

    char *rbuf; /* also NULL (rcap 0) while its request is parked (weft_http_request_park) */
    size_t rcap, rlen, rpos; /* bytes held; bytes parsed */
    size_t msg_start;        /* where the current message began in rbuf */
    hdr_off_t *hoff;         /* offsets of the head being parsed (x->hoff_inline or x->hoff_heap) */
    const char *exec_base;   /* the bytes llhttp_execute is parsing now */
    uint64_t exec_off;       /* bytes parsed on this connection before exec_base */
    uint64_t data_end;       /* stream position after the head, or after the last chunk data */
    uint32_t url_off, url_len;
    uint32_t nhdr;
    uint32_t chunk_ext;     /* bytes of chunk extensions in this message */
    uint32_t chunk_ext_now; /* of them, in the chunk being started */
    int err_status;         /* status chosen inside a parser callback */
    const char *err_msg;

    char *body;
    size_t body_len, body_cap;
    uint64_t body_limit;

    char *obuf, *wbuf;
    size_t olen, ocap, wcap;
    char *xhdr; /* extra response headers, serialized */
    size_t xlen, xcap;
    uint64_t resp_remaining; /* content-length mode */

    uint64_t deadline;  /* read-side deadline, uv_now ms; 0: none */
    uint64_t wdeadline; /* write deadline while a write is pending */
    uv_timer_t *rtimer; /* weft_http_request_timer's; NULL until first armed */
    unsigned served;
    char peer[56]; /* "ip:port" once weft_http_request_peer asked; "" before */

    /* the one-byte states and facts last, together: no padding between them */
    conn_state_t state;
    handler_state_t hstate;
    resp_state_t rstate;
    conn_life_t life;
    bool in_value; /* the last piece was a header value */
    bool msg_begun;
    bool body_discard; /* 404/405 with a body: read it, drop it */
    bool head_detached;
    bool processing;         /* conn_process is on the stack */
    bool corked;             /* weft_http_response_cork: the head waits for the body */
    bool stream_end_pending; /* streamed body ended; tell the handler outside the parser */
    bool message_done;       /* the whole request message has been read */
    bool resp_chunked;       /* the response (R_STARTED) is framed by chunks */
    bool writing;            /* a uv_write is in flight (from wbuf) */
    bool peer_eof;           /* the client's FIN was read */
    bool user_paused;        /* weft_http_request_pause */
    bool chunk_start;        /* the next body bytes begin a chunk */
    bool drain_wanted;
    bool client_closed_told; /* on_event(CLIENT_CLOSED) ran for this request */
    bool kept;               /* quiet, but keeps its exchange until a sweep or two (rest) */
    bool kept_swept;         /* kept through one sweep already: the next one releases */
    bool resp_aborted;       /* weft_http_response_abort: the response ends truncated */
};

struct listener_s {
    weft_http_server_t *srv;
    uv_loop_t *loop;
    unsigned index;
    uv_tcp_t tcp;
    uv_timer_t timer;
    weft__reader_t reader; /* the connections' reads (conn.c); reader.ep -1 before attach */
    int open_handles;      /* tcp, timer and reader (one), until their close callbacks */
    bool attached, shutting_down;
    uint64_t shutdown_deadline;
    void (*on_done)(void *);
    void *done_arg;
    conn_t *conns;
    exch_t *xfree;      /* exchanges for connections that get bytes, with their buffers */
    unsigned nxfree;    /* on xfree: at most XFREE_MAX */
    unsigned xfree_low; /* the fewest on xfree since the last sweep: that many sat unused */
    unsigned nkept;     /* connections kept (conn_t.kept): at most XKEEP_MAX */
    bool mem_stalled;   /* a connection found no memory for the bytes waiting: on_timer kicks */
    _Atomic unsigned nconns;
    _Atomic uint64_t rejected; /* connections refused at the cap (written by this loop only) */
    bool accept_stalled;       /* a connection is pending: memory for it ran out (on_timer) */
    uint64_t accept_warned_at; /* loop time of the last "accept failed" warning */
    uint64_t accept_errors;    /* accept errors since that warning */
    unsigned accept_failures;  /* failed accepts since the last success (ACCEPT_RETRIES) */
    unsigned accept_pauses;    /* pauses since the last success: only the first is logged */
    bool accept_paused;        /* tcp is closed (or closing) after too many; a sweep reopens */
    bool tcp_closed;           /* tcp's close callback has run: it may be initialized again */
    int spare_fd;              /* the listening socket made at bind; tcp has a duplicate */
    char date[64];             /* "Date: ...\r\n" */
    size_t date_len;
};

struct weft_http_server_s {
    weft_http_server_options_t o;
    char host[INET6_ADDRSTRLEN];
    weft_router_t *router;
    weft_http_route_t **routes;
    size_t nroutes;
    /* The pipeline, one array per phase in the order it runs (on_head and on_end reversed),
     * holding only the filters that have that callback: the loops per request are tight. */
    struct {
        weft_http_filter_result_t (*fn)(weft_http_request_t *, void *);
        void *arg;
    } f_request[WEFT_HTTP_FILTERS_MAX];
    struct {
        void (*fn)(weft_http_request_t *, int, void *);
        void *arg;
    } f_head[WEFT_HTTP_FILTERS_MAX];
    struct {
        void (*fn)(weft_http_request_t *, int, bool, void *);
        void *arg;
    } f_end[WEFT_HTTP_FILTERS_MAX];
    unsigned nfilters, nf_request, nf_head, nf_end;
    unsigned n_loops;
    int *fds;
    uint16_t port;
    bool bound;
    unsigned conn_cap;    /* connections per loop: max_connections, or fewer (fit_conn_cap) */
    atomic_bool draining; /* weft_http_server_drain: every response says Connection: close */
    bool cap_by_nofile;   /* conn_cap is the open-file limit's, not max_connections */
    listener_t *listeners;
};

/* ---- the state machines' transitions (see the top) ---- */

static inline void weft__http_conn_to(conn_t *c, conn_state_t to)
{
    switch (to) {
    case C_IDLE: /* the response is finished (request_finish) */
        WEFT_ASSERT(c->state == C_HANDLER);
        break;
    case C_HEAD: /* a message begins */
        WEFT_ASSERT(c->state == C_IDLE);
        break;
    case C_BODY: /* its head announced a body */
        WEFT_ASSERT(c->state == C_HEAD);
        break;
    case C_HANDLER: /* the message is read */
        WEFT_ASSERT(c->state == C_HEAD || c->state == C_BODY);
        break;
    case C_LINGER: /* answered with close */
        WEFT_ASSERT(c->state != C_LINGER);
        break;
    }
    c->state = to;
}

static inline void weft__http_handler_to(conn_t *c, handler_state_t to)
{
    switch (to) {
    case H_NONE: /* the next request (request_reset), or a pending one refused (send_error) */
        WEFT_ASSERT(c->hstate == H_DONE || c->hstate == H_PENDING);
        break;
    case H_PENDING: /* the message, or a streamed body's head, is read */
        WEFT_ASSERT(c->hstate == H_NONE);
        break;
    case H_ACTIVE: /* dispatched */
        WEFT_ASSERT(c->hstate == H_PENDING);
        break;
    case H_ABORTED: /* the connection or the request failed under the handler */
        WEFT_ASSERT(c->hstate == H_ACTIVE);
        break;
    case H_DONE: /* request_finish, or the handler's call after an abort */
        WEFT_ASSERT(c->hstate == H_ACTIVE || c->hstate == H_ABORTED);
        break;
    }
    c->hstate = to;
}

static inline void weft__http_resp_to(conn_t *c, resp_state_t to)
{
    switch (to) {
    case R_NONE: /* the next request (request_reset) */
        WEFT_ASSERT(c->rstate == R_DONE);
        break;
    case R_STARTED: /* write_head */
        WEFT_ASSERT(c->rstate == R_NONE);
        break;
    case R_DONE: /* request_finish; from NONE when the head found no memory */
        WEFT_ASSERT(c->rstate == R_NONE || c->rstate == R_STARTED);
        break;
    }
    c->rstate = to;
}

static inline void weft__http_life_to(conn_t *c, conn_life_t to)
{
    switch (to) {
    case L_OPEN: /* only where a connection begins (calloc) */
        WEFT_ASSERT(!"a connection never opens again");
        break;
    case L_ENDING: /* close after this response: said again by whoever learns it too */
        WEFT_ASSERT(c->life == L_OPEN || c->life == L_ENDING);
        break;
    case L_CLOSING: /* weft__http_conn_close */
        WEFT_ASSERT(c->life == L_OPEN || c->life == L_ENDING);
        break;
    case L_CLOSED: /* the close callback, while a handler holds the request */
        WEFT_ASSERT(c->life == L_CLOSING);
        break;
    }
    c->life = to;
}

/* A handler holds the request (finished or not, aborted or not): the request and the
 * exchange must stay. */
static inline bool weft__http_holds(const conn_t *c)
{
    return c->hstate == H_ACTIVE || c->hstate == H_ABORTED;
}

/* uv_close has been called: no more I/O, no more callbacks into handlers. */
static inline bool weft__http_closing(const conn_t *c)
{
    return c->life >= L_CLOSING;
}

/* ---- shared helpers, inline: every request calls them ---- */

static inline uint64_t weft__http_loop_now(const conn_t *c)
{
    return uv_now(c->l->loop);
}

/* The connection of a request that a handler holds (its exchange is not given back before
 * the handler has finished). */
static inline conn_t *weft__http_conn_of(weft_http_request_t *req)
{
    return ((exch_t *)((char *)req - offsetof(exch_t, req)))->c;
}

/* Makes room for n more bytes in obuf: 0, or WEFT_ENOMEM (conn.c grows it). */
int weft__http_out_grow(conn_t *c, size_t n);

static inline int weft__http_out_reserve(conn_t *c, size_t n)
{
    if (c->ocap - c->olen >= n) return 0;
    return weft__http_out_grow(c, n);
}

static inline void weft__http_out_put(conn_t *c, const void *p, size_t n)
{
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}

/* Idle with nothing buffered, nothing to write, no request in progress and the socket read
 * to EAGAIN: what the exchange and the buffers hold is no longer needed. */
static inline bool weft__http_conn_quiet(const conn_t *c)
{
    return c->x && c->state == C_IDLE && !weft__reader_ready(&c->rf) && c->rlen == 0 &&
           c->olen == 0 && !c->writing && !weft__http_holds(c) && c->hstate != H_PENDING &&
           c->life == L_OPEN && !c->processing;
}

/* ---- parse.c ---- */

/* llhttp's callbacks for requests: every exchange's parser runs with them. */
extern const llhttp_settings_t weft__http_parser_settings;

/* Status and message for a parse error e (the one a callback chose, else from e). */
int weft__http_error_status(conn_t *c, llhttp_errno_t e, const char **msg);
/* A C_IDLE connection's next request, when data[0..n) begins with a whole plain head
 * (head.h), read in one pass instead of by llhttp: its length (the request is then ready,
 * as after llhttp's end of message; rpos and exec_off are the caller's to move), 0 to
 * leave it to llhttp, or -1 when it is refused (c->err_status, c->err_msg). parse.c. */
long weft__http_fast_head(conn_t *c, const char *data, size_t n);
/* How many bytes from msg_start the complete head's strings reach in rbuf. */
size_t weft__http_head_extent(const conn_t *c);
/* The request's strings within those n bytes of rbuf point into copy (a copy of them). */
void weft__http_head_rebase(conn_t *c, const char *copy, size_t n);

/* ---- exchange.c ---- */

/* A new exchange with a read buffer of RBUF_INITIAL bytes; NULL when out of memory. */
exch_t *weft__http_exch_new(listener_t *l);
/* Frees x and the buffers it keeps. */
void weft__http_exch_free(exch_t *x);
/* x, whose connection closed at any point of a message, made as good as new. */
void weft__http_exch_reset(exch_t *x, listener_t *l);
/* Frees l's freelist. */
void weft__http_xfree_drain(listener_t *l);
void weft__http_xfree_trim(listener_t *l);
/* c gives its exchange and buffers back (to l's freelist, or to malloc); c->x was between
 * two messages (request_reset ran) or was reset. */
void weft__http_conn_release(conn_t *c);

/* A quiet connection (weft__http_conn_quiet) rests: one that was busy a moment ago will
 * most likely get its next request within milliseconds (a client on keep-alive), so up to
 * XKEEP_MAX of a listener keep their exchange and buffers of the initial sizes, and give
 * them back at the second sweep after (250-500 ms of quiet; on_timer), or when they close.
 * The rest give them back now. Either way an idle connection holds no buffer for longer
 * than half a second, and a busy one takes and gives back nothing per request. */
static inline void weft__http_conn_rest(conn_t *c)
{
    listener_t *l = c->l;
    if (c->kept) return;
    if (l->nkept < XKEEP_MAX && c->rcap == RBUF_INITIAL && c->ocap <= OBUF_INITIAL &&
        (!c->wbuf || c->wcap == OBUF_INITIAL)) {
        c->kept = true;
        c->kept_swept = false;
        l->nkept++;
        return;
    }
    weft__http_conn_release(c);
}

/* A kept connection is busy again (bytes come, or it closes). */
static inline void weft__http_conn_unkeep(conn_t *c)
{
    if (!c->kept) return;
    c->kept = false;
    c->l->nkept--;
}

/* Gives c an exchange and the buffers, because bytes may be waiting: from the listener's
 * freelist, else new. Returns 0, or WEFT_ENOMEM with c still holding nothing. */
static inline int weft__http_conn_take(conn_t *c)
{
    WEFT_ASSERT(!c->x && c->state == C_IDLE && c->rlen == 0 && c->olen == 0 && c->rcap == 0 &&
                c->ocap == 0);
    listener_t *l = c->l;
    exch_t *x = l->xfree;
    if (x) {
        l->xfree = x->next;
        if (--l->nxfree < l->xfree_low) l->xfree_low = l->nxfree;
    } else if (!(x = weft__http_exch_new(l))) {
        return WEFT_ENOMEM;
    }
    x->c = c;
    x->parser.data = c;
    c->x = x;
    c->hoff = x->hoff_inline;
    c->rbuf = x->rbuf;
    c->rcap = RBUF_INITIAL;
    c->obuf = x->obuf;
    c->ocap = x->obuf ? OBUF_INITIAL : 0;
    x->rbuf = x->obuf = NULL;
    return 0;
}

/* ---- conn.c ---- */

/* Parses the buffered bytes and runs the handlers they make ready, until the bytes are used
 * up, a handler holds a request or the output backs up; then flushes. Not reentrant: a call
 * from inside it (request_finish) returns at once and the running one goes on. */
void weft__http_conn_process(conn_t *c);
/* Writes obuf (what the socket takes at once, the rest by uv_write); none left: closes or
 * lingers if asked, tells a streaming producer it may go on (on_drain). */
void weft__http_flush(conn_t *c);
/* Reading on or off, from the room in rbuf, the request in progress and pause/resume. */
void weft__http_update_reading(conn_t *c);
/* Closes c (idempotent): the handler holding its request is told (abort), its timer and
 * its socket are closed; freed in the close callback, or by the handler's finishing call. */
void weft__http_conn_close(conn_t *c);
/* Frees a closed c and what it holds. */
void weft__http_conn_free(conn_t *c);
/* l's reader, with the connections' hooks: 0, or a libuv error (then reader.ep is -1). */
int weft__http_reading_init(listener_t *l);
/* c's socket fd joins the listener's reader, reading: 0, or a libuv error. */
int weft__http_reading_add(conn_t *c, int fd);

/* ---- request.c ---- */

/* The request is ready (H_PENDING): the filters' on_request, then its handler (or the
 * engine's 404, 405, OPTIONS * answer). */
void weft__http_dispatch(conn_t *c);
/* The handler finished the response: on_end, then close after it or ready the next
 * request. */
void weft__http_request_finish(conn_t *c);
/* The request a handler holds (H_ACTIVE) failed: on_end (aborted), on_abort. Else nothing. */
void weft__http_abort_handler(conn_t *c, int status);
/* Every filter's on_end, in reverse order. */
void weft__http_filters_end(conn_t *c, int status, bool aborted);
/* Every filter's on_head, in reverse order. */
void weft__http_filters_head(conn_t *c, int status);
/* on_event(ev) for a request a handler holds, if it asked. */
void weft__http_tell(conn_t *c, weft_http_event_t ev);
/* The client closed its side: on_event(CLIENT_CLOSED), once a request. */
void weft__http_client_closed(conn_t *c);
/* Closes the request's timer, if one was ever armed (the connection closes). */
void weft__http_timer_close(conn_t *c);

/* ---- response.c ---- */

/* Answers a request the server refuses (status, a JSON body with msg), then closes. */
void weft__http_send_error(conn_t *c, int status, const char *msg);

/* ---- listener.c ---- */

/* A listener shutting down with no connection left closes its handles, then calls back. */
void weft__http_listener_maybe_done(listener_t *l);

#endif
