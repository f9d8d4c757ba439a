/*
 * listener.c - the HTTP/1.1 server engine: listeners, connections, parsing, responses.
 *
 * Threads. A server is configured and bound on one thread, then each worker loop attaches
 * one listener (its own SO_REUSEPORT socket) and from then on every connection, buffer and
 * timer of that listener is touched only by that loop's thread. The only cross-thread read
 * is the connection count (an atomic) for metrics.
 *
 * Connections. A connection with work to do has one read buffer (rbuf), one exchange (x:
 * the llhttp parser, the request, its header arrays and arena) and two output buffers (obuf
 * collects responses; wbuf is the one libuv is writing). Requests
 * on a connection are handled one at a time: the parser pauses at the end of each message,
 * the handler runs outside the parser, and parsing of pipelined bytes resumes only when the
 * response is finished, so responses go out in order and a handler never runs inside
 * llhttp. Responses produced while a read is being processed are written with one
 * uv_try_write when the read's bytes are used up, so a pipelined batch costs one syscall.
 *
 * Buffer invariant. While a message's head is being parsed, its pieces are kept as offsets
 * from msg_start, so rbuf may be compacted or grown between reads. Once the head is
 * complete, the request's strings point into rbuf; from then on rbuf is neither moved nor
 * compacted until the request is finished, except when the request has a body: then the head
 * is copied into the arena first ("detached") and rbuf is reused for the body's bytes.
 *
 * Memory. An idle keep-alive connection holds its conn_t (about 650 bytes with its libuv
 * handle) and nothing else: a gateway keeps tens of thousands of them. When the socket has
 * been read to EAGAIN and the connection is idle with nothing buffered or being written and
 * no request in progress (conn_quiet), it gives its exchange, rbuf, obuf and wbuf back
 * (conn_release); when bytes are ready again it takes them before reading (conn_take).
 * Both go through the listener's freelist of exchanges, each of which keeps a read buffer
 * and at most one output buffer of the initial sizes (grown ones are freed), at most
 * XFREE_MAX of them (the rest are freed): taking and giving back is a few pointer moves, so
 * a busy connection pays almost nothing for it, and the memory of idle connections stays
 * bounded even though malloc keeps what is freed. An exchange on the freelist sits between
 * two messages: request_reset ran, and its parser, paused after a keep-alive message, reads
 * the next message's bytes as a fresh one would; one from a connection that closed
 * mid-message is reset first (exch_reset). When no memory can be had for ready bytes, they
 * wait in the socket and the next sweep kicks the connection again (mem_stalled). A
 * connection holding no exchange is always C_IDLE with rlen, olen, rcap and ocap 0.
 *
 * Timeouts. No timer per connection: each connection carries a deadline and a 250 ms sweep
 * per listener closes or answers 408 to the ones past it. Storing a deadline is all a
 * request pays. The same sweep refreshes the cached Date header.
 *
 * Accept errors. libuv retries a failed accept at once and calls back once per failure, so
 * an error that persists (ENOMEM, ENOBUFS, EMFILE without a spare descriptor) would keep the
 * loop in its accept loop for good. After ACCEPT_RETRIES failures in a row the listener
 * pauses: its handle is closed (which ends libuv's loop) while the socket made at bind,
 * kept as the spare (libuv's handle has a duplicate), keeps it listening, so waiting
 * connections stay queued; the next sweep opens a handle on a new duplicate. As NGINX does on
 * EMFILE, clients wait instead of being reset.
 *
 * Errors. Any malformed request is answered with a status and a JSON body, `Connection:
 * close`, then the write side is shut down and the connection lingers (reading and
 * discarding, at most 2 s) before it closes, so the client sees the answer and nothing that
 * followed the bad request is ever parsed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <llhttp.h>

#include "core/arena.h"
#include "weft/http.h"
#include "weft/log.h"

#define RBUF_INITIAL    4096
#define RBUF_MIN_READ   2048
#define OBUF_INITIAL    4096
#define OBUF_HIGH_WATER (64 * 1024)  /* stop pipelining / ask producers to wait */
#define OBUF_MAX        (256u << 20) /* a response never buffers more than this */
#define INLINE_HEADERS  24
#define XFREE_MAX       64 /* exchanges (and their buffers) a listener keeps for reuse */
#define ARENA_BLOCK     4096
#define ARENA_LIMIT     (8u << 20)
#define LINGER_MS       2000
#define SWEEP_MS        250
#define ACCEPT_RETRIES  8 /* failed accepts in a row that pause the listener until a sweep */

typedef enum {
    C_IDLE,    /* between requests */
    C_HEAD,    /* reading a request head */
    C_BODY,    /* reading a body (handler may already run, for streamed bodies) */
    C_HANDLER, /* message read; waiting for the handler's response */
    C_LINGER,  /* answered and shut down; discarding input until EOF or timeout */
} conn_state_t;

typedef struct hdr_off_s {
    uint32_t noff, nlen, voff, vlen;
} hdr_off_t;

typedef struct listener_s listener_t;
typedef struct conn_s conn_t;

/* What a connection holds only while it has work: the parser, the request with its header
 * arrays and arena, the write and shutdown requests (see "Memory" at the top). */
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
    uv_write_t wreq;
    uv_shutdown_t sreq;
    hdr_off_t hoff_inline[INLINE_HEADERS];
    weft_http_header_t hdr_inline[INLINE_HEADERS];
} exch_t;

struct conn_s {
    uv_tcp_t tcp;
    listener_t *l;
    struct conn_s *prev, *next;
    exch_t *x; /* NULL while idle with nothing buffered: then rbuf, obuf and wbuf are NULL */
    conn_state_t state;

    char *rbuf;
    size_t rcap, rlen, rpos; /* bytes held; bytes parsed */
    size_t msg_start;        /* where the current message began in rbuf */
    uint32_t url_off, url_len;
    uint32_t nhdr;
    hdr_off_t *hoff; /* offsets of the head being parsed (x->hoff_inline or x->hoff_heap) */
    bool in_value;   /* the last piece was a header value */
    bool msg_begun;

    char *body;
    size_t body_len, body_cap;
    uint64_t body_limit;
    bool body_discard; /* 404/405 with a body: read it, drop it */
    bool head_detached;

    char *obuf, *wbuf;
    size_t olen, ocap, wcap;
    char *xhdr; /* extra response headers, serialized */
    size_t xlen, xcap;

    char peer[56];      /* "ip:port" once weft_http_request_peer asked; "" before */
    uint64_t deadline;  /* read-side deadline, uv_now ms; 0: none */
    uint64_t wdeadline; /* write deadline while a write is pending */
    unsigned served;
    int err_status; /* status chosen inside a parser callback */
    const char *err_msg;

    bool processing;         /* conn_process is on the stack */
    bool in_execute;         /* llhttp_execute is on the stack */
    bool dispatch_pending;   /* message (or stream head) ready for its handler */
    bool stream_end_pending; /* streamed body ended; tell the handler outside the parser */
    bool handler_active;     /* a handler holds req and has not finished it */
    bool message_done;       /* the whole request message has been read */
    bool resp_started, resp_chunked, resp_done;
    uint64_t resp_remaining; /* content-length mode */
    bool close_after;        /* close once obuf is written */
    bool writing;
    bool reading;
    bool rready; /* the socket may hold unread bytes: edge-triggered, see do_read */
    bool kicked; /* on the listener's kick list */
    bool rdhup;  /* the peer's FIN (or an error) was reported: read until 0, not a short read */
    struct conn_s *kick_next;
    int fd;
    bool peer_eof;
    bool closing;           /* uv_close called */
    bool aborted;           /* the handler was told the client went away */
    bool free_pending;      /* closed while a handler held req */
    bool dispatched;        /* the handler has been called for this request */
    bool user_paused;       /* weft_http_request_pause */
    const char *exec_base;  /* the bytes llhttp_execute is parsing now */
    uint64_t exec_off;      /* bytes parsed on this connection before exec_base */
    uint64_t data_end;      /* stream position after the head, or after the last chunk data */
    uint32_t chunk_ext;     /* bytes of chunk extensions in this message */
    uint32_t chunk_ext_now; /* of them, in the chunk being started */
    bool chunk_start;       /* the next body bytes begin a chunk */
    bool drain_wanted;
    bool client_closed_told; /* on_event(CLIENT_CLOSED) ran for this request */
    uv_timer_t *rtimer;      /* weft_http_request_timer's; NULL until first armed */
};

struct listener_s {
    weft_http_server_t *srv;
    uv_loop_t *loop;
    unsigned index;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int ep;            /* edge-triggered epoll of the connections' reads, -1 before attach */
    uv_poll_t ep_poll; /* ep in the loop */
    uv_idle_t kick;    /* runs do_read for connections that may read again (kick_head) */
    conn_t *kick_head;
    int open_handles;
    bool attached, shutting_down;
    uint64_t shutdown_deadline;
    void (*on_done)(void *);
    void *done_arg;
    conn_t *conns;
    exch_t *xfree;    /* exchanges for connections that get bytes, with their buffers */
    unsigned nxfree;  /* on xfree: at most XFREE_MAX */
    bool mem_stalled; /* a connection found no memory for the bytes waiting: on_timer kicks */
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
    weft_http_filter_t filters[WEFT_HTTP_FILTERS_MAX];
    unsigned nfilters;
    unsigned nfilters_head; /* filters with an on_head: write_head skips the loop when 0 */
    unsigned n_loops;
    int *fds;
    uint16_t port;
    bool bound;
    unsigned conn_cap;    /* connections per loop: max_connections, or fewer (fit_conn_cap) */
    atomic_bool draining; /* weft_http_server_drain: every response says Connection: close */
    bool cap_by_nofile;   /* conn_cap is the open-file limit's, not max_connections */
    listener_t *listeners;
};

static const llhttp_settings_t parser_settings;

/* ------------------------------------------------------------------------------------ */
/* small helpers                                                                        */

static inline uint64_t loop_now(const conn_t *c)
{
    return uv_now(c->l->loop);
}

/* The connection of a request that a handler holds (its exchange is not given back before
 * the handler has finished). */
static inline conn_t *conn_of(weft_http_request_t *req)
{
    return ((exch_t *)((char *)req - offsetof(exch_t, req)))->c;
}

static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* ASCII case-insensitive a == b (blen bytes). */
static bool ieqn(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x |= 0x20;
        if (y >= 'A' && y <= 'Z') y |= 0x20;
        if (x != y) return false;
    }
    return true;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
    return ieqn(a, alen, b, strlen(b));
}

/* The same with a string literal: its length is known at compile time. */
#define IEQ_LIT(a, alen, lit) ieqn((a), (alen), (lit), sizeof(lit) - 1)

/* Eight bytes at a time (SWAR): the target and every header value are scanned for
 * control characters on each request. word_below is exact as a yes/no answer for
 * lim <= 128 (a borrow only propagates out of a byte that is itself below lim). */
