/*
 * metrics_int.h - the metrics module's shared internals: registry, family and child layout
 * (registry.c owns them; expose.c reads them during a scrape).
 */
#ifndef WEFT_METRICS_INT_H
#define WEFT_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "weft/metrics.h"

typedef enum { WEFT__COUNTER, WEFT__GAUGE, WEFT__HISTOGRAM } weft__mtype_t;

/* Chains in a labelled family's child table (fixed; at the default limit, about ten
 * children per chain). */
#define WEFT__CHILD_BUCKETS 1024

/*
 * A histogram bucket's latest exemplar in one shard, behind a sequence lock: seq is even
 * when the fields are stable, odd while a writer is storing them, 0 when nothing was ever
 * stored. Every field is an atomic (relaxed), so a reader racing a writer reads a torn
 * mix, never undefined behaviour, and throws it away because seq changed.
 */
typedef struct weft__exemplar_s {
    _Atomic uint32_t seq;
    _Atomic uint64_t trace_hi, trace_lo; /* the trace id's bytes 0-7 and 8-15, big-endian */
    _Atomic uint64_t span;               /* the span id, big-endian; 0: none */
    _Atomic double value;                /* the observation */
    _Atomic uint64_t ts_ns;              /* when, Unix ns */
} weft__exemplar_t;

/* One bucket's exemplar as a scrape read it. */
typedef struct weft__exemplar_read_s {
    uint8_t trace_id[16], span_id[8];
    bool has_span;
    double value;
    uint64_t ts_ns;
} weft__exemplar_read_t;

/*
 * One thread's shard of one child, on its own cache line(s). Written by the slot's owner
 * (relaxed load + store) or, for slot 0, by anyone (atomic read-modify-write).
 * Counters and gauges use value; histograms use value as the sum and buckets[i] as the
 * count of observations in bucket i (non-cumulative; the last one is +Inf), and ex, once
 * the first exemplar lands in this shard, as nbounds + 1 exemplars (the plain observe
 * never reads it).
 */
typedef struct weft__cell_s {
    _Alignas(64) _Atomic double value;
    _Atomic(weft__exemplar_t *) ex;
    _Atomic uint64_t buckets[];
} weft__cell_t;

struct weft_metric_child_s {
    _Atomic(weft__cell_t *) cells[WEFT_METRICS_MAX_THREADS]; /* allocated on first touch */
    _Atomic double set;                                      /* gauges: base of the adds */
    weft_metrics_family_t *fam;
    struct weft_metric_child_s *hnext; /* table chain; fixed before publication */
    struct weft_metric_child_s *next;  /* all children, newest first; fixed likewise */
    uint64_t hash;
    char **values; /* nlabels valid-UTF-8 strings */
};

struct weft_metrics_family_s {
    weft_metrics_registry_t *reg;
    _Atomic(weft_metrics_family_t *) next; /* registration order; published with release */
    weft__mtype_t type;
    char *name;
    char *help;
    char **labels;
    size_t nlabels;
    double bounds[WEFT_METRICS_MAX_BOUNDS];
    size_t nbounds;
    double (*fn)(void *); /* callback family: no children */
    void *fn_arg;
    struct weft_metric_child_s *only;                       /* the child when nlabels == 0 */
    _Atomic(_Atomic(struct weft_metric_child_s *) *) table; /* labelled: chains */
    _Atomic(struct weft_metric_child_s *) children;         /* newest first */
    _Atomic size_t nchildren; /* written under reg->mu, read anywhere */
    _Atomic size_t limit;
};

struct weft_metrics_registry_s {
    pthread_mutex_t mu; /* registration and child creation; never held by updates or scrapes */
    _Atomic(weft_metrics_family_t *) first;
    weft_metrics_family_t *last; /* under mu */
    uint64_t seed;               /* label hash seed */
    _Atomic uint64_t dropped;
};

/* Sums a child's shards: counter/gauge value, or histogram sum plus per-bucket counts
 * (buckets: fam->nbounds + 1 entries, may be NULL). */
double weft__child_sum(const struct weft_metric_child_s *c, uint64_t *buckets);

/* The newest exemplar of each of a histogram child's buckets across its shards, in one
 * pass over them: out and found have nbounds + 1 entries; found[j] is false for a bucket
 * without one (none stored, or every shard holding one was being written at each try).
 * Returns how many were found. */
size_t weft__child_exemplars(const struct weft_metric_child_s *c, weft__exemplar_read_t *out,
                             bool *found);

/* Length (1..4) of the valid UTF-8 sequence starting s (n bytes available), or 0. */
size_t weft__utf8_seq(const unsigned char *s, size_t n);
/* True when s (n bytes) is well-formed UTF-8 (weft__utf8_seq at every step). */
bool weft__utf8_valid(const char *s, size_t n);

#endif
