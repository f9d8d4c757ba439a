/*
 * reader.h - reads sockets in order of arrival through a private edge-triggered epoll
 * (internal; the design is in reader.c).
 *
 * One weft__reader_t per loop owner (the client; the server's listener); each socket it
 * reads is a weft__rfd_t that the owner embeds in its connection. The owner keeps doing
 * writes, shutdown and close with libuv; only reading moves here. The callbacks have the
 * shape of libuv's uv_read_start:
 *
 *     weft__reader_init(&r, loop);
 *     weft__reader_add(&r, &conn->rf, fd, on_alloc, on_read, conn);  reading is off
 *     weft__reader_start(&conn->rf);      on_alloc/on_read run from the loop from now on
 *     ...
 *     weft__reader_stop(&conn->rf);       no callback until start again (bytes wait)
 *     weft__reader_remove(&conn->rf);     before the descriptor is closed
 *     uv_close((uv_handle_t *)&conn->tcp, ...);
 *     ...
 *     weft__reader_close(&r, on_reader_closed);   once every fd is removed
 *
 * on_read gets nread > 0 (bytes at buf->base), UV_EOF (read returned 0: the peer's FIN),
 * UV_ENOBUFS (on_alloc gave a zero-length buffer; the bytes stay in the socket and are
 * tried again at the next edge, start after a stop, or kick), or another negative libuv
 * error from read(2). As with
 * libuv, nread is never 0, and after UV_EOF or an error no more callbacks come for that fd
 * unless the owner starts it again (it usually removes it).
 *
 * Inside a callback the owner may stop, start, kick or remove any fd (its own included), add
 * fds, and free the memory of any fd it removed: no fd is touched after its removal.
 * Reading never happens inside weft__reader_start or weft__reader_kick: bytes that may be
 * waiting are read from the reader's idle handle on the next turn.
 *
 * Threads: a reader and its fds belong to one loop's thread.
 */
#ifndef WEFT_HTTP_READER_H
#define WEFT_HTTP_READER_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <unistd.h>

#include <uv.h>

#include "core/sysio.h"

#define WEFT__READER_BATCH     128 /* events taken from the epoll per wakeup */
#define WEFT__READS_PER_TURN   32  /* reads of one fd before the others get their turn, as libuv */
#define WEFT__READER_SUGGESTED 65536 /* the size hint given to alloc callbacks */

typedef struct weft__reader_s weft__reader_t;
typedef struct weft__rfd_s weft__rfd_t;

/* Gives the buffer for the next read (buf->len 0: no room, the callback gets UV_ENOBUFS). */
typedef void (*weft__reader_alloc_cb)(weft__rfd_t *f, size_t suggested, uv_buf_t *buf);
/* Bytes read into buf->base, or UV_EOF, UV_ENOBUFS, an error (see above). */
typedef void (*weft__reader_read_cb)(weft__rfd_t *f, ssize_t nread, const uv_buf_t *buf);
/* A hook of the whole reader about one fd (weft__reader_hooks). */
typedef void (*weft__reader_event_cb)(weft__rfd_t *f);

/* Where an fd is with respect to the kick list. */
typedef enum {
    WEFT__KICK_NONE = 0, /* not listed */
    WEFT__KICK_NEXT,     /* listed for the next turn of the idle handle */
    WEFT__KICK_NOW       /* listed in the pass the idle handle is running */
} weft__kick_t;

/* One socket being read. The owner embeds it and reads only `data`; the rest is the
 * reader's. Valid from weft__reader_add until weft__reader_remove. */
struct weft__rfd_s {
    void *data; /* the owner's, given to weft__reader_add */
    weft__reader_t *r;
    weft__reader_alloc_cb alloc_cb;
    weft__reader_read_cb read_cb;
    weft__rfd_t *kprev, *knext; /* the kick list it is on (kick) */
    int fd;
    weft__kick_t kick;
    bool added;   /* between add and remove */
    bool reading; /* started: callbacks may run */
    bool rready;  /* the socket may hold unread bytes: no new edge will say so */
    bool rdhup;   /* the peer's FIN (or an error) was reported: read until 0, not a short read */
};

/* The reader of one loop owner. Embedded by the owner; its fields are the reader's. */
struct weft__reader_s {
    void *data; /* the owner's */
    uv_loop_t *loop;
    int ep;         /* the edge-triggered epoll; -1 once closed */
    uv_poll_t poll; /* ep in the loop; holds a loop reference while an fd is reading */
    uv_idle_t idle; /* runs the kick list */
    weft__rfd_t *next_head, *next_tail; /* WEFT__KICK_NEXT, in the order kicked */
    weft__rfd_t *now_head, *now_tail;   /* WEFT__KICK_NOW, the pass in progress */
    weft__rfd_t *current;               /* the fd whose callbacks run; NULL once removed */
    int ev_pos, ev_n;                   /* the batch of events being worked through */
    unsigned nfds, nreading, open_handles;
    void (*on_closed)(weft__reader_t *r);
    weft__reader_event_cb drained_cb, hup_cb; /* weft__reader_hooks; NULL: none */
    struct epoll_event ev[WEFT__READER_BATCH];
};