#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline bool word_below(uint64_t v, unsigned lim)
{
    return ((v - ONES * lim) & ~v & HIGHS) != 0;
}

static inline bool word_has(uint64_t v, unsigned char b)
{
    return word_below(v ^ (ONES * b), 1);
}

/* A request target: no byte <= SP, no DEL. */
static bool target_clean(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = load8(p + i);
        if (word_below(v, 0x21) || word_has(v, 0x7f)) return false;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch == 0x7f) return false;
    }
    return true;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* RFC 3986 authority without user information, as Host carries it (RFC 9110 7.2): a
 * reg-name (unreserved, sub-delims, '%') or a bracketed IP literal, then ":port" with at
 * most 5 digits (RFC 3986 allows an empty port). An empty value is valid (a Host for a URI
 * without authority); a port without a host is not. Host is what a gateway routes on and
 * handlers build links from, so a value with '/', '@', blanks or quotes is refused. */
static bool authority_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0) return true;
    if (p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++)
            if (hex_digit(p[i]) < 0 && p[i] != ':' && p[i] != '.') return false;
        if (i == n || i == 1) return false;
        i++;
    } else {
        /* bit c of the pair: c is a reg-name byte (ALPHA DIGIT -._~ !$&'()*+,;= and '%') */
        static const uint64_t REGNAME[2] = {0x2bff7ff200000000ull, 0x47fffffe87fffffeull};
        for (; i < n && p[i] != ':'; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch >= 128 || !(REGNAME[ch >> 6] >> (ch & 63) & 1)) return false;
        }
        if (i == 0) return false;
    }
    if (i == n) return true;
    if (p[i] != ':' || n - i - 1 > 5) return false;
    for (i++; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

/* A target that is not origin-form ("/path?query"), RFC 9112 3.2: an absolute http(s) URI
 * is routed on its path, its authority replacing the Host header; authority-form (CONNECT)
 * is left for the router, which knows no such route (404), and asterisk-form (OPTIONS *)
 * gets 200 with an empty body from dispatch. Returns
 * NULL, or the reason for a 400. */
static const char *other_target_form(weft_http_request_t *req, uint8_t method)
{
    const char *t = req->target.base, *end = t + req->target.len;
    if (method == HTTP_CONNECT) return NULL;
    if (req->target.len == 1 && t[0] == '*')
        return method == HTTP_OPTIONS ? NULL : "the target '*' is only for OPTIONS";
    size_t n = req->target.len, skip = 0;
    if (n > 7 && IEQ_LIT(t, 7, "http://")) skip = 7;
    if (n > 8 && IEQ_LIT(t, 8, "https://")) skip = 8;
    if (!skip) return "the target must be a path ('/...') or an absolute http(s) URI";
    const char *a = t + skip, *ae = a;
    while (ae < end && *ae != '/' && *ae != '?' && *ae != '#') ae++;
    if (ae == a) return "no host in the absolute target";
    if (memchr(a, '@', (size_t)(ae - a))) return "user information in the target";
    if (!authority_valid(a, (size_t)(ae - a))) return "invalid host or port in the target";
    req->authority = (weft_str_t){a, (size_t)(ae - a)};
    /* path: from the authority's end to the query (req->path ends there already) */
    const char *pe = req->path.base + req->path.len;
    if (ae < pe && *ae == '/')
        req->path = (weft_str_t){ae, (size_t)(pe - ae)};
    else
        req->path = (weft_str_t){"/", 1};
    return NULL;
}

/* The router matched the path as sent; handlers get parameter values percent-decoded
 * ("/hello/J%C3%BCrgen%20B" -> "Jürgen B", "a%2Fb" -> "a/b" within one segment), copied
 * into the arena when they hold a '%'. Returns NULL, or the reason for a 400 (a '%' not
 * followed by two hex digits; %00, which a handler treating the value as a C string
 * would cut short), or "out of memory" (503). */
static const char *decode_params(conn_t *c, weft_route_match_t *m)
{
    for (unsigned i = 0; i < m->nparams; i++) {
        weft_str_t *v = &m->params[i].value;
        if (v->len == 0 || !memchr(v->base, '%', v->len)) continue;
        char *out = weft_arena_alloc(&c->x->arena, v->len);
        if (!out) return "out of memory";
        size_t o = 0;
        for (size_t k = 0; k < v->len; k++) {
            char ch = v->base[k];
            if (ch == '%') {
                int hi = k + 2 < v->len ? hex_digit(v->base[k + 1]) : -1;
                int lo = hi >= 0 ? hex_digit(v->base[k + 2]) : -1;
                if (lo < 0) return "invalid percent-encoding in a path parameter";
                if (hi == 0 && lo == 0) return "%00 in a path parameter";
                ch = (char)(hi << 4 | lo);
                k += 2;
            }
            out[o++] = ch;
        }
        *v = (weft_str_t){out, o};
    }
    return NULL;
}

/* A header value: no CR, LF or NUL (bytes below 0x0e are looked at one by one). */
static bool value_clean(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (word_below(load8(p + i), 0x0e)) break;
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r' || ch == '\n' || ch == 0) return false;
    }
    return true;
}

