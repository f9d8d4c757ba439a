/*
 * conn.c - a connection of the HTTP server: reading, the parse loop, writing, closing.
 *
 * Design. Bytes are read into rbuf and conn_process runs llhttp over them (parse.c's
 * callbacks), then the handlers they made ready (request.c's dispatch), until the bytes are
 * used up, a handler holds a request, or the output backs up. Requests on a connection are
 * handled one at a time: the parser pauses at the end of each message and parsing of
 * pipelined bytes resumes only when the response is finished, so responses go out in order
 * and a handler never runs inside llhttp. Responses produced while a read is being processed
 * are written with one send when the read's bytes are used up, so a pipelined batch
 * costs one syscall; what the socket does not take goes to uv_write from wbuf while obuf
 * collects what follows.
 *
 * Buffer invariant. While a message's head is being parsed, its pieces are kept as offsets
 * from msg_start, so rbuf may be compacted or grown between reads. Once the head is
 * complete, the request's strings point into rbuf; from then on rbuf is neither moved nor
 * compacted until the request is finished, except when the request has a body: then the head
 * is copied into the arena first ("detached", parse.c) and rbuf is reused for the body's
 * bytes. Pipelined bytes that wait behind a request in progress stop the reading once rbuf
 * is full; it resumes when that request ends.
 *
 * Reading. A connection's socket is read through the listener's reader (reader.h), not
 * through libuv: an edge-triggered epoll, so that connections are read in order of arrival
 * (libuv's level-triggered epoll reports a descriptor it has just reported again in its old
 * place, and when requests queue up at a worker some wait two rounds of the others: the p98
 * and p99 of bench/http). The reader calls on_alloc and on_read as libuv would; its drained
 * hook lets an idle connection give its buffers back once the socket is read to EAGAIN, and
 * its hup hook tells a handler that its client is going while reading is off. A flush's
 * first write is weft__rfd_try_send (reader.h); the rest of a write the socket did not take,
 * shutdown and close stay libuv's.
 *
 * Errors. Any malformed request is answered (response.c, send_error) with `Connection:
 * close`, then the write side is shut down and the connection lingers (reading and
 * discarding, at most LINGER_MS) before it closes, so the client sees the answer and nothing
 * that followed the bad request is ever parsed.
 *
 * States (server_int.h). The connection's edges move its machines here: C_LINGER once the
 * last response is out (after_flush), L_ENDING when the client's FIN comes while a request
 * is still to be answered, L_CLOSING in conn_close, L_CLOSED when the handle closes while a
 * handler holds the request (H_ACTIVE or H_ABORTED).
 *
 * Memory. A connection closed while a handler holds its request stays allocated until the
 * handler's finishing call (L_CLOSED); otherwise its exchange goes back to the listener's
 * freelist (exchange.c) and the conn_t is freed in the close callback.
 *
 * Threads: the loop thread of the connection's listener only.
 */
#include <stdlib.h>
#include <string.h>

#include "http/server_int.h"
#include "weft/log.h"

static void on_write(uv_write_t *w, int status);
static void after_flush(conn_t *c);

