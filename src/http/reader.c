/*
 * reader.c - reading sockets in order of arrival: a private edge-triggered epoll per loop
 * owner, watched by one uv_poll_t (interface and usage in reader.h).
 *
 * Why. libuv reads a stream through its own level-triggered epoll, which reports a
 * descriptor it has just reported again in its old place, ahead of sockets whose bytes
 * arrived earlier: when work queues up at a loop some sockets wait two rounds of the others
 * (the server's p98 and p99 in bench/http, commit 292e0bf). With EPOLLET the ready list is in
 * order of arrival, as in NGINX. This file is that mechanism taken out of the server so the
 * client and the server read the same way.
 *
 * Design. Each fd is in the reader's epoll with EPOLLIN | EPOLLRDHUP | EPOLLET. The epoll
 * descriptor is watched by a uv_poll_t; on its wakeup (on_ep) up to WEFT__READER_BATCH
 * events are taken with epoll_wait(0) and each fd is read at once (do_read), in the order
 * the kernel queued them. An edge is reported once, so:
 *   - rready remembers that bytes may be waiting. do_read reads until a short read (or
 *     EAGAIN), then clears it; an fd whose reading is off when its edge comes keeps rready,
 *     and weft__reader_start puts it on the kick list, because no new edge will come for
 *     bytes already there.
 *   - rdhup: a FIN that arrives with the last bytes has no edge of its own, and the short
 *     read that ends them would clear rready and lose it. After EPOLLRDHUP (or HUP, ERR)
 *     do_read reads on until read returns 0 (UV_EOF) or fails.
 *   - At most WEFT__READS_PER_TURN reads per fd per turn (libuv's own bound); then the fd
 *     goes to the kick list and the others get their turn.
 * The kick list is run by a uv_idle_t on the next loop turn, in the order fds were kicked.
 * A pass takes the whole list (KICK_NEXT becomes KICK_NOW) so an fd kicked again during the
 * pass waits for the next turn instead of starving the loop.
 *
 * Invariants. An fd is on at most one kick list, and f->kick says which (NONE, NEXT, NOW).
 * nreading counts added fds with reading on; the poll handle holds a loop reference exactly
 * while nreading > 0 (like a libuv stream in uv_read_start: an owner that reads keeps the
 * loop alive, an idle reader does not). Removal leaves no pointer to f anywhere in the
 * reader: f is unlinked from its kick list, the events of the batch still ahead of on_ep's
 * cursor are cleared, and `current` is cleared if f's callbacks are the ones running, so
 * do_read stops touching f; the owner may free f inside its own callback.
 *
 * Hooks. Two optional callbacks of the whole reader tell an owner what the read callbacks do
 * not: that a read found EAGAIN (drained: the server gives an idle connection's buffers back
 * then), and that a FIN or an error came while an fd's reading is off (hup: the server tells
 * a handler holding a request at once, though the bytes before the FIN wait unread).
 *
 * Reads are weft__sys_recv (src/core/sysio.h: recv(2) without glibc's cancellation point).
 *
 * Errors. recv(2) errors other than EINTR and EAGAIN go to the callback as libuv errors. An
 * epoll_ctl failure at add is returned; at remove it is ignored (the owner closes the
 * descriptor next, which removes it from the epoll anyway).
 *
 * Threads: a reader, its handles and its fds are touched only by their loop's thread.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"
#include "http/reader.h"

static void kick(weft__rfd_t *f);

/* Reads f until a short read, EAGAIN, EOF, an error, reading off, removal, or the turn's
 * quota. */
static void do_read(weft__rfd_t *f)
{
    weft__reader_t *r = f->r;
    r->current = f;
    for (int i = 0; r->current == f && f->reading && f->rready; i++) {
        if (i == WEFT__READS_PER_TURN) {
            kick(f);
            break;
        }
        uv_buf_t b = {.base = NULL, .len = 0};
        f->alloc_cb(f, WEFT__READER_SUGGESTED, &b);
        if (r->current != f) break; /* removed from alloc */
        if (b.len == 0) {
            f->read_cb(f, UV_ENOBUFS, &b);
            break;
        }
        ssize_t n = weft__sys_recv(f->fd, b.base, b.len);
        int err = n < 0 ? errno : 0;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            f->rready = false;
            if (r->drained_cb) r->drained_cb(f);
            break;
        }
        /* drained, EOF or an error; but after EPOLLRDHUP read on until read returns 0 */
        if (n <= 0 || ((size_t)n < b.len && !f->rdhup)) f->rready = false;
        f->read_cb(f, n < 0 ? uv_translate_sys_error(err) : n ? n : UV_EOF, &b);
        if (n <= 0) break;
    }
    if (r->current == f) r->current = NULL;
}

/* The epoll has events: fds in order of arrival. */
static void on_ep(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    weft__reader_t *r = h->data;
    int n = epoll_wait(r->ep, r->ev, WEFT__READER_BATCH, 0);
    r->ev_n = n > 0 ? n : 0;
    for (r->ev_pos = 0; r->ev_pos < r->ev_n; r->ev_pos++) {
        weft__rfd_t *f = r->ev[r->ev_pos].data.ptr;
        if (!f) continue; /* removed earlier in this batch */
        f->rready = true;
        if (r->ev[r->ev_pos].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            f->rdhup = true;
            if (!f->reading && r->hup_cb) {
                r->current = f;
                r->hup_cb(f);
                if (r->current != f) continue; /* removed by the hook */
                r->current = NULL;
            }
        }
        do_read(f);
    }
    r->ev_n = r->ev_pos = 0;
}

/* ---- the kick list ---- */

