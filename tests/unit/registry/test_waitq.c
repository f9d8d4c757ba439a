/*
 * test_waitq.c - the deadlines of a worker's blocking queries (src/registry/waitq.c).
 *
 * A model (a plain array of what is queued) is driven beside the heap through random adds
 * and removals, from the top, the middle and the bottom, with equal deadlines among them;
 * after every step the heap's first is the model's earliest, every queued entry knows its
 * slot, and removed ones know they are in none. Growth and shrinking come with the sizes
 * (up to 5,000 queued, then back to a few).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "registry/reg_int.h"

#define N 5000

static void check(const reg_waitq_t *q, reg_held_t *all, const bool *in)
{
    uint64_t min = UINT64_MAX;
    unsigned count = 0;
    for (unsigned i = 0; i < N; i++) {
        if (!in[i]) {
            assert_int_equal(all[i].qpos, REG_NOT_QUEUED);
            continue;
        }
        count++;
        assert_true(all[i].qpos < q->n);
        assert_ptr_equal(q->v[all[i].qpos], &all[i]);
        if (all[i].deadline < min) min = all[i].deadline;
    }
    assert_int_equal(q->n, count);
    if (!count) {
        assert_null(weft__waitq_first(q));
        return;
    }
    assert_int_equal(weft__waitq_first(q)->deadline, min);
    for (unsigned i = 1; i < q->n; i++) /* the heap property, everywhere */
        assert_true(q->v[(i - 1) / 2]->deadline <= q->v[i]->deadline);
}

static void test_model(void **state)
{
    (void)state;
    reg_held_t *all = calloc(N, sizeof(*all));
    bool *in = calloc(N, sizeof(*in));
    reg_waitq_t q = {0};
    srand(7);
    for (unsigned i = 0; i < N; i++) {
        all[i].qpos = REG_NOT_QUEUED;
        all[i].deadline = (uint64_t)(rand() % 1000); /* many equal */
    }
    for (unsigned i = 0; i < N; i++) { /* fill */
        assert_int_equal(weft__waitq_add(&q, &all[i]), 0);
        in[i] = true;
        if (i % 97 == 0) check(&q, all, in);
    }
    check(&q, all, in);
    unsigned peak_cap = q.cap;
    for (unsigned step = 0; step < 20000; step++) { /* churn, then drain to a few */
        unsigned i = (unsigned)rand() % N;
        bool drain = step >= 10000;
        if (in[i]) {
            weft__waitq_remove(&q, &all[i]);
            in[i] = false;
        } else if (!drain) {
            all[i].deadline = (uint64_t)(rand() % 1000);
            assert_int_equal(weft__waitq_add(&q, &all[i]), 0);
            in[i] = true;
        }
        if (step % 211 == 0) check(&q, all, in);
    }
    while (weft__waitq_first(&q)) { /* the timer's way: the first, until none */
        reg_held_t *h = weft__waitq_first(&q);
        uint64_t d = h->deadline;
        weft__waitq_remove(&q, h);
        in[h - all] = false;
        assert_true(!weft__waitq_first(&q) || weft__waitq_first(&q)->deadline >= d);
        weft__waitq_remove(&q, h); /* twice: nothing */
    }
    check(&q, all, in);
    assert_true(q.cap < peak_cap); /* it shrank */
    weft__waitq_free(&q);
    assert_null(q.v);
    free(all);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_model)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
