/*
 * each.h - reading a family's children from inside weft (internal): what the gateway's
 * history samples every second without a scrape's text (see src/gateway/history_sample.c).
 */
#ifndef WEFT_METRICS_EACH_H
#define WEFT_METRICS_EACH_H

#include <stddef.h>
#include <stdint.h>

#include "weft/metrics.h"

/* Calls fn for every child fam has now (labelled families only; the children made while
 * this runs may be left out), with its label values, its value (a counter's or gauge's; a
 * histogram's sum) and, for a histogram, its count per bucket (non-cumulative, nbounds + 1
 * of them, the last +Inf; NULL otherwise). Sums the shards as a scrape does: no lock, any
 * thread. NULL fam or a callback family: nothing. */
void weft__metrics_each(weft_metrics_family_t *fam,
                        void (*fn)(const char *const *values, double value,
                                   const uint64_t *buckets, void *arg),
                        void *arg);

/* A histogram family's upper bounds (seconds for the latency families), *bounds set; their
 * number, 0 for any other family. */
size_t weft__metrics_bounds(const weft_metrics_family_t *fam, const double **bounds);

#endif
