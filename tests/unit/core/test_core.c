/*
 * test_core.c - arena, logfmt quoting, error names, and the worker-thread group (with its
 * busy polling: bounded by the share of working time, none when idle).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/errbuf.h"
#include "weft/log.h"
#include "weft/workers.h"

static void test_arena(void **state)
{
    weft_arena_t a;
    weft_arena_init(&a, 1024, 8192);
    char *p = weft_arena_alloc(&a, 10);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    char *q = weft_arena_alloc(&a, 10);
    assert_ptr_equal(q, p + 16);           /* bump, 16-aligned */
    char *big = weft_arena_alloc(&a, 600); /* > block/4: a block of its own */
    assert_non_null(big);
    memset(big, 1, 600);
    char *s = weft_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_null(weft_arena_alloc(&a, 9000)); /* over the limit */
    weft_arena_reset(&a);
    /* the first block is kept although the outsized one was linked behind it */
    assert_non_null(a.head);
    assert_int_equal(a.end - a.cur, 1024);
    char *again = weft_arena_alloc(&a, 10);
    assert_ptr_equal(again, p); /* the first block is reused */
    for (int i = 0; i < 400; i++) assert_non_null(weft_arena_alloc(&a, 16));
    assert_null(weft_arena_alloc(&a, 16 * 200));
    weft_arena_reset(&a);
    assert_int_equal(a.used, 0);
    weft_arena_free(&a);
    /* an arena whose first allocation is outsized keeps nothing after reset */
    weft_arena_init(&a, 256, 1 << 20);
    assert_non_null(weft_arena_alloc(&a, 10000));
    weft_arena_reset(&a);
    assert_null(a.head);
    weft_arena_free(&a);
}

