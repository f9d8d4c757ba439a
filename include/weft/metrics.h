/**
 * weft/metrics.h - counters, gauges and histograms with labels; Prometheus text and
 * OpenMetrics exposition, histogram exemplars.
 *
 * A registry holds metric families (a name, help, type and label names). A family's
 * children are its label sets; weft_metrics_*_child returns a handle that lives as long as
 * the registry, so hot paths look a child up once and keep the handle. A family without
 * labels has its one child from the start (it is exposed as 0 before the first update).
 *
 * Updates are cheap from any thread: a thread that called weft_metrics_thread_register()
 * owns a shard of every child it touches and updates it with a relaxed atomic load and
 * store, with no lock and no read-modify-write; a scrape sums the shards. Threads that never
 * registered share shard 0, updated with atomic read-modify-write (correct, just slower
 * under contention). At most WEFT_METRICS_MAX_THREADS - 1 threads hold shards at a time;
 * a slot is handed back when its thread exits (or calls weft_metrics_thread_unregister)
 * and the next registering thread continues the same shard, so nothing counted is lost and
 * counters never go down.
 *
 * Threads: family registration, child lookup and scrapes may run on any thread at the same
 * time as hot-path updates. Only weft_metrics_registry_free needs the registry to be idle.
 *
 * Limits: WEFT_METRICS_MAX_CHILDREN label sets per family by default (past it, *_child
 * returns NULL and the registry's weft_metrics_label_sets_dropped_total counts the refusal;
 * there is no overflow child, so a NULL handle must be expected and is accepted by every
 * update function), WEFT_METRICS_MAX_LABELS labels per family, WEFT_METRICS_MAX_BOUNDS
 * histogram bounds, WEFT_METRICS_MAX_VALUE_LEN bytes per label value,
 * WEFT_METRICS_MAX_NAME_LEN bytes per metric or label name, WEFT_METRICS_MAX_HELP_LEN
 * bytes of help text.
 *
 * Memory policy (SDK): never aborts its host. Out of memory gives WEFT_ENOMEM or a NULL
 * handle; an update whose per-thread shard cannot be allocated is dropped.
 */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The Content-Type of weft_metrics_write's output. */
#define WEFT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/** The Content-Type of the OpenMetrics output (WEFT_METRICS_OPENMETRICS). */
#define WEFT_METRICS_OPENMETRICS_CONTENT_TYPE                                                      \
    "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define WEFT_METRICS_MAX_THREADS   64    /* shard slots, slot 0 shared by the unregistered */
#define WEFT_METRICS_MAX_CHILDREN  10000 /* default label sets per family */
#define WEFT_METRICS_MAX_LABELS    8
#define WEFT_METRICS_MAX_BOUNDS    32
#define WEFT_METRICS_MAX_VALUE_LEN 1024
#define WEFT_METRICS_MAX_NAME_LEN  200
#define WEFT_METRICS_MAX_HELP_LEN  4096

typedef struct weft_metrics_registry_s weft_metrics_registry_t;
typedef struct weft_metrics_family_s weft_metrics_family_t;
typedef struct weft_metric_child_s weft_counter_t;
typedef struct weft_metric_child_s weft_gauge_t;
typedef struct weft_metric_child_s weft_histogram_t;

/**
 * A new registry. It holds one family from the start,
 * weft_metrics_label_sets_dropped_total. Returns NULL when out of memory.
 */
WEFT_EXTERN weft_metrics_registry_t *weft_metrics_registry_new(void);
/**
 * Frees the registry, its families and every child handle. No other thread may use the
 * registry or its handles during or after the call. NULL is accepted.
 */
WEFT_EXTERN void weft_metrics_registry_free(weft_metrics_registry_t *reg);
/**
 * A process-wide registry, created on the first call (thread-safe) and never freed.
 * Returns NULL only when that first creation ran out of memory (and on every later call).
 */
WEFT_EXTERN weft_metrics_registry_t *weft_metrics_default(void);

/**
 * Gives the calling thread its own shard slot, used for every registry (call once per
 * worker thread, before its first update). Returns the slot, 1..WEFT_METRICS_MAX_THREADS-1,
 * or 0 when all are taken (the thread then shares slot 0; a later call may succeed).
 * Calling it again on a registered thread returns the same slot. The slot is released
 * when the thread exits.
 */
WEFT_EXTERN int weft_metrics_thread_register(void);
/**
 * Releases the calling thread's slot early (for a thread that stays alive but stops
 * updating metrics). Its later updates go to the shared slot 0. Values already counted stay.
 */
