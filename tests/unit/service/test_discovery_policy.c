/*
 * test_discovery_policy.c - the discovery client's choice of instance (discovery_policy.c)
 * on a fake clock, without sockets: a breaker per instance (skipped while open, a fail-fast
 * WEFT_EBREAKER when every one is, the trip/half-open/close cycle with on_breaker told each
 * transition in order), breakers kept by ID across registry updates and dropped with their
 * instance, never the same instance twice in one call, round robin (plain and smooth
 * weighted), least request (power of two choices), ring hash (a key sticks; its instance's
 * open breaker moves it), weighted random, and out of memory leaving the set as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/discovery_policy.h"

/* ---- transitions told to on_breaker ---- */

typedef struct tlog_s {
    unsigned n;
    char inst[64][16];
    weft_breaker_state_t from[64], to[64];
    weft_breaker_reason_t why[64];
} tlog_t;

static void on_br(void *data, const char *service, const char *instance, weft_breaker_state_t from,
                  weft_breaker_state_t to, weft_breaker_reason_t why)
{
    tlog_t *l = data;
    assert_string_equal(service, "web");
    if (l->n >= 64) return;
    strncpy(l->inst[l->n], instance, sizeof(l->inst[0]) - 1);
    l->from[l->n] = from;
    l->to[l->n] = to;
    l->why[l->n] = why;
    l->n++;
}

/* ---- instances ---- */

static weft_discovery_instance_t mkinst(const char *id, unsigned weight)
{
    weft_discovery_instance_t in;
    memset(&in, 0, sizeof(in));
    in.id = id;
    in.service = "web";
    in.address = "127.0.0.1";
    in.port = 1;
    in.weight = weight;
    return in;
}

static dpol_conf_t conf(weft_discovery_policy_t p, bool breaker, tlog_t *l)
{
    dpol_conf_t c;
    memset(&c, 0, sizeof(c));
    c.policy = p;
    c.breaker = breaker;
    weft_breaker_options_init(&c.bconf);
    c.bconf.consecutive_failures = 3;
    c.bconf.failure_rate = 0;
    c.bconf.open_for_ms = 1000;
    c.bconf.open_for_max_ms = 4000;
    c.bconf.half_open_requests = 2;
    c.on_breaker = l ? on_br : NULL;
    c.data = l;
    return c;
}

/* A pick that must succeed: the instance's index. */
static long pick_ok(dpol_set_t *s, const weft_discovery_instance_t *in, uint64_t now)
{
    int err = 0;
    long i = weft__dpol_pick(s, in, NULL, 0, false, 0, now, &err);
    if (i < 0) fail_msg("no pick at %llu: %d", (unsigned long long)now, err);
    return i;
}