/* RFC 9110 tchar, as a table: header names are checked byte by byte on every request. */
static const uint8_t tchar_table[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline bool is_tchar(unsigned char ch)
{
    return tchar_table[ch] != 0;
}

const char *weft_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ------------------------------------------------------------------------------------ */
/* exchanges and buffers: taken when bytes arrive, given back when idle                 */

/* A new exchange with a read buffer of RBUF_INITIAL bytes; NULL when out of memory. */
static exch_t *exch_new(listener_t *l)
{
    exch_t *x = calloc(1, sizeof(*x));
    char *rbuf = x ? malloc(RBUF_INITIAL) : NULL;
    if (!rbuf) {
        free(x);
        return NULL;
    }
    x->rbuf = rbuf;
    llhttp_init(&x->parser, HTTP_REQUEST, &parser_settings);
    weft_arena_init(&x->arena, ARENA_BLOCK, ARENA_LIMIT);
    x->req.loop = l->loop;
    return x;
}

static void exch_free(exch_t *x)
{
    weft_arena_free(&x->arena);
    free(x->hoff_heap);
    free(x->rbuf);
    free(x->obuf);
    free(x);
}

/* An exchange whose connection closed at any point of a message, made as good as new. */
static void exch_reset(exch_t *x, listener_t *l)
{
    weft_arena_reset(&x->arena);
    llhttp_init(&x->parser, HTTP_REQUEST, &parser_settings);
    memset(&x->req, 0, sizeof(x->req));
    x->req.loop = l->loop;
}

/* Frees the listener's freelist. */
static void xfree_drain(listener_t *l)
{
    while (l->xfree) {
        exch_t *x = l->xfree;
        l->xfree = x->next;
        exch_free(x);
    }
    l->nxfree = 0;
}

/* Gives c an exchange and the buffers, because bytes may be waiting: from the listener's
 * freelist, else new. Returns 0, or WEFT_ENOMEM with c still holding nothing. */
static int conn_take(conn_t *c)
{
    listener_t *l = c->l;
    exch_t *x = l->xfree;
    if (x) {
        l->xfree = x->next;
        l->nxfree--;
    } else if (!(x = exch_new(l))) {
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

/* Idle with nothing buffered, nothing to write, no request in progress and the socket read
 * to EAGAIN: what the exchange and the buffers hold is no longer needed. */
static inline bool conn_quiet(const conn_t *c)
{
    return c->x && c->state == C_IDLE && !c->rready && c->rlen == 0 && c->olen == 0 &&
           !c->writing && !c->handler_active && !c->dispatch_pending && !c->close_after &&
           !c->closing && !c->processing;
}

/* c gives its exchange and buffers back: to the listener's freelist with one read buffer and
 * at most one output buffer, both of the initial size, or to malloc when the freelist is
 * full. The exchange is between two messages (request_reset ran) or was reset. */
static void conn_release(conn_t *c)
{
    listener_t *l = c->l;
    exch_t *x = c->x;
    char *rbuf = c->rbuf, *obuf = c->obuf;
    if (c->ocap != OBUF_INITIAL) { /* grown, or none: wbuf may be one of the initial size */
        free(obuf);
        obuf = NULL;
        if (c->wcap == OBUF_INITIAL) {
            obuf = c->wbuf;
            c->wbuf = NULL;
        }
    }
    if (c->wbuf) free(c->wbuf);
    if (c->rcap != RBUF_INITIAL) {
        free(rbuf);
        rbuf = NULL;
    }
    c->x = NULL;
    c->rbuf = c->obuf = c->wbuf = NULL;
    c->rcap = c->rlen = c->rpos = c->ocap = c->olen = c->wcap = 0;
    x->rbuf = rbuf;
    x->obuf = obuf;
    if (l->nxfree == XFREE_MAX || (!rbuf && !(x->rbuf = malloc(RBUF_INITIAL)))) {
        exch_free(x);
        return;
    }
    x->c = NULL;
    x->next = l->xfree;
    l->xfree = x;
    l->nxfree++;
}

/* ------------------------------------------------------------------------------------ */
/* output                                                                               */

static void conn_close(conn_t *c);
static void conn_process(conn_t *c);
static void request_finish(conn_t *c);
static void on_write(uv_write_t *w, int status);
static void update_reading(conn_t *c);
static void kick(conn_t *c);

/* Makes room for n more bytes in obuf. */
static int out_reserve(conn_t *c, size_t n)
{
    if (c->ocap - c->olen >= n) return 0;
    size_t need = c->olen + n;
    if (need > OBUF_MAX) return WEFT_ENOMEM;
    size_t cap = c->ocap ? c->ocap : OBUF_INITIAL;
    while (cap < need) cap *= 2;
    char *p = realloc(c->obuf, cap);
    if (!p) return WEFT_ENOMEM;
    c->obuf = p;
    c->ocap = cap;
    return 0;
}

static inline void out_put(conn_t *c, const void *p, size_t n)
{
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}

static void after_flush(conn_t *c);

/* Writes obuf: first with uv_try_write, the rest with uv_write from wbuf. */
static void flush(conn_t *c)
{
    if (c->writing || c->closing) return;
    if (c->olen == 0) {
        after_flush(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->obuf, (unsigned)c->olen);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
    if (r < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)r == c->olen) {
        c->olen = 0;
        after_flush(c);
        return;
    }
    /* Partial: hand the rest to libuv from wbuf; obuf keeps collecting. */
    char *tmp = c->wbuf;
    size_t tcap = c->wcap;
    c->wbuf = c->obuf;
    c->wcap = c->ocap;
    c->obuf = tmp;
    c->ocap = tcap;
    size_t rest = c->olen - (size_t)r;
    c->olen = 0;
    uv_buf_t wb = uv_buf_init(c->wbuf + r, (unsigned)rest);
    if (uv_write(&c->x->wreq, (uv_stream_t *)&c->tcp, &wb, 1, on_write) != 0) {
        conn_close(c);
        return;
    }
    c->writing = true;
    c->wdeadline = loop_now(c) + c->l->srv->o.write_timeout_ms;
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    conn_t *c = s->data;
    if (status < 0 || c->peer_eof) conn_close(c);
}

/* Nothing is waiting to be written: close if asked, tell a streaming producer. */
static void after_flush(conn_t *c)
{
    if (c->close_after && c->state != C_LINGER) {
        if (c->handler_active) return; /* the response is still streaming */
        c->state = C_LINGER;
        c->deadline = loop_now(c) + LINGER_MS;
        c->x->sreq.data = c;
        if (uv_shutdown(&c->x->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
        return;
    }
    if (c->drain_wanted && c->handler_active && c->x->req.on_drain) {
        c->drain_wanted = false;
        c->x->req.on_drain(&c->x->req);
    }
}

static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->handle->data;
    c->writing = false;
    c->wdeadline = 0;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->closing) return;
    flush(c);
    /* A pipelined batch paused on the high-water mark can go on now. */
    if (!c->writing && c->olen == 0 && !c->closing && c->state != C_HANDLER) conn_process(c);
}

/* ------------------------------------------------------------------------------------ */
/* the pipeline: filters around every request                                           */

/* The loggers: every filter's on_end, in reverse order, once per request. */
static void filters_end(conn_t *c, int status, bool aborted)
{
    weft_http_server_t *s = c->l->srv;
    for (unsigned i = s->nfilters; i-- > 0;) {
        const weft_http_filter_t *f = &s->filters[i];
        if (f->on_end) f->on_end(&c->x->req, status, aborted, f->arg);
    }
}

/* Before the handler: each on_request in order; true when one of them took the request. */
static bool filters_request(conn_t *c)
{
    weft_http_server_t *s = c->l->srv;
    for (unsigned i = 0; i < s->nfilters; i++) {
        const weft_http_filter_t *f = &s->filters[i];
        if (f->on_request && f->on_request(&c->x->req, f->arg) == WEFT_HTTP_DONE) return true;
    }
    return false;
}

/* Just before a handler's response head is written: each on_head, in reverse order. */
static void filters_head(conn_t *c, int status)
{
    weft_http_server_t *s = c->l->srv;
    for (unsigned i = s->nfilters; i-- > 0;) {
        const weft_http_filter_t *f = &s->filters[i];
        if (f->on_head) f->on_head(&c->x->req, status, f->arg);
    }
}

/* ------------------------------------------------------------------------------------ */
/* responses                                                                            */

static int write_head(conn_t *c, int status, const char *ctype, int64_t clen, bool chunked)
{
    weft_http_request_t *req = &c->x->req;
    if (c->l->srv->nfilters_head && c->handler_active) filters_head(c, status);
    const char *reason = weft_http_status_text(status);
    size_t rlen = strlen(reason), tlen = ctype ? strlen(ctype) : 0;
    size_t need = 64 + rlen + c->l->date_len + tlen + c->xlen + 64;
    if (out_reserve(c, need) != 0) return WEFT_ENOMEM;
    if (c->l->shutting_down ||
        (c->l->srv->o.max_keepalive_requests &&
         c->served + 1 >= c->l->srv->o.max_keepalive_requests) ||
        atomic_load_explicit(&c->l->srv->draining, memory_order_relaxed))
        req->keep_alive = false;

    char *o = c->obuf + c->olen;
    memcpy(o, "HTTP/1.1 ", 9);
    o[9] = (char)('0' + status / 100 % 10);
    o[10] = (char)('0' + status / 10 % 10);
    o[11] = (char)('0' + status % 10);
    o[12] = ' ';
    o += 13;
    memcpy(o, reason, rlen);
    o += rlen;
    *o++ = '\r';
    *o++ = '\n';
    memcpy(o, c->l->date, c->l->date_len);
    o += c->l->date_len;
    if (ctype) {
        memcpy(o, "Content-Type: ", 14);
        o += 14;
        memcpy(o, ctype, tlen);
        o += tlen;
        *o++ = '\r';
        *o++ = '\n';
    }
    bool no_body_status = status < 200 || status == 204 || status == 304;
    if (chunked) {
        memcpy(o, "Transfer-Encoding: chunked\r\n", 28);
        o += 28;
    } else if (clen >= 0 && !(no_body_status)) {
        memcpy(o, "Content-Length: ", 16);
        o += 16;
        o += fmt_u64(o, (uint64_t)clen);
        *o++ = '\r';
        *o++ = '\n';
    }
    if (c->xlen) {
        memcpy(o, c->xhdr, c->xlen);
        o += c->xlen;
    }
    if (!req->keep_alive) {
        memcpy(o, "Connection: close\r\n", 19);
        o += 19;
    } else if (req->version_minor == 0) {
        memcpy(o, "Connection: keep-alive\r\n", 24);
        o += 24;
    }
    *o++ = '\r';
    *o++ = '\n';
    c->olen = (size_t)(o - c->obuf);
    req->status = status;
    c->resp_started = true;
    return 0;
}

static void conn_free(conn_t *c)
{
    if (c->x && !c->free_pending) {
        exch_reset(c->x, c->l);
        conn_release(c);
    } else if (c->x) { /* a handler finished after the close: the listener may be gone */
        exch_free(c->x);
        free(c->rbuf);
        free(c->obuf);
        free(c->wbuf);
    }
    free(c);
}

/* The handler of an aborted request gives up its hold; frees a connection closed meanwhile. */
static bool release_if_aborted(conn_t *c)
{
    if (!c->aborted) return false;
    c->handler_active = false;
    if (c->free_pending) conn_free(c);
    return true;
}

int weft_http_respond(weft_http_request_t *req, int status, const char *content_type,
                      const void *body, size_t len)
{
    conn_t *c = conn_of(req);
    if (!c->handler_active) return WEFT_ESTATE;
    if (release_if_aborted(c)) return WEFT_ECLOSED;
    if (c->resp_started) return WEFT_ESTATE;
    if (status < 100 || status > 999) status = 500;
    if (write_head(c, status, content_type, (int64_t)len, false) != 0 ||
        (!req->is_head && len && out_reserve(c, len) != 0)) {
        c->olen = 0;
        c->x->req.keep_alive = false;
        c->close_after = true;
        request_finish(c);
        return WEFT_ENOMEM;
    }
    if (!req->is_head && len) out_put(c, body, len);
    request_finish(c);
    return 0;
}

int weft_http_response_start(weft_http_request_t *req, int status, const char *content_type,
                             int64_t content_length)
{
    conn_t *c = conn_of(req);
    if (!c->handler_active || c->resp_started) return WEFT_ESTATE;
    if (c->closing) return WEFT_ECLOSED;
    bool chunked = content_length < 0 && req->version_minor >= 1;
    if (content_length < 0 && !chunked) req->keep_alive = false; /* HTTP/1.0: close ends it */
    if (write_head(c, status, content_type, content_length, chunked) != 0) return WEFT_ENOMEM;
    c->resp_chunked = chunked;
    c->resp_remaining = content_length < 0 ? UINT64_MAX : (uint64_t)content_length;
    if (!c->processing) flush(c);
    return 0;
}

int weft_http_response_write(weft_http_request_t *req, const void *data, size_t len)
{
    conn_t *c = conn_of(req);
    if (!c->handler_active || !c->resp_started || c->resp_done) return WEFT_ESTATE;
    if (c->closing) return WEFT_ECLOSED;
    if (len == 0 || req->is_head) return 0;
    if (!c->resp_chunked && c->resp_remaining != UINT64_MAX) {
        if (len > c->resp_remaining) return WEFT_ERANGE;
        c->resp_remaining -= len;
    }
    if (out_reserve(c, len + 24) != 0) return WEFT_ENOMEM;
    if (c->resp_chunked) {
        char size[20];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        out_put(c, size, (size_t)n);
    }
    out_put(c, data, len);
    if (c->resp_chunked) out_put(c, "\r\n", 2);
    if (!c->processing) flush(c);
    if (c->olen + (c->writing ? 1 : 0) > OBUF_HIGH_WATER) {
        c->drain_wanted = true;
        return WEFT_EAGAIN;
    }
    return 0;
}

int weft_http_response_end(weft_http_request_t *req)
{
    conn_t *c = conn_of(req);
    if (!c->handler_active) return WEFT_ESTATE;
    if (release_if_aborted(c)) return WEFT_ECLOSED;
    if (!c->resp_started) return weft_http_respond(req, 200, NULL, NULL, 0);
    if (c->resp_chunked && !req->is_head) {
        if (out_reserve(c, 5) != 0) {
            c->close_after = true;
        } else {
            out_put(c, "0\r\n\r\n", 5);
        }
    } else if (c->resp_remaining != UINT64_MAX && c->resp_remaining != 0 && !req->is_head) {
        /* Fewer bytes than announced: the framing is broken; only closing can say so. */
        req->keep_alive = false;
    }
    request_finish(c);
    return 0;
}

int weft_http_response_header(weft_http_request_t *req, const char *name, const char *value)
{
    conn_t *c = conn_of(req);
    if (!c->handler_active || c->resp_started) return WEFT_ESTATE;
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0) return WEFT_EINVAL;
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)name[i])) return WEFT_EINVAL;
    for (size_t i = 0; i < vl; i++)
        if (value[i] == '\r' || value[i] == '\n') return WEFT_EINVAL;
    if (ieq(name, nl, "content-length") || ieq(name, nl, "transfer-encoding") ||
        ieq(name, nl, "date") || ieq(name, nl, "connection"))
        return WEFT_EINVAL;
    size_t need = c->xlen + nl + vl + 4;
    if (need > c->xcap) {
        size_t cap = c->xcap ? c->xcap * 2 : 256;
        while (cap < need) cap *= 2;
        char *p = weft_arena_alloc(&c->x->arena, cap);
        if (!p) return WEFT_ENOMEM;
        if (c->xlen) memcpy(p, c->xhdr, c->xlen);
        c->xhdr = p;
        c->xcap = cap;
    }
    memcpy(c->xhdr + c->xlen, name, nl);
    c->xlen += nl;
    c->xhdr[c->xlen++] = ':';
    c->xhdr[c->xlen++] = ' ';
    memcpy(c->xhdr + c->xlen, value, vl);
    c->xlen += vl;
    c->xhdr[c->xlen++] = '\r';
    c->xhdr[c->xlen++] = '\n';
    return 0;
}

static void abort_handler(conn_t *c, int status)
{
    if (!c->handler_active || c->resp_done || c->aborted) return;
    c->aborted = true;
    if (c->rtimer) uv_timer_stop(c->rtimer);
    filters_end(c, status, true);
    if (c->x->req.on_abort) c->x->req.on_abort(&c->x->req);
}

