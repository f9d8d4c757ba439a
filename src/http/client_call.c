/*
 * client_call.c - a call's life in the HTTP client: its state machine, how it ends, the
 * deferred work (kick) and the deadlines (sweep).
 *
 * State machine. weft__call_state_t (client_int.h) lists the states and transitions;
 * weft__call_to asserts the from-state of each (WEFT_ASSERT, on in the sanitizer builds)
 * and keeps the pool's wait queue in step with QUEUED, so no code path can leave a call in
 * a queue it has left or forget to queue it.
 *
 * Ending. on_done runs exactly once per accepted call, then the call is recycled (a free
 * list keeps up to FREE_CALLS_MAX objects with their buffers up to KEEP_BUF_MAX, so steady
 * state allocates nothing). Callbacks never run inside an API call (except cancel and close,
 * which say so), because the caller could not survive its call being freed under it: a
 * failure found inside one (a connect refused at once, uv_write refused) goes through
 * weft__call_fail_soon, which closes the connection at once, moves the call to the `dying`
 * list (DYING, remembering the state it failed in for the counters) and lets the kick run
 * on_done on the next loop turn. From libuv callbacks weft__call_fail ends the call at once.
 *
 * Kick (a uv_idle_t, started only while there is work): delivers on_done to dying calls,
 * parses the bytes a paused call held once it is resumed, and opens connections for calls
 * queued behind a connection that closed.
 *
 * Sweep (one 50 ms timer per client, not one per call; unref'd, and stopped when there is
 * nothing to watch): fails calls past a deadline, each with its own error - the current
 * connect attempt's (connect_timeout_ms: the next address, or WEFT_ETIMEDOUT_CONNECT), the
 * head's (WEFT_ETIMEDOUT_HEAD), the gap between body reads (WEFT_ETIMEDOUT_BODY; not while
 * paused), the whole exchange (WEFT_ETIMEDOUT) - closes pooled connections idle past
 * idle_timeout_ms and frees pools unused for host_keep_ms. A deadline is checked against
 * uv_now, so it fires up to one sweep late and never early.
 *
 * Life-cycle rule: connections, pools and the client are freed only from close callbacks
 * or the sweep, never synchronously under a user callback, so code running after a user
 * callback may still touch them, and checks the call it was serving by its sequence number.
 *
 * Threads: the client's loop thread only. Memory policy (SDK): never aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "http/client_int.h"

#define FREE_CALLS_MAX 256  /* recycled call objects kept per client */
#define KEEP_BUF_MAX   8192 /* a recycled call keeps write buffers up to this size */

void weft__call_to(call_t *call, weft__call_state_t to)
{
    weft__call_state_t from = call->state;
    switch (to) {
    case CALL_QUEUED:
        WEFT_ASSERT(from == CALL_FREE || from == CALL_HEAD);
        break;
    case CALL_CONNECTING:
        WEFT_ASSERT(from == CALL_FREE || from == CALL_QUEUED || from == CALL_HEAD);
        break;
    case CALL_HEAD:
        WEFT_ASSERT(from == CALL_FREE || from == CALL_QUEUED || from == CALL_CONNECTING);
        break;
    case CALL_BODY:
        WEFT_ASSERT(from == CALL_HEAD);
        break;
    case CALL_COMPLETE:
        WEFT_ASSERT(from == CALL_BODY);
        break;
    case CALL_DYING:
        WEFT_ASSERT(from != CALL_FREE && from != CALL_DYING);
        call->failed_in = from;
        break;
    case CALL_FREE:
        WEFT_ASSERT(from != CALL_FREE);
        break;
    }
    if (from == CALL_QUEUED) weft__pool_unqueue(call->pool, call);
    call->state = to;
    if (to == CALL_QUEUED) weft__pool_enqueue(call->pool, call);
}

/* ---- call objects ---- */

call_t *weft__call_new(weft_http_client_t *c)
{
    call_t *call = c->free_calls;
    if (!call) {
        call = calloc(1, sizeof(*call));
        if (call) {
            weft_buf_init(&call->out, 0);
            weft_buf_init(&call->flight, 0);
        }
        return call;
    }
    c->free_calls = call->next;
    c->nfree--;
    weft_buf_t out = call->out, flight = call->flight;
    memset(call, 0, sizeof(*call));
    call->out = out;
    call->flight = flight;
    weft_buf_reset(&call->out);
    weft_buf_reset(&call->flight);
    return call;
}

void weft__call_recycle(weft_http_client_t *c, call_t *call)
{
    WEFT_ASSERT(call->state == CALL_FREE);
    if (c->closing || c->nfree >= FREE_CALLS_MAX) {
        weft_buf_free(&call->out);
        weft_buf_free(&call->flight);
        free(call);
        return;
    }
    if (call->out.cap > KEEP_BUF_MAX) weft_buf_free(&call->out);
    if (call->flight.cap > KEEP_BUF_MAX) weft_buf_free(&call->flight);
    call->next = c->free_calls;
    c->free_calls = call;
    c->nfree++;
}

/* ---- ending ---- */

void weft__call_finish(call_t *call, int err)
{
    weft_http_client_t *c = call->client;
    pool_t *p = call->pool;
    weft__call_state_t phase = call->state;
    if (phase == CALL_DYING) {
        phase = call->failed_in;
        if (call->prev)
            call->prev->next = call->next;
        else
            c->dying = call->next;
        c->ndying--;
    } else {
        if (call->prev)
            call->prev->next = call->next;
        else
            c->calls = call->next;
    }
    if (call->next) call->next->prev = call->prev;
    call->prev = call->next = NULL;
    weft__call_to(call, CALL_FREE); /* leaves the wait queue if it was queued */
    call->conn = NULL;
    p->ncalls--;
    c->ncalls--;
    if (!p->ncalls) {
        c->pools_dirty = true;
        weft__client_sweep_start(c);
    }
    weft__pool_count_end(p, call, phase, err);
    if (call->cbs.on_done) call->cbs.on_done(call, err, call->arg);
    weft__call_recycle(c, call);
}

