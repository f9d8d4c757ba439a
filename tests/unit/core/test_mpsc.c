/*
 * test_mpsc.c - the lock-free MPSC queue and the loop inbox: order, the bound, many
 * producers against one consumer, batches per loop iteration, discard at close.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "core/mpsc.h"
#include "weft/common.h"

typedef struct {
    weft_mpsc_node_t node;
    unsigned producer;
    unsigned seq;
} item_t;

static item_t *item_of(weft_mpsc_node_t *n)
{
    return WEFT_MPSC_ITEM(n, item_t, node);
}

static void test_fifo_and_bound(void **state)
{
    (void)state;
    weft_mpsc_t q;
    weft_mpsc_init(&q, 3);
    item_t it[4] = {{.seq = 0}, {.seq = 1}, {.seq = 2}, {.seq = 3}};
    assert_null(weft_mpsc_pop(&q));
    for (int round = 0; round < 3; round++) { /* the stub goes round and round */
        for (int i = 0; i < 3; i++) assert_int_equal(weft_mpsc_push(&q, &it[i].node), 0);
        assert_int_equal(weft_mpsc_push(&q, &it[3].node), WEFT_ELIMIT);
        assert_int_equal(weft_mpsc_size(&q), 3);
        assert_int_equal(item_of(weft_mpsc_pop(&q))->seq, 0);
        assert_int_equal(weft_mpsc_push(&q, &it[3].node), 0); /* room again */
        for (unsigned i = 1; i < 4; i++) assert_int_equal(item_of(weft_mpsc_pop(&q))->seq, i);
        assert_null(weft_mpsc_pop(&q));
        assert_int_equal(weft_mpsc_size(&q), 0);
    }
    /* one item at a time: the last node leaves only once the stub is behind it */
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(weft_mpsc_push(&q, &it[i % 4].node), 0);
        assert_ptr_equal(weft_mpsc_pop(&q), &it[i % 4].node);
        assert_null(weft_mpsc_pop(&q));
    }
}

enum { PRODUCERS = 4, PER_PRODUCER = 50000 };

typedef struct {
    weft_mpsc_t *q;
    weft_inbox_t *in;
    item_t *items;
    unsigned id;
    unsigned long full; /* pushes refused by the bound, then retried */
} producer_t;

static void produce(void *arg)
{
    producer_t *p = arg;
    for (unsigned i = 0; i < PER_PRODUCER; i++) {
        item_t *it = &p->items[i];
        it->producer = p->id;
        it->seq = i;
        while ((p->in ? weft_inbox_post(p->in, &it->node) : weft_mpsc_push(p->q, &it->node)) != 0) {
            p->full++;
            sched_yield();
        }
    }
}

typedef struct {
    unsigned next[PRODUCERS]; /* the sequence number expected next from each producer */
    unsigned long got, nulls;
    int bad;
} tally_t;

static void tally(tally_t *t, weft_mpsc_node_t *n)
{
    item_t *it = item_of(n);
    if (it->producer >= PRODUCERS || it->seq != t->next[it->producer])
        t->bad = 1;
    else
        t->next[it->producer]++;
    t->got++;
}

static void test_many_producers(void **state)
{
    (void)state;
    weft_mpsc_t q;
    weft_mpsc_init(&q, 256); /* small: producers meet the bound often */
    producer_t p[PRODUCERS];
    uv_thread_t th[PRODUCERS];
    for (unsigned i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){.q = &q, .id = i, .items = calloc(PER_PRODUCER, sizeof(item_t))};
        assert_non_null(p[i].items);
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        assert_int_equal(uv_thread_create(&th[i], produce, &p[i]), 0);
    tally_t t = {0};
    uint64_t deadline = uv_hrtime() + 30 * (uint64_t)1000000000; /* a lost item: fail, not hang */
    while (t.got < (unsigned long)PRODUCERS * PER_PRODUCER && !t.bad && uv_hrtime() < deadline) {
        weft_mpsc_node_t *n = weft_mpsc_pop(&q);
        if (n)
            tally(&t, n);
        else
            t.nulls++;
    }
    for (unsigned i = 0; i < PRODUCERS; i++) assert_int_equal(uv_thread_join(&th[i]), 0);
    assert_false(t.bad); /* every item once, in order per producer */
    assert_int_equal(t.got, (unsigned long)PRODUCERS * PER_PRODUCER);
    assert_null(weft_mpsc_pop(&q));
    assert_int_equal(weft_mpsc_size(&q), 0);
    for (unsigned i = 0; i < PRODUCERS; i++) {
        assert_int_equal(t.next[i], PER_PRODUCER);
        free(p[i].items);
    }
}

typedef struct {
    tally_t t;
    unsigned long per_wake_max, this_wake, wakes;
    uv_prepare_t prep;  /* runs once per loop iteration: ends a wake's count */
    uv_timer_t timeout; /* fails the test instead of hanging when an item is lost */
    int timed_out;
    int closed, discarded;
    unsigned long want;
} sink_t;

static void on_prep(uv_prepare_t *h)
{
    sink_t *s = h->data;
    if (s->this_wake > s->per_wake_max) s->per_wake_max = s->this_wake;
    if (s->this_wake) s->wakes++;
    s->this_wake = 0;
}

static void on_closed(weft_inbox_t *in, void *arg)
{
    (void)in;
    sink_t *s = arg;
    s->closed = 1;
    uv_close((uv_handle_t *)&s->prep, NULL);
    uv_close((uv_handle_t *)&s->timeout, NULL);
}

static void on_timeout(uv_timer_t *t)
{
    sink_t *s = t->data;
    s->timed_out = 1;
    uv_stop(t->loop);
}

