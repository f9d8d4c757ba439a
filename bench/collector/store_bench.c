/*
 * store_bench.c - the trace store (src/collector/store*.c) under a realistic load: N spans
 * appended 100 per append (10 traces of 10 spans over 20 services, ~10 attributes each:
 * http.method, http.route, http.status_code, net.peer.name, ...; resources with 6
 * attributes), sync on unless told. Prints:
 *   ingest     spans/s through col_store_append until every done has run, and the CPU the
 *              whole process spent per span (appending thread + writer): the "one core"
 *              budget of the issue is that CPU time
 *   size       bytes per span on disk and in memory (the indexes)
 *   open       how long reopening the store takes (recovery reads every block)
 *   trace      trace-by-id latency p50/p99 over 2000 random traces (cold and warm cache)
 *   search     service + min duration, limit 20: p50/p99 over 500 queries
 *
 * Build: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target
 * store_bench; run: build/bench/store_bench [spans (1000000)] [dir (/tmp)] [sync 1|0].
 * Durability is the disk's: run it on the file system the store will live on.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "collector/store.h"
#include "gen.h"
#include "weft/common.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This thread's CPU time: a query's cost without the time the scheduler took it away (the
 * machine may be shared; wall-clock percentiles then measure the neighbours). */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t done_calls, done_errors;

