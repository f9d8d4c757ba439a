/*
 * deps.h - the service dependency graph, linked at ingest (internal; the rules, the memory
 * and the file format are in deps.c's opening comment).
 *
 * Every accepted batch is handed to col_deps_add, which matches client and server spans of
 * one RPC (across batches, in either order) and counts calls and errors per edge
 * parent-service -> child-service in time buckets. col_deps_links answers Zipkin's
 * GET /api/v2/dependencies and Jaeger's GET /api/dependencies from those buckets: nothing
 * is computed by a batch job.
 *
 * Threads: every function may be called from any thread, concurrently (one mutex, taken
 * once per batch; save copies what it writes under it and writes without it).
 *
 * Memory is bounded by the configuration below: the spans remembered for matching (a ring:
 * the oldest is forgotten first), the edges per time bucket, the service names held.
 */
#ifndef WEFT_COLLECTOR_DEPS_H
#define WEFT_COLLECTOR_DEPS_H

#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "core/arena.h"

typedef struct col_deps_s col_deps_t;

#define COL_DEPS_NAME_MAX 256u /* a service name longer than this is not linked (bytes) */

typedef struct col_deps_conf_s {
    size_t max_spans;      /* spans remembered for matching; default 131072 (about 8 MiB) */
    size_t max_edges;      /* edges per time bucket; default 4096 (more are counted as dropped) */
    size_t max_names;      /* distinct service names held at once; default 16384 */
    uint64_t retention_ms; /* how far back the graph goes; default 7 days, rounded up to whole
                              hours, 1 hour to 366 days */
    /* Wall clock in ms since the Unix epoch; NULL: the real one. For tests. */
    uint64_t (*now_ms)(void *arg);
    void *now_arg;
} col_deps_conf_t;

/* Fills c with the defaults above. */
void col_deps_conf_init(col_deps_conf_t *c);

/* A new, empty graph; c NULL means the defaults. 0 and *out, or WEFT_EINVAL (a bound out of
 * its range) or WEFT_ENOMEM. */
int col_deps_new(const col_deps_conf_t *c, col_deps_t **out);
/* NULL is fine. */
void col_deps_free(col_deps_t *d);

/* Links the n spans (any formats' decoded batch; nothing of them is kept after the call: the
 * names needed are copied). Never fails: what cannot be kept within the bounds is counted
 * in the stats. */
void col_deps_add(col_deps_t *d, const col_span_t *spans, size_t n);

typedef struct col_dep_link_s {
    col_str_t parent, child; /* service names, NUL-terminated too */
    uint64_t calls, errors;
} col_dep_link_t;

/* The edges with calls in the buckets that overlap [end_ms - lookback_ms, end_ms] (ms since
 * the Unix epoch; buckets are a minute wide for the last hour and an hour wide before:
 * the window is widened to their edges), summed, sorted by parent then child (bytes).
 * *links is in a (with the names), *n = 0 when there is none. 0 or WEFT_ENOMEM (a's limit). */
int col_deps_links(col_deps_t *d, uint64_t end_ms, uint64_t lookback_ms, weft_arena_t *a,
                   col_dep_link_t **links, size_t *n);

/* Writes the graph (not the spans remembered for matching) to path atomically: a temporary
 * file beside it, fsync, rename, fsync of the directory. 0, or a negative errno-based code
 * with one line in err naming the file. */
int col_deps_save(col_deps_t *d, const char *path, char *err, size_t errlen);
/* Adds the graph saved in path to d (meant for an empty d, at start). 0; WEFT_ENOENT when
 * there is no such file (a first start: err says so, nothing to report); WEFT_EPARSE when
 * the file is not a whole, valid graph (err names the file and what is wrong; nothing of it
 * is added); another negative errno-based code when it cannot be read. Buckets past the
 * retention are skipped. */
int col_deps_load(col_deps_t *d, const char *path, char *err, size_t errlen);

typedef struct col_deps_stats_s {
    size_t spans;           /* remembered now */
    size_t names;           /* service names held now */
    size_t buckets, edges;  /* time buckets in use, edges in them */
    uint64_t evicted;       /* spans forgotten to make room (matched or not) */
    uint64_t calls_dropped; /* calls not counted: their bucket at max_edges, or out of memory */
    uint64_t names_dropped; /* spans not linked, or loaded edges skipped: the name table full,
                               or a name over COL_DEPS_NAME_MAX */
    uint64_t too_old;       /* calls not counted: older than the retention */
} col_deps_stats_t;
void col_deps_stats(col_deps_t *d, col_deps_stats_t *st);

#endif