void weft__call_fail(call_t *call, int err)
{
    if (call->conn) weft__conn_close(call->conn);
    weft__call_finish(call, err);
}

void weft__call_fail_soon(call_t *call, int err)
{
    weft_http_client_t *c = call->client;
    if (call->conn) weft__conn_close(call->conn);
    if (call->state == CALL_DYING) return;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next) call->next->prev = call->prev;
    weft__call_to(call, CALL_DYING);
    call->dying_err = err;
    call->prev = NULL;
    call->next = c->dying;
    if (c->dying) c->dying->prev = call;
    c->dying = call;
    c->ndying++;
    weft__client_kick_start(c);
}

void weft__calls_process_dying(weft_http_client_t *c)
{
    unsigned n = c->ndying;
    while (n-- && c->dying && !c->closing) weft__call_fail(c->dying, c->dying->dying_err);
}

/* ---- the kick ---- */

void weft__client_kick_start(weft_http_client_t *c)
{
    if (!c->closing) uv_idle_start(&c->kick, weft__client_on_kick);
}

void weft__client_on_kick(uv_idle_t *h)
{
    weft_http_client_t *c = h->data;
    /* resumed calls: parse what they held back, then read again */
    conn_t *batch = c->kick_conns;
    c->kick_conns = NULL;
    while (batch && !c->closing) {
        conn_t *k = batch;
        batch = k->next_kick;
        if (!k->kicked) continue; /* closed meanwhile: weft__conn_close unlinked it */
        k->kicked = false;
        call_t *call = k->call;
        if (k->state != CONN_BUSY || !call || call->paused || !k->held) continue;
        k->held = false;
        uint64_t seq = call->seq;
        if (call->state == CALL_COMPLETE)
            weft__read_complete(k, call, k->rpos == k->rbuf.len); /* held back by a pause */
        else
            weft__read_parse(k); /* may be zero bytes: lets the parser finish a step */
        if (k->state == CONN_BUSY && k->call && k->call->seq == seq && !k->call->paused && !k->held)
            weft__conn_read_start(k);
    }
    for (conn_t *k = batch; k; k = k->next_kick) k->kicked = false; /* client closed */
    weft__calls_process_dying(c);
    while (c->kick_pools && !c->closing) {
        pool_t *p = c->kick_pools;
        c->kick_pools = p->next_kick;
        p->kicked = false;
        weft__pool_pump(p);
    }
    if (!c->kick_conns && !c->dying && !c->kick_pools && !c->closing) uv_idle_stop(h);
}

/* ---- the sweep ---- */

void weft__client_sweep_start(weft_http_client_t *c)
{
    if (!c->closing && !uv_is_active((uv_handle_t *)&c->sweep))
        uv_timer_start(&c->sweep, weft__client_on_sweep, CLIENT_SWEEP_MS, CLIENT_SWEEP_MS);
}

static bool past(uint64_t deadline, uint64_t now)
{
    return deadline && now >= deadline;
}

void weft__client_on_sweep(uv_timer_t *t)
{
    weft_http_client_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    for (call_t *call = c->calls, *next; call; call = next) {
        next = call->next; /* failing a call unlinks only that call */
        switch (call->state) {
        case CALL_CONNECTING:
            if (call->conn && past(call->conn->attempt_deadline, now)) {
                weft__conn_attempt_timed_out(call->conn);
                continue;
            }
            break;
        case CALL_HEAD:
            if (!call->paused && past(call->head_deadline, now)) {
                weft__call_fail_soon(call, WEFT_ETIMEDOUT_HEAD);
                continue;
            }
            break;
        case CALL_BODY:
            if (!call->paused && past(call->body_deadline, now)) {
                weft__call_fail_soon(call, WEFT_ETIMEDOUT_BODY);
                continue;
            }
            break;
        default:
            break;
        }
        if (past(call->deadline, now)) weft__call_fail_soon(call, WEFT_ETIMEDOUT);
    }
    if (c->o.idle_timeout_ms) {
        for (conn_t *k = c->conns, *next; k; k = next) {
            next = k->next;
            if (k->state == CONN_IDLE && now >= k->idle_deadline) weft__conn_close(k);
        }
    }
    if (c->pools_dirty && now >= c->pool_scan_at) {
        weft__pools_scan(c, now, false);
        uint64_t every =
            c->o.host_keep_ms < CLIENT_POOL_SCAN ? c->o.host_keep_ms : CLIENT_POOL_SCAN;
        c->pool_scan_at = now + every;
    }
    weft__calls_process_dying(c);
    if (!c->closing && !c->calls && !c->dying && !c->nidle && !c->pools_dirty) uv_timer_stop(t);
}

/* ---- freeing the client ---- */

void weft__client_maybe_free(weft_http_client_t *c)
{
    if (!c->closing || c->open_handles) return;
    weft__pools_free_all(c);
    for (call_t *call = c->free_calls, *next; call; call = next) {
        next = call->next;
        weft_buf_free(&call->out);
        weft_buf_free(&call->flight);
        free(call);
    }
    void (*cb)(void *) = c->on_closed;
    void *arg = c->closed_arg;
    free(c);
    if (cb) cb(arg);
}