WEFT_EXTERN void weft_metrics_thread_unregister(void);

/**
 * Registers a counter family. name: [a-zA-Z_:][a-zA-Z0-9_:]*, ending in "_total"; labels:
 * nlabels names [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no duplicates, at most
 * WEFT_METRICS_MAX_LABELS (labels may be NULL when nlabels is 0). help: valid UTF-8, NULL
 * for none (Prometheus linters want one). Strings are copied.
 * Returns 0 and *out (may be NULL when not wanted; the family belongs to the registry);
 * WEFT_EINVAL for a bad name, label or help; WEFT_EEXIST when the name, or a sample name
 * it would write (a histogram's name_bucket, name_sum, name_count), is already taken;
 * WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_metrics_counter_new(weft_metrics_registry_t *reg, const char *name,
                                         const char *help, const char *const *labels,
                                         size_t nlabels, weft_metrics_family_t **out);
/** As weft_metrics_counter_new, for a gauge (no "_total" rule). */
WEFT_EXTERN int weft_metrics_gauge_new(weft_metrics_registry_t *reg, const char *name,
                                       const char *help, const char *const *labels, size_t nlabels,
                                       weft_metrics_family_t **out);
/**
 * As weft_metrics_gauge_new, for a histogram; "le" is not allowed as a label name.
 * bounds: nbounds finite, strictly increasing upper bounds (+Inf is implied), at most
 * WEFT_METRICS_MAX_BOUNDS; NULL/0 for the default HTTP latency buckets in seconds
 * (.0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10). An observation v falls into the
 * first bucket whose bound is >= v.
 */
WEFT_EXTERN int weft_metrics_histogram_new(weft_metrics_registry_t *reg, const char *name,
                                           const char *help, const char *const *labels,
                                           size_t nlabels, const double *bounds, size_t nbounds,
                                           weft_metrics_family_t **out);

/**
 * A gauge without labels whose value fn(arg) computes at every scrape, on the scraping
 * thread and without any registry lock held (fn may itself use the registry). fn and arg
 * must stay valid as long as the registry. Same names rules and returns as
 * weft_metrics_gauge_new, plus WEFT_EINVAL when fn is NULL.
 */
WEFT_EXTERN int weft_metrics_gauge_fn(weft_metrics_registry_t *reg, const char *name,
                                      const char *help, double (*fn)(void *arg), void *arg);
/** As weft_metrics_gauge_fn, for a counter (name ending in "_total"; fn must not decrease). */
WEFT_EXTERN int weft_metrics_counter_fn(weft_metrics_registry_t *reg, const char *name,
                                        const char *help, double (*fn)(void *arg), void *arg);

/**
 * Sets fam's limit of label sets (default WEFT_METRICS_MAX_CHILDREN); call at start-up.
 * Children that already exist stay. Returns 0, or WEFT_EINVAL for limit 0 or a NULL fam.
 */
WEFT_EXTERN int weft_metrics_family_set_limit(weft_metrics_family_t *fam, size_t limit);

/**
 * The child of fam for label values: as many NUL-terminated strings as the family has
 * labels (values may be NULL for a family without labels). Any bytes are accepted: they
 * are escaped on output, and bytes that are not valid UTF-8 are replaced by U+FFFD first
 * (so two values differing only in such bytes name the same child).
 * Creates the child on first use; thread-safe, and lock-free once the child exists (a
 * lock only when creating; still, hot paths should keep the handle).
 * Returns a handle owned by the registry, or NULL when the family is of another type or a
 * callback family, a value is missing or longer than WEFT_METRICS_MAX_VALUE_LEN, the family
 * is at its limit (the refusal is counted), or out of memory.
 */
WEFT_EXTERN weft_counter_t *weft_metrics_counter_child(weft_metrics_family_t *fam,
                                                       const char *const *values);
WEFT_EXTERN weft_gauge_t *weft_metrics_gauge_child(weft_metrics_family_t *fam,
                                                   const char *const *values);
WEFT_EXTERN weft_histogram_t *weft_metrics_histogram_child(weft_metrics_family_t *fam,
                                                           const char *const *values);

/*
 * Hot-path updates: any thread, no lock; NULL handles are ignored.
 * weft_counter_add ignores v that is not > 0 or is infinite (a counter only goes up).
 * weft_gauge_set is last-writer-wins: it replaces the value and every add before it.
 * weft_histogram_observe ignores NaN.
 */
