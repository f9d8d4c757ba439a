/*
 * test_balance.c - the load balancers (src/resilience/balance.c, ring.c): smooth WRR's exact
 * sequence for 5,1,1 and its per-cycle counts; p2c choosing the less loaded; weighted
 * random's distribution with a fixed seed; the ring's balance and its minimal disruption
 * when an endpoint leaves; exclusion sets everywhere, and what happens when all are tried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/balance.h"

static void test_swrr(void **state)
{
    (void)state;
    unsigned w[] = {5, 1, 1};
    weft_swrr_t *s = NULL;
    assert_int_equal(weft_swrr_new(w, 3, &s), 0);
    static const int want[] = {0, 0, 1, 0, 2, 0, 0}; /* a a b a c a a, as NGINX */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 7; i++) assert_int_equal(weft_swrr_pick(s, NULL, 0), want[i]);
    /* exclusion: a retry after a goes to b or c */
    unsigned tried[] = {0};
    for (int i = 0; i < 10; i++) assert_int_not_equal(weft_swrr_pick(s, tried, 1), 0);
    unsigned all[] = {0, 1, 2};
    assert_true(weft_swrr_pick(s, all, 3) >= 0); /* every one tried: still an answer */
    weft_swrr_free(s);

    unsigned w2[] = {3, 0, 2, 7};
    assert_int_equal(weft_swrr_new(w2, 4, &s), 0);
    unsigned cnt[4] = {0};
    for (int i = 0; i < 12 * 50; i++) cnt[weft_swrr_pick(s, NULL, 0)]++;
    assert_int_equal(cnt[0], 150);
    assert_int_equal(cnt[1], 0);
    assert_int_equal(cnt[2], 100);
    assert_int_equal(cnt[3], 350);
    weft_swrr_free(s);
    unsigned zero[] = {0, 0};
    assert_int_equal(weft_swrr_new(zero, 2, &s), 0);
    assert_int_equal(weft_swrr_pick(s, NULL, 0), -1);
    weft_swrr_free(s);
    assert_int_equal(weft_swrr_new(w, 0, &s), WEFT_EINVAL);
}

static void test_p2c(void **state)
{
    (void)state;
    uint64_t rng = 42;
    unsigned active[] = {10, 1, 5, 7};
    unsigned cnt[4] = {0};
    for (int i = 0; i < 10000; i++) cnt[weft_balance_p2c(active, NULL, 4, NULL, 0, &rng)]++;
    assert_int_equal(cnt[0], 0); /* the most loaded loses to any other */
    /* 1 wins every pair it is in (1/2 of pairs), 2 wins against 0 and 3 (1/3), 3 against 0 */
    assert_true(cnt[1] > 4500 && cnt[1] < 5500);
    assert_true(cnt[2] > 2900 && cnt[2] < 3800);
    assert_true(cnt[3] > 1300 && cnt[3] < 2000);
    /* two endpoints: always the less loaded */
    for (int i = 0; i < 100; i++)
        assert_int_equal(weft_balance_p2c(active, NULL, 2, NULL, 0, &rng), 1);
    /* exclusion: 1 tried, so among 0, 2, 3 the least loaded of each pair */
    unsigned tried[] = {1};
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 1000; i++) cnt[weft_balance_p2c(active, NULL, 4, tried, 1, &rng)]++;
    assert_int_equal(cnt[1], 0);
    assert_int_equal(cnt[0], 0);
    unsigned tried3[] = {1, 2, 3};
    for (int i = 0; i < 100; i++)
        assert_int_equal(weft_balance_p2c(active, NULL, 4, tried3, 3, &rng), 0);
    /* weights: (10+1)/10 against (1+1)/1: endpoint 0 is less loaded for its weight */
    unsigned w[] = {10, 1};
    for (int i = 0; i < 100; i++)
        assert_int_equal(weft_balance_p2c(active, w, 2, NULL, 0, &rng), 0);
    unsigned w0[] = {0, 1, 0, 0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(weft_balance_p2c(active, w0, 4, NULL, 0, &rng), 1);
    assert_int_equal(weft_balance_p2c(active, NULL, 0, NULL, 0, &rng), -1);
}

