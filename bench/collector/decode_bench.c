/*
 * bench/collector/decode_bench.c - how fast the span decoders read: OTLP protobuf and
 * OTLP/JSON requests of 100 realistic spans (ten HTTP attributes each, an event on every
 * third, an error status on every fifth: tests/unit/collector/otlp_req.h, written by
 * weft's own exporter encoders), decoded over and over into an arena reset after each.
 *
 *   decode_bench [--seconds 2] [--spans 100]
 *
 * Prints, for each encoding, the request's size, bytes per span, spans and MB per second
 * of the decoding thread's CPU time (one thread; decoding alone), and for JSON also the
 * pull reader's bare syntax check (weft_jr_skip over the whole body) as the floor under
 * the decoder. Built on demand, not by `make test`:
 *
 *   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build --target decode_bench && build/bench/decode_bench
 *
 * Measured 2026-12-06 on the shared 2-core build machine (gcc, Release, LTO; load average
 * 3 to 4 from other work): protobuf 1.22M to 1.33M spans/s (440 B/span, ~560 MB/s), JSON
 * 0.51M to 0.56M spans/s (990 B/span, ~550 MB/s), the reader's bare syntax check 1.1M
 * spans/s (1.1 GB/s); the same with 1,000-span requests.
 *
 * Each figure is the best of five runs of seconds/5 (the machine is shared: the best run
 * is the least disturbed one). A decode that fails, or a batch that is not the whole
 * request, ends the run with status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/decode.h"
#include "core/json_read.h"
#include "otlp_req.h"

/* The thread's CPU time: on a shared machine, time spent descheduled is not the decoder's. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef int (*decode_fn)(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                         size_t errlen);

static int dec_pb(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                  size_t errlen)
{
    return col_otlp_pb_decode((const uint8_t *)p, n, a, b, err, errlen);
}

static int dec_json(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                    size_t errlen)
{
    return col_otlp_json_decode(p, n, a, b, err, errlen);
}

static int skip_json(const char *p, size_t n, weft_arena_t *a, col_batch_t *b, char *err,
                     size_t errlen)
{
    weft_jr_t r;
    weft_jr_init(&r, p, n, a);
    weft_jr_skip(&r);
    weft_jr_end(&r);
    if (r.err) {
        snprintf(err, errlen, "offset %zu: %s", r.err_off, r.err);
        return -1;
    }
    b->n = 0;
    return 0;
}

/* Spans per second of fn over body (nspans spans), best of 5 runs. */
static double run(const char *what, decode_fn fn, const weft_buf_t *body, size_t nspans,
                  double seconds, bool whole)
{
    weft_arena_t a;
    weft_arena_init(&a, 256 * 1024, 64 << 20);
    double best = 0;
    for (int round = 0; round < 5; round++) {
        size_t iters = 0;
        double t0 = now(), t = t0;
        while (t - t0 < seconds / 5) {
            for (int k = 0; k < 50; k++) {
                col_batch_t b;
                char err[256];
                if (fn(body->p, body->len, &a, &b, err, sizeof(err)) != 0 ||
                    (whole && (b.n != nspans || b.rejected))) {
                    fprintf(stderr, "%s: decode failed: %s\n", what, err);
                    exit(1);
                }
                weft_arena_reset(&a);
            }
            iters += 50;
            t = now();
        }
        double rate = (double)iters * (double)nspans / (t - t0);
        if (rate > best) best = rate;
    }
    weft_arena_free(&a);
    printf("%-18s %7zu bytes  %4zu B/span  %10.0f spans/s  %7.1f MB/s\n", what, body->len,
           body->len / nspans, best, best * (double)body->len / (double)nspans / 1e6);
    return best;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    size_t nspans = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--spans") == 0 && i + 1 < argc) {
            nspans = (size_t)atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--seconds 2] [--spans 100]\n", argv[0]);
            return 2;
        }
    }
    if (seconds <= 0 || nspans == 0 || nspans > COL_MAX_BATCH_SPANS) {
        fprintf(stderr, "--seconds must be > 0, --spans 1..%u\n", COL_MAX_BATCH_SPANS);
        return 2;
    }
    weft_buf_t pb, js;
    weft_buf_init(&pb, 0);
    weft_buf_init(&js, 0);
    req_build(0, nspans, &pb, &js);
    if (pb.failed || js.failed) return 1;
    run("otlp protobuf", dec_pb, &pb, nspans, seconds, true);
    run("otlp json", dec_json, &js, nspans, seconds, true);
    run("json syntax only", skip_json, &js, nspans, seconds, false);
    weft_buf_free(&pb);
    weft_buf_free(&js);
    return 0;
}