static void test_breaker_cycle(void **state)
{
    (void)state;
    tlog_t l = {0};
    dpol_conf_t c = conf(WEFT_DISCOVERY_ROUND_ROBIN, true, &l);
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 7);
    weft_discovery_instance_t in[2] = {mkinst("a", 1), mkinst("b", 1)};
    assert_int_equal(weft__dpol_update(&s, in, 2, 0), 0);
    /* each new instance's breaker is announced, CLOSED */
    assert_int_equal(l.n, 2);
    assert_string_equal(l.inst[0], "a");
    assert_int_equal(l.why[0], WEFT_BREAKER_NONE);
    assert_int_equal(l.from[1], WEFT_BREAKER_CLOSED);
    assert_int_equal(l.to[1], WEFT_BREAKER_CLOSED);
    l.n = 0;
    /* a fails three times in a row (round robin alternates a, b) */
    uint64_t t = 10;
    for (int k = 0; k < 6; k++, t++) {
        long i = pick_ok(&s, in, t);
        weft__dpol_record(&s, in[i].id, t, i == 1, 1);
    }
    assert_int_equal(weft__dpol_state(&s, "a"), WEFT_BREAKER_OPEN);
    assert_int_equal(weft__dpol_state(&s, "b"), WEFT_BREAKER_CLOSED);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.inst[0], "a");
    assert_int_equal(l.to[0], WEFT_BREAKER_OPEN);
    assert_int_equal(l.why[0], WEFT_BREAKER_CONSECUTIVE_FAILURES);
    /* while a is open every pick is b, and a's refusals are counted */
    for (int k = 0; k < 5; k++, t++) {
        assert_int_equal(pick_ok(&s, in, t), 1);
        weft__dpol_record(&s, "b", t, true, 1);
    }
    assert_true(s.rejected >= 2);
    /* b fails too: everything is open, picks fail fast */
    for (int k = 0; k < 3; k++, t++) {
        assert_int_equal(pick_ok(&s, in, t), 1);
        weft__dpol_record(&s, "b", t, false, 1);
    }
    int err = 0;
    assert_int_equal(weft__dpol_pick(&s, in, NULL, 0, false, 0, t, &err), -1);
    assert_int_equal(err, WEFT_EBREAKER);
    /* a opened at 14 (its third failure); its open_for of 1 s passes (b's, from 23, has
     * not): a half-open trial goes to a */
    t = 1014;
    long i = pick_ok(&s, in, t);
    assert_int_equal(i, 0);
    assert_int_equal(weft__dpol_state(&s, "a"), WEFT_BREAKER_HALF_OPEN);
    /* a second trial is allowed (half_open_requests 2); a third is not while they run */
    assert_int_equal(pick_ok(&s, in, t), 0);
    assert_int_equal(weft__dpol_pick(&s, in, NULL, 0, false, 0, t, &err), -1);
    assert_int_equal(err, WEFT_EBREAKER);
    weft__dpol_record(&s, "a", t + 1, true, 1);
    weft__dpol_record(&s, "a", t + 2, true, 1);
    assert_int_equal(weft__dpol_state(&s, "a"), WEFT_BREAKER_CLOSED);
    /* the transitions of a, in order: closed -> open -> half_open -> closed */
    unsigned k = 0;
    weft_breaker_state_t want[3][2] = {{WEFT_BREAKER_CLOSED, WEFT_BREAKER_OPEN},
                                       {WEFT_BREAKER_OPEN, WEFT_BREAKER_HALF_OPEN},
                                       {WEFT_BREAKER_HALF_OPEN, WEFT_BREAKER_CLOSED}};
    for (unsigned j = 0; j < l.n; j++) {
        if (strcmp(l.inst[j], "a") != 0) continue;
        assert_true(k < 3);
        assert_int_equal(l.from[j], want[k][0]);
        assert_int_equal(l.to[j], want[k][1]);
        k++;
    }
    assert_int_equal(k, 3);
    weft__dpol_clear(&s);
}

static void test_update_keeps_breakers(void **state)
{
    (void)state;
    tlog_t l = {0};
    dpol_conf_t c = conf(WEFT_DISCOVERY_ROUND_ROBIN, true, &l);
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 7);
    weft_discovery_instance_t in[3] = {mkinst("a", 1), mkinst("b", 1), mkinst("c", 1)};
    assert_int_equal(weft__dpol_update(&s, in, 2, 0), 0);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(pick_ok(&s, in, 1), 0);
        weft__dpol_record(&s, "a", 1, false, 1);
        assert_int_equal(pick_ok(&s, in, 1), 1);
        weft__dpol_record(&s, "b", 1, true, 1);
    }
    assert_int_equal(weft__dpol_state(&s, "a"), WEFT_BREAKER_OPEN);
    /* a new answer lists a, b and c: a stays open, c is new (announced) */
    l.n = 0;
    assert_int_equal(weft__dpol_update(&s, in, 3, 2), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.inst[0], "c");
    assert_int_equal(weft__dpol_state(&s, "a"), WEFT_BREAKER_OPEN);
    for (int k = 0; k < 6; k++) {
        long i = pick_ok(&s, in, 3);
        assert_true(i != 0);
        weft__dpol_record(&s, in[i].id, 3, true, 1);
    }
    /* a leaves the passing set and comes back: a fresh, closed breaker */
    assert_int_equal(weft__dpol_update(&s, in + 1, 2, 4), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(weft__dpol_update(&s, in, 3, 5), 0);
    assert_int_equal(weft__dpol_state(&s, "a"), WEFT_BREAKER_CLOSED);
    /* a record for an instance no longer there is ignored */
    weft__dpol_record(&s, "zz", 6, false, 1);
    /* nothing left at all */
    assert_int_equal(weft__dpol_update(&s, in, 0, 7), 0);
    int err = 0;
    assert_int_equal(weft__dpol_pick(&s, in, NULL, 0, false, 0, 8, &err), -1);
    assert_int_equal(err, WEFT_ENOENT);
    weft__dpol_clear(&s);
}