static void test_weighted_random(void **state)
{
    (void)state;
    uint64_t rng = 7;
    unsigned w[] = {1, 2, 7, 0};
    unsigned cnt[4] = {0};
    enum { N = 100000 };
    for (int i = 0; i < N; i++)
        cnt[weft_balance_weighted_random(w, 4, NULL, 0, weft_balance_rand(&rng))]++;
    assert_true(abs((int)cnt[0] - N / 10) < N / 100);
    assert_true(abs((int)cnt[1] - N * 2 / 10) < N / 100);
    assert_true(abs((int)cnt[2] - N * 7 / 10) < N / 100);
    assert_int_equal(cnt[3], 0);
    unsigned tried[] = {2};
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 30000; i++)
        cnt[weft_balance_weighted_random(w, 4, tried, 1, weft_balance_rand(&rng))]++;
    assert_int_equal(cnt[2], 0);
    assert_true(abs((int)cnt[0] - 10000) < 600);
    unsigned all[] = {0, 1, 2};
    assert_true(weft_balance_weighted_random(w, 4, all, 3, 5) >= 0);
    unsigned zero[] = {0, 0};
    assert_int_equal(weft_balance_weighted_random(zero, 2, NULL, 0, 5), -1);
}

#define EPS 10

static void ids_of(weft_str_t *ids, char names[][32], unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        int len = snprintf(names[i], 32, "10.0.0.%u:8080", i + 1);
        ids[i] = (weft_str_t){names[i], (size_t)len};
    }
}

static void test_ring(void **state)
{
    (void)state;
    char names[EPS][32];
    weft_str_t ids[EPS];
    unsigned w[EPS];
    ids_of(ids, names, EPS);
    for (unsigned i = 0; i < EPS; i++) w[i] = 1;
    weft_ring_t *r = NULL, *r2 = NULL;
    assert_int_equal(weft_ring_new(ids, w, EPS, 0, &r), 0);
    assert_int_equal(weft_ring_points(r), 100 * EPS);
    /* the ring without endpoint 3: indexes shift, ids do not */
    weft_str_t ids2[EPS - 1];
    unsigned map[EPS - 1]; /* index in r2 -> index in r */
    for (unsigned i = 0, j = 0; i < EPS; i++)
        if (i != 3) {
            ids2[j] = ids[i];
            map[j++] = i;
        }
    assert_int_equal(weft_ring_new(ids2, w, EPS - 1, 0, &r2), 0);

    enum { KEYS = 100000 };
    unsigned cnt[EPS] = {0}, moved = 0, on3 = 0;
    for (unsigned k = 0; k < KEYS; k++) {
        char key[32];
        int len = snprintf(key, sizeof(key), "user-%u", k);
        uint64_t h = weft_ring_hash(key, (size_t)len);
        int a = weft_ring_pick(r, h, NULL, 0);
        assert_true(a >= 0 && a < EPS);
        assert_int_equal(weft_ring_pick(r, h, NULL, 0), a); /* stable */
        cnt[a]++;
        int b = (int)map[weft_ring_pick(r2, h, NULL, 0)];
        if (a == 3)
            on3++;
        else if (a != b)
            moved++; /* a key not on 3 must stay */
        /* excluding a key's endpoint sends it elsewhere */
        unsigned tried[] = {(unsigned)a};
        int c = weft_ring_pick(r, h, tried, 1);
        assert_true(c >= 0 && c != a);
        /* ... and that elsewhere is where it goes once a leaves (the next point on) */
        if (a == 3) assert_int_equal((int)map[weft_ring_pick(r2, h, NULL, 0)], c);
    }
    assert_int_equal(moved, 0);
    /* about 1/N of the keys were on 3 and moved */
    assert_true(on3 > KEYS / EPS * 6 / 10 && on3 < KEYS / EPS * 14 / 10);
    for (unsigned i = 0; i < EPS; i++)
        assert_true(cnt[i] > KEYS / EPS / 2 && cnt[i] < KEYS / EPS * 2);
    unsigned all[EPS];
    for (unsigned i = 0; i < EPS; i++) all[i] = i;
    assert_true(weft_ring_pick(r, 12345, all, EPS) >= 0);
    weft_ring_free(r);
    weft_ring_free(r2);

    /* weights scale the points and the share */
    unsigned wt[] = {1, 3};
    assert_int_equal(weft_ring_new(ids, wt, 2, 50, &r), 0);
    assert_int_equal(weft_ring_points(r), 200);
    unsigned c2[2] = {0};
    for (unsigned k = 0; k < KEYS; k++)
        c2[weft_ring_pick(r, weft_ring_hash(&k, sizeof(k)), NULL, 0)]++;
    assert_true(c2[1] > c2[0] * 2);
    weft_ring_free(r);
    unsigned huge[] = {1u << 20, 1u << 20};
    assert_int_equal(weft_ring_new(ids, huge, 2, 100, &r), WEFT_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swrr),
        cmocka_unit_test(test_p2c),
        cmocka_unit_test(test_weighted_random),
        cmocka_unit_test(test_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