/* The slow path of weft__http_out_reserve: obuf grows (doubling) to hold n more bytes. */
int weft__http_out_grow(conn_t *c, size_t n)
{
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

/* Writes obuf: first what the socket takes at once (weft__rfd_try_send), the rest with
 * uv_write from wbuf. */
void weft__http_flush(conn_t *c)
{
    if (c->writing || weft__http_closing(c)) return;
    if (c->olen == 0) {
        after_flush(c);
        return;
    }
    ssize_t r = weft__rfd_try_send(&c->rf, (uv_stream_t *)&c->tcp, c->obuf, c->olen);
    if (r < 0) {
        weft__http_conn_close(c);
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
        weft__http_conn_close(c);
        return;
    }
    c->writing = true;
    c->wdeadline = weft__http_loop_now(c) + c->l->srv->o.write_timeout_ms;
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    conn_t *c = s->data;
    if (status < 0 || c->peer_eof) weft__http_conn_close(c);
}

/* Nothing is waiting to be written: close if asked, tell a streaming producer. */
static void after_flush(conn_t *c)
{
    if (c->life == L_ENDING && c->state != C_LINGER) {
        if (weft__http_holds(c)) return; /* the response is still streaming */
        weft__http_conn_to(c, C_LINGER);
        c->deadline = weft__http_loop_now(c) + LINGER_MS;
        c->x->sreq.data = c;
        if (uv_shutdown(&c->x->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
            weft__http_conn_close(c);
        return;
    }
    if (c->drain_wanted && weft__http_holds(c) && c->x->req.on_drain) {
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
        weft__http_conn_close(c);
        return;
    }
    if (weft__http_closing(c)) return;
    weft__http_flush(c);
    /* A pipelined batch paused on the high-water mark can go on now. */
    if (!c->writing && c->olen == 0 && !weft__http_closing(c) && c->state != C_HANDLER)
        weft__http_conn_process(c);
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

/* Runs the parser over buffered bytes and the handlers it makes ready, until the bytes are
 * used up, a handler holds a request, or the output backs up. Flushes once at the end. */
void weft__http_conn_process(conn_t *c)
{
    if (c->processing) return;
    c->processing = true;
    weft_http_server_t *s = c->l->srv;
    for (;;) {
        if (c->life != L_OPEN || c->state == C_LINGER) break; /* ending or closing */
        if (c->hstate == H_PENDING) {
            weft__http_dispatch(c);
            continue;
        }
        if (c->stream_end_pending && weft__http_holds(c)) {
            c->stream_end_pending = false;
            if (c->x->req.on_body) c->x->req.on_body(&c->x->req, NULL, 0);
            continue;
        }
        if (c->state == C_HANDLER) break;
        if (c->rpos >= c->rlen) break;
        if (c->olen > OBUF_HIGH_WATER || c->writing) break;
        const char *data = c->rbuf + c->rpos;
        size_t n = c->rlen - c->rpos;
        if (c->state == C_IDLE) { /* llhttp stands at a message's start */
            long got = weft__http_fast_head(c, data, n);
            if (got > 0) {
                c->exec_off += (uint64_t)got;
                c->rpos += (size_t)got;
                continue;
            }
            if (got < 0) {
                weft__http_send_error(c, c->err_status, c->err_msg);
                break;
            }
        }
        c->exec_base = data;
        llhttp_errno_t e = llhttp_execute(&c->x->parser, data, n);
        if (e == HPE_OK) {
            c->exec_off += n;
            c->rpos += n;
            if (c->state == C_HEAD && c->rpos - c->msg_start > s->o.max_head) {
                weft__http_send_error(c, 431,
                                      "request head larger than the limit (http.max_head_size)");
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
                /* The protocol switches after this request: nothing after it is HTTP.
                 * Answer it, then close (a handler that takes the connection over,
                 * weft_http_request_takeover, has it before this point is reached). */
                c->x->req.keep_alive = false;
                llhttp_resume_after_upgrade(&c->x->parser);
            } else {
                llhttp_resume(&c->x->parser);
            }
            if (c->state == C_HEAD && c->rpos - c->msg_start > s->o.max_head) {
                weft__http_send_error(c, 431,
                                      "request head larger than the limit (http.max_head_size)");
                break;
            }
            continue;
        }
        const char *msg;
        int status = weft__http_error_status(c, e, &msg);
        weft__http_send_error(c, status, msg);
        break;
    }
    /* Body bytes already handed over need no room: reuse rbuf from the start. */
    if (c->head_detached && c->rpos == c->rlen && c->hstate != H_PENDING)
        c->rpos = c->rlen = 0;
    else if (c->state == C_IDLE && !weft__http_holds(c))
        compact(c);
    c->processing = false;
    if (!weft__http_closing(c)) {
        weft__http_flush(c);
        weft__http_update_reading(c);
        if (weft__http_conn_quiet(c)) weft__http_conn_rest(c);
    }
}

/* The reader asks where the next bytes go: an idle connection takes its exchange and buffers
 * first (exchange.c); none to be had, the bytes wait in the socket (a zero-length buffer). */
static void on_alloc(weft__rfd_t *f, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = f->data;
    (void)suggested;
    weft__http_conn_unkeep(c);
    if (!c->x && weft__http_conn_take(c) != 0) { /* no memory for the bytes: on_timer kicks */
        if (!c->l->mem_stalled)
            weft_warn("http", "out of memory for a request, retrying", "worker=%u", c->l->index);
        c->l->mem_stalled = true;
        *buf = (uv_buf_t){.base = NULL, .len = 0};
        return;
    }
    if (!c->rbuf) { /* its parked request gave it back (weft_http_request_park) */
        if (!(c->rbuf = malloc(RBUF_INITIAL))) {
            c->l->mem_stalled = true; /* on_timer kicks */
            *buf = (uv_buf_t){.base = NULL, .len = 0};
            return;
        }
        c->rcap = RBUF_INITIAL;
    }
    if (c->state == C_LINGER) {
        /* Discard: reuse the whole buffer. */
        c->rpos = c->rlen = 0;
        *buf = (uv_buf_t){.base = c->rbuf, .len = c->rcap};
        return;
    }
    /* rbuf may move only while no request string points into it. */
    bool movable = !weft__http_holds(c) && c->hstate != H_PENDING &&
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
    *buf = (uv_buf_t){.base = c->rbuf + c->rlen, .len = c->rcap - c->rlen};
}

static void on_read(weft__rfd_t *f, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = f->data;
    (void)buf;
    if (nread == UV_ENOBUFS) {
        if (!c->x || !c->rbuf) return; /* no memory for it: reading stays on, on_timer kicks */
        weft__reader_stop(&c->rf);     /* rbuf is full behind a request in progress */
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && !weft__http_closing(c)) {
            c->peer_eof = true;
            weft__reader_stop(&c->rf);
            /* The client finished sending: answer what it asked, then close. A request
             * whose message is incomplete can never be answered: abort it now. */
            if ((weft__http_holds(c) || c->hstate == H_PENDING || c->state == C_HANDLER) &&
                c->message_done) {
                weft__http_life_to(c, L_ENDING);
                c->x->req.keep_alive = false;
                weft__http_client_closed(c); /* may finish the request */
                return;
            }
            if (c->state == C_LINGER && !c->writing) {
                weft__http_conn_close(c);
                return;
            }
            if (c->writing || c->olen) {
                weft__http_life_to(c, L_ENDING);
                return;
            }
        }
        weft__http_conn_close(c);
        return;
    }
    if (c->state == C_LINGER) {
        c->rpos = c->rlen = 0;
        return;
    }
    c->rlen += (size_t)nread;
    weft__http_conn_process(c);
}

/* The socket was read to EAGAIN (the reader's drained hook): an idle connection gives its
 * exchange and buffers back. */
static void on_drained(weft__rfd_t *f)
{
    conn_t *c = f->data;
    if (weft__http_conn_quiet(c)) weft__http_conn_rest(c);
}

/* The client's FIN (or an error) came while reading is off (the reader's hup hook): a
 * handler holding a request while rbuf is full of pipelined bytes, or paused, still learns
 * at once that its client is going. */
static void on_hup(weft__rfd_t *f)
{
    weft__http_client_closed(f->data);
}

int weft__http_reading_init(listener_t *l)
{
    int err = weft__reader_init(&l->reader, l->loop);
    if (err) {
        l->reader.ep = -1; /* nothing to close */
        return err;
    }
    l->reader.data = l;
    weft__reader_hooks(&l->reader, on_drained, on_hup);
    return 0;
}

int weft__http_reading_add(conn_t *c, int fd)
{
    int err = weft__reader_add(&c->l->reader, &c->rf, fd, on_alloc, on_read, c);
    if (err) return err;
    weft__reader_start(&c->rf); /* the first edge comes with the first bytes, or at once */
    return 0;
}

/* Reads while there is room for the bytes; pipelined bytes that wait behind a request in
 * progress stop the reading once rbuf is full, and it resumes when that request ends. */
void weft__http_update_reading(conn_t *c)
{
    if (weft__http_closing(c) || c->peer_eof) return;
    bool want = c->state == C_LINGER ||
                (!c->user_paused &&
                 (c->rlen < c->rcap || (!weft__http_holds(c) && c->hstate != H_PENDING)));
    if (want == weft__reader_reading(&c->rf)) return;
    if (want)
        weft__reader_start(&c->rf); /* bytes already there are read from the kick list */
    else
        weft__reader_stop(&c->rf);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    listener_t *l = c->l;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&l->nconns, 1, memory_order_relaxed);
    if (weft__http_holds(c))
        weft__http_life_to(c, L_CLOSED); /* the handler's finishing call frees it */
    else
        weft__http_conn_free(c);
    weft__http_listener_maybe_done(l);
}

void weft__http_conn_close(conn_t *c)
{
    if (weft__http_closing(c)) return;
    weft__http_life_to(c, L_CLOSING);
    weft__http_conn_unkeep(c);
    weft__http_abort_handler(c, c->x && c->x->req.status ? c->x->req.status : 499);
    weft__http_timer_close(c);
    weft__reader_remove(&c->rf); /* before the descriptor closes; no read callback after it */
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Frees c once it is closed and no handler holds its request (see Memory at the top). */
void weft__http_conn_free(conn_t *c)
{
    if (c->x && c->life != L_CLOSED) {
        weft__http_exch_reset(c->x, c->l);
        weft__http_conn_release(c);
    } else if (c->x) { /* a handler finished after the close: the listener may be gone */
        weft__http_exch_free(c->x);
        free(c->rbuf);
        free(c->obuf);
        free(c->wbuf);
    }
    free(c);
}