/* Answers a request the server rejects, then closes. Works at any point of parsing; a
 * handler holding the request (streamed body) is told through its abort callback. */
static void send_error(conn_t *c, int status, const char *msg)
{
    if (c->closing || c->state == C_LINGER) return;
    weft_http_request_t *req = &c->x->req;
    c->close_after = true;
    c->dispatch_pending = false;
    bool was_active = c->handler_active;
    abort_handler(c, status);
    if (c->resp_started) return; /* too late to answer: the handler's response is going out */
    req->keep_alive = false;
    c->xlen = 0;
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);
    if (n < 0 || (size_t)n >= sizeof(body)) n = 0;
    if (write_head(c, status, "application/json", n, false) == 0 && out_reserve(c, (size_t)n) == 0)
        out_put(c, body, (size_t)n);
    if (!was_active) filters_end(c, status, false);
    if (!c->processing) flush(c);
}

/* ------------------------------------------------------------------------------------ */
/* request life cycle                                                                   */

/* Everything about the request that just ended is forgotten; rbuf keeps unparsed bytes. */
static void request_reset(conn_t *c)
{
    weft_arena_reset(&c->x->arena);
    memset(&c->x->req, 0, offsetof(weft_http_request_t, on_body));
    c->x->req.on_body = NULL;
    c->x->req.on_drain = NULL;
    c->x->req.on_abort = NULL;
    c->x->req.on_event = NULL;
    c->x->req.status = 0;
    c->x->req.loop = c->l->loop;
    c->nhdr = 0;
    c->hoff = c->x->hoff_inline;
    c->url_len = 0;
    c->in_value = false;
    c->msg_begun = false;
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    c->body_discard = false;
    c->head_detached = false;
    c->xhdr = NULL;
    c->xlen = c->xcap = 0;
    c->resp_started = c->resp_chunked = c->resp_done = false;
    c->message_done = false;
    c->dispatched = false;
    c->stream_end_pending = false;
    c->aborted = false;
    c->msg_start = 0;
    c->err_status = 0;
    c->err_msg = NULL;
    c->drain_wanted = false;
    c->client_closed_told = false;
}

/* Moves the bytes still needed (a partial head, or unparsed bytes) to the front of rbuf.
 * Only while no request string points into rbuf. */
static void compact(conn_t *c)
{
    size_t from = c->msg_begun ? c->msg_start : c->rpos;
    if (from == 0) return;
    size_t rest = c->rlen - from;
    if (rest) memmove(c->rbuf, c->rbuf + from, rest);
    c->rlen = rest;
    c->rpos -= from;
    c->msg_start = 0;
}

/* The handler finished the response (or the server did, for errors and 404s). */
static void request_finish(conn_t *c)
{
    weft_http_request_t *req = &c->x->req;
    c->resp_done = true;
    c->handler_active = false;
    c->served++;
    if (c->rtimer) uv_timer_stop(c->rtimer);
    if (!c->aborted) filters_end(c, req->status, false);
    if (!req->keep_alive || !c->message_done) {
        /* Unread body bytes (an early answer) cannot be told apart from a next request. */
        c->close_after = true;
    }
    if (c->close_after) {
        if (!c->processing) flush(c);
        return;
    }
    request_reset(c);
    c->state = C_IDLE;
    c->deadline = loop_now(c) + c->l->srv->o.idle_timeout_ms;
    if (!c->processing) {
        conn_process(c);
    }
}

static void dispatch(conn_t *c)
{
    weft_http_request_t *req = &c->x->req;
    weft_http_server_t *s = c->l->srv;
    c->dispatch_pending = false;
    c->dispatched = true;
    c->handler_active = true;
    if (s->nfilters && filters_request(c)) return;
    if (req->route) {
        req->route->handler(req, req->route->arg);
        return;
    }
    /* OPTIONS * asks about the server as a whole (RFC 9110 9.3.7): it is up. Load balancers
     * use it as a health check (HAProxy's "option httpchk OPTIONS *"), and want a 2xx. */
    if (req->target.len == 1 && req->target.base[0] == '*') {
        weft_http_respond(req, 200, NULL, NULL, 0);
        return;
    }
    /* No route: 404 or 405, decided again here to build the Allow header. */
    char allow[128];
    weft_route_match_t m;
    weft_route_result_t r =
        weft_router_match(s->router, req->method, req->path, &m, allow, sizeof(allow));
    char body[160];
    if (r == WEFT_ROUTE_METHOD_NOT_ALLOWED) {
        weft_http_response_header(req, "Allow", allow);
        int n = snprintf(body, sizeof(body),
                         "{\"error\":\"method not allowed\",\"allow\":\"%s\"}\n", allow);
        weft_http_respond(req, 405, "application/json", body, (size_t)n);
    } else {
        static const char nf[] = "{\"error\":\"not found\"}\n";
        weft_http_respond(req, 404, "application/json", nf, sizeof(nf) - 1);
    }
}

/* Copies the head's strings into the arena so that rbuf can be reused for the body. */
static int detach_head(conn_t *c)
{
    if (c->head_detached) return 0;
    weft_http_request_t *req = &c->x->req;
    const char *lo = c->rbuf + c->msg_start;
    size_t n = c->url_off + c->url_len; /* the head's extent: its last string's end */
    for (uint32_t i = 0; i < c->nhdr; i++) {
        size_t e = c->hoff[i].voff + c->hoff[i].vlen, f = c->hoff[i].noff + c->hoff[i].nlen;
        if (e > n) n = e;
        if (f > n) n = f;
    }
    const char *hi = lo + n;
    char *copy = weft_arena_alloc(&c->x->arena, n ? n : 1);
    if (!copy) return WEFT_ENOMEM;
    memcpy(copy, lo, n);
#define REBASE(s)                                                                                  \
    do {                                                                                           \
        if ((s).base >= lo && (s).base < hi) (s).base = copy + ((s).base - lo);                    \
    } while (0)
    REBASE(req->target);
    REBASE(req->path);
    REBASE(req->query);
    REBASE(req->authority);
    weft_http_header_t *hs = (weft_http_header_t *)req->headers;
    for (size_t i = 0; i < req->nheaders; i++) {
        REBASE(hs[i].name);
        REBASE(hs[i].value);
    }
    for (unsigned i = 0; i < req->match.nparams; i++) {
        REBASE(req->match.params[i].name);
        REBASE(req->match.params[i].value);
    }
#undef REBASE
    c->head_detached = true;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* parser callbacks (run inside llhttp_execute: no handler code, no rbuf moves)         */

#define CHUNK_EXT_MAX  4096 /* chunk extension bytes per message (CVE-2024-22019's class) */
#define CHUNK_SIZE_MAX 16   /* hex digits of a chunk size, leading zeros included */

static inline uint64_t pos_of(const conn_t *c, const char *at)
{
    return c->exec_off + (uint64_t)(at - c->exec_base);
}

static int p_message_begin(llhttp_t *p)
{
    conn_t *c = p->data;
    c->state = C_HEAD;
    c->deadline = loop_now(c) + c->l->srv->o.head_timeout_ms;
    return 0;
}

static inline void mark_start(conn_t *c, const char *at)
{
    if (!c->msg_begun) {
        c->msg_begun = true;
        c->msg_start = (size_t)(at - c->rbuf);
    }
}

static int p_method(llhttp_t *p, const char *at, size_t len)
{
    mark_start(p->data, at);
    return 0;
}

static int reject(conn_t *c, int status, const char *msg)
{
    c->err_status = status;
    c->err_msg = msg;
    return -1;
}

static int p_url(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    mark_start(c, at);
    if (c->url_len == 0) c->url_off = (uint32_t)(at - c->rbuf - c->msg_start);
    if (c->url_len + len > c->l->srv->o.max_target)
        return reject(c, 414, "request target longer than the limit (http.max_target_size)");
    c->url_len += (uint32_t)len;
    return 0;
}

static int p_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->state == C_BODY) { /* a trailer: checked here, not kept */
        for (size_t i = 0; i < len; i++)
            if (!is_tchar((unsigned char)at[i]))
                return reject(c, 400, "invalid character in a trailer name");
        return 0;
    }
    if (c->nhdr == 0 || c->in_value) {
        weft_http_server_t *s = c->l->srv;
        if (c->nhdr >= s->o.max_headers)
            return reject(c, 431, "more header lines than the limit (http.max_headers)");
        if (c->nhdr == INLINE_HEADERS) {
            if (!c->x->hoff_heap) {
                c->x->hoff_heap = malloc(sizeof(hdr_off_t) * s->o.max_headers);
                if (!c->x->hoff_heap) return reject(c, 503, "out of memory");
            }
            memcpy(c->x->hoff_heap, c->x->hoff_inline, sizeof(c->x->hoff_inline));
            c->hoff = c->x->hoff_heap;
        }
        hdr_off_t *h = &c->hoff[c->nhdr++];
        h->noff = (uint32_t)(at - c->rbuf - c->msg_start);
        h->nlen = 0;
        h->voff = 0;
        h->vlen = 0;
        c->in_value = false;
    }
    c->hoff[c->nhdr - 1].nlen += (uint32_t)len;
    return 0;
}

static int p_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->state == C_BODY) {
        for (size_t i = 0; i < len; i++)
            if (at[i] == '\r' || at[i] == '\n' || at[i] == 0)
                return reject(c, 400, "control character in a trailer value");
        return 0;
    }
    hdr_off_t *h = &c->hoff[c->nhdr - 1];
    if (h->vlen == 0) h->voff = (uint32_t)(at - c->rbuf - c->msg_start);
    h->vlen += (uint32_t)len;
    c->in_value = true;
    return 0;
}

static int p_header_value_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if (c->state == C_BODY) return 0;
    c->in_value = true;
    return 0;
}

/* RFC 9112 6.1 and 6.3: chunked must be the final coding (else 400: the length cannot be
 * known), applied once (else 400); any other coding before it is one weft does not
 * implement (501). */
static int check_transfer_encoding(conn_t *c, const weft_http_header_t *hs, size_t n)
{
    int chunked = 0, unknown = 0, last_chunked = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ieq(hs[i].name.base, hs[i].name.len, "transfer-encoding")) continue;
        const char *v = hs[i].value.base, *end = v + hs[i].value.len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) v++;
            const char *t = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t' && *v != ';') v++;
            if (v < end && *v == ';') return reject(c, 400, "transfer coding parameters");
            if (v == t) continue; /* only at the end: every other stop char was skipped */
            last_chunked = ieq(t, (size_t)(v - t), "chunked");
            if (last_chunked)
                chunked++;
            else
                unknown++;
        }
    }
    if (!last_chunked) return reject(c, 400, "chunked is not the final transfer coding");
    if (chunked > 1) return reject(c, 400, "chunked applied more than once");
    if (unknown) return reject(c, 501, "unsupported transfer coding");
    return 0;
}