static void list_append(weft__rfd_t **head, weft__rfd_t **tail, weft__rfd_t *f)
{
    f->knext = NULL;
    f->kprev = *tail;
    if (*tail)
        (*tail)->knext = f;
    else
        *head = f;
    *tail = f;
}

static void list_unlink(weft__rfd_t **head, weft__rfd_t **tail, weft__rfd_t *f)
{
    if (f->kprev)
        f->kprev->knext = f->knext;
    else
        *head = f->knext;
    if (f->knext)
        f->knext->kprev = f->kprev;
    else
        *tail = f->kprev;
    f->kprev = f->knext = NULL;
}

/* The kick state machine: NONE -> NEXT (kick), NEXT -> NOW (a pass begins), NOW -> NONE (its
 * turn in the pass), NEXT or NOW -> NONE (removal). */
static void kick_to(weft__rfd_t *f, weft__kick_t to)
{
    weft__reader_t *r = f->r;
    switch (to) {
    case WEFT__KICK_NEXT:
        WEFT_ASSERT(f->kick == WEFT__KICK_NONE);
        list_append(&r->next_head, &r->next_tail, f);
        break;
    case WEFT__KICK_NOW:
        WEFT_ASSERT(f->kick == WEFT__KICK_NEXT); /* moved with the whole list by on_idle */
        break;
    case WEFT__KICK_NONE:
        WEFT_ASSERT(f->kick != WEFT__KICK_NONE);
        if (f->kick == WEFT__KICK_NEXT)
            list_unlink(&r->next_head, &r->next_tail, f);
        else
            list_unlink(&r->now_head, &r->now_tail, f);
        break;
    }
    f->kick = to;
}

static void on_idle(uv_idle_t *h)
{
    weft__reader_t *r = h->data;
    WEFT_ASSERT(!r->now_head);
    r->now_head = r->next_head;
    r->now_tail = r->next_tail;
    r->next_head = r->next_tail = NULL;
    for (weft__rfd_t *f = r->now_head; f; f = f->knext) kick_to(f, WEFT__KICK_NOW);
    while (r->now_head) {
        weft__rfd_t *f = r->now_head;
        kick_to(f, WEFT__KICK_NONE);
        do_read(f);
    }
    if (!r->next_head) uv_idle_stop(&r->idle);
}

static void kick(weft__rfd_t *f)
{
    if (f->kick != WEFT__KICK_NONE || !f->added) return;
    kick_to(f, WEFT__KICK_NEXT);
    uv_idle_start(&f->r->idle, on_idle);
}

/* ---- the interface ---- */

int weft__reader_init(weft__reader_t *r, uv_loop_t *loop)
{
    memset(r, 0, offsetof(weft__reader_t, ev)); /* the event array needs no zeroing */
    r->loop = loop;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return uv_translate_sys_error(errno);
    int err = uv_poll_init(loop, &r->poll, ep);
    if (err) {
        close(ep);
        return err;
    }
    r->ep = ep;
    r->poll.data = r;
    uv_idle_init(loop, &r->idle); /* only fills the handle in: cannot fail */
    r->idle.data = r;
    uv_poll_start(&r->poll, UV_READABLE, on_ep); /* returns 0 for a handle uv_poll_init took */
    uv_unref((uv_handle_t *)&r->poll);           /* nothing reads yet */
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    weft__reader_t *r = h->data;
    if (--r->open_handles) return;
    close(r->ep);
    r->ep = -1;
    if (r->on_closed) r->on_closed(r);
}

void weft__reader_close(weft__reader_t *r, void (*on_closed)(weft__reader_t *r))
{
    WEFT_ASSERT(r->nfds == 0 && r->open_handles == 0);
    r->on_closed = on_closed;
    r->open_handles = 2;
    uv_close((uv_handle_t *)&r->poll, on_handle_closed);
    uv_close((uv_handle_t *)&r->idle, on_handle_closed);
}

int weft__reader_add(weft__reader_t *r, weft__rfd_t *f, int fd, weft__reader_alloc_cb alloc_cb,
                     weft__reader_read_cb read_cb, void *data)
{
    *f = (weft__rfd_t){.data = data, .r = r, .alloc_cb = alloc_cb, .read_cb = read_cb, .fd = fd};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = f};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) return uv_translate_sys_error(errno);
    f->added = true;
    r->nfds++;
    return 0;
}

void weft__reader_remove(weft__rfd_t *f)
{
    if (!f->added) return;
    weft__reader_t *r = f->r;
    weft__reader_stop(f);
    if (f->kick != WEFT__KICK_NONE) kick_to(f, WEFT__KICK_NONE);
    for (int i = r->ev_pos + 1; i < r->ev_n; i++)
        if (r->ev[i].data.ptr == f) r->ev[i].data.ptr = NULL;
    if (r->current == f) r->current = NULL;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, f->fd, NULL);
    f->added = false;
    f->rready = f->rdhup = false;
    r->nfds--;
}

void weft__reader_start(weft__rfd_t *f)
{
    if (!f->added || f->reading) return;
    f->reading = true;
    if (f->r->nreading++ == 0) uv_ref((uv_handle_t *)&f->r->poll);
    if (f->rready) kick(f); /* no new edge will come for bytes already there */
}

void weft__reader_stop(weft__rfd_t *f)
{
    if (!f->reading) return;
    f->reading = false;
    if (--f->r->nreading == 0) uv_unref((uv_handle_t *)&f->r->poll);
}

void weft__reader_kick(weft__rfd_t *f)
{
    if (f->reading && f->rready) kick(f);
}

void weft__reader_hooks(weft__reader_t *r, weft__reader_event_cb drained, weft__reader_event_cb hup)
{
    r->drained_cb = drained;
    r->hup_cb = hup;
}