static void test_never_twice(void **state)
{
    (void)state;
    weft_discovery_policy_t ps[] = {WEFT_DISCOVERY_ROUND_ROBIN, WEFT_DISCOVERY_RANDOM,
                                    WEFT_DISCOVERY_LEAST_OUTSTANDING, WEFT_DISCOVERY_LEAST_REQUEST,
                                    WEFT_DISCOVERY_RING_HASH};
    weft_discovery_instance_t in[3] = {mkinst("a", 1), mkinst("b", 5), mkinst("c", 1)};
    for (size_t p = 0; p < sizeof(ps) / sizeof(ps[0]); p++) {
        dpol_conf_t c = conf(ps[p], false, NULL);
        dpol_set_t s;
        weft__dpol_init(&s, &c, "web", 99 + p);
        assert_int_equal(weft__dpol_update(&s, in, 3, 0), 0);
        for (int round = 0; round < 50; round++) {
            unsigned tried[3];
            size_t nt = 0;
            int err = 0;
            for (;;) {
                long i = weft__dpol_pick(&s, in, tried, nt, true, (uint64_t)round * 7919u, 0, &err);
                if (i < 0) break;
                for (size_t k = 0; k < nt; k++)
                    if (tried[k] == (unsigned)i) fail_msg("policy %zu picked %ld twice", p, i);
                tried[nt++] = (unsigned)i;
                assert_true(nt <= 3);
            }
            assert_int_equal(nt, 3);
            assert_int_equal(err, WEFT_ENOENT);
        }
        weft__dpol_clear(&s);
    }
}

static void test_round_robin(void **state)
{
    (void)state;
    dpol_conf_t c = conf(WEFT_DISCOVERY_ROUND_ROBIN, false, NULL);
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 1);
    weft_discovery_instance_t in[3] = {mkinst("a", 1), mkinst("b", 1), mkinst("c", 1)};
    assert_int_equal(weft__dpol_update(&s, in, 3, 0), 0);
    for (int k = 0; k < 9; k++) assert_int_equal(pick_ok(&s, in, 0), k % 3);
    /* weights 5, 1, 1: smooth weighted round robin, a a b a c a a per 7 */
    in[0].weight = 5;
    assert_int_equal(weft__dpol_update(&s, in, 3, 0), 0);
    const long want[7] = {0, 0, 1, 0, 2, 0, 0};
    for (int k = 0; k < 14; k++) assert_int_equal(pick_ok(&s, in, 0), want[k % 7]);
    weft__dpol_clear(&s);
}

static void test_least_request(void **state)
{
    (void)state;
    dpol_conf_t c = conf(WEFT_DISCOVERY_LEAST_REQUEST, false, NULL);
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 3);
    weft_discovery_instance_t in[2] = {mkinst("a", 1), mkinst("b", 1)};
    assert_int_equal(weft__dpol_update(&s, in, 2, 0), 0);
    /* of two, the one with fewer calls in flight, every time */
    in[0].outstanding = 4;
    for (int k = 0; k < 20; k++) assert_int_equal(pick_ok(&s, in, 0), 1);
    in[0].outstanding = 0;
    in[1].outstanding = 2;
    for (int k = 0; k < 20; k++) assert_int_equal(pick_ok(&s, in, 0), 0);
    weft__dpol_clear(&s);
}