static int p_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    weft_http_server_t *s = c->l->srv;
    weft_http_request_t *req = &c->x->req;
    const char *base = c->rbuf + c->msg_start;

    /* Request line: exactly "METHOD SP target SP HTTP/x.y" (llhttp lets extra spaces by). */
    const char *mname = llhttp_method_name((llhttp_method_t)p->method);
    size_t mlen = strlen(mname);
    const char *after_url = base + c->url_off + c->url_len;
    if (c->url_off != mlen + 1) return reject(c, 400, "malformed request line");
    if (p->http_major == 0 && p->http_minor == 9 && *after_url != ' ')
        return reject(c, 400, "missing HTTP version in the request line");
    if (*after_url != ' ' || after_url[1] != 'H') return reject(c, 400, "malformed request line");
    {
        /* The end of the head: every CR is followed by LF, and the size is within limit
         * even when the whole head came in one read. */
        size_t hi = c->url_off + c->url_len;
        for (uint32_t i = 0; i < c->nhdr; i++) {
            size_t e = c->hoff[i].voff + c->hoff[i].vlen, f = c->hoff[i].noff + c->hoff[i].nlen;
            if (e > hi) hi = e;
            if (f > hi) hi = f;
        }
        const char *q = base + hi, *lim = c->rbuf + c->rlen;
        int lfs = 0;
        while (q < lim && lfs < 2) {
            if (*q == '\r' && (q + 1 >= lim || q[1] != '\n'))
                return reject(c, 400, "bare CR in the request head");
            if (*q == '\n') lfs++;
            q++;
        }
        if ((size_t)(q - base) > c->l->srv->o.max_head)
            return reject(c, 431, "request head larger than the limit (http.max_head_size)");
        c->data_end = pos_of(c, q);
        c->chunk_start = true;
        c->chunk_ext = c->chunk_ext_now = 0;
    }
    if (p->http_major != 1 || p->http_minor > 1)
        return reject(c, 505, "HTTP version not supported");
    req->version_minor = (uint8_t)p->http_minor;
    req->method = (weft_str_t){mname, mlen};
    req->target = (weft_str_t){base + c->url_off, c->url_len};
    if (req->target.len == 0) return reject(c, 400, "empty request target");
    const char *q = memchr(req->target.base, '?', req->target.len);
    if (q) {
        req->path = (weft_str_t){req->target.base, (size_t)(q - req->target.base)};
        req->query = (weft_str_t){q + 1, req->target.len - req->path.len - 1};
    } else {
        req->path = req->target;
        req->query = (weft_str_t){req->target.base + req->target.len, 0};
    }
    if (!target_clean(req->target.base, req->target.len))
        return reject(c, 400, "control character in the target");
    req->authority = (weft_str_t){base, 0};
    if (req->target.base[0] != '/') {
        const char *why = other_target_form(req, p->method);
        if (why) return reject(c, 400, why);
    }

    weft_http_header_t *hs = c->nhdr <= INLINE_HEADERS
                                 ? c->x->hdr_inline
                                 : weft_arena_alloc(&c->x->arena, sizeof(*hs) * c->nhdr);
    if (!hs) return reject(c, 503, "out of memory");
    int hosts = 0;
    bool expect_continue = false, has_te = false, absolute = req->authority.len > 0;
    for (uint32_t i = 0; i < c->nhdr; i++) {
        hdr_off_t *h = &c->hoff[i];
        hs[i].name = (weft_str_t){base + h->noff, h->nlen};
        const char *v = base + h->voff;
        size_t vl = h->vlen;
        /* llhttp hands over the raw value: trim trailing whitespace; reject folds/CR/NUL. */
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
        if (!value_clean(v, vl))
            return reject(c, 400, "line folding or control character in a header value");
        if (h->vlen == 0) v = base;
        hs[i].value = (weft_str_t){v, vl};
        if (h->nlen == 0) return reject(c, 400, "empty header name");
        for (uint32_t k = 0; k < h->nlen; k++)
            if (!is_tchar((unsigned char)hs[i].name.base[k]))
                return reject(c, 400, "invalid character in a header name");
        switch (h->nlen) {
        case 4:
            if (IEQ_LIT(hs[i].name.base, 4, "host")) {
                hosts++;
                if (!authority_valid(v, vl)) return reject(c, 400, "invalid Host header");
                if (!absolute) req->authority = hs[i].value;
            }
            break;
        case 6:
            if (IEQ_LIT(hs[i].name.base, 6, "expect")) {
                if (!IEQ_LIT(v, vl, "100-continue"))
                    return reject(c, 417, "unsupported expectation");
                expect_continue = true;
            }
            break;
        case 17:
            if (IEQ_LIT(hs[i].name.base, 17, "transfer-encoding")) has_te = true;
            break;
        }
    }
    req->headers = hs;
    req->nheaders = c->nhdr;
    if (hosts > 1) return reject(c, 400, "more than one Host header");
    if (hosts == 0 && req->version_minor == 1) return reject(c, 400, "missing Host header");
    if (has_te && check_transfer_encoding(c, hs, c->nhdr) != 0) return -1;

    bool chunked = (p->flags & F_CHUNKED) != 0;
    req->content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : UINT64_MAX;
    req->keep_alive = llhttp_should_keep_alive(p) != 0 && !p->upgrade; /* no upgrades: close */
    req->is_head = p->method == HTTP_HEAD;
    req->start_ns = weft_now_ns();
    req->loop = c->l->loop;

    weft_route_match_t *m = &req->match;
    weft_route_result_t r = weft_router_match(s->router, req->method, req->path, m, NULL, 0);
    if (r == WEFT_ROUTE_FOUND) {
        req->route = m->value;
        req->route_pattern = m->pattern;
        const char *why = decode_params(c, m);
        if (why) return reject(c, strcmp(why, "out of memory") == 0 ? 503 : 400, why);
    } else {
        req->route = NULL;
        m->nparams = 0;
    }
    c->body_limit = req->route && req->route->max_body ? req->route->max_body : s->o.max_body;
    bool has_body = chunked || (req->content_length != UINT64_MAX && req->content_length > 0);
    if (req->content_length != UINT64_MAX && req->content_length > c->body_limit)
        return reject(c, 413, "request body larger than the limit (http.max_body_size)");
    if (has_body) {
        if (detach_head(c) != 0) return reject(c, 503, "out of memory");
        c->state = C_BODY;
        c->deadline = loop_now(c) + s->o.body_timeout_ms;
        c->body_discard = req->route == NULL;
        if (expect_continue && req->version_minor >= 1 && out_reserve(c, 25) == 0) {
            out_put(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            flush(c);
        }
        if (req->route && req->route->stream_body) {
            c->dispatch_pending = true;
            return HPE_PAUSED;
        }
        if (!c->body_discard && !chunked) {
            c->body = weft_arena_alloc(&c->x->arena, (size_t)req->content_length);
            if (!c->body) return reject(c, 413, "request body does not fit in memory");
            c->body_cap = (size_t)req->content_length;
        }
    }
    return 0;
}

static int p_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (p->flags & F_CHUNKED) {
        uint64_t here = pos_of(c, at);
        if (c->chunk_start) {
            /* Between the last data (or the head) and this chunk's data: CRLF, the size,
             * extensions, CRLF. Anything longer is a size with too many digits. */
            if (here - c->data_end > c->chunk_ext_now + CHUNK_SIZE_MAX + 4)
                return reject(c, 400, "chunk size longer than 16 hex digits");
            c->chunk_start = false;
            c->chunk_ext_now = 0;
        }
        c->data_end = here + len;
    }
    c->deadline = loop_now(c) + c->l->srv->o.body_timeout_ms;
    if (c->body_len + len > c->body_limit)
        return reject(c, 413, "request body larger than the limit (http.max_body_size)");
    weft_http_request_t *req = &c->x->req;
    if (req->route && req->route->stream_body) {
        c->body_len += len;
        if (req->on_body && c->handler_active && !c->resp_done) req->on_body(req, at, len);
        return 0;
    }
    if (c->body_discard) {
        c->body_len += len;
        return 0;
    }
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap * 2 : 4096;
        while (cap < c->body_len + len) cap *= 2;
        if (cap > c->body_limit) cap = (size_t)c->body_limit;
        char *nb = weft_arena_alloc(&c->x->arena, cap);
        if (!nb) return reject(c, 413, "request body does not fit in memory");
        if (c->body_len) memcpy(nb, c->body, c->body_len);
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int p_chunk_header(llhttp_t *p)
{
    ((conn_t *)p->data)->chunk_start = true;
    return 0;
}

static int p_chunk_ext(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    c->chunk_ext += (uint32_t)len + 2; /* with the ';' and '=' around it, roughly */
    c->chunk_ext_now += (uint32_t)len + 2;
    if (c->chunk_ext > CHUNK_EXT_MAX)
        return reject(c, 400, "chunk extensions longer than 4096 bytes");
    return 0;
}

static int p_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    weft_http_request_t *req = &c->x->req;
    c->message_done = true;
    c->deadline = 0;
    req->body = (weft_str_t){c->body ? c->body : "", c->body_len};
    if (!c->dispatched) c->dispatch_pending = true;
    if (req->route && req->route->stream_body) c->stream_end_pending = true;
    c->state = C_HANDLER;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = p_message_begin,
    .on_method = p_method,
    .on_url = p_url,
    .on_header_field = p_header_field,
    .on_header_value = p_header_value,
    .on_header_value_complete = p_header_value_complete,
    .on_headers_complete = p_headers_complete,
    .on_body = p_body,
    .on_message_complete = p_message_complete,
    .on_chunk_header = p_chunk_header,
    .on_chunk_extension_name = p_chunk_ext,
    .on_chunk_extension_value = p_chunk_ext,
};

/* Status and message for a parse error. */
static int error_status(conn_t *c, llhttp_errno_t e, const char **msg)
{
    if (c->err_status) {
        *msg = c->err_msg;
        return c->err_status;
    }
    *msg = llhttp_errno_name(e);
    const char *line = c->rbuf + (c->msg_begun ? c->msg_start : c->rpos);
    const char *end = c->rbuf + c->rlen;
    if (e == HPE_INVALID_METHOD) {
        /* A well-formed token we do not know is 501; anything else is malformed. */
        const char *t = line;
        while (t < end && is_tchar((unsigned char)*t)) t++;
        if (t > line && t < end && *t == ' ') {
            *msg = "method not implemented";
            return 501;
        }
        *msg = "malformed method";
        return 400;
    }
    if (e == HPE_INVALID_VERSION) {
        /* "HTTP/d.d" followed by CRLF is well-formed but unsupported. */
        const char *eol = memchr(line, '\r', (size_t)(end - line));
        if (eol && eol - line >= 9) {
            const char *v = eol - 8;
            if (memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
                v[7] >= '0' && v[7] <= '9' && v[-1] == ' ' && eol + 1 < end && eol[1] == '\n' &&
                !(v[5] == '1' && (v[7] == '0' || v[7] == '1'))) {
                *msg = "HTTP version not supported";
                return 505;
            }
        }
        *msg = "malformed HTTP version";
        return 400;
    }
    switch (e) {
    case HPE_INVALID_HEADER_TOKEN:
        *msg = "malformed header";
        break;
    case HPE_INVALID_CONTENT_LENGTH:
        *msg = "malformed Content-Length";
        break;
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        *msg = "conflicting Content-Length or Content-Length with Transfer-Encoding";
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        *msg = "malformed Transfer-Encoding";
        break;
    case HPE_INVALID_CHUNK_SIZE:
        *msg = "malformed chunk size";
        break;
    case HPE_INVALID_URL:
        *msg = "malformed request target";
        break;
    case HPE_STRICT:
    case HPE_CR_EXPECTED:
    case HPE_LF_EXPECTED:
        *msg = "malformed line ending";
        break;
    default:
        *msg = "malformed request";
        break;
    }
    return 400;
}

