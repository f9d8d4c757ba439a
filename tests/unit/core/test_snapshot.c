/*
 * test_snapshot.c - RCU snapshots: publish and get, NULL publish, destroy at cell teardown,
 * holds that outlive a publish and a grace period, publishing from an unregistered thread,
 * three readers against 20,000 publishes, and reading on weft_workers threads (which
 * proves workers.c registers them: a grace period waits for their read sections).
 *
 * Snapshots here check themselves: b == ~a and every payload word == a while alive;
 * destroy checks that too, then poisons them and frees the payload. Counters are atomic so
 * that destroy may run on any thread; failures on other threads are counted and asserted
 * on the main thread (cmocka's asserts must not run off the main thread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <cmocka.h>

#include "core/snapshot.h"
#include "weft/workers.h"

enum { PAYLOAD = 8 };

typedef struct {
    atomic_ulong allocated;
    atomic_ulong destroyed;
    atomic_ulong bad; /* a destroy that found the object already poisoned */
} stats_t;

typedef struct {
    uint64_t seq;
    uint64_t a, b; /* b == ~a while alive */
    uint64_t *payload;
    stats_t *stats;
} snap_t;

static int snap_ok(const snap_t *s)
{
    if (s->b != ~s->a || !s->payload) return 0;
    for (int i = 0; i < PAYLOAD; i++)
        if (s->payload[i] != s->a) return 0;
    return 1;
}

static void snap_destroy(void *obj)
{
    snap_t *s = obj;
    if (!s->stats) return; /* snap_new failed half-way: nothing to check or free */
    if (!snap_ok(s)) atomic_fetch_add(&s->stats->bad, 1);
    for (int i = 0; i < PAYLOAD; i++) s->payload[i] = 0xdeadbeefdeadbeefull;
    free(s->payload);
    s->payload = NULL;
    s->a = s->b = 0xdeadbeefdeadbeefull;
    atomic_fetch_add(&s->stats->destroyed, 1);
}

static snap_t *snap_new(uint64_t seq, stats_t *st)
{
    snap_t *s = weft_snap_alloc(sizeof(*s), snap_destroy);
    if (!s) return NULL;
    s->payload = malloc(PAYLOAD * sizeof(uint64_t));
    if (!s->payload) {
        weft_snap_release(s); /* never published: freed now */
        return NULL;
    }
    s->seq = seq;
    s->a = seq * 0x9e3779b97f4a7c15ull;
    s->b = ~s->a;
    for (int i = 0; i < PAYLOAD; i++) s->payload[i] = s->a;
    s->stats = st;
    atomic_fetch_add(&st->allocated, 1);
    return s;
}

static void test_alloc(void **state)
{
    (void)state;
    assert_null(weft_snap_alloc(SIZE_MAX, NULL)); /* size + header overflows */
    assert_null(weft_snap_alloc(SIZE_MAX - 8, NULL));
    unsigned char *p = weft_snap_alloc(100, NULL);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
    for (int i = 0; i < 100; i++) assert_int_equal(p[i], 0);
    weft_snap_release(p); /* never published: the creator's reference is the last */
    weft_snap_release(NULL);
    stats_t st = {0};
    snap_t *s = snap_new(1, &st);
    assert_non_null(s);
    weft_snap_release(s);
    assert_int_equal(atomic_load(&st.destroyed), 1); /* at once, on this thread */
    assert_int_equal(atomic_load(&st.bad), 0);
}