static void on_done(int status, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    done_calls++;
    if (status) done_errors++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void pct(const char *what, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
    printf("%-22s p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms\n", what, v[n / 2] * 1e3,
           v[n * 99 / 100] * 1e3, v[n - 1] * 1e3);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    const char *parent = argc > 2 ? argv[2] : "/tmp";
    bool sync = argc > 3 ? atoi(argv[3]) != 0 : true;
    n = (n + GEN_PER_APPEND - 1) / GEN_PER_APPEND * GEN_PER_APPEND;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/weft-store-bench-%d", parent, (int)getpid());
    gen_setup();
    col_store_conf_t c;
    col_store_conf_init(&c);
    c.dir = dir;
    c.sync = sync;
    c.max_bytes = 64ull << 30; /* keep everything: retention is not measured here */
    col_store_t *s;
    char err[256];
    if (col_store_open(&c, &s, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    gen_batch_t *b = malloc(sizeof *b);
    uint64_t ntraces = n / GEN_PER_TRACE, appends = n / GEN_PER_APPEND;
    /* the spans start over the last hour, in order of arrival */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t step = 3600ull * 1000000000ull / (appends ? appends : 1);
    /* what generating the spans costs alone, to be taken from the CPU per span */
    double g0 = cpu_s();
    for (uint64_t i = 0; i < appends; i++)
        gen_fill(b, i, wall - 3600ull * 1000000000ull + i * step);
    double gen = cpu_s() - g0;
    gen_reseed();
    double t0 = now_s(), c0 = cpu_s();
    uint64_t refused = 0;
    for (uint64_t i = 0; i < appends; i++) {
        gen_fill(b, i, wall - 3600ull * 1000000000ull + i * step);
        int rc;
        while ((rc = col_store_append(s, b->spans, GEN_PER_APPEND, on_done, NULL)) == WEFT_ELIMIT) {
            refused++;
            pthread_mutex_lock(&mu);
            uint64_t seen = done_calls;
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += 1;
            while (done_calls == seen) {
                if (pthread_cond_timedwait(&cv, &mu, &dl) != 0) break;
            }
            pthread_mutex_unlock(&mu);
        }
        if (rc != 0) {
            fprintf(stderr, "append: %d\n", rc);
            return 1;
        }
    }
    pthread_mutex_lock(&mu);
    while (done_calls < appends) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    double t1 = now_s(), c1 = cpu_s();
    col_store_stats_t st;
    col_store_stats(s, &st);
    printf("spans %" PRIu64 " (%" PRIu64 " traces), sync %s, %" PRIu64
           " appends refused (queue full) and retried, %" PRIu64 " write errors\n",
           n, ntraces, sync ? "on" : "off", refused, done_errors);
    double store_cpu = c1 - c0 - gen;
    printf("ingest                 %.0f spans/s wall; CPU of the store %.2f us/span (%.0f spans/s "
           "per core; generating them: %.2f us/span more)\n",
           (double)n / (t1 - t0), store_cpu * 1e6 / (double)n, (double)n / store_cpu,
           gen * 1e6 / (double)n);
    printf("size                   %.1f bytes/span on disk, %.1f bytes/span in memory (%.1f MiB)\n",
           (double)st.disk_bytes / (double)n, (double)st.memory_bytes / (double)n,
           (double)st.memory_bytes / 1048576.0);

    col_store_close(s);
    double o0 = now_s(), oc0 = cpu_s();
    if (col_store_open(&c, &s, err, sizeof err) != 0) {
        fprintf(stderr, "reopen: %s\n", err);
        return 1;
    }
    printf("open                   %.2f s, CPU %.2f s (%" PRIu64 " spans)\n", now_s() - o0,
           cpu_s() - oc0, n);

    weft_arena_t a;
    weft_arena_init(&a, 1 << 16, 256u << 20);
    enum { NT = 2000, NS = 500 };
    double *lat = malloc(NT * sizeof *lat), *cpu = malloc(NT * sizeof *cpu);
    for (int pass = 0; pass < 2; pass++) {
        uint64_t r = 12345;
        size_t missing = 0;
        for (int i = 0; i < NT; i++) {
            r = gen_mix(r);
            uint8_t id[16];
            gen_trace_id(r % ntraces, id);
            col_span_t *sp;
            size_t k;
            double q0 = now_s(), u0 = thread_cpu_s();
            if (col_store_trace(s, id, &a, &sp, &k) != 0) return 1;
            lat[i] = now_s() - q0;
            cpu[i] = thread_cpu_s() - u0;
            if (k != GEN_PER_TRACE) missing++;
            weft_arena_reset(&a);
        }
        pct(pass ? "trace by id (again)" : "trace by id", lat, NT);
        pct("  its CPU time", cpu, NT);
        if (missing) printf("  %zu traces not whole!\n", missing);
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t short_answers = 0;
        for (int i = 0; i < NS; i++) {
            col_query_t q = {0};
            q.service = gen_str(gen_svc_names[gen_rnd() % GEN_NSVC]);
            q.min_duration_ns = pass ? 500000000ull : 50000000ull;
            q.limit = 20;
            uint8_t ids[20][16];
            size_t k;
            double q0 = now_s(), u0 = thread_cpu_s();
            if (col_store_search(s, &q, ids, 20, &k) != 0) return 1;
            lat[i] = now_s() - q0;
            cpu[i] = thread_cpu_s() - u0;
            if (k < 20) short_answers++;
        }
        pct(pass ? "search svc+dur>500ms" : "search svc+dur>50ms", lat, NS);
        pct("  its CPU time", cpu, NS);
        if (short_answers) printf("  %zu answers under 20\n", short_answers);
    }
    /* worst cases: nothing matches, so nothing stops the walk early */
    {
        enum { NW = 20 };
        for (int i = 0; i < NW; i++) {
            col_query_t q = {0};
            q.service = gen_str(gen_svc_names[gen_rnd() % GEN_NSVC]);
            q.min_duration_ns = 3000000000ull; /* longer than any: the summaries say so */
            uint8_t ids[20][16];
            size_t k;
            double q0 = now_s();
            if (col_store_search(s, &q, ids, 20, &k) != 0 || k != 0) return 1;
            lat[i] = now_s() - q0;
        }
        pct("search none (dur>3s)", lat, NW);
        for (int i = 0; i < NW; i++) {
            col_query_t q = {.ntags = 1};
            q.service = gen_str(gen_svc_names[gen_rnd() % GEN_NSVC]);
            q.tags[0].key = COL_STR("http.status_code");
            q.tags[0].value = COL_STR("599"); /* no span has it: every block of the service read */
            uint8_t ids[20][16];
            size_t k;
            double q0 = now_s();
            if (col_store_search(s, &q, ids, 20, &k) != 0 || k != 0) return 1;
            lat[i] = now_s() - q0;
        }
        pct("search none (tag)", lat, NW);
    }
    weft_arena_free(&a);
    free(lat);
    free(cpu);
    free(b);
    col_store_close(s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
