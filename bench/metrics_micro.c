/*
 * metrics_micro.c - the cost of the metrics hot path: weft_counter_inc and
 * weft_histogram_observe from a registered thread (its own shard: load + store), from an
 * unregistered one (shared slot 0: atomic read-modify-write), and from several threads at
 * once on the same child, registered (no shared cache line) and unregistered (contended).
 * Also the cost of looking an existing child up and of a scrape.
 *
 * Not part of the CMake build. Compile against a Release build of the module:
 *   cmake -S . -B build-metrics-rel -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang
 *   cmake --build build-metrics-rel -j2 --target weft_metrics weft_core
 *   clang -O2 -std=c11 -D_GNU_SOURCE -Iinclude bench/metrics_micro.c \
 *     build-metrics-rel/libweft_metrics.a build-metrics-rel/libweft_core.a \
 *     -luv -lpthread -lm -o /tmp/metrics_micro
 *   /tmp/metrics_micro
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/metrics.h"

#define N 50000000L

static weft_counter_t *counter;
static weft_histogram_t *hist;
static weft_metrics_family_t *fam;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run_counter(long n)
{
    double t = now();
    for (long i = 0; i < n; i++) weft_counter_inc(counter);
    return (now() - t) / (double)n * 1e9;
}

static double run_hist(long n)
{
    double t = now();
    /* latencies spread over the first buckets, as a fast server's would be */
    for (long i = 0; i < n; i++) weft_histogram_observe(hist, (double)(i & 1023) * 1e-5);
    return (now() - t) / (double)n * 1e9;
}

static double run_lookup(long n)
{
    const char *v[] = {"GET", "/orders/:id", "200"};
    double t = now();
    for (long i = 0; i < n; i++)
        if (!weft_metrics_counter_child(fam, v)) abort();
    return (now() - t) / (double)n * 1e9;
}

typedef struct {
    int reg;
    double ns_counter, ns_hist;
} job_t;

static void *worker(void *arg)
{
    job_t *j = arg;
    if (j->reg) weft_metrics_thread_register();
    j->ns_counter = run_counter(N / 4);
    j->ns_hist = run_hist(N / 4);
    return NULL;
}

static void threads(int nthreads, int reg)
{
    pthread_t t[16];
    job_t jobs[16];
    for (int i = 0; i < nthreads; i++) {
        jobs[i].reg = reg;
        pthread_create(&t[i], NULL, worker, &jobs[i]);
    }
    double c = 0, h = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        c += jobs[i].ns_counter;
        h += jobs[i].ns_hist;
    }
    printf("%d threads, %-12s counter_inc %6.2f ns/op   histogram_observe %6.2f ns/op\n",
           nthreads, reg ? "registered" : "unregistered", c / nthreads, h / nthreads);
}

int main(void)
{
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    const char *lbl[] = {"method", "route", "code"};
    weft_metrics_family_t *hf;
    if (!reg || weft_metrics_counter_new(reg, "http_requests_total", "R.", lbl, 3, &fam) ||
        weft_metrics_histogram_new(reg, "http_request_duration_seconds", "D.", lbl, 3, NULL, 0,
                                   &hf))
        return 1;
    const char *v[] = {"GET", "/orders/:id", "200"};
    counter = weft_metrics_counter_child(fam, v);
    hist = weft_metrics_histogram_child(hf, v);
    /* some neighbours, as a real service has */
    char route[32];
    const char *w[] = {"GET", route, "200"};
    for (int i = 0; i < 200; i++) {
        snprintf(route, sizeof(route), "/r%d", i);
        weft_counter_inc(weft_metrics_counter_child(fam, w));
        weft_histogram_observe(weft_metrics_histogram_child(hf, w), 0.001);
    }

    printf("1 thread,  unregistered counter_inc %6.2f ns/op   histogram_observe %6.2f ns/op\n",
           run_counter(N), run_hist(N));
    weft_metrics_thread_register();
    printf("1 thread,  registered   counter_inc %6.2f ns/op   histogram_observe %6.2f ns/op\n",
           run_counter(N), run_hist(N));
    threads(2, 1);
    threads(2, 0);
    threads(4, 1);
    printf("child lookup (existing, 201 children): %.1f ns\n", run_lookup(N / 20));

    double t = now();
    char *out;
    size_t len;
    int scrapes = 200;
    for (int i = 0; i < scrapes; i++) {
        if (weft_metrics_write(reg, &out, &len)) return 1;
        free(out);
    }
    printf("scrape (402 series, %zu bytes): %.1f us\n", len, (now() - t) / scrapes * 1e6);
    weft_metrics_registry_free(reg);
    return 0;
}
