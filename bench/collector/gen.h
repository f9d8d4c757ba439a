/*
 * gen.h - the spans the trace store benchmarks store (store_bench.c, sqlite_bench.c): both
 * programs append exactly the same spans, 100 per append, so that their numbers compare.
 *
 * 20 services (resources of 6 attributes), 8 routes; append i holds 100 spans of one
 * service, each of another trace; a trace's 10 spans arrive over 10 appends from 10
 * services, as an SDK's exports would bring them. ~10 attributes per span; 2% are errors
 * with an event. Durations mostly 0.1-5 ms, a tail to 2 s.
 */
#ifndef WEFT_BENCH_COLLECTOR_GEN_H
#define WEFT_BENCH_COLLECTOR_GEN_H

#include <stdint.h>

#include "collector/span.h"

#define GEN_NSVC       20
#define GEN_PER_APPEND 100
#define GEN_PER_TRACE  10

typedef struct gen_batch_s {
    col_span_t spans[GEN_PER_APPEND];
    col_attr_t attrs[GEN_PER_APPEND][10];
    char urls[GEN_PER_APPEND][64];
    char peers[GEN_PER_APPEND][32];
    col_event_t ev[GEN_PER_APPEND];
} gen_batch_t;

/* The service names, "service-00".."service-19" (gen_setup fills them). */
extern char gen_svc_names[GEN_NSVC][32];

/* Fills the services' names and resources; call once first. */
void gen_setup(void);
/* Restarts the random sequence (fill and gen_rnd draw from it): the same calls then give
 * the same spans again. */
void gen_reseed(void);
uint64_t gen_rnd(void);
/* A 64-bit mix (splitmix64's finaliser): ids from numbers. */
uint64_t gen_mix(uint64_t x);
/* The id of trace number t. */
void gen_trace_id(uint64_t t, uint8_t out[16]);
/* A NUL-terminated string as a view. */
col_str_t gen_str(const char *z);
/* Fills b with append number i, its spans starting at start0 (Unix ns) and a little after. */
void gen_fill(gen_batch_t *b, uint64_t i, uint64_t start0);

#endif