static void test_ring_hash(void **state)
{
    (void)state;
    dpol_conf_t c = conf(WEFT_DISCOVERY_RING_HASH, true, NULL);
    c.bconf.consecutive_failures = 1;
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 5);
    weft_discovery_instance_t in[4] = {mkinst("a", 1), mkinst("b", 1), mkinst("c", 1),
                                       mkinst("d", 1)};
    assert_int_equal(weft__dpol_update(&s, in, 4, 0), 0);
    unsigned seen[4] = {0};
    for (uint64_t key = 0; key < 64; key++) {
        uint64_t h = weft_ring_hash(&key, sizeof(key));
        int err;
        long first = weft__dpol_pick(&s, in, NULL, 0, true, h, 0, &err);
        assert_true(first >= 0);
        weft__dpol_record(&s, in[first].id, 0, true, 1);
        seen[first]++;
        for (int k = 0; k < 4; k++) { /* the same key, the same instance */
            assert_int_equal(weft__dpol_pick(&s, in, NULL, 0, true, h, 0, &err), first);
            weft__dpol_record(&s, in[first].id, 0, true, 1);
        }
    }
    for (int i = 0; i < 4; i++) assert_true(seen[i] > 0);
    /* a key's instance trips: the key goes elsewhere, and back once it closes */
    uint64_t key = 12345, h = weft_ring_hash(&key, sizeof(key));
    int err;
    long home = weft__dpol_pick(&s, in, NULL, 0, true, h, 10, &err);
    weft__dpol_record(&s, in[home].id, 10, false, 1);
    assert_int_equal(weft__dpol_state(&s, in[home].id), WEFT_BREAKER_OPEN);
    long away = weft__dpol_pick(&s, in, NULL, 0, true, h, 11, &err);
    assert_true(away >= 0 && away != home);
    weft__dpol_record(&s, in[away].id, 11, true, 1);
    for (int k = 0; k < 2; k++) { /* half-open trials at 1011 */
        assert_int_equal(weft__dpol_pick(&s, in, NULL, 0, true, h, 1011, &err), home);
        weft__dpol_record(&s, in[home].id, 1011, true, 1);
    }
    assert_int_equal(weft__dpol_state(&s, in[home].id), WEFT_BREAKER_CLOSED);
    assert_int_equal(weft__dpol_pick(&s, in, NULL, 0, true, h, 1012, &err), home);
    weft__dpol_record(&s, in[home].id, 1012, true, 1);
    weft__dpol_clear(&s);
}

/* Weights too large for a ring still update the set (its calls then go at random). */
static void test_ring_too_big(void **state)
{
    (void)state;
    dpol_conf_t c = conf(WEFT_DISCOVERY_RING_HASH, false, NULL);
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 5);
    weft_discovery_instance_t in[5] = {mkinst("a", 1u << 20), mkinst("b", 1u << 20),
                                       mkinst("c", 1u << 20), mkinst("d", 1u << 20),
                                       mkinst("e", 1u << 20)};
    assert_int_equal(weft__dpol_update(&s, in, 5, 0), 0);
    assert_int_equal(s.n, 5);
    assert_null(s.ring);
    unsigned seen[5] = {0};
    for (uint64_t k = 0; k < 200; k++) {
        int err;
        long i = weft__dpol_pick(&s, in, NULL, 0, true, k, 0, &err);
        assert_true(i >= 0 && i < 5);
        seen[i]++;
    }
    for (int i = 0; i < 5; i++) assert_true(seen[i] > 0);
    /* two of them fit on a ring with one point per unit of weight */
    assert_int_equal(weft__dpol_update(&s, in, 2, 0), 0);
    assert_non_null(s.ring);
    weft__dpol_clear(&s);
}

static void test_random_weighted(void **state)
{
    (void)state;
    dpol_conf_t c = conf(WEFT_DISCOVERY_RANDOM, false, NULL);
    dpol_set_t s;
    weft__dpol_init(&s, &c, "web", 11);
    weft_discovery_instance_t in[2] = {mkinst("a", 9), mkinst("b", 1)};
    assert_int_equal(weft__dpol_update(&s, in, 2, 0), 0);
    unsigned n[2] = {0};
    for (int k = 0; k < 10000; k++) n[pick_ok(&s, in, 0)]++;
    /* 9:1, within a wide margin (binomial sd is 30) */
    assert_true(n[0] > 8700 && n[0] < 9300);
    weft__dpol_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_cycle),   cmocka_unit_test(test_update_keeps_breakers),
        cmocka_unit_test(test_never_twice),     cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_least_request),   cmocka_unit_test(test_ring_hash),
        cmocka_unit_test(test_random_weighted), cmocka_unit_test(test_ring_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
