/*
 * waitq.c - the deadlines of one worker's parked blocking queries: a binary min-heap of
 * reg_held_t by deadline (loop time, ms). api.c keeps one libuv timer per worker armed for
 * the earliest of them.
 *
 * Why not the HTTP engine's request timer (weft_http_request_timer): that is a uv_timer_t
 * of its own per request, 160 bytes from malloc; here a parked query costs a slot of 8
 * bytes and 12 bytes of its reg_held_t, and ten thousand watchers are what the registry is
 * sized for (bench/registry, part d). The array grows by doubling and shrinks to half when
 * a quarter is used, so a burst of watchers does not hold its memory for ever.
 *
 * Threads: the worker's loop thread.
 */
#include <stdlib.h>

#include "registry/reg_int.h"

static void place(reg_waitq_t *q, unsigned i, reg_held_t *h)
{
    q->v[i] = h;
    h->qpos = i;
}

static void sift_up(reg_waitq_t *q, unsigned i)
{
    reg_held_t *h = q->v[i];
    while (i > 0) {
        unsigned p = (i - 1) / 2;
        if (q->v[p]->deadline <= h->deadline) break;
        place(q, i, q->v[p]);
        i = p;
    }
    place(q, i, h);
}

static void sift_down(reg_waitq_t *q, unsigned i)
{
    reg_held_t *h = q->v[i];
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && q->v[c + 1]->deadline < q->v[c]->deadline) c++;
        if (h->deadline <= q->v[c]->deadline) break;
        place(q, i, q->v[c]);
        i = c;
    }
    place(q, i, h);
}

static int resize(reg_waitq_t *q, unsigned cap)
{
    reg_held_t **v = realloc(q->v, (size_t)cap * sizeof(*v));
    if (!v) return WEFT_ENOMEM;
    q->v = v;
    q->cap = cap;
    return 0;
}

int weft__waitq_add(reg_waitq_t *q, reg_held_t *h)
{
    if (q->n == q->cap && resize(q, q->cap ? q->cap * 2 : 64) != 0) return WEFT_ENOMEM;
    place(q, q->n++, h);
    sift_up(q, q->n - 1);
    return 0;
}

void weft__waitq_remove(reg_waitq_t *q, reg_held_t *h)
{
    unsigned i = h->qpos;
    if (i == REG_NOT_QUEUED) return;
    h->qpos = REG_NOT_QUEUED;
    reg_held_t *last = q->v[--q->n];
    if (i < q->n) {
        place(q, i, last);
        if (i > 0 && q->v[(i - 1) / 2]->deadline > last->deadline)
            sift_up(q, i);
        else
            sift_down(q, i);
    }
    if (q->cap > 64 && q->n < q->cap / 4) resize(q, q->cap / 2); /* failing keeps it larger */
}

reg_held_t *weft__waitq_first(const reg_waitq_t *q)
{
    return q->n ? q->v[0] : NULL;
}

void weft__waitq_free(reg_waitq_t *q)
{
    free(q->v);
    *q = (reg_waitq_t){0};
}