static void test_publish_get(void **state)
{
    (void)state;
    stats_t st = {0};
    weft_snap_thread_register();
    weft_snap_thread_register(); /* nests */
    weft_snap_thread_unregister();
    weft_snap_cell_t cell;
    weft_snap_cell_init(&cell);
    assert_false(weft_snap_read_ongoing());
    weft_snap_read_lock();
    assert_true(weft_snap_read_ongoing());
    assert_null(weft_snap_get(&cell));
    weft_snap_read_unlock();
    assert_false(weft_snap_read_ongoing());

    snap_t *s1 = snap_new(1, &st), *s2 = snap_new(2, &st);
    assert_non_null(s1);
    assert_non_null(s2);
    weft_snap_publish(&cell, s1);
    weft_snap_read_lock();
    snap_t *got = weft_snap_get(&cell);
    assert_ptr_equal(got, s1);
    assert_true(snap_ok(got));
    weft_snap_publish(&cell, s2); /* inside a read section: never waits */
    weft_snap_read_lock();        /* nested */
    assert_ptr_equal(weft_snap_get(&cell), s2);
    weft_snap_read_unlock();
    assert_true(snap_ok(got)); /* s1 is retired but this section still sees it */
    weft_snap_read_unlock();

    weft_snap_publish(&cell, NULL);
    weft_snap_read_lock();
    assert_null(weft_snap_get(&cell));
    weft_snap_read_unlock();
    assert_null(weft_snap_hold(&cell));

    weft_snap_cell_destroy(&cell); /* every retired object is freed on return */
    assert_int_equal(atomic_load(&st.destroyed), 2);
    assert_int_equal(atomic_load(&st.allocated), 2);

    /* a destroyed cell may be set up again; destroying it frees the current object */
    weft_snap_cell_init(&cell);
    for (uint64_t i = 3; i <= 5; i++) weft_snap_publish(&cell, snap_new(i, &st));
    weft_snap_read_lock();
    assert_int_equal(((snap_t *)weft_snap_get(&cell))->seq, 5);
    weft_snap_read_unlock();
    weft_snap_cell_destroy(&cell);
    assert_int_equal(atomic_load(&st.destroyed), 5);
    assert_int_equal(atomic_load(&st.allocated), 5);
    assert_int_equal(atomic_load(&st.bad), 0);
    weft_snap_thread_unregister();
}

static void release_on_thread(void *arg)
{
    weft_snap_release(arg); /* an unregistered thread */
}

static void test_hold_across_publish(void **state)
{
    (void)state;
    stats_t st_a = {0}, st_b = {0}, st_c = {0};
    weft_snap_thread_register();
    weft_snap_cell_t cell;
    weft_snap_cell_init(&cell);
    snap_t *a = snap_new(1, &st_a);
    assert_non_null(a);
    weft_snap_publish(&cell, a);

    /* weft_snap_hold outside a read section, and weft_snap_ref on an object got inside one */
    snap_t *h1 = weft_snap_hold(&cell);
    assert_ptr_equal(h1, a);
    weft_snap_read_lock();
    snap_t *h2 = weft_snap_ref(weft_snap_get(&cell));
    weft_snap_read_unlock();
    assert_ptr_equal(h2, a);

    weft_snap_publish(&cell, snap_new(2, &st_b)); /* a is retired... */
    weft_snap_cell_destroy(&cell);                /* ...and its grace period is over */
    assert_int_equal(atomic_load(&st_b.destroyed), 1);
    assert_int_equal(atomic_load(&st_a.destroyed), 0); /* held twice */
    assert_true(snap_ok(a));
    weft_snap_release(h2);
    assert_int_equal(atomic_load(&st_a.destroyed), 0);
    assert_true(snap_ok(a));
    uv_thread_t th; /* the last release, on another thread, frees it there */
    assert_int_equal(uv_thread_create(&th, release_on_thread, h1), 0);
    assert_int_equal(uv_thread_join(&th), 0);
    assert_int_equal(atomic_load(&st_a.destroyed), 1);

    /* the other order: the last hold goes before the grace period ends; the callback frees */
    weft_snap_cell_init(&cell);
    snap_t *c = snap_new(3, &st_c);
    assert_non_null(c);
    weft_snap_publish(&cell, c);
    snap_t *h3 = weft_snap_hold(&cell);
    weft_snap_publish(&cell, NULL);
    weft_snap_release(h3);
    weft_snap_cell_destroy(&cell);
    assert_int_equal(atomic_load(&st_c.destroyed), 1);
    assert_int_equal(atomic_load(&st_a.bad) + atomic_load(&st_b.bad) + atomic_load(&st_c.bad), 0);
    weft_snap_thread_unregister();
}

