/*
 * mpsc.h - a bounded, lock-free multi-producer single-consumer queue, and an inbox that
 * wakes a libuv loop when something arrives (internal).
 *
 * This is the cross-thread path of DESIGN.md ("an MPSC queue plus uv_async_t; never a lock
 * on the hot path"): worker loops hand finished spans to the collector, health results and
 * upstream statistics to the control loop, at request rates. A push is two atomic
 * read-modify-writes (the bound and the exchange that links the node) and no lock, no
 * allocation: nodes are intrusive, embedded in the caller's item.
 *
 * The queue (weft_mpsc_t): any thread may push; one thread at a time pops. Items come out
 * in the order their pushes linked them (FIFO per producer). A pop can return NULL while a
 * push is half done (the producer exchanged the head but has not yet linked the previous
 * node to it); the item comes out on a later pop. The inbox turns that into a rule callers
 * need not know: every push is followed by a wake-up, so the consumer always runs again
 * after the last link.
 *
 * The inbox (weft_inbox_t) owns a queue and a uv_async_t on the consumer's loop. Posts from
 * any thread; on_item runs on the loop's thread, at most `batch` items per loop iteration
 * (the rest are handled on the next iteration, so a flood of posts cannot starve the
 * loop's other handles). Lifetime: weft_inbox_close must only be called once no producer
 * can post any more (they have been joined or told to stop and acknowledged); remaining
 * items are then handed to on_discard so nothing leaks.
 */
#ifndef WEFT_CORE_MPSC_H
#define WEFT_CORE_MPSC_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

typedef struct weft_mpsc_node_s {
    _Atomic(struct weft_mpsc_node_s *) next;
} weft_mpsc_node_t;

typedef struct weft_mpsc_s {
    _Atomic(weft_mpsc_node_t *) head; /* producers: the node pushed last */
    char pad_[64 - sizeof(void *)];   /* keeps producers' and the consumer's lines apart */
    weft_mpsc_node_t *tail;           /* consumer: the node to pop next (or the stub) */
    weft_mpsc_node_t stub;            /* stands in when the queue runs empty */
    atomic_size_t count;              /* pushed and not yet popped */
    size_t limit;                     /* pushes beyond this many waiting items fail */
} weft_mpsc_t;

/* Sets up an empty queue holding at most limit items (limit >= 1). */
void weft_mpsc_init(weft_mpsc_t *q, size_t limit);
/* Any thread. Returns 0, or WEFT_ELIMIT when limit items are waiting (n is not queued). */
int weft_mpsc_push(weft_mpsc_t *q, weft_mpsc_node_t *n);
/* The consumer thread. The oldest linked item, or NULL when empty or when the next push
 * is still half done. */
weft_mpsc_node_t *weft_mpsc_pop(weft_mpsc_t *q);
/* Items waiting (pushed, not popped); exact only when no push or pop runs. */
size_t weft_mpsc_size(const weft_mpsc_t *q);

/* The item that holds node n: WEFT_MPSC_ITEM(n, my_item_t, node_field). */
#define WEFT_MPSC_ITEM(n, type, field) ((type *)(void *)((char *)(n)-offsetof(type, field)))

typedef struct weft_inbox_s weft_inbox_t;
typedef void (*weft_inbox_fn)(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg);

struct weft_inbox_s {
    weft_mpsc_t q;
    uv_async_t async;
    weft_inbox_fn on_item;    /* loop thread: one item, now owned by the callee */
    weft_inbox_fn on_discard; /* at close: one item that was never handled (may be NULL) */
    void (*on_closed)(weft_inbox_t *in, void *arg);
    void *arg;
    unsigned batch;        /* items per loop iteration */
    size_t wake_at;        /* a post wakes the loop when it brings the count to this (1: every
                              post); set before producers start */
    atomic_ullong posted;  /* accepted by weft_inbox_post */
    atomic_ullong dropped; /* refused with WEFT_ELIMIT */
    int closing;
};

/* On the loop's thread: sets up in (the caller owns its memory) with room for limit items,
 * handling at most batch (>= 1) per loop iteration. The inbox keeps the loop alive until
 * weft_inbox_close. Returns 0, WEFT_EINVAL (limit or batch 0, on_item NULL) or a libuv
 * error. */
int weft_inbox_init(weft_inbox_t *in, uv_loop_t *loop, size_t limit, unsigned batch,
                    weft_inbox_fn on_item, weft_inbox_fn on_discard, void *arg);
/* Any thread. Returns 0 (on_item will run for n on the loop), or WEFT_ELIMIT (full: n is
 * still the caller's; counted in dropped). */
int weft_inbox_post(weft_inbox_t *in, weft_mpsc_node_t *n);
/* On the loop's thread, before any producer posts: from now on a post wakes the loop only
 * when it brings the number of waiting items to threshold (clamped to 1..limit), instead of
 * after every post. Items below the threshold, and items whose push was half done when the
 * loop last looked, wait until the owner calls weft_inbox_poll: a consumer that sets a
 * threshold must poll from a timer, whose period then bounds how long an item waits. For
 * consumers that want batches anyway (an exporter), this turns one wake-up per item (an
 * eventfd write by the producer, a context switch to the consumer) into one per threshold. */
void weft_inbox_set_wake(weft_inbox_t *in, size_t threshold);
/* On the loop's thread: handles what is waiting now, as a wake-up does (at most batch items
 * this iteration, the rest on the next ones). */
void weft_inbox_poll(weft_inbox_t *in);
/* On the loop's thread, once no producer can post any more: every item still queued goes
 * to on_discard (or is left alone if it is NULL), the handle is closed, and on_closed(in,
 * arg) runs from the loop when in's memory may be freed (on_closed may be NULL). */
void weft_inbox_close(weft_inbox_t *in, void (*on_closed)(weft_inbox_t *in, void *arg));

#endif