/* ------------------------------------------------------------------------------------ */
/* requests held by their handler: events                                               */

/* Whether a handler holds the request and has not finished or lost it. */
static inline bool held(const conn_t *c)
{
    return c->handler_active && c->dispatched && !c->resp_done && !c->aborted && !c->closing;
}

static void tell(conn_t *c, weft_http_event_t ev)
{
    if (held(c) && c->x->req.on_event) c->x->req.on_event(&c->x->req, ev);
}

/* The client's FIN arrived (or epoll reported it) while a handler holds the request. */
static void client_closed(conn_t *c)
{
    if (c->client_closed_told || !held(c)) return;
    c->client_closed_told = true;
    tell(c, WEFT_HTTP_EVENT_CLIENT_CLOSED);
}

static void on_request_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    tell(c, WEFT_HTTP_EVENT_TIMER);
}

static void on_rtimer_closed(uv_handle_t *h)
{
    free(h);
}

int weft_http_request_timer(weft_http_request_t *req, uint64_t ms)
{
    conn_t *c = conn_of(req);
    if (!held(c) || !req->on_event) return WEFT_ESTATE;
    if (!c->rtimer) {
        uv_timer_t *t = malloc(sizeof(*t));
        if (!t) return WEFT_ENOMEM;
        uv_timer_init(c->l->loop, t);
        t->data = c;
        c->rtimer = t;
    }
    uv_timer_start(c->rtimer, on_request_timer, ms, 0);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the read side                                                                        */

/* Runs the parser over buffered bytes and the handlers it makes ready, until the bytes are
 * used up, a handler holds a request, or the output backs up. Flushes once at the end. */
static void conn_process(conn_t *c)
{
    if (c->processing) return;
    c->processing = true;
    weft_http_server_t *s = c->l->srv;
    for (;;) {
        if (c->closing || c->state == C_LINGER || c->close_after) break;
        if (c->dispatch_pending) {
            dispatch(c);
            continue;
        }
        if (c->stream_end_pending && c->handler_active) {
            c->stream_end_pending = false;
            if (c->x->req.on_body && !c->resp_done) c->x->req.on_body(&c->x->req, NULL, 0);
            continue;
        }
        if (c->state == C_HANDLER) break;
        if (c->rpos >= c->rlen) break;
        if (c->olen > OBUF_HIGH_WATER || c->writing) break;
        const char *data = c->rbuf + c->rpos;
        size_t n = c->rlen - c->rpos;
        c->in_execute = true;
        c->exec_base = data;
        llhttp_errno_t e = llhttp_execute(&c->x->parser, data, n);
        c->in_execute = false;
        if (e == HPE_OK) {
            c->exec_off += n;
            c->rpos += n;
            if (c->state == C_HEAD && c->rpos - c->msg_start > s->o.max_head) {
                send_error(c, 431, "request head larger than the limit (http.max_head_size)");
                break;
            }
            continue;
        }
        const char *stop = llhttp_get_error_pos(&c->x->parser);
        if (stop < data || stop > data + n) stop = data + n;
        c->rpos += (size_t)(stop - data);
        c->exec_off += (uint64_t)(stop - data);
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            if (e == HPE_PAUSED_UPGRADE) {
                /* Upgrades are not supported: answer this request, then close. */
                c->x->req.keep_alive = false;
                llhttp_resume_after_upgrade(&c->x->parser);
            } else {
                llhttp_resume(&c->x->parser);
            }
            if (c->state == C_HEAD && c->rpos - c->msg_start > s->o.max_head) {
                send_error(c, 431, "request head larger than the limit (http.max_head_size)");
                break;
            }
            continue;
        }
        const char *msg;
        int status = error_status(c, e, &msg);
        send_error(c, status, msg);
        break;
    }
    /* Body bytes already handed over need no room: reuse rbuf from the start. */
    if (c->head_detached && c->rpos == c->rlen && !c->dispatch_pending)
        c->rpos = c->rlen = 0;
    else if (c->state == C_IDLE && !c->handler_active)
        compact(c);
    c->processing = false;
    if (!c->closing) {
        flush(c);
        update_reading(c);
        if (conn_quiet(c)) conn_release(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    if (c->state == C_LINGER) {
        /* Discard: reuse the whole buffer. */
        c->rpos = c->rlen = 0;
        *buf = uv_buf_init(c->rbuf, (unsigned)c->rcap);
        return;
    }
    /* rbuf may move only while no request string points into it. */
    bool movable = !c->handler_active && !c->dispatch_pending &&
                   (c->state == C_IDLE || c->state == C_HEAD || c->head_detached);
    if (c->rcap - c->rlen < RBUF_MIN_READ && movable) {
        compact(c);
        size_t limit = c->l->srv->o.max_head + RBUF_MIN_READ * 2;
        if (c->rcap - c->rlen < RBUF_MIN_READ && c->rcap < limit) {
            size_t cap = c->rcap * 2;
            if (cap > limit) cap = limit;
            char *nb = realloc(c->rbuf, cap);
            if (nb) {
                c->rbuf = nb;
                c->rcap = cap;
            }
        }
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    (void)buf;
    if (nread == 0) return;
    if (nread == UV_ENOBUFS) { /* rbuf is full behind a request in progress */
        c->reading = false;
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && !c->closing) {
            c->peer_eof = true;
            c->reading = false;
            /* The client finished sending: answer what it asked, then close. A request
             * whose message is incomplete can never be answered: abort it now. */
            if ((c->handler_active || c->dispatch_pending || c->state == C_HANDLER) &&
                c->message_done) {
                c->close_after = true;
                c->x->req.keep_alive = false;
                client_closed(c); /* may finish the request */
                return;
            }
            if (c->state == C_LINGER && !c->writing) {
                conn_close(c);
                return;
            }
            if (c->writing || c->olen) {
                c->close_after = true;
                return;
            }
        }
        conn_close(c);
        return;
    }
    if (c->state == C_LINGER) {
        c->rpos = c->rlen = 0;
        return;
    }
    c->rlen += (size_t)nread;
    conn_process(c);
}

/* Reading. A connection's socket is in the listener's epoll (ep) edge-triggered, not read
 * through libuv: libuv's level-triggered epoll reports a descriptor that it has just
 * reported again in its old place, ahead of connections whose requests arrived earlier, so
 * when requests queue up at the worker some wait for two rounds of the others (the p98 and
 * p99 of bench/http). With edge triggering the ready list is in order of arrival, as in
 * NGINX. The price: a socket reports new bytes once, so rready remembers that bytes may be
 * waiting, do_read reads until a short read, and a connection that starts reading again
 * with rready set is put on the kick list. Writes, shutdown and close stay libuv's. */
enum { READS_PER_TURN = 32 }; /* as libuv: then other connections get their turn */

static void do_read(conn_t *c)
{
    for (int i = 0; c->reading && c->rready && !c->closing; i++) {
        if (i == READS_PER_TURN) {
            kick(c);
            return;
        }
        if (!c->x && conn_take(c) != 0) { /* no memory for the bytes: on_timer kicks again */
            if (!c->l->mem_stalled)
                weft_warn("http", "out of memory for a request, retrying", "worker=%u",
                          c->l->index);
            c->l->mem_stalled = true;
            return;
        }
        uv_buf_t b;
        on_alloc((uv_handle_t *)&c->tcp, 65536, &b);
        if (b.len == 0) {
            on_read((uv_stream_t *)&c->tcp, UV_ENOBUFS, &b);
            return;
        }
        ssize_t n = read(c->fd, b.base, b.len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->rready = false;
            if (conn_quiet(c)) conn_release(c);
            return;
        }
        /* drained, EOF or an error; but a FIN that came with the last bytes has no edge of
         * its own: after EPOLLRDHUP, read on until read returns 0 */
        if (n <= 0 || ((size_t)n < b.len && !c->rdhup)) c->rready = false;
        on_read((uv_stream_t *)&c->tcp, n < 0 ? uv_translate_sys_error(errno) : n ? n : UV_EOF, &b);
        if (n <= 0) return;
    }
}

static void on_kick(uv_idle_t *h)
{
    listener_t *l = h->data;
    conn_t *list = l->kick_head;
    l->kick_head = NULL;
    while (list) {
        conn_t *c = list;
        list = c->kick_next;
        c->kicked = false;
        c->kick_next = NULL;
        do_read(c);
    }
    if (!l->kick_head) uv_idle_stop(&l->kick);
}

static void kick(conn_t *c)
{
    listener_t *l = c->l;
    if (c->kicked || c->closing) return;
    c->kicked = true;
    c->kick_next = l->kick_head;
    l->kick_head = c;
    uv_idle_start(&l->kick, on_kick);
}

static void unkick(conn_t *c)
{
    if (!c->kicked) return;
    for (conn_t **p = &c->l->kick_head; *p; p = &(*p)->kick_next)
        if (*p == c) {
            *p = c->kick_next;
            break;
        }
    c->kicked = false;
}

/* The listener's epoll has events: connections in order of arrival. */
static void on_ep(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    listener_t *l = h->data;
    struct epoll_event ev[128];
    int n = epoll_wait(l->ep, ev, 128, 0);
    for (int i = 0; i < n; i++) {
        conn_t *c = ev[i].data.ptr;
        if (c->closing) continue; /* closed earlier in this batch; freed after it */
        c->rready = true;
        if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            c->rdhup = true;
            /* A handler holding a request while reading is off (rbuf full of pipelined
             * bytes) still learns at once that its client is going. */
            if (!c->reading) client_closed(c);
        }
        do_read(c);
    }
}

/* Reads while there is room for the bytes; pipelined bytes that wait behind a request in
 * progress stop the reading once rbuf is full, and it resumes when that request ends. */
static void update_reading(conn_t *c)
{
    if (c->closing || c->peer_eof) return;
    bool want =
        c->state == C_LINGER ||
        (!c->user_paused && (c->rlen < c->rcap || (!c->handler_active && !c->dispatch_pending)));
    if (want && !c->reading) {
        c->reading = true;
        if (c->rready) kick(c); /* no new edge will come for bytes already there */
    } else if (!want && c->reading) {
        c->reading = false;
    }
}

void weft_http_request_pause(weft_http_request_t *req)
{
    conn_t *c = conn_of(req);
    c->user_paused = true;
    update_reading(c);
}

void weft_http_request_resume(weft_http_request_t *req)
{
    conn_t *c = conn_of(req);
    c->user_paused = false;
    update_reading(c);
}

/* ------------------------------------------------------------------------------------ */
/* connections                                                                          */

static void listener_maybe_done(listener_t *l);

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    listener_t *l = c->l;
    unkick(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&l->nconns, 1, memory_order_relaxed);
    if (c->handler_active)
        c->free_pending = true; /* the handler's finishing call frees it */
    else
        conn_free(c);
    listener_maybe_done(l);
}