static void unregistered_publisher(void *arg)
{
    stats_t *st = arg;
    weft_snap_cell_t cell;
    weft_snap_cell_init(&cell);
    weft_snap_publish(&cell, snap_new(1, st));
    weft_snap_publish(&cell, snap_new(2, st));
    weft_snap_publish(&cell, NULL);
    weft_snap_publish(&cell, snap_new(3, st));
    weft_snap_release(snap_new(4, st)); /* never published */
    weft_snap_cell_destroy(&cell);
    if (atomic_load(&st->destroyed) != 4) atomic_fetch_add(&st->bad, 1);
}

static void test_unregistered_publisher(void **state)
{
    (void)state;
    stats_t st = {0};
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, unregistered_publisher, &st), 0);
    assert_int_equal(uv_thread_join(&th), 0);
    assert_int_equal(atomic_load(&st.allocated), 4);
    assert_int_equal(atomic_load(&st.destroyed), 4);
    assert_int_equal(atomic_load(&st.bad), 0);
}

enum { READERS = 3, SNAPSHOTS = 20000, HELD = 4 };
#define PUBLISH_NS 800000000ull /* the publishes are spread over this long */
#define STRESS_NS  1000000000ull

typedef struct {
    weft_snap_cell_t *cell;
    atomic_int *stop;
    unsigned long reads, holds, nulls, bad;
} reader_t;

static void reader(void *arg)
{
    reader_t *r = arg;
    snap_t *held[HELD] = {0};
    unsigned next = 0;
    uint64_t last = 0;
    weft_snap_thread_register();
    while (!atomic_load_explicit(r->stop, memory_order_relaxed)) {
        /* every 64th pass swaps one hold (the one dropped may be the last): by weft_snap_ref
         * on the object got, by weft_snap_hold inside the section, or outside any */
        int swap = (r->reads & 63) == 0, how = (int)((r->reads >> 6) % 3);
        weft_snap_read_lock();
        snap_t *s = weft_snap_get(r->cell);
        if (s) {
            if (!snap_ok(s) || s->seq < last) r->bad++; /* torn, freed, or going backwards */
            last = s->seq;
            if (swap && how < 2) {
                unsigned slot = next++ % HELD;
                weft_snap_release(held[slot]);
                held[slot] = how == 0 ? weft_snap_ref(s) : weft_snap_hold(r->cell);
                r->holds++;
            }
        } else {
            r->nulls++;
        }
        weft_snap_read_unlock();
        if (swap && how == 2) {
            unsigned slot = next++ % HELD;
            weft_snap_release(held[slot]);
            held[slot] = weft_snap_hold(r->cell);
            r->holds++;
        }
        if ((r->reads & 15) == 0) /* held objects stay valid outside read sections */
            for (int i = 0; i < HELD; i++)
                if (held[i] && !snap_ok(held[i])) r->bad++;
        r->reads++;
    }
    for (int i = 0; i < HELD; i++) {
        if (held[i] && !snap_ok(held[i])) r->bad++;
        weft_snap_release(held[i]);
    }
    weft_snap_thread_unregister();
}

static void sleep_until(uint64_t t)
{
    uint64_t now = uv_hrtime();
    if (now >= t) return;
    struct timespec ts = {(time_t)((t - now) / 1000000000u), (long)((t - now) % 1000000000u)};
    nanosleep(&ts, NULL);
}

