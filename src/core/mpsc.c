/*
 * mpsc.c - bounded lock-free MPSC queue and loop inbox (see core/mpsc.h).
 *
 * The queue is the intrusive list in which producers exchange the head pointer and then
 * link the previous node to theirs (D. Vyukov's non-intrusive/intrusive MPSC design, as
 * described in his public notes; written here from the description). The consumer walks
 * from the tail. A stub node is pushed when the consumer reaches the last node, so the last
 * real node can be handed out without racing a producer that is linking behind it.
 *
 * Memory order: a producer's release store of prev->next publishes its node's contents;
 * the consumer's acquire load of next sees them. The exchange on head is acq_rel so that
 * producers order among themselves. The bound is a separate counter: incremented before
 * the push (and undone when over the limit), decremented after a pop; it can briefly
 * over-count by the pushes in flight, never under-count, so the limit holds.
 *
 * Why not liburcu's wfcqueue, which DESIGN.md names for MPSC queues: its enqueue is this
 * same exchange-then-link, but its atomics are inline assembly (urcu/uatomic/x86.h) that
 * ThreadSanitizer cannot see, so `make test`'s TSan pass would report every hand-off of an
 * item between threads as a race unless each push and pop were annotated by hand (as
 * core/snapshot.c has to do for liburcu's grace periods). Written with C11 atomics, the
 * queue's ordering is checked by TSan in the stress tests instead of asserted by
 * annotations. The bound, which wfcqueue does not have, needs the counter either way.
 */
#include "core/mpsc.h"

#include "weft/common.h"

void weft_mpsc_init(weft_mpsc_t *q, size_t limit)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
    atomic_store_explicit(&q->count, 0, memory_order_relaxed);
    q->limit = limit ? limit : 1;
}

static inline void link_node(weft_mpsc_t *q, weft_mpsc_node_t *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    weft_mpsc_node_t *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    /* Between the exchange and this store the queue is "half pushed": pop sees the chain
     * end at prev and returns NULL until the link lands. */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* The push; *waiting gets the number of items waiting just after it (this one included). */
static inline int push_counted(weft_mpsc_t *q, weft_mpsc_node_t *n, size_t *waiting)
{
    size_t before = atomic_fetch_add_explicit(&q->count, 1, memory_order_relaxed);
    if (before >= q->limit) {
        atomic_fetch_sub_explicit(&q->count, 1, memory_order_relaxed);
        return WEFT_ELIMIT;
    }
    link_node(q, n);
    *waiting = before + 1;
    return 0;
}

int weft_mpsc_push(weft_mpsc_t *q, weft_mpsc_node_t *n)
{
    size_t waiting;
    return push_counted(q, n, &waiting);
}

static inline weft_mpsc_node_t *taken(weft_mpsc_t *q, weft_mpsc_node_t *n)
{
    atomic_fetch_sub_explicit(&q->count, 1, memory_order_relaxed);
    return n;
}

weft_mpsc_node_t *weft_mpsc_pop(weft_mpsc_t *q)
{
    weft_mpsc_node_t *tail = q->tail;
    weft_mpsc_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next) return NULL; /* empty, or the first push is half done */
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return taken(q, tail);
    }
    /* tail is the last linked node. If a producer has already exchanged head past it, its
     * link is on the way: come back later. */
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire)) return NULL;
    /* Put the stub behind tail so tail can leave; then tail->next is the stub or a node a
     * producer pushed meanwhile. */
    link_node(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return taken(q, tail);
    }
    return NULL;
}

size_t weft_mpsc_size(const weft_mpsc_t *q)
{
    return atomic_load_explicit(&q->count, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------ */
/* inbox                                                                                */

static void on_wake(uv_async_t *a)
{
    weft_inbox_t *in = a->data;
    if (in->closing) return;
    for (unsigned i = 0; i < in->batch; i++) {
        weft_mpsc_node_t *n = weft_mpsc_pop(&in->q);
        if (!n) return; /* empty, or a post is half done: its wake-up (or the next poll) follows */
        in->on_item(in, n, in->arg);
        if (in->closing) return; /* closed from on_item */
    }
    /* The batch is used up: leave the rest for the next loop iteration. */
    if (weft_mpsc_size(&in->q) > 0) uv_async_send(&in->async);
}

int weft_inbox_init(weft_inbox_t *in, uv_loop_t *loop, size_t limit, unsigned batch,
                    weft_inbox_fn on_item, weft_inbox_fn on_discard, void *arg)
{
    if (limit == 0 || batch == 0 || !on_item) return WEFT_EINVAL;
    weft_mpsc_init(&in->q, limit);
    in->on_item = on_item;
    in->on_discard = on_discard;
    in->on_closed = NULL;
    in->arg = arg;
    in->batch = batch;
    in->wake_at = 1;
    atomic_store_explicit(&in->posted, 0, memory_order_relaxed);
    atomic_store_explicit(&in->dropped, 0, memory_order_relaxed);
    in->closing = 0;
    int err = uv_async_init(loop, &in->async, on_wake);
    if (err) return err;
    in->async.data = in;
    return 0;
}

int weft_inbox_post(weft_inbox_t *in, weft_mpsc_node_t *n)
{
    size_t waiting;
    if (push_counted(&in->q, n, &waiting) != 0) {
        atomic_fetch_add_explicit(&in->dropped, 1, memory_order_relaxed);
        return WEFT_ELIMIT;
    }
    atomic_fetch_add_explicit(&in->posted, 1, memory_order_relaxed);
    /* Counts move by one per push and pop, so a rise through wake_at is always a push that
     * brings the count to exactly wake_at: that push wakes the loop. */
    if (in->wake_at == 1 || waiting == in->wake_at) uv_async_send(&in->async);
    return 0;
}

void weft_inbox_set_wake(weft_inbox_t *in, size_t threshold)
{
    if (threshold < 1) threshold = 1;
    if (threshold > in->q.limit) threshold = in->q.limit;
    in->wake_at = threshold;
}

void weft_inbox_poll(weft_inbox_t *in)
{
    on_wake(&in->async);
}

static void inbox_closed(uv_handle_t *h)
{
    weft_inbox_t *in = h->data;
    if (in->on_closed) in->on_closed(in, in->arg);
}

void weft_inbox_close(weft_inbox_t *in, void (*on_closed)(weft_inbox_t *in, void *arg))
{
    if (in->closing) return;
    in->closing = 1;
    in->on_closed = on_closed;
    /* No producer is left, so no push is half done and pop drains everything. */
    weft_mpsc_node_t *n;
    while ((n = weft_mpsc_pop(&in->q)) != NULL)
        if (in->on_discard) in->on_discard(in, n, in->arg);
    uv_close((uv_handle_t *)&in->async, inbox_closed);
}