static void conn_close(conn_t *c)
{
    if (c->closing) return;
    c->closing = true;
    abort_handler(c, c->x && c->x->req.status ? c->x->req.status : 499);
    if (c->rtimer) {
        uv_close((uv_handle_t *)c->rtimer, on_rtimer_closed);
        c->rtimer = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* An accept error other than EMFILE (ENOBUFS, ENOMEM, EPERM from a firewall...): libuv calls
 * back once per failed accept and tries the next at once, so the warning is logged at most
 * once a second, with how many were left out. */
static void accept_failed(listener_t *l, int status)
{
    uint64_t now = uv_now(l->loop);
    l->accept_errors++;
    if (l->accept_warned_at && now - l->accept_warned_at < 1000) return;
    weft_warn("http", "accept failed", "err=%s worker=%u errors_not_logged=%" PRIu64,
              uv_err_name(status), l->index, l->accept_errors - 1);
    l->accept_warned_at = now ? now : 1;
    l->accept_errors = 0;
}

static void listener_pause(listener_t *l, int status);

static void on_connection(uv_stream_t *server, int status)
{
    listener_t *l = server->data;
    if (status < 0) {
        accept_failed(l, status);
        if (++l->accept_failures >= ACCEPT_RETRIES && !l->accept_paused && !l->shutting_down)
            listener_pause(l, status);
        return;
    }
    l->accept_failures = 0;
    if (l->accept_pauses) {
        weft_info("http", "accepting again", "worker=%u pauses=%u", l->index, l->accept_pauses);
        l->accept_pauses = 0;
    }
    conn_t *c = calloc(1, sizeof(*c)); /* no buffers yet: they come with the first bytes */
    if (!c) {
        /* libuv holds the connection and stops polling the listener until it is accepted:
         * returning without a word would leave this worker deaf for good. on_timer tries
         * again (within SWEEP_MS); the connection waits in the meantime. */
        if (!l->accept_stalled)
            weft_warn("http", "out of memory for a new connection, retrying", "worker=%u",
                      l->index);
        l->accept_stalled = true;
        return;
    }
    l->accept_stalled = false;
    uv_tcp_init(l->loop, &c->tcp); /* no socket is created here: it cannot fail */
    c->l = l;
    c->tcp.data = c;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    atomic_fetch_add_explicit(&l->nconns, 1, memory_order_relaxed);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    c->state = C_IDLE;
    c->deadline = loop_now(c) + l->srv->o.head_timeout_ms;
    bool over = atomic_load_explicit(&l->nconns, memory_order_relaxed) > l->srv->conn_cap;
    if (over || l->shutting_down) {
        if (over && !l->shutting_down)
            atomic_store_explicit(&l->rejected,
                                  atomic_load_explicit(&l->rejected, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        const char *body =
            l->srv->cap_by_nofile
                ? "{\"error\":\"too many connections (open-file limit: ulimit -n)\"}\n"
                : "{\"error\":\"too many connections (http.max_connections)\"}\n";
        /* Retry-After (RFC 9110 10.2.3): a client, or a proxy's retry policy, may come back
         * in a second, when connections have likely closed, rather than at once */
        char busy[256];
        int n = snprintf(busy, sizeof(busy),
                         "HTTP/1.1 503 Service Unavailable\r\n%.*sRetry-After: 1\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         (int)l->date_len, l->date, strlen(body), body);
        uv_buf_t b = uv_buf_init(busy, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_os_fd_t fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        conn_close(c);
        return;
    }
    c->fd = fd;
    c->reading = true; /* the first edge comes with the first bytes, or at once if there */
}

/* ------------------------------------------------------------------------------------ */
/* listeners                                                                            */

static void format_date(listener_t *l)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    l->date_len = strftime(l->date, sizeof(l->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static void listener_resume(listener_t *l);

static void on_timer(uv_timer_t *t)
{
    listener_t *l = t->data;
    format_date(l);
    if (l->accept_paused && l->tcp_closed && !l->shutting_down) listener_resume(l);
    if (l->accept_stalled && !l->shutting_down) on_connection((uv_stream_t *)&l->tcp, 0);
    uint64_t now = uv_now(l->loop);
    bool force = l->shutting_down && now >= l->shutdown_deadline;
    bool stalled = l->mem_stalled; /* connections whose bytes found no memory: try again */
    l->mem_stalled = false;
    conn_t *c = l->conns;
    while (c) {
        conn_t *next = c->next;
        if (c->closing) {
            c = next;
            continue;
        }
        if (stalled && !c->x && c->rready) kick(c);
        if (force || (c->wdeadline && now >= c->wdeadline)) {
            conn_close(c);
        } else if (c->deadline && now >= c->deadline) {
            switch (c->state) {
            case C_HEAD:
                send_error(c, 408, "request head not received in time (http.head_timeout)");
                break;
            case C_BODY:
                if (c->handler_active && c->resp_started)
                    conn_close(c);
                else
                    send_error(c, 408, "request body not received in time (http.body_timeout)");
                break;
            case C_HANDLER:
                c->deadline = 0;
                break;
            default:
                conn_close(c);
            }
        }
        c = next;
    }
}

static void on_listener_handle_closed(uv_handle_t *h)
{
    listener_t *l = h->data;
    if (h == (uv_handle_t *)&l->tcp) l->tcp_closed = true;
    l->open_handles--;
    listener_maybe_done(l);
}

static void listener_maybe_done(listener_t *l)
{
    if (!l->shutting_down || l->conns) return;
    if (!uv_is_closing((uv_handle_t *)&l->timer)) {
        uv_close((uv_handle_t *)&l->timer, on_listener_handle_closed);
        uv_close((uv_handle_t *)&l->ep_poll, on_listener_handle_closed);
        uv_close((uv_handle_t *)&l->kick, on_listener_handle_closed);
        return;
    }
    if (l->open_handles == 0 && l->ep >= 0) {
        close(l->ep);
        l->ep = -1;
    }
    if (l->open_handles == 0) xfree_drain(l);
    if (l->open_handles == 0 && l->on_done) {
        void (*cb)(void *) = l->on_done;
        l->on_done = NULL;
        cb(l->done_arg);
    }
}

void weft_http_server_options_init(weft_http_server_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 0;
    o->backlog = 511;
    o->max_head = 64 * 1024;
    o->max_target = 8 * 1024;
    o->max_headers = 100;
    o->max_body = 1024 * 1024;
    o->max_connections = 10000;
    o->head_timeout_ms = 10000;
    o->idle_timeout_ms = 60000;
    o->body_timeout_ms = 30000;
    o->write_timeout_ms = 30000;
    o->shutdown_timeout_ms = 10000;
    o->busy_poll_us = 30;
    o->busy_poll_share = 25;
}

int weft_http_server_new(const weft_http_server_options_t *o, unsigned n_loops,
                         weft_http_server_t **out)
{
    if (n_loops == 0 || n_loops > 1024) return WEFT_EINVAL;
    weft_http_server_t *s = calloc(1, sizeof(*s));
    if (!s) return WEFT_ENOMEM;
    if (o)
        s->o = *o;
    else
        weft_http_server_options_init(&s->o);
    const char *host = s->o.host ? s->o.host : "127.0.0.1";
    if (strlen(host) >= sizeof(s->host) || s->o.max_headers == 0 || s->o.max_head < 256 ||
        s->o.max_target == 0 || s->o.max_connections == 0) {
        free(s);
        return WEFT_EINVAL;
    }
    strcpy(s->host, host);
    s->o.host = s->host;
    s->n_loops = n_loops;
    s->router = weft_router_new();
    s->fds = malloc(sizeof(int) * n_loops);
    s->listeners = calloc(n_loops, sizeof(listener_t));
    if (!s->router || !s->fds || !s->listeners) {
        weft_http_server_free(s);
        return WEFT_ENOMEM;
    }
    for (unsigned i = 0; i < n_loops; i++) {
        s->fds[i] = -1;
        s->listeners[i].spare_fd = -1;
        s->listeners[i].ep = -1;
    }
    *out = s;
    return 0;
}

int weft_http_server_route(weft_http_server_t *s, const char *method, const char *pattern,
                           const weft_http_route_t *route)
{
    if (s->bound) return WEFT_ESTATE;
    if (!route || !route->handler) return WEFT_EINVAL;
    weft_http_route_t *copy = malloc(sizeof(*copy));
    weft_http_route_t **list = realloc(s->routes, sizeof(*list) * (s->nroutes + 1));
    if (!copy || !list) {
        free(copy);
        if (list) s->routes = list;
        return WEFT_ENOMEM;
    }
    s->routes = list;
    *copy = *route;
    int err = weft_router_add(s->router, method, pattern, copy);
    if (err != 0) {
        free(copy);
        return err;
    }
    s->routes[s->nroutes++] = copy;
    return 0;
}

int weft_http_server_filter(weft_http_server_t *s, const weft_http_filter_t *f)
{
    if (!f || (!f->on_request && !f->on_head && !f->on_end)) return WEFT_EINVAL;
    if (s->bound) return WEFT_ESTATE;
    if (s->nfilters >= WEFT_HTTP_FILTERS_MAX) return WEFT_ELIMIT;
    s->filters[s->nfilters] = *f;
    s->filters[s->nfilters].name = NULL; /* only used in logs, which copy it: not kept */
    s->nfilters++;
    if (f->on_head) s->nfilters_head++;
    return 0;
}

static int make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    return WEFT_EINVAL;
}

static int open_socket(const struct sockaddr_storage *ss, bool reuseport, unsigned backlog)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        (backlog && listen(fd, (int)backlog) != 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

#define FD_RESERVE 64 /* descriptors left for everything but the server's connections */

static uv_once_t nofile_once = UV_ONCE_INIT;

/* Once per process: the soft open-file limit up to the hard one (see weft_http_server_bind). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    weft_info("http", "raised the open-file limit", "from=%llu to=%llu", (unsigned long long)was,
              (unsigned long long)rl.rlim_max);
}

/* Descriptors open now, estimated from the listening sockets just opened: the kernel hands
 * out the lowest free number, so the highest of them + 1 is about how many are in use.
 * Counting /proc/self/fd would be exact but opens a descriptor, and on a thread other than
 * a running loop's that can take a number libuv has just closed with a raw close syscall,
 * which ThreadSanitizer cannot see and then reports as a race on the descriptor. */
static unsigned long fds_open(const weft_http_server_t *s)
{
    int top = 2;
    for (unsigned i = 0; i < s->n_loops; i++)
        if (s->fds[i] > top) top = s->fds[i];
    return (unsigned long)top + 1;
}

/* s->conn_cap: max_connections, unless the open-file limit holds fewer on every loop. */
static void fit_conn_cap(weft_http_server_t *s)
{
    s->conn_cap = s->o.max_connections;
    s->cap_by_nofile = false;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    unsigned long open = fds_open(s), limit = (unsigned long)rl.rlim_cur;
    unsigned long spare = limit > open + FD_RESERVE ? limit - open - FD_RESERVE : 0;
    unsigned long per_loop = spare / s->n_loops;
    if (per_loop >= s->o.max_connections) return;
    s->conn_cap = per_loop > 0 ? (unsigned)per_loop : 1;
    s->cap_by_nofile = true;
    /* a warning when it is few enough to bite; 10000 on 2 loops under a limit of 20000 is
     * not news at every start */
    weft_log(s->conn_cap < 1024 ? WEFT_LOG_WARN : WEFT_LOG_INFO, "http",
             "the open-file limit caps connections per worker; raise ulimit -n",
             "nofile=%lu open=%lu reserved=%d workers=%u max_connections=%u per_worker=%u", limit,
             open, FD_RESERVE, s->n_loops, s->o.max_connections, s->conn_cap);
}

unsigned weft_http_server_max_connections(const weft_http_server_t *s)
{
    return s->conn_cap;
}

int weft_http_server_bind(weft_http_server_t *s, char *err_msg, size_t err_len)
{
    if (s->bound) return WEFT_ESTATE;
    struct sockaddr_storage ss;
    if (make_addr(s->host, s->o.port, &ss) != 0) {
        if (err_msg) snprintf(err_msg, err_len, "%s: not a numeric IP address", s->host);
        return WEFT_EINVAL;
    }
    /* First a socket WITHOUT SO_REUSEPORT: it fails if anyone already listens there, even a
     * process that set SO_REUSEPORT itself, so two servers never silently share a port.
     * With port 0 it also picks the port that the worker sockets then share. */
    int probe = open_socket(&ss, false, 0); /* bind only: nobody can connect to it */
    if (probe < 0) {
        if (err_msg)
            snprintf(err_msg, err_len, "cannot listen on %s:%u: %s", s->host, s->o.port,
                     strerror(-probe));
        return probe;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(probe, (struct sockaddr *)&bound, &blen);
    uint16_t port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
    close(probe);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    for (unsigned i = 0; i < s->n_loops; i++) {
        int fd = open_socket(&ss, true, s->o.backlog);
        if (fd < 0) {
            if (err_msg)
                snprintf(err_msg, err_len, "cannot listen on %s:%u: %s", s->host, port,
                         strerror(-fd));
            for (unsigned k = 0; k < i; k++) {
                close(s->fds[k]);
                s->fds[k] = -1;
            }
            return fd;
        }
        s->fds[i] = fd;
    }
    s->port = port;
    s->bound = true;
    uv_once(&nofile_once, raise_nofile);
    fit_conn_cap(s);
    return 0;
}

uint16_t weft_http_server_port(const weft_http_server_t *s)
{
    return s->port;
}

/* Opens l->tcp on the listening socket fd and listens. fd is the handle's from here on: on
 * failure it is closed with the handle (tcp_closed tells when that is done). */
static int listener_open(listener_t *l, int fd)
{
    int err = uv_tcp_init(l->loop, &l->tcp);
    if (err) {
        close(fd);
        return err;
    }
    l->tcp.data = l;
    l->tcp_closed = false;
    l->open_handles++;
    if ((err = uv_tcp_open(&l->tcp, fd)) != 0)
        close(fd); /* refused: not the handle's yet */
    else
        err = uv_listen((uv_stream_t *)&l->tcp, (int)l->srv->o.backlog, on_connection);
    if (err) uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed);
    return err;
}

static void listener_pause(listener_t *l, int status)
{
    if (!l->accept_pauses++)
        weft_warn("http", "accept paused", "err=%s worker=%u failures=%u retry_every_ms=%d",
                  uv_err_name(status), l->index, l->accept_failures, SWEEP_MS);
    l->accept_paused = true;
    l->accept_failures = 0;
    uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed); /* the socket stays open */
}

/* A sweep after a pause: a new handle on a new duplicate of the socket. If that fails (no
 * descriptor left, say), the listener stays paused and the next sweep tries again. */
static void listener_resume(listener_t *l)
{
    int fd = fcntl(l->spare_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return;
    if (listener_open(l, fd) != 0) return; /* tcp_closed is set again once it has closed */
    l->accept_paused = false;
    l->accept_failures = 0;
}

int weft_http_server_attach(weft_http_server_t *s, uv_loop_t *loop, unsigned index)
{
    if (!s->bound || index >= s->n_loops || s->listeners[index].attached) return WEFT_ESTATE;
    listener_t *l = &s->listeners[index];
    l->srv = s;
    l->loop = loop;
    l->index = index;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return uv_translate_sys_error(errno);
    int err = uv_poll_init(loop, &l->ep_poll, ep);
    if (err) {
        close(ep);
        return err;
    }
    l->ep = ep;
    l->ep_poll.data = l;
    l->open_handles++;
    uv_poll_start(&l->ep_poll, UV_READABLE, on_ep);
    uv_idle_init(loop, &l->kick);
    l->kick.data = l;
    l->open_handles++;
    /* libuv gets a duplicate and the socket made at bind stays the spare: libuv closes its
     * descriptors with a raw syscall that ThreadSanitizer does not see, so a number it closed
     * and this thread then reused and closed itself would look like a race on the number */
    int fd = fcntl(s->fds[index], F_DUPFD_CLOEXEC, 0);
    err = fd < 0 ? uv_translate_sys_error(errno) : listener_open(l, fd);
    if (err) { /* the loop's next turn closes them; ep once the poll handle is closed */
        uv_close((uv_handle_t *)&l->ep_poll, on_listener_handle_closed);
        uv_close((uv_handle_t *)&l->kick, on_listener_handle_closed);
        return err;
    }
    l->spare_fd = s->fds[index];
    s->fds[index] = -1;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    l->open_handles++;
    uv_timer_start(&l->timer, on_timer, SWEEP_MS, SWEEP_MS);
    format_date(l);
    l->attached = true;
    return 0;
}

void weft_http_server_shutdown(weft_http_server_t *s, unsigned index, void (*on_done)(void *),
                               void *arg)
{
    listener_t *l = &s->listeners[index];
    if (!l->attached || l->shutting_down) {
        if (!l->attached && on_done) on_done(arg);
        return;
    }
    l->shutting_down = true;
    l->on_done = on_done;
    l->done_arg = arg;
    l->shutdown_deadline = uv_now(l->loop) + s->o.shutdown_timeout_ms;
    if (!l->accept_paused) uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed);
    close(l->spare_fd); /* the last descriptor of the socket: its queued connections are reset */
    l->spare_fd = -1;
    for (conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing) continue;
        if (c->state == C_IDLE && !c->handler_active && !c->writing && c->olen == 0 &&
            c->rpos == c->rlen)
            conn_close(c);
        else
            c->x->req.keep_alive = false; /* the response in progress will say close */
    }
    /* Handlers that hold requests (long polls) may answer now rather than at the deadline.
     * One may finish its request, and the connection may close: only c itself can go. */
    for (conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        tell(c, WEFT_HTTP_EVENT_SHUTDOWN);
    }
    listener_maybe_done(l);
}

void weft_http_server_drain(weft_http_server_t *s)
{
    atomic_store_explicit(&s->draining, true, memory_order_relaxed);
}

uint64_t weft_http_server_rejected(const weft_http_server_t *s)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < s->n_loops; i++)
        n += atomic_load_explicit(&s->listeners[i].rejected, memory_order_relaxed);
    return n;
}

unsigned weft_http_server_loops(const weft_http_server_t *s)
{
    return s->n_loops;
}

unsigned weft_http_server_connections(const weft_http_server_t *s, unsigned index)
{
    if (index >= s->n_loops) return 0;
    return atomic_load_explicit(&s->listeners[index].nconns, memory_order_relaxed);
}

void weft_http_server_free(weft_http_server_t *s)
{
    if (!s) return;
    if (s->fds)
        for (unsigned i = 0; i < s->n_loops; i++)
            if (s->fds[i] >= 0) close(s->fds[i]);
    if (s->listeners)
        for (unsigned i = 0; i < s->n_loops; i++)
            if (s->listeners[i].spare_fd >= 0) close(s->listeners[i].spare_fd);
    if (s->listeners)
        for (unsigned i = 0; i < s->n_loops; i++) {
            if (s->listeners[i].ep >= 0) close(s->listeners[i].ep);
            xfree_drain(&s->listeners[i]);
        }
    for (size_t i = 0; i < s->nroutes; i++) free(s->routes[i]);
    free(s->routes);
    if (s->router) weft_router_free(s->router);
    free(s->fds);
    free(s->listeners);
    free(s);
}

/* ------------------------------------------------------------------------------------ */
/* request accessors                                                                    */

weft_str_t weft_http_request_header(const weft_http_request_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name.len == nl && ieq(req->headers[i].name.base, nl, name))
            return req->headers[i].value;
    return (weft_str_t){NULL, 0};
}

weft_str_t weft_http_request_param(const weft_http_request_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; i < req->match.nparams; i++) {
        const weft_route_param_t *p = &req->match.params[i];
        if (p->name.len == nl && memcmp(p->name.base, name, nl) == 0) return p->value;
    }
    return (weft_str_t){NULL, 0};
}

const char *weft_http_request_peer(weft_http_request_t *req)
{
    conn_t *c = conn_of(req);
    if (c->peer[0]) return c->peer;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "";
    int port = -1;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            if (uv_ip4_name(a, ip, sizeof(ip)) == 0) port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            if (uv_ip6_name(a, ip, sizeof(ip)) == 0) port = ntohs(a->sin6_port);
        }
    }
    if (port < 0) return "-"; /* not kept: the next call may succeed */
    snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    return c->peer;
}

void *weft_http_request_alloc(weft_http_request_t *req, size_t n)
{
    conn_t *c = conn_of(req);
    return weft_arena_alloc(&c->x->arena, n);
}