WEFT_EXTERN void weft_counter_inc(weft_counter_t *c);
WEFT_EXTERN void weft_counter_add(weft_counter_t *c, double v);
WEFT_EXTERN void weft_gauge_set(weft_gauge_t *g, double v);
WEFT_EXTERN void weft_gauge_add(weft_gauge_t *g, double v);
WEFT_EXTERN void weft_gauge_inc(weft_gauge_t *g);
WEFT_EXTERN void weft_gauge_dec(weft_gauge_t *g);
WEFT_EXTERN void weft_histogram_observe(weft_histogram_t *h, double v);
/**
 * As weft_histogram_observe, and v becomes the latest exemplar of its bucket: the trace
 * and span that observed it, for the OpenMetrics exposition to link the bucket to a trace
 * (trace_id="32 hex",span_id="16 hex"} v time). Each thread's shard keeps the latest
 * exemplar of each bucket and a scrape shows the newest across shards; an observation
 * through weft_histogram_observe leaves the bucket's exemplar as it was. trace_id: 16
 * bytes, NULL or all zero for none (then this is weft_histogram_observe); span_id: 8 bytes,
 * NULL or all zero for none. Costs the plain observe plus a clock read and a few stores
 * (the shard's exemplars are allocated on its first one; out of memory drops the exemplar,
 * never the observation). Any thread, no lock.
 */
WEFT_EXTERN void weft_histogram_observe_exemplar(weft_histogram_t *h, double v,
                                                 const uint8_t trace_id[16],
                                                 const uint8_t span_id[8]);

/** Current value of a counter or gauge child (sums the shards); 0 for NULL. */
WEFT_EXTERN double weft_metrics_value(const weft_counter_t *c);
/** Current observation count and sum of a histogram child (0 and 0 for NULL). */
WEFT_EXTERN void weft_histogram_totals(const weft_histogram_t *h, uint64_t *count, double *sum);
/** How many label sets the registry's families have refused so far. */
WEFT_EXTERN uint64_t weft_metrics_dropped(const weft_metrics_registry_t *reg);

/**
 * Registers process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds, read from /proc/self at scrape time (Linux; a value that
 * cannot be read is exposed as NaN). Returns 0 or the first registration error
 * (WEFT_EEXIST when already registered).
 */
WEFT_EXTERN int weft_metrics_register_process(weft_metrics_registry_t *reg);

/**
 * Writes the registry in Prometheus text format 0.0.4 (WEFT_METRICS_CONTENT_TYPE):
 * families in registration order, children in creation order. Takes no lock that
 * updates or child creation wait on; runs the callback families' functions.
 * Returns 0 with a malloc'd NUL-terminated buffer in *out and its length (without the NUL)
 * in *len, which the caller frees; or WEFT_ENOMEM (then *out is untouched).
 */
WEFT_EXTERN int weft_metrics_write(weft_metrics_registry_t *reg, char **out, size_t *len);

/** The exposition formats weft_metrics_write_format writes. */
typedef enum {
    WEFT_METRICS_PROMETHEUS = 0, /* text format 0.0.4, WEFT_METRICS_CONTENT_TYPE */
    WEFT_METRICS_OPENMETRICS     /* OpenMetrics text 1.0.0, with exemplars */
} weft_metrics_format_t;

/**
 * The format to answer a scrape whose Accept header is accept (len bytes; NULL or empty
 * for none): WEFT_METRICS_OPENMETRICS when it lists application/openmetrics-text (version
 * 1.0.0 or no version) with a q above 0 and not below the best q of text/plain (version
 * 0.0.4 or none) and the wildcard ranges, as Prometheus's default Accept does; otherwise
 * WEFT_METRICS_PROMETHEUS (a browser's or curl's Accept, or none).
 */
WEFT_EXTERN weft_metrics_format_t weft_metrics_negotiate(const char *accept, size_t len);
/** The Content-Type of format's output. */
WEFT_EXTERN const char *weft_metrics_content_type(weft_metrics_format_t format);
/**
 * As weft_metrics_write, in format. WEFT_METRICS_OPENMETRICS follows OpenMetrics 1.0.0:
 * a counter family is named without its "_total" (its samples keep it), help escapes the
 * double quote too, histogram buckets carry their exemplars
 * (`name_bucket{le="0.1"} 3 # {trace_id="..",span_id=".."} 0.042 1700000000.123`), the
 * text ends with "# EOF". The le values are written as in the Prometheus format, so that a
 * Prometheus switching formats keeps the same series. Returns as weft_metrics_write, and
 * WEFT_EINVAL for an unknown format.
 */
WEFT_EXTERN int weft_metrics_write_format(weft_metrics_registry_t *reg,
                                          weft_metrics_format_t format, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
