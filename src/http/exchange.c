/*
 * exchange.c - a connection's exchange and buffers: taken when bytes arrive, given back
 * when it is idle.
 *
 * Memory. An idle keep-alive connection holds its conn_t (about 650 bytes with its libuv
 * handle) and nothing else: a gateway keeps tens of thousands of them. When the socket has
 * been read to EAGAIN and the connection is idle with nothing buffered or being written and
 * no request in progress (weft__http_conn_quiet), it rests (conn_rest): it gives its
 * exchange, rbuf, obuf and wbuf back (conn_release), or, for at most XKEEP_MAX connections
 * of a listener, keeps them until the second sweep after (250-500 ms), since a connection
 * busy a moment ago most likely gets its next request within milliseconds; when bytes are
 * ready again a connection holding nothing takes them before reading (conn_take, inline in
 * server_int.h).
 * Both go through the listener's freelist of exchanges, each of which keeps a read buffer
 * and at most one output buffer of the initial sizes (grown ones are freed), at most
 * XFREE_MAX of them (the rest are freed): taking and giving back is a few pointer moves, so
 * a busy connection pays almost nothing for it, and the memory of idle connections stays
 * bounded even though malloc keeps what is freed. XFREE_MAX is large enough for a thousand
 * connections that take turns (with 64, wrk -c1000 through the gateway paid a malloc and a
 * free of each buffer per request: 5% of its CPU per request); what the freelist holds
 * beyond need goes back to malloc at the sweeps (weft__http_xfree_trim), half of what sat
 * unused since the last sweep each time, so an idle listener keeps a few within seconds. An exchange on the freelist sits between
 * two messages: request_reset ran, and its parser, paused after a keep-alive message, reads
 * the next message's bytes as a fresh one would; one from a connection that closed
 * mid-message is reset first (exch_reset). When no memory can be had for ready bytes, they
 * wait in the socket and the next sweep kicks the connection again (mem_stalled).
 *
 * Invariant. A connection holding no exchange is always C_IDLE with rlen, olen, rcap and
 * ocap 0 (and rbuf, obuf, wbuf NULL).
 *
 * Threads: the loop thread of the listener whose freelist it is.
 */
#include <stdlib.h>
#include <string.h>

#include "http/server_int.h"

/* A new exchange with a read buffer of RBUF_INITIAL bytes; NULL when out of memory. */
exch_t *weft__http_exch_new(listener_t *l)
{
    exch_t *x = calloc(1, sizeof(*x));
    char *rbuf = x ? malloc(RBUF_INITIAL) : NULL;
    if (!rbuf) {
        free(x);
        return NULL;
    }
    x->rbuf = rbuf;
    llhttp_init(&x->parser, HTTP_REQUEST, &weft__http_parser_settings);
    weft_arena_init(&x->arena, ARENA_BLOCK, ARENA_LIMIT);
    x->req.loop = l->loop;
    return x;
}

void weft__http_exch_free(exch_t *x)
{
    weft_arena_free(&x->arena);
    free(x->hoff_heap);
    free(x->parked_head);
    free(x->rbuf);
    free(x->obuf);
    free(x);
}

/* An exchange whose connection closed at any point of a message, made as good as new. */
void weft__http_exch_reset(exch_t *x, listener_t *l)
{
    weft_arena_reset(&x->arena);
    free(x->parked_head);
    x->parked_head = NULL;
    llhttp_init(&x->parser, HTTP_REQUEST, &weft__http_parser_settings);
    memset(&x->req, 0, sizeof(x->req));
    x->req.loop = l->loop;
}

/* Frees the listener's freelist. */
void weft__http_xfree_drain(listener_t *l)
{
    while (l->xfree) {
        exch_t *x = l->xfree;
        l->xfree = x->next;
        weft__http_exch_free(x);
    }
    l->nxfree = l->xfree_low = 0;
}

/* The sweep: half of the exchanges that sat unused on the freelist since the last sweep
 * (the fewest it held) are freed. A listener whose connections use them keeps them; one
 * gone quiet halves its freelist every sweep. */
void weft__http_xfree_trim(listener_t *l)
{
    for (unsigned n = l->xfree_low / 2; n && l->xfree; n--) {
        exch_t *x = l->xfree;
        l->xfree = x->next;
        l->nxfree--;
        weft__http_exch_free(x);
    }
    l->xfree_low = l->nxfree;
}

/* c gives its exchange and buffers back: to the listener's freelist with one read buffer and
 * at most one output buffer, both of the initial size, or to malloc when the freelist is
 * full. The exchange is between two messages (request_reset ran) or was reset. */
void weft__http_conn_release(conn_t *c)
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
        weft__http_exch_free(x);
        return;
    }
    x->c = NULL;
    x->next = l->xfree;
    l->xfree = x;
    l->nxfree++;
}