/* Sets up r on loop: creates the epoll and its two handles. Returns 0 or a libuv error
 * (then nothing is left to close). The handles do not keep the loop alive while no fd is
 * reading. */
int weft__reader_init(weft__reader_t *r, uv_loop_t *loop);

/* Closes r's handles and, once they are closed, its epoll; then on_closed(r) runs (may be
 * NULL) and r's memory may be reused. Every fd must have been removed. */
void weft__reader_close(weft__reader_t *r, void (*on_closed)(weft__reader_t *r));

/* Adds fd (a non-blocking socket) to r, edge-triggered (EPOLLIN | EPOLLRDHUP | EPOLLET),
 * with reading off. Bytes already in the socket count as an edge: they are read once
 * weft__reader_start is called. f is set up here (any old contents are ignored); data is
 * handed back in f->data. Returns 0, or a libuv error from epoll_ctl (f is not added). */
int weft__reader_add(weft__reader_t *r, weft__rfd_t *f, int fd, weft__reader_alloc_cb alloc_cb,
                     weft__reader_read_cb read_cb, void *data);

/* Takes f out of r (epoll, kick list, the batch being worked through): no callback runs for
 * it after this, even from a callback in progress, and its memory may be freed at once.
 * Call before closing the descriptor. Does nothing when f is not added. */
void weft__reader_remove(weft__rfd_t *f);

/* Reading on: from now on callbacks run as bytes arrive. When bytes may already be waiting
 * (an edge came while reading was off, or a turn ended at WEFT__READS_PER_TURN), they are
 * read on the next turn (the kick list), never inside this call. Idempotent. */
void weft__reader_start(weft__rfd_t *f);

/* Reading off: no callback runs until weft__reader_start. A callback in progress finishes;
 * no further read is made for f in that turn. Idempotent. */
void weft__reader_stop(weft__rfd_t *f);

/* Reads f on the next turn if it is reading and may hold bytes (as start does for bytes that
 * waited); for an owner that refused a read with a zero-length buffer and has room again. */
void weft__reader_kick(weft__rfd_t *f);

/*
 * Optional hooks for every fd of r, for an owner that needs more than the read callbacks
 * (the server); none after weft__reader_init, NULL turns one off:
 *   drained(f)  a read of f found the socket empty (EAGAIN), which no read callback reports
 *               (a short read is reported with its bytes): f is read to the end for now;
 *   hup(f)      an EPOLLRDHUP (or HUP, ERR) edge came for f while its reading is off: the
 *               peer is going, though no read shows it until reading is on again. Reading
 *               on, the FIN comes as UV_EOF instead.
 * They run from the loop as the read callbacks do, with the same freedom (stop, start, kick,
 * remove, free).
 */
void weft__reader_hooks(weft__reader_t *r, weft__reader_event_cb drained,
                        weft__reader_event_cb hup);

/* Whether f's reading is on (between weft__reader_start and weft__reader_stop). */
static inline bool weft__reader_reading(const weft__rfd_t *f)
{
    return f->reading;
}

/* Whether f may hold unread bytes that no new edge will announce (its rready). */
static inline bool weft__reader_ready(const weft__rfd_t *f)
{
    return f->rready;
}

/* A duplicate of socket fd for a caller that takes a connection over (the server's
 * weft_http_request_takeover, the client's on_upgrade): close-on-exec, or -errno.
 *
 * ThreadSanitizer keeps a history per descriptor number and does not know that the kernel
 * orders a close on one loop before the reuse of the number on another; fcntl(F_DUPFD_*) is
 * not even seen to make a descriptor. So its builds dup() with the thread's accesses
 * ignored, which makes TSan start the number's history afresh (as for open or accept),
 * then set FD_CLOEXEC (weft never execs; the two steps are one otherwise). */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__READER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(WEFT__READER_TSAN)
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
static inline int weft__dup_cloexec(int fd)
{
    __tsan_ignore_thread_begin();
    int d = dup(fd);
    __tsan_ignore_thread_end();
    if (d >= 0) fcntl(d, F_SETFD, FD_CLOEXEC);
    return d >= 0 ? d : -errno;
}
#else
static inline int weft__dup_cloexec(int fd)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return d >= 0 ? d : -errno;
}
#endif

/* The first write of what an owner has for s, whose socket is f: what the socket takes at
 * once (weft__sys_try_send: no uv_try_write steps, no glibc cancellation point), as the
 * number of bytes sent, or a negative errno. 0 when it takes none, and when f is not in the
 * reader or libuv still has bytes of s queued: then the caller's uv_write sends it all,
 * after what is queued. */
static inline ssize_t weft__rfd_try_send(const weft__rfd_t *f, const uv_stream_t *s,
                                         const void *buf, size_t len)
{
    if (!f->added || s->write_queue_size != 0) return 0;
    return weft__sys_try_send(f->fd, buf, len);
}

#endif