static void test_log_quote_and_levels(void **state)
{
    char out[64];
    assert_string_equal(weft_log_quote(out, sizeof(out), "plain", 5), "plain");
    assert_string_equal(weft_log_quote(out, sizeof(out), "a b", 3), "\"a b\"");
    assert_string_equal(weft_log_quote(out, sizeof(out), "q\"\\\n\x01", 5),
                        "\"q\\\"\\\\\\n\\x01\"");
    assert_string_equal(weft_log_quote(out, sizeof(out), "", 0), "\"\"");
    assert_string_equal(weft_log_quote(out, sizeof(out), "k=v", 3), "\"k=v\"");
    char tiny[6];
    weft_log_quote(tiny, sizeof(tiny), "a long value with spaces", 23);
    assert_true(strlen(tiny) < sizeof(tiny));
    weft_log_level_t l;
    assert_int_equal(weft_log_level_parse("warn", &l), 0);
    assert_int_equal(l, WEFT_LOG_WARN);
    assert_int_equal(weft_log_level_parse("loud", &l), WEFT_EINVAL);
    assert_string_equal(weft_err_name(WEFT_EPARSE), "EPARSE");
    assert_string_equal(weft_err_name(-ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(weft_strerror(WEFT_ELIMIT), "limit reached");
    assert_string_equal(weft_strerror(-ENOENT), "No such file or directory");
    assert_true(weft_now_ns() > 0 && weft_wall_ns() > 1600000000000000000ull);
}

/* What weft_log and weft_log_always write to stderr while f runs (up to cap - 1 bytes). */
static void capture_stderr(void (*f)(void), char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    f();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    close(fds[0]);
}

static void log_some(void)
{
    weft_log_set_level(WEFT_LOG_WARN);
    weft_log(WEFT_LOG_INFO, "test", "hidden", "k=%d", 1);
    weft_log_always("access", "request", "path=%s status=%d", "/x", 200);
    weft_log(WEFT_LOG_WARN, "test", "shown", NULL);
    weft_log_set_level(WEFT_LOG_INFO);
}

/* weft_log obeys the level; weft_log_always writes an info line whatever it is. */
static void test_log_always(void **state)
{
    char out[1024];
    capture_stderr(log_some, out, sizeof(out));
    assert_null(strstr(out, "hidden"));
    const char *a = strstr(out, " level=info comp=access msg=request path=/x status=200\n");
    const char *w = strstr(out, " level=warn comp=test msg=shown\n");
    assert_non_null(a);
    assert_non_null(w);
    assert_true(a < w);
    assert_int_equal(strncmp(out, "ts=", 3), 0);
}

static atomic_int inits, posts, stops;

static void on_init(uv_loop_t *loop, unsigned i, void *arg)
{
    atomic_fetch_add(&inits, 1);
}
static void on_post(uv_loop_t *loop, unsigned i, void *arg)
{
    assert_int_equal(i, (uintptr_t)arg);
    atomic_fetch_add(&posts, 1);
}
static void on_stop(uv_loop_t *loop, unsigned i, void *arg)
{
    atomic_fetch_add(&stops, 1);
}

static atomic_int cross_posts, cross_fails;
static weft_workers_t *cross_w;

static void on_cross(uv_loop_t *loop, unsigned i, void *arg)
{
    atomic_fetch_add(&cross_posts, 1);
}
/* Each worker, while starting, posts to every worker: to those whose threads may not
 * exist yet too. */
static void on_init_cross(uv_loop_t *loop, unsigned i, void *arg)
{
    for (unsigned j = 0; j < weft_workers_count(cross_w); j++)
        if (weft_workers_post(cross_w, j, on_cross, NULL) != 0) atomic_fetch_add(&cross_fails, 1);
}

/* A worker that is serving may post to one still starting: the post is queued, not lost. */
static void test_workers_post_while_starting(void **state)
{
    assert_int_equal(weft_workers_new(4, &cross_w), 0);
    assert_int_equal(weft_workers_start(cross_w, on_init_cross, NULL), 0);
    weft_workers_stop(cross_w, NULL, NULL); /* after the posts, in each worker's queue */
    weft_workers_join(cross_w);
    assert_int_equal(atomic_load(&cross_fails), 0);
    assert_int_equal(atomic_load(&cross_posts), 16);
    weft_workers_free(cross_w);
}

static void test_workers(void **state)
{
    weft_workers_t *w;
    assert_int_equal(weft_workers_new(WEFT_WORKERS_MAX + 1, &w), WEFT_EINVAL);
    assert_int_equal(weft_workers_new(3, &w), 0);
    assert_int_equal(weft_workers_count(w), 3);
    assert_int_equal(weft_workers_start(w, on_init, NULL), 0);
    assert_int_equal(atomic_load(&inits), 3); /* start returns after every init */
    for (uintptr_t i = 0; i < 3; i++)
        assert_int_equal(weft_workers_post(w, i, on_post, (void *)i), 0);
    assert_int_equal(weft_workers_post(w, 3, on_post, NULL), WEFT_EINVAL);
    weft_workers_stop(w, on_stop, NULL);
    weft_workers_stop(w, on_stop, NULL); /* twice: nothing more */
    weft_workers_join(w);
    assert_int_equal(atomic_load(&posts), 3);
    assert_int_equal(atomic_load(&stops), 3);
    assert_int_equal(weft_workers_post(w, 0, on_post, NULL), WEFT_ECLOSED);
    weft_workers_free(w);
    /* 0 means one per CPU */
    assert_int_equal(weft_workers_new(0, &w), 0);
    assert_true(weft_workers_count(w) >= 1);
    weft_workers_free(w);
}

/* weft_workers_stop_held: a stopping worker still takes posts (an answer to a request its
 * shutdown waits on) until its own thread releases it, here from a timer 50 ms after its
 * stop function ran; after the release, posts are refused. */
static weft_workers_t *held_w;
static uv_timer_t held_timers[2];
static atomic_int held_posts, held_released;

static void on_held_timer(uv_timer_t *t)
{
    unsigned i = (unsigned)(t - held_timers);
    atomic_fetch_add(&held_released, 1);
    weft_workers_release(held_w, i);
    weft_workers_release(held_w, i); /* twice: nothing more */
    uv_close((uv_handle_t *)t, NULL);
}
static void on_held_stop(uv_loop_t *loop, unsigned i, void *arg)
{
    uv_timer_init(loop, &held_timers[i]);
    uv_timer_start(&held_timers[i], on_held_timer, 50, 0);
}
static void on_held_post(uv_loop_t *loop, unsigned i, void *arg)
{
    assert_int_equal(atomic_load(&held_released), 0); /* it ran before the release */
    atomic_fetch_add(&held_posts, 1);
}

static void test_workers_held(void **state)
{
    assert_int_equal(weft_workers_new(2, &held_w), 0);
    assert_int_equal(weft_workers_start(held_w, NULL, NULL), 0);
    weft_workers_stop_held(held_w, on_held_stop, NULL);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(weft_workers_post(held_w, i, on_held_post, NULL), 0);
    weft_workers_join(held_w);
    assert_int_equal(atomic_load(&held_posts), 2);
    assert_int_equal(atomic_load(&held_released), 2);
    assert_int_equal(weft_workers_post(held_w, 0, on_held_post, NULL), WEFT_ECLOSED);
    weft_workers_free(held_w);
}

/* Busy polling. Another thread wakes the worker every 2 ms (uv_async_send at absolute
 * times, so the period does not depend on how the worker sleeps); each wake-up works
 * (busy-waits) for a set time. Wake-ups 25 to 225 are measured with the thread's CPU clock
 * (CPU / wall time). At 20% busy the worker is below the 75% threshold and must not spin,
 * even with share 100. At 80% busy it spins: share 10 may add at most 10% of the working
 * time, share 100 fills the gaps. An idle worker must not spin at all. The worker counts
 * only the CPU it got as work, so a run in which another process took its CPU cannot show
 * spinning; such runs are repeated (spin_busy_run). */
#define SPIN_PERIOD_NS 2000000
typedef struct {
    uv_async_t a;
    uint64_t work_ns;
    int ticks;
    uint64_t cpu0, wall0, work;
    double ratio, busy; /* thread CPU / wall time; of it, in the callbacks */
    atomic_int done;
    uint64_t idle_cpu;
} spin_probe_t;

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_tick(uv_async_t *a)
{
    spin_probe_t *p = a->data;
    if (atomic_load(&p->done)) return;
    uint64_t t0 = uv_hrtime(), c0 = thread_cpu_ns();
    while (uv_hrtime() - t0 < p->work_ns) {
    }
    if (p->ticks >= 25) p->work += thread_cpu_ns() - c0; /* ticks 26..225 */
    if (++p->ticks == 25) {
        p->cpu0 = thread_cpu_ns();
        p->wall0 = uv_hrtime();
    } else if (p->ticks == 225) {
        double wall = (double)(uv_hrtime() - p->wall0);
        p->ratio = (double)(thread_cpu_ns() - p->cpu0) / wall;
        p->busy = (double)p->work / wall;
        atomic_store(&p->done, 1);
    }
}

static void spin_init(uv_loop_t *loop, unsigned i, void *arg)
{
    spin_probe_t *p = arg;
    uv_async_init(loop, &p->a, on_tick);
    p->a.data = p;
}

static void spin_close(uv_loop_t *loop, unsigned i, void *arg)
{
    uv_close((uv_handle_t *)&((spin_probe_t *)arg)->a, NULL);
}

static void idle_start(uv_loop_t *loop, unsigned i, void *arg)
{
    ((spin_probe_t *)arg)->idle_cpu = thread_cpu_ns();
}

static void idle_end(uv_loop_t *loop, unsigned i, void *arg)
{
    spin_probe_t *p = arg;
    p->idle_cpu = thread_cpu_ns() - p->idle_cpu;
}

/* Runs the probe; returns the CPU spent outside the callbacks, as a share of wall time
 * (the spinning, plus a little loop overhead), and in *busy the callbacks' share (their
 * CPU time over the wall time). */
static double spin_run(uint64_t work_us, unsigned share, double *busy, uint64_t *idle)
{
    spin_probe_t p = {.work_ns = work_us * 1000};
    weft_workers_t *w;
    assert_int_equal(weft_workers_new(1, &w), 0);
    weft_workers_set_busy_poll(w, 1000, share);
    assert_int_equal(weft_workers_start(w, spin_init, &p), 0);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    /* 225 wake-ups needed (~450 ms); a send that finds the worker still busy with the last
     * one coalesces with it, and on a loaded machine many do: up to 2,000 sends (4 s) bound
     * the wait without making the number of sends part of what is tested */
    for (int i = 0; i < 2000 && !atomic_load(&p.done); i++) {
        next.tv_nsec += SPIN_PERIOD_NS;
        if (next.tv_nsec >= 1000000000) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        uv_async_send(&p.a);
    }
    assert_true(atomic_load(&p.done));
    assert_int_equal(weft_workers_post(w, 0, spin_close, &p), 0);
    /* idle: nothing but the workers' own async handle is left on the loop */
    assert_int_equal(weft_workers_post(w, 0, idle_start, &p), 0);
    usleep(200000); /* the idle time measured: the sleep is what is tested */
    assert_int_equal(weft_workers_post(w, 0, idle_end, &p), 0);
    weft_workers_stop(w, NULL, NULL); /* posts run in order: idle_end has run once joined */
    weft_workers_join(w);
    weft_workers_free(w);
    *idle = p.idle_cpu;
    *busy = p.busy;
    return p.ratio - p.busy;
}

/* spin_run at 80% busy, repeated (up to 5 runs) until the worker got the CPU for at least
 * 78% of the wall time, the least at which it must spin. Returns 0 when no run got it. */
static int spin_busy_run(unsigned share, double *spun, double *busy)
{
    uint64_t idle;
    for (int i = 0; i < 5; i++) {
        *spun = spin_run(SPIN_PERIOD_NS / 1250, share, busy, &idle);
        assert_true(idle < 20000000);
        if (*busy >= 0.78) return 1;
        print_message("busy polling: the worker got %.0f%% of the CPU, again\n", 100 * *busy);
    }
    return 0;
}

static void test_workers_busy_poll(void **state)
{
    uint64_t idle;
    double b_low, b_tenth = 0, b_full = 0, tenth = 0, full = 0;
    double low = spin_run(SPIN_PERIOD_NS / 5000, 100, &b_low, &idle);
    assert_true(idle < 20000000); /* 200 ms idle after it: under 20 ms of CPU */
    print_message("busy polling, CPU outside the work / wall time: %.3f at %.0f%% busy "
                  "(share 100)\n",
                  low, 100 * b_low);
    assert_true(b_low < 0.5);
    assert_true(low < 0.04); /* below the threshold: no spinning */
    if (!spin_busy_run(10, &tenth, &b_tenth) || !spin_busy_run(100, &full, &b_full)) {
        skip(); /* the machine gave the worker too little CPU to show spinning */
    }
    print_message("busy polling: %.3f at %.0f%% busy (share 10), %.3f at %.0f%% (share 100)\n",
                  tenth, 100 * b_tenth, full, 100 * b_full);
    assert_true(tenth > 0.04); /* 10% of the working time: about 0.08 of the wall time */
    assert_true(tenth < 0.11);
    assert_true(full > 0.12); /* it fills the gaps: about 0.2 */
}

/* weft__errf: formatted, cut to fit, one line whatever the input held, code returned. */
static void test_errf(void **state)
{
    (void)state;
    char err[16];
    assert_int_equal(weft__errf(err, sizeof(err), -7, "x: %d", 42), -7);
    assert_string_equal(err, "x: 42");
    assert_int_equal(weft__errf(err, sizeof(err), 0, "got \"%s\"",
                                "a\nb\r\x7f\x01"
                                "c"),
                     0);
    assert_string_equal(err, "got \"a?b???c\"");
    weft__errf(err, 8, 0, "%s", "0123456789");
    assert_string_equal(err, "0123456");
    assert_int_equal(weft__errf(NULL, 0, 3, "%s", "nothing written"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_log_quote_and_levels),
        cmocka_unit_test(test_log_always),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_workers_post_while_starting),
        cmocka_unit_test(test_workers_held),
        cmocka_unit_test(test_errf),
        cmocka_unit_test(test_workers_busy_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