static void test_stress(void **state)
{
    (void)state;
    stats_t st = {0};
    weft_snap_thread_register();
    weft_snap_cell_t cell;
    weft_snap_cell_init(&cell);
    atomic_int stop = 0;
    reader_t r[READERS];
    uv_thread_t th[READERS];
    for (int i = 0; i < READERS; i++) {
        r[i] = (reader_t){.cell = &cell, .stop = &stop};
        assert_int_equal(uv_thread_create(&th[i], reader, &r[i]), 0);
    }
    uint64_t t0 = uv_hrtime();
    for (uint64_t i = 1; i <= SNAPSHOTS; i++) {
        snap_t *s = snap_new(i, &st);
        assert_non_null(s);
        weft_snap_publish(&cell, s);
        if (i % 100 == 0) sleep_until(t0 + PUBLISH_NS * i / SNAPSHOTS);
    }
    sleep_until(t0 + STRESS_NS);
    atomic_store(&stop, 1);
    unsigned long reads = 0, holds = 0, bad = 0;
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(uv_thread_join(&th[i]), 0);
        reads += r[i].reads;
        holds += r[i].holds;
        bad += r[i].bad;
    }
    weft_snap_cell_destroy(&cell);
    assert_int_equal(bad, 0);
    assert_true(reads > 0 && holds > 0);
    assert_int_equal(atomic_load(&st.allocated), SNAPSHOTS);
    assert_int_equal(atomic_load(&st.destroyed), SNAPSHOTS); /* each exactly once */
    assert_int_equal(atomic_load(&st.bad), 0);
    print_message("[          ] %lu read sections, %lu holds by %d readers\n", reads, holds,
                  READERS);
    weft_snap_thread_unregister();
}

typedef struct {
    weft_snap_cell_t cell;
    stats_t first; /* the stats of the snapshot the workers read */
    atomic_int entered, replaced, done, bad;
} wtest_t;

static void on_worker_init(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_snap_thread_register(); /* already registered by workers.c: this nests */
}

static void on_worker_stop(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_snap_thread_unregister(); /* undoes on_worker_init's */
}

/* On a worker: reads the snapshot, and keeps the read section open while the main thread
 * replaces it. Were this thread not registered, the grace period would not wait for it and
 * the snapshot would be destroyed during the sleep. */
static void on_worker_read(uv_loop_t *loop, unsigned i, void *arg)
{
    wtest_t *t = arg;
    weft_snap_read_lock();
    snap_t *s = weft_snap_get(&t->cell);
    if (!s || s->seq != 1 || !snap_ok(s)) atomic_fetch_add(&t->bad, 1);
    atomic_fetch_add(&t->entered, 1);
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while (!atomic_load(&t->replaced) && uv_hrtime() < deadline) uv_sleep(1);
    uv_sleep(50); /* ample for a grace period that ignored this thread */
    if (!atomic_load(&t->replaced) || atomic_load(&t->first.destroyed) != 0 || !snap_ok(s))
        atomic_fetch_add(&t->bad, 1);
    weft_snap_read_unlock();
    snap_t *h = weft_snap_hold(&t->cell); /* the replacement */
    if (!h || h->seq != 2 || !snap_ok(h)) atomic_fetch_add(&t->bad, 1);
    weft_snap_release(h);
    atomic_fetch_add(&t->done, 1);
}

static void test_workers_read(void **state)
{
    (void)state;
    static wtest_t t;
    stats_t second = {0};
    weft_snap_thread_register();
    weft_snap_cell_init(&t.cell);
    weft_snap_publish(&t.cell, snap_new(1, &t.first));
    weft_workers_t *w;
    assert_int_equal(weft_workers_new(2, &w), 0);
    assert_int_equal(weft_workers_start(w, on_worker_init, NULL), 0);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(weft_workers_post(w, i, on_worker_read, &t), 0);
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while (atomic_load(&t.entered) < 2 && uv_hrtime() < deadline) uv_sleep(1);
    assert_int_equal(atomic_load(&t.entered), 2);
    weft_snap_publish(&t.cell, snap_new(2, &second)); /* retires the one both are reading */
    atomic_store(&t.replaced, 1);
    weft_workers_stop(w, on_worker_stop, NULL);
    weft_workers_join(w);
    weft_workers_free(w);
    assert_int_equal(atomic_load(&t.done), 2);
    assert_int_equal(atomic_load(&t.bad), 0);
    weft_snap_cell_destroy(&t.cell);
    assert_int_equal(atomic_load(&t.first.destroyed), 1);
    assert_int_equal(atomic_load(&second.destroyed), 1);
    assert_int_equal(atomic_load(&t.first.bad) + atomic_load(&second.bad), 0);
    weft_snap_thread_unregister();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_publish_get),
        cmocka_unit_test(test_hold_across_publish),
        cmocka_unit_test(test_unregistered_publisher),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_workers_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