static void on_item(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    sink_t *s = arg;
    tally(&s->t, n);
    s->this_wake++;
    if (s->t.got == s->want) weft_inbox_close(in, on_closed);
}

static void on_discard(weft_inbox_t *in, weft_mpsc_node_t *n, void *arg)
{
    (void)in;
    (void)n;
    ((sink_t *)arg)->discarded++;
}

static void test_inbox_many_producers(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sink_t s = {.want = (unsigned long)PRODUCERS * PER_PRODUCER};
    weft_inbox_t in;
    assert_int_equal(weft_inbox_init(&in, &loop, 1024, 64, on_item, on_discard, &s), 0);
    uv_prepare_init(&loop, &s.prep);
    s.prep.data = &s;
    uv_prepare_start(&s.prep, on_prep);
    uv_timer_init(&loop, &s.timeout);
    s.timeout.data = &s;
    uv_timer_start(&s.timeout, on_timeout, 30000, 0);
    producer_t p[PRODUCERS];
    uv_thread_t th[PRODUCERS];
    for (unsigned i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){.in = &in, .id = i, .items = calloc(PER_PRODUCER, sizeof(item_t))};
        assert_non_null(p[i].items);
        assert_int_equal(uv_thread_create(&th[i], produce, &p[i]), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* ends once the inbox is closed */
    for (unsigned i = 0; i < PRODUCERS; i++) assert_int_equal(uv_thread_join(&th[i]), 0);
    assert_false(s.timed_out);
    assert_true(s.closed);
    assert_false(s.t.bad);
    assert_int_equal(s.t.got, s.want);
    assert_int_equal(s.discarded, 0);
    assert_true(s.per_wake_max <= 64); /* never more than a batch per loop iteration */
    unsigned long full = 0;
    for (unsigned i = 0; i < PRODUCERS; i++) full += p[i].full;
    assert_int_equal(atomic_load(&in.posted), s.want);
    assert_int_equal(atomic_load(&in.dropped), full);
    for (unsigned i = 0; i < PRODUCERS; i++) free(p[i].items);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_closed_only(weft_inbox_t *in, void *arg)
{
    (void)in;
    ((sink_t *)arg)->closed = 1;
}

static void test_inbox_full_and_discard(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sink_t s = {.want = 100};
    weft_inbox_t in;
    assert_int_equal(weft_inbox_init(&in, &loop, 0, 1, on_item, NULL, &s), WEFT_EINVAL);
    assert_int_equal(weft_inbox_init(&in, &loop, 4, 0, on_item, NULL, &s), WEFT_EINVAL);
    assert_int_equal(weft_inbox_init(&in, &loop, 4, 1, NULL, NULL, &s), WEFT_EINVAL);
    assert_int_equal(weft_inbox_init(&in, &loop, 4, 2, on_item, on_discard, &s), 0);
    item_t it[5] = {{.seq = 0}, {.seq = 1}, {.seq = 2}, {.seq = 3}, {.seq = 4}};
    for (int i = 0; i < 4; i++) assert_int_equal(weft_inbox_post(&in, &it[i].node), 0);
    assert_int_equal(weft_inbox_post(&in, &it[4].node), WEFT_ELIMIT);
    assert_int_equal(atomic_load(&in.dropped), 1);
    /* one iteration handles one batch of two; the other two wait for the next */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1);
    assert_int_equal(s.t.got, 2);
    assert_false(s.t.bad);
    weft_inbox_close(&in, on_closed_only); /* the last two are discarded, not lost */
    assert_int_equal(s.discarded, 2);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(s.closed);
    assert_int_equal(s.t.got, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A wake threshold: posts below it do not wake the loop, the post that reaches it does,
 * and weft_inbox_poll picks up what waits below it. */
static void test_inbox_wake_threshold(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sink_t s = {.want = 1000};
    weft_inbox_t in;
    assert_int_equal(weft_inbox_init(&in, &loop, 16, 64, on_item, on_discard, &s), 0);
    weft_inbox_set_wake(&in, 5);
    item_t it[12];
    for (int i = 0; i < 12; i++) it[i] = (item_t){.seq = (unsigned)i};
    for (int i = 0; i < 4; i++) assert_int_equal(weft_inbox_post(&in, &it[i].node), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1);
    assert_int_equal(s.t.got, 0); /* four waiting, no wake-up */
    assert_int_equal(weft_inbox_post(&in, &it[4].node), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1);
    assert_int_equal(s.t.got, 5); /* the fifth woke the loop: all five handled */
    for (int i = 5; i < 8; i++) assert_int_equal(weft_inbox_post(&in, &it[i].node), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1);
    assert_int_equal(s.t.got, 5);
    weft_inbox_poll(&in);
    assert_int_equal(s.t.got, 8); /* the poll took the three below the threshold */
    /* the count falls back under the threshold after a drain, so reaching it again wakes */
    for (int i = 8; i < 12; i++) assert_int_equal(weft_inbox_post(&in, &it[i].node), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1);
    assert_int_equal(s.t.got, 8);
    weft_inbox_set_wake(&in, 100); /* clamped to the limit, 16 */
    assert_int_equal(in.wake_at, 16);
    weft_inbox_set_wake(&in, 0); /* 0 means every post */
    assert_int_equal(in.wake_at, 1);
    weft_inbox_close(&in, on_closed_only);
    assert_int_equal(s.discarded, 4);
    assert_false(s.t.bad);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(s.closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_bound),       cmocka_unit_test(test_many_producers),
        cmocka_unit_test(test_inbox_many_producers), cmocka_unit_test(test_inbox_full_and_discard),
        cmocka_unit_test(test_inbox_wake_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
