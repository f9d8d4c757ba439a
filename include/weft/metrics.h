/**
 * weft/metrics.h - counters, gauges and histograms with labels; Prometheus text exposition.
 *
 * A registry holds metric families (a name, help, type and label names). A family's
 * children are its label sets; weft_metrics_*_child returns a handle that lives as long as
 * the registry, so hot paths look a child up once and keep the handle.
 *
 * Updates are cheap from any thread: a thread that called weft_metrics_thread_register()
 * owns a shard of every child it touches and updates it with a plain (relaxed atomic) store,
 * with no lock and no read-modify-write; a scrape sums the shards. Threads that never
 * registered share one shard updated with atomic read-modify-write. At most
 * WEFT_METRICS_MAX_THREADS threads get shards of their own; later ones share.
 *
 * Limits: WEFT_METRICS_MAX_CHILDREN label sets per family (past it, *_child returns NULL and
 * the registry counts the drop in weft_metrics_label_sets_dropped_total), 8 labels per
 * family, 32 histogram bounds.
 */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define WEFT_METRICS_MAX_THREADS  64
#define WEFT_METRICS_MAX_CHILDREN 10000
#define WEFT_METRICS_MAX_LABELS   8
#define WEFT_METRICS_MAX_BOUNDS   32

typedef struct weft_metrics_registry_s weft_metrics_registry_t;
typedef struct weft_metrics_family_s weft_metrics_family_t;
typedef struct weft_metric_child_s weft_counter_t;
typedef struct weft_metric_child_s weft_gauge_t;
typedef struct weft_metric_child_s weft_histogram_t;

/** A new, empty registry; NULL when out of memory. */
WEFT_EXTERN weft_metrics_registry_t *weft_metrics_registry_new(void);
/** Frees the registry, its families and every child handle. */
WEFT_EXTERN void weft_metrics_registry_free(weft_metrics_registry_t *reg);

/**
 * Gives the calling thread its own shard slot (call once per worker thread, before its
 * first update). Returns the slot (1..WEFT_METRICS_MAX_THREADS-1), or 0 when all are taken
 * (the thread then shares slot 0). Calling it again on the same thread returns the same slot.
 */
WEFT_EXTERN int weft_metrics_thread_register(void);

/**
 * Registers a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*,
 * not starting with "__", no duplicates, at most WEFT_METRICS_MAX_LABELS. Counters should
 * be named *_total. Returns 0 and *out, WEFT_EINVAL, WEFT_EEXIST (name taken), WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_metrics_counter_new(weft_metrics_registry_t *reg, const char *name,
                                         const char *help, const char *const *labels,
                                         size_t nlabels, weft_metrics_family_t **out);
WEFT_EXTERN int weft_metrics_gauge_new(weft_metrics_registry_t *reg, const char *name,
                                       const char *help, const char *const *labels, size_t nlabels,
                                       weft_metrics_family_t **out);
/** bounds: strictly increasing upper bounds (no +Inf, which is implied); NULL/0 for the
 *  default HTTP latency buckets in seconds (.0005 .. 10). */
WEFT_EXTERN int weft_metrics_histogram_new(weft_metrics_registry_t *reg, const char *name,
                                           const char *help, const char *const *labels,
                                           size_t nlabels, const double *bounds, size_t nbounds,
                                           weft_metrics_family_t **out);

/** A gauge (or counter) without labels whose value fn(arg) computes at scrape time. */
WEFT_EXTERN int weft_metrics_gauge_fn(weft_metrics_registry_t *reg, const char *name,
                                      const char *help, double (*fn)(void *arg), void *arg);
WEFT_EXTERN int weft_metrics_counter_fn(weft_metrics_registry_t *reg, const char *name,
                                        const char *help, double (*fn)(void *arg), void *arg);

/**
 * The child of fam for label values (as many as the family has labels; any bytes, they are
 * escaped on output). Creates it on first use. Thread-safe (a lock; cache the handle).
 * NULL when the family's type differs, at the child limit, or out of memory.
 */
WEFT_EXTERN weft_counter_t *weft_metrics_counter_child(weft_metrics_family_t *fam,
                                                       const char *const *values);
WEFT_EXTERN weft_gauge_t *weft_metrics_gauge_child(weft_metrics_family_t *fam,
                                                   const char *const *values);
WEFT_EXTERN weft_histogram_t *weft_metrics_histogram_child(weft_metrics_family_t *fam,
                                                           const char *const *values);

/** Hot-path updates; any thread; NULL handles are ignored. Counters ignore negative adds. */
WEFT_EXTERN void weft_counter_inc(weft_counter_t *c);
WEFT_EXTERN void weft_counter_add(weft_counter_t *c, double v);
WEFT_EXTERN void weft_gauge_set(weft_gauge_t *g, double v);
WEFT_EXTERN void weft_gauge_add(weft_gauge_t *g, double v);
WEFT_EXTERN void weft_histogram_observe(weft_histogram_t *h, double v);

/** Current value of a counter or gauge child (sums shards). */
WEFT_EXTERN double weft_metrics_value(const weft_counter_t *c);
/** Current count and sum of a histogram child. */
WEFT_EXTERN void weft_histogram_totals(const weft_histogram_t *h, uint64_t *count, double *sum);

/** Registers process_cpu_seconds_total, process_resident_memory_bytes,
 *  process_virtual_memory_bytes, process_open_fds, process_max_fds and
 *  process_start_time_seconds (read from /proc/self at scrape time). */
WEFT_EXTERN int weft_metrics_register_process(weft_metrics_registry_t *reg);

/**
 * Writes the registry in Prometheus text format 0.0.4 into a malloc'd buffer (*out, *len;
 * the caller frees *out). Returns 0 or WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_metrics_write(weft_metrics_registry_t *reg, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
